#!/usr/bin/env bash
# The RPC path runs end to end with one real guest.
#
# Real processes only: qube-broker (with its sandbox), qube-vsockd (the
# userspace virtio-vsock device), QEMU (TCG) booting the minimal image with
# the build's qube-agent and qube-call, and one simulated qube "simvm" (a
# host qube-agent on the hybrid unix transport, as in tests/rpc).
#
#  1. host -> guest: simvm's qube-call reaches the guest's qube-agent
#     through the broker and qube-vsockd's CONNECT 512 (allowed call: the
#     service's output and environment; 8 MiB through cat in the guest and
#     back, checksummed; unknown service: 127; no rule: 126);
#  2. guest -> host: qube-call in the guest reaches the broker over AF_VSOCK
#     (CID 2 port 513 -> vsockd -> DIR/guestvm/vsock_513) and the service
#     in simvm; the broker names the caller "guestvm" from the transport;
#     4 MiB from the guest arrive whole; a call without a rule is refused
#     (126) inside the guest;
#  3. a guest service powers the guest off; QEMU and qube-vsockd exit.
# Prints QEMU start -> init ready and QEMU start -> agent answering.
#   rpc-e2e-test.sh MESON_BUILD_ROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib
build=${1:?usage: rpc-e2e-test.sh MESON_BUILD_ROOT}
build=$(cd "$build" && pwd)

