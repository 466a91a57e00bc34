#!/usr/bin/env bash
# Checks that the committed profile still names the code of the dist build.
#
#   bash pgo/check-profile.sh [BINARY] [PROFILE]
#       (defaults: target/dist/keel, from dist/build.sh, and pgo/keel.profdata)
#
# LLVM finds a function's profile by its symbol name, and every Rust symbol name carries a
# hash of its crate's identity (versions, features, dependencies, compiler, profile
# settings; pgo/README.md). The same identity names the crate's codegen unit
# ("hyper.305f40e53054cba6-cgu.0"): the profile records that unit for every local function
# ("<unit>;<symbol>"), and the binary's debug info keeps the unit of every crate it was
# built from (a compile unit named "<crate root>/@/<unit>"). So this compares units, not
# symbols: of the profile's TOP_FUNCTIONS hottest functions that carry a unit, it counts
# those whose unit BINARY was built from. A build that matches its profile has all of them;
# a crate renamed by a dependency or toolchain change loses all of its functions at once
# and is named. (Symbols would not do: a hot function inlined into every caller, which the
# profile itself makes likelier, leaves none; pgo/README.md has the measurements.)
# Needs the binary's debug info (the dist profile keeps line tables; the packaged, stripped
# binary has none) and readelf (binutils). Run by .ci/run after dist/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
profile=${2:-$root/pgo/keel.profdata}
# How many of the profile's hottest functions (by their largest block count) to look at.
TOP_FUNCTIONS=200
# The share of those (with a unit) whose unit the binary must have, in percent: a matching
# build has 100; below this, a crate holding a twentieth of the hot code lost its profile.
MIN_MATCHED_PERCENT=95

[ -x "$binary" ] || { echo "check-profile.sh: no binary at $binary" >&2; exit 1; }
[ -r "$profile" ] || { echo "check-profile.sh: no profile at $profile" >&2; exit 1; }
command -v readelf >/dev/null || { echo "check-profile.sh: needs readelf (binutils)" >&2; exit 1; }
host=$(rustc -vV | awk '/^host:/ { print $2 }')
tools=$(rustc --print sysroot)/lib/rustlib/$host/bin
if [ ! -x "$tools/llvm-profdata" ]; then
  rustup component add llvm-tools
fi
work=$(mktemp -d /tmp/keel-check-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The units of the hottest local functions, one line per function ("hyper.305f…-cgu.0").
"$tools/llvm-profdata" show --topn="$TOP_FUNCTIONS" "$profile" |
  awk '/, max count = / && index($1, ";") { sub(/;.*$/, "", $1); print $1 }' > "$work/profile"
# The units the binary was built from: its compile units' names end in "/@/<unit>".
readelf --debug-dump=info --dwarf-depth=1 "$binary" 2>/dev/null |
  awk '/DW_AT_name/ && index($0, "/@/") { sub(/^.*\/@\//, ""); print }' | sort -u > "$work/binary"

total=$(wc -l < "$work/profile")
[ "$total" -gt 0 ] || { echo "check-profile.sh: no functions with a unit read from $profile" >&2; exit 1; }
[ -s "$work/binary" ] || { echo "check-profile.sh: $binary has no debug info to read its units from (a stripped binary?)" >&2; exit 1; }
matched=$(awk 'NR == FNR { built[$0] = 1; next } ($0 in built)' "$work/binary" "$work/profile" | wc -l)
percent=$((matched * 100 / total))
echo "check-profile.sh: $matched of the profile's $total hottest local functions are in units $binary was built from ($percent %, at least $MIN_MATCHED_PERCENT % wanted)"
# Each missing unit, by crate: renamed (the crate is there under another hash) or gone.
awk 'NR == FNR { crate = $0; sub(/\..*$/, "", crate); built[$0] = 1; has[crate] = has[crate] " " $0; next }
     !($0 in built) { missing[$0]++ }
     END {
       for (unit in missing) {
         crate = unit; sub(/\..*$/, "", crate)
         how = (crate in has) ? "renamed, now" has[crate] : "not in the build"
         printf "check-profile.sh:   %d hot functions in %s: %s\n", missing[unit], unit, how
       }
     }' "$work/binary" "$work/profile" | sort -t: -k2 -rn
if [ "$percent" -lt "$MIN_MATCHED_PERCENT" ]; then
  echo "check-profile.sh: the committed profile no longer names this build's crates (a dependency, its features or the toolchain changed since it was recorded); run bench/pgo-build.sh --update" >&2
  exit 1
fi
