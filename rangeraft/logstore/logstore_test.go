package logstore

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const noLimit = math.MaxUint64

// ---------------------------------------------------------------------------
// Engine fixtures: every test runs against an in-memory and an on-disk Pebble.

type testEngine struct {
	t    *testing.T
	dir  string
	fs   vfs.FS // nil: the default (OS) file system
	db   *pebble.DB
	open bool
}

// quietLogger keeps Pebble's informational WAL-replay chatter out of the
// test output but still surfaces errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(format string, args ...any) { log.Printf(format, args...) }
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (e *testEngine) options() *pebble.Options {
	o := &pebble.Options{Logger: quietLogger{}}
	if e.fs != nil {
		o.FS = e.fs
	}
	return o
}

func (e *testEngine) start() {
	e.t.Helper()
	db, err := pebble.Open(e.dir, e.options())
	if err != nil {
		e.t.Fatalf("pebble.Open(%q): %v", e.dir, err)
	}
	e.db, e.open = db, true
}

func (e *testEngine) close() {
	e.t.Helper()
	if !e.open {
		return
	}
	e.open = false
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
}

// reopen closes and reopens the engine: a process restart. The on-disk
// engine reopens its directory; the in-memory one reuses the same MemFS.
func (e *testEngine) reopen() {
	e.t.Helper()
	e.close()
	e.start()
}

// forEachEngine runs fn once on an in-memory and once on an on-disk Pebble.
func forEachEngine(t *testing.T, fn func(t *testing.T, e *testEngine)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) *testEngine
	}{
		{"mem", func(t *testing.T) *testEngine { return &testEngine{t: t, dir: "", fs: vfs.NewMem()} }},
		{"disk", func(t *testing.T) *testEngine { return &testEngine{t: t, dir: t.TempDir()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.mk(t)
			e.start()
			t.Cleanup(func() {
				if e.open {
					e.open = false
					if err := e.db.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				}
			})
			fn(t, e)
		})
	}
}

// ---------------------------------------------------------------------------
// Helpers.

func ent(index, term uint64, data string) *pb.Entry {
	// Type stays unset, as in the entries raft itself creates.
	e := &pb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term)}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// entsRange returns entries [lo, hi) of the given term with distinct data.
func entsRange(lo, hi, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := lo; i < hi; i++ {
		out = append(out, ent(i, term, fmt.Sprintf("data-%d-%d", i, term)))
	}
	return out
}

func hardState(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func mustLoad(t *testing.T, e *testEngine, rangeID uint64, cs *pb.ConfState, applied *rangekvpb.AppliedState) *RangeLog {
	t.Helper()
	l, err := Load(e.db, rangeID, cs, applied)
	if err != nil {
		t.Fatalf("Load(range %d): %v", rangeID, err)
	}
	return l
}

func commitBatch(t *testing.T, b *pebble.Batch) {
	t.Helper()
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close batch: %v", err)
	}
}

// appendEnts stages an append, commits it and finishes it.
func appendEnts(t *testing.T, e *testEngine, l *RangeLog, ents []*pb.Entry, hs *pb.HardState) AppendUpdate {
	t.Helper()
	b := e.db.NewBatch()
	u, err := l.StageAppend(b, ents, hs)
	if err != nil {
		t.Fatalf("StageAppend: %v", err)
	}
	commitBatch(t, b)
	l.FinishAppend(u)
	return u
}

// truncate stages a truncation, commits it and finishes it.
func truncate(t *testing.T, e *testEngine, l *RangeLog, index, term uint64) {
	t.Helper()
	b := e.db.NewBatch()
	ok, err := l.StageTruncate(b, index, term, AppendUpdate{})
	if err != nil {
		t.Fatalf("StageTruncate(%d, %d): %v", index, term, err)
	}
	if !ok {
		t.Fatalf("StageTruncate(%d, %d) = false, want true", index, term)
	}
	commitBatch(t, b)
	l.FinishTruncate(index, term)
}

func snapshot(t *testing.T, e *testEngine, l *RangeLog, index, term uint64, cs *pb.ConfState) {
	t.Helper()
	b := e.db.NewBatch()
	if err := l.StageSnapshot(b, index, term); err != nil {
		t.Fatalf("StageSnapshot(%d, %d): %v", index, term, err)
	}
	commitBatch(t, b)
	l.FinishSnapshot(index, term, cs)
}

func checkBounds(t *testing.T, l *RangeLog, first, last uint64) {
	t.Helper()
	f, err := l.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	la, err := l.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || la != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, la, first, last)
	}
}

func checkTerm(t *testing.T, l *RangeLog, i, want uint64) {
	t.Helper()
	got, err := l.Term(i)
	if err != nil {
		t.Fatalf("Term(%d): %v", i, err)
	}
	if got != want {
		t.Fatalf("Term(%d) = %d, want %d", i, got, want)
	}
}

func checkTermErr(t *testing.T, l *RangeLog, i uint64, want error) {
	t.Helper()
	got, err := l.Term(i)
	if !errors.Is(err, want) {
		t.Fatalf("Term(%d) = %d, %v; want error %v", i, got, err, want)
	}
}

func checkEntries(t *testing.T, l *RangeLog, lo, hi, maxSize uint64, want []*pb.Entry) {
	t.Helper()
	got, err := l.Entries(lo, hi, maxSize)
	if err != nil {
		t.Fatalf("Entries(%d, %d, %d): %v", lo, hi, maxSize, err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(), cmpEmptySlices); diff != "" {
		t.Fatalf("Entries(%d, %d, %d) (-want +got):\n%s", lo, hi, maxSize, diff)
	}
}

// entriesEqual is a fast check before the (slow) cmp.Diff with protocmp.
func entriesEqual(a, b []*pb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y *pb.Entry) bool { return proto.Equal(x, y) })
}

// cmpEmptySlices treats nil and empty entry slices as equal.
var cmpEmptySlices = cmpopts.EquateEmpty()

func checkEntriesErr(t *testing.T, l *RangeLog, lo, hi, maxSize uint64, want error) {
	t.Helper()
	got, err := l.Entries(lo, hi, maxSize)
	if !errors.Is(err, want) {
		t.Fatalf("Entries(%d, %d, %d) = %d entries, %v; want error %v", lo, hi, maxSize, len(got), err, want)
	}
}

func checkHardState(t *testing.T, l *RangeLog, want *pb.HardState) {
	t.Helper()
	hs, _, err := l.InitialState()
	if err != nil {
		t.Fatalf("InitialState: %v", err)
	}
	if diff := cmp.Diff(want, hs, protocmp.Transform()); diff != "" {
		t.Fatalf("hard state (-want +got):\n%s", diff)
	}
}

// storedLogIndexes scans the engine directly for the log entry keys of
// rangeID.
func storedLogIndexes(t *testing.T, db Reader, rangeID uint64) []uint64 {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keys.LogPrefix(rangeID), UpperBound: keys.LogEnd(rangeID)})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for valid := it.First(); valid; valid = it.Next() {
		r, i, err := keys.DecodeLogEntryKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		if r != rangeID {
			t.Fatalf("log key of range %d inside range %d's log span", r, rangeID)
		}
		var e pb.Entry
		if err := proto.Unmarshal(it.Value(), &e); err != nil {
			t.Fatal(err)
		}
		if e.GetIndex() != i {
			t.Fatalf("log key index %d holds entry index %d", i, e.GetIndex())
		}
		out = append(out, i)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	return out
}

