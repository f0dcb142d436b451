// Range splits (MULTIRAFT.md §4): proposed through Raft, applied on every
// replica in one synced batch that shrinks the left descriptor and creates
// the right range's state at the fixed initial index, moving no data.

package store

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// splitResult is the outcome of an applied split.
type splitResult struct {
	left, right *rangekvpb.RangeDescriptor
	// createRight: the right replica's state was written and must be
	// instantiated after the batch commits.
	createRight bool
	// campaign: this store held the left range's leader.
	campaign bool
}

// split splits the range at key, through Raft, into a right half with
// range ID newID (0: allocated here, with ctx; Store.Split). It must run
// on the range's leader.
func (r *Replica) split(ctx context.Context, key []byte, newID uint64) (*splitResult, *rangekvpb.RangeError, error) {
	s := r.store
	desc := r.Descriptor()
	if bytes.Equal(key, desc.StartKey) {
		return nil, nil, invalid("split_key: %q is the range's start key; a split key must be strictly inside the range", key)
	}
	if !containsKey(desc, key) {
		return nil, keyNotInRange(key, desc), nil
	}
	if lead := r.leader.Load(); lead != r.replicaID {
		return nil, r.notLeader(lead), nil
	}
	var err error
	if newID == 0 {
		newID, err = s.allocRangeID(ctx)
	} else {
		err = s.checkNewRangeID(newID)
	}
	if err != nil {
		return nil, nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Split{Split: &rangekvpb.SplitCmd{
		SplitKey: key, NewRangeId: newID, ExpectedEpoch: proto.CloneOf(desc.Epoch)}}}
	v, rerr, err := r.propose(ctx, cmd)
	if rerr != nil || err != nil {
		return nil, rerr, err
	}
	return v.(*splitResult), nil, nil
}

// applySplit stages a split into ab. Deterministic: every replica decides
// the same from the replicated descriptor. Called with p.r.mu held.
func (r *Replica) applySplit(ab *pebble.Batch, p *pass, desc *rangekvpb.RangeDescriptor, sp *rangekvpb.SplitCmd) (*rangekvpb.RangeDescriptor, any, error) {
	s := r.store
	// Invariant: a split applies only at the epoch (version and conf_ver)
	// it was proposed at, with the key strictly inside the range.
	if !proto.Equal(sp.ExpectedEpoch, desc.Epoch) {
		return desc, nil, &epochMismatchError{current: desc}
	}
	if bytes.Compare(sp.SplitKey, desc.StartKey) <= 0 || !containsKey(desc, sp.SplitKey) {
		return desc, nil, &CommandError{Code: codes.InvalidArgument, Msg: fmt.Sprintf("split_key: %q is not strictly inside the range", sp.SplitKey)}
	}
	left := proto.CloneOf(desc)
	left.EndKey = append([]byte(nil), sp.SplitKey...)
	left.Epoch.Version++
	right := &rangekvpb.RangeDescriptor{
		RangeId:       sp.NewRangeId,
		StartKey:      append([]byte(nil), sp.SplitKey...),
		EndKey:        append([]byte(nil), desc.EndKey...),
		Epoch:         &rangekvpb.RangeEpoch{ConfVer: desc.Epoch.ConfVer, Version: left.Epoch.Version},
		NextReplicaId: desc.NextReplicaId,
	}
	for _, rd := range desc.Replicas {
		right.Replicas = append(right.Replicas, proto.CloneOf(rd))
	}
	v, err := proto.Marshal(left)
	p.r.must(err)
	p.r.must(ab.Set(keys.DescriptorKey(desc.RangeId), v, nil))
	res := &splitResult{left: left, right: right, campaign: p.r.mu.rr.IsLeader()}

	me := replicaOnStore(right, s.cfg.StoreID)
	// Claim the right range before reading its tombstone: from the claim
	// on, deliver replaces no uninitialized replica of it, so the tombstone
	// read below is the last one until installRHS (claimRHS).
	claimed, owned := false, false
	if me != nil {
		claimed, owned = s.claimRHS(right, me.ReplicaId)
	}
	var ts rangekvpb.RangeTombstone
	_, err = getProto(ab, keys.TombstoneKey(right.RangeId), &ts)
	p.r.must(err)
	var existing rangekvpb.RangeDescriptor
	initialized, err := getProto(ab, keys.DescriptorKey(right.RangeId), &existing)
	p.r.must(err)
	switch {
	case me == nil:
	case !claimed || me.ReplicaId < ts.NextReplicaId:
		// The right replica was removed from this store (and maybe re-added
		// under a newer ID; !claimed: the tombstone saying so is being
		// written, or the newer incarnation's replica is already here):
		// its data here belongs to nobody. Its HardState (the newer
		// incarnation's votes) is not touched.
		lo, hi := keys.UserSpan(right.StartKey, right.EndKey)
		p.r.must(ab.DeleteRange(lo, hi, nil))
	case initialized:
		// Already initialized by a snapshot: keep it.
	default:
		p.r.must(s.writeSplitRHSState(ab, right, owned))
		res.createRight = true
	}
	if k := s.cfg.Knobs; k != nil && k.SplitRHSStaged != nil && me != nil {
		k.SplitRHSStaged(right.RangeId, res.createRight)
	}
	if me != nil {
		s.at(PointSplitStaged, right.RangeId)
	}
	if claimed && !res.createRight {
		s.mu.Lock()
		s.releaseRHSLocked(right.RangeId)
		s.mu.Unlock()
	}
	p.splits = append(p.splits, res)
	p.needSync = true
	return left, res, nil
}

