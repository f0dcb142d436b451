// The Raft workers: the scheduler (a queue of ranges with work drained by
// a fixed pool of workers, like CockroachDB's raft scheduler; no
// goroutine, timer or ticker exists per range), the store-wide ticker,
// and the pass: one worker's turn over up to MaxBatchRanges ranges with
// work, which rangeraft/driver runs (their Raft state persisted with one
// synced write, their committed entries applied with one batch; see
// doc.go for the order it keeps). Which goroutine runs a pass, and when,
// is the Runner's (the worker-scheduler seam); the queue's order is the
// scheduler's.

package store

import (
	"slices"
	"sync"

	"github.com/rangekv/rangekv/rangeraft/driver"
)

// Runner decides which goroutine runs the store's Raft passes, and when:
// the worker-scheduler seam (Config.Runner). A pass takes up to
// MaxBatchRanges ranges with work, in the order they were queued, and
// persists, sends and applies their Readies (doc.go). The production
// Runner is WorkerPool; the deterministic simulation starts each pass on
// one of its worker goroutines when it chooses, and stops passes at pass
// points (PassPoints) to run other steps, passes of other workers among
// them.
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

// passRunner is one pass's reusable state: the driver and the work
// lists. Passes may run concurrently (Runner), so each takes its own from
// Store.passRunners and gives it back when done.
type passRunner struct {
	drv    *driver.Driver
	items  []workItem
	passes []*pass
	// buf holds the pass records passes point into, reused (with their
	// slices) from pass to pass rather than allocated per range.
	buf []pass
	// out is the pass's outbox, flushed by the driver (drv's Flush).
	out outbox
}

// newPass returns a cleared pass record for r, from w.buf.
func (w *passRunner) newPass(r *Replica, tick bool) *pass {
	if len(w.buf) < cap(w.buf) {
		w.buf = w.buf[:len(w.buf)+1]
	} else {
		w.buf = append(w.buf, pass{})
	}
	p := &w.buf[len(w.buf)-1]
	*p = pass{r: r, tick: tick, out: &w.out, applied: p.applied[:0], truncs: p.truncs[:0], splits: p.splits[:0]}
	return p
}

// releasePasses drops what the pass records refer to and makes them
// free for the next pass.
func (w *passRunner) releasePasses() {
	for i := range w.buf {
		p := &w.buf[i]
		clear(p.applied)
		clear(p.splits)
		p.r, p.snap, p.desc = nil, nil, nil
		p.upd = driver.AppendUpdate{}
	}
	w.buf = w.buf[:0]
}

// newPassRunner is the pool constructor of Store.passRunners.
func (s *Store) newPassRunner() *passRunner {
	w := &passRunner{}
	opts := driver.Options{DB: s.db, NoFsync: s.cfg.UnsafeNoFsync, Fatal: s.fatalRange,
		Flush: func() { w.out.flush(s.trans) }}
	if s.cfg.PassPoints != nil {
		opts.BeforeCommit = func() { s.at(PointPassStaged, w.items[0].rangeID) }
	}
	w.drv = driver.New(opts)
	return w
}

// runNextPass is the pass Config.Runner runs (Runner.Start): it takes up
// to MaxBatchRanges queued ranges (waiting for one when wait is set) and
// runs their pass; false when it took none.
func (s *Store) runNextPass(wait bool) bool {
	w := s.passRunners.Get().(*passRunner)
	defer s.passRunners.Put(w)
	items := s.sched.take(w.items[:0], wait)
	if items == nil {
		return false
	}
	w.items = items
	s.runPass(w, items)
	s.sched.done(items)
	return true
}

// runPass runs one pass over the ranges of items: each replica drains its
// inbox and, if raft has a Ready, joins the pass, which rangeraft/driver
// runs in the order MULTIRAFT.md §1 requires (replica_raft.go is the
// replica's side of it). Every replica of the pass stays locked until
// the pass is done.
func (s *Store) runPass(w *passRunner, items []workItem) {
	passes := w.passes[:0]
	taken := 0
	defer func() { s.metrics.rangePasses.Add(float64(taken)) }()
	for _, it := range items {
		if k := s.cfg.Knobs; k != nil && k.BeforeRaftPass != nil {
			k.BeforeRaftPass(it.rangeID)
		}
		r := s.replica(it.rangeID)
		if r == nil {
			continue
		}
		r.lock()
		if r.mu.destroyed {
			r.mu.Unlock()
			continue
		}
		taken++
		stepped := r.drainInbox(it.tick)
		rd, ok := r.mu.rr.Ready()
		// Snapshots raft did not return now never will be: drop their data
		// and placeholders. The one it returned is ingested in the pass.
		s.snaps.settle(stepped, rd.Snapshot)
		if !ok {
			r.noteLeader()
			r.maybeLeaveJoint()
			if it.tick {
				r.maybeTruncate(true)
				r.maybeQuiesceLeader()
			}
			r.mu.Unlock()
			continue
		}
		p := w.newPass(r, it.tick)
		passes = append(passes, p)
		w.drv.Add(p, rd)
	}
	if len(passes) == 0 {
		return
	}
	defer func() {
		for _, p := range passes {
			p.r.mu.Unlock()
		}
		s.at(PointPassUnlocked, items[0].rangeID)
		// Work that takes other replicas' locks runs after ours are free.
		for _, p := range passes {
			s.finishSplits(p.splits)
			if p.removed {
				p.r.destroy("removed from the range")
			}
		}
		clear(passes)
		w.passes = passes[:0]
		w.releasePasses()
	}()
	st := w.drv.Run()
	s.metrics.readies.Add(float64(st.Groups))
	s.metrics.batchOps.Add(float64(st.Ops))
	if st.Committed {
		if st.Synced {
			s.metrics.logSyncs.Inc()
		}
		s.metrics.entriesAppended.Add(float64(st.Appended))
		s.metrics.readyPasses.Inc()
	}
}

