// Package placement is the placement driver: the cluster's metadata
// service, itself a Raft group of 1 or 3+ members built on rangeraft with
// its own Pebble engine. It gives stores their IDs, bootstraps the cluster,
// persists store and range descriptors, routes keys for clients, allocates
// IDs, and schedules replica repair and balancing as operators that range
// leaders execute.
//
// Invariants:
//   - replicated state (cluster ID, bootstrapped, ID allocator, stores,
//     range descriptors) changes only by applying Raft entries; a range
//     descriptor is written only when its epoch is newer than the stored
//     one (never per heartbeat);
//   - IDs are reserved through Raft in batches; a new leader reserves a
//     fresh batch, so no ID is handed out twice;
//   - heartbeat-derived state (store stats, range leaders and sizes,
//     operators in flight) lives in memory on the leader only;
//   - non-leaders answer every API call with a NotLeader redirect;
//   - operators advance only when a range's reported epoch shows the step
//     done, and abort on an unexpected epoch or a timeout.
package placement
