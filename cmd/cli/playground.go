// rangekv playground: a local cluster of child processes on 127.0.0.1 for
// trying rangekv out: rangekv-placement members and rangekv-store
// processes that join them (or, with --placement-count 0, stores
// bootstrapped statically).

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// playgroundStateFile, in the data directory, records the processes' IDs,
// addresses and directories so that a restarted playground reuses its data
// on the same ports (placement members and statically bootstrapped stores
// know each other by address).
const playgroundStateFile = "playground.json"

// playgroundStopTimeout is how long stopping waits for a group of children
// (the stores, then the placement members) to exit after SIGTERM before it
// kills them.
const playgroundStopTimeout = 10 * time.Second

// Playground modes (playgroundState.Mode).
const (
	modePlacement = "placement"
	// modeStatic: stores only, bootstrapped with --initial-stores. A state
	// file without a mode (written before placement existed) is static.
	modeStatic = "static"
)

// playgroundProc is one child process of the playground.
type playgroundProc struct {
	// ID: the placement member ID, or the store's number in the
	// playground (its store ID in static mode; placement assigns store IDs
	// in placement mode).
	ID       uint64 `json:"id"`
	Addr     string `json:"addr"`
	HTTPAddr string `json:"http_addr"`
	// Dir is the process's data directory, relative to the playground's.
	Dir string `json:"dir"`
}

type playgroundState struct {
	Mode      string           `json:"mode,omitempty"`
	Placement []playgroundProc `json:"placement,omitempty"`
	Stores    []playgroundProc `json:"stores"`
	// clientTLS is the client configuration with --tls (not saved).
	clientTLS *tls.Config
	// tlsDir holds the certificates with --tls.
	tlsDir string
}

func (st playgroundState) static() bool { return st.Mode != modePlacement }

type playgroundConfig struct {
	storeCount, placementCount    int
	storesChanged, membersChanged bool
	dataDir                       string
	storeBin, placementBin        string
	readyTimeout                  time.Duration
	storeFlags, placementFlags    []string
	tls                           bool
}

func (a *app) playgroundCmd() *cobra.Command {
	var cfg playgroundConfig
	cmd := &cobra.Command{
		Use:   "playground",
		Short: "Run a local cluster (placement members and stores) on 127.0.0.1 until Ctrl-C",
		Long: `Start a local rangekv cluster in the foreground, on free 127.0.0.1 ports:
--placement-count rangekv-placement members (default 3) and --store-count
rangekv-store processes (default 3) that join them; the first store
bootstraps range 1 and placement replicates it onto the others. Data goes
under --data-dir (one subdirectory per process), logs to
<data-dir>/<name>.log.

Once range 1 has its voters and a write succeeds (at most --ready-timeout),
it prints every process's gRPC and HTTP address (/metrics, /debug/cluster,
/debug/ranges) and CLI lines to try. Ctrl-C (or SIGTERM) stops the stores,
then the placement members (SIGTERM, then SIGKILL after 10s each), and exits
0; a second Ctrl-C (a second or more later) kills them at once.

Starting again with the same --data-dir reuses the data and the ports
recorded in <data-dir>/playground.json, so the cluster comes back with its
keys. With --placement-count 0 the stores are bootstrapped statically
(--initial-stores, no placement driver; use --stores with the CLI); a data
directory from before placement existed keeps running that way.

The rangekv-placement and rangekv-store binaries are looked up next to the
rangekv executable (make build puts all three in bin/) unless
--placement-bin and --store-bin name them. Extra flags go to every member
or store through --placement-flag and --store-flag.

With --tls every connection is mutual TLS: a development CA and
certificates are written to <data-dir>/certs on the first run (as 'rangekv
certs' does) and reused afterwards; the printed CLI lines include the
client certificate.`,
		Example: `  rangekv playground
  rangekv playground --store-count 5 --data-dir /tmp/rkv
  rangekv playground --placement-count 1 --store-count 1
  rangekv playground --store-flag=--raft.profile=high-availability
  rangekv playground --placement-flag=--schedule.interval=500ms
  rangekv playground --placement-count 0          # static: stores only
  rangekv playground --tls                        # mutual TLS, certificates in <data-dir>/certs`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			cfg.storesChanged = cmd.Flags().Changed("store-count")
			cfg.membersChanged = cmd.Flags().Changed("placement-count")
			return a.runPlayground(cmd.Context(), cfg)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&cfg.storeCount, "store-count", 3, "number of stores")
	f.IntVar(&cfg.placementCount, "placement-count", 3, "number of placement members (0: no placement driver, stores bootstrapped statically)")
	f.StringVar(&cfg.dataDir, "data-dir", "./data", "directory for the processes' data, logs and playground.json")
	f.StringVar(&cfg.storeBin, "store-bin", "", "path of the rangekv-store binary (default: next to rangekv)")
	f.StringVar(&cfg.placementBin, "placement-bin", "", "path of the rangekv-placement binary (default: next to rangekv)")
	f.DurationVar(&cfg.readyTimeout, "ready-timeout", 60*time.Second, "how long to wait for the cluster to be replicated and accept a write")
	f.StringArrayVar(&cfg.storeFlags, "store-flag", nil, "extra flag for every store, e.g. --store-flag=--raft.profile=high-availability (repeatable)")
	f.BoolVar(&cfg.tls, "tls", false, "mutual TLS between every process and for clients (certificates in <data-dir>/certs)")
	f.StringArrayVar(&cfg.placementFlags, "placement-flag", nil, "extra flag for every placement member, e.g. --placement-flag=--schedule.interval=500ms (repeatable)")
	return cmd
}

