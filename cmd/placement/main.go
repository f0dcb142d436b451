// The configuration keys (flags > RANGEKV_* environment > --config file >
// defaults), their translation into a placement.Config, and running the
// member until SIGTERM or SIGINT.

package main

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/placement"
)

var keys = []cliconfig.Key{
	{Name: "id", Kind: cliconfig.Uint, Default: "0", Usage: "this member's ID in --initial-cluster"},
	{Name: "addr", Kind: cliconfig.String, Default: "127.0.0.1:7401", Usage: "gRPC listen address"},
	{Name: "http-addr", Kind: cliconfig.String, Default: "127.0.0.1:7411", Usage: "HTTP address for /metrics, /healthz, /readyz, /debug/cluster (empty disables)"},
	{Name: "data-dir", Kind: cliconfig.String, Default: "", Usage: "data directory (required)"},
	{Name: "initial-cluster", Kind: cliconfig.String, Default: "", Usage: "every member as ID=ADDR,... (1 member for a laptop, 3 or more in production)"},
	{Name: "log-level", Kind: cliconfig.String, Default: "info", Usage: "debug, info, warn or error"},
	{Name: "tls.cert", Flag: "tls-cert", Kind: cliconfig.String, Default: "", Usage: "PEM certificate of this member (server and client use); with --tls-key and --tls-ca every gRPC connection is mutual TLS (all three or none)"},
	{Name: "tls.key", Flag: "tls-key", Kind: cliconfig.String, Default: "", Usage: "PEM private key of --tls-cert"},
	{Name: "tls.ca", Flag: "tls-ca", Kind: cliconfig.String, Default: "", Usage: "PEM CA certificate(s) that sign every peer's and client's certificate"},
	{Name: "raft.election-timeout", Kind: cliconfig.Duration, Default: "1s", Usage: "election timeout of the placement group"},
	{Name: "raft.heartbeat-interval", Kind: cliconfig.Duration, Default: "100ms", Usage: "heartbeat interval (tick) of the placement group"},
	{Name: "raft.log-truncate-threshold", Kind: cliconfig.Uint, Default: "5000", Usage: "truncate the placement log when this many applied entries can go"},
	{Name: "raft.log-max-entries", Kind: cliconfig.Uint, Default: "50000", Usage: "past this placement log length, a lagging member catches up by snapshot"},
	{Name: "schedule.replicas", Kind: cliconfig.Int, Default: "3", Usage: "replication factor of ranges"},
	{Name: "schedule.location-labels", Kind: cliconfig.String, Default: "", Usage: "store labels to spread replicas over, most significant first, e.g. zone,host"},
	{Name: "schedule.interval", Kind: cliconfig.Duration, Default: "2s", Usage: "how often the leader runs the scheduler"},
	{Name: "schedule.store-down-grace", Kind: cliconfig.Duration, Default: "10s", Usage: "a store without heartbeats this long is down"},
	{Name: "schedule.max-store-down-time", Kind: cliconfig.Duration, Default: "30m", Usage: "replicas on a store down this long are replaced elsewhere"},
	{Name: "schedule.operator-timeout", Kind: cliconfig.Duration, Default: "10m", Usage: "an operator not finished in this time is aborted"},
	{Name: "schedule.max-operators-per-store", Kind: cliconfig.Int, Default: "4", Usage: "operators touching one store at once"},
	{Name: "schedule.max-snapshots-per-store", Kind: cliconfig.Int, Default: "2", Usage: "replica additions (snapshots) into one store at once"},
}

func main() {
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "rangekv-placement",
		Short: "Run a member of the rangekv placement driver",
		Long: `rangekv-placement is the cluster's metadata service: a Raft group of 1 or
3+ members that bootstraps the cluster, gives stores their IDs, routes keys
for clients, allocates IDs, and repairs and rebalances replicas.

Every flag also reads from RANGEKV_<FLAG> (dots and dashes as underscores,
upper case) and from the YAML file given by --config, with keys nested by
section. Precedence: flags > environment > file > defaults.

TLS: with --tls-cert, --tls-key and --tls-ca (all three or none) every gRPC
connection is mutual TLS: clients and peers must present a certificate
signed by the CA. The files are re-read when they change (checked at most
once a second, on new connections): rotate them in place, no restart. The
HTTP endpoints (--http-addr) stay plain HTTP: bind them to a private
address. 'rangekv certs' writes a development CA and certificates.`,
		Example: `  rangekv-placement --id 1 --addr 127.0.0.1:7401 --http-addr 127.0.0.1:7411 \
    --data-dir /var/lib/rangekv/pd1 \
    --initial-cluster 1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403`,
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
			return run(cfg)
		},
	}
	cliconfig.Register(cmd.Flags(), keys)
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (with each value's source) and exit")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rangekv-placement:", err)
		os.Exit(2)
	}
}

// ParseMembers parses "1=host:port,2=host:port".
func parseMembers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, fmt.Errorf("initial-cluster: %q is not ID=ADDR with a positive ID", part)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("initial-cluster: member %d is listed twice", n)
		}
		out[n] = addr
	}
	return out, nil
}

func buildConfig(v *cliconfig.Values) (placement.Config, error) {
	cfg := placement.Defaults()
	cfg.ID = v.Uint("id")
	cfg.Addr = v.String("addr")
	cfg.HTTPAddr = v.String("http-addr")
	cfg.DataDir = v.String("data-dir")
	members, err := parseMembers(v.String("initial-cluster"))
	if err != nil {
		return cfg, err
	}
	cfg.InitialCluster = members
	cfg.ElectionTimeout = v.Duration("raft.election-timeout")
	cfg.HeartbeatInterval = v.Duration("raft.heartbeat-interval")
	cfg.LogTruncateThreshold = v.Uint("raft.log-truncate-threshold")
	cfg.LogMaxEntries = v.Uint("raft.log-max-entries")
	cfg.Replicas = int(v.Int("schedule.replicas"))
	if l := strings.TrimSpace(v.String("schedule.location-labels")); l != "" {
		cfg.LocationLabels = strings.Split(l, ",")
	}
	cfg.ScheduleInterval = v.Duration("schedule.interval")
	cfg.StoreDownGrace = v.Duration("schedule.store-down-grace")
	cfg.MaxStoreDownTime = v.Duration("schedule.max-store-down-time")
	cfg.OperatorTimeout = v.Duration("schedule.operator-timeout")
	cfg.MaxOperatorsPerStore = int(v.Int("schedule.max-operators-per-store"))
	cfg.MaxSnapshotsPerStore = int(v.Int("schedule.max-snapshots-per-store"))
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
	if cfg.ID == 0 {
		return cfg, errors.New("id: required (this member's ID in --initial-cluster)")
	}
	wireSeams(&cfg)
	return cfg, cfg.Validate()
}

// wireSeams gives the member the production implementation of every seam
// (placement.Config says what each one covers): the real clock,
// crypto/rand, the OS's filesystem and TCP.
func wireSeams(cfg *placement.Config) {
	cfg.Clock = clock.Real{}
	cfg.Rand = crand.Reader
	cfg.FS = vfs.Default
	cfg.Network = grpcnet.TCP{}
}

func run(cfg placement.Config) error {
	s, err := placement.Open(cfg)
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
	cfg.Logger.Info("signal received, stopping", "signal", got.String())
	s.Stop()
	return nil
}
