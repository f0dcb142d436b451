package nemesis

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

var (
	flagSeed     = flag.Uint64("nemesis.seed", 0, "run only this seed (replays a failed run); env RANGEKV_NEMESIS_SEED")
	flagSeeds    = flag.Int("nemesis.seeds", 0, "number of seeds (default 20); env RANGEKV_NEMESIS_SEEDS")
	flagBase     = flag.Uint64("nemesis.base", 0, "first seed (default 1); env RANGEKV_NEMESIS_BASE")
	flagDuration = flag.Duration("nemesis.duration", 0, "workload time per seed (default 3s); env RANGEKV_NEMESIS_DURATION")
)

// setting resolves a flag, then its environment variable, then def.
func setting[T any](flagVal T, zero T, env string, parse func(string) (T, error), def T) T {
	if any(flagVal) != any(zero) {
		return flagVal
	}
	if s := os.Getenv(env); s != "" {
		v, err := parse(s)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: %v", env, s, err))
		}
		return v
	}
	return def
}

func parseU(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// params of one run.
type params struct {
	seed     uint64
	duration time.Duration
	clients  int
	keys     int
	stores   int
	knobs    func(k *store.TestingKnobs)
	// outDir receives the visualization of a failing history.
	outDir string
}

func (p params) repro() string {
	return fmt.Sprintf("go test -count=1 -run 'TestNemesis$' ./internal/harness/nemesis/ -nemesis.seed=%d -nemesis.duration=%s", p.seed, p.duration)
}

// TestNemesis runs the nemesis for 20 seeds (or as configured) and
// requires 0 linearizability violations, 0 lost acknowledged writes and 0
// divergent replicas for each.
func TestNemesis(t *testing.T) {
	dur := setting(*flagDuration, 0, "RANGEKV_NEMESIS_DURATION", time.ParseDuration, 3*time.Second)
	var seeds []uint64
	if s := setting(*flagSeed, 0, "RANGEKV_NEMESIS_SEED", parseU, 0); s != 0 {
		seeds = []uint64{s}
	} else {
		n := setting(*flagSeeds, 0, "RANGEKV_NEMESIS_SEEDS", strconv.Atoi, 20)
		base := setting(*flagBase, 0, "RANGEKV_NEMESIS_BASE", parseU, 1)
		for i := range n {
			seeds = append(seeds, base+uint64(i))
		}
	}
	totals := map[string]int{}
	histories := 0
	for _, seed := range seeds {
		p := params{seed: seed, duration: dur, clients: 4, keys: 6, stores: 4}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			res := run(t, p)
			if !res.verdict.Linearizable() || res.diverged != "" || res.strays != "" {
				t.Errorf("seed %d failed: %s; divergence: %q; stale replicas left: %q\nreplay: %s\nvisualization: %s", seed, res.verdict, res.diverged, res.strays, p.repro(), res.viz)
			}
			for k, n := range res.faults {
				totals[k] += n
			}
			histories += res.verdict.Keys
			t.Logf("seed %d: %s; faults %v", seed, res.verdict, res.faults)
		})
	}
	t.Logf("nemesis: %d seeds, %d per-key histories checked, faults applied %v", len(seeds), histories, totals)
	if len(seeds) >= 4 {
		for _, k := range mustFaults {
			if totals[k] == 0 {
				t.Errorf("no %s fault was applied across %d seeds", k, len(seeds))
			}
		}
	}
}

// TestNemesisCatchesDoubleIncr runs a deliberately broken store (every
// Incr applied twice) under the nemesis: the checker must report it.
func TestNemesisCatchesDoubleIncr(t *testing.T) {
	p := params{seed: 7, duration: 1500 * time.Millisecond, clients: 3, keys: 3, stores: 4,
		knobs: func(k *store.TestingKnobs) { k.TestingApplyIncrTwice = true }, outDir: t.TempDir()}
	res := run(t, p)
	if len(res.verdict.Violations) == 0 {
		t.Fatalf("the checker missed a store that applies every Incr twice: %s", res.verdict)
	}
	if _, err := os.Stat(res.viz); err != nil {
		t.Fatalf("no visualization of the failing history: %v", err)
	}
	t.Logf("caught: %s (visualization %s)", res.verdict, res.viz)
}

type result struct {
	verdict  histcheck.Verdict
	faults   map[string]int
	diverged string
	// strays lists replicas left on stores their range no longer lists.
	strays string
	viz    string
}

