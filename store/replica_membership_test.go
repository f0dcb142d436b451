package store_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// mrRoles renders a descriptor's replicas as store:role, by store.
func mrRoles(d *rangekvpb.RangeDescriptor) string {
	rs := append([]*rangekvpb.ReplicaDescriptor(nil), d.Replicas...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].StoreId < rs[j].StoreId })
	out := ""
	for _, r := range rs {
		out += fmt.Sprintf("s%d/r%d:%v ", r.StoreId, r.ReplicaId, r.Role)
	}
	return out
}

func mrReplicaOn(d *rangekvpb.RangeDescriptor, storeID uint64) *rangekvpb.ReplicaDescriptor {
	for _, r := range d.Replicas {
		if r.StoreId == storeID {
			return r
		}
	}
	return nil
}

// A learner added to a range holding data catches up by snapshot, is
// promoted through joint consensus and then counts in the quorum; a
// non-leader replica is then removed and destroyed (data and state gone,
// tombstone left) while the remaining three serve everything. Refusals:
// removing the leader's own replica (FailedPrecondition) and adding a
// learner where a replica already is (InvalidArgument).
func TestMultiraftLearnerSnapshotPromoteRemove(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Replicas: 3, InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
	}})
	c.WaitLeader(1) // the writes below start once range 1 has a leader
	cl := c.Client()
	ctx := mrCtx(t, 90*time.Second)
	want := map[string]string{}
	for i := range 200 {
		k := fmt.Sprintf("key%04d", i)
		want[k] = fmt.Sprintf("%s-%0500d", k, i) // ~100 KB in all
		if err := cl.Put(ctx, []byte(k), []byte(want[k])); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	if st := c.ReplicaStatus(3, 1); st != nil {
		t.Fatalf("store 4 has a replica of range 1 before it was added: %v", st)
	}
	d0 := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 1, 10*time.Second)[0]

	// Refusals.
	_, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 2)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ADD_LEARNER on store 2, which holds a voter: err %v, want InvalidArgument", err)
	}
	_, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 9)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ADD_LEARNER on unknown store 9: err %v, want InvalidArgument", err)
	}
	_, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_PROMOTE_LEARNER, 4)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("PROMOTE_LEARNER on store 4, which holds no learner: err %v, want InvalidArgument", err)
	}
	var lead int
	for {
		lead = c.WaitLeader(1)
		resp, err := c.Admin(lead).ChangeReplicas(ctx, &rangekvpb.ChangeReplicasRequest{RangeId: 1, Change: rangekvpb.ReplicaChangeType_REMOVE_REPLICA, StoreId: uint64(lead + 1)})
		if err == nil && resp.GetError().GetNotLeader() != nil {
			continue // leadership moved between the lookup and the call
		}
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("REMOVE_REPLICA of the leader's store %d: resp %v err %v, want FailedPrecondition", lead+1, resp, err)
		}
		break
	}
	if d := c.Descriptors(lead)[0]; !proto.Equal(d, d0) {
		t.Fatalf("refused changes changed the descriptor: %s -> %s", mrRoles(d0), mrRoles(d))
	}

	// Add a learner on store 4: it catches up by snapshot.
	resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 4)
	if err != nil || resp.Error != nil {
		t.Fatalf("ADD_LEARNER store 4: %v %v", err, resp.GetError())
	}
	d1 := resp.Descriptor_
	if l := mrReplicaOn(d1, 4); l == nil || l.Role != rangekvpb.ReplicaRole_LEARNER || len(d1.Replicas) != 4 || d1.Epoch.ConfVer != d0.Epoch.ConfVer+1 {
		t.Fatalf("after ADD_LEARNER: %s conf_ver %d; want store 4 a learner among 4 replicas, conf_ver %d", mrRoles(d1), d1.Epoch.ConfVer, d0.Epoch.ConfVer+1)
	}
	lead = c.WaitLeader(1)
	target := c.ReplicaStatus(lead, 1).AppliedIndex
	c.WaitFor("store 4's learner to be initialized and reach the leader's applied index", 20*time.Second, func() bool {
		st := c.ReplicaStatus(3, 1)
		return st != nil && st.Initialized && st.AppliedIndex >= target
	})
	st4 := c.ReplicaStatus(3, 1)
	t.Logf("store 4 learner: applied %d first index %d last index %d", st4.AppliedIndex, st4.FirstIndex, st4.LastIndex)
	if n := mrSum(mrMetrics(t, c.HTTPAddr(3)), "rangekv_snapshots_applied_total"); n < 1 {
		t.Fatalf("store 4 applied %v snapshots; the learner must catch up by snapshot", n)
	}
	if st4.FirstIndex <= 11 {
		t.Errorf("store 4's log starts at %d: a snapshot should have moved it past the initial index", st4.FirstIndex)
	}
	sent := 0.0
	for i := range 3 {
		sent += mrSum(mrMetrics(t, c.HTTPAddr(i)), "rangekv_snapshots_sent_total", `result="ok"`)
	}
	if sent < 1 {
		t.Fatalf("no store reports a snapshot sent")
	}
	mrWantStale(t, c, 3, d1, want)

	// Promote: enter and leave the joint configuration (conf_ver +2).
	resp, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_PROMOTE_LEARNER, 4)
	if err != nil || resp.Error != nil {
		t.Fatalf("PROMOTE_LEARNER store 4: %v %v", err, resp.GetError())
	}
	d2 := resp.Descriptor_
	for _, r := range d2.Replicas {
		if r.Role != rangekvpb.ReplicaRole_VOTER {
			t.Fatalf("after PROMOTE_LEARNER: %s; want 4 voters", mrRoles(d2))
		}
	}
	if len(d2.Replicas) != 4 || d2.Epoch.ConfVer != d1.Epoch.ConfVer+2 {
		t.Fatalf("after PROMOTE_LEARNER: %s conf_ver %d; want 4 voters at conf_ver %d (enter + leave joint)", mrRoles(d2), d2.Epoch.ConfVer, d1.Epoch.ConfVer+2)
	}
	d2 = mrWaitDescriptorsAgree(t, c, mrStoreIdx(4), 1, 10*time.Second)[0]

	// Store 4 votes: with one original follower down, the quorum of 3 of
	// 4 needs it.
	lead = c.WaitLeader(1)
	down := -1
	for i := range 3 {
		if i != lead {
			down = i
			break
		}
	}
	c.StopStore(down)
	want["promoted"] = "needs store 4"
	if err := cl.Put(ctx, []byte("promoted"), []byte(want["promoted"])); err != nil {
		t.Fatalf("put with store %d down (store 4 must be part of the quorum): %v", down+1, err)
	}
	c.RestartStore(down)
	mrWaitConverged(t, c, mrStoreIdx(4), []uint64{1}, 15*time.Second)

	// Remove a non-leader original replica.
	lead = c.WaitLeader(1)
	victim := -1
	for i := range 3 {
		if i != lead {
			victim = i
			break
		}
	}
	resp, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, uint64(victim+1))
	if err != nil || resp.Error != nil {
		t.Fatalf("REMOVE_REPLICA store %d: %v %v", victim+1, err, resp.GetError())
	}
	d3 := resp.Descriptor_
	if len(d3.Replicas) != 3 || mrReplicaOn(d3, uint64(victim+1)) != nil || d3.Epoch.ConfVer != d2.Epoch.ConfVer+1 {
		t.Fatalf("after REMOVE_REPLICA store %d: %s conf_ver %d; want 3 voters without it, conf_ver %d", victim+1, mrRoles(d3), d3.Epoch.ConfVer, d2.Epoch.ConfVer+1)
	}
	c.WaitFor(fmt.Sprintf("store %d to destroy its removed replica", victim+1), 15*time.Second, func() bool {
		return c.ReplicaStatus(victim, 1) == nil
	})
	kv := mrKV(t, c.Addrs[victim])
	for _, h := range []*rangekvpb.RequestHeader{
		{RangeId: 1, Consistency: rangekvpb.ReadConsistency_STALE},
		{Consistency: rangekvpb.ReadConsistency_STALE}, // the store picks the range holding the key
	} {
		g, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: h, Key: []byte("key0001")})
		if err != nil || g.Header.GetError().GetRangeNotFound() == nil {
			t.Fatalf("stale get (range %d) from the removed store %d: %v err %v found=%v; want RangeNotFound", h.RangeId, victim+1, g.GetHeader().GetError(), err, g.GetFound())
		}
	}
	remaining := []int{}
	for i := range 4 {
		if i != victim {
			remaining = append(remaining, i)
		}
	}
	d3 = mrWaitDescriptorsAgree(t, c, remaining, 1, 10*time.Second)[0]
	mrWaitConverged(t, c, remaining, []uint64{1}, 15*time.Second)
	for _, i := range remaining {
		mrWantStale(t, c, i, d3, want)
	}
	for k, v := range want {
		got, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s after the removal: found=%v err=%v", k, found, err)
		}
	}
	if err := cl.Put(ctx, []byte("after-remove"), []byte("ok")); err != nil {
		t.Fatalf("put after the removal: %v", err)
	}

	// The removed store's engine: no user data left in the span, no
	// range-local state but a tombstone above the removed replica ID.
	removedID := mrReplicaOn(d2, uint64(victim+1)).ReplicaId
	c.StopStore(victim)
	mrCheckDestroyed(t, c.Config(victim), 1, removedID, d2)
}

