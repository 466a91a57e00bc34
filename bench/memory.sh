#!/usr/bin/env bash
# memory.sh -- memory per client connection: Keel, nginx and HAProxy side by side.
#
# One nginx instance is the shared backend (127.0.0.1:18281). In front of it, each with
# one worker thread/process and the same keep-alive bounds (120 s), run Keel (:18210),
# nginx (:18211) and HAProxy (:18212). For each mode, all three proxies are started
# fresh; then bench/memory_client.py opens N client connections to each in turn, holds
# them all, closes them, and reads each proxy's VmRSS (summed over its process tree):
#
#   start     after one warm-up request
#   peak      with all N connections held in the mode's state
#   +3s       3 s after they all closed
#   settled   --settle seconds after they all closed
#
# and RssAnon (private memory: heap, stacks) at start and settled, to tell what the
# process keeps from the binary's file pages the wave's code paths touched (shared,
# clean, and reclaimed by the kernel whenever it needs them). The table gives
# (peak - start) / N as the memory each connection holds, and, from a reading taken when
# the first half were open, (peak - half) / (N - N/2): what one more connection costs
# once the allocator's pages and the buffers of connections still busy while the others
# opened (Keel parks an idle one after 100 ms) are paid for. At the tens of thousands
# of idle connections of a real edge the second figure is the one that adds up.
#
# Modes:
#   idle      one complete GET per connection, response read, connection left open
#             (idle keep-alive: a browser between clicks)
#   partial   the first lines of a request head and nothing more (a slow client)
#
#   bench/memory.sh                        # both modes, 3000 conns, settle 30 s (~90 s)
#   bench/memory.sh --modes idle --settle 60   # the "returned after a minute" check
#   bench/memory.sh -n 1000 --only "keel"  # quick look at Keel alone
#
# Keel runs with its defaults (the live traffic sample included, as in production) and
# the keep-alive bound above; KEEL_SAMPLE_SIZE (e.g. 0) sets `[traffic] sample_size`, to
# tell the sample's share of the memory (it keeps up to 10,000 request shapes, which
# grow with requests, not with connections) from what the connections hold.
#
# Needs: nginx, haproxy (apt-get install -y nginx haproxy), python3, curl, and a release
# build of Keel (KEEL_PGO=0 cargo build --release -p keel; KEEL_BIN overrides the path).
# Safety: only 127.0.0.1; every process started here is tracked by PID and stopped on
# exit (nothing else is touched); connections and waits are bounded.
set -u -o pipefail
export LC_ALL=C

die() { echo "memory.sh: $*" >&2; exit 2; }
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

# Client connections per proxy (default; --conns changes it, up to MAX_CONNS).
DEFAULT_CONNS=3000
MAX_CONNS=20000
# Seconds after the connections close for the last reading (default; --settle).
DEFAULT_SETTLE_S=30
# Keep-alive and request-head bound given to every proxy (seconds): longer than a run.
KEEPALIVE_S=120
BACKEND_PORT=18281
KEEL_PORT=18210 NGINX_PORT=18211 HAPROXY_PORT=18212

CONNS=$DEFAULT_CONNS SETTLE=$DEFAULT_SETTLE_S MODES="idle partial" ONLY="keel nginx haproxy"
OUTDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--conns) CONNS=${2:?}; shift ;;
    --settle) SETTLE=${2:?}; shift ;;
    --modes) MODES=${2:?}; shift ;;
    --only) ONLY=${2:?}; shift ;;
    --outdir) OUTDIR=${2:?}; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
is_uint "$CONNS" && [ "$CONNS" -ge 1 ] && [ "$CONNS" -le "$MAX_CONNS" ] || die "--conns must be 1..$MAX_CONNS"
is_uint "$SETTLE" && [ "$SETTLE" -ge 3 ] && [ "$SETTLE" -le 300 ] || die "--settle must be 3..300 seconds"
for m in $MODES; do case "$m" in idle|partial) ;; *) die "unknown mode '$m' (idle|partial)" ;; esac; done
for p in $ONLY; do case "$p" in keel|nginx|haproxy) ;; *) die "unknown proxy '$p' (keel|nginx|haproxy)" ;; esac; done

root=$(cd "$(dirname "$0")/.." && pwd)
KEEL_BIN=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/keel}
case " $ONLY " in *" keel "*) [ -x "$KEEL_BIN" ] || die "no keel binary at $KEEL_BIN (KEEL_PGO=0 cargo build --release -p keel)" ;; esac
case " $ONLY " in *" haproxy "*) command -v haproxy >/dev/null || die "haproxy not found (apt-get install -y haproxy)" ;; esac
command -v nginx >/dev/null || die "nginx not found (apt-get install -y nginx)"
command -v curl >/dev/null || die "curl not found"

