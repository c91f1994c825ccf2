#!/usr/bin/env bash
# Benchmarks the proxy in one run on this machine, over loopback only:
#
#   direct                    wrk -> primary backend (the limit)
#   bare-pingora              wrk -> minimal Pingora pass-through -> primary (the baseline)
#   twinpeak-mirror-off       wrk -> twinpeak (mirror percent 0) -> primary
#   twinpeak-mirror-100-fast  wrk -> twinpeak (mirror 100 %) -> primary, copies to the fast shadow
#   twinpeak-mirror-100-slow  same, copies to a shadow that answers after 200 ms
#   twinpeak-json-diff-off    wrk -> twinpeak (mirror 100 %, diff sample 0 %) -> JSON primary, copies
#                             to the JSON shadow; both answer 2 KiB of JSON with a nonce per answer
#   twinpeak-json-diff-on     same with diff sample 100 %: every pair is parsed and deep-compared
#   nginx-mirror-fast         wrk -> nginx (mirror module) -> primary, copies to the fast shadow
#   nginx-mirror-slow         same, copies to the 200 ms shadow
#
# Each case is measured ROUNDS times, interleaved: round 1 runs every case once, then round 2 runs
# every case again, and so on, so that drift of the machine's speed hits every case alike. The
# figures reported are the medians over the rounds; a second table shows each round's req/s.
#
# Writes the Markdown tables to stdout and to bench/results/YYYY-MM-DD-proxy.md.
#
# Environment:
#   CASES     space-separated subset of the cases above (default: all, in that order)
#   ROUNDS    measured runs per case, interleaved (default 3)
#   DURATION  wrk duration per case and round (default 5s)
#   WARMUP    wrk warm-up duration per case and round, not measured (default 2s)
#   OUT       results file (default bench/results/<today>-proxy.md)
#   NO_BUILD  set to 1 to skip cargo build and use the binaries already in the target dir
#   KEEP_TMP  set to 1 to keep the temporary directory (raw wrk outputs CASE.rROUND.txt, server
#             logs) after a good run
set -euo pipefail

ALL_CASES="direct bare-pingora twinpeak-mirror-off twinpeak-mirror-100-fast twinpeak-mirror-100-slow twinpeak-json-diff-off twinpeak-json-diff-on nginx-mirror-fast nginx-mirror-slow"
CASES=${CASES:-$ALL_CASES}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
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
JSON_PRIMARY=127.0.0.1:19004
JSON_SHADOW=127.0.0.1:19005
TWINPEAK_LISTEN=127.0.0.1:19080
TWINPEAK_ADMIN=127.0.0.1:19901
BARE_LISTEN=127.0.0.1:19081
NGINX_LISTEN=127.0.0.1:19082
# Size of the JSON backends' answers; each carries a nonce, so no primary and shadow answer are
# byte-identical and every compared pair is parsed and diffed field by field.
JSON_BODY_BYTES=2048

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench.XXXXXX")
mkdir -p "$TMP/raw" "$TMP/logs"
declare -A PIDS=()      # name -> pid of every process this script started and has not stopped yet
declare -A LOGS=()      # name -> its log file
declare -A STOP_SIG=()  # pid -> signal that makes it exit at once
ROUND=""                # current round, part of the log file names of the proxies
FAILED=1                # cleared at the very end; the EXIT trap reads it

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Stops one process with its fast-exit signal (see stop_process).
stop_pid() {
    stop_process "$1" "${STOP_SIG[$1]:-TERM}"
    unset "STOP_SIG[$1]"
}