// mrWantStale checks that store i serves exactly want for desc at STALE.
func mrWantStale(t *testing.T, c *testcluster.Cluster, i int, desc *rangekvpb.RangeDescriptor, want map[string]string) {
	t.Helper()
	got, err := mrStaleScan(mrCtx(t, 30*time.Second), mrKV(t, c.Addrs[i]), desc)
	if err != nil {
		t.Fatalf("stale scan on store %d: %v", i+1, err)
	}
	if diff := mrDiff(want, got); diff != "" {
		t.Fatalf("store %d serves different data for range %d: %s", i+1, desc.RangeId, diff)
	}
}

// mrCheckDestroyed opens a stopped store's engine and checks that a
// destroyed replica left nothing but its tombstone.
func mrCheckDestroyed(t *testing.T, cfg store.Config, rangeID, replicaID uint64, desc *rangekvpb.RangeDescriptor) {
	t.Helper()
	db, err := pebble.Open(cfg.DataDir, &pebble.Options{FS: cfg.FS, ReadOnly: true, Logger: mrPebbleLogger{t}})
	if err != nil {
		t.Fatalf("open the stopped store's engine: %v", err)
	}
	defer db.Close()
	lo, hi := keys.UserSpan(desc.StartKey, desc.EndKey)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	it.Close()
	if n != 0 {
		t.Errorf("the removed replica's span still holds %d user keys", n)
	}
	it, err = db.NewIter(&pebble.IterOptions{LowerBound: keys.RangeLocalPrefix(rangeID), UpperBound: keys.RangeLocalEnd(rangeID)})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for valid := it.First(); valid; valid = it.Next() {
		if string(it.Key()) != string(keys.TombstoneKey(rangeID)) {
			left = append(left, fmt.Sprintf("%x", it.Key()))
		}
	}
	it.Close()
	if len(left) > 0 {
		t.Errorf("range-local keys left after destruction: %v", left)
	}
	v, closer, err := db.Get(keys.TombstoneKey(rangeID))
	if err != nil {
		t.Fatalf("tombstone of range %d: %v", rangeID, err)
	}
	var ts rangekvpb.RangeTombstone
	err = proto.Unmarshal(v, &ts)
	closer.Close()
	if err != nil || ts.NextReplicaId <= replicaID {
		t.Fatalf("tombstone %v (err %v): next_replica_id must exceed the removed replica %d", &ts, err, replicaID)
	}
}

