#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The credit handoff of docs/migration.md on real QEMU live migrations
# between two "hosts" on this machine (tests/migration/mighosts.sh: network
# namespaces joined by a veth pair, a vmmgrd each with its TLS listener),
# both vmmgrds doing the handoff daemon to daemon over TLS: the tool
# registers the incoming QEMU on b, announces the migration on a
# (vmmgrctl migration start UUID --to https://b:8443), migrates, resumes b
# with cont.  The guest spins, so it spends credits all along; its class is
# STANDARD with a 20 % baseline and credits that run out during the
# scenario, so the CPU the QEMUs get is what the credits allow.
#
# Scenarios (each its own VM, UUID and QEMUs; the hosts and vmmgrds are
# shared; name them as arguments to run only those):
#   plain-bursting     success; the VM bursts on banked credits at the migration
#   plain-baseline     success; the VM is held at baseline (credits exhausted)
#   plain-launch       success; the VM still has launch credits
#   cancel-active      migrate_cancel in the active phase (bandwidth-limited):
#                      the source keeps the ledger, nothing is applied, b's
#                      incoming VM is a tombstone
#   cancel-frozen      migrate_cancel after the source stopped (switchover
#                      held): the ledger was frozen; the source runs again
#                      and owns it again
#   dst-qemu-killed    b's QEMU killed after completed, before cont: b nacks,
#                      a takes the credits back, the tool resumes a's QEMU
#   src-vmmgrd-killed  a's vmmgrd SIGKILLed after the freeze (switchover held),
#                      restarted after the migration completed: it hands off
#                      from its journal
#   dst-vmmgrd-killed  b's vmmgrd SIGKILLed after b resumed, before the record
#                      arrived (the daemons' link cut), restarted: applied once
#   dst-vmmgrd-down-at-resume
#                      b's vmmgrd SIGKILLed at completion, b resumed while it
#                      is down, restarted: applied once
#   record-twice       the record (captured while frozen) POSTed again to b
#                      over TLS and imported again with vmmgrctl after the
#                      daemons' handoff: ack, applied once, ledger unchanged
#   network-cut        TCP 8443 dropped on b (QEMU's migration still passes)
#                      until after b resumed: b runs on its provisional bank
#                      meanwhile (never beyond baseline x time + a tick),
#                      then the link heals and the record is applied
#   record-late-full-bank
#                      a bank about full at the freeze, the record 3 s late
#                      (the link cut): what the VM earned and used on b
#                      meanwhile must not be forfeited at the cap
#
# In each: (a) a successful handoff gives b the source's frozen ledger + the
# policy's earnings from the freeze to the apply - what b's vCPU ran since
# its resume (/proc), the cap forfeiting only what a bank that had the VM
# all along would have, within one tick of CPU (100 ms); and b's vCPU ran
# at most baseline x time + a tick from its resume to the apply; (b) both
# QEMUs' vCPU time (/proc, schedstat of the "CPU 0/TCG" threads) over the
# whole scenario is the entitlement (initial credits + baseline x wall time
# since the registration) within 0.5 % of the scenario's wall time (the
# mean over its last second; measured: within 0.13 % on a 2-core machine
# loaded by other builds, once the bank repaid what it overshot); (l) the
# final owner's ledger: spent == /proc, earned == baseline x time,
# forfeited == the policy's; (c) exactly one vmmgrd owns the VM at the
# end.  The computations are tests/migration/mig-scenarios.py's.
#
# Prints per scenario its checks and figure lines, and
#   figure: migration.balance_error_usec MAX (over the successful handoffs)
# usage: test-migration-scenarios.sh VMMGRD VMMGRCTL [SCENARIO...]
# MIG_SCEN_SAVE=DIR keeps each scenario's samples, events, credits and the
# vmmgrd logs in DIR/SCENARIO/.
# Exit 77 when not root, network namespaces are unusable or QEMU is not
# installed; 1 when a scenario failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 VMMGRD VMMGRCTL [SCENARIO...]" >&2; exit 2; }
# shellcheck source=tests/migration/mighosts.sh
. "$here/mighosts.sh"
SCEN_PY="$here/mig-scenarios.py"

ALL_SCENARIOS=(plain-bursting plain-baseline plain-launch cancel-active cancel-frozen dst-qemu-killed src-vmmgrd-killed
  dst-vmmgrd-killed dst-vmmgrd-down-at-resume record-twice network-cut record-late-full-bank)
