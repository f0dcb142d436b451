// Range snapshots: sent on their own streaming RPC, read from one Pebble
// snapshot (so the data matches the index it claims), limited in
// concurrency, and applied on the receiver in the same synced batch as the
// Raft state, so a crash leaves the old replica state or the new one, never
// a mix.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// pendingSnapshot is received data waiting for raft to accept its MsgSnap.
type pendingSnapshot struct {
	index, term uint64
	desc        *rangekvpb.RangeDescriptor
	pairs       []*rangekvpb.KeyValue
}

type snapshotManager struct {
	s      *Store
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		pending map[uint64]*pendingSnapshot // by range ID, the latest only
	}
}

func newSnapshotManager(s *Store) *snapshotManager {
	m := &snapshotManager{s: s, sem: make(chan struct{}, s.cfg.MaxConcurrentSnapshots)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.pending = make(map[uint64]*pendingSnapshot)
	return m
}

func (m *snapshotManager) close() {
	m.cancel()
	m.wg.Wait()
}

// send streams a snapshot for msg (a MsgSnap from raft) in the background
// and reports the outcome to raft through the replica's inbox.
func (m *snapshotManager) send(r *Replica, toStore uint64, msg *pb.Message) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case m.sem <- struct{}{}:
		case <-m.ctx.Done():
			return
		}
		err := m.stream(r, toStore, msg)
		<-m.sem
		if err != nil {
			m.s.log.Warn("snapshot send failed", "range", r.rangeID, "to_store", toStore, "err", err)
			m.s.metrics.snapshotsSent.WithLabelValues("error").Inc()
		} else {
			m.s.metrics.snapshotsSent.WithLabelValues("ok").Inc()
		}
		r.pushSnapReport(msg.GetTo(), err == nil)
		m.s.sched.enqueue(r.rangeID, flagWork)
	}()
}

func (m *snapshotManager) stream(r *Replica, toStore uint64, msg *pb.Message) error {
	conn := m.s.trans.conn(toStore)
	if conn == nil {
		return fmt.Errorf("no address for store %d", toStore)
	}
	snap := m.s.db.NewSnapshot()
	defer snap.Close()
	var desc rangekvpb.RangeDescriptor
	var applied rangekvpb.AppliedState
	if ok, err := getProto(snap, keys.DescriptorKey(r.rangeID), &desc); err != nil || !ok {
		return fmt.Errorf("read descriptor: found=%v err=%v", ok, err)
	}
	if _, err := getProto(snap, keys.AppliedStateKey(r.rangeID), &applied); err != nil {
		return err
	}
	// The metadata describes exactly what this Pebble snapshot holds.
	out := proto.CloneOf(msg)
	out.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     proto.Uint64(applied.Index),
		Term:      proto.Uint64(applied.Term),
		ConfState: confStateOf(&desc),
	}}
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	st, err := rangekvpb.NewRaftClient(conn).Snapshot(ctx)
	if err != nil {
		return err
	}
	header := &rangekvpb.SnapshotHeader{RangeId: r.rangeID, FromStore: m.s.cfg.StoreID, ToStore: toStore, Message: out, Descriptor_: &desc}
	lo, hi := keys.UserSpan(desc.StartKey, desc.EndKey)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	chunk := &rangekvpb.SnapshotChunk{Header: header}
	size := 0
	for valid := it.First(); valid; valid = it.Next() {
		k, err := keys.DecodeUserKey(it.Key())
		if err != nil {
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		chunk.Pairs = append(chunk.Pairs, &rangekvpb.KeyValue{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
		size += len(k) + len(v)
		if size >= m.s.cfg.SnapshotChunkBytes {
			if err := st.Send(chunk); err != nil {
				return err
			}
			m.s.metrics.snapshotBytesSent.Add(float64(size))
			chunk, size = &rangekvpb.SnapshotChunk{}, 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	chunk.Final = true
	if err := st.Send(chunk); err != nil {
		return err
	}
	m.s.metrics.snapshotBytesSent.Add(float64(size))
	resp, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if !resp.Accepted {
		return fmt.Errorf("rejected by store %d: %s", toStore, resp.Reason)
	}
	return nil
}

// Snapshot receives a snapshot stream, keeps its data aside and steps its
// MsgSnap into the replica; the data is written when raft accepts it.
func (rs *raftServer) Snapshot(stream rangekvpb.Raft_SnapshotServer) error {
	s := rs.s
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil || h.Message == nil || h.Message.Snapshot == nil || h.Descriptor_ == nil {
		return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: "first chunk has no header"})
	}
	r := s.replica(h.RangeId)
	if r == nil {
		// TODO(multi-raft): create an uninitialized replica for new ranges.
		return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: fmt.Sprintf("range %d not on this store", h.RangeId)})
	}
	ps := &pendingSnapshot{
		index: h.Message.Snapshot.GetMetadata().GetIndex(),
		term:  h.Message.Snapshot.GetMetadata().GetTerm(),
		desc:  h.Descriptor_,
	}
	chunk := first
	for {
		for _, kv := range chunk.Pairs {
			s.metrics.snapshotBytesRecv.Add(float64(len(kv.Key) + len(kv.Value)))
		}
		ps.pairs = append(ps.pairs, chunk.Pairs...)
		if chunk.Final {
			break
		}
		chunk, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: "stream ended before the final chunk"})
		}
		if err != nil {
			return err
		}
	}
	s.snaps.mu.Lock()
	s.snaps.mu.pending[h.RangeId] = ps
	s.snaps.mu.Unlock()
	if !r.pushMessage(h.Message, s.cfg.InboxSize) {
		return stream.SendAndClose(&rangekvpb.SnapshotResponse{Reason: "replica inbox full"})
	}
	s.sched.enqueue(h.RangeId, flagWork)
	return stream.SendAndClose(&rangekvpb.SnapshotResponse{Accepted: true})
}