// mrPebbleLogger sends Pebble's log to the test log.
type mrPebbleLogger struct{ t *testing.T }

func (l mrPebbleLogger) Infof(string, ...any) {}
func (l mrPebbleLogger) Errorf(format string, args ...any) {
	l.t.Logf("pebble: "+format, args...)
}
func (l mrPebbleLogger) Fatalf(format string, args ...any) {
	l.t.Fatalf("pebble: "+format, args...)
}

// Two membership changes sent to the leader at the same time: raft admits
// one pending change at a time (the other becomes an empty entry, or is
// rejected at apply for its stale conf_ver). A change reported as
// successful must show in the descriptor it returns, and only successful
// changes may end up in the range. Rounds alternate adding learners on
// stores 4 and 5 and removing both.
func TestMultiraftConcurrentChangeReplicasReportOnlyAppliedChanges(t *testing.T) {
	c := testcluster.Start(t, 5, testcluster.Options{Replicas: 3, InMemory: true})
	c.WaitLeader(1)
	ctx := mrCtx(t, 60*time.Second)
	type result struct {
		store uint64
		resp  *rangekvpb.ChangeReplicasResponse
		err   error
	}
	for round := range 4 {
		change := rangekvpb.ReplicaChangeType_ADD_LEARNER
		if round%2 == 1 {
			change = rangekvpb.ReplicaChangeType_REMOVE_REPLICA
		}
		lead := c.WaitLeader(1)
		before := c.Descriptors(lead)[0]
		adm := c.Admin(lead)
		results := make(chan result, 2)
		var start sync.WaitGroup
		start.Add(1)
		launched := 0
		for _, st := range []uint64{4, 5} {
			if (change == rangekvpb.ReplicaChangeType_REMOVE_REPLICA) != (mrReplicaOn(before, st) != nil) {
				continue // nothing to do for this store
			}
			launched++
			go func() {
				start.Wait()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				resp, err := adm.ChangeReplicas(cctx, &rangekvpb.ChangeReplicasRequest{RangeId: 1, Change: change, StoreId: st})
				results <- result{st, resp, err}
			}()
		}
		start.Done()
		want := map[uint64]bool{4: mrReplicaOn(before, 4) != nil, 5: mrReplicaOn(before, 5) != nil}
		for range launched {
			var r result
			select {
			case r = <-results:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: %v did not answer", round, change)
			}
			if r.err != nil || r.resp.Error != nil {
				t.Logf("round %d: %v store %d: err %v, range error %v", round, change, r.store, r.err, r.resp.GetError())
				continue
			}
			want[r.store] = change == rangekvpb.ReplicaChangeType_ADD_LEARNER
			if got := mrReplicaOn(r.resp.Descriptor_, r.store) != nil; got != want[r.store] {
				t.Errorf("round %d: %v store %d reported success with descriptor %s (conf_ver %d), which does not show it",
					round, change, r.store, mrRoles(r.resp.Descriptor_), r.resp.Descriptor_.GetEpoch().GetConfVer())
			}
		}
		final := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 1, 10*time.Second)[0]
		for st, w := range want {
			if in := mrReplicaOn(final, st) != nil; in != w {
				t.Errorf("round %d: store %d in the final descriptor %s: %v, want %v from the answers", round, st, mrRoles(final), in, w)
			}
		}
		if t.Failed() {
			return
		}
		// Before a removal round, both stores hold a learner.
		if change == rangekvpb.ReplicaChangeType_ADD_LEARNER {
			for st, in := range want {
				if !in {
					if resp, err := c.ChangeReplicas(ctx, 1, change, st); err != nil || resp.Error != nil {
						t.Fatalf("ADD_LEARNER store %d alone: %v %v", st, err, resp.GetError())
					}
				}
			}
		}
	}
}

