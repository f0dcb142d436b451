// Admin.ListRanges pages: what a caller of the store's admin API sees
// when it pages through the replicas, filters by range ID, or passes a
// bad limit or page token.

package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestListRangesPages(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{InMemory: true})
	c.WaitLeader(1)
	var keys []string
	for i := 1; i < 25; i++ {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	mrSplitDown(t, c, keys)
	adm := c.Admin(0)
	ctx := c.Ctx(30 * time.Second)

	// Every replica once, in range ID order, in pages of at most 10.
	var ids []uint64
	var pages []int
	tok := ""
	for {
		resp, err := adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{PageToken: tok, Limit: 10})
		if err != nil {
			t.Fatalf("ListRanges page %d: %v", len(pages)+1, err)
		}
		if resp.Total != 25 {
			t.Fatalf("page %d: total %d, want 25", len(pages)+1, resp.Total)
		}
		pages = append(pages, len(resp.Replicas))
		for _, r := range resp.Replicas {
			ids = append(ids, r.GetDescriptor_().GetRangeId())
			if !r.Initialized || r.RaftState != "StateLeader" || r.ReplicaId == 0 {
				t.Fatalf("replica %v: want an initialized leader", r)
			}
		}
		if tok = resp.NextPageToken; tok == "" {
			break
		}
	}
	if !slices.Equal(pages, []int{10, 10, 5}) {
		t.Fatalf("page sizes %v, want [10 10 5]", pages)
	}
	if len(ids) != 25 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 25 {
		t.Fatalf("range IDs over the pages %v: want 25 distinct, ascending", ids)
	}
	all := c.Stores[0].Status()
	if len(all.Replicas) != 25 {
		t.Fatalf("Status lists %d replicas, want 25", len(all.Replicas))
	}

	// The default page holds them all; a filter lists only the named
	// ranges that the store holds, paged the same way.
	resp, err := adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{})
	if err != nil || len(resp.Replicas) != 25 || resp.NextPageToken != "" {
		t.Fatalf("default page: %d replicas, next %q, err %v; want 25, \"\", nil", len(resp.GetReplicas()), resp.GetNextPageToken(), err)
	}
	want := []uint64{ids[3], ids[7], ids[20]}
	resp, err = adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{RangeIds: []uint64{ids[20], 999999, ids[3], ids[7]}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := []uint64{}
	for _, r := range resp.Replicas {
		got = append(got, r.GetDescriptor_().GetRangeId())
	}
	if resp.Total != 3 || resp.NextPageToken == "" || !slices.Equal(got, want[:2]) {
		t.Fatalf("filtered first page: %v, total %d, next %q; want %v, total 3, a next token", got, resp.Total, resp.NextPageToken, want[:2])
	}
	resp, err = adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{RangeIds: []uint64{ids[20], 999999, ids[3], ids[7]}, Limit: 2, PageToken: resp.NextPageToken})
	if err != nil || len(resp.Replicas) != 1 || resp.Replicas[0].GetDescriptor_().GetRangeId() != want[2] || resp.NextPageToken != "" {
		t.Fatalf("filtered second page: %v, next %q, err %v; want range %d only and no next token", resp.GetReplicas(), resp.GetNextPageToken(), err, want[2])
	}

	// Bad input names the field and the limit.
	_, err = adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{Limit: 10001})
	wantStatus(t, "limit 10001", err, codes.InvalidArgument, "limit: 10001", "maximum of 10000")
	_, err = adm.ListRanges(ctx, &rangekvpb.ListRangesRequest{PageToken: "not-a-token"})
	wantStatus(t, "bad page token", err, codes.InvalidArgument, "page_token:", "not-a-token")
}
