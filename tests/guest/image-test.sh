#!/usr/bin/env bash
# Checks images/minimal/build.sh itself:
#  - two builds with the same inputs give byte-identical vmlinuz, vmlinux
#    and initramfs (the second under another umask and TMPDIR, and with
#    busybox from the host's package instead of the cached .deb);
#  - the second build runs from the cache: it prints "cache hit" and never
#    calls apt-get (an apt-get that fails on any call is first in PATH);
#  - a dynamically linked --add program gets its libraries and runs in the
#    guest (one boot, compressed vmlinuz, with a qcow2 disk that qube.rw=none
#    leaves unmounted and the guest then mounts by hand);
#  - errors: an unknown module (named with file:line), a bad module name, a
#    built-in module (skipped, reported), --offline with nothing cached --
#    and a failed build leaves the output directory untouched.
#   image-test.sh MESON_BUILD_ROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lib=$top/tests/lib
builder=$top/images/minimal/build.sh
build=${1:?usage: image-test.sh MESON_BUILD_ROOT}

for tool in qemu-system-x86_64 qemu-img mkfs.ext4; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (scripts/install-deps.sh installs it)"
    exit 77
  fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qube-image-test.XXXXXX")
qpid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid"; wait "$qpid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dyn=/usr/bin/env
readelf -l "$dyn" | grep -q 'Requesting program interpreter' || fail "$dyn is not dynamically linked; pick another program"
args=(--build-dir "$build" --add "$dyn:/usr/bin/coreutils-env")

# ---- build 1 (may download) and build 2 (must not) ------------------------
# Build 1 takes busybox from busybox-static's .deb, build 2 from the host's
# installed busybox-static: the same version must give the same image.  (If
# the host's installed version is not apt's candidate, both use the host's.)
b1=()
inst=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
cand=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
if [ -n "$inst" ] && [ "$inst" = "$cand" ]; then
  b1=(--busybox-deb)
else
  echo "note: installed busybox-static '$inst' is not the candidate '$cand'; both builds use the host's"
fi
"$builder" --output "$tmp/out1" "${args[@]}" "${b1[@]}" > "$tmp/build1.log" 2>&1 ||
  { cat "$tmp/build1.log" >&2; fail "first build failed"; }

mkdir "$tmp/shim" "$tmp/tmpdir2"
cat > "$tmp/shim/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >> "$tmp/apt-get-calls"
exit 1
EOF
chmod +x "$tmp/shim/apt-get"
(umask 077; PATH="$tmp/shim:$PATH" TMPDIR="$tmp/tmpdir2" \
  "$builder" --output "$tmp/out2" "${args[@]}") > "$tmp/build2.log" 2>&1 ||
  { cat "$tmp/build2.log" >&2; fail "second (cached) build failed"; }
[ ! -e "$tmp/apt-get-calls" ] || fail "second build called: $(cat "$tmp/apt-get-calls")"
grep -q 'cache hit: linux-image-' "$tmp/build2.log" || { cat "$tmp/build2.log" >&2; fail "second build did not report a cache hit"; }
for f in vmlinuz vmlinux initramfs.cpio.gz; do
  a=$(sha256sum < "$tmp/out1/$f" | cut -d' ' -f1)
  b=$(sha256sum < "$tmp/out2/$f" | cut -d' ' -f1)
  [ "$a" = "$b" ] || fail "$f differs between two builds: $a vs $b"
  echo "reproducible: $f sha256 $a"
done
[ -z "$(find "$tmp/tmpdir2" -mindepth 1)" ] || fail "build left files in its TMPDIR"

# ---- the dynamically linked program and its libraries ---------------------
# (this boot uses the compressed vmlinuz; the other guest tests boot vmlinux)
[ -f "$tmp/out1/vmlinux" ] || fail "no uncompressed PVH kernel vmlinux in the output"
grep -q '^libraries: .*libc.so.6' "$tmp/out1/manifest.txt" || fail "manifest lists no libc for $dyn"
gzip -dc "$tmp/out1/initramfs.cpio.gz" | cpio -t --quiet > "$tmp/list"
grep -qx 'usr/bin/coreutils-env' "$tmp/list" || fail "coreutils-env not in the initramfs"
# a qcow2 disk (qemu-img): qube.rw=none leaves it alone, the guest mounts it by hand
mkdir "$tmp/seed"
echo "qcow2-content-$$" > "$tmp/seed/hello"
truncate -s 16M "$tmp/disk.raw"
mkfs.ext4 -q -F -d "$tmp/seed" "$tmp/disk.raw"
qemu-img convert -q -f raw -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"
"$lib/qemu-guest.sh" --kernel "$tmp/out1/vmlinuz" --initrd "$tmp/out1/initramfs.cpio.gz" \
  --serial-log "$tmp/serial.log" --disk "$tmp/disk.qcow2" --disk-format qcow2 \
  --append 'qube.agent=0 qube.bogus=1 qube.rw=none qube.run="coreutils-env --version | head -n1" qube.run="coreutils-env false" qube.run="grep -c /rw /proc/mounts; mount -t ext4 -o ro /dev/vda /mnt && tr a-z A-Z < /mnt/hello" qube.poweroff' &
