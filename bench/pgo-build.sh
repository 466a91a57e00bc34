#!/usr/bin/env bash
# Builds Keel with profile-guided optimisation (PGO): an instrumented build serves a
# bounded, mixed training load on loopback, and its profile steers the final build's
# inlining and code layout. Same source, same features; only the machine code differs.
#
#   bench/pgo-build.sh            -> target/pgo/dist/keel, built with a fresh profile
#                                    (its path is the last line printed)
#   bench/pgo-build.sh --update   -> the same, and the profile replaces pgo/keel.profdata
#
# The dist build (dist/build.sh) uses the committed profile, pgo/keel.profdata (see
# pgo/README.md). This script makes a fresh one, with both builds in cargo's `dist`
# profile so that the symbol names it records are the dist build's. Use it to refresh the
# committed profile after the request path or a dependency changes, or to see whether the
# profile has gone stale: bench/peers-keel.sh runs target/pgo next to the dist build.
# Against a dist build without a profile, a profile-guided build executes 27 % fewer
# user-space instructions per proxied request (bench/runs/2026-11-26-epyc-1024k-l2/, passes
# 5 and 10).
#
# The training load is not the benchmark's request alone: several routes (host, prefix,
# regex, header and method conditions), a weighted split, all three balancing
# algorithms (a cart cookie for the hash ring), uploads with bodies, a client-supplied
# request id, unrouted requests, 64 and 256 connections, and a second run with the
# access log on.
#
# Needs: rustup (the llvm-tools component is added if missing), nginx, wrk, curl.
# Ports: backends 18091-18093, Keel 18120. About 8 minutes on two cores, ~30 s of load.
set -euo pipefail
update=0
case "${1:-}" in
  --update) update=1 ;;
  "") ;;
  *) echo "usage: bench/pgo-build.sh [--update]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
gen_target=$root/target/pgo-gen
use_target=$root/target/pgo
work=$(mktemp -d /tmp/keel-pgo.XXXXXX)
# A fixed directory: it is part of the instrumented build's flags, so a new one each
# time would rebuild every crate. The optimised build, whose flags name the profile,
# is rebuilt whole every time on purpose (cargo cannot see a profile's content change).
profiles=$gen_target/profiles
rm -rf "$profiles"

host=$(rustc -vV | awk '/^host:/ { print $2 }')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools
fi
[ -x "$profdata" ] || { echo "pgo-build.sh: no llvm-profdata at $profdata" >&2; exit 1; }

echo "pgo-build.sh: 1/3 instrumented build ($gen_target)"
CARGO_TARGET_DIR=$gen_target RUSTFLAGS="-Cprofile-generate=$profiles" \
  cargo build --profile dist -p keel --features fleet --quiet

. "$root/bench/backends.sh"
bench_check_ports pgo-build.sh
bench_start_backends "$work"
keel=$gen_target/dist/keel
port=$bench_keel_port
url=http://127.0.0.1:$port

write_config() { # ACCESS_LOG_PATH (empty: off)
  IFS=, read -r -a be <<< "$backends"
  cat <<CONF
[listeners.train]
addr = "127.0.0.1:$port"

[admin]
addr = "127.0.0.1:0"

[server]
worker_threads = 1

[services.shop]
allow_no_identity = true

[pools.web]
service = "shop"
balance = "round_robin"
backends = [{ addr = "${be[0]}" }, { addr = "${be[1]}", weight = 2 }, { addr = "${be[2]}" }]

[pools.api]
service = "shop"
balance = "least_request"
backends = [{ addr = "${be[0]}" }, { addr = "${be[1]}" }, { addr = "${be[2]}" }]

[pools.cart]
service = "shop"
balance = "consistent_hash"
hash_key = "cookie:cart_id"
backends = [{ addr = "${be[0]}" }, { addr = "${be[1]}" }, { addr = "${be[2]}" }]

[[routes]]
name = "cart"
host = "shop.example.com"
path_prefix = "/cart"
methods = ["GET", "POST"]
service = "shop"
pool = "cart"

[[routes]]
name = "beta"
headers = { "x-beta" = "1" }
service = "shop"
split = [{ pool = "web", weight = 90 }, { pool = "api", weight = 10 }]

[[routes]]
name = "api"
path_prefix = "/api"
service = "shop"
pool = "api"
retries = 2

[[routes]]
name = "assets"
path_regex = "/static/[a-z]+\\\\.(css|js)"
service = "shop"
pool = "web"

[[routes]]
name = "site"
host = "*.example.com"
service = "shop"
pool = "web"

[[routes]]
name = "local"
host = "127.0.0.1"
service = "shop"
pool = "web"
CONF
  if [ -n "$1" ]; then
    printf '\n[access_log]\npath = "%s"\n' "$1"
  fi
}

