package store_test

// Read consistency levels end to end on a three-store in-process cluster:
// what each level promises after a write the leader acknowledged, and what
// a follower or a leader cut off from the others does.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// partitionable starts a cluster whose stores drop every Raft message to or
// from the store whose ID is in cut (0: none). Liveness pings still flow,
// so no follower forgets its leader early: elections run on Raft's timers.
func partitionable(t *testing.T) (*testcluster.Cluster, *atomic.Uint64) {
	cut := new(atomic.Uint64)
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.Knobs = &store.TestingKnobs{DropRaftMessage: func(_, from, to uint64, _ string) bool {
			id := cut.Load()
			return id != 0 && (from == id || to == id)
		}}
	}})
	return c, cut
}

// getAt reads key from exactly the store behind kv at consistency c. It
// returns the range error, if any, instead of a value.
func getAt(ctx context.Context, kv rangekvpb.KVClient, key string, c rangekvpb.ReadConsistency) (val string, found bool, rerr *rangekvpb.RangeError, err error) {
	resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: &rangekvpb.RequestHeader{Consistency: c}, Key: []byte(key)})
	if err != nil {
		return "", false, nil, err
	}
	if e := resp.GetHeader().GetError(); e != nil {
		return "", false, e, nil
	}
	return string(resp.Value), resp.Found, nil, nil
}

func readsMetric(t *testing.T, c *testcluster.Cluster, i int, path string) float64 {
	return metricValue(t, c.HTTPAddr(i), fmt.Sprintf("rangekv_kv_reads_total{path=%q}", path))
}

// After each acknowledged write, LINEARIZABLE and LEASE reads (at the
// leader) and FOLLOWER reads sent to each follower see it; the leader
// serves most LEASE reads from its lease and the followers serve FOLLOWER
// reads themselves.
func TestReadLevelsSeeAcknowledgedWrites(t *testing.T) {
	c, _ := partitionable(t)
	lead := c.WaitLeader(rangeOne)
	cl := c.Client()
	ctx := opCtx(t)
	var followers []int
	for i := range 3 {
		if i != lead {
			followers = append(followers, i)
		}
	}
	const writes = 30
	for n := range writes {
		want := fmt.Sprintf("v%d", n)
		mustPut(t, cl, "key", want)
		for _, cons := range []rangekvpb.ReadConsistency{rangekvpb.ReadConsistency_LINEARIZABLE, rangekvpb.ReadConsistency_LEASE} {
			v, found, err := cl.GetWith(ctx, []byte("key"), cons)
			if err != nil || !found || string(v) != want {
				t.Fatalf("write %d: %s read = (%q, %v, %v), want %q", n, cons, v, found, err, want)
			}
		}
		for _, f := range followers {
			v, found, rerr, err := getAt(ctx, kvClient(t, c.Addrs[f]), "key", rangekvpb.ReadConsistency_FOLLOWER)
			if err != nil || rerr != nil || !found || v != want {
				t.Fatalf("write %d: FOLLOWER read on store %d = (%q, %v, range error %v, %v), want %q", n, f+1, v, found, rerr, err, want)
			}
		}
	}
	// Per path, over all stores (leadership may move during the test).
	sum := func(path string) float64 {
		n := 0.0
		for i := range 3 {
			n += readsMetric(t, c, i, path)
		}
		return n
	}
	if got := sum("lease"); got < 1 {
		t.Fatalf("%v reads served from a lease, want some of the %d LEASE reads", got, writes)
	}
	if got := sum("follower"); got < 1 {
		t.Fatalf("%v reads served by followers, want some of the %d FOLLOWER reads", got, 2*writes)
	}
	if got, want := sum("lease")+sum("read_index")+sum("follower"), float64(4*writes); got < want {
		t.Fatalf("%v linearizable reads counted, want at least %v", got, want)
	}
}

