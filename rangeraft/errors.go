package rangeraft

import (
	"errors"
	"fmt"
)

// NotLeaderError: the replica is not the leader; Leader is the replica ID of
// the leader it knows of, or 0.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "rangeraft: not leader, leader unknown"
	}
	return fmt.Sprintf("rangeraft: not leader, leader is replica %d", e.Leader)
}

// AmbiguousError: the command may or may not have been applied.
type AmbiguousError struct{ Reason string }

func (e *AmbiguousError) Error() string { return "rangeraft: result ambiguous: " + e.Reason }

// ErrStaleCommand: the command's log position was taken by another command;
// it was definitely not applied and retrying is safe.
var ErrStaleCommand = errors.New("rangeraft: command overwritten by a new leader; not applied")

// ErrBusy: raft dropped the proposal (uncommitted log too large, or a
// leadership transfer in progress); nothing was applied and retrying later
// is safe.
var ErrBusy = errors.New("rangeraft: proposal dropped (busy or transferring leadership); not applied")

// ErrReadTimeout: a read did not get a read index in time; nothing changed.
var ErrReadTimeout = errors.New("rangeraft: read index timed out")

// ErrTransferToSelf: a leadership transfer to the leader itself was
// refused. Raft would treat it as "abort the transfer in progress", which
// clears LeadTransferee while that transfer's MsgTimeoutNow may still be on
// its way (lease.go); nothing changed.
var ErrTransferToSelf = errors.New("rangeraft: leadership transfer to the leader itself refused")

// ErrStopped: the replica was closed before the command was proposed.
var ErrStopped = errors.New("rangeraft: replica stopped")
