// The placement Raft group over rangeraft/driver: the group's side of a
// pass (the metadata state machine's applies and snapshots, sending,
// leader bookkeeping, truncation) and the loop that drives it. One group,
// so one goroutine drives it; the driver keeps etcd raft's order (persist
// in one batch → send → apply → advance).

package placement

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/logadapt"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// groupID is the placement group's ID in its own engine.
const groupID = 1

type proposalResult struct {
	value any
	err   error
}

// group is this member's replica of the placement group: a driver.Group
// whose state machine is meta. Only the run loop's goroutine touches its
// raft state; other goroutines reach it through the channels, meta (its
// own lock) and the atomics.
type group struct {
	s      *Server
	db     *pebble.DB
	log    *driver.Log
	rr     *rangeraft.Replica
	drv    *driver.Driver
	meta   *meta
	nextID atomic.Uint64

	recvc chan []*pb.Message
	propc chan *rangeraft.Proposal
	readc chan *rangeraft.Read

	leader  atomic.Uint64
	term    atomic.Uint64
	applied uint64
	trunc   driver.Truncator
	members *rangekvpb.RangeDescriptor

	// What StageApply staged, made true by FinishApply after the commit.
	staged struct {
		results []applyResult
		truncs  [][2]uint64
		last    *pb.Entry
	}
}

type applyResult struct {
	e   *pb.Entry
	v   any
	err error
}

var _ driver.Group = (*group)(nil)

// snapStorage serves raft snapshots of the whole metadata state.
type snapStorage struct {
	*driver.Log
	g *group
}

func (s snapStorage) Snapshot() (*pb.Snapshot, error) {
	snap, err := s.Log.Snapshot()
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(s.g.meta.snapshot())
	if err != nil {
		return nil, err
	}
	snap.Data = data
	return snap, nil
}

func confStateOf(d *rangekvpb.RangeDescriptor) *pb.ConfState {
	cs := &pb.ConfState{}
	for _, r := range d.Replicas {
		cs.Voters = append(cs.Voters, r.ReplicaId)
	}
	return cs
}

// openGroup loads (or initializes) the placement group from db.
func openGroup(s *Server, db *pebble.DB) (*group, error) {
	g := &group{s: s, db: db, recvc: make(chan []*pb.Message, 1024), propc: make(chan *rangeraft.Proposal, 4096), readc: make(chan *rangeraft.Read, 4096)}
	g.drv = driver.New(driver.Options{DB: db, Fatal: func(_ uint64, what string, err error) { s.fatal(what, err) }})
	var seed [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, seed[:]); err != nil {
		return nil, err
	}
	g.nextID.Store(binary.BigEndian.Uint64(seed[:]))
	members := &rangekvpb.RangeDescriptor{}
	v, c, err := db.Get(keys.DescriptorKey(groupID))
	switch {
	case err == nil:
		err = proto.Unmarshal(v, members)
		c.Close()
		if err != nil {
			return nil, err
		}
	case errors.Is(err, pebble.ErrNotFound):
		members = &rangekvpb.RangeDescriptor{RangeId: groupID, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}}
		ids := make([]uint64, 0, len(s.cfg.InitialCluster))
		for id := range s.cfg.InitialCluster {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			members.Replicas = append(members.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: id})
		}
		b := db.NewBatch()
		if err := driver.WriteInitialState(b, members, driver.InitialHardState()); err != nil {
			return nil, err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	g.members = members
	var applied rangekvpb.AppliedState
	if v, c, err := db.Get(keys.AppliedStateKey(groupID)); err == nil {
		err = proto.Unmarshal(v, &applied)
		c.Close()
		if err != nil {
			return nil, err
		}
	}
	if g.meta, err = loadMeta(db); err != nil {
		return nil, err
	}
	if g.log, err = driver.LoadLog(db, groupID, confStateOf(members), &applied); err != nil {
		return nil, err
	}
	g.applied = applied.Index
	election := int(s.cfg.ElectionTimeout / s.cfg.HeartbeatInterval)
	g.rr, err = rangeraft.New(rangeraft.Config{
		ReplicaID:            s.cfg.ID,
		ElectionTicks:        election,
		HeartbeatTicks:       1,
		ProposalTimeoutTicks: 10 * election,
		Applied:              applied.Index,
		AppliedTerm:          applied.Term,
		ReadContextSeed:      binary.BigEndian.Uint64(seed[:]) ^ 0x5a5a,
		Storage:              snapStorage{g.log, g},
		Logger:               logadapt.NewRaft(s.log),
		Clock:                s.now,
	})
	return g, err
}

// run drives the group until ctx ends.
func (g *group) run(ctx context.Context) {
	t := g.s.cfg.Clock.NewTicker(g.s.cfg.HeartbeatInterval)
	defer t.Stop()
	defer g.rr.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			g.rr.Tick()
		case msgs := <-g.recvc:
			g.step(msgs)
		case p := <-g.propc:
			g.rr.Propose(p)
		case r := <-g.readc:
			g.rr.ReadIndex(r)
		}
		// Take whatever else is queued, then run passes while raft has work.
	drain:
		for {
			select {
			case msgs := <-g.recvc:
				g.step(msgs)
			case p := <-g.propc:
				g.rr.Propose(p)
			case r := <-g.readc:
				g.rr.ReadIndex(r)
			default:
				break drain
			}
		}
		g.rr.FlushReads()
		for {
			rd, ok := g.rr.Ready()
			if !ok {
				break
			}
			g.drv.Add(g, rd)
			g.drv.Run()
		}
	}
}

