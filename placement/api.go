// The Placement gRPC service.

package placement

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/paging"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

type api struct {
	rangekvpb.UnimplementedPlacementServer
	s *Server
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (a *api) Join(ctx context.Context, req *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	return a.s.join(ctx, req)
}

func (a *api) StoreHeartbeat(_ context.Context, req *rangekvpb.StoreHeartbeatRequest) (*rangekvpb.StoreHeartbeatResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.StoreHeartbeatResponse{Error: e}, nil
	}
	if req.Stats == nil || req.Stats.StoreId == 0 {
		return nil, invalid("stats.store_id: must be set")
	}
	if a.s.group.meta.store(req.Stats.StoreId) == nil {
		return &rangekvpb.StoreHeartbeatResponse{Error: &rangekvpb.PlacementError{Message: "unknown store; join first", ClusterMismatch: true}}, nil
	}
	a.s.cluster().storeHeartbeat(req.Stats, a.s.now())
	a.s.metrics.storeHeartbeats.Inc()
	return &rangekvpb.StoreHeartbeatResponse{}, nil
}

func (a *api) RangeHeartbeats(ctx context.Context, req *rangekvpb.RangeHeartbeatsRequest) (*rangekvpb.RangeHeartbeatsResponse, error) {
	s := a.s
	if e := s.checkLeader(req.Header); e != nil {
		return &rangekvpb.RangeHeartbeatsResponse{Error: e}, nil
	}
	now := s.now()
	cl := s.cluster()
	var changed []*rangekvpb.RangeDescriptor
	for _, h := range req.Ranges {
		if h.Descriptor_ == nil {
			continue
		}
		cl.rangeHeartbeat(h, now)
		// Descriptors are written through Raft only when they change.
		if old := s.group.meta.rangeByID(h.Descriptor_.RangeId); old == nil || newer(h.Descriptor_, old) {
			changed = append(changed, h.Descriptor_)
		}
	}
	s.metrics.rangeHeartbeats.Add(float64(len(req.Ranges)))
	if len(changed) > 0 {
		cmd := &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutRanges{PutRanges: &rangekvpb.PutRangesCmd{Ranges: changed}}}
		if _, err := s.group.propose(ctx, cmd); err != nil {
			return &rangekvpb.RangeHeartbeatsResponse{Error: s.placementErr(err)}, nil
		}
	}
	return &rangekvpb.RangeHeartbeatsResponse{Steps: s.operatorSteps(req, now), ReportAll: cl.firstReport(req.StoreId)}, nil
}

// operatorSteps advances (or aborts) the operators of the reported ranges
// and returns the steps for the ranges the reporting store leads. Called
// after the reported descriptors were written.
func (s *Server) operatorSteps(req *rangekvpb.RangeHeartbeatsRequest, now time.Time) []*rangekvpb.OperatorStep {
	ops := s.ops()
	for _, h := range req.Ranges {
		if h.Descriptor_ != nil {
			ops.observe(h.Descriptor_, h.LeaderStoreId, now)
		}
	}
	return ops.stepsFor(req.StoreId, now)
}

func (a *api) AllocID(ctx context.Context, req *rangekvpb.AllocIDRequest) (*rangekvpb.AllocIDResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.AllocIDResponse{Error: e}, nil
	}
	n := uint64(max(req.Count, 1))
	if n > 1<<20 {
		return nil, invalid("count: %d exceeds the limit of %d IDs per call", n, 1<<20)
	}
	first, err := a.s.allocIDs(ctx, n)
	if err != nil {
		return &rangekvpb.AllocIDResponse{Error: a.s.placementErr(err)}, nil
	}
	return &rangekvpb.AllocIDResponse{First: first}, nil
}

func (a *api) ReportSplit(ctx context.Context, req *rangekvpb.ReportSplitRequest) (*rangekvpb.ReportSplitResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.ReportSplitResponse{Error: e}, nil
	}
	if req.Left == nil || req.Right == nil {
		return nil, invalid("left, right: both descriptors must be set")
	}
	cmd := &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutRanges{PutRanges: &rangekvpb.PutRangesCmd{Ranges: []*rangekvpb.RangeDescriptor{req.Left, req.Right}}}}
	if _, err := a.s.group.propose(ctx, cmd); err != nil {
		return &rangekvpb.ReportSplitResponse{Error: a.s.placementErr(err)}, nil
	}
	return &rangekvpb.ReportSplitResponse{}, nil
}