func seq(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func checkStored(t *testing.T, e *testEngine, rangeID uint64, want []uint64) {
	t.Helper()
	if diff := cmp.Diff(want, storedLogIndexes(t, e.db, rangeID), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("stored log indexes of range %d (-want +got):\n%s", rangeID, diff)
	}
}

func getRaw(t *testing.T, db Reader, key []byte, m proto.Message) bool {
	t.Helper()
	v, c, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		t.Fatal(err)
	}
	return true
}

// ---------------------------------------------------------------------------
// Tests.

func TestLoadEmpty(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		if l.RangeID() != 1 {
			t.Fatalf("RangeID = %d", l.RangeID())
		}
		checkBounds(t, l, 1, 0)
		checkTerm(t, l, 0, 0)
		checkTermErr(t, l, 1, raft.ErrUnavailable)
		checkEntries(t, l, 1, 1, noLimit, nil)
		checkEntriesErr(t, l, 0, 1, noLimit, raft.ErrCompacted)
		checkEntriesErr(t, l, 1, 2, noLimit, raft.ErrUnavailable)

		hs, cs, err := l.InitialState()
		if err != nil {
			t.Fatal(err)
		}
		if !raft.IsEmptyHardState(hs) {
			t.Errorf("InitialState hard state = %v, want empty", hs)
		}
		if cs == nil {
			t.Fatal("InitialState conf state is nil; raft.Storage requires non-nil")
		}
		if diff := cmp.Diff(&pb.ConfState{}, cs, protocmp.Transform()); diff != "" {
			t.Errorf("conf state (-want +got):\n%s", diff)
		}
		snap, err := l.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !raft.IsEmptySnap(snap) {
			t.Errorf("Snapshot() = %v, want empty", snap)
		}
		if idx, term := l.Truncated(); idx != 0 || term != 0 {
			t.Errorf("Truncated() = %d, %d", idx, term)
		}
	})
}

func TestLoadClonesInputsAndInitialStateReturnsCopies(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		appendEnts(t, e, mustLoad(t, e, 1, nil, nil), entsRange(1, 4, 1), hardState(1, 1, 2))
		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		applied := &rangekvpb.AppliedState{Index: 2, Term: 1}
		l := mustLoad(t, e, 1, cs, applied)
		cs.Voters[0] = 99
		cs.Learners = []uint64{7}
		applied.Index = 3

		hs, gotCS, err := l.InitialState()
		if err != nil {
			t.Fatal(err)
		}
		wantCS := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		if diff := cmp.Diff(wantCS, gotCS, protocmp.Transform()); diff != "" {
			t.Fatalf("conf state aliased the caller's (-want +got):\n%s", diff)
		}
		// Mutating what InitialState returned must not leak into the log.
		hs.Commit = proto.Uint64(0)
		gotCS.Voters = append(gotCS.Voters[:0], 42)
		checkHardState(t, l, hardState(1, 1, 2))
		_, gotCS2, _ := l.InitialState()
		if diff := cmp.Diff(wantCS, gotCS2, protocmp.Transform()); diff != "" {
			t.Fatalf("conf state aliased InitialState's result (-want +got):\n%s", diff)
		}
		snap, _ := l.Snapshot()
		if got := snap.GetMetadata().GetIndex(); got != 2 {
			t.Fatalf("Snapshot index = %d, want 2 (applied aliased)", got)
		}
	})
}

func TestAppendAndRead(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		want := append(entsRange(1, 6, 1), entsRange(6, 11, 2)...)
		hs := hardState(2, 1, 4)
		u := appendEnts(t, e, l, want, hs)
		if u.Appended() != 10 {
			t.Errorf("Appended() = %d, want 10", u.Appended())
		}
		check := func(t *testing.T, l *RangeLog) {
			t.Helper()
			checkBounds(t, l, 1, 10)
			checkTerm(t, l, 0, 0)
			for _, w := range want {
				checkTerm(t, l, w.GetIndex(), w.GetTerm())
			}
			checkTermErr(t, l, 11, raft.ErrUnavailable)
			checkEntries(t, l, 1, 11, noLimit, want)
			checkEntries(t, l, 3, 7, noLimit, want[2:6])
			checkEntries(t, l, 10, 11, noLimit, want[9:])
			checkEntries(t, l, 5, 5, noLimit, nil)
			checkEntries(t, l, 11, 11, noLimit, nil)
			checkEntriesErr(t, l, 1, 12, noLimit, raft.ErrUnavailable)
			checkEntriesErr(t, l, 0, 5, noLimit, raft.ErrCompacted)
			checkHardState(t, l, hs)
			checkStored(t, e, 1, seq(1, 11))
		}
		check(t, l)

		// Appending without a hard state leaves the hard state alone.
		more := entsRange(11, 13, 2)
		appendEnts(t, e, l, more, nil)
		want = append(want, more...)
		checkBounds(t, l, 1, 12)
		checkHardState(t, l, hs)
		checkEntries(t, l, 1, 13, noLimit, want)

		e.reopen()
		l = mustLoad(t, e, 1, nil, nil)
		checkBounds(t, l, 1, 12)
		checkHardState(t, l, hs)
		checkEntries(t, l, 1, 13, noLimit, want)
		checkTerm(t, l, 12, 2)
	})
}

func TestEntriesReturnsOwnedSlice(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		want := entsRange(1, 6, 1)
		appendEnts(t, e, l, want, nil)
		got, err := l.Entries(1, 4, noLimit)
		if err != nil {
			t.Fatal(err)
		}
		// raft.Storage: the caller owns the slice and may append to it.
		got = append(got, ent(100, 100, "x"))
		got[0] = ent(200, 200, "y")
		if len(got) != 4 {
			t.Fatalf("len = %d", len(got))
		}
		// Neither the append nor the replaced element reach the log or a
		// slice returned by a later call.
		checkEntries(t, l, 1, 6, noLimit, want)
		again, err := l.Entries(1, 4, noLimit)
		if err != nil {
			t.Fatal(err)
		}
		if again[0] == got[0] || !entriesEqual(again, want[:3]) {
			t.Fatalf("Entries shares state between calls")
		}
	})
}

func TestStagedAppendInvisibleUntilFinish(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		b := e.db.NewBatch()
		u, err := l.StageAppend(b, entsRange(1, 4, 1), hardState(1, 1, 0))
		if err != nil {
			t.Fatal(err)
		}
		if u.Appended() != 3 {
			t.Fatalf("Appended() = %d, want 3", u.Appended())
		}
		checkBounds(t, l, 1, 0)
		checkHardState(t, l, &pb.HardState{})
		if got := storedLogIndexes(t, e.db, 1); len(got) != 0 {
			t.Fatalf("uncommitted batch visible in engine: %v", got)
		}
		commitBatch(t, b)
		// Committed but not finished: raft must still see the old view.
		checkBounds(t, l, 1, 0)
		checkTermErr(t, l, 1, raft.ErrUnavailable)
		l.FinishAppend(u)
		checkBounds(t, l, 1, 3)
		checkTerm(t, l, 3, 1)
		checkHardState(t, l, hardState(1, 1, 0))
	})
}

func TestStageAppendNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 4, 1), hardState(1, 1, 2))
		for _, hs := range []*pb.HardState{nil, {}} {
			b := e.db.NewBatch()
			u, err := l.StageAppend(b, nil, hs)
			if err != nil {
				t.Fatal(err)
			}
			if !b.Empty() {
				t.Errorf("StageAppend(nil, %v) staged %d bytes, want nothing", hs, len(b.Repr()))
			}
			if u.Appended() != 0 {
				t.Errorf("Appended() = %d, want 0", u.Appended())
			}
			commitBatch(t, b)
			l.FinishAppend(u)
			checkBounds(t, l, 1, 3)
			checkTerm(t, l, 3, 1)
			checkHardState(t, l, hardState(1, 1, 2))
		}
		// A hard-state-only update.
		appendEnts(t, e, l, nil, hardState(2, 0, 3))
		checkBounds(t, l, 1, 3)
		checkHardState(t, l, hardState(2, 0, 3))
		e.reopen()
		l = mustLoad(t, e, 1, nil, nil)
		checkBounds(t, l, 1, 3)
		checkHardState(t, l, hardState(2, 0, 3))
	})
}

func TestEntriesMaxSize(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		var want []*pb.Entry
		for i := uint64(1); i <= 6; i++ {
			// Varying sizes so that off-by-one limits matter.
			want = append(want, ent(i, 1, string(make([]byte, 10*i))))
		}
		appendEnts(t, e, l, want, nil)
		sz := func(es []*pb.Entry) uint64 {
			var s uint64
			for _, x := range es {
				s += uint64(proto.Size(x))
			}
			return s
		}
		tests := []struct {
			lo, hi, maxSize uint64
			want            []*pb.Entry
		}{
			{1, 7, 0, want[:1]},
			{1, 7, 1, want[:1]},
			{1, 7, sz(want[:1]) - 1, want[:1]},
			{1, 7, sz(want[:1]), want[:1]},
			{1, 7, sz(want[:2]) - 1, want[:1]},
			{1, 7, sz(want[:2]), want[:2]},
			{1, 7, sz(want[:3]) + 1, want[:3]},
			{1, 7, sz(want) - 1, want[:5]},
			{1, 7, sz(want), want},
			{1, 7, noLimit, want},
			{3, 5, 0, want[2:3]},
			{3, 5, sz(want[2:4]), want[2:4]},
			{6, 7, 0, want[5:]},
		}
		for _, tc := range tests {
			checkEntries(t, l, tc.lo, tc.hi, tc.maxSize, tc.want)
			// The same answer as raft's reference MemoryStorage.
			ms := raft.NewMemoryStorage()
			if err := ms.Append(want); err != nil {
				t.Fatal(err)
			}
			msEnts, err := ms.Entries(tc.lo, tc.hi, tc.maxSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(msEnts) != len(tc.want) {
				t.Errorf("test table disagrees with MemoryStorage for Entries(%d, %d, %d): %d vs %d entries", tc.lo, tc.hi, tc.maxSize, len(tc.want), len(msEnts))
			}
		}
	})
}

func TestTermAndEntriesBounds(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, append(entsRange(1, 5, 1), entsRange(5, 11, 3)...), nil)
		truncate(t, e, l, 4, 1)
		checkBounds(t, l, 5, 10)
		checkTermErr(t, l, 0, raft.ErrCompacted)
		checkTermErr(t, l, 3, raft.ErrCompacted)
		checkTerm(t, l, 4, 1)
		checkTerm(t, l, 5, 3)
		checkTerm(t, l, 10, 3)
		checkTermErr(t, l, 11, raft.ErrUnavailable)
		checkTermErr(t, l, math.MaxUint64, raft.ErrUnavailable)
		checkEntriesErr(t, l, 1, 11, noLimit, raft.ErrCompacted)
		checkEntriesErr(t, l, 4, 6, noLimit, raft.ErrCompacted)
		checkEntriesErr(t, l, 4, 4, noLimit, raft.ErrCompacted)
		checkEntriesErr(t, l, 5, 12, noLimit, raft.ErrUnavailable)
		checkEntries(t, l, 5, 11, noLimit, entsRange(5, 11, 3))
	})
}

func TestOverwriteTail(t *testing.T) {
	tests := []struct {
		name      string
		newEnts   []*pb.Entry
		wantLast  uint64
		wantTerms map[uint64]uint64
	}{
		{"shorter tail", entsRange(5, 8, 2), 7, map[uint64]uint64{4: 1, 5: 2, 7: 2}},
		{"single entry", entsRange(6, 7, 2), 6, map[uint64]uint64{5: 1, 6: 2}},
		{"whole log", entsRange(1, 3, 2), 2, map[uint64]uint64{1: 2, 2: 2}},
		{"same length", entsRange(5, 11, 2), 10, map[uint64]uint64{4: 1, 5: 2, 10: 2}},
		{"last entry only", entsRange(10, 11, 2), 10, map[uint64]uint64{9: 1, 10: 2}},
		{"longer tail", entsRange(5, 14, 2), 13, map[uint64]uint64{4: 1, 5: 2, 13: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				l := mustLoad(t, e, 1, nil, nil)
				old := entsRange(1, 11, 1)
				appendEnts(t, e, l, old, hardState(1, 1, 1))
				appendEnts(t, e, l, tc.newEnts, hardState(2, 0, 1))

				first := tc.newEnts[0].GetIndex()
				want := append(slices.Clone(old[:first-1]), tc.newEnts...)
				check := func(t *testing.T, l *RangeLog) {
					t.Helper()
					checkBounds(t, l, 1, tc.wantLast)
					for i, term := range tc.wantTerms {
						checkTerm(t, l, i, term)
					}
					checkTermErr(t, l, tc.wantLast+1, raft.ErrUnavailable)
					checkEntries(t, l, 1, tc.wantLast+1, noLimit, want)
					checkEntriesErr(t, l, 1, tc.wantLast+2, noLimit, raft.ErrUnavailable)
					// No stale entry beyond the new last index survives.
					checkStored(t, e, 1, seq(1, tc.wantLast+1))
					checkHardState(t, l, hardState(2, 0, 1))
				}
				check(t, l)
				e.reopen()
				l = mustLoad(t, e, 1, nil, nil)
				check(t, l)

				// The log continues from the new tail.
				next := entsRange(tc.wantLast+1, tc.wantLast+3, 3)
				appendEnts(t, e, l, next, nil)
				checkBounds(t, l, 1, tc.wantLast+2)
				checkEntries(t, l, 1, tc.wantLast+3, noLimit, append(want, next...))
			})
		})
	}
}

func TestOverwriteAfterTruncation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 21, 1), nil)
		truncate(t, e, l, 10, 1)
		appendEnts(t, e, l, entsRange(12, 14, 2), nil)
		checkBounds(t, l, 11, 13)
		checkStored(t, e, 1, seq(11, 14))
		checkTerm(t, l, 10, 1)
		checkTerm(t, l, 11, 1)
		checkTerm(t, l, 13, 2)
		e.reopen()
		l = mustLoad(t, e, 1, nil, nil)
		checkBounds(t, l, 11, 13)
		checkEntries(t, l, 11, 14, noLimit, append(entsRange(11, 12, 1), entsRange(12, 14, 2)...))
	})
}

