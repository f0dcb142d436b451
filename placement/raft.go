// The placement Raft group: one group, so one goroutine drives it (the
// per-range cost rules of stores do not apply here). It persists Raft state
// and applies committed commands to the metadata state machine in the
// placement engine, in etcd raft's order: persist (synced) → send → apply →
// advance.

package placement

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/logadapt"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// groupID is the placement group's ID in its own engine.
const groupID = 1

// Initial Raft state of the placement group (as for ranges): applied =
// truncated = commit = 10 at term 5, identical on every member.
const (
	initIndex = 10
	initTerm  = 5
)

type proposalResult struct {
	value any
	err   error
}

type driver struct {
	s      *Server
	db     *pebble.DB
	log    *logstore.RangeLog
	rr     *rangeraft.Replica
	meta   *meta
	nextID atomic.Uint64

	recvc chan []*pb.Message
	propc chan *rangeraft.Proposal
	readc chan *rangeraft.Read

	leader atomic.Uint64
	term   atomic.Uint64
	// heard: when each member last sent us a message (for status).
	progressMu sync.Mutex
	heard      map[uint64]time.Time
	applied    uint64
	sinceTr    int
	members    *rangekvpb.RangeDescriptor
}

// snapStorage serves raft snapshots of the whole metadata state.
type snapStorage struct {
	*logstore.RangeLog
	d *driver
}

func (s snapStorage) Snapshot() (*pb.Snapshot, error) {
	snap, err := s.RangeLog.Snapshot()
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(s.d.meta.snapshot())
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

// openDriver loads (or initializes) the placement group from db.
func openDriver(s *Server, db *pebble.DB) (*driver, error) {
	d := &driver{s: s, db: db, recvc: make(chan []*pb.Message, 1024), propc: make(chan *rangeraft.Proposal, 4096), readc: make(chan *rangeraft.Read, 4096)}
	var seed [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, seed[:]); err != nil {
		return nil, err
	}
	d.nextID.Store(binary.BigEndian.Uint64(seed[:]))
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
		for _, kv := range []struct {
			k []byte
			m proto.Message
		}{
			{keys.DescriptorKey(groupID), members},
			{keys.AppliedStateKey(groupID), &rangekvpb.AppliedState{Index: initIndex, Term: initTerm}},
			{keys.TruncatedStateKey(groupID), &rangekvpb.TruncatedState{Index: initIndex, Term: initTerm}},
			{keys.HardStateKey(groupID), &pb.HardState{Term: proto.Uint64(initTerm), Commit: proto.Uint64(initIndex)}},
		} {
			if err := set(b, kv.k, kv.m); err != nil {
				return nil, err
			}
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	d.members = members
	var applied rangekvpb.AppliedState
	if v, c, err := db.Get(keys.AppliedStateKey(groupID)); err == nil {
		err = proto.Unmarshal(v, &applied)
		c.Close()
		if err != nil {
			return nil, err
		}
	}
	if d.meta, err = loadMeta(db); err != nil {
		return nil, err
	}
	if d.log, err = logstore.Load(db, groupID, confStateOf(members), &applied); err != nil {
		return nil, err
	}
	d.applied = applied.Index
	election := int(s.cfg.ElectionTimeout / s.cfg.HeartbeatInterval)
	d.rr, err = rangeraft.New(rangeraft.Config{
		ReplicaID:            s.cfg.ID,
		ElectionTicks:        election,
		HeartbeatTicks:       1,
		ProposalTimeoutTicks: 10 * election,
		Applied:              applied.Index,
		AppliedTerm:          applied.Term,
		ReadContextSeed:      binary.BigEndian.Uint64(seed[:]) ^ 0x5a5a,
		Storage:              snapStorage{d.log, d},
		Logger:               logadapt.NewRaft(s.log),
		Clock:                s.now,
	})
	return d, err
}

// run drives the group until ctx ends.
func (d *driver) run(ctx context.Context) {
	t := d.s.cfg.Clock.NewTicker(d.s.cfg.HeartbeatInterval)
	defer t.Stop()
	defer d.rr.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			d.rr.Tick()
		case msgs := <-d.recvc:
			d.step(msgs)
		case p := <-d.propc:
			d.rr.Propose(p)
		case r := <-d.readc:
			d.rr.ReadIndex(r)
		}
		// Take whatever else is queued, then one Ready cycle.
	drain:
		for {
			select {
			case msgs := <-d.recvc:
				d.step(msgs)
			case p := <-d.propc:
				d.rr.Propose(p)
			case r := <-d.readc:
				d.rr.ReadIndex(r)
			default:
				break drain
			}
		}
		d.rr.FlushReads()
		d.handleReady()
	}
}

