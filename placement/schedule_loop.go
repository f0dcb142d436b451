// The scheduler loop (leader only): every interval, freeze a cluster view,
// run the pure scheduler, and start the operators it proposes.

package placement

import (
	"context"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func (s *Server) scheduleLoop(ctx context.Context) {
	t := s.cfg.Clock.NewTicker(s.cfg.ScheduleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if s.group.isLeader() {
			s.scheduleOnce(true)
			s.updateGauges()
		}
	}
}

// scheduleOnce runs one scheduling round; with start, it starts the
// operators, otherwise it only shows them (dry run).
func (s *Server) scheduleOnce(start bool) []*rangekvpb.OperatorInfo {
	now := s.now()
	var out []*rangekvpb.OperatorInfo
	for _, p := range s.proposeOperators(now) {
		if !start {
			out = append(out, (&operator{rangeID: p.rangeID, kind: p.kind, steps: p.steps, state: "proposed", created: now}).info())
			continue
		}
		if info, err := s.ops().add(p.rangeID, p.kind, p.epoch, p.steps, now); err == nil {
			out = append(out, info)
		}
	}
	return out
}

func (s *Server) updateGauges() {
	st := s.clusterStatus()
	up, down := 0, 0
	for _, x := range st.Stores {
		if x.State == rangekvpb.StoreState_STORE_UP {
			up++
		} else {
			down++
		}
	}
	s.metrics.storesByState.WithLabelValues("up").Set(float64(up))
	s.metrics.storesByState.WithLabelValues("down").Set(float64(down))
	s.metrics.underReplicated.Set(float64(len(st.UnderReplicated)))
	s.metrics.ranges.Set(float64(st.RangeCount))
}

// proposal is an operator the scheduler suggests.
type proposal struct {
	rangeID uint64
	kind    string
	// epoch is the range's epoch the scheduler planned from.
	epoch *rangekvpb.RangeEpoch
	steps []opStep
}
