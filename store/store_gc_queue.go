// The replica GC loop: one goroutine per store, its queue of ranges to
// check (queueGC), its rate limit, and the placement lookup it makes.
// What proves a replica stale, and removing it, is replica_gc.go's.

package store

import (
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
