// The planner: the mutable working state of one Schedule round (expected
// counts with in-flight and newly created operators applied, per-store
// operator and snapshot budgets, busy ranges) and the admission of new
// operators against the limits.

package schedule

import (
	"slices"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// planner is private to one Schedule (or CheckRange) call.
type planner struct {
	v   *ClusterView
	cfg Config
	now time.Time

	// Per store index.
	up []bool // State == StoreUp
	// lead: Up and not draining: may receive leadership.
	lead []bool
	dead []bool // replicas here are replaced: Removed, or Down >= MaxStoreDownTime
	// anyDead: some replica may be on a dead store (a dead store, or a
	// replica on a store the view does not know).
	anyDead bool
	// Expected counts: the view's, plus the effect of the not-yet-done steps
	// of in-flight and new operators (PD's "operator influence"), so that a
	// move in progress is not planned again.
	replicas []int
	leaders  []int
	bytes    []int64
	// addBytes: bytes of learner additions not yet applied (for space).
	addBytes []uint64
	ops      []int // operators touching the store
	snaps    []int // learner additions to the store not yet done

	busy []bool // per range index: has an in-flight or new operator

	out []*Operator
	buf []uint64
}

func newPlanner(v *ClusterView, now time.Time) *planner {
	n := len(v.stores)
	p := &planner{
		v:        v,
		cfg:      v.cfg,
		now:      now,
		up:       make([]bool, n),
		lead:     make([]bool, n),
		dead:     make([]bool, n),
		replicas: make([]int, n),
		leaders:  make([]int, n),
		bytes:    make([]int64, n),
		addBytes: make([]uint64, n),
		ops:      make([]int, n),
		snaps:    make([]int, n),
		busy:     make([]bool, len(v.ranges)),
	}
	for si, s := range v.stores {
		switch s.State {
		case StoreUp:
			p.up[si] = true
			p.lead[si] = !s.Draining
		case StoreDown:
			p.dead[si] = now.Sub(s.DownSince) >= v.cfg.MaxStoreDownTime
		default:
			p.dead[si] = true
		}
		p.anyDead = p.anyDead || p.dead[si]
		st := v.stats[si]
		p.replicas[si] = st.ReplicaCount
		p.leaders[si] = st.LeaderCount
		p.bytes[si] = int64(st.RangeBytes)
	}
	p.anyDead = p.anyDead || slices.Contains(v.repStore, -1)
	for ri, op := range v.inflight {
		if op == nil {
			continue
		}
		p.busy[ri] = true
		r := &v.ranges[ri]
		p.influence(r, op.Steps[op.current(*r):])
	}
	return p
}

// storeDead reports whether a replica on store index si (-1: unknown
// store) is to be replaced.
func (p *planner) storeDead(si int32) bool { return si < 0 || p.dead[si] }

// storeUp reports whether store index si (-1: unknown) is Up.
func (p *planner) storeUp(si int32) bool { return si >= 0 && p.up[si] }

// influence applies the effect of steps (not yet done) on range r to the
// expected counts and budgets.
func (p *planner) influence(r *RangeView, steps []Step) {
	size := r.ApproximateSizeBytes
	p.buf = p.buf[:0]
	for _, s := range steps {
		p.buf = s.stores(p.buf)
		switch s := s.(type) {
		case AddLearner:
			if si, ok := p.v.storeIndex(s.StoreID); ok {
				if !s.applied(*r) {
					p.replicas[si]++
					p.bytes[si] += int64(size)
					p.addBytes[si] += size
				}
				if !s.Done(*r) {
					p.snaps[si]++
				}
			}
		case RemoveReplica:
			if si, ok := p.v.storeIndex(s.StoreID); ok && !s.Done(*r) {
				p.replicas[si]--
				p.bytes[si] -= int64(size)
			}
		case TransferLeader:
			if !s.Done(*r) && r.LeaderStoreID == s.FromStoreID {
				if si, ok := p.v.storeIndex(s.FromStoreID); ok {
					p.leaders[si]--
				}
				if si, ok := p.v.storeIndex(s.ToStoreID); ok {
					p.leaders[si]++
				}
			}
		}
	}
	for _, id := range dedupStable(p.buf) {
		if si, ok := p.v.storeIndex(id); ok {
			p.ops[si]++
		}
	}
}

// room reports whether the round may create another operator.
func (p *planner) room() bool { return len(p.out) < p.cfg.MaxOperatorsPerRound }

// opRoom reports whether store index si can take part in one more operator.
func (p *planner) opRoom(si int32) bool { return p.ops[si] < p.cfg.MaxOperatorsPerStore }

// canReceive reports whether store index si may receive a new replica of
// range ri: Up, not holding the range, under its operator and snapshot
// limits, and with space.
func (p *planner) canReceive(si, ri int32) bool {
	if !p.up[si] || !p.opRoom(si) || p.snaps[si] >= p.cfg.MaxSnapshotsPerStore {
		return false
	}
	for _, h := range p.v.replicaStores(ri) {
		if h == si {
			return false
		}
	}
	return p.spaceOK(si, p.v.ranges[ri].ApproximateSizeBytes)
}

func (p *planner) spaceOK(si int32, size uint64) bool {
	s := &p.v.stores[si]
	if s.CapacityBytes == 0 {
		return true
	}
	return float64(s.UsedBytes+p.addBytes[si]+size) <= float64(s.CapacityBytes)*p.cfg.LowSpaceRatio
}

// admit checks op against the per-store limits (dead stores are not
// limited) and the round cap; if it fits, it records the operator's
// influence, marks the range busy and appends it to the output.
func (p *planner) admit(ri int32, op *Operator) bool {
	if op == nil || p.busy[ri] || !p.room() {
		return false
	}
	for _, id := range op.Stores() {
		si, ok := p.v.storeIndex(id)
		if !ok || p.dead[si] {
			continue
		}
		if !p.opRoom(si) {
			return false
		}
	}
	for _, s := range op.Steps {
		if a, ok := s.(AddLearner); ok {
			si, known := p.v.storeIndex(a.StoreID)
			if !known || p.snaps[si] >= p.cfg.MaxSnapshotsPerStore {
				return false
			}
		}
	}
	p.influence(&p.v.ranges[ri], op.Steps)
	p.busy[ri] = true
	p.out = append(p.out, op)
	return true
}

func (p *planner) newOp(ri int32, kind Kind, prio Priority, steps ...Step) *Operator {
	r := &p.v.ranges[ri]
	return &Operator{
		RangeID:   r.ID(),
		Epoch:     r.Epoch(),
		Kind:      kind,
		Priority:  prio,
		Steps:     steps,
		CreatedAt: p.now,
		Deadline:  p.now.Add(p.cfg.OperatorTimeout),
	}
}

func (p *planner) storeID(si int32) uint64 { return p.v.stores[si].ID }

// healthy reports whether range ri is fit to be moved for spreading or
// balance: a known Up leader, exactly ReplicationFactor voters and nothing
// else, all on Up stores, none pending.
func (p *planner) healthy(ri int32) bool {
	v := p.v
	r := &v.ranges[ri]
	if l := v.leader[ri]; l < 0 || !p.up[l] || len(r.PendingStoreIDs) > 0 {
		return false
	}
	if v.mixed[ri] || int(v.voters[ri]) != p.cfg.ReplicationFactor {
		return false
	}
	for _, si := range v.replicaStores(ri) {
		if !p.storeUp(si) {
			return false
		}
	}
	return true
}

// leaderTarget picks the voter of range ri to take leadership from store
// index from: an Up, caught-up VOTER other than from, with operator room,
// fewest expected leaders, then lowest store ID. extra (>= 0) is a store
// that will be a voter by the time the transfer runs (the new replica of a
// move). It returns -1 if there is none.
func (p *planner) leaderTarget(ri, from, extra int32) int32 {
	v := p.v
	r := &v.ranges[ri]
	reps := r.Desc.GetReplicas()
	best := int32(-1)
	consider := func(si int32) {
		if si < 0 || si == from || !p.lead[si] || !p.opRoom(si) {
			return
		}
		if best < 0 || p.leaders[si] < p.leaders[best] || (p.leaders[si] == p.leaders[best] && si < best) {
			best = si
		}
	}
	for j, si := range v.replicaStores(ri) {
		if reps[j].GetRole() == rangekvpb.ReplicaRole_VOTER && !r.IsPending(reps[j].GetStoreId()) {
			consider(si)
		}
	}
	consider(extra)
	return best
}

// moveOp builds the operator that moves range ri's replica from store index
// src to dst (MULTIRAFT §6): AddLearner(dst) → PromoteLearner(dst) →
// TransferLeader off src if src leads → RemoveReplica(src). nil if src
// leads and no voter can take over.
func (p *planner) moveOp(ri, src, dst int32, kind Kind, prio Priority) *Operator {
	steps := []Step{AddLearner{StoreID: p.storeID(dst)}, PromoteLearner{StoreID: p.storeID(dst)}}
	if p.v.leader[ri] == src {
		t := p.leaderTarget(ri, src, dst)
		if t < 0 {
			return nil
		}
		steps = append(steps, TransferLeader{FromStoreID: p.storeID(src), ToStoreID: p.storeID(t)})
	}
	steps = append(steps, RemoveReplica{StoreID: p.storeID(src)})
	return p.newOp(ri, kind, prio, steps...)
}
