// The SDK's paged listings against a real placement member and store:
// RangesPage and Ranges over placement's ScanRanges pages, and
// StoreReplicas over a store's Admin.ListRanges pages, with a filter.

package router_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

func TestAdminPagedListings(t *testing.T) {
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{InMemory: true,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour }})
	cl, err := router.New(c.PDAddrs, router.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Eight ranges: -inf, b, c, ..., h.
	for _, k := range []string{"h", "g", "f", "e", "d", "c", "b"} {
		c.WaitFor("split at "+k, 15*time.Second, func() bool { _, _, err := adm.Split(ctx, []byte(k)); return err == nil })
	}

	// Pages of 3 from placement: 3, 3, 2, in key order, each with the
	// next page's token until the last.
	var got []string
	var sizes []int
	tok := ""
	for {
		routes, next, err := adm.RangesPage(ctx, nil, nil, tok, 3)
		if err != nil {
			t.Fatalf("RangesPage after %v: %v", got, err)
		}
		sizes = append(sizes, len(routes))
		for _, r := range routes {
			got = append(got, string(r.GetDescriptor_().GetStartKey()))
		}
		if tok = next; tok == "" {
			break
		}
	}
	if want := []string{"", "b", "c", "d", "e", "f", "g", "h"}; !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 2}) {
		t.Fatalf("pages %v holding ranges starting at %q; want [3 3 2] and %q", sizes, got, want)
	}
	// A span pages the same way and stops at its end.
	routes, next, err := adm.RangesPage(ctx, []byte("c1"), []byte("f"), "", 2)
	if err != nil || len(routes) != 2 || string(routes[0].GetDescriptor_().GetStartKey()) != "c" || next == "" {
		t.Fatalf("span [c1, f) first page: %v, next %q, err %v; want c and d, and a token", routes, next, err)
	}
	routes, next, err = adm.RangesPage(ctx, []byte("c1"), []byte("f"), next, 2)
	if err != nil || len(routes) != 1 || string(routes[0].GetDescriptor_().GetStartKey()) != "e" || next != "" {
		t.Fatalf("span [c1, f) second page: %v, next %q, err %v; want e only, no token", routes, next, err)
	}
	all, err := adm.Ranges(ctx, nil, nil, 0)
	if err != nil || len(all) != 8 {
		t.Fatalf("Ranges: %d routes, %v; want 8", len(all), err)
	}
	some, err := adm.Ranges(ctx, nil, nil, 5)
	if err != nil || len(some) != 5 {
		t.Fatalf("Ranges limit 5: %d routes, %v; want 5", len(some), err)
	}

	// Bad input: the SDK refuses a limit it knows placement refuses, and
	// placement refuses a token it did not make.
	if _, _, err := adm.RangesPage(ctx, nil, nil, "", 10001); err == nil || !strings.Contains(err.Error(), "limit: 10001") {
		t.Fatalf("RangesPage limit 10001: %v, want an error naming limit", err)
	}
	if _, _, err := adm.RangesPage(ctx, nil, nil, "bogus", 10); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
		t.Fatalf("RangesPage with a made-up token: %v, want InvalidArgument naming page_token", err)
	}

	// The store's replicas: all of them, or only those asked for. A split
	// is acknowledged once applied; its right replica joins the store's
	// listing when the pass installs it just after, so a split retried
	// here (answered from the applied split at once) may be listed a
	// moment later.
	storeID := c.Stores[0].StoreID()
	var reps []*rangekvpb.ReplicaStatus
	c.WaitFor("the store to list its 8 replicas", 10*time.Second, func() bool {
		reps, err = adm.StoreReplicas(ctx, storeID)
		return err == nil && len(reps) == 8
	})
	id := all[4].GetDescriptor_().GetRangeId()
	reps, err = adm.StoreReplicas(ctx, storeID, id, 1<<60)
	if err != nil || len(reps) != 1 || reps[0].GetDescriptor_().GetRangeId() != id {
		t.Fatalf("StoreReplicas(%d, unknown): %v, %v; want range %d only", id, reps, err, id)
	}
}
