#!/usr/bin/env bash
# A long run the way a shadow rehearsal runs for weeks, compressed: the proxy at half its
# capacity (twinpeak load, open loop) for SOAK_MINUTES, mirroring 30% to a shadow that answers
# after 200 ms, comparing every pair and recording every request, with its resident memory and
# open file descriptors sampled every 10 s. Over loopback only.
#
# Writes bench/results/<today>-soak.md (the samples, a minute apart, and the growth after the
# warm-up) and bench/results/<today>-soak.svg (RSS and descriptors over time).
#
# Environment: SOAK_MINUTES (default 30), WARMUP_MINUTES (default 5: growth is measured from the
# end of the warm-up), OUT (default bench/results/<today>-soak.md), NO_BUILD=1.
set -euo pipefail

SOAK_MINUTES=${SOAK_MINUTES:-30}
WARMUP_MINUTES=${WARMUP_MINUTES:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-soak.md}
SVG=${OUT%.md}.svg
TWINPEAK=$TARGET_DIR/release/twinpeak
BACKEND=$TARGET_DIR/release/examples/bench_backend
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinpeak-soak.XXXXXX")
declare -a STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_process "$pid" TERM; done
    [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$TMP"
}
trap cleanup EXIT


if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --bin twinpeak && cargo build --release -p twinpeak-proxy --example bench_backend) \
        || die "release build failed"
fi

