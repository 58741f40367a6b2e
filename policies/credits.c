/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policies/credits.c - the credit ledger and the emulated bank's decisions:
 * integer arithmetic on a snapshot, no I/O and no clock.
 */
#include "policies/credits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"

const char *credit_mode_to_string(CreditMode m) {
        return m == CREDIT_MODE_UNLIMITED ? "unlimited" : "standard";
}

int credit_mode_from_string(const char *s) {
        if (s && strcmp(s, "standard") == 0)
                return CREDIT_MODE_STANDARD;
        if (s && strcmp(s, "unlimited") == 0)
                return CREDIT_MODE_UNLIMITED;
        return -EINVAL;
}

static int64_t day_of_earnings(const CreditSpec *s) {
        return credit_earn_per_sec(s) * CREDIT_DAY_SEC;
}

int64_t credit_spec_cap(const CreditSpec *s) {
        return s->cap_usec > 0 ? s->cap_usec : day_of_earnings(s);
}

int credit_spec_validate(const CreditSpec *s, const char **ret_field) {
        const char *field = NULL;

        if (s->vcpus < 1 || s->vcpus > CREDIT_MAX_VCPUS)
                field = "vcpus";
        else if (s->baseline_ppm > CREDIT_PPM)
                field = "baseline";
        else if (s->cap_usec < 0 || s->cap_usec > CREDIT_AMOUNT_MAX ||
                 (s->cap_usec == 0 && s->baseline_ppm == 0))
                field = "cap"; /* a zero baseline has no "24 h of earnings" */
        else if (s->launch_usec < 0 || s->launch_usec > CREDIT_AMOUNT_MAX)
                field = "launch";
        else if (s->mode != CREDIT_MODE_STANDARD && s->mode != CREDIT_MODE_UNLIMITED)
                field = "mode";
        if (ret_field)
                *ret_field = field;
        return field ? -EINVAL : 0;
}

/* ---- amounts ---------------------------------------------------------- */

int credit_parse_amount(const char *s, bool signed_ok, int64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
                unsigned max_decimals;
        } units[] = {
                { "usec", 1, 0 },
                { "cr", (uint64_t) CREDIT_USEC, 8 },
                { "s", USEC_PER_SEC, 6 },
        };
        char num[64];
        const char *unit = NULL, *dot;
        uint64_t unit_usec = 0, whole, frac = 0, scale = 1, value;
        unsigned max_decimals = 0;
        size_t len, digits = 0;
        bool neg = false;

        if (!s || !*s)
                return -EINVAL;
        if (*s == '+' || *s == '-') {
                if (!signed_ok)
                        return -EINVAL;
                neg = *s == '-';
                s++;
        }
        len = strlen(s);
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                size_t ul = strlen(units[i].suffix);
                if (len > ul && strcmp(s + len - ul, units[i].suffix) == 0) {
                        unit = units[i].suffix;
                        unit_usec = units[i].usec;
                        max_decimals = units[i].max_decimals;
                        len -= ul;
                        break;
                }
        }
        if (!unit || len == 0 || len >= sizeof(num))
                return -EINVAL;
        memcpy(num, s, len);
        num[len] = '\0';
        dot = strchr(num, '.');
        if (parse_u64_n(num, dot ? (size_t) (dot - num) : len, &whole) < 0)
                return -EINVAL;
        if (dot) {
                digits = strlen(dot + 1);
                if (digits == 0 || digits > max_decimals || parse_u64(dot + 1, &frac) < 0)
                        return digits > max_decimals ? -ERANGE : -EINVAL;
                for (size_t i = 0; i < digits; i++)
                        scale *= 10;
        }
        if (whole > (uint64_t) CREDIT_AMOUNT_MAX / unit_usec)
                return -ERANGE;
        /* The fraction must come out as whole microseconds. */
        if ((frac * unit_usec) % scale != 0)
                return -ERANGE;
        value = whole * unit_usec + frac * unit_usec / scale;
        if (value > (uint64_t) CREDIT_AMOUNT_MAX)
                return -ERANGE;
        *ret_usec = neg ? -(int64_t) value : (int64_t) value;
        return 0;
}

