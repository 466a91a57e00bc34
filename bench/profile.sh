#!/usr/bin/env bash
# Profiles Keel under a fixed wrk load with `perf record`, against three loopback nginx
# backends like peers.sh's, and prints the hottest symbols. Bounded: one wrk run of
# DURATION seconds (default 10). Everything listens on 127.0.0.1 only.
#
#   bench/profile.sh [DURATION] [CONNS]      -> report in /tmp/keel-profile.XXXXXX/
#
# Needs: nginx, wrk, perf (linux-perf), the dist build (dist/build.sh; KEEL_BIN picks another).
# Ports: backends 18091-18093, Keel 18120 (refuses to start if any is taken).
set -euo pipefail
duration=${1:-10}
conns=${2:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
[ -x "$keel" ] || { echo "profile.sh: no keel binary at $keel (dist/build.sh)" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-profile.XXXXXX)
. "$root/bench/backends.sh"
bench_check_ports profile.sh
bench_start_backends "$out" taskset -c 0
mkdir -p "$out/keel"
BENCH_LISTEN_PORT=18120 BENCH_BACKENDS=$backends BENCH_DIR=$out/keel \
  taskset -c 1 "$root/bench/keel-peer.sh" 1 </dev/null >"$out/keel/out.log" 2>&1 &
keel_pid=$!
pids+=($keel_pid)
bench_wait_ok http://127.0.0.1:18120/
taskset -c 0 wrk -t1 -c"$conns" -d2s http://127.0.0.1:18120/ >/dev/null   # warm the pools
perf record -F 2999 -g --call-graph dwarf,16384 -p "$keel_pid" -o "$out/perf.data" -- sleep "$duration" \
  >"$out/perf.log" 2>&1 &
perf_pid=$!
taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" --latency http://127.0.0.1:18120/ | tee "$out/wrk.txt"
wait "$perf_pid" || true
# Reports go to files first: piping perf into `head` would end it with SIGPIPE, which
# pipefail turns into the script's exit status before the summary is printed.
perf report -i "$out/perf.data" --no-children --sort symbol --stdio > "$out/flat-full.txt" 2>/dev/null
perf report -i "$out/perf.data" --children --sort symbol --stdio -g none > "$out/children-full.txt" 2>/dev/null
grep -v '^$' "$out/flat-full.txt" | head -n 120 > "$out/flat.txt" || true
grep -v '^$' "$out/children-full.txt" | head -n 150 > "$out/children.txt" || true
echo "profile.sh: flat profile in $out/flat.txt, inclusive in $out/children.txt"
head -n 60 "$out/flat.txt"
