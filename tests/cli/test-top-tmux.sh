#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `vmmgrctl top`'s live screen, driven as a person would drive it (issue 14,
# item 4): a real vmmgrd with three real QEMU guests that spin, in two
# classes, `vmmgrctl top` in a detached tmux session of a fixed size; keys
# go in with `tmux send-keys` and what is on screen comes back with
# `tmux capture-pane -p`.  In order:
#   1. the screen comes up sorted by VM (ascending), every VM listed
#   2. c sorts by class (the rows' order changes), c again reverses it,
#      > moves the sort to the next column, p sorts by CPU%: the guest
#      that bursts on launch credits is on top of the two held at baseline
#   3. / class=tsmall hides the other class's VM ("2 of 3 VM(s) shown"),
#      f state=bursting shows only the bursting one, an empty filter
#      shows all again
#   4. Up/Down and Enter open the selected VM's credit history: its UUID in
#      the title, sparklines of its credits and CPU; h goes back
#   5. the window resized: the screen is redrawn to the new size
#   6. q leaves with exit status 0
# Every wait polls capture-pane with a deadline; the tmux server (a
# private one), the QEMUs, vmmgrd and vmmgr's cgroup subtree always go.
# The screens the checks saw are printed (the test's log shows them).
#
# Usage: test-top-tmux.sh VMMGRD VMMGRCTL
set -euo pipefail

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/boot-sector.sh"

vmmgrd=$(readlink -f "$1")
ctl=$(readlink -f "$2")
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
command -v tmux >/dev/null || { echo "SKIP: tmux not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (cgroups)"; exit 77; }

dir=$(mktemp -d /tmp/vmmgr-test-top-XXXXXX)
sock=$dir/vmmgr.sock
export VMMGR_SOCKET=$sock
subtree=vmmgr-test-top-$$.slice
srv=vmmgr-test-top-$$ # tmux -L: a server of our own, not the user's
daemon_pid=

