// Repair (PD's replica checker): joint configurations left behind, replicas
// on dead stores, too few or too many voters, leftover learners.

package schedule

import (
	"slices"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// CheckRange returns the repair operator that range rangeID needs now, or
// nil: when the range is healthy, has an in-flight operator, has no known
// leader on an Up store, has lost its quorum (no membership change can
// commit; that needs a manual recovery), or no store can take a replica
// within the limits. It is the operator Schedule would create for the range
// if it were the only one needing repair.
func CheckRange(v *ClusterView, rangeID uint64, now time.Time) *Operator {
	ri, ok := v.rangeIndex(rangeID)
	if !ok {
		return nil
	}
	p := newPlanner(v, now)
	if p.busy[ri] {
		return nil
	}
	if op := p.checkRange(ri); op != nil && p.admit(ri, op) {
		return op
	}
	return nil
}

// repair runs checkRange over the ranges that need it, most endangered
// first (fewest live voters beyond a quorum), then by range ID.
func (p *planner) repair() {
	type cand struct {
		ri    int32
		slack int
	}
	var cands []cand
	for ri := range p.v.ranges {
		if p.busy[ri] {
			continue
		}
		if need, slack := p.needsRepair(int32(ri)); need {
			cands = append(cands, cand{int32(ri), slack})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.slack - b.slack })
	for _, c := range cands {
		if !p.room() {
			return
		}
		p.admit(c.ri, p.checkRange(c.ri))
	}
}

// needsRepair is a cheap, allocation-free filter for checkRange: anything
// but exactly ReplicationFactor voters on non-dead stores. slack is the
// number of live voters beyond a quorum (negative: quorum lost).
func (p *planner) needsRepair(ri int32) (need bool, slack int) {
	voters := int(p.v.voters[ri])
	live := voters
	if p.anyDead {
		reps := p.v.ranges[ri].Desc.GetReplicas()
		for j, si := range p.v.replicaStores(ri) {
			if p.storeDead(si) && reps[j].GetRole() == rangekvpb.ReplicaRole_VOTER {
				live--
			}
		}
	}
	need = p.v.mixed[ri] || voters != p.cfg.ReplicationFactor || live != voters
	return need, live - (voters/2 + 1)
}

// replica is one replica of the range being checked.
type replica struct {
	si   int32 // store index, -1 if the store is unknown
	desc *rangekvpb.ReplicaDescriptor
}

func (p *planner) checkRange(ri int32) *Operator {
	v := p.v
	r := &v.ranges[ri]
	leader := v.leader[ri]
	if leader < 0 || !p.up[leader] {
		return nil // nobody to run an operator
	}
	var vbuf, lbuf, jbuf [8]replica
	voters, learners, joint := vbuf[:0], lbuf[:0], jbuf[:0]
	reps := r.Desc.GetReplicas()
	for j, si := range v.replicaStores(ri) {
		rep := replica{si: si, desc: reps[j]}
		switch reps[j].GetRole() {
		case rangekvpb.ReplicaRole_VOTER:
			voters = append(voters, rep)
		case rangekvpb.ReplicaRole_LEARNER:
			learners = append(learners, rep)
		default:
			joint = append(joint, rep)
		}
	}
	if len(joint) > 0 {
		return p.leaveJointOp(ri, joint)
	}

	nv := len(voters)
	var dbuf [8]replica
	deadVoters := dbuf[:0]
	for _, rep := range voters {
		if p.storeDead(rep.si) {
			deadVoters = append(deadVoters, rep)
		}
	}
	live := nv - len(deadVoters)
	quorum := nv/2 + 1
	if live < quorum {
		return nil // quorum lost: no membership change can commit
	}
	prio := PriorityHigh
	if live == quorum {
		prio = PriorityUrgent
	}
	factor := p.cfg.ReplicationFactor

	// 1. A voter on a dead store is replaced: a caught-up learner is
	// promoted if there is one, otherwise a learner is added on the best
	// store and promoted; then the dead voter is removed.
	if len(deadVoters) > 0 && nv <= factor {
		victim := deadVoters[0]
		rm := RemoveReplica{StoreID: victim.desc.GetStoreId()}
		if l, ok := p.healthyLearner(r, learners); ok {
			return p.newOp(ri, KindRepairReplaceDown, prio, PromoteLearner{StoreID: l.desc.GetStoreId()}, rm)
		}
		others := make([]int32, 0, nv)
		for _, rep := range voters {
			if rep.desc != victim.desc {
				others = append(others, rep.si)
			}
		}
		if t := p.bestTarget(ri, others); t >= 0 {
			id := p.storeID(t)
			return p.newOp(ri, KindRepairReplaceDown, prio, AddLearner{StoreID: id}, PromoteLearner{StoreID: id}, rm)
		}
		// No store can take it now; keep looking for other work.
	}

	// 2. Too few voters: promote a caught-up learner, or add one. A leftover
	// learner still catching up is not waited for (nothing says it ever
	// will: its snapshot may keep failing); it is removed as extra once the
	// range has its voters, unless it is promoted first.
	if nv < factor {
		if l, ok := p.healthyLearner(r, learners); ok {
			return p.newOp(ri, KindRepairPromoteLearner, prio, PromoteLearner{StoreID: l.desc.GetStoreId()})
		}
		base := make([]int32, 0, nv)
		for _, rep := range voters {
			base = append(base, rep.si)
		}
		if t := p.bestTarget(ri, base); t >= 0 {
			id := p.storeID(t)
			return p.newOp(ri, KindRepairAdd, prio, AddLearner{StoreID: id}, PromoteLearner{StoreID: id})
		}
	}

	// 3. Too many voters: remove the worst, never while it leads.
	if nv > factor {
		victim := p.worstVoter(r, voters)
		var steps []Step
		if victim.si == leader {
			t := p.leaderTarget(ri, leader, -1)
			if t < 0 {
				return nil
			}
			steps = append(steps, TransferLeader{FromStoreID: p.storeID(leader), ToStoreID: p.storeID(t)})
		}
		steps = append(steps, RemoveReplica{StoreID: victim.desc.GetStoreId()})
		return p.newOp(ri, KindRepairRemoveExtra, prio, steps...)
	}

	// 4. Leftover learners: removed when the range has its voters or the
	// learner's store is dead. (A learner is never the leader.)
	for _, l := range learners {
		if nv >= factor || p.storeDead(l.si) {
			return p.newOp(ri, KindRepairRemoveLearner, PriorityHigh, RemoveReplica{StoreID: l.desc.GetStoreId()})
		}
	}
	return nil
}

// healthyLearner returns a learner on an Up store that has caught up.
func (p *planner) healthyLearner(r *RangeView, learners []replica) (replica, bool) {
	for _, l := range learners {
		if p.storeUp(l.si) && !r.IsPending(l.desc.GetStoreId()) {
			return l, true
		}
	}
	return replica{}, false
}

// leaveJointOp leaves a joint configuration left behind by an interrupted
// change, moving leadership off a demoting leader first (TiKV refuses to
// leave joint while the leader is VOTER_DEMOTING).
func (p *planner) leaveJointOp(ri int32, joint []replica) *Operator {
	v := p.v
	r := &v.ranges[ri]
	var lj LeaveJoint
	leaderDemoting := false
	for _, rep := range joint {
		id := rep.desc.GetStoreId()
		if rep.desc.GetRole() == rangekvpb.ReplicaRole_VOTER_INCOMING {
			lj.Incoming = append(lj.Incoming, id)
		} else {
			lj.Demoting = append(lj.Demoting, id)
			if id == r.LeaderStoreID {
				leaderDemoting = true
			}
		}
	}
	var steps []Step
	if leaderDemoting {
		// Any voter of the outgoing-and-incoming config that stays a voter.
		t := int32(-1)
		reps := r.Desc.GetReplicas()
		for j, si := range v.replicaStores(ri) {
			role := reps[j].GetRole()
			if (role == rangekvpb.ReplicaRole_VOTER || role == rangekvpb.ReplicaRole_VOTER_INCOMING) &&
				p.storeUp(si) && p.lead[si] && p.opRoom(si) && !r.IsPending(reps[j].GetStoreId()) &&
				(t < 0 || p.leaders[si] < p.leaders[t]) {
				t = si
			}
		}
		if t < 0 {
			return nil
		}
		steps = append(steps, TransferLeader{FromStoreID: r.LeaderStoreID, ToStoreID: p.storeID(t)})
	}
	steps = append(steps, lj)
	return p.newOp(ri, KindRepairLeaveJoint, PriorityUrgent, steps...)
}

// bestTarget picks the store to receive a new replica of range ri, whose
// other voters are on base (store indexes, -1 for unknown stores): among
// the stores that canReceive it, the best isolation of base plus the
// store, then fewest expected replicas, then least expected bytes, then
// lowest store ID. -1 if none.
func (p *planner) bestTarget(ri int32, base []int32) int32 {
	best := int32(-1)
	var bestIso isolation
	for si := range p.v.stores {
		t := int32(si)
		if !p.canReceive(t, ri) {
			continue
		}
		iso := p.v.isolationOf(base, -1, t)
		if best >= 0 {
			if c := iso.cmp(bestIso); c < 0 || c == 0 && !p.fewerReplicas(t, best) {
				continue
			}
		}
		best, bestIso = t, iso
	}
	return best
}

// fewerReplicas orders target candidates: fewer expected replicas, then
// fewer expected bytes, then lower store ID (store indexes follow IDs).
func (p *planner) fewerReplicas(a, b int32) bool {
	if p.replicas[a] != p.replicas[b] {
		return p.replicas[a] < p.replicas[b]
	}
	if p.bytes[a] != p.bytes[b] {
		return p.bytes[a] < p.bytes[b]
	}
	return a < b
}

// worstVoter picks the voter to remove from an over-replicated range: one
// on a dead store first, then on a Down store, then a lagging one, then the
// one whose removal leaves the best label isolation, then the one on the
// store with the most expected replicas, then most bytes, then the highest
// store ID.
func (p *planner) worstVoter(r *RangeView, voters []replica) replica {
	stores := make([]int32, len(voters))
	for i, rep := range voters {
		stores[i] = rep.si
	}
	badness := func(rep replica) int {
		switch {
		case p.storeDead(rep.si):
			return 3
		case !p.up[rep.si]:
			return 2
		case r.IsPending(rep.desc.GetStoreId()):
			return 1
		}
		return 0
	}
	worse := func(a, b replica) bool { // is a a better pick than b?
		if ba, bb := badness(a), badness(b); ba != bb {
			return ba > bb
		}
		if a.si < 0 || b.si < 0 { // both unknown stores: badness already 3
			return a.desc.GetStoreId() > b.desc.GetStoreId()
		}
		if c := p.v.isolationOf(stores, a.si, -1).cmp(p.v.isolationOf(stores, b.si, -1)); c != 0 {
			return c > 0
		}
		if p.replicas[a.si] != p.replicas[b.si] {
			return p.replicas[a.si] > p.replicas[b.si]
		}
		if p.bytes[a.si] != p.bytes[b.si] {
			return p.bytes[a.si] > p.bytes[b.si]
		}
		return a.si > b.si
	}
	victim := voters[0]
	for _, rep := range voters[1:] {
		if worse(rep, victim) {
			victim = rep
		}
	}
	return victim
}
