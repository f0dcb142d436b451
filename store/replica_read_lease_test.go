package store_test

// Read-lease safety questions of issue 15 item 3, end to end on an
// in-process cluster (docs/reliability.md, "Leases: four open questions").

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc/codes"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// Q1: the right half of a split on a store that has not applied the split
// yet is an uninitialized replica; it answers the new leader's heartbeats.
// When the split applies there, installRHS replaces it with a fresh replica
// that knows no leader and grants votes at once, so its answer must not
// count toward a read lease: otherwise the other follower, cut off from
// the leader, could be elected with its vote and commit writes the old
// leader's lease reads miss. Here the only answer the right range's leader
// gets besides its own is the uninitialized replica's: it must serve no
// read from a lease (nor confirm any read) until a replica that keeps its
// promise answers.
func TestUninitializedReplicaAckGrantsNoLease(t *testing.T) {
	var lagger, mute, rhs atomic.Uint64 // store IDs, range ID
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(rangeID, from, to uint64, typ string) bool {
			if l := lagger.Load(); l != 0 && to == l && (typ == "MsgApp" || typ == "MsgSnap") {
				return true // the lagging store applies no split and gets no right-range data
			}
			// The other follower's heartbeat answers for the right range
			// are lost (a one-way partition of that range's traffic).
			return from == mute.Load() && rangeID == rhs.Load() && typ == "MsgHeartbeatResp"
		}}
	}})
	lead := c.WaitLeader(1)
	lagIdx, muteIdx := (lead+1)%3, (lead+2)%3
	cl := c.Client()
	mustPut(t, cl, "z", "1")
	c.WaitFor("every store applied the write", 10*time.Second, func() bool {
		for i := range 3 {
			if st := c.ReplicaStatus(i, 1); st == nil || st.AppliedIndex < c.ReplicaStatus(lead, 1).GetAppliedIndex() {
				return false
			}
		}
		return true
	})
	lagger.Store(uint64(lagIdx + 1))
	ctx := opCtx(t)
	resp, err := c.SplitRange(ctx, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	right := resp.Right
	rhs.Store(right.RangeId)
	c.WaitFor("the right range led from the left's leader store", 10*time.Second, func() bool {
		return c.Leader(right.RangeId) == lead
	})
	c.WaitFor("an uninitialized right replica that follows the leader on the lagging store", 10*time.Second, func() bool {
		st := c.ReplicaStatus(lagIdx, right.RangeId)
		return st != nil && !st.Initialized && st.LeaderReplicaId != 0
	})
	if st := c.ReplicaStatus(lagIdx, 1); st == nil || !st.Initialized || len(st.Descriptor_.GetEndKey()) != 0 {
		t.Fatalf("setup: the lagging store applied the split: %v", st)
	}
	// The leader has applied an entry of its term (it may serve reads),
	// with the other follower's help.
	c.WaitFor("the right range's leader applied its first entry", 10*time.Second, func() bool {
		st := c.ReplicaStatus(lead, right.RangeId)
		return st != nil && st.AppliedIndex > 10 && st.AppliedIndex == st.CommitIndex
	})
	// From now on no heartbeat answer of that follower arrives. No read
	// was issued on the right range yet, so no lease is held.
	mute.Store(uint64(muteIdx + 1))
	kv := kvClient(t, c.Addrs[lead])
	before := readsMetric(t, c, lead, "lease")
	for i := range 4 {
		rctx, cancel := context.WithTimeout(ctx, 750*time.Millisecond)
		v, _, rerr, err := getAt(rctx, kv, "z", rangekvpb.ReadConsistency_LEASE)
		cancel()
		if err == nil && rerr == nil {
			t.Fatalf("LEASE read %d = %q, confirmed by an uninitialized replica's heartbeat answer alone", i, v)
		}
	}
	if got := readsMetric(t, c, lead, "lease"); got != before {
		t.Fatalf("the right range's leader served %v reads from a lease an uninitialized replica granted", got-before)
	}

	// Healed: the lagging store applies the split, and leases come back.
	mute.Store(0)
	lagger.Store(0)
	c.WaitFor("the right replica initialized on the lagging store", 15*time.Second, func() bool {
		st := c.ReplicaStatus(lagIdx, right.RangeId)
		return st != nil && st.Initialized
	})
	c.WaitFor("a LEASE read on the right range", 15*time.Second, func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		v, _, rerr, err := getAt(rctx, kv, "z", rangekvpb.ReadConsistency_LEASE)
		return err == nil && rerr == nil && v == "1"
	})
}

// Q2: the store's admin API refuses a leadership transfer to the leader's
// own store (raft would abort the transfer in progress instead).
func TestAdminTransferToLeadersOwnStoreRefused(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	lead := c.WaitLeader(1)
	_, err := c.Admin(lead).TransferLeader(c.Ctx(5*time.Second), &rangekvpb.TransferLeaderRequest{RangeId: 1, ToStoreId: uint64(lead + 1)})
	wantStatus(t, "transfer to the leader's own store", err, codes.InvalidArgument, "to_store_id", "already leads range 1")
}

// Q4: a store whose data directory was wiped, started again under the
// same store ID with static bootstrap, would re-create range 1 with the
// same replica IDs and no vote record, and could vote twice in a term. It
// refuses to start: a peer that exchanged Raft messages with its earlier
// incarnation says so. (Forced past the check, its peers refuse its Raft
// traffic: TestPeerIncarnationFence.)
func TestWipedStaticStoreRefusesToStart(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	lead := c.WaitLeader(1)
	mustPut(t, c.Client(), "a", "1")
	victim := (lead + 1) % 3
	waitCaughtUp(t, c, victim, 10*time.Second)
	cfg := c.Config(victim)
	c.StopStore(victim)

	cfg.FS = vfs.NewMem() // the disk was wiped
	cfg.NewCluster = false
	cfg.Registry = nil
	s, err := store.Open(cfg)
	var wiped *store.ErrWipedStore
	if !errors.As(err, &wiped) {
		if s != nil {
			s.Stop()
		}
		t.Fatalf("open store %d on a wiped data directory: err %v, want *ErrWipedStore", cfg.StoreID, err)
	}
	if wiped.StoreID != cfg.StoreID || wiped.Peer == 0 || wiped.Peer == cfg.StoreID ||
		!strings.Contains(err.Error(), "--store-id") || !strings.Contains(err.Error(), "--new-cluster") {
		t.Fatalf("refusal does not name the stores and what to do: %v", err)
	}
	mustPut(t, c.Client(), "b", "2") // the others still serve
}
