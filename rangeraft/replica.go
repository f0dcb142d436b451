package rangeraft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Config configures one Replica. Durations are in ticks; the owner decides
// how long a tick is.
type Config struct {
	// ReplicaID is this replica's Raft ID (non-zero).
	ReplicaID uint64
	// ElectionTicks and HeartbeatTicks as in raft.Config.
	ElectionTicks  int
	HeartbeatTicks int
	// ProposalTimeoutTicks: a proposal still pending after this many ticks
	// completes with an AmbiguousError.
	ProposalTimeoutTicks int
	// ReadTimeoutTicks: a read without a read index after this many ticks
	// completes with ErrReadTimeout (safe to retry).
	ReadTimeoutTicks int
	// Applied and AppliedTerm: the state machine's durable applied index and
	// the term of that entry, read at start.
	Applied     uint64
	AppliedTerm uint64
	// ReadContextSeed makes read contexts unique across replicas and
	// restarts (take it from a random source at start).
	ReadContextSeed uint64
	// Storage is the log storage (e.g. logstore.RangeLog).
	Storage raft.Storage
	// Logger receives raft's logs; nil discards them.
	Logger raft.Logger
	// LeaseDuration is how long after a ReadIndex round started the leader
	// may serve lease reads (see lease.go and LeaseDurationFor); 0 disables
	// lease reads (ReadLease then always takes a ReadIndex round).
	LeaseDuration time.Duration
	// Clock is a monotonic clock for leases; nil uses time.Now.
	Clock func() time.Time
	// HeartbeatInterval is the clock time of HeartbeatTicks ticks; when
	// set, ElideHeartbeat may leave out heartbeats to followers that
	// answered an append within it (heartbeat_elide.go). 0: never.
	HeartbeatInterval time.Duration

	MaxSizePerMsg             uint64
	MaxInflightMsgs           int
	MaxUncommittedEntriesSize uint64
	MaxCommittedSizePerReady  uint64
}

