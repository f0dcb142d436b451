package logstore

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Reader is the subset of Pebble reads the log needs; *pebble.DB, batches
// and snapshots satisfy it.
type Reader interface {
	Get(key []byte) ([]byte, ioCloser, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// Writer is the subset of Pebble writes the log stages into.
type Writer interface {
	Set(key, value []byte, o *pebble.WriteOptions) error
	Delete(key []byte, o *pebble.WriteOptions) error
	DeleteRange(start, end []byte, o *pebble.WriteOptions) error
}

// RangeLog is the raft.Storage of one range.
type RangeLog struct {
	db      Reader
	rangeID uint64

	mu struct {
		sync.Mutex
		hardState *pb.HardState
		confState *pb.ConfState
		// truncated and applied hold (index, term).
		truncated indexTerm
		applied   indexTerm
		lastIndex uint64
		lastTerm  uint64
		// cache holds the entries appended but not yet applied, so that
		// raft reads committed entries (and their terms) from memory
		// instead of Pebble; see entrycache.go.
		cache entryCache
	}
}

var _ raft.Storage = (*RangeLog)(nil)

// Load reads the persisted Raft state of rangeID. confState and applied come
// from the state machine (the range descriptor and applied state).
func Load(db Reader, rangeID uint64, confState *pb.ConfState, applied *rangekvpb.AppliedState) (*RangeLog, error) {
	l := &RangeLog{db: db, rangeID: rangeID}
	l.mu.hardState = &pb.HardState{}
	if err := getProto(db, keys.HardStateKey(rangeID), l.mu.hardState); err != nil {
		return nil, err
	}
	var tr rangekvpb.TruncatedState
	if err := getProto(db, keys.TruncatedStateKey(rangeID), &tr); err != nil {
		return nil, err
	}
	l.mu.truncated = indexTerm{tr.Index, tr.Term}
	l.mu.confState = &pb.ConfState{}
	if confState != nil {
		l.mu.confState = proto.CloneOf(confState)
	}
	if applied != nil {
		l.mu.applied = indexTerm{applied.Index, applied.Term}
	}
	// The last index is the last stored entry, or the truncated index when
	// the log is empty.
	l.mu.lastIndex, l.mu.lastTerm = l.mu.truncated.Index, l.mu.truncated.Term
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keys.LogPrefix(rangeID), UpperBound: keys.LogEnd(rangeID)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if it.Last() {
		var e pb.Entry
		if err := proto.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("logstore: range %d: decode last entry: %w", rangeID, err)
		}
		// The entry's own index must be the one its key stores it under:
		// a corrupt record would otherwise set the last index anywhere.
		if _, keyIndex, err := keys.DecodeLogEntryKey(it.Key()); err != nil || keyIndex != e.GetIndex() {
			return nil, fmt.Errorf("logstore: range %d: last entry stored at key %x says index %d", rangeID, it.Key(), e.GetIndex())
		}
		if e.GetIndex() > l.mu.truncated.Index {
			l.mu.lastIndex, l.mu.lastTerm = e.GetIndex(), e.GetTerm()
		}
	}
	// Invariant: applied <= commit after restart; a commit index that
	// regressed below applied (it is synced lazily) is repaired upward.
	if l.mu.hardState.GetCommit() < l.mu.applied.Index {
		l.mu.hardState.Commit = proto.Uint64(l.mu.applied.Index)
	}
	if l.mu.hardState.GetCommit() > l.mu.lastIndex {
		return nil, fmt.Errorf("logstore: range %d: commit %d beyond last index %d: log lost",
			rangeID, l.mu.hardState.GetCommit(), l.mu.lastIndex)
	}
	return l, nil
}

type ioCloser = io.Closer

type indexTerm struct{ Index, Term uint64 }

func getProto(r Reader, key []byte, m proto.Message) error {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("logstore: decode %x: %w", key, err)
	}
	return nil
}

// RangeID is the range this log belongs to.
func (l *RangeLog) RangeID() uint64 { return l.rangeID }

// InitialState implements raft.Storage.
func (l *RangeLog) InitialState() (*pb.HardState, *pb.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return proto.CloneOf(l.mu.hardState), proto.CloneOf(l.mu.confState), nil
}

