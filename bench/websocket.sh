#!/usr/bin/env bash
# websocket.sh -- WebSocket tunnels through Keel, nginx and HAProxy (issue 23's benchmark).
#
# One Python asyncio WebSocket echo backend (bench/websocket_peer.py backend, :18381).
# In front of it, one at a time, each with one worker thread/process: Keel (:18310, a
# route with upgrades = ["websocket"]), nginx (:18311, proxy_pass with the Upgrade and
# Connection headers set) and HAProxy (:18312, mode http, `timeout tunnel`). For each,
# bench/websocket_peer.py client opens --tunnels tunnels (default 1,000), sends one echo
# on each, reads the proxy's VmRSS (summed over its process tree), then runs echo round
# trips on every tunnel for --seconds (default 8) and counts them:
#
#   messages/s           echoes received per second over all tunnels (one message out,
#                        its echo back: a round trip)
#   kB per open tunnel   (VmRSS with the tunnels open - VmRSS before) / tunnels
#
# With --stat, `perf stat` also watches the proxy for STAT_SECONDS in the middle of the
# echoes (from 2 s after all its tunnels are established) and prints, per echoed
# message, the proxy's CPU time and its system calls (recvfrom, sendto, epoll_wait...)
# and context switches: where a proxy spends per message, not only how many it moved.
# A message is counted as half of the proxy's sendto calls (one write each way).
#
# Bounded: about 3 x (seconds + 5) s in all (under a minute with the defaults), every
# step under `timeout`. Only 127.0.0.1; every process started here is tracked by PID and
# stopped on exit; nothing else is touched. The client and the backend are Python and
# share the machine with the proxy: on a small machine they, not the proxy, may set the
# messages/s, so compare the proxies' ratios, not the absolute numbers.
#
#   bench/websocket.sh                          # 1,000 tunnels, 8 s of echoes each
#   bench/websocket.sh --tunnels 200 --seconds 3 --only keel
#   bench/websocket.sh --stat                   # and CPU and syscalls per message (perf)
#
# Needs: nginx, haproxy, python3, curl, and a release build of Keel
# (cargo build --release -p keel; KEEL_BIN overrides the path).
set -u -o pipefail
export LC_ALL=C

die() { echo "websocket.sh: $*" >&2; exit 2; }
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

# Tunnels per proxy (default; --tunnels, up to MAX_TUNNELS) and seconds of echoes.
TUNNELS=1000 MAX_TUNNELS=5000 SECONDS_ECHO=8 MAX_SECONDS=20
BACKEND_PORT=18381 KEEL_PORT=18310 NGINX_PORT=18311 HAPROXY_PORT=18312
ONLY="keel nginx haproxy" OUTDIR="" STAT=0
# Seconds perf stat watches a proxy during the echoes (--stat), and the wait after its
# tunnels are established before it starts (the client's one echo each and its pause).
STAT_SECONDS=4 STAT_AFTER_S=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--tunnels) TUNNELS=${2:?}; shift ;;
    --seconds) SECONDS_ECHO=${2:?}; shift ;;
    --only) ONLY=${2:?}; shift ;;
    --outdir) OUTDIR=${2:?}; shift ;;
    --stat) STAT=1 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
is_uint "$TUNNELS" && [ "$TUNNELS" -ge 1 ] && [ "$TUNNELS" -le "$MAX_TUNNELS" ] || die "--tunnels must be 1..$MAX_TUNNELS"
is_uint "$SECONDS_ECHO" && [ "$SECONDS_ECHO" -ge 1 ] && [ "$SECONDS_ECHO" -le "$MAX_SECONDS" ] || die "--seconds must be 1..$MAX_SECONDS"
for p in $ONLY; do case "$p" in keel|nginx|haproxy) ;; *) die "unknown proxy '$p' (keel|nginx|haproxy)" ;; esac; done

root=$(cd "$(dirname "$0")/.." && pwd)
KEEL_BIN=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/keel}
case " $ONLY " in *" keel "*) [ -x "$KEEL_BIN" ] || die "no keel binary at $KEEL_BIN (cargo build --release -p keel)" ;; esac
case " $ONLY " in *" haproxy "*) command -v haproxy >/dev/null || die "haproxy not found (apt-get install -y haproxy)" ;; esac
case " $ONLY " in *" nginx "*) command -v nginx >/dev/null || die "nginx not found (apt-get install -y nginx)" ;; esac
command -v curl >/dev/null || die "curl not found"
if [ "$STAT" = 1 ]; then
  command -v perf >/dev/null || die "--stat needs perf (linux-perf)"
  [ "$SECONDS_ECHO" -ge $(( STAT_SECONDS + STAT_AFTER_S + 1 )) ] || die "--stat needs --seconds of at least $(( STAT_SECONDS + STAT_AFTER_S + 1 ))"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=65536
[ "$NOFILE" -ge $(( TUNNELS * 3 + 256 )) ] || die "ulimit -n is $NOFILE: too low for $TUNNELS tunnels"
MAXCONN=$(( 2 * TUNNELS + 1000 ))

if [ -z "$OUTDIR" ]; then OUTDIR=$(mktemp -d /tmp/websocket-bench.XXXXXX) || die "mktemp failed"; fi
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
trap 'echo "websocket.sh: interrupted" >&2; cleanup; exit 130' INT TERM HUP

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
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://127.0.0.1:$BACKEND_PORT;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 300s;
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
    timeout client 60s
    timeout server 60s
    timeout tunnel 300s
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend be
backend be
    server b1 127.0.0.1:$BACKEND_PORT
