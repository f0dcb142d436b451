// Replica GC of replicas that never campaign (the nemesis's "stale
// replicas left" after a lagging split and a move): a removed replica that
// still knows a leader but will never hear from it again (uninitialized,
// or a learner) is checked and removed; and GC never destroys an
// uninitialized right half while this store has the split that installs
// it staged.

package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// gcSuspectInterval is the replica GC interval of these tests: a replica
// GC checks at all is gone well within gcSuspectDeadline.
const (
	gcSuspectInterval = 100 * time.Millisecond
	gcSuspectDeadline = 15 * time.Second
)

// withoutStore returns d at the next conf_ver without storeID's replica:
// the descriptor of d's range once that replica was removed.
func withoutStore(d *rangekvpb.RangeDescriptor, storeID uint64) *rangekvpb.RangeDescriptor {
	out := proto.CloneOf(d)
	out.Epoch.ConfVer++
	out.Replicas = out.Replicas[:0]
	for _, rd := range d.Replicas {
		if rd.StoreId != storeID {
			out.Replicas = append(out.Replicas, proto.CloneOf(rd))
		}
	}
	return out
}

// Store 3 lags on range 1, so it has not applied the split; the right
// range's leader reaches its uninitialized right replica (a heartbeat: it
// now knows that leader), then removes it from the range while it still
// has no data, and never talks to it again. Raft never times out the
// leader an uninitialized replica knows (it cannot campaign), and replica
// GC looked only at replicas that know no leader: before the fix the
// replica stayed as long as store 3 lagged (for good if it never applies
// the split). Now GC checks it and removes it with a tombstone; the split
// then creates nothing and drops the right half's data.
func TestReplicaGCRemovesUninitializedRHSThatKnowsALeader(t *testing.T) {
	h := startSplitVoteHarness(t, "m", func(cfg *store.Config) { cfg.ReplicaGCInterval = gcSuspectInterval })
	rhs := h.right.RangeId
	h.s3.DeliverForTest(&rangekvpb.RaftMessage{RangeId: rhs, FromStore: 1, ToStore: 3, Message: &pb.Message{
		Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(h.x), To: proto.Uint64(h.me), Term: proto.Uint64(6)}})
	h.c.WaitFor("store 3's uninitialized right replica to know replica x as leader", 10*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, rhs)
		return st != nil && !st.Initialized && st.LeaderReplicaId == h.x
	})

	ctx := mrCtx(t, 30*time.Second)
	resp, err := h.c.ChangeReplicas(ctx, rhs, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, 3)
	if err != nil || resp.Error != nil {
		t.Fatalf("remove store 3's replica of range %d: %v %v", rhs, err, resp.GetError())
	}
	mrWaitFor(t, "store 3's removed, uninitialized replica to be GC'd", gcSuspectDeadline, func() (bool, string) {
		st := h.c.ReplicaStatus(2, rhs)
		if st == nil {
			return true, ""
		}
		return false, fmt.Sprintf("store 3 still holds replica %d of range %d (initialized %t, leader %d)", st.ReplicaId, rhs, st.Initialized, st.LeaderReplicaId)
	})
	if ts, err := h.s3.TombstoneForTest(rhs); err != nil || ts.NextReplicaId <= h.me {
		t.Fatalf("store 3's tombstone of range %d: %v (err %v), want one forbidding replica %d", rhs, ts, err, h.me)
	}

	// Store 3 catches up on range 1 and applies the split: the tombstone
	// forbids its right replica, so nothing is created.
	h.lagging.Store(false)
	h.c.WaitFor("store 3 to apply the split", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, 1)
		return st != nil && string(st.Descriptor_.GetEndKey()) == "m"
	})
	if st := h.c.ReplicaStatus(2, rhs); st != nil {
		t.Fatalf("store 3 runs replica %d of range %d (initialized %t) after applying the split, removed before", st.ReplicaId, rhs, st.Initialized)
	}
}

