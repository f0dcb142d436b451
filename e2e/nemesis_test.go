package e2e

// The multi-process nemesis: 3 placement members and 3 stores as real
// processes; every store advertises the address of its own fault proxy
// (internal/harness/faultproxy), so all store↔store and client↔store traffic passes
// through the proxies. Clients run a seeded workload through the router
// (Put/Get/CAS on registers, Incr on counters) and record every operation
// with call and return times from one monotonic clock; a seeded nemesis
// injects one fault at a time: kill -9 + restart of a store or a placement
// member, SIGSTOP/SIGCONT, blackhole, one-way stall, connection resets and
// delay at a store's proxy. After healing, every key is read again and the
// history is checked per key. All addresses are on 127.0.0.1.
//
// `go test -short` (make test, .ci/run) runs ~30 s of faults; without
// -short (make e2e) 3 minutes. RANGEKV_NEMESIS_SEED replays a seed.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/harness/faultproxy"
	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// ---------------------------------------------------------------------------
// History: what the workload did, as the checker needs it.

// opKind is one kind of client operation.
type opKind int

const (
	opGet opKind = iota
	opPut
	opCAS
	opIncr
)

func (k opKind) String() string { return [...]string{"get", "put", "cas", "incr"}[k] }

// outcome of an operation as the client saw it.
type outcome int

const (
	outOK      outcome = iota // acknowledged
	outFailed                 // definitely not applied (reads only: nothing to apply)
	outUnknown                // a write that may or may not have applied
)

// histOp is one recorded operation. Times are offsets on one monotonic
// clock (the recorder's start); an unknown write's return is +infinity.
type histOp struct {
	client   int
	kind     opKind
	key      string
	value    string // put/cas: the value written (unique per write)
	expected string // cas: the value compared
	// result: get/cas-not-swapped: the value read (found says whether
	// there was one); cas-swapped: true in swapped; incr: n.
	found   bool
	read    string
	swapped bool
	n       int64
	call    time.Duration
	ret     time.Duration
	outcome outcome
}

func (o histOp) String() string {
	s := fmt.Sprintf("c%d %s %s", o.client, o.kind, o.key)
	switch o.kind {
	case opPut:
		s += " " + o.value
	case opCAS:
		s += fmt.Sprintf(" %s->%s swapped=%v read=%q/%v", o.expected, o.value, o.swapped, o.read, o.found)
	case opGet:
		s += fmt.Sprintf(" = %q/%v", o.read, o.found)
	case opIncr:
		s += fmt.Sprintf(" = %d", o.n)
	}
	return s + fmt.Sprintf(" [%s, %s] %v", o.call, o.ret, o.outcome)
}

// recorder is what the workload writes its history to; the checkers read
// the history from it. The history is checked twice: per key with
// porcupine (internal/histcheck, through toHistcheck) and by the direct
// checks below (checkRegisters/checkCounters), whose messages name the
// offending operations.
type recorder interface {
	now() time.Duration
	record(histOp)
	ops() []histOp
}

type memRecorder struct {
	start time.Time
	mu    sync.Mutex
	all   []histOp
}

func newRecorder() *memRecorder { return &memRecorder{start: time.Now()} }

func (r *memRecorder) now() time.Duration { return time.Since(r.start) } // monotonic

func (r *memRecorder) record(o histOp) {
	r.mu.Lock()
	r.all = append(r.all, o)
	r.mu.Unlock()
}

func (r *memRecorder) ops() []histOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]histOp(nil), r.all...)
}

const forever = time.Duration(1<<63 - 1)

// toHistcheck converts the recorded operations and fault windows into a
// histcheck history (the same clock: offsets from the recorder's start).
func toHistcheck(ops []histOp, faults []histcheck.Fault) histcheck.History {
	h := histcheck.History{Faults: faults}
	for _, o := range ops {
		op := histcheck.Op{Client: o.client, Key: o.key, Call: int64(o.call), Return: int64(o.ret)}
		switch o.kind {
		case opGet:
			op.In = histcheck.Input{Kind: histcheck.Get}
			op.Out = histcheck.Output{Found: o.found, Value: o.read}
		case opPut:
			op.In = histcheck.Input{Kind: histcheck.Put, Value: o.value}
		case opCAS:
			op.In = histcheck.Input{Kind: histcheck.CAS, Value: o.value, Expected: o.expected, ExpectAbsent: o.expected == ""}
			op.Out = histcheck.Output{Swapped: o.swapped, Found: o.found, Value: o.read}
		case opIncr:
			op.In = histcheck.Input{Kind: histcheck.Incr, Delta: 1}
			op.Out = histcheck.Output{N: o.n}
		}
		switch o.outcome {
		case outOK:
			op.Outcome = histcheck.OutcomeOK
		case outFailed:
			op.Outcome = histcheck.OutcomeFailed
		default:
			op.Outcome = histcheck.OutcomeUnknown
		}
		h.Ops = append(h.Ops, op)
	}
	return h
}

