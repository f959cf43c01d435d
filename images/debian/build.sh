#!/usr/bin/env bash
# Builds the Debian 12 template of qube: a whole-disk ext4 root file system
# in a qcow2 file, with the kernel and initramfs beside it for direct kernel
# boot.  From Debian packages only (mmdebstrap; no prebuilt image), with
# the guest side of qube installed as the qube-guest .deb of this tree.
# Needs root.  See docs/templates.md.
#
#   images/debian/build.sh OUT.qcow2 [--with-gui] [--guest-deb FILE]
#        [--suite SUITE] [--mirror URL] [--security-mirror URL] [--size SIZE]
#        [--cache DIR] [--no-cache] [--base-max-age DAYS]
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
#
# Cache (--cache DIR, default ${QUBE_CACHE_DIR:-/var/cache/qube}; --no-cache
# uses none): downloaded .debs; the .debs of this tree (by its contents);
# the base root file system, everything but qube-guest, keyed by its inputs
# and rebuilt when older than --base-max-age days (default 7, for security
# updates); whole templates keyed by the base and the qube-guest .deb.
set -euo pipefail
umask 022
export LC_ALL=C
prog=images/debian/build.sh
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

out='' gui=0 suite=bookworm mirror=http://deb.debian.org/debian security=http://deb.debian.org/debian-security size=8G
cache=${QUBE_CACHE_DIR:-/var/cache/qube} use_cache=1 max_age=7
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
    --no-cache) use_cache=0; shift ;;
    --base-max-age) [ $# -ge 2 ] || die "--base-max-age needs a value"; max_age=$2; shift 2 ;;
    -h|--help) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$out" ] || die "one OUT.qcow2 only (got '$out' and '$1')"; out=$1; shift ;;
  esac
done
[ -n "$out" ] || die "usage: build.sh OUT.qcow2 [--with-gui] [--guest-deb FILE] (see --help)"
case $out in *.qcow2) ;; *) die "OUT '$out' must end in .qcow2" ;; esac
case $size in [1-9]*[GM]) ;; *) die "--size '$size': a number followed by G or M" ;; esac
case $suite in *[!a-z]*|'') die "--suite '$suite': a Debian suite name such as bookworm" ;; esac
case $max_age in *[!0-9]*|'') die "--base-max-age '$max_age': a number of days" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap's root mode, mkfs.ext4 -d keeping owners)"
for t in mmdebstrap mkfs.ext4 qemu-img sha256sum xz unshare flock; do
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
root=$work/root
if [ "$use_cache" = 1 ]; then
  mkdir -p "$cache/debian-$suite/archives" || die "cannot create $cache/debian-$suite"
  cache=$(cd "$cache" && pwd)
  cdir=$cache/debian-$suite
else
  cdir=$work/cache
  mkdir -p "$cdir/archives"
fi
arch_cache=$cdir/archives arch_lock=$cdir/.archives.lock

# ---- qube-guest: the .deb of this tree -----------------------------------------
for d in "${guest_debs[@]}"; do
  [ -f "$d" ] || die "--guest-deb $d: no such file"
  name=$(dpkg-deb -f "$d" Package) || die "$d is not a .deb"
  [ "$name" = qube-guest ] || die "--guest-deb $d is package '$name', not qube-guest"
