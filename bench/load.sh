#!/usr/bin/env bash
# Benchmarks the load harness, `twinpeak load`, in one run on this machine, over loopback only,
# against one fast backend (bench_backend, 64-byte answers at once):
#
#   saturation  the harness is offered far more than the machine sustains (SATURATION_RPS with
#               64 users and a 10 ms late limit, so arrivals no user can take are dropped at once):
#               the rate it achieves, against a plain Goose attack (plain_goose: 64 users sending
#               GET / in a loop, no wait, Goose's metrics on) and wrk -t2 -c64, each run for the
#               same DURATION
#   pacing      one flat phase of DURATION at each rate of RATES (1k, 5k and 20k requests/s by
#               default), 256 users, default late limit: intended against achieved rate, dropped
#               arrivals, corrected and raw p99
#
# Every case runs once, one after another; the backend stays up throughout.
# Writes the Markdown tables to stdout and to bench/results/YYYY-MM-DD-load.md.
#
# Environment:
#   DURATION  length of every measured run, whole seconds with an s (default 10s)
#   RATES     space-separated pacing rates in requests/s (default "1000 5000 20000")
#   OUT       results file (default bench/results/<today>-load.md)
#   NO_BUILD  set to 1 to skip cargo build and use the binaries already in the target dir
#   KEEP_TMP  set to 1 to keep the temporary directory (scenarios, run records, raw outputs,
#             backend log) after a good run
set -euo pipefail

DURATION=${DURATION:-10s}
RATES=${RATES:-1000 5000 20000}
SATURATION_RPS=200000
SATURATION_USERS=64
SATURATION_LATE_LIMIT=10ms
PACING_USERS=256
WRK_THREADS=2
WRK_CONNECTIONS=$SATURATION_USERS

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-load.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
PLAIN=$TARGET_DIR/release/examples/plain_goose

# Loopback, in 19000-19999.
BACKEND_LISTEN=127.0.0.1:19201
URL=http://$BACKEND_LISTEN

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-load-bench.XXXXXX")
mkdir -p "$TMP/raw" "$TMP/logs"
BACKEND_PID=""
FAILED=1 # cleared at the very end; the EXIT trap reads it

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Stops the backend (SIGTERM, then SIGKILL after 5 s) and reaps it.
stop_backend() {
    local pid=$BACKEND_PID
    [[ -n $pid ]] || return 0
    BACKEND_PID=""
    stop_process "$pid" TERM
}

