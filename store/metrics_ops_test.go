package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/store"
)

// The operator metrics the dashboard (deploy/grafana) reads: elections
// count the campaigns a store's replicas start, and the log gauges follow
// the untruncated Raft log that ListRanges reports.
func TestElectionAndLogMetrics(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	old := c.WaitLeader(rangeOne)
	if n := metricValue(t, c.HTTPAddr(old), "rangekv_raft_elections_total"); n < 1 {
		t.Fatalf("leader store %d: rangekv_raft_elections_total = %v, want >= 1 (it won an election)", old+1, n)
	}

	cl := c.Client()
	for i := range 20 {
		mustPut(t, cl, fmt.Sprintf("k%02d", i), "v")
	}
	c.WaitFor("the log gauges to match the leader's untruncated log", 10*time.Second, func() bool {
		st := replicaStatus(t, c, old)
		want := float64(st.LastIndex - st.FirstIndex + 1)
		return want >= 20 &&
			metricValue(t, c.HTTPAddr(old), "rangekv_raft_log_entries") == want &&
			metricValue(t, c.HTTPAddr(old), "rangekv_raft_log_entries_max") == want
	})

	before := map[int]float64{}
	for i := range 3 {
		if i != old {
			before[i] = metricValue(t, c.HTTPAddr(i), "rangekv_raft_elections_total")
		}
	}
	c.StopStore(old)
	lead := c.WaitLeader(rangeOne)
	if got := metricValue(t, c.HTTPAddr(lead), "rangekv_raft_elections_total"); got <= before[lead] {
		t.Fatalf("new leader store %d: rangekv_raft_elections_total = %v, was %v before it was elected", lead+1, got, before[lead])
	}
}

// Writes that reach a leader together share log entries, and each still
// gets its own outcome: every put is acknowledged and readable, and the
// leader proposed fewer entries than puts.
func TestConcurrentWritesShareEntries(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	entriesNow := func() float64 { // on every store: leadership may move
		n := 0.0
		for i := range 3 {
			n += metricValue(t, c.HTTPAddr(i), "rangekv_raft_proposal_entries_total")
		}
		return n
	}
	const writers, each = 64, 10
	want := map[string]string{}
	for g := range writers {
		for i := range each {
			want[fmt.Sprintf("w%02d/%02d", g, i)] = fmt.Sprintf("v%d.%d", g, i)
		}
	}
	before := entriesNow()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%02d/%02d", g, i)
				if err := cl.Put(opCtx(t), []byte(k), []byte(want[k])); err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := entriesNow() - before
	if entries < 1 || entries >= writers*each {
		t.Fatalf("%d puts from %d concurrent writers took %v entries; want at least 1 and fewer than the puts", writers*each, writers, entries)
	}
	t.Logf("%d puts in %v entries", writers*each, entries)
	wantValues(t, cl, want)
	wantReplicasIdentical(t, c)
}
