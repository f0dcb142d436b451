// rangekv check: a checked workload against a live cluster. Clients run
// random single-key operations on keys of their own (every write a unique
// value), optionally while the command injects the faults it may
// (leader transfers, splits, replica moves through placement); the
// history is checked per key for linearizability (porcupine) and the
// verdict printed. Exit 0: linearizable; 1: a violation (the history is
// written as HTML to --out); 4: inconclusive (a check timed out) or an
// error.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/router"
)

// checkFaults are the faults rangekv check may inject.
var checkFaults = []string{"leader-transfer", "split", "move"}

// checkVerdict is what rangekv check prints.
type checkVerdict struct {
	Result string `json:"verdict"` // linearizable, violation or inconclusive
	histcheck.Verdict
	Clients       int            `json:"clients"`
	DurationMS    int64          `json:"duration_ms"`
	Faults        map[string]int `json:"faults"`
	FaultErrors   int            `json:"fault_errors"`
	Visualization string         `json:"visualization,omitempty"`
	KeyPrefix     string         `json:"key_prefix"`
}

func (a *app) checkCmd() *cobra.Command {
	var (
		dur, opTimeout, checkTimeout, interval time.Duration
		clients, nkeys                         int
		faults, out, prefix                    string
		seed                                   uint64
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "run a checked workload and verify it is linearizable",
		Long: `check runs --clients concurrent clients for --duration, each doing random
get, put, delete, incr and cas operations on --keys keys of its own prefix
(every write a unique value), optionally while injecting the faults named
by --faults (leader-transfer, split, move: through placement, so they need
--placement). It then checks the history of every key for linearizability
and that no acknowledged write was lost, and prints the verdict.

Exit codes: 0 linearizable; 1 a violation (the failing keys' history is
written to --out as HTML: open it in a browser); 2 bad usage; 4 inconclusive
(a key's check ran out of --check-timeout) or another error.
The keys are left in the cluster under --key-prefix.`,
		Example: `  rangekv --placement 127.0.0.1:7401 check --duration 30s
  rangekv --placement 127.0.0.1:7401 check --duration 2m --clients 16 --faults leader-transfer,split,move --out check.html
  rangekv -o json --placement 127.0.0.1:7401 check --duration 10s --keys 20`,
		Args: argsBetween(0, 0, ""),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			switch {
			case dur <= 0:
				return usageErrorf("duration: must be positive, got %s", dur)
			case clients < 1 || clients > 256:
				return usageErrorf("clients: must be between 1 and 256, got %d", clients)
			case nkeys < 1 || nkeys > 10000:
				return usageErrorf("keys: must be between 1 and 10000, got %d", nkeys)
			case opTimeout <= 0 || checkTimeout <= 0 || interval <= 0:
				return usageErrorf("op-timeout, check-timeout and fault-interval: must be positive")
			}
			var kinds []string
			for _, f := range strings.Split(faults, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				if !slices.Contains(checkFaults, f) {
					return usageErrorf("faults: %q is not one of %s", f, strings.Join(checkFaults, ", "))
				}
				kinds = append(kinds, f)
			}
			if len(kinds) > 0 && len(a.g.cluster.placement) == 0 {
				return usageErrorf("faults: need the placement driver (--placement)")
			}
			if seed == 0 {
				seed = uint64(a.now().UnixNano())
			}
			if prefix == "" {
				prefix = fmt.Sprintf("rangekv-check/%d/", seed)
			}
			return a.runCheck(cmd.Context(), checkRun{dur: dur, opTimeout: opTimeout, checkTimeout: checkTimeout, interval: interval,
				clients: clients, keys: nkeys, faults: kinds, out: out, prefix: prefix, seed: seed})
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&dur, "duration", 10*time.Second, "how long the workload runs")
	f.IntVar(&clients, "clients", 4, "concurrent clients")
	f.IntVar(&nkeys, "keys", 8, "keys the clients share")
	f.StringVar(&faults, "faults", "", "faults to inject, comma-separated: leader-transfer,split,move")
	f.DurationVar(&interval, "fault-interval", time.Second, "time between injected faults")
	f.DurationVar(&opTimeout, "op-timeout", 5*time.Second, "timeout of one operation (a write that times out has an unknown outcome)")
	f.DurationVar(&checkTimeout, "check-timeout", 30*time.Second, "time the checker may spend on one key")
	f.StringVar(&out, "out", "rangekv-check.html", "where the visualization of a failing history is written")
	f.StringVar(&prefix, "key-prefix", "", "prefix of the keys used (default rangekv-check/<seed>/)")
	f.Uint64Var(&seed, "seed", 0, "seed of the operation and fault choices (default: from the clock)")
	return cmd
}

