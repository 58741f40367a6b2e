/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/credit-bank.c - a VM's credit bank: the ledger brought to now at
 * each look, enforced in the kernel (cpu.max.runtime) or with cpu.max
 * (emulated), and the state operators see.
 */
#include "vmmgr/engine/credit-bank.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

/* Kernel bank: the CFS period whose quota is the earn rate.  The kernel
 * credits each period's quota at its start, so at any instant up to one
 * quota of earnings sits unspent in the pool: the period bounds how far
 * received CPU can trail the wall-clock entitlement (4 ms at 20 % of one
 * vCPU).  Shorter costs more period-timer interrupts per busy group. */
#define KERNEL_BANK_PERIOD_USEC UINT64_C(20000)
#define KERNEL_MIN_QUOTA_USEC UINT64_C(1000)
#define KERNEL_MAX_PERIOD_USEC UINT64_C(1000000)
/* Kernel bank: launch credits flowing in smaller than this are not worth
 * a write (the per-CPU slices the kernel hands out already blur the pool
 * by 5 ms). */
#define KERNEL_SYNC_MIN_USEC INT64_C(100)
/* Kernel bank: how often it is looked at.  The kernel keeps the bank (v2
 * of the series: each period adds a quota up to the cap, idle periods
 * included), so looks keep the ledger, the state and the reports; see
 * credit_bank_next_tick_usec(). */
#define KERNEL_LOOK_INTERVAL_USEC UINT64_C(10000000)
/* ... and a VM idle since a look in step, with no launch credits to feed,
 * every 30 s: its pool and ledger only earn meanwhile. */
#define KERNEL_IDLE_LOOK_INTERVAL_USEC UINT64_C(30000000)
/* A tick's usage counts as "above baseline" past this margin (ppm). */
#define STATE_MARGIN_PPM UINT64_C(20000)
/* Operator-visible states (docs/credits.md) come from what the VM did over
 * the last seconds, not from one look: usage and throttled time are
 * averaged with this time constant, and a new state must hold this long
 * before it is shown (a VM near its baseline does not flip every look). */
#define STATE_TAU_USEC (2 * USEC_PER_SEC)
#define STATE_DWELL_USEC (2 * USEC_PER_SEC)
/* Bursting: above the baseline by 10 % of it plus 1 % of a CPU.  Held:
 * limited at the baseline and throttled more than 2 % of the time. */
#define STATE_BURST_MARGIN_PPM UINT64_C(100000)
#define STATE_BURST_FLOOR_PPM UINT64_C(10000)
#define STATE_HELD_THROTTLED_PPM 20000.0

struct CreditBank {
        KHost *host;
        KhCpuStatReader *usage; /* the vcpus group's cpu.stat, kept open */
        VmId vm;
        CreditBankKind kind;
        CreditSpec spec;
        EmulatedBankParams params;
        CreditLedger ledger;
        CreditEnforcement enf;
        CreditState state;       /* shown: changes only after STATE_DWELL_USEC */
        CreditState candidate;   /* what the averages say now */
        uint64_t candidate_since_usec;
        double rate_avg_ppm;      /* usage, CPU ppm, averaged over STATE_TAU_USEC */
        double throttled_avg_ppm; /* throttled wall time, ppm, likewise */
        uint64_t state_dt_usec;   /* the last look's interval, and its weight in the averages */
        double state_weight;
        bool state_known;
        unsigned notices;         /* CREDIT_NOTICE_* since the last take */
        uint64_t last_tick_usec;
        uint64_t last_usage_usec;
        uint64_t last_nr_throttled;
        uint64_t throttled_usec;
        uint64_t kernel_runtime_usec;
        bool kernel_runtime_known; /* read at least once */
        bool kernel_in_step;       /* the last sync left pool and ledger within kernel_drift_max() */
        int64_t last_span_earned_usec; /* what the last look's span earned at most */
        uint64_t last_used_usec;   /* usage charged by the last look */
        uint64_t bandwidth_writes;
        uint64_t runtime_writes;
        uint64_t runtime_reads;
        int fail_next_write; /* test seam: a negative errno, or 0 */
};

const char *credit_bank_kind_to_string(CreditBankKind k) {
        return k == CREDIT_BANK_KERNEL ? "kernel" : "emulated";
}