cleanup() {
    local name
    for name in "${!PIDS[@]}"; do stop_pid "${PIDS[$name]}"; done
    if [[ $FAILED == 1 && -n $(find "$TMP/raw" "$TMP/logs" -type f) ]]; then
        log "failed; raw wrk outputs and server logs are in $TMP"
    elif [[ $FAILED == 0 && ${KEEP_TMP:-0} == 1 ]]; then
        log "raw wrk outputs and server logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# Starts a process in the background with its output in $TMP/logs/NAME[.rROUND].log; SIGNAL is
# the one that stops it at once. Pingora takes SIGINT as "exit now" and SIGTERM as "drain
# gracefully"; the backend cannot be sent SIGINT, which background jobs of a script inherit as
# ignored.
start() {
    local name=$1 signal=$2
    shift 2
    [[ -z ${PIDS[$name]:-} ]] || die "$name is already running (pid ${PIDS[$name]})"
    LOGS[$name]="$TMP/logs/$name${ROUND:+.r$ROUND}.log"
    "$@" >"${LOGS[$name]}" 2>&1 &
    PIDS[$name]=$!
    STOP_SIG[$!]=$signal
}

stop() {
    local name=$1
    [[ -n ${PIDS[$name]:-} ]] || return 0
    stop_pid "${PIDS[$name]}"
    unset "PIDS[$name]"
}

# Waits (at most 5 s) until nothing accepts connections on ADDR any more. Pingora and nginx bind
# with SO_REUSEPORT, so a process left over from an earlier run would not make the next start fail:
# it would silently take part of the load. Every proxy start is therefore preceded by this check.
ensure_free() {
    local addr=$1 i
    for i in $(seq 50); do
        accepts "$addr" || return 0
        sleep 0.1
    done
    if command -v ss >/dev/null; then ss -ltnp "sport = :${addr##*:}" >&2 || true; fi
    die "something still listens on $addr (left over from an earlier case?); stop it first"
}

# Waits (at most 5 s) for NAME to accept connections on ADDR; fails with its log if it does not.
wait_for() {
    local name=$1 addr=$2 i
    for i in $(seq 50); do
        accepts "$addr" && return 0
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            log "$name exited before accepting connections on $addr; its log:"
            tail -n 20 "${LOGS[$name]}" >&2
            die "$name did not start"
        fi
        sleep 0.1
    done
    log "$name's log:"
    tail -n 20 "${LOGS[$name]}" >&2
    die "$name does not accept connections on $addr after 5 s"
}

# Requests counted by one wrk output (warm-up outputs are not run with --latency).
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }

# For a JSON case, once its run is over and before its proxy stops: reads twinpeak's /metrics until
# twinpeak_compared_total stops moving (the comparison worker has emptied its queue; at most 5 s),
# then /api/v1/diffs, keeps both (RAW.metrics.txt, RAW.diffs.json) and writes to RAW.pairs.json the
# pairs by result, summed over routes, and what the diffs API counted.
fetch_pairs() {
    local raw=$1 last="" now i
    for i in $(seq 25); do
        curl -sSf "http://$TWINPEAK_ADMIN/metrics" >"$raw.metrics.txt" \
            || die "cannot read http://$TWINPEAK_ADMIN/metrics"
        now=$(awk '/^twinpeak_compared_total[{ ]/ { n += $NF } END { print n + 0 }' "$raw.metrics.txt")
        [[ $now != "$last" ]] || break
        last=$now
        sleep 0.2
    done
    curl -sSf "http://$TWINPEAK_ADMIN/api/v1/diffs" >"$raw.diffs.json" \
        || die "cannot read http://$TWINPEAK_ADMIN/api/v1/diffs"
    python3 - "$raw.metrics.txt" "$raw.diffs.json" >"$raw.pairs.json" <<'PY'
import json, re, sys

pairs = {"identical": 0, "different": 0, "noise": 0, "dropped": 0}
for line in open(sys.argv[1]):
    m = re.match(r"twinpeak_compared_total\{(.*)\}\s+(\S+)\s*$", line)
    if m:
        result = re.search(r'result="([^"]*)"', m.group(1)).group(1)
        pairs[result] = pairs.get(result, 0) + int(float(m.group(2)))
api = {"compared": 0, "different": 0, "truncated": 0}
fields = {}
for route in json.load(open(sys.argv[2])).get("routes", {}).values():
    for k in api:
        api[k] += route.get(k, 0)
    for f in route.get("fields", []):
        key = "`%s` %s" % (f["path"], f["kind"])
        fields[key] = fields.get(key, 0) + f["count"]
json.dump({"pairs": pairs, "api": api, "fields": fields}, sys.stdout)
PY
}

