// Table-driven tests of steps, operators (NextStep, CheckEpoch, Expired,
// WithReplicaID), Config.Validate and NewClusterView's checks.

package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	voter    = rangekvpb.ReplicaRole_VOTER
	learner  = rangekvpb.ReplicaRole_LEARNER
	incoming = rangekvpb.ReplicaRole_VOTER_INCOMING
	demoting = rangekvpb.ReplicaRole_VOTER_DEMOTING
)

// rep is a replica for rv: store, role (replica ID = store ID * 10).
type rep struct {
	store uint64
	role  rangekvpb.ReplicaRole
}

// rv builds a RangeView of range 1 at epoch (conf, ver) led by leader.
func rv(conf, ver, leader uint64, reps []rep, pending ...uint64) schedule.RangeView {
	d := &rangekvpb.RangeDescriptor{RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: conf, Version: ver}}
	for _, r := range reps {
		d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: r.store * 10, StoreId: r.store, Role: r.role})
	}
	return schedule.RangeView{Desc: d, LeaderStoreID: leader, PendingStoreIDs: pending}
}

func voters(ids ...uint64) []rep {
	out := make([]rep, len(ids))
	for i, id := range ids {
		out[i] = rep{id, voter}
	}
	return out
}

func TestStepDone(t *testing.T) {
	base := voters(1, 2, 3)
	withLearner := append(voters(1, 2, 3), rep{4, learner})
	for _, tc := range []struct {
		name      string
		step      schedule.Step
		r         schedule.RangeView
		done      bool
		conflicts bool
	}{
		{"add absent", schedule.AddLearner{StoreID: 4}, rv(1, 1, 1, base), false, false},
		{"add pending", schedule.AddLearner{StoreID: 4}, rv(2, 1, 1, withLearner, 4), false, false},
		{"add caught up", schedule.AddLearner{StoreID: 4}, rv(2, 1, 1, withLearner), true, false},
		{"add already voter (promoted)", schedule.AddLearner{StoreID: 4}, rv(3, 1, 1, voters(1, 2, 3, 4), 4), true, false},
		{"add right replica ID", schedule.AddLearner{StoreID: 4, ReplicaID: 40}, rv(2, 1, 1, withLearner), true, false},
		{"add other replica ID", schedule.AddLearner{StoreID: 4, ReplicaID: 41}, rv(2, 1, 1, withLearner), false, true},
		{"promote learner", schedule.PromoteLearner{StoreID: 4}, rv(2, 1, 1, withLearner), false, false},
		{"promote incoming", schedule.PromoteLearner{StoreID: 4}, rv(2, 1, 1, append(voters(1, 2, 3), rep{4, incoming})), false, false},
		{"promote done", schedule.PromoteLearner{StoreID: 4}, rv(3, 1, 1, voters(1, 2, 3, 4)), true, false},
		{"promote gone", schedule.PromoteLearner{StoreID: 4}, rv(1, 1, 1, base), false, true},
		{"remove present", schedule.RemoveReplica{StoreID: 3}, rv(1, 1, 1, base), false, false},
		{"remove leader", schedule.RemoveReplica{StoreID: 1}, rv(1, 1, 1, base), false, true},
		{"remove done", schedule.RemoveReplica{StoreID: 3}, rv(2, 1, 1, voters(1, 2)), true, false},
		{"transfer pending", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 2}, rv(1, 1, 1, base), false, false},
		{"transfer done", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 2}, rv(1, 1, 2, base), true, false},
		{"transfer elsewhere counts", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 2}, rv(1, 1, 3, base), true, false},
		{"transfer leader unknown", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 2}, rv(1, 1, 0, base), false, false},
		{"transfer to learner", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 4}, rv(2, 1, 1, withLearner), false, true},
		{"transfer to absent", schedule.TransferLeader{FromStoreID: 1, ToStoreID: 5}, rv(1, 1, 1, base), false, true},
		{"leave joint pending", schedule.LeaveJoint{Incoming: []uint64{4}, Demoting: []uint64{3}},
			rv(5, 1, 1, []rep{{1, voter}, {2, voter}, {3, demoting}, {4, incoming}}), false, false},
		{"leave joint done", schedule.LeaveJoint{Incoming: []uint64{4}, Demoting: []uint64{3}},
			rv(7, 1, 1, []rep{{1, voter}, {2, voter}, {3, learner}, {4, voter}}), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.step.Done(tc.r); got != tc.done {
				t.Errorf("%s Done = %t, want %t", tc.step, got, tc.done)
			}
			if got := tc.step.Conflicts(tc.r); got != tc.conflicts {
				t.Errorf("%s Conflicts = %t, want %t", tc.step, got, tc.conflicts)
			}
		})
	}
}

