#!/usr/bin/env bash
# gRPC unary requests/s through an h2c pool: Keel against HAProxy and nginx, one run each.
#
# The origin is one nginx (one worker) speaking h2c on loopback that answers every POST
# like a gRPC server: `content-type: application/grpc`, a 5-byte length-prefixed empty
# message, and `grpc-status: 0` as a trailer. The load is h2load (nghttp2-client): h2c
# prior knowledge, POSTs of a small length-prefixed message with gRPC's headers, C
# connections x M streams each, for D seconds per contestant. Each proxy multiplexes its
# upstream h2c connections (Keel: protocol = "h2c"; HAProxy: `proto h2`; nginx:
# `grpc_pass`), one worker/thread each.
#
#   bench/grpc.sh [--duration 8] [--conns 16] [--streams 8] [--keel target/release/keel]
#
# Bounded: 3 contestants x (1 s warm-up + D s), under a minute with the defaults.
# Requires: nginx, haproxy, h2load, ss. Ports 18150-18153. One run on a shared machine:
# the figures are noisy; compare ratios taken in the same run only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=8 conns=16 streams=8 keel=$root/target/release/keel
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --keel) keel=$2; shift 2 ;;
    *) echo "grpc.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in nginx haproxy h2load ss; do
  command -v "$tool" >/dev/null || { echo "grpc.sh: $tool is needed" >&2; exit 1; }
done
[ -x "$keel" ] || { echo "grpc.sh: no keel binary at $keel (cargo build --release -p keel)" >&2; exit 1; }
origin=18150 keel_port=18151 haproxy_port=18152 nginx_port=18153 keel_admin=18154
for p in $origin $keel_port $haproxy_port $nginx_port $keel_admin; do
  [ -z "$(ss -Htln "sport = :$p")" ] || { echo "grpc.sh: port $p is in use" >&2; exit 1; }
done
dir=$(mktemp -d /tmp/keel-grpc-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
temp_paths() { echo "client_body_temp_path $1/b; proxy_temp_path $1/p; fastcgi_temp_path $1/f; uwsgi_temp_path $1/u; scgi_temp_path $1/s;"; }

mkdir -p "$dir/origin" "$dir/nginx"
cat > "$dir/origin/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $dir/origin/nginx.pid; error_log $dir/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; $(temp_paths "$dir/origin")
  keepalive_requests 10000000; keepalive_timeout 120s; http2_max_concurrent_streams 1024;
  server {
    listen 127.0.0.1:$origin http2;
    location / {
      default_type application/grpc;
      add_header x-service echo always;
      add_trailer grpc-status 0 always;
      return 200 "\\x00\\x00\\x00\\x00\\x00";
    }
  }
}
EOF
nginx -c "$dir/origin/nginx.conf" -e "$dir/origin/error.log" & pids+=($!)

cat > "$dir/keel.toml" <<EOF
[listeners.bench]
addr = "127.0.0.1:$keel_port"
[admin]
addr = "127.0.0.1:$keel_admin"
[server]
worker_threads = 1
[services.echo]
identity = { header = "x-service", equals = "echo" }
[pools.echo]
service = "echo"
protocol = "h2c"
backends = ["127.0.0.1:$origin"]
[[routes]]
name = "rpc"
service = "echo"
pool = "echo"
headers = { "content-type" = "application/grpc" }
[[routes]]
name = "rest"
service = "echo"
pool = "echo"
EOF
KEEL_STATE_DIR=$dir/keel-state "$keel" --log warn serve --config "$dir/keel.toml" > "$dir/keel.log" 2>&1 & pids+=($!)

cat > "$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$haproxy_port proto h2
    default_backend be
backend be
    server origin 127.0.0.1:$origin proto h2
EOF
haproxy -f "$dir/haproxy.cfg" -db > "$dir/haproxy.log" 2>&1 & pids+=($!)

cat > "$dir/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $dir/nginx/nginx.pid; error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; $(temp_paths "$dir/nginx")
  keepalive_requests 10000000; keepalive_timeout 120s; http2_max_concurrent_streams 1024;
  upstream origin { server 127.0.0.1:$origin; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port http2;
    location / { grpc_pass grpc://origin; }
  }
}
EOF
nginx -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" & pids+=($!)

# A gRPC message: no compression, 5-byte length, "hello".
printf '\x00\x00\x00\x00\x05hello' > "$dir/message"
load() { # port seconds
  h2load -c "$conns" -m "$streams" -D "$2" -d "$dir/message" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$1/bench.Echo/Unary" 2>&1
}
for p in $origin $keel_port $haproxy_port $nginx_port; do
  for _ in $(seq 100); do [ -n "$(ss -Htln "sport = :$p")" ] && break; sleep 0.1; done
done

echo "# gRPC unary through an h2c pool: h2load -c $conns -m $streams -D $duration, one run ($(date -u +%F))"
echo "| contestant | requests/s | 2xx | failed |"
echo "|---|---|---|---|"
for c in direct:$origin keel:$keel_port haproxy:$haproxy_port nginx:$nginx_port; do
  name=${c%%:*} port=${c##*:}
  load "$port" 1 > /dev/null || true
  out=$(load "$port" "$duration")
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<< "$out")
  ok=$(awk '/^status codes:/ {print $3}' <<< "$out")
  failed=$(awk '/^requests:/ {print $10}' <<< "$out")
  echo "| $name | ${rps:-?} | ${ok:-?} | ${failed:-?} |"
done
# A gRPC error is an HTTP 200 too, so h2load's 2xx do not prove the calls were served:
# Keel's own counts (by grpc-status) say how many were.
echo
echo "Keel's outcome counts for the run (grpc-status classes; pool \"\" = Keel's own errors):"
curl -s "http://127.0.0.1:$keel_admin/metrics" | grep '^keel_requests_total{' || echo "(no metrics)"
echo
echo "One run on a shared 2-core machine (other builds running): noisy; ratios within this run only."