const char *credit_state_to_string(CreditState s) {
        switch (s) {
        case CREDIT_STATE_BURSTING:
                return "bursting";
        case CREDIT_STATE_THROTTLED:
                return "throttled";
        case CREDIT_STATE_BASELINE:
                break;
        }
        return "baseline";
}

static int take_injected_failure(CreditBank *b) {
        int r = b->fail_next_write;
        b->fail_next_write = 0;
        return r;
}

void credit_bank_fail_next_write(CreditBank *b, int error) {
        b->fail_next_write = error < 0 ? error : -error;
}

/* ---- kernel writes ------------------------------------------------------ */

static int apply_bandwidth(CreditBank *b, const CreditEnforcement *want, uint64_t burst_usec) {
        CpuBandwidth bw = {
                .period_usec = want->period_usec,
                .quota_usec = want->quota_usec == CREDIT_QUOTA_UNLIMITED ? CPU_QUOTA_MAX : want->quota_usec,
                .burst_usec = burst_usec,
        };
        int r = take_injected_failure(b);

        if (r < 0)
                return r;
        r = kh_cpu_set_bandwidth(b->host, &b->vm, CG_ROLE_VCPUS, &bw, NULL);
        if (r < 0)
                return r;
        b->bandwidth_writes += (uint64_t) r;
        b->enf = *want;
        b->kernel_in_step = false; /* a cpu.max write refills the pool */
        return 0;
}

static int adjust_runtime(CreditBank *b, int64_t delta_usec) {
        int r = take_injected_failure(b);

        if (r < 0)
                return r;
        if (delta_usec == 0)
                return 0;
        r = kh_cpu_adjust_runtime(b->host, &b->vm, CG_ROLE_VCPUS, delta_usec);
        if (r < 0)
                return r;
        b->runtime_writes++;
        return 0;
}

/* Kernel bank: quota = earn rate per period (the period stretched where the
 * rate is below the kernel's 1 ms minimum quota), burst = cap - quota. */
static void kernel_bank_bandwidth(const CreditSpec *s, CreditEnforcement *ret, uint64_t *ret_burst) {
        uint64_t rate = (uint64_t) credit_earn_per_sec(s), cap = (uint64_t) credit_spec_cap(s);
        uint64_t period = KERNEL_BANK_PERIOD_USEC, quota;

        if (s->mode == CREDIT_MODE_UNLIMITED) {
                *ret = (CreditEnforcement) { .period_usec = period, .quota_usec = CREDIT_QUOTA_UNLIMITED };
                *ret_burst = 0;
                return;
        }
        quota = rate * period / USEC_PER_SEC;
        if (quota < KERNEL_MIN_QUOTA_USEC) {
                period = rate > 0 ? MIN(KERNEL_MIN_QUOTA_USEC * USEC_PER_SEC / rate, KERNEL_MAX_PERIOD_USEC)
                                  : KERNEL_MAX_PERIOD_USEC;
                quota = MAX(rate * period / USEC_PER_SEC, KERNEL_MIN_QUOTA_USEC);
        }
        *ret = (CreditEnforcement) { .period_usec = period, .quota_usec = quota };
        *ret_burst = cap > quota ? cap - quota : 0;
}

/* Kernel bank: while launch credits flow in, looks come every second; a
 * pool this deep cannot run dry before the look after next, even with
 * every vCPU busy, so the next one can wait. */
static bool kernel_pool_deep(const CreditBank *b, uint64_t runtime) {
        return runtime >= (uint64_t) b->spec.vcpus * 2 * CREDIT_BANK_MAX_INTERVAL_USEC;
}

/* Kernel bank: how far pool and ledger may differ before vmmgr writes.
 * The kernel adds each period's quota at the period's start while the
 * ledger earns it over the period, so the pool leads by up to a quota;
 * near the cap each forfeits at its own granularity.  Beyond that, the two
 * drifted (a write that failed, a group rewritten by someone else). */
static int64_t kernel_drift_max(const CreditBank *b) {
        return (int64_t) b->enf.quota_usec + KERNEL_SYNC_MIN_USEC;
}

