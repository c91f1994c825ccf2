#!/usr/bin/env bash
# Benchmarks the front door in one run on this machine, over loopback only: twinpeak terminating
# TLS against nginx terminating TLS with the same certificate (ECDSA P-256) and the same backend,
# and HTTP/2 against HTTP/1.1 through twinpeak. Mirroring is off: this measures the listener.
#
#   twinpeak-plain-h1   wrk -> twinpeak (plaintext HTTP/1.1) -> backend
#   twinpeak-tls-h1     wrk -> twinpeak (TLS, HTTP/1.1) -> backend
#   nginx-plain-h1      wrk -> nginx (plaintext HTTP/1.1) -> backend
#   nginx-tls-h1        wrk -> nginx (TLS, HTTP/1.1) -> backend
#   twinpeak-h1         h2load --h1 -> twinpeak (plaintext HTTP/1.1)    } the same client and the
#   twinpeak-h2c        h2load -> twinpeak (h2c, prior knowledge)       } same concurrency (32
#   twinpeak-tls-h2     h2load -> twinpeak (TLS, ALPN h2)               } connections, one stream
#   nginx-tls-h2        h2load -> nginx (TLS, ALPN h2)                  } each) for all four
#
# The h2load cases need h2load (Debian package nghttp2-client) and are left out without it.
# Each case runs ROUNDS times, interleaved, so drift of the machine hits every case alike; the
# figures are the medians. Writes Markdown to stdout and to bench/results/YYYY-MM-DD-tls.md.
#
# Environment: ROUNDS (default 3), DURATION (seconds per run, default 5), OUT (results file),
# NO_BUILD=1 to use the binaries already built.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=32
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-tls.md}
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend

PRIMARY=127.0.0.1:19101
TP_PLAIN=127.0.0.1:19180
TP_H2C=127.0.0.1:19181
TP_TLS=127.0.0.1:19183
TP_ADMIN=127.0.0.1:19191
NGINX_TLS=127.0.0.1:19182
NGINX_PLAIN=127.0.0.1:19184

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-bench-tls.XXXXXX")
# pid -> the signal that stops it at once: SIGINT for twinpeak (Pingora's "exit now"), SIGTERM
# for the backend and nginx (background jobs of a script ignore SIGINT).
declare -A PIDS=()
cleanup() {
    local pid
    for pid in "${!PIDS[@]}"; do stop_process "$pid" "${PIDS[$pid]}"; done
    rm -rf "$TMP"
}
trap cleanup EXIT

command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
command -v nginx >/dev/null || die "nginx not found (apt-get install -y nginx)"
H2LOAD=$(command -v h2load || true)
[[ -n $H2LOAD ]] || log "h2load not found (apt-get install -y nghttp2-client): HTTP/2 cases left out"

if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p twinpeak-proxy --example bench_backend \
        && cargo build --release -p twinpeak --bin twinpeak) || die "cargo build failed"
fi

for addr in $PRIMARY $TP_PLAIN $TP_H2C $TP_TLS $TP_ADMIN $NGINX_TLS $NGINX_PLAIN; do
    ! accepts "$addr" || die "something already listens on $addr"
done
wait_accepts() {
    local i
    for i in $(seq 50); do accepts "$1" && return 0; sleep 0.1; done
    die "nothing accepts connections on $1 after 5 s"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 || die "openssl req failed"

"$BACKEND" --listen "$PRIMARY" >"$TMP/backend.log" 2>&1 &
PIDS[$!]=TERM
cat >"$TMP/twinpeak.yaml" <<YAML
listen:
  - $TP_PLAIN
  - {address: $TP_H2C, http2: true}
  - {address: $TP_TLS, tls: {cert: $TMP/cert.pem, key: $TMP/key.pem}}
threads: 2
admin: {listen: $TP_ADMIN}
primary: {url: http://$PRIMARY}
state: {off: true}
YAML
"$TWINPEAK" proxy --config "$TMP/twinpeak.yaml" >"$TMP/twinpeak.log" 2>&1 &
PIDS[$!]=INT
mkdir -p "$TMP/nginx"
sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@LISTEN@|$NGINX_TLS|g" -e "s|@PLAIN@|$NGINX_PLAIN|g" \
    -e "s|@PRIMARY@|$PRIMARY|g" \
    -e "s|@CERT@|$TMP/cert.pem|g" -e "s|@KEY@|$TMP/key.pem|g" \
    "$ROOT/bench/nginx/tls.conf.template" >"$TMP/nginx/nginx.conf"
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
PIDS[$!]=TERM
for addr in $PRIMARY $TP_PLAIN $TP_H2C $TP_TLS $NGINX_TLS $NGINX_PLAIN; do wait_accepts "$addr"; done

# One measured run of CASE: prints "req/s p50_ms p99_ms errors" (latencies "n/a" from h2load).
measure() {
    local raw="$TMP/$1.r$2.txt"
    case $1 in
    twinpeak-plain-h1) wrk_run "http://$TP_PLAIN/" "$raw" ;;
    twinpeak-tls-h1) wrk_run "https://$TP_TLS/" "$raw" ;;
    nginx-plain-h1) wrk_run "http://$NGINX_PLAIN/" "$raw" ;;
    nginx-tls-h1) wrk_run "https://$NGINX_TLS/" "$raw" ;;
    twinpeak-h1) h2load_run "$raw" --h1 "http://$TP_PLAIN/" ;;
    twinpeak-h2c) h2load_run "$raw" "http://$TP_H2C/" ;;
    twinpeak-tls-h2) h2load_run "$raw" "https://$TP_TLS/" ;;
    nginx-tls-h2) h2load_run "$raw" "https://$NGINX_TLS/" ;;
    esac
}
wrk_run() {
    wrk -t2 -c$CONNECTIONS -d"${DURATION}s" --latency "$1" >"$2" 2>&1 || die "wrk failed: $(tail -1 "$2")"
    parse_wrk "$2" | awk '{ print $1, $2, $3, $5 }'
}
h2load_run() {
    local raw=$1
    shift
    "$H2LOAD" -t2 -c$CONNECTIONS -m1 -D"$DURATION" "$@" >"$raw" 2>&1 || die "h2load failed: $(tail -1 "$raw")"
    python3 - "$raw" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
if not rps or not done:
    sys.exit("no req/s or request counts in " + sys.argv[1])
print("%.2f n/a n/a %d" % (float(rps.group(1)), int(done.group(2)) + int(done.group(3))))
PY
}