vmmgrd_bin=$1 vmmgrctl_bin=$2
shift 2
if [ $# -gt 0 ]; then scenarios=("$@"); else scenarios=("${ALL_SCENARIOS[@]}"); fi
for s in "${scenarios[@]}"; do
  [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || { echo "unknown scenario '$s' (${ALL_SCENARIOS[*]})" >&2; exit 2; }
done

# ---- the classes ---------------------------------------------------------------
# Standard mode, 1 vCPU, 20 % baseline (200,000 CPU-usec a second), a 2 s
# cap: the credits a scenario starts with run out within a few seconds of
# spinning, and from then on the bank holds the VM at its baseline.
BASELINE_PPM=200000
declare -A CLASS_LAUNCH=([migstd]=500000 [migbank]=0 [miglow]=200000 [migfull]=0)
declare -A CLASS_CAP=([migstd]=2000000 [migbank]=2000000 [miglow]=2000000 [migfull]=500000)
mig_vmmgrd_conf_extra() {
  local c
  for c in "${!CLASS_LAUNCH[@]}"; do
    printf '[class %s]\nlike = demo\nvcpus = 1\nbaseline = 20%%\ncap = %susec\nlaunch = %susec\nmode = standard\n\n' \
      "$c" "${CLASS_CAP[$c]}" "${CLASS_LAUNCH[$c]}"
  done
}

mig_check_env || { echo "SKIP: $MIG_SKIP_REASON"; exit 77; }
mig_init "$vmmgrd_bin" "$vmmgrctl_bin"
t_all=$(mig_now_ms)
mig_hosts_up
mig_tls_make
mig_vmmgrd_start a
mig_vmmgrd_start b
# The daemons' link is cut on b by a policy-routing rule that drops TCP to
# port 8443 arriving there (a blackhole route for those packets: silently,
# as a broken network would); QEMU's migration stream (port 4444) still
# passes.  The rule must come before the local table's, which is moved
# from preference 0 to 200.  iproute2 only: no iptables or nftables.
mig_in b ip rule add pref 200 lookup local || mig_die "ip rule: the local table at 200 on b"
mig_in b ip rule del pref 0 || mig_die "ip rule: moving the local table on b"
echo "hosts: ${MIG_NS[a]} ${MIG_IP[a]}, ${MIG_NS[b]} ${MIG_IP[b]}; set-up $(($(mig_now_ms) - t_all)) ms"

now_us() { echo $(($(date +%s%6N))); }
# slog MSG: a step of the scenario, with the time since it began.
slog() { echo "  [$(($(mig_now_ms) - S_T0)) ms] $*"; }

# ---- per scenario -----------------------------------------------------------------
# SCEN (its name), SCEN_OK, S_SRC / S_DST (QEMU labels), S_CLASS, S_INJECTS
# (operator injects: analyze's --inject arguments), S_TREG (the source's register
# event), S_ABASE / S_BBASE (the vCPUs' run time, ns, before they run in
# the scenario), S_BRESUME (when b was resumed), the sampler.
declare -A RESULT_BAL=() RESULT_ENT=() RESULT_STATUS=() RESULT_TIME=()
failed=()

# sfail MSG: the scenario failed (it goes on with its cleanup); returns 1.
sfail() {
  echo "FAIL [$SCEN]: $*" >&2
  SCEN_OK=0
  return 1
}
# check COND_CMD MSG: a check that does not stop the scenario.
check() {
  if eval "$1"; then echo "check $SCEN $2: ok"; else echo "check $SCEN $2: FAIL" >&2; SCEN_OK=0; fi
}

# schedstat PATH: its first field (ns the thread ran).
schedstat() { local v _; read -r v _ <"$1" && echo "$v"; }
vcpu_path() { echo "/proc/$(mig_qemu_pid "$1")/task/$(mig_vcpu_tid "$1")/schedstat"; }

# ev_json HOST: HOST's events since the scenario began (vmmgrctl events
# --json; the API gives at most 1000 at a time, a scenario makes dozens).
declare -A S_MARK=([a]=0 [b]=0)
ev_json() { mig_ctl "$1" events --json --since "${S_MARK[$1]}" --limit 1000; }
# ev_mark HOST: the scenario's events on HOST begin after what is there now.
ev_mark() {
  local next
  while :; do
    next=$(mig_ctl "$1" events --json --since "${S_MARK[$1]}" --limit 1000 | python3 "$SCEN_PY" field next) \
      || return 1
    [ "$next" != "${S_MARK[$1]}" ] || return 0
    S_MARK[$1]=$next
  done
}
# events HOST KIND...: HOST's events of this scenario's VM of those kinds
# (one JSON a line).
events() {
  local h=$1; shift
  ev_json "$h" | python3 "$SCEN_PY" events "$MIG_UUID" "$@"
}
# wait_event HOST KIND TIMEOUT_S [N]: until HOST has N (1) such events.
wait_event() {
  local h=$1 kind=$2 limit=$(($3 * 1000)) n=${4:-1} t0 c
  t0=$(mig_now_ms)
  while :; do
    c=$(events "$h" "$kind" 2>/dev/null | wc -l) || c=0
    [ "$c" -lt "$n" ] || return 0
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] || { mig_err "host $h: $c $kind event(s), not $n, after $3 s"; return 1; }
    sleep 0.1
  done
}
# event_time HOST KIND: time_usec of HOST's last KIND event of the VM.
event_time() { events "$1" "$2" | tail -n 1 | python3 "$SCEN_PY" field time_usec; }
# role HOST: the VM's handoff role on HOST ("none" when not registered).
role() {
  local out
  out=$(mig_handoff "$1" 2>/dev/null) || { echo none; return 0; }
  python3 "$SCEN_PY" field role <<<"$out"
}
# credits HOST: credits show --json.
credits() { mig_ctl "$1" credits show "$MIG_UUID" --json; }
credit_field() { credits "$1" | python3 "$SCEN_PY" field "$2"; }

# wait_cpu NAME USEC TIMEOUT_S: until NAME's vCPU ran USEC more than the
# scenario's base (the source spending its credits).
wait_cpu() {
  local p limit=$(($3 * 1000)) t0 v
  p=$(vcpu_path "$1") || return 1
  t0=$(mig_now_ms)
  while v=$(schedstat "$p") && [ $(((v - S_ABASE) / 1000)) -lt "$2" ]; do
    [ $(($(mig_now_ms) - t0)) -lt "$limit" ] || { mig_err "QEMU $1's vCPU ran $(((v - S_ABASE) / 1000)) usec in $3 s, not $2"; return 1; }
    sleep 0.02
  done
}

# cut / heal: the daemons' link (TCP 8443 to b) dropped / back.
cut() {
  mig_in b ip rule add pref 100 ipproto tcp dport "$MIG_TLS_PORT" blackhole || return 1
  ! mig_in a python3 "$MIG_HELPER" reach "${MIG_IP[b]}" "$MIG_TLS_PORT" --timeout 1 2>/dev/null \
    || { mig_err "b's port $MIG_TLS_PORT still answers a after the cut"; return 1; }
}
heal() { mig_in b ip rule del pref 100 2>/dev/null; }
cut_active() { mig_in b ip rule list pref 100 2>/dev/null | grep -q blackhole; }

# scen_begin NAME CLASS [INJECT_USEC [PRE]]: a fresh VM: its source QEMU
# on a, stopped before vmmgrd knows it (its vCPU's run time then is the
# base), registered on a with CLASS (plus INJECT_USEC banked by an
# operator inject), its incoming QEMU on b registered there, the sampler
# of both vCPUs, the command PRE (before the VM spends anything), then
# the source resumed: the VM spends its credits from here.
scen_begin() {
  SCEN=$1 SCEN_OK=1 S_CLASS=$2 S_INJECTS=()
  S_SRC=$1-src S_DST=$1-dst S_BRESUME=0 S_SAMPLER_PID=""
  MIG_UUID=$(cat /proc/sys/kernel/random/uuid)
  S_T0=$(mig_now_ms)
  echo "=== $SCEN: VM $MIG_UUID, class $S_CLASS (launch ${CLASS_LAUNCH[$2]} usec, injected ${3:-0} usec)"
  { ev_mark a && ev_mark b; } || { sfail "the events so far"; return 1; }
  mig_qemu_start "$S_SRC" a
  mig_qmp "$S_SRC" stop >/dev/null || { sfail "stop the source before its registration"; return 1; }
  mig_qemu_start "$S_DST" b --incoming
  { S_APATH=$(vcpu_path "$S_SRC") && S_BPATH=$(vcpu_path "$S_DST"); } || { sfail "the vCPU threads"; return 1; }
  { S_ABASE=$(schedstat "$S_APATH") && S_BBASE=$(schedstat "$S_BPATH"); } || { sfail "schedstat"; return 1; }
  mig_observe a "$S_SRC" "$S_CLASS" || { sfail "register the source on a"; return 1; }
  S_TREG=$(event_time a register) || { sfail "a's register event"; return 1; }
  if [ "${3:-0}" -gt 0 ]; then inject a "$3" || return 1; fi
  mig_observe b "$S_DST" "$S_CLASS" || { sfail "register the incoming QEMU on b"; return 1; }
  [ "$(role b)" = incoming ] || { sfail "b's vmmgrd took the incoming QEMU as '$(role b)', not incoming"; return 1; }
  S_SAMPLES="$MIG_TMP/$SCEN.samples" S_STOPFILE="$MIG_TMP/$SCEN.stop"
  python3 "$SCEN_PY" sample "$S_SAMPLES" "$S_STOPFILE" "$S_APATH" "$S_BPATH" &
  S_SAMPLER_PID=$!
  mig_track "$S_SAMPLER_PID"
  MIG_PIDS+=("$S_SAMPLER_PID")
  local t0
  t0=$(mig_now_ms)
  until [ -s "$S_SAMPLES" ]; do
    [ $(($(mig_now_ms) - t0)) -lt 5000 ] || { sfail "the sampler wrote nothing in 5 s"; return 1; }
    sleep 0.02
  done
  if [ -n "${4:-}" ]; then $4 || { sfail "$4"; return 1; }; fi
  mig_cont "$S_SRC" || { sfail "cont the source"; return 1; }
  slog "source registered on a (t0), incoming QEMU on b; the source runs"
}

# inject HOST USEC: an operator banks USEC for the VM on HOST (part of
# what it is entitled to from then on).
inject() {
  mig_ctl "$1" credits inject "$MIG_UUID" "+${2}usec" >/dev/null || { sfail "inject $2 usec on $1"; return 1; }
  S_INJECTS+=(--inject "$2@$(now_us)")
}

# migrate_to_b: announce on a, migrate, wait until b has loaded it
# (paused, -S).  Non-zero on failure.
migrate_to_b() {
  mig_announce a b || { sfail "announce the migration on a"; return 1; }
  mig_start "$S_SRC" "$S_DST" || { sfail "migrate"; return 1; }
  mig_wait "$S_SRC" 30 >/dev/null || { sfail "the migration did not complete"; return 1; }
  [ "$(mig_wait_incoming "$S_DST" 10)" = paused ] || { sfail "b's QEMU is not paused after the migration"; return 1; }
  slog "migrated (downtime $(mig_downtime_ms "$S_SRC") ms), b loaded it, paused"
}

# resume_b: the tool's cont on b; remembers when (and checks b's vCPU has
# not run before: its base stands).
resume_b() {
  local v
  v=$(schedstat "$S_BPATH") || { sfail "b's vCPU schedstat"; return 1; }
  [ $(((v - S_BBASE) / 1000)) -lt 2000 ] || sfail "b's vCPU ran $(((v - S_BBASE) / 1000)) usec before its resume"
  S_BBASE=$v
  S_BRESUME=$(now_us)
  mig_cont "$S_DST" || { sfail "cont on b"; return 1; }
  mig_wait_status "$S_DST" running 5 || { sfail "b's QEMU does not run after cont"; return 1; }
}

# handed_off_to_b: b applied the record once, a closed and unregistered the VM.
handed_off_to_b() {
  wait_event b migration-applied "${1:-15}" || { sfail "b did not apply the record"; return 1; }
  mig_wait_unregistered a 10 || { sfail "a did not close the VM after b's ack"; return 1; }
  slog "b applied the record, a closed and unregistered the VM"
}

# credits_out HOST: until the VM's credits on HOST are out (launch
# spent, about nothing available: the bank holds it at its baseline).
credits_out() {
  local h=$1 t0 out launch avail
  t0=$(mig_now_ms)
  while :; do
    out=$(credits "$h") || { sfail "credits show on $h"; return 1; }
    launch=$(python3 "$SCEN_PY" field launch_usec <<<"$out")
    avail=$(python3 "$SCEN_PY" field available_usec <<<"$out")
    if [ "$launch" -eq 0 ] && [ "$avail" -le 30000 ]; then break; fi
    [ $(($(mig_now_ms) - t0)) -lt 60000 ] || { sfail "the VM on $h still has $avail usec after 60 s"; return 1; }
    sleep 0.2
  done
  slog "credits out on $h (after $(($(mig_now_ms) - t0)) ms)"
}

# run_to_baseline HOST: the owner spends what is left, runs 2 s at
# baseline (the bank repays an overshoot over 2 s), until its debt is about
# repaid (a bank starved of CPU on a loaded machine can overshoot its
# landing by a few ticks: debt that it repays), then 1 s more (the
# entitlement is judged over the last second).
run_to_baseline() {
  local t0 avail
  credits_out "$1" || return 1
  sleep 2
  t0=$(mig_now_ms)
  while avail=$(credit_field "$1" available_usec) && [ "$avail" -lt -10000 ]; do
    [ $(($(mig_now_ms) - t0)) -lt 10000 ] || { sfail "the VM on $1 still owes $((-avail)) usec after 12 s at baseline"; return 1; }
    sleep 0.2
  done
  [ $(($(mig_now_ms) - t0)) -lt 300 ] || slog "its debt repaid ($(($(mig_now_ms) - t0)) ms more)"
  sleep 1
}

# scen_finish OWNER EXPECT_APPLY [ANALYZE ARGS...]: the end of a scenario
# that ran: (c) exactly one owner (OWNER), the final credits, the sampler
# stopped, both hosts' events; mig-scenarios.py analyze.
scen_finish() {
  local owner=$1 apply=$2 h n=0 r t_cr out rc
  shift 2
  for h in a b; do
    r=$(role "$h")
    echo "  host $h: $r"
    [ "$r" != owner ] || n=$((n + 1))
  done
  check "[ $n = 1 ] && [ \"\$(role $owner)\" = owner ]" "one-owner (exactly one vmmgrd owns the VM: $owner)"
  credits "$owner" >"$MIG_TMP/$SCEN.credits" || { sfail "credits show on $owner"; return 1; }
  t_cr=$(now_us)
  S_TEND=$(now_us)
  slog "the end of the run"
  sleep 0.05
  touch "$S_STOPFILE"
  wait "$S_SAMPLER_PID" 2>/dev/null || true
  mig_forget_pid "$S_SAMPLER_PID"
  S_SAMPLER_PID=""
  ev_json a >"$MIG_TMP/$SCEN.a-events" || { sfail "a's events"; return 1; }
  ev_json b >"$MIG_TMP/$SCEN.b-events" || { sfail "b's events"; return 1; }
  set +e
  out=$(python3 "$SCEN_PY" analyze --name "$SCEN" --uuid "$MIG_UUID" --baseline-ppm "$BASELINE_PPM" \
    --cap-usec "${CLASS_CAP[$S_CLASS]}" --launch-usec "${CLASS_LAUNCH[$S_CLASS]}" "${S_INJECTS[@]}" --t-reg-usec "$S_TREG" --t-end-usec "$S_TEND" \
    --samples "$S_SAMPLES" --a-base-ns "$S_ABASE" --b-base-ns "$S_BBASE" --b-resume-usec "$S_BRESUME" \
    --a-events "$MIG_TMP/$SCEN.a-events" --b-events "$MIG_TMP/$SCEN.b-events" \
    --owner-credits "$MIG_TMP/$SCEN.credits" --credits-time-usec "$t_cr" --expect-apply "$apply" "$@" 2>&1)
  rc=$?
  set -e
  echo "$out"
  [ "$rc" = 0 ] || SCEN_OK=0
  RESULT_BAL[$SCEN]=$(sed -n 's/^RESULT.* balance_error_usec=\([0-9]*\).*/\1/p' <<<"$out")
  RESULT_ENT[$SCEN]=$(sed -n 's/^RESULT.* entitlement_error_pct=\([-+0-9.]*\).*/\1/p' <<<"$out")
}

# scen_end: whatever happened, the next scenario starts clean: the link
# healed, both vmmgrds up, the QEMUs gone, the VM unregistered everywhere.
scen_end() {
  local h n
  heal || true
  for h in a b; do
    [ -n "$(mig_vmmgrd_pid "$h")" ] || mig_vmmgrd_restart "$h"
  done
  if [ -n "${S_SAMPLER_PID:-}" ]; then
    touch "$S_STOPFILE"
    mig_kill_wait "$S_SAMPLER_PID" 2
    mig_forget_pid "$S_SAMPLER_PID"
  fi
  for n in "$S_SRC" "$S_DST"; do mig_quit "$n"; done
  for h in a b; do
    if mig_registered "$h"; then mig_unobserve "$h" || echo "  (host $h did not unregister the VM)" >&2; fi
  done
  RESULT_TIME[$SCEN]=$(($(mig_now_ms) - S_T0))
  slog "cleaned up"
  if [ -n "${MIG_SCEN_SAVE:-}" ]; then
    mkdir -p "$MIG_SCEN_SAVE/$SCEN"
    cp "$MIG_TMP/$SCEN".* "$MIG_SCEN_SAVE/$SCEN/" 2>/dev/null || true
    for h in a b; do cp "$MIG_TMP/host-$h/vmmgrd.log" "$MIG_SCEN_SAVE/$SCEN/$h-vmmgrd.log" 2>/dev/null || true; done
  fi
  if [ "$SCEN_OK" = 1 ]; then
    RESULT_STATUS[$SCEN]=ok
  else
    RESULT_STATUS[$SCEN]=FAIL
    failed+=("$SCEN")
    if [ "${MIG_SCEN_LOGS:-1}" = 1 ]; then
      echo "--- $SCEN failed: its events and the daemons' logs" >&2
      for h in a b; do
        echo "--- host $h events:" >&2
        ev_json "$h" 2>/dev/null | python3 "$SCEN_PY" events "$MIG_UUID" \
          migration-start migration-freeze migration-completed migration-failed migration-closed \
          migration-taken-back migration-resumed migration-applied migration-gone register unregister >&2 || true
        echo "--- host $h vmmgrd.log (last 30 lines):" >&2
        tail -n 30 "$MIG_TMP/host-$h/vmmgrd.log" >&2 || true
      done
    fi
  fi
  echo "=== $SCEN: ${RESULT_STATUS[$SCEN]} in ${RESULT_TIME[$SCEN]} ms"
}

# ---- the scenarios ---------------------------------------------------------------------

# A plain migration a -> b of a VM spending credits, then the VM runs on b
# until its credits are out.
plain() {
  migrate_to_b || return 1
  resume_b || return 1
  handed_off_to_b || return 1
  run_to_baseline b || return 1
}

scen_plain_bursting() {
  # Banked credits (an operator's inject into an empty bank; no launch
  # credits), 0.25 s of them spent at full speed before the migration.
  scen_begin plain-bursting migbank 600000 || return 1
  wait_cpu "$S_SRC" 250000 15 || { sfail "the source did not burst"; return 1; }
  plain || return 1
  scen_finish b 1 --frozen-check launch_usec:0:0 --frozen-check balance_usec:200000:2000000
}

scen_plain_baseline() {
  # 0.2 s of launch credits, spent; held at baseline for a second before
  # the migration.
  scen_begin plain-baseline miglow || return 1
  credits_out a || return 1
  sleep 1
  plain || return 1
  scen_finish b 1 --frozen-check launch_usec:0:0 --frozen-check available_usec:-1000000:50000
}

scen_plain_launch() {
  # 0.5 s of launch credits, 0.15 s of them spent before the migration.
  scen_begin plain-launch migstd || return 1
  wait_cpu "$S_SRC" 150000 15 || { sfail "the source did not burst"; return 1; }
  plain || return 1
  scen_finish b 1 --frozen-check launch_usec:50000:450000
}

scen_cancel_active() {
  local st r
  scen_begin cancel-active migstd || return 1
  wait_cpu "$S_SRC" 100000 15 || { sfail "the source did not burst"; return 1; }
  mig_announce a b || { sfail "announce"; return 1; }
  # 64 MiB of zero pages at 100 kB/s: seconds in the active phase.
  mig_set_bandwidth "$S_SRC" 100000 || { sfail "max-bandwidth"; return 1; }
  mig_start "$S_SRC" "$S_DST" || { sfail "migrate"; return 1; }
  mig_wait_migrate_status "$S_SRC" active 10 || { sfail "the migration is not active"; return 1; }
  sleep 0.8
  st=$(mig_migrate_status "$S_SRC")
  [ "$st" = active ] || { sfail "the migration is '$st' before the cancel, not active"; return 1; }
  mig_cancel "$S_SRC" || { sfail "migrate_cancel"; return 1; }
  st=$(mig_wait "$S_SRC" 10 2>/dev/null) && { sfail "the migration completed despite the cancel"; return 1; }
  check "[ '$st' = cancelled ]" "cancelled (query-migrate: $st)"
  check "[ \"\$(mig_status $S_SRC)\" = running ]" "the source QEMU runs on"
  # b's incoming QEMU fails its load and exits by itself; the tool would kill it otherwise.
  local t0
  t0=$(mig_now_ms)
  while mig_alive "$(mig_qemu_pid "$S_DST")" && [ $(($(mig_now_ms) - t0)) -lt 5000 ]; do sleep 0.05; done
  if mig_alive "$(mig_qemu_pid "$S_DST")"; then
    echo "  b's incoming QEMU still there 5 s after the cancel: killed (as the tool would)"
    mig_qemu_kill "$S_DST"
  else
    mig_qemu_gone "$S_DST"
  fi
  wait_event b migration-gone 5 || sfail "b has no tombstone for its incoming VM"
  r=$(role a)
  check "[ '$r' = owner ]" "the source keeps the ledger (a: $r)"
  check "[ -z \"\$(events a migration-freeze)\" ]" "no freeze on a (the source never stopped)"
  check "[ -z \"\$(events b migration-applied)\" ]" "nothing applied on b"
  check "[ \"\$(role b)\" = gone ]" "b's incoming VM is a tombstone (b: $(role b))"
  # The tool withdraws the announcement (a new migration can be announced).
  mig_ctl a migration cancel "$MIG_UUID" >/dev/null || sfail "migration cancel on a"
  run_to_baseline a || return 1
  scen_finish a 0
}

scen_cancel_frozen() {
  local r
  # Cancelled after the source stopped (held before its switchover): the
  # ledger was frozen; the migration fails, QEMU resumes the source, and
  # the ledger is the source's again, as if nothing had happened.
  scen_begin cancel-frozen migstd || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  mig_announce a b || { sfail "announce"; return 1; }
  mig_hold_switchover "$S_SRC" || { sfail "pause-before-switchover"; return 1; }
  mig_start "$S_SRC" "$S_DST" || { sfail "migrate"; return 1; }
  mig_wait_migrate_status "$S_SRC" pre-switchover 15 || { sfail "not held before the switchover"; return 1; }
  wait_event a migration-freeze 5 || { sfail "a did not freeze the ledger at STOP"; return 1; }
  sleep 0.5
  mig_cancel "$S_SRC" || { sfail "migrate_cancel"; return 1; }
  mig_wait "$S_SRC" 10 >/dev/null 2>&1 && { sfail "the migration completed despite the cancel"; return 1; }
  mig_wait_status "$S_SRC" running 5 || { sfail "the source QEMU does not run again after the cancel"; return 1; }
  wait_event a migration-failed 5 || sfail "a did not see the migration fail"
  r=$(role a)
  check "[ '$r' = owner ]" "the source owns the ledger again (a: $r)"
  local t0
  t0=$(mig_now_ms)
  while mig_alive "$(mig_qemu_pid "$S_DST")" && [ $(($(mig_now_ms) - t0)) -lt 5000 ]; do sleep 0.05; done
  if mig_alive "$(mig_qemu_pid "$S_DST")"; then mig_qemu_kill "$S_DST"; else mig_qemu_gone "$S_DST"; fi
  wait_event b migration-gone 5 || sfail "b has no tombstone for its incoming VM"
  check "[ -z \"\$(events b migration-applied)\" ]" "nothing applied on b"
  check "[ \"\$(role b)\" = gone ]" "b's incoming VM is a tombstone"
  slog "cancelled after the freeze; a owns the VM again"
  run_to_baseline a || return 1
  scen_finish a 0
}

scen_dst_qemu_killed() {
  scen_begin dst-qemu-killed migstd || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  migrate_to_b || return 1
  # Completed and loaded on b, never resumed: the destination QEMU dies.
  mig_qemu_kill "$S_DST" || { sfail "kill b's QEMU"; return 1; }
  wait_event b migration-gone 5 || sfail "b has no tombstone for its incoming VM"
  wait_event a migration-taken-back 10 || { sfail "a did not take the credits back (b's nack)"; return 1; }
  check "events a migration-taken-back | grep -q 'went before it resumed'" "a took them back on b's nack"
  check "[ \"\$(role a)\" = owner ]" "a owns the VM again"
  # The tool resumes the source: the VM runs there again.
  mig_cont "$S_SRC" || { sfail "cont on a"; return 1; }
  mig_wait_status "$S_SRC" running 5 || { sfail "a's QEMU does not run after cont"; return 1; }
  check "[ \"\$(role b)\" = gone ]" "b's incoming VM is a tombstone"
  check "[ -z \"\$(events b migration-applied)\" ]" "nothing applied on b"
  run_to_baseline a || return 1
  scen_finish a 0
}

scen_src_vmmgrd_killed() {
  local t_kill
  scen_begin src-vmmgrd-killed migstd || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  mig_announce a b || { sfail "announce"; return 1; }
  mig_hold_switchover "$S_SRC" || { sfail "pause-before-switchover"; return 1; }
  mig_start "$S_SRC" "$S_DST" || { sfail "migrate"; return 1; }
  mig_wait_migrate_status "$S_SRC" pre-switchover 15 || { sfail "not held before the switchover"; return 1; }
  wait_event a migration-freeze 5 || { sfail "a did not freeze the ledger at STOP"; return 1; }
  mig_vmmgrd_kill a
  t_kill=$(mig_now_ms)
  mig_release_switchover "$S_SRC" || { sfail "migrate-continue"; return 1; }
  mig_wait "$S_SRC" 30 >/dev/null || { sfail "the migration did not complete"; return 1; }
  [ "$(mig_wait_incoming "$S_DST" 10)" = paused ] || { sfail "b's QEMU is not paused"; return 1; }
  resume_b || return 1
  wait_event b migration-resumed 5 || sfail "b did not see its QEMU resume"
  sleep 1
  check "[ -z \"\$(events b migration-applied)\" ]" "nothing applied while a's vmmgrd is down"
  mig_vmmgrd_restart a
  echo "  a's vmmgrd down $(($(mig_now_ms) - t_kill)) ms, restarted"
  handed_off_to_b 20 || return 1
  check "events a migration-completed | grep -q query-migrate" "a learnt the outcome from query-migrate after its restart"
  run_to_baseline b || return 1
  scen_finish b 1
}

scen_dst_vmmgrd_killed() {
  local t_kill
  scen_begin dst-vmmgrd-killed migstd 0 cut || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  migrate_to_b || return 1
  resume_b || return 1
  wait_event b migration-resumed 5 || { sfail "b did not see its QEMU resume"; return 1; }
  sleep 0.5
  mig_vmmgrd_kill b
  t_kill=$(mig_now_ms)
  check "[ -z \"\$(events a migration-closed 2>/dev/null)\" ] && [ \"\$(role a)\" = handed-off ]" \
    "a holds the record (handed-off) while the link is cut"
  sleep 1
  heal
  mig_vmmgrd_restart b
  echo "  b's vmmgrd down $(($(mig_now_ms) - t_kill)) ms, restarted"
  handed_off_to_b 20 || return 1
  run_to_baseline b || return 1
  scen_finish b 1
}

scen_dst_vmmgrd_down_at_resume() {
  local t_kill
  scen_begin dst-vmmgrd-down-at-resume migstd || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  migrate_to_b || return 1
  mig_vmmgrd_kill b
  t_kill=$(mig_now_ms)
  resume_b || return 1
  sleep 1
  mig_vmmgrd_restart b
  echo "  b's vmmgrd down $(($(mig_now_ms) - t_kill)) ms (b resumed meanwhile), restarted"
  wait_event b migration-resumed 5 || sfail "b's restarted vmmgrd did not find its QEMU resumed"
  check "events b migration-resumed | grep -q 'after a restart'" "b's vmmgrd found its QEMU running after its restart"
  handed_off_to_b 20 || return 1
  run_to_baseline b || return 1
  scen_finish b 1
}

scen_record_twice() {
  local rec reply before after t_before t_after c_before c_after
  scen_begin record-twice migstd || return 1
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  mig_announce a b || { sfail "announce"; return 1; }
  # The record, as a journaled it, while held before the switchover.
  mig_hold_switchover "$S_SRC" || { sfail "pause-before-switchover"; return 1; }
  mig_start "$S_SRC" "$S_DST" || { sfail "migrate"; return 1; }
  mig_wait_migrate_status "$S_SRC" pre-switchover 15 || { sfail "not held before the switchover"; return 1; }
  wait_event a migration-freeze 5 || { sfail "a did not freeze the ledger at STOP"; return 1; }
  rec=$(mig_handoff a | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["record"]))') \
    || { sfail "a's record"; return 1; }
  echo "$rec" >"$MIG_TMP/$SCEN.record.json"
  mig_release_switchover "$S_SRC" || { sfail "migrate-continue"; return 1; }
  mig_wait "$S_SRC" 30 >/dev/null || { sfail "the migration did not complete"; return 1; }
  [ "$(mig_wait_incoming "$S_DST" 10)" = paused ] || { sfail "b's QEMU is not paused"; return 1; }
  resume_b || return 1
  handed_off_to_b || return 1
  # Again over TLS (as a's vmmgrd sends it), and by the tool's import.
  { c_before=$(credits b) && t_before=$(now_us) && before=$(schedstat "$S_BPATH"); } || { sfail "b's credits"; return 1; }
  reply=$(mig_https a b POST /v1/migration/records "$rec") || sfail "POST the record again to b: $reply"
  check "python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(d[\"reply\"]!=\"ack\")' '$reply'" \
    "the record POSTed again is acknowledged ($reply)"
  reply=$(mig_ctl b migration import "$MIG_TMP/$SCEN.record.json" 2>&1)
  check "[ $? = 0 ]" "vmmgrctl migration import of it again: ack, exit 0 ($reply)"
  sleep 0.5
  { c_after=$(credits b) && t_after=$(now_us) && after=$(schedstat "$S_BPATH"); } || { sfail "b's credits"; return 1; }
  check "[ \$(events b migration-applied | wc -l) = 1 ]" "one migration-applied on b"
  # Unchanged: between the two reads the ledger moved by its earnings and
  # use alone (within a tick: the bank's looks are 100 ms apart).
  python3 - "$c_before" "$c_after" "$t_before" "$t_after" "$before" "$after" <<'EOF' || sfail "the duplicates changed b's ledger"
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
dt = (int(sys.argv[4]) - int(sys.argv[3])) / 1e6
used = (int(sys.argv[6]) - int(sys.argv[5])) / 1000
d = a["available_usec"] - b["available_usec"]
exp = 200000 * dt - used
print(f"  b's ledger across the duplicates: available {b['available_usec']} -> {a['available_usec']} "
      f"({d:+}); earnings {200000 * dt:.0f} - use {used:.0f} (/proc) = {exp:+.0f}; adjusted "
      f"{b['adjusted_usec']} -> {a['adjusted_usec']}")
sys.exit(0 if abs(d - exp) <= 100000 and a["adjusted_usec"] == b["adjusted_usec"] else 1)
EOF
  run_to_baseline b || return 1
  scen_finish b 1
}

