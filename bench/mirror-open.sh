#!/usr/bin/env bash
# What mirroring costs the client, measured the way it is used: besides wrk at saturation, open-
# loop runs at fixed rates (50% and 90% of the measured mirroring-off capacity) with twinpeak's own
# coordinated-omission-corrected harness, and the proxy's CPU per request from /proc. Over loopback
# only, in one run on this machine:
#
#   off            twinpeak, mirror percent 0
#   fast-30        mirror 30% to a shadow that answers at once
#   fast-100       mirror 100% to it
#   slow-100       mirror 100% to a shadow that answers after 200 ms
#   blackhole-100  mirror 100% to a shadow that accepts connections and never answers
#   refused-100    mirror 100% to a port where nothing listens (every connection refused)
#
# Every shadow case runs with shadow timeout 2s and max_in_flight 256, the defaults. Per round,
# every case runs once, in order: saturation (wrk -t1 -c32), then the two fixed rates; the
# capacity the rates are derived from is mirroring off's saturation in round 1. Medians over the
# rounds are reported, with each round's figures in a second table.
#
# Environment: ROUNDS (default 3), DURATION (seconds per measured run, default 8), WARMUP
# (seconds of wrk before each case, default 2), CASES (subset, in the order above), OUT (default
# bench/results/<today>-mirror-open.md), NO_BUILD=1 to use the binaries already built.
set -euo pipefail

ALL_CASES="off fast-30 fast-100 slow-100 blackhole-100 refused-100"
CASES=${CASES:-$ALL_CASES}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-mirror-open.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-mirror-open.XXXXXX")
declare -a STARTED=()
cleanup() {
    local pid
    # Background jobs of a script ignore SIGINT, so everything but the proxies (whose Pingora
    # takes SIGINT as "exit now" and is stopped with it below) is stopped with SIGTERM.
    for pid in "${STARTED[@]}"; do stop_process "$pid" TERM; done
    [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$TMP"
}
trap cleanup EXIT

# CPU seconds (user + system) the process has used so far.
cpu_seconds() { awk -v tck="$(getconf CLK_TCK)" '{ printf "%.4f", ($14 + $15) / tck }' "/proc/$1/stat"; }

if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --bin twinpeak && cargo build --release -p twinpeak-proxy --example bench_backend) \
        || die "release build failed"
fi
for tool in wrk python3 curl; do command -v "$tool" >/dev/null || die "$tool not found"; done

PRIMARY=127.0.0.1:$(free_port)
FAST=127.0.0.1:$(free_port)
SLOW=127.0.0.1:$(free_port)
BLACKHOLE=127.0.0.1:$(free_port)
REFUSED=127.0.0.1:$(free_port)   # nothing is ever started here
"$BACKEND" --listen "$PRIMARY" >"$TMP/primary.log" 2>&1 & STARTED+=($!)
"$BACKEND" --listen "$FAST" >"$TMP/fast.log" 2>&1 & STARTED+=($!)
"$BACKEND" --listen "$SLOW" --delay-ms 200 >"$TMP/slow.log" 2>&1 & STARTED+=($!)
# Accepts every connection and keeps it open without reading or answering.
python3 - "${BLACKHOLE##*:}" >"$TMP/blackhole.log" 2>&1 <<'PY' & STARTED+=($!)
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
held = []
while True:
    c, _ = s.accept(); held.append(c)
    if len(held) > 20000: held.pop(0).close()
PY
for addr in $PRIMARY $FAST $SLOW $BLACKHOLE; do wait_accepting "$addr"; done

shadow_of() {
    case $1 in
    fast-*) echo "$FAST" ;; slow-*) echo "$SLOW" ;; blackhole-*) echo "$BLACKHOLE" ;;
    refused-*) echo "$REFUSED" ;; *) echo "$FAST" ;;
    esac
}
percent_of() { [[ $1 == off ]] && echo 0 || echo "${1##*-}"; }

