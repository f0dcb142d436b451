// rangekv playground: a local cluster of rangekv-store child processes on
// 127.0.0.1, for trying rangekv out.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/router"
)

// playgroundStateFile, in the data directory, records the stores' IDs and
// addresses so that a restarted playground reuses its data on the same
// ports (a store's cluster identity comes from its --initial-stores).
const playgroundStateFile = "playground.json"

// playgroundStopTimeout is how long stopping waits for the stores to exit
// after SIGTERM before it kills them.
const playgroundStopTimeout = 10 * time.Second

type playgroundStore struct {
	ID       uint64 `json:"id"`
	Addr     string `json:"addr"`
	HTTPAddr string `json:"http_addr"`
	// Dir is the store's data directory, relative to the playground's.
	Dir string `json:"dir"`
}

type playgroundState struct {
	Stores []playgroundStore `json:"stores"`
}

type playgroundConfig struct {
	storeCount   int
	countChanged bool
	dataDir      string
	storeBin     string
	readyTimeout time.Duration
	storeFlags   []string
}

func (a *app) playgroundCmd() *cobra.Command {
	var cfg playgroundConfig
	cmd := &cobra.Command{
		Use:   "playground",
		Short: "Run a local cluster of stores on 127.0.0.1 until Ctrl-C",
		Long: `Start a local rangekv cluster in the foreground: --store-count rangekv-store
processes on free 127.0.0.1 ports, bootstrapped statically (--initial-stores),
with their data under --data-dir (one subdirectory per store) and their logs
in <data-dir>/store<N>.log. Once a write succeeds it prints the store
addresses, their HTTP addresses (/metrics, /debug/ranges) and CLI lines to
try. Ctrl-C (or SIGTERM) stops every store (SIGTERM, then SIGKILL after 10s)
and exits 0; a second Ctrl-C (a second or more later) kills them at once.

Starting again with the same --data-dir reuses the data and the ports
recorded in <data-dir>/playground.json, so the cluster comes back with its
keys.

The rangekv-store binary is looked up next to the rangekv executable unless
--store-bin names it. Extra store flags go through --store-flag.

The 3 placement members of 'make run' come later, with the placement
driver; for now the playground runs stores only.`,
		Example: `  rangekv playground
  rangekv playground --store-count 5 --data-dir /tmp/rkv
  rangekv playground --store-flag=--raft.profile=high-availability
  rangekv playground --store-bin ./bin/rangekv-store`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			cfg.countChanged = cmd.Flags().Changed("store-count")
			return a.runPlayground(cmd.Context(), cfg)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&cfg.storeCount, "store-count", 3, "number of stores")
	f.StringVar(&cfg.dataDir, "data-dir", "./data", "directory for the stores' data, logs and playground.json")
	f.StringVar(&cfg.storeBin, "store-bin", "", "path of the rangekv-store binary (default: next to rangekv)")
	f.DurationVar(&cfg.readyTimeout, "ready-timeout", 60*time.Second, "how long to wait for the cluster to accept a write")
	f.StringArrayVar(&cfg.storeFlags, "store-flag", nil, "extra flag for every store, e.g. --store-flag=--raft.profile=high-availability (repeatable)")
	return cmd
}

// findStoreBin returns the rangekv-store binary to run.
func findStoreBin(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", usageErrorf("store-bin: %v", err)
		}
		return flag, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", usageErrorf("store-bin: cannot locate the rangekv executable (%v); pass --store-bin", err)
	}
	p := filepath.Join(filepath.Dir(exe), "rangekv-store")
	if _, err := os.Stat(p); err != nil {
		return "", usageErrorf("store-bin: no rangekv-store next to rangekv (%s); build it (make build) or pass --store-bin", p)
	}
	return p, nil
}

