#!/usr/bin/env bash
# What the access log costs: twinpeak with `access_log: {path: FILE}` against the same
# configuration without it, in one run: interleaved rounds, medians of requests per second, of
# p99 and of the proxy's CPU a request. Every request gets a line; the targets carry a query with
# a secret parameter, so every line's query is redacted.
#
#   ROUNDS    measured runs per case, interleaved (default 5)
#   DURATION  wrk duration per run (default 6s)
#   NO_BUILD  1: use the release binaries already built
#   OUT       results file (default bench/results/<today>-access-log.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6s}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-access-log.md}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench-access.XXXXXX")
declare -a STARTED=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

PRIMARY=127.0.0.1:$(free_port)
OFF_LISTEN=127.0.0.1:$(free_port)
OFF_ADMIN=127.0.0.1:$(free_port)
ON_LISTEN=127.0.0.1:$(free_port)
ON_ADMIN=127.0.0.1:$(free_port)

declare -A PID=() RPS=() P99=() CPU=()
feature_prepare
feature_backend
feature_proxies access-off access-on "access_log: {path: $TMP/access.log, max_file_bytes: 64MiB, keep: 2}"

# GETs of a booking, each with a query holding a secret parameter and a user agent.
cat >"$TMP/mix.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", "/bookings/" .. (n % 1000) .. "?page=2&api_key=k" .. n,
        {["User-Agent"] = "wrk/4 bench", ["X-Request-Id"] = "bench-" .. n})
end
LUA

load_before=$(cut -d' ' -f1 /proc/loadavg)
feature_rounds access-off access-on
load_after=$(cut -d' ' -f1 /proc/loadavg)
on=$(median "${RPS[access-on]}"); off=$(median "${RPS[access-off]}")
on_p99=$(median "${P99[access-on]}"); off_p99=$(median "${P99[access-off]}")
on_cpu=$(median "${CPU[access-on]}"); off_cpu=$(median "${CPU[access-off]}")
sleep 1
counts=$(curl -sS "http://$ON_ADMIN/metrics" | python3 -c '
import re, sys
c = dict(re.findall(r"^twinpeak_access_log_total\{result=\"(\w+)\"\} (\d+)", sys.stdin.read(), re.M))
print("%s written, %s dropped (queue), %s dropped (bytes), %s failed"
      % (c.get("written"), c.get("dropped_queue"), c.get("dropped_bytes"), c.get("failed")))')
sample=$(tail -n 1 "$TMP/access.log")

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<MD
# Access log cost — $(date +%F)

Machine: $(nproc) cores, $(uname -sr); load average $load_before before, $load_after after.
twinpeak with mirroring off and state off in front of \`bench_backend\` (64-byte answers);
\`wrk -t1 -c32 -d$DURATION\`, GETs with a query holding a secret parameter, a user agent and a
request id; $ROUNDS interleaved rounds, medians. The logging proxy writes every request's line to
a file (rotated at 64 MiB, 2 kept): $counts over the whole run, warm-up included.

| case | req/s (median) | p99 ms (median) | proxy CPU µs a request (median) |
|---|---|---|---|
| no \`access_log:\` | $off | $off_p99 | $off_cpu |
| \`access_log: {path: FILE}\` | $on | $on_p99 | $on_cpu |

Logging ÷ not logging: **×$(ratio "$on" "$off")** requests per second, p99
×$(ratio "$on_p99" "$off_p99"), proxy CPU a request ×$(ratio "$on_cpu" "$off_cpu") (the writer
thread's share included).

Rounds (req/s): off ${RPS[access-off]}; on ${RPS[access-on]}.
Rounds (µs of CPU a request): off ${CPU[access-off]}; on ${CPU[access-on]}.

A line as written:

\`\`\`json
$sample
\`\`\`
MD
log "wrote $OUT"
cat "$OUT"
