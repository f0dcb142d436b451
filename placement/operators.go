// The operator controller (leader only): operators are step lists run by
// range leaders; a step is handed out in heartbeat responses, and the
// operator advances only when a range heartbeat's descriptor (or leader)
// shows the step done. Operators are tied to the epoch they were planned
// from (MULTIRAFT.md §10): each step is stamped with that epoch plus the
// conf_ver its earlier steps add, so a range leader refuses a step once
// anything else changed the range; and a split (version change), a
// membership change the operator's own steps do not explain, or a timeout
// aborts it.

package placement

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

var (
	errNoRange  = errors.New("no range holds that key")
	errNoLeader = errors.New("the range has no known leader yet; retry shortly")
)

type opStep struct {
	typ   rangekvpb.OperatorStepType
	store uint64
}

func (st opStep) String() string {
	switch st.typ {
	case rangekvpb.OperatorStepType_STEP_ADD_LEARNER:
		return fmt.Sprintf("add learner on store %d", st.store)
	case rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER:
		return fmt.Sprintf("promote learner on store %d", st.store)
	case rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA:
		return fmt.Sprintf("remove replica on store %d", st.store)
	default:
		return fmt.Sprintf("transfer leader to store %d", st.store)
	}
}

// done reports whether the range's reported state shows the step done.
func (st opStep) done(d *rangekvpb.RangeDescriptor, leader uint64) bool {
	r := replicaOnStore(d, st.store)
	switch st.typ {
	case rangekvpb.OperatorStepType_STEP_ADD_LEARNER:
		return r != nil
	case rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER:
		return r != nil && r.Role == rangekvpb.ReplicaRole_VOTER && !isJoint(d)
	case rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA:
		return r == nil
	default:
		return leader == st.store
	}
}

// confVerDelta is how much the step grows conf_ver once applied. It mirrors
// the store (store/replica_membership.go nextDescriptor), which adds one per applied
// membership entry: a learner added or a replica removed is one entry; a
// promotion is two, entering the joint configuration (the learner becomes
// VOTER_INCOMING) and leaving it. A leader transfer changes no epoch.
func (st opStep) confVerDelta() uint64 {
	switch st.typ {
	case rangekvpb.OperatorStepType_STEP_ADD_LEARNER, rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA:
		return 1
	case rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER:
		return 2
	default:
		return 0
	}
}

// partialConfVer is the part of confVerDelta that d already shows applied
// while the step is not done: a promotion whose joint entry applied (the
// learner is VOTER_INCOMING) but whose leave-joint entry has not.
func (st opStep) partialConfVer(d *rangekvpb.RangeDescriptor) uint64 {
	if st.typ == rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER {
		if r := replicaOnStore(d, st.store); r != nil && r.Role == rangekvpb.ReplicaRole_VOTER_INCOMING {
			return 1
		}
	}
	return 0
}

func replicaOnStore(d *rangekvpb.RangeDescriptor, store uint64) *rangekvpb.ReplicaDescriptor {
	for _, r := range d.Replicas {
		if r.StoreId == store {
			return r
		}
	}
	return nil
}

func isJoint(d *rangekvpb.RangeDescriptor) bool {
	for _, r := range d.Replicas {
		if r.Role == rangekvpb.ReplicaRole_VOTER_INCOMING || r.Role == rangekvpb.ReplicaRole_VOTER_DEMOTING {
			return true
		}
	}
	return false
}

type operator struct {
	id      uint64
	rangeID uint64
	kind    string
	// epoch is the range's epoch the steps were planned from; the operator
	// was admitted only while placement's descriptor had exactly it.
	epoch   *rangekvpb.RangeEpoch
	steps   []opStep
	cur     int
	created time.Time
	ended   time.Time
	state   string
	reason  string
}

// stepEpoch is the epoch the range must have when step i runs: the planned
// epoch plus the conf_ver of the steps before it. Invariant: every step is
// sent with it, never with placement's latest descriptor, so a leader whose
// range changed in any way the plan does not explain refuses the step
// (store/store_operators.go, EpochNotMatch).
func (o *operator) stepEpoch(i int) *rangekvpb.RangeEpoch {
	e := proto.CloneOf(o.epoch)
	for _, st := range o.steps[:i] {
		e.ConfVer += st.confVerDelta()
	}
	return e
}

