package store

// Receiving snapshots (store_snapshots.go): placeholders, pending snapshots and
// their SSTs across the Snapshot RPC and the worker pass that steps the
// MsgSnap and ingests the data (issue 15 item 2). A single real store
// (store 2) is fed snapshots through its Snapshot handler, as if store 1
// led the range; every message it sends is dropped. The worker's passes
// over a range are held at the BeforeRaftPass knob, so a snapshot's RPC
// can return while its MsgSnap is still queued.

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// passGate holds the worker's passes over one range at BeforeRaftPass.
type passGate struct {
	rangeID uint64
	mu      sync.Mutex
	stop    chan struct{} // nil: passes run
	arrived chan struct{} // closed when a pass waits on stop
}

func (g *passGate) knob(rangeID uint64) {
	if rangeID != g.rangeID {
		return
	}
	g.mu.Lock()
	stop, arrived := g.stop, g.arrived
	if stop != nil {
		select {
		case <-arrived:
		default:
			close(arrived)
		}
	}
	g.mu.Unlock()
	if stop != nil {
		<-stop
	}
}

// hold makes the range's next passes wait before draining its inbox.
func (g *passGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop == nil {
		g.stop, g.arrived = make(chan struct{}), make(chan struct{})
	}
}

// open lets held and later passes run.
func (g *passGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop != nil {
		close(g.stop)
		g.stop = nil
	}
}

// waitHeld wakes the range and waits until a pass started after hold
// waits at the gate.
func (g *passGate) waitHeld(t *testing.T, s *Store) {
	t.Helper()
	g.mu.Lock()
	arrived := g.arrived
	g.mu.Unlock()
	s.sched.enqueue(g.rangeID, flagWork)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatalf("no worker pass over range %d reached the gate", g.rangeID)
	}
}

// settled returns once everything queued for the range before the call
// was processed by a pass that has finished: of two passes started after
// it, the second starts after the first one (which drained the inbox, or
// came after the pass that did) ended.
func (g *passGate) settled(t *testing.T, s *Store) {
	t.Helper()
	for range 2 {
		g.hold()
		g.waitHeld(t, s)
		g.open()
	}
}

type snapTestStore struct {
	*Store
	gate   *passGate
	fatals chan string
}

// startSnapTestStore starts store 2 of a static cluster whose store 1
// (range 1's only replica) never runs; store 2 has no replica yet.
func startSnapTestStore(t *testing.T, gatedRange uint64) *snapTestStore {
	t.Helper()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &snapTestStore{gate: &passGate{rangeID: gatedRange}, fatals: make(chan string, 16)}
	cfg := Defaults()
	cfg.StoreID = 2
	cfg.Listener = ln
	cfg.FS = vfs.NewMem()
	cfg.DataDir = "data"
	cfg.InitialStores = map[uint64]string{1: deadAddr, 2: ln.Addr().String()}
	cfg.BootstrapStoreIDs = []uint64{1}
	cfg.Workers = 1
	cfg.ElectionTimeout = 30 * time.Second // no campaign while a test runs
	cfg.ProposalTimeout = 30 * time.Second
	cfg.MinFreeBytes = 0
	cfg.CacheBytes = 8 << 20
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Knobs = &TestingKnobs{
		DropRaftMessage: func(uint64, uint64, uint64, string) bool { return true },
		BeforeRaftPass:  ts.gate.knob,
		OnFatal: func(rangeID uint64, what string, err error) {
			ts.fatals <- fmt.Sprintf("range %d: %s: %v", rangeID, what, err)
		},
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts.Store = s
	t.Cleanup(func() {
		ts.gate.open()
		s.Stop()
	})
	return ts
}

// snapDesc is a descriptor of a range with voters 1 (store 1) and 2 (here).
func snapDesc(rangeID uint64, start, end string, version uint64) *rangekvpb.RangeDescriptor {
	return &rangekvpb.RangeDescriptor{
		RangeId: rangeID, StartKey: []byte(start), EndKey: []byte(end),
		Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: version}, NextReplicaId: 3,
		Replicas: []*rangekvpb.ReplicaDescriptor{
			{ReplicaId: 1, StoreId: 1, Role: rangekvpb.ReplicaRole_VOTER},
			{ReplicaId: 2, StoreId: 2, Role: rangekvpb.ReplicaRole_VOTER},
		},
	}
}

// fakeSnapStream feeds chunks to raftServer.Snapshot.
type fakeSnapStream struct {
	grpc.ServerStream
	chunks []*rangekvpb.SnapshotChunk
	resp   *rangekvpb.SnapshotResponse
}

func (f *fakeSnapStream) Recv() (*rangekvpb.SnapshotChunk, error) {
	if len(f.chunks) == 0 {
		return nil, io.EOF
	}
	c := f.chunks[0]
	f.chunks = f.chunks[1:]
	return c, nil
}

