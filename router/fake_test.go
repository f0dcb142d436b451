package router

// An in-memory twin of a cluster for router tests: fake stores (KV and
// Admin services) and fake placement members (the Placement service),
// served over gRPC on 127.0.0.1, sharing one state that tests change
// (split, move leadership, move replicas) and whose calls they count.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/kvmux"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// fakeCluster is the shared state.
type fakeCluster struct {
	t  *testing.T
	mu sync.Mutex
	// ranges is the truth, sorted by start key.
	ranges  []*rangekvpb.RangeDescriptor
	leaders map[uint64]uint64 // range ID → store ID
	data    map[string][]byte
	stores  map[uint64]*fakeStore
	pds     []*fakePD
	// pdStale, when set, is what placement answers instead of the truth.
	pdStale []*rangekvpb.RouteInfo
	// inject, when set, may answer a store request with a range error, a
	// gRPC error, or a delay (it runs without mu held).
	inject func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error)
	// pdSplitErr, when set, may fail a placement Split.
	pdSplitErr func() error
	// breaks, when not empty, breaks the next BatchCommands streams a
	// store serves, one each: the stream reads its first message, runs
	// every call in it (writes apply) and then fails with the error
	// instead of answering.
	breaks []error
	calls  map[string]int
	log    []string // "s1 put k", "pd GetRange k", in order
	nextID uint64
}

func newFakeCluster(t *testing.T) *fakeCluster {
	return &fakeCluster{t: t, leaders: map[uint64]uint64{}, data: map[string][]byte{},
		stores: map[uint64]*fakeStore{}, calls: map[string]int{}, nextID: 100}
}

func (fc *fakeCluster) count(who, op string, key []byte) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.calls[who+" "+op]++
	fc.calls[who]++
	fc.log = append(fc.log, strings.TrimSpace(fmt.Sprintf("%s %s %s", who, op, key)))
}

// setInject sets (or with nil clears) the injected store behaviour.
func (fc *fakeCluster) setInject(f func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error)) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.inject = f
}

// takeLog returns the calls since the last takeLog.
func (fc *fakeCluster) takeLog() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	l := fc.log
	fc.log = nil
	return l
}

func serve(t *testing.T, register func(*grpc.Server)) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go s.Serve(ln)
	var once sync.Once
	stop := func() { once.Do(s.Stop) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// addStore starts a fake store with the given ID.
func (fc *fakeCluster) addStore(id uint64) *fakeStore {
	s := &fakeStore{fc: fc, id: id}
	s.addr, s.stop = serve(fc.t, func(g *grpc.Server) {
		rangekvpb.RegisterKVServer(g, s)
		rangekvpb.RegisterAdminServer(g, &fakeAdmin{s: s})
	})
	fc.mu.Lock()
	fc.stores[id] = s
	fc.mu.Unlock()
	return s
}

// addPD starts a fake placement member; leader members answer, the others
// redirect to the first leader member.
func (fc *fakeCluster) addPD(leader bool) *fakePD {
	p := &fakePD{fc: fc, leader: leader}
	p.addr, p.stop = serve(fc.t, func(g *grpc.Server) { rangekvpb.RegisterPlacementServer(g, p) })
	fc.mu.Lock()
	fc.pds = append(fc.pds, p)
	fc.mu.Unlock()
	return p
}

func (fc *fakeCluster) pdAddrs() []string {
	var out []string
	for _, p := range fc.pds {
		out = append(out, p.addr)
	}
	return out
}

func (fc *fakeCluster) storeAddrs() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var ids []uint64
	for id := range fc.stores {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []string
	for _, id := range ids {
		out = append(out, fc.stores[id].addr)
	}
	return out
}

// setRanges replaces the layout: splits at the given keys, every range on
// the given stores, led by the first one. Range IDs are 1, 2, ...
func (fc *fakeCluster) setRanges(splits []string, stores ...uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.ranges = nil
	bounds := append([]string{""}, splits...)
	for i, start := range bounds {
		d := &rangekvpb.RangeDescriptor{RangeId: uint64(i + 1), StartKey: []byte(start), Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}}
		if i+1 < len(bounds) {
			d.EndKey = []byte(bounds[i+1])
		}
		for j, s := range stores {
			d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(j + 1), StoreId: s})
		}
		fc.ranges = append(fc.ranges, d)
		fc.leaders[d.RangeId] = stores[0]
	}
}

func (fc *fakeCluster) findLocked(key []byte) (int, *rangekvpb.RangeDescriptor) {
	for i, d := range fc.ranges {
		if containsKey(d, key) {
			return i, d
		}
	}
	return -1, nil
}

