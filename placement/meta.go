// The replicated metadata state machine: cluster record, ID allocator,
// stores and range descriptors, kept in memory and in the placement
// engine (applied together with the applied index).

package placement

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// errAlreadyBootstrapped: a second bootstrap lost the race.
var errAlreadyBootstrapped = errors.New("placement: cluster already bootstrapped")

type meta struct {
	mu      sync.RWMutex
	cluster *rangekvpb.PlacementClusterRecord
	stores  map[uint64]*rangekvpb.StoreDescriptor
	ranges  map[uint64]*rangekvpb.RangeDescriptor
	byStart []*rangekvpb.RangeDescriptor // sorted by start key, disjoint
}

func newMeta() *meta {
	return &meta{cluster: &rangekvpb.PlacementClusterRecord{IdEnd: firstAllocID},
		stores: map[uint64]*rangekvpb.StoreDescriptor{}, ranges: map[uint64]*rangekvpb.RangeDescriptor{}}
}

// firstAllocID: range 1 is created by bootstrap; allocation starts above.
const firstAllocID = 2

func loadMeta(db *pebble.DB) (*meta, error) {
	m := newMeta()
	v, c, err := db.Get(keys.PlacementClusterKey())
	if err == nil {
		err = proto.Unmarshal(v, m.cluster)
		c.Close()
		if err != nil {
			return nil, err
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, err
	}
	if err := scan(db, keys.PlacementStorePrefix(), func(v []byte) error {
		s := &rangekvpb.StoreDescriptor{}
		if err := proto.Unmarshal(v, s); err != nil {
			return err
		}
		m.stores[s.StoreId] = s
		return nil
	}); err != nil {
		return nil, err
	}
	if err := scan(db, keys.PlacementRangePrefix(), func(v []byte) error {
		d := &rangekvpb.RangeDescriptor{}
		if err := proto.Unmarshal(v, d); err != nil {
			return err
		}
		m.ranges[d.RangeId] = d
		return nil
	}); err != nil {
		return nil, err
	}
	m.reindex()
	return m, nil
}

func scan(db *pebble.DB, prefix []byte, fn func(v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func (m *meta) reindex() {
	m.byStart = m.byStart[:0]
	for _, d := range m.ranges {
		m.byStart = append(m.byStart, d)
	}
	sort.Slice(m.byStart, func(i, j int) bool { return bytes.Compare(m.byStart[i].StartKey, m.byStart[j].StartKey) < 0 })
}

func set(b *pebble.Batch, k []byte, msg proto.Message) error {
	v, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	return b.Set(k, v, nil)
}

// newer reports whether a is a newer descriptor than b.
func newer(a, b *rangekvpb.RangeDescriptor) bool {
	av, bv := a.GetEpoch().GetVersion(), b.GetEpoch().GetVersion()
	return av > bv || (av == bv && a.GetEpoch().GetConfVer() > b.GetEpoch().GetConfVer())
}

func overlap(a, b *rangekvpb.RangeDescriptor) bool {
	aBeforeB := len(a.EndKey) > 0 && bytes.Compare(a.EndKey, b.StartKey) <= 0
	bBeforeA := len(b.EndKey) > 0 && bytes.Compare(b.EndKey, a.StartKey) <= 0
	return !aBeforeB && !bBeforeA
}

// apply applies one command into b (the caller commits b together with
// the applied index) and to memory. Deterministic: same state, same
// command, same outcome on every member.
func (m *meta) apply(b *pebble.Batch, cmd *rangekvpb.PlacementCommand) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch c := cmd.Cmd.(type) {
	case *rangekvpb.PlacementCommand_Bootstrap:
		if m.cluster.Bootstrapped {
			return nil, errAlreadyBootstrapped
		}
		m.cluster.ClusterId = c.Bootstrap.ClusterId
		m.cluster.Bootstrapped = true
		if c.Bootstrap.Store.StoreId >= m.cluster.IdEnd {
			m.cluster.IdEnd = c.Bootstrap.Store.StoreId + 1
		}
		m.stores[c.Bootstrap.Store.StoreId] = c.Bootstrap.Store
		m.ranges[c.Bootstrap.Range.RangeId] = c.Bootstrap.Range
		m.reindex()
		if err := set(b, keys.PlacementClusterKey(), m.cluster); err != nil {
			return nil, err
		}
		if err := set(b, keys.PlacementStoreKey(c.Bootstrap.Store.StoreId), c.Bootstrap.Store); err != nil {
			return nil, err
		}
		return nil, set(b, keys.PlacementRangeKey(c.Bootstrap.Range.RangeId), c.Bootstrap.Range)
	case *rangekvpb.PlacementCommand_PutStore:
		m.stores[c.PutStore.Store.StoreId] = c.PutStore.Store
		return nil, set(b, keys.PlacementStoreKey(c.PutStore.Store.StoreId), c.PutStore.Store)
	case *rangekvpb.PlacementCommand_AllocIds:
		first := m.cluster.IdEnd
		m.cluster.IdEnd += c.AllocIds.Count
		return first, set(b, keys.PlacementClusterKey(), m.cluster)
	case *rangekvpb.PlacementCommand_PutRanges:
		changed := 0
		for _, d := range c.PutRanges.Ranges {
			if old, ok := m.ranges[d.RangeId]; ok && !newer(d, old) {
				continue
			}
			// A stale layout (a late heartbeat from before a split this
			// state already records) is ignored.
			stale := false
			for id, o := range m.ranges {
				if id != d.RangeId && overlap(o, d) && o.GetEpoch().GetVersion() > d.GetEpoch().GetVersion() {
					stale = true
					break
				}
			}
			if stale {
				continue
			}
			// A newer descriptor evicts older overlapping ones (a split the
			// left half has not reported yet, a stale layout).
			for id, o := range m.ranges {
				if id != d.RangeId && overlap(o, d) && o.GetEpoch().GetVersion() < d.GetEpoch().GetVersion() {
					delete(m.ranges, id)
					if err := b.Delete(keys.PlacementRangeKey(id), nil); err != nil {
						return nil, err
					}
				}
			}
			m.ranges[d.RangeId] = d
			if err := set(b, keys.PlacementRangeKey(d.RangeId), d); err != nil {
				return nil, err
			}
			changed++
		}
		if changed > 0 {
			m.reindex()
		}
		return changed, nil
	}
	return nil, fmt.Errorf("placement: unknown command %T", cmd.Cmd)
}

// snapshot encodes the whole state.
func (m *meta) snapshot() *rangekvpb.PlacementSnapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := &rangekvpb.PlacementSnapshot{Cluster: proto.CloneOf(m.cluster)}
	for _, st := range m.stores {
		s.Stores = append(s.Stores, st)
	}
	for _, d := range m.ranges {
		s.Ranges = append(s.Ranges, d)
	}
	return s
}

// restore replaces the whole state with a snapshot, in b.
func (m *meta) restore(b *pebble.Batch, s *rangekvpb.PlacementSnapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range [][]byte{keys.PlacementStorePrefix(), keys.PlacementRangePrefix()} {
		if err := b.DeleteRange(p, keys.PrefixEnd(p), nil); err != nil {
			return err
		}
	}
	m.cluster = s.Cluster
	m.stores = map[uint64]*rangekvpb.StoreDescriptor{}
	m.ranges = map[uint64]*rangekvpb.RangeDescriptor{}
	if err := set(b, keys.PlacementClusterKey(), m.cluster); err != nil {
		return err
	}
	for _, st := range s.Stores {
		m.stores[st.StoreId] = st
		if err := set(b, keys.PlacementStoreKey(st.StoreId), st); err != nil {
			return err
		}
	}
	for _, d := range s.Ranges {
		m.ranges[d.RangeId] = d
		if err := set(b, keys.PlacementRangeKey(d.RangeId), d); err != nil {
			return err
		}
	}
	m.reindex()
	return nil
}

// lookup returns the range holding key.
func (m *meta) lookup(key []byte) (*rangekvpb.RangeDescriptor, int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.byStart), func(i int) bool { return bytes.Compare(m.byStart[i].StartKey, key) > 0 }) - 1
	if i < 0 {
		return nil, -1
	}
	d := m.byStart[i]
	if len(d.EndKey) > 0 && bytes.Compare(key, d.EndKey) >= 0 {
		return nil, -1
	}
	return d, i
}

