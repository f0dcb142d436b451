package store

import (
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// raftMsg builds a message of range rangeID to replica to.
func raftMsg(rangeID, to uint64, typ pb.MessageType, term, commit uint64, entries int) *rangekvpb.RaftMessage {
	m := &pb.Message{Type: typ.Enum(), From: proto.Uint64(1), To: proto.Uint64(to), Term: proto.Uint64(term),
		Index: proto.Uint64(10), LogTerm: proto.Uint64(term), Commit: proto.Uint64(commit)}
	for i := range entries {
		m.Entries = append(m.Entries, &pb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(uint64(11 + i)), Data: []byte("x")})
	}
	return &rangekvpb.RaftMessage{RangeId: rangeID, FromStore: 1, ToStore: 2, Message: m}
}

// queued drains what send put on p's queue, in order.
func queued(p *peer) []*rangekvpb.RaftMessage {
	return p.takeQueued(nil, peerQueueSize)
}

// holdingTransport is store 1's transport with a peer for store 2 and a
// hold that never times out, and a send to store 2 that must be accepted.
func holdingTransport(t *testing.T) (*Store, *transport, *peer, func(*rangekvpb.RaftMessage)) {
	s := newTransportTestStore(t, 1)
	tr := &transport{s: s, hold: time.Hour}
	p := newPeer(2, "", nil, s.cfg.Clock)
	tr.mu.peers = map[uint64]*peer{2: p}
	send := func(m *rangekvpb.RaftMessage) {
		t.Helper()
		if !tr.send(2, m) {
			t.Fatalf("send %v refused", m.Message.GetType())
		}
	}
	return s, tr, p, send
}

// The send side of the hold: a commit-only append waits; a later append
// with entries to the same replica replaces it (counted as folded); any
// other message to that replica goes after it, never before; messages to
// other replicas neither release nor drop it.
func TestTransportHoldsCommitOnlyAppends(t *testing.T) {
	s, tr, p, send := holdingTransport(t)
	folded := func() float64 { return counterValue(t, s, "rangekv_raft_commit_appends_folded_total") }

	// Folded into the next append with entries.
	send(raftMsg(5, 2, pb.MsgApp, 3, 20, 0))
	if got := queued(p); len(got) != 0 {
		t.Fatalf("a commit-only append was queued at once: %v", got)
	}
	if !p.held.armed {
		t.Fatal("the first held append did not arm the hold timer")
	}
	send(raftMsg(6, 2, pb.MsgApp, 3, 20, 2)) // another range: no effect on range 5's
	app := raftMsg(5, 2, pb.MsgApp, 3, 21, 2)
	send(app)
	if got := queued(p); len(got) != 2 || got[1] != app {
		t.Fatalf("queued %v, want range 6's append then range 5's, and no commit-only append", got)
	}
	if n := folded(); n != 1 {
		t.Fatalf("folded = %v, want 1", n)
	}
	if held := p.takeHeld(nil, false); len(held) != 0 {
		t.Fatalf("still held after the append: %v", held)
	}

	// A newer commit-only append replaces the held one.
	send(raftMsg(5, 2, pb.MsgApp, 3, 22, 0))
	newer := raftMsg(5, 2, pb.MsgApp, 3, 23, 0)
	send(newer)
	send(raftMsg(5, 3, pb.MsgApp, 3, 23, 0)) // another replica of the range: held apart
	if n := folded(); n != 2 {
		t.Fatalf("folded = %v, want 2", n)
	}

	// A ReadIndex answer to the replica goes after its held commit index.
	resp := raftMsg(5, 2, pb.MsgReadIndexResp, 3, 0, 0)
	send(resp)
	if got := queued(p); len(got) != 2 || got[0] != newer || got[1] != resp {
		t.Fatalf("queued %v, want the held append (commit 23) then the ReadIndex answer", got)
	}
	held := p.takeHeld(nil, false)
	if len(held) != 1 || held[0].Message.GetTo() != 3 {
		t.Fatalf("held %v, want only replica 3's append", held)
	}

	// An append of a new term does not fold an old term's commit: both go.
	send(raftMsg(5, 2, pb.MsgApp, 3, 30, 0))
	send(raftMsg(5, 2, pb.MsgApp, 4, 30, 1))
	if got := queued(p); len(got) != 2 || got[0].Message.GetTerm() != 3 || got[1].Message.GetTerm() != 4 {
		t.Fatalf("queued %v, want the term-3 commit then the term-4 append", got)
	}

	// With no hold delay configured nothing is held.
	tr.hold = 0
	send(raftMsg(5, 2, pb.MsgApp, 4, 31, 0))
	if got := queued(p); len(got) != 1 {
		t.Fatalf("hold 0: queued %v, want the commit-only append at once", got)
	}
}

