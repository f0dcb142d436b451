package e2e

// The placement driver with real processes: one rangekv-placement and three
// rangekv-store processes joined with --placement; placement replicates
// range 1 onto every store; the placement process is killed with SIGKILL
// and restarted from its data directory while the stores keep serving.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

var (
	placementBinOnce sync.Once
	placementBinErr  error
)

// placementBin builds rangekv-placement into binDir once (TestMain builds
// the store and the CLI).
func placementBin(t testing.TB) string {
	t.Helper()
	out := filepath.Join(binDir, "rangekv-placement")
	placementBinOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			placementBinErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			placementBinErr = fmt.Errorf("no go command to build rangekv-placement: %w", err)
			return
		}
		cmd := exec.Command(goBin, "build", "-o", out, "./cmd/placement")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			placementBinErr = fmt.Errorf("go build ./cmd/placement: %v\n%s", err, b)
		}
	})
	if placementBinErr != nil {
		t.Fatal(placementBinErr)
	}
	return out
}

// proc is a process started from a binary with fixed arguments; it can be
// killed and started again (same arguments, same data directory), and is
// killed when the test ends.
type proc struct {
	t       testing.TB
	name    string
	bin     string
	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func newProc(t testing.TB, name, bin, logPath string, args ...string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, logPath: logPath}
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log tail:\n%s", p.name, tail(p.logPath, 15))
		}
	})
	return p
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("%s is already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

func (p *proc) kill9() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func checkProcs(t testing.TB, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		if !p.running() {
			t.Fatalf("%s exited unexpectedly; log tail:\n%s", p.name, tail(p.logPath, 15))
		}
	}
}

// TestPlacementProcesses: one placement member and three stores as
// processes. Range 1 is replicated onto every store by placement; writes
// and reads go through the stores; placement is killed with SIGKILL and
// restarted from its data directory: the stores serve meanwhile, and
// placement comes back with the same cluster ID and stores.
func TestPlacementProcesses(t *testing.T) {
	start := time.Now()
	bin := placementBin(t)
	base := t.TempDir()
	addrs := freeAddrs(t, 8)
	pdAddr, pdHTTP := addrs[0], addrs[1]
	pd := newProc(t, "placement", bin, filepath.Join(base, "pd.log"),
		"--id", "1", "--addr", pdAddr, "--http-addr", pdHTTP, "--data-dir", filepath.Join(base, "pd"),
		"--initial-cluster", "1="+pdAddr,
		"--raft.election-timeout", "500ms", "--raft.heartbeat-interval", "50ms",
		"--schedule.interval", "200ms")
	pd.start()
	var stores []*proc
	var storeAddrs, storeHTTP []string
	for i := range 3 {
		addr, httpAddr := addrs[2+2*i], addrs[3+2*i]
		storeAddrs, storeHTTP = append(storeAddrs, addr), append(storeHTTP, httpAddr)
		args := append([]string{"--addr", addr, "--http-addr", httpAddr, "--data-dir", filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			"--placement", pdAddr, "--heartbeat.store-interval", "200ms", "--heartbeat.range-interval", "100ms"}, storeFlags...)
		p := newProc(t, fmt.Sprintf("store%d", i+1), filepath.Join(binDir, "rangekv-store"), filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args...)
		p.start()
		stores = append(stores, p)
	}
	all := append([]*proc{pd}, stores...)

	conn, err := grpc.NewClient(pdAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := rangekvpb.NewPlacementClient(conn)
	status := func() *rangekvpb.ClusterStatusResponse {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := pc.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		if err != nil || st.Error != nil {
			return nil
		}
		return st
	}
	range1Voters := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: 1})
		if err != nil || r.Error != nil || len(r.Ranges) != 1 {
			return 0
		}
		n := 0
		for _, rep := range r.Ranges[0].Descriptor_.Replicas {
			if rep.Role == rangekvpb.ReplicaRole_VOTER {
				n++
			}
		}
		return n
	}
	var st0 *rangekvpb.ClusterStatusResponse
	waitFor(t, "range 1 with 3 voters on 3 stores", 30*time.Second, func() bool {
		checkProcs(t, all...)
		st0 = status()
		return st0 != nil && len(st0.Stores) == 3 && len(st0.UnderReplicated) == 0 && range1Voters() == 3
	})
	t.Logf("cluster %x: range 1 on 3 stores %s after start", st0.ClusterId, time.Since(start).Round(time.Millisecond))
	// Every store holds range 1, as its /debug/ranges says.
	for i, httpAddr := range storeHTTP {
		waitFor(t, fmt.Sprintf("store %d to hold range 1", i+1), 10*time.Second, func() bool {
			rs, err := rangeStatus(httpAddr)
			return err == nil && rs.StoreId != 0 && len(rs.Replicas) == 1 && rs.Replicas[0].Initialized
		})
	}

	cl, err := router.NewStatic(storeAddrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]string{}
	put := func(k, v string) {
		t.Helper()
		if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	check := func(when string) {
		t.Helper()
		for k, v := range want {
			got, found, err := cl.Get(ctx, []byte(k))
			if err != nil || !found || string(got) != v {
				t.Fatalf("get %s %s: %q %v %v, want %q", k, when, got, found, err, v)
			}
		}
	}
	for i := range 20 {
		put(fmt.Sprintf("before/%02d", i), fmt.Sprintf("v%d", i))
	}
	check("before the kill")

	pd.kill9()
	killed := time.Now()
	// The stores serve without placement.
	for i := range 10 {
		put(fmt.Sprintf("during/%02d", i), fmt.Sprintf("w%d", i))
	}
	check("with placement down")
	checkProcs(t, stores...)

	pd.start()
	var st1 *rangekvpb.ClusterStatusResponse
	waitFor(t, "placement back with every store heartbeating", 20*time.Second, func() bool {
		checkProcs(t, all...)
		st1 = status()
		if st1 == nil || len(st1.Stores) != 3 {
			return false
		}
		for _, s := range st1.Stores {
			if s.State != rangekvpb.StoreState_STORE_UP || s.Stats.GetReplicaCount() == 0 || s.LastHeartbeatUnixMs < killed.UnixMilli() {
				return false
			}
		}
		return true
	})
	if !st1.Bootstrapped || st1.ClusterId != st0.ClusterId || st1.RangeCount != st0.RangeCount {
		t.Fatalf("placement after the restart: cluster %x bootstrapped %v, %d ranges; before: cluster %x, %d ranges",
			st1.ClusterId, st1.Bootstrapped, st1.RangeCount, st0.ClusterId, st0.RangeCount)
	}
	var ids0, ids1 []string
	for i := range st0.Stores {
		ids0 = append(ids0, fmt.Sprintf("%d@%s", st0.Stores[i].Store.StoreId, st0.Stores[i].Store.Address))
		ids1 = append(ids1, fmt.Sprintf("%d@%s", st1.Stores[i].Store.StoreId, st1.Stores[i].Store.Address))
	}
	if !slices.Equal(ids0, ids1) {
		t.Fatalf("stores after the restart %v, before %v", ids1, ids0)
	}
	if n := range1Voters(); n != 3 {
		t.Fatalf("range 1 has %d voters after the restart", n)
	}
	t.Logf("placement restarted: cluster %x, stores %v, back %s after the kill; ranges without a known leader: %v",
		st1.ClusterId, ids1, time.Since(killed).Round(time.Millisecond), st1.Leaderless)
	for i := range 10 {
		put(fmt.Sprintf("after/%02d", i), fmt.Sprintf("x%d", i))
	}
	check("after the restart")
	checkProcs(t, all...)
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
