package main

// Failover: with every range led by one store, kill -9 that store and time
// until every range has a leader on the other stores, polling ListRanges.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

type failoverResult struct {
	ranges          int
	killedStore     uint64
	transferred     int // leaders moved onto the killed store beforehand
	quiescentAtKill int // replicas of the killed store that were quiescent
	allLed          bool
	led             int
	first, p50, p99 time.Duration
	all             time.Duration // until every range has a leader
	polls           int
	pollMax         time.Duration
	pollMean        time.Duration
	postPutsOK      int
	postPuts        int
	postPutErr      string
	foreignBefore   float64       // other work on the machine just before the kill, % of all cores
	gaugeAll        time.Duration // until the survivors' rangekv_store_leaders add up to ranges (0: never seen)
}

// leaderMap returns, for every range some running store knows, the index
// of the store whose replica is leader (-1 if none reports one).
func leaderMap(ctx context.Context, c *cluster) (map[uint64]int, error) {
	out := map[uint64]int{}
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
		for _, r := range resp.Replicas {
			if !r.Initialized {
				continue
			}
			id := r.GetDescriptor_().GetRangeId()
			if _, ok := out[id]; !ok {
				out[id] = -1
			}
			if r.RaftState == "StateLeader" {
				out[id] = i
			}
		}
	}
	return out, nil
}

// concentrateLeaders moves every range's leadership to one store (the one
// leading most ranges) and returns its index and how many moved.
func concentrateLeaders(ctx context.Context, c *cluster, progress io.Writer) (int, int, error) {
	lm, err := leaderMap(ctx, c)
	if err != nil {
		return -1, 0, err
	}
	counts := make([]int, len(c.stores))
	for _, s := range lm {
		if s >= 0 {
			counts[s]++
		}
	}
	target := 0
	for i, n := range counts {
		if n > counts[target] {
			target = i
		}
	}
	fmt.Fprintf(progress, "  leaders per store before failover: %v (%d ranges)\n", counts, len(lm))
	moved := 0
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; ; round++ {
		var todo []uint64
		for id, s := range lm {
			if s != target {
				todo = append(todo, id)
			}
		}
		if len(todo) == 0 {
			return target, moved, nil
		}
		if time.Now().After(deadline) {
			return target, moved, fmt.Errorf("%d ranges still not led by store %d after 60s", len(todo), c.stores[target].id)
		}
		if round == 0 {
			moved = len(todo)
		}
		fmt.Fprintf(progress, "  transferring %d leaders to store %d\n", len(todo), c.stores[target].id)
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for _, id := range todo {
			from := lm[id]
			if from < 0 {
				continue // leaderless for now; next round
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, _ = c.stores[from].admin.TransferLeader(rctx, &rangekvpb.TransferLeaderRequest{RangeId: id, ToStoreId: c.stores[target].id})
			}()
		}
		wg.Wait()
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return target, moved, err
		}
		if lm, err = leaderMap(ctx, c); err != nil {
			return target, moved, err
		}
	}
}

// failover kills store target and times the new leaders of ranges.
func failover(ctx context.Context, c *cluster, target int, ranges []uint64, quiescent int, progress io.Writer) (failoverResult, error) {
	res := failoverResult{ranges: len(ranges), killedStore: c.stores[target].id, quiescentAtKill: quiescent}
	want := map[uint64]bool{}
	for _, id := range ranges {
		want[id] = true
	}
	ledAt := map[uint64]time.Duration{}
	var live []int
	for i, p := range c.stores {
		if i != target && p.running() {
			live = append(live, i)
		}
	}
	fmt.Fprintf(progress, "  kill -9 store %d (pid %d)\n", c.stores[target].id, c.stores[target].pid())
	t0 := time.Now()
	if err := c.kill9(target); err != nil {
		return res, err
	}
	const limit = 60 * time.Second
	// Cross-check at a finer grain: the survivors' leader gauges, scraped
	// every 20 ms (a scrape costs far less than a ListRanges of every
	// replica, whose latency bounds the resolution of the main loop).
	gaugeCtx, stopGauge := context.WithCancel(ctx)
	gaugeDone := make(chan struct{})
	defer func() { stopGauge(); <-gaugeDone }()
	go func() {
		defer close(gaugeDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for time.Since(t0) < limit {
			n := 0
			for _, i := range live {
				sctx, cancel := context.WithTimeout(gaugeCtx, 2*time.Second)
				m, err := scrape(sctx, c.stores[i])
				cancel()
				if err == nil {
					n += int(m.byName["rangekv_store_leaders"])
				}
			}
			if n >= len(want) {
				res.gaugeAll = time.Since(t0)
				return
			}
			select {
			case <-gaugeCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var pollTotal time.Duration
	for len(ledAt) < len(want) && time.Since(t0) < limit {
		ps := time.Now()
		resps := make([]*rangekvpb.ListRangesResponse, len(live))
		var wg sync.WaitGroup
		for j, i := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				resps[j], _ = listAll(rctx, c.stores[i].admin)
			}()
		}
		wg.Wait()
		now := time.Since(t0)
		pd := time.Since(ps)
		res.polls++
		pollTotal += pd
		res.pollMax = max(res.pollMax, pd)
		for _, resp := range resps {
			for _, r := range resp.GetReplicas() {
				id := r.GetDescriptor_().GetRangeId()
				if r.RaftState == "StateLeader" && want[id] {
					if _, ok := ledAt[id]; !ok {
						ledAt[id] = now
					}
				}
			}
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	if res.polls > 0 {
		res.pollMean = pollTotal / time.Duration(res.polls)
	}
	// Give the gauge loop one more second to catch up, then stop it.
	select {
	case <-gaugeDone:
	case <-time.After(time.Second):
	}
	stopGauge()
	<-gaugeDone
	res.led = len(ledAt)
	res.allLed = len(ledAt) == len(want)
	var ts []time.Duration
	for _, d := range ledAt {
		ts = append(ts, d)
	}
	slices.Sort(ts)
	if len(ts) > 0 {
		res.first = ts[0]
		res.p50 = ts[len(ts)/2]
		res.p99 = ts[min(len(ts)-1, len(ts)*99/100)]
		res.all = ts[len(ts)-1]
	}
	fmt.Fprintf(progress, "  %d/%d ranges have a leader; last after %s\n", res.led, len(want), res.all.Round(time.Millisecond))

	// Writes still work (through the surviving stores).
	var addrs []string
	for _, i := range live {
		addrs = append(addrs, c.stores[i].addr)
	}
	cl, err := router.NewStatic(addrs, router.Options{Seed: 7})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	res.postPuts = 20
	for range res.postPuts {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cl.Put(pctx, benchKey(rng, len(ranges)), []byte("after-failover"))
		cancel()
		if err == nil {
			res.postPutsOK++
		} else if res.postPutErr == "" {
			res.postPutErr = err.Error()
		}
	}
	return res, nil
}