func (fc *fakeCluster) byIDLocked(id uint64) *rangekvpb.RangeDescriptor {
	for _, d := range fc.ranges {
		if d.RangeId == id {
			return d
		}
	}
	return nil
}

// split splits the range holding key at key (as a store would: the left
// keeps its ID, both get version+1, the right a new ID, same leader).
func (fc *fakeCluster) split(key string) (left, right *rangekvpb.RangeDescriptor) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	i, d := fc.findLocked([]byte(key))
	left = proto.Clone(d).(*rangekvpb.RangeDescriptor)
	right = proto.Clone(d).(*rangekvpb.RangeDescriptor)
	v := d.Epoch.Version + 1
	left.EndKey, left.Epoch.Version = []byte(key), v
	fc.nextID++
	right.RangeId, right.StartKey, right.Epoch.Version = fc.nextID, []byte(key), v
	fc.ranges = append(fc.ranges[:i], append([]*rangekvpb.RangeDescriptor{left, right}, fc.ranges[i+1:]...)...)
	fc.leaders[right.RangeId] = fc.leaders[left.RangeId]
	return left, right
}

// setLeader moves a range's leadership.
func (fc *fakeCluster) setLeader(rangeID, store uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.leaders[rangeID] = store
}

// moveReplica replaces a range's replica on from by one on to (conf_ver
// grows), and makes to the leader if from led.
func (fc *fakeCluster) moveReplica(rangeID, from, to uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for i, d := range fc.ranges {
		if d.RangeId != rangeID {
			continue
		}
		nd := proto.Clone(d).(*rangekvpb.RangeDescriptor)
		for _, r := range nd.Replicas {
			if r.StoreId == from {
				r.StoreId = to
			}
		}
		nd.Epoch.ConfVer++
		fc.ranges[i] = nd
		if fc.leaders[rangeID] == from {
			fc.leaders[rangeID] = to
		}
	}
}

func (fc *fakeCluster) routesLocked() []*rangekvpb.RouteInfo {
	if fc.pdStale != nil {
		return fc.pdStale
	}
	var out []*rangekvpb.RouteInfo
	for _, d := range fc.ranges {
		out = append(out, &rangekvpb.RouteInfo{Descriptor_: d, LeaderStoreId: fc.leaders[d.RangeId]})
	}
	return out
}

// fakeStore serves KV and Admin for one store.
type fakeStore struct {
	rangekvpb.UnimplementedKVServer
	fc   *fakeCluster
	id   uint64
	addr string
	stop func()
	// unaryOnly makes the store serve no BatchCommands stream (an older
	// store); streams counts the streams it served.
	unaryOnly bool
	streams   atomic.Int64
}

// BatchCommands serves the stream with the fake's unary handlers, as a
// real store does with its own.
func (s *fakeStore) BatchCommands(stream rangekvpb.KV_BatchCommandsServer) error {
	if s.unaryOnly {
		return status.Error(codes.Unimplemented, "unknown method BatchCommands")
	}
	s.streams.Add(1)
	s.fc.mu.Lock()
	var brk error
	if len(s.fc.breaks) > 0 {
		brk, s.fc.breaks = s.fc.breaks[0], s.fc.breaks[1:]
	}
	s.fc.mu.Unlock()
	if brk == nil {
		return kvmux.Serve(stream, s)
	}
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	for _, req := range msg.GetRequests() {
		s.run(stream.Context(), req)
	}
	return brk
}

// run runs one call of a stream, dropping its answer.
func (s *fakeStore) run(ctx context.Context, req *rangekvpb.BatchCommandsRequest_Request) {
	switch c := req.GetCmd().(type) {
	case *rangekvpb.BatchCommandsRequest_Request_Get:
		_, _ = s.Get(ctx, c.Get)
	case *rangekvpb.BatchCommandsRequest_Request_Put:
		_, _ = s.Put(ctx, c.Put)
	case *rangekvpb.BatchCommandsRequest_Request_Delete:
		_, _ = s.Delete(ctx, c.Delete)
	case *rangekvpb.BatchCommandsRequest_Request_Incr:
		_, _ = s.Incr(ctx, c.Incr)
	case *rangekvpb.BatchCommandsRequest_Request_Batch:
		_, _ = s.Batch(ctx, c.Batch)
	default:
		s.fc.t.Errorf("fake store: cannot run call %v", req)
	}
}

// breakStreams makes the next BatchCommands streams fail, one per error,
// after running the calls of their first message (see fakeCluster.breaks).
func (fc *fakeCluster) breakStreams(errs ...error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.breaks = append(fc.breaks, errs...)
}

