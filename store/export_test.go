// Internals the black-box tests (package store_test) reach through; this
// file is compiled only into the tests.

package store

import (
	"strconv"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// DeliverForTest hands env to its replica as if a peer's stream carried it.
func (s *Store) DeliverForTest(env *rangekvpb.RaftMessage) { s.deliver(env, false) }

// PersistedHardStateForTest reads rangeID's HardState from the engine
// (empty when none is stored).
func (s *Store) PersistedHardStateForTest(rangeID uint64) (*pb.HardState, error) {
	hs := &pb.HardState{}
	_, err := getProto(s.db, keys.HardStateKey(rangeID), hs)
	return hs, err
}

// RaftHardStateForTest returns the HardState raft holds in memory for
// rangeID's replica here; ok is false without a live replica.
func (s *Store) RaftHardStateForTest(rangeID uint64) (*pb.HardState, bool) {
	r := s.replica(rangeID)
	if r == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.destroyed {
		return nil, false
	}
	return proto.CloneOf(r.mu.rr.BasicStatus().HardState), true
}

// HoldingVotesForTest reports whether the store still ignores vote
// requests because it started less than an election timeout ago.
func (s *Store) HoldingVotesForTest() bool { return s.holdingVotes() }

// TombstoneForTest reads rangeID's tombstone (NextReplicaId 0: none).
func (s *Store) TombstoneForTest(rangeID uint64) (*rangekvpb.RangeTombstone, error) {
	ts := &rangekvpb.RangeTombstone{}
	_, err := getProto(s.db, keys.TombstoneKey(rangeID), ts)
	return ts, err
}

// GCDestroyForTest runs replica GC's last step on rangeID's replica here
// as if placement had answered with other: the replica is destroyed only
// if other proves it removed.
func (s *Store) GCDestroyForTest(rangeID uint64, other *rangekvpb.RangeDescriptor) {
	if r := s.replica(rangeID); r != nil {
		r.gcDestroy(other, "test: placement's descriptor")
	}
}

// CountersForTest returns the store's counters, each under its name with
// its labels (`name{k="v"}`, labels in the registry's order) and summed
// over its labels under the bare name.
func (s *Store) CountersForTest() (map[string]float64, error) {
	mfs, err := s.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			v := m.GetCounter().GetValue()
			out[mf.GetName()] += v
			if len(m.GetLabel()) > 0 {
				key := mf.GetName() + "{"
				for i, lp := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += lp.GetName() + "=" + strconv.Quote(lp.GetValue())
				}
				out[key+"}"] += v
			}
		}
	}
	return out, nil
}
