#!/usr/bin/env bash
# The Debian template as the template of AppVMs, through qubed (suites
# template and slow).  Real peers: the build's qubed on the host's libvirtd
# (tests/qubed/lib.sh), QEMU under TCG here, qube-vsockd, the broker qubed
# runs, the template's own systemd, qube-agent and file-copy programs.
#
#  - the template: images/debian/build.sh (its cache makes this quick when
#    the test template-image built it), or QUBE_TEMPLATE_IMAGE=X.qcow2 with
#    X.vmlinux or X.vmlinuz and X.initrd.img beside it; imported with
#    `qubectl template import`; AppVMs WORK and OTHER (and TESTER, never
#    started: the qube whose calls the test makes through the broker) are
#    created on it with `qubectl create`;
#  - boot 1 (`qubectl start WORK`, answered when the agent answers): systemd
#    reaches multi-user.target with no failed unit; the agent and the set-up
#    unit are active; qubed's kernel command line; /rw and /home are the
#    private volume, /home/user belongs to user; volatile is swap; the host
#    name is the qube's; a file is written in /home/user and one in /etc;
#    `qubectl shutdown --wait` powers it off cleanly (ACPI, not a kill);
#  - boot 2: the /home file is there, the /etc one is not (the root overlay
#    was discarded), no failed unit;
#  - qube-copy-to from WORK to OTHER (both running, allowed by the policy)
#    lands in OTHER's ~/QubesIncoming/WORK; the other way is refused (126);
#  - shutdown of both;
#  - `qubectl template update` of the halted template against the real
#    deb.debian.org: qubed starts it (qube.class=TemplateVM on its command
#    line, no network interface), apt-get update and upgrade reach the
#    mirror through its qube-updates-proxy socket, qube.UpdatesProxy, the
#    build's qube-host-agent (started by qubed, services as nobody) and
#    qube-updates-proxy with the shipped allow-list and policy; it ends
#    halted; started again, its proxy socket listens, apt's helper names
#    the proxy, a host not on the list is refused (403), no failed unit;
#    WORK, started after, has the template's new package lists;
#  - removal of the qubes and the template.
# Prints qubectl start -> agent answering for each boot, systemd-analyze,
# and how long the template update took.
# Runs only with QUBE_SLOW_TESTS=1, as root, in a build without sanitizers.
#   template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]
set -euo pipefail
build=${1:?usage: template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]}
top=${2:?usage: template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]}
sanitize=${3:-none}
if [ "${QUBE_SLOW_TESTS:-0}" != 1 ]; then
  echo "SKIP: slow test (builds the Debian template, boots AppVMs on it through qubed under TCG): set QUBE_SLOW_TESTS=1"; exit 77
fi
[ "$sanitize" = none ] || { echo "SKIP: runs in the build without sanitizers (the template's binaries come from its own package build)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (images/debian/build.sh, qubed)"; exit 77; }
for t in mmdebstrap qemu-img; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
# shellcheck disable=SC1091  # the qubed tests' set-up (a real libvirtd, qubed's config)
. "$top/tests/qubed/lib.sh"
qd_setup "$build"
[ -x "$QD_QUBECTL" ] || skip "$QD_QUBECTL is not built"
# a systemd boot under TCG on a shared machine: more than the 240 s that
# suit the minimal image
sed -i 's/^start_timeout = .*/start_timeout = 900/; s/^shutdown_timeout = .*/shutdown_timeout = 180/' "$T/qubed.conf"

# ---- the template -------------------------------------------------------------
if [ -n "${QUBE_TEMPLATE_IMAGE:-}" ]; then
  img=$QUBE_TEMPLATE_IMAGE
  say "# using the template built before: $img"
else
  t0=$SECONDS
  "$top/images/debian/build.sh" "$T/debian-12.qcow2" > "$T/build.log" 2>&1 ||
    { tail -n 40 "$T/build.log"; fail "images/debian/build.sh"; exit 1; }
  img=$T/debian-12.qcow2
  sed -n 's/^images\/debian\/build.sh: /# build.sh: /p' "$T/build.log"
  say "# template ready in $((SECONDS - t0)) s"
