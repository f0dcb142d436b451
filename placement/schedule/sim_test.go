// Simulation at scale: one Schedule round over 100 stores and 100,000
// ranges (benchmark), and the rounds it takes to fill 10 new stores.

package schedule_test

import (
	"testing"
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/placement/schedule/sim"
)

const (
	simStores = 100
	simRanges = 100_000
)

func bigCluster(tb testing.TB, extraStores int) *sim.Cluster {
	tb.Helper()
	c := sim.BuildBalanced(schedule.DefaultConfig(), t0, roundInterval, simStores, simRanges, 64<<20)
	for i := 1; i <= extraStores; i++ {
		c.AddStore(schedule.StoreView{ID: uint64(simStores + i), State: schedule.StoreUp})
	}
	return c
}

// BenchmarkScheduleRound measures one Schedule call over 100 stores and
// 100,000 ranges of 3 replicas: on a balanced cluster (the steady state:
// every range is checked, next to nothing to do), right after 10 empty stores
// joined (the busiest balancing round), and right after a store holding
// 3,000 replicas was removed (the busiest repair round). The ClusterView is built outside
// the timer; BenchmarkNewClusterView measures that.
func BenchmarkScheduleRound(b *testing.B) {
	for _, bc := range []struct {
		name  string
		extra int
		dead  bool
	}{{"balanced", 0, false}, {"10-new-stores", 10, false}, {"1-store-removed", 0, true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := bigCluster(b, bc.extra)
			if bc.dead {
				if err := c.SetStoreState(1, schedule.StoreRemoved); err != nil {
					b.Fatal(err)
				}
			}
			v, err := c.View()
			if err != nil {
				b.Fatal(err)
			}
			now := t0.Add(time.Minute)
			b.ReportAllocs()
			b.ResetTimer()
			var ops int
			for i := 0; i < b.N; i++ {
				ops = len(schedule.Schedule(v, now))
			}
			b.ReportMetric(float64(ops), "ops/round")
		})
	}
}

// BenchmarkNewClusterView measures building the view of 100 stores and
// 100,000 ranges (done once per round by the caller).
func BenchmarkNewClusterView(b *testing.B) {
	c := bigCluster(b, 0)
	v, err := c.View()
	if err != nil {
		b.Fatal(err)
	}
	stores, ranges := v.Stores(), v.Ranges()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := schedule.NewClusterView(v.Config(), stores, ranges, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSimulateAddTenStores starts balanced at 100 stores and 100,000
// ranges, adds 10 empty stores and runs rounds (each step completes in the
// next round; a learner needs a round to catch up) until no operator is
// created or in flight. It logs rounds, operators and the final spread,
// and checks that replica counts end within one and leader counts within
// two (a leader transfer needs a voter of the same range on a store below
// the tolerance; with replicas placed, the last leader off by one may have
// no such range, and a two-hop chain would take a neutral step, which the
// no-thrashing rule forbids).
func TestSimulateAddTenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s: skipped under -short")
	}
	c := bigCluster(t, 10)
	start := time.Now()
	var schedTime time.Duration
	var rounds, maxOps int
	for rounds = 1; rounds <= 5000; rounds++ {
		t0 := time.Now()
		rr, err := c.Round()
		schedTime += time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		maxOps = max(maxOps, len(rr.Created))
		if len(rr.Created) == 0 && len(c.InFlight()) == 0 {
			break
		}
	}
	tot := c.Totals()
	minR, maxR, minL, maxL := c.Spread()
	t.Logf("added 10 stores to 100 stores / 100000 ranges: %d rounds, %d operators (%d replica moves, %d leader transfers, max %d per round), %d aborted",
		rounds, tot.Created, tot.ByKind[schedule.KindBalanceReplica], tot.ByKind[schedule.KindBalanceLeader], maxOps, tot.Aborted)
	t.Logf("final replicas per Up store %d..%d, leaders %d..%d; wall %v (%.1f ms/round incl. view and sim)",
		minR, maxR, minL, maxL, time.Since(start).Round(time.Millisecond), float64(schedTime.Milliseconds())/float64(rounds))
	if rounds > 5000 || tot.Aborted != 0 {
		t.Fatalf("did not converge cleanly: rounds=%d aborted=%d", rounds, tot.Aborted)
	}
	if maxR-minR > 1 || maxL-minL > 2 {
		t.Errorf("not balanced: replicas %d..%d, leaders %d..%d", minR, maxR, minL, maxL)
	}
	// Each new store needs about 300000/110 replicas; every move fills one.
	if need := 10 * (3 * simRanges / (simStores + 10)); tot.ByKind[schedule.KindBalanceReplica] > need+10 {
		t.Errorf("%d replica moves, at most ~%d needed", tot.ByKind[schedule.KindBalanceReplica], need)
	}
}