func (d *driver) step(msgs []*pb.Message) {
	for _, m := range msgs {
		if err := d.rr.Step(m); err != nil {
			d.s.log.Debug("placement raft step", "err", err)
		}
	}
}

func (d *driver) handleReady() {
	for {
		rd, ok := d.rr.Ready()
		if !ok {
			break
		}
		// Persist: entries, hard state and a snapshot in one batch.
		b := d.db.NewBatch()
		var snapMeta *pb.SnapshotMetadata
		if !raft.IsEmptySnap(rd.Snapshot) {
			snapMeta = rd.Snapshot.GetMetadata()
			var st rangekvpb.PlacementSnapshot
			if err := proto.Unmarshal(rd.Snapshot.GetData(), &st); err != nil {
				d.s.fatal("decode placement snapshot", err)
			}
			d.must(d.meta.restore(b, &st))
			d.must(set(b, keys.AppliedStateKey(groupID), &rangekvpb.AppliedState{Index: snapMeta.GetIndex(), Term: snapMeta.GetTerm()}))
			d.must(d.log.StageSnapshot(b, snapMeta.GetIndex(), snapMeta.GetTerm()))
		}
		upd, err := d.log.StageAppend(b, rd.Entries, rd.HardState)
		d.must(err)
		opts := pebble.NoSync
		if rd.MustSync || snapMeta != nil {
			opts = pebble.Sync
		}
		d.must(b.Commit(opts))
		b.Close()
		if snapMeta != nil {
			d.log.FinishSnapshot(snapMeta.GetIndex(), snapMeta.GetTerm(), snapMeta.GetConfState())
			d.rr.AppliedSnapshot(snapMeta.GetIndex(), snapMeta.GetTerm())
			d.applied = snapMeta.GetIndex()
		}
		d.log.FinishAppend(upd)
		d.s.trans.send(rd.Messages)
		d.apply(rd.CommittedEntries)
		d.rr.Advance(rd)
		bs := d.rr.BasicStatus()
		if old := d.leader.Swap(bs.Lead); old != bs.Lead {
			d.s.onLeaderChange(bs.Lead == d.s.cfg.ID)
		}
		d.term.Store(bs.GetTerm())
		d.maybeTruncate()
	}
}

func (d *driver) apply(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
	type res struct {
		e   *pb.Entry
		v   any
		err error
	}
	var results []res
	b := d.db.NewBatch()
	defer b.Close()
	var last *pb.Entry
	var truncs [][2]uint64
	for _, e := range ents {
		if e.GetIndex() <= d.applied {
			continue
		}
		last = e
		r := res{e: e}
		if e.GetType() == pb.EntryNormal && len(e.GetData()) > 0 {
			_, data, err := rangeraft.DecodeEntry(e.GetData())
			d.must(err)
			var cmd rangekvpb.PlacementCommand
			d.must(proto.Unmarshal(data, &cmd))
			if tr := cmd.GetTruncateLog(); tr != nil {
				ok, err := d.log.StageTruncate(b, tr.Index, tr.Term, logstore.AppendUpdate{}) // appends are finished before apply
				d.must(err)
				if ok {
					truncs = append(truncs, [2]uint64{tr.Index, tr.Term})
				}
			} else {
				r.v, r.err = d.meta.apply(b, &cmd)
			}
		}
		results = append(results, r)
	}
	if last == nil {
		return
	}
	d.must(set(b, keys.AppliedStateKey(groupID), &rangekvpb.AppliedState{Index: last.GetIndex(), Term: last.GetTerm()}))
	d.must(b.Commit(pebble.NoSync))
	for _, t := range truncs {
		d.log.FinishTruncate(t[0], t[1])
	}
	d.applied = last.GetIndex()
	d.log.SetApplied(last.GetIndex(), last.GetTerm(), nil)
	for _, r := range results {
		d.rr.Applied(r.e, r.v, r.err)
	}
	d.rr.FinishApply()
	d.sinceTr += len(results)
}

