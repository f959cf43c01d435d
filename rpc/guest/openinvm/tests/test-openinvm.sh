#!/usr/bin/env bash
# qube-open-in-dvm and qube.OpenInVM between simulated qubes through the
# real qube-broker: "work" calls @dispvm; tests/rpc/rpc-starter makes each
# disposable as qubed would (a real qube-agent in a new qube directory)
# and destroys it when the broker says the call is over.  The disposable's
# program is a scripted editor (the "editor" setting of the file $QOIV_CONF
# names in the agents' environment) whose behaviour a control file chooses.  Checks: an edit
# comes back and is kept (--keep), atomically, the mode kept; unchanged,
# discarded, view-only (read-only there, nothing back), no terminal and no
# flag (saved beside as .edited), the original changed meanwhile (saved
# beside); an editor that replaces the file (new inode) or deletes it or
# turns it into a symlink; policy deny (126, no disposable); the
# disposable destroyed after every call and its temporary directory gone;
# a terminal lent to the editor (size, typed input); and a hostile
# disposable (tests/evil-dvm.py) whose every answer is refused with
# nothing written outside the caller's temporary directory.
#   Environment: QOIV_PROG QUBE_BROKER QUBE_AGENT QUBE_CALL RPC_STARTER RPC_LIB
set -euo pipefail
: "${QOIV_PROG:?}" "${RPC_STARTER:?}" "${RPC_LIB:?}"
. "$RPC_LIB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chmod 0755 "$T"

write_system_info work other
mkdir -p "$T/rpc" "$T/policy" "$T/dvmtmp" "$T/src" "$T/calltmp"
chmod 1777 "$T/dvmtmp"
# the service: a link named qube.OpenInVM (the program's service mode),
# or the hostile disposable when a case is set
cat > "$T/rpc/qube.OpenInVM" <<SH
#!/bin/bash
if [ -s "$T/evil-case" ]; then EVIL_CASE_FILE=$T/evil-case exec python3 "$HERE/evil-dvm.py"; fi
exec -a qube.OpenInVM "$QOIV_PROG"
SH
chmod 0755 "$T/rpc/qube.OpenInVM"
cat > "$T/policy/10-open.policy" <<'P'
qube.OpenInVM  *  work   @dispvm  allow
qube.OpenInVM  *  other  @dispvm  deny
P
# the disposable runs the service as nobody (the file-copy "user" setting)
# when the test runs as root
if [ "$(id -u)" = 0 ]; then printf 'user = nobody\n' > "$T/fc.conf"; else : > "$T/fc.conf"; fi

# the scripted editor: what it does is in $T/edit-mode
cat > "$T/edit.sh" <<SH
#!/bin/sh
f=\$1
{ echo "file=\$f uid=\$(id -u) mode=\$(stat -c %a "\$f") remote=\$QUBE_REMOTE"; } >> "$T/editor.log"
case \$(cat "$T/edit-mode") in
  append) echo "edited in the disposable" >> "\$f" ;;
  none) ;;
  replace) printf 'a new file\n' > "\$f.new" && mv "\$f.new" "\$f" ;;
  delete) rm -f "\$f" ;;
  symlink) rm -f "\$f" && ln -s /etc/passwd "\$f" ;;
  try-write) echo "written anyway" >> "\$f" 2>/dev/null; exit 0 ;;
  touch-original) echo "changed meanwhile" >> "$T/src/note.txt"; echo "edit" >> "\$f" ;;
  terminal)
    if [ -t 0 ] && [ -t 1 ]; then echo "tty size \$(stty size)"; else echo "no tty"; fi
    printf 'type a line> '
    read -r line
    echo "typed: \$line" >> "\$f" ;;
esac
SH
chmod 0755 "$T/edit.sh"
touch "$T/editor.log"; chmod 0666 "$T/editor.log"

for q in work other; do start_agent "$q"; done
printf 'editor = %s\n' "$T/edit.sh" > "$T/oiv.conf"
QOIV_CONF=$T/oiv.conf QFC_CONF=$T/fc.conf TMPDIR=$T/dvmtmp \
	"$RPC_STARTER" "$T/start.sock" "$T/qubes" "$T/rpc" "$QUBE_AGENT" >"$T/starter.log" 2>&1 &
PIDS+=($!)
wait_for 20 "starter" grep -q listening "$T/starter.log"
start_broker --start-socket "$T/start.sock"

