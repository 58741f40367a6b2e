#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/qmp/run-fuzz.sh DURATION_S [libFuzzer options...]
#
# Builds qmp/fuzz/fuzz-qmp-reader with clang, libFuzzer, ASan and UBSan in
# build-fuzz/ (or $VMMGR_FUZZ_BUILD) and runs it for DURATION_S seconds on
# the seeds in tests/qmp/corpus/.  New inputs go to a temporary directory,
# so the checked-in corpus is not modified.  Exit status: 0 when nothing
# was found, 77 (skip) without a working clang/libFuzzer, otherwise
# libFuzzer's (non-zero on a crash, leak, timeout or OOM; the reproducer is
# written to build-fuzz/qmp/crash-* etc.).
set -eu

dur=${1:-}
case "$dur" in
''|*[!0-9]*) echo "usage: $0 DURATION_S [libFuzzer options...]" >&2; exit 2 ;;
esac
shift

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${VMMGR_FUZZ_BUILD:-$src/build-fuzz}

if ! command -v clang >/dev/null 2>&1; then
        echo "skip: clang is not installed"
        exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' > "$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
        echo "skip: clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing?)"
        exit 77
fi

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" "$src" -Dfuzzing=true \
                -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$build" qmp/fuzz-qmp-reader

work="$probe/corpus"
mkdir -p "$work"
cd "$build/qmp"
# Make UBSan findings fatal, so libFuzzer records them as crashes.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        ./fuzz-qmp-reader -max_total_time="$dur" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "$@" "$work" "$src/tests/qmp/corpus"