type checkRun struct {
	dur, opTimeout, checkTimeout, interval time.Duration
	clients, keys                          int
	faults                                 []string
	out, prefix                            string
	seed                                   uint64
}

func (a *app) runCheck(ctx context.Context, r checkRun) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var kvs []histcheck.KV
	for i := range r.clients {
		c, err := a.client(router.Options{Seed: r.seed + uint64(i) + 1})
		if err != nil {
			return err
		}
		defer c.Close()
		kv, ok := c.(histcheck.KV)
		if !ok {
			return fmt.Errorf("check: client %T cannot run a checked workload", c)
		}
		kvs = append(kvs, kv)
	}
	keys := make([]string, r.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%04d", r.prefix, i)
	}
	rec := histcheck.NewRecorder()
	v := checkVerdict{Clients: r.clients, Faults: map[string]int{}, KeyPrefix: r.prefix}
	start := a.now()
	wctx, cancel := context.WithTimeout(ctx, r.dur)
	defer cancel()
	var wg sync.WaitGroup
	for i, kv := range kvs {
		rng := rand.New(rand.NewPCG(r.seed, uint64(i)))
		wg.Go(func() { histcheck.Worker(wctx, rec, kv, i, keys, rng, r.opTimeout) })
	}
	if len(r.faults) > 0 {
		adm, err := a.admin("check --faults")
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		defer adm.Close()
		a.injectFaults(wctx, adm, rec, r, keys, &v)
	}
	wg.Wait()
	if un := histcheck.FinalReads(ctx, rec, kvs[0], r.clients, keys, time.Now().Add(r.opTimeout*4)); len(un) > 0 {
		fmt.Fprintf(a.stderr, "check: could not read %d keys at the end; the lost-write check skips them\n", len(un))
	}
	v.DurationMS = a.now().Sub(start).Milliseconds()
	h := rec.History()
	v.Verdict = histcheck.Check(h, r.checkTimeout)
	switch {
	case v.Violated():
		v.Result = "violation"
	case !v.Linearizable():
		v.Result = "inconclusive"
	default:
		v.Result = "linearizable"
	}
	if v.Violated() {
		bad := append(slices.Clone(v.Violations), v.LostWrites...)
		if err := histcheck.Visualize(h, bad, r.out, r.checkTimeout); err != nil {
			fmt.Fprintf(a.stderr, "check: %v\n", err)
		} else {
			v.Visualization = r.out
		}
	}
	if err := a.printCheck(v); err != nil {
		return err
	}
	switch v.Result {
	case "violation":
		return &exitError{code: exitNotFound, err: fmt.Errorf("check: linearizability violated on %d keys", len(v.Violations)+len(v.LostWrites))}
	case "inconclusive":
		return &exitError{code: exitFailure, err: fmt.Errorf("check: inconclusive: %d keys ran out of --check-timeout", len(v.TimedOut))}
	}
	return nil
}

