# shellcheck shell=bash
# Shared set-up of the qube-vsockd benchmarks (vsock-bench.sh, vsock-cpu.sh):
# the caller sets PROG and DEFAULT_MIB and passes its own arguments
# (MESON_BUILD_ROOT [MIB]); this sets top, lib, build, mib, n (bytes),
# vsockd (QUBE_VSOCKD overrides it, to compare builds), tool and img (the
# minimal image with vsock-guest-tool added), or exits 77 without QEMU.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$top/tests/lib
build=${1:?usage: $PROG.sh MESON_BUILD_ROOT [MIB]}
build=$(cd "$build" && pwd)
mib=${2:-$DEFAULT_MIB}
case $mib in ''|*[!0-9]*) echo "$PROG: MIB '$mib' is not a number" >&2; exit 2 ;; esac
n=$((mib * 1024 * 1024))
vsockd=${QUBE_VSOCKD:-$build/vmm/qube-vsockd}
tool=$build/vmm/vsock-guest-tool
for f in "$vsockd" "$tool"; do
  [ -x "$f" ] || { echo "$PROG: $f not built (meson compile -C $build)" >&2; exit 1; }
done
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 not installed"
  exit 77
fi
img=$("$lib/guest-image.sh" --build-dir "$build" --output "$build/vmm/vsock-image" \
  --add "$tool:/usr/bin/vsock-guest-tool")
