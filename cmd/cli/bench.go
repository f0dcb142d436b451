// rangekv bench: a closed-loop load generator over router.Client.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/router"
)

// Bench workloads.
var benchWorkloads = []string{"write", "read", "mixed", "cas", "incr"}

// goroutinesPerClient: bench opens one router.Client (its own gRPC
// connections) per this many goroutines.
const goroutinesPerClient = 64

// benchConfig is a validated bench run.
type benchConfig struct {
	workload  string
	clients   int           // goroutines
	duration  time.Duration // used when ops == 0
	ops       int64         // total operations (successful or not); 0: run for duration
	valueSize int
	keys      int
	zipf      bool
	zipfS     float64
	seed      uint64
	readRatio float64 // mixed only
	load      bool    // read/mixed: write every key first
	keyPrefix string
	opTimeout time.Duration
}

// benchResult is the outcome; its JSON is INTERFACES.md's, exactly.
type benchResult struct {
	Workload  string  `json:"workload"`
	Clients   int     `json:"clients"`
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	DurationS float64 `json:"duration_s"`
	OpsPerS   float64 `json:"ops_per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`

	// Table-only details.
	firstErr   error
	casSwapped int64 // cas: how many of the ops swapped
	readMisses int64 // read/mixed: reads of a missing key
}

