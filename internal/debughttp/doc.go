// Package debughttp serves the endpoints every rangekv process has on its
// HTTP address: /metrics, /healthz, /readyz, /debug/pprof, plus the
// process's own JSON debug pages.
//
// Start owns no goroutine the caller cannot see: the server runs in one
// goroutine counted in the caller's WaitGroup, and the caller stops it with
// Shutdown. /readyz answers from the process's own ready function and never
// decides readiness itself.
package debughttp
