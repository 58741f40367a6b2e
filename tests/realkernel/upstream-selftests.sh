#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 18, item 7: does the kernel series regress upstream's own tests?
# Runs the kernel's selftests/cgroup/test_cpu (built from the patched tree;
# upstream's cases are the same in both) N times inside one boot of each
# test kernel, counts each upstream case's passes, and compares the pass
# rates with a one-sided Fisher exact test: a case whose pass rate on the
# patched kernel is below the stock kernel's at p < 0.05 is a regression.
# vmmgr's own cases (test_cpucg_max_runtime_*) exist only on patched and
# are left out.  Cases skipped on both are shown, not judged.
#
# Prints per case "stock P/N  patched P/N  p=..." and the figure
# kernel.upstream_selftests.regressions (must be 0; on 6.12
# kernel.upstream_selftests_6_12.regressions).  Under TCG the timing
# cases (test_cpucg_max, _max_nested, _stats, _weight_*) are noisy on both
# kernels: that is why rates, not single runs, are compared.
#
# usage: tests/realkernel/upstream-selftests.sh [N [KVER]]
#   N     runs on each kernel (default 20; bench)
#   KVER  6.1 (default: stock vs patched) or 6.12 (stock-6.12 vs
#         patched-6.12, built by build-test-kernels --flavour ...)
# Exit: 0 no regression, 1 a regression or a failure, 77 skip.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source-path=SCRIPTDIR/../.. source=tests/realkernel/testkernel/common.sh
. tests/realkernel/testkernel/common.sh

n=${1:-20} kver=${2:-6.1}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N [KVER]]" >&2; exit 2; }
case $kver in
6.1) stock=stock patched=patched figure=kernel.upstream_selftests ;;
6.12) stock=stock-6.12 patched=patched-6.12 figure=kernel.upstream_selftests_6_12 ;;
*) echo "usage: $0 [N [KVER]]: KVER is 6.1 or 6.12" >&2; exit 2 ;;
esac
if ! pdir=$(kernel_dir "$root" "$patched") || [ ! -x "$pdir/test_cpu" ]; then
        echo "SKIP: the $patched test kernel (and its test_cpu) is not built"
        exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The loop runs inside the test kernel (one boot, N runs, the TAP of each
# kept); given as a command line: the host's /tmp is not the guest's.
loop="for i in \$(seq $n); do echo \"=== run \$i\"; timeout 600 $pdir/test_cpu 2>&1; done; true"

for k in "$stock" "$patched"; do
        echo "==> $k: test_cpu x $n"
        # Generous: each run takes tens of seconds under TCG.
        tests/realkernel/vmtest --kernel "$k" --timeout $((120 + n * 120)) -- /bin/bash -c "$loop" >"$tmp/$k.tap" 2>&1
        rc=$?
        [ "$rc" = 77 ] && { echo "SKIP: the $k test kernel"; exit 77; }
        [ "$rc" = 0 ] || { echo "FAILED: the $k run exited $rc"; tail -20 "$tmp/$k.tap"; exit 1; }
done

python3 - "$tmp/$stock.tap" "$tmp/$patched.tap" "$n" "$figure" <<'EOF'
import math, re, sys
from collections import defaultdict

def counts(path):
    ok, total = defaultdict(int), defaultdict(int)
    for line in open(path, errors="replace"):
        m = re.match(r"^(ok|not ok) \d+ (test_cpucg_\w+)(.*)$", line.strip())
        if not m or "max_runtime" in m.group(2):
            continue
        if "# SKIP" in m.group(3):
            continue
        total[m.group(2)] += 1
        ok[m.group(2)] += m.group(1) == "ok"
    return ok, total

def fisher_less(a, n1, b, n2):
    """P(patched passes <= b) given both samples' total passes: one-sided
    hypergeometric tail (patched worse than stock)."""
    k = a + b
    def h(x):
        return math.comb(n2, x) * math.comb(n1, k - x) / math.comb(n1 + n2, k)
    return sum(h(x) for x in range(max(0, k - n1), b + 1))

so, st = counts(sys.argv[1])
po, pt = counts(sys.argv[2])
regressions = 0
for case in sorted(set(st) | set(pt)):
    a, n1, b, n2 = so[case], st[case], po[case], pt[case]
    if n1 == 0 or n2 == 0:
        print(f"{case:32s} stock {a}/{n1}  patched {b}/{n2}  (not run on both: not judged)")
        continue
    p = fisher_less(a, n1, b, n2)
    worse = p < 0.05 and b / n2 < a / n1
    regressions += worse
    print(f"{case:32s} stock {a:2d}/{n1:<2d}  patched {b:2d}/{n2:<2d}  p={p:.3f}{'  REGRESSION' if worse else ''}")
print(f"figure: {sys.argv[4]}.regressions {regressions}")
print(f"figure: {sys.argv[4]}.runs {sys.argv[3]}")
sys.exit(1 if regressions else 0)
EOF
