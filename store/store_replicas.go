// The store's replicas: the replica map, the ordered index of initialized
// replicas by start key (routing a key to the replica whose range holds
// it), range ID allocation, and the store's entry points that find a
// replica and call it (Split, ChangeReplicas).

package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// replicaForKey finds the initialized replica whose range holds user key k.
func (s *Store) replicaForKey(k []byte) *Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.mu.byStart
	// The last replica whose start key is <= k.
	i := sort.Search(len(idx), func(i int) bool { return bytes.Compare(idx[i].Descriptor().StartKey, k) > 0 }) - 1
	if i < 0 {
		return nil
	}
	if r := idx[i]; containsKey(r.Descriptor(), k) {
		return r
	}
	return nil
}

// indexReplica adds an initialized replica to the index (an insertion:
// creating ranges one split at a time stays cheap).
func (s *Store) indexReplica(r *Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.mu.byStart
	start := r.Descriptor().StartKey
	i := sort.Search(len(idx), func(i int) bool { return bytes.Compare(idx[i].Descriptor().StartKey, start) >= 0 })
	if i < len(idx) && idx[i] == r {
		return
	}
	idx = append(idx, nil)
	copy(idx[i+1:], idx[i:])
	idx[i] = r
	s.mu.byStart = idx
}

// reindex rebuilds the index after descriptors changed (split, snapshot,
// removal).
func (s *Store) reindex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reindexLocked()
}

func (s *Store) reindexLocked() {
	idx := s.mu.byStart[:0]
	for _, r := range s.mu.replicas {
		if r.Descriptor() != nil {
			idx = append(idx, r)
		}
	}
	sort.Slice(idx, func(i, j int) bool {
		return bytes.Compare(idx[i].Descriptor().StartKey, idx[j].Descriptor().StartKey) < 0
	})
	s.mu.byStart = idx
}

// spanOwnedByOther reports whether another initialized replica here
// overlaps desc's span (then its data must stay).
func (s *Store) spanOwnedByOther(rangeID uint64, desc *rangekvpb.RangeDescriptor) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, r := range s.mu.replicas {
		if d := r.Descriptor(); id != rangeID && d != nil && spansOverlap(d, desc) {
			return true
		}
	}
	return false
}

// route finds the local replica for a request and checks the key and the
// epoch against its descriptor.
func (s *Store) route(h *rangekvpb.RequestHeader, key []byte) (*Replica, *rangekvpb.RangeError) {
	var r *Replica
	if h.GetRangeId() == 0 {
		r = s.replicaForKey(key)
		if r == nil {
			return nil, &rangekvpb.RangeError{Message: "no range on this store holds key " + errorForKey(key),
				RangeNotFound: &rangekvpb.RangeNotFound{}}
		}
	} else {
		r = s.replica(h.GetRangeId())
		if r == nil || r.Descriptor() == nil {
			return nil, &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: h.GetRangeId()}}
		}
	}
	d := r.Descriptor()
	if ep := h.GetEpoch(); ep != nil && ep.GetVersion() != d.GetEpoch().GetVersion() {
		e := epochError(d)
		// After a split, the key's new range is what the client needs.
		if o := s.replicaForKey(key); o != nil && o != r {
			e.EpochNotMatch.Current = append(e.EpochNotMatch.Current, o.Descriptor())
		}
		return nil, e
	}
	if !containsKey(d, key) {
		return nil, keyNotInRange(key, d)
	}
	return r, nil
}

func epochError(d *rangekvpb.RangeDescriptor) *rangekvpb.RangeError {
	return &rangekvpb.RangeError{Message: "range epoch does not match",
		EpochNotMatch: &rangekvpb.EpochNotMatch{Current: []*rangekvpb.RangeDescriptor{d}}}
}

func keyNotInRange(key []byte, d *rangekvpb.RangeDescriptor) *rangekvpb.RangeError {
	return &rangekvpb.RangeError{Message: "key " + errorForKey(key) + " is not in the range",
		KeyNotInRange: &rangekvpb.KeyNotInRange{Key: key, RangeId: d.RangeId, StartKey: d.StartKey, EndKey: d.EndKey}}
}

// allocIDTimeout bounds how long a split waits for placement to hand out
// its new range ID, within the caller's context.
const allocIDTimeout = 10 * time.Second