cleanup() {
    stop_backend
    if [[ $FAILED == 1 && -n $(find "$TMP/raw" "$TMP/logs" -type f) ]]; then
        log "failed; scenarios, run records, raw outputs and the backend log are in $TMP"
    elif [[ $FAILED == 0 && ${KEEP_TMP:-0} == 1 ]]; then
        log "scenarios, run records, raw outputs and the backend log kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

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

# Runs `twinpeak load` on a scenario with the extra arguments given; its record goes to
# $TMP/raw/NAME/run.json and what it printed to $TMP/raw/NAME.txt.
harness() {
    local name=$1 file=$2
    shift 2
    timeout $((SECS + 120)) "$TWINPEAK" load "$file" --target "$URL" --out "$TMP/raw/$name" \
        --seed 1 --quiet "$@" >"$TMP/raw/$name.txt" 2>&1 \
        || die "$name: twinpeak load failed (status $?), see $TMP/raw/$name.txt"
    [[ -f $TMP/raw/$name/run.json ]] || die "$name: no run record, see $TMP/raw/$name.txt"
}

# Prints "intended_rps achieved_rps dropped sent errors p99_us raw_p99_us slowest_second
# fastest_second" from a run record: its one phase, every request name together. The latencies
# are read from the record's histograms (base64 HdrHistogram V2, deflated), as the harness's own
# summary reads them; the seconds are the fewest and most requests answered in one second of
# the phase, from its timeline.
read_record() {
    python3 - "$1" <<'PY'
import base64, json, math, struct, sys, zlib

record = json.load(open(sys.argv[1]))
if len(record["phases"]) != 1:
    sys.exit("%s: expected one phase, found %d" % (sys.argv[1], len(record["phases"])))
phase = record["phases"][0]

def counts(encoded):
    """The histogram's counts array and its parameters, from base64 V2-deflate."""
    data = base64.b64decode(encoded)
    cookie, length = struct.unpack(">II", data[:8])
    if cookie & ~0xF0 != 0x1C849304:  # the Rust encoder sets 0x10 in the cookie
        sys.exit("not a compressed V2 histogram (cookie %#x)" % cookie)
    raw = zlib.decompress(data[8:8 + length])
    cookie, payload_len, offset, digits, low, high, ratio = struct.unpack(">IIIIQQd", raw[:40])
    if cookie & ~0xF0 != 0x1C849303 or offset != 0 or ratio != 1.0:
        sys.exit("unsupported histogram encoding")
    payload, out, i = raw[40:40 + payload_len], {}, 0
    index = 0
    while i < len(payload):
        value, shift = 0, 0
        while True:
            b = payload[i]
            i += 1
            if shift == 56:  # the ninth byte of a varint carries 8 bits
                value |= b << 56
                break
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        n = (value >> 1) ^ -(value & 1)  # zig-zag
        if n < 0:
            index += -n
        else:
            if n:
                out[index] = out.get(index, 0) + n
            index += 1
    return out, digits, low

def merged(key):
    total, params = {}, None
    for request in phase["requests"].values():
        c, digits, low = counts(request[key])
        params = (digits, low)
        for i, n in c.items():
            total[i] = total.get(i, 0) + n
    return total, params

def p99_us(key):
    c, params = merged(key)
    if not c:
        return 0
    digits, low = params
    unit = int(math.floor(math.log2(low)))
    half_mag = int(math.ceil(math.log2(2 * 10 ** digits))) - 1
    half = 1 << half_mag
    count = sum(c.values())
    target = max(1, math.ceil(0.99 * count))
    seen = 0
    for i in sorted(c):
        seen += c[i]
        if seen >= target:
            bucket = (i >> half_mag) - 1
            sub = (i & (half - 1)) + half
            if bucket < 0:
                sub -= half
                bucket = 0
            lowest = sub << (bucket + unit)
            return lowest + (1 << (bucket + unit)) - 1  # highest equivalent value
    return 0

sent = sum(r.get("sent", 0) for r in phase["requests"].values())
errors = sum(sum(r.get("errors", {}).values()) for r in phase["requests"].values())
# Requests answered in each whole second of the phase (the run's only one, so it starts at 0).
seconds = [t["achieved_rps"] for t in phase.get("timeline", []) if t["t_s"] + 1 <= phase["duration_s"]]
print("%.3f %.3f %d %d %d %d %d %.0f %.0f" % (
    phase["intended_rps"], phase["achieved_rps"], phase.get("dropped", 0), sent, errors,
    p99_us("corrected_us"), p99_us("raw_us"), min(seconds, default=0), max(seconds, default=0)))
PY
}

# ---- checks and build ------------------------------------------------------------------------

[[ $DURATION =~ ^[1-9][0-9]*s$ ]] || die "DURATION must be whole seconds like 10s, not '$DURATION'"
SECS=${DURATION%s}
for rate in $RATES; do
    [[ $rate =~ ^[1-9][0-9]*$ ]] || die "RATES must be positive whole requests/s, not '$rate'"
done
for tool in wrk curl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y wrk curl python3)"
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p twinpeak --bin twinpeak) \
        || die "cargo build of the twinpeak binary failed"
    (cd "$ROOT" && cargo build --release -p twinpeak-proxy --example bench_backend) \
        || die "cargo build of bench_backend failed"
    (cd "$ROOT" && cargo build --release -p twinpeak-loadgen --example plain_goose) \
        || die "cargo build of plain_goose failed"
