#!/usr/bin/env bash
# What recording live traffic costs: twinpeak with `record: {dir, percent: 100}` against the same
# configuration without recording, in one run: interleaved rounds, medians of requests per second
# and of p99. Every request is recorded with its headers, its body and the primary's answer:
# bench_backend answers 2 KiB of JSON (so each answer is parsed for redaction), and one request in
# four is a POST with a 1 KiB JSON body.
#
#   ROUNDS    measured runs per case, interleaved (default 5)
#   DURATION  wrk duration per run (default 6s)
#   NO_BUILD  1: use the release binaries already built
#   OUT       results file (default bench/results/<today>-record.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6s}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-record.md}
PRIMARY=127.0.0.1:19201
OFF_LISTEN=127.0.0.1:19280
OFF_ADMIN=127.0.0.1:19290
ON_LISTEN=127.0.0.1:19281
ON_ADMIN=127.0.0.1:19291
TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench-record.XXXXXX")
declare -a STARTED=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

declare -A PID=() RPS=() P99=() CPU=()
feature_prepare
feature_backend --json --body-bytes 2048
feature_proxies record-off record-100 "record: {dir: $TMP/rec, percent: 100}"

# One request in four a POST of 1 KiB of JSON, the others GETs of a booking.
cat >"$TMP/mix.lua" <<'LUA'
local n = 0
local body = '{"partner_id": 7, "slot": "2026-12-24T10:00", "note": "' .. string.rep("x", 960) .. '"}'
request = function()
    n = n + 1
    if n % 4 == 0 then
        return wrk.format("POST", "/bookings", {["Content-Type"] = "application/json"}, body)
    end
    return wrk.format("GET", "/bookings/" .. (n % 1000))
end
LUA

# The proxy's CPU a request includes the records written after a run: the writer catches up
# within a second, measured at the start of the next run of this case.
feature_rounds record-off record-100
on=$(median "${RPS[record-100]}"); off=$(median "${RPS[record-off]}")
on_p99=$(median "${P99[record-100]}"); off_p99=$(median "${P99[record-off]}")
on_cpu=$(median "${CPU[record-100]}"); off_cpu=$(median "${CPU[record-off]}")
counts=$(curl -sS "http://$ON_ADMIN/api/v1/record" | python3 -c '
import json, sys
v = json.load(sys.stdin)
c = v["counts"]
print("%d written, %d dropped (queue), %d dropped (bytes), %d failed; %.1f MB compressed"
      % (c["written"], c["dropped_queue"], c["dropped_bytes"], c["failed"], v["bytes_written"] / 1e6))')

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<MD
# Recording cost — $(date +%F)

Machine: $(nproc) cores, $(uname -sr). twinpeak with mirroring off and state off in front of
\`bench_backend --json --body-bytes 2048\`; \`wrk -t1 -c32 -d$DURATION\`, one request in four a
POST of 1 KiB of JSON, the rest GETs; $ROUNDS interleaved rounds, medians. The recording proxy
keeps every request with its headers, body and the primary's 2 KiB answer (all redacted, JSON
parsed), default limits: $counts over the whole run, warm-up included.

| case | req/s (median) | p99 ms (median) | proxy CPU µs a request (median) |
|---|---|---|---|
| no \`record:\` | $off | $off_p99 | $off_cpu |
| \`record: {percent: 100}\` | $on | $on_p99 | $on_cpu |

Recording ÷ not recording: **×$(ratio "$on" "$off")** requests per second (goal ≥ 0.9), p99
×$(ratio "$on_p99" "$off_p99"), proxy CPU a request ×$(ratio "$on_cpu" "$off_cpu") (the writer
thread's share included).

Rounds (req/s): off ${RPS[record-off]}; on ${RPS[record-100]}.
Rounds (µs of CPU a request): off ${CPU[record-off]}; on ${CPU[record-100]}.
MD
log "wrote $OUT"
cat "$OUT"
