package main

// Splitting range 1 into N ranges at keys r000001 .. r(N-1) by bisection:
// each split cuts a range [key(lo), key(hi)) at key((lo+hi)/2) and queues
// both halves, so concurrent splits always target different ranges.

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// splitKey is the start key of range index i (i >= 1).
func splitKey(i int) []byte { return fmt.Appendf(nil, "r%06d", i) }

type splitTask struct {
	lo, hi int // the range spans [key(lo), key(hi)); key(0) is "" and key(n) is +inf
	store  int // index of the store believed to lead it
}

type splitStats struct {
	ranges      int
	splits      int64
	elapsed     time.Duration
	notLeader   int64 // NotLeader answers (redirects and leaderless waits)
	otherErrors int64 // retried range errors and RPC failures
}

// maxSplitTime bounds one split including its retries.
const maxSplitTime = 60 * time.Second

// splitInto splits the whole key space (range 1, led by store lead) into n
// ranges with conc splits in flight.
func splitInto(ctx context.Context, c *cluster, n, conc, lead int, progress io.Writer) (splitStats, error) {
	st := splitStats{ranges: n}
	if n < 2 {
		return st, nil
	}
	if n > 1_000_000 {
		return st, fmt.Errorf("ranges: at most 1000000 (split keys are r%%06d), got %d", n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := make(chan splitTask, n)
	var pending sync.WaitGroup
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()

	pending.Add(1)
	tasks <- splitTask{lo: 0, hi: n, store: lead}
	go func() { pending.Wait(); close(tasks) }()

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Add(1)
	go func() {
		defer progressDone.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				if err := c.checkAlive(); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				d := done.Load()
				fmt.Fprintf(progress, "  split %s: %d/%d ranges, %.0f splits/s\n", c.name, d+1, n, float64(d)/time.Since(start).Seconds())
			}
		}
	}()

	var workers sync.WaitGroup
	for range conc {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for t := range tasks {
				if ctx.Err() == nil {
					mid := (t.lo + t.hi) / 2
					s, err := splitOne(ctx, c, mid, t.store, &st)
					if err != nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					} else {
						done.Add(1)
						for _, half := range []splitTask{{t.lo, mid, s}, {mid, t.hi, s}} {
							if half.hi-half.lo >= 2 {
								pending.Add(1)
								tasks <- half
							}
						}
					}
				}
				pending.Done()
			}
		}()
	}
	workers.Wait()
	close(stopProgress)
	progressDone.Wait()
	st.splits = done.Load()
	st.elapsed = time.Since(start)
	if firstErr != nil {
		return st, firstErr
	}
	if int(st.splits) != n-1 {
		return st, fmt.Errorf("split: %d of %d splits done", st.splits, n-1)
	}
	return st, nil
}

// splitOne splits the range holding key(mid) at key(mid), starting with
// store s and following NotLeader hints; it returns the index of the store
// that did the split (which then leads both halves).
func splitOne(ctx context.Context, c *cluster, mid, s int, st *splitStats) (int, error) {
	key := splitKey(mid)
	start := time.Now()
	var lastErr string
	timedOut := false
	for attempt := 0; ; attempt++ {
		if time.Since(start) > maxSplitTime {
			return -1, fmt.Errorf("split at %q: gave up after %s and %d attempts; last error: %s", key, maxSplitTime, attempt, lastErr)
		}
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := c.stores[s].admin.SplitRange(rctx, &rangekvpb.SplitRangeRequest{SplitKey: key})
		rcancel()
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		backoff := time.Duration(min(attempt+1, 20)) * 10 * time.Millisecond
		if err != nil {
			atomic.AddInt64(&st.otherErrors, 1)
			lastErr = err.Error()
			switch status.Code(err) {
			case codes.InvalidArgument:
				// A split that timed out, or whose leader lost its
				// leadership after proposing it, may have applied: the key
				// is then the start of a range, which the store refuses to
				// split at.
				if (timedOut || attempt > 0) && rangeStartsAt(ctx, c, s, key) {
					return s, nil
				}
				return -1, fmt.Errorf("split at %q on store %d: %w", key, c.stores[s].id, err)
			case codes.DeadlineExceeded, codes.Unavailable:
				timedOut = true
				s = (s + 1) % len(c.stores)
			}
			if err := sleepCtx(ctx, backoff); err != nil {
				return -1, err
			}
			continue
		}
		re := resp.GetError()
		if re == nil {
			return s, nil
		}
		lastErr = re.GetMessage()
		switch {
		case re.NotLeader != nil:
			atomic.AddInt64(&st.notLeader, 1)
			if i := c.storeIndex(re.NotLeader.LeaderStoreId); i >= 0 && i != s {
				s = i
				continue
			}
			// No leader yet (the new right half is still campaigning).
		case re.AmbiguousResult != nil:
			atomic.AddInt64(&st.otherErrors, 1)
			timedOut = true
		case re.RangeNotFound != nil, re.KeyNotInRange != nil:
			atomic.AddInt64(&st.otherErrors, 1)
			s = (s + 1) % len(c.stores)
		default:
			atomic.AddInt64(&st.otherErrors, 1)
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return -1, err
		}
	}
}

// rangeStartsAt reports whether store s has a range starting at key. A
// store busy splitting can take seconds to list many replicas (the
// listing waits for each replica's lock, which a worker holds through its
// pass): it gets a minute, and a second try.
func rangeStartsAt(ctx context.Context, c *cluster, s int, key []byte) bool {
	var resp *rangekvpb.ListRangesResponse
	var err error
	for range 2 {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		resp, err = listAll(rctx, c.stores[s].admin)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return false
	}
	for _, r := range resp.Replicas {
		if r.Initialized && string(r.GetDescriptor_().GetStartKey()) == string(key) {
			return true
		}
	}
	return false
}
