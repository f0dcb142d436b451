package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

func TestSplitSmoke(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	lead := c.WaitLeader(1)
	cl := c.Client()
	ctx := c.Ctx(60 * time.Second)
	for i := range 100 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%03d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(c.Addrs[lead], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	adm := rangekvpb.NewAdminClient(conn)
	resp, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: 1, SplitKey: []byte("k050")})
	if err != nil || resp.Error != nil {
		t.Fatalf("split: %v %v", err, resp.GetError())
	}
	t.Logf("left %v right %v", resp.Left, resp.Right)
	c.WaitFor("all stores have 2 ranges with leaders", 10*time.Second, func() bool {
		for i := range 3 {
			st := c.Stores[i].Status()
			if len(st.Replicas) != 2 {
				return false
			}
		}
		return c.Leader(resp.Right.RangeId) >= 0
	})
	for i := range 100 {
		v, found, err := cl.Get(ctx, []byte(fmt.Sprintf("k%03d", i)))
		if err != nil || !found || string(v) != "v" {
			t.Fatalf("get %d: %v %v %v", i, v, found, err)
		}
	}
	for i := range 100 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%03d", i)), []byte("w")); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil || len(kvs) != 100 {
		t.Fatalf("scan: %d %v", len(kvs), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for i := range 3 {
			for _, r := range c.Stores[i].Status().Replicas {
				if !r.Quiescent {
					ok = false
					if time.Now().After(deadline) {
						t.Logf("store %d: %v", i+1, r)
					}
				}
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no quiescence")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Kill the leader store; the other two must elect new leaders for both ranges.
	c.StopStore(lead)
	c.WaitLeader(1)
	c.WaitLeader(resp.Right.RangeId)
	if err := cl.Put(ctx, []byte("k001"), []byte("after")); err != nil {
		t.Fatal(err)
	}
	_ = context.Background
}

func TestSplitBySize(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.SplitMaxBytes = 64 << 10
		cfg.SplitCheckInterval = 50 * time.Millisecond
	}})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := c.Ctx(60 * time.Second)
	val := make([]byte, 1000)
	for i := range 300 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%04d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitFor("range 1 split by size", 20*time.Second, func() bool {
		return len(c.Stores[0].Status().Replicas) >= 2
	})
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil || len(kvs) != 300 {
		t.Fatalf("scan after split: %d pairs, %v", len(kvs), err)
	}
}
