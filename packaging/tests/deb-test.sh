#!/usr/bin/env bash
# The Debian packages, built and installed for real (suite packaging, slow):
#  1. packaging/debian/build-debs.sh builds qube-host, qube-guest and
#     qube-policy from this tree (dpkg-buildpackage), each with its key files;
#  2. lintian reports no error and no warning (justified ones are overridden
#     in packaging/debian/*.lintian-overrides, each with its reason);
#  3. a clean Debian 12 chroot (mmdebstrap, variant apt) installs them with
#     `apt-get install ./qube-*.deb`; inside it: qubectl --version, qubectl
#     policy lint on the shipped policy, the qube group, qubed.service and the
#     guest units enabled, the policy a conffile, every file under qube's
#     paths owned by a package, and `dpkg -r` then `dpkg -P` leave none of
#     the packages' files behind.
# Slow (a few minutes; the chroot downloads libvirt and QEMU once, then
# they come from ${QUBE_CACHE_DIR:-/var/cache/qube}/debian-bookworm): runs
# only with QUBE_SLOW_TESTS=1, as root, in a build without sanitizers.
#   deb-test.sh SOURCE_ROOT [SANITIZE]
set -euo pipefail
top=${1:?usage: deb-test.sh SOURCE_ROOT [SANITIZE]}
sanitize=${2:-none}
if [ "${QUBE_SLOW_TESTS:-0}" != 1 ]; then
  echo "SKIP: slow test (builds and installs the .debs, several minutes): set QUBE_SLOW_TESTS=1"; exit 77
fi
[ "$sanitize" = none ] || { echo "SKIP: runs in the build without sanitizers (the package build has its own flags)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (mmdebstrap --mode=root, chroot)"; exit 77; }
for t in dpkg-buildpackage dh lintian mmdebstrap; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done
cache=${QUBE_CACHE_DIR:-/var/cache/qube}/debian-bookworm/archives
mkdir -p "$cache"
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-debtest.XXXXXX")
chmod 0755 "$T"
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# ---- 1. build --------------------------------------------------------------
t0=$SECONDS
if "$top/packaging/debian/build-debs.sh" "$T/debs" > "$T/debs.list" 2> "$T/build.err"; then
  ok "build-debs.sh built $(wc -l < "$T/debs.list") .debs"
else
  cat "$T/build.err" >&2; echo "FATAL: package build failed" >&2; exit 1
fi
t_build=$((SECONDS - t0))
if grep -E '(warning|error):' "$T/debs/build.log" > "$T/warnings"; then
  echo "# compiler warnings of the package build (Debian's flags; -Werror off there):"
  sed 's/^/#   /' "$T/warnings"
fi
for p in host guest policy; do
  check "qube-$p .deb built" test -n "$(ls "$T"/debs/qube-${p}_*_amd64.deb 2>/dev/null)"
done

# ---- 2. lintian ------------------------------------------------------------
t0=$SECONDS
lintian --fail-on none "$T"/debs/*.changes > "$T/lintian.txt" 2>&1 || true
t_lintian=$((SECONDS - t0))
sed 's/^/# lintian: /' "$T/lintian.txt"
check "lintian: no error or warning tag" bash -c "! grep -qE '^(E|W): ' '$T/lintian.txt'"

# ---- 3. clean chroot --------------------------------------------------------
mkdir "$T/pkgs"
cp "$T"/debs/qube-host_*.deb "$T"/debs/qube-guest_*.deb "$T"/debs/qube-policy_*.deb "$T/pkgs/"
cat > "$T/inside.sh" <<'EOF2'
#!/bin/bash
# runs in the chroot; one result line per check: "ok NAME" or "fail NAME: why"
set -uo pipefail
res() { if [ "$1" = 0 ]; then echo "ok $2"; else echo "fail $2${3:+: $3}"; fi; }
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d
cd /tmp/pkgs
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ./qube-*.deb > /tmp/apt.log 2>&1
rc=$?; res $rc "apt-get install ./qube-*.deb" "$(tail -n 5 /tmp/apt.log | tr '\n' ' ')"
v=$(qubectl --version 2>&1); res $([ "$v" = "qubectl 0.1.0" ]; echo $?) "qubectl --version says 'qubectl 0.1.0'" "$v"
out=$(qubectl policy lint 2>&1); res $? "qubectl policy lint (the shipped /etc/qube/policy.d)" "$out"
getent group qube > /dev/null; res $? "the qube system group exists"
gid=$(getent group qube | cut -d: -f3); res $([ -n "$gid" ] && [ "$gid" -lt 1000 ]; echo $?) "the qube group is a system group (gid $gid)"
for u in qubed.service qube-agent.service qube-guest-setup.service; do
  s=$(systemctl is-enabled "$u" 2>&1); res $([ "$s" = enabled ]; echo $?) "$u is enabled" "$s"
done
dpkg-query -W -f '${Conffiles}\n' qube-policy | grep -q ' /etc/qube/policy.d/90-default.policy '
res $? "/etc/qube/policy.d/90-default.policy is a conffile of qube-policy"
dpkg-query -W -f '${Conffiles}\n' qube-guest | grep -q ' /etc/qube/rpc/qube.VMShell '
res $? "/etc/qube/rpc/qube.VMShell is a conffile of qube-guest"
dpkg -L qube-host qube-guest qube-policy | sort -u > /tmp/listed
while IFS= read -r f; do [ -d "$f" ] || [ -e "$f" ] || echo "$f"; done < /tmp/listed > /tmp/absent
res $([ ! -s /tmp/absent ]; echo $?) "every file the packages list is installed" "$(head -n 3 /tmp/absent | tr '\n' ' ')"
find /etc/qube /usr/lib/qube /lib/systemd/system/qube* /usr/bin/qube* /usr/sbin/qube* \
     /usr/share/man/man*/qube* /usr/share/initramfs-tools/hooks/qube* /usr/share/wayland-sessions/qube* \
     ! -type d 2>/dev/null | sort > /tmp/found
