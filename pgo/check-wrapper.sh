#!/usr/bin/env bash
# Checks which compilations pgo/rustc-wrapper gives the committed profile: it is fed
# rustc command lines with `echo` standing in for rustc, so it prints what it would run.
# Run by .ci/run; exits non-zero on the first wrong decision.
set -euo pipefail
wrapper=$(cd "$(dirname "$0")" && pwd)/rustc-wrapper
failed=0
expect() { # WANT (yes|no) ARGS...
  local want=$1
  shift
  local got=no
  if "$wrapper" echo "$@" | grep -q -- "-Cprofile-use=.*/pgo/keel.profdata"; then got=yes; fi
  if [ "$got" != "$want" ]; then
    echo "check-wrapper.sh: profile for \`$*\`: wanted $want, got $got" >&2
    failed=1
  fi
}
if [ "$(uname -m)" = x86_64 ]; then
  expect yes --crate-name hyper -C opt-level=3
  expect yes --crate-name hyper -C opt-level=3 --target x86_64-unknown-linux-gnu --crate-type lib
  expect yes --crate-name hyper --target=x86_64-unknown-linux-gnu -C opt-level=3
fi
expect no --crate-name hyper -C opt-level=0
expect no --crate-name build_script_build --crate-type bin
expect no --crate-name hyper -C opt-level=3 --target aarch64-unknown-linux-gnu
expect no --crate-name hyper --target=aarch64-unknown-linux-gnu -C opt-level=3
expect no --crate-name hyper -C opt-level=3 -Cprofile-generate=/tmp/profiles
expect no --crate-name hyper -C opt-level=3 -Cprofile-use=/tmp/fresh.profdata
expect no --crate-name hyper -C opt-level=3 -Zsanitizer=address
KEEL_PGO=0 expect no --crate-name hyper -C opt-level=3
expect no -vV
exit "$failed"