# Prints the median of its arguments (the mean of the middle two for an even count).
median() {
    python3 -c 'import statistics, sys; print("%.3f" % statistics.median(map(float, sys.argv[1:])))' "$@"
}

# ---- checks and build ------------------------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
cases=""
for c in $CASES; do
    [[ " $ALL_CASES " == *" $c "* ]] || die "unknown case '$c' (known: $ALL_CASES)"
    [[ " $cases " == *" $c "* ]] || cases+=" $c"   # each case runs once per round
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

for addr in $PRIMARY $SHADOW_FAST $SHADOW_SLOW $JSON_PRIMARY $JSON_SHADOW $TWINPEAK_LISTEN $TWINPEAK_ADMIN $BARE_LISTEN $NGINX_LISTEN; do
    if accepts "$addr"; then die "something already listens on $addr; stop it first"; fi
done

# ---- backends (up for the whole run) ---------------------------------------------------------

start primary TERM "$BACKEND" --listen "$PRIMARY"
start shadow-fast TERM "$BACKEND" --listen "$SHADOW_FAST"
start shadow-slow TERM "$BACKEND" --listen "$SHADOW_SLOW" --delay-ms 200
start json-primary TERM "$BACKEND" --listen "$JSON_PRIMARY" --json --body-bytes "$JSON_BODY_BYTES" --nonce
start json-shadow TERM "$BACKEND" --listen "$JSON_SHADOW" --json --body-bytes "$JSON_BODY_BYTES" --nonce
wait_for primary "$PRIMARY"
wait_for shadow-fast "$SHADOW_FAST"
wait_for shadow-slow "$SHADOW_SLOW"
wait_for json-primary "$JSON_PRIMARY"
wait_for json-shadow "$JSON_SHADOW"

# ---- proxies, started and stopped for every case in every round ------------------------------

