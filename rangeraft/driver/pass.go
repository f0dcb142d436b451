// One pass over a set of groups with a Ready each: persist in one batch,
// send, apply, advance, in the order doc.go states.

package driver

import (
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/rangeraft"
)

// Group is one Raft group in a pass: what the driver needs of its user.
// Every method is called from the goroutine running the pass, with the
// group serialized by its user (the store holds the replica's lock). The
// *raft.Ready arguments point into the driver's buffers: valid only during
// the call.
type Group interface {
	// Raft is the group's replica. The driver calls IsLeader before the
	// persist batch and Advance after FinishApply.
	Raft() *rangeraft.Replica
	// Log is the group's log. The driver stages rd's entries and hard
	// state into the persist batch and finishes them after it committed.
	Log() *Log

	// IngestSnapshot makes rd.Snapshot (not empty) part of the pass's
	// durable state: staged into b (the persist batch), or ingested into
	// the engine directly. Called before rd's entries and hard state are
	// staged into b; the commit of b is then synced, and the pass's
	// applies get a batch of their own after it.
	IngestSnapshot(b *pebble.Batch, rd *raft.Ready)
	// FinishSnapshot makes the snapshot IngestSnapshot wrote visible (the
	// log's and the replica's view, the user's in-memory state). Called
	// after b committed, before the log's FinishAppend and before rd's
	// messages are sent.
	FinishSnapshot(rd *raft.Ready)
	// StageApply stages the effects of ents (committed, in order, maybe
	// some already covered by a snapshot of this pass) and the applied
	// index (that of the last of ents) into b, an indexed batch (applies
	// may read their own writes; the driver relies on the applied index
	// to leave a commit-only hard state unwritten),
	// and reports whether b must be synced. pending is the append this
	// pass staged for the group, maybe into b and not yet finished (pass
	// it to Log().StageTruncate). Not called when ents is empty.
	StageApply(b *pebble.Batch, ents []*pb.Entry, pending AppendUpdate) (sync bool)
	// FinishApply makes what StageApply staged true in memory (log
	// truncations, conf changes, proposals' outcomes through Raft().Applied,
	// reads through Raft().FinishApply). Called after the batch holding
	// the applies committed, before Advance; for every group of the pass,
	// even one that had nothing to apply.
	FinishApply()
	// Send sends msgs to their peers, in order. msgs belong to the driver:
	// Send must not keep the slice after it returns.
	Send(msgs []*pb.Message)
	// AfterAdvance runs after Raft().Advance: the user's work that needs
	// raft past this Ready (leader bookkeeping, leaving a joint
	// configuration, truncation, re-queueing when HasReady).
	AfterAdvance()
}

// Options configure a Driver.
type Options struct {
	// DB is the engine every group of a pass persists into.
	DB *pebble.DB
	// NoFsync commits without Sync even when the contract needs it
	// (benchmarks only: a crash may lose acknowledged writes).
	NoFsync bool
	// Fatal stops the process on an engine error and must not return
	// (panic, or runtime.Goexit in tests): a store that cannot write must
	// not acknowledge anything. rangeID is 0 for the pass's shared commit.
	Fatal func(rangeID uint64, what string, err error)
	// BeforeCommit, when set, is called once per pass that has groups,
	// when every Ready is staged into the persist batch (with the applies
	// too, when no snapshot is among them) and before that batch commits;
	// it may block. Nil in production; the simulation stops a pass there.
	BeforeCommit func()
	// Flush, when set, is called after the pass handed a round of
	// messages to its groups' Send: once after the leaders' early MsgApps
	// (before the commit), once after the rest (before the applies). A
	// user that buffers what Send gets, to hand each peer all of a pass's
	// messages at once, sends them here; it must not send any of them
	// earlier than Send was called (that is what keeps the order).
	Flush func()
}

// Stats is what a pass wrote, for the user's metrics.
type Stats struct {
	// Committed: the persist batch held something and committed.
	Committed bool
	// Synced: that commit was synced.
	Synced bool
	// Appended: the entries it persisted.
	Appended int
	// Groups: the groups in the pass (each with a Ready).
	Groups int
	// Ops: the Pebble operations (sets, deletes, range deletes) of the
	// pass's batches, whatever they stage (entries, hard states, applies).
	Ops int
}

// member is one group's share of a pass.
type member struct {
	g    Group
	rd   raft.Ready
	upd  AppendUpdate
	snap bool
}

// Driver runs passes. It reuses its buffers from pass to pass, so a user
// keeps one per goroutine that runs passes; it is not safe for concurrent
// use.
type Driver struct {
	opts    Options
	members []member
	early   []*pb.Message // a leader's MsgApps, sent before the commit
}

// New returns a Driver over opts.DB.
func New(opts Options) *Driver { return &Driver{opts: opts} }

// Add puts g in the next pass with rd, the Ready just taken from
// g.Raft(): nothing of rd may have been persisted or sent yet.
func (d *Driver) Add(g Group, rd raft.Ready) {
	d.members = append(d.members, member{g: g, rd: rd})
}

// Len is the number of groups in the next pass.
func (d *Driver) Len() int { return len(d.members) }

