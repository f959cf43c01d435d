#!/usr/bin/env bash
# Builds a Fedora template of qube on a Fedora host: dnf --installroot with
# --releasever into a directory, the qube-guest RPM of this tree, a generic
# (not host-only) dracut initramfs with the drivers qube needs, then a
# whole-disk ext4 root file system in a qcow2 file and the kernel and
# initramfs beside it, as images/debian/build.sh does.  Needs root and dnf
# (dnf 4 or dnf5).  Not built on the project's machines (no Fedora
# repository is reachable there): see docs/templates.md.
#
#   images/fedora/build.sh OUT.qcow2 [--release N] [--with-gui]
#        [--guest-rpm FILE] [--size SIZE]
#
# Steps (each names what failed):
#   1. read packages.list (+ gui-packages.list);
#   2. qube-guest RPM: --guest-rpm, or rpmbuild --rebuild of the source RPM
#      of packaging/fedora/build-srpm.sh;
#   3. dnf --installroot ROOT --releasever N --setopt=install_weak_deps=False
#      install PACKAGES ./qube-guest-*.rpm (the host's repository set-up);
#   4. in ROOT: user uid 1000 (home on the private volume), sudo, fstab with
#      /dev/vda as /, systemd-networkd DHCP (wait-online masked),
#      systemd-firstboot masked, qube units enabled;
#   5. dracut --no-hostonly for the installed kernel; lsinitrd must show
#      virtio_blk, virtio_pci, ext4, vsock, vmw_vsock_virtio_transport;
#   6. mkfs.ext4 -d ROOT, qemu-img convert to OUT.qcow2; BASE.vmlinuz,
#      BASE.initrd.img and BASE.manifest beside it.
set -euo pipefail
umask 022
export LC_ALL=C
prog=images/fedora/build.sh
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

out='' release=41 gui=0 size=8G guest_rpm=''
while [ $# -gt 0 ]; do
  case $1 in
    --release) [ $# -ge 2 ] || die "--release needs a value"; release=$2; shift 2 ;;
    --with-gui) gui=1; shift ;;
    --guest-rpm) [ $# -ge 2 ] || die "--guest-rpm needs a value"; guest_rpm=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; shift 2 ;;
    -h|--help) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$out" ] || die "one OUT.qcow2 only"; out=$1; shift ;;
  esac
done
[ -n "$out" ] || die "usage: build.sh OUT.qcow2 [--release N] [--with-gui] [--guest-rpm FILE]"
case $out in *.qcow2) ;; *) die "OUT '$out' must end in .qcow2" ;; esac
case $release in ''|*[!0-9]*) die "--release '$release' is not a Fedora release number" ;; esac
case $size in [1-9]*[GM]) ;; *) die "--size '$size': a number followed by G or M" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (dnf --installroot, chroot, mkfs.ext4 -d keeping owners)"
dnf=$(command -v dnf5 || command -v dnf || true)
[ -n "$dnf" ] || die "dnf not found: this recipe runs on a Fedora host"
for t in rpmbuild mkfs.ext4 qemu-img chroot sha256sum; do
  command -v "$t" >/dev/null || die "'$t' not found"
done
outdir=$(dirname "$out"); [ -d "$outdir" ] || die "directory $outdir does not exist"
out=$(cd "$outdir" && pwd)/$(basename "$out")
base=${out%.qcow2}

