package store

import (
	"testing"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// TestJudgeReplica pins replica GC's decision rule: remove only on a
// descriptor at a newer conf_ver (version not older) that no longer lists
// the replica's ID and was written after that ID was handed out; keep on
// anything older, missing or ambiguous.
func TestJudgeReplica(t *testing.T) {
	desc := func(confVer, version, next uint64, reps ...[2]uint64) *rangekvpb.RangeDescriptor {
		d := &rangekvpb.RangeDescriptor{RangeId: 7, Epoch: &rangekvpb.RangeEpoch{ConfVer: confVer, Version: version}, NextReplicaId: next}
		for _, r := range reps {
			d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: r[0], StoreId: r[1]})
		}
		return d
	}
	local := desc(5, 2, 4, [2]uint64{1, 1}, [2]uint64{2, 2}, [2]uint64{3, 3}) // replica 3 on store 3
	for _, tc := range []struct {
		name  string
		local *rangekvpb.RangeDescriptor
		other *rangekvpb.RangeDescriptor
		want  gcVerdict
	}{
		{"placement does not know the range", local, nil, gcUndecided},
		{"older conf_ver without us", local, desc(4, 2, 4, [2]uint64{1, 1}), gcUndecided},
		{"newer conf_ver but older version", local, desc(9, 1, 7, [2]uint64{4, 4}), gcUndecided},
		{"same epoch", local, desc(5, 2, 4, [2]uint64{1, 1}, [2]uint64{2, 2}, [2]uint64{3, 3}), gcMember},
		{"newer, still lists us", local, desc(7, 2, 5, [2]uint64{1, 1}, [2]uint64{3, 3}, [2]uint64{4, 4}), gcMember},
		{"newer, moved to other stores", local, desc(11, 3, 7, [2]uint64{4, 4}, [2]uint64{5, 5}, [2]uint64{6, 6}), gcRemoved},
		{"newer, store re-added with a new ID", local, desc(13, 3, 8, [2]uint64{4, 4}, [2]uint64{7, 3}), gcRemoved},
		{"uninitialized, its ID handed out and gone", nil, desc(11, 3, 7, [2]uint64{4, 4}), gcRemoved},
		{"uninitialized, added after that descriptor", nil, desc(11, 3, 3, [2]uint64{1, 1}), gcUndecided},
	} {
		if got := judgeReplica(tc.local, tc.other, 3); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	// The tombstone keeps out every ID the proving descriptor had handed
	// out, except a newer incarnation it lists on this store.
	if got := gcTombstoneID(desc(11, 3, 7, [2]uint64{4, 4}), 3, 3); got != 7 {
		t.Errorf("tombstone after a move away: next_replica_id %d, want 7", got)
	}
	if got := gcTombstoneID(desc(13, 3, 8, [2]uint64{4, 4}, [2]uint64{7, 3}), 3, 3); got != 7 {
		t.Errorf("tombstone with replica 7 re-added on this store: next_replica_id %d, want 7", got)
	}
}
