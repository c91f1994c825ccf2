#!/usr/bin/env bash
# Benchmarks unary gRPC through twinpeak on this machine, over loopback only, with h2load (one
# message per call, content-type application/grpc, h2c with prior knowledge):
#
#   direct      h2load -> grpc_backend
#   proxied     h2load -> twinpeak (h2c listener, h2c primary) -> grpc_backend
#   mirrored    the same, every call also copied to a second grpc_backend whose answers differ
#               at field 2; each pair compared (grpc-status, grpc-message, the message by field)
#
# After the mirrored runs it checks that the pairs were compared and that the difference is
# reported at `$.2`. Each case runs ROUNDS times, interleaved; the figures are the medians. Writes
# Markdown to stdout and to bench/results/YYYY-MM-DD-grpc.md.
#
# Environment: ROUNDS (default 3), DURATION (seconds per run, default 5), CONNECTIONS (default
# 16), OUT (results file), NO_BUILD=1 to use the binaries already built.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-16}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-grpc.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/grpc_backend

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench-grpc.XXXXXX")
declare -A PIDS=()
cleanup() {
    local pid
    for pid in "${!PIDS[@]}"; do stop_process "$pid" "${PIDS[$pid]}"; done
    rm -rf "$TMP"
}
trap cleanup EXIT

H2LOAD=$(command -v h2load) || die "h2load not found (apt-get install -y nghttp2-client)"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p twinpeak-proxy --example grpc_backend \
        && cargo build --release -p twinpeak --bin twinpeak) || die "cargo build failed"
fi

PRIMARY=127.0.0.1:$(free_port)
SHADOW=127.0.0.1:$(free_port)
PROXIED=127.0.0.1:$(free_port)
MIRRORED=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
MIRRORED_ADMIN=127.0.0.1:$(free_port)
"$BACKEND" --listen "$PRIMARY" --count 1 >"$TMP/primary.log" 2>&1 &
PIDS[$!]=TERM
"$BACKEND" --listen "$SHADOW" --count 2 >"$TMP/shadow.log" 2>&1 &
PIDS[$!]=TERM
start_twinpeak() { # NAME LISTEN ADMIN EXTRA-YAML
    cat >"$TMP/$1.yaml" <<YAML
listen: [{address: $2, http2: true}]
threads: 2
admin: {listen: $3}
primary: {url: http://$PRIMARY, http2: true}
routes: [/echo.Echo/Say]
state: {off: true}
$4
YAML
    "$TWINPEAK" proxy --config "$TMP/$1.yaml" >"$TMP/$1.log" 2>&1 &
    PIDS[$!]=INT
}
start_twinpeak proxied "$PROXIED" "$ADMIN" ""
start_twinpeak mirrored "$MIRRORED" "$MIRRORED_ADMIN" "shadow: {url: http://$SHADOW, http2: true, max_in_flight: 4096}
mirror: {percent: 100, methods: [POST]}"
for addr in $PRIMARY $SHADOW $PROXIED $MIRRORED $ADMIN $MIRRORED_ADMIN; do wait_accepting "$addr"; done

# One Echo request: field 1 = "hello, twinpeak", framed as one uncompressed gRPC message.
python3 -c 'import sys, struct; m = b"\x0a\x0fhello, twinpeak"; sys.stdout.buffer.write(b"\0" + struct.pack(">I", len(m)) + m)' >"$TMP/request.bin"

# One measured run against ADDR: prints "req/s errors".
measure() {
    local raw="$TMP/$1.r$2.txt"
    "$H2LOAD" -t2 -c"$CONNECTIONS" -m1 -D"$DURATION" -d "$TMP/request.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' "http://$3/echo.Echo/Say" \
        >"$raw" 2>&1 || die "h2load failed: $(tail -1 "$raw")"
    python3 - "$raw" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
if not rps or not done:
    sys.exit("no req/s or request counts in " + sys.argv[1])
print("%.2f %d" % (float(rps.group(1)), int(done.group(2)) + int(done.group(3))))
PY
}

RESULTS=$TMP/results.tsv
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for case in direct proxied mirrored; do
        case $case in
        direct) addr=$PRIMARY ;; proxied) addr=$PROXIED ;; mirrored) addr=$MIRRORED ;;
        esac
        log "round $round: $case"
        echo "$case $round $(measure "$case" "$round" "$addr")" >>"$RESULTS"
    done
done

DIFFS=$(curl -sf "http://$MIRRORED_ADMIN/api/v1/diffs") || die "cannot read the diffs"
STATUS=$(curl -sf "http://$MIRRORED_ADMIN/api/v1/status") || die "cannot read the status"
CHECK=$(python3 - "$DIFFS" "$STATUS" <<'PY'
import json, sys
diffs, status = json.loads(sys.argv[1]), json.loads(sys.argv[2])
route = diffs["routes"]["/echo.Echo/Say"]
paths = sorted({f["path"] for f in route["fields"]})
print("compared %d pairs, different %d, fields %s; mirror outcomes %s" % (
    route["compared"], route["different"], paths,
    {k: v for k, v in status["counters"]["mirror"].items() if v}))
if paths != ["$.2"]:
    sys.exit("expected the one difference at $.2, got %s" % paths)
PY
) || die "mirrored pairs not reported as expected: $CHECK"

{
    echo "# Unary gRPC through twinpeak — $(date +%F)"
    echo
    echo "$(nproc) cores, loopback, h2load -t2 -c$CONNECTIONS -m1, ${DURATION} s per run, median of $ROUNDS rounds;"
    echo "twinpeak with threads: 2. Mirrored: $CHECK."
    echo
    echo "| case | calls/s | errors | vs direct |"
    echo "| --- | ---: | ---: | ---: |"
    direct=$(awk '$1 == "direct" { print $3 }' "$RESULTS" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    for case in direct proxied mirrored; do
        median=$(awk -v c="$case" '$1 == c { print $3 }' "$RESULTS" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        errors=$(awk -v c="$case" '$1 == c { s += $4 } END { print s + 0 }' "$RESULTS")
        echo "| $case | $median | $errors | $(ratio "$median" "$direct") |"
    done
} | tee "$OUT"
