// Log truncation: when a replica proposes truncating its Raft log (the
// policy and its thresholds come from config; the decision is
// rangeraft.Replica.TruncationTarget's), and the command it proposes.

package store

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

// maybeTruncate proposes a log truncation when the policy allows one. It
// decides every few applied entries, and on ticks (force) while some were
// applied since the last decision or a long log is held back: a follower
// whose store just went down stops holding truncation back even if the
// writes have stopped.
// Called with r.mu held.
func (r *Replica) maybeTruncate(force bool) {
	s := r.store
	n := r.mu.appliesSinceTruncCheck
	if n == 0 || (!force && n < int(s.cfg.LogTruncateThreshold/4)+1) {
		return
	}
	r.mu.appliesSinceTruncCheck = 0
	first, _ := r.log.FirstIndex()
	policy := s.cfg.truncationPolicy()
	policy.Live = func(id uint64) bool {
		st, ok := r.storeOfReplica(id)
		return ok && s.liveness.isLive(st)
	}
	idx, ok := r.mu.rr.TruncationTarget(policy, first)
	if !ok {
		// A log long enough to truncate is being held back (a follower
		// that is behind, maybe on a store about to be declared down):
		// decide again on the next tick even if nothing more applies.
		if last, _ := r.log.LastIndex(); last >= first && last-first+1 >= s.cfg.LogTruncateThreshold {
			r.mu.appliesSinceTruncCheck = 1
		}
		return
	}
	term, err := r.log.Term(idx)
	if err != nil {
		return
	}
	cmd := truncateCommand(idx, term)
	r.mu.rr.Propose(&rangeraft.Proposal{ID: s.newProposalID(), Cmd: cmd, Done: func(any, error) {}})
}

func truncateCommand(index, term uint64) []byte {
	b, err := proto.Marshal(&rangekvpb.Command{Cmd: &rangekvpb.Command_TruncateLog{TruncateLog: &rangekvpb.TruncateLogCmd{Index: index, Term: term}}})
	if err != nil {
		panic(err)
	}
	return b
}

// compactLog truncates the log up to this leader's applied index on every
// replica, through Raft, regardless of the truncation policy (the admin
// CompactLog call, server_admin.go), and answers once it applied here.
func (r *Replica) compactLog(ctx context.Context) (*rangekvpb.CompactLogResponse, error) {
	resp := &rangekvpb.CompactLogResponse{}
	resp.FirstIndexBefore, _ = r.log.FirstIndex()
	resp.LastIndexBefore, _ = r.log.LastIndex()
	r.mu.Lock()
	if r.mu.destroyed {
		r.mu.Unlock()
		return &rangekvpb.CompactLogResponse{Error: &rangekvpb.RangeError{Message: "range removed from this store",
			RangeNotFound: &rangekvpb.RangeNotFound{RangeId: r.rangeID}}}, nil
	}
	idx, term := r.mu.applied.Index, r.mu.applied.Term
	r.mu.Unlock()
	if idx >= resp.FirstIndexBefore {
		cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_TruncateLog{TruncateLog: &rangekvpb.TruncateLogCmd{Index: idx, Term: term}}}
		if _, rerr, err := r.propose(ctx, cmd); rerr != nil || err != nil {
			return &rangekvpb.CompactLogResponse{Error: rerr}, err
		}
	}
	resp.FirstIndexAfter, _ = r.log.FirstIndex()
	resp.LastIndexAfter, _ = r.log.LastIndex()
	resp.TruncatedIndex = resp.FirstIndexAfter - 1
	return resp, nil
}
