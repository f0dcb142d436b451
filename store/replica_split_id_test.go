package store_test

// Where a split's new range ID comes from (split.go): the caller's
// new_range_id, used as is; without one, the store's own allocation, made
// with the caller's context. A colliding ID is refused with a typed error
// naming the field; a retry of a split that applied answers it again and
// creates nothing.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// rangeIDs lists the range IDs of store i's replicas.
func rangeIDs(c *testcluster.Cluster, i int) map[uint64]bool {
	out := map[uint64]bool{}
	for _, r := range c.Stores[i].Status().Replicas {
		out[r.Descriptor_.RangeId] = true
	}
	return out
}

// TestSplitRangeNewRangeID, on a statically bootstrapped store (no
// placement): a split with new_range_id creates that range and allocates
// nothing; a retry with the same ID answers the same halves and creates
// nothing; a retry with another ID is refused as before (the key starts a
// range now); an ID a range of the store has is refused with
// *RangeIDInUseError (InvalidArgument naming new_range_id on the wire);
// a split without an ID allocates one itself (static: the store ID in the
// high bits).
func TestSplitRangeNewRangeID(t *testing.T) {
	var allocs atomic.Int64
	c := testcluster.Start(t, 1, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{AllocatingRangeID: func() { allocs.Add(1) }}
	}})
	c.WaitLeader(1)
	adm := c.Admin(0)
	ctx := mrCtx(t, 30*time.Second)

	resp, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: 1, SplitKey: []byte("m"), NewRangeId: 77})
	if err != nil || resp.Error != nil {
		t.Fatalf("split at m with new_range_id 77: %v %v", err, resp.GetError())
	}
	if resp.Right.RangeId != 77 || string(resp.Left.EndKey) != "m" || string(resp.Right.StartKey) != "m" {
		t.Fatalf("split at m: left %v right %v, want right range 77 from m", resp.Left, resp.Right)
	}
	if n := allocs.Load(); n != 0 {
		t.Fatalf("%d range ID allocations for a split that brought its ID, want 0", n)
	}

	// The first answer was lost; the caller retries with the same ID, once
	// the right replica is installed (until then a retry is refused as
	// retryable: KeyNotInRange or RangeNotFound).
	c.WaitFor("range 77 installed", 10*time.Second, func() bool { return rangeIDs(c, 0)[77] })
	for _, rangeID := range []uint64{1, 77, 0} {
		again, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: rangeID, SplitKey: []byte("m"), NewRangeId: 77})
		if err != nil || again.Error != nil {
			t.Fatalf("retry (range_id %d) of the applied split: %v %v", rangeID, err, again.GetError())
		}
		if again.Right.RangeId != 77 || again.Left.RangeId != 1 || string(again.Left.EndKey) != "m" || string(again.Right.StartKey) != "m" {
			t.Fatalf("retry (range_id %d): left %v right %v, want the split's halves", rangeID, again.Left, again.Right)
		}
	}
	// A retry with a fresh ID (placement allocates one per call): refused
	// as before this field existed, and no range is created.
	_, err = adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("m"), NewRangeId: 78})
	wantInvalid(t, "split at m, a range boundary, with new_range_id 78", err, "split_key")
	refused, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: 1, SplitKey: []byte("m"), NewRangeId: 78})
	if err != nil || refused.GetError().GetKeyNotInRange() == nil {
		t.Fatalf("split of range 1 (now ending at m) at m with new_range_id 78: %v %v, want KeyNotInRange", err, refused.GetError())
	}

	// IDs of ranges the store has.
	for _, id := range []uint64{1, 77} {
		_, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("t"), NewRangeId: id})
		wantInvalid(t, "split at t with the ID of an existing range", err, "new_range_id")
		_, _, err = c.Stores[0].Split(ctx, 0, []byte("t"), id)
		var inUse *store.RangeIDInUseError
		if !errors.As(err, &inUse) || inUse.RangeID != id || inUse.StoreID != 1 {
			t.Fatalf("Store.Split at t with new range ID %d: %v (%T), want *RangeIDInUseError naming it", id, err, err)
		}
	}
	if got := rangeIDs(c, 0); len(got) != 2 || !got[1] || !got[77] {
		t.Fatalf("ranges on the store after the refused splits: %v, want 1 and 77", got)
	}
	if n := allocs.Load(); n != 0 {
		t.Fatalf("%d range ID allocations, want 0", n)
	}

	// No ID: the store allocates one (old callers, static clusters).
	resp, err = adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("t")})
	if err != nil || resp.Error != nil {
		t.Fatalf("split at t without new_range_id: %v %v", err, resp.GetError())
	}
	if n := allocs.Load(); n != 1 {
		t.Fatalf("%d range ID allocations for a split without an ID, want 1", n)
	}
	if id := resp.Right.RangeId; id>>40 != 1 {
		t.Fatalf("right range ID %#x, want one of store 1's static IDs (store ID in the high bits)", id)
	}
}

