// The placement server: lifecycle, the gRPC API (join, heartbeats,
// routing, ID allocation, admin) and redirects from non-leaders.

package placement

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/logadapt"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

// Server is one placement member.
type Server struct {
	cfg     Config
	log     *slog.Logger
	db      *pebble.DB
	group   *group
	trans   *transport
	metrics *metrics
	reg     *prometheus.Registry
	now     func() time.Time

	// Leader-only state, reset on every leadership change.
	leaderMu struct {
		sync.Mutex
		cluster *clusterState
		ops     *controller
		// ID pool reserved through Raft: [next, end).
		idNext, idEnd uint64
	}
	// idRefill holds a token while a caller reserves a new ID batch
	// (allocIDs): one refill at a time.
	idRefill chan struct{}
	// joinSem admits one join at a time (a buffered channel of one, not a
	// mutex: a join holds it across a read barrier, a Raft round trip, and
	// a waiter gives up with its context; the simulation also needs every
	// waiter durably blocked, which a goroutine waiting on a sync.Mutex
	// is not).
	joinSem chan struct{}

	grpcServer *grpc.Server
	listener   net.Listener
	httpServer *http.Server
	httpLn     net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  atomic.Bool
	once   sync.Once
}

// Open opens the member's engine and Raft state.
func Open(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	cfg = cfg.withSeams()
	s := &Server{cfg: cfg, log: cfg.Logger.With("placement", cfg.ID), reg: cfg.Registry, now: cfg.Clock.Now,
		idRefill: make(chan struct{}, 1), joinSem: make(chan struct{}, 1)}
	s.metrics = newMetrics(cfg.Registry)
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: logadapt.Pebble{L: s.log}}
	// vfs.Default is left for Pebble to fill in: it wraps it with its
	// disk-health checks (Options.WithFSDefaults).
	if cfg.FS != vfs.Default {
		opts.FS = cfg.FS
	}
	db, err := pebble.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("open placement engine in %q: %w", cfg.DataDir, err)
	}
	s.db = db
	if s.group, err = openGroup(s, db); err != nil {
		db.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.trans = &transport{s: s, peers: map[uint64]chan *pb.Message{}, ctx: s.ctx}
	s.resetLeaderState(false)
	return s, nil
}

func (s *Server) dial(addr string) (grpcnet.Conn, error) {
	return s.cfg.Network.Dial(addr, tlsconfig.DialOption(s.cfg.TLS),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
}

// Start serves and starts the Raft group.
func (s *Server) Start() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = s.cfg.Network.Listen(s.cfg.Addr); err != nil {
			return fmt.Errorf("addr: listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.listener = ln
	s.grpcServer = grpc.NewServer(append(tlsconfig.ServerOptions(s.cfg.TLS), grpc.MaxRecvMsgSize(256<<20), grpc.MaxSendMsgSize(256<<20))...)
	reg := grpcnet.Registrar(s.grpcServer, ln)
	rangekvpb.RegisterPlacementServer(reg, &api{s: s})
	rangekvpb.RegisterPlacementRaftServer(reg, &raftServer{s: s})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpcServer.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server stopped", "err", err)
		}
	}()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.group.run(s.ctx) }()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.scheduleLoop(s.ctx) }()
	if s.cfg.HTTPAddr != "" {
		if err := s.startHTTP(); err != nil {
			s.Stop()
			return err
		}
	}
	s.ready.Store(true)
	s.log.Info("placement member started", "addr", ln.Addr().String(), "members", len(s.cfg.InitialCluster))
	return nil
}

// Addr is the bound gRPC address.
func (s *Server) Addr() string {
	if s.listener == nil {
		return s.cfg.Addr
	}
	return s.listener.Addr().String()
}

// HTTPAddr is the bound HTTP address ("" when disabled).
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// IsLeader reports whether this member leads the placement group.
func (s *Server) IsLeader() bool { return s.group.isLeader() }

// Stop stops every goroutine and closes the engine.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.ready.Store(false)
		if s.httpServer != nil {
			ctx, cancel := clock.WithTimeout(context.Background(), s.cfg.Clock, time.Second)
			_ = s.httpServer.Shutdown(ctx)
			cancel()
		}
		if s.grpcServer != nil {
			stopped := make(chan struct{})
			go func() { s.grpcServer.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-s.cfg.Clock.After(500 * time.Millisecond):
				s.grpcServer.Stop()
				<-stopped
			}
		}
		s.cancel()
		s.wg.Wait()
		s.trans.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.log.Error("close engine", "err", err)
		}
		s.log.Info("placement member stopped")
	})
}

