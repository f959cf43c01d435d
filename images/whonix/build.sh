#!/usr/bin/env bash
# Builds a Whonix-Gateway or Whonix-Workstation template of qube: the
# Debian 12 template recipe (images/debian/build.sh's package set, the
# qube-guest .deb) plus Whonix's repository and the role's meta package, as
# Whonix documents installing Whonix on a Debian base.  Needs root, network
# access to deb.whonix.org, and Whonix's signing key as a file (never
# downloaded by this script: verify it first; its fingerprint must be
# 916B 8D99 C38E AF5E 8ADC  7A2A 8D66 066A 2EEA CCDA).  Not built on the
# project's machines (only Debian's archive is reachable): see
# docs/templates.md.
#
#   images/whonix/build.sh OUT.qcow2 --role gateway|workstation
#        --keyring derivative.asc [--guest-deb FILE] [--size SIZE]
#
# Steps:
#   1. check the keyring's fingerprint (gpg --show-keys);
#   2. mmdebstrap bookworm with Debian's sources and
#      "deb [signed-by=/usr/share/keyrings/derivative.asc]
#       https://deb.whonix.org bookworm main contrib non-free",
#      the Debian template's packages, qube-guest and the role's package
#      (packages.list), with images/debian/customize.sh;
#   3. the same ext4/qcow2 and kernel extraction as images/debian/build.sh.
# Networking: a Whonix-Gateway needs two NICs (external NAT, internal
# 10.152.152.10/18) and the workstation one on the internal network;
# qubed's netvm support provides them (docs/templates.md, Whonix).
set -euo pipefail
umask 022
export LC_ALL=C
prog=images/whonix/build.sh
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "$prog: error: $*" >&2; exit 1; }
fingerprint=916B8D99C38EAF5E8ADC7A2A8D66066A2EEACCDA

out='' role='' keyring='' guest_deb='' size=8G
while [ $# -gt 0 ]; do
  case $1 in
    --role) [ $# -ge 2 ] || die "--role needs a value"; role=$2; shift 2 ;;
    --keyring) [ $# -ge 2 ] || die "--keyring needs a value"; keyring=$2; shift 2 ;;
    --guest-deb) [ $# -ge 2 ] || die "--guest-deb needs a value"; guest_deb=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; shift 2 ;;
    -h|--help) sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$out" ] || die "one OUT.qcow2 only"; out=$1; shift ;;
  esac
done
[ -n "$out" ] || die "usage: build.sh OUT.qcow2 --role gateway|workstation --keyring FILE"
case $out in *.qcow2) ;; *) die "OUT '$out' must end in .qcow2" ;; esac
case $role in gateway|workstation) ;; *) die "--role '$role': gateway or workstation" ;; esac
[ -n "$keyring" ] && [ -f "$keyring" ] || die "--keyring FILE (Whonix's derivative.asc) is required"
[ "$(id -u)" = 0 ] || die "needs root"
for t in mmdebstrap gpg; do command -v "$t" >/dev/null || die "'$t' not found"; done

# ---- 1. the key ----------------------------------------------------------------
got=$(gpg --show-keys --with-colons "$keyring" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }' || true)
[ "$got" = "$fingerprint" ] || die "--keyring $keyring has fingerprint '${got:-none}', not Whonix's $fingerprint"

# ---- 2. packages ---------------------------------------------------------------
role_pkgs=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1)); line=${line%%#*}
  read -r -a f <<<"$line" || true
  [ ${#f[@]} -gt 0 ] || continue
  [ ${#f[@]} -eq 2 ] || die "$here/packages.list:$n: expected 'ROLE PACKAGE'"
  [ "${f[0]}" = "$role" ] && role_pkgs+=("${f[1]}")
done < "$here/packages.list"
[ ${#role_pkgs[@]} -gt 0 ] || die "$here/packages.list names no package for role $role"

# The Debian recipe does the rest; it takes extra sources and packages from
# the environment of this wrapper only (QUBE_EXTRA_*), keyring copied in.
args=("$out")
[ -z "$guest_deb" ] || args+=(--guest-deb "$guest_deb")
args+=(--size "$size")
QUBE_EXTRA_SOURCES="deb [signed-by=/usr/share/keyrings/derivative.asc] https://deb.whonix.org bookworm main contrib non-free" \
QUBE_EXTRA_KEYRING="$keyring" \
QUBE_EXTRA_PACKAGES="${role_pkgs[*]}" \
QUBE_TEMPLATE_NAME="whonix-${role:0:2}-17" \
  exec "$top/images/debian/build.sh" "${args[@]}"
