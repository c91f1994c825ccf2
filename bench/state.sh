#!/usr/bin/env bash
# What keeping state costs: twinpeak with mirroring off and the default SQLite state store,
# against the same configuration with `state: {off: true}`, in one run: interleaved rounds,
# medians of requests per second and of p99. The state runs flush every second (five times the
# default rate) so that every measured run spans several flushes, each snapshotting every
# histogram while requests record into them. 50 routes, each with its own histograms.
#
#   ROUNDS    measured runs per case, interleaved (default 5)
#   DURATION  wrk duration per run (default 6s)
#   NO_BUILD  1: use the release binaries already built
#   OUT       results file (default bench/results/<today>-state.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6s}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-state.md}
PRIMARY=127.0.0.1:19101
TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench-state.XXXXXX")
declare -a STARTED=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_process "$pid" INT; done
    rm -rf "$TMP"
}
trap cleanup EXIT

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
if [[ -z ${NO_BUILD:-} ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -q --bin twinpeak && cargo build --release -q -p twinpeak-proxy --example bench_backend)
fi

wait_for() {
    local i
    for i in $(seq 100); do accepts "$1" && return 0; sleep 0.1; done
    die "nothing listens on $1"
}

"$BACKEND" --listen "$PRIMARY" >"$TMP/backend.log" 2>&1 &
STARTED+=($!)
wait_for "$PRIMARY"

routes=$(python3 -c 'print(", ".join(f"\"/r{i}/{{id}}\"" for i in range(49)) + ", \"/bookings/{id}\"")')
# config NAME LISTEN ADMIN STATE: a twinpeak configuration with mirroring off.
config() {
    cat >"$TMP/$1.yaml" <<YAML
listen: $2
admin: {listen: $3}
primary: {url: http://$PRIMARY}
mirror: {percent: 0}
routes: [$routes]
state: $4
YAML
}
config state-on 127.0.0.1:19180 127.0.0.1:19190 "{flush_interval: 1s}"
config state-off 127.0.0.1:19181 127.0.0.1:19191 "{off: true}"
for name in state-on state-off; do
    "$TWINPEAK" proxy --config "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
    STARTED+=($!)
done
wait_for 127.0.0.1:19180
wait_for 127.0.0.1:19181
[[ -f $TMP/state-on.state.sqlite3 ]] || die "the state-on proxy keeps no SQLite file"

declare -A RPS=() P99=()
run() {
    local name=$1 listen=$2 round=$3 out
    out="$TMP/$name.$round.txt"
    wrk -t2 -c32 -d"$DURATION" --latency "http://$listen/bookings/1" >"$out" 2>&1
    read -r rps _ p99 _ errors <<<"$(parse_wrk "$out")"
    [[ $errors == 0 ]] || die "$name round $round: $errors errors"
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
    log "$name round $round: $rps req/s, p99 $p99 ms"
}
wrk -t2 -c32 -d2s http://127.0.0.1:19180/bookings/1 >/dev/null 2>&1
wrk -t2 -c32 -d2s http://127.0.0.1:19181/bookings/1 >/dev/null 2>&1
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then
        run state-off 127.0.0.1:19181 "$round"; run state-on 127.0.0.1:19180 "$round"
    else
        run state-on 127.0.0.1:19180 "$round"; run state-off 127.0.0.1:19181 "$round"
    fi
done
median() { python3 -c 'import statistics, sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' $1; }
on=$(median "${RPS[state-on]}"); off=$(median "${RPS[state-off]}")
on_p99=$(median "${P99[state-on]}"); off_p99=$(median "${P99[state-off]}")
flushes=$(curl -s http://127.0.0.1:19190/metrics | awk '/^twinpeak_state_writes_total\{outcome="ok"\}/ {print $2}')
rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from twinpeak_windows").fetchone()[0])' "$TMP/state-on.state.sqlite3")

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<MD
# State store cost — $(date +%F)

Machine: $(nproc) cores, $(uname -sr). twinpeak with mirroring off, 50 routes, in front of
\`bench_backend\`; \`wrk -t2 -c32 -d$DURATION\`, $ROUNDS interleaved rounds, medians. The
state-on proxy keeps the default SQLite store and flushes every second ($flushes flushes written
during the run, $rows window rows in the file at the end), so every measured run spans several
flushes.

| case | req/s (median) | p99 ms (median) |
|---|---|---|
| state off (\`state: {off: true}\`) | $off | $off_p99 |
| state on (SQLite, flush every 1 s) | $on | $on_p99 |

State on ÷ state off: **×$(ratio "$on" "$off")** requests per second (goal ≥ 0.97), p99
×$(ratio "$on_p99" "$off_p99").

Rounds (req/s): off ${RPS[state-off]}; on ${RPS[state-on]}.
MD
log "wrote $OUT"
cat "$OUT"
