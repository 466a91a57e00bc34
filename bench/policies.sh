#!/usr/bin/env bash
# What a route's traffic policies cost on the hot path: requests/s through one route with
# header rules (set two, remove one, both ways), a rate limit (client_ip key, set high
# enough that nothing is refused: the bucket work is measured, not 429s) and an allow
# list, against the same route without them (issue 24; goal: under 5 % cost). The other
# half of issue 24's benchmark, compression against nginx's gzip, is bench/compress.sh.
#
#   bench/policies.sh [SECONDS] [ROUNDS]    (defaults 10, 1: one noisy run of 2 x 10 s)
#
# Each measurement starts a fresh Keel (KEEL_BIN, default target/release/keel, else
# target/debug/keel: say which in the results) with one serving thread in front of one
# loopback nginx backend, and drives it with wrk (1 thread, 16 keep-alive connections).
# Bounded: 2 settings x ROUNDS x SECONDS of load. Needs: nginx, wrk, curl.
# Ports: backends 18091-18093, Keel 18120; 127.0.0.1 only.
set -euo pipefail
seconds=${1:-10}
rounds=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${KEEL_BIN:-}" ]; then
  if [ -x "$target/release/keel" ]; then KEEL_BIN=$target/release/keel; else KEEL_BIN=$target/debug/keel; fi
fi
[ -x "$KEEL_BIN" ] || { echo "policies.sh: no keel binary at $KEEL_BIN" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-policies.XXXXXX)
. "$root/bench/backends.sh"
bench_check_ports policies.sh
bench_start_backends "$out"
backend=${backends%%,*}

policies='allow = ["127.0.0.0/8", "10.0.0.0/8"]
request_headers = { set = { "x-shop" = "eu", "x-edge" = "keel" }, remove = ["x-debug"] }
response_headers = { set = { "strict-transport-security" = "max-age=31536000", "x-frame-options" = "DENY" }, remove = ["server"] }
rate_limit = { requests = 10000000, per = "1s", burst = 10000000, key = "client_ip" }'

one() { # SETTING -> prints "setting requests_per_second"
  local setting=$1 dir=$out/keel-$1-$RANDOM extra=""
  mkdir -p "$dir"
  [ "$setting" = policies ] && extra=$policies
  cat > "$dir/keel.toml" <<CONF
[listeners.bench]
addr = "127.0.0.1:$bench_keel_port"

[admin]
addr = "127.0.0.1:0"

[server]
worker_threads = 1

[services.bench]
allow_no_identity = true

[pools.bench]
service = "bench"
backends = [{ addr = "$backend" }]

[[routes]]
name = "bench"
service = "bench"
pool = "bench"
$extra
CONF
  "$KEEL_BIN" --log warn serve --config "$dir/keel.toml" --state-dir "$dir/state" </dev/null >"$dir/out.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  bench_wait_ok "http://127.0.0.1:$bench_keel_port/"
  local rps
  rps=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$bench_keel_port/" | awk '/Requests\/sec/ { print $2 }')
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$setting $rps"
}

echo "# setting requests/s  ($seconds s each, wrk -t1 -c16, 1 serving thread, $KEEL_BIN, $(git -C "$root" rev-parse --short HEAD))" | tee "$out/results.txt"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="plain policies"; else order="policies plain"; fi
  for setting in $order; do one "$setting" | tee -a "$out/results.txt"; done
done
python3 - "$out/results.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    setting, rps = line.split()
    runs.setdefault(setting, []).append(float(rps))
plain, policies = statistics.median(runs["plain"]), statistics.median(runs["policies"])
print(f"# median requests/s: plain {plain:.0f}, policies {policies:.0f}; cost {100 * (1 - policies / plain):.1f} %")
PY
