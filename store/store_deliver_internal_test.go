package store

import (
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// uninitTestStore is a transport test store with an in-memory engine and
// a knob that stops createUninitialized between its Pebble reads for the
// ranges in hold: entered gets the range ID, and the read goes on when the
// test sends on release.
func uninitTestStore(t *testing.T, hold map[uint64]bool) (s *Store, entered chan uint64, release chan struct{}) {
	t.Helper()
	s = newTransportTestStore(t, 2)
	db, err := pebble.Open("data", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	entered, release = make(chan uint64, 4), make(chan struct{})
	var once sync.Map
	s.cfg.Knobs = &TestingKnobs{BetweenUninitializedReads: func(rangeID uint64) {
		if _, again := once.LoadOrStore(rangeID, true); hold[rangeID] && !again {
			entered <- rangeID
			<-release
		}
	}}
	return s, entered, release
}

func waitEntered(t *testing.T, entered chan uint64) uint64 {
	t.Helper()
	select {
	case id := <-entered:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("createUninitialized did not reach its reads within 10s")
		return 0
	}
}

// While createUninitialized reads Pebble (stopped there by a knob), the
// store lock is free: replica lookups and the creation of another range's
// replica complete. (On main the reads ran under s.mu, and everything that
// routes a request or delivers a message waited for the disk.) The
// creation that waited then installs its replica, once.
func TestCreateUninitializedReadsWithoutStoreLock(t *testing.T) {
	s, entered, release := uninitTestStore(t, map[uint64]bool{50: true})
	addTestReplica(s, 7, 1)
	created := make(chan *Replica, 1)
	go func() { created <- s.createUninitialized(50, 2) }()
	waitEntered(t, entered)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.replica(7)
		_ = s.replicaForKey([]byte("k"))
		if s.createUninitialized(51, 2) == nil {
			t.Error("could not create range 51's replica")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(release)
		<-done
		<-created
		t.Fatal("replica lookups waited 10s for another range's createUninitialized to finish its Pebble reads: it holds the store lock")
	}
	close(release)
	r := <-created
	if r == nil || s.replica(50) != r || r.replicaID != 2 {
		t.Fatalf("range 50: created %v, registered %v; want replica 2 registered", r, s.replica(50))
	}
	if n := gaugeValue(t, s, "rangekv_store_replicas"); n != 2 {
		t.Fatalf("rangekv_store_replicas = %v, want 2 (ranges 50 and 51)", n)
	}
}

// The reads are re-checked under the lock: a replica created meanwhile
// wins (no second replica), and a replica destroyed meanwhile (its
// tombstone newer than what was read) makes the creation read again and
// obey the tombstone.
func TestCreateUninitializedRechecksAfterReads(t *testing.T) {
	s, entered, release := uninitTestStore(t, map[uint64]bool{60: true, 70: true})

	// Range 60: another delivery creates the replica while the first one
	// reads; the first returns that replica.
	first := make(chan *Replica, 1)
	go func() { first <- s.createUninitialized(60, 2) }()
	waitEntered(t, entered)
	other := s.createUninitialized(60, 2)
	release <- struct{}{}
	if got := <-first; other == nil || got != other {
		t.Fatalf("range 60: the waiting creation returned %p, the other %p; want the same replica", got, other)
	}

	// Range 70: while replica 2's creation reads, replica 3 is created and
	// destroyed (tombstone: next replica ID 4). Replica 2 must not appear.
	stale := make(chan *Replica, 1)
	go func() { stale <- s.createUninitialized(70, 2) }()
	waitEntered(t, entered)
	r3 := s.createUninitialized(70, 3)
	if r3 == nil {
		t.Fatal("range 70: could not create replica 3")
	}
	r3.destroy("test: removed")
	release <- struct{}{}
	if got := <-stale; got != nil || s.replica(70) != nil {
		t.Fatalf("range 70: creation of replica 2 after replica 3's tombstone returned a replica (%v), registered %v; want nothing", got != nil, s.replica(70) != nil)
	}
	if n := gaugeValue(t, s, "rangekv_store_replicas"); n != 1 {
		t.Fatalf("rangekv_store_replicas = %v, want 1 (range 60)", n)
	}
}
