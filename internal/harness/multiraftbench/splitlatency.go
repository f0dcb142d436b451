package main

// Split latency through placement: three rangekv-placement members and
// three stores that join them (placement replicates range 1 onto all
// three), then N splits one after the other through router.Admin.Split,
// the path of `rangekv range split` and of the SDK. Ascending keys split,
// each time, the right half the previous split created (its leader is
// new); descending keys split the left half the previous split kept (its
// leader is old). Each order runs in a fresh cluster.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

type splitLatencyResult struct {
	order            string // "ascending" or "descending"
	splits           int
	elapsed          time.Duration
	p50, p99, maxLat time.Duration
	mean             time.Duration
	foreignBefore    float64
}

// pdCluster is a cluster whose stores joined placement members.
type pdCluster struct {
	*cluster
	members []*storeProc
}

func (c *pdCluster) stop() []uint64 {
	killed := c.cluster.stop() // the stores first: they report to placement until the end
	(&cluster{stores: c.members}).stop()
	return killed
}

func (c *pdCluster) pdAddrs() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.addr)
	}
	return out
}

// checkAlive also covers the placement members.
func (c *pdCluster) checkAlive() error {
	if err := c.cluster.checkAlive(); err != nil {
		return err
	}
	return (&cluster{stores: c.members}).checkAlive()
}

