#!/usr/bin/env bash
# Runs every fuzz target (fuzz/src/lib.rs: check, host, hop_by_hop, traffic) for a
# bounded time each, and fails on the first input that breaks one.
#
#   fuzz/run.sh [--smoke] [--seconds N] [TARGET...]
#
# With cargo-fuzz and a nightly toolchain (`cargo +nightly fuzz`), libFuzzer runs each
# target for N seconds (default 60), coverage-guided, from fuzz/corpus/TARGET (new
# interesting inputs are added there: commit the small ones). Without them, or with
# --smoke, the stable driver (fuzz/src/bin/smoke.rs) runs the corpus and random mutations
# of it for N seconds each (default 10): what .ci/run calls. Crashing inputs are written
# to fuzz/artifacts/TARGET/ either way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0 seconds="" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    -*) echo "usage: fuzz/run.sh [--smoke] [--seconds N] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [ "$smoke" = 0 ] && cargo +nightly fuzz --version >/dev/null 2>&1; then
  [ ${#targets[@]} -gt 0 ] || targets=(check host hop_by_hop traffic)
  cd "$root/fuzz"
  for target in "${targets[@]}"; do
    echo "fuzz/run.sh: libFuzzer, $target, ${seconds:-60} s"
    cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="${seconds:-60}" -max_len=65536
  done
else
  [ "$smoke" = 1 ] || echo "fuzz/run.sh: no \`cargo +nightly fuzz\`; running the stable smoke driver" >&2
  # The main target directory: the fuzz crate's dependencies are mostly the workspace's.
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target} cargo run --quiet --locked \
    --manifest-path "$root/fuzz/Cargo.toml" --no-default-features --bin smoke -- \
    --seconds "${seconds:-10}" ${targets[@]+"${targets[@]}"}
fi