missing=()
for p in rpc/guest/qube-agent rpc/guest/qube-call rpc/broker/qube-broker vmm/qube-vsockd; do
  [ -x "$build/$p" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: not built in $build: ${missing[*]}"
  exit 77
fi
for tool in qemu-system-x86_64 mkfs.ext4 python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
AGENT=$build/rpc/guest/qube-agent CALL=$build/rpc/guest/qube-call
BROKER=$build/rpc/broker/qube-broker VSOCKD=$build/vmm/qube-vsockd

img=$("$lib/guest-image.sh" --build-dir "$build")
# the uncompressed PVH kernel boots about twice as fast under TCG
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
grep -q '^files: .*/usr/bin/qube-agent' "$img/manifest.txt" || { echo "FAIL: image has no qube-agent"; exit 1; }
grep -q '^files: .*/usr/bin/qube-call' "$img/manifest.txt" || { echo "FAIL: image has no qube-call"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-e2e.XXXXXX")
chmod 0755 "$T"   # the broker's sandbox runs as nobody
pids=() qpid= vpid=
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
  for f in "$T/serial.log" "$T/broker.log" "$T/broker.out" "$T/vsockd.log" "$T/simvm-agent.log"; do
    echo "---- $f ----" >&2; cat "$f" >&2 2>/dev/null || true
  done
}
die() { echo "FATAL: $*" >&2; dump; exit 1; }
wait_for() { # TIMEOUT DESCRIPTION COMMAND...
  local t=$1 d=$2; shift 2
  local end=$((SECONDS + t))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after ${t}s waiting for: $d"
    sleep 0.05
  done
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---- qubes, policy, services ----------------------------------------------
# system-info.json in a directory of its own: the broker watches its directory
mkdir -p "$T/qubes/guestvm" "$T/qubes/simvm" "$T/policy" "$T/conf" "$T/simrpc" "$T/disk/rpc"
cat > "$T/conf/system-info.json" <<'EOF'
{"domains": {
  "dom0":    {"type": "AdminVM", "tags": [], "icon": "black", "power_state": "Running",
              "template_for_dispvms": false, "default_dispvm": null},
  "guestvm": {"type": "AppVM", "tags": ["real"], "icon": "blue", "power_state": "Running",
              "template_for_dispvms": false, "default_dispvm": null},
  "simvm":   {"type": "AppVM", "tags": ["sim"], "icon": "green", "power_state": "Running",
              "template_for_dispvms": false, "default_dispvm": null}
}}
EOF
cat > "$T/policy/10-e2e.policy" <<'EOF'
# rpc-e2e-test: one real guest (guestvm), one simulated qube (simvm)
test.GuestEcho   *  simvm    guestvm  allow
test.Missing     *  simvm    guestvm  allow
test.Poweroff    *  simvm    guestvm  allow
test.GuestCat    *  simvm    guestvm  allow
test.SimEcho     *  guestvm  simvm    allow
test.SimSha      *  guestvm  simvm    allow
EOF
cat > "$T/simrpc/test.SimEcho" <<'EOF'
#!/bin/sh
echo "simvm got '$(cat)' from=$QUBE_REMOTE service=$QUBE_SERVICE"
EOF
cat > "$T/simrpc/test.SimSha" <<'EOF'
#!/bin/sh
echo "sha=$(sha256sum | cut -d' ' -f1)"
EOF
# services of the guest live on its private disk (/rw/rpc)
cat > "$T/disk/rpc/test.GuestCat" <<'EOF'
#!/bin/sh
exec cat
EOF
cat > "$T/disk/rpc/test.GuestEcho" <<'EOF'
#!/bin/sh
echo "$(hostname) got '$(cat)' from=$QUBE_REMOTE arg=$QUBE_SERVICE_ARGUMENT kernel=$(uname -r)"
EOF
cat > "$T/disk/rpc/test.Poweroff" <<'EOF'
#!/bin/sh
echo "powering off"
poweroff
EOF
chmod 0755 "$T/simrpc"/* "$T/disk/rpc"/*
truncate -s 16M "$T/private.img"
mkfs.ext4 -q -F -d "$T/disk" "$T/private.img"

# ---- host side: simulated qube, vsockd, broker --------------------------------
"$AGENT" --transport "unix:$T/qubes/simvm" --rpc-dir "$T/simrpc" --name simvm > "$T/simvm-agent.log" 2>&1 &
pids+=($!)
wait_for 30 "simvm agent socket" test -S "$T/qubes/simvm/vsock"

"$VSOCKD" --socket "$T/vhost-user.sock" --guest-cid 3 --uds-path "$T/qubes/guestvm/vsock" --verbose \
  > "$T/vsockd.log" 2>&1 &
vpid=$!
wait_for 30 "qube-vsockd sockets" test -S "$T/vhost-user.sock"

: > "$T/broker.log"
"$BROKER" --policy-dir "$T/policy" --system-info "$T/conf/system-info.json" \
  --qubes-dir "$T/qubes" --log "$T/broker.log" > "$T/broker.out" 2>&1 &
pids+=($!)
wait_for 30 "broker ready" grep -q ' ready ' "$T/broker.log"

# ---- the guest -------------------------------------------------------------
append='qube.name=guestvm qube.agent_args="--transport vsock --rpc-dir /rw/rpc"'
append+=' qube.run="echo ping-from-guest | qube-call --transport vsock simvm test.SimEcho; echo guest-call-exit=$?"'
append+=' qube.run="echo x | qube-call --transport vsock simvm test.GuestEcho; echo norule-call-exit=$?"'
append+=' qube.run="dd if=/dev/zero bs=1M count=4 2>/dev/null | qube-call --transport vsock simvm test.SimSha"'
start=$(date +%s%N)
"$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
  --serial-log "$T/serial.log" --memory 256 --disk "$T/private.img" \
  --vhost-user-vsock "$T/vhost-user.sock" --append "$append" &
qpid=$!
"$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: ready" 240 "$qpid" || die "guest did not reach ready"
t_ready=$(ms_since "$start")
hello=$(python3 "$lib/hybrid-wait.py" "$T/qubes/guestvm/vsock" 512 120) || die "guest agent did not answer on port 512"
t_agent=$(ms_since "$start")
check "guest agent answers CONNECT 512 through qube-vsockd with HELLO {1, 2}" \
  test "${hello#* }" = 01000000080000000100000002000000

# ---- 2. guest -> broker -> simvm (runs on its own from qube.run) -------------------
# the console is written byte by byte: wait for the line after the last
# one checked, so every checked line is complete
"$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: run[3] exit" 180 "$qpid" || die "guest calls did not finish"
check "guest call: qube-call in the guest exits 0" grep -q '^guest-call-exit=0' "$T/serial.log"
check "guest call: simvm's service got the guest's stdin, source from the transport" \
  grep -q "^simvm got 'ping-from-guest' from=guestvm service=test.SimEcho" "$T/serial.log"
check "guest call without a rule: refused in the guest (126)" grep -q '^norule-call-exit=126' "$T/serial.log"
zero_sha=$(head -c 4M /dev/zero | sha256sum | cut -d' ' -f1)
check "guest call with 4 MiB of stdin: simvm's service saw every byte" \
  grep -q "^sha=$zero_sha" "$T/serial.log"
check "broker logged the guest's call as source=guestvm, allowed" \
  grep -q 'source=guestvm target=simvm requested=simvm service=test.SimEcho .*decision=allow result=started' "$T/broker.log"

# ---- 1. simvm -> broker -> vsockd CONNECT 512 -> guest agent -------------------
t0=$(date +%s%N)
out=$(echo hello-from-simvm | "$CALL" --transport "unix:$T/qubes/simvm" guestvm test.GuestEcho+a1) && rc=0 || rc=$?
t_call=$(ms_since "$t0")
check "host call into the guest: exit 0" test "$rc" = 0
check "host call into the guest: the guest's service ran with the call's data" \
  test "$out" = "guestvm got 'hello-from-simvm' from=simvm arg=a1 kernel=$(sed -n 's/^kernel-release: //p' "$img/manifest.txt")"
out=$(echo x | "$CALL" --transport "unix:$T/qubes/simvm" guestvm test.Missing 2>/dev/null) && rc=0 || rc=$?
check "host call of a service the guest lacks: 127 from the guest agent" test "$rc" = 127
out=$(echo x | "$CALL" --transport "unix:$T/qubes/simvm" guestvm test.SimEcho 2>/dev/null) && rc=0 || rc=$?
check "host call without a rule: 126" test "$rc" = 126
head -c 8M /dev/urandom > "$T/big"
want=$(sha256sum < "$T/big" | cut -d' ' -f1)
t0=$(date +%s%N)
got=$("$CALL" --transport "unix:$T/qubes/simvm" guestvm test.GuestCat < "$T/big" | sha256sum | cut -d' ' -f1)
t_big=$(ms_since "$t0")
check "8 MiB through the guest's cat and back: checksums match" test "$got" = "$want"
check "broker logged simvm -> guestvm allowed" \
  grep -q 'source=simvm target=guestvm requested=guestvm service=test.GuestEcho argument=a1 decision=allow result=started' "$T/broker.log"

# ---- 3. poweroff through RPC ------------------------------------------------------
"$CALL" --transport "unix:$T/qubes/simvm" guestvm test.Poweroff </dev/null > "$T/poweroff.out" 2>&1 || true
"$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: poweroff" 120 "$qpid" || die "guest did not power off"
rc=0; wait "$qpid" || rc=$?; qpid=
check "QEMU exits 0 after the guest powered off" test "$rc" = 0
vrc=0
for _ in $(seq 1 300); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vpid" 2>/dev/null; then
  not_ok "qube-vsockd exits when QEMU disconnects"
else
  wait "$vpid" || vrc=$?; vpid=
  check "qube-vsockd exits 0 when QEMU disconnects" test "$vrc" = 0
fi
check "no init errors in the guest" bash -c "! grep -q '^qube-init: error' '$T/serial.log'"

echo "timing: QEMU start -> init ready ${t_ready} ms; -> agent answering ${t_agent} ms; one host->guest call ${t_call} ms; 8 MiB to the guest and back ${t_big} ms"
if [ "$fails" -gt 0 ]; then
  dump
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
