// Range snapshots (MULTIRAFT.md §5): sent on their own streaming RPC, read
// from one Pebble snapshot (so the data matches the index it claims),
// rate-limited and limited in concurrency per store. The receiver streams
// the data straight into an SST whose range deletion covers the range's
// span, and — once raft accepts the snapshot — writes a second SST with the
// range-local state (descriptor, applied and truncated state, hard state)
// over a range deletion of the old log, and ingests both in ONE Pebble
// Ingest call: a crash leaves the old replica state or the new one, never a
// mix.
//
// A received snapshot holds a placeholder over its span from before its
// data is read until it is ingested or dropped, and is known by an ID the
// receiver writes into the MsgSnap's Snapshot.Data: raft carries it to
// Ready.Snapshot, so the data ingested is that of the snapshot raft
// accepted, and every snapshot raft did not accept is dropped with its SST.

package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// pendingSnapshot is received data waiting for raft to accept its MsgSnap.
type pendingSnapshot struct {
	// id is the snapshot's identity on this store: the receiver writes it
	// into the MsgSnap's Snapshot.Data, raft carries it to Ready.Snapshot,
	// and only the data of that very snapshot is ingested.
	id uint64
	// r is the replica whose inbox got the MsgSnap.
	r           *Replica
	index, term uint64
	desc        *rangekvpb.RangeDescriptor
	userSST     string // path in the store's FS
	pairs       int
}

// snapIDLen is the length of a snapshot ID in Snapshot.Data.
const snapIDLen = 8

func encodeSnapID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// decodeSnapID reads the ID the receiver wrote into Snapshot.Data; false
// for a snapshot this store did not receive on its Snapshot RPC.
func decodeSnapID(data []byte) (uint64, bool) {
	if len(data) != snapIDLen {
		return 0, false
	}
	id := binary.BigEndian.Uint64(data)
	return id, id != 0
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

	// Lock order: mu before Store.mu.
	mu struct {
		sync.Mutex
		// lastID numbers received snapshots (IDs start at 1).
		lastID uint64
		// placeholders by snapshot ID: the span of each snapshot from its
		// reserve until it is ingested (released after the replica is
		// indexed) or dropped (stream error, overlap, raft rejected or
		// superseded it, replica destroyed, store stopped).
		// Invariant: no two placeholders of different ranges overlap, and
		// no placeholder overlaps an initialized replica of another range.
		placeholders map[uint64]*rangekvpb.RangeDescriptor
		// pending by snapshot ID: received data whose MsgSnap is queued for
		// (or being stepped into) its replica. Each one also holds its
		// placeholder.
		pending map[uint64]*pendingSnapshot
	}
}

func newSnapshotManager(s *Store) *snapshotManager {
	m := &snapshotManager{s: s, sem: make(chan struct{}, s.cfg.MaxConcurrentSnapshots)}
	m.limiter = rate.NewLimiter(rate.Limit(s.cfg.SnapshotRateBytes), max(s.cfg.SnapshotChunkBytes, 1<<20)*2)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.pending = make(map[uint64]*pendingSnapshot)
	m.mu.placeholders = make(map[uint64]*rangekvpb.RangeDescriptor)
	m.fs = s.cfg.FS
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
	clear(m.mu.placeholders)
	m.mu.Unlock()
}

// send streams a snapshot for msg (a MsgSnap from raft) in the background
// and reports the outcome to raft through the replica's inbox. The
// goroutine starts through PassPoints.Wake when set: the pass that sends
// goes on applying, and a sender that ran beside it would read the
// range's state before or after those applies, and take the semaphore
// before or after the pass's other snapshots, as the Go scheduler has it.
func (m *snapshotManager) send(r *Replica, toStore uint64, msg *pb.Message) {
	m.wg.Add(1)
	start := func() { go m.sendNow(r, toStore, msg) }
	if pp := m.s.cfg.PassPoints; pp != nil {
		pp.Wake(start)
		return
	}
	start()
}

