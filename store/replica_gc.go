// Replica GC (MULTIRAFT.md §5): a replica removed from its range often
// never applies its own removal (the leader stops talking to it first, or
// its store was down while the range moved). Such a replica is destroyed
// with a tombstone once a committed descriptor proves the removal: one with
// a higher conf_ver (and a version not below the local one) that no longer
// lists the replica's ID, while that ID is below the descriptor's
// next_replica_id (replica IDs are never reused, so the ID cannot come
// back).
//
// Where the proof comes from, in order:
//  1. placement, by a linearizable read of the range's descriptor. It is
//     the only source that still knows the range when every store of the
//     replica's own (stale) descriptor has dropped it; asking only those
//     stores left such a replica in place forever, serving STALE reads and
//     blocking overlapping snapshots and the store's re-addition.
//  2. the stores of the replica's descriptor (and those it heard from),
//     when placement cannot decide: it is unreachable, does not know the
//     range (conservative: a missing range proves nothing), or knows only
//     an epoch older than the local one (its heartbeats lag).
//
// Nothing is removed on an error or on an answer older than the local
// epoch. Checks run on the store's GC goroutine only (never on a raft
// worker): every ReplicaGCInterval for replicas that know no leader, and
// soon after a queueGC for a replica seen blocking an incoming snapshot or
// a newer incarnation of itself. Each range is checked at most once per
// half ReplicaGCInterval, and the store makes at most gcChecksPerSecond
// checks.

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
	select {
	case s.gc.kick <- struct{}{}:
	default:
	}
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

// gcPass checks the queued ranges and, on a periodic pass, the replicas
// that know no leader.
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
		pdUsable = s.maybeGC(ctx, r, pdUsable)
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

// gcCandidates are replicas with no known leader.
func (s *Store) gcCandidates() []*Replica {
	var out []*Replica
	for _, r := range s.replicasSnapshot() {
		if r.leader.Load() == 0 && !r.quiesced.Load() {
			out = append(out, r)
		}
	}
	return out
}

// gcVerdict is what one descriptor says about a local replica.
type gcVerdict int

const (
	// gcUndecided: the descriptor is missing or not newer than the local
	// one; it proves nothing.
	gcUndecided gcVerdict = iota
	// gcMember: the descriptor, at the local epoch or later, lists the
	// replica.
	gcMember
	// gcRemoved: the descriptor proves the replica was removed.
	gcRemoved
)

// judgeReplica compares a committed descriptor of the range (from
// placement or a peer store) with the local replica (local is nil for an
// uninitialized replica, whose epoch counts as zero).
func judgeReplica(local, other *rangekvpb.RangeDescriptor, replicaID uint64) gcVerdict {
	if other == nil {
		return gcUndecided
	}
	lc, lv := local.GetEpoch().GetConfVer(), local.GetEpoch().GetVersion()
	oc, ov := other.GetEpoch().GetConfVer(), other.GetEpoch().GetVersion()
	if oc < lc || ov < lv {
		return gcUndecided // older than what this replica already applied
	}
	if replicaByID(other, replicaID) != nil {
		return gcMember
	}
	if oc > lc && replicaID < other.NextReplicaId {
		return gcRemoved
	}
	// Same conf_ver without us (impossible for an initialized replica),
	// or a descriptor from before the replica was added.
	return gcUndecided
}

// gcTombstoneID is the next_replica_id of the tombstone written for a
// replica that other proves removed: no ID it had handed out before can be
// created here again, except the one it lists on this store (a newer
// incarnation being added here).
func gcTombstoneID(other *rangekvpb.RangeDescriptor, storeID, replicaID uint64) uint64 {
	next := other.NextReplicaId
	if on := replicaOnStore(other, storeID); on != nil {
		next = on.ReplicaId
	}
	return max(next, replicaID+1)
}

// maybeGC destroys r if placement's or a peer's descriptor proves it was
// removed. pdUsable says whether to ask placement; the result says whether
// to ask it for the next replica of this pass (false once it did not
// answer, so that a placement outage costs one timeout per pass).
func (s *Store) maybeGC(ctx context.Context, r *Replica, pdUsable bool) bool {
	if pdUsable {
		pd, err := s.placementDescriptor(ctx, r.rangeID)
		if err != nil {
			s.log.Debug("replica GC: placement did not answer; asking the range's stores", "range", r.rangeID, "err", err)
			pdUsable = false
		} else {
			switch judgeReplica(r.Descriptor(), pd, r.replicaID) {
			case gcRemoved:
				s.gcDestroy(r, pd, "no longer a member (placement's descriptor)")
				return pdUsable
			case gcMember:
				return pdUsable
			}
			// Placement does not know the range, or lags this replica:
			// the stores may know more.
		}
	}
	s.gcAskPeers(ctx, r)
	return pdUsable
}

// placementDescriptor reads the range's descriptor from placement with a
// linearizable read; nil when placement does not know the range.
func (s *Store) placementDescriptor(ctx context.Context, rangeID uint64) (*rangekvpb.RangeDescriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, gcLookupTimeout)
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

// gcAskPeers asks the stores of r's descriptor (and those it heard from)
// for their descriptor of the range.
func (s *Store) gcAskPeers(ctx context.Context, r *Replica) {
	r.inbox.Lock()
	peers := make(map[uint64]bool)
	for _, st := range r.inbox.peers {
		peers[st] = true
	}
	r.inbox.Unlock()
	for _, rd := range r.Descriptor().GetReplicas() {
		peers[rd.StoreId] = true
	}
	delete(peers, s.cfg.StoreID)
	ids := make([]uint64, 0, len(peers))
	for st := range peers {
		ids = append(ids, st)
	}
	slices.Sort(ids)
	for _, st := range ids {
		conn := s.trans.conn(st)
		if conn == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, gcLookupTimeout)
		resp, err := rangekvpb.NewAdminClient(conn).GetDescriptor(cctx, &rangekvpb.GetDescriptorRequest{RangeId: r.rangeID})
		cancel()
		if err != nil {
			continue
		}
		if judgeReplica(r.Descriptor(), resp.Descriptor_, r.replicaID) == gcRemoved {
			s.gcDestroy(r, resp.Descriptor_, "no longer a member (peer store's descriptor)")
			return
		}
	}
}

// gcDestroy destroys r, which other proves removed, unless r changed
// meanwhile (it is no longer this store's replica of the range, or it
// applied a newer descriptor).
func (s *Store) gcDestroy(r *Replica, other *rangekvpb.RangeDescriptor, why string) {
	if s.replica(r.rangeID) != r || judgeReplica(r.Descriptor(), other, r.replicaID) != gcRemoved {
		return
	}
	s.destroyReplicaTombstone(r, gcTombstoneID(other, s.cfg.StoreID, r.replicaID), why)
}

func (a *adminServer) GetDescriptor(_ context.Context, req *rangekvpb.GetDescriptorRequest) (*rangekvpb.GetDescriptorResponse, error) {
	if r := a.s.replica(req.RangeId); r != nil {
		return &rangekvpb.GetDescriptorResponse{Descriptor_: r.Descriptor()}, nil
	}
	return &rangekvpb.GetDescriptorResponse{}, nil
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
