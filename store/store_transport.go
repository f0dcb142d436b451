// Store-to-store Raft transport: one gRPC stream per peer store, fed by a
// bounded queue and flushed in batches by one goroutine per peer. A slow or
// dead peer only fills (and drops from) its own queue.
//
// Heartbeats and heartbeat responses of every range are coalesced: they
// wait in a per-peer buffer flushed twice per heartbeat interval as one
// batch, so idle traffic between two stores does not grow with the number
// of ranges. A heartbeat with a non-empty context (a ReadIndex round) is
// not held back. Every flush interval each peer also gets a batch, empty if
// need be: the store liveness ping.

package store

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	peerQueueSize    = 8192
	peerQueueBytes   = 64 << 20
	maxBatchMessages = 1024
	minBackoff       = 50 * time.Millisecond
	maxBackoff       = time.Second

	// Fixed HTTP/2 flow-control windows for the store's server and its
	// peer connections. gRPC's adaptive window sends a bandwidth-delay
	// PING per data frame received while none is outstanding: a write
	// syscall each way per Raft batch and per KV call. A fixed window has
	// none; 8 MiB per stream keeps a range's entries and snapshot chunks
	// flowing on any LAN.
	streamWindowBytes = 8 << 20
	connWindowBytes   = 32 << 20
)

type transport struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	flush  time.Duration
	// hold is how long a commit-only append may wait (store_commit_hold.go).
	hold time.Duration

	mu struct {
		sync.Mutex
		peers  map[uint64]*peer
		closed bool
	}
}

type peer struct {
	storeID uint64
	addr    string
	conn    grpcnet.Conn
	// ctx ends run (a child of the transport's): cancelled when the store
	// leaves (sweepPeers) or the transport closes; done is closed when run
	// returned (and closed conn).
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// unreferenced: no local replica named the store at the last sweep
	// (guarded by transport.mu).
	unreferenced bool
	// q holds the messages waiting for run, bounded in number
	// (peerQueueSize) and bytes (peerQueueBytes: entries can be large);
	// sizes[i] is the size of msgs[i]. ready holds a token while q may be
	// non-empty: a sender that queues many messages at once (a pass's
	// outbox) wakes run once, not once per message. Lock order: q before
	// held and hb.
	q struct {
		sync.Mutex
		msgs  []*rangekvpb.RaftMessage
		sizes []int64
		bytes int64
	}
	ready chan struct{}

	hb struct {
		sync.Mutex
		beats, resps []*rangekvpb.RaftHeartbeat
	}

	// held are commit-only appends waiting for a later append to carry
	// their commit index (store_commit_hold.go); armed: holdTimer is set
	// to send them (cleared when run takes them).
	held struct {
		sync.Mutex
		msgs  map[holdKey]*rangekvpb.RaftMessage
		armed bool
	}

	// The sender's timers are made with the peer and the hold timer is
	// armed by whoever holds an append, never by run: two peers' senders
	// woken in one step run in the Go scheduler's order, and timers due at
	// the same instant fire in the order they were set, so a simulated run
	// would not replay the same batches (trace divergence at seed 10).
	// tick is the flush interval's ticker (made by peerFor; nil for a
	// peer that never runs, in tests); holdTimer is stopped while not
	// armed.
	tick      clock.Ticker
	holdTimer clock.Timer
}

func newTransport(s *Store) *transport {
	t := &transport{s: s, flush: s.cfg.HeartbeatInterval / 2, hold: s.cfg.HeartbeatInterval / 20}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = make(map[uint64]*peer)
	return t
}

// resolve returns the address of a store: from the static list, or as
// learned from placement. It never waits: an address not known yet is
// asked of placement in the background (store_peer_addrs.go) and resolve
// reports false meanwhile.
func (t *transport) resolve(storeID uint64) (string, bool) {
	if a, ok := t.s.cachedStoreAddr(storeID); ok {
		return a, true
	}
	if t.s.pd != nil {
		t.s.resolver.request(storeID)
	}
	return "", false
}

