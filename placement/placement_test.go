package placement_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

func pdClient(t *testing.T, addr string) rangekvpb.PlacementClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rangekvpb.NewPlacementClient(conn)
}

func TestJoinBootstrapAndMove(t *testing.T) {
	// No automatic scheduling: the test's move must not race a repair.
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour }})
	c.WaitFor("range 1 led", 10*time.Second, func() bool { return len(c.Descriptors()) == 1 })
	pd := pdClient(t, c.PDAddrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stores, err := pd.ListStores(ctx, &rangekvpb.ListStoresRequest{})
	if err != nil || len(stores.Stores) != 3 {
		t.Fatalf("stores: %v %v", stores, err)
	}
	cl, err := router.NewStatic(c.Addrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 50 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := c.Descriptors()[1]
	from := d.Replicas[0].StoreId
	var to uint64
	for _, s := range stores.Stores {
		if s.Store.StoreId != from {
			to = s.Store.StoreId
			break
		}
	}
	op, err := pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: from, ToStoreId: to})
	if err != nil || op.Error != nil {
		t.Fatalf("move: %v %v", op, err)
	}
	t.Logf("operator %v", op.Operator)
	c.WaitFor("operator finished", 30*time.Second, func() bool {
		r, err := pd.GetOperator(ctx, &rangekvpb.GetOperatorRequest{OperatorId: op.Operator.Id})
		if err == nil && r.Operator.State != "running" {
			if r.Operator.State != "finished" {
				t.Fatalf("operator ended %s: %s", r.Operator.State, r.Operator.Reason)
			}
			return true
		}
		return false
	})
	d = c.Descriptors()[1]
	if len(d.Replicas) != 1 || d.Replicas[0].StoreId != to {
		t.Fatalf("descriptor after move: %v", d)
	}
	for i := range 50 {
		v, found, err := cl.Get(ctx, []byte(fmt.Sprintf("k%02d", i)))
		if err != nil || !found || string(v) != "v" {
			t.Fatalf("get %d: %q %v %v", i, v, found, err)
		}
	}
}

// replicaCounts counts voters per store over the leaders' descriptors.
func replicaCounts(c *testcluster.PDCluster) (map[uint64]int, int) {
	counts := map[uint64]int{}
	descs := c.Descriptors()
	for _, d := range descs {
		for _, r := range d.Replicas {
			if r.Role == rangekvpb.ReplicaRole_VOTER {
				counts[r.StoreId]++
			}
		}
	}
	return counts, len(descs)
}

func fullyReplicated(c *testcluster.PDCluster, ranges, factor int) bool {
	descs := c.Descriptors()
	if len(descs) != ranges {
		return false
	}
	for _, d := range descs {
		voters := 0
		for _, r := range d.Replicas {
			if r.Role == rangekvpb.ReplicaRole_VOTER {
				voters++
			} else {
				return false
			}
		}
		if voters != factor {
			return false
		}
	}
	return true
}

func TestRepairAndBalance(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{})
	c.WaitFor("range 1 replicated on all three stores", 30*time.Second, func() bool { return fullyReplicated(c, 1, 3) })
	pd := pdClient(t, c.PDAddrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl, err := router.NewStatic(c.Addrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 8 {
		key := []byte(fmt.Sprintf("k%02d", i*10))
		if i > 0 {
			c.WaitFor(fmt.Sprintf("split at %s", key), 10*time.Second, func() bool {
				r, err := pd.Split(ctx, &rangekvpb.SplitRequest{Key: key})
				return err == nil && r.Error == nil // retry: the new range's leader may not be known yet
			})
		}
	}
	for i := range 80 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitFor("8 ranges, 3 replicas each", 30*time.Second, func() bool { return fullyReplicated(c, 8, 3) })
	// A fourth store joins: replicas move onto it until counts are within one.
	c.AddStore()
	c.WaitFor("replica counts balanced within one over 4 stores", 60*time.Second, func() bool {
		counts, n := replicaCounts(c)
		if n != 8 || len(counts) != 4 || !fullyReplicated(c, 8, 3) {
			return false
		}
		lo, hi := 1<<30, 0
		for _, v := range counts {
			lo, hi = min(lo, v), max(hi, v)
		}
		return hi-lo <= 1
	})
	counts, _ := replicaCounts(c)
	t.Logf("replica counts after the 4th store joined: %v", counts)
	// A store down past max-store-down-time: every range back to 3 healthy
	// replicas on the others, no write lost.
	c.StopStore(0)
	c.WaitFor("every range back to 3 replicas without store 1", 60*time.Second, func() bool {
		if !fullyReplicated(c, 8, 3) {
			return false
		}
		for _, d := range c.Descriptors() {
			if replicaOn(d, c.Stores) == false {
				return false
			}
		}
		return true
	})
	cl2, err := router.NewStatic(c.Addrs[1:], router.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	for i := range 80 {
		v, found, err := cl2.Get(ctx, []byte(fmt.Sprintf("k%02d", i)))
		if err != nil || !found || string(v) != "v" {
			t.Fatalf("get k%02d after repair: %q %v %v", i, v, found, err)
		}
	}
}

// replicaOn reports whether every replica of d is on a running store.
func replicaOn(d *rangekvpb.RangeDescriptor, stores []*store.Store) bool {
	running := map[uint64]bool{}
	for _, s := range stores {
		if s != nil {
			running[s.StoreID()] = true
		}
	}
	for _, r := range d.Replicas {
		if !running[r.StoreId] {
			return false
		}
	}
	return true
}
