#!/bin/sh
# Instructions per look of an emulated bank on the kernel model, as
# vmmgrd's tick makes them (the reads queued, the read batch run, the
# looks): bench-credits-model --callgrind runs 1,000 VMs through a 30 s
# warm-up and then N measured rounds inside cost_ticks_measured();
# callgrind counts only there (--toggle-collect), and Ir / (VMs x rounds)
# is the figure.  The model's serving of its files (standing in for the
# kernel's) is counted too.
# valgrind is a declared dependency (./run installs it): without it this
# fails, it does not skip.
# Usage: callgrind-cost.sh BENCH_BINARY [VMS [ROUNDS]]
bench=$1
vms=${2:-1000}
rounds=${3:-10}
if ! command -v valgrind >/dev/null 2>&1; then
        echo "FAIL: valgrind not found in PATH (a declared dependency: ./run installs it);" \
                "credits.cost.emulated_instructions_per_vm_tick not measured" >&2
        exit 1
fi
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --toggle-collect=cost_ticks_measured \
        "$bench" --callgrind --cost-vms "$vms" --cost-rounds "$rounds" >"$out/log" 2>&1 || {
        cat "$out/log"
        exit 1
}
ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p; s/^summary: *\([0-9]*\).*/\1/p' "$out/cg.out" | head -n 1)
if [ -z "$ir" ] || [ "$ir" -eq 0 ]; then
        echo "no instruction count in callgrind output"
        exit 1
fi
grep -E '^(emulated bank|figure)' "$out/log" | sed 's/^figure:/(under valgrind, not a figure):/'
echo "callgrind: $ir instructions in $((vms * rounds)) ticks ($vms VMs x $rounds rounds)"
echo "figure: credits.cost.emulated_instructions_per_vm_tick $((ir / (vms * rounds))) instructions"
