// Executing placement's operator steps on the ranges this store leads:
// each step carries the epoch placement planned it for and is refused
// (EpochNotMatch) at any other; membership steps are proposed at that epoch,
// so apply refuses them too. They run through the same membership and
// leadership primitives as the admin API.

package store

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const execWorkers = 4

type operatorExecutor struct {
	s      *Store
	ch     chan *rangekvpb.OperatorStep
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// inFlight: one step per range at a time.
	inFlight map[uint64]bool
}

func newOperatorExecutor(s *Store) *operatorExecutor {
	e := &operatorExecutor{s: s, ch: make(chan *rangekvpb.OperatorStep, 1024), inFlight: map[uint64]bool{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for range execWorkers {
		e.wg.Add(1)
		go e.run()
	}
	return e
}

func (e *operatorExecutor) close() {
	e.cancel()
	e.wg.Wait()
}

func (e *operatorExecutor) enqueue(st *rangekvpb.OperatorStep) {
	e.mu.Lock()
	if e.inFlight[st.RangeId] {
		e.mu.Unlock()
		return
	}
	e.inFlight[st.RangeId] = true
	e.mu.Unlock()
	// Through PassPoints.Wake when set: two steps handed to two idle
	// executors at once would queue their ranges' changes in the Go
	// scheduler's order.
	if pp := e.s.cfg.PassPoints; pp != nil {
		pp.Wake(func() { e.handOff(st) })
		return
	}
	e.handOff(st)
}

// handOff gives st to an executor goroutine, or drops it when all are
// busy and the queue is full (placement sends it again).
func (e *operatorExecutor) handOff(st *rangekvpb.OperatorStep) {
	select {
	case e.ch <- st:
	default:
		e.done(st.RangeId)
	}
}

func (e *operatorExecutor) done(rangeID uint64) {
	e.mu.Lock()
	delete(e.inFlight, rangeID)
	e.mu.Unlock()
}

func (e *operatorExecutor) run() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case st := <-e.ch:
			rerr, err := e.execute(st)
			e.done(st.RangeId)
			switch {
			case rerr.GetEpochNotMatch() != nil || rerr.GetNotLeader() != nil:
				// Placement's view is stale: it aborts the operator when
				// it hears of the new epoch, or sends the step to the
				// new leader.
				e.s.log.Debug("operator step refused", "range", st.RangeId, "operator", st.OperatorId, "step", st.Type.String(),
					"store", st.StoreId, "range_error", rerr.GetMessage())
			case err != nil || rerr != nil:
				e.s.log.Info("operator step failed", "range", st.RangeId, "operator", st.OperatorId, "step", st.Type.String(),
					"store", st.StoreId, "err", err, "range_error", rerr.GetMessage())
			}
		}
	}
}

// execute runs one step. A step whose epoch is not the range's is refused
// with EpochNotMatch before anything is proposed; membership steps are
// proposed at the step's epoch, so apply refuses them as well if another
// change applies first. A nil result with nothing done means "not yet"
// (placement resends the step).
func (e *operatorExecutor) execute(st *rangekvpb.OperatorStep) (*rangekvpb.RangeError, error) {
	s := e.s
	r := s.replica(st.RangeId)
	if r == nil {
		return &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: st.RangeId}}, nil
	}
	d := r.Descriptor()
	if d == nil {
		return &rangekvpb.RangeError{Message: "range not initialized on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: st.RangeId}}, nil
	}
	// Invariant: a step runs only at the epoch placement planned it for.
	if !proto.Equal(d.Epoch, st.Epoch) {
		return epochNotMatch(d, st.Epoch), nil
	}
	if lead := r.leader.Load(); lead != r.replicaID {
		return r.notLeader(lead), nil
	}
	if k := s.cfg.Knobs; k != nil && k.BeforeOperatorStep != nil {
		k.BeforeOperatorStep(st.RangeId)
	}
	ctx, cancel := clock.WithTimeout(e.ctx, e.s.cfg.Clock, 30*time.Second)
	defer cancel()
	var rerr *rangekvpb.RangeError
	var err error
	target := replicaOnStore(d, st.StoreId)
	switch st.Type {
	case rangekvpb.OperatorStepType_STEP_ADD_LEARNER:
		if target != nil {
			return nil, nil
		}
		_, rerr, err = s.changeReplicas(ctx, st.RangeId, rangekvpb.ReplicaChangeType_ADD_LEARNER, st.StoreId, st.Epoch)
	case rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER:
		if target == nil || target.Role != rangekvpb.ReplicaRole_LEARNER || !e.caughtUp(r, target.ReplicaId) {
			return nil, nil // not yet: placement sends the step again
		}
		_, rerr, err = s.changeReplicas(ctx, st.RangeId, rangekvpb.ReplicaChangeType_PROMOTE_LEARNER, st.StoreId, st.Epoch)
	case rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA:
		if target == nil {
			return nil, nil
		}
		if target.ReplicaId == r.replicaID {
			// Never remove the leader: hand leadership to a caught-up voter.
			if to := e.successor(r, d); to != 0 {
				r.pushTransfer(to)
				s.sched.enqueue(r.rangeID, flagWork)
			}
			return nil, nil
		}
		_, rerr, err = s.changeReplicas(ctx, st.RangeId, rangekvpb.ReplicaChangeType_REMOVE_REPLICA, st.StoreId, st.Epoch)
	case rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER:
		// Not to a store that is down: raft would drop every write
		// for an election timeout, again at each step placement resends.
		if target == nil || target.ReplicaId == r.replicaID || !s.liveness.isLive(st.StoreId) {
			return nil, nil
		}
		r.pushTransfer(target.ReplicaId)
		s.sched.enqueue(r.rangeID, flagWork)
	}
	return rerr, err
}

// caughtUp: the replica's match is close to the leader's applied index.
func (e *operatorExecutor) caughtUp(r *Replica, id uint64) bool {
	r.lock()
	defer r.mu.Unlock()
	if r.mu.destroyed {
		return false
	}
	pr, ok := r.mu.rr.Status().Progress[id]
	return ok && pr.State == tracker.StateReplicate && pr.Match+100 >= r.mu.applied.Index
}

// successor picks a caught-up voter to take leadership.
func (e *operatorExecutor) successor(r *Replica, d *rangekvpb.RangeDescriptor) uint64 {
	for _, rd := range d.Replicas {
		if rd.ReplicaId != r.replicaID && rd.Role == rangekvpb.ReplicaRole_VOTER && e.caughtUp(r, rd.ReplicaId) &&
			e.s.liveness.isLive(rd.StoreId) {
			return rd.ReplicaId
		}
	}
	return 0
}
