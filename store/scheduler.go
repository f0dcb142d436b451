// The Raft scheduler: a queue of ranges with work drained by a fixed pool
// of workers, like CockroachDB's raft scheduler. No goroutine, timer or
// ticker exists per range. Which goroutine runs a pass, and when, is the
// Runner's (the worker-scheduler seam); the queue's order is the
// scheduler's.

package store

import (
	"sync"
)

// Runner decides which goroutine runs the store's Raft passes, and when:
// the worker-scheduler seam (Config.Runner). A pass takes up to
// MaxBatchRanges ranges with work, in the order they were queued, and
// persists, sends and applies their Readies (doc.go). The production
// Runner is WorkerPool; the deterministic simulation runs passes on its
// own goroutine, one at a time, when it chooses.
type Runner interface {
	// Start is called once, by Store.Start, and makes pass run. pass(true)
	// waits until a range has work and runs one pass; it returns false,
	// having run none, once the store stops. pass(false) runs one pass if
	// any range has work and reports whether it ran one. Passes may run
	// concurrently: the scheduler never gives a range to two at once.
	Start(workers int, pass func(wait bool) bool)
	// Stop is called once, by Store.Stop (also when Start was not),
	// after pass(true) started returning false; it returns when no pass
	// runs and none will start.
	Stop()
}

// WorkerPool is the production Runner: Start starts workers goroutines,
// each running pass(true) back to back until the store stops. The zero
// value is ready; a WorkerPool serves one store.
type WorkerPool struct {
	wg sync.WaitGroup
}

// Start implements Runner.
func (p *WorkerPool) Start(workers int, pass func(wait bool) bool) {
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for pass(true) {
			}
		}()
	}
}

// Stop implements Runner.
func (p *WorkerPool) Stop() { p.wg.Wait() }

type schedFlags uint8

const (
	flagQueued     schedFlags = 1 << iota // in the queue
	flagProcessing                        // a worker has it
	flagTick                              // tick raft once
	flagWork                              // inbox or ready work
)

// workItem is one range handed to a worker.
type workItem struct {
	rangeID uint64
	tick    bool
}

// scheduler keeps each range at most once in the queue and hands it to at
// most one worker at a time: work that arrives while a worker processes a
// range re-queues it when the worker is done.
type scheduler struct {
	mu struct {
		sync.Mutex
		cond    *sync.Cond
		queue   []uint64 // FIFO of range IDs with flagQueued
		state   map[uint64]schedFlags
		stopped bool
	}
	maxBatch int
}

func newScheduler(maxBatch int) *scheduler {
	s := &scheduler{maxBatch: maxBatch}
	s.mu.cond = sync.NewCond(&s.mu.Mutex)
	s.mu.state = make(map[uint64]schedFlags)
	return s
}

// enqueue marks work for rangeID; f is flagTick or flagWork.
func (s *scheduler) enqueue(rangeID uint64, f schedFlags) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(rangeID, f)
}

func (s *scheduler) enqueueLocked(rangeID uint64, f schedFlags) {
	st := s.mu.state[rangeID]
	st |= f
	if st&(flagQueued|flagProcessing) == 0 {
		st |= flagQueued
		s.mu.queue = append(s.mu.queue, rangeID)
		s.mu.cond.Signal()
	}
	s.mu.state[rangeID] = st
}

// enqueueMany marks the same work for many ranges under one lock.
func (s *scheduler) enqueueMany(ids []uint64, f schedFlags) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.enqueueLocked(id, f)
	}
	s.mu.cond.Broadcast()
}

// next blocks until work is available and returns up to maxBatch ranges,
// now marked processing. It returns nil once stopped.
func (s *scheduler) next(buf []workItem) []workItem { return s.take(buf, true) }

// take is next that, without wait, returns nil at once when no range is
// queued.
func (s *scheduler) take(buf []workItem, wait bool) []workItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wait && len(s.mu.queue) == 0 && !s.mu.stopped {
		s.mu.cond.Wait()
	}
	if s.mu.stopped || len(s.mu.queue) == 0 {
		return nil
	}
	n := min(len(s.mu.queue), s.maxBatch)
	buf = buf[:0]
	for _, id := range s.mu.queue[:n] {
		st := s.mu.state[id]
		buf = append(buf, workItem{rangeID: id, tick: st&flagTick != 0})
		s.mu.state[id] = flagProcessing
	}
	s.mu.queue = append(s.mu.queue[:0], s.mu.queue[n:]...)
	return buf
}

// done releases ranges a worker processed; those that got work meanwhile go
// back into the queue.
func (s *scheduler) done(items []workItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		st := s.mu.state[it.rangeID] &^ flagProcessing
		if st&(flagTick|flagWork) != 0 {
			st |= flagQueued
			s.mu.queue = append(s.mu.queue, it.rangeID)
			s.mu.cond.Signal()
		}
		if st == 0 {
			delete(s.mu.state, it.rangeID)
		} else {
			s.mu.state[it.rangeID] = st
		}
	}
}

// stop wakes every worker; next returns nil from then on.
func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.stopped = true
	s.mu.cond.Broadcast()
}
