package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/store"
)

// A store that was down while range 1 split twice and both halves took
// enough writes to truncate their logs past it comes back: it cannot
// replay the split from the log and must take snapshots of each range
// (the left one first, then the right ones that overlapped its stale
// copy), ending with the same descriptors and data as the others.
func TestMultiraftStoreDownDuringSplitsCatchesUpBySnapshots(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.LogTruncateThreshold = 16
		cfg.LogMaxEntries = 32
	}})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := mrCtx(t, 90*time.Second)
	want := map[string]string{}
	put := func(k, v string) {
		t.Helper()
		if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	for _, p := range []string{"a", "n", "u"} {
		put(p+"/before", "1")
	}
	mrWaitConverged(t, c, mrStoreIdx(3), []uint64{1}, 10*time.Second)
	lastSeen := c.ReplicaStatus(2, 1).LastIndex
	c.StopStore(2)

	mrSplitDown(t, c, []string{"m", "t"})
	descs := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3, 2), 3, 10*time.Second)
	// Write to every range until range 1's log no longer holds what store 3
	// would need (truncation waits for a check after the dead follower
	// stopped counting as recently active).
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; ; round++ {
		for i := range 20 {
			for _, p := range []string{"a", "n", "u"} {
				put(fmt.Sprintf("%s/%03d", p, round*20+i), fmt.Sprintf("v%d", i))
			}
		}
		lead := c.Leader(1)
		if st := c.ReplicaStatus(lead, 1); lead >= 0 && st != nil && st.FirstIndex > lastSeen+1 {
			t.Logf("range 1's log starts at %d after %d rounds of writes (store 3 had up to %d)", st.FirstIndex, round+1, lastSeen)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("range 1's log was never truncated past store 3's last index %d: %v", lastSeen, c.ReplicaStatus(lead, 1))
		}
	}

	c.RestartStore(2)
	descs = mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), len(descs), 30*time.Second)
	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(descs), 30*time.Second)
	mrReplicasIdentical(t, c, mrStoreIdx(3), descs)
	if n := mrSum(mrMetrics(t, c.HTTPAddr(2)), "rangekv_snapshots_applied_total"); n < 1 {
		t.Errorf("store 3 applied %v snapshots; with truncated logs it needs at least one", n)
	}
	for k, v := range want {
		got, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s: %q found=%v err=%v, want %q", k, got, found, err, v)
		}
	}
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil || len(kvs) != len(want) {
		t.Fatalf("scan: %d pairs, err %v; want %d", len(kvs), err, len(want))
	}
}

// A quiescent range whose follower's store is down takes a write: the
// leader quiesces again with the dead store's follower recorded as lagging;
// when that store restarts, the range wakes, the follower catches up, and
// the range quiesces again.
func TestMultiraftQuiescedLeaderCatchesUpRestartedStore(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	lead := c.WaitLeader(1)
	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	if err := cl.Put(ctx, []byte("k1"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	mrWaitQuiescent(t, c, mrStoreIdx(3), 10*time.Second)
	down := (lead + 1) % 3
	c.StopStore(down)
	if err := cl.Put(ctx, []byte("k2"), []byte("v2")); err != nil {
		t.Fatalf("put with store %d down: %v", down+1, err)
	}
	live := mrStoreIdx(3, down)
	took := mrWaitQuiescent(t, c, live, 10*time.Second)
	t.Logf("quiescent again with store %d down after %s", down+1, took)
	lead = c.WaitLeader(1)
	commit := c.ReplicaStatus(lead, 1).CommitIndex

	c.RestartStore(down)
	restarted := time.Now()
	c.WaitFor(fmt.Sprintf("restarted store %d to apply the write it missed", down+1), 10*time.Second, func() bool {
		st := c.ReplicaStatus(down, 1)
		return st != nil && st.AppliedIndex >= commit
	})
	t.Logf("store %d caught up %s after its restart", down+1, time.Since(restarted))
	mrWaitConverged(t, c, mrStoreIdx(3), []uint64{1}, 10*time.Second)
	mrWaitQuiescent(t, c, mrStoreIdx(3), 10*time.Second)
	got, err := mrStaleScan(ctx, mrKV(t, c.Addrs[down]), c.Descriptors(down)[0])
	if err != nil || got["k1"] != "v1" || got["k2"] != "v2" {
		t.Fatalf("restarted store %d holds %v (err %v), want k1=v1 k2=v2", down+1, got, err)
	}
}

// With a follower's store down (store liveness says so), a leader that
// was quiescent when the store died still keeps its log within
// LogMaxEntries under a burst of writes: the dead follower no longer holds
// truncation back. Raft's RecentActive for that follower is stale (true)
// because a quiescent leader runs no CheckQuorum, so the truncation policy
// must ask store liveness. The election timeout is long (40 ticks) so that
// no CheckQuorum refreshes RecentActive during the burst.
func TestMultiraftLogBoundedWhileFollowerStoreDown(t *testing.T) {
	const maxEntries, threshold = 16, 8
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.ElectionTimeout = time.Second
		cfg.ProposalTimeout = 5 * time.Second
		cfg.LogTruncateThreshold = threshold
		cfg.LogMaxEntries = maxEntries
	}})
	c.WaitLeader(1)
	_, right := mrSplit(t, c, "m")
	// Range 1 led by store 1, the right range by store 3 (its re-election
	// elsewhere shows when the others' liveness declared store 3 down).
	mrTransferLeader(t, c, right.RangeId, 2)
	mrTransferLeader(t, c, 1, 0)
	mrWaitQuiescent(t, c, mrStoreIdx(3), 10*time.Second)

	c.StopStore(2)
	c.WaitFor("the right range to elect a leader once store 3 is declared down", 20*time.Second, func() bool {
		return c.Leader(right.RangeId) >= 0
	})
	if lead := c.Leader(1); lead != 0 {
		t.Fatalf("range 1's leader moved to store %d", lead+1)
	}

	cl := c.Client()
	ctx := mrCtx(t, 30*time.Second)
	w := mrStartWriters(t, cl, 8, func(g, seq int) string { return fmt.Sprintf("a/%d/%03d", g, seq) })
	w.waitMore(c, 40, 20*time.Second)
	w.halt()
	if err := cl.Put(ctx, []byte("a/last"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	mrWaitFor(t, fmt.Sprintf("range 1's log to stay within %d entries (+%d, the truncation threshold)", maxEntries, threshold), 3*time.Second, func() (bool, string) {
		s := c.ReplicaStatus(0, 1)
		return s.LastIndex-s.FirstIndex+1 <= maxEntries+threshold,
			fmt.Sprintf("first index %d, last index %d, progress %v (the dead store's follower must not hold truncation back)", s.FirstIndex, s.LastIndex, s.Progress)
	})
}