func TestHardStateRestartRecovery(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		l := mustLoad(t, e, 5, cs, nil)
		appendEnts(t, e, l, entsRange(1, 4, 1), hardState(1, 2, 1))
		appendEnts(t, e, l, entsRange(4, 6, 2), hardState(2, 3, 4))
		checkHardState(t, l, hardState(2, 3, 4))

		// The hard state is stored in the engine as a raftpb.HardState.
		var raw pb.HardState
		if !getRaw(t, e.db, keys.HardStateKey(5), &raw) {
			t.Fatal("hard state not stored")
		}
		if diff := cmp.Diff(hardState(2, 3, 4), &raw, protocmp.Transform()); diff != "" {
			t.Fatalf("stored hard state (-want +got):\n%s", diff)
		}

		e.reopen()
		l = mustLoad(t, e, 5, cs, &rangekvpb.AppliedState{Index: 4, Term: 2})
		checkHardState(t, l, hardState(2, 3, 4))
		_, gotCS, err := l.InitialState()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(cs, gotCS, protocmp.Transform()); diff != "" {
			t.Fatalf("conf state (-want +got):\n%s", diff)
		}
		checkBounds(t, l, 1, 5)
		checkTerm(t, l, 5, 2)
		checkTerm(t, l, 3, 1)
		// Another range on the same engine is still empty.
		other := mustLoad(t, e, 6, nil, nil)
		checkBounds(t, other, 1, 0)
		checkHardState(t, other, &pb.HardState{})
	})
}

func TestTruncate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		all := append(entsRange(1, 5, 1), entsRange(5, 11, 2)...)
		appendEnts(t, e, l, all, hardState(2, 1, 10))

		truncate(t, e, l, 4, 1)
		check := func(t *testing.T, l *RangeLog) {
			t.Helper()
			checkBounds(t, l, 5, 10)
			if idx, term := l.Truncated(); idx != 4 || term != 1 {
				t.Fatalf("Truncated() = %d, %d; want 4, 1", idx, term)
			}
			checkTerm(t, l, 4, 1)
			checkTermErr(t, l, 3, raft.ErrCompacted)
			checkEntriesErr(t, l, 4, 11, noLimit, raft.ErrCompacted)
			checkEntriesErr(t, l, 1, 3, noLimit, raft.ErrCompacted)
			checkEntries(t, l, 5, 11, noLimit, all[4:])
			checkStored(t, e, 1, seq(5, 11))
			var ts rangekvpb.TruncatedState
			if !getRaw(t, e.db, keys.TruncatedStateKey(1), &ts) || ts.Index != 4 || ts.Term != 1 {
				t.Fatalf("stored truncated state = %v, want {4, 1}", &ts)
			}
		}
		check(t, l)
		e.reopen()
		l = mustLoad(t, e, 1, nil, &rangekvpb.AppliedState{Index: 10, Term: 2})
		check(t, l)

		// A second truncation deletes only the newly truncated prefix.
		truncate(t, e, l, 7, 2)
		checkBounds(t, l, 8, 10)
		checkTerm(t, l, 7, 2)
		checkTermErr(t, l, 6, raft.ErrCompacted)
		checkStored(t, e, 1, seq(8, 11))

		// Truncating everything leaves an empty log whose last index is the
		// truncated index, also after a restart.
		truncate(t, e, l, 10, 2)
		checkBounds(t, l, 11, 10)
		checkTerm(t, l, 10, 2)
		checkEntries(t, l, 11, 11, noLimit, nil)
		checkStored(t, e, 1, nil)
		e.reopen()
		l = mustLoad(t, e, 1, nil, &rangekvpb.AppliedState{Index: 10, Term: 2})
		checkBounds(t, l, 11, 10)
		checkTerm(t, l, 10, 2)
		checkTermErr(t, l, 9, raft.ErrCompacted)
		checkTermErr(t, l, 11, raft.ErrUnavailable)

		// The log continues after the truncated index.
		appendEnts(t, e, l, entsRange(11, 13, 3), nil)
		checkBounds(t, l, 11, 12)
		checkEntries(t, l, 11, 13, noLimit, entsRange(11, 13, 3))
	})
}

// A follower's worker pass appends entries and applies the committed ones
// in one batch; when a truncation of entries that same batch appends
// commits with them, it must still truncate (the in-memory last index
// moves only at FinishAppend). A follower that received a truncation
// together with the entries it covers used to skip it and keep its log.
func TestStageTruncateCountsAppendInSameBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 11, 1), nil)
		b := e.db.NewBatch()
		u, err := l.StageAppend(b, entsRange(11, 21, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := l.StageTruncate(b, 15, 1, u)
		if err != nil || !ok {
			t.Fatalf("StageTruncate(15) with entries 11-20 staged in the same batch = %v, %v; want true", ok, err)
		}
		// Past what the batch appends is still refused.
		if ok, err := l.StageTruncate(e.db.NewBatch(), 21, 1, u); err != nil || ok {
			t.Fatalf("StageTruncate(21) with the log ending at 20 = %v, %v; want false", ok, err)
		}
		commitBatch(t, b)
		l.FinishAppend(u)
		l.FinishTruncate(15, 1)
		checkBounds(t, l, 16, 20)
		checkStored(t, e, 1, seq(16, 21))
		checkEntries(t, l, 16, 21, noLimit, entsRange(16, 21, 1))
	})
}

func TestStageTruncateRejects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 11, 1), nil)
		truncate(t, e, l, 4, 1)
		for _, idx := range []uint64{0, 3, 4, 11, 12, math.MaxUint64} {
			b := e.db.NewBatch()
			ok, err := l.StageTruncate(b, idx, 1, AppendUpdate{})
			if err != nil {
				t.Fatalf("StageTruncate(%d): %v", idx, err)
			}
			if ok {
				t.Errorf("StageTruncate(%d) = true with truncated 4, last 10", idx)
			}
			if !b.Empty() {
				t.Errorf("StageTruncate(%d) staged %d bytes, want nothing", idx, len(b.Repr()))
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
		checkBounds(t, l, 5, 10)
		checkStored(t, e, 1, seq(5, 11))

		// FinishTruncate never moves the truncated state backwards.
		l.FinishTruncate(2, 1)
		checkBounds(t, l, 5, 10)
		checkTerm(t, l, 4, 1)
	})
}

func TestStagedTruncateInvisibleUntilFinish(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 11, 1), nil)
		b := e.db.NewBatch()
		if ok, err := l.StageTruncate(b, 5, 1, AppendUpdate{}); err != nil || !ok {
			t.Fatalf("StageTruncate = %v, %v", ok, err)
		}
		checkBounds(t, l, 1, 10)
		checkStored(t, e, 1, seq(1, 11))
		commitBatch(t, b)
		checkBounds(t, l, 1, 10)
		// Entries already deleted from the engine answer ErrCompacted, not a
		// hard error, in the window before FinishTruncate.
		checkTermErr(t, l, 3, raft.ErrCompacted)
		checkEntriesErr(t, l, 1, 5, noLimit, raft.ErrCompacted)
		checkEntries(t, l, 6, 11, noLimit, entsRange(6, 11, 1))
		l.FinishTruncate(5, 1)
		checkBounds(t, l, 6, 10)
	})
}

