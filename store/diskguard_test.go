package store_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/testcluster"
	"github.com/rangekv/rangekv/store"
)

// With the free space (a test knob) below storage.min-free on every store,
// writes are refused at once with ResourceExhausted naming the data dir,
// the free bytes and the threshold; reads and deletes work; once space
// returns writes succeed again on their own, and nothing written before
// is lost.
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
	if st, _ := status.FromError(refused); st.Code() != codes.ResourceExhausted {
		t.Fatalf("refused write: %v, want ResourceExhausted", refused)
	}
	for _, part := range []string{"data dir data", "4096 bytes free", "storage.min-free", fmt.Sprint(minFree)} {
		if !strings.Contains(refused.Error(), part) {
			t.Errorf("refused write error %q does not mention %q", refused, part)
		}
	}
	// Not retried by the router: refused within far less than a timeout.
	start := time.Now()
	if _, err := cl.Incr(opCtx(t), []byte("ctr"), 1); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("incr while low on space: %v, want ResourceExhausted", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refused incr took %s: the router retried it", d)
	}
	wantValues(t, cl, want)
	if err := cl.Delete(opCtx(t), []byte("k00")); err != nil {
		t.Errorf("delete while low on space: %v (deletes free space and are accepted)", err)
	}
	delete(want, "k00")
	lead := c.WaitLeader(1)
	if v := metricValue(t, c.HTTPAddr(lead), "rangekv_store_disk_free_bytes"); v != 4096 {
		t.Errorf("rangekv_store_disk_free_bytes = %v, want 4096", v)
	}

	free.Store(2 << 30)
	c.WaitFor("writes accepted again", 10*time.Second, func() bool {
		return cl.Put(opCtx(t), []byte("late"), []byte("x")) == nil
	})
	want["late"] = "x"
	if _, found, err := cl.Get(opCtx(t), []byte("ctr")); err != nil || found {
		t.Errorf("get of the refused incr's key: found=%v err=%v, want absent (refused writes are not applied)", found, err)
	}
	wantScanAll(t, cl, want)
}