func (f *fakeSnapStream) SendAndClose(r *rangekvpb.SnapshotResponse) error {
	f.resp = r
	return nil
}

// sendSnap runs a snapshot of desc at (index, term) holding kvs, from
// replica 1 on store 1 in term term, through the store's Snapshot handler
// and returns its answer.
func (ts *snapTestStore) sendSnap(t *testing.T, desc *rangekvpb.RangeDescriptor, term, index uint64, kvs map[string]string) *rangekvpb.SnapshotResponse {
	t.Helper()
	msg := &pb.Message{
		Type: pb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(term),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: confStateOf(desc)}},
	}
	chunk := &rangekvpb.SnapshotChunk{
		Header: &rangekvpb.SnapshotHeader{RangeId: desc.RangeId, FromStore: 1, ToStore: 2, Message: msg, Descriptor_: desc},
		Final:  true,
	}
	for _, k := range sortedKeys(kvs) {
		chunk.Pairs = append(chunk.Pairs, &rangekvpb.KeyValue{Key: []byte(k), Value: []byte(kvs[k])})
	}
	st := &fakeSnapStream{chunks: []*rangekvpb.SnapshotChunk{chunk}}
	if err := (&raftServer{s: ts.Store}).Snapshot(st); err != nil {
		t.Fatalf("Snapshot handler: %v", err)
	}
	if st.resp == nil {
		t.Fatal("Snapshot handler did not answer")
	}
	return st.resp
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// userData reads the user keys in [start, end) from the engine.
func (ts *snapTestStore) userData(t *testing.T, start, end string) map[string]string {
	t.Helper()
	lo, hi := keys.UserSpan([]byte(start), []byte(end))
	it, err := ts.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for valid := it.First(); valid; valid = it.Next() {
		k, err := keys.DecodeUserKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		out[string(k)] = string(it.Value())
	}
	return out
}

// snapFiles lists the files in the store's snapshot directory.
func (ts *snapTestStore) snapFiles() []string {
	names, err := ts.snaps.fs.List(ts.snaps.dir)
	if err != nil {
		return nil // not created yet
	}
	sort.Strings(names)
	return names
}

// waitApplied waits until the range's replica here applied a snapshot or
// entries up to index, failing at once if the store hit a fatal error.
func (ts *snapTestStore) waitApplied(t *testing.T, rangeID, index uint64) *Replica {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case f := <-ts.fatals:
			t.Fatalf("the store died (fatal error): %s", f)
		default:
		}
		if r := ts.replica(rangeID); r != nil && r.Descriptor() != nil && r.appliedIndex.Load() >= index {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("range %d did not apply index %d", rangeID, index)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantData(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: data %v, want %v", what, got, want)
	}
}

// Two snapshots of one range, from a new leader (term 6, index 20) and an
// old one (term 5, index 10), both received while the range's MsgSnaps
// wait in its inbox. Raft accepts the new leader's and ignores the old
// one's (lower term; and index 10 is below its commit). The store used to
// keep only the last received snapshot per range, deleting the other's
// SST: when the old leader's arrived second, Ready.Snapshot named data it
// no longer had, and the store died ("raft accepted a snapshot at index
// 20 whose data is not here"). Now each pending snapshot is known by the
// ID raft carries in Snapshot.Data: the one raft returns is ingested and
// the other's SST deleted, in either order of arrival.
func TestSnapshotTwoForOneRangeIngestsTheOneRaftAccepted(t *testing.T) {
	newer := map[string]string{"b": "new", "c": "new"}
	older := map[string]string{"b": "old", "d": "old"}
	for _, newFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("new_leader_first=%v", newFirst), func(t *testing.T) {
			ts := startSnapTestStore(t, 100)
			send := func(isNew bool) {
				t.Helper()
				var resp *rangekvpb.SnapshotResponse
				if isNew {
					resp = ts.sendSnap(t, snapDesc(100, "a", "m", 2), 6, 20, newer)
				} else {
					resp = ts.sendSnap(t, snapDesc(100, "a", "m", 1), 5, 10, older)
				}
				if !resp.Accepted {
					t.Fatalf("snapshot (new leader's: %v) refused: %s", isNew, resp.Reason)
				}
			}
			ts.gate.hold()
			send(newFirst)
			send(!newFirst)
			ts.gate.open()
			r := ts.waitApplied(t, 100, 20)
			ts.gate.settled(t, ts.Store)
			if d := r.Descriptor(); d.Epoch.GetVersion() != 2 || r.appliedIndex.Load() != 20 {
				t.Errorf("range 100 at index %d with descriptor version %d, want the new leader's snapshot (20, version 2)", r.appliedIndex.Load(), d.Epoch.GetVersion())
			}
			wantData(t, "range 100", ts.userData(t, "a", "m"), newer)
			if f := ts.snapFiles(); len(f) != 0 {
				t.Errorf("snapshot files left behind: %v (the snapshot raft ignored keeps its SST)", f)
			}
		})
	}
}