// TestEntriesPartiallyTruncatedBeforeFinishTruncate_WantErrCompacted exposes a
// gap in Entries' handling of the window between committing a StageTruncate
// batch and FinishTruncate (the window logstore.go's own comment "Truncated
// concurrently between the bounds check and the read" means to cover). When
// only a prefix of [lo, hi) was deleted, the iterator's first entry is past
// lo and Entries reports "entry lo missing ... ErrUnavailable" instead of
// raft.ErrCompacted. raft.Storage requires ErrCompacted when entry lo was
// compacted, and raft's raftLog.slice panics on any other error.
func TestEntriesPartiallyTruncatedBeforeFinishTruncate_WantErrCompacted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 11, 1), nil)
		b := e.db.NewBatch()
		if ok, err := l.StageTruncate(b, 5, 1, AppendUpdate{}); err != nil || !ok {
			t.Fatalf("StageTruncate = %v, %v", ok, err)
		}
		commitBatch(t, b)
		// FinishTruncate not yet called: the in-memory first index is 1.
		ents, err := l.Entries(1, 11, noLimit)
		if !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Entries(1, 11) after a committed truncation to 5 = %d entries, %v; want raft.ErrCompacted", len(ents), err)
		}
	})
}

func TestSnapshot(t *testing.T) {
	tests := []struct {
		name        string
		index, term uint64
	}{
		{"beyond log", 20, 3},
		{"inside log", 5, 1},
		{"at last index", 10, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				l := mustLoad(t, e, 1, nil, nil)
				other := mustLoad(t, e, 2, nil, nil)
				appendEnts(t, e, l, append(entsRange(1, 6, 1), entsRange(6, 11, 2)...), hardState(2, 1, 4))
				appendEnts(t, e, other, entsRange(1, 4, 1), nil)
				truncate(t, e, l, 2, 1)

				cs := &pb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}
				snapshot(t, e, l, tc.index, tc.term, cs)
				check := func(t *testing.T, l *RangeLog) {
					t.Helper()
					checkBounds(t, l, tc.index+1, tc.index)
					checkTerm(t, l, tc.index, tc.term)
					checkTermErr(t, l, tc.index-1, raft.ErrCompacted)
					checkTermErr(t, l, tc.index+1, raft.ErrUnavailable)
					checkEntriesErr(t, l, tc.index, tc.index+1, noLimit, raft.ErrCompacted)
					checkEntriesErr(t, l, 1, tc.index+1, noLimit, raft.ErrCompacted)
					checkEntries(t, l, tc.index+1, tc.index+1, noLimit, nil)
					checkStored(t, e, 1, nil)
					if idx, term := l.Truncated(); idx != tc.index || term != tc.term {
						t.Fatalf("Truncated() = %d, %d", idx, term)
					}
					snap, err := l.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					want := &pb.SnapshotMetadata{Index: proto.Uint64(tc.index), Term: proto.Uint64(tc.term), ConfState: cs}
					if diff := cmp.Diff(want, snap.GetMetadata(), protocmp.Transform()); diff != "" {
						t.Fatalf("snapshot metadata (-want +got):\n%s", diff)
					}
				}
				check(t, l)
				// Another range's log is untouched.
				checkBounds(t, other, 1, 3)
				checkStored(t, e, 2, seq(1, 4))

				e.reopen()
				// After a restart the state machine supplies the applied
				// state and conf state that the snapshot batch persisted.
				l = mustLoad(t, e, 1, cs, &rangekvpb.AppliedState{Index: tc.index, Term: tc.term})
				check(t, l)
				other = mustLoad(t, e, 2, nil, nil)
				checkBounds(t, other, 1, 3)
				checkEntries(t, other, 1, 4, noLimit, entsRange(1, 4, 1))

				// The log continues after the snapshot.
				next := entsRange(tc.index+1, tc.index+3, tc.term+1)
				appendEnts(t, e, l, next, nil)
				checkBounds(t, l, tc.index+1, tc.index+2)
				checkEntries(t, l, tc.index+1, tc.index+3, noLimit, next)
				checkTerm(t, l, tc.index, tc.term)
			})
		})
	}
}

func TestSnapshotMetadataFromSetApplied(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		appendEnts(t, e, mustLoad(t, e, 1, nil, nil), entsRange(1, 11, 1), hardState(1, 1, 3))
		cs0 := &pb.ConfState{Voters: []uint64{1}}
		l := mustLoad(t, e, 1, cs0, &rangekvpb.AppliedState{Index: 3, Term: 1})
		check := func(t *testing.T, index, term uint64, cs *pb.ConfState) {
			t.Helper()
			snap, err := l.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			want := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: cs}}
			if diff := cmp.Diff(want, snap, protocmp.Transform()); diff != "" {
				t.Fatalf("Snapshot() (-want +got):\n%s", diff)
			}
			if len(snap.GetData()) != 0 {
				t.Fatalf("Snapshot() carries data")
			}
		}
		check(t, 3, 1, &pb.ConfState{Voters: []uint64{1}})

		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		l.SetApplied(7, 2, cs)
		cs.Voters[0] = 99 // must not alias
		check(t, 7, 2, &pb.ConfState{Voters: []uint64{1, 2, 3}})

		// A nil conf state keeps the previous one.
		l.SetApplied(9, 3, nil)
		check(t, 9, 3, &pb.ConfState{Voters: []uint64{1, 2, 3}})

		// Mutating a returned snapshot does not change the next one.
		snap, _ := l.Snapshot()
		snap.Metadata.ConfState.Voters[0] = 42
		snap.Metadata.Index = proto.Uint64(1)
		check(t, 9, 3, &pb.ConfState{Voters: []uint64{1, 2, 3}})

		// The conf state set by SetApplied is what InitialState reports.
		_, gotCS, _ := l.InitialState()
		if diff := cmp.Diff(&pb.ConfState{Voters: []uint64{1, 2, 3}}, gotCS, protocmp.Transform()); diff != "" {
			t.Fatalf("InitialState conf state (-want +got):\n%s", diff)
		}
	})
}

func TestLoadRepairsCommitBelowApplied(t *testing.T) {
	tests := []struct {
		name       string
		hs         *pb.HardState
		applied    *rangekvpb.AppliedState
		wantCommit uint64
	}{
		{"commit below applied", hardState(1, 1, 3), &rangekvpb.AppliedState{Index: 8, Term: 1}, 8},
		{"commit equals applied", hardState(1, 1, 8), &rangekvpb.AppliedState{Index: 8, Term: 1}, 8},
		{"commit above applied", hardState(1, 1, 9), &rangekvpb.AppliedState{Index: 8, Term: 1}, 9},
		{"applied at last index", hardState(1, 1, 0), &rangekvpb.AppliedState{Index: 10, Term: 1}, 10},
		{"no applied state", hardState(1, 1, 5), nil, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				appendEnts(t, e, mustLoad(t, e, 1, nil, nil), entsRange(1, 11, 1), tc.hs)
				e.reopen()
				l := mustLoad(t, e, 1, nil, tc.applied)
				want := proto.CloneOf(tc.hs)
				want.Commit = proto.Uint64(tc.wantCommit)
				checkHardState(t, l, want)
				checkBounds(t, l, 1, 10)
			})
		})
	}
}

