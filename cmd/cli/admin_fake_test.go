package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// fakeNow is the clock of the admin golden tests.
var fakeNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func unixMs(t time.Time) int64 { return t.UnixMilli() }

// fakeAdmin is the in-memory twin of router.Admin: a small cluster whose
// operators advance one step per Operator call.
type fakeAdmin struct {
	mu       sync.Mutex
	status   *rangekvpb.ClusterStatusResponse
	stores   []*rangekvpb.StoreInfo
	routes   []*rangekvpb.RouteInfo
	replicas map[uint64][]*rangekvpb.ReplicaStatus // by store
	storeErr map[uint64]error                      // StoreReplicas fails
	ops      map[uint64]*rangekvpb.OperatorInfo
	history  []*rangekvpb.OperatorInfo
	nextOp   uint64
	nextID   uint64
	// abortAt, when > 0, aborts operators at that step.
	abortAt int
	// forget makes Operator answer NotFound (a new placement leader).
	forget bool
	// splitErr is returned by Split once (after splitting, with
	// splitErrAfter: an answer lost after the split happened).
	splitErr      error
	splitErrAfter bool
	// rebalance is what Rebalance proposes.
	rebalance []*rangekvpb.OperatorInfo
	// pageCalls and storeCalls record RangesPage and StoreReplicas calls;
	// pageErrAt, when > 0, fails that RangesPage call (1: the first).
	pageCalls, storeCalls []string
	pageErrAt             int
}

func desc(id uint64, start, end string, ver, conf uint64, stores ...uint64) *rangekvpb.RangeDescriptor {
	d := &rangekvpb.RangeDescriptor{RangeId: id, StartKey: []byte(start), EndKey: []byte(end), Epoch: &rangekvpb.RangeEpoch{Version: ver, ConfVer: conf}}
	for i, s := range stores {
		d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(i + 1), StoreId: s})
	}
	return d
}

func newFakeAdmin() *fakeAdmin {
	f := &fakeAdmin{replicas: map[uint64][]*rangekvpb.ReplicaStatus{}, storeErr: map[uint64]error{}, ops: map[uint64]*rangekvpb.OperatorInfo{}, nextOp: 10, nextID: 20}
	labels := []map[string]string{{"zone": "a", "host": "h1"}, {"zone": "b"}, nil, {"zone": "c"}}
	for i := uint64(1); i <= 4; i++ {
		s := &rangekvpb.StoreInfo{Store: &rangekvpb.StoreDescriptor{StoreId: i, Address: fmt.Sprintf("127.0.0.1:750%d", i), Labels: labels[i-1]},
			Stats:               &rangekvpb.StoreStats{StoreId: i, Capacity: 100 << 30, Available: 60 << 30, Used: i * 3 << 20, ReplicaCount: 3, LeaderCount: uint32(i % 2)},
			LastHeartbeatUnixMs: unixMs(fakeNow.Add(-time.Second))}
		if i == 4 {
			s.State = rangekvpb.StoreState_STORE_DOWN
			s.Stats.ReplicaCount = 0
			s.DownSinceUnixMs = unixMs(fakeNow.Add(-45 * time.Second))
			s.LastHeartbeatUnixMs = unixMs(fakeNow.Add(-55 * time.Second))
		}
		f.stores = append(f.stores, s)
	}
	f.routes = []*rangekvpb.RouteInfo{
		{Descriptor_: desc(1, "", "m", 2, 5, 1, 2, 3), LeaderStoreId: 1},
		{Descriptor_: desc(7, "m", "user 9", 3, 5, 1, 2, 3), LeaderStoreId: 2},
		{Descriptor_: desc(9, "user 9", "", 3, 6, 2, 3), LeaderStoreId: 0},
	}
	f.routes[2].Descriptor_.Replicas = append(f.routes[2].Descriptor_.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: 4, StoreId: 1, Role: rangekvpb.ReplicaRole_LEARNER})
	for _, r := range f.routes {
		for _, rep := range r.Descriptor_.Replicas {
			st := "StateFollower"
			if rep.StoreId == r.LeaderStoreId {
				st = "StateLeader"
			}
			f.replicas[rep.StoreId] = append(f.replicas[rep.StoreId], &rangekvpb.ReplicaStatus{Descriptor_: r.Descriptor_, ReplicaId: rep.ReplicaId,
				RaftState: st, Term: 6, FirstIndex: 11, LastIndex: 42, CommitIndex: 42, AppliedIndex: 41, Quiescent: rep.StoreId != 2,
				Initialized: true, ApproximateSize: 1536 * r.Descriptor_.RangeId})
		}
	}
	f.status = &rangekvpb.ClusterStatusResponse{ClusterId: 0x9b35d0cc613340b9, Bootstrapped: true,
		Members: []*rangekvpb.PlacementMember{{Id: 1, Address: "127.0.0.1:7401", Reachable: true}, {Id: 2, Address: "127.0.0.1:7402", Leader: true, Reachable: true},
			{Id: 3, Address: "127.0.0.1:7403"}},
		RangeCount: 3, UnderReplicated: []uint64{9}, Leaderless: []uint64{9},
		Operators: []*rangekvpb.OperatorInfo{{Id: 3, RangeId: 9, Kind: "repair-add", Steps: []string{"add learner on store 1", "promote learner on store 1"},
			CurrentStep: 1, State: "running", CreatedUnixMs: unixMs(fakeNow.Add(-2500 * time.Millisecond))}}}
	f.history = []*rangekvpb.OperatorInfo{{Id: 2, RangeId: 1, Kind: "transfer-leader", Steps: []string{"transfer leader to store 1"}, CurrentStep: 1,
		State: "finished", CreatedUnixMs: unixMs(fakeNow.Add(-time.Minute)), FinishedUnixMs: unixMs(fakeNow.Add(-time.Minute + 800*time.Millisecond))}}
	return f
}