// Over a real peer stream: a held append leaves when its delay ends, on
// its own; and a flush batch carries held appends ahead of its heartbeats,
// so that a quiesce heartbeat never overtakes the commit index it
// quiesces at.
func TestTransportReleasesHeldAppends(t *testing.T) {
	start := func(t *testing.T, heartbeat, hold time.Duration) (*transport, chan *rangekvpb.RaftMessageBatch) {
		addr, fake := startFakeRaftServer(t)
		s := newTransportTestStore(t, 1)
		s.cfg.HeartbeatInterval = heartbeat
		s.cfg.InitialStores = map[uint64]string{1: "127.0.0.1:1", 2: addr}
		tr := newTransport(s)
		tr.hold = hold
		s.trans = tr
		t.Cleanup(tr.close)
		tr.startPeers()
		return tr, fake.batches
	}
	next := func(t *testing.T, batches chan *rangekvpb.RaftMessageBatch, what string, ok func(*rangekvpb.RaftMessageBatch) bool) *rangekvpb.RaftMessageBatch {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case b := <-batches:
				if ok(b) {
					return b
				}
			case <-deadline:
				t.Fatalf("no batch with %s", what)
			}
		}
	}
	hasMessages := func(b *rangekvpb.RaftMessageBatch) bool { return len(b.Messages) > 0 }

	t.Run("hold delay", func(t *testing.T) {
		// No flush tick within the test: only the hold timer can send it.
		tr, batches := start(t, 2*time.Hour, 5*time.Millisecond)
		commit := raftMsg(5, 2, pb.MsgApp, 3, 20, 0)
		tr.send(2, commit)
		b := next(t, batches, "the held append", hasMessages)
		if len(b.Messages) != 1 || !proto.Equal(b.Messages[0], commit) {
			t.Fatalf("batch %v, want just the held append", b)
		}
	})
	t.Run("flush carries held first", func(t *testing.T) {
		// The hold never ends by itself: the flush tick sends it.
		tr, batches := start(t, 40*time.Millisecond, time.Hour)
		commit := raftMsg(5, 2, pb.MsgApp, 3, 20, 0)
		tr.send(2, commit)
		tr.sendQuiesce(2, 5, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(3), Commit: proto.Uint64(20)})
		b := next(t, batches, "the quiesce heartbeat", func(b *rangekvpb.RaftMessageBatch) bool { return len(b.Heartbeats) > 0 })
		if len(b.Messages) != 1 || !proto.Equal(b.Messages[0], commit) || !b.Heartbeats[0].Quiesce {
			t.Fatalf("flush batch %v, want the held append and the quiesce heartbeat", b)
		}
	})
}

// The hold timers of two peers are armed by the sender, in the order it
// held their appends, not by each peer's goroutine when it wakes: timers
// due at the same instant fire in the order they were set, and two
// senders woken in one simulated step run in the Go scheduler's order,
// which made a replayed simulation send its batches in another order now
// and then (seed 10 took 11,838 steps, then 12,587).
func TestTransportArmsHoldTimersInSendOrder(t *testing.T) {
	s := newTransportTestStore(t, 1)
	clk := clock.NewManual(time.Unix(0, 0))
	tr := &transport{s: s, hold: 5 * time.Millisecond}
	tr.mu.peers = map[uint64]*peer{}
	for _, id := range []uint64{3, 2} {
		tr.mu.peers[id] = newPeer(id, "", nil, clk)
	}
	for _, id := range []uint64{3, 2} { // not in store order
		m := raftMsg(5, id, pb.MsgApp, 3, 20, 0)
		m.ToStore = id
		tr.sendBatch(id, []*rangekvpb.RaftMessage{m}, nil)
	}
	if n := clk.Waiters(); n != 2 {
		t.Fatalf("%d timers pending after holding an append for each of two peers, want their 2 hold timers", n)
	}
	for _, id := range []uint64{3, 2} {
		if !clk.FireNext(clk.Now().Add(tr.hold)) {
			t.Fatal("no hold timer due within the hold delay")
		}
		for _, other := range []uint64{2, 3} {
			if fired := len(tr.mu.peers[other].holdTimer.C()) == 1; fired != (other == id) {
				t.Fatalf("peer %d's hold timer fired: %v; want peer %d's alone (held first)", other, fired, id)
			}
		}
		<-tr.mu.peers[id].holdTimer.C()
		if held := tr.mu.peers[id].takeHeld(nil, false); len(held) != 1 { // as run does
			t.Fatalf("peer %d held %d appends, want 1", id, len(held))
		}
	}
	// Holding again while armed sets nothing new.
	tr.sendBatch(2, []*rangekvpb.RaftMessage{raftMsg(6, 2, pb.MsgApp, 3, 20, 0)}, nil)
	tr.sendBatch(2, []*rangekvpb.RaftMessage{raftMsg(7, 2, pb.MsgApp, 3, 20, 0)}, nil)
	if n := clk.Waiters(); n != 1 {
		t.Fatalf("%d timers pending after two appends held for one peer, want 1", n)
	}
}