// replaceOp is the MULTIRAFT §6 replacement of s1 (the leader) by s4.
func replaceOp() *schedule.Operator {
	return &schedule.Operator{
		RangeID: 1, Epoch: schedule.Epoch{ConfVer: 1, Version: 1}, Kind: schedule.KindBalanceReplica,
		Steps: []schedule.Step{
			schedule.AddLearner{StoreID: 4},
			schedule.PromoteLearner{StoreID: 4},
			schedule.TransferLeader{FromStoreID: 1, ToStoreID: 2},
			schedule.RemoveReplica{StoreID: 1},
		},
	}
}

// TestNextStepProgression walks a replacement through the reports a leader
// would send and checks that the operator advances only on reports that
// show the previous step applied.
func TestNextStepProgression(t *testing.T) {
	op := replaceOp()
	for _, tc := range []struct {
		name string
		r    schedule.RangeView
		want string // next step, or "done"
	}{
		{"created", rv(1, 1, 1, voters(1, 2, 3)), "add-learner s4"},
		{"learner added, catching up", rv(2, 1, 1, append(voters(1, 2, 3), rep{4, learner}), 4), "add-learner s4"},
		{"learner caught up", rv(2, 1, 1, append(voters(1, 2, 3), rep{4, learner})), "promote s4"},
		{"joint entered", rv(3, 1, 1, append(voters(1, 2, 3), rep{4, incoming})), "promote s4"},
		{"promoted", rv(4, 1, 1, voters(1, 2, 3, 4)), "transfer-leader s1->s2"},
		{"promoted, new voter lagging", rv(4, 1, 1, voters(1, 2, 3, 4), 4), "transfer-leader s1->s2"},
		{"leader moved", rv(4, 1, 2, voters(1, 2, 3, 4)), "remove s1"},
		{"leader moved back: transfer again", rv(4, 1, 1, voters(1, 2, 3, 4)), "transfer-leader s1->s2"},
		{"removed", rv(5, 1, 2, voters(2, 3, 4)), "done"},
		{"removed, leader elsewhere", rv(5, 1, 3, voters(2, 3, 4)), "done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := op.CheckEpoch(tc.r); err != nil {
				t.Fatalf("CheckEpoch: %v", err)
			}
			step, done := op.NextStep(tc.r)
			got := "done"
			if !done {
				got = step.String()
			}
			if got != tc.want {
				t.Errorf("NextStep = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCheckEpoch(t *testing.T) {
	op := replaceOp()
	removeExtra := &schedule.Operator{
		RangeID: 1, Epoch: schedule.Epoch{ConfVer: 5, Version: 2}, Kind: schedule.KindRepairRemoveExtra,
		Steps: []schedule.Step{schedule.RemoveReplica{StoreID: 4}},
	}
	for _, tc := range []struct {
		name string
		op   *schedule.Operator
		r    schedule.RangeView
		want schedule.StaleReason // 0: no error
	}{
		{"same epoch", op, rv(1, 1, 1, voters(1, 2, 3)), 0},
		{"split before start", op, rv(1, 2, 1, voters(1, 2, 3)), schedule.StaleVersion},
		{"split midway", op, rv(4, 2, 1, voters(1, 2, 3, 4)), schedule.StaleVersion},
		{"conf_ver regressed", removeExtra, rv(4, 2, 1, voters(1, 2, 3, 4)), schedule.StaleEpochRegressed},
		{"someone else added a replica", op, rv(2, 1, 1, voters(1, 2, 3, 5)), schedule.StaleConfChange},
		{"learner added (explained)", op, rv(2, 1, 1, append(voters(1, 2, 3), rep{4, learner}), 4), 0},
		{"learner added and something else", op, rv(3, 1, 1, append(voters(1, 2, 5), rep{4, learner}), 4), schedule.StaleConfChange},
		{"joint entered (explained)", op, rv(3, 1, 1, append(voters(1, 2, 3), rep{4, incoming})), 0},
		{"joint entered, then extra change", op, rv(4, 1, 1, append(voters(1, 2, 3), rep{4, incoming})), schedule.StaleConfChange},
		{"promoted: enter + leave joint (explained)", op, rv(4, 1, 1, voters(1, 2, 3, 4)), 0},
		{"promoted, then extra change", op, rv(5, 1, 2, voters(1, 2, 3, 4)), schedule.StaleConfChange},
		{"promoted, then the new voter removed", op, rv(5, 1, 2, voters(1, 2, 3)), schedule.StaleConfChange},
		{"all done", op, rv(5, 1, 2, voters(2, 3, 4)), 0},
		{"remove: victim became leader", removeExtra, rv(5, 2, 4, voters(1, 2, 3, 4)), schedule.StaleStepConflict},
		{"remove: fine", removeExtra, rv(5, 2, 1, voters(1, 2, 3, 4)), 0},
		{"wrong range", &schedule.Operator{RangeID: 2, Epoch: schedule.Epoch{ConfVer: 1, Version: 1}}, rv(1, 1, 1, voters(1)), schedule.StaleWrongRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op.CheckEpoch(tc.r)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("CheckEpoch: %v", err)
				}
				return
			}
			var se *schedule.StaleOperatorError
			if !errors.As(err, &se) {
				t.Fatalf("CheckEpoch = %v, want a StaleOperatorError (%s)", err, tc.want)
			}
			if se.Reason != tc.want {
				t.Fatalf("reason = %s, want %s (%v)", se.Reason, tc.want, err)
			}
		})
	}
}