export QUBE_CALL QUBE_CALL_TRANSPORT=unix:$T/qubes/work TMPDIR=$T/calltmp
open_file() { # open_file MODE ARGS...: runs qube-open-in-dvm in work; RC, $T/err
	echo "$1" > "$T/edit-mode"; shift
	RC=0
	"$QOIV_PROG" "$@" </dev/null >"$T/out" 2>"$T/err" || RC=$?
}
disposables_gone() { # every DISPVM made so far was destroyed, its directory removed
	local made destroyed
	made=$(grep -c '^request: DISPVM' "$T/starter.log" || true)
	destroyed=$(grep -c '^request: DESTROY disp' "$T/starter.log" || true)
	[ "$made" -ge 1 ] && [ "$made" = "$destroyed" ] && [ -z "$(ls -d "$T"/qubes/disp* 2>/dev/null)" ]
}
settled() { wait_for 20 "disposables destroyed" disposables_gone; }
no_leftovers() { [ -z "$(ls -A "$T/dvmtmp")" ] && [ -z "$(ls -A "$T/calltmp")" ]; }

note() { printf 'line one\nline two\n' > "$T/src/note.txt"; chmod 0640 "$T/src/note.txt"; }

# -- 1. an edit comes back, kept with --keep
note
ino=$(stat -c %i "$T/src/note.txt")
open_file append --keep "$T/src/note.txt"
check "--keep: exit 0 ($RC: $(tail -c 300 "$T/err"))" test "$RC" = 0
check "... the edit came back" test "$(cat "$T/src/note.txt")" = "line one
line two
edited in the disposable"
check "... replaced atomically (a new inode), the mode kept (640)" \
	bash -c "[ \$(stat -c %i '$T/src/note.txt') != $ino ] && [ \$(stat -c %a '$T/src/note.txt') = 640 ]"
check "... said so" grep -q "note.txt: changes kept" "$T/err"
check "... the broker gave work a disposable for qube.OpenInVM" \
	grep -q "source=work target=disp1 requested=@dispvm service=qube.OpenInVM .*decision=allow" "$T/broker.log"
if [ "$(id -u)" = 0 ]; then
	check "... the editor ran as nobody on the file 'note.txt', caller work" \
		grep -q "file=note.txt uid=$(id -u nobody) mode=640 remote=work" "$T/editor.log"
fi
settled
ok "... the disposable was destroyed when the call ended (DESTROY, directory gone)"
check "... no temporary directory left in the disposable or the caller" no_leftovers

# -- 2. unchanged
note
open_file none --keep "$T/src/note.txt"
check "unchanged: exit 0, says so, the file untouched ($RC)" \
	bash -c "[ $RC = 0 ] && grep -q 'not changed' '$T/err' && [ \"\$(cat '$T/src/note.txt')\" = 'line one
line two' ]"

# -- 3. --discard
open_file append --discard "$T/src/note.txt"
check "--discard: exit 0, the file untouched ($RC)" \
	bash -c "[ $RC = 0 ] && grep -q 'changes discarded' '$T/err' && [ \$(wc -l < '$T/src/note.txt') = 2 ]"

# -- 4. no terminal, no flag: saved beside, never over the file
open_file append "$T/src/note.txt"
check "no terminal to ask: the edit saved as note.txt.edited ($RC)" \
	bash -c "[ $RC = 0 ] && [ \$(wc -l < '$T/src/note.txt') = 2 ] && grep -q 'edited in the disposable' '$T/src/note.txt.edited'"
open_file append "$T/src/note.txt"
check "... and again as note.txt.edited.1" grep -q 'edited in the disposable' "$T/src/note.txt.edited.1"
rm -f "$T/src/note.txt.edited"*

# -- 5. --view-only: read-only there, nothing comes back
: > "$T/editor.log"
open_file try-write --view-only "$T/src/note.txt"
check "--view-only: exit 0, nothing came back ($RC)" \
	bash -c "[ $RC = 0 ] && grep -q 'opened read-only' '$T/err' && [ \$(wc -l < '$T/src/note.txt') = 2 ]"
check "... the file was read-only (0400) in the disposable" grep -q "mode=400" "$T/editor.log"

# -- 6. the editor replaces the file (new inode): still its edit
open_file replace --keep "$T/src/note.txt"
check "an editor that writes a new file: the edit comes back ($RC)" \
	test "$RC:$(cat "$T/src/note.txt")" = "0:a new file"
note

# -- 7. the editor deletes the file, or leaves a symlink: refused, untouched
for m in delete symlink; do
	open_file "$m" --keep "$T/src/note.txt"
	check "the editor's '$m': exit 1, the disposable says why, the file untouched ($RC)" \
		bash -c "[ $RC = 1 ] && grep -q 'could not open the file: .*' '$T/err' && [ \$(wc -l < '$T/src/note.txt') = 2 ]"
