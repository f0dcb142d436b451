// The replica GC loop: one goroutine per store, its queue of ranges to
// check (queueGC), its rate limit, and the placement lookup it makes.
// What proves a replica stale, and removing it, is replica_gc.go's.

package store

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// gcChecksPerSecond bounds the descriptor lookups (placement or peer
	// stores) replica GC makes, whatever the number of candidates.
	gcChecksPerSecond = 20
	// gcLookupTimeout bounds one lookup of placement and one of a peer.
	gcLookupTimeout = 2 * time.Second
	// gcSweepPerPass is how many quiesced replicas a periodic pass checks
	// besides the suspects, in turn by range ID (gcSweep).
	gcSweepPerPass = 2
)

// gcState is the GC goroutine's work list.
type gcState struct {
	mu sync.Mutex
	// queued: ranges to check at the next pass, whatever their leader.
	queued map[uint64]string // range ID -> why it was queued
	// last: when each range was last checked (GC goroutine's clock).
	// Lock order: s.gc.mu is a leaf (s.mu is never taken under it).
	last map[uint64]time.Time
	// kick wakes the GC goroutine for queued work (capacity 1).
	kick    chan struct{}
	limiter *rate.Limiter
	// sweptTo is the range ID the quiesced-replica sweep checked last
	// (GC goroutine only).
	sweptTo uint64
}

func (g *gcState) init() {
	g.queued = make(map[uint64]string)
	g.last = make(map[uint64]time.Time)
	g.kick = make(chan struct{}, 1)
	g.limiter = rate.NewLimiter(gcChecksPerSecond, gcChecksPerSecond)
}

// queueGC asks for a placement-checked GC of the range's replica here
// soon. It never blocks: callers are request handlers and the transport.
func (s *Store) queueGC(rangeID uint64, why string) {
	s.gc.mu.Lock()
	_, already := s.gc.queued[rangeID]
	s.gc.queued[rangeID] = why
	s.gc.mu.Unlock()
	if !already {
		s.log.Debug("replica queued for GC check", "range", rangeID, "reason", why)
	}
	s.kick(s.gc.kick)
}

// gcLoop runs replica GC until the store stops.
func (s *Store) gcLoop() {
	defer s.wg.Done()
	ctx, cancel := s.untilStop(context.WithCancel(context.Background()))
	defer cancel()
	t := s.cfg.Clock.NewTicker(s.cfg.ReplicaGCInterval)
	defer t.Stop()
	for {
		periodic := false
		select {
		case <-s.stopCh:
			return
		case <-t.C():
			periodic = true
		case <-s.gc.kick:
		}
		s.gcPass(ctx, periodic)
		if periodic {
			// Close the raft streams of stores no replica names any more.
			s.trans.sweepPeers(s.referencedStores())
		}
	}
}

// gcPass checks the queued ranges and, on a periodic pass, the suspect
// replicas (gcSuspect).
func (s *Store) gcPass(ctx context.Context, periodic bool) {
	now := s.now()
	minGap := s.cfg.ReplicaGCInterval / 2
	var todo []uint64
	s.gc.mu.Lock()
	for id := range s.gc.queued {
		if last, ok := s.gc.last[id]; ok && now.Sub(last) < minGap {
			continue // stays queued for a later pass
		}
		delete(s.gc.queued, id)
		todo = append(todo, id)
	}
	s.gc.mu.Unlock()
	if periodic {
		for _, r := range s.gcCandidates() {
			todo = append(todo, r.rangeID)
		}
		todo = append(todo, s.gcSweep()...)
	}
	slices.Sort(todo)
	todo = slices.Compact(todo)
	pdUsable := s.pd != nil
	for _, id := range todo {
		s.gc.mu.Lock()
		last, checked := s.gc.last[id]
		due := !checked || now.Sub(last) >= minGap
		s.gc.mu.Unlock()
		r := s.replica(id)
		if !due || r == nil {
			continue
		}
		if err := clock.WaitN(ctx, s.cfg.Clock, s.gc.limiter, 1); err != nil {
			return // stopping
		}
		s.gc.mu.Lock()
		s.gc.last[id] = s.now()
		s.gc.mu.Unlock()
		pdUsable = r.maybeGC(ctx, pdUsable)
	}
	// Forget ranges no longer here. (Lock order: s.mu is never taken
	// while s.gc.mu is held.)
	here := make(map[uint64]bool)
	for _, id := range s.replicaIDs() {
		here[id] = true
	}
	s.gc.mu.Lock()
	for id := range s.gc.last {
		if !here[id] {
			delete(s.gc.last, id)
		}
	}
	s.gc.mu.Unlock()
}

// gcCandidates are the replicas a periodic pass checks (gcSuspect).
func (s *Store) gcCandidates() []*Replica {
	var out []*Replica
	for _, r := range s.replicasSnapshot() {
		if r.gcSuspect() {
			out = append(out, r)
		}
	}
	return out
}

// gcSweep returns the next gcSweepPerPass quiesced replicas after the
// last one swept, in range ID order and round the store's ranges. A
// quiesced replica is not suspect (it knows a leader and keeps its lease),
// yet it hears nothing while its range is idle: a follower removed while
// quiesced, or a quiesced leader whose range moved away while its store
// was down, would otherwise never learn it and stay for good (the
// simulation's seeds 22032 and 22064). So every quiesced replica is
// checked once per (quiesced replicas / gcSweepPerPass) intervals.
func (s *Store) gcSweep() []uint64 {
	all := s.sortedReplicas()
	start, _ := slices.BinarySearchFunc(all, s.gc.sweptTo+1, func(r *Replica, id uint64) int { return cmp.Compare(r.rangeID, id) })
	var out []uint64
	for i := range len(all) {
		r := all[(start+i)%len(all)]
		if r.quiesced.Load() && !r.gcSuspect() {
			out = append(out, r.rangeID)
			s.gc.sweptTo = r.rangeID
			if len(out) == gcSweepPerPass {
				break
			}
		}
	}
	return out
}

// placementDescriptor reads the range's descriptor from placement with a
// linearizable read; nil when placement does not know the range.
func (s *Store) placementDescriptor(ctx context.Context, rangeID uint64) (*rangekvpb.RangeDescriptor, error) {
	ctx, cancel := clock.WithTimeout(ctx, s.cfg.Clock, gcLookupTimeout)
	defer cancel()
	var d *rangekvpb.RangeDescriptor
	err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: rangeID, Linearizable: true})
		if err != nil {
			return nil, err
		}
		if resp.Error == nil && len(resp.Ranges) > 0 && resp.Ranges[0].GetDescriptor_().GetRangeId() == rangeID {
			d = resp.Ranges[0].Descriptor_
		}
		return resp.Error, nil
	})
	return d, err
}

// referencedStores returns the stores some local replica names: in its
// descriptor, or, for an uninitialized replica, in the stores its messages
// came from. A store outside it has left every range this store holds
// (removed, decommissioned, or its ranges moved away): its raft stream
// can go (transport.sweepPeers).
func (s *Store) referencedStores() map[uint64]bool {
	out := map[uint64]bool{}
	for _, r := range s.replicasSnapshot() {
		for _, rd := range r.Descriptor().GetReplicas() {
			out[rd.StoreId] = true
		}
		r.inbox.Lock()
		for _, st := range r.inbox.peers {
			out[st] = true
		}
		r.inbox.Unlock()
	}
	return out
}
