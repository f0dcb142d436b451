// Operators: epoch-guarded step lists, and the pure helpers a controller
// uses to drive them from heartbeats (NextStep, CheckEpoch, Expired).

package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Kind says why an operator exists.
type Kind string

// The kinds Schedule creates.
const (
	KindRepairLeaveJoint     Kind = "repair-leave-joint"
	KindRepairReplaceDown    Kind = "repair-replace-down"
	KindRepairAdd            Kind = "repair-add"
	KindRepairPromoteLearner Kind = "repair-promote-learner"
	KindRepairRemoveExtra    Kind = "repair-remove-extra"
	KindRepairRemoveLearner  Kind = "repair-remove-learner"
	KindSpreadLabel          Kind = "spread-label"
	KindBalanceReplica       Kind = "balance-replica"
	KindBalanceLeader        Kind = "balance-leader"
)

// Priority orders operators: higher is more urgent. Schedule returns
// operators in the order it created them, which is by descending priority.
type Priority int

// Priorities.
const (
	PriorityLow    Priority = 0 // balance
	PriorityMedium Priority = 1 // label spreading
	PriorityHigh   Priority = 2 // repair
	// PriorityUrgent: repair of a range that cannot lose another replica
	// without losing its quorum, and leaving a joint configuration.
	PriorityUrgent Priority = 3
)

func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityMedium:
		return "medium"
	case PriorityHigh:
		return "high"
	case PriorityUrgent:
		return "urgent"
	}
	return fmt.Sprintf("Priority(%d)", int(p))
}

// Operator is a list of steps for one range, created at an exact epoch.
// Operators are values once returned: the controller never mutates one in
// place (WithReplicaID returns a copy).
type Operator struct {
	RangeID uint64
	// Epoch is the range's epoch when the operator was created; CheckEpoch
	// compares every report against it.
	Epoch    Epoch
	Kind     Kind
	Priority Priority
	Steps    []Step
	// CreatedAt is the now passed to Schedule; Deadline is CreatedAt plus
	// Config.OperatorTimeout.
	CreatedAt time.Time
	Deadline  time.Time
}

// current returns the index of the first step that r does not show done
// (len(Steps) if all are).
func (op *Operator) current(r RangeView) int {
	for i, s := range op.Steps {
		if !s.Done(r) {
			return i
		}
	}
	return len(op.Steps)
}

// NextStep returns the step to run next: the first one r does not show
// done. done is true (and step nil) when r shows every step done. Steps are
// sequential: a later step is never run before an earlier one is done, so a
// step advances only when the reported descriptor (and hence its epoch)
// shows the previous one applied. Call CheckEpoch first; NextStep does not
// look at epochs.
func (op *Operator) NextStep(r RangeView) (step Step, done bool) {
	i := op.current(r)
	if i == len(op.Steps) {
		return nil, true
	}
	return op.Steps[i], false
}

// StaleReason says why CheckEpoch rejected an operator.
type StaleReason int8

// Reasons.
const (
	// StaleWrongRange: the report is for another range.
	StaleWrongRange StaleReason = iota + 1
	// StaleVersion: the range split or merged (version changed).
	StaleVersion
	// StaleEpochRegressed: conf_ver is below the operator's epoch.
	StaleEpochRegressed
	// StaleConfChange: conf_ver grew by more than the operator's own applied
	// steps explain: someone else changed the membership.
	StaleConfChange
	// StaleStepConflict: the next step cannot run (Step.Conflicts).
	StaleStepConflict
)

func (s StaleReason) String() string {
	switch s {
	case StaleWrongRange:
		return "report is for another range"
	case StaleVersion:
		return "range split or merged"
	case StaleEpochRegressed:
		return "conf_ver went backwards"
	case StaleConfChange:
		return "unexpected membership change"
	case StaleStepConflict:
		return "next step conflicts with the range"
	}
	return fmt.Sprintf("StaleReason(%d)", int8(s))
}

// StaleOperatorError is CheckEpoch's verdict: abort the operator (and let a
// later Schedule plan afresh, including any cleanup).
type StaleOperatorError struct {
	RangeID       uint64
	Kind          Kind
	OperatorEpoch Epoch
	RangeEpoch    Epoch
	Reason        StaleReason
	// Step is the conflicting step for StaleStepConflict.
	Step Step
}

