#!/usr/bin/env bash
# Fleet mode (issue 25): apply-to-all-nodes-serving latency for N `keel serve` processes
# sharing one etcd, and the single-node (SQLite) figure beside it as the reference.
#
#   bench/fleet.sh [NODES] [ROUNDS]      (defaults 3 and 5)
#
# Starts a single-member etcd (/usr/bin/etcd) and one python3 http.server backend, then
# NODES keel serve processes (each its own listener, admin address, state dir and
# [fleet] node name), and for each round applies a changed route timeout with
# `keel apply --no-guard` to node 2 (node 1 when NODES is 1) and polls every node's
# x-keel-generation until all serve the new generation: the time from starting the
# apply command to the last node serving. Then ROUNDS `keel rollback --to <one back>`
# on the same node, timed the same way to the last node serving the older generation
# (rollback-to-all-nodes). Then the same rounds on one node without [fleet]. Bounded: ROUNDS applies, a few curl requests per poll, 127.0.0.1 only.
# Needs: etcd (Debian etcd-server), python3, curl; the keel binary (KEEL_BIN, default
# target/debug/keel: the latency is the control plane's, not the data plane's).
set -euo pipefail
nodes=${1:-3}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
KEEL_BIN=${KEEL_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/keel}
[ -x "$KEEL_BIN" ] || { echo "fleet.sh: no keel binary at $KEEL_BIN (cargo build -p keel)" >&2; exit 1; }
[ -x /usr/bin/etcd ] || { echo "fleet.sh: /usr/bin/etcd missing (apt-get install etcd-server)" >&2; exit 1; }
out=$(mktemp -d /tmp/keel-fleet.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

etcd_client=$(free_port); etcd_peer=$(free_port)
/usr/bin/etcd --name=bench --data-dir="$out/etcd" --log-level=error \
  --listen-client-urls="http://127.0.0.1:$etcd_client" --advertise-client-urls="http://127.0.0.1:$etcd_client" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
  --initial-cluster="bench=http://127.0.0.1:$etcd_peer" >"$out/etcd.log" 2>&1 &
pids+=($!)
backend=$(free_port)
python3 -m http.server "$backend" --bind 127.0.0.1 --directory "$out" >/dev/null 2>&1 &
pids+=($!)
until curl -fs "http://127.0.0.1:$etcd_client/health" >/dev/null; do sleep 0.05; done
until curl -fs "http://127.0.0.1:$backend/" >/dev/null; do sleep 0.05; done

routing() { # TIMEOUT
  cat <<TOML
[services.web]
allow_no_identity = true
[pools.web]
service = "web"
backends = ["127.0.0.1:$backend"]
[[routes]]
name = "all"
service = "web"
pool = "web"
timeout = "$1"
TOML
}

start_node() { # NAME FLEET(yes/no) -> sets listen_NAME / admin_NAME
  local name=$1 fleet=$2 listen admin
  listen=$(free_port); admin=$(free_port)
  mkdir -p "$out/$name"
  {
    printf '[listeners.web]\naddr = "127.0.0.1:%s"\n[admin]\naddr = "127.0.0.1:%s"\n' "$listen" "$admin"
    if [ "$fleet" = yes ]; then
      printf '[fleet]\nstore = "etcd"\nendpoints = ["http://127.0.0.1:%s"]\nprefix = "/keel/bench"\nnode = "%s"\n' "$etcd_client" "$name"
    fi
    printf '[safety]\nwatch = "1s"\nknown_good_after = "1s"\n'
    routing 5s
  } >"$out/$name/keel.toml"
  KEEL_ADMIN_TOKEN=bench-token KEEL_LOG=warn "$KEEL_BIN" serve --config "$out/$name/keel.toml" \
    --state-dir "$out/$name/state" >"$out/$name/serve.log" 2>&1 &
  pids+=($!)
  eval "listen_$name=$listen"
  local tries=0
  until curl -fs -o /dev/null -H 'host: shop.example' "http://127.0.0.1:$listen/"; do
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || { echo "fleet.sh: node $name did not serve within 30 s: $out/$name/serve.log" >&2; exit 1; }
    sleep 0.05
  done
}

generation_of() { # PORT
  curl -s -o /dev/null -D - -H 'host: shop.example' "http://127.0.0.1:$1/" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="x-keel-generation" { print $2 }'
}

measure() { # LABEL APPLY_NODE NODE...: prints one latency per round (ms)
  local label=$1 target=$2; shift 2
  local port_var="listen_$target" times=()
  for round in $(seq 1 "$rounds"); do
    local file="$out/$target/apply-$round.toml"
    { sed '/^\[services.web\]/,$d' "$out/$target/keel.toml"; routing "$((5 + round))s"; } >"$file"
    for _ in $(seq 1 20); do curl -s -o /dev/null -H 'host: shop.example' "http://127.0.0.1:${!port_var}/"; done
    local t0 want
    t0=$(now_ms)
    KEEL_ADMIN_TOKEN=bench-token "$KEEL_BIN" apply --no-guard --state-dir "$out/$target/state" \
      --admin "http://127.0.0.1:$(awk -F'"' '/^\[admin\]/{getline; split($2,a,":"); print a[2]}' "$out/$target/keel.toml")" \
      "$file" >"$out/apply-$label-$round.log" 2>&1 || { echo "apply failed: $(cat "$out/apply-$label-$round.log")" >&2; exit 1; }
    want=$(generation_of "${!port_var}")
    for node in "$@"; do
      local p="listen_$node"
      until [ "$(generation_of "${!p}")" = "$want" ]; do sleep 0.01; done
    done
    times+=($(( $(now_ms) - t0 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '{ v[NR] = $1 } END {
    printf "%-28s rounds %d  median %d ms  max %d ms\n", label, NR, v[int((NR + 1) / 2)], v[NR] }'
}

measure_rollback() { # LABEL TARGET NODE...: each round rolls the fleet back one generation from TARGET
  local label=$1 target=$2; shift 2
  local port_var="listen_$target" times=() admin
  admin=$(awk -F'"' '/^\[admin\]/{getline; split($2,a,":"); print a[2]}' "$out/$target/keel.toml")
  for round in $(seq 1 "$rounds"); do
    local t0 want
    want=$(( $(generation_of "${!port_var}") - 1 ))
    [ "$want" -ge 1 ] || break
    t0=$(now_ms)
    KEEL_ADMIN_TOKEN=bench-token "$KEEL_BIN" rollback --to "$want" --force -m "bench round $round" \
      --state-dir "$out/$target/state" --admin "http://127.0.0.1:$admin" \
      >"$out/rollback-$label-$round.log" 2>&1 || { echo "rollback failed: $(cat "$out/rollback-$label-$round.log")" >&2; exit 1; }
    for node in "$@"; do
      local p="listen_$node"
      until [ "$(generation_of "${!p}")" = "$want" ]; do sleep 0.01; done
    done
    times+=($(( $(now_ms) - t0 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '{ v[NR] = $1 } END {
    printf "%-28s rounds %d  median %d ms  max %d ms\n", label, NR, v[int((NR + 1) / 2)], v[NR] }'
}

names=()
for i in $(seq 1 "$nodes"); do start_node "n$i" yes; names+=("n$i"); done
target=n2; [ "$nodes" -ge 2 ] || target=n1
measure "fleet of $nodes (etcd)" "$target" "${names[@]}"
measure_rollback "rollback, fleet of $nodes" "$target" "${names[@]}"
start_node single no
measure "single node (sqlite)" single single
measure_rollback "rollback, single (sqlite)" single single
echo "logs and state: $out"
