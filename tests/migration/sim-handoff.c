/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A deterministic simulation of the credit handoff (migration/handoff.h,
 * docs/migration.md): two daemons with their journals, two QEMUs as event
 * sources, the network between the daemons, crashes and restarts, message
 * loss, duplication and reordering, on a simulated clock.
 *
 * One schedule, drawn from a seed: a VM spinning flat out (so it spends
 * credits whenever it may) starts on the source; the tool starts an
 * incoming QEMU and the migration; the source QEMU stops; the migration
 * completes (the destination resumes, or its QEMU dies and the tool may
 * resume the source) or fails (the source resumes, the destination QEMU is
 * killed).  Each daemon may crash any number of times for up to 3 s; it
 * then restarts from its journal and looks at its QEMU (as vmmgrd asks QMP
 * for the status).  Messages (the record; ack, nack) are lost (15 %),
 * duplicated (10 %) and delayed by up to 600 ms (so reordered); a daemon
 * that is down loses what arrives.  The source sends the record every
 * 300 ms until it hears back.
 *
 * Invariants, checked on every schedule:
 *   - never two owners: the source and the destination never both hold a
 *     live ledger (checked at every step);
 *   - at the end, one owner, unless the destination never knew the VM
 *     (its daemon down for the incoming QEMU's whole life: the record is
 *     then held, not lost, and the schedule counts as "in limbo");
 *   - credits: the owner's balance at the end equals an ideal ledger that
 *     lived through the whole run tick by tick (the policy's earnings,
 *     downtime included, and all the CPU both QEMUs used, by their
 *     counters; the cap forfeiting what does not fit), within one tick of
 *     earnings: never created, never lost beyond that.  Half the
 *     schedules have a small cap (1-10 s), so a bank near its cap meets
 *     late records and daemons that were down.
 *
 * usage: sim-handoff [SCHEDULES [FIRST_SEED]]   (default 3000, seed 1)
 *        sim-handoff --mutant N [SCHEDULES]     must catch known-bad variant N
 *        VMMGR_SIM_SEED=N sim-handoff           replays one schedule, verbose
 * Prints figure lines (migration.sim.*); exit 0 when every schedule holds,
 * 1 with the failing seed otherwise.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/handoff.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)
#define TICK (100 * MS)
#define END (22 * SEC)
#define BASELINE_PPM 200000
#define EARN_PER_TICK (TICK * BASELINE_PPM / 1000000)
#define RESEND (300 * MS)
#define MAX_MSGS 512

static bool verbose;
/* Known-bad variants of the protocol (--mutant N): the simulation must
 * catch each, or it proves nothing.
 *   1  the destination acknowledges a record before its QEMU resumed
 *   2  the source takes the ledger back after 1 s without an answer
 *   3  the merge also adds the provisional bank's own earnings
 *   4  the merge earns the whole time since the freeze, then spends the
 *      use since resume (a bank near its cap forfeits what the VM used
 *      meanwhile) */
static int mutant;

/* xorshift64*: the whole schedule follows from the seed. */
static uint64_t rng_state;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}
static uint64_t rnd_between(uint64_t lo, uint64_t hi) {
        return lo + rnd() % (hi - lo + 1);
}
static bool chance(unsigned pct) {
        return rnd() % 100 < pct;
}

typedef enum { Q_NONE, Q_INMIGRATE, Q_RUN, Q_STOPPED, Q_POSTMIGRATE, Q_DEAD } QState;

typedef struct Qemu {
        QState state;
        uint64_t counter;   /* CPU used, usec */
        uint32_t limit_ppm; /* the cgroup limit its daemon last applied */
} Qemu;

typedef struct Daemon {
        bool up;
        uint64_t down_from[3], down_to[3];
        MigVm journal;      /* all of its state: what survives a crash */
        uint64_t last_sent; /* volatile */
} Daemon;

typedef enum { MSG_RECORD, MSG_ACK, MSG_NACK } MsgType;

typedef struct Msg {
        bool used;
        uint64_t at;
        bool to_dest;
        MsgType type;
        uint64_t epoch;
        MigRecord record;
} Msg;

