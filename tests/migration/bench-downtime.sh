#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Migration downtime on real QEMU between two "hosts" on this machine
# (tests/migration/mighosts.sh): the spinning guest migrates a -> b -> a
# -> ... MIG_BENCH_N times (default 20), each time to a fresh incoming QEMU
# (-S, resumed with cont as libvirt does), the source quit after it.
# Prints per mode (MIG_BENCH_MODES, default "without"):
#   figure: migration.downtime_<mode>_ms median=X p90=Y n=N        (query-migrate's downtime)
#   figure: migration.total_time_<mode>_ms median=X p90=Y n=N      (query-migrate's total-time)
#   figure: migration.guest_downtime_<mode>_ms median=X p90=Y n=N  (STOP on the source to
#           RESUME on the destination, QMP timestamps: includes the harness's cont)
# and with MIG_BENCH_MODES="without with":
#   figure: migration.added_downtime_ms X  (median(with) - median(without))
# The modes take turns in chunks of MIG_BENCH_CHUNK (5) migrations, each
# chunk a fresh chain from host a, so that the machine's load drifting
# (other builds) weighs on both modes alike.
#
# Mode "without": both vmmgrds run, neither knows the VM.  Mode "with":
# the credit handoff of docs/migration.md on every migration: bench_observe
# registers each QEMU with its host's vmmgrd (the first source at its
# start, each destination before the migration: an incoming VM) and
# announces the migration on the source's vmmgrd (migration start --to the
# destination's TLS listener); bench_release waits until the source's
# vmmgrd has closed and unregistered the VM (the destination's ack).
# usage: bench-downtime.sh VMMGRD VMMGRCTL
# Exit 77 when not root, network namespaces are unusable or QEMU is not
# installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 VMMGRD VMMGRCTL" >&2; exit 2; }
# shellcheck source=tests/migration/mighosts.sh
. "$here/mighosts.sh"

n=${MIG_BENCH_N:-20}
chunk=${MIG_BENCH_CHUNK:-5}
read -ra modes <<<"${MIG_BENCH_MODES:-without}"
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "MIG_BENCH_N must be a positive number, got '$n'" >&2; exit 2; }
[[ $chunk =~ ^[1-9][0-9]*$ ]] || { echo "MIG_BENCH_CHUNK must be a positive number, got '$chunk'" >&2; exit 2; }
[ ${#modes[@]} -gt 0 ] || { echo "MIG_BENCH_MODES is empty" >&2; exit 2; }
for m in "${modes[@]}"; do
  case $m in without | with) ;; *) echo "MIG_BENCH_MODES: 'without' and/or 'with', got '$m'" >&2; exit 2 ;; esac
done

mig_check_env || { echo "SKIP: $MIG_SKIP_REASON"; exit 77; }
mig_init "$1" "$2"
mig_hosts_up
mig_tls_make
mig_vmmgrd_start a
mig_vmmgrd_start b

other() { if [ "$1" = a ]; then echo b; else echo a; fi; }

# bench_observe MODE HOST NAME [SRC_HOST]: with vmmgr observing, HOST's
# vmmgrd learns of QEMU NAME (the first source, or an incoming QEMU before
# the migration) and, for an incoming one, SRC_HOST's vmmgrd is told that
# the VM goes to HOST.  The hook for everything vmmgr needs before a migration.
bench_observe() {
  [ "$1" = with ] || return 0
  mig_observe "$2" "$3" || mig_die "bench: host $2's vmmgrd did not take QEMU $3"
  [ $# -lt 4 ] || mig_announce "$4" "$2" || mig_die "bench: announcing the migration to host $4's vmmgrd"
}

# bench_release MODE HOST NAME [last]: after the migration, once the source QEMU
# NAME quit: HOST's vmmgrd has let the VM go (the handoff's ack; the last
# QEMU, never migrated away, is unregistered).
bench_release() {
  [ "$1" = with ] || return 0
  if [ "${4:-}" = last ]; then
    mig_unobserve "$2" || mig_die "bench: host $2's vmmgrd did not let the VM go"
  else
    mig_wait_unregistered "$2" 10 || mig_die "bench ($1): host $2's vmmgrd did not close the VM's ledger after $3 left"
  fi
}

# bench_loop MODE N CHAIN: N migrations a -> b -> a ... of a fresh VM
# (QEMUs labelled MODE-CHAIN-I); appends one line "DOWNTIME TOTAL GUEST"
# (ms) per migration to $MIG_TMP/MODE.dat.
bench_loop() {
  local mode=$1 count=$2 chain=$3 i src src_host dst dst_host down total guest t0
  src=$mode-$chain-0 src_host=a
  mig_qemu_start "$src" "$src_host"
  bench_observe "$mode" "$src_host" "$src"
  t0=$(mig_now_ms)
  for ((i = 1; i <= count; i++)); do
    dst=$mode-$chain-$i dst_host=$(other "$src_host")
    mig_qemu_start "$dst" "$dst_host" --incoming
    bench_observe "$mode" "$dst_host" "$dst" "$src_host"
    mig_migrate "$src" "$dst" 30 || mig_die "bench ($mode): migration $i ($src on $src_host -> $dst on $dst_host)"
    down=$(mig_downtime_ms "$src") || mig_die "bench: downtime of migration $i"
    total=$(mig_total_ms "$src") || mig_die "bench: total-time of migration $i"
    guest=$(mig_guest_downtime_ms "$src" "$dst") || mig_die "bench: events of migration $i"
    echo "$down $total $guest" >>"$MIG_TMP/$mode.dat"
    echo "$mode $chain.$i: $src_host -> $dst_host downtime $down ms, total $total ms, guest paused $guest ms"
    mig_quit "$src"
    bench_release "$mode" "$src_host" "$src"
    src=$dst src_host=$dst_host
  done
  mig_quit "$src"
  bench_release "$mode" "$src_host" "$src" last
  echo "$mode chain $chain: $count migrations in $(($(mig_now_ms) - t0)) ms"
}

# bench_figure NAME COLUMN MODE: the figure line of column COLUMN of MODE.dat.
bench_figure() {
  echo "figure: $1 $(awk -v c="$2" '{ print $c }' "$MIG_TMP/$3.dat" | mig_stats)"
}

declare -A median=() done_n=()
for m in "${modes[@]}"; do : >"$MIG_TMP/$m.dat"; done_n[$m]=0; done
chain=0
while [ "${done_n[${modes[0]}]}" -lt "$n" ]; do
  chain=$((chain + 1))
  for m in "${modes[@]}"; do
    k=$((n - done_n[$m] < chunk ? n - done_n[$m] : chunk))
    bench_loop "$m" "$k" "$chain"
    done_n[$m]=$((done_n[$m] + k))
  done
done
for m in "${modes[@]}"; do
  bench_figure "migration.downtime_${m}_ms" 1 "$m"
  bench_figure "migration.total_time_${m}_ms" 2 "$m"
  bench_figure "migration.guest_downtime_${m}_ms" 3 "$m"
  median[$m]=$(awk '{ print $1 }' "$MIG_TMP/$m.dat" | mig_stats | sed -n 's/^median=\([^ ]*\) .*/\1/p')
done
if [ -n "${median[with]:-}" ] && [ -n "${median[without]:-}" ]; then
  echo "figure: migration.added_downtime_ms $(awk -v a="${median[with]}" -v b="${median[without]}" \
    'BEGIN { printf "%.1f", a - b }') ms"
fi
