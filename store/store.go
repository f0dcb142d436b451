// The Store: its type, lifecycle (open, start, stop) and the goroutines it
// owns (workers, ticker, transport, servers, loops).

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

// Store hosts replicas of many ranges over one Pebble engine.
type Store struct {
	cfg     Config
	log     *slog.Logger
	db      *pebble.DB
	metrics *metrics
	reg     *prometheus.Registry
	sched   *scheduler
	trans   *transport
	snaps   *snapshotManager
	// pd is the placement client (nil with static bootstrap).
	pd *pdClient
	// storeAddrs caches store addresses learned from placement (and
	// persisted, store_peer_addrs.go): store ID to address.
	storeAddrs sync.Map
	// resolver looks up unknown store addresses off the workers.
	resolver *addrResolver
	// needRejoin: the store started without placement's answer to Join
	// (set before Start; the report loop joins first).
	needRejoin bool
	// pdUp is 1 after a successful call to placement, 0 after a failed
	// one, -1 before the first (notePlacement).
	pdUp     atomic.Int32
	liveness *liveness
	// now is cfg.Clock.Now.
	now func() time.Time
	// pebbleOpts are the engine's options (snapshot SSTs are written with
	// them).
	pebbleOpts *pebble.Options

	// nextID hands out proposal IDs: a random 64-bit start, then +1, so
	// they never repeat across restarts or stores (in practice).
	nextID atomic.Uint64
	// readSeed makes ReadIndex contexts unique across restarts.
	readSeed uint64
	exec     *operatorExecutor
	drain    drainState
	disk     diskGuard

	// incarnation is this data directory's random ID; peerInc the ones
	// accepted from peer stores (store_incarnation.go).
	incarnation uint64
	peerInc     peerIncarnations

	// lastLoad: request count at the last store report (report loop
	// only).
	lastLoad struct {
		at       time.Time
		requests uint64
	}
	// awake: ranges that are not quiesced (the ticker's work list).
	awakeMu sync.Mutex
	awake   map[uint64]struct{}
	// rangeIDMu serializes the range ID allocator.
	rangeIDMu sync.Mutex
	// gc is replica GC's work list (replica_gc.go).
	gc gcState
	// reportRanges asks the report loop for a range report now
	// (capacity 1: requests made while one waits coalesce into it). Sent
	// to without blocking (reportRangesSoon), so workers never wait on it.
	reportRanges chan struct{}
	// passRunners recycles the drivers and work lists of passes
	// (runNextPass).
	passRunners sync.Pool

	mu struct {
		sync.RWMutex
		replicas map[uint64]*Replica
		// sorted: the replicas of replicas in range ID order, rebuilt
		// on demand after a change (nil: stale); read only, shared by
		// replicasSnapshot's copies and the paged listing.
		sorted []*Replica
		// byStart: initialized replicas ordered by start key (disjoint
		// spans), for routing keys.
		byStart []*Replica
		// pendingRHS: right halves of splits staged or applied here and
		// not instantiated yet, by range ID; no replica object is created
		// for them (writeSplitRHSState says why), and their spans count as
		// taken for snapshots (snapshotManager.overlapLocked): set before
		// the parent's descriptor shrinks, deleted in the same critical
		// section that puts the right replica in replicas, so no instant
		// leaves the span to a snapshot of another range.
		pendingRHS map[uint64]*rangekvpb.RangeDescriptor
		// heldForSplit: the last few messages that arrived for a range in
		// pendingRHS (no replica object may exist for it yet), handed to
		// the right replica when the split installs it (installRHS) or
		// dropped with the pendingRHS entry. Raft tolerates their delay;
		// dropping them made the new range's first election or first
		// append wait for a timeout or a heartbeat.
		heldForSplit map[uint64][]inMsg
		// removals counts replicas removed from replicas (destroyed),
		// after their tombstone is durable: createUninitialized reads
		// Pebble without the lock and re-checks it.
		removals uint64
	}

	grpcServer *grpc.Server
	listener   net.Listener
	httpServer *http.Server
	httpLn     net.Listener

	ready    atomic.Bool
	stopCh   chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Open opens (or creates) the store's engine and loads its replicas. It
// starts nothing; call Start.
func Open(cfg Config) (*Store, error) {
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
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger.With("store", cfg.StoreID),
		reg:    cfg.Registry,
		stopCh: make(chan struct{}),

		reportRanges: make(chan struct{}, 1),
	}
	s.mu.replicas = make(map[uint64]*Replica)
	s.mu.pendingRHS = make(map[uint64]*rangekvpb.RangeDescriptor)
	s.gc.init()
	s.now = cfg.Clock.Now
	s.passRunners.New = func() any {
		return s.newPassRunner()
	}
	s.pdUp.Store(-1)
	s.resolver = newAddrResolver(s)
	s.liveness = newLiveness(cfg.StoreID, s.now, cfg.ElectionTimeout)
	s.metrics = newMetrics(cfg.Registry)
	s.registerLogMetrics(cfg.Registry)
	s.drain.init(cfg.Registry)
	s.disk.init(cfg.Registry)
	s.sched = newScheduler(cfg.MaxBatchRanges)
	var seed [16]byte
	if _, err := io.ReadFull(cfg.Rand, seed[:]); err != nil {
		return nil, err
	}
	s.nextID.Store(binary.BigEndian.Uint64(seed[:8]))
	s.readSeed = binary.BigEndian.Uint64(seed[8:])
	if cfg.UnsafeNoFsync {
		s.log.Warn("UNSAFE: --unsafe-no-fsync is set: writes are acknowledged before they are durable and a crash WILL lose acknowledged data; use for benchmarks only")
	}

	if s.cfg.AdvertiseAddr == "" {
		s.cfg.AdvertiseAddr = s.cfg.Addr
		if s.cfg.Listener != nil {
			s.cfg.AdvertiseAddr = s.cfg.Listener.Addr().String()
		}
	}
	if len(cfg.Placement) > 0 {
		pd, err := newPDClient(cfg.Placement, cfg.TLS, cfg.Network, cfg.Clock)
		if err != nil {
			return nil, err
		}
		s.pd = pd
	}
	dir := cfg.DataDir
	opts := pebbleOptions(&s.cfg)
	db, err := pebble.Open(dir, opts)
	if opts.Cache != nil {
		opts.Cache.Unref() // the engine holds its own reference
	}
	if err != nil {
		return nil, fmt.Errorf("open engine in %q: %w", dir, err)
	}
	s.db = db
	s.pebbleOpts = opts.Clone()
	s.pebbleOpts.EnsureDefaults()
	if err := s.init(); err != nil {
		db.Close()
		if s.pd != nil {
			s.pd.close()
		}
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	inc, saved, err := loadIncarnation(s.db, s.cfg.Rand)
	if err != nil {
		return err
	}
	s.incarnation = inc
	if s.pd != nil {
		err = s.joinPlacement()
	} else {
		err = s.initStatic()
	}
	if err != nil {
		return err
	}
	// Saved before Start opens any Raft stream that carries it.
	if !saved {
		if err := saveIncarnation(s.db, inc); err != nil {
			return err
		}
	}
	if s.pd != nil {
		if err := s.loadPeerAddrs(); err != nil {
			return err
		}
	}
	return s.loadReplicas()
}

// Start serves gRPC and HTTP and starts the Raft workers and ticker.
func (s *Store) Start() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = s.cfg.Network.Listen(s.cfg.Addr); err != nil {
			return fmt.Errorf("addr: listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.listener = ln
	if s.cfg.AdvertiseAddr == "" {
		s.cfg.AdvertiseAddr = ln.Addr().String()
	}
	s.trans = newTransport(s)
	s.snaps = newSnapshotManager(s)
	s.grpcServer = grpc.NewServer(append(tlsconfig.ServerOptions(s.cfg.TLS), grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20),
		grpc.InitialWindowSize(streamWindowBytes), grpc.InitialConnWindowSize(connWindowBytes))...)
	reg := grpcnet.Registrar(s.grpcServer, ln)
	rangekvpb.RegisterKVServer(reg, &kvServer{s: s})
	rangekvpb.RegisterRaftServer(reg, &raftServer{s: s})
	rangekvpb.RegisterAdminServer(reg, &adminServer{s: s})

	if s.pd != nil {
		s.wg.Add(1)
		go s.resolver.run()
	}
	s.trans.startPeers()
	s.cfg.Runner.Start(s.cfg.Workers, s.runNextPass)
	s.wg.Add(1)
	go s.ticker()
	s.wg.Add(1)
	go s.splitLoop()
	s.wg.Add(1)
	go s.gcLoop()
	s.startDiskGuard()
	if s.pd != nil {
		s.exec = newOperatorExecutor(s)
		s.wg.Add(1)
		go s.reportLoop()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpcServer.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server stopped", "err", err)
		}
	}()
	if s.cfg.HTTPAddr != "" {
		if err := s.startHTTP(); err != nil {
			s.Stop()
			return err
		}
	}
	s.ready.Store(true)
	s.log.Info("store started", "addr", s.Addr(), "http", s.HTTPAddr(), "replicas", len(s.replicaIDs()))
	return nil
}

