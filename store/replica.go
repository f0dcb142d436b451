// A store's replica of one range: the rangeraft replica, its log storage,
// the range descriptor and applied state, and the inbox other goroutines
// use to hand it work.

package store

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/driver"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// Replica is one range's replica on this store.
//
// Lock order: Replica.mu before Replica.inbox.mu; a worker may hold the mu
// of every replica in its pass (no other goroutine holds two).
type Replica struct {
	// store is the store hosting the replica: the replica reaches
	// store-wide services (engine, transport, scheduler, metrics) through
	// it. Set when the replica is built, never changed.
	store     *Store
	rangeID   uint64
	replicaID uint64
	log       *logstore.RangeLog

	// desc is the current descriptor, readable without locks (KV handlers
	// check keys and epochs against it). Written by the worker on apply.
	// Nil while the replica is uninitialized (created by a message, waiting
	// for a snapshot or for the local split that creates it).
	desc atomic.Pointer[rangekvpb.RangeDescriptor]
	// leader is the leader's replica ID as last seen (0: unknown), and
	// leaderStore the store that hosts it.
	leader      atomic.Uint64
	leaderStore atomic.Uint64
	// term is the Raft term as last seen (for placement reports).
	term atomic.Uint64
	// quiesced: not ticking (read by the ticker, written by the worker).
	quiesced atomic.Bool
	// quiescedLagging: this leader quiesced while a replica on a store
	// liveness reports down lagged (replica_quiesce.go); the ticker wakes
	// it every reprobeTicks to probe that store again.
	quiescedLagging atomic.Bool
	// uninitTicks counts ticks while uninitialized (bounds how long
	// MsgApps are dropped waiting for a local split).
	uninitTicks atomic.Int32
	// heldApp is the last MsgApp dropped while this uninitialized replica
	// waited for the local split to create the range (store_deliver.go). The
	// split's install hands it to the new replica, so the right half's
	// new leader, whose probe was dropped, hears back at once instead of
	// at its next heartbeat (a consecutive split waited ~100 ms for it).
	heldApp atomic.Pointer[inMsg]
	// size is the range's last measured approximate size (sizeEstimate);
	// nil until measured.
	size atomic.Pointer[sizeEstimate]
	// writtenBytes approximates user bytes applied since the last split
	// check.
	writtenBytes atomic.Int64
	// reads and writes count KV requests routed to this replica (load
	// reported to placement).
	reads, writes atomic.Uint64
	// appliedIndex mirrors mu.applied.Index for lock-free readers.
	appliedIndex atomic.Uint64
	// replacing: deliver is destroying this uninitialized replica to
	// create a newer incarnation of the range's replica here. Set under
	// Store.mu and never cleared; read under Store.mu by a split that
	// creates the range (replica_split.go claimRHS).
	replacing atomic.Bool
	// reportOnLead: this is the right half of a split that campaigns on
	// the old leader's store; the first leader it learns clears it, and
	// if that leader is this replica, placement hears of the new range at
	// once (reportRangesSoon) instead of at the next report interval.
	reportOnLead atomic.Bool
	// pendingReads counts the reads pushed and not yet completed (queued
	// in the inbox or waiting in rangeraft for their read index).
	// Invariant: at most Config.MaxPendingReads (pushRead refuses more).
	pendingReads atomic.Int64

	mu struct {
		sync.Mutex
		rr      *rangeraft.Replica
		applied rangekvpb.AppliedState
		// trunc counts applied entries between truncation decisions.
		trunc     driver.Truncator
		destroyed bool
		// leaveJoint records this replica's leave-joint proposal for the
		// current joint configuration (replica_membership.go maybeLeaveJoint).
		// Invariant: while the descriptor stays joint at confVer and this
		// replica leads in term, leave-joint is proposed once, and again
		// only after leaveJointRetryTicks ticks without leaving.
		leaveJoint struct {
			confVer, term uint64
			ticks         int
		}
		// recampaign: this replica campaigned because its leader's store
		// (deadStore) went down; it campaigns again every
		// recampaignTicks while it knows no leader and that store stays
		// down, for at most two election timeouts (replica_quiesce.go
		// maybeRecampaign). Zero: not retrying.
		recampaign struct {
			deadStore uint64
			ticks     int
		}
		// muted lists the leaders whose commit advances this pass stepped
		// (drainInbox), one entry per advance: send drops one heartbeat
		// answer to each instead of sending it (store_commit_hold.go).
		// Reset at the start of each drain.
		muted []uint64
	}

	inbox struct {
		sync.Mutex
		msgs        []inMsg
		proposals   []*rangeraft.Proposal
		reads       []*rangeraft.Read
		snapReports []snapReport
		transferTo  uint64
		closed      bool
		// wake: a follower asked this (quiesced) leader to tick again.
		wake bool
		// leaderDead: store liveness says the leader's store is gone.
		leaderDead bool
		// campaign: campaign at once (e.g. the right half of a split on
		// the old leader's store).
		campaign bool
		// peers maps replica IDs to stores, learned from messages; used
		// when the descriptor is not known yet (uninitialized replica).
		peers map[uint64]uint64
		// confChanges waiting to be proposed.
		confChanges []pendingConfChange
	}
}

// Descriptor returns the current range descriptor (do not modify); nil
// while uninitialized.
func (r *Replica) Descriptor() *rangekvpb.RangeDescriptor { return r.desc.Load() }

// containsKey reports whether user key k is in the range (false for a nil,
// uninitialized descriptor).
func containsKey(d *rangekvpb.RangeDescriptor, k []byte) bool {
	if d == nil {
		return false
	}
	return bytes.Compare(k, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(k, d.EndKey) < 0)
}

// replicaByID finds a replica of the descriptor by its replica ID.
func replicaByID(d *rangekvpb.RangeDescriptor, id uint64) *rangekvpb.ReplicaDescriptor {
	if d == nil {
		return nil
	}
	for _, r := range d.Replicas {
		if r.ReplicaId == id {
			return r
		}
	}
	return nil
}

// replicaOnStore finds the replica of the descriptor on storeID.
func replicaOnStore(d *rangekvpb.RangeDescriptor, storeID uint64) *rangekvpb.ReplicaDescriptor {
	if d == nil {
		return nil
	}
	for _, r := range d.Replicas {
		if r.StoreId == storeID {
			return r
		}
	}
	return nil
}

// storeOfReplica maps a replica ID to its store: from the descriptor, or
// from what messages taught an uninitialized replica.
func (r *Replica) storeOfReplica(id uint64) (uint64, bool) {
	if d := r.desc.Load(); d != nil {
		if rd := replicaByID(d, id); rd != nil {
			return rd.StoreId, true
		}
	}
	r.inbox.Lock()
	defer r.inbox.Unlock()
	st, ok := r.inbox.peers[id]
	return st, ok
}