// findBin returns the binary to run: flagValue, or name next to the
// rangekv executable.
func findBin(flagName, flagValue, name string) (string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", usageErrorf("%s: %v", flagName, err)
		}
		return flagValue, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", usageErrorf("%s: cannot locate the rangekv executable (%v); pass --%s", flagName, err, flagName)
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(p); err != nil {
		return "", usageErrorf("%s: no %s next to rangekv (%s); build it (make build) or pass --%s", flagName, name, p, flagName)
	}
	return p, nil
}

// loadOrCreatePlaygroundState reads <dir>/playground.json, or creates it
// with fresh ports when the directory holds no playground yet. A recorded
// playground keeps its shape; an explicit count that differs is refused.
func loadOrCreatePlaygroundState(dir string, cfg playgroundConfig) (playgroundState, error) {
	var st playgroundState
	path := filepath.Join(dir, playgroundStateFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil || len(st.Stores) == 0 {
			return st, fmt.Errorf("data-dir: %s is damaged (%v); remove the data directory to start afresh", path, err)
		}
		if cfg.storesChanged && cfg.storeCount != len(st.Stores) {
			return st, usageErrorf("store-count: %s holds a %d-store playground; use --store-count %d or another --data-dir", dir, len(st.Stores), len(st.Stores))
		}
		if cfg.membersChanged && cfg.placementCount != len(st.Placement) {
			if st.static() {
				return st, usageErrorf("placement-count: %s holds a playground without placement (stores bootstrapped statically); use --placement-count 0 or another --data-dir", dir)
			}
			return st, usageErrorf("placement-count: %s holds a playground with %d placement members; use --placement-count %d or another --data-dir", dir, len(st.Placement), len(st.Placement))
		}
		if st.static() {
			st.Mode = modeStatic
		}
		return st, nil
	case !errors.Is(err, os.ErrNotExist):
		return st, fmt.Errorf("data-dir: %w", err)
	}
	if cfg.storeCount < 1 {
		return st, usageErrorf("store-count: must be at least 1, got %d", cfg.storeCount)
	}
	if cfg.placementCount < 0 {
		return st, usageErrorf("placement-count: must not be negative, got %d", cfg.placementCount)
	}
	for _, prefix := range []string{"store", "placement"} {
		if m, _ := filepath.Glob(filepath.Join(dir, prefix+"[0-9]*")); len(m) > 0 {
			return st, usageErrorf("data-dir: %s holds %s data but no %s (its ports are unknown); remove it or use another --data-dir", dir, prefix, playgroundStateFile)
		}
	}
	addrs, err := procs.FreeLoopbackAddrs(2 * (cfg.storeCount + cfg.placementCount))
	if err != nil {
		return st, fmt.Errorf("pick free ports: %w", err)
	}
	next := func() (string, string) {
		a, h := addrs[0], addrs[1]
		addrs = addrs[2:]
		return a, h
	}
	st.Mode = modeStatic
	if cfg.placementCount > 0 {
		st.Mode = modePlacement
	}
	for i := range cfg.placementCount {
		a, h := next()
		st.Placement = append(st.Placement, playgroundProc{ID: uint64(i + 1), Addr: a, HTTPAddr: h, Dir: fmt.Sprintf("placement%d", i+1)})
	}
	for i := range cfg.storeCount {
		a, h := next()
		st.Stores = append(st.Stores, playgroundProc{ID: uint64(i + 1), Addr: a, HTTPAddr: h, Dir: fmt.Sprintf("store%d", i+1)})
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

// procPeers lists processes by ID and address, for --initial-stores
// (static mode) and the placement members' --initial-cluster.
func procPeers(ps []playgroundProc) []procs.Peer {
	out := make([]procs.Peer, len(ps))
	for i, p := range ps {
		out[i] = procs.Peer{ID: p.ID, Addr: p.Addr}
	}
	return out
}

func (st playgroundState) initialStores() []procs.Peer  { return procPeers(st.Stores) }
func (st playgroundState) initialCluster() []procs.Peer { return procPeers(st.Placement) }

func procAddrs(ps []playgroundProc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Addr
	}
	return out
}

func (st playgroundState) addrs() []string          { return procAddrs(st.Stores) }
func (st playgroundState) placementAddrs() []string { return procAddrs(st.Placement) }

// replicas is the replication factor the playground's placement uses: 3,
// or the number of stores when there are fewer.
func (st playgroundState) replicas() int { return min(3, len(st.Stores)) }

// child is one running process, named "store 1", "placement 2".
type child struct {
	*procs.Proc
	proc playgroundProc
}

func (a *app) runPlayground(ctx context.Context, cfg playgroundConfig) error {
	dir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return usageErrorf("data-dir: %v", err)
	}
	st, err := loadOrCreatePlaygroundState(dir, cfg)
	if err != nil {
		return err
	}
	storeBin, err := findBin("store-bin", cfg.storeBin, "rangekv-store")
	if err != nil {
		return err
	}
	var nodeTLS []string
	if cfg.tls {
		if nodeTLS, err = playgroundTLS(&st, filepath.Join(dir, "certs"), a.now()); err != nil {
			return err
		}
	}
	var pdBin string
	if !st.static() {
		if pdBin, err = findBin("placement-bin", cfg.placementBin, "rangekv-placement"); err != nil {
			return err
		}
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var members, stores []*child
	defer func() {
		// Stores first (they report to placement until the end), then
		// the placement members.
		stopChildren(stores, sigs, a.stderr)
		stopChildren(members, sigs, a.stderr)
	}()
	anyExit := make(chan *child, len(st.Stores)+len(st.Placement))
	// One goroutine per child; each ends once its child was reaped (the
	// deferred stops reap every child), and anyExit has room for all.
	watch := func(c *child) {
		go func() {
			<-c.Done()
			anyExit <- c
		}()
	}
	for _, p := range st.Placement {
		args := procs.PlacementArgs{
			ID:             p.ID,
			Addr:           p.Addr,
			HTTPAddr:       p.HTTPAddr,
			DataDir:        filepath.Join(dir, p.Dir),
			InitialCluster: st.initialCluster(),
			Replicas:       st.replicas(),
			Extra:          append(append([]string(nil), nodeTLS...), cfg.placementFlags...),
		}
		c, err := startChild(pdBin, dir, fmt.Sprintf("placement %d", p.ID), p, args.Args())
		if err != nil {
			return err
		}
		members = append(members, c)
		watch(c)
	}
	for _, s := range st.Stores {
		args := procs.StoreArgs{
			Addr:     s.Addr,
			HTTPAddr: s.HTTPAddr,
			DataDir:  filepath.Join(dir, s.Dir),
			Extra:    append(append([]string(nil), nodeTLS...), cfg.storeFlags...),
		}
		if st.static() {
			args.StoreID, args.InitialStores = s.ID, st.initialStores()
		} else {
			args.Placement = st.placementAddrs()
		}
		c, err := startChild(storeBin, dir, fmt.Sprintf("store %d", s.ID), s, args.Args())
		if err != nil {
			return err
		}
		stores = append(stores, c)
		watch(c)
	}

	storeIDs, err := waitPlaygroundReady(ctx, st, cfg.readyTimeout, anyExit, sigs)
	if err != nil {
		var intr *interruptedError
		if errors.As(err, &intr) {
			fmt.Fprintf(a.stderr, "rangekv playground: %s: stopping\n", intr.sig)
			return nil
		}
		return err
	}
	a.printPlayground(st, dir, members, stores, storeIDs)

	live := len(stores)
	for {
		select {
		case s := <-sigs:
			fmt.Fprintf(a.stderr, "rangekv playground: %s: stopping the stores, then the placement members\n", s)
			return nil // the deferred stops do it
		case <-ctx.Done():
			return nil
		case c := <-anyExit:
			fmt.Fprintf(a.stderr, "rangekv playground: %s (pid %d) exited unexpectedly (%v); see %s\n", c.Name(), c.Pid(), c.Err(), c.LogPath())
			if strings.HasPrefix(c.Name(), "store") {
				if live--; live == 0 {
					return errors.New("playground: every store exited")
				}
			}
		}
	}
}

// printPlayground prints the processes and CLI lines to try.
func (a *app) printPlayground(st playgroundState, dir string, members, stores []*child, storeIDs map[string]uint64) {
	w := a.stdout
	if st.static() {
		fmt.Fprintf(w, "rangekv playground: %d stores running, bootstrapped statically without placement (data and logs in %s)\n", len(stores), dir)
	} else {
		fmt.Fprintf(w, "rangekv playground: %d placement members and %d stores running (data and logs in %s)\n", len(members), len(stores), dir)
	}
	for _, c := range members {
		fmt.Fprintf(w, "  placement %d  pid %d  addr %s  http http://%s  log %s\n", c.proc.ID, c.Pid(), c.proc.Addr, c.proc.HTTPAddr, c.LogPath())
	}
	for _, c := range stores {
		id := c.proc.ID
		if sid, ok := storeIDs[c.proc.Addr]; ok {
			id = sid
		}
		fmt.Fprintf(w, "  store %d  pid %d  addr %s  http http://%s  log %s\n", id, c.Pid(), c.proc.Addr, c.proc.HTTPAddr, c.LogPath())
	}
	storesFlag := strings.Join(st.addrs(), ",")
	fmt.Fprintf(w, "\nTry:\n")
	if st.clientTLS != nil {
		fmt.Fprintf(w, "  export RANGEKV_TLS_CERT=%s RANGEKV_TLS_KEY=%s RANGEKV_TLS_CA=%s\n",
			filepath.Join(st.tlsDir, "client.crt"), filepath.Join(st.tlsDir, "client.key"), filepath.Join(st.tlsDir, "ca.crt"))
	}
	if st.static() {
		fmt.Fprintf(w, "  export RANGEKV_STORES=%s\n", storesFlag)
		fmt.Fprintf(w, "  rangekv --stores %s put greeting hello\n", storesFlag)
		fmt.Fprintf(w, "  rangekv --stores %s get greeting\n", storesFlag)
		fmt.Fprintf(w, "  rangekv --stores %s scan\n", storesFlag)
		fmt.Fprintf(w, "  rangekv --stores %s bench --workload write --duration 10s\n", storesFlag)
		fmt.Fprintf(w, "  curl -s http://%s/debug/ranges\n", st.Stores[0].HTTPAddr)
		fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
		return
	}
	pd := strings.Join(st.placementAddrs(), ",")
	fmt.Fprintf(w, "  export RANGEKV_PLACEMENT=%s\n", pd)
	fmt.Fprintf(w, "  rangekv put greeting hello\n")
	fmt.Fprintf(w, "  rangekv get greeting\n")
	fmt.Fprintf(w, "  rangekv cluster status\n")
	fmt.Fprintf(w, "  rangekv store list\n")
	fmt.Fprintf(w, "  rangekv range split m\n")
	fmt.Fprintf(w, "  rangekv range list\n")
	fmt.Fprintf(w, "  rangekv bench --workload write --duration 10s --ranges 4\n")
	fmt.Fprintf(w, "  rangekv shell\n")
	fmt.Fprintf(w, "  curl -s http://%s/debug/cluster\n", st.Placement[0].HTTPAddr)
	fmt.Fprintf(w, "\nWithout the export:\n")
	fmt.Fprintf(w, "  rangekv --placement %s get greeting\n", pd)
	fmt.Fprintf(w, "Static mode (straight to the stores, no placement) works too:\n")
	fmt.Fprintf(w, "  rangekv --stores %s put greeting hello\n", storesFlag)
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}

// startChild starts one child with its output appended to
// <dir>/<name>.log (name without the space). The child is in its own
// process group, so that only the playground signals it (a Ctrl-C at the
// terminal reaches the playground, which stops the stores, then the
// placement members), and on Linux it gets SIGTERM if the playground dies
// without stopping it (kill -9), so no child is left behind.
func startChild(bin, dir, name string, p playgroundProc, args []string) (*child, error) {
	proc, err := procs.Start(procs.Spec{
		Name:    name,
		Bin:     bin,
		Args:    args,
		LogPath: filepath.Join(dir, strings.ReplaceAll(name, " ", "")+".log"),
		// The children read RANGEKV_* themselves: keep the CLI's own out
		// of their way.
		Env:               storeEnv(os.Environ()),
		ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, err
	}
	return &child{Proc: proc, proc: p}, nil
}

// storeEnv drops the CLI's global RANGEKV_* variables, which mean something
// else to a store or a placement member (RANGEKV_PLACEMENT would change
// how a store joins).
func storeEnv(env []string) []string {
	drop := map[string]bool{}
	for _, g := range globalFlags {
		drop["RANGEKV_"+strings.ToUpper(g)] = true
	}
	return procs.FilterEnv(env, func(name string) bool { return drop[name] })
}

// playgroundKey is the key the playground writes to check the cluster.
const playgroundKey = "playground/started"

// waitPlaygroundReady waits until the cluster is ready (placement mode:
// every store up, no under-replicated or leaderless range, and a put
// succeeds; static mode: a put succeeds), a child exits, a signal arrives
// or timeout passes. In placement mode it returns the store IDs by
// address.
func waitPlaygroundReady(ctx context.Context, st playgroundState, timeout time.Duration, anyExit <-chan *child, sigs <-chan os.Signal) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	type result struct {
		ids map[string]uint64
		err error
	}
	done := make(chan result, 1)
	var progress lastStatus
	go func() {
		ids, err := playgroundReady(ctx, st, &progress)
		done <- result{ids, err}
	}()
	// Stop the checker and wait for it before returning.
	received := false
	defer func() {
		cancel()
		if !received {
			<-done
		}
	}()
	select {
	case r := <-done:
		received = true
		if r.err != nil {
			return nil, fmt.Errorf("playground: the cluster was not ready within --ready-timeout %s: %v%s (see the logs)", timeout, r.err, progress.String())
		}
		return r.ids, nil
	case c := <-anyExit:
		return nil, fmt.Errorf("playground: %s exited while starting (%v): %s", c.Name(), c.Err(), lastLine(c.LogPath()))
	case s := <-sigs:
		return nil, &interruptedError{sig: s}
	}
}

// lastStatus is the last cluster state the readiness check saw (for the
// timeout message). Written by the checker goroutine, read after it ends.
type lastStatus struct{ msg string }

func (l *lastStatus) String() string {
	if l.msg == "" {
		return ""
	}
	return "; last seen: " + l.msg
}

// playgroundReady polls until ready or ctx ends.
func playgroundReady(ctx context.Context, st playgroundState, progress *lastStatus) (map[string]uint64, error) {
	var cl *router.Client
	var err error
	if st.static() {
		cl, err = router.NewStatic(st.addrs(), router.Options{TLS: st.clientTLS})
	} else {
		cl, err = router.New(st.placementAddrs(), router.Options{TLS: st.clientTLS})
	}
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var ids map[string]uint64
	if !st.static() {
		adm, err := cl.Admin()
		if err != nil {
			return nil, err
		}
		if ids, err = waitReplicated(ctx, adm, len(st.Stores), progress); err != nil {
			return nil, err
		}
	}
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := cl.Put(attempt, []byte(playgroundKey), []byte(time.Now().UTC().Format(time.RFC3339)))
		cancelAttempt()
		if err == nil {
			return ids, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		progress.msg = "a test write failed: " + errorLine(err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReplicated polls ClusterStatus until every store joined and is up
// and no range is under-replicated or leaderless; it returns the store IDs
// by address.
func waitReplicated(ctx context.Context, adm *router.Admin, stores int, progress *lastStatus) (map[string]uint64, error) {
	for {
		s, err := adm.ClusterStatus(ctx)
		if err == nil {
			if ok, why := replicatedNow(s, stores); ok {
				ids := map[string]uint64{}
				for _, si := range s.Stores {
					ids[si.GetStore().GetAddress()] = si.GetStore().GetStoreId()
				}
				return ids, nil
			} else {
				progress.msg = why
			}
		} else {
			progress.msg = errorLine(err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// replicatedNow says whether a cluster status shows the playground ready,
// or what it waits for.
func replicatedNow(s *rangekvpb.ClusterStatusResponse, stores int) (bool, string) {
	up := 0
	for _, si := range s.Stores {
		if si.State == rangekvpb.StoreState_STORE_UP {
			up++
		}
	}
	switch {
	case !s.Bootstrapped:
		return false, "no store has joined placement yet"
	case up < stores:
		return false, fmt.Sprintf("%d of %d stores joined and up", up, stores)
	case s.RangeCount == 0:
		return false, "no range yet"
	case len(s.UnderReplicated) > 0:
		return false, fmt.Sprintf("ranges %s under-replicated", idList(s.UnderReplicated))
	case len(s.Leaderless) > 0:
		return false, fmt.Sprintf("ranges %s without a leader", idList(s.Leaderless))
	}
	return true, ""
}

// interruptedError: a signal arrived while the playground was starting;
// it stops the children and exits 0, as it would once running.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "playground: " + e.sig.String() + " while starting" }

// lastLine returns the last non-empty line of a file, for error messages.
func lastLine(path string) string {
	lines, err := procs.LastLines(path, 1)
	if err != nil || len(lines) == 0 {
		return "see " + path
	}
	return strings.TrimSpace(lines[0]) + " (" + path + ")"
}

// Why stopChildren killed children (the cause of its grace's end).
var (
	errStopTimeout  = errors.New("stop timeout")
	errSecondSignal = errors.New("second signal")
)

// stopChildren sends SIGTERM to every running child, waits up to
// playgroundStopTimeout for all of them, then SIGKILLs the rest. A signal
// on sigs at least a second into the wait (a second Ctrl-C, not the same
// one delivered twice) kills them at once.
func stopChildren(children []*child, sigs <-chan os.Signal, stderr io.Writer) {
	if len(children) == 0 {
		return
	}
	ps := make([]*procs.Proc, len(children))
	for i, c := range children {
		ps[i] = c.Proc
	}
	grace, cancelGrace := context.WithTimeoutCause(context.Background(), playgroundStopTimeout, errStopTimeout)
	defer cancelGrace()
	ctx, cancel := context.WithCancelCause(grace)
	// The watcher of a second signal ends with the stop: stopChildren
	// waits for it.
	start := time.Now()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-sigs:
				if time.Since(start) >= time.Second {
					cancel(errSecondSignal)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	killed := procs.Stop(ctx, ps...)
	cancel(nil)
	<-watched
	if len(killed) == 0 {
		return
	}
	names := make([]string, len(killed))
	for i, p := range killed {
		names[i] = p.Name()
	}
	sort.Strings(names)
	if errors.Is(context.Cause(ctx), errSecondSignal) {
		fmt.Fprintf(stderr, "rangekv playground: killing %s\n", strings.Join(names, ", "))
	} else {
		fmt.Fprintf(stderr, "rangekv playground: %s still running after %s: killing it\n", strings.Join(names, ", "), playgroundStopTimeout)
	}
}

// playgroundTLS makes (first run) or reuses the certificates in certDir,
// sets st's client configuration and returns the servers' --tls-* flags.
func playgroundTLS(st *playgroundState, certDir string, now time.Time) ([]string, error) {
	if _, err := os.Stat(filepath.Join(certDir, "ca.crt")); errors.Is(err, os.ErrNotExist) {
		if _, err := tlsconfig.GenerateDev(certDir, tlsconfig.DevOptions{Hosts: []string{"127.0.0.1", "localhost"}, Now: now}); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	file := func(name string) string { return filepath.Join(certDir, name) }
	src, err := tlsconfig.Load(tlsconfig.Files{Cert: file("client.crt"), Key: file("client.key"), CA: file("ca.crt")}, tlsconfig.Options{})
	if err != nil {
		return nil, fmt.Errorf("tls: %w (remove %s to make new certificates)", err, certDir)
	}
	st.clientTLS, st.tlsDir = src.ClientConfig(), certDir
	return []string{"--tls-cert", file("node.crt"), "--tls-key", file("node.key"), "--tls-ca", file("ca.crt")}, nil
}
