// Reports to placement (the StoreHeartbeat and RangeHeartbeats RPCs keep
// their wire names): store stats every few seconds; range leaders report
// their ranges when they change (descriptor, leadership) and at
// least every refresh interval, in one batched call per interval whose
// answer carries operator steps for the ranges this store leads. A split's
// right half that wins its first election on this store asks for that
// call at once (reportRangesSoon), so placement can route to the new range
// right away.

package store

import (
	"context"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/tracker"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type reported struct {
	desc          *rangekvpb.RangeDescriptor
	leader        bool
	pending, down []uint64 // the replica IDs reported lagging and on dead stores
	at            time.Time
	reads, writes uint64 // counters at the last report
}

func (s *Store) reportLoop() {
	defer s.wg.Done()
	st := s.cfg.Clock.NewTicker(s.cfg.StoreHeartbeatInterval)
	defer st.Stop()
	rt := s.cfg.Clock.NewTicker(s.cfg.RangeHeartbeatInterval)
	defer rt.Stop()
	last := map[uint64]reported{}
	if s.needRejoin && !s.rejoinPlacement() {
		return // stopped
	}
	s.refreshPeerAddrs()
	s.sendStoreReport()
	reports := 0
	storeTick := func() {
		if reports++; reports%peerRefreshEvery == 0 {
			s.refreshPeerAddrs()
		}
		s.sendStoreReport()
	}
	// When several are ready they are taken in this order, not in the
	// random one of select, so that a simulated run replays.
	for {
		select {
		case <-s.stopCh:
			return
		default:
		}
		select {
		case <-st.C():
			storeTick()
			continue
		default:
		}
		select {
		case <-s.drain.kick:
			s.sendStoreReport()
			continue
		default:
		}
		select {
		case <-rt.C():
			s.sendRangeReports(last)
			continue
		default:
		}
		select {
		case <-s.stopCh:
			return
		case <-st.C():
			storeTick()
		case <-s.drain.kick:
			s.sendStoreReport()
		case <-rt.C():
			s.sendRangeReports(last)
		case <-s.reportRanges:
			s.sendRangeReports(last)
		}
	}
}

// reportRangesSoon asks the report loop to report the changed ranges
// this store leads now rather than at the next interval. It never blocks
// (workers call it): a request made while another is pending joins it.
// Without placement nobody reads the channel; the request just stays.
func (s *Store) reportRangesSoon() {
	s.kick(s.reportRanges)
}

func (s *Store) pdCtx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := clock.WithTimeout(context.Background(), s.cfg.Clock, d)
	return s.untilStop(ctx, cancel)
}

