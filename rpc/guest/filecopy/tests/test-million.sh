#!/usr/bin/env bash
# 1,000,000 tiny entries against the receiver's default limits: it stores
# 500,000 (max-entries), refuses the next with a message, keeps its memory
# constant, and nothing appears outside the incoming directory.  Its own
# test because creating 500,000 files takes 20-120 s here (file-system
# bound: 40-240 us per file depending on the machine's load); the same
# refusal with a lower limit is part of filecopy-hostile.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v /usr/bin/time >/dev/null || { echo "GNU time (/usr/bin/time) missing: skipped"; exit 77; }
mkdir -p "$T/box/etc"
echo secret > "$T/box/etc/passwd"
new_incoming "$T/box/in"
before=$(snapshot "$T/box" | grep -v "^$T/box/in")
start=$(date +%s.%N)
RECV_TIME=(/usr/bin/time -f %M -o "$T/rss")
hostile million "$T/box/in"
RECV_TIME=()
rss=$(tail -1 "$T/rss")
echo "# 500,000 entries stored and the next refused in $(echo "$(date +%s.%N) - $start" | bc) s; receiver max RSS $rss KiB"
check "refused (exit $RECV_RC) at the 500,001st entry, naming the limit" \
	bash -c "test $RECV_RC = 1 && grep -q \"entry 't/499999': more than 500000 entries refused (max-entries)\" '$T/recv.err'"
check "reply record says refused, with 500000 entries stored" python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:4] == b"QFCR" and struct.unpack("<I", d[4:8])[0] != 0
assert struct.unpack("<Q", d[16:24])[0] == 500000
' "$T/reply"
check "exactly 500000 entries stored (t and 499,999 files)" \
	test "$(find "$T/box/in/hostile" -mindepth 1 | wc -l)" = 500000
check "receiver memory stays small (max RSS $rss KiB < 32 MiB)" test "$rss" -lt 32768
check "nothing changed outside the incoming directory" \
	test "$before" = "$(snapshot "$T/box" | grep -v "^$T/box/in")"
finish
