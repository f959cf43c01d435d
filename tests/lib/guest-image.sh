#!/usr/bin/env bash
# Makes sure a minimal guest image for the meson build dir BUILD is built and
# up to date, then prints the directory holding vmlinuz and
# initramfs.cpio.gz.  Rebuilds only when the builder, init, module list (the
# default one or --modules FILE), the included binaries or the arguments
# changed; concurrent callers wait for one another (flock), so parallel
# tests share one build.
#
#   guest-image.sh --build-dir BUILD [--output DIR] [--add PATH[:DEST]]...
#
# Default output: BUILD/images/minimal.  Extra arguments go to build.sh.
set -euo pipefail
prog=guest-image.sh
top=$(cd "$(dirname "$0")/../.." && pwd)
builder=$top/images/minimal/build.sh
die() { echo "$prog: error: $*" >&2; exit 1; }

build= out= pass=() inputs=("$builder" "$top/images/minimal/init" "$top/images/minimal/modules.list")
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; build=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || die "--output needs a value"; out=$2; shift 2 ;;
    --add) [ $# -ge 2 ] || die "--add needs a value"; pass+=(--add "$2"); inputs+=("${2%%:*}"); shift 2 ;;
    # a missing list is left to build.sh to report
    --modules) [ $# -ge 2 ] || die "--modules needs a value"; pass+=(--modules "$2"); [ ! -e "$2" ] || inputs+=("$2"); shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done
[ -n "$build" ] || die "--build-dir is required"
[ -d "$build" ] || die "build dir $build not found"
build=$(cd "$build" && pwd)
[ -n "$out" ] || out=$build/images/minimal
mkdir -p "$out"
out=$(cd "$out" && pwd)
for b in qube-agent qube-call qube-exec filecopy/qube-filecopy-send filecopy/qube-filecopy-receive \
         openinvm/qube-open-in-dvm; do
  [ -x "$build/rpc/guest/$b" ] && inputs+=("$build/rpc/guest/$b")
done

exec {lockfd}>"$out/.lock"
flock "$lockfd"
stamp=$( { printf '%s\n' "${pass[@]}"; stat -L -c '%n %s %Y' "${inputs[@]}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ] &&
   [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$prog: image in $out is up to date" >&2
else
  rm -f "$out/.stamp"
  "$builder" --output "$out" --build-dir "$build" "${pass[@]}" >&2
  echo "$stamp" > "$out/.stamp"
fi
echo "$out"
