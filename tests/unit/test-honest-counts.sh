#!/usr/bin/env bash
# tests/unit/test-honest-counts.sh FIXTURE - the counts ./run prints tell
# the truth (issue 17): a cmocka program whose cases all skip exits 77, one
# that mixes says so and ./run adds its skipped cases to the skips, and
# ./run's totals follow meson's own verdict (a meson that crashed or
# printed no summary is a failure, never "0 passed, 0 failed").
set -uo pipefail
fixture=$1
root=${VMMGR_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
errors=0
expect() { # expect WHAT GOT WANT
        if [ "$2" = "$3" ]; then
                echo "ok: $1 = $3"
        else
                echo "FAIL: $1: got '$2', want '$3'"
                errors=$((errors + 1))
        fi
}

# ---- tests/common/vtest.h ------------------------------------------------
"$fixture" all-skip >/dev/null 2>&1; expect "all cases skipped: exit" $? 77
"$fixture" pass >/dev/null 2>&1;     expect "all cases passed: exit" $? 0
"$fixture" fail >/dev/null 2>&1;     expect "a case failed (the other skipped): exit" $? 1
out=$("$fixture" mixed 2>&1);        expect "one of two skipped: exit" $? 0
grep -qx 'vmmgr-test: skipped 1 of 2 cases' <<<"$out"
expect "one of two skipped: the line ./run counts" $? 0

# ---- ./run's counting, with meson replaced by scripted ones --------------
# shellcheck source=../../run
. "$root/run"
set +e +u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/meson-logs"

summary() { # summary OK FAIL SKIP
        printf 'Ok:                 %s\nExpected Fail:      0\nFail:               %s\n' "$1" "$2"
        printf 'Unexpected Pass:    0\nSkipped:            %s\nTimeout:            0\n' "$3"
}
reset() { passed=0 failed=0 skipped=0; rm -f "$tmp/meson-logs/testlog.json"; }

# A meson that crashed before printing anything.
reset
meson() { echo "Traceback (most recent call last):"; return 1; }
meson_suites "$tmp" >/dev/null
expect "crashed meson: passed/failed" "$passed/$failed" 0/1

# A meson that printed a clean summary and still exited non-zero.
reset
meson() { summary 3 0 0; return 2; }
meson_suites "$tmp" >/dev/null
expect "non-zero meson with a clean summary: passed/failed" "$passed/$failed" 3/1

# A failing test: counted once, not once more for meson's exit status.
reset
meson() { summary 2 1 0; return 1; }
meson_suites "$tmp" >/dev/null
expect "one failing test: passed/failed" "$passed/$failed" 2/1

# A program that passed with 2 of its 5 cases skipped, beside a skipped one.
reset
meson() {
        summary 2 0 1
        printf '%s\n' '{"name": "test-a", "result": "OK", "stdout": "x\nvmmgr-test: skipped 2 of 5 cases\n"}' \
                '{"name": "test-b", "result": "OK", "stdout": "all fine\n"}' \
                '{"name": "test-c", "result": "SKIP", "stdout": "vmmgr-test: all 3 cases skipped\n"}' \
                >"$tmp/meson-logs/testlog.json"
        return 0
}
meson_suites "$tmp" >/dev/null
expect "partial skips: passed/failed/skipped" "$passed/$failed/$skipped" 2/0/3

# A check outside meson: 0 passes, 77 skips, anything else fails.
reset
extra_check "scripted pass" true >/dev/null
extra_check "scripted skip" bash -c 'exit 77' >/dev/null
extra_check "scripted failure" false >/dev/null
expect "extra checks: passed/failed/skipped" "$passed/$failed/$skipped" 1/1/1

echo "$errors error(s)"
[ "$errors" -eq 0 ]