scen_network_cut() {
  local t_heal t_cut
  scen_begin network-cut migstd 0 cut || return 1
  t_cut=$(mig_now_ms)
  wait_cpu "$S_SRC" 200000 15 || { sfail "the source did not burst"; return 1; }
  migrate_to_b || return 1
  resume_b || return 1
  wait_event b migration-resumed 5 || sfail "b did not see its QEMU resume"
  sleep 2
  check "[ \"\$(role b)\" = provisional ] && [ \"\$(role a)\" = handed-off ]" \
    "b provisional, a handed off while the link is cut"
  heal
  t_heal=$(now_us)
  echo "  the daemons' link cut $(($(mig_now_ms) - t_cut)) ms, healed"
  handed_off_to_b 20 || return 1
  echo "  applied $((($(event_time b migration-applied) - t_heal) / 1000)) ms after the heal"
  run_to_baseline b || return 1
  scen_finish b 1 --provisional-until-usec "$t_heal"
}

# cut_and_fill: the daemons' link cut; until the VM's bank on a is about
# full (the QEMU stopped: it earns and spends nothing).
cut_and_fill() {
  local t0
  cut || return 1
  t0=$(mig_now_ms)
  until [ "$(credit_field a balance_usec)" -ge $((CLASS_CAP[$S_CLASS] - 20000)) ]; do
    [ $(($(mig_now_ms) - t0)) -lt 10000 ] || { mig_err "the bank on a is not full after 10 s"; return 1; }
    sleep 0.1
  done
}

