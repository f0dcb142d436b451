// The Admin gRPC service, a thin adapter over the store and its replicas
// (ListRanges, TransferLeader, SplitRange, ChangeReplicas, Drain,
// CompactLog, GetDescriptor), and the status behind it and /debug/ranges.

package store

import (
	"context"

	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/paging"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type adminServer struct {
	rangekvpb.UnimplementedAdminServer
	s *Store
}

// Status returns the status of every replica on the store, in range ID
// order (/debug/ranges and tests; the Admin API pages with listRanges).
func (s *Store) Status() *rangekvpb.ListRangesResponse {
	all := s.sortedReplicas()
	return s.statusOf(all, len(all))
}

// listRanges answers one page of Admin.ListRanges.
func (s *Store) listRanges(req *rangekvpb.ListRangesRequest) (*rangekvpb.ListRangesResponse, error) {
	limit, err := paging.Limit(req.Limit)
	if err != nil {
		return nil, err
	}
	after, err := paging.ParseRangeIDToken(req.PageToken)
	if err != nil {
		return nil, err
	}
	page, more, total := s.replicasPage(after, limit, req.RangeIds)
	out := s.statusOf(page, total)
	if more {
		out.NextPageToken = paging.RangeIDToken(page[len(page)-1].rangeID)
	}
	return out, nil
}

// statusOf lists the status of replicas. The descriptors in it are the
// replicas' own (immutable: do not modify); sizes come from
// approximateSize. It costs a few hundred nanoseconds per replica: no
// Pebble estimate while the cached size is fresh, and no copy of raft's
// progress (WithProgress, Brief), which made a listing of 1,000 replicas
// cost 11 ms.
func (s *Store) statusOf(replicas []*Replica, total int) *rangekvpb.ListRangesResponse {
	out := &rangekvpb.ListRangesResponse{StoreId: s.cfg.StoreID, Total: uint64(total), Replicas: make([]*rangekvpb.ReplicaStatus, 0, len(replicas))}
	sts := make([]rangekvpb.ReplicaStatus, len(replicas))
	now := s.now()
	for i, r := range replicas {
		d := r.Descriptor()
		st := &sts[i]
		st.ReplicaId, st.Initialized, st.Quiescent = r.replicaID, d != nil, r.quiesced.Load()
		if d != nil {
			st.Descriptor_ = d
			st.ApproximateSize = s.approximateSize(r, d, now)
		} else {
			st.Descriptor_ = &rangekvpb.RangeDescriptor{RangeId: r.rangeID}
		}
		r.lock()
		if !r.mu.destroyed {
			b := r.mu.rr.Brief()
			st.RaftState = b.State.String()
			st.Term = b.Term
			st.LeaderReplicaId = b.Lead
			st.CommitIndex = b.Commit
			st.AppliedIndex = r.mu.applied.Index
			if r.mu.rr.IsLeader() {
				prs := make([]rangekvpb.FollowerProgress, 0, len(d.GetReplicas()))
				r.mu.rr.WithProgress(func(id uint64, pr tracker.Progress) {
					prs = append(prs, rangekvpb.FollowerProgress{ReplicaId: id, Match: pr.Match, State: pr.State.String(), RecentActive: pr.RecentActive})
				})
				st.Progress = make([]*rangekvpb.FollowerProgress, len(prs))
				for j := range prs {
					st.Progress[j] = &prs[j]
				}
			}
		}
		r.mu.Unlock()
		st.FirstIndex, _ = r.log.FirstIndex()
		st.LastIndex, _ = r.log.LastIndex()
		out.Replicas = append(out.Replicas, st)
	}
	return out
}

