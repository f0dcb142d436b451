// The worker loop: one pass over a batch of ranges with work, persisting
// their Raft state with one synced write and applying their committed
// entries with one batch. See doc.go for the order it keeps.

package store

import (
	"fmt"
	"runtime"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// pass is one replica's share of a worker pass.
type pass struct {
	r       *Replica
	rd      raft.Ready
	upd     logstore.AppendUpdate
	snap    *pendingSnapshot
	applied []applyResult
	truncs  []truncation
	// lastApplied is the (index, term) the apply batch recorded.
	lastIndex, lastTerm uint64
	tick                bool
	// desc is the descriptor as of the last staged entry (splits and
	// membership changes in this pass change it).
	desc *rangekvpb.RangeDescriptor
	// needSync: the apply batch holds a split or membership change.
	needSync bool
	splits   []*splitResult
	// removed: this replica applied its own removal.
	removed bool
}

func (s *Store) worker() {
	defer s.wg.Done()
	var buf []workItem
	for {
		items := s.sched.next(buf)
		if items == nil {
			return
		}
		s.processBatch(items)
		s.sched.done(items)
		buf = items
	}
}

func (s *Store) processBatch(items []workItem) {
	passes := make([]*pass, 0, len(items))
	for _, it := range items {
		if k := s.cfg.Knobs; k != nil && k.BeforeRaftPass != nil {
			k.BeforeRaftPass(it.rangeID)
		}
		r := s.replica(it.rangeID)
		if r == nil {
			continue
		}
		r.mu.Lock()
		if r.mu.destroyed {
			r.mu.Unlock()
			continue
		}
		stepped := s.drainInbox(r, it.tick)
		rd, ok := r.mu.rr.Ready()
		// Snapshots raft did not return now never will be: drop their data
		// and placeholders. The one it returned is ingested below.
		s.snaps.settle(stepped, rd.Snapshot)
		if !ok {
			s.noteLeader(r)
			s.maybeLeaveJoint(r)
			if it.tick {
				s.maybeTruncate(r, true)
				s.maybeQuiesceLeader(r)
			}
			r.mu.Unlock()
			continue
		}
		passes = append(passes, &pass{r: r, rd: rd, tick: it.tick})
	}
	if len(passes) == 0 {
		return
	}
	defer func() {
		for _, p := range passes {
			p.r.mu.Unlock()
		}
		// Work that takes other replicas' locks runs after ours are free.
		for _, p := range passes {
			s.finishSplits(p.splits)
			if p.removed {
				s.destroyReplica(p.r, "removed from the range")
			}
		}
	}()

	// A leader's MsgApps may leave before its own append is durable: it
	// counts its own copy only after Advance (Raft thesis §10.2.1).
	for _, p := range passes {
		if p.r.mu.rr.IsLeader() {
			p.rd.Messages = s.sendSome(p.r, p.rd.Messages, func(m *pb.Message) bool { return m.GetType() == pb.MsgApp })
		}
	}

	// Persist every replica's entries, hard state and snapshot in ONE batch.
	// Invariant: nothing else of these Readies is sent before it commits.
	// Without a snapshot among them, the committed entries are applied into
	// the same batch (one commit, one WAL record per pass): they are already
	// durable on a quorum, or are among the entries this batch appends, and
	// the batch is atomic. A snapshot must be in place before entries past
	// it apply, so then the apply gets a batch of its own after.
	merged := true
	for _, p := range passes {
		merged = merged && raft.IsEmptySnap(p.rd.Snapshot)
	}
	var wb *pebble.Batch
	if merged {
		wb = s.db.NewIndexedBatch() // apply reads its own writes (cas, incr)
	} else {
		wb = s.db.NewBatch()
	}
	defer wb.Close()
	mustSync, appended := false, 0
	for _, p := range passes {
		if !raft.IsEmptySnap(p.rd.Snapshot) {
			p.snap = s.ingestSnapshot(p)
			mustSync = true // a snapshot is durable before it is acknowledged
		}
		upd, err := p.r.log.StageAppend(wb, p.rd.Entries, p.rd.HardState)
		if err != nil {
			s.fatal(p.r, "stage raft state", err)
		}
		p.upd = upd
		appended += upd.Appended()
		mustSync = mustSync || p.rd.MustSync
	}
	// Splits and membership changes are synced: their effects (new ranges,
	// removed replicas) must not be lost once acted upon.
	applySync := false
	if merged {
		applySync = s.stageApplies(wb, passes)
	}
	if !wb.Empty() {
		if s.commit(wb, mustSync || applySync, "commit raft state") {
			s.metrics.logSyncs.Inc()
		}
		s.metrics.entriesAppended.Add(float64(appended))
		s.metrics.readyBatches.Inc()
	}
	for _, p := range passes {
		if p.snap != nil {
			s.finishSnapshot(p)
		}
		p.r.log.FinishAppend(p.upd)
		s.sendSome(p.r, p.rd.Messages, func(*pb.Message) bool { return true })
	}

	if !merged {
		// Apply every replica's committed entries in one batch: data and
		// applied index together.
		ab := s.db.NewIndexedBatch()
		defer ab.Close()
		applySync := s.stageApplies(ab, passes)
		if !ab.Empty() {
			s.commit(ab, applySync, "commit apply batch")
		}
	}
	for _, p := range passes {
		s.finishApply(p)
		p.r.mu.rr.Advance(p.rd)
		s.noteLeader(p.r)
		if !p.removed {
			// After Advance: raft's applied index now covers the joint
			// entry, so it accepts the leave (maybeLeaveJoint).
			s.maybeLeaveJoint(p.r)
		}
		s.maybeTruncate(p.r, p.tick)
		if p.tick {
			s.maybeQuiesceLeader(p.r)
		}
		if p.r.mu.rr.HasReady() {
			s.sched.enqueue(p.r.rangeID, flagWork)
		}
	}
}

// commit commits b, synced when sync is set (unless fsync is turned off),
// and reports whether it synced. A failed commit stops the process.
func (s *Store) commit(b *pebble.Batch, sync bool, what string) (synced bool) {
	opts := pebble.NoSync
	if sync && !s.cfg.UnsafeNoFsync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		s.fatal(nil, what, err)
	}
	return opts == pebble.Sync
}

