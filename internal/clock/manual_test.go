// Tests of the Manual clock: deadlines, order, Stop and Reset.

package clock

import (
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(c <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-c:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestManualTimerFiresOnlyWhenAdvancedPastDeadline(t *testing.T) {
	m := NewManual(epoch)
	tm := m.NewTimer(10 * time.Second)
	m.Advance(9 * time.Second)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("timer fired before its deadline")
	}
	m.Advance(time.Second)
	got, ok := fired(tm.C())
	if !ok || !got.Equal(epoch.Add(10*time.Second)) {
		t.Fatalf("fired=%v at %v, want at %v", ok, got, epoch.Add(10*time.Second))
	}
	if m.Waiters() != 0 {
		t.Fatalf("a fired timer is still pending: %d waiters", m.Waiters())
	}
	if !m.Now().Equal(epoch.Add(10 * time.Second)) {
		t.Fatalf("Now = %v", m.Now())
	}
}

func TestManualTickerFiresEachPeriodAndDropsWhenFull(t *testing.T) {
	m := NewManual(epoch)
	tk := m.NewTicker(time.Second)
	m.Advance(time.Second)
	if got, ok := fired(tk.C()); !ok || !got.Equal(epoch.Add(time.Second)) {
		t.Fatalf("first tick: %v %v", got, ok)
	}
	// Three periods unread: the channel keeps the first, like package time.
	m.Advance(3 * time.Second)
	if got, ok := fired(tk.C()); !ok || !got.Equal(epoch.Add(2*time.Second)) {
		t.Fatalf("kept tick: %v %v, want the one at +2s", got, ok)
	}
	if _, ok := fired(tk.C()); ok {
		t.Fatal("the channel held more than one tick")
	}
	tk.Stop()
	m.Advance(time.Hour)
	if _, ok := fired(tk.C()); ok {
		t.Fatal("a stopped ticker fired")
	}
}

func TestManualFiresInDeadlineOrderAndSetsNowToEach(t *testing.T) {
	m := NewManual(epoch)
	late := m.NewTimer(3 * time.Second)
	early := m.NewTimer(time.Second)
	next, ok := m.NextDeadline()
	if !ok || !next.Equal(epoch.Add(time.Second)) {
		t.Fatalf("NextDeadline = %v %v", next, ok)
	}
	m.Advance(5 * time.Second)
	e, _ := fired(early.C())
	l, _ := fired(late.C())
	if !e.Equal(epoch.Add(time.Second)) || !l.Equal(epoch.Add(3*time.Second)) {
		t.Fatalf("early at %v, late at %v", e, l)
	}
}

func TestManualTimerStopAndReset(t *testing.T) {
	m := NewManual(epoch)
	tm := m.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if tm.Stop() {
		t.Fatal("second Stop reported true")
	}
	m.Advance(2 * time.Second)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("a stopped timer fired")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported it was pending")
	}
	m.Advance(time.Second)
	if got, ok := fired(tm.C()); !ok || !got.Equal(epoch.Add(3*time.Second)) {
		t.Fatalf("reset timer: %v %v", got, ok)
	}
}

func TestRealClockTimerFires(t *testing.T) {
	var c Clock = OrReal(nil)
	tm := c.NewTimer(time.Millisecond)
	defer tm.Stop()
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real timer did not fire within 10s")
	}
	if c.Now().IsZero() {
		t.Fatal("Real.Now is zero")
	}
}
