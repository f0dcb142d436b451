package store

// Unit tests of the Raft scheduler (internal: it is not exported). Run with
// -race: the concurrent test is also a data-race test of the queue.

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nextOrFail calls next in a goroutine and fails the test if it does not
// return within the deadline.
func nextOrFail(t *testing.T, s *scheduler) []workItem {
	t.Helper()
	ch := make(chan []workItem, 1)
	go func() { ch <- s.next(nil) }()
	select {
	case items := <-ch:
		return items
	case <-time.After(5 * time.Second):
		t.Fatal("next did not return")
		return nil
	}
}

func rangeIDs(items []workItem) []uint64 {
	out := make([]uint64, 0, len(items))
	for _, it := range items {
		out = append(out, it.rangeID)
	}
	return out
}

func TestSchedulerQueuesEachRangeOnceInFIFOOrder(t *testing.T) {
	s := newScheduler(10)
	for _, id := range []uint64{3, 1, 3, 2, 1, 3} {
		s.enqueue(id, flagWork)
	}
	items := nextOrFail(t, s)
	if got, want := rangeIDs(items), []uint64{3, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("next = %v, want %v (FIFO, each range once)", got, want)
	}
	for _, it := range items {
		if it.tick {
			t.Fatalf("range %d handed out with a tick nobody asked for", it.rangeID)
		}
	}
	s.done(items)
	if len(s.mu.queue) != 0 || len(s.mu.state) != 0 {
		t.Fatalf("after done without new work: queue %v state %v, want both empty", s.mu.queue, s.mu.state)
	}
}

func TestSchedulerRespectsMaxBatch(t *testing.T) {
	s := newScheduler(2)
	s.enqueueMany([]uint64{1, 2, 3, 4, 5}, flagTick)
	var got []uint64
	for len(got) < 5 {
		items := nextOrFail(t, s)
		if len(items) > 2 {
			t.Fatalf("next returned %d items, max batch is 2", len(items))
		}
		for _, it := range items {
			if !it.tick {
				t.Fatalf("range %d lost its tick", it.rangeID)
			}
		}
		got = append(got, rangeIDs(items)...)
		s.done(items)
	}
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("ranges handed out %v, want 1..5 in order", got)
	}
}

// Work that arrives while a worker holds a range does not hand it to a
// second worker; the range goes back in the queue when the first is done,
// with the flags that arrived meanwhile.
func TestSchedulerRequeuesWorkArrivingWhileProcessing(t *testing.T) {
	s := newScheduler(10)
	s.enqueue(7, flagWork)
	first := nextOrFail(t, s)
	if got := rangeIDs(first); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("next = %v, want [7]", got)
	}

	s.enqueue(7, flagTick)
	s.enqueue(7, flagWork)
	s.enqueueMany([]uint64{7, 8}, flagWork)
	// Range 7 is processing: only 8 may be handed out.
	if got := slices.Clone(s.mu.queue); !slices.Equal(got, []uint64{8}) {
		t.Fatalf("queue while 7 is processing = %v, want [8]", got)
	}
	second := nextOrFail(t, s)
	if got := rangeIDs(second); !slices.Equal(got, []uint64{8}) {
		t.Fatalf("second worker got %v while 7 is processing, want only [8]", got)
	}

	// Nothing is queued now; a third next blocks until 7 is done.
	third := make(chan []workItem, 1)
	go func() { third <- s.next(nil) }()
	s.done(first)
	var items []workItem
	select {
	case items = <-third:
	case <-time.After(5 * time.Second):
		t.Fatal("range 7 was not re-queued after done")
	}
	if len(items) != 1 || items[0].rangeID != 7 || !items[0].tick {
		t.Fatalf("re-queued item = %+v, want range 7 with the tick that arrived while processing", items)
	}
	s.done(items)
	s.done(second)
	if len(s.mu.queue) != 0 || len(s.mu.state) != 0 {
		t.Fatalf("after all done: queue %v state %v, want both empty", s.mu.queue, s.mu.state)
	}
}

func TestSchedulerStopUnblocksNext(t *testing.T) {
	s := newScheduler(4)
	const workers = 3
	var wg sync.WaitGroup
	results := make(chan []workItem, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- s.next(nil)
		}()
	}
	s.stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not unblock the workers waiting in next")
	}
	close(results)
	for items := range results {
		if items != nil {
			t.Fatalf("next after stop returned %v, want nil", items)
		}
	}
	// Stopped with work queued: next still returns nil.
	s.enqueue(1, flagWork)
	if items := nextOrFail(t, s); items != nil {
		t.Fatalf("next on a stopped scheduler with queued work = %v, want nil", items)
	}
}

// Many workers and producers: no range is ever held by two workers at once,
// and every enqueue is followed by a processing of its range that started
// after it (no lost wake-up).
func TestSchedulerConcurrentNeverHandsRangeToTwoWorkers(t *testing.T) {
	const (
		ranges    = 8
		workers   = 4
		producers = 4
		perProd   = 500
	)
	s := newScheduler(3)
	var busy [ranges + 1]atomic.Int32
	// enqueued[r] counts enqueues of r; seen[r] is the enqueued count a
	// worker observed when it started processing r.
	var enqueued, seen [ranges + 1]atomic.Int64
	var violations atomic.Int64
	var firstViolation atomic.Value

	var wwg sync.WaitGroup
	for w := range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			var buf []workItem
			for {
				items := s.next(buf)
				if items == nil {
					return
				}
				for _, it := range items {
					if n := busy[it.rangeID].Add(1); n != 1 {
						violations.Add(1)
						firstViolation.CompareAndSwap(nil, fmt.Sprintf("range %d held by %d workers (worker %d)", it.rangeID, n, w))
					}
					seen[it.rangeID].Store(enqueued[it.rangeID].Load())
				}
				for _, it := range items {
					busy[it.rangeID].Add(-1)
				}
				s.done(items)
				buf = items
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range perProd {
				id := uint64((p*perProd+i)%ranges + 1)
				enqueued[id].Add(1)
				if i%10 == 0 {
					s.enqueueMany([]uint64{id, id%ranges + 1}, flagTick)
					enqueued[id%ranges+1].Add(1)
				} else {
					s.enqueue(id, flagWork)
				}
			}
		}()
	}
	pwg.Wait()
	// Every range must be processed after its last enqueue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		caught := true
		for r := 1; r <= ranges; r++ {
			if seen[r].Load() != enqueued[r].Load() {
				caught = false
			}
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			for r := 1; r <= ranges; r++ {
				t.Logf("range %d: enqueued %d, last processing saw %d", r, enqueued[r].Load(), seen[r].Load())
			}
			t.Fatal("work enqueued was never processed (lost wake-up)")
		}
		time.Sleep(time.Millisecond)
	}
	s.stop()
	stopped := make(chan struct{})
	go func() { wwg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("workers did not return from next after stop")
	}
	if n := violations.Load(); n != 0 {
		t.Fatalf("%d times a range was held by two workers; first: %v", n, firstViolation.Load())
	}
}
