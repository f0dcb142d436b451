package rangeraft_test

// Unit tests of rangeraft.Replica: one or three replicas driven by hand in
// one goroutine (the owner's loop of doc.go: persist, send, apply, report,
// Advance), messages delivered by the test with partitions and per-message
// drops. Storage is raft.MemoryStorage or logstore.RangeLog on an in-memory
// Pebble. No goroutines and no clock: time is Tick.

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// The initial Raft state of every test group, as the store bootstraps a
// range: applied = truncated = commit = initIndex at initTerm.
const (
	testRangeID   = 1
	initIndex     = 10
	initTerm      = 5
	electionTicks = 10
)

type storageKind string

const (
	memStorage    storageKind = "MemoryStorage"
	pebbleStorage storageKind = "RangeLog"
)

var allStorages = []storageKind{memStorage, pebbleStorage}

// outcome records the completions of one proposal.
type outcome struct {
	calls  int
	result any
	err    error
	// atIndex is the index of the entry being reported through Applied
	// when Done ran (0: Done did not run inside Applied).
	atIndex uint64
}

// readOutcome records the completions of one read.
type readOutcome struct {
	calls int
	err   error
	// applied is the state machine's applied index when Done ran.
	applied uint64
}

type testNode struct {
	t  *testing.T
	id uint64
	rr *rangeraft.Replica

	ms *raft.MemoryStorage
	rl *logstore.RangeLog
	db *pebble.DB

	closed bool
	// holdApply keeps committed entries in backlog instead of applying them
	// (raft allows applying asynchronously after Advance).
	holdApply bool
	backlog   []*pb.Entry

	// The state machine: the commands applied, in order, and the applied
	// index. A command "fail:..." is refused deterministically.
	cmds     []string
	applied  uint64
	applying uint64 // index being reported through Applied, else 0
}

type testGroup struct {
	t     *testing.T
	kind  storageKind
	ids   []uint64
	nodes map[uint64]*testNode
	msgs  []*pb.Message
	// isolated nodes send and receive nothing.
	isolated map[uint64]bool
	// frozen nodes are not ticked (their clocks stand still).
	frozen map[uint64]bool
	// drop, when set, drops the messages it returns true for.
	drop func(m *pb.Message) bool
	// elide drops, as they are sent, the heartbeats their sender's
	// ElideHeartbeat says to leave out (as the store does); elided counts
	// them.
	elide  bool
	elided int
	cfg    func(*rangeraft.Config)
}

type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any)  {}
func (quietPebbleLogger) Errorf(string, ...any) {}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// newGroup creates n replicas (IDs 1..n) of one range; tweak adjusts every
// replica's config.
func newGroup(t *testing.T, n int, kind storageKind, tweak func(*rangeraft.Config)) *testGroup {
	t.Helper()
	g := &testGroup{t: t, kind: kind, nodes: map[uint64]*testNode{}, isolated: map[uint64]bool{}, cfg: tweak}
	for i := 1; i <= n; i++ {
		g.ids = append(g.ids, uint64(i))
	}
	for _, id := range g.ids {
		nd := &testNode{t: t, id: id, applied: initIndex}
		cs := &pb.ConfState{Voters: slices.Clone(g.ids)}
		switch kind {
		case memStorage:
			nd.ms = raft.NewMemoryStorage()
			if err := nd.ms.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
				Index: proto.Uint64(initIndex), Term: proto.Uint64(initTerm), ConfState: cs}}); err != nil {
				t.Fatal(err)
			}
			if err := nd.ms.SetHardState(&pb.HardState{Term: proto.Uint64(initTerm), Commit: proto.Uint64(initIndex)}); err != nil {
				t.Fatal(err)
			}
		case pebbleStorage:
			db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebbleLogger{}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			nd.db = db
			b := db.NewBatch()
			for _, kv := range []struct {
				k []byte
				m proto.Message
			}{
				{keys.TruncatedStateKey(testRangeID), &rangekvpb.TruncatedState{Index: initIndex, Term: initTerm}},
				{keys.HardStateKey(testRangeID), &pb.HardState{Term: proto.Uint64(initTerm), Commit: proto.Uint64(initIndex)}},
			} {
				v, err := proto.Marshal(kv.m)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Set(kv.k, v, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			b.Close()
			nd.rl = g.loadLog(nd, cs)
		}
		g.nodes[id] = nd
		g.startReplica(nd)
	}
	return g
}

func (g *testGroup) loadLog(nd *testNode, cs *pb.ConfState) *logstore.RangeLog {
	g.t.Helper()
	rl, err := logstore.Load(nd.db, testRangeID, cs, &rangekvpb.AppliedState{Index: nd.applied, Term: nd.appliedTerm()})
	if err != nil {
		g.t.Fatalf("node %d: load log: %v", nd.id, err)
	}
	return rl
}

func (nd *testNode) appliedTerm() uint64 {
	if nd.applied == initIndex {
		return initTerm
	}
	var term uint64
	var err error
	if nd.ms != nil {
		term, err = nd.ms.Term(nd.applied)
	} else {
		term, err = nd.rl.Term(nd.applied)
	}
	if err != nil {
		nd.t.Fatalf("node %d: term of applied index %d: %v", nd.id, nd.applied, err)
	}
	return term
}

func (nd *testNode) storage() raft.Storage {
	if nd.ms != nil {
		return nd.ms
	}
	return nd.rl
}

func (g *testGroup) startReplica(nd *testNode) {
	g.t.Helper()
	cfg := rangeraft.Config{
		ReplicaID:            nd.id,
		ElectionTicks:        electionTicks,
		HeartbeatTicks:       1,
		ProposalTimeoutTicks: 50,
		ReadTimeoutTicks:     40,
		Applied:              nd.applied,
		AppliedTerm:          nd.appliedTerm(),
		ReadContextSeed:      nd.id << 32,
		Storage:              nd.storage(),
	}
	if g.cfg != nil {
		g.cfg(&cfg)
	}
	rr, err := rangeraft.New(cfg)
	if err != nil {
		g.t.Fatalf("node %d: %v", nd.id, err)
	}
	nd.rr, nd.closed = rr, false
}

