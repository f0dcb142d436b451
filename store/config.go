package store

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	raftpb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// Config configures a Store. Flags and environment are parsed in cmd/;
// this struct carries plain values with units in their names.
type Config struct {
	// StoreID is this store's ID (non-zero). With static bootstrap it is
	// given by the operator; it is persisted and checked on restart.
	StoreID uint64
	// Addr is the gRPC listen address (host:port; port 0 picks one).
	Addr string
	// AdvertiseAddr is the address peers use; defaults to the bound Addr.
	AdvertiseAddr string
	// Listener, when set, is used instead of listening on Addr (tests
	// bind first to learn every store's address before bootstrap).
	Listener net.Listener
	// HTTPAddr serves /metrics, /healthz, /readyz, /debug/*; empty disables.
	HTTPAddr string
	// DataDir holds the Pebble engine (a path in FS).
	DataDir string
	// InitialStores maps store ID to address for static bootstrap: range 1
	// (the whole key space) is created with one voter on each of them.
	InitialStores map[uint64]string
	// BootstrapStoreIDs, when set, are the stores (a subset of
	// InitialStores) that get a replica of range 1; the others start empty
	// and receive replicas through membership changes.
	BootstrapStoreIDs []uint64
	// NewCluster says every store of a static cluster is new: a store on
	// an empty data directory then skips asking its peers whether they
	// knew an earlier, wiped incarnation of its store ID (store_incarnation.go).
	// Peers refuse a wiped store's Raft traffic either way.
	NewCluster bool

	// Placement lists the placement driver's member addresses. With it the
	// store gets its ID from placement (StoreID may be 0), the first store
	// of a new cluster creates range 1, and stores are found through it.
	// Without it, InitialStores must be set (static bootstrap).
	Placement []string
	// Labels describe the store's location (zone, host) for placement.
	Labels map[string]string
	// StoreHeartbeatInterval: how often the store reports to placement.
	// RangeHeartbeatInterval: how often range leaders report changed ranges
	// (and fetch operator steps); RangeHeartbeatRefresh: every range is
	// reported at least this often.
	StoreHeartbeatInterval time.Duration
	RangeHeartbeatInterval time.Duration
	RangeHeartbeatRefresh  time.Duration

	// HeartbeatInterval is the Raft tick; ElectionTimeout is a multiple.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// ProposalTimeout bounds how long a write waits before it is reported
	// ambiguous.
	ProposalTimeout time.Duration
	// Workers is the Raft worker pool size.
	Workers int
	// MaxBatchRanges caps the ranges one worker pass handles.
	MaxBatchRanges int
	// InboxSize bounds each replica's queued messages; beyond it messages
	// are dropped (and counted) rather than blocking the transport.
	InboxSize int
	// MaxPendingProposals bounds queued proposals per replica; beyond it
	// writes are refused with ServerBusy.
	MaxPendingProposals int
	// MaxPendingReads bounds the reads per replica that are queued or
	// waiting for their read index; beyond it reads are refused with
	// ServerBusy (the router retries them with backoff).
	MaxPendingReads int

	// UnsafeNoFsync acknowledges writes before they are durable. Data may be
	// lost on a crash. Benchmarks only.
	UnsafeNoFsync bool

	// Log truncation policy (entries).
	LogTruncateThreshold uint64
	LogMaxEntries        uint64

	// MaxKeySize and MaxValueSize limit request sizes (bytes).
	MaxKeySize   int
	MaxValueSize int
	// MaxScanLimit caps the pairs one Scan returns.
	MaxScanLimit int

	// SplitMaxBytes: a range holding more user data than this is split
	// at its middle key. SplitCheckInterval is how often the store checks.
	SplitMaxBytes      int64
	SplitCheckInterval time.Duration
	// ReplicaGCInterval is how often suspect replicas (without a leader,
	// uninitialized, or not voters: replica_gc.go gcSuspect) ask
	// placement (or, failing that, their peers) whether they were removed;
	// a replica is checked at most once per half of it.
	ReplicaGCInterval time.Duration

	// SnapshotChunkBytes is the payload size of one snapshot chunk.
	SnapshotChunkBytes int
	// MaxConcurrentSnapshots bounds snapshots sent at once.
	MaxConcurrentSnapshots int
	// SnapshotRateBytes limits snapshot bytes sent per second (all
	// snapshots of the store together).
	SnapshotRateBytes int64

	// MinFreeBytes: below this much free space in DataDir the store
	// refuses client writes (store_diskguard.go); 0 disables the guard.
	MinFreeBytes int64
	// CacheBytes sizes the engine's block cache (0: Pebble's default of
	// 8 MiB). Reads of data not in the memtables come from it.
	CacheBytes int64
	// MemTableBytes is the largest size of the engine's memtables
	// (Pebble starts at 256 KiB and doubles up to it; store_engine.go
	// says why 16 MiB). Smaller ones flush more often. The simulation
	// runs with 256 KiB: every snapshot ingested over a memtable rotates
	// it, and each new memtable of another size than the last is a fresh
	// allocation that C's calloc zeroes page by page; at one size Pebble
	// reuses the flushed one (a seed's CPU fell by 30%).
	MemTableBytes int64
	// TLS, when set, makes every gRPC connection of the store mutual TLS:
	// its server requires client certificates, and it dials peer stores
	// and placement with its certificate. Nil: plaintext.
	TLS *tlsconfig.Source

	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Registry receives the store's metrics; nil creates a private one.
	Registry *prometheus.Registry
	// Knobs are testing knobs; nil in production.
	Knobs *TestingKnobs

	// The seams: every source of non-determinism the store touches goes
	// through one of these (docs/architecture.md, "Seams for the
	// simulation"). Open gives each nil one its production implementation
	// (cmd/store sets them explicitly); tests and the deterministic
	// simulation plug in their own.

	// Clock tells the time and makes every ticker and timer of the store:
	// the Raft tick, leases, liveness, reports, loops, backoffs, the
	// snapshot rate limit, drain. Deadlines of contexts (gRPC calls and
	// waits bounded by a timeout) run on it too, through
	// clock.WithTimeout. Nil: clock.Real.
	Clock clock.Clock
	// Rand is where the store's random numbers come from: the proposal and
	// read-index ID seeds, the data directory's incarnation, snapshot file
	// names. It must be safe for concurrent use. Nil: crypto/rand.Reader.
	Rand io.Reader
	// FS holds the engine, the received snapshots' files, and answers the
	// free-space guard (GetDiskUsage; a filesystem that cannot measure,
	// like vfs.NewMem, turns the guard off). Nil: vfs.Default, the OS's,
	// which Pebble wraps with its disk-health checks.
	FS vfs.FS
	// Network makes the gRPC listener (unless Listener is set) and every
	// connection the store dials: peer stores (Raft streams, snapshots,
	// incarnation probes) and placement. Nil: grpcnet.TCP.
	Network grpcnet.Network
	// Runner decides which goroutine runs which Raft pass, and when. Nil:
	// a WorkerPool of Workers goroutines.
	Runner Runner
	// PassPoints, when set, is called at the named points between two
	// steps of a pass (store_pass_points.go), where it may stop the
	// goroutine, and waits for replica locks held elsewhere. Nil: nothing
	// is called (production).
	PassPoints PassPoints
	// Sizes estimates the engine's and each range's bytes on disk for
	// reports, listings and size-based splits. Nil: PebbleSizes.
	Sizes Sizes
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
	if c.Runner == nil {
		c.Runner = &WorkerPool{}
	}
	if c.Sizes == nil {
		c.Sizes = PebbleSizes{}
	}
	return c
}