scen_record_late_full_bank() {
  local t_heal
  # A small bank (a 0.5 s cap) about full when the VM migrates (it stays
  # stopped after its registration until its bank is full, as an idle VM's
  # is), and its record late (the daemons' link cut for 3 s after the
  # resume).  On b the VM runs on its provisional bank meanwhile, at its
  # baseline: what it earns, it uses, and a bank that had it all along
  # would have stayed about where it was.  Earnings for the whole delay
  # that went in before the use came out would hit the cap and be
  # forfeited: lost credits.
  scen_begin record-late-full-bank migfull 0 cut_and_fill || return 1
  migrate_to_b || return 1
  resume_b || return 1
  wait_event b migration-resumed 5 || sfail "b did not see its QEMU resume"
  sleep 3
  heal
  t_heal=$(now_us)
  handed_off_to_b 20 || return 1
  run_to_baseline b || return 1
  scen_finish b 1 --frozen-check balance_usec:150000:500000 --provisional-until-usec "$t_heal"
}

# ---- run ----------------------------------------------------------------------------------
for s in "${scenarios[@]}"; do
  if ! "scen_${s//-/_}"; then SCEN_OK=0; fi
  scen_end
done

echo "=== summary"
max=0
for s in "${scenarios[@]}"; do
  printf '%-26s %-4s %6s ms  balance error %s usec  entitlement error %s %%\n' "$s" "${RESULT_STATUS[$s]}" \
    "${RESULT_TIME[$s]}" "${RESULT_BAL[$s]:-n/a}" "${RESULT_ENT[$s]:-n/a}"
  if [ -n "${RESULT_BAL[$s]:-}" ]; then
    echo "figure: migration.scenario.$s.balance_error_usec ${RESULT_BAL[$s]}"
    [ "${RESULT_BAL[$s]}" -le "$max" ] || max=${RESULT_BAL[$s]}
  fi
  [ -z "${RESULT_ENT[$s]:-}" ] || echo "figure: migration.scenario.$s.entitlement_error_pct ${RESULT_ENT[$s]}"
done
echo "figure: migration.balance_error_usec $max"
echo "total: $(($(mig_now_ms) - t_all)) ms"
if [ ${#failed[@]} -gt 0 ]; then
  MIG_FAILED=1
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "PASS"
