// Package logstore is the Pebble implementation of a range's Raft log
// storage. Many ranges share one Pebble engine; each RangeLog owns the
// range-local keys of one range ID (see internal/keys).
//
// Writes are staged into a caller-owned batch so that the Raft state of many
// ranges is persisted with one synced commit; the in-memory view (last index,
// hard state, truncated state) is updated only by the Finish* methods, which
// the caller invokes after that batch committed.
//
// Invariants:
//   - FirstIndex() == truncated.Index+1 and Term(truncated.Index) ==
//     truncated.Term; entries below FirstIndex answer raft.ErrCompacted.
//   - Entries in [FirstIndex, LastIndex] are all present in the engine.
//   - Appending entry i deletes every stored entry >= i first.
//
// Concurrency: a RangeLog is safe for concurrent use; in practice raft calls
// it from the goroutine that drives the replica while snapshot senders read
// its applied state.
package logstore
