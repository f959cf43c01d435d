#!/usr/bin/env bash
# qubed benchmarks (docs/performance.md), each a ratio within one run:
#  1. `qubectl start` of an AppVM to its agent answering, against QEMU
#     started directly (tests/lib/qemu-guest.sh) with the same kernel,
#     initramfs, memory, disks and a qube-vsockd, to the same point (the
#     agent's HELLO through qube-vsockd), alternating, ROUNDS pairs;
#  2. host memory per running qube outside QEMU: qubed's growth (RSS) per
#     running qube plus its qube-vsockd's PSS.
#   qubed-bench.sh BUILD_DIR [ROUNDS]
set -euo pipefail
. "$(dirname "$0")/../tests/qubed/lib.sh"
qd_setup "$1"
rounds=${2:-3}
img=$(qd_image)
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
TPL=$(uniq_name btpl) APP=$(uniq_name bapp) APP2=$(uniq_name bapp2)
qd_start
truncate -s 32M "$T/root.img"; mkfs.ext4 -q -F "$T/root.img"
qctl template import --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --root "$T/root.img" --label black "$TPL" >/dev/null
qctl create --template "$TPL" --label blue "$APP" >/dev/null
qctl create --template "$TPL" --label red "$APP2" >/dev/null

now() { date +%s.%N; }
direct_start() { # the same guest without qubed and libvirt
  local d=$T/direct
  rm -rf "$d"; mkdir -p "$d"
  qemu-img create -q -f qcow2 -b "$T/state/qubes/$TPL/root.qcow2" -F qcow2 "$d/root.qcow2"
  cp "$T/state/qubes/$APP/private.qcow2" "$d/private.qcow2"
  qemu-img create -q -f qcow2 "$d/volatile.qcow2" 64M
  local t0; t0=$(now)
  "$QD_VSOCKD" --socket "$d/vu.sock" --guest-cid 77 --uds-path "$d/vsock" >"$d/vsockd.log" 2>&1 &
  local vpid=$!
  for _ in $(seq 200); do [ -S "$d/vu.sock" ] && break; sleep 0.01; done
  "$QD_TOP/tests/lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
    --serial-log "$d/serial.log" --memory 400 --smp 2 --disk-format qcow2 \
    --disk "$d/root.qcow2" --disk "$d/private.qcow2" --disk "$d/volatile.qcow2" \
    --vhost-user-vsock "$d/vu.sock" --append "qube.name=direct root=/dev/vda qube.rw=/dev/vdb" &
  local qpid=$!
  python3 "$QD_TOP/tests/lib/hybrid-wait.py" "$d/vsock" 512 240 >/dev/null
  local t1; t1=$(now)
  kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true
  wait "$vpid" 2>/dev/null || true
  echo "$t1 - $t0" | bc
}
qubed_start() {
  local t0 t1
  t0=$(now)
  qctl start "$APP" >/dev/null
  t1=$(now)
  qctl kill "$APP" >/dev/null
  echo "$t1 - $t0" | bc
}
d_all=() q_all=()
for i in $(seq "$rounds"); do
  q=$(qubed_start); d=$(direct_start)
  q_all+=("$q"); d_all+=("$d")
  say "round $i: qubectl start ${q} s, QEMU direct ${d} s, ratio $(echo "scale=3; $q / $d" | bc)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
qm=$(median "${q_all[@]}") dm=$(median "${d_all[@]}")
say "start to agent answering: qubectl start median ${qm} s, QEMU direct median ${dm} s, ratio $(echo "scale=3; $qm / $dm" | bc) (target <= 1.2)"

# memory outside QEMU
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
base=$(rss "$qd_pid")
qctl start "$APP" "$APP2" >/dev/null
two=$(rss "$qd_pid")
vs=()
for q in "$APP" "$APP2"; do
  p=$(awk -F= '/^vsockd_pid=/ {print $2}' "$T/run/qubes/$q/runtime")
  vs+=("$(pss "$p")")
done
qctl kill "$APP" "$APP2" >/dev/null
per=$(( (two - base) / 2 + (vs[0] + vs[1]) / 2 ))
say "memory outside QEMU per running qube: qubed +$(( (two - base) / 2 )) KiB RSS per qube (qubed at ${base} KiB idle, ${two} KiB with 2 running), qube-vsockd PSS ${vs[0]} / ${vs[1]} KiB: ${per} KiB per qube (target < 8192 KiB)"
qd_stop
