#!/usr/bin/env bash
# mmdebstrap customize hook of images/debian/build.sh: runs on the build
# host with the template's root directory as $1, after every package
# (qube-guest included) is installed.
set -euo pipefail
export LC_ALL=C
r=${1:?usage: customize.sh ROOTDIR}
die() { echo "customize.sh: error: $*" >&2; exit 1; }
in_root() { chroot "$r" "$@"; }

# the qube's user: uid 1000, home on the private volume (/rw/home/user,
# made by qube-guest-setup at first boot), root through sudo as in Qubes
in_root useradd -M -u 1000 -U -d /home/user -s /bin/bash user
echo 'user ALL=(ALL:ALL) NOPASSWD: ALL' > "$r/etc/sudoers.d/qube-user"
chmod 0440 "$r/etc/sudoers.d/qube-user"

# root: the whole of /dev/vda (an AppVM's root is a throw-away overlay)
cat > "$r/etc/fstab" <<'EOF2'
# qube template: root is the whole virtio disk /dev/vda; /rw, /home and swap
# come from qube-guest-setup.service (kernel command line qube.rw=, qube.volatile=)
/dev/vda  /  ext4  defaults,errors=remount-ro  0  1
EOF2
echo qube > "$r/etc/hostname"

# network (a template being updated; AppVMs have none unless their netvm
# says so): DHCP on any virtio NIC, never waited for at boot
cat > "$r/etc/systemd/network/80-qube.network" <<'EOF2'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF2
in_root systemctl enable systemd-networkd.service systemd-resolved.service
# not wanted in a qube: waiting for a network it may not have, prompts of
# systemd-firstboot (every AppVM boot is a first boot: its root is fresh),
# unattended apt runs (templates are updated by `qubectl template update`)
in_root systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer
# the units qube-guest installed: enabled by its postinst, checked here
for u in qube-agent.service qube-guest-setup.service; do
  in_root systemctl is-enabled "$u" >/dev/null || die "$u is not enabled after installing qube-guest"
done

# what build.sh checks and records
mkdir -p "$r/var/lib/qube-image"
kver=$(cd "$r/lib/modules" && ls)
in_root lsinitramfs "/boot/initrd.img-$kver" | grep '\.ko' > "$r/var/lib/qube-image/initramfs-modules" ||
  die "lsinitramfs /boot/initrd.img-$kver lists no modules"
sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$r/lib/modules/$kver/modules.builtin" > "$r/var/lib/qube-image/builtin-modules"
in_root dpkg-query -W -f '${Package} ${Version}\n' > "$r/var/lib/qube-image/packages"

# nothing downloaded stays in the template
rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
rm -rf "$r"/var/lib/apt/lists/*
mkdir -p "$r/var/lib/apt/lists/partial"
