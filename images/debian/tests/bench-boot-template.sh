#!/usr/bin/env bash
# Benchmark: QEMU start -> agent answering (CONNECT 512 through qube-vsockd
# returns the agent's HELLO), under TCG, for the minimal test image (the
# BASELINE: tests/lib/guest-image.sh, 256 MiB) and the Debian template
# (images/debian/build.sh: systemd, 1 GiB, fresh root overlay, private and
# volatile disks, the qubed command line), booted alternately in the same
# run, ROUNDS boots each.  Prints each boot, the medians and the ratio
# template / minimal.  Needs QUBE_TEMPLATE_IMAGE=X.qcow2 (a template built
# before; building one here would dominate the run).
#   bench-boot-template.sh MESON_BUILD_ROOT SOURCE_ROOT [ROUNDS]
set -euo pipefail
build=${1:?usage: bench-boot-template.sh MESON_BUILD_ROOT SOURCE_ROOT [ROUNDS]}
top=${2:?usage: bench-boot-template.sh MESON_BUILD_ROOT SOURCE_ROOT [ROUNDS]}
rounds=${3:-2}
build=$(cd "$build" && pwd); top=$(cd "$top" && pwd); lib=$top/tests/lib
case $rounds in ''|*[!0-9]*|0) echo "bench-boot-template.sh: ROUNDS '$rounds' is not a positive number" >&2; exit 2 ;; esac
img=${QUBE_TEMPLATE_IMAGE:-}
[ -n "$img" ] && [ -f "$img" ] || { echo "SKIP: set QUBE_TEMPLATE_IMAGE=X.qcow2 (images/debian/build.sh X.qcow2)"; exit 77; }
vsockd=$build/vmm/qube-vsockd
[ -x "$vsockd" ] && [ -x "$build/rpc/guest/qube-agent" ] || { echo "SKIP: qube-vsockd or qube-agent not built"; exit 77; }
for t in qemu-system-x86_64 qemu-img mkfs.ext4 python3; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
base=${img%.qcow2}
tkernel=$base.vmlinux; [ -f "$tkernel" ] || tkernel=$base.vmlinuz
mini=$("$lib/guest-image.sh" --build-dir "$build")
mkernel=$mini/vmlinux; [ -f "$mkernel" ] || mkernel=$mini/vmlinuz

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-bench-tpl.XXXXXX")
qpid='' vpid=''
cleanup() {
  local p
  for p in $qpid $vpid; do kill "$p" 2>/dev/null || true; done
  for p in $qpid $vpid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
truncate -s 64M "$T/private.raw"; mkfs.ext4 -q -F "$T/private.raw"
qemu-img convert -f raw -O qcow2 "$T/private.raw" "$T/private.qcow2"

# one KIND: boots it, prints ms to the agent's HELLO, stops QEMU
one() {
  local kind=$1 start ms
  rm -f "$T/vu.sock" "$T/q/vsock"; mkdir -p "$T/q"
  "$vsockd" --socket "$T/vu.sock" --guest-cid 3 --uds-path "$T/q/vsock" > "$T/vsockd.log" 2>&1 &
  vpid=$!
  for _ in $(seq 1 300); do [ -S "$T/vu.sock" ] && break; sleep 0.01; done
  start=$(date +%s%N)
  if [ "$kind" = minimal ]; then
    "$lib/qemu-guest.sh" --kernel "$mkernel" --initrd "$mini/initramfs.cpio.gz" --serial-log "$T/serial.log" \
      --memory 256 --disk "$T/private.raw" --vhost-user-vsock "$T/vu.sock" --append "qube.name=bench" &
  else
    rm -f "$T/root.qcow2" "$T/volatile.qcow2"
    qemu-img create -q -f qcow2 -b "$img" -F qcow2 "$T/root.qcow2"
    qemu-img create -q -f qcow2 "$T/volatile.qcow2" 256M
    "$lib/qemu-guest.sh" --kernel "$tkernel" --initrd "$base.initrd.img" --serial-log "$T/serial.log" \
      --memory 1024 --disk-format qcow2 --disk "$T/root.qcow2" --disk "$T/private.qcow2" --disk "$T/volatile.qcow2" \
      --vhost-user-vsock "$T/vu.sock" --append "root=/dev/vda qube.name=bench qube.rw=/dev/vdb qube.volatile=/dev/vdc" &
  fi
  qpid=$!
  python3 "$lib/hybrid-wait.py" "$T/q/vsock" 512 600 > /dev/null || { echo "bench: $kind: no agent" >&2; tail -n 30 "$T/serial.log" >&2; exit 1; }
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=''
  kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; vpid=''
  echo "$ms"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
m=() t=()
for r in $(seq 1 "$rounds"); do
  x=$(one minimal); m+=("$x"); echo "round $r: minimal image ${x} ms"
  x=$(one template); t+=("$x"); echo "round $r: debian template ${x} ms"
done
mm=$(printf '%s\n' "${m[@]}" | median); tm=$(printf '%s\n' "${t[@]}" | median)
echo "median QEMU start -> agent answering: minimal image (baseline) ${mm} ms, debian template ${tm} ms"
awk -v a="$tm" -v b="$mm" 'BEGIN { printf "ratio template/minimal: %.2f\n", a / b }'