func (s *Server) fatal(what string, err error) {
	s.log.Error("fatal", "op", what, "err", err)
	panic(fmt.Sprintf("placement %d: %s: %v", s.cfg.ID, what, err))
}

// onLeaderChange resets the leader-only state; called from the Raft loop.
func (s *Server) onLeaderChange(isLeader bool) {
	s.metrics.isLeader.Set(map[bool]float64{true: 1, false: 0}[isLeader])
	s.resetLeaderState(isLeader)
	if isLeader {
		s.log.Info("became placement leader")
	}
}

func (s *Server) resetLeaderState(bool) {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	s.leaderMu.cluster = newClusterState(s.now())
	s.leaderMu.ops = newController(s)
	s.leaderMu.idNext, s.leaderMu.idEnd = 0, 0
}

func (s *Server) cluster() *clusterState {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderMu.cluster
}

func (s *Server) ops() *controller {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderMu.ops
}

// allocIDs hands out count consecutive IDs from the pool, reserving a new
// batch through Raft when it runs out.
//
// One refill at a time: a caller that waited for another's takes from the
// batch that one reserved. Two refills at once each set the pool when
// their proposal returned, the later one winning, so which batch the next
// IDs came from was the order their goroutines ran in (the simulation's
// seed 1125 split off a range as 1003 or 2002), and one batch was wasted.
func (s *Server) allocIDs(ctx context.Context, count uint64) (uint64, error) {
	if first, ok := s.takeIDs(count); ok {
		return first, nil
	}
	select {
	case s.idRefill <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.idRefill }()
	if first, ok := s.takeIDs(count); ok {
		return first, nil
	}
	batch := max(s.cfg.IDBatch, count)
	v, err := s.group.propose(ctx, &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_AllocIds{AllocIds: &rangekvpb.AllocIDsCmd{Count: batch}}})
	if err != nil {
		return 0, err
	}
	first := v.(uint64)
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	s.leaderMu.idNext, s.leaderMu.idEnd = first+count, first+batch
	return first, nil
}

// takeIDs takes count IDs from the pool, if it holds them.
func (s *Server) takeIDs(count uint64) (uint64, bool) {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	if s.leaderMu.idEnd-s.leaderMu.idNext < count || s.leaderMu.idNext == 0 {
		return 0, false
	}
	first := s.leaderMu.idNext
	s.leaderMu.idNext += count
	s.leaderMu.idEnd = max(s.leaderMu.idEnd, s.leaderMu.idNext)
	return first, true
}

// randomClusterID draws a new cluster's ID from Config.Rand.
func (s *Server) randomClusterID() (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]) | 1, nil
}

// notLeader builds the redirect error for a non-leader member.
func (s *Server) notLeader() *rangekvpb.PlacementError {
	lead := s.group.leader.Load()
	e := &rangekvpb.PlacementNotLeader{LeaderId: lead, LeaderAddress: s.cfg.InitialCluster[lead]}
	return &rangekvpb.PlacementError{Message: "not the placement leader", NotLeader: e}
}

// checkLeader returns a redirect when this member does not lead, and
// checks the caller's cluster ID.
func (s *Server) checkLeader(h *rangekvpb.PlacementHeader) *rangekvpb.PlacementError {
	if !s.group.isLeader() {
		return s.notLeader()
	}
	if cid := h.GetClusterId(); cid != 0 {
		if rec := s.group.meta.clusterRecord(); rec.Bootstrapped && rec.ClusterId != cid {
			return &rangekvpb.PlacementError{Message: fmt.Sprintf("caller belongs to cluster %x, this is cluster %x", cid, rec.ClusterId), ClusterMismatch: true}
		}
	}
	return nil
}

// placementErr turns a proposal's error into the response error. A command
// that was certainly not applied because this member lost leadership (or
// raft dropped it) is reported as a redirect, which every caller retries on
// the next member; anything else, ambiguous outcomes included, is returned
// as is.
func (s *Server) placementErr(err error) *rangekvpb.PlacementError {
	var nl *rangeraft.NotLeaderError
	if errors.Is(err, rangeraft.ErrStaleCommand) || errors.Is(err, rangeraft.ErrBusy) || errors.As(err, &nl) {
		pe := s.notLeader()
		pe.Message = "placement leadership changed; not applied: " + err.Error()
		if pe.NotLeader.GetLeaderAddress() == s.cfg.InitialCluster[s.cfg.ID] {
			// We are (again) the leader by now: no redirect target, the
			// caller retries after a backoff.
			pe.NotLeader = &rangekvpb.PlacementNotLeader{}
		}
		return pe
	}
	return &rangekvpb.PlacementError{Message: err.Error()}
}