func TestLoadErrorsWhenCommitBeyondLastIndex(t *testing.T) {
	tests := []struct {
		name     string
		hs       *pb.HardState
		truncate uint64 // 0: none
		applied  *rangekvpb.AppliedState
	}{
		{"commit beyond last", hardState(1, 1, 11), 0, nil},
		{"applied beyond last", hardState(1, 1, 5), 0, &rangekvpb.AppliedState{Index: 12, Term: 1}},
		{"commit beyond truncated empty log", hardState(1, 1, 11), 10, &rangekvpb.AppliedState{Index: 10, Term: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				l := mustLoad(t, e, 1, nil, nil)
				appendEnts(t, e, l, entsRange(1, 11, 1), nil)
				if tc.truncate > 0 {
					truncate(t, e, l, tc.truncate, 1)
				}
				// Write the hard state directly: StageAppend has no reason to
				// refuse it, and it models a log lost after the hard state
				// was synced.
				b, err := proto.Marshal(tc.hs)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.db.Set(keys.HardStateKey(1), b, pebble.Sync); err != nil {
					t.Fatal(err)
				}
				e.reopen()
				if l, err := Load(e.db, 1, nil, tc.applied); err == nil {
					last, _ := l.LastIndex()
					hs, _, _ := l.InitialState()
					t.Fatalf("Load succeeded with commit %d and last index %d", hs.GetCommit(), last)
				}
			})
		})
	}
}

func TestLoadCorruptState(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"hard state", keys.HardStateKey(1)},
		{"truncated state", keys.TruncatedStateKey(1)},
		{"last log entry", keys.LogEntryKey(1, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				appendEnts(t, e, mustLoad(t, e, 1, nil, nil), entsRange(1, 4, 1), hardState(1, 1, 1))
				// 0xff is an invalid protobuf tag.
				if err := e.db.Set(tc.key, []byte{0xff, 0xff, 0xff}, pebble.Sync); err != nil {
					t.Fatal(err)
				}
				if _, err := Load(e.db, 1, nil, nil); err == nil {
					t.Fatalf("Load succeeded with a corrupt %s", tc.name)
				}
			})
		})
	}
}

func TestLoadIgnoresStaleEntriesBelowTruncated(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		// A truncated state at 10 and a leftover entry at 5: the log is
		// empty and its last index is the truncated index.
		ts, err := proto.Marshal(&rangekvpb.TruncatedState{Index: 10, Term: 2})
		if err != nil {
			t.Fatal(err)
		}
		stale, err := proto.Marshal(ent(5, 1, "stale"))
		if err != nil {
			t.Fatal(err)
		}
		b := e.db.NewBatch()
		if err := errors.Join(
			b.Set(keys.TruncatedStateKey(1), ts, nil),
			b.Set(keys.LogEntryKey(1, 5), stale, nil),
		); err != nil {
			t.Fatal(err)
		}
		commitBatch(t, b)
		e.reopen()
		l := mustLoad(t, e, 1, nil, &rangekvpb.AppliedState{Index: 10, Term: 2})
		checkBounds(t, l, 11, 10)
		checkTerm(t, l, 10, 2)
		checkTermErr(t, l, 5, raft.ErrCompacted)
		checkTermErr(t, l, 11, raft.ErrUnavailable)
	})
}

// TestSnapshotAndAppendInOneBatch follows the store's Ready handling: a
// snapshot and the Ready's entries and hard state are staged into one batch,
// then FinishSnapshot and FinishAppend run in that order.
func TestSnapshotAndAppendInOneBatch(t *testing.T) {
	tests := []struct {
		name     string
		oldLast  uint64
		ents     []*pb.Entry
		wantLast uint64
	}{
		{"hard state only, old log shorter", 5, nil, 20},
		{"hard state only, old log longer", 30, nil, 20},
		{"entries, old log shorter", 5, entsRange(21, 23, 4), 22},
		{"entries, old divergent log longer", 30, entsRange(21, 23, 4), 22},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				l := mustLoad(t, e, 1, nil, nil)
				appendEnts(t, e, l, entsRange(1, tc.oldLast+1, 1), hardState(1, 1, 2))

				cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
				hs := hardState(4, 0, 20)
				b := e.db.NewBatch()
				if err := l.StageSnapshot(b, 20, 3); err != nil {
					t.Fatal(err)
				}
				u, err := l.StageAppend(b, tc.ents, hs)
				if err != nil {
					t.Fatal(err)
				}
				commitBatch(t, b)
				l.FinishSnapshot(20, 3, cs)
				l.FinishAppend(u)

				check := func(t *testing.T, l *RangeLog) {
					t.Helper()
					checkBounds(t, l, 21, tc.wantLast)
					checkTerm(t, l, 20, 3)
					checkTermErr(t, l, 19, raft.ErrCompacted)
					checkEntries(t, l, 21, tc.wantLast+1, noLimit, tc.ents)
					checkStored(t, e, 1, seq(21, tc.wantLast+1))
					checkHardState(t, l, hs)
				}
				check(t, l)
				e.reopen()
				l = mustLoad(t, e, 1, cs, &rangekvpb.AppliedState{Index: 20, Term: 3})
				check(t, l)
			})
		})
	}
}

// TestFinishAppendHardStateOnlyKeepsLastIndex: a hard-state-only update must
// not reset the last index to the value it saw when it was staged.
func TestFinishAppendHardStateOnlyKeepsLastIndex(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 6, 1), nil)

		b1 := e.db.NewBatch()
		u1, err := l.StageAppend(b1, nil, hardState(1, 1, 5))
		if err != nil {
			t.Fatal(err)
		}
		commitBatch(t, b1)
		appendEnts(t, e, l, entsRange(6, 9, 1), nil)
		l.FinishAppend(u1)
		checkBounds(t, l, 1, 8)
		checkTerm(t, l, 8, 1)
		checkHardState(t, l, hardState(1, 1, 5))
	})
}

// TestLoadFromSnapshotAndIndexedBatch: Load accepts any Reader; a Pebble
// snapshot sees the state at the time it was taken, an indexed batch sees
// its own staged writes.
func TestLoadFromSnapshotAndIndexedBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 6, 1), hardState(1, 1, 3))
		snap := e.db.NewSnapshot()
		defer snap.Close()
		appendEnts(t, e, l, entsRange(6, 9, 1), hardState(1, 1, 7))

		fromSnap, err := Load(snap, 1, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBounds(t, fromSnap, 1, 5)
		checkHardState(t, fromSnap, hardState(1, 1, 3))
		checkEntries(t, fromSnap, 1, 6, noLimit, entsRange(1, 6, 1))
		checkEntriesErr(t, fromSnap, 1, 9, noLimit, raft.ErrUnavailable)

		ib := e.db.NewIndexedBatch()
		defer ib.Close()
		if _, err := l.StageAppend(ib, entsRange(9, 11, 2), hardState(2, 1, 8)); err != nil {
			t.Fatal(err)
		}
		fromBatch, err := Load(ib, 1, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBounds(t, fromBatch, 1, 10)
		checkHardState(t, fromBatch, hardState(2, 1, 8))
		checkEntries(t, fromBatch, 1, 11, noLimit, append(entsRange(1, 9, 1), entsRange(9, 11, 2)...))
		// The engine itself does not see the uncommitted batch.
		checkStored(t, e, 1, seq(1, 9))
	})
}

