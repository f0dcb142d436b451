package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// CompactLog (behind 'rangekv range snapshot') truncates every replica's
// log up to the leader's applied index although the automatic policy would
// not (its threshold is far away); a replica added afterwards cannot catch
// up from the log and takes a snapshot, ending with the same data. A
// follower refuses with NotLeader naming the leader.
func TestCompactLogTruncatesAndNewReplicaCatchesUpBySnapshot(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{InMemory: true, Replicas: 3, Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.LogTruncateThreshold = 100000 // the policy never truncates here
		cfg.LogMaxEntries = 200000
	}})
	c.WaitLeader(rangeOne) // the writes below start once range 1 has a leader
	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	want := map[string]string{}
	for i := range 50 {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
		mustPut(t, cl, k, v)
		want[k] = v
	}
	lead := c.WaitLeader(rangeOne)
	before := c.ReplicaStatus(lead, rangeOne)
	if before.LastIndex < before.FirstIndex+50 {
		t.Fatalf("the log holds fewer than the 50 writes before CompactLog: %v", before)
	}

	follower := (lead + 1) % 3
	resp, err := c.Admin(follower).CompactLog(ctx, &rangekvpb.CompactLogRequest{RangeId: rangeOne})
	if err != nil {
		t.Fatal(err)
	}
	if nl := resp.GetError().GetNotLeader(); nl == nil || nl.LeaderStoreId != uint64(lead+1) {
		t.Fatalf("CompactLog on a follower: %v, want NotLeader naming store %d", resp.GetError(), lead+1)
	}

	resp, err = c.Admin(lead).CompactLog(ctx, &rangekvpb.CompactLogRequest{RangeId: rangeOne})
	if err != nil || resp.Error != nil {
		t.Fatalf("CompactLog on the leader: %v %v", resp, err)
	}
	idx := resp.TruncatedIndex
	if idx < before.AppliedIndex || resp.FirstIndexBefore != before.FirstIndex || resp.FirstIndexAfter != idx+1 || resp.LastIndexAfter < idx+1 {
		t.Fatalf("CompactLog answered %v; before it the leader had %v", resp, before)
	}
	for i := range 3 {
		c.WaitFor(fmt.Sprintf("store %d to truncate its log up to %d", i+1, idx), 10*time.Second, func() bool {
			st := c.ReplicaStatus(i, rangeOne)
			return st != nil && st.FirstIndex == idx+1
		})
	}

	applied := mrSum(mrMetrics(t, c.HTTPAddr(3)), "rangekv_snapshots_applied_total")
	if _, err := c.ChangeReplicas(ctx, rangeOne, rangekvpb.ReplicaChangeType_ADD_LEARNER, 4); err != nil {
		t.Fatalf("add a learner on store 4: %v", err)
	}
	c.WaitFor("store 4's new replica to catch up", 20*time.Second, func() bool {
		st := c.ReplicaStatus(3, rangeOne)
		return st != nil && st.Initialized && st.AppliedIndex >= idx
	})
	if st := c.ReplicaStatus(3, rangeOne); st.FirstIndex <= idx {
		t.Errorf("store 4's log starts at %d: it replayed entries the leader had truncated (up to %d)", st.FirstIndex, idx)
	}
	if n := mrSum(mrMetrics(t, c.HTTPAddr(3)), "rangekv_snapshots_applied_total"); n < applied+1 {
		t.Errorf("store 4 applied %v snapshots (%v before); it can only catch up by one", n, applied)
	}
	wantStaleValues(t, kvClient(t, c.Addrs[3]), "store 4 (added after the truncation)", want)
}
