#!/usr/bin/env bash
# pprof_shares.sh PROFILE...: the share of each per-range item of the write
# path in Go CPU profiles of a store (docs/benchmarks.md, "Many ranges
# (issue 18): write path"): the samples whose stack holds a frame matching
# the item's pattern, as a % of all samples (items overlap; GC and
# allocation count wherever they happen). Profiles: multiraftbench
# -pprof-writes, or a store's /debug/pprof/profile.
set -euo pipefail
names=(stepping tick heartbeats pebble_commit pebble_all grpc_all transport_send deliver after_advance raft_status gc_alloc syscalls)
declare -A re=(
  [stepping]='store.\(\*Replica\).drainInbox'
  [tick]='rangeraft.\(\*Replica\).Tick$'
  [heartbeats]='deliverHeartbeat|addHeartbeat|bcastHeartbeat|takeHeartbeats|handleHeartbeat'
  [pebble_commit]='pebble/v2.\(\*Batch\).Commit'
  [pebble_all]='cockroachdb/pebble'
  [grpc_all]='google.golang.org/grpc'
  [transport_send]='store.\(\*Replica\).send$|store.\(\*transport\).send(Batch)?$'
  [deliver]='store.\(\*Store\).deliver(To|Batch)?$'
  [after_advance]='store.\(\*pass\).AfterAdvance'
  [raft_status]='RawNode\).Status$'
  [gc_alloc]='runtime.mallocgc$|runtime.gcBgMarkWorker$'
  [syscalls]='syscall.Syscall|syscall.RawSyscall'
)
for p in "$@"; do
  tot=$(go tool pprof -top -nodecount=1 "$p" 2>/dev/null | sed -n 's/.*Total samples = \([0-9.]*m\?s\).*/\1/p')
  printf '%s (%s of samples):' "$(basename "$p")" "$tot"
  for n in "${names[@]}"; do
    pct=$(go tool pprof -top -nodecount=100000 -nodefraction=0 -edgefraction=0 -focus="${re[$n]}" "$p" 2>/dev/null |
      sed -n 's/.*accounting for [0-9.]*m\?s, \([0-9.]*%\) of.*/\1/p')
    printf ' %s=%s' "$n" "${pct:-0%}"
  done
  echo
done
