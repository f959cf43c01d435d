#!/usr/bin/env bash
# The man page: man -l renders it without a warning (groff warnings on),
# and every command that "qubectl --help" lists has its own section.
#   qubectl-man.sh QUBECTL MANPAGE
set -euo pipefail
q=$1 page=$2
fails=0
if ! command -v man >/dev/null; then
  echo "SKIP: man (man-db) is not installed"; exit 77
fi
warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || { echo "FAIL: man -l exited $?"; exit 1; }
if [ -n "$warn" ]; then
  echo "FAIL: man -l warns:"; echo "$warn" | sed 's/^/    /'; fails=$((fails + 1))
else
  echo "ok: man -l renders $page without warnings"
fi
text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
# the commands: "  NAME  summary" lines of the "commands:" block
cmds=$("$q" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z-]*\( [a-z][a-z-]*\)\?\)  .*/\1/p' | sed 's/ *$//')
[ -n "$cmds" ] || { echo "FAIL: no commands read from qubectl --help"; exit 1; }
n=0
while IFS= read -r c; do
  n=$((n + 1))
  # a section heading (3 spaces in) that starts with the command
  if grep -Eq "^   ${c}( |\$)" <<<"$text"; then
    echo "ok: man page has a section for \"$c\""
  else
    echo "FAIL: man page has no section for \"$c\""; fails=$((fails + 1))
  fi
done <<<"$cmds"
[ "$n" -ge 20 ] || { echo "FAIL: only $n commands read from --help"; fails=$((fails + 1)); }
if [ "$fails" -ne 0 ]; then echo "qubectl-man: $fails failed"; exit 1; fi
echo "qubectl-man: all passed ($n commands)"
