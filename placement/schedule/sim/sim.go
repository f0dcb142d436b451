// The simulated Cluster: its stores, ranges and in-flight operators, Round
// and Run, and the counts that tests check.

package sim

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Cluster is the simulated cluster.
type Cluster struct {
	cfg      schedule.Config
	now      time.Time
	interval time.Duration
	round    int

	stores   []schedule.StoreView // sorted by ID
	ranges   []*rangeState        // sorted by ID
	rangeIdx map[uint64]int
	inflight map[uint64]*schedule.Operator

	nextReplicaID uint64
	totals        Totals
}

type rangeState struct {
	desc   *rangekvpb.RangeDescriptor // never modified in place: views share it
	leader uint64
	size   uint64
	// pending: store ID -> first round at which the replica may catch up.
	pending map[uint64]int
	// sticky pending replicas set by the test (never catch up by themselves).
	sticky []uint64
}

// Totals accumulate over the cluster's life.
type Totals struct {
	Rounds    int
	Created   int
	Finished  int
	Aborted   int
	StepsRun  int
	ByKind    map[schedule.Kind]int
	AbortedBy map[string]int
}

// RoundResult reports one round.
type RoundResult struct {
	Round    int
	Created  []*schedule.Operator
	Finished []*schedule.Operator
	Aborted  []*schedule.Operator
	// Applied are the steps of operators already in flight applied this
	// round; Started the first steps of the operators created this round.
	Applied []string
	Started []string
}

// New returns an empty cluster starting at start, advancing by interval
// per round.
func New(cfg schedule.Config, start time.Time, interval time.Duration) *Cluster {
	return &Cluster{
		cfg:           cfg,
		now:           start,
		interval:      interval,
		rangeIdx:      make(map[uint64]int),
		inflight:      make(map[uint64]*schedule.Operator),
		nextReplicaID: 1,
		totals:        Totals{ByKind: map[schedule.Kind]int{}, AbortedBy: map[string]int{}},
	}
}

// Now is the simulated time.
func (c *Cluster) Now() time.Time { return c.now }

// Advance moves the simulated time without running a round.
func (c *Cluster) Advance(d time.Duration) { c.now = c.now.Add(d) }

// Config returns the scheduler configuration.
func (c *Cluster) Config() schedule.Config { return c.cfg }

// SetConfig replaces the scheduler configuration.
func (c *Cluster) SetConfig(cfg schedule.Config) { c.cfg = cfg }

// Totals returns the accumulated totals.
func (c *Cluster) Totals() Totals { return c.totals }

// AddStore adds or replaces a store.
func (c *Cluster) AddStore(s schedule.StoreView) {
	i, found := slices.BinarySearchFunc(c.stores, s.ID, func(a schedule.StoreView, id uint64) int { return cmp.Compare(a.ID, id) })
	if found {
		c.stores[i] = s
		return
	}
	c.stores = slices.Insert(c.stores, i, s)
}

// SetStoreState changes a store's state; going Down records now as
// DownSince.
func (c *Cluster) SetStoreState(id uint64, state schedule.StoreState) error {
	for i := range c.stores {
		if c.stores[i].ID == id {
			if state == schedule.StoreDown && c.stores[i].State != schedule.StoreDown {
				c.stores[i].DownSince = c.now
			}
			c.stores[i].State = state
			return nil
		}
	}
	return fmt.Errorf("sim: no store %d", id)
}

// SetRange adds or replaces a range (as if its leader reported it). The
// descriptor is shared, not copied, and must not be modified afterwards.
// Its pending stores stay pending until SetRange says otherwise.
func (c *Cluster) SetRange(r schedule.RangeView) error {
	id := r.ID()
	if id == 0 {
		return fmt.Errorf("sim: range without ID")
	}
	for _, rep := range r.Desc.GetReplicas() {
		c.nextReplicaID = max(c.nextReplicaID, rep.GetReplicaId()+1)
	}
	c.nextReplicaID = max(c.nextReplicaID, r.Desc.GetNextReplicaId())
	st := &rangeState{desc: r.Desc, leader: r.LeaderStoreID, size: r.ApproximateSizeBytes, sticky: slices.Clone(r.PendingStoreIDs)}
	if i, ok := c.rangeIdx[id]; ok {
		c.ranges[i] = st
		return nil
	}
	if n := len(c.ranges); n > 0 && c.ranges[n-1].desc.GetRangeId() > id {
		return fmt.Errorf("sim: ranges must be added in ascending ID order (%d after %d)", id, c.ranges[n-1].desc.GetRangeId())
	}
	c.rangeIdx[id] = len(c.ranges)
	c.ranges = append(c.ranges, st)
	return nil
}