// restart simulates a process restart of a RangeLog node: the log is loaded
// again from Pebble and a new Replica starts at the state machine's applied
// index (the state machine itself is kept, as if it were durable).
func (g *testGroup) restart(id uint64) {
	g.t.Helper()
	nd := g.nodes[id]
	if nd.rl == nil {
		g.t.Fatal("restart needs a RangeLog node")
	}
	nd.rr.Close()
	nd.backlog, nd.holdApply = nil, false
	nd.rl = g.loadLog(nd, &pb.ConfState{Voters: slices.Clone(g.ids)})
	g.startReplica(nd)
}

func (g *testGroup) node(id uint64) *testNode { return g.nodes[id] }

// handleReady runs one pass of the owner's loop for nd; false when raft had
// nothing to do.
func (g *testGroup) handleReady(nd *testNode) bool {
	if nd.closed {
		return false
	}
	rd, ok := nd.rr.Ready()
	if !ok {
		return false
	}
	// 1. Persist entries and hard state.
	switch {
	case nd.ms != nil:
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := nd.ms.ApplySnapshot(rd.Snapshot); err != nil {
				g.t.Fatal(err)
			}
		}
		if err := nd.ms.Append(rd.Entries); err != nil {
			g.t.Fatal(err)
		}
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			if err := nd.ms.SetHardState(rd.HardState); err != nil {
				g.t.Fatal(err)
			}
		}
	default:
		if !raft.IsEmptySnap(rd.Snapshot) {
			g.t.Fatalf("node %d: unexpected snapshot in a RangeLog test", nd.id)
		}
		b := nd.db.NewBatch()
		upd, err := nd.rl.StageAppend(b, rd.Entries, rd.HardState)
		if err != nil {
			g.t.Fatalf("node %d: stage append: %v", nd.id, err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			g.t.Fatalf("node %d: commit: %v", nd.id, err)
		}
		b.Close()
		nd.rl.FinishAppend(upd)
	}
	// 2. Send.
	for _, m := range rd.Messages {
		if g.elide && nd.rr.ElideHeartbeat(m) {
			g.elided++
			continue
		}
		g.msgs = append(g.msgs, m)
	}
	// 3. Apply and report.
	if nd.holdApply {
		nd.backlog = append(nd.backlog, rd.CommittedEntries...)
	} else {
		for _, e := range rd.CommittedEntries {
			nd.apply(e)
		}
		nd.rr.FinishApply()
	}
	// 4. Advance.
	nd.rr.Advance(rd)
	return true
}

// apply applies one committed entry to the state machine and reports it.
func (nd *testNode) apply(e *pb.Entry) {
	nd.t.Helper()
	if e.GetIndex() != nd.applied+1 {
		nd.t.Fatalf("node %d: applying entry %d after %d", nd.id, e.GetIndex(), nd.applied)
	}
	var result any
	var resultErr error
	var subResults []rangeraft.AppliedResult
	switch e.GetType() {
	case pb.EntryNormal:
		subs, err := rangeraft.DecodeEntries(e.GetData())
		if err != nil {
			nd.t.Fatalf("node %d: entry %d: %v", nd.id, e.GetIndex(), err)
		}
		for _, sub := range subs {
			var res rangeraft.AppliedResult
			res.ID = sub.ID
			if c := string(sub.Cmd); len(c) >= 5 && c[:5] == "fail:" {
				res.Err = fmt.Errorf("state machine refused %q", c)
			} else {
				nd.cmds = append(nd.cmds, c)
				res.Value = fmt.Sprintf("%s@%d", c, e.GetIndex())
			}
			subResults = append(subResults, res)
		}
		if len(subs) == 1 {
			result, resultErr, subResults = subResults[0].Value, subResults[0].Err, nil
		}
	case pb.EntryConfChange:
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			nd.t.Fatal(err)
		}
		nd.rr.ApplyConfChange(&cc)
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			nd.t.Fatal(err)
		}
		nd.rr.ApplyConfChange(&cc)
	}
	nd.applied = e.GetIndex()
	if nd.rl != nil {
		nd.rl.SetApplied(e.GetIndex(), e.GetTerm(), nil)
	}
	nd.applying = e.GetIndex()
	if subResults != nil {
		nd.rr.AppliedAll(e, subResults)
	} else {
		nd.rr.Applied(e, result, resultErr)
	}
	nd.applying = 0
}

// applyBacklog applies what holdApply kept back and stops holding.
func (nd *testNode) applyBacklog() {
	nd.holdApply = false
	bl := nd.backlog
	nd.backlog = nil
	for _, e := range bl {
		nd.apply(e)
	}
	nd.rr.FinishApply()
}

func (g *testGroup) deliver(m *pb.Message) {
	if g.isolated[m.GetFrom()] || g.isolated[m.GetTo()] || (g.drop != nil && g.drop(m)) {
		return
	}
	to := g.nodes[m.GetTo()]
	if to == nil || to.closed {
		return
	}
	_ = to.rr.Step(m) // raft refuses some messages (stale terms); that is normal
}

// stabilize runs Readies and delivers messages until nothing moves.
func (g *testGroup) stabilize() {
	g.t.Helper()
	for range 100000 {
		moved := false
		for _, id := range g.ids {
			if g.handleReady(g.nodes[id]) {
				moved = true
			}
		}
		if len(g.msgs) > 0 {
			moved = true
			msgs := g.msgs
			g.msgs = nil
			for _, m := range msgs {
				g.deliver(m)
			}
		}
		if !moved {
			return
		}
	}
	g.t.Fatal("group did not stabilize")
}

// tick ticks every open replica once, then stabilizes.
func (g *testGroup) tick() {
	for _, id := range g.ids {
		if nd := g.nodes[id]; !nd.closed && !g.frozen[id] {
			nd.rr.Tick()
		}
	}
	g.stabilize()
}

