// Command multiraftbench measures what the Multi-Raft store promises (idle
// cost, write throughput, failover and split latency) on three real
// rangekv-store processes bootstrapped statically on 127.0.0.1. It measures:
//
//  1. idle cost: range 1 split into N ranges (1,000 and 10,000, each in a
//     fresh cluster), every replica quiescent, then each store's CPU (from
//     /proc/PID/stat) and the batches and Raft messages it sends per second;
//  2. write throughput over N ranges against one range: the same number of
//     puts from concurrent writers, latency percentiles, log fsyncs per
//     write and entries per fsync (from the stores' /metrics);
//  3. failover: every range led by one store, that store killed with
//     SIGKILL, the time until every range has a leader on the others;
//  4. split latency: N splits one after the other through placement
//     (three rangekv-placement members, three stores that join them), in
//     ascending and in descending key order, each in a fresh cluster.
//
// It prints a markdown summary on stdout (and to -out). Progress goes to
// stderr. Every store is stopped by its PID (SIGTERM, then SIGKILL after a
// deadline); every wait and loop is bounded. When an idle-CPU goal is
// missed it takes CPU profiles of the stores (/debug/pprof/profile) and
// adds `go tool pprof -top` of them to the summary.
//
// Run it from the module root (it builds ./cmd/store and, for the split
// latency, ./cmd/placement unless -store-bin and -placement-bin are
// given); scripts/bench_multiraft.sh does so with defaults.
package main
