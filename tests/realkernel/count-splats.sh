#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Reads a kernel log on stdin (dmesg, as lockdep-splats.sh prints it) and
# counts the lines that start a lockdep, RCU, atomic-sleep, WARNING or BUG
# report (tests/realkernel/check FLAVOUR splats).  Prints each with the 40
# lines after it (at most 400 lines in all), then "splats: N".
# Exit: 0 none, 1 any.
#
# usage: tests/realkernel/count-splats.sh <KERNEL_LOG
set -uo pipefail
pattern='WARNING:|BUG:|possible circular locking|inconsistent lock state|possible recursive locking'
pattern+='|suspicious RCU usage|sleeping function called from invalid context|scheduling while atomic'
pattern+='|INFO: lockdep is turned off|turning off the locking correctness validator|DEBUG_LOCKS_WARN_ON'
pattern+='|lockdep.*(warning|WARN|bug|BUG)|Kernel panic|Oops'
log=$(cat)
n=$(grep -cE "$pattern" <<<"$log")
if [ "$n" -gt 0 ]; then
        grep -E -A 40 "$pattern" <<<"$log" | head -n 400
fi
echo "splats: $n"
[ "$n" = 0 ]
