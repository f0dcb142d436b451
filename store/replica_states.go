// Every replica's Raft role, term and applied index as an invariant
// checker reads them between steps: no copies, no disk, a fraction of
// Status's cost (the simulation reads them thousands of times a run).

package store

import (
	"go.etcd.io/raft/v3"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// ReplicaState is one replica's state as ReplicaStates reads it.
type ReplicaState struct {
	RangeID uint64
	// Descriptor is the replica's current descriptor, shared: do not
	// modify it. Nil while the replica is uninitialized.
	Descriptor *rangekvpb.RangeDescriptor
	// Leader: Raft says this replica leads in Term.
	Leader  bool
	Term    uint64
	Applied uint64
}

// ReplicaStates appends the state of every live replica on the store to
// out, in range order, and returns it. Each replica is read under its
// lock, so its role, term and applied index are one moment's.
func (s *Store) ReplicaStates(out []ReplicaState) []ReplicaState {
	for _, r := range s.replicasSnapshot() {
		st := ReplicaState{RangeID: r.rangeID, Descriptor: r.Descriptor()}
		r.lock()
		if r.mu.destroyed {
			r.mu.Unlock()
			continue
		}
		bs := r.mu.rr.BasicStatus()
		st.Leader = bs.RaftState == raft.StateLeader
		st.Term = bs.GetTerm()
		st.Applied = r.mu.applied.Index
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
}
