package e2e

// The placement driver with real processes: one rangekv-placement and three
// rangekv-store processes joined with --placement; placement replicates
// range 1 onto every store; the placement process is killed with SIGKILL
// and restarted from its data directory while the stores keep serving.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// placementBin is the rangekv-placement binary TestMain built.
func placementBin(testing.TB) string { return filepath.Join(binDir, "rangekv-placement") }

// TestPlacementProcesses: one placement member and three stores as
// processes. Range 1 is replicated onto every store by placement; writes
// and reads go through the stores; placement is killed with SIGKILL and
// restarted from its data directory: the stores serve meanwhile, and
// placement comes back with the same cluster ID and stores.
func TestPlacementProcesses(t *testing.T) {
	start := time.Now()
	bin := placementBin(t)
	base := t.TempDir()
	addrs := freeAddrs(t, 8)
	pdAddr, pdHTTP := addrs[0], addrs[1]
	pd := newProc(t, "placement", bin, filepath.Join(base, "pd.log"), procs.PlacementArgs{
		ID: 1, Addr: pdAddr, HTTPAddr: pdHTTP, DataDir: filepath.Join(base, "pd"),
		InitialCluster: []procs.Peer{{ID: 1, Addr: pdAddr}},
		Extra:          pdTestFlags,
	}.Args()...)
	pd.start()
	var stores []*proc
	var storeAddrs, storeHTTP []string
	for i := range 3 {
		addr, httpAddr := addrs[2+2*i], addrs[3+2*i]
		storeAddrs, storeHTTP = append(storeAddrs, addr), append(storeHTTP, httpAddr)
		args := procs.StoreArgs{Addr: addr, HTTPAddr: httpAddr, DataDir: filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			Placement: []string{pdAddr}, Extra: joinedStoreFlags()}
		p := newProc(t, fmt.Sprintf("store%d", i+1), filepath.Join(binDir, "rangekv-store"), filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...)
		p.start()
		stores = append(stores, p)
	}
	all := append([]*proc{pd}, stores...)

	conn, err := grpc.NewClient(pdAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := rangekvpb.NewPlacementClient(conn)
	status := func() *rangekvpb.ClusterStatusResponse {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := pc.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		if err != nil || st.Error != nil {
			return nil
		}
		return st
	}
	range1Voters := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: 1})
		if err != nil || r.Error != nil || len(r.Ranges) != 1 {
			return 0
		}
		n := 0
		for _, rep := range r.Ranges[0].Descriptor_.Replicas {
			if rep.Role == rangekvpb.ReplicaRole_VOTER {
				n++
			}
		}
		return n
	}
	var st0 *rangekvpb.ClusterStatusResponse
	waitFor(t, "range 1 with 3 voters on 3 stores", 30*time.Second, func() bool {
		checkProcs(t, all...)
		st0 = status()
		return st0 != nil && len(st0.Stores) == 3 && len(st0.UnderReplicated) == 0 && range1Voters() == 3
	})
	t.Logf("cluster %x: range 1 on 3 stores %s after start", st0.ClusterId, time.Since(start).Round(time.Millisecond))
	// Every store holds range 1, as its /debug/ranges says.
	for i, httpAddr := range storeHTTP {
		waitFor(t, fmt.Sprintf("store %d to hold range 1", i+1), 10*time.Second, func() bool {
			rs, err := rangeStatus(httpAddr)
			return err == nil && rs.StoreId != 0 && len(rs.Replicas) == 1 && rs.Replicas[0].Initialized
		})
	}

	cl, err := router.NewStatic(storeAddrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]string{}
	put := func(k, v string) {
		t.Helper()
		if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	check := func(when string) {
		t.Helper()
		for k, v := range want {
			got, found, err := cl.Get(ctx, []byte(k))
			if err != nil || !found || string(got) != v {
				t.Fatalf("get %s %s: %q %v %v, want %q", k, when, got, found, err, v)
			}
		}
	}
	for i := range 20 {
		put(fmt.Sprintf("before/%02d", i), fmt.Sprintf("v%d", i))
	}
	check("before the kill")

	pd.kill9()
	killed := time.Now()
	// The stores serve without placement.
	for i := range 10 {
		put(fmt.Sprintf("during/%02d", i), fmt.Sprintf("w%d", i))
	}
	check("with placement down")
	checkProcs(t, stores...)

	pd.start()
	var st1 *rangekvpb.ClusterStatusResponse
	waitFor(t, "placement back with every store heartbeating", 20*time.Second, func() bool {
		checkProcs(t, all...)
		st1 = status()
		if st1 == nil || len(st1.Stores) != 3 {
			return false
		}
		for _, s := range st1.Stores {
			if s.State != rangekvpb.StoreState_STORE_UP || s.Stats.GetReplicaCount() == 0 || s.LastHeartbeatUnixMs < killed.UnixMilli() {
				return false
			}
		}
		return true
	})
	if !st1.Bootstrapped || st1.ClusterId != st0.ClusterId || st1.RangeCount != st0.RangeCount {
		t.Fatalf("placement after the restart: cluster %x bootstrapped %v, %d ranges; before: cluster %x, %d ranges",
			st1.ClusterId, st1.Bootstrapped, st1.RangeCount, st0.ClusterId, st0.RangeCount)
	}
	var ids0, ids1 []string
	for i := range st0.Stores {
		ids0 = append(ids0, fmt.Sprintf("%d@%s", st0.Stores[i].Store.StoreId, st0.Stores[i].Store.Address))
		ids1 = append(ids1, fmt.Sprintf("%d@%s", st1.Stores[i].Store.StoreId, st1.Stores[i].Store.Address))
	}
	if !slices.Equal(ids0, ids1) {
		t.Fatalf("stores after the restart %v, before %v", ids1, ids0)
	}
	if n := range1Voters(); n != 3 {
		t.Fatalf("range 1 has %d voters after the restart", n)
	}
	t.Logf("placement restarted: cluster %x, stores %v, back %s after the kill; ranges without a known leader: %v",
		st1.ClusterId, ids1, time.Since(killed).Round(time.Millisecond), st1.Leaderless)
	for i := range 10 {
		put(fmt.Sprintf("after/%02d", i), fmt.Sprintf("x%d", i))
	}
	check("after the restart")
	checkProcs(t, all...)
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