cat > "$work/upload.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

train_once() { # NAME ACCESS_LOG_PATH (empty: off) SECONDS (the first, longest run)
  mkdir -p "$work/$1"
  write_config "$2" > "$work/$1/keel.toml"
  KEEL_STATE_DIR=$work/$1/state LLVM_PROFILE_FILE="$profiles/keel-%p-%m.profraw" \
    "$keel" --log warn serve --config "$work/$1/keel.toml" </dev/null >"$work/$1/out.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  bench_wait_ok "$url/"
  local w=(timeout -k 2 20 wrk -t1)
  "${w[@]}" -c64 -d"$3"s "$url/" >/dev/null
  "${w[@]}" -c256 -d2s "$url/index.html?page=2" >/dev/null
  "${w[@]}" -c64 -d2s -H "Host: shop.example.com" -H "Cookie: session=s1; cart_id=c42" "$url/cart/items" >/dev/null
  "${w[@]}" -c16 -d2s -s "$work/upload.lua" -H "Host: api.example.com" "$url/api/orders" >/dev/null
  "${w[@]}" -c16 -d1s -H "X-Beta: 1" -H "X-Request-Id: client-chosen-id" "$url/new" >/dev/null
  "${w[@]}" -c16 -d1s -H "Host: www.example.com" "$url/static/site.css" >/dev/null
  "${w[@]}" -c1 -d1s -H "Host: nowhere.example.net" "$url/missing" >/dev/null
  # SIGTERM: Keel drains and exits normally, which is when the profile is written.
  kill -TERM "$pid"
  wait "$pid" || true
}

echo "pgo-build.sh: 2/3 training load"
train_once plain "" 6
train_once logged "$work/logged/access.log" 2
# Only Keel's own profiles: build scripts compiled with the same flags leave theirs too.
ls "$profiles"/keel-*.profraw >/dev/null 2>&1 || { echo "pgo-build.sh: training wrote no profile" >&2; exit 1; }
# Sparse: functions the load never ran are left out, not recorded as never run. That
# keeps the committed file near 1 MB instead of 6.5, and measured no slower
# (bench/runs/2026-11-26-epyc-1024k-l2/2026-11-27-pass10.md).
"$profdata" merge --sparse -o "$work/keel.profdata" "$profiles"/keel-*.profraw

echo "pgo-build.sh: 3/3 optimised build ($use_target)"
CARGO_TARGET_DIR=$use_target RUSTFLAGS="-Cprofile-use=$work/keel.profdata" \
  cargo build --profile dist -p keel --features fleet --quiet
# What the binary was built from, for bench/peers-keel.sh's report.
echo "$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' plus uncommitted changes')" > "$use_target/COMMIT"
echo "$use_target/dist/keel"
if [ "$update" = 1 ]; then
  cp "$work/keel.profdata" "$root/pgo/keel.profdata"
  echo "pgo-build.sh: replaced pgo/keel.profdata; the next dist/build.sh rebuilds with it" >&2
fi