func (c *Config) setDefaults() {
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.ProposalTimeoutTicks == 0 {
		c.ProposalTimeoutTicks = 10 * c.ElectionTicks
	}
	if c.ReadTimeoutTicks == 0 {
		c.ReadTimeoutTicks = 2 * c.ElectionTicks
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxUncommittedEntriesSize == 0 {
		c.MaxUncommittedEntriesSize = 64 << 20
	}
	if c.MaxCommittedSizePerReady == 0 {
		c.MaxCommittedSizePerReady = 16 << 20
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Proposal is a command waiting to be applied. Done is called exactly once,
// from the goroutine driving the Replica, with the state machine's result or
// an error (*NotLeaderError, ErrBusy, ErrStaleCommand, *AmbiguousError).
type Proposal struct {
	ID   uint64
	Cmd  []byte
	Done func(result any, err error)
	// Batchable lets ProposeAll carry the proposal in one entry with
	// others proposed with it: for commands whose effect does not depend
	// on their own log index (they then share one).
	Batchable bool

	index, term uint64 // log position once appended
	age         int    // ticks pending
}

// ReadMode says how a read is confirmed.
type ReadMode int

const (
	// ReadLeader: a ReadIndex round on the leader (the default).
	ReadLeader ReadMode = iota
	// ReadLease: on the leader, served at once while it holds a lease
	// (lease.go), else a ReadIndex round (which renews the lease).
	ReadLease
	// ReadFollower: on any replica; a follower asks the leader for a read
	// index (raft forwards MsgReadIndex) and waits until it applied it.
	ReadFollower
)

// ReadPath says how a read was confirmed (for metrics).
type ReadPath int

const (
	PathReadIndex ReadPath = iota // a ReadIndex round on the leader
	PathLease                     // the leader's lease, no round trip
	PathFollower                  // a read index from the leader, served by a follower
)

func (p ReadPath) String() string {
	switch p {
	case PathLease:
		return "lease"
	case PathFollower:
		return "follower"
	}
	return "read_index"
}

// Read is a linearizable read waiting for its read index to be applied.
// Done(nil) means: the state machine now reflects every write that completed
// before the read arrived; read it now. Done is called exactly once.
type Read struct {
	Mode ReadMode
	Done func(err error)
	// Path is set before Done(nil): how the read was confirmed.
	Path ReadPath
}

type readRound struct {
	reads []*Read
	index uint64
	age   int
	path  ReadPath
	// For rounds issued by the leader: the round's start, term and lease
	// epoch; a quorum answer renews the lease only if renew is set and
	// the epoch is still current.
	leader bool
	start  time.Time
	term   uint64
	epoch  uint64
	renew  bool
}

// Replica is one member of one Raft group. It is not safe for concurrent
// use: its owner serializes every call.
type Replica struct {
	cfg Config
	rn  *raft.RawNode

	// proposals by ID; byIndex by log position once seen in Ready.Entries.
	proposals map[uint64]*Proposal
	byIndex   map[uint64][]*Proposal // one entry may carry several

	pendingReads []*Read               // not yet in a ReadIndex round
	readRounds   map[string]*readRound // issued, awaiting a ReadState
	waiting      []*readRound          // have an index, awaiting apply
	readSeq      uint64

	// lease is the leader's read lease; leaseEpoch counts the times it was
	// voided (a round renews it only if no void happened since it began).
	lease      Lease
	leaseEpoch uint64
	// timeoutNowTerm is the last term in which this replica, as leader,
	// sent a MsgTimeoutNow. Invariant: no lease is granted in that term.
	// The message may sit in a queue past raft's LeadTransferee (cleared
	// after an election timeout) and still make its target win a forced
	// election that ignores the followers' leases; only a term change
	// (which every campaign causes) proves it spent.
	timeoutNowTerm uint64

	// Invariant: applied <= commit; appliedTerm is the term of entry applied.
	applied, appliedTerm uint64
	soft                 raft.SoftState
	// term and commit are the hard state's as last handed out in a Ready
	// (or loaded at New): what Brief reports without raft's copies.
	term, commit uint64
	closed       bool

	// answers holds, per follower, when this leader last stepped an
	// accepted append answer (heartbeat_elide.go).
	answers []answer
}

// New creates a replica over storage. An invalid config returns an error
// (raft would panic).
func New(cfg Config) (*Replica, error) {
	cfg.setDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger{}
	}
	rc := &raft.Config{
		ID:                        cfg.ReplicaID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   cfg.Storage,
		Applied:                   cfg.Applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  cfg.MaxCommittedSizePerReady,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedEntriesSize,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxInflightBytes:          uint64(cfg.MaxInflightMsgs) * cfg.MaxSizePerMsg,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    logger,
	}
	if err := validate(rc); err != nil {
		return nil, err
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, err
	}
	bs := rn.BasicStatus()
	return &Replica{
		cfg:         cfg,
		rn:          rn,
		term:        bs.GetTerm(),
		commit:      bs.GetCommit(),
		proposals:   make(map[uint64]*Proposal),
		byIndex:     make(map[uint64][]*Proposal),
		readRounds:  make(map[string]*readRound),
		applied:     cfg.Applied,
		appliedTerm: cfg.AppliedTerm,
		soft:        bs.SoftState,
	}, nil
}

func validate(c *raft.Config) error {
	switch {
	case c.ID == 0:
		return errors.New("rangeraft: replica ID must not be 0")
	case c.HeartbeatTick <= 0:
		return errors.New("rangeraft: heartbeat ticks must be > 0")
	case c.ElectionTick <= c.HeartbeatTick:
		return fmt.Errorf("rangeraft: election ticks (%d) must exceed heartbeat ticks (%d)", c.ElectionTick, c.HeartbeatTick)
	case c.Storage == nil:
		return errors.New("rangeraft: storage must not be nil")
	}
	return nil
}

// ID is this replica's Raft ID.
func (r *Replica) ID() uint64 { return r.cfg.ReplicaID }

// Step feeds a message from a peer.
func (r *Replica) Step(m *pb.Message) error {
	if err := r.rn.Step(m); err != nil {
		return err
	}
	r.noteAnswer(m)
	return nil
}

// Tick advances raft's logical clock by one tick and ages pending work.
func (r *Replica) Tick() {
	r.rn.Tick()
	if r.IsLeader() && r.rn.BasicStatus().LeadTransferee != 0 {
		r.DropLease() // a transfer started without TransferLeader (forwarded)
	}
	r.ageProposals()
	r.ageReads()
}

// Campaign starts an election.
func (r *Replica) Campaign() error { return r.rn.Campaign() }

// TransferLeader asks the leader to hand leadership to replica to.
// A transfer voids the lease: the target's forced vote ignores the
// followers' leases. A transfer to this replica itself is refused with
// ErrTransferToSelf and changes nothing (raft would abort the transfer in
// progress, whose MsgTimeoutNow may still be in flight).
func (r *Replica) TransferLeader(to uint64) error {
	if to == r.cfg.ReplicaID {
		return ErrTransferToSelf
	}
	r.DropLease()
	r.rn.TransferLeader(to)
	return nil
}

// DropLease voids the leader's read lease; rounds already in flight do not
// renew it. The owner calls it when the range's descriptor changes.
func (r *Replica) DropLease() {
	r.lease.Drop()
	r.leaseEpoch++
}

// LeaseValid reports whether the leader holds a read lease now.
func (r *Replica) LeaseValid() bool { return r.lease.Valid(r.cfg.Clock(), r.leaseStatus()) }

func (r *Replica) leaseStatus() LeaseStatus {
	bs := r.rn.BasicStatus()
	return LeaseStatus{Leader: bs.RaftState == raft.StateLeader, Term: bs.GetTerm(),
		AppliedTerm: r.appliedTerm, LeadTransferee: bs.LeadTransferee}
}

// ReportUnreachable tells raft that a message to id could not be sent.
func (r *Replica) ReportUnreachable(id uint64) { r.rn.ReportUnreachable(id) }

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (r *Replica) ReportSnapshot(id uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	r.rn.ReportSnapshot(id, st)
}

// WithProgress visits the leader's view of every replica's progress
// without copying it (Status copies the whole map).
func (r *Replica) WithProgress(visit func(id uint64, pr tracker.Progress)) {
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) { visit(id, pr) })
}

