/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policies/credits.h - CPU credits as pure logic: units, specs, classes and
 * the ledger.  No I/O and no clock reads: callers pass elapsed time and
 * measured usage in, and get balances and decisions out.
 *
 * Units.  1 credit = one vCPU at 100 % for one minute = 60 CPU-seconds.
 * Everything inside is CPU-microseconds in 64-bit integers; credits with
 * two decimals are only for people (credit_format()).
 *
 * Product model (EC2 T2/T3, Azure B):
 *   earn rate   = baseline per vCPU x vCPUs, in CPU-usec per wall second,
 *                 accrued whether the VM is idle or not;
 *   cap         = the most the bank holds (default: 24 h of earnings);
 *   launch      = credits given at start, spent first, outside the cap;
 *   standard    = throttled to baseline when bank and launch are empty;
 *   unlimited   = keeps running on "surplus" that later earnings repay;
 *                 surplus beyond 24 h of earnings is "charged" (billed).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CREDIT_USEC INT64_C(60000000)            /* one credit in CPU-usec */
#define CREDIT_DAY_SEC INT64_C(86400)
#define CREDIT_PPM 1000000u                      /* baseline fractions in parts per million */
#define CREDIT_MAX_VCPUS 1024u
/* Bounds that keep every sum below 2^63 with room to spare. */
#define CREDIT_AMOUNT_MAX (INT64_C(1) << 60)

typedef enum CreditMode {
        CREDIT_MODE_STANDARD,
        CREDIT_MODE_UNLIMITED,
} CreditMode;

const char *credit_mode_to_string(CreditMode m);
int credit_mode_from_string(const char *s); /* -EINVAL if unknown */

typedef struct CreditSpec {
        uint32_t vcpus;        /* 1..CREDIT_MAX_VCPUS */
        uint32_t baseline_ppm; /* per vCPU, 0..1000000 */
        int64_t cap_usec;      /* bank cap; 0 = default (24 h of earnings) */
        int64_t launch_usec;   /* launch credits at start */
        CreditMode mode;
} CreditSpec;

/* CPU-usec earned per wall-clock second. */
static inline int64_t credit_earn_per_sec(const CreditSpec *s) {
        return (int64_t) s->baseline_ppm * s->vcpus;
}
/* The effective cap (resolves the 24 h default). */
int64_t credit_spec_cap(const CreditSpec *s);
/* -EINVAL with *ret_field naming the bad field ("vcpus", "baseline", "cap", "launch"). */
int credit_spec_validate(const CreditSpec *s, const char **ret_field);

/* ---- amounts ---------------------------------------------------------- */

/* "250000usec", "6s", "2cr", "1.5cr", "0.25s"; a leading '+' or '-' only
 * when signed_ok.  A bare number is -EINVAL (the unit is mandatory: 6 of
 * what?; vmmgrctl takes a bare 0 itself).  -ERANGE beyond +-CREDIT_AMOUNT_MAX or below 1 usec of
 * precision. */
int credit_parse_amount(const char *s, bool signed_ok, int64_t *ret_usec);
/* "12.34" credits (rounded half away from zero to two decimals). */
int credit_format(char *buf, size_t size, int64_t usec);

/* ---- classes ------------------------------------------------------------ */

#define CREDIT_CLASS_NAME_MAX 64

typedef struct CreditClass {
        char name[CREDIT_CLASS_NAME_MAX];
        CreditSpec spec;
} CreditClass;

/* The presets: EC2 T3 sizes (t3.nano .. t3.2xlarge as "t3.nano" etc.) and
 * "demo", whose bank drains in seconds so a person can watch it. */
size_t credit_class_presets(const CreditClass **ret);

typedef struct CreditClassTable {
        CreditClass *classes;
        size_t n;
} CreditClassTable;

