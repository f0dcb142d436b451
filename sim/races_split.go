// The lagging split, an operation aimed at issue 15 item 1 (a split erased
// the vote of the uninitialized right-hand replica): one follower of a
// range receives none of its log entries (its MsgApps and snapshots are
// dropped, heartbeats and votes still arrive) while the range splits, so
// the new right half's election creates an uninitialized right-hand
// replica there, which votes. Then the follower catches up, and while its
// split is staged and not committed (a seed-chosen stall of its worker at
// store.PointSplitStaged) the right half elects a new leader; when the
// worker resumes, the partition flips. Every choice is the seed's.

package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// splitLag is the lagging split under way (at most one). The stores'
// DropRaftMessage knob reads it from their passes; everything else runs
// on the simulator's goroutine.
type splitLag struct {
	mu sync.Mutex
	lagState
}

// lagState is a lagging split's state.
type lagState struct {
	// tok names the operation that started the lag.
	tok uint64
	// store: the lagging store's ID (0: no lag); left: the range it lags
	// on while leftLag; ranges above `above` (the split's new right half)
	// it lags on while rightLag.
	store       uint64
	left, above uint64
	leftLag     bool
	rightLag    bool
	right       uint64   // the right half, once the split returned
	rightStores []uint64 // the stores of its replicas
	leftLeader  uint64   // the store that led left when the lag began
	stall       time.Duration
	armed       bool // the next PointSplitStaged of right on store stalls
	flipSpan    time.Duration
}

// drops reports whether the lag loses a message of rangeID to store to
// (the store.TestingKnobs.DropRaftMessage of every store).
func (l *splitLag) drops(rangeID, to uint64, typ string) bool {
	if typ != "MsgApp" && typ != "MsgSnap" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store == 0 || to != l.store {
		return false
	}
	return (l.leftLag && rangeID == l.left) || (l.rightLag && rangeID > l.above)
}

// target is the range the lag of operation tok began on and the lagging
// store (0: no such lag).
func (l *splitLag) target(tok uint64) (left, store uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tok != tok {
		return 0, 0
	}
	return l.left, l.store
}

// containsKey reports whether key is in d's span.
func containsKey(d *rangekvpb.RangeDescriptor, key string) bool {
	return string(d.GetStartKey()) <= key && (len(d.GetEndKey()) == 0 || key < string(d.GetEndKey()))
}

// end lifts the lag.
func (l *splitLag) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lagState = lagState{}
}

// laggingSplit splits the range holding key while one of its followers
// lags, and arms the stall and the flips that aim at the split vote race:
//
//  1. the follower F (seed-chosen) stops receiving the range's MsgApps
//     and snapshots, and those of any range created from now on (the new
//     right half), for a while, during which the workload writes;
//  2. the range splits; the left leader's store campaigns the right half
//     at once, and F creates an uninitialized right replica that votes;
//  3. F's lag on the left range ends: it applies the split, and its
//     worker stalls (seed-chosen, 1.5–4 s) with the split staged;
//  4. meanwhile the right half's leader A is cut off from the stores, and
//     the third replica's store B runs an election that F's uninitialized
//     right replica votes in;
//  5. when F's worker resumes, A is healed and B is cut off (3–6 s): A
//     campaigns, and F's right replica, just installed by the split, is
//     asked for its vote in the term it voted in during the stall.
//
// With issue 15 item 1's bug the split's batch overwrote that vote, and F
// grants it twice (the two-votes check).
func (w *world) laggingSplit(ctx context.Context, a *router.Admin, key string, r *rand.Rand) (string, error) {
	what := "lagging split at " + key
	pick := r.Uint64()
	hold := 200*time.Millisecond + time.Duration(r.Int64N(int64(800*time.Millisecond)))
	stall := 1500*time.Millisecond + time.Duration(r.Int64N(int64(2500*time.Millisecond)))
	flip := 3*time.Second + time.Duration(r.Int64N(int64(3*time.Second)))
	tok := r.Uint64() | 1
	// The stores are looked at between passes, and the range may not
	// have all its voters yet: a few tries.
	var left, lagging uint64
	for try := 0; try < 40 && lagging == 0; try++ {
		w.post("lag "+key, func() { w.startLag(tok, key, pick, stall, flip) })
		if !clock.Sleep(ctx, w.clk, 50*time.Millisecond) {
			return what, ctx.Err()
		}
		left, lagging = w.lag.target(tok)
	}
	if lagging == 0 {
		return what + ": no lag (no settled leader with three voters, or another lag)", nil
	}
	if !clock.Sleep(ctx, w.clk, hold) {
		return what, ctx.Err()
	}
	what = fmt.Sprintf("lagging split r%d at %s", left, key)
	_, right, err := a.Split(ctx, []byte(key))
	if err != nil {
		w.post("lag end "+key, func() { w.endLag(tok, "split failed") })
		return what, err
	}
	what += fmt.Sprintf(" into r%d, store %d lagging", right.GetRangeId(), lagging)
	var stores []uint64
	for _, rd := range right.GetReplicas() {
		stores = append(stores, rd.GetStoreId())
	}
	w.post("lag split "+key, func() { w.lagSplitDone(tok, right.GetRangeId(), stores) })
	return what, nil
}