// join registers a store, bootstrapping the cluster with the first one.
func (s *Server) join(ctx context.Context, req *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	if e := s.checkLeader(nil); e != nil {
		return &rangekvpb.JoinResponse{Error: e}, nil
	}
	if req.Address == "" {
		return nil, invalid("address: must be set")
	}
	select {
	case s.joinSem <- struct{}{}:
	case <-ctx.Done():
		return &rangekvpb.JoinResponse{Error: s.placementErr(ctx.Err())}, nil
	}
	defer func() { <-s.joinSem }()
	if err := s.group.readBarrier(ctx); err != nil {
		return &rangekvpb.JoinResponse{Error: s.placementErr(err)}, nil
	}
	rec := s.group.meta.clusterRecord()
	if req.ClusterId != 0 && rec.Bootstrapped && req.ClusterId != rec.ClusterId {
		return &rangekvpb.JoinResponse{Error: &rangekvpb.PlacementError{ClusterMismatch: true,
			Message: fmt.Sprintf("the store's data directory belongs to cluster %x, but these placement members run cluster %x", req.ClusterId, rec.ClusterId)}}, nil
	}
	if req.StoreId != 0 && !rec.Bootstrapped {
		return &rangekvpb.JoinResponse{Error: &rangekvpb.PlacementError{ClusterMismatch: true,
			Message: fmt.Sprintf("the store has identity %d from another cluster, but these placement members have no cluster yet", req.StoreId)}}, nil
	}
	desc := &rangekvpb.StoreDescriptor{StoreId: req.StoreId, Address: req.Address, Labels: req.Labels}
	if req.StoreId == 0 {
		id, err := s.allocIDs(ctx, 1)
		if err != nil {
			return &rangekvpb.JoinResponse{Error: s.placementErr(err)}, nil
		}
		desc.StoreId = id
	} else if s.group.meta.store(req.StoreId) == nil {
		return &rangekvpb.JoinResponse{Error: &rangekvpb.PlacementError{ClusterMismatch: true,
			Message: fmt.Sprintf("store %d is not a member of cluster %x", req.StoreId, rec.ClusterId)}}, nil
	}
	resp := &rangekvpb.JoinResponse{StoreId: desc.StoreId}
	if !rec.Bootstrapped {
		cid, err := s.randomClusterID()
		if err != nil {
			return &rangekvpb.JoinResponse{Error: &rangekvpb.PlacementError{Message: "draw a cluster ID: " + err.Error()}}, nil
		}
		r1 := &rangekvpb.RangeDescriptor{RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1},
			Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: desc.StoreId}}, NextReplicaId: 2}
		cmd := &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_Bootstrap{Bootstrap: &rangekvpb.BootstrapCmd{
			ClusterId: cid, Store: desc, Range: r1}}}
		if _, err := s.group.propose(ctx, cmd); err != nil {
			return &rangekvpb.JoinResponse{Error: s.placementErr(err)}, nil
		}
		resp.BootstrapRange = r1
		s.log.Info("cluster bootstrapped", "store", desc.StoreId)
	} else if old := s.group.meta.store(desc.StoreId); old == nil || old.Address != desc.Address || !proto.Equal(&rangekvpb.StoreDescriptor{Labels: old.Labels}, &rangekvpb.StoreDescriptor{Labels: desc.Labels}) {
		if _, err := s.group.propose(ctx, &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutStore{PutStore: &rangekvpb.PutStoreCmd{Store: desc}}}); err != nil {
			return &rangekvpb.JoinResponse{Error: s.placementErr(err)}, nil
		}
	}
	// The first store crashed before creating range 1: tell it again.
	if r1 := s.group.meta.rangeByID(1); req.Empty && r1 != nil && r1.Epoch.GetVersion() == 1 && r1.Epoch.GetConfVer() == 1 &&
		len(r1.Replicas) == 1 && r1.Replicas[0].StoreId == desc.StoreId {
		resp.BootstrapRange = r1
	}
	resp.ClusterId = s.group.meta.clusterRecord().ClusterId
	s.cluster().storeHeartbeat(&rangekvpb.StoreStats{StoreId: desc.StoreId}, s.now())
	return resp, nil
}
