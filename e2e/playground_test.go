package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/procs"
)

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// playgroundProc is a running `rangekv playground` process (started
// through internal/procs) and its output.
type playgroundProc struct {
	*procs.Proc
	stdout, stderr *syncBuffer
}

// output is what the playground printed on stdout so far.
func (pg *playgroundProc) output() string { return pg.stdout.String() }

// runPlayground runs rangekv playground on dataDir with args and waits, up
// to timeout, until it says it is ready. It is killed in cleanup if still
// running, and its output logged if the test failed.
func runPlayground(t *testing.T, dataDir string, timeout time.Duration, args ...string) *playgroundProc {
	t.Helper()
	pg := &playgroundProc{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	p, err := procs.Start(procs.Spec{
		Name:   "rangekv playground",
		Bin:    filepath.Join(binDir, "rangekv"),
		Args:   append([]string{"playground", "--data-dir", dataDir}, args...),
		Env:    procs.CleanEnv(),
		Stdout: pg.stdout,
		Stderr: pg.stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	pg.Proc = p
	t.Cleanup(func() {
		if p.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
			defer cancel()
			if err := p.Kill(ctx); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("playground stdout:\n%s\nstderr:\n%s", pg.output(), pg.stderr.String())
		}
	})
	waitFor(t, "the playground to report ready", timeout, func() bool {
		if !p.Running() {
			t.Fatalf("playground exited while starting (%v): %s", p.Err(), pg.stderr.String())
		}
		return strings.Contains(pg.output(), "Press Ctrl-C to stop.")
	})
	return pg
}

// interruptAndWait sends SIGINT and checks that the playground exits 0
// within timeout.
func (pg *playgroundProc) interruptAndWait(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := pg.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, fmt.Errorf("%s after SIGINT", timeout))
	defer cancel()
	if err := pg.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if errors.As(pg.Err(), &ee) {
		t.Fatalf("playground exited with code %d after SIGINT, want 0", ee.ExitCode())
	} else if pg.Err() != nil {
		t.Fatalf("playground: %v", pg.Err())
	}
}

// playground is a running static `rangekv playground` (no placement).
type playground struct {
	*playgroundProc
	t *testing.T

	pids   []int
	addrs  []string
	https  []string
	stores string // --stores value
}

var storeLine = regexp.MustCompile(`store (\d+)\s+pid (\d+)\s+addr (\S+)\s+http http://(\S+)`)

// startPlayground runs rangekv playground on dataDir and waits until it
// says it is ready. The playground and its stores are killed in cleanup
// if still running.
func startPlayground(t *testing.T, dataDir string) *playground {
	t.Helper()
	pg := &playground{t: t, playgroundProc: runPlayground(t, dataDir, 60*time.Second, "--store-flag=--raft.profile=high-availability")}
	t.Cleanup(func() {
		for _, pid := range pg.pids {
			syscall.Kill(pid, syscall.SIGKILL) // a store left behind by a failed test
		}
	})
	for _, m := range storeLine.FindAllStringSubmatch(pg.output(), -1) {
		pid, _ := strconv.Atoi(m[2])
		pg.pids = append(pg.pids, pid)
		pg.addrs = append(pg.addrs, m[3])
		pg.https = append(pg.https, m[4])
	}
	if len(pg.pids) != 3 {
		t.Fatalf("playground printed %d store lines, want 3:\n%s", len(pg.pids), pg.output())
	}
	pg.stores = strings.Join(pg.addrs, ",")
	if !strings.Contains(pg.output(), "--stores "+pg.stores+" put") {
		t.Errorf("playground does not print example CLI lines:\n%s", pg.output())
	}
	return pg
}

// interrupt sends SIGINT and checks that the playground exits 0 within
// 20s with every store gone and its ports free.
func (pg *playground) interrupt() {
	t := pg.t
	t.Helper()
	pg.interruptAndWait(t, 20*time.Second)
	for i, pid := range pg.pids {
		if !processGone(pid) {
			t.Errorf("store %d (pid %d) still exists after the playground exited", i+1, pid)
		}
	}
	for _, a := range append(append([]string(nil), pg.addrs...), pg.https...) {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("address %s is still in use after the playground exited: %v", a, err)
			continue
		}
		ln.Close()
	}
}

// TestPlayground starts the playground, uses it through the CLI, stops it
// with SIGINT (exit 0, no store left), then starts it again on the same
// data directory: same addresses, same data.
func TestPlayground(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pg := startPlayground(t, dir)
	if _, stderr, code := runCLI(t, "--stores", pg.stores, "put", "hello", "world"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	if stdout, stderr, code := runCLI(t, "--stores", pg.stores, "get", "hello"); code != 0 || stdout != "world\n" {
		t.Fatalf("get: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	// The HTTP addresses it printed serve the stores' debug pages.
	for _, h := range pg.https {
		if _, err := rangeStatus(h); err != nil {
			t.Errorf("printed HTTP address %s: %v", h, err)
		}
	}
	pg.interrupt()
	firstAddrs := pg.stores

	pg2 := startPlayground(t, dir)
	if pg2.stores != firstAddrs {
		t.Errorf("restarted playground uses %s, want the recorded %s", pg2.stores, firstAddrs)
	}
	if stdout, stderr, code := runCLI(t, "--stores", pg2.stores, "get", "hello"); code != 0 || stdout != "world\n" {
		t.Errorf("get after restart: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	pg2.interrupt()
}
