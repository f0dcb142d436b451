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
// Scan, BatchGet and BatchPut fan out per range in parallel and return
// results in key (or input) order. None of them is atomic across ranges;
// see BatchPut.
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
