// The simulation's tests: CI seeds (each run twice, the traces must hash
// the same), one seed to replay (-sim.seed) and a soak (-sim.seeds).

package sim

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/rangekv/rangekv/internal/histcheck"
)

var (
	flagSeed    = flag.Uint64("sim.seed", 0, "run only this seed (a failure's replay)")
	flagSeeds   = flag.Int("sim.seeds", 0, "run N seeds from -sim.base (a soak, each once); 0: the CI seeds, each twice")
	flagBase    = flag.Uint64("sim.base", 1, "the soak's first seed")
	flagTwice   = flag.Bool("sim.twice", false, "in a soak, run each seed twice and compare the traces, as the CI seeds are")
	flagTrace   = flag.String("sim.trace", "", "write the replayed seed's trace to this file (in a soak with -sim.twice: a diverging seed's two traces, to this prefix)")
	flagLog     = flag.Bool("sim.log", false, "print every process's log (with -sim.seed)")
	flagMsgs    = flag.Bool("sim.messages", false, "put each message's text in the trace (with -sim.seed, or a soak's kept traces)")
	flagRanges  = flag.Int("sim.ranges", 0, "ranges to split into (with -sim.seed or -sim.seeds; 0: the default)")
	flagDur     = flag.Duration("sim.duration", 0, "simulated workload time (with -sim.seed or -sim.seeds; 0: the default)")
	flagCalm    = flag.Bool("sim.nofaults", false, "no faults (with -sim.seed)")
	flagHeal    = flag.Duration("sim.heal", 0, "simulated time the cluster has to settle after healing (with -sim.seed; 0: the default)")
	flagStores  = flag.Int("sim.stores", 0, "stores (with -sim.seed or -sim.seeds; 0: the default)")
	flagMembers = flag.Int("sim.members", 0, "placement members, 1 or 3 (with -sim.seed or -sim.seeds; 0: the default)")
	flagInter   = flag.Bool("sim.interleave", false, "stop passes at pass points, interleaving a store's workers (with -sim.seed or -sim.seeds)")
	flagFirst   = flag.Bool("sim.first", false, "end a soak at its first failing seed (with -sim.seeds)")
	flagPre     = flag.Bool("sim.preempt", false, "in a soak with -sim.twice, run each seed's second run preempted (Config.Preempt)")
)

// ciSeeds is how many seeds `make test` runs.
const ciSeeds = 200

// runSeed runs cfg in its own bubble, with crypto/rand (etcd raft's
// election jitter) seeded from the seed, and checks the history.
func runSeed(t *testing.T, cfg Config, check bool) Result {
	t.Helper()
	cryptotest.SetGlobalRandom(t, cfg.Seed)
	// One P: a goroutine a step wakes runs when the step's goroutine
	// blocks, not beside it (a read woken mid-pass would otherwise see
	// that pass's later applies or not, as the Go scheduler has it).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// No collection during the run: a collection preempts the goroutine
	// mid-step and lets the goroutines the step woke run before it ends,
	// in an order that depends on the heap the earlier runs left.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var res Result
	start := time.Now()
	synctest.Test(t, func(t *testing.T) { res = Run(cfg) })
	res.Wall = time.Since(start)
	if check {
		Check(&res)
	}
	return res
}

// shaped is cfg with the flags a soak and a replay share.
func shaped(cfg Config) Config {
	if *flagRanges > 0 {
		cfg.Ranges, cfg.Keys = *flagRanges, max(cfg.Keys, 2**flagRanges)
	}
	if *flagStores > 0 {
		cfg.Stores = *flagStores
	}
	if *flagMembers > 0 {
		cfg.Members = *flagMembers
	}
	if *flagInter {
		cfg.Interleave = true
	}
	if *flagDur > 0 {
		cfg.Duration = *flagDur
	}
	cfg.TraceMessages = *flagMsgs
	return cfg
}

