// The Clock interface and its production implementation over package time.

package clock

import "time"

// Clock tells the time and makes tickers and timers.
type Clock interface {
	// Now returns the current time (with a monotonic reading, for Real).
	Now() time.Time
	// NewTicker returns a ticker that fires every d; d must be positive.
	NewTicker(d time.Duration) Ticker
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
	// After is NewTimer(d).C() for waits that are never stopped early.
	After(d time.Duration) <-chan time.Time
}

// Ticker is the part of *time.Ticker the code uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Timer is the part of *time.Timer the code uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents a pending fire and reports whether it did.
	Stop() bool
	// Reset makes the timer fire after d (whether or not it had fired).
	Reset(d time.Duration) bool
}

// Real is the Clock of package time.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// NewTicker implements Clock.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// NewTimer implements Clock.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// After implements Clock.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// OrReal returns c, or Real when c is nil (for configs that leave it unset).
func OrReal(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
