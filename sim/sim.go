// The world and its scheduler: one seeded loop that picks the next step
// (a pass, a delivery, a timer, a scheduled event) among those due now,
// runs it, and waits until every goroutine it woke has blocked again.

package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/router"
)

// Config is one simulation run.
type Config struct {
	// Seed decides everything.
	Seed uint64
	// Stores (3 to 7) and Members (1 or 3).
	Stores, Members int
	// Duration is the simulated time of the workload and faults; after
	// it the faults heal and the run checks liveness within HealBound:
	// Heal plus the time placement's limits need to re-replicate every
	// range.
	Duration, Heal time.Duration
	// Clients run operations; Keys is the key space they share.
	Clients, Keys int
	// Ranges: the key space is split into this many ranges at the start
	// (a failed split is tried again until it succeeds or the run heals).
	Ranges int
	// Faults turns the fault schedule on.
	Faults bool
	// ClockOffset and ClockDrift bound each process's clock: a fixed
	// offset and a rate within 1±ClockDrift (0: exact clocks).
	ClockOffset time.Duration
	ClockDrift  float64
	// Interleave lets the seed stop a pass at a pass point
	// (store.PassPoint) and run other steps before it goes on, a pass of
	// the same store on its other worker among them. On in Defaults for
	// even seeds (half the CI seeds).
	Interleave bool
	// Preempt makes a goroutine of a store yield to the Go scheduler
	// (runtime.Gosched) at every pass point, after every wake-up it
	// hands the simulator and when woken from a wait for a replica lock,
	// as one the scheduler preempted there would: the goroutines it woke
	// run first. A seed's trace must be the same with it as without
	// (TestSimPreempted; soaks with -sim.twice -sim.preempt).
	Preempt bool
	// TraceMessages adds each message's text to its trace line.
	TraceMessages bool
	// Log receives every process's log (nil: discarded); Trace every
	// step's line (nil: only hashed).
	Log, Trace io.Writer
}

// Defaults is a run of 6 ranges, 8 simulated seconds of workload and
// faults, then up to HealBound (36 s) to heal; even seeds interleave the
// stores' workers. The cluster's shape is the seed's (Shape).
func Defaults(seed uint64) Config {
	stores, members := Shape(seed)
	return Config{Seed: seed, Stores: stores, Members: members, Duration: 8 * time.Second, Heal: 30 * time.Second,
		Clients: 3, Keys: 24, Ranges: 6, Faults: true, ClockOffset: 50 * time.Millisecond, ClockDrift: 0.001,
		Interleave: seed%2 == 0}
}

// Shape is the stores and placement members a seed runs: 3 stores for
// three seeds in four (the fewest that keep a quorum through one store's
// fault, and the cheapest), 4 to 7 for the fourth (where a store holds
// only some ranges: snapshots to new stores, moves off a stopped store);
// 3 placement members for one seed in three (placement leader loss and
// its elections), else 1. Drawn from a mix of the seed's bits, so the
// shape does not follow the interleaving's parity.
func Shape(seed uint64) (stores, members int) {
	mix := (seed + 1) * 0x9E3779B97F4A7C15
	stores = 3
	if mix>>62 == 0 {
		stores = 4 + int(mix>>32%4)
	}
	members = 1
	if (mix>>16)%3 == 0 {
		members = 3
	}
	return stores, members
}

// HealBound is how long after healing every range must have a leader and
// all its voters: Heal, plus the pace of placement's re-replication for
// the worst case, every range missing all its replicas but one. Placement
// starts at most MaxOperatorsPerStore operators per store per
// ScheduleInterval, and a range needs one operator per missing replica,
// so Ranges*(replicas-1) operators take that many intervals over the
// limit. (A 100-range run without faults settled 85 s after the workload
// ended; its bound is 130 s.)
func (c Config) HealBound() time.Duration {
	pd := placement.Defaults()
	missing := c.Ranges * (min(pd.Replicas, c.Stores) - 1)
	return c.Heal + time.Duration(missing)*pd.ScheduleInterval/time.Duration(pd.MaxOperatorsPerStore)
}

// Validate reports the first field out of its limits.
func (c Config) Validate() error {
	switch {
	case c.Stores < 3 || c.Stores > 7:
		return fmt.Errorf("sim: Stores must be 3 to 7, got %d", c.Stores)
	case c.Members != 1 && c.Members != 3:
		return fmt.Errorf("sim: Members must be 1 or 3, got %d", c.Members)
	case c.Duration <= 0 || c.Heal <= 0:
		return fmt.Errorf("sim: Duration and Heal must be positive, got %s and %s", c.Duration, c.Heal)
	case c.Keys < 1 || c.Clients < 0 || c.Ranges < 1:
		return fmt.Errorf("sim: need Keys >= 1, Clients >= 0, Ranges >= 1, got %d, %d, %d", c.Keys, c.Clients, c.Ranges)
	}
	return nil
}

