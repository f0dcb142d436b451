// Package store is a rangekv store process: one Pebble engine shared by the
// replicas of many ranges, a fixed pool of Raft workers fed by a scheduler
// queue (no goroutine, timer or ticker per range), one batched message
// stream per peer store, snapshots on their own RPC, and the KV and admin
// gRPC services.
//
// The Raft loop (store_worker.go) keeps the etcd raft contract for every
// replica it processes in one pass (MULTIRAFT.md §1); rangeraft/driver,
// shared with placement, runs steps 2 to 5 with the replica's hooks
// (replica_raft.go):
//
//  1. step inbox messages, tick, propose, issue one ReadIndex round;
//  2. stage every replica's Entries and HardState (and snapshot data) into
//     ONE Pebble batch, committed with Sync if any Ready needs it;
//  3. send messages (a leader's MsgApp may leave before step 2);
//  4. apply committed entries of every replica in one batch: data and
//     applied index together, so a restart neither re-applies nor skips;
//  5. complete proposals and reads, then Advance.
//
// Files by concern (docs/architecture.md has the map): replica.go and
// replica_*.go hold per-replica behaviour (*Replica methods, the replica
// reaching store-wide services through r.store; replica_apply.go's
// kvStateMachine is the KV state machine); store.go and store_*.go what is
// store-wide (lifecycle, workers, transport, the replica map, loops);
// server_*.go the gRPC adapters, which validate, find the replica, call it
// and encode.
//
// Invariants:
//   - nothing is acknowledged before it is committed by a quorum, with the
//     log fsynced (unless the operator chose --unsafe-no-fsync), and applied;
//   - a range is processed by at most one worker at a time (store_worker.go);
//   - a replica's raft state is touched only by the worker processing it,
//     under Replica.mu; other goroutines talk to it through its inbox.
package store