// tickUntil ticks until cond holds, failing after max ticks.
func (g *testGroup) tickUntil(what string, limit int, cond func() bool) {
	g.t.Helper()
	for i := 0; !cond(); i++ {
		if i == limit {
			g.t.Fatalf("no %s after %d ticks", what, limit)
		}
		g.tick()
	}
}

// leader returns the ID of a leader among ids with the highest term, or 0.
func (g *testGroup) leader(ids ...uint64) uint64 {
	if len(ids) == 0 {
		ids = g.ids
	}
	var lead, term uint64
	for _, id := range ids {
		nd := g.nodes[id]
		if nd.closed || !nd.rr.IsLeader() {
			continue
		}
		if t := nd.rr.BasicStatus().GetTerm(); t > term {
			lead, term = id, t
		}
	}
	return lead
}

// elect makes id the leader by campaigning (no randomized timeout).
func (g *testGroup) elect(id uint64) {
	g.t.Helper()
	if err := g.nodes[id].rr.Campaign(); err != nil {
		g.t.Fatal(err)
	}
	g.stabilize()
	if g.leader() != id {
		g.t.Fatalf("node %d did not become leader (leader: %d)", id, g.leader())
	}
}

func (nd *testNode) propose(id uint64, cmd string) *outcome {
	o := &outcome{}
	nd.rr.Propose(&rangeraft.Proposal{ID: id, Cmd: []byte(cmd), Done: func(result any, err error) {
		o.calls++
		o.result, o.err, o.atIndex = result, err, nd.applying
	}})
	return o
}

func (nd *testNode) read() *readOutcome {
	o := &readOutcome{}
	nd.rr.ReadIndex(&rangeraft.Read{Done: func(err error) {
		o.calls++
		o.err, o.applied = err, nd.applied
	}})
	return o
}

func (nd *testNode) lastIndex() uint64 {
	li, err := nd.storage().LastIndex()
	if err != nil {
		nd.t.Fatal(err)
	}
	return li
}

func (nd *testNode) firstIndex() uint64 {
	fi, err := nd.storage().FirstIndex()
	if err != nil {
		nd.t.Fatal(err)
	}
	return fi
}

func wantDoneOnce(t *testing.T, what string, o *outcome) {
	t.Helper()
	if o.calls != 1 {
		t.Fatalf("%s: Done called %d times, want exactly once (last err %v)", what, o.calls, o.err)
	}
}

func wantNotLeader(t *testing.T, what string, err error, leader uint64) {
	t.Helper()
	var nl *rangeraft.NotLeaderError
	if !errors.As(err, &nl) {
		t.Fatalf("%s: err = %v (%T), want *NotLeaderError", what, err, err)
	}
	if nl.Leader != leader {
		t.Fatalf("%s: NotLeaderError.Leader = %d, want %d", what, nl.Leader, leader)
	}
}

func wantAmbiguous(t *testing.T, what string, err error) {
	t.Helper()
	var amb *rangeraft.AmbiguousError
	if !errors.As(err, &amb) {
		t.Fatalf("%s: err = %v (%T), want *AmbiguousError", what, err, err)
	}
}

// ---------------------------------------------------------------------------

func TestEncodeDecodeEntry(t *testing.T) {
	for _, tc := range []struct {
		id  uint64
		cmd []byte
	}{
		{1, []byte("put a")},
		{^uint64(0) - 1, []byte{0, 1, 2, 0xff}}, // ^uint64(0) is BatchTag
		{42, nil},
		{0x0102030405060708, make([]byte, 4096)},
	} {
		data := rangeraft.EncodeEntry(tc.id, tc.cmd)
		if len(data) != 8+len(tc.cmd) {
			t.Fatalf("EncodeEntry(%d, %d bytes) = %d bytes, want %d", tc.id, len(tc.cmd), len(data), 8+len(tc.cmd))
		}
		id, cmd, err := rangeraft.DecodeEntry(data)
		if err != nil {
			t.Fatalf("DecodeEntry(EncodeEntry(%d)): %v", tc.id, err)
		}
		if id != tc.id || string(cmd) != string(tc.cmd) {
			t.Fatalf("round trip of (%d, %q) gave (%d, %q)", tc.id, tc.cmd, id, cmd)
		}
	}
	// The encoding is replicated: its layout must not change.
	if got, want := rangeraft.EncodeEntry(0x0102030405060708, []byte("x")), []byte{1, 2, 3, 4, 5, 6, 7, 8, 'x'}; string(got) != string(want) {
		t.Fatalf("EncodeEntry layout = %x, want %x", got, want)
	}
	// Empty data is raft's own entry.
	if id, cmd, err := rangeraft.DecodeEntry(nil); id != 0 || cmd != nil || err != nil {
		t.Fatalf("DecodeEntry(nil) = %d, %q, %v; want 0, nil, nil", id, cmd, err)
	}
	for n := 1; n < 8; n++ {
		if _, _, err := rangeraft.DecodeEntry(make([]byte, n)); err == nil {
			t.Fatalf("DecodeEntry(%d bytes): no error, want a short-data error", n)
		}
	}
}