func (a *app) benchCmd() *cobra.Command {
	var (
		cfg         benchConfig
		dist        string
		consistency string
		ranges      int
		progress    bool
		seed        uint64
		cpuProfile  string
		unary       bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load and report throughput and latency percentiles",
		Long: `Run a closed-loop load: --clients goroutines each issue one request after
the other (one router client, with its own connections, per 64 goroutines)
for --duration, or until --ops operations were issued in total.

Workloads:
  write  put random values of --value-size bytes
  read   get (at --consistency); with --load (the default) every one of
         --keys keys is written first, unmeasured; with --load=false it
         reads whatever exists (a missing key is a successful read)
  mixed  get with probability --read-ratio, put otherwise (loads like read)
  cas    compare-and-swap against the last value this run saw for the key
         (a failed compare is a successful operation)
  incr   add 1 to counters (under the prefix <key-prefix>incr/)

Keys are <key-prefix><12-digit index> for index in [0, --keys), chosen
uniformly or by a Zipf distribution (--dist zipf, exponent --zipf-s; index 0
is the hottest), from a seeded generator per goroutine (--seed).

ops counts successful operations and errors the failed ones; ops_per_s is
ops over the measured duration; p50..p999 are latencies of successful
operations. Progress goes to stderr once a second when stderr is a
terminal or with --progress. Ctrl-C stops early and still prints results.
With -o json the result is exactly
{"workload": W, "clients": N, "ops": N, "errors": N, "duration_s": F,
 "ops_per_s": F, "p50_ms": F, "p95_ms": F, "p99_ms": F, "p999_ms": F}.`,
		Example: `  rangekv bench --workload write --clients 32 --duration 30s
  rangekv bench --workload read --keys 10000 --consistency stale
  rangekv bench --workload mixed --read-ratio 0.9 --dist zipf --ops 100000
  rangekv -o json bench --workload incr --keys 10 --duration 5s`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("ops") && f.Changed("duration") {
				return usageErrorf("bench: give --duration or --ops, not both")
			}
			if ranges < 1 {
				return usageErrorf("ranges: must be at least 1, got %d", ranges)
			}
			if ranges > 1 && len(a.g.cluster.placement) == 0 && !a.g.cluster.empty() {
				return usageErrorf("ranges: pre-splitting the key space needs the placement driver (--placement); in static mode use --ranges 1")
			}
			cfg.zipf = dist == "zipf"
			if dist != "zipf" && dist != "uniform" {
				return usageErrorf("dist: %q is not uniform or zipf", dist)
			}
			cfg.seed = seed
			cfg.opTimeout = a.g.timeout
			if err := cfg.validate(); err != nil {
				return err
			}
			cons, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			if ranges > cfg.keys {
				return usageErrorf("ranges: %d ranges for %d keys; use at most --keys ranges", ranges, cfg.keys)
			}
			if a.g.cluster.empty() {
				return errNoCluster()
			}
			if ranges > 1 {
				if err := a.presplit(cmd.Context(), cfg, ranges); err != nil {
					return err
				}
			}
			n := (cfg.clients + goroutinesPerClient - 1) / goroutinesPerClient
			clients := make([]kvClient, 0, n)
			defer func() {
				for _, c := range clients {
					c.Close()
				}
			}()
			for i := range n {
				c, err := a.client(router.Options{Consistency: cons, Seed: cfg.seed + uint64(i) + 1, UnaryKV: unary})
				if err != nil {
					return err
				}
				clients = append(clients, c)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				stopProfile, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
			var prog io.Writer
			if progress || isTerminal(a.stderr) {
				prog = a.stderr
			}
			res, err := runBench(ctx, cfg, clients, prog)
			if err != nil {
				return err
			}
			if err := printBench(a.stdout, res, a.g.output == formatJSON); err != nil {
				return err
			}
			if res.Errors > 0 {
				fmt.Fprintf(a.stderr, "rangekv: bench: %d of %d operations failed; first error: %s\n",
					res.Errors, res.Ops+res.Errors, errorLine(res.firstErr))
			}
			if res.Ops == 0 && res.Errors > 0 {
				return fmt.Errorf("bench: every operation failed: %w", res.firstErr)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.workload, "workload", "write", "write, read, mixed, cas or incr")
	f.IntVar(&cfg.clients, "clients", 16, "concurrent goroutines issuing requests")
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run (unless --ops)")
	f.Int64Var(&cfg.ops, "ops", 0, "stop after this many operations in total instead of after --duration")
	f.IntVar(&cfg.valueSize, "value-size", 256, "bytes per written value")
	f.IntVar(&cfg.keys, "keys", 100000, "number of distinct keys")
	f.StringVar(&dist, "dist", "uniform", "key distribution: uniform or zipf")
	f.Float64Var(&cfg.zipfS, "zipf-s", 1.1, "Zipf exponent (> 1; larger is more skewed)")
	f.Uint64Var(&seed, "seed", 1, "seed of the key and value generators")
	f.Float64Var(&cfg.readRatio, "read-ratio", 0.5, "mixed: fraction of operations that are reads")
	f.StringVar(&consistency, "consistency", "linearizable", consistencyUsage)
	f.IntVar(&ranges, "ranges", 1, "pre-split the benchmark's keys into N ranges of equal key counts before running (needs --placement)")
	f.BoolVar(&cfg.load, "load", true, "read, mixed: write every key before measuring")
	f.StringVar(&cfg.keyPrefix, "key-prefix", "bench/", "prefix of every key the benchmark touches")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a Go CPU profile of this process (the load generator and its router clients) to this file")
	f.BoolVar(&unary, "unary", false, "send each call as its own unary RPC instead of on the stores' mux streams (to compare)")
	f.BoolVar(&progress, "progress", false, "print progress to stderr every second even when stderr is not a terminal")
	return cmd
}

// validate checks c; it changes nothing.
func (c *benchConfig) validate() error {
	known := false
	for _, w := range benchWorkloads {
		known = known || c.workload == w
	}
	switch {
	case !known:
		return usageErrorf("workload: %q is not one of %s", c.workload, strings.Join(benchWorkloads, ", "))
	case c.clients < 1:
		return usageErrorf("clients: must be at least 1, got %d", c.clients)
	case c.ops < 0:
		return usageErrorf("ops: must not be negative, got %d", c.ops)
	case c.ops == 0 && c.duration <= 0:
		return usageErrorf("duration: must be positive, got %s", c.duration)
	case c.valueSize < 0 || c.valueSize > 8<<20:
		return usageErrorf("value-size: must be between 0 and 8388608 bytes, got %d", c.valueSize)
	case c.keys < 1:
		return usageErrorf("keys: must be at least 1, got %d", c.keys)
	case c.zipf && !(c.zipfS > 1):
		return usageErrorf("zipf-s: must be greater than 1, got %g", c.zipfS)
	case c.readRatio < 0 || c.readRatio > 1:
		return usageErrorf("read-ratio: must be between 0 and 1, got %g", c.readRatio)
	case c.opTimeout <= 0:
		return usageErrorf("timeout: must be positive")
	}
	return nil
}

// presplit splits the benchmark's key space into n ranges of equal key
// counts (keys that are already range boundaries stay). It splits from the
// highest key down: each split then cuts a range whose leader placement
// already knows.
func (a *app) presplit(ctx context.Context, cfg benchConfig, n int) error {
	adm, err := a.admin("bench --ranges")
	if err != nil {
		return err
	}
	defer adm.Close()
	made := 0
	for i := n - 1; i >= 1; i-- {
		key := cfg.key(cfg.keys * i / n)
		sctx, cancel := context.WithTimeout(ctx, a.g.timeout)
		r, err := adm.RangeForKey(sctx, key)
		if err == nil && !bytes.Equal(r.Descriptor_.StartKey, key) {
			_, err = a.splitAt(sctx, adm, key)
			made++
		}
		cancel()
		if err != nil {
			return a.adminError(fmt.Sprintf("bench --ranges: split at %s", quoteKey(key, false)), err)
		}
	}
	if made > 0 {
		fmt.Fprintf(a.stderr, "bench: split the key space into %d ranges (%d new)\n", n, made)
	}
	return nil
}

// isTerminal reports whether w (a reader or writer) is a character device
// (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (c *benchConfig) key(i int) []byte {
	if c.workload == "incr" {
		return fmt.Appendf(nil, "%sincr/%012d", c.keyPrefix, i)
	}
	return fmt.Appendf(nil, "%s%012d", c.keyPrefix, i)
}

// valueGen makes values of a fixed size: random printable filler with an
// ever-changing sequence number in front.
type valueGen struct {
	buf []byte
	seq uint64
}

func newValueGen(rng *rand.Rand, size int) *valueGen {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, size)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return &valueGen{buf: b}
}