// allocRangeID hands out a new range ID: from placement, or, with static
// bootstrap, one no other store can allocate (the store ID in the high
// bits over a persisted counter). ctx is the caller's (the request's, or
// the split loop's stop-bound one); the call also ends when the store
// stops. Only a split whose caller did not bring an ID needs this:
// placement sends one with its SplitRange.
func (s *Store) allocRangeID(ctx context.Context) (uint64, error) {
	if k := s.cfg.Knobs; k != nil && k.AllocatingRangeID != nil {
		k.AllocatingRangeID()
	}
	if s.pd != nil {
		var first uint64
		ctx, cancel := s.untilStop(clock.WithTimeout(ctx, s.cfg.Clock, allocIDTimeout))
		defer cancel()
		err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
			r, err := pc.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: 1})
			if err != nil {
				return nil, err
			}
			first = r.First
			return r.Error, nil
		})
		return first, err
	}
	s.rangeIDMu.Lock()
	defer s.rangeIDMu.Unlock()
	v, c, err := s.db.Get(keys.RangeIDAllocKey())
	var next uint64 = 1
	if err == nil {
		next = binary.BigEndian.Uint64(v) + 1
		c.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return 0, err
	}
	if next >= 1<<40 {
		return 0, errors.New("range ID space of this store exhausted")
	}
	if err := s.db.Set(keys.RangeIDAllocKey(), binary.BigEndian.AppendUint64(nil, next), pebble.Sync); err != nil {
		return 0, err
	}
	return s.cfg.StoreID<<40 | next, nil
}

// RangeIDInUseError refuses a split whose new_range_id names a range this
// store has a replica of, is creating by a split, or had a replica of (its
// tombstone): a range ID is never used twice. It reaches a gRPC caller as
// InvalidArgument naming the field.
type RangeIDInUseError struct {
	RangeID, StoreID uint64
	// Why says what on the store holds the ID.
	Why string
}

func (e *RangeIDInUseError) Error() string {
	return fmt.Sprintf("new_range_id: range %d %s on store %d; a split needs an ID no range ever had", e.RangeID, e.Why, e.StoreID)
}

// GRPCStatus makes the error InvalidArgument on the wire.
func (e *RangeIDInUseError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// checkNewRangeID refuses (*RangeIDInUseError) an ID the caller chose that
// collides with a range of this store.
func (s *Store) checkNewRangeID(id uint64) error {
	inUse := func(why string) error { return &RangeIDInUseError{RangeID: id, StoreID: s.cfg.StoreID, Why: why} }
	s.mu.RLock()
	_, has := s.mu.replicas[id]
	pending := s.mu.pendingRHS[id] != nil
	s.mu.RUnlock()
	switch {
	case has:
		return inUse("has a replica")
	case pending:
		return inUse("is being created by a split")
	}
	for _, k := range []struct {
		key []byte
		why string
	}{{keys.DescriptorKey(id), "has a descriptor"}, {keys.TombstoneKey(id), "had a replica (tombstone)"}} {
		_, c, err := s.db.Get(k.key)
		if err == nil {
			c.Close()
			return inUse(k.why)
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
	}
	return nil
}

// appliedSplit answers a split retried with the ID of one that already
// applied here at key (its first answer was lost): both halves as they
// are now, or nil when this store does not show that split (yet: the
// right replica is installed just after the split's answer; a retry in
// between gets the range lookup's retryable refusal).
func (s *Store) appliedSplit(key []byte, newID uint64) *splitResult {
	right := s.replica(newID)
	if right == nil {
		return nil
	}
	rd := right.Descriptor()
	if rd == nil || !bytes.Equal(rd.StartKey, key) {
		return nil
	}
	for _, l := range s.replicasSnapshot() {
		if ld := l.Descriptor(); ld != nil && bytes.Equal(ld.EndKey, key) {
			return &splitResult{left: proto.CloneOf(ld), right: proto.CloneOf(rd)}
		}
	}
	return nil
}

// Split splits the range holding key (or rangeID, if non-zero) at key,
// through Raft. It must run on the range's leader. newID is the right
// half's range ID (placement allocates it); 0 allocates one here, with
// ctx. A newID that a range of this store has or had is refused
// (*RangeIDInUseError), except by a retry of the split that created it at
// key, which answers that split's halves again.
func (s *Store) Split(ctx context.Context, rangeID uint64, key []byte, newID uint64) (*splitResult, *rangekvpb.RangeError, error) {
	if err := s.cfg.limits().key("split_key", key); err != nil {
		return nil, nil, err
	}
	if newID != 0 {
		if res := s.appliedSplit(key, newID); res != nil {
			return res, nil, nil
		}
	}
	var r *Replica
	if rangeID == 0 {
		r = s.replicaForKey(key)
	} else {
		r = s.replica(rangeID)
	}
	if r == nil || r.Descriptor() == nil {
		return nil, &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: rangeID}}, nil
	}
	return r.split(ctx, key, newID)
}

