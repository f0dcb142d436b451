// Package schedule is the pure decision core of the placement driver: it
// takes an immutable snapshot of the cluster (ClusterView) and returns
// operators — epoch-guarded step lists that move replicas and leadership —
// and it judges, from a range's reported descriptor alone, how far an
// operator has got and whether it must be aborted. It is modelled on TiKV
// PD's replica checker, balance-region and balance-leader schedulers and
// operator steps.
//
// It has no goroutines, reads no clock (now is an argument), does no I/O,
// uses no randomness and imports only the standard library and
// proto/rangekvpb. The controller in package placement owns the loop: it
// builds a ClusterView from heartbeats, calls Schedule, hands each
// operator's next step to the range's leader, and tracks progress.
//
// # API
//
//   - Config, DefaultConfig, Config.Validate: the knobs (replication factor,
//     location labels, max-store-down-time, per-store limits, margins).
//   - StoreView, RangeView, StoreState, Epoch: what placement knows of a
//     store and of a range (descriptor, leader, size, pending replicas).
//   - NewClusterView: validates and indexes a snapshot (stores, ranges,
//     in-flight operators); ClusterView's accessors read it.
//   - Schedule(view, now): one round — repair, label spreading, replica
//     balance, leader balance — returning new operators, most urgent first.
//   - CheckRange(view, rangeID, now): the repair operator one range needs.
//   - Operator, Kind, Priority; Step with AddLearner, PromoteLearner,
//     RemoveReplica, TransferLeader, LeaveJoint.
//   - Operator.NextStep, Operator.CheckEpoch (StaleOperatorError,
//     StaleReason), Operator.Expired, Operator.WithReplicaID,
//     Operator.Stores; Describe and DescribeAll render operators.
//
// Package sim (placement/schedule/sim) simulates the loop without Raft,
// for tests and benchmarks.
//
// # The controller's side of the contract
//
//  1. Pass the operators still in flight to NewClusterView: Schedule never
//     starts a second operator on a range, and counts in-flight operators
//     against the per-store limits and in the expected replica and leader
//     counts.
//  2. Before dispatching, allocate a replica ID for each AddLearner step
//     (WithReplicaID); the scheduler leaves it 0.
//  3. On every range heartbeat newer than the last: CheckEpoch, and abort
//     on error; abort when Expired(now); otherwise NextStep: done → the
//     operator is finished; else (re)send that step. Steps are idempotent
//     on the store side: re-sending a step whose entry is applied but not
//     yet done (a learner catching up) is harmless.
//  4. An aborted operator is dropped, never repaired: the next Schedule
//     sees what it left behind (a learner, a joint configuration) and
//     plans a cleanup operator like any other.
//
// The executor (store side) grows conf_ver by one per applied membership
// entry, leave-joint included, so a step grows it by Step.ConfVerDelta, the
// entries it takes: AddLearner (AddLearnerNode, +1), PromoteLearner (enter a
// joint configuration with the learner VOTER_INCOMING, then leave it, +2;
// CheckEpoch counts the first half once the descriptor shows it),
// RemoveReplica (RemoveNode, +1), LeaveJoint (the empty ConfChangeV2, +1);
// TransferLeader changes no epoch.
//
// # Invariants
//
//   - Purity and determinism: the same view and now give the same
//     operators, in the same order. A ClusterView is never modified after
//     NewClusterView; the caller must not modify the descriptors, label
//     maps and operators it shares with the view.
//   - At most one operator per range: ranges with an in-flight operator
//     are skipped, and each round creates at most one per range.
//   - Limits: per store, at most MaxOperatorsPerStore operators whose
//     remaining steps touch it and MaxSnapshotsPerStore learner additions to
//     it, in flight included; at most MaxOperatorsPerRound per round. Dead
//     stores (whose replicas are being replaced) are not limited.
//   - An operator is created at the range's exact current epoch. NextStep
//     advances only when the reported descriptor shows the previous step
//     done: a learner is done only once it is in the descriptor and not
//     pending; a promotion once the replica is a VOTER; a removal once it is
//     gone; a transfer once a known leader other than its source leads.
//   - CheckEpoch aborts when the version differs (split or merge), when
//     conf_ver went backwards, when conf_ver grew by more than the steps
//     whose entries the descriptor shows explain, or when the next step
//     conflicts (removing the leader, promoting a learner that is gone,
//     transferring to a non-voter).
//   - A replica is moved (repair, spreading, balance) as AddLearner(new) →
//     PromoteLearner(new) → TransferLeader off the old store if it leads →
//     RemoveReplica(old) (MULTIRAFT.md §6). The leader is never removed:
//     RemoveReplica conflicts while its store leads, and every operator that
//     removes the leader's replica transfers leadership first. A demoting
//     leader gives up leadership before a joint configuration is left.
//   - New replicas go only to Up stores that do not hold the range, have
//     room under the limits and, if they report a capacity, space below
//     LowSpaceRatio; among those, the best label isolation, then the
//     fewest expected replicas, then the fewest bytes, then the lowest ID.
//   - Nothing is done for a range without a known leader on an Up store
//     (nobody to execute it) or whose live voters are below a quorum (no
//     membership change can commit; that needs a manual recovery). A Down
//     store within MaxStoreDownTime keeps its replicas.
//   - No thrashing: a replica moves from s to t only when s holds more
//     than ReplicaBalanceMargin (≥ 1) replicas more than t, counting
//     in-flight operators, so afterwards t holds no more than s and no
//     later round moves it back; leadership likewise with
//     LeaderBalanceTolerance. Balance moves never lower a range's label
//     isolation, and spreading moves strictly raise it, so neither undoes
//     the other. Hence rounds on a settled cluster propose nothing, and
//     replica counts of Up stores converge to within the margin unless
//     labels or space forbid it.
//
// # Cost
//
// NewClusterView is O(ranges + replicas); Schedule is O(ranges) for the
// repair and spreading scans plus O(stores) per operator it creates (and a
// bounded number of ranges examined per source store). At 100 stores and
// 100,000 ranges a Schedule call takes about 1 ms on a settled cluster,
// 2 ms in the busiest balancing round and 9 ms in the busiest repair round
// (a store with 3,000 replicas removed); building the view takes 15-20 ms
// (BenchmarkScheduleRound, BenchmarkNewClusterView).
package schedule
