package store

import (
	"testing"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestDrainTargetPicksLiveCaughtUpVoterElsewhere(t *testing.T) {
	desc := &rangekvpb.RangeDescriptor{RangeId: 7, Replicas: []*rangekvpb.ReplicaDescriptor{
		{ReplicaId: 1, StoreId: 1},
		{ReplicaId: 2, StoreId: 2},
		{ReplicaId: 3, StoreId: 3},
		{ReplicaId: 4, StoreId: 4, Role: rangekvpb.ReplicaRole_LEARNER},
		{ReplicaId: 5, StoreId: 5, Role: rangekvpb.ReplicaRole_VOTER_DEMOTING},
	}}
	all := func(uint64) bool { return true }
	not := func(dead ...uint64) func(uint64) bool {
		return func(s uint64) bool {
			for _, d := range dead {
				if s == d {
					return false
				}
			}
			return true
		}
	}
	for _, tc := range []struct {
		name   string
		match  map[uint64]uint64
		live   func(uint64) bool
		prefer uint64
		want   uint64
	}{
		{"highest match wins", map[uint64]uint64{1: 10, 2: 8, 3: 9, 4: 10, 5: 10}, all, 0, 3},
		{"tie: lowest store", map[uint64]uint64{2: 9, 3: 9}, all, 0, 2},
		{"dead store skipped", map[uint64]uint64{2: 8, 3: 9}, not(3), 0, 2},
		{"learner and demoting voter never", map[uint64]uint64{4: 99, 5: 99}, not(2, 3), 0, 0},
		{"transfer in progress kept", map[uint64]uint64{2: 8, 3: 9}, all, 2, 2},
		{"preferred but dead: re-picked", map[uint64]uint64{2: 8, 3: 9}, not(2), 2, 3},
		{"never self", map[uint64]uint64{1: 100}, not(2, 3), 1, 0},
	} {
		if got := drainTarget(desc, 1, tc.match, tc.live, tc.prefer); got != tc.want {
			t.Errorf("%s: drainTarget = replica %d, want %d", tc.name, got, tc.want)
		}
	}
}
