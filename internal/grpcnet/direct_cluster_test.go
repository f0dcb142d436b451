// A real cluster on Direct: a placement member and three stores whose
// Config.Network is a Direct node each, and the router SDK on another
// node, with puts and gets through the router. No address resolves on
// the host: everything goes through Direct. The same run passes in real
// time and inside a synctest bubble (fake time, every wait durable).

package grpcnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// Every network of grpcnet is a router.Network (the router may not import
// grpcnet; Conn is the same alias in both).
var (
	_ router.Network = grpcnet.TCP{}
	_ router.Network = (*grpcnet.Mem)(nil)
	_ router.Network = grpcnet.NewDirect(nil).Node("x:1")
)

func TestClusterOverDirect(t *testing.T) { runClusterOverDirect(t) }

// In a bubble time moves only when every goroutine (the stores', Pebble's,
// placement's, the router's and Direct's handlers) waits durably: the
// run would hang if one of them waited on a mutex or a busy loop.
func TestClusterOverDirectInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		runClusterOverDirect(t)
		t.Logf("%v of bubble time", time.Since(start))
	})
}

// runClusterOverDirect starts the cluster (stopped at the end of t),
// writes and reads 50 keys, splits, waits for full replication, writes
// and reads again, crashes a store and writes and reads once more.
func runClusterOverDirect(t *testing.T) {
	d := grpcnet.NewDirect(nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	pdAddr := "pd1.invalid:7401"
	pcfg := placement.Defaults()
	pcfg.ID = 1
	pcfg.Addr = pdAddr
	pcfg.InitialCluster = map[uint64]string{1: pdAddr}
	pcfg.HeartbeatInterval = 25 * time.Millisecond
	pcfg.ElectionTimeout = 250 * time.Millisecond
	pcfg.ScheduleInterval = 100 * time.Millisecond
	pcfg.FS, pcfg.DataDir = vfs.NewMem(), "pd"
	pcfg.Logger = quiet
	pcfg.Network = d.Node(pdAddr)
	pd, err := placement.Open(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := pd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pd.Stop)

	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("store%d.invalid:7501", i)
		cfg := store.Defaults()
		cfg.Addr = addr
		cfg.Placement = []string{pdAddr}
		cfg.HeartbeatInterval = 25 * time.Millisecond
		cfg.ElectionTimeout = 250 * time.Millisecond
		cfg.StoreHeartbeatInterval = 100 * time.Millisecond
		cfg.RangeHeartbeatInterval = 100 * time.Millisecond
		cfg.Workers = 2
		cfg.FS, cfg.DataDir = vfs.NewMem(), "data"
		cfg.Logger = quiet
		cfg.Network = d.Node(addr)
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatalf("open store %d: %v", i, err)
		}
		if err := s.Start(); err != nil {
			t.Fatalf("start store %d: %v", i, err)
		}
		t.Cleanup(s.Stop)
	}

	c, err := router.New([]string{pdAddr}, router.Options{Seed: 1, Network: d.Node("client.invalid:1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	putGet := func(round int) {
		t.Helper()
		for i := range 50 {
			k, v := fmt.Appendf(nil, "k%03d", i), fmt.Appendf(nil, "v%d.%d", round, i)
			// A put whose outcome is unknown is put again (the same
			// value: idempotent). In real time on a loaded machine a
			// leader may take longer than the proposal timeout after
			// the crash; what this test checks is the network under it.
			err := c.Put(ctx, k, v)
			for amb := (*router.AmbiguousError)(nil); errors.As(err, &amb); {
				err = c.Put(ctx, k, v)
			}
			if err != nil {
				t.Fatalf("round %d: put %s: %v", round, k, err)
			}
		}
		for i := range 50 {
			k := fmt.Appendf(nil, "k%03d", i)
			v, found, err := c.Get(ctx, k)
			if want := fmt.Sprintf("v%d.%d", round, i); err != nil || !found || string(v) != want {
				t.Fatalf("round %d: get %s = (%q, %v, %v), want %s", round, k, v, found, err, want)
			}
		}
	}
	putGet(1)

	// Placement splits (its SplitRange call to the leader's store goes
	// through Direct too) and replicates both ranges to every store (three
	// voters: with a learner among them, a crash could leave no quorum).
	admin, err := c.Admin()
	if err != nil {
		t.Fatal(err)
	}
	left, right, err := admin.Split(ctx, []byte("k025"))
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	for _, id := range []uint64{left.RangeId, right.RangeId} {
		for {
			r, err := admin.RangeByID(ctx, id)
			if err == nil && threeVoters(r) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("range %d not on three stores with a leader: %v %v", id, r, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	putGet(2)

	// A store crashes: its streams break, the router finds it down, and
	// the other two carry on.
	d.Down("store3.invalid:7501")
	putGet(3)
}

// threeVoters reports whether a range has a leader and a voter on each
// of three stores.
func threeVoters(r *rangekvpb.RouteInfo) bool {
	stores := map[uint64]bool{}
	for _, rd := range r.GetDescriptor_().GetReplicas() {
		if rd.GetRole() != rangekvpb.ReplicaRole_VOTER {
			return false
		}
		stores[rd.GetStoreId()] = true
	}
	return len(stores) == 3 && r.GetLeaderStoreId() != 0
}
