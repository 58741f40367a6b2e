#!/usr/bin/env bash
# vmmgrd with a real libvirtd (issue 11, item 6; docs/libvirt-testing.md):
# a type='qemu' domain on the spinning boot sector with a <vmmgr:credits>
# element, under tests/libvirt/with-libvirtd, with vmmgr-libvirt-hook
# installed as libvirt's qemu.d hook.  In order:
#   1. managed within 2 s of `virsh create` returning (source libvirt, the
#      pid libvirt's, libvirt's domain group carries vmmgr's quota);
#   2. bursts on its launch credits, then is held near its baseline when
#      they run out (CPU time of the vCPU thread from /proc);
#   3. `virsh schedinfo --set global_quota` (libvirt rewrites the domain's
#      bandwidth): vmmgr's limit is back within 2 s, with an event;
#   3b. `virsh setvcpus --live` (vCPU hotplug): vmmgr counts the new vCPU
#      (libvirt's new vcpuN group) and the spec follows, with an event;
#   3c. a spec set through vmmgr's API is written to the domain's metadata
#      and stays (the metadata-change event that follows changes nothing);
#   4. libvirtd restarted while the domain runs: QEMU survives, the domain
#      stays managed (same pid), the hook's reconnect exits 0 (QEMU would
#      be killed otherwise);
#   5. vmmgrd killed with SIGKILL and started again: re-adopted within 2 s,
#      and no credit created (what it has afterwards is at most what it
#      had plus what it earned meanwhile);
#   6. `virsh destroy`: let go within 2 s, its final ledger in the
#      "unregister" event (reason "destroyed");
#   7. vmmgrd down while a domain starts: `virsh create` is not held up by
#      more than the hook's bound, and the domain is adopted within 2 s of
#      vmmgrd coming up.
# usage: test-libvirt-vmmgrd.sh VMMGRD VMMGRCTL HOOK
# Run directly it re-runs itself under with-libvirtd (exit 77 when libvirt's
# packages are missing or not root).  Prints the measured times.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 3 ] || { echo "usage: $0 VMMGRD VMMGRCTL HOOK" >&2; exit 2; }
vmmgrd=$(readlink -f "$1") vmmgrctl=$(readlink -f "$2") hook=$(readlink -f "$3")
if [ -z "${VMMGR_LIBVIRT_DIR:-}" ]; then
  command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
  export VMMGR_LIBVIRT_SETUP="mkdir -p /etc/libvirt/hooks/qemu.d && install -m 0755 '$hook' /etc/libvirt/hooks/qemu.d/vmmgr"
  exec "$here/with-libvirtd" "$here/test-libvirt-vmmgrd.sh" "$vmmgrd" "$vmmgrctl" "$hook"
fi
# shellcheck source=tests/common/boot-sector.sh
. "$here/../common/boot-sector.sh"

fail() { echo "FAIL: $*" >&2; dump; exit 1; }
now_ms() { date +%s%3N; }
ns=https://vmmgr.example.org/xmlns/credits/1
tmp=$(mktemp -d /tmp/vmmgr-lvd.XXXXXX)
subtree=vmmgr-lvtest-$$
# libvirt runs hooks with a clean environment: the hook talks to the
# default socket, /run/vmmgr/vmmgr.sock.  In this mount namespace that
# directory is a private one (the host's /run/vmmgr is never touched).
made_run_dir=""
if [ ! -d /run/vmmgr ]; then mkdir /run/vmmgr; made_run_dir=1; fi
mkdir "$tmp/run"
mount --bind "$tmp/run" /run/vmmgr
sock=/run/vmmgr/vmmgr.sock
export VMMGR_SOCKET=$sock
daemon_pid=""
names=()

