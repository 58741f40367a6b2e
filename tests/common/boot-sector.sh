# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
# tests/common/boot-sector.sh - sourced by the shell tests and the demos
# that boot QEMU on nothing but a floppy: the guest they run.

# spin_boot_sector FILE: a 512-byte boot sector that spins ("jmp $": EB FE,
# zeros, the 55 AA signature), so the VM's vCPU 0 burns a real host CPU.
spin_boot_sector() {
        { printf '\353\376' && head -c 508 /dev/zero && printf '\125\252'; } >"$1"
}
