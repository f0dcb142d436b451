// Log truncation: when a replica proposes truncating its Raft log (the
// policy is rangeraft/driver's, its thresholds come from config; the bound
// is rangeraft.Replica.TruncationTarget's), and the command it proposes.

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
// writes have stopped (driver.Truncator).
// Called with r.mu held.
func (r *Replica) maybeTruncate(force bool) {
	s := r.store
	idx, term, ok := r.mu.trunc.Decide(s.cfg.truncationPolicy(), r.mu.rr, r.log, force, r.storeLive)
	if !ok {
		return
	}
	cmd := truncateCommand(idx, term)
	r.mu.rr.Propose(&rangeraft.Proposal{ID: s.newProposalID(), Cmd: cmd, Done: func(any, error) {}})
}

// storeLive reports whether replica id's store is live (store liveness):
// a follower on a store that is down does not hold truncation back once
// the log is too long.
func (r *Replica) storeLive(id uint64) bool {
	st, ok := r.storeOfReplica(id)
	return ok && r.store.liveness.isLive(st)
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
	r.lock()
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