func TestSingleReplicaProposalCompletesOnceAfterApplied(t *testing.T) {
	for _, kind := range allStorages {
		t.Run(string(kind), func(t *testing.T) {
			g := newGroup(t, 1, kind, nil)
			nd := g.node(1)
			g.elect(1)

			// Committed but not applied: not completed.
			nd.holdApply = true
			o := nd.propose(7, "put-a")
			g.stabilize()
			if o.calls != 0 {
				t.Fatalf("proposal completed (err %v) before its entry was applied", o.err)
			}
			if len(nd.backlog) != 1 {
				t.Fatalf("backlog holds %d entries, want the proposal's committed entry", len(nd.backlog))
			}
			idx := nd.backlog[0].GetIndex()
			nd.applyBacklog()
			wantDoneOnce(t, "proposal", o)
			if o.err != nil || o.result != fmt.Sprintf("put-a@%d", idx) {
				t.Fatalf("proposal completed with (%v, %v), want the state machine's result %q", o.result, o.err, fmt.Sprintf("put-a@%d", idx))
			}
			if o.atIndex != idx {
				t.Fatalf("proposal completed while reporting entry %d, want during Applied of its entry %d", o.atIndex, idx)
			}

			// A deterministic command error is the proposal's outcome.
			of := nd.propose(8, "fail:x")
			g.stabilize()
			wantDoneOnce(t, "failing proposal", of)
			if of.err == nil || of.result != nil {
				t.Fatalf("failing proposal completed with (%v, %v), want the state machine's error", of.result, of.err)
			}

			// Nothing completes twice, however long the replica runs.
			for range 3 * electionTicks {
				g.tick()
			}
			wantDoneOnce(t, "proposal after ticks", o)
			wantDoneOnce(t, "failing proposal after ticks", of)
			if n := nd.rr.PendingProposals(); n != 0 {
				t.Fatalf("PendingProposals = %d, want 0", n)
			}
			if diff := cmp.Diff([]string{"put-a"}, nd.cmds); diff != "" {
				t.Fatalf("state machine commands (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProposalIDMustBeNonZeroAndUnique(t *testing.T) {
	g := newGroup(t, 1, memStorage, nil)
	nd := g.node(1)
	g.elect(1)
	nd.holdApply = true
	first := nd.propose(5, "a")
	dup := nd.propose(5, "b")
	zero := nd.propose(0, "c")
	wantDoneOnce(t, "duplicate ID", dup)
	wantDoneOnce(t, "zero ID", zero)
	if dup.err == nil || zero.err == nil {
		t.Fatalf("duplicate/zero IDs accepted: %v, %v", dup.err, zero.err)
	}
	g.stabilize()
	nd.applyBacklog()
	wantDoneOnce(t, "first", first)
	if first.err != nil || first.result != "a@12" {
		t.Fatalf("first proposal = (%v, %v), want a@12", first.result, first.err)
	}
	if diff := cmp.Diff([]string{"a"}, nd.cmds); diff != "" {
		t.Fatalf("state machine commands (-want +got):\n%s", diff)
	}
}

func TestProposalOnFollowerFailsNotLeader(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	// No leader yet: not leader, leader unknown.
	o := g.node(3).propose(1, "early")
	wantDoneOnce(t, "proposal before election", o)
	wantNotLeader(t, "proposal before election", o.err, 0)

	g.elect(1)
	last := g.node(1).lastIndex()
	for _, id := range []uint64{2, 3} {
		o := g.node(id).propose(10+id, "on-follower")
		wantDoneOnce(t, fmt.Sprintf("proposal on follower %d", id), o) // synchronously
		wantNotLeader(t, fmt.Sprintf("proposal on follower %d", id), o.err, 1)
	}
	g.stabilize()
	if got := g.node(1).lastIndex(); got != last {
		t.Fatalf("leader's last index moved from %d to %d: a refused proposal was forwarded", last, got)
	}
	for _, id := range g.ids {
		if len(g.node(id).cmds) != 0 {
			t.Fatalf("node %d applied %q", id, g.node(id).cmds)
		}
	}
}

func TestProposalDuringLeadershipTransferIsBusy(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	// Replica 3 cannot catch up, so the transfer stays in progress.
	g.drop = func(m *pb.Message) bool { return m.GetTo() == 3 && m.GetType() == pb.MsgApp }
	g.node(1).propose(1, "a")
	g.stabilize()
	g.node(1).rr.TransferLeader(3)
	g.stabilize()
	o := g.node(1).propose(2, "b")
	wantDoneOnce(t, "proposal during transfer", o)
	if !errors.Is(o.err, rangeraft.ErrBusy) {
		t.Fatalf("proposal during transfer: err = %v, want ErrBusy", o.err)
	}
}

// A leader cut off from its followers keeps a proposal pending; the new
// leader's own entry at the same index commits; once the old leader applies
// that entry the proposal completes with ErrStaleCommand.
func TestReplacedLeaderProposalIsStale(t *testing.T) {
	for _, kind := range allStorages {
		t.Run(string(kind), func(t *testing.T) {
			g := newGroup(t, 3, kind, nil)
			g.elect(1)
			old := g.node(1)
			g.isolated[1] = true
			lost := old.propose(100, "lost")
			g.stabilize()
			lostIndex := old.lastIndex()
			if lost.calls != 0 {
				t.Fatalf("isolated proposal completed early: %v", lost.err)
			}

			// Elect the new leader first (the old one's clock stands still),
			// then let the old one step down: the order is fixed, so the
			// proposal's post-step-down grace of one election timeout does
			// not race the election.
			g.frozen = map[uint64]bool{1: true}
			g.tickUntil("new leader among 2 and 3", 10*electionTicks, func() bool { return g.leader(2, 3) != 0 })
			g.frozen = nil
			g.tickUntil("old leader stepped down (CheckQuorum)", 10*electionTicks, func() bool { return !old.rr.IsLeader() })
			if lost.calls != 0 {
				t.Fatalf("proposal completed on step-down (%v); it must wait for apply or timeout", lost.err)
			}
			nl := g.node(g.leader(2, 3))
			won := nl.propose(200, "winner")
			g.stabilize()
			wantDoneOnce(t, "new leader's proposal", won)

			delete(g.isolated, 1)
			g.tickUntil("old leader catching up", 5*electionTicks, func() bool { return old.applied >= nl.applied })

			wantDoneOnce(t, "replaced proposal", lost)
			if !errors.Is(lost.err, rangeraft.ErrStaleCommand) {
				t.Fatalf("replaced proposal: err = %v, want ErrStaleCommand", lost.err)
			}
			if lost.atIndex != lostIndex {
				t.Fatalf("replaced proposal completed while applying entry %d, want when its index %d was applied", lost.atIndex, lostIndex)
			}
			if want := fmt.Sprintf("winner@%d", lostIndex+1); won.err != nil || won.result != want {
				t.Fatalf("new leader's proposal = (%v, %v), want %q", won.result, won.err, want)
			}
			for _, id := range g.ids {
				if diff := cmp.Diff([]string{"winner"}, g.node(id).cmds); diff != "" {
					t.Fatalf("node %d state machine (-want +got):\n%s", id, diff)
				}
			}
			for range electionTicks {
				g.tick()
			}
			wantDoneOnce(t, "replaced proposal after ticks", lost)
			if n := old.rr.PendingProposals(); n != 0 {
				t.Fatalf("old leader still has %d pending proposals", n)
			}
		})
	}
}

func TestPartitionedLeaderProposalTimesOutAmbiguous(t *testing.T) {
	const timeout = 30
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { c.ProposalTimeoutTicks = timeout })
	g.elect(1)
	g.isolated[1] = true
	o := g.node(1).propose(9, "maybe")
	g.stabilize()
	for i := range timeout {
		g.tick()
		if o.calls != 0 {
			t.Fatalf("proposal completed after %d ticks (%v), want only after %d", i+1, o.err, timeout+1)
		}
	}
	g.tick()
	wantDoneOnce(t, "timed-out proposal", o)
	wantAmbiguous(t, "timed-out proposal", o.err)
	for range 2 * timeout {
		g.tick()
	}
	wantDoneOnce(t, "timed-out proposal later", o)
}

func TestCloseCompletesPendingAmbiguously(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	nd := g.node(1)

	// Committed but not yet applied: it may well apply.
	nd.holdApply = true
	committed := nd.propose(1, "committed")
	g.stabilize()
	// Appended locally only.
	g.isolated[1] = true
	pending := nd.propose(2, "pending")
	inFlight := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	queued := nd.read()
	if committed.calls+pending.calls+inFlight.calls+queued.calls != 0 {
		t.Fatal("something completed before Close")
	}

	nd.rr.Close()
	nd.closed = true
	for name, o := range map[string]*outcome{"committed": committed, "pending": pending} {
		wantDoneOnce(t, name, o)
		wantAmbiguous(t, name, o.err)
	}
	for name, o := range map[string]*readOutcome{"in-flight read": inFlight, "queued read": queued} {
		if o.calls != 1 || !errors.Is(o.err, rangeraft.ErrStopped) {
			t.Fatalf("%s: %d calls, err %v; want one ErrStopped", name, o.calls, o.err)
		}
	}
	if n := nd.rr.PendingProposals(); n != 0 {
		t.Fatalf("PendingProposals after Close = %d", n)
	}
	after := nd.propose(3, "after")
	wantDoneOnce(t, "proposal after Close", after)
	if !errors.Is(after.err, rangeraft.ErrStopped) {
		t.Fatalf("proposal after Close: %v, want ErrStopped", after.err)
	}
	ra := nd.read()
	if ra.calls != 1 || !errors.Is(ra.err, rangeraft.ErrStopped) {
		t.Fatalf("read after Close: %d calls, err %v; want one ErrStopped", ra.calls, ra.err)
	}
}

func TestReadIndexWaitsForApply(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	nd := g.node(1)

	nd.holdApply = true
	w := nd.propose(1, "w")
	g.stabilize()
	wIndex := nd.backlog[len(nd.backlog)-1].GetIndex()
	r := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	for range 3 {
		g.tick()
	}
	if r.calls != 0 {
		t.Fatalf("read completed (err %v) with applied %d < read index %d", r.err, nd.applied, wIndex)
	}
	nd.applyBacklog()
	wantDoneOnce(t, "write", w)
	if r.calls != 1 || r.err != nil {
		t.Fatalf("read after apply: %d calls, err %v; want one success", r.calls, r.err)
	}
	if r.applied < wIndex {
		t.Fatalf("read served at applied %d, before the write at %d it must observe", r.applied, wIndex)
	}
	for range 3 {
		g.tick()
	}
	if r.calls != 1 {
		t.Fatalf("read completed %d times", r.calls)
	}
}

// A new leader serves no read before it applied an entry of its own term:
// raft holds the read until that entry commits, rangeraft until it applies.
func TestReadIndexWaitsForLeaderTermEntry(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	nd := g.node(1)
	nd.holdApply = true
	// The leader's first entry cannot commit: its appends are not answered.
	g.drop = func(m *pb.Message) bool { return m.GetType() == pb.MsgAppResp }
	g.elect(1)
	r := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	for range electionTicks / 2 {
		g.tick()
	}
	if r.calls != 0 {
		t.Fatalf("read completed (err %v) before the leader's term entry committed", r.err)
	}
	g.drop = nil
	g.tick() // heartbeat responses make raft resend the append
	term := nd.rr.BasicStatus().GetTerm()
	if len(nd.backlog) == 0 || nd.backlog[len(nd.backlog)-1].GetTerm() != term {
		t.Fatalf("leader's term-%d entry did not commit (backlog %v)", term, nd.backlog)
	}
	for range 3 {
		g.tick()
	}
	if r.calls != 0 {
		t.Fatalf("read completed (err %v) before the leader applied an entry of term %d (applied %d)", r.err, term, nd.applied)
	}
	nd.applyBacklog()
	if r.calls != 1 || r.err != nil {
		t.Fatalf("read after applying the term entry: %d calls, err %v", r.calls, r.err)
	}
}

func TestReadIndexOnFollowerFailsNotLeader(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	r := g.node(2).read()
	if r.calls != 1 {
		t.Fatalf("read before election: %d calls", r.calls)
	}
	wantNotLeader(t, "read before election", r.err, 0)
	g.elect(1)
	for _, id := range []uint64{2, 3} {
		r := g.node(id).read()
		if r.calls != 1 {
			t.Fatalf("read on follower %d: %d calls, want a synchronous failure", id, r.calls)
		}
		wantNotLeader(t, fmt.Sprintf("read on follower %d", id), r.err, 1)
	}
}

// Reads in every stage (waiting for apply, awaiting a quorum, queued) fail
// with NotLeaderError when the leader loses its leadership; a proposal that
// committed still completes with its result.
func TestReadsFailWhenLeadershipLost(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	nd := g.node(1)

	nd.holdApply = true
	w := nd.propose(1, "w")
	g.stabilize()
	waiting := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	g.drop = func(m *pb.Message) bool { return m.GetType() == pb.MsgHeartbeatResp }
	awaiting := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	queued := nd.read()
	for name, o := range map[string]*readOutcome{"waiting": waiting, "awaiting quorum": awaiting, "queued": queued} {
		if o.calls != 0 {
			t.Fatalf("%s read completed early: %v", name, o.err)
		}
	}

	nd.rr.TransferLeader(2)
	g.stabilize()
	if nd.rr.IsLeader() || g.leader() != 2 {
		t.Fatalf("transfer to 2 failed: leader %d", g.leader())
	}
	for name, o := range map[string]*readOutcome{"waiting": waiting, "awaiting quorum": awaiting, "queued": queued} {
		if o.calls != 1 {
			t.Fatalf("%s read: %d calls after leadership loss, want 1", name, o.calls)
		}
		var nl *rangeraft.NotLeaderError
		if !errors.As(o.err, &nl) {
			t.Fatalf("%s read: err %v, want *NotLeaderError", name, o.err)
		}
	}
	nd.applyBacklog()
	wantDoneOnce(t, "committed write of the old leader", w)
	if w.err != nil || w.result != "w@12" {
		t.Fatalf("committed write = (%v, %v), want w@12", w.result, w.err)
	}
}

func TestReadIndexTimesOut(t *testing.T) {
	const timeout = 5
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { c.ReadTimeoutTicks = timeout })
	g.elect(1)
	g.drop = func(m *pb.Message) bool { return m.GetType() == pb.MsgHeartbeatResp }
	nd := g.node(1)
	r := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	for i := range timeout {
		g.tick()
		if r.calls != 0 {
			t.Fatalf("read completed after %d ticks: %v", i+1, r.err)
		}
	}
	g.tick()
	if r.calls != 1 || !errors.Is(r.err, rangeraft.ErrReadTimeout) {
		t.Fatalf("read after %d ticks: %d calls, err %v; want one ErrReadTimeout", timeout+1, r.calls, r.err)
	}
	if !nd.rr.IsLeader() {
		t.Fatal("test broken: leader stepped down before the read timed out")
	}
	// A later round (quorum reachable again) is served.
	g.drop = nil
	r2 := nd.read()
	nd.rr.FlushReads()
	g.stabilize()
	g.tick()
	if r2.calls != 1 || r2.err != nil {
		t.Fatalf("second read: %d calls, err %v", r2.calls, r2.err)
	}
	if r.calls != 1 {
		t.Fatalf("timed-out read completed %d times", r.calls)
	}
}

func TestTruncationTarget(t *testing.T) {
	g := newGroup(t, 3, memStorage, nil)
	g.elect(1)
	lead := g.node(1)
	target := func(p rangeraft.TruncationPolicy) (uint64, bool) {
		return lead.rr.TruncationTarget(p, lead.firstIndex())
	}
	id := uint64(0)
	proposeN := func(n int) {
		for range n {
			id++
			lead.propose(id, fmt.Sprintf("c%d", id))
		}
		g.stabilize()
	}
	proposeN(10)
	first := lead.firstIndex() // 11
	applied := lead.applied    // 21
	if applied != first+10 {
		t.Fatalf("setup: first %d applied %d", first, applied)
	}

	if _, ok := g.node(2).rr.TruncationTarget(rangeraft.TruncationPolicy{ThresholdEntries: 1}, first); ok {
		t.Fatal("a follower proposed a truncation")
	}
	if _, ok := target(rangeraft.TruncationPolicy{}); ok {
		t.Fatal("zero threshold truncated")
	}
	if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: 5, MaxEntries: 1000}); !ok || idx != applied {
		t.Fatalf("all caught up: target = (%d, %v), want (%d, true)", idx, ok, applied)
	}
	// Threshold boundary: exactly idx-first+1 entries may go.
	n := applied - first + 1
	if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: n}); !ok || idx != applied {
		t.Fatalf("threshold %d: target = (%d, %v), want (%d, true)", n, idx, ok, applied)
	}
	if _, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: n + 1}); ok {
		t.Fatalf("threshold %d > %d entries still truncated", n+1, n)
	}

	// Never past the leader's applied index.
	lead.holdApply = true
	proposeN(2)
	if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: 1}); !ok || idx != applied {
		t.Fatalf("with unapplied entries: target = (%d, %v), want applied %d", idx, ok, applied)
	}
	lead.applyBacklog()
	applied = lead.applied // 23
	match3 := applied

	// Replica 3 gets no appends but answers heartbeats: recently active, so
	// it holds truncation back even past MaxEntries.
	g.drop = func(m *pb.Message) bool { return m.GetTo() == 3 && m.GetType() == pb.MsgApp }
	proposeN(10)
	applied = lead.applied // 33
	for range electionTicks + 1 {
		g.tick()
	}
	pr := lead.rr.Status().Progress[3]
	if !pr.RecentActive || pr.Match != match3 {
		t.Fatalf("setup: replica 3 active=%v match=%d, want active with match %d", pr.RecentActive, pr.Match, match3)
	}
	for _, maxEntries := range []uint64{1000, 20} {
		if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: 5, MaxEntries: maxEntries}); !ok || idx != match3 {
			t.Fatalf("active lagging follower, MaxEntries %d: target = (%d, %v), want its match %d", maxEntries, idx, ok, match3)
		}
	}
	if _, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: match3 - first + 2, MaxEntries: 20}); ok {
		t.Fatal("threshold above what the lagging follower allows still truncated")
	}

	// Replica 3 goes silent: once inactive it is ignored, but only when the
	// log is longer than MaxEntries.
	g.drop = nil
	g.isolated[3] = true
	g.tickUntil("replica 3 inactive", 3*electionTicks, func() bool { return !lead.rr.Status().Progress[3].RecentActive })
	if !lead.rr.IsLeader() {
		t.Fatal("setup: leader lost leadership")
	}
	logLen := lead.applied - first + 1 // 23
	if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: 5, MaxEntries: logLen}); !ok || idx != match3 {
		t.Fatalf("inactive follower, log %d <= MaxEntries %d: target = (%d, %v), want its match %d", logLen, logLen, idx, ok, match3)
	}
	if idx, ok := target(rangeraft.TruncationPolicy{ThresholdEntries: 5, MaxEntries: logLen - 1}); !ok || idx != applied {
		t.Fatalf("inactive follower, log %d > MaxEntries %d: target = (%d, %v), want applied %d", logLen, logLen-1, idx, ok, applied)
	}
}