// Defaults returns the production defaults.
func Defaults() Config {
	return Config{
		Addr:                   "127.0.0.1:7501",
		HeartbeatInterval:      100 * time.Millisecond,
		ElectionTimeout:        time.Second,
		ProposalTimeout:        10 * time.Second,
		Workers:                runtime.GOMAXPROCS(0),
		MaxBatchRanges:         256,
		InboxSize:              4096,
		MaxPendingProposals:    10000,
		MaxPendingReads:        10000,
		LogTruncateThreshold:   driver.DefaultTruncateThreshold,
		LogMaxEntries:          driver.DefaultMaxLogEntries,
		MaxKeySize:             4096,
		MaxValueSize:           1 << 20,
		MaxScanLimit:           10000,
		SnapshotChunkBytes:     1 << 20,
		SplitMaxBytes:          128 << 20,
		SplitCheckInterval:     10 * time.Second,
		ReplicaGCInterval:      5 * time.Second,
		StoreHeartbeatInterval: 2 * time.Second,
		RangeHeartbeatInterval: time.Second,
		RangeHeartbeatRefresh:  time.Minute,
		MaxConcurrentSnapshots: 2,
		SnapshotRateBytes:      64 << 20,
		MinFreeBytes:           1 << 30,
		CacheBytes:             256 << 20,
		MemTableBytes:          16 << 20,
	}
}