CASES="twinpeak-plain-h1 twinpeak-tls-h1 nginx-plain-h1 nginx-tls-h1"
[[ -z $H2LOAD ]] || CASES="$CASES twinpeak-h1 twinpeak-h2c twinpeak-tls-h2 nginx-tls-h2"
RESULTS=$TMP/results.tsv
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for case in $CASES; do
        log "round $round: $case"
        echo "$case $round $(measure "$case" "$round")" >>"$RESULTS"
    done
done

REV=$(git -C "$ROOT" rev-parse --short HEAD)
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$REV" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY' | tee "$OUT"
import statistics, sys
from collections import defaultdict
path, rounds, duration, rev, cores, load = sys.argv[1:]
runs = defaultdict(list)
for line in open(path):
    case, _round, rps, p50, p99, errors = line.split()
    runs[case].append((float(rps), p50, p99, int(errors)))
def med(case, i):
    values = [r[i] for r in runs[case] if r[i] != "n/a"]
    return statistics.median(map(float, values)) if values else None
def fmt(v, digits):
    return "n/a" if v is None else f"{v:,.{digits}f}"
print(f"# TLS and HTTP/2 at the front door ({rev}, {cores} cores, load average {load} at the end)\n")
print(f"{rounds} interleaved rounds of {duration} s per case, medians; {32} connections; mirroring off;")
print("the same ECDSA P-256 certificate and the same backend (bench_backend) for twinpeak and nginx.\n")
print("| case | req/s | p50 ms | p99 ms | errors | rounds (req/s) |")
print("|---|---:|---:|---:|---:|---|")
for case, rs in runs.items():
    print(f"| {case} | {fmt(med(case, 0), 0)} | {fmt(med(case, 1), 3)} | {fmt(med(case, 2), 3)} | "
          f"{sum(r[3] for r in rs)} | {', '.join(f'{r[0]:,.0f}' for r in rs)} |")
def ratio(a, b):
    x, y = med(a, 0), med(b, 0)
    return f"{x / y:.2f}" if x and y else "n/a"
print()
print(f"- twinpeak TLS ÷ nginx TLS, HTTP/1.1 (wrk): **{ratio('twinpeak-tls-h1', 'nginx-tls-h1')}**")
print(f"- twinpeak plaintext ÷ nginx plaintext, HTTP/1.1 (wrk): {ratio('twinpeak-plain-h1', 'nginx-plain-h1')}")
print(f"- TLS ÷ plaintext, HTTP/1.1 (wrk): twinpeak {ratio('twinpeak-tls-h1', 'twinpeak-plain-h1')}, "
      f"nginx {ratio('nginx-tls-h1', 'nginx-plain-h1')}")
if "twinpeak-h2c" in runs:
    print(f"- twinpeak TLS ÷ nginx TLS, HTTP/2 (h2load): **{ratio('twinpeak-tls-h2', 'nginx-tls-h2')}**")
    print(f"- twinpeak h2c ÷ twinpeak HTTP/1.1 (h2load, one stream per connection): **{ratio('twinpeak-h2c', 'twinpeak-h1')}**")
    print(f"- twinpeak TLS h2 ÷ twinpeak h2c (h2load): {ratio('twinpeak-tls-h2', 'twinpeak-h2c')}")
PY
