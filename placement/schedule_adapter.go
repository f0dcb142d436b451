// The adapter between the running cluster and the pure scheduler: freeze a
// ClusterView from persisted descriptors and heartbeat state, run
// schedule.Schedule, and turn its operators into controller steps.

package placement

import (
	"time"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func (s *Server) scheduleConfig() schedule.Config {
	c := schedule.DefaultConfig()
	c.ReplicationFactor = s.cfg.Replicas
	c.LocationLabels = s.cfg.LocationLabels
	c.MaxStoreDownTime = s.cfg.MaxStoreDownTime
	c.MaxOperatorsPerStore = s.cfg.MaxOperatorsPerStore
	c.MaxSnapshotsPerStore = s.cfg.MaxSnapshotsPerStore
	c.OperatorTimeout = s.cfg.OperatorTimeout
	return c
}

// view freezes the cluster as the scheduler sees it.
func (s *Server) view(now time.Time) (*schedule.ClusterView, error) {
	cl := s.cluster()
	var stores []schedule.StoreView
	for _, d := range s.group.meta.allStores() {
		st, downSince, _ := cl.storeState(d.StoreId, now, s.cfg.StoreDownGrace)
		sv := schedule.StoreView{ID: d.StoreId, Address: d.Address, Labels: d.Labels, State: schedule.StoreUp}
		if st == rangekvpb.StoreState_STORE_DOWN {
			sv.State, sv.DownSince = schedule.StoreDown, downSince
		}
		if stats := cl.stats(d.StoreId); stats != nil {
			sv.CapacityBytes, sv.UsedBytes = stats.Capacity, stats.Used
			sv.Draining = stats.Draining
		}
		stores = append(stores, sv)
	}
	var ranges []schedule.RangeView
	for _, d := range s.group.meta.allRanges() {
		rv := schedule.RangeView{Desc: d}
		if info, ok := cl.rangeInfo(d.RangeId); ok {
			rv.LeaderStoreID, rv.ApproximateSizeBytes = info.leaderStore, info.size
			for _, id := range info.pending {
				for _, r := range d.Replicas {
					if r.ReplicaId == id {
						rv.PendingStoreIDs = append(rv.PendingStoreIDs, r.StoreId)
					}
				}
			}
		}
		ranges = append(ranges, rv)
	}
	return schedule.NewClusterView(s.scheduleConfig(), stores, ranges, s.ops().inFlight())
}

// proposeOperators runs one scheduling round.
func (s *Server) proposeOperators(now time.Time) []proposal {
	v, err := s.view(now)
	if err != nil {
		s.log.Error("cluster view for the scheduler", "err", err)
		return nil
	}
	var out []proposal
	for _, op := range schedule.Schedule(v, now) {
		p := proposal{rangeID: op.RangeID, kind: string(op.Kind), epoch: &rangekvpb.RangeEpoch{ConfVer: op.Epoch.ConfVer, Version: op.Epoch.Version}}
		for _, st := range op.Steps {
			switch x := st.(type) {
			case schedule.AddLearner:
				p.steps = append(p.steps, opStep{rangekvpb.OperatorStepType_STEP_ADD_LEARNER, x.StoreID})
			case schedule.PromoteLearner:
				p.steps = append(p.steps, opStep{rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER, x.StoreID})
			case schedule.RemoveReplica:
				p.steps = append(p.steps, opStep{rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA, x.StoreID})
			case schedule.TransferLeader:
				p.steps = append(p.steps, opStep{rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER, x.ToStoreID})
			case schedule.LeaveJoint:
				// Stores leave joint configurations by themselves (the
				// leader proposes it when the joint entry applies).
			}
		}
		if len(p.steps) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// inFlight renders running operators for the scheduler's limits.
func (c *controller) inFlight() []*schedule.Operator {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*schedule.Operator
	for _, o := range c.byRange {
		d := c.s.group.meta.rangeByID(o.rangeID)
		if d == nil {
			continue
		}
		op := &schedule.Operator{RangeID: o.rangeID, Epoch: schedule.EpochOf(d), Kind: schedule.Kind(o.kind), CreatedAt: o.created}
		for _, st := range o.steps[o.cur:] {
			switch st.typ {
			case rangekvpb.OperatorStepType_STEP_ADD_LEARNER:
				op.Steps = append(op.Steps, schedule.AddLearner{StoreID: st.store})
			case rangekvpb.OperatorStepType_STEP_PROMOTE_LEARNER:
				op.Steps = append(op.Steps, schedule.PromoteLearner{StoreID: st.store})
			case rangekvpb.OperatorStepType_STEP_REMOVE_REPLICA:
				op.Steps = append(op.Steps, schedule.RemoveReplica{StoreID: st.store})
			case rangekvpb.OperatorStepType_STEP_TRANSFER_LEADER:
				op.Steps = append(op.Steps, schedule.TransferLeader{ToStoreID: st.store})
			}
		}
		out = append(out, op)
	}
	return out
}
