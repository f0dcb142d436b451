// Heartbeat-derived cluster state on the leader (never persisted): store
// stats and liveness, range leaders, sizes and pending replicas.

package placement

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type storeLive struct {
	stats         *rangekvpb.StoreStats
	lastHeartbeat time.Time
}

type rangeLive struct {
	leaderStore uint64
	size, keys  uint64
	pending     []uint64
	down        []uint64
	term        uint64
	at          time.Time
}

type clusterState struct {
	mu     sync.Mutex
	since  time.Time // when this member became leader
	stores map[uint64]*storeLive
	ranges map[uint64]*rangeLive
	// reported: stores that sent range heartbeats to this leader.
	reported map[uint64]bool
	// leaderSeen is closed, and replaced, whenever a range heartbeat
	// changes a range's leader (wakes waitLeader).
	leaderSeen chan struct{}
}

func newClusterState(now time.Time) *clusterState {
	return &clusterState{since: now, stores: map[uint64]*storeLive{}, ranges: map[uint64]*rangeLive{}, reported: map[uint64]bool{},
		leaderSeen: make(chan struct{})}
}

// firstReport reports whether this is the store's first range heartbeat
// call to this leader (and records it).
func (c *clusterState) firstReport(storeID uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reported[storeID] {
		return false
	}
	c.reported[storeID] = true
	return true
}

func (c *clusterState) storeHeartbeat(st *rangekvpb.StoreStats, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stores[st.StoreId] = &storeLive{stats: proto.CloneOf(st), lastHeartbeat: now}
}

// rangeHeartbeat records a heartbeat unless an older term's leader sends
// it after a newer one did.
func (c *clusterState) rangeHeartbeat(h *rangekvpb.RangeHeartbeat, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := h.Descriptor_.GetRangeId()
	old, ok := c.ranges[id]
	if ok && old.term > h.Term {
		return
	}
	c.ranges[id] = &rangeLive{leaderStore: h.LeaderStoreId, size: h.ApproximateSize, keys: h.ApproximateKeys,
		pending: h.PendingReplicas, down: h.DownReplicas, term: h.Term, at: now}
	if !ok || old.leaderStore != h.LeaderStoreId {
		close(c.leaderSeen)
		c.leaderSeen = make(chan struct{})
	}
}

// waitLeader returns the store leading rangeID as range heartbeats report
// it, waiting for one until ctx ends (then 0). A range a split just
// created has no leader known until its leader's store reports it, which
// it does as soon as the new range elects one.
func (c *clusterState) waitLeader(ctx context.Context, rangeID uint64) uint64 {
	for {
		c.mu.Lock()
		r, ok := c.ranges[rangeID]
		seen := c.leaderSeen
		c.mu.Unlock()
		if ok && r.leaderStore != 0 {
			return r.leaderStore
		}
		select {
		case <-ctx.Done():
			return 0
		case <-seen:
		}
	}
}

// storeState: down when no heartbeat for grace (counting from when this
// member became leader for stores never heard from).
// storeState also returns when the store went down and its last heartbeat
// (zero when none reached this leader).
func (c *clusterState) storeState(id uint64, now time.Time, grace time.Duration) (rangekvpb.StoreState, time.Time, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from, last := c.since, time.Time{}
	if s, ok := c.stores[id]; ok {
		from, last = s.lastHeartbeat, s.lastHeartbeat
	}
	if now.Sub(from) > grace {
		return rangekvpb.StoreState_STORE_DOWN, from.Add(grace), last
	}
	return rangekvpb.StoreState_STORE_UP, time.Time{}, last
}

func (c *clusterState) stats(id uint64) *rangekvpb.StoreStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[id]; ok {
		return s.stats
	}
	return nil
}

func (c *clusterState) leaderOf(rangeID uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.ranges[rangeID]; ok {
		return r.leaderStore
	}
	return 0
}

func (c *clusterState) rangeInfo(rangeID uint64) (rangeLive, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.ranges[rangeID]
	if !ok {
		return rangeLive{}, false
	}
	return *r, true
}