# Writes the twinpeak config for CASE (mirror PERCENT from PRIMARY to SHADOW, and a DIFF section
# if given) and prints its path.
twinpeak_config() {
    local percent=$2 primary=$3 shadow=$4 diff=${5:-} file="$TMP/$1.yaml"
    cat >"$file" <<EOF
listen: $TWINPEAK_LISTEN
threads: 2
admin: { listen: $TWINPEAK_ADMIN }
primary: { url: http://$primary }
shadow: { url: http://$shadow, timeout: 2s, max_in_flight: 256 }
mirror: { percent: $percent }
${diff:+diff: $diff}
EOF
    echo "$file"
}

start_nginx() {
    local shadow=$1 dir="$TMP/nginx-${1##*:}.r$ROUND"
    mkdir -p "$dir"
    sed -e "s|@PREFIX@|$dir|g" -e "s|@LISTEN@|$NGINX_LISTEN|g" \
        -e "s|@PRIMARY@|$PRIMARY|g" -e "s|@SHADOW@|$shadow|g" \
        "$ROOT/bench/nginx/mirror.conf.template" >"$dir/nginx.conf"
    # -e (nginx >= 1.19.5) keeps even the start-up error log out of /var/log/nginx.
    # SIGTERM is nginx's fast shutdown.
    # The master waits for its workers on SIGTERM, so once it is gone the listening sockets are too.
    start nginx TERM nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
    wait_for nginx "$NGINX_LISTEN"
}

# Starts what CASE needs; sets TARGET (where wrk goes), SERVER (process to stop afterwards, if any),
# SHADOW (the shadow backend whose request count shows the mirror worked, if any), MIRRORING
# (1 if that shadow should receive copies, 0 if it should receive none) and COMPARING (for the
# JSON cases: 1 if pairs should be deep-compared, 0 if none should be; empty for the others).
start_case() {
    TARGET=$PRIMARY SERVER="" SHADOW="" MIRRORING=0 COMPARING=""
    case $1 in
    direct) ;;
    bare-pingora)
        ensure_free "$BARE_LISTEN"
        start bare INT "$BARE" --listen "$BARE_LISTEN" --upstream "$PRIMARY" --threads 2
        wait_for bare "$BARE_LISTEN"
        TARGET=$BARE_LISTEN SERVER=bare
        ;;
    twinpeak-*)
        local percent=100 primary=$PRIMARY shadow=$SHADOW_FAST diff=""
        [[ $1 == twinpeak-mirror-off ]] && percent=0
        [[ $1 == *-slow ]] && shadow=$SHADOW_SLOW
        if [[ $1 == twinpeak-json-diff-* ]]; then
            primary=$JSON_PRIMARY shadow=$JSON_SHADOW COMPARING=0
            [[ $1 == *-on ]] && COMPARING=1
            diff="{ sample_percent: $((COMPARING * 100)) }"
        fi
        ensure_free "$TWINPEAK_LISTEN"
        ensure_free "$TWINPEAK_ADMIN"
        start twinpeak INT "$TWINPEAK" proxy --config "$(twinpeak_config "$1" "$percent" "$primary" "$shadow" "$diff")"
        wait_for twinpeak "$TWINPEAK_LISTEN"
        wait_for twinpeak "$TWINPEAK_ADMIN"
        TARGET=$TWINPEAK_LISTEN SERVER=twinpeak SHADOW=$shadow MIRRORING=$((percent > 0))
        ;;
    nginx-mirror-fast | nginx-mirror-slow)
        local shadow=$SHADOW_FAST
        [[ $1 == *-slow ]] && shadow=$SHADOW_SLOW
        ensure_free "$NGINX_LISTEN"
        start_nginx "$shadow"
        TARGET=$NGINX_LISTEN SERVER=nginx SHADOW=$shadow MIRRORING=1
        ;;
    esac
}

WRK_ARGS=(-t"$WRK_THREADS" -c"$WRK_CONNECTIONS")

# Per case and round, keyed "CASE,ROUND": wrk's figures, and for cases with a shadow the copies it
# received and the client requests completed over warm-up and measured run.
declare -A RPS_R=() P50_R=() P99_R=() REQS_R=() ERRS_R=() COPIES_R=() SENT_R=()
declare -A SHOULD_MIRROR=()  # case -> MIRRORING, for cases with a shadow
declare -A SHOULD_COMPARE=() # case -> COMPARING, for the JSON cases

# Runs one case once: starts its proxy, warms up, measures, counts the shadow's copies, stops it.
run_case() {
    local c=$1 key="$1,$ROUND" raw="$TMP/raw/$1.r$ROUND" url before=""
    start_case "$c"
    url="http://$TARGET/bookings/42"
    if [[ -n $SHADOW ]]; then before=$(served "$SHADOW"); fi
    log "round $ROUND/$ROUNDS, $c: warm-up $WARMUP, then wrk ${WRK_ARGS[*]} -d$DURATION --latency $url"
    wrk "${WRK_ARGS[@]}" -d"$WARMUP" "$url" >"$raw.warmup.txt" 2>&1 \
        || die "$c: wrk warm-up failed, see $raw.warmup.txt"
    wrk "${WRK_ARGS[@]}" -d"$DURATION" --latency "$url" >"$raw.txt" 2>&1 \
        || die "$c: wrk failed, see $raw.txt"
    read -r "RPS_R[$key]" "P50_R[$key]" "P99_R[$key]" "REQS_R[$key]" "ERRS_R[$key]" < <(parse_wrk "$raw.txt") \
        || die "$c: cannot parse $raw.txt"
    [[ ${REQS_R[$key]} -gt 0 ]] || die "$c: wrk completed no request, see $raw.txt"
    if [[ -n $SHADOW ]]; then
        # Give copies still in flight (the slow shadow takes 200 ms) a moment to land.
        sleep 0.5
        SENT_R[$key]=$(($(wrk_requests "$raw.warmup.txt") + ${REQS_R[$key]}))
        COPIES_R[$key]=$(($(served "$SHADOW") - before - 1))
        SHOULD_MIRROR[$c]=$MIRRORING
        if [[ $MIRRORING == 1 && ${COPIES_R[$key]} -le 0 ]]; then
            log "warning: $c: the shadow received no copy in round $ROUND"
        elif [[ $MIRRORING == 0 && ${COPIES_R[$key]} -gt 0 ]]; then
            log "warning: $c: mirroring is off, yet the shadow received ${COPIES_R[$key]} copies in round $ROUND"
        fi
    fi
    if [[ -n $COMPARING ]]; then
        fetch_pairs "$raw"
        SHOULD_COMPARE[$c]=$COMPARING
    fi
    log "round $ROUND/$ROUNDS, $c: ${RPS_R[$key]} req/s, p50 ${P50_R[$key]} ms, p99 ${P99_R[$key]} ms, ${ERRS_R[$key]} errors"
    if [[ -n $SERVER ]]; then stop "$SERVER"; fi
}

