// Tests of starting, readiness, stopping and killing, on helper processes.

package procs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait of these tests; none is expected to get
// near it.
const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start starts spec and kills the process when the test ends.
func start(t *testing.T, spec Spec) *Proc {
	t.Helper()
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := p.Kill(ctx); err != nil {
			t.Error(err)
		}
	})
	return p
}

// logSays is a readiness check: the process's log has a line with s.
func logSays(p *Proc, s string) func(context.Context) error {
	return func(context.Context) error {
		b, err := os.ReadFile(p.LogPath())
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(s)) {
			return errors.New("log has no " + s)
		}
		return nil
	}
}

func readyHelper(t *testing.T, p *Proc, check func(context.Context) error) {
	t.Helper()
	if err := p.WaitReady(testCtx(t), check); err != nil {
		t.Fatal(err)
	}
}

func logText(t *testing.T, p *Proc) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartWaitReadyHTTPAndStopGracefully(t *testing.T) {
	addrs, err := FreeLoopbackAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, helper(t, "serve", addrs[0]))
	if !p.Running() || p.Err() != nil || p.State() != nil {
		t.Fatalf("fresh process: running %v, err %v, state %v", p.Running(), p.Err(), p.State())
	}
	readyHelper(t, p, HTTPReady("http://"+addrs[0]+"/readyz"))

	// Its own process group: a terminal's Ctrl-C reaches the launcher only.
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("process group %d (%v), want its own (%d)", pgid, err, p.Pid())
	}

	if killed := Stop(testCtx(t), p); len(killed) != 0 {
		t.Errorf("Stop killed %v; the helper exits on SIGTERM", killed)
	}
	if p.Running() {
		t.Fatal("Running after Stop returned")
	}
	if p.Err() != nil || !p.State().Success() {
		t.Errorf("exit after SIGTERM: %v (%v), want status 0", p.Err(), p.State())
	}
	if !strings.Contains(logText(t, p), "got SIGTERM") {
		t.Errorf("log lacks the helper's SIGTERM line:\n%s", logText(t, p))
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

func TestStopKillsWhatIgnoresSIGTERMAfterTheGrace(t *testing.T) {
	addrs, err := FreeLoopbackAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	polite := start(t, helper(t, "serve", addrs[0]))
	stubborn := start(t, helper(t, "ignore-term"))
	readyHelper(t, polite, HTTPReady("http://"+addrs[0]+"/readyz"))
	readyHelper(t, stubborn, logSays(stubborn, "ignoring SIGTERM"))

	// The grace ends once the polite helper has exited (however long a
	// loaded machine takes), so only the stubborn one can outlast it.
	errGrace := errors.New("grace over")
	ctx, cancel := context.WithCancelCause(testCtx(t))
	defer cancel(nil)
	graceOver := make(chan struct{})
	go func() {
		defer close(graceOver)
		<-polite.Done()
		cancel(errGrace)
	}()
	killed := Stop(ctx, polite, stubborn)
	<-graceOver
	if !slices.Equal(killed, []*Proc{stubborn}) {
		t.Fatalf("Stop killed %d processes, want only the one ignoring SIGTERM", len(killed))
	}
	if !errors.Is(context.Cause(ctx), errGrace) {
		t.Errorf("cause %v, want the grace deadline", context.Cause(ctx))
	}
	if polite.Running() || stubborn.Running() {
		t.Fatal("a process still runs after Stop")
	}
	if ws, ok := stubborn.State().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("stubborn helper ended with %v, want SIGKILL", stubborn.State())
	}
	if !strings.Contains(logText(t, stubborn), "SIGTERM ignored") {
		t.Errorf("stubborn helper never saw SIGTERM:\n%s", logText(t, stubborn))
	}
	var ee *exec.ExitError
	if !errors.As(stubborn.Err(), &ee) {
		t.Errorf("Err = %v, want an *exec.ExitError", stubborn.Err())
	}
}