func TestRangesAreIsolated(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		ids := []uint64{1, 2, 255, 256, math.MaxUint64}
		logs := map[uint64]*RangeLog{}
		b := e.db.NewBatch()
		var updates []AppendUpdate
		for n, id := range ids {
			logs[id] = mustLoad(t, e, id, nil, nil)
			// One batch carries the appends of all ranges.
			u, err := logs[id].StageAppend(b, entsRange(1, 11, uint64(n+1)), hardState(uint64(n+1), 1, 3))
			if err != nil {
				t.Fatal(err)
			}
			updates = append(updates, u)
		}
		commitBatch(t, b)
		for n, id := range ids {
			logs[id].FinishAppend(updates[n])
		}

		// Range 2 overwrites its tail, 255 truncates, 256 takes a snapshot.
		appendEnts(t, e, logs[2], entsRange(3, 5, 9), nil)
		truncate(t, e, logs[255], 6, 3)
		snapshot(t, e, logs[256], 50, 9, nil)

		check := func(t *testing.T, commit256 uint64) {
			t.Helper()
			for n, id := range ids {
				term := uint64(n + 1)
				l := logs[id]
				switch id {
				case 2:
					checkBounds(t, l, 1, 4)
					checkStored(t, e, id, seq(1, 5))
					checkTerm(t, l, 4, 9)
				case 255:
					checkBounds(t, l, 7, 10)
					checkStored(t, e, id, seq(7, 11))
				case 256:
					checkBounds(t, l, 51, 50)
					checkStored(t, e, id, nil)
				default:
					checkBounds(t, l, 1, 10)
					checkStored(t, e, id, seq(1, 11))
					checkEntries(t, l, 1, 11, noLimit, entsRange(1, 11, term))
				}
				commit := uint64(3)
				if id == 256 {
					commit = commit256
				}
				checkHardState(t, l, hardState(term, 1, commit))
			}
		}
		check(t, 3)
		e.reopen()
		for _, id := range ids {
			var applied *rangekvpb.AppliedState
			if id == 256 {
				applied = &rangekvpb.AppliedState{Index: 50, Term: 9}
			}
			logs[id] = mustLoad(t, e, id, nil, applied)
		}
		// Load raised range 256's commit to its applied index.
		check(t, 50)
	})
}

func TestConcurrentReadersDuringAppends(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		appendEnts(t, e, l, entsRange(1, 2, 1), nil)
		const n = 100
		done := make(chan struct{})
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					first, _ := l.FirstIndex()
					last, _ := l.LastIndex()
					ents, err := l.Entries(first, last+1, uint64(r*100))
					if err != nil {
						errc <- fmt.Errorf("Entries(%d, %d): %w", first, last+1, err)
						return
					}
					for k, x := range ents {
						if x.GetIndex() != first+uint64(k) || x.GetTerm() != 1 {
							errc <- fmt.Errorf("Entries(%d, %d)[%d] = index %d term %d", first, last+1, k, x.GetIndex(), x.GetTerm())
							return
						}
					}
					if term, err := l.Term(last); err != nil || term != 1 {
						errc <- fmt.Errorf("Term(%d) = %d, %v", last, term, err)
						return
					}
					if _, err := l.Snapshot(); err != nil {
						errc <- err
						return
					}
					if _, _, err := l.InitialState(); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		for i := uint64(2); i <= n; i++ {
			appendEnts(t, e, l, entsRange(i, i+1, 1), hardState(1, 1, i-1))
			l.SetApplied(i-1, 1, &pb.ConfState{Voters: []uint64{1}})
		}
		close(done)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		checkBounds(t, l, 1, n)
	})
}

// TestDifferentialAgainstMemoryStorage replays the same appends, tail
// overwrites and compactions on a RangeLog and on raft's reference
// MemoryStorage and checks that the raft.Storage views agree, before and
// after a restart.
func TestDifferentialAgainstMemoryStorage(t *testing.T) {
	type op struct {
		appendEnts []*pb.Entry
		compact    uint64
	}
	ops := []op{
		{appendEnts: entsRange(1, 21, 1)},
		{appendEnts: entsRange(15, 18, 2)}, // shorter tail
		{appendEnts: entsRange(18, 26, 2)},
		{compact: 10},
		{appendEnts: entsRange(20, 22, 3)}, // shorter tail after compaction
		{compact: 19},
		{appendEnts: entsRange(22, 24, 3)},
		{appendEnts: entsRange(23, 30, 4)},
		{compact: 23},
	}
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 1, nil, nil)
		ms := raft.NewMemoryStorage()
		compare := func(t *testing.T, step int) {
			t.Helper()
			msFirst, _ := ms.FirstIndex()
			msLast, _ := ms.LastIndex()
			checkBounds(t, l, msFirst, msLast)
			for i := uint64(0); i <= msLast+2; i++ {
				wt, werr := ms.Term(i)
				gt, gerr := l.Term(i)
				if wt != gt || !sameStorageErr(werr, gerr) {
					t.Fatalf("step %d: Term(%d) = %d, %v; MemoryStorage %d, %v", step, i, gt, gerr, wt, werr)
				}
			}
			for lo := msFirst - 1; lo <= msLast; lo++ {
				for hi := lo + 1; hi <= msLast+1; hi++ {
					for _, maxSize := range []uint64{0, 30, 60, 100, noLimit} {
						want, werr := ms.Entries(lo, hi, maxSize)
						got, gerr := l.Entries(lo, hi, maxSize)
						if !sameStorageErr(werr, gerr) {
							t.Fatalf("step %d: Entries(%d, %d, %d) err = %v; MemoryStorage %v", step, lo, hi, maxSize, gerr, werr)
						}
						if entriesEqual(want, got) {
							continue
						}
						if diff := cmp.Diff(want, got, protocmp.Transform(), cmpEmptySlices); diff != "" {
							t.Fatalf("step %d: Entries(%d, %d, %d) (-MemoryStorage +RangeLog):\n%s", step, lo, hi, maxSize, diff)
						}
					}
				}
			}
		}
		for step, o := range ops {
			if o.appendEnts != nil {
				if err := ms.Append(o.appendEnts); err != nil {
					t.Fatal(err)
				}
				appendEnts(t, e, l, o.appendEnts, nil)
			} else {
				term, err := ms.Term(o.compact)
				if err != nil {
					t.Fatal(err)
				}
				if err := ms.Compact(o.compact); err != nil {
					t.Fatal(err)
				}
				truncate(t, e, l, o.compact, term)
			}
			compare(t, step)
		}
		e.reopen()
		l = mustLoad(t, e, 1, nil, nil)
		compare(t, len(ops))
	})
}

func sameStorageErr(a, b error) bool {
	for _, target := range []error{raft.ErrCompacted, raft.ErrUnavailable} {
		if errors.Is(a, target) != errors.Is(b, target) {
			return false
		}
	}
	return (a == nil) == (b == nil)
}

// ---------------------------------------------------------------------------
// raft.RawNode smoke test: the RangeLog drives a real single-voter raft group.

type raftHarness struct {
	t       *testing.T
	e       *testEngine
	l       *RangeLog
	rn      *raft.RawNode
	applied uint64
	appTerm uint64
	cs      *pb.ConfState
}

func newRaftHarness(t *testing.T, e *testEngine, cs *pb.ConfState, applied *rangekvpb.AppliedState) *raftHarness {
	t.Helper()
	h := &raftHarness{t: t, e: e, cs: cs}
	h.l = mustLoad(t, e, 7, cs, applied)
	if applied != nil {
		h.applied, h.appTerm = applied.Index, applied.Term
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              1,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         h.l,
		Applied:         h.applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		Logger:          &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	})
	if err != nil {
		t.Fatalf("NewRawNode: %v", err)
	}
	h.rn = rn
	return h
}

