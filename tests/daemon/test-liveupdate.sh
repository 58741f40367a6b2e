#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Host live update (docs/live-update.md) with a real vmmgrd and real QEMU
# guests that spend CPU, on this machine's cgroups (suite qemu).  The
# "kexec" here is a restart of vmmgrd under another boot id (the
# VMMGR_BOOT_ID_FILE seam); the real-kernel tier does a real kexec.
#
#   1. prepare, a second prepare refused, abort: nothing changed
#   2. prepare, the VMs and vmmgrd stop, vmmgrd starts under a new boot
#      id: one VM comes back (restored: no earnings for the blackout,
#      charged what its new QEMU used), one does not (missing after the
#      deadline), then comes back late (restored, done)
#
# Usage: test-liveupdate.sh VMMGRD VMMGRCTL
set -euo pipefail

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/boot-sector.sh"

vmmgrd=$1
ctl=$2
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (cgroups)"; exit 77; }

dir=$(mktemp -d /tmp/vmmgr-test-lu-XXXXXX)
sock=$dir/vmmgr.sock
subtree=vmmgr-test-lu-$$.slice
pids=()
daemon_pid=

cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
        for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
        sleep 0.3
        for h in /sys/fs/cgroup/*/"$subtree" /sys/fs/cgroup/"$subtree"; do
                [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        rm -rf "$dir"
}
trap cleanup EXIT

# vmmgrctl VERB ... on this test's vmmgrd.
vctl() { "$ctl" "$@" --socket "$sock"; }
fail() { echo "FAIL: $*"; echo "--- vmmgrd log ---"; tail -30 "$dir/vmmgrd.log" || true; exit 1; }
ok() { echo "ok: $*"; }

spin_boot_sector "$dir/boot.img"
cat >"$dir/vmmgrd.conf" <<EOF
[class lu]
vcpus = 1
baseline = 20%
cap = 120s
launch = 0s
EOF
echo 11111111-1111-4111-8111-111111111111 >"$dir/boot-old"
echo 22222222-2222-4222-8222-222222222222 >"$dir/boot-new"

start_daemon() { # start_daemon BOOTFILE
        VMMGR_BOOT_ID_FILE=$1 "$vmmgrd" --foreground --state-dir "$dir/state" --socket "$sock" \
                --subtree "$subtree" --config "$dir/vmmgrd.conf" --remove-subtree-on-exit >>"$dir/vmmgrd.log" 2>&1 &
        daemon_pid=$!
        for _ in $(seq 100); do
                vctl vm list >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        fail "vmmgrd did not answer"
}

stop_daemon() {
        kill "$daemon_pid"
        wait "$daemon_pid" || true
        daemon_pid=
}

start_vm() { # start_vm NAME UUID
        qemu-system-x86_64 -accel tcg -nodefaults -display none -m 32 -uuid "$2" \
                -drive "file=$dir/boot.img,format=raw,if=floppy,readonly=on" \
                -qmp "unix:$dir/$1.qmp,server=on,wait=off" -daemonize -pidfile "$dir/$1.pid"
}

stop_vm() { # stop_vm NAME: the QEMU goes (vmmgrd sees its link drop)
        local p; p=$(cat "$dir/$1.pid")
        kill "$p"
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        rm -f "$dir/$1.pid"
}

lu_json() { vctl live-update status --json; }
# field PY-EXPR: evaluates an expression over the live update's JSON (d).
field() { lu_json | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

u1=6a1c1f3e-0000-4000-8000-00000000a001
u2=6a1c1f3e-0000-4000-8000-00000000a002

start_daemon "$dir/boot-old"
start_vm vm1 "$u1"
start_vm vm2 "$u2"
sleep 0.3
vctl vm add "$u1" --qmp "$dir/vm1.qmp" --class lu >/dev/null
vctl vm add "$u2" --qmp "$dir/vm2.qmp" --class lu >/dev/null
vctl credits inject "$u1" 30s >/dev/null
vctl credits inject "$u2" 30s >/dev/null
sleep 1

# ---- 1. prepare, prepare again, abort -----------------------------------------
vctl live-update prepare --deadline 3 >/dev/null || fail "prepare"
[ "$(field 'd["state"]')" = prepared ] || fail "not prepared"
[ "$(field 'len(d["vms"])')" = 2 ] || fail "prepare did not record both VMs"
[ "$(field 'd["prepared_boot_id"]')" = 11111111-1111-4111-8111-111111111111 ] || fail "boot id"
rc=0; vctl live-update prepare >/dev/null 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "a second prepare: exit $rc, expected 4 (conflict)"
ok "prepared; a second prepare refused"
vctl live-update abort >/dev/null || fail "abort"
[ "$(field 'd["state"]')" = none ] || fail "abort left $(field 'd["state"]')"
rc=0; vctl live-update abort >/dev/null 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "abort with nothing prepared: exit $rc, expected 4"
ok "aborted; nothing to abort then"

# ---- 2. prepare, the jump, the restore -------------------------------------------
vctl live-update prepare --deadline 3 >/dev/null || fail "prepare again"
sleep 1 # the VMs keep spending after prepare
stop_vm vm1
stop_vm vm2
sleep 0.5
stop_daemon
ok "prepared, VMs and vmmgrd stopped"

start_daemon "$dir/boot-new"
[ "$(field 'd["state"]')" = restoring ] || fail "not restoring after the new boot: $(field 'd["state"]')"
[ "$(field 'd["current_boot_id"]')" = 22222222-2222-4222-8222-222222222222 ] || fail "current boot id"
start_vm vm1 "$u1"
for _ in $(seq 60); do
        [ "$(field '[v["state"] for v in d["vms"] if v["uuid"] == "'$u1'"][0]')" = restored ] && break
        sleep 0.2
done
sleep 3.5 # past the deadline for vm2
lu_json >"$dir/restore.json"
python3 - "$dir/restore.json" "$u1" "$u2" <<'EOF' || fail "restore accounting"
import json, sys
d = json.load(open(sys.argv[1]))
vms = {v["uuid"]: v for v in d["vms"]}
v1, v2 = vms[sys.argv[2]], vms[sys.argv[3]]
assert v1["state"] == "restored", v1
assert v2["state"] == "missing" and "not back" in v2.get("error", ""), v2
aj, rs = v1["at_jump"], v1["restored"]
# No earnings for the blackout; what the new QEMU used before it was bound
# is charged; nothing else moved.
assert rs["earned_usec"] == aj["earned_usec"], (aj, rs)
assert rs["available_usec"] == aj["available_usec"] - v1["charged_on_return_usec"], (aj, rs, v1)
assert v1["blackout_usec"] >= 1_000_000, v1
# The ledger at the jump is the prepared one plus what happened after
# prepare (spending while the VM kept running): never more available.
assert aj["spent_usec"] >= v1["prepared"]["spent_usec"], v1
print("restored vm1: available %d -> %d usec, blackout %.2f s, charged on return %d usec"
      % (aj["available_usec"], rs["available_usec"], v1["blackout_usec"] / 1e6, v1["charged_on_return_usec"]))
EOF
ok "vm1 restored without blackout earnings; vm2 missing after the deadline"

# vm2's ledger stays frozen while it is missing: no earnings.
e1=$(vctl credits show "$u2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["earned_usec"])' 2>/dev/null || echo none)
sleep 1
e2=$(vctl credits show "$u2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["earned_usec"])' 2>/dev/null || echo none)
[ "$e1" = "$e2" ] || fail "missing vm2 earned while gone: $e1 -> $e2"

start_vm vm2 "$u2"
for _ in $(seq 60); do
        [ "$(field 'd["state"]')" = "done" ] && break
        sleep 0.2
done
[ "$(field 'd["state"]')" = "done" ] || fail "not done after vm2 came back: $(lu_json)"
[ "$(field 'd["restore_ms"] > 0')" = True ] || fail "restore_ms"
vctl events | grep -q live-update-missing || fail "no live-update-missing event"
ok "vm2 restored late; done in $(field 'd["restore_ms"]') ms"
echo "PASS"
