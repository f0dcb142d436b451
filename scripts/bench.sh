#!/usr/bin/env bash
# make bench: single range, three rangekv stores on loopback, puts of
# 256-byte values with 1, 16 and 256 concurrent clients; then etcd 3.7
# (3 members, built from the Go module proxy by ../shared/bench) measured the
# same way in the same run. Prints a markdown table for docs/benchmarks.md.
#
# Env: BENCH_DIR (scratch dir on the disk under test; default a new temp
# dir), SHARED (default ../shared), DUR (rangekv duration per point, default
# 15s), ETCD_TOTAL1/ETCD_TOTAL (etcd request counts), SKIP_ETCD=1.
# All traffic stays on 127.0.0.1; every process is stopped by its PID.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
export BENCH_DIR
DUR=${DUR:-15s}
OUT=$BENCH_DIR/rangekv_bench_$(date +%Y%m%d_%H%M%S)
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

make -s build || exit 1
BIN=$ROOT/bin

# --- rangekv: 3 stores, static bootstrap -----------------------------------
BASE=47000
STORES=""; INITIAL=""
for i in 1 2 3; do
  INITIAL+="$i=127.0.0.1:$((BASE + i)),"
  STORES+="127.0.0.1:$((BASE + i)),"
done
INITIAL=${INITIAL%,}; STORES=${STORES%,}
for i in 1 2 3; do
  "$BIN/rangekv-store" --store-id "$i" --addr "127.0.0.1:$((BASE + i))" --http-addr "127.0.0.1:$((BASE + 10 + i))" \
    --data-dir "$OUT/s$i" --initial-stores "$INITIAL" >"$OUT/s$i.log" 2>&1 &
  PIDS+=($!)
done
ok=0
for _ in $(seq 1 120); do
  timeout 10 "$BIN/rangekv" --stores "$STORES" put bench-ready 1 >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.5
done
((ok)) || { echo "rangekv cluster never accepted a put; logs in $OUT"; exit 1; }
for c in 1 16 256; do
  echo "rangekv: write, $c clients, $DUR" >&2
  timeout 300 "$BIN/rangekv" --stores "$STORES" bench --workload write --clients "$c" --duration "$DUR" \
    --value-size 256 --keys 100000 -o json >"$OUT/rangekv_c$c.json" 2>"$OUT/rangekv_c$c.err" || echo "rangekv c$c failed: $(tail -1 "$OUT/rangekv_c$c.err")" >&2
done
for i in 1 2 3; do
  curl -s "http://127.0.0.1:$((BASE + 10 + i))/metrics" >"$OUT/s$i.metrics" 2>/dev/null || true
done
cleanup; PIDS=()

# --- etcd 3.7, 3 members -----------------------------------------------------
if [[ ${SKIP_ETCD:-0} != 1 ]]; then
  ETCD_BIN=${ETCD_BIN:-$BENCH_DIR/etcdbin}
  if [[ ! -x $ETCD_BIN/benchmark ]]; then
    echo "building etcd into $ETCD_BIN (about 2 minutes)" >&2
    ETCD_BIN=$ETCD_BIN bash "$SHARED/bench/install_etcd.sh" >"$OUT/etcd_install.log" 2>&1 || { echo "etcd build failed: $OUT/etcd_install.log"; exit 1; }
  fi
  CL=""; EPS=()
  for i in 1 2 3; do CL+="m$i=http://127.0.0.1:$((i * 10000 + 2380)),"; EPS+=("127.0.0.1:$((i * 10000 + 2379))"); done
  CL=${CL%,}
  for i in 1 2 3; do
    "$ETCD_BIN/etcd" --name "m$i" --data-dir "$OUT/etcd$i" \
      --listen-client-urls "http://127.0.0.1:$((i * 10000 + 2379))" --advertise-client-urls "http://127.0.0.1:$((i * 10000 + 2379))" \
      --listen-peer-urls "http://127.0.0.1:$((i * 10000 + 2380))" --initial-advertise-peer-urls "http://127.0.0.1:$((i * 10000 + 2380))" \
      --initial-cluster "$CL" --initial-cluster-state new --log-level warn >"$OUT/etcd$i.log" 2>&1 &
    PIDS+=($!)
  done
  ALL=$(IFS=,; echo "${EPS[*]}")
  for _ in $(seq 1 60); do "$ETCD_BIN/etcdctl" --endpoints="$ALL" endpoint health >/dev/null 2>&1 && break; sleep 0.5; done
  LEADER=$("$ETCD_BIN/etcdctl" --endpoints="$ALL" endpoint status -w json | python3 -c '
import json,sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"]==e["Status"]["leader"]: print(e["Endpoint"].replace("http://",""))')
  for spec in "1 1 ${ETCD_TOTAL1:-20000}" "16 16 ${ETCD_TOTAL:-60000}" "16 256 ${ETCD_TOTAL:-100000}"; do
    set -- $spec
    echo "etcd: put, $2 clients" >&2
    timeout 300 "$ETCD_BIN/benchmark" --endpoints="$LEADER" --conns="$1" --clients="$2" --precise \
      put --key-size=8 --val-size=256 --sequential-keys --key-space-size=100000 --total="$3" >"$OUT/etcd_c$2.txt" 2>&1
  done
  cleanup; PIDS=()
fi

python3 - "$OUT" <<'PY'
import json, re, sys, os
out = sys.argv[1]
def rk(c):
    try:
        return json.load(open(f"{out}/rangekv_c{c}.json"))
    except Exception:
        return None
def et(c):
    p = f"{out}/etcd_c{c}.txt"
    if not os.path.exists(p): return None
    t = open(p).read()
    g = lambda pat: float(re.search(pat, t).group(1)) if re.search(pat, t) else float("nan")
    return {"ops_per_s": g(r"Requests/sec:\s+([\d.]+)"),
            "p50_ms": g(r"\n\s*50% in ([\d.eE+-]+) secs") * 1000,
            "p99_ms": g(r"\n\s*99% in ([\d.eE+-]+) secs") * 1000}
print(f"results in {out}\n")
print("| clients | rangekv puts/s | p50 ms | p99 ms | etcd puts/s | p50 ms | p99 ms | rangekv/etcd throughput |")
print("|---|---|---|---|---|---|---|---|")
for c in (1, 16, 256):
    r, e = rk(c), et(c)
    f = lambda d, k: f"{d[k]:.2f}" if d and k.endswith("ms") else (f"{d[k]:.0f}" if d else "n/a")
    ratio = f"{r['ops_per_s']/e['ops_per_s']:.2f}x" if r and e and e["ops_per_s"] else "n/a"
    print(f"| {c} | {f(r,'ops_per_s')} | {f(r,'p50_ms')} | {f(r,'p99_ms')} | {f(e,'ops_per_s')} | {f(e,'p50_ms')} | {f(e,'p99_ms')} | {ratio} |")
PY
for i in 1 2 3; do
  [[ -f $OUT/s$i.metrics ]] || continue
  awk -v s="$i" '/^rangekv_raft_log_syncs_total /{y=$2} /^rangekv_raft_entries_appended_total /{e=$2} END{if (y>0) printf "store %s: %d log syncs for %d entries appended (%.1f entries per sync)\n", s, y, e, e/y}' "$OUT/s$i.metrics"
done
