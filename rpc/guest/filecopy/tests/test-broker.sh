#!/usr/bin/env bash
# qube-copy / qube-copy-to / qube-move-to between simulated qubes through
# the real qube-broker under policy: one real qube-agent per qube (unix
# sockets instead of vsock, tests/rpc/lib.sh), each running as an
# unprivileged user with its own HOME (its socket handed to root, as
# qube-vsockd would own it), the real qube-call, and
# /etc/qube/rpc/qube.Filecopy as the package installs it (a link to
# qube-filecopy-receive).  Checks: allowed copies land in the target's
# ~/QubesIncoming/SOURCE with SOURCE from the broker (QUBE_REMOTE), never
# from the stream; denied -> 126 and a clear error, nothing written; a
# target that cannot start -> 125; no service -> 127; a receiver limit is
# reported to the sender and a refused move deletes nothing; progress on a
# terminal and --quiet.
set -euo pipefail
: "${RPC_LIB:?}" "${QFC_RECEIVE:?}" "${QFC_HOSTILE:?}" "${QFC_BUILD_DIR:?}"
. "$RPC_LIB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chmod 0755 "$T"

# The agents run as nobody when the test runs as root (as services run as
# the qube's user), otherwise as the test's user.
AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
fi
owner() { if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup "$@"; fi; }

write_system_info work personal vault down bare
mkdir -p "$T/rpc" "$T/rpc-bare" "$T/policy"
ln -s "$QFC_RECEIVE" "$T/rpc/qube.Filecopy"
cat > "$T/policy/10-filecopy.policy" <<'P'
qube.Filecopy  *  work      personal   allow
qube.Filecopy  *  work      @default   allow target=personal
qube.Filecopy  *  work      vault      deny
qube.Filecopy  *  work      down       allow autostart=no
qube.Filecopy  *  work      bare       allow
qube.Filecopy  *  vault     personal   allow
P
# personal's receiver has a lower max-bytes (its settings file)
printf 'max-bytes = 100000000\n' > "$T/personal.conf"

# start_qube NAME [RPC_DIR]: a simulated qube, its agent as $AS with
# HOME=$T/home/NAME and the receiver's settings file
start_qube() {
	local n=$1 rpc=${2:-$T/rpc} conf=/dev/null
	[ "$n" = personal ] && conf=$T/personal.conf
	mkdir -p "$T/qubes/$n" "$T/home/$n"
	owner "$T/qubes/$n" "$T/home/$n"
	HOME=$T/home/$n QFC_CONF=$conf "${AS[@]}" "$QUBE_AGENT" \
		--transport "unix:$T/qubes/$n" --rpc-dir "$rpc" --name "$n" >>"$T/agent-$n.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $n socket" test -S "$T/qubes/$n/vsock"
	# the broker connects only to sockets owned by root (in a real qube,
	# qube-vsockd's); here the test plays qube-vsockd and owns it
	if [ "$(id -u)" = 0 ]; then chown root:root "$T/qubes/$n/vsock"; fi
}
for q in work personal vault; do start_qube "$q"; done
start_qube bare "$T/rpc-bare"
start_broker

# the sender runs in "work": its qube-call reaches the broker over work's socket
export QUBE_CALL QUBE_CALL_TRANSPORT=unix:$T/qubes/work
BIN=$QFC_BUILD_DIR
send() { # send DIR PROGRAM ARGS...: runs PROGRAM in DIR; sets RC, stderr in $T/err
	local d=$1 p=$2; shift 2
	RC=0
	(cd "$d" && exec "$BIN/$p" "$@") </dev/null >"$T/out" 2>"$T/err" || RC=$?
}
INC=$T/home/personal/QubesIncoming

# -- 1. allowed: a tree, copied to personal's ~/QubesIncoming/work
mkdir -p "$T/src"
python3 "$HERE/make-tree.py" "$T/src/tree" 2000
send "$T/src" qube-copy-to personal tree
check "qube-copy-to personal: exit 0 ($RC: $(tail -2 "$T/err"))" test "$RC" = 0
check "lands in personal's ~/QubesIncoming/work/tree, identical" \
	python3 "$HERE/compare-tree.py" "$T/src/tree" "$INC/work/tree"
check "the broker logged work -> personal qube.Filecopy allowed" \
	grep -q "source=work target=personal requested=personal service=qube.Filecopy argument=- decision=allow" "$T/broker.log"
if [ "$(id -u)" = 0 ]; then
	check "the files belong to personal's user (nobody), not root" \
		test -z "$(find "$INC" ! -user nobody | head -1)"
fi
check "--quiet on a non-terminal: nothing on stdout or stderr" test ! -s "$T/out" -a ! -s "$T/err"

# -- 2. qube-copy: the policy picks the target (@default -> personal)
echo note > "$T/src/note.txt"
send "$T/src" qube-copy note.txt
check "qube-copy (@default -> personal): exit 0 ($RC)" test "$RC" = 0
check "qube-copy: in personal's QubesIncoming/work" test "$(cat "$INC/work/note.txt")" = note

# -- 3. the source directory is the broker's QUBE_REMOTE, never the stream:
# a hand-made stream whose top-level names are other qubes' names arrives
# under QubesIncoming/work all the same, and one trying ../ is refused
python3 - "$T/stream.named" <<'PY'
# a valid stream of one top-level directory "vault" holding "personal/x"
import struct, sys
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xffffffff
out = bytearray(b"QFCP" + struct.pack("<IQ", 1, 0))
def entry(t, mode, name, size):
    out.extend(struct.pack("<IIIIQq", t, mode, len(name), 0, size, 1700000000) + name)
