#!/usr/bin/env bash
# qube-vsockd with a real guest: QEMU (TCG) with vhost-user-vsock-pci, the
# Debian kernel's virtio-vsock driver, the minimal image carrying
# vsock-guest-tool.  Checks, over one boot:
#   guest -> host 256 MiB (pattern-verified by the host listener, which
#     answers after the guest's half-close), 64 concurrent guest -> host
#     connections, a refused connection (no listener at <uds>_P),
#   host -> guest 256 MiB through CONNECT (verified by the guest, answer
#     after the host's half-close), 64 concurrent host -> guest connections,
#     a refused CONNECT (guest port without listener),
#   QEMU killed mid-transfer: qube-vsockd exits 0 and removes its sockets;
# then boots a second guest on fresh sockets: connections work both ways;
# then a third guest reboots inside the same QEMU: the backend stays and
# connections work again after the reboot.
#   vsock-guest-test.sh MESON_BUILD_ROOT QUBE_VSOCKD VSOCK_GUEST_TOOL
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../../tests/lib
build=${1:?usage: vsock-guest-test.sh BUILD QUBE_VSOCKD VSOCK_GUEST_TOOL}
vsockd=${2:?}
tool=${3:?}
size=$((256 * 1024 * 1024))

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

img=$("$lib/guest-image.sh" --build-dir "$build" --output "$build/vmm/vsock-image" \
  --add "$tool:/usr/bin/vsock-guest-tool")
# short path: unix socket names must fit in 108 bytes
tmp=$(mktemp -d /tmp/qvsk.XXXXXX)
pids=()
qpid= dpid=
cleanup() {
  for p in "${pids[@]}" $qpid $dpid; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}" $qpid $dpid; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f ---" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}
step() { echo "== $*"; }

