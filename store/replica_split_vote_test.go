package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// splitVoteHarness: three stores; store 3 hears nothing of range 1 until
// catchUp, so range 1 splits on stores 1 and 2 first. The right range's
// replica on store 3 talks only to the test: every message of it to or
// from store 3 is dropped, and the test plays its peers with DeliverForTest.
type splitVoteHarness struct {
	t     *testing.T
	c     *testcluster.Cluster
	s3    *store.Store
	right *rangekvpb.RangeDescriptor
	// x, y, me: the right range's replica IDs on stores 1, 2 and 3.
	x, y, me uint64

	lagging atomic.Bool
	// voteResps[i]: MsgVoteResps store 3 sent for the right range to store i.
	voteResps [4]atomic.Int64
	// armed: SplitRHSStaged on store 3 reports on staged, then waits for
	// release.
	armed       atomic.Bool
	staged      chan stagedSplit
	release     chan struct{}
	releaseOnce sync.Once
	// destroyArmed: ReplicaDestroying on store 3 reports on destroying,
	// then waits for destroyRelease.
	destroyArmed       atomic.Bool
	destroying         chan uint64
	destroyRelease     chan struct{}
	destroyReleaseOnce sync.Once
}

// stagedSplit is what SplitRHSStaged reported.
type stagedSplit struct {
	rangeID uint64
	create  bool
}

// startSplitVoteHarness starts the harness; configure (optional) adjusts
// every store's config before the harness's knobs are set.
func startSplitVoteHarness(t *testing.T, splitKey string, configure ...func(*store.Config)) *splitVoteHarness {
	h := &splitVoteHarness{t: t, staged: make(chan stagedSplit, 1), release: make(chan struct{}),
		destroying: make(chan uint64, 1), destroyRelease: make(chan struct{})}
	h.lagging.Store(true)
	h.c = testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(i int, cfg *store.Config) {
		for _, f := range configure {
			f(cfg)
		}
		knobs := &store.TestingKnobs{DropRaftMessage: func(rangeID, from, to uint64, typ string) bool {
			switch {
			case rangeID == 1:
				return to == 3 && h.lagging.Load()
			case from == 3:
				if typ == pb.MsgVoteResp.String() {
					h.voteResps[to].Add(1)
				}
				return true
			default:
				return to == 3
			}
		}}
		if i == 2 {
			// One range per worker pass: the split's pass holds range 1's
			// lock only, and the other worker is free for the right range.
			cfg.MaxBatchRanges = 1
			knobs.SplitRHSStaged = func(id uint64, create bool) {
				if h.armed.Load() {
					h.staged <- stagedSplit{id, create}
					<-h.release
				}
			}
			knobs.ReplicaDestroying = func(id uint64) {
				if h.destroyArmed.Load() {
					h.destroying <- id
					<-h.destroyRelease
				}
			}
		}
		cfg.Knobs = knobs
	}})
	t.Cleanup(func() { // registered after the cluster's Close: runs first
		h.releaseSplit()
		h.releaseDestroy()
	})
	h.c.WaitLeader(1) // on store 1 or 2: store 3 hears nothing of range 1
	_, h.right = mrSplit(t, h.c, splitKey)
	h.s3 = h.c.Stores[2]
	h.x, h.y, h.me = h.replicaOn(1), h.replicaOn(2), h.replicaOn(3)
	h.c.WaitFor("store 3 to take votes", 10*time.Second, func() bool { return !h.s3.HoldingVotesForTest() })
	return h
}

func (h *splitVoteHarness) releaseSplit() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *splitVoteHarness) releaseDestroy() {
	h.destroyReleaseOnce.Do(func() { close(h.destroyRelease) })
}

// waitStaged waits for store 3's worker to stop in SplitRHSStaged.
func (h *splitVoteHarness) waitStaged() stagedSplit {
	h.t.Helper()
	select {
	case st := <-h.staged:
		if st.rangeID != h.right.RangeId {
			h.t.Fatalf("store 3 staged a split of range %d, want %d", st.rangeID, h.right.RangeId)
		}
		return st
	case <-time.After(30 * time.Second):
		h.t.Fatal("store 3 never staged the split")
	}
	return stagedSplit{}
}

func (h *splitVoteHarness) replicaOn(storeID uint64) uint64 {
	for _, rd := range h.right.Replicas {
		if rd.StoreId == storeID {
			return rd.ReplicaId
		}
	}
	h.t.Fatalf("right range %v has no replica on store %d", h.right, storeID)
	return 0
}

