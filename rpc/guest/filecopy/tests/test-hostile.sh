#!/usr/bin/env bash
# Hostile sender (filecopy-hostile-sender speaks the format by hand): each
# escape or lie is refused with a message naming it; nothing appears outside
# the incoming directory; no partial or temporary file under any name; the
# stream cut at every header boundary of a valid stream leaves only
# complete files.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A canary layout around the incoming directory: must never change.
mkdir -p "$T/box/etc" "$T/box/home"
echo secret > "$T/box/etc/passwd"
new_incoming "$T/box/home/in"
before=$(snapshot "$T/box" | grep -v "^$T/box/home/in")

# expect CASE "MESSAGE REGEX" [RECEIVER ARGS...]
expect_refused() {
	local c=$1 re=$2; shift 2
	rm -rf "$T/box/home/in/hostile"
	hostile "$c" "$T/box/home/in" "$@"
	local msg; msg=$(grep 'refused' "$T/recv.err" | head -1 || true)
	if [ "$RECV_RC" = 1 ] && grep -Eq "$re" "$T/recv.err"; then
		ok "$c: refused: ${msg#qube.Filecopy: refused: }"
	else
		not_ok "$c: want exit 1 and /$re/, got $RECV_RC: $(cat "$T/recv.err")"
	fi
	# the reply record says so too (status != 0, starts with QFCR)
	check "$c: reply record says refused" python3 -c '
import struct,sys
d=open(sys.argv[1],"rb").read()
assert d[:4]==b"QFCR" and struct.unpack("<I",d[4:8])[0]!=0
' "$T/reply"
	check "$c: no temporary file left" test -z "$(find "$T/box/home/in" -name '.qube-incoming-*')"
	local after; after=$(snapshot "$T/box" | grep -v "^$T/box/home/in")
	check "$c: nothing changed outside the incoming directory" test "$before" = "$after"
	check "$c: nothing escaped to /tmp" test ! -e /tmp/escaped-absolute
}

expect_refused dotdot '"\.\." path component'
expect_refused absolute 'absolute path refused'
expect_refused write-through-symlink "t/s/through.*(Too many levels of symbolic links|Not a directory)"
check "write-through-symlink: nothing written through the link" test ! -e "$T/box/home/in/hostile/t/d/through"
expect_refused symlink-out-dotdot 'point outside the transfer'
expect_refused symlink-out-absolute 'absolute symlink target refused'
expect_refused symlink-then-file "file 't/s': exists already in this transfer"
check "symlink-then-file: the link is still a link, its target never created" \
	bash -c "test -L '$T/box/home/in/hostile/t/s' && test ! -e '$T/box/home/in/hostile/t/d/f'"
expect_refused hardlink-type 'entry type 6 refused'
expect_refused file-then-dir "directory 't/x': exists already in this transfer"
check "file-then-dir: t/x is still the complete file" test "$(stat -c %s "$T/box/home/in/hostile/t/x")" = 10
expect_refused nul-name 'NUL byte'
expect_refused newline-name 'U\+000A'
expect_refused bidi-name 'U\+202E'
expect_refused zero-width-name 'U\+200B'
expect_refused overlong-component 'path component of 300 bytes'
expect_refused overlong-path 'name length [0-9]+ refused'
expect_refused deep-path 'deeper than 128 components'
expect_refused size-short "CRC mismatch|entry type"
check "size-short: no file t/short" test ! -e "$T/box/home/in/hostile/t/short"
expect_refused size-long "stream cut inside the data of file 't/long'"
check "size-long: no file t/long" test ! -e "$T/box/home/in/hostile/t/long"
expect_refused file-crc "file 't/badcrc': CRC mismatch"
check "file-crc: the good file before it is complete" test "$(stat -c %s "$T/box/home/in/hostile/t/good")" = 100
check "file-crc: no file t/badcrc" test ! -e "$T/box/home/in/hostile/t/badcrc"
expect_refused stream-crc 'stream CRC mismatch'
expect_refused trailer-count 'trailer says 7 entries'
# 1,000,000 tiny entries: here against max-entries 20000 (the default
# limit, 500,000, is filecopy-million: it creates 500,000 files)
expect_refused million 'more than 20000 entries refused' --max-entries 20000
check "million with max-entries 20000: exactly 20000 entries stored" \
	test "$(find "$T/box/home/in/hostile" -mindepth 1 | wc -l)" = 20000
