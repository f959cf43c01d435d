#!/usr/bin/env bash
# Checks the guest test helpers without booting anything:
#  - qemu-guest.sh rejects bad arguments with a message naming the option
#    and starts nothing, and builds the documented QEMU command line
#    (--dry-run);
#  - wait-for-marker.sh: found (0), timeout (1), watched process gone (3),
#    found after the process wrote it and exited (0);
#  - hybrid-wait.py: answers through a fake CONNECT server, times out
#    against a socket that never answers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qube-lib-test.XXXXXX")
bg=
cleanup() {
  if [ -n "$bg" ]; then kill "$bg" 2>/dev/null || true; wait "$bg" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }

: > "$tmp/vmlinux"; : > "$tmp/initrd"
base=(--kernel "$tmp/vmlinux" --initrd "$tmp/initrd" --serial-log "$tmp/serial.log")

# rejects ARGS PATTERN: exit 2, PATTERN on stderr
rejects() {
  local pattern=$1; shift
  local rc=0
  "$lib/qemu-guest.sh" "$@" --dry-run > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$pattern" "$tmp/err" && [ ! -s "$tmp/out" ]; then
    ok "launcher rejects: $pattern"
  else
    not_ok "launcher should reject with '$pattern' (rc $rc: $(cat "$tmp/err"))"
  fi
}
rejects "--kernel is required" --initrd "$tmp/initrd" --serial-log "$tmp/s"
rejects "kernel $tmp/nope not found" --kernel "$tmp/nope" --initrd "$tmp/initrd" --serial-log "$tmp/s"
rejects "--memory 'lots' is not a number" "${base[@]}" --memory lots
rejects "--memory 32: at least 64 MiB" "${base[@]}" --memory 32
rejects "--smp '0' is not a positive number" "${base[@]}" --smp 0
rejects "--cid 2: guest CIDs start at 3" "${base[@]}" --cid 2
rejects "--cid cannot be combined with --vhost-user-vsock" "${base[@]}" --cid 5 --vhost-user-vsock "$tmp/vu.sock"
rejects "is not a listening unix socket" "${base[@]}" --vhost-user-vsock "$tmp/vu.sock"
rejects "disk $tmp/none.img not found" "${base[@]}" --disk "$tmp/none.img"
rejects "contains a comma" --kernel "$tmp/vmlinux" --initrd "$tmp/initrd" --serial-log "$tmp/a,b"
rejects "--disk-format 'vmdk': raw or qcow2" "${base[@]}" --disk-format vmdk
rejects "--virtio-serial-name 'a b'" "${base[@]}" --virtio-serial "$tmp/vs.sock" --virtio-serial-name 'a b'
rejects "unknown argument '--bogus'" "${base[@]}" --bogus
rejects "--serial-log and --console exclude each other" "${base[@]}" --console
rejects "--serial-log (or --console) is required" --kernel "$tmp/vmlinux" --initrd "$tmp/initrd"

# the documented command line
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)' "$tmp/vu.sock"
cmd=$("$lib/qemu-guest.sh" "${base[@]}" --memory 300 --append 'qube.poweroff' \
  --vhost-user-vsock "$tmp/vu.sock" --virtio-serial "$tmp/vs.sock" --disk "$tmp/initrd" --dry-run)
for want in '-accel tcg' '-no-reboot' '-nographic' 'memory-backend-memfd\,id=mem\,size=300M\,share=on' \
            'q35\,memory-backend=mem' 'vhost-user-vsock-pci\,chardev=vsock0' \
            "socket\\,id=vsock0\\,path=$tmp/vu.sock" 'virtserialport\,bus=vser0.0\,chardev=vser0c\,name=org.qube.test.0' \
            'if=virtio' 'console=ttyS0\ panic=-1\ quiet\ qube.poweroff'; do
  case $cmd in
    *"$want"*) ok "command line has $want" ;;
    *) not_ok "command line lacks $want: $cmd" ;;
  esac
done
cmd=$("$lib/qemu-guest.sh" "${base[@]}" --cid 7 --reboot --dry-run)
case $cmd in *'vhost-vsock-pci\,guest-cid=7'*) ok "--cid gives vhost-vsock-pci,guest-cid" ;; *) not_ok "--cid: $cmd" ;; esac
case $cmd in *-no-reboot*) not_ok "--reboot still passes -no-reboot" ;; *) ok "--reboot drops -no-reboot" ;; esac
cmd=$("$lib/qemu-guest.sh" --kernel "$tmp/vmlinux" --initrd "$tmp/initrd" --console --dry-run)
case $cmd in *'-serial mon:stdio'*) ok "--console puts the serial on stdio" ;; *) not_ok "--console: $cmd" ;; esac

# wait-for-marker.sh
w() { local rc=0; "$lib/wait-for-marker.sh" "$@" 2>/dev/null || rc=$?; echo "$rc"; }
printf 'a\nqube-init: ready\n' > "$tmp/log1"
[ "$(w "$tmp/log1" 'qube-init: ready' 5)" = 0 ] && ok "marker found" || not_ok "marker not found"
[ "$(w "$tmp/log1" 'qube-init: never' 1)" = 1 ] && ok "timeout: 1" || not_ok "timeout did not give 1"
sleep 30 & bg=$!
(sleep 0.3; kill "$bg") &
[ "$(w "$tmp/log1" 'qube-init: never' 60 "$bg")" = 3 ] && ok "process gone: 3" || not_ok "process gone did not give 3"
wait "$bg" 2>/dev/null || true; bg=
sh -c "echo late-marker >> '$tmp/log2'" & p=$!
wait "$p"
[ "$(w "$tmp/log2" 'late-marker' 5 "$p")" = 0 ] && ok "marker written by an exited process: 0" || not_ok "exited writer"
[ "$(w "$tmp/log1" 'x' 1s)" = 2 ] && ok "bad timeout: usage error 2" || not_ok "bad timeout accepted"

# hybrid-wait.py against a fake back-end: answers OK and 16 bytes
python3 - "$tmp/hy" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
c, _ = s.accept()
line = b""
while not line.endswith(b"\n"):
    line += c.recv(1)
if line == b"CONNECT 512\n":
    c.sendall(b"OK 1073741824\n" + bytes(range(16)))
c.close()
PY
bg=$!
out=$(python3 "$lib/hybrid-wait.py" "$tmp/hy" 512 30) && rc=0 || rc=$?
wait "$bg" 2>/dev/null || true; bg=
[ "$rc" = 0 ] && [ "${out#* }" = 000102030405060708090a0b0c0d0e0f ] && ok "hybrid-wait: OK line and bytes" || not_ok "hybrid-wait: rc $rc out '$out'"
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4); time.sleep(30)' "$tmp/mute" &
bg=$!
for _ in $(seq 100); do [ -S "$tmp/mute" ] && break; sleep 0.05; done
rc=0; python3 "$lib/hybrid-wait.py" "$tmp/mute" 512 1 2>/dev/null || rc=$?
[ "$rc" = 1 ] && ok "hybrid-wait: silent peer times out (1)" || not_ok "hybrid-wait against a silent peer gave $rc"

if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
