// The end of a run: final reads of every key (for the lost-write check),
// then every process stops and every goroutine the run started ends.

package sim

import (
	"fmt"
	"time"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/histcheck"
)

// finish reads every key once more with a linearizable read, then stops
// the cluster.
func (w *world) finish() {
	if len(w.failures) == 0 && len(w.clients) > 0 {
		c := w.clients[0]
		pending := w.cfg.Keys
		// One at a time, on one goroutine: reads in flight together would
		// share mux messages in an order the simulator does not choose.
		var ps []*histcheck.Pending
		for i := range w.cfg.Keys {
			ps = append(ps, w.rec.Begin(c.id, w.key(i), histcheck.Input{Kind: histcheck.Get}))
		}
		w.spawn(func() {
			for i, p := range ps {
				key := w.key(i)
				ctx, cancel := clock.WithTimeout(w.ctx, w.clk, opTimeout)
				v, found, err := c.kv.Get(ctx, []byte(key))
				cancel()
				w.post("final "+key, func() {
					pending--
					if err != nil {
						p.End(histcheck.Output{}, histcheck.OutcomeFailed)
						w.failf("final read of %s: %v", key, err)
						return
					}
					p.End(histcheck.Output{Found: found, Value: string(v)}, histcheck.OutcomeOK)
					w.tracef("final %s -> %t %s", key, found, v)
				})
			}
		})
		w.runUntil(w.clk.Now().Add(2*opTimeout), func() bool { return pending == 0 })
	}
	w.cancel()
	for _, f := range w.closers {
		f()
	}
	// Stop: every process crashes (nothing after it matters) and stops.
	for _, p := range w.stores {
		if p.state == up {
			w.net.Down(p.addr)
			st := p.st
			p.state = stopping
			w.spawn(func() { st.Stop(); w.post("stop", func() { p.state = down }) })
		}
	}
	for _, m := range w.members {
		if m.state == up {
			w.net.Down(m.addr)
			srv := m.srv
			m.state = stopping
			w.spawn(func() { srv.Stop(); w.post("stop", func() { m.state = down }) })
		}
	}
	w.healed = true
	w.events = nil
	if !w.runUntil(w.clk.Now().Add(time.Minute), func() bool { return w.allDown() && w.live.Load() == 0 }) {
		w.failf("shutdown: a simulated minute after stop, processes %s and %d goroutines of the run still run", w.procStates(), w.live.Load())
	}
}

// allDown reports whether no process is booting, up or stopping.
func (w *world) allDown() bool {
	for _, p := range w.stores {
		if p.state != down {
			return false
		}
	}
	for _, m := range w.members {
		if m.state != down {
			return false
		}
	}
	return true
}

func (w *world) procStates() string {
	s := ""
	for _, p := range w.stores {
		s += fmt.Sprintf("s%d=%s ", p.idx+1, p.state)
	}
	for _, m := range w.members {
		s += fmt.Sprintf("pd%d=%s ", m.id, m.state)
	}
	return s
}