read_list() {
  local n=0 line
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1)); line=${line%%#*}; line=$(echo "$line" | tr -d '[:space:]')
    [ -n "$line" ] || continue
    [[ $line =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "$1:$n: '$line' is not an RPM package name"
    echo "$line"
  done < "$1"
}
mapfile -t pkgs < <(read_list "$here/packages.list")
if [ "$gui" = 1 ]; then mapfile -t -O "${#pkgs[@]}" pkgs < <(read_list "$here/gui-packages.list"); fi

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/qube-fedora.XXXXXX")
cleanup() {
  local m
  for m in proc sys dev; do umount -l "$work/root/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 2. qube-guest RPM ----------------------------------------------------------
if [ -z "$guest_rpm" ]; then
  srpm=$("$top/packaging/fedora/build-srpm.sh" "$work/srpm") || die "build-srpm.sh failed"
  rpmbuild --define "_topdir $work/rpmbuild" --rebuild "$srpm" > "$work/rpmbuild.log" 2>&1 ||
    { tail -n 40 "$work/rpmbuild.log" >&2; die "rpmbuild --rebuild $srpm failed (BuildRequires: dnf builddep $srpm)"; }
  guest_rpm=$(find "$work/rpmbuild/RPMS" -name 'qube-guest-[0-9]*.rpm' | head -n1)
  [ -n "$guest_rpm" ] || die "rpmbuild wrote no qube-guest RPM"
fi
[ -f "$guest_rpm" ] || die "--guest-rpm $guest_rpm: no such file"
[ "$(rpm -qp --qf '%{NAME}' "$guest_rpm")" = qube-guest ] || die "$guest_rpm is not the qube-guest package"

# ---- 3. dnf --installroot -------------------------------------------------------------
root=$work/root
mkdir -p "$root"
hostcfg=()
case $dnf in *dnf5) hostcfg=(--use-host-config) ;; esac
say "dnf --installroot, Fedora $release, ${#pkgs[@]} packages + $(basename "$guest_rpm")"
"$dnf" -y -q --installroot="$root" --releasever="$release" "${hostcfg[@]}" \
  --setopt=install_weak_deps=False --setopt=tsflags=nodocs \
  install "${pkgs[@]}" "$guest_rpm" > "$work/dnf.log" 2>&1 ||
  { tail -n 40 "$work/dnf.log" >&2; die "dnf --installroot install failed"; }
"$dnf" -y -q --installroot="$root" --releasever="$release" "${hostcfg[@]}" clean all > /dev/null 2>&1 || true

# ---- 4. configuration -----------------------------------------------------------------
for m in proc sys dev; do mkdir -p "$root/$m"; mount --bind "/$m" "$root/$m"; done
chroot "$root" useradd -M -u 1000 -U -d /home/user -s /bin/bash user
echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/qube-user"; chmod 0440 "$root/etc/sudoers.d/qube-user"
printf '/dev/vda  /  ext4  defaults  0  1\n' > "$root/etc/fstab"
echo qube > "$root/etc/hostname"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/80-qube.network"
chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service qube-agent.service qube-guest-setup.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service

# ---- 5. initramfs ------------------------------------------------------------------------
kver=$(cd "$root/lib/modules" && ls)
[ "$(echo "$kver" | wc -w)" = 1 ] || die "expected one kernel in the template, found: $kver"
chroot "$root" dracut --force --no-hostonly --kver "$kver" "/boot/initramfs-$kver.img" > "$work/dracut.log" 2>&1 ||
  { tail -n 20 "$work/dracut.log" >&2; die "dracut failed"; }
chroot "$root" lsinitrd "/boot/initramfs-$kver.img" > "$work/lsinitrd.txt"
for m in virtio_pci virtio_blk ext4 vsock vmw_vsock_virtio_transport; do
  grep -q "/$m\.ko" "$work/lsinitrd.txt" || grep -qw "$m" "$root/lib/modules/$kver/modules.builtin" ||
    die "the initramfs lacks $m"
done
cp "$root/lib/modules/$kver/vmlinuz" "$base.vmlinuz"
cp "$root/boot/initramfs-$kver.img" "$base.initrd.img"
chroot "$root" rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\n' | sort > "$work/packages"
for m in proc sys dev; do umount -l "$root/$m"; done

# ---- 6. ext4, qcow2 -----------------------------------------------------------------------
used_kib=$(du -sxk "$root" | cut -f1)
mkfs.ext4 -q -F -L qube-root -d "$root" "$work/root.raw" "$size" || die "mkfs.ext4 -d failed"
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$out.tmp" && mv "$out.tmp" "$out"
{
  echo "template: fedora-$release"
  echo "kernel-release: $kver"
  echo "qube-guest: $(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$guest_rpm")"
  echo "root-used-bytes: $((used_kib * 1024))"
  echo "qcow2-bytes: $(stat -c %s "$out")"
  echo "build-seconds: $((SECONDS - start))"
  echo "kernel-cmdline: root=/dev/vda qube.name=NAME qube.rw=/dev/vdb qube.volatile=/dev/vdc"
  (cd "$(dirname "$out")" && sha256sum "$(basename "$out")" "$(basename "$base").vmlinuz" "$(basename "$base").initrd.img")
  echo "packages:"; sed 's/^/  /' "$work/packages"
} > "$base.manifest"
say "built $out in $((SECONDS - start)) s; root $((used_kib / 1024)) MiB used"
