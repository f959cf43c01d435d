#!/usr/bin/env bash
# Files between real qubes (docs/filecopy.md) on a real libvirtd and real
# QEMU (TCG here) with the minimal image, which carries the file-copy
# programs.  Three boots: two AppVMs, WORK and PERS (PERS is also the
# disposable template), and one disposable.
#   - guest to guest through the policy: qube-copy-to and qube-move-to
#     allowed (byte-exact: data, modes, mtimes, a symlink, an empty file;
#     the move deletes its sources), denied (126, nothing arrives, a denied
#     move deletes nothing); qube-copy / qube-move to @default with "ask",
#     answered on a pty by `qubectl policy ask-agent` (Enter: the default
#     target; n: 126, nothing deleted)
#   - the host: qubectl copy-to (lands in ~/QubesIncoming/dom0, byte-exact;
#     denied: 126) and qubectl copy-from (byte-exact into a host directory)
#   - qube-open-in-dvm in WORK on a text file, edited by a scripted editor
#     (PERS's ~/.config/qube/open-in-vm.conf) in a disposable of PERS: the
#     change comes back, and the disposable leaves no domain, no volume and
#     no database entry
#   filecopy-test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
qd_setup "$1"
for b in rpc/guest/filecopy/qube-filecopy-send rpc/guest/filecopy/qube-filecopy-receive \
	 rpc/guest/openinvm/qube-open-in-dvm rpc/guest/qube-exec src/qubectl; do
	[ -x "$QD_BUILD/$b" ] || skip "$b is not built"
done
img=$(qd_image)
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
t_start=$(date +%s)

TPL=$(uniq_name tpl) WORK=$(uniq_name work) PERS=$(uniq_name pers)
cat > "$T/policy.d/30-filecopy.policy" <<POL
# the host runs the test's commands in the qubes (qube.Exec, as "user")
qube.Exec      *  dom0   @anyvm    allow
# guest to guest
qube.Filecopy  *  $WORK  $PERS     allow
qube.Filecopy  *  $PERS  $WORK     deny
qube.Filecopy  *  $WORK  @default  ask default_target=$PERS
# the host's copies
qube.Filecopy  *  dom0   $PERS     allow
qube.Filecopy  *  dom0   $WORK     deny
# open in a disposable of PERS
qube.OpenInVM  *  $WORK  @dispvm   allow target=@dispvm:$PERS
POL
qd_start

truncate -s 32M "$T/root.img"
mkfs.ext4 -q -F "$T/root.img"
check "create TemplateVM" qd_call admin.vm.Create.TemplateVM dom0 --payload "name=$TPL label=black"
check "import kernel" qd_call qube.template.Import+kernel "$TPL" --payload-file "$kernel"
check "import initrd" qd_call qube.template.Import+initrd "$TPL" --payload-file "$img/initramfs.cpio.gz"
check "import root" qd_call qube.template.Import+root "$TPL" --payload-file "$T/root.img"
check "create AppVM $WORK" qctl create --template "$TPL" --label blue "$WORK"
check "create AppVM $PERS (also a disposable template)" \
	qctl create --template "$TPL" --label green --property template_for_dispvms=True "$PERS"

