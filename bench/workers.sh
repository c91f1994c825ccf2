#!/usr/bin/env bash
# Benchmarks a run spread over load workers, in one run on this machine, over loopback only,
# against one fast backend (bench_backend, 64-byte answers at once): at each rate of RATES, one
# flat phase of DURATION sent by one `twinpeak load` process, then by WORKERS processes
# (`--worker K/N`, one common `--start-at`) merged by `twinpeak report`. Per case: requests
# sent, achieved rate, arrivals dropped by the generator, the corrected p99 over
# intended arrivals (the SLO verdict's figure), the largest scheduling lag p99 of a generator,
# and for the workers how long the merge of their records took.
#
# Both cases share the machine's cores: the figures compare the two ways of sending on one
# machine, not one machine with several.
# Writes the Markdown table to stdout and to bench/results/YYYY-MM-DD-workers.md.
#
# Environment:
#   DURATION  length of every measured run, whole seconds with an s (default 10s)
#   RATES     space-separated rates in requests/s (default "20000 60000")
#   WORKERS   number of worker processes (default 4)
#   OUT       results file (default bench/results/<today>-workers.md)
#   NO_BUILD  set to 1 to skip cargo build and use the binaries already in the target dir
set -euo pipefail

DURATION=${DURATION:-10s}
RATES=${RATES:-20000 60000}
WORKERS=${WORKERS:-4}
USERS=256

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-workers.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
BACKEND_LISTEN=127.0.0.1:19301
URL=http://$BACKEND_LISTEN

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-workers-bench.XXXXXX")
BACKEND_PID=""
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    [[ -n $BACKEND_PID ]] && stop_process "$BACKEND_PID" TERM
    rm -rf "$TMP"
}
trap cleanup EXIT

[[ $DURATION =~ ^[0-9]+s$ ]] || die "DURATION must be whole seconds, e.g. 10s"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -q --bin twinpeak && cargo build --release -q -p twinpeak-proxy --example bench_backend) \
        || die "build failed"
fi
"$BACKEND" --listen "$BACKEND_LISTEN" >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
for _ in $(seq 50); do accepts "$BACKEND_LISTEN" && break; sleep 0.1; done
accepts "$BACKEND_LISTEN" || die "bench_backend did not start, see $TMP/backend.log"

# Prints "sent achieved dropped_by_generator p99_ms lag_p99_ms" of a record judged against p99.
figures() {
    python3 - "$1" "$2" <<'PY'
import json, re, sys
record = json.load(open(sys.argv[1]))
phase = record["phases"][0]
p99 = next(v["actual"] for v in record["slo"] if v["metric"] == "p99")
lags = [p["lag_p99_us"] for w in record.get("workers", []) for p in w["phases"]]
if not lags:  # one machine: the lag p99 of its closing table
    rows = [l.split() for l in open(sys.argv[2]) if l.split()[:2] == ["target", "flat"]]
    lags = [float(rows[0][10]) * 1000] if rows else [0]
sent = sum(r["sent"] for r in phase["requests"].values())
print("%d %.0f %d %.2f %.2f" % (sent, phase["achieved_rps"], phase.get("dropped_by_generator", 0), p99, max(lags) / 1000))
PY
}

rows=()
for rate in $RATES; do
    cat >"$TMP/s$rate.yaml" <<EOF
name: workers-$rate
baseline_rps: $rate
max_users: $USERS
timeout: 5s
phases:
  - {name: flat, duration: $DURATION, rps: 1x}
requests:
  - {name: root, path: /}
slo: {p99: 10s}
EOF
    "$TWINPEAK" load "$TMP/s$rate.yaml" --target "$URL" --seed 1 --quiet --out "$TMP/one$rate" >"$TMP/one$rate.txt" 2>&1 \
        || die "one process at $rate/s failed, see $TMP/one$rate.txt"
    read -r n a d p l < <(figures "$TMP/one$rate/run.json" "$TMP/one$rate.txt")
    rows+=("| $rate | 1 process | $n | $a | $d | $p | $l | — |")

    start=$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)
    pids=()
    for ((k = 0; k < WORKERS; k++)); do
        "$TWINPEAK" load "$TMP/s$rate.yaml" --target "$URL" --worker "$k/$WORKERS" --start-at "$start" \
            --seed 1 --quiet --out "$TMP/w$rate/w$k" >"$TMP/w$rate-$k.txt" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "a worker at $rate/s failed, see $TMP/w$rate-*.txt"; done
    t0=$(date +%s%N)
    "$TWINPEAK" report "$TMP"/w"$rate"/w*/run.json --out "$TMP/m$rate" >"$TMP/m$rate.txt" 2>&1 \
        || die "the merge at $rate/s failed, see $TMP/m$rate.txt"
    merge_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    read -r n a d p l < <(figures "$TMP/m$rate/run.json" /dev/null)
    rows+=("| $rate | $WORKERS workers | $n | $a | $d | $p | $l | $merge_ms ms |")
done

{
    echo "# Load workers: $(date +%F), $(nproc) cores, $(uname -sr)"
    echo
    echo "One flat phase of $DURATION, $USERS users in all, against bench_backend on loopback; every case on the same cores."
    echo
    echo "| rate/s | sent by | requests | achieved/s | dropped by the generator | p99 ms | lag p99 ms | merge |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} | tee "$OUT"
