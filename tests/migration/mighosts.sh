# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/migration/mighosts.sh - two "hosts" on one machine for real QEMU
# live migrations: two network namespaces joined by a veth pair, a vmmgrd
# per host (own state dir, UNIX socket, cgroup subtree, TLS listener on its
# veth address), QEMUs on the spinning boot sector, and migrations driven
# over QMP from the shell.  Sourced by tests/migration/*.sh:
#
#   set -euo pipefail
#   . "$here/mighosts.sh"
#   mig_check_env || { echo "SKIP: $MIG_SKIP_REASON"; exit 77; }
#   mig_init                       # temp dir, traps (cleanup on exit, INT, TERM)
#   mig_hosts_up                   # namespaces a and b, veth, addresses
#   mig_tls_make                   # CA, server and client certs per host
#   mig_vmmgrd_start a; mig_vmmgrd_start b
#   mig_qemu_start src a; mig_qemu_start dst b --incoming
#   mig_start src dst; mig_wait src 30; mig_wait_incoming dst 10; mig_cont dst
#
# Hosts are "a" and "b".  QEMU instances have labels the caller picks
# ("src", "dst", "g1", ...); all of them are the same VM (one -uuid, one
# -name), as on a real migration.  Each function is described where it is
# defined; the list is in docs/migration-testing.md.
#
# Conventions: set-up functions (mig_init, mig_hosts_up, mig_tls_make,
# mig_vmmgrd_start/restart, mig_qemu_start) end the script with exit 1 and
# a message naming what failed; query and migration functions return
# non-zero with a message on stderr, so that a scenario can expect a
# failure.  Functions that start processes must not run in $(...) (their
# processes would belong to a subshell).  Every wait is bounded.
#
# The destination QEMU: started with -S by default (MIG_DST_AUTOSTART=0),
# as libvirt does.  With -incoming and -S, QEMU 7.2 ends an incoming
# migration "paused" and the tool resumes it with `cont` (mig_cont): there
# is a window between "completed" and RESUME, which the handoff's
# "destination gone before resume" path needs.  MIG_DST_AUTOSTART=1 starts
# it without -S: QEMU then runs it as soon as the incoming migration is
# loaded (RESUME at once, no cont needed).
#
# Processes go into a namespace with `nsenter --net=/run/netns/NS`, never
# with `ip netns exec`: the latter also unshares the mount namespace and
# mounts a fresh sysfs on /sys, which hides /sys/fs/cgroup (empty there),
# and vmmgrd then finds no cgroup hierarchy.

# ---- settings (set before sourcing, or before mig_init, to override) ------

: "${MIG_SUBNET:=10.213.91}"          # the veth /24: a is .1, b is .2
: "${MIG_TLS_PORT:=8443}"             # vmmgrd's TLS listener on each host
: "${MIG_PORT:=4444}"                 # QEMU's incoming migration port
: "${MIG_QEMU:=${VMMGR_QEMU:-qemu-system-x86_64}}"
: "${MIG_QEMU_MEM_MIB:=64}"
: "${MIG_DST_AUTOSTART:=0}"           # 1: destination without -S (see above)
: "${MIG_START_TIMEOUT:=10}"          # s: a vmmgrd or QEMU up and answering
: "${MIG_STOP_TIMEOUT:=10}"           # s: a process gone after SIGTERM / quit
: "${MIG_QMP_TIMEOUT:=5}"             # s: one QMP command
: "${MIG_MIGRATE_TIMEOUT:=60}"        # s: mig_wait's default
: "${MIG_MAX_BANDWIDTH:=1073741824}"  # bytes/s; QEMU 7.2's default is 32 MiB/s
: "${MIG_CLASS:=migtest}"             # class mig_observe registers with
: "${MIG_VMMGRD_CONF_EXTRA:=}"        # text appended to each vmmgrd's config
: "${MIG_VMMGRD_MIGRATION:=1}"        # 0: no [migration] section (mig_vmmgrd_conf_migration)
: "${MIG_KEEP_TMP:=0}"                # 1: keep the temp dir (logs) after a failure

MIG_HELPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/mig-helper.py"
MIG_RUN_ID=${MIG_RUN_ID:-$$}
MIG_UUID=${MIG_UUID:-}                # the VM's -uuid; made by mig_init when unset
MIG_VM_NAME=""
MIG_TMP=""
MIG_SKIP_REASON=""
MIG_CLEANED=0
MIG_FAILED=0
declare -gA MIG_NS=() MIG_IP=() MIG_DAEMON_PID=() MIG_SUBTREE=() MIG_SOCK=()
declare -gA MIG_QPID=() MIG_QHOST=() MIG_QDIR=() MIG_QEVPID=() MIG_QURI=() MIG_QEVMARK=()
declare -gA MIG_PID_START=()
declare -ga MIG_PIDS=() MIG_CLEANUP_CMDS=()

# ---- messages ---------------------------------------------------------------

mig_log() { echo "mighosts: $*" >&2; }
mig_err() { echo "mighosts: error: $*" >&2; return 1; }
# mig_die MSG: says what failed, shows the logs' ends, exits 1 (cleanup runs).
mig_die() {
  echo "mighosts: FAIL: $*" >&2
  MIG_FAILED=1
  mig_dump_logs
  exit 1
}
mig_now_ms() { date +%s%3N; }

# mig_dump_logs: the end of every vmmgrd's and QEMU's log on stderr.
mig_dump_logs() {
  local f
  [ -n "$MIG_TMP" ] && [ -d "$MIG_TMP" ] || return 0
  for f in "$MIG_TMP"/host-*/vmmgrd.log "$MIG_TMP"/q-*/qemu.log "$MIG_TMP"/q-*/events.log "$MIG_TMP"/q-*/events.jsonl; do
    [ -s "$f" ] || continue
    echo "--- ${f#"$MIG_TMP"/} (last 25 lines)" >&2
    tail -n 25 "$f" >&2 || true
  done
}

# ---- environment --------------------------------------------------------------

