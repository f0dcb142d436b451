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

package store

import (
	"cmp"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/raft/v3/raftpb"
	"slices"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type holdKey struct{ rangeID, replicaID uint64 }

// isCommitOnly reports whether m is an append without entries.
func isCommitOnly(m *pb.Message) bool {
	return m.GetType() == pb.MsgApp && len(m.GetEntries()) == 0
}

// hold keeps env (a commit-only append) in place of any older one for the
// same replica (counting the one it drops as folded), and reports whether
// the caller must arm the peer's hold timer (it was not armed).
func (p *peer) hold(env *rangekvpb.RaftMessage, folded prometheus.Counter) (arm bool) {
	p.held.Lock()
	defer p.held.Unlock()
	if p.held.msgs == nil {
		p.held.msgs = make(map[holdKey]*rangekvpb.RaftMessage)
	}
	k := holdKey{env.RangeId, env.Message.GetTo()}
	old, ok := p.held.msgs[k]
	if ok {
		folded.Inc()
		if old.Message.GetTerm() > env.Message.GetTerm() ||
			(old.Message.GetTerm() == env.Message.GetTerm() && old.Message.GetCommit() > env.Message.GetCommit()) {
			return false // keep the newer one
		}
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
func (p *peer) unhold(env *rangekvpb.RaftMessage, folded prometheus.Counter) *rangekvpb.RaftMessage {
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
		folded.Inc()
		return nil
	}
	return old
}

// takeHeld removes and returns every held append, appended to dst; the
// next held append arms the hold timer again.
func (p *peer) takeHeld(dst []*rangekvpb.RaftMessage) []*rangekvpb.RaftMessage {
	p.held.Lock()
	defer p.held.Unlock()
	p.held.armed = false
	n := len(dst)
	for k, m := range p.held.msgs {
		dst = append(dst, m)
		delete(p.held.msgs, k)
	}
	// In range order, not the map's: a replayed simulation sends the same
	// batch every time.
	slices.SortFunc(dst[n:], func(a, b *rangekvpb.RaftMessage) int { return cmp.Compare(a.RangeId, b.RangeId) })
	return dst
}