// peerFor returns (creating and starting) the peer for storeID.
func (t *transport) peerFor(storeID uint64) *peer {
	t.mu.Lock()
	if p, ok := t.mu.peers[storeID]; ok || t.mu.closed {
		t.mu.Unlock()
		return p
	}
	t.mu.Unlock()
	addr, ok := t.resolve(storeID)
	if !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.mu.peers[storeID]; ok || t.mu.closed {
		return p
	}
	conn, err := t.s.cfg.Network.Dial(addr,
		tlsconfig.DialOption(t.s.cfg.TLS), grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(connWindowBytes),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.s.log.Error("dial peer store", "peer", storeID, "addr", addr, "err", err)
		return nil
	}
	p := newPeer(storeID, addr, conn, t.s.cfg.Clock)
	p.tick = t.s.cfg.Clock.NewTicker(t.flush)
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	t.mu.peers[storeID] = p
	t.wg.Add(1)
	go t.run(p)
	return p
}

// newPeer makes a peer with a stopped hold timer on clk.
func newPeer(storeID uint64, addr string, conn grpcnet.Conn, clk clock.Clock) *peer {
	p := &peer{storeID: storeID, addr: addr, conn: conn, ready: make(chan struct{}, 1), done: make(chan struct{})}
	p.holdTimer = clk.NewTimer(time.Hour)
	p.holdTimer.Stop()
	return p
}

// startPeers starts a stream (and so liveness pings) to every known store.
func (t *transport) startPeers() {
	for id := range t.s.cfg.InitialStores {
		if id != t.s.cfg.StoreID {
			t.peerFor(id)
		}
	}
}

// answer makes sure this store streams to storeID, which just opened a
// stream to it. Each store hears only the streams that come in
// (liveness.heard), and a store that joined through placement streams
// only to stores it has something to send: one holding no replica the
// peer leads sent nothing, so the peer counted it down for good. A
// leader there quiesces with a lagging follower on a down store (it
// wakes the range when the store comes back), so a learner added while
// the link was cut was never created, and its range stayed under-replicated
// after the link healed (the simulation's seed 190). The answering peer is
// swept like any other (sweepPeers) once no local replica names the store.
func (t *transport) answer(storeID uint64) {
	if storeID != 0 && storeID != t.s.cfg.StoreID {
		t.peerFor(storeID)
	}
}

// send queues a message without blocking; false means it was dropped.
// Heartbeats without a context are coalesced; commit-only appends are
// held (store_commit_hold.go).
func (t *transport) send(storeID uint64, env *rangekvpb.RaftMessage) bool {
	ok := true
	t.sendBatch(storeID, []*rangekvpb.RaftMessage{env}, func(int) { ok = false })
	return ok
}

// sendBatch queues envs, all to storeID, in order and without blocking,
// as send does each, but under one lock of the peer's queue and with one
// wakeup of its sender. dropped, when set, is called with the index of
// every env it dropped (unknown store, full queue).
func (t *transport) sendBatch(storeID uint64, envs []*rangekvpb.RaftMessage, dropped func(i int)) {
	p := t.peerFor(storeID)
	if p == nil {
		t.s.metrics.messagesDropped.WithLabelValues("unknown_store").Add(float64(len(envs)))
		if dropped != nil {
			for i := range envs {
				dropped(i)
			}
		}
		return
	}
	arm, full := false, 0
	folded := foldedCounters{t.s.metrics.commitsFolded, t.s.metrics.advancesFolded}
	p.q.Lock()
	n := len(p.q.msgs)
	for i, env := range envs {
		if m := env.Message; m != nil {
			switch {
			case len(m.GetContext()) == 0 && !env.CommitAdvance && (m.GetType() == pb.MsgHeartbeat || m.GetType() == pb.MsgHeartbeatResp):
				p.addHeartbeat(env.RangeId, m, false)
				continue
			case t.hold > 0 && isCommitOnly(env):
				arm = p.hold(env, folded) || arm
				continue
			}
			if held := p.unhold(env, folded); held != nil && !p.enqueueLocked(held) {
				full++
			}
		}
		if !p.enqueueLocked(env) {
			full++
			if dropped != nil {
				dropped(i)
			}
		}
	}
	queued := len(p.q.msgs) > n
	p.q.Unlock()
	if full > 0 {
		t.s.metrics.messagesDropped.WithLabelValues("queue_full").Add(float64(full))
	}
	if queued {
		t.s.kick(p.ready)
	}
	if arm {
		p.holdTimer.Reset(t.hold)
	}
}

