// Label spreading: move a replica so that a range's replicas cover more
// distinct zones (then hosts, ...), when Up stores offer such a place.

package schedule

// maxSpreadFailures bounds the ranges per round whose spreading search
// found no move (a search scans every store for every replica).
const maxSpreadFailures = 512

// spread proposes, for each healthy range whose isolation is below what the
// Up stores could give it, the single move that improves it most.
func (p *planner) spread() {
	v := p.v
	if v.levels == 0 {
		return
	}
	// Upper bounds: distinct domains per level among Up stores.
	var bound isolation
	for lvl := 0; lvl < v.levels; lvl++ {
		seen := make(map[int32]bool)
		for si := range v.stores {
			if p.up[si] {
				seen[v.loc[si][lvl]] = true
			}
		}
		bound[lvl] = int16(len(seen))
	}
	failures := 0
	for ri := range v.ranges {
		if !p.room() || failures >= maxSpreadFailures {
			return
		}
		r32 := int32(ri)
		if p.busy[ri] || !p.healthy(r32) {
			continue
		}
		sis := v.replicaStores(r32)
		cur := v.isolationOf(sis, -1, -1)
		improvable := false
		for lvl := 0; lvl < v.levels; lvl++ {
			if int(cur[lvl]) < min(len(sis), int(bound[lvl])) {
				improvable = true
				break
			}
		}
		if !improvable {
			continue
		}
		if !p.admit(r32, p.spreadRange(r32, cur)) {
			failures++
		}
	}
}

// spreadRange returns the move of range ri that improves its isolation
// most: among all (replica, store) pairs that improve on cur, the best
// resulting isolation, then a source that does not lead (no leader
// transfer needed), then a source with more expected replicas, then the
// target order of bestTarget. nil if none.
func (p *planner) spreadRange(ri int32, cur isolation) *Operator {
	v := p.v
	sis := v.replicaStores(ri)
	leader := v.leader[ri]
	bestSrc, bestDst := int32(-1), int32(-1)
	var bestIso isolation
	better := func(src, dst int32, iso isolation) bool {
		if bestSrc < 0 {
			return true
		}
		if c := iso.cmp(bestIso); c != 0 {
			return c > 0
		}
		if src != bestSrc {
			if (src == leader) != (bestSrc == leader) {
				return bestSrc == leader
			}
			if p.replicas[src] != p.replicas[bestSrc] {
				return p.replicas[src] > p.replicas[bestSrc]
			}
			return src < bestSrc
		}
		return p.fewerReplicas(dst, bestDst)
	}
	for si := range v.stores {
		dst := int32(si)
		if !p.canReceive(dst, ri) {
			continue
		}
		for _, src := range sis {
			iso := v.isolationOf(sis, src, dst)
			if iso.cmp(cur) > 0 && better(src, dst, iso) {
				bestSrc, bestDst, bestIso = src, dst, iso
			}
		}
	}
	if bestSrc < 0 {
		return nil
	}
	return p.moveOp(ri, bestSrc, bestDst, KindSpreadLabel, PriorityMedium)
}
