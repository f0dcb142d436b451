// The workload: clients calling the Go SDK (router) as a user does, every
// operation recorded for the linearizability check, and an operator that
// splits ranges, moves replicas and transfers leaders through the same
// SDK's admin API.

package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// opTimeout bounds one operation (simulated time).
const opTimeout = 10 * time.Second

// initialSplitRetry is how long a failed initial split waits before it is
// tried again.
const initialSplitRetry = 200 * time.Millisecond

type client struct {
	id   int
	kv   *router.Client
	last map[string]string // the value this client last read per key, for CAS
}

func (w *world) key(i int) string { return fmt.Sprintf("k%03d", i) }

// newRouter is an SDK client on the simulated network and clock. Its
// fan-out is 1: the goroutines of a wider fan-out would put their
// requests in one mux message in whatever order the Go scheduler runs
// them, which the simulator cannot choose.
func (w *world) newRouter(name string, seed uint64) *router.Client {
	var addrs []string
	for _, m := range w.members {
		addrs = append(addrs, m.addr)
	}
	c, err := router.New(addrs, router.Options{Network: w.net.Node(name), Clock: w.clk, Seed: seed, MaxFanout: 1})
	if err != nil {
		panic(fmt.Sprintf("sim: router.New: %v", err))
	}
	return c
}

// setupWorkload schedules the initial splits, the clients and the
// operator.
func (w *world) setupWorkload() {
	for i := range w.cfg.Clients {
		w.clients = append(w.clients, &client{id: i, kv: w.newRouter(fmt.Sprintf("c%d:1", i+1), w.rng.Uint64()|1), last: map[string]string{}})
	}
	admin := w.newRouter("admin:1", w.rng.Uint64()|1)
	w.admin = admin
	var splits []string
	for r := 1; r < w.cfg.Ranges; r++ {
		splits = append(splits, w.key(r*w.cfg.Keys/w.cfg.Ranges))
	}
	// The splits run one at a time. One that fails is retried after
	// initialSplitRetry until the workload ends: placement answers "no
	// range holds that key" until the first range's leader has reported,
	// and the first splits come before that.
	var splitAt func(i int)
	splitAt = func(i int) {
		if i == len(splits) || w.healed {
			return
		}
		k := splits[i]
		w.spawn(func() {
			a, err := admin.Admin()
			if err == nil {
				ctx, cancel := clock.WithTimeout(w.ctx, w.clk, 30*time.Second)
				_, _, err = a.Split(ctx, []byte(k))
				cancel()
			}
			w.post("split "+k, func() {
				w.tracef("initial split %s: %s", k, errClass(err))
				if err != nil {
					w.count("initial split retried")
					w.at(w.clk.Now().Add(initialSplitRetry), "initial split "+k, func() { splitAt(i) })
					return
				}
				w.count("initial split")
				splitAt(i + 1)
			})
		})
	}
	w.at(w.start.Add(time.Second), "initial splits", func() { splitAt(0) })
	for _, c := range w.clients {
		w.at(w.start.Add(2*time.Second+time.Duration(w.rng.Int64N(int64(time.Second)))), fmt.Sprintf("client %d", c.id), func() { w.startOp(c) })
	}
	if w.cfg.Faults {
		w.at(w.start.Add(3*time.Second), "operator", func() { w.operate(admin) })
	}
	w.closers = append(w.closers, func() {
		admin.Close()
		for _, c := range w.clients {
			c.kv.Close()
		}
	})
}

