// The placement group's transport: one queue and one goroutine per peer
// member sending unary batches, the PlacementRaft service receiving them,
// and when each member was last heard from.

package placement

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// transport sends placement Raft messages to peers: one queue and one
// goroutine per peer, unary batches.
type transport struct {
	s     *Server
	mu    sync.Mutex
	peers map[uint64]chan *pb.Message
	wg    sync.WaitGroup
	ctx   context.Context

	// heard: when each member last sent us a message (for status).
	progressMu sync.Mutex
	heard      map[uint64]time.Time
}

func (t *transport) send(msgs []*pb.Message) {
	for _, m := range msgs {
		ch := t.peer(m.GetTo())
		if ch == nil {
			continue
		}
		select {
		case ch <- m:
		default: // raft retries
		}
	}
}

func (t *transport) peer(id uint64) chan *pb.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.peers[id]; ok {
		return ch
	}
	addr, ok := t.s.cfg.InitialCluster[id]
	if !ok || t.ctx.Err() != nil {
		return nil
	}
	ch := make(chan *pb.Message, 4096)
	t.peers[id] = ch
	t.wg.Add(1)
	go t.run(id, addr, ch)
	return ch
}

func (t *transport) run(id uint64, addr string, ch chan *pb.Message) {
	defer t.wg.Done()
	conn, err := t.s.dial(addr)
	if err != nil {
		t.s.log.Error("dial placement peer", "peer", id, "err", err)
		return
	}
	defer conn.Close()
	client := rangekvpb.NewPlacementRaftClient(conn)
	for {
		var batch []*pb.Message
		select {
		case <-t.ctx.Done():
			return
		case m := <-ch:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < 1024 {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		ctx, cancel := clock.WithTimeout(t.ctx, t.s.cfg.Clock, 2*time.Second)
		_, err := client.Send(ctx, &rangekvpb.PlacementRaftBatch{From: t.s.cfg.ID, Messages: batch})
		cancel()
		if err != nil {
			t.s.log.Debug("send to placement peer", "peer", id, "err", err)
		}
	}
}

type raftServer struct {
	rangekvpb.UnimplementedPlacementRaftServer
	s *Server
}

func (r *raftServer) Send(_ context.Context, b *rangekvpb.PlacementRaftBatch) (*rangekvpb.PlacementRaftAck, error) {
	r.s.trans.heardFrom(b.From)
	select {
	case r.s.group.recvc <- b.Messages:
	default: // raft retries
	}
	return &rangekvpb.PlacementRaftAck{}, nil
}

// reachable reports whether a member sent this one a message within two
// election timeouts (leaders and followers exchange heartbeats).
func (t *transport) reachable(id uint64) bool {
	if id == t.s.cfg.ID {
		return true
	}
	t.progressMu.Lock()
	defer t.progressMu.Unlock()
	at, ok := t.heard[id]
	return ok && t.s.now().Sub(at) < 2*t.s.cfg.ElectionTimeout
}

// heardFrom records a message from a member.
func (t *transport) heardFrom(id uint64) {
	t.progressMu.Lock()
	defer t.progressMu.Unlock()
	if t.heard == nil {
		t.heard = map[uint64]time.Time{}
	}
	t.heard[id] = t.s.now()
}