// staleReason says why d shows the operator can no longer run ("" while it
// can): a split or merge (version changed), or a conf_ver past what the
// operator's own applied steps explain (someone else changed the
// membership: its remaining steps were planned for replicas that may be
// gone). Call after advancing o.cur on d.
func (o *operator) staleReason(d *rangekvpb.RangeDescriptor) string {
	if v := d.Epoch.GetVersion(); v != o.epoch.GetVersion() {
		return fmt.Sprintf("the range split (epoch version %d, planned at %d)", v, o.epoch.GetVersion())
	}
	explained := o.stepEpoch(o.cur).ConfVer
	if o.cur < len(o.steps) {
		explained += o.steps[o.cur].partialConfVer(d)
	}
	if cv := d.Epoch.GetConfVer(); cv > explained {
		return fmt.Sprintf("unexpected membership change: conf_ver %d, its steps explain %d (planned at %d)", cv, explained, o.epoch.GetConfVer())
	}
	return ""
}

func (o *operator) info() *rangekvpb.OperatorInfo {
	in := &rangekvpb.OperatorInfo{Id: o.id, RangeId: o.rangeID, Kind: o.kind, CurrentStep: uint32(o.cur),
		State: o.state, Reason: o.reason, CreatedUnixMs: o.created.UnixMilli()}
	if !o.ended.IsZero() {
		in.FinishedUnixMs = o.ended.UnixMilli()
	}
	for _, st := range o.steps {
		in.Steps = append(in.Steps, st.String())
	}
	return in
}

const historySize = 1000

type controller struct {
	s  *Server
	mu sync.Mutex
	// nextID numbers operators (unique across leaderships).
	nextID  uint64
	byRange map[uint64]*operator
	byID    map[uint64]*operator
	hist    []*operator
}

func newController(s *Server) *controller {
	// IDs stay unique across leaderships: each leader numbers from its
	// start time (milliseconds, shifted) on.
	return &controller{s: s, nextID: uint64(s.now().UnixMilli()) << 16, byRange: map[uint64]*operator{}, byID: map[uint64]*operator{}}
}