// ---------------------------------------------------------------------------
// Minimal checks (until internal/histcheck lands).

// checkRegisters checks each register key: every value read was written
// by a write that started before the read returned; no read returns a
// value overwritten by an acknowledged write that finished before the read
// started (a stale read, or a lost acknowledged write when the read is the
// final one); absent is read only before any acknowledged write finished.
// CAS compares count as reads: a swap read its expected value, a refused
// CAS read the value it returned.
func checkRegisters(ops []histOp) []string {
	byKey := map[string][]histOp{}
	for _, o := range ops {
		if o.kind != opIncr {
			byKey[o.key] = append(byKey[o.key], o)
		}
	}
	var problems []string
	for _, kops := range byKey {
		writes := map[string]histOp{}
		var acked []histOp
		for _, o := range kops {
			if o.kind == opPut || (o.kind == opCAS && o.outcome != outOK) || (o.kind == opCAS && o.swapped) {
				writes[o.value] = o
				if o.outcome == outOK {
					acked = append(acked, o)
				}
			}
		}
		checkRead := func(r histOp, found bool, v string) {
			if !found {
				for _, w := range acked {
					if w.ret < r.call {
						problems = append(problems, fmt.Sprintf("%s: read nothing, but %s was acknowledged before the read started", r, w))
						return
					}
				}
				return
			}
			w, ok := writes[v]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: read %q, which no write wrote", r, v))
				return
			}
			if w.call > r.ret {
				problems = append(problems, fmt.Sprintf("%s: read %q from %s, which started after the read returned", r, v, w))
				return
			}
			for _, w2 := range acked {
				if w2.value != v && w2.call > w.ret && w2.ret < r.call {
					problems = append(problems, fmt.Sprintf("%s: stale: read %q (from %s) after %s was acknowledged", r, v, w, w2))
					return
				}
			}
		}
		for _, o := range kops {
			if o.outcome != outOK {
				continue
			}
			switch {
			case o.kind == opGet:
				checkRead(o, o.found, o.read)
			case o.kind == opCAS && o.swapped:
				checkRead(o, o.expected != "", o.expected)
			case o.kind == opCAS:
				checkRead(o, o.found, o.read)
			}
		}
	}
	return problems
}

// checkCounters checks each counter (Incr by 1): acknowledged results are
// distinct (an increment neither lost nor applied twice); an increment
// that returned before another started has a smaller result; the final
// value lies between the acknowledged increments and those plus the
// unknown ones.
func checkCounters(ops []histOp, final map[string]int64) []string {
	byKey := map[string][]histOp{}
	for _, o := range ops {
		if o.kind == opIncr {
			byKey[o.key] = append(byKey[o.key], o)
		}
	}
	var problems []string
	for key, kops := range byKey {
		seen := map[int64]histOp{}
		acked, unknown := 0, 0
		for _, o := range kops {
			if o.outcome != outOK {
				unknown++
				continue
			}
			acked++
			if p, dup := seen[o.n]; dup {
				problems = append(problems, fmt.Sprintf("%s and %s both returned %d", p, o, o.n))
			}
			seen[o.n] = o
		}
		for _, a := range kops {
			for _, b := range kops {
				if a.outcome == outOK && b.outcome == outOK && a.ret < b.call && a.n >= b.n {
					problems = append(problems, fmt.Sprintf("%s returned before %s started but its result is not smaller", a, b))
				}
			}
		}
		f := final[key]
		if f < int64(acked) || f > int64(acked+unknown) {
			problems = append(problems, fmt.Sprintf("counter %s = %d after %d acknowledged and %d unknown increments", key, f, acked, unknown))
		}
	}
	return problems
}