// BumpVersion grows a range's version, as a split or merge would (the
// other range of the split is not modelled); pending replicas stay pending.
func (c *Cluster) BumpVersion(rangeID uint64) error {
	i, ok := c.rangeIdx[rangeID]
	if !ok {
		return fmt.Errorf("sim: no range %d", rangeID)
	}
	s := c.ranges[i]
	d := s.mutate(0)
	d.Epoch.Version++
	return nil
}

// Range returns a range as its leader would report it.
func (c *Cluster) Range(id uint64) (schedule.RangeView, bool) {
	i, ok := c.rangeIdx[id]
	if !ok {
		return schedule.RangeView{}, false
	}
	return c.ranges[i].view(), true
}

// SetInFlight makes op the in-flight operator of its range (replacing any).
func (c *Cluster) SetInFlight(op *schedule.Operator) { c.inflight[op.RangeID] = op }

// InFlight returns the in-flight operators by range ID.
func (c *Cluster) InFlight() []*schedule.Operator {
	ops := make([]*schedule.Operator, 0, len(c.inflight))
	for _, op := range c.inflight {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b *schedule.Operator) int { return cmp.Compare(a.RangeID, b.RangeID) })
	return ops
}

func (s *rangeState) view() schedule.RangeView {
	rv := schedule.RangeView{Desc: s.desc, LeaderStoreID: s.leader, ApproximateSizeBytes: s.size}
	if len(s.pending) > 0 || len(s.sticky) > 0 {
		rv.PendingStoreIDs = slices.Clone(s.sticky)
		for id := range s.pending {
			rv.PendingStoreIDs = append(rv.PendingStoreIDs, id)
		}
		slices.Sort(rv.PendingStoreIDs)
	}
	return rv
}

// View builds the ClusterView the scheduler sees now.
func (c *Cluster) View() (*schedule.ClusterView, error) {
	rvs := make([]schedule.RangeView, len(c.ranges))
	for i, s := range c.ranges {
		rvs[i] = s.view()
	}
	return schedule.NewClusterView(c.cfg, c.stores, rvs, c.InFlight())
}

// Round runs one round (see the package comment).
func (c *Cluster) Round() (RoundResult, error) {
	c.round++
	c.totals.Rounds++
	c.now = c.now.Add(c.interval)
	res := RoundResult{Round: c.round}

	up := make(map[uint64]bool, len(c.stores))
	for _, s := range c.stores {
		up[s.ID] = s.State == schedule.StoreUp
	}
	for _, s := range c.ranges {
		for id, at := range s.pending {
			if at <= c.round && up[id] {
				delete(s.pending, id)
			}
		}
		if !up[s.leader] {
			s.elect(up)
		}
	}

	for _, op := range c.InFlight() {
		s := c.ranges[c.rangeIdx[op.RangeID]]
		rv := s.view()
		if err := op.CheckEpoch(rv); err != nil {
			why := err.Error()
			if se := (*schedule.StaleOperatorError)(nil); errors.As(err, &se) {
				why = se.Reason.String()
			}
			c.abort(op, &res, why)
			continue
		}
		if op.Expired(c.now) {
			c.abort(op, &res, "timeout")
			continue
		}
		step, done := op.NextStep(rv)
		if done {
			delete(c.inflight, op.RangeID)
			c.totals.Finished++
			res.Finished = append(res.Finished, op)
			continue
		}
		if c.apply(s, step, up) {
			c.totals.StepsRun++
			res.Applied = append(res.Applied, fmt.Sprintf("r%d %s", op.RangeID, step))
		}
	}

	v, err := c.View()
	if err != nil {
		return res, err
	}
	for _, op := range schedule.Schedule(v, c.now) {
		for _, st := range op.Steps {
			if a, ok := st.(schedule.AddLearner); ok && a.ReplicaID == 0 {
				op = op.WithReplicaID(a.StoreID, c.nextReplicaID)
				c.nextReplicaID++
			}
		}
		c.inflight[op.RangeID] = op
		c.totals.Created++
		c.totals.ByKind[op.Kind]++
		res.Created = append(res.Created, op)
		// Dispatched at once: the first step starts this round.
		s := c.ranges[c.rangeIdx[op.RangeID]]
		if step, done := op.NextStep(s.view()); !done && c.apply(s, step, up) {
			c.totals.StepsRun++
			res.Started = append(res.Started, fmt.Sprintf("r%d %s", op.RangeID, step))
		}
	}
	return res, nil
}

func (c *Cluster) abort(op *schedule.Operator, res *RoundResult, why string) {
	delete(c.inflight, op.RangeID)
	c.totals.Aborted++
	c.totals.AbortedBy[why]++
	res.Aborted = append(res.Aborted, op)
}

