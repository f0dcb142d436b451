package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Issue 15 item 3 (Q4): a store accepts Raft streams from a peer store
// only under the incarnation it first accepted from it, remembered across
// restarts; a probe checks without recording.
func TestPeerIncarnationFence(t *testing.T) {
	db, err := pebble.Open("data", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open := func() *Store {
		s := newTransportTestStore(t, 1)
		s.db = db
		return s
	}
	want := func(what string, err error, code codes.Code) {
		t.Helper()
		if status.Code(err) != code {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}
	s := open()
	want("first stream of store 2", s.admitPeer(2, 111, false), codes.OK)
	want("same incarnation again", s.admitPeer(2, 111, false), codes.OK)
	want("another incarnation of store 2", s.admitPeer(2, 222, false), codes.FailedPrecondition)
	want("probe by another incarnation of store 2", s.admitPeer(2, 222, true), codes.FailedPrecondition)
	want("a sender without incarnation", s.admitPeer(2, 0, false), codes.OK)
	if got := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "wiped_store"); got != 2 {
		t.Fatalf("wiped_store refusals counted %v, want 2", got)
	}
	// A probe records nothing: the first real stream decides.
	want("probe of unknown store 3", s.admitPeer(3, 5, true), codes.OK)
	want("store 3 under another incarnation than its probe", s.admitPeer(3, 6, false), codes.OK)

	s = open() // restarted: the records are durable
	want("another incarnation of store 2 after a restart", s.admitPeer(2, 222, false), codes.FailedPrecondition)
	want("store 2 after a restart", s.admitPeer(2, 111, false), codes.OK)
	want("another incarnation of store 3 after a restart", s.admitPeer(3, 5, false), codes.FailedPrecondition)
}
