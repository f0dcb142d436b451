package store_test

// KV semantics through the router against a three-store cluster: basic
// reads and writes on both engines, scans, request validation, and
// concurrent Incr and CAS.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

func TestPutGetDeleteInMemoryAndOnDisk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inMemory bool
	}{{"on-disk", false}, {"in-memory", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.Start(t, 3, testcluster.Options{InMemory: tc.inMemory})
			c.WaitLeader(rangeOne)
			cl := c.Client()
			ctx := opCtx(t)
			if _, found, err := cl.Get(ctx, []byte("k00")); err != nil || found {
				t.Fatalf("get before any write: found=%v err=%v", found, err)
			}
			want := map[string]string{}
			for i := range 20 {
				k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
				mustPut(t, cl, k, v)
				want[k] = v
			}
			mustPut(t, cl, "k03", "overwritten")
			want["k03"] = "overwritten"
			if err := cl.Delete(ctx, []byte("k05")); err != nil {
				t.Fatalf("delete: %v", err)
			}
			delete(want, "k05")
			if err := cl.Delete(ctx, []byte("never-written")); err != nil {
				t.Fatalf("delete of an absent key: %v", err)
			}
			// Empty values are values.
			mustPut(t, cl, "empty", "")
			want["empty"] = ""

			wantValues(t, cl, want)
			if _, found, err := cl.Get(ctx, []byte("k05")); err != nil || found {
				t.Fatalf("deleted key: found=%v err=%v", found, err)
			}
			wantScanAll(t, cl, want)
			// Every store holds the same data in its own engine.
			for i := range c.Stores {
				waitCaughtUp(t, c, i, 10*time.Second)
				wantStaleValues(t, kvClient(t, c.Addrs[i]), fmt.Sprintf("store %d", i+1), want)
			}
			if tc.inMemory {
				// And keeps it across a restart (the in-memory FS is kept;
				// on-disk restarts are covered by the failover tests).
				c.RestartStore(0)
				waitCaughtUp(t, c, 0, 20*time.Second)
				wantStaleValues(t, kvClient(t, c.Addrs[0]), "restarted store 1", want)
			}
		})
	}
}

func TestScanSemantics(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	lead := c.WaitLeader(rangeOne)
	cl := c.Client()
	// Byte order, not string-length or insertion order.
	data := map[string]string{
		"a": "1", "a\x00": "2", "ab": "3", "abc": "4", "b": "5",
		"ba": "6", "c": "7", "d\xff": "8", "e": "9", "\xff\xfe": "10",
	}
	// Insert in reverse order.
	ks := sortedKeys(data)
	for i := len(ks) - 1; i >= 0; i-- {
		mustPut(t, cl, ks[i], data[ks[i]])
	}
	mustPut(t, cl, "gone", "x")
	if err := cl.Delete(opCtx(t), []byte("gone")); err != nil {
		t.Fatal(err)
	}

	// Reference: a naive scan over the sorted keys.
	ref := func(start, end string, limit int) []string {
		var out []string
		for _, k := range ks {
			if k < start || (end != "" && k >= end) {
				continue
			}
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, k)
		}
		return out
	}
	bounds := []string{"", "a", "a\x00", "aa", "abc", "b", "bz", "c", "d", "\xff", "\xff\xff"}
	for _, start := range bounds {
		for _, end := range bounds {
			if end != "" && end < start {
				continue
			}
			for _, limit := range []int{0, 2} {
				got, err := cl.Scan(opCtx(t), []byte(start), []byte(end), limit)
				if err != nil {
					t.Fatalf("scan [%q, %q) limit %d: %v", start, end, limit, err)
				}
				want := ref(start, end, limit)
				var gotKeys []string
				for _, kv := range got {
					gotKeys = append(gotKeys, string(kv.Key))
					if string(kv.Value) != data[string(kv.Key)] {
						t.Fatalf("scan [%q, %q): %q=%q, want value %q", start, end, kv.Key, kv.Value, data[string(kv.Key)])
					}
				}
				if !slices.Equal(gotKeys, want) {
					t.Fatalf("scan [%q, %q) limit %d = %q, want %q", start, end, limit, gotKeys, want)
				}
			}
		}
	}

	// The wire: a scan stopped by its limit says where to resume; one that
	// reached its end bound does not.
	kv := kvClient(t, c.Addrs[lead])
	hdr := &rangekvpb.RequestHeader{}
	resp, err := kv.Scan(opCtx(t), &rangekvpb.ScanRequest{Header: hdr, StartKey: []byte("a"), EndKey: []byte("c"), Limit: 2})
	if err != nil || resp.GetHeader().GetError() != nil {
		t.Fatalf("scan: %v %v", err, resp.GetHeader().GetError())
	}
	if len(resp.Pairs) != 2 || !bytes.Equal(resp.ResumeKey, []byte("ab")) {
		t.Fatalf("limited scan: %d pairs, resume key %q; want 2 pairs, resume at \"ab\"", len(resp.Pairs), resp.ResumeKey)
	}
	resp, err = kv.Scan(opCtx(t), &rangekvpb.ScanRequest{Header: hdr, StartKey: []byte("a"), EndKey: []byte("c"), Limit: 6})
	if err != nil || resp.GetHeader().GetError() != nil {
		t.Fatalf("scan: %v %v", err, resp.GetHeader().GetError())
	}
	if len(resp.Pairs) != 6 || len(resp.ResumeKey) != 0 {
		t.Fatalf("complete scan: %d pairs, resume key %q; want 6 pairs, no resume key", len(resp.Pairs), resp.ResumeKey)
	}
}

