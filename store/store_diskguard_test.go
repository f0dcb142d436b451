package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// With the free space (a test knob) below storage.min-free on every store,
// writes — single ones and atomic batches holding a put — are refused at
// once with a *router.DiskFullError naming the store, the data dir, the
// free bytes and the threshold (definite, not ambiguous); reads, deletes
// and batches of deletes work; once space returns writes succeed again on
// their own, and nothing written before is lost.
func TestDiskGuardRefusesWritesAndRecovers(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 30)
	const minFree = 1 << 30
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true, Configure: func(i int, cfg *store.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.MinFreeBytes = minFree
		cfg.Knobs = &store.TestingKnobs{FreeSpace: func() (uint64, error) { return free.Load(), nil }}
	}})
	c.WaitLeader(1)
	cl := c.Client()
	want := map[string]string{}
	for i := range 20 {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
		mustPut(t, cl, k, v)
		want[k] = v
	}

	free.Store(4096)
	var refused error
	c.WaitFor("a write refused for lack of space", 10*time.Second, func() bool {
		refused = cl.Put(opCtx(t), []byte("late"), []byte("x"))
		return refused != nil
	})
	var df *router.DiskFullError
	var amb *router.AmbiguousError
	if !errors.As(refused, &df) || errors.As(refused, &amb) {
		t.Fatalf("refused write: %v (%T), want *router.DiskFullError, not ambiguous", refused, refused)
	}
	lead := c.WaitLeader(1)
	if df.StoreID != c.Stores[lead].StoreID() || df.FreeBytes != 4096 || df.MinFreeBytes != minFree || df.Dir != "data" {
		t.Errorf("DiskFullError %+v: want the leader's store %d, data dir \"data\", 4096 of %d bytes", df, c.Stores[lead].StoreID(), minFree)
	}
	for _, part := range []string{"disk full", "data dir data", "4096 bytes free", "storage.min-free", fmt.Sprint(minFree)} {
		if !strings.Contains(refused.Error(), part) {
			t.Errorf("refused write error %q does not mention %q", refused, part)
		}
	}
	// Not retried by the router: refused within far less than a timeout.
	start := time.Now()
	if _, err := cl.Incr(opCtx(t), []byte("ctr"), 1); !errors.Is(err, router.ErrDiskFull) {
		t.Errorf("incr while low on space: %v, want router.ErrDiskFull", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refused incr took %s: the router retried it", d)
	}
	// An atomic batch holding a put is refused the same way (issue 15
	// item 9a: batches skipped the guard); one of deletes only is not.
	err := cl.BatchPut(opCtx(t), []router.KeyValue{{Key: []byte("batch1"), Value: []byte("x")}, {Key: []byte("batch2"), Value: []byte("y")}})
	var be *router.BatchError
	if !errors.As(err, &be) || !errors.As(err, &df) || be.Written != 0 {
		t.Errorf("batch put while low on space: %v, want *BatchError wrapping *DiskFullError, nothing written", err)
	}
	if err := cl.BatchDelete(opCtx(t), [][]byte{[]byte("k19")}); err != nil {
		t.Errorf("batch delete while low on space: %v (deletes free space and are accepted)", err)
	}
	delete(want, "k19")
	wantValues(t, cl, want)
	if err := cl.Delete(opCtx(t), []byte("k00")); err != nil {
		t.Errorf("delete while low on space: %v (deletes free space and are accepted)", err)
	}
	delete(want, "k00")
	lead = c.WaitLeader(1)
	if v := metricValue(t, c.HTTPAddr(lead), "rangekv_store_disk_free_bytes"); v != 4096 {
		t.Errorf("rangekv_store_disk_free_bytes = %v, want 4096", v)
	}

	free.Store(2 << 30)
	c.WaitFor("writes accepted again", 10*time.Second, func() bool {
		return cl.Put(opCtx(t), []byte("late"), []byte("x")) == nil
	})
	want["late"] = "x"
	for _, k := range []string{"ctr", "batch1", "batch2"} {
		if _, found, err := cl.Get(opCtx(t), []byte(k)); err != nil || found {
			t.Errorf("get of %s, refused: found=%v err=%v, want absent (refused writes are not applied)", k, found, err)
		}
	}
	wantScanAll(t, cl, want)
}
