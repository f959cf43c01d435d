#!/usr/bin/env bash
# The Fedora packaging, as far as it can go on Debian (suite packaging):
#  - packaging/fedora/build-srpm.sh makes a source RPM with rpmbuild -bs;
#    it holds qube.spec and the tree's tarball, and the spec declares the
#    subpackages qube-host, qube-guest and qube-policy;
#  - rpmlint finds no error and no warning in the spec and the source RPM
#    (the filters of packaging/fedora/qube.rpmlintrc, each with its reason);
#  - the spec's %install split (packaging/split.sh --format rpm) of this
#    build's real `meson install` succeeds, with every key file in its
#    package, the dracut drivers in qube-guest and no initramfs-tools hook.
# A binary RPM is not built here (no Fedora build root; see docs/install.md).
#   srpm-test.sh SOURCE_ROOT MESON_BUILD_ROOT
set -euo pipefail
top=${1:?usage: srpm-test.sh SOURCE_ROOT MESON_BUILD_ROOT}
build=${2:?usage: srpm-test.sh SOURCE_ROOT MESON_BUILD_ROOT}
for t in rpmbuild rpmlint rpm meson; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh: rpm, rpmlint)"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-srpm.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

t0=$(date +%s%N)
srpm=$("$top/packaging/fedora/build-srpm.sh" "$T/out") || { echo "FATAL: build-srpm.sh failed" >&2; exit 1; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "rpmbuild -bs wrote $(basename "$srpm")" test -f "$srpm"
rpm -qpl "$srpm" > "$T/contents" 2>/dev/null
check "the source RPM holds qube.spec and qube-0.1.0.tar.gz" \
  bash -c "grep -qx qube.spec '$T/contents' && grep -qx qube-0.1.0.tar.gz '$T/contents'"
rpmspec -q --qf '%{name}\n' "$top/packaging/fedora/qube.spec" 2>/dev/null | sort > "$T/subpkgs" || true
check "the spec declares qube-guest, qube-host, qube-policy" \
  test "$(grep -v '^qube$' "$T/subpkgs" | tr '\n' ' ')" = "qube-guest qube-host qube-policy "

rpmlint -r "$top/packaging/fedora/qube.rpmlintrc" "$top/packaging/fedora/qube.spec" "$srpm" > "$T/rpmlint.txt" 2>&1 || true
sed -n 's/^/# rpmlint: /p' "$T/rpmlint.txt" | grep -E ': (E|W): |checked' || true
check "rpmlint: 0 errors, 0 warnings" grep -q ' 0 errors, 0 warnings' "$T/rpmlint.txt"

# the spec's split on this build's real install tree (prefix moved to /usr)
meson install -C "$build" --destdir "$T/inst" --no-rebuild --quiet > "$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; echo "FATAL: meson install failed" >&2; exit 1; }
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
if [ "$prefix" != /usr ]; then
  mkdir -p "$T/inst/usr"
  cp -a "$T/inst$prefix/." "$T/inst/usr/"
  rm -rf "${T:?}/inst$prefix"
fi
# %meson configures --sysconfdir=/etc; a /usr/local build's relative
# sysconfdir installed under the prefix (PREFIX/etc): put it where the
# package build would
if [ -d "$T/inst/usr/etc" ]; then
  mkdir -p "$T/inst/etc"
  cp -a "$T/inst/usr/etc/." "$T/inst/etc/"
  rm -rf "${T:?}/inst/usr/etc"
fi
if bash "$top/packaging/split.sh" --format rpm --rules "$top/packaging/split.rules" \
     --key-files "$top/packaging/key-files" "$T/inst" "$T/split" > "$T/split.log" 2>&1; then
  ok "rpm split of the real meson install: every file placed, key files present ($(sed -n 's/.*: \(qube-[a-z]*: [0-9]* files\)/\1/p' "$T/split.log" | tr '\n' ' '))"
else
  not_ok "rpm split of the real meson install: $(cat "$T/split.log")"
fi
check "rpm split: the dracut drivers are in qube-guest" grep -q 'dracut.conf.d/90-qube-guest.conf$' "$T/split/guest.files"
check "rpm split: the initramfs-tools hook is left out" grep -q 'initramfs-tools/hooks/qube-guest$' "$T/split/dropped.files"

echo "timing: source RPM ${ms} ms"
if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
