package main

// A store's memory (resident set per replica) and its restart: SIGTERM,
// then the same flags again, timed until it is ready (/readyz), lists
// every replica, and every replica knows a leader again.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// procRSS returns the resident set size of pid in bytes (VmRSS).
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("pid %d: unexpected VmRSS line %q", pid, line)
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS in /proc/PID/status", pid)
}

// memInfo is one store's memory as the OS and the Go runtime see it.
type memInfo struct {
	rss      uint64 // VmRSS
	heap     uint64 // HeapInuse of the runtime (/debug/pprof/heap?debug=1)
	replicas int
}

// heapInuse reads the Go runtime's HeapInuse from a store's heap profile
// page (its memstats footer).
func heapInuse(ctx context.Context, p *storeProc) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/debug/pprof/heap?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("store %d: no HeapInuse in its heap profile", p.id)
}

func (m memInfo) perReplica() float64 {
	if m.replicas == 0 {
		return 0
	}
	return float64(m.rss) / float64(m.replicas)
}

// measureMem reads every running store's RSS and Go heap in use.
func measureMem(ctx context.Context, c *cluster, replicas int) ([]memInfo, error) {
	out := make([]memInfo, len(c.stores))
	for i, p := range c.stores {
		if !p.running() {
			continue
		}
		rss, err := procRSS(p.pid())
		if err != nil {
			return nil, err
		}
		heap, err := heapInuse(ctx, p)
		if err != nil {
			return nil, err
		}
		out[i] = memInfo{rss: rss, heap: heap, replicas: replicas}
	}
	return out, nil
}

// listCost is what one full ListRanges listing of a store cost.
type listCost struct {
	replicas, pages int
	wall, cpu       time.Duration // the store's CPU (utime+stime) over the listing
}

func (l listCost) cpuPer1000() time.Duration {
	if l.replicas == 0 {
		return 0
	}
	return l.cpu * 1000 / time.Duration(l.replicas)
}

// measureListing pages through every running store's ListRanges (the
// default page of 1,000) three times, timing it and reading the store's
// CPU around it (/proc ticks are 10 ms: three passes over many replicas
// make that fine enough).
func measureListing(ctx context.Context, c *cluster) ([]listCost, error) {
	out := make([]listCost, len(c.stores))
	for i, p := range c.stores {
		if !p.running() {
			continue
		}
		t0, err := procTicks(p.pid())
		if err != nil {
			return nil, err
		}
		start := time.Now()
		for range 3 {
			req := &rangekvpb.ListRangesRequest{}
			for {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				resp, err := p.admin.ListRanges(rctx, req)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("ListRanges on store %d: %w", p.id, err)
				}
				out[i].pages++
				out[i].replicas += len(resp.Replicas)
				if resp.NextPageToken == "" {
					break
				}
				req.PageToken = resp.NextPageToken
			}
		}
		out[i].wall = time.Since(start)
		t1, err := procTicks(p.pid())
		if err != nil {
			return nil, err
		}
		out[i].cpu = time.Duration(t1-t0) * time.Second / clockTicks
	}
	return out, nil
}

// restartResult is one store restart.
type restartResult struct {
	store      uint64
	replicas   int
	stop       time.Duration // SIGTERM until the process exited
	ready      time.Duration // start until /readyz answered
	listed     time.Duration // start until ListRanges listed every replica
	serving    time.Duration // start until every replica knew a leader
	cpu        time.Duration // the store's CPU from start to serving
	rss        uint64        // after serving
	leaderless int           // replicas still without a leader at the deadline
	err        string
}

// restartStore stops store i with SIGTERM and starts it again with the
// same flags, timing each step (polling every 250 ms, up to limit).
func restartStore(ctx context.Context, c *cluster, i, want int, limit time.Duration, progress io.Writer) (restartResult, error) {
	p := c.stores[i]
	res := restartResult{store: p.id, replicas: want}
	p.killed = true
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, stopGrace)
	killed := procs.Stop(sctx, p.proc)
	cancel()
	res.stop = time.Since(t0)
	if len(killed) > 0 {
		return res, fmt.Errorf("store %d did not stop within %s of SIGTERM", p.id, stopGrace)
	}
	fmt.Fprintf(progress, "  store %d stopped in %.1fs; starting it again\n", p.id, res.stop.Seconds())
	start := time.Now()
	if err := p.start(fmt.Sprintf("store %d", p.id), p.bin, p.args); err != nil {
		return res, err
	}
	p.killed = false
	rctx, rcancel := context.WithTimeoutCause(ctx, limit, errors.New("not ready in time"))
	defer rcancel()
	if err := p.proc.WaitReady(rctx, procs.HTTPReady("http://"+p.httpAddr+"/readyz")); err != nil {
		return res, fmt.Errorf("store %d after restart: %w (log: %s)", p.id, err, p.logPath)
	}
	res.ready = time.Since(start)
	fmt.Fprintf(progress, "  store %d ready after %.1fs\n", p.id, res.ready.Seconds())
	for {
		lctx, lcancel := context.WithTimeout(rctx, 30*time.Second)
		resp, err := listAll(lctx, p.admin)
		lcancel()
		if err == nil {
			if len(resp.Replicas) >= want && res.listed == 0 {
				res.listed = time.Since(start)
			}
			res.leaderless = 0
			for _, r := range resp.Replicas {
				if r.LeaderReplicaId == 0 {
					res.leaderless++
				}
			}
			if res.listed > 0 && res.leaderless == 0 {
				res.serving = time.Since(start)
				break
			}
		}
		if rctx.Err() != nil {
			res.err = fmt.Sprintf("after %s: %d of %d replicas without a leader", limit, res.leaderless, want)
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return res, err
		}
	}
	if t, err := procTicks(p.pid()); err == nil {
		res.cpu = time.Duration(t) * time.Second / clockTicks
	}
	res.rss, _ = procRSS(p.pid())
	fmt.Fprintf(progress, "  store %d: every replica listed after %.1fs, every replica with a leader after %.1fs %s\n", p.id, res.listed.Seconds(), res.serving.Seconds(), res.err)
	return res, nil
}
