package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// Options configure a cluster.
type Options struct {
	// InMemory runs every store on its own vfs.NewMem (kept across
	// restarts) instead of a temp directory.
	InMemory bool
	// Configure, when set, adjusts each store's config before it opens.
	Configure func(i int, c *store.Config)
	// Verbose logs store output to stderr.
	Verbose bool
	// Replicas, when > 0, bootstraps range 1 on the first Replicas stores
	// only; the others start empty.
	Replicas int
	// TLS, when set, is every store's TLS material (mutual TLS between
	// the stores), and the helpers' clients present it too.
	TLS *tlsconfig.Source
}

// Cluster is a set of in-process stores bootstrapped statically.
type Cluster struct {
	t      testing.TB
	opts   Options
	Addrs  []string
	Stores []*store.Store // nil while stopped
	cfgs   []store.Config

	// admins caches one admin client per store for the helpers below.
	admins struct {
		sync.Mutex
		byStore map[int]rangekvpb.AdminClient
	}
}

// Start starts n stores that bootstrap range 1 together.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, Stores: make([]*store.Store, n), cfgs: make([]store.Config, n)}
	initial := map[uint64]string{}
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns[i] = ln
		c.Addrs = append(c.Addrs, ln.Addr().String())
		initial[uint64(i+1)] = ln.Addr().String()
	}
	base := t.TempDir()
	for i := range n {
		cfg := store.Defaults()
		cfg.StoreID = uint64(i + 1)
		cfg.Addr = c.Addrs[i]
		cfg.InitialStores = initial
		cfg.NewCluster = true // every store is new: no need to ask the others
		for j := 1; j <= opts.Replicas; j++ {
			cfg.BootstrapStoreIDs = append(cfg.BootstrapStoreIDs, uint64(j))
		}
		cfg.HeartbeatInterval = 25 * time.Millisecond
		cfg.ElectionTimeout = 250 * time.Millisecond
		cfg.ProposalTimeout = 5 * time.Second
		cfg.Workers = 2
		if opts.InMemory {
			cfg.FS = vfs.NewMem()
			cfg.DataDir = "data"
		} else {
			cfg.DataDir = filepath.Join(base, fmt.Sprintf("store%d", i+1))
		}
		w := io.Discard
		if opts.Verbose || os.Getenv("RANGEKV_TEST_VERBOSE") != "" {
			w = os.Stderr
		}
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
		cfg.TLS = opts.TLS
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		c.cfgs[i] = cfg
	}
	for i := range n {
		c.startStore(i, lns[i])
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Cluster) startStore(i int, ln net.Listener) {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Listener = ln
	cfg.Registry = nil // a fresh registry per incarnation
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

// Config returns store i's config (0-based).
func (c *Cluster) Config(i int) store.Config { return c.cfgs[i] }

// StopStore stops store i (0-based); its data stays.
func (c *Cluster) StopStore(i int) {
	if s := c.Stores[i]; s != nil {
		s.Stop()
		c.Stores[i] = nil
	}
}

// RestartStore starts store i again from its data, on the same address.
func (c *Cluster) RestartStore(i int) {
	c.t.Helper()
	c.StopStore(i)
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		ln, err = net.Listen("tcp", c.Addrs[i])
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("rebind %s: %v", c.Addrs[i], err)
		}
		time.Sleep(20 * time.Millisecond) // port still held by the old listener's teardown
	}
	c.startStore(i, ln)
}

// Close stops every store.
func (c *Cluster) Close() {
	for i := range c.Stores {
		c.StopStore(i)
	}
}

