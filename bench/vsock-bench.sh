#!/usr/bin/env bash
# qube-vsockd against QEMU's own virtio-serial, same guest, same run.
#
#   bench/vsock-bench.sh MESON_BUILD_ROOT [MIB]
#   (or: meson test -C BUILD --benchmark vsock-bench)
#
# One TCG guest (minimal image + vsock-guest-tool) gets both a
# vhost-user-vsock-pci device served by qube-vsockd and a virtio-serial
# controller with three ports whose host ends are unix sockets QEMU listens
# on.  The same tool moves the same pattern bytes (verified on receipt):
#   guest -> host  MIB MiB: vsock (guest connect CID 2) vs serial port 0
#   host -> guest  MIB MiB: vsock (host CONNECT)        vs serial port 1
#   latency: 64-byte echo on an open stream, vsock vs serial port 2, and
#            vsock connect + echo + close (no serial equivalent)
# Throughput is timed by the receiver, first byte to last.  Ratios are
# vsock / virtio-serial (throughput) and virtio-serial / vsock (latency),
# so > 1 means qube-vsockd is better.
set -euo pipefail
PROG=vsock-bench DEFAULT_MIB=128
. "$(dirname "$0")/vsock-common.sh"

tmp=$(mktemp -d /tmp/qvbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "vsock-bench: FAIL: $*" >&2; tail -n 30 "$tmp"/*.log >&2 || true; exit 1; }
wait_sock() { for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done; fail "$1 did not appear"; }

"$tool" listen "unix:$tmp/vs_3000" drain "$n" --once >"$tmp/h-vsock-g2h.log" 2>&1 &
pids+=($!)
wait_sock "$tmp/vs_3000"
"$vsockd" --socket "$tmp/vu.sock" --guest-cid 9 --uds-path "$tmp/vs" --verbose >"$tmp/vsockd.log" 2>&1 &
dpid=$!
pids+=($dpid)
wait_sock "$tmp/vu.sock"

port=/dev/virtio-ports/org.qube.bench
append='qube.agent=0'
append+=' "qube.run=VSOCK_BUF=${VSOCK_BUF:-} vsock-guest-tool listen vsock:3001 drain '"$n"' --once &"'
append+=' "qube.run=vsock-guest-tool listen vsock:3002 echo &"'
append+=' "qube.run=VSOCK_BUF=${VSOCK_BUF:-} vsock-guest-tool connect vsock:2:3000 blast '"$n"'"'
append+=' "qube.run=vsock-guest-tool connect file:'"$port"'.0 blast '"$n"'"'
append+=' "qube.run=vsock-guest-tool connect file:'"$port"'.1 drain '"$n"'"'
append+=' "qube.run=vsock-guest-tool connect file:'"$port"'.2 serve-echo"'
append+=' "qube.run=echo bench-guest-done"'
"$lib/qemu-guest.sh" --kernel "$img/vmlinuz" --initrd "$img/initramfs.cpio.gz" \
  --serial-log "$tmp/console.log" --memory 256 --vhost-user-vsock "$tmp/vu.sock" \
  --virtio-serial "$tmp/ser0" --virtio-serial-name org.qube.bench.0 \
  --qemu-arg -chardev --qemu-arg "socket,id=ser1c,path=$tmp/ser1,server=on,wait=off" \
  --qemu-arg -device --qemu-arg "virtserialport,bus=vser0.0,chardev=ser1c,name=org.qube.bench.1" \
  --qemu-arg -chardev --qemu-arg "socket,id=ser2c,path=$tmp/ser2,server=on,wait=off" \
  --qemu-arg -device --qemu-arg "virtserialport,bus=vser0.0,chardev=ser2c,name=org.qube.bench.2" \
  --append "$append" >"$tmp/qemu.log" 2>&1 &
qpid=$!
pids+=($qpid)
wait_sock "$tmp/ser0"
wait_sock "$tmp/ser1"
"$tool" connect "unix:$tmp/ser0" drain "$n" >"$tmp/h-serial-g2h.log" 2>&1 &
pids+=($!)
"$tool" connect "unix:$tmp/ser1" blast-hold "$n" >"$tmp/h-serial-h2g.log" 2>&1 &
pids+=($!)

"$lib/wait-for-marker.sh" "$tmp/console.log" "run[6] start" 900 "$qpid" || fail "guest did not reach the echo step"
"$tool" connect "unix:$tmp/ser2" pingpong 500 >"$tmp/h-serial-pp.log" 2>&1 || fail "serial pingpong"
"$lib/wait-for-marker.sh" "$tmp/console.log" "bench-guest-done" 300 "$qpid" || fail "guest steps did not finish"
for i in 3 4 5 6; do
  grep -qF "qube-init: run[$i] exit 0" "$tmp/console.log" || fail "guest step run[$i] failed"
done
"$tool" connect "hybrid:$tmp/vs:3001" blast "$n" >"$tmp/h-vsock-h2g.log" 2>&1 || fail "vsock host -> guest"
# the serial drain printed the same line before: wait for the second one
for _ in $(seq 3000); do
  [ "$(grep -c "drained $n bytes" "$tmp/console.log")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c "drained $n bytes" "$tmp/console.log")" -ge 2 ] || fail "guest vsock drain did not report"
"$tool" connect "hybrid:$tmp/vs:3002" pingpong 500 >"$tmp/h-vsock-pp.log" 2>&1 || fail "vsock pingpong"
"$tool" connect "hybrid:$tmp/vs:3002" rtt 100 >"$tmp/h-vsock-rtt.log" 2>&1 || fail "vsock rtt"

# CPU time qube-vsockd used for everything above (both directions + echoes)
read -r -a st < "/proc/$dpid/stat"
cpu=$(awk -v u="${st[13]}" -v s="${st[14]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (u + s) / hz }')

mbs() { sed -n 's/.*drained [0-9]* bytes in [0-9.]* s (\([0-9.]*\) MB\/s).*/\1/p' | head -n1; }
us() { sed -n 's/.* mean \([0-9.]*\) us over.*/\1/p' | head -n1; }
g2h_vsock=$(mbs < "$tmp/h-vsock-g2h.log")
g2h_serial=$(mbs < "$tmp/h-serial-g2h.log")
# the guest's console: serial drain (run[5]) first, the vsock drain last
h2g_serial=$(sed -n '/run\[5\] start/,/run\[5\] exit/p' "$tmp/console.log" | mbs)
h2g_vsock=$(sed -n '/bench-guest-done/,$p' "$tmp/console.log" | mbs)
pp_vsock=$(us < "$tmp/h-vsock-pp.log")
pp_serial=$(us < "$tmp/h-serial-pp.log")
rtt_vsock=$(us < "$tmp/h-vsock-rtt.log")
for v in g2h_vsock g2h_serial h2g_serial h2g_vsock pp_vsock pp_serial rtt_vsock; do
  [ -n "${!v}" ] || fail "no figure for $v"
done
if grep -q CORRUPT "$tmp"/*.log; then fail "corrupted data"; fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "vsock-bench: ${mib} MiB per direction, TCG guest, $(nproc) host cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-36s %12s %12s %8s\n' "" "qube-vsockd" "virtio-serial" "ratio"
printf '%-36s %9s MB/s %8s MB/s %8s\n' "guest -> host throughput" "$g2h_vsock" "$g2h_serial" "$(ratio "$g2h_vsock" "$g2h_serial")"
printf '%-36s %9s MB/s %8s MB/s %8s\n' "host -> guest throughput" "$h2g_vsock" "$h2g_serial" "$(ratio "$h2g_vsock" "$h2g_serial")"
printf '%-36s %10s us %10s us %8s\n' "64-byte echo round trip (open)" "$pp_vsock" "$pp_serial" "$(ratio "$pp_serial" "$pp_vsock")"
printf '%-36s %10s us %13s\n' "connect + 64-byte echo + close" "$rtt_vsock" "-"
echo "qube-vsockd CPU time for the whole run ($((2 * mib)) MiB + echoes): ${cpu} s"
# qube-vsockd's counters (logged when it exits): buffers per interrupt
kill "$qpid" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
sed -n 's/^qube-vsockd: queue \([01]\):/queue \1 (0 rx, 1 tx):/p' "$tmp/vsockd.log"
