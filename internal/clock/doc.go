// Package clock is the seam between rangekv's store and placement and the
// passage of time: reading the time, tickers, timers. Production code takes
// a Clock and never calls time.Now, time.NewTicker, time.NewTimer or
// time.After itself, so that the deterministic simulation can run the real
// code on simulated time.
//
// Real is the production implementation over package time. Manual is the
// in-memory twin for tests and the simulation: time moves only when Advance
// is called, and every timer and ticker whose deadline Advance crosses
// fires, in deadline order, before Advance returns.
//
// Invariants: a Ticker's or Timer's channel has room for one value (like
// package time's), so a slow reader misses ticks instead of blocking the
// clock; Stop returns whether it stopped a pending fire.
package clock
