// The configuration keys (flags > RANGEKV_* environment > --config file >
// defaults), their translation into a store.Config, and running the store
// until SIGTERM or SIGINT, draining its leaderships before it stops.

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/store"
)

var keys = []cliconfig.Key{
	{Name: "store-id", Kind: cliconfig.Uint, Default: "0", Usage: "static bootstrap only: this store's ID in --initial-stores (with --placement the ID is assigned)"},
	{Name: "addr", Kind: cliconfig.String, Default: "127.0.0.1:7501", Usage: "gRPC listen address"},
	{Name: "advertise-addr", Kind: cliconfig.String, Default: "", Usage: "address peers and clients use (default: --addr)"},
	{Name: "http-addr", Kind: cliconfig.String, Default: "127.0.0.1:7511", Usage: "HTTP address for /metrics, /healthz, /readyz, /debug (empty disables)"},
	{Name: "data-dir", Kind: cliconfig.String, Default: "", Usage: "data directory (required)"},
	{Name: "initial-stores", Kind: cliconfig.String, Default: "", Usage: "static bootstrap: ID=ADDR,... of every store of a new cluster; range 1 is created on all of them"},
	{Name: "new-cluster", Kind: cliconfig.Bool, Default: "false", Usage: "static bootstrap: every store of the cluster is new; on an empty --data-dir, skip asking the other stores whether this --store-id had an earlier, wiped data directory"},
	{Name: "placement", Kind: cliconfig.String, Default: "", Usage: "placement driver member addresses, ADDR,ADDR,...; the store joins the cluster through them"},
	{Name: "labels", Kind: cliconfig.String, Default: "", Usage: "location labels for replica placement, e.g. zone=a,host=h1"},
	{Name: "heartbeat.store-interval", Kind: cliconfig.Duration, Default: "2s", Usage: "how often the store reports to placement"},
	{Name: "heartbeat.range-interval", Kind: cliconfig.Duration, Default: "1s", Usage: "how often range leaders report changed ranges (and fetch operator steps)"},
	{Name: "unsafe-no-fsync", Kind: cliconfig.Bool, Default: "false", Usage: "UNSAFE: acknowledge writes before they are durable (benchmarks only; a crash loses data)"},
	{Name: "drain-timeout", Kind: cliconfig.Duration, Default: "10s", Usage: "on SIGTERM, how long the store waits for its Raft leaderships to move to other stores before it stops (0: stop at once)"},
	{Name: "log-level", Kind: cliconfig.String, Default: "info", Usage: "debug, info, warn or error"},
	{Name: "tls.cert", Flag: "tls-cert", Kind: cliconfig.String, Default: "", Usage: "PEM certificate of this store (server and client use); with --tls-key and --tls-ca every gRPC connection is mutual TLS (all three or none)"},
	{Name: "tls.key", Flag: "tls-key", Kind: cliconfig.String, Default: "", Usage: "PEM private key of --tls-cert"},
	{Name: "tls.ca", Flag: "tls-ca", Kind: cliconfig.String, Default: "", Usage: "PEM CA certificate(s) that sign every peer's and client's certificate"},
	{Name: "raft.profile", Kind: cliconfig.String, Default: "production", Usage: "production, high-performance or high-availability: defaults for the Raft timings, batching, log thresholds and split.max-size (docs/configuration.md)"},
	{Name: "raft.election-timeout", Kind: cliconfig.Duration, Default: "", Usage: "Raft election timeout (default from the profile)"},
	{Name: "raft.heartbeat-interval", Kind: cliconfig.Duration, Default: "", Usage: "Raft heartbeat interval = tick (default from the profile)"},
	{Name: "raft.proposal-timeout", Kind: cliconfig.Duration, Default: "10s", Usage: "a write not applied within this is reported as ambiguous"},
	{Name: "raft.sync", Kind: cliconfig.Bool, Default: "true", Usage: "fsync the Raft log before acknowledging (false is the same as --unsafe-no-fsync)"},
	{Name: "raft.workers", Kind: cliconfig.Int, Default: "0", Usage: "Raft worker goroutines (0: GOMAXPROCS)"},
	{Name: "raft.max-pending-reads", Kind: cliconfig.Int, Default: "10000", Usage: "most reads one replica holds queued or waiting for their read index; more are refused as busy (the router retries them)"},
	{Name: "raft.max-batch-ranges", Kind: cliconfig.Int, Default: "", Usage: "most ranges one worker pass handles, their log writes synced together (default from the profile)"},
	{Name: "raft.log-truncate-threshold", Kind: cliconfig.Uint, Default: "", Usage: "truncate the log when this many entries can go (default from the profile)"},
	{Name: "raft.log-max-entries", Kind: cliconfig.Uint, Default: "", Usage: "past this log length, lagging followers catch up by snapshot (default from the profile)"},
	{Name: "limits.max-key-size", Kind: cliconfig.Size, Default: "4KiB", Usage: "largest key accepted"},
	{Name: "limits.max-value-size", Kind: cliconfig.Size, Default: "1MiB", Usage: "largest value accepted (at most 8MiB)"},
	{Name: "limits.max-scan-limit", Kind: cliconfig.Int, Default: "10000", Usage: "most pairs one scan request returns"},
	{Name: "split.max-size", Kind: cliconfig.Size, Default: "", Usage: "a range holding more data than this is split in two (default from the profile)"},
	{Name: "storage.cache-size", Kind: cliconfig.Size, Default: "256MiB", Usage: "the engine's block cache (data read from disk stays here); 0 is Pebble's default of 8MiB"},
	{Name: "storage.min-free", Kind: cliconfig.Size, Default: "1GiB", Usage: "below this much free space in --data-dir the store refuses client writes (0 disables)"},
	{Name: "split.check-interval", Kind: cliconfig.Duration, Default: "10s", Usage: "how often the store looks for ranges to split by size"},
	{Name: "snapshot.rate-limit", Kind: cliconfig.Size, Default: "64MiB", Usage: "snapshot bytes sent per second by this store"},
	{Name: "snapshot.chunk-size", Kind: cliconfig.Size, Default: "1MiB", Usage: "payload of one snapshot chunk"},
	{Name: "snapshot.max-concurrent", Kind: cliconfig.Int, Default: "2", Usage: "snapshots sent at once"},
}

