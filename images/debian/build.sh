#!/usr/bin/env bash
# Builds the Debian 12 template of qube: a whole-disk ext4 root file system
# in a qcow2 file, with the kernel and initramfs beside it for direct kernel
# boot.  From Debian packages only (mmdebstrap; no prebuilt image), with
# the guest side of qube installed as the qube-guest .deb of this tree.
# Needs root.  See docs/templates.md.
#
#   images/debian/build.sh OUT.qcow2 [--with-gui] [--guest-deb FILE]
#        [--suite SUITE] [--mirror URL] [--security-mirror URL] [--size SIZE]
#        [--cache DIR]
#
# The template's apt sources (also what `qubectl template update` will use):
# SUITE, SUITE-updates and SUITE-security, main, from --mirror (default
# http://deb.debian.org/debian) and --security-mirror (default
# http://deb.debian.org/debian-security).
#
# Writes OUT.qcow2 and, beside it (OUT without .qcow2 = BASE):
#   BASE.vmlinuz      the Debian kernel of the template, unchanged
#   BASE.vmlinux      the same kernel uncompressed (PVH ELF; faster under TCG)
#   BASE.initrd.img   its initramfs (initramfs-tools, with the drivers qube needs)
#   BASE.manifest     suite, kernel, qube-guest version, package list,
#                     build time, sizes, sha256 of the outputs
set -euo pipefail
umask 022
export LC_ALL=C
prog=images/debian/build.sh
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

out='' gui=0 suite=bookworm mirror=http://deb.debian.org/debian security=http://deb.debian.org/debian-security size=8G
cache=${QUBE_CACHE_DIR:-/var/cache/qube}
guest_debs=()
while [ $# -gt 0 ]; do
  case $1 in
    --with-gui) gui=1; shift ;;
    --guest-deb) [ $# -ge 2 ] || die "--guest-deb needs a value"; guest_debs+=("$2"); shift 2 ;;
    --suite) [ $# -ge 2 ] || die "--suite needs a value"; suite=$2; shift 2 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; mirror=$2; shift 2 ;;
    --security-mirror) [ $# -ge 2 ] || die "--security-mirror needs a value"; security=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; shift 2 ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a value"; cache=$2; shift 2 ;;
    -h|--help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$out" ] || die "one OUT.qcow2 only (got '$out' and '$1')"; out=$1; shift ;;
  esac
done
[ -n "$out" ] || die "usage: build.sh OUT.qcow2 [--with-gui] [--guest-deb FILE] (see --help)"
case $out in *.qcow2) ;; *) die "OUT '$out' must end in .qcow2" ;; esac
case $size in [1-9]*[GM]) ;; *) die "--size '$size': a number followed by G or M" ;; esac
case $suite in *[!a-z]*|'') die "--suite '$suite': a Debian suite name such as bookworm" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap's root mode, mkfs.ext4 -d keeping owners)"
for t in mmdebstrap mkfs.ext4 qemu-img sha256sum xz; do
  command -v "$t" >/dev/null || die "'$t' not found (scripts/install-deps.sh)"
done
hookdir=/usr/share/mmdebstrap/hooks/file-mirror-automount
[ -d "$hookdir" ] || die "$hookdir missing (mmdebstrap too old)"
outdir=$(dirname "$out")
[ -d "$outdir" ] || die "directory $outdir does not exist"
out=$(cd "$outdir" && pwd)/$(basename "$out")
base=${out%.qcow2}

