// Loading the store's replicas from the engine at start, and building a
// replica (its log, its raft) from what the engine holds.

package store

import (
	"fmt"

	"github.com/rangekv/rangekv/internal/logadapt"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

func (s *Store) loadReplicas() error {
	descs, err := loadDescriptors(s.db)
	if err != nil {
		return err
	}
	for _, d := range descs {
		if _, err := s.loadReplica(d); err != nil {
			return fmt.Errorf("load range %d: %w", d.RangeId, err)
		}
	}
	s.metrics.replicas.Set(float64(len(descs)))
	return nil
}

// loadReplica builds the in-memory replica of a descriptor stored on disk
// and adds it to the replica map and index.
func (s *Store) loadReplica(d *rangekvpb.RangeDescriptor) (*Replica, error) {
	r, err := s.buildReplica(d)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.setReplicaLocked(d.RangeId, r)
	s.mu.Unlock()
	s.setAwake(d.RangeId, true)
	s.indexReplica(r)
	return r, nil
}

// buildReplica builds the in-memory replica of a descriptor stored on disk.
func (s *Store) buildReplica(d *rangekvpb.RangeDescriptor) (*Replica, error) {
	me := replicaOnStore(d, s.cfg.StoreID)
	if me == nil {
		return nil, fmt.Errorf("descriptor %v has no replica on store %d", d, s.cfg.StoreID)
	}
	if err := s.settleSplitHardState(d.RangeId); err != nil {
		return nil, err
	}
	var applied rangekvpb.AppliedState
	if _, err := getProto(s.db, keys.AppliedStateKey(d.RangeId), &applied); err != nil {
		return nil, err
	}
	cs := confStateOf(d)
	rl, err := logstore.Load(s.db, d.RangeId, cs, &applied)
	if err != nil {
		return nil, err
	}
	rr, err := s.newRaft(d.RangeId, me.ReplicaId, rl, applied.Index, applied.Term)
	if err != nil {
		return nil, err
	}
	r := &Replica{store: s, rangeID: d.RangeId, replicaID: me.ReplicaId, log: rl}
	r.desc.Store(d)
	r.mu.rr = rr
	r.mu.applied = rangekvpb.AppliedState{Index: applied.Index, Term: applied.Term}
	r.appliedIndex.Store(applied.Index)
	return r, nil
}

// newRaft builds the rangeraft replica with the store's settings.
func (s *Store) newRaft(rangeID, replicaID uint64, rl *logstore.RangeLog, applied, appliedTerm uint64) (*rangeraft.Replica, error) {
	election, heartbeat, proposal, read := s.cfg.raftTicks()
	return rangeraft.New(rangeraft.Config{
		ReplicaID:            replicaID,
		ElectionTicks:        election,
		HeartbeatTicks:       heartbeat,
		ProposalTimeoutTicks: proposal,
		ReadTimeoutTicks:     read,
		Applied:              applied,
		AppliedTerm:          appliedTerm,
		ReadContextSeed:      s.readSeed ^ rangeID,
		Storage:              rl,
		Logger:               logadapt.NewRaft(s.log.With("range", rangeID, "replica", replicaID)),
		LeaseDuration:        s.cfg.leaseDuration(),
		Clock:                s.now,
		HeartbeatInterval:    s.cfg.HeartbeatInterval,
	})
}