// Every bad input is refused with InvalidArgument naming the field and the
// limit, and changes nothing; Incr refuses non-integers and overflow.
func TestInvalidRequestsRejected(t *testing.T) {
	const (
		maxKey   = 32
		maxValue = 64
		maxScan  = 10
	)
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.MaxKeySize, cfg.MaxValueSize, cfg.MaxScanLimit = maxKey, maxValue, maxScan
	}})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	want := map[string]string{
		"k":    "v",
		"text": "hello",
		"max":  strconv.FormatInt(math.MaxInt64, 10),
		"min":  strconv.FormatInt(math.MinInt64, 10),
		"num":  "41",
		// Boundaries are accepted.
		strings.Repeat("K", maxKey): strings.Repeat("V", maxValue),
	}
	for k, v := range want {
		mustPut(t, cl, k, v)
	}
	lead := c.WaitLeader(rangeOne)
	appliedBefore := replicaStatus(t, c, lead).AppliedIndex

	longKey := []byte(strings.Repeat("x", maxKey+1))
	longVal := []byte(strings.Repeat("y", maxValue+1))
	keyLimit := []string{"key", fmt.Sprint(maxKey + 1), fmt.Sprint(maxKey), "limits.max-key-size"}
	valueLimit := func(field string) []string {
		return []string{field, fmt.Sprint(maxValue + 1), fmt.Sprint(maxValue), "limits.max-value-size"}
	}
	empty := []string{"key", "empty"}
	errOf := func(_ any, err error) error { return err }
	errOf3 := func(_ []byte, _ bool, err error) error { return err }
	ctx := opCtx(t)
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		parts []string
	}{
		{"put empty key", func() error { return cl.Put(ctx, nil, []byte("v")) }, codes.InvalidArgument, empty},
		{"get empty key", func() error { return errOf3(cl.Get(ctx, nil)) }, codes.InvalidArgument, empty},
		{"delete empty key", func() error { return cl.Delete(ctx, nil) }, codes.InvalidArgument, empty},
		{"cas empty key", func() error { return errOf(cl.CAS(ctx, nil, nil, true, []byte("v"))) }, codes.InvalidArgument, empty},
		{"incr empty key", func() error { return errOf(cl.Incr(ctx, nil, 1)) }, codes.InvalidArgument, empty},

		{"put long key", func() error { return cl.Put(ctx, longKey, []byte("v")) }, codes.InvalidArgument, keyLimit},
		{"get long key", func() error { return errOf3(cl.Get(ctx, longKey)) }, codes.InvalidArgument, keyLimit},
		{"delete long key", func() error { return cl.Delete(ctx, longKey) }, codes.InvalidArgument, keyLimit},
		{"cas long key", func() error { return errOf(cl.CAS(ctx, longKey, nil, true, []byte("v"))) }, codes.InvalidArgument, keyLimit},
		{"incr long key", func() error { return errOf(cl.Incr(ctx, longKey, 1)) }, codes.InvalidArgument, keyLimit},

		{"put long value", func() error { return cl.Put(ctx, []byte("k"), longVal) }, codes.InvalidArgument, valueLimit("value")},
		{"cas long expected", func() error { return errOf(cl.CAS(ctx, []byte("k"), longVal, false, []byte("w"))) }, codes.InvalidArgument, valueLimit("expected")},
		{"cas long new value", func() error { return errOf(cl.CAS(ctx, []byte("k"), []byte("v"), false, longVal)) }, codes.InvalidArgument, valueLimit("new_value")},
		{"cas expected with expect_absent", func() error { return errOf(cl.CAS(ctx, []byte("k"), []byte("v"), true, []byte("w"))) }, codes.InvalidArgument, []string{"expected", "expect_absent"}},

		{"scan start after end", func() error { return errOf(cl.Scan(ctx, []byte("m"), []byte("c"), 0)) }, codes.InvalidArgument, []string{"start_key", "end_key"}},
		{"scan limit over max", func() error { return errOf(cl.Scan(ctx, nil, nil, maxScan+1)) }, codes.InvalidArgument, []string{"limit", fmt.Sprint(maxScan + 1), fmt.Sprint(maxScan), "limits.max-scan-limit"}},
		{"scan long start key", func() error { return errOf(cl.Scan(ctx, longKey, nil, 0)) }, codes.InvalidArgument, []string{"start_key", "limits.max-key-size"}},
		{"scan long end key", func() error { return errOf(cl.Scan(ctx, nil, longKey, 0)) }, codes.InvalidArgument, []string{"end_key", "limits.max-key-size"}},

		{"incr non-integer", func() error { return errOf(cl.Incr(ctx, []byte("text"), 1)) }, codes.FailedPrecondition, []string{`"text"`}},
		{"incr overflow", func() error { return errOf(cl.Incr(ctx, []byte("max"), 1)) }, codes.OutOfRange, []string{`"max"`}},
		{"incr underflow", func() error { return errOf(cl.Incr(ctx, []byte("min"), -1)) }, codes.OutOfRange, []string{`"min"`}},
		{"incr overflow by a large delta", func() error { return errOf(cl.Incr(ctx, []byte("num"), math.MaxInt64)) }, codes.OutOfRange, []string{`"num"`}},
	} {
		wantStatus(t, tc.name, tc.call(), tc.code, tc.parts...)
	}
	// Validation failures never reach Raft; only the three Incr refusals
	// computed at apply may have added entries. (A leader change adds one
	// more; tolerate a small number.)
	if st := c.ReplicaStatus(lead, rangeOne); st != nil && st.AppliedIndex > appliedBefore+4+2 {
		t.Errorf("applied index moved from %d to %d: rejected requests were proposed", appliedBefore, st.AppliedIndex)
	}

	wantValues(t, cl, want)
	wantScanAll(t, cl, want)

	// Incr still works on integers, at the edges too.
	if n, err := cl.Incr(ctx, []byte("num"), 1); err != nil || n != 42 {
		t.Fatalf("incr num = %d, %v; want 42", n, err)
	}
	if n, err := cl.Incr(ctx, []byte("max"), -1); err != nil || n != math.MaxInt64-1 {
		t.Fatalf("incr max by -1 = %d, %v", n, err)
	}
	if n, err := cl.Incr(ctx, []byte("fresh"), -7); err != nil || n != -7 {
		t.Fatalf("incr of an absent key = %d, %v; want -7", n, err)
	}
}