// elect picks the lowest-ID Up voter as leader if a quorum of voters is
// Up, else leaves the range leaderless.
func (s *rangeState) elect(up map[uint64]bool) {
	voters, live := 0, uint64(0)
	var best uint64
	for _, rep := range s.desc.GetReplicas() {
		if rep.GetRole() != rangekvpb.ReplicaRole_VOTER {
			continue
		}
		voters++
		if up[rep.GetStoreId()] {
			live++
			if best == 0 || rep.GetStoreId() < best {
				best = rep.GetStoreId()
			}
		}
	}
	if int(live) >= voters/2+1 {
		s.leader = best
	} else {
		s.leader = 0
	}
}

// apply executes one step as a range leader would, reporting whether it
// changed anything (a step that cannot run yet, e.g. promoting a learner
// still catching up, is refused as a store would refuse it).
func (c *Cluster) apply(s *rangeState, step schedule.Step, up map[uint64]bool) bool {
	find := func(store uint64) int {
		return slices.IndexFunc(s.desc.GetReplicas(), func(r *rangekvpb.ReplicaDescriptor) bool { return r.GetStoreId() == store })
	}
	switch st := step.(type) {
	case schedule.AddLearner:
		if find(st.StoreID) >= 0 {
			return false // catching up
		}
		d := s.mutate(1)
		id := st.ReplicaID
		if id == 0 {
			id = c.nextReplicaID
			c.nextReplicaID++
		}
		d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: st.StoreID, Role: rangekvpb.ReplicaRole_LEARNER})
		d.NextReplicaId = max(d.NextReplicaId, id+1)
		if s.pending == nil {
			s.pending = make(map[uint64]int)
		}
		s.pending[st.StoreID] = c.round + 1
	case schedule.PromoteLearner:
		i := find(st.StoreID)
		if i < 0 || s.desc.Replicas[i].GetRole() != rangekvpb.ReplicaRole_LEARNER || s.isPending(st.StoreID) {
			return false
		}
		d := s.mutate(st.ConfVerDelta()) // enter and leave joint, in one go here
		d.Replicas[i] = &rangekvpb.ReplicaDescriptor{ReplicaId: d.Replicas[i].ReplicaId, StoreId: st.StoreID, Role: rangekvpb.ReplicaRole_VOTER}
	case schedule.RemoveReplica:
		i := find(st.StoreID)
		if i < 0 || s.leader == st.StoreID {
			return false
		}
		d := s.mutate(1)
		d.Replicas = slices.Delete(d.Replicas, i, i+1)
		delete(s.pending, st.StoreID)
		s.sticky = slices.DeleteFunc(s.sticky, func(id uint64) bool { return id == st.StoreID })
	case schedule.TransferLeader:
		i := find(st.ToStoreID)
		if i < 0 || s.desc.Replicas[i].GetRole() != rangekvpb.ReplicaRole_VOTER || !up[st.ToStoreID] {
			return false
		}
		s.leader = st.ToStoreID
	case schedule.LeaveJoint:
		d := s.mutate(st.ConfVerDelta())
		for i, r := range d.Replicas {
			switch r.GetRole() {
			case rangekvpb.ReplicaRole_VOTER_INCOMING:
				d.Replicas[i] = &rangekvpb.ReplicaDescriptor{ReplicaId: r.ReplicaId, StoreId: r.StoreId, Role: rangekvpb.ReplicaRole_VOTER}
			case rangekvpb.ReplicaRole_VOTER_DEMOTING:
				d.Replicas[i] = &rangekvpb.ReplicaDescriptor{ReplicaId: r.ReplicaId, StoreId: r.StoreId, Role: rangekvpb.ReplicaRole_LEARNER}
			}
		}
	default:
		return false
	}
	return true
}

func (s *rangeState) isPending(store uint64) bool {
	_, p := s.pending[store]
	return p || slices.Contains(s.sticky, store)
}

// mutate replaces the descriptor with a copy whose conf_ver grew by delta,
// and returns the copy for the caller to change (views keep the old one).
func (s *rangeState) mutate(delta uint64) *rangekvpb.RangeDescriptor {
	o := s.desc
	d := &rangekvpb.RangeDescriptor{
		RangeId:       o.GetRangeId(),
		StartKey:      o.GetStartKey(),
		EndKey:        o.GetEndKey(),
		Epoch:         &rangekvpb.RangeEpoch{ConfVer: o.GetEpoch().GetConfVer() + delta, Version: o.GetEpoch().GetVersion()},
		Replicas:      slices.Clone(o.GetReplicas()),
		NextReplicaId: o.GetNextReplicaId(),
	}
	s.desc = d
	return d
}