func (s *Server) route(d *rangekvpb.RangeDescriptor) *rangekvpb.RouteInfo {
	return &rangekvpb.RouteInfo{Descriptor_: d, LeaderStoreId: s.cluster().leaderOf(d.RangeId)}
}

func (a *api) GetRange(ctx context.Context, req *rangekvpb.GetRangeRequest) (*rangekvpb.GetRangeResponse, error) {
	s := a.s
	if e := s.checkLeader(req.Header); e != nil {
		return &rangekvpb.GetRangeResponse{Error: e}, nil
	}
	if req.Linearizable {
		// Replica GC removes replicas on this answer: it must reflect
		// every descriptor committed before the call, which a deposed
		// leader that does not know it yet would not.
		if err := s.group.readBarrier(ctx); err != nil {
			return &rangekvpb.GetRangeResponse{Error: s.placementErr(err)}, nil
		}
	}
	if !s.group.meta.clusterRecord().Bootstrapped {
		return &rangekvpb.GetRangeResponse{Error: &rangekvpb.PlacementError{Message: "cluster not bootstrapped: no store has joined", NotBootstrapped: true}}, nil
	}
	resp := &rangekvpb.GetRangeResponse{}
	if req.RangeId != 0 {
		if d := s.group.meta.rangeByID(req.RangeId); d != nil {
			resp.Ranges = append(resp.Ranges, s.route(d))
		}
		return resp, nil
	}
	d, i := s.group.meta.lookup(req.Key)
	if d == nil {
		return resp, nil
	}
	resp.Ranges = append(resp.Ranges, s.route(d))
	for _, n := range s.group.meta.following(i, int(min(req.Neighbours, 64))) {
		resp.Ranges = append(resp.Ranges, s.route(n))
	}
	return resp, nil
}

func (a *api) ScanRanges(_ context.Context, req *rangekvpb.ScanRangesRequest) (*rangekvpb.ScanRangesResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.ScanRangesResponse{Error: e}, nil
	}
	limit, err := paging.Limit(req.Limit)
	if err != nil {
		return nil, err
	}
	start := req.StartKey
	if req.PageToken != "" {
		if start, err = paging.ParseKeyToken(req.PageToken); err != nil {
			return nil, err
		}
	}
	// One more than a page tells whether another page follows.
	ds := a.s.group.meta.scanRanges(start, req.EndKey, limit+1)
	resp := &rangekvpb.ScanRangesResponse{}
	if len(ds) > limit {
		ds = ds[:limit]
		resp.NextPageToken = paging.KeyToken(ds[limit-1].EndKey)
	}
	resp.Ranges = make([]*rangekvpb.RouteInfo, 0, len(ds))
	for _, d := range ds {
		resp.Ranges = append(resp.Ranges, a.s.route(d))
	}
	return resp, nil
}

func (s *Server) storeInfo(d *rangekvpb.StoreDescriptor, now time.Time) *rangekvpb.StoreInfo {
	cl := s.cluster()
	st, downSince, last := cl.storeState(d.StoreId, now, s.cfg.StoreDownGrace)
	info := &rangekvpb.StoreInfo{Store: d, State: st, Stats: cl.stats(d.StoreId)}
	if !last.IsZero() {
		info.LastHeartbeatUnixMs = last.UnixMilli()
	}
	if st == rangekvpb.StoreState_STORE_DOWN {
		info.DownSinceUnixMs = downSince.UnixMilli()
	}
	return info
}

func (a *api) GetStore(_ context.Context, req *rangekvpb.GetStoreRequest) (*rangekvpb.GetStoreResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.GetStoreResponse{Error: e}, nil
	}
	d := a.s.group.meta.store(req.StoreId)
	if d == nil {
		return nil, status.Errorf(codes.NotFound, "store_id: no store %d in this cluster", req.StoreId)
	}
	return &rangekvpb.GetStoreResponse{Store: a.s.storeInfo(d, a.s.now())}, nil
}

func (a *api) ListStores(_ context.Context, req *rangekvpb.ListStoresRequest) (*rangekvpb.ListStoresResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.ListStoresResponse{Error: e}, nil
	}
	resp := &rangekvpb.ListStoresResponse{}
	now := a.s.now()
	for _, d := range a.s.group.meta.allStores() {
		resp.Stores = append(resp.Stores, a.s.storeInfo(d, now))
	}
	return resp, nil
}

