// The cluster view: an immutable snapshot of stores, ranges and in-flight
// operators, with the per-store indexes the scheduler needs built once.

package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// StoreState is what placement knows of a store's liveness.
type StoreState int8

const (
	// StoreUp: the store heartbeats. Only Up stores receive replicas or
	// leadership.
	StoreUp StoreState = iota
	// StoreDown: heartbeats have been missing past the controller's grace
	// period since DownSince. Its replicas are replaced once the store has
	// been down for Config.MaxStoreDownTime.
	StoreDown
	// StoreRemoved: the store left the cluster for good (tombstoned). Its
	// replicas are replaced at once.
	StoreRemoved
)

func (s StoreState) String() string {
	switch s {
	case StoreUp:
		return "up"
	case StoreDown:
		return "down"
	case StoreRemoved:
		return "removed"
	}
	return fmt.Sprintf("StoreState(%d)", int8(s))
}

// StoreView is one store as placement last saw it.
type StoreView struct {
	ID      uint64
	Address string
	// Labels locate the store (see Config.LocationLabels). Not modified.
	Labels map[string]string
	State  StoreState
	// DownSince is when the store stopped heartbeating (its last heartbeat).
	// Required (non-zero) when State is StoreDown, ignored otherwise.
	DownSince time.Time
	// Draining: the store is moving its leaderships away (a restart or
	// an operator's drain). It receives no leadership; its replicas stay.
	Draining      bool
	CapacityBytes uint64
	UsedBytes     uint64
}

// RangeView is one range as its leader last reported it.
type RangeView struct {
	// Desc is the reported descriptor. Shared, never modified: whoever
	// changes a range makes a new descriptor.
	Desc *rangekvpb.RangeDescriptor
	// LeaderStoreID is the store of the reporting leader; 0 if unknown.
	LeaderStoreID uint64
	// ApproximateSizeBytes is the range's data size.
	ApproximateSizeBytes uint64
	// PendingStoreIDs are the stores whose replica of this range is lagging
	// (e.g. a learner still receiving its snapshot).
	PendingStoreIDs []uint64
}

// ID is the range ID (0 without a descriptor).
func (r RangeView) ID() uint64 { return r.Desc.GetRangeId() }

// Epoch is the reported epoch.
func (r RangeView) Epoch() Epoch { return EpochOf(r.Desc) }

// Replica returns the replica on store storeID, if any.
func (r RangeView) Replica(storeID uint64) (*rangekvpb.ReplicaDescriptor, bool) {
	for _, rep := range r.Desc.GetReplicas() {
		if rep.GetStoreId() == storeID {
			return rep, true
		}
	}
	return nil, false
}

// IsPending reports whether the replica on storeID is lagging.
func (r RangeView) IsPending(storeID uint64) bool {
	return slices.Contains(r.PendingStoreIDs, storeID)
}

// Epoch is a value copy of a rangekvpb.RangeEpoch.
type Epoch struct {
	ConfVer uint64
	Version uint64
}

// EpochOf returns d's epoch (zero for nil).
func EpochOf(d *rangekvpb.RangeDescriptor) Epoch {
	e := d.GetEpoch()
	return Epoch{ConfVer: e.GetConfVer(), Version: e.GetVersion()}
}

func (e Epoch) String() string { return fmt.Sprintf("c%d,v%d", e.ConfVer, e.Version) }

// StoreStats are derived from the view's ranges.
type StoreStats struct {
	// ReplicaCount counts replicas of any role on the store.
	ReplicaCount int
	// LeaderCount counts ranges whose reported leader is on the store.
	LeaderCount int
	// RangeBytes sums the approximate sizes of the ranges with a replica on
	// the store.
	RangeBytes uint64
}