// nem is one run's world.
type nem struct {
	t       *testing.T
	p       params
	c       *testcluster.PDCluster
	f       *Faults
	rec     *histcheck.Recorder
	rng     *rand.Rand
	admin   *router.Admin
	ids     []uint64 // store ID of store index i
	applied map[string]int
}

func run(t *testing.T, p params) result {
	f := NewFaults(p.seed)
	c := testcluster.StartPD(t, p.stores, testcluster.PDOptions{Members: 3, Crashable: true,
		ConfigurePD: func(_ int, cfg *placement.Config) {
			cfg.StoreDownGrace = time.Second
			cfg.MaxStoreDownTime = time.Hour // crashed stores come back; no repair races
		},
		Configure: func(_ int, cfg *store.Config) {
			cfg.ProposalTimeout = 2 * time.Second
			cfg.SplitCheckInterval = time.Hour
			cfg.ReplicaGCInterval = 500 * time.Millisecond // strays are checked at the end
			k := &store.TestingKnobs{DropRaftMessage: f.DropRaftMessage, RaftBatchFault: f.RaftBatchFault}
			if p.knobs != nil {
				p.knobs(k)
			}
			cfg.Knobs = k
		}})
	n := &nem{t: t, p: p, c: c, f: f, rec: histcheck.NewRecorder(),
		rng: rand.New(rand.NewPCG(p.seed, 0x6e656d)), applied: map[string]int{}}
	for _, s := range c.Stores {
		n.ids = append(n.ids, s.StoreID())
	}
	ac := n.client(0)
	adm, err := ac.Admin()
	if err != nil {
		t.Fatal(err)
	}
	n.admin = adm
	n.waitReplicated()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range p.clients {
		cl := n.client(uint64(i + 1))
		rng := rand.New(rand.NewPCG(p.seed, uint64(i+1)))
		wg.Go(func() { histcheck.Worker(ctx, n.rec, cl, i, n.keyList(), rng, 2*time.Second) })
	}
	n.nemesis(p.duration)
	n.healAll()
	cancel()
	wg.Wait()
	n.finalReads()

	h := n.rec.History()
	res := result{verdict: histcheck.Check(h, 20*time.Second), faults: n.applied}
	if !res.verdict.Linearizable() {
		dir := p.outDir
		if dir == "" {
			dir = vizDir(t)
		}
		res.viz = filepath.Join(dir, fmt.Sprintf("nemesis-seed-%d.html", p.seed))
		keys := append(append(slices.Clone(res.verdict.Violations), res.verdict.LostWrites...), res.verdict.TimedOut...)
		if err := histcheck.Visualize(h, keys, res.viz, 20*time.Second); err != nil {
			t.Errorf("visualize: %v", err)
		}
		logged := 0
		for _, op := range h.Ops {
			if op.Key == keys[0] && logged < 100 {
				logged++
				t.Logf("  c%d [%.3fms, %.3fms] %s", op.Client, float64(op.Call)/1e6, float64(op.Return)/1e6, op)
			}
		}
	}
	res.diverged = n.checkReplicas()
	res.strays = n.checkStrays()
	return res
}

// vizDir keeps failing histories: RANGEKV_NEMESIS_OUT, else a temp dir
// that outlives the test.
func vizDir(t *testing.T) string {
	if d := os.Getenv("RANGEKV_NEMESIS_OUT"); d != "" {
		return d
	}
	d, err := os.MkdirTemp("", "rangekv-nemesis-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (n *nem) client(seed uint64) *router.Client {
	cl, err := router.New(n.c.PDAddrs, router.Options{Seed: n.p.seed*100 + seed,
		DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(n.f.ClientInterceptor()), grpc.WithStreamInterceptor(n.f.StreamInterceptor())}})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { cl.Close() })
	return cl
}

func (n *nem) key(i int) string { return fmt.Sprintf("k%02d", i) }

// waitReplicated waits until range 1 has 3 voters and a leader.
func (n *nem) waitReplicated() {
	n.c.WaitFor("range 1 on 3 stores", 60*time.Second, func() bool {
		for _, d := range n.c.Descriptors() {
			return len(d.Replicas) == 3
		}
		return false
	})
}

// keyList is the run's keys.
func (n *nem) keyList() []string {
	var ks []string
	for i := range n.p.keys {
		ks = append(ks, n.key(i))
	}
	return ks
}