// Store 3 has its uninitialized right replica (which voted for x in term
// 6) and its split staged, not committed, when replica GC proves that
// replica removed. Destroying it then would delete its HardState and
// write a tombstone under the split, which goes on to install the same
// replica ID: a replica the tombstone forbids, that lost its vote and may
// vote again in term 6. GC must leave it to the install (as deliver's
// replacement does) and remove the installed replica afterwards.
func TestReplicaGCLeavesUninitializedRHSWhileSplitStaged(t *testing.T) {
	h := startSplitVoteHarness(t, "m", func(cfg *store.Config) { cfg.ReplicaGCInterval = time.Hour })
	rhs := h.right.RangeId
	h.voteAnswered(h.x, 1, h.me, 6)

	h.armed.Store(true)
	h.lagging.Store(false)
	if st := h.waitStaged(); !st.create {
		t.Fatal("store 3's split does not create its right replica")
	}
	removed := withoutStore(h.right, 3)
	h.s3.GCDestroyForTest(rhs, removed) // returns once destroyed or left
	h.releaseSplit()
	h.c.WaitFor("store 3 to install the right range", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, rhs)
		return st != nil && st.Initialized
	})
	ts, err := h.s3.TombstoneForTest(rhs)
	if err != nil {
		t.Fatal(err)
	}
	if ts.NextReplicaId > h.me {
		t.Errorf("store 3 runs replica %d of range %d under a tombstone that forbids IDs below %d", h.me, rhs, ts.NextReplicaId)
	}
	h.wantVote("after the split installed the right range", 6, h.x)

	// The installed replica is stale: the next check removes it.
	h.s3.GCDestroyForTest(rhs, removed)
	if st := h.c.ReplicaStatus(2, rhs); st != nil {
		t.Fatalf("store 3 still runs replica %d of range %d after GC", st.ReplicaId, rhs)
	}
	if ts, err := h.s3.TombstoneForTest(rhs); err != nil || ts.NextReplicaId <= h.me {
		t.Fatalf("store 3's tombstone of range %d: %v (err %v), want one forbidding replica %d", rhs, ts, err, h.me)
	}
}

// A learner on store 4 catches up (initialized, it knows the leader);
// then nothing of range 1 reaches store 4 any more, and the learner is
// removed (as placement removes a leftover learner, say of a move cut
// short by a split, while its store lags). It never applies its removal
// and, a learner, never campaigns: it knows its leader forever. Before the
// fix replica GC never looked at it and it stayed, initialized, for good
// (the nemesis's "stale replicas left"). Now it is removed.
func TestReplicaGCRemovesLearnerThatKnowsALeader(t *testing.T) {
	var cut atomic.Bool
	c := testcluster.Start(t, 4, testcluster.Options{Replicas: 3, InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.ReplicaGCInterval = gcSuspectInterval
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(rangeID, _, to uint64, _ string) bool {
			return rangeID == 1 && to == 4 && cut.Load()
		}}
	}})
	c.WaitLeader(1)
	ctx := mrCtx(t, 60*time.Second)
	if err := c.Client().Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 4)
	if err != nil || resp.Error != nil {
		t.Fatalf("add a learner on store 4: %v %v", err, resp.GetError())
	}
	learner := mrReplicaOn(resp.Descriptor_, 4).ReplicaId
	c.WaitFor("store 4's learner to be initialized and know the leader", 20*time.Second, func() bool {
		st := c.ReplicaStatus(3, 1)
		return st != nil && st.Initialized && st.LeaderReplicaId != 0 && mrReplicaOn(st.Descriptor_, 4).GetRole() == rangekvpb.ReplicaRole_LEARNER
	})

	cut.Store(true)
	if resp, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, 4); err != nil || resp.Error != nil {
		t.Fatalf("remove the learner on store 4: %v %v", err, resp.GetError())
	}
	mrWaitFor(t, "store 4's removed learner to be GC'd", gcSuspectDeadline, func() (bool, string) {
		st := c.ReplicaStatus(3, 1)
		if st == nil {
			return true, ""
		}
		return false, fmt.Sprintf("store 4 still holds replica %d of range 1 (leader %d, applied %d)", st.ReplicaId, st.LeaderReplicaId, st.AppliedIndex)
	})
	if ts, err := c.Stores[3].TombstoneForTest(1); err != nil || ts.NextReplicaId <= learner {
		t.Fatalf("store 4's tombstone of range 1: %v (err %v), want one forbidding replica %d", ts, err, learner)
	}
}
