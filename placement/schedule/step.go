// Operator steps: the membership changes and leader transfers an operator is
// made of, each judged done or conflicting from a reported RangeView alone.

package schedule

import (
	"fmt"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Step is one action of an operator, executed by the range's leader. The
// concrete types are AddLearner, PromoteLearner, RemoveReplica,
// TransferLeader and LeaveJoint; the set is closed.
//
// Contract with the executor (store side), which CheckEpoch relies on: the
// store grows conf_ver by one per applied membership entry, leave-joint
// included (store/replica_membership.go nextDescriptor), so a step grows it by
// ConfVerDelta, the number of entries it takes: AddLearner one
// (AddLearnerNode); PromoteLearner two (entering a joint configuration with
// the learner VOTER_INCOMING, then leaving it); RemoveReplica one
// (RemoveNode); LeaveJoint one (the empty ConfChangeV2). TransferLeader
// changes no epoch. The placement controller counts the same way
// (placement/operators.go opStep.confVerDelta).
type Step interface {
	// Done reports whether r shows the step's effect. Done is judged on the
	// state, not on history: it stays true as later steps of the same
	// operator complete (a promoted learner still counts as added), and
	// TransferLeader turns false again if leadership returns to its source.
	Done(r RangeView) bool
	// Conflicts reports whether r makes the step impossible to run as the
	// operator's next step (e.g. removing the leader, promoting a learner
	// that is gone). An operator whose next step conflicts must be aborted.
	Conflicts(r RangeView) bool
	// ConfVerDelta is how much the step grows conf_ver when applied.
	ConfVerDelta() uint64
	String() string

	// applied reports whether the step's membership entry is visible in r
	// (possibly before Done: a learner is added before it has caught up).
	applied(r RangeView) bool
	// stores appends the stores the step works on (for per-store limits).
	stores(dst []uint64) []uint64
}

// AddLearner adds a learner replica on StoreID; it is done once the learner
// is in the descriptor and not pending (it has caught up), or has already
// been promoted.
type AddLearner struct {
	StoreID uint64
	// ReplicaID is 0 when the scheduler creates the step; the controller
	// allocates an ID and sets it (see Operator.WithReplicaID) before
	// dispatching. Once set, a replica on StoreID with another ID conflicts.
	ReplicaID uint64
}

// PromoteLearner makes the learner on StoreID a voter.
type PromoteLearner struct {
	StoreID uint64
}

// RemoveReplica removes the replica on StoreID. It never targets the
// leader: Conflicts is true while StoreID leads the range.
type RemoveReplica struct {
	StoreID uint64
}

// TransferLeader moves leadership from FromStoreID (the leader when the
// operator was made) to ToStoreID, a voter. Its purpose is to get leadership
// off FromStoreID, so it is done when a known leader other than FromStoreID
// leads: for a balance-leader operator that is normally ToStoreID, and if an
// election picked another voter the operator is finished anyway and the next
// round plans afresh.
type TransferLeader struct {
	FromStoreID uint64
	ToStoreID   uint64
}

// LeaveJoint leaves a joint configuration left behind by an interrupted
// change: VOTER_INCOMING replicas become voters, VOTER_DEMOTING ones
// learners. Incoming and Demoting list the stores in those roles when the
// operator was made.
type LeaveJoint struct {
	Incoming []uint64
	Demoting []uint64
}

func roleOn(r RangeView, storeID uint64) (rangekvpb.ReplicaRole, bool) {
	rep, ok := r.Replica(storeID)
	if !ok {
		return 0, false
	}
	return rep.GetRole(), true
}

// Done implements Step.
func (s AddLearner) Done(r RangeView) bool {
	rep, ok := r.Replica(s.StoreID)
	if !ok || (s.ReplicaID != 0 && rep.GetReplicaId() != s.ReplicaID) {
		return false
	}
	return rep.GetRole() != rangekvpb.ReplicaRole_LEARNER || !r.IsPending(s.StoreID)
}

// Conflicts implements Step.
func (s AddLearner) Conflicts(r RangeView) bool {
	rep, ok := r.Replica(s.StoreID)
	return ok && s.ReplicaID != 0 && rep.GetReplicaId() != s.ReplicaID
}

// ConfVerDelta implements Step.
func (AddLearner) ConfVerDelta() uint64 { return 1 }

func (s AddLearner) applied(r RangeView) bool {
	rep, ok := r.Replica(s.StoreID)
	return ok && (s.ReplicaID == 0 || rep.GetReplicaId() == s.ReplicaID)
}

func (s AddLearner) stores(dst []uint64) []uint64 { return append(dst, s.StoreID) }

func (s AddLearner) String() string {
	if s.ReplicaID != 0 {
		return fmt.Sprintf("add-learner s%d (replica %d)", s.StoreID, s.ReplicaID)
	}
	return fmt.Sprintf("add-learner s%d", s.StoreID)
}

// Done implements Step.
func (s PromoteLearner) Done(r RangeView) bool {
	role, ok := roleOn(r, s.StoreID)
	return ok && role == rangekvpb.ReplicaRole_VOTER
}

// Conflicts implements Step: the learner is gone.
func (s PromoteLearner) Conflicts(r RangeView) bool {
	_, ok := r.Replica(s.StoreID)
	return !ok
}

// ConfVerDelta implements Step: enter and leave a joint configuration.
func (PromoteLearner) ConfVerDelta() uint64 { return 2 }

func (s PromoteLearner) applied(r RangeView) bool { return s.Done(r) }

func (s PromoteLearner) stores(dst []uint64) []uint64 { return append(dst, s.StoreID) }

func (s PromoteLearner) String() string { return fmt.Sprintf("promote s%d", s.StoreID) }

// Done implements Step.
func (s RemoveReplica) Done(r RangeView) bool {
	_, ok := r.Replica(s.StoreID)
	return !ok
}

// Conflicts implements Step: never remove the leader.
func (s RemoveReplica) Conflicts(r RangeView) bool {
	return r.LeaderStoreID == s.StoreID && !s.Done(r)
}

// ConfVerDelta implements Step.
func (RemoveReplica) ConfVerDelta() uint64 { return 1 }

func (s RemoveReplica) applied(r RangeView) bool { return s.Done(r) }

func (s RemoveReplica) stores(dst []uint64) []uint64 { return append(dst, s.StoreID) }

func (s RemoveReplica) String() string { return fmt.Sprintf("remove s%d", s.StoreID) }

// Done implements Step.
func (s TransferLeader) Done(r RangeView) bool {
	return r.LeaderStoreID != 0 && r.LeaderStoreID != s.FromStoreID
}

// Conflicts implements Step: the target is not a voter (or an incoming
// voter of a joint configuration).
func (s TransferLeader) Conflicts(r RangeView) bool {
	role, ok := roleOn(r, s.ToStoreID)
	return !s.Done(r) && (!ok || (role != rangekvpb.ReplicaRole_VOTER && role != rangekvpb.ReplicaRole_VOTER_INCOMING))
}

// ConfVerDelta implements Step.
func (TransferLeader) ConfVerDelta() uint64 { return 0 }

func (s TransferLeader) applied(r RangeView) bool { return s.Done(r) }

func (s TransferLeader) stores(dst []uint64) []uint64 {
	return append(dst, s.FromStoreID, s.ToStoreID)
}

func (s TransferLeader) String() string {
	return fmt.Sprintf("transfer-leader s%d->s%d", s.FromStoreID, s.ToStoreID)
}

// Done implements Step: no replica of the range is in a joint role.
func (s LeaveJoint) Done(r RangeView) bool {
	for _, rep := range r.Desc.GetReplicas() {
		if isJointRole(rep.GetRole()) {
			return false
		}
	}
	return true
}

// Conflicts implements Step.
func (LeaveJoint) Conflicts(RangeView) bool { return false }

// ConfVerDelta implements Step: one entry, whatever the roles it changes.
func (LeaveJoint) ConfVerDelta() uint64 { return 1 }

func (s LeaveJoint) applied(r RangeView) bool { return s.Done(r) }

func (s LeaveJoint) stores(dst []uint64) []uint64 { return dst }

func (s LeaveJoint) String() string {
	return fmt.Sprintf("leave-joint incoming=%v demoting=%v", s.Incoming, s.Demoting)
}

func isJointRole(role rangekvpb.ReplicaRole) bool {
	return role == rangekvpb.ReplicaRole_VOTER_INCOMING || role == rangekvpb.ReplicaRole_VOTER_DEMOTING
}
