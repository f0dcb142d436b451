package driver_test

import (
	"fmt"
	"testing"

	"github.com/rangekv/rangekv/rangeraft/driver"
)

// TestTruncatorDecide: when a decision is taken (CheckEntries applied
// entries, or any with force) and what it decides (never past a follower
// that holds the log back, until the log is too long and the follower is
// not live; a held-back long log is decided again on the next forced call).
func TestTruncatorDecide(t *testing.T) {
	c := newCluster(t, 3, 1)
	c.elect(1)
	c.setCut(1, 3, true) // node 3 stays at the leader's first entry
	for i := range 10 {
		c.propose(1, 1, fmt.Sprintf("p%d", i), nil)
	}
	c.stabilize()
	g := c.nodes[1].groups[1]
	applied := g.rr.AppliedIndex()
	if applied < driver.InitIndex+11 {
		t.Fatalf("leader applied %d", applied)
	}
	var tr driver.Truncator
	tr.Applied(10)
	live := func(id uint64) bool { return id != 3 }

	p := driver.TruncationPolicy{ThresholdEntries: 4, MaxEntries: 100, CheckEntries: 20}
	if _, _, ok := tr.Decide(p, g.rr, g.log, false, nil); ok {
		t.Fatal("decided before CheckEntries applied entries")
	}
	// Forced: decided now, but node 3 (match at the leader's first entry,
	// the log not too long) holds it back; the long log is kept for the
	// next forced decision.
	if _, _, ok := tr.Decide(p, g.rr, g.log, true, live); ok {
		t.Fatal("truncated past a follower while the log is not too long")
	}
	p.MaxEntries = 5
	idx, term, ok := tr.Decide(p, g.rr, g.log, true, live)
	if !ok || idx != applied || term != g.rr.BasicStatus().GetTerm() {
		t.Fatalf("Decide = (%d, %d, %v), want (%d, %d, true): a long log no longer waits for a follower that is down",
			idx, term, ok, applied, g.rr.BasicStatus().GetTerm())
	}
	// Nothing applied since: no decision, even forced.
	if _, _, ok := tr.Decide(p, g.rr, g.log, true, live); ok {
		t.Fatal("decided again without applied entries")
	}
	tr.Applied(1)
	if _, _, ok := tr.Decide(driver.TruncationPolicy{}, g.rr, g.log, true, live); ok {
		t.Fatal("a policy without a threshold truncated")
	}
}