// Result is what a run did and found.
type Result struct {
	Seed      uint64
	TraceHash uint64
	Steps     int
	SimTime   time.Duration
	// Wall is the run's wall-clock time (set by the caller that timed it).
	Wall time.Duration
	// Failures are the broken invariants, empty when the run passed.
	Failures []string
	Verdict  histcheck.Verdict
	History  histcheck.History
	// Counts are the steps, operations and faults by kind.
	Counts map[string]int
}

// world is one run's state. Everything but the mailbox and the wire's
// inbox belongs to the simulator's goroutine.
type world struct {
	cfg     Config
	rng     *rand.Rand
	clk     *clock.Manual
	start   time.Time
	wire    *wire
	net     *grpcnet.Direct
	stores  []*storeProc
	members []*memberProc
	clients []*client
	rec     *histcheck.Recorder

	events []*event
	evSeq  uint64

	mailMu sync.Mutex
	mail   []mail

	// parked are the goroutines stopped at a pass point, in the order
	// they stopped; busy the channels of those waiting for a replica lock,
	// wakes the peer senders' wake-ups deferred to the end of the step.
	parked []*parked
	busyMu sync.Mutex
	busy   []chan struct{}
	wakes  []func()

	hash     hash.Hash64
	steps    int
	failures []string
	counts   map[string]int
	live     atomic.Int64 // goroutines spawned and not ended
	// ctx is every operation's parent: finish cancels it.
	ctx     context.Context
	cancel  context.CancelFunc
	healed  bool
	closers []func()
	faults  *faults
	checks  *checker
	entries *entries // what each range applied at each index
	gc      gcState
	lag     splitLag // the lagging split under way (races_split.go)
	// lagCuts: which of the lagging split's isolations cut each link
	// (races_split.go).
	lagCuts map[[2]string]*bool
	// livelocked: maxStepsAtInstant steps ran at one simulated instant
	// (the run failed and ends); mostAtInstant is the most so far.
	livelocked    bool
	mostAtInstant int
	line          []byte // tracef's buffer
	// admin is the operator's SDK client (nil until the workload is set
	// up).
	admin *router.Client
}

// event is something scheduled at a simulated time.
type event struct {
	at   time.Time
	seq  uint64
	name string
	do   func()
}

// mail is a goroutine's report to the simulator, applied after the step.
type mail struct {
	key string
	fn  func()
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run runs one simulation. It must be called inside a testing/synctest
// bubble (synctest.Test), after cryptotest.SetGlobalRandom with the seed.
func Run(cfg Config) Result {
	if err := cfg.Validate(); err != nil {
		return Result{Seed: cfg.Seed, Failures: []string{err.Error()}}
	}
	w := &world{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), clk: clock.NewManual(epoch), start: epoch,
		wire: &wire{calls: map[*grpcnet.Call]*callState{}}, hash: fnv.New64a(), counts: map[string]int{}, gc: newGCState(),
		lagCuts: map[[2]string]*bool{}}
	w.net = grpcnet.NewDirect(w.wire)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.rec = histcheck.NewRecorderOn(w.clk)
	w.checks = newChecker(w)
	w.entries = newEntries(w.failf)
	for i := range cfg.Members {
		w.members = append(w.members, &memberProc{id: uint64(i + 1), addr: fmt.Sprintf("pd%d:7401", i+1), fs: vfs0(), clk: w.newClock(w.rng)})
	}
	for i := range cfg.Stores {
		w.stores = append(w.stores, &storeProc{idx: i, addr: fmt.Sprintf("s%d:7501", i+1), fs: vfs0(), clk: w.newClock(w.rng)})
	}
	// Each process starts in a step of its own: opening one creates its
	// Raft groups, which draw their election jitter from raft's one global
	// source, and two opens in one step would draw in the Go scheduler's
	// order.
	for _, m := range w.members {
		w.at(w.start, fmt.Sprintf("start pd%d", m.id), func() { w.startMember(m) })
	}
	for _, p := range w.stores {
		w.at(w.start, fmt.Sprintf("start s%d", p.idx+1), func() { w.startStore(p) })
	}
	w.setupWorkload()
	w.faults = newFaults(w)
	end := w.start.Add(cfg.Duration)
	w.at(end, "heal", w.heal)
	// Settled is asked at most every 200 simulated ms: it reads every
	// replica's state (at 100 ranges, asked every 50 ms while placement
	// re-replicated for 85 s, it took a fifth of that phase's CPU).
	var lastAsked time.Time
	settled := func() bool {
		if !w.healed || w.clk.Now().Sub(lastAsked) < 200*time.Millisecond {
			return false
		}
		lastAsked = w.clk.Now()
		return w.checks.settled()
	}
	if !w.runUntil(end.Add(cfg.HealBound()), settled) {
		w.failf("liveness: the cluster did not settle within %s of healing: %s", cfg.HealBound(), w.checks.unsettled())
	}
	w.checks.observe()
	w.finish()
	w.countLogGrowth()
	res := Result{Seed: cfg.Seed, TraceHash: w.hash.Sum64(), Steps: w.steps, SimTime: w.clk.Now().Sub(w.start),
		Failures: w.failures, History: w.rec.History(), Counts: w.counts}
	res.Verdict = w.checks.verdict
	return res
}