done
if [ ${#guest_debs[@]} -eq 0 ]; then
  say "the qube .debs of $top (packaging/debian/build-debs.sh)"
  dcache=()
  [ "$use_cache" = 0 ] || dcache=(--cache "$cache/debs-build")
  "$top/packaging/debian/build-debs.sh" "$work/debs" "${dcache[@]}" > "$work/debs.list" 2> "$work/debs.err" ||
    { cat "$work/debs.err" >&2; die "build-debs.sh failed"; }
  sed 's/^/  /' "$work/debs.err" >&2
  mapfile -t guest_debs < <(grep '/qube-guest_[^/]*\.deb$' "$work/debs.list")
  [ ${#guest_debs[@]} -eq 1 ] || die "build-debs.sh wrote no qube-guest .deb"
fi
[ ${#guest_debs[@]} -eq 1 ] || die "one --guest-deb (qube-guest) only"
guest_deb=${guest_debs[0]}
guest_version=$(dpkg-deb -f "$guest_deb" Version)
guest_sha=$(sha256sum < "$guest_deb" | cut -c1-64)

# ---- cache keys -------------------------------------------------------------------
# The base (step 1 below) depends on exactly: the suite and sources, the
# package set, the extra keyring, the recipe's files and the code of
# build_base itself; the template adds the qube-guest .deb, finish.sh and
# the code of the later steps.
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main")
[ -z "$extra_src" ] || sources+=("$extra_src")

# build_base DIR: mmdebstrap of everything but qube-guest into DIR
# shellcheck disable=SC2016  # the hooks' $1 is mmdebstrap's, not ours
build_base() {
  local r=$1 inc extra=()
  inc=$(IFS=,; echo "${pkgs[*]}")
  if [ -n "$extra_key" ]; then
    # apt checks the extra source with it during the build and in the template
    extra+=(--keyring="$extra_key"
            --setup-hook='mkdir -p "$1"/usr/share/keyrings'
            --setup-hook="copy-in $extra_key /usr/share/keyrings")
  fi
  # Downloaded packages are kept in $arch_cache between builds; they are
  # copied in and out under a lock (the packaging test's chroot shares them).
  # qube.conf is in place before initramfs-tools and the kernel are
  # installed, so the kernel's first initramfs already follows it.
  mmdebstrap --variant=minbase --mode=root --format=directory \
    --include="$inc" \
    --hook-dir="$hookdir" "${extra[@]}" \
    --skip=download/empty \
    --essential-hook='mkdir -p "$1"/etc/initramfs-tools/conf.d' \
    --essential-hook="copy-in $here/qube.conf /etc/initramfs-tools/conf.d" \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
    --setup-hook="flock '$arch_lock' cp -a '$arch_cache/.' \"\$1\"/var/cache/apt/archives/" \
    --customize-hook="flock '$arch_lock' cp -an \"\$1\"/var/cache/apt/archives/. '$arch_cache/'" \
    --customize-hook="$here/customize.sh"' "$1"' \
    "$suite" "$r" "${sources[@]}"
}

# finish DIR: qube-guest and the checks in DIR (a mount namespace with
# /proc, /sys and /dev for the package scripts and update-initramfs)
finish() {
  local r=$1
  mkdir -p "$r/tmp/qube-guest"
  cp "$guest_deb" "$r/tmp/qube-guest/"
  # shellcheck disable=SC2016  # expanded by the inner bash
  unshare --mount --propagation private -- bash -c '
    set -euo pipefail
    r=$1; shift
    mount -t proc proc "$r/proc"
    mount -t sysfs sysfs "$r/sys"
    mount --rbind /dev "$r/dev"
    exec "$@"' _ "$r" "$here/finish.sh" "$r" "/tmp/qube-guest/$(basename "$guest_deb")"
  rm -rf "$r/tmp/qube-guest"
}

base_key=$({ echo "qube-template-base 1"; printf '%s\n' "${sources[@]}" "${pkgs[@]}"
             [ -z "$extra_key" ] || sha256sum < "$extra_key"
             cat "$here/customize.sh" "$here/qube.conf"; declare -f build_base; } | sha256sum | cut -c1-32)
image_key=$({ echo "qube-template 1 $base_key $guest_sha $size $tname $gui"; cat "$here/finish.sh"
              declare -f finish; sed -n '/^# ---- kernel and initramfs/,$p' "$0"; } | sha256sum | cut -c1-32)
outputs=("$out" "$base.vmlinuz" "$base.initrd.img" "$base.manifest")

# ---- a whole template built before from the same inputs ----------------------------
if [ "$use_cache" = 1 ]; then
  exec {lockfd}>"$cdir/.build.lock"
  flock "$lockfd"
  slot=$cdir/templates/$image_key
  if [ -f "$slot/done" ]; then
    rm -f "${outputs[@]}" "$base.vmlinux"
    for f in "$slot"/*; do
      case $f in */done) continue ;; esac
      cp "$f" "$(dirname "$out")/$(basename "$base")${f#"$slot"/t}"
    done
    touch "$slot"
    say "reused the template built $(cat "$slot/done") from the same inputs (cache key $image_key)"
    say "root file system: $(( $(sed -n 's/^root-used-bytes: //p' "$base.manifest") / 1048576 )) MiB used; $out: $(( $(stat -c %s "$out") / 1048576 )) MiB"
    say "import: qubectl template import --kernel $base.vmlinuz --initrd $base.initrd.img --root $out $tname"
    exit 0
  fi
fi

# ---- 1. the base: mmdebstrap of every package but qube-guest -------------------------
t0=$SECONDS
base_note=''
tarball=$cdir/base/$base_key.tar
if [ "$use_cache" = 1 ] && [ -f "$tarball" ] && [ -n "$(find "$tarball" -mtime -"$max_age")" ]; then
  mkdir "$root"
  tar -C "$root" --xattrs --xattrs-include='*' --numeric-owner -xpf "$tarball"
  base_note="reused (built $(cat "$tarball.built"))"
  say "base root file system $base_note, unpacked in $((SECONDS - t0)) s"
else
  say "mmdebstrap $suite (minbase + ${#pkgs[@]} packages)"
  build_base "$root" > "$work/mmdebstrap.log" 2>&1 || {
    tail -n 40 "$work/mmdebstrap.log" >&2
    cp "$work/mmdebstrap.log" "$base.mmdebstrap.log"
    die "mmdebstrap failed (log: $base.mmdebstrap.log)"
  }
  rm -f "$base.mmdebstrap.log"
  base_note="built now in $((SECONDS - t0)) s"
  if [ "$use_cache" = 1 ]; then
    mkdir -p "$cdir/base"
    tar -C "$root" --xattrs --xattrs-include='*' --numeric-owner -cf "$tarball.tmp" .
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') in $((SECONDS - t0)) s" > "$tarball.built"
    mv "$tarball.tmp" "$tarball"
    # keep the newest 2 bases
    find "$cdir/base" -maxdepth 1 -name '*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +3 | cut -d' ' -f2- |
      while IFS= read -r old; do rm -f -- "$old" "$old.built"; done
  fi
  say "base root file system $base_note"
fi
t_base=$((SECONDS - t0))

# ---- 2. qube-guest, initramfs, checks (finish.sh) --------------------------------------
t0=$SECONDS
say "installing qube-guest $guest_version (finish.sh)"
finish "$root" > "$work/finish.log" 2>&1 || { tail -n 40 "$work/finish.log" >&2; die "finish.sh failed"; }
t_finish=$((SECONDS - t0))

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
  echo "qube-guest: $guest_version (sha256 $guest_sha)"
  echo "base: $base_note (key $base_key)"
  echo "root-used-bytes: $((used_kib * 1024))"
  echo "root-fs-size: $size"
  echo "qcow2-bytes: $qcow_bytes"
  echo "initrd-bytes: $(stat -c %s "$base.initrd.img")"
  echo "build-seconds: $total (base $t_base, qube-guest and initramfs $t_finish, ext4+qcow2 $t_image)"
  echo "kernel-cmdline: root=/dev/vda qube.name=NAME qube.rw=/dev/vdb qube.volatile=/dev/vdc qube.class=CLASS"
  sums=("$(basename "$out")" "$(basename "$base").vmlinuz" "$(basename "$base").initrd.img")
  [ ! -f "$base.vmlinux" ] || sums+=("$(basename "$base").vmlinux")
  (cd "$(dirname "$out")" && sha256sum "${sums[@]}")
  echo "packages:"
  sed 's/^/  /' "$root/var/lib/qube-image/packages"
} > "$base.manifest"

# keep it for the next build from the same inputs (newest 2 kept)
if [ "$use_cache" = 1 ]; then
  rm -rf "$slot.tmp"
  mkdir -p "$slot.tmp"
  for f in "${outputs[@]}" "$base.vmlinux"; do
    [ -f "$f" ] && cp "$f" "$slot.tmp/t${f#"$base"}"
  done
  date -u '+%Y-%m-%d %H:%M UTC' > "$slot.tmp/done"
  mv "$slot.tmp" "$slot"
  find "$cdir/templates" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp' -printf '%T@ %p\n' | sort -rn |
    tail -n +3 | cut -d' ' -f2- | while IFS= read -r old; do rm -rf -- "$old"; done
fi
say "root file system: $((used_kib / 1024)) MiB used; $out: $((qcow_bytes / 1048576)) MiB"
stored=''
[ "$use_cache" = 0 ] || stored="; $((SECONDS - start)) s with storing it in the cache"
say "built in ${total} s: base ${t_base} s ($base_note), qube-guest and initramfs ${t_finish} s, ext4+qcow2 ${t_image} s$stored"
say "import: qubectl template import --kernel $base.vmlinuz --initrd $base.initrd.img --root $out $tname"
