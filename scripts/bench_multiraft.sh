#!/usr/bin/env bash
# Multi-Raft benchmarks (docs/benchmarks.md, "Multi-Raft"): three real
# rangekv-store processes on 127.0.0.1 with static bootstrap, driven by
# internal/harness/multiraftbench:
#   1. idle cost of 1,000 and 10,000 quiescent ranges (each in a fresh
#      cluster): CPU per store, batches and Raft messages per second;
#   2. writes over 1,000 and 10,000 ranges vs one range: the same number of
#      puts from 256 writers, 256-byte values, latency, fsyncs and store CPU
#      per put (the 10,000-range writes run in the 10,000-range idle
#      cluster);
#   3. failover: kill -9 of the store leading all 1,000 ranges, time until
#      every range has a leader again (3 runs);
#   4. split latency: 1,000 splits one at a time through placement (3
#      rangekv-placement members, 3 stores that join them), ascending and
#      descending keys, each order in a fresh cluster; p50/p99 per split.
# Writes a markdown summary to $OUT and stdout; progress goes to stderr.
# About 6 to 7 minutes on 2 cores (more when a store crashes and a cluster
# is redone, or when the machine is busy and the quiet waits run out).
#
# BENCH_100K=1 runs the many-ranges scale figures instead (issue 18, about
# 10 minutes): one cluster split to 100,000 ranges (the split time), every
# replica quiescent, idle CPU per store, resident memory per replica, and
# a restart of one store timed until every replica on it knows a leader.
# It needs about 3 x 2 GiB of RAM; IDLE_RANGES overrides the count.
#
# Env knobs (defaults in brackets):
#   BENCH_DIR        scratch dir on the disk under test [a new mktemp -d]
#   IDLE_RANGES      range counts of the idle runs; empty skips them [1000,10000]
#   WRITE_RANGES     range counts of the multi-range write runs; empty or 0
#                    skips writes [1000,10000]
#   FAILOVER_RANGES  ranges of the failover run; 0 skips it [1000]
#   FAILOVER_RUNS    failover runs, each extra one in a fresh cluster [3]
#   IDLE             idle window [30s]
#   WRITE_OPS        puts per write run [100000]
#   WRITE_MAX        cap on one write run [120s]
#   WRITERS          concurrent writers [256]
#   VALUE_SIZE       bytes per value [256]
#   SPLIT_LATENCY    splits per key order of the split latency; 0 skips [1000]
#   PROFILE          the stores' --raft.profile [production]
#   PPROF            always | miss | never: CPU profiles after idle windows [miss]
#   QUIET_WAIT       wait at most this for other work on the machine to calm
#                    down before each measurement; 0 disables [30s]
#   OUT              summary file [$BENCH_DIR/multiraft_<date>.md]
#   EXTRA            more multiraftbench flags, e.g. "-pprof-writes -keep"
# Every store is stopped by its PID (SIGTERM, then SIGKILL after 10 s) by
# the program, which also takes them down if it is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$BENCH_DIR/bin"
OUT=${OUT:-$BENCH_DIR/multiraft_$(date +%Y%m%d_%H%M%S).md}

if [[ ${BENCH_100K:-} == 1 ]]; then
  IDLE_RANGES=${IDLE_RANGES:-100000} WRITE_RANGES=0 FAILOVER_RANGES=0 SPLIT_LATENCY=0
  EXTRA="-restart -quiesce-timeout 600s -pprof always ${EXTRA:-}"
fi

echo "building into $BENCH_DIR/bin" >&2
go build -o "$BENCH_DIR/bin/rangekv-store" ./cmd/store
go build -o "$BENCH_DIR/bin/rangekv-placement" ./cmd/placement
go build -o "$BENCH_DIR/bin/multiraftbench" ./internal/harness/multiraftbench

echo "uptime before: $(uptime)" >&2
rc=0
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$BENCH_DIR/bin/multiraftbench" \
  -store-bin "$BENCH_DIR/bin/rangekv-store" \
  -placement-bin "$BENCH_DIR/bin/rangekv-placement" \
  -dir "$BENCH_DIR/run_$(date +%Y%m%d_%H%M%S)" \
  -out "$OUT" \
  -idle-ranges "${IDLE_RANGES-1000,10000}" \
  -write-ranges "${WRITE_RANGES-1000,10000}" \
  -failover-ranges "${FAILOVER_RANGES:-1000}" \
  -failover-runs "${FAILOVER_RUNS:-3}" \
  -idle "${IDLE:-30s}" \
  -write-ops "${WRITE_OPS:-100000}" \
  -write-max "${WRITE_MAX:-120s}" \
  -writers "${WRITERS:-256}" \
  -value-size "${VALUE_SIZE:-256}" \
  -split-latency "${SPLIT_LATENCY:-1000}" \
  -raft-profile "${PROFILE:-production}" \
  -pprof "${PPROF:-miss}" \
  -quiet-wait "${QUIET_WAIT:-30s}" \
  ${EXTRA:-} || rc=$?
echo "uptime after: $(uptime)" >&2
echo "summary: $OUT" >&2
exit $rc
