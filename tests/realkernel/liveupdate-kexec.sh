#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside a test kernel (tests/realkernel/check FLAVOUR liveupdate): a
# host live update with a real kexec (docs/live-update.md).
#
# Phase 1 (the first kernel): vmmgrd and a real QEMU guest that spends
# credits; `live-update prepare`; the guest keeps spending; the guest and
# vmmgrd stop; vmmgrd's state directory goes to the vmtest share (the disk
# that survives); kexec into the other test kernel.
# Phase 2 (the kernel kexec'd into; the init runs this script again, which
# finds the phase marker on the share): the state directory comes back,
# vmmgrd starts under the new boot id, QEMU starts again under the same
# UUID and QMP socket, and the restored ledger is checked against the one
# prepared: prepared + earnings until the jump - CPU the vCPU used until
# the jump (from /proc, not from vmmgr) = the ledger at the jump; restored
# = at the jump - what the new QEMU used before it was bound, and nothing
# earned for the blackout.
#
# usage: liveupdate-kexec.sh BUILD_DIR FIRST_FLAVOUR SECOND_FLAVOUR SECOND_BZIMAGE
set -u

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/boot-sector.sh"

build=$1 first=$2 second=$3 second_kernel=$4
share=/run/vmtest
work=/tmp/lu
uuid=6a1c1f3e-0000-4000-8000-0000000c0de1
sock=$work/vmmgr.sock
vmmgrd=$build/vmmgr/vmmgrd
ctl=$build/vmmgr/vmmgrctl
tick_usec=100000

fail() {
        echo "FAIL: $*"
        [ -f "$work/vmmgrd.log" ] && tail -20 "$work/vmmgrd.log"
        exit 1
}
vctl() { "$ctl" "$@" --socket "$sock"; }
now_usec() { echo $(($(date +%s%N) / 1000)); }

setup() {
        mkdir -p "$work"
        spin_boot_sector "$work/boot.img"
        cat >"$work/vmmgrd.conf" <<EOF
[class lu]
vcpus = 1
baseline = 20%
cap = 120s
launch = 20s
EOF
}

start_vmmgrd() {
        "$vmmgrd" --foreground --state-dir "$work/state" --socket "$sock" --subtree vmmgr-lu.slice \
                --config "$work/vmmgrd.conf" >>"$work/vmmgrd.log" 2>&1 &
        vmmgrd_pid=$!
        for _ in $(seq 300); do
                vctl vm list >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        fail "vmmgrd did not answer"
}

# QEMU with two monitors: vmmgrd's, and this script's (the vCPU's tid).
start_qemu() {
        qemu-system-x86_64 -accel tcg -nodefaults -display none -m 32 -uuid "$uuid" \
                -drive "file=$work/boot.img,format=raw,if=floppy,readonly=on" \
                -qmp "unix:$work/vm.qmp,server=on,wait=off" -qmp "unix:$work/test.qmp,server=on,wait=off" \
                -daemonize -pidfile "$work/qemu.pid" || fail "QEMU did not start"
        qemu_pid=$(cat "$work/qemu.pid")
        vcpu_tid=$("$ctl" qmp --timeout 60 "$work/test.qmp" query-cpus-fast |
                python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["thread-id"])') ||
                fail "no vCPU thread id from QEMU"
}

qmp() { "$ctl" qmp --timeout 60 "$work/test.qmp" "$@" >/dev/null || fail "QMP $*"; }

# The vCPU thread's CPU time in usec (schedstat: ns on CPU).
vcpu_usec() { read -r ns _ <"/proc/$qemu_pid/task/$vcpu_tid/schedstat" && echo $((ns / 1000)); }

lu() { vctl live-update status --json; }