// claimRHS marks rangeID as the right half of a split this store is
// staging (pendingRHS: no replica object is created for it until
// installRHS) and reports whether a replica object of it exists (owned:
// see writeSplitRHSState). It claims nothing when deliver is replacing the
// range's uninitialized replica by a newer incarnation, or replica GC is
// destroying it (startReplacing):
// the tombstone that destroy writes forbids the split's replica ID, since
// every replica ID of the range on this store after the split is at least
// the split's. Nor when the replica here already is a newer incarnation
// than the split's replicaID (this store's right replica was removed and
// re-added before the split applied here, as CRDB's isNewerThanSplit):
// installing the split's ID would stop that replica and carry its votes
// over to an ID the range removed, whose replica GC then deletes them
// while its tombstone lets the newer ID be created again, with no vote.
func (s *Store) claimRHS(right *rangekvpb.RangeDescriptor, replicaID uint64) (claimed, owned bool) {
	rangeID := right.RangeId
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mu.replicas[rangeID]
	if r != nil && (r.replacing.Load() || (r.replicaID > replicaID && r.Descriptor() == nil)) {
		return false, true
	}
	if s.mu.pendingRHS == nil {
		s.mu.pendingRHS = make(map[uint64]*rangekvpb.RangeDescriptor)
	}
	s.mu.pendingRHS[rangeID] = right
	return true, r != nil
}

// releaseRHSLocked ends claimRHS's claim on rangeID: the split installed
// the range's replica, or found it needs none. It returns the messages
// held for the range meanwhile (holdForSplit), which go with the claim.
// Called with s.mu held.
func (s *Store) releaseRHSLocked(rangeID uint64) []inMsg {
	held := s.mu.heldForSplit[rangeID]
	delete(s.mu.pendingRHS, rangeID)
	delete(s.mu.heldForSplit, rangeID)
	return held
}

// startReplacing reports whether the uninitialized replica r may be
// destroyed, by deliver to create a newer incarnation of its range or by
// replica GC (gcDestroy), and marks it so that a split staged later
// creates nothing (claimRHS). It refuses while a split staged here will
// install the range's replica: the message is dropped (its sender
// retries), or GC leaves it, and once installed, that replica is removed
// by replica GC if it is stale. Deciding under s.mu, the lock
// claimRHS takes, makes the two exclusive: either the split sees the
// replacement coming, or the replacement never starts.
func (s *Store) startReplacing(r *Replica) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pendingRHS[r.rangeID] != nil {
		return false
	}
	r.replacing.Store(true)
	return true
}

