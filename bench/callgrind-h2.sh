#!/usr/bin/env bash
# Counts the user-space instructions a proxy executes per HTTP/2 request with callgrind:
# bench/callgrind.sh's deterministic measure, for the HTTP/2 serving path (issues 22, 23).
# Bounded: a fixed number of requests (h2load -n N -c C -m M) against the proxy running
# under callgrind (about 50x slower than native), counted after an uninstrumented warm-up.
#
#   bench/callgrind-h2.sh [MODE] [N]    -> prints instructions/request and the top functions
#
# MODE (default h2c):
#   h2c   GET / over HTTP/2 prior knowledge, three loopback nginx backends over HTTP/1.1
#   tls   the same over TLS (ALPN h2, an ECDSA P-256 certificate made here): what
#         bench/tls.sh's (c) point measures
#   grpc  gRPC unary POSTs (h2load as in bench/grpc.sh) through an h2c pool to one nginx
#         answering like a gRPC server: what bench/grpc.sh measures
# PEER=haproxy runs HAProxy (nbthread 1) under callgrind instead of Keel, same client,
# same backends, for the same count on the other side. C and M: CONNS (8), STREAMS (10).
#
# Needs: nginx, h2load, valgrind, openssl; haproxy for PEER=haproxy; Keel's release build
# (target/release/keel; KEEL_BIN picks another). Ports 18091-18094 (backends), 18120
# (proxy), 18121 (Keel's admin). Loopback only; every process is stopped on exit.
set -euo pipefail
mode=${1:-h2c}
requests=${2:-20000}
conns=${CONNS:-8}
streams=${STREAMS:-10}
peer=${PEER:-keel}
warmup=${WARMUP:-10000}   # the traffic sample keeps all of its first 10,000 requests
root=$(cd "$(dirname "$0")/.." && pwd)
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/keel}
case $mode in h2c | tls | grpc) ;; *) echo "callgrind-h2.sh: MODE is h2c, tls or grpc" >&2; exit 2 ;; esac
case $peer in keel | haproxy) ;; *) echo "callgrind-h2.sh: PEER is keel or haproxy" >&2; exit 2 ;; esac
[ "$peer" != keel ] || [ -x "$keel" ] || { echo "callgrind-h2.sh: no keel binary at $keel" >&2; exit 1; }
[ "$requests" -ge 100 ] && [ "$requests" -le 200000 ] || { echo "callgrind-h2.sh: N is 100..200000" >&2; exit 2; }
out=$(mktemp -d /tmp/keel-callgrind-h2.XXXXXX)
. "$root/bench/backends.sh"
bench_ports="18091 18092 18093 18094"
bench_check_ports callgrind-h2.sh
origin=18094
if [ "$mode" = grpc ]; then
  mkdir -p "$out/origin"
  cat > "$out/origin/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $out/origin/nginx.pid; error_log $out/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $out/origin/b; proxy_temp_path $out/origin/p;
  fastcgi_temp_path $out/origin/f; uwsgi_temp_path $out/origin/u; scgi_temp_path $out/origin/s;
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
  nginx -c "$out/origin/nginx.conf" -e "$out/origin/error.log" </dev/null > "$out/origin/out.log" 2>&1 &
  pids+=($!)
else
  bench_ports="18091 18092 18093"
  bench_start_backends "$out"
  IFS=, read -r -a backend_list <<< "$backends"
fi
scheme=http
if [ "$mode" = tls ]; then
  scheme=https
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench.keel.test" \
    -addext "subjectAltName=DNS:bench.keel.test" -keyout "$out/ec.key" -out "$out/ec.pem" 2>/dev/null
  cat "$out/ec.pem" "$out/ec.key" > "$out/ec.haproxy.pem"
fi