// startOp starts client c's next operation on a goroutine; when it ends
// the client thinks a little and starts the next, until the workload
// ends.
func (w *world) startOp(c *client) {
	if w.healed {
		return
	}
	ctx, cancel := clock.WithTimeout(w.ctx, w.clk, opTimeout)
	key := w.key(w.rng.IntN(w.cfg.Keys))
	pick := w.rng.IntN(100)
	name := fmt.Sprintf("c%d", c.id)
	// next schedules the client's next operation after a short think
	// time, or after a longer pause when this one failed (a user backs
	// off; and every write of unknown outcome stays concurrent with all
	// later ones in the history, which the checker pays for).
	next := func(err error) {
		cancel()
		think := time.Duration(w.rng.Int64N(int64(20 * time.Millisecond)))
		if err != nil {
			think = 200*time.Millisecond + time.Duration(w.rng.Int64N(int64(800*time.Millisecond)))
		}
		w.at(w.clk.Now().Add(think), "client "+name, func() { w.startOp(c) })
	}
	switch {
	case pick < 60:
		in := w.input(c, key, pick)
		p := w.rec.Begin(c.id, key, in)
		cons := rangekvpb.ReadConsistency_LINEARIZABLE
		if in.Kind == histcheck.Get && w.rng.IntN(2) == 0 {
			cons = rangekvpb.ReadConsistency_LEASE
		}
		w.count("op " + in.Kind.String())
		w.spawn(func() {
			out, err := histcheck.Apply(ctx, readsAt{c.kv, cons}, key, in)
			w.post(name, func() {
				outcome := histcheck.OutcomeOK
				switch {
				case err != nil && in.Kind == histcheck.Get:
					outcome = histcheck.OutcomeFailed
				case err != nil:
					outcome = histcheck.OutcomeUnknown
				}
				op := p.End(out, outcome)
				if in.Kind == histcheck.Get && outcome == histcheck.OutcomeOK {
					c.last[key] = out.Value
				}
				w.tracef("op %s: %s (%s)", name, op, errClass(err))
				next(err)
			})
		})
	case pick < 70:
		// A scan, each key in its span read once: one in fullScanEvery
		// over the whole key space (every range, one request each), the
		// others over a span of a few ranges' worth of keys from a random
		// key, as a user's scans mostly are.
		lo, hi := w.scanSpan()
		start, end := []byte(w.key(lo)), []byte("l")
		if hi < w.cfg.Keys {
			end = []byte(w.key(hi))
		}
		if lo == 0 && hi == w.cfg.Keys {
			start = []byte("k")
			w.count("op scan full")
		} else {
			w.count("op scan span")
		}
		var ps []*histcheck.Pending
		for i := lo; i < hi; i++ {
			ps = append(ps, w.rec.Begin(c.id, w.key(i), histcheck.Input{Kind: histcheck.Get}))
		}
		w.spawn(func() {
			kvs, err := c.kv.Scan(ctx, start, end, 0)
			w.post(name, func() {
				got := map[string]string{}
				for _, kv := range kvs {
					got[string(kv.Key)] = string(kv.Value)
				}
				for i, p := range ps {
					if err != nil {
						p.End(histcheck.Output{}, histcheck.OutcomeFailed)
						continue
					}
					v, ok := got[w.key(lo+i)]
					p.End(histcheck.Output{Found: ok, Value: v}, histcheck.OutcomeOK)
				}
				w.tracef("op %s: scan [%s, %s) %d keys (%s)", name, start, end, len(kvs), errClass(err))
				next(err)
			})
		})
	case pick < 80:
		// An atomic batch of puts to two or three keys.
		w.count("op batch")
		n := 2 + w.rng.IntN(2)
		var ops []router.BatchOp
		var ps []*histcheck.Pending
		seen := map[string]bool{}
		for range n {
			k := w.key(w.rng.IntN(w.cfg.Keys))
			if seen[k] {
				continue
			}
			seen[k] = true
			v := w.rec.UniqueValue()
			ops = append(ops, router.BatchOp{Key: []byte(k), Value: []byte(v)})
			ps = append(ps, w.rec.Begin(c.id, k, histcheck.Input{Kind: histcheck.Put, Value: v}))
		}
		w.spawn(func() {
			err := c.kv.Batch(ctx, ops)
			w.post(name, func() {
				for _, p := range ps {
					if err != nil {
						p.End(histcheck.Output{}, histcheck.OutcomeUnknown)
					} else {
						p.End(histcheck.Output{}, histcheck.OutcomeOK)
					}
				}
				w.tracef("op %s: batch of %d (%s)", name, len(ops), errClass(err))
				next(err)
			})
		})
	default:
		// Follower and stale reads, checked with the others: a follower
		// read is linearizable, a stale read may return any state the key
		// had before it returned (histcheck.Input.Stale).
		cons := rangekvpb.ReadConsistency_FOLLOWER
		if pick >= 90 {
			cons = rangekvpb.ReadConsistency_STALE
		}
		in := histcheck.Input{Kind: histcheck.Get, Stale: cons == rangekvpb.ReadConsistency_STALE}
		p := w.rec.Begin(c.id, key, in)
		w.count("op get " + cons.String())
		w.spawn(func() {
			out, err := histcheck.Apply(ctx, readsAt{c.kv, cons}, key, in)
			w.post(name, func() {
				outcome := histcheck.OutcomeOK
				if err != nil {
					outcome = histcheck.OutcomeFailed
				}
				op := p.End(out, outcome)
				w.tracef("op %s: %s %s (%s)", name, cons, op, errClass(err))
				next(err)
			})
		})
	}
}

// fullScanEvery: one scan in this many covers the whole key space.
const fullScanEvery = 10