// add starts an operator planned from the range at epoch unless the range
// already has one, or placement's descriptor is no longer at exactly that
// epoch (the plan is stale), or the range is in a joint configuration (its
// leader leaves it by itself, a conf_ver change no plan explains).
func (c *controller) add(rangeID uint64, kind string, epoch *rangekvpb.RangeEpoch, steps []opStep, now time.Time) (*rangekvpb.OperatorInfo, error) {
	d := c.s.group.meta.rangeByID(rangeID)
	if d == nil {
		return nil, invalid("range_id: no range %d", rangeID)
	}
	if !proto.Equal(d.Epoch, epoch) {
		return nil, statusErr(failedPrecondition, "range %d is at epoch %v, the operator was planned at %v; retry", rangeID, d.Epoch, epoch)
	}
	if isJoint(d) {
		return nil, statusErr(failedPrecondition, "range %d is in a joint configuration; retry once it left it", rangeID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.byRange[rangeID]; ok {
		return nil, statusErr(failedPrecondition, "range %d already has operator %d (%s) running", rangeID, o.id, o.kind)
	}
	c.nextID++
	o := &operator{id: c.nextID, rangeID: rangeID, kind: kind, epoch: proto.CloneOf(epoch), steps: steps, created: now, state: "running"}
	c.byRange[rangeID] = o
	c.byID[o.id] = o
	c.s.metrics.operatorsStarted.WithLabelValues(kind).Inc()
	c.s.log.Info("operator started", "id", o.id, "range", rangeID, "kind", kind, "steps", len(steps))
	return o.info(), nil
}

func (c *controller) endLocked(o *operator, state, reason string, now time.Time) {
	o.state, o.reason, o.ended = state, reason, now
	delete(c.byRange, o.rangeID)
	c.hist = append(c.hist, o)
	if len(c.hist) > historySize {
		old := c.hist[0]
		c.hist = c.hist[1:]
		delete(c.byID, old.id)
	}
	c.s.metrics.operators.WithLabelValues(o.kind, state).Inc()
	c.s.log.Info("operator ended", "id", o.id, "range", o.rangeID, "kind", o.kind, "state", state, "reason", reason)
}

// addMove replaces the replica on from with one on to.
func (c *controller) addMove(rangeID, from, to uint64, now time.Time) (*rangekvpb.OperatorInfo, error) {
	d := c.s.group.meta.rangeByID(rangeID)
	if d == nil {
		return nil, invalid("range_id: no range %d", rangeID)
	}
	if replicaOnStore(d, from) == nil {
		return nil, invalid("from_store_id: store %d holds no replica of range %d", from, rangeID)
	}
	if replicaOnStore(d, to) != nil {
		return nil, invalid("to_store_id: store %d already holds a replica of range %d", to, rangeID)
	}
	if c.s.group.meta.store(to) == nil {
		return nil, invalid("to_store_id: no store %d in this cluster", to)
	}
	if st, _, _ := c.s.cluster().storeState(to, now, c.s.cfg.StoreDownGrace); st != rangekvpb.StoreState_STORE_UP {
		return nil, statusErr(failedPrecondition, "to_store_id: store %d is down", to)
	}
	return c.add(rangeID, "move-replica", d.Epoch, moveSteps(d, from, to, c.s.cluster().leaderOf(rangeID)), now)
}

// moveSteps: add learner, promote, move leadership off the old replica if
// it leads, remove it.
func moveSteps(d *rangekvpb.RangeDescriptor, from, to, leader uint64) []opStep {
	steps := []opStep{{rangekvpb.OperatorStepType_STEP_ADD_LEARNER, to}}
	if r := replicaOnStore(d, from); r == nil || r.Role != rangekvpb.ReplicaRole_LEARNER {
		steps = append(steps, opStep{rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER, to})
	}
	if leader == from {
		steps = append(steps, opStep{rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER, to})
	}
	return append(steps, opStep{rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, from})
}

func (c *controller) addTransfer(rangeID, to uint64, now time.Time) (*rangekvpb.OperatorInfo, error) {
	d := c.s.group.meta.rangeByID(rangeID)
	if d == nil {
		return nil, invalid("range_id: no range %d", rangeID)
	}
	if r := replicaOnStore(d, to); r == nil || r.Role != rangekvpb.ReplicaRole_VOTER {
		return nil, invalid("to_store_id: store %d holds no voter of range %d", to, rangeID)
	}
	if c.s.cluster().leaderOf(rangeID) == to {
		return nil, invalid("to_store_id: store %d already leads range %d; a leadership transfer to the leader's own store is refused", to, rangeID)
	}
	return c.add(rangeID, "transfer-leader", d.Epoch, []opStep{{rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER, to}}, now)
}

// observe advances the range's operator with what a heartbeat reports, or
// aborts it when the report shows a change its plan does not explain.
func (c *controller) observe(d *rangekvpb.RangeDescriptor, leader uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.byRange[d.RangeId]
	if !ok {
		return
	}
	if d.Epoch.GetVersion() == o.epoch.GetVersion() && d.Epoch.GetConfVer() < o.epoch.GetConfVer() {
		return // an old leader's late report: conf_ver never goes back on a replica
	}
	for o.cur < len(o.steps) && o.steps[o.cur].done(d, leader) {
		o.cur++
	}
	if why := o.staleReason(d); why != "" {
		c.endLocked(o, "aborted", why, now)
		return
	}
	if o.cur == len(o.steps) {
		c.endLocked(o, "finished", "", now)
	}
}

// stepsFor returns the current step of every running operator whose range
// storeID leads, and times out operators that ran too long.
func (c *controller) stepsFor(storeID uint64, now time.Time) []*rangekvpb.OperatorStep {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.s.cluster()
	var out []*rangekvpb.OperatorStep
	for _, o := range c.byRange {
		if now.Sub(o.created) > c.s.cfg.OperatorTimeout {
			c.endLocked(o, "timeout", fmt.Sprintf("not finished within %s", c.s.cfg.OperatorTimeout), now)
			continue
		}
		if cl.leaderOf(o.rangeID) != storeID {
			continue
		}
		d := c.s.group.meta.rangeByID(o.rangeID)
		if d == nil {
			continue
		}
		if why := o.staleReason(d); why != "" {
			c.endLocked(o, "aborted", why, now)
			continue
		}
		st := o.steps[o.cur]
		if st.typ == rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER && cl.stats(st.store).GetDraining() {
			// The store drains (a restart, or an operator's drain): it
			// refuses leadership, and the leader would drop writes while
			// it tries.
			c.endLocked(o, "aborted", fmt.Sprintf("store %d is draining", st.store), now)
			continue
		}
		out = append(out, &rangekvpb.OperatorStep{RangeId: o.rangeID, Epoch: o.stepEpoch(o.cur), Type: st.typ, StoreId: st.store, OperatorId: o.id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RangeId < out[j].RangeId })
	return out
}

func (c *controller) running() []*rangekvpb.OperatorInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*rangekvpb.OperatorInfo
	for _, o := range c.byRange {
		out = append(out, o.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

func (c *controller) busy(rangeID uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byRange[rangeID]
	return ok
}

func (c *controller) get(id uint64) *rangekvpb.OperatorInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.byID[id]; ok {
		return o.info()
	}
	return nil
}

func (c *controller) history(rangeID uint64, limit int) []*rangekvpb.OperatorInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit <= 0 {
		limit = 100
	}
	var out []*rangekvpb.OperatorInfo
	for i := len(c.hist) - 1; i >= 0 && len(out) < limit; i-- {
		if o := c.hist[i]; rangeID == 0 || o.rangeID == rangeID {
			out = append(out, o.info())
		}
	}
	return out
}