// outbox collects one pass's outgoing Raft messages per peer store, so
// that the pass hands each peer all of them at once (sendBatch: one lock
// of its queue, one wakeup of its sender) rather than one message at a
// time; TiKV's raftstore flushes its transport once per poll round the
// same way. It only delays: the driver flushes it after it handed out
// the early MsgApps and after the rest (driver.Options.Flush), never
// before Send got a message. Used by one pass at a time.
type outbox struct {
	peers []outPeer
}

type outPeer struct {
	storeID uint64
	envs    []*rangekvpb.RaftMessage
	// from[i] sent envs[i]: told when it is dropped (ReportUnreachable).
	from []*Replica
}

// add queues env, which r sends to storeID.
func (o *outbox) add(storeID uint64, env *rangekvpb.RaftMessage, r *Replica) {
	i := 0
	for i < len(o.peers) && o.peers[i].storeID != storeID {
		i++
	}
	if i == len(o.peers) {
		o.peers = append(o.peers, outPeer{storeID: storeID})
	}
	op := &o.peers[i]
	op.envs = append(op.envs, env)
	op.from = append(op.from, r)
}

// flush sends everything queued, per peer in the order added. A message
// the transport drops is reported unreachable to its replica's raft,
// unless quiesced: the replicas are the pass's, still locked by it.
func (o *outbox) flush(t *transport) {
	for i := range o.peers {
		op := &o.peers[i]
		if len(op.envs) == 0 {
			continue
		}
		t.sendBatch(op.storeID, op.envs, func(j int) {
			if r := op.from[j]; !r.quiesced.Load() {
				r.mu.rr.ReportUnreachable(op.envs[j].Message.GetTo())
			}
		})
		clear(op.envs)
		clear(op.from)
		op.envs, op.from = op.envs[:0], op.from[:0]
	}
}

// enqueueLocked puts env on p's queue; false means the queue is full.
// Called with p.q held.
func (p *peer) enqueueLocked(env *rangekvpb.RaftMessage) bool {
	size := int64(proto.Size(env.Message))
	if len(p.q.msgs) >= peerQueueSize || p.q.bytes+size > peerQueueBytes {
		return false
	}
	p.q.msgs = append(p.q.msgs, env)
	p.q.sizes = append(p.q.sizes, size)
	p.q.bytes += size
	return true
}

// takeQueued moves up to max queued messages, oldest first, to dst. If
// more are left it leaves a token in ready so that run comes back.
func (p *peer) takeQueued(dst []*rangekvpb.RaftMessage, max int) []*rangekvpb.RaftMessage {
	p.q.Lock()
	defer p.q.Unlock()
	n := min(len(p.q.msgs), max)
	dst = append(dst, p.q.msgs[:n]...)
	for _, sz := range p.q.sizes[:n] {
		p.q.bytes -= sz
	}
	rest := copy(p.q.msgs, p.q.msgs[n:])
	clear(p.q.msgs[rest:])
	p.q.msgs = p.q.msgs[:rest]
	p.q.sizes = p.q.sizes[:copy(p.q.sizes, p.q.sizes[n:])]
	if rest > 0 {
		kickNow(p.ready) // run itself comes back for them
	}
	return dst
}

// queueLen is the number of messages waiting in p's queue.
func (p *peer) queueLen() int {
	p.q.Lock()
	defer p.q.Unlock()
	return len(p.q.msgs)
}

// sendQuiesce queues a leader's quiesce heartbeat.
func (t *transport) sendQuiesce(storeID, rangeID uint64, m *pb.Message) {
	if p := t.peerFor(storeID); p != nil {
		p.addHeartbeat(rangeID, m, true)
	}
}

func (p *peer) addHeartbeat(rangeID uint64, m *pb.Message, quiesce bool) {
	hb := &rangekvpb.RaftHeartbeat{RangeId: rangeID, FromReplicaId: m.GetFrom(), ToReplicaId: m.GetTo(),
		Term: m.GetTerm(), Commit: m.GetCommit(), Context: m.GetContext(), Quiesce: quiesce}
	p.hb.Lock()
	defer p.hb.Unlock()
	// Bounded: while a peer is unreachable nobody takes these; raft sends
	// fresh heartbeats every tick anyway.
	if len(p.hb.beats)+len(p.hb.resps) >= peerQueueSize {
		return
	}
	if m.GetType() == pb.MsgHeartbeatResp {
		p.hb.resps = append(p.hb.resps, hb)
	} else {
		p.hb.beats = append(p.hb.beats, hb)
	}
}

