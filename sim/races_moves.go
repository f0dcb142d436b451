// Faults aimed at the races of issue 15 that need more stores than
// replicas: a range moved off all three of its stores while one of them is
// down (replica GC, item 6; 6+ stores), and a move raced by a split while
// the new store's snapshot streams are held (snapshot placeholder, item 2;
// 4+ stores). Both draw from the seed's generator only with that many
// stores, so 3-store runs (the CI seeds) are as before. Also the overlap
// check run after every pass, which such a race breaks only for a few
// steps.

package sim

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// snapshotMethod carries snapshots from a range's leader to a store.
const snapshotMethod = "/rangekv.Raft/Snapshot"

// noCheck and allStores are afterPass's arguments besides a store index.
const (
	noCheck   = -1
	allStores = -2
)

// snapCheckWindow is how long after a snapshot stream message reached a
// store afterPass checks it.
const snapCheckWindow = time.Second

// afterPass checks that the descriptors of store i (allStores: every
// store) do not overlap, once no pass of it is under way, if a snapshot
// reached it within snapCheckWindow. A pass is where a snapshot is
// ingested: an overlap a wrongly admitted snapshot makes may last only
// until the next pass of the same store, where the overlapped range
// applies its split. Only then: reading every replica after every pass
// slowed 100-range runs fivefold, and under load TestSimManyRanges's two
// runs of a seed then differed in every try (main's, 1 try in 3: the
// preemption of docs/reliability.md, "Not settled").
func (c *checker) afterPass(i int) {
	if i == noCheck {
		return
	}
	now := c.w.clk.Now()
	for j, p := range c.w.stores {
		if (i != allStores && i != j) || j >= len(c.snapSeen) || !now.Before(c.snapSeen[j]) ||
			p.state != up || p.st == nil || !p.run.quiet() {
			continue
		}
		c.bufs[j] = p.st.ReplicaStates(c.bufs[j][:0])
		c.overlaps(storeStates{id: p.st.StoreID(), reps: c.bufs[j]})
	}
}

// delivered notes a snapshot stream message delivered to a store, for
// afterPass.
func (c *checker) delivered(e *grpcnet.Envelope) {
	if e.Method != snapshotMethod || !e.ToServer {
		return
	}
	if c.snapSeen == nil {
		c.snapSeen = make([]time.Time, len(c.w.stores))
	}
	for j, p := range c.w.stores {
		if p.addr == e.To {
			c.snapSeen[j] = c.w.clk.Now().Add(snapCheckWindow)
		}
	}
}

// moveRangeAway stops a store p and moves every replica of one of its
// ranges (p's among them) to the stores the range was not on; p restarts
// once placement's descriptor names none of the range's old stores, or
// after a bound (healing does not restart it before). The replica p then
// holds is stale, and its descriptor names only stores that no longer
// hold the range: only placement can prove it removed (issue 15 item 6).
// It reports whether it took the fault's turn: with 6+ stores, unless no
// quiet store holds a range of three replicas (then the move-away runs).
func (f *faults) moveRangeAway() bool {
	w := f.w
	if w.admin == nil || len(w.stores) < 6 {
		return false
	}
	// Every (store, range) pair: a quiet store's initialized replica.
	type held struct {
		p *storeProc
		d *rangekvpb.RangeDescriptor
	}
	var cands []held
	for _, p := range w.stores {
		if p.state != up {
			return true // a store is down: one more could cost a quorum
		}
		if !p.run.quiet() {
			continue
		}
		for _, r := range p.st.ReplicaStates(nil) {
			if len(r.Descriptor.GetReplicas()) == 3 {
				cands = append(cands, held{p, r.Descriptor})
			}
		}
	}
	if len(cands) == 0 {
		return false
	}
	c := cands[w.rng.IntN(len(cands))]
	p, d := c.p, c.d
	rid, id := d.GetRangeId(), p.storeID.Load()
	var old []uint64
	for _, rd := range d.GetReplicas() {
		old = append(old, rd.GetStoreId())
	}
	r := rand.New(rand.NewPCG(w.rng.Uint64(), 0))
	w.count("fault move range away")
	p.heldDown = true
	w.crashStore(p, time.Minute)
	w.tracef("fault move range away s%d (store %d): r%d off stores %v", p.idx+1, id, rid, old)
	// Three moves, one at a time (placement runs one operator per
	// range), each a learner, its snapshot, a promotion and a removal,
	// stepped by range heartbeats (1 s), and raced by placement's repair
	// of the replica on the stopped store: 10–15 s. p is up again at
	// most 15 s after healing, which leaves replica GC (every 5 s) and
	// re-replication 20 s of the healing bound.
	until := w.clk.Now().Add(30 * time.Second)
	if end := w.start.Add(w.cfg.Duration + 15*time.Second); end.Before(until) {
		until = end
	}
	w.spawn(func() {
		tries, done := 0, false
		var last error
		for !done && w.clk.Now().Before(until) {
			done, last = w.moveOneOff(rid, id, old, r)
			if last == nil && !done {
				tries++
			}
			if !done && !clock.Sleep(w.ctx, w.clk, 250*time.Millisecond) {
				break
			}
		}
		w.post(fmt.Sprintf("move range away s%d", p.idx+1), func() {
			w.tracef("move range away s%d: r%d moved off %v: %t after %d move calls (last: %s); restart", p.idx+1, rid, old, done, tries, errClass(last))
			p.heldDown = false
			if w.ctx.Err() == nil { // not once the run is stopping; in a step of its own (Run)
				w.at(w.clk.Now(), fmt.Sprintf("restart s%d", p.idx+1), func() { w.restartStore(p) })
			}
		})
	})
	return true
}

