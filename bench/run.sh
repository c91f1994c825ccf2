#!/usr/bin/env bash
# Benchmarks the proxy in one run on this machine, over loopback only:
#
#   direct                    wrk -> primary backend (the limit)
#   bare-pingora              wrk -> minimal Pingora pass-through -> primary (the baseline)
#   twinpeak-mirror-off       wrk -> twinpeak (mirror percent 0) -> primary
#   twinpeak-mirror-100-fast  wrk -> twinpeak (mirror 100 %) -> primary, copies to the fast shadow
#   twinpeak-mirror-100-slow  same, copies to a shadow that answers after 200 ms
#   nginx-mirror-fast         wrk -> nginx (mirror module) -> primary, copies to the fast shadow
#   nginx-mirror-slow         same, copies to the 200 ms shadow
#
# Writes a Markdown table to stdout and to bench/results/YYYY-MM-DD-proxy.md.
#
# Environment:
#   CASES     space-separated subset of the cases above (default: all, in that order)
#   DURATION  wrk duration per case (default 10s)
#   WARMUP    wrk warm-up duration per case, not measured (default 2s)
#   OUT       results file (default bench/results/<today>-proxy.md)
#   NO_BUILD  set to 1 to skip cargo build and use the binaries already in the target dir
#   KEEP_TMP  set to 1 to keep the temporary directory (raw wrk outputs, logs) after a good run
set -euo pipefail

ALL_CASES="direct bare-pingora twinpeak-mirror-off twinpeak-mirror-100-fast twinpeak-mirror-100-slow nginx-mirror-fast nginx-mirror-slow"
CASES=${CASES:-$ALL_CASES}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WRK_THREADS=2
WRK_CONNECTIONS=64

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-proxy.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
BARE=$TARGET_DIR/release/examples/bare_pingora

# Loopback ports, all in 19000-19999.
PRIMARY=127.0.0.1:19001
SHADOW_FAST=127.0.0.1:19002
SHADOW_SLOW=127.0.0.1:19003
TWINPEAK_LISTEN=127.0.0.1:19080
TWINPEAK_ADMIN=127.0.0.1:19901
BARE_LISTEN=127.0.0.1:19081
NGINX_LISTEN=127.0.0.1:19082

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench.XXXXXX")
mkdir -p "$TMP/raw" "$TMP/logs"
declare -a STARTED=()   # pids of everything this script started
declare -A PIDS=()      # name -> pid, for stopping one process between cases
declare -A STOP_SIG=()  # pid -> signal that makes it exit at once
FAILED=1                # cleared at the very end; the EXIT trap reads it

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops one process with its fast-exit signal, then SIGKILL if it is still there after 2 s.
stop_pid() {
    local pid=$1 i
    kill -"${STOP_SIG[$pid]:-TERM}" "$pid" 2>/dev/null || return 0
    for i in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    if [[ $FAILED == 1 && -n $(find "$TMP/raw" "$TMP/logs" -type f) ]]; then
        log "failed; raw wrk outputs and server logs are in $TMP"
    elif [[ $FAILED == 0 && ${KEEP_TMP:-0} == 1 ]]; then
        log "raw wrk outputs and server logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# Starts a process in the background with its output in $TMP/logs/NAME.log; SIGNAL is the one
# that stops it at once. Pingora takes SIGINT as "exit now" and SIGTERM as "drain gracefully";
# the backend cannot be sent SIGINT, which background jobs of a script inherit as ignored.
start() {
    local name=$1 signal=$2
    shift 2
    "$@" >"$TMP/logs/$name.log" 2>&1 &
    STARTED+=("$!")
    PIDS[$name]=$!
    STOP_SIG[$!]=$signal
}

stop() {
    local name=$1
    [[ -n ${PIDS[$name]:-} ]] || return 0
    stop_pid "${PIDS[$name]}"
    unset "PIDS[$name]"
}

accepts() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# Waits (at most 5 s) for NAME to accept connections on ADDR; fails with its log if it does not.
wait_for() {
    local name=$1 addr=$2 i
    for i in $(seq 50); do
        accepts "$addr" && return 0
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            log "$name exited before accepting connections on $addr; its log:"
            tail -n 20 "$TMP/logs/$name.log" >&2
            die "$name did not start"
        fi
        sleep 0.1
    done
    log "$name's log:"
    tail -n 20 "$TMP/logs/$name.log" >&2
    die "$name does not accept connections on $addr after 5 s"
}

# The backends answer with x-bench-served: how many requests they have answered so far.
# This one counts itself, hence the - 1.
served() {
    local n
    n=$(curl -sS -o /dev/null -D - "http://$1/__served" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-bench-served" { print $2 }')
    [[ -n $n ]] || die "no x-bench-served header from $1"
    echo $((n - 1))
}

# Prints "requests_per_sec p50_ms p99_ms requests errors" from one wrk --latency output.
parse_wrk() {
    python3 - "$1" <<'PY'
import re, sys

text = open(sys.argv[1]).read()
unit_ms = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}

def latency(pct):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
    if not m:
        sys.exit("no %s%% latency line in %s" % (pct, sys.argv[1]))
    return float(m.group(1)) * unit_ms[m.group(2)]

rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
total = re.search(r"^\s+(\d+) requests in", text, re.M)
if not rps or not total:
    sys.exit("no Requests/sec or request count in " + sys.argv[1])
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors += int(non2xx.group(1)) if non2xx else 0
print("%.2f %.3f %.3f %s %d" % (float(rps.group(1)), latency(50), latency(99), total.group(1), errors))
PY
}

# Requests counted by one wrk output (warm-up outputs are not run with --latency).
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }

