package e2e

// Rolling restart with real processes: three placement members and three
// stores joined through them; a workload of puts (unique keys) and incrs
// (a few counters) runs through a placement-backed router while each store
// in turn gets SIGTERM (it drains its leaderships, then stops), is started
// again and is waited for until it is ready and caught up. No request may
// fail (router retries are fine; an ambiguous outcome is a failure), and
// every acknowledged write must be there at the end.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// rrWorkload is the running workload: writer goroutines that put unique
// keys and incr shared counters, recording what was acknowledged.
type rrWorkload struct {
	stop  atomic.Bool
	wg    sync.WaitGroup
	acked atomic.Int64

	mu       sync.Mutex
	puts     map[string]string // acknowledged puts
	incrs    map[string]int64  // acknowledged increments per counter
	failures []string
	failed   int
}

func startWorkload(t *testing.T, cl *router.Client, writers int) *rrWorkload {
	w := &rrWorkload{puts: map[string]string{}, incrs: map[string]int64{}}
	for g := range writers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for seq := 0; !w.stop.Load(); seq++ {
				// Keys spread over the split points below.
				key := fmt.Sprintf("%c/w%d/%06d", 'a'+byte((seq*7+g)%26), g, seq)
				ctr := fmt.Sprintf("%c/counter", 'a'+byte((seq+g*5)%26))
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var err error
				isIncr := seq%3 == 2
				if isIncr {
					_, err = cl.Incr(ctx, []byte(ctr), 1)
				} else {
					err = cl.Put(ctx, []byte(key), []byte(fmt.Sprintf("v%d.%d", g, seq)))
				}
				cancel()
				w.mu.Lock()
				switch {
				case err != nil:
					w.failed++
					if len(w.failures) < 10 {
						what := "put " + key
						if isIncr {
							what = "incr " + ctr
						}
						w.failures = append(w.failures, fmt.Sprintf("%s at %s: %v", what, time.Now().Format("15:04:05.000"), err))
					}
				case isIncr:
					w.incrs[ctr]++
					w.acked.Add(1)
				default:
					w.puts[key] = fmt.Sprintf("v%d.%d", g, seq)
					w.acked.Add(1)
				}
				w.mu.Unlock()
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *rrWorkload) halt() {
	w.stop.Store(true)
	w.wg.Wait()
}

func (w *rrWorkload) waitMore(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	target := w.acked.Load() + n
	waitFor(t, fmt.Sprintf("%d acknowledged writes", target), timeout, func() bool { return w.acked.Load() >= target })
}

// sigterm sends SIGTERM and waits (bounded) for the process to exit.
func (p *proc) sigterm(timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	p.signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, fmt.Errorf("%s after SIGTERM", timeout))
	defer cancel()
	if err := p.cur.Wait(ctx); err != nil {
		p.t.Fatal(err)
	}
	return time.Since(start)
}