// Validate reports the first problem in c; it changes nothing.
func (c *Config) Validate() error {
	switch {
	case c.StoreID == 0 && len(c.Placement) == 0:
		return errors.New("store-id: must be set (a positive integer) for static bootstrap; with --placement it is assigned")
	case len(c.Placement) == 0 && len(c.InitialStores) == 0:
		return errors.New("placement: give the placement members (--placement), or --initial-stores for static bootstrap")
	case len(c.Placement) > 0 && len(c.InitialStores) > 0:
		return errors.New("initial-stores: not used with --placement; give one or the other")
	case len(c.Placement) > 0 && (c.StoreHeartbeatInterval <= 0 || c.RangeHeartbeatInterval <= 0 || c.RangeHeartbeatRefresh < c.RangeHeartbeatInterval):
		return fmt.Errorf("heartbeat intervals: store %s and range %s must be positive, refresh %s at least the range interval",
			c.StoreHeartbeatInterval, c.RangeHeartbeatInterval, c.RangeHeartbeatRefresh)
	case c.DataDir == "" && (c.FS == nil || c.FS == vfs.Default):
		return errors.New("data-dir: must be set")
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("raft.heartbeat-interval: must be positive, got %s", c.HeartbeatInterval)
	case c.ElectionTimeout < 2*c.HeartbeatInterval:
		return fmt.Errorf("raft.election-timeout: must be at least twice raft.heartbeat-interval (%s), got %s", c.HeartbeatInterval, c.ElectionTimeout)
	case c.ProposalTimeout < c.ElectionTimeout:
		return fmt.Errorf("raft.proposal-timeout: must be at least raft.election-timeout (%s), got %s", c.ElectionTimeout, c.ProposalTimeout)
	case c.Workers < 1:
		return fmt.Errorf("raft.workers: must be at least 1, got %d", c.Workers)
	case c.MaxBatchRanges < 1:
		return fmt.Errorf("raft.max-batch-ranges: must be at least 1, got %d", c.MaxBatchRanges)
	case c.InboxSize < 16:
		return fmt.Errorf("raft.inbox-size: must be at least 16, got %d", c.InboxSize)
	case c.MaxPendingProposals < 1:
		return fmt.Errorf("raft.max-pending-proposals: must be at least 1, got %d", c.MaxPendingProposals)
	case c.MaxPendingReads < 1:
		return fmt.Errorf("raft.max-pending-reads: must be at least 1, got %d", c.MaxPendingReads)
	case c.MaxKeySize < 1 || c.MaxKeySize > 64<<10:
		return fmt.Errorf("limits.max-key-size: must be between 1 and 65536 bytes, got %d", c.MaxKeySize)
	case c.MaxValueSize < 1 || c.MaxValueSize > 8<<20:
		return fmt.Errorf("limits.max-value-size: must be between 1 and 8388608 bytes, got %d", c.MaxValueSize)
	case c.MaxScanLimit < 1:
		return fmt.Errorf("limits.max-scan-limit: must be at least 1, got %d", c.MaxScanLimit)
	case c.LogTruncateThreshold < 1:
		return fmt.Errorf("raft.log-truncate-threshold: must be at least 1, got %d", c.LogTruncateThreshold)
	case c.LogMaxEntries < c.LogTruncateThreshold:
		return fmt.Errorf("raft.log-max-entries: must be at least raft.log-truncate-threshold (%d), got %d", c.LogTruncateThreshold, c.LogMaxEntries)
	case c.SplitMaxBytes < 64<<10:
		return fmt.Errorf("split.max-size: must be at least 64KiB, got %d bytes", c.SplitMaxBytes)
	case c.SplitCheckInterval <= 0:
		return fmt.Errorf("split.check-interval: must be positive, got %s", c.SplitCheckInterval)
	case c.ReplicaGCInterval <= 0:
		return fmt.Errorf("ReplicaGCInterval: must be positive, got %s", c.ReplicaGCInterval)
	case c.SnapshotChunkBytes < 1024:
		return fmt.Errorf("snapshot.chunk-size: must be at least 1024 bytes, got %d", c.SnapshotChunkBytes)
	case c.MaxConcurrentSnapshots < 1:
		return fmt.Errorf("snapshot.max-concurrent: must be at least 1, got %d", c.MaxConcurrentSnapshots)
	case c.CacheBytes < 0:
		return fmt.Errorf("storage.cache-size: must not be negative, got %d bytes", c.CacheBytes)
	case c.MemTableBytes < 256<<10 || c.MemTableBytes >= 4<<30:
		return fmt.Errorf("MemTableBytes: must be at least 256KiB and under 4GiB, got %d bytes", c.MemTableBytes)
	case c.MinFreeBytes < 0:
		return fmt.Errorf("storage.min-free: must not be negative, got %d bytes", c.MinFreeBytes)
	case c.SnapshotRateBytes < 1<<20:
		return fmt.Errorf("snapshot.rate-limit: must be at least 1MiB per second, got %d bytes", c.SnapshotRateBytes)
	}
	for id, addr := range c.badInitialStores() {
		return fmt.Errorf("initial-stores: store %d has an empty address %q", id, addr)
	}
	for _, id := range c.BootstrapStoreIDs {
		if _, ok := c.InitialStores[id]; !ok {
			return fmt.Errorf("bootstrap-stores: store %d is not in initial-stores", id)
		}
	}
	return nil
}