func (f *fakeAdmin) ClusterStatus(context.Context) (*rangekvpb.ClusterStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := proto.Clone(f.status).(*rangekvpb.ClusterStatusResponse)
	st.Stores = f.stores
	return st, nil
}

func (f *fakeAdmin) Stores(context.Context) ([]*rangekvpb.StoreInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*rangekvpb.StoreInfo(nil), f.stores...), nil
}

func (f *fakeAdmin) Ranges(_ context.Context, start, end []byte, limit int) ([]*rangekvpb.RouteInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*rangekvpb.RouteInfo
	for _, r := range f.routes {
		d := r.Descriptor_
		if (len(d.EndKey) == 0 || bytes.Compare(d.EndKey, start) > 0) && (len(end) == 0 || bytes.Compare(d.StartKey, end) < 0) {
			out = append(out, r)
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// RangesPage pages through Ranges; its token is the index of the page's
// first range among those overlapping [start, end), and it records each
// call in pageCalls.
func (f *fakeAdmin) RangesPage(ctx context.Context, start, end []byte, token string, limit int) ([]*rangekvpb.RouteInfo, string, error) {
	all, err := f.Ranges(ctx, start, end, 0)
	if err != nil {
		return nil, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageCalls = append(f.pageCalls, fmt.Sprintf("token %q limit %d", token, limit))
	if f.pageErrAt > 0 && len(f.pageCalls) == f.pageErrAt {
		return nil, "", status.Error(codes.Unavailable, "placement: connection refused")
	}
	i := 0
	if token != "" {
		if i, err = strconv.Atoi(token); err != nil {
			return nil, "", status.Errorf(codes.InvalidArgument, "page_token: %q", token)
		}
	}
	if limit == 0 {
		limit = 1000
	}
	j := min(len(all), i+limit)
	next := ""
	if j < len(all) {
		next = strconv.Itoa(j)
	}
	return all[i:j], next, nil
}

func (f *fakeAdmin) RangeForKey(_ context.Context, key []byte) (*rangekvpb.RouteInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.routes {
		d := r.Descriptor_
		if bytes.Compare(key, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(key, d.EndKey) < 0) {
			return r, nil
		}
	}
	return nil, &router.NotFoundError{What: fmt.Sprintf("range holding key %q", key)}
}

func (f *fakeAdmin) RangeByID(_ context.Context, id uint64) (*rangekvpb.RouteInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.routes {
		if r.Descriptor_.RangeId == id {
			return r, nil
		}
	}
	return nil, &router.NotFoundError{What: fmt.Sprintf("range %d", id)}
}

func (f *fakeAdmin) StoreReplicas(_ context.Context, store uint64, rangeIDs ...uint64) ([]*rangekvpb.ReplicaStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storeCalls = append(f.storeCalls, fmt.Sprintf("store %d ranges %v", store, rangeIDs))
	if err := f.storeErr[store]; err != nil {
		return nil, err
	}
	if len(rangeIDs) == 0 {
		return f.replicas[store], nil
	}
	var out []*rangekvpb.ReplicaStatus
	for _, r := range f.replicas[store] {
		if slices.Contains(rangeIDs, r.GetDescriptor_().GetRangeId()) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeAdmin) Split(_ context.Context, key []byte) (*rangekvpb.RangeDescriptor, *rangekvpb.RangeDescriptor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.splitErr; err != nil && !f.splitErrAfter {
		f.splitErr = nil
		return nil, nil, err
	}
	for i, r := range f.routes {
		d := r.Descriptor_
		if bytes.Compare(key, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(key, d.EndKey) < 0) {
			if bytes.Equal(key, d.StartKey) {
				return nil, nil, status.Errorf(codes.InvalidArgument, "split_key: %q is the range's start key", key)
			}
			left, right := proto.Clone(d).(*rangekvpb.RangeDescriptor), proto.Clone(d).(*rangekvpb.RangeDescriptor)
			left.EndKey, left.Epoch.Version = key, d.Epoch.Version+1
			f.nextID++
			right.RangeId, right.StartKey, right.Epoch.Version = f.nextID, key, d.Epoch.Version+1
			f.routes = append(f.routes[:i], append([]*rangekvpb.RouteInfo{{Descriptor_: left, LeaderStoreId: r.LeaderStoreId}, {Descriptor_: right}}, f.routes[i+1:]...)...)
			if err := f.splitErr; err != nil {
				f.splitErr = nil
				return nil, nil, err
			}
			return left, right, nil
		}
	}
	return nil, nil, &router.PlacementError{Op: "split", Message: "no range holds that key", Permanent: true}
}

func (f *fakeAdmin) startOp(rangeID uint64, kind string, steps ...string) *rangekvpb.OperatorInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextOp++
	o := &rangekvpb.OperatorInfo{Id: f.nextOp, RangeId: rangeID, Kind: kind, Steps: steps, State: "running", CreatedUnixMs: unixMs(fakeNow)}
	f.ops[o.Id] = o
	return proto.Clone(o).(*rangekvpb.OperatorInfo)
}

func (f *fakeAdmin) MoveReplica(_ context.Context, rangeID, from, to uint64) (*rangekvpb.OperatorInfo, error) {
	if rangeID == 99 {
		return nil, status.Errorf(codes.InvalidArgument, "range_id: no range %d", rangeID)
	}
	return f.startOp(rangeID, "move-replica", fmt.Sprintf("add learner on store %d", to), fmt.Sprintf("promote learner on store %d", to),
		fmt.Sprintf("transfer leader to store %d", to), fmt.Sprintf("remove replica on store %d", from)), nil
}

func (f *fakeAdmin) TransferLeader(_ context.Context, rangeID, to uint64) (*rangekvpb.OperatorInfo, error) {
	return f.startOp(rangeID, "transfer-leader", fmt.Sprintf("transfer leader to store %d", to)), nil
}

func (f *fakeAdmin) Rebalance(_ context.Context, dryRun bool) ([]*rangekvpb.OperatorInfo, error) {
	var out []*rangekvpb.OperatorInfo
	for _, o := range f.rebalance {
		if dryRun {
			c := proto.Clone(o).(*rangekvpb.OperatorInfo)
			c.State, c.CreatedUnixMs = "proposed", unixMs(fakeNow)
			out = append(out, c)
			continue
		}
		out = append(out, f.startOp(o.RangeId, o.Kind, o.Steps...))
	}
	return out, nil
}

// Operator advances the operator one step per call.
func (f *fakeAdmin) Operator(_ context.Context, id uint64) (*rangekvpb.OperatorInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.ops[id]
	if o == nil || f.forget {
		return nil, &router.NotFoundError{What: fmt.Sprintf("operator %d", id)}
	}
	if o.State == "running" {
		o.CurrentStep++
		switch {
		case f.abortAt > 0 && int(o.CurrentStep) == f.abortAt:
			o.State, o.Reason = "aborted", "the range split (epoch version changed)"
			o.FinishedUnixMs = unixMs(fakeNow.Add(time.Duration(o.CurrentStep) * 700 * time.Millisecond))
		case int(o.CurrentStep) == len(o.Steps):
			o.State = "finished"
			o.FinishedUnixMs = unixMs(fakeNow.Add(time.Duration(o.CurrentStep) * 700 * time.Millisecond))
		}
	}
	return proto.Clone(o).(*rangekvpb.OperatorInfo), nil
}

func (f *fakeAdmin) OperatorHistory(_ context.Context, rangeID uint64, limit int) ([]*rangekvpb.OperatorInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*rangekvpb.OperatorInfo
	for _, o := range f.history {
		if rangeID == 0 || o.RangeId == rangeID {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id > out[j].Id })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CompactLog truncates range id's log up to its leader's applied index on
// every replica whose store answers (the truncation entry is appended).
func (f *fakeAdmin) CompactLog(_ context.Context, id uint64) (*rangekvpb.CompactLogResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ri *rangekvpb.RouteInfo
	for _, r := range f.routes {
		if r.Descriptor_.RangeId == id {
			ri = r
		}
	}
	if ri == nil {
		return nil, &router.NotFoundError{What: fmt.Sprintf("range %d", id)}
	}
	var resp *rangekvpb.CompactLogResponse
	for store, reps := range f.replicas {
		for i, s := range reps {
			if s.Descriptor_.RangeId != id || f.storeErr[store] != nil {
				continue
			}
			n := proto.Clone(s).(*rangekvpb.ReplicaStatus)
			idx := n.AppliedIndex
			n.FirstIndex, n.LastIndex, n.CommitIndex, n.AppliedIndex = idx+1, n.LastIndex+1, n.LastIndex+1, n.LastIndex+1
			reps[i] = n
			if store == ri.LeaderStoreId {
				resp = &rangekvpb.CompactLogResponse{TruncatedIndex: idx, FirstIndexBefore: s.FirstIndex, LastIndexBefore: s.LastIndex,
					FirstIndexAfter: n.FirstIndex, LastIndexAfter: n.LastIndex}
			}
		}
	}
	if resp == nil {
		return nil, fmt.Errorf("compact log of range %d: no leader answered", id)
	}
	return resp, nil
}

func (f *fakeAdmin) Close() error { return nil }

// runAdmin runs the CLI with args against fake (and an in-memory KV
// client) and returns stdout, stderr and the exit code.
func runAdmin(t *testing.T, fake *fakeAdmin, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.newAdmin = func([]string, router.Options) (adminClient, error) { return fake, nil }
	a.newClient = func(clusterAddrs, router.Options) (kvClient, error) { return newFake(), nil }
	a.now = func() time.Time { return fakeNow }
	a.pollInterval = time.Millisecond
	code = a.execute(context.Background(), append([]string{"--placement", "127.0.0.1:7401"}, args...))
	if code != 0 && strings.Count(errb.String(), "\n") < 1 {
		t.Errorf("rangekv %s: exit %d without an error line", strings.Join(args, " "), code)
	}
	return out.String(), errb.String(), code
}
