// Package router is the rangekv client SDK. It imports only the generated
// protocol (proto/rangekvpb) and gRPC: a client never links the server.
//
// This first version is the static client: it talks to a fixed list of
// store addresses (static bootstrap, no placement driver), lets the store
// route each key to its range, caches the leader it learned from NotLeader
// hints and retries with exponential backoff and jitter, bounded by the
// caller's context.
//
// Invariants:
//   - a write is retried only when it is known not to have been applied
//     (refused before sending, NotLeader, ServerBusy, StaleCommand, epoch
//     and range errors); when its outcome is unknown it returns an
//     *AmbiguousError and is never retried (no double Incr);
//   - reads are always safe to retry.
package router
