// Reads on a replica: the barrier a read waits for at its consistency
// (ReadIndex round, lease, follower read index), then the engine read.
//
// Read leases on the store side: the lease length the store gives its
// replicas, and the rule that keeps a restarted store from voting too soon.
//
// rangeraft/lease.go argues why a leader may serve reads locally until
// t0 + LeaseDuration after a ReadIndex round began at t0: every follower in
// the quorum that answered reset its election timer after t0 and, with
// CheckQuorum, ignores other candidates' (pre-)votes for ElectionTimeout
// minus one tick. That argument needs the store to keep these promises:
//
//  1. No ForgetLeader before the lease is over. A follower forgets its
//     leader (replica_quiesce.go onLeaderDead; replica_raft.go, on a vote) only when
//     store liveness has not heard from the leader's store for the liveness
//     timeout, which is ElectionTimeout. The batch that carried the round's
//     heartbeat was received after t0 and counts as hearing from that store,
//     so the follower forgets no sooner than t0 + ElectionTimeout on its
//     clock, later than the lease's end (leaseDuration is at most 0.9 ×
//     (ElectionTimeout − 2 ticks)). Quiesced followers do not tick, which
//     only lengthens their refusal.
//  2. No vote from a freshly restarted store. A restarted replica remembers
//     no leader, so raft's vote refusal does not hold for it; a follower
//     that acknowledged the round and then restarted could otherwise vote
//     at once. A store therefore ignores (pre-)vote requests for
//     ElectionTimeout after it started (holdingVotes): an election then
//     merely waits, as it would for a lost message.
//  3. Only replicas whose raft state lasts answer for the lease. An
//     uninitialized replica's state is replaced when the local split
//     installs the range (installRHS) by one that knows no leader and
//     votes at once, so it never confirms a read round: replica_raft.go strips
//     the read context from heartbeats it steps.
//  4. A store wiped and restarted under the same ID cannot vote again:
//     peers refuse its Raft traffic (store_incarnation.go).

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/rangeraft"
)

// leaseDuration is the read lease the store's replicas use: see
// rangeraft.LeaseDurationFor for the margin.
func (c *Config) leaseDuration() time.Duration {
	election, _, _, _ := c.raftTicks()
	return rangeraft.LeaseDurationFor(c.HeartbeatInterval, election)
}

// votesHeld reports whether a store started at start must still ignore
// vote requests at now (promise 2 above).
func votesHeld(start, now time.Time, electionTimeout time.Duration) bool {
	return now.Sub(start) < electionTimeout
}

// holdingVotes applies votesHeld to this store.
func (s *Store) holdingVotes() bool {
	return votesHeld(s.liveness.start, s.now(), s.cfg.ElectionTimeout)
}

// readModes maps a request's consistency to how rangeraft confirms it.
var readModes = map[rangekvpb.ReadConsistency]rangeraft.ReadMode{
	rangekvpb.ReadConsistency_LINEARIZABLE: rangeraft.ReadLeader,
	rangekvpb.ReadConsistency_LEASE:        rangeraft.ReadLease,
	rangekvpb.ReadConsistency_FOLLOWER:     rangeraft.ReadFollower,
}

