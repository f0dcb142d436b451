// The commit advance over real stores: a follower learns the commit of
// the last write of a range from the leader's advance, with no later
// write and no heartbeat to carry it.

package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/store"
)

// Raft's heartbeats are dropped once range 1 has its leader, and the
// leader never quiesces (its quiesce heartbeats carry the commit too):
// only the appends and the commit advances the write draws can tell the
// followers its commit. Every follower applies it within less than the election
// timeout (the term does not change: no new leader's entry did it), at
// least one advance went out, and the followers left its answer unsent.
func TestFollowerAppliesLastWriteThroughCommitAdvance(t *testing.T) {
	var dropBeats atomic.Bool
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.ElectionTimeout = 5 * time.Second
		cfg.ProposalTimeout = 10 * time.Second
		cfg.Knobs = &store.TestingKnobs{NoQuiesce: true, DropRaftMessage: func(_, _, _ uint64, typ string) bool {
			return dropBeats.Load() && typ == "MsgHeartbeat"
		}}
	}})
	lead := c.WaitLeader(1)
	cl := c.Client()
	if err := cl.Put(context.Background(), []byte("warm"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	counter := func(name string) float64 {
		var sum float64
		for _, s := range c.Stores {
			m, err := s.CountersForTest()
			if err != nil {
				t.Fatal(err)
			}
			sum += m[name]
		}
		return sum
	}
	dropBeats.Store(true)
	advances0 := counter("rangekv_raft_commit_advances_total")
	dropped0 := counter("rangekv_raft_commit_advance_answers_dropped_total")
	if err := cl.Put(context.Background(), []byte("last"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	st := c.ReplicaStatus(lead, 1)
	want, term := st.GetAppliedIndex(), st.GetTerm()
	// Below the election timeout: the followers heard the leader last
	// when the write's append or advance reached them.
	c.WaitFor("every follower to apply the last write", 4*time.Second, func() bool {
		for i := range c.Stores {
			if c.ReplicaStatus(i, 1).GetAppliedIndex() < want {
				return false
			}
		}
		return true
	})
	for i := range c.Stores {
		if got := c.ReplicaStatus(i, 1).GetTerm(); got != term {
			t.Fatalf("store %d is at term %d, want %d: an election, not the advance, may have committed", i+1, got, term)
		}
	}
	if n := counter("rangekv_raft_commit_advances_total") - advances0; n < 1 {
		t.Fatalf("commit advances sent for the write: %v, want at least 1", n)
	}
	c.WaitFor("the followers to drop the advances' answers", 30*time.Second, func() bool {
		return counter("rangekv_raft_commit_advance_answers_dropped_total")-dropped0 >= 1
	})
}