done

# -- 8. the original changed meanwhile: saved beside (the editor, which
# shares this file system here, changes it)
chmod 0666 "$T/src/note.txt"
open_file touch-original --keep "$T/src/note.txt"
check "the original changed meanwhile: not replaced, the edit saved beside ($RC)" \
	bash -c "[ $RC = 0 ] && grep -q 'changed while it was open' '$T/err' && grep -q 'changed meanwhile' '$T/src/note.txt' && grep -q '^edit\$' '$T/src/note.txt.edited'"
rm -f "$T/src/note.txt.edited"; note

# -- 9. policy: other may not open files in disposables
made=$(grep -c '^request: DISPVM' "$T/starter.log" || true)
RC=0
QUBE_CALL_TRANSPORT=unix:$T/qubes/other "$QOIV_PROG" --keep "$T/src/note.txt" </dev/null 2>"$T/err" || RC=$?
check "other -> @dispvm denied: 126, says so, no disposable made ($RC)" \
	bash -c "[ $RC = 126 ] && grep -q 'refused by policy' '$T/err' && [ \$(grep -c '^request: DISPVM' '$T/starter.log') = $made ]"

# -- 10. a terminal lent to the editor: its size, a line typed here
settled
echo terminal > "$T/edit-mode"
python3 - "$QOIV_PROG" "$T/src/note.txt" > "$T/pty.out" 2>&1 <<'PY' && RC=0 || RC=$?
import fcntl, os, pty, select, struct, sys, termios, time
prog, path = sys.argv[1:3]
pid, fd = pty.fork()
if pid == 0:
    # the size before the program starts (it reads it once, at its start)
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execv(prog, [prog, "--keep", path])
screen = b""
def until(text, t=60):
    global screen
    end = time.time() + t
    while time.time() < end and text not in screen:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                screen += os.read(fd, 4096)
            except OSError:
                break
    return text in screen
ok = until(b"type a line> ")
os.write(fd, b"hello from the keyboard\r")
until(b"changes kept")
_, st = os.waitpid(pid, 0)
sys.stdout.write(screen.decode(errors="replace"))
sys.exit(0 if ok and os.waitstatus_to_exitcode(st) == 0 else 1)
PY
check "a terminal: the editor ran on a tty of the caller's size (30 100) ($RC)" \
	grep -q "tty size 30 100" "$T/pty.out"
check "... the line typed here reached it and came back in the file" \
	grep -q "^typed: hello from the keyboard\$" "$T/src/note.txt"
note

# -- 11. a hostile disposable: every answer refused, nothing written
# outside the caller's temporary directory, the file untouched
for c in dotdot two-entries dir top-symlink cut long bad-crc bad-magic huge controls; do
	echo "$c" > "$T/evil-case"
	before=$(ls -A "$T" "$T/src" | md5sum)
	RC=0
	"$QOIV_PROG" --keep "$T/src/note.txt" </dev/null >"$T/out" 2>"$T/err" || RC=$?
	check "hostile disposable '$c': exit 1 ($RC: $(tail -n 1 "$T/err" | head -c 150))" test "$RC" = 1
	check "... the file untouched, nothing new beside it or in the test directory" \
		bash -c "[ \$(wc -l < '$T/src/note.txt') = 2 ] && [ \"\$(ls -A '$T' '$T/src' | md5sum)\" = '$before' ]"
	check "... the caller's temporary directory is gone" test -z "$(ls -A "$T/calltmp")"
done
check "the hostile message's control bytes are not printed" \
	bash -c "grep -q 'could not open the file: ' '$T/err' && ! grep -q \$'\\x1b' '$T/err'"
echo "ok" > "$T/evil-case"
RC=0
"$QOIV_PROG" --view-only "$T/src/note.txt" </dev/null >"$T/out" 2>"$T/err" || RC=$?
check "hostile disposable: a file sent back for a view-only open is refused, the file untouched ($RC)" \
	bash -c "[ $RC = 1 ] && grep -q 'view-only open: refused' '$T/err' && [ \$(wc -l < '$T/src/note.txt') = 2 ]"
RC=0
"$QOIV_PROG" --keep "$T/src/note.txt" </dev/null >"$T/out" 2>"$T/err" || RC=$?
check "the same fake disposable with a valid answer is kept (the refusals above are the checks') ($RC)" \
	test "$RC:$(cat "$T/src/note.txt")" = "0:from the evil disposable"
: > "$T/evil-case"
settled
ok "every disposable was destroyed"
finish
