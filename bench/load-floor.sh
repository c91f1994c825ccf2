#!/usr/bin/env bash
# Benchmarks the load harness's own floor, in one run on this machine, over loopback only,
# against one fast backend (bench_backend, 64-byte answers at once):
#
#   floor       at each rate of FLOOR_RATES (200 and 2,000 requests/s), for DURATION, 64 users:
#               twinpeak load's corrected p99 against `oha -q RATE -z DURATION -c 64
#               --latency-correction`, ROUNDS rounds interleaved (twinpeak, oha, twinpeak, ...),
#               medians reported; with twinpeak's raw p99 and its own scheduling lag (p50, p99)
#   over-offer  32 users offered far more than they can send: first a probe finds what they send
#               (CAPACITY, sent/s offered 1,000,000/s), then 2.5× and 10× that is offered for
#               DURATION each, and 1,000,000/s: sent/s as the backend counted it, and how the
#               arrivals not sent were told apart (every user busy, or the generator late)
#
# oha times each request from when its own timer woke, twinpeak from the instant the schedule
# made it due, so twinpeak's figure also holds its own lateness. Every figure is read from the run
# record (through `twinpeak report`'s summary.json, full precision) and from oha's JSON output.
# Writes the Markdown tables to stdout and to bench/results/YYYY-MM-DD-load-floor.md.
#
# Environment:
#   BEFORE       another twinpeak binary (an earlier build) to measure the same way, beside this
#                one: its floor and over-offer figures get columns of their own
#   DURATION     length of every measured run, whole seconds with an s (default 8s)
#   ROUNDS       floor rounds per rate and tool (default 3)
#   FLOOR_RATES  space-separated floor rates in requests/s (default "200 2000")
#   OHA          the oha binary (default: oha on PATH, else ~/.cargo/bin/oha)
#   OUT          results file (default bench/results/<today>-load-floor.md)
#   NO_BUILD     set to 1 to skip cargo build and use the binaries already in the target dir
#   KEEP_TMP     set to 1 to keep the temporary directory after a good run
set -euo pipefail

DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
FLOOR_RATES=${FLOOR_RATES:-200 2000}
FLOOR_USERS=64
OVER_USERS=32
PROBE_RPS=1000000

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-load-floor.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-load-floor.XXXXXX")
mkdir -p "$TMP/raw" "$TMP/logs"
BACKEND_PID=""
FAILED=1 # cleared at the very end; the EXIT trap reads it

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    if [[ -n $BACKEND_PID ]]; then stop_process "$BACKEND_PID" TERM; fi
    if [[ $FAILED == 1 ]]; then
        log "failed; scenarios, run records and raw outputs are in $TMP"
    elif [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "scenarios, run records and raw outputs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# A free loopback port.
# Writes a one-phase, one-request scenario to $TMP/NAME.yaml and prints its path.
scenario() {
    local name=$1 rps=$2 users=$3 file="$TMP/$1.yaml"
    cat >"$file" <<EOF
name: $name
baseline_rps: $rps
max_users: $users
timeout: 5s
phases:
  - {name: flat, duration: $DURATION, rps: 1x}
requests:
  - {name: root, path: /}
EOF
    echo "$file"
}

# Runs `twinpeak load` (or BINARY) on scenario NAME at RPS with USERS; its record goes to
# $TMP/raw/NAME/ and is read by this build's `twinpeak report`.
harness() {
    local name=$1 rps=$2 users=$3 binary=${4:-$TWINPEAK}
    timeout $((SECS + 120)) "$binary" load "$(scenario "$name" "$rps" "$users")" --target "$URL" \
        --out "$TMP/raw/$name" --seed 1 --quiet >"$TMP/raw/$name.txt" 2>&1 \
        || die "$name: twinpeak load failed (status $?), see $TMP/raw/$name.txt"
    "$TWINPEAK" report "$TMP/raw/$name/run.json" --out "$TMP/raw/$name/report" >/dev/null \
        || die "$name: twinpeak report failed"
}

# Prints "corrected_p99_ms raw_p99_ms lag_p50_ms lag_p99_ms sent dropped_by_target
# dropped_by_generator" of run NAME's one phase, from its report's summary.json.
figures() {
    python3 - "$TMP/raw/$1/report/summary.json" "$TMP/raw/$1/run.json" <<'PY'
import json, sys
health = json.load(open(sys.argv[1]))["health"][0]
phase = json.load(open(sys.argv[2]))["phases"][0]
value = lambda f: "%.3f" % f["value"] if f else "nan"
sent = sum(r.get("sent", 0) for r in phase["requests"].values())
print(value(health["corrected_p99"]), value(health["raw_p99"]), value(health["lag_p50"]),
      value(health["lag_p99"]), sent, int(health["dropped_by_target"]["value"]),
      int(health["dropped_by_generator"]["value"]))
PY
}

# Prints oha's p99 in ms at RATE, for DURATION, with 64 connections.
oha_p99() {
    local rate=$1 out="$TMP/raw/oha-$1-$2.json"
    timeout $((SECS + 60)) "$OHA" -q "$rate" -z "$DURATION" -c "$FLOOR_USERS" --latency-correction \
        --no-tui --output-format json "$URL/" >"$out" 2>"$TMP/raw/oha-$1-$2.err" \
        || die "oha failed, see $TMP/raw/oha-$1-$2.err"
    python3 -c 'import json, sys; print("%.3f" % (json.load(open(sys.argv[1]))["latencyPercentiles"]["p99"] * 1000))' "$out"
}

median() { python3 -c 'import statistics, sys; print("%.3f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }

# ---- checks and build ------------------------------------------------------------------------

[[ $DURATION =~ ^[1-9][0-9]*s$ ]] || die "DURATION must be whole seconds like 8s, not '$DURATION'"
SECS=${DURATION%s}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive whole number, not '$ROUNDS'"
for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y curl python3)"
done
[[ -x $OHA ]] || die "oha not found (cargo install --locked oha), or set OHA"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p twinpeak --bin twinpeak) || die "cargo build of twinpeak failed"
    (cd "$ROOT" && cargo build --release -p twinpeak-proxy --example bench_backend) \
        || die "cargo build of bench_backend failed"
