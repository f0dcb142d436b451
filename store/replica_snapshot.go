// Ingesting the snapshot raft accepted for a replica: in the worker's
// pass, before anything of the pass is acknowledged, the received SST and
// one with the range-local state go in with one Pebble Ingest, and the
// replica then covers the span. Receiving and sending snapshots is
// store_snapshots.go's.

package store

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// ingestSnapshot atomically replaces the range's data and local state with
// the snapshot raft accepted, before anything of this pass is acknowledged.
// rd is the Ready that carries it. Called with r.mu held.
func (r *Replica) ingestSnapshot(rd *raft.Ready) *pendingSnapshot {
	s := r.store
	m := s.snaps
	md := rd.Snapshot.GetMetadata()
	id, _ := decodeSnapID(rd.Snapshot.GetData())
	m.mu.Lock()
	ps := m.mu.pending[id]
	delete(m.mu.pending, id)
	// Its placeholder stays until finishSnapshot has indexed the replica.
	var overlap error
	if ps != nil {
		overlap = m.overlapLocked(ps.desc, id)
	}
	m.mu.Unlock()
	// Invariant: a snapshot is ingested only if raft returned the very one
	// whose data we hold (admit steps no MsgSnap without it, and nothing
	// drops a pending snapshot while the worker holds r.mu).
	if ps == nil || ps.r != r || ps.index != md.GetIndex() || ps.term != md.GetTerm() {
		r.fatal("apply snapshot", fmt.Errorf("raft accepted a snapshot at index %d (id %d) whose data is not here", md.GetIndex(), id))
	}
	// Invariant: its range deletion wipes no other replica's data (admit
	// checked just before raft accepted it, and placeholders exclude every
	// other way a span gets a replica meanwhile).
	if overlap != nil {
		r.fatal("apply snapshot", overlap)
	}
	hs := rd.HardState
	if hs == nil || raft.IsEmptyHardState(hs) {
		cur, _, _ := r.log.InitialState()
		hs = cur
	}
	hs = proto.CloneOf(hs)
	if hs.GetCommit() < ps.index {
		hs.Commit = proto.Uint64(ps.index)
	}
	localPath, w, err := m.newSST(fmt.Sprintf("r%d-local", r.rangeID))
	r.must(err)
	r.must(w.DeleteRange(keys.RangeLocalPrefix(r.rangeID), keys.RangeLocalEnd(r.rangeID)))
	var ts rangekvpb.RangeTombstone
	hasTS, err := getProto(s.db, keys.TombstoneKey(r.rangeID), &ts)
	r.must(err)
	// Keys in engine order: 'a' < 'd' < 'h' < 't' < 'x'.
	entries := []struct {
		k []byte
		m proto.Message
	}{
		{keys.AppliedStateKey(r.rangeID), &rangekvpb.AppliedState{Index: ps.index, Term: ps.term}},
		{keys.DescriptorKey(r.rangeID), ps.desc},
		{keys.HardStateKey(r.rangeID), hs},
		{keys.TruncatedStateKey(r.rangeID), &rangekvpb.TruncatedState{Index: ps.index, Term: ps.term}},
	}
	if hasTS {
		entries = append(entries, struct {
			k []byte
			m proto.Message
		}{keys.TombstoneKey(r.rangeID), &ts})
	}
	for _, e := range entries {
		v, err := proto.Marshal(e.m)
		r.must(err)
		r.must(w.Set(e.k, v))
	}
	r.must(w.Close())
	if err := s.db.Ingest(context.Background(), []string{ps.userSST, localPath}); err != nil {
		r.fatal("ingest snapshot", err)
	}
	return ps
}

// finishSnapshot makes an ingested snapshot visible. Called with p.r.mu held.
func (r *Replica) finishSnapshot(p *pass) {
	s := r.store
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
	// The replica now covers the span: the placeholder may go.
	s.snaps.release(ps.id)
	s.metrics.snapshotsApplied.Inc()
	s.log.Info("applied snapshot", "range", p.r.rangeID, "index", ps.index, "pairs", ps.pairs)
}