dump() {
  echo "--- vmmgrd log (last 40 lines)" >&2
  tail -n 40 "$tmp/vmmgrd.log" >&2 2>/dev/null || true
}
cleanup() {
  local n
  for n in "${names[@]}"; do virsh -q destroy "$n" >/dev/null 2>&1 || true; done
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  # vmmgr's own subtree only, in every hierarchy it made it in (the
  # domains' groups are libvirt's).
  find /sys/fs/cgroup -maxdepth 3 -type d -name "$subtree" 2>/dev/null | while read -r d; do
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  umount /run/vmmgr 2>/dev/null || true
  [ -z "$made_run_dir" ] || rmdir /run/vmmgr 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/vmmgrd.conf" <<EOF
[daemon]
state_dir = $tmp/state
socket = $sock
subtree = $subtree
tick_ms = 100
commit_interval_ms = 500

[libvirt]
enabled = yes
uri = qemu:///system

[class lvtest]
like = t3.small
baseline = 20%
cap = 2s
launch = 3s
mode = standard
EOF

start_vmmgrd() {
  "$vmmgrd" --config "$tmp/vmmgrd.conf" --remove-subtree-on-exit >>"$tmp/vmmgrd.log" 2>&1 &
  daemon_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -S "$sock" ] && "$vmmgrctl" vm list >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || fail "vmmgrd exited at start"
    sleep 0.1
  done
  fail "vmmgrd did not answer within 10 s"
}

spin_boot_sector "$tmp/boot.img"

domain_xml() { # domain_xml NAME UUID (1 vCPU, up to 2 by hotplug)
  cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>
    <vmmgr:credits xmlns:vmmgr="$ns" class="lvtest"/>
  </metadata>
  <memory unit='MiB'>32</memory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='fd'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/><source file='$tmp/boot.img'/><target dev='fda' bus='fdc'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# vm_field UUID KEY: a field of `vmmgrctl vm list --json` ("" when absent).
vm_field() {
  "$vmmgrctl" vm list --json 2>/dev/null | python3 -c '
import json, sys
uuid, key = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin)
vms = data["vms"] if isinstance(data, dict) else data
for v in vms:
    if v["uuid"] == uuid:
        x = v.get(key)
        print("" if x is None else x)
' "$1" "$2"
}
available() { # available UUID -> usec of credits available now
  "$vmmgrctl" credits show "$1" --json | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["available_usec"] if "available_usec" in c else c["ledger"]["available_usec"])'
}
wait_managed() { # wait_managed UUID PID DEADLINE_MS -> ms it took
  local t0; t0=$(now_ms)
  while :; do
    if [ "$(vm_field "$1" link)" = bound ] && [ "$(vm_field "$1" pid)" = "$2" ]; then
      echo $(($(now_ms) - t0)); return 0
    fi
    [ $(($(now_ms) - t0)) -lt "$3" ] || return 1
    sleep 0.05
  done
}
vcpu_tid() { # vcpu_tid PID
  local t
  for t in /proc/"$1"/task/*; do
    case $(cat "$t/comm") in "CPU 0/"*) echo "${t##*/}"; return 0 ;; esac
  done
  return 1
}
run_ns() { awk '{print $1}' "/proc/$1/task/$2/schedstat"; }
share() { # share PID TID SECONDS -> percent of one CPU the thread ran
  local a b; a=$(run_ns "$1" "$2"); sleep "$3"; b=$(run_ns "$1" "$2")
  echo $(((b - a) / 10000000 / $3))
}
domain_cpu_dir() { # the domain group in the cpu hierarchy
  local p
  p=$(awk -F: '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == "cpu") print $3}' "/proc/$1/cgroup")
  if [ -n "$p" ]; then echo "/sys/fs/cgroup/cpu${p%/emulator}"; return; fi
  p=$(awk -F: '$1 == "0" {print $3}' "/proc/$1/cgroup")
  echo "/sys/fs/cgroup${p%/emulator}"
}
quota_of() { # the domain group's quota in usec, -1 / max for none
  if [ -f "$1/cpu.cfs_quota_us" ]; then cat "$1/cpu.cfs_quota_us"; else awk '{print $1}' "$1/cpu.max"; fi
}

start_vmmgrd