// A follower cut off from the leader serves STALE reads that lag behind an
// acknowledged write, refuses FOLLOWER reads (a retryable range error, never
// its old value), and serves the new value at FOLLOWER once reconnected.
func TestCutOffFollowerServesStaleRefusesFollowerReads(t *testing.T) {
	c, cut := partitionable(t)
	lead := c.WaitLeader(rangeOne)
	f := (lead + 1) % 3
	cl := c.Client()
	ctx := opCtx(t)
	fkv := kvClient(t, c.Addrs[f])
	mustPut(t, cl, "k", "old")
	c.WaitFor("follower applied the first write", 10*time.Second, func() bool {
		v, _, err := staleGet(ctx, fkv, "k")
		return err == nil && v == "old"
	})

	cut.Store(uint64(f + 1))
	mustPut(t, cl, "k", "new")
	if v, _, err := staleGet(ctx, fkv, "k"); err != nil || v != "old" {
		t.Fatalf("STALE read on the cut-off follower = (%q, %v), want the lagging \"old\"", v, err)
	}
	for i := range 3 {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, found, rerr, err := getAt(rctx, fkv, "k", rangekvpb.ReadConsistency_FOLLOWER)
		cancel()
		if err != nil {
			t.Fatalf("FOLLOWER read %d on the cut-off follower: %v, want a range error", i, err)
		}
		if rerr == nil {
			t.Fatalf("FOLLOWER read %d on the cut-off follower served (%q, %v), want a refusal", i, v, found)
		}
		if rerr.NotLeader == nil && rerr.ServerBusy == nil {
			t.Fatalf("FOLLOWER read %d refused with %v, want NotLeader or ServerBusy (retryable)", i, rerr)
		}
	}

	cut.Store(0)
	c.WaitFor("FOLLOWER read of the new value after reconnecting", 15*time.Second, func() bool {
		v, _, rerr, err := getAt(ctx, fkv, "k", rangekvpb.ReadConsistency_FOLLOWER)
		if err == nil && rerr == nil && v != "new" {
			t.Fatalf("FOLLOWER read after reconnecting = %q, want \"new\"", v)
		}
		return err == nil && rerr == nil
	})
}

// A leader cut off from the others is replaced; once the new leader
// acknowledged a write, a LEASE read at the old leader never returns the
// old value: its lease ran out before anyone else could be elected.
func TestPartitionedLeaderStopsServingLeaseReads(t *testing.T) {
	c, cut := partitionable(t)
	old := c.WaitLeader(rangeOne)
	cl := c.Client()
	ctx := opCtx(t)
	okv := kvClient(t, c.Addrs[old])
	mustPut(t, cl, "k", "old")
	for range 5 {
		if v, _, rerr, err := getAt(ctx, okv, "k", rangekvpb.ReadConsistency_LEASE); err != nil || rerr != nil || v != "old" {
			t.Fatalf("LEASE read on the leader = (%q, %v, %v)", v, rerr, err)
		}
	}
	if got := readsMetric(t, c, old, "lease"); got < 1 {
		t.Fatalf("leader served %v reads from its lease before the partition, want some", got)
	}

	cut.Store(uint64(old + 1))
	// Keep asking the old leader for LEASE reads from the moment of the
	// partition; report each answer with the time its request was sent.
	type attempt struct {
		sent time.Time
		val  string
		ok   bool
	}
	attempts := make(chan attempt)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			v, _, rerr, err := getAt(rctx, okv, "k", rangekvpb.ReadConsistency_LEASE)
			cancel()
			select {
			case attempts <- attempt{sent, v, err == nil && rerr == nil}:
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	drain := func() {
		for {
			select {
			case <-attempts:
			default:
				return
			}
		}
	}

	// Writes sent to the other stores also wake their replicas if the
	// range had quiesced (liveness still hears the old leader's store).
	others := map[int]rangekvpb.KVClient{}
	for i := range 3 {
		if i != old {
			others[i] = kvClient(t, c.Addrs[i])
		}
	}
	c.WaitFor("another store acknowledging a write as leader", 15*time.Second, func() bool {
		drain()
		for _, kv := range others {
			resp, err := kv.Put(ctx, &rangekvpb.PutRequest{Header: &rangekvpb.RequestHeader{}, Key: []byte("k"), Value: []byte("new")})
			if err == nil && resp.GetHeader().GetError() == nil {
				return true
			}
		}
		return false
	})
	acked := time.Now()
	// Every LEASE read sent to the old leader after the acknowledgement
	// is refused or sees the new value (the old leader may have rejoined).
	for checked := 0; checked < 20; {
		a := <-attempts
		if !a.sent.After(acked) {
			continue
		}
		checked++
		if a.ok && a.val != "new" {
			t.Fatalf("old leader served LEASE read %q, sent %v after the new leader acknowledged \"new\"", a.val, a.sent.Sub(acked))
		}
	}
}