int credit_format(char *buf, size_t size, int64_t usec) {
        uint64_t mag = usec < 0 ? (uint64_t) (-(usec + 1)) + 1 : (uint64_t) usec;
        uint64_t cents = (mag * 100 + (uint64_t) CREDIT_USEC / 2) / (uint64_t) CREDIT_USEC;
        int n;

        /* mag <= 2^63 and *100 could overflow past 2^63/100: go wide. */
        if (mag > UINT64_MAX / 100)
                cents = (uint64_t) (((unsigned __int128) mag * 100 + (uint64_t) CREDIT_USEC / 2) /
                                    (uint64_t) CREDIT_USEC);
        n = snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, usec < 0 && cents ? "-" : "", cents / 100,
                     cents % 100);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

/* ---- classes ------------------------------------------------------------ */

#define T3(n, v, pct)                                                                          \
        {                                                                                      \
                .name = n, .spec = {.vcpus = v, .baseline_ppm = (pct) * 10000, .cap_usec = 0, \
                                    .launch_usec = 0, .mode = CREDIT_MODE_UNLIMITED }          \
        }

/* EC2 T3: earn = baseline x vCPUs x 60 credits/h, cap = 24 h of earnings,
 * no launch credits, unlimited by default (as EC2 launches T3).  "demo"
 * drains in seconds: 1 vCPU at 20 %, 3 CPU-s launch, 6 CPU-s cap. */
static const CreditClass presets[] = {
        T3("t3.nano", 2, 5),    T3("t3.micro", 2, 10), T3("t3.small", 2, 20),
        T3("t3.medium", 2, 20), T3("t3.large", 2, 30), T3("t3.xlarge", 4, 40),
        T3("t3.2xlarge", 8, 40),
        { .name = "demo",
          .spec = { .vcpus = 1,
                    .baseline_ppm = 200000,
                    .cap_usec = 6 * (int64_t) USEC_PER_SEC,
                    .launch_usec = 3 * (int64_t) USEC_PER_SEC,
                    .mode = CREDIT_MODE_STANDARD } },
};

size_t credit_class_presets(const CreditClass **ret) {
        *ret = presets;
        return ARRAY_SIZE(presets);
}

int credit_class_table_init(CreditClassTable *t) {
        t->classes = malloc(sizeof(presets));
        if (!t->classes)
                return -ENOMEM;
        memcpy(t->classes, presets, sizeof(presets));
        t->n = ARRAY_SIZE(presets);
        return 0;
}

void credit_class_table_done(CreditClassTable *t) {
        free(t->classes);
        t->classes = NULL;
        t->n = 0;
}

const CreditClass *credit_class_find(const CreditClassTable *t, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->classes[i].name, name) == 0)
                        return &t->classes[i];
        return NULL;
}

static bool class_name_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n >= CREDIT_CLASS_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
                      s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

int credit_class_table_put(CreditClassTable *t, const CreditClass *c) {
        CreditClass *slot;
        int r;

        if (!class_name_valid(c->name))
                return -EINVAL;
        r = credit_spec_validate(&c->spec, NULL);
        if (r < 0)
                return r;
        slot = (CreditClass *) credit_class_find(t, c->name);
        if (!slot) {
                CreditClass *n = reallocarray(t->classes, t->n + 1, sizeof(CreditClass));
                if (!n)
                        return -ENOMEM;
                t->classes = n;
                slot = &t->classes[t->n++];
        }
        *slot = *c;
        return 0;
}

/* "0.2" or "20%" (up to four decimals in percent) -> ppm. */
static int parse_baseline(const char *v, uint32_t *ret) {
        size_t len = strlen(v), digits;
        uint64_t whole, frac = 0;
        const char *dot;

        if (len < 2 || v[len - 1] != '%')
                return parse_fraction_ppm(v, ret);
        len--; /* drop the '%' */
        dot = memchr(v, '.', len);
        digits = dot ? len - (size_t) (dot - v) - 1 : 0;
        if (parse_u64_n(v, dot ? (size_t) (dot - v) : len, &whole) < 0)
                return -EINVAL;
        if (dot && (digits == 0 || digits > 4 || parse_u64_n(dot + 1, digits, &frac) < 0))
                return -EINVAL;
        for (size_t i = digits; i < 4; i++)
                frac *= 10;
        if (whole > 100 || (whole == 100 && frac))
                return -ERANGE;
        *ret = (uint32_t) (whole * 10000 + frac); /* 1 % = 10000 ppm */
        return 0;
}

