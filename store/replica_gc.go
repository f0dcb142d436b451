// Replica GC: a replica removed from its range often never applies its own
// removal (the leader stops talking to it first). A replica that has had no
// leader for a while asks the other stores of its range for their
// descriptor; a committed descriptor with a higher conf_ver that no longer
// lists its replica ID proves the removal (IDs are never reused), and the
// replica is destroyed with a tombstone.
// TODO(placement): ask placement (a linearizable read) instead of peers.
package store

import (
	"context"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

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

// maybeGC destroys r if a peer's descriptor shows it was removed.
func (s *Store) maybeGC(r *Replica) {
	r.inbox.Lock()
	peers := make(map[uint64]bool)
	for _, st := range r.inbox.peers {
		peers[st] = true
	}
	r.inbox.Unlock()
	d := r.Descriptor()
	var confVer uint64
	if d != nil {
		confVer = d.Epoch.GetConfVer()
		for _, rd := range d.Replicas {
			peers[rd.StoreId] = true
		}
	}
	delete(peers, s.cfg.StoreID)
	for st := range peers {
		conn := s.trans.conn(st)
		if conn == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := rangekvpb.NewAdminClient(conn).GetDescriptor(ctx, &rangekvpb.GetDescriptorRequest{RangeId: r.rangeID})
		cancel()
		if err != nil || resp.Descriptor_ == nil {
			continue
		}
		pd := resp.Descriptor_
		if pd.Epoch.GetConfVer() > confVer && replicaByID(pd, r.replicaID) == nil && r.replicaID < pd.NextReplicaId {
			s.destroyReplica(r, "no longer a member (peer store's descriptor)")
			return
		}
	}
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
