#!/usr/bin/env bash
# libqvmm against a real libvirtd, QEMU and guest kernel (see qvmm-guest.c
# for what is checked).  The test kills libvirtd on purpose, so it never
# uses the host's: it runs in a private mount namespace where tmpfs hides
# /run/libvirt (sockets, pid files, running-domain state) and
# /etc/libvirt/qemu (persistent domains and autostart networks), and starts
# its own virtlogd and libvirtd there; it stops only those and the domains
# it made.  Skips (77) without root, unshare, QEMU or libvirtd.
#   qvmm-guest-test.sh MESON_BUILD_ROOT QVMM_GUEST QUBE_VSOCKD [--bench RUNS]
# With --bench, the benchmark instead: RUNS alternating starts through
# libvirt and QEMU started directly (tests/lib/qemu-guest.sh), same kernel,
# initramfs, disk and memory, each timed to the agent answering.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../../tests/lib

if [ "${QVMM_GUEST_NS:-}" != 1 ]; then
  build=${1:?usage: qvmm-guest-test.sh BUILD QVMM_GUEST QUBE_VSOCKD}
  : "${2:?}" "${3:?}"
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root (a private libvirtd for qemu:///system)"; exit 77
  fi
  for p in qemu-system-x86_64 libvirtd virtlogd unshare python3; do
    if ! command -v "$p" >/dev/null; then
      echo "SKIP: $p not installed (scripts/install-deps.sh installs it)"; exit 77
    fi
  done
  if ! unshare -m true 2>/dev/null; then
    echo "SKIP: cannot make a mount namespace here (unshare -m)"; exit 77
  fi
  img=$("$lib/guest-image.sh" --build-dir "$build")
  scratch=$(mktemp -d /tmp/qvmm.XXXXXX)
  trap 'rm -rf "$scratch"' EXIT
  # QEMU runs as libvirt-qemu: everything it opens lives in a scratch
  # directory it can traverse; libvirt chowns the files it is given
  chmod 0755 "$scratch"
  mkdir "$scratch/img"
  for f in vmlinux vmlinuz initramfs.cpio.gz; do
    [ -f "$img/$f" ] && cp "$img/$f" "$scratch/img/"
  done
  rc=0
  QVMM_GUEST_NS=1 QVMM_SCRATCH=$scratch unshare -m "$0" "$@" || rc=$?
  exit "$rc"
fi

# ---- inside the private mount namespace ----
qvmm_guest=$2 vsockd=$3 scratch=$QVMM_SCRATCH
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run/libvirt
mount -t tmpfs -o mode=0700 tmpfs /etc/libvirt/qemu
mkdir -p /var/log/libvirt/qemu
# /dev/kvm as udev makes it (0660 root:kvm), in this namespace only: when
# QEMU's user cannot open it, libvirt 9.0 finds its cached QEMU
# capabilities ("KVM was enabled when probing") invalid on every lookup and
# re-probes QEMU each time: a domain start took 57 s instead of 0.9 s here.
# (KVM stays unusable for guests; the accelerator is still chosen by probe.)
if [ -c /dev/kvm ] && [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ] && getent group kvm >/dev/null; then
  mkdir /run/libvirt/qvmm-dev
  mknod -m 0660 /run/libvirt/qvmm-dev/kvm c "$((0x$(stat -c %t /dev/kvm)))" "$((0x$(stat -c %T /dev/kvm)))"
  chgrp kvm /run/libvirt/qvmm-dev/kvm
  mount --bind /run/libvirt/qvmm-dev/kvm /dev/kvm
  echo "note: /dev/kvm is $(stat -c '%U:%G %a' /run/libvirt/qvmm-dev/kvm) in the test namespace (host: not group kvm 0660)"
fi

cat > "$scratch/start-libvirtd" <<'EOS'
#!/usr/bin/env bash
# (re)starts this namespace's libvirtd; virtlogd once
set -euo pipefail
if ! [ -f /run/libvirt/virtlogd.pid ] || ! kill -0 "$(cat /run/libvirt/virtlogd.pid)" 2>/dev/null; then
  virtlogd -d -p /run/libvirt/virtlogd.pid
fi
rm -f /run/libvirt/libvirt-sock
libvirtd -d -p /run/libvirt/libvirtd.pid
for _ in $(seq 100); do
  [ -S /run/libvirt/libvirt-sock ] && exit 0
  sleep 0.1
done
echo "start-libvirtd: no /run/libvirt/libvirt-sock after 10 s" >&2
exit 1
EOS
chmod 0755 "$scratch/start-libvirtd"

cleanup() {
  if [ -S /run/libvirt/libvirt-sock ]; then
    for d in $(virsh -c qemu:///system list --name 2>/dev/null | grep '^qube-vmmtest' || true); do
      virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    done
  fi
  for p in libvirtd virtlogd; do
    if [ -f "/run/libvirt/$p.pid" ]; then
      kill "$(cat "/run/libvirt/$p.pid")" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
"$scratch/start-libvirtd"
bench=()
if [ "${4:-}" = --bench ]; then
  bench=(--bench "${5:?--bench needs a number of runs}" "$lib/qemu-guest.sh")
fi
"$qvmm_guest" "$scratch/img" "$scratch" "$vsockd" "$lib/hybrid-wait.py" "$scratch/start-libvirtd" \
  "${bench[@]}"
