#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A real QEMU live migration between two "hosts" on this machine (network
# namespaces joined by a veth pair, tests/migration/mighosts.sh), with a
# vmmgrd on each host that does not know the VM (a plain migration: the
# handoff's scenarios build on this harness):
#   1. each vmmgrd answers over TLS from the other host with a client
#      certificate of the common CA (GET /v1/host, server checked by its IP SAN);
#   2. the spinning guest migrates from a to b over the veth: completed,
#      the destination (-S, resumed with cont; MIG_DST_AUTOSTART=1: without
#      -S, running by itself) runs and its vCPU burns CPU,
#      the source is postmigrate and its vCPU idle;
#   3. both vmmgrds are still up; cleanup leaves no namespace, cgroup
#      subtree, process or temp dir.
# Prints the migration's total time, QEMU's downtime and the guest's
# (STOP on a to RESUME on b).
# usage: test-qemu-migrate-netns.sh VMMGRD VMMGRCTL
# Exit 77 when not root, network namespaces are unusable or QEMU is not
# installed; any other failure exits 1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 VMMGRD VMMGRCTL" >&2; exit 2; }
# shellcheck source=tests/migration/mighosts.sh
. "$here/mighosts.sh"

mig_check_env || { echo "SKIP: $MIG_SKIP_REASON"; exit 77; }
mig_init "$1" "$2"
t_setup=$(mig_now_ms)
mig_hosts_up
mig_tls_make
mig_vmmgrd_start a
mig_vmmgrd_start b
echo "hosts: ${MIG_NS[a]} ${MIG_IP[a]}, ${MIG_NS[b]} ${MIG_IP[b]}; vmmgrd pids $(mig_vmmgrd_pid a), $(mig_vmmgrd_pid b)"

# --- 1. vmmgrd to vmmgrd over TLS ----------------------------------------------
for pair in "a b" "b a"; do
  read -r from to <<<"$pair"
  out=$(mig_https "$from" "$to" GET /v1/host) || mig_die "GET /v1/host from $from to $to's TLS listener"
  python3 -c 'import json, sys; d = json.load(sys.stdin); assert isinstance(d, dict) and d, d' <<<"$out" \
    || mig_die "GET /v1/host from $from to $to: not a JSON object: $out"
  echo "TLS: $from -> https://${MIG_IP[$to]}:$MIG_TLS_PORT/v1/host answered ($(printf %s "$out" | wc -c) bytes)"
done
vms=$(mig_https a b GET /v1/vms) || mig_die "GET /v1/vms from a to b"
[ "$(python3 -c 'import json, sys; print(len(json.load(sys.stdin)["vms"]))' <<<"$vms")" = 0 ] \
  || mig_die "b's vmmgrd has VMs already: $vms"

# --- 2. the migration ------------------------------------------------------------
mig_qemu_start src a
mig_qemu_start dst b --incoming
echo "set-up: $(($(mig_now_ms) - t_setup)) ms (namespaces, certificates, 2 vmmgrd, 2 QEMU)"
pct=$(mig_vcpu_pct src 0.5)
echo "source vCPU before: $pct % of a CPU"
[ "$pct" -ge 30 ] || mig_die "the source's vCPU does not spin before the migration ($pct %)"

t0=$(mig_now_ms)
mig_start src dst || mig_die "migrate src -> dst"
mig_wait src 30 >/dev/null || mig_die "migration did not complete"
t_done=$(($(mig_now_ms) - t0))
st=$(mig_wait_incoming dst 10) || mig_die "destination did not load the migration"
cont_note=", the harness's cont included"
if [ "$MIG_DST_AUTOSTART" = 1 ]; then
  cont_note=""
  [ "$st" = running ] || mig_die "destination is '$st' after the migration, not running (no -S)"
else
  [ "$st" = paused ] || mig_die "destination is '$st' after the migration, not paused (-S)"
  mig_cont dst || mig_die "cont on the destination"
fi
mig_wait_status dst running 5 || mig_die "destination not running after cont"
mig_wait_status src postmigrate 5 || mig_die "source not postmigrate"
total=$(mig_total_ms src) || mig_die "query-migrate total-time"
down=$(mig_downtime_ms src) || mig_die "query-migrate downtime"
guest=$(mig_guest_downtime_ms src dst) || mig_die "STOP/RESUME events"
mig_wait_event src MIGRATION 2 || mig_die "no MIGRATION event on the source"
echo "migration: completed in $total ms (QEMU's total-time; $t_done ms seen by the harness);" \
  "downtime $down ms (query-migrate), guest paused $guest ms (STOP on a to RESUME on b$cont_note)"

pct=$(mig_vcpu_pct dst 1)
echo "destination vCPU after: $pct % of a CPU"
[ "$pct" -ge 30 ] || mig_die "the destination's vCPU does not burn CPU ($pct %)"
pct=$(mig_vcpu_pct src 0.5)
echo "source vCPU after: $pct % of a CPU"
[ "$pct" -le 5 ] || mig_die "the source's vCPU still runs ($pct %)"

# --- 3. vmmgrds still there; cleanup complete ------------------------------------
for h in a b; do
  kill -0 "$(mig_vmmgrd_pid "$h")" 2>/dev/null || mig_die "vmmgrd of host $h exited"
  mig_ctl "$h" vm list >/dev/null || mig_die "vmmgrd of host $h does not answer"
done
mig_https b a GET /v1/vms >/dev/null || mig_die "GET /v1/vms from b to a after the migration"
mig_quit src
mig_quit dst

tmp=$MIG_TMP
mig_cleanup
for h in a b; do
  ! ip netns list | grep -qw "${MIG_NS[$h]}" || { echo "FAIL: namespace ${MIG_NS[$h]} left" >&2; exit 1; }
  if find /sys/fs/cgroup -maxdepth 3 -type d -name "${MIG_SUBTREE[$h]}" | grep -q .; then
    echo "FAIL: cgroup subtree ${MIG_SUBTREE[$h]} left" >&2; exit 1
  fi
done
[ ! -e "$tmp" ] || { echo "FAIL: $tmp left" >&2; exit 1; }
echo "PASS"
