package placement

// Tests of the operator controller against injected heartbeats: no Raft,
// no network. The harness writes reported descriptors into placement's
// metadata as RangeHeartbeats does (newer ones only) and then runs the
// same operatorSteps the RPC runs, so what a test sees is what a range
// leader would be sent.

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type opHarness struct {
	t   *testing.T
	s   *Server
	db  *pebble.DB
	now time.Time
}

// newOpHarness: a placement leader that knows stores 1..stores (all up)
// and no range but the bootstrap one.
func newOpHarness(t *testing.T, stores uint64) *opHarness {
	h := &opHarness{t: t, db: memDB(t), now: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	cfg := Defaults()
	cfg.Replicas = 3
	s := &Server{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), reg: reg, now: func() time.Time { return h.now }}
	s.metrics = newMetrics(reg)
	s.group = &group{s: s, meta: newMeta()}
	s.resetLeaderState(true)
	h.s = s
	h.apply(bootstrapCmd(0xc1, 1))
	for id := uint64(2); id <= stores; id++ {
		h.apply(putStoreCmd(id, "127.0.0.1:1"))
	}
	for id := uint64(1); id <= stores; id++ {
		s.cluster().storeHeartbeat(&rangekvpb.StoreStats{StoreId: id, Capacity: 1 << 30}, h.now)
	}
	return h
}

func (h *opHarness) apply(cmd *rangekvpb.PlacementCommand) {
	h.t.Helper()
	if _, err := applyCmd(h.t, h.db, h.s.group.meta, cmd); err != nil {
		h.t.Fatal(err)
	}
}

// heartbeat reports d led by store leader, as RangeHeartbeats handles it,
// and returns the steps sent back to the leader.
func (h *opHarness) heartbeat(d *rangekvpb.RangeDescriptor, leader uint64) []*rangekvpb.OperatorStep {
	h.t.Helper()
	h.now = h.now.Add(time.Second)
	hb := &rangekvpb.RangeHeartbeat{Descriptor_: d, LeaderStoreId: leader, Term: 7}
	h.s.cluster().rangeHeartbeat(hb, h.now)
	if old := h.s.group.meta.rangeByID(d.RangeId); old == nil || newer(d, old) {
		h.apply(putRangesCmd(d))
	}
	return h.s.operatorSteps(&rangekvpb.RangeHeartbeatsRequest{StoreId: leader, Ranges: []*rangekvpb.RangeHeartbeat{hb}}, h.now)
}

// metric returns the value of the counter name whose label values are
// labels (in label-name order); 0 when absent.
func (h *opHarness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.s.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// rangeAt builds range 1 at conf_ver with the given replicas (store, role).
func rangeAt(confVer uint64, reps ...*rangekvpb.ReplicaDescriptor) *rangekvpb.RangeDescriptor {
	d := &rangekvpb.RangeDescriptor{RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: confVer, Version: 1}, NextReplicaId: 5}
	for _, r := range reps {
		d.Replicas = append(d.Replicas, proto.CloneOf(r))
	}
	return d
}

func rep(id, store uint64, role rangekvpb.ReplicaRole) *rangekvpb.ReplicaDescriptor {
	return &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: store, Role: role}
}

func describeSteps(steps []*rangekvpb.OperatorStep) string {
	var b strings.Builder
	for i, st := range steps {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s at conf_ver %d, version %d", opStep{st.Type, st.StoreId}, st.Epoch.GetConfVer(), st.Epoch.GetVersion())
	}
	if b.Len() == 0 {
		return "no step"
	}
	return b.String()
}

// wantStep checks that exactly one step was sent: typ on store at conf_ver.
func wantStep(t *testing.T, what string, steps []*rangekvpb.OperatorStep, typ rangekvpb.OperatorStepType, store, confVer uint64) {
	t.Helper()
	if len(steps) != 1 || steps[0].Type != typ || steps[0].StoreId != store || steps[0].Epoch.GetConfVer() != confVer || steps[0].Epoch.GetVersion() != 1 {
		t.Fatalf("%s: sent %s; want %s at conf_ver %d, version 1", what, describeSteps(steps), opStep{typ, store}, confVer)
	}
}

