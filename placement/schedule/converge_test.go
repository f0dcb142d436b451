// Convergence tests: Schedule iterated with the sim as the applier, from a
// fourth store joining and from random broken clusters, checked against
// the invariants of a repaired and balanced cluster.

package schedule_test

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/placement/schedule/sim"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// TestConvergeAddFourthStore: a balanced 3-store cluster gains a fourth
// store; rounds run until no operator is created or in flight; then replica
// and leader counts are within one and two more Schedule calls propose
// nothing.
func TestConvergeAddFourthStore(t *testing.T) {
	for _, n := range []int{1, 10, 99, 300} {
		t.Run(fmt.Sprintf("ranges=%d", n), func(t *testing.T) {
			c := sim.BuildBalanced(schedule.DefaultConfig(), t0, roundInterval, 3, n, 1<<20)
			c.AddStore(schedule.StoreView{ID: 4, State: schedule.StoreUp})
			res, err := c.Run(10 * n)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Converged || res.Aborted != 0 {
				t.Fatalf("run: %+v", res)
			}
			minR, maxR, minL, maxL := c.Spread()
			t.Logf("%d ranges: %d rounds, %d operators; replicas %d..%d, leaders %d..%d", n, res.Rounds, res.Created, minR, maxR, minL, maxL)
			if maxR-minR > 1 || maxL-minL > 1 {
				t.Errorf("not balanced: replicas %d..%d leaders %d..%d\n%s", minR, maxR, minL, maxL, describeStores(c))
			}
			// Lower bound: the new store needs floor(3n/4) replicas, each
			// one move; leader transfers come on top.
			if moves := c.Totals().ByKind[schedule.KindBalanceReplica]; moves > 3*n/4+1 {
				t.Errorf("%d replica moves for %d ranges: some replica moved more than needed", moves, n)
			}
			assertQuiet(t, c)
		})
	}
}

// assertQuiet checks that two Schedule calls on the settled cluster
// propose nothing (no thrashing).
func assertQuiet(t *testing.T, c *sim.Cluster) {
	t.Helper()
	for i := 0; i < 2; i++ {
		v, err := c.View()
		if err != nil {
			t.Fatal(err)
		}
		if ops := schedule.Schedule(v, c.Now().Add(time.Duration(i)*time.Hour)); len(ops) > 0 {
			t.Fatalf("settled cluster, round %d, still proposes:\n%s", i, schedule.DescribeAll(ops))
		}
	}
}

// TestConvergeRandom builds random broken clusters (missing and extra
// voters, leftover learners, joint configurations, dead and down stores,
// zones) and checks that, with the sim applying every operator:
//   - the run converges, and no operator aborts (the sim executes steps
//     exactly as the executor contract says, so every epoch change is
//     explained);
//   - every range ends with ReplicationFactor voters and nothing else, all
//     on Up stores, led by one of them;
//   - replicas are spread over min(factor, zones) zones;
//   - without zones, Up stores' replica counts are within one;
//   - Schedule then proposes nothing, twice.
func TestConvergeRandom(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := int64(0); seed < int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		c, zones := randomCluster(rng)
		res, err := c.Run(2000)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !res.Converged || res.Aborted != 0 {
			t.Fatalf("seed %d: run %+v (aborted by %v)\n%s", seed, res, c.Totals().AbortedBy, describeStores(c))
		}
		checkSettled(t, seed, c, zones)
		assertQuiet(t, c)
	}
}

