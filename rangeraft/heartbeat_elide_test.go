// Tests of ElideHeartbeat: which heartbeats a leader leaves out, and that
// a group that leaves them out keeps its leader while it takes writes and
// after the writes stop.

package rangeraft_test

import (
	"testing"
	"time"

	"github.com/rangekv/rangekv/rangeraft"
	pb "go.etcd.io/raft/v3/raftpb"
)

// elideClock is a clock the tests move by hand, one heartbeat interval
// per tick; elideConfig makes a group's replicas elide heartbeats by it.
type elideClock struct{ now time.Time }

const elideInterval = 100 * time.Millisecond

func (c *elideClock) config(cfg *rangeraft.Config) {
	cfg.Clock = func() time.Time { return c.now }
	cfg.HeartbeatInterval = elideInterval
}

// tick moves the clock one heartbeat interval and ticks the group.
func (c *elideClock) tick(g *testGroup) {
	c.now = c.now.Add(elideInterval)
	g.tick()
}

// writtenElideGroup is a group of 3 that elides by its clock, led by
// replica 1, after one write every replica acknowledged.
func writtenElideGroup(t *testing.T) (*elideClock, *testGroup) {
	t.Helper()
	clk := &elideClock{now: time.Unix(1000, 0)}
	g := newGroup(t, 3, memStorage, clk.config)
	g.elect(1)
	g.node(1).propose(1, "a")
	g.stabilize()
	return clk, g
}

// heartbeatsTo returns the heartbeats among msgs sent to to.
func heartbeatsTo(msgs []*pb.Message, to uint64) []*pb.Message {
	var out []*pb.Message
	for _, m := range msgs {
		if m.GetType() == pb.MsgHeartbeat && m.GetTo() == to {
			out = append(out, m)
		}
	}
	return out
}

// One heartbeat tick after a write whose appends both followers answered,
// the leader's heartbeats to them may be left out; one more tick without a
// write, they may not. Read rounds' heartbeats, heartbeats to a follower
// in probe, heartbeats of a replica that no longer leads, and heartbeats
// of a group whose election timeout is short are never left out.
func TestElideHeartbeat(t *testing.T) {
	clk, g := writtenElideGroup(t)
	lead := g.node(1)

	clk.now = clk.now.Add(elideInterval)
	lead.rr.Tick()
	g.handleReady(lead)
	msgs := g.takeMsgs()
	for _, to := range []uint64{2, 3} {
		hbs := heartbeatsTo(msgs, to)
		if len(hbs) != 1 {
			t.Fatalf("leader sent %v on its heartbeat tick, want one heartbeat to %d", msgs, to)
		}
		if !lead.rr.ElideHeartbeat(hbs[0]) {
			t.Fatalf("heartbeat to %d, which answered an append this interval, is not elided", to)
		}
		if g.node(to).rr.ElideHeartbeat(hbs[0]) {
			t.Fatalf("follower %d elides its leader's heartbeat", to)
		}
	}
	probe := heartbeatsTo(msgs, 2)[0]

	clk.now = clk.now.Add(elideInterval)
	lead.rr.Tick()
	g.handleReady(lead)
	for _, hb := range heartbeatsTo(g.takeMsgs(), 2) {
		if lead.rr.ElideHeartbeat(hb) {
			t.Fatal("heartbeat elided two intervals after the follower's last answer")
		}
	}

	// A read round's heartbeats carry a context: never elided.
	lead.propose(2, "b")
	g.stabilize()
	lead.read()
	lead.rr.FlushReads()
	g.handleReady(lead)
	var withCtx int
	for _, m := range g.takeMsgs() {
		if m.GetType() == pb.MsgHeartbeat && len(m.GetContext()) > 0 {
			withCtx++
			if lead.rr.ElideHeartbeat(m) {
				t.Fatalf("read round heartbeat elided: %v", m)
			}
		}
	}
	if withCtx == 0 {
		t.Fatal("the read sent no heartbeats with a context")
	}
	g.stabilize()

	// A follower in probe waits for a heartbeat answer to resend.
	lead.propose(3, "c")
	g.stabilize()
	lead.rr.ReportUnreachable(2)
	if lead.rr.ElideHeartbeat(probe) {
		t.Fatal("heartbeat to a follower in probe elided")
	}
	g.stabilize()

	// A replica that no longer leads elides nothing.
	if err := lead.rr.TransferLeader(3); err != nil {
		t.Fatal(err)
	}
	g.stabilize()
	if l := g.leader(); l != 3 {
		t.Fatalf("leader %d after the transfer, want 3", l)
	}
	if lead.rr.ElideHeartbeat(heartbeatsTo(msgs, 3)[0]) {
		t.Fatal("a former leader elides a heartbeat")
	}

	// A short election timeout (4 heartbeat intervals) elides nothing.
	short := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { clk.config(c); c.ElectionTicks = 4 })
	short.elect(1)
	short.node(1).propose(1, "a")
	short.stabilize()
	short.node(1).rr.Tick()
	short.handleReady(short.node(1))
	for _, hb := range heartbeatsTo(short.takeMsgs(), 2) {
		if short.node(1).rr.ElideHeartbeat(hb) {
			t.Fatal("heartbeat elided with an election timeout of 4 intervals")
		}
	}
}

