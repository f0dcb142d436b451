package driver_test

// Tests of the pass: three in-memory "stores" (one Pebble engine and one
// Driver each) hosting replicas of three Raft groups, messages delivered by
// the test. Every hook of the test Group checks, against the engine, the
// order doc.go promises: nothing but a leader's MsgApp leaves before the
// pass's batch committed, applies are staged into that same batch unless
// a snapshot is in the pass (then into their own batch, after it), and
// the engine's WAL is synced once per pass iff a Ready must sync, a
// snapshot is in it or an apply asks for it.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// syncFS counts the syncs of WAL files (the only fsyncs a commit makes).
type syncFS struct {
	vfs.FS
	syncs *atomic.Int64
}

type syncFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f syncFile) Sync() error                  { f.syncs.Add(1); return f.File.Sync() }
func (f syncFile) SyncData() error              { f.syncs.Add(1); return f.File.SyncData() }
func (f syncFile) SyncTo(n int64) (bool, error) { f.syncs.Add(1); return f.File.SyncTo(n) }

func (fs syncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return syncFile{File: f, syncs: fs.syncs}, nil
}

func (fs syncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs syncFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fs.wrap(name, f, err)
}

func (fs syncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, o...)
	return fs.wrap(name, f, err)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(string, ...any)             {}
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// counts are what the cluster observed, for the tests' assertions.
type counts struct {
	passes, multiGroupPasses int
	earlyMsgApps             int // MsgApps sent before their pass committed
	mergedApplies            int // StageApply calls into the persist batch
	separateApplies          int // StageApply calls into a batch after a snapshot
	snapshots                int
	syncedPasses             int
	truncations              int
}

type envelope struct {
	rangeID uint64
	m       *pb.Message
}

type cluster struct {
	t     *testing.T
	nodes map[uint64]*node
	ids   []uint64
	net   []envelope
	// cut[rangeID][nodeID]: that replica neither sends nor receives.
	cut map[uint64]map[uint64]bool
	counts
	// policy, when ThresholdEntries is set, makes leaders truncate.
	policy driver.TruncationPolicy
	// holdRange: messages of that group to node 3 wait until a snapshot
	// to node 3 is delivered in the same round.
	holdRange uint64
}

type node struct {
	c      *cluster
	id     uint64
	db     *pebble.DB
	syncs  atomic.Int64
	drv    *driver.Driver
	groups map[uint64]*group
	// pass: the groups of the pass being run; applySync: a StageApply of
	// it asked for a sync.
	pass      []*group
	applySync bool
}

// group is one replica of one Raft group: the test's driver.Group. Its
// state machine records the applied commands in order.
type group struct {
	n       *node
	rangeID uint64
	rr      *rangeraft.Replica
	log     *driver.Log
	rd      raft.Ready // the Ready of the current pass
	trunc   driver.Truncator
	nextID  uint64

	cmds                []string // applied commands (the state machine)
	applied, appliedTrm uint64
	// staged by StageApply, made true by FinishApply.
	staged       []stagedEntry
	stagedTruncs [][2]uint64
	stagedCmds   []string
	snapCmds     []string // set by IngestSnapshot
}

type stagedEntry struct {
	e   *pb.Entry
	res any
}

// storage adds the state machine's commands to the log's snapshots.
type storage struct {
	*driver.Log
	g *group
}

func (s storage) Snapshot() (*pb.Snapshot, error) {
	snap, err := s.Log.Snapshot()
	if err != nil {
		return nil, err
	}
	snap.Data = []byte(strings.Join(s.g.cmds, "\n"))
	return snap, nil
}

