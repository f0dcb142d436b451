package e2e

import (
	"bufio"
	"errors"
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

// playground is a running `rangekv playground` process.
type playground struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit, set before done closes

	mu     sync.Mutex
	stdout strings.Builder

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
	cmd := exec.Command(filepath.Join(binDir, "rangekv"), "playground", "--data-dir", dataDir,
		"--store-flag=--raft.profile=high-availability")
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pg := &playground{t: t, cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			pg.mu.Lock()
			pg.stdout.WriteString(sc.Text() + "\n")
			pg.mu.Unlock()
		}
	}()
	go func() {
		<-copied
		pg.err = cmd.Wait()
		close(pg.done)
	}()
	t.Cleanup(func() {
		if pg.running() {
			cmd.Process.Kill()
			<-pg.done
		}
		for _, pid := range pg.pids {
			syscall.Kill(pid, syscall.SIGKILL) // a store left behind by a failed test
		}
		if t.Failed() {
			t.Logf("playground stdout:\n%s\nstderr:\n%s", pg.output(), stderr.String())
		}
	})
	waitFor(t, "the playground to report ready", 60*time.Second, func() bool {
		if !pg.running() {
			t.Fatalf("playground exited while starting (%v): %s", pg.err, stderr.String())
		}
		return strings.Contains(pg.output(), "Press Ctrl-C to stop.")
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

func (pg *playground) output() string {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.stdout.String()
}

func (pg *playground) running() bool {
	select {
	case <-pg.done:
		return false
	default:
		return true
	}
}

// interrupt sends SIGINT and checks that the playground exits 0 within
// 20s with every store gone and its ports free.
func (pg *playground) interrupt() {
	t := pg.t
	t.Helper()
	if err := pg.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pg.done:
	case <-time.After(20 * time.Second):
		t.Fatal("playground still running 20s after SIGINT")
	}
	var ee *exec.ExitError
	if pg.err != nil {
		if errors.As(pg.err, &ee) {
			t.Fatalf("playground exited with code %d after SIGINT, want 0", ee.ExitCode())
		}
		t.Fatalf("playground: %v", pg.err)
	}
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