// discard drops everything queued for the peer.
func (p *peer) discard() {
	p.takeHeartbeats()
	p.takeHeld(nil, false)
	p.q.Lock()
	defer p.q.Unlock()
	clear(p.q.msgs)
	p.q.msgs, p.q.sizes, p.q.bytes = p.q.msgs[:0], p.q.sizes[:0], 0
}

func (p *peer) takeHeartbeats() (beats, resps []*rangekvpb.RaftHeartbeat) {
	p.hb.Lock()
	defer p.hb.Unlock()
	beats, resps = p.hb.beats, p.hb.resps
	p.hb.beats, p.hb.resps = nil, nil
	return beats, resps
}

// The events of a peer's sender loop (peer.next).
const (
	evStop = iota
	evReady
	evHeld
	evTick
)

// next waits for the sender's next event: the peer stopping, queued
// messages (ready), the held appends' timer (holdC) or the flush tick
// (tickC). When several are ready it takes them in that order,
// not in the random one of select, so that a simulated run replays the
// same batches.
func (p *peer) next(holdC, tickC <-chan time.Time) int {
	select {
	case <-p.ctx.Done():
		return evStop
	default:
	}
	select {
	case <-p.ready:
		return evReady
	default:
	}
	select {
	case <-holdC:
		return evHeld
	default:
	}
	select {
	case <-tickC:
		return evTick
	default:
	}
	select {
	case <-p.ctx.Done():
		return evStop
	case <-p.ready:
		return evReady
	case <-holdC:
		return evHeld
	case <-tickC:
		return evTick
	}
}