fi
base=${img%.qcow2}
kernel=$base.vmlinux; [ -f "$kernel" ] || kernel=$base.vmlinuz
if [ ! -f "$kernel" ] || [ ! -f "$base.initrd.img" ]; then fail "kernel and initramfs beside $img"; exit 1; fi
grep -E '^(qube-guest|base|root-used-bytes|qcow2-bytes|build-seconds):' "$base.manifest" | sed 's/^/# manifest: /' || true

TPL=$(uniq_name debian) WORK=$(uniq_name work) OTHER=$(uniq_name other) QD_TESTER=$(uniq_name tester)
cat > "$T/policy.d/30-template-test.policy" <<POL
qube.VMShell   *  $QD_TESTER  @anyvm  allow
qube.Filecopy  *  $WORK       $OTHER  allow
POL
# the shipped policy after the test's: template updates (qube.UpdatesProxy
# from templates to the host, qube.VMShell from dom0 to templates) and the
# final denials
cp "$top/policy/90-default.policy" "$T/policy.d/"
# the host's services: qube-host-agent (started by qubed, as nobody) with
# qube.UpdatesProxy, which reaches the shipped allow-list's hosts
# (deb.debian.org, security.debian.org) for real
mkdir -p "$T/rpc-host"
cat > "$T/rpc-host/qube.UpdatesProxy" <<SH
#!/bin/sh
exec "$QD_BUILD/rpc/updates-proxy/qube-updates-proxy" --config "$top/rpc/updates-proxy/updates-proxy.conf"
SH
chmod 0755 "$T/rpc-host" "$T/rpc-host/qube.UpdatesProxy"
cat >> "$T/qubed.conf" <<CONF
host_agent = $QD_BUILD/rpc/broker/qube-host-agent
host_rpc_dir = $T/rpc-host
CONF
# qubed does not stop the host agent it started (a new qubed adopts it):
# this test does, also when it fails, after qubed (which would start it
# again).
stop_host_agent_then_cleanup() {
  local rc=$? pid
  set +e
  qd_stop
  pid=$(cat "$T/run/qube-host-agent.pid" 2>/dev/null)
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "qube-host-agent --transport unix:$T/run/adminvm"; then
    kill -KILL "$pid"
  fi
  (exit "$rc")
  qd_cleanup
}
trap stop_host_agent_then_cleanup EXIT
qd_start

t0=$SECONDS
check "qubectl template import (kernel, initramfs, $(( $(stat -c %s "$img") / 1048576 )) MiB root)" \
  qctl template import --kernel "$kernel" --initrd "$base.initrd.img" --root "$img" "$TPL"
say "# import took $((SECONDS - t0)) s"
check "$TPL is a TemplateVM" bash -c "python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.List | grep -q '^$TPL class=TemplateVM '"
for q in "$WORK:blue" "$OTHER:green" "$QD_TESTER:gray"; do
  check "qubectl create --template $TPL ${q%%:*}" qctl create --template "$TPL" --label "${q#*:}" "${q%%:*}"
done

