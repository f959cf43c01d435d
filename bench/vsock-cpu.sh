#!/usr/bin/env bash
# Where the time goes: one direction and one transport per guest boot, with
# the CPU time of each thread involved.
#
#   bench/vsock-cpu.sh MESON_BUILD_ROOT [MIB]
#   (or: meson test -C BUILD --benchmark vsock-cpu)
#
# Four phases, each in a fresh TCG guest (minimal image + vsock-guest-tool)
# that has both a vhost-user-vsock-pci device (qube-vsockd) and a
# virtio-serial port (QEMU's own):
#   h2g-vsock    host blasts MIB MiB through CONNECT, the guest drains
#   h2g-serial   host blasts into the serial port's socket, the guest drains
#   g2h-vsock    the guest blasts to CID 2, a host listener drains
#   g2h-serial   the guest blasts into the serial port, the host drains
# For each: the receiver's throughput (first byte to last), and the CPU
# seconds, over the phase, of the guest's vCPU thread, QEMU's other threads
# (its main loop runs virtio-serial and relays vhost-user interrupts) and
# qube-vsockd, plus qube-vsockd's ring counters.  Throughput ratios are
# vsock / serial.  Nothing here asserts a time.
set -euo pipefail
PROG=vsock-cpu DEFAULT_MIB=256
. "$(dirname "$0")/vsock-common.sh"
kernel=$img/vmlinuz
[ -f "$img/vmlinux" ] && kernel=$img/vmlinux
hz=$(getconf CLK_TCK)

tmp=
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() { stop_all; [ -z "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "vsock-cpu: FAIL: $*" >&2; tail -n 20 "$tmp"/*.log >&2 || true; exit 1; }
wait_sock() { for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done; fail "$1 did not appear"; }
ticks() { awk '{ print $14 + $15 }' "$1" 2>/dev/null || echo 0; }
# "vcpu other vsockd" CPU ticks now
snapshot() {
  local qp=$1 dp=$2 vcpu=0 other=0 t
  for t in /proc/"$qp"/task/*; do
    if grep -q '^CPU' "$t/comm" 2>/dev/null; then vcpu=$((vcpu + $(ticks "$t/stat")))
    else other=$((other + $(ticks "$t/stat"))); fi
  done
  echo "$vcpu $other $(ticks "/proc/$dp/stat")"
}
secs() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'; }

port=/dev/virtio-ports/org.qube.bench.0
declare -A mbs
run_phase() {
  local phase=$1 run host_cmd=() qpid dpid before after
  tmp=$(mktemp -d /tmp/qvcpu.XXXXXX)
  case $phase in
    h2g-vsock)  run="vsock-guest-tool listen vsock:3001 drain $n --once" ;;
    h2g-serial) run="vsock-guest-tool connect file:$port drain $n" ;;
    g2h-vsock)  run="vsock-guest-tool connect vsock:2:3000 blast $n"
                "$tool" listen "unix:$tmp/vs_3000" drain "$n" --once >"$tmp/host.log" 2>&1 &
                pids+=($!) ;;
    g2h-serial) run="vsock-guest-tool connect file:$port blast $n" ;;
  esac
  "$vsockd" --socket "$tmp/vu.sock" --guest-cid 9 --uds-path "$tmp/vs" --verbose \
    >"$tmp/vsockd.log" 2>&1 &
  dpid=$!
  pids+=($dpid)
  wait_sock "$tmp/vu.sock"
  # the guest waits 2 s first, so the snapshot before the transfer is taken
  # while it idles
  "$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
    --serial-log "$tmp/console.log" --memory 256 --vhost-user-vsock "$tmp/vu.sock" \
    --virtio-serial "$tmp/ser0" --virtio-serial-name org.qube.bench.0 \
    --pidfile "$tmp/qemu.pid" --qemu-arg -name --qemu-arg bench,debug-threads=on \
    --append "qube.agent=0 \"qube.run=sleep 2\" \"qube.run=$run\" \"qube.run=echo phase-done\"" \
    >"$tmp/qemu.log" 2>&1 &
  qpid=$!
  pids+=($qpid)
  "$lib/wait-for-marker.sh" "$tmp/console.log" "run[1] start" 600 "$qpid" ||
    fail "$phase: guest did not boot"
  wait_sock "$tmp/ser0"
  local qp
  qp=$(cat "$tmp/qemu.pid")
  before=$(snapshot "$qp" "$dpid")
  case $phase in
    h2g-vsock)
      "$lib/wait-for-marker.sh" "$tmp/console.log" "run[2] start" 60 "$qpid" || fail "$phase: no drain"
      for _ in $(seq 100); do
        "$tool" connect "hybrid:$tmp/vs:3001" blast "$n" >"$tmp/host.log" 2>&1 && break
        sleep 0.1
      done ;;
    h2g-serial)
      "$tool" connect "unix:$tmp/ser0" blast-hold "$n" >"$tmp/host.log" 2>&1 &
      pids+=($!) ;;
    g2h-serial)
      "$tool" connect "unix:$tmp/ser0" drain "$n" >"$tmp/host.log" 2>&1 &
      pids+=($!) ;;
  esac
  "$lib/wait-for-marker.sh" "$tmp/console.log" "phase-done" 600 "$qpid" || fail "$phase: did not finish"
  grep -qF "qube-init: run[2] exit 0" "$tmp/console.log" || fail "$phase: the guest's tool failed"
  after=$(snapshot "$qp" "$dpid")
  local rate
  case $phase in
    h2g-*) rate=$(grep -o 'drained [0-9]* bytes in [0-9.]* s ([0-9.]* MB/s)' "$tmp/console.log" | tail -n1) ;;
    g2h-*) for _ in $(seq 100); do grep -q drained "$tmp/host.log" && break; sleep 0.1; done
           rate=$(grep -o 'drained [0-9]* bytes in [0-9.]* s ([0-9.]* MB/s)[A-Z ]*' "$tmp/host.log" | tail -n1) ;;
  esac
  [ -n "$rate" ] || fail "$phase: no throughput figure"
  case $rate in *CORRUPT*) fail "$phase: corrupted data" ;; esac
  mbs[$phase]=$(sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$rate")
  read -r b1 b2 b3 <<<"$before"
  read -r a1 a2 a3 <<<"$after"
  kill "$qpid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  local counters
  counters=$(sed -n 's/^qube-vsockd: queue \([01]\): \(.*\)/q\1: \2/p' "$tmp/vsockd.log" | paste -sd ';' -)
  printf '%-11s %8s MB/s   vCPU %5s s   QEMU other threads %5s s   qube-vsockd %5s s\n' \
    "$phase" "${mbs[$phase]}" "$(secs $((a1 - b1)))" "$(secs $((a2 - b2)))" "$(secs $((a3 - b3)))"
  case $phase in *-vsock) echo "            rings (q0 rx, q1 tx): $counters" ;; esac
  stop_all
  rm -rf "$tmp"
  tmp=
}

echo "vsock-cpu: ${mib} MiB per phase, TCG guest, $(nproc) host cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for phase in h2g-vsock h2g-serial g2h-vsock g2h-serial; do
  run_phase "$phase"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "ratio host -> guest (vsock / serial): $(ratio "${mbs[h2g-vsock]}" "${mbs[h2g-serial]}")"
echo "ratio guest -> host (vsock / serial): $(ratio "${mbs[g2h-vsock]}" "${mbs[g2h-serial]}")"
