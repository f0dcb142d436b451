package store_test

// Routing under change, through the real router against placement and
// four stores: a workload keeps running while ranges split and replicas
// and leaders move; a stale cache costs exactly one extra round trip; a
// write whose answer is lost is surfaced as unknown and applied at most
// once.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// kvCounter counts the KV calls a client sends to stores, and can cut the
// answer of Incr calls after they were sent (as a connection lost after
// the request went out).
type kvCounter struct {
	calls    atomic.Int64
	cutIncrs atomic.Bool
}

func (k *kvCounter) interceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	kv := len(method) > len("/rangekv.KV/") && method[:len("/rangekv.KV/")] == "/rangekv.KV/"
	if kv {
		k.calls.Add(1)
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	if method == "/rangekv.KV/Incr" && k.cutIncrs.Load() {
		return status.Error(codes.Unavailable, "connection cut after the request was sent")
	}
	return err
}

// streamInterceptor does the same for calls on BatchCommands streams
// (what the router uses): it counts the calls of each message sent, and
// cuts the stream when an Incr's answer arrives (as a lost connection).
func (k *kvCounter) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != "/rangekv.KV/BatchCommands" {
		return cs, err
	}
	return &countingStream{ClientStream: cs, k: k, incrs: map[uint64]bool{}}, nil
}

type countingStream struct {
	grpc.ClientStream
	k     *kvCounter
	mu    sync.Mutex
	incrs map[uint64]bool // IDs of the Incr calls sent
}

func (s *countingStream) SendMsg(m any) error {
	if r, ok := m.(*rangekvpb.BatchCommandsRequest); ok {
		s.k.calls.Add(int64(len(r.Requests)))
		s.mu.Lock()
		for _, q := range r.Requests {
			if q.GetIncr() != nil {
				s.incrs[q.Id] = true
			}
		}
		s.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if r, ok := m.(*rangekvpb.BatchCommandsResponse); ok && err == nil && s.k.cutIncrs.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range r.Responses {
			if s.incrs[a.Id] {
				return status.Error(codes.Unavailable, "connection cut after the request was sent")
			}
		}
	}
	return err
}

func newRouter(t *testing.T, c *testcluster.PDCluster, k *kvCounter) *router.Client {
	t.Helper()
	opts := router.Options{Seed: 7}
	if k != nil {
		opts.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(k.interceptor), grpc.WithChainStreamInterceptor(k.streamInterceptor)}
	}
	cl, err := router.New(c.PDAddrs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// startReplicated starts placement (scheduler only when asked) and four
// stores, and repairs range 1 to three voters with a leader.
func startReplicated(t *testing.T) (*testcluster.PDCluster, *router.Admin) {
	t.Helper()
	c := testcluster.StartPD(t, 4, testcluster.PDOptions{InMemory: true,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour }})
	adm, err := newRouter(t, c, nil).Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := mrCtx(t, 60*time.Second)
	c.WaitFor("range 1 to have three voters and a leader", 60*time.Second, func() bool {
		st, err := adm.ClusterStatus(ctx)
		if err != nil {
			return false
		}
		up := 0
		for _, s := range st.Stores {
			if s.State == rangekvpb.StoreState_STORE_UP {
				up++
			}
		}
		if up == 4 && st.RangeCount == 1 && len(st.UnderReplicated) == 0 && len(st.Leaderless) == 0 && len(st.Operators) == 0 {
			ri, err := adm.RangeByID(ctx, 1)
			return err == nil && len(ri.Descriptor_.Replicas) == 3
		}
		if len(st.Operators) == 0 {
			adm.Rebalance(ctx, false) //nolint:errcheck // retried by WaitFor
		}
		return false
	})
	return c, adm
}

