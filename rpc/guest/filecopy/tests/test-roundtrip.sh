#!/usr/bin/env bash
# Round trip over processes (sender --stdio | receiver, joined by fifos):
# a tree of 10,000 small files with nested directories, symlinks inside the
# tree, empty and sparse files, names from every allowed Unicode class and
# nanosecond mtimes, compared entry by entry (content, masked mode, mtime,
# symlink target, holes); the same tree through the fallbacks (no openat2,
# no O_TMPFILE); renames instead of overwrites; sources separated by
# QUBE_REMOTE; a 2 GiB file by checksum.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/src"
python3 "$HERE/make-tree.py" "$T/src/tree" 10000
nfiles=$(find "$T/src/tree" -type f | wc -l)
check "source tree has >= 10000 files ($nfiles)" test "$nfiles" -ge 10000
check "source tree has setuid/setgid/sticky files to mask" \
	test -n "$(find "$T/src/tree" -type f -perm /7000 | head -1)"
new_incoming "$T/in"
start=$(date +%s.%N)
pair -C "$T/src" work "$T/in" -- tree
end=$(date +%s.%N)
check "tree: sender exit 0 ($SEND_RC; $(tail -1 "$T/send.err"))" test "$SEND_RC" = 0
check "tree: receiver exit 0 ($RECV_RC; $(tail -1 "$T/recv.err"))" test "$RECV_RC" = 0
echo "# tree of $nfiles files: $(echo "$end - $start" | bc) s"
check "tree: identical (contents, masked modes, mtimes, symlinks, sparse holes)" \
	python3 "$HERE/compare-tree.py" "$T/src/tree" "$T/in/work/tree"
check "tree: no setuid, setgid or sticky bit arrived" \
	test -z "$(find "$T/in" -perm /7000 | head -1)"
check "no hidden temporary file left" test -z "$(find "$T/in" -name '.qube-incoming-*')"
check "incoming dir holds only work/tree" test "$(ls -A "$T/in")/$(ls -A "$T/in/work")" = "work/tree"

# an O_TMPFILE named through /proc/self/fd (kernels before 6.10)
new_incoming "$T/in2"
QFC_NO_FLINK=1 pair -C "$T/src" work "$T/in2" -- tree
check "O_TMPFILE linked through /proc: exit 0/0 ($SEND_RC/$RECV_RC)" test "$SEND_RC/$RECV_RC" = 0/0
check "O_TMPFILE linked through /proc: identical" \
	python3 "$HERE/compare-tree.py" "$T/src/tree" "$T/in2/work/tree"
rm -rf "$T/in2"

# the fallbacks give the same tree: parents opened one component at a time
# with O_NOFOLLOW (no openat2), data in hidden temporary names (no O_TMPFILE)
new_incoming "$T/in2"
QFC_NO_OPENAT2=1 QFC_NO_TMPFILE=1 pair -C "$T/src" work "$T/in2" -- tree
check "fallbacks (no openat2, no O_TMPFILE): exit 0/0 ($SEND_RC/$RECV_RC)" \
	test "$SEND_RC/$RECV_RC" = 0/0
check "fallbacks: identical" python3 "$HERE/compare-tree.py" "$T/src/tree" "$T/in2/work/tree"
check "fallbacks: no hidden temporary file left" test -z "$(find "$T/in2" -name '.qube-incoming-*')"
rm -rf "$T/in2"

# the recorded stream fed in pieces of odd sizes (as a relay may cut it):
# the same tree, holes included
(cd "$T/src" && "$QFC_SEND" --stdio tree </dev/null >"$T/tree.stream" 2>/dev/null) || true
new_incoming "$T/in3"
rc=0
python3 -c '
import os, sys
data, off, sizes = open(sys.argv[1], "rb").read(), 0, [4099, 1, 65537, 17, 8191, 300000]
i = 0
while off < len(data):
    n = sizes[i % len(sizes)]; i += 1
    os.write(1, data[off:off + n]); off += n
' "$T/tree.stream" | QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in3" \
	>/dev/null 2>"$T/recv.err" || rc=$?
check "stream in odd-sized pieces: accepted ($rc)" test "$rc" = 0
check "stream in odd-sized pieces: identical, sparse file still sparse" \
	python3 "$HERE/compare-tree.py" "$T/src/tree" "$T/in3/work/tree"
rm -rf "$T/in3"

# the same tree again: never overwritten, the new one gets a suffix
echo changed > "$T/src/tree/f-0"
pair -C "$T/src" work "$T/in" -- tree
check "second copy: exit 0/0 ($SEND_RC/$RECV_RC)" test "$SEND_RC/$RECV_RC" = 0/0
check "second copy stored as tree.1, reported" grep -q "'tree' exists, stored as 'tree.1'" "$T/recv.err"
check "first copy untouched" bash -c "! grep -q changed '$T/in/work/tree/f-0'"
check "second copy has the change" grep -q changed "$T/in/work/tree.1/f-0"
echo x > "$T/src/report.pdf"
pair -C "$T/src" work "$T/in" -- report.pdf
pair -C "$T/src" work "$T/in" -- report.pdf
check "file suffix keeps the extension (report.1.pdf)" test -f "$T/in/work/report.1.pdf"
rm -rf "$T/in/work/tree.1"

# sources are separated by QUBE_REMOTE
pair -C "$T/src" personal "$T/in" -- report.pdf
check "QUBE_REMOTE=personal -> QubesIncoming/personal" test -f "$T/in/personal/report.pdf"
for bad in ../x x/y . '' -x 1x "$(printf 'a\nb')" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; do
	rc=0
	QUBE_REMOTE=$bad "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" </dev/null \
		>/dev/null 2>"$T/err" || rc=$?
	check "QUBE_REMOTE '$bad' refused ($rc), says why" \
		bash -c "test $rc = 1 && grep -q 'QUBE_REMOTE is missing or not a qube name' '$T/err'"
done
check "nothing created for the refused QUBE_REMOTE values" \
	test "$(ls -A "$T/in" | LC_ALL=C sort | tr '\n' ' ')" = "personal work "
rm -rf "$T/in"

# 2 GiB file, byte-exact
head -c 2G /dev/urandom > "$T/src/big"
want=$(sha256sum < "$T/src/big" | cut -d' ' -f1)
new_incoming "$T/in"
start=$(date +%s.%N)
pair -C "$T/src" work "$T/in" -- big
end=$(date +%s.%N)
check "2 GiB: exit 0/0 ($SEND_RC/$RECV_RC; $(tail -1 "$T/recv.err"))" test "$SEND_RC/$RECV_RC" = 0/0
got=$(sha256sum < "$T/in/work/big" | cut -d' ' -f1)
check "2 GiB: sha256 matches" test "$got" = "$want"
check "2 GiB: size $(stat -c %s "$T/in/work/big")" test "$(stat -c %s "$T/in/work/big")" = 2147483648
echo "# 2 GiB over fifos: $(echo "$end - $start" | bc) s"
finish