// stageApplies stages every pass's committed entries into b and reports
// whether one of them must be synced.
func (s *Store) stageApplies(b *pebble.Batch, passes []*pass) (needSync bool) {
	for _, p := range passes {
		if len(p.rd.CommittedEntries) > 0 {
			s.stageApply(b, p)
			needSync = needSync || p.needSync
		}
	}
	return needSync
}

// drainInbox feeds the replica everything queued for it since its last
// pass, waking it from quiescence as the rules in quiesce.go say, and
// returns the IDs of the snapshots whose MsgSnap it stepped. Called with
// r.mu held.
func (s *Store) drainInbox(r *Replica, tick bool) (steppedSnaps []uint64) {
	r.inbox.Lock()
	msgs, props, reads, reports, transfer := r.inbox.msgs, r.inbox.proposals, r.inbox.reads, r.inbox.snapReports, r.inbox.transferTo
	wake, leaderDead, campaign, ccs := r.inbox.wake, r.inbox.leaderDead, r.inbox.campaign, r.inbox.confChanges
	r.inbox.confChanges = nil
	r.inbox.msgs, r.inbox.proposals, r.inbox.reads, r.inbox.snapReports, r.inbox.transferTo = nil, nil, nil, nil, 0
	r.inbox.wake, r.inbox.leaderDead, r.inbox.campaign = false, false, false
	r.inbox.Unlock()
	rr := r.mu.rr
	for _, im := range msgs {
		m := im.m
		if im.quiesce && m.GetType() == pb.MsgHeartbeat && s.maybeQuiesceFollower(r, m) {
			continue
		}
		if m.GetType() == pb.MsgTimeoutNow && s.Draining() {
			continue // a draining store takes no leadership (drain.go)
		}
		// A quiesced leader steps late heartbeat responses without waking,
		// unless they make it send something (a follower is behind).
		lateResp := m.GetType() == pb.MsgHeartbeatResp && rr.IsLeader()
		if r.quiesced.Load() && !lateResp {
			s.unquiesce(r)
			if !rr.IsLeader() && m.GetFrom() != rr.Leader() {
				s.wakeLeader(r)
			}
		}
		// A vote while store liveness says our leader's store is down:
		// forget that leader first, or raft ignores the vote for the rest of
		// its (frozen, if we were quiesced) lease and the election waits a
		// full timeout.
		if t := m.GetType(); (t == pb.MsgPreVote || t == pb.MsgVote) && !rr.IsLeader() {
			// A store that just started votes for no one yet: other
			// leaders' read leases may rely on it (lease.go).
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
		}
		if lateResp && r.quiesced.Load() && rr.HasReady() {
			s.unquiesce(r)
		}
	}
	for _, rep := range reports {
		rr.ReportSnapshot(rep.to, rep.ok)
	}
	if wake || leaderDead || campaign || len(props) > 0 || len(reads) > 0 || len(ccs) > 0 || transfer != 0 {
		s.unquiesce(r)
	}
	if leaderDead {
		s.onLeaderDead(r)
	}
	// The right half of a split campaigns at once on the old leader's
	// store, unless it already has a term past the initial one.
	if campaign && !rr.IsLeader() && rr.BasicStatus().GetTerm() <= initTerm {
		_ = rr.Campaign()
	}
	if tick && !r.quiesced.Load() {
		rr.Tick()
		r.mu.leaveJoint.ticks++
		if r.Descriptor() == nil {
			r.uninitTicks.Add(1)
		}
	}
	if len(props) > 0 {
		s.metrics.proposalEntries.Add(float64(rr.ProposeAll(props)))
	}
	for _, cc := range ccs {
		cc.done <- rr.ProposeConfChange(cc.cc)
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
func (s *Store) noteLeader(r *Replica) {
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
	// or a split of the new range waits for the next range heartbeat.
	if lead != 0 && r.reportOnLead.Swap(false) && lead == r.replicaID {
		s.reportRangesSoon()
	}
}

// sendSome sends the messages keep selects and returns the others.
// Called with r.mu held.
func (s *Store) sendSome(r *Replica, msgs []*pb.Message, keep func(*pb.Message) bool) []*pb.Message {
	rest := msgs[:0:0]
	desc := r.Descriptor()
	for _, m := range msgs {
		if !keep(m) {
			rest = append(rest, m)
			continue
		}
		toStore, ok := r.storeOfReplica(m.GetTo())
		if !ok {
			s.metrics.messagesDropped.WithLabelValues("unknown_replica").Inc()
			continue
		}
		typ := m.GetType()
		if k := s.cfg.Knobs; k != nil && k.DropRaftMessage != nil && k.DropRaftMessage(r.rangeID, s.cfg.StoreID, toStore, typ.String()) {
			s.metrics.messagesDropped.WithLabelValues("knob").Inc()
			continue
		}
		s.metrics.messagesSent.WithLabelValues(typ.String()).Inc()
		if typ == pb.MsgSnap {
			s.snaps.send(r, toStore, m)
			continue
		}
		env := &rangekvpb.RaftMessage{RangeId: r.rangeID, FromStore: s.cfg.StoreID, ToStore: toStore, Message: m}
		if desc != nil && (typ == pb.MsgApp || typ == pb.MsgVote || typ == pb.MsgPreVote) {
			env.StartKey = desc.StartKey
		}
		if !s.trans.send(toStore, env) && !r.quiesced.Load() {
			r.mu.rr.ReportUnreachable(m.GetTo())
		}
	}
	return rest
}

// maybeTruncate proposes a log truncation when the policy allows one. It
// decides every few applied entries, and on ticks (force) while some were
// applied since the last decision or a long log is held back: a follower
// whose store just went down stops holding truncation back even if the
// writes have stopped.
// Called with r.mu held.
func (s *Store) maybeTruncate(r *Replica, force bool) {
	n := r.mu.appliesSinceTruncCheck
	if n == 0 || (!force && n < int(s.cfg.LogTruncateThreshold/4)+1) {
		return
	}
	r.mu.appliesSinceTruncCheck = 0
	first, _ := r.log.FirstIndex()
	policy := s.cfg.truncationPolicy()
	policy.Live = func(id uint64) bool {
		st, ok := r.storeOfReplica(id)
		return ok && s.liveness.isLive(st)
	}
	idx, ok := r.mu.rr.TruncationTarget(policy, first)
	if !ok {
		// A log long enough to truncate is being held back (a follower
		// that is behind, maybe on a store about to be declared down):
		// decide again on the next tick even if nothing more applies.
		if last, _ := r.log.LastIndex(); last >= first && last-first+1 >= s.cfg.LogTruncateThreshold {
			r.mu.appliesSinceTruncCheck = 1
		}
		return
	}
	term, err := r.log.Term(idx)
	if err != nil {
		return
	}
	cmd := truncateCommand(idx, term)
	r.mu.rr.Propose(&rangeraft.Proposal{ID: s.newProposalID(), Cmd: cmd, Done: func(any, error) {}})
}

// fatal stops the process: a store that cannot write its engine must not
// go on acknowledging anything.
func (s *Store) fatal(r *Replica, what string, err error) {
	rangeID := uint64(0)
	if r != nil {
		rangeID = r.rangeID
	}
	s.log.Error("fatal engine error", "range", rangeID, "op", what, "err", err)
	if k := s.cfg.Knobs; k != nil && k.OnFatal != nil {
		k.OnFatal(rangeID, what, err)
		runtime.Goexit() // as if the process had died: this goroutine goes no further
	}
	panic(fmt.Sprintf("store %d range %d: %s: %v", s.cfg.StoreID, rangeID, what, err))
}
