// Read leases on the store side: the lease length the store gives its
// replicas, and the rule that keeps a restarted store from voting too soon.
//
// rangeraft/lease.go argues why a leader may serve reads locally until
// t0 + LeaseDuration after a ReadIndex round began at t0: every follower in
// the quorum that answered reset its election timer after t0 and, with
// CheckQuorum, ignores other candidates' (pre-)votes for ElectionTimeout
// minus one tick. That argument needs the store to keep these promises:
//
//  1. No ForgetLeader before the lease is over. A follower forgets its
//     leader (quiesce.go onLeaderDead; raft_loop.go, on a vote) only when
//     store liveness has not heard from the leader's store for the liveness
//     timeout, which is ElectionTimeout. The batch that carried the round's
//     heartbeat was received after t0 and counts as hearing from that store,
//     so the follower forgets no sooner than t0 + ElectionTimeout on its
//     clock, later than the lease's end (leaseDuration is at most 0.9 ×
//     (ElectionTimeout − 2 ticks)). Quiesced followers do not tick, which
//     only lengthens their refusal.
//  2. No vote from a freshly restarted store. A restarted replica remembers
//     no leader, so raft's vote refusal does not hold for it; a follower
//     that acknowledged the round and then restarted could otherwise vote
//     at once. A store therefore ignores (pre-)vote requests for
//     ElectionTimeout after it started (holdingVotes): an election then
//     merely waits, as it would for a lost message.
//  3. Only replicas whose raft state lasts answer for the lease. An
//     uninitialized replica's state is replaced when the local split
//     installs the range (installRHS) by one that knows no leader and
//     votes at once, so it never confirms a read round: raft_loop.go strips
//     the read context from heartbeats it steps.
//  4. A store wiped and restarted under the same ID cannot vote again:
//     peers refuse its Raft traffic (incarnation.go).

package store

import (
	"time"

	"github.com/rangekv/rangekv/rangeraft"
)

// leaseDuration is the read lease the store's replicas use: see
// rangeraft.LeaseDurationFor for the margin.
func (c *Config) leaseDuration() time.Duration {
	election, _, _, _ := c.raftTicks()
	return rangeraft.LeaseDurationFor(c.HeartbeatInterval, election)
}

// votesHeld reports whether a store started at start must still ignore
// vote requests at now (promise 2 above).
func votesHeld(start, now time.Time, electionTimeout time.Duration) bool {
	return now.Sub(start) < electionTimeout
}

// holdingVotes applies votesHeld to this store.
func (s *Store) holdingVotes() bool {
	return votesHeld(s.liveness.start, s.now(), s.cfg.ElectionTimeout)
}