// Client returns a static client over every store; closed with the test.
func (c *Cluster) Client() *router.Client {
	c.t.Helper()
	ropts := router.Options{Seed: 1}
	if c.opts.TLS != nil {
		ropts.TLS = c.opts.TLS.ClientConfig()
	}
	cl, err := router.NewStatic(c.Addrs, ropts)
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Leader returns the index of the running store that leads rangeID with
// the highest term, or -1.
func (c *Cluster) Leader(rangeID uint64) int {
	best, bestTerm := -1, uint64(0)
	for i, s := range c.Stores {
		if s == nil {
			continue
		}
		for _, r := range s.Status().Replicas {
			if r.Descriptor_.RangeId == rangeID && r.RaftState == "StateLeader" && r.Term >= bestTerm {
				best, bestTerm = i, r.Term
			}
		}
	}
	return best
}

// WaitFor polls cond until it holds or the deadline passes.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitLeader waits for rangeID to have a leader and returns its store index.
func (c *Cluster) WaitLeader(rangeID uint64) int {
	c.t.Helper()
	idx := -1
	c.WaitFor(fmt.Sprintf("a leader of range %d", rangeID), 15*time.Second, func() bool {
		idx = c.Leader(rangeID)
		return idx >= 0
	})
	return idx
}

// ReplicaStatus returns store i's status of rangeID, or nil.
func (c *Cluster) ReplicaStatus(i int, rangeID uint64) *rangekvpb.ReplicaStatus {
	s := c.Stores[i]
	if s == nil {
		return nil
	}
	for _, r := range s.Status().Replicas {
		if r.Descriptor_.RangeId == rangeID {
			return r
		}
	}
	return nil
}

// Admin returns an admin client for store i; closed with the test.
func (c *Cluster) Admin(i int) rangekvpb.AdminClient {
	c.t.Helper()
	conn, err := grpc.NewClient(c.Addrs[i], tlsconfig.DialOption(c.opts.TLS))
	if err != nil {
		c.t.Fatalf("admin client: %v", err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return rangekvpb.NewAdminClient(conn)
}

// Ctx returns a context bounded by timeout, cancelled with the test.
func (c *Cluster) Ctx(timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.t.Cleanup(cancel)
	return ctx
}

// HTTPAddr returns store i's bound HTTP address; "" while it is stopped or
// when its config has no HTTPAddr.
func (c *Cluster) HTTPAddr(i int) string {
	if s := c.Stores[i]; s != nil {
		return s.HTTPAddr()
	}
	return ""
}

// Descriptors returns the descriptors of the initialized replicas on
// store i, ordered by range ID; nil while the store is stopped.
func (c *Cluster) Descriptors(i int) []*rangekvpb.RangeDescriptor {
	s := c.Stores[i]
	if s == nil {
		return nil
	}
	var out []*rangekvpb.RangeDescriptor
	for _, r := range s.Status().Replicas {
		if r.Initialized {
			out = append(out, r.Descriptor_)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].RangeId < out[b].RangeId })
	return out
}

// adminClient returns a cached admin client for store i.
func (c *Cluster) adminClient(i int) rangekvpb.AdminClient {
	c.admins.Lock()
	defer c.admins.Unlock()
	if c.admins.byStore == nil {
		c.admins.byStore = map[int]rangekvpb.AdminClient{}
	}
	if a, ok := c.admins.byStore[i]; ok {
		return a
	}
	a := c.Admin(i)
	c.admins.byStore[i] = a
	return a
}

func containsKey(d *rangekvpb.RangeDescriptor, k []byte) bool {
	return bytes.Compare(k, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(k, d.EndKey) < 0)
}

// leaderForKey returns the range holding key and the running store that
// leads it (highest term), or (0, -1).
func (c *Cluster) leaderForKey(key []byte) (uint64, int) {
	rangeID, best, bestTerm := uint64(0), -1, uint64(0)
	for i, s := range c.Stores {
		if s == nil {
			continue
		}
		for _, r := range s.Status().Replicas {
			if r.Initialized && r.RaftState == "StateLeader" && containsKey(r.Descriptor_, key) && r.Term >= bestTerm {
				rangeID, best, bestTerm = r.Descriptor_.RangeId, i, r.Term
			}
		}
	}
	return rangeID, best
}

// splitSeen returns the two halves of a split at key as some running store
// sees them, or nils.
func (c *Cluster) splitSeen(key []byte) (left, right *rangekvpb.RangeDescriptor) {
	for i := range c.Stores {
		ds := c.Descriptors(i)
		for _, d := range ds {
			if bytes.Equal(d.StartKey, key) {
				right = d
			}
		}
		if right == nil {
			continue
		}
		for _, d := range ds {
			if bytes.Equal(d.EndKey, key) {
				left = d
			}
		}
		return left, right
	}
	return nil, nil
}

// SplitRange splits the range holding key at key, on that range's leader.
// It retries on NotLeader, EpochNotMatch, ServerBusy and ambiguous
// outcomes (checking whether the split applied) until ctx ends; a split
// that some store already shows at key counts as done. Only left and right
// of the response are set.
func (c *Cluster) SplitRange(ctx context.Context, key []byte) (*rangekvpb.SplitRangeResponse, error) {
	var last error
	rangeID, idx, followed := uint64(0), -1, false
	for {
		if l, r := c.splitSeen(key); r != nil {
			return &rangekvpb.SplitRangeResponse{Left: l, Right: r}, nil
		}
		if idx < 0 || c.Stores[idx] == nil {
			rangeID, idx = c.leaderForKey(key)
		}
		if idx >= 0 {
			resp, err := c.adminClient(idx).SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: rangeID, SplitKey: key})
			switch {
			case err != nil:
				last = err
				if code := status.Code(err); code == codes.InvalidArgument || code == codes.FailedPrecondition {
					if l, r := c.splitSeen(key); r != nil {
						return &rangekvpb.SplitRangeResponse{Left: l, Right: r}, nil
					}
					return nil, err
				}
			case resp.Error == nil:
				return resp, nil
			default:
				last = fmt.Errorf("store %d: %v", idx+1, resp.Error)
				// Follow NotLeader to the store it names, once, at once.
				if nl := resp.Error.NotLeader; nl != nil && !followed && nl.LeaderStoreId != 0 && int(nl.LeaderStoreId) <= len(c.Stores) && int(nl.LeaderStoreId-1) != idx {
					idx, followed = int(nl.LeaderStoreId-1), true
					continue
				}
			}
		}
		idx, followed = -1, false // look the leader up again after a pause
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("split at %q: %w (last error: %v)", key, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ChangeReplicas runs one membership change on rangeID's leader, following
// NotLeader and retrying while the leader is unknown or busy, until ctx
// ends. gRPC errors (InvalidArgument, FailedPrecondition, ...) and range
// errors other than NotLeader and ServerBusy are returned as they are.
func (c *Cluster) ChangeReplicas(ctx context.Context, rangeID uint64, change rangekvpb.ReplicaChangeType, storeID uint64) (*rangekvpb.ChangeReplicasResponse, error) {
	idx := c.Leader(rangeID)
	var last error
	for {
		if idx >= 0 && idx < len(c.Stores) && c.Stores[idx] != nil {
			resp, err := c.adminClient(idx).ChangeReplicas(ctx, &rangekvpb.ChangeReplicasRequest{RangeId: rangeID, Change: change, StoreId: storeID})
			switch {
			case err != nil:
				if status.Code(err) != codes.Unavailable {
					return nil, err
				}
				last = err
			case resp.Error == nil:
				return resp, nil
			case resp.Error.NotLeader != nil:
				last = fmt.Errorf("store %d: %v", idx+1, resp.Error)
				if st := resp.Error.NotLeader.LeaderStoreId; st != 0 && int(st) <= len(c.Stores) && int(st-1) != idx {
					idx = int(st - 1)
					continue
				}
			case resp.Error.ServerBusy != nil:
				last = fmt.Errorf("store %d: %v", idx+1, resp.Error)
			default:
				return resp, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("change replicas of range %d (%v store %d): %w (last error: %v)", rangeID, change, storeID, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
		idx = c.Leader(rangeID)
	}
}