expect_refused total-over-limit "file 't/two'.*would exceed max-bytes 1000000" --max-bytes 1000000
check "total-over-limit: t/one complete, t/two absent" \
	bash -c "test \$(stat -c %s '$T/box/home/in/hostile/t/one') = 600000 && test ! -e '$T/box/home/in/hostile/t/two'"
expect_refused version-2 'stream version 2 refused'
expect_refused stream-flags 'stream flags 0x1 refused'
expect_refused trailing-bytes 'bytes after the end of the stream'
expect_refused top-symlink 'top-level symlink refused'
expect_refused interleaved-top "entry 'a/late' is not inside the current top-level entry"
expect_refused mode-bits 'file mode 0100644 refused'
check "mode-bits: setuid bit masked off (t/suid is 0755)" test "$(stat -c %a "$T/box/home/in/hostile/t/suid")" = 755
expect_refused dir-end-outside "entry 'other' is not inside"
expect_refused empty-stream 'stream cut at byte 0'

expect_refused extra-dir-ends "directory end 't' refused: more directory ends than directories"
expect_refused temp-name 'character U\+26A0 at byte 17 is not allowed'
expect_refused symlink-chain-out "symlink 't/a/l': symlink target: \"\.\.\" path component"
expect_refused same-top-many "file 'dup': more than 100000 names found taken in this transfer"
check "same-top-many: only the first 20 renames named, then a count" \
	test "$(grep -c 'exists, stored as' "$T/recv.err")" = 20
rm -rf "$T/box/home/in/hostile"
hostile mtime-extremes "$T/box/home/in"
check "mtime-extremes: accepted, times clamped by the file system ($RECV_RC)" \
	test "$RECV_RC" = 0 -a -f "$T/box/home/in/hostile/t/oldest" -a -f "$T/box/home/in/hostile/t/newest"
check "mtime-extremes: before-1970 kept (-1 s + 999999999 ns)" \
	test "$(stat -c %Y "$T/box/home/in/hostile/t/before-1970")" = -1

# the escapes again with the fallback paths: parents opened one component
# at a time with O_NOFOLLOW, and hidden temporary names
for c in dotdot write-through-symlink symlink-then-file file-then-dir size-long file-crc; do
	re=$(case $c in
		dotdot) echo '"\.\." path component' ;;
		write-through-symlink) echo 't/s/through.*(Too many levels of symbolic links|Not a directory)' ;;
		symlink-then-file) echo "file 't/s': exists already" ;;
		file-then-dir) echo "directory 't/x': exists already" ;;
		size-long) echo "stream cut inside the data of file 't/long'" ;;
		file-crc) echo "file 't/badcrc': CRC mismatch" ;;
	esac)
	export QFC_NO_OPENAT2=1 QFC_NO_TMPFILE=1
	expect_refused "$c" "$re"
	unset QFC_NO_OPENAT2 QFC_NO_TMPFILE
done
check "fallbacks: nothing written through the link" test ! -e "$T/box/home/in/hostile/t/d/through"

# what the receiving user already has in the incoming directory is never
# entered or followed: a symlink named like an incoming top-level entry,
# and the source's directory itself being a symlink
rm -rf "$T/box/home/in/hostile"
mkdir -p "$T/box/home/in/hostile"
owner_in() { if [ "$(id -u)" = 0 ]; then chown -R nobody "$@"; fi; }
ln -s ../../../etc "$T/box/home/in/hostile/t"
owner_in "$T/box/home/in/hostile"
hostile valid "$T/box/home/in"
check "existing symlink t in the incoming dir: stream's t stored as t.1 ($RECV_RC)" \
	test "$RECV_RC" = 0 -a -f "$T/box/home/in/hostile/t.1/a" -a -L "$T/box/home/in/hostile/t"
check "... nothing written where the symlink points" test ! -e "$T/box/etc/a"
rm -rf "$T/box/home/in/hostile"
ln -s ../../etc "$T/box/home/in/hostile"
hostile valid "$T/box/home/in"
check "incoming/SOURCE is a symlink: refused ($RECV_RC), says so" \
	bash -c "test $RECV_RC = 1 && grep -Eq 'cannot open the incoming directory .*/hostile: (Not a directory|Too many levels of symbolic links)' '$T/recv.err'"
rm -f "$T/box/home/in/hostile"

