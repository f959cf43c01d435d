#!/usr/bin/env bash
# The whole test suite: installs dependencies, then builds and tests twice,
# once with the default compiler and once with clang, AddressSanitizer,
# UndefinedBehaviorSanitizer and real libFuzzer runs.  Ends with one line
# counting every test of both builds.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh

status=0
run_build() {
  local dir=$1; shift
  rm -rf "$dir"
  meson setup "$dir" "$@"
  meson compile -C "$dir"
  meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" --timeout-multiplier 3 || status=1
}

QUBE_SLOW_TESTS=1 run_build build-test   # + template-image, template, debs (docs/install.md, "CI")
CC=clang run_build build-test-san \
  -Db_sanitize=address,undefined -Db_lundef=false \
  -Dc_args=-fno-sanitize-recover=all -Dfuzz=enabled

python3 scripts/count-tests.py build-test build-test-san || status=1
exit $status