// scanSpan picks a scan's keys [lo, hi): the whole key space one time in
// fullScanEvery, else from a random key up to three ranges' worth of keys
// (as split at the start), so that most scans stay within a range or two
// and many still cross a boundary.
func (w *world) scanSpan() (lo, hi int) {
	if w.rng.IntN(fullScanEvery) == 0 {
		return 0, w.cfg.Keys
	}
	perRange := max(1, w.cfg.Keys/w.cfg.Ranges)
	lo = w.rng.IntN(w.cfg.Keys)
	return lo, min(w.cfg.Keys, lo+1+w.rng.IntN(3*perRange))
}

// input picks a single-key operation: 30% get, 30% put, 10% delete, 15%
// incr, 15% cas (against the value this client last read).
func (w *world) input(c *client, key string, pick int) histcheck.Input {
	switch {
	case pick < 18:
		return histcheck.Input{Kind: histcheck.Get}
	case pick < 36:
		return histcheck.Input{Kind: histcheck.Put, Value: w.rec.UniqueValue()}
	case pick < 42:
		return histcheck.Input{Kind: histcheck.Delete}
	case pick < 51:
		return histcheck.Input{Kind: histcheck.Incr, Delta: 1 + int64(w.rng.IntN(5))}
	default:
		prev, ok := c.last[key]
		return histcheck.Input{Kind: histcheck.CAS, Value: w.rec.UniqueValue(), Expected: prev, ExpectAbsent: !ok || prev == ""}
	}
}

// readsAt is a client whose Get reads at one consistency level.
type readsAt struct {
	*router.Client
	cons rangekvpb.ReadConsistency
}

func (r readsAt) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	return r.GetWith(ctx, key, r.cons)
}

// operate runs one cluster operation and schedules the next: a split at a
// new key, a leader transfer, a replica move, a store drain and undrain,
// a split whose left leader's store is cut off once it is done, or a move
// raced by a split of its range (races.go), the new store's snapshots of
// it held meanwhile (races_moves.go).
func (w *world) operate(admin *router.Client) {
	if w.healed {
		return
	}
	defer w.at(w.clk.Now().Add(time.Second+time.Duration(w.rng.Int64N(int64(3*time.Second)))), "operator", func() { w.operate(admin) })
	pick := w.rng.IntN(6)
	split := w.key(w.rng.IntN(w.cfg.Keys)) + strconv.Itoa(w.rng.IntN(10))
	span := 500*time.Millisecond + time.Duration(w.rng.Int64N(int64(3*time.Second)))
	wait := time.Duration(w.rng.Int64N(int64(100 * time.Millisecond)))
	r := rand.New(rand.NewPCG(w.rng.Uint64(), 0))
	to := uint64(1 + w.rng.IntN(len(w.stores)))
	from := uint64(1 + w.rng.IntN(len(w.stores)))
	probe := []byte(w.key(w.rng.IntN(w.cfg.Keys)))
	var hold *snapHold
	if pick == 5 {
		hold = w.pickSnapHold()
	}
	w.spawn(func() {
		ctx, cancel := clock.WithTimeout(w.ctx, w.clk, 20*time.Second)
		defer cancel()
		a, err := admin.Admin()
		what := "admin"
		if err == nil {
			switch pick {
			case 0:
				what = "split " + split
				_, _, err = a.Split(ctx, []byte(split))
			case 4:
				what = "split+cut " + split
				var left *rangekvpb.RangeDescriptor
				if left, _, err = a.Split(ctx, []byte(split)); err == nil {
					w.post("cut", func() { w.cutLeftLeader(left, span) })
				}
			case 5:
				if hold != nil {
					what, err = w.moveHoldSplit(ctx, a, split, wait, r, hold)
				} else {
					what, err = w.moveThenSplit(ctx, a, split, wait, r)
				}
			case 1, 2:
				var ri *rangekvpb.RouteInfo
				ri, err = a.RangeForKey(ctx, probe)
				if err == nil {
					id := ri.GetDescriptor_().GetRangeId()
					if pick == 1 {
						what = fmt.Sprintf("transfer r%d to store %d", id, to)
						_, err = a.TransferLeader(ctx, id, to)
					} else {
						what = fmt.Sprintf("move r%d %d->%d", id, from, to)
						_, err = a.MoveReplica(ctx, id, from, to)
					}
				}
			case 3:
				what = fmt.Sprintf("drain store %d", to)
				if _, err = a.DrainStore(ctx, to, false); err == nil {
					_, err = a.DrainStore(ctx, to, true)
				}
			}
		}
		w.post("operator", func() {
			w.count("cluster op")
			w.tracef("operator %s: %s", what, errClass(err))
		})
	})
}