func (s *fakeStore) who() string { return "s" + strconv.FormatUint(s.id, 10) }

// check routes a request like a store: range by ID (or by key when 0),
// epoch, key, leadership.
func (s *fakeStore) check(op string, h *rangekvpb.RequestHeader, key []byte) (*rangekvpb.RangeError, error) {
	s.fc.count(s.who(), op, key)
	s.fc.mu.Lock()
	inject := s.fc.inject
	s.fc.mu.Unlock()
	if inject != nil {
		if re, err := inject(s.id, op, key); re != nil || err != nil {
			return re, err
		}
	}
	fc := s.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var d *rangekvpb.RangeDescriptor
	if h.GetRangeId() == 0 {
		_, d = fc.findLocked(key)
	} else {
		d = fc.byIDLocked(h.GetRangeId())
	}
	if d == nil || !hasStore(d, s.id) {
		return &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: h.GetRangeId()}}, nil
	}
	if ep := h.GetEpoch(); ep != nil && ep.GetVersion() != d.Epoch.GetVersion() {
		e := &rangekvpb.EpochNotMatch{Current: []*rangekvpb.RangeDescriptor{d}}
		if _, o := fc.findLocked(key); o != nil && o != d && hasStore(o, s.id) {
			e.Current = append(e.Current, o)
		}
		return &rangekvpb.RangeError{Message: "epoch", EpochNotMatch: e}, nil
	}
	if !containsKey(d, key) {
		return &rangekvpb.RangeError{Message: "key not in range", KeyNotInRange: &rangekvpb.KeyNotInRange{Key: key, RangeId: d.RangeId}}, nil
	}
	// FOLLOWER and STALE reads are served by any replica, as a store does.
	anyReplica := (op == "get" || op == "scan") && (h.GetConsistency() == rangekvpb.ReadConsistency_FOLLOWER ||
		h.GetConsistency() == rangekvpb.ReadConsistency_STALE)
	if l := fc.leaders[d.RangeId]; l != s.id && !anyReplica {
		nl := &rangekvpb.NotLeader{RangeId: d.RangeId, LeaderStoreId: l}
		if ls := fc.stores[l]; ls != nil {
			nl.LeaderAddress = ls.addr
		}
		return &rangekvpb.RangeError{Message: "not leader", NotLeader: nl}, nil
	}
	return nil, nil
}

func (s *fakeStore) Get(_ context.Context, req *rangekvpb.GetRequest) (*rangekvpb.GetResponse, error) {
	re, err := s.check("get", req.Header, req.Key)
	if re != nil || err != nil {
		return &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	s.fc.mu.Lock()
	defer s.fc.mu.Unlock()
	v, ok := s.fc.data[string(req.Key)]
	return &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{}, Value: v, Found: ok}, nil
}