/* Tries to bring the pool to `target` once: 1 done (or nothing to do),
 * 0 the relative write lost a race (see below), < 0 an error.  vmmgr
 * writes launch credits (beyond the cap, they wait in the ledger and flow
 * in as the pool drains) and corrects drift; the kernel does the rest.
 * `in_step`: the last look left pool and ledger in step, and since then
 * both only earned and were charged the same use. */
static int kernel_bank_sync_once(CreditBank *b, int64_t target, bool in_step) {
        int64_t delta, slack;
        uint64_t runtime;
        int r;

        r = kh_cpu_stat_reader_read_runtime(b->usage, &runtime);
        if (r < 0)
                return r;
        b->runtime_reads++;
        delta = target - (int64_t) runtime;
        b->kernel_runtime_usec = runtime;
        b->kernel_runtime_known = true;
        slack = b->ledger.launch_usec > 0 && delta > 0 ? KERNEL_SYNC_MIN_USEC : kernel_drift_max(b);
        if (delta > -slack && delta < slack) {
                b->kernel_in_step = true;
                return 1;
        }
        /* Below the ledger after a span in step: the kernel, which saw
         * when the VM ran, forfeited at the cap what the ledger (laying
         * the span's use evenly over it) did not.  The kernel is right:
         * the ledger follows it, up to what the span earned. */
        if (in_step && delta > 0 && b->ledger.launch_usec <= 0 && delta <= b->last_span_earned_usec &&
            credit_ledger_forfeit(&b->ledger, delta) == 0) {
                b->kernel_in_step = true;
                return 1;
        }
        /* Relative: what the VM consumes between our read and this write
         * stays consumed (a plain set would hand it back). */
        r = adjust_runtime(b, delta);
        if (r == -EINVAL)
                return 0;
        if (r < 0)
                return r;
        b->kernel_runtime_usec = (uint64_t) ((int64_t) runtime + delta);
        b->kernel_in_step = true;
        return 1;
}

static int kernel_bank_sync(CreditBank *b) {
        int64_t target;
        bool in_step;
        int r = 0;

        if (b->spec.mode == CREDIT_MODE_UNLIMITED)
                return 0;
        target = MAX(credit_ledger_available(&b->ledger), 0);
        target = MIN(target, credit_spec_cap(&b->spec));
        /* Idle since a look that left the pool in step: pool and ledger
         * only earned since, at the same rate up to the same cap (the
         * kernel credits the periods an idle group slept through). */
        if (b->kernel_in_step && b->last_used_usec == 0) {
                b->kernel_runtime_usec = (uint64_t) target; /* where the pool went too, within a quota */
                return 0;
        }
        in_step = b->kernel_in_step;
        b->kernel_in_step = false;
        /* v2 of the series saturates writes at [0, cap]; a group without a
         * quota (someone rewrote cpu.max) refuses them: read again, and
         * the enforcement that follows puts the quota back. */
        for (int attempt = 0; attempt < 3 && r == 0; attempt++)
                r = kernel_bank_sync_once(b, target, in_step && attempt == 0);
        return r < 0 ? r : r == 0 ? -EINVAL : 0;
}

static int enforce(CreditBank *b) {
        CreditEnforcement want;
        uint64_t burst = 0;

        if (b->kind == CREDIT_BANK_KERNEL) {
                kernel_bank_bandwidth(&b->spec, &want, &burst);
                if (want.period_usec != b->enf.period_usec || want.quota_usec != b->enf.quota_usec) {
                        int r = apply_bandwidth(b, &want, burst);
                        if (r < 0)
                                return r;
                }
                return kernel_bank_sync(b);
        }
        if (!credit_emulated_decide(&b->spec, &b->ledger, &b->params, &b->enf, &want))
                return 0;
        return apply_bandwidth(b, &want, 0);
}

/* ---- accounting --------------------------------------------------------- */

static bool limited_at_or_below_baseline(const CreditBank *b) {
        uint64_t base = (uint64_t) credit_earn_per_sec(&b->spec); /* usec per sec = ppm of a CPU */

        if (b->kind == CREDIT_BANK_KERNEL)
                return b->spec.mode == CREDIT_MODE_STANDARD && b->kernel_runtime_usec <= b->enf.quota_usec;
        if (b->enf.quota_usec == CREDIT_QUOTA_UNLIMITED || b->enf.period_usec == 0)
                return false;
        return b->enf.quota_usec * USEC_PER_SEC / b->enf.period_usec <= base + base * STATE_MARGIN_PPM / 1000000;
}

