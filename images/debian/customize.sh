#!/usr/bin/env bash
# mmdebstrap customize hook of images/debian/build.sh: runs on the build
# host with the base root directory as $1, after every package but
# qube-guest is installed (qube-guest and the checks: finish.sh).
set -euo pipefail
export LC_ALL=C
r=${1:?usage: customize.sh ROOTDIR}
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

# downloaded packages are in build.sh's cache by now; the apt lists stay
# in the base for finish.sh (which removes them)
rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