// A group that leaves out the heartbeats ElideHeartbeat allows keeps its
// leader and term while it takes a write every tick (and leaves out most
// heartbeats), and after the writes stop (its followers get heartbeats
// again, so none times out), and a follower whose appends are lost hears
// heartbeats again within two intervals.
func TestElidedHeartbeatsKeepLeader(t *testing.T) {
	clk := &elideClock{now: time.Unix(1000, 0)}
	g := newGroup(t, 3, memStorage, clk.config)
	g.elect(1)
	g.elide = true
	lead := g.node(1)
	term := lead.rr.BasicStatus().GetTerm()
	const writeTicks = 60
	for i := range writeTicks {
		lead.propose(uint64(i+1), "w")
		clk.tick(g)
	}
	// Two followers, one heartbeat interval each tick: all but a few of
	// the heartbeats are left out.
	if g.elided < 2*writeTicks-4 {
		t.Fatalf("elided %d heartbeats over %d write ticks, want at least %d", g.elided, writeTicks, 2*writeTicks-4)
	}
	for range 50 {
		clk.tick(g)
	}
	for _, id := range g.ids {
		if st := g.node(id).rr.BasicStatus(); st.GetTerm() != term || st.Lead != 1 {
			t.Fatalf("replica %d at term %d with leader %d, want term %d leader 1", id, st.GetTerm(), st.Lead, term)
		}
	}

	// Follower 3's appends are lost: its heartbeats resume at once.
	g.drop = func(m *pb.Message) bool { return m.GetType() == pb.MsgApp && m.GetTo() == 3 }
	lead.propose(writeTicks+1, "x")
	clk.tick(g)
	g.msgs = nil
	clk.now = clk.now.Add(2 * elideInterval)
	lead.rr.Tick()
	lead.rr.Tick()
	g.handleReady(lead)
	if hbs := heartbeatsTo(g.takeMsgs(), 3); len(hbs) == 0 || lead.rr.ElideHeartbeat(hbs[len(hbs)-1]) {
		t.Fatalf("follower 3, which answers nothing, gets no heartbeat two intervals on (%d sent)", len(hbs))
	}
}

// A leader that did not tick for a while (quiesced) counts its followers'
// answers by the clock: its first heartbeat on waking is not elided on the
// strength of an answer from before it slept.
func TestElideHeartbeatAfterSleep(t *testing.T) {
	clk, g := writtenElideGroup(t)
	lead := g.node(1)
	clk.now = clk.now.Add(10 * elideInterval) // asleep: no ticks
	lead.rr.Tick()
	g.handleReady(lead)
	hbs := heartbeatsTo(g.takeMsgs(), 2)
	if len(hbs) != 1 {
		t.Fatalf("leader sent %d heartbeats to 2 on waking, want 1", len(hbs))
	}
	if lead.rr.ElideHeartbeat(hbs[0]) {
		t.Fatal("first heartbeat after ten idle intervals elided")
	}
}
