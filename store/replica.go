// A store's replica of one range: the rangeraft replica, its log storage,
// the range descriptor and applied state, and the inbox other goroutines
// use to hand it work.
package store

import (
	"bytes"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// Replica is one range's replica on this store.
//
// Lock order: Replica.mu before Replica.inbox.mu; a worker may hold the mu
// of every replica in its batch (no other goroutine holds two).
type Replica struct {
	rangeID   uint64
	replicaID uint64
	log       *logstore.RangeLog

	// desc is the current descriptor, readable without locks (KV handlers
	// check keys and epochs against it). Written by the worker on apply.
	desc atomic.Pointer[rangekvpb.RangeDescriptor]
	// leader is the leader's replica ID as last seen (0: unknown).
	leader atomic.Uint64
	// appliedIndex mirrors mu.applied.Index for lock-free readers.
	appliedIndex atomic.Uint64

	mu struct {
		sync.Mutex
		rr      *rangeraft.Replica
		applied rangekvpb.AppliedState
		// appliesSinceTruncCheck counts applied entries since the last
		// truncation decision.
		appliesSinceTruncCheck int
		destroyed              bool
	}

	inbox struct {
		sync.Mutex
		msgs        []*pb.Message
		proposals   []*rangeraft.Proposal
		reads       []*rangeraft.Read
		snapReports []snapReport
		transferTo  uint64
		closed      bool
	}
}

type snapReport struct {
	to uint64
	ok bool
}

// Descriptor returns the current range descriptor (do not modify).
func (r *Replica) Descriptor() *rangekvpb.RangeDescriptor { return r.desc.Load() }

// containsKey reports whether user key k is in the range.
func containsKey(d *rangekvpb.RangeDescriptor, k []byte) bool {
	return bytes.Compare(k, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(k, d.EndKey) < 0)
}

// replicaByID finds a replica of the descriptor by its replica ID.
func replicaByID(d *rangekvpb.RangeDescriptor, id uint64) *rangekvpb.ReplicaDescriptor {
	for _, r := range d.Replicas {
		if r.ReplicaId == id {
			return r
		}
	}
	return nil
}

// replicaOnStore finds the replica of the descriptor on storeID.
func replicaOnStore(d *rangekvpb.RangeDescriptor, storeID uint64) *rangekvpb.ReplicaDescriptor {
	for _, r := range d.Replicas {
		if r.StoreId == storeID {
			return r
		}
	}
	return nil
}

// pushMessage queues a raft message; false when the inbox is full.
func (r *Replica) pushMessage(m *pb.Message, limit int) bool {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	if len(r.inbox.msgs) >= limit {
		return false
	}
	r.inbox.msgs = append(r.inbox.msgs, m)
	return true
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

// pushRead queues a linearizable read; false once the replica stopped.
func (r *Replica) pushRead(rd *rangeraft.Read) bool {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	if r.inbox.closed {
		return false
	}
	r.inbox.reads = append(r.inbox.reads, rd)
	return true
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
	props, reads := r.inbox.proposals, r.inbox.reads
	r.inbox.closed = true
	r.inbox.proposals, r.inbox.reads, r.inbox.msgs = nil, nil, nil
	r.inbox.Unlock()
	for _, p := range props {
		p.Done(nil, rangeraft.ErrStopped)
	}
	for _, rd := range reads {
		rd.Done(rangeraft.ErrStopped)
	}
}