EOF
}

keel_conf() {
  cat <<EOF
# generated by bench/websocket.sh
[listeners.bench]
addr = "127.0.0.1:$KEEL_PORT"

[admin]
addr = "127.0.0.1:0"

[server]
worker_threads = 1

[services.live]
allow_no_identity = true

[pools.live]
service = "live"
backends = [{ addr = "127.0.0.1:$BACKEND_PORT" }]

[[routes]]
name = "live"
service = "live"
pool = "live"
upgrades = ["websocket"]
tunnel_idle_timeout = "5m"
EOF
}

start_proxy() { # name -> sets PROXY_PID and port
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

# ---------------------------------------------------------------- per-message costs (--stat)
stat_echoes() { # name port: perf stat of the process holding the proxy's tunnels, mid-echo
  local name=$1 port=$2 pid i
  for i in $(seq 1 300); do
    [ "$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)" -ge "$TUNNELS" ] && break
    sleep 0.1
  done
  sleep "$STAT_AFTER_S"
  # The process that holds the client connections (nginx's worker, not its master); a
  # few tracepoints only: attaching all of syscalls:* takes perf longer than the echoes.
  pid=$(ss -Htnp state established "( sport = :$port )" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
  [ -n "$pid" ] || return 0
  timeout -k 2 $(( STAT_SECONDS + 10 )) perf stat -x, -o "$OUTDIR/$name.stat" \
    -e task-clock -e context-switches -e raw_syscalls:sys_enter -e syscalls:sys_enter_recvfrom \
    -e syscalls:sys_enter_sendto -e syscalls:sys_enter_epoll_wait -p "$pid" -- sleep "$STAT_SECONDS" \
    >/dev/null 2>"$OUTDIR/$name.stat.err"
}

stat_table() {
  local name
  echo
  echo "| proxy | messages/s (perf window) | CPU us/message | recvfrom | sendto | epoll_wait | other syscalls | context switches |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in $ONLY; do
    [ -s "$OUTDIR/$name.stat" ] || continue
    awk -F, -v name="$name" -v secs="$STAT_SECONDS" '
      $1 !~ /^[0-9.]+$/ { next }
      $3 == "task-clock" { cpu = $1; next }
      $3 == "context-switches" { cs = $1; next }
      $3 == "raw_syscalls:sys_enter" { all = $1; next }
      { sub(/syscalls:sys_enter_/, "", $3); n[$3] = $1 }
      END {
        m = n["sendto"] / 2
        if (m <= 0) { printf "| %s | no messages seen | | | | | | |\n", name; exit }
        other = all - n["recvfrom"] - n["sendto"] - n["epoll_wait"]
        printf "| %s | %.0f | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", name, m / secs,
          cpu * 1000 / m, n["recvfrom"] / m, n["sendto"] / m, n["epoll_wait"] / m, other / m, cs / m
      }' "$OUTDIR/$name.stat"
  done
}

# ---------------------------------------------------------------- run
for p in $BACKEND_PORT $KEEL_PORT $NGINX_PORT $HAPROXY_PORT; do port_busy "$p" && die "port $p is in use"; done
mkdir -p "$OUTDIR/backend"
launch "$OUTDIR/backend/out.log" python3 "$root/bench/websocket_peer.py" backend --port "$BACKEND_PORT"
BACKEND_PID=$LAST_PID
wait_ready "$BACKEND_PORT" "$BACKEND_PID" || die "backend did not come up"

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)   kernel: $(uname -r)   cpus: $(nproc)   load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "keel:    $KEEL_BIN ($(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  command -v nginx >/dev/null && echo "nginx:   $(nginx -v 2>&1)"
  command -v haproxy >/dev/null && echo "haproxy: $(haproxy -v 2>&1 | head -n1)"
  echo "command: bench/websocket.sh --tunnels $TUNNELS --seconds $SECONDS_ECHO --only \"$ONLY\""
} | tee "$OUTDIR/meta.txt"

ROWS=$OUTDIR/rows.txt; : > "$ROWS"
for name in $ONLY; do
  start_proxy "$name"
  STAT_PID=""
  if [ "$STAT" = 1 ]; then stat_echoes "$name" "$port" & STAT_PID=$!; OWN_PIDS+=("$STAT_PID"); OWN_START+=("$(proc_start "$STAT_PID" || echo ?)"); fi
  timeout -k 5 $(( SECONDS_ECHO + 60 )) \
    python3 "$root/bench/websocket_peer.py" client --port "$port" --pid "$PROXY_PID" --name "$name" \
      --tunnels "$TUNNELS" --seconds "$SECONDS_ECHO" | tee -a "$ROWS" || die "the client failed against $name"
  [ -n "$STAT_PID" ] && stop_own "$STAT_PID"
  stop_own "$PROXY_PID"
done

echo
awk '$1 == "ROW" {
  if (!hdr++) {
    printf "| proxy | tunnels (open) | echo messages/s | VmRSS before -> with tunnels (MB) | kB per open tunnel |\n"
    printf "|---|---|---|---|---|\n"
  }
  rate = ($8 > 0) ? $7 / $8 : 0
  per = ($4 > 0) ? ($6 - $5) / $4 : 0
  printf "| %s | %d (%d) | %.0f | %.1f -> %.1f | %.1f |\n", $2, $3, $4, rate, $5 / 1024, $6 / 1024, per
}' "$ROWS" | tee "$OUTDIR/table.md"
[ "$STAT" = 1 ] && stat_table | tee "$OUTDIR/stat.md"
echo "raw rows: $ROWS"
