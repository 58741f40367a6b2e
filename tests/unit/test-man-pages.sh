#!/usr/bin/env bash
# The man pages (man/*.scd) tell the truth: every option vmmgrd's and each
# vmmgrctl verb's --help shows is in its page and every option a page
# documents is in --help; every vmmgrctl verb and sub-verb of the usage
# lines is in vmmgrctl(8); every configuration section and key the parser
# accepts (vmmgr/daemon/config.c, the [memory] key table in
# policies/memory.c, the [class] keys in policies/credits.c) is in
# vmmgrd.conf(5), and every key the page documents is accepted; and each
# page renders with scdoc where scdoc is installed.
# usage: test-man-pages.sh SOURCE_ROOT VMMGRD VMMGRCTL
set -uo pipefail
src=$1 vmmgrd=$2 vmmgrctl=$3
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
options() { grep -oE -- '(^|[ ,\[|])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

# OPTIONS of a page: "*--name*" in the scdoc source (the whole page for vmmgrctl).
page_options() { grep -oE -- '\*--[a-z][a-z0-9-]*\*' "$1" | tr -d '*' | sort -u; }

check_options() { # check_options NAME HELP_TEXT PAGE
  local o
  for o in $(options <<<"$2"); do
    grep -qF -- "*$o*" "$3" || fail "$1: $o is in --help but not in $(basename "$3")"
  done
}

# vmmgrd
help=$("$vmmgrd" --help) || fail "vmmgrd --help"
check_options vmmgrd "$help" "$src/man/vmmgrd.8.scd"
for o in $(page_options "$src/man/vmmgrd.8.scd"); do
  grep -qF -- "$o" <<<"$help" || fail "vmmgrd.8: documents $o, which vmmgrd --help does not know"
done

# vmmgrctl: global options, verbs, sub-verbs, each verb's options
help=$("$vmmgrctl" --help) || fail "vmmgrctl --help"
page=$src/man/vmmgrctl.8.scd
all_help=$help
for o in $(sed -n '/^Options:/,$p' <<<"$help" | options); do
  grep -qF -- "*$o*" "$page" || fail "vmmgrctl: global $o not in vmmgrctl.8"
done
verbs=$(sed -n '/^Verbs:/,/^$/p' <<<"$help" | awk 'NR > 1 && $1 ~ /^[a-z]/ {print $1}')
[ -n "$verbs" ] || fail "no verbs found in vmmgrctl --help"
for v in $verbs; do
  vh=$("$vmmgrctl" "$v" --help 2>&1) || fail "vmmgrctl $v --help"
  all_help+=$'\n'$vh
  check_options "vmmgrctl $v" "$vh" "$page"
  # sub-verbs from the usage lines: "vmmgrctl vm list ..." -> "*vm list*"
  for sub in $(grep -oE "vmmgrctl $v( [a-z]+)?" <<<"$vh" | awk '{print $3}' | sort -u); do
    grep -qF -- "*$v $sub*" "$page" || fail "vmmgrctl: '$v $sub' not in vmmgrctl.8"
  done
  grep -qF -- "*$v" "$page" || fail "vmmgrctl: verb $v not in vmmgrctl.8"
done
for o in $(page_options "$page"); do
  grep -qF -- "$o" <<<"$all_help" || fail "vmmgrctl.8: documents $o, which no --help knows"
done

# vmmgrd.conf(5) against the parser
conf=$src/man/vmmgrd.conf.5.scd
keys=$( {
  grep -oE 'strcmp\(k, "[a-z_]+"\)' "$src/vmmgr/daemon/config.c" | sed -E 's/.*"(.*)".*/\1/'
  grep -oE '\{ "[a-z_]+", KEY_' "$src/policies/memory.c" | sed -E 's/\{ "([a-z_]+)".*/\1/'
  grep -oE 'strcmp\(key, "[a-z_]+"\)' "$src/policies/credits.c" | sed -E 's/.*"(.*)".*/\1/'
} | sort -u)
[ "$(wc -l <<<"$keys")" -ge 40 ] || fail "found only $(wc -l <<<"$keys") configuration keys in the sources"
for k in $keys; do
  grep -qF -- "*$k*" "$conf" || fail "vmmgrd.conf.5: key $k is accepted by the parser but not documented"
done
# documented keys: definition lines, "*key* = ..." or "*key*, *key*, ..."
for k in $(grep -E '^\*[a-z_]+\*( =|,|$)' "$conf" | grep -oE '\*[a-z_]+\*' | tr -d '*'); do
  grep -qxF -- "$k" <<<"$keys" || fail "vmmgrd.conf.5: documents key $k, which the parser does not accept"
done
for s in $(grep -oE 'strcmp\(l, "[a-z.]+"\)' "$src/vmmgr/daemon/config.c" | sed -E 's/.*"(.*)".*/\1/') class; do
  grep -qE "^# \[$s( NAME)?\]" "$conf" || fail "vmmgrd.conf.5: section [$s] not documented"
done

# They render.
if command -v scdoc >/dev/null; then
  for f in "$src"/man/*.scd; do
    scdoc <"$f" >/dev/null || fail "scdoc cannot render $(basename "$f")"
  done
else
  echo "note: scdoc is not installed; rendering not checked"
fi

if [ "$fails" -gt 0 ]; then
  echo "$fails problem(s)"
  exit 1
fi
echo "PASS: man pages agree with --help and the configuration parser"