// writeSplitRHSState writes the right range's initial state: descriptor,
// applied and truncated state at the initial index and, unless a replica
// object of the range exists here (owned), its HardState. Called by the
// worker applying the split, with the left replica's lock held, after
// claimRHS.
//
// Invariant: the right range's HardState has one writer at a time, and a
// split never overwrites a HardState another writer may still change
// before the split's batch commits. While a replica object of the range is
// in the store's map (an uninitialized replica created by messages), its
// own worker passes write the key: another worker may step a vote on it,
// sync {term, vote} and answer, at any moment between this staging and
// the commit of the split's batch, and a HardState synthesized here from
// what was read now would erase that vote (two leaders in one term, issue
// 15 item 1). So the batch leaves the key to that replica, and installRHS
// synthesizes the HardState from the latest persisted one once it has
// stopped the replica (buildReplica, which also finishes the job at
// restart if the store crashed in between). Nothing else removes that
// replica meanwhile: claimRHS keeps deliver from replacing it. While no
// replica object exists, pendingRHS, set in the same critical section
// that saw none, keeps one from being created until installRHS: then
// nothing else writes the key and the batch synthesizes it here.
// The split's worker never waits for the right replica's lock (that
// replica may be in another worker's pass, which may be waiting for a
// lock of ours); installRHS takes it after this pass released its locks.
func (s *Store) writeSplitRHSState(w interface {
	Set([]byte, []byte, *pebble.WriteOptions) error
	Get([]byte) ([]byte, io.Closer, error)
}, right *rangekvpb.RangeDescriptor, owned bool) error {
	var hs *pb.HardState // nil: left to the replica that owns it
	if !owned {
		var old pb.HardState
		if _, err := getProto(w, keys.HardStateKey(right.RangeId), &old); err != nil {
			return err
		}
		hs = driver.SynthesizeHardState(&old)
	}
	return driver.WriteInitialState(w, right, hs)
}

// settleSplitHardState synthesizes, from the latest persisted HardState,
// the one a split left to the right range's install (see
// writeSplitRHSState). Only such a range can have a descriptor here and a
// persisted commit below the initial index: bootstrap, splits and
// snapshots all write a commit at or above it, and raft never lowers it.
// Called before the replica is built, with no replica object of the range
// running.
func (s *Store) settleSplitHardState(rangeID uint64) error {
	var hs pb.HardState
	if _, err := getProto(s.db, keys.HardStateKey(rangeID), &hs); err != nil {
		return err
	}
	if hs.GetCommit() >= driver.InitIndex {
		return nil
	}
	v, err := proto.Marshal(driver.SynthesizeHardState(&hs))
	if err != nil {
		return err
	}
	return s.db.Set(keys.HardStateKey(rangeID), v, pebble.Sync)
}

// finishSplits instantiates right replicas created by applied splits.
// Called after the worker released every replica lock.
func (s *Store) finishSplits(results []*splitResult) {
	for _, res := range results {
		if !res.createRight {
			continue
		}
		if err := s.installRHS(res); err != nil {
			s.fatalRange(0, fmt.Sprintf("create right range %d of split", res.right.RangeId), err)
		}
	}
}

func (s *Store) installRHS(res *splitResult) error {
	id := res.right.RangeId
	// An uninitialized replica created by messages is replaced; first stop
	// it (its closed inbox drops what still arrives; a pass stepping it
	// holds its lock, so once we hold it no pass writes its raft state
	// again), then build the new replica, whose HardState buildReplica
	// synthesizes from the latest one the old replica persisted, then swap
	// the two in the map in one step so that no message can create a third.
	old := s.replica(id)
	if old != nil {
		old.lock()
		if old.Descriptor() != nil {
			old.mu.Unlock()
			// Initialized meanwhile by a snapshot of its own (accepted
			// once the parent had shrunk): it owns the span now.
			s.mu.Lock()
			s.releaseRHSLocked(id)
			s.mu.Unlock()
			return nil
		}
		old.mu.rr.Close()
		old.mu.destroyed = true
		old.mu.Unlock()
		old.failInbox()
		if s.snaps != nil {
			s.snaps.dropReplica(old) // snapshots queued for it are never stepped
		}
	}
	r, err := s.buildReplica(res.right)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.setReplicaLocked(id, r)
	held := s.releaseRHSLocked(id)
	s.mu.Unlock()
	s.setAwake(id, true)
	s.indexReplica(r)
	if old == nil {
		s.metrics.replicas.Inc()
	}
	if res.campaign {
		r.reportOnLead.Store(true)
		r.setFlag(func(r *Replica) { r.inbox.campaign = true })
	}
	// The messages that waited for this split: the last MsgApp the
	// uninitialized replica dropped, and what arrived while the split was
	// staged and no replica object could exist (holdForSplit). Without
	// them the right half's leader, whose probe or vote they were, would
	// wait for its next heartbeat or election timeout. Raft tolerates the
	// delay of a message.
	if old != nil {
		if h := old.heldApp.Swap(nil); h != nil {
			held = append([]inMsg{*h}, held...)
		}
	}
	for _, im := range held {
		if im.m.GetTo() == r.replicaID {
			r.pushMessage(im, s.cfg.InboxSize)
		}
	}
	s.sched.enqueue(id, flagWork)
	return nil
}