// Two overlapping snapshots of different ranges: range 100 [a, m) is
// received and its RPC returns, but its worker pass has not ingested it
// yet. A snapshot of range 200 [f, z) used to be accepted then (the
// placeholder was gone with the first RPC), and both were ingested: the
// later one's range deletion wiped the other replica's keys in [f, m). The
// placeholder is now held until the ingest, so range 200's snapshot is
// refused; once range 100 is in, a range 200 snapshot that does not
// overlap it is taken (no placeholder leaked by the refusal).
func TestSnapshotOverlappingAnotherRangesPendingSnapshotRefused(t *testing.T) {
	ts := startSnapTestStore(t, 100)
	dataA := map[string]string{"b": "A", "k": "A"}
	ts.gate.hold()
	if resp := ts.sendSnap(t, snapDesc(100, "a", "m", 1), 6, 20, dataA); !resp.Accepted {
		t.Fatalf("range 100's snapshot refused: %s", resp.Reason)
	}
	resp := ts.sendSnap(t, snapDesc(200, "f", "z", 1), 6, 20, map[string]string{"g": "B", "k": "B", "p": "B"})
	if resp.Accepted {
		t.Errorf("range 200's snapshot over [f, z) accepted while range 100's over [a, m) waits to be ingested")
	} else if !strings.Contains(resp.Reason, "overlaps a pending snapshot of range 100") {
		t.Errorf("range 200's snapshot refused for %q, want the overlap with range 100's pending snapshot", resp.Reason)
	}
	ts.gate.open()
	ts.waitApplied(t, 100, 20)
	ts.gate.settled(t, ts.Store)
	wantData(t, "range 100 [a, m)", ts.userData(t, "a", "m"), dataA)

	// Range 100's placeholder went with its ingest, the refused one's with
	// the refusal: range 200 [m, z) is taken now.
	if resp := ts.sendSnap(t, snapDesc(200, "m", "z", 2), 6, 30, map[string]string{"p": "B"}); !resp.Accepted {
		t.Fatalf("range 200's snapshot over [m, z) refused after range 100's was ingested: %s", resp.Reason)
	}
	ts.waitApplied(t, 200, 30)
	wantData(t, "range 100 [a, m)", ts.userData(t, "a", "m"), dataA)
	wantData(t, "range 200 [m, z)", ts.userData(t, "m", "z"), map[string]string{"p": "B"})
	if f := ts.snapFiles(); len(f) != 0 {
		t.Errorf("snapshot files left behind: %v", f)
	}
}