int credit_class_set_key(CreditClass *c, const char *key, const char *value, const char **ret_key) {
        int r = -EINVAL;

        if (ret_key)
                *ret_key = key;
        if (!key || !value)
                return -EINVAL;
        if (strcmp(key, "vcpus") == 0) {
                int v;
                r = parse_int_range(value, 1, CREDIT_MAX_VCPUS, &v);
                if (r == 0)
                        c->spec.vcpus = (uint32_t) v;
        } else if (strcmp(key, "baseline") == 0)
                r = parse_baseline(value, &c->spec.baseline_ppm);
        else if (strcmp(key, "cap") == 0) {
                if (strcmp(value, "24h") == 0 || strcmp(value, "default") == 0) {
                        c->spec.cap_usec = 0;
                        r = 0;
                } else
                        r = credit_parse_amount(value, false, &c->spec.cap_usec);
        } else if (strcmp(key, "launch") == 0)
                r = credit_parse_amount(value, false, &c->spec.launch_usec);
        else if (strcmp(key, "mode") == 0) {
                r = credit_mode_from_string(value);
                if (r >= 0) {
                        c->spec.mode = (CreditMode) r;
                        r = 0;
                }
        } else
                r = -ENOKEY;
        if (r == 0 && ret_key)
                *ret_key = NULL;
        return r;
}

/* ---- the ledger ---------------------------------------------------------- */

void credit_ledger_init(CreditLedger *l, const CreditSpec *s) {
        *l = (CreditLedger) { .launch_usec = s->launch_usec, .generation = 1 };
}

int64_t credit_ledger_available(const CreditLedger *l) {
        return l->launch_usec + l->balance_usec - l->debt_usec;
}

void credit_ledger_accrue(CreditLedger *l, const CreditSpec *s, uint64_t wall_usec) {
        /* earn_per_sec (<= 2^30) x wall_usec can pass 2^64 for long gaps. */
        unsigned __int128 num = (unsigned __int128) credit_earn_per_sec(s) * wall_usec + l->earn_remainder;
        uint64_t earned = (uint64_t) (num / USEC_PER_SEC);
        int64_t cap = credit_spec_cap(s), repay, room, add;

        l->earn_remainder = (uint64_t) (num % USEC_PER_SEC);
        if (earned == 0)
                return;
        if (earned > (uint64_t) CREDIT_AMOUNT_MAX)
                earned = (uint64_t) CREDIT_AMOUNT_MAX; /* years of earnings: the cap is far lower */
        repay = MIN(l->surplus_usec, (int64_t) earned);
        l->surplus_usec -= repay;
        {
                int64_t d = MIN(l->debt_usec, (int64_t) earned - repay);
                l->debt_usec -= d;
                repay += d;
        }
        room = cap > l->balance_usec ? cap - l->balance_usec : 0;
        add = MIN((int64_t) earned - repay, room);
        l->balance_usec += add;
        l->earned_usec += (uint64_t) (repay + add);
        l->forfeited_usec += earned - (uint64_t) (repay + add);
        l->generation++;
}

#define ADVANCE_STEP_USEC UINT64_C(10000)
#define ADVANCE_STEPS_MAX UINT64_C(256)

void credit_ledger_advance(CreditLedger *l, const CreditSpec *s, uint64_t wall_usec, uint64_t used_usec) {
        uint64_t steps;
        int64_t earn;

        /* The earnings at most (no remainder, no repayment first): if even
         * they fit under the cap, the order cannot forfeit anything. */
        earn = (int64_t) MIN((unsigned __int128) credit_earn_per_sec(s) * wall_usec / 1000000 + 1,
                             (unsigned __int128) CREDIT_AMOUNT_MAX);
        if (used_usec == 0 || wall_usec == 0 || l->balance_usec + earn <= credit_spec_cap(s)) {
                credit_ledger_accrue(l, s, wall_usec);
                credit_ledger_spend(l, s, used_usec);
                return;
        }
        steps = MIN(MAX(wall_usec / ADVANCE_STEP_USEC, UINT64_C(1)), ADVANCE_STEPS_MAX);
        for (uint64_t i = 0; i < steps; i++) {
                credit_ledger_accrue(l, s, wall_usec * (i + 1) / steps - wall_usec * i / steps);
                credit_ledger_spend(l, s, used_usec * (i + 1) / steps - used_usec * i / steps);
        }
}

int credit_ledger_forfeit(CreditLedger *l, int64_t amount_usec) {
        if (amount_usec <= 0 || amount_usec > l->balance_usec || (uint64_t) amount_usec > l->earned_usec)
                return -ERANGE;
        l->balance_usec -= amount_usec;
        l->earned_usec -= (uint64_t) amount_usec;
        l->forfeited_usec += (uint64_t) amount_usec;
        l->generation++;
        return 0;
}