// TestNemesisChecksCatchViolations: the checks can fail — hand-made
// histories with a stale read, a lost acknowledged write, a value never
// written and a doubled increment are caught; legal histories are not.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestNemesisChecksCatchViolations(t *testing.T) {
	put := func(c int, v string, call, ret int, out outcome) histOp {
		o := histOp{client: c, kind: opPut, key: "k", value: v, call: ms(call), ret: ms(ret), outcome: out}
		if out == outUnknown {
			o.ret = forever
		}
		return o
	}
	get := func(c int, v string, found bool, call, ret int) histOp {
		return histOp{client: c, kind: opGet, key: "k", read: v, found: found, call: ms(call), ret: ms(ret), outcome: outOK}
	}
	incr := func(c int, n int64, call, ret int, out outcome) histOp {
		o := histOp{client: c, kind: opIncr, key: "n", n: n, call: ms(call), ret: ms(ret), outcome: out}
		if out == outUnknown {
			o.ret = forever
		}
		return o
	}
	for _, c := range []struct {
		name  string
		ops   []histOp
		final map[string]int64
		want  string // "" = no problem
		// porcupine: histcheck finds the history not linearizable (it
		// sees no final counter value, so a double increment with no
		// later read is legal to it).
		porcupine bool
	}{
		{"sequential", []histOp{put(1, "a", 0, 10, outOK), get(2, "a", true, 20, 30), put(1, "b", 40, 50, outOK), get(2, "b", true, 60, 70)}, nil, "", false},
		{"concurrent read may see either", []histOp{put(1, "a", 0, 10, outOK), put(1, "b", 20, 50, outOK), get(2, "a", true, 30, 40)}, nil, "", false},
		{"unknown write may appear late", []histOp{put(1, "a", 0, 10, outUnknown), get(2, "a", true, 500, 510)}, nil, "", false},
		{"stale read", []histOp{put(1, "a", 0, 10, outOK), put(1, "b", 20, 30, outOK), get(2, "a", true, 40, 50)}, nil, "stale", true},
		{"lost acknowledged write", []histOp{put(1, "a", 0, 10, outOK), get(2, "", false, 20, 30)}, nil, "read nothing", true},
		{"value never written", []histOp{put(1, "a", 0, 10, outOK), get(2, "zz", true, 20, 30)}, nil, "no write wrote", true},
		{"read from the future", []histOp{get(2, "a", true, 0, 10), put(1, "a", 20, 30, outOK)}, nil, "started after", true},
		{"counter ok", []histOp{incr(1, 1, 0, 10, outOK), incr(2, 2, 20, 30, outOK), incr(1, 0, 40, 0, outUnknown)}, map[string]int64{"n": 3}, "", false},
		{"increment applied twice", []histOp{incr(1, 1, 0, 10, outOK), incr(2, 2, 20, 30, outOK)}, map[string]int64{"n": 3}, "after 2 acknowledged and 0 unknown", false},
		{"duplicate result", []histOp{incr(1, 1, 0, 10, outOK), incr(2, 1, 5, 30, outOK)}, map[string]int64{"n": 2}, "both returned", true},
		{"increment order", []histOp{incr(1, 2, 0, 10, outOK), incr(2, 1, 20, 30, outOK)}, map[string]int64{"n": 2}, "not smaller", true},
	} {
		probs := append(checkRegisters(c.ops), checkCounters(c.ops, c.final)...)
		got := strings.Join(probs, "\n")
		switch {
		case c.want == "" && len(probs) > 0:
			t.Errorf("%s: unexpected problems:\n%s", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: want a problem mentioning %q, got:\n%s", c.name, c.want, got)
		}
		if v := histcheck.Check(toHistcheck(c.ops, nil), 10*time.Second); v.Violated() != c.porcupine {
			t.Errorf("%s: porcupine says violated=%v (%s), want %v", c.name, v.Violated(), v, c.porcupine)
		}
	}
}

// ---------------------------------------------------------------------------
// Cluster: placement members and stores behind proxies.

type nemesisCluster struct {
	t         *testing.T
	pds       []*proc
	pdAddrs   []string
	stores    []*proc
	storeHTTP []string
	proxies   []*faultproxy.Proxy
	stopped   []bool // SIGSTOPped stores
}

