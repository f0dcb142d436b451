package store_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// leadersOn counts the ranges store i leads.
func leadersOn(c *testcluster.Cluster, i int) int {
	n := 0
	for _, r := range c.Stores[i].Status().Replicas {
		if r.RaftState == "StateLeader" {
			n++
		}
	}
	return n
}

func readyzCode(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A drained store hands every leadership to the other stores while writers
// keep going (no write fails, none is even ambiguous: nothing stopped),
// answers /readyz with 503, refuses to take leadership back while
// draining, and takes it again once the drain is undone.
func TestDrainMovesLeadershipsAwayUnderWrites(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(i int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	c.WaitLeader(1)
	mrSplitDown(t, c, []string{"k6", "k3"})
	descs := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 3, 15*time.Second)
	adm0 := c.Admin(0)
	// Store 1 (index 0) leads every range.
	for _, d := range descs {
		lead := c.WaitLeader(d.RangeId)
		if lead == 0 {
			continue
		}
		resp, err := c.Admin(lead).TransferLeader(c.Ctx(5*time.Second), &rangekvpb.TransferLeaderRequest{RangeId: d.RangeId, ToStoreId: 1})
		if err != nil || resp.Error != nil {
			t.Fatalf("transfer range %d to store 1: %v %v", d.RangeId, err, resp.GetError())
		}
		c.WaitFor(fmt.Sprintf("store 1 leads range %d", d.RangeId), 10*time.Second, func() bool { return c.Leader(d.RangeId) == 0 })
	}
	if got := readyzCode(t, c.HTTPAddr(0)); got != http.StatusOK {
		t.Fatalf("readyz before the drain: %d, want 200", got)
	}

	cl := c.Client()
	w := mrStartWriters(t, cl, 4, func(g, seq int) string { return fmt.Sprintf("k%d/g%d/%06d", seq%10, g, seq) })
	w.waitMore(c, 50, 30*time.Second)

	resp, err := adm0.Drain(c.Ctx(5*time.Second), &rangekvpb.DrainRequest{})
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if !resp.Draining || resp.LeadersAtStart != uint32(len(descs)) {
		t.Fatalf("drain answered %v, want draining with %d leaders at start", resp, len(descs))
	}
	c.WaitFor("store 1 leads nothing", 15*time.Second, func() bool {
		r, err := adm0.Drain(c.Ctx(5*time.Second), &rangekvpb.DrainRequest{})
		return err == nil && r.Leaders == 0
	})
	if got := readyzCode(t, c.HTTPAddr(0)); got != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %d, want 503", got)
	}
	if v := metricValue(t, c.HTTPAddr(0), "rangekv_store_draining"); v != 1 {
		t.Errorf("rangekv_store_draining = %v while draining, want 1", v)
	}
	w.waitMore(c, 50, 30*time.Second)

	// A transfer to the draining store does not take.
	lead := c.WaitLeader(1)
	if _, err := c.Admin(lead).TransferLeader(c.Ctx(5*time.Second), &rangekvpb.TransferLeaderRequest{RangeId: 1, ToStoreId: 1}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	w.waitMore(c, 100, 30*time.Second)
	if n := leadersOn(c, 0); n != 0 {
		t.Errorf("draining store 1 leads %d ranges after a transfer to it, want 0", n)
	}

	// Undone: it takes leadership again.
	if r, err := adm0.Drain(c.Ctx(5*time.Second), &rangekvpb.DrainRequest{Undo: true}); err != nil || r.Draining {
		t.Fatalf("undo drain: %v %v", r, err)
	}
	if got := readyzCode(t, c.HTTPAddr(0)); got != http.StatusOK {
		t.Errorf("readyz after undo: %d, want 200", got)
	}
	c.WaitFor("store 1 leads range 1 again", 15*time.Second, func() bool {
		lead := c.Leader(1)
		if lead == 0 {
			return true
		}
		if lead >= 0 {
			_, _ = c.Admin(lead).TransferLeader(c.Ctx(5*time.Second), &rangekvpb.TransferLeaderRequest{RangeId: 1, ToStoreId: 1})
		}
		return false
	})
	w.waitMore(c, 50, 30*time.Second)
	w.halt()
	if len(w.failures) > 0 || len(w.ambiguous) > 0 {
		t.Errorf("writes failed during the drain: %d ambiguous, failures %v", len(w.ambiguous), w.failures)
	}
	wantValues(t, cl, w.ackedKV)
}

// Drain (the SIGTERM path) waits for the leaderships to move and reports
// what is left; with no other live voter it gives up at the deadline.
func TestDrainWaitsAndTimesOut(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	lead := c.WaitLeader(1)
	waitCountsLeader(c, lead)
	left, atStart := c.Stores[lead].Drain(c.Ctx(10 * time.Second))
	if left != 0 || atStart != 1 {
		t.Fatalf("Drain = %d left of %d, want 0 of 1", left, atStart)
	}
	if c.Leader(1) == lead {
		t.Fatalf("store %d still leads range 1 after its drain", lead+1)
	}

	// A single-store range cannot move: Drain returns at the deadline.
	solo := testcluster.Start(t, 1, testcluster.Options{InMemory: true})
	solo.WaitLeader(1)
	waitCountsLeader(solo, 0)
	start := time.Now()
	left, atStart = solo.Stores[0].Drain(solo.Ctx(300 * time.Millisecond))
	if left != 1 || atStart != 1 {
		t.Fatalf("single store Drain = %d left of %d, want 1 of 1", left, atStart)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Drain took %s with a 300ms deadline", d)
	}
}

// When every store drains at once (a whole cluster stopped together), no
// peer takes a leadership: Drain stops waiting after a few election
// timeouts without progress instead of holding the store until its
// deadline.
func TestDrainGivesUpWhenNoPeerTakesLeaderships(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	lead := c.WaitLeader(1)
	waitCountsLeader(c, lead)
	for i, st := range c.Stores {
		if i != lead {
			st.StartDrain()
		}
	}
	start := time.Now()
	left, atStart := c.Stores[lead].Drain(c.Ctx(60 * time.Second))
	if left != 1 || atStart != 1 {
		t.Fatalf("Drain = %d left of %d, want 1 of 1 (every peer refuses leadership)", left, atStart)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Drain took %s: it waited for its deadline, not for progress", d)
	}
	if c.Leader(1) != lead {
		t.Fatalf("range 1 left store %d although every peer is draining", lead+1)
	}
}

// waitCountsLeader waits until store i counts the leadership WaitLeader
// saw: raft's status turns leader a Ready before the store's own count
// (which a drain starts from) does.
func waitCountsLeader(c *testcluster.Cluster, i int) {
	c.WaitFor(fmt.Sprintf("store %d to count its leadership", i+1), 10*time.Second, func() bool {
		_, _, n := c.Stores[i].DrainStatus()
		return n >= 1
	})
}
