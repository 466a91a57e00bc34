#!/usr/bin/env bash
# Builds the Keel that the benchmarks measure and the packages ship: cargo's `dist`
# profile (fat LTO, one codegen unit; see Cargo.toml) with the committed PGO profile
# `pgo/keel.profdata` passed to rustc as `-Cprofile-use` (pgo/README.md), then the man
# pages and shell completions generated from that binary.
#
#   dist/build.sh          -> target/dist/keel, keel.build-info and assets/{man,completions}
#   dist/build.sh --deb    -> the same, then target/debian/keel_<version>_<arch>.deb (cargo-deb)
#
# The profile is used on x86_64 hosts, where it was recorded; elsewhere, or with
# KEEL_PGO=0, the dist build is built without it. RUSTFLAGS from the environment are
# kept; CARGO_TARGET_DIR is honoured. About 4 minutes on two idle cores, longer than
# `cargo build --release` (a plain build, no profile) because of the fat LTO.
set -euo pipefail
deb=0
case "${1:-}" in
  --deb) deb=1 ;;
  "") ;;
  *) echo "usage: dist/build.sh [--deb]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/dist
profile=$root/pgo/keel.profdata

flags=${RUSTFLAGS:-}
host=$(rustc -vV | awk '/^host:/ { print $2 }')
if [ "${KEEL_PGO:-1}" != 0 ] && [ "${host%%-*}" = x86_64 ]; then
  [ -r "$profile" ] || { echo "dist/build.sh: no profile at $profile (KEEL_PGO=0 builds without it)" >&2; exit 1; }
  # Cargo rebuilds when RUSTFLAGS change but cannot see a file's content change: naming
  # the profile by its hash makes a refreshed profile recompile every crate by itself.
  sum=$(sha256sum "$profile" | cut -c1-16)
  mkdir -p "$target/pgo-profiles"
  used=$target/pgo-profiles/keel-$sum.profdata
  [ -f "$used" ] || cp "$profile" "$used"
  # LLVM warns once per function whose code changed since the profile was recorded;
  # those are compiled as without a profile, so the warnings only add noise.
  flags="$flags -Cprofile-use=$used -Cllvm-args=-no-pgo-warn-mismatch"
  echo "dist/build.sh: dist build with the profile $profile (sha256 $sum...)" >&2
else
  echo "dist/build.sh: dist build without a profile (host $host, KEEL_PGO=${KEEL_PGO:-1})" >&2
fi
# No --target: it would change every symbol name the profile is matched by (cargo hashes
# the target kind into them), and the profile was recorded from a build without one.
RUSTFLAGS=${flags# } cargo build --profile dist --locked -p keel --features fleet

keel=$out/keel
# What this binary was built with, for CI (which checks that the profile was passed) and
# for benchmark notes.
{
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "rustc: $(rustc -V)"
  echo "rustflags: ${flags# }"
} > "$out/keel.build-info"
rm -rf "$out/assets"
mkdir -p "$out/assets/man" "$out/assets/completions"
"$keel" man --out-dir "$out/assets/man"
"$keel" completions bash > "$out/assets/completions/keel.bash"
"$keel" completions zsh > "$out/assets/completions/_keel"
"$keel" completions fish > "$out/assets/completions/keel.fish"
echo "$keel"

if [ "$deb" = 1 ]; then
  # The binary and assets above are what goes in: cargo-deb does not build again.
  cargo deb -p keel --profile dist --no-build --strip
fi