// startLag makes a follower of the range holding key lag (pick chooses
// it among the voters but the leader) on that range and on every range
// created from now on. The range and its leader are what the settled
// stores say (placement may not know the range's voters yet).
func (w *world) startLag(tok uint64, key string, pick uint64, stall, flip time.Duration) {
	l := &w.lag
	if w.healed {
		return
	}
	var above, leader uint64
	var d *rangekvpb.RangeDescriptor
	for _, ss := range w.checks.status() {
		for _, r := range ss.reps {
			above = max(above, r.RangeID)
			if r.Leader && r.Descriptor != nil && containsKey(r.Descriptor, key) {
				d, leader = r.Descriptor, ss.id
			}
		}
	}
	// Only a range of three voters or more (no learner, not joint): the
	// lagging one must not cost the range its quorum.
	var followers []uint64
	all := len(d.GetReplicas()) >= 3
	for _, rd := range d.GetReplicas() {
		if rd.GetRole() != rangekvpb.ReplicaRole_VOTER {
			all = false
		} else if rd.GetStoreId() != leader {
			followers = append(followers, rd.GetStoreId())
		}
	}
	if leader == 0 || !all {
		return
	}
	lagging := followers[pick%uint64(len(followers))]
	l.mu.Lock()
	busy := l.store != 0
	if !busy {
		l.lagState = lagState{tok: tok, store: lagging, left: d.GetRangeId(), above: above, leftLag: true, rightLag: true,
			leftLeader: leader, stall: stall, flipSpan: flip}
	}
	l.mu.Unlock()
	if busy {
		return
	}
	w.count("fault lagging split")
	w.tracef("fault lag store %d on r%d and ranges above r%d", lagging, d.GetRangeId(), above)
	// However the split ends, the lag does not outlast 10 s.
	w.at(w.clk.Now().Add(10*time.Second), "lag bound", func() { w.endLag(tok, "bound") })
}

// lagSplitDone notes the split's right half and lets the lagging store
// catch up on the left range: its next split-staged stop of right stalls.
func (w *world) lagSplitDone(tok, right uint64, stores []uint64) {
	l := &w.lag
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tok != tok {
		return
	}
	l.right, l.rightStores, l.leftLag, l.armed = right, stores, false, true
	w.tracef("lag store %d: split into r%d done, left lag lifted", l.store, right)
}

// endLag ends the lag operation tok started (0: whichever).
func (w *world) endLag(tok uint64, why string) {
	l := &w.lag
	l.mu.Lock()
	was := l.store
	mine := tok == 0 || l.tok == tok
	l.mu.Unlock()
	if was == 0 || !mine {
		return
	}
	l.end()
	w.tracef("lag store %d ends (%s)", was, why)
}

// aimedStop is the stall of the lagging split (step 3): when store proc's
// worker reaches PointSplitStaged for the right half, it stops for the
// stall, the right half's leader is cut off (step 4), and resume (step 5)
// flips the cut. ok is false for every other pass point.
func (w *world) aimedStop(proc int, p store.PassPoint, rangeID uint64) (d time.Duration, resume func(), ok bool) {
	l := &w.lag
	l.mu.Lock()
	hit := l.armed && p == store.PointSplitStaged && rangeID == l.right && w.stores[proc].storeID.Load() == l.store
	if hit {
		l.armed = false
	}
	tok, lagging, right, leftLeader, stall, flip, members := l.tok, l.store, l.right, l.leftLeader, l.stall, l.flipSpan, l.rightStores
	l.mu.Unlock()
	if !hit || w.healed {
		return 0, nil, false
	}
	// The right half's leader: a settled store that leads it, else the
	// store that led the left half (the split campaigns there).
	lead := leftLeader
	for _, ss := range w.checks.status() {
		for _, r := range ss.reps {
			if r.RangeID == right && r.Leader {
				lead = ss.id
			}
		}
	}
	var other uint64
	for _, id := range members {
		if id != lead && id != lagging {
			other = id
		}
	}
	w.count("fault lagging split stall")
	w.tracef("lag store %d: split into r%d staged, stall %s; cut r%d's leader store %d", lagging, right, stall, right, lead)
	pa := w.storeByID(lead)
	var healA func()
	if pa != nil {
		healA = w.isolateStore(pa, stall+time.Second)
	}
	return stall, func() {
		if healA != nil {
			healA()
		}
		if pb := w.storeByID(other); pb != nil && !w.healed {
			w.isolateStore(pb, flip)
		}
		w.tracef("lag store %d: split into r%d resumes; store %d healed, store %d cut for %s", lagging, right, lead, other, flip)
		w.at(w.clk.Now().Add(flip), "lag end", func() { w.endLag(tok, "done") })
	}, true
}

// isolateStore cuts p from every other store, both ways, for span, and
// returns a function that heals those cuts at once. Either heals only the
// links it cut that are still cut by it: a later cut of the same link
// (the flip) outlives the earlier one's end.
func (w *world) isolateStore(p *storeProc, span time.Duration) (heal func()) {
	f := w.faults
	var mine [][2]string
	for _, q := range w.stores {
		if q != p {
			for _, k := range [][2]string{{p.addr, q.addr}, {q.addr, p.addr}} {
				if !f.blocked[k] {
					f.blocked[k] = true
					mine = append(mine, k)
				}
			}
		}
	}
	done := false
	heal = func() {
		if done {
			return
		}
		done = true
		for _, k := range mine {
			if w.lagCuts[k] == &done {
				delete(f.blocked, k)
				delete(w.lagCuts, k)
			}
		}
	}
	for _, k := range mine {
		w.lagCuts[k] = &done
	}
	w.at(w.clk.Now().Add(span), fmt.Sprintf("heal s%d", p.idx+1), heal)
	return heal
}
