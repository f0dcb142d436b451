package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/store"
)

// mrTransportSample is one scrape of every store's transport counters.
type mrTransportSample struct {
	at         time.Time
	batches    []float64 // per store
	heartbeats []float64 // MsgHeartbeat sent, per store
}

func mrSampleTransport(t testing.TB, c *testcluster.Cluster, n int) mrTransportSample {
	s := mrTransportSample{at: time.Now()}
	for i := range n {
		m := mrMetrics(t, c.HTTPAddr(i))
		s.batches = append(s.batches, mrSum(m, "rangekv_transport_batches_sent_total"))
		s.heartbeats = append(s.heartbeats, mrSum(m, "rangekv_raft_messages_sent_total", `type="MsgHeartbeat"`))
	}
	return s
}

// mrTransportRate measures, over a window, the batches per peer stream per
// second (the highest of all stores) and the heartbeats sent per second
// (all stores together).
func mrTransportRate(t testing.TB, c *testcluster.Cluster, n int, window time.Duration) (batchesPerPeer, heartbeats float64) {
	a := mrSampleTransport(t, c, n)
	// A measurement window, not a wait for a condition.
	<-time.After(window)
	b := mrSampleTransport(t, c, n)
	secs := b.at.Sub(a.at).Seconds()
	for i := range n {
		batchesPerPeer = max(batchesPerPeer, (b.batches[i]-a.batches[i])/float64(n-1)/secs)
		heartbeats += (b.heartbeats[i] - a.heartbeats[i]) / secs
	}
	return batchesPerPeer, heartbeats
}

// Heartbeats of all ranges between two stores travel coalesced in the
// per-peer flush (twice per heartbeat interval, which doubles as the
// store liveness ping): the batches a store sends per peer per second stay
// at about 2/heartbeat-interval whether the stores hold one idle range,
// fifty quiescent ranges, or fifty ranges that heartbeat every tick.
func TestMultiraftCoalescedHeartbeatsBatchRate(t *testing.T) {
	const (
		n         = 3
		heartbeat = 25 * time.Millisecond
		window    = 2 * time.Second
		ranges    = 50
	)
	// Phase 3 keeps ranges awake by dropping the leader store's MsgApps to
	// one follower store (the leader keeps heartbeating a lagging, live
	// follower); drops happen before the transport, so they add nothing.
	var lagTo atomic.Uint64
	c := testcluster.Start(t, n, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.HeartbeatInterval = heartbeat
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(_, _, to uint64, typ string) bool {
			return typ == "MsgApp" && to == lagTo.Load()
		}}
	}})
	all := mrStoreIdx(n)
	c.WaitLeader(1)
	// Allowed: one flush per half interval, plus 25% and 5/s of slack for
	// the occasional extra batch (an election, a wake).
	limit := 2/heartbeat.Seconds()*1.25 + 5

	mrWaitQuiescent(t, c, all, 10*time.Second)
	one, hb1 := mrTransportRate(t, c, n, window)
	t.Logf("1 quiescent range: %.1f batches/peer/s, %.0f heartbeats/s", one, hb1)

	mrSplitDown(t, c, mrSplitKeys("h", ranges))
	descs := mrWaitDescriptorsAgree(t, c, all, ranges, 15*time.Second)
	mrWaitQuiescent(t, c, all, 10*time.Second)
	quiet, hbq := mrTransportRate(t, c, n, window)
	t.Logf("%d quiescent ranges: %.1f batches/peer/s, %.0f heartbeats/s", ranges, quiet, hbq)

	// Wake every range and keep it awake: its leader's MsgApps to one
	// follower store are dropped, so that follower lags while live.
	lead := c.WaitLeader(1)
	follower := (lead + 1) % n
	lagTo.Store(uint64(follower + 1))
	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	for _, d := range descs {
		k := string(d.StartKey) + "/wake"
		if len(d.StartKey) == 0 {
			k = "a/wake"
		}
		if err := cl.Put(ctx, []byte(k), []byte("1")); err != nil {
			t.Fatalf("put into range %d: %v", d.RangeId, err)
		}
	}
	awakeLeaders := 0
	terms := map[uint64]uint64{}
	for _, d := range descs {
		if st := c.ReplicaStatus(lead, d.RangeId); st != nil && st.RaftState == "StateLeader" && !st.Quiescent {
			awakeLeaders++
			terms[d.RangeId] = st.Term
		}
	}
	active, hba := mrTransportRate(t, c, n, window)
	// CheckQuorum saw every follower's coalesced responses: over eight
	// election timeouts no awake leader stepped down.
	for id, term := range terms {
		if st := c.ReplicaStatus(lead, id); st == nil || st.RaftState != "StateLeader" || st.Term != term {
			t.Errorf("range %d: leader on store %d at term %d became %s at term %d while awake", id, lead+1, term, st.GetRaftState(), st.GetTerm())
		}
	}
	t.Logf("%d ranges, %d leaders on store %d awake: %.1f batches/peer/s, %.0f heartbeats/s", ranges, awakeLeaders, lead+1, active, hba)
	lagTo.Store(0)

	for _, r := range []struct {
		what string
		rate float64
	}{{"1 quiescent range", one}, {fmt.Sprintf("%d quiescent ranges", ranges), quiet}, {fmt.Sprintf("%d awake ranges", ranges), active}} {
		if r.rate > limit {
			t.Errorf("%s: %.1f batches per peer per second, more than %.1f (2 per heartbeat interval plus slack)", r.what, r.rate, limit)
		}
		// The liveness ping flows whatever the load (at least half the
		// nominal rate, even under the race detector).
		if r.rate < 1/heartbeat.Seconds() {
			t.Errorf("%s: %.1f batches per peer per second, fewer than one per heartbeat interval: the liveness ping is late", r.what, r.rate)
		}
	}
	if active > 1.5*one+5 {
		t.Errorf("batch rate grows with active ranges: %.1f/s with %d awake ranges vs %.1f/s with 1 range", active, ranges, one)
	}
	// The heartbeats did flow (each awake leader beats 2 followers per
	// tick), many per batch.
	if awakeLeaders < ranges*9/10 {
		t.Fatalf("only %d of %d ranges were awake on store %d", awakeLeaders, ranges, lead+1)
	}
	if wantHB := float64(awakeLeaders*(n-1)) / heartbeat.Seconds() / 4; hba < wantHB {
		t.Errorf("%.0f heartbeats/s with %d awake leaders, want at least %.0f", hba, awakeLeaders, wantHB)
	}
	if perBatch := hba / (active * float64(n-1)); perBatch < 10 {
		t.Errorf("%.1f heartbeats per batch from the leader store: heartbeats are not coalesced", perBatch)
	}
}
