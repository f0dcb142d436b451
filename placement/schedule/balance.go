// Balance: move replicas from the Up store with the most to the one with
// the fewest, and leadership from the store leading the most ranges to the
// one leading the fewest, each only when the gap exceeds the configured
// margin, so that no move is ever reversed by a later round.

package schedule

import (
	"slices"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// maxBalanceTries bounds the healthy ranges examined per source store when
// looking for one to move.
const maxBalanceTries = 256

// balanceReplicas moves replicas while some Up source holds more than
// ReplicaBalanceMargin replicas more than some Up target that can take one.
//
// No thrashing: a move s→t requires replicas(s) − replicas(t) > margin ≥ 1,
// so afterwards replicas(t) ≤ replicas(s); the reverse move would need
// replicas(t) − replicas(s) > margin, which cannot hold. Moves never make a
// range's label isolation worse, so spreading never undoes them either.
// Σ replicas² drops with every move, so balancing terminates; it stops
// with max − min ≤ margin unless labels or limits forbid every move left.
func (p *planner) balanceReplicas() {
	v := p.v
	margin := p.cfg.ReplicaBalanceMargin
	exhausted := make([]bool, len(v.stores))
	for p.room() {
		src := int32(-1)
		for si := range v.stores {
			s := int32(si)
			if !p.up[s] || exhausted[s] || !p.opRoom(s) {
				continue
			}
			if src < 0 || p.replicas[s] > p.replicas[src] ||
				p.replicas[s] == p.replicas[src] && p.bytes[s] > p.bytes[src] {
				src = s
			}
		}
		if src < 0 {
			return
		}
		targets := p.replicaTargets(src, margin)
		if len(targets) == 0 {
			// src has the most replicas among the sources left: no other
			// source has a target either.
			return
		}
		if !p.moveFrom(src, targets) {
			exhausted[src] = true
		}
	}
}

// replicaTargets lists the Up stores that may take a replica from src,
// fewest replicas first (then bytes, then store ID).
func (p *planner) replicaTargets(src int32, margin int) []int32 {
	var ts []int32
	for si := range p.v.stores {
		t := int32(si)
		if t == src || !p.up[t] || !p.opRoom(t) || p.snaps[t] >= p.cfg.MaxSnapshotsPerStore ||
			p.replicas[src]-p.replicas[t] <= margin {
			continue
		}
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b int32) int {
		if p.fewerReplicas(a, b) {
			return -1
		}
		return 1
	})
	return ts
}

// moveFrom creates one balance move off src: ranges where src follows are
// tried before ranges it leads (no leader transfer needed); the target is
// the first of targets that does not hold the range, has space and keeps
// the range's isolation.
func (p *planner) moveFrom(src int32, targets []int32) bool {
	v := p.v
	tries := 0
	for pass := 0; pass < 2; pass++ {
		for _, ri := range v.storeRanges[src] {
			if p.busy[ri] || (v.leader[ri] == src) != (pass == 1) || !p.healthy(ri) {
				continue
			}
			if tries++; tries > maxBalanceTries {
				return false
			}
			sis := v.replicaStores(ri)
			cur := v.isolationOf(sis, -1, -1)
			size := v.ranges[ri].ApproximateSizeBytes
			for _, t := range targets {
				if slices.Contains(sis, t) || p.snaps[t] >= p.cfg.MaxSnapshotsPerStore || !p.opRoom(t) ||
					!p.spaceOK(t, size) || v.isolationOf(sis, src, t).cmp(cur) < 0 {
					continue
				}
				if p.admit(ri, p.moveOp(ri, src, t, KindBalanceReplica, PriorityLow)) {
					return true
				}
				break
			}
		}
	}
	return false
}

