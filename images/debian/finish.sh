#!/usr/bin/env bash
# Second step of images/debian/build.sh, on the build host with the base
# root directory (customize.sh's result) as ROOT, in a mount namespace
# where ROOT has /proc, /sys and /dev: installs qube-guest, remakes the
# initramfs with its hook, checks the units and records what build.sh
# checks and writes into the manifest; leaves no downloaded file behind.
#   finish.sh ROOT DEB      (DEB: the qube-guest .deb, a path inside ROOT)
set -euo pipefail
export LC_ALL=C
r=${1:?usage: finish.sh ROOT DEB}
deb=${2:?usage: finish.sh ROOT DEB}
die() { echo "finish.sh: error: $*" >&2; exit 1; }
in_root() { chroot "$r" "$@"; }
[ -f "$r$deb" ] || die "$deb: not in $r"

# qube-guest by apt, as a user would install it: its dependencies are in
# the base (packages.list); no service is started in the chroot
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 0755 "$r/usr/sbin/policy-rc.d"
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -q --no-install-recommends \
  -o Dpkg::Use-Pty=0 "$deb" || die "apt-get install $deb failed (a dependency missing from packages.list?)"
rm -f "$r/usr/sbin/policy-rc.d"

# the initramfs again, now with qube-guest's hook (virtio, ext4, vsock)
kver=$(cd "$r/lib/modules" && ls)
[ "$(echo "$kver" | wc -w)" = 1 ] || die "expected one kernel, found: $kver"
in_root update-initramfs -u -k "$kver"

# the units qube-guest installed: enabled by its postinst, checked here
for u in qube-agent.service qube-guest-setup.service; do
  in_root systemctl is-enabled "$u" >/dev/null || die "$u is not enabled after installing qube-guest"
done

# what build.sh checks and records
mkdir -p "$r/var/lib/qube-image"
in_root lsinitramfs "/boot/initrd.img-$kver" | grep '\.ko' > "$r/var/lib/qube-image/initramfs-modules" ||
  die "lsinitramfs /boot/initrd.img-$kver lists no modules"
sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$r/lib/modules/$kver/modules.builtin" > "$r/var/lib/qube-image/builtin-modules"
# shellcheck disable=SC2016  # dpkg-query's format
in_root dpkg-query -W -f '${Package} ${Version}\n' > "$r/var/lib/qube-image/packages"

# nothing downloaded stays in the template
rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
rm -rf "$r"/var/lib/apt/lists/*
mkdir -p "$r/var/lib/apt/lists/partial"