// handleReady persists and applies every Ready until there is none; it
// returns the committed entries it applied.
func (h *raftHarness) handleReady() []*pb.Entry {
	t := h.t
	t.Helper()
	var committed []*pb.Entry
	for range 100 {
		if !h.rn.HasReady() {
			return committed
		}
		rd := h.rn.Ready()
		if !raft.IsEmptySnap(rd.Snapshot) {
			t.Fatalf("unexpected snapshot in Ready: %v", rd.Snapshot)
		}
		if len(rd.Messages) != 0 {
			t.Fatalf("single voter produced messages: %v", rd.Messages)
		}
		b := h.e.db.NewBatch()
		u, err := h.l.StageAppend(b, rd.Entries, rd.HardState)
		if err != nil {
			t.Fatalf("StageAppend: %v", err)
		}
		commitBatch(t, b)
		h.l.FinishAppend(u)
		for _, ce := range rd.CommittedEntries {
			if ce.GetIndex() != h.applied+1 {
				t.Fatalf("applied %d, then committed entry %d", h.applied, ce.GetIndex())
			}
			h.applied, h.appTerm = ce.GetIndex(), ce.GetTerm()
			committed = append(committed, ce)
		}
		h.l.SetApplied(h.applied, h.appTerm, h.cs)
		h.rn.Advance(rd)
	}
	t.Fatal("raft did not quiesce")
	return nil
}

func (h *raftHarness) campaign() {
	h.t.Helper()
	if err := h.rn.Campaign(); err != nil {
		h.t.Fatalf("Campaign: %v", err)
	}
	h.handleReady()
	if st := h.rn.BasicStatus(); st.RaftState != raft.StateLeader {
		h.t.Fatalf("not leader after campaign: %v", st.RaftState)
	}
}

func (h *raftHarness) proposeAndCommit(data string) *pb.Entry {
	h.t.Helper()
	if err := h.rn.Propose([]byte(data)); err != nil {
		h.t.Fatalf("Propose: %v", err)
	}
	for _, ce := range h.handleReady() {
		if string(ce.GetData()) == data {
			return ce
		}
	}
	h.t.Fatalf("proposal %q not committed", data)
	return nil
}

func TestRawNodeSingleVoterSmoke(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		cs := &pb.ConfState{Voters: []uint64{1}}
		h := newRaftHarness(t, e, cs, nil)
		h.campaign()
		// The leader's empty entry at index 1, term 1, is committed.
		if h.applied != 1 || h.appTerm != 1 {
			t.Fatalf("after election applied %d/%d, want 1/1", h.applied, h.appTerm)
		}
		ce := h.proposeAndCommit("hello")
		if ce.GetIndex() != 2 || ce.GetTerm() != 1 {
			t.Fatalf("committed %q at %d/%d, want 2/1", ce.GetData(), ce.GetIndex(), ce.GetTerm())
		}
		checkBounds(t, h.l, 1, 2)
		checkTerm(t, h.l, 2, 1)
		checkHardState(t, h.l, hardState(1, 1, 2))
		checkEntries(t, h.l, 2, 3, noLimit, []*pb.Entry{ent(2, 1, "hello")})

		// Compact the applied prefix; raft keeps working on the log tail.
		truncate(t, e, h.l, 2, 1)
		ce = h.proposeAndCommit("after-truncate")
		if ce.GetIndex() != 3 {
			t.Fatalf("committed at %d, want 3", ce.GetIndex())
		}
		checkBounds(t, h.l, 3, 3)

		// Restart: a new RawNode on the reloaded log recovers the hard state
		// and log, elects itself in a higher term and commits new proposals.
		e.reopen()
		h = newRaftHarness(t, e, cs, &rangekvpb.AppliedState{Index: 3, Term: 1})
		checkHardState(t, h.l, hardState(1, 1, 3))
		checkBounds(t, h.l, 3, 3)
		if st := h.rn.BasicStatus(); st.GetCommit() != 3 || st.GetTerm() != 1 {
			t.Fatalf("after restart raft commit/term = %d/%d, want 3/1", st.GetCommit(), st.GetTerm())
		}
		h.campaign()
		ce = h.proposeAndCommit("world")
		if ce.GetIndex() != 5 || ce.GetTerm() != 2 {
			t.Fatalf("committed %q at %d/%d, want 5/2", ce.GetData(), ce.GetIndex(), ce.GetTerm())
		}
		checkHardState(t, h.l, hardState(2, 1, 5))
		checkEntries(t, h.l, 3, 6, noLimit, []*pb.Entry{ent(3, 1, "after-truncate"), ent(4, 2, ""), ent(5, 2, "world")})

		// Snapshot metadata follows what the harness applied.
		snap, err := h.l.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if snap.GetMetadata().GetIndex() != 5 || snap.GetMetadata().GetTerm() != 2 {
			t.Fatalf("snapshot metadata %d/%d, want 5/2", snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
		}
	})
}

// A hard state that moved only its commit index, up to the applied index
// the same batch records, is not written; a restart reads the same hard
// state anyway (Load repairs the commit up to the applied index). A new
// term or vote, or a commit past the applied index, is written.
func TestStageAppendAppliedSkipsCoveredCommitOnly(t *testing.T) {
	tests := []struct {
		name    string
		hs      *pb.HardState
		applied uint64
		written bool
	}{
		{"commit only, covered", hardState(2, 1, 8), 8, false},
		{"commit only, applied beyond it", hardState(2, 1, 7), 8, false},
		{"commit past the applied index", hardState(2, 1, 9), 8, true},
		{"no applied index in the batch", hardState(2, 1, 8), 0, true},
		{"new term", hardState(3, 0, 8), 8, true},
		{"new vote", hardState(2, 2, 8), 8, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *testEngine) {
				l := mustLoad(t, e, 1, nil, nil)
				appendEnts(t, e, l, entsRange(1, 11, 2), hardState(2, 1, 5))
				b := e.db.NewBatch()
				u, err := l.StageAppendApplied(b, nil, tc.hs, tc.applied)
				if err != nil {
					t.Fatal(err)
				}
				if tc.applied > 0 { // what the batch's applies record
					v, _ := proto.Marshal(&rangekvpb.AppliedState{Index: tc.applied, Term: 2})
					if err := b.Set(keys.AppliedStateKey(1), v, nil); err != nil {
						t.Fatal(err)
					}
				}
				commitBatch(t, b)
				l.FinishAppend(u)
				checkHardState(t, l, tc.hs) // in memory: always the new one
				var disk pb.HardState
				getRaw(t, e.db, keys.HardStateKey(1), &disk)
				if got := proto.Equal(&disk, tc.hs); got != tc.written {
					t.Fatalf("hard state on disk %v, want written=%v of %v", &disk, tc.written, tc.hs)
				}
				e.reopen()
				var applied *rangekvpb.AppliedState
				if tc.applied > 0 {
					applied = &rangekvpb.AppliedState{Index: tc.applied, Term: 2}
				}
				want := proto.CloneOf(tc.hs)
				want.Commit = proto.Uint64(max(tc.hs.GetCommit(), tc.applied))
				checkHardState(t, mustLoad(t, e, 1, nil, applied), want)
			})
		})
	}
}