func TestCASSemantics(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	ctx := opCtx(t)
	k := []byte("cas")
	steps := []struct {
		name         string
		expected     string
		expectAbsent bool
		newValue     string
		want         router.CASResult
	}{
		{"expected value on an absent key", "x", false, "y", router.CASResult{Swapped: false, Found: false}},
		{"expected empty value on an absent key", "", false, "y", router.CASResult{Swapped: false, Found: false}},
		{"create when absent", "", true, "v1", router.CASResult{Swapped: true, Found: true, Value: []byte("v1")}},
		{"create when present", "", true, "v2", router.CASResult{Swapped: false, Found: true, Value: []byte("v1")}},
		{"wrong expected value", "v0", false, "v2", router.CASResult{Swapped: false, Found: true, Value: []byte("v1")}},
		{"right expected value", "v1", false, "v2", router.CASResult{Swapped: true, Found: true, Value: []byte("v2")}},
		{"swap to empty", "v2", false, "", router.CASResult{Swapped: true, Found: true, Value: nil}},
		{"expected empty value on an empty value", "", false, "v3", router.CASResult{Swapped: true, Found: true, Value: []byte("v3")}},
	}
	for _, st := range steps {
		var exp []byte
		if !st.expectAbsent {
			exp = []byte(st.expected)
		}
		got, err := cl.CAS(ctx, k, exp, st.expectAbsent, []byte(st.newValue))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got.Swapped != st.want.Swapped || got.Found != st.want.Found || !bytes.Equal(got.Value, st.want.Value) {
			t.Fatalf("%s: CAS = %+v, want %+v", st.name, got, st.want)
		}
	}
	v, found, err := cl.Get(ctx, k)
	if err != nil || !found || string(v) != "v3" {
		t.Fatalf("final value %q found=%v err=%v, want v3", v, found, err)
	}
}

