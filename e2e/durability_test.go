package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/router"
)

// history records every write the writers attempted and which of them were
// acknowledged. Every key is written once, with a value unique to it.
type history struct {
	mu        sync.Mutex
	attempted map[string]string // key -> value, before the request is sent
	acked     map[string]string // key -> value, after a nil error
	unknown   int               // attempts that ended in an error
}

func (h *history) attempt(k, v string) {
	h.mu.Lock()
	h.attempted[k] = v
	h.mu.Unlock()
}

func (h *history) done(k, v string, err error) {
	h.mu.Lock()
	if err == nil {
		h.acked[k] = v
	} else {
		h.unknown++
	}
	h.mu.Unlock()
}

// load runs writers putting fresh keys until ctx ends. acks counts the
// acknowledged puts.
func load(ctx context.Context, cl *router.Client, h *history, cycle, writers int, acks *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				k := fmt.Sprintf("dur/c%d/w%d/%06d", cycle, w, seq)
				v := fmt.Sprintf("value-c%d-w%d-%d-%d", cycle, w, seq, time.Now().UnixNano())
				h.attempt(k, v)
				opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := cl.Put(opCtx, []byte(k), []byte(v))
				cancel()
				h.done(k, v, err)
				if err == nil {
					acks.Add(1)
				}
			}
		})
	}
	return &wg
}

// verify reads every key under dur/ and checks: every acknowledged write
// is there with its value; every pair there is a write that was attempted
// (acknowledged or not), with the value attempted.
func verify(t *testing.T, cl *router.Client, h *history) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pairs, err := cl.Scan(ctx, []byte("dur/"), []byte("dur0"), 0)
	if err != nil {
		t.Fatalf("scan after restart: %v", err)
	}
	got := make(map[string]string, len(pairs))
	for _, p := range pairs {
		got[string(p.Key)] = string(p.Value)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	lost := 0
	for k, v := range h.acked {
		if gv, ok := got[k]; !ok || gv != v {
			if lost < 10 {
				t.Errorf("acknowledged write lost: %s = %q, found %q (present: %v)", k, v, gv, ok)
			}
			lost++
		}
	}
	phantom := 0
	for k, v := range got {
		if av, ok := h.attempted[k]; !ok || av != v {
			if phantom < 10 {
				t.Errorf("value never written: %s = %q (attempted: %q, %v)", k, v, av, ok)
			}
			phantom++
		}
	}
	if lost > 0 || phantom > 0 {
		t.Fatalf("%d acknowledged writes lost, %d values never written, of %d acknowledged and %d attempted",
			lost, phantom, len(h.acked), len(h.attempted))
	}
	t.Logf("verified: %d acknowledged writes present, %d keys in all, %d attempts without acknowledgement",
		len(h.acked), len(got), h.unknown)
}

// TestDurabilityKillAll: a writer loop through the Go router records every
// acknowledged put; all three stores are killed with SIGKILL mid-load,
// restarted from their data directories, and every acknowledged write
// must be there with its value, and no value that was never written.
// 2 cycles with -short, 5 otherwise.
func TestDurabilityKillAll(t *testing.T) {
	cycles := 5
	if testing.Short() {
		cycles = 2
	}
	c := startCluster(t, 3)
	h := &history{attempted: map[string]string{}, acked: map[string]string{}}
	for cycle := range cycles {
		c.waitWritable(30*time.Second, c.stores...)
		cl, err := router.NewStatic(c.addrs(), router.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cycle > 0 {
			verify(t, cl, h)
		}

		ctx, stop := context.WithCancel(context.Background())
		var acks atomic.Int64
		wg := load(ctx, cl, h, cycle, 4, &acks)
		want := int64(100 + 37*cycle) // vary the point of the crash
		waitFor(t, fmt.Sprintf("%d acknowledged writes in cycle %d", want, cycle), 60*time.Second, func() bool {
			c.checkRunning(c.stores...)
			return acks.Load() >= want
		})
		for _, p := range c.stores { // all at once, writes in flight
			p.cmd.Process.Kill()
		}
		for _, p := range c.stores {
			p.kill9() // waits until reaped
		}
		stop()
		wg.Wait()
		cl.Close()
		t.Logf("cycle %d: killed all stores after %d acknowledged writes this cycle", cycle, acks.Load())

		for _, p := range c.stores {
			p.start()
		}
	}
	c.waitWritable(30*time.Second, c.stores...)
	cl, err := router.NewStatic(c.addrs(), router.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	verify(t, cl, h)
}
