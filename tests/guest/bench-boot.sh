#!/usr/bin/env bash
# Benchmark: boot time of the minimal image under QEMU TCG, N boots.
# Per boot, from the moment QEMU is started:
#   t_user   first line of /init on the console ("qube-init: starting"):
#            QEMU + firmware + kernel up to user space -- the BASELINE,
#            measured in the same boot;
#   t_ready  "qube-init: ready" (modules loaded, disk, agent started);
#   t_agent  qube-agent answers: CONNECT 512 through qube-vsockd returns
#            OK and the agent's HELLO (only when qube-vsockd is built).
# Reports medians and the ratios t_ready/t_user and t_agent/t_user, i.e.
# what init, the modules and the agent add on top of the kernel boot; and,
# booting vmlinuz (baseline) and vmlinux (PVH) alternately, the ratio of the
# two kernel formats.
#   bench-boot.sh MESON_BUILD_ROOT [BOOTS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib
build=${1:?usage: bench-boot.sh MESON_BUILD_ROOT [BOOTS]}
build=$(cd "$build" && pwd)
boots=${2:-5}
case $boots in ''|*[!0-9]*|0) echo "bench-boot.sh: BOOTS '$boots' is not a positive number" >&2; exit 2 ;; esac
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }

img=$("$lib/guest-image.sh" --build-dir "$build")
vsockd=$build/vmm/qube-vsockd
have_vsock=0
if [ -x "$vsockd" ] && grep -q '^files: .*/usr/bin/qube-agent' "$img/manifest.txt"; then have_vsock=1; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-bench-boot.XXXXXX")
qpid= vpid=
cleanup() {
  for p in $qpid $vpid; do kill "$p" 2>/dev/null || true; done
  for p in $qpid $vpid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# wait_line STRING: polls the serial log every 10 ms (finer than wait-for-marker.sh)
wait_line() {
  local end=$((SECONDS + 300))
  until grep -qF -- "$1" "$T/serial.log" 2>/dev/null; do
    kill -0 "$qpid" 2>/dev/null || { echo "bench-boot.sh: QEMU ended before '$1'" >&2; cat "$T/serial.log" >&2; exit 1; }
    [ "$SECONDS" -lt "$end" ] || { echo "bench-boot.sh: no '$1' within 300 s" >&2; exit 1; }
    sleep 0.01
  done
}

# boot KERNEL: one boot; appends to users/readys/agents
boot() {
  local kernel=$1
  rm -f "$T/serial.log" "$T/vu.sock"
  local vsock_args=()
  if [ "$have_vsock" = 1 ]; then
    mkdir -p "$T/q"
    "$vsockd" --socket "$T/vu.sock" --guest-cid 3 --uds-path "$T/q/vsock" > "$T/vsockd.log" 2>&1 &
    vpid=$!
    for _ in $(seq 1 300); do [ -S "$T/vu.sock" ] && break; sleep 0.01; done
    vsock_args=(--vhost-user-vsock "$T/vu.sock")
  fi
  local start
  start=$(date +%s%N)
  "$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
    --serial-log "$T/serial.log" "${vsock_args[@]}" --append 'qube.rw=none' 2>>"$T/qemu.err" &
  qpid=$!
  wait_line "qube-init: starting"; users+=("$(ms_since "$start")")
  wait_line "qube-init: ready"; readys+=("$(ms_since "$start")")
  if [ "$have_vsock" = 1 ]; then
    python3 "$lib/hybrid-wait.py" "$T/q/vsock" 512 120 >/dev/null
    agents+=("$(ms_since "$start")")
  fi
  kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=
  if [ -n "$vpid" ]; then kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; vpid=; fi
  echo "  $(basename "$kernel") boot: user space ${users[-1]} ms, ready ${readys[-1]} ms${agents:+, agent ${agents[-1]} ms}"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
# report LABEL: medians of the current users/readys/agents; sets m_user m_ready m_agent
report() {
  m_user=$(median "${users[@]}") m_ready=$(median "${readys[@]}") m_agent=
  echo "$1, median of $boots boots:"
  echo "  QEMU start -> first user-space line: $m_user ms"
  echo "  QEMU start -> init ready:            $m_ready ms (ratio to user space $(ratio "$m_ready" "$m_user"))"
  if [ ${#agents[@]} -gt 0 ]; then
    m_agent=$(median "${agents[@]}")
    echo "  QEMU start -> agent answering:       $m_agent ms (ratio to user space $(ratio "$m_agent" "$m_user"))"
  else
    echo "  agent answering: not measured (qube-vsockd or qube-agent not built)"
  fi
}

echo "QEMU TCG, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at start; boots alternate between the two kernels"
zu=() zr=() za=() xu=() xr=() xa=()
for _ in $(seq 1 "$boots"); do
  users=("${zu[@]}") readys=("${zr[@]}") agents=("${za[@]}")
  boot "$img/vmlinuz"; zu=("${users[@]}") zr=("${readys[@]}") za=("${agents[@]}")
  if [ -f "$img/vmlinux" ]; then
    users=("${xu[@]}") readys=("${xr[@]}") agents=("${xa[@]}")
    boot "$img/vmlinux"; xu=("${users[@]}") xr=("${readys[@]}") xa=("${agents[@]}")
  fi
done
users=("${zu[@]}") readys=("${zr[@]}") agents=("${za[@]}")
report "baseline: vmlinuz (compressed bzImage, SeaBIOS + xz decompression)"
bz_user=$m_user bz_ready=$m_ready bz_agent=$m_agent
if [ ${#xu[@]} -gt 0 ]; then
  users=("${xu[@]}") readys=("${xr[@]}") agents=("${xa[@]}")
  report "vmlinux (uncompressed, PVH entry)"
  echo "  vmlinux / vmlinuz: user space $(ratio "$m_user" "$bz_user"), ready $(ratio "$m_ready" "$bz_ready")${m_agent:+, agent $(ratio "$m_agent" "$bz_agent")}"
fi
echo "image: initramfs $(stat -c %s "$img/initramfs.cpio.gz") bytes, vmlinuz $(stat -c %s "$img/vmlinuz") bytes"
