// Package faultproxy is a TCP proxy for tests that injects network faults
// between processes: it listens on a loopback address, forwards every
// connection to one target, and on command refuses connections, stalls
// one or both directions (a partition or blackhole), or delays bytes.
//
// The faults model what a real network does to TCP: a partitioned path
// loses no bytes of a connection that survives it — they are held and
// delivered in order once the path heals (as TCP retransmits them), unless
// an endpoint gives up first (keepalives, deadlines) and closes. Refuse
// is the other kind of fault: every current connection is reset and new
// ones are closed at once, as when a host is down.
//
// Invariants:
//   - Listen and target addresses are loopback (127.0.0.0/8); New refuses
//     anything else, so no test traffic leaves the machine.
//   - Bytes of one direction of one connection are forwarded in order,
//     each no earlier than its read time plus the delay in force.
//   - Close stops the listener and every connection and returns after all
//     of the proxy's goroutines have ended.
package faultproxy