// A learner added and removed again before any snapshot reached it leaves
// an uninitialized replica behind on its store. When the store is added
// again (a new replica ID), the new learner must replace that leftover and
// catch up, not be dropped as a "replica ID mismatch" forever (found by
// the in-process nemesis: a range whose learner never caught up).
func TestMultiraftReAddedLearnerReplacesUninitializedLeftover(t *testing.T) {
	var blockSnaps sync.Map // store ID → true: snapshots to it are dropped
	c := testcluster.Start(t, 4, testcluster.Options{Replicas: 3, InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(_, _, to uint64, typ string) bool {
			_, blocked := blockSnaps.Load(to)
			return blocked && typ == "MsgSnap"
		}}
	}})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	for i := range 20 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	blockSnaps.Store(uint64(4), true)
	resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 4)
	if err != nil {
		t.Fatalf("add learner on store 4: %v", err)
	}
	first := mrReplicaOn(resp.Descriptor_, 4).ReplicaId
	c.WaitFor("store 4 to hold an uninitialized replica of range 1", 15*time.Second, func() bool {
		st := c.ReplicaStatus(3, 1)
		return st != nil && !st.Initialized && st.ReplicaId == first
	})
	if _, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, 4); err != nil {
		t.Fatalf("remove the learner on store 4: %v", err)
	}
	blockSnaps.Delete(uint64(4))
	resp, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 4)
	if err != nil {
		t.Fatalf("add learner on store 4 again: %v", err)
	}
	second := mrReplicaOn(resp.Descriptor_, 4).ReplicaId
	if second <= first {
		t.Fatalf("re-added learner has replica ID %d, not above the first one's %d", second, first)
	}
	c.WaitFor(fmt.Sprintf("store 4's replica %d of range 1 to catch up", second), 20*time.Second, func() bool {
		st := c.ReplicaStatus(3, 1)
		return st != nil && st.Initialized && st.ReplicaId == second
	})
	kv := kvClient(t, c.Addrs[3])
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		c.WaitFor("store 4 to hold "+k, 10*time.Second, func() bool {
			v, found, err := staleGet(ctx, kv, k)
			return err == nil && found && v == "v"
		})
	}
}

