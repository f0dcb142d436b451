// Flags, the plans (which measurement over how many ranges, each in a fresh
// cluster) and the run that executes them and writes the summary.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profileElection mirrors cmd/store's Raft profiles (election timeout).
var profileElection = map[string]time.Duration{
	"production":        time.Second,
	"high-performance":  2 * time.Second,
	"high-availability": 500 * time.Millisecond,
}

type options struct {
	storeBin       string
	dir            string
	keep           bool
	out            string
	idleRanges     []int
	writeRanges    []int // range counts of the multi-range write runs
	failoverRanges int
	failoverRuns   int
	singleWrites   bool
	idle           time.Duration
	writes         writeConfig
	splitConc      int
	quiesceTimeout time.Duration
	profile        string
	election       time.Duration // effective election timeout
	electionFlag   time.Duration // -election-timeout, 0 when unset
	pprofMode      string
	pprofDur       time.Duration
	pprofWrites    bool
	retries        int
	storeArgs      string
	commit         string
	quietWait      time.Duration
	quietBelow     float64
	cpuGoal        float64
	failoverGoal   float64 // in election timeouts
	placementBin   string
	splitLatency   int // splits per order (0: skip)
	splitGoal      time.Duration
	restart        bool          // restart a store after each idle window
	restartLimit   time.Duration // how long a restarted store may take to serve
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "multiraftbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "multiraftbench:", err)
		os.Exit(1)
	}
}