# vmshell QUBE SCRIPT: SCRIPT run by /bin/sh in QUBE (qube.VMShell, from TESTER through the broker)
vmshell() { printf '%s\n' "$2" | timeout 300 "$QD_CALL" --transport "unix:$T/run/qubes/$QD_TESTER" "$1" qube.VMShell; }
# qube_start QUBE: qubectl start, timed; sets t_start (ms)
qube_start() {
  local s; s=$(date +%s%N)
  if qctl start "$1" > "$T/start.out" 2>&1; then
    t_start=$(( ($(date +%s%N) - s) / 1000000 ))
    pass "qubectl start $1 (returns when the agent answers): $((t_start / 1000)).$(( (t_start % 1000) / 100 )) s"
  else
    fail "qubectl start $1: $(cat "$T/start.out")"; exit 1
  fi
}
# qube_shutdown QUBE: ACPI power button through qubed, waited for; a clean
# poweroff prints "reboot: Power down" on the console, a kill would not
qube_shutdown() {
  local log=$T/log/console-$1.log n0
  n0=$(grep -c 'reboot: Power down' "$log" 2>/dev/null || true)
  check "qubectl shutdown --wait $1" qctl shutdown --wait "$1"
  check "$1 is Halted" test "$(qd_state "$1")" = Halted
  check "$1 powered off cleanly (systemd, 'reboot: Power down' on its console)" \
    test "$(grep -c 'reboot: Power down' "$log" 2>/dev/null || true)" -gt "${n0:-0}"
}
running_clean() { # QUBE: systemd's state once booted, and failed units
  local st
  st=$(vmshell "$1" 'systemctl is-system-running --wait 2>&1; systemctl --failed --no-legend --plain 2>&1 | sed "s/^/failed: /"') || true
  printf '%s\n' "$st" | sed "s/^/# $1: /"
  [ "$(head -n 1 <<<"$st")" = running ] && ! grep -q '^failed: ' <<<"$st"
}

# ---- boot 1 ---------------------------------------------------------------------
qube_start "$WORK"; t1=$t_start
check "$WORK is Running" test "$(qd_state "$WORK")" = Running
check "boot 1: systemd is 'running' (multi-user.target reached) with no failed unit" running_clean "$WORK"
vmshell "$WORK" 'systemd-analyze time 2>&1 | head -n 2; systemd-analyze blame 2>&1 | head -n 8' | sed 's/^/# guest: /' || true
check "boot 1: multi-user.target is active" test "$(vmshell "$WORK" 'systemctl is-active multi-user.target')" = active
check "boot 1: qube-agent.service and qube-guest-setup.service are active" \
  test "$(vmshell "$WORK" 'systemctl is-active qube-agent.service qube-guest-setup.service | sort -u')" = active
check "boot 1: qubed's kernel command line (qube.name, root=/dev/vda, private vdb, volatile vdc, qube.class)" \
  bash -c "grep -q 'qube.name=$WORK root=/dev/vda qube.rw=/dev/vdb qube.volatile=/dev/vdc qube.class=AppVM' <<<\"\$1\"" _ "$(vmshell "$WORK" 'cat /proc/cmdline')"
check "boot 1: an AppVM has no updates proxy port (qube-updates-proxy.socket's condition) and apt goes DIRECT" \
  test "$(vmshell "$WORK" 'systemctl is-active qube-updates-proxy.socket; /usr/lib/qube/qube-guest-apt-proxy http://deb.debian.org/debian')" = "inactive
DIRECT"
check "boot 1: / is /dev/vda, read-write" test "$(vmshell "$WORK" 'findmnt -no SOURCE,OPTIONS / | cut -d, -f1')" = "/dev/vda rw"
check "boot 1: /rw is the private volume /dev/vdb" test "$(vmshell "$WORK" 'findmnt -no SOURCE /rw')" = /dev/vdb
check "boot 1: /home is /rw/home of /dev/vdb" test "$(vmshell "$WORK" 'findmnt -no SOURCE /home')" = "/dev/vdb[/home]"
check "boot 1: /home/user exists and belongs to user" test "$(vmshell "$WORK" 'stat -c %U:%G /home/user')" = user:user
check "boot 1: the volatile volume /dev/vdc is swap" bash -c "grep -q '^/dev/vdc ' <<<\"\$1\"" _ "$(vmshell "$WORK" 'swapon --show=NAME,TYPE --noheadings')"
check "boot 1: the host name is the qube's" test "$(vmshell "$WORK" hostname)" = "$WORK"
# shellcheck disable=SC2016  # run by the guest's shell
check "boot 1: qube-guest's file-copy and open-in-disposable programs and services are installed" \
  test "$(vmshell "$WORK" 'for p in qube-copy qube-copy-to qube-move-to qube-filecopy-receive qube-open-in-dvm; do command -v $p >/dev/null || echo no $p; done; readlink /etc/qube/rpc/qube.Filecopy /etc/qube/rpc/qube.OpenInVM')" = "/usr/bin/qube-filecopy-receive
