#!/usr/bin/env bash
# qubectl copy-to and copy-from (the host as dom0) through the real
# qube-broker's host-call socket (--host-calls), real qube-agents for the
# simulated qubes (as nobody when run as root, each with its own HOME),
# the real receiver as qube.Filecopy and the real qube-exec as qube.Exec.
# qubed's admin socket, which qubectl asks whether a qube runs, is
# src/tests/fake-qubesd.py with scripted answers.  Checks:
#   copy-to: lands byte-exact in ~/QubesIncoming/dom0; a name the receiver
#   would refuse stops it before any call; deny -> 126, nothing written; a
#   halted qube with --no-autostart -> 125; no service -> 127; a receiver
#   limit is shown and the exit is 1 (the receiver ends while the sender
#   still writes); progress on a terminal, --quiet.
#   copy-from: byte-exact into DIR; an existing name gets a suffix; a
#   missing PATH -> 1, nothing copied; deny -> 126; hostile streams from
#   the qube (.., absolute, write through a symlink, symlink out, a size
#   that lies) refused with nothing outside DIR and no partial file; the
#   unpacker child is confined (seccomp, no_new_privs, no capabilities, the
#   directory's owner).
#   Environment: RPC_LIB QFC_RECEIVE QFC_HOSTILE QFC_BUILD_DIR QUBECTL
#   QUBE_EXEC FAKE_QUBESD
set -euo pipefail
: "${RPC_LIB:?}" "${QFC_RECEIVE:?}" "${QFC_HOSTILE:?}" "${QFC_BUILD_DIR:?}" "${QUBECTL:?}"
: "${QUBE_EXEC:?}" "${FAKE_QUBESD:?}"
. "$RPC_LIB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chmod 0755 "$T"

AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
fi
owner() { if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup "$@"; fi; }

write_system_info personal vault halted bare evil
mkdir -p "$T/rpc" "$T/rpc-bare" "$T/policy" "$T/evilbin"
ln -s "$QFC_RECEIVE" "$T/rpc/qube.Filecopy"
ln -s "$QUBE_EXEC" "$T/rpc/qube.Exec"
ln -s "$QUBE_EXEC" "$T/rpc-bare/qube.Exec"
cat > "$T/policy/10-host.policy" <<'P'
qube.Filecopy  *  dom0  personal  allow
qube.Filecopy  *  dom0  bare      allow
qube.Filecopy  *  dom0  vault     deny
qube.Exec      *  dom0  personal  allow
qube.Exec      *  dom0  evil      allow
qube.Exec      *  dom0  vault     deny
P
printf 'max-bytes = 100000000\n' > "$T/personal.conf"
# the evil qube's "qube-filecopy-send": a hand-made hostile stream, then
# whatever the host replies is swallowed
cat > "$T/evilbin/qube-filecopy-send" <<SH
#!/bin/sh
"$QFC_HOSTILE" "\$(cat '$T/evil-case')"
exec cat >/dev/null
SH
chmod 0755 "$T/evilbin/qube-filecopy-send"

start_qube() { # start_qube NAME RPC_DIR PATH_PREFIX
	local n=$1 rpc=$2 conf=/dev/null
	[ "$n" = personal ] && conf=$T/personal.conf
	mkdir -p "$T/qubes/$n" "$T/home/$n"
	owner "$T/qubes/$n" "$T/home/$n"
	HOME=$T/home/$n QFC_CONF=$conf PATH="$3:$PATH" "${AS[@]}" "$QUBE_AGENT" \
		--transport "unix:$T/qubes/$n" --rpc-dir "$rpc" --name "$n" >>"$T/agent-$n.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $n socket" test -S "$T/qubes/$n/vsock"
	if [ "$(id -u)" = 0 ]; then chown root:root "$T/qubes/$n/vsock"; fi
}
start_qube personal "$T/rpc" "$QFC_BUILD_DIR"
start_qube vault "$T/rpc" "$QFC_BUILD_DIR"
start_qube bare "$T/rpc-bare" "$QFC_BUILD_DIR"
start_qube evil "$T/rpc" "$T/evilbin"
mkdir -m 0750 "$T/host"
start_broker --host-calls "$T/host"

# qubed's socket: every qube runs but "halted"
python3 - "$T/rules.json" <<'PY'
import json, sys
rules = []
for q in ["personal", "vault", "bare", "evil"]:
    rules.append({"header": f"admin.vm.List+ dom0 name {q}",
                  "reply": f"0\u0000{q} class=AppVM state=Running uuid=00000000-0000-0000-0000-00000000000{len(rules)}\n"})
rules.append({"header": "admin.vm.List+ dom0 name halted",
              "reply": "0\u0000halted class=AppVM state=Halted uuid=00000000-0000-0000-0000-000000000009\n"})
