package store

// Fuzzing the store's persisted records (store identity, range
// descriptors, applied state, tombstones) and the pure decision that
// decodes a membership change: what the store writes it reads back equal,
// and arbitrary stored bytes never panic the code that reads them at start.

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// freshDB opens an empty in-memory Pebble for one fuzz iteration (a
// shared one slows down as the deletions between iterations pile up).
func freshDB(t *testing.T) *pebble.DB {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)  {}
func (silentPebble) Errorf(string, ...any) {}
func (silentPebble) Fatalf(format string, args ...any) {
	panic("pebble: " + format)
}

func FuzzDescriptorRoundTrip(f *testing.F) {
	f.Add(uint64(1), []byte(""), []byte(""), uint64(1), uint64(1), uint64(3), uint8(0))
	f.Add(uint64(7), []byte("a"), []byte("m"), uint64(4), uint64(9), uint64(2), uint8(3))
	f.Add(^uint64(0), []byte{0xff}, []byte{}, uint64(0), uint64(0), uint64(0), uint8(4))
	f.Fuzz(func(t *testing.T, rangeID uint64, start, end []byte, confVer, version, n uint64, roles uint8) {
		db := freshDB(t)
		desc := &rangekvpb.RangeDescriptor{RangeId: rangeID, StartKey: start, EndKey: end,
			Epoch: &rangekvpb.RangeEpoch{ConfVer: confVer, Version: version}}
		for i := uint64(1); i <= n%6; i++ {
			desc.Replicas = append(desc.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: i, StoreId: 10 + i,
				Role: rangekvpb.ReplicaRole((uint64(roles) >> i) % 4)})
			desc.NextReplicaId = i + 1
		}
		b := db.NewBatch()
		if err := driver.WriteInitialState(b, desc, driver.InitialHardState()); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		got, err := loadDescriptors(db)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !proto.Equal(got[0], desc) {
			t.Fatalf("wrote descriptor %v, loaded %v", desc, got)
		}
		var as rangekvpb.AppliedState
		if ok, err := getProto(db, keys.AppliedStateKey(rangeID), &as); !ok || err != nil || as.Index != driver.InitIndex || as.Term != driver.InitTerm {
			t.Fatalf("applied state %v (found %v, %v); want %d/%d", &as, ok, err, driver.InitIndex, driver.InitTerm)
		}
		// The conf state holds each replica in exactly the sets its role
		// puts it in.
		cs := confStateOf(desc)
		inSet := func(s []uint64, id uint64) bool { return bytes.Contains(u64s(s), u64s([]uint64{id})) }
		for _, r := range desc.Replicas {
			voter, learner := inSet(cs.Voters, r.ReplicaId), inSet(cs.Learners, r.ReplicaId)
			want := r.Role == rangekvpb.ReplicaRole_VOTER || r.Role == rangekvpb.ReplicaRole_VOTER_INCOMING
			if voter != want || learner != (r.Role == rangekvpb.ReplicaRole_LEARNER) {
				t.Fatalf("replica %v: voter %v learner %v in %v", r, voter, learner, cs)
			}
		}
	})
}

func u64s(s []uint64) []byte {
	var b []byte
	for _, v := range s {
		b = append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v), ',')
	}
	return b
}

func FuzzStoreRecordsDecode(f *testing.F) {
	ident, _ := proto.Marshal(&rangekvpb.StoreIdent{ClusterId: 7, StoreId: 1})
	desc, _ := proto.Marshal(&rangekvpb.RangeDescriptor{RangeId: 3, StartKey: []byte("a"), Epoch: &rangekvpb.RangeEpoch{ConfVer: 2},
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}}})
	tomb, _ := proto.Marshal(&rangekvpb.RangeTombstone{NextReplicaId: 4})
	cc, _ := proto.Marshal(&pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(2)}}})
	f.Add(ident, desc, tomb, cc, uint64(3))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{}, uint64(0))
	f.Add([]byte{0x08}, []byte{0x1a, 0xff}, []byte{0xff, 0xff}, []byte{0x12, 0x02, 0x08}, ^uint64(0))
	f.Fuzz(func(t *testing.T, identB, descB, tombB, ccB []byte, rangeID uint64) {
		db := freshDB(t)
		// Store identity: a record that decodes is either this store's
		// or a typed mismatch; one that does not decode is an error.
		if err := db.Set(keys.StoreIdentKey(), identB, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		want := &rangekvpb.StoreIdent{ClusterId: 7, StoreId: 1}
		var stored rangekvpb.StoreIdent
		decodes := proto.Unmarshal(identB, &stored) == nil
		isNew, err := checkIdent(db, want)
		var mismatch *ErrIdentityMismatch
		switch {
		case isNew:
			t.Fatalf("checkIdent called a stored identity %x new", identB)
		case err == nil && (!decodes || stored.StoreId != 1 || stored.ClusterId != 7):
			t.Fatalf("checkIdent accepted %x (%v) as store 1 of cluster 7", identB, &stored)
		case errors.As(err, &mismatch) && (!decodes || (stored.StoreId == 1 && stored.ClusterId == 7)):
			t.Fatalf("checkIdent called %x (%v) a mismatch", identB, &stored)
		}

		// Descriptors: an undecodable or invalid one (no epoch, another
		// range's ID) fails the load with an error; a valid one is
		// returned equal, next to a valid neighbour.
		good := &rangekvpb.RangeDescriptor{RangeId: rangeID ^ 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1}}
		gv, _ := proto.Marshal(good)
		b := db.NewBatch()
		_ = b.Set(keys.DescriptorKey(rangeID), descB, nil)
		_ = b.Set(keys.DescriptorKey(rangeID^1), gv, nil)
		_ = b.Set(keys.TombstoneKey(rangeID), tombB, nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		var d rangekvpb.RangeDescriptor
		descDecodes := proto.Unmarshal(descB, &d) == nil && d.Epoch != nil && d.RangeId == rangeID
		ds, err := loadDescriptors(db)
		if descDecodes != (err == nil) {
			t.Fatalf("loadDescriptors: %v, but the descriptor decodes to a valid one: %v", err, descDecodes)
		}
		if err == nil {
			if len(ds) != 2 {
				t.Fatalf("loaded %d descriptors, want 2", len(ds))
			}
			for _, got := range ds {
				if !proto.Equal(got, good) && !proto.Equal(got, &d) {
					t.Fatalf("loaded %v, stored %v and %v", got, good, &d)
				}
			}
			// Decisions over a decoded descriptor never panic.
			_ = confStateOf(&d)
			_ = isJoint(&d)
			var c pb.ConfChangeV2
			if proto.Unmarshal(ccB, &c) == nil {
				if next, err := nextDescriptor(&d, &c); err == nil && next.GetEpoch().GetConfVer() <= d.GetEpoch().GetConfVer() {
					t.Fatalf("a membership change applied without moving conf_ver past %d: %v", d.GetEpoch().GetConfVer(), next)
				}
			}
		}
		var ts rangekvpb.RangeTombstone
		if _, err := getProto(db, keys.TombstoneKey(rangeID), &ts); (err == nil) != (proto.Unmarshal(tombB, &rangekvpb.RangeTombstone{}) == nil) {
			t.Fatalf("tombstone %x: getProto error %v disagrees with proto.Unmarshal", tombB, err)
		}
	})
}
