package main

import (
	crand "crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/spf13/pflag"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/store"
)

// load resolves the configuration as rangekv-store does, from flags, the
// environment (set for the test) and an optional YAML file.
func load(t *testing.T, args []string, env map[string]string, yaml string) (store.Config, error) {
	t.Helper()
	for _, kv := range os.Environ() { // the caller's RANGEKV_* must not leak in
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RANGEKV_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	if yaml != "" {
		f := filepath.Join(t.TempDir(), "store.yaml")
		if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", f)
	}
	fs := pflag.NewFlagSet("rangekv-store", pflag.ContinueOnError)
	cliconfig.Register(fs, keys)
	if err := fs.Parse(args); err != nil {
		return store.Config{}, err
	}
	vals, err := cliconfig.Load(fs, keys)
	if err != nil {
		return store.Config{}, err
	}
	return buildConfig(vals)
}

var base = []string{"--data-dir", "/tmp/x", "--placement", "127.0.0.1:7401"}

func TestProfilesSetTheirValues(t *testing.T) {
	for name, p := range profiles {
		cfg, err := load(t, append(base, "--raft.profile", name), nil, "")
		if err != nil {
			t.Fatalf("profile %s: %v", name, err)
		}
		if cfg.ElectionTimeout != p.election || cfg.HeartbeatInterval != p.heartbeat || cfg.LogTruncateThreshold != p.truncate ||
			cfg.LogMaxEntries != p.maxLog || cfg.MaxBatchRanges != int(p.maxBatchRanges) || cfg.SplitMaxBytes != p.splitMaxBytes {
			t.Errorf("profile %s gave election %s heartbeat %s truncate %d max-log %d batch %d split %d, want %+v",
				name, cfg.ElectionTimeout, cfg.HeartbeatInterval, cfg.LogTruncateThreshold, cfg.LogMaxEntries, cfg.MaxBatchRanges, cfg.SplitMaxBytes, p)
		}
		if cfg.UnsafeNoFsync {
			t.Errorf("profile %s turns fsync off", name)
		}
	}
	// No profile given: production.
	cfg, err := load(t, base, nil, "")
	if err != nil || cfg.ElectionTimeout != time.Second || cfg.SplitMaxBytes != 128<<20 {
		t.Fatalf("default profile: election %s split %d err %v, want production's 1s and 128MiB", cfg.ElectionTimeout, cfg.SplitMaxBytes, err)
	}
}

// flag > env > file > profile > default, key by key.
func TestConfigPrecedence(t *testing.T) {
	yaml := `
raft:
  profile: high-availability
  election-timeout: 3s
  heartbeat-interval: 300ms
  log-truncate-threshold: 777
split:
  max-size: 1MiB
storage:
  min-free: 5GiB
`
	env := map[string]string{
		"RANGEKV_RAFT_ELECTION_TIMEOUT":   "4s",
		"RANGEKV_RAFT_HEARTBEAT_INTERVAL": "400ms",
	}
	args := append(base, "--raft.election-timeout", "5s")
	cfg, err := load(t, args, env, yaml)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"raft.election-timeout (flag over env, file, profile)", cfg.ElectionTimeout, 5 * time.Second},
		{"raft.heartbeat-interval (env over file, profile)", cfg.HeartbeatInterval, 400 * time.Millisecond},
		{"raft.log-truncate-threshold (file over profile)", cfg.LogTruncateThreshold, uint64(777)},
		{"split.max-size (file over profile)", cfg.SplitMaxBytes, int64(1 << 20)},
		{"storage.min-free (file over default)", cfg.MinFreeBytes, int64(5 << 30)},
		{"raft.log-max-entries (profile over nothing)", cfg.LogMaxEntries, profiles["high-availability"].maxLog},
		{"raft.max-batch-ranges (profile)", cfg.MaxBatchRanges, int(profiles["high-availability"].maxBatchRanges)},
		{"raft.proposal-timeout (default)", cfg.ProposalTimeout, 10 * time.Second},
		{"raft.max-pending-reads (default)", cfg.MaxPendingReads, 10000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	// The profile itself follows the same order.
	cfg, err = load(t, append(base, "--raft.profile", "high-performance"), map[string]string{"RANGEKV_RAFT_PROFILE": "high-availability"}, "raft:\n  profile: production\n")
	if err != nil || cfg.ElectionTimeout != 2*time.Second {
		t.Errorf("flag profile high-performance over env and file: election %s err %v, want 2s", cfg.ElectionTimeout, err)
	}
	cfg, err = load(t, base, map[string]string{"RANGEKV_RAFT_PROFILE": "high-availability"}, "raft:\n  profile: production\n")
	if err != nil || cfg.ElectionTimeout != 500*time.Millisecond {
		t.Errorf("env profile high-availability over file: election %s err %v, want 500ms", cfg.ElectionTimeout, err)
	}
}

// Every invalid configuration stops the process with a message naming the
// key.
func TestConfigValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want []string // substrings of the error
	}{
		{name: "unknown profile", args: []string{"--raft.profile", "turbo"}, want: []string{"raft.profile", `"turbo"`, "high-availability"}},
		{name: "unknown key in the file", yaml: "raft:\n  election-timout: 1s\n", want: []string{"unknown key", "raft.election-timout"}},
		{name: "bad duration (flag)", args: []string{"--raft.election-timeout", "fast"}, want: []string{"raft.election-timeout", "invalid duration", `"fast"`, "flag"}},
		{name: "bad duration (env)", env: map[string]string{"RANGEKV_RAFT_HEARTBEAT_INTERVAL": "10"}, want: []string{"raft.heartbeat-interval", "invalid duration", "env"}},
		{name: "bad duration (file)", yaml: "split:\n  check-interval: soon\n", want: []string{"split.check-interval", "invalid duration", "file"}},
		{name: "negative duration", args: []string{"--raft.proposal-timeout", "-1s"}, want: []string{"raft.proposal-timeout", "invalid duration"}},
		{name: "bad size", args: []string{"--storage.min-free", "lots"}, want: []string{"storage.min-free", "invalid size"}},
		{name: "bad integer", args: []string{"--raft.max-batch-ranges", "many"}, want: []string{"raft.max-batch-ranges", "invalid integer"}},
		{name: "bad boolean", env: map[string]string{"RANGEKV_RAFT_SYNC": "maybe"}, want: []string{"raft.sync", "invalid boolean"}},
		{name: "heartbeat equal to election timeout", args: []string{"--raft.heartbeat-interval", "1s"}, want: []string{"raft.heartbeat-interval", "below raft.election-timeout"}},
		{name: "heartbeat above the profile's election timeout", args: []string{"--raft.profile", "high-availability", "--raft.heartbeat-interval", "600ms"}, want: []string{"raft.heartbeat-interval", "500ms"}},
		{name: "election timeout under twice the heartbeat", args: []string{"--raft.election-timeout", "150ms"}, want: []string{"raft.election-timeout", "twice raft.heartbeat-interval"}},
		{name: "zero heartbeat", args: []string{"--raft.heartbeat-interval", "0s"}, want: []string{"raft.heartbeat-interval", "positive"}},
		{name: "proposal timeout under the election timeout", args: []string{"--raft.proposal-timeout", "500ms"}, want: []string{"raft.proposal-timeout", "raft.election-timeout"}},
		{name: "log max entries under the truncation threshold", args: []string{"--raft.log-max-entries", "10"}, want: []string{"raft.log-max-entries", "raft.log-truncate-threshold"}},
		{name: "zero truncation threshold", args: []string{"--raft.log-truncate-threshold", "0"}, want: []string{"raft.log-truncate-threshold"}},
		{name: "zero batch", args: []string{"--raft.max-batch-ranges", "0"}, want: []string{"raft.max-batch-ranges", "at least 1"}},
		{name: "zero pending reads", args: []string{"--raft.max-pending-reads", "0"}, want: []string{"raft.max-pending-reads", "at least 1"}},
		{name: "split size too small", args: []string{"--split.max-size", "1KiB"}, want: []string{"split.max-size", "64KiB"}},
		{name: "value size over the limit", args: []string{"--limits.max-value-size", "16MiB"}, want: []string{"limits.max-value-size"}},
		{name: "bad log level", args: []string{"--log-level", "loud"}, want: []string{"log-level", "loud"}},
		{name: "bad labels", args: []string{"--labels", "zone"}, want: []string{"labels", "KEY=VALUE"}},
		{name: "snapshot rate too low", args: []string{"--snapshot.rate-limit", "1KiB"}, want: []string{"snapshot.rate-limit"}},
		{name: "unreadable file", args: []string{"--config", "/nonexistent/store.yaml"}, want: []string{"config", "/nonexistent/store.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, append(append([]string{}, base...), tc.args...), tc.env, tc.yaml)
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The binary wires the production implementation of every seam.
func TestConfigWiresProductionSeams(t *testing.T) {
	cfg, err := load(t, base, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Clock.(clock.Real); !ok {
		t.Errorf("Clock is %T, want clock.Real", cfg.Clock)
	}
	if cfg.Rand != crand.Reader {
		t.Errorf("Rand is %T, want crypto/rand.Reader", cfg.Rand)
	}
	if cfg.FS != vfs.Default {
		t.Errorf("FS is %T, want vfs.Default", cfg.FS)
	}
	if _, ok := cfg.Network.(grpcnet.TCP); !ok {
		t.Errorf("Network is %T, want grpcnet.TCP", cfg.Network)
	}
	if _, ok := cfg.Runner.(*store.WorkerPool); !ok {
		t.Errorf("Runner is %T, want *store.WorkerPool", cfg.Runner)
	}
}
