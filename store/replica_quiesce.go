// Quiescence: an idle range stops ticking on every replica, so that ten
// thousand idle ranges cost almost nothing (MULTIRAFT.md §3).
//
// Invariants:
//   - a leader quiesces only when it is not transferring, has nothing
//     pending, !HasReady, Applied == Commit == LastIndex and every replica
//     of the descriptor is at Match == LastIndex and not being sent a
//     snapshot, except replicas on stores liveness reports down;
//   - a follower quiesces only on a quiesce heartbeat whose term, commit and
//     leader match its own, with nothing pending; it does not step it;
//     otherwise it steps it and wakes the leader;
//   - a quiesced leader steps late heartbeat responses without waking
//     unless they make it send something;
//   - any other message, proposal or read wakes a replica; a follower woken
//     by anyone but its leader wakes the leader;
//   - quiesced replicas are not ticked and get no ReportUnreachable;
//   - a leader that quiesced past a lagging replica on a down store is
//     woken every reprobeTicks: the store may be back with nothing to say
//     to this one (no replica led from here exists on it yet, e.g. a
//     learner whose first messages a partition lost), and only this
//     leader's messages give it a reason to answer.

package store

import (
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func (r *Replica) unquiesce() {
	s := r.store
	if r.quiesced.CompareAndSwap(true, false) {
		s.metrics.quiescent.Dec()
		s.setAwake(r.rangeID, true)
	}
}

func (r *Replica) quiesce() {
	s := r.store
	if r.quiesced.CompareAndSwap(false, true) {
		s.metrics.quiescent.Inc()
		s.setAwake(r.rangeID, false)
	}
}

// maybeQuiesceLeader quiesces an idle leader and tells its followers.
// Called with r.mu held, after a pass that ticked.
func (r *Replica) maybeQuiesceLeader() {
	s := r.store
	rr := r.mu.rr
	desc := r.Descriptor()
	if desc == nil || !rr.IsLeader() || r.quiesced.Load() || rr.HasReady() || rr.PendingProposals() > 0 || rr.PendingReads() > 0 || !r.inboxEmpty() {
		return
	}
	if k := s.cfg.Knobs; k != nil && k.NoQuiesce {
		return
	}
	// This runs on every tick of every awake leader: the cheap checks
	// first, and raft's progress visited in place (Status copies it).
	st := rr.BasicStatus()
	last, _ := r.log.LastIndex()
	if st.LeadTransferee != 0 || st.Applied != st.GetCommit() || st.GetCommit() != last {
		return
	}
	type progress struct {
		id, match uint64
		snapshot  bool
	}
	var buf [7]progress
	prs := buf[:0]
	rr.WithProgress(func(id uint64, pr tracker.Progress) {
		prs = append(prs, progress{id, pr.Match, pr.State == tracker.StateSnapshot})
	})
	type beat struct {
		store uint64
		m     *pb.Message
	}
	var beats []beat
	lagging := false
	for _, rd := range desc.Replicas {
		if rd.ReplicaId == r.replicaID {
			continue
		}
		i := slices.IndexFunc(prs, func(p progress) bool { return p.id == rd.ReplicaId })
		if i < 0 {
			return
		}
		pr := prs[i]
		if pr.match != last || pr.snapshot {
			if s.liveness.isLive(rd.StoreId) {
				return
			}
			lagging = true
			continue // lagging on a down store: its return, or the next reprobe, wakes the range
		}
		beats = append(beats, beat{rd.StoreId, &pb.Message{
			Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(r.replicaID), To: proto.Uint64(rd.ReplicaId),
			Term: proto.Uint64(st.GetTerm()), Commit: proto.Uint64(min(pr.match, st.GetCommit())),
		}})
	}
	if len(rr.Status().Config.Voters[1]) > 0 {
		return // joint: left first (maybeLeaveJoint)
	}
	r.quiesce()
	r.quiescedLagging.Store(lagging)
	for _, b := range beats {
		s.trans.sendQuiesce(b.store, r.rangeID, b.m)
	}
}

// maybeQuiesceFollower handles a leader's quiesce heartbeat: it reports
// true (and quiesces) when the follower agrees with the leader on term,
// commit and leadership and has nothing pending; the heartbeat is then not
// stepped. Called with r.mu held.
func (r *Replica) maybeQuiesceFollower(m *pb.Message) bool {
	s := r.store
	rr := r.mu.rr
	bs := rr.BasicStatus()
	if bs.RaftState != raft.StateFollower || bs.GetTerm() != m.GetTerm() || bs.Lead != m.GetFrom() ||
		bs.GetCommit() != m.GetCommit() || rr.PendingProposals() > 0 || rr.PendingReads() > 0 {
		// Disagree: the leader must not stay quiesced while we tick.
		s.trans.send(storeOfMsg(r, m), &rangekvpb.RaftMessage{RangeId: r.rangeID, FromStore: s.cfg.StoreID, Wake: true})
		return false
	}
	r.quiesce()
	return true
}

func storeOfMsg(r *Replica, m *pb.Message) uint64 {
	st, _ := r.storeOfReplica(m.GetFrom())
	return st
}

// wakeLeader asks the range's leader (on another store) to stop being
// quiesced.
func (r *Replica) wakeLeader() {
	s := r.store
	lead := r.mu.rr.Leader()
	if lead == 0 || lead == r.replicaID {
		return
	}
	if st, ok := r.storeOfReplica(lead); ok {
		s.trans.send(st, &rangekvpb.RaftMessage{RangeId: r.rangeID, FromStore: s.cfg.StoreID, ToStore: st, Wake: true})
	}
}

// onLeaderDead runs when liveness says the leader's store is down: forget
// the leader (so votes are granted without waiting out its lease) and, on
// the replica with the lowest ID among voters on live stores, campaign.
// Called with r.mu held.
func (r *Replica) onLeaderDead() {
	s := r.store
	rr := r.mu.rr
	desc := r.Descriptor()
	if desc == nil || rr.IsLeader() {
		return
	}
	lead := rr.Leader()
	if st, ok := r.storeOfReplica(lead); lead != 0 && ok && s.liveness.isLive(st) {
		return // a new leader already took over
	}
	deadStore, _ := r.storeOfReplica(lead)
	_ = rr.ForgetLeader()
	lowest := uint64(0)
	for _, rd := range desc.Replicas {
		if rd.Role == rangekvpb.ReplicaRole_LEARNER || !s.liveness.isLive(rd.StoreId) {
			continue
		}
		if lowest == 0 || rd.ReplicaId < lowest {
			lowest = rd.ReplicaId
		}
	}
	if lowest == r.replicaID && !s.Draining() {
		_ = rr.Campaign()
		if lead != 0 && deadStore != 0 {
			r.mu.recampaign.deadStore, r.mu.recampaign.ticks = deadStore, 0
		}
	}
}

// recampaignTicks is how often (in ticks) the designated campaigner of a
// range whose leader's store died campaigns again while no leader is
// known: about how long the other survivors may take to see the death
// (store liveness is checked every tick, fed every half tick).
const recampaignTicks = 2

// maybeRecampaign runs on each tick of an awake replica. After
// onLeaderDead campaigned, a survivor that had not seen the death yet
// ignored the pre-vote (it still honoured the dead leader's lease) and
// sends no answer; raft alone would campaign again only after a
// randomized election timeout, which made some failovers take 2.8
// election timeouts instead of 1.2 (docs/benchmarks.md, Multi-Raft
// problem 2). So the campaigner tries again every recampaignTicks while it
// knows no leader and the dead store stays down, for at most two election
// timeouts, unless it is a candidate. Pre-votes change no term, so a retry
// disturbs no one. Called with r.mu held.
func (r *Replica) maybeRecampaign() {
	rc := &r.mu.recampaign
	if rc.deadStore == 0 {
		return
	}
	s := r.store
	rr := r.mu.rr
	rc.ticks++
	election, _, _, _ := s.cfg.raftTicks()
	if rr.Leader() != 0 || rr.IsLeader() || s.liveness.isLive(rc.deadStore) || rc.ticks > 2*election || s.Draining() || r.Descriptor() == nil {
		rc.deadStore, rc.ticks = 0, 0
		return
	}
	// Not while a candidate: its real election is under way (it won the
	// pre-vote), and campaigning would start over with a pre-vote and
	// throw the votes in flight away; on a busy machine, where a round
	// takes longer than recampaignTicks, it never finished.
	if rc.ticks%recampaignTicks == 0 && rr.Brief().State != raft.StateCandidate {
		_ = rr.Campaign()
	}
}
