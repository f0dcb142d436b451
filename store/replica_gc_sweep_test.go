// Replica GC of quiesced replicas: a follower removed from its range while
// it was quiesced and cut off never hears of it, and knows a leader, so it
// is not suspect; the periodic pass's sweep of quiesced replicas finds it.

package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// The simulation's seed 22032 (6 stores): a quiesced follower was removed
// from its range while it heard nothing, and stayed for good ("range 12 is
// initialized on 4 stores"): replica GC checked only replicas that know
// no leader or never campaign. Here range 1's follower on a store that
// does not lead it quiesces, its messages are then cut, it is removed,
// and replica GC must remove it.
func TestReplicaGCRemovesQuiescedFollowerRemovedWhileCut(t *testing.T) {
	var cut atomic.Uint64 // store ID whose range 1 messages are dropped
	c := testcluster.Start(t, 3, testcluster.Options{Replicas: 3, InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.ReplicaGCInterval = gcSuspectInterval
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(rangeID, from, to uint64, _ string) bool {
			v := cut.Load()
			return rangeID == 1 && v != 0 && (to == v || from == v)
		}}
	}})
	lead := c.WaitLeader(1)
	ctx := mrCtx(t, 60*time.Second)
	if err := c.Client().Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	victim := (lead + 1) % 3 // an index of a store that does not lead
	victimID := uint64(victim + 1)
	c.WaitFor("range 1 to quiesce on the follower", 20*time.Second, func() bool {
		st := c.ReplicaStatus(victim, 1)
		return st != nil && st.GetQuiescent() && st.LeaderReplicaId != 0
	})
	cut.Store(victimID)
	if resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, victimID); err != nil || resp.Error != nil {
		t.Fatalf("remove store %d's replica: %v %v", victimID, err, resp.GetError())
	}
	mrWaitFor(t, "the removed quiesced follower to be GC'd", gcSuspectDeadline, func() (bool, string) {
		st := c.ReplicaStatus(victim, 1)
		if st == nil {
			return true, ""
		}
		return false, fmt.Sprintf("store %d still holds replica %d of range 1 (quiescent %v, leader %d)", victimID, st.ReplicaId, st.GetQuiescent(), st.LeaderReplicaId)
	})
}
