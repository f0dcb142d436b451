// The ordered index of initialized replicas by start key, for routing a
// key to the replica whose range holds it.

package store

import (
	"bytes"
	"sort"

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
