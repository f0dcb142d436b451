package main

// Idle cost: wait until every replica is quiescent, then measure each
// store's CPU and the transport and Raft message rates over a window.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// quiesceState is each store's replica count and quiescent replicas.
type quiesceState struct {
	want                int
	replicas, quiescent []int // gauges rangekv_store_replicas and _quiescent_replicas
	waited              time.Duration
	done                bool
}

func (q quiesceState) notQuiescent() int {
	n := 0
	for i := range q.replicas {
		n += max(0, q.want-q.quiescent[i])
	}
	return n
}

func (q quiesceState) String() string {
	var parts []string
	for i := range q.replicas {
		parts = append(parts, fmt.Sprintf("s%d %d quiescent of %d (gauge)", i+1, q.quiescent[i], q.replicas[i]))
	}
	return strings.Join(parts, ", ")
}

// waitQuiescent polls the stores' gauges (cheap: no ListRanges) until each
// running store has want quiescent replicas, or timeout passes. The
// replica gauge is reported but not trusted (it can count replicas the
// store no longer holds); listReplicas gives the truth afterwards.
func waitQuiescent(ctx context.Context, c *cluster, want int, timeout time.Duration, progress io.Writer) (quiesceState, error) {
	start := time.Now()
	lastPrint := time.Time{}
	for {
		if err := c.checkAlive(); err != nil {
			return quiesceState{}, err
		}
		snaps, err := c.scrapeAll(ctx)
		if err != nil {
			return quiesceState{}, err
		}
		q := quiesceState{want: want, replicas: make([]int, len(c.stores)), quiescent: make([]int, len(c.stores)), done: true}
		for i, p := range c.stores {
			if !p.running() {
				continue
			}
			q.replicas[i] = int(snaps[i].byName["rangekv_store_replicas"])
			q.quiescent[i] = int(snaps[i].byName["rangekv_store_quiescent_replicas"])
			if q.quiescent[i] < want {
				q.done = false
			}
		}
		q.waited = time.Since(start)
		if q.done || q.waited > timeout {
			fmt.Fprintf(progress, "  quiescent after %.1fs: %s\n", q.waited.Seconds(), q)
			return q, nil
		}
		if time.Since(lastPrint) >= 2*time.Second {
			fmt.Fprintf(progress, "  waiting for quiescence (%.0fs): %s\n", q.waited.Seconds(), q)
			lastPrint = time.Now()
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return q, err
		}
	}
}

// replicaCount is one store's replicas as ListRanges reports them.
type replicaCount struct {
	listed, initialized, quiescent, leaders int
	gauge                                   int // rangekv_store_replicas at the same time
}

// listReplicas counts each running store's replicas from ListRanges.
func listReplicas(ctx context.Context, c *cluster) ([]replicaCount, error) {
	out := make([]replicaCount, len(c.stores))
	for i, p := range c.stores {
		if !p.running() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := listAll(rctx, p.admin)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListRanges on store %d: %w", p.id, err)
		}
		rc := &out[i]
		for _, r := range resp.Replicas {
			rc.listed++
			if r.Initialized {
				rc.initialized++
			}
			if r.Quiescent {
				rc.quiescent++
			}
			if r.RaftState == "StateLeader" {
				rc.leaders++
			}
		}
		m, err := scrape(ctx, p)
		if err != nil {
			return nil, err
		}
		rc.gauge = int(m.byName["rangekv_store_replicas"])
	}
	return out, nil
}

// nonQuiescentDetail lists, per store, a few replicas that are not
// quiescent with their Raft state, for the report.
func nonQuiescentDetail(ctx context.Context, c *cluster, max int) string {
	var out []string
	for _, p := range c.stores {
		if !p.running() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := listAll(rctx, p.admin)
		cancel()
		if err != nil {
			out = append(out, fmt.Sprintf("store %d: ListRanges: %v", p.id, err))
			continue
		}
		states := map[string]int{}
		var ex []string
		for _, r := range resp.Replicas {
			if r.Quiescent {
				continue
			}
			states[r.RaftState]++
			if len(ex) < max {
				ex = append(ex, fmt.Sprintf("r%d(%s term=%d commit=%d applied=%d last=%d)", r.GetDescriptor_().GetRangeId(),
					r.RaftState, r.Term, r.CommitIndex, r.AppliedIndex, r.LastIndex))
			}
		}
		if len(ex) > 0 {
			out = append(out, fmt.Sprintf("store %d: not quiescent by state %v; e.g. %s", p.id, states, strings.Join(ex, " ")))
		}
	}
	return strings.Join(out, "\n")
}

