// Package logadapt adapts the printf-style loggers of etcd raft and Pebble
// to log/slog, in one place for every binary.
//
// Records carry component=raft (through NewRaft) or component=pebble. etcd
// raft's Info is logged at Debug. A Fatal or Panic from either library
// panics (after logging, for raft) and never exits the process, so that
// deferred cleanup and test harnesses still see it.
package logadapt