# mig_check_env: 0 when this host can run the harness; else 1 with the
# reason in MIG_SKIP_REASON (not root, `ip netns` unusable, no QEMU).
# shellcheck disable=SC2034 # MIG_SKIP_REASON is for the caller
mig_check_env() {
  local probe="vmmgr-mig-probe-$MIG_RUN_ID"
  if [ "$(id -u)" -ne 0 ]; then MIG_SKIP_REASON="not root (network namespaces need it)"; return 1; fi
  if ! command -v ip >/dev/null; then MIG_SKIP_REASON="no ip (iproute2)"; return 1; fi
  if ! ip netns add "$probe" 2>/dev/null; then MIG_SKIP_REASON="ip netns add fails here"; return 1; fi
  if ! nsenter --net="/run/netns/$probe" ip link set lo up 2>/dev/null; then
    ip netns del "$probe" 2>/dev/null || true
    MIG_SKIP_REASON="cannot enter a network namespace (nsenter --net)"
    return 1
  fi
  ip netns del "$probe" 2>/dev/null || true
  if ! command -v "$MIG_QEMU" >/dev/null; then MIG_SKIP_REASON="QEMU is not installed ($MIG_QEMU)"; return 1; fi
  return 0
}

# mig_init [VMMGRD VMMGRCTL]: binaries (default $VMMGR_BUILD_ROOT/vmmgr/...),
# the temp dir, the VM's UUID and boot image, and the traps: mig_cleanup
# on EXIT, and on INT / TERM (then exit 130 / 143).
mig_init() {
  MIG_VMMGRD=$(readlink -f "${1:-${VMMGR_BUILD_ROOT:-build}/vmmgr/vmmgrd}")
  MIG_VMMGRCTL=$(readlink -f "${2:-${VMMGR_BUILD_ROOT:-build}/vmmgr/vmmgrctl}")
  local t
  for t in openssl python3 nsenter "$MIG_QEMU"; do
    command -v "$t" >/dev/null || mig_die "$t is not installed"
  done
  [ -x "$MIG_VMMGRD" ] || mig_die "no vmmgrd at $MIG_VMMGRD (build it, or pass its path)"
  [ -x "$MIG_VMMGRCTL" ] || mig_die "no vmmgrctl at $MIG_VMMGRCTL"
  [[ $MIG_SUBNET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || mig_die "MIG_SUBNET must be A.B.C (a /24), got '$MIG_SUBNET'"
  [[ $MIG_QMP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || mig_die "MIG_QMP_TIMEOUT must be whole seconds, got '$MIG_QMP_TIMEOUT'"
  MIG_NS[a]="vmmgr-mig-a-$MIG_RUN_ID" MIG_NS[b]="vmmgr-mig-b-$MIG_RUN_ID"
  MIG_IP[a]="$MIG_SUBNET.1" MIG_IP[b]="$MIG_SUBNET.2"
  MIG_VM_NAME="vmmgr-mig-$MIG_RUN_ID"
  trap mig_cleanup EXIT
  trap 'mig_log "interrupted"; MIG_FAILED=1; exit 130' INT
  trap 'mig_log "terminated"; MIG_FAILED=1; exit 143' TERM
  # Short: QMP socket paths must fit sun_path (108 bytes).
  MIG_TMP=$(mktemp -d /tmp/vmmgr-mig.XXXXXX) || mig_die "mktemp"
  [ -n "$MIG_UUID" ] || MIG_UUID=$(cat /proc/sys/kernel/random/uuid)
  # The spinning boot sector: "jmp $" (EB FE), zeros, the 55 AA signature.
  { printf '\353\376'; head -c 508 /dev/zero; printf '\125\252'; } >"$MIG_TMP/boot.img"
  [ "$(stat -c %s "$MIG_TMP/boot.img")" = 512 ] || mig_die "boot image is not 512 bytes"
}

# mig_at_cleanup CMD...: runs CMD (with eval) first in mig_cleanup, last
# registered first.
mig_at_cleanup() { MIG_CLEANUP_CMDS+=("$*"); }

# mig_cleanup: idempotent; runs on EXIT (and so on errors, INT, TERM).
# Kills every QEMU, logger and vmmgrd it started (TERM, KILL after a bound),
# removes the vmmgrds' cgroup subtrees, the namespaces (and with them the
# veth pair) and the temp dir (kept with MIG_KEEP_TMP=1 after a failure).
mig_cleanup() {
  local rc=$? i pid h ns d t0
  [ "$MIG_CLEANED" = 1 ] && return 0
  MIG_CLEANED=1
  trap '' INT TERM
  [ "$rc" = 0 ] || MIG_FAILED=1
  for ((i = ${#MIG_CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
    eval "${MIG_CLEANUP_CMDS[i]}" || true
  done
  # QEMUs first (vmmgrd then sees them go), then the rest.
  for pid in "${MIG_QPID[@]}" "${MIG_PIDS[@]}"; do
    if [ -n "$pid" ]; then mig_signal TERM "$pid"; fi
  done
  t0=$(mig_now_ms)
  for pid in "${MIG_QPID[@]}" "${MIG_PIDS[@]}"; do
    [ -n "$pid" ] || continue
    while mig_alive "$pid" && [ $(($(mig_now_ms) - t0)) -lt $((MIG_STOP_TIMEOUT * 1000)) ]; do
      sleep 0.05
    done
    mig_signal KILL "$pid"
    wait "$pid" 2>/dev/null || true
  done
  # Anything left in our namespaces was started by us (a child of ours).
  for h in a b; do
    ns=${MIG_NS[$h]:-}
    if [ -z "$ns" ] || [ ! -e "/run/netns/$ns" ]; then continue; fi
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || mig_log "could not delete namespace $ns"
  done
  # vmmgrd removes its (empty) subtree on TERM; after a KILL it cannot.
  for h in "${!MIG_SUBTREE[@]}"; do
    [ -n "${MIG_SUBTREE[$h]}" ] || continue
    find /sys/fs/cgroup -maxdepth 3 -type d -name "${MIG_SUBTREE[$h]}" 2>/dev/null | while read -r d; do
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ ! -d "$d" ] || mig_log "could not remove cgroup $d"
    done
  done
  if [ -n "$MIG_TMP" ] && [ -d "$MIG_TMP" ]; then
    if [ "$MIG_FAILED" = 1 ] && [ "$MIG_KEEP_TMP" = 1 ]; then
      mig_log "kept $MIG_TMP (MIG_KEEP_TMP=1)"
    else
      rm -rf "$MIG_TMP"
    fi
  fi
  MIG_QPID=() MIG_PIDS=() MIG_DAEMON_PID=() MIG_QEVPID=()
  return 0
}

# Processes are signalled only while they are still the ones started
# here: bash reaps a background child as soon as it exits, its number can
# be reused at once (pid_max is 32768 on small machines), and a stale
# `kill PID` would hit someone else's process.  A process is known by its
# number and its start time (/proc/PID/stat field 22).

# mig_track PID: remembers the process started here as PID.
mig_track() {
  mig_pid_stat "$1" && MIG_PID_START[$1]=$MIG_STAT_START || MIG_PID_START[$1]=gone
}
# mig_pid_stat PID: MIG_STAT_STATE and MIG_STAT_START of PID; 1 when none.
mig_pid_stat() {
  local s f
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  read -ra f <<<"$s"
  MIG_STAT_STATE=${f[0]} MIG_STAT_START=${f[19]}
}
# mig_alive PID: PID is the process started here and has not exited.
mig_alive() {
  [ -n "${MIG_PID_START[$1]:-}" ] && mig_pid_stat "$1" && [ "$MIG_STAT_STATE" != Z ] \
    && [ "$MIG_STAT_START" = "${MIG_PID_START[$1]}" ]
}
# mig_signal SIGNAL PID: kill -SIGNAL PID if it is still ours and alive.
mig_signal() {
  if mig_alive "$2"; then kill "-$1" "$2" 2>/dev/null || true; fi
}

# mig_kill_wait PID [TIMEOUT_S]: TERM, then KILL after the bound; reaps.
mig_kill_wait() {
  local pid=$1 limit=$((${2:-$MIG_STOP_TIMEOUT} * 1000)) t0
  t0=$(mig_now_ms)
  mig_signal TERM "$pid"
  while mig_alive "$pid"; do
    if [ $(($(mig_now_ms) - t0)) -ge "$limit" ]; then
      mig_log "pid $pid still there ${2:-$MIG_STOP_TIMEOUT} s after SIGTERM: SIGKILL"
      mig_signal KILL "$pid"
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

# mig_forget_pid PID: drops PID from the cleanup list.
mig_forget_pid() {
  local i
  for i in "${!MIG_PIDS[@]}"; do [ "${MIG_PIDS[i]}" != "$1" ] || unset 'MIG_PIDS[i]'; done
}

# ---- hosts ----------------------------------------------------------------

# mig_in HOST CMD...: runs CMD in HOST's network namespace (only that:
# mounts, /sys and cgroups stay the machine's).
mig_in() {
  local h=$1; shift
  nsenter --net="/run/netns/${MIG_NS[$h]}" "$@"
}

# mig_hosts_up: namespaces a and b, loopback up in both, a veth pair
# between them (created inside them: no name in the root namespace),
# MIG_SUBNET.1/24 on a and .2/24 on b; checks that a reaches b.
mig_hosts_up() {
  local h va="mva$MIG_RUN_ID" vb="mvb$MIG_RUN_ID"
  va=${va:0:15} vb=${vb:0:15}
  for h in a b; do
    ip netns add "${MIG_NS[$h]}" || mig_die "ip netns add ${MIG_NS[$h]}"
    mig_in "$h" ip link set lo up || mig_die "loopback up in ${MIG_NS[$h]}"
  done
  ip link add "$va" netns "${MIG_NS[a]}" type veth peer name "$vb" netns "${MIG_NS[b]}" \
    || mig_die "veth pair $va/$vb between ${MIG_NS[a]} and ${MIG_NS[b]}"
  mig_in a ip addr add "${MIG_IP[a]}/24" dev "$va" || mig_die "address ${MIG_IP[a]} on $va"
  mig_in b ip addr add "${MIG_IP[b]}/24" dev "$vb" || mig_die "address ${MIG_IP[b]} on $vb"
  mig_in a ip link set "$va" up || mig_die "$va up"
  mig_in b ip link set "$vb" up || mig_die "$vb up"
  # Carrier comes up within a moment; a TCP connect to a closed port then
  # gets a reset (no ping here: iputils-ping is not a dependency).
  mig_in a python3 "$MIG_HELPER" reach "${MIG_IP[b]}" 9 --timeout 5 \
    || mig_die "${MIG_NS[a]} (${MIG_IP[a]}) does not reach ${MIG_NS[b]} (${MIG_IP[b]}) over the veth"
  mig_in b python3 "$MIG_HELPER" reach "${MIG_IP[a]}" 9 --timeout 5 \
    || mig_die "${MIG_NS[b]} (${MIG_IP[b]}) does not reach ${MIG_NS[a]} (${MIG_IP[a]}) over the veth"
}

# ---- TLS --------------------------------------------------------------------

# mig_tls_make: $MIG_TMP/tls/: ca.pem (+ ca.key), and per host H in a b:
# H-server.{pem,key} (CN vmmgr-H, SAN IP = H's veth address, serverAuth)
# and H-client.{pem,key} (CN vmmgr-H-client, clientAuth), ECDSA P-256,
# valid 1 day, all from the one CA.
mig_tls_make() {
  local d="$MIG_TMP/tls" h
  mkdir -p "$d"
  mig_tls_gen "$d" >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; mig_die "making the TLS certificates (openssl)"; }
  for h in a b; do
    openssl verify -CAfile "$d/ca.pem" "$d/$h-server.pem" "$d/$h-client.pem" >/dev/null \
      || mig_die "the certificates of host $h do not verify against the CA"
  done
  MIG_TLS=$d
}

# mig_tls_gen DIR: mig_tls_make's openssl calls (non-zero at the first failure).
mig_tls_gen() {
  local d=$1 h kind cn
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=vmmgr-mig test CA $MIG_RUN_ID" -keyout "$d/ca.key" -out "$d/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign || return 1
  for h in a b; do
    # The server's SAN is its veth address: clients check it (no name).
    printf '%s\n' "subjectAltName=IP:${MIG_IP[$h]}" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/$h-server.ext" || return 1
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >"$d/$h-client.ext" || return 1
    for kind in server client; do
      cn="vmmgr-$h"
      [ "$kind" = server ] || cn="vmmgr-$h-client"
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=$cn" -keyout "$d/$h-$kind.key" -out "$d/$h-$kind.csr" || return 1
      openssl x509 -req -in "$d/$h-$kind.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -CAserial "$d/ca.srl" -days 1 -extfile "$d/$h-$kind.ext" -out "$d/$h-$kind.pem" || return 1
    done
  done
  chmod 600 "$d"/*.key
}

# mig_https FROM TO METHOD PATH [BODY-JSON]: an HTTPS request from FROM's
# namespace, with FROM's client certificate, to TO's vmmgrd TLS listener
# (https://TO-IP:MIG_TLS_PORT/PATH, server checked against the CA and its
# IP SAN).  Prints the body; non-zero (status and body on stderr) unless 2xx.
mig_https() {
  local from=$1 to=$2 method=$3 path=$4
  local args=(https "https://${MIG_IP[$to]}:$MIG_TLS_PORT$path" --method "$method"
    --ca "$MIG_TLS/ca.pem" --cert "$MIG_TLS/$from-client.pem" --key "$MIG_TLS/$from-client.key")
  [ $# -lt 5 ] || args+=(--body "$5")
  mig_in "$from" python3 "$MIG_HELPER" "${args[@]}"
}

# ---- vmmgrd per host --------------------------------------------------------

# mig_peer_url HOST: HOST's vmmgrd TLS listener, https://IP:PORT.
mig_peer_url() { echo "https://${MIG_IP[$1]}:$MIG_TLS_PORT"; }

# mig_vmmgrd_conf_migration HOST: a [migration] section for HOST
# (docs/migration.md, "In vmmgrd"): host_id vmmgr-HOST, the other host as
# its only peer, its client certificate and the CA for daemon-to-daemon
# calls.  Left out with MIG_VMMGRD_MIGRATION=0 (a vmmgrd from before the
# handoff refuses the section).
mig_vmmgrd_conf_migration() {
  local h=$1 o=a
  [ "$h" != a ] || o=b
  cat <<EOF
[migration]
host_id = vmmgr-$h
peers = $(mig_peer_url "$o")
cert = $MIG_TLS/$h-client.pem
key = $MIG_TLS/$h-client.key
ca = $MIG_TLS/ca.pem
EOF
}

# mig_vmmgrd_conf_extra HOST: what goes at the end of HOST's config;
# by default MIG_VMMGRD_CONF_EXTRA.  A scenario may redefine it.
mig_vmmgrd_conf_extra() { printf '%s\n' "$MIG_VMMGRD_CONF_EXTRA"; }

# mig_vmmgrd_conf HOST: writes HOST's config (state dir, socket, subtree,
# TLS listener, class migtest, the [migration] section unless
# MIG_VMMGRD_MIGRATION=0, then mig_vmmgrd_conf_extra).
mig_vmmgrd_conf() {
  local h=$1 d="$MIG_TMP/host-$1"
  cat >"$d/vmmgrd.conf" <<EOF
[daemon]
state_dir = $d/state
socket = ${MIG_SOCK[$h]}
subtree = ${MIG_SUBTREE[$h]}
tick_ms = 100
commit_interval_ms = 500

[api.tls]
listen = ${MIG_IP[$h]}:$MIG_TLS_PORT
cert = $MIG_TLS/$h-server.pem
key = $MIG_TLS/$h-server.key
client_ca = $MIG_TLS/ca.pem

# Observes without holding the VM back: bursts are charged, never throttled.
[class migtest]
like = t3.small
baseline = 20%
mode = unlimited

EOF
  if [ "$MIG_VMMGRD_MIGRATION" = 1 ]; then mig_vmmgrd_conf_migration "$h" >>"$d/vmmgrd.conf"; fi
  mig_vmmgrd_conf_extra "$h" >>"$d/vmmgrd.conf"
}

# mig_vmmgrd_start HOST: vmmgrd in HOST's namespace with its own state dir
# ($MIG_TMP/host-HOST/state), socket, subtree vmmgr-mig-HOST-RUNID and TLS
# listener on HOST's veth address; waits until it answers on its socket
# and over TLS (from its own namespace) within MIG_START_TIMEOUT.
mig_vmmgrd_start() {
  local h=$1 d="$MIG_TMP/host-$1"
  [ -n "${MIG_TLS:-}" ] || mig_die "mig_vmmgrd_start: run mig_tls_make first"
  [ -z "${MIG_DAEMON_PID[$h]:-}" ] || mig_die "vmmgrd of host $h is already running (pid ${MIG_DAEMON_PID[$h]})"
  mkdir -p "$d/state"
  MIG_SOCK[$h]="$d/vmmgr.sock"
  MIG_SUBTREE[$h]="vmmgr-mig-$h-$MIG_RUN_ID"
  [ -f "$d/vmmgrd.conf" ] || mig_vmmgrd_conf "$h"
  mig_vmmgrd_spawn "$h"
}

# mig_vmmgrd_spawn HOST: (re)starts vmmgrd with HOST's existing config.
mig_vmmgrd_spawn() {
  local h=$1 d="$MIG_TMP/host-$1" pid t0
  echo "--- start $(date +%T.%3N)" >>"$d/vmmgrd.log"
  nsenter --net="/run/netns/${MIG_NS[$h]}" \
    "$MIG_VMMGRD" --config "$d/vmmgrd.conf" --remove-subtree-on-exit >>"$d/vmmgrd.log" 2>&1 &
  pid=$!
  mig_track "$pid"
  MIG_DAEMON_PID[$h]=$pid
  MIG_PIDS+=("$pid")
  t0=$(mig_now_ms)
  while :; do
    mig_alive "$pid" || { wait "$pid" 2>/dev/null || true; MIG_DAEMON_PID[$h]=""; \
      mig_die "vmmgrd of host $h exited at start (log: host-$h/vmmgrd.log)"; }
    if [ -S "${MIG_SOCK[$h]}" ] && mig_ctl "$h" vm list >/dev/null 2>&1 \
      && mig_https "$h" "$h" GET /v1/host >/dev/null 2>&1; then
      return 0
    fi
    [ $(($(mig_now_ms) - t0)) -lt $((MIG_START_TIMEOUT * 1000)) ] \
      || mig_die "vmmgrd of host $h did not answer on ${MIG_SOCK[$h]} and https://${MIG_IP[$h]}:$MIG_TLS_PORT within $MIG_START_TIMEOUT s"
    sleep 0.1
  done
}

# mig_vmmgrd_kill HOST [SIGNAL]: SIGKILL (default) HOST's vmmgrd and reap
# it; its state dir, subtree and groups stay, as after a crash.
mig_vmmgrd_kill() {
  local h=$1 sig=${2:-KILL} pid=${MIG_DAEMON_PID[$1]:-}
  [ -n "$pid" ] || { mig_err "vmmgrd of host $h is not running"; return 1; }
  if [ "$sig" = KILL ]; then
    mig_signal KILL "$pid"
    wait "$pid" 2>/dev/null || true
  else
    mig_kill_wait "$pid"
  fi
  mig_forget_pid "$pid"
  MIG_DAEMON_PID[$h]=""
}

# mig_vmmgrd_stop HOST: SIGTERM (vmmgrd commits, removes its empty subtree).
mig_vmmgrd_stop() { mig_vmmgrd_kill "$1" TERM; }

# mig_vmmgrd_restart HOST: starts HOST's vmmgrd again on the same state
# dir, socket, subtree and config (after mig_vmmgrd_kill or _stop).
mig_vmmgrd_restart() {
  local h=$1
  [ -z "${MIG_DAEMON_PID[$h]:-}" ] || mig_vmmgrd_kill "$h"
  mig_vmmgrd_spawn "$h"
}

# mig_vmmgrd_pid HOST: prints its pid ("" when not running).
mig_vmmgrd_pid() { echo "${MIG_DAEMON_PID[$1]:-}"; }

# mig_ctl HOST ARGS...: vmmgrctl against HOST's vmmgrd (its UNIX socket).
mig_ctl() {
  local h=$1; shift
  VMMGR_SOCKET=${MIG_SOCK[$h]} "$MIG_VMMGRCTL" "$@"
}

# ---- QEMU ---------------------------------------------------------------------

# mig_qemu_start NAME HOST [--incoming]: a QEMU labelled NAME in HOST's
# namespace: the VM (-uuid MIG_UUID, -name MIG_VM_NAME), TCG, 1 vCPU,
# MIG_QEMU_MEM_MIB MiB, the spinning boot sector on a floppy, three QMP
# sockets in $MIG_TMP/q-NAME: qmp.sock (the harness's commands), ev.sock
# (an event logger writing events.jsonl) and vmmgr.sock (left for
# vmmgrd: mig_observe).  --incoming: -incoming tcp:HOST-IP:MIG_PORT, and
# -S unless MIG_DST_AUTOSTART=1.  Returns once QMP answers, the logger is
# connected and the "events" migration capability is on.
mig_qemu_start() {
  local n=$1 h=$2 incoming=${3:-} d="$MIG_TMP/q-$1" pid t0 st
  [ -z "${MIG_QPID[$n]:-}" ] || mig_die "QEMU $n is already running (pid ${MIG_QPID[$n]})"
  [ -n "${MIG_NS[$h]:-}" ] || mig_die "mig_qemu_start: no host '$h'"
  rm -rf "$d"
  mkdir -p "$d"
  # shellcheck disable=SC2054 # QEMU's options have commas
  local args=(-name "$MIG_VM_NAME,debug-threads=on" -uuid "$MIG_UUID" -machine pc
    -accel tcg,thread=multi -nodefaults -display none -smp 1 -m "$MIG_QEMU_MEM_MIB"
    -drive "file=$MIG_TMP/boot.img,format=raw,if=floppy"
    -qmp "unix:$d/qmp.sock,server=on,wait=off" -qmp "unix:$d/ev.sock,server=on,wait=off"
    -qmp "unix:$d/vmmgr.sock,server=on,wait=off" -pidfile "$d/qemu.pid")
  MIG_QURI[$n]=""
  if [ "$incoming" = --incoming ]; then
    MIG_QURI[$n]="tcp:${MIG_IP[$h]}:$MIG_PORT"
    args+=(-incoming "${MIG_QURI[$n]}")
    [ "$MIG_DST_AUTOSTART" = 1 ] || args+=(-S)
  elif [ -n "$incoming" ]; then
    mig_die "mig_qemu_start: unknown option $incoming"
  fi
  nsenter --net="/run/netns/${MIG_NS[$h]}" "$MIG_QEMU" "${args[@]}" >"$d/qemu.log" 2>&1 </dev/null &
  pid=$!
  mig_track "$pid"
  MIG_QPID[$n]=$pid MIG_QHOST[$n]=$h MIG_QDIR[$n]=$d
  t0=$(mig_now_ms)
  until [ -S "$d/qmp.sock" ] && [ -S "$d/ev.sock" ] && st=$(mig_status "$n" 2>/dev/null); do
    mig_alive "$pid" || { wait "$pid" 2>/dev/null || true; MIG_QPID[$n]=""; \
      mig_die "QEMU $n exited at start: $(tail -n 5 "$d/qemu.log")"; }
    [ $(($(mig_now_ms) - t0)) -lt $((MIG_START_TIMEOUT * 1000)) ] \
      || mig_die "QEMU $n: QMP $d/qmp.sock did not answer within $MIG_START_TIMEOUT s"
    sleep 0.05
  done
  python3 "$MIG_HELPER" events "$d/ev.sock" "$d/events.jsonl" --timeout "$MIG_START_TIMEOUT" 2>>"$d/events.log" &
  MIG_QEVPID[$n]=$!
  mig_track "${MIG_QEVPID[$n]}"
  MIG_PIDS+=("${MIG_QEVPID[$n]}")
  until grep -q _CONNECTED "$d/events.jsonl" 2>/dev/null; do
    mig_alive "$pid" || mig_die "QEMU $n exited at start: $(tail -n 5 "$d/qemu.log")"
    mig_alive "${MIG_QEVPID[$n]}" || mig_die "QEMU $n: the event logger did not connect to $d/ev.sock"
    [ $(($(mig_now_ms) - t0)) -lt $((MIG_START_TIMEOUT * 1000)) ] \
      || mig_die "QEMU $n: the event logger did not connect within $MIG_START_TIMEOUT s"
    sleep 0.02
  done
  mig_qmp "$n" migrate-set-capabilities '{"capabilities": [{"capability": "events", "state": true}]}' >/dev/null \
    || mig_die "QEMU $n: migrate-set-capabilities events"
  if [ -n "${MIG_QURI[$n]}" ]; then
    [ "$st" = inmigrate ] || mig_die "QEMU $n: incoming QEMU is '$st', not inmigrate"
  else
    mig_qmp "$n" migrate-set-parameters "{\"max-bandwidth\": $MIG_MAX_BANDWIDTH}" >/dev/null \
      || mig_die "QEMU $n: migrate-set-parameters max-bandwidth"
    [ "$st" = running ] || mig_die "QEMU $n: source QEMU is '$st', not running"
  fi
}

# mig_qmp NAME COMMAND [ARGS-JSON]: one QMP command on NAME's harness
# socket with `vmmgrctl qmp` (about 20 ms; a python3 client takes 10 times
# that on a busy machine); prints the return value as compact JSON.
# Non-zero with QEMU's error class and description on stderr.
mig_qmp() {
  local n=$1; shift
  [ -n "${MIG_QDIR[$n]:-}" ] || { mig_err "no QEMU '$n'"; return 1; }
  "$MIG_VMMGRCTL" qmp --timeout "$MIG_QMP_TIMEOUT" "${MIG_QDIR[$n]}/qmp.sock" "$@" && return 0
  if [ -n "${MIG_QPID[$n]:-}" ] && ! mig_alive "${MIG_QPID[$n]}"; then
    mig_err "QEMU $n (pid ${MIG_QPID[$n]}) is gone; its log ends: $(tail -n 1 "${MIG_QDIR[$n]}/qemu.log" 2>/dev/null)"
  fi
  return 1
}

# mig_json_get KEY: the first "KEY": scalar in the compact JSON on stdin
# (strings bare); non-zero when there is none.  Enough for the top-level
# fields of query-status and query-migrate (status, downtime, total-time);
# not a JSON parser.
mig_json_get() {
  local json re
  json=$(cat)
  re="\"$1\":(\"([^\"]*)\"|[-0-9.eE+]+|true|false|null)"
  [[ $json =~ $re ]] || return 1
  if [ -n "${BASH_REMATCH[2]}" ] || [[ ${BASH_REMATCH[1]} == '""' ]]; then
    echo "${BASH_REMATCH[2]}"
  else
    echo "${BASH_REMATCH[1]}"
  fi
}

# mig_qmp_get NAME KEY COMMAND [ARGS-JSON]: mig_qmp | mig_json_get KEY.
mig_qmp_get() {
  local n=$1 key=$2 out; shift 2
  out=$(mig_qmp "$n" "$@") || return 1
  mig_json_get "$key" <<<"$out" || { mig_err "QEMU $n: no \"$key\" in $1's answer: $out"; return 1; }
}

# mig_status NAME: query-status's status (running, paused, inmigrate, postmigrate, ...).
mig_status() { mig_qmp_get "$1" status query-status; }

# mig_wait_status NAME STATUS [TIMEOUT_S]: until NAME's status is STATUS.
mig_wait_status() {
  local n=$1 want=$2 limit=$((${3:-10} * 1000)) t0 st=""
  t0=$(mig_now_ms)
  while :; do
    st=$(mig_status "$n" 2>/dev/null) || st="(no answer)"
    [ "$st" != "$want" ] || return 0
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] || { mig_err "QEMU $n is '$st', not '$want' after ${3:-10} s"; return 1; }
    sleep 0.05
  done
}

# mig_qemu_pid NAME / mig_qemu_host NAME / mig_qemu_dir NAME /
# mig_qemu_vmmgr_qmp NAME: its pid, its host, its dir, the QMP socket left
# for vmmgrd.
mig_qemu_pid() { echo "${MIG_QPID[$1]:-}"; }
mig_qemu_host() { echo "${MIG_QHOST[$1]:-}"; }
mig_qemu_dir() { echo "${MIG_QDIR[$1]:-}"; }
mig_qemu_vmmgr_qmp() { echo "${MIG_QDIR[$1]}/vmmgr.sock"; }

# mig_qemu_gone NAME: reaps NAME's QEMU and its logger once it has exited.
mig_qemu_gone() {
  local n=$1
  local t0 ev=${MIG_QEVPID[$n]:-}
  wait "${MIG_QPID[$n]}" 2>/dev/null || true
  if [ -n "$ev" ]; then
    # It exits by itself when QEMU closes the socket.
    t0=$(mig_now_ms)
    while mig_alive "$ev" && [ $(($(mig_now_ms) - t0)) -lt 2000 ]; do sleep 0.02; done
    mig_kill_wait "$ev" 2
    mig_forget_pid "${MIG_QEVPID[$n]}"
  fi
  MIG_QPID[$n]="" MIG_QEVPID[$n]=""
}

# mig_quit NAME: QMP quit, then waits for QEMU's exit (SIGKILL past
# MIG_STOP_TIMEOUT).  Its dir (logs, events) stays.
mig_quit() {
  local n=$1 pid=${MIG_QPID[$1]:-} t0
  [ -n "$pid" ] || return 0
  mig_qmp "$n" quit >/dev/null 2>&1 || true
  t0=$(mig_now_ms)
  while mig_alive "$pid"; do
    if [ $(($(mig_now_ms) - t0)) -ge $((MIG_STOP_TIMEOUT * 1000)) ]; then
      mig_log "QEMU $n did not quit within $MIG_STOP_TIMEOUT s: SIGKILL"
      mig_signal KILL "$pid"
    fi
    sleep 0.02
  done
  mig_qemu_gone "$n"
}

# mig_qemu_kill NAME [SIGNAL]: SIGKILL (default) NAME's QEMU, reaped.
mig_qemu_kill() {
  local n=$1 pid=${MIG_QPID[$1]:-}
  [ -n "$pid" ] || { mig_err "QEMU $n is not running"; return 1; }
  mig_signal "${2:-KILL}" "$pid"
  while mig_alive "$pid"; do sleep 0.02; done
  mig_qemu_gone "$n"
}

# ---- migration ------------------------------------------------------------------

# mig_start SRC DST: migrate SRC to DST's incoming URI (tcp:DST-IP:MIG_PORT).
mig_start() {
  local src=$1 dst=$2
  [ -n "${MIG_QURI[$dst]:-}" ] || { mig_err "QEMU $dst was not started with --incoming"; return 1; }
  MIG_QEVMARK[$src]=$(wc -l <"${MIG_QDIR[$src]}/events.jsonl")
  mig_qmp "$src" migrate "{\"uri\": \"${MIG_QURI[$dst]}\"}" >/dev/null || { mig_err "migrate $src -> $dst"; return 1; }
}

# mig_wait SRC [TIMEOUT_S]: until SRC's migration (since mig_start) is
# completed (0), failed or cancelled (1, with query-migrate on stderr), or
# the timeout passes (2); prints the final status.  Watches SRC's MIGRATION
# events (cheap: no QMP traffic while it runs) and asks query-migrate
# every 0.5 s and at the end.
mig_wait() {
  local src=$1 secs=${2:-$MIG_MIGRATE_TIMEOUT} t0 st i=0 ev="${MIG_QDIR[$1]}/events.jsonl"
  t0=$(mig_now_ms)
  while :; do
    if awk -v m="${MIG_QEVMARK[$src]:-0}" 'NR > m && /"event":"MIGRATION"/ && /"status":"(completed|failed|cancelled)"/ { f = 1 }
        END { exit !f }' "$ev" || ((i++ % 50 == 0)); then
      st=$(mig_qmp_get "$src" status query-migrate 2>/dev/null) || st="(no answer)"
      case $st in
        completed) echo "$st"; return 0 ;;
        failed | cancelled)
          echo "$st"
          mig_err "migration of $src $st: $(mig_qmp "$src" query-migrate 2>&1)"
          return 1 ;;
      esac
    fi
    if [ $(($(mig_now_ms) - t0)) -ge $((secs * 1000)) ]; then
      echo "$st"
      mig_err "migration of $src not done after $secs s (status $st): $(mig_qmp "$src" query-migrate 2>&1)"
      return 2
    fi
    sleep 0.01
  done
}

# mig_wait_incoming DST [TIMEOUT_S]: until DST has loaded the migration
# (status leaves inmigrate: paused with -S, running without); prints it.
# Completed on the source does not mean loaded on the destination yet.
mig_wait_incoming() {
  local dst=$1 limit=$((${2:-10} * 1000)) t0 st
  t0=$(mig_now_ms)
  while :; do
    st=$(mig_status "$dst" 2>/dev/null) || st="(no answer)"
    case $st in
      paused | running) echo "$st"; return 0 ;;
      inmigrate | "(no answer)") ;;
      *) echo "$st"; mig_err "incoming QEMU $dst is '$st'"; return 1 ;;
    esac
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] || { mig_err "QEMU $dst still '$st' after ${2:-10} s"; return 1; }
    sleep 0.05
  done
}

# mig_cont NAME: QMP cont (the tool resuming the destination, or the
# source after a failure).
mig_cont() { mig_qmp "$1" cont >/dev/null; }

# mig_cancel SRC: QMP migrate_cancel.
mig_cancel() { mig_qmp "$1" migrate_cancel >/dev/null; }

# mig_migrate_status SRC: query-migrate's status on SRC (none, setup,
# active, pre-switchover, device, completed, failed, cancelled, ...).
mig_migrate_status() { mig_qmp_get "$1" status query-migrate; }

# mig_wait_migrate_status SRC STATUS [TIMEOUT_S]: until SRC's migration is STATUS.
mig_wait_migrate_status() {
  local n=$1 want=$2 limit=$((${3:-10} * 1000)) t0 st
  t0=$(mig_now_ms)
  while :; do
    st=$(mig_migrate_status "$n" 2>/dev/null) || st="(no answer)"
    [ "$st" != "$want" ] || return 0
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] \
      || { mig_err "migration of $n is '$st', not '$want' after ${3:-10} s"; return 1; }
    sleep 0.02
  done
}

# mig_hold_switchover SRC: SRC's next migration stops before its
# switchover (capability pause-before-switchover): the guest is stopped
# (STOP sent), the status stays "pre-switchover" and nothing completes
# until mig_release_switchover.  A deterministic window with the source
# frozen and the migration not done (a spinning guest migrates in ~20 ms).
mig_hold_switchover() {
  mig_qmp "$1" migrate-set-capabilities '{"capabilities": [{"capability": "pause-before-switchover", "state": true}]}' \
    >/dev/null
}

# mig_release_switchover SRC: migrate-continue from pre-switchover.
mig_release_switchover() { mig_qmp "$1" migrate-continue '{"state": "pre-switchover"}' >/dev/null; }

# mig_set_bandwidth SRC BYTES_PER_S: migrate-set-parameters max-bandwidth
# (mig_qemu_start sets MIG_MAX_BANDWIDTH on every QEMU).
mig_set_bandwidth() { mig_qmp "$1" migrate-set-parameters "{\"max-bandwidth\": $2}" >/dev/null; }

# mig_info SRC: the whole query-migrate (JSON).
mig_info() { mig_qmp "$1" query-migrate; }

# mig_downtime_ms SRC / mig_total_ms SRC: query-migrate's downtime /
# total-time (ms) on the source after a completed migration.
mig_downtime_ms() { mig_qmp_get "$1" downtime query-migrate; }
mig_total_ms() { mig_qmp_get "$1" total-time query-migrate; }

# mig_event_ts NAME EVENT [first|last]: the QMP timestamp (µs since the
# epoch) of NAME's first or last (default) EVENT; non-zero when none.
mig_event_ts() {
  local line re='"seconds":([0-9]+),"microseconds":([0-9]+)'
  if [ "${3:-last}" = first ]; then
    line=$(grep -m1 "\"event\":\"$2\"" "${MIG_QDIR[$1]}/events.jsonl") || return 1
  else
    line=$(grep "\"event\":\"$2\"" "${MIG_QDIR[$1]}/events.jsonl" | tail -n 1)
  fi
  [[ $line =~ $re ]] || return 1
  echo $((BASH_REMATCH[1] * 1000000 + 10#${BASH_REMATCH[2]}))
}

# mig_events NAME: NAME's QMP events so far, one JSON object a line.
mig_events() { cat "${MIG_QDIR[$1]}/events.jsonl"; }

# mig_wait_event NAME EVENT [TIMEOUT_S]: until NAME has logged EVENT.
mig_wait_event() {
  local n=$1 ev=$2 limit=$((${3:-10} * 1000)) t0
  t0=$(mig_now_ms)
  until grep -q "\"event\":\"$ev\"" "${MIG_QDIR[$n]}/events.jsonl" 2>/dev/null; do
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] || { mig_err "QEMU $n: no $ev event within ${3:-10} s"; return 1; }
    sleep 0.02
  done
}

# mig_guest_downtime_ms SRC DST: what the guest saw: from SRC's last STOP
# to DST's last RESUME (QMP event timestamps, one clock here), in ms with
# 0.1 ms; includes the tool's cont with -S.
mig_guest_downtime_ms() {
  local stop resume
  stop=$(mig_event_ts "$1" STOP) || { mig_err "QEMU $1 logged no STOP"; return 1; }
  resume=$(mig_event_ts "$2" RESUME) || { mig_err "QEMU $2 logged no RESUME"; return 1; }
  awk -v a="$stop" -v b="$resume" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }'
}

# mig_migrate SRC DST [TIMEOUT_S]: the whole plain migration: start, wait
# for completed, wait for DST to have loaded it, cont DST when it is paused
# (-S), check that DST runs and SRC is postmigrate.  Non-zero on any failure.
mig_migrate() {
  local src=$1 dst=$2 st
  mig_start "$src" "$dst" || return 1
  mig_wait "$src" "${3:-$MIG_MIGRATE_TIMEOUT}" >/dev/null || return 1
  st=$(mig_wait_incoming "$dst" 10) || return 1
  if [ "$st" = paused ]; then mig_cont "$dst" || return 1; fi
  mig_wait_status "$dst" running 5 || return 1
  mig_wait_status "$src" postmigrate 5 || return 1
}

# ---- the guest's vCPU ---------------------------------------------------------

# mig_vcpu_tid NAME: the tid of NAME's vCPU 0 thread ("CPU 0/TCG").
mig_vcpu_tid() {
  local pid=${MIG_QPID[$1]:-} t
  [ -n "$pid" ] || { mig_err "QEMU $1 is not running"; return 1; }
  for t in /proc/"$pid"/task/*; do
    case $(cat "$t/comm" 2>/dev/null) in "CPU 0/"*) echo "${t##*/}"; return 0 ;; esac
  done
  mig_err "QEMU $1 (pid $pid) has no 'CPU 0/' thread"
}

# mig_vcpu_pct NAME SECONDS: percent of one CPU NAME's vCPU 0 ran over
# SECONDS (schedstat run time).
mig_vcpu_pct() {
  local pid=${MIG_QPID[$1]:-} tid a b
  tid=$(mig_vcpu_tid "$1") || return 1
  a=$(awk '{print $1}' "/proc/$pid/task/$tid/schedstat") || return 1
  sleep "$2"
  b=$(awk '{print $1}' "/proc/$pid/task/$tid/schedstat") || return 1
  awk -v a="$a" -v b="$b" -v s="$2" 'BEGIN { printf "%d\n", (b - a) / (s * 1e7) }'
}

# ---- vmmgr observing ----------------------------------------------------------

# mig_observe HOST NAME [CLASS]: registers QEMU NAME with HOST's vmmgrd
# (vmmgrctl vm add MIG_UUID --qmp NAME's vmmgr.sock --class CLASS, default
# MIG_CLASS: unlimited mode, so it never holds the guest back).  An
# incoming QEMU (inmigrate) is taken as the destination of a migration.
mig_observe() {
  local h=$1 n=$2
  mig_ctl "$h" vm add "$MIG_UUID" --qmp "$(mig_qemu_vmmgr_qmp "$n")" --class "${3:-$MIG_CLASS}" >/dev/null \
    || { mig_err "host $h's vmmgrd did not take QEMU $n (vm add $MIG_UUID)"; return 1; }
}

# mig_unobserve HOST: unregisters the VM from HOST's vmmgrd.
mig_unobserve() { mig_ctl "$1" vm remove "$MIG_UUID" >/dev/null; }

# mig_announce SRC_HOST DST_HOST: the migration tool's announcement to the
# source's vmmgrd, before mig_start: vmmgrctl migration start MIG_UUID
# --to https://DST-IP:8443 (the record then goes there over TLS).
mig_announce() {
  mig_ctl "$1" migration start "$MIG_UUID" --to "$(mig_peer_url "$2")" >/dev/null \
    || { mig_err "host $1's vmmgrd did not take the announcement of a migration to host $2"; return 1; }
}

# mig_handoff HOST: the VM's handoff on HOST's vmmgrd (vmmgrctl migration
# status --json: role, epoch, outgoing, destination, record, sends, ...).
mig_handoff() { mig_ctl "$1" migration status "$MIG_UUID" --json; }

# mig_registered HOST: 0 when HOST's vmmgrd has the VM registered.
mig_registered() { mig_ctl "$1" vm show "$MIG_UUID" >/dev/null 2>&1; }

# mig_wait_unregistered HOST [TIMEOUT_S]: until HOST's vmmgrd no longer
# has the VM (a source closes and unregisters it on the destination's ack).
mig_wait_unregistered() {
  local limit=$((${2:-10} * 1000)) t0
  t0=$(mig_now_ms)
  while mig_registered "$1"; do
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] \
      || { mig_err "host $1's vmmgrd still has the VM after ${2:-10} s: $(mig_handoff "$1" 2>&1)"; return 1; }
    sleep 0.05
  done
}

# mig_stats: numbers on stdin, one a line -> "median=X p90=Y n=N"
# (nearest-rank p90).
mig_stats() { python3 "$MIG_HELPER" stats; }
