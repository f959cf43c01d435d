#!/usr/bin/env bash
# Waits until FILE contains the fixed string STRING.
#   wait-for-marker.sh FILE STRING TIMEOUT_SECONDS [PID]
# Exit 0 when found; 1 on timeout; 3 when PID (e.g. the QEMU process) ended
# before the string appeared.  On failure the end of FILE goes to stderr.
# Polls every 0.1 s, so it returns as soon as the marker is there.
set -euo pipefail
prog=wait-for-marker.sh
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $prog FILE STRING TIMEOUT_SECONDS [PID]" >&2
  exit 2
fi
file=$1 str=$2 timeout=$3 pid=${4:-}
case $timeout in ''|*[!0-9]*) echo "$prog: timeout '$timeout' is not a number of seconds" >&2; exit 2 ;; esac

show_tail() {
  echo "$prog: --- last lines of $file ---" >&2
  tail -n 30 "$file" >&2 2>/dev/null || echo "$prog: ($file does not exist)" >&2
  echo "$prog: ---" >&2
}
deadline=$((SECONDS + timeout))
while :; do
  if [ -f "$file" ] && grep -qF -- "$str" "$file"; then
    exit 0
  fi
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    # one last look: the process may have written the marker and exited
    if [ -f "$file" ] && grep -qF -- "$str" "$file"; then exit 0; fi
    echo "$prog: process $pid ended before '$str' appeared in $file" >&2
    show_tail
    exit 3
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "$prog: '$str' did not appear in $file within ${timeout}s" >&2
    show_tail
    exit 1
  fi
  sleep 0.1
done