func (a *api) ClusterStatus(ctx context.Context, req *rangekvpb.ClusterStatusRequest) (*rangekvpb.ClusterStatusResponse, error) {
	s := a.s
	if e := s.checkLeader(req.Header); e != nil {
		return &rangekvpb.ClusterStatusResponse{Error: e}, nil
	}
	return s.clusterStatus(), nil
}

func (s *Server) clusterStatus() *rangekvpb.ClusterStatusResponse {
	rec := s.group.meta.clusterRecord()
	resp := &rangekvpb.ClusterStatusResponse{ClusterId: rec.ClusterId, Bootstrapped: rec.Bootstrapped}
	lead := s.group.leader.Load()
	for _, m := range s.group.members.Replicas {
		resp.Members = append(resp.Members, &rangekvpb.PlacementMember{Id: m.ReplicaId, Address: s.cfg.InitialCluster[m.ReplicaId],
			Leader: m.ReplicaId == lead, Reachable: s.trans.reachable(m.ReplicaId)})
	}
	now := s.now()
	down := map[uint64]bool{}
	for _, d := range s.group.meta.allStores() {
		info := s.storeInfo(d, now)
		resp.Stores = append(resp.Stores, info)
		if info.State == rangekvpb.StoreState_STORE_DOWN {
			down[d.StoreId] = true
		}
	}
	cl := s.cluster()
	ranges := s.group.meta.allRanges()
	resp.RangeCount = uint32(len(ranges))
	for _, d := range ranges {
		healthy := 0
		for _, r := range d.Replicas {
			if r.Role == rangekvpb.ReplicaRole_VOTER && !down[r.StoreId] {
				healthy++
			}
		}
		if healthy < s.cfg.Replicas {
			resp.UnderReplicated = append(resp.UnderReplicated, d.RangeId)
		}
		if l := cl.leaderOf(d.RangeId); l == 0 || down[l] {
			resp.Leaderless = append(resp.Leaderless, d.RangeId)
		}
	}
	resp.Operators = s.ops().running()
	return resp
}

// splitLeaderWait bounds how long Split waits for placement to learn the
// leader of a range it has none for (then it answers Aborted, retryable).
// A new range's leader reports itself within an election round; a store
// that does not (an older version) reports at its next range heartbeat.
const splitLeaderWait = 2 * time.Second

func (a *api) Split(ctx context.Context, req *rangekvpb.SplitRequest) (*rangekvpb.SplitResponse, error) {
	s := a.s
	if e := s.checkLeader(req.Header); e != nil {
		return &rangekvpb.SplitResponse{Error: e}, nil
	}
	if len(req.Key) == 0 {
		return nil, invalid("key: must not be empty (the split key)")
	}
	d, _ := s.group.meta.lookup(req.Key)
	if d == nil {
		return &rangekvpb.SplitResponse{Error: s.placementErr(errNoRange)}, nil
	}
	// The new range's ID travels with the request: the split is one call
	// to the store, which needs nothing more from placement. A retry (an
	// ambiguous answer, a refusal) takes a fresh ID; the store refuses a
	// split at a key that already starts a range. It is taken before the
	// wait for a leader below, in the order the calls came: two splits
	// waiting for one range's leader are woken together, and took their
	// IDs in the order the Go scheduler ran them (the simulation's seed
	// 2045 under load). A split refused below wastes its ID.
	newID, err := s.allocIDs(ctx, 1)
	if err != nil {
		return &rangekvpb.SplitResponse{Error: s.placementErr(err)}, nil
	}
	lead := s.cluster().leaderOf(d.RangeId)
	if lead == 0 {
		// Typically the right half of a split that just finished: its
		// leader's store reports it once elected (store/store_reports.go,
		// reportRangesSoon). Wait briefly for that rather than send the
		// caller into its retry backoff.
		wctx, cancel := clock.WithTimeout(ctx, a.s.cfg.Clock, splitLeaderWait)
		lead = s.cluster().waitLeader(wctx, d.RangeId)
		cancel()
	}
	st := s.group.meta.store(lead)
	if st == nil {
		return nil, splitRefused(errNoLeader.Error(), nil)
	}
	conn, err := s.dial(st.Address)
	if err != nil {
		return nil, splitRefused("split: dial the leader's store: "+err.Error(), nil)
	}
	defer conn.Close()
	r, err := rangekvpb.NewAdminClient(conn).SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: d.RangeId, SplitKey: req.Key, NewRangeId: newID})
	if err != nil {
		return nil, splitTransportError(err)
	}
	if r.Error != nil {
		return nil, splitRangeError(r.Error)
	}
	// Record the new layout at once (the heartbeats will confirm it).
	cmd := &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutRanges{PutRanges: &rangekvpb.PutRangesCmd{Ranges: []*rangekvpb.RangeDescriptor{r.Left, r.Right}}}}
	if _, err := s.group.propose(ctx, cmd); err != nil {
		// The split applied on the store: it succeeded. The range
		// heartbeats bring placement's layout up to date.
		s.log.Warn("split applied but not recorded yet; heartbeats will record it", "range", d.RangeId, "err", err)
	}
	return &rangekvpb.SplitResponse{Left: r.Left, Right: r.Right}, nil
}

