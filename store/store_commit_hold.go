// Commit-only appends wait briefly for a later append to carry them.
//
// Raft's leader broadcasts an append to every follower each time its
// commit index moves, and when the follower already has every entry that
// append is empty: it only carries the new commit index, and the follower
// answers it. Under a steady load that is half of all appends and half of
// all append responses, and each one costs the follower a pass of its
// own. The next append with entries to the same replica carries the same
// commit index (or a newer one), so the transport holds a commit-only
// append for at most the hold delay and drops it if such an append comes
// first.
//
// Invariants:
//   - a held append is sent, or replaced by a later append to the same
//     replica whose commit index is at least as high, within the delay
//     (or dropped with the rest of the peer's queue when its stream
//     breaks, like any queued message: raft resends);
//   - any other message to that replica (a ReadIndex answer, a vote, a
//     timeout-now) is queued after the held append, never before it, so a
//     follower that reads at the leader's commit index has that index;
//   - a batch carrying coalesced heartbeats carries the held appends
//     ahead of them, so a quiesce heartbeat never reaches a follower
//     whose commit index is still held back.
//
// Only the leader's commit broadcasts are delayed: the leader commits on
// its followers' append responses, which are never held, so a write's
// latency does not change; a follower applies up to the delay later.
//
// Commit advances (issue 18). When the follower has already acknowledged
// every entry the commit-only append anchors at (raft's progress of it is
// in StateReplicate with Match at or past the append's index), its answer
// would teach the leader nothing, and over many ranges these appends and
// answers were a third of the Raft messages per put. The leader then
// sends, in the append's place, the heartbeat rangeraft.CommitAdvance
// builds (commit min(commit, index), at most what raft's own heartbeat
// carries) marked commit_advance; a held append is rewritten so when the
// follower's answer to the entries arrives while it waits (upgradeHeld).
// An advance is held and folded like the appends, but rides on the next
// batch to the peer, whatever it carries (or the hold timer, or the flush
// tick), ahead of the batch's messages; it never joins the coalesced
// heartbeats. The follower steps it as its leader's heartbeat and drops
// the one answer it draws (Replica.unmute), so nothing is acknowledged
// that raft would not (a heartbeat answer acknowledges no entry), and no
// commit index goes past what raft would send. Apply lag on the follower:
// at most the hold delay, as for the held appends, usually one batch.

package store

import (
	"cmp"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/raft/v3/raftpb"
	"slices"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type holdKey struct{ rangeID, replicaID uint64 }

// isCommitOnly reports whether env is an append without entries or a
// commit advance standing for one.
func isCommitOnly(env *rangekvpb.RaftMessage) bool {
	m := env.Message
	return env.CommitAdvance || (m.GetType() == pb.MsgApp && len(m.GetEntries()) == 0)
}

// foldedCounters count what hold and unhold drop: every commit-only
// append (all), and of them the commit advances (advances).
type foldedCounters struct{ all, advances prometheus.Counter }

func (f foldedCounters) inc(dropped *rangekvpb.RaftMessage) {
	f.all.Inc()
	if dropped.CommitAdvance {
		f.advances.Inc()
	}
}

// hold keeps env (a commit-only append or commit advance) in place of any
// older one for the same replica (counting the one it drops as folded),
// and reports whether the peer must arm its hold timer.
func (p *peer) hold(env *rangekvpb.RaftMessage, folded foldedCounters) (arm bool) {
	p.held.Lock()
	defer p.held.Unlock()
	if p.held.msgs == nil {
		p.held.msgs = make(map[holdKey]*rangekvpb.RaftMessage)
	}
	k := holdKey{env.RangeId, env.Message.GetTo()}
	old, ok := p.held.msgs[k]
	if ok {
		if old.Message.GetTerm() > env.Message.GetTerm() ||
			(old.Message.GetTerm() == env.Message.GetTerm() && old.Message.GetCommit() > env.Message.GetCommit()) {
			folded.inc(env)
			return false // keep the newer one
		}
		folded.inc(old)
	}
	arm = !p.held.armed
	p.held.armed = true
	p.held.msgs[k] = env
	return arm
}

// unhold removes the append held for env's replica. It returns the held
// append when it must still be sent ahead of env: always, unless env is
// an append of the same term carrying at least the same commit index, in
// which case it counts the held one as folded.
func (p *peer) unhold(env *rangekvpb.RaftMessage, folded foldedCounters) *rangekvpb.RaftMessage {
	p.held.Lock()
	defer p.held.Unlock()
	if len(p.held.msgs) == 0 {
		return nil
	}
	k := holdKey{env.RangeId, env.Message.GetTo()}
	old, ok := p.held.msgs[k]
	if !ok {
		return nil
	}
	delete(p.held.msgs, k)
	m := env.Message
	if m.GetType() == pb.MsgApp && m.GetTerm() == old.Message.GetTerm() && m.GetCommit() >= old.Message.GetCommit() {
		folded.inc(old)
		return nil
	}
	return old
}

// takeHeld removes and returns every held append (only the commit
// advances when advancesOnly), appended to dst; once none is left held,
// the next held append arms the hold timer again.
func (p *peer) takeHeld(dst []*rangekvpb.RaftMessage, advancesOnly bool) []*rangekvpb.RaftMessage {
	p.held.Lock()
	defer p.held.Unlock()
	n := len(dst)
	for k, m := range p.held.msgs {
		if advancesOnly && !m.CommitAdvance {
			continue
		}
		dst = append(dst, m)
		delete(p.held.msgs, k)
	}
	if len(p.held.msgs) == 0 {
		// The next held append arms the timer again; while appends stay
		// held (an advances-only take) it stays armed for them.
		p.held.armed = false
	}
	// In range order, not the map's: a replayed simulation sends the same
	// batch every time.
	slices.SortFunc(dst[n:], func(a, b *rangekvpb.RaftMessage) int {
		return cmp.Or(cmp.Compare(a.RangeId, b.RangeId), cmp.Compare(a.Message.GetTo(), b.Message.GetTo()))
	})
	return dst
}

// upgradeHeld rewrites the commit-only append held for replicaID of
// rangeID on storeID, if there is one, into a commit advance when advance
// (rangeraft.Replica.CommitAdvance) allows it now, and reports whether it
// did. The leader calls it after stepping that follower's append answer:
// an append raft broadcast on commit before the follower's answer to the
// entries arrived could not be an advance then, and usually can now.
// Called with the leader's r.mu held (lock order: r.mu, t.mu, held).
func (t *transport) upgradeHeld(storeID, rangeID, replicaID uint64, advance func(*pb.Message) (*pb.Message, bool)) bool {
	t.mu.Lock()
	p := t.mu.peers[storeID]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.held.Lock()
	defer p.held.Unlock()
	k := holdKey{rangeID, replicaID}
	old, ok := p.held.msgs[k]
	if !ok || old.CommitAdvance {
		return false
	}
	hb, ok := advance(old.Message)
	if !ok {
		return false
	}
	p.held.msgs[k] = &rangekvpb.RaftMessage{RangeId: old.RangeId, FromStore: old.FromStore, ToStore: old.ToStore,
		Message: hb, CommitAdvance: true}
	return true
}