func main() {
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "rangekv-store",
		Short: "Run a rangekv store: replicas of many ranges over one Pebble engine",
		Long: `rangekv-store hosts replicas of key ranges, each a Raft group, over one
Pebble engine, and serves the KV, admin and Raft services over gRPC.

Every flag also reads from RANGEKV_<FLAG> (dots and dashes as underscores,
upper case) and from the YAML file given by --config, with keys nested by
section (raft.election-timeout is raft: {election-timeout: 1s}).
Precedence: flags > environment > file > raft.profile > defaults
(docs/configuration.md lists every key and the profiles).

A store joins its cluster through the placement driver (--placement): a new
store gets its ID, the first store of a new cluster creates range 1, and
placement moves replicas onto new stores. For tests and small setups a
cluster can instead be bootstrapped statically: start every store with the
same --initial-stores list and its own --store-id (no placement, no
rebalancing).`,
		Example: `  rangekv-store --addr 127.0.0.1:7501 --http-addr 127.0.0.1:7511 \
    --data-dir /var/lib/rangekv/s1 --labels zone=a,host=h1 \
    --placement 127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403

  # static bootstrap, no placement driver:
  rangekv-store --store-id 1 --addr 127.0.0.1:7501 --data-dir /tmp/s1 \
    --initial-stores 1=127.0.0.1:7501,2=127.0.0.1:7502,3=127.0.0.1:7503`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := cliconfig.Load(cmd.Flags(), keys)
			if err != nil {
				return err
			}
			cfg, err := buildConfig(vals)
			if err != nil {
				return err
			}
			if printConfig {
				fmt.Print(vals.Dump())
				return nil
			}
			return run(cfg, vals.Duration("drain-timeout"))
		},
	}
	cliconfig.Register(cmd.Flags(), keys)
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (with each value's source) and exit")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rangekv-store:", err)
		os.Exit(2)
	}
}

