#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# vmmgrd's logs in a real journal (issue 14, item 5).  A private
# systemd-journald runs in a mount namespace of this test's own (tmpfs on
# /run and /var/log/journal there: the host's journal, if it has one, is
# not touched), vmmgrd logs to it through sd_journal_sendv(), and
# `journalctl -o json` reads back what it stored.  With a real QEMU guest:
#   1. --log-target=journal: vmmgrd's start as one entry with PRIORITY=6,
#      CODE_FILE/CODE_LINE/CODE_FUNC, SYSLOG_IDENTIFIER=vmmgrd, through the
#      native protocol (_TRANSPORT=journal); nothing on stderr
#   2. a VM that is not the QEMU it names: PRIORITY=4, VMMGR_VM=<uuid>
#   3. credits injected 8 times within the interval (--log-ratelimit 5/10):
#      5 entries VMMGR_EVENT=inject, VMMGR_VM=<uuid>; after the interval
#      the next comes after a note with VMMGR_SUPPRESSED=3
#   4. vm remove: VMMGR_EVENT=unregister with the VM
#   5. --log-target=auto with stderr the journal's stream (systemd-cat,
#      JOURNAL_STREAM naming it, as systemd sets it for a unit): native
#      entries again, none through the stream; and auto with stderr a
#      file: "info: ..." lines there as always, nothing in the journal
# Skips (77) without root, QEMU, unshare or systemd-journald.
#
# Usage: test-journal.sh VMMGRD VMMGRCTL
set -euo pipefail

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/boot-sector.sh"

vmmgrd=$(readlink -f "$1")
ctl=$(readlink -f "$2")
journald=
for j in /lib/systemd/systemd-journald /usr/lib/systemd/systemd-journald; do
        [ -x "$j" ] && journald=$j && break
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a mount namespace, cgroups)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
[ -n "$journald" ] || { echo "SKIP: no systemd-journald"; exit 77; }
for c in unshare journalctl systemd-cat python3; do
        command -v "$c" >/dev/null || { echo "SKIP: no $c"; exit 77; }
done
if [ -z "${VMMGR_JOURNAL_NS:-}" ]; then
        VMMGR_JOURNAL_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi

# ---- inside the namespace ------------------------------------------------
dir=$(mktemp -d /tmp/vmmgr-test-journal-XXXXXX)
sock=$dir/vmmgr.sock
export VMMGR_SOCKET=$sock
subtree=vmmgr-test-journal-$$.slice
daemon_pid=
journald_pid=

mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal

