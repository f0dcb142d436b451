// The Raft gRPC service: peers' message streams (delivered to replicas'
// inboxes, store_deliver.go) and snapshot streams (received into an SST,
// store_snapshots.go). A thin adapter: no Raft logic here.

package store

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// raftServer receives peers' message streams and snapshots.
type raftServer struct {
	rangekvpb.UnimplementedRaftServer
	s *Store
}

func (rs *raftServer) RaftStream(stream rangekvpb.Raft_RaftStreamServer) error {
	inc, probe := streamIncarnation(stream.Context())
	admitted := false
	var ids []uint64 // deliverBatch's scratch
	for {
		batch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&rangekvpb.RaftStreamResponse{})
		}
		if err != nil {
			return err
		}
		if !admitted {
			// Invariant: a store delivers only batches addressed to its
			// own store ID. An address outlives the store that had it:
			// a wiped store rejoins under a new ID at the same address
			// while its peers still send the old ID's traffic there (and
			// keep that address in their data directories). Delivered,
			// it would create the old store's replica IDs here with no
			// vote record, and their votes would count (FromStore is this
			// store's new ID, which no incarnation fence knows).
			if batch.ToStore != rs.s.cfg.StoreID {
				rs.s.metrics.messagesDropped.WithLabelValues("wrong_store").Inc()
				rs.s.log.Warn("refusing Raft traffic for another store ID sent to this store's address (the sender's address of that store is stale)",
					"peer", batch.FromStore, "to_store", batch.ToStore)
				return status.Errorf(codes.FailedPrecondition,
					"store %d refuses Raft traffic addressed to store %d: this address now belongs to store %d; the address the sender holds for store %d is stale",
					rs.s.cfg.StoreID, batch.ToStore, rs.s.cfg.StoreID, batch.ToStore)
			}
			// Nothing of a stream is delivered before its sender's
			// incarnation is checked (store_incarnation.go).
			if err := rs.s.admitPeer(batch.FromStore, inc, probe); err != nil {
				return err
			}
			if probe {
				return stream.SendAndClose(&rangekvpb.RaftStreamResponse{})
			}
			admitted = true
			rs.s.liveness.reconnected(batch.FromStore)
			rs.s.trans.answer(batch.FromStore)
		}
		ids = rs.s.deliverBatch(batch, ids)
	}
}

// Snapshot receives a snapshot stream into an SST and steps its MsgSnap
// into the replica; the data is ingested when raft accepts it.
func (rs *raftServer) Snapshot(stream rangekvpb.Raft_SnapshotServer) error {
	s, m := rs.s, rs.s.snaps
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil || h.Message == nil || h.Message.Snapshot == nil || h.Descriptor_ == nil {
		return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: "first chunk has no header"})
	}
	reject := func(err error) error {
		s.log.Info("snapshot rejected", "range", h.RangeId, "reason", err)
		return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: err.Error()})
	}
	id, err := m.reserve(h.Descriptor_, h.Message.GetTo())
	if err != nil {
		return reject(err)
	}
	// From here the placeholder is released by discard: below on every
	// error, or once the MsgSnap is queued, by the worker (ingest or
	// rejection) or by the replica's destruction.
	r := s.replica(h.RangeId)
	if r == nil {
		if r = s.createUninitialized(h.RangeId, h.Message.GetTo()); r == nil {
			m.discard(id, "")
			return reject(fmt.Errorf("replica %d of range %d is tombstoned here", h.Message.GetTo(), h.RangeId))
		}
	}
	ps := &pendingSnapshot{
		id:    id,
		r:     r,
		index: h.Message.Snapshot.GetMetadata().GetIndex(),
		term:  h.Message.Snapshot.GetMetadata().GetTerm(),
		desc:  h.Descriptor_,
	}
	path, n, err := m.receiveSST(stream, first, h)
	if err != nil {
		m.discard(id, "")
		return reject(err)
	}
	ps.userSST, ps.pairs = path, n
	msg := proto.CloneOf(h.Message)
	msg.Snapshot.Data = encodeSnapID(id)
	// Pending before queued: a Replica.destroy that fails the inbox after
	// the push finds it (dropReplica); one before makes the push fail.
	m.mu.Lock()
	m.mu.pending[id] = ps
	m.mu.Unlock()
	if !r.pushMessage(inMsg{m: msg, fromStore: h.FromStore}, s.cfg.InboxSize) {
		m.discard(id, "")
		return reject(errors.New("replica inbox full"))
	}
	s.sched.enqueue(h.RangeId, flagWork)
	return stream.SendAndClose(&rangekvpb.SnapshotResponse{Accepted: true})
}
