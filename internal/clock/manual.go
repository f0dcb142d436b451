// Manual: the in-memory Clock whose time moves only when told to.

package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Manual is a Clock for tests and simulation. It starts at the time given
// to NewManual and moves only by Advance. Safe for concurrent use.
type Manual struct {
	mu    sync.Mutex
	now   time.Time
	seq   uint64
	queue waiters
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now implements Clock.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d, firing every timer and ticker whose
// deadline it reaches, in deadline order (ties in creation order). A ticker
// that is due several times fires once per period crossed, but its channel
// keeps only one value, as with package time.
func (m *Manual) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Advance with a negative duration")
	}
	m.mu.Lock()
	end := m.now.Add(d)
	for len(m.queue) > 0 && !m.queue[0].at.After(end) {
		w := heap.Pop(&m.queue).(*waiter)
		m.now = w.at
		if fn := m.fire(w); fn != nil {
			m.mu.Unlock()
			fn()
			m.mu.Lock()
		}
	}
	if end.After(m.now) {
		m.now = end
	}
	m.mu.Unlock()
}

// MoveTo moves the clock to t (if later) firing nothing: deadlines at t
// stay pending for FireNext. It panics if a pending deadline is before t;
// the simulation moves time only up to the next event.
func (m *Manual) MoveTo(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) > 0 && m.queue[0].at.Before(t) {
		panic("clock: MoveTo past a pending deadline")
	}
	if t.After(m.now) {
		m.now = t
	}
}

// NextDeadline returns the earliest pending fire and whether there is one
// (the simulation advances straight to it).
func (m *Manual) NextDeadline() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return time.Time{}, false
	}
	return m.queue[0].at, true
}

// Waiters returns how many timers and tickers are pending.
func (m *Manual) Waiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// NewTicker implements Clock.
func (m *Manual) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &waiter{m: m, c: make(chan time.Time, 1), period: d, index: -1}
	m.mu.Lock()
	w.at = m.now.Add(d)
	m.push(w)
	m.mu.Unlock()
	return (*manualTicker)(w)
}

// NewTimer implements Clock.
func (m *Manual) NewTimer(d time.Duration) Timer {
	w := &waiter{m: m, c: make(chan time.Time, 1), index: -1}
	m.mu.Lock()
	w.at = m.now.Add(d)
	m.push(w)
	m.mu.Unlock()
	return (*manualTimer)(w)
}

// After implements Clock.
func (m *Manual) After(d time.Duration) <-chan time.Time { return m.NewTimer(d).C() }

// AfterFunc calls f, once, on the goroutine that moves the clock past d
// from now (Advance or FireNext), unless the returned Timer is stopped
// first. Its C is nil. WithTimeout uses it so a deadline needs no
// goroutine.
func (m *Manual) AfterFunc(d time.Duration, f func()) Timer {
	w := &waiter{m: m, fn: f, index: -1}
	m.mu.Lock()
	w.at = m.now.Add(d)
	m.push(w)
	m.mu.Unlock()
	return (*manualTimer)(w)
}

// FireNext moves the clock to the earliest pending deadline, if it is not
// after limit, and fires that one timer or ticker alone (ties in creation
// order); it reports whether it fired one. The simulation fires timers one
// at a time so that each wakes one goroutine.
func (m *Manual) FireNext(limit time.Time) bool {
	m.mu.Lock()
	if len(m.queue) == 0 || m.queue[0].at.After(limit) {
		m.mu.Unlock()
		return false
	}
	w := heap.Pop(&m.queue).(*waiter)
	if w.at.After(m.now) {
		m.now = w.at
	}
	fn := m.fire(w)
	m.mu.Unlock()
	if fn != nil {
		fn()
	}
	return true
}

// fire delivers w's tick (re-arming a ticker) and returns its callback,
// which the caller runs without m.mu held.
func (m *Manual) fire(w *waiter) func() {
	w.index = -1
	if w.fn != nil {
		return w.fn
	}
	select {
	case w.c <- w.at:
	default:
	}
	if w.period > 0 {
		w.at = w.at.Add(w.period)
		m.push(w)
	}
	return nil
}

func (m *Manual) push(w *waiter) {
	m.seq++
	w.seq = m.seq
	heap.Push(&m.queue, w)
}

// remove takes w off the queue and reports whether it was pending.
func (m *Manual) remove(w *waiter) bool {
	if w.index < 0 {
		return false
	}
	heap.Remove(&m.queue, w.index)
	w.index = -1
	return true
}

type waiter struct {
	m      *Manual
	at     time.Time
	period time.Duration // 0 for a timer
	seq    uint64
	index  int // in the heap; -1 when not pending
	c      chan time.Time
	fn     func() // AfterFunc's callback; c is nil then
}

type manualTicker waiter

func (t *manualTicker) C() <-chan time.Time { return t.c }

func (t *manualTicker) Stop() {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.m.remove((*waiter)(t))
}

func (t *manualTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	w := (*waiter)(t)
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.remove(w)
	w.period = d
	w.at = w.m.now.Add(d)
	w.m.push(w)
}

type manualTimer waiter

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Stop() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.m.remove((*waiter)(t))
}

func (t *manualTimer) Reset(d time.Duration) bool {
	w := (*waiter)(t)
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	was := w.m.remove(w)
	w.at = w.m.now.Add(d)
	w.m.push(w)
	return was
}

// waiters is a min-heap by (at, seq).
type waiters []*waiter

func (q waiters) Len() int { return len(q) }
func (q waiters) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q waiters) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waiters) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}
