package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/testcluster"
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
