#!/usr/bin/env bash
# Blast-radius benchmark (issue 5): 10,000 sampled requests diffed against two
# 10,000-route configs, in release mode. Goal: total < 1 s.
# Extra arguments go to the example: --routes N --requests N --runs N.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet -p keel-impact --example impact_bench -- "$@"