fi
[[ -x $TWINPEAK ]] || die "$TWINPEAK is missing (build with: cargo build --release --bin twinpeak)"
[[ -x $BACKEND ]] || die "$BACKEND is missing (build with: cargo build --release -p twinpeak-proxy --example bench_backend)"
[[ -x $PLAIN ]] || die "$PLAIN is missing (build with: cargo build --release -p twinpeak-loadgen --example plain_goose)"

LOADAVG=$(awk '{ print $1 ", " $2 ", " $3 }' /proc/loadavg)
if accepts "$BACKEND_LISTEN"; then die "something already listens on $BACKEND_LISTEN; stop it first"; fi

# The backend is sent SIGTERM to stop: background jobs of a script ignore SIGINT.
"$BACKEND" --listen "$BACKEND_LISTEN" >"$TMP/logs/backend.log" 2>&1 &
BACKEND_PID=$!
for i in $(seq 50); do
    accepts "$BACKEND_LISTEN" && break
    kill -0 "$BACKEND_PID" 2>/dev/null || { tail -n 20 "$TMP/logs/backend.log" >&2; die "the backend exited"; }
    [[ $i -lt 50 ]] || die "the backend does not accept connections on $BACKEND_LISTEN after 5 s"
    sleep 0.1
done

# ---- saturation ------------------------------------------------------------------------------

# Each measured run: the backend's count before and after (less the probe that read "before"), so
# every figure can be checked against what the backend actually answered.
declare -A ANSWERED=()

log "saturation, harness: $SATURATION_RPS/s offered for $DURATION, $SATURATION_USERS users, late limit $SATURATION_LATE_LIMIT"
before=$(served "$BACKEND_LISTEN")
harness saturation "$(scenario saturation "$SATURATION_RPS" "$SATURATION_USERS")" \
    --late-limit "$SATURATION_LATE_LIMIT"
ANSWERED[harness]=$(($(served "$BACKEND_LISTEN") - before - 1))
read -r _ SAT_HARNESS SAT_DROPPED SAT_SENT SAT_ERRORS _ _ _ _ < <(read_record "$TMP/raw/saturation/run.json") \
    || die "cannot read $TMP/raw/saturation/run.json"
log "saturation, harness: $SAT_HARNESS req/s, $SAT_SENT sent, $SAT_ERRORS errors"

log "saturation, plain Goose: $SATURATION_USERS users for $DURATION"
before=$(served "$BACKEND_LISTEN")
timeout $((SECS + 120)) "$PLAIN" --host "$URL" --users "$SATURATION_USERS" --run-time "$SECS" \
    >"$TMP/raw/plain-goose.txt" 2>&1 || die "plain_goose failed (status $?), see $TMP/raw/plain-goose.txt"
ANSWERED[plain]=$(($(served "$BACKEND_LISTEN") - before - 1))
SAT_PLAIN=$(awk '/^plain-goose requests\/s: / { v = $3 } END { print v }' "$TMP/raw/plain-goose.txt")
[[ -n $SAT_PLAIN ]] || die "no 'plain-goose requests/s:' line in $TMP/raw/plain-goose.txt"
log "saturation, plain Goose: $SAT_PLAIN req/s"

log "saturation, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$DURATION"
before=$(served "$BACKEND_LISTEN")
wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$DURATION" "$URL/" >"$TMP/raw/wrk.txt" 2>&1 \
    || die "wrk failed, see $TMP/raw/wrk.txt"
ANSWERED[wrk]=$(($(served "$BACKEND_LISTEN") - before - 1))
read -r SAT_WRK _ _ _ WRK_ERRORS < <(parse_wrk "$TMP/raw/wrk.txt") || die "cannot parse $TMP/raw/wrk.txt"
log "saturation, wrk: $SAT_WRK req/s"

# ---- pacing ----------------------------------------------------------------------------------

