package e2e

// Helpers: store and placement processes (started and stopped through
// internal/procs), the CLI binary, leader discovery over HTTP, and waiting
// on conditions with deadlines.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// storeFlags are added to every store: fast failover keeps tests short.
var storeFlags = []string{"--raft.profile", "high-availability"}

// pdTestFlags are the placement members' timings in tests: fast elections
// and scheduling keep them short.
var pdTestFlags = []string{"--raft.election-timeout", "500ms", "--raft.heartbeat-interval", "50ms", "--schedule.interval", "200ms"}

// joinedStoreFlags are the flags of a store that joins placement in a
// test: frequent heartbeats, then storeFlags, then extra.
func joinedStoreFlags(extra ...string) []string {
	return slices.Concat([]string{"--heartbeat.store-interval", "200ms", "--heartbeat.range-interval", "100ms"}, storeFlags, extra)
}

// waitFor polls cond every 20ms until it holds, failing the test after
// timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddrs returns n distinct 127.0.0.1 addresses that were free a moment
// ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := procs.FreeLoopbackAddrs(n)
	if err != nil {
		t.Fatalf("free addresses: %v", err)
	}
	return addrs
}

// killTimeout bounds the wait for a SIGKILLed process to be reaped.
const killTimeout = 10 * time.Second

// proc is a process started from a fixed procs.Spec; it can be killed and
// started again (same arguments, same data directory, same log), and is
// killed when the test ends, with its log's tail shown if the test failed.
type proc struct {
	t    testing.TB
	spec procs.Spec
	cur  *procs.Proc // the current or last run; nil before the first start
}

// newProc prepares (does not start) a process whose output is appended
// to logPath, without the caller's RANGEKV_* environment.
func newProc(t testing.TB, name, bin, logPath string, args ...string) *proc {
	p := &proc{t: t, spec: procs.Spec{Name: name, Bin: bin, Args: args, Env: procs.CleanEnv(), LogPath: logPath}}
	t.Cleanup(func() {
		if p.running() {
			ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
			defer cancel()
			if err := p.cur.Kill(ctx); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("%s log tail:\n%s", name, tail(logPath, 15))
		}
	})
	return p
}

func (p *proc) name() string    { return p.spec.Name }
func (p *proc) logPath() string { return p.spec.LogPath }

func (p *proc) running() bool { return p.cur != nil && p.cur.Running() }

// pid is the current (or last) run's process ID.
func (p *proc) pid() int { return p.cur.Pid() }

// signal sends sig to the running process (SIGSTOP, SIGCONT, SIGKILL
// without waiting); a process that is gone is not an error.
func (p *proc) signal(sig os.Signal) {
	if p.cur != nil {
		_ = p.cur.Signal(sig)
	}
}

// start starts the process (appending to its log).
func (p *proc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("%s is already running", p.name())
	}
	cur, err := procs.Start(p.spec)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cur = cur
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *proc) kill9() {
	p.t.Helper()
	if !p.running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := p.cur.Kill(ctx); err != nil {
		p.t.Fatal(err)
	}
}

// checkProcs fails the test if one of ps has exited.
func checkProcs(t testing.TB, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		if !p.running() {
			t.Fatalf("%s exited unexpectedly; log tail:\n%s", p.name(), tail(p.logPath(), 15))
		}
	}
}

// storeProc is one rangekv-store process of a statically bootstrapped
// cluster.
type storeProc struct {
	*proc
	id       int
	addr     string
	httpAddr string
}

// procCluster is n store processes bootstrapped statically together.
type procCluster struct {
	t      testing.TB
	stores []*storeProc
}

