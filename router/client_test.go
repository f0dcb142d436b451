package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func mustPut(t *testing.T, c *Client, k, v string) {
	t.Helper()
	if err := c.Put(tctx(t), []byte(k), []byte(v)); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func wantLog(t *testing.T, fc *fakeCluster, want ...string) {
	t.Helper()
	got := fc.takeLog()
	if !slices.Equal(got, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A cache miss loads the range and its neighbours in one GetRange and the
// leader's address in one GetStore; later requests go straight to the
// leader.
func TestPlacementMissPrefetchesNeighbours(t *testing.T) {
	fc := newFake(t, 3, "g", "p")
	c := fc.client(t)
	mustPut(t, c, "a", "1")
	wantLog(t, fc, "pd GetRange a", "pd GetStore 1", "s1 put a")
	mustPut(t, c, "h", "2")
	mustPut(t, c, "z", "3")
	wantLog(t, fc, "s1 put h", "s1 put z")
	want := "r1 [, g) v1/c1 stores=1,2,3 leader=s1\n" +
		"r2 [g, p) v1/c1 stores=1,2,3 leader=s1\n" +
		"r3 [p, +inf) v1/c1 stores=1,2,3 leader=s1\n"
	if got := describeCache(c); got != want {
		t.Errorf("cache:\n%swant:\n%s", got, want)
	}
}

// A leader change costs one extra round trip: NotLeader names the new
// leader and its address.
func TestLeaderChangeOneExtraRoundTrip(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.takeLog()
	fc.setLeader(1, 3)
	mustPut(t, c, "k", "2")
	wantLog(t, fc, "s1 put k", "s3 put k")
	mustPut(t, c, "k", "3")
	wantLog(t, fc, "s3 put k")
}

// A NotLeader hint without an address is resolved through GetStore.
func TestLeaderHintWithoutAddress(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.takeLog()
	fc.setLeader(1, 2)
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		if store == 1 {
			return &rangekvpb.RangeError{Message: "not leader", NotLeader: &rangekvpb.NotLeader{RangeId: 1, LeaderStoreId: 2}}, nil
		}
		return nil, nil
	})
	mustPut(t, c, "k", "2")
	wantLog(t, fc, "s1 put k", "pd GetStore 2", "s2 put k")
}

// After a split, the old epoch costs one extra round trip: EpochNotMatch
// carries both halves and the same store leads them.
func TestSplitOneExtraRoundTrip(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "a", "1")
	fc.takeLog()
	_, right := fc.split("m")
	mustPut(t, c, "x", "2")
	wantLog(t, fc, "s1 put x", "s1 put x")
	mustPut(t, c, "b", "3")
	wantLog(t, fc, "s1 put b")
	want := fmt.Sprintf("r1 [, m) v2/c1 stores=1,2,3 leader=s1\nr%d [m, +inf) v2/c1 stores=1,2,3 leader=s1\n", right.RangeId)
	if got := describeCache(c); got != want {
		t.Errorf("cache:\n%swant:\n%s", got, want)
	}
}

// RangeNotFound (the replica moved away) drops the range and reloads it
// from placement.
func TestRangeNotFoundReloads(t *testing.T) {
	fc := newFake(t, 4)
	fc.setRanges(nil, 1, 2, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.takeLog()
	fc.moveReplica(1, 1, 4)
	mustPut(t, c, "k", "2")
	wantLog(t, fc, "s1 put k", "pd GetRange k", "pd GetStore 4", "s4 put k")
	if got := describeCache(c); got != "r1 [, +inf) v1/c2 stores=4,2,3 leader=s4\n" {
		t.Errorf("cache:\n%s", got)
	}
}

// KeyNotInRange drops the range and reloads it from placement.
func TestKeyNotInRangeReloads(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.takeLog()
	var once atomic.Bool
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		if once.CompareAndSwap(false, true) {
			return &rangekvpb.RangeError{Message: "key not in range", KeyNotInRange: &rangekvpb.KeyNotInRange{Key: key, RangeId: 1}}, nil
		}
		return nil, nil
	})
	mustPut(t, c, "k", "2")
	wantLog(t, fc, "s1 put k", "pd GetRange k", "s1 put k")
}

// Placement's view lags (it still names the old leader): the store's hint
// corrects it.
func TestStalePlacementLeader(t *testing.T) {
	fc := newFake(t, 3)
	fc.setLeader(1, 2)
	fc.pdStale = []*rangekvpb.RouteInfo{{Descriptor_: fc.ranges[0], LeaderStoreId: 1}}
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	wantLog(t, fc, "pd GetRange k", "pd GetStore 1", "s1 put k", "s2 put k")
}