// setAwake maintains the set of ranges the ticker ticks, so that idle
// ticks cost nothing per quiesced range.
func (s *Store) setAwake(rangeID uint64, awake bool) {
	s.awakeMu.Lock()
	defer s.awakeMu.Unlock()
	if s.awake == nil {
		s.awake = make(map[uint64]struct{})
	}
	if awake {
		s.awake[rangeID] = struct{}{}
	} else {
		delete(s.awake, rangeID)
	}
}

func (s *Store) awakeIDs(buf []uint64) []uint64 {
	s.awakeMu.Lock()
	defer s.awakeMu.Unlock()
	for id := range s.awake {
		buf = append(buf, id)
	}
	return buf
}

// reprobeTicks is how many ticks apart the ticker wakes the quiesced
// leaders that quiesced past a lagging replica on a down store
// (replica_quiesce.go): 10 s at the default 100 ms tick.
const reprobeTicks = 100

// ticker is the one store-wide clock: every heartbeat interval it queues a
// tick for every replica that is not quiesced, wakes quiesced followers
// whose leader's store went down and quiesced leaders whose lagging
// follower's store came back, and every reprobeTicks the quiesced leaders
// with a follower lagging on a down store.
func (s *Store) ticker() {
	defer s.wg.Done()
	t := s.cfg.Clock.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	var ids []uint64
	for n := 1; ; n++ {
		select {
		case <-s.stopCh:
			return
		case <-t.C():
		}
		reprobe := n%reprobeTicks == 0
		dead, newlyDead, cameUp := s.liveness.transitions(s.peerStoreIDs())
		ids = s.awakeIDs(ids[:0])
		var wake []uint64
		// Awake followers of a dead leader forget it (so votes are granted
		// at once) and the lowest live voter campaigns.
		if len(dead) > 0 {
			for _, id := range ids {
				if r := s.replica(id); r != nil && r.leader.Load() != r.replicaID {
					if ls := r.leaderStore.Load(); ls != 0 && ls != s.cfg.StoreID && dead[ls] {
						r.setFlag(func(r *Replica) { r.inbox.leaderDead = true })
						wake = append(wake, id)
					}
				}
			}
		}
		// Quiesced replicas are looked at only when a store's liveness
		// changed (followers whose leader's store went down, leaders with
		// a replica on a store that came back) and at a reprobe.
		if len(newlyDead) > 0 || len(cameUp) > 0 || reprobe {
			s.mu.RLock()
			for id, r := range s.mu.replicas {
				if !r.quiesced.Load() {
					continue
				}
				if reprobe && r.quiescedLagging.Load() && r.leader.Load() == r.replicaID {
					r.setFlag(func(r *Replica) { r.inbox.wake = true })
					wake = append(wake, id)
					continue
				}
				if ls := r.leaderStore.Load(); ls != s.cfg.StoreID && newlyDead[ls] {
					r.setFlag(func(r *Replica) { r.inbox.leaderDead = true })
					wake = append(wake, id)
					continue
				}
				if len(cameUp) > 0 && r.leader.Load() == r.replicaID {
					for _, st := range cameUp {
						if replicaOnStore(r.Descriptor(), st) != nil {
							r.setFlag(func(r *Replica) { r.inbox.wake = true })
							wake = append(wake, id)
							break
						}
					}
				}
			}
			s.mu.RUnlock()
		}
		// In range order: the order raft's elections draw their jitter
		// and heartbeats are coalesced in, which a replayed simulation
		// needs to be the same every time.
		slices.Sort(ids)
		slices.Sort(wake)
		s.sched.enqueueMany(ids, flagTick)
		s.sched.enqueueMany(wake, flagWork)
	}
}

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
	maxPass int
}

func newScheduler(maxPass int) *scheduler {
	s := &scheduler{maxPass: maxPass}
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

// next blocks until work is available and returns up to maxPass ranges,
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
	n := min(len(s.mu.queue), s.maxPass)
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
