package store_test

// Atomic per-range batch writes (KV Batch) against a three-store cluster.

import (
	"fmt"
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

// A concurrent reader sees a batch all or nothing: every scan of the
// batch's keys shows none of them or all of them at the same generation,
// on the leader while writes go on and on every replica (stale reads at
// whatever index each has applied), also after a restart.
func TestBatchAllOrNothingToConcurrentReader(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	const nKeys, gens = 20, 40
	keyOf := func(i int) []byte { return []byte(fmt.Sprintf("b%02d", i)) }
	check := func(who string, kvs map[string]string) error {
		if len(kvs) == 0 {
			return nil
		}
		if len(kvs) != nKeys {
			return fmt.Errorf("%s: %d of %d keys of a batch visible: %v", who, len(kvs), nKeys, kvs)
		}
		first := kvs[string(keyOf(0))]
		for k, v := range kvs {
			if v != first {
				return fmt.Errorf("%s: key %s = %s but %s = %s: a torn batch", who, k, v, keyOf(0), first)
			}
		}
		return nil
	}
	ctx := opCtx(t)
	var (
		wg      sync.WaitGroup
		done    = make(chan struct{})
		readErr error
		reads   int
	)
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			kvs, err := cl.Scan(ctx, []byte("b"), []byte("c"), 0)
			if err != nil {
				readErr = err
				return
			}
			m := map[string]string{}
			for _, p := range kvs {
				m[string(p.Key)] = string(p.Value)
			}
			if err := check("leader scan", m); err != nil {
				readErr = err
				return
			}
			reads++
		}
	})
	for g := 1; g <= gens; g++ {
		ops := make([]router.BatchOp, nKeys)
		for i := range ops {
			ops[i] = router.BatchOp{Key: keyOf(i), Value: []byte(fmt.Sprint(g))}
		}
		if err := cl.Batch(ctx, ops); err != nil {
			t.Fatalf("batch %d: %v", g, err)
		}
	}
	close(done)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	if reads == 0 {
		t.Fatal("the reader never completed a scan")
	}
	want := map[string]string{}
	for i := range nKeys {
		want[string(keyOf(i))] = fmt.Sprint(gens)
	}
	wantValues(t, cl, want)
	for i := range c.Stores {
		m, err := staleScanAll(ctx, kvClient(t, c.Addrs[i]))
		if err != nil {
			t.Fatalf("store %d: %v", i+1, err)
		}
		if err := check(fmt.Sprintf("store %d", i+1), m); err != nil {
			t.Fatal(err)
		}
	}
	// The batch is one entry: a restarted replica replays it whole.
	c.RestartStore(1)
	waitCaughtUp(t, c, 1, 20*time.Second)
	wantStaleValues(t, kvClient(t, c.Addrs[1]), "restarted store 2", want)
}

// A batch spanning a range boundary that the client's cache does not know
// of yet (the range split after the cache loaded it) succeeds: the router
// regroups it per range.
func TestBatchAcrossStaleSplit(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	mustPut(t, cl, "a", "0") // the cache now holds range 1 = everything
	ctx := opCtx(t)
	if _, err := c.SplitRange(ctx, []byte("m")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SplitRange(ctx, []byte("t")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "l": "2", "m": "3", "s": "4", "z": "5"}
	var pairs []router.KeyValue
	for _, k := range sortedKeys(want) {
		pairs = append(pairs, router.KeyValue{Key: []byte(k), Value: []byte(want[k])})
	}
	if err := cl.BatchPut(ctx, pairs); err != nil {
		t.Fatalf("batch across a stale split: %v", err)
	}
	wantValues(t, cl, want)
	if err := cl.BatchDelete(ctx, [][]byte{[]byte("a"), []byte("z")}); err != nil {
		t.Fatal(err)
	}
	delete(want, "a")
	delete(want, "z")
	wantScanAll(t, cl, want)
}

// Bad batches are refused with InvalidArgument naming the field and the
// limit, and a batch naming a range that does not hold all its keys gets
// KeyNotInRange; nothing of either is written.
func TestBatchValidation(t *testing.T) {
	const maxKey, maxValue = 32, 1 << 20
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
		cfg.MaxKeySize, cfg.MaxValueSize = maxKey, maxValue
	}})
	lead := c.WaitLeader(rangeOne)
	kv := kvClient(t, c.Addrs[lead])
	ctx := opCtx(t)
	put := func(k string, v []byte) *rangekvpb.BatchOp { return &rangekvpb.BatchOp{Key: []byte(k), Value: v} }
	many := make([]*rangekvpb.BatchOp, store.MaxBatchOps+1)
	for i := range many {
		many[i] = put(fmt.Sprintf("k%05d", i), nil)
	}
	var big []*rangekvpb.BatchOp
	for i := range store.MaxBatchBytes/maxValue + 1 {
		big = append(big, put(fmt.Sprintf("big%02d", i), make([]byte, maxValue)))
	}
	for _, tc := range []struct {
		name  string
		ops   []*rangekvpb.BatchOp
		parts []string
	}{
		{"no ops", nil, []string{"ops", "at least one"}},
		{"too many ops", many, []string{"ops", fmt.Sprint(store.MaxBatchOps + 1), fmt.Sprint(store.MaxBatchOps)}},
		{"too many bytes", big, []string{"ops", fmt.Sprint(store.MaxBatchBytes)}},
		{"empty key", []*rangekvpb.BatchOp{put("a", nil), put("", nil)}, []string{"ops[1].key", "empty"}},
		{"long key", []*rangekvpb.BatchOp{put(strings.Repeat("k", maxKey+1), nil)}, []string{"ops[0].key", fmt.Sprint(maxKey), "limits.max-key-size"}},
		{"long value", []*rangekvpb.BatchOp{put("a", make([]byte, maxValue+1))}, []string{"ops[0].value", fmt.Sprint(maxValue), "limits.max-value-size"}},
		{"delete with a value", []*rangekvpb.BatchOp{{Key: []byte("a"), Value: []byte("v"), Delete: true}}, []string{"ops[0].value", "delete"}},
	} {
		_, err := kv.Batch(ctx, &rangekvpb.BatchRequest{Ops: tc.ops})
		wantStatus(t, tc.name, err, codes.InvalidArgument, tc.parts...)
	}

	split, err := c.SplitRange(ctx, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	left := split.Left
	lead = c.WaitLeader(left.RangeId)
	resp, err := kvClient(t, c.Addrs[lead]).Batch(ctx, &rangekvpb.BatchRequest{
		Header: &rangekvpb.RequestHeader{RangeId: left.RangeId, Epoch: left.Epoch},
		Ops:    []*rangekvpb.BatchOp{put("a", []byte("1")), put("x", []byte("2"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if knr := resp.GetHeader().GetError().GetKeyNotInRange(); knr == nil || string(knr.Key) != "x" {
		t.Fatalf("batch with a key outside the range: %v, want KeyNotInRange for x", resp.GetHeader().GetError())
	}
	cl := c.Client()
	for _, k := range []string{"a", "x", "big00", "k00000"} {
		if _, found, err := cl.Get(ctx, []byte(k)); err != nil || found {
			t.Errorf("key %s of a refused batch: found=%v err=%v", k, found, err)
		}
	}
}