// BasicStatus is raft's allocation-free status.
func (r *Replica) BasicStatus() raft.BasicStatus { return r.rn.BasicStatus() }

// Status is raft's full status, with progress when leader. It copies
// every follower's progress (inflight windows included): listings use
// Brief and WithProgress.
func (r *Replica) Status() raft.Status { return r.rn.Status() }

// Brief is the part of a replica's Raft status a listing shows.
type Brief struct {
	State raft.StateType
	// Lead is the leader's replica ID as known (0: none).
	Lead uint64
	// Term and Commit are the hard state's as of the last Ready.
	Term, Commit uint64
}

// Brief returns the replica's Raft role, leader, term and commit without
// allocating (BasicStatus allocates a hard state each call).
func (r *Replica) Brief() Brief {
	return Brief{State: r.soft.RaftState, Lead: r.soft.Lead, Term: r.term, Commit: r.commit}
}

// Leader is the leader's replica ID as this replica knows it (0: unknown).
func (r *Replica) Leader() uint64 { return r.soft.Lead }

// IsLeader reports whether this replica is the leader.
func (r *Replica) IsLeader() bool { return r.soft.RaftState == raft.StateLeader }

// AppliedIndex is the applied index this replica has been told of.
func (r *Replica) AppliedIndex() uint64 { return r.applied }

// PendingProposals is the number of proposals not yet completed.
func (r *Replica) PendingProposals() int { return len(r.proposals) }

// PendingReads is the number of reads not yet completed.
func (r *Replica) PendingReads() int {
	n := len(r.pendingReads)
	for _, round := range r.readRounds {
		n += len(round.reads)
	}
	for _, round := range r.waiting {
		n += len(round.reads)
	}
	return n
}

// ForgetLeader makes a follower forget its leader, so that it grants votes
// at once (its leader's store is known to be down).
func (r *Replica) ForgetLeader() error { return r.rn.ForgetLeader() }

// HasReady reports whether Ready would return something.
func (r *Replica) HasReady() bool { return r.rn.HasReady() }

// Propose submits p. Done is called exactly once, possibly before Propose
// returns (not leader, busy).
func (r *Replica) Propose(p *Proposal) { r.propose([]*Proposal{p}) }

// Limits of one batch entry (ProposeAll).
const (
	maxProposalsPerEntry = 64
	maxBatchEntryBytes   = 256 << 10
)

