// Range snapshots (MULTIRAFT.md §5): sent on their own streaming RPC, read
// from one Pebble snapshot (so the data matches the index it claims),
// rate-limited and limited in concurrency per store. The receiver streams
// the data straight into an SST whose range deletion covers the range's
// span, and — once raft accepts the snapshot — writes a second SST with the
// range-local state (descriptor, applied and truncated state, hard state)
// over a range deletion of the old log, and ingests both in ONE Pebble
// Ingest call: a crash leaves the old replica state or the new one, never a
// mix.
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// pendingSnapshot is received data waiting for raft to accept its MsgSnap.
type pendingSnapshot struct {
	index, term uint64
	desc        *rangekvpb.RangeDescriptor
	userSST     string // path in the store's FS
	pairs       int
}

type snapshotManager struct {
	s       *Store
	sem     chan struct{}
	limiter *rate.Limiter
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	fs      vfs.FS
	dir     string

	mu struct {
		sync.Mutex
		// pending by range ID (the latest only); placeholders reserve the
		// span of a snapshot being received.
		pending      map[uint64]*pendingSnapshot
		placeholders map[uint64]*rangekvpb.RangeDescriptor
	}
}

func newSnapshotManager(s *Store) *snapshotManager {
	m := &snapshotManager{s: s, sem: make(chan struct{}, s.cfg.MaxConcurrentSnapshots)}
	m.limiter = rate.NewLimiter(rate.Limit(s.cfg.SnapshotRateBytes), max(s.cfg.SnapshotChunkBytes, 1<<20)*2)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.pending = make(map[uint64]*pendingSnapshot)
	m.mu.placeholders = make(map[uint64]*rangekvpb.RangeDescriptor)
	m.fs = vfs.Default
	if s.cfg.FS != nil {
		m.fs = s.cfg.FS
	}
	m.dir = m.fs.PathJoin(s.cfg.DataDir, "snapshots")
	// Leftovers of snapshots received before a crash are never ingested.
	_ = m.fs.RemoveAll(m.dir)
	return m
}