// vote delivers to store 3 a MsgVote of the right range from replica from
// (on fromStore) to replica to, in term, with a log at the split's initial
// (10, 5): as up to date as any replica that has not written since the
// split.
func (h *splitVoteHarness) vote(from, fromStore, to, term uint64) {
	h.s3.DeliverForTest(&rangekvpb.RaftMessage{RangeId: h.right.RangeId, FromStore: fromStore, ToStore: 3, Message: &pb.Message{
		Type: pb.MsgVote.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(term), LogTerm: proto.Uint64(5), Index: proto.Uint64(10)}})
}

// voteAnswered delivers the vote and waits for store 3's answer to it.
// Raft syncs a granted vote before the answer leaves (the Ready contract),
// so once it is answered the persisted HardState says whether it was granted.
func (h *splitVoteHarness) voteAnswered(from, fromStore, to, term uint64) {
	h.t.Helper()
	before := h.voteResps[fromStore].Load()
	h.vote(from, fromStore, to, term)
	h.c.WaitFor(fmt.Sprintf("store 3 to answer replica %d's vote in term %d", from, term), 10*time.Second,
		func() bool { return h.voteResps[fromStore].Load() > before })
}

func (h *splitVoteHarness) persisted() *pb.HardState {
	h.t.Helper()
	hs, err := h.s3.PersistedHardStateForTest(h.right.RangeId)
	if err != nil {
		h.t.Fatalf("read store 3's hard state of range %d: %v", h.right.RangeId, err)
	}
	return hs
}

func hsString(hs *pb.HardState) string {
	return fmt.Sprintf("{term %d, vote %d, commit %d}", hs.GetTerm(), hs.GetVote(), hs.GetCommit())
}

// wantVote checks that store 3's right replica, on disk and in raft,
// is in term with its vote for vote.
func (h *splitVoteHarness) wantVote(when string, term, vote uint64) {
	h.t.Helper()
	if hs := h.persisted(); hs.GetTerm() != term || hs.GetVote() != vote {
		h.t.Errorf("%s: store 3 persisted %s for range %d, want term %d, vote %d", when, hsString(hs), h.right.RangeId, term, vote)
	}
	hs, ok := h.s3.RaftHardStateForTest(h.right.RangeId)
	if !ok {
		h.t.Fatalf("%s: store 3 has no replica of range %d", when, h.right.RangeId)
	}
	if hs.GetTerm() != term || hs.GetVote() != vote {
		h.t.Errorf("%s: store 3's raft holds %s for range %d, want term %d, vote %d", when, hsString(hs), h.right.RangeId, term, vote)
	}
}

// Issue 15 item 1: the uninitialized right-hand replica on a lagging store
// votes (synced, answered) while that store's worker has the split staged
// but not committed. The vote must survive the split: on disk and in the
// installed replica, which must then refuse a second candidate in the
// same term. Before the fix the split's batch overwrote the vote with the
// HardState it had read at staging ({term 6, vote X, commit 10}), and the
// installed replica granted the same term to X: two leaders in one term.
func TestSplitKeepsVoteCastByUninitializedRHSWhileSplitStaged(t *testing.T) {
	h := startSplitVoteHarness(t, "m")
	rhs := h.right.RangeId

	// The right range's first election reaches store 3 before its own
	// split: the uninitialized replica votes for X in term 6.
	h.voteAnswered(h.x, 1, h.me, 6)
	h.wantVote("after X's vote in term 6", 6, h.x)

	// Store 3 catches up on range 1; its worker stops with the split staged.
	h.armed.Store(true)
	h.lagging.Store(false)
	if st := h.waitStaged(); !st.create {
		t.Fatal("store 3's split does not create its right replica")
	}

	// Meanwhile another worker steps Y's vote in term 7 on the
	// uninitialized replica: granted, synced and answered.
	h.voteAnswered(h.y, 2, h.me, 7)
	if hs := h.persisted(); hs.GetTerm() != 7 || hs.GetVote() != h.y {
		t.Fatalf("store 3 answered Y's vote in term 7 but persisted %s (the window did not open)", hsString(hs))
	}

	h.releaseSplit()
	h.c.WaitFor("store 3 to install the right range", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, rhs)
		return st != nil && st.Initialized
	})
	h.wantVote("after the split installed the right range", 7, h.y)
	if hs := h.persisted(); hs.GetCommit() != 10 {
		t.Errorf("store 3's right range persisted %s, want commit 10 (the split's initial index)", hsString(hs))
	}

	// What a candidate sees: X asks for store 3's vote in term 7 too and
	// must be refused (granting it would let X and Y both win term 7).
	h.voteAnswered(h.x, 1, h.me, 7)
	h.wantVote("after X asked for a vote in term 7", 7, h.y)
}