cleanup() {
        set +e
        tmux -L "$srv" kill-server 2>/dev/null
        for f in "$dir"/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
        if [ -n "$daemon_pid" ]; then
                sleep 0.5 # vmmgrd sees the QEMUs go and removes their groups
                kill -TERM "$daemon_pid" 2>/dev/null
                wait "$daemon_pid" 2>/dev/null
        fi
        for h in /sys/fs/cgroup/*/"$subtree" /sys/fs/cgroup/"$subtree"; do
                [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        rm -rf "$dir"
}
trap cleanup EXIT

screen() { tmux -L "$srv" capture-pane -p -t top; }
show() { # show TITLE: the screen as a check saw it, for the log
        echo "--- screen: $1"
        sed 's/[[:space:]]*$//' "$dir/screen"
        echo "---"
}
fail() {
        echo "FAIL: $*"
        screen >"$dir/screen" 2>/dev/null && show "at the failure"
        echo "--- vmmgrd log ---"
        tail -30 "$dir/vmmgrd.log" || true
        exit 1
}
ok() { echo "ok: $*"; }
keys() { tmux -L "$srv" send-keys -t top "$@"; }

# wait_screen SECONDS WHAT CMD...: polls the screen into $dir/screen until
# CMD (run on it) succeeds.
wait_screen() {
        local secs=$1 what=$2 deadline
        shift 2
        deadline=$((SECONDS + secs))
        while :; do
                screen >"$dir/screen" 2>/dev/null || true
                "$@" "$dir/screen" && return 0
                [ "$SECONDS" -ge "$deadline" ] && fail "$what (waited ${secs} s)"
                sleep 0.2
        done
}
has() { grep -qF -- "$1" "$2"; }
lacks() { ! grep -qF -- "$1" "$2"; }
# The VMs' rows in screen order (first letters of their UUIDs: a b c).
order() { grep -oE '^> ?[0-9a-f]{8}-|^  [0-9a-f]{8}-' "$1" | sed -E 's/^[> ]+//' | cut -c1 | tr -d '\n'; }
order_is() { [ "$(order "$2")" = "$1" ]; }
shows() { # shows TEXT... FILE: every TEXT is on the screen
        local f=${!#} i
        for ((i = 1; i < $#; i++)); do has "${!i}" "$f" || return 1; done
}

spin_boot_sector "$dir/boot.img"
# tbig bursts on launch credits; tsmall has none and is held at 5 %.
cat >"$dir/vmmgrd.conf" <<EOF
[class tbig]
vcpus = 1
baseline = 5%
cap = 600s
launch = 600s

[class tsmall]
vcpus = 1
baseline = 5%
cap = 600s
launch = 0s
EOF
"$vmmgrd" --foreground --state-dir "$dir/state" --socket "$sock" --subtree "$subtree" \
        --config "$dir/vmmgrd.conf" --remove-subtree-on-exit >"$dir/vmmgrd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
        "$ctl" vm list >/dev/null 2>&1 && break
        kill -0 "$daemon_pid" 2>/dev/null || fail "vmmgrd exited"
        sleep 0.1
done
"$ctl" vm list >/dev/null || fail "vmmgrd did not answer"

# UUIDs chosen so that no two sort orders below are the same: by VM
# a b c, by class c (tbig) then a b (tsmall).
declare -A uuid=(
        [a]=aaaaaaaa-0000-4000-8000-00000000000a
        [b]=bbbbbbbb-0000-4000-8000-00000000000b
        [c]=cccccccc-0000-4000-8000-00000000000c
)
declare -A class=([a]=tsmall [b]=tsmall [c]=tbig)
for v in a b c; do
        qemu-system-x86_64 -accel tcg -nodefaults -display none -m 32 -uuid "${uuid[$v]}" \
                -drive "file=$dir/boot.img,format=raw,if=floppy,readonly=on" \
                -qmp "unix:$dir/$v.qmp,server=on,wait=off" -daemonize -pidfile "$dir/$v.pid"
        "$ctl" vm add "${uuid[$v]}" --qmp "$dir/$v.qmp" --class "${class[$v]}" >/dev/null ||
                fail "vm add $v"
done

# 1. The screen, 120x30, UTF-8.  The pane's shell writes top's exit status.
tmux -L "$srv" -f /dev/null new-session -d -s top -x 120 -y 30 \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen VMMGR_SOCKET='$sock' '$ctl' top --interval 1; \
         echo \$? >'$dir/rc'; sleep 30"
wait_screen 10 "the screen lists the three VMs" shows "3 VM(s)" "${uuid[a]}" "${uuid[b]}" "${uuid[c]}"
order_is abc "$dir/screen" || fail "not sorted by VM at first"
has "sort: VM (ascending) [u]" "$dir/screen" || fail "the sort line does not say VM ascending"
show "1. sorted by VM"
ok "the screen lists a b c sorted by VM"

# 2. Sorting.
keys c
wait_screen 5 "c sorts by class: c (tbig) first" order_is cab
has "sort: CLASS (ascending) [c]" "$dir/screen" || fail "the sort line does not say CLASS ascending"
show "2. c: sorted by class"
ok "c: by class, order c a b"
keys c
wait_screen 5 "c again reverses: tsmall first" order_is abc
has "sort: CLASS (descending) [c]" "$dir/screen" || fail "the sort line does not say CLASS descending"
ok "c again: by class descending, order a b c"
keys '>'
wait_screen 5 "> moves the sort to CREDITS" has "sort: CREDITS (descending) [a]"
# c has 600 s of launch credits, a and b none
[ "$(order "$dir/screen" | cut -c1)" = c ] || fail "c has the most credits but is not first"
ok "> : by credits, c first"
keys p
wait_screen 15 "p sorts by CPU%: the bursting c first" order_is cab
has "sort: CPU% (descending) [p]" "$dir/screen" || fail "the sort line does not say CPU% descending"
show "2. p: sorted by CPU%"
ok "p: by CPU%, c (bursting) on top"
keys u
wait_screen 5 "u sorts by VM again" order_is abc

# 3. Filtering.
keys / C-u 'class=tsmall' Enter
wait_screen 5 "class=tsmall hides c" order_is ab
has "2 of 3 VM(s) shown" "$dir/screen" || fail "the title does not say 2 of 3 shown"
has "filter: class=tsmall" "$dir/screen" || fail "the sort line does not show the filter"
show "3. / class=tsmall"
ok "/ class=tsmall: c hidden"
keys f C-u 'state=bursting' Enter
wait_screen 15 "state=bursting shows only c" order_is c
show "3. f state=bursting"
ok "f state=bursting: only c"
keys / C-u Enter
wait_screen 5 "an empty filter shows every VM" order_is abc
has "filter: none" "$dir/screen" || fail "the filter is not cleared"
ok "empty filter: a b c again"

# 4. History: Up Up Down selects b (from wherever the selection is), Enter
# opens it.
keys Up Up Down
wait_screen 5 "Down selects b" grep -qE "^> ${uuid[b]}"
keys Enter
wait_screen 10 "the history of b opens with sparklines" \
        shows "history of VM ${uuid[b]}" "credits available (CPU-s)" "vCPU usage"
grep -qE '[▁▂▃▄▅▆▇█]{2,}' "$dir/screen" || fail "no sparkline on the history screen"
show "4. Enter: history of b"
ok "Enter: b's history with sparklines"
keys h
wait_screen 5 "h goes back to the list" order_is abc
ok "h: back to the list"

# 5. Resize: the screen follows the window.
tmux -L "$srv" resize-window -t top -x 100 -y 12
wait_screen 5 "redrawn at 100x12: the key help on line 12, no line wrapped" \
        bash -c '[ "$(wc -l <"$1")" -eq 12 ] && sed -n 12p "$1" | grep -q "Enter h: history" && ! grep -q "^ *emulated" "$1"' -
show "5. resized to 100x12"
ok "resize: redrawn to 100x12"

# 6. q quits with status 0.
keys q
for _ in $(seq 50); do [ -s "$dir/rc" ] && break; sleep 0.1; done
[ -s "$dir/rc" ] || fail "top did not exit after q"
[ "$(cat "$dir/rc")" = 0 ] || fail "top exited with $(cat "$dir/rc") after q"
ok "q: exit status 0"
echo "PASS"
