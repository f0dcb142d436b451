// A read's applied index and the data it serves come from one view of the
// engine: an entry applied while the read is served is in both or neither.

package store_test

import (
	"sync/atomic"
	"testing"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// A write applies while a stale Scan stands between its checks and its
// read (the ServingRead knob): the scan sees the write and says an index
// after the one at which it saw the value before. Scan read the
// applied index, then the engine, so it paired the new value with the old
// index, and the nemesis reported two replicas differing "at" one applied
// index (seed 3, once, under load).
func TestReadAppliedIndexMatchesItsData(t *testing.T) {
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{ServingRead: func(uint64) {
			if armed.CompareAndSwap(true, false) {
				close(entered)
				<-release
			}
		}}
	}})
	cl := c.Client()
	mustPut(t, cl, "k", "v1")
	kv := kvClient(t, c.Addrs[0])
	scan := func() *rangekvpb.ScanResponse {
		resp, err := kv.Scan(opCtx(t), &rangekvpb.ScanRequest{
			Header: &rangekvpb.RequestHeader{RangeId: rangeOne, Consistency: rangekvpb.ReadConsistency_STALE}})
		if err != nil || resp.GetHeader().GetError() != nil {
			t.Fatalf("scan: %v %v", err, resp.GetHeader().GetError())
		}
		return resp
	}
	value := func(resp *rangekvpb.ScanResponse) string {
		for _, p := range resp.Pairs {
			if string(p.Key) == "k" {
				return string(p.Value)
			}
		}
		return ""
	}
	before := scan()
	if value(before) != "v1" {
		t.Fatalf("before: k=%q, want v1", value(before))
	}
	armed.Store(true)
	done := make(chan *rangekvpb.ScanResponse, 1)
	go func() {
		resp, err := kv.Scan(opCtx(t), &rangekvpb.ScanRequest{
			Header: &rangekvpb.RequestHeader{RangeId: rangeOne, Consistency: rangekvpb.ReadConsistency_STALE}})
		if err != nil || resp.GetHeader().GetError() != nil {
			t.Errorf("blocked scan: %v %v", err, resp.GetHeader().GetError())
		}
		done <- resp
	}()
	<-entered
	mustPut(t, cl, "k", "v2") // acknowledged: applied on the only store
	close(release)
	got := <-done
	if got == nil {
		return
	}
	// The read's view opens after the knob returns, so it holds v2.
	if value(got) != "v2" {
		t.Fatalf("scan served k=%q after v2 was applied, want v2", value(got))
	}
	if got.Header.AppliedIndex <= before.Header.AppliedIndex {
		t.Fatalf("scan served k=v2 at applied index %d, but k was v1 at applied index %d", got.Header.AppliedIndex, before.Header.AppliedIndex)
	}
}