// ClusterView is an immutable snapshot of the cluster. Build it with
// NewClusterView; it is safe for concurrent readers. It holds no clock:
// time is the now passed to Schedule.
type ClusterView struct {
	cfg    Config
	stores []StoreView // sorted by ID
	ranges []RangeView // sorted by ID
	// rangeIDs[i] is ranges[i].ID().
	rangeIDs []uint64

	// storeIdx maps store IDs to indexes into stores; storeDense does the
	// same as a slice (-1: absent) when IDs are small, for the hot loops.
	storeIdx   map[uint64]int32
	storeDense []int32

	// Per range: replica store indexes, flat; replicas of range i are
	// repStore[repStart[i]:repStart[i+1]] in descriptor order; -1 is a store
	// the view does not know (treated as removed).
	repStart []int32
	repStore []int32
	// leader[i] is the store index of range i's leader, -1 if unknown or not
	// a replica of the range.
	leader []int32
	// voters[i] counts range i's VOTER replicas; mixed[i] says it also has
	// replicas in other roles (learners, joint roles).
	voters []uint8
	mixed  []bool
	// inflight[i] is range i's in-flight operator or nil.
	inflight []*Operator

	// Per store.
	stats       []StoreStats
	storeRanges [][]int32 // range indexes with a replica on the store, ascending
	loc         [][MaxLocationLabels]int32
	levels      int
}

// NewClusterView validates and indexes a snapshot. The slices are copied;
// the descriptors, label maps and operators they point to are shared and
// must not be modified afterwards. Operators whose range is not in the view
// are ignored.
//
// Caller mistakes are errors: an invalid Config, a zero or duplicate store
// or range ID, a nil descriptor, two replicas of a range on one store, a
// Down store without DownSince, two in-flight operators for one range. A
// replica on a store the view does not list is not an error: it is treated
// as a replica on a removed store.
func NewClusterView(cfg Config, stores []StoreView, ranges []RangeView, inflight []*Operator) (*ClusterView, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &ClusterView{
		cfg:      cfg,
		stores:   slices.Clone(stores),
		ranges:   slices.Clone(ranges),
		storeIdx: make(map[uint64]int32, len(stores)),
		levels:   len(cfg.LocationLabels),
	}
	v.cfg.LocationLabels = slices.Clone(cfg.LocationLabels)
	slices.SortFunc(v.stores, func(a, b StoreView) int { return cmp.Compare(a.ID, b.ID) })
	for i, s := range v.stores {
		if s.ID == 0 {
			return nil, fmt.Errorf("schedule: store with ID 0")
		}
		if _, dup := v.storeIdx[s.ID]; dup {
			return nil, fmt.Errorf("schedule: store %d listed twice", s.ID)
		}
		if s.State == StoreDown && s.DownSince.IsZero() {
			return nil, fmt.Errorf("schedule: store %d is down without DownSince", s.ID)
		}
		v.storeIdx[s.ID] = int32(i)
	}
	if n := len(v.stores); n > 0 && v.stores[n-1].ID < uint64(64*n+1024) {
		v.storeDense = make([]int32, v.stores[n-1].ID+1)
		for i := range v.storeDense {
			v.storeDense[i] = -1
		}
		for i, s := range v.stores {
			v.storeDense[s.ID] = int32(i)
		}
	}
	for i, r := range v.ranges {
		if r.Desc == nil {
			return nil, fmt.Errorf("schedule: range view %d has no descriptor", i)
		}
	}
	v.rangeIDs = make([]uint64, len(v.ranges))
	for i, r := range v.ranges {
		v.rangeIDs[i] = r.ID()
	}
	if !slices.IsSorted(v.rangeIDs) {
		slices.SortFunc(v.ranges, func(a, b RangeView) int { return cmp.Compare(a.ID(), b.ID()) })
		for i, r := range v.ranges {
			v.rangeIDs[i] = r.ID()
		}
	}

	v.stats = make([]StoreStats, len(v.stores))
	v.leader = make([]int32, len(v.ranges))
	v.voters = make([]uint8, len(v.ranges))
	v.mixed = make([]bool, len(v.ranges))
	v.repStart = make([]int32, len(v.ranges)+1)
	v.repStore = make([]int32, 0, 3*len(v.ranges))
	for i, r := range v.ranges {
		id := v.rangeIDs[i]
		if id == 0 {
			return nil, fmt.Errorf("schedule: range with ID 0")
		}
		if i > 0 && v.rangeIDs[i-1] == id {
			return nil, fmt.Errorf("schedule: range %d listed twice", id)
		}
		v.repStart[i] = int32(len(v.repStore))
		v.leader[i] = -1
		reps := r.Desc.GetReplicas()
		if len(reps) > 255 {
			return nil, fmt.Errorf("schedule: range %d has %d replicas", id, len(reps))
		}
		for j, rep := range reps {
			for _, prev := range reps[:j] {
				if prev.GetStoreId() == rep.GetStoreId() {
					return nil, fmt.Errorf("schedule: range %d has two replicas on store %d", id, rep.GetStoreId())
				}
			}
			if rep.GetRole() == rangekvpb.ReplicaRole_VOTER {
				v.voters[i]++
			} else {
				v.mixed[i] = true
			}
			si, ok := v.storeIndex(rep.GetStoreId())
			if !ok {
				si = -1
			} else {
				st := &v.stats[si]
				st.ReplicaCount++
				st.RangeBytes += r.ApproximateSizeBytes
				if rep.GetStoreId() == r.LeaderStoreID {
					st.LeaderCount++
					v.leader[i] = si
				}
			}
			v.repStore = append(v.repStore, si)
		}
	}
	v.repStart[len(v.ranges)] = int32(len(v.repStore))

	v.storeRanges = make([][]int32, len(v.stores))
	for si := range v.stores {
		v.storeRanges[si] = make([]int32, 0, v.stats[si].ReplicaCount)
	}
	for ri := range v.ranges {
		for _, si := range v.replicaStores(int32(ri)) {
			if si >= 0 {
				v.storeRanges[si] = append(v.storeRanges[si], int32(ri))
			}
		}
	}

	v.inflight = make([]*Operator, len(v.ranges))
	for _, op := range inflight {
		if op == nil {
			continue
		}
		ri, ok := v.rangeIndex(op.RangeID)
		if !ok {
			continue
		}
		if v.inflight[ri] != nil {
			return nil, fmt.Errorf("schedule: two in-flight operators for range %d", op.RangeID)
		}
		v.inflight[ri] = op
	}

	// Locations: intern each prefix of the label values, so that two stores
	// share a level-i domain exactly when their first i+1 values are equal.
	v.loc = make([][MaxLocationLabels]int32, len(v.stores))
	if v.levels > 0 {
		intern := make(map[string]int32)
		var key strings.Builder
		for si, s := range v.stores {
			key.Reset()
			for lvl, name := range v.cfg.LocationLabels {
				key.WriteString(s.Labels[name])
				key.WriteByte(0)
				k := key.String()
				id, ok := intern[k]
				if !ok {
					id = int32(len(intern))
					intern[k] = id
				}
				v.loc[si][lvl] = id
			}
		}
	}
	return v, nil
}