func (g *group) step(msgs []*pb.Message) {
	for _, m := range msgs {
		if err := g.rr.Step(m); err != nil {
			g.s.log.Debug("placement raft step", "err", err)
		}
	}
}

// Raft implements driver.Group.
func (g *group) Raft() *rangeraft.Replica { return g.rr }

// Log implements driver.Group.
func (g *group) Log() *driver.Log { return g.log }

// IngestSnapshot replaces the metadata with the snapshot's, in b with its
// applied index and the cleared log.
func (g *group) IngestSnapshot(b *pebble.Batch, rd *raft.Ready) {
	md := rd.Snapshot.GetMetadata()
	var st rangekvpb.PlacementSnapshot
	if err := proto.Unmarshal(rd.Snapshot.GetData(), &st); err != nil {
		g.s.fatal("decode placement snapshot", err)
	}
	g.must(g.meta.restore(b, &st))
	g.must(set(b, keys.AppliedStateKey(groupID), &rangekvpb.AppliedState{Index: md.GetIndex(), Term: md.GetTerm()}))
	g.must(g.log.StageSnapshot(b, md.GetIndex(), md.GetTerm()))
}

// FinishSnapshot implements driver.Group.
func (g *group) FinishSnapshot(rd *raft.Ready) {
	md := rd.Snapshot.GetMetadata()
	g.log.FinishSnapshot(md.GetIndex(), md.GetTerm(), md.GetConfState())
	g.rr.AppliedSnapshot(md.GetIndex(), md.GetTerm())
	g.applied = md.GetIndex()
}

// StageApply applies committed commands to meta and into b, with the
// applied index. Nothing here needs a sync of its own.
func (g *group) StageApply(b *pebble.Batch, ents []*pb.Entry, pending driver.AppendUpdate) (sync bool) {
	st := &g.staged
	for _, e := range ents {
		if e.GetIndex() <= g.applied {
			continue // covered by a snapshot of this pass
		}
		st.last = e
		r := applyResult{e: e}
		if e.GetType() == pb.EntryNormal && len(e.GetData()) > 0 {
			_, data, err := rangeraft.DecodeEntry(e.GetData())
			g.must(err)
			var cmd rangekvpb.PlacementCommand
			g.must(proto.Unmarshal(data, &cmd))
			if tr := cmd.GetTruncateLog(); tr != nil {
				ok, err := g.log.StageTruncate(b, tr.Index, tr.Term, pending)
				g.must(err)
				if ok {
					st.truncs = append(st.truncs, [2]uint64{tr.Index, tr.Term})
				}
			} else {
				r.v, r.err = g.meta.apply(b, &cmd)
			}
		}
		st.results = append(st.results, r)
	}
	if st.last != nil {
		g.must(set(b, keys.AppliedStateKey(groupID), &rangekvpb.AppliedState{Index: st.last.GetIndex(), Term: st.last.GetTerm()}))
	}
	return false
}

// FinishApply completes the staged applies: truncations, the applied
// index, the proposals' outcomes and the reads they made ready.
func (g *group) FinishApply() {
	st := &g.staged
	if st.last == nil {
		return
	}
	for _, t := range st.truncs {
		g.log.FinishTruncate(t[0], t[1])
	}
	g.applied = st.last.GetIndex()
	g.log.SetApplied(st.last.GetIndex(), st.last.GetTerm(), nil)
	for _, r := range st.results {
		g.rr.Applied(r.e, r.v, r.err)
	}
	g.rr.FinishApply()
	g.trunc.Applied(len(st.results))
	st.results, st.truncs, st.last = nil, nil, nil
}

// Send implements driver.Group.
func (g *group) Send(msgs []*pb.Message) { g.s.trans.send(msgs) }

// AfterAdvance publishes leadership and proposes a truncation when the
// policy allows one.
func (g *group) AfterAdvance() {
	bs := g.rr.BasicStatus()
	if old := g.leader.Swap(bs.Lead); old != bs.Lead {
		g.s.onLeaderChange(bs.Lead == g.s.cfg.ID)
	}
	g.term.Store(bs.GetTerm())
	g.maybeTruncate()
}

func (g *group) maybeTruncate() {
	idx, term, ok := g.trunc.Decide(g.s.cfg.truncationPolicy(), g.rr, g.log, false, nil)
	if !ok {
		return
	}
	data, _ := proto.Marshal(&rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_TruncateLog{TruncateLog: &rangekvpb.TruncateLogCmd{Index: idx, Term: term}}})
	g.rr.Propose(&rangeraft.Proposal{ID: g.nextID.Add(1), Cmd: data, Done: func(any, error) {}})
}

func (g *group) must(err error) {
	if err != nil {
		g.s.fatal("placement engine", err)
	}
}

// propose replicates cmd and waits for it to apply.
func (g *group) propose(ctx context.Context, cmd *rangekvpb.PlacementCommand) (any, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	ch := make(chan proposalResult, 1)
	p := &rangeraft.Proposal{ID: g.nextID.Add(1), Cmd: data, Done: func(v any, err error) { ch <- proposalResult{v, err} }}
	select {
	case g.propc <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.value, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("placement: %w before the command applied (it may still apply)", ctx.Err())
	}
}

// readBarrier returns once this member's state reflects every command
// committed before the call (ReadIndex).
func (g *group) readBarrier(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case g.readc <- &rangeraft.Read{Done: func(err error) { ch <- err }}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *group) isLeader() bool { return g.leader.Load() == g.s.cfg.ID }
