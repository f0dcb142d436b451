// Commit advances: a leader's commit-only append that tells its follower
// nothing but the commit index, rewritten as the heartbeat raft could
// have sent in its place, and the check that makes the rewrite safe.
//
// After each commit raft's leader broadcasts an append to every follower
// (bcastAppend); to a follower that already has every entry the append is
// empty and carries only the commit index. The follower answers it with an
// MsgAppResp at the append's index. When the leader's progress of that
// follower is in StateReplicate with Match at or past the append's index,
// that answer only re-acknowledges Match: stepLeader sets RecentActive and
// nothing else (MaybeUpdate is false, the probe and snapshot branches do
// not apply). The follower, for its part, would commit min(commit, index)
// (handleAppendEntries, maybeAppend with no entries), and a heartbeat with
// that commit does the same: the commit is at most Match, which the
// follower acknowledged durably in this term, the bound raft's own
// heartbeats keep (sendHeartbeat: min(Match, committed)). So the append
// can travel as a heartbeat whose answer the follower's owner drops.

package rangeraft

import (
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// CommitAdvance reports whether m, an append this replica sent (from a
// Ready, maybe not delivered yet), is a commit-only append whose answer
// would teach this leader nothing now, and if so returns the heartbeat
// that carries what the append tells its follower: same From, To and
// Term, Commit min(m.Commit, m.Index), no context. That is: m is a MsgApp
// without entries of the current term, this replica still leads, and its
// progress of m.To is in StateReplicate with Match >= m.Index. Within a
// term Match never falls, and m.Commit was at most the commit index when
// m was made, so the answer holds for as long as the term does; the
// caller sends the heartbeat in m's place and the follower's owner drops
// its answer.
func (r *Replica) CommitAdvance(m *pb.Message) (*pb.Message, bool) {
	if m.GetType() != pb.MsgApp || len(m.GetEntries()) > 0 || !r.IsLeader() {
		return nil, false
	}
	bs := r.rn.BasicStatus()
	if m.GetTerm() != bs.GetTerm() || bs.RaftState != raft.StateLeader {
		return nil, false
	}
	caughtUp := false
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == m.GetTo() {
			caughtUp = pr.State == tracker.StateReplicate && pr.Match >= m.GetIndex()
		}
	})
	if !caughtUp {
		return nil, false
	}
	commit := min(m.GetCommit(), m.GetIndex())
	return &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: m.From, To: m.To, Term: m.Term, Commit: &commit}, true
}
