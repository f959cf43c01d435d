#!/usr/bin/env bash
# The Debian packages, built and installed for real (suite packaging, slow):
#  1. packaging/debian/build-debs.sh builds qube-host, qube-guest and
#     qube-policy from this tree (dpkg-buildpackage), each with its key files;
#  2. lintian reports no error and no warning (justified ones are overridden
#     in packaging/debian/*.lintian-overrides, each with its reason);
#  3. a clean Debian 12 chroot (mmdebstrap, variant apt) installs them with
#     `apt-get install ./qube-*.deb`; inside it: qubectl --version, qubectl
#     policy lint on the shipped policy, the qube group, qubed.service and the
#     guest units enabled, the policy a conffile, the links of the
#     guest's services and file-copy programs, every file that installing
#     the .debs adds to the file system owned by a package (or a systemd
#     enablement link), `dpkg -r` leaving only the conffile and `dpkg -P`
#     leaving the file system as it was before.
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
cdir=${QUBE_CACHE_DIR:-/var/cache/qube}
cache=$cdir/debian-bookworm/archives
mkdir -p "$cache"
cdir=$(cd "$cdir" && pwd) cache=$(cd "$cache" && pwd)
arch_lock=$cdir/debian-bookworm/.archives.lock
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-debtest.XXXXXX")
chmod 0755 "$T"
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# ---- 1. build --------------------------------------------------------------
t0=$SECONDS
# (images/debian/build.sh builds the same .debs of the same tree: the
# first of the two builds them, the other takes them from the cache)
if "$top/packaging/debian/build-debs.sh" "$T/debs" --cache "$cdir/debs-build" > "$T/debs.list" 2> "$T/build.err"; then
  sed 's/^/# /' "$T/build.err"
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
# the guest side (an agent serving /etc/qube/rpc) belongs in templates:
# installing the host must never bring it along
host_debs=("$T"/debs/qube-host_*_amd64.deb)
check "qube-host neither depends on, recommends nor suggests qube-guest" \
  bash -c "! dpkg-deb -f '${host_debs[0]}' Pre-Depends Depends Recommends Suggests | grep -q qube-guest"

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
t0=$SECONDS
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ./qube-*.deb > /tmp/apt.log 2>&1
rc=$?; res $rc "apt-get install ./qube-*.deb" "$(tail -n 5 /tmp/apt.log | tr '\n' ' ')"
echo "# apt-get install ./qube-*.deb: $(grep -c '^Setting up ' /tmp/apt.log) packages set up in $((SECONDS - t0)) s"
v=$(qubectl --version 2>&1); res $([ "$v" = "qubectl 0.1.0" ]; echo $?) "qubectl --version says 'qubectl 0.1.0'" "$v"
out=$(qubectl policy lint 2>&1); res $? "qubectl policy lint (the shipped /etc/qube/policy.d)" "$out"
getent group qube > /dev/null; res $? "the qube system group exists"
gid=$(getent group qube | cut -d: -f3); res $([ -n "$gid" ] && [ "$gid" -lt 1000 ]; echo $?) "the qube group is a system group (gid $gid)"
for u in qubed.service qube-agent.service qube-guest-setup.service qube-updates-proxy.socket; do
  s=$(systemctl is-enabled "$u" 2>&1); res $([ "$s" = enabled ]; echo $?) "$u is enabled" "$s"
done
dpkg-query -W -f '${Conffiles}\n' qube-policy | grep -q ' /etc/qube/policy.d/90-default.policy '
res $? "/etc/qube/policy.d/90-default.policy is a conffile of qube-policy"
# template updates: the host's proxy and its allow-list, the guest's apt
# configuration (its helper says DIRECT outside a TemplateVM, as here)
dpkg-query -W -f '${Conffiles}\n' qube-host | grep -q ' /etc/qube/updates-proxy.conf '
res $? "/etc/qube/updates-proxy.conf is a conffile of qube-host"
l=$(readlink /etc/qube/rpc-host/qube.UpdatesProxy); res $([ "$l" = /usr/libexec/qube/qube-updates-proxy ] && [ -x "$l" ]; echo $?) \
  "/etc/qube/rpc-host/qube.UpdatesProxy links to the installed qube-updates-proxy" "-> $l"
