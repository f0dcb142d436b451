package rangeraft_test

import (
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/rangeraft"
)

// The pure lease decision, with times chosen by the test.
func TestLeaseDecision(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const d = 700 * time.Millisecond
	ok := rangeraft.LeaseStatus{Leader: true, Term: 7, AppliedTerm: 7}
	var l rangeraft.Lease
	if l.Valid(t0, ok) {
		t.Fatal("zero lease is valid")
	}
	l.Extend(t0, 7, d)
	for _, tc := range []struct {
		name string
		now  time.Time
		st   rangeraft.LeaseStatus
		want bool
	}{
		{"at start", t0, ok, true},
		{"just before expiry", t0.Add(d - time.Nanosecond), ok, true},
		{"at expiry", t0.Add(d), ok, false},
		{"after expiry", t0.Add(2 * d), ok, false},
		{"transfer in progress", t0.Add(d / 2), rangeraft.LeaseStatus{Leader: true, Term: 7, AppliedTerm: 7, LeadTransferee: 2}, false},
		{"term changed", t0.Add(d / 2), rangeraft.LeaseStatus{Leader: true, Term: 8, AppliedTerm: 8}, false},
		{"not leader", t0.Add(d / 2), rangeraft.LeaseStatus{Term: 7, AppliedTerm: 7}, false},
		{"own term entry not applied", t0.Add(d / 2), rangeraft.LeaseStatus{Leader: true, Term: 7, AppliedTerm: 6}, false},
	} {
		if got := l.Valid(tc.now, tc.st); got != tc.want {
			t.Errorf("%s: Valid = %v, want %v", tc.name, got, tc.want)
		}
	}

	// An older round does not shorten the lease; a new term replaces it.
	l.Extend(t0.Add(-time.Second), 7, d)
	if !l.Expiry().Equal(t0.Add(d)) {
		t.Fatalf("older round moved the expiry to %v", l.Expiry())
	}
	l.Extend(t0.Add(-time.Second), 8, d)
	if l.Valid(t0, ok) {
		t.Fatal("lease of term 8 valid in term 7")
	}
	if !l.Valid(t0.Add(-time.Second), rangeraft.LeaseStatus{Leader: true, Term: 8, AppliedTerm: 8}) {
		t.Fatal("lease of term 8 not valid in term 8")
	}
	l.Drop()
	if l.Valid(t0.Add(-time.Second), rangeraft.LeaseStatus{Leader: true, Term: 8, AppliedTerm: 8}) {
		t.Fatal("dropped lease is valid")
	}
}

func TestLeaseDurationFor(t *testing.T) {
	if got, want := rangeraft.LeaseDurationFor(100*time.Millisecond, 10), 720*time.Millisecond; got != want {
		t.Fatalf("LeaseDurationFor(100ms, 10) = %v, want %v", got, want)
	}
	if got := rangeraft.LeaseDurationFor(100*time.Millisecond, 2); got != 0 {
		t.Fatalf("LeaseDurationFor(100ms, 2) = %v, want 0 (no lease)", got)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

const testLease = 700 * time.Millisecond

func leaseGroup(t *testing.T) (*testGroup, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) {
		c.Clock, c.LeaseDuration = clk.Now, testLease
	})
	return g, clk
}

func (nd *testNode) readMode(m rangeraft.ReadMode) (*readOutcome, *rangeraft.Read) {
	o := &readOutcome{}
	rd := &rangeraft.Read{Mode: m}
	rd.Done = func(err error) {
		o.calls++
		o.err, o.applied = err, nd.applied
	}
	nd.rr.ReadIndex(rd)
	return o, rd
}

// countReadIndex counts the MsgHeartbeats carrying a read context that a
// node sends (the Raft round trip a lease read avoids).
func countHeartbeatsWithCtx(g *testGroup, from uint64) *int {
	n := new(int)
	g.drop = func(m *pb.Message) bool {
		if m.GetFrom() == from && m.GetType() == pb.MsgHeartbeat && len(m.GetContext()) > 0 {
			*n++
		}
		return false
	}
	return n
}

