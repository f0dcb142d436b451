// Tests of CommitAdvance: which commit-only appends may travel as an
// unanswered heartbeat, and that the heartbeat does for the follower what
// the append would have.

package rangeraft_test

import (
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// takeMsgs returns and forgets the messages the group's nodes sent.
func (g *testGroup) takeMsgs() []*pb.Message {
	msgs := g.msgs
	g.msgs = nil
	return msgs
}

// commitOnlyTo returns the MsgApp without entries among msgs sent to to.
func commitOnlyTo(t *testing.T, msgs []*pb.Message, to uint64) *pb.Message {
	t.Helper()
	for _, m := range msgs {
		if m.GetType() == pb.MsgApp && len(m.GetEntries()) == 0 && m.GetTo() == to {
			return m
		}
	}
	t.Fatalf("no commit-only append to %d among %v", to, msgs)
	return nil
}

// One write, driven by hand: follower 2 answers the entries before the
// commit, follower 3 after it. The commit-only append to 2 is an advance
// at once, the one to 3 only once 3's answer arrived; the advance commits
// the follower as the append would, and draws a heartbeat answer (the one
// the store drops). Appends with entries, to a follower in probe, and of
// a term the replica no longer leads are never advances.
func TestCommitAdvance(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	lead, f2, f3 := g.node(1), g.node(2), g.node(3)
	lead.propose(1, "a")
	g.handleReady(lead)
	apps := g.takeMsgs()
	for _, m := range apps {
		if m.GetType() != pb.MsgApp || len(m.GetEntries()) == 0 {
			t.Fatalf("leader sent %v, want appends with the entry", m)
		}
		if _, ok := lead.rr.CommitAdvance(m); ok {
			t.Fatalf("an append with entries is an advance: %v", m)
		}
		g.deliver(m)
	}
	idx := lead.lastIndex()
	g.handleReady(f2)
	g.handleReady(f3)
	var resp3 *pb.Message
	for _, m := range g.takeMsgs() {
		if m.GetFrom() == 3 {
			resp3 = m // held back: 3 answers late
			continue
		}
		g.deliver(m)
	}
	g.handleReady(lead)
	msgs := g.takeMsgs()
	to2, to3 := commitOnlyTo(t, msgs, 2), commitOnlyTo(t, msgs, 3)
	if _, ok := lead.rr.CommitAdvance(to3); ok {
		t.Fatal("the commit-only append to follower 3, whose answer has not arrived, is an advance")
	}
	hb, ok := lead.rr.CommitAdvance(to2)
	if !ok {
		t.Fatal("the commit-only append to follower 2, which acknowledged the entry, is not an advance")
	}
	if hb.GetType() != pb.MsgHeartbeat || hb.GetTo() != 2 || hb.GetFrom() != 1 || hb.GetTerm() != to2.GetTerm() ||
		hb.GetCommit() != idx || len(hb.GetContext()) != 0 {
		t.Fatalf("advance = %v, want a heartbeat 1->2 of term %d with commit %d and no context", hb, to2.GetTerm(), idx)
	}

	// The advance commits follower 2 and draws one heartbeat answer.
	if c := f2.rr.BasicStatus().GetCommit(); c >= idx {
		t.Fatalf("follower 2 commit %d before the advance, want < %d", c, idx)
	}
	g.deliver(hb)
	if c := f2.rr.BasicStatus().GetCommit(); c != idx {
		t.Fatalf("follower 2 commit %d after the advance, want %d", c, idx)
	}
	g.handleReady(f2)
	out := g.takeMsgs()
	if len(out) != 1 || out[0].GetType() != pb.MsgHeartbeatResp || out[0].GetTo() != 1 {
		t.Fatalf("follower 2 answered the advance with %v, want one heartbeat answer", out)
	}

	// Follower 3's answer arrives: now its held append is an advance.
	g.deliver(resp3)
	if _, ok := lead.rr.CommitAdvance(to3); !ok {
		t.Fatal("the commit-only append to follower 3 is not an advance after its answer")
	}

	// A follower in probe needs the append's answer to replicate again.
	lead.rr.ReportUnreachable(2)
	if _, ok := lead.rr.CommitAdvance(to2); ok {
		t.Fatal("an append to a follower in probe is an advance")
	}

	// A replica that no longer leads (or leads a later term) sends none.
	g.stabilize()
	transfer := func(from, to uint64) {
		t.Helper()
		if err := g.node(from).rr.TransferLeader(to); err != nil {
			t.Fatal(err)
		}
		g.stabilize()
		if l := g.leader(); l != to {
			t.Fatalf("leader %d after the transfer, want %d", l, to)
		}
	}
	transfer(1, 2)
	if _, ok := lead.rr.CommitAdvance(to3); ok {
		t.Fatal("an append of a term the replica no longer leads is an advance")
	}
	transfer(2, 1)
	if _, ok := lead.rr.CommitAdvance(to3); ok {
		t.Fatal("an append of an earlier term is an advance")
	}
}
