// The Raft scheduler: a queue of ranges with work drained by a fixed pool
// of workers, like CockroachDB's raft scheduler. No goroutine, timer or
// ticker exists per range.

package store

import (
	"sync"
)

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
func (s *scheduler) next(buf []workItem) []workItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.mu.queue) == 0 && !s.mu.stopped {
		s.mu.cond.Wait()
	}
	if s.mu.stopped {
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