func replayCommand(seed uint64) string {
	var extra string
	if *flagRanges > 0 {
		extra += fmt.Sprintf(" -sim.ranges=%d", *flagRanges)
	}
	if *flagStores > 0 {
		extra += fmt.Sprintf(" -sim.stores=%d", *flagStores)
	}
	if *flagMembers > 0 {
		extra += fmt.Sprintf(" -sim.members=%d", *flagMembers)
	}
	if *flagInter {
		extra += " -sim.interleave"
	}
	if *flagDur > 0 {
		extra += " -sim.duration=" + flagDur.String()
	}
	return fmt.Sprintf("go test ./sim -run 'TestSimSeed$' -sim.seed=%d%s -sim.trace=/tmp/sim-%d.trace -v", seed, extra, seed)
}

// report fails t with a run's failures and the replay command; for a
// history violation it writes porcupine's visualization of the keys that
// failed and prints the first such key's operations.
func report(t *testing.T, res Result, cfg Config) {
	t.Helper()
	if len(res.Failures) == 0 {
		return
	}
	if bad := res.Verdict.Violations; len(bad) > 0 {
		dir := os.Getenv("SIM_ARTIFACTS")
		if dir == "" {
			dir = t.TempDir()
		}
		path := filepath.Join(dir, fmt.Sprintf("sim-%d-porcupine.html", cfg.Seed))
		if err := histcheck.Visualize(res.History, bad, path, time.Minute); err != nil {
			t.Logf("visualization: %v", err)
		} else {
			t.Logf("porcupine visualization of %v: %s", bad, path)
		}
		var ops []histcheck.Op
		for _, op := range res.History.Ops {
			if op.Key == bad[0] {
				ops = append(ops, op)
			}
		}
		sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		var b strings.Builder
		for _, op := range ops {
			fmt.Fprintf(&b, "  [%d, %d] c%d %s\n", op.Call/1000, op.Return/1000, op.Client, op)
		}
		t.Logf("operations on %s (µs):\n%s", bad[0], b.String())
	}
	t.Errorf("seed %d: %d failure(s):\n  %s\nreplay: %s", cfg.Seed, len(res.Failures), strings.Join(res.Failures, "\n  "), replayCommand(cfg.Seed))
}

// TestSimSeed replays one seed (-sim.seed), writing its trace.
func TestSimSeed(t *testing.T) {
	if *flagSeed == 0 {
		t.Skip("replay only: give -sim.seed=N")
	}
	cfg := shaped(Defaults(*flagSeed))
	if *flagHeal > 0 {
		cfg.Heal = *flagHeal
	}
	cfg.Faults = !*flagCalm
	if *flagTrace != "" {
		f, err := os.Create(*flagTrace)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg.Trace = f
	}
	if *flagLog {
		cfg.Log = os.Stderr
	}
	cfg.TraceMessages = *flagMsgs
	res := runSeed(t, cfg, true)
	t.Logf("seed %d: %d steps, %s simulated in %s (%.0f simulated s per s), trace %x, counts %v", res.Seed, res.Steps,
		res.SimTime, res.Wall.Round(time.Millisecond), res.SimTime.Seconds()/res.Wall.Seconds(), res.TraceHash, res.Counts)
	t.Logf("history: %s", res.Verdict)
	report(t, res, cfg)
}