// maxStepsAtInstant bounds the steps the scheduler runs without the
// simulated time passing: more is a livelock (a store whose every pass
// makes work for another pass at once: leave-joint proposed on every
// pass, issue 15 item 4), and the run fails and ends. The 200 CI seeds
// never ran more than 128 (docs/reliability.md).
const maxStepsAtInstant = 20000

// runUntil runs steps until done holds (it is asked after every step)
// or the clock reaches deadline, and reports whether done held.
func (w *world) runUntil(deadline time.Time, done func() bool) bool {
	var ready []*lane
	var passes []int
	idle := make([]bool, len(w.stores))
	checkAfter := noCheck
	var last time.Time
	atInstant := 0
	for {
		w.settle()
		w.collect()
		w.checks.afterPass(checkAfter)
		checkAfter = noCheck
		if done() {
			return true
		}
		now := w.clk.Now()
		if !now.Before(deadline) {
			return false
		}
		if !now.Equal(last) {
			last, atInstant = now, 0
		}
		atInstant++
		w.mostAtInstant = max(w.mostAtInstant, atInstant)
		if atInstant > maxStepsAtInstant {
			if !w.livelocked {
				w.livelocked = true
				w.failf("livelock: %d steps at %s without simulated time passing", atInstant, now.Sub(w.start))
			}
			return true
		}
		// The candidates due now: wire lanes, the next timer, events,
		// passes of stores not known to be idle.
		ready = w.wire.ready(now, ready[:0])
		nTimer := 0
		if t, ok := w.clk.NextDeadline(); ok && !t.After(now) {
			nTimer = 1
		}
		nEvents := 0
		for nEvents < len(w.events) && !w.events[nEvents].at.After(now) {
			nEvents++
		}
		passes = passes[:0]
		for i, p := range w.stores {
			if p.state == up && !idle[i] && !now.Before(p.slowUntil) && p.run.idle() != nil {
				passes = append(passes, i)
			}
		}
		var resumes []int
		for i, pk := range w.parked {
			if !pk.due.After(now) {
				resumes = append(resumes, i)
			}
		}
		n := len(ready) + nTimer + nEvents + len(passes) + len(resumes)
		if n == 0 {
			w.advance(deadline)
			clear(idle)
			continue
		}
		w.steps++
		k := w.rng.IntN(n)
		switch {
		case k < len(ready):
			w.deliver(ready[k])
			clear(idle)
		case k < len(ready)+nTimer:
			w.clk.FireNext(now)
			w.count("timer")
			clear(idle)
		case k < len(ready)+nTimer+nEvents:
			i := k - len(ready) - nTimer
			ev := w.events[i]
			w.events = slices.Delete(w.events, i, i+1)
			w.tracef("event %s", ev.name)
			ev.do()
			clear(idle)
		case k < len(ready)+nTimer+nEvents+len(passes):
			i := passes[k-len(ready)-nTimer-nEvents]
			p := w.stores[i]
			wk := p.run.idle()
			if p.run.pass(wk) {
				idle[i] = true
				w.steps--
				break
			}
			w.tracef("pass %s/w%d", p.run.name, wk.idx)
			checkAfter = i
			w.count("pass")
			if d := w.faults.slowDisk(i); d > 0 {
				p.slowUntil = now.Add(d)
			}
			clear(idle)
		default:
			w.resume(resumes[k-len(ready)-nTimer-nEvents-len(passes)])
			checkAfter = allStores
			clear(idle)
		}
		if w.steps%64 == 0 {
			w.checks.observe()
		}
	}
}

