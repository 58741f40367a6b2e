#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-deb.sh SOURCE_ROOT WORK_DIR: builds vmmgr's Debian package from the
# tree with dpkg-buildpackage -b -us -uc (in a copy of the tree under
# WORK_DIR), checks what it holds, runs lintian (no errors), installs it with
# apt into a clean Debian 12 root (debootstrap --variant=minbase bookworm,
# from the mirror this host's apt uses), starts vmmgrd there with the
# packaged configuration and checks `vmmgrctl host-info --json` and an API
# call (vm list) over its socket.
#
# The bootstrapped root is cached as a tarball in /var/cache/vmmgr/debootstrap,
# one per day (VMMGR_DEB_NO_CACHE=1: none); nothing else outlives the test.
# Exit 77 (skip): not root, or a tool missing (./run installs them).
set -euo pipefail

src=$(cd "${1:?source root}" && pwd)
work=${2:?work dir}/pkg-deb
cache=${VMMGR_DEB_CACHE:-/var/cache/vmmgr/debootstrap}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: not root (debootstrap and chroot need root)"; exit 77
fi
for t in dpkg-buildpackage dh lintian debootstrap chroot mountpoint; do
  command -v "$t" >/dev/null || { echo "SKIP: no $t (./run installs it)"; exit 77; }
done

