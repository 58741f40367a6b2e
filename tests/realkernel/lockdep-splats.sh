#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside a lockdep test kernel (tests/realkernel/check lockdep splats):
# says whether lockdep is on, runs the series' tests, each with its exit
# status ("program NAME: exit N"), and prints the kernel log after a line
# "=== kernel log" for the check to count the splats in.
#
#   test_cpu               the patched selftests/cgroup/test_cpu, all cases
#   test-cpu-max-runtime   vmmgr's twin of it (figures), told it is patched
#   test-real-credits      the credit engine's kernel bank against a real
#                          QEMU started inside
#
# usage: lockdep-splats.sh BUILD_DIR TEST_CPU
set -u
build=$1 test_cpu=$2

# Lockdep on: /proc/lockdep exists and debug_locks is still 1 (lockdep
# switches itself off at its first report, or when something it cannot
# follow happened at boot).
if [ -r /proc/lockdep ] && grep -q '^ *debug_locks: *1$' /proc/lockdep_stats 2>/dev/null; then
        echo "lockdep: on ($(grep -c . /proc/lockdep) lock classes; $(grep -E 'dependency chains|direct dependencies' /proc/lockdep_stats | tr -s ' ' | tr '\n' ';'))"
else
        echo "lockdep: off (/proc/lockdep $([ -r /proc/lockdep ] && echo present || echo missing);" \
                "$(grep debug_locks /proc/lockdep_stats 2>/dev/null || echo 'no /proc/lockdep_stats'))"
fi

run() { # run NAME COMMAND...
        local name=$1 rc=0
        shift
        echo "=== $name"
        "$@" 2>&1 || rc=$?
        echo "program $name: exit $rc"
}
run test_cpu "$test_cpu"
run test-cpu-max-runtime /usr/bin/env VMMGR_EXPECT_CPU_MAX_RUNTIME=1 "$build/tests/realkernel/test-cpu-max-runtime"
run test-real-credits "$build/tests/credits/test-real-credits"

echo "lockdep after the runs: $(grep debug_locks /proc/lockdep_stats 2>/dev/null | tr -s ' ')"
echo "=== kernel log"
dmesg --color=never