// ProposeAll proposes ps in order. Runs of Batchable proposals share an
// entry (up to maxProposalsPerEntry proposals and maxBatchEntryBytes of
// commands): the log, the followers and the apply loop then handle one
// entry for many writes. Each proposal still gets its own outcome. It
// returns how many entries it proposed (or tried to).
func (r *Replica) ProposeAll(ps []*Proposal) (entries int) {
	for i := 0; i < len(ps); {
		j, size := i+1, len(ps[i].Cmd)
		for ps[i].Batchable && j < len(ps) && ps[j].Batchable && j-i < maxProposalsPerEntry && size+len(ps[j].Cmd) <= maxBatchEntryBytes {
			size += len(ps[j].Cmd)
			j++
		}
		r.propose(ps[i:j])
		i = j
		entries++
	}
	return entries
}

// propose proposes ps as one entry: a plain one (EncodeEntry) for a single
// proposal, a batch entry for several. Each proposal's Done is called
// once, possibly before propose returns (stopped, not leader, an ID that
// is zero, reserved or already pending, busy).
func (r *Replica) propose(ps []*Proposal) {
	var err error
	switch {
	case r.closed:
		err = ErrStopped
	case !r.IsLeader():
		err = &NotLeaderError{Leader: r.soft.Lead}
	}
	valid := make([]*Proposal, 0, len(ps))
	for _, p := range ps {
		_, dup := r.proposals[p.ID]
		switch {
		case err != nil:
			p.Done(nil, err)
		case dup || p.ID == 0 || p.ID == BatchTag || slices.ContainsFunc(valid, func(v *Proposal) bool { return v.ID == p.ID }):
			p.Done(nil, fmt.Errorf("rangeraft: proposal ID %d is zero, reserved or already pending", p.ID))
		default:
			valid = append(valid, p)
		}
	}
	var data []byte
	switch len(valid) {
	case 0:
		return
	case 1:
		data = EncodeEntry(valid[0].ID, valid[0].Cmd)
	default:
		data = EncodeBatchEntry(valid)
	}
	if err := r.rn.Propose(data); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = ErrBusy
		}
		for _, p := range valid {
			p.Done(nil, err)
		}
		return
	}
	for _, p := range valid {
		r.proposals[p.ID] = p
	}
}

// ProposeConfChange proposes a membership change (leader only).
func (r *Replica) ProposeConfChange(cc pb.ConfChangeI) error {
	if !r.IsLeader() {
		return &NotLeaderError{Leader: r.soft.Lead}
	}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return ErrBusy
		}
		return err
	}
	return nil
}

// ApplyConfChange applies a committed membership change to raft's
// configuration and returns the new conf state.
// A membership change voids the lease: the quorum that granted it may not
// be one of the new configuration.
func (r *Replica) ApplyConfChange(cc pb.ConfChangeI) *pb.ConfState {
	r.DropLease()
	return r.rn.ApplyConfChange(cc)
}

// Ready returns the next batch of work, or false when there is none. The
// caller must persist, send, apply and then call Advance before calling
// Ready again.
func (r *Replica) Ready() (raft.Ready, bool) {
	if !r.rn.HasReady() {
		return raft.Ready{}, false
	}
	rd := r.rn.Ready()
	if rd.SoftState != nil {
		r.onSoftState(*rd.SoftState)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		r.term, r.commit = rd.HardState.GetTerm(), rd.HardState.GetCommit()
	}
	for _, e := range rd.Entries {
		r.noteAppended(e)
	}
	for _, m := range rd.Messages {
		if m.GetType() == pb.MsgTimeoutNow {
			r.timeoutNowTerm = m.GetTerm()
			r.DropLease()
		}
	}
	for _, rs := range rd.ReadStates {
		round, ok := r.readRounds[string(rs.RequestCtx)]
		if !ok {
			continue
		}
		delete(r.readRounds, string(rs.RequestCtx))
		round.index = rs.Index
		r.waiting = append(r.waiting, round)
		r.maybeRenewLease(round)
	}
	r.serveReads()
	return rd, true
}

// Advance acknowledges that rd was persisted, sent and applied.
func (r *Replica) Advance(rd raft.Ready) { r.rn.Advance(rd) }

