// The store admin service and the JSON status behind /debug/ranges.
package store

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type adminServer struct {
	rangekvpb.UnimplementedAdminServer
	s *Store
}

// Status returns the status of every replica on the store.
func (s *Store) Status() *rangekvpb.ListRangesResponse {
	out := &rangekvpb.ListRangesResponse{StoreId: s.cfg.StoreID}
	for _, r := range s.replicasSnapshot() {
		st := &rangekvpb.ReplicaStatus{Descriptor_: proto.CloneOf(r.Descriptor()), ReplicaId: r.replicaID}
		r.mu.Lock()
		if !r.mu.destroyed {
			bs := r.mu.rr.BasicStatus()
			st.RaftState = bs.RaftState.String()
			st.Term = bs.GetTerm()
			st.LeaderReplicaId = bs.Lead
			st.CommitIndex = bs.GetCommit()
			st.AppliedIndex = r.mu.applied.Index
		}
		r.mu.Unlock()
		st.FirstIndex, _ = r.log.FirstIndex()
		st.LastIndex, _ = r.log.LastIndex()
		out.Replicas = append(out.Replicas, st)
	}
	return out
}

func (a *adminServer) ListRanges(context.Context, *rangekvpb.ListRangesRequest) (*rangekvpb.ListRangesResponse, error) {
	return a.s.Status(), nil
}

// TransferLeader asks the range's leader on this store to hand leadership
// to the replica on to_store_id. It returns once the request is queued;
// callers watch ListRanges for the outcome.
func (a *adminServer) TransferLeader(_ context.Context, req *rangekvpb.TransferLeaderRequest) (*rangekvpb.TransferLeaderResponse, error) {
	r := a.s.replica(req.RangeId)
	if r == nil {
		return &rangekvpb.TransferLeaderResponse{Error: &rangekvpb.RangeError{Message: "range not on this store",
			RangeNotFound: &rangekvpb.RangeNotFound{RangeId: req.RangeId}}}, nil
	}
	target := replicaOnStore(r.Descriptor(), req.ToStoreId)
	if target == nil {
		return nil, status.Errorf(codes.InvalidArgument, "to_store_id: store %d holds no replica of range %d", req.ToStoreId, req.RangeId)
	}
	if lead := r.leader.Load(); lead != r.replicaID {
		return &rangekvpb.TransferLeaderResponse{Error: a.s.notLeader(r, lead)}, nil
	}
	r.pushTransfer(target.ReplicaId)
	a.s.sched.enqueue(r.rangeID, flagWork)
	return &rangekvpb.TransferLeaderResponse{}, nil
}