// Config returns the view's configuration.
func (v *ClusterView) Config() Config { return v.cfg }

// Stores returns the stores sorted by ID. The caller must not modify it.
func (v *ClusterView) Stores() []StoreView { return v.stores }

// Ranges returns the ranges sorted by ID. The caller must not modify it.
func (v *ClusterView) Ranges() []RangeView { return v.ranges }

// Store returns the store with the given ID.
func (v *ClusterView) Store(id uint64) (StoreView, bool) {
	si, ok := v.storeIndex(id)
	if !ok {
		return StoreView{}, false
	}
	return v.stores[si], true
}

// Range returns the range with the given ID.
func (v *ClusterView) Range(id uint64) (RangeView, bool) {
	ri, ok := v.rangeIndex(id)
	if !ok {
		return RangeView{}, false
	}
	return v.ranges[ri], true
}

// InFlight returns the range's in-flight operator, or nil.
func (v *ClusterView) InFlight(rangeID uint64) *Operator {
	ri, ok := v.rangeIndex(rangeID)
	if !ok {
		return nil
	}
	return v.inflight[ri]
}

// StoreStats returns the counts derived from the view's ranges for a store
// (zero for an unknown store). In-flight operators are not counted.
func (v *ClusterView) StoreStats(id uint64) StoreStats {
	si, ok := v.storeIndex(id)
	if !ok {
		return StoreStats{}
	}
	return v.stats[si]
}

// storeIndex returns the index in v.stores of store id.
func (v *ClusterView) storeIndex(id uint64) (int32, bool) {
	if v.storeDense != nil {
		if id >= uint64(len(v.storeDense)) || v.storeDense[id] < 0 {
			return 0, false
		}
		return v.storeDense[id], true
	}
	si, ok := v.storeIdx[id]
	return si, ok
}

// rangeIndex returns the index in v.ranges of range id.
func (v *ClusterView) rangeIndex(id uint64) (int32, bool) {
	i, ok := slices.BinarySearch(v.rangeIDs, id)
	return int32(i), ok
}

func (v *ClusterView) replicaStores(ri int32) []int32 {
	return v.repStore[v.repStart[ri]:v.repStart[ri+1]]
}
