package store_test

// Stores without placement: a store restarts from the identity and the
// peer addresses in its data directory while every placement member is
// down, and a raft worker never waits on a placement lookup.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// TestStoresRestartWithoutPlacement: three stores hold two ranges with
// three voters each; every placement member is stopped, then every store
// is stopped and started again from its data directory. The stores start
// (they do not wait for Join), find each other (peer addresses persisted
// in their engines), elect leaders, and serve reads of the old keys and
// writes to both ranges through a client that knows only the store
// addresses. Each store reports placement unreachable in its metrics;
// once placement is back, the stores report to it again.
func TestStoresRestartWithoutPlacement(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{Members: 3, InMemory: true,
		Configure: func(_ int, cfg *store.Config) { cfg.HTTPAddr = "127.0.0.1:0" }})
	cl := newRouter(t, c, nil)
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := mrCtx(t, 3*time.Minute)
	c.WaitFor("range 1 on three stores", 60*time.Second, func() bool {
		ri, err := adm.RangeByID(ctx, 1)
		return err == nil && len(ri.Descriptor_.Replicas) == 3
	})
	c.WaitFor("split at m", 30*time.Second, func() bool {
		_, _, err := adm.Split(ctx, []byte("m"))
		return err == nil
	})
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("%c%02d", "cx"[i%2], i)
		want[k] = "v" + k
		mustPut(t, cl, k, want[k])
	}
	c.WaitFor("both ranges with three voters on every store", 60*time.Second, func() bool {
		for _, s := range c.Stores {
			if n := len(s.Status().Replicas); n != 2 {
				return false
			}
		}
		return len(c.Descriptors()) == 2
	})

	for i := range c.PDs {
		c.StopPD(i)
	}
	for i := range c.Stores {
		c.StopStore(i)
	}
	begin := time.Now()
	for i := range c.Stores {
		c.RestartStore(i)
	}
	t.Logf("three stores restarted without placement in %s", time.Since(begin).Round(time.Millisecond))

	static, err := router.NewStatic(c.Addrs, router.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	wantValues(t, static, want)
	for i := range 10 {
		k := fmt.Sprintf("%c%02d-after", "cx"[i%2], i)
		want[k] = "v" + k
		mustPut(t, static, k, want[k])
	}
	wantValues(t, static, want)
	for i, s := range c.Stores {
		if v := mrSum(mrMetrics(t, s.HTTPAddr()), "rangekv_store_placement_reachable"); v != 0 {
			t.Errorf("store %d: rangekv_store_placement_reachable = %v with every placement member down, want 0", i+1, v)
		}
	}

	// Placement comes back: the stores rejoin in the background and
	// report their ranges again.
	for i := range c.PDs {
		c.RestartPD(i)
	}
	c.WaitFor("every store to reach placement again", 60*time.Second, func() bool {
		for _, s := range c.Stores {
			if mrSum(mrMetrics(t, s.HTTPAddr()), "rangekv_store_placement_reachable") != 1 {
				return false
			}
		}
		st, err := adm.ClusterStatus(ctx)
		if err != nil {
			return false
		}
		up := 0
		for _, s := range st.Stores {
			if s.State == rangekvpb.StoreState_STORE_UP {
				up++
			}
		}
		return up == 3 && len(st.Leaderless) == 0
	})
	wantValues(t, cl, want)
}

// lookupPlacement is a placement driver for one store: it hands out store
// 1 and a range 1 whose only voter is on store 1, with a learner on store
// 99 whose address it does not give: GetStore of store 99 blocks until
// released, then fails.
type lookupPlacement struct {
	singleStorePlacement
	lookups atomic.Int64  // GetStore calls
	entered chan struct{} // closed by the first GetStore call
	release chan struct{} // closed by the test: GetStore stops blocking
	first   atomic.Bool
	nextID  atomic.Uint64
}

func (p *lookupPlacement) Join(context.Context, *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	return &rangekvpb.JoinResponse{ClusterId: 0xfa4e, StoreId: 1, BootstrapRange: &rangekvpb.RangeDescriptor{
		RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 2, Version: 1}, NextReplicaId: 3,
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}, {ReplicaId: 2, StoreId: 99, Role: rangekvpb.ReplicaRole_LEARNER}},
	}}, nil
}