func newCluster(t *testing.T, nodes, groups int) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: map[uint64]*node{}, cut: map[uint64]map[uint64]bool{}}
	for i := 1; i <= nodes; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		n := &node{c: c, id: id, groups: map[uint64]*group{}}
		db, err := pebble.Open("", &pebble.Options{FS: syncFS{FS: vfs.NewMem(), syncs: &n.syncs}, Logger: quietLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		n.db = db
		n.drv = driver.New(driver.Options{DB: db, Fatal: func(rangeID uint64, what string, err error) {
			panic(fmt.Sprintf("node %d range %d: %s: %v", id, rangeID, what, err))
		}})
		for r := 1; r <= groups; r++ {
			n.groups[uint64(r)] = n.newGroup(uint64(r))
		}
		c.nodes[id] = n
	}
	return c
}

// newGroup writes the group's initial state (driver.WriteInitialState)
// and starts its replica over it.
func (n *node) newGroup(rangeID uint64) *group {
	t := n.c.t
	desc := &rangekvpb.RangeDescriptor{RangeId: rangeID, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}}
	cs := &pb.ConfState{}
	for _, id := range n.c.ids {
		desc.Replicas = append(desc.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: id})
		cs.Voters = append(cs.Voters, id)
	}
	b := n.db.NewBatch()
	if err := driver.WriteInitialState(b, desc, driver.InitialHardState()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	log, err := driver.LoadLog(n.db, rangeID, cs, &rangekvpb.AppliedState{Index: driver.InitIndex, Term: driver.InitTerm})
	if err != nil {
		t.Fatal(err)
	}
	g := &group{n: n, rangeID: rangeID, log: log, applied: driver.InitIndex, appliedTrm: driver.InitTerm}
	g.rr, err = rangeraft.New(rangeraft.Config{
		ReplicaID: n.id, ElectionTicks: 10, HeartbeatTicks: 1,
		Applied: driver.InitIndex, AppliedTerm: driver.InitTerm,
		ReadContextSeed: n.id<<32 | rangeID, Storage: storage{log, g},
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (c *cluster) isCut(rangeID, nodeID uint64) bool { return c.cut[rangeID][nodeID] }

func (c *cluster) setCut(rangeID, nodeID uint64, cut bool) {
	if c.cut[rangeID] == nil {
		c.cut[rangeID] = map[uint64]bool{}
	}
	c.cut[rangeID][nodeID] = cut
}

// runPass runs one pass on n over every group with a Ready, and checks
// the pass's syncs.
func (n *node) runPass() bool {
	c := n.c
	for _, id := range slices.Sorted(maps.Keys(n.groups)) {
		g := n.groups[id]
		rd, ok := g.rr.Ready()
		if !ok {
			continue
		}
		g.rd = rd
		n.pass = append(n.pass, g)
		n.drv.Add(g, rd)
	}
	if len(n.pass) == 0 {
		return false
	}
	mustSync, snap := false, false
	for _, g := range n.pass {
		mustSync = mustSync || g.rd.MustSync
		snap = snap || !raft.IsEmptySnap(g.rd.Snapshot)
	}
	n.applySync = false
	before := n.syncs.Load()
	st := n.drv.Run()
	syncs := n.syncs.Load() - before
	// One synced commit when the persist batch must sync; a snapshot's
	// pass syncs it (and its apply batch too if an apply asks).
	want := int64(0)
	switch {
	case snap:
		want = 1
		if n.applySync {
			want = 2
		}
	case mustSync || n.applySync:
		want = 1
	}
	if syncs != want {
		c.t.Errorf("node %d: pass of %d groups (MustSync %v, snapshot %v, apply sync %v) synced the WAL %d times, want %d",
			n.id, len(n.pass), mustSync, snap, n.applySync, syncs, want)
	}
	if st.Synced != (want > 0) {
		c.t.Errorf("node %d: Stats.Synced = %v, want %v", n.id, st.Synced, want > 0)
	}
	c.passes++
	if len(n.pass) > 1 {
		c.multiGroupPasses++
	}
	if st.Synced {
		c.syncedPasses++
	}
	n.pass = nil
	return true
}

// stabilize runs passes and delivers messages until nothing moves.
func (c *cluster) stabilize() {
	c.t.Helper()
	for range 10000 {
		moved := false
		for _, id := range c.ids {
			if c.nodes[id].runPass() {
				moved = true
			}
		}
		net := c.net
		c.net = nil
		if c.holdRange != 0 && slices.ContainsFunc(net, func(e envelope) bool {
			return e.m.GetTo() == 3 && e.m.GetType() == pb.MsgSnap
		}) {
			c.holdRange = 0 // a snapshot to node 3 is on its way: release
		}
		for _, e := range net {
			if c.holdRange != 0 && e.rangeID == c.holdRange && e.m.GetTo() == 3 {
				c.net = append(c.net, e)
				continue
			}
			moved = true
			if c.isCut(e.rangeID, e.m.GetFrom()) || c.isCut(e.rangeID, e.m.GetTo()) {
				continue
			}
			_ = c.nodes[e.m.GetTo()].groups[e.rangeID].rr.Step(e.m)
		}
		if !moved {
			return
		}
	}
	c.t.Fatal("cluster did not stabilize")
}

func (c *cluster) tick() {
	for _, n := range c.nodes {
		for _, g := range n.groups {
			if !c.isCut(g.rangeID, n.id) {
				g.rr.Tick()
			}
		}
	}
	c.stabilize()
}

// elect makes node nodeID the leader of every group.
func (c *cluster) elect(nodeID uint64) {
	c.t.Helper()
	for _, g := range c.nodes[nodeID].groups {
		if err := g.rr.Campaign(); err != nil {
			c.t.Fatal(err)
		}
	}
	c.stabilize()
	for _, g := range c.nodes[nodeID].groups {
		if !g.rr.IsLeader() {
			c.t.Fatalf("node %d did not win range %d", nodeID, g.rangeID)
		}
	}
}

// propose proposes cmd in group rangeID on node nodeID; the outcome is
// recorded in *out.
func (c *cluster) propose(nodeID, rangeID uint64, cmd string, out *error) {
	g := c.nodes[nodeID].groups[rangeID]
	g.nextID++
	g.rr.Propose(&rangeraft.Proposal{ID: g.nextID, Cmd: []byte(cmd), Done: func(_ any, err error) {
		if out != nil {
			*out = err
		}
	}})
}

// --- engine checks ---

// inDB reports whether the engine (not a batch) holds v at k.
func (n *node) inDB(k, v []byte) bool {
	got, closer, err := n.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		n.c.t.Fatal(err)
	}
	defer closer.Close()
	return bytes.Equal(got, v)
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// persisted reports, for each group of the pass with something to
// persist, whether the engine holds its Ready's last entry and hard state.
func (n *node) persisted() (all, none bool) {
	all, none = true, true
	for _, g := range n.pass {
		var kv [][2][]byte
		if len(g.rd.Entries) > 0 {
			last := g.rd.Entries[len(g.rd.Entries)-1]
			kv = append(kv, [2][]byte{keys.LogEntryKey(g.rangeID, last.GetIndex()), mustMarshal(last)})
		}
		for _, p := range kv {
			if n.inDB(p[0], p[1]) {
				none = false
			} else {
				all = false
			}
		}
		if hs := g.rd.HardState; hs != nil && !raft.IsEmptyHardState(hs) {
			if n.hardStateOnRestart(g.rangeID, hs) {
				none = false
			} else {
				all = false
			}
		}
	}
	return all, none
}

// hardStateOnRestart reports whether a restart now would read hs for
// rangeID: the persisted hard state with its commit repaired up to the
// persisted applied index, as logstore.Load does (a commit-only hard
// state the same batch's applied index covers is not written).
func (n *node) hardStateOnRestart(rangeID uint64, hs *pb.HardState) bool {
	var disk pb.HardState
	var applied rangekvpb.AppliedState
	for _, kv := range []struct {
		k []byte
		m proto.Message
	}{{keys.HardStateKey(rangeID), &disk}, {keys.AppliedStateKey(rangeID), &applied}} {
		v, closer, err := n.db.Get(kv.k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			n.c.t.Fatal(err)
		}
		err = proto.Unmarshal(v, kv.m)
		closer.Close()
		if err != nil {
			n.c.t.Fatal(err)
		}
	}
	return disk.GetTerm() == hs.GetTerm() && disk.GetVote() == hs.GetVote() &&
		max(disk.GetCommit(), applied.GetIndex()) == hs.GetCommit()
}

func (n *node) hasSnapshot() bool {
	for _, g := range n.pass {
		if !raft.IsEmptySnap(g.rd.Snapshot) {
			return true
		}
	}
	return false
}

// --- driver.Group ---

func (g *group) Raft() *rangeraft.Replica { return g.rr }
func (g *group) Log() *driver.Log         { return g.log }

func (g *group) IngestSnapshot(b *pebble.Batch, rd *raft.Ready) {
	t := g.n.c.t
	if _, none := g.n.persisted(); !none {
		t.Errorf("node %d range %d: part of the pass was committed before its snapshot was staged", g.n.id, g.rangeID)
	}
	md := rd.Snapshot.GetMetadata()
	if err := g.log.StageSnapshot(b, md.GetIndex(), md.GetTerm()); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(keys.AppliedStateKey(g.rangeID), mustMarshal(&rangekvpb.AppliedState{Index: md.GetIndex(), Term: md.GetTerm()}), nil); err != nil {
		t.Fatal(err)
	}
	g.snapCmds = nil
	if d := rd.Snapshot.GetData(); len(d) > 0 {
		g.snapCmds = strings.Split(string(d), "\n")
	}
}

func (g *group) FinishSnapshot(rd *raft.Ready) {
	t := g.n.c.t
	if all, _ := g.n.persisted(); !all {
		t.Errorf("node %d range %d: FinishSnapshot before the pass committed", g.n.id, g.rangeID)
	}
	md := rd.Snapshot.GetMetadata()
	if !g.n.inDB(keys.AppliedStateKey(g.rangeID), mustMarshal(&rangekvpb.AppliedState{Index: md.GetIndex(), Term: md.GetTerm()})) {
		t.Errorf("node %d range %d: snapshot's applied state not durable at FinishSnapshot", g.n.id, g.rangeID)
	}
	g.log.FinishSnapshot(md.GetIndex(), md.GetTerm(), md.GetConfState())
	g.rr.AppliedSnapshot(md.GetIndex(), md.GetTerm())
	g.cmds, g.applied, g.appliedTrm = g.snapCmds, md.GetIndex(), md.GetTerm()
	g.n.c.snapshots++
}

func (g *group) StageApply(b *pebble.Batch, ents []*pb.Entry, pending driver.AppendUpdate) bool {
	t, n := g.n.c.t, g.n
	all, none := n.persisted()
	if n.hasSnapshot() {
		// After a snapshot: a batch of its own, after the persist batch.
		if !all {
			t.Errorf("node %d range %d: applies staged after a snapshot before the persist batch committed", n.id, g.rangeID)
		}
		n.c.separateApplies++
	} else {
		// Merged: the persist batch, not yet committed.
		if !none {
			t.Errorf("node %d range %d: applies staged into a batch other than the uncommitted persist batch", n.id, g.rangeID)
		}
		n.c.mergedApplies++
	}
	sync := false
	var last *pb.Entry
	for _, e := range ents {
		if e.GetIndex() <= g.applied {
			continue // covered by this pass's snapshot
		}
		last = e
		se := stagedEntry{e: e}
		if e.GetType() == pb.EntryNormal && len(e.GetData()) > 0 {
			_, cmd, err := rangeraft.DecodeEntry(e.GetData())
			if err != nil {
				t.Fatal(err)
			}
			s := string(cmd)
			switch {
			case strings.HasPrefix(s, "trunc:"):
				f := strings.Split(s, ":")
				idx, _ := strconv.ParseUint(f[1], 10, 64)
				term, _ := strconv.ParseUint(f[2], 10, 64)
				ok, err := g.log.StageTruncate(b, idx, term, pending)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					g.stagedTruncs = append(g.stagedTruncs, [2]uint64{idx, term})
				}
			default:
				sync = sync || strings.HasPrefix(s, "sync:")
				g.stagedCmds = append(g.stagedCmds, s)
				se.res = s
			}
		}
		g.staged = append(g.staged, se)
	}
	if last != nil {
		if err := b.Set(keys.AppliedStateKey(g.rangeID), mustMarshal(&rangekvpb.AppliedState{Index: last.GetIndex(), Term: last.GetTerm()}), nil); err != nil {
			t.Fatal(err)
		}
	}
	n.applySync = n.applySync || sync
	return sync
}

func (g *group) FinishApply() {
	t := g.n.c.t
	if len(g.staged) > 0 {
		last := g.staged[len(g.staged)-1].e
		if !g.n.inDB(keys.AppliedStateKey(g.rangeID), mustMarshal(&rangekvpb.AppliedState{Index: last.GetIndex(), Term: last.GetTerm()})) {
			t.Errorf("node %d range %d: FinishApply before the applied index %d was committed", g.n.id, g.rangeID, last.GetIndex())
		}
		g.applied, g.appliedTrm = last.GetIndex(), last.GetTerm()
		g.log.SetApplied(g.applied, g.appliedTrm, nil)
	}
	for _, tr := range g.stagedTruncs {
		g.log.FinishTruncate(tr[0], tr[1])
		g.n.c.truncations++
	}
	g.cmds = append(g.cmds, g.stagedCmds...)
	for _, se := range g.staged {
		g.rr.Applied(se.e, se.res, nil)
	}
	g.trunc.Applied(len(g.staged))
	g.staged, g.stagedTruncs, g.stagedCmds = nil, nil, nil
	g.rr.FinishApply()
}

func (g *group) Send(msgs []*pb.Message) {
	c := g.n.c
	all, _ := g.n.persisted()
	for _, m := range msgs {
		if !all {
			if m.GetType() != pb.MsgApp || !g.rr.IsLeader() {
				c.t.Errorf("node %d range %d: %s sent before its pass committed", g.n.id, g.rangeID, m.GetType())
			}
			c.earlyMsgApps++
		}
		c.net = append(c.net, envelope{rangeID: g.rangeID, m: proto.CloneOf(m)})
	}
}

func (g *group) AfterAdvance() {
	c := g.n.c
	if c.policy.ThresholdEntries == 0 {
		return
	}
	if idx, term, ok := g.trunc.Decide(c.policy, g.rr, g.log, false, nil); ok {
		c.propose(g.n.id, g.rangeID, fmt.Sprintf("trunc:%d:%d", idx, term), nil)
	}
}

// --- tests ---

// TestPassThreeGroups: writes to three groups led by one node. Each
// node's passes carry several groups at once; every hook checks the order
// against the engine; the leaders send MsgApps before their commit; the
// applies are staged into the persist batch; the state machines agree.
func TestPassThreeGroups(t *testing.T) {
	c := newCluster(t, 3, 3)
	c.elect(1)
	var errs []*error
	for i := range 20 {
		for r := uint64(1); r <= 3; r++ {
			e := new(error)
			errs = append(errs, e)
			*e = errors.New("not completed")
			c.propose(1, r, fmt.Sprintf("put:%d:%d", r, i), e)
		}
		if i%5 == 4 {
			c.stabilize()
		}
	}
	c.stabilize()
	for i, e := range errs {
		if *e != nil {
			t.Errorf("proposal %d: %v", i, *e)
		}
	}
	for r := uint64(1); r <= 3; r++ {
		want := c.nodes[1].groups[r].cmds
		if len(want) != 20 {
			t.Errorf("range %d applied %d commands on the leader, want 20", r, len(want))
		}
		for _, id := range c.ids[1:] {
			if got := c.nodes[id].groups[r].cmds; !slices.Equal(got, want) {
				t.Errorf("range %d: node %d applied %q, leader %q", r, id, got, want)
			}
		}
	}
	if c.multiGroupPasses == 0 || c.earlyMsgApps == 0 || c.mergedApplies == 0 || c.syncedPasses == 0 {
		t.Errorf("the test did not exercise the pass: %+v", c.counts)
	}
	if c.separateApplies != 0 || c.snapshots != 0 {
		t.Errorf("applies in a batch of their own without a snapshot: %+v", c.counts)
	}
}

// TestPassApplySync: a command whose apply asks for a sync makes the
// follower's pass sync even when its Ready need not (a commit-only
// append); runPass checks the count.
func TestPassApplySync(t *testing.T) {
	c := newCluster(t, 3, 1)
	c.elect(1)
	synced := c.syncedPasses
	c.propose(1, 1, "sync:split", nil)
	c.stabilize()
	for _, id := range c.ids {
		if got := c.nodes[id].groups[1].cmds; !slices.Equal(got, []string{"sync:split"}) {
			t.Errorf("node %d applied %q", id, got)
		}
	}
	if c.syncedPasses == synced {
		t.Error("no pass synced")
	}
}

// TestPassSnapshot: a follower cut off from group 1 while its log is
// truncated catches up by snapshot. The snapshot is staged into the
// persist batch, which is synced even when no Ready must sync ("alone":
// a commit-only hard state); with entries of group 2 committed in the same
// pass ("with applies"), those are applied in a batch of their own after
// it. The follower ends up with the leader's state.
func TestPassSnapshot(t *testing.T) {
	for _, withApplies := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "with applies"}[withApplies], func(t *testing.T) {
			testPassSnapshot(t, withApplies)
		})
	}
}

