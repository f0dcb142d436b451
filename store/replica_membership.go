// Membership changes (MULTIRAFT.md §6): add a learner, promote it through
// joint consensus, remove a replica. Each applied membership entry bumps
// conf_ver and is applied with the descriptor in one synced batch; a change
// proposed against another conf_ver is rejected at apply, touching neither
// the descriptor nor raft.

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func isJoint(d *rangekvpb.RangeDescriptor) bool {
	if d == nil {
		return false
	}
	for _, r := range d.Replicas {
		if r.Role == rangekvpb.ReplicaRole_VOTER_INCOMING || r.Role == rangekvpb.ReplicaRole_VOTER_DEMOTING {
			return true
		}
	}
	return false
}

// errConfChangeRejected: a deterministic apply-time refusal.
type errConfChangeRejected struct{ reason string }

func (e *errConfChangeRejected) Error() string { return "membership change rejected: " + e.reason }

// nextDescriptor computes the descriptor after cc, or why cc is rejected.
// Pure: it reads only the replicated descriptor and the change.
func nextDescriptor(desc *rangekvpb.RangeDescriptor, cc *pb.ConfChangeV2) (*rangekvpb.RangeDescriptor, error) {
	var ctx rangekvpb.ChangeReplicasContext
	if err := proto.Unmarshal(cc.GetContext(), &ctx); err != nil {
		return nil, &errConfChangeRejected{"undecodable context"}
	}
	if ctx.GetExpectedEpoch().GetConfVer() != desc.GetEpoch().GetConfVer() {
		return nil, &errConfChangeRejected{fmt.Sprintf("proposed at conf_ver %d, range is at %d", ctx.GetExpectedEpoch().GetConfVer(), desc.GetEpoch().GetConfVer())}
	}
	next := proto.CloneOf(desc)
	if cc.LeaveJoint() {
		if !isJoint(desc) {
			return nil, &errConfChangeRejected{"leave-joint while not joint"}
		}
		for _, r := range next.Replicas {
			switch r.Role {
			case rangekvpb.ReplicaRole_VOTER_INCOMING:
				r.Role = rangekvpb.ReplicaRole_VOTER
			case rangekvpb.ReplicaRole_VOTER_DEMOTING:
				r.Role = rangekvpb.ReplicaRole_LEARNER
			}
		}
	} else {
		if isJoint(desc) {
			return nil, &errConfChangeRejected{"range is in a joint configuration"}
		}
		switch cc.GetTransition() {
		case pb.ConfChangeTransitionAuto, pb.ConfChangeTransitionJointImplicit, pb.ConfChangeTransitionJointExplicit:
		default:
			// raft's EnterJoint panics on it: reject deterministically
			// rather than crash every replica on this entry.
			return nil, &errConfChangeRejected{fmt.Sprintf("unknown transition %d", cc.GetTransition())}
		}
		_, joint := cc.EnterJoint()
		storeOf := map[uint64]uint64{}
		for _, a := range ctx.Added {
			storeOf[a.ReplicaId] = a.StoreId
		}
		for _, ch := range cc.Changes {
			id := ch.GetNodeId()
			cur := replicaByID(next, id)
			switch ch.GetType() {
			case pb.ConfChangeAddLearnerNode:
				switch {
				case cur == nil:
					st, ok := storeOf[id]
					if !ok || replicaOnStore(next, st) != nil || id < desc.NextReplicaId {
						return nil, &errConfChangeRejected{fmt.Sprintf("bad new learner %d on store %d", id, st)}
					}
					next.Replicas = append(next.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: st, Role: rangekvpb.ReplicaRole_LEARNER})
				case cur.Role == rangekvpb.ReplicaRole_VOTER && joint:
					cur.Role = rangekvpb.ReplicaRole_VOTER_DEMOTING
				default:
					return nil, &errConfChangeRejected{fmt.Sprintf("replica %d cannot become a learner", id)}
				}
			case pb.ConfChangeAddNode:
				if cur == nil || cur.Role != rangekvpb.ReplicaRole_LEARNER {
					return nil, &errConfChangeRejected{fmt.Sprintf("replica %d is not a learner", id)}
				}
				cur.Role = rangekvpb.ReplicaRole_VOTER
				if joint {
					cur.Role = rangekvpb.ReplicaRole_VOTER_INCOMING
				}
			case pb.ConfChangeRemoveNode:
				if cur == nil {
					return nil, &errConfChangeRejected{fmt.Sprintf("replica %d is not in the range", id)}
				}
				kept := next.Replicas[:0]
				for _, r := range next.Replicas {
					if r.ReplicaId != id {
						kept = append(kept, r)
					}
				}
				next.Replicas = kept
			default:
				return nil, &errConfChangeRejected{fmt.Sprintf("unsupported change %v", ch.GetType())}
			}
			if id >= next.NextReplicaId {
				next.NextReplicaId = id + 1
			}
		}
	}
	next.Epoch.ConfVer++
	return next, nil
}

