#!/usr/bin/env bash
# The first real check of the libvirt harness (docs/libvirt-testing.md): a
# type='qemu' domain that boots a spinning boot sector from a floppy is
# created, runs, has a QMP monitor and libvirt's per-thread groups, leaves
# the cgroup v1 memory hierarchy alone, and is destroyed.
#
# Run directly it re-runs itself under tests/libvirt/with-libvirtd (exit 77
# when libvirt's packages are missing or it is not root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${VMMGR_LIBVIRT_DIR:-}" ]; then
  exec "$here/with-libvirtd" "$here/smoke.sh" "$@"
fi
# shellcheck source=tests/libvirt/spin-domain.sh
. "$here/spin-domain.sh"

name=vmmgr-smoke-$$
fail() { echo "FAIL: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

tmp=$(mktemp -d /tmp/vmmgr-smoke.XXXXXX)
cleanup() {
  virsh -q destroy "$name" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

spin_boot_sector "$tmp/boot.img"
[ "$(stat -c %s "$tmp/boot.img")" = 512 ] || fail "boot image is not 512 bytes"

spin_domain_xml "$name" "$tmp/boot.img" >"$tmp/domain.xml"

# Directories in the memory v1 hierarchy before the domain (libvirt must
# not create any).
memv1=""
if grep -qE '^[0-9]+:memory:' /proc/self/cgroup && [ -d /sys/fs/cgroup/memory ]; then
  memv1=/sys/fs/cgroup/memory
  find "$memv1" -type d | sort >"$tmp/mem-before"
fi

t0=$(now_ms)
virsh -q create "$tmp/domain.xml" >/dev/null || fail "virsh create"
t1=$(now_ms)
state=$(virsh -q domstate "$name")
[ "$state" = running ] || fail "domstate is '$state', not running"
echo "virsh create: $((t1 - t0)) ms; domstate: $state"

pid=$(cat "/run/libvirt/qemu/$name.pid")
[ -d "/proc/$pid" ] || fail "QEMU (pid $pid) is not there"

# The QMP monitor libvirt holds (its path is in the live status XML).
mon=$(sed -n "s/.*<monitor path='\([^']*\)'.*/\1/p" "/run/libvirt/qemu/$name.xml" | head -n 1)
[ -n "$mon" ] || fail "no monitor path in /run/libvirt/qemu/$name.xml"
[ -S "$mon" ] || fail "monitor $mon is not a socket"
echo "QMP monitor: $mon"

# The vCPU thread spins: its CPU time grows.
vcpu_tid=""
for t in /proc/"$pid"/task/*; do
  case $(cat "$t/comm") in "CPU 0/"*) vcpu_tid=${t##*/} ;; esac
done
[ -n "$vcpu_tid" ] || fail "no 'CPU 0/...' thread in QEMU $pid"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/task/$vcpu_tid/stat"; }
a=$(cpu_ticks); sleep 0.5; b=$(cpu_ticks)
[ "$b" -gt "$a" ] || fail "vCPU thread $vcpu_tid did not run ($a -> $b ticks)"
echo "vCPU 0 thread $vcpu_tid: $((b - a)) ticks in 0.5 s"

# Where libvirt put the threads (cpu controller; v1 or v2).
cg_of() { # cg_of TID CONTROLLER -> path in that hierarchy
  awk -F: -v c="$2" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}' \
    "/proc/$pid/task/$1/cgroup"
}
cpu_ctl=cpu
grep -qE '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/self/cgroup || cpu_ctl=""
if [ -n "$cpu_ctl" ]; then
  vcg=$(cg_of "$vcpu_tid" cpu)
  ecg=$(cg_of "$pid" cpu)
  cpuroot=/sys/fs/cgroup/cpu
else
  vcg=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/task/$vcpu_tid/cgroup")
  ecg=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
  cpuroot=/sys/fs/cgroup
  [ -d /sys/fs/cgroup/unified ] && cpuroot=/sys/fs/cgroup/unified
fi
echo "cgroup (cpu): vcpu0 thread in $cpuroot$vcg"
echo "cgroup (cpu): emulator (main thread) in $cpuroot$ecg"
case $vcg in */vcpu0) ;; *) fail "vCPU 0 is not in a vcpu0 group: $vcg" ;; esac
case $ecg in */emulator) ;; *) fail "the main thread is not in an emulator group: $ecg" ;; esac
[ "${vcg%/vcpu0}" = "${ecg%/emulator}" ] || fail "vcpu0 and emulator under different domain groups"
echo "cgroup (cpu): domain group ${vcg%/vcpu0}"
if [ -n "$cpu_ctl" ] && grep -q '^0::' "/proc/$pid/cgroup" && [ -d /sys/fs/cgroup/unified ]; then
  # Hybrid host: libvirt's v2 backend also places the threads in the v2
  # hierarchy (it has no controllers there; libvirt reads cpu.stat for
  # cpuacct).
  echo "cgroup (v2): vcpu0 thread in /sys/fs/cgroup/unified$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/task/$vcpu_tid/cgroup")"
  echo "cgroup (v2): emulator in /sys/fs/cgroup/unified$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")"
fi
for c in cpuacct cpuset memory; do
  [ -n "$(cg_of "$pid" "$c")" ] && echo "cgroup ($c): QEMU in $(cg_of "$pid" "$c")"
done

# Nothing new in the memory v1 hierarchy, and QEMU stays in libvirtd's
# memory group.
if [ -n "$memv1" ]; then
  find "$memv1" -type d | sort >"$tmp/mem-after"
  new=$(comm -13 "$tmp/mem-before" "$tmp/mem-after" | grep -E 'machine|qemu|libvirt' || true)
  [ -z "$new" ] || fail "libvirt created groups in the memory v1 hierarchy: $new"
  me=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
  qm=$(cg_of "$pid" memory)
  [ "$qm" = "$me" ] || fail "QEMU moved in the memory hierarchy: $qm (harness: $me)"
  echo "memory v1: nothing created; QEMU in $qm like the harness"
fi

t2=$(now_ms)
virsh -q destroy "$name" >/dev/null || fail "virsh destroy"
t3=$(now_ms)
echo "virsh destroy: $((t3 - t2)) ms"
for ((i = 0; i < 50; i++)); do
  [ -d "/proc/$pid" ] || break
  sleep 0.1
done
[ ! -d "/proc/$pid" ] || fail "QEMU $pid still there after destroy"
[ ! -d "$cpuroot${vcg%/vcpu0}" ] || fail "domain group $cpuroot${vcg%/vcpu0} left after destroy"
echo "PASS: libvirt smoke"
