#!/usr/bin/env bash
# packaging/split.sh on made-up install trees: every file lands in the
# package its rule names, an unknown file or a missing key file fails the
# split naming the file, malformed rules are refused with FILE:LINE, and the
# real split.rules places the files a package must have.
#   split-test.sh SPLIT_SH SPLIT_RULES
set -euo pipefail
split=${1:?usage: split-test.sh SPLIT_SH SPLIT_RULES}
rules=${2:?usage: split-test.sh SPLIT_SH SPLIT_RULES}
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-split.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# failed_with TEXT: the last command ($rc, $out) failed and said TEXT
failed_with() { [ "$rc" -ne 0 ] && grep -qF -- "$1" <<<"$out"; }

mk() { local f; for f in "$@"; do mkdir -p "$(dirname "$T/d/$f")"; echo x > "$T/d/$f"; done; }
mk usr/bin/qube-agent usr/bin/qube-call usr/bin/qube-copy usr/bin/qube-filecopy-receive usr/bin/qube-move-to usr/bin/qubectl usr/bin/qube-vsockd \
   usr/bin/qube-compositor usr/sbin/qubed usr/sbin/qube-broker usr/sbin/qube-new-daemon \
   usr/lib/qube/qube-guest-setup etc/qube/rpc/qube.VMShell etc/qube/rpc/qube.Exec etc/qube/rpc/qube.Filecopy \
   usr/libexec/qube/qube-exec usr/sbin/qube-host-agent usr/bin/qube-gui-bridge \
   etc/qube/policy.d/90-default.policy lib/systemd/system/qube-agent.service \
   lib/systemd/system/qube-guest-setup.service lib/systemd/system/qubed.service \
   usr/share/initramfs-tools/hooks/qube-guest usr/lib/dracut/dracut.conf.d/90-qube-guest.conf \
   usr/share/man/man1/qubectl.1 usr/share/man/man8/qubed.8 usr/share/man/man8/qube-agent.8 \
   usr/share/wayland-sessions/qube.desktop usr/share/bash-completion/completions/qubectl
cat > "$T/keys" <<'EOF2'
guest usr/bin/qube-agent
policy usr/bin/qubectl
host usr/sbin/qubed
host */systemd/system/qubed.service
EOF2
check "deb split of a full tree succeeds" "$split" --format deb --rules "$rules" --key-files "$T/keys" "$T/d" "$T/o"
has() { grep -qx -- "$2" "$T/o/$1.files"; }
check "guest gets the agent, qube-call, qube-exec, qube-copy and the file-copy programs, the rpc services, its units, the initramfs hook" \
  bash -c "for f in /usr/bin/qube-agent /usr/bin/qube-call /usr/bin/qube-copy /usr/bin/qube-filecopy-receive /usr/bin/qube-move-to /etc/qube/rpc/qube.VMShell /etc/qube/rpc/qube.Exec /usr/libexec/qube/qube-exec /etc/qube/rpc/qube.Filecopy /lib/systemd/system/qube-agent.service /lib/systemd/system/qube-guest-setup.service /usr/share/initramfs-tools/hooks/qube-guest /usr/share/man/man8/qube-agent.8; do grep -qx -- \$f '$T/o/guest.files' || { echo missing \$f; exit 1; }; done"
check "policy gets qubectl, the default policy, its man page and completion" \
  bash -c "for f in /usr/bin/qubectl /etc/qube/policy.d/90-default.policy /usr/share/man/man1/qubectl.1 /usr/share/bash-completion/completions/qubectl; do grep -qx -- \$f '$T/o/policy.files' || exit 1; done"
check "host gets qubed, the broker, its host agent, vsockd, the compositor, its GUI bridge and session, and a new sbin program" \
  bash -c "for f in /usr/sbin/qubed /usr/sbin/qube-broker /usr/sbin/qube-host-agent /usr/bin/qube-gui-bridge /usr/sbin/qube-new-daemon /usr/bin/qube-vsockd /usr/bin/qube-compositor /usr/share/wayland-sessions/qube.desktop /lib/systemd/system/qubed.service /usr/share/man/man8/qubed.8; do grep -qx -- \$f '$T/o/host.files' || exit 1; done"