// An unreachable leader moves the range to the next replica, which names
// the new leader.
func TestUnreachableStoreNextReplica(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.stores[1].stop()
	waitDisconnected(t, c, fc.stores[1].addr)
	fc.setLeader(1, 3)
	fc.takeLog()
	mustPut(t, c, "k", "2")
	// s1 refuses the connection: the next voter (s2) redirects to s3.
	got := fc.takeLog()
	if !slices.Equal(got[len(got)-2:], []string{"s2 put k", "s3 put k"}) {
		t.Errorf("calls %v: want ... s2 put k, s3 put k", got)
	}
}

// A write whose outcome is unknown returns *AmbiguousError and is sent
// once: a store's AmbiguousResult, or a deadline after sending.
func TestAmbiguousWritesNotRetried(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "n", "0")
	fc.takeLog()
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		return &rangekvpb.RangeError{Message: "leadership lost", AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: "leadership lost"}}, nil
	})
	_, err := c.Incr(tctx(t), []byte("n"), 1)
	var amb *AmbiguousError
	if !errors.As(err, &amb) {
		t.Fatalf("incr: %v, want *AmbiguousError", err)
	}
	wantLog(t, fc, "s1 incr n")

	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		time.Sleep(300 * time.Millisecond)
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Put(ctx, []byte("n"), []byte("5")); !errors.As(err, &amb) {
		t.Fatalf("put past its deadline: %v, want *AmbiguousError", err)
	}
	wantLog(t, fc, "s1 put n")

	// A read in the same situation is retried (here until the deadline).
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		return nil, status.Error(codes.Unavailable, "connection reset")
	})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, _, err := c.Get(ctx2, []byte("n")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get: %v, want the deadline", err)
	}
	if n := len(fc.takeLog()); n < 2 {
		t.Errorf("get was tried %d times, want retries", n)
	}
}

// Refused before sending (every store down): a write is not ambiguous and
// the backoff ends with the context.
func TestBackoffBoundedByContext(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	for _, s := range fc.stores {
		s.stop()
		waitDisconnected(t, c, s.addr)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	err := c.Put(ctx, []byte("k"), []byte("2"))
	var amb *AmbiguousError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &amb) {
		t.Fatalf("put with every store down: %v, want the deadline (not ambiguous)", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("put returned after %s, want about the 400ms deadline", el)
	}
}

// Placement calls follow NotLeader redirects and skip members that are
// down.
func TestPlacementRedirectAndDownMember(t *testing.T) {
	fc := newFakeCluster(t)
	fc.addStore(1)
	down := fc.addPD(false)
	down.stop()
	fc.addPD(false)
	fc.addPD(true)
	fc.setRanges(nil, 1)
	c := fc.client(t)
	mustPut(t, c, "k", "v")
	got := fc.takeLog()
	want := []string{"pd GetRange k", "pd GetRange k", "pd GetStore 1", "s1 put k"}
	if !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v (the follower redirects once, then the leader answers)", got, want)
	}
}

// Scan reads every range (in parallel without a limit) and returns pairs
// in key order; with a limit it stops early.
func TestScanAcrossRanges(t *testing.T) {
	fc := newFake(t, 3, "d", "h", "p")
	c := fc.client(t)
	keys := []string{"a", "c", "d", "e", "h", "i", "o", "p", "q", "z"}
	for _, k := range keys {
		mustPut(t, c, k, "v"+k)
	}
	kvs, err := c.Scan(tctx(t), nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, string(kv.Key))
	}
	if !slices.Equal(got, keys) {
		t.Errorf("scan all: %v, want %v", got, keys)
	}
	kvs, err = c.Scan(tctx(t), []byte("b"), []byte("q"), 0)
	if err != nil || len(kvs) != 7 || string(kvs[0].Key) != "c" || string(kvs[6].Key) != "p" {
		t.Errorf("scan [b, q): %v %v", kvs, err)
	}
	fc.takeLog()
	kvs, err = c.Scan(tctx(t), []byte("b"), nil, 3)
	if err != nil || len(kvs) != 3 || string(kvs[2].Key) != "e" {
		t.Errorf("scan from b limit 3: %v %v", kvs, err)
	}
	wantLog(t, fc, "s1 scan b", "s1 scan d")

	// A split during the scan's life: the stale range is followed.
	fc.split("f")
	kvs, err = c.Scan(tctx(t), []byte("d"), []byte("h"), 0)
	if err != nil || len(kvs) != 2 {
		t.Errorf("scan after split: %v %v", kvs, err)
	}
}