// finalReads reads every key once more after healing (the lost-write
// check needs reads after the last writes).
func (n *nem) finalReads() {
	if un := histcheck.FinalReads(context.Background(), n.rec, n.client(99), n.p.clients, n.keyList(), time.Now().Add(30*time.Second)); len(un) > 0 {
		n.t.Fatalf("keys %v unreadable 30s after healing", un)
	}
}

// faultKinds the generator picks from; the first four of every run are
// these in a seeded order, so every seed has each of them.
var (
	mustFaults  = []string{"split", "move", "crash", "partition", "lagging-split", "move-away"}
	otherFaults = []string{"split", "move", "transfer-leader", "crash", "partition", "one-way", "drop", "delay", "placement-leader", "lagging-split", "move-away"}
)

// nemesis injects faults until d has passed.
func (n *nem) nemesis(d time.Duration) {
	order := slices.Clone(mustFaults)
	n.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		kind := otherFaults[n.rng.IntN(len(otherFaults))]
		if i < len(order) {
			kind = order[i]
		}
		hold := time.Duration(150+n.rng.IntN(400)) * time.Millisecond
		start := n.rec.Now()
		detail, ok := n.inject(kind, hold)
		if ok {
			n.applied[kind]++
		} else {
			detail += " (not applied)"
		}
		n.rec.Fault(kind, detail, start)
		n.t.Logf("fault %s: %s", kind, detail)
		time.Sleep(time.Duration(50+n.rng.IntN(150)) * time.Millisecond) // the schedule's pace, not a wait for a condition
	}
}

// ranges returns the current ranges from placement.
func (n *nem) ranges() []*rangekvpb.RouteInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rs, err := n.admin.Ranges(ctx, nil, nil, 0)
	if err != nil {
		return nil
	}
	return rs
}

func (n *nem) pickStore() int { return n.rng.IntN(len(n.ids)) }

// inject applies one fault; for timed faults it holds it for hold.
func (n *nem) inject(kind string, hold time.Duration) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	switch kind {
	case "split":
		key := fmt.Sprintf("k%02d", 1+n.rng.IntN(n.p.keys-1))
		_, _, err := n.admin.Split(ctx, []byte(key))
		return "at " + key + errSuffix(err), err == nil
	case "move", "transfer-leader":
		rs := n.ranges()
		if len(rs) == 0 {
			return "no ranges", false
		}
		r := rs[n.rng.IntN(len(rs))]
		d := r.Descriptor_
		var on, off []uint64
		for _, id := range n.ids {
			if slices.ContainsFunc(d.Replicas, func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.StoreId == id }) {
				on = append(on, id)
			} else {
				off = append(off, id)
			}
		}
		if kind == "move" {
			if len(on) == 0 || len(off) == 0 {
				return fmt.Sprintf("range %d: no store to move to", d.RangeId), false
			}
			from, to := on[n.rng.IntN(len(on))], off[n.rng.IntN(len(off))]
			_, err := n.admin.MoveReplica(ctx, d.RangeId, from, to)
			return fmt.Sprintf("range %d: s%d -> s%d%s", d.RangeId, from, to, errSuffix(err)), err == nil
		}
		to := on[n.rng.IntN(len(on))]
		_, err := n.admin.TransferLeader(ctx, d.RangeId, to)
		return fmt.Sprintf("range %d to s%d%s", d.RangeId, to, errSuffix(err)), err == nil
	case "crash":
		i := n.pickStore()
		id, addr := n.ids[i], n.c.Addrs[i]
		keep := n.rng.IntN(60)
		n.f.Down(id, addr, true)
		n.c.CrashStore(i, vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rand.New(rand.NewPCG(n.p.seed, uint64(i)))})
		time.Sleep(hold) // the store stays down for hold
		n.c.RestartStore(i)
		n.f.Down(id, addr, false)
		return fmt.Sprintf("s%d power loss (%d%% of unsynced data kept), down %s", id, keep, hold), true
	case "partition":
		ids := slices.Clone(n.ids)
		n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + n.rng.IntN(len(ids)/2)
		a, b := ids[:k], ids[k:]
		n.f.Partition(a, b)
		time.Sleep(hold)
		n.f.Heal()
		return fmt.Sprintf("%v | %v for %s", a, b, hold), true
	case "one-way":
		i, j := n.pickStore(), n.pickStore()
		if i == j {
			j = (i + 1) % len(n.ids)
		}
		n.f.Block(n.ids[i], n.ids[j])
		time.Sleep(hold)
		n.f.Heal()
		return fmt.Sprintf("s%d -> s%d lost for %s", n.ids[i], n.ids[j], hold), true
	case "drop":
		types := [][]string{{"MsgApp"}, {"MsgAppResp"}, {"MsgHeartbeat", "MsgHeartbeatResp"}, {"MsgVote", "MsgVoteResp", "MsgPreVote", "MsgPreVoteResp"}, {"MsgApp", "MsgAppResp", "MsgHeartbeat", "MsgHeartbeatResp", "MsgSnap"}}
		ty := types[n.rng.IntN(len(types))]
		pct := 20 + n.rng.IntN(60)
		n.f.Drop(pct, ty...)
		time.Sleep(hold)
		n.f.Heal()
		return fmt.Sprintf("%d%% of %s for %s", pct, strings.Join(ty, ","), hold), true
	case "delay":
		d := time.Duration(5+n.rng.IntN(40)) * time.Millisecond
		n.f.Delay(d)
		time.Sleep(hold)
		n.f.Heal()
		return fmt.Sprintf("every batch +%s for %s", d, hold), true
	case "lagging-split":
		return n.laggingSplit(ctx, hold)
	case "move-away":
		return n.moveAway(hold)
	case "placement-leader":
		l := n.c.PDLeader()
		if l < 0 {
			return "no placement leader", false
		}
		n.c.StopPD(l)
		time.Sleep(hold)
		n.c.RestartPD(l)
		return fmt.Sprintf("member %d stopped for %s", l+1, hold), true
	}
	panic("unknown fault " + kind)
}