func (a *api) MoveReplica(_ context.Context, req *rangekvpb.MoveReplicaRequest) (*rangekvpb.OperatorResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.OperatorResponse{Error: e}, nil
	}
	op, err := a.s.ops().addMove(req.RangeId, req.FromStoreId, req.ToStoreId, a.s.now())
	if err != nil {
		return nil, err
	}
	return &rangekvpb.OperatorResponse{Operator: op}, nil
}

func (a *api) TransferLeader(_ context.Context, req *rangekvpb.TransferLeaderOpRequest) (*rangekvpb.OperatorResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.OperatorResponse{Error: e}, nil
	}
	op, err := a.s.ops().addTransfer(req.RangeId, req.ToStoreId, a.s.now())
	if err != nil {
		return nil, err
	}
	return &rangekvpb.OperatorResponse{Operator: op}, nil
}

func (a *api) GetOperator(_ context.Context, req *rangekvpb.GetOperatorRequest) (*rangekvpb.OperatorResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.OperatorResponse{Error: e}, nil
	}
	op := a.s.ops().get(req.OperatorId)
	if op == nil {
		return nil, status.Errorf(codes.NotFound, "operator_id: no operator %d on this leader", req.OperatorId)
	}
	return &rangekvpb.OperatorResponse{Operator: op}, nil
}

func (a *api) Rebalance(_ context.Context, req *rangekvpb.RebalanceRequest) (*rangekvpb.RebalanceResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.RebalanceResponse{Error: e}, nil
	}
	return &rangekvpb.RebalanceResponse{Operators: a.s.scheduleOnce(!req.DryRun)}, nil
}

func (a *api) OperatorHistory(_ context.Context, req *rangekvpb.OperatorHistoryRequest) (*rangekvpb.OperatorHistoryResponse, error) {
	if e := a.s.checkLeader(req.Header); e != nil {
		return &rangekvpb.OperatorHistoryResponse{Error: e}, nil
	}
	return &rangekvpb.OperatorHistoryResponse{Operators: a.s.ops().history(req.RangeId, int(req.Limit))}, nil
}

// Split outcomes the caller can act on, as gRPC statuses whose detail is
// the store's RangeError:
//   - codes.Aborted: the split was refused before it could apply (the
//     leader moved, the range changed or is busy, no leader is known yet);
//     retrying is safe;
//   - codes.Unknown with a RangeError detail holding AmbiguousResult: the
//     split may or may not have applied (the store's proposal timed out or
//     lost leadership, or the store's answer was lost after the request
//     went out); check the layout before retrying.
//
// Other statuses (InvalidArgument for a key that already starts a range,
// ...) pass through unchanged.

// splitRefused is a definite non-application (codes.Aborted).
func splitRefused(msg string, re *rangekvpb.RangeError) error {
	if re == nil {
		re = &rangekvpb.RangeError{Message: msg, ServerBusy: &rangekvpb.ServerBusy{Reason: msg}}
	}
	return withRangeError(codes.Aborted, "split refused, nothing applied; retry: "+msg, re)
}

// splitAmbiguous is an unknown outcome (codes.Unknown + AmbiguousResult).
func splitAmbiguous(msg string) error {
	return withRangeError(codes.Unknown, "split outcome unknown (it may or may not have applied): "+msg,
		&rangekvpb.RangeError{Message: msg, AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: msg}})
}

// splitRangeError maps a store's range error.
func splitRangeError(re *rangekvpb.RangeError) error {
	if re.AmbiguousResult != nil {
		return splitAmbiguous(re.Message)
	}
	return splitRefused(re.Message, re)
}

// splitTransportError maps a failed SplitRange call: once the request may
// have reached the store, a lost answer is ambiguous.
func splitTransportError(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return splitAmbiguous(status.Convert(err).Message())
	}
	return err
}

func withRangeError(c codes.Code, msg string, re *rangekvpb.RangeError) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(re); err == nil {
		st = d
	}
	return st.Err()
}