// Issue 15 item 8: an operator planned at conf_ver 3 (add a learner on
// store 4, promote it, remove store 1) whose new replica another change
// removes after the promotion. The operator's steps explain conf_ver 6;
// at 7 it must be aborted, not go on to "remove store 1", which would leave
// the range with two replicas. Every step is stamped with the planned epoch
// plus its earlier steps' conf_ver (a promotion is two entries: enter and
// leave joint), so a leader at any other epoch refuses it.
func TestOperatorAbortedOnUnexplainedConfChange(t *testing.T) {
	h := newOpHarness(t, 4)
	voter, learner := rangekvpb.ReplicaRole_VOTER, rangekvpb.ReplicaRole_LEARNER
	d3 := rangeAt(3, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter))
	if steps := h.heartbeat(d3, 2); len(steps) != 0 {
		t.Fatalf("steps before any operator: %s", describeSteps(steps))
	}
	info, err := h.s.ops().addMove(1, 1, 4, h.now)
	if err != nil {
		t.Fatalf("move s1 -> s4: %v", err)
	}

	wantStep(t, "planned at conf_ver 3", h.heartbeat(d3, 2), rangekvpb.OperatorStepType_STEP_ADD_LEARNER, 4, 3)
	d4 := rangeAt(4, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, learner))
	wantStep(t, "learner added", h.heartbeat(d4, 2), rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER, 4, 4)
	d6 := rangeAt(6, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, voter))
	wantStep(t, "learner promoted", h.heartbeat(d6, 2), rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, 1, 6)

	// Another change (not one of the operator's steps) removes the new
	// replica on store 4.
	d7 := rangeAt(7, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter))
	if steps := h.heartbeat(d7, 2); len(steps) != 0 {
		t.Fatalf("after another change removed store 4's replica (conf_ver 7, the operator explains 6), placement sent %s; "+
			"removing store 1 now leaves range 1 with 2 replicas", describeSteps(steps))
	}
	got := h.s.ops().get(info.Id)
	if got.GetState() != "aborted" || !strings.Contains(got.GetReason(), "unexpected membership change") {
		t.Fatalf("operator after the unexplained change: state %q reason %q; want aborted for an unexpected membership change", got.GetState(), got.GetReason())
	}
	if n := h.metric("rangekv_placement_operators_total", "aborted", "move-replica"); n != 1 { // labels: result, type
		t.Fatalf("rangekv_placement_operators_total{type=move-replica,result=aborted} = %v, want 1", n)
	}
	if h.s.ops().busy(1) {
		t.Fatal("range 1 still has an operator")
	}
	t.Logf("aborted: %s", got.GetReason())
}

// The same operator, finished undisturbed: each step's stamp is the planned
// epoch plus the conf_ver its earlier steps add, and the operator finishes
// when the last step shows done.
func TestOperatorStepEpochsFollowThePlan(t *testing.T) {
	h := newOpHarness(t, 4)
	voter, learner := rangekvpb.ReplicaRole_VOTER, rangekvpb.ReplicaRole_LEARNER
	d3 := rangeAt(3, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter))
	h.heartbeat(d3, 1)
	info, err := h.s.ops().addMove(1, 1, 4, h.now)
	if err != nil {
		t.Fatalf("move s1 -> s4: %v", err)
	}
	// Store 1 leads: the plan moves leadership off it before removing it.
	wantStep(t, "planned at conf_ver 3", h.heartbeat(d3, 1), rangekvpb.OperatorStepType_STEP_ADD_LEARNER, 4, 3)
	d4 := rangeAt(4, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, learner))
	wantStep(t, "learner added", h.heartbeat(d4, 1), rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER, 4, 4)
	// The joint entry applied, the leave-joint not yet: the promotion is
	// half done (explained), and still stamped with the epoch it started
	// from, which the leader (now at 5) refuses rather than run it twice.
	d5 := rangeAt(5, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, rangekvpb.ReplicaRole_VOTER_INCOMING))
	wantStep(t, "joint configuration entered", h.heartbeat(d5, 1), rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER, 4, 4)
	d6 := rangeAt(6, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, voter))
	wantStep(t, "learner promoted", h.heartbeat(d6, 1), rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER, 4, 6)
	wantStep(t, "leadership moved", h.heartbeat(d6, 4), rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, 1, 6)
	d7 := rangeAt(7, rep(2, 2, voter), rep(3, 3, voter), rep(4, 4, voter))
	if steps := h.heartbeat(d7, 4); len(steps) != 0 {
		t.Fatalf("after the last step: sent %s", describeSteps(steps))
	}
	if got := h.s.ops().get(info.Id); got.GetState() != "finished" {
		t.Fatalf("operator: state %q reason %q; want finished", got.GetState(), got.GetReason())
	}
}

// An operator is admitted only at the exact epoch it was planned from, and
// never on a joint range (whose leader leaves the joint configuration by
// itself, a conf_ver change no plan explains).
func TestOperatorAdmittedOnlyAtItsPlannedEpoch(t *testing.T) {
	h := newOpHarness(t, 4)
	voter, incoming := rangekvpb.ReplicaRole_VOTER, rangekvpb.ReplicaRole_VOTER_INCOMING
	h.heartbeat(rangeAt(3, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, voter)), 1)
	steps := []opStep{{rangekvpb.OperatorStepType_STEP_ADD_LEARNER, 4}}
	_, err := h.s.ops().add(1, "test", &rangekvpb.RangeEpoch{ConfVer: 2, Version: 1}, steps, h.now)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("operator planned at conf_ver 2 on a range at 3: err %v, want FailedPrecondition", err)
	}
	h.heartbeat(rangeAt(4, rep(1, 1, voter), rep(2, 2, voter), rep(3, 3, incoming)), 1)
	if _, err := h.s.ops().addMove(1, 2, 4, h.now); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("move on a joint range: err %v, want FailedPrecondition", err)
	}
	if h.s.ops().busy(1) {
		t.Fatal("a refused operator runs")
	}
}