func startNemesisCluster(t *testing.T) *nemesisCluster {
	t.Helper()
	bin := placementBin(t)
	base := t.TempDir()
	addrs := freeAddrs(t, 12)
	c := &nemesisCluster{t: t}
	var members []procs.Peer
	for i := range 3 {
		c.pdAddrs = append(c.pdAddrs, addrs[2*i])
		members = append(members, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
	}
	for i := range 3 {
		p := newProc(t, fmt.Sprintf("placement%d", i+1), bin, filepath.Join(base, fmt.Sprintf("pd%d.log", i+1)), procs.PlacementArgs{
			ID: uint64(i + 1), Addr: addrs[2*i], HTTPAddr: addrs[2*i+1], DataDir: filepath.Join(base, fmt.Sprintf("pd%d", i+1)),
			InitialCluster: members,
			Extra:          pdTestFlags,
		}.Args()...)
		p.start()
		c.pds = append(c.pds, p)
	}
	for i := range 3 {
		addr, httpAddr := addrs[6+2*i], addrs[7+2*i]
		px, err := faultproxy.New("127.0.0.1:0", addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		c.proxies = append(c.proxies, px)
		c.storeHTTP = append(c.storeHTTP, httpAddr)
		args := procs.StoreArgs{Addr: addr, HTTPAddr: httpAddr, DataDir: filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			Placement: c.pdAddrs, Extra: joinedStoreFlags("--advertise-addr", px.Addr())}
		p := newProc(t, fmt.Sprintf("store%d", i+1), filepath.Join(binDir, "rangekv-store"),
			filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...)
		p.start()
		c.stores = append(c.stores, p)
	}
	c.stopped = make([]bool, 3)
	t.Cleanup(func() {
		for i, p := range c.stores { // a stopped process still gets SIGKILL, but be explicit
			if c.stopped[i] && p.running() {
				p.signal(syscall.SIGCONT)
			}
		}
	})
	return c
}

func (c *nemesisCluster) all() []*proc { return append(append([]*proc{}, c.pds...), c.stores...) }

// waitReplicated waits until placement reports range 1 with three voters
// on three stores.
func (c *nemesisCluster) waitReplicated(timeout time.Duration) {
	c.t.Helper()
	var pcs []rangekvpb.PlacementClient
	for _, a := range c.pdAddrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.t.Fatal(err)
		}
		defer conn.Close()
		pcs = append(pcs, rangekvpb.NewPlacementClient(conn))
	}
	waitFor(c.t, "range 1 with 3 voters on 3 stores", timeout, func() bool {
		checkProcs(c.t, c.all()...)
		for _, pc := range pcs {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: 1})
			cancel()
			if err != nil || r.Error != nil || len(r.Ranges) != 1 {
				continue
			}
			voters := 0
			for _, rep := range r.Ranges[0].Descriptor_.Replicas {
				if rep.Role == rangekvpb.ReplicaRole_VOTER {
					voters++
				}
			}
			return voters == 3
		}
		return false
	})
}

// heal clears every fault: proxies pass, stopped stores continue, dead
// processes restart.
func (c *nemesisCluster) heal() {
	for _, px := range c.proxies {
		px.Heal()
	}
	for i, p := range c.stores {
		if c.stopped[i] {
			p.signal(syscall.SIGCONT)
			c.stopped[i] = false
		}
		if !p.running() {
			p.start()
		}
	}
	for _, p := range c.pds {
		if !p.running() {
			p.start()
		}
	}
}

// ---------------------------------------------------------------------------
// Workload and nemesis.

var (
	nemRegisters = []string{"nem/r0", "nem/r1", "nem/r2", "nem/r3"}
	nemCounters  = []string{"nem/c0", "nem/c1"}
)

const nemOpTimeout = 2 * time.Second