disp_names() { qd_call admin.vm.List | sed -n 's/^\(disp[0-9]*\) class=DispVM .*/\1/p'; }
disp_domains() { virsh -q -c qemu:///system list --all --name | grep -E '^qube-disp[0-9]+$' || true; }
disp_dirs() { ls -d "$T"/state/qubes/disp* 2>/dev/null || true; }
no_disposables() { [ -z "$(disp_names)" ] && [ -z "$(disp_domains)" ] && [ -z "$(disp_dirs)" ]; }
wait_no_disposables() { for _ in $(seq 150); do no_disposables && return 0; sleep 0.2; done; return 1; }

# in QUBE as its user: urun QUBE CMD... (stdout relayed; RC set)
urun() { local q=$1; shift; RC=0; qctl run -p -u user "$q" -- "$@" </dev/null 2>"$T/err" || RC=$?; }
# a listing of DIR with each file's SHA-256, mode and mtime, each
# symlink's target: the same program on the host and in a qube (busybox)
MANIFEST='cd "$1" && find . | sort | while IFS= read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"
  elif [ -d "$f" ]; then echo "$f dir $(stat -c %a "$f")"
  else echo "$f $(sha256sum < "$f" | cut -d" " -f1) $(stat -c "%a %Y" "$f")"; fi
done'
manifest() { urun "$1" sh -c "$MANIFEST" manifest "$2"; }

t0=$(date +%s)
check "start $WORK and $PERS" qctl start "$WORK" "$PERS"
say "  two boots: $(( $(date +%s) - t0 )) s"

# --- guest to guest: an allowed copy of a tree, byte-exact
urun "$WORK" sh -c 'mkdir -p ~/src/tree/sub && head -c 3000000 /dev/urandom > ~/src/tree/big.bin &&
  echo hello > ~/src/tree/sub/a.txt && : > ~/src/tree/empty && ln -s sub/a.txt ~/src/tree/link &&
  chmod 0600 ~/src/tree/big.bin && touch -d "2001-02-03 04:05:06" ~/src/tree/sub/a.txt &&
  echo note > ~/note.txt && echo moved > ~/mv.txt && echo ask > ~/ask.txt && echo kept > ~/kept.txt'
check "files made in $WORK" test "$RC" = 0
src_manifest=$(manifest "$WORK" /home/user/src/tree)
t0=$(date +%s.%N)
urun "$WORK" qube-copy-to "$PERS" /home/user/src/tree
t1=$(date +%s.%N)
check "$WORK: qube-copy-to $PERS tree: exit 0 ($RC: $(tail -c 200 "$T/err"))" test "$RC" = 0
say "  qube-copy-to of a 3 MB tree between two qubes: $(echo "$t1 - $t0" | bc) s"
check "... arrives in $PERS's ~/QubesIncoming/$WORK/tree, byte-exact with modes, mtimes and the symlink" \
	test "$(manifest "$PERS" "/home/user/QubesIncoming/$WORK/tree")" = "$src_manifest"
check "... the broker decided it: $WORK -> $PERS qube.Filecopy allowed" \
	grep -q "source=$WORK target=$PERS requested=$PERS service=qube.Filecopy .*decision=allow" "$T/log/broker.log"

# --- denied: 126, nothing arrives
urun "$PERS" sh -c 'echo secret > ~/secret.txt'
urun "$PERS" qube-copy-to "$WORK" /home/user/secret.txt
check "$PERS: qube-copy-to $WORK (deny): 126, says so ($RC)" \
	bash -c "[ $RC = 126 ] && grep -q 'refused by policy' '$T/err'"
urun "$PERS" qube-move-to "$WORK" /home/user/secret.txt
check "$PERS: qube-move-to $WORK (deny): 126" test "$RC" = 126
urun "$PERS" cat /home/user/secret.txt >"$T/out"
check "... the denied move deleted nothing" test "$RC:$(cat "$T/out")" = "0:secret"
urun "$WORK" sh -c "ls -A ~/QubesIncoming 2>/dev/null | wc -l" >"$T/out"
check "... nothing arrived in $WORK" test "$(tr -d ' ' < "$T/out")" = 0

# --- an allowed move: the source is deleted after the receiver confirmed it
urun "$WORK" qube-move-to "$PERS" /home/user/mv.txt
check "$WORK: qube-move-to $PERS: exit 0 ($RC)" test "$RC" = 0
urun "$WORK" test -e /home/user/mv.txt
check "... the source is gone" test "$RC" = 1
urun "$PERS" cat "/home/user/QubesIncoming/$WORK/mv.txt" >"$T/out"
check "... and arrived" test "$(cat "$T/out")" = moved

# --- ask: qube-copy (@default), answered by the ask agent on a terminal
python3 - "$QD_QUBECTL" "$T/run/ask.sock" "$QD_SOCK" "$WORK" "$PERS" > "$T/ask.out" 2>&1 <<'PY' && rc=0 || rc=$?
import os, pty, select, subprocess, sys, time
qubectl, ask_sock, sock, work, pers = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    os.execv(qubectl, [qubectl, "policy", "ask-agent", "--ask-socket", ask_sock, "--timeout", "120"])
screen = b""
def until(text, t=120):
    global screen
    start, end = len(screen), time.time() + t
    while time.time() < end:
        if text.encode() in screen[start:]:
            return True
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            screen += os.read(fd, 4096)
    return False
def run(*cmd):
    return subprocess.Popen([qubectl, "--socket", sock, "run", "-p", "-u", "user", work, "--", *cmd],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
fails = 0
def check(what, cond, detail=""):
    global fails
    print(("ok - " if cond else "not ok - ") + what + ("" if cond else ": " + detail))
    fails += not cond
check("the ask agent connected", until("Answering the broker's questions"))
p = run("qube-copy", "/home/user/ask.txt")
shown = until("Allow the call to which target?")
check("qube-copy in %s: the question names it, qube.Filecopy and @default, %s the default" % (work, pers),
      shown and ("%s wants to call qube.Filecopy, target @default." % work).encode() in screen
      and ("%s  (default)" % pers).encode() in screen, screen[-400:].decode(errors="replace"))
os.write(fd, b"\r")
out, err = p.communicate(timeout=120)
check("Enter allows the default: qube-copy exit 0", p.returncode == 0, "%s %r" % (p.returncode, err))
p = run("qube-move", "/home/user/kept.txt")
until("Allow the call to which target?")
os.write(fd, b"n\r")
out, err = p.communicate(timeout=120)
check("n denies: qube-move exit 126", p.returncode == 126, "%s %r" % (p.returncode, err))
os.kill(pid, 15)
os.waitpid(pid, 0)
sys.exit(1 if fails else 0)
PY
cat "$T/ask.out"
check "ask via the terminal ask agent (checks above)" test "$rc" = 0
urun "$PERS" cat "/home/user/QubesIncoming/$WORK/ask.txt" >"$T/out"
check "... the copy answered with Enter arrived in $PERS" test "$(cat "$T/out")" = ask
urun "$WORK" cat /home/user/kept.txt >"$T/out"
check "... the move answered n deleted nothing" test "$RC:$(cat "$T/out")" = "0:kept"
urun "$PERS" test -e "/home/user/QubesIncoming/$WORK/kept.txt"
check "... and nothing of it arrived" test "$RC" = 1
check "... the broker logged ask-allow and ask-deny" bash -c \
	"grep -q 'source=$WORK target=$PERS requested=@default service=qube.Filecopy .*decision=ask-allow' '$T/log/broker.log' &&
	 grep -q 'source=$WORK .*requested=@default service=qube.Filecopy .*decision=ask-deny' '$T/log/broker.log'"

# --- the host: copy-to and copy-from, byte-exact
mkdir -p "$T/host/tree/d"
head -c 2000000 /dev/urandom > "$T/host/tree/d/r.bin"
echo from-the-host > "$T/host/tree/h.txt"
ln -s d/r.bin "$T/host/tree/l"
host_manifest=$(LC_ALL=C bash -c "$MANIFEST" manifest "$T/host/tree")
RC=0; qctl copy-to "$PERS" "$T/host/tree" 2>"$T/err" || RC=$?
check "qubectl copy-to $PERS: exit 0 ($RC: $(tail -c 200 "$T/err"))" test "$RC" = 0
check "... arrives in $PERS's ~/QubesIncoming/dom0/tree, byte-exact" \
	test "$(manifest "$PERS" /home/user/QubesIncoming/dom0/tree)" = "$host_manifest"
RC=0; qctl copy-to "$WORK" "$T/host/tree" 2>"$T/err" || RC=$?
check "qubectl copy-to $WORK (deny): 126, says so ($RC)" \
	bash -c "[ $RC = 126 ] && grep -q 'refused by policy' '$T/err'"
mkdir "$T/from"
RC=0; qctl copy-from -u user "$WORK" /home/user/src/tree /home/user/note.txt --to "$T/from" 2>"$T/err" || RC=$?
check "qubectl copy-from $WORK: exit 0 ($RC: $(tail -c 200 "$T/err"))" test "$RC" = 0
check "... the tree arrives byte-exact in the host directory" \
	test "$(LC_ALL=C bash -c "$MANIFEST" manifest "$T/from/tree")" = "$src_manifest"
check "... and the file" test "$(cat "$T/from/note.txt")" = note

# --- open in a disposable: PERS is the disposable template; its user's
# editor setting names a scripted editor.  PERS is shut down first, so
# the disposable's private volume is PERS's as last written.
urun "$PERS" sh -c 'mkdir -p ~/.config/qube &&
  printf "#!/bin/sh\necho \"edited in \$(hostname)\" >> \"\$1\"\n" > ~/.config/qube/edit.sh &&
  chmod 0755 ~/.config/qube/edit.sh &&
  echo "editor = /home/user/.config/qube/edit.sh" > ~/.config/qube/open-in-vm.conf'
check "the scripted editor set up in $PERS" test "$RC" = 0
check "shutdown $PERS" qctl shutdown --wait "$PERS"
t0=$(date +%s.%N)
urun "$WORK" qube-open-in-dvm --keep /home/user/note.txt
t1=$(date +%s.%N)
check "qube-open-in-dvm --keep in $WORK: exit 0 ($RC: $(tail -c 300 "$T/err"))" test "$RC" = 0
say "  qube-open-in-dvm (a disposable's boot included): $(echo "$t1 - $t0" | bc) s"
urun "$WORK" cat /home/user/note.txt >"$T/out"
check "... the change made in the disposable came back" \
	bash -c "grep -q '^note\$' '$T/out' && grep -Eq '^edited in disp[0-9]+\$' '$T/out'"
check "... the broker gave $WORK a disposable of $PERS" \
	grep -Eq "source=$WORK target=disp[0-9]+ requested=@dispvm service=qube.OpenInVM .*decision=allow" "$T/log/broker.log"
check "... which is gone: no domain, no volume, no database entry" wait_no_disposables

# --- the end
check "shutdown --all --wait" qctl shutdown --all --wait
for q in "$WORK" "$PERS"; do check "remove $q" qctl remove --force "$q"; done
check "remove the template" qctl remove --force "$TPL"
check "no disposable, domain or volume left" \
	bash -c "[ -z \"\$(ls -A '$T/state/qubes')\" ] && ! virsh -q -c qemu:///system list --all --name | grep -q -- '-$QD_RUN\$'"
say "  the whole test: $(( $(date +%s) - t_start )) s"
qd_summary