func buildConfig(v *cliconfig.Values) (store.Config, error) {
	cfg := store.Defaults()
	prof, err := profileOf(v.String("raft.profile"))
	if err != nil {
		return cfg, err
	}
	cfg.StoreID = v.Uint("store-id")
	cfg.Addr = v.String("addr")
	cfg.AdvertiseAddr = v.String("advertise-addr")
	cfg.HTTPAddr = v.String("http-addr")
	cfg.DataDir = v.String("data-dir")
	for _, a := range strings.Split(v.String("placement"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Placement = append(cfg.Placement, a)
		}
	}
	labels, err := parseLabels(v.String("labels"))
	if err != nil {
		return cfg, err
	}
	cfg.Labels = labels
	cfg.StoreHeartbeatInterval = v.Duration("heartbeat.store-interval")
	cfg.RangeHeartbeatInterval = v.Duration("heartbeat.range-interval")
	stores, err := parseInitialStores(v.String("initial-stores"))
	if err != nil {
		return cfg, err
	}
	cfg.InitialStores = stores
	cfg.NewCluster = v.Bool("new-cluster")
	cfg.UnsafeNoFsync = v.Bool("unsafe-no-fsync") || !v.Bool("raft.sync")
	prof.apply(&cfg, v)
	if cfg.HeartbeatInterval > 0 && cfg.HeartbeatInterval >= cfg.ElectionTimeout {
		return cfg, fmt.Errorf("raft.heartbeat-interval: %s must be below raft.election-timeout (%s); the election timeout is a multiple of it", cfg.HeartbeatInterval, cfg.ElectionTimeout)
	}
	cfg.ProposalTimeout = v.Duration("raft.proposal-timeout")
	cfg.Workers = int(v.Int("raft.workers"))
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	cfg.MaxPendingReads = int(v.Int("raft.max-pending-reads"))
	cfg.MaxKeySize = int(v.Size("limits.max-key-size"))
	cfg.MaxValueSize = int(v.Size("limits.max-value-size"))
	cfg.MaxScanLimit = int(v.Int("limits.max-scan-limit"))
	cfg.SnapshotChunkBytes = int(v.Size("snapshot.chunk-size"))
	cfg.SnapshotRateBytes = v.Size("snapshot.rate-limit")
	cfg.MinFreeBytes = v.Size("storage.min-free")
	cfg.CacheBytes = v.Size("storage.cache-size")
	cfg.SplitCheckInterval = v.Duration("split.check-interval")
	cfg.MaxConcurrentSnapshots = int(v.Int("snapshot.max-concurrent"))
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.String("log-level"))); err != nil {
		return cfg, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", v.String("log-level"))
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if files := (tlsconfig.Files{Cert: v.String("tls.cert"), Key: v.String("tls.key"), CA: v.String("tls.ca")}); files.Enabled() {
		if cfg.TLS, err = tlsconfig.Load(files, tlsconfig.Options{Logger: cfg.Logger}); err != nil {
			return cfg, err
		}
	}
	if len(cfg.Placement) == 0 && len(cfg.InitialStores) == 0 {
		return cfg, errors.New("placement: give the placement members (--placement ADDR,...), or --initial-stores for a static cluster")
	}
	if a, ok := cfg.InitialStores[cfg.StoreID]; ok && cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = a
	}
	return cfg, cfg.Validate()
}

// parseLabels parses "zone=a,host=h1".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("labels: %q is not KEY=VALUE", part)
		}
		out[k] = v
	}
	return out, nil
}

// parseInitialStores parses "1=host:port,2=host:port".
func parseInitialStores(s string) (map[uint64]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, fmt.Errorf("initial-stores: %q is not ID=ADDR with a positive ID", part)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("initial-stores: store %d is listed twice", n)
		}
		out[n] = addr
	}
	return out, nil
}

func run(cfg store.Config, drainTimeout time.Duration) error {
	s, err := store.Open(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Stop()
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	got := <-sig
	cfg.Logger.Info("signal received: draining, then stopping (a second signal stops at once)", "signal", got.String(), "drain-timeout", drainTimeout)
	// Drain: hand every leadership to another store first, so clients
	// see redirects rather than an election (store/store_drain.go).
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.Drain(ctx)
	cancel()
	s.Stop()
	return nil
}
