#!/usr/bin/env bash
# Counts the user-space instructions Keel executes per proxied request with callgrind:
# a deterministic cost measure that host noise does not move, used to find and remove
# per-request work. Bounded: one wrk run of DURATION seconds (default 5) against Keel
# running under callgrind (about 50x slower than native), three loopback nginx backends.
#
#   bench/callgrind.sh [DURATION] [CONNS]    -> prints instructions/request and the top functions
#
# CACHE_SIM=1 adds callgrind's cache simulation, with the last-level cache set to 1 MiB
# (this host's L2 per core: `--LL=1048576,16,64`), and prints L1 and L2-sized cache
# misses per request. At 256 connections Keel's per-connection state no longer fits in
# L2, so the misses, not the instructions, show what a change does there.
#
# Needs: nginx, wrk, valgrind, the dist build (dist/build.sh; KEEL_BIN picks another). Ports: backends 18091-18093, Keel 18120.
set -euo pipefail
duration=${1:-5}
conns=${2:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
[ -x "$keel" ] || { echo "callgrind.sh: no keel binary at $keel (dist/build.sh)" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-callgrind.XXXXXX)
cache_sim=""
if [ "${CACHE_SIM:-0}" = 1 ]; then cache_sim="--cache-sim=yes --LL=1048576,16,64"; fi
. "$root/bench/backends.sh"
bench_check_ports callgrind.sh
bench_start_backends "$out"
mkdir -p "$out/keel"
# keel-peer.sh writes the config and execs KEEL_BIN; point it at a valgrind wrapper.
cat > "$out/keel/valgrind-keel" <<WRAP
#!/usr/bin/env bash
exec valgrind --tool=callgrind $cache_sim --instr-atstart=no --callgrind-out-file=$out/callgrind.out "$keel" "\$@"
WRAP
chmod +x "$out/keel/valgrind-keel"
# No idle spin: it trades CPU for wall-clock batching, and under valgrind its yields
# would be counted as work.
KEEL_IDLE_SPIN=${KEEL_IDLE_SPIN:-0s} KEEL_BIN=$out/keel/valgrind-keel BENCH_LISTEN_PORT=18120 BENCH_BACKENDS=$backends BENCH_DIR=$out/keel \
  "$root/bench/keel-peer.sh" 1 </dev/null >"$out/keel/out.log" 2>&1 &
keel_pid=$!
pids+=($keel_pid)
bench_wait_ok http://127.0.0.1:18120/ 300   # valgrind starts slowly
# Warm up uninstrumented past the traffic sample's fill phase (its first 10,000 requests
# are all kept), then switch counting on: the figure leaves out startup and warm-up.
wrk -t1 -c"$conns" -d6s http://127.0.0.1:18120/ > "$out/warmup.txt"
callgrind_control -i on "$keel_pid" > /dev/null   # count from here: the warm-up is not instrumented
wrk -t1 -c"$conns" -d"${duration}s" http://127.0.0.1:18120/ | tee "$out/wrk.txt"
requests=$(awk '/requests in/ { print $1 }' "$out/wrk.txt")
# Stop counting before shutdown: dropping the traffic sample and the rest at exit is
# not per-request work (it added ~1,500 instructions/request to the figure before).
callgrind_control -i off "$keel_pid" > /dev/null
kill -TERM "$keel_pid"
wait "$keel_pid" || true
# Only what ran after instrumentation was switched on is counted.
total=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "callgrind.sh: $requests requests, $total instructions in all: $(( total / (requests + 1) )) instructions/request (steady state)"
if [ -n "$cache_sim" ]; then
  # PROGRAM TOTALS: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, each followed by its percentage.
  callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk -v n="$requests" '/PROGRAM TOTALS/ {
    gsub(",", ""); printf "callgrind.sh: per request: L1 misses %.1f read, %.1f write; 1 MiB-cache misses %.1f read, %.1f write\n", $9 / n, $11 / n, $15 / n, $17 / n }'
fi
# To files first: piping into `head` could end the annotator with SIGPIPE, which
# pipefail turns into the script's exit status.
callgrind_annotate --inclusive=no --auto=no "$out/callgrind.out" > "$out/self-full.txt" 2>/dev/null
callgrind_annotate --inclusive=yes --auto=no "$out/callgrind.out" > "$out/inclusive-full.txt" 2>/dev/null
head -n 60 "$out/self-full.txt" > "$out/self.txt"
head -n 120 "$out/inclusive-full.txt" > "$out/inclusive.txt"
echo "callgrind.sh: per-function costs in $out/self.txt and $out/inclusive.txt"