func testPassSnapshot(t *testing.T, withApplies bool) {
	c := newCluster(t, 3, 2)
	c.policy = driver.TruncationPolicy{ThresholdEntries: 5, MaxEntries: 10, CheckEntries: 1}
	c.elect(1)
	c.setCut(1, 3, true)
	// Ticks let the leader see node 3 inactive, so that a log past
	// MaxEntries is truncated beyond it.
	for i := 0; i < 200; i++ {
		if first, _ := c.nodes[1].groups[1].log.FirstIndex(); first > driver.InitIndex+5 {
			break
		}
		c.propose(1, 1, fmt.Sprintf("a%d", i), nil)
		c.tick()
	}
	if first, _ := c.nodes[1].groups[1].log.FirstIndex(); first <= driver.InitIndex+5 || c.truncations == 0 {
		t.Fatalf("the leader did not truncate past the cut-off follower (first index %d): %+v", first, c.counts)
	}
	c.policy = driver.TruncationPolicy{}
	if withApplies {
		// Group 2 commits an entry whose messages to node 3 wait for
		// group 1's snapshot to node 3: node 3 then takes both in one pass.
		c.holdRange = 2
		c.propose(1, 2, "b", nil)
		c.stabilize()
		if got := c.nodes[3].groups[2].cmds; len(got) != 0 {
			t.Fatalf("node 3 applied %q in group 2 before the snapshot", got)
		}
	}
	c.setCut(1, 3, false)
	separate := c.separateApplies
	for range 5 {
		if c.snapshots > 0 {
			break
		}
		c.tick()
	}
	c.stabilize()
	if c.snapshots == 0 {
		t.Fatalf("no snapshot was applied: %+v", c.counts)
	}
	if withApplies && c.separateApplies == separate {
		t.Errorf("the snapshot's pass applied no entries after it: %+v", c.counts)
	}
	for r := uint64(1); r <= 2; r++ {
		want := c.nodes[1].groups[r].cmds
		if got := c.nodes[3].groups[r].cmds; !slices.Equal(got, want) {
			t.Errorf("range %d: node 3 has %q, leader %q", r, got, want)
		}
	}
}