// A ReadIndex round grants a lease; while it holds, a lease read is served
// with no round trip (even with the leader cut off); once it expired, a
// lease read takes a round (and the cut-off leader cannot complete it).
func TestLeaseReadServedLocallyUntilExpiry(t *testing.T) {
	g, clk := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	w := nd.propose(1, "w")
	g.stabilize()
	wantDoneOnce(t, "write", w)

	// No lease before a round.
	if nd.rr.LeaseValid() {
		t.Fatal("lease valid before any ReadIndex round")
	}
	rounds := countHeartbeatsWithCtx(g, 1)
	r, rd := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls != 1 || r.err != nil || rd.Path != rangeraft.PathReadIndex {
		t.Fatalf("first lease read: %d calls, err %v, path %v; want served by a read index round", r.calls, r.err, rd.Path)
	}
	if *rounds == 0 {
		t.Fatal("first lease read sent no read-index heartbeat")
	}
	if !nd.rr.LeaseValid() {
		t.Fatal("no lease after a confirmed round")
	}

	// Within the lease: served at once, even with the leader isolated.
	g.isolated[1] = true
	clk.Advance(testLease - time.Millisecond)
	before := *rounds
	r, rd = nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls != 1 || r.err != nil || rd.Path != rangeraft.PathLease {
		t.Fatalf("lease read within the lease: %d calls, err %v, path %v", r.calls, r.err, rd.Path)
	}
	if r.applied < nd.lastIndex() {
		t.Fatalf("lease read served at applied %d < commit %d", r.applied, nd.lastIndex())
	}
	if *rounds != before {
		t.Fatal("lease read sent a read-index round")
	}

	// Expired: the read needs a round, which the isolated leader cannot get.
	clk.Advance(time.Millisecond)
	if nd.rr.LeaseValid() {
		t.Fatal("lease valid at its expiry")
	}
	r, _ = nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls != 0 {
		t.Fatalf("lease read after expiry completed (err %v) without a quorum", r.err)
	}
	g.isolated[1] = false
	g.tick()
	if r.calls != 1 || r.err != nil {
		t.Fatalf("lease read after reconnecting: %d calls, err %v", r.calls, r.err)
	}
}

// A lease read waits for the leader's commit index to apply.
func TestLeaseReadWaitsForCommitToApply(t *testing.T) {
	g, _ := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	r, _ := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.err != nil || !nd.rr.LeaseValid() {
		t.Fatalf("setup: read err %v, lease %v", r.err, nd.rr.LeaseValid())
	}
	nd.holdApply = true
	w := nd.propose(1, "w")
	g.stabilize()
	r, rd := nd.readMode(rangeraft.ReadLease)
	if r.calls != 0 {
		t.Fatalf("lease read served at applied %d before the committed write applied", r.applied)
	}
	nd.applyBacklog()
	wantDoneOnce(t, "write", w)
	if r.calls != 1 || r.err != nil || rd.Path != rangeraft.PathLease {
		t.Fatalf("lease read after apply: %d calls, err %v, path %v", r.calls, r.err, rd.Path)
	}
}