PRIMARY=127.0.0.1:$(free_port)
SHADOW=127.0.0.1:$(free_port)
LISTEN=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
"$BACKEND" --listen "$PRIMARY" --json --body-bytes 1024 >"$TMP/primary.log" 2>&1 & STARTED+=($!)
"$BACKEND" --listen "$SHADOW" --json --body-bytes 1024 --delay-ms 200 >"$TMP/shadow.log" 2>&1 & STARTED+=($!)
wait_accepting "$PRIMARY"; wait_accepting "$SHADOW"
cat >"$TMP/proxy.yaml" <<EOF
listen: $LISTEN
admin: { listen: $ADMIN }
primary: { url: http://$PRIMARY }
shadow: { url: http://$SHADOW, timeout: 2s, max_in_flight: 256 }
mirror: { percent: 30 }
routes: ["/bookings/{id}"]
record: { dir: $TMP/recording, percent: 100, max_total_bytes: 256MiB, max_file_bytes: 16MiB }
state: { sqlite: $TMP/state.sqlite3 }
EOF
"$TWINPEAK" proxy --config "$TMP/proxy.yaml" >"$TMP/proxy.log" 2>&1 & PROXY=$!
STARTED+=("$PROXY")
wait_accepting "$LISTEN"

wrk -t1 -c32 -d5s "http://$LISTEN/bookings/42" >"$TMP/capacity.wrk" 2>&1
read -r capacity _ < <(parse_wrk "$TMP/capacity.wrk")
RATE=$(python3 -c "print(int($capacity / 2))")
log "capacity ${capacity%.*} req/s with this configuration; soaking at $RATE/s for $SOAK_MINUTES min"
cat >"$TMP/soak.yaml" <<EOF
name: soak
baseline_rps: $RATE
max_users: 128
phases:
  - {name: soak, duration: ${SOAK_MINUTES}m, rps: 1x}
requests:
  - {name: get, weight: 1, method: GET, path: "/bookings/{{int 1 100000}}"}
EOF
"$TWINPEAK" load "$TMP/soak.yaml" --target "http://$LISTEN" --out "$TMP/run" --quiet >"$TMP/load.log" 2>&1 &
LOAD=$!
STARTED+=("$LOAD")

echo "t_s rss_kib fds" >"$TMP/samples.txt"
start=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PROXY/status")
    fds=$(find "/proc/$PROXY/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "$(($(date +%s) - start)) $rss $fds" >>"$TMP/samples.txt"
    sleep 10
done
wait "$LOAD" || true
tail -n 3 "$TMP/load.log" >"$TMP/load.tail"
curl -sS "http://$ADMIN/metrics" >"$TMP/metrics.txt" || true

python3 - "$TMP/samples.txt" "$OUT" "$SVG" "$WARMUP_MINUTES" "$RATE" "${capacity%.*}" "$TMP/metrics.txt" "$TMP/load.tail" <<'PY'
import re, sys, datetime
samples_path, out, svg, warmup_min, rate, capacity, metrics_path, load_tail = sys.argv[1:]
rows = [tuple(map(int, l.split())) for l in open(samples_path).read().splitlines()[1:] if l.strip()]
warm = int(warmup_min) * 60
after = [r for r in rows if r[0] >= warm]
base = after[0] if after else rows[-1]
peak = max(r[1] for r in after) if after else base[1]
last = rows[-1]
growth_peak = (peak - base[1]) / base[1] * 100
growth_last = (last[1] - base[1]) / base[1] * 100
metrics = open(metrics_path).read() if metrics_path else ""
def total(name, label=None):
    n = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and (label is None or label in line):
            try: n += float(line.split()[-1])
            except ValueError: pass
    return int(n)
with open(out, "w") as f:
    f.write("# Soak — %s\n\n" % datetime.date.today())
    f.write("The proxy at half its capacity (%s req/s measured with this configuration, wrk -t1 -c32; soak at %s/s with `twinpeak load`), "
            "30%% mirrored to a shadow answering after 200 ms (max_in_flight 256), every pair compared, every request recorded "
            "(recording bounded at 256 MiB), state in SQLite; RSS and open descriptors of the proxy every 10 s.\n\n" % (capacity, rate))
    f.write("- RSS at the end of the %s-minute warm-up: %.1f MiB; highest after it: %.1f MiB (**%+.1f%%**); at the end: %.1f MiB (%+.1f%%).\n"
            % (warmup_min, base[1] / 1024, peak / 1024, growth_peak, last[1] / 1024, growth_last))
    f.write("- Open descriptors: %d at the end of the warm-up, %d–%d after it, %d at the end.\n"
            % (base[2], min(r[2] for r in after) if after else base[2], max(r[2] for r in after) if after else base[2], last[2]))
    f.write("- Mirrored copies sent: %d; dropped (in flight full): %d; pairs compared: %d; records written: %d, dropped: %d; recording segments deleted to stay in bounds: %d.\n"
            % (total("twinpeak_mirror_total", 'outcome="sent"'), total("twinpeak_mirror_total", 'outcome="dropped_in_flight"'),
               total("twinpeak_compared_total"), total("twinpeak_record_total", 'result="written"'),
               total("twinpeak_record_total", 'result="dropped'), total("twinpeak_record_segments_deleted_total")))
    f.write("- Load run's last lines:\n\n```\n%s```\n\n" % open(load_tail).read())
    f.write("![RSS and descriptors over time](%s)\n\n" % svg.rsplit("/", 1)[-1])
    f.write("| minute | RSS MiB | descriptors |\n|---|---|---|\n")
    for r in rows:
        if r[0] % 60 < 10:
            f.write("| %d | %.1f | %d |\n" % (r[0] // 60, r[1] / 1024, r[2]))
# The chart: RSS (MiB) and descriptors against minutes, as plain SVG.
W, H, L, B = 720, 300, 60, 40
tmax = max(r[0] for r in rows) or 1
rmax = max(r[1] for r in rows) / 1024 * 1.1
fmax = max(r[2] for r in rows) * 1.1 or 1
def x(t): return L + (W - L - 20) * t / tmax
def y(v, vmax): return H - B - (H - B - 20) * v / vmax
rss = " ".join("%.1f,%.1f" % (x(r[0]), y(r[1] / 1024, rmax)) for r in rows)
fds = " ".join("%.1f,%.1f" % (x(r[0]), y(r[2], fmax)) for r in rows)
with open(svg, "w") as f:
    f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">\n' % (W, H))
    f.write('<rect width="100%" height="100%" fill="white"/>\n')
    f.write('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>\n' % (L, H - B, W - 20, H - B))
    f.write('<line x1="%d" y1="20" x2="%d" y2="%d" stroke="black"/>\n' % (L, L, H - B))
    f.write('<line x1="%.1f" y1="20" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="4"/>\n' % (x(warm), x(warm), H - B))
    f.write('<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>\n' % rss)
    f.write('<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="%s"/>\n' % fds)
    f.write('<text x="%d" y="%d">minutes (0–%d)</text>\n' % (W // 2 - 40, H - 10, tmax // 60))
    f.write('<text x="%d" y="14" fill="#1f77b4">RSS, MiB (0–%.0f)</text>\n' % (L, rmax))
    f.write('<text x="%d" y="14" fill="#ff7f0e">open descriptors (0–%.0f)</text>\n' % (L + 200, fmax))
    f.write('<text x="%.1f" y="32" fill="#999">end of warm-up</text>\n' % (x(warm) + 4))
    f.write('</svg>\n')
print("RSS growth after warm-up: peak %+.1f%%, end %+.1f%%" % (growth_peak, growth_last))
PY
log "written to $OUT and $SVG"