// Three replicas over logstore.RangeLog on Pebble: every Ready persisted with
// StageAppend + a synced batch + FinishAppend. Proposals complete with their
// results, every replica applies the same commands, and a replica restarted
// from its Pebble log rejoins and catches up.
func TestThreeReplicasOnRangeLog(t *testing.T) {
	g := newGroup(t, 3, pebbleStorage, nil)
	g.elect(1)
	lead := g.node(1)
	var outs []*outcome
	var want []string
	for i := range 20 {
		cmd := fmt.Sprintf("put k%02d", i)
		want = append(want, cmd)
		outs = append(outs, lead.propose(uint64(i+1), cmd))
		if i%5 == 4 {
			g.stabilize()
		}
	}
	g.stabilize()
	for i, o := range outs {
		wantDoneOnce(t, fmt.Sprintf("proposal %d", i), o)
		if w := fmt.Sprintf("%s@%d", want[i], initIndex+2+i); o.err != nil || o.result != w {
			t.Fatalf("proposal %d = (%v, %v), want %q", i, o.result, o.err, w)
		}
	}
	for _, id := range g.ids {
		nd := g.node(id)
		if diff := cmp.Diff(want, nd.cmds); diff != "" {
			t.Fatalf("node %d commands (-want +got):\n%s", id, diff)
		}
		if nd.lastIndex() != lead.lastIndex() {
			t.Fatalf("node %d last index %d, leader %d", id, nd.lastIndex(), lead.lastIndex())
		}
	}

	// Restart replica 3 from Pebble while the others write on.
	g.isolated[3] = true
	for i := 20; i < 25; i++ {
		cmd := fmt.Sprintf("put k%02d", i)
		want = append(want, cmd)
		outs = append(outs, lead.propose(uint64(i+1), cmd))
	}
	g.stabilize()
	g.restart(3)
	if got, w := g.node(3).lastIndex(), lead.lastIndex()-5; got != w {
		t.Fatalf("restarted replica 3: last index %d from Pebble, want %d", got, w)
	}
	delete(g.isolated, 3)
	g.tickUntil("replica 3 catching up", 5*electionTicks, func() bool { return g.node(3).applied == lead.applied })
	if diff := cmp.Diff(want, g.node(3).cmds); diff != "" {
		t.Fatalf("restarted replica 3 commands (-want +got):\n%s", diff)
	}
	for i, o := range outs {
		wantDoneOnce(t, fmt.Sprintf("proposal %d", i), o)
	}
}