for ROUND in $(seq "$ROUNDS"); do
    for c in $CASES; do run_case "$c"; done
done

# Medians over the rounds (each figure on its own, so p99 need not come from the median-req/s
# round), errors summed, and for cases with a shadow the copies over all rounds and per round,
# with the rounds that contradict the case (no copy while mirroring, copies while not) named.
declare -A RPS=() P50=() P99=() ERRS=() MIRRORED=() COMPARED=()
for c in $CASES; do
    rps=() p50=() p99=() copies=() sent=()
    ERRS[$c]=0
    for r in $(seq "$ROUNDS"); do
        rps+=("${RPS_R[$c,$r]}") p50+=("${P50_R[$c,$r]}") p99+=("${P99_R[$c,$r]}")
        ERRS[$c]=$((${ERRS[$c]} + ${ERRS_R[$c,$r]}))
        if [[ -n ${COPIES_R[$c,$r]:-} ]]; then copies+=("${COPIES_R[$c,$r]}") sent+=("${SENT_R[$c,$r]}"); fi
    done
    RPS[$c]=$(median "${rps[@]}")
    P50[$c]=$(median "${p50[@]}")
    P99[$c]=$(median "${p99[@]}")
    if [[ ${#copies[@]} -gt 0 ]]; then
        MIRRORED[$c]=$(python3 -c 'import sys
mirroring, n = sys.argv[1] == "1", (len(sys.argv) - 2) // 2
copies, sent = list(map(int, sys.argv[2:n + 2])), list(map(int, sys.argv[n + 2:]))
line = "%d copies for %d completed client requests (%.1f %%)" % (
    sum(copies), sum(sent), 100.0 * sum(copies) / sum(sent))
if n > 1:
    line += "; per round " + " / ".join("%.1f" % (100.0 * c / s) for c, s in zip(copies, sent)) + " %"
wrong = [str(r + 1) for r, c in enumerate(copies) if (c <= 0 if mirroring else c > 0)]
if wrong:
    line += "; **%s in round %s**" % ("no copy" if mirroring else "copies although mirroring is off",
                                      ", ".join(wrong))
print(line)' "${SHOULD_MIRROR[$c]}" "${copies[@]}" "${sent[@]}")
    fi
    if [[ -n ${SHOULD_COMPARE[$c]:-} ]]; then
        COMPARED[$c]=$(python3 - "${SHOULD_COMPARE[$c]}" "$TMP/raw/$c" "$ROUNDS" "${sent[@]}" <<'PY'
import json, sys

comparing, prefix, rounds = sys.argv[1] == "1", sys.argv[2], int(sys.argv[3])
sent = sum(map(int, sys.argv[4:]))
runs = [json.load(open("%s.r%d.pairs.json" % (prefix, r + 1)))["pairs"] for r in range(rounds)]
api = [json.load(open("%s.r%d.pairs.json" % (prefix, r + 1))) for r in range(rounds)]

def compared(run):
    return sum(n for result, n in run.items() if result != "dropped")

def share(run):
    seen = compared(run) + run["dropped"]
    return "%.1f" % (100.0 * compared(run) / seen) if seen else "n/a"

totals = {}
for run in runs:
    for result, n in run.items():
        totals[result] = totals.get(result, 0) + n
line = "%d pairs compared (%d identical, %d different, %d noise) and %d dropped" % (
    compared(totals), totals["identical"], totals["different"], totals["noise"], totals["dropped"])
line += " by `twinpeak_compared_total`, for %d completed client requests" % sent
if compared(totals) + totals["dropped"]:
    line += "; %s %% of pairs compared" % share(totals)
    if rounds > 1:
        line += " (per round " + " / ".join(map(share, runs)) + " %)"
api_totals = {k: sum(a["api"][k] for a in api) for k in ("compared", "different", "truncated")}
line += "; `/api/v1/diffs`: %(compared)d compared, %(different)d different, %(truncated)d with truncated bodies" % api_totals
fields = {}
for a in api:
    for key, n in a["fields"].items():
        fields[key] = fields.get(key, 0) + n
top = sorted(fields.items(), key=lambda kv: -kv[1])
if top:
    line += ", fields " + ", ".join("%s in %d" % kv for kv in top[:3])
    if len(top) > 3:
        line += " and %d more" % (len(top) - 3)

flags = []
wrong = [str(r + 1) for r, run in enumerate(runs) if (compared(run) <= 0 if comparing else compared(run) > 0)]
if wrong:
    flags.append("%s in round %s" % ("no pair compared" if comparing else "pairs compared although sampling is 0 %",
                                     ", ".join(wrong)))
if comparing and totals["identical"]:
    flags.append("%d identical pairs, although every answer carries its own nonce" % totals["identical"])
if api_totals["truncated"]:
    flags.append("%d pairs whose bodies were cut by the capture cap and not compared" % api_totals["truncated"])
if flags:
    line += "; **" + "; ".join(flags) + "**"
print(line)
PY
)
    fi
done

# ---- report -----------------------------------------------------------------------------------

# Prints "met" or "missed" for VALUE OP LIMIT, or "not measured" when VALUE is n/a.
verdict() {
    [[ $1 != n/a ]] || { echo "not measured"; return; }
    python3 -c 'import sys, operator as o; v, op, t = sys.argv[1:]
print("met" if {">=": o.ge, "<=": o.le, ">": o.gt}[op](float(v), float(t)) else "missed")' "$1" "$2" "$3"
}

# Prints (highest - lowest) ÷ median of CASE's per-round req/s, as a percentage.
spread() {
    local c=$1 r values=()
    for r in $(seq "$ROUNDS"); do values+=("${RPS_R[$c,$r]}"); done
    python3 -c 'import statistics, sys; v = list(map(float, sys.argv[1:])); m = statistics.median(v)
print("%.1f %%" % (100.0 * (max(v) - min(v)) / m) if m else "n/a")' "${values[@]}"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
report() {
    echo "# Proxy benchmark, $(date +%F)"
    echo
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
    echo "- load: \`wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$DURATION --latency\` after a $WARMUP warm-up, GET over loopback"
    echo "- method: $ROUNDS interleaved rounds (each round runs every case once, in table order);"
    echo "  req/s, p50 and p99 are each the median over the rounds, and the ratios and targets use those medians"
    echo "- backends: bench_backend, 64-byte 200 answers; slow shadow answers after 200 ms; JSON primary and"
    echo "  shadow answer $JSON_BODY_BYTES bytes of JSON with a nonce unique to each answer (\`--json --nonce\`)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(rustc --version 2>/dev/null || echo rustc unknown), commit $commit"
    echo "- wrk and every server share the same cores: compare ratios, not absolute figures"
    echo
    echo "| case | median req/s | median p50 ms | median p99 ms | req/s vs direct | req/s vs bare Pingora |"
    echo "|---|---:|---:|---:|---:|---:|"
    local c
    for c in $CASES; do
        printf '| %s | %.0f | %.2f | %.2f | %s | %s |\n' "$c" "${RPS[$c]}" "${P50[$c]}" "${P99[$c]}" \
            "$(ratio "${RPS[$c]}" "${RPS[direct]:-}")" "$(ratio "${RPS[$c]}" "${RPS[bare-pingora]:-}")"
    done

    # Each round's req/s, and the spread (highest - lowest) ÷ median, to show how much runs vary.
    local r header="| case |" rule="|---|" row
    for r in $(seq "$ROUNDS"); do header+=" round $r |" rule+="---:|"; done
    echo
    echo "## req/s per round"
    echo
    echo "$header spread |"
    echo "$rule---:|"
    for c in $CASES; do
        row="| $c |"
        for r in $(seq "$ROUNDS"); do row+=" $(printf '%.0f' "${RPS_R[$c,$r]}") |"; done
        echo "$row $(spread "$c") |"
    done

    local notes=""
    for c in $CASES; do
        [[ ${ERRS[$c]} == 0 ]] || notes+="- $c: ${ERRS[$c]} socket errors or non-2xx answers over the $ROUNDS measured runs"$'\n'
        [[ -z ${MIRRORED[$c]:-} ]] || notes+="- $c: the shadow received ${MIRRORED[$c]}"$'\n'
        [[ -z ${COMPARED[$c]:-} ]] || notes+="- $c: ${COMPARED[$c]}"$'\n'
    done
    if [[ -n $notes ]]; then
        echo
        echo "## Notes"
        echo
        printf '%s' "$notes"
        if [[ -n ${MIRRORED[*]:-} ]]; then
            echo
            echo "Shadow copies are counted by the shadow backend over warm-up and measured run of every"
            echo "round; requests still in flight when wrk stops can be copied without counting as"
            echo "completed, so a share slightly above 100 % is expected."
        fi
        if [[ -n ${COMPARED[*]:-} ]]; then
            echo
            echo "Pairs are counted by the proxy over warm-up and measured run of every round, read from its"
            echo "admin listener once the counts stop moving. A dropped pair was mirrored but not compared:"
            echo "the comparison queue (4096 pairs by default) was full, or its primary answer never finished."
        fi
    fi

    local off_bare slow_off fast_nginx diff_on_off
    off_bare=$(ratio "${RPS[twinpeak-mirror-off]:-}" "${RPS[bare-pingora]:-}")
    slow_off=$(ratio "${P99[twinpeak-mirror-100-slow]:-}" "${P99[twinpeak-mirror-off]:-}")
    fast_nginx=$(ratio "${RPS[twinpeak-mirror-100-fast]:-}" "${RPS[nginx-mirror-fast]:-}")
    diff_on_off=$(ratio "${RPS[twinpeak-json-diff-on]:-}" "${RPS[twinpeak-json-diff-off]:-}")
    echo
    echo "## Targets"
    echo
    echo "| measure | value | target | |"
    echo "|---|---:|---:|---|"
    echo "| mirror-off req/s ÷ bare-pingora req/s | $off_bare | ≥ 0.95 | $(verdict "$off_bare" ">=" 0.95) |"
    echo "| mirror-100-slow p99 ÷ mirror-off p99 | $slow_off | ≤ 1.2 | $(verdict "$slow_off" "<=" 1.2) |"
    echo "| mirror-100-fast req/s ÷ nginx-mirror-fast req/s | $fast_nginx | > 1 | $(verdict "$fast_nginx" ">" 1) |"
    echo "| json-diff-on req/s ÷ json-diff-off req/s | $diff_on_off | ≥ 0.8 | $(verdict "$diff_on_off" ">=" 0.8) |"
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
log "written to $OUT"
FAILED=0
