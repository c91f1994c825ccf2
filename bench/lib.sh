# Helpers shared by the benchmark scripts (bench/run.sh, bench/load.sh, bench/record.sh, ...);
# sourced, not run.

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops PID with SIGNAL (TERM by default), then SIGKILL if it is still there after 5 s, and reaps
# it: when this returns the process is gone and its listening sockets are closed.
stop_process() {
    local pid=$1 signal=${2:-TERM} i
    kill -"$signal" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not exit on SIG$signal within 5 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# True when something accepts TCP connections on HOST:PORT.
accepts() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# A loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits (at most 10 s) until something accepts TCP connections on HOST:PORT, or dies.
wait_accepting() {
    local i
    for i in $(seq 100); do accepts "$1" && return 0; sleep 0.1; done
    die "nothing accepts connections on $1"
}

# How many requests the bench_backend at HOST:PORT has answered so far: it answers /__served with
# x-bench-served. That request counts itself, hence the - 1.
served() {
    local n
    n=$(curl -sS -o /dev/null -D - "http://$1/__served" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-bench-served" { print $2 }')
    [[ -n $n ]] || die "no x-bench-served header from $1"
    echo $((n - 1))
}

# Prints "requests_per_sec p50_ms p99_ms requests errors" from one wrk output; the latencies are
# "n/a" when wrk ran without --latency. Errors are socket errors and non-2xx/3xx answers.
parse_wrk() {
    python3 - "$1" <<'PY'
import re, sys

text = open(sys.argv[1]).read()
unit_ms = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}

def latency(pct):
    if "Latency Distribution" not in text:
        return "n/a"
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
    if not m:
        sys.exit("no %s%% latency line in %s" % (pct, sys.argv[1]))
    return "%.3f" % (float(m.group(1)) * unit_ms[m.group(2)])

rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
total = re.search(r"^\s+(\d+) requests in", text, re.M)
if not rps or not total:
    sys.exit("no Requests/sec or request count in " + sys.argv[1])
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors += int(non2xx.group(1)) if non2xx else 0
print("%.2f %s %s %s %d" % (float(rps.group(1)), latency(50), latency(99), total.group(1), errors))
PY
}

# Prints A ÷ B to 2 decimals, or "n/a" when either is missing or B is zero.
ratio() {
    [[ -n ${1:-} && -n ${2:-} ]] || { echo "n/a"; return; }
    python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print("%.2f" % (a / b) if b else "n/a")' "$1" "$2"
}

# CPU time (user + system, all threads) the process PID has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# The median of the numbers in $1 (separated by spaces), to 2 decimals.
median() { python3 -c 'import statistics, sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' $1; }

# One round of wrk (-t1 -c32 for $DURATION, with the script $TMP/mix.lua) against case NAME at
# LISTEN, served by the process ${PID[NAME]}: appends its req/s, p99 (ms) and microseconds of
# that process's CPU a request to RPS[NAME], P99[NAME] and CPU[NAME], which the caller declares
# (declare -A RPS=() P99=() CPU=()). A round with errors stops the benchmark.
wrk_round() {
    local name=$1 listen=$2 round=$3 out before requests
    out="$TMP/$name.$round.txt"
    before=$(cpu_ticks "${PID[$name]}")
    wrk -t1 -c32 -d"$DURATION" --latency -s "$TMP/mix.lua" "http://$listen" >"$out" 2>&1
    read -r rps _ p99 requests errors <<<"$(parse_wrk "$out")"
    [[ $errors == 0 ]] || die "$name round $round: $errors errors"
    cpu=$(python3 -c 'import os, sys; t, r = map(float, sys.argv[1:]); print("%.1f" % (t / os.sysconf("SC_CLK_TCK") * 1e6 / r))' \
        "$(( $(cpu_ticks "${PID[$name]}") - before ))" "$requests")
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
    CPU[$name]+="$cpu "
    log "$name round $round: $rps req/s, p99 $p99 ms, $cpu µs of CPU a request"
}

# --- The cost of one feature (bench/record.sh, bench/access-log.sh): twinpeak without it (case
# OFF) against twinpeak with it (case ON), both with mirroring and state off, in front of one
# bench_backend, in interleaved wrk rounds of $TMP/mix.lua. The caller sets TWINPEAK, BACKEND,
# TMP, ROUNDS, DURATION, PRIMARY, OFF_LISTEN, OFF_ADMIN, ON_LISTEN and ON_ADMIN, and declares
# STARTED=() and, associative, PID=() RPS=() P99=() CPU=().

BACKEND_PID=""

# Stops the proxies with SIGINT (Pingora exits at once) and the backend with SIGTERM (started in
# the background by a script, it ignores SIGINT), and removes $TMP.
feature_cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_process "$pid" INT; done
    [[ -z $BACKEND_PID ]] || stop_process "$BACKEND_PID" TERM
    rm -rf "$TMP"
}

# Cleans up at exit, checks ROUNDS and wrk, and builds the release binaries unless NO_BUILD.
feature_prepare() {
    trap feature_cleanup EXIT
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
    command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
    if [[ -z ${NO_BUILD:-} ]]; then
        log "building release binaries"
        (cd "$ROOT" && cargo build --release -q --bin twinpeak && cargo build --release -q -p twinpeak-proxy --example bench_backend)
    fi
}

# Starts bench_backend on $PRIMARY with ARGS, and waits for it.
feature_backend() {
    "$BACKEND" --listen "$PRIMARY" "$@" >"$TMP/backend.log" 2>&1 &
    BACKEND_PID=$!
    wait_accepting "$PRIMARY"
}

# Starts case OFF on $OFF_LISTEN and case ON, its configuration with SECTION added, on
# $ON_LISTEN, and waits for both.
feature_proxies() {
    local off=$1 on=$2 section=$3 name listen admin extra
    for name in "$off" "$on"; do
        if [[ $name == "$off" ]]; then listen=$OFF_LISTEN admin=$OFF_ADMIN extra=""
        else listen=$ON_LISTEN admin=$ON_ADMIN extra=$section; fi
        cat >"$TMP/$name.yaml" <<YAML
listen: $listen
admin: {listen: $admin}
primary: {url: http://$PRIMARY}
routes: ["/bookings/{id}", "/bookings"]
state: {off: true}
$extra
YAML
        "$TWINPEAK" proxy --config "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
        STARTED+=($!)
        PID[$name]=$!
    done
    wait_accepting "$OFF_LISTEN"
    wait_accepting "$ON_LISTEN"
}

# A warm-up run of 2 s against each case, then ROUNDS rounds of both (wrk_round), the order
# swapped from round to round.
feature_rounds() {
    local off=$1 on=$2 round
    wrk -t1 -c32 -d2s -s "$TMP/mix.lua" "http://$OFF_LISTEN" >/dev/null 2>&1
    wrk -t1 -c32 -d2s -s "$TMP/mix.lua" "http://$ON_LISTEN" >/dev/null 2>&1
    for round in $(seq "$ROUNDS"); do
        if ((round % 2)); then
            wrk_round "$off" "$OFF_LISTEN" "$round"; wrk_round "$on" "$ON_LISTEN" "$round"
        else
            wrk_round "$on" "$ON_LISTEN" "$round"; wrk_round "$off" "$OFF_LISTEN" "$round"
        fi
    done
}