typedef struct World {
        uint64_t now;
        Qemu qs, qd;
        Daemon src, dst;
        Msg msgs[MAX_MSGS];
        /* the schedule */
        uint64_t t_migrate, t_stop, t_outcome, t_resume, t_kill_src, t_cont_src;
        bool completes, dest_dies, tool_resumes_src;
        bool outcome_happened, announced;
        CreditSpec spec;
        int64_t initial;
        CreditLedger ideal; /* the truth: the ledger lived tick by tick */
        uint64_t qd_resumed_at; /* when the destination QEMU resumed */
        VmId vm;
        /* results */
        bool two_owners;
        uint64_t sends, drops, dups;
} World;

static void say(const World *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const World *w, const char *fmt, ...) {
        va_list ap;

        if (!verbose)
                return;
        printf("%7.3f s  ", (double) w->now / SEC);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static void send(World *w, bool to_dest, MsgType type, uint64_t epoch, const MigRecord *rec) {
        int copies = 1;

        w->sends++;
        if (chance(15)) {
                w->drops++;
                return;
        }
        if (chance(10)) {
                copies = 2;
                w->dups++;
        }
        for (int c = 0; c < copies; c++)
                for (size_t i = 0; i < MAX_MSGS; i++)
                        if (!w->msgs[i].used) {
                                w->msgs[i] = (Msg){ .used = true,
                                                    .at = w->now + rnd_between(0, 600 * MS),
                                                    .to_dest = to_dest,
                                                    .type = type,
                                                    .epoch = epoch };
                                if (rec)
                                        w->msgs[i].record = *rec;
                                break;
                        }
}

static bool down_at(const Daemon *d, uint64_t t) {
        for (int i = 0; i < 3; i++)
                if (t >= d->down_from[i] && t < d->down_to[i])
                        return true;
        return false;
}

/* The limit a daemon applies: flat out while the VM has credit for more
 * than a tick, else its baseline (standard mode). */
static uint32_t limit_for(const MigVm *v) {
        return mig_vm_available(v) > (int64_t) TICK ? 1000000 : BASELINE_PPM;
}

/* ---- the source daemon -----------------------------------------------------
 */

static void source_step(World *w) {
        Daemon *d = &w->src;
        MigVm *v = &d->journal;

        /* The tool announces the migration; a daemon that was down then
         * hears it when it comes back (the tool retries). */
        if (v->role == MIG_OWNER && !v->outgoing && w->now >= w->t_migrate && !w->announced) {
                mig_src_start(v, "dst");
                w->announced = true;
                say(w, "source: migration to dst announced");
        }
        if (v->role == MIG_OWNER && v->outgoing && w->qs.state != Q_RUN) {
                /* QEMU stopped while migrating (or stopped while we were down). */
                if (mig_src_freeze(v, w->now, w->qs.counter, "src") == 0)
                        say(w, "source: frozen at %" PRId64 " usec, record epoch %" PRIu64,
                            credit_ledger_available(&v->ledger), v->record.epoch);
        }
        if (v->role == MIG_FROZEN && w->outcome_happened) {
                /* What QEMU says now: running again (failed), or done. */
                if (w->qs.state == Q_RUN && !w->completes) {
                        mig_src_outcome(v, MIG_FAILED);
                        say(w, "source: migration failed; owner again");
                } else if (w->completes) {
                        mig_src_outcome(v, MIG_COMPLETED);
                        say(w, "source: migration completed; handing off");
                        d->last_sent = 0;
                }
        }
        if (v->role == MIG_HANDED_OFF && w->qs.state == Q_RUN && mig_src_resumed(v, w->now, w->qs.counter))
                say(w, "source: QEMU resumed by the tool after the destination failed; "
                       "owner again");
        if (v->role == MIG_OWNER) {
                mig_vm_account(v, w->now, w->qs.counter);
                w->qs.limit_ppm = limit_for(v);
        }
        if (mutant == 2 && v->role == MIG_HANDED_OFF && w->now >= w->t_outcome + SEC &&
            mig_src_resumed(v, w->now, w->qs.counter))
                say(w, "source (mutant 2): gave up waiting; owner again");
        if (mig_src_pending_record(v) && (d->last_sent == 0 || w->now >= d->last_sent + RESEND)) {
                send(w, true, MSG_RECORD, v->record.epoch, &v->record);
                d->last_sent = w->now;
        }
}

static void source_receive(World *w, const Msg *m) {
        MigVm *v = &w->src.journal;

        if (m->type == MSG_ACK && mig_src_ack(v, m->epoch))
                say(w, "source: ack for epoch %" PRIu64 ": closed", m->epoch);
        if (m->type == MSG_NACK && mig_src_nack(v, m->epoch, w->now, w->qs.counter))
                say(w, "source: nack for epoch %" PRIu64 ": owner again", m->epoch);
}

/* ---- the destination daemon ------------------------------------------------
 */

static void dest_step(World *w) {
        MigVm *v = &w->dst.journal;

        if (v->role == MIG_NONE && (w->qd.state == Q_INMIGRATE || w->qd.state == Q_RUN)) {
                mig_dst_incoming(v, &w->vm, &w->spec, 0);
                say(w, "dest: incoming VM registered");
        }
        /* A daemon that was down when its QEMU resumed finds it running. */
        if (v->role == MIG_INCOMING && w->qd.state == Q_RUN &&
            (w->now > w->qd_resumed_at ? mig_dst_resume_late(v, w->now) : mig_dst_resume(v, w->now)) == 0)
                say(w, "dest: resumed%s; provisional bank", w->now > w->qd_resumed_at ? " (found running)" : "");
        if (v->role == MIG_INCOMING && w->qd.state == Q_DEAD && mig_dst_gone(v) == 0)
                say(w, "dest: QEMU gone before it resumed");
        if (v->role == MIG_PROVISIONAL || v->role == MIG_OWNER) {
                mig_vm_account(v, w->now, w->qd.counter);
                w->qd.limit_ppm = limit_for(v);
        }
}

static void dest_receive(World *w, const Msg *m) {
        MigVm *v = &w->dst.journal;
        bool changed;
        MigReply r;

        if (m->type != MSG_RECORD)
                return;
        if (mutant == 1 && v->role == MIG_INCOMING) {
                send(w, false, MSG_ACK, m->epoch, NULL);
                return;
        }
        {
                uint64_t earned_before = v->ledger.earned_usec;
                MigVm before = *v;

                r = mig_dst_record(v, &m->record, w->now, w->qd.counter, &changed);
                if (mutant == 3 && changed)
                        v->ledger.balance_usec += (int64_t) earned_before;
                if (mutant == 4 && changed) {
                        /* The whole time since the freeze earned first, then the use. */
                        mig_vm_account(&before, w->now, w->qd.counter);
                        v->ledger = m->record.ledger;
                        credit_ledger_accrue(&v->ledger, &m->record.spec, w->now - m->record.frozen_at_usec);
                        credit_ledger_spend(&v->ledger, &m->record.spec, before.ledger.spent_usec);
                }
        }
        if (changed)
                say(w, "dest: record epoch %" PRIu64 " applied: %" PRId64 " usec", m->epoch,
                    credit_ledger_available(&v->ledger));
        if (r == MIG_REPLY_ACK)
                send(w, false, MSG_ACK, m->epoch, NULL);
        else if (r == MIG_REPLY_NACK)
                send(w, false, MSG_NACK, m->epoch, NULL);
}

/* ---- the world -------------------------------------------------------------
 */

static void qemu_events(World *w) {
        if (w->now == w->t_migrate) {
                w->qd.state = Q_INMIGRATE;
                w->qd.limit_ppm = BASELINE_PPM;
        }
        if (w->now == w->t_stop && w->qs.state == Q_RUN)
                w->qs.state = Q_STOPPED;
        if (w->now == w->t_outcome) {
                w->outcome_happened = true;
                if (w->completes)
                        w->qs.state = Q_POSTMIGRATE;
                else {
                        w->qs.state = Q_RUN;
                        w->qd.state = Q_DEAD;
                }
        }
        if (w->completes && w->now == w->t_resume) {
                w->qd.state = w->dest_dies ? Q_DEAD : Q_RUN;
                w->qd_resumed_at = w->now;
        }
        if (w->completes && !w->dest_dies && w->now == w->t_kill_src)
                w->qs.state = Q_DEAD;
        if (w->completes && w->dest_dies && w->tool_resumes_src && w->now == w->t_cont_src)
                w->qs.state = Q_RUN;
}

static void run_qemus(World *w) {
        uint64_t used = 0;

        if (w->qs.state == Q_RUN)
                used += TICK * w->qs.limit_ppm / 1000000;
        if (w->qd.state == Q_RUN)
                used += TICK * w->qd.limit_ppm / 1000000;
        w->qs.counter += w->qs.state == Q_RUN ? TICK * w->qs.limit_ppm / 1000000 : 0;
        w->qd.counter += w->qd.state == Q_RUN ? TICK * w->qd.limit_ppm / 1000000 : 0;
        /* The truth lives the tick as every look accounts: earn, spend. */
        credit_ledger_accrue(&w->ideal, &w->spec, TICK);
        credit_ledger_spend(&w->ideal, &w->spec, used);
}

static void plan(World *w, uint64_t seed) {
        memset(w, 0, sizeof(*w));
        rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
        w->spec = (CreditSpec){ .vcpus = 1,
                                .baseline_ppm = BASELINE_PPM,
                                .cap_usec = 3600 * (int64_t) SEC,
                                .launch_usec = 0,
                                .mode = CREDIT_MODE_STANDARD };
        vm_id_parse("5e000000-0000-4000-8000-000000000001", &w->vm);
        w->initial = (int64_t) rnd_between(0, 8) * (int64_t) SEC; /* 0 s: a VM at baseline */
        /* Half the schedules: a small cap, the bank often full. */
        if (chance(50)) {
                w->spec.cap_usec = (int64_t) rnd_between(1, 10) * (int64_t) SEC;
                if (w->initial > w->spec.cap_usec)
                        w->initial = w->spec.cap_usec;
        }
        w->t_migrate = rnd_between(10, 30) * TICK;
        w->t_stop = w->t_migrate + rnd_between(3, 20) * TICK;
        w->t_outcome = w->t_stop + rnd_between(1, 5) * TICK;
        w->completes = chance(80);
        w->t_resume = w->t_outcome + rnd_between(0, 3) * TICK;
        w->dest_dies = w->completes && chance(10);
        w->tool_resumes_src = chance(50);
        w->t_cont_src = w->t_resume + TICK;
        w->t_kill_src = w->t_outcome + rnd_between(10, 30) * TICK;
        for (int k = 0; k < 2; k++) {
                Daemon *d = k == 0 ? &w->src : &w->dst;
                int n = (int) rnd_between(0, 2);

                for (int i = 0; i < n; i++) {
                        d->down_from[i] = rnd_between(1, 150) * TICK;
                        d->down_to[i] = d->down_from[i] + rnd_between(1, 30) * TICK;
                }
        }
}

typedef struct Verdict {
        bool ok, limbo;
        int64_t error; /* owner's balance minus the truth */
        char why[160];
} Verdict;

static Verdict run_schedule(uint64_t seed, World *w) {
        Verdict v = { .ok = true };
        CreditLedger start;
        int64_t truth, final;
        const MigVm *owner = NULL;

        plan(w, seed);
        credit_ledger_init(&start, &w->spec);
        start.balance_usec = w->initial;
        w->ideal = start;
        mig_vm_own(&w->src.journal, &w->vm, &w->spec, &start, 0, 0);
        w->qs = (Qemu){ .state = Q_RUN, .limit_ppm = 1000000 };
        w->src.up = w->dst.up = true;

        for (w->now = 0; w->now <= END; w->now += TICK) {
                qemu_events(w);
                for (int k = 0; k < 2; k++) {
                        Daemon *d = k == 0 ? &w->src : &w->dst;
                        bool down = down_at(d, w->now);

                        if (d->up && down) {
                                say(w, "%s: crashed", k == 0 ? "source" : "dest");
                                d->last_sent = 0; /* volatile state goes; the journal stays */
                        }
                        if (!d->up && !down)
                                say(w, "%s: restarted from its journal (%s)", k == 0 ? "source" : "dest",
                                    mig_role_to_string(d->journal.role));
                        d->up = !down;
                }
                for (size_t i = 0; i < MAX_MSGS; i++) {
                        Msg *m = &w->msgs[i];
                        Daemon *d;

                        if (!m->used || m->at > w->now)
                                continue;
                        m->used = false;
                        d = m->to_dest ? &w->dst : &w->src;
                        if (!d->up)
                                continue; /* lost with the daemon */
                        if (m->to_dest)
                                dest_receive(w, m);
                        else
                                source_receive(w, m);
                }
                if (w->src.up)
                        source_step(w);
                if (w->dst.up)
                        dest_step(w);
                if (w->src.journal.role == MIG_OWNER && w->dst.journal.role == MIG_OWNER)
                        w->two_owners = true;
                run_qemus(w);
        }
        /* The end: both daemons look once more. */
        w->now = END + TICK;
        w->src.up = w->dst.up = true;
        source_step(w);
        dest_step(w);

        if (w->two_owners) {
                v.ok = false;
                snprintf(v.why, sizeof(v.why), "two owners at once");
                return v;
        }
        if (w->src.journal.role == MIG_OWNER)
                owner = &w->src.journal;
        else if (w->dst.journal.role == MIG_OWNER)
                owner = &w->dst.journal;
        if (!owner) {
                /* Held, not lost: the destination never knew the VM. */
                if (w->src.journal.role == MIG_HANDED_OFF && w->dst.journal.role == MIG_NONE) {
                        v.limbo = true;
                        return v;
                }
                v.ok = false;
                snprintf(v.why, sizeof(v.why), "no owner at the end (source %s, dest %s)",
                         mig_role_to_string(w->src.journal.role), mig_role_to_string(w->dst.journal.role));
                return v;
        }
        /* The last look is one tick after the loop's last: earned too. */
        credit_ledger_accrue(&w->ideal, &w->spec, TICK);
        truth = credit_ledger_available(&w->ideal);
        final = credit_ledger_available(&owner->ledger);
        v.error = final - truth;
        if (v.error > (int64_t) EARN_PER_TICK || v.error < -(int64_t) EARN_PER_TICK) {
                v.ok = false;
                snprintf(v.why, sizeof(v.why),
                         "credits off by %" PRId64 " usec (owner %s has %" PRId64 ", the truth is %" PRId64 ")",
                         v.error, owner == &w->src.journal ? "source" : "dest", final, truth);
        }
        return v;
}

int main(int argc, char **argv) {
        uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 3000;
        uint64_t first = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
        uint64_t limbo = 0, completed = 0, failed = 0, dest_died = 0, sends = 0, drops = 0, dups = 0;
        int64_t max_created = 0, max_lost = 0;
        const char *replay = getenv("VMMGR_SIM_SEED");
        static World w;

        if (argc > 2 && strcmp(argv[1], "--mutant") == 0) {
                /* Expected to fail: 0 when some schedule catches the mutant. */
                mutant = atoi(argv[2]);
                n = argc > 3 ? strtoull(argv[3], NULL, 10) : 3000;
                for (uint64_t s = 1; s <= n; s++) {
                        Verdict v = run_schedule(s, &w);

                        if (!v.ok) {
                                printf("mutant %d caught by schedule %" PRIu64 ": %s\n", mutant, s, v.why);
                                return 0;
                        }
                }
                printf("FAIL: mutant %d survived %" PRIu64 " schedules\n", mutant, n);
                return 1;
        }

        if (replay) {
                first = strtoull(replay, NULL, 10);
                n = 1;
                verbose = true;
        }
        for (uint64_t s = first; s < first + n; s++) {
                Verdict v = run_schedule(s, &w);

                if (!v.ok) {
                        printf("FAIL: schedule %" PRIu64 ": %s\n", s, v.why);
                        printf("replay: VMMGR_SIM_SEED=%" PRIu64 " %s\n", s, argv[0]);
                        return 1;
                }
                limbo += v.limbo;
                completed += w.completes && !w.dest_dies;
                failed += !w.completes;
                dest_died += w.dest_dies;
                sends += w.sends;
                drops += w.drops;
                dups += w.dups;
                if (v.error > max_created)
                        max_created = v.error;
                if (-v.error > max_lost)
                        max_lost = -v.error;
        }
        printf("%" PRIu64 " schedules: %" PRIu64 " completed, %" PRIu64 " failed, %" PRIu64
               " with the destination QEMU gone before resume, %" PRIu64
               " held in limbo (destination daemon down for the incoming QEMU's "
               "whole life); %" PRIu64 " messages sent, %" PRIu64 " lost, %" PRIu64 " duplicated\n",
               n, completed, failed, dest_died, limbo, sends, drops, dups);
        printf("figure: migration.sim.schedules %" PRIu64 " count\n", n);
        printf("figure: migration.sim.credits_created_usec %" PRId64 " usec\n", max_created);
        printf("figure: migration.sim.max_lost_usec %" PRId64 " usec\n", max_lost);
        return 0;
}