// BatchGet and BatchPut group keys by range and keep the input order.
func TestBatch(t *testing.T) {
	fc := newFake(t, 3, "m")
	c := fc.client(t)
	pairs := []KeyValue{{[]byte("z"), []byte("1")}, {[]byte("a"), []byte("2")}, {[]byte("n"), []byte("3")}, {[]byte("a"), []byte("4")}}
	if err := c.BatchPut(tctx(t), pairs); err != nil {
		t.Fatal(err)
	}
	res, err := c.BatchGet(tctx(t), [][]byte{[]byte("n"), []byte("a"), []byte("nope"), []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprintf("%s=%s/%t", r.Key, r.Value, r.Found))
	}
	if want := []string{"n=3/true", "a=4/true", "nope=/false", "z=1/true"}; !slices.Equal(got, want) {
		t.Errorf("batch get %v, want %v", got, want)
	}

	// A failure stops the batch and says how much was written.
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		if string(key) == "b" {
			return &rangekvpb.RangeError{Message: "lost", AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: "lost"}}, nil
		}
		return nil, nil
	})
	err = c.BatchPut(tctx(t), []KeyValue{{[]byte("b"), []byte("1")}, {[]byte("c"), []byte("1")}})
	var be *BatchError
	var amb *AmbiguousError
	if !errors.As(err, &be) || !errors.As(err, &amb) || be.Written != 0 || string(be.Key) != "b" {
		t.Errorf("batch put with an ambiguous write: %v", err)
	}
}

// The static client still routes through the stores it was given.
func TestStaticClient(t *testing.T) {
	fc := newFake(t, 3, "m")
	fc.setLeader(2, 2)
	c, err := NewStatic(fc.storeAddrs(), Options{Seed: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustPut(t, c, "a", "1")
	wantLog(t, fc, "s1 put a", "s1 list-ranges")
	mustPut(t, c, "x", "2")
	wantLog(t, fc, "s1 put x", "s2 put x")
	mustPut(t, c, "y", "3")
	wantLog(t, fc, "s2 put y")
	// A leader change: one extra round trip.
	fc.setLeader(2, 3)
	mustPut(t, c, "y", "4")
	wantLog(t, fc, "s2 put y", "s3 put y")
	kvs, err := c.Scan(tctx(t), nil, nil, 0)
	if err != nil || len(kvs) != 3 {
		t.Errorf("scan: %v %v", kvs, err)
	}
	if _, err := c.Admin(); !errors.Is(err, ErrNoPlacement) {
		t.Errorf("Admin on a static client: %v", err)
	}
}

// Many requests missing the cache at once make one placement call.
func TestColdStartLoadsOnce(t *testing.T) {
	fc := newFake(t, 3, "m")
	c := fc.client(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, _, err := c.Get(tctx(t), []byte(fmt.Sprintf("k%02d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.calls["pd GetRange"] != 1 || fc.calls["pd GetStore"] != 1 {
		t.Errorf("placement calls: %d GetRange, %d GetStore; want 1 and 1", fc.calls["pd GetRange"], fc.calls["pd GetStore"])
	}
}

// ServerBusy and StaleCommand prove a write was not applied: it is retried
// (after a backoff) at the same leader, and the cache is left alone.
func TestBusyAndStaleRetried(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "1")
	fc.takeLog()
	var n atomic.Int32
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		switch n.Add(1) {
		case 1:
			return &rangekvpb.RangeError{Message: "busy", ServerBusy: &rangekvpb.ServerBusy{Reason: "queue full"}}, nil
		case 2:
			return &rangekvpb.RangeError{Message: "stale", StaleCommand: &rangekvpb.StaleCommand{Reason: "overwritten"}}, nil
		}
		return nil, nil
	})
	if _, err := c.Incr(tctx(t), []byte("n"), 1); err != nil {
		t.Fatal(err)
	}
	wantLog(t, fc, "s1 incr n", "s1 incr n", "s1 incr n")
	if got := describeCache(c); got != "r1 [, +inf) v1/c1 stores=1,2,3 leader=s1\n" {
		t.Errorf("cache:\n%s", got)
	}
}
