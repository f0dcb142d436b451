package placement

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// Config configures a placement member.
type Config struct {
	// ID is this member's ID in InitialCluster.
	ID uint64
	// Addr is the gRPC listen address; Listener, when set, is used instead.
	Addr     string
	Listener net.Listener
	// HTTPAddr serves /metrics, /healthz, /readyz, /debug/*; empty disables.
	HTTPAddr string
	// DataDir holds the member's engine (a path in FS).
	DataDir string
	// InitialCluster maps member IDs to addresses.
	InitialCluster map[uint64]string

	// HeartbeatInterval (the tick) and ElectionTimeout of the placement
	// group.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// LogTruncateThreshold: the leader truncates the group's log when at
	// least this many applied entries can go; LogMaxEntries: past this log
	// length a lagging member no longer holds truncation back (it catches
	// up by snapshot); LogTruncateCheckEntries: the leader decides again
	// after this many applied entries (0: LogTruncateThreshold/4+1, the
	// store's rule). See rangeraft/driver.TruncationPolicy.
	LogTruncateThreshold    uint64
	LogMaxEntries           uint64
	LogTruncateCheckEntries uint64

	// StoreDownGrace: a store whose heartbeats stopped this long is down.
	StoreDownGrace time.Duration
	// MaxStoreDownTime: replicas on a store down this long are replaced.
	MaxStoreDownTime time.Duration
	// ScheduleInterval: how often the leader runs the scheduler.
	ScheduleInterval time.Duration
	// OperatorTimeout: an operator not finished in this time is aborted.
	OperatorTimeout time.Duration
	// Replicas is the replication factor.
	Replicas int
	// LocationLabels, most significant first (e.g. zone, host).
	LocationLabels []string
	// MaxOperatorsPerStore and MaxSnapshotsPerStore limit concurrent work.
	MaxOperatorsPerStore int
	MaxSnapshotsPerStore int
	// IDBatch: IDs reserved through Raft at a time.
	IDBatch uint64

	// TLS, when set, makes every gRPC connection of the member mutual TLS
	// (its server, the Raft transport to other members, calls to stores).
	// Nil: plaintext.
	TLS *tlsconfig.Source

	Logger   *slog.Logger
	Registry *prometheus.Registry

	// The seams: every source of non-determinism the member touches goes
	// through one of these (docs/architecture.md, "Seams for the
	// simulation"). Open gives each nil one its production implementation
	// (cmd/placement sets them explicitly); tests and the deterministic
	// simulation plug in their own.

	// Clock tells the time (store liveness, operator ages and IDs, the
	// leader's view of stores) and makes every ticker and timer: the
	// group's Raft tick, the schedule loop, the shutdown grace. Deadlines
	// of contexts run on it too (clock.WithTimeout). Nil: clock.Real.
	Clock clock.Clock
	// Rand is where the member's random numbers come from: the proposal
	// and read-index ID seed, a new cluster's ID. It must be safe for
	// concurrent use. Nil: crypto/rand.Reader.
	Rand io.Reader
	// FS holds the member's engine. Nil: vfs.Default, the OS's, which
	// Pebble wraps with its disk-health checks.
	FS vfs.FS
	// Network makes the gRPC listener (unless Listener is set) and every
	// connection the member dials: the other members (Raft) and stores
	// (split requests). Nil: grpcnet.TCP.
	Network grpcnet.Network
}

// withSeams returns c with every unset seam set to its production
// implementation (Validate never changes c; Open calls this).
func (c Config) withSeams() Config {
	c.Clock = clock.OrReal(c.Clock)
	if c.Rand == nil {
		c.Rand = crand.Reader
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	c.Network = grpcnet.OrTCP(c.Network)
	return c
}

// Defaults returns the production defaults.
func Defaults() Config {
	return Config{
		Addr:              "127.0.0.1:7401",
		HeartbeatInterval: 100 * time.Millisecond,
		ElectionTimeout:   time.Second,
		// The values placement hard-coded before they were settings.
		LogTruncateThreshold:    5000,
		LogMaxEntries:           50000,
		LogTruncateCheckEntries: 1000,
		StoreDownGrace:          10 * time.Second,
		MaxStoreDownTime:        30 * time.Minute,
		ScheduleInterval:        2 * time.Second,
		OperatorTimeout:         10 * time.Minute,
		Replicas:                3,
		MaxOperatorsPerStore:    4,
		MaxSnapshotsPerStore:    2,
		IDBatch:                 1000,
	}
}

// Validate reports the first problem; it changes nothing.
func (c *Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("id: must be set (this member's ID in initial-cluster)")
	case len(c.InitialCluster) == 0:
		return errors.New("initial-cluster: must list the members, e.g. 1=127.0.0.1:7401")
	case c.DataDir == "" && (c.FS == nil || c.FS == vfs.Default):
		return errors.New("data-dir: must be set")
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("raft.heartbeat-interval: must be positive, got %s", c.HeartbeatInterval)
	case c.ElectionTimeout < 2*c.HeartbeatInterval:
		return fmt.Errorf("raft.election-timeout: must be at least twice raft.heartbeat-interval (%s), got %s", c.HeartbeatInterval, c.ElectionTimeout)
	case c.LogTruncateThreshold < 1:
		return fmt.Errorf("raft.log-truncate-threshold: must be at least 1, got %d", c.LogTruncateThreshold)
	case c.LogMaxEntries < c.LogTruncateThreshold:
		return fmt.Errorf("raft.log-max-entries: must be at least raft.log-truncate-threshold (%d), got %d", c.LogTruncateThreshold, c.LogMaxEntries)
	case c.StoreDownGrace <= 0:
		return fmt.Errorf("schedule.store-down-grace: must be positive, got %s", c.StoreDownGrace)
	case c.MaxStoreDownTime < c.StoreDownGrace:
		return fmt.Errorf("schedule.max-store-down-time: must be at least schedule.store-down-grace (%s), got %s", c.StoreDownGrace, c.MaxStoreDownTime)
	case c.ScheduleInterval <= 0:
		return fmt.Errorf("schedule.interval: must be positive, got %s", c.ScheduleInterval)
	case c.OperatorTimeout <= 0:
		return fmt.Errorf("schedule.operator-timeout: must be positive, got %s", c.OperatorTimeout)
	case c.Replicas < 1:
		return fmt.Errorf("schedule.replicas: must be at least 1, got %d", c.Replicas)
	case c.MaxOperatorsPerStore < 1:
		return fmt.Errorf("schedule.max-operators-per-store: must be at least 1, got %d", c.MaxOperatorsPerStore)
	case c.MaxSnapshotsPerStore < 1:
		return fmt.Errorf("schedule.max-snapshots-per-store: must be at least 1, got %d", c.MaxSnapshotsPerStore)
	case c.IDBatch < 1:
		return fmt.Errorf("id-batch: must be at least 1, got %d", c.IDBatch)
	}
	if _, ok := c.InitialCluster[c.ID]; !ok {
		return fmt.Errorf("initial-cluster: this member (id %d) is not listed", c.ID)
	}
	return nil
}

// truncationPolicy is the placement log's truncation policy.
func (c *Config) truncationPolicy() driver.TruncationPolicy {
	return driver.TruncationPolicy{ThresholdEntries: c.LogTruncateThreshold, MaxEntries: c.LogMaxEntries, CheckEntries: c.LogTruncateCheckEntries}
}