// Entries implements raft.Storage.
func (l *RangeLog) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	l.mu.Lock()
	first, last := l.mu.truncated.Index+1, l.mu.lastIndex
	if lo >= first && hi <= last+1 {
		if ents, ok := l.mu.cache.get(lo, hi, maxSize); ok {
			l.mu.Unlock()
			return ents, nil
		}
	}
	l.mu.Unlock()
	if lo < first {
		return nil, raft.ErrCompacted
	}
	if hi > last+1 {
		return nil, fmt.Errorf("logstore: range %d: entries [%d,%d) beyond last index %d: %w", l.rangeID, lo, hi, last, raft.ErrUnavailable)
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: keys.LogEntryKey(l.rangeID, lo), UpperBound: keys.LogEntryKey(l.rangeID, hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ents := make([]*pb.Entry, 0, hi-lo)
	var size uint64
	want := lo
	for valid := it.First(); valid; valid = it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("logstore: range %d: decode entry: %w", l.rangeID, err)
		}
		if len(ents) == 0 && e.GetIndex() > lo {
			// A truncation committed between the bounds check and the
			// read removed entry lo.
			return nil, raft.ErrCompacted
		}
		if e.GetIndex() != want {
			return nil, fmt.Errorf("logstore: range %d: entry %d missing (found %d): %w", l.rangeID, want, e.GetIndex(), raft.ErrUnavailable)
		}
		size += uint64(proto.Size(e))
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
		want++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 && lo < hi {
		// Truncated concurrently between the bounds check and the read.
		return nil, raft.ErrCompacted
	}
	return ents, nil
}

// Term implements raft.Storage.
func (l *RangeLog) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	tr, last, lastTerm := l.mu.truncated, l.mu.lastIndex, l.mu.lastTerm
	cachedTerm, cached := l.mu.cache.term(i)
	l.mu.Unlock()
	if cached && i > tr.Index && i <= last {
		return cachedTerm, nil
	}
	switch {
	case i == tr.Index:
		return tr.Term, nil
	case i < tr.Index:
		return 0, raft.ErrCompacted
	case i > last:
		return 0, raft.ErrUnavailable
	case i == last:
		return lastTerm, nil
	}
	var e pb.Entry
	v, c, err := l.db.Get(keys.LogEntryKey(l.rangeID, i))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, raft.ErrCompacted
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := proto.Unmarshal(v, &e); err != nil {
		return 0, fmt.Errorf("logstore: range %d: decode entry %d: %w", l.rangeID, i, err)
	}
	return e.GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (l *RangeLog) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.lastIndex, nil
}

// FirstIndex implements raft.Storage.
func (l *RangeLog) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.truncated.Index + 1, nil
}

// Snapshot implements raft.Storage. It returns metadata only (the applied
// index, its term and the conf state); the data is read from a Pebble
// snapshot when the MsgSnap is sent, and the sender rewrites the metadata to
// match that read.
func (l *RangeLog) Snapshot() (*pb.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     proto.Uint64(l.mu.applied.Index),
		Term:      proto.Uint64(l.mu.applied.Term),
		ConfState: proto.CloneOf(l.mu.confState),
	}}, nil
}

// AppendUpdate is what StageAppend staged; pass it to FinishAppend after the
// batch committed.
type AppendUpdate struct {
	lastIndex, lastTerm uint64
	hardState           *pb.HardState
	appended            int
	ents                []*pb.Entry
}

// Appended is the number of entries the update persisted.
func (u AppendUpdate) Appended() int { return u.appended }

// StageAppend writes entries and the hard state (if not empty) into w, and
// deletes stored entries the new ones replace.
// Invariant: entries and hard state go into the same batch.
func (l *RangeLog) StageAppend(w Writer, ents []*pb.Entry, hs *pb.HardState) (AppendUpdate, error) {
	return l.StageAppendApplied(w, ents, hs, 0)
}

// StageAppendApplied is StageAppend into a batch w that also records the
// state machine's applied index as applied (0: it records none). A hard
// state that differs from the current one only in a commit index at or
// below applied is not written: Load repairs a persisted commit below the
// applied index up to it, so a restart reads the same state either way,
// and the batch saves a write per group (with many groups and one entry
// each per pass, the commit moves in nearly every Ready).
// Invariant: the term and vote on disk are always the current ones; only
// the commit index may lag, and never below the applied index on disk.
func (l *RangeLog) StageAppendApplied(w Writer, ents []*pb.Entry, hs *pb.HardState, applied uint64) (AppendUpdate, error) {
	l.mu.Lock()
	u := AppendUpdate{lastIndex: l.mu.lastIndex, lastTerm: l.mu.lastTerm}
	cur := l.mu.hardState
	l.mu.Unlock()
	if len(ents) > 0 {
		for _, e := range ents {
			b, err := proto.Marshal(e)
			if err != nil {
				return u, err
			}
			if err := w.Set(keys.LogEntryKey(l.rangeID, e.GetIndex()), b, nil); err != nil {
				return u, err
			}
		}
		last := ents[len(ents)-1]
		if last.GetIndex() < u.lastIndex {
			// A new leader overwrote our tail: drop the entries past the
			// new last index.
			if err := w.DeleteRange(keys.LogEntryKey(l.rangeID, last.GetIndex()+1), keys.LogEnd(l.rangeID), nil); err != nil {
				return u, err
			}
		}
		u.lastIndex, u.lastTerm = last.GetIndex(), last.GetTerm()
		u.appended = len(ents)
		u.ents = ents
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		u.hardState = proto.CloneOf(hs)
		if hs.GetTerm() == cur.GetTerm() && hs.GetVote() == cur.GetVote() && hs.GetCommit() <= applied {
			return u, nil // commit only, and covered by the applied index
		}
		b, err := proto.Marshal(hs)
		if err != nil {
			return u, err
		}
		if err := w.Set(keys.HardStateKey(l.rangeID), b, nil); err != nil {
			return u, err
		}
	}
	return u, nil
}

