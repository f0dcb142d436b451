// The faults: a seed-chosen schedule of crashes, partitions, message
// loss, delay and duplication, slow and full disks, and placement leader
// loss; and the fate of each envelope under the faults in force.

package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/rangekv/rangekv/internal/grpcnet"
)

// raftStreamMethod carries Raft message batches between stores.
const raftStreamMethod = "/rangekv.Raft/RaftStream"

var (
	errPartitioned = errors.New("sim: partitioned")
	errLost        = errors.New("sim: message lost")
)

type faults struct {
	w *world
	// blocked holds the one-way links cut: from -> to.
	blocked map[[2]string]bool
	lossP   float64
	dupP    float64
	delay   bool
	slow    map[int]bool
	// snapHolds: by store address, the span whose incoming snapshots are
	// held there, and until when at most (races_moves.go).
	snapHolds map[string]snapHeld
}

func newFaults(w *world) *faults {
	f := &faults{w: w, blocked: map[[2]string]bool{}, slow: map[int]bool{}}
	if w.cfg.Faults {
		w.at(w.start.Add(4*time.Second), "fault", f.next)
	}
	return f
}

// fate decides when e arrives, or that it is lost, or duplicated.
func (f *faults) fate(e *grpcnet.Envelope, now time.Time) (due time.Time, fail error, dup bool) {
	rng := f.w.rng
	lat := 20*time.Microsecond + time.Duration(rng.Int64N(int64(500*time.Microsecond)))
	if f.delay && rng.IntN(3) == 0 {
		lat += time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
	}
	due = f.heldSnapshot(e, now.Add(lat))
	switch {
	case f.blocked[[2]string{e.From, e.To}] && e.ToServer, f.blocked[[2]string{e.To, e.From}] && !e.ToServer:
		// A cut link: the connection times out a little later.
		return due.Add(time.Duration(rng.Int64N(int64(time.Second)))), errPartitioned, false
	case f.lossP > 0 && rng.Float64() < f.lossP:
		return due, errLost, false
	case f.dupP > 0 && e.Kind == grpcnet.StreamMsg && e.Method == raftStreamMethod && rng.Float64() < f.dupP:
		// Only Raft messages are duplicated (a transport may resend
		// them); TCP never duplicates a client's request.
		return due, nil, true
	}
	return due, nil, false
}

// slowDisk is how long store i's next pass waits while its disk is slow.
func (f *faults) slowDisk(i int) time.Duration {
	if !f.slow[i] {
		return 0
	}
	return time.Duration(5+f.w.rng.IntN(50)) * time.Millisecond
}

// next starts one fault, schedules its end and the next fault.
func (f *faults) next() {
	w := f.w
	if w.healed {
		return
	}
	defer w.at(w.clk.Now().Add(time.Second+time.Duration(w.rng.Int64N(int64(3*time.Second)))), "fault", f.next)
	span := 500*time.Millisecond + time.Duration(w.rng.Int64N(int64(5*time.Second)))
	end := w.clk.Now().Add(span)
	procs := f.addrs()
	switch w.rng.IntN(10) {
	case 0: // crash a store, keeping a quorum of stores up
		downs := 0
		var ups []*storeProc
		for _, p := range w.stores {
			if p.state != up {
				downs++
			} else {
				ups = append(ups, p)
			}
		}
		if downs >= (len(w.stores)-1)/2 || len(ups) == 0 {
			return
		}
		w.count("fault crash store")
		w.crashStore(ups[w.rng.IntN(len(ups))], span)
	case 1: // placement leader loss: crash a member
		var ups []*memberProc
		for _, m := range w.members {
			if m.state == up {
				ups = append(ups, m)
			}
		}
		if len(ups) < len(w.members) || len(ups) == 0 {
			return
		}
		w.count("fault crash member")
		w.crashMember(ups[w.rng.IntN(len(ups))], span)
	case 2: // isolate one process both ways
		a := procs[w.rng.IntN(len(procs))]
		w.count("fault partition")
		for _, b := range procs {
			if b != a {
				f.cut(a, b, end)
				f.cut(b, a, end)
			}
		}
		w.tracef("fault isolate %s for %s", a, span)
	case 3: // one-way cut between two processes
		a, b := procs[w.rng.IntN(len(procs))], procs[w.rng.IntN(len(procs))]
		if a == b {
			return
		}
		w.count("fault one-way")
		f.cut(a, b, end)
		w.tracef("fault cut %s->%s for %s", a, b, span)
	case 4:
		f.lossP = 0.05 + 0.25*w.rng.Float64()
		w.count("fault loss")
		w.tracef("fault loss %.2f for %s", f.lossP, span)
		w.at(end, "loss ends", func() { f.lossP = 0 })
	case 5:
		f.delay = true
		w.count("fault delay")
		w.tracef("fault delay for %s", span)
		w.at(end, "delay ends", func() { f.delay = false })
	case 6:
		f.dupP = 0.05 + 0.2*w.rng.Float64()
		w.count("fault duplicate")
		w.tracef("fault duplicate %.2f for %s", f.dupP, span)
		w.at(end, "duplication ends", func() { f.dupP = 0 })
	case 7:
		i := w.rng.IntN(len(w.stores))
		f.slow[i] = true
		w.count("fault slow disk")
		w.tracef("fault slow disk s%d for %s", i+1, span)
		w.at(end, "slow disk ends", func() { delete(f.slow, i) })
	case 8:
		p := w.stores[w.rng.IntN(len(w.stores))]
		p.diskFull.Store(true)
		w.count("fault disk full")
		w.tracef("fault disk full s%d for %s", p.idx+1, span)
		w.at(end, "disk full ends", func() { p.diskFull.Store(false) })
	case 9: // a store down while its ranges (races.go) or one range's
		// every replica (races_moves.go) move off it
		if !f.moveRangeAway() {
			f.moveAway(span)
		}
	}
}

func (f *faults) cut(a, b string, until time.Time) {
	k := [2]string{a, b}
	f.blocked[k] = true
	f.w.at(until, fmt.Sprintf("heal %s->%s", a, b), func() { delete(f.blocked, k) })
}

// addrs are the process addresses a partition can cut: stores, members and
// clients.
func (f *faults) addrs() []string {
	var out []string
	for _, p := range f.w.stores {
		out = append(out, p.addr)
	}
	for _, m := range f.w.members {
		out = append(out, m.addr)
	}
	for _, c := range f.w.clients {
		out = append(out, fmt.Sprintf("c%d:1", c.id+1))
	}
	return out
}

// heal ends every fault and restarts every process that is down; the
// workload stops and the liveness check starts.
func (w *world) heal() {
	w.healed = true
	f := w.faults
	clear(f.blocked)
	f.lossP, f.dupP, f.delay = 0, 0, false
	clear(f.slow)
	// A process started here starts in a step of its own (sim.go, Run).
	for _, p := range w.stores {
		p.diskFull.Store(false)
		p.slowUntil = time.Time{}
		if p.state == down && !p.heldDown {
			w.at(w.clk.Now(), fmt.Sprintf("restart s%d", p.idx+1), func() { w.restartStore(p) })
		}
	}
	for _, m := range w.members {
		if m.state == down {
			w.at(w.clk.Now(), fmt.Sprintf("restart pd%d", m.id), func() {
				if m.state == down {
					w.startMember(m)
				}
			})
		}
	}
	w.tracef("healed")
}