// waitOperator waits until op is no longer running; it reports whether
// it finished.
func waitOperator(ctx context.Context, adm *router.Admin, op *rangekvpb.OperatorInfo) bool {
	for ctx.Err() == nil {
		o, err := adm.Operator(ctx, op.Id)
		var nf *router.NotFoundError
		if errors.As(err, &nf) {
			return false
		}
		if err == nil && o.State != "running" {
			return o.State == "finished"
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return false
}

// leaderOn reports which store's replica leads rangeID, by the stores' own
// Raft status (0: none yet).
func leaderOn(c *testcluster.PDCluster, rangeID uint64) uint64 {
	for _, s := range c.Stores {
		if s == nil {
			continue
		}
		st := s.Status()
		for _, r := range st.Replicas {
			if r.GetDescriptor_().GetRangeId() == rangeID && r.RaftState == "StateLeader" {
				return st.StoreId
			}
		}
	}
	return 0
}

// keyModel is what one worker knows of one of its keys: the values it may
// hold (the last acknowledged one, plus any whose outcome is unknown).
type keyModel struct {
	possible []string
}

// TestRoutingUnderSplitsAndMoves: workers put, get and incr their own keys
// while the test splits ranges and moves replicas and leaders through the
// admin API. No error but an expired context reaches a caller, every read
// returns a value the key may hold, and at the end every acknowledged
// write is read back.
func TestRoutingUnderSplitsAndMoves(t *testing.T) {
	c, adm := startReplicated(t)
	const workers, keysPer = 4, 12
	stop := make(chan struct{})
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		failures  []string
		expired   atomic.Int64
		acked     atomic.Int64
		models    [workers]map[string]*keyModel
		counters  [workers]map[string][2]int64 // acked incrs, incrs of unknown outcome
		clients   [workers]*router.Client
		ambiguous atomic.Int64
	)
	// phase names the change in progress, for failure messages.
	var phase atomic.Value
	phase.Store("before any change")
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...)+" (during "+phase.Load().(string)+")")
		}
	}
	for w := range workers {
		models[w], counters[w] = map[string]*keyModel{}, map[string][2]int64{}
		clients[w] = newRouter(t, c, nil)
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			cl := clients[w]
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(keysPer)
				key := fmt.Sprintf("w%d/k%02d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				switch op := rng.IntN(3); op {
				case 0:
					v := fmt.Sprintf("w%d-%d", w, seq)
					err := cl.Put(ctx, []byte(key), []byte(v))
					m := models[w][key]
					if m == nil {
						m = &keyModel{possible: []string{""}} // "": absent
						models[w][key] = m
					}
					switch {
					case err == nil:
						m.possible = []string{v}
						acked.Add(1)
					case errors.Is(err, context.DeadlineExceeded):
						m.possible = append(m.possible, v)
						expired.Add(1)
					default:
						var amb *router.AmbiguousError
						if errors.As(err, &amb) {
							ambiguous.Add(1)
							m.possible = append(m.possible, v)
						}
						fail("put %s: %v", key, err)
					}
				case 1:
					v, found, err := cl.Get(ctx, []byte(key))
					switch {
					case err == nil:
						got := ""
						if found {
							got = string(v)
						}
						possible := []string{""}
						if m := models[w][key]; m != nil {
							possible = m.possible
						}
						if !slices.Contains(possible, got) {
							fail("get %s = %q, want one of %q", key, got, possible)
						}
					case errors.Is(err, context.DeadlineExceeded):
						expired.Add(1)
					default:
						fail("get %s: %v", key, err)
					}
				case 2:
					ck := fmt.Sprintf("w%d/c%d", w, i%3)
					n := counters[w][ck]
					_, err := cl.Incr(ctx, []byte(ck), 1)
					switch {
					case err == nil:
						n[0]++
						acked.Add(1)
					case errors.Is(err, context.DeadlineExceeded):
						n[1]++
						expired.Add(1)
					default:
						var amb *router.AmbiguousError
						if errors.As(err, &amb) {
							ambiguous.Add(1)
							n[1]++
						}
						fail("incr %s: %v", ck, err)
					}
					counters[w][ck] = n
				}
				cancel()
			}
		})
	}

	// The changes, one after the other, each waited for.
	ctx := mrCtx(t, 120*time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	splits, moves, transfers, leaderMoves, moveAttempts := 0, 0, 0, 0, 0
	stores, err := adm.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var storeIDs []uint64
	for _, s := range stores {
		storeIDs = append(storeIDs, s.GetStore().GetStoreId())
	}
	for _, sk := range []string{"w1/", "w2/", "w3/", "w0/k06", "w1/k06", "w2/k06", "w3/k06"} {
		phase.Store("split at " + sk)
		if _, _, err := adm.Split(ctx, []byte(sk)); err != nil {
			t.Logf("split at %s: %v", sk, err)
		} else {
			splits++
		}
		routes, err := adm.Ranges(ctx, nil, nil, 0)
		if err != nil {
			t.Fatalf("ranges: %v", err)
		}
		ri := routes[rng.IntN(len(routes))]
		d := ri.Descriptor_
		// Move a replica to the store that does not hold one.
		var to, from uint64
		for _, s := range storeIDs {
			if !slices.ContainsFunc(d.Replicas, func(r *rangekvpb.ReplicaDescriptor) bool { return r.StoreId == s }) {
				to = s
			}
		}
		// Every other move takes the leader's own replica away (the
		// operator hands leadership over first), the others a follower's.
		lead := leaderOn(c, d.RangeId)
		var others []uint64
		for _, r := range d.Replicas {
			if (r.StoreId == lead) == (moveAttempts%2 == 0) {
				others = append(others, r.StoreId)
			}
		}
		moveAttempts++
		if len(others) == 0 {
			continue
		}
		from = others[rng.IntN(len(others))]
		phase.Store(fmt.Sprintf("move of range %d from store %d (leader %d) to %d", d.RangeId, from, ri.LeaderStoreId, to))
		if op, err := adm.MoveReplica(ctx, d.RangeId, from, to); err != nil {
			t.Logf("move range %d from %d to %d: %v", d.RangeId, from, to, err)
		} else if waitOperator(ctx, adm, op) {
			moves++
			if from == lead {
				leaderMoves++
			}
		}
		// Move another range's leadership.
		ri = routes[rng.IntN(len(routes))]
		if ri, err = adm.RangeByID(ctx, ri.Descriptor_.RangeId); err != nil {
			continue
		}
		var target uint64
		for _, r := range ri.Descriptor_.Replicas {
			if r.StoreId != ri.LeaderStoreId && r.Role == rangekvpb.ReplicaRole_VOTER {
				target = r.StoreId
			}
		}
		phase.Store(fmt.Sprintf("leader transfer of range %d from store %d to %d", ri.Descriptor_.RangeId, ri.LeaderStoreId, target))
		if op, err := adm.TransferLeader(ctx, ri.Descriptor_.RangeId, target); err != nil {
			t.Logf("transfer range %d to %d: %v", ri.Descriptor_.RangeId, target, err)
		} else if waitOperator(ctx, adm, op) {
			transfers++
		}
	}
	phase.Store("after the changes")
	close(stop)
	wg.Wait()
	t.Logf("%d splits, %d replica moves, %d leader transfers under %d acknowledged writes (%d ops expired, %d ambiguous)",
		splits, moves, transfers, acked.Load(), expired.Load(), ambiguous.Load())
	t.Logf("%d of the moves took the leader's own replica away", leaderMoves)
	if splits < 5 || moves < 3 || transfers < 3 || leaderMoves < 1 {
		t.Errorf("too few changes happened (%d splits, %d moves (%d of a leader's replica), %d transfers): the test did not test much",
			splits, moves, leaderMoves, transfers)
	}
	for _, f := range failures {
		t.Error(f)
	}

	// Every acknowledged write reads back.
	cl := newRouter(t, c, nil)
	for w := range workers {
		for key, m := range models[w] {
			v, found, err := cl.Get(ctx, []byte(key))
			got := ""
			if found {
				got = string(v)
			}
			if err != nil || !slices.Contains(m.possible, got) {
				t.Errorf("final get %s = %q (%v), want one of %q", key, got, err, m.possible)
			}
		}
		for ck, n := range counters[w] {
			v, _, err := cl.Get(ctx, []byte(ck))
			got, _ := strconv.ParseInt(string(v), 10, 64)
			if err != nil || got < n[0] || got > n[0]+n[1] {
				t.Errorf("final counter %s = %d (%v), want %d acknowledged incrs (+ up to %d unknown)", ck, got, err, n[0], n[1])
			}
		}
	}
}

