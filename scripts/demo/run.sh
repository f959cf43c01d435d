#!/usr/bin/env bash
# The demo: run by scripts/demo.sh after the build.
#   run.sh BUILD_DIR
# 1. the policy engine on an example policy; 2.-6. real qubes through qubed
# and libvirt (scripts/demo/qubes.sh); 7. a qube's window on the qube
# compositor (scripts/demo/gui.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
demo=$top/scripts/demo
qubectl=$build/src/qubectl

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

if ! command -v qemu-system-x86_64 >/dev/null || ! command -v libvirtd >/dev/null; then
  echo
  echo "part 2 skipped: qemu-system-x86_64 or libvirtd is not installed (scripts/install-deps.sh installs both)"
else
  bash "$demo/qubes.sh" "$build"
  bash "$demo/gui.sh" "$build"
fi
echo
echo "demo finished"