func (e *StaleOperatorError) Error() string {
	msg := fmt.Sprintf("schedule: operator %s on range %d (epoch %s) is stale at epoch %s: %s",
		e.Kind, e.RangeID, e.OperatorEpoch, e.RangeEpoch, e.Reason)
	if e.Step != nil {
		msg += ": " + e.Step.String()
	}
	return msg
}

// CheckEpoch checks a reported range against the operator, as PD's
// checkStaleOperator does. It returns a *StaleOperatorError when the
// operator must be aborted:
//   - the version differs from the operator's (a split or merge happened);
//   - conf_ver is below the operator's, or above it by more than the
//     ConfVerDelta of the steps whose membership entry r shows applied (the
//     steps before the current one, plus the current one if its entry is
//     already visible, e.g. a learner still catching up);
//   - the next step conflicts with r.
//
// nil means the operator may go on (NextStep says with what).
func (op *Operator) CheckEpoch(r RangeView) error {
	got := r.Epoch()
	stale := func(reason StaleReason, step Step) error {
		return &StaleOperatorError{RangeID: op.RangeID, Kind: op.Kind, OperatorEpoch: op.Epoch, RangeEpoch: got, Reason: reason, Step: step}
	}
	if r.ID() != op.RangeID {
		return stale(StaleWrongRange, nil)
	}
	if got.Version != op.Epoch.Version {
		return stale(StaleVersion, nil)
	}
	if got.ConfVer < op.Epoch.ConfVer {
		return stale(StaleEpochRegressed, nil)
	}
	cur := op.current(r)
	var explained uint64
	for i, s := range op.Steps {
		switch {
		case i < cur || (i == cur && s.applied(r)):
			explained += s.ConfVerDelta()
		case i == cur:
			explained += partialConfVer(s, r)
		}
	}
	if got.ConfVer-op.Epoch.ConfVer > explained {
		return stale(StaleConfChange, nil)
	}
	if cur < len(op.Steps) && op.Steps[cur].Conflicts(r) {
		return stale(StaleStepConflict, op.Steps[cur])
	}
	return nil
}

// partialConfVer is the part of s's ConfVerDelta that r shows applied
// while s is not: a promotion whose joint entry applied (the learner is
// VOTER_INCOMING) but whose leave-joint entry has not.
func partialConfVer(s Step, r RangeView) uint64 {
	if p, ok := s.(PromoteLearner); ok {
		if role, ok := roleOn(r, p.StoreID); ok && role == rangekvpb.ReplicaRole_VOTER_INCOMING {
			return 1
		}
	}
	return 0
}

// Expired reports whether now is past the operator's deadline; the
// controller then aborts it.
func (op *Operator) Expired(now time.Time) bool {
	return !op.Deadline.IsZero() && now.After(op.Deadline)
}

// WithReplicaID returns a copy of op whose AddLearner step for storeID
// carries replicaID (the controller allocates replica IDs; the scheduler
// leaves them 0). op is not modified.
func (op *Operator) WithReplicaID(storeID, replicaID uint64) *Operator {
	c := *op
	c.Steps = append([]Step(nil), op.Steps...)
	for i, s := range c.Steps {
		if a, ok := s.(AddLearner); ok && a.StoreID == storeID {
			a.ReplicaID = replicaID
			c.Steps[i] = a
		}
	}
	return &c
}

// Stores returns the stores the operator works on, in step order without
// duplicates.
func (op *Operator) Stores() []uint64 {
	var ids []uint64
	for _, s := range op.Steps {
		ids = s.stores(ids)
	}
	return dedupStable(ids)
}

func dedupStable(ids []uint64) []uint64 {
	out := ids[:0]
	for i, id := range ids {
		seen := false
		for _, p := range ids[:i] {
			if p == id {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, id)
		}
	}
	return out
}

// Describe renders an operator on one line, e.g.
//
//	r7 balance-replica (low) epoch=c5,v1: add-learner s4, promote s4, remove s1
func Describe(op *Operator) string {
	if op == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "r%d %s (%s) epoch=%s:", op.RangeID, op.Kind, op.Priority, op.Epoch)
	for i, s := range op.Steps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

func (op *Operator) String() string { return Describe(op) }

// DescribeAll renders operators one per line ("no operators" if none).
func DescribeAll(ops []*Operator) string {
	if len(ops) == 0 {
		return "no operators\n"
	}
	var b strings.Builder
	for _, op := range ops {
		b.WriteString(Describe(op))
		b.WriteByte('\n')
	}
	return b.String()
}