/* The shown state, from averages over the last seconds with a dwell
 * time, and the notices operators look for (credit-engine.h). */
static void update_state(CreditBank *b, uint64_t used, uint64_t throttled, uint64_t dt, uint64_t now) {
        double a;
        uint64_t base = (uint64_t) credit_earn_per_sec(&b->spec);
        uint64_t burst_above = base + base * STATE_BURST_MARGIN_PPM / 1000000 + STATE_BURST_FLOOR_PPM;
        CreditState c;

        /* Looks come a tick or a second apart: the weight of one is the
         * same as the last look's nearly always (no exp() per look). */
        if (dt != b->state_dt_usec) {
                b->state_dt_usec = dt;
                b->state_weight = 1.0 - exp(-(double) dt / (double) STATE_TAU_USEC);
        }
        a = b->state_weight;
        if (!b->state_known) {
                b->rate_avg_ppm = (double) used * 1e6 / (double) dt;
                b->throttled_avg_ppm = (double) throttled * 1e6 / (double) dt;
        } else {
                b->rate_avg_ppm += a * ((double) used * 1e6 / (double) dt - b->rate_avg_ppm);
                b->throttled_avg_ppm += a * ((double) throttled * 1e6 / (double) dt - b->throttled_avg_ppm);
        }
        if (limited_at_or_below_baseline(b) && b->throttled_avg_ppm > STATE_HELD_THROTTLED_PPM)
                c = CREDIT_STATE_THROTTLED;
        else if (b->rate_avg_ppm > (double) burst_above)
                c = CREDIT_STATE_BURSTING;
        else
                c = CREDIT_STATE_BASELINE;
        if (!b->state_known) {
                /* A bank starts out "baseline": a first look that says
                 * otherwise is a change operators see. */
                if (c != CREDIT_STATE_BASELINE)
                        b->notices |= CREDIT_NOTICE_STATE;
                b->state = b->candidate = c;
                b->candidate_since_usec = now;
                b->state_known = true;
                return;
        }
        if (c != b->candidate) {
                b->candidate = c;
                b->candidate_since_usec = now;
        }
        if (b->candidate != b->state && now - b->candidate_since_usec >= STATE_DWELL_USEC) {
                if (b->candidate == CREDIT_STATE_THROTTLED)
                        b->notices |= CREDIT_NOTICE_EXHAUSTED;
                else if (b->candidate == CREDIT_STATE_BURSTING && b->state == CREDIT_STATE_THROTTLED)
                        b->notices |= CREDIT_NOTICE_BURSTING_AGAIN;
                b->notices |= CREDIT_NOTICE_STATE;
                b->state = b->candidate;
        }
}

/* Takes the bandwidth the group has now as the bank's view of it. */
static int adopt_applied(CreditBank *b) {
        CpuBandwidth bw;
        int r = kh_cpu_get_bandwidth(b->host, &b->vm, CG_ROLE_VCPUS, &bw);

        if (r < 0)
                return r;
        b->enf.period_usec = bw.period_usec;
        b->enf.quota_usec = bw.quota_usec == CPU_QUOTA_MAX ? CREDIT_QUOTA_UNLIMITED : bw.quota_usec;
        return 0;
}

/* Brings the ledger up to now: earnings for the elapsed wall time, the
 * group's usage since the last look. */
