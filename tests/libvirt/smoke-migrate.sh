#!/usr/bin/env bash
# A real libvirt live migration between two hosts on one machine
# (tests/libvirt/with-two-libvirtd): a type='qemu' domain that boots the
# spinning boot sector from a floppy is defined and started on host a,
# `virsh migrate --live --p2p --persistent --undefinesource` moves it to
# host b over the veth, and then it runs on b (domstate running, its QEMU
# in b's network namespace and cgroups, its vCPU thread burning CPU) and is
# gone from a (no definition, QEMU ended).  The lifecycle events libvirt
# sent on each side are checked and printed with their times:
#   b: STARTED_MIGRATED, RESUMED_MIGRATED
#   a: SUSPENDED_MIGRATED, STOPPED_MIGRATED
# (vmmgr hands a domain's credits over at these events, docs/migration.md).
#
# The floppy is <readonly/>: libvirt refuses to migrate a writable disk
# that is not on a shared file system or opened with cache='none' ("Unsafe
# migration: Migration without shared storage is unsafe"); the image is in
# $VMMGR_LIBVIRT_SHARED, at the same path on both hosts.
#
# Run directly it re-runs itself under with-two-libvirtd.  Exit status: 0
# pass, 1 failure (the reason is printed), 77 skipped (not root, libvirt's
# packages missing, or no namespaces / veth pairs here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${VMMGR_LIBVIRT_TWO:-}" ]; then
  exec "$here/with-two-libvirtd" "$here/smoke-migrate.sh" "$@"
fi
# shellcheck source=tests/libvirt/spin-domain.sh
. "$here/spin-domain.sh"

A=$VMMGR_LIBVIRT_A_URI B=$VMMGR_LIBVIRT_B_URI
name=vmmgr-migsmoke-$$
tmp=$(mktemp -d "$VMMGR_LIBVIRT_SHARED/migsmoke.XXXXXX")
now_ms() { date +%s%3N; }
watchers=()

