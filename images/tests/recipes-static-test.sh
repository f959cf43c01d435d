#!/usr/bin/env bash
# Static checks of the template recipes (suite template, fast; nothing is
# built): images/debian, images/fedora, images/whonix.
#  - every script passes `bash -n` (and shellcheck when installed);
#  - Debian: every package of packages.list and gui-packages.list is known
#    to apt here (the same archive the build uses);
#  - Fedora, Whonix: every package name is in the recipe's
#    known-packages.txt (no Fedora or Whonix repository is reachable here;
#    see those files for where the names come from);
#  - each recipe states its steps (--help) and does them: the Fedora one
#    dnf --installroot --releasever, a generic dracut, mkfs.ext4 -d, qcow2;
#    the Whonix one checks Whonix's key fingerprint, adds deb.whonix.org,
#    builds on the Debian recipe;
#  - bad arguments are refused with a message naming them, before anything
#    is done.
#   recipes-static-test.sh SOURCE_ROOT
set -euo pipefail
top=${1:?usage: recipes-static-test.sh SOURCE_ROOT}
img=$top/images
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
names() { sed 's/#.*//' "$1" | awk 'NF { print $NF }'; }

scripts=("$img"/debian/*.sh "$img"/fedora/*.sh "$img"/whonix/*.sh "$img"/debian/tests/*.sh)
for s in "${scripts[@]}"; do
  check "bash -n ${s#"$top"/}" bash -n "$s"
  check "${s#"$top"/} sets -euo pipefail" grep -q '^set -euo pipefail' "$s"
done
if command -v shellcheck >/dev/null; then
  for s in "${scripts[@]}"; do check "shellcheck ${s#"$top"/}" shellcheck -S warning "$s"; done
else
  echo "# shellcheck not installed: only bash -n"
fi

# ---- Debian: names against apt ----------------------------------------------------
if compgen -G '/var/lib/apt/lists/*_Packages*' > /dev/null; then
  for f in packages.list gui-packages.list; do
    bad=()
    for p in $(names "$img/debian/$f"); do
      [ -n "$(apt-cache show --no-all-versions "$p" 2>/dev/null | head -n1)" ] || bad+=("$p")
    done
    check "images/debian/$f: every package is in Debian's archive (apt-cache)${bad:+ (unknown: ${bad[*]})}" test ${#bad[@]} -eq 0
  done
else
  echo "# no apt lists on this machine (apt-get update): Debian package names not checked"
fi

# ---- Fedora, Whonix: names against the recorded lists ---------------------------------
for r in fedora whonix; do
  for f in "$img/$r"/*packages.list; do
    bad=()
    for p in $(names "$f"); do grep -qx -- "$p" "$img/$r/known-packages.txt" || bad+=("$p"); done
    check "images/$r/$(basename "$f"): every package is a known $r name${bad:+ (unknown: ${bad[*]})}" test ${#bad[@]} -eq 0
  done
done
# a Debian-only name in the Fedora list would be a typical slip
deb_only=()
for p in $(names "$img/fedora/packages.list"); do
  case $p in iproute2|procps|systemd-sysv|initramfs-tools|linux-image-*|fonts-*) deb_only+=("$p") ;; esac
done
check "images/fedora/packages.list has no Debian package names${deb_only:+ (${deb_only[*]})}" test ${#deb_only[@]} -eq 0
check "images/whonix/packages.list has exactly the roles gateway and workstation" \
  test "$(sed 's/#.*//' "$img/whonix/packages.list" | awk 'NF { print $1 }' | sort -u | tr '\n' ' ')" = "gateway workstation "

# ---- steps ----------------------------------------------------------------------------
fed=$img/fedora/build.sh who=$img/whonix/build.sh
check "fedora: --help lists the steps" bash -c "'$fed' --help | grep -q '^Steps'"
check "fedora: dnf --installroot with --releasever and no weak deps" \
  bash -c "grep -q -- '--installroot=' '$fed' && grep -q -- '--releasever=' '$fed' && grep -q 'install_weak_deps=False' '$fed'"
check "fedora: a generic (not host-only) dracut initramfs, checked with lsinitrd" \
  bash -c "grep -q 'dracut --force --no-hostonly' '$fed' && grep -q lsinitrd '$fed'"
check "fedora: whole-disk ext4 (mkfs.ext4 -d) in qcow2" bash -c "grep -q 'mkfs.ext4 .*-d' '$fed' && grep -q 'qemu-img convert' '$fed'"
check "fedora: the qube-guest RPM from packaging/fedora" grep -q 'build-srpm.sh' "$fed"
check "whonix: --help lists the steps" bash -c "'$who' --help | grep -q '^Steps'"
check "whonix: the key's fingerprint is Whonix's and is checked" \
  bash -c "grep -q '^fingerprint=916B8D99C38EAF5E8ADC7A2A8D66066A2EEACCDA$' '$who' && grep -q 'gpg --show-keys' '$who'"
check "whonix: Whonix's repository for bookworm, signed-by the key" \
  grep -q 'signed-by=/usr/share/keyrings/derivative.asc\] https://deb.whonix.org bookworm main contrib non-free' "$who"
check "whonix: built on the Debian recipe" grep -q 'exec "$top/images/debian/build.sh"' "$who"

# ---- refusals --------------------------------------------------------------------------
refuses() { # TEXT COMMAND...: fails (not 0) and says TEXT
  local want=$1 out rc; shift
  out=$("$@" 2>&1) && rc=0 || rc=$?
  [ "$rc" -ne 0 ] && grep -qF -- "$want" <<<"$out"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-recipes.XXXXXX"); trap 'rm -rf "$T"' EXIT
check "debian: OUT without .qcow2 refused" refuses "must end in .qcow2" "$img/debian/build.sh" "$T/x.img"
check "debian: bad --size refused" refuses "--size 'lots'" "$img/debian/build.sh" "$T/x.qcow2" --size lots
check "debian: unknown option refused" refuses "unknown option '--bogus'" "$img/debian/build.sh" "$T/x.qcow2" --bogus
check "debian: a guest .deb that is not qube-guest refused" \
  bash -c "[ \"\$(id -u)\" != 0 ] || { echo x > '$T/not.deb'; ! '$img/debian/build.sh' '$T/x.qcow2' --guest-deb '$T/not.deb' > '$T/o' 2>&1 && grep -q 'is not a .deb' '$T/o'; }"
check "fedora: bad --release refused" refuses "--release 'rawhide'" "$fed" "$T/x.qcow2" --release rawhide
check "whonix: unknown role refused" refuses "--role 'router'" "$who" "$T/x.qcow2" --role router --keyring /dev/null
echo 'not a key' > "$T/key.asc"
if command -v gpg >/dev/null && [ "$(id -u)" = 0 ]; then
  check "whonix: a keyring that is not Whonix's key refused" \
    refuses "not Whonix's 916B8D99C38EAF5E8ADC7A2A8D66066A2EEACCDA" "$who" "$T/x.qcow2" --role gateway --keyring "$T/key.asc"
fi
check "no output was written by the refusals" test ! -e "$T/x.qcow2"

if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