func randomCluster(rng *rand.Rand) (*sim.Cluster, int) {
	cfg := schedule.DefaultConfig()
	cfg.ReplicationFactor = []int{1, 3, 3, 3, 5}[rng.Intn(5)]
	cfg.MaxSnapshotsPerStore = 1 + rng.Intn(4)
	cfg.MaxOperatorsPerStore = 1 + rng.Intn(8)
	zones := 0
	if rng.Intn(2) == 0 {
		zones = 2 + rng.Intn(3)
		cfg.LocationLabels = []string{"zone", "host"}
	}
	c := sim.New(cfg, t0, roundInterval)
	nUp := cfg.ReplicationFactor + rng.Intn(6)
	if zones > 0 && nUp < zones {
		nUp = zones
	}
	nDead := rng.Intn(3)
	var upIDs, allIDs []uint64
	for id := uint64(1); id <= uint64(nUp+nDead); id++ {
		s := schedule.StoreView{ID: id, State: schedule.StoreUp}
		if zones > 0 {
			// Every zone gets stores: the first nUp stores cycle through them.
			s.Labels = map[string]string{"zone": fmt.Sprintf("z%d", id%uint64(zones)), "host": fmt.Sprintf("h%d", id)}
		}
		if id > uint64(nUp) {
			if rng.Intn(2) == 0 {
				s.State = schedule.StoreRemoved
			} else {
				s.State, s.DownSince = schedule.StoreDown, t0.Add(-time.Hour)
			}
		} else {
			upIDs = append(upIDs, id)
		}
		allIDs = append(allIDs, id)
		c.AddStore(s)
	}
	nRanges := 1 + rng.Intn(60)
	for id := uint64(1); id <= uint64(nRanges); id++ {
		// A live quorum of voters with a live leader, plus random extras:
		// voters on dead stores, learners (some pending), joint roles.
		perm := rng.Perm(len(upIDs))
		nv := 1 + rng.Intn(cfg.ReplicationFactor+2)
		nv = min(nv, len(upIDs))
		d := &rangekvpb.RangeDescriptor{RangeId: id, Epoch: &rangekvpb.RangeEpoch{ConfVer: uint64(1 + rng.Intn(5)), Version: 1}}
		used := map[uint64]bool{}
		add := func(store uint64, role rangekvpb.ReplicaRole) {
			if used[store] {
				return
			}
			used[store] = true
			d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(len(d.Replicas) + 1), StoreId: store, Role: role})
		}
		for _, i := range perm[:nv] {
			add(upIDs[i], rangekvpb.ReplicaRole_VOTER)
		}
		deadVoter := nDead > 0 && rng.Intn(3) == 0 && nv >= 2
		if deadVoter {
			add(allIDs[nUp+rng.Intn(nDead)], rangekvpb.ReplicaRole_VOTER)
		}
		var pending []uint64
		if rng.Intn(4) == 0 {
			s := allIDs[rng.Intn(len(allIDs))]
			// A stuck learner only where other stores can take the range.
			if !used[s] && zones == 0 && nUp > cfg.ReplicationFactor && rng.Intn(2) == 0 {
				pending = append(pending, s) // stays pending (a stuck learner)
			}
			add(s, rangekvpb.ReplicaRole_LEARNER)
		}
		// A joint configuration left behind (both halves with a live quorum).
		if !deadVoter && rng.Intn(8) == 0 && nv >= 2 {
			d.Replicas[1].Role = rangekvpb.ReplicaRole_VOTER_DEMOTING
			add(upIDs[rng.Intn(len(upIDs))], rangekvpb.ReplicaRole_VOTER_INCOMING)
		}
		d.NextReplicaId = uint64(len(d.Replicas) + 1)
		rv := schedule.RangeView{Desc: d, LeaderStoreID: d.Replicas[0].StoreId, ApproximateSizeBytes: uint64(1 + rng.Intn(100)), PendingStoreIDs: pending}
		if err := c.SetRange(rv); err != nil {
			panic(err)
		}
	}
	return c, zones
}

func checkSettled(t *testing.T, seed int64, c *sim.Cluster, zones int) {
	t.Helper()
	v, err := c.View()
	if err != nil {
		t.Fatal(err)
	}
	cfg := v.Config()
	for _, r := range v.Ranges() {
		reps := r.Desc.GetReplicas()
		if len(reps) != cfg.ReplicationFactor {
			t.Fatalf("seed %d: %s", seed, describeRange(r))
		}
		zoneSet := map[string]bool{}
		leaderOK := false
		for _, rep := range reps {
			s, ok := v.Store(rep.GetStoreId())
			if !ok || s.State != schedule.StoreUp || rep.GetRole() != rangekvpb.ReplicaRole_VOTER || r.IsPending(rep.GetStoreId()) {
				t.Fatalf("seed %d: unhealthy replica: %s", seed, describeRange(r))
			}
			zoneSet[s.Labels["zone"]] = true
			leaderOK = leaderOK || rep.GetStoreId() == r.LeaderStoreID
		}
		if !leaderOK {
			t.Fatalf("seed %d: leader not a voter: %s", seed, describeRange(r))
		}
		if zones > 0 && len(zoneSet) != min(zones, cfg.ReplicationFactor) {
			t.Fatalf("seed %d: %d zones, want %d: %s", seed, len(zoneSet), min(zones, cfg.ReplicationFactor), describeRange(r))
		}
	}
	if zones == 0 {
		if minR, maxR, _, _ := c.Spread(); maxR-minR > cfg.ReplicaBalanceMargin {
			t.Fatalf("seed %d: replicas %d..%d\n%s", seed, minR, maxR, describeStores(c))
		}
	}
	// Nothing left in flight.
	if ops := c.InFlight(); len(ops) > 0 {
		t.Fatalf("seed %d: in flight after convergence: %v", seed, ops)
	}
}
