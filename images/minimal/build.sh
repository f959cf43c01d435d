#!/usr/bin/env bash
# Builds the minimal guest image for test qubes: a Debian kernel (vmlinuz,
# and the same kernel uncompressed as vmlinux for a faster PVH boot)
# and an initramfs (newc cpio, gzip) holding busybox-static, the virtio and
# vsock modules that kernel needs, the project's guest binaries and an init.
# See docs/images.md.
#
#   build.sh --output DIR [--build-dir MESON_BUILD_DIR] [--add PATH[:DEST]]...
#            [--cache DIR] [--kernel-package PKG] [--modules FILE] [--offline] [--with-gui]
#   build.sh --list-modules [--modules FILE] [--cache DIR] ...
#
# Downloads (apt-get download, never installed on the host) are cached in
# ${QUBE_CACHE_DIR:-/var/cache/qube}; a build whose packages are cached does
# no network access.  The output depends only on the inputs: fixed mtimes
# (SOURCE_DATE_EPOCH, default 0), owner 0:0, sorted cpio, gzip -n.
set -euo pipefail
umask 022
export LC_ALL=C

prog=images/minimal/build.sh
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

usage() {
  cat <<EOF
usage: $prog --output DIR [options]
  --output DIR          where vmlinuz, initramfs.cpio.gz and manifest.txt go
  --build-dir DIR       meson build dir; DIR/rpc/guest/qube-agent and DIR/rpc/guest/qube-call
                        are included when they exist
  --add PATH[:DEST]     include an extra file (default DEST /usr/bin/NAME);
                        dynamically linked programs get their libraries
  --cache DIR           download cache (default \${QUBE_CACHE_DIR:-/var/cache/qube})
  --kernel-package PKG  kernel package (default: what linux-image-amd64 depends on)
  --modules FILE        module list (default images/minimal/modules.list)
  --offline             never download; fail if a package is not cached
  --busybox-deb         take busybox from busybox-static's .deb (cached) even
                        when the host has busybox-static installed
  --list-modules        resolve the module list against the kernel, print the
                        load order and the built-in ones, write nothing
  --with-gui            also the GUI path (docs/compositor.md): the host's waypipe
                        with its libraries (about 150 MB more: boot such qubes with
                        memory >= 800 MiB), qube-start-app as the service
                        qube.StartApp (from --build-dir unless given with --add to
                        /usr/lib/qube/qube-start-app), and Wayland clients: the
                        host's weston-simple-shm and the build's qc-test-client
                        when they exist (or --add them to /usr/bin)
EOF
}

out= builddir= kpkg= offline=0 list_only=0 bb_deb=0 with_gui=0
cache=${QUBE_CACHE_DIR:-/var/cache/qube}
modlist=$here/modules.list
adds=()
while [ $# -gt 0 ]; do
  case $1 in
    --output) [ $# -ge 2 ] || die "--output needs a value"; out=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; builddir=$2; shift 2 ;;
    --add) [ $# -ge 2 ] || die "--add needs a value"; adds+=("$2"); shift 2 ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a value"; cache=$2; shift 2 ;;
    --kernel-package) [ $# -ge 2 ] || die "--kernel-package needs a value"; kpkg=$2; shift 2 ;;
    --modules) [ $# -ge 2 ] || die "--modules needs a value"; modlist=$2; shift 2 ;;
    --offline) offline=1; shift ;;
    --list-modules) list_only=1; shift ;;
    --busybox-deb) bb_deb=1; shift ;;
    --with-gui) with_gui=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[ -n "$out" ] || [ "$list_only" = 1 ] || { usage >&2; die "--output is required"; }
[ -f "$modlist" ] || die "module list $modlist not found"
if [ -n "$builddir" ] && [ ! -d "$builddir" ]; then
  die "--build-dir $builddir is not a directory"
fi
epoch=${SOURCE_DATE_EPOCH:-0}
case $epoch in ''|*[!0-9]*) die "SOURCE_DATE_EPOCH '$epoch' is not a number" ;; esac

for tool in apt-cache apt-get dpkg-deb depmod cpio gzip sha256sum readelf ldd flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found (run scripts/install-deps.sh)"
done

