package store_test

// A split's new range reaches placement as soon as it has a leader, not at
// the store's next range heartbeat (issue 15: ascending splits took one
// heartbeat interval each).

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// TestConsecutiveSplitsDoNotWaitForRangeHeartbeat: with the stores' range
// heartbeats ten minutes apart, only the report a store sends when a
// split's right half elects its leader can tell placement about the new
// range. A split made on the store shows up in placement's routing with
// its leader, and then ten splits in ascending key order through
// placement's Split (the SDK's and `rangekv range split`'s path), each
// splitting the range the previous one created, all complete; at the end
// placement knows a leader for every range. The deadlines are failure
// conditions (without the report nothing could pass before ten minutes),
// not speed assertions.
func TestConsecutiveSplitsDoNotWaitForRangeHeartbeat(t *testing.T) {
	const interval = 10 * time.Minute
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{InMemory: true,
		// No scheduler: the test builds range 1's replicas itself, and
		// nothing but the splits changes the layout.
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour },
		Configure: func(_ int, cfg *store.Config) {
			cfg.RangeHeartbeatInterval = interval
			cfg.RangeHeartbeatRefresh = interval
		}})
	var lead *store.Store
	mrWaitFor(t, "range 1 to elect a leader", 30*time.Second, func() (bool, string) {
		id := leaderOn(c, 1)
		for _, s := range c.Stores {
			if s.StoreID() == id {
				lead = s
			}
		}
		return lead != nil, "no leader"
	})
	ctx := mrCtx(t, 2*time.Minute)
	// Three voters, made on the leader's store (placement would do it
	// through operator steps, which travel on the range heartbeats).
	for _, s := range c.Stores {
		if s == lead {
			continue
		}
		for _, ch := range []rangekvpb.ReplicaChangeType{rangekvpb.ReplicaChangeType_ADD_LEARNER, rangekvpb.ReplicaChangeType_PROMOTE_LEARNER} {
			if _, rerr, err := lead.ChangeReplicas(ctx, 1, ch, s.StoreID()); err != nil || rerr != nil {
				t.Fatalf("%v store %d: %v %v", ch, s.StoreID(), rerr, err)
			}
		}
	}

	// A split made on the store itself (as the size-based split queue
	// does): placement has heard of no range leader at all before it.
	if _, rerr, err := lead.Split(ctx, 1, []byte("k00"), 0); err != nil || rerr != nil {
		t.Fatalf("split at k00 on the store: %v %v", rerr, err)
	}
	adm, err := newRouter(t, c, nil).Admin()
	if err != nil {
		t.Fatal(err)
	}
	mrWaitFor(t, "placement to route k00 to the new range's leader", 30*time.Second, func() (bool, string) {
		ri, err := adm.RangeForKey(ctx, []byte("k00"))
		if err != nil {
			return false, err.Error()
		}
		return string(ri.Descriptor_.StartKey) == "k00" && ri.LeaderStoreId == lead.StoreID(),
			fmt.Sprintf("range %d [%q, %q) led by store %d", ri.Descriptor_.RangeId, ri.Descriptor_.StartKey, ri.Descriptor_.EndKey, ri.LeaderStoreId)
	})

	// Ascending: every split cuts the right half the previous one made.
	const splits = 10
	for i := 1; i <= splits; i++ {
		key := fmt.Sprintf("k%02d", i)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		left, right, err := adm.Split(sctx, []byte(key))
		cancel()
		if err != nil {
			t.Fatalf("split %d at %q (of the range split %d created): %v", i, key, i-1, err)
		}
		if string(left.EndKey) != key || string(right.StartKey) != key {
			t.Fatalf("split at %q: left [%q, %q), right [%q, %q)", key, left.StartKey, left.EndKey, right.StartKey, right.EndKey)
		}
	}
	mrWaitFor(t, "placement to know a leader for every range", 30*time.Second, func() (bool, string) {
		st, err := adm.ClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.RangeCount == splits+2 && len(st.Leaderless) == 0, fmt.Sprintf("%d ranges, leaderless %v", st.RangeCount, st.Leaderless)
	})
}
