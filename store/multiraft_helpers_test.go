package store_test

// Helpers of the multi-Raft store tests (multiraft_*_test.go). Their names
// start with "mr" so that they never collide with the other store tests'
// helpers.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// mrCtx returns a context bounded by d, cancelled with the test.
func mrCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mrKV returns a raw KV client for a store address; closed with the test.
func mrKV(t testing.TB, addr string) rangekvpb.KVClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("kv client for %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return rangekvpb.NewKVClient(conn)
}

// mrSplit splits at key through the range's leader (retrying NotLeader on
// the right store) and returns the two halves.
func mrSplit(t testing.TB, c *testcluster.Cluster, key string) (left, right *rangekvpb.RangeDescriptor) {
	t.Helper()
	resp, err := c.SplitRange(mrCtx(t, 30*time.Second), []byte(key))
	if err != nil {
		t.Fatalf("split at %q: %v", key, err)
	}
	if resp.Right == nil || string(resp.Right.StartKey) != key {
		t.Fatalf("split at %q: right half %v does not start at the split key", key, resp.Right)
	}
	return resp.Left, resp.Right
}

// mrSplitDown splits range 1 at each key in descending order: every split
// is on range 1 (whose leader stays put), so no new election is on the
// path. It returns the number of ranges created.
func mrSplitDown(t testing.TB, c *testcluster.Cluster, keys []string) int {
	t.Helper()
	sorted := append([]string(nil), keys...)
	sort.Sort(sort.Reverse(sort.StringSlice(sorted)))
	for _, k := range sorted {
		mrSplit(t, c, k)
	}
	return len(sorted)
}

// mrDescKey is a comparable form of a descriptor's identity and epoch.
func mrDescKey(d *rangekvpb.RangeDescriptor) string {
	return fmt.Sprintf("r%d[%q,%q)v%d/c%d", d.RangeId, d.StartKey, d.EndKey, d.GetEpoch().GetVersion(), d.GetEpoch().GetConfVer())
}

func mrDescribe(ds []*rangekvpb.RangeDescriptor) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = mrDescKey(d)
	}
	return strings.Join(parts, " ")
}