// badInitialStores returns initial stores with a zero ID or empty address.
func (c *Config) badInitialStores() map[uint64]string {
	bad := map[uint64]string{}
	for id, a := range c.InitialStores {
		if id == 0 || a == "" {
			bad[id] = a
		}
	}
	return bad
}

func (c *Config) raftTicks() (election, heartbeat, proposal, read int) {
	heartbeat = 1
	election = int(c.ElectionTimeout / c.HeartbeatInterval)
	proposal = int(c.ProposalTimeout / c.HeartbeatInterval)
	read = 2 * election
	return
}

// truncationPolicy is the ranges' log truncation policy (decided every
// LogTruncateThreshold/4+1 applied entries).
func (c *Config) truncationPolicy() driver.TruncationPolicy {
	return driver.TruncationPolicy{ThresholdEntries: c.LogTruncateThreshold, MaxEntries: c.LogMaxEntries}
}

// TestingKnobs alter behaviour in tests; every field is nil/zero in
// production and checked where it is used.
type TestingKnobs struct {
	// DropRaftMessage, when it returns true, drops an outgoing message.
	DropRaftMessage func(rangeID, fromStore, toStore uint64, msgType string) bool
	// RaftBatchFault, when set, is asked before each batch of Raft
	// messages to toStore is sent: drop discards the batch; a positive
	// delay holds it (and everything queued behind it) that long first.
	RaftBatchFault func(fromStore, toStore uint64) (drop bool, delay time.Duration)
	// NoQuiesce keeps every leader awake: its quiesce heartbeats (which
	// carry a commit index) never go, so a test can tell what else
	// carries a commit.
	NoQuiesce bool
	// TestingApplyIncrTwice makes every Incr add its delta twice while
	// answering as if once: a deliberately broken store the nemesis
	// checker must catch. Never set outside tests.
	TestingApplyIncrTwice bool
	// FreeSpace, when set, replaces the measurement of the data dir's
	// free bytes (store_diskguard.go).
	FreeSpace func() (uint64, error)
	// BeforeRaftPass, when set, is called by a worker for each range of a
	// pass before it locks the replica and drains its inbox. A test blocks
	// in it to keep messages already queued for the range (a received
	// snapshot's MsgSnap) unprocessed, and learns from its next call that
	// the previous pass of the range has finished.
	BeforeRaftPass func(rangeID uint64)
	// OnFatal, when set, is called where the store would panic on a fatal
	// error (Store.fatal); the calling goroutine then exits
	// (runtime.Goexit), going no further, as if the process had died. A
	// test sees the fatal instead of the test binary crashing.
	OnFatal func(rangeID uint64, what string, err error)
	// BeforeOperatorStep, when set, is called by the operator executor
	// after it checked a placement step's epoch and leadership and before
	// it proposes anything (store_operators.go); a test blocks in it to
	// change the range under the step.
	BeforeOperatorStep func(rangeID uint64)
	// SplitRHSStaged, when set, is called by the worker applying a split
	// that gives this store a replica of the right range, once it decided
	// about that replica (create: its state is staged and will be
	// installed after the commit; false: a tombstone, or a replacement in
	// progress, forbids it, or it is initialized already) and before the
	// apply batch commits (replica_split.go applySplit), with the replica locks of
	// its pass held. Tests block in it to run other workers in between.
	SplitRHSStaged func(rhsRangeID uint64, create bool)
	// AllocatingRangeID, when set, is called each time the store allocates
	// a range ID for a split itself (store_replicas.go allocRangeID:
	// placement's AllocID, or the static allocator), before it does; a
	// split whose caller sent new_range_id calls nothing. Tests count the
	// calls.
	AllocatingRangeID func()
	// ReplicaDestroying, when set, is called by Replica.destroy after it
	// stopped the replica and before its batch (tombstone, range-local
	// state deleted) commits, with no lock held.
	ReplicaDestroying func(rangeID uint64)
	// ApplyingEntry, when set, is called by the worker for each committed
	// entry it stages for apply (replica_apply.go stageApply), in index
	// order, with the replica's lock held; it must not keep e. The
	// simulation checks with it that no two replicas apply different
	// entries at one index.
	ApplyingEntry func(rangeID uint64, e *raftpb.Entry)
	// BetweenUninitializedReads, when set, runs in createUninitialized
	// between its Pebble reads (after the tombstone, before the raft
	// state; store_deliver.go), on the goroutine that delivers the message; it
	// may block.
	BetweenUninitializedReads func(rangeID uint64)
	// ServingRead, when set, is called by Get and Scan after the read
	// barrier and the descriptor check and before they read the applied
	// index and the data (replica_read.go readView), with no lock held;
	// a test blocks in it to apply a write in between.
	ServingRead func(rangeID uint64)
}