// moveOneOff reads range rid's descriptor from placement and, unless it
// names none of the stores old, asks placement to move one of them (p's,
// store id's, last) to a store not in old. It reports whether none is
// left.
func (w *world) moveOneOff(rid, id uint64, old []uint64, r *rand.Rand) (bool, error) {
	a, err := w.admin.Admin()
	if err != nil {
		return false, err
	}
	ctx, cancel := clock.WithTimeout(w.ctx, w.clk, 3*time.Second)
	defer cancel()
	ri, err := a.RangeByID(ctx, rid)
	if err != nil {
		return false, err
	}
	d := ri.GetDescriptor_()
	var from uint64
	for _, rd := range d.GetReplicas() {
		if s := rd.GetStoreId(); slices.Contains(old, s) && (from == 0 || from == id) {
			from = s
		}
	}
	if from == 0 {
		return true, nil
	}
	free := slices.DeleteFunc(w.storesWithout(d), func(s uint64) bool { return slices.Contains(old, s) })
	if len(free) == 0 {
		return false, fmt.Errorf("no store to move r%d to", rid)
	}
	to := free[r.IntN(len(free))]
	_, err = a.MoveReplica(ctx, rid, from, to)
	if err == nil {
		w.post(fmt.Sprintf("move r%d", rid), func() { w.tracef("move range away: r%d %d->%d", rid, from, to) })
	}
	return false, err
}

// snapHold is how a move+split holds the new store's snapshot streams:
// until the split returned and tail passed, or at most max.
type snapHold struct {
	max, tail time.Duration
}

// pickSnapHold decides whether a move+split holds its snapshots (with 4+
// stores, two times in three) and for how long.
func (w *world) pickSnapHold() *snapHold {
	if len(w.stores) < 4 || w.rng.IntN(3) == 0 {
		return nil
	}
	return &snapHold{
		max:  3*time.Second + time.Duration(w.rng.Int64N(int64(3*time.Second))),
		tail: time.Duration(w.rng.Int64N(int64(300 * time.Millisecond))),
	}
}

// moveHoldSplit is moveThenSplit with the new store's incoming snapshot
// streams held (a slow link to it): the move's snapshot of the range, taken
// before the split, is held; the split applies, and the right half's
// leader sends the new store a snapshot of the right half, held too; both
// arrive at the same instant, when the hold is released, and the seed
// orders their deliveries and the new store's passes. A store that lets
// go of a snapshot's placeholder before it ingests it then admits both
// (issue 15 item 2).
func (w *world) moveHoldSplit(ctx context.Context, a *router.Admin, key string, wait time.Duration, r *rand.Rand, h *snapHold) (string, error) {
	ri, err := a.RangeForKey(ctx, []byte(key))
	if err != nil {
		return "move+hold+split " + key, err
	}
	d := ri.GetDescriptor_()
	what := fmt.Sprintf("move+hold+split r%d at %s", d.GetRangeId(), key)
	free := w.storesWithout(d)
	if len(free) == 0 || len(d.GetReplicas()) == 0 {
		_, _, err = a.Split(ctx, []byte(key))
		return what, err
	}
	from := d.GetReplicas()[r.IntN(len(d.GetReplicas()))].GetStoreId()
	to := free[r.IntN(len(free))]
	p := w.storeByID(to)
	if p == nil {
		return what, fmt.Errorf("store %d has no process", to)
	}
	w.post("hold "+p.addr, func() { w.faults.holdSnapshots(p.addr, d, h.max) })
	_, err = a.MoveReplica(ctx, d.GetRangeId(), from, to)
	what += fmt.Sprintf(" (move %d->%d: %s)", from, to, errClass(err))
	// The split must come once the new store is in the range (its
	// snapshot, of the unsplit range, is on its way): placement's view
	// lags the range's own by a report.
	for i := 0; err == nil && i < 150; i++ {
		ri, err := a.RangeByID(ctx, d.GetRangeId())
		if err == nil && slices.ContainsFunc(ri.GetDescriptor_().GetReplicas(), func(rd *rangekvpb.ReplicaDescriptor) bool { return rd.GetStoreId() == to }) {
			break
		}
		if !clock.Sleep(ctx, w.clk, 20*time.Millisecond) {
			return what, ctx.Err()
		}
	}
	if !clock.Sleep(ctx, w.clk, wait) {
		return what, ctx.Err()
	}
	_, _, err = a.Split(ctx, []byte(key))
	w.post("release "+p.addr, func() {
		w.at(w.clk.Now().Add(h.tail), "release snapshots to "+p.addr, func() { w.faults.releaseSnapshots(p.addr) })
	})
	return what, err
}

