package driver_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

func memDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestWriteInitialState: a group written by WriteInitialState loads as a
// log with nothing in it at (InitIndex, InitTerm), commit InitIndex.
func TestWriteInitialState(t *testing.T) {
	db := memDB(t)
	desc := &rangekvpb.RangeDescriptor{RangeId: 7, StartKey: []byte("a"), Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1},
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}}}
	b := db.NewBatch()
	if err := driver.WriteInitialState(b, desc, driver.InitialHardState()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	var got rangekvpb.RangeDescriptor
	v, c, err := db.Get(keys.DescriptorKey(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(v, &got); err != nil || !proto.Equal(&got, desc) {
		t.Errorf("descriptor %v (%v), want %v", &got, err, desc)
	}
	c.Close()
	log, err := driver.LoadLog(db, 7, &pb.ConfState{Voters: []uint64{1}}, &rangekvpb.AppliedState{Index: driver.InitIndex, Term: driver.InitTerm})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := log.FirstIndex()
	last, _ := log.LastIndex()
	term, err := log.Term(driver.InitIndex)
	if first != driver.InitIndex+1 || last != driver.InitIndex || term != driver.InitTerm || err != nil {
		t.Errorf("first %d last %d term(%d) %d (%v), want %d %d %d", first, last, driver.InitIndex, term, err, driver.InitIndex+1, driver.InitIndex, driver.InitTerm)
	}
	hs, _, _ := log.InitialState()
	if hs.GetCommit() != driver.InitIndex || hs.GetTerm() != driver.InitTerm || hs.GetVote() != 0 {
		t.Errorf("hard state %v, want commit %d term %d, no vote", hs, driver.InitIndex, driver.InitTerm)
	}
	tr, trTerm := log.Truncated()
	if tr != driver.InitIndex || trTerm != driver.InitTerm {
		t.Errorf("truncated (%d, %d), want (%d, %d)", tr, trTerm, driver.InitIndex, driver.InitTerm)
	}

	// A nil hard state leaves the key alone (a split whose right replica
	// owns it).
	owned := &pb.HardState{Term: proto.Uint64(9), Vote: proto.Uint64(3), Commit: proto.Uint64(4)}
	ownedV, _ := proto.Marshal(owned)
	if err := db.Set(keys.HardStateKey(8), ownedV, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b = db.NewBatch()
	if err := driver.WriteInitialState(b, &rangekvpb.RangeDescriptor{RangeId: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	v, c, err = db.Get(keys.HardStateKey(8))
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != string(ownedV) {
		t.Error("WriteInitialState with a nil hard state overwrote the hard state")
	}
	c.Close()
}

func TestSynthesizeHardState(t *testing.T) {
	u := proto.Uint64
	for _, tc := range []struct {
		name string
		old  *pb.HardState
		want *pb.HardState
	}{
		{"nothing persisted", &pb.HardState{}, &pb.HardState{Term: u(driver.InitTerm), Commit: u(driver.InitIndex)}},
		{"a vote at a lower term is dropped", &pb.HardState{Term: u(3), Vote: u(2)}, &pb.HardState{Term: u(driver.InitTerm), Commit: u(driver.InitIndex)}},
		{"a vote at the initial term is kept", &pb.HardState{Term: u(driver.InitTerm), Vote: u(2)}, &pb.HardState{Term: u(driver.InitTerm), Vote: u(2), Commit: u(driver.InitIndex)}},
		{"a higher term and its vote are kept", &pb.HardState{Term: u(8), Vote: u(3), Commit: u(4)}, &pb.HardState{Term: u(8), Vote: u(3), Commit: u(driver.InitIndex)}},
		{"a higher commit is kept", &pb.HardState{Term: u(8), Commit: u(12)}, &pb.HardState{Term: u(8), Commit: u(12)}},
	} {
		if got := driver.SynthesizeHardState(tc.old); !proto.Equal(got, tc.want) {
			t.Errorf("%s: SynthesizeHardState(%v) = %v, want %v", tc.name, tc.old, got, tc.want)
		}
	}
	if got, want := driver.InitialHardState(), driver.SynthesizeHardState(&pb.HardState{}); !proto.Equal(got, want) {
		t.Errorf("InitialHardState() = %v, want %v", got, want)
	}
}
