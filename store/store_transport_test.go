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

// mrTransferLeader moves rangeID's leadership to store idx.
func mrTransferLeader(t testing.TB, c *testcluster.Cluster, rangeID uint64, idx int) {
	t.Helper()
	ctx := mrCtx(t, 20*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		lead := c.WaitLeader(rangeID)
		if lead == idx {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("range %d: leadership did not move to store %d (leader: store %d)", rangeID, idx+1, lead+1)
		}
		resp, err := c.Admin(lead).TransferLeader(ctx, &rangekvpb.TransferLeaderRequest{RangeId: rangeID, ToStoreId: uint64(idx + 1)})
		if err != nil {
			t.Fatalf("transfer range %d to store %d: %v", rangeID, idx+1, err)
		}
		if resp.Error != nil && resp.Error.NotLeader == nil {
			t.Fatalf("transfer range %d to store %d: %v", rangeID, idx+1, resp.Error)
		}
		// Give the transfer an election timeout or so before asking again.
		wait := time.Now().Add(time.Second)
		for time.Now().Before(wait) && c.Leader(rangeID) != idx {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// All Raft traffic between stores 1 and 2 is dropped (both directions)
// while ranges led by each of the three stores take writes: writes still
// commit through store 3, and once the partition heals every replica of
// every range converges to the same applied index and the same data.
func TestMultiraftTransportPartitionHeals(t *testing.T) {
	var partitioned atomic.Bool
	var dropped atomic.Int64
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(_, from, to uint64, _ string) bool {
			if partitioned.Load() && (from == 1 && to == 2 || from == 2 && to == 1) {
				dropped.Add(1)
				return true
			}
			return false
		}}
	}})
	c.WaitLeader(1)
	mrSplitDown(t, c, []string{"f", "m", "t"})
	descs := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 4, 10*time.Second)
	// Leaders on every store: [ ,f) on 1, [f,m) on 2, [m,t) on 3; [t, ) stays.
	byStart := map[string]*rangekvpb.RangeDescriptor{}
	for _, d := range descs {
		byStart[string(d.StartKey)] = d
	}
	mrTransferLeader(t, c, byStart[""].RangeId, 0)
	mrTransferLeader(t, c, byStart["f"].RangeId, 1)
	mrTransferLeader(t, c, byStart["m"].RangeId, 2)

	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	want := map[string]string{}
	put := func(k, v string) {
		t.Helper()
		if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	for _, p := range []string{"a", "g", "n", "u"} {
		put(p+"/before", "1")
	}
	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(descs), 10*time.Second)

	terms := map[uint64]uint64{}
	for _, d := range descs {
		terms[d.RangeId] = c.ReplicaStatus(c.WaitLeader(d.RangeId), d.RangeId).Term
	}
	partitioned.Store(true)
	for i := range 10 {
		for _, p := range []string{"a", "g", "n", "u"} {
			put(fmt.Sprintf("%s/during/%02d", p, i), fmt.Sprintf("d%d", i))
		}
	}
	if dropped.Load() == 0 {
		t.Fatal("the partition dropped no message")
	}
	// The range led by store 1 committed without store 2, and the one led
	// by store 2 without store 1.
	for _, lagging := range []struct {
		start    string
		follower int
	}{{"", 1}, {"f", 0}} {
		d := byStart[lagging.start]
		lead := c.Leader(d.RangeId)
		ls, fs := c.ReplicaStatus(lead, d.RangeId), c.ReplicaStatus(lagging.follower, d.RangeId)
		if ls == nil || fs == nil || fs.AppliedIndex >= ls.CommitIndex {
			t.Errorf("range %d: partitioned follower on store %d applied %d, leader on store %d committed %d; want the follower behind",
				d.RangeId, lagging.follower+1, fs.GetAppliedIndex(), lead+1, ls.GetCommitIndex())
		}
	}
	partitioned.Store(false)
	n := dropped.Load()

	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(descs), 15*time.Second)
	descs = mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 4, 10*time.Second)
	mrReplicasIdentical(t, c, mrStoreIdx(3), descs)
	// PreVote and CheckQuorum: the partition and its healing disrupted no
	// leader.
	for _, d := range descs {
		if st := c.ReplicaStatus(c.WaitLeader(d.RangeId), d.RangeId); st.Term != terms[d.RangeId] {
			t.Errorf("range %d: term %d after the partition healed, %d before", d.RangeId, st.Term, terms[d.RangeId])
		}
	}
	for k, v := range want {
		got, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s after healing: %q found=%v err=%v, want %q", k, got, found, err, v)
		}
	}
	t.Logf("dropped %d messages while partitioned", n)
}