dpkg-query -W -f '${Conffiles}\n' qube-guest | grep -q ' /etc/apt/apt.conf.d/01qube-updates-proxy '
res $? "/etc/apt/apt.conf.d/01qube-updates-proxy is a conffile of qube-guest"
p=$(apt-config dump | grep '^Acquire::http::Proxy-Auto-Detect ')
res $([ "$p" = 'Acquire::http::Proxy-Auto-Detect "/usr/lib/qube/qube-guest-apt-proxy";' ]; echo $?) "apt sees qube-guest's proxy helper" "$p"
p=$(/usr/lib/qube/qube-guest-apt-proxy http://deb.debian.org/debian); res $([ "$p" = DIRECT ]; echo $?) "the helper says DIRECT outside a TemplateVM" "$p"
for s in qube.Exec qube.VMShell; do
  l=$(readlink "/etc/qube/rpc/$s"); res $([ "$l" = /usr/libexec/qube/qube-exec ] && [ -x "$l" ]; echo $?) \
    "/etc/qube/rpc/$s links to the installed /usr/libexec/qube/qube-exec" "-> $l"
done
l=$(readlink /etc/qube/rpc/qube.Filecopy); res $([ "$l" = /usr/bin/qube-filecopy-receive ] && [ -x "$l" ]; echo $?) \
  "/etc/qube/rpc/qube.Filecopy links to the installed qube-filecopy-receive" "-> $l"
l=$(readlink /etc/qube/rpc/qube.OpenInVM); res $([ "$l" = /usr/bin/qube-open-in-dvm ] && [ -x "$l" ]; echo $?) \
  "/etc/qube/rpc/qube.OpenInVM links to the installed qube-open-in-dvm" "-> $l"
for b in qube-copy qube-copy-to qube-move qube-move-to qube-filecopy-receive qube-filecopy-send qube-open-in-dvm; do
  dpkg -S "/usr/bin/$b" 2>/dev/null | grep -q '^qube-guest: '; res $? "qube-guest has /usr/bin/$b"
done
dpkg -L qube-host qube-guest qube-policy | sed '/^$/d' | sort -u > /tmp/listed
while IFS= read -r f; do [ -d "$f" ] || [ -e "$f" ] || [ -L "$f" ] || echo "$f"; done < /tmp/listed > /tmp/absent
res $([ ! -s /tmp/absent ]; echo $?) "every file the packages list is installed" "$(head -n 3 /tmp/absent | tr '\n' ' ')"

# Ownership and removal, measured on the whole file system: purge the
# packages (their dependencies stay), list every file, install the .debs
# again, and compare.  Left out of the lists: dpkg's and apt's own state,
# logs, and the scratch directories.
snap() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
       -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache -o -path /var/log \) -prune \
       -o ! -type d -print | sort > "$1"
}
dpkg -P qube-host qube-guest qube-policy > /tmp/purge0.log 2>&1; res $? "dpkg -P after the first install" "$(tail -n 3 /tmp/purge0.log | tr '\n' ' ')"
snap /tmp/s0
dpkg -i qube-*.deb > /tmp/reinstall.log 2>&1; res $? "dpkg -i qube-*.deb again (dependencies present)" "$(tail -n 3 /tmp/reinstall.log | tr '\n' ' ')"
snap /tmp/s1
comm -13 /tmp/s0 /tmp/s1 > /tmp/new
# what the maintainer scripts make and own outside dpkg's lists: the links
# and state of `systemctl enable` (deb-systemd-helper; removed at purge)
grep -v -e '^/etc/systemd/system/[a-z-]*\.target\.wants/qube' -e '^/etc/systemd/system/[a-z-]*\.target\.wants/qubed\.service$' \
     -e '^/var/lib/systemd/deb-systemd-helper-enabled/' /tmp/new > /tmp/new-files
