// Starting one process, watching it, signalling it and waiting for it to
// be ready or gone.

package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// pollInterval is how often WaitReady calls its readiness check.
const pollInterval = 50 * time.Millisecond

// Spec is what to run and where its output goes. It is a value: Start may
// be called with the same Spec again to restart a process on the same
// ports and data directory.
type Spec struct {
	// Name names the process in errors: "store 1", "placement 2".
	Name string
	// Bin is the binary's path; Args its arguments (StoreArgs.Args,
	// PlacementArgs.Args).
	Bin  string
	Args []string
	// Env is the process's environment; nil inherits this process's.
	// CleanEnv drops the RANGEKV_* settings.
	Env []string
	// LogPath, when set, receives stdout and stderr, appended (created
	// 0644 if missing), so a restarted process continues its log.
	LogPath string
	// Stdout and Stderr receive the output when LogPath is empty; nil
	// discards it. A writer that is not an *os.File is fed by os/exec's
	// copying goroutine, which the Proc's wait joins.
	Stdout, Stderr io.Writer
	// ParentDeathSignal is what the process gets (Linux only) when the
	// launcher dies without stopping it; zero means SIGKILL. SIGTERM lets
	// a store shut down cleanly; SIGKILL also ends a stopped (SIGSTOP)
	// process.
	ParentDeathSignal syscall.Signal
}

// Proc is one started process. Its methods are safe for concurrent use.
type Proc struct {
	spec Spec
	cmd  *exec.Cmd
	// done is closed by the wait goroutine once the process was reaped
	// and its log file closed.
	done chan struct{}
	// err is cmd.Wait's result. Invariant: written only before done
	// closes, read only after.
	err error
}

// Start starts spec's process and the goroutine that waits for it. The
// error names spec.Name and, for a binary that cannot run, spec.Bin.
func Start(spec Spec) (*Proc, error) {
	stdout, stderr := spec.Stdout, spec.Stderr
	var logf *os.File
	if spec.LogPath != "" {
		f, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s log: %w", spec.Name, err)
		}
		logf, stdout, stderr = f, f, f
	}
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = spec.Env
	cmd.SysProcAttr = sysProcAttr(spec.ParentDeathSignal)
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Bin, err)
	}
	p := &Proc{spec: spec, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Name is the Spec's name.
func (p *Proc) Name() string { return p.spec.Name }

// LogPath is the Spec's log file ("" if it has none).
func (p *Proc) LogPath() string { return p.spec.LogPath }

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process exited and was reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process was not reaped yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the process's exit as os/exec reports it: nil for status 0, an
// *exec.ExitError otherwise. It is nil while the process runs.
func (p *Proc) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// State is the exited process's state ("exit status 2", "signal:
// killed"); nil while it runs.
func (p *Proc) State() *os.ProcessState {
	if p.Running() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig to the process (not its group). A process that was
// already reaped gives os.ErrProcessDone.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits until the process was reaped (nil) or ctx ends (its cause).
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d) still running: %w", p.spec.Name, p.Pid(), context.Cause(ctx))
	}
}

// Kill sends SIGKILL and waits, bounded by ctx, until the process was
// reaped. A process that is gone already is not an error.
func (p *Proc) Kill(ctx context.Context) error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.spec.Name, p.Pid(), err)
	}
	return p.Wait(ctx)
}

// Stop stops ps: SIGTERM to each one still running, then a wait until all
// of them exited or ctx ends (ctx's deadline is the grace period; cancel it
// to give up the grace at once); every one still running then gets
// SIGKILL. Stop returns once every one of ps was reaped, with those it sent
// SIGKILL, in the order of ps. context.Cause(ctx) tells why they were
// killed.
func Stop(ctx context.Context, ps ...*Proc) (killed []*Proc) {
	for _, p := range ps {
		if p.Running() {
			_ = p.Signal(syscall.SIGTERM) // gone meanwhile: nothing to stop
		}
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-ctx.Done():
		}
	}
	for _, p := range ps {
		if p.Running() {
			killed = append(killed, p)
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range ps {
		<-p.done // after SIGKILL: as long as the kernel takes to reap it
	}
	return killed
}

// WaitReady calls ready every 50ms until it returns nil (then WaitReady
// returns nil), the process exits (an error with its exit status and the
// last line of its log) or ctx ends (ctx's cause, with ready's last error).
func (p *Proc) WaitReady(ctx context.Context, ready func(context.Context) error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error // the last check's failure, unless ctx cut it short
	for {
		if !p.Running() {
			return p.exitedError("while starting")
		}
		err := ready(ctx)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-p.done:
			return p.exitedError("while starting")
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v)", p.spec.Name, context.Cause(ctx), last)
		case <-t.C:
		}
	}
}

// exitedError describes an exit the caller did not ask for.
func (p *Proc) exitedError(when string) error {
	msg := fmt.Sprintf("%s exited %s (%v)", p.spec.Name, when, p.cmd.ProcessState)
	if p.spec.LogPath != "" {
		if lines, _ := LastLines(p.spec.LogPath, 1); len(lines) > 0 {
			msg += ": " + strings.TrimSpace(lines[0])
		}
		msg += " (log: " + p.spec.LogPath + ")"
	}
	return errors.New(msg)
}

// readyClient keeps no idle connection, so that no transport goroutine
// outlives a readiness check.
var readyClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// httpReadyTimeout bounds one readiness request.
const httpReadyTimeout = 2 * time.Second

// HTTPReady returns a readiness check for WaitReady that GETs url and wants
// 200 OK: a store's or placement member's http://<http-addr>/readyz.
func HTTPReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, httpReadyTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := readyClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, strings.TrimSpace(resp.Status))
		}
		return nil
	}
}
