# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
# scripts/demo-common.sh - sourced by scripts/demo.sh and
# scripts/demo-libvirt.sh: what the two demos share.

# shellcheck source=tests/common/boot-sector.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/common/boot-sector.sh"

# demo_classes: the demo's classes beside the built-in demo (3 CPU-s of
# launch credits, 20 % baseline), as vmmgrd.conf sections.
demo_classes() {
  cat <<'CONF'
[class demo-burst]
like = demo
launch = 60s

[class demo-flat]
like = demo
launch = 0s
CONF
}

# demo_wait_socket LOG: waits up to 5 s for vmmgrd's socket
# ($VMMGR_SOCKET); without it, shows vmmgrd's log and exits 1.
demo_wait_socket() {
  for _ in $(seq 50); do [ -S "$VMMGR_SOCKET" ] && break; sleep 0.1; done
  [ -S "$VMMGR_SOCKET" ] || { cat "$1"; echo "vmmgrd did not start" >&2; exit 1; }
}
