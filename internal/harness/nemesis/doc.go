// Package nemesis is rangekv's in-process nemesis (kvnemesis style): stores
// and placement members in one process (internal/harness/testcluster) take
// concurrent checked client traffic through router.Client while a seeded
// generator injects faults — splits, replica moves, leader transfers,
// store power loss and restart from a crash clone of its in-memory
// filesystem, partitions, one-way loss, message drops and delays by Raft
// message type, and placement leader changes. The test (nemesis_test.go)
// then checks the history per key with internal/histcheck and that the
// replicas of every range hold identical data at the same applied index.
//
// Faults is the fault-injecting transport: it plugs into the store's
// testing knobs (DropRaftMessage at the sender, RaftBatchFault before a
// batch leaves) and into the client's gRPC connections (a crashed store's
// answers are lost, as a dead process's would be).
//
// Invariants: a run is a function of its seed (the schedule of operations
// and faults; thread timing is not replayed); every fault is recorded on
// the history's timeline; at most one store is crashed at a time.
package nemesis
