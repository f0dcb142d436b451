package sim_test

import (
	"testing"
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/placement/schedule/sim"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBuildBalanced(t *testing.T) {
	for _, tc := range []struct{ stores, ranges int }{{3, 1}, {7, 100}, {6, 99}, {100, 1000}, {10, 7}} {
		c := sim.BuildBalanced(schedule.DefaultConfig(), start, time.Second, tc.stores, tc.ranges, 1)
		minR, maxR, minL, maxL := c.Spread()
		if maxR-minR > 1 || maxL-minL > 2 {
			t.Errorf("%+v: replicas %d..%d leaders %d..%d", tc, minR, maxR, minL, maxL)
		}
	}
}

// TestExecutorRefusesUnsafeSteps: the sim refuses what a store would
// refuse, and the operator is aborted by CheckEpoch rather than forced.
func TestExecutorRefusesUnsafeSteps(t *testing.T) {
	c := sim.BuildBalanced(schedule.DefaultConfig(), start, time.Second, 3, 1, 1)
	r, _ := c.Range(1)
	c.SetInFlight(&schedule.Operator{
		RangeID: 1, Epoch: r.Epoch(), Kind: schedule.KindRepairRemoveExtra,
		Steps:    []schedule.Step{schedule.RemoveReplica{StoreID: r.LeaderStoreID}},
		Deadline: start.Add(time.Hour),
	})
	rr, err := c.Round()
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Aborted) != 1 || len(rr.Applied) != 0 {
		t.Fatalf("removing the leader: %+v", rr)
	}
	if got, _ := c.Range(1); len(got.Desc.GetReplicas()) != 3 {
		t.Fatalf("leader removed: %v", got.Desc)
	}
	if why := c.Totals().AbortedBy; why[schedule.StaleStepConflict.String()] != 1 {
		t.Fatalf("aborted by %v", why)
	}
}

// TestDownStoreLeaderMoves: when a leader's store goes down, the sim elects
// another voter, so repair has a leader to work with.
func TestDownStoreLeaderMoves(t *testing.T) {
	cfg := schedule.DefaultConfig()
	c := sim.BuildBalanced(cfg, start, time.Minute, 4, 4, 1)
	if err := c.SetStoreState(1, schedule.StoreDown); err != nil {
		t.Fatal(err)
	}
	c.Advance(cfg.MaxStoreDownTime)
	res, err := c.Run(100)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged {
		t.Fatalf("%+v", res)
	}
	for _, sc := range c.Counts() {
		if sc.ID == 1 && sc.Replicas != 0 {
			t.Fatalf("down store still holds %d replicas", sc.Replicas)
		}
		if sc.ID != 1 && sc.Replicas != 4 { // 4 ranges × 3 replicas on 3 stores
			t.Fatalf("store %d holds %d replicas, want 4", sc.ID, sc.Replicas)
		}
	}
}
