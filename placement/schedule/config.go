// Scheduler configuration: the knobs of repair, label spreading, balance
// and the per-store limits, with defaults and a Validate that changes
// nothing.

package schedule

import (
	"fmt"
	"time"
)

// MaxLocationLabels bounds Config.LocationLabels (isolation scores are
// fixed-size arrays so that scoring a candidate store allocates nothing).
const MaxLocationLabels = 8

// Config holds the scheduler's knobs. Start from DefaultConfig; the zero
// value is invalid (Validate says which field).
type Config struct {
	// ReplicationFactor is the number of voters every range should have.
	ReplicationFactor int
	// LocationLabels name store labels from the widest failure domain to the
	// narrowest, e.g. ["zone", "host"]. Replicas of a range are spread over
	// distinct values of the first label, then of the first two, and so on.
	// A store without a label has the empty value for it. Empty: no label
	// awareness.
	LocationLabels []string
	// MaxStoreDownTime: replicas on a store that has been Down for at least
	// this long are replaced elsewhere. A Down store within this grace period
	// is left alone (it may come back with its data).
	MaxStoreDownTime time.Duration
	// MaxOperatorsPerStore bounds the operators that touch one store at a
	// time (in flight plus newly created), counting the steps not yet done:
	// adding, promoting or removing a replica there, or moving leadership to
	// or from it. Stores whose replicas are being replaced because they are
	// dead are not limited (they do no work).
	MaxOperatorsPerStore int
	// MaxSnapshotsPerStore bounds the learner additions (each one a snapshot
	// received) in flight to one store.
	MaxSnapshotsPerStore int
	// MaxOperatorsPerRound caps the operators one Schedule call returns.
	MaxOperatorsPerRound int
	// ReplicaBalanceMargin: a balance move from store s to store t is
	// proposed only when s holds more than ReplicaBalanceMargin replicas more
	// than t (counting in-flight operators). With the default 1, replica
	// counts of the Up stores converge to within one of each other. Values
	// below 1 would allow a move that the next round reverses; Validate
	// rejects them.
	ReplicaBalanceMargin int
	// LeaderBalanceTolerance is the same rule for leader counts.
	LeaderBalanceTolerance int
	// LowSpaceRatio: a store whose used bytes plus the range's size would
	// exceed this fraction of its capacity receives no replica. A store
	// reporting zero capacity is not checked.
	LowSpaceRatio float64
	// OperatorTimeout sets Operator.Deadline = creation time + this.
	OperatorTimeout time.Duration
}

// DefaultConfig returns the defaults: 3 replicas, no location labels, 30
// minutes of grace for a down store (PD's max-store-down-time), 16
// operators and 4 snapshots per store, 1000 operators per round, margins of
// one replica and one leader, 80% space, 10-minute operator timeout.
func DefaultConfig() Config {
	return Config{
		ReplicationFactor:      3,
		MaxStoreDownTime:       30 * time.Minute,
		MaxOperatorsPerStore:   16,
		MaxSnapshotsPerStore:   4,
		MaxOperatorsPerRound:   1000,
		ReplicaBalanceMargin:   1,
		LeaderBalanceTolerance: 1,
		LowSpaceRatio:          0.8,
		OperatorTimeout:        10 * time.Minute,
	}
}

// Validate reports the first invalid field; it changes nothing.
func (c Config) Validate() error {
	switch {
	case c.ReplicationFactor < 1:
		return fmt.Errorf("schedule: ReplicationFactor must be at least 1, got %d", c.ReplicationFactor)
	case len(c.LocationLabels) > MaxLocationLabels:
		return fmt.Errorf("schedule: LocationLabels has %d labels, at most %d allowed", len(c.LocationLabels), MaxLocationLabels)
	case c.MaxStoreDownTime <= 0:
		return fmt.Errorf("schedule: MaxStoreDownTime must be positive, got %v", c.MaxStoreDownTime)
	case c.MaxOperatorsPerStore < 1:
		return fmt.Errorf("schedule: MaxOperatorsPerStore must be at least 1, got %d", c.MaxOperatorsPerStore)
	case c.MaxSnapshotsPerStore < 1:
		return fmt.Errorf("schedule: MaxSnapshotsPerStore must be at least 1, got %d", c.MaxSnapshotsPerStore)
	case c.MaxOperatorsPerRound < 1:
		return fmt.Errorf("schedule: MaxOperatorsPerRound must be at least 1, got %d", c.MaxOperatorsPerRound)
	case c.ReplicaBalanceMargin < 1:
		return fmt.Errorf("schedule: ReplicaBalanceMargin must be at least 1 (0 lets a move be reversed by the next round), got %d", c.ReplicaBalanceMargin)
	case c.LeaderBalanceTolerance < 1:
		return fmt.Errorf("schedule: LeaderBalanceTolerance must be at least 1 (0 lets a transfer be reversed by the next round), got %d", c.LeaderBalanceTolerance)
	case !(c.LowSpaceRatio > 0 && c.LowSpaceRatio <= 1):
		return fmt.Errorf("schedule: LowSpaceRatio must be in (0, 1], got %v", c.LowSpaceRatio)
	case c.OperatorTimeout <= 0:
		return fmt.Errorf("schedule: OperatorTimeout must be positive, got %v", c.OperatorTimeout)
	}
	seen := make(map[string]bool, len(c.LocationLabels))
	for i, l := range c.LocationLabels {
		if l == "" {
			return fmt.Errorf("schedule: LocationLabels[%d] is empty", i)
		}
		if seen[l] {
			return fmt.Errorf("schedule: LocationLabels names %q twice", l)
		}
		seen[l] = true
	}
	return nil
}