stop_daemon() {
        [ -n "$daemon_pid" ] || return 0
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=
}
cleanup() {
        set +e
        for f in "$dir"/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
        sleep 0.3
        stop_daemon
        [ -n "$journald_pid" ] && kill "$journald_pid" 2>/dev/null && wait "$journald_pid" 2>/dev/null
        for h in /sys/fs/cgroup/*/"$subtree" /sys/fs/cgroup/"$subtree"; do
                [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        rm -rf "$dir"
        # the tmpfs mounts go with the namespace
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*"
        echo "--- vmmgrd's stderr ---"
        tail -20 "$dir/vmmgrd.log" 2>/dev/null
        echo "--- the journal (vmmgrd) ---"
        journalctl --no-pager -o short SYSLOG_IDENTIFIER=vmmgrd 2>&1 | tail -30
        exit 1
}
ok() { echo "ok: $*"; }

# journald's own messages go to its stderr, not to the host's kmsg.
SYSTEMD_LOG_TARGET=console "$journald" >"$dir/journald.log" 2>&1 &
journald_pid=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
[ -S /run/systemd/journal/socket ] || { cat "$dir/journald.log"; fail "systemd-journald did not start"; }

# entries PYTHON-CONDITION: vmmgrd's entries (JSON objects e) it holds.
entries() {
        journalctl --no-pager -o json 2>/dev/null | python3 -c '
import json, sys
cond = sys.argv[1]
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if eval(cond, {}, {"e": e}):
        print(json.dumps(e, sort_keys=True))
' "$1"
}
count() { entries "$1" | wc -l; }
# wait_entries N SECONDS WHAT PYTHON-CONDITION: until at least N match.
wait_entries() {
        local n=$1 deadline=$((SECONDS + $2)) what=$3 cond=$4
        while [ "$(count "$cond")" -lt "$n" ]; do
                [ "$SECONDS" -ge "$deadline" ] && fail "$what (waited $2 s; $(count "$cond") of $n)"
                sleep 0.2
        done
}
show() { # show PYTHON-CONDITION: the first such entry, its fields of interest
        entries "$1" >"$dir/shown"
        head -n 1 "$dir/shown" | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
print("  " + " ".join(k + "=" + json.dumps(e[k]) for k in sorted(e)
      if not k.startswith("_") or k == "_TRANSPORT"))'
}

spin_boot_sector "$dir/boot.img"
cat >"$dir/vmmgrd.conf" <<EOF
[daemon]
subtree = $subtree

[libvirt]
enabled = no

[class tj]
vcpus = 1
baseline = 20%
cap = 600s
launch = 0s
EOF
uuid_a=aaaaaaaa-0000-4000-8000-0000000000a1
uuid_wrong=aaaaaaaa-0000-4000-8000-0000000000ff
qemu-system-x86_64 -accel tcg -nodefaults -display none -m 32 -uuid "$uuid_a" \
        -drive "file=$dir/boot.img,format=raw,if=floppy,readonly=on" \
        -qmp "unix:$dir/a.qmp,server=on,wait=off" -daemonize -pidfile "$dir/a.pid"

start_daemon() { # start_daemon [vmmgrd options...]: stderr to $dir/vmmgrd.log
        "$vmmgrd" --foreground --state-dir "$dir/state" --socket "$sock" --config "$dir/vmmgrd.conf" \
                --remove-subtree-on-exit "$@" >"$dir/vmmgrd.log" 2>&1 &
        daemon_pid=$!
        wait_answer
}
wait_answer() {
        for _ in $(seq 100); do
                "$ctl" vm list >/dev/null 2>&1 && return 0
                kill -0 "$daemon_pid" 2>/dev/null || fail "vmmgrd exited"
                sleep 0.1
        done
        fail "vmmgrd did not answer"
}

# 1. The start, natively.
start_daemon --log-target=journal --log-ratelimit 5/10
started='e.get("SYSLOG_IDENTIFIER") == "vmmgrd" and e.get("MESSAGE", "").startswith("vmmgrd ") and "API on" in e.get("MESSAGE", "")'
wait_entries 1 10 "vmmgrd's start is in the journal" "$started"
[ "$(count "$started and e.get(\"PRIORITY\") == \"6\" and e.get(\"_TRANSPORT\") == \"journal\" \
        and e.get(\"CODE_FILE\") == \"vmmgr/daemon/daemon.c\" and e.get(\"CODE_LINE\", \"\").isdigit() \
        and e.get(\"CODE_FUNC\") == \"daemon_new\" and e.get(\"_PID\") == \"$daemon_pid\"")" = 1 ] ||
        fail "the start entry lacks its fields: $(entries "$started")"
show "$started"
ok "start: PRIORITY=6, CODE_FILE/LINE/FUNC, native transport"

# 2. A warning about a VM.
"$ctl" vm add "$uuid_wrong" --qmp "$dir/a.qmp" --class tj >/dev/null 2>&1 && fail "a VM with the wrong UUID was registered"
wrong="e.get(\"VMMGR_VM\") == \"$uuid_wrong\" and e.get(\"PRIORITY\") == \"4\" and \"not registered\" in e.get(\"MESSAGE\", \"\")"
wait_entries 1 10 "the refused registration is a warning about its VM" "$wrong"
show "$wrong"
ok "warning: PRIORITY=4, VMMGR_VM"

# 3. Repeats: 8 injections from one call site about one VM within 10 s.
"$ctl" vm add "$uuid_a" --qmp "$dir/a.qmp" --class tj >/dev/null || fail "vm add"
t0=$SECONDS
for i in 1 2 3 4 5 6 7 8; do
        "$ctl" credits inject "$uuid_a" +1s >/dev/null || fail "inject +1s ($i)"
done
[ $((SECONDS - t0)) -lt 9 ] || fail "the injections took $((SECONDS - t0)) s: too slow a host for a 10 s interval"
inject="e.get(\"VMMGR_EVENT\") == \"inject\" and e.get(\"VMMGR_VM\") == \"$uuid_a\""
wait_entries 5 10 "5 injections in the journal" "$inject"
sleep 1
[ "$(count "$inject")" = 5 ] || fail "$(count "$inject") injection entries, not 5 (burst 5 of 8)"
show "$inject"
ok "8 injections: 5 entries VMMGR_EVENT=inject"
while [ $((SECONDS - t0)) -le 10 ]; do sleep 0.2; done # the interval is over
"$ctl" credits inject "$uuid_a" +1s >/dev/null || fail "inject after the interval"
note="e.get(\"VMMGR_SUPPRESSED\") == \"3\" and e.get(\"VMMGR_VM\") == \"$uuid_a\" and \"Suppressed 3 messages\" in e.get(\"MESSAGE\", \"\")"
wait_entries 1 10 "the note of 3 suppressed" "$note"
wait_entries 6 10 "the injection after the interval" "$inject"
show "$note"
ok "after the interval: the note (VMMGR_SUPPRESSED=3), then the entry"

# 4. The VM goes.
"$ctl" vm remove "$uuid_a" >/dev/null || fail "vm remove"
unreg="e.get(\"VMMGR_EVENT\") == \"unregister\" and e.get(\"VMMGR_VM\") == \"$uuid_a\" and e.get(\"PRIORITY\") == \"6\""
wait_entries 1 10 "the unregistration" "$unreg"
show "$unreg"
ok "vm remove: VMMGR_EVENT=unregister"
grep -q "API on\|unregistered\|Suppressed" "$dir/vmmgrd.log" && fail "messages went to stderr too"
ok "stderr had none of them"
stop_daemon

# 5. auto: the journal when stderr is its stream, stderr otherwise.
systemd-cat -t vmmgrd-stream sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh \
        "$vmmgrd" --foreground --state-dir "$dir/state" --socket "$sock" --config "$dir/vmmgrd.conf" \
        --remove-subtree-on-exit &
daemon_pid=$!
wait_answer
wait_entries 1 10 "auto under a journal stream logs natively" \
        "$started and e.get(\"_TRANSPORT\") == \"journal\" and e.get(\"_PID\") == \"$daemon_pid\""
[ "$(count 'e.get("SYSLOG_IDENTIFIER") == "vmmgrd-stream"')" = 0 ] ||
        fail "vmmgrd wrote to its stream: $(entries 'e.get("SYSLOG_IDENTIFIER") == "vmmgrd-stream"' | head -3)"
ok "auto, stderr the journal's stream: native entries, none through the stream"
stop_daemon
before=$(count 'e.get("SYSLOG_IDENTIFIER") == "vmmgrd"')
start_daemon
stop_daemon
grep -q '^info: vmmgrd .*API on' "$dir/vmmgrd.log" || fail "auto with stderr a file: no 'info: vmmgrd ...' line"
sleep 0.5
[ "$(count 'e.get("SYSLOG_IDENTIFIER") == "vmmgrd"')" = "$before" ] || fail "auto with stderr a file wrote to the journal"
ok "auto, stderr a file: 'info: ...' lines there, nothing in the journal"
echo "PASS"