declare -A P_INTENDED=() P_ACHIEVED=() P_DROPPED=() P_SENT=() P_ERRORS=() P_P99=() P_RAW99=() P_MIN=() P_MAX=()
for rate in $RATES; do
    log "pacing at $rate/s for $DURATION, $PACING_USERS users"
    before=$(served "$BACKEND_LISTEN")
    harness "pacing-$rate" "$(scenario "pacing-$rate" "$rate" "$PACING_USERS")"
    ANSWERED[pacing-$rate]=$(($(served "$BACKEND_LISTEN") - before - 1))
    read -r "P_INTENDED[$rate]" "P_ACHIEVED[$rate]" "P_DROPPED[$rate]" "P_SENT[$rate]" "P_ERRORS[$rate]" \
        "P_P99[$rate]" "P_RAW99[$rate]" "P_MIN[$rate]" "P_MAX[$rate]" < <(read_record "$TMP/raw/pacing-$rate/run.json") \
        || die "cannot read $TMP/raw/pacing-$rate/run.json"
    log "pacing at $rate/s: achieved ${P_ACHIEVED[$rate]}/s, ${P_DROPPED[$rate]} dropped, p99 ${P_P99[$rate]} µs"
done

stop_backend

# ---- report ----------------------------------------------------------------------------------

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
goose=$(awk '/^name = "goose"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")
report() {
    echo "# Load harness benchmark, $(date +%F)"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "- backend: bench_backend on $BACKEND_LISTEN, 64-byte 200 answers at once; every request is \`GET /\` over loopback"
    echo "- method: one run of each case, $DURATION each, one after another; the load generator and the"
    echo "  backend share the same cores, so compare ratios, not absolute figures"
    echo "- load average when the run started: $LOADAVG (1, 5, 15 min; anything else running takes cores"
    echo "  from the load generators and the backend)"
    echo "- versions: twinpeak $commit, goose ${goose:-unknown}, $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(rustc --version 2>/dev/null || echo rustc unknown)"
    echo
    echo "## Saturation"
    echo
    echo "The harness is offered $SATURATION_RPS requests/s with \`max_users: $SATURATION_USERS\` and"
    echo "\`--late-limit $SATURATION_LATE_LIMIT\`, far more than the machine sustains: its users send as fast as"
    echo "the backend answers, and the rate it achieves is what it can send. Plain Goose runs $SATURATION_USERS users"
    echo "sending \`GET /\` in a loop with no wait; wrk runs \`-t$WRK_THREADS -c$WRK_CONNECTIONS\`."
    echo
    echo "| load generator | req/s | vs plain Goose | vs wrk | backend answered | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '| twinpeak load | %.0f | %s | %s | %d | %d |\n' "$SAT_HARNESS" "$(ratio "$SAT_HARNESS" "$SAT_PLAIN")" \
        "$(ratio "$SAT_HARNESS" "$SAT_WRK")" "${ANSWERED[harness]}" "$SAT_ERRORS"
    printf '| plain Goose | %.0f | 1.00 | %s | %d | |\n' "$SAT_PLAIN" "$(ratio "$SAT_PLAIN" "$SAT_WRK")" "${ANSWERED[plain]}"
    printf '| wrk | %.0f | %s | 1.00 | %d | %d |\n' "$SAT_WRK" "$(ratio "$SAT_WRK" "$SAT_PLAIN")" "${ANSWERED[wrk]}" "$WRK_ERRORS"
    echo
    echo "twinpeak load's rate is the run record's \`achieved_rps\` (requests sent in the phase ÷ the"
    echo "phase's $DURATION); it sent $SAT_SENT and dropped $SAT_DROPPED arrivals no user was free for. Plain"
    echo "Goose's is every request its metrics counted ÷ the seconds it counted them over, from when"
    echo "every user was launched; the backend also answered the requests sent during the launch."
    echo
    echo "## Pacing accuracy"
    echo
    echo "One flat phase of $DURATION at each rate, \`max_users: $PACING_USERS\`, default late limit (100 ms)."
    echo
    echo "| intended req/s | achieved req/s | achieved ÷ intended | per second, min-max | dropped | p99 ms | raw p99 ms | errors | backend answered |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local rate beyond=""
    for rate in $RATES; do
        printf '| %.0f | %.0f | %s | %.0f-%.0f | %d | %.2f | %.2f | %d | %d |\n' "${P_INTENDED[$rate]}" "${P_ACHIEVED[$rate]}" \
            "$(python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print("%.3f" % (a / b))' "${P_ACHIEVED[$rate]}" "${P_INTENDED[$rate]}")" \
            "${P_MIN[$rate]}" "${P_MAX[$rate]}" "${P_DROPPED[$rate]}" "$(python3 -c "print(${P_P99[$rate]} / 1000)")" \
            "$(python3 -c "print(${P_RAW99[$rate]} / 1000)")" "${P_ERRORS[$rate]}" "${ANSWERED[pacing-$rate]}"
        if python3 -c 'import sys; a, b, d = map(float, sys.argv[1:]); sys.exit(0 if d > 0 and a < 0.98 * b else 1)' \
            "${P_ACHIEVED[$rate]}" "${P_INTENDED[$rate]}" "${P_DROPPED[$rate]}"; then
            beyond+=" $rate"
        fi
    done
    echo
    echo "Achieved is the record's \`achieved_rps\`: the arrivals sent ÷ the phase's $DURATION, so it falls short"
    echo "of intended only by arrivals dropped (or cut off at the end). Per second is the fewest and most"
    echo "requests answered in one second of the phase (the record's timeline): how even the pacing was."
    echo "p99 is measured from each request's intended time (corrected for coordinated omission), raw"
    echo "p99 from the moment it was actually sent, both from the record's histograms: the gap between"
    echo "them is time requests waited past their due time, for a user or for the CPU."
    if [[ -n $beyond ]]; then
        echo
        echo "Beyond what this machine sustains, with the harness and the backend sharing its $(nproc) CPUs:"
        for rate in $beyond; do
            printf -- '- %s/s: achieved %.0f/s (%.1f %% short) and %d arrivals dropped; the shortfall is\n' "$rate" \
                "${P_ACHIEVED[$rate]}" "$(python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print(100 * (1 - a / b))' "${P_ACHIEVED[$rate]}" "${P_INTENDED[$rate]}")" \
                "${P_DROPPED[$rate]}"
            echo "  counted as dropped arrivals, not hidden. A finding about the machine, not a pacing error."
        done
    fi

    local vs_plain sustained="" worst=""
    vs_plain=$(ratio "$SAT_HARNESS" "$SAT_PLAIN")
    for rate in $RATES; do
        [[ " $beyond " == *" $rate "* ]] || sustained+=" $rate"
    done
    if [[ -n $sustained ]]; then
        # The largest relative deviation from the intended rate among the sustained rates.
        worst=$(python3 -c 'import sys
pairs = [tuple(map(float, p.split(":"))) for p in sys.argv[1:]]
print("%.1f" % max(100 * abs(a / i - 1) for i, a in pairs))' \
            $(for rate in $sustained; do echo "${P_INTENDED[$rate]}:${P_ACHIEVED[$rate]}"; done))
    fi
    echo
    echo "## Targets"
    echo
    echo "| measure | value | target | |"
    echo "|---|---:|---:|---|"
    echo "| saturation: twinpeak load req/s ÷ plain Goose req/s | $vs_plain | ≥ 0.9 | $(python3 -c 'import sys; print("met" if float(sys.argv[1]) >= 0.9 else "missed")' "$vs_plain") |"
    if [[ -n $sustained ]]; then
        echo "| pacing: largest \|achieved ÷ intended − 1\| at the rates sustained (${sustained# }/s) | $worst % | ≤ 2 % | $(python3 -c 'import sys; print("met" if float(sys.argv[1]) <= 2 else "missed")' "$worst") |"
    else
        echo "| pacing: largest \|achieved ÷ intended − 1\| at the rates sustained | n/a | ≤ 2 % | no rate sustained |"
    fi
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
log "written to $OUT"
FAILED=0
