// Package sim is a pure, in-memory simulation of the placement driver's
// scheduling loop, for tests and benchmarks of package schedule: stores and
// ranges are plain data, and operators from schedule.Schedule are applied
// step by step as a store would apply them. There is no Raft, no I/O, no
// goroutine and no clock: each Round advances a simulated now by a fixed
// interval.
//
// A round, in order:
//
//  1. learners added in the previous round finish their snapshot (stop
//     being pending) if their store is Up; a range whose leader's store is
//     not Up elects its lowest-ID Up voter (if a quorum of voters is Up);
//  2. every in-flight operator is checked (CheckEpoch, Expired: aborted on
//     failure), finished if NextStep says done, or else its next step is
//     applied, as the executor contract of schedule.Step describes
//     (membership steps grow conf_ver by ConfVerDelta);
//  3. schedule.Schedule runs over a fresh ClusterView; its operators become
//     in flight, replica IDs filled in (as the controller would), and their
//     first step is applied at once (the controller dispatches it).
//
// So every step is seen done one round after it was applied: a learner is
// added pending in one round and has caught up in the next; a replica move
// (add, promote, remove) is created in round k and finished in round k+3.
//
// A Cluster is not safe for concurrent use.
package sim
