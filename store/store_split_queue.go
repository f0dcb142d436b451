// Automatic split by size: one background loop per store (not per range)
// checks the ranges this store leads. The check is cheap — Pebble's
// on-disk estimate plus the bytes applied since the last check — and only a
// range that looks too big is measured exactly and split at its middle key.

package store

import (
	"context"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// splitLoop checks ranges for a split by size every SplitCheckInterval:
// one goroutine per store. Replica GC has its own goroutine (gcLoop), so
// that neither a long split nor a long check interval delays it (a removed
// replica's span blocks snapshots).
func (s *Store) splitLoop() {
	defer s.wg.Done()
	split := s.cfg.Clock.NewTicker(s.cfg.SplitCheckInterval)
	defer split.Stop()
	for {
		select {
		case <-s.stopCh:
			return
		case <-split.C():
			for _, r := range s.replicasSnapshot() {
				select {
				case <-s.stopCh:
					return
				default:
				}
				s.maybeSplitBySize(r)
			}
		}
	}
}

// sizeEstimate is Pebble's estimate of a range's user data, for the
// descriptor it was measured under, and when.
type sizeEstimate struct {
	desc  *rangekvpb.RangeDescriptor
	bytes uint64
	at    time.Time
}

// measureSize estimates the size of r's range (descriptor d) and keeps it
// for approximateSize.
func (s *Store) measureSize(r *Replica, d *rangekvpb.RangeDescriptor) (uint64, error) {
	lo, hi := keys.UserSpan(d.StartKey, d.EndKey)
	n, err := s.cfg.Sizes.Span(s.db, lo, hi)
	if err != nil {
		return 0, err
	}
	r.size.Store(&sizeEstimate{desc: d, bytes: n, at: s.now()})
	return n, nil
}

// approximateSize is r's range size as last measured under descriptor d
// if that was less than a split check interval before now, else measured
// again. Listings use it: the split check re-measures the ranges this
// store leads every interval anyway, and a Pebble estimate per replica
// per listing cost more than the rest of the listing together.
func (s *Store) approximateSize(r *Replica, d *rangekvpb.RangeDescriptor, now time.Time) uint64 {
	if e := r.size.Load(); e != nil && e.desc == d && now.Sub(e.at) < s.cfg.SplitCheckInterval {
		return e.bytes
	}
	n, _ := s.measureSize(r, d)
	return n
}

// maybeSplitBySize splits r at its middle key when it holds more than the
// split size. Only the leader decides.
func (s *Store) maybeSplitBySize(r *Replica) {
	d := r.Descriptor()
	if d == nil || r.leader.Load() != r.replicaID {
		return
	}
	lo, hi := keys.UserSpan(d.StartKey, d.EndKey)
	est, err := s.measureSize(r, d)
	if err != nil {
		return
	}
	if int64(est)+r.writtenBytes.Load() <= s.cfg.SplitMaxBytes {
		return
	}
	r.writtenBytes.Store(0)
	key, size, ok := s.middleKey(lo, hi)
	if !ok || size <= s.cfg.SplitMaxBytes {
		return
	}
	// Nobody sent this split an ID: ask placement (or the static
	// allocator), bounded by the store's stop, then split with it.
	actx, acancel := s.pdCtx(allocIDTimeout)
	newID, err := s.allocRangeID(actx)
	acancel()
	if err != nil {
		s.log.Info("split by size failed: no range ID", "range", d.RangeId, "size", size, "err", err)
		return
	}
	ctx, cancel := s.untilStop(clock.WithTimeout(context.Background(), s.cfg.Clock, s.cfg.ProposalTimeout))
	defer cancel()
	res, rerr, err := s.Split(ctx, d.RangeId, key, newID)
	if err != nil || rerr != nil {
		s.log.Info("split by size failed", "range", d.RangeId, "size", size, "err", err, "range_error", rerr.GetMessage())
		return
	}
	s.log.Info("split by size", "range", d.RangeId, "size", size, "new_range", res.right.RangeId, "key", string(key))
}

// middleKey measures the span (keys and values) and returns the first key
// past half of it. It reads the span twice at most, and only for ranges
// the estimate flagged.
func (s *Store) middleKey(lo, hi []byte) ([]byte, int64, bool) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, false
	}
	defer it.Close()
	var total int64
	for valid := it.First(); valid; valid = it.Next() {
		total += int64(len(it.Key()) + len(it.Value()))
	}
	if total <= s.cfg.SplitMaxBytes {
		return nil, total, false
	}
	var sum int64
	first := true
	for valid := it.First(); valid; valid = it.Next() {
		sum += int64(len(it.Key()) + len(it.Value()))
		if sum >= total/2 && !first {
			k, err := keys.DecodeUserKey(it.Key())
			if err != nil {
				return nil, 0, false
			}
			return append([]byte(nil), k...), total, true
		}
		first = false
	}
	return nil, total, false
}
