#!/usr/bin/env bash
# Checks that the committed profile still names the functions of the dist build.
#
#   bash pgo/check-profile.sh [BINARY]    (default: target/dist/keel, from dist/build.sh)
#
# Why a build can drift from its profile without a warning, and what this check does
# not see: pgo/README.md. It reads the TOP_FUNCTIONS functions the profile counts most
# and fails when fewer than MIN_MATCHED_PERCENT of them are symbols of BINARY (a function
# inlined into every caller leaves no symbol, so a matching build finds about 80 %).
# Run by .ci/run after dist/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-${CARGO_TARGET_DIR:-$root/target}/dist/keel}
profile=$root/pgo/keel.profdata
# How many of the profile's hottest functions to look up.
TOP_FUNCTIONS=200
# The share of them that must be symbols of the binary, in percent.
MIN_MATCHED_PERCENT=70

[ -x "$binary" ] || { echo "check-profile.sh: no binary at $binary" >&2; exit 1; }
host=$(rustc -vV | awk '/^host:/ { print $2 }')
tools=$(rustc --print sysroot)/lib/rustlib/$host/bin
if [ ! -x "$tools/llvm-profdata" ] || [ ! -x "$tools/llvm-nm" ]; then
  rustup component add llvm-tools
fi
work=$(mktemp -d /tmp/keel-check-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A local function's profile name is "<codegen unit>;<symbol>"; the symbol is what the
# binary keeps.
"$tools/llvm-profdata" show --topn="$TOP_FUNCTIONS" "$profile" |
  awk '/, max count = / { name = $1; sub(/^.*;/, "", name); sub(/,$/, "", name); print name }' |
  sort -u > "$work/profile"
"$tools/llvm-nm" --defined-only "$binary" | awk '{ print $NF }' | sort -u > "$work/binary"
total=$(wc -l < "$work/profile")
matched=$(comm -12 "$work/profile" "$work/binary" | wc -l)
[ "$total" -gt 0 ] || { echo "check-profile.sh: no functions read from $profile" >&2; exit 1; }
percent=$((matched * 100 / total))
echo "check-profile.sh: $matched of the profile's $total hottest functions are symbols of $binary ($percent %, at least $MIN_MATCHED_PERCENT % wanted)"
if [ "$percent" -lt "$MIN_MATCHED_PERCENT" ]; then
  echo "check-profile.sh: the committed profile no longer matches this build (a dependency, its features or the toolchain changed); run bench/pgo-build.sh --update" >&2
  exit 1
fi
