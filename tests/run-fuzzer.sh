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
  # libFuzzer's own exit code for a finding is 77, which meson would
  # report as a skip: any finding, timeout or leak must fail the test
  rc=0
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$seeds" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "run-fuzzer: $bin failed (exit $rc)" >&2
    for a in "$work"/artifacts/*; do
      [ -f "$a" ] && { echo "run-fuzzer: input $a:" >&2; od -A d -t x1 "$a" | head -n 40 >&2; }
    done
    exit 1
  fi
  if [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "run-fuzzer: artifacts left by $bin:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
  fi
else
  find "$seeds" -type f -print0 | xargs -0 -r "$bin" || {
    echo "run-fuzzer: $bin failed on a seed" >&2
    exit 1
  }
fi
