package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
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

	counters map[string]*counterHist  // one per writer, incremented by 1
	regs     map[string]*registerHist // one per writer, overwritten with large values
	batches  map[string]*registerHist // one per writer: batchKeys keys written by one atomic batch
}

// batchKeys is how many keys each atomic batch writes (adjacent keys, so
// one range holds them all and the batch is atomic).
const batchKeys = 4

// counterHist is one writer's counter: the last acknowledged result and
// the increments since it whose outcome is unknown. Each unknown Incr
// applied 0 or 1 times, never 2: the next result (or the value after a
// crash) is last+1 ... last+1+unknown.
type counterHist struct {
	last    int64
	unknown int64
	acked   int
}

// registerHist is one writer's register of large values: the last
// acknowledged value and the values attempted after it without an
// acknowledgement. After a crash it holds exactly one of those, whole.
type registerHist struct {
	last    string
	pending []string
	acked   int
}

func newHistory() *history {
	return &history{attempted: map[string]string{}, acked: map[string]string{},
		counters: map[string]*counterHist{}, regs: map[string]*registerHist{}, batches: map[string]*registerHist{}}
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

// bigValue is a register value: a unique token repeated to 64 KiB, so
// that a torn or mixed value cannot equal any value written.
func bigValue(token string) string {
	return strings.Repeat(token+"|", 64<<10/(len(token)+1))
}

// incr runs one Incr on writer w's counter and checks its result against
// the counter's history: the increments in doubt applied 0 or 1 times.
func (h *history) incr(ctx context.Context, t *testing.T, cl *router.Client, w int) error {
	k := fmt.Sprintf("durc/w%d", w)
	opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	n, err := cl.Incr(opCtx, []byte(k), 1)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.counters[k]
	if err != nil {
		c.unknown++
		return err
	}
	if n < c.last+1 || n > c.last+1+c.unknown {
		t.Errorf("counter %s: Incr returned %d after %d with %d increments in doubt: an increment was lost or applied twice", k, n, c.last, c.unknown)
	}
	c.last, c.unknown = n, 0
	c.acked++
	return nil
}

// overwrite puts a fresh large value into writer w's register.
func (h *history) overwrite(ctx context.Context, cl *router.Client, w int, token string) error {
	k := fmt.Sprintf("durv/w%d", w)
	v := bigValue(token)
	h.mu.Lock()
	h.regs[k].pending = append(h.regs[k].pending, v)
	h.mu.Unlock()
	opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := cl.Put(opCtx, []byte(k), []byte(v))
	cancel()
	if err == nil {
		h.mu.Lock()
		r := h.regs[k]
		r.last, r.pending = v, nil
		r.acked++
		h.mu.Unlock()
	}
	return err
}

// batch writes token to all batchKeys keys of writer w's group in one
// atomic batch (each key gets token/i).
func (h *history) batch(ctx context.Context, cl *router.Client, w int, token string) error {
	g := fmt.Sprintf("durb/w%d", w)
	pairs := make([]router.KeyValue, batchKeys)
	for i := range pairs {
		pairs[i] = router.KeyValue{Key: []byte(fmt.Sprintf("%s/%d", g, i)), Value: []byte(fmt.Sprintf("%s/%d", token, i))}
	}
	h.mu.Lock()
	h.batches[g].pending = append(h.batches[g].pending, token)
	h.mu.Unlock()
	opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := cl.BatchPut(opCtx, pairs)
	cancel()
	if err == nil {
		h.mu.Lock()
		b := h.batches[g]
		b.last, b.pending = token, nil
		b.acked++
		h.mu.Unlock()
	}
	return err
}

// load runs writers until ctx ends; each puts fresh keys, increments its
// counter and overwrites its register in turn. acks counts the
// acknowledged operations.
func load(ctx context.Context, t *testing.T, cl *router.Client, h *history, cycle, writers int, acks *atomic.Int64) *sync.WaitGroup {
	h.mu.Lock()
	for w := range writers {
		if h.counters[fmt.Sprintf("durc/w%d", w)] == nil {
			h.counters[fmt.Sprintf("durc/w%d", w)] = &counterHist{}
			h.regs[fmt.Sprintf("durv/w%d", w)] = &registerHist{}
			h.batches[fmt.Sprintf("durb/w%d", w)] = &registerHist{}
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				var err error
				switch seq % 4 {
				case 0:
					k := fmt.Sprintf("dur/c%d/w%d/%06d", cycle, w, seq)
					v := fmt.Sprintf("value-c%d-w%d-%d-%d", cycle, w, seq, time.Now().UnixNano())
					h.attempt(k, v)
					opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
					err = cl.Put(opCtx, []byte(k), []byte(v))
					cancel()
					h.done(k, v, err)
				case 1:
					err = h.incr(ctx, t, cl, w)
				case 2:
					err = h.overwrite(ctx, cl, w, fmt.Sprintf("c%d-w%d-%d", cycle, w, seq))
				case 3:
					err = h.batch(ctx, cl, w, fmt.Sprintf("c%d-w%d-%d", cycle, w, seq))
				}
				if err == nil {
					acks.Add(1)
				}
			}
		})
	}
	return &wg
}

