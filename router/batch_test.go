package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func sortedLog(fc *fakeCluster) []string {
	l := fc.takeLog()
	sort.Strings(l)
	return l
}

func dataOf(fc *fakeCluster) string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var ks []string
	for k := range fc.data {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	out := ""
	for _, k := range ks {
		out += fmt.Sprintf("%s=%s ", k, fc.data[k])
	}
	return out
}

// A batch is one request per range: keys of a range travel together, in
// input order (the last of duplicate keys wins).
func TestBatchOneRequestPerRange(t *testing.T) {
	fc := newFake(t, 3, "g", "p")
	c := fc.client(t)
	mustPut(t, c, "a", "0") // load the cache
	fc.takeLog()
	ops := []BatchOp{{Key: []byte("b"), Value: []byte("1")}, {Key: []byte("h"), Value: []byte("2")},
		{Key: []byte("a"), Delete: true}, {Key: []byte("b"), Value: []byte("3")}, {Key: []byte("q"), Value: []byte("4")}}
	if err := c.Batch(tctx(t), ops); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedLog(fc), []string{"s1 batch b", "s1 batch h", "s1 batch q"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if got, want := dataOf(fc), "b=3 h=2 q=4 "; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
	if err := c.BatchDelete(tctx(t), [][]byte{[]byte("b"), []byte("q")}); err != nil {
		t.Fatal(err)
	}
	if got, want := dataOf(fc), "h=2 "; got != want {
		t.Errorf("data after BatchDelete %q, want %q", got, want)
	}
}

// A split the cache has not seen: the batch sent to the old range gets
// EpochNotMatch with both halves, is regrouped, and each half is sent
// once: one extra round trip, no placement call.
func TestBatchAcrossSplitOneExtraRoundTrip(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "a", "0")
	fc.takeLog()
	fc.split("m")
	if err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("x"), []byte("2")}, {[]byte("b"), []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedLog(fc), []string{"s1 batch a", "s1 batch a", "s1 batch x"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if got, want := dataOf(fc), "a=1 b=3 x=2 "; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
	// The cache is current: the next batch costs one request per range.
	if err := c.BatchPut(tctx(t), []KeyValue{{[]byte("c"), []byte("1")}, {[]byte("y"), []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedLog(fc), []string{"s1 batch c", "s1 batch y"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// A leader change costs one extra round trip per range batch.
func TestBatchLeaderChangeOneExtraRoundTrip(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "a", "0")
	fc.takeLog()
	fc.setLeader(1, 2)
	if err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	wantLog(t, fc, "s1 batch a", "s2 batch a")
}

// A per-range batch whose outcome is unknown is sent once and surfaces as
// *AmbiguousError inside *BatchError: a store's AmbiguousResult, or the
// connection failing after the request went out.
func TestBatchAmbiguousNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func() (*rangekvpb.RangeError, error)
	}{
		{"ambiguous result", func() (*rangekvpb.RangeError, error) {
			return &rangekvpb.RangeError{Message: "leadership lost", AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: "leadership lost"}}, nil
		}},
		{"connection cut", func() (*rangekvpb.RangeError, error) {
			return nil, status.Error(codes.Unavailable, "connection reset")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFake(t, 3)
			c := fc.client(t)
			mustPut(t, c, "a", "0")
			fc.takeLog()
			fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
				if op == "batch" {
					return tc.inject()
				}
				return nil, nil
			})
			err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}})
			var be *BatchError
			var amb *AmbiguousError
			if !errors.As(err, &be) || !errors.As(err, &amb) {
				t.Fatalf("batch: %v, want *BatchError wrapping *AmbiguousError", err)
			}
			if be.Written != 0 || be.Total != 2 || string(be.Key) != "a" {
				t.Errorf("BatchError %+v, want written 0 of 2 at key a", be)
			}
			wantLog(t, fc, "s1 batch a")
		})
	}
}

// Range errors that prove the batch did not apply are retried; an invalid
// batch is not.
func TestBatchRetriesRefusedNotInvalid(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "a", "0")
	fc.takeLog()
	n := 0
	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		if op != "batch" {
			return nil, nil
		}
		if n++; n == 1 {
			return &rangekvpb.RangeError{Message: "busy", ServerBusy: &rangekvpb.ServerBusy{}}, nil
		}
		if n == 2 {
			return &rangekvpb.RangeError{Message: "stale", StaleCommand: &rangekvpb.StaleCommand{}}, nil
		}
		return nil, nil
	})
	if err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	wantLog(t, fc, "s1 batch a", "s1 batch a", "s1 batch a")

	fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
		return nil, status.Error(codes.InvalidArgument, "ops: 20000 ops exceeds the limit of 10000 ops per batch")
	})
	err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}})
	if status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Errorf("invalid batch: %v, want InvalidArgument", err)
	}
	wantLog(t, fc, "s1 batch a")
}

// A context that ends before anything is sent fails the batch with the
// context's error.
func TestBatchContextEnded(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.BatchPut(ctx, []KeyValue{{[]byte("a"), []byte("1")}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("batch with a cancelled context: %v", err)
	}
}

// A static client that knows no range yet sends the keys together; the
// store's KeyNotInRange teaches it the ranges, and the batch is regrouped
// and written per range, all of it.
func TestBatchStaticClientLearnsAndRegroups(t *testing.T) {
	fc := newFake(t, 3, "m")
	c, err := NewStatic(fc.storeAddrs(), Options{Seed: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pairs := []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("x"), []byte("2")}, {[]byte("b"), []byte("3")}}
	if err := c.BatchPut(tctx(t), pairs); err != nil {
		t.Fatal(err)
	}
	if got, want := dataOf(fc), "a=1 b=3 x=2 "; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
	var batches []string
	for _, l := range sortedLog(fc) {
		if strings.Contains(l, "batch") {
			batches = append(batches, l)
		}
	}
	// The first (refused) batch of all keys, then one per range.
	if want := []string{"s1 batch a", "s1 batch a", "s1 batch x"}; !slices.Equal(batches, want) {
		t.Errorf("batch calls %v, want %v", batches, want)
	}
}

// With one range at a time, a batch whose first range fails starts no
// other: the failure is recorded before its slot is freed. The next
// range's batch used to take the slot first and then either went out
// after the failure or, finding the batch stopped, counted its ops as
// written.
func TestBatchStopsAfterFailureOneAtATime(t *testing.T) {
	fc := newFake(t, 3, "b")
	c, err := New(fc.pdAddrs(), Options{Seed: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		ConnectTimeout: 200 * time.Millisecond, MaxFanout: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mustPut(t, c, "a", "0")
	mustPut(t, c, "b", "0")
	for range 20 {
		fc.takeLog()
		fc.setInject(func(store uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
			if op == "batch" && string(key) == "a" {
				return &rangekvpb.RangeError{Message: "leadership lost", AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: "leadership lost"}}, nil
			}
			return nil, nil
		})
		err := c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}})
		var be *BatchError
		if !errors.As(err, &be) || be.Written != 0 || be.Total != 2 || string(be.Key) != "a" {
			t.Fatalf("batch: %v (%+v), want written 0 of 2, failed at key a", err, be)
		}
		wantLog(t, fc, "s1 batch a")
	}
}
