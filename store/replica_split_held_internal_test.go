// Tests of the messages a store keeps for the right half of a split it is
// about to install (store_deliver.go holdForSplit, Replica.heldApp; replica_split.go
// installRHS).

package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// A consecutive split cuts the right half that the previous split just
// created, so it waits for that half's new leader to commit its first
// entry. The leader's first append to a follower store that has not
// applied the split yet is dropped there (the local left replica will
// create the right one; a snapshot now would overlap it), and so is every
// message that arrives while the follower stages the split or replaces its
// uninitialized replica. Dropped, the leader hears back only at its next
// heartbeat (100 ms by default) or, for a lost vote, its next election
// timeout: ascending splits took ~100 ms each, p99 over a second. The
// install now hands the right replica the messages that waited for it.
// Each step below is driven by the test on one goroutine: no worker runs.
func TestSplitInstallDeliversMessagesHeldForIt(t *testing.T) {
	s := newTransportTestStore(t, 2)
	db := withMemEngine(t, s)
	replicas := []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}, {ReplicaId: 2, StoreId: 2}, {ReplicaId: 3, StoreId: 3}}
	// The left range [a, z) is initialized here and has not applied its
	// splits yet.
	left := &Replica{store: s, rangeID: 1, replicaID: 2}
	left.desc.Store(&rangekvpb.RangeDescriptor{RangeId: 1, StartKey: []byte("a"), EndKey: []byte("z"),
		Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}, NextReplicaId: 4, Replicas: replicas})
	s.indexReplica(left)
	rightDesc := func(id uint64, start, end string) *rangekvpb.RangeDescriptor {
		return &rangekvpb.RangeDescriptor{RangeId: id, StartKey: []byte(start), EndKey: []byte(end),
			Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 2}, NextReplicaId: 4, Replicas: replicas}
	}
	env := func(rangeID uint64, start string, typ pb.MessageType) *rangekvpb.RaftMessage {
		return &rangekvpb.RaftMessage{RangeId: rangeID, FromStore: 1, ToStore: 2, StartKey: []byte(start),
			Message: &pb.Message{Type: typ.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(6),
				Index: proto.Uint64(10), LogTerm: proto.Uint64(5), Commit: proto.Uint64(10)}}
	}
	stage := func(right *rangekvpb.RangeDescriptor) {
		t.Helper()
		claimed, owned := s.claimRHS(right, 2)
		if !claimed {
			t.Fatalf("could not claim range %d", right.RangeId)
		}
		b := db.NewIndexedBatch()
		defer b.Close()
		if err := s.writeSplitRHSState(b, right, owned); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	install := func(right *rangekvpb.RangeDescriptor) []pb.MessageType {
		t.Helper()
		if err := s.installRHS(&splitResult{right: right, createRight: true}); err != nil {
			t.Fatal(err)
		}
		r := s.replica(right.RangeId)
		if r == nil || r.Descriptor() == nil {
			t.Fatalf("range %d: no initialized replica after the install", right.RangeId)
		}
		r.inbox.Lock()
		defer r.inbox.Unlock()
		var got []pb.MessageType
		for _, im := range r.inbox.msgs {
			got = append(got, im.m.GetType())
		}
		return got
	}
	dropped := func() float64 {
		return counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "awaiting_split")
	}

	// Range 100 [m, z): the new leader's vote created an uninitialized
	// replica here; its probe then waits for the split.
	r100 := rightDesc(100, "m", "z")
	s.deliver(env(100, "m", pb.MsgVote), false)
	if r := s.replica(100); r == nil || r.Descriptor() != nil {
		t.Fatalf("the vote did not create an uninitialized replica of range 100: %v", r)
	}
	before := dropped()
	s.deliver(env(100, "m", pb.MsgApp), false)
	if dropped() != before+1 {
		t.Fatalf("the probe to the uninitialized replica was not held back for the split")
	}
	stage(r100)
	// (The vote, queued on the uninitialized replica, goes with it: no
	// worker runs here to step it.)
	if got := install(r100); len(got) != 1 || got[0] != pb.MsgApp {
		t.Fatalf("range 100's replica after the install has inbox %v, want [MsgApp]: the probe dropped while it waited for the split was lost", got)
	}

	// Range 200 [f, m): the split is staged before any message; one
	// arriving now finds no replica object it could go to.
	r200 := rightDesc(200, "f", "m")
	stage(r200)
	s.deliver(env(200, "f", pb.MsgApp), false)
	if s.replica(200) != nil {
		t.Fatal("a replica of range 200 was created while its split was staged")
	}
	if got := install(r200); len(got) != 1 || got[0] != pb.MsgApp {
		t.Fatalf("range 200's replica after the install has inbox %v, want [MsgApp]: a message that arrived while the split was staged was lost", got)
	}

	// Range 300 [c, f): the install stops the uninitialized replica before
	// it builds the new one; a message arriving in between finds a closed
	// inbox.
	r300 := rightDesc(300, "c", "f")
	s.deliver(env(300, "c", pb.MsgHeartbeat), false)
	old := s.replica(300)
	if old == nil {
		t.Fatal("the heartbeat did not create an uninitialized replica of range 300")
	}
	stage(r300)
	old.failInbox() // as installRHS does before building the new replica
	s.deliver(env(300, "c", pb.MsgPreVote), false)
	if got := install(r300); len(got) != 1 || got[0] != pb.MsgPreVote {
		t.Fatalf("range 300's replica after the install has inbox %v, want [MsgPreVote]: a message that reached the stopped replica was lost", got)
	}
	s.mu.RLock()
	leftover := len(s.mu.heldForSplit)
	s.mu.RUnlock()
	if leftover != 0 {
		t.Fatalf("%d ranges still hold messages after their installs", leftover)
	}
}
