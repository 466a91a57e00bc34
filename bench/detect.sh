#!/usr/bin/env bash
# Detection and revert times of bad configs under a bounded ~200 req/s loopback load,
# through keel-control's guarded Controller (what `keel serve` runs; the `detect`
# example), then an optional clean run that must raise no alert.
#
#   bench/detect.sh                 # 5 runs of each scenario
#   bench/detect.sh --runs 10       # more runs
#   CLEAN=120 bench/detect.sh       # plus the 2-minute false-positive run
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p keel-control --example detect
bin="${CARGO_TARGET_DIR:-target}/release/examples/detect"
"$bin" "$@"
if [[ -n "${CLEAN:-}" ]]; then
  "$bin" --clean "$CLEAN"
fi
