#!/usr/bin/env bash
# Builds the source RPM of qube from this tree (packaging/copy-tree.sh: the
# work tree's tracked and untracked-but-not-ignored files, no build
# directories) with packaging/fedora/qube.spec.  Works on Debian with its `rpm` package.
#   packaging/fedora/build-srpm.sh OUTDIR     (prints the .src.rpm path)
set -euo pipefail
export LC_ALL=C
prog=packaging/fedora/build-srpm.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-}
[ -n "$out" ] && [ $# -eq 1 ] || die "usage: build-srpm.sh OUTDIR"
command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian: apt-get install rpm)"
version=$(sed -n 's/^Version: *//p' "$here/qube.spec")
meson_version=$(sed -n "s/^  version: '\([^']*\)'.*/\1/p" "$top/meson.build" | head -n1)
[ "$version" = "$meson_version" ] || die "qube.spec says Version $version, meson.build says $meson_version"
mkdir -p "$out"; out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/qube-srpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/SOURCES" "$work/stage/qube-$version"
"$top/packaging/copy-tree.sh" "$top" "$work/stage/qube-$version"
tar -C "$work/stage" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@${SOURCE_DATE_EPOCH:-0}" -czf "$work/SOURCES/qube-$version.tar.gz" "qube-$version"
rpmbuild --define "_topdir $work" --define "_sourcedir $work/SOURCES" \
  --define "_srcrpmdir $out" -bs "$here/qube.spec" > "$work/rpmbuild.log" 2>&1 ||
  { cat "$work/rpmbuild.log" >&2; die "rpmbuild -bs failed"; }
srpm=$(sed -n 's/^Wrote: //p' "$work/rpmbuild.log" | grep '\.src\.rpm$' | head -n1)
[ -n "$srpm" ] && [ -f "$srpm" ] || { cat "$work/rpmbuild.log" >&2; die "rpmbuild -bs wrote no .src.rpm"; }
echo "$srpm"