// A deposed leader does not keep its pending proposals for the whole
// proposal timeout: once it steps down they resolve (here ambiguously: the
// new leader never reaches their index) within one election timeout.
func TestDeposedLeaderProposalResolvesWithinElectionTimeout(t *testing.T) {
	const timeout = 1000
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { c.ProposalTimeoutTicks = timeout })
	g.elect(1)
	old := g.node(1)
	g.isolated[1] = true
	o := old.propose(9, "orphan")
	g.stabilize()
	ticks := 0
	for old.rr.IsLeader() {
		if ticks == 5*electionTicks {
			t.Fatal("isolated leader never stepped down")
		}
		g.tick()
		ticks++
		if old.rr.IsLeader() && o.calls != 0 {
			t.Fatalf("proposal completed (%v) while its replica still led", o.err)
		}
	}
	stepDown := ticks
	for o.calls == 0 {
		if ticks > stepDown+electionTicks+1 {
			t.Fatalf("proposal still pending %d ticks after its leader stepped down (election timeout %d ticks)", ticks-stepDown, electionTicks)
		}
		g.tick()
		ticks++
	}
	wantDoneOnce(t, "deposed leader's proposal", o)
	wantAmbiguous(t, "deposed leader's proposal", o.err)
	if ticks >= timeout {
		t.Fatalf("resolved only after the full proposal timeout (%d ticks)", ticks)
	}
}