// runClient runs one client's seeded operations until ctx ends.
func runClient(ctx context.Context, cl *router.Client, rec recorder, id int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	lastRead := map[string]string{}
	for seq := 0; ctx.Err() == nil; seq++ {
		o := histOp{client: id}
		p := rng.IntN(100)
		switch {
		case p < 40:
			o.kind, o.key = opGet, nemRegisters[rng.IntN(len(nemRegisters))]
		case p < 70:
			o.kind, o.key = opPut, nemRegisters[rng.IntN(len(nemRegisters))]
		case p < 88:
			o.kind, o.key = opCAS, nemRegisters[rng.IntN(len(nemRegisters))]
		default:
			o.kind, o.key = opIncr, nemCounters[rng.IntN(len(nemCounters))]
		}
		o.value = fmt.Sprintf("c%d-%d", id, seq)
		o.expected = lastRead[o.key]
		opCtx, cancel := context.WithTimeout(ctx, nemOpTimeout)
		o.call = rec.now()
		var err error
		switch o.kind {
		case opGet:
			var v []byte
			v, o.found, err = cl.Get(opCtx, []byte(o.key))
			o.read = string(v)
		case opPut:
			err = cl.Put(opCtx, []byte(o.key), []byte(o.value))
		case opCAS:
			var res router.CASResult
			res, err = cl.CAS(opCtx, []byte(o.key), []byte(o.expected), o.expected == "", []byte(o.value))
			o.swapped, o.found, o.read = res.Swapped, res.Found, string(res.Value)
		case opIncr:
			o.n, err = cl.Incr(opCtx, []byte(o.key), 1)
		}
		o.ret = rec.now()
		cancel()
		switch {
		case err == nil:
			o.outcome = outOK
			if o.kind == opGet || (o.kind == opCAS && !o.swapped) {
				lastRead[o.key] = o.read
			} else if o.kind == opCAS || o.kind == opPut {
				lastRead[o.key] = o.value
			}
		case o.kind == opGet:
			o.outcome = outFailed
		default:
			// Any write error may hide an applied write: unknown, with
			// its return at +infinity.
			o.outcome, o.ret = outUnknown, forever
		}
		if ctx.Err() != nil && err != nil && o.outcome == outFailed {
			continue // cancelled at the end: nothing happened
		}
		rec.record(o)
	}
}

func (c *nemesisCluster) faults(rng *rand.Rand) []func() (kind, target string) {
	store := func() int { return rng.IntN(len(c.stores)) }
	return []func() (string, string){
		func() (string, string) {
			i := store()
			c.stores[i].kill9()
			return "kill -9 store", fmt.Sprintf("store%d", i+1)
		},
		func() (string, string) {
			i := store()
			c.stores[i].signal(syscall.SIGSTOP)
			c.stopped[i] = true
			return "SIGSTOP/SIGCONT store", fmt.Sprintf("store%d", i+1)
		},
		func() (string, string) {
			i := store()
			c.proxies[i].Blackhole()
			return "blackhole", fmt.Sprintf("store%d", i+1)
		},
		func() (string, string) {
			i := store()
			c.proxies[i].StallOneWay(faultproxy.FromTarget)
			return "one-way stall (from store)", fmt.Sprintf("store%d", i+1)
		},
		func() (string, string) {
			i := store()
			c.proxies[i].Refuse()
			return "refuse+reset", fmt.Sprintf("store%d", i+1)
		},
		func() (string, string) {
			for _, px := range c.proxies {
				px.SetDelay(30 * time.Millisecond)
			}
			return "delay 30ms", "every store"
		},
		func() (string, string) {
			i := rng.IntN(len(c.pds))
			c.pds[i].kill9()
			return "kill -9 placement", fmt.Sprintf("placement%d", i+1)
		},
	}
}