func parseFlags() (*options, error) {
	o := &options{}
	var idleRanges, writeRanges string
	flag.StringVar(&o.storeBin, "store-bin", "", "rangekv-store binary (default: go build ./cmd/store into the scratch dir)")
	flag.StringVar(&o.dir, "dir", "", "scratch dir for data, logs and profiles, on the disk under test (default: a new temp dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the stores' data directories (logs and profiles are always kept)")
	flag.StringVar(&o.out, "out", "", "also write the markdown summary to this file")
	flag.StringVar(&idleRanges, "idle-ranges", "1000,10000", "range counts for the idle-cost measurement, each in a fresh cluster (empty: skip)")
	flag.StringVar(&writeRanges, "write-ranges", "1000", "range counts of the multi-range write runs, comma-separated, each in its cluster (empty or 0: skip writes)")
	flag.IntVar(&o.failoverRanges, "failover-ranges", 1000, "range count of the failover run (0: skip)")
	flag.IntVar(&o.failoverRuns, "failover-runs", 3, "failover runs, each but the first in a fresh cluster of its own (the time depends on which survivor notices first)")
	flag.IntVar(&o.retries, "retries", 3, "when a store crashes, record it and run that cluster's measurements again in a fresh cluster this many times")
	flag.BoolVar(&o.singleWrites, "single-range-writes", true, "also run the writes against one range (the comparison)")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle measurement window")
	flag.Int64Var(&o.writes.ops, "write-ops", 100000, "puts per write run (the same for every layout)")
	flag.DurationVar(&o.writes.maxTime, "write-max", 90*time.Second, "cap on one write run; a run stopped by it is marked in the summary")
	flag.IntVar(&o.writes.writers, "writers", 256, "concurrent writers")
	flag.IntVar(&o.writes.valueSize, "value-size", 256, "value size in bytes")
	flag.Uint64Var(&o.writes.seed, "seed", 1, "seed of the key generator")
	flag.IntVar(&o.splitConc, "split-concurrency", 32, "splits in flight (always on different ranges)")
	flag.DurationVar(&o.quiesceTimeout, "quiesce-timeout", 120*time.Second, "how long to wait for every replica to quiesce")
	flag.StringVar(&o.commit, "commit", "", "rangekv version named in the summary (default: git rev-parse HEAD of the current dir)")
	flag.StringVar(&o.storeArgs, "store-args", "", "more rangekv-store flags, space-separated (e.g. \"--log-level debug\")")
	flag.StringVar(&o.profile, "raft-profile", "production", "the stores' --raft.profile")
	flag.DurationVar(&o.electionFlag, "election-timeout", 0, "the stores' --raft.election-timeout (0: the profile's)")
	flag.StringVar(&o.pprofMode, "pprof", "miss", "CPU profiles of the stores after an idle window: always, miss (when the CPU goal is missed) or never")
	flag.DurationVar(&o.pprofDur, "pprof-seconds", 10*time.Second, "length of each CPU profile")
	flag.BoolVar(&o.pprofWrites, "pprof-writes", false, "also profile the stores during each write run (from 2 s in; costs a little throughput)")
	flag.DurationVar(&o.quietWait, "quiet-wait", 30*time.Second, "before each measurement, wait at most this long for other work on the machine to drop under -quiet-below (0: do not wait)")
	flag.Float64Var(&o.quietBelow, "quiet-below", 25, "see -quiet-wait: % of all cores used by other processes")
	flag.Float64Var(&o.cpuGoal, "cpu-goal", 5, "idle goal: % of one core per store")
	flag.Float64Var(&o.failoverGoal, "failover-goal", 2, "failover goal: election timeouts")
	flag.StringVar(&o.placementBin, "placement-bin", "", "rangekv-placement binary for the split latency (default: go build ./cmd/placement into the scratch dir)")
	flag.IntVar(&o.splitLatency, "split-latency", 1000, "splits, one at a time through placement, in each key order (ascending, descending) for the split latency (0: skip)")
	flag.DurationVar(&o.splitGoal, "split-goal", 50*time.Millisecond, "split latency goal: p99 in both orders")
	flag.BoolVar(&o.restart, "restart", false, "after each idle window, restart the store leading the fewest ranges (SIGTERM, same flags) and time it until every replica on it knows a leader")
	flag.DurationVar(&o.restartLimit, "restart-limit", 5*time.Minute, "see -restart: give up waiting after this long")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	var err error
	if o.idleRanges, err = rangeCounts("idle-ranges", idleRanges, false); err != nil {
		return nil, err
	}
	if o.writeRanges, err = rangeCounts("write-ranges", writeRanges, true); err != nil {
		return nil, err
	}
	et, ok := profileElection[o.profile]
	switch {
	case !ok:
		return nil, fmt.Errorf("raft-profile: unknown profile %q (production, high-performance, high-availability)", o.profile)
	case o.failoverRanges < 0 || o.failoverRanges > 1_000_000:
		return nil, fmt.Errorf("failover-ranges: must be between 0 and 1000000, got %d", o.failoverRanges)
	case o.failoverRuns < 1 || o.failoverRuns > 100:
		return nil, fmt.Errorf("failover-runs: must be between 1 and 100, got %d", o.failoverRuns)
	case o.writes.ops < 0:
		return nil, fmt.Errorf("write-ops: must not be negative, got %d", o.writes.ops)
	case o.writes.writers < 1 || o.writes.writers > 10000:
		return nil, fmt.Errorf("writers: must be between 1 and 10000, got %d", o.writes.writers)
	case o.writes.valueSize < 1 || o.writes.valueSize > 1<<20:
		return nil, fmt.Errorf("value-size: must be between 1 and 1048576, got %d", o.writes.valueSize)
	case o.writes.maxTime <= 0 || o.idle <= 0 || o.quiesceTimeout <= 0:
		return nil, errors.New("write-max, idle and quiesce-timeout must be positive")
	case o.splitLatency < 0 || o.splitLatency > 1_000_000:
		return nil, fmt.Errorf("split-latency: must be between 0 and 1000000, got %d", o.splitLatency)
	case o.splitConc < 1 || o.splitConc > 1024:
		return nil, fmt.Errorf("split-concurrency: must be between 1 and 1024, got %d", o.splitConc)
	case o.pprofMode != "always" && o.pprofMode != "miss" && o.pprofMode != "never":
		return nil, fmt.Errorf("pprof: must be always, miss or never, got %q", o.pprofMode)
	case o.pprofDur < time.Second:
		return nil, fmt.Errorf("pprof-seconds: must be at least 1s, got %s", o.pprofDur)
	}
	o.election = et
	if o.electionFlag > 0 {
		o.election = o.electionFlag
	}
	if o.writes.ops == 0 {
		o.writeRanges = nil
	}
	if len(o.writeRanges) == 0 {
		o.singleWrites = false
	}
	return o, nil
}