/usr/bin/qube-open-in-dvm"
check "boot 1: write a file in /home/user and one in /etc" \
  test "$(vmshell "$WORK" 'echo kept > /home/user/persist && chown user:user /home/user/persist && echo gone > /etc/qube-root-marker && sync && echo written')" = written
qube_shutdown "$WORK"

# ---- boot 2: a new root overlay, the same private volume ---------------------------
qube_start "$WORK"; t2=$t_start
check "boot 2: the file written in /home/user survived (private volume)" test "$(vmshell "$WORK" 'cat /home/user/persist')" = kept
check "boot 2: the file written in /etc did not (root overlay discarded)" \
  test "$(vmshell "$WORK" 'test -e /etc/qube-root-marker && echo present || echo absent')" = absent
check "boot 2: systemd is 'running' with no failed unit" running_clean "$WORK"

# ---- qube-copy between two AppVMs of the template ------------------------------------
qube_start "$OTHER"; t3=$t_start
check "$OTHER: systemd is 'running' with no failed unit" running_clean "$OTHER"
out=$(vmshell "$WORK" "runuser -u user -- qube-copy-to $OTHER /home/user/persist 2>&1; echo status=\$?") || true
printf '%s\n' "$out" | sed 's/^/# qube-copy-to: /'
check "qube-copy-to $OTHER in $WORK (as user) exits 0" grep -qx 'status=0' <<<"$out"
check "the file is in $OTHER's ~/QubesIncoming/$WORK, the user's, same contents" \
  test "$(vmshell "$OTHER" "stat -c %U /home/user/QubesIncoming/$WORK/persist && cat /home/user/QubesIncoming/$WORK/persist")" = "user
kept"
check "the broker allowed qube.Filecopy with the source from the transport" \
  grep -q "source=$WORK .*service=qube.Filecopy .*decision=allow" "$T/log/broker.log"
out=$(vmshell "$OTHER" "runuser -u user -- qube-copy-to $WORK /etc/hostname 2>&1; echo status=\$?") || true
check "qube-copy-to the other way (no policy rule) is refused: 126" grep -qx 'status=126' <<<"$out"
check "nothing arrived in $WORK" test "$(vmshell "$WORK" 'ls -A /home/user/QubesIncoming 2>/dev/null | wc -l')" = 0
qube_shutdown "$WORK"
qube_shutdown "$OTHER"

# ---- template update: apt in the template through qube.UpdatesProxy --------------------
# The template has no network interface; apt reaches deb.debian.org
# through its proxy port, qube-call, the broker, qube-host-agent and
# qube-updates-proxy on this host.
check "$TPL is halted and no qube based on it runs" \
  bash -c "[ '$(qd_state "$TPL")' = Halted ] && [ '$(qd_state "$WORK")' = Halted ] && [ '$(qd_state "$OTHER")' = Halted ]"
n0=$(grep -c 'reboot: Power down' "$T/log/console-$TPL.log" 2>/dev/null || true)
t0=$(date +%s%N)
rc=0; qctl template update "$TPL" > "$T/update.out" 2> "$T/update.err" || rc=$?
t_update=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -E '^(Get|Hit|Ign|Err|Fetched|Reading package lists|[0-9]+ upgraded|W:|E:)' "$T/update.out" | sed 's/^/# update: /' || true
sed 's/^/# update (stderr): /' "$T/update.err"
check "qubectl template update $TPL: exit 0 ($rc) in $((t_update / 1000)).$(( (t_update % 1000) / 100 )) s" test "$rc" = 0
check "... apt-get update reached deb.debian.org's bookworm, bookworm-updates and bookworm-security" \
  bash -c "grep -Eq '^(Get|Hit):[0-9]+ http://deb.debian.org/debian bookworm InRelease' '$T/update.out' &&
           grep -Eq '^(Get|Hit):[0-9]+ http://deb.debian.org/debian bookworm-updates InRelease' '$T/update.out' &&
           grep -Eq '^(Get|Hit):[0-9]+ http://deb.debian.org/debian-security bookworm-security InRelease' '$T/update.out' &&
           ! grep -Eq '^(Err|E|W):' '$T/update.out'"
