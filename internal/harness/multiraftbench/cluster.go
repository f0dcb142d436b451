package main

// Store processes: start on free 127.0.0.1 ports with static bootstrap,
// stop by PID (SIGTERM, then SIGKILL after a deadline), kill -9, all
// through internal/procs; the admin clients, /metrics scrapes and /proc
// CPU readings the measurements use.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// stopGrace is how long a store gets to exit after SIGTERM.
const stopGrace = 10 * time.Second

type storeProc struct {
	id       uint64
	addr     string
	httpAddr string
	dataDir  string
	logPath  string

	proc   *procs.Proc // nil until started
	killed bool        // stopped on purpose (kill9, restart)
	bin    string
	args   []string // the flags it was started with (restart reuses them)

	conn  *grpc.ClientConn
	admin rangekvpb.AdminClient
}

func (p *storeProc) pid() int { return p.proc.Pid() }

func (p *storeProc) running() bool { return p.proc != nil && p.proc.Running() }

type cluster struct {
	name   string
	dir    string
	stores []*storeProc
}

// storeArgs are the flags every store gets beyond its identity.
type storeArgs struct {
	bin     string
	profile string
	extra   []string
}

// startCluster starts three stores bootstrapped together, with data under
// dir, and waits until range 1 has a leader.
func startCluster(ctx context.Context, name, dir string, sa storeArgs) (*cluster, error) {
	const n = 3
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addrs, err := procs.FreeLoopbackAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []procs.Peer
	for i := range n {
		initial = append(initial, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
	}
	c := &cluster{name: name, dir: dir}
	for i := range n {
		p := &storeProc{
			id:       uint64(i + 1),
			addr:     addrs[2*i],
			httpAddr: addrs[2*i+1],
			dataDir:  filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			logPath:  filepath.Join(dir, fmt.Sprintf("s%d.log", i+1)),
		}
		c.stores = append(c.stores, p)
		args := procs.StoreArgs{
			StoreID:       p.id,
			Addr:          p.addr,
			HTTPAddr:      p.httpAddr,
			DataDir:       p.dataDir,
			InitialStores: initial,
			Extra:         sa.flags(),
		}
		p.bin, p.args = sa.bin, args.Args()
		if err := p.start(fmt.Sprintf("store %d", p.id), sa.bin, p.args); err != nil {
			c.stop()
			return nil, err
		}
		conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20)))
		if err != nil {
			c.stop()
			return nil, err
		}
		p.conn, p.admin = conn, rangekvpb.NewAdminClient(conn)
	}
	for _, p := range c.stores {
		rctx, cancel := context.WithTimeoutCause(ctx, 30*time.Second, errors.New("not ready after 30s"))
		err := p.proc.WaitReady(rctx, procs.HTTPReady("http://"+p.httpAddr+"/readyz"))
		cancel()
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("%w (log: %s)", err, p.logPath)
		}
	}
	if _, err := c.waitLeader(ctx, 1, 30*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// flags are the flags every store gets beyond its identity and bootstrap.
func (sa storeArgs) flags() []string {
	return append([]string{"--raft.profile", sa.profile}, sa.extra...)
}

// start starts the process, named name in errors, with its output appended
// to p.logPath. The caller's RANGEKV_* settings must not change what runs,
// and the process outlives nothing: if this program dies, the kernel kills
// it (procs' default parent-death signal).
func (p *storeProc) start(name, bin string, args []string) error {
	proc, err := procs.Start(procs.Spec{Name: name, Bin: bin, Args: args, Env: procs.CleanEnv(), LogPath: p.logPath})
	if err != nil {
		return err
	}
	p.proc = proc
	return nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// listAll pages through a store's Admin.ListRanges (10,000 replicas a
// page, the maximum) and returns every replica in one answer.
func listAll(ctx context.Context, adm rangekvpb.AdminClient) (*rangekvpb.ListRangesResponse, error) {
	req := &rangekvpb.ListRangesRequest{Limit: 10000}
	var out *rangekvpb.ListRangesResponse
	for {
		resp, err := adm.ListRanges(ctx, req)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = resp
		} else {
			out.Replicas = append(out.Replicas, resp.Replicas...)
		}
		if resp.NextPageToken == "" {
			out.NextPageToken = ""
			return out, nil
		}
		req.PageToken = resp.NextPageToken
	}
}

// waitLeader waits until some live store reports a leader for rangeID and
// returns that store's index.
func (c *cluster) waitLeader(ctx context.Context, rangeID uint64, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for i, p := range c.stores {
			if !p.running() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := p.admin.ListRanges(rctx, &rangekvpb.ListRangesRequest{RangeIds: []uint64{rangeID}})
			cancel()
			if err != nil {
				continue
			}
			for _, st := range resp.Replicas {
				if st.GetDescriptor_().GetRangeId() == rangeID && st.RaftState == "StateLeader" {
					return i, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("%s: range %d has no leader after %s", c.name, rangeID, timeout)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// stop stops every running store: SIGTERM, then SIGKILL for those still
// running after stopGrace. It returns the stores that needed SIGKILL.
func (c *cluster) stop() []uint64 {
	var ps []*procs.Proc
	for _, p := range c.stores {
		if p.proc != nil {
			ps = append(ps, p.proc)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	killedProcs := procs.Stop(ctx, ps...)
	var killed []uint64
	for _, p := range c.stores {
		if p.proc != nil && slices.Contains(killedProcs, p.proc) {
			killed = append(killed, p.id)
		}
	}
	for _, p := range c.stores {
		if p.conn != nil {
			p.conn.Close()
		}
	}
	return killed
}

// kill9 sends SIGKILL to store i and waits (bounded) until it is reaped.
func (c *cluster) kill9(i int) error {
	p := c.stores[i]
	if !p.running() {
		return fmt.Errorf("store %d is not running", p.id)
	}
	p.killed = true
	ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, errors.New("10s after SIGKILL"))
	defer cancel()
	return p.proc.Kill(ctx)
}

// checkAlive reports stores that exited without being killed on purpose,
// with the first panic or fatal line of their logs.
func (c *cluster) checkAlive() error {
	var dead []string
	for _, p := range c.stores {
		if p.proc == nil || p.running() || p.killed {
			continue
		}
		dead = append(dead, fmt.Sprintf("store %d exited (%s): %s (log: %s)", p.id, p.proc.State(), crashLine(p.logPath), p.logPath))
	}
	if len(dead) > 0 {
		return &storeCrashError{msg: strings.Join(dead, "; ")}
	}
	return nil
}

type storeCrashError struct{ msg string }

func (e *storeCrashError) Error() string { return e.msg }

// crashLine returns the first "panic:" or "fatal" line of a store log, or
// its last line.
func crashLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	last := ""
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			return l
		}
		if strings.TrimSpace(l) != "" {
			last = l
		}
	}
	return last
}

func (c *cluster) storeIndex(storeID uint64) int {
	for i, p := range c.stores {
		if p.id == storeID {
			return i
		}
	}
	return -1
}

func (c *cluster) addrs() []string {
	var out []string
	for _, p := range c.stores {
		out = append(out, p.addr)
	}
	return out
}

// metricsSnap is one /metrics scrape: each series' value by its full name
// with labels, and summed over label sets by metric name.
type metricsSnap struct {
	series map[string]float64
	byName map[string]float64
}

func scrape(ctx context.Context, p *storeProc) (metricsSnap, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/metrics", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return metricsSnap{}, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (metricsSnap, error) {
	m := metricsSnap{series: map[string]float64{}, byName: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		full := line[:i]
		name := full
		if j := strings.IndexByte(full, '{'); j >= 0 {
			name = full[:j]
		}
		m.series[full] = v
		m.byName[name] += v
	}
	return m, sc.Err()
}

// scrapeAll scrapes every running store; stopped stores get an empty snap.
func (c *cluster) scrapeAll(ctx context.Context) ([]metricsSnap, error) {
	out := make([]metricsSnap, len(c.stores))
	for i, p := range c.stores {
		if !p.running() {
			out[i] = metricsSnap{series: map[string]float64{}, byName: map[string]float64{}}
			continue
		}
		s, err := scrape(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("scrape store %d: %w", p.id, err)
		}
		out[i] = s
	}
	return out, nil
}

// cpuTicks reads utime+stime of every store (0 for stopped ones).
func (c *cluster) cpuTicks() ([]uint64, error) {
	out := make([]uint64, len(c.stores))
	for i, p := range c.stores {
		if !p.running() {
			continue
		}
		v, err := procTicks(p.pid())
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// procTicks returns utime+stime of pid in clock ticks.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	r := strings.LastIndexByte(s, ')')
	if r < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[r+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	return u + st, nil
}

// machineTicks returns busy and total ticks of the whole machine from
// /proc/stat (busy excludes idle and iowait).
func machineTicks() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest times are already in user and nice
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// foreignBusy samples the machine for d and returns the % of all cores
// busy with anything but this program and c's stores.
func foreignBusy(ctx context.Context, c *cluster, d time.Duration) (float64, error) {
	own := func() (uint64, error) {
		t, err := c.cpuTicks()
		if err != nil {
			return 0, err
		}
		self, err := procTicks(os.Getpid())
		if err != nil {
			return 0, err
		}
		var s uint64
		for _, v := range t {
			s += v
		}
		return s + self, nil
	}
	o0, err := own()
	if err != nil {
		return 0, err
	}
	b0, t0, err := machineTicks()
	if err != nil {
		return 0, err
	}
	if err := sleepCtx(ctx, d); err != nil {
		return 0, err
	}
	o1, err := own()
	if err != nil {
		return 0, err
	}
	b1, t1, err := machineTicks()
	if err != nil || t1 <= t0 {
		return 0, err
	}
	return max(0, 100*(float64(b1-b0)-float64(o1-o0))/float64(t1-t0)), nil
}

// waitQuiet waits, at most limit, until other work on the machine uses
// under below % of all cores (1 s samples). It returns the last sample and
// whether it was under the threshold.
func waitQuiet(ctx context.Context, c *cluster, limit time.Duration, below float64, progress io.Writer) (float64, bool) {
	if limit <= 0 {
		return 0, true
	}
	deadline := time.Now().Add(limit)
	for {
		f, err := foreignBusy(ctx, c, time.Second)
		if err != nil {
			return f, false
		}
		if f < below {
			return f, true
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(progress, "  machine still %.0f%% busy with other work after %s; going on\n", f, limit)
			return f, false
		}
		fmt.Fprintf(progress, "  waiting for a quieter machine: other work uses %.0f%% of all cores\n", f)
	}
}