// balanceLeaders transfers leadership while some Up store leads more than
// LeaderBalanceTolerance ranges more than another Up voter of one of its
// ranges. It works from the most loaded store (giving leadership to its
// ranges' least loaded voters) and from the least loaded one (taking
// leadership of its ranges from the most loaded leaders), as PD's
// balance-leader does. The no-thrashing argument of balanceReplicas holds
// with the tolerance as the margin.
func (p *planner) balanceLeaders() {
	v := p.v
	tol := p.cfg.LeaderBalanceTolerance
	n := len(v.stores)
	exSrc, exDst := make([]bool, n), make([]bool, n)
	for p.room() {
		src, dst, lo, hi := int32(-1), int32(-1), int32(-1), int32(-1)
		for si := range v.stores {
			s := int32(si)
			// A draining store takes no part: its leader count is
			// heading to zero and must not pull leaderships back.
			if !p.lead[s] || !p.opRoom(s) {
				continue
			}
			if hi < 0 || p.leaders[s] > p.leaders[hi] {
				hi = s
			}
			if lo < 0 || p.leaders[s] < p.leaders[lo] {
				lo = s
			}
			if !exSrc[s] && (src < 0 || p.leaders[s] > p.leaders[src]) {
				src = s
			}
			if !exDst[s] && (dst < 0 || p.leaders[s] < p.leaders[dst]) {
				dst = s
			}
		}
		switch {
		case src >= 0 && p.leaders[src]-p.leaders[lo] > tol:
			if !p.leaderFrom(src, tol) {
				exSrc[src] = true
			}
		case dst >= 0 && p.leaders[hi]-p.leaders[dst] > tol:
			if !p.leaderTo(dst, tol) {
				exDst[dst] = true
			}
		default:
			return
		}
	}
}

// leaderVoter reports whether store index si can take leadership of range
// ri: an Up, caught-up VOTER with operator room.
func (p *planner) leaderVoter(ri, si int32, j int) bool {
	r := &p.v.ranges[ri]
	rep := r.Desc.GetReplicas()[j]
	return si >= 0 && p.lead[si] && p.opRoom(si) && rep.GetRole() == rangekvpb.ReplicaRole_VOTER && !r.IsPending(rep.GetStoreId())
}

// leaderFrom moves one leadership off src to the least loaded eligible
// voter of one of its ranges.
func (p *planner) leaderFrom(src int32, tol int) bool {
	v := p.v
	for _, ri := range v.storeRanges[src] {
		if p.busy[ri] || v.leader[ri] != src {
			continue
		}
		best := int32(-1)
		for j, si := range v.replicaStores(ri) {
			// Cheap checks first: most ranges have no voter far enough below.
			if si < 0 || si == src || p.leaders[src]-p.leaders[si] <= tol || !p.leaderVoter(ri, si, j) {
				continue
			}
			if best < 0 || p.leaders[si] < p.leaders[best] {
				best = si
			}
		}
		if best >= 0 && p.admit(ri, p.newOp(ri, KindBalanceLeader, PriorityLow,
			TransferLeader{FromStoreID: p.storeID(src), ToStoreID: p.storeID(best)})) {
			return true
		}
	}
	return false
}

// leaderTo moves to dst the leadership of one of the ranges where dst is an
// eligible voter, taking it from the most loaded leader.
func (p *planner) leaderTo(dst int32, tol int) bool {
	v := p.v
	best := int32(-1)
	for _, ri := range v.storeRanges[dst] {
		l := v.leader[ri]
		if p.busy[ri] || l < 0 || l == dst || !p.up[l] || !p.opRoom(l) || p.leaders[l]-p.leaders[dst] <= tol {
			continue
		}
		j := slices.Index(v.replicaStores(ri), dst)
		if !p.leaderVoter(ri, dst, j) {
			continue
		}
		if best < 0 || p.leaders[l] > p.leaders[v.leader[best]] {
			best = ri
		}
	}
	if best < 0 {
		return false
	}
	l := v.leader[best]
	return p.admit(best, p.newOp(best, KindBalanceLeader, PriorityLow,
		TransferLeader{FromStoreID: p.storeID(l), ToStoreID: p.storeID(dst)}))
}