// Issue 15 item 4 (the neighbouring case): store 3's right replica was
// removed and re-added under a newer replica ID before store 3 applied the
// split, and the newer, uninitialized incarnation has voted. The split
// finds the tombstone, creates nothing and writes no range-local state: the
// newer incarnation and its vote stay.
func TestSplitKeepsHardStateOfReAddedUninitializedRHS(t *testing.T) {
	h := startSplitVoteHarness(t, "m")
	rhs := h.right.RangeId
	h.voteAnswered(h.x, 1, h.me, 6)

	// A vote for a newer replica ID replaces the leftover (a tombstone
	// now forbids h.me), and the new incarnation votes for Y in term 7.
	newer := h.right.NextReplicaId + 3
	h.voteAnswered(h.y, 2, newer, 7)
	if st := h.c.ReplicaStatus(2, rhs); st == nil || st.ReplicaId != newer || st.Initialized {
		t.Fatalf("store 3's replica of range %d is %v, want uninitialized replica %d", rhs, st, newer)
	}
	h.wantVote("after Y's vote in term 7", 7, h.y)

	h.lagging.Store(false)
	h.c.WaitFor("store 3 to apply the split", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, 1)
		return st != nil && string(st.Descriptor_.GetEndKey()) == "m"
	})
	if st := h.c.ReplicaStatus(2, rhs); st == nil || st.ReplicaId != newer || st.Initialized {
		t.Fatalf("after the split, store 3's replica of range %d is %v, want uninitialized replica %d", rhs, st, newer)
	}
	h.wantVote("after the split", 7, h.y)
	h.voteAnswered(h.x, 1, newer, 7)
	h.wantVote("after X asked for a vote in term 7", 7, h.y)
}

// The neighbouring race: while store 3 has the split staged, a message
// for a newer incarnation of the right replica arrives (it was removed and
// re-added in the right range's later history). Replacing the
// uninitialized replica now would delete its HardState (its vote for X in
// term 6) while the split goes on to install the split's replica ID, which
// the replacement's tombstone forbids, with no vote: it could then vote
// for Y in term 6 as well. The replacement must wait for the install (the
// message is dropped; replica GC removes a stale installed replica later).
func TestSplitDefersReplacingUninitializedRHSWhileSplitStaged(t *testing.T) {
	h := startSplitVoteHarness(t, "m")
	rhs := h.right.RangeId
	h.voteAnswered(h.x, 1, h.me, 6)

	h.armed.Store(true)
	h.lagging.Store(false)
	if st := h.waitStaged(); !st.create {
		t.Fatal("store 3's split does not create its right replica")
	}
	newer := h.right.NextReplicaId + 3
	h.vote(h.y, 2, newer, 7) // delivered synchronously: replaced or dropped on return
	h.releaseSplit()
	h.c.WaitFor("store 3 to install the right range", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, rhs)
		return st != nil && st.Initialized
	})
	if st := h.c.ReplicaStatus(2, rhs); st.ReplicaId != h.me {
		t.Errorf("store 3 installed replica %d of range %d, want the split's %d", st.ReplicaId, rhs, h.me)
	}
	ts, err := h.s3.TombstoneForTest(rhs)
	if err != nil {
		t.Fatal(err)
	}
	if ts.NextReplicaId > h.me {
		t.Errorf("store 3 runs replica %d of range %d under a tombstone that forbids IDs below %d", h.me, rhs, ts.NextReplicaId)
	}
	h.wantVote("after the split installed the right range", 6, h.x)
	// Y asks for store 3's vote in term 6, which it gave X.
	h.voteAnswered(h.y, 2, h.me, 6)
	h.wantVote("after Y asked for a vote in term 6", 6, h.x)
}