/* A table holding the presets. */
int credit_class_table_init(CreditClassTable *t);
void credit_class_table_done(CreditClassTable *t);
const CreditClass *credit_class_find(const CreditClassTable *t, const char *name);
/* Adds or replaces a class.  Names: [a-z0-9._-], 1..63 characters. */
int credit_class_table_put(CreditClassTable *t, const CreditClass *c);

/* Sets one "key = value" of a [class] section on *c: vcpus (1..1024),
 * baseline (fraction, "0.2" or "20%"), cap (an amount, or "24h" / "default"
 * for 24 h of earnings), launch (an amount), mode.  Keys never set keep
 * what *c held (config.c starts a section from the preset it names with
 * "like = ...", or from zeros).  -ENOKEY for an unknown key, -EINVAL or
 * -ERANGE for a bad value; *ret_key (when not NULL) is the key on error,
 * NULL on success. */
int credit_class_set_key(CreditClass *c, const char *key, const char *value, const char **ret_key);

/* ---- the ledger ---------------------------------------------------------- */

typedef struct CreditLedger {
        int64_t balance_usec;  /* earned bank, 0..cap */
        int64_t launch_usec;   /* launch credits left */
        int64_t surplus_usec;  /* unlimited: spent beyond the bank, to be repaid */
        int64_t charged_usec;  /* unlimited: surplus beyond 24 h of earnings (billed) */
        uint64_t earned_usec;  /* all credited earnings (into the bank or repaying surplus) */
        uint64_t spent_usec;   /* all CPU the VM used */
        uint64_t forfeited_usec; /* earnings lost at the cap, or clamped by a smaller cap */
        uint64_t overdraft_usec; /* standard mode: all use beyond what it had (enforcement error) */
        int64_t debt_usec;     /* standard mode: overdraft not yet repaid by earnings */
        int64_t adjusted_usec; /* net operator injections and transfers in (+) or out (-) */
        uint64_t earn_remainder; /* sub-usec earnings carried between accruals, in usec*1e-6 */
        uint64_t generation;   /* bumps on every change of balance or ownership */
} CreditLedger;

/* A fresh ledger for a new VM: launch credits, empty bank. */
void credit_ledger_init(CreditLedger *l, const CreditSpec *s);
/* Earnings for `wall_usec` of wall-clock time: repay surplus (unlimited)
 * or debt (standard) first, then fill the bank up to the cap; the rest is
 * forfeited. */
void credit_ledger_accrue(CreditLedger *l, const CreditSpec *s, uint64_t wall_usec);
/* The VM used `used_usec` of CPU: launch credits first, then the bank,
 * then (unlimited) surplus or (standard) overdraft. */
void credit_ledger_spend(CreditLedger *l, const CreditSpec *s, uint64_t used_usec);
/* `wall_usec` of time in which the VM earned and used `used_usec`, known
 * only as totals (one look's worth, a record applied late).  Where the
 * bank cannot reach its cap meanwhile it is accrue then spend.  Near the
 * cap the two are laid over the time in steps of about 10 ms (at most
 * 256), earn then spend each, as if the VM used its CPU evenly: a VM that
 * spends while it earns keeps the bank below the cap, and only what it
 * did not spend is forfeited (earning it all first forfeited what the VM
 * used meanwhile, up to a whole look's earnings). */
void credit_ledger_advance(CreditLedger *l, const CreditSpec *s, uint64_t wall_usec, uint64_t used_usec);
/* The kernel kept the bank over a span and forfeited `amount_usec` more at
 * the cap than the ledger, which lays a span's use evenly over it, did:
 * moved from the balance to the forfeited earnings (-ERANGE unless
 * 0 < amount <= balance). */
int credit_ledger_forfeit(CreditLedger *l, int64_t amount_usec);
/* What the VM may still spend before it is held to baseline (standard) or
 * starts running on surplus (unlimited): launch + bank - debt (may be < 0). */