func (p *lookupPlacement) AllocID(context.Context, *rangekvpb.AllocIDRequest) (*rangekvpb.AllocIDResponse, error) {
	return &rangekvpb.AllocIDResponse{First: 100 + p.nextID.Add(1)}, nil
}

func (p *lookupPlacement) GetStore(ctx context.Context, req *rangekvpb.GetStoreRequest) (*rangekvpb.GetStoreResponse, error) {
	p.lookups.Add(1)
	if !p.first.Swap(true) {
		close(p.entered)
	}
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &rangekvpb.GetStoreResponse{Error: &rangekvpb.PlacementError{Message: fmt.Sprintf("store %d not found", req.StoreId)}}, nil
}

// TestStoreLookupNeverBlocksWorkers: the store's only raft worker leads
// two ranges, each with a learner on a store whose address placement does
// not give. While the lookup of that address hangs (placement never
// answers), the worker keeps going: a split and writes to both ranges
// complete. Once the lookup fails, failed lookups are remembered with a
// backoff: many messages to the unknown store cost a few lookups, not one
// each.
func TestStoreLookupNeverBlocksWorkers(t *testing.T) {
	pd := &lookupPlacement{entered: make(chan struct{}), release: make(chan struct{})}
	cfg := fakePlacementStore(t, pd)
	released := false
	defer func() {
		if !released {
			close(pd.release)
		}
	}()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.ProposalTimeout = 5 * time.Second
	cfg.StoreHeartbeatInterval = 100 * time.Millisecond
	cfg.RangeHeartbeatInterval = 100 * time.Millisecond
	cfg.RangeHeartbeatRefresh = time.Second
	cfg.Workers = 1
	s := startStore(t, cfg)

	select {
	case <-pd.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("range 1's leader never looked up store 99")
	}
	// The lookup of store 99 hangs. Everything below runs on the one
	// worker; each step must finish well within placement's 3 s RPC.
	static, err := router.NewStatic([]string{s.Addr()}, router.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	step := func(what string, fn func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		begin := time.Now()
		if err := fn(ctx); err != nil {
			t.Fatalf("%s while the address lookup hangs: %v after %s (a raft worker waits on placement)", what, err, time.Since(begin).Round(time.Millisecond))
		}
	}
	step("put a", func(ctx context.Context) error { return static.Put(ctx, []byte("a"), []byte("1")) })
	step("split at m", func(ctx context.Context) error {
		resp, err := rangekvpb.NewAdminClient(conn).SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("m")})
		if err == nil && resp.Error != nil {
			err = fmt.Errorf("%s", resp.Error.Message)
		}
		return err
	})
	step("put x (the right range)", func(ctx context.Context) error { return static.Put(ctx, []byte("x"), []byte("1")) })
	step("put b", func(ctx context.Context) error { return static.Put(ctx, []byte("b"), []byte("1")) })
	if n := pd.lookups.Load(); n != 1 {
		t.Errorf("%d lookups of store 99 while the first one hangs, want 1", n)
	}

	// The lookup fails now. Failed lookups are remembered: every message
	// to store 99 is dropped without asking placement again, until a
	// backoff passes.
	close(pd.release)
	released = true
	dropped := func() float64 {
		return mrSum(mrMetrics(t, s.HTTPAddr()), "rangekv_raft_messages_dropped_total", `reason="unknown_store"`)
	}
	before, lookups := dropped(), pd.lookups.Load()
	for i := 0; dropped() < before+100; i++ {
		if i >= 1000 {
			t.Fatalf("only %v messages to store 99 dropped after %d writes", dropped()-before, i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := static.Put(ctx, []byte(fmt.Sprintf("%c%03d", "cx"[i%2], i)), []byte("v"))
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	t.Logf("%d lookups of store 99 for %v messages to it dropped", pd.lookups.Load()-lookups, dropped()-before)
	if n := pd.lookups.Load() - lookups; n > 10 {
		t.Errorf("%d lookups of store 99 for %v dropped messages to it: failed lookups are not remembered", n, dropped()-before)
	}
}