json.dump(rules, open(sys.argv[1], "w"))
PY
python3 "$FAKE_QUBESD" --socket "$T/qubed.sock" --script "$T/rules.json" >"$T/fake.log" 2>&1 &
PIDS+=($!)
wait_for 20 "fake qubed socket" test -S "$T/qubed.sock"
export QUBED_SOCKET=$T/qubed.sock QUBE_HOST_CALLS=$T/host

qc() { # qc ARGS...: qubectl; sets RC, stdout in $T/out, stderr in $T/err
	RC=0
	"$QUBECTL" "$@" </dev/null >"$T/out" 2>"$T/err" || RC=$?
}
INC=$T/home/personal/QubesIncoming/dom0

# ---- copy-to ----
mkdir -p "$T/src"
python3 "$HERE/make-tree.py" "$T/src/tree" 300
head -c 5000000 /dev/urandom > "$T/src/blob.bin"
(cd "$T/src" && "$QUBECTL" copy-to personal tree blob.bin) </dev/null >"$T/out" 2>"$T/err" && RC=0 || RC=$?
check "copy-to personal: exit 0 ($RC: $(tail -c 300 "$T/err"))" test "$RC" = 0
check "... the tree lands in personal's ~/QubesIncoming/dom0, identical" \
	python3 "$HERE/compare-tree.py" "$T/src/tree" "$INC/tree"
check "... the 5 MB file byte-exact" cmp -s "$T/src/blob.bin" "$INC/blob.bin"
check "... the broker decided it as a call from dom0" \
	grep -q "source=dom0 target=personal requested=personal service=qube.Filecopy argument=- decision=allow" "$T/broker.log"
check "... not a terminal: nothing printed" test ! -s "$T/out" -a ! -s "$T/err"
if [ "$(id -u)" = 0 ]; then
	check "... the files belong to personal's user (nobody)" test -z "$(find "$INC" ! -user nobody | head -1)"
fi

calls_before=$(grep -c ' call id=' "$T/broker.log" || true)
printf 'x' > "$T/src/bad$(printf '\u202e')name"
qc copy-to personal "$T/src/bad$(printf '\u202e')name"
check "copy-to a name the receiver refuses: exit 1 before any call ($RC)" \
	bash -c "[ $RC = 1 ] && grep -q 'U+202E' '$T/err' && [ \$(grep -c ' call id=' '$T/broker.log' || true) = $calls_before ]"
rm -f "$T/src/bad"*

echo secret > "$T/src/note.txt"
qc copy-to vault "$T/src/note.txt"
check "copy-to vault (deny): exit 126, says so ($RC)" \
	bash -c "[ $RC = 126 ] && grep -q 'qubectl copy-to: to vault: refused by policy' '$T/err'"
check "... nothing written in vault" test ! -e "$T/home/vault/QubesIncoming"
qc copy-to --no-autostart halted "$T/src/note.txt"
check "copy-to --no-autostart a halted qube: 125 ($RC)" \
	bash -c "[ $RC = 125 ] && grep -q 'not running' '$T/err'"
qc copy-to bare "$T/src/note.txt"
check "copy-to a qube without qube.Filecopy: 127, says so ($RC)" \
	bash -c "[ $RC = 127 ] && grep -q 'bare has no qube.Filecopy service' '$T/err'"
qc copy-to
check "copy-to without arguments: usage (2)" test "$RC" = 2

# a receiver limit: personal takes 100 MB at most; the receiver refuses
# at the header and ends while the sender still has 110 MB to write
head -c 110000000 /dev/zero > "$T/src/big.bin"
qc copy-to personal "$T/src/note.txt" "$T/src/big.bin"
check "copy-to over the receiver's max-bytes: exit 1 with its reason ($RC)" \
	bash -c "[ $RC = 1 ] && grep -q 'the receiver refused the transfer (1 entries stored there): .*max-bytes 100000000' '$T/err'"
check "... no partial big.bin" test ! -e "$INC/big.bin"
rm -f "$T/src/big.bin"

if command -v script >/dev/null; then
	head -c 30000000 /dev/urandom > "$T/src/progress.bin"
	script -qec "'$QUBECTL' copy-to personal '$T/src/progress.bin'" /dev/null >"$T/tty" 2>&1 || true
	check "copy-to on a terminal: progress with entries, MiB, rate" \
		grep -Eq 'qubectl copy-to: 1 entries, 28\.6 of 28\.6 MiB, [0-9.]+ MB/s' "$T/tty"
	script -qec "'$QUBECTL' copy-to --quiet personal '$T/src/progress.bin'" /dev/null >"$T/tty" 2>&1 || true
	check "copy-to --quiet on a terminal: no progress" bash -c "! grep -q 'MB/s' '$T/tty'"
	check "... and the second copy arrived as progress.1.bin" cmp -s "$T/src/progress.bin" "$INC/progress.1.bin"
fi