// Addr is the bound gRPC address.
func (s *Store) Addr() string {
	if s.listener == nil {
		return s.cfg.Addr
	}
	return s.listener.Addr().String()
}

// HTTPAddr is the bound HTTP address ("" when disabled).
func (s *Store) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// StoreID is this store's ID.
func (s *Store) StoreID() uint64 { return s.cfg.StoreID }

// Stop stops serving, stops every goroutine the store owns, completes all
// pending requests (writes in flight are reported ambiguous) and closes the
// engine. It is safe to call more than once.
func (s *Store) Stop() {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		if s.httpServer != nil {
			ctx, cancel := clock.WithTimeout(context.Background(), s.cfg.Clock, time.Second)
			_ = s.httpServer.Shutdown(ctx)
			cancel()
		}
		// Stop serving first, while the workers still run, so in-flight
		// requests complete; peers' long-lived streams are cut after a
		// short grace period (on Config.Clock).
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
		close(s.stopCh)
		s.sched.stop()
		if s.exec != nil {
			s.exec.cancel() // steps waiting on replicas give up now
		}
		// Workers first: a worker mid-pass may still hand a snapshot to
		// the snapshot manager or a message to the transport.
		s.cfg.Runner.Stop()
		s.wg.Wait()
		if s.exec != nil {
			s.exec.close()
		}
		if s.trans != nil {
			s.trans.close()
		}
		if s.snaps != nil {
			s.snaps.close()
		}
		if s.pd != nil {
			s.pd.close()
		}
		for _, r := range s.replicasSnapshot() {
			r.lock()
			r.mu.rr.Close()
			r.mu.destroyed = true
			r.mu.Unlock()
			r.failInbox()
		}
		if err := s.db.Close(); err != nil {
			s.log.Error("close engine", "err", err)
		}
		s.log.Info("store stopped")
	})
}

func (s *Store) newProposalID() uint64 {
	for {
		if id := s.nextID.Add(1); id != 0 && id != rangeraft.BatchTag {
			return id
		}
	}
}

// fatalRange is fatal for rangeID (0: no range in particular).
func (s *Store) fatalRange(rangeID uint64, what string, err error) {
	s.log.Error("fatal engine error", "range", rangeID, "op", what, "err", err)
	if k := s.cfg.Knobs; k != nil && k.OnFatal != nil {
		k.OnFatal(rangeID, what, err)
		runtime.Goexit() // as if the process had died: this goroutine goes no further
	}
	panic(fmt.Sprintf("store %d range %d: %s: %v", s.cfg.StoreID, rangeID, what, err))
}