// TestSimSeeds runs the CI seeds, each twice: every invariant must hold
// and the two runs of a seed must hash the same. With -sim.seeds=N it is
// a soak of N seeds from -sim.base, each run once, with a summary of the
// steps, faults and operations it exercised.
func TestSimSeeds(t *testing.T) {
	n, base, twice := uint64(ciSeeds), uint64(1), true
	if *flagSeeds > 0 {
		n, base, twice = uint64(*flagSeeds), *flagBase, *flagTwice
	}
	total := map[string]int{}
	var steps int
	var simTime time.Duration
	start := time.Now()
	failed := 0
	for seed := base; seed < base+n; seed++ {
		cfg := shaped(Defaults(seed))
		var ta, tb bytes.Buffer
		keep := twice && *flagSeeds > 0 && *flagTrace != ""
		if keep {
			cfg.Trace = &ta
		}
		a := runSeed(t, cfg, true)
		if len(a.Failures) > 0 {
			failed++
		}
		if *flagFirst && len(a.Failures) > 0 && *flagSeeds > 0 {
			t.Logf("first failure at seed %d, the %dth seed run", seed, seed-base+1)
			n = seed - base + 1
		}
		report(t, a, cfg)
		for k, v := range a.Counts {
			total[k] += v
		}
		steps += a.Steps
		simTime += a.SimTime
		if twice {
			if keep {
				cfg.Trace = &tb
			}
			cfg.Preempt = *flagPre
			b := runSeed(t, cfg, false)
			if a.TraceHash != b.TraceHash && keep {
				for i, tr := range []*bytes.Buffer{&ta, &tb} {
					if err := os.WriteFile(fmt.Sprintf("%s.%d.%c", *flagTrace, seed, 'a'+i), tr.Bytes(), 0o644); err != nil {
						t.Error(err)
					}
				}
			}
			if a.TraceHash != b.TraceHash {
				t.Errorf("seed %d is not deterministic: trace %x then %x (%d then %d steps)\nreplay: %s", seed, a.TraceHash, b.TraceHash, a.Steps, b.Steps, replayCommand(seed))
			}
		}
		if *flagSeeds > 0 && (seed-base+1)%100 == 0 {
			t.Logf("%d seeds, %d failed, %s", seed-base+1, failed, time.Since(start).Round(time.Second))
		}
	}
	keys := make([]string, 0, len(total))
	for k := range total {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %d\n", k, total[k])
	}
	t.Logf("seeds %d..%d: %d failed; %d steps, %s simulated in %s (%.0f simulated s per s)\n%s", base, base+n-1, failed, steps,
		simTime.Round(time.Second), time.Since(start).Round(time.Second), simTime.Seconds()/time.Since(start).Seconds(), b.String())
}

// TestSimManyRanges runs two seeds at 100 ranges, each twice: with more
// data per store Pebble's memtables rotate during a run, which is where
// its physical layout (and any size read from it) stops being a function
// of the seed (store.LogicalSizes). Seeds 5 and 7 hashed differently in
// every run compared without it.
func TestSimManyRanges(t *testing.T) {
	for _, seed := range []uint64{5, 7} {
		cfg := Defaults(seed)
		cfg.Stores, cfg.Members = 3, 1
		cfg.Ranges, cfg.Keys = 100, max(cfg.Keys, 200)
		a := runSeed(t, cfg, true)
		report(t, a, cfg)
		if b := runSeed(t, cfg, false); a.TraceHash != b.TraceHash {
			t.Errorf("seed %d at 100 ranges is not deterministic: trace %x then %x (%d then %d steps)", seed, a.TraceHash, b.TraceHash, a.Steps, b.Steps)
		}
	}
}

// TestSimPreempted runs seeds once as they are and once with every store
// goroutine yielding to the Go scheduler at its pass points and after
// each wake-up (Config.Preempt), where a loaded machine's preemption may
// stop it: the two traces must hash the same. What the yield let run
// first, found with these seeds: a peer's sender woken by a pass's early
// flush, before the pass's second flush (seeds 1, 3, 65; seed 65 also
// under load); a read or write's waiter woken mid-pass, before the
// pass's applies (seeds 3, 15, 25); two operator steps' executors
// (interleaved 1043, 1068); placement's second ID-batch refill
// (interleaved 1125). As the code changes the traces move: at the last
// check (2026-12-08, after sim-fast) seeds 3, 15, 25 and 65 failed
// without the senders' wake-ups through PassPoints.Wake, seeds 1, 15 and
// 25 without the outcomes'.
func TestSimPreempted(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 15, 25, 65, 1043, 1068, 1125} {
		cfg := Defaults(seed)
		// The shape they were found in (before seeds picked shapes).
		cfg.Stores, cfg.Members = 3, 1
		cfg.Interleave = cfg.Interleave || seed > 1000
		a := runSeed(t, cfg, true)
		report(t, a, cfg)
		cfg.Preempt = true
		if b := runSeed(t, cfg, false); a.TraceHash != b.TraceHash {
			t.Errorf("seed %d preempted is not the same run: trace %x then %x (%d then %d steps)", seed, a.TraceHash, b.TraceHash, a.Steps, b.Steps)
		}
	}
}
