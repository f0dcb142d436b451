// The invariants checked during and at the end of a run: one leader per
// range per term, no overlapping descriptors on a store, replicas at the
// same applied index with the same data, and liveness after healing. The
// history's linearizability is checked by Check, outside the bubble.

package sim

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	raftpb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/histcheck"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

type checker struct {
	w *world
	// leaders: the store that led each (range, term).
	leaders map[[2]uint64]uint64
	// votes: the candidate each (range, replica, term) granted its vote.
	votes map[[3]uint64]uint64
	// overlapped: the (store, range, range) overlaps already reported;
	// snapSeen: until when afterPass checks each store (races_moves.go).
	overlapped map[[3]uint64]bool
	snapSeen   []time.Time
	verdict    histcheck.Verdict
	last       string // why the cluster is not settled, for the failure
	// bufs (one per store) and descs are reused between observations.
	bufs  [][]store.ReplicaState
	descs []*rangekvpb.RangeDescriptor
}

func newChecker(w *world) *checker {
	return &checker{w: w, leaders: map[[2]uint64]uint64{}, votes: map[[3]uint64]uint64{}, overlapped: map[[3]uint64]bool{},
		bufs: make([][]store.ReplicaState, w.cfg.Stores)}
}

// sent checks what the processes just sent: a replica grants at most one
// candidate its vote in a term (a vote is synced before it is sent, so
// even a grant the network loses binds it).
func (c *checker) sent(env []*grpcnet.Envelope) {
	for _, e := range env {
		b, ok := e.Msg.(*rangekvpb.RaftMessageBatch)
		if !ok || e.Method != raftStreamMethod || !e.ToServer {
			continue
		}
		for _, m := range b.GetMessages() {
			msg := m.GetMessage()
			if msg.GetType() != raftpb.MsgVoteResp || msg.GetReject() {
				continue
			}
			k := [3]uint64{m.GetRangeId(), msg.GetFrom(), msg.GetTerm()}
			if prev, ok := c.votes[k]; ok && prev != msg.GetTo() {
				c.w.failf("two votes: range %d replica %d (store %d) voted in term %d for replicas %d and %d",
					k[0], k[1], m.GetFromStore(), k[2], prev, msg.GetTo())
			}
			c.votes[k] = msg.GetTo()
		}
	}
}

// storeStates is one up store's replicas.
type storeStates struct {
	id   uint64
	reps []store.ReplicaState
}

// status returns the replica states of every store that is up, in store
// order (store.ReplicaStates: no copies, no disk).
func (c *checker) status() []storeStates {
	var out []storeStates
	for i, p := range c.w.stores {
		// A pass under way holds its replicas' locks (even stopped at a
		// pass point): the store is looked at once it is over.
		if p.state == up && p.st != nil && p.run.quiet() {
			c.bufs[i] = p.st.ReplicaStates(c.bufs[i][:0])
			out = append(out, storeStates{id: p.st.StoreID(), reps: c.bufs[i]})
		}
	}
	return out
}

// observe checks the safety invariants visible in the stores' state now.
func (c *checker) observe() {
	w := c.w
	for _, ss := range c.status() {
		sid := ss.id
		for _, r := range ss.reps {
			if r.Leader {
				k := [2]uint64{r.RangeID, r.Term}
				if prev, ok := c.leaders[k]; ok && prev != sid {
					w.failf("two leaders: range %d term %d led by stores %d and %d", k[0], k[1], prev, sid)
				}
				c.leaders[k] = sid
			}
		}
		c.overlaps(ss)
	}
}

// overlaps checks that no two descriptors of one store's replicas
// overlap.
func (c *checker) overlaps(ss storeStates) {
	descs := c.descs[:0]
	for _, r := range ss.reps {
		if r.Descriptor != nil {
			descs = append(descs, r.Descriptor)
		}
	}
	c.descs = descs
	slices.SortFunc(descs, func(a, b *rangekvpb.RangeDescriptor) int { return bytes.Compare(a.StartKey, b.StartKey) })
	for i := 1; i < len(descs); i++ {
		a, b := descs[i-1], descs[i]
		k := [3]uint64{ss.id, a.RangeId, b.RangeId}
		if (len(a.EndKey) == 0 || bytes.Compare(a.EndKey, b.StartKey) > 0) && !c.overlapped[k] {
			c.overlapped[k] = true
			c.w.failf("store %d: descriptors overlap: range %d [%q, %q) and range %d [%q, %q)", ss.id,
				a.RangeId, a.StartKey, a.EndKey, b.RangeId, b.StartKey, b.EndKey)
		}
	}
}