static int account(CreditBank *b, uint64_t now_usec) {
        uint64_t used, dt, throttled0;
        int64_t launch0, charged0;
        CpuStat st;
        int r;

        if (b->enf.quota_usec == CREDIT_QUOTA_UNLIMITED) {
                /* Nothing can throttle a group without a quota: the usage
                 * is all this look needs (one read instead of two on v1). */
                st = (CpuStat) { .have = CPU_STAT_USAGE, .nr_throttled = b->last_nr_throttled,
                                 .throttled_usec = b->throttled_usec };
                r = kh_cpu_stat_reader_read_usage(b->usage, &st.usage_usec);
        } else
                r = kh_cpu_stat_reader_read(b->usage, &st);
        if (r < 0)
                return r;
        dt = now_usec > b->last_tick_usec ? now_usec - b->last_tick_usec : 0;
        /* A counter that went backwards means the group was recreated:
         * everything it shows is new. */
        used = st.usage_usec >= b->last_usage_usec ? st.usage_usec - b->last_usage_usec : st.usage_usec;
        launch0 = b->ledger.launch_usec;
        charged0 = b->ledger.charged_usec;
        /* Earned and used over the same time: near the cap, laid over it
         * (a VM bursting from a full bank forfeited a look's earnings). */
        credit_ledger_advance(&b->ledger, &b->spec, dt, used);
        b->last_span_earned_usec = (int64_t) MIN((unsigned __int128) credit_earn_per_sec(&b->spec) * dt / USEC_PER_SEC,
                                                 (unsigned __int128) INT64_MAX);
        if (launch0 > 0 && b->ledger.launch_usec <= 0)
                b->notices |= CREDIT_NOTICE_LAUNCH_SPENT;
        if (b->ledger.charged_usec > charged0)
                b->notices |= CREDIT_NOTICE_SURPLUS_CHARGED;
        throttled0 = b->throttled_usec;
        b->throttled_usec = st.throttled_usec;
        b->last_usage_usec = st.usage_usec;
        b->last_used_usec = used;
        b->last_nr_throttled = st.nr_throttled;
        b->last_tick_usec = now_usec;

        if (dt > 0)
                update_state(b, used, st.throttled_usec >= throttled0 ? st.throttled_usec - throttled0 : 0, dt,
                             now_usec);
        return 0;
}

/* Kernel bank: whether the next look's sync will read the pool.  It
 * does unless the VM was idle since a look that left pool and ledger in
 * step, which the look learns from the same batch: an idle VM tends to
 * stay idle, so its read is not queued (one read saved on every idle VM),
 * and one that woke up reads its pool by itself. */
static bool kernel_look_reads_runtime(const CreditBank *b) {
        return b->spec.mode == CREDIT_MODE_STANDARD && !(b->kernel_in_step && b->last_used_usec == 0);
}

void credit_bank_queue_look(CreditBank *b) {
        /* As account() reads: the usage alone without a quota. */
        unsigned what = b->enf.quota_usec == CREDIT_QUOTA_UNLIMITED ? KH_CPU_READ_USAGE : KH_CPU_READ_STAT;

        if (b->kind == CREDIT_BANK_KERNEL && kernel_look_reads_runtime(b))
                what |= KH_CPU_READ_RUNTIME;
        kh_cpu_stat_reader_queue(b->usage, what);
}

int credit_bank_tick(CreditBank *b, uint64_t now_usec) {
        int r = account(b, now_usec);
        if (r < 0)
                return r;
        return enforce(b);
}

int credit_bank_new(KHost *h, const VmId *vm, const CreditSpec *spec, CreditBankKind kind,
                    const EmulatedBankParams *params, const CreditLedger *ledger, uint64_t usage_base,
                    uint64_t now_usec, CreditBank **ret) {
        _cleanup_free_ CreditBank *b = NULL;
        CpuStat st;
        int r;

        r = credit_spec_validate(spec, NULL);
        if (r < 0)
                return r;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->host = h;
        b->vm = *vm;
        b->kind = kind;
        b->spec = *spec;
        if (params)
                b->params = *params;
        else
                emulated_bank_params_default(&b->params);
        if (ledger)
                b->ledger = *ledger;
        else
                credit_ledger_init(&b->ledger, spec);

        r = kh_cpu_stat_reader_open(h, vm, CG_ROLE_VCPUS, &b->usage);
        if (r < 0)
                return r;
        /* The kernel bank reads its pool every look: kept open too (where
         * the file is missing the sync reports it, as it always did). */
        if (kind == CREDIT_BANK_KERNEL && kh_cpu_stat_reader_open_runtime(b->usage) == -ENOMEM) {
                r = -ENOMEM;
                goto fail;
        }
        r = kh_cpu_stat_reader_read(b->usage, &st);
        if (r < 0)
                goto fail;
        b->last_usage_usec = usage_base == UINT64_MAX ? st.usage_usec : usage_base;
        b->last_nr_throttled = st.nr_throttled;
        b->last_tick_usec = now_usec;
        /* Adopt what is applied: an unchanged limit is not rewritten. */
        r = adopt_applied(b);
        if (r < 0)
                goto fail;

        /* Charge what was used since usage_base before deciding anything. */
        r = credit_bank_tick(b, now_usec);
        if (r < 0)
                goto fail;
        *ret = TAKE_PTR(b);
        return 0;
fail:
        kh_cpu_stat_reader_free(b->usage);
        return r;
}

