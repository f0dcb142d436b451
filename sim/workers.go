// The simulated Raft workers: each store's Runner and PassPoints. A pass
// runs on one of the store's worker goroutines when the scheduler starts
// it there; at a pass point (store.PassPoint) the seed may stop it for a
// while, and meanwhile the scheduler runs other steps: deliveries, timers,
// a pass of the same store on its other worker. Every pass still takes its
// ranges from the store's own scheduler, which never gives a range to two
// passes at once.

package sim

import (
	"fmt"
	"runtime"
	"sync"
	"testing/synctest"
	"time"

	"github.com/rangekv/rangekv/store"
)

// workers is one store incarnation's store.Runner and store.PassPoints.
type workers struct {
	w     *world
	store int    // the store process's index
	name  string // "s1/2": the store and its incarnation

	mu struct {
		sync.Mutex
		ws   []*worker
		quit chan struct{}
	}
}

// worker is one worker goroutine; busy belongs to the simulator.
type worker struct {
	idx    int
	cmd    chan struct{} // run one pass
	out    chan bool     // its outcome: whether it ran one
	exited chan struct{}
	// busy: a pass started here has not ended (it is stopped at a pass
	// point, or waits for a lock, or runs).
	busy bool
}

// parked is a goroutine stopped at a pass point until due.
type parked struct {
	what string
	due  time.Time
	ch   chan struct{}
	// onResume, when set, runs (on the simulator's goroutine) just
	// before the goroutine goes on.
	onResume func()
}

func newWorkers(w *world, store int, name string) *workers {
	return &workers{w: w, store: store, name: name}
}

// Start implements store.Runner: n worker goroutines, each running one
// pass whenever the simulator says so.
func (ws *workers) Start(n int, pass func(bool) bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.mu.quit = make(chan struct{})
	for i := range n {
		wk := &worker{idx: i, cmd: make(chan struct{}), out: make(chan bool, 1), exited: make(chan struct{})}
		ws.mu.ws = append(ws.mu.ws, wk)
		go func(quit chan struct{}) {
			defer close(wk.exited)
			for {
				select {
				case <-wk.cmd:
					wk.out <- pass(false)
				case <-quit:
					return
				}
			}
		}(ws.mu.quit)
	}
}

// Stop implements store.Runner: it returns once every worker finished its
// pass (a stopped one goes on when the simulator resumes it) and exited.
// The simulator starts no pass once the store is stopping.
func (ws *workers) Stop() {
	ws.mu.Lock()
	quit, list := ws.mu.quit, ws.mu.ws
	ws.mu.quit = nil
	ws.mu.Unlock()
	if quit == nil {
		return
	}
	close(quit)
	for _, wk := range list {
		<-wk.exited
	}
}

// The chance of stopping at each point, in 1/64ths, and for how long.
var stopOdds = map[store.PassPoint]int{
	store.PointSplitStaged:  32,
	store.PointPassStaged:   4,
	store.PointPassUnlocked: 4,
	store.PointDestroying:   16,
}

// At implements store.PassPoints: with the run's Interleave, the
// goroutine reports the point to the simulator and waits. The simulator
// decides, in the canonical order of the step's reports, whether it goes
// on at once or stops for a simulated while (resumed then as one of the
// scheduler's steps): the goroutines of one step may reach their points
// in any order, and the draws must not depend on it.
func (ws *workers) At(p store.PassPoint, rangeID uint64) {
	w := ws.w
	if w.cfg.Preempt {
		runtime.Gosched()
	}
	if !w.cfg.Interleave {
		return
	}
	pk := &parked{what: fmt.Sprintf("%s %s r%d", ws.name, p, rangeID), ch: make(chan struct{})}
	w.post("point "+pk.what, func() {
		if d, resume, ok := w.aimedStop(ws.store, p, rangeID); ok {
			pk.due, pk.onResume = w.clk.Now().Add(d), resume
			w.parked = append(w.parked, pk)
			w.tracef("stop %s for %s (aimed)", pk.what, d)
			return
		}
		if w.rng.IntN(64) >= stopOdds[p] {
			close(pk.ch)
			return
		}
		// Mostly short (a preempted goroutine), sometimes long (a stalled
		// one, a slow fsync).
		var d time.Duration
		switch x := w.rng.IntN(20); {
		case x < 14:
			d = time.Duration(w.rng.Int64N(int64(time.Millisecond)))
		case x < 19:
			d = time.Millisecond + time.Duration(w.rng.Int64N(int64(20*time.Millisecond)))
		default:
			d = 20*time.Millisecond + time.Duration(w.rng.Int64N(int64(200*time.Millisecond)))
		}
		pk.due = w.clk.Now().Add(d)
		w.parked = append(w.parked, pk)
		w.count("stop " + p.String())
		w.tracef("stop %s for %s", pk.what, d)
	})
	<-pk.ch
}