func (r *Replica) noteAppended(e *pb.Entry) {
	if e.GetType() != pb.EntryNormal {
		return
	}
	subs, err := DecodeEntries(e.GetData())
	if err != nil || len(subs) == 0 {
		return
	}
	idx := e.GetIndex()
	// The slot of older proposals of ours was taken: those older entries
	// can no longer commit (a leader appends only past every committed
	// entry).
	for _, old := range slices.Clone(r.byIndex[idx]) {
		if !slices.ContainsFunc(subs, func(s SubEntry) bool { return s.ID == old.ID }) {
			r.complete(old, nil, ErrStaleCommand)
		}
	}
	for _, sub := range subs {
		p, ok := r.proposals[sub.ID]
		if !ok || p.index != 0 {
			continue
		}
		p.index, p.term = idx, e.GetTerm()
		r.byIndex[idx] = append(r.byIndex[idx], p)
	}
}

// Applied records that entry e was applied with the state machine's result
// (or a deterministic command error). The caller reports every committed
// entry, in order, after the batch holding them committed.
func (r *Replica) Applied(e *pb.Entry, result any, resultErr error) {
	var id uint64
	if e.GetType() == pb.EntryNormal {
		id, _, _ = DecodeEntry(e.GetData())
	}
	one := [1]AppliedResult{{ID: id, Value: result, Err: resultErr}}
	r.AppliedAll(e, one[:])
}

// AppliedResult is the outcome of one proposal of an applied entry.
type AppliedResult struct {
	ID    uint64
	Value any
	Err   error
}

// AppliedAll is Applied for an entry of several proposals (a batch
// entry): results holds each proposal's outcome, in the entry's order.
func (r *Replica) AppliedAll(e *pb.Entry, results []AppliedResult) {
	idx := e.GetIndex()
	for _, p := range slices.Clone(r.byIndex[idx]) {
		i := slices.IndexFunc(results, func(res AppliedResult) bool { return res.ID == p.ID })
		if i >= 0 {
			r.complete(p, results[i].Value, results[i].Err)
		} else {
			r.complete(p, nil, ErrStaleCommand) // another entry took its slot
		}
	}
	for _, res := range results {
		if p, ok := r.proposals[res.ID]; ok && res.ID != 0 {
			r.complete(p, res.Value, res.Err)
		}
	}
	if idx > r.applied {
		r.applied, r.appliedTerm = idx, e.GetTerm()
	}
}

// AppliedSnapshot records that a snapshot at index/term was applied.
func (r *Replica) AppliedSnapshot(index, term uint64) {
	if index > r.applied {
		r.applied, r.appliedTerm = index, term
	}
	// Proposals at or below the snapshot's index can no longer be told
	// apart: answer them ambiguously.
	for idx, ps := range r.byIndex {
		if idx <= index {
			for _, p := range slices.Clone(ps) {
				r.complete(p, nil, &AmbiguousError{Reason: "replica caught up by snapshot past the command"})
			}
		}
	}
	r.serveReads()
}

// FinishApply serves reads that the applied entries made ready; call it
// after a batch of Applied calls.
func (r *Replica) FinishApply() { r.serveReads() }

func (r *Replica) complete(p *Proposal, result any, err error) {
	delete(r.proposals, p.ID)
	if p.index != 0 {
		l := r.byIndex[p.index]
		if i := slices.Index(l, p); i >= 0 {
			if l = slices.Delete(l, i, i+1); len(l) == 0 {
				delete(r.byIndex, p.index)
			} else {
				r.byIndex[p.index] = l
			}
		}
	}
	p.Done(result, err)
}

func (r *Replica) ageProposals() {
	for _, p := range r.proposals {
		p.age++
		if p.age > r.cfg.ProposalTimeoutTicks {
			r.complete(p, nil, &AmbiguousError{Reason: fmt.Sprintf("not applied within %d ticks", r.cfg.ProposalTimeoutTicks)})
		}
	}
}