int credit_bank_resync(CreditBank *b, uint64_t now_usec) {
        CreditEnforcement before = b->enf;
        bool changed;
        int r;

        r = adopt_applied(b);
        if (r < 0)
                return r;
        b->kernel_in_step = false; /* the group may have been rewritten */
        changed = before.period_usec != b->enf.period_usec || before.quota_usec != b->enf.quota_usec;
        r = credit_bank_tick(b, now_usec);
        return r < 0 ? r : changed;
}

CreditBank *credit_bank_free(CreditBank *b) {
        if (!b)
                return NULL;
        kh_cpu_stat_reader_free(b->usage);
        free(b);
        return NULL;
}

void credit_bank_set_tick_usec(CreditBank *b, uint64_t tick_usec) {
        if (tick_usec > 0)
                b->params.tick_usec = tick_usec;
}

int credit_bank_set_spec(CreditBank *b, const CreditSpec *spec, uint64_t now_usec) {
        CreditSpec old = b->spec;
        CreditLedger saved;
        int r;

        r = credit_spec_validate(spec, NULL);
        if (r < 0)
                return r;
        r = account(b, now_usec);
        if (r < 0)
                return r;
        saved = b->ledger;
        b->spec = *spec;
        credit_ledger_respec(&b->ledger, spec);
        b->kernel_in_step = false;
        r = enforce(b);
        if (r < 0) {
                b->spec = old;
                b->ledger = saved;
                (void) enforce(b); /* best effort back to the old limits */
        }
        return r;
}

int credit_bank_restore(CreditBank *b, const CreditSpec *spec, const CreditLedger *ledger) {
        b->spec = *spec;
        b->ledger = *ledger;
        b->ledger.generation++; /* it changed again: written at the next commit */
        b->kernel_in_step = false;
        return enforce(b);
}

int credit_bank_inject(CreditBank *b, int64_t delta_usec, uint64_t now_usec) {
        CreditLedger saved;
        int r;

        r = account(b, now_usec);
        if (r < 0)
                return r;
        saved = b->ledger;
        r = credit_ledger_inject(&b->ledger, &b->spec, delta_usec);
        if (r < 0)
                return r;
        r = b->kind == CREDIT_BANK_KERNEL ? adjust_runtime(b, delta_usec) : enforce(b);
        if (r < 0 && b->kind == CREDIT_BANK_KERNEL) {
                b->ledger = saved; /* the pool did not change: neither does the ledger */
                return r;
        }
        /* Emulated: the ledger is the bank; a failed limit write is retried
         * at the next tick. */
        return 0;
}

int credit_bank_install_ledger(CreditBank *b, const CreditSpec *spec, const CreditLedger *ledger, uint64_t as_of_usec,
                               uint64_t usage_base) {
        uint64_t generation;
        int r;

        r = credit_spec_validate(spec, NULL);
        if (r < 0)
                return r;
        generation = MAX(b->ledger.generation, ledger->generation);
        b->spec = *spec;
        b->ledger = *ledger;
        b->ledger.generation = generation + 1; /* changed: written at the next commit */
        b->last_tick_usec = as_of_usec;
        if (usage_base != UINT64_MAX)
                b->last_usage_usec = usage_base;
        b->kernel_in_step = false;
        return enforce(b);
}

