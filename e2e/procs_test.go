package e2e

// Helpers: store processes, the CLI binary, leader discovery over HTTP,
// and waiting on conditions with deadlines.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// storeFlags are added to every store: fast failover keeps tests short.
var storeFlags = []string{"--raft.profile", "high-availability"}

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
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// storeProc is one rangekv-store process; it can be killed and restarted
// on the same addresses and data directory.
type storeProc struct {
	t        testing.TB
	id       int
	addr     string
	httpAddr string
	dataDir  string
	logPath  string
	initial  string

	cmd  *exec.Cmd
	done chan struct{} // closed when the current process was reaped
}

func (p *storeProc) running() bool {
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

// start starts the process (appending to its log).
func (p *storeProc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("store %d is already running", p.id)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	args := append([]string{
		"--store-id", strconv.Itoa(p.id),
		"--addr", p.addr,
		"--http-addr", p.httpAddr,
		"--data-dir", p.dataDir,
		"--initial-stores", p.initial,
	}, storeFlags...)
	cmd := exec.Command(filepath.Join(binDir, "rangekv-store"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("start store %d: %v", p.id, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *storeProc) kill9() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("store %d (pid %d) still running 10s after SIGKILL", p.id, p.cmd.Process.Pid)
	}
}

// cleanEnv is the environment without RANGEKV_* variables, so that the
// caller's settings cannot change what a test runs.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RANGEKV_") {
			out = append(out, kv)
		}
	}
	return out
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
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("%d=%s", i+1, addrs[2*i]))
	}
	c := &procCluster{t: t}
	for i := range n {
		c.stores = append(c.stores, &storeProc{
			t:        t,
			id:       i + 1,
			addr:     addrs[2*i],
			httpAddr: addrs[2*i+1],
			dataDir:  filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			logPath:  filepath.Join(base, fmt.Sprintf("store%d.log", i+1)),
			initial:  strings.Join(initial, ","),
		})
	}
	t.Cleanup(func() {
		for _, p := range c.stores {
			if p.running() {
				p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
		if t.Failed() {
			for _, p := range c.stores {
				t.Logf("store %d log tail:\n%s", p.id, tail(p.logPath, 15))
			}
		}
	})
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
			c.t.Fatalf("store %d exited unexpectedly; log tail:\n%s", p.id, tail(p.logPath, 15))
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
	cmd.Env = cleanEnv()
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

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// processGone reports whether no process has the given pid (it exited
// and was reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