int64_t credit_ledger_available(const CreditLedger *l);
/* Operator inject: positive adds to the bank (-ERANGE beyond the cap),
 * negative takes from it (-ERANGE below zero; nothing is clamped). */
int credit_ledger_inject(CreditLedger *l, const CreditSpec *s, int64_t delta_usec);
/* Checks a transfer without applying it (-ERANGE, -EINVAL). */
int credit_transfer_check(const CreditLedger *from, const CreditLedger *to, const CreditSpec *to_spec,
                          int64_t amount_usec);
/* Applies a checked transfer to both ledgers; the sum is unchanged. */
int credit_transfer_apply(CreditLedger *from, CreditLedger *to, const CreditSpec *to_spec,
                          int64_t amount_usec);
/* A new spec on a live VM: the balance is kept, clamped to the new cap
 * (what does not fit is forfeited). */
void credit_ledger_respec(CreditLedger *l, const CreditSpec *new_spec);

/* ---- the emulated bank's enforcement (stock kernels) ---------------------
 *
 * On a stock kernel vmmgr keeps the ledger and enforces it with the CFS
 * quota.  Kernel facts this builds on: with burst 0, a quota write sets
 * the pool to one quota (and unthrottles), and every period refills it to
 * one quota.  So vmmgr decides a *rate* for the next tick rather than
 * flipping between unlimited and baseline a tick late:
 *
 *   budget B = available + earnings over the next tick
 *   B >= vCPUs x (tick + slack)  ->  unlimited: it cannot overdraw
 *   available > half a tick's    ->  landing: quota/period = B / tick on a
 *   earnings                         fine period, so the kernel itself
 *                                    stops the VM at its balance
 *   otherwise (about empty,      ->  steady: about baseline, steering
 *   or in debt)                      the balance to zero over the repay
 *                                    horizon
 *
 * A quota write is not free: it sets the pool to one quota and zeroes the
 * overrun each CPU's runqueue carries, so the VM gets up to about two
 * quotas on top.  Seen on a real kernel: a steady state that corrected
 * every small ledger wobble wrote several times a second and over-delivered
 * by 0.1-0.4 %, each correction causing the next.  So once empty it lands
 * on about baseline and then stays unwritten while the current limit keeps
 * the balance within one write's cost of zero over the horizon; a write
 * sets the rate that repays the balance or debt and its own cost.
 * Whatever the VM still gets beyond its due (refills, per-CPU slices)
 * shows in the measured usage and is repaid the same way: the long-run
 * total is exact, and the error at any instant is bounded by about one
 * write's cost plus one quota of the fine period per vCPU.
 */

typedef struct CreditEnforcement {
        uint64_t period_usec;
        uint64_t quota_usec; /* UINT64_MAX: unlimited */
} CreditEnforcement;

#define CREDIT_QUOTA_UNLIMITED UINT64_MAX

typedef struct EmulatedBankParams {
        uint64_t tick_usec;        /* how often usage is read (default 100 ms) */
        uint64_t fine_period_usec; /* CFS period while limited (default 10 ms) */
        uint64_t min_quota_usec;   /* the kernel's minimum quota (1 ms) */
        uint64_t max_period_usec;  /* the kernel's maximum period (1 s) */
        uint32_t hysteresis_ppm;   /* landing: keep the quota if within this (1 %) */
        uint64_t repay_horizon_usec; /* steady state: errors repaid over this (2 s) */
        uint32_t slack_ppm;        /* of a tick: late ticks (default 50 %) */
} EmulatedBankParams;

void emulated_bank_params_default(EmulatedBankParams *p);

/* The enforcement for the next tick, from the ledger after this tick's
 * accrual and spending.  `current` is what is applied now (NULL: nothing
 * known).  Returns true when it differs from `current` (a write is due). */
bool credit_emulated_decide(const CreditSpec *s, const CreditLedger *l, const EmulatedBankParams *p,
                            const CreditEnforcement *current, CreditEnforcement *ret);