// FinishAppend makes a committed StageAppend visible to raft.
func (l *RangeLog) FinishAppend(u AppendUpdate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u.appended > 0 {
		l.mu.lastIndex, l.mu.lastTerm = u.lastIndex, u.lastTerm
		l.mu.cache.append(u.ents, l.mu.applied.Index)
	}
	if u.hardState != nil {
		l.mu.hardState = u.hardState
	}
}

// StageTruncate deletes the entries up to index and records the truncated
// state in w, the apply batch that also carries an applied index >= index.
// pending is the append staged into the same batch and not yet finished
// (the zero AppendUpdate if none): a batch that both appends entries and
// applies a truncation of them must count them as in the log. It returns
// false (and stages nothing) when index is not past the current truncated
// index or not in the log.
func (l *RangeLog) StageTruncate(w Writer, index, term uint64, pending AppendUpdate) (bool, error) {
	l.mu.Lock()
	tr, last := l.mu.truncated, l.mu.lastIndex
	if pending.appended > 0 {
		last = pending.lastIndex
	}
	if index > tr.Index && index <= last {
		// Reads of the doomed entries go to the engine from now on, so
		// they see the truncation as soon as it commits.
		l.mu.cache.dropThrough(index)
	}
	l.mu.Unlock()
	if index <= tr.Index || index > last {
		return false, nil
	}
	if err := w.DeleteRange(keys.LogEntryKey(l.rangeID, tr.Index+1), keys.LogEntryKey(l.rangeID, index+1), nil); err != nil {
		return false, err
	}
	b, err := proto.Marshal(&rangekvpb.TruncatedState{Index: index, Term: term})
	if err != nil {
		return false, err
	}
	return true, w.Set(keys.TruncatedStateKey(l.rangeID), b, nil)
}

// FinishTruncate makes a committed StageTruncate visible.
func (l *RangeLog) FinishTruncate(index, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index > l.mu.truncated.Index {
		l.mu.truncated = indexTerm{index, term}
		l.mu.cache.dropThrough(index)
	}
}

// StageSnapshot clears the whole log and sets the truncated state to the
// snapshot's index and term. The caller writes the data, applied state,
// descriptor and hard state in the same batch.
func (l *RangeLog) StageSnapshot(w Writer, index, term uint64) error {
	l.mu.Lock()
	l.mu.cache.reset()
	l.mu.Unlock()
	if err := w.DeleteRange(keys.LogPrefix(l.rangeID), keys.LogEnd(l.rangeID), nil); err != nil {
		return err
	}
	b, err := proto.Marshal(&rangekvpb.TruncatedState{Index: index, Term: term})
	if err != nil {
		return err
	}
	return w.Set(keys.TruncatedStateKey(l.rangeID), b, nil)
}

// FinishSnapshot makes a committed StageSnapshot visible.
func (l *RangeLog) FinishSnapshot(index, term uint64, cs *pb.ConfState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.truncated = indexTerm{index, term}
	l.mu.lastIndex, l.mu.lastTerm = index, term
	l.mu.applied = indexTerm{index, term}
	l.mu.cache.reset()
	if cs != nil {
		l.mu.confState = proto.CloneOf(cs)
	}
}

// SetApplied records the state machine's applied index, term and conf state
// for Snapshot.
func (l *RangeLog) SetApplied(index, term uint64, cs *pb.ConfState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.applied = indexTerm{index, term}
	l.mu.cache.dropThrough(index)
	if cs != nil {
		l.mu.confState = proto.CloneOf(cs)
	}
}

// Truncated returns the truncated state.
func (l *RangeLog) Truncated() (index, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.truncated.Index, l.mu.truncated.Term
}