func (r *Replica) onSoftState(ss raft.SoftState) {
	wasLeader := r.soft.RaftState == raft.StateLeader
	oldLead := r.soft.Lead
	r.soft = ss
	if ss.RaftState != raft.StateLeader || !wasLeader {
		r.DropLease()
	}
	if ss.Lead != oldLead {
		// Follower rounds sent to the old leader will not be answered by
		// it; fail them now (safe to retry) rather than at the timeout.
		// Those that already have an index stay: it is still valid.
		r.failFollowerRounds(&NotLeaderError{Leader: ss.Lead})
	}
	if wasLeader && ss.RaftState != raft.StateLeader {
		// Reads are safe to retry: fail them so clients go to the new
		// leader. Proposals stay: they resolve on apply (applied or
		// overwritten) or time out as ambiguous.
		err := &NotLeaderError{Leader: ss.Lead}
		r.failReads(err)
		// Pending proposals resolve when their index applies (applied or
		// overwritten); if the new leader never reaches their index, waiting
		// out the full timeout helps no one: give them one election timeout.
		for _, p := range r.proposals {
			p.age = max(p.age, r.cfg.ProposalTimeoutTicks-r.cfg.ElectionTicks)
		}
	}
}

// ReadIndex queues a linearizable read. It joins the next ReadIndex round
// (FlushReads), never one issued before it arrived. A ReadLease read on a
// leader holding a lease instead waits only for the leader's current
// commit index to apply. ReadLeader and ReadLease reads fail with
// NotLeaderError on a follower; ReadFollower reads fail so only when the
// follower knows no leader.
func (r *Replica) ReadIndex(rd *Read) {
	if r.closed {
		rd.Done(ErrStopped)
		return
	}
	if !r.IsLeader() {
		if rd.Mode != ReadFollower || r.soft.Lead == 0 {
			rd.Done(&NotLeaderError{Leader: r.soft.Lead})
			return
		}
		r.pendingReads = append(r.pendingReads, rd)
		return
	}
	if rd.Mode == ReadLease && r.LeaseValid() {
		// While the lease holds no other replica can have committed
		// anything: the commit index covers every acknowledged write.
		r.waiting = append(r.waiting, &readRound{reads: []*Read{rd}, index: r.rn.BasicStatus().GetCommit(),
			leader: true, path: PathLease})
		r.serveReads()
		return
	}
	r.pendingReads = append(r.pendingReads, rd)
}

// FlushReads issues one ReadIndex round for all reads queued since the last
// round, with a context never used before. On a follower raft forwards it
// to the leader (and drops it when there is none: the round times out).
func (r *Replica) FlushReads() {
	if len(r.pendingReads) == 0 {
		return
	}
	r.readSeq++
	ctx := make([]byte, 16)
	binary.BigEndian.PutUint64(ctx, r.cfg.ReadContextSeed)
	binary.BigEndian.PutUint64(ctx[8:], r.readSeq)
	bs := r.rn.BasicStatus()
	round := &readRound{reads: r.pendingReads, path: PathFollower}
	if bs.RaftState == raft.StateLeader {
		round.path, round.leader = PathReadIndex, true
		round.start, round.term, round.epoch = r.cfg.Clock(), bs.GetTerm(), r.leaseEpoch
		round.renew = bs.LeadTransferee == 0
	}
	r.readRounds[string(ctx)] = round
	r.pendingReads = nil
	r.rn.ReadIndex(ctx)
}

// maybeRenewLease extends the lease from a leader round a quorum answered,
// unless the lease was voided since the round began, a transfer runs, or
// a MsgTimeoutNow was sent in this term (see timeoutNowTerm).
func (r *Replica) maybeRenewLease(round *readRound) {
	if !round.leader || !round.renew || round.epoch != r.leaseEpoch || r.cfg.LeaseDuration <= 0 {
		return
	}
	bs := r.rn.BasicStatus()
	if bs.RaftState != raft.StateLeader || bs.GetTerm() != round.term || bs.LeadTransferee != 0 ||
		r.timeoutNowTerm == bs.GetTerm() {
		return
	}
	r.lease.Extend(round.start, round.term, r.cfg.LeaseDuration)
}

func (r *Replica) serveReads() {
	if len(r.waiting) == 0 {
		return
	}
	// A leader serves nothing before it applied an entry of its own term.
	// A follower's read index came from a leader that had: applied >= it
	// is all it needs.
	ownTerm := r.appliedTerm == r.rn.BasicStatus().GetTerm()
	kept := r.waiting[:0]
	for _, round := range r.waiting {
		if round.index <= r.applied && (ownTerm || !round.leader) {
			for _, rd := range round.reads {
				rd.Path = round.path
				rd.Done(nil)
			}
			continue
		}
		kept = append(kept, round)
	}
	r.waiting = kept
}

