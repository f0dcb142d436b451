package testcluster

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// PDOptions configure a cluster with a placement driver.
type PDOptions struct {
	// Members is the number of placement members (default 1).
	Members int
	// ConfigurePD adjusts each member's config.
	ConfigurePD func(i int, c *placement.Config)
	// Configure adjusts each store's config.
	Configure func(i int, c *store.Config)
	Verbose   bool
	InMemory  bool
	// Crashable runs every store on its own vfs.NewCrashableMem, so that
	// CrashStore can simulate a power loss (implies InMemory for stores).
	Crashable bool
}

// PDCluster is placement members plus stores that join through them.
type PDCluster struct {
	t       testing.TB
	opts    PDOptions
	base    string
	PDAddrs []string
	PDs     []*placement.Server // nil while stopped
	pdCfgs  []placement.Config
	Addrs   []string
	Stores  []*store.Store // nil while stopped
	cfgs    []store.Config
}

func (c *PDCluster) logger(name string) *slog.Logger {
	w := io.Discard
	if c.opts.Verbose || os.Getenv("RANGEKV_TEST_VERBOSE") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// StartPD starts the placement members and n stores, and waits until every
// store joined.
func StartPD(t testing.TB, stores int, opts PDOptions) *PDCluster {
	t.Helper()
	if opts.Members == 0 {
		opts.Members = 1
	}
	c := &PDCluster{t: t, opts: opts, base: t.TempDir()}
	initial := map[uint64]string{}
	lns := make([]net.Listener, opts.Members)
	for i := range opts.Members {
		ln := listen(t, "127.0.0.1:0")
		lns[i] = ln
		c.PDAddrs = append(c.PDAddrs, ln.Addr().String())
		initial[uint64(i+1)] = ln.Addr().String()
	}
	for i := range opts.Members {
		cfg := placement.Defaults()
		cfg.ID = uint64(i + 1)
		cfg.InitialCluster = initial
		cfg.HeartbeatInterval = 25 * time.Millisecond
		cfg.ElectionTimeout = 250 * time.Millisecond
		cfg.ScheduleInterval = 100 * time.Millisecond
		cfg.StoreDownGrace = time.Second
		cfg.MaxStoreDownTime = 3 * time.Second
		cfg.OperatorTimeout = 30 * time.Second
		if opts.InMemory {
			cfg.FS, cfg.DataDir = vfs.NewMem(), "pd"
		} else {
			cfg.DataDir = filepath.Join(c.base, fmt.Sprintf("pd%d", i+1))
		}
		cfg.Logger = c.logger(fmt.Sprintf("pd%d", i+1))
		if opts.ConfigurePD != nil {
			opts.ConfigurePD(i, &cfg)
		}
		c.pdCfgs = append(c.pdCfgs, cfg)
		c.PDs = append(c.PDs, nil)
	}
	for i := range opts.Members {
		c.startPD(i, lns[i])
	}
	t.Cleanup(c.Close)
	for range stores {
		c.AddStore()
	}
	return c
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the old listener's teardown
	}
}

func (c *PDCluster) startPD(i int, ln net.Listener) {
	c.t.Helper()
	cfg := c.pdCfgs[i]
	cfg.Listener = ln
	cfg.Registry = nil
	s, err := placement.Open(cfg)
	if err != nil {
		ln.Close()
		c.t.Fatalf("open placement %d: %v", i+1, err)
	}
	if err := s.Start(); err != nil {
		c.t.Fatalf("start placement %d: %v", i+1, err)
	}
	c.PDs[i] = s
}

// AddStore starts a new store that joins the cluster; it returns its index.
func (c *PDCluster) AddStore() int {
	c.t.Helper()
	i := len(c.Stores)
	ln := listen(c.t, "127.0.0.1:0")
	cfg := store.Defaults()
	cfg.StoreID = 0
	cfg.Addr = ln.Addr().String()
	cfg.Placement = c.PDAddrs
	cfg.HeartbeatInterval = 25 * time.Millisecond
	cfg.ElectionTimeout = 250 * time.Millisecond
	cfg.ProposalTimeout = 5 * time.Second
	cfg.StoreHeartbeatInterval = 100 * time.Millisecond
	cfg.RangeHeartbeatInterval = 100 * time.Millisecond
	cfg.RangeHeartbeatRefresh = time.Second
	cfg.SplitCheckInterval = 200 * time.Millisecond
	cfg.ReplicaGCInterval = 200 * time.Millisecond
	cfg.Workers = 2
	switch {
	case c.opts.Crashable:
		cfg.FS, cfg.DataDir = vfs.NewCrashableMem(), "data"
	case c.opts.InMemory:
		cfg.FS, cfg.DataDir = vfs.NewMem(), "data"
	default:
		cfg.DataDir = filepath.Join(c.base, fmt.Sprintf("store%d", i+1))
	}
	cfg.Logger = c.logger(fmt.Sprintf("s%d", i+1))
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.Addrs = append(c.Addrs, cfg.Addr)
	c.Stores = append(c.Stores, nil)
	c.startStore(i, ln)
	return i
}