// next returns a value valid until the following call.
func (g *valueGen) next() []byte {
	g.seq++
	var tag [20]byte
	t := strconv.AppendUint(tag[:0], g.seq, 36)
	copy(g.buf, t)
	return g.buf
}

// counters are shared by workers and the progress printer.
type counters struct {
	ops, errs atomic.Int64
}

// startProgress prints line() to w once a second until the returned stop
// is called; stop waits for the printer to finish. A nil w prints nothing.
func startProgress(w io.Writer, line func(elapsed time.Duration) string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// loadKeys writes every key once (read and mixed workloads).
func loadKeys(ctx context.Context, cfg benchConfig, clients []kvClient, progress io.Writer) error {
	var next, loaded, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	stopProgress := startProgress(progress, func(el time.Duration) string {
		return fmt.Sprintf("bench: loading %5.0fs  %d/%d keys  %d errors", el.Seconds(), loaded.Load(), cfg.keys, failed.Load())
	})
	var wg sync.WaitGroup
	for g := range cfg.clients {
		wg.Go(func() {
			c := clients[g%len(clients)]
			vals := newValueGen(rand.New(rand.NewPCG(cfg.seed, uint64(g)+1<<32)), cfg.valueSize)
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.keys) {
					return
				}
				opCtx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
				err := c.Put(opCtx, cfg.key(int(i)), vals.next())
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				loaded.Add(1)
			}
		})
	}
	wg.Wait()
	stopProgress()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted while loading keys: %w", err)
	}
	if loaded.Load() == 0 {
		return fmt.Errorf("bench: loading keys failed: %w", *firstErr.Load())
	}
	if progress != nil && failed.Load() > 0 {
		fmt.Fprintf(progress, "bench: %d of %d keys failed to load; reads of them find nothing\n", failed.Load(), cfg.keys)
	}
	return nil
}