void credit_ledger_spend(CreditLedger *l, const CreditSpec *s, uint64_t used_usec) {
        int64_t rest, take;

        if (used_usec == 0)
                return;
        if (used_usec > (uint64_t) CREDIT_AMOUNT_MAX)
                used_usec = (uint64_t) CREDIT_AMOUNT_MAX; /* cannot happen with real counters */
        l->spent_usec += used_usec;
        rest = (int64_t) used_usec;
        take = MIN(l->launch_usec, rest);
        l->launch_usec -= take;
        rest -= take;
        take = MIN(l->balance_usec, rest);
        l->balance_usec -= take;
        rest -= take;
        if (rest > 0) {
                if (s->mode == CREDIT_MODE_UNLIMITED) {
                        int64_t limit = day_of_earnings(s);
                        l->surplus_usec += rest;
                        if (l->surplus_usec > limit) {
                                l->charged_usec += l->surplus_usec - limit;
                                l->surplus_usec = limit;
                        }
                } else {
                        l->overdraft_usec += (uint64_t) rest;
                        l->debt_usec += rest;
                }
        }
        l->generation++;
}

int credit_ledger_inject(CreditLedger *l, const CreditSpec *s, int64_t delta_usec) {
        if (delta_usec > CREDIT_AMOUNT_MAX || delta_usec < -CREDIT_AMOUNT_MAX)
                return -ERANGE;
        if (delta_usec > 0 && l->balance_usec + delta_usec > credit_spec_cap(s))
                return -ERANGE;
        if (delta_usec < 0 && l->balance_usec < -delta_usec)
                return -ERANGE;
        if (delta_usec == 0)
                return 0;
        l->balance_usec += delta_usec;
        l->adjusted_usec += delta_usec;
        l->generation++;
        return 0;
}

int credit_transfer_check(const CreditLedger *from, const CreditLedger *to, const CreditSpec *to_spec,
                          int64_t amount_usec) {
        if (from == to)
                return -EINVAL;
        if (amount_usec <= 0 || amount_usec > CREDIT_AMOUNT_MAX)
                return -ERANGE;
        if (from->balance_usec < amount_usec)
                return -ERANGE;
        if (to->balance_usec + amount_usec > credit_spec_cap(to_spec))
                return -ERANGE;
        return 0;
}

int credit_transfer_apply(CreditLedger *from, CreditLedger *to, const CreditSpec *to_spec,
                          int64_t amount_usec) {
        int r = credit_transfer_check(from, to, to_spec, amount_usec);
        if (r < 0)
                return r;
        from->balance_usec -= amount_usec;
        from->adjusted_usec -= amount_usec;
        to->balance_usec += amount_usec;
        to->adjusted_usec += amount_usec;
        from->generation++;
        to->generation++;
        return 0;
}

void credit_ledger_respec(CreditLedger *l, const CreditSpec *new_spec) {
        int64_t cap = credit_spec_cap(new_spec), limit = day_of_earnings(new_spec);

        if (l->balance_usec > cap) {
                l->forfeited_usec += (uint64_t) (l->balance_usec - cap);
                l->balance_usec = cap;
        }
        if (new_spec->mode == CREDIT_MODE_UNLIMITED && l->surplus_usec > limit) {
                l->charged_usec += l->surplus_usec - limit;
                l->surplus_usec = limit;
        }
        l->generation++;
}

/* ---- the emulated bank's enforcement ------------------------------------ */

void emulated_bank_params_default(EmulatedBankParams *p) {
        *p = (EmulatedBankParams) {
                .tick_usec = 100000,
                .fine_period_usec = 10000,
                .min_quota_usec = 1000,
                .max_period_usec = 1000000,
                .hysteresis_ppm = 10000,
                .repay_horizon_usec = 2000000,
                .slack_ppm = 500000,
        };
}

static uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
        return (uint64_t) ((unsigned __int128) a * b / c);
}

static bool same_enforcement(const CreditEnforcement *a, const CreditEnforcement *b) {
        return a->period_usec == b->period_usec && a->quota_usec == b->quota_usec;
}

/* The quota and period that deliver `rate_ppm` of a CPU: the fine period,
 * stretched where its quota would fall below the kernel's minimum. */
