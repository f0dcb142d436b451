// Tests of the client's Clock: sleeps and timeouts wait on it, not on
// package time.

package router

import (
	"context"
	"errors"
	"testing"
	"time"
)

// chanClock fires its After channels only when the test says so.
type chanClock struct{ fire chan time.Time }

func (c chanClock) Now() time.Time                       { return time.Time{} }
func (c chanClock) After(time.Duration) <-chan time.Time { return c.fire }

func TestWithTimeoutWaitsOnTheClock(t *testing.T) {
	clk := chanClock{fire: make(chan time.Time, 1)}
	ctx, cancel := withTimeout(context.Background(), clk, time.Nanosecond)
	defer cancel()
	select {
	case <-ctx.Done():
		t.Fatal("ended before its clock fired")
	default:
	}
	clk.fire <- time.Time{}
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("cause %v, want DeadlineExceeded", context.Cause(ctx))
	}
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a deadline on the client's clock was reported as a package-time deadline")
	}
}

func TestSleepOnTheClock(t *testing.T) {
	clk := chanClock{fire: make(chan time.Time, 1)}
	clk.fire <- time.Time{}
	if !sleep(context.Background(), clk, time.Hour) {
		t.Fatal("sleep did not end when its clock fired")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sleep(ctx, clk, time.Hour) {
		t.Fatal("sleep on an ended context reported a full sleep")
	}
	if sleep(ctx, nil, time.Hour) {
		t.Fatal("sleep on package time with an ended context reported a full sleep")
	}
}