# ---- checks and build ------------------------------------------------------------------------

cases=""
for c in $CASES; do
    [[ " $ALL_CASES " == *" $c "* ]] || die "unknown case '$c' (known: $ALL_CASES)"
    [[ " $cases " == *" $c "* ]] || cases+=" $c"   # each case runs once
done
CASES=${cases# }
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y wrk curl python3)"
done
if [[ " $CASES " == *" nginx-"* ]]; then
    command -v nginx >/dev/null || die "nginx not found (apt-get install -y nginx)"
fi
wants_twinpeak=0
[[ " $CASES " == *" twinpeak-"* ]] && wants_twinpeak=1

if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p twinpeak-proxy --example bench_backend --example bare_pingora) \
        || die "cargo build of the bench examples failed"
    if [[ $wants_twinpeak == 1 ]]; then
        (cd "$ROOT" && cargo build --release -p twinpeak --bin twinpeak) \
            || die "cargo build of the twinpeak binary failed"
    fi
fi
for bin in "$BACKEND" "$BARE"; do
    [[ -x $bin ]] || die "$bin is missing (build with: cargo build --release -p twinpeak-proxy --examples)"
done
if [[ $wants_twinpeak == 1 && ! -x $TWINPEAK ]]; then
    die "$TWINPEAK is missing (build with: cargo build --release --bin twinpeak)"
fi

for addr in $PRIMARY $SHADOW_FAST $SHADOW_SLOW $TWINPEAK_LISTEN $TWINPEAK_ADMIN $BARE_LISTEN $NGINX_LISTEN; do
    if accepts "$addr"; then die "something already listens on $addr; stop it first"; fi
done

# ---- backends (up for the whole run) ---------------------------------------------------------

start primary TERM "$BACKEND" --listen "$PRIMARY"
start shadow-fast TERM "$BACKEND" --listen "$SHADOW_FAST"
start shadow-slow TERM "$BACKEND" --listen "$SHADOW_SLOW" --delay-ms 200
wait_for primary "$PRIMARY"
wait_for shadow-fast "$SHADOW_FAST"
wait_for shadow-slow "$SHADOW_SLOW"

# ---- proxies, one per case --------------------------------------------------------------------