// The same race, the other way round: the replacement started (the old
// replica is stopped, its tombstone not yet written) before store 3's
// split reads the right range's tombstone. The split must see it coming
// and create nothing, as if the tombstone were there: installing the
// split's replica ID would run a replica the tombstone forbids, whose
// state the replacement's batch then deletes under it.
func TestSplitCreatesNothingWhileUninitializedRHSIsBeingReplaced(t *testing.T) {
	h := startSplitVoteHarness(t, "m")
	rhs := h.right.RangeId
	h.voteAnswered(h.x, 1, h.me, 6)

	// Y's vote for a newer incarnation: deliver stops the old replica and
	// holds before its tombstone commits.
	newer := h.right.NextReplicaId + 3
	h.destroyArmed.Store(true)
	delivered := make(chan struct{})
	answersBefore := h.voteResps[2].Load()
	go func() {
		defer close(delivered)
		h.vote(h.y, 2, newer, 7)
	}()
	select {
	case id := <-h.destroying:
		if id != rhs {
			t.Fatalf("store 3 destroys a replica of range %d, want %d", id, rhs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("store 3 never started replacing its uninitialized replica")
	}

	h.armed.Store(true)
	h.lagging.Store(false)
	if st := h.waitStaged(); st.create {
		t.Errorf("store 3's split creates replica %d of range %d while a newer incarnation replaces it", h.me, rhs)
	}
	h.releaseSplit()
	h.releaseDestroy()
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("delivering Y's vote never returned")
	}
	h.c.WaitFor("store 3 to answer Y's vote", 10*time.Second, func() bool { return h.voteResps[2].Load() > answersBefore })
	h.c.WaitFor("store 3 to apply the split", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, 1)
		return st != nil && string(st.Descriptor_.GetEndKey()) == "m"
	})
	if st := h.c.ReplicaStatus(2, rhs); st == nil || st.ReplicaId != newer || st.Initialized {
		t.Fatalf("store 3's replica of range %d is %v, want uninitialized replica %d", rhs, st, newer)
	}
	if ts, err := h.s3.TombstoneForTest(rhs); err != nil || ts.NextReplicaId <= h.me {
		t.Errorf("store 3's tombstone of range %d: %v (err %v), want one forbidding replica %d", rhs, ts, err, h.me)
	}
	h.wantVote("after Y's vote in term 7", 7, h.y)
	h.voteAnswered(h.x, 1, newer, 7)
	h.wantVote("after X asked for a vote in term 7", 7, h.y)
}

// Store 3's right replica was removed and re-added under a newer replica
// ID before store 3 applied the split, and the first thing store 3 heard
// of the range was a vote for the newer incarnation (no replica of the
// split's ID ever ran here, so no tombstone forbids it). The split must
// leave the newer, uninitialized incarnation and its vote alone, as CRDB's
// splitPreApply does for a right replica newer than the split. Before the
// fix the split installed its own (removed) replica ID over it, carrying
// over the newer one's vote; replica GC, told by placement that the
// split's ID was removed, then deleted that HardState with a tombstone
// that admits the newer ID, which was re-created with no vote and granted
// a second candidate the same term: two leaders in one term.
func TestSplitLeavesNewerUninitializedRHSAndItsVote(t *testing.T) {
	h := startSplitVoteHarness(t, "m")
	rhs := h.right.RangeId
	newer := h.right.NextReplicaId + 3
	h.voteAnswered(h.y, 2, newer, 7)
	h.wantVote("after Y's vote in term 7", 7, h.y)

	h.lagging.Store(false)
	h.c.WaitFor("store 3 to apply the split", 15*time.Second, func() bool {
		st := h.c.ReplicaStatus(2, 1)
		return st != nil && string(st.Descriptor_.GetEndKey()) == "m"
	})
	if st := h.c.ReplicaStatus(2, rhs); st == nil || st.ReplicaId != newer || st.Initialized {
		t.Errorf("after the split, store 3's replica of range %d is %v, want uninitialized replica %d", rhs, st, newer)
	}

	// Placement's descriptor of the right range: store 3's replica is the
	// newer one (removed h.me, then added newer: conf_ver + 2).
	other := proto.CloneOf(h.right)
	other.Epoch.ConfVer += 2
	for _, rd := range other.Replicas {
		if rd.StoreId == 3 {
			rd.ReplicaId = newer
		}
	}
	other.NextReplicaId = newer + 1
	h.s3.GCDestroyForTest(rhs, other)

	// X asks the newer incarnation for its vote in term 7, given to Y.
	h.voteAnswered(h.x, 1, newer, 7)
	h.wantVote("after X asked replica newer for a vote in term 7", 7, h.y)
}
