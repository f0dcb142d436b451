// Drain: before a store stops (SIGTERM) or when an operator asks
// (`rangekv store drain`), it hands every Raft leadership it holds to a
// live voter on another store and takes none back while draining, so
// clients only see NotLeader redirects (retried by the router) instead of
// waiting out an election.
//
// While draining the store: pushes a leader transfer for each range it
// leads, every pass, until it leads none (a transfer raft aborted after an
// election timeout is simply pushed again); ignores MsgTimeoutNow (another
// leader's transfer to it); does not campaign when a leader dies; reports
// draining in its store report so placement's scheduler moves no
// leadership onto it; and answers /readyz with "not ready". Followers keep
// replicating, so nothing about durability changes.

package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// drainState is the store's drain flag and the bookkeeping of the running
// drain loop.
type drainState struct {
	draining atomic.Bool
	// kick asks the report loop for a store report now (capacity 1).
	kick  chan struct{}
	gauge prometheus.Gauge

	mu struct {
		sync.Mutex
		gen     uint64 // bumped on every start and undo: a loop of an older gen exits
		atStart int
	}
}

func (d *drainState) init(reg prometheus.Registerer) {
	d.kick = make(chan struct{}, 1)
	d.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_draining", Help: "1 while the store is draining its leaderships (shutdown or rangekv store drain)."})
	reg.MustRegister(d.gauge)
}

// drainTarget picks the replica of desc to take leadership from the
// replica on store self: a voter (or incoming voter) on another store that
// live says is up, the one with the highest match index (ties: the lowest
// store ID). prefer, when still eligible, wins regardless of match, so a
// transfer in progress is not redirected. It returns 0 when no replica is
// eligible. Pure: match maps replica ID to the leader's view of its log.
func drainTarget(desc *rangekvpb.RangeDescriptor, self uint64, match map[uint64]uint64, live func(storeID uint64) bool, prefer uint64) uint64 {
	var best *rangekvpb.ReplicaDescriptor
	for _, rd := range desc.GetReplicas() {
		if rd.StoreId == self || (rd.Role != rangekvpb.ReplicaRole_VOTER && rd.Role != rangekvpb.ReplicaRole_VOTER_INCOMING) || !live(rd.StoreId) {
			continue
		}
		if prefer != 0 && rd.ReplicaId == prefer {
			return prefer
		}
		if best == nil || match[rd.ReplicaId] > match[best.ReplicaId] ||
			(match[rd.ReplicaId] == match[best.ReplicaId] && rd.StoreId < best.StoreId) {
			best = rd
		}
	}
	if best == nil {
		return 0
	}
	return best.ReplicaId
}

// Draining reports whether the store is draining.
func (s *Store) Draining() bool { return s.drain.draining.Load() }

// leaderCount counts the initialized replicas this store leads.
func (s *Store) leaderCount() int {
	n := 0
	for _, r := range s.replicasSnapshot() {
		if r.Descriptor() != nil && r.leader.Load() == r.replicaID {
			n++
		}
	}
	return n
}

// StartDrain starts draining (a no-op if already draining) and returns
// the number of leaderships held when the drain started and now.
func (s *Store) StartDrain() (atStart, leaders int) {
	d := &s.drain
	d.mu.Lock()
	if !d.draining.Load() {
		d.mu.gen++
		d.mu.atStart = s.leaderCount()
		d.draining.Store(true)
		d.gauge.Set(1)
		gen := d.mu.gen
		select {
		case <-s.stopCh:
		default:
			s.wg.Add(1)
			go s.drainLoop(gen)
		}
		s.log.Info("draining: moving leaderships to other stores", "leaders", d.mu.atStart)
		s.kickReport()
	}
	atStart = d.mu.atStart
	d.mu.Unlock()
	return atStart, s.leaderCount()
}

// Undrain stops draining: the store may lead ranges again and placement
// may move leaderships back to it.
func (s *Store) Undrain() {
	d := &s.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.draining.Load() {
		return
	}
	d.mu.gen++
	d.draining.Store(false)
	d.gauge.Set(0)
	s.log.Info("drain undone: the store may lead ranges again")
	s.kickReport()
}