func TestOperatorHelpers(t *testing.T) {
	op := replaceOp()
	op.CreatedAt = time.Unix(100, 0)
	op.Deadline = op.CreatedAt.Add(time.Minute)
	if op.Expired(op.CreatedAt.Add(time.Minute)) || !op.Expired(op.CreatedAt.Add(time.Minute+1)) {
		t.Error("Expired: wrong around the deadline")
	}
	c := op.WithReplicaID(4, 77)
	if got := c.Steps[0].(schedule.AddLearner).ReplicaID; got != 77 {
		t.Errorf("WithReplicaID: copy has %d", got)
	}
	if got := op.Steps[0].(schedule.AddLearner).ReplicaID; got != 0 {
		t.Errorf("WithReplicaID modified the original: %d", got)
	}
	if got, want := op.Stores(), []uint64{4, 1, 2}; !equalU64(got, want) {
		t.Errorf("Stores = %v, want %v", got, want)
	}
	want := "r1 balance-replica (low) epoch=c1,v1: add-learner s4, promote s4, transfer-leader s1->s2, remove s1"
	if got := schedule.Describe(op); got != want {
		t.Errorf("Describe =\n%s\nwant\n%s", got, want)
	}
	if got := schedule.Describe(c); !strings.Contains(got, "add-learner s4 (replica 77)") {
		t.Errorf("Describe of the filled copy: %s", got)
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConfigValidate(t *testing.T) {
	if err := schedule.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		field string
		mut   func(*schedule.Config)
	}{
		{"ReplicationFactor", func(c *schedule.Config) { c.ReplicationFactor = 0 }},
		{"LocationLabels", func(c *schedule.Config) { c.LocationLabels = []string{"zone", "zone"} }},
		{"LocationLabels", func(c *schedule.Config) { c.LocationLabels = []string{""} }},
		{"LocationLabels", func(c *schedule.Config) { c.LocationLabels = make([]string, schedule.MaxLocationLabels+1) }},
		{"MaxStoreDownTime", func(c *schedule.Config) { c.MaxStoreDownTime = 0 }},
		{"MaxOperatorsPerStore", func(c *schedule.Config) { c.MaxOperatorsPerStore = 0 }},
		{"MaxSnapshotsPerStore", func(c *schedule.Config) { c.MaxSnapshotsPerStore = 0 }},
		{"MaxOperatorsPerRound", func(c *schedule.Config) { c.MaxOperatorsPerRound = 0 }},
		{"ReplicaBalanceMargin", func(c *schedule.Config) { c.ReplicaBalanceMargin = 0 }},
		{"LeaderBalanceTolerance", func(c *schedule.Config) { c.LeaderBalanceTolerance = 0 }},
		{"LowSpaceRatio", func(c *schedule.Config) { c.LowSpaceRatio = 1.5 }},
		{"OperatorTimeout", func(c *schedule.Config) { c.OperatorTimeout = -1 }},
	} {
		c := schedule.DefaultConfig()
		tc.mut(&c)
		before := c
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate = %v, want an error naming the field", tc.field, err)
		}
		if c.ReplicationFactor != before.ReplicationFactor || c.MaxStoreDownTime != before.MaxStoreDownTime {
			t.Errorf("%s: Validate changed the config", tc.field)
		}
	}
}

