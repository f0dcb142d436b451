package main

// Write throughput: a fixed number of puts from concurrent writers through
// router clients, keys spread uniformly over the split key space, with
// latency percentiles and the stores' log syncs per acknowledged write.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rangekv/rangekv/router"
)

// writersPerClient: one router.Client (its own gRPC connections) per this
// many writers, as `rangekv bench` does.
const writersPerClient = 64

type writeConfig struct {
	ops       int64         // puts to acknowledge (attempts, counting failures)
	maxTime   time.Duration // stop earlier when this passes
	writers   int
	valueSize int
	keySpread int // key prefixes r000000 .. r(keySpread-1): one per range of the split layout
	seed      uint64
}

type writeResult struct {
	layout          string
	ranges          int
	ops, errs       int64
	elapsed         time.Duration
	capped          bool
	p50, p99, p999  time.Duration
	maxLat          time.Duration
	syncs           []float64 // per store, delta of rangekv_raft_log_syncs_total
	entries         []float64 // per store, delta of rangekv_raft_entries_appended_total
	readyBatches    []float64
	firstErr        string
	rangesAfter     int
	leadersPerStore []int
	profiles        []string  // taken during the run, when asked
	storeCPU        []float64 // per store, CPU seconds during the run
	clientCPU       float64   // this program's CPU seconds during the run
	machineBusy     float64   // % of all cores busy during the run
	foreignPct      float64   // of that, % of all cores used by other processes
	foreignBefore   float64   // other work just before the run, % of all cores
	leaderChanges   float64   // rangekv_raft_leader_changes_total, all stores
	leadersBefore   []int
}

// cpuPerPut is the stores' CPU (all three) per acknowledged put.
func (w writeResult) cpuPerPut() time.Duration {
	if w.ops == 0 {
		return 0
	}
	return time.Duration(sum(w.storeCPU) / float64(w.ops) * float64(time.Second))
}

func (w writeResult) throughput() float64 { return float64(w.ops) / w.elapsed.Seconds() }

func (w writeResult) fsyncsPerWrite() float64 {
	if w.ops == 0 {
		return 0
	}
	return sum(w.syncs) / float64(w.ops)
}

func (w writeResult) entriesPerSync() float64 {
	if s := sum(w.syncs); s > 0 {
		return sum(w.entries) / s
	}
	return 0
}

func benchKey(rng *rand.Rand, spread int) []byte {
	return fmt.Appendf(nil, "r%06d/%010d", rng.IntN(spread), rng.IntN(1_000_000_000))
}