func (c *PDCluster) startStore(i int, ln net.Listener) {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Listener = ln
	cfg.Registry = nil
	s, err := store.Open(cfg)
	if err != nil {
		ln.Close()
		c.t.Fatalf("open store %d: %v", i+1, err)
	}
	if err := s.Start(); err != nil {
		c.t.Fatalf("start store %d: %v", i+1, err)
	}
	c.Stores[i] = s
}

// StopStore stops store i; its data stays.
func (c *PDCluster) StopStore(i int) {
	if s := c.Stores[i]; s != nil {
		s.Stop()
		c.Stores[i] = nil
	}
}

// RestartStore starts store i again from its data on the same address.
func (c *PDCluster) RestartStore(i int) {
	c.t.Helper()
	c.StopStore(i)
	c.startStore(i, listen(c.t, c.Addrs[i]))
}

// CrashStore simulates a power loss of store i (the cluster must have been
// started with Crashable): its filesystem is cloned as a crash at this
// instant would leave it (everything synced, and of the unsynced data what
// cfg keeps), the store is stopped, and its next RestartStore opens the
// clone. The stopped incarnation's later writes go to the discarded
// filesystem. Callers cut the store off first (transport faults) so that
// nothing it does after the clone is observed.
func (c *PDCluster) CrashStore(i int, cfg vfs.CrashCloneCfg) {
	c.t.Helper()
	mem, ok := c.cfgs[i].FS.(*vfs.MemFS)
	if !ok || !c.opts.Crashable {
		c.t.Fatalf("crash store %d: the cluster was not started with Crashable", i+1)
	}
	c.cfgs[i].FS = mem.CrashClone(cfg)
	c.StopStore(i)
}

// StopPD stops placement member i.
func (c *PDCluster) StopPD(i int) {
	if s := c.PDs[i]; s != nil {
		s.Stop()
		c.PDs[i] = nil
	}
}

// RestartPD starts placement member i again from its data.
func (c *PDCluster) RestartPD(i int) {
	c.t.Helper()
	c.StopPD(i)
	c.startPD(i, listen(c.t, c.PDAddrs[i]))
}

// PDLeader is the index of the member that leads placement, or -1.
func (c *PDCluster) PDLeader() int {
	for i, s := range c.PDs {
		if s != nil && s.IsLeader() {
			return i
		}
	}
	return -1
}

// Close stops everything.
func (c *PDCluster) Close() {
	for i := range c.Stores {
		c.StopStore(i)
	}
	for i := range c.PDs {
		c.StopPD(i)
	}
}

// WaitFor polls cond until it holds or the deadline passes.
func (c *PDCluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Descriptors returns, per range ID, the descriptor the range's leader
// reports (from the running stores).
func (c *PDCluster) Descriptors() map[uint64]*rangekvpb.RangeDescriptor {
	out := map[uint64]*rangekvpb.RangeDescriptor{}
	for _, s := range c.Stores {
		if s == nil {
			continue
		}
		for _, r := range s.Status().Replicas {
			if r.RaftState == "StateLeader" && r.Initialized {
				out[r.Descriptor_.RangeId] = r.Descriptor_
			}
		}
	}
	return out
}

// StoreConfig returns a copy of store i's configuration (data directory,
// address, timings), e.g. to open its data directory against other
// placement members.
func (c *PDCluster) StoreConfig(i int) store.Config {
	return c.cfgs[i]
}

// LeaderCounts counts, per running store, the initialized replicas it
// leads (from the stores' own status).
func (c *PDCluster) LeaderCounts() map[uint64]int {
	out := map[uint64]int{}
	for _, s := range c.Stores {
		if s == nil {
			continue
		}
		out[s.StoreID()] += 0
		for _, r := range s.Status().Replicas {
			if r.RaftState == "StateLeader" && r.Initialized {
				out[s.StoreID()]++
			}
		}
	}
	return out
}
