package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// A replica restarted in the middle of a joint membership change rebuilds
// raft's configuration from its descriptor: it must be the joint one raft
// had (old voters outgoing), so the leave-joint entry re-applies. The
// nemesis found a restarted store panicking with "can't leave a non-joint
// config" when the outgoing half held only the demoted voter.
func TestConfStateOfJointDescriptor(t *testing.T) {
	d := &rangekvpb.RangeDescriptor{RangeId: 1, Replicas: []*rangekvpb.ReplicaDescriptor{
		{ReplicaId: 1, Role: rangekvpb.ReplicaRole_VOTER},
		{ReplicaId: 2, Role: rangekvpb.ReplicaRole_VOTER},
		{ReplicaId: 3, Role: rangekvpb.ReplicaRole_VOTER_DEMOTING},
		{ReplicaId: 4, Role: rangekvpb.ReplicaRole_VOTER_INCOMING},
		{ReplicaId: 5, Role: rangekvpb.ReplicaRole_LEARNER},
	}}
	got := confStateOf(d)
	want := &pb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{5}, LearnersNext: []uint64{3}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("conf state (-want +got):\n%s", diff)
	}
	// Raft restores it as a joint config and can leave it.
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 10}
	cfg, prs, err := confchange.Restore(chg, got)
	if err != nil {
		t.Fatal(err)
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	if _, _, err := chg.LeaveJoint(); err != nil {
		t.Fatalf("leave joint after restore: %v", err)
	}
	// Not joint: no outgoing half.
	d.Replicas[2].Role, d.Replicas[3].Role = rangekvpb.ReplicaRole_VOTER, rangekvpb.ReplicaRole_VOTER
	if cs := confStateOf(d); len(cs.VotersOutgoing) != 0 || len(cs.LearnersNext) != 0 {
		t.Fatalf("non-joint descriptor gave %v", cs)
	}
}

// storage.cache-size sizes the engine's block cache; 0 leaves Pebble's
// default. (A release once shipped the key validated but never applied.)
func TestPebbleOptionsBlockCache(t *testing.T) {
	o := pebbleOptions(&Config{CacheBytes: 48 << 20})
	if o.Cache == nil {
		t.Fatal("CacheBytes set, but the engine options carry no block cache")
	}
	defer o.Cache.Unref()
	if got := o.Cache.MaxSize(); got != 48<<20 {
		t.Fatalf("block cache size = %d, want %d", got, 48<<20)
	}
	if o := pebbleOptions(&Config{}); o.Cache != nil {
		t.Fatalf("CacheBytes 0: want Pebble's default cache, got one of %d bytes", o.Cache.MaxSize())
	}
}
