// Tests of Sleep and WaitN on the Manual clock.

package clock

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestSleepEndsWithTheTimerOrTheContext(t *testing.T) {
	m := NewManual(epoch)
	done := make(chan bool)
	go func() { done <- Sleep(context.Background(), m, time.Second) }()
	waitForWaiters(t, m, 1)
	m.Advance(time.Second)
	if !<-done {
		t.Fatal("Sleep reported a cancelled context after its timer fired")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, m, time.Second) }()
	waitForWaiters(t, m, 1)
	cancel()
	if <-done {
		t.Fatal("Sleep reported its timer after the context ended")
	}
	if n := m.Waiters(); n != 0 {
		t.Fatalf("Sleep left %d timers pending", n)
	}
}

func TestWaitNWaitsOnTheClock(t *testing.T) {
	m := NewManual(epoch)
	lim := rate.NewLimiter(10, 10) // 10 tokens a second, 10 at once
	if err := WaitN(context.Background(), m, lim, 10); err != nil {
		t.Fatalf("the first burst waited: %v", err)
	}
	done := make(chan error)
	go func() { done <- WaitN(context.Background(), m, lim, 5) }()
	waitForWaiters(t, m, 1)
	if deadline, _ := m.NextDeadline(); !deadline.Equal(epoch.Add(500 * time.Millisecond)) {
		t.Fatalf("5 tokens at 10/s are due at %v, want %v", deadline, epoch.Add(500*time.Millisecond))
	}
	m.Advance(500 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("WaitN after its tokens came: %v", err)
	}
	if err := WaitN(context.Background(), m, lim, 11); err == nil {
		t.Fatal("WaitN above the burst succeeded")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- WaitN(ctx, m, lim, 10) }()
	waitForWaiters(t, m, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitN with its context cancelled: %v, want context.Canceled", err)
	}
	// The cancelled reservation's tokens were handed back: after one
	// second the bucket is full again.
	m.Advance(time.Second)
	if got := lim.TokensAt(m.Now()); got != 10 {
		t.Fatalf("tokens after the cancelled wait and one second: %v, want 10", got)
	}
}

// waitForWaiters waits until a goroutine has armed n timers on m.
func waitForWaiters(t *testing.T, m *Manual, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Waiters() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending after 10s, want %d", m.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