// applyConfChange stages a membership change. Called with p.r.mu held.
func (r *Replica) applyConfChange(ab *pebble.Batch, p *pass, cc *pb.ConfChangeV2) (*pb.ConfChangeV2, error) {
	s := r.store
	next, err := nextDescriptor(p.desc, cc)
	if err != nil {
		s.log.Info("membership change rejected at apply", "range", p.r.rangeID, "reason", err)
		return cc, err
	}
	v, err := proto.Marshal(next)
	p.r.must(err)
	p.r.must(ab.Set(keys.DescriptorKey(next.RangeId), v, nil))
	p.desc = next
	p.needSync = true
	return cc, nil
}

// leaveJointRetryElections: how long a leader waits for its leave-joint entry
// to apply before proposing it again, in election timeouts. A leave-joint
// the leader appended in its term cannot be lost while it stays leader, so
// the retry is only a safety net for a proposal raft turned into an empty
// entry after all.
const leaveJointRetryElections = 2

// maybeLeaveJoint proposes, on the leader of a joint range, the empty
// ConfChangeV2 that leaves the joint configuration (JointExplicit: the
// descriptor decides when), ONCE per joint configuration and leader term.
// raft turns every conf change proposed while an earlier one is unapplied
// (pendingConfIndex > applied) into an empty normal entry and returns nil,
// so proposing on every pass appended an entry (an fsync, a replication) per
// pass until the leave applied. It proposes only when raft accepts it:
//   - after Advance of the pass that applied the joint entry (raft's applied
//     index covers it; pendingConfIndex is that entry's index);
//   - once the leader applied an entry of its own term (a new leader's
//     pendingConfIndex is its last index at election).
//
// It proposes again when the leader's term changes (a new leader, or the
// same one re-elected: the earlier entry may be gone) and after
// leaveJointRetryElections election timeouts still joint. Called with r.mu
// held.
func (r *Replica) maybeLeaveJoint() {
	s := r.store
	d := r.Descriptor()
	rr := r.mu.rr
	if r.mu.destroyed || !rr.IsLeader() || !isJoint(d) {
		return
	}
	term := rr.BasicStatus().GetTerm()
	lj := &r.mu.leaveJoint
	election, _, _, _ := s.cfg.raftTicks()
	if lj.confVer == d.Epoch.GetConfVer() && lj.term == term && lj.ticks < leaveJointRetryElections*election {
		return // proposed for this joint configuration; not yet applied
	}
	if r.mu.applied.Term != term {
		return // raft would turn it into an empty entry: wait for the term's first entry to apply
	}
	ctx, _ := proto.Marshal(&rangekvpb.ChangeReplicasContext{ExpectedEpoch: proto.CloneOf(d.Epoch)})
	if err := rr.ProposeConfChange(&pb.ConfChangeV2{Context: ctx}); err != nil {
		// Dropped without an entry (e.g. a leader transfer is under
		// way): nothing was appended, so try again on the next pass.
		s.log.Debug("propose leave-joint", "range", r.rangeID, "err", err)
		return
	}
	lj.confVer, lj.term, lj.ticks = d.Epoch.GetConfVer(), term, 0
}