// snapHeld is a hold of the snapshots to one store of the ranges that
// overlap span.
type snapHeld struct {
	span  *rangekvpb.RangeDescriptor
	until time.Time
}

// holdSnapshots holds, from now on, until releaseSnapshots or for at
// most max, the snapshot streams to addr of every range that overlaps
// span: those of the range and of the halves it splits into, not others
// (a hold of every snapshot to the store fills the senders' snapshot
// slots, MaxConcurrentSnapshots, and the right half's then waits for the
// release).
func (f *faults) holdSnapshots(addr string, span *rangekvpb.RangeDescriptor, max time.Duration) {
	if f.w.healed {
		return
	}
	if f.snapHolds == nil {
		f.snapHolds = map[string]snapHeld{}
	}
	f.snapHolds[addr] = snapHeld{span: span, until: f.w.clk.Now().Add(max)}
	f.w.count("fault hold snapshots")
	f.w.tracef("fault hold snapshots to %s of [%s, %s) for at most %s", addr, span.GetStartKey(), span.GetEndKey(), max)
	f.w.at(f.w.clk.Now().Add(max), "release snapshots to "+addr, func() { f.releaseSnapshots(addr) })
}

// heldSnapshot is when e, due at due, arrives: a snapshot whose header
// names a range the hold of its store covers arrives when the hold ends
// (and the rest of its stream after it: a lane keeps its order).
func (f *faults) heldSnapshot(e *grpcnet.Envelope, due time.Time) time.Time {
	h, ok := f.snapHolds[e.To]
	if !ok || !e.ToServer || e.Method != snapshotMethod || !due.Before(h.until) {
		return due
	}
	if c, ok := e.Msg.(*rangekvpb.SnapshotChunk); ok && c.GetHeader() != nil && spansOverlap(c.GetHeader().GetDescriptor_(), h.span) {
		return h.until
	}
	return due
}

// spansOverlap reports whether the key spans of a and b overlap (an empty
// end key is the end of the key space).
func spansOverlap(a, b *rangekvpb.RangeDescriptor) bool {
	aBefore := len(a.GetEndKey()) > 0 && bytes.Compare(a.GetEndKey(), b.GetStartKey()) <= 0
	bBefore := len(b.GetEndKey()) > 0 && bytes.Compare(b.GetEndKey(), a.GetStartKey()) <= 0
	return !aBefore && !bBefore
}

// releaseSnapshots ends the hold of addr's snapshot streams: everything
// held is due now, all at the same instant.
func (f *faults) releaseSnapshots(addr string) {
	if _, ok := f.snapHolds[addr]; !ok {
		return
	}
	delete(f.snapHolds, addr)
	now := f.w.clk.Now()
	n := 0
	var spans []string
	for _, l := range f.w.wire.lanes {
		if !l.toSrv || l.q[0].e.To != addr || l.q[0].e.Method != snapshotMethod || !l.q[0].due.After(now) {
			continue
		}
		for _, p := range l.q {
			if p.due.After(now) {
				p.due = now
				n++
				if c, ok := p.e.Msg.(*rangekvpb.SnapshotChunk); ok && c.GetHeader() != nil {
					d := c.GetHeader().GetDescriptor_()
					spans = append(spans, fmt.Sprintf("r%d[%s,%s)@%d", d.GetRangeId(), d.GetStartKey(), d.GetEndKey(),
						c.GetHeader().GetMessage().GetSnapshot().GetMetadata().GetIndex()))
				}
			}
		}
		l.lastDue = now
	}
	f.w.tracef("release snapshots to %s: %d messages, snapshots of %v", addr, n, spans)
}
