// Delivering peers' messages to replicas, creating uninitialized replicas
// for ranges this store does not know yet (a new learner, or the right half
// of a split this store has not applied).

package store

import (
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// maxSplitDelayTicks bounds how long MsgApps to an uninitialized replica
// are dropped while a local replica still holds the sender's start key
// (waiting for the local split to create the replica with its data).
const maxSplitDelayTicks = 50

// deliver hands a peer's message to its replica's inbox.
func (s *Store) deliver(env *rangekvpb.RaftMessage, quiesce bool) {
	s.deliverTo(env, quiesce, nil)
}

// heardEvery is how many records of a batch a store delivers between
// notes that the sender is alive (store_liveness.go).
const heardEvery = 256

// deliverBatch delivers a peer's batch: its messages, then its coalesced
// heartbeats and responses, and then queues every range that got one for
// a pass under one lock of the scheduler (rather than once per message).
// buf is scratch space for the range IDs, returned for reuse.
//
// The sender is noted alive before the first record and again every
// heardEvery records (an empty batch, the ping, once): a batch of
// coalesced heartbeats for tens of thousands of ranges takes this store a
// while to hand out (longer when its cores are busy), and the next batch,
// the next proof of life, is read only after. Counting the peer dead
// meanwhile woke every range it leads (their followers forget it and
// campaign), a storm that made the next batches longer still.
func (s *Store) deliverBatch(b *rangekvpb.RaftMessageBatch, buf []uint64) []uint64 {
	ids := buf[:0]
	n := 0
	heard := func() {
		if n%heardEvery == 0 {
			s.liveness.heard(b.FromStore)
		}
		n++
	}
	for _, m := range b.Messages {
		heard()
		s.deliverTo(m, false, &ids)
	}
	for _, hb := range b.Heartbeats {
		heard()
		s.deliverHeartbeatTo(b.FromStore, hb, pb.MsgHeartbeat, &ids)
	}
	for _, hb := range b.HeartbeatResps {
		heard()
		s.deliverHeartbeatTo(b.FromStore, hb, pb.MsgHeartbeatResp, &ids)
	}
	if n == 0 {
		s.liveness.heard(b.FromStore) // an empty batch: the ping
	}
	if len(ids) > 0 {
		s.sched.enqueueMany(ids, flagWork)
	}
	return ids
}

// deliverTo is deliver; with ids set, the range to queue for a pass is
// appended there instead of queued (the caller queues them all at once).
func (s *Store) deliverTo(env *rangekvpb.RaftMessage, quiesce bool, ids *[]uint64) {
	enqueue := func(rangeID uint64) {
		if ids != nil {
			*ids = append(*ids, rangeID)
		} else {
			s.sched.enqueue(rangeID, flagWork)
		}
	}
	if env.Wake {
		if r := s.replica(env.RangeId); r != nil {
			r.setFlag(func(r *Replica) { r.inbox.wake = true })
			enqueue(env.RangeId)
		}
		return
	}
	m := env.Message
	if m == nil || m.GetTo() == 0 {
		s.metrics.messagesDropped.WithLabelValues("malformed").Inc()
		return
	}
	// Only a heartbeat without context can stand for a commit-only
	// append; anything else marked so is stepped and answered as usual.
	advance := env.CommitAdvance && m.GetType() == pb.MsgHeartbeat && len(m.GetContext()) == 0
	r := s.replica(env.RangeId)
	if r == nil {
		r = s.createUninitialized(env.RangeId, m.GetTo())
		if r == nil {
			s.holdForSplit(env.RangeId, inMsg{m: m, fromStore: env.FromStore, quiesce: quiesce, advance: advance})
			return
		}
	}
	if r.replicaID != m.GetTo() && m.GetTo() > r.replicaID && r.Descriptor() == nil {
		// A newer incarnation of this range's replica here, while the old
		// one never got its data (it was added, then removed before a
		// snapshot reached it): replica IDs are never reused, so the old
		// one is gone from the range. Replace it at once: waiting for
		// replica GC's next pass would leave the new learner unreachable
		// meanwhile. Not while a split staged here is about to install
		// this range's replica (startReplacing).
		if !s.startReplacing(r) {
			s.metrics.messagesDropped.WithLabelValues("awaiting_split").Inc()
			return
		}
		r.destroy(fmt.Sprintf("uninitialized replica %d replaced by replica %d", r.replicaID, m.GetTo()))
		if r = s.createUninitialized(env.RangeId, m.GetTo()); r == nil {
			return
		}
	}
	if r.replicaID != m.GetTo() {
		// A message for another incarnation of this range's replica here:
		// older IDs are stale; a newer one waits for the old (initialized)
		// replica's GC, which it asks for.
		s.metrics.messagesDropped.WithLabelValues("replica_id_mismatch").Inc()
		if m.GetTo() > r.replicaID {
			s.queueGC(env.RangeId, fmt.Sprintf("replica %d of the range is addressed here", m.GetTo()))
		}
		return
	}
	if r.Descriptor() == nil && m.GetType() == pb.MsgApp && len(env.StartKey) > 0 &&
		r.uninitTicks.Load() < maxSplitDelayTicks && s.replicaForKey(env.StartKey) != nil {
		// The local replica holding this key will create this one when it
		// applies the split; a snapshot now would overlap it. The split's
		// install delivers the last such MsgApp (installRHS).
		r.heldApp.Store(&inMsg{m: m, fromStore: env.FromStore, quiesce: quiesce})
		s.metrics.messagesDropped.WithLabelValues("awaiting_split").Inc()
		return
	}
	im := inMsg{m: m, fromStore: env.FromStore, quiesce: quiesce, advance: advance}
	if !r.pushMessage(im, s.cfg.InboxSize) {
		// A closed inbox: the replica was stopped, maybe by the split that
		// is replacing it right now (installRHS), whose new replica then
		// takes the message.
		if !s.holdForSplit(env.RangeId, im) {
			s.metrics.messagesDropped.WithLabelValues("inbox_full").Inc()
		}
		return
	}
	enqueue(env.RangeId)
}

// maxHeldForSplit bounds the messages held for one range while a split
// staged here is about to create its replica.
const maxHeldForSplit = 8

// holdForSplit keeps im for the split that is about to install its range
// here (pendingRHS), keeping the latest maxHeldForSplit, and reports
// whether it did; it does nothing for a range no split is creating.
// Checked under s.mu, the lock under which installRHS takes the held
// messages, so none is held after that.
func (s *Store) holdForSplit(rangeID uint64, im inMsg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pendingRHS[rangeID] == nil {
		return false
	}
	if s.mu.heldForSplit == nil {
		s.mu.heldForSplit = make(map[uint64][]inMsg)
	}
	held := append(s.mu.heldForSplit[rangeID], im)
	if len(held) > maxHeldForSplit {
		held = held[len(held)-maxHeldForSplit:]
	}
	s.mu.heldForSplit[rangeID] = held
	return true
}

// createUninitialized creates a replica with no descriptor, no span and an
// empty log (it keeps any HardState it persisted before), unless a
// tombstone forbids replicaID. It never campaigns: it is in no
// configuration until a snapshot or the local split initializes it.
//
// The Pebble reads (tombstone, persisted raft state) run without the store
// lock, which every request's replica lookup needs; the result is
// installed under the lock only if nothing that could make them stale
// happened meanwhile: the range got a replica (returned instead), a split
// is about to create it (pendingRHS: dropped), or a replica was destroyed
// (s.mu.removals moved: its tombstone may postdate our read, so read
// again). Whatever writes a range's tombstone or state for a range with
// no replica here does so under one of those three.
func (s *Store) createUninitialized(rangeID, replicaID uint64) *Replica {
	for {
		s.mu.RLock()
		r, pending, removals := s.mu.replicas[rangeID], s.mu.pendingRHS[rangeID] != nil, s.mu.removals
		s.mu.RUnlock()
		if r != nil {
			return r
		}
		if pending {
			s.metrics.messagesDropped.WithLabelValues("awaiting_split").Inc()
			return nil
		}
		rl, rr, ok := s.loadUninitialized(rangeID, replicaID)
		if !ok {
			return nil
		}
		s.mu.Lock()
		if r := s.mu.replicas[rangeID]; r != nil {
			s.mu.Unlock()
			return r
		}
		if s.mu.pendingRHS[rangeID] != nil {
			s.mu.Unlock()
			s.metrics.messagesDropped.WithLabelValues("awaiting_split").Inc()
			return nil
		}
		if s.mu.removals != removals {
			s.mu.Unlock()
			continue
		}
		r = &Replica{store: s, rangeID: rangeID, replicaID: replicaID, log: rl}
		r.mu.rr = rr
		s.setReplicaLocked(rangeID, r)
		s.metrics.replicas.Inc()
		s.setAwake(rangeID, true)
		s.mu.Unlock()
		s.log.Info("created uninitialized replica", "range", rangeID, "replica", replicaID)
		return r
	}
}

// loadUninitialized reads what an uninitialized replica starts from (its
// tombstone, its persisted raft state) and builds its raft; false when a
// tombstone forbids replicaID or a read fails. Called without s.mu.
func (s *Store) loadUninitialized(rangeID, replicaID uint64) (*logstore.RangeLog, *rangeraft.Replica, bool) {
	var ts rangekvpb.RangeTombstone
	if _, err := getProto(s.db, keys.TombstoneKey(rangeID), &ts); err != nil {
		s.log.Error("read tombstone", "range", rangeID, "err", err)
		return nil, nil, false
	}
	if replicaID < ts.NextReplicaId {
		s.metrics.messagesDropped.WithLabelValues("tombstone").Inc()
		return nil, nil, false
	}
	if k := s.cfg.Knobs; k != nil && k.BetweenUninitializedReads != nil {
		k.BetweenUninitializedReads(rangeID)
	}
	rl, err := logstore.Load(s.db, rangeID, &pb.ConfState{}, &rangekvpb.AppliedState{})
	if err != nil {
		s.log.Error("load uninitialized replica", "range", rangeID, "err", err)
		return nil, nil, false
	}
	rr, err := s.newRaft(rangeID, replicaID, rl, 0, 0)
	if err != nil {
		s.log.Error("create uninitialized replica", "range", rangeID, "err", err)
		return nil, nil, false
	}
	return rl, rr, true
}
