// Waiting on a Clock: sleeping until a context ends, and waiting for a
// rate limiter's tokens, both on the Clock's timers instead of package
// time's.

package clock

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Sleep waits d on c and reports true, or reports false as soon as ctx
// ends first.
func Sleep(ctx context.Context, c Clock, d time.Duration) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// WaitN is lim.WaitN(ctx, n) on c: it takes n tokens from lim at c's time
// and waits on c's timer until they are available, or returns ctx's error
// (handing the tokens back) when ctx ends first. Unlike rate.Limiter.WaitN
// it does not compare the wait with ctx's deadline beforehand: deadlines
// are on the real clock, which c need not be. n above lim's burst is an
// error, as in WaitN.
func WaitN(ctx context.Context, c Clock, lim *rate.Limiter, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := c.Now()
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return fmt.Errorf("clock: WaitN(n=%d) exceeds the limiter's burst %d", n, lim.Burst())
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if !Sleep(ctx, c, d) {
		r.CancelAt(c.Now())
		return ctx.Err()
	}
	return nil
}