// A read that got its read index but whose index is never applied times
// out (ErrReadTimeout, safe to retry) instead of waiting forever.
func TestReadWaitingForApplyTimesOut(t *testing.T) {
	const timeout = 5
	g := newGroup(t, 3, memStorage, func(c *rangeraft.Config) { c.ReadTimeoutTicks = timeout })
	g.elect(1)
	nd := g.node(1)
	nd.holdApply = true
	w := nd.propose(1, "w")
	g.stabilize()
	r := nd.read()
	nd.rr.FlushReads()
	g.stabilize() // the read has its index, above the applied index
	if n := nd.rr.PendingReads(); n != 1 {
		t.Fatalf("PendingReads = %d, want 1", n)
	}
	for i := range timeout {
		g.tick()
		if r.calls != 0 {
			t.Fatalf("read completed after %d ticks: %v", i+1, r.err)
		}
	}
	g.tick()
	if r.calls != 1 || !errors.Is(r.err, rangeraft.ErrReadTimeout) {
		t.Fatalf("read waiting for apply: %d calls, err %v; want one ErrReadTimeout", r.calls, r.err)
	}
	if n := nd.rr.PendingReads(); n != 0 {
		t.Fatalf("PendingReads after timeout = %d", n)
	}
	nd.applyBacklog()
	wantDoneOnce(t, "write", w)
	if r.calls != 1 {
		t.Fatalf("timed-out read completed %d times", r.calls)
	}
}