// mrDescriptorsEqual compares two descriptor lists (ordered by range ID)
// field by field, replicas included.
func mrDescriptorsEqual(a, b []*rangekvpb.RangeDescriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// mrWaitDescriptorsAgree waits until the running stores in idx hold the
// same descriptors (same ranges, spans, epochs and replicas), want of them,
// covering the key space without gaps or overlaps; it returns them.
func mrWaitDescriptorsAgree(t testing.TB, c *testcluster.Cluster, idx []int, want int, timeout time.Duration) []*rangekvpb.RangeDescriptor {
	t.Helper()
	var ref []*rangekvpb.RangeDescriptor
	var why string
	deadline := time.Now().Add(timeout)
	for {
		why = ""
		ref = c.Descriptors(idx[0])
		for _, i := range idx[1:] {
			if got := c.Descriptors(i); !mrDescriptorsEqual(ref, got) {
				why = fmt.Sprintf("store %d: %s\nstore %d: %s", idx[0]+1, mrDescribe(ref), i+1, mrDescribe(got))
				break
			}
		}
		if why == "" && len(ref) != want {
			why = fmt.Sprintf("%d ranges, want %d: %s", len(ref), want, mrDescribe(ref))
		}
		if why == "" {
			why = mrCoverageProblem(ref)
		}
		if why == "" {
			return ref
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors did not converge within %s: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mrCoverageProblem reports why ds (any order) do not tile the key space.
func mrCoverageProblem(ds []*rangekvpb.RangeDescriptor) string {
	sorted := append([]*rangekvpb.RangeDescriptor(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].StartKey, sorted[j].StartKey) < 0 })
	var prevEnd []byte
	for i, d := range sorted {
		if !bytes.Equal(d.StartKey, prevEnd) {
			return fmt.Sprintf("range %d starts at %q, previous range ends at %q", d.RangeId, d.StartKey, prevEnd)
		}
		if len(d.EndKey) == 0 && i != len(sorted)-1 {
			return fmt.Sprintf("range %d is unbounded but not last", d.RangeId)
		}
		prevEnd = d.EndKey
	}
	if len(sorted) > 0 && len(prevEnd) != 0 {
		return fmt.Sprintf("the last range ends at %q, not at +inf", prevEnd)
	}
	return ""
}

// mrWaitConverged waits until, for every range, all its replicas on the
// running stores in idx have applied the same index, equal to the leader's
// commit index.
func mrWaitConverged(t testing.TB, c *testcluster.Cluster, idx []int, rangeIDs []uint64, timeout time.Duration) {
	t.Helper()
	var why string
	c.WaitFor("every replica to apply its range's last commit", timeout, func() bool {
		why = ""
		for _, id := range rangeIDs {
			var applied []uint64
			var commit uint64
			for _, i := range idx {
				st := c.ReplicaStatus(i, id)
				if st == nil {
					why = fmt.Sprintf("store %d has no replica of range %d", i+1, id)
					return false
				}
				applied = append(applied, st.AppliedIndex)
				if st.RaftState == "StateLeader" {
					commit = st.CommitIndex
				}
			}
			for _, a := range applied {
				if commit == 0 || a != commit {
					why = fmt.Sprintf("range %d: applied %v, leader commit %d", id, applied, commit)
					return false
				}
			}
		}
		return true
	})
	if why != "" {
		t.Logf("last lag seen: %s", why)
	}
}

// mrStaleScan reads the whole span of desc from one store at STALE
// consistency (its applied state), following resume keys.
func mrStaleScan(ctx context.Context, kv rangekvpb.KVClient, desc *rangekvpb.RangeDescriptor) (map[string]string, error) {
	out := map[string]string{}
	cur := desc.StartKey
	for {
		resp, err := kv.Scan(ctx, &rangekvpb.ScanRequest{
			Header:   &rangekvpb.RequestHeader{RangeId: desc.RangeId, Consistency: rangekvpb.ReadConsistency_STALE},
			StartKey: cur, EndKey: desc.EndKey,
		})
		if err != nil {
			return nil, err
		}
		if e := resp.GetHeader().GetError(); e != nil {
			return nil, fmt.Errorf("range %d: %v", desc.RangeId, e)
		}
		for _, p := range resp.Pairs {
			out[string(p.Key)] = string(p.Value)
		}
		if len(resp.ResumeKey) == 0 || (len(desc.EndKey) > 0 && bytes.Compare(resp.ResumeKey, desc.EndKey) >= 0) {
			return out, nil
		}
		cur = resp.ResumeKey
	}
}

// mrReplicasIdentical checks that every store in idx holds the same data
// for every range in descs (read at STALE after convergence).
func mrReplicasIdentical(t testing.TB, c *testcluster.Cluster, idx []int, descs []*rangekvpb.RangeDescriptor) {
	t.Helper()
	ctx := mrCtx(t, 30*time.Second)
	kvs := make([]rangekvpb.KVClient, len(idx))
	for j, i := range idx {
		kvs[j] = mrKV(t, c.Addrs[i])
	}
	for _, d := range descs {
		var ref map[string]string
		for j, kv := range kvs {
			got, err := mrStaleScan(ctx, kv, d)
			if err != nil {
				t.Fatalf("stale scan of range %d on store %d: %v", d.RangeId, idx[j]+1, err)
			}
			if j == 0 {
				ref = got
				continue
			}
			if diff := mrDiff(ref, got); diff != "" {
				t.Fatalf("range %d: store %d and store %d hold different data: %s", d.RangeId, idx[0]+1, idx[j]+1, diff)
			}
		}
	}
}

// mrDiff describes the first few differences between two key/value maps.
func mrDiff(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%q only in the first", k))
		} else if v != w {
			out = append(out, fmt.Sprintf("%q: %q vs %q", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%q only in the second", k))
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("... %d differences", len(out)))
	}
	return strings.Join(out, "; ")
}

// mrMetrics fetches and parses a store's /metrics (Prometheus text
// format): series (name with labels, as exported) to value.
func mrMetrics(t testing.TB, httpAddr string) map[string]float64 {
	t.Helper()
	if httpAddr == "" {
		t.Fatal("store has no HTTP address (set HTTPAddr in Configure)")
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out, err := mrParseMetrics(bufio.NewScanner(resp.Body))
	if err != nil {
		t.Fatalf("/metrics of %s: %v", httpAddr, err)
	}
	return out
}

func mrParseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	out := map[string]float64{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The value follows the last space (label values may hold spaces
		// only inside quotes, which never end a line).
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// mrSum adds up every series of the metric name whose labels contain all
// of the label pairs given (e.g. `type="MsgHeartbeat"`).
func mrSum(m map[string]float64, name string, labels ...string) float64 {
	sum := 0.0
	for series, v := range m {
		base, lbls, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// mrWriters write unique keys through a router client from several
// goroutines and record which writes were acknowledged and which ended
// ambiguously (they may or may not have applied).
type mrWriters struct {
	stop      atomic.Bool
	wg        sync.WaitGroup
	acked     atomic.Int64
	mu        sync.Mutex
	ackedKV   map[string]string
	ambiguous map[string]string
	failures  []string
}

// mrStartWriters starts n writers; writer g writes key keyOf(g, seq) with
// value "v/g/seq" for seq = 0, 1, ...
func mrStartWriters(t testing.TB, cl *router.Client, n int, keyOf func(g, seq int) string) *mrWriters {
	w := &mrWriters{ackedKV: map[string]string{}, ambiguous: map[string]string{}}
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for seq := 0; !w.stop.Load(); seq++ {
				k, v := keyOf(g, seq), fmt.Sprintf("v/%d/%d", g, seq)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cl.Put(ctx, []byte(k), []byte(v))
				cancel()
				w.mu.Lock()
				if err == nil {
					w.ackedKV[k] = v
					w.acked.Add(1)
				} else {
					w.ambiguous[k] = v
					var amb *router.AmbiguousError
					if !errors.As(err, &amb) && len(w.failures) < 10 {
						w.failures = append(w.failures, fmt.Sprintf("%s: %v", k, err))
					}
				}
				w.mu.Unlock()
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *mrWriters) halt() {
	w.stop.Store(true)
	w.wg.Wait()
}

// waitMore waits until n more writes were acknowledged than at the call.
func (w *mrWriters) waitMore(c *testcluster.Cluster, n int64, timeout time.Duration) {
	target := w.acked.Load() + n
	c.WaitFor(fmt.Sprintf("%d acknowledged writes", target), timeout, func() bool { return w.acked.Load() >= target })
}

// mrStoreIdx lists store indexes 0..n-1 except those given.
func mrStoreIdx(n int, except ...int) []int {
	var out []int
outer:
	for i := range n {
		for _, e := range except {
			if i == e {
				continue outer
			}
		}
		out = append(out, i)
	}
	return out
}

// mrRangeIDs lists the range IDs of descs.
func mrRangeIDs(descs []*rangekvpb.RangeDescriptor) []uint64 {
	out := make([]uint64, len(descs))
	for i, d := range descs {
		out[i] = d.RangeId
	}
	return out
}

// mrWaitFor polls cond until it holds or timeout passes; on timeout the
// failure carries cond's last explanation.
func mrWaitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