entry(2, 0o755, b"vault", 0)
entry(2, 0o755, b"vault/personal", 0)
entry(1, 0o644, b"vault/personal/x", 3)
covered = bytes(out)  # the stream CRC covers all but file data
out.extend(b"abc" + struct.pack("<I", crc32c(b"abc")))
start = len(out) - 4
entry(4, 0o755, b"vault/personal", 0)
entry(4, 0o755, b"vault", 0)
crc = crc32c(covered + bytes(out[start:]))
out.extend(struct.pack("<IIIIQq", 5, 0, 0, 0, 0, 0) + struct.pack("<QQII", 3, 3, crc, 0))
open(sys.argv[1], "wb").write(out)
PY
rc=0; call work personal qube.Filecopy <"$T/stream.named" >"$T/reply" 2>"$T/err" || rc=$?
check "stream naming other qubes: accepted ($rc)" test "$rc" = 0
check "... stored under QubesIncoming/work/vault/personal/x (source from the broker)" \
	test "$(cat "$INC/work/vault/personal/x")" = abc
check "... nothing under QubesIncoming/vault or QubesIncoming/personal" \
	test ! -e "$INC/vault" -a ! -e "$INC/personal"
rc=0; "$QFC_HOSTILE" dotdot | call work personal qube.Filecopy >"$T/reply" 2>"$T/err" || rc=$?
check "stream with ../: refused by the receiver (exit $rc), message relayed" \
	bash -c "test $rc = 1 && grep -q '\"..\" path component' '$T/err'"
check "... nothing escaped QubesIncoming/work" test "$(ls -A "$INC")" = work
# the same stream from vault arrives in QubesIncoming/vault
rc=0; call vault personal qube.Filecopy <"$T/stream.named" >"$T/reply" 2>"$T/err" || rc=$?
check "the same stream from vault: QubesIncoming/vault/vault/personal/x ($rc)" \
	test "$rc:$(cat "$INC/vault/vault/personal/x" 2>/dev/null)" = 0:abc

# -- 4. denied by policy: 126, a clear error, nothing written in vault
send "$T/src" qube-copy-to vault note.txt
check "qube-copy-to vault (deny): exit 126 ($RC)" test "$RC" = 126
check "... says: refused by policy" grep -q "qube-copy-to: to vault: refused by policy" "$T/err"
check "... nothing in vault's home" test -z "$(ls -A "$T/home/vault")"
send "$T/src" qube-move-to vault note.txt
check "qube-move-to vault (deny): exit 126, the source kept ($RC)" \
	test "$RC:$(cat "$T/src/note.txt")" = "126:note"

# -- 5. a target that cannot start: 125; a target without the service: 127
send "$T/src" qube-copy-to down note.txt
check "qube-copy-to down (not running, autostart=no): exit 125 ($RC)" test "$RC" = 125
check "... says the target could not be reached" grep -q "to down: the call failed" "$T/err"
send "$T/src" qube-copy-to bare note.txt
check "qube-copy-to bare (no qube.Filecopy there): exit 127 ($RC)" test "$RC" = 127
check "... says so" grep -q "to bare: the target has no qube.Filecopy service" "$T/err"

# -- 6. a receiver limit (personal: max-bytes 100 MB): refused with the
# receiver's message; a move deletes nothing
head -c 110000000 /dev/urandom > "$T/src/big.bin"
send "$T/src" qube-move-to personal note.txt big.bin
check "over personal's max-bytes: exit 1 ($RC)" test "$RC" = 1
check "... the receiver's reason reaches the sender" \
	grep -q "the receiver refused the transfer (1 entries stored there): .*max-bytes 100000000" "$T/err"
check "... the move deleted nothing" test -f "$T/src/note.txt" -a -f "$T/src/big.bin"
check "... no partial big.bin in personal" test ! -e "$INC/work/big.bin"
rm -f "$T/src/big.bin"

# -- 7. move: sources deleted after the receiver confirmed them
mkdir -p "$T/src/mv/sub"; echo 1 > "$T/src/mv/a"; echo 2 > "$T/src/mv/sub/b"
send "$T/src" qube-move-to personal mv
check "qube-move-to personal: exit 0 ($RC: $(tail -1 "$T/err"))" test "$RC" = 0
check "... the source is gone, the copy complete" \
	test ! -e "$T/src/mv" -a "$(cat "$INC/work/mv/sub/b")" = 2

# -- 8. progress on a terminal (script gives the sender a pty); --quiet
if command -v script >/dev/null; then
	head -c 30000000 /dev/urandom > "$T/src/progress.bin"
	(cd "$T/src" && script -qec "'$BIN/qube-copy-to' personal progress.bin" /dev/null) \
		>"$T/tty" 2>&1 || true
	check "progress on a terminal: entries, MiB, rate" \
		grep -Eq 'qube-copy-to: 1 entries, 28\.6 of 28\.6 MiB, [0-9.]+ MB/s' "$T/tty"
	(cd "$T/src" && script -qec "'$BIN/qube-copy-to' --quiet personal progress.bin" /dev/null) \
		>"$T/tty" 2>&1 || true
	check "--quiet on a terminal: no progress" bash -c "! grep -q 'MB/s' '$T/tty'"
	check "... and the copy arrived (progress.1.bin)" test -f "$INC/work/progress.1.bin"
else
	echo "# script(1) missing: progress on a terminal not checked"
fi
finish
