#!/usr/bin/env bash
# The live demo on libvirt (README: ./run demo --libvirt): the same story
# as scripts/demo.sh, told through libvirt.  A private, real libvirtd
# (tests/libvirt/with-libvirtd: its own /etc/libvirt, /run/libvirt, ... in
# a mount namespace; the host's libvirt is never touched) with
# vmmgr-libvirt-hook installed, vmmgrd talking to it, and three domains
# booting a spinning boot sector, each tagged with a <vmmgr:credits>
# element in its metadata:
#   vm-drain   class demo:       3 CPU-s of launch credits, drains, then is
#                                throttled to its 20 % baseline
#   vm-burst   class demo-burst: 60 CPU-s of launch credits, keeps bursting
#   vm-flat    class demo-flat:  no launch credits, stays at baseline
# vmmgrd adopts them when libvirt starts them (no `vmmgrctl vm add`: the
# domains carry their spec), `vmmgrctl top` shows them for about 30 s,
# `virsh schedinfo` tries to lift vm-drain's limit and vmmgr puts it back,
# `virsh destroy` ends one and its final ledger is in the event history.
# Everything is torn down afterwards (domains, daemons, namespace).
set -euo pipefail

build=${1:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/demo-common.sh
. "$here/scripts/demo-common.sh"
ctl="$here/$build/vmmgr/vmmgrctl"
daemon="$here/$build/vmmgr/vmmgrd"
hook="$here/$build/vmmgr/vmmgr-libvirt-hook"
seconds=${VMMGR_DEMO_SECONDS:-30}

if [ -z "${VMMGR_LIBVIRT_DIR:-}" ]; then
  for f in "$ctl" "$daemon" "$hook"; do
    [ -x "$f" ] || { echo "demo: $f is not built" >&2; exit 1; }
  done
  export VMMGR_LIBVIRT_SETUP="mkdir -p /etc/libvirt/hooks/qemu.d && install -m 0755 '$hook' /etc/libvirt/hooks/qemu.d/vmmgr"
  echo "==> a private libvirtd (tests/libvirt/with-libvirtd) with vmmgr-libvirt-hook in qemu.d/"
  exec "$here/tests/libvirt/with-libvirtd" "$here/scripts/demo-libvirt.sh" "$build"
fi

ns=https://vmmgr.example.org/xmlns/credits/1
work=$(mktemp -d /tmp/vmmgr-demo-lv-XXXXXX)
daemon_pid=
names=(vm-drain vm-burst vm-flat)
declare -A class=([vm-drain]=demo [vm-burst]=demo-burst [vm-flat]=demo-flat)
declare -A uuid=(
  [vm-drain]=d3a0c1e2-0000-4000-8000-0000000000a1
  [vm-burst]=d3a0c1e2-0000-4000-8000-0000000000a2
  [vm-flat]=d3a0c1e2-0000-4000-8000-0000000000a3
)

# libvirt runs hooks with a clean environment: the hook talks to the
# default socket.  In this namespace /run/vmmgr is a private directory.
made_run_dir=
[ -d /run/vmmgr ] || { mkdir /run/vmmgr; made_run_dir=1; }
mkdir "$work/run"
mount --bind "$work/run" /run/vmmgr
export VMMGR_SOCKET=/run/vmmgr/vmmgr.sock

cleanup() {
  set +e
  trap - EXIT INT TERM
  for n in "${names[@]}"; do virsh -q destroy "$n" >/dev/null 2>&1; done
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null
  fi
  umount /run/vmmgr 2>/dev/null
  [ -z "$made_run_dir" ] || rmdir /run/vmmgr 2>/dev/null
  rm -rf "$work"
  echo "demo: cleaned up (no domain, daemon or socket left)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  cat <<CONF
[daemon]
subtree = vmmgr-demo-libvirt
state_dir = $work/state
socket = $VMMGR_SOCKET
default_class = demo

[libvirt]
enabled = yes

CONF
  demo_classes
} >"$work/vmmgrd.conf"

spin_boot_sector "$work/boot.img"

echo "==> starting vmmgrd ([libvirt] enabled = yes; log in $work/vmmgrd.log)"
"$daemon" --config "$work/vmmgrd.conf" --remove-subtree-on-exit 2>"$work/vmmgrd.log" &
daemon_pid=$!
demo_wait_socket "$work/vmmgrd.log"

for n in "${names[@]}"; do
  cp "$work/boot.img" "$work/$n.img" # QEMU locks a writable image: one each
  cat >"$work/$n.xml" <<XML
<domain type='qemu'>
  <name>$n</name>
  <uuid>${uuid[$n]}</uuid>
  <metadata>
    <vmmgr:credits xmlns:vmmgr="$ns" class="${class[$n]}"/>
  </metadata>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='fd'/></os>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/><source file='$work/$n.img'/><target dev='fda' bus='fdc'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
XML
  echo "==> virsh create $n (<vmmgr:credits class=\"${class[$n]}\"/>)"
  virsh -q create "$work/$n.xml" >/dev/null
done
sleep 1
echo
"$ctl" vm list
echo
echo "==> vmmgrctl top for $seconds s (vm-drain drains then is throttled; vm-burst keeps bursting; vm-flat stays at baseline)"
"$ctl" top --interval 1 --iterations "$seconds" || true

echo
dom=$(awk -F: '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == "cpu") print $3}' \
  "/proc/$(cat /run/libvirt/qemu/vm-drain.pid)/cgroup")
dom=${dom%/emulator}
echo "==> libvirt owns vm-drain's group ($dom); vmmgr writes its bandwidth there:"
virsh schedinfo vm-drain --live | grep -E 'global_(period|quota)'
echo "==> virsh schedinfo vm-drain --live global_quota=-1 (an operator lifts the limit)"
virsh -q schedinfo vm-drain --live global_quota=-1 >/dev/null
sleep 0.5
echo "    vmmgr put its own back:"
virsh schedinfo vm-drain --live | grep -E 'global_quota'

echo
echo "==> virsh destroy vm-flat"
virsh -q destroy vm-flat >/dev/null
sleep 1
echo
echo "==> final state"
for n in vm-drain vm-burst; do
  echo "--- $n"
  "$ctl" credits show "${uuid[$n]}"
done
echo
"$ctl" events --limit 20