func (d *driver) maybeTruncate() {
	if d.sinceTr < 1000 {
		return
	}
	d.sinceTr = 0
	first, _ := d.log.FirstIndex()
	idx, ok := d.rr.TruncationTarget(rangeraft.TruncationPolicy{ThresholdEntries: 5000, MaxEntries: 50000}, first)
	if !ok {
		return
	}
	term, err := d.log.Term(idx)
	if err != nil {
		return
	}
	data, _ := proto.Marshal(&rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_TruncateLog{TruncateLog: &rangekvpb.TruncateLogCmd{Index: idx, Term: term}}})
	d.rr.Propose(&rangeraft.Proposal{ID: d.nextID.Add(1), Cmd: data, Done: func(any, error) {}})
}

func (d *driver) must(err error) {
	if err != nil {
		d.s.fatal("placement engine", err)
	}
}

// propose replicates cmd and waits for it to apply.
func (d *driver) propose(ctx context.Context, cmd *rangekvpb.PlacementCommand) (any, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	ch := make(chan proposalResult, 1)
	p := &rangeraft.Proposal{ID: d.nextID.Add(1), Cmd: data, Done: func(v any, err error) { ch <- proposalResult{v, err} }}
	select {
	case d.propc <- p:
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
func (d *driver) readBarrier(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case d.readc <- &rangeraft.Read{Done: func(err error) { ch <- err }}:
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

func (d *driver) isLeader() bool { return d.leader.Load() == d.s.cfg.ID }

// transport sends placement Raft messages to peers: one queue and one
// goroutine per peer, unary batches.
type transport struct {
	s     *Server
	mu    sync.Mutex
	peers map[uint64]chan *pb.Message
	wg    sync.WaitGroup
	ctx   context.Context
}

func (t *transport) send(msgs []*pb.Message) {
	for _, m := range msgs {
		ch := t.peer(m.GetTo())
		if ch == nil {
			continue
		}
		select {
		case ch <- m:
		default: // raft retries
		}
	}
}

func (t *transport) peer(id uint64) chan *pb.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.peers[id]; ok {
		return ch
	}
	addr, ok := t.s.cfg.InitialCluster[id]
	if !ok || t.ctx.Err() != nil {
		return nil
	}
	ch := make(chan *pb.Message, 4096)
	t.peers[id] = ch
	t.wg.Add(1)
	go t.run(id, addr, ch)
	return ch
}

func (t *transport) run(id uint64, addr string, ch chan *pb.Message) {
	defer t.wg.Done()
	conn, err := t.s.dial(addr)
	if err != nil {
		t.s.log.Error("dial placement peer", "peer", id, "err", err)
		return
	}
	defer conn.Close()
	client := rangekvpb.NewPlacementRaftClient(conn)
	for {
		var batch []*pb.Message
		select {
		case <-t.ctx.Done():
			return
		case m := <-ch:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < 1024 {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
		_, err := client.Send(ctx, &rangekvpb.PlacementRaftBatch{From: t.s.cfg.ID, Messages: batch})
		cancel()
		if err != nil {
			t.s.log.Debug("send to placement peer", "peer", id, "err", err)
		}
	}
}

type raftServer struct {
	rangekvpb.UnimplementedPlacementRaftServer
	s *Server
}

func (r *raftServer) Send(_ context.Context, b *rangekvpb.PlacementRaftBatch) (*rangekvpb.PlacementRaftAck, error) {
	r.s.drv.heardFrom(b.From)
	select {
	case r.s.drv.recvc <- b.Messages:
	default: // raft retries
	}
	return &rangekvpb.PlacementRaftAck{}, nil
}

// reachable reports whether a member sent this one a message within two
// election timeouts (leaders and followers exchange heartbeats).
func (d *driver) reachable(id uint64) bool {
	if id == d.s.cfg.ID {
		return true
	}
	d.progressMu.Lock()
	defer d.progressMu.Unlock()
	t, ok := d.heard[id]
	return ok && d.s.now().Sub(t) < 2*d.s.cfg.ElectionTimeout
}

// heardFrom records a message from a member.
func (d *driver) heardFrom(id uint64) {
	d.progressMu.Lock()
	defer d.progressMu.Unlock()
	if d.heard == nil {
		d.heard = map[uint64]time.Time{}
	}
	d.heard[id] = d.s.now()
}