// ChangeReplicas runs one membership step on the range's leader here and
// waits until the descriptor shows it applied (and, for a promotion, until
// the joint configuration was left).
func (s *Store) ChangeReplicas(ctx context.Context, rangeID uint64, change rangekvpb.ReplicaChangeType, storeID uint64) (*rangekvpb.RangeDescriptor, *rangekvpb.RangeError, error) {
	return s.changeReplicas(ctx, rangeID, change, storeID, nil)
}

// changeReplicas is ChangeReplicas; with expect set (a placement step's
// epoch) it runs only while the range is at exactly that epoch, and the
// change is proposed at it, so apply refuses it too once any other change
// applied first (MULTIRAFT.md §10).
func (s *Store) changeReplicas(ctx context.Context, rangeID uint64, change rangekvpb.ReplicaChangeType, storeID uint64, expect *rangekvpb.RangeEpoch) (*rangekvpb.RangeDescriptor, *rangekvpb.RangeError, error) {
	r := s.replica(rangeID)
	if r == nil || r.Descriptor() == nil {
		return nil, &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: rangeID}}, nil
	}
	return r.changeReplicas(ctx, change, storeID, expect)
}

func (s *Store) replica(rangeID uint64) *Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.replicas[rangeID]
}

func (s *Store) replicaIDs() []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]uint64, 0, len(s.mu.replicas))
	for id := range s.mu.replicas {
		ids = append(ids, id)
	}
	return ids
}

// setReplicaLocked puts r in the replica map as rangeID's replica.
func (s *Store) setReplicaLocked(rangeID uint64, r *Replica) {
	s.mu.replicas[rangeID] = r
	s.mu.sorted = nil
}

// deleteReplicaLocked takes rangeID's replica out of the replica map.
func (s *Store) deleteReplicaLocked(rangeID uint64) {
	delete(s.mu.replicas, rangeID)
	s.mu.sorted = nil
}

// sortedReplicas returns the replicas in range ID order: a shared slice
// the caller must not modify, rebuilt only after the map changed.
func (s *Store) sortedReplicas() []*Replica {
	s.mu.RLock()
	out := s.mu.sorted
	s.mu.RUnlock()
	if out != nil {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.sorted == nil {
		out = make([]*Replica, 0, len(s.mu.replicas))
		for _, r := range s.mu.replicas {
			out = append(out, r)
		}
		slices.SortFunc(out, func(a, b *Replica) int { return cmp.Compare(a.rangeID, b.rangeID) })
		s.mu.sorted = out
	}
	return s.mu.sorted
}

// replicasSnapshot returns the replicas in range ID order (the caller's
// own copy).
func (s *Store) replicasSnapshot() []*Replica {
	return slices.Clone(s.sortedReplicas())
}

// replicasPage returns up to limit replicas with range IDs above after,
// in range ID order (only those of ids, when ids is not empty), whether
// more follow, and how many replicas the listing covers in all.
func (s *Store) replicasPage(after uint64, limit int, ids []uint64) (page []*Replica, more bool, total int) {
	if len(ids) == 0 {
		all := s.sortedReplicas()
		i, _ := slices.BinarySearchFunc(all, after+1, func(r *Replica, id uint64) int { return cmp.Compare(r.rangeID, id) })
		if after == ^uint64(0) {
			i = len(all)
		}
		end := min(len(all), i+limit)
		return all[i:end:end], end < len(all), len(all)
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		r := s.mu.replicas[id]
		if r == nil {
			continue
		}
		total++
		if id <= after {
			continue
		}
		if len(page) == limit {
			more = true
			continue
		}
		page = append(page, r)
	}
	return page, more, total
}