// freeLoopbackAddrs returns n distinct free 127.0.0.1 addresses. They are
// free when returned; another process could take one before a store binds.
func freeLoopbackAddrs(n int) ([]string, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// loadOrCreatePlaygroundState reads <dir>/playground.json, or creates it
// with fresh ports when the directory holds no playground yet.
func loadOrCreatePlaygroundState(dir string, count int, countChanged bool) (playgroundState, error) {
	var st playgroundState
	path := filepath.Join(dir, playgroundStateFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil || len(st.Stores) == 0 {
			return st, fmt.Errorf("data-dir: %s is damaged (%v); remove the data directory to start afresh", path, err)
		}
		if countChanged && count != len(st.Stores) {
			return st, usageErrorf("store-count: %s holds a %d-store playground; use --store-count %d or another --data-dir", dir, len(st.Stores), len(st.Stores))
		}
		return st, nil
	case !errors.Is(err, os.ErrNotExist):
		return st, fmt.Errorf("data-dir: %w", err)
	}
	if count < 1 {
		return st, usageErrorf("store-count: must be at least 1, got %d", count)
	}
	for i := 1; i <= count; i++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("store%d", i))); err == nil {
			return st, usageErrorf("data-dir: %s holds store data but no %s (its ports are unknown); remove it or use another --data-dir", dir, playgroundStateFile)
		}
	}
	addrs, err := freeLoopbackAddrs(2 * count)
	if err != nil {
		return st, fmt.Errorf("pick free ports: %w", err)
	}
	for i := range count {
		st.Stores = append(st.Stores, playgroundStore{
			ID: uint64(i + 1), Addr: addrs[2*i], HTTPAddr: addrs[2*i+1], Dir: fmt.Sprintf("store%d", i+1),
		})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("data-dir: %w", err)
	}
	b, _ = json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return st, fmt.Errorf("data-dir: %w", err)
	}
	return st, nil
}

// initialStoresFlag renders --initial-stores.
func (st playgroundState) initialStoresFlag() string {
	parts := make([]string, len(st.Stores))
	for i, s := range st.Stores {
		parts[i] = fmt.Sprintf("%d=%s", s.ID, s.Addr)
	}
	return strings.Join(parts, ",")
}

func (st playgroundState) addrs() []string {
	out := make([]string, len(st.Stores))
	for i, s := range st.Stores {
		out[i] = s.Addr
	}
	return out
}

// child is one running store process.
type child struct {
	st      playgroundStore
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process was reaped
	err     error         // its exit status, set before exited closes
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (a *app) runPlayground(ctx context.Context, cfg playgroundConfig) error {
	bin, err := findStoreBin(cfg.storeBin)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return usageErrorf("data-dir: %v", err)
	}
	st, err := loadOrCreatePlaygroundState(dir, cfg.storeCount, cfg.countChanged)
	if err != nil {
		return err
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var children []*child
	defer func() { stopChildren(children, sigs, a.stderr) }()
	anyExit := make(chan *child, len(st.Stores))
	for _, s := range st.Stores {
		c, err := startStoreChild(bin, dir, s, st.initialStoresFlag(), cfg.storeFlags)
		if err != nil {
			return err
		}
		children = append(children, c)
		go func() {
			<-c.exited
			anyExit <- c
		}()
	}

	if err := waitPlaygroundReady(ctx, st.addrs(), cfg.readyTimeout, anyExit, sigs); err != nil {
		var intr *interruptedError
		if errors.As(err, &intr) {
			fmt.Fprintf(a.stderr, "rangekv playground: %s: stopping the stores\n", intr.sig)
			return nil
		}
		return err
	}

	w := a.stdout
	fmt.Fprintf(w, "rangekv playground: %d stores running (data and logs in %s)\n", len(children), dir)
	for _, c := range children {
		fmt.Fprintf(w, "  store %d  pid %d  addr %s  http http://%s  log %s\n", c.st.ID, c.cmd.Process.Pid, c.st.Addr, c.st.HTTPAddr, c.logPath)
	}
	stores := strings.Join(st.addrs(), ",")
	fmt.Fprintf(w, "\nTry:\n")
	fmt.Fprintf(w, "  export RANGEKV_STORES=%s\n", stores)
	fmt.Fprintf(w, "  rangekv --stores %s put greeting hello\n", stores)
	fmt.Fprintf(w, "  rangekv --stores %s get greeting\n", stores)
	fmt.Fprintf(w, "  rangekv --stores %s scan\n", stores)
	fmt.Fprintf(w, "  rangekv --stores %s bench --workload write --duration 10s\n", stores)
	fmt.Fprintf(w, "  curl -s http://%s/debug/ranges\n", st.Stores[0].HTTPAddr)
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")

	live := len(children)
	for {
		select {
		case s := <-sigs:
			fmt.Fprintf(a.stderr, "rangekv playground: %s: stopping the stores\n", s)
			return nil // the deferred stopChildren stops them
		case <-ctx.Done():
			return nil
		case c := <-anyExit:
			live--
			fmt.Fprintf(a.stderr, "rangekv playground: store %d (pid %d) exited unexpectedly (%v); see %s\n", c.st.ID, c.cmd.Process.Pid, c.err, c.logPath)
			if live == 0 {
				return errors.New("playground: every store exited")
			}
		}
	}
}

// startStoreChild starts one rangekv-store with its output appended to
// <dir>/store<N>.log.
func startStoreChild(bin, dir string, s playgroundStore, initial string, extra []string) (*child, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("store%d.log", s.ID))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store %d log: %w", s.ID, err)
	}
	args := []string{
		"--store-id", strconv.FormatUint(s.ID, 10),
		"--addr", s.Addr,
		"--http-addr", s.HTTPAddr,
		"--data-dir", filepath.Join(dir, s.Dir),
		"--initial-stores", initial,
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	// The store reads RANGEKV_* itself: keep the CLI's own out of its way.
	cmd.Env = storeEnv(os.Environ())
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start store %d (%s): %w", s.ID, bin, err)
	}
	c := &child{st: s, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// storeEnv drops the CLI's global RANGEKV_* variables, which mean something
// else to a store (RANGEKV_PLACEMENT would stop it).
func storeEnv(env []string) []string {
	drop := map[string]bool{}
	for _, g := range globalFlags {
		drop["RANGEKV_"+strings.ToUpper(g)] = true
	}
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			out = append(out, kv)
		}
	}
	return out
}