// A cancelled context is "kill now": Stop does not wait for the grace.
func TestStopWithCancelledContextKillsAtOnce(t *testing.T) {
	p := start(t, helper(t, "ignore-term"))
	readyHelper(t, p, logSays(p, "ignoring SIGTERM"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if killed := Stop(ctx, p); len(killed) != 1 {
		t.Fatalf("Stop killed %d, want 1", len(killed))
	}
	// An exited process is stopped again without a signal or an error.
	if killed := Stop(testCtx(t), p); len(killed) != 0 {
		t.Errorf("second Stop killed %d", len(killed))
	}
}

func TestKill(t *testing.T) {
	p := start(t, helper(t, "ignore-term"))
	readyHelper(t, p, logSays(p, "ignoring SIGTERM"))
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if err := p.Kill(testCtx(t)); err != nil {
		t.Errorf("Kill of a reaped process: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
	}
}

func TestWaitTimesOut(t *testing.T) {
	p := start(t, helper(t, "ignore-term"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := p.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Wait on a running process: %v", err)
	}
}

// A process that exits while starting ends the wait at once, with its
// exit status and the last line of its log.
func TestWaitReadyReportsAnExit(t *testing.T) {
	p := start(t, helper(t, "fail"))
	err := p.WaitReady(testCtx(t), func(context.Context) error { return errors.New("not yet") })
	if err == nil {
		t.Fatal("WaitReady returned nil for a process that exited")
	}
	for _, want := range []string{"helper fail exited while starting", "exit status 3", "fatal: the helper was told to fail", p.LogPath()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The deadline is the context's; the error keeps the last check's failure.
func TestWaitReadyDeadline(t *testing.T) {
	addrs, err := FreeLoopbackAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addrs[0] + "/readyz"
	p := start(t, helper(t, "unready", addrs[0]))
	// Once it answers at all, HTTPReady says what it answered.
	readyHelper(t, p, func(ctx context.Context) error {
		if err := HTTPReady(url)(ctx); err != nil && !strings.Contains(err.Error(), "503 Service Unavailable") {
			return err
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = p.WaitReady(ctx, HTTPReady(url))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady: %v, want the deadline", err)
	}
	if !strings.Contains(err.Error(), "helper unready not ready") || !strings.Contains(err.Error(), "(last check: ") {
		t.Errorf("error %q does not say what it waited for", err)
	}
	if !p.Running() {
		t.Error("WaitReady's deadline stopped the process")
	}
}

// The log is appended to, so a restarted process continues it.
func TestLogAppendsAcrossRestarts(t *testing.T) {
	spec := helper(t, "fail")
	for range 2 {
		p := start(t, spec)
		if err := p.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := LastLines(spec.LogPath, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != lines[1] {
		t.Errorf("log lines %q, want the fail line twice", lines)
	}
}

func TestStartErrors(t *testing.T) {
	spec := helper(t, "fail")
	spec.Bin = t.TempDir() + "/no-such-binary"
	if _, err := Start(spec); err == nil || !strings.Contains(err.Error(), "start helper fail ("+spec.Bin+")") {
		t.Errorf("missing binary: %v", err)
	}
	spec = helper(t, "fail")
	spec.LogPath = t.TempDir() + "/no-such-dir/x.log"
	if _, err := Start(spec); err == nil || !strings.HasPrefix(err.Error(), "helper fail log: ") {
		t.Errorf("unwritable log: %v", err)
	}
}

// Without LogPath the output goes to Stdout; Env replaces the
// environment, and CleanEnv keeps RANGEKV_* out.
func TestStdoutAndEnv(t *testing.T) {
	t.Setenv("RANGEKV_PROCS_TEST", "leak")
	t.Setenv("PROCS_TEST_KEEP", "kept")
	var out bytes.Buffer
	spec := helper(t, "env")
	spec.LogPath, spec.Stdout = "", &out
	spec.Env = append(CleanEnv(), helperEnv+"=env")
	p := start(t, spec)
	if err := p.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if p.Err() != nil {
		t.Fatalf("env helper: %v", p.Err())
	}
	if !strings.Contains(out.String(), "PROCS_TEST_KEEP=kept") {
		t.Errorf("environment lacks PROCS_TEST_KEEP:\n%s", out.String())
	}
	if strings.Contains(out.String(), "RANGEKV_") {
		t.Errorf("RANGEKV_* reached the process:\n%s", out.String())
	}
}