// rangeCounts parses a comma-separated list of range counts (1 to
// 1,000,000, no duplicates); with zeroSkips a 0 stands for none.
func rangeCounts(name, list string, zeroSkips bool) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if zeroSkips && err == nil && n == 0 {
			continue
		}
		if err != nil || n < 1 || n > 1_000_000 {
			return nil, fmt.Errorf("%s: %q is not a range count between 1 and 1000000", name, f)
		}
		if !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	return ns, nil
}

// keySpread is the number of key prefixes the writes to a layout of
// ranges spread over: one per range; the one-range comparison uses the
// first multi-range layout's keys.
func (o *options) keySpread(ranges int) int {
	if ranges == 1 && len(o.writeRanges) > 0 {
		return o.writeRanges[0]
	}
	return max(ranges, 1)
}

// plan is one fresh cluster and what to measure on it.
type plan struct {
	ranges                 int
	idle, writes, failover bool
}

func plans(o *options) []plan {
	var ps []plan
	covered := func(n int) bool {
		return slices.ContainsFunc(ps, func(p plan) bool { return p.ranges == n })
	}
	for _, n := range o.idleRanges {
		if covered(n) {
			continue
		}
		ps = append(ps, plan{ranges: n, idle: true, writes: slices.Contains(o.writeRanges, n), failover: n == o.failoverRanges})
	}
	for _, n := range o.writeRanges {
		if !covered(n) {
			ps = append(ps, plan{ranges: n, writes: true, failover: n == o.failoverRanges})
		}
	}
	extra := o.failoverRuns - 1
	if o.failoverRanges > 0 && !covered(o.failoverRanges) {
		extra++
	}
	for range max(0, extra) {
		if o.failoverRanges > 0 {
			ps = append(ps, plan{ranges: o.failoverRanges, failover: true})
		}
	}
	if o.singleWrites {
		// Right after the first plan: the 10,000-range cluster comes last.
		p := plan{ranges: 1, writes: true}
		if len(ps) == 0 {
			ps = append(ps, p)
		} else {
			ps = slices.Insert(ps, 1, p)
		}
	}
	return ps
}

type results struct {
	machine   machineInfo
	loadEnd   string
	idle      []idleResult
	writes    []writeResult
	failovers []failoverResult
	// splitLatency: one result per key order.
	splitLatency []splitLatencyResult
	notes        []string
	crashes      int
	elapsed      time.Duration
}