func (r *Replica) ageReads() {
	for ctx, round := range r.readRounds {
		round.age++
		if round.age > r.cfg.ReadTimeoutTicks {
			delete(r.readRounds, ctx)
			for _, rd := range round.reads {
				rd.Done(ErrReadTimeout)
			}
		}
	}
	kept := r.waiting[:0]
	for _, round := range r.waiting {
		round.age++
		if round.age > r.cfg.ReadTimeoutTicks {
			for _, rd := range round.reads {
				rd.Done(ErrReadTimeout)
			}
			continue
		}
		kept = append(kept, round)
	}
	r.waiting = kept
}

// failFollowerRounds fails follower rounds still waiting for a read index.
func (r *Replica) failFollowerRounds(err error) {
	for ctx, round := range r.readRounds {
		if round.leader {
			continue
		}
		delete(r.readRounds, ctx)
		for _, rd := range round.reads {
			rd.Done(err)
		}
	}
}

func (r *Replica) failReads(err error) {
	for _, rd := range r.pendingReads {
		rd.Done(err)
	}
	r.pendingReads = nil
	for ctx, round := range r.readRounds {
		delete(r.readRounds, ctx)
		for _, rd := range round.reads {
			rd.Done(err)
		}
	}
	for _, round := range r.waiting {
		for _, rd := range round.reads {
			rd.Done(err)
		}
	}
	r.waiting = nil
}

// Close completes everything pending: proposals ambiguously (they may still
// commit), reads with ErrStopped. The replica must not be used afterwards.
func (r *Replica) Close() {
	r.closed = true
	for _, p := range r.proposals {
		r.complete(p, nil, &AmbiguousError{Reason: "replica stopped"})
	}
	r.failReads(ErrStopped)
}

// TruncationPolicy decides how far the leader truncates the log.
type TruncationPolicy struct {
	// ThresholdEntries: truncate only when at least this many entries can go.
	ThresholdEntries uint64
	// MaxEntries: past this log length, followers that are not recently
	// active no longer hold truncation back (they catch up by snapshot).
	MaxEntries uint64
	// Live, when set, says whether a follower is reachable at all (the
	// owner's failure detector); raft's RecentActive goes stale while a
	// group is not ticking.
	Live func(replicaID uint64) bool
}

// TruncationTarget returns the index up to which the leader may truncate
// the log: never past its applied index, never past a recently active
// follower's match, nor (until the log exceeds MaxEntries) an inactive one's.
func (r *Replica) TruncationTarget(p TruncationPolicy, firstIndex uint64) (index uint64, ok bool) {
	if !r.IsLeader() || p.ThresholdEntries == 0 {
		return 0, false
	}
	last := r.rn.BasicStatus().GetCommit()
	tooLarge := p.MaxEntries > 0 && last >= firstIndex && last-firstIndex+1 > p.MaxEntries
	idx := r.applied
	// WithProgress, not Status: no copy of the progress map (this runs on
	// every tick of every awake leader that applied something).
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == r.cfg.ReplicaID {
			return
		}
		if pr.State == tracker.StateSnapshot {
			if !tooLarge && pr.PendingSnapshot < idx {
				idx = pr.PendingSnapshot
			}
			return
		}
		active := pr.RecentActive && (p.Live == nil || p.Live(id))
		if (active || !tooLarge) && pr.Match < idx {
			idx = pr.Match
		}
	})
	if idx < firstIndex || idx-firstIndex+1 < p.ThresholdEntries {
		return 0, false
	}
	return idx, true
}

type discardLogger struct{}

func (discardLogger) Debug(...interface{})            {}
func (discardLogger) Debugf(string, ...interface{})   {}
func (discardLogger) Error(...interface{})            {}
func (discardLogger) Errorf(string, ...interface{})   {}
func (discardLogger) Info(...interface{})             {}
func (discardLogger) Infof(string, ...interface{})    {}
func (discardLogger) Warning(...interface{})          {}
func (discardLogger) Warningf(string, ...interface{}) {}
func (discardLogger) Fatal(v ...interface{})          { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...interface{}) {
	panic(fmt.Sprintf(f, v...))
}
func (discardLogger) Panic(v ...interface{})            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...interface{}) { panic(fmt.Sprintf(f, v...)) }