// Promoting a learner appends exactly the entries joint consensus needs:
// the joint entry and the one leave-joint entry (issue 15 item 4: the
// leader used to propose leave-joint again on every pass while joint, and
// raft turned each extra proposal into an empty entry, 65 to 190 of them).
func TestMultiraftPromoteAppendsOnlyJointAndLeaveEntries(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{Replicas: 1, InMemory: true})
	ctx := mrCtx(t, 60*time.Second)
	c.WaitLeader(1)
	resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 2)
	if err != nil || resp.Error != nil {
		t.Fatalf("ADD_LEARNER store 2: %v %v", err, resp.GetError())
	}
	lead := c.WaitLeader(1)
	if lead != 0 {
		t.Fatalf("leader on store %d; only store 1 votes", lead+1)
	}
	// The learner has caught up and nothing else is in flight: the leader's
	// last index moves only with the promotion from here on.
	c.WaitFor("store 2's learner to reach the leader's last index", 20*time.Second, func() bool {
		l, f := c.ReplicaStatus(0, 1), c.ReplicaStatus(1, 1)
		return l != nil && f != nil && f.Initialized && f.AppliedIndex == l.LastIndex && l.AppliedIndex == l.LastIndex
	})
	before := c.ReplicaStatus(0, 1)

	resp, err = c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_PROMOTE_LEARNER, 2)
	if err != nil || resp.Error != nil {
		t.Fatalf("PROMOTE_LEARNER store 2: %v %v", err, resp.GetError())
	}
	if d := resp.Descriptor_; d.Epoch.ConfVer != before.Descriptor_.Epoch.ConfVer+2 {
		t.Fatalf("after PROMOTE_LEARNER: %s conf_ver %d; want conf_ver %d (enter + leave joint)", mrRoles(d), d.Epoch.ConfVer, before.Descriptor_.Epoch.ConfVer+2)
	}
	mrWaitDescriptorsAgree(t, c, mrStoreIdx(2), 1, 10*time.Second)
	c.WaitFor("both replicas to apply the promotion", 10*time.Second, func() bool {
		l, f := c.ReplicaStatus(0, 1), c.ReplicaStatus(1, 1)
		return l != nil && f != nil && f.AppliedIndex == l.LastIndex && l.AppliedIndex == l.LastIndex
	})
	after := c.ReplicaStatus(0, 1)
	appended := after.LastIndex - before.LastIndex
	t.Logf("promotion appended %d entries (last index %d -> %d, term %d -> %d)", appended, before.LastIndex, after.LastIndex, before.Term, after.Term)
	// 2 entries: EnterJoint and LeaveJoint. One more is allowed only for a
	// new term's empty entry, should an election happen meanwhile.
	want := uint64(2)
	if after.Term != before.Term {
		want++
	}
	if appended > want {
		t.Fatalf("promotion appended %d raft entries; want %d (enter joint + leave joint)", appended, want)
	}
}
