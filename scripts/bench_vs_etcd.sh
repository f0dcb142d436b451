#!/usr/bin/env bash
# rangekv against etcd 3.7 in one run, same machine, same payload (256-byte
# values): write, linearizable read and mixed (50% reads) workloads at 1, 64
# and 256 clients. rangekv runs as 1 placement member + 3 stores with the key
# space pre-split into RANGES ranges (leaders spread over the stores) and is
# loaded by `rangekv bench`; etcd runs as 3 members loaded by its own
# `benchmark` tool (put; range --consistency=l; mixed = half the clients
# putting while the other half read, or for 1 client the harmonic mean of
# the 1-client put and read rates; etcd's mixed p50 is the larger of the two).
# ROUNDS alternating rounds; prints medians and rangekv/etcd ratios as a
# markdown table for docs/benchmarks.md, with the servers' CPU per
# operation: utime+stime of the 3 rangekv stores (placement not counted)
# or the 3 etcd members, read from /proc/<pid>/stat before and after each
# point, divided by the operations it completed.
#
# Env: BENCH_DIR (scratch on the disk under test; default a new temp dir),
# SHARED (default ../shared), ROUNDS (1), DUR (rangekv seconds per point, 10s),
# ETCD_OPS (etcd requests per multi-client point, 60000; 1 client: 8000),
# RANGES (6; 1000 works: the split and the settling take a minute or two),
# SETTLE (seconds to wait for placement to give every range 3 voters and
# spread the leaders before measuring; 120, or 900 above 100 ranges),
# ETCD_BIN (etcd, etcdctl and benchmark; default $BENCH_DIR/etcdbin, built
# when missing), ETCD (1; 0 runs rangekv alone), WORKLOADS ("write read
# mixed"), CLIENTS ("1 64 256"), CONSISTENCY (rangekv's reads:
# linearizable; lease; etcd's reads are always linearizable).
# All traffic on 127.0.0.1; every process is stopped by its PID.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
export BENCH_DIR
ROUNDS=${ROUNDS:-1}
DUR=${DUR:-10s}
ETCD_OPS=${ETCD_OPS:-60000}
RANGES=${RANGES:-6}
SETTLE=${SETTLE:-$((RANGES > 100 ? 900 : 120))}
OUT=$BENCH_DIR/vs_etcd_$(date +%Y%m%d_%H%M%S)
mkdir -p "$OUT"
PIDS=()
SERVER_PIDS=() # the processes whose CPU is counted: stores or etcd members
CLK_TCK=$(getconf CLK_TCK)
wanted() { [[ " ${WORKLOADS[*]} " == *" $1 "* ]]; } # wanted WORKLOAD
# cpu_ticks: utime+stime of SERVER_PIDS, in clock ticks.
cpu_ticks() {
  local p t=0
  for p in "${SERVER_PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# cpu_note FILE TICKS_BEFORE OPS: records the servers' CPU since TICKS_BEFORE
# and the operations it served, for the summary (CPU µs per op).
cpu_note() {
  echo "$(($(cpu_ticks) - $2)) $CLK_TCK $3" >"$1"
}
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
  SERVER_PIDS=()
}
trap stop_all EXIT

make -s build || exit 1
BIN=$ROOT/bin
ETCD_BIN=${ETCD_BIN:-$BENCH_DIR/etcdbin}
if ((ETCD)) && [[ ! -x $ETCD_BIN/benchmark ]]; then
  echo "building etcd into $ETCD_BIN (../shared/bench/install_etcd.sh)" >&2
  bash "$SHARED/bench/install_etcd.sh" >"$OUT/install_etcd.log" 2>&1 || { echo "etcd build failed: $OUT/install_etcd.log"; exit 1; }
fi

ETCD=${ETCD:-1}
CONSISTENCY=${CONSISTENCY:-linearizable}
read -r -a CLIENTS <<<"${CLIENTS:-1 64 256}"
read -r -a WORKLOADS <<<"${WORKLOADS:-write read mixed}"

