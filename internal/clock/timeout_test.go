// Tests of WithTimeout, AfterFunc and FireNext on the Manual clock.

package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestWithTimeoutEndsWhenTheManualClockPassesIt(t *testing.T) {
	m := NewManual(t0)
	ctx, cancel := WithTimeout(context.Background(), m, time.Second)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a deadline on the manual clock was reported as a real-time deadline")
	}
	m.Advance(999 * time.Millisecond)
	if err := ctx.Err(); err != nil {
		t.Fatalf("ended before its deadline: %v", err)
	}
	m.Advance(time.Millisecond)
	select {
	case <-ctx.Done():
	default:
		t.Fatal("not done once the clock reached the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
}

func TestWithTimeoutCancelAndParent(t *testing.T) {
	m := NewManual(t0)
	ctx, cancel := WithTimeout(context.Background(), m, time.Second)
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("after cancel Err = %v, want Canceled", ctx.Err())
	}
	if m.Waiters() != 0 {
		t.Fatalf("cancel left %d timers pending", m.Waiters())
	}
	parent, pcancel := context.WithCancel(context.Background())
	child, ccancel := WithTimeout(parent, m, time.Hour)
	defer ccancel()
	pcancel()
	<-child.Done()
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("child of a cancelled parent: Err = %v, want Canceled", child.Err())
	}
	zero, zcancel := WithTimeout(context.Background(), m, 0)
	defer zcancel()
	if !errors.Is(zero.Err(), context.DeadlineExceeded) {
		t.Fatalf("zero timeout: Err = %v, want DeadlineExceeded", zero.Err())
	}
}

func TestWithTimeoutOnRealIsContextWithTimeout(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), Real{}, time.Hour)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("Real clock timeout has no deadline")
	}
}

func TestFireNextFiresOneAtATime(t *testing.T) {
	m := NewManual(t0)
	a := m.NewTimer(time.Second)
	b := m.NewTimer(time.Second)
	var called []string
	m.AfterFunc(500*time.Millisecond, func() { called = append(called, "f") })
	stopped := m.AfterFunc(time.Millisecond, func() { called = append(called, "stopped") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending AfterFunc reported not pending")
	}
	if m.FireNext(t0.Add(100 * time.Millisecond)) {
		t.Fatal("fired a timer beyond the limit")
	}
	if !m.FireNext(t0.Add(time.Hour)) || len(called) != 1 || !m.Now().Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("first FireNext: called %v, now %v", called, m.Now())
	}
	if !m.FireNext(t0.Add(time.Hour)) {
		t.Fatal("second FireNext fired nothing")
	}
	select {
	case <-a.C():
	default:
		t.Fatal("the earlier-created of two equal timers did not fire first")
	}
	select {
	case <-b.C():
		t.Fatal("FireNext fired two timers")
	default:
	}
	if !m.FireNext(t0.Add(time.Hour)) {
		t.Fatal("third FireNext fired nothing")
	}
	<-b.C()
	if m.FireNext(t0.Add(time.Hour)) {
		t.Fatal("fired with nothing pending")
	}
}

func TestMoveToFiresNothing(t *testing.T) {
	m := NewManual(t0)
	tm := m.NewTimer(time.Second)
	m.MoveTo(t0.Add(time.Second))
	select {
	case <-tm.C():
		t.Fatal("MoveTo fired a timer")
	default:
	}
	if !m.FireNext(m.Now()) {
		t.Fatal("the timer at the new time was not pending")
	}
	m.NewTimer(time.Second)
	defer func() {
		if recover() == nil {
			t.Fatal("MoveTo past a pending deadline did not panic")
		}
	}()
	m.MoveTo(t0.Add(time.Hour))
}
