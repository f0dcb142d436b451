// The replica's bounded inbox: other goroutines (gRPC handlers, the
// transport, the ticker, the snapshot sender) never touch raft; they push
// messages, proposals, reads and flags here and enqueue the range, and the
// worker drains it in its next pass (replica_raft.go).

package store

import (
	"errors"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/rangeraft"
)

// inMsg is a queued raft message with its envelope's extras.
type inMsg struct {
	m         *pb.Message
	fromStore uint64
	quiesce   bool
	// advance: m is a leader's commit advance (a MsgHeartbeat standing for
	// a commit-only append, store_commit_hold.go), not to be answered.
	advance bool
}

type snapReport struct {
	to uint64
	ok bool
}

// pushMessage queues a raft message; false when the inbox is full.
func (r *Replica) pushMessage(im inMsg, limit int) bool {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	if r.inbox.closed || len(r.inbox.msgs) >= limit {
		return false
	}
	if im.fromStore != 0 && im.m.GetFrom() != 0 {
		if r.inbox.peers == nil {
			r.inbox.peers = make(map[uint64]uint64)
		}
		r.inbox.peers[im.m.GetFrom()] = im.fromStore
	}
	r.inbox.msgs = append(r.inbox.msgs, im)
	return true
}

// setFlag sets an inbox flag (wake, leaderDead, campaign).
func (r *Replica) setFlag(f func(r *Replica)) {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	f(r)
}

// pushProposal queues a proposal; false when too many are queued.
func (r *Replica) pushProposal(p *rangeraft.Proposal, limit int) bool {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	if r.inbox.closed || len(r.inbox.proposals) >= limit {
		return false
	}
	r.inbox.proposals = append(r.inbox.proposals, p)
	return true
}

// errTooManyReads: limit reads of the replica are pending already.
var errTooManyReads = errors.New("too many pending reads on this replica")

// pushRead queues a read and counts it in pendingReads until its Done
// runs (rangeraft calls Done exactly once, also when the replica stops).
// It refuses the read with errTooManyReads when limit reads are pending,
// and with rangeraft.ErrStopped once the replica stopped.
func (r *Replica) pushRead(rd *rangeraft.Read, limit int) error {
	if r.pendingReads.Add(1) > int64(limit) {
		r.pendingReads.Add(-1)
		return errTooManyReads
	}
	done := rd.Done
	rd.Done = func(err error) {
		r.pendingReads.Add(-1)
		done(err)
	}
	r.inbox.Lock()
	defer r.inbox.Unlock()
	if r.inbox.closed {
		r.pendingReads.Add(-1)
		return rangeraft.ErrStopped
	}
	r.inbox.reads = append(r.inbox.reads, rd)
	return nil
}

func (r *Replica) pushSnapReport(to uint64, ok bool) {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	r.inbox.snapReports = append(r.inbox.snapReports, snapReport{to: to, ok: ok})
}

func (r *Replica) pushTransfer(to uint64) {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	r.inbox.transferTo = to
}

// failInbox completes everything still queued after the replica stopped.
func (r *Replica) failInbox() {
	r.inbox.Lock()
	props, reads, ccs := r.inbox.proposals, r.inbox.reads, r.inbox.confChanges
	r.inbox.confChanges = nil
	r.inbox.closed = true
	r.inbox.proposals, r.inbox.reads, r.inbox.msgs = nil, nil, nil
	r.inbox.Unlock()
	for _, p := range props {
		p.Done(nil, rangeraft.ErrStopped)
	}
	for _, rd := range reads {
		rd.Done(rangeraft.ErrStopped)
	}
	for _, cc := range ccs {
		handOff(r.store, cc.done, rangeraft.ErrStopped)
	}
}

func (r *Replica) inboxEmpty() bool {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	return len(r.inbox.msgs) == 0 && len(r.inbox.proposals) == 0 && len(r.inbox.reads) == 0 &&
		r.inbox.transferTo == 0 && !r.inbox.wake && !r.inbox.campaign && !r.inbox.leaderDead
}
