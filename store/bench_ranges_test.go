// What one put costs the stores in Raft work when the writes spread over
// many ranges (issue 18): Raft messages by kind, Readies, ranges taken by
// passes and Pebble operations per put, counted from the stores' metrics.
// Counts, unlike CPU time, hardly move with the machine's load, so they
// compare code before and after on a shared machine.
//
//	go test ./store -run '^$' -bench 'PutRanges' -benchtime 20000x -count 1

package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// BenchmarkPutRanges runs 256 writers of 256-byte puts, keys uniform over
// r000000..r000999, against three in-process stores (on disk, fsync on)
// whose key space is one range or 1,000 (every range led by one store),
// and reports per put, summed over the three stores:
//
//	app/op       MsgApp with entries
//	commit/op    commit-only MsgApp sent as such (raft's, less the folded
//	             and those sent as commit advances)
//	adv/op       commit advances sent (store_commit_hold.go)
//	appresp/op   MsgAppResp
//	hb/op        MsgHeartbeat and MsgHeartbeatResp (coalesced)
//	msgs/op      every Raft message raft sent, less the folded
//	readies/op   Readies handled (per range per pass)
//	rangepass/op ranges taken by passes (with a Ready or not)
//	batchops/op  Pebble operations committed by passes
//	entries/op   log entries appended (every replica)
//	batches/op   transport batches (gRPC messages between stores)
func BenchmarkPutRanges(b *testing.B) {
	for _, ranges := range []int{1, 1000} {
		b.Run(fmt.Sprintf("ranges=%d", ranges), func(b *testing.B) {
			benchPutRanges(b, ranges, 256)
		})
	}
}

func benchPutRanges(b *testing.B, ranges, writers int) {
	c := testcluster.Start(b, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.ElectionTimeout = time.Second
	}})
	lead := c.WaitLeader(1)
	splitSequential(b, c, lead, ranges)
	cl := c.Client()
	val := make([]byte, 256)
	key := func(rng *rand.Rand) []byte {
		return fmt.Appendf(nil, "r%06d/%010d", rng.IntN(1000), rng.IntN(1_000_000_000))
	}
	// Warm-up: the client learns the layout; every range wakes.
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(1, uint64(w)))
			for range 8 {
				if err := cl.Put(context.Background(), key(rng), val); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	before := countersOf(b, c)
	work := make(chan struct{}, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(2, uint64(w)))
			for range work {
				if err := cl.Put(context.Background(), key(rng), val); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	puts := 0
	for b.Loop() {
		work <- struct{}{}
		puts++
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	after := countersOf(b, c)
	d := func(name string) float64 { return (after[name] - before[name]) / float64(puts) }
	msgApp := d(`rangekv_raft_messages_sent_total{type="MsgApp"}`)
	commit := d("rangekv_raft_commit_appends_total")
	folded := d("rangekv_raft_commit_appends_folded_total")
	adv, advFolded := d("rangekv_raft_commit_advances_total"), d("rangekv_raft_commit_advances_folded_total")
	b.ReportMetric(msgApp-commit, "app/op")
	b.ReportMetric(commit-adv-(folded-advFolded), "commit/op")
	b.ReportMetric(adv-advFolded, "adv/op")
	b.ReportMetric(d(`rangekv_raft_messages_sent_total{type="MsgAppResp"}`), "appresp/op")
	dropped := d("rangekv_raft_commit_advance_answers_dropped_total")
	b.ReportMetric(d(`rangekv_raft_messages_sent_total{type="MsgHeartbeat"}`)+
		d(`rangekv_raft_messages_sent_total{type="MsgHeartbeatResp"}`), "hb/op")
	b.ReportMetric(d("rangekv_raft_heartbeats_elided_total"), "hbelided/op")
	b.ReportMetric(d("rangekv_raft_messages_sent_total")-folded, "msgs/op")
	b.ReportMetric(dropped, "advdrop/op")
	b.ReportMetric(d("rangekv_raft_readies_total"), "readies/op")
	b.ReportMetric(d("rangekv_raft_range_passes_total"), "rangepass/op")
	b.ReportMetric(d("rangekv_raft_batch_ops_total"), "batchops/op")
	b.ReportMetric(d("rangekv_raft_entries_appended_total"), "entries/op")
	b.ReportMetric(d("rangekv_transport_batches_sent_total"), "batches/op")
}

// countersOf sums every counter of the running stores.
func countersOf(b *testing.B, c *testcluster.Cluster) map[string]float64 {
	b.Helper()
	sum := map[string]float64{}
	for _, s := range c.Stores {
		m, err := s.CountersForTest()
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum
}

// splitSequential splits range 1 (led by store lead) at r000001 ..
// r(n-1), each split on the right half of the one before; the right
// halves' first leaders are on lead's store.
func splitSequential(b *testing.B, c *testcluster.Cluster, lead, n int) {
	b.Helper()
	admin := c.Admin(lead)
	cur := uint64(1)
	deadline := time.Now().Add(5 * time.Minute)
	for i := 1; i < n; i++ {
		key := fmt.Appendf(nil, "r%06d", i)
		for {
			if time.Now().After(deadline) {
				b.Fatalf("split %d of %d: out of time", i, n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := admin.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: cur, SplitKey: key})
			cancel()
			if err == nil && resp.Error == nil {
				cur = resp.Right.RangeId
				break
			}
			// The right half before still elects its leader: retry.
			time.Sleep(5 * time.Millisecond)
		}
	}
}