if [ ! -e "$share/lu-phase2" ]; then
        # ---- phase 1 ------------------------------------------------------
        setup
        mkdir -p "$work/state"
        start_vmmgrd
        start_qemu
        vctl vm add "$uuid" --qmp "$work/vm.qmp" --class lu >/dev/null || fail "vm add"
        sleep 3 # bursting on its launch credits
        # The guest is paused (QMP stop on the test's own monitor) while
        # prepare looks and while the CPU time is read: a command's
        # latency under TCG inside TCG (up to 100 ms) would otherwise be
        # CPU the vCPU used between vmmgr's read and this script's.
        qmp stop
        used_at_prepare=$(vcpu_usec)
        vctl live-update prepare --deadline 300 >/dev/null || fail "prepare"
        qmp cont
        lu >"$share/lu-prepared.json"
        sleep 2 # still running and spending after prepare
        qmp stop
        used_at_jump=$(vcpu_usec)
        kill "$qemu_pid"
        for _ in $(seq 100); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
        sleep 1 # vmmgrd sees QEMU go: its ledger is frozen and committed
        kill "$vmmgrd_pid"
        wait "$vmmgrd_pid"
        echo $((used_at_jump - used_at_prepare)) >"$share/lu-used"
        bank=$(grep -o '"bank":"[a-z]*"' "$share/lu-prepared.json" | head -1)
        echo "phase 1 on the $first kernel: prepared ($bank), the vCPU used $((used_at_jump - used_at_prepare)) usec until the jump"
        rm -rf "$share/lu-state"
        cp -a "$work/state" "$share/lu-state" || fail "cannot keep the state directory"
        cp "$work/vmmgrd.log" "$share/lu-vmmgrd-1.log"
        date +%s%N >"$share/lu-phase2"
        sync
        kexec -l "$second_kernel" --reuse-cmdline || fail "kexec -l $second_kernel"
        echo "kexec into the $second kernel"
        kexec -e
        fail "kexec -e returned"
fi

# ---- phase 2 -------------------------------------------------------------
t_start=$(now_usec)
setup
cp -a "$share/lu-state" "$work/state" || fail "no state directory on the share"
start_vmmgrd
[ "$(lu | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')" = restoring ] ||
        fail "vmmgrd is not restoring on the $second kernel: $(lu)"
start_qemu
for _ in $(seq 600); do
        state=$(lu | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')
        [ "$state" = "done" ] && break
        sleep 0.2
done
[ "$state" = "done" ] || fail "not restored: $(lu)"
lu >"$work/restored.json"
bank=$(vctl credits show "$uuid" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bank"])')
python3 - "$share/lu-prepared.json" "$work/restored.json" "$(cat "$share/lu-used")" "$tick_usec" \
        "$first" "$second" "$bank" <<'EOF' || fail "the restored ledger"
import json, sys
prep = json.load(open(sys.argv[1]))["vms"][0]
d = json.load(open(sys.argv[2]))
v = d["vms"][0]
used, tick = int(sys.argv[3]), int(sys.argv[4])
# Flavours in figure names as the tier writes them: stock-6.12 -> stock_6_12.
frm, to, bank = (a.replace("-", "_").replace(".", "_") for a in sys.argv[5:8])
earn_per_sec = 200000  # 20 % of one vCPU
aj, rs = v["at_jump"], v["restored"]
# The jump: prepared + earnings until the last commit - what the vCPU used.
expected = prep["prepared"]["available_usec"] + (v["at_jump_usec"] - d["prepared_at_usec"]) * earn_per_sec // 1000000 - used
jump_error = aj["available_usec"] - expected
# The restore: nothing earned for the blackout, the new QEMU's use charged.
restore_error = rs["available_usec"] - (aj["available_usec"] - v["charged_on_return_usec"])
print("figure: liveupdate.%s_to_%s.balance_error_usec %d" % (frm, to, jump_error + restore_error))
print("figure: liveupdate.%s_to_%s.restore_ms %d" % (frm, to, d["restore_ms"]))
print("prepared %d usec available, at the jump %d, restored %d; blackout %.1f s; %s bank now"
      % (prep["prepared"]["available_usec"], aj["available_usec"], rs["available_usec"], v["blackout_usec"] / 1e6, bank))
assert v["state"] == "restored", v
assert rs["earned_usec"] == aj["earned_usec"], "earned during the blackout"
assert abs(jump_error) <= tick, "ledger at the jump off by %d usec" % jump_error
assert restore_error == 0, "restore off by %d usec" % restore_error
assert d["prepared_boot_id"] != d["current_boot_id"], "the same boot"
EOF
want_bank=emulated
case $second in stock*) ;; *) want_bank=kernel ;; esac
[ "$bank" = "$want_bank" ] || fail "the $second kernel should give the $want_bank bank, vmmgrd has $bank"
echo "phase 2 on the $second kernel: restored in $(($(now_usec) - t_start)) usec of this script"
kill "$qemu_pid" 2>/dev/null
kill "$vmmgrd_pid" 2>/dev/null
wait "$vmmgrd_pid" 2>/dev/null
echo PASS