# owned(PATH): dpkg lists PATH, or its alias outside /usr (merged /usr:
# a package's /lib/systemd/system/X is found as /usr/lib/systemd/system/X)
owned() {
  dpkg -S "$1" > /dev/null 2>&1 && return 0
  case $1 in /usr/lib/*|/usr/bin/*|/usr/sbin/*) dpkg -S "${1#/usr}" > /dev/null 2>&1 ;; *) return 1 ;; esac
}
while IFS= read -r f; do owned "$f" || echo "$f"; done < /tmp/new-files > /tmp/unowned
echo "# the install added $(wc -l < /tmp/new) files: $(wc -l < /tmp/new-files) from the packages, $(( $(wc -l < /tmp/new) - $(wc -l < /tmp/new-files) )) systemd enablement links and state"
res $([ -s /tmp/new-files ] && [ ! -s /tmp/unowned ]; echo $?) "every file the install added ($(wc -l < /tmp/new-files)) is owned by a package" "$(head -n 5 /tmp/unowned | tr '\n' ' ')"
outside=$(grep -v -e '^/usr/' -e '^/etc/qube/' -e '^/lib/systemd/system/' -e '^/etc/systemd/system/' \
          -e '^/var/lib/systemd/deb-systemd-helper-enabled/' -e '^/etc/apt/apt.conf.d/01qube-updates-proxy$' /tmp/new | head -n 5)
res $([ -z "$outside" ]; echo $?) "the install added files only below /usr, /etc/qube and systemd's directories (and qube-guest's apt configuration)" "$outside"
dpkg -r qube-host qube-guest qube-policy > /tmp/remove.log 2>&1; res $? "dpkg -r qube-host qube-guest qube-policy" "$(tail -n 3 /tmp/remove.log | tr '\n' ' ')"
snap /tmp/s2
comm -13 /tmp/s0 /tmp/s2 > /tmp/left
# Debian keeps what `systemctl enable` did until purge, as it keeps
# conffiles (deb-systemd-helper purge runs in postrm purge)
grep -vx -e /etc/qube/policy.d/90-default.policy -e /etc/qube/updates-proxy.conf \
     -e /etc/apt/apt.conf.d/01qube-updates-proxy -e '/var/lib/systemd/deb-systemd-helper-enabled/.*' \
     -e '/etc/systemd/system/[a-z-]*\.target\.wants/qube[a-z-]*\.\(service\|socket\)' /tmp/left > /tmp/left-bad
res $([ ! -s /tmp/left-bad ]; echo $?) "after dpkg -r nothing is left but the conffiles and the enablement links and state ($(wc -l < /tmp/left) files)" "$(head -n 5 /tmp/left-bad | tr '\n' ' ')"
res $([ -e /etc/qube/policy.d/90-default.policy ]; echo $?) "after dpkg -r the policy conffile stays (until purge)"
dpkg -P qube-host qube-guest qube-policy > /tmp/purge.log 2>&1; res $? "dpkg -P qube-host qube-guest qube-policy" "$(tail -n 3 /tmp/purge.log | tr '\n' ' ')"
snap /tmp/s3
res $(cmp -s /tmp/s0 /tmp/s3; echo $?) "after dpkg -P the file system is as before the install" "$(diff /tmp/s0 /tmp/s3 | head -n 5 | tr '\n' ' ')"
res $([ ! -e /etc/qube ]; echo $?) "after dpkg -P /etc/qube is gone" "$(find /etc/qube 2>/dev/null | tr '\n' ' ')"
rm -f /usr/sbin/policy-rc.d
EOF2
chmod 0755 "$T/inside.sh"
t0=$SECONDS
# shellcheck disable=SC2016  # $1 is mmdebstrap's hook argument
if ! mmdebstrap --variant=apt --mode=root --format=directory --skip=download/empty \
     --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
     --setup-hook="flock '$arch_lock' cp -a '$cache/.' \"\$1\"/var/cache/apt/archives/" \
     --customize-hook="copy-in $T/pkgs /tmp" \
     --customize-hook="copy-in $T/inside.sh /tmp" \
     --customize-hook='chroot "$1" /tmp/inside.sh > "$1"/tmp/results 2>&1' \
     --customize-hook="flock '$arch_lock' cp -an \"\$1\"/var/cache/apt/archives/. '$cache/'" \
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