static void enforcement_for_rate(uint64_t rate_ppm, const EmulatedBankParams *p, CreditEnforcement *ret) {
        ret->period_usec = p->fine_period_usec;
        ret->quota_usec = mul_div(rate_ppm, ret->period_usec, CREDIT_PPM);
        if (ret->quota_usec >= p->min_quota_usec)
                return;
        ret->period_usec = rate_ppm > 0 ? mul_div(p->min_quota_usec, CREDIT_PPM, rate_ppm) : p->max_period_usec;
        ret->period_usec = MIN(MAX(ret->period_usec, p->fine_period_usec), p->max_period_usec);
        ret->quota_usec = MAX(mul_div(rate_ppm, ret->period_usec, CREDIT_PPM), p->min_quota_usec);
}

static bool is_limited(const CreditEnforcement *e) {
        return e && e->quota_usec != CREDIT_QUOTA_UNLIMITED && e->quota_usec > 0 && e->period_usec > 0;
}

static int64_t rate_of(const CreditEnforcement *e) {
        return (int64_t) mul_div(e->quota_usec, CREDIT_PPM, e->period_usec);
}

/* Steady state (about empty, or in debt): about baseline, steering the
 * balance to zero.  A write is not free: it sets the pool to a whole quota
 * and zeroes the overrun each CPU's runqueue carries into the next period,
 * together up to about two quotas the VM gets on top.  So the current
 * limit stays while it keeps the balance within one write's cost of zero
 * over the repay horizon (rewriting for less would add more error than it
 * removes, and small corrections would feed a loop of them), and a write
 * sets the rate that repays the balance or debt and its own cost over that
 * horizon. */
static void decide_steady(const CreditSpec *s, int64_t available, const EmulatedBankParams *p,
                          const CreditEnforcement *current, CreditEnforcement *want) {
        int64_t earn = credit_earn_per_sec(s), horizon = (int64_t) p->repay_horizon_usec;
        int64_t full = (int64_t) s->vcpus * CREDIT_PPM, target, cost;
        CreditEnforcement base;

        enforcement_for_rate((uint64_t) earn, p, &base);
        cost = 2 * (int64_t) base.quota_usec;
        if (is_limited(current)) {
                /* The balance one horizon from now if nothing is written. */
                int64_t projected = available + (earn - rate_of(current)) * horizon / CREDIT_PPM;

                if (projected >= -cost && projected <= cost) {
                        *want = *current;
                        return;
                }
        }
        target = earn + (available - cost) * CREDIT_PPM / horizon;
        enforcement_for_rate((uint64_t) MIN(MAX(target, 0), full), p, want);
}

bool credit_emulated_decide(const CreditSpec *s, const CreditLedger *l, const EmulatedBankParams *p,
                            const CreditEnforcement *current, CreditEnforcement *ret) {
        CreditEnforcement want = { .period_usec = p->fine_period_usec, .quota_usec = CREDIT_QUOTA_UNLIMITED };
        uint64_t horizon = p->tick_usec + mul_div(p->tick_usec, p->slack_ppm, CREDIT_PPM);
        int64_t budget, available, tick_earnings;
        uint64_t rate_ppm, full_ppm = (uint64_t) s->vcpus * CREDIT_PPM;

        /* Unlimited mode never throttles: it runs on surplus instead. */
        if (s->mode == CREDIT_MODE_UNLIMITED)
                goto out;

        available = credit_ledger_available(l);
        tick_earnings = (int64_t) mul_div((uint64_t) credit_earn_per_sec(s), p->tick_usec, USEC_PER_SEC);
        budget = available + tick_earnings;
        if (budget >= (int64_t) mul_div(s->vcpus, horizon, 1))
                goto out; /* cannot overdraw before the next look */

        if (available <= tick_earnings / 2) {
                decide_steady(s, available, p, current, &want);
                goto out;
        }
        /* Landing: the rate (CPU ppm) that spends the budget in one tick. */
        rate_ppm = MIN(mul_div((uint64_t) budget, CREDIT_PPM, p->tick_usec), full_ppm);
        enforcement_for_rate(rate_ppm, p, &want);
        /* Close to what is applied: keep it, a rewrite would be a refill. */
        if (is_limited(current) && current->period_usec == want.period_usec) {
                uint64_t diff = current->quota_usec > want.quota_usec ? current->quota_usec - want.quota_usec
                                                                      : want.quota_usec - current->quota_usec;
                if (mul_div(diff, CREDIT_PPM, current->quota_usec) < p->hysteresis_ppm)
                        want = *current;
        }
out:
        /* Keep the period when going unlimited: changing it is a write too. */
        if (want.quota_usec == CREDIT_QUOTA_UNLIMITED && current)
                want.period_usec = current->period_usec;
        *ret = want;
        return !current || !same_enforcement(current, &want);
}
