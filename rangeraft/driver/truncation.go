// The truncation policy: when a group's leader proposes a log truncation
// and how far (the bound itself is rangeraft.Replica.TruncationTarget).

package driver

import (
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// Defaults of TruncationPolicy (the store's raft.log-truncate-threshold
// and raft.log-max-entries; placement sets its own in placement.Config).
const (
	DefaultTruncateThreshold = 1000
	DefaultMaxLogEntries     = 100000
)

// TruncationPolicy says when a group proposes a log truncation and how far.
type TruncationPolicy struct {
	// ThresholdEntries: truncate only when at least this many entries can
	// go (0 never truncates).
	ThresholdEntries uint64
	// MaxEntries: past this log length, followers that are not active no
	// longer hold truncation back (they catch up by snapshot).
	MaxEntries uint64
	// CheckEntries: decide again after this many applied entries; 0 means
	// ThresholdEntries/4+1.
	CheckEntries uint64
}

// DefaultTruncationPolicy is the store's default policy.
func DefaultTruncationPolicy() TruncationPolicy {
	return TruncationPolicy{ThresholdEntries: DefaultTruncateThreshold, MaxEntries: DefaultMaxLogEntries}
}

func (p TruncationPolicy) checkEntries() uint64 {
	if p.CheckEntries > 0 {
		return p.CheckEntries
	}
	return p.ThresholdEntries/4 + 1
}

// Truncator counts a group's applied entries between truncation
// decisions. The zero value is ready; like the group's Replica it is used
// by one goroutine at a time.
type Truncator struct {
	sinceCheck uint64
}

// Applied counts n more applied entries.
func (t *Truncator) Applied(n int) { t.sinceCheck += uint64(n) }

// Decide reports whether the group should propose a truncation now, and
// of which (index, term). It decides once CheckEntries entries were
// applied since the last decision, or with force (a tick) as soon as any
// were, or while a log longer than ThresholdEntries is held back (a
// follower that is behind, maybe on a store about to be declared down:
// decide again on the next forced call even if nothing more applies).
// live, when set, is the owner's failure detector (TruncationPolicy.Live
// of rangeraft). Proposing the truncation is the caller's (its command
// encoding is its own).
func (t *Truncator) Decide(p TruncationPolicy, rr *rangeraft.Replica, log *logstore.RangeLog, force bool, live func(replicaID uint64) bool) (index, term uint64, ok bool) {
	n := t.sinceCheck
	if p.ThresholdEntries == 0 {
		t.sinceCheck = 0
		return 0, 0, false
	}
	if n == 0 || (!force && n < p.checkEntries()) {
		return 0, 0, false
	}
	t.sinceCheck = 0
	first, _ := log.FirstIndex()
	// The target never passes the applied index: below the threshold
	// there, skip asking (it visits the followers' progress).
	idx, ok := uint64(0), false
	if a := rr.AppliedIndex(); a >= first && a-first+1 >= p.ThresholdEntries {
		idx, ok = rr.TruncationTarget(rangeraft.TruncationPolicy{ThresholdEntries: p.ThresholdEntries, MaxEntries: p.MaxEntries, Live: live}, first)
	}
	if !ok {
		if last, _ := log.LastIndex(); last >= first && last-first+1 >= p.ThresholdEntries {
			t.sinceCheck = 1
		}
		return 0, 0, false
	}
	term, err := log.Term(idx)
	if err != nil {
		return 0, 0, false
	}
	return idx, term, true
}
