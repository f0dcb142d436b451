// Atomic batch writes: a BatchRequest is validated, routed to the one range
// that must hold all its keys, and proposed as ONE Raft command. The
// command applies into the same Pebble batch as the applied index, so a
// batch is visible all or nothing, also across a crash and restart.

package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// MaxBatchOps is the most ops one BatchRequest may carry.
	MaxBatchOps = 10000
	// MaxBatchBytes bounds the keys and values of one BatchRequest (one
	// Raft entry; well under raft's uncommitted-size and gRPC limits).
	MaxBatchBytes = 16 << 20
)

// ValidateBatch checks a BatchRequest: at least one op, at most
// MaxBatchOps, keys and values within the limits, at most MaxBatchBytes in
// all, and no value on a delete.
func (l Limits) ValidateBatch(r *rangekvpb.BatchRequest) error {
	ops := r.GetOps()
	if len(ops) == 0 {
		return invalid("ops: must hold at least one op")
	}
	if len(ops) > MaxBatchOps {
		return invalid("ops: %d ops exceeds the limit of %d ops per batch", len(ops), MaxBatchOps)
	}
	total := 0
	for i, op := range ops {
		if err := l.key(fmt.Sprintf("ops[%d].key", i), op.GetKey()); err != nil {
			return err
		}
		if op.GetDelete() && len(op.GetValue()) > 0 {
			return invalid("ops[%d].value: must be empty on a delete", i)
		}
		if err := l.value(fmt.Sprintf("ops[%d].value", i), op.GetValue()); err != nil {
			return err
		}
		total += len(op.GetKey()) + len(op.GetValue())
	}
	if total > MaxBatchBytes {
		return invalid("ops: %d bytes of keys and values exceeds the limit of %d bytes per batch", total, MaxBatchBytes)
	}
	return nil
}

// routeBatch routes a batch by its first key, then checks that the range
// holds every key. When the epoch is stale, the error carries the
// descriptors of every local range now holding one of the keys, so a
// router can regroup the batch after a split with one extra round trip.
func (s *Store) routeBatch(h *rangekvpb.RequestHeader, ops []*rangekvpb.BatchOp) (*Replica, *rangekvpb.RangeError) {
	r, rerr := s.route(h, ops[0].Key)
	if rerr != nil {
		if rerr.EpochNotMatch != nil {
			rerr.EpochNotMatch.Current = s.descriptorsFor(rerr.EpochNotMatch.Current, ops)
		}
		return nil, rerr
	}
	d := r.Descriptor()
	for _, op := range ops {
		if !containsKey(d, op.Key) {
			return nil, keyNotInRange(op.Key, d)
		}
	}
	return r, nil
}

// descriptorsFor adds to have the descriptor of each local range holding
// one of ops' keys, once each.
func (s *Store) descriptorsFor(have []*rangekvpb.RangeDescriptor, ops []*rangekvpb.BatchOp) []*rangekvpb.RangeDescriptor {
	seen := map[uint64]bool{}
	for _, d := range have {
		seen[d.GetRangeId()] = true
	}
	for _, op := range ops {
		if o := s.replicaForKey(op.Key); o != nil {
			if d := o.Descriptor(); d != nil && !seen[d.RangeId] {
				seen[d.RangeId] = true
				have = append(have, d)
			}
		}
	}
	return have
}

// addsData reports whether a batch holds a put: a batch of deletes only
// frees space and passes the disk-full guard, as a delete does.
func addsData(ops []*rangekvpb.BatchOp) bool {
	for _, op := range ops {
		if !op.Delete {
			return true
		}
	}
	return false
}

// applyBatch stages a batch into ab: every key must be in desc (checked
// first, so a refused batch writes nothing). Deterministic.
func (sm kvStateMachine) applyBatch(ab *pebble.Batch, p *pass, desc *rangekvpb.RangeDescriptor, b *rangekvpb.BatchCmd) error {
	for _, op := range b.Ops {
		if !containsKey(desc, op.Key) {
			return &keyNotInRangeError{key: op.Key, desc: desc}
		}
	}
	for _, op := range b.Ops {
		ek := keys.UserKey(op.Key)
		if op.Delete {
			p.r.must(ab.Delete(ek, nil))
			continue
		}
		p.r.must(ab.Set(ek, op.Value, nil))
		p.r.writtenBytes.Add(int64(len(op.Key) + len(op.Value)))
	}
	return nil
}