func (m *snapshotManager) close() {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	for id, ps := range m.mu.pending {
		_ = m.fs.Remove(ps.userSST)
		delete(m.mu.pending, id)
	}
	m.mu.Unlock()
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
	flush := func() error {
		if err := m.limiter.WaitN(ctx, min(size, m.limiter.Burst())); err != nil {
			return err
		}
		if err := st.Send(chunk); err != nil {
			return err
		}
		m.s.metrics.snapshotBytesSent.Add(float64(size))
		chunk, size = &rangekvpb.SnapshotChunk{}, 0
		return nil
	}
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
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	chunk.Final = true
	if err := flush(); err != nil {
		return err
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if !resp.Accepted {
		return fmt.Errorf("rejected by store %d: %s", toStore, resp.Reason)
	}
	return nil
}

func spansOverlap(a, b *rangekvpb.RangeDescriptor) bool {
	// [a.start, a.end) ∩ [b.start, b.end) with empty end = +inf.
	aBeforeB := len(a.EndKey) > 0 && bytes.Compare(a.EndKey, b.StartKey) <= 0
	bBeforeA := len(b.EndKey) > 0 && bytes.Compare(b.EndKey, a.StartKey) <= 0
	return !aBeforeB && !bBeforeA
}

// reserve checks that a snapshot of desc may be received here and takes a
// placeholder over its span. The caller releases it with release.
func (m *snapshotManager) reserve(desc *rangekvpb.RangeDescriptor, toReplica uint64) error {
	me := replicaOnStore(desc, m.s.cfg.StoreID)
	if me == nil || me.ReplicaId != toReplica {
		return fmt.Errorf("snapshot of range %d does not list replica %d on store %d", desc.RangeId, toReplica, m.s.cfg.StoreID)
	}
	if r := m.s.replica(desc.RangeId); r != nil {
		if cur := r.Descriptor(); cur != nil && cur.GetEpoch().GetVersion() > desc.GetEpoch().GetVersion() {
			return fmt.Errorf("snapshot of range %d is older (version %d) than the local replica (version %d)",
				desc.RangeId, desc.GetEpoch().GetVersion(), cur.GetEpoch().GetVersion())
		}
	}
	m.s.mu.RLock()
	for id, r := range m.s.mu.replicas {
		if d := r.Descriptor(); id != desc.RangeId && d != nil && spansOverlap(d, desc) {
			m.s.mu.RUnlock()
			// The overlapping replica may be a stale one nobody will
			// remove through raft (MULTIRAFT.md §5): have placement say.
			m.s.queueGC(id, fmt.Sprintf("blocks a snapshot of range %d", desc.RangeId))
			return fmt.Errorf("snapshot of range %d overlaps local range %d (waiting for its split or removal)", desc.RangeId, id)
		}
	}
	m.s.mu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, d := range m.mu.placeholders {
		if spansOverlap(d, desc) {
			return fmt.Errorf("snapshot of range %d overlaps a snapshot of range %d being received", desc.RangeId, id)
		}
	}
	m.mu.placeholders[desc.RangeId] = desc
	return nil
}

func (m *snapshotManager) release(rangeID uint64) {
	m.mu.Lock()
	delete(m.mu.placeholders, rangeID)
	m.mu.Unlock()
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
	if err := m.reserve(h.Descriptor_, h.Message.GetTo()); err != nil {
		return reject(err)
	}
	defer m.release(h.RangeId)
	r := s.replica(h.RangeId)
	if r == nil {
		if r = s.createUninitialized(h.RangeId, h.Message.GetTo()); r == nil {
			return reject(fmt.Errorf("replica %d of range %d is tombstoned here", h.Message.GetTo(), h.RangeId))
		}
	}
	ps := &pendingSnapshot{
		index: h.Message.Snapshot.GetMetadata().GetIndex(),
		term:  h.Message.Snapshot.GetMetadata().GetTerm(),
		desc:  h.Descriptor_,
	}
	path, n, err := m.receiveSST(stream, first, h)
	if err != nil {
		return reject(err)
	}
	ps.userSST, ps.pairs = path, n
	m.mu.Lock()
	if old := m.mu.pending[h.RangeId]; old != nil {
		_ = m.fs.Remove(old.userSST)
	}
	m.mu.pending[h.RangeId] = ps
	m.mu.Unlock()
	if !r.pushMessage(inMsg{m: h.Message, fromStore: h.FromStore}, s.cfg.InboxSize) {
		return reject(errors.New("replica inbox full"))
	}
	s.sched.enqueue(h.RangeId, flagWork)
	return stream.SendAndClose(&rangekvpb.SnapshotResponse{Accepted: true})
}

func (m *snapshotManager) newSST(name string) (string, *sstable.Writer, error) {
	if err := m.fs.MkdirAll(m.dir, 0o755); err != nil {
		return "", nil, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	path := m.fs.PathJoin(m.dir, name+"-"+hex.EncodeToString(rnd[:])+".sst")
	f, err := m.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return "", nil, err
	}
	opts := m.s.pebbleOpts.MakeWriterOptions(0, m.s.db.TableFormat())
	return path, sstable.NewWriter(objstorageprovider.NewFileWritable(f), opts), nil
}

// receiveSST writes the stream's pairs into an SST that first deletes the
// range's whole user span.
func (m *snapshotManager) receiveSST(stream rangekvpb.Raft_SnapshotServer, first *rangekvpb.SnapshotChunk, h *rangekvpb.SnapshotHeader) (string, int, error) {
	path, w, err := m.newSST(fmt.Sprintf("r%d-user", h.RangeId))
	if err != nil {
		return "", 0, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = w.Close()
			_ = m.fs.Remove(path)
		}
	}()
	lo, hi := keys.UserSpan(h.Descriptor_.StartKey, h.Descriptor_.EndKey)
	if err := w.DeleteRange(lo, hi); err != nil {
		return "", 0, err
	}
	n := 0
	var prev []byte
	for chunk := first; ; {
		for _, kv := range chunk.Pairs {
			k := keys.UserKey(kv.Key)
			if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 || (prev != nil && bytes.Compare(k, prev) <= 0) {
				return "", 0, fmt.Errorf("snapshot key %q out of order or outside the range", kv.Key)
			}
			if err := w.Set(k, kv.Value); err != nil {
				return "", 0, err
			}
			prev = k
			n++
			m.s.metrics.snapshotBytesRecv.Add(float64(len(kv.Key) + len(kv.Value)))
		}
		if chunk.Final {
			break
		}
		chunk, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return "", 0, errors.New("stream ended before the final chunk")
		}
		if err != nil {
			return "", 0, err
		}
	}
	if err := w.Close(); err != nil {
		return "", 0, err
	}
	ok = true
	return path, n, nil
}

