# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
# tests/libvirt/spin-domain.sh - sourced by the libvirt harness's smoke
# tests (smoke.sh, smoke-migrate.sh): the domain they run.  Also gives
# spin_boot_sector FILE (tests/common/boot-sector.sh).

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/boot-sector.sh"

# spin_domain_xml NAME IMAGE [readonly]: a type='qemu' domain, 32 MiB and
# one vCPU, no balloon, that boots the boot sector IMAGE from a floppy and
# is destroyed on poweroff, reboot or crash.  readonly: the floppy is
# <readonly/> (libvirt migrates a domain without shared storage only so).
spin_domain_xml() {
  local ro=
  [ "${3:-}" = readonly ] && ro=$'\n      <readonly/>'
  cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='fd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/>
      <source file='$2'/>
      <target dev='fda' bus='fdc'/>$ro
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}