# --- 1. managed within 2 s of virsh create ---------------------------------
name=vmmgr-lvd-$$ uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
names+=("$name")
domain_xml "$name" "$uuid" >"$tmp/a.xml"
t0=$(now_ms)
virsh -q create "$tmp/a.xml" >/dev/null || fail "virsh create"
t1=$(now_ms)
pid=$(cat "/run/libvirt/qemu/$name.pid")
ms=$(wait_managed "$uuid" "$pid" 2000) || fail "domain not managed within 2 s of virsh create"
echo "virsh create: $((t1 - t0)) ms (the hook included); managed $ms ms after it returned"
[ "$(vm_field "$uuid" source)" = libvirt ] || fail "source is not libvirt"
[ "$(vm_field "$uuid" libvirt_domain)" = "$name" ] || fail "libvirt_domain is not $name"
dom_dir=$(domain_cpu_dir "$pid")
echo "domain group: $dom_dir"
grep -q "libvirt hook: domain $name ($uuid) started" "$tmp/vmmgrd.log" \
  || fail "vmmgrd did not hear the hook's started"
[ ! -d "/sys/fs/cgroup/cpu/$subtree/vm-$uuid" ] || fail "vmmgr created its own groups for a libvirt domain"

# --- 2. bursts, then held near baseline --------------------------------------
tid=$(vcpu_tid "$pid") || fail "no vCPU thread"
b=$(share "$pid" "$tid" 1)
q=$(quota_of "$dom_dir")
echo "bursting (launch credits): vCPU ran $b % of a CPU over 1 s; quota $q"
# vmmgr sets no limit while there are credits; what the vCPU gets then is
# the host's to give (meson runs other tests beside this one on 2 cores):
# clearly above its 20 % baseline is what says it is not held there.
[ "$q" = -1 ] || [ "$q" = max ] || fail "limited while it has launch credits: quota $q"
[ "$b" -ge 35 ] || fail "not bursting on launch credits: $b %"
# Launch 3 s + cap 2 s: out of credits within about 6 s.
for ((i = 0; i < 100; i++)); do
  st=$("$vmmgrctl" credits show "$uuid" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$st" = throttled ] || [ "$st" = baseline ] && break
  sleep 0.1
done
sleep 1
h=$(share "$pid" "$tid" 3)
q=$(quota_of "$dom_dir")
echo "out of credits ($st): vCPU ran $h % of a CPU over 3 s (baseline 20 %); domain quota $q"
[ "$h" -ge 8 ] && [ "$h" -le 40 ] || fail "not held near its 20 % baseline: $h %"
[ "$q" != -1 ] && [ "$q" != max ] || fail "no quota on libvirt's domain group"

# --- 3. libvirt rewrites the bandwidth: vmmgr's comes back ------------------
virsh -q schedinfo "$name" --live global_quota=900000 >/dev/null || fail "virsh schedinfo"
t0=$(now_ms)
while [ "$(quota_of "$dom_dir")" = 900000 ]; do
  [ $(($(now_ms) - t0)) -lt 2000 ] || fail "vmmgr's quota not back within 2 s of virsh schedinfo"
  sleep 0.05
done
echo "virsh schedinfo global_quota=900000: vmmgr's quota ($(quota_of "$dom_dir")) back in $(($(now_ms) - t0)) ms"
"$vmmgrctl" events --json | grep -q '"reapplied"' || fail "no 'reapplied' event"

# --- 3b. vCPU hotplug: the earn rate follows -----------------------------------
virsh -q setvcpus "$name" 2 --live >/dev/null || fail "virsh setvcpus --live"
t0=$(now_ms)
while [ "$(vm_field "$uuid" vcpus)" != 2 ]; do
  [ $(($(now_ms) - t0)) -lt 8000 ] || fail "vCPU count not 2 within 8 s of virsh setvcpus"
  sleep 0.1
done
echo "virsh setvcpus 2 --live: vmmgr counts 2 vCPUs after $(($(now_ms) - t0)) ms"
"$vmmgrctl" credits show "$uuid" --json | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["spec"]["vcpus"] == 2, c["spec"]' || fail "the credit spec does not have 2 vCPUs"
"$vmmgrctl" events --json | grep -q '"vcpus"' || fail "no 'vcpus' event"

# --- 3c. a spec changed through vmmgr's API lands in the domain's metadata ----
"$vmmgrctl" credits set "$uuid" --baseline 25% >/dev/null || fail "vmmgrctl credits set"
t0=$(now_ms)
until virsh -q metadata "$name" "$ns" 2>/dev/null | grep -q 'baseline="25%"\|baseline="0.25"'; do
  [ $(($(now_ms) - t0)) -lt 3000 ] || fail "the new baseline not in the domain's metadata within 3 s: $(virsh -q metadata "$name" "$ns" 2>&1)"
  sleep 0.1
done
echo "credits set --baseline 25%: in the domain's metadata after $(($(now_ms) - t0)) ms: $(virsh -q metadata "$name" "$ns")"
sleep 0.5 # the metadata-change event comes back: the spec must stay 25 %
"$vmmgrctl" credits show "$uuid" --json | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert abs(c["spec"]["baseline"] - 0.25) < 1e-9, c["spec"]' || fail "the spec did not stay at 25 %"

# --- 4. libvirtd restarted ----------------------------------------------------
"$here/with-libvirtd" --restart-libvirtd
sleep 1
kill -0 "$pid" 2>/dev/null || fail "QEMU $pid died when libvirtd restarted (the reconnect hook failed?)"
[ "$(vm_field "$uuid" link)" = bound ] && [ "$(vm_field "$uuid" pid)" = "$pid" ] \
  || fail "not managed after libvirtd restarted"
grep -q "libvirt: connected" "$tmp/vmmgrd.log" || fail "vmmgrd did not reconnect"
echo "libvirtd restarted: QEMU $pid alive, still managed"

# --- 5. vmmgrd SIGKILLed and restarted: no credit created ---------------------
before=$(available "$uuid")
t_kill=$(now_ms)
kill -KILL "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
sleep 2
start_vmmgrd
ms=$(wait_managed "$uuid" "$pid" 2000) || fail "not re-adopted within 2 s of vmmgrd's start"
after=$(available "$uuid")
elapsed=$(($(now_ms) - t_kill))
# Earnings meanwhile: 25 % of each of its 2 vCPUs; 0.3 s of slack for the
# measurement.
limit=$((before + elapsed * 500 + 300000))
echo "vmmgrd SIGKILLed and restarted: re-adopted in $ms ms; credits $before -> $after usec over $elapsed ms (at most $limit)"
[ "$after" -le "$limit" ] || fail "credits created across the restart: $after > $limit"

# --- 6. virsh destroy: let go, final ledger kept -------------------------------
t0=$(now_ms)
virsh -q destroy "$name" >/dev/null || fail "virsh destroy"
while [ -n "$(vm_field "$uuid" uuid)" ]; do
  [ $(($(now_ms) - t0)) -lt 2000 ] || fail "still registered 2 s after virsh destroy"
  sleep 0.05
done
echo "virsh destroy: let go in $(($(now_ms) - t0)) ms"
"$vmmgrctl" events --json | python3 -c '
import json, sys
uuid = sys.argv[1]
data = json.load(sys.stdin)
evs = data["events"] if isinstance(data, dict) else data
u = [e for e in evs if e.get("vm") == uuid and e.get("kind") == "unregister"]
assert u, "no unregister event"
d = u[-1]["detail"]
assert d["reason"] == "destroyed", d
assert "available_usec" in d and "spent_usec" in d and d["spent_usec"] > 0, d
print("unregister event:", json.dumps(d, sort_keys=True))
' "$uuid" || fail "no final ledger in the unregister event"

# --- 7. vmmgrd down while a domain starts ---------------------------------------
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
name2=vmmgr-lvd2-$$ uuid2=$(python3 -c 'import uuid; print(uuid.uuid4())')
names+=("$name2")
domain_xml "$name2" "$uuid2" >"$tmp/b.xml"
t0=$(now_ms)
virsh -q create "$tmp/b.xml" >/dev/null || fail "virsh create with vmmgrd down"
t1=$(now_ms)
echo "virsh create with vmmgrd down: $((t1 - t0)) ms"
[ $((t1 - t0)) -lt 5000 ] || fail "libvirt held up by $((t1 - t0)) ms with vmmgrd down"
pid2=$(cat "/run/libvirt/qemu/$name2.pid")
start_vmmgrd
ms=$(wait_managed "$uuid2" "$pid2" 2000) || fail "not adopted within 2 s of vmmgrd's start"
echo "adopted $ms ms after vmmgrd answered"
echo "PASS: vmmgrd with libvirt"
