#!/usr/bin/env bash
# Bounded fuzzing run for the test suite.
#   run-fuzzer.sh libfuzzer|replay BINARY SEED_DIR SECONDS
# With a libFuzzer binary: fuzzes for SECONDS starting from SEED_DIR, new
# inputs go to a scratch corpus (the seed directory is never written), and
# any crash, leak or timeout fails the test.  With a replay binary (built
# without clang), runs every seed through the harness once.
set -euo pipefail
mode=$1 bin=$2 seeds=$3 secs=$4
[ -d "$seeds" ] || { echo "run-fuzzer: seed corpus $seeds missing" >&2; exit 1; }
if [ "$mode" = libfuzzer ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/qube-fuzz.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir "$work/corpus" "$work/artifacts"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$seeds"
  if [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "run-fuzzer: artifacts left by $bin:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
  fi
else
  find "$seeds" -type f -print0 | xargs -0 -r "$bin"
fi