# disk full: a 1 MiB file system (tmpfs in a private mount namespace);
# stops cleanly, says how far it got, no partial file under any name
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$T/full/src" "$T/full/mnt"
	echo small > "$T/full/src/a.txt"
	head -c 3000000 /dev/urandom > "$T/full/src/big.bin"
	(cd "$T/full/src" && "$QFC_SEND" --stdio a.txt big.bin </dev/null >"$T/full/stream" 2>/dev/null) || true
	for mode in tmpfile hidden-names; do
		rc=0
		unshare -m bash -c '
			mount -t tmpfs -o size=1m,mode=0777 tmpfs "$1/mnt" || exit 99
			[ "$3" = hidden-names ] && export QFC_NO_TMPFILE=1
			rc=0
			QUBE_REMOTE=full QFC_CONF=/dev/null "$2" --user nobody --incoming "$1/mnt" \
				<"$1/stream" >/dev/null 2>"$1/err" || rc=$?
			ls -A "$1/mnt/full" > "$1/ls"
			find "$1/mnt" -name ".qube-incoming-*" > "$1/tmp"
			exit $rc
		' _ "$T/full" "$QFC_RECEIVE" "$mode" || rc=$?
		check "disk full ($mode): refused ($rc), says where, after how much, that no partial file is left" \
			bash -c "test $rc = 1 && grep -q \"file 'big.bin': writing at byte [0-9]*: No space left on device (stopped; no partial file is left under its name) (1 entries, 6 bytes stored before)\" '$T/full/err'"
		check "disk full ($mode): a.txt complete, no big.bin, no temporary file" \
			test "$(cat "$T/full/ls")" = a.txt -a ! -s "$T/full/tmp"
	done
else
	echo "# not root or no mount namespaces: the disk-full case is not run here"
fi
rm -rf "$T/box/home/in/hostile"
hostile same-top-twice "$T/box/home/in"
check "same-top-twice: accepted (exit $RECV_RC)" test "$RECV_RC" = 0
check "same-top-twice: dup (10 bytes) and dup.1 (20 bytes)" \
	test "$(stat -c %s "$T/box/home/in/hostile/dup")/$(stat -c %s "$T/box/home/in/hostile/dup.1")" = 10/20

# the valid stream is accepted...
rm -rf "$T/box/home/in/hostile"
hostile valid "$T/box/home/in"
check "valid: accepted" test "$RECV_RC" = 0
check "valid: symlink t/sub/l -> ../a" test "$(readlink "$T/box/home/in/hostile/t/sub/l")" = ../a
# ...and cut at every header boundary it leaves only complete files
"$QFC_HOSTILE" valid > "$T/valid.stream"
cuts=0 cut_bad=0
while read -r off; do
	[ "$off" -lt "$(stat -c %s "$T/valid.stream")" ] || continue
	rm -rf "$T/box/home/in/hostile"
	rc=0
	head -c "$off" "$T/valid.stream" | QUBE_REMOTE=hostile "$QFC_RECEIVE" "${RECV_ARGS[@]}" \
		--incoming "$T/box/home/in" >/dev/null 2>"$T/recv.err" || rc=$?
	cuts=$((cuts + 1))
	if [ "$rc" != 1 ] || ! grep -q 'stream cut' "$T/recv.err"; then
		cut_bad=$((cut_bad + 1)); echo "# cut at $off: rc $rc: $(cat "$T/recv.err")"
		continue
	fi
	for f in t/a:1000 t/sub/b:70000 top:10; do
		p="$T/box/home/in/hostile/${f%%:*}"
		if [ -e "$p" ] && [ "$(stat -c %s "$p")" != "${f##*:}" ]; then
			cut_bad=$((cut_bad + 1)); echo "# cut at $off: partial $p"
		fi
	done
	if [ -n "$(find "$T/box/home/in" -name '.qube-incoming-*')" ]; then
		cut_bad=$((cut_bad + 1)); echo "# cut at $off: temporary file left"
	fi
done < <("$QFC_HOSTILE" valid --boundaries)
check "valid stream cut at each of $cuts boundaries: refused, only complete files" \
	test "$cuts" -ge 20 -a "$cut_bad" = 0
after=$(snapshot "$T/box" | grep -v "^$T/box/home/in")
check "canary tree outside the incoming directory unchanged" test "$before" = "$after"
finish
