package store_test

// What a client sees at the edges of what the store accepts: values at the
// size limit read back in scans, and clients that name the stores by a
// different but equivalent address than the stores use among themselves.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// Values the store accepted (each within limits.max-value-size) must be
// readable back through the client with Scan (which may page, but must not
// fail because the pairs together are large).
func TestScanOfValuesAtTheSizeLimit(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(rangeOne)
	cl := c.Client()
	maxValue := c.Config(0).MaxValueSize
	const n = 5
	for i := range n {
		v := bytes.Repeat([]byte{byte('a' + i)}, maxValue)
		if err := cl.Put(opCtx(t), []byte(fmt.Sprintf("big/%d", i)), v); err != nil {
			t.Fatalf("put of a %d-byte value (the limit): %v", maxValue, err)
		}
	}
	v, found, err := cl.Get(opCtx(t), []byte("big/0"))
	if err != nil || !found || len(v) != maxValue {
		t.Fatalf("get big/0: %d bytes, found=%v, err=%v", len(v), found, err)
	}
	got, err := cl.Scan(opCtx(t), []byte("big/"), []byte("big0"), 0)
	if err != nil {
		t.Fatalf("scan of %d values of %d bytes (each accepted by the store): %v", n, maxValue, err)
	}
	if len(got) != n {
		t.Fatalf("scan returned %d pairs, want %d", len(got), n)
	}
	for i, kv := range got {
		if want := bytes.Repeat([]byte{byte('a' + i)}, maxValue); !bytes.Equal(kv.Value, want) {
			t.Fatalf("scan pair %d (%q): wrong value of %d bytes", i, kv.Key, len(kv.Value))
		}
	}
}

// A client may name the stores differently from how the stores name each
// other (a DNS name instead of the IP). A NotLeader hint with an address
// the client does not know must not stop it from finding the leader.
func TestClientWithEquivalentAddressesFindsLeader(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) { cfg.HTTPAddr = "127.0.0.1:0" }})
	lead := c.WaitLeader(rangeOne)
	// Start with a follower, so the first answer is a NotLeader hint.
	var addrs []string
	for _, i := range []int{(lead + 1) % 3, (lead + 2) % 3, lead} {
		addrs = append(addrs, strings.Replace(c.Addrs[i], "127.0.0.1", "localhost", 1))
	}
	cl, err := router.NewStatic(addrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		first := (lead + 1) % 3
		n := metricValue(t, c.Stores[first].HTTPAddr(), `rangekv_kv_requests_total{op="put",result="not_leader"}`)
		t.Fatalf("put through a client that names the stores %v (stores use %v): %v; follower store %d answered NotLeader %v times",
			addrs, c.Addrs, err, first+1, n)
	}
	v, found, err := cl.Get(ctx, []byte("k"))
	if err != nil || !found || string(v) != "v" {
		t.Fatalf("get: %q found=%v err=%v", v, found, err)
	}
}
