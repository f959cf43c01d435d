# shellcheck shell=bash
# Sourced by tests and the demo that need the host's libvirtd
# (qemu:///system).  There is no systemd on the test machines, so the
# caller starts virtlogd and libvirtd when they are not serving, and stops
# only what it started.
#
# Which daemon is "the host's" is decided by its pid file (/run/NAME.pid,
# where `libvirtd -d` as root writes it), never by process name: another test (vmm/tests/qvmm-guest)
# runs a private libvirtd in its own mount namespace, which `pgrep -x
# libvirtd` would see and `pkill -x libvirtd` would kill.
#
#   libvirt_up        0 when qemu:///system answers (starting the daemons
#                     if needed); sets libvirt_started_libvirtd/virtlogd
#   libvirt_down      stops what libvirt_up started and waits for it
#   libvirt_restart   kills the host's libvirtd and starts it again (the
#                     caller must have started it)

libvirt_started_libvirtd=0
libvirt_started_virtlogd=0
LIBVIRT_PIDDIR=${LIBVIRT_PIDDIR:-/run}

libvirt_pid_of() {
  # the pid in /run/NAME.pid, if that process is alive
  local f=$LIBVIRT_PIDDIR/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

libvirt_answers() {
  virsh -q -c qemu:///system uri >/dev/null 2>&1
}

libvirt_wait_gone() {
  # waits up to 10 s for PID to exit
  local pid=$1
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

libvirt_up() {
  mkdir -p /var/log/libvirt
  if ! libvirt_pid_of virtlogd >/dev/null; then
    virtlogd -d && libvirt_started_virtlogd=1
  fi
  # a libvirtd that is starting or stopping gets 10 s to settle; then one
  # is started if none runs
  for _ in $(seq 200); do
    libvirt_answers && return 0
    if ! libvirt_pid_of libvirtd >/dev/null; then
      libvirtd -d && libvirt_started_libvirtd=1
    fi
    sleep 0.1
  done
  echo "libvirt: qemu:///system did not answer within 20 s" >&2
  return 1
}

libvirt_stop_one() {
  local pid
  pid=$(libvirt_pid_of "$1") || return 0
  kill "$pid" 2>/dev/null || true
  libvirt_wait_gone "$pid" || { kill -9 "$pid" 2>/dev/null || true; libvirt_wait_gone "$pid" || true; }
}

libvirt_down() {
  if [ "$libvirt_started_libvirtd" = 1 ]; then libvirt_stop_one libvirtd; fi
  if [ "$libvirt_started_virtlogd" = 1 ]; then libvirt_stop_one virtlogd; fi
  libvirt_started_libvirtd=0 libvirt_started_virtlogd=0
}

libvirt_restart() {
  libvirt_stop_one libvirtd
  libvirtd -d
}
