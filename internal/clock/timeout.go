// Deadlines on a Clock: WithTimeout is context.WithTimeout whose timer
// runs on the Clock, so a Manual clock (tests, the simulation) decides when
// a bounded wait gives up instead of package time.

package clock

import (
	"context"
	"time"
)

// WithTimeout returns a copy of ctx that ends when c's time has moved d
// past now (its Err is then context.DeadlineExceeded), when ctx ends, or
// when cancel is called. On Real it is context.WithTimeout. On other
// clocks the returned context reports no Deadline: its deadline is on c,
// not on package time, and code that turns deadlines into durations (gRPC)
// must not mix the two.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := c.(Real); ok || c == nil {
		return context.WithTimeout(ctx, d)
	}
	inner, cancelCause := context.WithCancelCause(ctx)
	tc := &timeoutCtx{Context: inner}
	if d <= 0 {
		cancelCause(context.DeadlineExceeded)
		return tc, func() { cancelCause(context.Canceled) }
	}
	var t Timer
	if af, ok := c.(interface {
		AfterFunc(time.Duration, func()) Timer
	}); ok {
		t = af.AfterFunc(d, func() { cancelCause(context.DeadlineExceeded) })
	} else {
		t = c.NewTimer(d)
		go func() {
			select {
			case <-t.C():
				cancelCause(context.DeadlineExceeded)
			case <-inner.Done():
			}
		}()
	}
	return tc, func() {
		t.Stop()
		cancelCause(context.Canceled)
	}
}

// timeoutCtx is a cancellable context whose Err says DeadlineExceeded when
// its Clock's timer ended it.
type timeoutCtx struct {
	context.Context
}

// Err implements context.Context.
func (c *timeoutCtx) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}
