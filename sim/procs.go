// The simulated processes: stores and placement members on their own
// MemFS, clock view, randomness and network node. Opening, starting and
// stopping a process can wait on the network, so each runs on a goroutine
// of its own and reports back through the world's mailbox.

package sim

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	raftpb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/store"
)

// procState is where a process is in its life.
type procState int

const (
	down     procState = iota // not running (never started, or crashed)
	booting                   // Open/Start running
	up                        // serving
	stopping                  // Stop running after a crash
)

func (s procState) String() string {
	return [...]string{"down", "booting", "up", "stopping"}[s]
}

// lockedRand is a seeded ChaCha8 stream safe for concurrent use
// (Config.Rand).
type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func newLockedRand(seed uint64, salt string) *lockedRand {
	var k [32]byte
	for i := range 8 {
		k[i] = byte(seed >> (8 * i))
	}
	copy(k[8:], salt)
	return &lockedRand{r: rand.NewChaCha8(k)}
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// driftClock is a process's view of the simulated clock: offset from it
// and running at rate (durations it asks for are scaled by 1/rate), the
// clock drift the faults allow.
type driftClock struct {
	m     *clock.Manual
	start time.Time
	off   time.Duration
	rate  float64
}

func (c *driftClock) Now() time.Time {
	el := c.m.Now().Sub(c.start)
	return c.start.Add(c.off + time.Duration(float64(el)*c.rate))
}
func (c *driftClock) real(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	r := time.Duration(float64(d) / c.rate)
	if r <= 0 {
		r = 1
	}
	return r
}
func (c *driftClock) NewTicker(d time.Duration) clock.Ticker {
	return &driftTicker{Ticker: c.m.NewTicker(c.real(d)), c: c}
}
func (c *driftClock) NewTimer(d time.Duration) clock.Timer {
	return &driftTimer{Timer: c.m.NewTimer(c.real(d)), c: c}
}
func (c *driftClock) After(d time.Duration) <-chan time.Time { return c.m.After(c.real(d)) }
func (c *driftClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return &driftTimer{Timer: c.m.AfterFunc(c.real(d), f), c: c}
}

type driftTicker struct {
	clock.Ticker
	c *driftClock
}

func (t *driftTicker) Reset(d time.Duration) { t.Ticker.Reset(t.c.real(d)) }

type driftTimer struct {
	clock.Timer
	c *driftClock
}

func (t *driftTimer) Reset(d time.Duration) bool { return t.Timer.Reset(t.c.real(d)) }

// storeProc is one simulated store process.
type storeProc struct {
	idx   int // 0-based; the process is "s<idx+1>"
	addr  string
	fs    *vfs.MemFS
	clk   *driftClock
	state procState
	st    *store.Store
	run   *workers
	// incarnation counts its starts (each start gets fresh randomness).
	incarnation int
	// diskFull makes its free space read 0 while set.
	diskFull atomic.Bool
	// slowUntil: while the simulated time is before it, the store's
	// passes wait (a slow disk).
	slowUntil time.Time
	// heldDown: a fault restarts it (races_moves.go), healing does not.
	heldDown bool
	storeID  atomic.Uint64
}

// memberProc is one simulated placement member.
type memberProc struct {
	id          uint64
	addr        string
	fs          *vfs.MemFS
	clk         *driftClock
	state       procState
	srv         *placement.Server
	incarnation int
}

func (w *world) newClock(rng *rand.Rand) *driftClock {
	c := &driftClock{m: w.clk, start: w.clk.Now(), rate: 1}
	if w.cfg.ClockDrift > 0 {
		c.off = time.Duration(rng.Int64N(int64(2*w.cfg.ClockOffset)+1)) - w.cfg.ClockOffset
		c.rate = 1 + (rng.Float64()*2-1)*w.cfg.ClockDrift
	}
	return c
}

func (w *world) logger(name string) *slog.Logger {
	if w.cfg.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(w.cfg.Log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("proc", name)
}

// startMember opens and starts member m on a goroutine.
func (w *world) startMember(m *memberProc) {
	m.state = booting
	m.incarnation++
	cfg := placement.Defaults()
	cfg.ID = m.id
	cfg.Addr = m.addr
	cfg.InitialCluster = map[uint64]string{}
	for _, o := range w.members {
		cfg.InitialCluster[o.id] = o.addr
	}
	cfg.DataDir = "pd"
	cfg.Logger = w.logger(fmt.Sprintf("pd%d", m.id))
	cfg.Clock = m.clk
	cfg.Rand = newLockedRand(w.cfg.Seed, fmt.Sprintf("pd%d/%d", m.id, m.incarnation))
	cfg.FS = m.fs
	cfg.Network = w.net.Node(m.addr)
	name := fmt.Sprintf("pd%d", m.id)
	w.spawn(func() {
		srv, err := placement.Open(cfg)
		if err == nil {
			if err = srv.Start(); err != nil {
				srv.Stop()
			}
		}
		w.post("boot "+name, func() {
			if err != nil {
				w.failf("%s: start: %v", name, err)
				m.state = down
				return
			}
			m.srv, m.state = srv, up
			w.tracef("up %s", name)
		})
	})
}

// startStore opens and starts store p on a goroutine.
func (w *world) startStore(p *storeProc) {
	p.state = booting
	p.incarnation++
	cfg := store.Defaults()
	cfg.Addr = p.addr
	cfg.AdvertiseAddr = p.addr
	cfg.DataDir = "data"
	for _, m := range w.members {
		cfg.Placement = append(cfg.Placement, m.addr)
	}
	cfg.Workers = 2
	cfg.CacheBytes = 8 << 20
	cfg.MemTableBytes = 256 << 10 // store.Config.MemTableBytes
	cfg.MinFreeBytes = 1 << 20
	cfg.Logger = w.logger(fmt.Sprintf("s%d", p.idx+1))
	cfg.Clock = p.clk
	cfg.Rand = newLockedRand(w.cfg.Seed, fmt.Sprintf("s%d/%d", p.idx+1, p.incarnation))
	cfg.FS = p.fs
	cfg.Network = w.net.Node(p.addr)
	p.run = newWorkers(w, fmt.Sprintf("s%d/%d", p.idx+1, p.incarnation))
	cfg.Runner = p.run
	cfg.PassPoints = p.run
	cfg.Sizes = store.LogicalSizes{} // Pebble's own figures differ between runs (store/store_sizes.go)
	cfg.Knobs = &store.TestingKnobs{
		FreeSpace: func() (uint64, error) {
			if p.diskFull.Load() {
				return 0, nil
			}
			return 100 << 30, nil
		},
		ApplyingEntry: func(rangeID uint64, e *raftpb.Entry) { w.entries.record(p.idx, rangeID, e) },
	}
	name := fmt.Sprintf("s%d", p.idx+1)
	w.spawn(func() {
		st, err := store.Open(cfg)
		if err == nil {
			if err = st.Start(); err != nil {
				st.Stop()
			}
		}
		w.post("boot "+name, func() {
			if err != nil {
				// A store that cannot join now (placement down) is retried.
				p.state = down
				w.tracef("boot %s failed: %v", name, errClass(err))
				w.at(w.clk.Now().Add(time.Second), "restart "+name, func() { w.restartStore(p) })
				return
			}
			p.st, p.state = st, up
			p.storeID.Store(st.StoreID())
			w.tracef("up %s store %d", name, st.StoreID())
		})
	})
}

// crashStore crashes p: its network node goes down, its disk keeps only
// what was synced, and its goroutines are stopped (what they do after the
// crash reaches no one). It restarts after downFor.
func (w *world) crashStore(p *storeProc, downFor time.Duration) {
	st := p.st
	p.st, p.state = nil, stopping
	p.fs = w.crash(fmt.Sprintf("s%d", p.idx+1), p.addr, p.fs, downFor, st.Stop,
		func() { p.state = down }, func() { w.restartStore(p) })
}

// crashMember crashes placement member m; it restarts after downFor.
func (w *world) crashMember(m *memberProc, downFor time.Duration) {
	srv := m.srv
	m.srv, m.state = nil, stopping
	m.fs = w.crash(fmt.Sprintf("pd%d", m.id), m.addr, m.fs, downFor, srv.Stop,
		func() { m.state = down }, func() {
			if m.state == down {
				w.startMember(m)
			}
		})
}

// crash takes the process at addr off the network and returns what its
// disk fs keeps: what was synced and a seed-chosen share of the rest. It
// stops the process on a goroutine (stop); then stopped runs and restart
// is scheduled downFor later.
func (w *world) crash(name, addr string, fs *vfs.MemFS, downFor time.Duration, stop, stopped, restart func()) *vfs.MemFS {
	w.net.Down(addr)
	kept := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: w.rng.IntN(101), RNG: rand.New(rand.NewPCG(w.rng.Uint64(), 0))})
	w.tracef("crash %s for %s", name, downFor)
	w.spawn(func() {
		stop()
		w.post("stopped "+name, func() {
			stopped()
			w.at(w.clk.Now().Add(downFor), "restart "+name, restart)
		})
	})
	return kept
}

// restartStore starts p unless something (healing) already did.
func (w *world) restartStore(p *storeProc) {
	if p.state == down {
		w.startStore(p)
	}
}

func vfs0() *vfs.MemFS { return vfs.NewCrashableMem() }
