// Package rangeraft is one replica of one Raft group: a thin layer over
// etcd raft's RawNode that tracks proposals and linearizable reads and hands
// committed entries to the owner for applying. It has no goroutines, reads
// only an injected clock (for leases; otherwise time is ticks) and knows
// nothing of Pebble, KV, stores or placement: the log storage is a
// raft.Storage and the state machine lives with the caller, so the
// placement driver reuses this package.
//
// The owner drives a Replica from one goroutine at a time, in this order
// (the etcd raft contract, see MULTIRAFT.md §1):
//
//  1. Step / Tick / Propose / ReadIndex / FlushReads
//  2. rd, ok := Ready(): persist rd.Entries and rd.HardState (and the
//     snapshot) durably — many replicas' Readies may share one synced batch
//  3. send rd.Messages (a leader's MsgApp may be sent before step 2)
//  4. apply rd.CommittedEntries (data and applied index in one batch), then
//     report each applied entry with Applied
//  5. Advance(rd)
//
// Invariants kept here:
//   - every proposal completes exactly once: applied (with the state
//     machine's result), definitely not applied (ErrStaleCommand: its index
//     was applied with another command), or ambiguous (ErrAmbiguous: timeout,
//     shutdown) — never guessed;
//   - proposals are accepted on the leader only (DisableProposalForwarding);
//   - a read completes only when applied >= its read index, on a replica that
//     has applied an entry of its current term, and each ReadIndex round uses
//     a fresh context that is never reused;
//   - a lease read (ReadLease) is served without a round only while the
//     leader holds a lease renewed by a quorum-confirmed ReadIndex round
//     that began after the lease was last voided (lease.go); a follower read
//     (ReadFollower) is served on a follower once it applied a read index
//     the leader confirmed, and fails with NotLeaderError when it knows no
//     leader;
//   - ReadOnlySafe, CheckQuorum and PreVote are always on.
package rangeraft
