#!/usr/bin/env bash
# The demo: run by scripts/demo.sh after the build.
#   run.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
demo=$top/scripts/demo
qubectl=$build/src/qubectl
broker=$build/rpc/broker/qube-broker
agent=$build/rpc/guest/qube-agent
call=$build/rpc/guest/qube-call

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-demo.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_DEMO_DIR:-0}" = 1 ]; then echo "demo dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

step "1. The policy engine"
show "qubectl policy lint --policy-dir scripts/demo/policy.d"
"$qubectl" policy lint --policy-dir "$demo/policy.d"
eval_req() {
  show "qubectl policy eval --explain $*"
  "$qubectl" policy eval --explain --policy-dir "$demo/policy.d" \
    --system-info "$demo/system-info.json" "$@" 2>&1 | sed 's/^/    /'
}
eval_req work personal demo.Echo
eval_req work @default demo.Echo
eval_req untrusted @dispvm qubes.OpenURL
eval_req work vault demo.Sha256
eval_req personal work qubes.Filecopy
eval_req untrusted work demo.Echo

step "   A broken policy file denies everything, and lint says where"
mkdir -p "$T/broken.d"
cp "$demo/policy.d/30-demo.policy" "$T/broken.d/"
printf 'demo.Echo * work personal allow target=\n' > "$T/broken.d/40-typo.policy"
show "qubectl policy lint --policy-dir broken.d"
"$qubectl" policy lint --policy-dir "$T/broken.d" 2>&1 | sed "s|$T/||; s/^/    /" || true
show "qubectl policy eval ... work personal demo.Echo"
"$qubectl" policy eval --explain --policy-dir "$T/broken.d" \
  --system-info "$demo/system-info.json" work personal demo.Echo 2>&1 | sed "s|$T/||; s/^/    /"

step "2. Qubes calling each other through the broker (simulated qubes: one qube-agent process each)"
mkdir -p "$T/qubes" "$T/rpc"
ln -s /bin/cat "$T/rpc/demo.Echo"
ln -s /usr/bin/sha256sum "$T/rpc/demo.Sha256"
mkdir -p "$T/qubes/guest"   # the real guest of part 3 (its socket directory)
for q in work personal untrusted vault; do
  mkdir -p "$T/qubes/$q"
  "$agent" --transport "unix:$T/qubes/$q" --rpc-dir "$T/rpc" --name "$q" \
    >>"$T/agent-$q.log" 2>&1 &
  pids+=($!)
done
for q in work personal untrusted vault; do
  for _ in $(seq 100); do [ -S "$T/qubes/$q/vsock" ] && break; sleep 0.05; done
done
: > "$T/broker.log"
"$broker" --policy-dir "$demo/policy.d" --system-info "$demo/system-info.json" \
  --qubes-dir "$T/qubes" --log "$T/broker.log" &
pids+=($!)
for _ in $(seq 200); do grep -q ' ready ' "$T/broker.log" && break; sleep 0.05; done
echo "    qubes: work personal untrusted vault (each its own socket directory), broker up"

call() { # call SOURCE TARGET SERVICE (stdin from the caller)
  local src=$1 rc=0; shift
  show "[$src] qube-call $*"
  "$call" --transport "unix:$T/qubes/$src" "$@" 2>&1 | sed 's/^/    /' || rc=${PIPESTATUS[0]}
  echo "    (exit $rc)"
  [ "$rc" != 125 ] || rpc_failures=$((rpc_failures + 1))
}
rpc_failures=0
echo "hello from work" | call work personal demo.Echo
echo "redirected by policy" | call work @default demo.Echo
head -c 10485760 /dev/urandom > "$T/10MiB"
echo "    local sha256 of 10 MiB: $(sha256sum < "$T/10MiB" | cut -c1-64)"
call work personal demo.Sha256 < "$T/10MiB"
echo "try me" | call untrusted work demo.Echo
echo "secrets?" | call work vault demo.Sha256
echo "anything" | call work personal demo.Missing
echo "no ask prompt connected" | call personal work qubes.Filecopy

step "3. A real guest: QEMU (TCG here) booting the minimal image, vsock through qube-vsockd"
lib=$top/tests/lib
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
  echo "    skipped: qemu-system-x86_64 or mkfs.ext4 missing"
else
  img=$("$lib/guest-image.sh" --build-dir "$build")
  kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
  # the guest's services live on its private disk (/rw/rpc)
  mkdir -p "$T/disk/rpc"
  printf '#!/bin/sh\nexec cat\n' > "$T/disk/rpc/demo.Echo"
  printf '#!/bin/sh\necho "$(hostname): Linux $(uname -r), called by $QUBE_REMOTE"\n' > "$T/disk/rpc/demo.Uname"
  printf '#!/bin/sh\necho "powering off"\npoweroff\n' > "$T/disk/rpc/demo.Poweroff"
  chmod 0755 "$T"/disk/rpc/*
  truncate -s 16M "$T/private.img"
  mkfs.ext4 -q -F -d "$T/disk" "$T/private.img"
  chmod 0755 "$T"   # the broker's sandbox runs as nobody
  "$build/vmm/qube-vsockd" --verbose --socket "$T/vhost-user.sock" --guest-cid 3 \
    --uds-path "$T/qubes/guest/vsock" > "$T/vsockd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -S "$T/vhost-user.sock" ] && break; sleep 0.05; done
  append='qube.name=guest qube.agent_args="--transport vsock --rpc-dir /rw/rpc"'
  append+=' qube.run="echo hello from inside the guest | qube-call --transport vsock personal demo.Sha256; echo guest-call-exit=$?"'
  echo "    booting the guest (qube 'guest', CID 3) ..."
  start=$(date +%s)
  "$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
    --serial-log "$T/serial.log" --memory 256 --disk "$T/private.img" \
    --vhost-user-vsock "$T/vhost-user.sock" --append "$append" &
  qpid=$!
  pids+=($qpid)
  # (the console arrives byte by byte: wait for the line after the one shown)
  "$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: run[1] exit" 300 "$qpid" >/dev/null
  echo "    guest up and its first call done after $(( $(date +%s) - start )) s; its console says:"
  grep -E '^(qube-init: (starting|modules|mounted|agent started|ready)|guest-call-exit=|[0-9a-f]{64})' \
    "$T/serial.log" | sed 's/^/      /'
  echo "    (expected hash: $(printf 'hello from inside the guest\n' | sha256sum | cut -c1-64))"
  echo "hello from work, into the VM" | call work guest demo.Echo
  call work guest demo.Uname </dev/null
  call untrusted guest demo.Uname </dev/null
  call work guest demo.Poweroff </dev/null
  if [ "$rpc_failures" -gt 0 ]; then
    echo "    RPC failures (exit 125): the last lines of qube-vsockd's log, for diagnosis:"
    tail -n 20 "$T/vsockd.log" | sed 's/^/      /'
  fi
  if "$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: poweroff" 120 "$qpid" >/dev/null; then
    wait "$qpid" 2>/dev/null || true
    echo "    guest powered off; QEMU exited"
  else
    echo "    the guest did not power off: stopping QEMU"
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
fi

step "   What the broker logged (one line per call)"
sed "s|$T/||g; s|$demo/||g; s/^/    /" "$T/broker.log"
echo
echo "demo finished"