func (s *fakeStore) Put(_ context.Context, req *rangekvpb.PutRequest) (*rangekvpb.PutResponse, error) {
	re, err := s.check("put", req.Header, req.Key)
	if re != nil || err != nil {
		return &rangekvpb.PutResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	s.fc.mu.Lock()
	defer s.fc.mu.Unlock()
	s.fc.data[string(req.Key)] = req.Value
	return &rangekvpb.PutResponse{Header: &rangekvpb.ResponseHeader{}}, nil
}

func (s *fakeStore) Delete(_ context.Context, req *rangekvpb.DeleteRequest) (*rangekvpb.DeleteResponse, error) {
	re, err := s.check("delete", req.Header, req.Key)
	if re != nil || err != nil {
		return &rangekvpb.DeleteResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	s.fc.mu.Lock()
	defer s.fc.mu.Unlock()
	delete(s.fc.data, string(req.Key))
	return &rangekvpb.DeleteResponse{Header: &rangekvpb.ResponseHeader{}}, nil
}

func (s *fakeStore) Incr(_ context.Context, req *rangekvpb.IncrRequest) (*rangekvpb.IncrResponse, error) {
	re, err := s.check("incr", req.Header, req.Key)
	if re != nil || err != nil {
		return &rangekvpb.IncrResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	s.fc.mu.Lock()
	defer s.fc.mu.Unlock()
	n, _ := strconv.ParseInt(string(s.fc.data[string(req.Key)]), 10, 64)
	n += req.Delta
	s.fc.data[string(req.Key)] = []byte(strconv.FormatInt(n, 10))
	return &rangekvpb.IncrResponse{Header: &rangekvpb.ResponseHeader{}, Value: n}, nil
}

func (s *fakeStore) Scan(_ context.Context, req *rangekvpb.ScanRequest) (*rangekvpb.ScanResponse, error) {
	re, err := s.check("scan", req.Header, req.StartKey)
	if re != nil || err != nil {
		return &rangekvpb.ScanResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	fc := s.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_, d := fc.findLocked(req.StartKey)
	end, clipped := req.EndKey, false
	if len(d.EndKey) > 0 && (len(end) == 0 || bytes.Compare(end, d.EndKey) > 0) {
		end, clipped = d.EndKey, true
	}
	var keys []string
	for k := range fc.data {
		if k >= string(req.StartKey) && (len(end) == 0 || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	resp := &rangekvpb.ScanResponse{Header: &rangekvpb.ResponseHeader{}}
	for _, k := range keys {
		if req.Limit > 0 && len(resp.Pairs) == int(req.Limit) {
			resp.ResumeKey = []byte(k)
			return resp, nil
		}
		resp.Pairs = append(resp.Pairs, &rangekvpb.KeyValue{Key: []byte(k), Value: fc.data[k]})
	}
	if clipped {
		resp.ResumeKey = d.EndKey
	}
	return resp, nil
}

// Batch checks like a store: the range of the first key, then every key
// in it; a stale epoch answers the descriptors of every key's range.
func (s *fakeStore) Batch(_ context.Context, req *rangekvpb.BatchRequest) (*rangekvpb.BatchResponse, error) {
	if len(req.Ops) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ops: must hold at least one op")
	}
	re, err := s.check("batch", req.Header, req.Ops[0].Key)
	fc := s.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if re != nil && re.EpochNotMatch != nil {
		for _, op := range req.Ops {
			if _, o := fc.findLocked(op.Key); o != nil && hasStore(o, s.id) && !slices.Contains(re.EpochNotMatch.Current, o) {
				re.EpochNotMatch.Current = append(re.EpochNotMatch.Current, o)
			}
		}
	}
	if re != nil || err != nil {
		return &rangekvpb.BatchResponse{Header: &rangekvpb.ResponseHeader{Error: re}}, err
	}
	_, d := fc.findLocked(req.Ops[0].Key)
	for _, op := range req.Ops {
		if !containsKey(d, op.Key) {
			return &rangekvpb.BatchResponse{Header: &rangekvpb.ResponseHeader{Error: &rangekvpb.RangeError{Message: "key not in range",
				KeyNotInRange: &rangekvpb.KeyNotInRange{Key: op.Key, RangeId: d.RangeId}}}}, nil
		}
	}
	for _, op := range req.Ops {
		if op.Delete {
			delete(fc.data, string(op.Key))
		} else {
			fc.data[string(op.Key)] = op.Value
		}
	}
	return &rangekvpb.BatchResponse{Header: &rangekvpb.ResponseHeader{}}, nil
}

type fakeAdmin struct {
	rangekvpb.UnimplementedAdminServer
	s *fakeStore
}

func (a *fakeAdmin) ListRanges(context.Context, *rangekvpb.ListRangesRequest) (*rangekvpb.ListRangesResponse, error) {
	fc := a.s.fc
	fc.count(a.s.who(), "list-ranges", nil)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &rangekvpb.ListRangesResponse{StoreId: a.s.id}
	for _, d := range fc.ranges {
		if !hasStore(d, a.s.id) {
			continue
		}
		st := "StateFollower"
		if fc.leaders[d.RangeId] == a.s.id {
			st = "StateLeader"
		}
		resp.Replicas = append(resp.Replicas, &rangekvpb.ReplicaStatus{Descriptor_: d, Initialized: true, RaftState: st, Term: 7})
	}
	return resp, nil
}

// fakePD is one placement member.
type fakePD struct {
	rangekvpb.UnimplementedPlacementServer
	fc     *fakeCluster
	leader bool
	addr   string
	stop   func()
}

func (p *fakePD) redirect() *rangekvpb.PlacementError {
	if p.leader {
		return nil
	}
	for _, o := range p.fc.pds {
		if o.leader {
			return &rangekvpb.PlacementError{Message: "not the placement leader", NotLeader: &rangekvpb.PlacementNotLeader{LeaderAddress: o.addr}}
		}
	}
	return &rangekvpb.PlacementError{Message: "no leader", NotLeader: &rangekvpb.PlacementNotLeader{}}
}

// Split splits like placement: the injected pdSplitErr, when set, answers
// instead (and is consumed when it returns a non-nil error once per call).
func (p *fakePD) Split(_ context.Context, req *rangekvpb.SplitRequest) (*rangekvpb.SplitResponse, error) {
	p.fc.count("pd", "Split", req.Key)
	p.fc.mu.Lock()
	inject := p.fc.pdSplitErr
	p.fc.mu.Unlock()
	if inject != nil {
		if err := inject(); err != nil {
			return nil, err
		}
	}
	l, r := p.fc.split(string(req.Key))
	return &rangekvpb.SplitResponse{Left: l, Right: r}, nil
}

func (p *fakePD) GetRange(_ context.Context, req *rangekvpb.GetRangeRequest) (*rangekvpb.GetRangeResponse, error) {
	p.fc.count("pd", "GetRange", req.Key)
	if e := p.redirect(); e != nil {
		return &rangekvpb.GetRangeResponse{Error: e}, nil
	}
	p.fc.mu.Lock()
	defer p.fc.mu.Unlock()
	resp := &rangekvpb.GetRangeResponse{}
	routes := p.fc.routesLocked()
	for i, ri := range routes {
		d := ri.Descriptor_
		if (req.RangeId != 0 && d.RangeId == req.RangeId) || (req.RangeId == 0 && containsKey(d, req.Key)) {
			resp.Ranges = append(resp.Ranges, ri)
			if req.RangeId == 0 {
				for _, n := range routes[i+1:] {
					if len(resp.Ranges) > int(req.Neighbours) {
						break
					}
					resp.Ranges = append(resp.Ranges, n)
				}
			}
			break
		}
	}
	return resp, nil
}

func (p *fakePD) ScanRanges(_ context.Context, req *rangekvpb.ScanRangesRequest) (*rangekvpb.ScanRangesResponse, error) {
	p.fc.count("pd", "ScanRanges", req.StartKey)
	if e := p.redirect(); e != nil {
		return &rangekvpb.ScanRangesResponse{Error: e}, nil
	}
	p.fc.mu.Lock()
	defer p.fc.mu.Unlock()
	resp := &rangekvpb.ScanRangesResponse{}
	for _, ri := range p.fc.routesLocked() {
		d := ri.Descriptor_
		span := &rangekvpb.RangeDescriptor{StartKey: req.StartKey, EndKey: req.EndKey}
		if len(req.EndKey) == 0 || bytes.Compare(req.StartKey, req.EndKey) < 0 {
			if overlaps(d, span) {
				resp.Ranges = append(resp.Ranges, ri)
			}
		}
	}
	return resp, nil
}

func (p *fakePD) GetStore(_ context.Context, req *rangekvpb.GetStoreRequest) (*rangekvpb.GetStoreResponse, error) {
	p.fc.count("pd", "GetStore", []byte(strconv.FormatUint(req.StoreId, 10)))
	if e := p.redirect(); e != nil {
		return &rangekvpb.GetStoreResponse{Error: e}, nil
	}
	p.fc.mu.Lock()
	defer p.fc.mu.Unlock()
	s := p.fc.stores[req.StoreId]
	if s == nil {
		return &rangekvpb.GetStoreResponse{Error: &rangekvpb.PlacementError{Message: "no such store"}}, nil
	}
	return &rangekvpb.GetStoreResponse{Store: &rangekvpb.StoreInfo{Store: &rangekvpb.StoreDescriptor{StoreId: s.id, Address: s.addr}}}, nil
}

// newFake starts stores 1..n and one placement member (the leader), with
// the key space split at splits, every range on every store, led by
// store 1.
func newFake(t *testing.T, n int, splits ...string) *fakeCluster {
	fc := newFakeCluster(t)
	var ids []uint64
	for i := 1; i <= n; i++ {
		fc.addStore(uint64(i))
		ids = append(ids, uint64(i))
	}
	fc.addPD(true)
	fc.setRanges(splits, ids...)
	return fc
}

// client returns a placement client of fc with fast backoff.
func (fc *fakeCluster) client(t *testing.T) *Client {
	c, err := New(fc.pdAddrs(), Options{Seed: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitDisconnected waits until c's connection to addr is no longer up
// (the client noticed a store that stopped).
func waitDisconnected(t *testing.T, c *Client, addr string) {
	t.Helper()
	conn, err := c.conn(addr)
	if err != nil {
		t.Fatal(err)
	}
	cc := conn.(*grpc.ClientConn)
	deadline := time.Now().Add(5 * time.Second)
	for cc.GetState() == connectivity.Ready {
		if time.Now().After(deadline) {
			t.Fatalf("connection to %s still up 5s after its server stopped", addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// describeCache renders c's range cache.
func describeCache(c *Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.cache.describe()
}
