// Destroying a replica that is no longer a member of its range: its raft
// state and its span's data go in one synced batch, and a tombstone stays
// so that its replica ID is never created on this store again.

package store

import (
	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// destroy removes a replica that is no longer a member: its
// range-local state and its span's data go, a tombstone stays so that its
// replica ID is never created here again. One synced batch.
func (r *Replica) destroy(why string) {
	r.destroyWithTombstone(r.replicaID+1, why)
}

// destroyWithTombstone is destroy with the tombstone's
// next_replica_id given (replica GC passes the one of the descriptor that
// proved the removal). Invariant: nextReplicaID > r.replicaID, and no
// replica ID below it can still be added to this store.
func (r *Replica) destroyWithTombstone(nextReplicaID uint64, why string) {
	s := r.store
	r.lock()
	if r.mu.destroyed {
		r.mu.Unlock()
		return
	}
	r.mu.rr.Close()
	r.mu.destroyed = true
	desc := r.Descriptor()
	r.mu.Unlock()
	r.failInbox()
	// Snapshots queued for r will never be stepped: free their data and
	// placeholders (after failInbox, so none is queued later).
	if s.snaps != nil {
		s.snaps.dropReplica(r)
	}
	if k := s.cfg.Knobs; k != nil && k.ReplicaDestroying != nil {
		k.ReplicaDestroying(r.rangeID)
	}
	s.at(PointDestroying, r.rangeID)
	b := s.db.NewBatch()
	defer b.Close()
	r.must(b.DeleteRange(keys.RangeLocalPrefix(r.rangeID), keys.RangeLocalEnd(r.rangeID), nil))
	v, err := proto.Marshal(&rangekvpb.RangeTombstone{NextReplicaId: max(nextReplicaID, r.replicaID+1)})
	r.must(err)
	r.must(b.Set(keys.TombstoneKey(r.rangeID), v, nil))
	if desc != nil && !s.spanOwnedByOther(r.rangeID, desc) {
		lo, hi := keys.UserSpan(desc.StartKey, desc.EndKey)
		r.must(b.DeleteRange(lo, hi, nil))
	}
	r.must(b.Commit(pebble.Sync))
	s.mu.Lock()
	s.deleteReplicaLocked(r.rangeID)
	s.mu.removals++ // the tombstone above is committed (createUninitialized)
	s.reindexLocked()
	s.mu.Unlock()
	s.setAwake(r.rangeID, false)
	if r.leader.Load() == r.replicaID {
		s.metrics.leaders.Dec()
	}
	if r.quiesced.Load() {
		s.metrics.quiescent.Dec()
	}
	s.metrics.replicas.Dec()
	s.log.Info("replica destroyed", "range", r.rangeID, "replica", r.replicaID, "next_replica_id", max(nextReplicaID, r.replicaID+1), "reason", why)
}