# Every connection is a descriptor in the client and in the proxy: raise the soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=65536
[ "$NOFILE" -ge $(( CONNS * 3 + 256 )) ] || die "ulimit -n is $NOFILE: too low for $CONNS connections per proxy"
MAXCONN=$(( 2 * CONNS + 1000 ))

if [ -z "$OUTDIR" ]; then OUTDIR=$(mktemp -d /tmp/memory-bench.XXXXXX) || die "mktemp failed"; fi
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"

# ---------------------------------------------------------------- process bookkeeping
OWN_PIDS=() OWN_START=()
proc_start() { local l r; { read -r l < "/proc/$1/stat"; } 2>/dev/null || return 1; r=${l##*) }; set -- $r; echo "${20}"; }
alive() { local l r; { read -r l < "/proc/$1/stat"; } 2>/dev/null || return 1; r=${l##*) }; r=${r%% *}; [ "$r" != Z ] && [ "$r" != X ]; }
launch() { # log cmd... ; sets LAST_PID
  local log=$1; shift
  "$@" </dev/null >"$log" 2>&1 &
  LAST_PID=$!
  OWN_PIDS+=("$LAST_PID"); OWN_START+=("$(proc_start "$LAST_PID" || echo ?)")
}
stop_own() { # pid: TERM it (masters stop their workers), KILL after 3 s
  local pid=$1 i idx=""
  for i in "${!OWN_PIDS[@]}"; do [ "${OWN_PIDS[$i]}" = "$pid" ] && idx=$i; done
  [ -n "$idx" ] || return 0
  if [ "$(proc_start "$pid" 2>/dev/null || echo gone)" = "${OWN_START[$idx]}" ] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 30); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  unset "OWN_PIDS[$idx]" "OWN_START[$idx]"
}
cleanup() { local pid; trap - EXIT INT TERM HUP; for pid in "${OWN_PIDS[@]}"; do stop_own "$pid"; done; }
trap cleanup EXIT
trap 'echo "memory.sh: interrupted" >&2; cleanup; exit 130' INT TERM HUP

port_busy() { [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }
wait_ready() { # port pid
  local i
  for i in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/")" = 200 ] && return 0
    alive "$2" || return 1
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- configs
temp_paths() { printf '  client_body_temp_path %s/tmp_body;\n  proxy_temp_path %s/tmp_proxy;\n  fastcgi_temp_path %s/tmp_fastcgi;\n  uwsgi_temp_path %s/tmp_uwsgi;\n  scgi_temp_path %s/tmp_scgi;\n' "$1" "$1" "$1" "$1" "$1"; }

backend_conf() { # dir
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $MAXCONN; }
http {
  access_log off;
$(temp_paths "$1")
  keepalive_requests 10000000;
  keepalive_timeout ${KEEPALIVE_S}s;
  server {
    listen 127.0.0.1:$BACKEND_PORT backlog=4096;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
EOF
}

nginx_conf() { # dir
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $MAXCONN; }
http {
  access_log off;
$(temp_paths "$1")
  keepalive_requests 10000000;
  keepalive_timeout ${KEEPALIVE_S}s;
  client_header_timeout ${KEEPALIVE_S}s;
  upstream be {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

haproxy_cfg() { # dir
  cat <<EOF
global
    nbthread 1
    maxconn $MAXCONN
    pidfile $1/haproxy.pid
defaults
    mode http
    timeout connect 2s
    timeout client ${KEEPALIVE_S}s
    timeout server ${KEEPALIVE_S}s
    timeout http-request ${KEEPALIVE_S}s
    timeout http-keep-alive ${KEEPALIVE_S}s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend be
backend be
    server b1 127.0.0.1:$BACKEND_PORT
EOF
}

keel_conf() {
  cat <<EOF
# generated by bench/memory.sh
[listeners.bench]
addr = "127.0.0.1:$KEEL_PORT"

[admin]
addr = "127.0.0.1:0"

[server]
worker_threads = 1
header_read_timeout = "${KEEPALIVE_S}s"
$(if [ -n "${KEEL_SAMPLE_SIZE:-}" ]; then printf '\n[traffic]\nsample_size = %s\n' "$KEEL_SAMPLE_SIZE"; fi)

[services.bench]
allow_no_identity = true

[pools.bench]
service = "bench"
backends = [{ addr = "127.0.0.1:$BACKEND_PORT" }]

[[routes]]
name = "all"
service = "bench"
pool = "bench"
EOF
}

start_proxy() { # name -> sets PROXY_PID
  local name=$1 d=$OUTDIR/$1
  rm -rf "$d"; mkdir -p "$d"
  case "$name" in
    keel)
      keel_conf > "$d/keel.toml"
      KEEL_STATE_DIR=$d/keel-state launch "$d/out.log" "$KEEL_BIN" --log warn serve --config "$d/keel.toml"
      port=$KEEL_PORT ;;
    nginx)
      nginx_conf "$d" > "$d/nginx.conf"
      launch "$d/out.log" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
      port=$NGINX_PORT ;;
    haproxy)
      haproxy_cfg "$d" > "$d/haproxy.cfg"
      launch "$d/out.log" haproxy -db -f "$d/haproxy.cfg"
      port=$HAPROXY_PORT ;;
  esac
  PROXY_PID=$LAST_PID
  wait_ready "$port" "$PROXY_PID" || { tail -n 20 "$d/out.log" >&2; die "$name did not answer 200 on :$port"; }
}

# ---------------------------------------------------------------- run
for p in $BACKEND_PORT $KEEL_PORT $NGINX_PORT $HAPROXY_PORT; do port_busy "$p" && die "port $p is in use"; done
mkdir -p "$OUTDIR/backend"
backend_conf "$OUTDIR/backend" > "$OUTDIR/backend/nginx.conf"
launch "$OUTDIR/backend/out.log" nginx -p "$OUTDIR/backend" -e "$OUTDIR/backend/error.log" -c "$OUTDIR/backend/nginx.conf"
BACKEND_PID=$LAST_PID
wait_ready "$BACKEND_PORT" "$BACKEND_PID" || die "backend did not come up"

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)   kernel: $(uname -r)   cpus: $(nproc)"
  echo "keel:    $KEEL_BIN ($(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "nginx:   $(nginx -v 2>&1)"
  command -v haproxy >/dev/null && echo "haproxy: $(haproxy -v 2>&1 | head -n1)"
  echo "command: bench/memory.sh --conns $CONNS --settle $SETTLE --modes \"$MODES\" --only \"$ONLY\""
} | tee "$OUTDIR/meta.txt"

ROWS=$OUTDIR/rows.txt; : > "$ROWS"
for mode in $MODES; do
  targets=()
  for name in $ONLY; do
    start_proxy "$name"
    case "$name" in keel) port=$KEEL_PORT ;; nginx) port=$NGINX_PORT ;; haproxy) port=$HAPROXY_PORT ;; esac
    targets+=("$name:$port:$PROXY_PID")
  done
  echo "mode $mode: ${#targets[@]} proxies up, $CONNS connections each, settle ${SETTLE}s"
  timeout -k 5 $(( SETTLE + 60 * ${#targets[@]} + 30 )) \
    python3 "$root/bench/memory_client.py" --mode "$mode" --conns "$CONNS" --settle "$SETTLE" "${targets[@]}" \
    | tee -a "$ROWS" || die "memory_client.py failed"
  for t in "${targets[@]}"; do stop_own "${t##*:}"; done
done

echo
awk '$1 == "ROW" {
  mb = 1024
  if (!hdr++) {
    printf "| proxy | mode | conns (reached) | VmRSS start -> peak -> +3 s -> +%ss (MB) | per connection (kB) | one more connection (kB) | settled vs start | RssAnon start -> settled (MB) |\n", $10
    printf "|---|---|---|---|---|---|---|---|\n"
  }
  per = ($5 > 0) ? ($7 - $6) / $5 : 0
  more = ($5 > $13) ? ($7 - $14) / ($5 - $13) : 0
  printf "| %s | %s | %d (%d) | %.1f -> %.1f -> %.1f -> %.1f | %.2f | %.2f | %+.0f%% | %.1f -> %.1f (%+.0f%%) |\n", $2, $3, $4, $5, $6 / mb, $7 / mb, $8 / mb, $9 / mb, per, more, ($6 > 0 ? 100 * ($9 - $6) / $6 : 0), $11 / mb, $12 / mb, ($11 > 0 ? 100 * ($12 - $11) / $11 : 0)
}' "$ROWS" | tee "$OUTDIR/table.md"
echo "raw rows: $ROWS"