// A transfer voids the lease at once, and a round that was in flight when
// it began does not renew it.
func TestLeaseDroppedOnTransfer(t *testing.T) {
	g, _ := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	r, _ := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.err != nil || !nd.rr.LeaseValid() {
		t.Fatalf("setup: read err %v, lease %v", r.err, nd.rr.LeaseValid())
	}
	// A round in flight (its heartbeat answers held back) when the
	// transfer starts.
	var held []*pb.Message
	g.drop = func(m *pb.Message) bool {
		if m.GetType() == pb.MsgHeartbeatResp {
			held = append(held, m)
			return true
		}
		return false
	}
	inflight, _ := nd.readMode(rangeraft.ReadLeader)
	nd.rr.FlushReads()
	g.stabilize()
	// Node 3 is cut off so the transfer to it stays in progress.
	g.isolated[3] = true
	nd.rr.TransferLeader(3)
	g.stabilize()
	if nd.rr.BasicStatus().LeadTransferee != 3 {
		t.Fatalf("transfer not in progress: transferee %d", nd.rr.BasicStatus().LeadTransferee)
	}
	if nd.rr.LeaseValid() {
		t.Fatal("lease valid during a leadership transfer")
	}
	g.drop = nil
	for _, m := range held {
		g.deliver(m)
	}
	g.stabilize()
	if inflight.calls != 1 || inflight.err != nil {
		t.Fatalf("in-flight read: %d calls, err %v", inflight.calls, inflight.err)
	}
	if nd.rr.LeaseValid() {
		t.Fatal("a round begun before the transfer renewed the lease")
	}
	// A lease read during the transfer falls back to a round.
	r, rd := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls == 1 && rd.Path == rangeraft.PathLease {
		t.Fatal("lease read served from the lease during a transfer")
	}
}

// A term change voids the lease: the old leader, deposed, holds none, and
// the new leader holds none before its own round.
func TestLeaseDroppedOnTermChange(t *testing.T) {
	g, _ := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	r, _ := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.err != nil || !nd.rr.LeaseValid() {
		t.Fatalf("setup: read err %v, lease %v", r.err, nd.rr.LeaseValid())
	}
	// Followers in their lease refuse node 2's campaign.
	if err := g.node(2).rr.Campaign(); err != nil {
		t.Fatal(err)
	}
	g.stabilize()
	if g.leader() != 1 || !nd.rr.LeaseValid() {
		t.Fatalf("campaign within the followers' lease: leader %d, lease %v", g.leader(), nd.rr.LeaseValid())
	}
	// Cut off, the leader is replaced; the lease clock never moved, yet
	// the new term voids the lease.
	g.isolated[1] = true
	g.tickUntil("new leader", 5*electionTicks, func() bool { return g.leader(2, 3) != 0 })
	newLead := g.leader(2, 3)
	g.isolated[1] = false
	g.tick()
	if nd.rr.LeaseValid() {
		t.Fatal("deposed leader still holds a lease")
	}
	r, _ = nd.readMode(rangeraft.ReadLease)
	if r.calls != 1 {
		t.Fatalf("lease read on the deposed leader: %d calls", r.calls)
	}
	wantNotLeader(t, "lease read on the deposed leader", r.err, newLead)
	if g.node(newLead).rr.LeaseValid() {
		t.Fatal("new leader holds a lease before any round of its own")
	}
}

// A follower read on a follower gets a read index from the leader and
// waits until it applied it; it sees a write the leader acknowledged even
// while the follower's apply lags.
func TestFollowerReadSeesAcknowledgedWrite(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	f := g.node(2)
	f.holdApply = true
	w := g.node(1).propose(1, "w")
	g.stabilize()
	wantDoneOnce(t, "write", w)
	wIndex := g.node(1).applied
	if f.applied >= wIndex {
		t.Fatalf("setup: follower already applied %d >= %d", f.applied, wIndex)
	}
	r, rd := f.readMode(rangeraft.ReadFollower)
	f.rr.FlushReads()
	g.stabilize()
	if r.calls != 0 {
		t.Fatalf("follower read completed (err %v) at applied %d before the write at %d", r.err, f.applied, wIndex)
	}
	f.applyBacklog()
	if r.calls != 1 || r.err != nil || rd.Path != rangeraft.PathFollower {
		t.Fatalf("follower read: %d calls, err %v, path %v; want one success by follower", r.calls, r.err, rd.Path)
	}
	if r.applied < wIndex {
		t.Fatalf("follower read served at %d < write index %d", r.applied, wIndex)
	}
	// Leader and linearizable modes still refuse on a follower.
	for _, m := range []rangeraft.ReadMode{rangeraft.ReadLeader, rangeraft.ReadLease} {
		r, _ := f.readMode(m)
		wantNotLeader(t, "leader-only read on a follower", r.err, 1)
	}
}