// A cache made stale by a split, then by a leader change, costs exactly
// one extra KV round trip each.
func TestRoutingStaleCacheOneExtraRoundTrip(t *testing.T) {
	c, adm := startReplicated(t)
	ctx := mrCtx(t, 60*time.Second)
	var k kvCounter
	cl := newRouter(t, c, &k)
	if err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}

	// A split by another client: cl's cache still says range 1 holds x.
	_, right, err := adm.Split(ctx, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	lead := leaderOn(c, 1)
	c.WaitFor("the new right range to elect its leader beside the left one", 10*time.Second, func() bool {
		return leaderOn(c, right.RangeId) == lead && leaderOn(c, 1) == lead
	})
	before := k.calls.Load()
	if err := cl.Put(ctx, []byte("x"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if n := k.calls.Load() - before; n != 2 {
		t.Errorf("put after a split: %d KV calls, want 2 (EpochNotMatch, then the right range)", n)
	}

	// A leader change by another client.
	ri, err := adm.RangeByID(ctx, right.RangeId)
	if err != nil {
		t.Fatal(err)
	}
	var to uint64
	for _, r := range ri.Descriptor_.Replicas {
		if r.StoreId != lead {
			to = r.StoreId
		}
	}
	op, err := adm.TransferLeader(ctx, right.RangeId, to)
	if err != nil {
		t.Fatal(err)
	}
	if !waitOperator(ctx, adm, op) {
		t.Fatalf("leader transfer to store %d did not finish", to)
	}
	c.WaitFor("every replica to know the new leader", 10*time.Second, func() bool {
		if leaderOn(c, right.RangeId) != to {
			return false
		}
		for _, s := range c.Stores {
			for _, r := range s.Status().Replicas {
				if r.GetDescriptor_().GetRangeId() == right.RangeId && r.LeaderReplicaId != replicaOf(ri.Descriptor_, to) {
					return false
				}
			}
		}
		return true
	})
	before = k.calls.Load()
	if err := cl.Put(ctx, []byte("y"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if n := k.calls.Load() - before; n != 2 {
		t.Errorf("put after a leader change: %d KV calls, want 2 (NotLeader with the new leader, then it)", n)
	}
	before = k.calls.Load()
	if err := cl.Put(ctx, []byte("z"), []byte("4")); err != nil {
		t.Fatal(err)
	}
	if n := k.calls.Load() - before; n != 1 {
		t.Errorf("put with a current cache: %d KV calls, want 1", n)
	}
}

func replicaOf(d *rangekvpb.RangeDescriptor, storeID uint64) uint64 {
	for _, r := range d.Replicas {
		if r.StoreId == storeID {
			return r.ReplicaId
		}
	}
	return 0
}

// An Incr whose answer is lost after it was sent is surfaced as
// *AmbiguousError, sent once, and applied once.
func TestRoutingUnknownOutcomeNotRetried(t *testing.T) {
	c, _ := startReplicated(t)
	ctx := mrCtx(t, 60*time.Second)
	var k kvCounter
	cl := newRouter(t, c, &k)
	if _, err := cl.Incr(ctx, []byte("n"), 1); err != nil {
		t.Fatal(err)
	}
	k.cutIncrs.Store(true)
	before := k.calls.Load()
	_, err := cl.Incr(ctx, []byte("n"), 1)
	var amb *router.AmbiguousError
	if !errors.As(err, &amb) {
		t.Fatalf("incr with its answer lost: %v, want *AmbiguousError", err)
	}
	if n := k.calls.Load() - before; n != 1 {
		t.Errorf("incr with its answer lost was sent %d times, want once", n)
	}
	k.cutIncrs.Store(false)
	v, _, err := cl.Get(ctx, []byte("n"))
	if err != nil || string(v) != "2" {
		t.Fatalf("counter = %q (%v), want 2: the lost incr applied exactly once", v, err)
	}
}