if [ "$peer" = keel ]; then
  {
    echo "[listeners.bench]"
    echo "addr = \"127.0.0.1:18120\""
    [ "$mode" != tls ] || echo 'tls = { certificates = ["ec"] }'
    echo "[admin]"
    echo "addr = \"127.0.0.1:18121\""
    echo "[server]"
    echo "worker_threads = 1"
    # No idle spin: under valgrind its yields would be counted as work.
    echo 'idle_spin = "0s"'
    if [ "$mode" = tls ]; then
      echo "[certificates.ec]"
      echo "cert = \"$out/ec.pem\""
      echo "key = \"$out/ec.key\""
    fi
    if [ "$mode" = grpc ]; then
      echo "[services.echo]"
      echo 'identity = { header = "x-service", equals = "echo" }'
      echo "[pools.echo]"
      echo 'service = "echo"'
      echo 'protocol = "h2c"'
      echo "backends = [\"127.0.0.1:$origin\"]"
      echo "[[routes]]"
      echo 'name = "rpc"'
      echo 'service = "echo"'
      echo 'pool = "echo"'
    else
      echo "[services.bench]"
      echo "allow_no_identity = true"
      echo "[pools.bench]"
      echo 'service = "bench"'
      echo 'balance = "round_robin"'
      printf 'backends = ['
      sep=""
      for b in "${backend_list[@]}"; do printf '%s{ addr = "%s" }' "$sep" "$b"; sep=", "; done
      echo "]"
      echo "[[routes]]"
      echo 'name = "all"'
      echo 'service = "bench"'
      echo 'pool = "bench"'
    fi
  } > "$out/keel.toml"
  KEEL_STATE_DIR=$out/keel-state valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/callgrind.out" "$keel" --log warn serve --config "$out/keel.toml" \
    </dev/null > "$out/proxy.log" 2>&1 &
else
  {
    echo "global"
    echo "    nbthread 1"
    echo "    maxconn 4000"
    echo "defaults"
    echo "    mode http"
    echo "    timeout connect 2s"
    echo "    timeout client 60s"
    echo "    timeout server 60s"
    echo "    option http-keep-alive"
    echo "    http-reuse always"
    echo "frontend fe"
    if [ "$mode" = tls ]; then
      echo "    bind 127.0.0.1:18120 ssl crt $out/ec.haproxy.pem alpn h2,http/1.1"
    else
      echo "    bind 127.0.0.1:18120 proto h2"
    fi
    echo "    default_backend be"
    echo "backend be"
    if [ "$mode" = grpc ]; then
      echo "    server origin 127.0.0.1:$origin proto h2"
    else
      echo "    balance roundrobin"
      i=0
      for b in "${backend_list[@]}"; do i=$((i + 1)); echo "    server b$i $b"; done
    fi
  } > "$out/haproxy.cfg"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
    haproxy -f "$out/haproxy.cfg" -db </dev/null > "$out/proxy.log" 2>&1 &
fi
proxy_pid=$!
pids+=($proxy_pid)
load() { # N
  if [ "$mode" = grpc ]; then
    printf '\x00\x00\x00\x00\x05hello' > "$out/message"
    h2load -n "$1" -c "$conns" -m "$streams" -d "$out/message" \
      -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:18120/bench.Echo/Unary"
  else
    h2load -n "$1" -c "$conns" -m "$streams" "$scheme://127.0.0.1:18120/"
  fi
}
for _ in $(seq 600); do   # valgrind starts slowly
  [ -n "$(ss -Htln 'sport = :18120')" ] && break
  sleep 0.1
done
load "$warmup" > "$out/warmup.txt" 2>&1 || true
callgrind_control -i on "$proxy_pid" > /dev/null 2>&1
load "$requests" 2>&1 | tee "$out/h2load.txt" | grep -E '^(finished in|requests:|status codes:|Application protocol:)'
callgrind_control -i off "$proxy_pid" > /dev/null 2>&1
kill -TERM "$proxy_pid"
wait "$proxy_pid" || true
done_ok=$(awk '/^requests:/ { print $8 }' "$out/h2load.txt")
total=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "callgrind-h2.sh: $peer $mode -c $conns -m $streams: $done_ok requests succeeded, $total instructions in all: $(( total / (done_ok + 1) )) instructions/request"
callgrind_annotate --inclusive=no --auto=no "$out/callgrind.out" > "$out/self-full.txt" 2>/dev/null
callgrind_annotate --inclusive=yes --auto=no "$out/callgrind.out" > "$out/inclusive-full.txt" 2>/dev/null
head -n 60 "$out/self-full.txt" > "$out/self.txt"
head -n 120 "$out/inclusive-full.txt" > "$out/inclusive.txt"
echo "callgrind-h2.sh: per-function costs in $out/self.txt and $out/inclusive.txt"