int credit_bank_transfer(CreditBank *from, CreditBank *to, int64_t amount_usec, uint64_t now_usec) {
        int r;

        if (from == to)
                return -EINVAL;
        r = account(from, now_usec);
        if (r < 0)
                return r;
        r = account(to, now_usec);
        if (r < 0)
                return r;
        r = credit_transfer_check(&from->ledger, &to->ledger, &to->spec, amount_usec);
        if (r < 0)
                return r;
        /* Kernel pools first, taking before giving, with compensation: the
         * ledgers change only once both pools did. */
        if (from->kind == CREDIT_BANK_KERNEL) {
                r = adjust_runtime(from, -amount_usec);
                if (r < 0)
                        return r;
        }
        if (to->kind == CREDIT_BANK_KERNEL) {
                r = adjust_runtime(to, amount_usec);
                if (r < 0) {
                        /* Give it back.  If even that fails, the next sync
                         * restores the pool from the (unchanged) ledger. */
                        if (from->kind == CREDIT_BANK_KERNEL)
                                (void) adjust_runtime(from, amount_usec);
                        return r;
                }
        }
        r = credit_transfer_apply(&from->ledger, &to->ledger, &to->spec, amount_usec);
        if (r < 0)
                return r; /* cannot happen: checked above with no change between */
        if (from->kind == CREDIT_BANK_EMULATED)
                (void) enforce(from);
        if (to->kind == CREDIT_BANK_EMULATED)
                (void) enforce(to);
        return 0;
}

uint64_t credit_bank_next_tick_usec(const CreditBank *b) {
        uint64_t tick = b->params.tick_usec, interval = CREDIT_BANK_MAX_INTERVAL_USEC;
        int64_t available = credit_ledger_available(&b->ledger);

        if (b->kind == CREDIT_BANK_KERNEL) {
                /* The kernel enforces and keeps the bank; a look keeps the
                 * ledger and the reports.  Launch credits are the exception:
                 * they flow in as the pool drains, so while the VM spends
                 * them a look a second keeps the pool from running dry (an
                 * idle VM's pool holds what it can: once it runs, the next
                 * look finds it busy). */
                bool feeding = b->spec.mode == CREDIT_MODE_STANDARD && b->ledger.launch_usec > 0 &&
                               b->last_used_usec > 0 && !kernel_pool_deep(b, b->kernel_runtime_usec);
                bool idle = b->kernel_in_step && b->last_used_usec == 0 && b->ledger.launch_usec <= 0;

                interval = feeding ? CREDIT_BANK_MAX_INTERVAL_USEC
                           : idle  ? KERNEL_IDLE_LOOK_INTERVAL_USEC
                                   : KERNEL_LOOK_INTERVAL_USEC;
                goto out;
        }
        if (b->spec.mode == CREDIT_MODE_UNLIMITED)
                goto out; /* nothing to enforce: looks are for reports */
        if (b->enf.quota_usec == CREDIT_QUOTA_UNLIMITED) {
                /* At full speed on every vCPU the budget reaches the landing
                 * zone (1.5 ticks of full speed) no sooner than this. */
                int64_t spare = available - (int64_t) (b->spec.vcpus * (tick + tick / 2));
                uint64_t t = spare > 0 ? (uint64_t) spare / b->spec.vcpus : 0;
                interval = MIN(MAX(t, tick), interval);
        } else {
                /* Limited.  Steady at baseline (within half a tick's earnings
                 * of empty): the kernel holds it there, a look a second keeps
                 * the ledger and notices banking.  Otherwise it is landing or
                 * repaying: every tick. */
                int64_t half_tick = (int64_t) ((uint64_t) credit_earn_per_sec(&b->spec) * tick / USEC_PER_SEC / 2);
                if (available > half_tick || available < -half_tick)
                        interval = tick;
        }
out:
        return b->last_tick_usec + interval;
}

void credit_bank_snapshot(const CreditBank *b, CreditSnapshot *ret) {
        *ret = (CreditSnapshot) {
                .kind = b->kind,
                .spec = b->spec,
                .ledger = b->ledger,
                .state = b->state,
                .enforcement = b->enf,
                .usage_usec = b->last_usage_usec,
                .throttled_usec = b->throttled_usec,
                .kernel_runtime_usec = b->kernel_runtime_usec,
                .bandwidth_writes = b->bandwidth_writes,
                .runtime_writes = b->runtime_writes,
                .runtime_reads = b->runtime_reads,
                .last_tick_usec = b->last_tick_usec,
                .tick_usec = b->params.tick_usec,
        };
}

unsigned credit_bank_take_notices(CreditBank *b) {
        unsigned n = b->notices;

        b->notices = 0;
        return n;
}

const VmId *credit_bank_vm(const CreditBank *b) {
        return &b->vm;
}
