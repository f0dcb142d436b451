// Cluster operations and faults aimed at the races of issue 15, each
// chosen by the seed: a split whose left half's leader is cut off right
// after it applies (split vote), a move whose snapshot a split of the same
// range races (snapshot placeholder), and a store stopped while every
// range it holds moves off it (replica GC). The seed's generator is only
// drawn from on the simulator's goroutine; what the spawned goroutines
// pick comes from a generator seeded there.

package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// cutLeftLeader cuts the store that leads the left half of a split just
// done (the first store of left's replicas when no settled store leads
// it) from every other store, both ways, for span: the right half's other
// replicas must elect a leader without it, in a term in which a replica
// the split has not reached yet may be asked for its vote.
func (w *world) cutLeftLeader(left *rangekvpb.RangeDescriptor, span time.Duration) {
	if w.healed || left == nil || len(left.GetReplicas()) == 0 {
		return
	}
	lead := left.GetReplicas()[0].GetStoreId()
	for _, ss := range w.checks.status() {
		for _, r := range ss.reps {
			if r.RangeID == left.GetRangeId() && r.Leader {
				lead = ss.id
			}
		}
	}
	p := w.storeByID(lead)
	if p == nil {
		return
	}
	for _, q := range w.stores {
		if q != p {
			w.faults.cut(p.addr, q.addr, w.clk.Now().Add(span))
			w.faults.cut(q.addr, p.addr, w.clk.Now().Add(span))
		}
	}
	w.count("fault cut left leader")
	w.tracef("fault cut s%d (store %d leads r%d) from the stores for %s", p.idx+1, lead, left.GetRangeId(), span)
}

// moveThenSplit moves a replica of the range holding key to a store
// without one (when there is such a store) and splits that range at key
// after wait: the new store's snapshot may still travel when the split
// applies. r picks the stores.
func (w *world) moveThenSplit(ctx context.Context, a *router.Admin, key string, wait time.Duration, r *rand.Rand) (string, error) {
	ri, err := a.RangeForKey(ctx, []byte(key))
	if err != nil {
		return "move+split " + key, err
	}
	d := ri.GetDescriptor_()
	what := fmt.Sprintf("move+split r%d at %s", d.GetRangeId(), key)
	if free := w.storesWithout(d); len(free) > 0 && len(d.GetReplicas()) > 0 {
		from := d.GetReplicas()[r.IntN(len(d.GetReplicas()))].GetStoreId()
		to := free[r.IntN(len(free))]
		_, err := a.MoveReplica(ctx, d.GetRangeId(), from, to)
		what += fmt.Sprintf(" (move %d->%d: %s)", from, to, errClass(err))
	}
	if !clock.Sleep(ctx, w.clk, wait) {
		return what, ctx.Err()
	}
	_, _, err = a.Split(ctx, []byte(key))
	return what, err
}

// storeByID is the process of the store with ID id, or nil.
func (w *world) storeByID(id uint64) *storeProc {
	for _, p := range w.stores {
		if p.storeID.Load() == id {
			return p
		}
	}
	return nil
}

// storesWithout lists the stores d has no replica on.
func (w *world) storesWithout(d *rangekvpb.RangeDescriptor) []uint64 {
	var out []uint64
	for _, p := range w.stores {
		id := p.storeID.Load()
		if id != 0 && !slices.ContainsFunc(d.GetReplicas(), func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.GetStoreId() == id }) {
			out = append(out, id)
		}
	}
	return out
}

// moveAway stops store p (as a crash) and moves every range it held off
// it, each to a store its descriptor does not name; p restarts once
// placement lists it in none of them, or after span plus 5 s. Its
// replicas are then stale, and replica GC must remove them (issue 15 item
// 6). Only with more stores than replicas per range.
func (f *faults) moveAway(span time.Duration) {
	w := f.w
	if w.admin == nil || len(w.stores) <= 3 {
		return
	}
	var ups []*storeProc
	for _, p := range w.stores {
		if p.state != up {
			return // a store is down: one more could cost a quorum
		}
		if p.run.quiet() {
			ups = append(ups, p)
		}
	}
	if len(ups) == 0 {
		return
	}
	p := ups[w.rng.IntN(len(ups))]
	id := p.storeID.Load()
	var held []uint64
	for _, r := range p.st.ReplicaStates(nil) {
		if r.Descriptor != nil {
			held = append(held, r.RangeID)
		}
	}
	r := rand.New(rand.NewPCG(w.rng.Uint64(), 0))
	w.count("fault move away")
	w.crashStore(p, span+30*time.Second)
	w.tracef("fault move away s%d (store %d): ranges %v", p.idx+1, id, held)
	until := w.clk.Now().Add(span + 5*time.Second)
	w.spawn(func() {
		// Placement refuses a move while the range has another operator
		// (a repair, often): every 200 ms each range that still lists p
		// is asked to move again, until none does or the bound passes.
		left, tries := held, 0
		var last error
		for len(left) > 0 && w.clk.Now().Before(until) {
			a, err := w.admin.Admin()
			if err != nil {
				last = err
			}
			ctx, cancel := clock.WithTimeout(w.ctx, w.clk, 3*time.Second)
			left = slices.DeleteFunc(left, func(rid uint64) bool {
				if err != nil {
					return false
				}
				ri, err := a.RangeByID(ctx, rid)
				if err != nil {
					last = err
					return false
				}
				d := ri.GetDescriptor_()
				if !slices.ContainsFunc(d.GetReplicas(), func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.GetStoreId() == id }) {
					return true
				}
				if free := w.storesWithout(d); len(free) > 0 {
					tries++
					_, last = a.MoveReplica(ctx, rid, id, free[r.IntN(len(free))])
				}
				return false
			})
			cancel()
			if !clock.Sleep(w.ctx, w.clk, 200*time.Millisecond) {
				break
			}
		}
		w.post(fmt.Sprintf("move away s%d", p.idx+1), func() {
			w.tracef("move away s%d: %d move calls, %d of %d ranges still on it (last: %s); restart", p.idx+1, tries, len(left), len(held), errClass(last))
			w.restartStore(p)
		})
	})
}