# Writes the twinpeak config for one case and prints its path.
twinpeak_config() {
    local percent=$1 shadow=$2 file="$TMP/twinpeak-$1-${2##*:}.yaml"
    cat >"$file" <<EOF
listen: $TWINPEAK_LISTEN
threads: 2
admin: { listen: $TWINPEAK_ADMIN }
primary: { url: http://$PRIMARY }
shadow: { url: http://$shadow, timeout: 2s, max_in_flight: 256 }
mirror: { percent: $percent }
EOF
    echo "$file"
}

start_nginx() {
    local shadow=$1 dir="$TMP/nginx-${1##*:}"
    mkdir -p "$dir"
    sed -e "s|@PREFIX@|$dir|g" -e "s|@LISTEN@|$NGINX_LISTEN|g" \
        -e "s|@PRIMARY@|$PRIMARY|g" -e "s|@SHADOW@|$shadow|g" \
        "$ROOT/bench/nginx/mirror.conf.template" >"$dir/nginx.conf"
    # -e (nginx >= 1.19.5) keeps even the start-up error log out of /var/log/nginx.
    # SIGTERM is nginx's fast shutdown.
    start nginx TERM nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
    wait_for nginx "$NGINX_LISTEN"
}

# Starts what CASE needs; sets TARGET (where wrk goes), SERVER (process to stop afterwards, if any)
# and SHADOW (the shadow backend whose request count shows the mirror worked, if any).
start_case() {
    TARGET=$PRIMARY SERVER="" SHADOW=""
    case $1 in
    direct) ;;
    bare-pingora)
        start bare INT "$BARE" --listen "$BARE_LISTEN" --upstream "$PRIMARY" --threads 2
        wait_for bare "$BARE_LISTEN"
        TARGET=$BARE_LISTEN SERVER=bare
        ;;
    twinpeak-*)
        local percent=100 shadow=$SHADOW_FAST
        [[ $1 == twinpeak-mirror-off ]] && percent=0
        [[ $1 == *-slow ]] && shadow=$SHADOW_SLOW
        start twinpeak INT "$TWINPEAK" proxy --config "$(twinpeak_config "$percent" "$shadow")"
        wait_for twinpeak "$TWINPEAK_LISTEN"
        TARGET=$TWINPEAK_LISTEN SERVER=twinpeak SHADOW=$shadow
        ;;
    nginx-mirror-fast | nginx-mirror-slow)
        local shadow=$SHADOW_FAST
        [[ $1 == *-slow ]] && shadow=$SHADOW_SLOW
        start_nginx "$shadow"
        TARGET=$NGINX_LISTEN SERVER=nginx SHADOW=$shadow
        ;;
    esac
}

declare -A RPS=() P50=() P99=() REQS=() ERRS=() MIRRORED=()
WRK_ARGS=(-t"$WRK_THREADS" -c"$WRK_CONNECTIONS")

for c in $CASES; do
    start_case "$c"
    url="http://$TARGET/bookings/42"
    if [[ -n $SHADOW ]]; then before=$(served "$SHADOW"); fi
    log "$c: warm-up $WARMUP, then wrk ${WRK_ARGS[*]} -d$DURATION --latency $url"
    wrk "${WRK_ARGS[@]}" -d"$WARMUP" "$url" >"$TMP/raw/$c.warmup.txt" 2>&1 \
        || die "$c: wrk warm-up failed, see $TMP/raw/$c.warmup.txt"
    wrk "${WRK_ARGS[@]}" -d"$DURATION" --latency "$url" >"$TMP/raw/$c.txt" 2>&1 \
        || die "$c: wrk failed, see $TMP/raw/$c.txt"
    read -r "RPS[$c]" "P50[$c]" "P99[$c]" "REQS[$c]" "ERRS[$c]" < <(parse_wrk "$TMP/raw/$c.txt") \
        || die "$c: cannot parse $TMP/raw/$c.txt"
    [[ ${REQS[$c]} -gt 0 ]] || die "$c: wrk completed no request, see $TMP/raw/$c.txt"
    if [[ -n $SHADOW ]]; then
        # Give copies still in flight (the slow shadow takes 200 ms) a moment to land.
        sleep 0.5
        sent=$(($(wrk_requests "$TMP/raw/$c.warmup.txt") + ${REQS[$c]}))
        copies=$(($(served "$SHADOW") - before - 1))
        MIRRORED[$c]=$(python3 -c 'import sys; c, s = map(int, sys.argv[1:]); print("%d copies for %d completed client requests (%.1f %%)" % (c, s, 100.0 * c / s))' "$copies" "$sent")
    fi
    log "$c: ${RPS[$c]} req/s, p50 ${P50[$c]} ms, p99 ${P99[$c]} ms, ${ERRS[$c]} errors"
    if [[ -n $SERVER ]]; then stop "$SERVER"; fi
