#!/usr/bin/env bash
# The demo: run by scripts/demo.sh after the build.
#   run.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
demo=$top/scripts/demo
qubectl=$build/src/qubectl
broker=$build/rpc/qube-broker
agent=$build/rpc/qube-agent
call=$build/rpc/qube-call

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-demo.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
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
}
echo "hello from work" | call work personal demo.Echo
echo "redirected by policy" | call work @default demo.Echo
head -c 10485760 /dev/urandom > "$T/10MiB"
echo "    local sha256 of 10 MiB: $(sha256sum < "$T/10MiB" | cut -c1-64)"
call work personal demo.Sha256 < "$T/10MiB"
echo "try me" | call untrusted work demo.Echo
echo "secrets?" | call work vault demo.Sha256
echo "anything" | call work personal demo.Missing
echo "no ask prompt connected" | call personal work qubes.Filecopy

step "   What the broker logged (one line per call)"
sed 's/^/    /' "$T/broker.log"
echo
echo "demo finished"