t0=$SECONDS
say() { echo "[$((SECONDS - t0)) s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

root=$work/root
daemon_pid=
subtree=vmmgr-pkgtest-$$
cleanup() {
  set +e
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; fi
  local m
  for m in sys/fs/cgroup sys proc dev/pts dev; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -R "$root/$m"
  done
  # Only once nothing is mounted inside: rm must never reach the host's /dev.
  if ! grep -q " $root/" /proc/mounts; then rm -rf "$work"; fi
  for h in /sys/fs/cgroup/*/"$subtree" /sys/fs/cgroup/"$subtree"; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
  done
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work/src"

# 1. The tree as it is (tracked and untracked files, not what git ignores:
# no build directories), built where dpkg-buildpackage wants it.
say "copying the tree"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ \
     | tar --null -T - -cf -) | tar -xf - -C "$work/src"
else
  (cd "$src" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$work/src"
fi

say "dpkg-buildpackage -b -us -uc"
b0=$SECONDS
if ! (cd "$work/src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log"
  fail "dpkg-buildpackage failed"
fi
say "package built in $((SECONDS - b0)) s"
debs=("$work"/vmmgr_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one vmmgr_*.deb, got: ${debs[*]}"
deb=${debs[0]}
echo "package: $(basename "$deb")"

# 2. What it holds.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for p in ./usr/bin/vmmgrd ./usr/bin/vmmgrctl ./usr/libexec/vmmgr-libvirt-hook \
         ./etc/libvirt/hooks/qemu.d/vmmgr \
         ./lib/systemd/system/vmmgrd.service ./lib/systemd/system/vmmgrd.socket \
         ./etc/vmmgr/vmmgrd.conf \
         ./usr/share/man/man8/vmmgrd.8.gz ./usr/share/man/man8/vmmgrctl.8.gz \
         ./usr/share/man/man5/vmmgrd.conf.5.gz \
         ./usr/share/bash-completion/completions/vmmgrctl \
         ./usr/share/doc/vmmgr/copyright ./usr/share/doc/vmmgr/README.md \
         ./usr/share/doc/vmmgr/vmmgrd.md; do
  grep -qxF "$p" <<<"$contents" || fail "the package lacks $p"
done
dpkg-deb -c "$deb" | grep -q '^l.* \./etc/libvirt/hooks/qemu\.d/vmmgr -> /usr/libexec/vmmgr-libvirt-hook$' ||
  fail "the libvirt hook link does not point at /usr/libexec/vmmgr-libvirt-hook"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/vmmgr/vmmgrd.conf || fail "/etc/vmmgr/vmmgrd.conf is not a conffile"
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./lib/systemd/system/vmmgrd.service |
  grep -qx 'ExecStart=/usr/bin/vmmgrd --foreground --config /etc/vmmgr/vmmgrd.conf' ||
  fail "vmmgrd.service does not start /usr/bin/vmmgrd"
say "contents ok"

# 3. lintian: no errors (warnings are printed).
set +e
lintian --fail-on error "$work"/vmmgr_*.changes 2>&1 | grep -v 'running with root privileges'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "lintian reports errors (exit $rc)"
say "lintian: no errors"

# 4. A clean Debian 12 root: debootstrap from the mirror apt uses here.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
  awk 'tolower($1) == "uris:" && $2 !~ /security/ { print $2; exit }')
[ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
  awk '$2 !~ /security/ && $3 == "bookworm" { print $2; exit }')
mirror=${mirror:-http://deb.debian.org/debian}
tarball=$cache/bookworm-minbase-$(date -u +%Y%m%d).tar
mkdir -p "$root"
if [ "${VMMGR_DEB_NO_CACHE:-0}" != 1 ] && [ -f "$tarball" ]; then
  say "clean root from $tarball"
  tar -xf "$tarball" -C "$root"
else
  say "debootstrap --variant=minbase bookworm $root $mirror"
  d0=$SECONDS
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log"
    fail "debootstrap failed"
  fi
  say "debootstrap took $((SECONDS - d0)) s"
  if [ "${VMMGR_DEB_NO_CACHE:-0}" != 1 ]; then
    mkdir -p "$cache"
    rm -f "$cache"/bookworm-minbase-*.tar
    tar -cf "$tarball.tmp.$$" -C "$root" . && mv "$tarball.tmp.$$" "$tarball"
  fi
fi

mount --bind /dev "$root/dev"
mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || true
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
# Recursively: on a cgroup v1 host each hierarchy is a mount of its own.
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount --make-rslave "$root/sys/fs/cgroup"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# No service starts inside the root (there is no systemd there either).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# 5. apt installs the package and what it depends on.
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
say "apt-get install ./$(basename "$deb") in the clean root"
i0=$SECONDS
if ! { in_root apt-get update -qq && \
       in_root apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")"; } >"$work/apt.log" 2>&1; then
  tail -n 40 "$work/apt.log"
  fail "apt-get could not install the package"
fi
say "installed in $((SECONDS - i0)) s"
in_root dpkg-query -W -f='${Status} ${Version}\n' vmmgr | grep -q '^install ok installed' || fail "vmmgr is not installed"
for p in /usr/bin/vmmgrd /usr/bin/vmmgrctl /usr/libexec/vmmgr-libvirt-hook /etc/vmmgr/vmmgrd.conf \
         /lib/systemd/system/vmmgrd.service /usr/share/bash-completion/completions/vmmgrctl; do
  [ -e "$root$p" ] || fail "$p missing after install"
done
in_root vmmgrd --version
in_root vmmgrctl --version

# 6. vmmgrd runs in the root with the packaged configuration.
in_root vmmgrctl host-info --json >"$work/host-info.json" || fail "vmmgrctl host-info failed"
python3 - "$work/host-info.json" <<'PY' || fail "host-info --json is not what it should be"
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, dict) and d, d
print("host-info: %d keys, e.g. %s" % (len(d), ", ".join(sorted(d)[:5])))
PY
mkdir -p "$root/tmp/vmmgr-state"
# chroot and env exec: $! is vmmgrd itself (not a subshell), so the TERM
# below reaches it.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  vmmgrd --foreground --config /etc/vmmgr/vmmgrd.conf --state-dir /tmp/vmmgr-state \
  --socket /tmp/vmmgr.sock --subtree "$subtree" --remove-subtree-on-exit --log-target stderr \
  >"$work/vmmgrd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$root/tmp/vmmgr.sock" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/vmmgrd.log"; fail "vmmgrd exited"; }
  sleep 0.1
done
[ -S "$root/tmp/vmmgr.sock" ] || { cat "$work/vmmgrd.log"; fail "no API socket after 10 s"; }
list=$(in_root vmmgrctl vm list --socket /tmp/vmmgr.sock --json) || { cat "$work/vmmgrd.log"; fail "vmmgrctl vm list failed"; }
echo "vm list: $list"
python3 -c 'import json, sys; v = json.loads(sys.argv[1]); assert v == [] or v.get("vms", None) == [], v' "$list" ||
  fail "vm list is not an empty list"
kill -TERM "$daemon_pid"
rc=0; wait "$daemon_pid" || rc=$?
daemon_pid=
cat "$work/vmmgrd.log"
[ "$rc" -eq 0 ] || fail "vmmgrd exited $rc on SIGTERM"
say "vmmgrd in the clean root: host-info and the API answer; stopped cleanly"
echo "PASS"
