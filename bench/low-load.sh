#!/usr/bin/env bash
# What `[server] idle_spin` costs when Keel is not busy: the CPU time Keel uses per
# request at a fixed, low request rate, with the spin at its default and off. A spin that
# only pays under load must cost nothing here (issue 21: a default has to be right for a
# production user, most of whose hours are quiet).
#
#   bench/low-load.sh [SECONDS] [ROUNDS] [CONNS]    (defaults 5, 2, 64; rates 100 and 1,000/s)
#
# Each round starts a fresh Keel (the dist build, or KEEL_BIN) per setting and rate, in
# an order that alternates, drives it with a paced keep-alive client (bench/paced.py) and
# reads the CPU time of all its threads from /proc/PID/task/*/schedstat (nanoseconds
# on a CPU, spinning included). Bounded: 2 settings x 2 rates x ROUNDS x SECONDS of load.
# Needs: nginx, python3, curl. Ports: backends 18091-18093, Keel 18120; 127.0.0.1 only.
set -euo pipefail
seconds=${1:-5}
rounds=${2:-2}
conns=${3:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
export KEEL_BIN=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
[ -x "$KEEL_BIN" ] || { echo "low-load.sh: no keel binary at $KEEL_BIN (dist/build.sh)" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-low-load.XXXXXX)
. "$root/bench/backends.sh"
bench_check_ports low-load.sh
bench_start_backends "$out"

cpu_ns() { # PID: nanoseconds on a CPU, all threads
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}

one() { # SPIN RATE -> prints "spin rate requests cpu_ms"
  local spin=$1 rate=$2 dir=$out/keel-$1-$2-$RANDOM
  mkdir -p "$dir"
  BENCH_LISTEN_PORT=$bench_keel_port BENCH_BACKENDS=$backends BENCH_DIR=$dir KEEL_IDLE_SPIN=$spin \
    "$root/bench/keel-peer.sh" 1 </dev/null >"$dir/out.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  bench_wait_ok "http://127.0.0.1:$bench_keel_port/"
  local before after requests
  before=$(cpu_ns "$pid")
  requests=$(timeout -k 2 $((seconds + 10)) python3 "$root/bench/paced.py" 127.0.0.1 "$bench_keel_port" "$rate" "$seconds" "$conns")
  after=$(cpu_ns "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$spin $rate $requests $(( (after - before) / 1000000 ))"
}

echo "# idle_spin rate/s requests keel_cpu_ms  ($seconds s each, $conns connections, $(basename "$KEEL_BIN") $(git -C "$root" rev-parse --short HEAD))" | tee "$out/results.txt"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="20us 0s"; else order="0s 20us"; fi
  for rate in 100 1000; do
    for spin in $order; do one "$spin" "$rate" | tee -a "$out/results.txt"; done
  done
done
echo "# Keel's CPU time per 1,000 requests, median over rounds:"
python3 - "$out/results.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    spin, rate, requests, cpu_ms = line.split()
    runs.setdefault((int(rate), spin), []).append(int(cpu_ms) * 1000 / max(int(requests), 1))
for (rate, spin), values in sorted(runs.items()):
    print(f"{rate:>5}/s  idle_spin {spin:>4}: {statistics.median(values):6.1f} ms  ({', '.join(f'{v:.1f}' for v in values)})")
PY
