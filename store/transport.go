// Store-to-store Raft transport: one gRPC stream per peer store, fed by a
// bounded queue and flushed in batches by one goroutine per peer. A slow or
// dead peer only fills (and drops from) its own queue.
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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	peerQueueSize    = 8192
	maxBatchMessages = 1024
	minBackoff       = 50 * time.Millisecond
	maxBackoff       = time.Second
)

type transport struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		peers  map[uint64]*peer
		closed bool
	}
}

type peer struct {
	storeID uint64
	addr    string
	conn    *grpc.ClientConn
	ch      chan *rangekvpb.RaftMessage
}

func newTransport(s *Store) *transport {
	t := &transport{s: s}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = make(map[uint64]*peer)
	return t
}

// resolve returns the address of a store.
// TODO(placement): ask placement for stores not in the static list.
func (t *transport) resolve(storeID uint64) (string, bool) {
	a, ok := t.s.cfg.InitialStores[storeID]
	return a, ok
}

// peerFor returns (creating and starting) the peer for storeID.
func (t *transport) peerFor(storeID uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil
	}
	if p, ok := t.mu.peers[storeID]; ok {
		return p
	}
	addr, ok := t.resolve(storeID)
	if !ok {
		return nil
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.s.log.Error("dial peer store", "peer", storeID, "addr", addr, "err", err)
		return nil
	}
	p := &peer{storeID: storeID, addr: addr, conn: conn, ch: make(chan *rangekvpb.RaftMessage, peerQueueSize)}
	t.mu.peers[storeID] = p
	t.wg.Add(1)
	go t.run(p)
	return p
}

// send queues a message without blocking; false means it was dropped.
func (t *transport) send(storeID, rangeID uint64, m *pb.Message) bool {
	p := t.peerFor(storeID)
	if p == nil {
		t.s.metrics.messagesDropped.WithLabelValues("unknown_store").Inc()
		return false
	}
	select {
	case p.ch <- &rangekvpb.RaftMessage{RangeId: rangeID, FromStore: t.s.cfg.StoreID, ToStore: storeID, Message: m}:
		return true
	default:
		t.s.metrics.messagesDropped.WithLabelValues("queue_full").Inc()
		return false
	}
}

// run owns p's stream: connect, then flush batches until an error, then
// reconnect with backoff. Messages lost on a broken stream are recovered by
// raft's own retries.
func (t *transport) run(p *peer) {
	defer t.wg.Done()
	defer p.conn.Close()
	label := strconv.FormatUint(p.storeID, 10)
	backoff := minBackoff
	client := rangekvpb.NewRaftClient(p.conn)
	batch := &rangekvpb.RaftMessageBatch{FromStore: t.s.cfg.StoreID, ToStore: p.storeID}
	for {
		stream, err := client.RaftStream(t.ctx)
		if err != nil {
			if !t.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		for err == nil {
			var first *rangekvpb.RaftMessage
			select {
			case <-t.ctx.Done():
				_, _ = stream.CloseAndRecv()
				return
			case first = <-p.ch:
			}
			batch.Messages = append(batch.Messages[:0], first)
		drain:
			for len(batch.Messages) < maxBatchMessages {
				select {
				case m := <-p.ch:
					batch.Messages = append(batch.Messages, m)
				default:
					break drain
				}
			}
			t.s.metrics.transportQueueSize.WithLabelValues(label).Set(float64(len(p.ch)))
			err = stream.Send(batch)
			if err == nil {
				t.s.metrics.batchesSent.Inc()
				backoff = minBackoff
			}
		}
		if !errors.Is(err, io.EOF) {
			t.s.log.Debug("raft stream to peer broke", "peer", p.storeID, "err", err)
		}
		if !t.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (t *transport) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// conn returns the client connection to storeID (for snapshots).
func (t *transport) conn(storeID uint64) *grpc.ClientConn {
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

// raftServer receives peers' message streams and snapshots.
type raftServer struct {
	rangekvpb.UnimplementedRaftServer
	s *Store
}

func (rs *raftServer) RaftStream(stream rangekvpb.Raft_RaftStreamServer) error {
	for {
		batch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&rangekvpb.RaftStreamResponse{})
		}
		if err != nil {
			return err
		}
		for _, m := range batch.Messages {
			rs.s.deliver(m)
		}
	}
}

// deliver hands a peer's message to its replica's inbox.
func (s *Store) deliver(m *rangekvpb.RaftMessage) {
	r := s.replica(m.RangeId)
	if r == nil || m.Message == nil {
		s.metrics.messagesDropped.WithLabelValues("unknown_range").Inc()
		return
	}
	if !r.pushMessage(m.Message, s.cfg.InboxSize) {
		s.metrics.messagesDropped.WithLabelValues("inbox_full").Inc()
		return
	}
	s.sched.enqueue(m.RangeId, flagWork)
}