fi
[[ -x $TWINPEAK && -x $BACKEND ]] || die "$TWINPEAK or $BACKEND is missing"
[[ -z ${BEFORE:-} || -x $BEFORE ]] || die "BEFORE=$BEFORE is not an executable"

LOADAVG=$(awk '{ print $1 ", " $2 ", " $3 }' /proc/loadavg)
BACKEND_LISTEN=127.0.0.1:$(free_port)
URL=http://$BACKEND_LISTEN
"$BACKEND" --listen "$BACKEND_LISTEN" >"$TMP/logs/backend.log" 2>&1 &
BACKEND_PID=$!
for i in $(seq 50); do
    accepts "$BACKEND_LISTEN" && break
    kill -0 "$BACKEND_PID" 2>/dev/null || die "the backend exited, see $TMP/logs/backend.log"
    [[ $i -lt 50 ]] || die "the backend does not accept connections on $BACKEND_LISTEN after 5 s"
    sleep 0.1
done

# ---- floor -----------------------------------------------------------------------------------

declare -A OURS=() THEIRS=() RAW=() LAG50=() LAG99=() ROUNDS_OF=() EARLIER=()
for rate in $FLOOR_RATES; do
    ours=() theirs=() raw=() lag50=() lag99=() earlier=()
    for round in $(seq "$ROUNDS"); do
        log "floor at $rate/s, round $round: twinpeak load"
        harness "floor-$rate-$round" "$rate" "$FLOOR_USERS"
        read -r p99 raw99 l50 l99 _ _ _ < <(figures "floor-$rate-$round")
        ours+=("$p99") raw+=("$raw99") lag50+=("$l50") lag99+=("$l99")
        log "floor at $rate/s, round $round: oha"
        theirs+=("$(oha_p99 "$rate" "$round")")
        log "floor at $rate/s, round $round: twinpeak ${p99} ms (lag p99 ${l99} ms), oha ${theirs[-1]} ms"
        if [[ -n ${BEFORE:-} ]]; then
            harness "before-$rate-$round" "$rate" "$FLOOR_USERS" "$BEFORE"
            read -r p99 _ < <(figures "before-$rate-$round")
            earlier+=("$p99")
            log "floor at $rate/s, round $round: before ${p99} ms"
        fi
    done
    OURS[$rate]=$(median "${ours[@]}") THEIRS[$rate]=$(median "${theirs[@]}")
    RAW[$rate]=$(median "${raw[@]}") LAG50[$rate]=$(median "${lag50[@]}") LAG99[$rate]=$(median "${lag99[@]}")
    ROUNDS_OF[$rate]="${ours[*]} / ${theirs[*]}"
    [[ -z ${BEFORE:-} ]] || EARLIER[$rate]=$(median "${earlier[@]}")
done

# ---- over-offer ------------------------------------------------------------------------------

# Sent/s of run NAME offered RPS with 32 users (by BINARY): what the backend answered, over
# DURATION.
offer() {
    local name=$1 rps=$2 binary=${3:-$TWINPEAK} before after
    before=$(served "$BACKEND_LISTEN")
    harness "$name" "$rps" "$OVER_USERS" "$binary"
    after=$(served "$BACKEND_LISTEN")
    python3 -c 'import sys; print("%.0f" % ((int(sys.argv[2]) - int(sys.argv[1]) - 1) / float(sys.argv[3])))' \
        "$before" "$after" "$SECS"
}

