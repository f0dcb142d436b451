package store

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manualClock is an injected clock that moves only when told to.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func describeTransitions(dead map[uint64]bool, up []uint64) string {
	var ds []uint64
	for id := range dead {
		ds = append(ds, id)
	}
	slices.Sort(ds)
	up = slices.Clone(up)
	slices.Sort(up)
	return fmt.Sprintf("dead %v up %v", ds, up)
}

// isLive with an injected clock: a store counts as live for one timeout
// after start (never heard yet) or after it was last heard, up to but not
// including the timeout; self and store 0 are always live.
func TestLivenessIsLiveWithInjectedClock(t *testing.T) {
	const timeout = time.Second
	clk := newManualClock()
	l := newLiveness(1, clk.Now, timeout)
	steps := []struct {
		advance time.Duration
		heard   []uint64
		live    map[uint64]bool
	}{
		{0, nil, map[uint64]bool{1: true, 0: true, 2: true, 3: true}},
		{timeout - time.Nanosecond, nil, map[uint64]bool{2: true, 3: true}},
		{time.Nanosecond, nil, map[uint64]bool{1: true, 2: false, 3: false}}, // exactly one timeout after start
		{0, []uint64{2}, map[uint64]bool{2: true, 3: false}},
		{timeout / 2, []uint64{3}, map[uint64]bool{2: true, 3: true}},
		{timeout / 2, nil, map[uint64]bool{2: false, 3: true}},
		{timeout/2 - time.Nanosecond, nil, map[uint64]bool{3: true}},
		{time.Nanosecond, nil, map[uint64]bool{3: false, 1: true}},
		{time.Hour, []uint64{2}, map[uint64]bool{2: true, 3: false}}, // a store comes back after a long outage
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		for _, id := range st.heard {
			l.heard(id)
		}
		for id, want := range st.live {
			if got := l.isLive(id); got != want {
				t.Fatalf("step %d (+%s, heard %v): isLive(%d) = %v, want %v", i, st.advance, st.heard, id, got, want)
			}
		}
	}
}

// transitions reports the peers that are down on every call and the ones
// that came back exactly once; it ignores self.
func TestLivenessTransitionsWithInjectedClock(t *testing.T) {
	const timeout = time.Second
	clk := newManualClock()
	l := newLiveness(1, clk.Now, timeout)
	peers := []uint64{1, 2, 3, 4}
	steps := []struct {
		name    string
		advance time.Duration
		heard   []uint64
		want    string
	}{
		{"start: nobody heard yet, all presumed live", 0, nil, "dead [] up []"},
		{"2 and 3 heard", timeout / 2, []uint64{2, 3}, "dead [] up []"},
		{"4 never heard: down after one timeout", timeout / 2, nil, "dead [4] up []"},
		{"still down: reported again", 0, nil, "dead [4] up []"},
		{"2 and 3 silent for a timeout", timeout / 2, []uint64{}, "dead [2 3 4] up []"},
		{"3 and 4 heard: both came up", 0, []uint64{3, 4}, "dead [2] up [3 4]"},
		{"coming up is reported once", 0, nil, "dead [2] up []"},
		{"2 heard again", timeout / 4, []uint64{2}, "dead [] up [2]"},
		{"all live", 0, []uint64{3, 4}, "dead [] up []"},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		for _, id := range st.heard {
			l.heard(id)
		}
		dead, _, up := l.transitions(peers)
		if got := describeTransitions(dead, up); got != st.want {
			t.Fatalf("%s: %s, want %s", st.name, got, st.want)
		}
		if dead[1] || slices.Contains(up, 1) {
			t.Fatalf("%s: self reported in transitions", st.name)
		}
	}
	// A peer never heard from and first listed more than a timeout after
	// start is down at once, and reported up once it is heard.
	dead, _, up := l.transitions([]uint64{5})
	if got := describeTransitions(dead, up); got != "dead [5] up []" {
		t.Fatalf("peer 5, never heard, first listed long after start: %s, want dead [5] up []", got)
	}
	l.heard(5)
	dead, _, up = l.transitions([]uint64{5})
	if got := describeTransitions(dead, up); got != "dead [] up [5]" {
		t.Fatalf("peer 5 heard: %s, want dead [] up [5]", got)
	}
}

// heard, isLive and transitions from many goroutines (run with -race).
func TestLivenessConcurrentUse(t *testing.T) {
	clk := newManualClock()
	l := newLiveness(1, clk.Now, time.Second)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				switch g {
				case 0:
					l.heard(uint64(i%3 + 2))
				case 1:
					l.isLive(uint64(i%3 + 2))
				case 2:
					l.transitions([]uint64{1, 2, 3, 4})
				case 3:
					clk.Advance(time.Millisecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		l.heard(2)
	}
	stop.Store(true)
	wg.Wait()
	clk.Advance(2 * time.Second)
	l.heard(3)
	dead, _, _ := l.transitions([]uint64{2, 3, 4})
	if !dead[2] || dead[3] || !dead[4] {
		t.Fatalf("after 2s of silence from 2 and 4: dead %v", dead)
	}
}