check "deb drops the dracut file" has dropped /usr/lib/dracut/dracut.conf.d/90-qube-guest.conf
check "no file in two packages" bash -c "! cat '$T/o/guest.files' '$T/o/host.files' '$T/o/policy.files' '$T/o/dropped.files' | sort | uniq -d | grep -q ."
check "every file in exactly one list" test "$(cat "$T/o"/*.files | wc -l)" = "$(cd "$T/d" && find . ! -type d | wc -l)"
"$split" --format rpm --rules "$rules" "$T/d" "$T/r" > /dev/null
check "rpm split: dracut file to guest, initramfs-tools hook dropped" \
  bash -c "grep -qx /usr/lib/dracut/dracut.conf.d/90-qube-guest.conf '$T/r/guest.files' && grep -qx /usr/share/initramfs-tools/hooks/qube-guest '$T/r/dropped.files'"

# template updates: the guest's proxy socket, apt configuration and helper;
# the host's proxy, its service link and allow-list
mk lib/systemd/system/qube-updates-proxy.socket lib/systemd/system/qube-updates-proxy@.service \
   etc/apt/apt.conf.d/01qube-updates-proxy usr/lib/qube/qube-guest-apt-proxy \
   usr/libexec/qube/qube-updates-proxy etc/qube/rpc-host/qube.UpdatesProxy etc/qube/updates-proxy.conf
"$split" --format deb --rules "$rules" "$T/d" "$T/u" > /dev/null
"$split" --format rpm --rules "$rules" "$T/d" "$T/ur" > /dev/null
check "template updates: guest gets the proxy socket and service, the apt helper and (deb) apt's configuration" \
  bash -c "for f in /lib/systemd/system/qube-updates-proxy.socket /lib/systemd/system/qube-updates-proxy@.service /usr/lib/qube/qube-guest-apt-proxy /etc/apt/apt.conf.d/01qube-updates-proxy; do grep -qx -- \$f '$T/u/guest.files' || { echo missing \$f; exit 1; }; done"
check "template updates: host gets the proxy, its service link and its allow-list" \
  bash -c "for f in /usr/libexec/qube/qube-updates-proxy /etc/qube/rpc-host/qube.UpdatesProxy /etc/qube/updates-proxy.conf; do grep -qx -- \$f '$T/u/host.files' || { echo missing \$f; exit 1; }; done"
check "template updates: rpm drops apt's configuration" grep -qx /etc/apt/apt.conf.d/01qube-updates-proxy "$T/ur/dropped.files"

mk usr/share/doc/stray/README
out=$("$split" --format deb --rules "$rules" "$T/d" "$T/o2" 2>&1) && rc=0 || rc=$?
check "a file no rule matches fails the split, naming it" \
  failed_with "matches: /usr/share/doc/stray/README"
rm -rf "$T/d/usr/share/doc"
rm "$T/d/usr/sbin/qubed"
out=$("$split" --format deb --rules "$rules" --key-files "$T/keys" "$T/d" "$T/o3" 2>&1) && rc=0 || rc=$?
check "a missing key file fails the split, naming the package, file and key list line" \
  failed_with "key files missing: qube-host:/usr/sbin/qubed ($T/keys:3)"
printf 'usr/bin/* guest\nusr/sbin/* nosuch\n' > "$T/badrules"
out=$("$split" --format deb --rules "$T/badrules" "$T/d" "$T/o4" 2>&1) && rc=0 || rc=$?
check "a rule naming an unknown package is refused with FILE:LINE" \
  failed_with "$T/badrules:2: package 'nosuch'"
printf '/usr/bin/* guest\n' > "$T/badrules2"
out=$("$split" --format deb --rules "$T/badrules2" "$T/d" "$T/o5" 2>&1) && rc=0 || rc=$?
check "an absolute pattern is refused with FILE:LINE" failed_with "$T/badrules2:1: pattern"
check "the failed splits wrote no package lists" bash -c "[ ! -e '$T/o2' ] && [ ! -e '$T/o3' ] && [ ! -e '$T/o4' ] && [ ! -e '$T/o5' ]"

if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
