#!/usr/bin/env bash
# Compression on the fly, Keel against nginx (issue 24; goal: at least nginx's requests/s per
# CPU-second): one loopback nginx origin serves a 16 KiB JSON answer uncompressed; in front of
# it, Keel (a route with compress = ["gzip"], gzip level 1) and nginx as a proxy (gzip on,
# gzip_comp_level 1, the same minimum length and type), each with one serving thread/worker.
# wrk (1 thread, 16 keep-alive connections, Accept-Encoding: gzip) drives each for SECONDS;
# the proxy's CPU time (user + system, from /proc) over that window gives requests per
# CPU-second, which is less sensitive than requests/s to what else the machine runs.
#
#   bench/compress.sh [SECONDS] [ROUNDS]    (defaults 10, 1: one noisy run of 2 x 10 s)
#
# KEEL_BIN as in bench/policies.sh (target/release/keel, else target/debug/keel: say which).
# Bounded: 2 proxies x ROUNDS x SECONDS of load. Needs: nginx, wrk, curl.
# Ports: origin 18094, Keel 18120, nginx proxy 18121; 127.0.0.1 only.
set -euo pipefail
seconds=${1:-10}
rounds=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${KEEL_BIN:-}" ]; then
  if [ -x "$target/release/keel" ]; then KEEL_BIN=$target/release/keel; else KEEL_BIN=$target/debug/keel; fi
fi
[ -x "$KEEL_BIN" ] || { echo "compress.sh: no keel binary at $KEEL_BIN" >&2; exit 1; }
origin_port=18094 keel_port=18120 nginx_port=18121
for p in $origin_port $keel_port $nginx_port; do
  if [ -n "$(ss -Htln "sport = :$p")" ]; then echo "compress.sh: port $p is in use" >&2; exit 1; fi
done
out=$(mktemp -d /tmp/keel-compress.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The answer: 16 KiB of JSON that compresses like a product list.
python3 - "$out/products.json" <<'PY'
import json, sys
items = [{"id": i, "name": f"product {i}", "price": i % 97 + 0.99, "tags": ["shop", f"t{i % 13}"]} for i in range(400)]
text = json.dumps(items)[: 16 * 1024 - 1] + "]"
open(sys.argv[1], "w").write(text)
PY
# nginx's worker runs as an unprivileged user: it must be able to read the answer.
chmod 755 "$out"; chmod 644 "$out/products.json"

nginx_conf() { # DIR BODY -> writes DIR/nginx.conf
  local d=$1
  mkdir -p "$d"
  cat > "$d/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp_body; proxy_temp_path $d/tmp_proxy;
  fastcgi_temp_path $d/tmp_fastcgi; uwsgi_temp_path $d/tmp_uwsgi; scgi_temp_path $d/tmp_scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  $2
}
CONF
}

nginx_conf "$out/origin" "server {
    listen 127.0.0.1:$origin_port backlog=4096;
    location / { root $out; default_type application/json; add_header X-Service bench always; try_files /products.json =404; }
  }"
nginx -p "$out/origin" -e "$out/origin/error.log" -c "$out/origin/nginx.conf" </dev/null >"$out/origin/out.log" 2>&1 &
pids+=($!)

cpu_ticks() { # PID... -> utime + stime of each process and its children threads, in ticks
  local total=0 p
  for p in "$@"; do
    # Fields 14 and 15 of /proc/PID/stat (after the command name in parentheses).
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
  done
  echo "$total"
}

wait_ok() {
  local _
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "compress.sh: $1 did not answer 200 in time" >&2
}

one() { # PROXY -> prints "proxy requests_per_second cpu_seconds requests_per_cpu_second"
  local proxy=$1 dir=$out/$1-$RANDOM port watch
  mkdir -p "$dir"
  if [ "$proxy" = keel ]; then
    port=$keel_port
    cat > "$dir/keel.toml" <<CONF
[listeners.bench]
addr = "127.0.0.1:$port"

[admin]
addr = "127.0.0.1:0"

[server]
worker_threads = 1

[services.bench]
identity = { header = "x-service", equals = "bench" }

[pools.bench]
service = "bench"
backends = [{ addr = "127.0.0.1:$origin_port" }]

[[routes]]
name = "bench"
service = "bench"
pool = "bench"
compress = ["gzip"]
CONF
    "$KEEL_BIN" --log warn serve --config "$dir/keel.toml" --state-dir "$dir/state" </dev/null >"$dir/out.log" 2>&1 &
    pids+=($!)
    watch=$!
  else
    port=$nginx_port
    nginx_conf "$dir" "upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  gzip on; gzip_comp_level 1; gzip_min_length 1024; gzip_types application/json; gzip_vary on; gzip_proxied any;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" </dev/null >"$dir/out.log" 2>&1 &
    pids+=($!)
    watch=$!
  fi
  wait_ok "http://127.0.0.1:$port/"
  local encoding
  encoding=$(curl -s -o /dev/null -D - -H 'accept-encoding: gzip' "http://127.0.0.1:$port/" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
  [ "$encoding" = gzip ] || echo "compress.sh: $proxy did not answer gzip (content-encoding: ${encoding:-none})" >&2
  # The processes whose CPU counts: Keel itself; nginx's master and its worker.
  local watched=("$watch")
  [ "$proxy" = nginx ] && watched+=($(pgrep -P "$watch" || true))
  local before after rps hz
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "${watched[@]}")
  rps=$(wrk -t1 -c16 -d"${seconds}s" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/" | awk '/Requests\/sec/ { print $2 }')
  after=$(cpu_ticks "${watched[@]}")
  kill -TERM "$watch"; wait "$watch" 2>/dev/null || true
  python3 -c "
rps, ticks, hz, secs = float('$rps'), $after - $before, $hz, $seconds
cpu = ticks / hz
print(f'$proxy {rps:.0f} {cpu:.2f} {rps * secs / cpu if cpu else 0:.0f}')"
}

wait_ok "http://127.0.0.1:$origin_port/"
echo "# proxy requests/s cpu_seconds requests_per_cpu_second  ($seconds s each, wrk -t1 -c16, gzip level 1, 16 KiB JSON, $KEEL_BIN, $(git -C "$root" rev-parse --short HEAD))" | tee "$out/results.txt"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="keel nginx"; else order="nginx keel"; fi
  for proxy in $order; do one "$proxy" | tee -a "$out/results.txt"; done
done
python3 - "$out/results.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    proxy, rps, cpu, per_cpu = line.split()
    runs.setdefault(proxy, []).append((float(rps), float(per_cpu)))
def med(proxy, i):
    return statistics.median(r[i] for r in runs[proxy])
print(f"# median requests/s: keel {med('keel', 0):.0f}, nginx {med('nginx', 0):.0f}; "
      f"requests per CPU-second: keel {med('keel', 1):.0f}, nginx {med('nginx', 1):.0f} "
      f"({med('keel', 1) / med('nginx', 1):.2f}x nginx)")
PY
