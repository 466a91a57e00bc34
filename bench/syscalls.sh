#!/usr/bin/env bash
# Counts the system calls each proxy makes per request: Keel, HAProxy and nginx under
# the same wrk load, one at a time, pinned like peers.sh's `stable` preset (backends and
# wrk on CPU 0, the proxy on CPU 1). Two thirds of a proxied request's CPU time is spent
# in the kernel, so a syscall saved per request is worth more than a thousand user-space
# instructions. Bounded: one wrk run of DURATION seconds (default 5) per proxy.
#
#   bench/syscalls.sh [DURATION] [CONNS]    -> syscalls/request by name, per proxy
#
# Needs: nginx, wrk, perf, the dist build (dist/build.sh); haproxy optional. Ports: backends
# 18091-18093, proxies 18120.
set -euo pipefail
duration=${1:-5}
conns=${2:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
[ -x "$keel" ] || { echo "syscalls.sh: no keel binary at $keel (dist/build.sh)" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-syscalls.XXXXXX)
. "$root/bench/backends.sh"
bench_check_ports syscalls.sh
bench_start_backends "$out" taskset -c 0
port=$bench_keel_port

start_keel() {
  mkdir -p "$out/keel"
  BENCH_LISTEN_PORT=$port BENCH_BACKENDS=$backends BENCH_DIR=$out/keel \
    taskset -c 1 "$root/bench/keel-peer.sh" 1 </dev/null >"$out/keel/out.log" 2>&1 &
  proxy_pid=$!
}

start_haproxy() {
  mkdir -p "$out/haproxy"
  {
    printf 'global\n    nbthread 1\n    maxconn 4096\ndefaults\n    mode http\n'
    printf '    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n'
    printf '    timeout http-keep-alive 60s\n    option http-keep-alive\n    http-reuse always\n'
    printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend be\nbackend be\n    balance roundrobin\n' "$port"
    i=0; for b in ${backends//,/ }; do i=$((i + 1)); printf '    server b%s %s\n' "$i" "$b"; done
  } > "$out/haproxy/haproxy.cfg"
  taskset -c 1 haproxy -db -f "$out/haproxy/haproxy.cfg" </dev/null >"$out/haproxy/out.log" 2>&1 &
  proxy_pid=$!
}

start_nginx() {
  local d=$out/nginx
  mkdir -p "$d"
  {
    printf 'worker_processes 1;\ndaemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$d" "$d"
    printf 'events { worker_connections 4096; }\nhttp {\n  access_log off;\n'
    printf '  client_body_temp_path %s/b; proxy_temp_path %s/p; fastcgi_temp_path %s/f; uwsgi_temp_path %s/u; scgi_temp_path %s/s;\n' "$d" "$d" "$d" "$d" "$d"
    printf '  keepalive_requests 10000000;\n  keepalive_timeout 120s;\n  upstream be {\n'
    for b in ${backends//,/ }; do printf '    server %s;\n' "$b"; done
    printf '    keepalive 1024;\n    keepalive_requests 10000000;\n    keepalive_timeout 120s;\n  }\n'
    printf '  server {\n    listen 127.0.0.1:%s backlog=4096;\n    location / {\n' "$port"
    printf '      proxy_pass http://be;\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n    }\n  }\n}\n'
  } > "$d/nginx.conf"
  taskset -c 1 nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" </dev/null >"$d/out.log" 2>&1 &
  proxy_pid=$!
}

measure() { # name
  local name=$1 requests
  bench_wait_ok "http://127.0.0.1:$port/"
  taskset -c 0 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/" >/dev/null   # warm the pools
  perf stat -e 'syscalls:sys_enter_*' -p "$proxy_pid" -x, -o "$out/$name.stat" -- sleep "$duration" &
  local perf_pid=$!
  taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" "http://127.0.0.1:$port/" > "$out/$name.wrk"
  wait "$perf_pid" || true
  kill -TERM "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  requests=$(awk '/requests in/ { print $1 }' "$out/$name.wrk")
  echo "== $name: $requests requests in ${duration} s, $conns connections"
  awk -F, -v n="$requests" '$1 ~ /^[0-9]+$/ && $1 > 0 {
      sub(/syscalls:sys_enter_/, "", $3); total += $1; printf "  %-18s %7.3f /request\n", $3, $1 / n
    } END { printf "  %-18s %7.3f /request\n", "all", total / n }' "$out/$name.stat" | sort -k2 -rn
}

start_keel; measure keel
if command -v haproxy >/dev/null; then start_haproxy; measure haproxy; fi
start_nginx; measure nginx
echo "syscalls.sh: raw counts in $out"