# read_list FILE: package names, one a line, '#' comments
read_list() {
  local n=0 line
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    line=$(echo "$line" | tr -d '[:space:]')
    [ -n "$line" ] || continue
    [[ $line =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "$1:$n: '$line' is not a Debian package name"
    echo "$line"
  done < "$1"
}
mapfile -t pkgs < <(read_list "$here/packages.list")
if [ "$gui" = 1 ]; then mapfile -t -O "${#pkgs[@]}" pkgs < <(read_list "$here/gui-packages.list"); fi
# Derived recipes (images/whonix/build.sh) add a source, its keyring and
# packages through the environment: QUBE_EXTRA_SOURCES (one sources.list
# line), QUBE_EXTRA_KEYRING (copied to /usr/share/keyrings/ in the
# template), QUBE_EXTRA_PACKAGES (names, space-separated).
extra_src=${QUBE_EXTRA_SOURCES:-} extra_key=${QUBE_EXTRA_KEYRING:-}
for p in ${QUBE_EXTRA_PACKAGES:-}; do
  [[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "QUBE_EXTRA_PACKAGES: '$p' is not a Debian package name"
  pkgs+=("$p")
done
[ -z "$extra_key" ] || [ -f "$extra_key" ] || die "QUBE_EXTRA_KEYRING $extra_key: no such file"
[ -z "$extra_src" ] || [[ $extra_src == deb\ * ]] || die "QUBE_EXTRA_SOURCES must be one 'deb ...' line"
tname=${QUBE_TEMPLATE_NAME:-debian-12}

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/qube-debian.XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT

# ---- qube-guest: the .deb of this tree -----------------------------------------
if [ ${#guest_debs[@]} -eq 0 ]; then
  say "building the qube .debs from $top (packaging/debian/build-debs.sh)"
  "$top/packaging/debian/build-debs.sh" "$work/debs" > "$work/debs.list"
  mapfile -t guest_debs < <(grep '/qube-guest_[^/]*\.deb$' "$work/debs.list")
  [ ${#guest_debs[@]} -eq 1 ] || die "build-debs.sh wrote no qube-guest .deb"
fi
incl=()
mkdir -p "$work/local"
for d in "${guest_debs[@]}"; do
  [ -f "$d" ] || die "--guest-deb $d: no such file"
  name=$(dpkg-deb -f "$d" Package) || die "$d is not a .deb"
  [ "$name" = qube-guest ] || die "--guest-deb $d is package '$name', not qube-guest"
  guest_version=$(dpkg-deb -f "$d" Version)
  cp "$d" "$work/local/"
  incl+=("$work/local/$(basename "$d")")
done

# ---- the root file system ---------------------------------------------------------
# Downloaded packages are kept in CACHE/debian-SUITE/archives between builds
# (mmdebstrap's documented sync-in/sync-out of /var/cache/apt/archives).
arch_cache=$cache/debian-$suite/archives
mkdir -p "$arch_cache" || die "cannot create $arch_cache"
exec {lockfd}>"$cache/debian-$suite/.lock"
flock "$lockfd"
root=$work/root
mkdir "$root"
inc=$(IFS=,; echo "${pkgs[*]}")
extra=()
if [ -n "$extra_key" ]; then
  # apt checks the extra source with it during the build and in the template
  extra+=(--keyring="$extra_key"
          --setup-hook='mkdir -p "$1"/usr/share/keyrings'
          --setup-hook="copy-in $extra_key /usr/share/keyrings")
fi
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main")
[ -z "$extra_src" ] || sources+=("$extra_src")
say "mmdebstrap $suite (minbase + ${#pkgs[@]} packages + qube-guest $guest_version)"
t0=$SECONDS
# shellcheck disable=SC2016  # the hooks' $1 is mmdebstrap's, not ours
mmdebstrap --variant=minbase --mode=root --format=directory \
  --include="$inc" "${incl[@]/#/--include=}" \
  --hook-dir="$hookdir" "${extra[@]}" \
  --skip=download/empty \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
  --setup-hook="sync-in $arch_cache /var/cache/apt/archives" \
  --customize-hook="sync-out /var/cache/apt/archives $arch_cache" \
  --customize-hook="$here/customize.sh"' "$1"' \
  "$suite" "$root" "${sources[@]}" > "$work/mmdebstrap.log" 2>&1 || {
  tail -n 40 "$work/mmdebstrap.log" >&2
  cp "$work/mmdebstrap.log" "$base.mmdebstrap.log"
  die "mmdebstrap failed (log: $base.mmdebstrap.log)"
}
t_debootstrap=$((SECONDS - t0))
rm -f "$base.mmdebstrap.log"

# ---- kernel and initramfs for direct kernel boot ---------------------------------
kvers=$(cd "$root/lib/modules" && ls)
[ "$(echo "$kvers" | wc -w)" = 1 ] || die "expected one kernel in the template, found: $kvers"
kver=$kvers
[ -f "$root/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-$kver in the template"
[ -f "$root/boot/initrd.img-$kver" ] || die "no /boot/initrd.img-$kver in the template"
for m in virtio_pci virtio_blk ext4 vsock vmw_vsock_virtio_transport; do
  grep -q "/$m\.ko" "$root/var/lib/qube-image/initramfs-modules" ||
    grep -qx "$m" "$root/var/lib/qube-image/builtin-modules" ||
    die "the initramfs lacks $m (the qube-guest initramfs hook did not run?)"
done
cp "$root/boot/vmlinuz-$kver" "$base.vmlinuz.tmp"
cp "$root/boot/initrd.img-$kver" "$base.initrd.img.tmp"
# vmlinux: the kernel's xz payload uncompressed, when it is an ELF with a
# PVH entry note: QEMU then boots it straight (no real-mode setup, no
# decompression), about twice as fast under TCG.
rm -f "$base.vmlinux"
# (grep -o prints the matched bytes, NUL included: keep only the offsets)
xzoff=$({ grep -obUaP '\xFD7zXZ\x00' "$base.vmlinuz.tmp" || true; } | tr -d '\0' | sed -n '1s/:.*//p')
if [ -n "$xzoff" ] &&
   xz -dc --single-stream < <(tail -c +"$((xzoff + 1))" "$base.vmlinuz.tmp") > "$base.vmlinux.tmp" 2>/dev/null &&
   [ "$(readelf -n "$base.vmlinux.tmp" 2>/dev/null | grep -c 'Xen.*(0x00000012)')" -ge 1 ]; then
  mv "$base.vmlinux.tmp" "$base.vmlinux"
else
  rm -f "$base.vmlinux.tmp"
  say "note: no PVH ELF kernel in vmlinuz-$kver; boot $base.vmlinuz"
fi
mv "$base.vmlinuz.tmp" "$base.vmlinuz"
mv "$base.initrd.img.tmp" "$base.initrd.img"

# ---- ext4 image, qcow2 -------------------------------------------------------------
used_kib=$(du -sxk "$root" | cut -f1)
epoch=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$root/etc/debian_version")}
uuid=$(printf '%s' "qube-template-$suite-$epoch" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')
t0=$SECONDS
E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -L qube-root -U "$uuid" -E "hash_seed=$uuid" \
  -d "$root" "$work/root.raw" "$size" > "$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log" >&2; die "mkfs.ext4 -d failed"; }
e2fsck -fn "$work/root.raw" > "$work/fsck.log" 2>&1 || { cat "$work/fsck.log" >&2; die "e2fsck finds errors in the new root"; }
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$out.tmp" || die "qemu-img convert failed"
mv "$out.tmp" "$out"
t_image=$((SECONDS - t0))
qcow_bytes=$(stat -c %s "$out")

total=$((SECONDS - start))
{
  echo "template: $tname ($suite, $suite-updates from $mirror; $suite-security from $security)"
  echo "gui-layer: $([ "$gui" = 1 ] && echo yes || echo no)"
  echo "kernel-release: $kver"
  echo "qube-guest: $guest_version"
  echo "root-used-bytes: $((used_kib * 1024))"
  echo "root-fs-size: $size"
  echo "qcow2-bytes: $qcow_bytes"
  echo "build-seconds: $total (mmdebstrap $t_debootstrap, ext4+qcow2 $t_image)"
  echo "kernel-cmdline: root=/dev/vda qube.name=NAME qube.rw=/dev/vdb qube.volatile=/dev/vdc"
  sums=("$(basename "$out")" "$(basename "$base").vmlinuz" "$(basename "$base").initrd.img")
  [ ! -f "$base.vmlinux" ] || sums+=("$(basename "$base").vmlinux")
  (cd "$(dirname "$out")" && sha256sum "${sums[@]}")
  echo "packages:"
  sed 's/^/  /' "$root/var/lib/qube-image/packages"
} > "$base.manifest"
say "root file system: $((used_kib / 1024)) MiB used; $out: $((qcow_bytes / 1048576)) MiB"
say "built in ${total} s (mmdebstrap ${t_debootstrap} s, ext4+qcow2 ${t_image} s)"
say "import (once qubed has it): qubectl template import $tname --root $out --kernel $base.vmlinuz --initrd $base.initrd.img"
