package store

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// A split whose right range had an uninitialized replica here leaves the
// right range's HardState to installRHS (writeSplitRHSState). A crash
// after the split's batch and before the install leaves the replica's own
// HardState on disk under the new descriptor; the restart must finish what
// the install would have: commit at the initial index, term at least the
// initial term, a later term and its vote kept, so that the replica still
// refuses a second candidate in the term it voted in.
func TestRestartSettlesHardStateLeftByInterruptedSplitInstall(t *testing.T) {
	const rhs = 7
	for _, tc := range []struct {
		name       string
		before     *pb.HardState // nil: the uninitialized replica persisted nothing
		term, vote uint64
	}{
		{"voted in term 7", &pb.HardState{Term: proto.Uint64(7), Vote: proto.Uint64(2)}, 7, 2},
		{"term 6, no vote", &pb.HardState{Term: proto.Uint64(6)}, 6, 0},
		{"nothing persisted", nil, driver.InitTerm, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.StoreID = 1
			cfg.FS = vfs.NewMem()
			cfg.DataDir = "data"
			cfg.InitialStores = map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: "127.0.0.1:3"}
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The state the split's batch committed: range 1 shrunk to
			// [, m), range 7 = [m, ) at the initial index, and the HardState
			// of the uninitialized replica that lived here.
			var left rangekvpb.RangeDescriptor
			if _, err := getProto(s.db, keys.DescriptorKey(1), &left); err != nil {
				t.Fatal(err)
			}
			right := proto.CloneOf(&left)
			right.RangeId, right.StartKey = rhs, []byte("m")
			right.Epoch.Version++
			left.EndKey = []byte("m")
			left.Epoch.Version++
			b := s.db.NewBatch()
			for _, kv := range []struct {
				k []byte
				m proto.Message
			}{
				{keys.DescriptorKey(1), &left},
				{keys.DescriptorKey(rhs), right},
				{keys.AppliedStateKey(rhs), &rangekvpb.AppliedState{Index: driver.InitIndex, Term: driver.InitTerm}},
				{keys.TruncatedStateKey(rhs), &rangekvpb.TruncatedState{Index: driver.InitIndex, Term: driver.InitTerm}},
			} {
				v, err := proto.Marshal(kv.m)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Set(kv.k, v, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.before != nil {
				v, err := proto.Marshal(tc.before)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Set(keys.HardStateKey(rhs), v, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			s.Stop()

			s, err = Open(cfg)
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer s.Stop()
			var hs pb.HardState
			if _, err := getProto(s.db, keys.HardStateKey(rhs), &hs); err != nil {
				t.Fatal(err)
			}
			if hs.GetTerm() != tc.term || hs.GetVote() != tc.vote || hs.GetCommit() != driver.InitIndex {
				t.Errorf("persisted %v after restart, want term %d, vote %d, commit %d", &hs, tc.term, tc.vote, driver.InitIndex)
			}
			r := s.replica(rhs)
			if r == nil || r.Descriptor() == nil {
				t.Fatalf("range %d not loaded as an initialized replica", rhs)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if bs := r.mu.rr.BasicStatus(); bs.GetTerm() != tc.term || bs.GetVote() != tc.vote || bs.GetCommit() != driver.InitIndex {
				t.Errorf("raft restarted at %v, want term %d, vote %d, commit %d", bs.HardState, tc.term, tc.vote, driver.InitIndex)
			}
			// A candidate other than the one voted for, in that term, with
			// an up-to-date log: refused where a vote was cast, granted
			// otherwise.
			if err := r.mu.rr.Step(&pb.Message{Type: pb.MsgVote.Enum(), From: proto.Uint64(3), To: proto.Uint64(1),
				Term: proto.Uint64(tc.term), LogTerm: proto.Uint64(driver.InitTerm), Index: proto.Uint64(driver.InitIndex)}); err != nil {
				t.Fatal(err)
			}
			rd, _ := r.mu.rr.Ready()
			var resp *pb.Message
			for _, m := range rd.Messages {
				if m.GetType() == pb.MsgVoteResp {
					resp = m
				}
			}
			if resp == nil {
				t.Fatalf("no answer to replica 3's vote in term %d: %v", tc.term, rd.Messages)
			}
			if wantReject := tc.vote != 0; resp.GetReject() != wantReject {
				t.Errorf("replica 3's vote in term %d: reject = %v, want %v (voted for %d)", tc.term, resp.GetReject(), wantReject, tc.vote)
			}
		})
	}
}
