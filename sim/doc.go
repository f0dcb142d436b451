// Package sim is the deterministic simulation of a whole rangekv cluster:
// the real store, rangeraft and placement code, N stores and a placement
// group, in one process, driven by one seeded scheduler (issue 17).
//
// A run is a function of its seed. The simulator owns every source of
// non-determinism the production code reaches through its seams:
//
//   - time: one clock.Manual; every store, member and client reads it (each
//     process through a fixed offset, the clock drift), and its timers fire
//     one at a time, when the scheduler picks them;
//   - the network: a grpcnet.Direct whose Wire is the simulator's: every
//     request, response and stream message waits in the simulator's queue
//     until the scheduler delivers it, loses it, delays it or duplicates
//     it (partitions, loss, delay and duplication are seed-chosen faults);
//   - the Raft workers: each store's Runner and PassPoints are the
//     simulator's (workers.go): a pass starts on one of the store's two
//     worker goroutines when the scheduler picks that store, and at a pass
//     point the seed may stop it for a while, during which other steps run
//     (a pass of the same store on its other worker among them);
//   - the disk: every process's engine is on its own pebble vfs.MemFS; a
//     crash keeps only what was synced (MemFS.CrashClone) and the process
//     restarts from that;
//   - randomness: each process's Config.Rand is a ChaCha8 stream seeded from
//     the run's seed, and the package-global source etcd raft draws its
//     election jitter from (crypto/rand) is made deterministic by the test
//     (testing/cryptotest.SetGlobalRandom).
//
// The production code still runs goroutines (handlers, loops, senders).
// The run happens inside a testing/synctest bubble, and after every step
// the simulator waits (synctest.Wait) until every other goroutine is
// blocked; a step wakes at most the goroutines its one action wakes, and
// whatever they hand the simulator (envelopes, results) is put in a
// canonical order before it is used. A goroutine a store has work for (a
// peer's sender, the waiter of an outcome, a loop; store.PassPoints.Wake)
// is woken only once every goroutine blocked, one at a time, so that it
// never runs beside its waker in an order a preemption decides. The trace
// (one line per step) is hashed; a seed's two runs must give the same
// hash, and so must a run whose goroutines yield at every pass point and
// wake-up (Config.Preempt).
//
// Invariants the checker holds the code to, during the run and at its end:
// every key's history is linearizable (porcupine, through
// internal/histcheck) and no acknowledged write is lost; at most one leader
// per range per term, and no replica grants two candidates its vote in one
// term (read from the Raft messages on the wire); a committed entry never
// changes, and between two membership changes a range's log holds few
// empty entries (checks_entries.go, checks_log.go); the descriptors of one
// store never overlap (also checked after each of its passes); replicas of
// a range at the same applied index hold the same data; after the faults
// heal, every range has a leader and all its voters within a bounded
// simulated time.
package sim
