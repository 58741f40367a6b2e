#!/usr/bin/env bash
# bench suite: the real-kernel tier's figures, both banks side by side and
# the unthrottle latency of a runtime injection, from inside the stock and
# patched test kernels (kernel/build-test-kernels must have built them;
# otherwise this skips).  Prints only the figure lines and the verdicts.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export VMMGR_BUILD_DIR=${VMMGR_BUILD_DIR:-$(basename "${VMMGR_BUILD_ROOT:-build}")}
rc=0
for run in "stock credits" "patched credits" "stock cpu-max-runtime" "patched cpu-max-runtime" \
  "stock memory-stall"; do
  # shellcheck disable=SC2086
  out=$(tests/realkernel/check $run 2>&1)
  code=$?
  [ $code -eq 77 ] && { echo "SKIP: $out" | head -1; exit 77; }
  grep -E '^figure: (kernel|memory)\.' <<<"$out"
  [ $code -eq 0 ] || { echo "FAILED: $run"; rc=1; }
done
exit $rc