// The overlap is checked again when the worker is about to step a
// received snapshot's MsgSnap (raft's acceptance cannot be undone, and the
// accepted snapshot is ingested in that same pass). Placeholders leave no
// path for a replica to appear over a pending snapshot's span, so the test
// makes one appear directly: while range 100's snapshot over [f, m) waits
// in its inbox, the right half [a, k) of a split (range 300, holding key
// g) is installed here. The snapshot must then be dropped, its SST deleted
// and range 300's data kept; it used to be ingested, its range deletion
// wiping range 300's key.
func TestSnapshotOverlapRecheckedBeforeRaftAcceptsIt(t *testing.T) {
	ts := startSnapTestStore(t, 100)
	ts.gate.hold()
	if resp := ts.sendSnap(t, snapDesc(100, "f", "m", 1), 6, 20, map[string]string{"h": "A"}); !resp.Accepted {
		t.Fatalf("range 100's snapshot refused: %s", resp.Reason)
	}
	right := snapDesc(300, "a", "k", 2)
	b := ts.db.NewIndexedBatch()
	if err := ts.writeSplitRHSState(b, right, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(keys.UserKey([]byte("g")), []byte("300"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := ts.installRHS(&splitResult{right: right, createRight: true}); err != nil {
		t.Fatal(err)
	}
	ts.gate.open()
	ts.gate.settled(t, ts.Store)
	select {
	case f := <-ts.fatals:
		t.Fatalf("the store died (fatal error): %s", f)
	default:
	}
	if r := ts.replica(100); r != nil && r.Descriptor() != nil {
		t.Errorf("range 100's snapshot over [f, m) was ingested over range 300 [a, k)")
	}
	wantData(t, "[a, z)", ts.userData(t, "a", "z"), map[string]string{"g": "300"})
	if f := ts.snapFiles(); len(f) != 0 {
		t.Errorf("snapshot files left behind: %v (the dropped snapshot keeps its SST)", f)
	}
}

// A snapshot raft rejects (index 15, below the commit index 20 of the
// snapshot applied before) used to keep its SST in the snapshot directory
// until another snapshot of the range arrived or the store stopped. Now
// its SST is deleted and its placeholder freed when raft rejects it, and
// the range takes a later snapshot.
func TestSnapshotRejectedByRaftLeavesNoSSTAndFreesItsPlaceholder(t *testing.T) {
	ts := startSnapTestStore(t, 100)
	if resp := ts.sendSnap(t, snapDesc(100, "a", "m", 1), 6, 20, map[string]string{"b": "20"}); !resp.Accepted {
		t.Fatalf("first snapshot refused: %s", resp.Reason)
	}
	ts.waitApplied(t, 100, 20)
	if resp := ts.sendSnap(t, snapDesc(100, "a", "m", 1), 6, 15, map[string]string{"b": "15"}); !resp.Accepted {
		t.Fatalf("stale snapshot refused by the RPC (raft is the one to reject it): %s", resp.Reason)
	}
	ts.gate.settled(t, ts.Store)
	if f := ts.snapFiles(); len(f) != 0 {
		t.Errorf("snapshot files left behind after raft rejected the snapshot at index 15: %v", f)
	}
	wantData(t, "after the rejected snapshot", ts.userData(t, "a", "m"), map[string]string{"b": "20"})
	if resp := ts.sendSnap(t, snapDesc(100, "a", "m", 1), 6, 30, map[string]string{"b": "30"}); !resp.Accepted {
		t.Fatalf("later snapshot refused: %s", resp.Reason)
	}
	ts.waitApplied(t, 100, 30)
	wantData(t, "after the later snapshot", ts.userData(t, "a", "m"), map[string]string{"b": "30"})
	if f := ts.snapFiles(); len(f) != 0 {
		t.Errorf("snapshot files left behind: %v", f)
	}
}

// A split applied here whose right half (range 300 [a, k), holding key g)
// is not installed yet: the parent's descriptor already ends at the split
// key, and the right range exists only as state on disk until
// finishSplits runs, after the worker released its locks. A snapshot of
// range 100 over [f, m) received in that window used to be accepted (no
// initialized replica and no placeholder overlapped it). Ingested before
// the right half is installed, its range deletion wiped range 300's key
// and the two initialized replicas then overlapped; stepped before and
// ingested after (another worker installs it meanwhile), the ingest-time
// overlap check made the store fatal. The right half's span now counts as
// taken from the split's apply on, so the snapshot is refused.
func TestSnapshotOverlappingUninstalledSplitRightHalfRefused(t *testing.T) {
	ts := startSnapTestStore(t, 100)
	right := snapDesc(300, "a", "k", 2)
	b := ts.db.NewIndexedBatch()
	claimed, owned := ts.claimRHS(right, replicaOnStore(right, ts.cfg.StoreID).GetReplicaId()) // as the split's apply does
	if !claimed {
		t.Fatal("could not claim range 300, the split's right half")
	}
	if err := ts.writeSplitRHSState(b, right, owned); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(keys.UserKey([]byte("g")), []byte("300"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	resp := ts.sendSnap(t, snapDesc(100, "f", "m", 1), 6, 20, map[string]string{"h": "A"})
	if resp.Accepted {
		t.Errorf("range 100's snapshot over [f, m) accepted while range 300 [a, k), the right half of an applied split, awaits its install")
		ts.waitApplied(t, 100, 20) // let the harm happen deterministically
	} else if !strings.Contains(resp.Reason, "right half") {
		t.Errorf("range 100's snapshot refused for %q, want the overlap with range 300's pending right half", resp.Reason)
	}
	if err := ts.installRHS(&splitResult{right: right, createRight: true}); err != nil {
		t.Fatal(err)
	}
	ts.gate.settled(t, ts.Store)
	select {
	case f := <-ts.fatals:
		t.Fatalf("the store died (fatal error): %s", f)
	default:
	}
	wantData(t, "[a, z)", ts.userData(t, "a", "z"), map[string]string{"g": "300"})
	if f := ts.snapFiles(); len(f) != 0 {
		t.Errorf("snapshot files left behind: %v", f)
	}

	// Once installed, the right half is an ordinary replica: a snapshot
	// beside it is taken (the pending entry went with the install).
	if resp := ts.sendSnap(t, snapDesc(100, "k", "m", 3), 6, 30, map[string]string{"l": "A"}); !resp.Accepted {
		t.Fatalf("range 100's snapshot over [k, m) refused after range 300 was installed: %s", resp.Reason)
	}
	ts.waitApplied(t, 100, 30)
	wantData(t, "[a, z)", ts.userData(t, "a", "z"), map[string]string{"g": "300", "l": "A"})
}