// stageSnapshot writes the snapshot raft accepted into wb: it replaces the
// range's data span, descriptor, applied and truncated state and empties
// its log. Called with p.r.mu held.
func (s *Store) stageSnapshot(wb *pebble.Batch, p *pass) *pendingSnapshot {
	md := p.rd.Snapshot.GetMetadata()
	s.snaps.mu.Lock()
	ps := s.snaps.mu.pending[p.r.rangeID]
	if ps != nil && ps.index == md.GetIndex() {
		delete(s.snaps.mu.pending, p.r.rangeID)
	}
	s.snaps.mu.Unlock()
	if ps == nil || ps.index != md.GetIndex() {
		s.fatal(p.r, "apply snapshot", fmt.Errorf("raft accepted a snapshot at index %d whose data is not here", md.GetIndex()))
	}
	old := p.r.Descriptor()
	for _, d := range []*rangekvpb.RangeDescriptor{old, ps.desc} {
		lo, hi := keys.UserSpan(d.StartKey, d.EndKey)
		s.must(p.r, wb.DeleteRange(lo, hi, nil))
	}
	for _, kv := range ps.pairs {
		s.must(p.r, wb.Set(keys.UserKey(kv.Key), kv.Value, nil))
	}
	for _, kv := range []struct {
		k []byte
		m proto.Message
	}{
		{keys.DescriptorKey(p.r.rangeID), ps.desc},
		{keys.AppliedStateKey(p.r.rangeID), &rangekvpb.AppliedState{Index: ps.index, Term: ps.term}},
	} {
		v, err := proto.Marshal(kv.m)
		s.must(p.r, err)
		s.must(p.r, wb.Set(kv.k, v, nil))
	}
	s.must(p.r, p.r.log.StageSnapshot(wb, ps.index, ps.term))
	return ps
}

// finishSnapshot makes a committed snapshot visible. Called with p.r.mu held.
func (s *Store) finishSnapshot(p *pass) {
	ps := p.snap
	p.r.desc.Store(ps.desc)
	p.r.log.FinishSnapshot(ps.index, ps.term, confStateOf(ps.desc))
	p.r.mu.applied.Index, p.r.mu.applied.Term = ps.index, ps.term
	p.r.appliedIndex.Store(ps.index)
	p.r.mu.rr.AppliedSnapshot(ps.index, ps.term)
	s.metrics.snapshotsApplied.Inc()
	s.log.Info("applied snapshot", "range", p.r.rangeID, "index", ps.index, "pairs", len(ps.pairs))
}