// DrainStatus reports whether the store drains, the leaderships it held
// when the drain started and the ones it holds now.
func (s *Store) DrainStatus() (draining bool, atStart, leaders int) {
	d := &s.drain
	d.mu.Lock()
	draining, atStart = d.draining.Load(), d.mu.atStart
	d.mu.Unlock()
	return draining, atStart, s.leaderCount()
}

// Drain starts draining and waits until the store leads no range or ctx
// ends, logging "drained N/M leaders" about once a second. It returns the
// leaderships still held and those held at the start. The store keeps
// draining after Drain returns (until Undrain or Stop).
func (s *Store) Drain(ctx context.Context) (left, atStart int) {
	atStart, left = s.StartDrain()
	t := s.cfg.Clock.NewTicker(s.drainPassInterval())
	defer t.Stop()
	lastLog := s.now()
	// A drain that moves no leadership for a few election timeouts will
	// not move more (every peer store is draining or down, as when a
	// whole cluster is stopped at once): stop waiting for it.
	stall := 3 * s.cfg.ElectionTimeout
	lastProgress, best := s.now(), left
	for left > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("drain timed out: stopping with leaderships still here (their ranges elect new leaders)",
				"drained", max(atStart-left, 0), "of", atStart, "left", left)
			return left, atStart
		case <-s.stopCh:
			return left, atStart
		case <-t.C():
		}
		left = s.leaderCount()
		if left < best {
			best, lastProgress = left, s.now()
		} else if stall > 0 && s.now().Sub(lastProgress) >= stall {
			s.log.Warn("drain made no progress: stopping with leaderships still here (no peer takes them: are the other stores stopping too?)",
				"drained", max(atStart-left, 0), "of", atStart, "left", left, "waited", stall)
			return left, atStart
		}
		if now := s.now(); now.Sub(lastLog) >= time.Second {
			lastLog = now
			s.log.Info("draining", "progress", drainedMsg(atStart, left))
		}
	}
	s.log.Info("drain complete", "progress", drainedMsg(atStart, left))
	return left, atStart
}

// drainedMsg renders "drained N/M leaders".
func drainedMsg(atStart, left int) string {
	return fmt.Sprintf("drained %d/%d leaders", max(atStart-left, 0), atStart)
}

func (s *Store) drainPassInterval() time.Duration {
	return max(s.cfg.HeartbeatInterval, 20*time.Millisecond)
}

// drainLoop pushes leader transfers for every range the store leads,
// every pass, while the drain of generation gen lasts.
func (s *Store) drainLoop(gen uint64) {
	defer s.wg.Done()
	t := s.cfg.Clock.NewTicker(s.drainPassInterval())
	defer t.Stop()
	targets := map[uint64]uint64{} // range ID → replica ID last asked to lead
	for {
		s.drain.mu.Lock()
		current := s.drain.mu.gen == gen && s.drain.draining.Load()
		s.drain.mu.Unlock()
		if !current {
			return
		}
		s.drainPass(targets)
		select {
		case <-s.stopCh:
			return
		case <-t.C():
		}
	}
}

// drainPass asks each range this store leads to transfer its leadership.
func (s *Store) drainPass(targets map[uint64]uint64) {
	for _, r := range s.replicasSnapshot() {
		desc := r.Descriptor()
		if desc == nil || r.leader.Load() != r.replicaID {
			delete(targets, r.rangeID)
			continue
		}
		match := map[uint64]uint64{}
		r.lock()
		if r.mu.destroyed || !r.mu.rr.IsLeader() {
			r.mu.Unlock()
			continue
		}
		for id, pr := range r.mu.rr.Status().Progress {
			match[id] = pr.Match
		}
		r.mu.Unlock()
		to := drainTarget(desc, s.cfg.StoreID, match, s.liveness.isLive, targets[r.rangeID])
		if to == 0 {
			continue // no live voter elsewhere: the leadership stays until the store stops
		}
		targets[r.rangeID] = to
		r.pushTransfer(to)
		s.sched.enqueue(r.rangeID, flagWork)
	}
}

// kickReport asks for a store report now (placement learns the
// drain state without waiting for the next interval).
func (s *Store) kickReport() {
	s.kick(s.drain.kick)
}