func run(ctx context.Context, o *options) error {
	start := time.Now()
	if o.dir == "" {
		d, err := os.MkdirTemp("", "multiraftbench-")
		if err != nil {
			return err
		}
		o.dir = d
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	progress := os.Stderr
	fmt.Fprintf(progress, "multiraftbench: scratch dir %s\n", o.dir)
	if o.storeBin == "" {
		o.storeBin = filepath.Join(o.dir, "bin", "rangekv-store")
		fmt.Fprintf(progress, "building %s\n", o.storeBin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.storeBin, "./cmd/store")
		cmd.Stdout, cmd.Stderr = progress, progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/store (run from the module root): %w", err)
		}
	}
	if o.placementBin == "" && o.splitLatency > 0 {
		o.placementBin = filepath.Join(o.dir, "bin", "rangekv-placement")
		fmt.Fprintf(progress, "building %s\n", o.placementBin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.placementBin, "./cmd/placement")
		cmd.Stdout, cmd.Stderr = progress, progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/placement (run from the module root): %w", err)
		}
	}
	sa := storeArgs{bin: o.storeBin, profile: o.profile}
	if o.electionFlag > 0 {
		sa.extra = append(sa.extra, "--raft.election-timeout", o.electionFlag.String())
	}
	sa.extra = append(sa.extra, strings.Fields(o.storeArgs)...)
	res := &results{machine: gatherMachine(ctx, o.dir)}
	if o.commit != "" {
		res.machine.commit = o.commit
	}
	var runErr error
	n := 0
	for _, p := range plans(o) {
		for attempt := 0; ; attempt++ {
			n++
			err := runPlan(ctx, o, sa, n, p, res, progress)
			if err == nil {
				break
			}
			res.notes = append(res.notes, fmt.Sprintf("cluster with %d ranges (attempt %d) stopped: %v", p.ranges, attempt+1, err))
			fmt.Fprintf(progress, "  STOPPED: %v\n", err)
			var crash *storeCrashError
			if ctx.Err() != nil || !errors.As(err, &crash) || attempt >= o.retries {
				runErr = err
				break
			}
			res.crashes++
			fmt.Fprintf(progress, "  a store crashed: running the %d-range measurements again in a fresh cluster\n", p.ranges)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if o.splitLatency > 0 && ctx.Err() == nil {
		if err := runSplitLatency(ctx, o, sa, res, progress); err != nil && runErr == nil {
			runErr = err
		}
	}
	res.loadEnd = loadavg()
	res.elapsed = time.Since(start)
	summary := render(o, res)
	fmt.Print(summary)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(summary), 0o644); err != nil {
			return err
		}
	}
	return runErr
}