func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestRollingRestartUnderLoad(t *testing.T) {
	writers, rounds, perStep := 6, 2, int64(200)
	if testing.Short() {
		writers, rounds, perStep = 4, 1, 60
	}
	start := time.Now()
	pdBin := placementBin(t)
	base := t.TempDir()
	addrs := freeAddrs(t, 12)
	var initial []procs.Peer
	var pdAddrs []string
	for i := range 3 {
		initial = append(initial, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
		pdAddrs = append(pdAddrs, addrs[2*i])
	}
	var all []*proc
	for i := range 3 {
		pd := newProc(t, fmt.Sprintf("placement%d", i+1), pdBin, filepath.Join(base, fmt.Sprintf("pd%d.log", i+1)), procs.PlacementArgs{
			ID: uint64(i + 1), Addr: addrs[2*i], HTTPAddr: addrs[2*i+1], DataDir: filepath.Join(base, fmt.Sprintf("pd%d", i+1)),
			InitialCluster: initial,
			Extra:          append(slices.Clone(pdTestFlags), "--schedule.store-down-grace", "3s"),
		}.Args()...)
		pd.start()
		all = append(all, pd)
	}
	var stores []*proc
	var storeHTTP []string
	for i := range 3 {
		addr, httpAddr := addrs[6+2*i], addrs[7+2*i]
		storeHTTP = append(storeHTTP, httpAddr)
		args := procs.StoreArgs{Addr: addr, HTTPAddr: httpAddr, DataDir: filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			Placement: pdAddrs, Extra: joinedStoreFlags("--drain-timeout", "10s")}
		p := newProc(t, fmt.Sprintf("store%d", i+1), filepath.Join(binDir, "rangekv-store"), filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...)
		p.start()
		stores = append(stores, p)
		all = append(all, p)
	}

	cl, err := router.New(pdAddrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	conns := map[string]rangekvpb.PlacementClient{}
	for _, a := range pdAddrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[a] = rangekvpb.NewPlacementClient(conn)
	}
	// status asks the placement members in turn; the leader answers.
	status := func() *rangekvpb.ClusterStatusResponse {
		for _, pc := range conns {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := pc.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
			cancel()
			if err == nil && st.Error == nil {
				return st
			}
		}
		return nil
	}
	const ranges = 4
	healthy := func() bool {
		st := status()
		if st == nil || len(st.Stores) != 3 || int(st.RangeCount) != ranges || len(st.UnderReplicated) > 0 || len(st.Leaderless) > 0 {
			return false
		}
		for _, s := range st.Stores {
			if s.State != rangekvpb.StoreState_STORE_UP || s.Stats.GetDraining() || s.Stats.GetReplicaCount() != ranges {
				return false
			}
		}
		return true
	}
	waitFor(t, "range 1 on 3 stores", 30*time.Second, func() bool {
		checkProcs(t, all...)
		st := status()
		return st != nil && len(st.Stores) == 3 && st.RangeCount == 1 && len(st.UnderReplicated) == 0
	})
	for _, k := range []string{"g", "n", "t"} {
		// A right half just split off may not have reported its leader
		// yet: placement says so and the split is asked again.
		var lastErr error
		waitFor(t, "split at "+k, 20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, lastErr = adm.Split(ctx, []byte(k))
			return lastErr == nil
		})
	}
	waitFor(t, fmt.Sprintf("%d ranges, 3 voters each, on 3 up stores", ranges), 30*time.Second, func() bool {
		checkProcs(t, all...)
		return healthy()
	})
	t.Logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))

	w := startWorkload(t, cl, writers)
	w.waitMore(t, perStep, 30*time.Second)

	// On demand, through the CLI: the store with the most leaderships is
	// drained (it ends leading nothing), then undrained.
	var busiest *rangekvpb.StoreInfo
	for _, s := range status().GetStores() {
		if busiest == nil || s.Stats.GetLeaderCount() > busiest.Stats.GetLeaderCount() {
			busiest = s
		}
	}
	if busiest == nil {
		t.Fatal("no cluster status")
	}
	id := fmt.Sprint(busiest.Store.StoreId)
	pdFlag := strings.Join(pdAddrs, ",")
	stdout, stderr, code := runCLI(t, "--placement", pdFlag, "store", "drain", id, "--wait", "20s")
	if code != 0 || !strings.Contains(stdout, "store "+id+": draining, drained") {
		t.Fatalf("rangekv store drain %s: exit %d, stdout %q, stderr %q", id, code, stdout, stderr)
	}
	t.Logf("rangekv store drain %s (%d leaderships): %s", id, busiest.Stats.GetLeaderCount(), strings.TrimSpace(stdout))
	if stdout, stderr, code := runCLI(t, "--placement", pdFlag, "-o", "json", "store", "drain", id); code != 0 || !strings.Contains(stdout, `"leaders":0`) {
		t.Fatalf("rangekv store drain %s again: exit %d, stdout %q, stderr %q", id, code, stdout, stderr)
	}
	if stdout, stderr, code := runCLI(t, "--placement", pdFlag, "store", "undrain", id); code != 0 || !strings.Contains(stdout, "not draining") {
		t.Fatalf("rangekv store undrain %s: exit %d, stdout %q, stderr %q", id, code, stdout, stderr)
	}
	w.waitMore(t, perStep/2, 30*time.Second)
	for round := range rounds {
		for i, p := range stores {
			took := p.sigterm(20 * time.Second)
			log, _ := os.ReadFile(p.logPath())
			drained := strings.Count(string(log), "drain complete")
			t.Logf("%s round %d: store %d stopped %s after SIGTERM (drain completions in its log so far: %d; %d writes acked)",
				time.Now().Format("15:04:05.000"), round+1, i+1, took.Round(time.Millisecond), drained, w.acked.Load())
			if drained != round+1 {
				t.Errorf("store %d log: %d \"drain complete\" lines after %d SIGTERMs; tail:\n%s", i+1, drained, round+1, tail(p.logPath(), 10))
			}
			w.waitMore(t, perStep/4, 30*time.Second) // the cluster serves without it
			p.start()
			// Ready, and caught up: an operator restarts the next store
			// only once this one follows every range's leader again, or
			// the next stop leaves a range without a quorum.
			waitFor(t, fmt.Sprintf("store %d ready again, following every leader, and the cluster healthy", i+1), 60*time.Second, func() bool {
				checkProcs(t, all...)
				return httpOK("http://"+storeHTTP[i]+"/readyz") && followsLeaders(storeHTTP, i, ranges) && healthy()
			})
			w.waitMore(t, perStep, 60*time.Second)
		}
	}
	w.halt()

	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d puts and %d incrs acknowledged, %d failed, in %s", len(w.puts), sumIncrs(w.incrs), w.failed, time.Since(start).Round(time.Millisecond))
	if w.failed > 0 {
		t.Errorf("%d requests failed during the rolling restart (retries are the router's job); first: %s", w.failed, strings.Join(w.failures, "\n  "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	var lost []string
	for k, v := range w.puts {
		if got[k] != v {
			lost = append(lost, fmt.Sprintf("%s=%q (read %q)", k, v, got[k]))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged puts lost, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	for ctr, n := range w.incrs {
		v, found, err := cl.Get(ctx, []byte(ctr))
		if err != nil {
			t.Fatalf("get %s: %v", ctr, err)
		}
		// With no failed request every increment is acknowledged once.
		if !found || string(v) != fmt.Sprint(n) {
			t.Errorf("counter %s = %q (found %v), want %d acknowledged increments", ctr, v, found, n)
		}
	}
}

// followsLeaders reports whether every range's leader (per the stores'
// /debug/ranges) replicates to store index i's replica, actively: its
// progress is StateReplicate and recently active.
func followsLeaders(httpAddrs []string, i, ranges int) bool {
	st, err := rangeStatus(httpAddrs[i])
	if err != nil || len(st.Replicas) != ranges {
		return false
	}
	mine := map[uint64]uint64{} // range → replica ID on store i
	for _, r := range st.Replicas {
		if !r.Initialized || r.LeaderReplicaId == 0 {
			return false
		}
		mine[r.Descriptor_.RangeId] = r.ReplicaId
	}
	ok := 0
	for j, a := range httpAddrs {
		if j == i {
			continue
		}
		st, err := rangeStatus(a)
		if err != nil {
			return false
		}
		for _, r := range st.Replicas {
			if r.RaftState != "StateLeader" {
				continue
			}
			for _, p := range r.Progress {
				if p.ReplicaId == mine[r.Descriptor_.RangeId] {
					if p.State != "StateReplicate" || !p.RecentActive {
						return false
					}
					ok++
				}
			}
		}
	}
	// Ranges store i leads itself count as followed.
	for _, r := range st.Replicas {
		if r.RaftState == "StateLeader" {
			ok++
		}
	}
	return ok == ranges
}

func sumIncrs(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