// A follower cut off from the leader never serves a follower read: the
// round fails (retryably) once it gives up on the leader.
func TestFollowerReadCutOffFails(t *testing.T) {
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { c.ReadTimeoutTicks = 3 * electionTicks })
	g.elect(1)
	f := g.node(3)
	g.isolated[3] = true
	r, _ := f.readMode(rangeraft.ReadFollower)
	f.rr.FlushReads()
	g.tickUntil("follower read outcome", 4*electionTicks, func() bool { return r.calls > 0 })
	if r.err == nil {
		t.Fatal("cut-off follower served a follower read")
	}
	// Once it knows no leader, it refuses at once.
	if f.rr.Leader() != 0 {
		t.Fatalf("cut-off follower still follows %d", f.rr.Leader())
	}
	r, _ = f.readMode(rangeraft.ReadFollower)
	if r.calls != 1 {
		t.Fatalf("follower read with no leader: %d calls, want a synchronous failure", r.calls)
	}
	wantNotLeader(t, "follower read with no leader", r.err, 0)
}

// A round that began before the owner voided the lease (DropLease, e.g. a
// descriptor change) does not renew it when its quorum answers.
func TestLeaseNotRenewedByRoundBegunBeforeDrop(t *testing.T) {
	g, _ := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	var held []*pb.Message
	g.drop = func(m *pb.Message) bool {
		if m.GetType() == pb.MsgHeartbeatResp {
			held = append(held, m)
			return true
		}
		return false
	}
	r, _ := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	nd.rr.DropLease()
	g.drop = nil
	for _, m := range held {
		g.deliver(m)
	}
	g.stabilize()
	if r.calls != 1 || r.err != nil {
		t.Fatalf("read: %d calls, err %v", r.calls, r.err)
	}
	if nd.rr.LeaseValid() {
		t.Fatal("a round begun before DropLease renewed the lease")
	}
	// The next round does.
	r, _ = nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.err != nil || !nd.rr.LeaseValid() {
		t.Fatalf("next round: err %v, lease %v", r.err, nd.rr.LeaseValid())
	}
}

// Issue 15 item 3 (Q2): raft forgets a transfer after an election timeout
// (LeadTransferee cleared) but its MsgTimeoutNow may still wait in a
// queue. Delivered later, it makes the target win a forced election that
// ignores the followers' leases, so the old leader must not have renewed
// its lease meanwhile, however long the message waited.
func TestLeaseNotRenewedWhileTimeoutNowMayBeInFlight(t *testing.T) {
	g, clk := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	w := nd.propose(1, "w1")
	g.stabilize()
	wantDoneOnce(t, "write", w)

	var held []*pb.Message
	g.drop = func(m *pb.Message) bool {
		if m.GetType() == pb.MsgTimeoutNow {
			held = append(held, m)
			return true
		}
		return false
	}
	if err := nd.rr.TransferLeader(3); err != nil {
		t.Fatal(err)
	}
	g.stabilize()
	if len(held) != 1 {
		t.Fatalf("setup: %d MsgTimeoutNow held, want 1", len(held))
	}
	g.tickUntil("transfer forgotten by raft", 3*electionTicks, func() bool { return nd.rr.BasicStatus().LeadTransferee == 0 })
	// Well past one election timeout after the transfer began, a round
	// confirms leadership (the read is served) but grants no lease.
	clk.Advance(3 * testLease)
	r, rd := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls != 1 || r.err != nil || rd.Path != rangeraft.PathReadIndex {
		t.Fatalf("read after the aborted transfer: %d calls, err %v, path %v; want a read index round", r.calls, r.err, rd.Path)
	}
	if nd.rr.LeaseValid() {
		t.Fatal("lease renewed while the aborted transfer's MsgTimeoutNow may still arrive")
	}

	// What the lease would have allowed: the late MsgTimeoutNow arrives,
	// node 3 wins a forced election and commits a write while node 1,
	// cut off, still believes it leads.
	g.drop = nil
	g.isolated[1] = true
	if err := g.node(3).rr.Step(held[0]); err != nil {
		t.Fatal(err)
	}
	g.stabilize()
	if g.leader(2, 3) != 3 {
		t.Fatalf("late MsgTimeoutNow: leader among 2, 3 is %d, want 3", g.leader(2, 3))
	}
	w2 := g.node(3).propose(2, "w2")
	g.stabilize()
	wantDoneOnce(t, "write on the new leader", w2)
	if !nd.rr.IsLeader() {
		t.Fatal("setup: the cut-off node 1 no longer believes it leads")
	}
	r, rd = nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.calls != 0 && rd.Path == rangeraft.PathLease {
		t.Fatal("deposed leader served a lease read that misses the new leader's write")
	}
}