// Run runs the pass over the groups added since the last Run (nothing
// when none were) and empties it.
func (d *Driver) Run() Stats {
	var st Stats
	if len(d.members) == 0 {
		return st
	}
	defer d.reset()
	ms := d.members
	st.Groups = len(ms)

	// 1. A leader's MsgApps leave before its own append is durable: it
	// counts its own copy only after Advance (Raft thesis §10.2.1).
	for i := range ms {
		if ms[i].g.Raft().IsLeader() {
			d.sendMsgApps(&ms[i])
		}
	}
	d.flush()

	// 2. Every group's snapshot, entries and hard state in ONE batch.
	// Invariant: nothing else of these Readies is sent before it commits.
	// Without a snapshot among them, the committed entries are applied into
	// the same batch (one commit, one WAL record per pass): they are already
	// durable on a quorum, or are among the entries this batch appends, and
	// the batch is atomic. A snapshot must be in place before entries past
	// it apply, so then the applies get a batch of their own after.
	merged := true
	for i := range ms {
		ms[i].snap = !raft.IsEmptySnap(ms[i].rd.Snapshot)
		merged = merged && !ms[i].snap
	}
	var wb *pebble.Batch
	if merged {
		wb = d.opts.DB.NewIndexedBatch() // applies read their own writes (cas, incr)
	} else {
		wb = d.opts.DB.NewBatch()
	}
	defer wb.Close()
	mustSync := false
	for i := range ms {
		m := &ms[i]
		if m.snap {
			m.g.IngestSnapshot(wb, &m.rd)
			mustSync = true // a snapshot is durable before it is acknowledged
		}
		// In a merged batch the group's applies record the index of its
		// last committed entry: a commit-only hard state up to there need
		// not be written (logstore.StageAppendApplied).
		var applied uint64
		if n := len(m.rd.CommittedEntries); merged && n > 0 {
			applied = m.rd.CommittedEntries[n-1].GetIndex()
		}
		upd, err := m.g.Log().StageAppendApplied(wb, m.rd.Entries, m.rd.HardState, applied)
		if err != nil {
			d.opts.Fatal(m.g.Log().RangeID(), "stage raft state", err)
		}
		m.upd = upd
		st.Appended += upd.Appended()
		mustSync = mustSync || m.rd.MustSync
	}
	applySync := false
	if merged {
		applySync = d.stageApplies(wb)
	}

	// 3. One commit.
	st.Ops += int(wb.Count())
	if d.opts.BeforeCommit != nil {
		d.opts.BeforeCommit()
	}
	if !wb.Empty() {
		st.Committed = true
		st.Synced = d.commit(wb, mustSync || applySync, "commit raft state")
	}

	// 4. Now durable: make it visible, then send the rest.
	for i := range ms {
		m := &ms[i]
		if m.snap {
			m.g.FinishSnapshot(&m.rd)
		}
		m.g.Log().FinishAppend(m.upd)
		if len(m.rd.Messages) > 0 {
			m.g.Send(m.rd.Messages)
		}
	}
	d.flush()

	// 5. After a snapshot: every group's applies in one batch of their own,
	// data and applied index together.
	if !merged {
		ab := d.opts.DB.NewIndexedBatch()
		defer ab.Close()
		applySync := d.stageApplies(ab)
		st.Ops += int(ab.Count())
		if !ab.Empty() {
			d.commit(ab, applySync, "commit apply batch")
		}
	}

	// 6. Finish, advance.
	for i := range ms {
		m := &ms[i]
		m.g.FinishApply()
		m.g.Raft().Advance(m.rd)
		m.g.AfterAdvance()
	}
	return st
}

// sendMsgApps sends m's MsgApps now and keeps the other messages, in
// order, in m.rd.Messages (compacted in place: raft no longer holds the
// slice once it returned the Ready).
func (d *Driver) sendMsgApps(m *member) {
	msgs := m.rd.Messages
	rest, early := msgs[:0], d.early[:0]
	for _, msg := range msgs {
		if msg.GetType() == pb.MsgApp {
			early = append(early, msg)
		} else {
			rest = append(rest, msg)
		}
	}
	clear(msgs[len(rest):])
	m.rd.Messages = rest
	if len(early) > 0 {
		m.g.Send(early)
	}
	clear(early)
	d.early = early[:0]
}

func (d *Driver) flush() {
	if d.opts.Flush != nil {
		d.opts.Flush()
	}
}

// stageApplies stages every group's committed entries into b and reports
// whether one of them must be synced.
func (d *Driver) stageApplies(b *pebble.Batch) (sync bool) {
	for i := range d.members {
		m := &d.members[i]
		if len(m.rd.CommittedEntries) > 0 {
			sync = m.g.StageApply(b, m.rd.CommittedEntries, m.upd) || sync
		}
	}
	return sync
}

// commit commits b, synced when sync is set (unless NoFsync), and reports
// whether it synced. A failed commit is fatal.
func (d *Driver) commit(b *pebble.Batch, sync bool, what string) (synced bool) {
	opts := pebble.NoSync
	if sync && !d.opts.NoFsync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		d.opts.Fatal(0, what, err)
	}
	return opts == pebble.Sync
}

// reset empties the pass, dropping its references to groups and Readies.
func (d *Driver) reset() {
	clear(d.members)
	d.members = d.members[:0]
}
