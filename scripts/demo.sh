#!/usr/bin/env bash
# The live demo (README: ./run demo).  Starts vmmgrd with a local state dir
# and socket, three spinning QEMU VMs (TCG) with demo-scale credit classes,
# and shows `vmmgrctl top` for about 30 s:
#   vm-drain   class demo:       3 CPU-s of launch credits, drains, then is
#                                throttled to its 20 % baseline
#   vm-burst   class demo-burst: 60 CPU-s of launch credits, keeps bursting
#   vm-flat    class demo-flat:  no launch credits, stays at baseline
# Then prints each VM's credits and tears everything down (QEMU, the daemon,
# cgroups, sockets), also when interrupted with Ctrl-C.
set -euo pipefail

build=${1:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/demo-common.sh
. "$here/scripts/demo-common.sh"
ctl="$here/$build/vmmgr/vmmgrctl"
daemon="$here/$build/vmmgr/vmmgrd"
seconds=${VMMGR_DEMO_SECONDS:-30}
work=$(mktemp -d /tmp/vmmgr-demo-XXXXXX)
export VMMGR_SOCKET="$work/vmmgr.sock"
qemu_pids=()
daemon_pid=

cleanup() {
  set +e
  trap - EXIT INT TERM
  for p in "${qemu_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${qemu_pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    sleep 0.5 # vmmgrd notices QEMU is gone and removes the VMs' groups
    for id in $uuids; do "$ctl" vm remove "$id" >/dev/null 2>&1; done
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null
  fi
  rm -rf "$work"
  echo "demo: cleaned up (no QEMU, cgroups or sockets left)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  cat <<CONF
[daemon]
subtree = vmmgr-demo
default_class = demo

CONF
  demo_classes
} >"$work/vmmgrd.conf"

# A 512-byte boot sector that spins: vCPU 0 burns a real CPU.
spin_boot_sector "$work/boot.img"

echo "==> starting vmmgrd (state in $work/state, API on $VMMGR_SOCKET)"
"$daemon" --foreground --config "$work/vmmgrd.conf" --state-dir "$work/state" \
  --socket "$VMMGR_SOCKET" --remove-subtree-on-exit 2>"$work/vmmgrd.log" &
daemon_pid=$!
demo_wait_socket "$work/vmmgrd.log"

declare -A class=(
  [vm-drain]=demo
  [vm-burst]=demo-burst
  [vm-flat]=demo-flat
)
declare -A uuid=(
  [vm-drain]=d3a0c1e2-0000-4000-8000-000000000001
  [vm-burst]=d3a0c1e2-0000-4000-8000-000000000002
  [vm-flat]=d3a0c1e2-0000-4000-8000-000000000003
)
uuids="${uuid[vm-drain]} ${uuid[vm-burst]} ${uuid[vm-flat]}"

for name in vm-drain vm-burst vm-flat; do
  qemu-system-x86_64 -name "$name" -uuid "${uuid[$name]}" -accel tcg,thread=multi \
    -nodefaults -display none -m 32 -smp 1 -object iothread,id=io0 \
    -drive file="$work/boot.img",format=raw,if=floppy,readonly=on \
    -qmp unix:"$work/$name.qmp",server=on,wait=off \
    -pidfile "$work/$name.pid" -daemonize
  qemu_pids+=("$(cat "$work/$name.pid")")
  "$ctl" vm add "${uuid[$name]}" --qmp "$work/$name.qmp" --class "${class[$name]}"
done

echo "==> vmmgrctl top for $seconds s ($(cat <<'T'
vm-drain drains then is throttled; vm-burst keeps bursting; vm-flat stays at baseline
T
))"
sleep 1
"$ctl" top --interval 1 --iterations "$seconds" || true

echo
echo "==> final state"
for name in vm-drain vm-burst vm-flat; do
  echo "--- $name"
  "$ctl" credits show "${uuid[$name]}"
done
echo
"$ctl" events --limit 20
echo
"$ctl" credits history "${uuid[vm-drain]}" --svg "$here/demo-vm-drain.svg" &&
  echo "(open demo-vm-drain.svg: vm-drain's credits and CPU over the run)"
