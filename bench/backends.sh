# Sourced by bench/profile.sh and bench/callgrind.sh: the three loopback nginx backends
# (like peers.sh's) and the process bookkeeping both profilers share. Not run directly.
#
#   bench_check_ports NAME          refuse to start when a backend port or Keel's is taken
#   bench_start_backends OUT [PIN…] start the backends (PIN: a command prefix such as
#                                   `taskset -c 0`); sets $backends to "addr,addr,addr"
#   bench_wait_ok URL [TRIES]       wait (TRIES x 0.1 s, default 100) until URL answers 200
# Every process started is recorded in $pids and stopped on exit.

bench_ports="18091 18092 18093"
bench_keel_port=18120
pids=()
bench_cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap bench_cleanup EXIT INT TERM

bench_check_ports() {
  local p
  for p in $bench_ports $bench_keel_port; do
    if [ -n "$(ss -Htln "sport = :$p")" ]; then echo "$1: port $p is in use" >&2; exit 1; fi
  done
}

bench_start_backends() {
  local out=$1 p d
  shift
  backends=""
  for p in $bench_ports; do
    d=$out/be-$p; mkdir -p "$d"
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
  server {
    listen 127.0.0.1:$p backlog=4096;
    location / { default_type text/plain; add_header X-Backend $p always;${BENCH_IDENTITY:+ add_header X-Service bench always;} return 200 "ok"; }
  }
}
CONF
    "$@" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" </dev/null >"$d/out.log" 2>&1 &
    pids+=($!)
    backends="${backends:+$backends,}127.0.0.1:$p"
  done
}

bench_wait_ok() {
  local url=$1 tries=${2:-100} _
  for _ in $(seq 1 "$tries"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ] && return 0
    sleep 0.1
  done
  # Not fatal: the load that follows shows what is wrong, and its logs are kept.
  echo "bench: $url did not answer 200 in time" >&2
}
