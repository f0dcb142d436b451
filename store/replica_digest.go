// A replica's data digest at its applied index: what the simulation (and
// a consistency check) compares across the replicas of a range.

package store

import (
	"hash/fnv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rangekv/rangekv/internal/keys"
)

// ReplicaDigest returns range rangeID's applied index on this store and a
// digest of its user keys and values at that index; ok is false when the
// store has no initialized, live replica of the range. The replica is
// locked while it reads, so no apply moves the index under it.
func (s *Store) ReplicaDigest(rangeID uint64) (applied, digest uint64, ok bool) {
	r := s.replica(rangeID)
	if r == nil {
		return 0, 0, false
	}
	d := r.Descriptor()
	if d == nil {
		return 0, 0, false
	}
	r.lock()
	defer r.mu.Unlock()
	if r.mu.destroyed {
		return 0, 0, false
	}
	lo, hi := keys.UserSpan(d.StartKey, d.EndKey)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, false
	}
	defer it.Close()
	h := fnv.New64a()
	var n [8]byte
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		for _, b := range [][]byte{k, v} {
			l := uint64(len(b))
			for i := range n {
				n[i] = byte(l >> (8 * i))
			}
			h.Write(n[:])
			h.Write(b)
		}
	}
	if it.Error() != nil {
		return 0, 0, false
	}
	return r.mu.applied.Index, h.Sum64(), true
}