// laggingSplit splits a range while one of its followers lags: its store
// receives none of the range's log entries, so it applies neither the
// writes nor the split, while the right half's heartbeats and votes reach
// it and create an uninitialized right-hand replica there. While it lags,
// an election is forced on the right half (a leader transfer) and both
// halves' logs are truncated, so the lagging store catches up by snapshots
// that race the split's application (issue 15 items 1 and 2).
func (n *nem) laggingSplit(ctx context.Context, hold time.Duration) (string, bool) {
	key := []byte(n.key(1 + n.rng.IntN(n.p.keys-1)))
	ri, err := n.admin.RangeForKey(ctx, key)
	if err != nil {
		return "lookup" + errSuffix(err), false
	}
	d := ri.Descriptor_
	if bytes.Equal(d.StartKey, key) {
		key = append(key, '/') // between two workload keys: still inside the range
	}
	var followers []uint64
	for _, rd := range d.Replicas {
		if rd.StoreId != ri.LeaderStoreId {
			followers = append(followers, rd.StoreId)
		}
	}
	if len(followers) == 0 {
		return fmt.Sprintf("range %d: no follower", d.RangeId), false
	}
	lagging := followers[n.rng.IntN(len(followers))]
	n.f.Lag(d.RangeId, lagging, true)
	defer n.f.Lag(d.RangeId, lagging, false)
	time.Sleep(hold / 3) // writes go on while it lags
	_, right, err := n.admin.Split(ctx, key)
	if err != nil {
		return fmt.Sprintf("range %d at %q, s%d lagging%s", d.RangeId, key, lagging, errSuffix(err)), false
	}
	n.f.Lag(right.RangeId, lagging, true)
	defer n.f.Lag(right.RangeId, lagging, false)
	var others []uint64
	for _, rd := range right.Replicas {
		if rd.StoreId != lagging {
			others = append(others, rd.StoreId)
		}
	}
	detail := fmt.Sprintf("range %d at %q into %d, s%d lagging", d.RangeId, key, right.RangeId, lagging)
	if len(others) > 0 {
		to := others[n.rng.IntN(len(others))]
		_, err := n.admin.TransferLeader(ctx, right.RangeId, to)
		detail += fmt.Sprintf("; right leader to s%d%s", to, errSuffix(err))
	}
	for _, id := range []uint64{d.RangeId, right.RangeId} {
		_, err := n.admin.CompactLog(ctx, id)
		detail += fmt.Sprintf("; range %d log truncated%s", id, errSuffix(err))
	}
	time.Sleep(hold * 2 / 3)
	return detail, true
}