// proposeAll proposes cmds with ProposeAll, IDs from id on; cmds starting
// with "solo:" are not batchable.
func (nd *testNode) proposeAll(id uint64, cmds ...string) []*outcome {
	var ps []*rangeraft.Proposal
	var outs []*outcome
	for i, c := range cmds {
		o := &outcome{}
		outs = append(outs, o)
		ps = append(ps, &rangeraft.Proposal{ID: id + uint64(i), Cmd: []byte(c), Batchable: !strings.HasPrefix(c, "solo:"),
			Done: func(result any, err error) {
				o.calls++
				o.result, o.err, o.atIndex = result, err, nd.applying
			}})
	}
	nd.rr.ProposeAll(ps)
	return outs
}

func TestEncodeDecodeBatchEntry(t *testing.T) {
	ps := []*rangeraft.Proposal{{ID: 1, Cmd: []byte("a")}, {ID: 1 << 40, Cmd: nil}, {ID: 300, Cmd: bytes.Repeat([]byte("x"), 300)}}
	subs, err := rangeraft.DecodeEntries(rangeraft.EncodeBatchEntry(ps))
	if err != nil {
		t.Fatal(err)
	}
	var want, got []rangeraft.SubEntry
	for _, p := range ps {
		want = append(want, rangeraft.SubEntry{ID: p.ID, Cmd: p.Cmd})
	}
	got = subs
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("DecodeEntries(EncodeBatchEntry) (-want +got):\n%s", diff)
	}
	if subs, err := rangeraft.DecodeEntries(rangeraft.EncodeEntry(9, []byte("one"))); err != nil || len(subs) != 1 || subs[0].ID != 9 || string(subs[0].Cmd) != "one" {
		t.Fatalf("DecodeEntries of a single entry = %v, %v", subs, err)
	}
	if _, _, err := rangeraft.DecodeEntry(rangeraft.EncodeBatchEntry(ps)); err == nil {
		t.Fatal("DecodeEntry took a batch entry for one command")
	}
	full := rangeraft.EncodeBatchEntry(ps)
	for n := 9; n < len(full); n++ {
		if subs, err := rangeraft.DecodeEntries(full[:n]); err == nil && len(subs) == len(ps) {
			t.Fatalf("DecodeEntries of %d of %d bytes decoded every proposal", n, len(full))
		}
	}
}

// Batchable proposals proposed together share one entry; each completes
// once, with its own result or its own state machine error; a proposal
// that is not batchable gets an entry of its own, in order.
func TestProposeAllSharesOneEntry(t *testing.T) {
	g := newGroup(t, 3, pebbleStorage, nil)
	g.elect(1)
	nd := g.node(1)
	before := nd.lastIndex()
	outs := nd.proposeAll(10, "a", "fail:b", "c", "solo:d", "e")
	g.stabilize()
	// a, fail:b and c share an entry; solo:d and e get one each.
	if got := nd.lastIndex() - before; got != 3 {
		t.Fatalf("5 proposals took %d entries, want 3", got)
	}
	want := []string{"a@%d", "", "c@%d", "solo:d@%d", "e@%d"}
	idx := []uint64{before + 1, before + 1, before + 1, before + 2, before + 3}
	for i, o := range outs {
		wantDoneOnce(t, fmt.Sprintf("proposal %d", i), o)
		if i == 1 {
			if o.err == nil {
				t.Errorf("fail:b: no error, want the state machine's")
			}
			continue
		}
		if w := fmt.Sprintf(want[i], idx[i]); o.err != nil || o.result != w {
			t.Errorf("proposal %d: (%v, %v), want %q", i, o.result, o.err, w)
		}
	}
	for _, id := range g.ids {
		if diff := cmp.Diff([]string{"a", "c", "solo:d", "e"}, g.node(id).cmds); diff != "" {
			t.Fatalf("node %d state machine (-want +got):\n%s", id, diff)
		}
	}
	if n := nd.rr.PendingProposals(); n != 0 {
		t.Fatalf("PendingProposals = %d, want 0", n)
	}
}

// A batch entry of a deposed leader that another entry replaced: every
// proposal of it is stale, none applied.
func TestReplacedBatchIsStale(t *testing.T) {
	g := newGroup(t, 3, pebbleStorage, nil)
	g.elect(1)
	old := g.node(1)
	g.isolated[1] = true
	lost := old.proposeAll(100, "l1", "l2", "l3")
	g.stabilize()
	g.frozen = map[uint64]bool{1: true}
	g.tickUntil("new leader among 2 and 3", 10*electionTicks, func() bool { return g.leader(2, 3) != 0 })
	g.frozen = nil
	g.tickUntil("old leader stepped down", 10*electionTicks, func() bool { return !old.rr.IsLeader() })
	nl := g.node(g.leader(2, 3))
	won := nl.proposeAll(200, "w1", "w2")
	g.stabilize()
	delete(g.isolated, 1)
	g.tickUntil("old leader catching up", 5*electionTicks, func() bool { return old.applied >= nl.applied })
	for i, o := range lost {
		wantDoneOnce(t, fmt.Sprintf("lost %d", i), o)
		if !errors.Is(o.err, rangeraft.ErrStaleCommand) {
			t.Errorf("lost %d: %v, want ErrStaleCommand", i, o.err)
		}
	}
	for i, o := range won {
		wantDoneOnce(t, fmt.Sprintf("won %d", i), o)
		if o.err != nil {
			t.Errorf("won %d: %v", i, o.err)
		}
	}
	for _, id := range g.ids {
		if diff := cmp.Diff([]string{"w1", "w2"}, g.node(id).cmds); diff != "" {
			t.Fatalf("node %d state machine (-want +got):\n%s", id, diff)
		}
	}
}
