// Elided heartbeats: a leader's plain heartbeat to a follower that
// answered one of its appends within the last heartbeat interval, and the
// check that makes leaving it out safe.
//
// A plain heartbeat (no read context) does three things (raft.go,
// handleHeartbeat and stepLeader's MsgHeartbeatResp): it resets the
// follower's election timer and tells it the leader, it carries a commit
// index, and its answer marks the follower recently active (CheckQuorum)
// and lets the leader resend an append the follower may have lost. When
// the follower answered an append of this term within the last heartbeat
// interval, it received that append (which reset its timer just as a
// heartbeat would) at most an interval plus a round trip ago; its answer
// marked it active; and the appends of an awake range carry the commit
// (commit-only appends and advances, commit_advance.go). Losses are
// recovered as before, at most one interval later: a follower that stops
// answering (lost appends, a crash, a partition) gets heartbeats again
// from the next interval on, since its last answer ages out.
//
// So over a range that takes writes, the leader sends heartbeats only to
// followers that fell quiet, and a store saves a message, its answer and
// the Raft work of both per follower per interval (docs/architecture.md,
// "Elided heartbeats"). Heartbeats with a read context (ReadIndex rounds,
// which also renew leases) are never elided.

package rangeraft

import (
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// elideMinElectionIntervals is the least election timeout, in heartbeat
// intervals, at which heartbeats are elided: a follower may go up to about
// two intervals between the leader's messages, which must stay well below
// its election timeout.
const elideMinElectionIntervals = 5

// answer is when this replica, leading term, last stepped an accepted
// append answer from follower id.
type answer struct {
	id, term uint64
	at       time.Time
}

// noteAnswer records an accepted append answer the leader just stepped.
func (r *Replica) noteAnswer(m *pb.Message) {
	if m.GetType() != pb.MsgAppResp || m.GetReject() || !r.IsLeader() || r.cfg.HeartbeatInterval <= 0 {
		return
	}
	term := r.rn.BasicStatus().GetTerm()
	if m.GetTerm() != term {
		return
	}
	a := answer{m.GetFrom(), term, r.cfg.Clock()}
	for i := range r.answers {
		if r.answers[i].id == a.id {
			r.answers[i] = a
			return
		}
	}
	r.answers = append(r.answers, a)
}

// ElideHeartbeat reports whether m, a message this replica sent, is a
// plain heartbeat its follower does not need: m has no read context, this
// replica leads m's term, the heartbeat interval is short enough against
// the election timeout, the follower answered an append of this term
// within the last heartbeat interval (Config.HeartbeatInterval of clock
// time, not ticks: a quiesced leader does not tick, and its first
// heartbeat on waking must not count an answer from before it slept as
// recent), and its progress is in
// StateReplicate and not paused (a paused flow waits for the heartbeat's
// answer to resend). The caller drops m.
func (r *Replica) ElideHeartbeat(m *pb.Message) bool {
	if m.GetType() != pb.MsgHeartbeat || len(m.GetContext()) > 0 || !r.IsLeader() || r.cfg.HeartbeatInterval <= 0 {
		return false
	}
	if r.cfg.ElectionTicks < elideMinElectionIntervals*r.cfg.HeartbeatTicks {
		return false
	}
	term := r.rn.BasicStatus().GetTerm()
	if m.GetTerm() != term {
		return false
	}
	recent := false
	for _, a := range r.answers {
		if a.id == m.GetTo() {
			recent = a.term == term && r.cfg.Clock().Sub(a.at) <= r.cfg.HeartbeatInterval
			break
		}
	}
	if !recent {
		return false
	}
	flowing := false
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == m.GetTo() {
			flowing = pr.State == tracker.StateReplicate && !pr.IsPaused()
		}
	})
	return flowing
}