dump() {
  local x f
  for x in a b; do
    f=$tmp/events-$x
    [ -s "$f" ] && { echo "--- events on $x" >&2; cat "$f" >&2; }
  done
  for x in A B; do
    f=$(eval echo "\$VMMGR_LIBVIRT_${x}_DIR")/log/libvirtd.log
    [ -s "$f" ] && { echo "--- libvirtd.log of ${x,} (last 15 lines)" >&2; tail -n 15 "$f" >&2; }
  done
  return 0
}
fail() { echo "FAIL: $*" >&2; dump; exit 1; }
cleanup() {
  local w
  for w in "${watchers[@]}"; do kill -INT "$w" 2>/dev/null || true; done
  for w in "${watchers[@]}"; do wait "$w" 2>/dev/null || true; done
  virsh -q -c "$A" destroy "$name" >/dev/null 2>&1 || true
  virsh -q -c "$A" undefine "$name" >/dev/null 2>&1 || true
  virsh -q -c "$B" destroy "$name" >/dev/null 2>&1 || true
  virsh -q -c "$B" undefine "$name" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

spin_boot_sector "$tmp/boot.img"
spin_domain_xml "$name" "$tmp/boot.img" readonly >"$tmp/domain.xml"
spin_domain_xml "$name-probe" "$tmp/boot.img" readonly >"$tmp/probe.xml"

# The QEMU of NAME on host X (its pid file in X's /run/libvirt/qemu).
qemu_pid() { # qemu_pid X
  local d; d=$(eval echo "\$VMMGR_LIBVIRT_${1^^}_DIR")
  cat "$d/run/qemu/$name.pid" 2>/dev/null
}
vcpu_tid() { # vcpu_tid PID
  local t
  for t in /proc/"$1"/task/*; do
    case $(cat "$t/comm" 2>/dev/null) in "CPU 0/"*) echo "${t##*/}"; return 0 ;; esac
  done
  return 1
}
# CPU time (ticks) of QEMU PID's vCPU 0 thread over 0.5 s.
vcpu_ticks() { # vcpu_ticks PID TID
  local a b
  a=$(awk '{print $14 + $15}' "/proc/$1/task/$2/stat")
  sleep 0.5
  b=$(awk '{print $14 + $15}' "/proc/$1/task/$2/stat")
  echo $((b - a))
}
check_running_on() { # check_running_on X URI
  local x=$1 uri=$2 state pid tid ticks xpid cg
  state=$(virsh -q -c "$uri" domstate "$name" 2>&1) || fail "domstate on $x: $state"
  [ "$state" = running ] || fail "domstate on $x is '$state', not running"
  pid=$(qemu_pid "$x") || fail "no QEMU pid file on $x"
  [ -d "/proc/$pid" ] || fail "QEMU $pid (host $x) is not there"
  xpid=$(eval echo "\$VMMGR_LIBVIRT_${x^^}_PID")
  [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink "/proc/$xpid/ns/net")" ] \
    || fail "QEMU $pid is not in host $x's network namespace"
  tid=$(vcpu_tid "$pid") || fail "no 'CPU 0/...' thread in QEMU $pid (host $x)"
  cg=$(awk -F: '$2 == "cpu" {print $3}' "/proc/$pid/task/$tid/cgroup")
  case $cg in
    */vmmgr-2lv-*-$x/machine/*/vcpu0) ;;
    *) fail "vCPU 0 of QEMU $pid is not in host $x's vcpu0 group: $cg" ;;
  esac
  ticks=$(vcpu_ticks "$pid" "$tid")
  [ "$ticks" -gt 0 ] || fail "vCPU thread $tid of QEMU $pid (host $x) did not run"
  echo "on $x: running, QEMU $pid, vCPU 0 thread $tid: $ticks ticks in 0.5 s, cpu cgroup $cg"
}

t0=$(now_ms)
virsh -q -c "$A" define "$tmp/domain.xml" >/dev/null || fail "virsh define on a"
virsh -q -c "$A" start "$name" >/dev/null || fail "virsh start on a"
echo "define + start on a: $(($(now_ms) - t0)) ms"
check_running_on a "$A"
pid_a=$(qemu_pid a)

# Event watchers on both hosts; each is known to listen once it has seen a
# probe domain defined and undefined.
for x in a b; do
  uri=$A; [ "$x" = b ] && uri=$B
  virsh -c "$uri" event --all --loop --timestamp >"$tmp/events-$x" 2>&1 &
  watchers+=($!)
done
for x in a b; do
  uri=$A; [ "$x" = b ] && uri=$B
  ok=0
  for ((i = 0; i < 50; i++)); do
    virsh -q -c "$uri" define "$tmp/probe.xml" >/dev/null 2>&1 || fail "probe define on $x"
    virsh -q -c "$uri" undefine "$name-probe" >/dev/null 2>&1 || fail "probe undefine on $x"
    if grep -q "'$name-probe': Undefined" "$tmp/events-$x"; then ok=1; break; fi
    sleep 0.1
  done
  [ "$ok" -eq 1 ] || fail "virsh event on $x saw no event"
done

t1=$(now_ms)
out=$(virsh -c "$A" migrate --live --p2p --persistent --undefinesource \
        "$name" "$VMMGR_LIBVIRT_B_TCP_URI" 2>&1) \
  || fail "virsh migrate --live --p2p $name $VMMGR_LIBVIRT_B_TCP_URI: $out"
t2=$(now_ms)
echo "virsh migrate --live --p2p a -> b ($VMMGR_LIBVIRT_B_TCP_URI): $((t2 - t1)) ms"

check_running_on b "$B"
pid_b=$(qemu_pid b)
[ "$pid_b" != "$pid_a" ] || fail "same QEMU pid on both hosts"

# Gone from a: no domain (not even defined), its QEMU ended.
names_a=$(virsh -q -c "$A" list --all --name) || fail "virsh list on a"
if grep -qx "$name" <<<"$names_a"; then
  fail "$name is still on a: $(virsh -q -c "$A" domstate "$name" 2>&1)"
fi
for ((i = 0; i < 50; i++)); do
  [ -d "/proc/$pid_a" ] || break
  sleep 0.1
done
[ ! -d "/proc/$pid_a" ] || fail "a's QEMU $pid_a still there after the migration"
info_b=$(virsh -q -c "$B" dominfo "$name") || fail "virsh dominfo on b"
grep -Eq '^Persistent: +yes' <<<"$info_b" || fail "$name is not persistent on b"
echo "gone from a (QEMU $pid_a ended, not defined); persistent on b"

# The lifecycle events: in this order on each side (and the migration's
# job-completed on a).  The source's STOPPED_MIGRATED comes after the
# destination's RESUMED_MIGRATED (libvirt's Confirm phase).
for ((i = 0; i < 50; i++)); do
  grep -q "'$name': Stopped Migrated" "$tmp/events-a" \
    && grep -q "'$name': Resumed Migrated" "$tmp/events-b" && break
  sleep 0.1
done
for w in "${watchers[@]}"; do kill -INT "$w" 2>/dev/null || true; done
for w in "${watchers[@]}"; do wait "$w" 2>/dev/null || true; done
watchers=()
lifecycle() { # lifecycle X: "Event Detail" per line, in order
  sed -n "s/.*event 'lifecycle' for domain '$name': //p" "$tmp/events-$1" | paste -sd ,
}
la=$(lifecycle a) lb=$(lifecycle b)
[ "$la" = "Suspended Migrated,Stopped Migrated" ] \
  || fail "lifecycle events on a: '$la' (expected Suspended Migrated,Stopped Migrated)"
[ "$lb" = "Started Migrated,Resumed Migrated" ] \
  || [ "$lb" = "Started Migrated,Defined Added,Resumed Migrated" ] \
  || [ "$lb" = "Started Migrated,Resumed Migrated,Defined Added" ] \
  || fail "lifecycle events on b: '$lb' (expected Started Migrated,[Defined Added,]Resumed Migrated)"
grep -q "event 'job-completed' for domain '$name'" "$tmp/events-a" \
  || fail "no job-completed event on a"
echo "events (a and b, one clock, in time order):"
for x in a b; do
  grep -E "^[0-9-]+ [0-9:.+]+: event '[a-z-]+' for domain '$name'" "$tmp/events-$x" \
    | sed "s/^/  $x /"
done | sort -k2,3 | sed -E "s/^  ([ab]) ([0-9-]+) ([0-9:.]+)\+[0-9]+: event /  \3 \1: /"
downtime=$(sed -n 's/^[[:space:]]*downtime: //p' "$tmp/events-a" | head -n 1)
echo "QEMU downtime (job-completed on a): ${downtime:-?} ms"
echo "PASS: libvirt live migration a -> b"
