// The replica's side of a worker pass: drain the inbox into raft (step,
// tick, propose, read), the replica's driver.Group (pass) that
// rangeraft/driver runs, send messages, publish the leader, and stop the
// process on an engine error. Everything here runs on the worker with
// r.mu held; store_worker.go runs the pass itself.

package store

import (
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// drainInbox feeds the replica everything queued for it since its last
// pass, waking it from quiescence as the rules in replica_quiesce.go say, and
// returns the IDs of the snapshots whose MsgSnap it stepped. Called with
// r.mu held.
func (r *Replica) drainInbox(tick bool) (steppedSnaps []uint64) {
	s := r.store
	r.inbox.Lock()
	msgs, props, reads, reports, transfer := r.inbox.msgs, r.inbox.proposals, r.inbox.reads, r.inbox.snapReports, r.inbox.transferTo
	wake, leaderDead, campaign, ccs := r.inbox.wake, r.inbox.leaderDead, r.inbox.campaign, r.inbox.confChanges
	r.inbox.confChanges = nil
	r.inbox.msgs, r.inbox.proposals, r.inbox.reads, r.inbox.snapReports, r.inbox.transferTo = nil, nil, nil, nil, 0
	r.inbox.wake, r.inbox.leaderDead, r.inbox.campaign = false, false, false
	r.inbox.Unlock()
	rr := r.mu.rr
	clear(r.mu.muted)
	r.mu.muted = r.mu.muted[:0]
	// acked: followers whose append answers this leader stepped.
	var acked []uint64
	for _, im := range msgs {
		m := im.m
		if im.quiesce && m.GetType() == pb.MsgHeartbeat && r.maybeQuiesceFollower(m) {
			continue
		}
		if m.GetType() == pb.MsgTimeoutNow && s.Draining() {
			continue // a draining store takes no leadership (store_drain.go)
		}
		// A quiesced leader steps late heartbeat responses without waking,
		// unless they make it send something (a follower is behind).
		lateResp := m.GetType() == pb.MsgHeartbeatResp && rr.IsLeader()
		if r.quiesced.Load() && !lateResp {
			r.unquiesce()
			if !rr.IsLeader() && m.GetFrom() != rr.Leader() {
				r.wakeLeader()
			}
		}
		// A vote while store liveness says our leader's store is down:
		// forget that leader first, or raft ignores the vote for the rest of
		// its (frozen, if we were quiesced) lease and the election waits a
		// full timeout.
		if t := m.GetType(); (t == pb.MsgPreVote || t == pb.MsgVote) && !rr.IsLeader() {
			// A store that just started votes for no one yet: other
			// leaders' read leases may rely on it (replica_read.go).
			if s.holdingVotes() {
				s.metrics.messagesDropped.WithLabelValues("vote_hold").Inc()
				continue
			}
			if lead := rr.Leader(); lead != 0 && lead != m.GetFrom() {
				if st, ok := r.storeOfReplica(lead); ok && !s.liveness.isLive(st) {
					_ = rr.ForgetLeader()
				}
			}
		}
		if m.GetType() == pb.MsgHeartbeat && len(m.GetContext()) > 0 && r.Descriptor() == nil {
			// Invariant: an uninitialized replica never confirms a read
			// round. Its answer would count toward the leader's read lease,
			// yet its raft state is replaced when the local split installs
			// the range (installRHS) by one that knows no leader and grants
			// votes at once: the promise the lease relies on
			// (rangeraft/lease.go) dies with it. Without the context the
			// answer still tells the leader the replica is alive.
			m = proto.CloneOf(m)
			m.Context = nil
		}
		if m.GetType() == pb.MsgSnap {
			id, ok := s.snaps.admit(r, m)
			if !ok {
				continue
			}
			steppedSnaps = append(steppedSnaps, id)
		}
		if err := rr.Step(m); err != nil {
			s.log.Debug("step", "range", r.rangeID, "type", m.GetType().String(), "err", err)
		} else if im.advance && !rr.IsLeader() && rr.BasicStatus().GetTerm() == m.GetTerm() {
			// Raft took it as its leader's heartbeat of the current term
			// (handleHeartbeat), so this Ready holds its answer: the
			// leader needs none (store_commit_hold.go).
			r.mu.muted = append(r.mu.muted, m.GetFrom())
		} else if m.GetType() == pb.MsgAppResp && !m.GetReject() && rr.IsLeader() && !slices.Contains(acked, m.GetFrom()) {
			acked = append(acked, m.GetFrom())
		}
		if lateResp && r.quiesced.Load() && rr.HasReady() {
			r.unquiesce()
		}
	}
	r.upgradeHeldAppends(acked)
	for _, rep := range reports {
		rr.ReportSnapshot(rep.to, rep.ok)
	}
	if wake || leaderDead || campaign || len(props) > 0 || len(reads) > 0 || len(ccs) > 0 || transfer != 0 {
		r.unquiesce()
	}
	if leaderDead {
		r.onLeaderDead()
	}
	// The right half of a split campaigns at once on the old leader's
	// store, unless it already has a term past the initial one.
	if campaign && !rr.IsLeader() && rr.BasicStatus().GetTerm() <= driver.InitTerm {
		_ = rr.Campaign()
	}
	if tick && !r.quiesced.Load() {
		rr.Tick()
		r.maybeRecampaign()
		r.mu.leaveJoint.ticks++
		if r.Descriptor() == nil {
			r.uninitTicks.Add(1)
		}
	}
	if len(props) > 0 {
		s.metrics.proposalEntries.Add(float64(rr.ProposeAll(props)))
	}
	for _, cc := range ccs {
		handOff(s, cc.done, rr.ProposeConfChange(cc.cc))
	}
	if transfer != 0 {
		if err := rr.TransferLeader(transfer); err != nil {
			s.log.Debug("leader transfer refused", "range", r.rangeID, "to", transfer, "err", err)
		}
	}
	for _, rd := range reads {
		rr.ReadIndex(rd)
	}
	rr.FlushReads()
	return steppedSnaps
}

// noteLeader publishes leadership changes. Called with r.mu held.
func (r *Replica) noteLeader() {
	s := r.store
	bs := r.mu.rr.BasicStatus()
	if old := r.term.Swap(bs.GetTerm()); bs.GetTerm() > old && (bs.RaftState == raft.StateCandidate || bs.Lead == r.replicaID) {
		// A new term this replica is candidate or leader in is one it
		// campaigned for (a follower only learns a term from others).
		s.metrics.elections.Inc()
	}
	lead := r.mu.rr.Leader()
	old := r.leader.Swap(lead)
	if old == lead {
		return
	}
	st, _ := r.storeOfReplica(lead)
	r.leaderStore.Store(st)
	s.metrics.leaderChanges.Inc()
	if old == r.replicaID {
		s.metrics.leaders.Dec()
	}
	if lead == r.replicaID {
		s.metrics.leaders.Inc()
	}
	// A split's right half just elected its first leader here: placement
	// must learn the new range, its leader and the shrunk left half now,
	// or a split of the new range waits for the next range report.
	if lead != 0 && r.reportOnLead.Swap(false) && lead == r.replicaID {
		s.reportRangesSoon()
	}
}

// send sends msgs to their replicas (snapshots through the snapshot
// sender), through out when set: the pass's outbox, which the pass
// flushes (store_transport.go). Called with r.mu held.
func (r *Replica) send(msgs []*pb.Message, out *outbox) {
	s := r.store
	desc := r.Descriptor()
	for _, m := range msgs {
		toStore, ok := r.storeOfReplica(m.GetTo())
		if !ok {
			s.metrics.messagesDropped.WithLabelValues("unknown_replica").Inc()
			continue
		}
		typ := m.GetType()
		if typ == pb.MsgHeartbeatResp && len(m.GetContext()) == 0 && r.unmute(m.GetTo()) {
			s.metrics.advanceAnswersDropped.Inc()
			continue
		}
		if typ == pb.MsgHeartbeat && r.mu.rr.ElideHeartbeat(m) {
			s.metrics.heartbeatsElided.Inc() // the follower answered an append this interval
			continue
		}
		if k := s.cfg.Knobs; k != nil && k.DropRaftMessage != nil && k.DropRaftMessage(r.rangeID, s.cfg.StoreID, toStore, typ.String()) {
			s.metrics.messagesDropped.WithLabelValues("knob").Inc()
			continue
		}
		s.metrics.sent(typ).Inc()
		var advance bool
		if typ == pb.MsgApp && len(m.GetEntries()) == 0 {
			s.metrics.commitAppends.Inc()
			var hb *pb.Message
			if hb, advance = r.mu.rr.CommitAdvance(m); advance {
				s.metrics.commitAdvances.Inc()
				m = hb
			}
		}
		if typ == pb.MsgSnap {
			s.snaps.send(r, toStore, m)
			continue
		}
		env := &rangekvpb.RaftMessage{RangeId: r.rangeID, FromStore: s.cfg.StoreID, ToStore: toStore, Message: m, CommitAdvance: advance}
		if desc != nil && !advance && (typ == pb.MsgApp || typ == pb.MsgVote || typ == pb.MsgPreVote) {
			env.StartKey = desc.StartKey
		}
		if out != nil {
			out.add(toStore, env, r)
			continue
		}
		if !s.trans.send(toStore, env) && !r.quiesced.Load() {
			r.mu.rr.ReportUnreachable(m.GetTo())
		}
	}
}

// upgradeHeldAppends turns the commit-only appends the transport holds
// for the followers in acked, whose append answers this leader just
// stepped, into commit advances where raft's progress now allows it
// (store_commit_hold.go). Called with r.mu held.
func (r *Replica) upgradeHeldAppends(acked []uint64) {
	s := r.store
	if len(acked) == 0 || s.trans.hold == 0 || !r.mu.rr.IsLeader() {
		return
	}
	for _, id := range acked {
		st, ok := r.storeOfReplica(id)
		if ok && s.trans.upgradeHeld(st, r.rangeID, id, r.mu.rr.CommitAdvance) {
			s.metrics.commitAdvances.Inc()
		}
	}
}

// unmute reports whether a heartbeat answer to leader must be dropped,
// being the answer to a commit advance this pass stepped, and if so
// consumes that advance's entry. Called with r.mu held.
func (r *Replica) unmute(leader uint64) bool {
	for i, id := range r.mu.muted {
		if id == leader {
			last := len(r.mu.muted) - 1
			r.mu.muted[i] = r.mu.muted[last]
			r.mu.muted = r.mu.muted[:last]
			return true
		}
	}
	return false
}

// pass is one replica's share of a worker pass (store_worker.go): the
// driver.Group rangeraft/driver runs, and what the pass staged for the
// replica until it is made true. Its methods run on the worker with r.mu
// held, in the order of rangeraft/driver's doc.
type pass struct {
	r    *Replica
	tick bool
	// out is the pass's outbox: Send queues there, the pass flushes it.
	out *outbox
	// upd is this pass's append to the log, staged and maybe not yet
	// finished (a truncation applied in the same batch counts it).
	upd  driver.AppendUpdate
	snap *pendingSnapshot
	// applied and truncs: staged by the state machine, made true by
	// finishApply.
	applied []applyResult
	truncs  []truncation
	// lastIndex, lastTerm: the (index, term) the apply batch recorded.
	lastIndex, lastTerm uint64
	// desc is the descriptor as of the last staged entry (splits and
	// membership changes in this pass change it).
	desc *rangekvpb.RangeDescriptor
	// needSync: the apply batch holds a split or membership change.
	needSync bool
	splits   []*splitResult
	// removed: this replica applied its own removal.
	removed bool
}

var _ driver.Group = (*pass)(nil)

// Raft implements driver.Group.
func (p *pass) Raft() *rangeraft.Replica { return p.r.mu.rr }

// Log implements driver.Group.
func (p *pass) Log() *driver.Log { return p.r.log }

// IngestSnapshot ingests the snapshot's data into the engine
// (replica_snapshot.go).
func (p *pass) IngestSnapshot(_ *pebble.Batch, rd *raft.Ready) {
	p.snap = p.r.ingestSnapshot(rd)
}

// FinishSnapshot implements driver.Group.
func (p *pass) FinishSnapshot(*raft.Ready) { p.r.finishSnapshot(p) }

// StageApply stages the committed entries through the KV state machine.
// Splits and membership changes are synced: their effects (new ranges,
// removed replicas) must not be lost once acted upon.
func (p *pass) StageApply(b *pebble.Batch, ents []*pb.Entry, pending driver.AppendUpdate) (sync bool) {
	p.upd = pending
	p.r.stateMachine().stageApply(b, p, ents)
	return p.needSync
}

// FinishApply implements driver.Group.
func (p *pass) FinishApply() { p.r.stateMachine().finishApply(p) }

// Send implements driver.Group.
func (p *pass) Send(msgs []*pb.Message) { p.r.send(msgs, p.out) }

// AfterAdvance publishes the leader, leaves a joint configuration,
// truncates, quiesces and re-queues the replica as its state says.
func (p *pass) AfterAdvance() {
	r := p.r
	r.noteLeader()
	if !p.removed {
		// After Advance: raft's applied index now covers the joint
		// entry, so it accepts the leave (maybeLeaveJoint).
		r.maybeLeaveJoint()
	}
	r.maybeTruncate(p.tick)
	if p.tick {
		r.maybeQuiesceLeader()
	}
	if r.mu.rr.HasReady() {
		r.store.sched.enqueue(r.rangeID, flagWork)
	}
}

// fatal stops the process: a store that cannot write its engine must not
// go on acknowledging anything.
func (r *Replica) fatal(what string, err error) {
	r.store.fatalRange(r.rangeID, what, err)
}

// must stops the process on an engine error: a replica that cannot apply
// must not go on.
func (r *Replica) must(err error) {
	if err != nil {
		r.fatal("apply", err)
	}
}