// Issue 15 item 3 (Q2): a transfer to the leader itself is refused and
// leaves the transfer in progress alone (raft would abort it, clearing
// LeadTransferee while its MsgTimeoutNow may be in flight).
func TestTransferToSelfRefused(t *testing.T) {
	g, _ := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	g.isolated[3] = true
	if err := nd.rr.TransferLeader(3); err != nil {
		t.Fatal(err)
	}
	g.stabilize()
	if got := nd.rr.BasicStatus().LeadTransferee; got != 3 {
		t.Fatalf("setup: transferee %d, want 3", got)
	}
	if err := nd.rr.TransferLeader(1); !errors.Is(err, rangeraft.ErrTransferToSelf) {
		t.Fatalf("transfer to self: err %v, want ErrTransferToSelf", err)
	}
	g.stabilize()
	if got := nd.rr.BasicStatus().LeadTransferee; got != 3 {
		t.Fatalf("transfer to self changed the transfer in progress: transferee %d, want 3", got)
	}
}

// Issue 15 item 3 (Q3): what keeps a quiesced leader's lease safe. The
// lease ends by the clock alone (no tick, no message renews or extends
// it), and followers that acknowledged the round and then stopped ticking
// keep refusing other candidates: their election counter is frozen, so
// quiescence only lengthens the refusal the lease relies on.
func TestQuiescedGroupLeaseEndsByClockAndFollowersRefuseVotes(t *testing.T) {
	g, clk := leaseGroup(t)
	g.elect(1)
	nd := g.node(1)
	r, _ := nd.readMode(rangeraft.ReadLease)
	nd.rr.FlushReads()
	g.stabilize()
	if r.err != nil || !nd.rr.LeaseValid() {
		t.Fatalf("setup: read err %v, lease %v", r.err, nd.rr.LeaseValid())
	}
	term := nd.rr.BasicStatus().GetTerm()
	// Quiesced: nobody ticks any more.
	g.frozen = map[uint64]bool{1: true, 2: true, 3: true}
	clk.Advance(testLease - time.Millisecond)
	if !nd.rr.LeaseValid() {
		t.Fatal("lease ended early")
	}
	clk.Advance(time.Millisecond)
	if nd.rr.LeaseValid() {
		t.Fatal("a quiesced leader's lease outlived its expiry")
	}
	// Long after, node 2 wakes alone (cut off from the leader) and
	// campaigns: node 3, still quiesced, refuses it.
	clk.Advance(100 * testLease)
	g.isolated[1] = true
	for range 3 {
		if err := g.node(2).rr.Campaign(); err != nil {
			t.Fatal(err)
		}
		g.stabilize()
	}
	if lead := g.leader(2, 3); lead != 0 {
		t.Fatalf("node %d won an election against quiesced followers of a live leader", lead)
	}
	if got := g.node(3).rr.BasicStatus().GetTerm(); got != term {
		t.Fatalf("quiesced follower moved to term %d (from %d)", got, term)
	}
}
