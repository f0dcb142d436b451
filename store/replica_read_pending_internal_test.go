package store

import (
	"context"
	"testing"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

// A replica holds at most Config.MaxPendingReads reads that wait for
// their read index; one more is refused at once with the typed busy
// answer (a ServerBusy range error, which the router retries with
// backoff), and a completed read makes room again. The replica here has no
// worker, so pushed reads stay pending until the test completes them.
func TestPendingReadsBounded(t *testing.T) {
	s := newTransportTestStore(t, 1)
	s.cfg.MaxPendingReads = 2
	r := addTestReplica(s, 1, 1)
	k := &kvServer{s: s}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func(ctx context.Context) (*rangekvpb.GetResponse, error) {
		return k.Get(ctx, &rangekvpb.GetRequest{Header: &rangekvpb.RequestHeader{RangeId: 1}, Key: []byte("k")})
	}

	type result struct {
		resp *rangekvpb.GetResponse
		err  error
	}
	waiting := make(chan result, 2)
	for range 2 {
		go func() {
			resp, err := get(ctx)
			waiting <- result{resp, err}
		}()
	}
	// pushRead counts a read pending before it queues it: wait for both.
	queued := func() int {
		r.inbox.Lock()
		defer r.inbox.Unlock()
		return len(r.inbox.reads)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.pendingReads.Load() != 2 || queued() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads pending (%d queued) after 10s, want 2", r.pendingReads.Load(), queued())
		}
		time.Sleep(time.Millisecond)
	}

	// The third is refused at once, not queued.
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
	defer tcancel()
	resp, err := get(tctx)
	if err != nil || resp.GetHeader().GetError().GetServerBusy() == nil {
		t.Fatalf("read past raft.max-pending-reads: %v, %v; want a ServerBusy range error", resp.GetHeader().GetError(), err)
	}
	if n := r.pendingReads.Load(); n != 2 {
		t.Fatalf("%d reads pending after the refusal, want 2", n)
	}

	// Completing the pending reads (here: timed out) frees the room.
	r.inbox.Lock()
	reads := r.inbox.reads
	r.inbox.reads = nil
	r.inbox.Unlock()
	if len(reads) != 2 {
		t.Fatalf("%d reads queued, want the 2 accepted ones", len(reads))
	}
	for _, rd := range reads {
		rd.Done(rangeraft.ErrReadTimeout)
	}
	for range 2 {
		if w := <-waiting; w.err != nil || w.resp.GetHeader().GetError().GetServerBusy() == nil {
			t.Errorf("timed-out read: %v, %v; want ServerBusy", w.resp.GetHeader().GetError(), w.err)
		}
	}
	if n := r.pendingReads.Load(); n != 0 {
		t.Fatalf("%d reads pending after all completed, want 0", n)
	}
	if err := r.pushRead(&rangeraft.Read{Done: func(error) {}}, s.cfg.MaxPendingReads); err != nil {
		t.Fatalf("read after the others completed: %v, want accepted", err)
	}
}