func nemesisSeed(t *testing.T) uint64 {
	if s := os.Getenv("RANGEKV_NEMESIS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RANGEKV_NEMESIS_SEED: %v", err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

func TestNemesisProcesses(t *testing.T) {
	duration := 3 * time.Minute
	if testing.Short() {
		duration = 30 * time.Second
	}
	seed := nemesisSeed(t)
	t.Logf("seed %d (replay: RANGEKV_NEMESIS_SEED=%d go test -run TestNemesisProcesses ./e2e/)", seed, seed)
	c := startNemesisCluster(t)
	c.waitReplicated(60 * time.Second)

	cl, err := router.New(c.pdAddrs, router.Options{Seed: seed, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, "a first write through the router", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Put(ctx, []byte("nem/ready"), []byte("1")) == nil
	})

	// Two ranges: the registers straddle a split.
	admin, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a split at nem/r2", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, err := admin.Split(ctx, []byte("nem/r2"))
		if err != nil {
			t.Logf("split: %v", err)
		}
		return err == nil
	})

	rec := newRecorder()
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := range 4 {
		wg.Go(func() { runClient(ctx, cl, rec, id, seed) })
	}

	rng := rand.New(rand.NewPCG(seed, 0x6e656d))
	faults := c.faults(rng)
	counts := map[string]int{}
	deadline := time.Now().Add(duration)
	var events []string
	var faultWindows []histcheck.Fault
	for time.Now().Before(deadline) {
		// Healthy for a while, then one fault held for 1–3 s.
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		start := rec.now()
		kind, target := faults[rng.IntN(len(faults))]()
		counts[kind]++
		events = append(events, fmt.Sprintf("%s %s %s", rec.now().Round(time.Millisecond), kind, target))
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		c.heal()
		faultWindows = append(faultWindows, histcheck.Fault{Name: kind, Detail: target, Start: int64(start), End: int64(rec.now())})
		events = append(events, fmt.Sprintf("%s heal", rec.now().Round(time.Millisecond)))
	}
	stopLoad()
	wg.Wait()
	c.heal()
	checkProcs(t, c.all()...)

	// Final reads after healing: each register and counter once more,
	// recorded as operations of their own client.
	final := map[string]int64{}
	finalCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, k := range nemRegisters {
		o := histOp{client: -1, kind: opGet, key: k}
		var v []byte
		var err error
		waitFor(t, "a final read of "+k, 60*time.Second, func() bool {
			o.call = rec.now()
			v, o.found, err = cl.Get(finalCtx, []byte(k))
			o.ret = rec.now()
			return err == nil
		})
		o.read = string(v)
		rec.record(o)
	}
	for _, k := range nemCounters {
		waitFor(t, "a final read of "+k, 60*time.Second, func() bool {
			v, found, err := cl.Get(finalCtx, []byte(k))
			if err != nil {
				return false
			}
			if found {
				n, perr := strconv.ParseInt(string(v), 10, 64)
				if perr != nil {
					t.Fatalf("counter %s holds %q", k, v)
				}
				final[k] = n
			}
			return true
		})
	}

	ops := rec.ops()
	byOutcome := map[outcome]int{}
	for _, o := range ops {
		byOutcome[o.outcome]++
	}
	problems := append(checkRegisters(ops), checkCounters(ops, final)...)
	// Per-key linearizability with porcupine (registers with Get, Put and
	// CAS; counters with Incr); a failing history is written as HTML with
	// the fault windows on its timeline.
	hist := toHistcheck(ops, faultWindows)
	verdict := histcheck.Check(hist, time.Minute)
	t.Logf("porcupine: %s", verdict)
	if bad := append(append([]string{}, verdict.Violations...), verdict.LostWrites...); len(bad) > 0 || len(verdict.TimedOut) > 0 {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("rangekv-e2e-nemesis-%d.html", seed))
		if err := histcheck.Visualize(hist, append(bad, verdict.TimedOut...), path, time.Minute); err != nil {
			t.Log(err)
		} else {
			t.Logf("history written to %s", path)
		}
		problems = append(problems, fmt.Sprintf("porcupine: %d keys not linearizable %v, %d lost writes %v, %d checks timed out %v",
			len(verdict.Violations), verdict.Violations, len(verdict.LostWrites), verdict.LostWrites, len(verdict.TimedOut), verdict.TimedOut))
	}
	t.Logf("seed %d: %d operations (%d acknowledged, %d failed reads, %d unknown writes) on %d registers and %d counters; faults %v",
		seed, len(ops), byOutcome[outOK], byOutcome[outFailed], byOutcome[outUnknown], len(nemRegisters), len(nemCounters), counts)
	if byOutcome[outOK] < 100 {
		problems = append(problems, fmt.Sprintf("only %d acknowledged operations: the workload made too little progress to check", byOutcome[outOK]))
	}
	if len(problems) > 0 {
		t.Logf("fault timeline:\n  %s", strings.Join(events, "\n  "))
		for i, p := range problems {
			if i == 20 {
				t.Errorf("... and %d more", len(problems)-20)
				break
			}
			t.Error(p)
		}
		t.Fatalf("seed %d: %d problems (replay: RANGEKV_NEMESIS_SEED=%d go test -run TestNemesisProcesses ./e2e/)", seed, len(problems), seed)
	}
}