// following returns up to n descriptors after index i of byStart.
func (m *meta) following(i, n int) []*rangekvpb.RangeDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*rangekvpb.RangeDescriptor
	for j := i + 1; j < len(m.byStart) && len(out) < n; j++ {
		out = append(out, m.byStart[j])
	}
	return out
}

// scanRanges returns descriptors overlapping [start, end) (empty end: +inf).
func (m *meta) scanRanges(start, end []byte, limit int) []*rangekvpb.RangeDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.byStart), func(i int) bool { return bytes.Compare(m.byStart[i].StartKey, start) > 0 }) - 1
	if i < 0 {
		i = 0
	}
	var out []*rangekvpb.RangeDescriptor
	for ; i < len(m.byStart) && (limit <= 0 || len(out) < limit); i++ {
		d := m.byStart[i]
		if len(d.EndKey) > 0 && bytes.Compare(d.EndKey, start) <= 0 {
			continue
		}
		if len(end) > 0 && bytes.Compare(d.StartKey, end) >= 0 {
			break
		}
		out = append(out, d)
	}
	return out
}

func (m *meta) clusterRecord() *rangekvpb.PlacementClusterRecord {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return proto.CloneOf(m.cluster)
}

func (m *meta) store(id uint64) *rangekvpb.StoreDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.stores[id]
}

func (m *meta) allStores() []*rangekvpb.StoreDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*rangekvpb.StoreDescriptor, 0, len(m.stores))
	for _, s := range m.stores {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StoreId < out[j].StoreId })
	return out
}

func (m *meta) rangeByID(id uint64) *rangekvpb.RangeDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ranges[id]
}

func (m *meta) allRanges() []*rangekvpb.RangeDescriptor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]*rangekvpb.RangeDescriptor(nil), m.byStart...)
}
