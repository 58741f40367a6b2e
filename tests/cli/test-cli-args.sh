#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# vmmgrctl's and vmmgrd's argument parsing, with no daemon running (suite
# unit): what gets past parsing fails only on the connection, or on the
# configuration file, with the error that says so.
#
# Usage: test-cli-args.sh VMMGRCTL VMMGRD
set -u

ctl=$1
daemon=$2
dir=$(mktemp -d /tmp/vmmgr-test-cli-XXXXXX)
trap 'rm -rf "$dir"' EXIT
sock=$dir/nobody-listens.sock
uuid=11111111-2222-3333-4444-555555555555
failed=0

fail() {
        echo "FAIL: $*"
        failed=1
}

# expect RC NEEDLE CMD...: CMD exits RC and its stderr/stdout contain NEEDLE.
expect() {
        want_rc=$1 needle=$2
        shift 2
        out=$("$@" 2>&1)
        rc=$?
        if [ "$rc" -ne "$want_rc" ]; then
                fail "$* -> exit $rc, expected $want_rc: $out"
        elif ! printf '%s' "$out" | grep -qF -- "$needle"; then
                fail "$* -> no \"$needle\" in: $out"
        else
                echo "ok: $* -> $rc"
        fi
}

# ---- vmmgrctl credits: 0 is an amount without a unit -------------------------
# 69 = vmmgrd not reachable: parsing passed, only the connection failed.
expect 69 "vmmgrd is not running" "$ctl" credits set "$uuid" --launch 0 --socket "$sock"
expect 69 "vmmgrd is not running" "$ctl" credits set "$uuid" --cap 0 --launch 0cr --socket "$sock"
expect 69 "vmmgrd is not running" "$ctl" credits set "$uuid" --launch 2cr --socket "$sock"
# Other bare numbers still need their unit (6 of what?).
expect 2 "\"5\" is not an amount" "$ctl" credits set "$uuid" --launch 5 --socket "$sock"

# ---- vmmgrd --foreground: accepted, and changes nothing -----------------------
expect 0 "Accepted and ignored" "$daemon" --foreground --help
# With or without it, the same run: here, to the missing configuration file.
expect 1 "$dir/missing.conf: No such file" "$daemon" --foreground --config "$dir/missing.conf"
expect 1 "$dir/missing.conf: No such file" "$daemon" --config "$dir/missing.conf"
expect 2 "doesn't allow an argument" "$daemon" --foreground=yes

# ---- vmmgrd raises RLIMIT_NOFILE before it opens anything -------------------
if [ "$(ulimit -H -n)" = unlimited ] || [ "$(ulimit -H -n)" -gt 1024 ]; then
        expect 1 "RLIMIT_NOFILE raised from 1024" \
                sh -c 'ulimit -S -n 1024 && exec "$0" --log-level debug --config "$1"' "$daemon" "$dir/missing.conf"
else
        echo "skip: the hard RLIMIT_NOFILE is 1024, nothing to raise"
fi

# ---- vmmgrd's [api] section: bad values name the file and line ----------------
printf '[api]\ntimeout_sec = 5\nmax_connections = 2\n' >"$dir/low.conf"
printf '[api]\nmax_header_bytes = 1K\n' >"$dir/header.conf"
printf '[api]\nmax_conections = 10\n' >"$dir/typo.conf"
expect 1 "low.conf:3: bad value for max_connections" "$daemon" --foreground --config "$dir/low.conf"
expect 1 "header.conf:2: bad value for max_header_bytes" "$daemon" --foreground --config "$dir/header.conf"
expect 1 "typo.conf:2: unknown key \"max_conections\"" "$daemon" --foreground --config "$dir/typo.conf"

exit $failed