run_rangekv() { # $1 round
  local dir=$OUT/rangekv_r$1 base=$((43000 + $1 * 50)) pd
  mkdir -p "$dir"
  pd=127.0.0.1:$((base + 1))
  "$BIN/rangekv-placement" --id 1 --addr "$pd" --http-addr 127.0.0.1:$((base + 2)) \
    --data-dir "$dir/pd1" --initial-cluster "1=$pd" >"$dir/pd1.log" 2>&1 &
  PIDS+=($!)
  for i in 1 2 3; do
    "$BIN/rangekv-store" --addr 127.0.0.1:$((base + 10 + i)) --http-addr 127.0.0.1:$((base + 20 + i)) \
      --data-dir "$dir/s$i" --placement "$pd" >"$dir/s$i.log" 2>&1 &
    PIDS+=($!)
    SERVER_PIDS+=($!)
  done
  local ok=0
  for _ in $(seq 1 120); do
    timeout 10 "$BIN/rangekv" --placement "$pd" put bench-ready 1 >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.5
  done
  ((ok)) || { echo "rangekv round $1: cluster never accepted a put (logs in $dir)" >&2; stop_all; return; }
  # Split the key space up front, then measure only once placement has given
  # every range 3 voters and spread the leaders (at most one apart): a range
  # still being up-replicated writes to fewer replicas, and reads go to
  # leaders. Every workload uses the same 100,000 keys (all ranges).
  "$BIN/rangekv" --placement "$pd" bench --workload write --ops 64 --clients 1 --keys 100000 --ranges "$RANGES" >/dev/null 2>&1
  # Leaders count as spread when the stores lead within 2% of the ranges
  # (at least 1) of each other.
  settled=0
  for _ in $(seq 1 $((SETTLE * 2))); do
    if "$BIN/rangekv" --placement "$pd" -o json range list 2>/dev/null | python3 -c '
import collections, json, sys
rs = json.load(sys.stdin)["ranges"]
full = all(len(r["replicas"]) == 3 and all(x["role"] == "voter" for x in r["replicas"]) for r in rs)
lead = collections.Counter(r.get("leader_store_id") for r in rs)
sys.exit(0 if full and len(lead) == min(3, len(rs)) and max(lead.values()) - min(lead.values()) <= max(1, len(rs) // 50) else 1)'; then
      settled=1; break
    fi
    sleep 0.5
  done
  ((settled)) || echo "rangekv round $1: ranges not fully replicated with balanced leaders after ${SETTLE}s; measuring anyway" >&2
  # Write every key once (unmeasured) for the read and mixed workloads.
  "$BIN/rangekv" --placement "$pd" bench --workload read --ops 1 --clients 256 --keys 100000 --value-size 256 >"$dir/load.txt" 2>&1 \
    || echo "rangekv round $1: loading the keys failed: $(tail -1 "$dir/load.txt")" >&2
  for w in "${WORKLOADS[@]}"; do
    for c in "${CLIENTS[@]}"; do
      echo "rangekv r$1: $w, $c clients" >&2
      local t0
      t0=$(cpu_ticks)
      timeout 300 "$BIN/rangekv" --placement "$pd" -o json bench --workload "$w" --clients "$c" --duration "$DUR" \
        --value-size 256 --keys 100000 --load=false --read-ratio 0.5 --ranges "$RANGES" --consistency "$CONSISTENCY" \
        >"$dir/${w}_c$c.json" 2>"$dir/${w}_c$c.err" || echo "  failed: $(tail -1 "$dir/${w}_c$c.err")" >&2
      cpu_note "$dir/${w}_c$c.cpu" "$t0" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$dir/${w}_c$c.json" 2>/dev/null || echo 0)"
    done
  done
  "$BIN/rangekv" --placement "$pd" store list >"$dir/stores.txt" 2>&1 || true
  stop_all
  rm -rf "$dir"/pd1 "$dir"/s?
}

run_etcd() { # $1 round
  local dir=$OUT/etcd_r$1 cluster="" all="" i
  mkdir -p "$dir"
  for i in 1 2 3; do
    cluster+="m$i=http://127.0.0.1:$((12380 + i * 10000 - 10000)),"
  done
  cluster=${cluster%,}
  for i in 1 2 3; do
    local cport=$((12379 + (i - 1) * 10000)) pport=$((12380 + (i - 1) * 10000))
    "$ETCD_BIN/etcd" --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
      --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "vs-$1" \
      --log-level warn --logger zap >"$dir/m$i.log" 2>&1 &
    PIDS+=($!)
    SERVER_PIDS+=($!)
    all+="127.0.0.1:$cport,"
  done
  all=${all%,}
  for _ in $(seq 1 120); do
    "$ETCD_BIN/etcdctl" --endpoints="$all" endpoint health >/dev/null 2>&1 && break
    sleep 0.5
  done
  local leader
  leader=$("$ETCD_BIN/etcdctl" --endpoints="$all" endpoint status -w json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(s["Endpoint"].replace("http://", ""))')
  "$ETCD_BIN/etcdctl" --endpoints="$leader" put foo "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
  for c in "${CLIENTS[@]}"; do
    local conns=$(( c < 16 ? c : 16 )) total=$ETCD_OPS
    ((c == 1)) && total=$((ETCD_OPS / 8))
    local b=("$ETCD_BIN/benchmark" --conns="$conns" --clients="$c" --precise)
    echo "etcd r$1: $c clients" >&2
    local t0
    if wanted write || { wanted mixed && ((c == 1)); }; then
      t0=$(cpu_ticks)
      timeout 300 "${b[@]}" --endpoints="$leader" --total="$total" \
        put --key-size=8 --val-size=256 --key-space-size=100000 >"$dir/write_c$c.txt" 2>&1
      cpu_note "$dir/write_c$c.cpu" "$t0" "$total"
    fi
    if wanted read || { wanted mixed && ((c == 1)); }; then
      t0=$(cpu_ticks)
      timeout 300 "${b[@]}" --endpoints="$all" --total="$total" range foo --consistency=l >"$dir/read_c$c.txt" 2>&1
      cpu_note "$dir/read_c$c.cpu" "$t0" "$total"
    fi
    if ((c > 1)) && wanted mixed; then
      # Mixed, 50% reads: half the clients put while the other half read,
      # at the same time; the throughputs add up. (etcd's txn-mixed issues
      # range reads over the key space, not point reads, so it is not used.)
      local h=$((c / 2)) hc=$(( c / 2 < 16 ? c / 2 : 16 ))
      t0=$(cpu_ticks)
      timeout 300 "$ETCD_BIN/benchmark" --conns="$hc" --clients="$h" --precise --endpoints="$leader" --total="$((total / 2))" \
        put --key-size=8 --val-size=256 --key-space-size=10000 >"$dir/mixed_put_c$c.txt" 2>&1 &
      local bp=$!
      timeout 300 "$ETCD_BIN/benchmark" --conns="$hc" --clients="$h" --precise --endpoints="$all" --total="$((total / 2))" \
        range foo --consistency=l >"$dir/mixed_read_c$c.txt" 2>&1
      wait "$bp"
      cpu_note "$dir/mixed_c$c.cpu" "$t0" "$(( (total / 2) * 2 ))"
    fi
  done
  stop_all
  rm -rf "$dir"/m?
}

for r in $(seq 1 "$ROUNDS"); do
  run_rangekv "$r"
  if ((ETCD)); then run_etcd "$r"; fi
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
def rk(w, c, field):
    vals = []
    for r in range(1, rounds + 1):
        try:
            vals.append(float(json.load(open(f"{out}/rangekv_r{r}/{w}_c{c}.json"))[field]))
        except Exception:
            pass
    return med(vals)
def et(w, c, what):
    if w == "mixed" and c == 1:
        # One closed-loop client doing half puts, half reads: its rate is
        # the harmonic mean of the single-client put and read rates.
        p, r = et("write", 1, what), et("read", 1, what)
        if p is None or r is None:
            return None
        return 2 / (1 / p + 1 / r) if what == "ops" else (p + r) / 2
    if w == "mixed":
        p, r = et("mixed_put", c, what), et("mixed_read", c, what)
        if p is None or r is None:
            return None
        return p + r if what == "ops" else max(p, r)
    vals = []
    for r in range(1, rounds + 1):
        try:
            txt = open(f"{out}/etcd_r{r}/{w}_c{c}.txt").read()
        except OSError:
            continue
        if what == "ops":
            m = re.search(r"Requests/sec:\s+([0-9.]+)", txt)
            vals.append(float(m.group(1)) if m else None)
        else:
            m = re.search(r"50% in ([0-9.]+) secs", txt)
            vals.append(float(m.group(1)) * 1000 if m else None)
    return med(vals)
def cpu(system, w, c):
    # Server CPU µs per operation (medians over rounds); mixed at 1 client
    # is not measured for etcd (it is derived from two runs).
    vals = []
    for r in range(1, rounds + 1):
        try:
            ticks, hz, ops = open(f"{out}/{system}_r{r}/{w}_c{c}.cpu").read().split()
            if int(ops) > 0:
                vals.append(int(ticks) / int(hz) * 1e6 / int(ops))
        except (OSError, ValueError):
            pass
    return med(vals)
def f(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"
print("| workload | clients | rangekv ops/s | etcd ops/s | ratio | rangekv p50 ms | etcd p50 ms | rangekv CPU µs/op | etcd CPU µs/op |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in ("write", "read", "mixed"):
    for c in (1, 64, 256):
        if not any(cpu(s, w, c) is not None or rk(w, c, "ops_per_s") is not None for s in ("rangekv", "etcd")):
            continue
        a, b = rk(w, c, "ops_per_s"), et(w, c, "ops")
        ratio = "-" if a is None or not b else f"{a / b:.2f}x"
        print(f"| {w} | {c} | {f(a)} | {f(b)} | {ratio} | {f(rk(w, c, 'p50_ms'), 2)} | {f(et(w, c, 'p50'), 2)} "
              f"| {f(cpu('rangekv', w, c))} | {f(cpu('etcd', w, c))} |")
print(f"\n(medians of {rounds} round(s); raw results in {out}; CPU is utime+stime of the 3 stores or the 3 etcd members per operation)")
PY