// allocPlacement is a placement driver for one store that hands out store
// 1 and range 1 on it, and counts AllocID calls; while block is set, an
// AllocID call says so on entered, waits for its context to end and
// reports how it ended on ended.
type allocPlacement struct {
	singleStorePlacement
	allocs  atomic.Int64
	block   atomic.Bool
	entered chan struct{}
	ended   chan error
}

func (p *allocPlacement) Join(context.Context, *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	return &rangekvpb.JoinResponse{ClusterId: 0xa110c, StoreId: 1, BootstrapRange: &rangekvpb.RangeDescriptor{
		RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}, NextReplicaId: 2,
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}},
	}}, nil
}

func (p *allocPlacement) AllocID(ctx context.Context, _ *rangekvpb.AllocIDRequest) (*rangekvpb.AllocIDResponse, error) {
	n := p.allocs.Add(1)
	if p.block.Load() {
		p.entered <- struct{}{}
		<-ctx.Done()
		p.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	return &rangekvpb.AllocIDResponse{First: 1000 + uint64(n)}, nil
}

// TestSplitRangeAllocIDWithCallersContext: against a placement that counts
// AllocID calls, a SplitRange that brings new_range_id makes none; one
// without asks placement once; and when placement does not answer, the
// caller's cancellation ends the store's AllocID call at once (the store
// used to call with a context of its own, which only its 3 s per-attempt
// timeout ended).
func TestSplitRangeAllocIDWithCallersContext(t *testing.T) {
	pd := &allocPlacement{entered: make(chan struct{}, 1), ended: make(chan error, 1)}
	cfg := fakePlacementStore(t, pd)
	cfg.ProposalTimeout = 5 * time.Second
	cfg.SplitCheckInterval = time.Hour
	s := startStore(t, cfg)
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	adm := rangekvpb.NewAdminClient(conn)
	ctx := mrCtx(t, 30*time.Second)

	split := func(key string, newID uint64) *rangekvpb.SplitRangeResponse {
		t.Helper()
		for {
			resp, err := adm.SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte(key), NewRangeId: newID})
			if err != nil {
				t.Fatalf("split at %s: %v", key, err)
			}
			if resp.Error == nil {
				return resp
			}
			if resp.Error.NotLeader == nil && resp.Error.RangeNotFound == nil {
				t.Fatalf("split at %s: %v", key, resp.Error)
			}
			// The range has no leader yet, or (the right half of the
			// previous split) is not installed yet: wait.
			select {
			case <-ctx.Done():
				t.Fatalf("split at %s: no leader: %v", key, resp.Error)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if r := split("g", 500); r.Right.RangeId != 500 || pd.allocs.Load() != 0 {
		t.Fatalf("split with new_range_id 500: right %v, %d AllocID calls; want range 500 and none", r.Right, pd.allocs.Load())
	}
	if r := split("p", 0); r.Right.RangeId != 1001 || pd.allocs.Load() != 1 {
		t.Fatalf("split without new_range_id: right %v, %d AllocID calls; want range 1001 and one", r.Right, pd.allocs.Load())
	}

	pd.block.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// The range holding t is the right half of the split at p: once
		// it has a leader, the split at t asks placement, which does not
		// answer.
		for {
			resp, err := adm.SplitRange(cctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("t")})
			if err != nil {
				done <- err
				return
			}
			if resp.Error == nil || (resp.Error.NotLeader == nil && resp.Error.RangeNotFound == nil) {
				done <- fmt.Errorf("answered %v", resp)
				return
			}
			select {
			case <-cctx.Done():
				done <- cctx.Err()
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("split at t ended before asking placement: %v", err)
	case <-pd.entered:
	}
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("canceled split: %v, want Canceled", err)
	}
	select {
	case err := <-pd.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the store's AllocID call ended with %v, want the caller's cancellation", err)
		}
	case <-time.After(2500 * time.Millisecond):
		t.Fatal("the store's AllocID call outlived the caller's cancellation")
	}
}
