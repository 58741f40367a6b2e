#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/migration/mig-scenarios.py - measurements and checks for
test-migration-scenarios.sh (the credit handoff on real QEMU migrations).

Standard library only.  Subcommands:

  sample OUT STOPFILE PATH...
      Every 5 ms until STOPFILE exists (or every PATH is gone): one line
      "WALL_USEC NS NS ..." with the first field (run time, ns) of each
      PATH (/proc/PID/task/TID/schedstat of a vCPU thread).  A thread that
      is gone keeps its last value.  WALL_USEC is the middle of the reads
      (CLOCK_REALTIME, the clock of vmmgrd's events and QEMU's).

  events UUID KIND [KIND...]
      vmmgrctl events --json on stdin: prints the VM's events of those
      kinds, one compact JSON object a line.

  field KEY
      A JSON object on stdin: prints its top-level KEY (strings bare).

  cpu SAMPLES COLUMN WALL_USEC
      The run time (ns) of column COLUMN (1 = the first PATH) at
      WALL_USEC, interpolated between the samples around it.

  analyze --name N ... (see the options)
      The scenario's checks, from the samples, both vmmgrds' events and
      the final owner's credits, against an ideal ledger that this file
      runs by the policy (docs/credits.md: earnings repay debt, then fill
      the bank up to the cap; use takes launch credits, then the bank,
      then goes into debt) over the wall clock and the use /proc measured,
      sample by sample:
        (a) apply: credits received on the destination (its
            migration-applied event's merged ledger) == the source's frozen
            ledger (its migration-freeze event) run by the policy from the
            freeze to the apply with the use of that time (the
            destination's vCPU since its resume): its earnings, minus that
            use, the cap forfeiting only what a bank that had the VM all
            along would have; within one tick of CPU.  Also: the record
            applied is the ledger frozen, and from the resume to the apply
            the destination's vCPU ran at most baseline x time + a tick
            (the provisional bank never over-grants);
        (b) entitlement: the vCPU time of both QEMUs (/proc) since the
            registration vs the initial credits + baseline x wall time
            (less what the ideal ledger forfeited at its cap), the mean
            over the last second, within --tol-pct of the run's wall time
            x vCPUs (and at least --tol-min-usec);
        (l) ledger: the final owner's ledger against /proc: its spent ==
            the CPU both vCPUs ran up to its last look, its earned +
            forfeited == baseline x (that look - registration), its
            forfeited == the ideal ledger's, each within a tick.
      Prints "check ... ok|FAIL" lines, figure lines and a last line
      "RESULT key=value ..."; exits 1 when a check failed.
"""
import argparse
import bisect
import json
import os
import sys
import time

TICK_USEC = 100_000  # vmmgrd's tick_ms = 100 in mighosts.sh's config


def die(msg):
    print(f"mig-scenarios: {msg}", file=sys.stderr)
    sys.exit(2)


def cmd_sample(a):
    last = [None] * len(a.paths)
    gone = [False] * len(a.paths)
    with open(a.out, "a", buffering=1) as f:
        while not os.path.exists(a.stopfile):
            t0 = time.time_ns() // 1000
            for i, p in enumerate(a.paths):
                if gone[i]:
                    continue
                try:
                    with open(p) as s:
                        last[i] = int(s.read().split()[0])
                except (OSError, ValueError, IndexError):
                    gone[i] = True  # the thread exited: its last value stays
                    if last[i] is None:
                        last[i] = 0
            t1 = time.time_ns() // 1000
            f.write(f"{(t0 + t1) // 2} {' '.join(str(v) for v in last)}\n")
            if all(gone):
                break
            time.sleep(0.005)


def load_samples(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                try:
                    rows.append([int(x) for x in parts])
                except ValueError:
                    pass
    if not rows:
        die(f"no samples in {path}")
    return rows


def cpu_at(rows, col, t):
    """Run time (ns) of column col (1-based) at wall time t (usec)."""
    ts = [r[0] for r in rows]
    i = bisect.bisect_left(ts, t)
    if i == 0:
        return float(rows[0][col])
    if i >= len(rows):
        return float(rows[-1][col])
    (t0, v0), (t1, v1) = (rows[i - 1][0], rows[i - 1][col]), (rows[i][0], rows[i][col])
    if t1 == t0:
        return float(v1)
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def cmd_cpu(a):
    print(int(cpu_at(load_samples(a.samples), a.column, a.wall_usec)))


def events_of(path, uuid, kinds):
    with open(path) as f:
        d = json.load(f)
    return [e for e in d.get("events", []) if e.get("vm") == uuid and e.get("kind") in kinds]


def cmd_events(a):
    d = json.load(sys.stdin)
    for e in d.get("events", []):
        if e.get("vm") == a.uuid and e.get("kind") in a.kinds:
            print(json.dumps(e, separators=(",", ":")))


def cmd_field(a):
    d = json.load(sys.stdin)
    v = d.get(a.key)
    if v is None:
        sys.exit(1)
    print(v if not isinstance(v, bool) else str(v).lower())


class Ledger:
    """The policy (policies/credits.c, standard mode) as docs/credits.md
    states it, for the ideal ledger the scenario's VM is entitled to:
    earnings repay debt first, then fill the bank up to the cap (the rest
    is forfeited); use takes launch credits first, then the bank, then
    goes into debt.  Fed with the wall clock and the use /proc measured,
    sample by sample (a few ms apart): earnings and use interleave as they
    did, so the cap forfeits only what a real bank would."""

    def __init__(self, cap, launch=0, balance=0, debt=0):
        self.cap, self.launch, self.balance, self.debt = cap, launch, balance, debt
        self.forfeited = 0.0

    def accrue(self, earn):
        repay = min(self.debt, earn)
        self.debt -= repay
        earn -= repay
        put = min(max(0, self.cap - self.balance), earn)
        self.balance += put
        self.forfeited += earn - put

    def spend(self, used):
        take = min(self.launch, used)
        self.launch -= take
        used -= take
        take = min(self.balance, used)
        self.balance -= take
        self.debt += used - take

    def available(self):
        return self.launch + self.balance - self.debt


def cmd_analyze(a):
    ok = True
    res = {}
    rate = a.baseline_ppm * a.vcpus  # CPU-usec per wall second
    tick = TICK_USEC * a.vcpus

    def check(name, cond, msg):
        nonlocal ok
        print(f"check {a.name} {name}: {'ok' if cond else 'FAIL'}: {msg}")
        if not cond:
            ok = False

    rows = load_samples(a.samples)

    def cpu_usec(t):
        """What both vCPUs ran since their bases at wall time t (usec)."""
        return (cpu_at(rows, 1, t) - a.a_base_ns + max(0.0, cpu_at(rows, 2, t) - a.b_base_ns)) / 1000

    def run(led, t_from, t_to, injects=()):
        """Runs the ideal ledger led from t_from to t_to over the samples
        (both vCPUs' use), with operator injects [(time, usec)]; returns
        the forfeited total at each sample time as [(t, forfeited)]."""
        pending = sorted(injects)
        t, u = t_from, cpu_usec(t_from)
        trace = [(t, led.forfeited)]
        points = [r[0] for r in rows if t_from < r[0] < t_to] + [t_to]
        for tn in points:
            while pending and pending[0][0] <= tn:
                led.balance += pending.pop(0)[1]
            un = cpu_usec(tn)
            led.accrue(rate * (tn - t) / 1e6)
            led.spend(max(0.0, un - u))
            t, u = tn, un
            trace.append((t, led.forfeited))
        return trace

    injects = []
    for spec in a.inject:
        usec, at = spec.split("@")
        injects.append((int(at), int(usec)))
    initial = a.launch_usec + sum(u for _, u in injects)

    # ---- (a) the apply ----------------------------------------------------
    if a.expect_apply:
        freezes = events_of(a.a_events, a.uuid, ["migration-freeze"])
        applied = events_of(a.b_events, a.uuid, ["migration-applied"])
        check("applied-once", len(applied) == 1,
              f"{len(applied)} migration-applied event(s) on the destination")
        check("frozen-once", len(freezes) >= 1, f"{len(freezes)} migration-freeze event(s) on the source")
        if applied and freezes:
            fz, ap = freezes[-1], applied[0]
            fl, det = fz["detail"]["ledger"], ap["detail"]
            frozen_at, t_apply, t_res = fz["time_usec"], ap["time_usec"], a.b_resume_usec
            same = all(det["frozen"][k] == fl[k] for k in fl)
            check("record-is-frozen-ledger", same,
                  f"the record applied carries the ledger the source froze "
                  f"(frozen {json.dumps(fl)}, applied {json.dumps(det['frozen'])})")
            for fc in a.frozen_check:
                k, lo, hi = fc.split(":")
                v = fl[k]
                check(f"frozen-{k}", int(lo) <= v <= int(hi),
                      f"the source froze {k} = {v} usec (the scenario wants {lo}..{hi})")
            # What the policy makes of the frozen ledger from the freeze to
            # the apply, given what the VM used meanwhile (the destination's
            # vCPU after its resume; the source's is stopped).
            debt = fl["balance_usec"] + fl["launch_usec"] - fl["available_usec"]
            led = Ledger(a.cap_usec, fl["launch_usec"], fl["balance_usec"], debt)
            u0 = cpu_usec(frozen_at)
            run(led, frozen_at, t_apply)
            used = cpu_usec(t_apply) - u0
            b_used = max(0.0, cpu_at(rows, 2, t_apply) - a.b_base_ns) / 1000 if t_apply > t_res else 0.0
            earn = rate * (t_apply - frozen_at) / 1e6
            expected = led.available()
            got = det["merged"]["available_usec"]
            err = got - expected
            res["balance_error_usec"] = round(abs(err))
            res["apply_after_resume_ms"] = round((t_apply - t_res) / 1000, 1)
            print(f"  apply: frozen {fl['available_usec']} usec available (balance {fl['balance_usec']}, launch "
                  f"{fl['launch_usec']}, debt {debt}) at {frozen_at}; applied {(t_apply - frozen_at) / 1e6:.3f} s "
                  f"later ({(t_apply - t_res) / 1e6:.3f} s after the resume): + earnings {earn:.0f} (the cap "
                  f"forfeits {led.forfeited:.0f} of them as the VM used them) - the destination's vCPU since "
                  f"resume {b_used:.0f} (/proc; both vCPUs since the freeze {used:.0f}; vmmgrd charged "
                  f"{det.get('provisional_spent_usec')}) = {expected:.0f} expected, {got} received: "
                  f"error {err:+.0f} usec")
            # The provisional bank: from the resume until the apply (or
            # --provisional-until), the destination's vCPU never ran beyond
            # what the baseline earned since the resume, plus a tick.
            until = min(t_apply, a.provisional_until_usec or t_apply)
            worst, worst_t = None, 0
            for r in rows:
                if t_res < r[0] <= until:
                    over = (r[2] - a.b_base_ns) / 1000 - rate * (r[0] - t_res) / 1e6
                    if worst is None or over > worst:
                        worst, worst_t = over, r[0]
            if worst is not None:
                res["provisional_excess_usec"] = round(worst)
                used_until = (cpu_at(rows, 2, until) - a.b_base_ns) / 1000
                print(f"  provisional: {(until - t_res) / 1e6:.3f} s from the resume, the destination's vCPU "
                      f"ran {used_until:.0f} usec (baseline x time = {rate * (until - t_res) / 1e6:.0f}); "
                      f"at worst {worst:+.0f} usec beyond baseline x time, "
                      f"{(worst_t - t_res) / 1e6:.3f} s after the resume")
                check("provisional", worst <= tick,
                      f"the provisional bank never gave more than baseline x time since resume + one tick "
                      f"(worst {worst:+.0f} usec, tolerance {tick})")
            check("balance", abs(err) <= tick,
                  f"credits received {got} usec vs expected {expected:.0f} usec: {err:+.0f} usec "
                  f"(tolerance one tick, {tick} usec)")

    # ---- (b) entitlement over the whole run ---------------------------------
    # The ideal ledger from the registration: what the VM may have run is
    # its initial credits + baseline x time, less what the cap forfeited
    # (nothing while it spins: it spends faster than it earns).
    t_end = a.t_end_usec
    ideal = Ledger(a.cap_usec, a.launch_usec)
    trace = run(ideal, a.t_reg_usec, t_end, injects)
    tt = [x[0] for x in trace]

    def forfeited_at(t):
        return trace[max(0, bisect.bisect_right(tt, t) - 1)][1]

    wall = (t_end - a.t_reg_usec) / 1e6
    errs = []
    for r in rows:
        if t_end - 1_000_000 <= r[0] <= t_end:
            gained = a.launch_usec + sum(u for t, u in injects if t <= r[0])
            entitled = gained + rate * (r[0] - a.t_reg_usec) / 1e6 - forfeited_at(r[0])
            errs.append(cpu_usec(r[0]) - entitled)
    if not errs:
        die("no samples in the run's last second")
    ent_err = sum(errs) / len(errs)
    cpu_end = cpu_usec(t_end)
    entitled_end = initial + rate * wall - ideal.forfeited
    tol = max(a.tol_pct / 100 * wall * 1e6 * a.vcpus, a.tol_min_usec)
    res["entitlement_error_usec"] = round(ent_err)
    res["entitlement_error_pct"] = f"{100 * ent_err / (wall * 1e6 * a.vcpus):+.3f}"
    res["run_s"] = round(wall, 2)
    print(f"  entitlement: {wall:.2f} s since the registration, both vCPUs ran {cpu_end / 1e6:.4f} s "
          f"(/proc), entitled {entitled_end / 1e6:.4f} s (initial {initial / 1e6:.3f} s + "
          f"{a.baseline_ppm / 1e4:g} % x {wall:.2f} s - forfeited at the cap {ideal.forfeited / 1e6:.3f} s); "
          f"mean over the last second {ent_err:+.0f} usec = {res['entitlement_error_pct']} % of "
          f"the run ({len(errs)} samples)")
    check("entitlement", abs(ent_err) <= tol,
          f"received - entitled {ent_err:+.0f} usec (tolerance {tol:.0f} usec: "
          f"{a.tol_pct} % of {wall:.2f} s x {a.vcpus} vCPU, at least {a.tol_min_usec} usec)")

    # ---- (l) the owner's ledger against /proc --------------------------------
    with open(a.owner_credits) as f:
        cr = json.load(f)
    forfeited = cr.get("forfeited_usec", 0)
    earned = cr["earned_usec"] + forfeited
    t_look = a.t_reg_usec + earned / rate * 1e6
    spent = cr["spent_usec"]
    cpu_look = cpu_usec(t_look)
    # Earnings against the wall clock up to the end of the credits' read:
    # the last look is at most about a second old (at baseline 100 ms), and
    # the register event is written a moment after the bank started.
    e = earned - rate * (a.credits_time_usec - a.t_reg_usec) / 1e6
    res["ledger_error_usec"] = round(spent - cpu_look)
    res["earned_error_usec"] = round(e)
    print(f"  ledger: earned + forfeited {earned} usec, {e:+.0f} usec against baseline x the time from the "
          f"registration to the read (its last look {-e / rate * 1e3:.0f} ms before); spent {spent} usec vs "
          f"{cpu_look:.0f} usec both vCPUs ran up to that look (/proc): {spent - cpu_look:+.0f} usec; "
          f"forfeited {forfeited} usec (the ideal ledger: {ideal.forfeited:.0f}); available "
          f"{cr['available_usec']} usec")
    check("ledger-earned", -rate * 1.1 - tick <= e <= rate * 0.1,
          f"earnings {e:+.0f} usec against the wall clock (a look is at most 1 s old: from "
          f"{-rate * 1.1 - tick:.0f} (lost beyond a tick) to {rate * 0.1:+.0f} (the registration's lag; "
          f"more is created))")
    check("ledger-spent", abs(spent - cpu_look) <= tick,
          f"spent {spent} vs /proc {cpu_look:.0f}: {spent - cpu_look:+.0f} usec (tolerance {tick} usec)")
    check("ledger-forfeited", forfeited - ideal.forfeited <= tick,
          f"the ledger forfeited {forfeited} usec at its cap, the policy {ideal.forfeited:.0f} usec "
          f"(tolerance {tick} usec)")

    print("RESULT " + " ".join(f"{k}={v}" for k, v in res.items()) + f" ok={int(ok)}")
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(prog="mig-scenarios")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("out")
    s.add_argument("stopfile")
    s.add_argument("paths", nargs="+")
    e = sub.add_parser("events")
    e.add_argument("uuid")
    e.add_argument("kinds", nargs="+")
    fl = sub.add_parser("field")
    fl.add_argument("key")
    c = sub.add_parser("cpu")
    c.add_argument("samples")
    c.add_argument("column", type=int)
    c.add_argument("wall_usec", type=int)
    an = sub.add_parser("analyze")
    an.add_argument("--name", required=True)
    an.add_argument("--uuid", required=True)
    an.add_argument("--vcpus", type=int, default=1)
    an.add_argument("--baseline-ppm", type=int, required=True)
    an.add_argument("--cap-usec", type=int, required=True)
    an.add_argument("--launch-usec", type=int, required=True, help="the class's launch credits")
    an.add_argument("--inject", action="append", default=[], metavar="USEC@WALL_USEC",
                    help="an operator's inject into the bank, and when")
    an.add_argument("--t-reg-usec", type=int, required=True, help="the source's register event")
    an.add_argument("--t-end-usec", type=int, required=True)
    an.add_argument("--samples", required=True, help="sample's output: source vCPU, destination vCPU")
    an.add_argument("--a-base-ns", type=int, required=True)
    an.add_argument("--b-base-ns", type=int, required=True)
    an.add_argument("--b-resume-usec", type=int, default=0, help="when the destination was resumed")
    an.add_argument("--a-events", required=True)
    an.add_argument("--b-events", required=True)
    an.add_argument("--owner-credits", required=True, help="credits show --json of the final owner")
    an.add_argument("--credits-time-usec", type=int, required=True, help="when its read ended")
    an.add_argument("--expect-apply", type=int, default=1)
    an.add_argument("--tol-pct", type=float, default=0.5)
    an.add_argument("--tol-min-usec", type=int, default=0)
    an.add_argument("--frozen-check", action="append", default=[], metavar="KEY:MIN:MAX",
                    help="the source's frozen ledger's KEY within MIN..MAX")
    an.add_argument("--provisional-until-usec", type=int, default=0,
                    help="check the provisional bank up to here (default: the apply)")
    a = p.parse_args()
    {"sample": cmd_sample, "events": cmd_events, "field": cmd_field, "cpu": cmd_cpu,
     "analyze": cmd_analyze}[a.cmd](a)


if __name__ == "__main__":
    main()