# Starts twinpeak for CASE; sets PROXY_PID, LISTEN, ADMIN.
start_proxy() {
    LISTEN=127.0.0.1:$(free_port) ADMIN=127.0.0.1:$(free_port)
    cat >"$TMP/$1.yaml" <<EOF
listen: $LISTEN
admin: { listen: $ADMIN }
primary: { url: http://$PRIMARY }
shadow: { url: http://$(shadow_of "$1"), timeout: 2s, max_in_flight: 256 }
mirror: { percent: $(percent_of "$1") }
routes: ["/bookings/{id}"]
EOF
    "$TWINPEAK" proxy --config "$TMP/$1.yaml" >"$TMP/$1.proxy.log" 2>&1 & PROXY_PID=$!
    STARTED+=("$PROXY_PID")
    wait_accepting "$LISTEN"
}

# Runs twinpeak load at RATE for DURATION against LISTEN; prints
# "p50_ms p99_ms p999_ms sent errors dropped cpu_us_per_request".
open_loop() {
    local rate=$1 name=$2 dir="$TMP/raw/$2" before after
    mkdir -p "$dir"
    cat >"$dir/scenario.yaml" <<EOF
name: open-$rate
baseline_rps: $rate
max_users: 128
timeout: 5s
phases:
  - {name: flat, duration: ${DURATION}s, rps: 1x}
requests:
  - {name: get, weight: 1, method: GET, path: "/bookings/{{int 1 100000}}"}
EOF
    before=$(cpu_seconds "$PROXY_PID")
    "$TWINPEAK" load "$dir/scenario.yaml" --target "http://$LISTEN" --out "$dir/run" --quiet \
        >"$dir/load.log" 2>&1 || true
    after=$(cpu_seconds "$PROXY_PID")
    "$TWINPEAK" report "$dir/run/run.json" --out "$dir/report" >/dev/null 2>&1 \
        || die "$name: twinpeak report failed (see $dir)"
    python3 - "$dir/report/summary.json" "$dir/run/run.json" "$before" "$after" <<'PY'
import json, sys
summary, run = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rows = {r["key"]: r for r in summary["headline"]["rows"]}
def ms(key):
    side = rows[key].get("before") or rows[key].get("after")
    text = "%.3f" % side["value"]
    return (">" + text) if side.get("lower_bound") else text
requests = [r for p in run["phases"] for r in p.get("requests", {}).values()]
sent = sum(r.get("sent", 0) for r in requests)
errors = sum(sum(r.get("errors", {}).values()) for r in requests)
dropped = sum(p.get("dropped", 0) for p in run["phases"])
cpu = (float(sys.argv[4]) - float(sys.argv[3])) * 1e6 / max(sent, 1)
print(ms("p50"), ms("p99"), ms("p999"), sent, errors, dropped, "%.1f" % cpu)
PY
}

saturate() {
    local out="$TMP/raw/$1.wrk" before after
    wrk -t1 -c32 -d"${WARMUP}s" "http://$LISTEN/bookings/42" >/dev/null 2>&1
    before=$(cpu_seconds "$PROXY_PID")
    wrk -t1 -c32 -d"${DURATION}s" --latency "http://$LISTEN/bookings/42" >"$out" 2>&1
    after=$(cpu_seconds "$PROXY_PID")
    read -r rps p50 p99 requests errors < <(parse_wrk "$out")
    echo "$rps $p99 $errors $(python3 -c "print('%.1f' % (($after - $before) * 1e6 / max($requests, 1)))")"
}

mkdir -p "$TMP/raw"
declare -A SAT=() SAT_P99=() SAT_CPU=() OPEN=()
CAPACITY=""
for round in $(seq "$ROUNDS"); do
    for c in $CASES; do
        start_proxy "$c"
        read -r rps p99 errors cpu < <(saturate "$c.r$round")
        SAT[$c,$round]=$rps SAT_P99[$c,$round]=$p99 SAT_CPU[$c,$round]=$cpu
        if [[ -z $CAPACITY ]]; then
            [[ $c == off ]] || die "the first case must be off: the rates are derived from its capacity"
            CAPACITY=${rps%.*}
            log "capacity with mirroring off: $CAPACITY req/s; open-loop rates $((CAPACITY / 2)) and $((CAPACITY * 9 / 10))"
        fi
        for share in 50 90; do
            OPEN[$c,$share,$round]=$(open_loop $((CAPACITY * share / 100)) "$c-$share.r$round")
        done
        log "round $round, $c: saturation $rps req/s (p99 $p99 ms, $cpu µs CPU/request); 50%: ${OPEN[$c,50,$round]}; 90%: ${OPEN[$c,90,$round]}"
        stop_process "$PROXY_PID" INT
    done
done

median() { python3 -c 'import statistics, sys; v = [float(x.lstrip(">")) for x in sys.argv[1:]]; print("%.3f" % statistics.median(v))' "$@"; }
med_open() { # CASE SHARE FIELD
    local values=() r
    for r in $(seq "$ROUNDS"); do values+=("$(echo "${OPEN[$1,$2,$r]}" | awk -v i="$3" '{ print $i }')"); done
    median "${values[@]}"
}
med_sat() { local -n table=$1; local values=() r; for r in $(seq "$ROUNDS"); do values+=("${table[$2,$r]}"); done; median "${values[@]}"; }

{
    echo "# Mirroring cost, open loop and saturation — $(date +%F)"
    echo
    echo "Machine: $(nproc) cores, $(uname -r). $ROUNDS interleaved rounds, ${DURATION}s per run; medians."
    echo "Capacity (mirroring off, wrk -t1 -c32, round 1): $CAPACITY req/s; open-loop rates $((CAPACITY / 2))/s (50%) and $((CAPACITY * 9 / 10))/s (90%) with \`twinpeak load\` (CO-corrected)."
    echo "Proxy CPU per request: utime + stime of the proxy process over the run (/proc), over the requests of the run."
    echo
    echo "| case | sat. req/s | × off | sat. p99 ms | CPU µs/req (sat.) | 50%: p50 / p99 / p99.9 ms | p99 × off | CPU µs/req | 90%: p50 / p99 / p99.9 ms | p99 × off | errors, dropped (50%/90%) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    off_sat=$(med_sat SAT off); off50=$(med_open off 50 2); off90=$(med_open off 90 2)
    for c in $CASES; do
        sat=$(med_sat SAT "$c")
        o50="$(med_open "$c" 50 1) / $(med_open "$c" 50 2) / $(med_open "$c" 50 3)"
        o90="$(med_open "$c" 90 1) / $(med_open "$c" 90 2) / $(med_open "$c" 90 3)"
        r50=$(python3 -c "print('%.2f' % ($(med_open "$c" 50 2) / $off50))")
        r90=$(python3 -c "print('%.2f' % ($(med_open "$c" 90 2) / $off90))")
        echo "| $c | ${sat%.*} | $(python3 -c "print('%.2f' % ($sat / $off_sat))") | $(med_sat SAT_P99 "$c") | $(med_sat SAT_CPU "$c") | $o50 | $r50 | $(med_open "$c" 50 7) | $o90 | $r90 | $(med_open "$c" 50 5 | cut -d. -f1)+$(med_open "$c" 50 6 | cut -d. -f1) / $(med_open "$c" 90 5 | cut -d. -f1)+$(med_open "$c" 90 6 | cut -d. -f1) |"
    done
    echo
    echo "Each round (saturation req/s; open-loop p99 ms at 50% / 90%):"
    echo
    echo "| case |$(for r in $(seq "$ROUNDS"); do printf ' round %s |' "$r"; done)"
    echo "|---|$(for r in $(seq "$ROUNDS"); do printf -- '---|'; done)"
    for c in $CASES; do
        printf '| %s |' "$c"
        for r in $(seq "$ROUNDS"); do
            printf ' %s; %s / %s |' "${SAT[$c,$r]%.*}" "$(echo "${OPEN[$c,50,$r]}" | awk '{ print $2 }')" "$(echo "${OPEN[$c,90,$r]}" | awk '{ print $2 }')"
        done
        echo
    done
} | tee "$OUT"
log "written to $OUT"