done

# ---- report -----------------------------------------------------------------------------------

# Prints a ÷ b to 2 decimals, or "n/a" when either is missing.
ratio() {
    [[ -n ${1:-} && -n ${2:-} ]] || { echo "n/a"; return; }
    python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print("%.2f" % (a / b) if b else "n/a")' "$1" "$2"
}

# Prints "met" or "missed" for VALUE OP LIMIT, or "not measured" when VALUE is n/a.
verdict() {
    [[ $1 != n/a ]] || { echo "not measured"; return; }
    python3 -c 'import sys, operator as o; v, op, t = sys.argv[1:]
print("met" if {">=": o.ge, "<=": o.le, ">": o.gt}[op](float(v), float(t)) else "missed")' "$1" "$2" "$3"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
report() {
    echo "# Proxy benchmark, $(date +%F)"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "- load: \`wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$DURATION --latency\` after a $WARMUP warm-up, GET over loopback, one run per case"
    echo "- backends: bench_backend, 64-byte 200 answers; slow shadow answers after 200 ms"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(rustc --version 2>/dev/null || echo rustc unknown), commit $commit"
    echo "- wrk and every server share the same cores: compare ratios, not absolute figures"
    echo
    echo "| case | req/s | p50 ms | p99 ms | req/s vs direct | req/s vs bare Pingora |"
    echo "|---|---:|---:|---:|---:|---:|"
    local c
    for c in $CASES; do
        printf '| %s | %.0f | %.2f | %.2f | %s | %s |\n' "$c" "${RPS[$c]}" "${P50[$c]}" "${P99[$c]}" \
            "$(ratio "${RPS[$c]}" "${RPS[direct]:-}")" "$(ratio "${RPS[$c]}" "${RPS[bare-pingora]:-}")"
    done
    local notes=""
    for c in $CASES; do
        [[ ${ERRS[$c]} == 0 ]] || notes+="- $c: ${ERRS[$c]} socket errors or non-2xx answers during the measured run"$'\n'
        [[ -z ${MIRRORED[$c]:-} ]] || notes+="- $c: the shadow received ${MIRRORED[$c]}"$'\n'
    done
    if [[ -n $notes ]]; then
        echo
        echo "## Notes"
        echo
        printf '%s' "$notes"
        if [[ -n ${MIRRORED[*]:-} ]]; then
            echo
            echo "Shadow copies are counted by the shadow backend over warm-up and measured run; requests"
            echo "still in flight when wrk stops can be copied without counting as completed, so a share"
            echo "slightly above 100 % is expected."
        fi
    fi

    local off_bare slow_off fast_nginx
    off_bare=$(ratio "${RPS[twinpeak-mirror-off]:-}" "${RPS[bare-pingora]:-}")
    slow_off=$(ratio "${P99[twinpeak-mirror-100-slow]:-}" "${P99[twinpeak-mirror-off]:-}")
    fast_nginx=$(ratio "${RPS[twinpeak-mirror-100-fast]:-}" "${RPS[nginx-mirror-fast]:-}")
    echo
    echo "## Targets"
    echo
    echo "| measure | value | target | |"
    echo "|---|---:|---:|---|"
    echo "| mirror-off req/s ÷ bare-pingora req/s | $off_bare | ≥ 0.95 | $(verdict "$off_bare" ">=" 0.95) |"
    echo "| mirror-100-slow p99 ÷ mirror-off p99 | $slow_off | ≤ 1.2 | $(verdict "$slow_off" "<=" 1.2) |"
    echo "| mirror-100-fast req/s ÷ nginx-mirror-fast req/s | $fast_nginx | > 1 | $(verdict "$fast_nginx" ">" 1) |"
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
log "written to $OUT"
FAILED=0
