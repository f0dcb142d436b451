// Raft profiles: named sets of defaults for the Raft timings, batching,
// log truncation and split size. A key given explicitly (flag, environment
// or file) overrides its profile value. The table is documented in
// docs/configuration.md; keep the two in step.

package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/store"
)

// profile holds the values a Raft profile sets. Every profile keeps the
// Raft log fsynced before acknowledging (raft.sync stays true): no profile
// trades durability for speed.
type profile struct {
	election, heartbeat time.Duration
	truncate, maxLog    uint64 // raft.log-truncate-threshold, raft.log-max-entries
	maxBatchRanges      int64  // raft.max-batch-ranges
	splitMaxBytes       int64  // split.max-size
}

var profiles = map[string]profile{
	// Balanced: etcd's timings, TiKV's region size order of magnitude.
	"production": {election: time.Second, heartbeat: 100 * time.Millisecond,
		truncate: 1000, maxLog: 100000, maxBatchRanges: 256, splitMaxBytes: 128 << 20},
	// Fewer heartbeats and elections, bigger batches and ranges, longer
	// logs: more throughput, slower failover (about 2-4s).
	"high-performance": {election: 2 * time.Second, heartbeat: 200 * time.Millisecond,
		truncate: 2000, maxLog: 500000, maxBatchRanges: 1024, splitMaxBytes: 256 << 20},
	// Fast failover: a dead leader is replaced within about a second;
	// smaller ranges move and recover faster.
	"high-availability": {election: 500 * time.Millisecond, heartbeat: 50 * time.Millisecond,
		truncate: 1000, maxLog: 100000, maxBatchRanges: 256, splitMaxBytes: 64 << 20},
}

func profileOf(name string) (profile, error) {
	p, ok := profiles[name]
	if !ok {
		names := make([]string, 0, len(profiles))
		for n := range profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return p, fmt.Errorf("raft.profile: unknown profile %q (one of %s)", name, strings.Join(names, ", "))
	}
	return p, nil
}

// apply sets cfg from the profile, then from every key given explicitly.
func (p profile) apply(cfg *store.Config, v *cliconfig.Values) {
	given := func(key string) bool { return v.Source(key) != "default" }
	cfg.ElectionTimeout, cfg.HeartbeatInterval = p.election, p.heartbeat
	cfg.LogTruncateThreshold, cfg.LogMaxEntries = p.truncate, p.maxLog
	cfg.MaxBatchRanges, cfg.SplitMaxBytes = int(p.maxBatchRanges), p.splitMaxBytes
	if given("raft.election-timeout") {
		cfg.ElectionTimeout = v.Duration("raft.election-timeout")
	}
	if given("raft.heartbeat-interval") {
		cfg.HeartbeatInterval = v.Duration("raft.heartbeat-interval")
	}
	if given("raft.log-truncate-threshold") {
		cfg.LogTruncateThreshold = v.Uint("raft.log-truncate-threshold")
	}
	if given("raft.log-max-entries") {
		cfg.LogMaxEntries = v.Uint("raft.log-max-entries")
	}
	if given("raft.max-batch-ranges") {
		cfg.MaxBatchRanges = int(v.Int("raft.max-batch-ranges"))
	}
	if given("split.max-size") {
		cfg.SplitMaxBytes = v.Size("split.max-size")
	}
}
