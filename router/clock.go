// The client's time source (Options.Clock): the retry backoff and the
// client's own timeouts wait on it, so the deterministic simulation can
// drive them on its simulated clock.

package router

import (
	"context"
	"time"
)

// Clock is what a Client reads the time from and waits on. Nil means
// package time. rangekv's internal clocks (the real one and the
// simulation's manual one) satisfy it.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// sleep waits d on clk (package time when nil) and reports true, or
// reports false as soon as ctx ends.
func sleep(ctx context.Context, clk Clock, d time.Duration) bool {
	if clk == nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-clk.After(d):
		return true
	}
}

// withTimeout is context.WithTimeout on clk (package time when nil). On a
// Clock the context reports no Deadline (its deadline is not on package
// time) and ends with context.DeadlineExceeded as its cause.
func withTimeout(ctx context.Context, clk Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if clk == nil {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	fired := clk.After(d)
	go func() {
		select {
		case <-fired:
			cancel(context.DeadlineExceeded)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
