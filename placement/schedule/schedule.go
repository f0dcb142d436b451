// Schedule: one round of the scheduler over a ClusterView.

package schedule

import (
	"slices"
	"time"
)

// Schedule returns the operators to start now, most urgent first. It runs,
// in priority order:
//
//  1. repair (CheckRange) of every range that needs it, most endangered
//     first;
//  2. label spreading, when Config.LocationLabels is set;
//  3. replica balance across Up stores;
//  4. leader balance across Up stores.
//
// Each stage sees the counts as the earlier stages and the in-flight
// operators will leave them. At most one operator per range (ranges with an
// in-flight operator are skipped), at most Config.MaxOperatorsPerStore
// operators and Config.MaxSnapshotsPerStore learner additions per store
// (in-flight included), at most Config.MaxOperatorsPerRound in all.
//
// Schedule is deterministic: the same view and now give the same
// operators. It costs O(ranges + replicas) plus O(stores) per operator
// created. The returned operators are new; the caller owns them.
func Schedule(v *ClusterView, now time.Time) []*Operator {
	if v == nil {
		return nil
	}
	p := newPlanner(v, now)
	p.repair()
	p.spread()
	p.balanceReplicas()
	p.balanceLeaders()
	// Stages run in priority order, but repair admits the most endangered
	// ranges first: order the result by priority (stable).
	slices.SortStableFunc(p.out, func(a, b *Operator) int { return int(b.Priority) - int(a.Priority) })
	return p.out
}