// RunResult summarises Run.
type RunResult struct {
	// Rounds run; Converged is false if maxRounds ran out first.
	Rounds    int
	Converged bool
	// Operators created, finished and aborted during the run.
	Created, Finished, Aborted int
}

// Run runs rounds until one creates no operator and none is in flight, or
// maxRounds have run.
func (c *Cluster) Run(maxRounds int) (RunResult, error) {
	before := c.totals
	var res RunResult
	for res.Rounds < maxRounds {
		rr, err := c.Round()
		res.Rounds++
		if err != nil {
			return res, err
		}
		if len(rr.Created) == 0 && len(c.inflight) == 0 {
			res.Converged = true
			break
		}
	}
	res.Created = c.totals.Created - before.Created
	res.Finished = c.totals.Finished - before.Finished
	res.Aborted = c.totals.Aborted - before.Aborted
	return res, nil
}

// StoreCount is a store's replica and leader counts in the simulation.
type StoreCount struct {
	ID       uint64
	State    schedule.StoreState
	Replicas int
	Voters   int
	Leaders  int
	Bytes    uint64
}

// Counts returns per-store counts, by store ID.
func (c *Cluster) Counts() []StoreCount {
	idx := make(map[uint64]int, len(c.stores))
	out := make([]StoreCount, len(c.stores))
	for i, s := range c.stores {
		idx[s.ID] = i
		out[i] = StoreCount{ID: s.ID, State: s.State}
	}
	for _, s := range c.ranges {
		for _, rep := range s.desc.GetReplicas() {
			i, ok := idx[rep.GetStoreId()]
			if !ok {
				continue
			}
			out[i].Replicas++
			out[i].Bytes += s.size
			if rep.GetRole() == rangekvpb.ReplicaRole_VOTER {
				out[i].Voters++
			}
		}
		if i, ok := idx[s.leader]; ok {
			out[i].Leaders++
		}
	}
	return out
}

// Spread returns the minimum and maximum replica and leader counts over Up
// stores.
func (c *Cluster) Spread() (minReplicas, maxReplicas, minLeaders, maxLeaders int) {
	first := true
	for _, sc := range c.Counts() {
		if sc.State != schedule.StoreUp {
			continue
		}
		if first {
			minReplicas, maxReplicas, minLeaders, maxLeaders = sc.Replicas, sc.Replicas, sc.Leaders, sc.Leaders
			first = false
			continue
		}
		minReplicas, maxReplicas = min(minReplicas, sc.Replicas), max(maxReplicas, sc.Replicas)
		minLeaders, maxLeaders = min(minLeaders, sc.Leaders), max(maxLeaders, sc.Leaders)
	}
	return
}

// BuildBalanced returns a cluster of nStores Up stores (IDs 1..nStores)
// and nRanges ranges (IDs 1..nRanges) of sizeBytes each, at epoch (1, 1),
// with cfg.ReplicationFactor voters each, dealt round-robin: replica j of
// range i is on store (i·factor + j) mod nStores, so replica counts differ
// by at most one between stores. Each range is led by its replica on the
// store leading the fewest ranges so far (lowest ID on a tie), which keeps
// leader counts within one or two. nStores must be at least the factor.
func BuildBalanced(cfg schedule.Config, start time.Time, interval time.Duration, nStores, nRanges int, sizeBytes uint64) *Cluster {
	c := New(cfg, start, interval)
	for i := 1; i <= nStores; i++ {
		c.AddStore(schedule.StoreView{ID: uint64(i), Address: fmt.Sprintf("s%d", i), State: schedule.StoreUp})
	}
	k := cfg.ReplicationFactor
	leaders := make([]int, nStores+1)
	for i := 0; i < nRanges; i++ {
		reps := make([]*rangekvpb.ReplicaDescriptor, k)
		var leader uint64
		for j := range reps {
			store := uint64((i*k+j)%nStores + 1)
			reps[j] = &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(i*k + j + 1), StoreId: store}
			if leader == 0 || leaders[store] < leaders[leader] || leaders[store] == leaders[leader] && store < leader {
				leader = store
			}
		}
		leaders[leader]++
		d := &rangekvpb.RangeDescriptor{RangeId: uint64(i + 1), Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}, Replicas: reps, NextReplicaId: uint64(i*k + k + 1)}
		if err := c.SetRange(schedule.RangeView{Desc: d, LeaderStoreID: leader, ApproximateSizeBytes: sizeBytes}); err != nil {
			panic(err) // IDs ascend by construction
		}
	}
	return c
}