// ingestSnapshot atomically replaces the range's data and local state with
// the snapshot raft accepted, before anything of this pass is acknowledged.
// Called with p.r.mu held.
func (s *Store) ingestSnapshot(p *pass) *pendingSnapshot {
	m := s.snaps
	md := p.rd.Snapshot.GetMetadata()
	m.mu.Lock()
	ps := m.mu.pending[p.r.rangeID]
	if ps != nil && ps.index == md.GetIndex() {
		delete(m.mu.pending, p.r.rangeID)
	}
	m.mu.Unlock()
	// Invariant: a snapshot is ingested only if raft returned the one whose
	// data we hold.
	if ps == nil || ps.index != md.GetIndex() {
		s.fatal(p.r, "apply snapshot", fmt.Errorf("raft accepted a snapshot at index %d whose data is not here", md.GetIndex()))
	}
	hs := p.rd.HardState
	if hs == nil || raft.IsEmptyHardState(hs) {
		cur, _, _ := p.r.log.InitialState()
		hs = cur
	}
	hs = proto.CloneOf(hs)
	if hs.GetCommit() < ps.index {
		hs.Commit = proto.Uint64(ps.index)
	}
	localPath, w, err := m.newSST(fmt.Sprintf("r%d-local", p.r.rangeID))
	s.must(p.r, err)
	s.must(p.r, w.DeleteRange(keys.RangeLocalPrefix(p.r.rangeID), keys.RangeLocalEnd(p.r.rangeID)))
	var ts rangekvpb.RangeTombstone
	hasTS, err := getProto(s.db, keys.TombstoneKey(p.r.rangeID), &ts)
	s.must(p.r, err)
	// Keys in engine order: 'a' < 'd' < 'h' < 't' < 'x'.
	entries := []struct {
		k []byte
		m proto.Message
	}{
		{keys.AppliedStateKey(p.r.rangeID), &rangekvpb.AppliedState{Index: ps.index, Term: ps.term}},
		{keys.DescriptorKey(p.r.rangeID), ps.desc},
		{keys.HardStateKey(p.r.rangeID), hs},
		{keys.TruncatedStateKey(p.r.rangeID), &rangekvpb.TruncatedState{Index: ps.index, Term: ps.term}},
	}
	if hasTS {
		entries = append(entries, struct {
			k []byte
			m proto.Message
		}{keys.TombstoneKey(p.r.rangeID), &ts})
	}
	for _, e := range entries {
		v, err := proto.Marshal(e.m)
		s.must(p.r, err)
		s.must(p.r, w.Set(e.k, v))
	}
	s.must(p.r, w.Close())
	if err := s.db.Ingest(context.Background(), []string{ps.userSST, localPath}); err != nil {
		s.fatal(p.r, "ingest snapshot", err)
	}
	return ps
}

// finishSnapshot makes an ingested snapshot visible. Called with p.r.mu held.
func (s *Store) finishSnapshot(p *pass) {
	ps := p.snap
	wasInit := p.r.Descriptor() != nil
	p.r.log.FinishSnapshot(ps.index, ps.term, confStateOf(ps.desc))
	p.r.mu.applied.Index, p.r.mu.applied.Term = ps.index, ps.term
	p.r.appliedIndex.Store(ps.index)
	p.r.desc.Store(ps.desc)
	p.r.mu.rr.AppliedSnapshot(ps.index, ps.term)
	if !wasInit {
		s.indexReplica(p.r)
	} else {
		s.reindex()
	}
	s.metrics.snapshotsApplied.Inc()
	s.log.Info("applied snapshot", "range", p.r.rangeID, "index", ps.index, "pairs", ps.pairs)
}