// verifyInDoubt checks the counters and registers after a crash: each
// counter is its last acknowledged value plus at most one per increment in
// doubt; each register holds, whole, its last acknowledged value or one
// attempted after it. It then settles the history on what it read.
func verifyInDoubt(t *testing.T, cl *router.Client, h *history) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	inDoubtIncr, inDoubtPut := 0, 0
	for k, c := range h.counters {
		v, found, err := cl.Get(ctx, []byte(k))
		if err != nil {
			t.Fatalf("get %s after restart: %v", k, err)
		}
		var n int64
		if found {
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				t.Fatalf("counter %s holds %q", k, v)
			}
		}
		if n < c.last || n > c.last+c.unknown {
			t.Errorf("counter %s = %d after restart; acknowledged up to %d with %d increments in doubt", k, n, c.last, c.unknown)
		}
		inDoubtIncr += int(c.unknown)
		c.last, c.unknown = n, 0
	}
	for k, r := range h.regs {
		v, found, err := cl.Get(ctx, []byte(k))
		if err != nil {
			t.Fatalf("get %s after restart: %v", k, err)
		}
		got := string(v)
		ok := (!found && r.last == "") || (found && got == r.last)
		for _, p := range r.pending {
			ok = ok || (found && got == p)
		}
		if !ok {
			t.Errorf("register %s after restart holds %d bytes (%.40q...) found=%v: neither the last acknowledged value nor one in doubt, whole",
				k, len(got), got, found)
		}
		inDoubtPut += len(r.pending)
		r.last, r.pending = got, nil
	}
	// Each batch group holds one batch's writes on every key, or none:
	// the last acknowledged batch or one in doubt, never a mix.
	inDoubtBatch := 0
	for g, b := range h.batches {
		tokens := map[string]bool{}
		for i := range batchKeys {
			v, found, err := cl.Get(ctx, []byte(fmt.Sprintf("%s/%d", g, i)))
			if err != nil {
				t.Fatalf("get %s/%d after restart: %v", g, i, err)
			}
			tok := ""
			if found {
				var ok bool
				if tok, ok = strings.CutSuffix(string(v), fmt.Sprintf("/%d", i)); !ok {
					t.Errorf("batch key %s/%d holds %q, which no batch wrote there", g, i, v)
				}
			}
			tokens[tok] = true
		}
		if len(tokens) != 1 {
			t.Errorf("batch group %s after restart holds a mix of batches %v: a batch was half applied", g, tokens)
			continue
		}
		var got string
		for tok := range tokens {
			got = tok
		}
		ok := got == b.last
		for _, p := range b.pending {
			ok = ok || got == p
		}
		if !ok {
			t.Errorf("batch group %s after restart holds batch %q: neither the last acknowledged one (%q) nor one in doubt", g, got, b.last)
		}
		inDoubtBatch += len(b.pending)
		b.last, b.pending = got, nil
	}
	t.Logf("verified %d counters, %d registers and %d batch groups (%d increments, %d overwrites and %d batches were in doubt)",
		len(h.counters), len(h.regs), len(h.batches), inDoubtIncr, inDoubtPut, inDoubtBatch)
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

// TestDurabilityKillAll: writers through the Go router put fresh keys,
// increment counters and overwrite 64 KiB values, recording what was
// acknowledged and what is in doubt; all three stores are killed with
// SIGKILL mid-load, restarted from their data directories, and: every
// acknowledged write is there with its value, no value appears that was
// never written, an increment in doubt applied at most once, and a value
// in doubt is either the old or the new one, whole.
// 3 cycles with -short, 8 otherwise.
func TestDurabilityKillAll(t *testing.T) {
	cycles := 8
	if testing.Short() {
		cycles = 3
	}
	c := startCluster(t, 3)
	h := newHistory()
	for cycle := range cycles {
		c.waitWritable(30*time.Second, c.stores...)
		cl, err := router.NewStatic(c.addrs(), router.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cycle > 0 {
			verify(t, cl, h)
			verifyInDoubt(t, cl, h)
		}

		ctx, stop := context.WithCancel(context.Background())
		var acks atomic.Int64
		wg := load(ctx, t, cl, h, cycle, 4, &acks)
		want := int64(100 + 37*cycle) // vary the point of the crash
		waitFor(t, fmt.Sprintf("%d acknowledged writes in cycle %d", want, cycle), 60*time.Second, func() bool {
			c.checkRunning(c.stores...)
			return acks.Load() >= want
		})
		for _, p := range c.stores { // all at once, writes in flight
			p.signal(os.Kill)
		}
		for _, p := range c.stores {
			p.kill9() // waits until reaped
		}
		stop()
		wg.Wait()
		cl.Close()
		t.Logf("cycle %d/%d: killed all stores after %d acknowledged operations this cycle", cycle+1, cycles, acks.Load())

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
	verifyInDoubt(t, cl, h)
	incrs, overwrites := 0, 0
	for _, c := range h.counters {
		incrs += c.acked
	}
	for _, r := range h.regs {
		overwrites += r.acked
	}
	batches := 0
	for _, b := range h.batches {
		batches += b.acked
	}
	t.Logf("%d kill -9 cycles of all stores survived: %d acknowledged puts of fresh keys, %d increments, %d overwrites of 64 KiB values, %d atomic batches of %d keys",
		cycles, len(h.acked), incrs, overwrites, batches, batchKeys)
}