// startCluster starts n stores on free 127.0.0.1 ports with data under a
// test temp directory; they are killed when the test ends.
func startCluster(t testing.TB, n int) *procCluster {
	t.Helper()
	base := t.TempDir()
	addrs := freeAddrs(t, 2*n)
	var initial []procs.Peer
	for i := range n {
		initial = append(initial, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
	}
	c := &procCluster{t: t}
	for i := range n {
		args := procs.StoreArgs{
			StoreID:       uint64(i + 1),
			Addr:          addrs[2*i],
			HTTPAddr:      addrs[2*i+1],
			DataDir:       filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			InitialStores: initial,
			Extra:         storeFlags,
		}
		c.stores = append(c.stores, &storeProc{
			proc: newProc(t, fmt.Sprintf("store %d", i+1), filepath.Join(binDir, "rangekv-store"),
				filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...),
			id:       i + 1,
			addr:     args.Addr,
			httpAddr: args.HTTPAddr,
		})
	}
	for _, p := range c.stores {
		p.start()
	}
	return c
}

func (c *procCluster) addrs() []string {
	var out []string
	for _, p := range c.stores {
		out = append(out, p.addr)
	}
	return out
}

// storesFlag is the --stores value for the CLI.
func (c *procCluster) storesFlag() string { return strings.Join(c.addrs(), ",") }

// checkRunning fails the test if a store that should run has exited.
func (c *procCluster) checkRunning(want ...*storeProc) {
	c.t.Helper()
	for _, p := range want {
		if !p.running() {
			c.t.Fatalf("store %d exited unexpectedly; log tail:\n%s", p.id, tail(p.logPath(), 15))
		}
	}
}

// waitWritable waits until a put through a router over every store
// succeeds, checking that the given stores stay up.
func (c *procCluster) waitWritable(timeout time.Duration, live ...*storeProc) {
	c.t.Helper()
	cl, err := router.NewStatic(c.addrs(), router.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	waitFor(c.t, "the cluster to accept a write", timeout, func() bool {
		c.checkRunning(live...)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Put(ctx, []byte("e2e/ready"), []byte("1")) == nil
	})
}

// rangeStatus reads a store's /debug/ranges.
func rangeStatus(httpAddr string) (*rangekvpb.ListRangesResponse, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + httpAddr + "/debug/ranges")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/debug/ranges: %s: %s", resp.Status, b)
	}
	var st rangekvpb.ListRangesResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("/debug/ranges: %w", err)
	}
	return &st, nil
}

// leaderOf returns the running store whose replica of rangeID is
// StateLeader with the highest term (per /debug/ranges), and that term.
func (c *procCluster) leaderOf(rangeID uint64) (*storeProc, uint64) {
	var best *storeProc
	var bestTerm uint64
	for _, p := range c.stores {
		if !p.running() {
			continue
		}
		st, err := rangeStatus(p.httpAddr)
		if err != nil {
			continue
		}
		for _, r := range st.Replicas {
			if r.GetDescriptor_().GetRangeId() == rangeID && r.RaftState == "StateLeader" && r.Term >= bestTerm {
				best, bestTerm = p, r.Term
			}
		}
	}
	return best, bestTerm
}

// waitLeader waits for range 1 to have a leader with a term above
// minTerm.
func (c *procCluster) waitLeader(minTerm uint64, timeout time.Duration) (*storeProc, uint64) {
	c.t.Helper()
	var p *storeProc
	var term uint64
	waitFor(c.t, fmt.Sprintf("a leader of range 1 in a term above %d", minTerm), timeout, func() bool {
		p, term = c.leaderOf(1)
		return p != nil && term > minTerm
	})
	return p, term
}

// runCLI runs the rangekv binary and returns its stdout, stderr and exit
// code; it fails the test if it does not finish within a minute.
func runCLI(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "rangekv"), args...)
	cmd.Env = procs.CleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case ctx.Err() != nil:
		t.Fatalf("rangekv %s: did not finish within a minute", strings.Join(args, " "))
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	default:
		t.Fatalf("rangekv %s: %v", strings.Join(args, " "), err)
	}
	return "", "", -1
}

// tail returns the last n non-blank lines of a file.
func tail(path string, n int) string {
	lines, err := procs.LastLines(path, n)
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}

// processGone reports whether no process has the given pid (it exited
// and was reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