type idleResult struct {
	ranges        int
	split         splitStats
	quiesce       quiesceState
	counts        []replicaCount // from ListRanges, before the window
	foreignBefore float64        // other work on the machine just before, % of all cores
	window        time.Duration
	cpuPct        []float64 // per store, % of one core
	batchesPS     []float64 // per store, batches sent per second (to 2 peers)
	msgsPS        []float64 // per store, Raft messages sent per second
	msgTypes      map[string]float64
	machineBusy   float64 // % of all cores busy, whole machine
	ownPct        float64 // the stores' share of that, % of all cores
	quiescedEnd   []int
	leaders       []int
	profiles      []string       // text profiles taken after the window, when asked
	mem           []memInfo      // per store, after the window
	listing       []listCost     // per store, after the window
	restart       *restartResult // when -restart
	detail        string
}

// measureIdle reads the stores' CPU and counters before and after window.
func measureIdle(ctx context.Context, c *cluster, window time.Duration) (idleResult, error) {
	res := idleResult{window: window, msgTypes: map[string]float64{}}
	if err := c.checkAlive(); err != nil {
		return res, err
	}
	n := len(c.stores)
	t0 := make([]uint64, n)
	for i, p := range c.stores {
		v, err := procTicks(p.pid())
		if err != nil {
			return res, err
		}
		t0[i] = v
	}
	b0, tot0, err := machineTicks()
	if err != nil {
		return res, err
	}
	m0, err := c.scrapeAll(ctx)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return res, err
	}
	if err := c.checkAlive(); err != nil {
		return res, err
	}
	m1, err := c.scrapeAll(ctx)
	if err != nil {
		return res, err
	}
	elapsed := time.Since(start).Seconds()
	b1, tot1, err := machineTicks()
	if err != nil {
		return res, err
	}
	var own uint64
	for i, p := range c.stores {
		v, err := procTicks(p.pid())
		if err != nil {
			return res, err
		}
		own += v - t0[i]
		res.cpuPct = append(res.cpuPct, 100*float64(v-t0[i])/clockTicks/elapsed)
		res.batchesPS = append(res.batchesPS, (m1[i].byName["rangekv_transport_batches_sent_total"]-m0[i].byName["rangekv_transport_batches_sent_total"])/elapsed)
		res.msgsPS = append(res.msgsPS, (m1[i].byName["rangekv_raft_messages_sent_total"]-m0[i].byName["rangekv_raft_messages_sent_total"])/elapsed)
		for k, v := range m1[i].series {
			if strings.HasPrefix(k, "rangekv_raft_messages_sent_total{") {
				if d := v - m0[i].series[k]; d > 0 {
					typ := strings.TrimSuffix(strings.TrimPrefix(k, `rangekv_raft_messages_sent_total{type="`), `"}`)
					res.msgTypes[typ] += d / elapsed
				}
			}
		}
		res.quiescedEnd = append(res.quiescedEnd, int(m1[i].byName["rangekv_store_quiescent_replicas"]))
		res.leaders = append(res.leaders, int(m1[i].byName["rangekv_store_leaders"]))
	}
	if tot1 > tot0 {
		res.machineBusy = 100 * float64(b1-b0) / float64(tot1-tot0)
		res.ownPct = 100 * float64(own) / float64(tot1-tot0)
	}
	return res, nil
}

func (r idleResult) maxCPU() float64 {
	m := 0.0
	for _, v := range r.cpuPct {
		m = max(m, v)
	}
	return m
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func fmtTypes(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s %.2f/s", k, m[k]))
	}
	return strings.Join(out, ", ")
}