// settle waits until every goroutine but this one is blocked, then takes
// what they sent and reported, in a canonical order.
//
// The goroutines a goroutine of a store had work for (Wake: peer
// senders, waiters for an outcome, loops) are woken once every goroutine
// blocked, one at a time, each running alone. The goroutines waiting for a
// replica lock (Busy) are woken once, after everything else settled: the
// lock's holder may have gone on. Those whose lock is still held (by a
// pass stopped at a pass point) wait again until the next step's settle.
func (w *world) settle() {
	woken := false
	for {
		synctest.Wait()
		if w.runWake() {
			continue
		}
		env := w.wire.take()
		w.mailMu.Lock()
		m := w.mail
		w.mail = nil
		w.mailMu.Unlock()
		if len(env) == 0 && len(m) == 0 {
			if !woken && w.wakeBusy() {
				woken = true
				continue
			}
			for _, p := range w.stores {
				if p.run != nil {
					p.run.collect()
				}
			}
			return
		}
		w.checks.sent(env)
		now := w.clk.Now()
		for _, e := range env {
			due, fail, dup := w.faults.fate(e, now)
			w.wire.enqueue(e, due, fail, dup)
		}
		slices.SortStableFunc(m, func(a, b mail) int { return cmp.Compare(a.key, b.key) })
		for _, x := range m {
			x.fn()
		}
	}
}

// advance moves the clock to the next thing due (or end).
func (w *world) advance(end time.Time) {
	next := end
	if t, ok := w.clk.NextDeadline(); ok && t.Before(next) {
		next = t
	}
	if t, ok := w.wire.next(); ok && t.Before(next) {
		next = t
	}
	if len(w.events) > 0 && w.events[0].at.Before(next) {
		next = w.events[0].at
	}
	for _, p := range w.stores {
		if p.state == up && p.slowUntil.After(w.clk.Now()) && p.slowUntil.Before(next) {
			next = p.slowUntil
		}
	}
	for _, pk := range w.parked {
		if pk.due.Before(next) {
			next = pk.due
		}
	}
	w.clk.MoveTo(next)
}

// deliver delivers (or loses) the head of lane l.
func (w *world) deliver(l *lane) {
	p := w.wire.pop(l)
	desc := w.wire.describe(p)
	if w.cfg.TraceMessages && p.e.Msg != nil {
		desc += " " + prototext.MarshalOptions{}.Format(p.e.Msg)
	}
	if p.fail != nil {
		w.tracef("lose %s", desc)
		w.count("lost")
		p.e.Fail(p.fail)
		return
	}
	w.tracef("deliver %s", desc)
	w.count("delivered")
	w.checks.delivered(p.e)
	p.e.Deliver()
	if p.dup {
		w.count("duplicated")
		p.e.Deliver()
	}
}

// at schedules do at t (events at the same time keep their order).
func (w *world) at(t time.Time, name string, do func()) {
	w.evSeq++
	ev := &event{at: t, seq: w.evSeq, name: name, do: do}
	i, _ := slices.BinarySearchFunc(w.events, ev, func(a, b *event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	w.events = slices.Insert(w.events, i, ev)
}

// spawn runs f on a goroutine the world waits for at the end.
func (w *world) spawn(f func()) {
	w.live.Add(1)
	go func() {
		defer w.live.Add(-1)
		f()
	}()
}

// post hands fn to the simulator, which runs it after the step, ordered by
// key among the reports of the same step.
func (w *world) post(key string, fn func()) {
	w.mailMu.Lock()
	w.mail = append(w.mail, mail{key: key, fn: fn})
	w.mailMu.Unlock()
}

// tracef hashes (and writes, with Config.Trace) one trace line: the
// simulated microsecond, then the text.
func (w *world) tracef(format string, args ...any) {
	b := strconv.AppendInt(w.line[:0], w.clk.Now().Sub(w.start).Microseconds(), 10)
	b = append(b, ' ')
	b = fmt.Appendf(b, format, args...)
	b = append(b, '\n')
	w.line = b
	w.hash.Write(b)
	if w.cfg.Trace != nil {
		w.cfg.Trace.Write(b)
	}
}

func (w *world) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.tracef("FAIL %s", msg)
	w.failures = append(w.failures, msg)
}

func (w *world) count(what string) { w.counts[what]++ }

// errClass is an error's trace text without what varies between runs of
// one seed (nothing should, but addresses of pointers would).
func errClass(err error) string {
	if err == nil {
		return "ok"
	}
	var s string
	for e := err; e != nil; e = errors.Unwrap(e) {
		s = e.Error()
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
