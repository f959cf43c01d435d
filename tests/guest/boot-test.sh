#!/usr/bin/env bash
# Boots the minimal guest image under QEMU TCG once and checks, in that one
# boot: init reaches "ready" with every module loaded, the private disk
# (a fresh ext4 image) is mounted on /rw and both readable and writable
# (the file the guest wrote is read back on the host with debugfs after
# poweroff), the virtio and vsock modules are present in /sys/module, a
# virtio-serial port shows up under /dev/virtio-ports and carries a line
# each way to its unix socket on the host, lo is up, qube.name sets the
# host name, qube.run reports exit statuses, and qube.poweroff ends QEMU
# cleanly.
#   boot-test.sh MESON_BUILD_ROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib
build=${1:?usage: boot-test.sh MESON_BUILD_ROOT}

for tool in qemu-system-x86_64 mkfs.ext4 debugfs; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (scripts/install-deps.sh installs it)"
    exit 77
  fi
done

img=$("$lib/guest-image.sh" --build-dir "$build")
# the uncompressed PVH kernel boots about twice as fast under TCG
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qube-boot-test.XXXXXX")
qpid= vspid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid"; wait "$qpid" 2>/dev/null || true; fi
  if [ -n "$vspid" ] && kill -0 "$vspid" 2>/dev/null; then kill "$vspid"; wait "$vspid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- serial log ---" >&2; cat "$tmp/serial.log" >&2 || true; exit 1; }

# private disk: ext4 with one file from the host
mkdir "$tmp/seed"
echo "written-by-host-$$" > "$tmp/seed/host-file"
truncate -s 16M "$tmp/private.img"
mkfs.ext4 -q -F -L qube-private -d "$tmp/seed" "$tmp/private.img"

append='qube.name=boottest'
append+=' qube.run="cat /rw/host-file"'
append+=' qube.run="echo written-by-guest > /rw/guest-file"'
append+=' qube.run="for m in virtio_pci virtio_blk ext4 virtio_console vsock vmw_vsock_virtio_transport; do test -d /sys/module/$m || echo absent-$m-module; done; echo modules-checked"'
# virtio-serial both ways: the host's line is echoed in upper case (so the
# command line on the console cannot match), then the guest writes one
append+=' qube.run="test -c /dev/virtio-ports/org.qube.test.0 && echo vport-ok && timeout 120 head -n1 /dev/virtio-ports/org.qube.test.0 | tr a-z A-Z && echo vport-data-from-guest > /dev/virtio-ports/org.qube.test.0"'
append+=' qube.run="echo hostname-is-$(hostname); ip -o link show lo | grep -q ,UP, && echo lo-is-up | tr a-z A-Z"'
append+=' qube.run="grep -c . /proc/modules"'
append+=' qube.run="exit 3"'
append+=' qube.poweroff'

# host end of the virtio-serial port: connect once QEMU listens, send a
# line, collect what the guest sends until QEMU closes the socket
python3 - "$tmp/vserial.sock" "host-line-$$" "$tmp/vserial.out" <<'PY' &
import socket, sys, time
path, line, out = sys.argv[1], sys.argv[2], sys.argv[3]
end = time.monotonic() + 300
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        break
    except OSError:
        s.close()
        if time.monotonic() > end:
            sys.exit("virtio-serial socket %s never accepted" % path)
        time.sleep(0.02)
s.sendall(line.encode() + b"\n")
s.settimeout(max(1, end - time.monotonic()))
got = b""
try:
    while b"\n" not in got:
        c = s.recv(4096)
        if not c:
            break
        got += c
except socket.timeout:
    pass
open(out, "wb").write(got)
PY
vspid=$!
start=$(date +%s%N)
"$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
  --serial-log "$tmp/serial.log" --memory 256 --disk "$tmp/private.img" \
  --virtio-serial "$tmp/vserial.sock" --pidfile "$tmp/qemu.pid" --append "$append" &
qpid=$!
# QEMU writes the pid file before the machine starts and removes it when it
# exits, which under load can be before this script looks at the console:
# read it as soon as it has content
pidfile_pid=
for _ in $(seq 600); do
  pidfile_pid=$(cat "$tmp/qemu.pid" 2>/dev/null || true)
  [ -n "$pidfile_pid" ] && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.05
done
"$lib/wait-for-marker.sh" "$tmp/serial.log" "qube-init: ready" 240 "$qpid" || fail "init did not reach ready"
ready=$(date +%s%N)
[ "$pidfile_pid" = "$qpid" ] || fail "--pidfile holds '$pidfile_pid', QEMU is $qpid"
"$lib/wait-for-marker.sh" "$tmp/serial.log" "qube-init: poweroff" 240 "$qpid" || fail "init did not power off"
rc=0
wait "$qpid" || rc=$?
qpid=
end=$(date +%s%N)
[ "$rc" = 0 ] || fail "QEMU exited with status $rc"
wait "$vspid" || { vspid=; fail "virtio-serial host end failed"; }
vspid=
log=$tmp/serial.log

expect() { grep -qF -- "$1" "$log" || fail "serial log lacks '$1'"; }
expect "qube-init: starting (kernel "
expect "qube-init: modules loaded: "
expect "qube-init: mounted /dev/vda on /rw"
expect "written-by-host-$$"
expect "qube-init: run[2] exit 0"
expect "modules-checked"
expect "vport-ok"
expect "HOST-LINE-$$"
[ "$(cat "$tmp/vserial.out")" = vport-data-from-guest ] ||
  fail "host end of the virtio-serial port received '$(cat "$tmp/vserial.out")'"
expect "hostname-is-boottest"
expect "LO-IS-UP"
expect "qube-init: run[7] exit 3"
expect "qube-init: poweroff (status 3)"
if grep -q '^absent-[a-z_]*-module' "$log"; then fail "$(grep '^absent-' "$log" | tr '\n' ' ')"; fi
if grep -q '^qube-init: error' "$log"; then fail "init reported: $(grep '^qube-init: error' "$log" | tr '\n' ' ')"; fi
nmods=$(sed -n 's/^qube-init: modules loaded: \([0-9]*\).*/\1/p' "$log")
want=$(grep -c . <(gzip -dc "$img/initramfs.cpio.gz" | cpio -i --quiet --to-stdout "lib/modules/*/qube-load-order"))
[ "$nmods" = "$want" ] || fail "init loaded $nmods modules, the image has $want"

# the guest's write reached the disk and the file system was unmounted cleanly
got=$(debugfs -R 'cat /guest-file' "$tmp/private.img" 2>/dev/null)
[ "$got" = "written-by-guest" ] || fail "guest-file on the private disk holds '$got'"
state=$(dumpe2fs -h "$tmp/private.img" 2>/dev/null | sed -n 's/^Filesystem state: *//p')
[ "$state" = clean ] || fail "private disk left in state '$state' (not unmounted cleanly?)"

echo "PASS: $nmods modules, /rw read+write, virtio-serial both ways, poweroff"
echo "QEMU start to ready: $(( (ready - start) / 1000000 )) ms; start to exit: $(( (end - start) / 1000000 )) ms"