// Concurrent Incr and CAS give the result of some serial execution: the
// counter equals the acknowledged increments (plus, at most, the ambiguous
// ones), and every acknowledged Incr and swapped CAS saw a distinct value.
func TestConcurrentIncrAndCASAreSerializable(t *testing.T) {
	const (
		goroutines = 16
		ops        = 50
	)
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(rangeOne)
	cl := c.Client()

	t.Run("incr", func(t *testing.T) {
		var mu sync.Mutex
		var results []int64
		ambiguous := 0
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ops {
					ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
					n, err := cl.Incr(ctx, []byte("counter"), 1)
					cancel()
					var amb *router.AmbiguousError
					mu.Lock()
					switch {
					case err == nil:
						results = append(results, n)
					case errors.As(err, &amb):
						ambiguous++
					default:
						mu.Unlock()
						errs <- fmt.Errorf("goroutine %d op %d: %w", g, i, err)
						return
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		v, found, err := cl.Get(opCtx(t), []byte("counter"))
		if err != nil || !found {
			t.Fatalf("get counter: found=%v err=%v", found, err)
		}
		final, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			t.Fatalf("counter %q: %v", v, err)
		}
		acked := int64(len(results))
		t.Logf("incr: %d acknowledged, %d ambiguous, final %d", acked, ambiguous, final)
		if final < acked || final > acked+int64(ambiguous) {
			t.Fatalf("counter = %d after %d acknowledged and %d ambiguous increments", final, acked, ambiguous)
		}
		sort.Slice(results, func(i, j int) bool { return results[i] < results[j] })
		for i, n := range results {
			if n < 1 || n > final || (i > 0 && n == results[i-1]) {
				t.Fatalf("acknowledged increments returned %d (duplicate or outside [1, %d])", n, final)
			}
		}
		if ambiguous == 0 && results[len(results)-1] != final {
			t.Fatalf("largest returned value %d, final counter %d", results[len(results)-1], final)
		}
	})

	t.Run("cas", func(t *testing.T) {
		const ops = 30
		mustPut(t, cl, "cas-counter", "0")
		var mu sync.Mutex
		swappedTo := map[int64]int{} // new value -> number of swaps to it
		swapped, ambiguous, refused := 0, 0, 0
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fail := func(err error) { errs <- fmt.Errorf("goroutine %d: %w", g, err) }
				for range ops {
					ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
					cur, found, err := cl.Get(ctx, []byte("cas-counter"))
					cancel()
					if err != nil || !found {
						fail(fmt.Errorf("get: found=%v err=%w", found, err))
						return
					}
					n, err := strconv.ParseInt(string(cur), 10, 64)
					if err != nil {
						fail(err)
						return
					}
					next := []byte(strconv.FormatInt(n+1, 10))
					ctx, cancel = context.WithTimeout(context.Background(), opTimeout)
					res, err := cl.CAS(ctx, []byte("cas-counter"), cur, false, next)
					cancel()
					var amb *router.AmbiguousError
					mu.Lock()
					switch {
					case err == nil && res.Swapped:
						swapped++
						swappedTo[n+1]++
						if !res.Found || !bytes.Equal(res.Value, next) {
							mu.Unlock()
							fail(fmt.Errorf("swapped CAS reports value %q found=%v, want %q", res.Value, res.Found, next))
							return
						}
					case err == nil:
						refused++
						if !res.Found || bytes.Equal(res.Value, cur) {
							mu.Unlock()
							fail(fmt.Errorf("refused CAS expecting %q reports current value %q found=%v", cur, res.Value, res.Found))
							return
						}
					case errors.As(err, &amb):
						ambiguous++
					default:
						mu.Unlock()
						fail(err)
						return
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		v, _, err := cl.Get(opCtx(t), []byte("cas-counter"))
		if err != nil {
			t.Fatal(err)
		}
		final, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			t.Fatalf("cas-counter %q: %v", v, err)
		}
		t.Logf("cas: %d swapped, %d refused, %d ambiguous, final %d", swapped, refused, ambiguous, final)
		if swapped == 0 {
			t.Fatal("no CAS ever swapped")
		}
		if final < int64(swapped) || final > int64(swapped+ambiguous) {
			t.Fatalf("cas-counter = %d after %d swapped and %d ambiguous CASes", final, swapped, ambiguous)
		}
		for n, k := range swappedTo {
			if k != 1 {
				t.Fatalf("%d acknowledged CASes all swapped the counter to %d", k, n)
			}
		}
	})
}