// settled reports whether every process is up and every range has one
// leader, all its voters, and the same applied index on each replica;
// then it checks the replicas' data.
func (c *checker) settled() bool {
	w := c.w
	for _, p := range w.stores {
		if p.state != up {
			c.last = fmt.Sprintf("s%d is %s", p.idx+1, p.state)
			return false
		}
	}
	for _, m := range w.members {
		if m.state != up {
			c.last = fmt.Sprintf("pd%d is %s", m.id, m.state)
			return false
		}
	}
	if len(w.parked) > 0 {
		c.last = "a goroutine is stopped at " + w.parked[0].what
		return false
	}
	for _, p := range w.stores {
		if !p.run.quiet() {
			c.last = fmt.Sprintf("s%d has a pass under way", p.idx+1)
			return false
		}
	}
	st := c.status()
	type rangeView struct {
		desc    *rangekvpb.RangeDescriptor
		leaders int
		applied []uint64
		stores  []uint64
	}
	ranges := map[uint64]*rangeView{}
	for _, ss := range st {
		for _, r := range ss.reps {
			if r.Descriptor == nil {
				continue
			}
			id := r.RangeID
			v := ranges[id]
			if v == nil {
				v = &rangeView{}
				ranges[id] = v
			}
			if v.desc == nil || newer(r.Descriptor, v.desc) {
				v.desc = r.Descriptor
			}
			if r.Leader {
				v.leaders++
			}
			v.applied = append(v.applied, r.Applied)
			v.stores = append(v.stores, ss.id)
		}
	}
	if len(ranges) == 0 {
		c.last = "no ranges"
		return false
	}
	ids := make([]uint64, 0, len(ranges))
	for id := range ranges {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	want := min(3, len(w.stores))
	for _, id := range ids {
		v := ranges[id]
		voters := 0
		for _, r := range v.desc.GetReplicas() {
			if r.GetRole() == rangekvpb.ReplicaRole_VOTER {
				voters++
			}
		}
		switch {
		case v.leaders != 1:
			c.last = fmt.Sprintf("range %d has %d leaders", id, v.leaders)
			return false
		case voters != want || len(v.desc.GetReplicas()) != want:
			c.last = fmt.Sprintf("range %d has %d voters of %d replicas, want %d", id, voters, len(v.desc.GetReplicas()), want)
			return false
		case len(v.stores) != want:
			c.last = fmt.Sprintf("range %d is initialized on %d stores, want %d", id, len(v.stores), want)
			return false
		case slices.Min(v.applied) != slices.Max(v.applied):
			c.last = fmt.Sprintf("range %d applied indexes differ: %v", id, v.applied)
			return false
		}
	}
	c.digests(ids)
	return true
}

// digests checks that the replicas of each range, all at one applied
// index, hold the same data.
func (c *checker) digests(ids []uint64) {
	w := c.w
	for _, id := range ids {
		var first uint64
		var firstStore uint64
		var firstApplied uint64
		for _, p := range w.stores {
			applied, sum, ok := p.st.ReplicaDigest(id)
			if !ok {
				continue
			}
			if firstStore == 0 {
				first, firstStore, firstApplied = sum, p.st.StoreID(), applied
				continue
			}
			if applied == firstApplied && sum != first {
				w.failf("range %d: replicas at applied index %d differ: store %d digest %x, store %d digest %x",
					id, applied, firstStore, first, p.st.StoreID(), sum)
			}
		}
	}
}

func (c *checker) unsettled() string { return c.last }

// Check checks a run's history (outside the bubble: porcupine's timeout
// runs on package time) and adds what it finds to the failures.
func Check(res *Result) {
	res.Verdict = histcheck.Check(res.History, 20*time.Second)
	if res.Verdict.Violated() || len(res.Verdict.TimedOut) > 0 {
		res.Failures = append(res.Failures, "history: "+res.Verdict.String()+fmt.Sprintf(" violations %v lost %v timed out %v",
			res.Verdict.Violations, res.Verdict.LostWrites, res.Verdict.TimedOut))
	}
}

// newer reports whether descriptor a is a later version than b.
func newer(a, b *rangekvpb.RangeDescriptor) bool {
	ae, be := a.GetEpoch(), b.GetEpoch()
	if ae.GetVersion() != be.GetVersion() {
		return ae.GetVersion() > be.GetVersion()
	}
	return ae.GetConfVer() > be.GetConfVer()
}
