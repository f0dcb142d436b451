package store_test

// Placement's operator steps on a range leader (issue 15 item 8): a step
// carries the epoch placement planned it for and runs only at it.

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// followers returns the stores (1-based IDs) of range 1's voters other
// than the leader at index lead.
func opFollowers(d *rangekvpb.RangeDescriptor, lead int) []uint64 {
	var out []uint64
	for _, r := range d.Replicas {
		if r.StoreId != uint64(lead+1) {
			out = append(out, r.StoreId)
		}
	}
	return out
}

// A step stamped with any epoch but the range's is refused with
// EpochNotMatch (naming the current descriptor) before anything is
// proposed: the leader's log does not grow and the descriptor stays. The
// same step at the range's epoch runs.
func TestOperatorStepAtStaleEpochRefusedBeforeProposing(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Replicas: 3, InMemory: true})
	ctx := mrCtx(t, 60*time.Second)
	d := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 1, 10*time.Second)[0]
	lead := c.WaitLeader(1)
	c.WaitFor("the leader to apply its whole log", 10*time.Second, func() bool {
		st := c.ReplicaStatus(lead, 1)
		return st != nil && st.AppliedIndex == st.LastIndex
	})
	before := c.ReplicaStatus(lead, 1)
	victim := opFollowers(d, lead)[0]
	e := d.Epoch
	for _, tc := range []struct {
		typ   rangekvpb.OperatorStepType
		store uint64
		epoch *rangekvpb.RangeEpoch
	}{
		{rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, victim, &rangekvpb.RangeEpoch{ConfVer: e.ConfVer - 1, Version: e.Version}},
		{rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, victim, &rangekvpb.RangeEpoch{ConfVer: e.ConfVer + 1, Version: e.Version}},
		{rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, victim, &rangekvpb.RangeEpoch{ConfVer: e.ConfVer, Version: e.Version + 1}},
		{rangekvpb.OperatorStepType_STEP_ADD_LEARNER, 4, &rangekvpb.RangeEpoch{ConfVer: e.ConfVer - 1, Version: e.Version}},
	} {
		what := fmt.Sprintf("%v store %d at conf_ver %d version %d (range at %d, %d)", tc.typ, tc.store, tc.epoch.ConfVer, tc.epoch.Version, e.ConfVer, e.Version)
		rerr, err := store.ExecuteOperatorStepForTest(ctx, c.Stores[lead], &rangekvpb.OperatorStep{RangeId: 1, Epoch: tc.epoch, Type: tc.typ, StoreId: tc.store, OperatorId: 9})
		if err != nil || rerr.GetEpochNotMatch() == nil {
			t.Fatalf("%s: range error %v err %v; want EpochNotMatch", what, rerr, err)
		}
		if cur := rerr.EpochNotMatch.GetCurrent(); len(cur) != 1 || !proto.Equal(cur[0], d) {
			t.Fatalf("%s: EpochNotMatch names %v; want the current descriptor %v", what, cur, d)
		}
	}
	after := c.ReplicaStatus(lead, 1)
	if after.LastIndex != before.LastIndex || !proto.Equal(after.Descriptor_, d) {
		t.Fatalf("refused steps: last index %d -> %d, descriptor %s -> %s; want nothing proposed", before.LastIndex, after.LastIndex, mrRoles(d), mrRoles(after.Descriptor_))
	}

	rerr, err := store.ExecuteOperatorStepForTest(ctx, c.Stores[lead], &rangekvpb.OperatorStep{RangeId: 1, Epoch: e, Type: rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, StoreId: victim, OperatorId: 9})
	if err != nil || rerr != nil {
		t.Fatalf("remove store %d at the range's epoch: range error %v err %v", victim, rerr, err)
	}
	if d2 := c.Descriptors(lead)[0]; mrReplicaOn(d2, victim) != nil || d2.Epoch.ConfVer != e.ConfVer+1 {
		t.Fatalf("after the step at the range's epoch: %s conf_ver %d; want store %d removed at conf_ver %d", mrRoles(d2), d2.Epoch.ConfVer, victim, e.ConfVer+1)
	}
}

// The range changes between the executor's epoch check and its proposal:
// another change removes one follower while a step planned before it
// (remove the other follower) waits at BeforeOperatorStep. The step must be
// refused, not proposed at the new epoch: running it would leave range 1
// with its leader alone.
func TestOperatorStepRefusedWhenRangeChangesBeforeProposal(t *testing.T) {
	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	c := testcluster.Start(t, 3, testcluster.Options{Replicas: 3, InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{BeforeOperatorStep: func(uint64) {
			if armed.CompareAndSwap(true, false) {
				reached <- struct{}{}
				<-release
			}
		}}
	}})
	ctx := mrCtx(t, 60*time.Second)
	d := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 1, 10*time.Second)[0]
	lead := c.WaitLeader(1)
	f := opFollowers(d, lead)
	planned, other := f[0], f[1]

	armed.Store(true)
	type outcome struct {
		rerr *rangekvpb.RangeError
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		rerr, err := store.ExecuteOperatorStepForTest(ctx, c.Stores[lead], &rangekvpb.OperatorStep{RangeId: 1, Epoch: d.Epoch,
			Type: rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, StoreId: planned, OperatorId: 9})
		done <- outcome{rerr, err}
	}()
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the step never reached BeforeOperatorStep")
	}
	resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, other)
	if err != nil || resp.Error != nil {
		t.Fatalf("remove store %d: %v %v", other, err, resp.GetError())
	}
	close(release)
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatal("the step never finished")
	}
	d2 := c.Descriptors(lead)[0]
	if o.err != nil || o.rerr.GetEpochNotMatch() == nil || mrReplicaOn(d2, planned) == nil {
		t.Fatalf("step planned at conf_ver %d after another change moved range 1 to %d: range error %v err %v, range now %s; want EpochNotMatch and store %d kept",
			d.Epoch.ConfVer, resp.Descriptor_.Epoch.ConfVer, o.rerr, o.err, mrRoles(d2), planned)
	}
}
