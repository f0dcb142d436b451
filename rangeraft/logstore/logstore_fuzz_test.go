package logstore

// Fuzzing the persisted Raft records of one range (hard state, truncated
// state, log entries): what StageAppend wrote, Load reads back exactly; and
// Load over arbitrary bytes never panics and never accepts a log whose
// recorded indexes contradict the keys they are stored under.

import (
	"math"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// fuzzEngine opens one in-memory Pebble for a fuzz target; every iteration
// uses a range ID of its own in it.
func fuzzEngine(f *testing.F) (*pebble.DB, func() uint64) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	var next atomic.Uint64
	return db, func() uint64 { return next.Add(1) }
}

func FuzzLogRoundTrip(f *testing.F) {
	db, nextID := fuzzEngine(f)
	f.Add(uint64(10), uint64(5), uint8(3), uint64(2), uint64(1), []byte("data"))
	f.Add(uint64(0), uint64(0), uint8(0), uint64(0), uint64(0), []byte{})
	f.Add(uint64(math.MaxUint64-20), uint64(math.MaxUint64-1), uint8(7), uint64(7), uint64(3), []byte{0})
	f.Fuzz(func(t *testing.T, trIndex, trTerm uint64, n uint8, commitOff, vote uint64, data []byte) {
		n %= 16
		if trIndex > math.MaxUint64-uint64(n)-1 {
			trIndex = math.MaxUint64 - uint64(n) - 1
		}
		id := nextID()
		b := db.NewBatch()
		tv, _ := proto.Marshal(&rangekvpb.TruncatedState{Index: trIndex, Term: trTerm})
		if err := b.Set(keys.TruncatedStateKey(id), tv, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		l, err := Load(db, id, nil, nil)
		if err != nil {
			t.Fatalf("Load of a fresh log: %v", err)
		}
		var ents []*pb.Entry
		term := trTerm
		for i := uint64(1); i <= uint64(n); i++ {
			if i%3 == 0 && term < math.MaxUint64 {
				term++
			}
			ents = append(ents, &pb.Entry{Index: proto.Uint64(trIndex + i), Term: proto.Uint64(term),
				Type: pb.EntryNormal.Enum(), Data: append(data, byte(i))})
		}
		hs := &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(trIndex + commitOff%(uint64(n)+1))}
		w := db.NewBatch()
		u, err := l.StageAppend(w, ents, hs)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		l.FinishAppend(u)

		got, err := Load(db, id, nil, nil)
		if err != nil {
			t.Fatalf("Load after append: %v", err)
		}
		ghs, _, _ := got.InitialState()
		if !proto.Equal(ghs, hs) && !(term == 0 && vote == 0 && hs.GetCommit() == 0) {
			t.Fatalf("hard state %v read back as %v", hs, ghs)
		}
		last, _ := got.LastIndex()
		first, _ := got.FirstIndex()
		if first != trIndex+1 || last != trIndex+uint64(n) {
			t.Fatalf("first, last = %d, %d; want %d, %d", first, last, trIndex+1, trIndex+uint64(n))
		}
		if n == 0 {
			return
		}
		ge, err := got.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			t.Fatalf("Entries(%d, %d): %v", first, last+1, err)
		}
		if len(ge) != len(ents) {
			t.Fatalf("%d entries read back, %d written", len(ge), len(ents))
		}
		for i := range ents {
			if !proto.Equal(ge[i], ents[i]) {
				t.Fatalf("entry %d: wrote %v, read %v", i, ents[i], ge[i])
			}
			if tm, err := got.Term(ents[i].GetIndex()); err != nil || tm != ents[i].GetTerm() {
				t.Fatalf("Term(%d) = %d, %v; want %d", ents[i].GetIndex(), tm, err, ents[i].GetTerm())
			}
		}
	})
}

func FuzzLoadArbitrary(f *testing.F) {
	db, nextID := fuzzEngine(f)
	hs, _ := proto.Marshal(&pb.HardState{Term: proto.Uint64(5), Commit: proto.Uint64(11)})
	tr, _ := proto.Marshal(&rangekvpb.TruncatedState{Index: 10, Term: 5})
	e, _ := proto.Marshal(&pb.Entry{Index: proto.Uint64(11), Term: proto.Uint64(5), Data: []byte("x")})
	f.Add(hs, tr, e, uint64(11), uint64(10))
	f.Add([]byte{}, []byte{}, []byte{}, uint64(1), uint64(0))
	f.Add([]byte{0xff}, []byte{0x08}, []byte{0x10, 0x80}, uint64(0), uint64(3))
	eFar, _ := proto.Marshal(&pb.Entry{Index: proto.Uint64(1 << 60), Term: proto.Uint64(5)})
	f.Add(hs, tr, eFar, uint64(11), uint64(10))
	f.Fuzz(func(t *testing.T, hsB, trB, entB []byte, entIndex, applied uint64) {
		id := nextID()
		b := db.NewBatch()
		for _, kv := range [][2][]byte{
			{keys.HardStateKey(id), hsB}, {keys.TruncatedStateKey(id), trB}, {keys.LogEntryKey(id, entIndex), entB},
		} {
			if err := b.Set(kv[0], kv[1], nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		l, err := Load(db, id, nil, &rangekvpb.AppliedState{Index: applied})
		if err != nil {
			return
		}
		hs, _, _ := l.InitialState()
		last, _ := l.LastIndex()
		first, _ := l.FirstIndex()
		if hs.GetCommit() < applied || hs.GetCommit() > last {
			t.Fatalf("loaded commit %d outside [applied %d, last %d]", hs.GetCommit(), applied, last)
		}
		// The last index is the stored entry's (the key says where it is)
		// or, with no entry past the truncated state, the truncated index.
		if last != first-1 && last != entIndex {
			t.Fatalf("last index %d, but the only entry is stored at index %d (first %d)", last, entIndex, first)
		}
		if _, err := l.Term(last); err != nil && first <= last {
			t.Fatalf("Term(last %d): %v", last, err)
		}
		if last >= first && last-first < 1<<20 {
			_, _ = l.Entries(first, last+1, math.MaxUint64) // an error is fine; a panic is not
		}
	})
}
