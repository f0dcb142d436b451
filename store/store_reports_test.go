// Range reports: a replica that catches up is reported when it does, not
// at the next refresh (simulation seed 11781: a leftover learner caught
// up after the faults healed and placement promoted it a minute later).

package store_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// TestCaughtUpLearnerReportedBeforeRefresh: range 1 has two voters and
// more than 100 applied entries. Placement adds a learner on a third
// store, and while every Raft message to that store is dropped, range 1's
// leader reports the new descriptor to placement with the learner pending
// (it has nothing) and placement's operator times out. Placement
// promotes a leftover learner only once a report says it caught up, and
// the refresh is ten minutes: once the messages flow and the learner
// catches up, only a report sent because its progress changed can get
// range 1 its third voter within the deadline (a failure condition, not a
// speed assertion).
func TestCaughtUpLearnerReportedBeforeRefresh(t *testing.T) {
	var hold atomic.Bool
	var known [2]atomic.Uint64 // the first two stores' IDs, once known
	hold.Store(true)
	c := testcluster.StartPD(t, 2, testcluster.PDOptions{InMemory: true,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.OperatorTimeout = 2 * time.Second },
		Configure: func(_ int, cfg *store.Config) {
			cfg.RangeHeartbeatRefresh = 10 * time.Minute
			cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(rangeID, _, toStore uint64, _ string) bool {
				return hold.Load() && known[1].Load() != 0 && toStore != known[0].Load() && toStore != known[1].Load()
			}}
		}})
	known[0].Store(c.Stores[0].StoreID())
	known[1].Store(c.Stores[1].StoreID())
	voters := func() int {
		n := 0
		for _, r := range c.Descriptors()[1].GetReplicas() {
			if r.GetRole() == rangekvpb.ReplicaRole_VOTER {
				n++
			}
		}
		return n
	}
	c.WaitFor("range 1 to have two voters", 30*time.Second, func() bool { return voters() == 2 })
	cl := newRouter(t, c, nil)
	ctx := mrCtx(t, time.Minute)
	for i := range 150 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%03d", i)), []byte("v")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	newStore := c.Stores[c.AddStore()].StoreID()
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	// The operator adding the learner gives up while the learner has
	// nothing (as seed 11781's was aborted by a split): it leaves the
	// learner behind, pending in placement's view, and nothing else that
	// would make the leader report range 1 again.
	mrWaitFor(t, "placement's operator adding the learner to time out", 30*time.Second, func() (bool, string) {
		ops, err := adm.OperatorHistory(ctx, 1, 0)
		if err != nil {
			return false, err.Error()
		}
		for _, op := range ops {
			if op.GetKind() == "repair-add" && op.GetState() == "timeout" &&
				slices.Contains(op.GetSteps(), fmt.Sprintf("add learner on store %d", newStore)) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("operators %v", ops)
	})
	hold.Store(false)
	mrWaitFor(t, "range 1 to have three voters", 20*time.Second, func() (bool, string) {
		return voters() == 3, fmt.Sprintf("range 1: %v", c.Descriptors()[1].GetReplicas())
	})
}