// waitPlaygroundReady waits until a put succeeds, a store exits, a signal
// arrives or timeout passes.
func waitPlaygroundReady(ctx context.Context, addrs []string, timeout time.Duration, anyExit <-chan *child, sigs <-chan os.Signal) error {
	cl, err := router.NewStatic(addrs, router.Options{})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	ok := make(chan error, 1)
	go func() {
		for {
			attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
			err := cl.Put(attempt, []byte("playground/started"), []byte(time.Now().UTC().Format(time.RFC3339)))
			cancelAttempt()
			if err == nil || ctx.Err() != nil {
				ok <- err
				return
			}
		}
	}()
	// Stop the writer and wait for it before the client closes.
	received := false
	defer func() {
		cancel()
		if !received {
			<-ok
		}
	}()
	select {
	case err := <-ok:
		received = true
		if err != nil {
			return fmt.Errorf("playground: the cluster did not accept a write within --ready-timeout %s: %v (see the store logs)", timeout, err)
		}
		return nil
	case c := <-anyExit:
		return fmt.Errorf("playground: store %d exited while starting (%v): %s", c.st.ID, c.err, lastLine(c.logPath))
	case s := <-sigs:
		return &interruptedError{sig: s}
	}
}

// interruptedError: a signal arrived while the playground was starting;
// it stops the stores and exits 0, as it would once running.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "playground: " + e.sig.String() + " while starting" }

// lastLine returns the last non-empty line of a file, for error messages.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "see " + path
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return "see " + path
	}
	return last + " (" + path + ")"
}

// stopChildren sends SIGTERM to every running child, waits up to
// playgroundStopTimeout for all of them, then SIGKILLs the rest. A signal
// on sigs at least a second into the wait (a second Ctrl-C, not the same
// one delivered twice) kills them at once.
func stopChildren(children []*child, sigs <-chan os.Signal, stderr io.Writer) {
	for _, c := range children {
		if c.running() {
			c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	start := time.Now()
	deadline := time.NewTimer(playgroundStopTimeout)
	defer deadline.Stop()
	kill := false
	for _, c := range children {
		for !kill && c.running() {
			select {
			case <-c.exited:
			case <-deadline.C:
				fmt.Fprintf(stderr, "rangekv playground: stores still running after %s: killing them\n", playgroundStopTimeout)
				kill = true
			case <-sigs:
				if time.Since(start) >= time.Second {
					fmt.Fprintln(stderr, "rangekv playground: killing the stores")
					kill = true
				}
			}
		}
	}
	for _, c := range children {
		if kill && c.running() {
			c.cmd.Process.Kill()
		}
		<-c.exited
	}
}
