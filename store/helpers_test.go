package store_test

// Helpers shared by the store integration tests.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// rangeOne is the range a statically bootstrapped cluster starts with.
const rangeOne = 1

// opTimeout bounds one client operation (the router retries inside it).
const opTimeout = 20 * time.Second

func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// kvClient is a raw KV client of the store at addr, bypassing the router:
// the request goes to that store and no other.
func kvClient(t *testing.T, addr string) rangekvpb.KVClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return rangekvpb.NewKVClient(conn)
}

// staleGet reads key from exactly the store behind kv at STALE consistency,
// routed by key (range ID 0).
func staleGet(ctx context.Context, kv rangekvpb.KVClient, key string) (string, bool, error) {
	resp, err := kv.Get(ctx, &rangekvpb.GetRequest{
		Header: &rangekvpb.RequestHeader{RangeId: 0, Consistency: rangekvpb.ReadConsistency_STALE},
		Key:    []byte(key),
	})
	if err != nil {
		return "", false, err
	}
	if e := resp.GetHeader().GetError(); e != nil {
		return "", false, fmt.Errorf("range error: %s", e.GetMessage())
	}
	return string(resp.Value), resp.Found, nil
}

// wantStaleValues checks that the store behind kv holds every key of want
// with its value, reading at STALE consistency.
func wantStaleValues(t *testing.T, kv rangekvpb.KVClient, who string, want map[string]string) {
	t.Helper()
	ctx := opCtx(t)
	missing := 0
	for _, k := range sortedKeys(want) {
		v, found, err := staleGet(ctx, kv, k)
		if err != nil {
			t.Fatalf("%s: stale get %q: %v", who, k, err)
		}
		if !found || v != want[k] {
			if missing < 5 {
				t.Errorf("%s: stale get %q = (%q, found=%v), want %q", who, k, v, found, want[k])
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged keys missing or wrong", who, missing, len(want))
	}
}

// wantValues reads every key of want through the router (linearizable).
func wantValues(t *testing.T, cl *router.Client, want map[string]string) {
	t.Helper()
	ctx := opCtx(t)
	for _, k := range sortedKeys(want) {
		v, found, err := cl.Get(ctx, []byte(k))
		if err != nil {
			t.Fatalf("get %q: %v", k, err)
		}
		if !found || string(v) != want[k] {
			t.Fatalf("get %q = (%q, found=%v), want %q", k, v, found, want[k])
		}
	}
}

// wantScanAll checks that a full scan returns exactly want, in key order.
func wantScanAll(t *testing.T, cl *router.Client, want map[string]string) {
	t.Helper()
	got, err := cl.Scan(opCtx(t), nil, nil, 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	keys := sortedKeys(want)
	if len(got) != len(keys) {
		t.Fatalf("full scan returned %d pairs, want %d: %s", len(got), len(keys), describePairs(got))
	}
	for i, kv := range got {
		if string(kv.Key) != keys[i] || string(kv.Value) != want[keys[i]] {
			t.Fatalf("full scan pair %d = %q=%q, want %q=%q", i, kv.Key, kv.Value, keys[i], want[keys[i]])
		}
	}
}

func describePairs(kvs []router.KeyValue) string {
	var b strings.Builder
	for i, kv := range kvs {
		if i == 10 {
			fmt.Fprintf(&b, "... (%d more)", len(kvs)-i)
			break
		}
		fmt.Fprintf(&b, "%q=%q ", kv.Key, kv.Value)
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mustPut writes key=value and fails the test on any error.
func mustPut(t *testing.T, cl *router.Client, key, value string) {
	t.Helper()
	if err := cl.Put(opCtx(t), []byte(key), []byte(value)); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

// replicaStatus returns store i's status of range 1, failing if it has none.
func replicaStatus(t *testing.T, c *testcluster.Cluster, i int) *rangekvpb.ReplicaStatus {
	t.Helper()
	st := c.ReplicaStatus(i, rangeOne)
	if st == nil {
		t.Fatalf("store %d has no replica of range %d", i+1, rangeOne)
	}
	return st
}

// waitCaughtUp waits until store i has applied what the leader had applied
// when called.
func waitCaughtUp(t *testing.T, c *testcluster.Cluster, i int, timeout time.Duration) {
	t.Helper()
	lead := c.WaitLeader(rangeOne)
	target := replicaStatus(t, c, lead).AppliedIndex
	c.WaitFor(fmt.Sprintf("store %d to apply up to the leader's index %d", i+1, target), timeout, func() bool {
		st := c.ReplicaStatus(i, rangeOne)
		return st != nil && st.AppliedIndex >= target
	})
}

// metricValue fetches /metrics from a store's HTTP address and returns the
// value of an unlabelled series.
func metricValue(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	if httpAddr == "" {
		t.Fatal("store has no HTTP address (set HTTPAddr)")
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, line, err)
			}
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// wantStatus checks that err is a gRPC status with code and a message that
// contains every part.
func wantStatus(t *testing.T, what string, err error, code codes.Code, parts ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("%s: err = %v (%T), want gRPC status %s", what, err, err, code)
	}
	if st.Code() != code {
		t.Fatalf("%s: code %s (%q), want %s", what, st.Code(), st.Message(), code)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Fatalf("%s: message %q does not mention %q", what, st.Message(), p)
		}
	}
}

// staleScanAll reads every pair from exactly the store behind kv at STALE
// consistency, following resume keys (and range boundaries).
func staleScanAll(ctx context.Context, kv rangekvpb.KVClient) (map[string]string, error) {
	out := map[string]string{}
	var start []byte
	for {
		resp, err := kv.Scan(ctx, &rangekvpb.ScanRequest{
			Header:   &rangekvpb.RequestHeader{Consistency: rangekvpb.ReadConsistency_STALE},
			StartKey: start,
		})
		if err != nil {
			return nil, err
		}
		if e := resp.GetHeader().GetError(); e != nil {
			return nil, fmt.Errorf("range error: %s", e.GetMessage())
		}
		for _, p := range resp.Pairs {
			out[string(p.Key)] = string(p.Value)
		}
		if len(resp.ResumeKey) == 0 {
			return out, nil
		}
		start = resp.ResumeKey
	}
}

// wantReplicasIdentical waits until every running store applied what the
// leader had applied, then checks that all of them hold the same data.
func wantReplicasIdentical(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	var first map[string]string
	firstStore := -1
	for i, s := range c.Stores {
		if s == nil {
			continue
		}
		waitCaughtUp(t, c, i, 20*time.Second)
		got, err := staleScanAll(opCtx(t), kvClient(t, c.Addrs[i]))
		if err != nil {
			t.Fatalf("store %d: stale scan: %v", i+1, err)
		}
		if first == nil {
			first, firstStore = got, i
			continue
		}
		for k, v := range first {
			if gv, ok := got[k]; !ok || gv != v {
				t.Fatalf("replicas differ: store %d has %q=%q, store %d has %q (present=%v)", firstStore+1, k, v, i+1, gv, ok)
			}
		}
		for k, v := range got {
			if _, ok := first[k]; !ok {
				t.Fatalf("replicas differ: store %d has %q=%q, store %d does not", i+1, k, v, firstStore+1)
			}
		}
	}
}

// singleStorePlacement is the part of a fake placement that store tests
// share: a cluster of store 1 alone, taking its reports and answering
// nothing else (embed it and add what the test is about).
type singleStorePlacement struct {
	rangekvpb.UnimplementedPlacementServer
}

func (singleStorePlacement) StoreHeartbeat(context.Context, *rangekvpb.StoreHeartbeatRequest) (*rangekvpb.StoreHeartbeatResponse, error) {
	return &rangekvpb.StoreHeartbeatResponse{}, nil
}

func (singleStorePlacement) RangeHeartbeats(context.Context, *rangekvpb.RangeHeartbeatsRequest) (*rangekvpb.RangeHeartbeatsResponse, error) {
	return &rangekvpb.RangeHeartbeatsResponse{}, nil
}

func (singleStorePlacement) ListStores(context.Context, *rangekvpb.ListStoresRequest) (*rangekvpb.ListStoresResponse, error) {
	return &rangekvpb.ListStoresResponse{Stores: []*rangekvpb.StoreInfo{{Store: &rangekvpb.StoreDescriptor{StoreId: 1}}}}, nil
}
