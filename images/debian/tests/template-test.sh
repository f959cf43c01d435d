#!/usr/bin/env bash
# The Debian template boots as a qube would (suite template, slow).
#
# Builds images/debian/build.sh (or takes QUBE_TEMPLATE_IMAGE=X.qcow2 built
# before, with X.vmlinux or X.vmlinuz and X.initrd.img beside it), then boots
# it twice under QEMU (TCG) exactly as the qubed contract says: direct kernel
# boot of the template's kernel and initramfs, virtio-blk root (a fresh qcow2
# overlay on the template each boot, as an AppVM's), private (/dev/vdb,
# host-made ext4, the same both boots) and volatile (/dev/vdc, empty), the
# command line root=/dev/vda qube.name=... qube.rw=/dev/vdb
# qube.volatile=/dev/vdc, vsock through qube-vsockd.  Real peers: qube-broker
# and a simulated qube whose qube-call runs qube.VMShell in the guest.
#  boot 1: the agent answers (HELLO on port 512); systemd reaches
#    multi-user.target with no failed unit; /rw and /home are on /dev/vdb,
#    /home/user belongs to user; the volatile disk is swap; the host name is
#    the qube's; a file is written in /home/user and one in /etc; poweroff
#    from inside ends QEMU;
#  boot 2 (new root overlay, same private disk): the /home file is there,
#    the /etc one is not.
# Prints QEMU start -> agent answering for both boots.
# Runs only with QUBE_SLOW_TESTS=1, as root (the template build).
#   template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]
set -euo pipefail
build=${1:?usage: template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]}
top=${2:?usage: template-test.sh MESON_BUILD_ROOT SOURCE_ROOT [SANITIZE]}
sanitize=${3:-none}
build=$(cd "$build" && pwd); top=$(cd "$top" && pwd)
lib=$top/tests/lib
if [ "${QUBE_SLOW_TESTS:-0}" != 1 ]; then
  echo "SKIP: slow test (builds the Debian template, boots it twice under TCG): set QUBE_SLOW_TESTS=1"; exit 77