func TestNewClusterViewErrors(t *testing.T) {
	cfg := schedule.DefaultConfig()
	up := func(id uint64) schedule.StoreView { return schedule.StoreView{ID: id, State: schedule.StoreUp} }
	three := []schedule.StoreView{up(1), up(2), up(3)}
	r1 := rv(1, 1, 1, voters(1, 2, 3))
	for _, tc := range []struct {
		name   string
		stores []schedule.StoreView
		ranges []schedule.RangeView
		ops    []*schedule.Operator
		want   string
	}{
		{"store 0", []schedule.StoreView{up(0)}, nil, nil, "ID 0"},
		{"duplicate store", []schedule.StoreView{up(1), up(1)}, nil, nil, "store 1 listed twice"},
		{"down without time", []schedule.StoreView{{ID: 1, State: schedule.StoreDown}}, nil, nil, "DownSince"},
		{"nil descriptor", three, []schedule.RangeView{{}}, nil, "no descriptor"},
		{"duplicate range", three, []schedule.RangeView{r1, r1}, nil, "range 1 listed twice"},
		{"two replicas on a store", three, []schedule.RangeView{rv(1, 1, 1, voters(1, 1, 2))}, nil, "two replicas on store 1"},
		{"two operators", three, []schedule.RangeView{r1}, []*schedule.Operator{replaceOp(), replaceOp()}, "two in-flight operators"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schedule.NewClusterView(cfg, tc.stores, tc.ranges, tc.ops)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewClusterView = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := schedule.NewClusterView(schedule.Config{}, nil, nil, nil); err == nil {
		t.Error("zero Config accepted")
	}

	// A replica on a store the view does not know is a replica on a removed
	// store: replaced at once.
	v, err := schedule.NewClusterView(cfg, []schedule.StoreView{up(1), up(2), up(4)}, []schedule.RangeView{r1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	op := schedule.CheckRange(v, 1, time.Unix(0, 0))
	want := "r1 repair-replace-down (urgent) epoch=c1,v1: add-learner s4, promote s4, remove s3"
	if got := schedule.Describe(op); got != want {
		t.Errorf("CheckRange = %s, want %s", got, want)
	}
	if st := v.StoreStats(1); st.ReplicaCount != 1 || st.LeaderCount != 1 {
		t.Errorf("StoreStats(1) = %+v", st)
	}
}

// TestViewIsImmutable: changing the caller's slices after NewClusterView
// changes nothing the scheduler sees.
func TestViewIsImmutable(t *testing.T) {
	stores := []schedule.StoreView{{ID: 2, State: schedule.StoreUp}, {ID: 1, State: schedule.StoreUp}}
	ranges := []schedule.RangeView{rv(1, 1, 1, voters(1))}
	v, err := schedule.NewClusterView(schedule.DefaultConfig(), stores, ranges, nil)
	if err != nil {
		t.Fatal(err)
	}
	stores[0].State = schedule.StoreRemoved
	ranges[0] = schedule.RangeView{}
	if s, _ := v.Store(2); s.State != schedule.StoreUp {
		t.Error("store state changed through the caller's slice")
	}
	if r, ok := v.Range(1); !ok || r.LeaderStoreID != 1 {
		t.Error("range changed through the caller's slice")
	}
	if got := v.Stores(); got[0].ID != 1 || got[1].ID != 2 {
		t.Errorf("stores not sorted by ID: %v", got)
	}
}
