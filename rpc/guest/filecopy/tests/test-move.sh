#!/usr/bin/env bash
# Move: the sender deletes its sources only after the receiver confirmed
# exactly the entries, bytes and CRC it sent; a refused, interrupted or
# wrongly confirmed move leaves every source intact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mk_src() {
	rm -rf "$T/src"; mkdir -p "$T/src/m/sub"
	head -c 300000 /dev/urandom > "$T/src/m/a"
	echo b > "$T/src/m/sub/b"
	ln -s ../a "$T/src/m/sub/l"
	echo single > "$T/src/one"
	(cd "$T/src" && find . -printf '%p %y %s\n' | LC_ALL=C sort) > "$T/src.list"
}
intact() { test "$(cd "$T/src" && find . -printf '%p %y %s\n' | LC_ALL=C sort)" = "$(cat "$T/src.list")"; }

# 1. success: sources gone, copies complete
mk_src
new_incoming "$T/in"
pair -C "$T/src" work "$T/in" -- --move m one
check "move: exit 0/0 ($(cat "$T/send.err"))" test "$SEND_RC/$RECV_RC" = 0/0
check "move: sources deleted" test -z "$(ls -A "$T/src")"
check "move: copies complete" bash -c "test \$(stat -c %s '$T/in/work/m/a') = 300000 && test -L '$T/in/work/m/sub/l' && test -f '$T/in/work/one'"

# 2. refused by the receiver (a limit): nothing deleted
mk_src
pair -C "$T/src" work "$T/in" --max-bytes 1000 -- --move m one
check "refused move: sender exit 1 ($SEND_RC), says why" \
	bash -c "test $SEND_RC = 1 && grep -q 'max-bytes' '$T/send.err' && grep -q 'nothing deleted' '$T/send.err'"
check "refused move: every source intact" intact

# 3. interrupted: the receiver dies after 100 KB (here: a reader that stops)
mk_src
rm -f "$T/s2r" "$T/r2s"; mkfifo "$T/s2r" "$T/r2s"
(exec 4<"$T/s2r" 3>"$T/r2s"; head -c 100000 <&4 >/dev/null) &
rc=0; (cd "$T/src" && "$QFC_SEND" --stdio --move m one >"$T/s2r" <"$T/r2s" 2>"$T/send.err") || rc=$?
wait
check "interrupted move: sender exit 1 ($rc)" test "$rc" = 1
check "interrupted move: says nothing is confirmed or deleted" grep -q 'nothing deleted' "$T/send.err"
check "interrupted move: every source intact" intact

# 4. a receiver that claims success for something else (fewer entries,
# wrong CRC): not a confirmation of exactly what was sent
cat > "$T/liar.py" <<'PY'
import struct, sys
data = sys.stdin.buffer.read()
lie = sys.argv[1]
entries, nbytes, crc = struct.unpack("<QQI", data[-24:-4])
if lie == "entries":
    entries -= 1
else:
    crc ^= 1
sys.stdout.buffer.write(b"QFCR" + struct.pack("<IIIQQ", 0, 0, crc, entries, nbytes))
PY
for lie in entries crc; do
	mk_src
	rm -f "$T/s2r" "$T/r2s"; mkfifo "$T/s2r" "$T/r2s"
	python3 "$T/liar.py" "$lie" <"$T/s2r" >"$T/r2s" &
	rc=0; (cd "$T/src" && "$QFC_SEND" --stdio --move m one >"$T/s2r" <"$T/r2s" 2>"$T/send.err") || rc=$?
	wait
	check "confirmation with wrong $lie: sender exit 1 ($rc), not confirmed" \
		bash -c "test $rc = 1 && grep -q 'not confirmed' '$T/send.err'"
	check "confirmation with wrong $lie: every source intact" intact
done

# 5. a source changed after it was sent is not deleted
mk_src
rm -f "$T/s2r" "$T/r2s"; mkfifo "$T/s2r" "$T/r2s"
(exec 4<"$T/s2r" 3>"$T/r2s"
 QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" <&4 >"$T/r2s.real" 2>/dev/null 3>&- 4>&-
 mv "$T/src/one" "$T/src/one.old"; echo new > "$T/src/one"; cat "$T/r2s.real" >&3) &
rc=0; (cd "$T/src" && "$QFC_SEND" --stdio --move one >"$T/s2r" <"$T/r2s" 2>"$T/send.err") || rc=$?
wait
check "replaced source: not deleted, reported (exit $rc)" \
	bash -c "test $rc = 1 && grep -q 'changed after it was sent: not deleted' '$T/send.err' && test \"\$(cat '$T/src/one')\" = new"

# 6. a source written in place (same inode) after it was read, and a
# directory that got a new file meanwhile: both kept, the rest moved
mk_src
rm -rf "$T/in"; new_incoming "$T/in"
rm -f "$T/s2r" "$T/r2s"; mkfifo "$T/s2r" "$T/r2s"
(exec 4<"$T/s2r" 3>"$T/r2s"
 QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" <&4 >"$T/r2s.real" 2>/dev/null 3>&- 4>&-
 echo appended >> "$T/src/one"; echo late > "$T/src/m/sub/late"; cat "$T/r2s.real" >&3) &
rc=0; (cd "$T/src" && "$QFC_SEND" --stdio --move m one >"$T/s2r" <"$T/r2s" 2>"$T/send.err") || rc=$?
wait
check "file appended to after it was read: kept, reported (exit $rc)" \
	bash -c "test $rc = 1 && grep -q 'one: changed after it was sent: not deleted' '$T/send.err' && grep -q appended '$T/src/one'"
check "directory with a new file: the new file and its directories kept" \
	bash -c "test -f '$T/src/m/sub/late' && grep -q 'm/sub: not deleted' '$T/send.err'"
check "the unchanged sent files were deleted" \
	bash -c "test ! -e '$T/src/m/a' && test ! -e '$T/src/m/sub/b' && test ! -e '$T/src/m/sub/l'"

# 7. a symlink named on the command line: a move would delete the link, not
# what it sent; refused before anything is sent
mk_src
ln -s one "$T/src/link-to-one"
rc=0; (cd "$T/src" && "$QFC_SEND" --stdio --move link-to-one </dev/null >"$T/out" 2>"$T/send.err") || rc=$?
check "move of a command-line symlink: refused ($rc), nothing sent, both kept" \
	bash -c "test $rc = 1 && grep -q 'is a symlink' '$T/send.err' && test ! -s '$T/out' && test -L '$T/src/link-to-one' && test -f '$T/src/one'"
finish