// sendNow is send's goroutine.
func (m *snapshotManager) sendNow(r *Replica, toStore uint64, msg *pb.Message) {
	defer m.wg.Done()
	if m.ctx.Err() != nil {
		return // closed before it started (select would pick at random)
	}
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
		if err := clock.WaitN(ctx, m.s.cfg.Clock, m.limiter, min(size, m.limiter.Burst())); err != nil {
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
// placeholder over its span, returning the snapshot's ID. The placeholder
// is held until the snapshot is ingested or dropped (see mu.placeholders).
func (m *snapshotManager) reserve(desc *rangekvpb.RangeDescriptor, toReplica uint64) (uint64, error) {
	me := replicaOnStore(desc, m.s.cfg.StoreID)
	if me == nil || me.ReplicaId != toReplica {
		return 0, fmt.Errorf("snapshot of range %d does not list replica %d on store %d", desc.RangeId, toReplica, m.s.cfg.StoreID)
	}
	if r := m.s.replica(desc.RangeId); r != nil {
		if cur := r.Descriptor(); cur != nil && cur.GetEpoch().GetVersion() > desc.GetEpoch().GetVersion() {
			return 0, fmt.Errorf("snapshot of range %d is older (version %d) than the local replica (version %d)",
				desc.RangeId, desc.GetEpoch().GetVersion(), cur.GetEpoch().GetVersion())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.overlapLocked(desc, 0); err != nil {
		return 0, err
	}
	m.mu.lastID++
	id := m.mu.lastID
	m.mu.placeholders[id] = desc
	return id, nil
}

// overlapLocked reports why desc's span may not be ingested here: an
// initialized replica of another range, a placeholder of another range
// (other than snapshot self's own), or the right half of a split applied
// here but not yet installed overlaps it. Snapshots of the same
// range (from an old and a new leader) may be pending together: raft picks
// at most one of them. Called with m.mu held; checking both under m.mu
// leaves no gap, as an ingested snapshot's placeholder is released only
// after its replica is indexed.
func (m *snapshotManager) overlapLocked(desc *rangekvpb.RangeDescriptor, self uint64) error {
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
	// The right half of a split applied here but not installed yet
	// (finishSplits runs after the worker's locks are free): the parent
	// no longer covers its span and no replica does yet.
	for id, d := range m.s.mu.pendingRHS {
		if id != desc.RangeId && spansOverlap(d, desc) {
			m.s.mu.RUnlock()
			return fmt.Errorf("snapshot of range %d overlaps range %d, the right half of a split applied here and not yet installed", desc.RangeId, id)
		}
	}
	m.s.mu.RUnlock()
	for id, d := range m.mu.placeholders {
		if id != self && d.RangeId != desc.RangeId && spansOverlap(d, desc) {
			return fmt.Errorf("snapshot of range %d overlaps a pending snapshot of range %d", desc.RangeId, d.RangeId)
		}
	}
	return nil
}

// release frees the placeholder of snapshot id.
func (m *snapshotManager) release(id uint64) {
	m.mu.Lock()
	delete(m.mu.placeholders, id)
	m.mu.Unlock()
}

// discard drops snapshot id: its data (if received), its pending entry and
// its placeholder. Idempotent.
func (m *snapshotManager) discard(id uint64, why string) {
	m.mu.Lock()
	ps := m.mu.pending[id]
	delete(m.mu.pending, id)
	delete(m.mu.placeholders, id)
	m.mu.Unlock()
	if ps != nil {
		_ = m.fs.Remove(ps.userSST)
		m.s.log.Info("snapshot dropped", "range", ps.desc.RangeId, "index", ps.index, "term", ps.term, "reason", why)
	}
}

// dropReplica discards every pending snapshot queued for r: r is destroyed
// and its inbox failed, so their MsgSnaps will never be stepped.
func (m *snapshotManager) dropReplica(r *Replica) {
	m.mu.Lock()
	var ids []uint64
	for id, ps := range m.mu.pending {
		if ps.r == r {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.discard(id, "replica destroyed")
	}
}

// admit decides, just before raft sees a MsgSnap, whether it may be
// stepped: its data must be here, queued for r, and its span must still
// overlap no other range's replica or placeholder (re-checked here because
// raft's acceptance cannot be undone, and Ready.Snapshot is then ingested
// in this same pass with r.mu held). A snapshot that fails is discarded.
// Called with r.mu held.
func (m *snapshotManager) admit(r *Replica, msg *pb.Message) (uint64, bool) {
	id, ok := decodeSnapID(msg.GetSnapshot().GetData())
	m.mu.Lock()
	ps := m.mu.pending[id]
	if !ok || ps == nil || ps.r != r {
		m.mu.Unlock()
		m.s.metrics.messagesDropped.WithLabelValues("snapshot_without_data").Inc()
		return 0, false
	}
	err := m.overlapLocked(ps.desc, id)
	m.mu.Unlock()
	if err != nil {
		m.discard(id, err.Error())
		return 0, false
	}
	return id, true
}

// settle discards the snapshots stepped in this pass that raft did not
// return in Ready.Snapshot (accepted, possibly nil): raft rejected them (at
// or below its commit, a stale term, not in the ConfState) or a later one
// stepped in the same pass superseded them. Called with r.mu held, right
// after Ready.
func (m *snapshotManager) settle(stepped []uint64, accepted *pb.Snapshot) {
	keep, _ := decodeSnapID(accepted.GetData())
	for _, id := range stepped {
		if id != keep {
			m.discard(id, "not accepted by raft")
		}
	}
}

func (m *snapshotManager) newSST(name string) (string, *sstable.Writer, error) {
	if err := m.fs.MkdirAll(m.dir, 0o755); err != nil {
		return "", nil, err
	}
	var rnd [8]byte
	if _, err := io.ReadFull(m.s.cfg.Rand, rnd[:]); err != nil {
		return "", nil, err
	}
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
