// Proposing a command through a replica and waiting for its outcome (a
// context that ends first makes it ambiguous), and turning outcomes into
// range errors callers act on.

package store

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

type outcome struct {
	value any
	err   error
}

// propose replicates cmd through r and waits for it to apply. A context
// that ends first makes the outcome ambiguous: the command may still apply.
func (r *Replica) propose(ctx context.Context, cmd *rangekvpb.Command) (any, *rangekvpb.RangeError, error) {
	s := r.store
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, nil, status.Error(codes.Internal, err.Error())
	}
	ch := make(chan outcome, 1)
	p := &rangeraft.Proposal{ID: s.newProposalID(), Cmd: data, Done: func(v any, err error) { handOff(s, ch, outcome{v, err}) },
		Batchable: isDataCommand(cmd)}
	if !r.pushProposal(p, s.cfg.MaxPendingProposals) {
		s.metrics.proposals.WithLabelValues("busy").Inc()
		return nil, &rangekvpb.RangeError{Message: "too many pending writes, or the store is stopping; nothing was applied",
			ServerBusy: &rangekvpb.ServerBusy{Reason: "proposal queue full or store stopping"}}, nil
	}
	s.sched.enqueue(r.rangeID, flagWork)
	select {
	case o := <-ch:
		if o.err != nil {
			s.metrics.proposals.WithLabelValues("error").Inc()
			rerr, gerr := r.outcomeToError(o.err)
			return nil, rerr, gerr
		}
		s.metrics.proposals.WithLabelValues("applied").Inc()
		return o.value, nil, nil
	case <-ctx.Done():
		s.metrics.proposals.WithLabelValues("ambiguous").Inc()
		return nil, &rangekvpb.RangeError{Message: "request ended before the write completed; it may or may not apply: " + ctx.Err().Error(),
			AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: ctx.Err().Error()}}, nil
	}
}

// isDataCommand reports the commands that may share a log entry with
// others (rangeraft.Proposal.Batchable): client writes, whose effect does
// not depend on their log index. Splits, truncations and the like get an
// entry each.
func isDataCommand(cmd *rangekvpb.Command) bool {
	switch cmd.Cmd.(type) {
	case *rangekvpb.Command_Put, *rangekvpb.Command_Delete, *rangekvpb.Command_Cas, *rangekvpb.Command_Incr, *rangekvpb.Command_Batch:
		return true
	}
	return false
}

// outcomeToError turns a proposal or read error into a range error or a
// gRPC status.
func (r *Replica) outcomeToError(err error) (*rangekvpb.RangeError, error) {
	var nl *rangeraft.NotLeaderError
	var amb *rangeraft.AmbiguousError
	var ce *CommandError
	var em *epochMismatchError
	var kn *keyNotInRangeError
	switch {
	case errors.As(err, &nl):
		return r.notLeader(nl.Leader), nil
	case errors.As(err, &amb):
		return &rangekvpb.RangeError{Message: amb.Error(), AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: amb.Reason}}, nil
	case errors.Is(err, rangeraft.ErrStaleCommand):
		return &rangekvpb.RangeError{Message: err.Error(), StaleCommand: &rangekvpb.StaleCommand{Reason: err.Error()}}, nil
	case errors.Is(err, rangeraft.ErrBusy), errors.Is(err, rangeraft.ErrStopped), errors.Is(err, rangeraft.ErrReadTimeout):
		return &rangekvpb.RangeError{Message: err.Error(), ServerBusy: &rangekvpb.ServerBusy{Reason: err.Error()}}, nil
	case errors.As(err, &ce):
		return nil, status.Error(ce.Code, ce.Msg)
	case errors.As(err, &em):
		return epochError(em.current), nil
	case errors.As(err, &kn):
		return keyNotInRange(kn.key, kn.desc), nil
	}
	return nil, status.Error(codes.Internal, err.Error())
}

// notLeader builds a NotLeader error with the leader's store and address.
func (r *Replica) notLeader(lead uint64) *rangekvpb.RangeError {
	s := r.store
	e := &rangekvpb.NotLeader{RangeId: r.rangeID}
	if rd := replicaByID(r.Descriptor(), lead); rd != nil {
		e.Leader = rd
		e.LeaderStoreId = rd.StoreId
		e.LeaderAddress, _ = s.trans.resolve(rd.StoreId)
		if rd.StoreId == s.cfg.StoreID {
			e.LeaderAddress = s.cfg.AdvertiseAddr
		}
	}
	return &rangekvpb.RangeError{Message: "not leader", NotLeader: e}
}