while IFS= read -r f; do dpkg -S "$f" > /dev/null 2>&1 || echo "$f"; done < /tmp/found > /tmp/unowned
res $([ -s /tmp/found ] && [ ! -s /tmp/unowned ]; echo $?) "every file under qube's paths ($(wc -l < /tmp/found)) is owned by a package" "$(tr '\n' ' ' < /tmp/unowned)"
grep -vx -e /etc/qube/policy.d/90-default.policy -e /etc/qube/rpc/qube.VMShell /tmp/listed > /tmp/nonconf
dpkg -r qube-host qube-guest qube-policy > /tmp/remove.log 2>&1; res $? "dpkg -r qube-host qube-guest qube-policy" "$(tail -n 3 /tmp/remove.log | tr '\n' ' ')"
while IFS= read -r f; do [ -d "$f" ] || [ ! -e "$f" ] || echo "$f"; done < /tmp/nonconf > /tmp/left
res $([ ! -s /tmp/left ]; echo $?) "after dpkg -r no file of the packages is left but the conffiles" "$(head -n 5 /tmp/left | tr '\n' ' ')"
res $([ -e /etc/qube/policy.d/90-default.policy ]; echo $?) "after dpkg -r the policy conffile stays (until purge)"
dpkg -P qube-host qube-guest qube-policy > /tmp/purge.log 2>&1; res $? "dpkg -P qube-host qube-guest qube-policy" "$(tail -n 3 /tmp/purge.log | tr '\n' ' ')"
res $([ ! -e /etc/qube ]; echo $?) "after dpkg -P /etc/qube is gone" "$(find /etc/qube 2>/dev/null | tr '\n' ' ')"
rm -f /usr/sbin/policy-rc.d
EOF2
chmod 0755 "$T/inside.sh"
t0=$SECONDS
# shellcheck disable=SC2016  # $1 is mmdebstrap's hook argument
if ! mmdebstrap --variant=apt --mode=root --format=directory --skip=download/empty \
     --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
     --setup-hook="sync-in $cache /var/cache/apt/archives" \
     --customize-hook="copy-in $T/pkgs /tmp" \
     --customize-hook="copy-in $T/inside.sh /tmp" \
     --customize-hook='chroot "$1" /tmp/inside.sh > "$1"/tmp/results 2>&1' \
     --customize-hook="sync-out /var/cache/apt/archives $cache" \
     --customize-hook="copy-out /tmp/results $T" \
     bookworm "$T/chroot" > "$T/mmdebstrap.log" 2>&1; then
  tail -n 30 "$T/mmdebstrap.log" >&2
  echo "FATAL: mmdebstrap of the test chroot failed" >&2; exit 1
fi
t_chroot=$((SECONDS - t0))
check "the chroot checks ran" test -s "$T/results"
while IFS= read -r line; do
  case $line in
    ok\ *) ok "chroot: ${line#ok }" ;;
    fail\ *) not_ok "chroot: ${line#fail }" ;;
    *) echo "# chroot: $line" ;;
  esac
done < "$T/results"
rm -rf "$T/chroot"

echo "timing: package build ${t_build} s; lintian ${t_lintian} s; chroot create + install + checks ${t_chroot} s"
if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