// untilStop makes ctx also end when the store stops; cancel ends it (and
// the goroutine that waits for the stop) otherwise.
func (s *Store) untilStop(ctx context.Context, cancel context.CancelFunc) (context.Context, context.CancelFunc) {
	go func() {
		select {
		case <-s.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (s *Store) storeStats() *rangekvpb.StoreStats {
	st := &rangekvpb.StoreStats{StoreId: s.cfg.StoreID, Draining: s.Draining()}
	if u, err := s.cfg.FS.GetDiskUsage(s.cfg.DataDir); err == nil {
		st.Capacity, st.Available = u.TotalBytes, u.AvailBytes
	}
	st.Used = s.cfg.Sizes.Used(s.db)
	for _, r := range s.replicasSnapshot() {
		if r.Descriptor() == nil {
			continue
		}
		st.ReplicaCount++
		if r.leader.Load() == r.replicaID {
			st.LeaderCount++
		}
	}
	return st
}

func (s *Store) sendStoreReport() {
	ctx, cancel := s.pdCtx(s.cfg.StoreHeartbeatInterval)
	defer cancel()
	stats := s.storeStats()
	now := s.now()
	var total uint64
	for _, r := range s.replicasSnapshot() {
		total += r.reads.Load() + r.writes.Load()
	}
	if !s.lastLoad.at.IsZero() && total >= s.lastLoad.requests {
		stats.RequestsPerSec = float64(total-s.lastLoad.requests) / now.Sub(s.lastLoad.at).Seconds()
	}
	s.lastLoad.at, s.lastLoad.requests = now, total
	req := &rangekvpb.StoreHeartbeatRequest{Stats: stats, Address: s.cfg.AdvertiseAddr}
	err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.StoreHeartbeat(ctx, req)
		if err != nil {
			return nil, err
		}
		return r.Error, nil
	})
	s.notePlacement("store_heartbeat", err)
	if err != nil {
		s.log.Debug("store heartbeat", "err", err)
	}
}

// sendRangeReports reports changed (or due) ranges this store leads and
// hands the returned operator steps to the executor.
func (s *Store) sendRangeReports(last map[uint64]reported) {
	now := s.now()
	req := &rangekvpb.RangeHeartbeatsRequest{StoreId: s.cfg.StoreID}
	sent := map[uint64]reported{}
	for _, r := range s.replicasSnapshot() {
		d := r.Descriptor()
		if d == nil {
			continue
		}
		isLeader := r.leader.Load() == r.replicaID
		if !isLeader {
			last[r.rangeID] = reported{desc: d}
			continue
		}
		prev, ok := last[r.rangeID]
		// A replica that caught up (or whose store came back) changes what
		// placement may do (promote that learner) as much as a new
		// descriptor does: waiting for the refresh left a range short of
		// a voter for up to a minute after the faults healed (simulation
		// seed 11781).
		pending, down := s.replicaHealth(r)
		due := !ok || prev.desc != d || !prev.leader || now.Sub(prev.at) >= s.cfg.RangeHeartbeatRefresh ||
			!slices.Equal(prev.pending, pending) || !slices.Equal(prev.down, down)
		if !due {
			continue
		}
		h := s.rangeReport(r, d)
		h.PendingReplicas, h.DownReplicas = pending, down
		rd, wr := r.reads.Load(), r.writes.Load()
		if ok && !prev.at.IsZero() {
			if secs := now.Sub(prev.at).Seconds(); secs > 0 {
				h.ReadsPerSec = float64(rd-prev.reads) / secs
				h.WritesPerSec = float64(wr-prev.writes) / secs
			}
		}
		req.Ranges = append(req.Ranges, h)
		sent[r.rangeID] = reported{desc: d, leader: true, pending: pending, down: down, at: now, reads: rd, writes: wr}
	}
	ctx, cancel := s.pdCtx(5 * time.Second)
	defer cancel()
	var steps []*rangekvpb.OperatorStep
	reportAll, attempts := false, 0
	err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		attempts++
		r, err := pc.RangeHeartbeats(ctx, req)
		if err != nil {
			return nil, err
		}
		steps, reportAll = r.Steps, r.ReportAll
		return r.Error, nil
	})
	s.notePlacement("range_heartbeats", err)
	if err != nil {
		s.log.Debug("range heartbeats", "err", err)
		clear(last) // placement may have lost it all (a new leader): report everything
		return
	}
	for id, rep := range sent {
		last[id] = rep
	}
	// A new placement leader asks for every range once (ReportAll). An
	// attempt before the one that answered may have reached it and lost
	// that answer: then nothing says so again, and a quiesced range it
	// never hears of is never repaired. Report every range next time.
	if reportAll || attempts > 1 {
		clear(last)
	}
	for _, st := range steps {
		s.exec.enqueue(st)
	}
}

func (s *Store) rangeReport(r *Replica, d *rangekvpb.RangeDescriptor) *rangekvpb.RangeHeartbeat {
	h := &rangekvpb.RangeHeartbeat{Descriptor_: d, LeaderStoreId: s.cfg.StoreID, Term: r.term.Load()}
	lo, hi := keys.UserSpan(d.StartKey, d.EndKey)
	if n, err := s.measureSize(r, d); err == nil {
		h.ApproximateSize = n
	}
	h.ApproximateKeys = s.approximateKeys(lo, hi, h.ApproximateSize)
	return h
}

// replicaHealth returns the replicas of r that lag (more than 100 entries
// behind the leader's applied index) and those on stores not live, in ID
// order (a replayed simulation sends the same report every time); both
// are nil when r no longer leads. It only reads Raft's progress (no
// allocation for a healthy range), so it runs for every led range at each
// interval.
func (s *Store) replicaHealth(r *Replica) (pending, down []uint64) {
	r.lock()
	defer r.mu.Unlock()
	if r.mu.destroyed || !r.mu.rr.IsLeader() {
		return nil, nil
	}
	applied := r.mu.applied.Index
	r.mu.rr.WithProgress(func(id uint64, pr tracker.Progress) {
		if id == r.replicaID {
			return
		}
		if pr.Match+100 < applied {
			pending = append(pending, id)
		}
		if st, ok := r.storeOfReplica(id); ok && !s.liveness.isLive(st) {
			down = append(down, id)
		}
	})
	slices.Sort(pending)
	slices.Sort(down)
	return pending, down
}

// keySample is how many keys approximateKeys reads at most.
const keySample = 100

// approximateKeys counts the span's keys when it holds few, and otherwise
// extrapolates from the size of the first keySample entries (cheap: one
// short iteration per reported range).
func (s *Store) approximateKeys(lo, hi []byte, size uint64) uint64 {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0
	}
	defer it.Close()
	var n, bytes uint64
	for valid := it.First(); valid && n < keySample; valid = it.Next() {
		n++
		bytes += uint64(len(it.Key()) + len(it.Value()))
	}
	if n < keySample || bytes == 0 {
		return n
	}
	return max(n, size*n/bytes)
}
