// Package driver is the one Raft driver of rangekv, shared by the store
// (up to raft.max-batch-ranges replicas per pass) and placement (its one
// group). It turns the Readies of a set of groups into one Pebble commit,
// messages and applies, in the order etcd raft requires (MULTIRAFT.md §1),
// and owns what every group created without a log shares: its initial
// state (InitIndex, InitTerm, WriteInitialState) and the truncation policy
// (TruncationPolicy, Truncator).
//
// What differs per user sits behind Group: the state machine that stages
// applies, the snapshot ingest, the message sender and the hooks after
// apply and after Advance. The driver never takes a lock, starts no
// goroutine and reads no clock; its user serializes each group (the store
// holds the replica's lock for the whole pass).
//
// A pass (Driver.Add for each group with a Ready, then Driver.Run):
//
//  1. A leader's MsgApps are sent at once, before its own append is
//     durable: raft counts the leader's own copy only after Advance, so a
//     commit still needs a quorum of durable copies (Raft thesis §10.2.1).
//  2. Every group's snapshot (IngestSnapshot), entries and hard state go
//     into ONE batch; when no group has a snapshot, every group's
//     committed entries are staged into that same batch (StageApply).
//  3. The batch commits once, synced when any Ready must sync (MustSync),
//     when a snapshot is in it, or when StageApply asks for it.
//  4. Per group: FinishSnapshot, then the log's in-memory view
//     (FinishAppend), then the rest of the messages (Send). After steps 1
//     and 4 the user's Options.Flush (if any) sends what Send buffered.
//  5. With a snapshot in the pass, the committed entries are staged into a
//     batch of their own and committed after it (a snapshot must be in
//     place before entries past it apply).
//  6. Per group: FinishApply, Advance, AfterAdvance.
//
// Invariants:
//   - nothing of a Ready but a leader's MsgApp leaves before the batch
//     holding its entries and hard state has committed;
//   - entries and hard state of a Ready are in the same batch (a commit
//     index never lands without the entries it covers); a hard state
//     that changed only in a commit index the same batch's applies cover
//     is not written at all (logstore.StageAppendApplied);
//   - an apply batch holds the applied index of the entries it applies
//     (StageApply writes both), and commits no earlier than the entries;
//   - a pass commits its persist batch at most once, and syncs it iff a
//     Ready must sync, a snapshot is in it, or an apply asks for it;
//   - the log's in-memory view (last index, hard state) moves only after
//     the commit (logstore's Finish* contract).
package driver