log "over-offer: probing what $OVER_USERS users send, offered $PROBE_RPS/s"
CAPACITY=$(offer probe "$PROBE_RPS")
declare -A SENT=() OFFERED=()
for factor in 2.5 10; do
    OFFERED[$factor]=$(python3 -c "print(int($CAPACITY * $factor))")
    log "over-offer: ${OFFERED[$factor]}/s offered (${factor}× $CAPACITY)"
    SENT[$factor]=$(offer "over-$factor" "${OFFERED[$factor]}")
done
log "over-offer: $PROBE_RPS/s offered"
SENT[million]=$(offer over-million "$PROBE_RPS")
declare -A SENT_BEFORE=()
if [[ -n ${BEFORE:-} ]]; then
    for factor in 2.5 10; do
        log "over-offer, before: ${OFFERED[$factor]}/s offered"
        SENT_BEFORE[$factor]=$(offer "before-over-$factor" "${OFFERED[$factor]}" "$BEFORE")
    done
    SENT_BEFORE[million]=$(offer before-over-million "$PROBE_RPS" "$BEFORE")
fi

# ---- report ----------------------------------------------------------------------------------

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
report() {
    echo "# Load harness floor, $(date +%F)"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "- backend: bench_backend on loopback, 64-byte 200 answers at once; every request is \`GET /\`"
    echo "- method: ROUNDS=$ROUNDS rounds per floor rate, twinpeak and oha interleaved, $DURATION each, medians;"
    echo "  the over-offer runs once each; load generators and the backend share the cores"
    echo "- load average when the run started: $LOADAVG (1, 5, 15 min)"
    echo "- versions: twinpeak $commit, $("$OHA" --version 2>/dev/null | head -1), $(rustc --version 2>/dev/null || echo rustc unknown)"
    echo
    echo "## Floor: corrected p99 on an instant backend"
    echo
    echo "\`max_users: $FLOOR_USERS\` against \`oha -q RATE -z $DURATION -c $FLOOR_USERS --latency-correction\`. oha times a"
    echo "request from when its timer woke; twinpeak from the instant the schedule made it due, so its"
    echo "figure includes its own lateness, which the lag columns show apart (actual − intended send)."
    echo
    echo "| rate | twinpeak corrected p99 ms | oha p99 ms | ratio (goal ≤ 1.5) | twinpeak raw p99 ms | lag p50 ms | lag p99 ms | rounds (twinpeak / oha) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---|"
    local rate
    for rate in $FLOOR_RATES; do
        printf '| %s/s | %s | %s | %s | %s | %s | %s | %s |\n' "$rate" "${OURS[$rate]}" "${THEIRS[$rate]}" \
            "$(ratio "${OURS[$rate]}" "${THEIRS[$rate]}")" "${RAW[$rate]}" "${LAG50[$rate]}" "${LAG99[$rate]}" "${ROUNDS_OF[$rate]}"
    done
    if [[ -n ${BEFORE:-} ]]; then
        echo
        echo "The same floor runs with BEFORE (\`$BEFORE\`), interleaved with the others, medians:"
        for rate in $FLOOR_RATES; do
            printf -- '- %s/s: corrected p99 %s ms before, %s ms now\n' "$rate" "${EARLIER[$rate]}" "${OURS[$rate]}"
        done
    fi
    echo
    echo "## Over-offer: sent/s when far more is offered than can be sent"
    echo
    echo "\`max_users: $OVER_USERS\`, default late limit. What $OVER_USERS users send was probed at $PROBE_RPS/s offered:"
    echo "$CAPACITY/s. Sent/s is what the backend answered ÷ $DURATION."
    echo
    echo "| offered | sent/s | ÷ sent at 2.5× |"
    echo "|---:|---:|---:|"
    printf '| %s/s (2.5×) | %s | 1.00 |\n' "${OFFERED[2.5]}" "${SENT[2.5]}"
    printf '| %s/s (10×) | %s | %s (goal ≥ 0.8) |\n' "${OFFERED[10]}" "${SENT[10]}" "$(ratio "${SENT[10]}" "${SENT[2.5]}")"
    printf '| %s/s | %s | %s |\n' "$PROBE_RPS" "${SENT[million]}" "$(ratio "${SENT[million]}" "${SENT[2.5]}")"
    if [[ -n ${BEFORE:-} ]]; then
        echo
        echo "BEFORE at the same offered rates: ${SENT_BEFORE[2.5]}/s at 2.5×, ${SENT_BEFORE[10]}/s at 10× ($(ratio "${SENT_BEFORE[10]}" "${SENT_BEFORE[2.5]}")),"
        echo "${SENT_BEFORE[million]}/s at $PROBE_RPS/s."
    fi
    echo
    read -r _ _ _ _ sent busy late < <(figures over-10)
    echo "At 10×, the record counts $sent sent, $busy arrivals not taken with every user busy (the"
    echo "backend's and the users' limit: counted against the target) and $late dropped by a late generator."
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
log "written to $OUT"
FAILED=0