func runPlan(ctx context.Context, o *options, sa storeArgs, n int, p plan, res *results, progress *os.File) (err error) {
	name := fmt.Sprintf("c%d_%dranges", n, p.ranges)
	dir := filepath.Join(o.dir, name)
	fmt.Fprintf(progress, "== cluster %s: starting 3 stores (data in %s)\n", name, dir)
	c, err := startCluster(ctx, name, dir, sa)
	if err != nil {
		return err
	}
	defer func() {
		// A store that died explains any error better than the error does.
		if cerr := c.checkAlive(); cerr != nil {
			err = cerr
		}
		if killed := c.stop(); len(killed) > 0 {
			res.notes = append(res.notes, fmt.Sprintf("%s: stores %v did not stop within %s of SIGTERM and were killed", name, killed, stopGrace))
		}
		if !o.keep {
			for _, s := range c.stores {
				os.RemoveAll(s.dataDir)
			}
		}
	}()
	lead, err := c.waitLeader(ctx, 1, 30*time.Second)
	if err != nil {
		return err
	}
	var ir idleResult
	ir.ranges = p.ranges
	if p.ranges > 1 {
		fmt.Fprintf(progress, "  splitting range 1 into %d ranges (%d in flight)\n", p.ranges, o.splitConc)
		st, err := splitInto(ctx, c, p.ranges, o.splitConc, lead, progress)
		ir.split = st
		if err != nil {
			return fmt.Errorf("split: %w", err)
		}
		fmt.Fprintf(progress, "  %d splits in %.1fs (%.0f/s)\n", st.splits, st.elapsed.Seconds(), float64(st.splits)/st.elapsed.Seconds())
	}
	if p.idle {
		q, err := waitQuiescent(ctx, c, p.ranges, o.quiesceTimeout, progress)
		if err != nil {
			return err
		}
		ir.quiesce = q
		if ir.counts, err = listReplicas(ctx, c); err != nil {
			return err
		}
		if !q.done {
			ir.detail = nonQuiescentDetail(ctx, c, 5)
			fmt.Fprintln(progress, ir.detail)
		}
		ir.foreignBefore, _ = waitQuiet(ctx, c, o.quietWait, o.quietBelow, progress)
		fmt.Fprintf(progress, "  idle window %s\n", o.idle)
		m, err := measureIdle(ctx, c, o.idle)
		if err != nil {
			return err
		}
		m.ranges, m.split, m.quiesce, m.detail, m.counts, m.foreignBefore = ir.ranges, ir.split, ir.quiesce, ir.detail, ir.counts, ir.foreignBefore
		fmt.Fprintf(progress, "  CPU %% of a core per store %.2f; batches/s %.1f; raft msgs/s %.2f\n", m.cpuPct, m.batchesPS, sum(m.msgsPS))
		if o.pprofMode == "always" || (o.pprofMode == "miss" && m.maxCPU() > o.cpuGoal) {
			fmt.Fprintf(progress, "  CPU profiles (%s)\n", o.pprofDur)
			m.profiles = profileStores(ctx, c, o.storeBin, o.dir, fmt.Sprintf("idle_%dranges", p.ranges), o.pprofDur)
		}
		if m.mem, err = measureMem(ctx, c, p.ranges); err != nil {
			return err
		}
		for i, mi := range m.mem {
			fmt.Fprintf(progress, "  store %d: RSS %.0f MiB (%.1f KiB per replica), Go heap in use %.0f MiB\n", i+1, float64(mi.rss)/(1<<20), mi.perReplica()/1024, float64(mi.heap)/(1<<20))
		}
		if m.listing, err = measureListing(ctx, c); err != nil {
			return err
		}
		for i, l := range m.listing {
			fmt.Fprintf(progress, "  store %d: ListRanges of %d replicas in %d pages: %s, store CPU %s (%s per 1,000 replicas)\n", i+1, l.replicas, l.pages, l.wall.Round(time.Millisecond), l.cpu, l.cpuPer1000())
		}
		if o.restart {
			target := 0
			for i, l := range m.leaders {
				if l < m.leaders[target] {
					target = i
				}
			}
			rr, err := restartStore(ctx, c, target, p.ranges, o.restartLimit, progress)
			m.restart = &rr
			if err != nil {
				res.idle = append(res.idle, m)
				return fmt.Errorf("restart: %w", err)
			}
		}
		res.idle = append(res.idle, m)
	}
	if p.writes {
		cfg := o.writes
		cfg.keySpread = o.keySpread(p.ranges)
		layout := fmt.Sprintf("%d ranges", p.ranges)
		if p.ranges == 1 {
			layout = "1 range"
		}
		foreign, _ := waitQuiet(ctx, c, o.quietWait, o.quietBelow, progress)
		fmt.Fprintf(progress, "  writes: %d puts, %d writers, %d-byte values\n", cfg.ops, cfg.writers, cfg.valueSize)
		var during func(context.Context)
		var profs []string
		if o.pprofWrites {
			during = func(ctx context.Context) {
				profs = profileStores(ctx, c, o.storeBin, o.dir, fmt.Sprintf("writes_%dranges", p.ranges), o.pprofDur)
			}
		}
		w, err := runWrites(ctx, c, layout, p.ranges, cfg, progress, during)
		w.profiles, w.foreignBefore = profs, foreign
		if err != nil {
			return fmt.Errorf("writes: %w", err)
		}
		fmt.Fprintf(progress, "  %.0f writes/s, p50 %s p99 %s, %.3f fsyncs/write\n", w.throughput(), w.p50, w.p99, w.fsyncsPerWrite())
		res.writes = append(res.writes, w)
	}
	if p.failover {
		fmt.Fprintf(progress, "  failover with %d ranges\n", p.ranges)
		target, moved, err := concentrateLeaders(ctx, c, progress)
		if err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		q, err := waitQuiescent(ctx, c, p.ranges, o.quiesceTimeout, progress)
		if err != nil {
			return err
		}
		lm, err := leaderMap(ctx, c)
		if err != nil {
			return err
		}
		var ids []uint64
		for id := range lm {
			ids = append(ids, id)
		}
		foreign, _ := waitQuiet(ctx, c, o.quietWait, o.quietBelow, progress)
		f, err := failover(ctx, c, target, ids, q.quiescent[target], progress)
		f.transferred, f.foreignBefore = moved, foreign
		res.failovers = append(res.failovers, f)
		if err != nil {
			return fmt.Errorf("failover: %w", err)
		}
	}
	return nil
}
