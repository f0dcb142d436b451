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
//     an epoch older than the local one (the stores' reports lag).
//
// Nothing is removed on an error or on an answer older than the local
// epoch. Checks run on the store's GC goroutine only (never on a raft
// worker): every ReplicaGCInterval for suspect replicas (gcSuspect: those
// that know no leader, and those that never campaign, whose leader may have
// removed them without a word), a few quiesced replicas in turn on each of
// those passes (gcSweep: a quiesced replica hears nothing either), and
// soon after a queueGC for a replica
// seen blocking an incoming snapshot or a newer incarnation of itself.
// Each range is checked at most once per half ReplicaGCInterval, and the
// store makes at most gcChecksPerSecond checks.

package store

import (
	"context"
	"slices"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// gcSuspect reports whether the periodic GC pass checks r: it knows no
// leader, or it never campaigns, so that the leader it knows may have
// removed it and stopped talking to it for good: an uninitialized replica
// (in no configuration yet: created by a message, waiting for a snapshot
// or for the local split) or one that is not a voter in its own
// descriptor (a learner, or a voter entering or leaving a joint
// configuration). A voter that hears nothing campaigns and forgets its
// leader, and so becomes suspect by the first rule; a learner or an
// uninitialized replica keeps the last leader it heard of forever (raft
// never times it out), and a check restricted to the first rule left such
// a replica in place for good (a lagging store's right half of a split,
// removed before it caught up).
func (r *Replica) gcSuspect() bool {
	if r.leader.Load() == 0 && !r.quiesced.Load() {
		return true
	}
	d := r.Descriptor()
	if d == nil {
		return true
	}
	me := replicaByID(d, r.replicaID)
	return me == nil || me.Role != rangekvpb.ReplicaRole_VOTER
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
func (r *Replica) maybeGC(ctx context.Context, pdUsable bool) bool {
	s := r.store
	if pdUsable {
		pd, err := s.placementDescriptor(ctx, r.rangeID)
		if err != nil {
			s.log.Debug("replica GC: placement did not answer; asking the range's stores", "range", r.rangeID, "err", err)
			pdUsable = false
		} else {
			switch judgeReplica(r.Descriptor(), pd, r.replicaID) {
			case gcRemoved:
				r.gcDestroy(pd, "no longer a member (placement's descriptor)")
				return pdUsable
			case gcMember:
				return pdUsable
			}
			// Placement does not know the range, or lags this replica:
			// the stores may know more.
		}
	}
	r.gcAskPeers(ctx)
	return pdUsable
}

// gcAskPeers asks the stores of r's descriptor (and those it heard from)
// for their descriptor of the range.
func (r *Replica) gcAskPeers(ctx context.Context) {
	s := r.store
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
		cctx, cancel := clock.WithTimeout(ctx, r.store.cfg.Clock, gcLookupTimeout)
		resp, err := rangekvpb.NewAdminClient(conn).GetDescriptor(cctx, &rangekvpb.GetDescriptorRequest{RangeId: r.rangeID})
		cancel()
		if err != nil {
			continue
		}
		if judgeReplica(r.Descriptor(), resp.Descriptor_, r.replicaID) == gcRemoved {
			r.gcDestroy(resp.Descriptor_, "no longer a member (peer store's descriptor)")
			return
		}
	}
}

// gcDestroy destroys r, which other proves removed, unless r changed
// meanwhile (it is no longer this store's replica of the range, or it
// applied a newer descriptor), or r is uninitialized and a split staged
// here is about to install its range (startReplacing, as deliver's
// replacement of an uninitialized replica does: destroying it now would
// delete range-local state under the split's install and write a
// tombstone that forbids the replica ID the split then runs; the
// installed replica is checked again later). Once startReplacing agreed,
// a split staged later creates nothing (claimRHS), as the tombstone about
// to be written says.
func (r *Replica) gcDestroy(other *rangekvpb.RangeDescriptor, why string) {
	s := r.store
	if s.replica(r.rangeID) != r || judgeReplica(r.Descriptor(), other, r.replicaID) != gcRemoved {
		return
	}
	if r.Descriptor() == nil && !s.startReplacing(r) {
		s.log.Debug("replica GC: the split staged here installs the range; checking again later", "range", r.rangeID, "replica", r.replicaID)
		return
	}
	r.destroyWithTombstone(gcTombstoneID(other, s.cfg.StoreID, r.replicaID), why)
}
