// Package router is the rangekv client SDK. It imports only the generated
// protocol (proto/rangekvpb) and gRPC: a client never links the server.
//
// A Client sends each request straight to the leader of the key's range.
// It keeps a range cache ordered by key (descriptor with its epoch, and the
// leader learned for each range) and the stores' addresses, and it learns
// what it lacks from a route source:
//
//   - New(placementAddrs, opts): the placement driver. A cache miss loads
//     the range with GetRange (and Options.Prefetch ranges after it); a
//     store's address comes from GetStore. Placement calls go to its leader,
//     follow NotLeader redirects and move on from members that are down.
//   - NewStatic(storeAddrs, opts): a fixed list of stores. A request for a
//     range the client does not know goes to a store without a range ID and
//     the store routes it; a success teaches the client that store's ranges.
//
// One retry loop (Client.do) serves both. Every range error updates the
// cache: NotLeader with a hint switches the leader (one extra round trip);
// EpochNotMatch caches the descriptors the store sent (after a split, one
// extra round trip); RangeNotFound and KeyNotInRange drop the range and
// reload it; an unreachable store moves the range to another replica.
// Retries back off exponentially with jitter, bounded by the caller's
// context.
//
// Scan, BatchGet and the batch writes (Batch, BatchPut, BatchDelete) fan
// out per range in parallel and return results in key (or input) order.
// A batch write is ATOMIC PER RANGE: the ops of one range travel as one KV
// Batch request that the store applies as one Raft command, all or nothing
// (also across a crash). It is NOT atomic across ranges: a failed batch may
// have written the ops of some ranges and not of others (*BatchError says
// how many are known written). A per-range batch refused by a range error
// is retried, split further when a stale cache had grouped keys of ranges
// that have since split; one whose outcome is unknown is not retried.
//
// Admin (placement clients only) exposes cluster inspection and
// operations: cluster status, stores, ranges, split, replica moves, leader
// transfers, rebalancing, operators.
//
// Invariants:
//   - a write is retried only when it is known not to have been applied
//     (refused before sending, NotLeader, ServerBusy, StaleCommand, epoch
//     and range errors); when its outcome is unknown it returns an
//     *AmbiguousError and is never retried (no double Incr). The same holds
//     for placement operations that change the cluster (Split,
//     MoveReplica, TransferLeader, Rebalance);
//   - reads are always safe to retry.
package router