func (a *adminServer) ListRanges(_ context.Context, req *rangekvpb.ListRangesRequest) (*rangekvpb.ListRangesResponse, error) {
	return a.s.listRanges(req)
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
	if r.Descriptor() == nil {
		return &rangekvpb.TransferLeaderResponse{Error: &rangekvpb.RangeError{Message: "range not initialized on this store",
			RangeNotFound: &rangekvpb.RangeNotFound{RangeId: req.RangeId}}}, nil
	}
	target := replicaOnStore(r.Descriptor(), req.ToStoreId)
	if target == nil {
		return nil, status.Errorf(codes.InvalidArgument, "to_store_id: store %d holds no replica of range %d", req.ToStoreId, req.RangeId)
	}
	if lead := r.leader.Load(); lead != r.replicaID {
		return &rangekvpb.TransferLeaderResponse{Error: r.notLeader(lead)}, nil
	}
	if target.ReplicaId == r.replicaID {
		// Raft would take it as "abort the transfer in progress" while that
		// transfer's MsgTimeoutNow may still be on its way (rangeraft/lease.go).
		return nil, status.Errorf(codes.InvalidArgument, "to_store_id: store %d already leads range %d; a leadership transfer to the leader's own store is refused", req.ToStoreId, req.RangeId)
	}
	r.pushTransfer(target.ReplicaId)
	a.s.sched.enqueue(r.rangeID, flagWork)
	return &rangekvpb.TransferLeaderResponse{}, nil
}

// SplitRange splits with the new range ID placement sent, or, from a
// caller that sent none, one the store allocates with the request's
// context (Store.Split).
func (a *adminServer) SplitRange(ctx context.Context, req *rangekvpb.SplitRangeRequest) (*rangekvpb.SplitRangeResponse, error) {
	res, rerr, err := a.s.Split(ctx, req.RangeId, req.SplitKey, req.NewRangeId)
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return &rangekvpb.SplitRangeResponse{Error: rerr}, nil
	}
	return &rangekvpb.SplitRangeResponse{Left: res.left, Right: res.right}, nil
}

func (a *adminServer) ChangeReplicas(ctx context.Context, req *rangekvpb.ChangeReplicasRequest) (*rangekvpb.ChangeReplicasResponse, error) {
	d, rerr, err := a.s.ChangeReplicas(ctx, req.RangeId, req.Change, req.StoreId)
	if err != nil {
		return nil, err
	}
	return &rangekvpb.ChangeReplicasResponse{Error: rerr, Descriptor_: d}, nil
}

// Drain starts (or, with undo, stops) moving this store's leaderships away
// and answers at once with the progress; see store_drain.go.
func (a *adminServer) Drain(_ context.Context, req *rangekvpb.DrainRequest) (*rangekvpb.DrainResponse, error) {
	if req.Undo {
		a.s.Undrain()
	} else {
		a.s.StartDrain()
	}
	draining, atStart, leaders := a.s.DrainStatus()
	return &rangekvpb.DrainResponse{Draining: draining, LeadersAtStart: uint32(atStart), Leaders: uint32(leaders)}, nil
}

// CompactLog truncates the range's log up to the leader's applied index on
// every replica, through Raft (a TruncateLogCmd, as the truncation policy
// proposes, but regardless of the policy's thresholds and of followers
// that lag): a replica behind that index, or added later, then catches up
// from a snapshot. Answered by the leader once the truncation applied
// there; the followers truncate as they apply it.
func (a *adminServer) CompactLog(ctx context.Context, req *rangekvpb.CompactLogRequest) (*rangekvpb.CompactLogResponse, error) {
	s := a.s
	if req.RangeId == 0 {
		return nil, status.Error(codes.InvalidArgument, "range_id: must be set")
	}
	r := s.replica(req.RangeId)
	if r == nil || r.Descriptor() == nil {
		return &rangekvpb.CompactLogResponse{Error: &rangekvpb.RangeError{Message: "range not on this store",
			RangeNotFound: &rangekvpb.RangeNotFound{RangeId: req.RangeId}}}, nil
	}
	if lead := r.leader.Load(); lead != r.replicaID {
		return &rangekvpb.CompactLogResponse{Error: r.notLeader(lead)}, nil
	}
	return r.compactLog(ctx)
}

func (a *adminServer) GetDescriptor(_ context.Context, req *rangekvpb.GetDescriptorRequest) (*rangekvpb.GetDescriptorResponse, error) {
	if r := a.s.replica(req.RangeId); r != nil {
		return &rangekvpb.GetDescriptorResponse{Descriptor_: r.Descriptor()}, nil
	}
	return &rangekvpb.GetDescriptorResponse{}, nil
}
