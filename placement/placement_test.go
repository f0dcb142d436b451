package placement_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
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
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{})
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
