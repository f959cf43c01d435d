#!/usr/bin/env bash
# Installs everything the build, the demo and the test suite need, from
# Debian's archive.  Safe to run again: apt-get skips what is present.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 1
fi
pkgs=(
  build-essential meson ninja-build pkg-config python3
  clang llvm libclang-rt-14-dev
  libjson-c-dev libcmocka-dev libseccomp-dev libxml2-dev libvirt-dev
  qemu-system-x86 qemu-utils busybox-static cpio kmod e2fsprogs xz-utils binutils
  procps
  # qubed and vmm/: libvirt daemon (creates the libvirt-qemu user), SQLite
  libvirt-daemon-system libsqlite3-dev sqlite3
  # compositor/: wlroots 0.15, headless tests with real clients and grim
  libwlroots-dev libwayland-dev wayland-protocols libxkbcommon-dev libpixman-1-dev
  waypipe grim foot weston wl-clipboard
  # images/debian and packaging/
  mmdebstrap debootstrap dpkg-dev debhelper lintian rpm fakeroot
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