fi
[ "$sanitize" = none ] || { echo "SKIP: runs in the build without sanitizers (the template's binaries come from its own package build)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (images/debian/build.sh)"; exit 77; }
missing=()
for p in rpc/guest/qube-agent rpc/guest/qube-call rpc/broker/qube-broker vmm/qube-vsockd; do
  [ -x "$build/$p" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || { echo "SKIP: not built in $build: ${missing[*]}"; exit 77; }
for t in qemu-system-x86_64 qemu-img mkfs.ext4 python3 mmdebstrap; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
AGENT=$build/rpc/guest/qube-agent CALL=$build/rpc/guest/qube-call
BROKER=$build/rpc/broker/qube-broker VSOCKD=$build/vmm/qube-vsockd

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-template.XXXXXX")
chmod 0755 "$T"
pids=() qpid='' vpid=''
cleanup() {
  local p
  for p in $qpid $vpid "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in $qpid $vpid "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
dump() {
  local f
  for f in "$T"/serial*.log "$T/broker.log" "$T"/vsockd*.log; do
    echo "---- $f (last 60 lines) ----" >&2; tail -n 60 "$f" >&2 2>/dev/null || true
  done
}
die() { echo "FATAL: $*" >&2; dump; exit 1; }
wait_for() { # TIMEOUT DESCRIPTION COMMAND...
  local t=$1 d=$2; shift 2
  local end=$((SECONDS + t))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after ${t}s waiting for: $d"
    sleep 0.1
  done
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---- the template ------------------------------------------------------------
if [ -n "${QUBE_TEMPLATE_IMAGE:-}" ]; then
  img=$QUBE_TEMPLATE_IMAGE
  echo "# using the template built before: $img"
else
  t0=$SECONDS
  "$top/images/debian/build.sh" "$T/debian-12.qcow2" > "$T/build.log" 2>&1 ||
    { tail -n 40 "$T/build.log" >&2; die "images/debian/build.sh failed"; }
  img=$T/debian-12.qcow2
  echo "# template built in $((SECONDS - t0)) s"
  sed -n 's/^images\/debian\/build.sh: /# /p' "$T/build.log"
fi
base=${img%.qcow2}
kernel=$base.vmlinux; [ -f "$kernel" ] || kernel=$base.vmlinuz
[ -f "$kernel" ] && [ -f "$base.initrd.img" ] || die "no kernel/initramfs beside $img"
grep -E '^(root-used-bytes|qcow2-bytes|build-seconds):' "$base.manifest" | sed 's/^/# manifest: /' || true
used=$(sed -n 's/^root-used-bytes: //p' "$base.manifest")
check "the root file system without the GUI layer is under 1.5 GiB ($((used / 1048576)) MiB)" \
  test "$used" -lt $((1536 * 1048576))

# ---- host side: broker, a simulated caller qube ----------------------------------
mkdir -p "$T/qubes/tvm" "$T/qubes/simvm" "$T/policy" "$T/conf" "$T/simrpc"
cat > "$T/conf/system-info.json" <<'EOF2'
{"domains": {
  "dom0":  {"type": "AdminVM", "tags": [], "icon": "black", "power_state": "Running",
            "template_for_dispvms": false, "default_dispvm": null},
  "tvm":   {"type": "AppVM", "tags": [], "icon": "blue", "power_state": "Running",
            "template_for_dispvms": false, "default_dispvm": null},
  "simvm": {"type": "AppVM", "tags": [], "icon": "green", "power_state": "Running",
            "template_for_dispvms": false, "default_dispvm": null}
}}
EOF2
echo 'qube.VMShell  *  simvm  tvm  allow' > "$T/policy/10-template-test.policy"
"$AGENT" --transport "unix:$T/qubes/simvm" --rpc-dir "$T/simrpc" --name simvm > "$T/simvm-agent.log" 2>&1 &
pids+=($!)
wait_for 30 "simvm agent socket" test -S "$T/qubes/simvm/vsock"
: > "$T/broker.log"
"$BROKER" --policy-dir "$T/policy" --system-info "$T/conf/system-info.json" \
  --qubes-dir "$T/qubes" --log "$T/broker.log" > "$T/broker.out" 2>&1 &
pids+=($!)
wait_for 30 "broker ready" grep -q ' ready ' "$T/broker.log"
# vmshell SCRIPT: runs SCRIPT in the guest through the broker (qube.VMShell)
vmshell() { printf '%s\n' "$1" | timeout 300 "$CALL" --transport "unix:$T/qubes/simvm" tvm qube.VMShell; }

# ---- volumes: private (host-made ext4) and volatile (empty) ------------------------
truncate -s 64M "$T/private.raw"
mkfs.ext4 -q -F -L private "$T/private.raw"
qemu-img convert -f raw -O qcow2 "$T/private.raw" "$T/private.qcow2"
rm "$T/private.raw"

# boot N: a fresh root overlay and volatile, the same private; sets t_agent
boot() {
  local n=$1 start hello
  rm -f "$T/root.qcow2" "$T/volatile.qcow2" "$T/qubes/tvm/vsock" "$T/vhost-user.sock"
  qemu-img create -q -f qcow2 -b "$img" -F qcow2 "$T/root.qcow2"
  qemu-img create -q -f qcow2 "$T/volatile.qcow2" 256M
  "$VSOCKD" --socket "$T/vhost-user.sock" --guest-cid 3 --uds-path "$T/qubes/tvm/vsock" \
    > "$T/vsockd$n.log" 2>&1 &
  vpid=$!
  wait_for 30 "qube-vsockd sockets" test -S "$T/vhost-user.sock"
  start=$(date +%s%N)
  "$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$base.initrd.img" \
    --serial-log "$T/serial$n.log" --memory 1024 --disk-format qcow2 \
    --disk "$T/root.qcow2" --disk "$T/private.qcow2" --disk "$T/volatile.qcow2" \
    --vhost-user-vsock "$T/vhost-user.sock" \
    --append "root=/dev/vda qube.name=tvm qube.rw=/dev/vdb qube.volatile=/dev/vdc" &
  qpid=$!
  hello=$(python3 "$lib/hybrid-wait.py" "$T/qubes/tvm/vsock" 512 600) || die "boot $n: the agent did not answer on port 512"
  t_agent=$(ms_since "$start")
  check "boot $n: the template's agent answers CONNECT 512 with HELLO {1, 2}" \
    test "${hello#* }" = 01000000080000000100000002000000
}
# poweroff N: from inside the guest; QEMU and vsockd exit
poweroff_guest() {
  local n=$1 rc=0
  vmshell 'systemctl --no-block poweroff' > /dev/null 2>&1 || true
  for _ in $(seq 1 1200); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$qpid" 2>/dev/null; then not_ok "boot $n: QEMU exits after poweroff in the guest"; kill "$qpid"; fi
  wait "$qpid" || rc=$?; qpid=
  check "boot $n: QEMU exits 0 after systemctl poweroff in the guest" test "$rc" = 0
  for _ in $(seq 1 100); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
  kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; vpid=
}

# ---- boot 1 -------------------------------------------------------------------
boot 1
t_agent1=$t_agent
state=$(vmshell 'systemctl is-system-running --wait 2>&1; systemctl --failed --no-legend --plain 2>&1 | sed "s/^/failed: /"') ||
  die "qube.VMShell call failed"
echo "$state" | sed 's/^/# guest: /'
vmshell 'systemd-analyze time 2>&1 | head -n 2' | sed 's/^/# guest: /' || true
check "boot 1: systemd is 'running' with no failed unit" test "$(head -n 1 <<<"$state")" = running
check "boot 1: systemctl --failed lists nothing" bash -c "! grep -q '^failed: ' <<<'$state'"
check "boot 1: multi-user.target is active" test "$(vmshell 'systemctl is-active multi-user.target')" = active
check "boot 1: qube-agent.service and qube-guest-setup.service are active" \
  test "$(vmshell 'systemctl is-active qube-agent.service qube-guest-setup.service | sort -u')" = active
check "boot 1: /rw is the private disk /dev/vdb" test "$(vmshell 'findmnt -no SOURCE /rw')" = /dev/vdb
check "boot 1: /home is /rw/home of /dev/vdb" test "$(vmshell 'findmnt -no SOURCE /home')" = "/dev/vdb[/home]"
check "boot 1: /home/user exists and belongs to user" test "$(vmshell 'stat -c %U:%G /home/user')" = user:user
check "boot 1: the volatile disk /dev/vdc is swap" bash -c "grep -q '^/dev/vdc ' <<<\"\$(printf 'swapon --show=NAME,TYPE --noheadings\n' | timeout 120 '$CALL' --transport 'unix:$T/qubes/simvm' tvm qube.VMShell)\""
check "boot 1: the host name is the qube's" test "$(vmshell 'hostname')" = tvm
check "boot 1: the root file system is /dev/vda, read-write" test "$(vmshell 'findmnt -no SOURCE,OPTIONS / | cut -d, -f1')" = "/dev/vda rw"
vmshell 'echo kept > /home/user/persist && chown user:user /home/user/persist && echo gone > /etc/qube-root-marker && sync' ||
  not_ok "boot 1: writing the marker files"
poweroff_guest 1

# ---- boot 2: new root overlay, same private volume ----------------------------------
boot 2
t_agent2=$t_agent
check "boot 2: the file written in /home/user survived (private volume)" \
  test "$(vmshell 'cat /home/user/persist')" = kept
check "boot 2: the file written in /etc did not (root overlay discarded)" \
  test "$(vmshell 'test -e /etc/qube-root-marker && echo present || echo absent')" = absent
check "boot 2: no failed unit" test "$(vmshell 'systemctl is-system-running --wait')" = running
poweroff_guest 2

echo "timing: QEMU start -> template agent answering: boot 1 ${t_agent1} ms, boot 2 ${t_agent2} ms (TCG, 1 vCPU, 1 GiB)"
if [ "$fails" -gt 0 ]; then dump; echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