// changeReplicas runs one membership step on this replica, the range's
// leader (see Store.changeReplicas).
func (r *Replica) changeReplicas(ctx context.Context, change rangekvpb.ReplicaChangeType, storeID uint64, expect *rangekvpb.RangeEpoch) (*rangekvpb.RangeDescriptor, *rangekvpb.RangeError, error) {
	s, rangeID := r.store, r.rangeID
	if lead := r.leader.Load(); lead != r.replicaID {
		return nil, r.notLeader(lead), nil
	}
	desc := r.Descriptor()
	if expect != nil && !proto.Equal(desc.Epoch, expect) {
		return nil, epochNotMatch(desc, expect), nil
	}
	if isJoint(desc) {
		return nil, &rangekvpb.RangeError{Message: "a membership change is in progress", ServerBusy: &rangekvpb.ServerBusy{Reason: "joint configuration"}}, nil
	}
	cur := replicaOnStore(desc, storeID)
	cctx := &rangekvpb.ChangeReplicasContext{ExpectedEpoch: proto.CloneOf(desc.Epoch)}
	cc := &pb.ConfChangeV2{}
	switch change {
	case rangekvpb.ReplicaChangeType_ADD_LEARNER:
		if cur != nil {
			return nil, nil, invalid("store_id: store %d already holds replica %d of range %d", storeID, cur.ReplicaId, rangeID)
		}
		if _, ok := s.lookupStoreAddr(ctx, storeID); !ok {
			return nil, nil, invalid("store_id: store %d is not a known store", storeID)
		}
		id := desc.NextReplicaId
		cctx.Added = []*rangekvpb.ReplicaDescriptor{{ReplicaId: id, StoreId: storeID, Role: rangekvpb.ReplicaRole_LEARNER}}
		cc.Changes = []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(id)}}
	case rangekvpb.ReplicaChangeType_PROMOTE_LEARNER:
		if cur == nil || cur.Role != rangekvpb.ReplicaRole_LEARNER {
			return nil, nil, invalid("store_id: store %d holds no learner of range %d", storeID, rangeID)
		}
		cc.Transition = pb.ConfChangeTransitionJointExplicit.Enum()
		cc.Changes = []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(cur.ReplicaId)}}
	case rangekvpb.ReplicaChangeType_REMOVE_REPLICA:
		if cur == nil {
			return nil, nil, invalid("store_id: store %d holds no replica of range %d", storeID, rangeID)
		}
		if cur.ReplicaId == r.replicaID {
			return nil, nil, statusErr(codes.FailedPrecondition, "store_id: store %d holds the leader of range %d; transfer leadership first", storeID, rangeID)
		}
		cc.Changes = []*pb.ConfChangeSingle{{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(cur.ReplicaId)}}
	default:
		return nil, nil, invalid("change: unknown change type %v", change)
	}
	var err error
	if cc.Context, err = proto.Marshal(cctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan error, 1)
	r.inbox.Lock()
	r.inbox.confChanges = append(r.inbox.confChanges, pendingConfChange{cc: cc, done: ch})
	r.inbox.Unlock()
	s.sched.enqueue(rangeID, flagWork)
	select {
	case err := <-ch:
		if err != nil {
			rerr, gerr := r.outcomeToError(err)
			return nil, rerr, gerr
		}
	case <-ctx.Done():
		return nil, nil, statusErr(codes.DeadlineExceeded, "membership change not proposed: %v", ctx.Err())
	}
	// Wait until the change applied here (conf_ver moved on and no joint
	// configuration remains).
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if d := r.Descriptor(); d != nil && d.Epoch.ConfVer > desc.Epoch.ConfVer && !isJoint(d) {
			if !changeShows(d, change, storeID) {
				// Another change applied first and this one was rejected
				// at apply (stale conf_ver): nothing of it happened.
				return nil, &rangekvpb.RangeError{Message: "membership change rejected: another change applied first; nothing was changed",
					EpochNotMatch: &rangekvpb.EpochNotMatch{Current: []*rangekvpb.RangeDescriptor{d}}}, nil
			}
			return d, nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, &rangekvpb.RangeError{Message: "membership change not seen applied before the deadline; read the descriptor to learn its outcome",
				AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: ctx.Err().Error()}}, nil
		case <-t.C:
		}
	}
}

// epochNotMatch: a placement step planned for epoch want reached a range
// at another epoch; nothing was proposed.
func epochNotMatch(d *rangekvpb.RangeDescriptor, want *rangekvpb.RangeEpoch) *rangekvpb.RangeError {
	return &rangekvpb.RangeError{
		Message:       fmt.Sprintf("step planned at conf_ver %d version %d, range %d is at conf_ver %d version %d", want.GetConfVer(), want.GetVersion(), d.RangeId, d.Epoch.GetConfVer(), d.Epoch.GetVersion()),
		EpochNotMatch: &rangekvpb.EpochNotMatch{Current: []*rangekvpb.RangeDescriptor{d}},
	}
}

// changeShows reports whether d reflects the change on storeID.
func changeShows(d *rangekvpb.RangeDescriptor, change rangekvpb.ReplicaChangeType, storeID uint64) bool {
	r := replicaOnStore(d, storeID)
	switch change {
	case rangekvpb.ReplicaChangeType_ADD_LEARNER:
		return r != nil
	case rangekvpb.ReplicaChangeType_PROMOTE_LEARNER:
		return r != nil && r.Role == rangekvpb.ReplicaRole_VOTER
	default:
		return r == nil
	}
}

type pendingConfChange struct {
	cc   *pb.ConfChangeV2
	done chan error
}