// readBarrier waits until r may serve a read at the requested consistency:
// LINEARIZABLE, a ReadIndex round on the leader; LEASE, the leader's lease
// or else a round; FOLLOWER, on any replica, a read index from the leader
// applied locally (NotLeader when the replica knows no leader; ServerBusy
// when the leader does not answer in time); STALE, nothing.
func (r *Replica) readBarrier(ctx context.Context, c rangekvpb.ReadConsistency) (*rangekvpb.RangeError, error) {
	s := r.store
	if c == rangekvpb.ReadConsistency_STALE {
		s.metrics.kvReads.WithLabelValues("stale").Inc()
		return nil, nil
	}
	mode, ok := readModes[c]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "header.consistency: unknown value %d", c)
	}
	ch := make(chan error, 1)
	rd := &rangeraft.Read{Mode: mode, Done: func(err error) { handOff(s, ch, err) }}
	if err := r.pushRead(rd, s.cfg.MaxPendingReads); err != nil {
		// Refused before it was queued: a typed busy answer the router
		// retries with backoff.
		reason := "store stopping"
		if errors.Is(err, errTooManyReads) {
			reason = fmt.Sprintf("%v (raft.max-pending-reads is %d); retry later", err, s.cfg.MaxPendingReads)
		}
		return &rangekvpb.RangeError{Message: reason, ServerBusy: &rangekvpb.ServerBusy{Reason: reason}}, nil
	}
	s.sched.enqueue(r.rangeID, flagWork)
	select {
	case err := <-ch:
		if err != nil {
			return r.outcomeToError(err)
		}
		s.metrics.kvReads.WithLabelValues(rd.Path.String()).Inc()
		return nil, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// readView is one consistent view of the engine for a read: its applied
// index and the user data it serves come from the same Pebble snapshot.
// The applied state is written in the batch that holds the data of the
// entries it covers (replica_apply.go), but r.appliedIndex moves only
// after that batch commits, so reading it and then the engine could pair
// an entry's data with the index before it (the nemesis once saw two
// replicas differ "at" one applied index that way).
type readView struct {
	snap *pebble.Snapshot
}

// readView opens a view for a read of r and records its applied index in
// h. The caller closes it. A nil view ends the read: h.Error says why when
// r's state is gone (destroyed meanwhile: RangeNotFound), err when the
// engine failed.
func (r *Replica) readView(h *rangekvpb.ResponseHeader) (*readView, error) {
	s := r.store
	if k := s.cfg.Knobs; k != nil && k.ServingRead != nil {
		k.ServingRead(r.rangeID)
	}
	snap := s.db.NewSnapshot()
	var as rangekvpb.AppliedState
	found, err := getProto(snap, keys.AppliedStateKey(r.rangeID), &as)
	if err != nil {
		snap.Close()
		return nil, status.Error(codes.Internal, err.Error())
	}
	if !found {
		snap.Close()
		h.Error = &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: r.rangeID}}
		return nil, nil
	}
	h.AppliedIndex = as.GetIndex()
	return &readView{snap: snap}, nil
}

func (v *readView) close() { v.snap.Close() }

func (v *readView) get(k []byte) ([]byte, bool, error) {
	val, c, err := v.snap.Get(keys.UserKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, status.Error(codes.Internal, err.Error())
	}
	out := append([]byte(nil), val...)
	c.Close()
	return out, true, nil
}

// scan reads the user keys of [start, end) into resp.Pairs, up to limit
// pairs and about maxScanBytes, and reports whether the page ended early
// (resp.ResumeKey then says where to resume). Errors are gRPC statuses.
func (v *readView) scan(resp *rangekvpb.ScanResponse, start, end []byte, limit int) (paged bool, err error) {
	lo, hi := keys.UserSpan(start, end)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, status.Error(codes.Internal, err.Error())
	}
	defer it.Close()
	bytes := 0
	for valid := it.First(); valid; valid = it.Next() {
		uk, err := keys.DecodeUserKey(it.Key())
		if err != nil {
			return false, status.Error(codes.Internal, err.Error())
		}
		if len(resp.Pairs) == limit {
			resp.ResumeKey = append([]byte(nil), uk...)
			return true, nil
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return false, status.Error(codes.Internal, err.Error())
		}
		// A page also ends at maxScanBytes (the client resumes).
		if bytes += len(uk) + len(v); len(resp.Pairs) > 0 && bytes > maxScanBytes {
			resp.ResumeKey = append([]byte(nil), uk...)
			return true, nil
		}
		resp.Pairs = append(resp.Pairs, &rangekvpb.KeyValue{Key: append([]byte(nil), uk...), Value: append([]byte(nil), v...)})
	}
	if err := it.Error(); err != nil {
		return false, status.Error(codes.Internal, err.Error())
	}
	return false, nil
}

// maxScanBytes bounds the keys and values of one scan response.
const maxScanBytes = 16 << 20