// moveAway stops a store and moves every range it holds to other stores
// while it is down, then restarts it: its replicas are then stale, and
// replica GC must remove them (issue 15 item 6).
func (n *nem) moveAway(hold time.Duration) (string, bool) {
	i := n.pickStore()
	id, addr := n.ids[i], n.c.Addrs[i]
	n.f.Down(id, addr, true)
	n.c.StopStore(i)
	defer func() {
		n.c.RestartStore(i)
		n.f.Down(id, addr, false)
	}()
	var moved []uint64
	var errs []string
	for _, r := range n.ranges() {
		d := r.Descriptor_
		var to []uint64
		on := false
		for _, sid := range n.ids {
			has := slices.ContainsFunc(d.Replicas, func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.StoreId == sid })
			if sid == id {
				on = has
			} else if !has {
				to = append(to, sid)
			}
		}
		if !on || len(to) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := n.admin.MoveReplica(ctx, d.RangeId, id, to[n.rng.IntN(len(to))])
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("range %d%s", d.RangeId, errSuffix(err)))
			continue
		}
		moved = append(moved, d.RangeId)
	}
	// The moves run as placement operators; keep the store down until they
	// are done (or a bound passes: a move may be refused or time out).
	deadline := time.Now().Add(hold + 5*time.Second)
	for time.Now().Before(deadline) && n.holds(id, moved) {
		time.Sleep(50 * time.Millisecond)
	}
	detail := fmt.Sprintf("s%d down while ranges %v moved away", id, moved)
	if len(errs) > 0 {
		detail += fmt.Sprintf(" (refused: %s)", strings.Join(errs, "; "))
	}
	return detail, len(moved) > 0
}

// holds reports whether placement still lists store id in any of the
// ranges.
func (n *nem) holds(id uint64, rangeIDs []uint64) bool {
	for _, r := range n.ranges() {
		if !slices.Contains(rangeIDs, r.Descriptor_.RangeId) {
			continue
		}
		if slices.ContainsFunc(r.Descriptor_.Replicas, func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.StoreId == id }) {
			return true
		}
	}
	return false
}