# ---- copy-from ----
Q=$T/home/personal/data
mkdir -p "$Q/sub"
head -c 3000000 /dev/urandom > "$Q/sub/a.bin"
printf 'hello\n' > "$Q/note.txt"
ln -s sub/a.bin "$Q/link"
owner "$Q"
mkdir "$T/dest"
qc copy-from personal "$Q" "$Q/note.txt" --to "$T/dest"
check "copy-from personal: exit 0 ($RC: $(tail -c 300 "$T/err"))" test "$RC" = 0
check "... the directory arrives identical (data, modes, mtimes, the symlink)" \
	python3 "$HERE/compare-tree.py" "$Q" "$T/dest/data"
check "... and the file" cmp -s "$Q/note.txt" "$T/dest/note.txt"
check "... the broker saw a qube.Exec from dom0" \
	grep -q "source=dom0 target=personal requested=personal service=qube.Exec .*decision=allow" "$T/broker.log"
qc copy-from personal "$Q/note.txt" --to "$T/dest"
check "copy-from again: the existing name is kept, the new one gets a suffix ($RC)" \
	bash -c "[ $RC = 0 ] && cmp -s '$Q/note.txt' '$T/dest/note.1.txt' && grep -q \"'note.txt' exists, stored as 'note.1.txt'\" '$T/err'"
qc copy-from personal "$Q/no-such-file" --to "$T/dest"
check "copy-from a missing PATH: exit 1, the qube's reason shown ($RC)" \
	bash -c "[ $RC = 1 ] && grep -q 'no-such-file: No such file or directory' '$T/err' && grep -q 'nothing copied' '$T/err'"
qc copy-from vault /etc/hostname --to "$T/dest"
check "copy-from vault (qube.Exec denied): 126" test "$RC" = 126
qc copy-from personal "$Q/note.txt"
check "copy-from without --to: usage (2)" test "$RC" = 2
qc copy-from personal "$Q/note.txt" --to "$T/no-such-dir"
check "copy-from to a missing DIR: 1, named" bash -c "[ $RC = 1 ] && grep -q 'no-such-dir' '$T/err'"

# hostile streams from a qube: refused, nothing outside DIR, no partial file
mkdir -p "$T/outside"
for c in dotdot absolute write-through-symlink symlink-out-dotdot symlink-out-absolute \
	 size-long file-crc top-symlink; do
	echo "$c" > "$T/evil-case"
	rm -rf "$T/hdest"; mkdir "$T/hdest"
	before=$({ find "$T/outside" "$T/src"; ls -A "$T"; } | sort | md5sum)
	qc copy-from evil /anything --to "$T/hdest"
	check "hostile stream '$c' from evil: refused (1) with a reason ($RC: $(grep -o 'refused: .*' "$T/err" | head -c 120))" \
		bash -c "[ $RC = 1 ] && grep -q 'qubectl copy-from: from evil: refused: ' '$T/err'"
	check "... nothing changed outside the target directory" \
		test "$({ find "$T/outside" "$T/src"; ls -A "$T"; } | sort | md5sum)" = "$before"
	check "... no temporary or partial file left in it" \
		bash -c "! find '$T/hdest' -name '*.tmp*' -o -name '*⚠*' | grep -q ."
done

# the unpacker child is confined: a stream that stops half-way keeps it
# waiting while /proc is read
cat > "$T/evilbin/qube-filecopy-send" <<SH
#!/bin/sh
printf 'QFCP\001\000\000\000\000\000\000\000\000\000\000\000'
exec sleep 30
SH
confined_child() { # confined_child OWNER: checks the unpacker for a DIR of OWNER
	local own=$1 qpid child= st
	rm -rf "$T/cdest"; mkdir "$T/cdest"
	if [ "$(id -u)" = 0 ]; then chown "$own" "$T/cdest"; fi
	"$QUBECTL" copy-from evil /x --to "$T/cdest" </dev/null >/dev/null 2>"$T/err" &
	qpid=$!
	for _ in $(seq 200); do
		child=$(pgrep -P "$qpid" | head -1 || true)
		[ -n "$child" ] && grep -q '^Seccomp:[[:space:]]*2' "/proc/$child/status" 2>/dev/null && break
		sleep 0.05
	done
	st=/proc/$child/status
	check "copy-from's unpacker (DIR of $own): seccomp filter mode" grep -q '^Seccomp:[[:space:]]*2' "$st"
	check "... no_new_privs" grep -q '^NoNewPrivs:[[:space:]]*1' "$st"
	check "... no effective, permitted or bounding capabilities" \
		bash -c "grep -q '^CapEff:[[:space:]]*0000000000000000' '$st' && grep -q '^CapPrm:[[:space:]]*0000000000000000' '$st' && grep -q '^CapBnd:[[:space:]]*0000000000000000' '$st'"
	if [ "$(id -u)" = 0 ]; then
		check "... runs as the directory's owner ($own), no groups" \
			bash -c "grep -q \"^Uid:[[:space:]]*$(id -u "$own")[[:space:]]\" '$st' && grep -q '^Groups:[[:space:]]*\$' '$st'"
	fi
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
}
confined_child nobody
if [ "$(id -u)" = 0 ]; then confined_child root; fi
finish
