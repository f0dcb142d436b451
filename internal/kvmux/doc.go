// Package kvmux serves the KV service's mux stream (the BatchCommands RPC,
// which keeps that name on the wire for compatibility) on top of the unary
// KV handlers: many calls of one router on one stream, each served exactly
// as its unary RPC would be (same handler, same deadline, same response or
// gRPC status) and answered as soon as it is done, the answers that finish
// together in one message. What it saves is gRPC's
// per-call cost (a stream, headers, frames and a handler goroutine's
// stack per call), which at hundreds of clients is most of the CPU a
// small read costs on both sides. The client half is router/muxconn.go.
//
// Invariants: every call received is answered exactly once while the
// stream lives (a failed call by its status code and message); at most
// maxMuxInFlight calls of a stream run at once (then the stream stops
// reading and flow control holds the router); Serve returns only after
// every call it started has finished and been answered.
package kvmux