// runBench runs the workload over clients (each shared by a slice of the
// goroutines) and returns the result. progress, when not nil, receives a
// line a second.
func runBench(ctx context.Context, cfg benchConfig, clients []kvClient, progress io.Writer) (benchResult, error) {
	if (cfg.workload == "read" || cfg.workload == "mixed") && cfg.load {
		if err := loadKeys(ctx, cfg, clients, progress); err != nil {
			return benchResult{}, err
		}
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.ops == 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.duration)
	}
	defer cancel()

	var (
		cnt        counters
		claimed    atomic.Int64
		casSwapped atomic.Int64
		misses     atomic.Int64
		firstErr   atomic.Pointer[error]
		known      []atomic.Pointer[[]byte] // cas: last value seen per key
		mu         sync.Mutex
		total      = newHistogram()
	)
	if cfg.workload == "cas" {
		known = make([]atomic.Pointer[[]byte], cfg.keys)
	}
	var last int64 // used by the progress printer only
	stopProgress := startProgress(progress, func(el time.Duration) string {
		n := cnt.ops.Load()
		line := fmt.Sprintf("bench: %5.0fs  ops %d  errors %d  %.0f ops/s", el.Seconds(), n, cnt.errs.Load(), float64(n-last))
		last = n
		return line
	})
	start := time.Now()
	var wg sync.WaitGroup
	for g := range cfg.clients {
		wg.Go(func() {
			c := clients[g%len(clients)]
			rng := rand.New(rand.NewPCG(cfg.seed, uint64(g)))
			var zipf *rand.Zipf
			if cfg.zipf && cfg.keys > 1 {
				zipf = rand.NewZipf(rng, cfg.zipfS, 1, uint64(cfg.keys-1))
			}
			vals := newValueGen(rng, cfg.valueSize)
			h := newHistogram()
			defer func() {
				mu.Lock()
				total.merge(h)
				mu.Unlock()
			}()
			for runCtx.Err() == nil {
				if cfg.ops > 0 && claimed.Add(1) > cfg.ops {
					return
				}
				idx := 0
				switch {
				case zipf != nil:
					idx = int(zipf.Uint64())
				case cfg.keys > 1:
					idx = rng.IntN(cfg.keys)
				}
				key := cfg.key(idx)
				// The operation's deadline is its own, not the run's:
				// an operation in flight when the run ends completes
				// (gRPC would otherwise fail it by the run's deadline
				// a moment before runCtx reports it, and count a
				// spurious error); an interrupt (ctx) still cuts it.
				opCtx, opCancel := context.WithTimeout(ctx, cfg.opTimeout)
				t0 := time.Now()
				var err error
				switch cfg.workload {
				case "write":
					err = c.Put(opCtx, key, vals.next())
				case "read":
					var found bool
					if _, found, err = c.Get(opCtx, key); err == nil && !found {
						misses.Add(1)
					}
				case "mixed":
					if rng.Float64() < cfg.readRatio {
						var found bool
						if _, found, err = c.Get(opCtx, key); err == nil && !found {
							misses.Add(1)
						}
					} else {
						err = c.Put(opCtx, key, vals.next())
					}
				case "cas":
					nv := append([]byte(nil), vals.next()...)
					exp := known[idx].Load()
					var res router.CASResult
					if exp == nil {
						res, err = c.CAS(opCtx, key, nil, true, nv)
					} else {
						res, err = c.CAS(opCtx, key, *exp, false, nv)
					}
					if err == nil {
						if res.Swapped {
							casSwapped.Add(1)
						}
						if res.Found {
							v := res.Value
							known[idx].Store(&v)
						} else {
							known[idx].Store(nil)
						}
					}
				case "incr":
					_, err = c.Incr(opCtx, key, 1)
				}
				d := time.Since(t0)
				opCancel()
				if err != nil {
					if runCtx.Err() != nil {
						return // cut off by the end of the run: not counted
					}
					cnt.errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				h.record(d)
				cnt.ops.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	res := benchResult{
		Workload:   cfg.workload,
		Clients:    cfg.clients,
		Ops:        cnt.ops.Load(),
		Errors:     cnt.errs.Load(),
		DurationS:  elapsed.Seconds(),
		P50Ms:      ms(total.quantile(0.50)),
		P95Ms:      ms(total.quantile(0.95)),
		P99Ms:      ms(total.quantile(0.99)),
		P999Ms:     ms(total.quantile(0.999)),
		casSwapped: casSwapped.Load(),
		readMisses: misses.Load(),
	}
	if elapsed > 0 {
		res.OpsPerS = float64(res.Ops) / elapsed.Seconds()
	}
	if e := firstErr.Load(); e != nil {
		res.firstErr = *e
	}
	if res.Ops == 0 && res.Errors == 0 && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("bench: interrupted: %w", ctx.Err())
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// printBench prints a result as an aligned table or as INTERFACES.md's
// JSON document.
func printBench(w io.Writer, r benchResult, asJSON bool) error {
	if asJSON {
		p := &printer{w: w}
		return p.emitJSON(r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s\n", r.Workload)
	fmt.Fprintf(tw, "clients\t%d\n", r.Clients)
	fmt.Fprintf(tw, "ops\t%d\n", r.Ops)
	fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	fmt.Fprintf(tw, "duration\t%.3fs\n", r.DurationS)
	fmt.Fprintf(tw, "ops/s\t%.1f\n", r.OpsPerS)
	fmt.Fprintf(tw, "p50\t%.3f ms\n", r.P50Ms)
	fmt.Fprintf(tw, "p95\t%.3f ms\n", r.P95Ms)
	fmt.Fprintf(tw, "p99\t%.3f ms\n", r.P99Ms)
	fmt.Fprintf(tw, "p99.9\t%.3f ms\n", r.P999Ms)
	switch r.Workload {
	case "cas":
		fmt.Fprintf(tw, "swapped\t%d of %d\n", r.casSwapped, r.Ops)
	case "read", "mixed":
		fmt.Fprintf(tw, "reads of missing keys\t%d\n", r.readMisses)
	}
	return tw.Flush()
}

// startCPUProfile profiles this process into path until the returned stop
// is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