// Busy implements store.PassPoints: it waits until the simulator wakes
// the lock's waiters (once per step; see settle). It never yields with
// runtime.Gosched: a yielded goroutine goes to the global run queue,
// which the Go scheduler looks at first every 61st schedule, a count
// that carries over from one run of the process to the next.
func (ws *workers) Busy(uint64) {
	w := ws.w
	ch := make(chan struct{})
	w.busyMu.Lock()
	w.busy = append(w.busy, ch)
	w.busyMu.Unlock()
	<-ch
	if w.cfg.Preempt {
		runtime.Gosched()
	}
}

// Wake implements store.PassPoints: the wake-up of a peer's sender waits
// until the step's goroutines have blocked (settle). A sender woken at
// once would run beside the goroutine that queued its messages: a pass
// hands a peer its early MsgApps, then the rest after its sync, and where
// the sender took its batch between them (only when the Go scheduler
// preempted the pass, on a loaded machine) one step's messages were cut
// into stream batches differently from run to run (seed 65). While a pass
// is stopped at a pass point its goroutine has blocked too, so its early
// MsgApps still leave, and may arrive, before its sync.
func (ws *workers) Wake(wake func()) {
	w := ws.w
	w.busyMu.Lock()
	w.wakes = append(w.wakes, wake)
	w.busyMu.Unlock()
	if w.cfg.Preempt {
		runtime.Gosched()
	}
}

// runWake runs the first wake-up Wake deferred, if any, and reports
// whether there was one. One at a time, each followed by a wait until
// every goroutine blocked (settle): two goroutines woken at once run in
// the Go scheduler's order (the last woken first, unless a preemption
// let the first run before the second was woken), and two woken by one
// step may share state (two operator steps queue their ranges, two
// snapshot senders take the semaphore).
func (w *world) runWake() bool {
	w.busyMu.Lock()
	if len(w.wakes) == 0 {
		w.busyMu.Unlock()
		return false
	}
	wake := w.wakes[0]
	w.wakes[0] = nil
	w.wakes = w.wakes[1:]
	w.busyMu.Unlock()
	wake()
	return true
}

// wakeBusy wakes every goroutine waiting in Busy, in the order they began
// to wait, one at a time: each tries its lock alone (two woken at once
// would try theirs in the Go scheduler's order, and two waiting for one
// lock would take it in that order). It reports whether there was one.
func (w *world) wakeBusy() bool {
	w.busyMu.Lock()
	b := w.busy
	w.busy = nil
	w.busyMu.Unlock()
	for _, ch := range b {
		close(ch)
		synctest.Wait()
	}
	return len(b) > 0
}

// idle returns a worker with no pass, or nil (none, or not started).
func (ws *workers) idle() *worker {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.mu.quit == nil {
		return nil
	}
	for _, wk := range ws.mu.ws {
		if !wk.busy {
			return wk
		}
	}
	return nil
}

// quiet reports whether no pass of this store is under way: only then
// may the simulator's goroutine read the store's replicas (a pass holds
// their locks even while stopped).
func (ws *workers) quiet() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, wk := range ws.mu.ws {
		if wk.busy {
			return false
		}
	}
	return true
}

// pass runs a pass on worker wk until it ends or stops; it reports
// whether it ended having run none.
func (ws *workers) pass(wk *worker) (none bool) {
	wk.cmd <- struct{}{}
	synctest.Wait()
	select {
	case ran := <-wk.out:
		return !ran
	default:
		ws.mu.Lock()
		wk.busy = true
		ws.mu.Unlock()
		return false
	}
}

// collect notes the passes that ended since the last call.
func (ws *workers) collect() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, wk := range ws.mu.ws {
		if !wk.busy {
			continue
		}
		select {
		case <-wk.out:
			wk.busy = false
			ws.w.tracef("end %s/w%d", ws.name, wk.idx)
		default:
		}
	}
}

// resume lets parked goroutine i go on.
func (w *world) resume(i int) {
	pk := w.parked[i]
	w.parked = append(w.parked[:i], w.parked[i+1:]...)
	w.tracef("resume %s", pk.what)
	w.count("resume")
	if pk.onResume != nil {
		pk.onResume()
	}
	close(pk.ch)
}