// run owns p's stream: connect, then flush batches until an error, then
// reconnect with backoff. Messages lost on a broken stream are recovered by
// raft's own retries.
func (t *transport) run(p *peer) {
	defer t.wg.Done()
	defer close(p.done)
	defer p.conn.Close()
	defer p.cancel()
	label := strconv.FormatUint(p.storeID, 10)
	defer func() {
		if t.ctx.Err() == nil { // swept, not closed: the series goes too
			t.s.metrics.transportQueueSize.DeleteLabelValues(label)
		}
	}()
	backoff := minBackoff
	client := rangekvpb.NewRaftClient(p.conn)
	clk := t.s.cfg.Clock
	defer p.tick.Stop()
	defer p.holdTimer.Stop()
	batch := &rangekvpb.RaftMessageBatch{FromStore: t.s.cfg.StoreID, ToStore: p.storeID}
	for {
		stream, err := client.RaftStream(t.s.withIncarnation(p.ctx, false))
		if err != nil {
			p.discard()
			if !clock.Sleep(p.ctx, clk, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		for err == nil {
			batch.Messages, batch.Heartbeats, batch.HeartbeatResps = batch.Messages[:0], nil, nil
			ev := p.next(p.holdTimer.C(), p.tick.C())
			switch ev {
			case evStop:
				_, _ = stream.CloseAndRecv()
				return
			case evReady:
				// Held commit advances ride on the next batch to the peer,
				// ahead of its messages (store_commit_hold.go).
				batch.Messages = p.takeHeld(batch.Messages, true)
				if batch.Messages = p.takeQueued(batch.Messages, maxBatchMessages); len(batch.Messages) == 0 {
					continue
				}
			case evHeld:
				if batch.Messages = p.takeHeld(batch.Messages, false); len(batch.Messages) == 0 {
					continue // all superseded
				}
			case evTick:
				// Coalesced heartbeats, or an empty batch: the liveness
				// ping. Held appends go first: a quiesce heartbeat must
				// not overtake the commit index it quiesces at.
				batch.Messages = p.takeHeld(batch.Messages, false)
				batch.Heartbeats, batch.HeartbeatResps = p.takeHeartbeats()
			}
			t.s.metrics.transportQueueSize.WithLabelValues(label).Set(float64(p.queueLen()))
			if k := t.s.cfg.Knobs; k != nil && k.RaftBatchFault != nil {
				drop, delay := k.RaftBatchFault(t.s.cfg.StoreID, p.storeID)
				if delay > 0 && !clock.Sleep(p.ctx, clk, delay) {
					_, _ = stream.CloseAndRecv()
					return
				}
				if drop {
					t.s.metrics.messagesDropped.WithLabelValues("knob").Add(float64(len(batch.Messages)))
					continue
				}
			}
			err = stream.Send(batch)
			if err == nil {
				t.s.metrics.batchesSent.Inc()
				backoff = minBackoff
			}
		}
		if !errors.Is(err, io.EOF) {
			t.s.log.Debug("raft stream to peer broke", "peer", p.storeID, "err", err)
		} else if _, cerr := stream.CloseAndRecv(); status.Code(cerr) == codes.FailedPrecondition {
			t.s.log.Error("a peer store refuses this store's Raft traffic", "peer", p.storeID, "err", cerr)
		}
		p.discard() // stale by the time the peer is back; raft resends
		if !clock.Sleep(p.ctx, clk, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sweepPeers closes the peers of stores that left: a store that no local
// replica names (referenced: in its descriptor, or for an uninitialized
// replica in the stores its messages came from) at two sweeps in a row,
// and that is not one of the static InitialStores (the configured
// cluster, pinged for liveness). The second sweep is the grace for a
// peer made just before a replica names its store. A removed peer's
// goroutine stops and its connection closes; messages queued for it are
// dropped (raft resends), and a later send makes a new peer. It returns
// the stores whose peers it closed.
func (t *transport) sweepPeers(referenced map[uint64]bool) []uint64 {
	t.mu.Lock()
	var gone []*peer
	for id, p := range t.mu.peers {
		if referenced[id] || t.s.cfg.InitialStores[id] != "" {
			p.unreferenced = false
			continue
		}
		if !p.unreferenced {
			p.unreferenced = true
			continue
		}
		delete(t.mu.peers, id)
		gone = append(gone, p)
	}
	t.mu.Unlock()
	ids := make([]uint64, 0, len(gone))
	for _, p := range gone {
		p.cancel() // run closes the stream and the connection
		t.s.log.Info("closed the raft stream to a store no local replica names", "peer", p.storeID, "addr", p.addr)
		ids = append(ids, p.storeID)
	}
	return ids
}

// redial closes the peer of storeID if it dials another address than
// addr (the store moved); the next message makes a peer for addr.
func (t *transport) redial(storeID uint64, addr string) {
	t.mu.Lock()
	p, ok := t.mu.peers[storeID]
	if !ok || p.addr == addr {
		t.mu.Unlock()
		return
	}
	delete(t.mu.peers, storeID)
	t.mu.Unlock()
	p.cancel() // run closes the stream and the connection
	t.s.log.Info("a peer store's address changed: dialling the new one", "peer", storeID, "old", p.addr, "addr", addr)
}

// conn returns the client connection to storeID (for snapshots).
func (t *transport) conn(storeID uint64) grpcnet.Conn {
	p := t.peerFor(storeID)
	if p == nil {
		return nil
	}
	return p.conn
}

func (t *transport) close() {
	t.mu.Lock()
	t.mu.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

// deliverHeartbeat rebuilds one range's heartbeat and queues it.
func (s *Store) deliverHeartbeat(fromStore uint64, hb *rangekvpb.RaftHeartbeat, typ pb.MessageType) {
	s.deliverHeartbeatTo(fromStore, hb, typ, nil)
}

// deliverHeartbeatTo is deliverHeartbeat collecting the range to queue
// in ids when set (deliverTo).
func (s *Store) deliverHeartbeatTo(fromStore uint64, hb *rangekvpb.RaftHeartbeat, typ pb.MessageType, ids *[]uint64) {
	m := &pb.Message{Type: typ.Enum(), From: &hb.FromReplicaId, To: &hb.ToReplicaId, Term: &hb.Term, Commit: &hb.Commit}
	if len(hb.Context) > 0 {
		m.Context = hb.Context
	}
	s.deliverTo(&rangekvpb.RaftMessage{RangeId: hb.RangeId, FromStore: fromStore, ToStore: s.cfg.StoreID, Message: m}, hb.Quiesce, ids)
}
