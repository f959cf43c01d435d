#!/usr/bin/env bash
# Starts a test guest under QEMU (TCG), serial console to a file.  Execs
# qemu-system-x86_64, so `qemu-guest.sh ... &` gives the caller QEMU's pid in
# $!.  See docs/images.md for the guest side (kernel command line of init).
#
#   qemu-guest.sh --kernel VMLINUZ --initrd INITRAMFS (--serial-log FILE | --console)
#                 [--memory MB] [--smp N] [--append ARGS] [--pidfile FILE]
#                 [--vhost-user-vsock SOCK] [--cid N]
#                 [--virtio-serial SOCK [--virtio-serial-name NAME]]
#                 [--disk FILE [--disk-format raw|qcow2]]
#                 [--accel tcg|kvm] [--reboot] [--qemu-arg ARG]... [--dry-run]
#
# --vhost-user-vsock SOCK: QEMU connects to the vhost-user-vsock backend
#   listening on SOCK (qube-vsockd); the guest CID is the backend's.
# --cid N (without --vhost-user-vsock): kernel vhost-vsock-pci with guest-cid
#   N (needs /dev/vhost-vsock; not available on the test machines).
# --virtio-serial SOCK: a virtio-serial port named NAME (default
#   org.qube.test.0) whose host side is a unix socket QEMU listens on
#   (server=on,wait=off); the guest sees /dev/virtio-ports/NAME.
# --disk FILE: a virtio-blk disk (/dev/vda for the first one; init mounts it
#   on /rw).  Repeatable.
# The kernel command line is "console=ttyS0 panic=-1 quiet" followed by
# --append; panic=-1 with -no-reboot makes a guest panic end QEMU.
# --console: the serial console on this terminal instead of a file, for
#   use by hand (with qube.shell); Ctrl-A x quits QEMU.
# --reboot: leave out -no-reboot, so a guest reboot (or panic) resets the
#   machine and QEMU stays (tests of devices surviving a guest reboot).
set -euo pipefail
prog=qemu-guest.sh
die() { echo "$prog: error: $*" >&2; exit 2; }

kernel= initrd= serial= memory=256 smp=1 append= pidfile= vuv= cid=
vserial= vserial_name=org.qube.test.0 accel=tcg dry=0 reboot=0 console=0
disks=() disk_format=raw extra=()
need() { [ "$2" -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) need "$1" $#; kernel=$2; shift 2 ;;
    --initrd) need "$1" $#; initrd=$2; shift 2 ;;
    --serial-log) need "$1" $#; serial=$2; shift 2 ;;
    --memory) need "$1" $#; memory=$2; shift 2 ;;
    --smp) need "$1" $#; smp=$2; shift 2 ;;
    --append) need "$1" $#; append="$append $2"; shift 2 ;;
    --pidfile) need "$1" $#; pidfile=$2; shift 2 ;;
    --vhost-user-vsock) need "$1" $#; vuv=$2; shift 2 ;;
    --cid) need "$1" $#; cid=$2; shift 2 ;;
    --virtio-serial) need "$1" $#; vserial=$2; shift 2 ;;
    --virtio-serial-name) need "$1" $#; vserial_name=$2; shift 2 ;;
    --disk) need "$1" $#; disks+=("$2"); shift 2 ;;
    --disk-format) need "$1" $#; disk_format=$2; shift 2 ;;
    --accel) need "$1" $#; accel=$2; shift 2 ;;
    --qemu-arg) need "$1" $#; extra+=("$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    --reboot) reboot=1; shift ;;
    --console) console=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$kernel" ] || die "--kernel is required"
[ -n "$initrd" ] || die "--initrd is required"
[ -n "$serial" ] || [ "$console" = 1 ] || die "--serial-log (or --console) is required"
[ -z "$serial" ] || [ "$console" = 0 ] || die "--serial-log and --console exclude each other"
[ -f "$kernel" ] || die "kernel $kernel not found"
[ -f "$initrd" ] || die "initrd $initrd not found"
case $memory in ''|*[!0-9]*) die "--memory '$memory' is not a number of MiB" ;; esac
[ "$memory" -ge 64 ] || die "--memory $memory: at least 64 MiB"
case $smp in ''|*[!0-9]*|0) die "--smp '$smp' is not a positive number" ;; esac
case $accel in tcg|kvm) ;; *) die "--accel '$accel': tcg or kvm" ;; esac
case $disk_format in raw|qcow2) ;; *) die "--disk-format '$disk_format': raw or qcow2" ;; esac
for c in "$kernel" "$initrd" "$serial" "$pidfile" "$vuv" "$vserial" "${disks[@]}"; do
  case $c in *,*) die "path '$c' contains a comma, which QEMU's option syntax cannot take" ;; esac
done
if [ -n "$cid" ]; then
  case $cid in *[!0-9]*) die "--cid '$cid' is not a number" ;; esac
  [ "$cid" -ge 3 ] || die "--cid $cid: guest CIDs start at 3"
  [ -z "$vuv" ] || die "--cid cannot be combined with --vhost-user-vsock: the vhost-user backend sets the CID"
fi
if [ -n "$vuv" ] && [ ! -S "$vuv" ]; then
  die "--vhost-user-vsock $vuv is not a listening unix socket (start qube-vsockd first)"
fi
for d in "${disks[@]}"; do [ -f "$d" ] || die "disk $d not found"; done
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die "$qemu not found (apt-get install qemu-system-x86)"

args=(
  -name qube-test-guest
  -nodefaults -nographic
  -monitor none
  -accel "$accel"
  -machine "q35,memory-backend=mem"
  -object "memory-backend-memfd,id=mem,size=${memory}M,share=on"
  -m "${memory}M"
  -smp "$smp"
  -kernel "$kernel" -initrd "$initrd"
  -append "console=ttyS0 panic=-1 quiet$append"
)
if [ "$console" = 1 ]; then
  args+=(-serial mon:stdio)
else
  args+=(-chardev "file,id=ser0,path=$serial" -serial chardev:ser0)
fi
[ "$reboot" = 1 ] || args+=(-no-reboot)
[ -n "$pidfile" ] && args+=(-pidfile "$pidfile")
if [ -n "$vuv" ]; then
  args+=(-chardev "socket,id=vsock0,path=$vuv" -device vhost-user-vsock-pci,chardev=vsock0)
elif [ -n "$cid" ]; then
  args+=(-device "vhost-vsock-pci,guest-cid=$cid")
fi
if [ -n "$vserial" ]; then
  case $vserial_name in ''|*[!A-Za-z0-9._-]*) die "--virtio-serial-name '$vserial_name': use [A-Za-z0-9._-]" ;; esac
  args+=(-device virtio-serial-pci,id=vser0
         -chardev "socket,id=vser0c,path=$vserial,server=on,wait=off"
         -device "virtserialport,bus=vser0.0,chardev=vser0c,name=$vserial_name")
fi
i=0
for d in "${disks[@]}"; do
  args+=(-drive "file=$d,format=$disk_format,if=virtio,id=disk$i,cache=unsafe")
  i=$((i + 1))
done
args+=("${extra[@]}")

if [ "$dry" = 1 ]; then
  printf '%q ' "$qemu" "${args[@]}"; echo
  exit 0
fi
if [ "$console" = 1 ]; then
  exec "$qemu" "${args[@]}"
fi
exec "$qemu" "${args[@]}" </dev/null