mkdir -p "$cache/debs" "$cache/kernel" || die "cannot create cache directory $cache"
# One build at a time per cache: others wait instead of racing a download.
exec {lockfd}>"$cache/.lock"
flock "$lockfd"

work=$(mktemp -d "${TMPDIR:-/tmp}/qube-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir "$stage"

# pkg_info PKG: loads the candidate version's record from the apt lists into
# pkg_version, pkg_filename, pkg_sha256, pkg_depends (one apt-cache call; it
# is slow).  On a fresh machine the lists are empty: then (only then) they
# are refreshed once (network) unless --offline.
pkg_info() {
  local rec
  rec=$(apt-cache show --no-all-versions "$1" 2>/dev/null || true)
  if [ -z "$rec" ]; then
    if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
      die "package $1 unknown to apt (misspelt, or run apt-get update)"
    fi
    [ "$offline" = 0 ] || die "package $1 unknown to apt and --offline given (run apt-get update)"
    say "package $1 unknown to apt: running apt-get update" >&2
    apt-get update -qq >&2 || die "apt-get update failed"
    rec=$(apt-cache show --no-all-versions "$1" 2>/dev/null || true)
    [ -n "$rec" ] || die "package $1 unknown to apt even after apt-get update"
  fi
  pkg_version=$(sed -n 's/^Version: //p' <<<"$rec" | head -n1)
  pkg_filename=$(sed -n 's/^Filename: //p' <<<"$rec" | head -n1)
  pkg_sha256=$(sed -n 's/^SHA256: //p' <<<"$rec" | head -n1)
  pkg_depends=$(sed -n 's/^Depends: //p' <<<"$rec" | head -n1)
  [ -n "$pkg_version" ] && [ -n "$pkg_filename" ] && [ -n "$pkg_sha256" ] ||
    die "apt's record of $1 lacks Version, Filename or SHA256"
}

# fetch_deb PKG: sets deb_file to PKG's candidate .deb in the cache and
# deb_version, downloading only when no cached file with the archive's
# SHA256 exists.
fetch_deb() {
  local pkg=$1 file
  pkg_info "$pkg"
  deb_version=$pkg_version
  file=$cache/debs/${pkg_filename##*/}
  if [ -f "$file" ] && [ "$(sha256sum < "$file" | cut -d' ' -f1)" = "$pkg_sha256" ]; then
    say "cache hit: $pkg $deb_version ($file)"
  else
    [ "$offline" = 0 ] || die "--offline and $pkg $deb_version is not in $cache/debs"
    say "cache miss: downloading $pkg $deb_version"
    local dl=$work/dl got
    rm -rf "$dl"; mkdir "$dl"; chmod 0777 "$dl"
    (cd "$dl" && apt-get download -q "$pkg=$deb_version") >"$work/dl.log" 2>&1 ||
      { cat "$work/dl.log" >&2; die "apt-get download $pkg=$deb_version failed"; }
    got=$(find "$dl" -name '*.deb' | head -n1)
    [ -n "$got" ] || die "apt-get download $pkg left no .deb"
    [ "$(sha256sum < "$got" | cut -d' ' -f1)" = "$pkg_sha256" ] ||
      die "downloaded $pkg does not match the archive's SHA256 $pkg_sha256"
    mv "$got" "$file.tmp"
    mv "$file.tmp" "$file"
  fi
  deb_file=$file
}

# ---- kernel ---------------------------------------------------------------
if [ -z "$kpkg" ]; then
  pkg_info linux-image-amd64
  kpkg=$(sed -n 's/^\(linux-image-[0-9][^ ,]*\).*/\1/p' <<<"$pkg_depends")
  [ -n "$kpkg" ] || die "cannot find a linux-image-VERSION package in linux-image-amd64's Depends: '$pkg_depends'"
fi
fetch_deb "$kpkg"
kdeb=$deb_file kversion=$deb_version
ktree=$cache/kernel/$(basename "$kdeb" .deb)
if [ ! -f "$ktree/.complete" ]; then
  say "unpacking $(basename "$kdeb")"
  rm -rf "$ktree" "$ktree.tmp"
  mkdir -p "$ktree.tmp"
  dpkg-deb -x "$kdeb" "$ktree.tmp" || die "dpkg-deb -x $kdeb failed"
  kvers=$(ls "$ktree.tmp/lib/modules")
  [ "$(echo "$kvers" | wc -l)" = 1 ] && [ -n "$kvers" ] ||
    die "$kdeb: expected one directory under lib/modules, found: $kvers"
  depmod -b "$ktree.tmp" "$kvers" || die "depmod on the unpacked $kpkg failed"
  touch "$ktree.tmp/.complete"
  mv "$ktree.tmp" "$ktree"
else
  say "cache hit: unpacked kernel $ktree"
fi
kver=$(ls "$ktree/lib/modules")
kmod=$ktree/lib/modules/$kver
[ -f "$ktree/boot/vmlinuz-$kver" ] || die "$kdeb has no boot/vmlinuz-$kver"

# vmlinux: the same kernel uncompressed.  QEMU boots an ELF kernel with a
# PVH entry note directly (-kernel vmlinux), skipping the real-mode setup
# and the xz decompression, which under TCG halves the boot time.  Made
# once per kernel, in the cache, for xz-compressed kernels with CONFIG_PVH.
vmlinux=$ktree/boot/vmlinux-$kver
if [ ! -f "$vmlinux" ]; then
  # offset of the first xz stream header (no pipe into head: SIGPIPE and pipefail)
  xzoff=$(grep -obUaP '\xFD7zXZ\x00' "$ktree/boot/vmlinuz-$kver" || true)
  xzoff=${xzoff%%:*}
  if [ -n "$xzoff" ] && command -v xz >/dev/null &&
     # --single-stream stops at the end of the kernel's stream: read from a
     # process substitution so tail's SIGPIPE does not fail a pipeline
     xz -dc --single-stream < <(tail -c +"$((xzoff + 1))" "$ktree/boot/vmlinuz-$kver" 2>/dev/null) \
       > "$vmlinux.tmp" 2>/dev/null &&
     [ "$(readelf -n "$vmlinux.tmp" 2>/dev/null | grep -c 'Xen.*(0x00000012)')" -ge 1 ]; then
    mv "$vmlinux.tmp" "$vmlinux"
    say "extracted the uncompressed PVH kernel $(basename "$vmlinux")"
  else
    rm -f "$vmlinux.tmp"
    say "note: no uncompressed PVH kernel from vmlinuz-$kver (not xz, no xz tool, or no PVH note); only vmlinuz is written"
  fi
fi
[ -f "$kmod/modules.dep" ] || die "$kmod/modules.dep missing"
[ -f "$kmod/modules.builtin" ] || die "$kmod/modules.builtin missing"

# ---- modules: resolve the list against modules.builtin and modules.dep ---
declare -A dep_path=() dep_list=() builtin=() state=()
while IFS= read -r line; do
  path=${line%%:*}
  name=${path##*/}; name=${name%%.ko*}; name=${name//-/_}
  dep_path[$name]=$path
  deps=${line#*:}
  dep_list[$name]=${deps# }
done < "$kmod/modules.dep"
while IFS= read -r path; do
  name=${path##*/}; name=${name%%.ko*}; name=${name//-/_}
  builtin[$name]=1
done < "$kmod/modules.builtin"

load_order=()
# visit NAME: depth-first, dependencies before the module itself.
visit() {
  local name=$1 from=$2 d dn
  case ${state[$name]:-} in
    done) return 0 ;;
    active) die "module dependency cycle through $name" ;;
  esac
  if [ -z "${dep_path[$name]:-}" ]; then
    die "module $name ($from) is neither built into $kver nor listed in $kmod/modules.dep"
  fi
  state[$name]=active
  for d in ${dep_list[$name]}; do
    dn=${d##*/}; dn=${dn%%.ko*}; dn=${dn//-/_}
    visit "$dn" "needed by $name"
  done
  [ -f "$kmod/${dep_path[$name]}" ] ||
    die "modules.dep names ${dep_path[$name]} but $kmod/${dep_path[$name]} does not exist"
  state[$name]="done"
  load_order+=("$name")
}
lineno=0 wanted=() builtin_wanted=()
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line=${line%%#*}
  line=$(echo "$line" | tr -d '[:space:]')
  [ -n "$line" ] || continue
  case $line in *[!A-Za-z0-9_-]*) die "$modlist:$lineno: bad module name '$line'" ;; esac
  name=${line//-/_}
  wanted+=("$name")
  if [ -n "${builtin[$name]:-}" ]; then
    builtin_wanted+=("$name")
    continue
  fi
  visit "$name" "$modlist:$lineno"
done < "$modlist"
[ ${#wanted[@]} -gt 0 ] || die "$modlist lists no modules"
if [ "$list_only" = 1 ]; then
  echo "kernel: $kpkg $kversion ($kver)"
  echo "load order: ${load_order[*]}"
  echo "built in: ${builtin_wanted[*]:-}"
  exit 0
fi

mdest=$stage/lib/modules/$kver
mkdir -p "$mdest"
: > "$mdest/qube-load-order"
for name in "${load_order[@]}"; do
  src=$kmod/${dep_path[$name]}
  rel=${dep_path[$name]}
  case $rel in
    *.ko) mkdir -p "$(dirname "$mdest/$rel")"; cp "$src" "$mdest/$rel" ;;
    *.ko.xz) rel=${rel%.xz}; mkdir -p "$(dirname "$mdest/$rel")"; xz -dc "$src" > "$mdest/$rel" ;;
    *.ko.gz) rel=${rel%.gz}; mkdir -p "$(dirname "$mdest/$rel")"; gzip -dc "$src" > "$mdest/$rel" ;;
    *.ko.zst) rel=${rel%.zst}; mkdir -p "$(dirname "$mdest/$rel")"; zstd -qdc "$src" > "$mdest/$rel" ;;
    *) die "unsupported module file $rel" ;;
  esac
  chmod 0644 "$mdest/$rel"
  echo "$rel" >> "$mdest/qube-load-order"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
  [ ! -f "$kmod/$f" ] || cp "$kmod/$f" "$mdest/$f"
done
# modules.dep of the staged tree lets busybox modprobe (and the kernel's
# request_module) find what is in the image.
depmod -b "$stage" "$kver" || die "depmod on the staged module tree failed"
say "kernel $kpkg $kversion ($kver); modules in load order: ${load_order[*]}"
[ ${#builtin_wanted[@]} -eq 0 ] || say "built in, not copied: ${builtin_wanted[*]}"

# ---- busybox ---------------------------------------------------------------
is_dynamic() { readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
bb=
if [ "$bb_deb" = 0 ] &&
   dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' &&
   [ -x /bin/busybox ] && ! is_dynamic /bin/busybox; then
  bb=/bin/busybox
  bbversion=$(dpkg-query -W -f='${Version}' busybox-static)
  say "busybox: host's busybox-static $bbversion"
else
  fetch_deb busybox-static
  bbdeb=$deb_file bbversion=$deb_version
  mkdir "$work/bb"
  dpkg-deb -x "$bbdeb" "$work/bb"
  bb=$work/bb/bin/busybox
  [ -x "$bb" ] || die "$bbdeb has no bin/busybox"
  say "busybox: busybox-static $bbversion from $(basename "$bbdeb")"
fi
mkdir -p "$stage/bin" "$stage/sbin" "$stage/usr/bin" "$stage/usr/sbin"
cp "$bb" "$stage/bin/busybox"
chmod 0755 "$stage/bin/busybox"
while IFS= read -r applet; do
  [ -n "$applet" ] || continue
  [ -e "$stage/$applet" ] && continue
  case $applet in
    */*) [ -d "$stage/${applet%/*}" ] || mkdir -p "$stage/${applet%/*}" ;;
  esac
  ln -s /bin/busybox "$stage/$applet"
done < <("$stage/bin/busybox" --list-full | sort)

# ---- project binaries and extra files ---------------------------------------
# copy_libs BIN: the shared libraries ldd resolves for BIN, at the same paths.
copy_libs() {
  local bin=$1 line lib
  while read -r line; do   # read without IFS= strips ldd's leading tab
    case $line in
      *'not found'*) die "$bin: shared library ${line%% *} not found on this host" ;;
      *'=> /'*) lib=${line#*=> }; lib=${lib%% (*} ;;
      /*) lib=${line%% (*} ;;
      *) continue ;;
    esac
    [ -e "$stage$lib" ] && continue
    [ -f "$lib" ] || die "$bin: library $lib missing"
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
    chmod 0755 "$stage$lib"
    libs_copied+=("$lib")
  done < <(ldd "$bin" 2>&1)
}
libs_copied=()
included=()
add_file() {
  local src=$1 dest=$2 mode
  [ -f "$src" ] || die "--add: $src is not a file"
  case $dest in /*) ;; *) die "--add: destination '$dest' is not absolute" ;; esac
  if [ -L "$stage$dest" ] && case $(readlink "$stage$dest") in busybox|/bin/busybox) true ;; *) false ;; esac; then
    rm "$stage$dest"   # a real program replaces the busybox applet
  elif [ -e "$stage$dest" ] || [ "$dest" = /init ]; then
    die "--add: $dest is already in the image"
  fi
  mkdir -p "$stage$(dirname "$dest")"
  cp -L "$src" "$stage$dest"
  mode=0644
  [ -x "$src" ] && mode=0755
  chmod "$mode" "$stage$dest"
  if is_dynamic "$src"; then copy_libs "$src"; fi
  included+=("$dest")
  say "including $src as $dest"
}
if [ -n "$builddir" ]; then
  for b in qube-agent qube-call; do
    if [ -x "$builddir/rpc/guest/$b" ]; then
      add_file "$builddir/rpc/guest/$b" "/usr/bin/$b"
    else
      say "$b not built in $builddir/rpc/guest; the image has no $b"
    fi
  done
  # qube.Exec and qube.VMShell: one program, two service names
  if [ -x "$builddir/rpc/guest/qube-exec" ]; then
    add_file "$builddir/rpc/guest/qube-exec" /usr/lib/qube/qube-exec
    mkdir -p "$stage/etc/qube/rpc"
    ln -s /usr/lib/qube/qube-exec "$stage/etc/qube/rpc/qube.Exec"
    ln -s /usr/lib/qube/qube-exec "$stage/etc/qube/rpc/qube.VMShell"
  else
    say "qube-exec not built in $builddir/rpc/guest; the image has no qube.Exec"
  fi
  # file copy (docs/filecopy.md): the sender once, its four other names as
  # links (it goes by the name it is called with); the receiver as the
  # service qube.Filecopy; qube-open-in-dvm, also the service qube.OpenInVM.
  # They receive as the user "user", whose home init keeps on /rw.
  fc=$builddir/rpc/guest/filecopy
  if [ -x "$fc/qube-filecopy-send" ] && [ -x "$fc/qube-filecopy-receive" ]; then
    add_file "$fc/qube-filecopy-send" /usr/bin/qube-filecopy-send
    for n in qube-copy qube-move qube-copy-to qube-move-to; do
      ln -s qube-filecopy-send "$stage/usr/bin/$n"
    done
    add_file "$fc/qube-filecopy-receive" /usr/bin/qube-filecopy-receive
    mkdir -p "$stage/etc/qube/rpc"
    ln -s /usr/bin/qube-filecopy-receive "$stage/etc/qube/rpc/qube.Filecopy"
  else
    say "qube-filecopy-send/-receive not built in $fc; the image has no qube.Filecopy"
  fi
  if [ -x "$builddir/rpc/guest/openinvm/qube-open-in-dvm" ]; then
    add_file "$builddir/rpc/guest/openinvm/qube-open-in-dvm" /usr/bin/qube-open-in-dvm
    mkdir -p "$stage/etc/qube/rpc"
    ln -s /usr/bin/qube-open-in-dvm "$stage/etc/qube/rpc/qube.OpenInVM"
  else
    say "qube-open-in-dvm not built in $builddir/rpc/guest/openinvm; the image has no qube.OpenInVM"
  fi
  # without their debug information (155 KB less, gzipped)
  if command -v strip >/dev/null; then
    for f in /usr/bin/qube-filecopy-send /usr/bin/qube-filecopy-receive /usr/bin/qube-open-in-dvm; do
      [ ! -f "$stage$f" ] || strip --strip-debug "$stage$f"
    done
  fi
fi
for a in "${adds[@]}"; do
  case $a in
    *:*) add_file "${a%%:*}" "${a#*:}" ;;
    *) add_file "$a" "/usr/bin/$(basename "$a")" ;;
  esac
done

# ---- the GUI path (--with-gui) -------------------------------------------------
# waypipe server and qube-start-app, which carries waypipe's stream to the
# host's qube-gui-bridge over vsock port 6000; a client or two to show.
gui_info=no
if [ "$with_gui" = 1 ]; then
  [ -x /usr/bin/waypipe ] || die "--with-gui: /usr/bin/waypipe not found (apt-get install waypipe)"
  [ -e "$stage/usr/bin/waypipe" ] || add_file /usr/bin/waypipe /usr/bin/waypipe
  if [ ! -e "$stage/usr/lib/qube/qube-start-app" ]; then
    [ -n "$builddir" ] && [ -x "$builddir/rpc/guest/qube-start-app" ] ||
      die "--with-gui: qube-start-app is neither built in --build-dir nor given with --add PATH:/usr/lib/qube/qube-start-app"
    add_file "$builddir/rpc/guest/qube-start-app" /usr/lib/qube/qube-start-app
  fi
  mkdir -p "$stage/etc/qube/rpc"
  ln -s /usr/lib/qube/qube-start-app "$stage/etc/qube/rpc/qube.StartApp"
  clients=()
  if [ -x /usr/bin/weston-simple-shm ] && [ ! -e "$stage/usr/bin/weston-simple-shm" ]; then
    add_file /usr/bin/weston-simple-shm /usr/bin/weston-simple-shm
  fi
  if [ -n "$builddir" ] && [ -x "$builddir/compositor/qc-test-client" ] && [ ! -e "$stage/usr/bin/qc-test-client" ]; then
    add_file "$builddir/compositor/qc-test-client" /usr/bin/qc-test-client
  fi
  for c in weston-simple-shm qc-test-client; do [ ! -e "$stage/usr/bin/$c" ] || clients+=("$c"); done
  [ ${#clients[@]} -gt 0 ] || say "warning: --with-gui: no Wayland client in the image (no weston-simple-shm, no qc-test-client)"
  gui_info="waypipe $(dpkg-query -W -f='${Version}' waypipe 2>/dev/null || echo unknown); clients: ${clients[*]:-none}"
  say "GUI path: $gui_info"
fi

# ---- init and the file system skeleton --------------------------------------
cp "$here/init" "$stage/init"
chmod 0755 "$stage/init"
for d in dev proc sys tmp run rw home root mnt var etc/qube/rpc etc/qube/policy.d; do
  mkdir -p "$stage/$d"
done
chmod 1777 "$stage/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' > "$stage/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' > "$stage/etc/group"

{
  echo "kernel-package: $kpkg $kversion"
  echo "kernel-release: $kver"
  echo "busybox: $bbversion"
  echo "modules: ${load_order[*]}"
  echo "builtin-modules: ${builtin_wanted[*]:-}"
  echo "files: ${included[*]:-}"
  [ "$with_gui" = 0 ] || echo "gui: $gui_info"
  echo "libraries: ${libs_copied[*]:-}"
} > "$stage/etc/qube-image"

# ---- pack ---------------------------------------------------------------------
find "$stage" -exec touch -h -d "@$epoch" {} +
mkdir -p "$out"
(cd "$stage" && find . -mindepth 1 -printf '%P\0' | sort -z |
   cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) |
  gzip -n -9 > "$out/initramfs.cpio.gz.tmp"
cp "$ktree/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
touch -d "@$epoch" "$out/vmlinuz.tmp" "$out/initramfs.cpio.gz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
kfiles=(vmlinuz)
if [ -f "$vmlinux" ]; then
  cp "$vmlinux" "$out/vmlinux.tmp"
  touch -d "@$epoch" "$out/vmlinux.tmp"
  mv "$out/vmlinux.tmp" "$out/vmlinux"
  kfiles+=(vmlinux)
else
  rm -f "$out/vmlinux"
fi
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
{
  cat "$stage/etc/qube-image"
  (cd "$out" && sha256sum "${kfiles[@]}" initramfs.cpio.gz)
} > "$out/manifest.txt"
say "wrote ${kfiles[*]} and initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes) to $out"
(cd "$out" && sha256sum "${kfiles[@]}" initramfs.cpio.gz) | sed "s|^|$prog: sha256 |"