# wait_exit PID SECONDS: waits for a child of this shell; sets rc to its
# exit status, 124 on timeout (runs in this shell: wait needs the parent)
wait_exit() {
  local pid=$1 t=$2
  rc=0
  for _ in $(seq $((t * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || rc=$?
      return 0
    fi
    sleep 0.1
  done
  rc=124
}

# wait_guest LOG MARKER SECONDS: until MARKER is in LOG; fails early when
# the guest went idle (all its commands done) or QEMU ended without it
wait_guest() {
  local log=$1 marker=$2 t=$3
  for _ in $(seq $((t * 10))); do
    grep -qF -- "$marker" "$log" 2>/dev/null && return 0
    if grep -qF 'qube-init: idle' "$log" 2>/dev/null || ! kill -0 "$qpid" 2>/dev/null; then
      grep -qF -- "$marker" "$log" 2>/dev/null && return 0
      return 1
    fi
    sleep 0.1
  done
  return 1
}

start_backend() { # NAME
  "$vsockd" --socket "$tmp/vu.sock" --guest-cid 5 --uds-path "$tmp/vs" --verbose \
    >"$tmp/vsockd-$1.log" 2>&1 &
  dpid=$!
  for _ in $(seq 300); do
    [ -S "$tmp/vu.sock" ] && return 0
    kill -0 "$dpid" 2>/dev/null || fail "qube-vsockd exited at start"
    sleep 0.1
  done
  fail "qube-vsockd did not create $tmp/vu.sock"
}

start_guest() { # NAME APPEND
  "$lib/qemu-guest.sh" --kernel "$img/vmlinuz" --initrd "$img/initramfs.cpio.gz" \
    --serial-log "$tmp/serial-$1.log" --memory 256 --vhost-user-vsock "$tmp/vu.sock" \
    --append "qube.agent=0 $2" >"$tmp/qemu-$1.log" 2>&1 &
  qpid=$!
}

host_listen() { # PORT MODE
  "$tool" listen "unix:$tmp/vs_$1" "$2" >"$tmp/host-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$tmp/vs_$1" ] && return 0; sleep 0.1; done
  fail "host listener on port $1 did not start"
}

# ---- first guest ----------------------------------------------------------
host_listen 2000 sink
host_listen 2001 echo
start_backend 1
append='"qube.run=vsock-guest-tool listen vsock:1024 echo &"'
append+=' "qube.run=vsock-guest-tool listen vsock:1025 sink &"'
append+=" \"qube.run=vsock-guest-tool connect vsock:2:2000 send $size\""
append+=' "qube.run=vsock-guest-tool connect vsock:2:2001 multi 64 65536"'
append+=' "qube.run=vsock-guest-tool connect vsock:2:2999 refused"'
append+=' "qube.run=vsock-guest-tool connect vsock:2:2001 echo 1000000"'
append+=' "qube.run=echo guest-side-done"'
step "boot guest 1; guest-side tests run at boot"
start_guest 1 "$append"
s1=$tmp/serial-1.log
wait_guest "$s1" "guest-side-done" 420 || fail "guest-side tests did not finish"
for i in 3 4 5 6; do
  grep -qF "qube-init: run[$i] exit 0" "$s1" || fail "guest command run[$i] failed: $(grep -F "run[$i]" "$s1" | tr '\n' ' ')"
done
echo "guest -> host 256 MiB: $(grep -F 'sent 268435456' "$s1")"
echo "guest -> host: 64 concurrent connections, refused port, echo: ok"

step "host -> guest 256 MiB, verified by the guest, reply after half-close"
"$tool" connect "hybrid:$tmp/vs:1025" send "$size" || fail "host -> guest transfer"
step "host -> guest 64 concurrent connections"
"$tool" connect "hybrid:$tmp/vs:1024" multi 64 65536 || fail "64 host -> guest connections"
step "host -> guest port without listener is refused"
timeout 60 "$tool" connect "hybrid:$tmp/vs:1999" refused || fail "refused CONNECT"

step "kill QEMU mid-transfer"
"$tool" connect "hybrid:$tmp/vs:1024" echo 100000000000 >"$tmp/midxfer.log" 2>&1 &
xpid=$!
# Give the transfer time to get going.  Not a readiness wait: the check
# below holds whether QEMU dies before, during or after the CONNECT.
sleep 3
kill -9 "$qpid"
wait "$qpid" 2>/dev/null || true
qpid=
wait_exit "$dpid" 60
dpid=
[ "$rc" = 0 ] || fail "qube-vsockd exit status $rc after QEMU was killed (want 0)"
[ ! -e "$tmp/vs" ] || fail "qube-vsockd left $tmp/vs behind"
[ ! -e "$tmp/vu.sock" ] || fail "qube-vsockd left $tmp/vu.sock behind"
wait_exit "$xpid" 60
[ "$rc" != 124 ] || fail "host client hung after QEMU died"
[ "$rc" != 0 ] || fail "host client claims success of an interrupted transfer"
echo "backend exited 0, sockets removed, client ended (status $rc)"

# ---- second guest on fresh sockets -----------------------------------------
step "boot guest 2: new connections work"
start_backend 2
append='"qube.run=vsock-guest-tool listen vsock:1024 echo &"'
append+=' "qube.run=vsock-guest-tool connect vsock:2:2001 echo 100000"'
append+=' "qube.run=echo guest-side-done"'
start_guest 2 "$append"
s2=$tmp/serial-2.log
wait_guest "$s2" "guest-side-done" 420 || fail "guest 2 did not finish"
grep -qF "qube-init: run[2] exit 0" "$s2" || fail "guest 2 -> host echo failed"
"$tool" connect "hybrid:$tmp/vs:1024" echo 100000 || fail "host -> guest 2 echo"
kill "$qpid"
wait "$qpid" 2>/dev/null || true
qpid=
wait_exit "$dpid" 60
dpid=
[ "$rc" = 0 ] || fail "qube-vsockd exit status $rc after QEMU quit (want 0)"
[ ! -e "$tmp/vs" ] || fail "qube-vsockd left $tmp/vs behind"

# ---- guest reboot inside the same QEMU --------------------------------------
# The vhost-user device is stopped and started again by QEMU; the backend
# must carry on.  First boot: port 2100 has no host listener, so "refused"
# succeeds and the guest reboots; the host then listens on 2100, so in the
# second boot "refused" fails and the remaining commands run.
step "guest reboot with QEMU and qube-vsockd staying"
start_backend 3
append='"qube.run=vsock-guest-tool listen vsock:1024 echo &"'
append+=' "qube.run=vsock-guest-tool connect vsock:2:2100 refused && { echo first-boot-done | tr a-z A-Z; reboot -f; }"'
append+=' "qube.run=vsock-guest-tool connect vsock:2:2001 echo 100000"'
append+=' "qube.run=echo guest-side-done"'
# the launcher always passes -no-reboot; this phase needs the reset
cmd=$("$lib/qemu-guest.sh" --kernel "$img/vmlinuz" --initrd "$img/initramfs.cpio.gz" \
  --serial-log "$tmp/serial-3.log" --memory 256 --vhost-user-vsock "$tmp/vu.sock" \
  --append "qube.agent=0 $append" --dry-run)
cmd=${cmd/ -no-reboot / }
eval "exec $cmd" >"$tmp/qemu-3.log" 2>&1 </dev/null &
qpid=$!
s3=$tmp/serial-3.log
# (upper case, so the echoed command line itself cannot match)
wait_guest "$s3" "FIRST-BOOT-DONE" 420 || fail "first boot did not finish"
host_listen 2100 echo
for _ in $(seq 4200); do
  [ "$(grep -c 'qube-init: idle' "$s3")" -ge 1 ] && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.1
done
grep -qF "guest-side-done" "$s3" || fail "second boot did not finish"
[ "$(grep -c 'qube-init: starting' "$s3")" = 2 ] || fail "the guest did not boot exactly twice"
grep -qF "qube-init: run[3] exit 0" "$s3" || fail "guest -> host echo after reboot failed"
kill -0 "$dpid" 2>/dev/null || fail "qube-vsockd exited across the guest reboot"
"$tool" connect "hybrid:$tmp/vs:1024" echo 100000 || fail "host -> guest echo after reboot"
kill "$qpid"
wait "$qpid" 2>/dev/null || true
qpid=
wait_exit "$dpid" 60
dpid=
[ "$rc" = 0 ] || fail "qube-vsockd exit status $rc after QEMU quit (want 0)"
[ ! -e "$tmp/vs" ] || fail "qube-vsockd left $tmp/vs behind"
grep -q 'rejected' "$tmp"/vsockd-*.log &&
  fail "QEMU sent a vhost-user message qube-vsockd rejected: $(grep -h rejected "$tmp"/vsockd-*.log | sort -u | tr '\n' ' ')"
echo "PASS"