qpid=$!
"$lib/wait-for-marker.sh" "$tmp/serial.log" "qube-init: poweroff" 240 "$qpid" ||
  fail "guest with the dynamic program did not power off"
rc=0; wait "$qpid" || rc=$?; qpid=
[ "$rc" = 0 ] || fail "QEMU exited with $rc"
grep -q '^env (GNU coreutils)' "$tmp/serial.log" || { cat "$tmp/serial.log" >&2; fail "dynamic program did not run in the guest"; }
grep -q '^qube-init: run\[2\] exit 1' "$tmp/serial.log" || { cat "$tmp/serial.log" >&2; fail "dynamic program did not exec false"; }
grep -q 'qube-init: private disk: disabled' "$tmp/serial.log" || fail "qube.rw=none not honoured"
grep -A1 -F "run[3] start" "$tmp/serial.log" | tail -n1 | tr -d "\r" | grep -qx "0" || { cat "$tmp/serial.log" >&2; fail "qube.rw=none: something is mounted on /rw"; }
grep -q "^QCOW2-CONTENT-$$" "$tmp/serial.log" || { cat "$tmp/serial.log" >&2; fail "qcow2 disk not readable in the guest"; }
grep -q 'qube-init: agent disabled' "$tmp/serial.log" || fail "qube.agent=0 not honoured"
grep -q "qube-init: warning: unknown option 'qube.bogus=1' ignored" "$tmp/serial.log" || fail "unknown qube.* option not reported"

# ---- errors ------------------------------------------------------------------
# expect_error NAME PATTERN ARGS...: the build fails, says PATTERN, writes nothing
expect_error() {
  local name=$1 pattern=$2; shift 2
  local out=$tmp/err-$name
  mkdir "$out"
  if "$builder" --output "$out" "$@" > "$tmp/$name.log" 2>&1; then
    fail "$name: build succeeded"
  fi
  grep -qF -- "$pattern" "$tmp/$name.log" || { cat "$tmp/$name.log" >&2; fail "$name: no '$pattern' in the error"; }
  [ -z "$(ls -A "$out")" ] || fail "$name: failed build wrote $(ls "$out")"
  echo "rejected as expected ($name): $(grep 'error' "$tmp/$name.log" | head -n1)"
}
printf '# test list\nvirtio_pci\nno_such_module_xyz\n' > "$tmp/unknown.list"
expect_error unknown-module "unknown.list:3) is neither built into" --modules "$tmp/unknown.list"
printf 'virtio_pci\nvirtio/pci\n' > "$tmp/badname.list"
expect_error bad-name "badname.list:2: bad module name 'virtio/pci'" --modules "$tmp/badname.list"
printf '# nothing\n\n' > "$tmp/empty.list"
expect_error empty-list "lists no modules" --modules "$tmp/empty.list"
mkdir -p "$tmp/emptycache"
expect_error offline-uncached "--offline and linux-image-" --offline --cache "$tmp/emptycache"
expect_error bad-add "--add: $tmp/nonexistent is not a file" --add "$tmp/nonexistent"
expect_error bad-kernel-package "package linux-image-no-such-xyz unknown to apt" --kernel-package linux-image-no-such-xyz

# a built-in module is reported and skipped, not an error; dependencies
# come before the modules needing them
printf 'vmw_vsock_virtio_transport\nunix\n' > "$tmp/builtin.list"
"$builder" --list-modules --modules "$tmp/builtin.list" > "$tmp/builtin.log" 2>&1 ||
  { cat "$tmp/builtin.log" >&2; fail "module list with a built-in module rejected"; }
grep -qx 'built in: unix' "$tmp/builtin.log" || { cat "$tmp/builtin.log" >&2; fail "built-in module not reported"; }
order=$(sed -n 's/^load order: //p' "$tmp/builtin.log")
case " $order " in
  *" vsock "*"vmw_vsock_virtio_transport_common "*" vmw_vsock_virtio_transport "*) ;;
  *) fail "load order '$order' does not put vsock dependencies first" ;;
esac

echo "PASS: reproducible, cached (no apt-get), dynamic --add runs in the guest, errors rejected"
