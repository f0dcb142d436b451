// Leader leases: the pure decision of whether a leader may serve a read
// from its local state without a Raft round trip (MULTIRAFT.md §7).
//
// Why a lease is safe here. Raft runs with CheckQuorum and PreVote: a
// follower that heard from its leader less than ElectionTicks ticks ago
// ignores (pre-)votes of other candidates (raft.go, "inLease"), unless the
// vote is forced by a leadership transfer. A ReadIndex round that starts at
// time t0 broadcasts heartbeats; every follower that acknowledges one has
// reset its election timer at some t >= t0. Once a quorum acknowledged, no
// other replica can win an election (and so commit anything) before that
// quorum's timers ran out, which takes at least (ElectionTicks-1) ticks of
// follower time after t0 (the first tick may come at once). So the leader
// may serve local reads until t0 + LeaseDuration, with LeaseDuration below
// that bound by a margin for clock-rate differences (LeaseDurationFor).
//
// What voids a lease: a term change or loss of leadership; a leadership
// transfer (a forced vote ignores the followers' lease), and for the rest of
// the term any MsgTimeoutNow the leader sent: raft forgets the transfer
// after an election timeout, but the message can still be queued and make
// its target win a forced election; once the target campaigns the term
// changes, which is the only sign the message is spent; a membership change
// (the quorum that granted the lease may not be one of the new
// configuration); and anything the owner reports through DropLease. A round
// that started before the lease was last voided never renews it. A leader
// that has not applied an entry of its own term serves nothing (its commit
// index may not cover its predecessor's writes yet).
//
// What the owner must guarantee: nothing makes a follower forget its leader
// (ForgetLeader) sooner than LeaseDuration after it last heard from it, and
// a restarted follower (which remembers no leader) grants no vote for an
// election timeout after it started. The store does both (store/replica_read.go).

package rangeraft

import "time"

// Lease is a leader's read lease: valid for term until expiry. The zero
// value holds no lease. Pure: no clock, no raft; callers pass the time.
type Lease struct {
	term   uint64
	expiry time.Time
}

// LeaseStatus is what the lease decision needs of the replica's state.
type LeaseStatus struct {
	Leader         bool
	Term           uint64
	AppliedTerm    uint64 // term of the last applied entry
	LeadTransferee uint64 // non-zero while a leadership transfer is in progress
}

// Valid reports whether the leader may serve a local read at now.
func (l Lease) Valid(now time.Time, st LeaseStatus) bool {
	return st.Leader && l.term != 0 && l.term == st.Term && st.AppliedTerm == st.Term &&
		st.LeadTransferee == 0 && now.Before(l.expiry)
}

// Expiry is the end of the lease (zero when there is none).
func (l Lease) Expiry() time.Time { return l.expiry }

// Extend records that a quorum confirmed leadership in term for a round
// that started at start: the lease runs until start + d (never shortened
// within a term; a new term replaces it).
func (l *Lease) Extend(start time.Time, term uint64, d time.Duration) {
	if d <= 0 || term == 0 {
		return
	}
	exp := start.Add(d)
	if term != l.term || exp.After(l.expiry) {
		l.term, l.expiry = term, exp
	}
}

// Drop voids the lease.
func (l *Lease) Drop() { *l = Lease{} }

// LeaseDurationFor returns a safe lease length for a tick interval and an
// election timeout of electionTicks ticks: the followers' guaranteed vote
// refusal of (electionTicks-1) ticks, less one more tick for scheduling
// jitter, times 0.9 for clock-rate differences between machines (a clock
// running up to 10% fast relative to another). 0 (no lease) when that
// leaves nothing.
func LeaseDurationFor(tick time.Duration, electionTicks int) time.Duration {
	if electionTicks <= 2 || tick <= 0 {
		return 0
	}
	return time.Duration(float64(time.Duration(electionTicks-2)*tick) * 0.9)
}
