#!/usr/bin/env bash
# A soak of the deterministic simulation (issue 17), split into chunks of
# seeds run by JOBS processes at once, and resumable: a chunk that passed
# leaves OUT/<first seed>.ok and is not run again, so a soak of 100,000
# seeds can go on across machines' sessions. At the end (and whenever it
# is run with every chunk done) it prints the seeds run, the failing
# seeds with their replay commands, and the steps, faults and operations
# exercised, summed over the chunks.
#
#   make sim SEEDS=100000 SEED_BASE=1 JOBS=2
#   SEEDS=100000 OUT=/var/tmp/soak FLAGS='-sim.interleave' bash scripts/sim_soak.sh
#
# SEEDS, SEED_BASE: the seeds; CHUNK: seeds per process run (default 500);
# JOBS: processes at once (default: the cores); OUT: where chunk logs and
# markers go (default sim-soak/<base>-<seeds>); FLAGS: more -sim.* flags
# (they change what a seed runs, so a resumed soak must pass the same).
set -euo pipefail

SEEDS=${SEEDS:-1000}
SEED_BASE=${SEED_BASE:-1}
CHUNK=${CHUNK:-500}
JOBS=${JOBS:-$(nproc)}
FLAGS=${FLAGS:-}
GO=${GO:-go}
OUT=${OUT:-sim-soak/${SEED_BASE}-${SEEDS}}

for v in SEEDS SEED_BASE CHUNK JOBS; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "sim_soak: $v must be a positive integer, got '${!v}'" >&2
		exit 2
	fi
done

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -f $OUT/flags && $(cat "$OUT/flags") != "$FLAGS" ]]; then
	echo "sim_soak: $OUT was run with FLAGS='$(cat "$OUT/flags")'; resume it with the same flags or use another OUT" >&2
	exit 2
fi
printf '%s' "$FLAGS" >"$OUT/flags"

echo "sim_soak: building the simulation's test binary"
(cd "$root" && $GO test -c -o "$OUT/sim.test" ./sim)

end=$((SEED_BASE + SEEDS))
chunks=()
for ((b = SEED_BASE; b < end; b += CHUNK)); do
	n=$((end - b < CHUNK ? end - b : CHUNK))
	[[ -f $OUT/$b.ok ]] || chunks+=("$b:$n")
done
total=$(((SEEDS + CHUNK - 1) / CHUNK))
echo "sim_soak: seeds $SEED_BASE..$((end - 1)) in $total chunks of up to $CHUNK; $((total - ${#chunks[@]})) done before, ${#chunks[@]} to run, $JOBS at a time; logs in $OUT"

run_chunk() {
	local b=${1%%:*} n=${1##*:}
	local start=$SECONDS
	# shellcheck disable=SC2086 # FLAGS is a list of flags
	if (cd "$ROOT/sim" && "$OUT/sim.test" -test.run 'TestSimSeeds$' -test.count=1 -test.timeout=0 -test.v \
		-sim.seeds="$n" -sim.base="$b" $FLAGS >"$OUT/$b.log" 2>&1); then
		rm -f "$OUT/$b.fail"
		touch "$OUT/$b.ok"
		echo "sim_soak: seeds $b..$((b + n - 1)) passed ($((SECONDS - start)) s)"
	else
		touch "$OUT/$b.fail"
		echo "sim_soak: seeds $b..$((b + n - 1)) FAILED ($((SECONDS - start)) s): $OUT/$b.log"
	fi
}
export -f run_chunk
export OUT FLAGS
export ROOT=$root

start=$SECONDS
if ((${#chunks[@]} > 0)); then
	printf '%s\n' "${chunks[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_chunk {}'
fi

# Summary over every chunk log of this soak.
ok=$(find "$OUT" -name '*.ok' | wc -l)
failed_chunks=$(find "$OUT" -name '*.fail' | wc -l)
echo
echo "sim_soak: $ok of $total chunks passed, $failed_chunks failed ($((SECONDS - start)) s this run)"
cat "$OUT"/*.log 2>/dev/null | grep -E "seed [0-9]+: [0-9]+ failure|is not deterministic|^[[:space:]]+replay: " | sed 's/^[[:space:]]*/  /' || true
# The per-chunk summaries: "seeds A..B: F failed; S steps, T simulated in W"
# and then "  name: count" lines; sum them.
cat "$OUT"/*.log 2>/dev/null | awk '
	/seeds [0-9]+\.\.[0-9]+: [0-9]+ failed; [0-9]+ steps/ {
		in_sum = 1
		for (i = 1; i <= NF; i++) {
			if ($i == "failed;") failed += $(i - 1)
			if ($i == "steps,") steps += $(i - 1)
			if ($i ~ /^[0-9]+\.\.[0-9]+:$/) {
				split(substr($i, 1, length($i) - 1), r, "\\.\\.")
				seeds += r[2] - r[1] + 1
			}
		}
		next
	}
	in_sum && /^[[:space:]]+[^:]+: [0-9]+$/ {
		line = $0
		sub(/^[[:space:]]+/, "", line)
		n = line
		sub(/.*: /, "", n)
		sub(/: [0-9]+$/, "", line)
		count[line] += n
		next
	}
	{ in_sum = 0 }
	END {
		printf "sim_soak: %d seeds summarized, %d failed, %d steps\n", seeds, failed, steps
		for (k in count) printf "  %s: %d\n", k, count[k] | "sort"
	}'
((failed_chunks == 0))
