// BenchmarkListRanges: what Admin.ListRanges costs per 1,000 replicas
// (issue 18's goal: at most 1 ms), on a store leading every range.

package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

func BenchmarkListRanges(b *testing.B) {
	const ranges = 1000
	c := testcluster.Start(b, 3, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.ElectionTimeout = time.Second
	}})
	c.WaitLeader(1)
	keys := make([]string, 0, ranges-1)
	for i := 1; i < ranges; i++ {
		keys = append(keys, fmt.Sprintf("r%06d", i))
	}
	mrSplitDown(b, c, keys)
	lead := c.Leader(1)
	s := c.Stores[lead]
	if n := len(s.Status().Replicas); n != ranges {
		b.Fatalf("store %d lists %d replicas, want %d", lead+1, n, ranges)
	}
	adm := c.Admin(lead)
	b.Run("in-process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Status()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/1000replicas")
	})
	// Through gRPC (the client's unmarshalling included, on the same
	// cores).
	b.Run("grpc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := adm.ListRanges(context.Background(), &rangekvpb.ListRangesRequest{})
			if err != nil || len(resp.Replicas) != ranges {
				b.Fatalf("ListRanges: %d replicas, %v", len(resp.GetReplicas()), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/1000replicas")
	})
}