// checkStrays waits until no running store holds an initialized replica
// that its range's current descriptor does not list (a stale replica that
// GC must remove: it would serve stale reads and block snapshots); it
// returns "" or the strays left after the deadline.
func (n *nem) checkStrays() string {
	deadline := time.Now().Add(45 * time.Second)
	var strays []string
	for {
		strays = strays[:0]
		descs := n.c.Descriptors()
		for _, st := range n.c.Stores {
			if st == nil {
				continue
			}
			status := st.Status()
			for _, r := range status.Replicas {
				if !r.Initialized {
					continue
				}
				d, ok := descs[r.Descriptor_.GetRangeId()]
				if !ok {
					strays = append(strays, fmt.Sprintf("s%d range %d (no leader)", status.StoreId, r.Descriptor_.GetRangeId()))
					continue
				}
				if !slices.ContainsFunc(d.Replicas, func(rd *rangekvpb.ReplicaDescriptor) bool {
					return rd.StoreId == status.StoreId && rd.ReplicaId == r.ReplicaId
				}) {
					strays = append(strays, fmt.Sprintf("s%d range %d replica %d (not in %v; its own %s)", status.StoreId, d.RangeId, r.ReplicaId, d.Replicas, describeStray(r)))
				}
			}
		}
		if len(strays) == 0 || time.Now().After(deadline) {
			return strings.Join(strays, ", ")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describeStray is what a stale replica believes: its descriptor's epoch
// and its role there, its raft state, the leader it knows and whether it
// is quiesced (replica GC's periodic pass looks only at replicas that know
// no leader).
func describeStray(r *rangekvpb.ReplicaStatus) string {
	d := r.Descriptor_
	role := "absent"
	for _, rd := range d.GetReplicas() {
		if rd.ReplicaId == r.ReplicaId {
			role = rd.Role.String()
		}
	}
	return fmt.Sprintf("descriptor conf_ver %d version %d, role %s, raft %s term %d leader %d, quiescent %t, applied %d",
		d.GetEpoch().GetConfVer(), d.GetEpoch().GetVersion(), role, r.RaftState, r.Term, r.LeaderReplicaId, r.Quiescent, r.AppliedIndex)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// healAll lifts every fault: the network heals and every store and
// placement member runs.
func (n *nem) healAll() {
	n.f.Heal()
	for i := range n.c.PDs {
		if n.c.PDs[i] == nil {
			n.c.RestartPD(i)
		}
	}
}

// checkReplicas waits for every range's replicas to reach the same
// applied index and compares their data there; it returns "" or what
// differs.
func (n *nem) checkReplicas() string {
	conns := map[string]rangekvpb.KVClient{}
	for _, a := range n.c.Addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			n.t.Fatal(err)
		}
		defer conn.Close()
		conns[a] = rangekvpb.NewKVClient(conn)
	}
	addrOf := map[uint64]string{}
	for i, id := range n.ids {
		addrOf[id] = n.c.Addrs[i]
	}
	deadline := time.Now().Add(45 * time.Second)
	last := "no ranges"
	for time.Now().Before(deadline) {
		var bad string
		bad, last = n.compareOnce(conns, addrOf)
		if bad != "" {
			return bad
		}
		if last == "" {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Errorf("replicas did not converge in 45s: %s", last)
	n.dumpReplicas()
	return ""
}

// dumpReplicas logs every replica's Raft status on every running store, so
// a failure to converge says which replica is stuck and why (its leader's
// view of its progress, quiescence, log bounds).
func (n *nem) dumpReplicas() {
	for i, st := range n.c.Stores {
		if st == nil {
			n.t.Logf("store index %d: stopped", i)
			continue
		}
		status := st.Status()
		for _, r := range status.Replicas {
			var prog []string
			for _, p := range r.Progress {
				prog = append(prog, fmt.Sprintf("r%d:%s/match=%d/active=%v", p.ReplicaId, p.State, p.Match, p.RecentActive))
			}
			n.t.Logf("s%d range %d replica %d: %s term=%d lead=%d log=[%d,%d] commit=%d applied=%d quiescent=%v init=%v epoch=%v replicas=%v progress=%v",
				status.StoreId, r.Descriptor_.GetRangeId(), r.ReplicaId, r.RaftState, r.Term, r.LeaderReplicaId, r.FirstIndex, r.LastIndex,
				r.CommitIndex, r.AppliedIndex, r.Quiescent, r.Initialized, r.Descriptor_.GetEpoch(), r.Descriptor_.GetReplicas(), prog)
		}
	}
}

// compareOnce compares every range once: diverged names replicas with
// different data at the same applied index; pending says why the
// comparison could not be made yet.
func (n *nem) compareOnce(conns map[string]rangekvpb.KVClient, addrOf map[uint64]string) (diverged, pending string) {
	descs := n.c.Descriptors()
	if len(descs) == 0 {
		return "", "no leaders"
	}
	ids := make([]uint64, 0, len(descs))
	for id := range descs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, rid := range ids {
		d := descs[rid]
		type copyOf struct {
			store   uint64
			applied uint64
			sum     [32]byte
		}
		var copies []copyOf
		for _, rd := range d.Replicas {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := conns[addrOf[rd.StoreId]].Scan(ctx, &rangekvpb.ScanRequest{
				Header:   &rangekvpb.RequestHeader{RangeId: rid, Consistency: rangekvpb.ReadConsistency_STALE},
				StartKey: d.StartKey, EndKey: d.EndKey})
			cancel()
			if err != nil || resp.Header.GetError() != nil {
				return "", fmt.Sprintf("range %d on s%d: %v %v", rid, rd.StoreId, err, resp.GetHeader().GetError())
			}
			h := sha256.New()
			for _, kv := range resp.Pairs {
				fmt.Fprintf(h, "%q=%q;", kv.Key, kv.Value)
			}
			var c copyOf
			c.store, c.applied = rd.StoreId, resp.Header.AppliedIndex
			copy(c.sum[:], h.Sum(nil))
			copies = append(copies, c)
		}
		for _, c := range copies[1:] {
			if c.applied != copies[0].applied {
				return "", fmt.Sprintf("range %d: s%d applied %d, s%d applied %d", rid, copies[0].store, copies[0].applied, c.store, c.applied)
			}
		}
		// Same applied index everywhere: the data must be identical (a
		// read's applied index and data come from one engine snapshot;
		// entries the cancelled workers left in the log may still apply).
		for _, c := range copies[1:] {
			if !bytes.Equal(c.sum[:], copies[0].sum[:]) {
				return fmt.Sprintf("range %d: s%d and s%d differ at applied index %d", rid, copies[0].store, c.store, c.applied), ""
			}
		}
	}
	return "", ""
}