// startPDCluster starts three placement members and three stores that
// join them, and waits until range 1 has three voters and a leader.
func startPDCluster(ctx context.Context, name, dir, pdBin string, sa storeArgs) (*pdCluster, *router.Client, error) {
	const n = 3
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	addrs, err := procs.FreeLoopbackAddrs(4 * n)
	if err != nil {
		return nil, nil, err
	}
	var initial []procs.Peer
	for i := range n {
		initial = append(initial, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
	}
	c := &pdCluster{cluster: &cluster{name: name, dir: dir}}
	fail := func(err error) (*pdCluster, *router.Client, error) {
		c.stop()
		return nil, nil, err
	}
	for i := range n {
		m := &storeProc{
			id:       uint64(i + 1),
			addr:     addrs[2*i],
			httpAddr: addrs[2*i+1],
			dataDir:  filepath.Join(dir, fmt.Sprintf("pd%d", i+1)),
			logPath:  filepath.Join(dir, fmt.Sprintf("pd%d.log", i+1)),
		}
		c.members = append(c.members, m)
		args := procs.PlacementArgs{
			ID:             m.id,
			Addr:           m.addr,
			HTTPAddr:       m.httpAddr,
			DataDir:        m.dataDir,
			InitialCluster: initial,
			Replicas:       3,
		}
		if err := m.start(fmt.Sprintf("placement %d", m.id), pdBin, args.Args()); err != nil {
			return fail(fmt.Errorf("placement member: %w", err))
		}
	}
	for i := range n {
		p := &storeProc{
			id:       uint64(i + 1), // the store's number here (placement assigns its ID)
			addr:     addrs[2*(n+i)],
			httpAddr: addrs[2*(n+i)+1],
			dataDir:  filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			logPath:  filepath.Join(dir, fmt.Sprintf("s%d.log", i+1)),
		}
		c.stores = append(c.stores, p)
		args := procs.StoreArgs{
			Addr:      p.addr,
			HTTPAddr:  p.httpAddr,
			DataDir:   p.dataDir,
			Placement: c.pdAddrs(),
			Extra:     sa.flags(),
		}
		if err := p.start(fmt.Sprintf("store %d", p.id), sa.bin, args.Args()); err != nil {
			return fail(err)
		}
	}
	cl, err := router.New(c.pdAddrs(), router.Options{Seed: 1})
	if err != nil {
		return fail(err)
	}
	adm, err := cl.Admin()
	if err != nil {
		cl.Close()
		return fail(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	why := "no answer from placement"
	for {
		if err := c.checkAlive(); err != nil {
			cl.Close()
			return fail(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := adm.ClusterStatus(sctx)
		cancel()
		if err == nil {
			var ok bool
			if ok, why = replicated(st, n); ok {
				return c, cl, nil
			}
		}
		if time.Now().After(deadline) {
			cl.Close()
			return fail(fmt.Errorf("%s: range 1 not replicated after 90s: %s (logs in %s)", name, why, dir))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			cl.Close()
			return fail(err)
		}
	}
}

// replicated: every store up, one range, fully replicated, led, no
// operator running.
func replicated(s *rangekvpb.ClusterStatusResponse, stores int) (bool, string) {
	up := 0
	for _, si := range s.Stores {
		if si.State == rangekvpb.StoreState_STORE_UP {
			up++
		}
	}
	switch {
	case !s.Bootstrapped || up < stores:
		return false, fmt.Sprintf("%d of %d stores joined and up", up, stores)
	case s.RangeCount != 1 || len(s.UnderReplicated) > 0 || len(s.Leaderless) > 0 || len(s.Operators) > 0:
		return false, fmt.Sprintf("%d ranges, under-replicated %v, leaderless %v, %d operators", s.RangeCount, s.UnderReplicated, s.Leaderless, len(s.Operators))
	}
	return true, ""
}

// measureSplitLatency runs n splits in the given order, one after the
// other, in a fresh cluster, and times each.
func measureSplitLatency(ctx context.Context, o *options, sa storeArgs, order string, n int, progress io.Writer) (res splitLatencyResult, err error) {
	res.order, res.splits = order, n
	name := "splits_" + order
	dir := filepath.Join(o.dir, name)
	fmt.Fprintf(progress, "== cluster %s: 3 placement members, 3 stores (data in %s)\n", name, dir)
	c, cl, err := startPDCluster(ctx, name, dir, o.placementBin, sa)
	if err != nil {
		return res, err
	}
	defer func() {
		cl.Close()
		if cerr := c.checkAlive(); cerr != nil {
			err = cerr
		}
		c.stop()
		if !o.keep {
			for _, p := range append(slices.Clone(c.stores), c.members...) {
				os.RemoveAll(p.dataDir)
			}
		}
	}()
	adm, err := cl.Admin()
	if err != nil {
		return res, err
	}
	all := &cluster{name: name, dir: dir, stores: append(slices.Clone(c.stores), c.members...)}
	res.foreignBefore, _ = waitQuiet(ctx, all, o.quietWait, o.quietBelow, progress)
	fmt.Fprintf(progress, "  %d splits, %s keys, one at a time\n", n, order)
	lats := make([]time.Duration, 0, n)
	start := time.Now()
	for i := 1; i <= n; i++ {
		k := i
		if order == "descending" {
			k = n + 1 - i
		}
		key := splitKey(k)
		sctx, cancel := context.WithTimeout(ctx, maxSplitTime)
		t0 := time.Now()
		_, _, err := adm.Split(sctx, key)
		d := time.Since(t0)
		cancel()
		if err != nil {
			if cerr := c.checkAlive(); cerr != nil {
				return res, cerr
			}
			return res, fmt.Errorf("split %d of %d at %q: %w", i, n, key, err)
		}
		lats = append(lats, d)
		if i%200 == 0 {
			fmt.Fprintf(progress, "  %d/%d splits, last %s ms\n", i, n, ms(d))
		}
	}
	res.elapsed = time.Since(start)
	var total time.Duration
	for _, l := range lats {
		total += l
	}
	slices.Sort(lats)
	q := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
	res.p50, res.p99, res.maxLat = q(0.50), q(0.99), lats[len(lats)-1]
	res.mean = total / time.Duration(len(lats))
	fmt.Fprintf(progress, "  %s: p50 %s ms, p99 %s ms, max %s ms\n", order, ms(res.p50), ms(res.p99), ms(res.maxLat))
	return res, nil
}

// runSplitLatency measures both orders; a crashed process is retried in a
// fresh cluster like the other measurements.
func runSplitLatency(ctx context.Context, o *options, sa storeArgs, res *results, progress io.Writer) error {
	for _, order := range []string{"ascending", "descending"} {
		for attempt := 0; ; attempt++ {
			r, err := measureSplitLatency(ctx, o, sa, order, o.splitLatency, progress)
			if err == nil {
				res.splitLatency = append(res.splitLatency, r)
				break
			}
			res.notes = append(res.notes, fmt.Sprintf("split latency, %s (attempt %d) stopped: %v", order, attempt+1, err))
			fmt.Fprintf(progress, "  STOPPED: %v\n", err)
			var crash *storeCrashError
			if ctx.Err() != nil || !errors.As(err, &crash) || attempt >= o.retries {
				return err
			}
			res.crashes++
		}
	}
	return nil
}
