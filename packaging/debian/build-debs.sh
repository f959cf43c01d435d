#!/usr/bin/env bash
# Builds qube-host, qube-guest and qube-policy .debs from this tree with
# dpkg-buildpackage (debhelper's meson build, then packaging/split.sh).
#
#   packaging/debian/build-debs.sh OUTDIR [--jobs N] [--check] [--cache DIR]
#
# The tree's files (packaging/copy-tree.sh: tracked and untracked-but-not-
# ignored, as they are in the work tree now, or what .gitignore does not
# exclude when there is no git work tree; no build directories) are copied
# to a scratch directory with this folder as debian/.  Build dependencies: debian/control (all of them are
# in scripts/install-deps.sh).  Tests are not run in the package build unless
# --check (the meson test suite runs them); prints the .debs it wrote.
# --cache DIR: keep the result in DIR/KEY, KEY the sha256 of the copied tree
# (names, modes, contents), of every installed package's version (compiler,
# build dependencies) and of the options; the same KEY later copies the
# kept .debs instead of building (said on stderr).  Concurrent builds of one
# KEY wait for each other; the newest 3 KEYs are kept.
set -euo pipefail
export LC_ALL=C
prog=packaging/debian/build-debs.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

out='' jobs=2 check=0 cache=''
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; jobs=$2; shift 2 ;;
    --check) check=1; shift ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a value"; cache=$2; shift 2 ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1'" ;;
    *) [ -z "$out" ] || die "one OUTDIR only"; out=$1; shift ;;
  esac
done
[ -n "$out" ] || die "usage: build-debs.sh OUTDIR [--jobs N] [--check] [--cache DIR]"
case $jobs in ''|*[!0-9]*|0) die "--jobs '$jobs' is not a positive number" ;; esac
for t in dpkg-buildpackage dh tar; do
  command -v "$t" >/dev/null || die "'$t' not found (scripts/install-deps.sh installs dpkg-dev, debhelper)"
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/qube-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=$(sed -n '1s/^qube (\([^)]*\)).*/\1/p' "$here/changelog")
[ -n "$version" ] || die "$here/changelog: cannot read the version from its first line"
meson_version=$(sed -n "s/^  version: '\([^']*\)'.*/\1/p" "$top/meson.build" | head -n1)
[ "$version" = "$meson_version" ] ||
  die "packaging/debian/changelog says $version, meson.build says $meson_version: add a changelog entry"
src=$work/qube-$version
mkdir "$src"
"$top/packaging/copy-tree.sh" "$top" "$src"
rm -rf "$src/debian"
cp -a "$here" "$src/debian"
rm -f "$src/debian/build-debs.sh"

opts="parallel=$jobs"
[ "$check" = 1 ] || opts="$opts nocheck"
start=$SECONDS

# copy_out DIR: the results in DIR to OUTDIR, the .debs' paths to $work/printed
copy_out() {
  local f n=0
  : > "$work/printed"
  for f in "$1"/*.deb "$1"/*.changes "$1"/*.buildinfo "$1/build.log"; do
    [ -e "$f" ] || continue
    cp "$f" "$out/"
    case $f in *.deb) echo "$out/$(basename "$f")" >> "$work/printed"; n=$((n + 1)) ;; esac
  done
  [ "$n" -ge 3 ] || die "$n .debs in $1, expected qube-host, qube-guest, qube-policy (and -dbgsym)"
}

key='' slot=''
if [ -n "$cache" ]; then
  mkdir -p "$cache" || die "cannot create the cache $cache"
  cache=$(cd "$cache" && pwd)
  key=$({ (cd "$work" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "qube-$version") | sha256sum
          dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' | sort
          echo "opts=$opts ${DEB_BUILD_OPTIONS:-} ${DEB_BUILD_PROFILES:-}"; } | sha256sum | cut -c1-32)
  slot=$cache/$key
  exec {lockfd}>"$cache/.lock"
  flock "$lockfd"
  if [ -f "$slot/done" ]; then
    copy_out "$slot"
    cat "$work/printed"
    n=$(wc -l < "$work/printed")
    touch "$slot"
    echo "$prog: reused the build of $(cat "$slot/done") (cache key $key): $n .debs" >&2
    exit 0
  fi
fi

(cd "$src" && DEB_BUILD_OPTIONS=$opts dpkg-buildpackage -b -us -uc) > "$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log" >&2
  cp "$work/build.log" "$out/build.log"
  die "dpkg-buildpackage failed (whole log: $out/build.log)"
}
mkdir "$work/results"
mv "$work/build.log" "$work/results/build.log"
for f in "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo; do
  [ -e "$f" ] && mv "$f" "$work/results/"
done
copy_out "$work/results"
n=$(wc -l < "$work/printed")
if [ -n "$slot" ]; then
  rm -rf "$slot.tmp"
  cp -a "$work/results" "$slot.tmp"
  date -u '+%Y-%m-%d %H:%M:%S UTC' > "$slot.tmp/done"
  mv "$slot.tmp" "$slot"
  # keep the newest 3 builds
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp' -printf '%T@ %p\n' | sort -rn | tail -n +4 |
    cut -d' ' -f2- | while IFS= read -r old; do rm -rf -- "$old"; done
fi
cat "$work/printed"
echo "$prog: built $n .debs in $((SECONDS - start)) s" >&2