// injectFaults injects one fault every interval until ctx ends, recording
// each on the history's timeline.
func (a *app) injectFaults(ctx context.Context, adm adminClient, rec *histcheck.Recorder, r checkRun, keys []string, v *checkVerdict) {
	rng := rand.New(rand.NewPCG(r.seed, 0xfa))
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		kind := r.faults[rng.IntN(len(r.faults))]
		start := rec.Now()
		detail, err := a.injectOne(ctx, adm, kind, rng, keys)
		if err != nil {
			v.FaultErrors++
			detail += ": " + err.Error()
		} else {
			v.Faults[kind]++
		}
		rec.Fault(kind, detail, start)
	}
}

func (a *app) injectOne(ctx context.Context, adm adminClient, kind string, rng *rand.Rand, keys []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	defer cancel()
	key := []byte(keys[rng.IntN(len(keys))])
	if kind == "split" {
		_, _, err := adm.Split(ctx, key)
		return fmt.Sprintf("split at %q", key), err
	}
	ri, err := adm.RangeForKey(ctx, key)
	if err != nil {
		return "find the range of " + string(key), err
	}
	d := ri.Descriptor_
	stores, err := adm.Stores(ctx)
	if err != nil {
		return "list stores", err
	}
	var on, off []uint64
	for _, s := range stores {
		id := s.GetStore().GetStoreId()
		if replicaOn(d, id) != nil {
			on = append(on, id)
		} else {
			off = append(off, id)
		}
	}
	sort.Slice(on, func(i, j int) bool { return on[i] < on[j] })
	sort.Slice(off, func(i, j int) bool { return off[i] < off[j] })
	switch kind {
	case "leader-transfer":
		var cands []uint64
		for _, id := range on {
			if id != ri.LeaderStoreId {
				cands = append(cands, id)
			}
		}
		if len(cands) == 0 {
			return fmt.Sprintf("range %d has no other replica", d.RangeId), fmt.Errorf("nothing to do")
		}
		to := cands[rng.IntN(len(cands))]
		_, err := adm.TransferLeader(ctx, d.RangeId, to)
		return fmt.Sprintf("range %d leader to store %d", d.RangeId, to), err
	default: // move
		if len(on) == 0 || len(off) == 0 {
			return fmt.Sprintf("range %d: no store to move to", d.RangeId), fmt.Errorf("nothing to do")
		}
		from, to := on[rng.IntN(len(on))], off[rng.IntN(len(off))]
		_, err := adm.MoveReplica(ctx, d.RangeId, from, to)
		return fmt.Sprintf("range %d replica from store %d to %d", d.RangeId, from, to), err
	}
}

func (a *app) printCheck(v checkVerdict) error {
	if a.g.output == formatJSON {
		enc := json.NewEncoder(a.stdout)
		return enc.Encode(v)
	}
	w := a.stdout
	fmt.Fprintf(w, "verdict:      %s\n", v.Result)
	fmt.Fprintf(w, "operations:   %d (%d ok, %d failed, %d unknown outcome) by %d clients in %s\n",
		v.Ops, v.OK, v.Failed, v.Unknown, v.Clients, time.Duration(v.DurationMS)*time.Millisecond)
	fmt.Fprintf(w, "keys checked: %d (%d with a final read checked for lost writes)\n", v.Keys, v.FinalChecked)
	fmt.Fprintf(w, "violations:   %d %v\n", len(v.Violations), v.Violations)
	fmt.Fprintf(w, "lost writes:  %d %v\n", len(v.LostWrites), v.LostWrites)
	fmt.Fprintf(w, "timed out:    %d %v\n", len(v.TimedOut), v.TimedOut)
	if len(v.Faults) > 0 || v.FaultErrors > 0 {
		var fs []string
		for k, n := range v.Faults {
			fs = append(fs, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(fs)
		fmt.Fprintf(w, "faults:       %s (%d not applied)\n", strings.Join(fs, " "), v.FaultErrors)
	}
	if v.Visualization != "" {
		fmt.Fprintf(w, "history:      %s\n", v.Visualization)
	}
	return nil
}
