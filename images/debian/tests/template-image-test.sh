#!/usr/bin/env bash
# The Debian template builds from this tree (suites template and slow):
# images/debian/build.sh with its cache (docs/templates.md, "Cache"), so
# that the test `template`, which boots it, finds it built; the outputs are
# there, the root file system without the GUI layer is under 1.5 GiB, the
# qcow2 has no backing file, the manifest names this tree's qube-guest.
# Prints the build's times (and what came from the cache).
# Runs only with QUBE_SLOW_TESTS=1, as root, in a build without sanitizers.
#   template-image-test.sh SOURCE_ROOT [SANITIZE]
set -euo pipefail
top=${1:?usage: template-image-test.sh SOURCE_ROOT [SANITIZE]}
sanitize=${2:-none}
if [ "${QUBE_SLOW_TESTS:-0}" != 1 ]; then
  echo "SKIP: slow test (builds the Debian template, 1-7 minutes): set QUBE_SLOW_TESTS=1"; exit 77
fi
[ "$sanitize" = none ] || { echo "SKIP: runs in the build without sanitizers"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (images/debian/build.sh)"; exit 77; }
for t in mmdebstrap qemu-img mkfs.ext4 dpkg-buildpackage; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-tplimg.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

t0=$SECONDS
if "$top/images/debian/build.sh" "$T/debian-12.qcow2" > "$T/build.log" 2>&1; then
  ok "images/debian/build.sh debian-12.qcow2 ($((SECONDS - t0)) s)"
else
  tail -n 40 "$T/build.log" >&2; echo "FATAL: images/debian/build.sh failed" >&2; exit 1
fi
sed -n 's/^images\/debian\/build.sh: /# /p; s/^  \(packaging.*\)/# \1/p' "$T/build.log"
b=$T/debian-12
for f in qcow2 vmlinuz initrd.img manifest; do check "debian-12.$f written" test -s "$b.$f"; done
grep -E '^(kernel-release|qube-guest|base|root-used-bytes|qcow2-bytes|initrd-bytes|build-seconds):' "$b.manifest" | sed 's/^/# manifest: /'
used=$(sed -n 's/^root-used-bytes: //p' "$b.manifest")
check "the root file system without the GUI layer is under 1.5 GiB ($((used / 1048576)) MiB)" test "$used" -lt $((1536 * 1048576))
check "the qcow2 has no backing file (qubed refuses one)" bash -c "qemu-img info '$b.qcow2' | grep -q '^file format: qcow2' && ! qemu-img info '$b.qcow2' | grep -q '^backing file'"
version=$(sed -n '1s/^qube (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
check "the manifest's qube-guest is this tree's ($version), and in the package list" \
  bash -c "grep -q '^qube-guest: $version ' '$b.manifest' && grep -qx '  qube-guest $version' '$b.manifest'"
check "a PVH vmlinux beside it (the faster boot under TCG)" test -s "$b.vmlinux"
if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
