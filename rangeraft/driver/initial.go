// The state of a group created without a log: a store's range 1 at
// bootstrap, the right half of a split, the placement group.

package driver

import (
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Initial Raft state of a group created without a log: applied =
// truncated = commit = InitIndex at InitTerm, identical on every replica,
// so that no snapshot is needed to start; a replica that missed the start
// catches up by snapshot.
const (
	InitIndex = 10
	InitTerm  = 5
)

// Setter is the write WriteInitialState stages into (*pebble.Batch).
type Setter interface {
	Set(key, value []byte, o *pebble.WriteOptions) error
}

// InitialHardState is the hard state of a new group: term InitTerm,
// commit InitIndex, no vote.
func InitialHardState() *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(InitTerm), Commit: proto.Uint64(InitIndex)}
}

// SynthesizeHardState is the hard state of a group created without a log
// given the one already persisted under its ID (empty if none; as
// CockroachDB's SynthesizeHardState): commit at least InitIndex, term at
// least InitTerm, and the vote kept when the term is kept (a replica never
// lowers what it promised).
func SynthesizeHardState(old *pb.HardState) *pb.HardState {
	hs := &pb.HardState{Term: proto.Uint64(max(old.GetTerm(), InitTerm)), Commit: proto.Uint64(max(old.GetCommit(), InitIndex))}
	if old.GetTerm() == hs.GetTerm() && old.GetVote() != 0 {
		hs.Vote = proto.Uint64(old.GetVote())
	}
	return hs
}

// WriteInitialState stages into w the state of the group desc describes:
// its descriptor, applied and truncated state at (InitIndex, InitTerm),
// and hs as its hard state. hs is InitialHardState() for a new group; nil
// leaves the hard state key alone (a split whose right-hand replica
// already exists and still owns it; see store/split.go).
func WriteInitialState(w Setter, desc *rangekvpb.RangeDescriptor, hs *pb.HardState) error {
	id := desc.RangeId
	if err := set(w, keys.DescriptorKey(id), desc); err != nil {
		return err
	}
	if err := set(w, keys.AppliedStateKey(id), &rangekvpb.AppliedState{Index: InitIndex, Term: InitTerm}); err != nil {
		return err
	}
	if err := set(w, keys.TruncatedStateKey(id), &rangekvpb.TruncatedState{Index: InitIndex, Term: InitTerm}); err != nil {
		return err
	}
	if hs == nil {
		return nil
	}
	return set(w, keys.HardStateKey(id), hs)
}

func set(w Setter, k []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return w.Set(k, v, nil)
}