// advanceMsg builds a commit advance of range rangeID to replica to.
func advanceMsg(rangeID, to, term, commit uint64) *rangekvpb.RaftMessage {
	return &rangekvpb.RaftMessage{RangeId: rangeID, FromStore: 1, ToStore: 2, CommitAdvance: true,
		Message: &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(to),
			Term: proto.Uint64(term), Commit: proto.Uint64(commit)}}
}

// A commit advance is held like a commit-only append, never coalesced
// with the heartbeats (which the follower answers); a later append folds
// it; takeHeld hands out the advances alone when asked (the next batch to
// the peer carries them) and leaves the held appends for their timer.
func TestTransportHoldsCommitAdvances(t *testing.T) {
	s, _, p, send := holdingTransport(t)
	value := func(name string) float64 { return counterValue(t, s, name) }

	adv := advanceMsg(5, 2, 3, 20)
	send(adv)
	if beats, _ := p.takeHeartbeats(); len(beats) != 0 {
		t.Fatalf("an advance went to the coalesced heartbeats: %v", beats)
	}
	if got := queued(p); len(got) != 0 {
		t.Fatalf("an advance was queued at once: %v", got)
	}
	send(raftMsg(6, 2, pb.MsgApp, 3, 20, 0)) // a plain commit-only append of another range
	if got := p.takeHeld(nil, true); len(got) != 1 || got[0] != adv {
		t.Fatalf("advances taken: %v, want range 5's advance alone", got)
	}
	if got := p.takeHeld(nil, false); len(got) != 1 || got[0].RangeId != 6 {
		t.Fatalf("held after taking the advances: %v, want range 6's append", got)
	}

	// Folded by a later append of the term with at least its commit.
	send(advanceMsg(5, 2, 3, 21))
	send(raftMsg(5, 2, pb.MsgApp, 3, 21, 1))
	if got := queued(p); len(got) != 1 || len(got[0].Message.GetEntries()) != 1 {
		t.Fatalf("queued %v, want the append alone", got)
	}
	if n := value("rangekv_raft_commit_advances_folded_total"); n != 1 {
		t.Fatalf("advances folded = %v, want 1", n)
	}
	// A newer advance replaces an older one; the older counts as folded.
	send(advanceMsg(5, 2, 3, 22))
	newer := advanceMsg(5, 2, 3, 23)
	send(newer)
	send(advanceMsg(5, 2, 3, 22)) // late and older: dropped
	if got := p.takeHeld(nil, true); len(got) != 1 || got[0] != newer {
		t.Fatalf("held %v, want the commit-23 advance", got)
	}
	if n := value("rangekv_raft_commit_advances_folded_total"); n != 3 {
		t.Fatalf("advances folded = %v, want 3", n)
	}
}

// upgradeHeld turns a held commit-only append into an advance when the
// leader's check allows it, and leaves it (and any advance) alone
// otherwise.
func TestTransportUpgradesHeldAppends(t *testing.T) {
	_, tr, p, _ := holdingTransport(t)
	app := raftMsg(5, 2, pb.MsgApp, 3, 20, 0)
	tr.send(2, app)
	no := func(*pb.Message) (*pb.Message, bool) { return nil, false }
	yes := func(m *pb.Message) (*pb.Message, bool) {
		return &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: m.From, To: m.To, Term: m.Term, Commit: proto.Uint64(10)}, true
	}
	if tr.upgradeHeld(2, 5, 2, no) {
		t.Fatal("upgraded although the leader's check refused")
	}
	if tr.upgradeHeld(2, 5, 3, yes) || tr.upgradeHeld(2, 6, 2, yes) || tr.upgradeHeld(3, 5, 2, yes) {
		t.Fatal("upgraded an append that is not held")
	}
	if !tr.upgradeHeld(2, 5, 2, yes) {
		t.Fatal("the held append was not upgraded")
	}
	if tr.upgradeHeld(2, 5, 2, yes) {
		t.Fatal("an advance was upgraded again")
	}
	got := p.takeHeld(nil, true)
	if len(got) != 1 || !got[0].CommitAdvance || got[0].Message.GetType() != pb.MsgHeartbeat || got[0].Message.GetCommit() != 10 ||
		got[0].RangeId != 5 || got[0].ToStore != 2 {
		t.Fatalf("held after the upgrade: %v, want range 5's advance with commit 10", got)
	}
}

// unmute drops one heartbeat answer per advance stepped, to its leader.
func TestUnmuteConsumesOneAnswerPerAdvance(t *testing.T) {
	r := &Replica{}
	r.mu.muted = []uint64{1, 4, 1}
	for _, c := range []struct {
		leader uint64
		want   bool
	}{{2, false}, {1, true}, {4, true}, {4, false}, {1, true}, {1, false}} {
		if got := r.unmute(c.leader); got != c.want {
			t.Fatalf("unmute(%d) = %v, want %v (left %v)", c.leader, got, c.want, r.mu.muted)
		}
	}
}