// runWrites runs the write load against c. during, when set, runs
// concurrently from 2 s into the measured run (a profile, say); runWrites
// waits for it.
func runWrites(ctx context.Context, c *cluster, layout string, ranges int, cfg writeConfig, progress io.Writer, during func(context.Context)) (writeResult, error) {
	res := writeResult{layout: layout, ranges: ranges}
	nClients := (cfg.writers + writersPerClient - 1) / writersPerClient
	var clients []*router.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range nClients {
		cl, err := router.NewStatic(c.addrs(), router.Options{Seed: cfg.seed + uint64(i) + 1})
		if err != nil {
			return res, err
		}
		clients = append(clients, cl)
	}
	value := make([]byte, cfg.valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}

	// Warm up: every client learns the range layout and leaders (not
	// measured; a put per writer).
	warm := func(g int) error {
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(g)+1<<32))
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return clients[g%len(clients)].Put(wctx, benchKey(rng, cfg.keySpread), value)
	}
	for g := range len(clients) { // one first, so that its cache loads once
		if err := warm(g); err != nil {
			return res, fmt.Errorf("warm-up put: %w", err)
		}
	}
	var wg sync.WaitGroup
	var warmErrs atomic.Int64
	for g := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if warm(g+len(clients)) != nil {
				warmErrs.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := warmErrs.Load(); n > 0 {
		fmt.Fprintf(progress, "  warm-up: %d of %d puts failed\n", n, cfg.writers)
	}

	m0, err := c.scrapeAll(ctx)
	if err != nil {
		return res, err
	}
	cpu0, err := c.cpuTicks()
	if err != nil {
		return res, err
	}
	self0, _ := procTicks(os.Getpid())
	busy0, tot0, _ := machineTicks()
	var issued, okOps, errOps atomic.Int64
	var errMu sync.Mutex
	lats := make([][]time.Duration, cfg.writers)
	start := time.Now()
	deadline := start.Add(cfg.maxTime)
	wctx, cancel := context.WithDeadline(ctx, deadline.Add(15*time.Second))
	defer cancel()
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Fprintf(progress, "  writes %s: %d/%d acknowledged, %.0f/s\n", layout, okOps.Load(), cfg.ops, float64(okOps.Load())/time.Since(start).Seconds())
			}
		}
	}()
	var duringDone sync.WaitGroup
	if during != nil {
		duringDone.Add(1)
		go func() {
			defer duringDone.Done()
			if sleepCtx(wctx, 2*time.Second) == nil {
				during(ctx)
			}
		}()
	}
	defer duringDone.Wait()
	for g := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[g%len(clients)]
			rng := rand.New(rand.NewPCG(cfg.seed^0x5eed, uint64(g)))
			lat := make([]time.Duration, 0, cfg.ops/int64(cfg.writers)+16)
			for issued.Add(1) <= cfg.ops && time.Now().Before(deadline) {
				k := benchKey(rng, cfg.keySpread)
				t0 := time.Now()
				err := cl.Put(wctx, k, value)
				d := time.Since(t0)
				if err != nil {
					errOps.Add(1)
					errMu.Lock()
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
					errMu.Unlock()
					if wctx.Err() != nil {
						return
					}
					continue
				}
				okOps.Add(1)
				lat = append(lat, d)
			}
			lats[g] = lat
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopProgress)
	res.capped = issued.Load() < cfg.ops
	res.ops, res.errs = okOps.Load(), errOps.Load()
	cpu1, err := c.cpuTicks()
	if err != nil {
		return res, err
	}
	self1, _ := procTicks(os.Getpid())
	busy1, tot1, _ := machineTicks()
	for i := range cpu1 {
		res.storeCPU = append(res.storeCPU, float64(cpu1[i]-cpu0[i])/clockTicks)
	}
	res.clientCPU = float64(self1-self0) / clockTicks
	if tot1 > tot0 {
		res.machineBusy = 100 * float64(busy1-busy0) / float64(tot1-tot0)
		own := (sum(res.storeCPU) + res.clientCPU) * clockTicks
		res.foreignPct = max(0, 100*(float64(busy1-busy0)-own)/float64(tot1-tot0))
	}
	m1, err := c.scrapeAll(ctx)
	if err != nil {
		return res, err
	}
	for i := range c.stores {
		d := func(name string) float64 { return m1[i].byName[name] - m0[i].byName[name] }
		res.syncs = append(res.syncs, d("rangekv_raft_log_syncs_total"))
		res.entries = append(res.entries, d("rangekv_raft_entries_appended_total"))
		res.readyBatches = append(res.readyBatches, d("rangekv_raft_ready_batches_total"))
		res.leadersPerStore = append(res.leadersPerStore, int(m1[i].byName["rangekv_store_leaders"]))
		res.leadersBefore = append(res.leadersBefore, int(m0[i].byName["rangekv_store_leaders"]))
		res.leaderChanges += d("rangekv_raft_leader_changes_total")
	}
	if counts, err := listReplicas(ctx, c); err == nil {
		for _, rc := range counts {
			res.rangesAfter = max(res.rangesAfter, rc.initialized)
		}
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	res.p50, res.p99, res.p999 = q(0.50), q(0.99), q(0.999)
	if len(all) > 0 {
		res.maxLat = all[len(all)-1]
	}
	return res, nil
}