check "... apt-get -y upgrade ran to its end" grep -Eq '^[0-9]+ upgraded, [0-9]+ newly installed' "$T/update.out"
check "... the broker ran dom0's qube.VMShell in $TPL and $TPL's qube.UpdatesProxy calls on the host" \
  bash -c "grep -q 'source=dom0 target=$TPL requested=$TPL service=qube.VMShell .*decision=allow' '$T/log/broker.log' &&
           grep -q 'source=$TPL target=dom0 requested=@default service=qube.UpdatesProxy .*decision=allow' '$T/log/broker.log'"
say "# $(grep -c "source=$TPL target=dom0 requested=@default service=qube.UpdatesProxy" "$T/log/broker.log") qube.UpdatesProxy calls from $TPL"
check "$TPL is halted afterwards, powered off cleanly" \
  bash -c "[ '$(qd_state "$TPL")' = Halted ] && [ \$(grep -c 'reboot: Power down' '$T/log/console-$TPL.log') -gt ${n0:-0} ]"
# the template itself: its proxy port, no network, the allow-list applies
qube_start "$TPL"; t4=$t_start
check "$TPL: qubed's kernel command line says qube.class=TemplateVM; the proxy socket listens; no interface but lo" \
  test "$(vmshell "$TPL" 'grep -o "qube.class=[A-Za-z]*" /proc/cmdline; systemctl is-active qube-updates-proxy.socket; ls /sys/class/net')" = "qube.class=TemplateVM
active
lo"
check "$TPL: apt's helper names the proxy" \
  test "$(vmshell "$TPL" '/usr/lib/qube/qube-guest-apt-proxy http://deb.debian.org/debian')" = "http://127.0.0.1:8082/"
out=$(vmshell "$TPL" 'cd /tmp && /usr/lib/apt/apt-helper download-file http://ftp.debian.org/debian/dists/bookworm/Release /tmp/r 2>&1; echo status=$?') || true
printf '%s\n' "$out" | sed 's/^/# apt-helper (a host not on the list): /'
check "$TPL: a host not on the allow-list is refused by the host's proxy (403)" \
  bash -c "grep -q '403' <<<\"\$1\" && ! grep -qx 'status=0' <<<\"\$1\"" _ "$out"
check "$TPL: systemd is 'running' with no failed unit (after the proxy's connections)" running_clean "$TPL"
qube_shutdown "$TPL"
# the AppVMs see the change at their next start: the package lists apt
# fetched are in the template's root (the built template has none)
qube_start "$WORK"; t5=$t_start
check "$WORK after the update: the template's new package lists are in its root" \
  test "$(vmshell "$WORK" 'ls /var/lib/apt/lists/ | grep -c "_InRelease$"')" -ge 3
# (booted before it is shut down: an ACPI power button pressed while
# systemd still starts units is lost)
check "$WORK after the update: systemd is 'running' with no failed unit" running_clean "$WORK"
qube_shutdown "$WORK"

# ---- removal ---------------------------------------------------------------------------
for q in "$WORK" "$OTHER" "$QD_TESTER"; do
  check "qubectl remove $q" qctl remove --force "$q"
done
check "qubectl remove $TPL" qctl remove --force "$TPL"
check "no file of the qubes or the template is left" bash -c "! ls -d '$T/state/qubes/$WORK' '$T/state/qubes/$OTHER' '$T/state/qubes/$QD_TESTER' '$T/state/qubes/$TPL' 2>/dev/null"
qd_stop

say "timing: qubectl start -> agent answering (TCG, qubed's defaults): boot 1 $t1 ms, boot 2 $t2 ms, second qube $t3 ms, the template $t4 ms, $WORK after the update $t5 ms"
say "timing: qubectl template update (start, apt-get update and upgrade, shutdown): $t_update ms"
qd_summary
