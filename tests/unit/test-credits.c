/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: policies/credits.c - amounts, classes and ledger arithmetic. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policies/credits.h"

#define SEC INT64_C(1000000)

static void test_parse_amount(void **state) {
        static const struct {
                const char *in;
                bool signed_ok;
                int r;
                int64_t usec;
        } cases[] = {
                { "6s", false, 0, 6 * SEC },
                { "0.25s", false, 0, 250000 },
                { "2cr", false, 0, 120 * SEC },
                { "1.5cr", false, 0, 90 * SEC },
                { "+2cr", true, 0, 120 * SEC },
                { "-500usec", true, 0, -500 },
                { "250000usec", false, 0, 250000 },
                { "0.0000001cr", false, 0, 6 },
                { "0.00000001cr", false, -ERANGE, 0 }, /* 0.6 usec: below precision */
                { "+2cr", false, -EINVAL, 0 },          /* sign where none is allowed */
                { "6", false, -EINVAL, 0 },             /* no unit */
                { "s", false, -EINVAL, 0 },
                { "6 s", false, -EINVAL, 0 },
                { "6sec", false, -EINVAL, 0 },
                { "1.s", false, -EINVAL, 0 },
                { "1.0000001s", false, -ERANGE, 0 },
                { "99999999999999999999usec", false, -EINVAL, 0 },
                { "2000000000000cr", false, -ERANGE, 0 },
                { "", false, -EINVAL, 0 },
                { "--1s", true, -EINVAL, 0 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t v = 42;
                int r = credit_parse_amount(cases[i].in, cases[i].signed_ok, &v);
                if (r != cases[i].r)
                        fail_msg("\"%s\": got %d, want %d", cases[i].in, r, cases[i].r);
                if (r == 0 && v != cases[i].usec)
                        fail_msg("\"%s\": got %lld usec", cases[i].in, (long long) v);
        }
}

static void test_format(void **state) {
        char buf[32];

        credit_format(buf, sizeof(buf), 60 * SEC);
        assert_string_equal(buf, "1.00");
        credit_format(buf, sizeof(buf), 90 * SEC + 300000); /* 1.505 -> 1.51 */
        assert_string_equal(buf, "1.51");
        credit_format(buf, sizeof(buf), -6 * SEC);
        assert_string_equal(buf, "-0.10");
        credit_format(buf, sizeof(buf), 1); /* rounds to zero: no "-0.00" either way */
        assert_string_equal(buf, "0.00");
        credit_format(buf, sizeof(buf), INT64_MIN);
        assert_true(strlen(buf) > 5);
        assert_int_equal(credit_format(buf, 3, 60 * SEC), -ENOBUFS);
}

static void test_presets(void **state) {
        CreditClassTable t;
        const CreditClass *c;

        assert_int_equal(credit_class_table_init(&t), 0);
        /* EC2 t3.nano: 2 vCPU at 5 % earns 6 credits per hour, holds 144. */
        c = credit_class_find(&t, "t3.nano");
        assert_non_null(c);
        assert_true(credit_earn_per_sec(&c->spec) * 3600 == 6 * 60 * SEC);
        assert_true(credit_spec_cap(&c->spec) == 144 * 60 * SEC);
        c = credit_class_find(&t, "t3.2xlarge");
        assert_non_null(c);
        assert_true(credit_earn_per_sec(&c->spec) * 3600 == 192 * 60 * SEC);
        assert_true(credit_spec_cap(&c->spec) == 4608 * 60 * SEC);
        c = credit_class_find(&t, "demo");
        assert_non_null(c);
        assert_int_equal(c->spec.mode, CREDIT_MODE_STANDARD);
        assert_null(credit_class_find(&t, "t3.huge"));
        credit_class_table_done(&t);
}

static void test_class_keys(void **state) {
        CreditClassTable t;
        CreditClass c = { .name = "burst-small" };
        const char *key;

        assert_int_equal(credit_class_table_init(&t), 0);
        assert_int_equal(credit_class_set_key(&c, "vcpus", "2", &key), 0);
        assert_int_equal(credit_class_set_key(&c, "baseline", "15%", &key), 0);
        assert_int_equal(c.spec.baseline_ppm, 150000);
        assert_int_equal(credit_class_set_key(&c, "baseline", "0.125", &key), 0);
        assert_int_equal(c.spec.baseline_ppm, 125000);
        assert_int_equal(credit_class_set_key(&c, "cap", "100cr", &key), 0);
        assert_int_equal(credit_class_set_key(&c, "launch", "30s", &key), 0);
        assert_int_equal(credit_class_set_key(&c, "mode", "unlimited", &key), 0);
        assert_int_equal(credit_class_table_put(&t, &c), 0);
        assert_non_null(credit_class_find(&t, "burst-small"));

        /* Bad input: each names its key and changes nothing. */
        CreditClass before = c;
        assert_int_equal(credit_class_set_key(&c, "vcpus", "0", &key), -ERANGE);
        assert_string_equal(key, "vcpus");
        assert_int_equal(credit_class_set_key(&c, "vcpus", "two", &key), -EINVAL);
        assert_int_equal(credit_class_set_key(&c, "baseline", "150%", &key), -ERANGE);
        assert_int_equal(credit_class_set_key(&c, "baseline", "1.5", &key), -ERANGE);
        assert_int_equal(credit_class_set_key(&c, "baseline", "%", &key), -EINVAL);
        assert_int_equal(credit_class_set_key(&c, "cap", "-1s", &key), -EINVAL);
        assert_int_equal(credit_class_set_key(&c, "mode", "turbo", &key), -EINVAL);
        assert_int_equal(credit_class_set_key(&c, "colour", "blue", &key), -ENOKEY);
        assert_string_equal(key, "colour");
        assert_memory_equal(&c, &before, sizeof(c));

        CreditClass bad = { .name = "../x", .spec = c.spec };
        assert_int_equal(credit_class_table_put(&t, &bad), -EINVAL);
        CreditClass zero = { .name = "zero", .spec = { .vcpus = 1 } }; /* no baseline, no cap */
        assert_int_equal(credit_class_table_put(&t, &zero), -EINVAL);
        credit_class_table_done(&t);
}

static const CreditSpec demo = {
        .vcpus = 1, .baseline_ppm = 200000, .cap_usec = 6 * SEC, .launch_usec = 3 * SEC,
        .mode = CREDIT_MODE_STANDARD,
};

static void test_accrue_cap(void **state) {
        CreditLedger l;

        credit_ledger_init(&l, &demo);
        assert_true(l.launch_usec == 3 * SEC && l.balance_usec == 0);
        credit_ledger_accrue(&l, &demo, 10 * SEC); /* 20 % x 10 s = 2 CPU-s */
        assert_true(l.balance_usec == 2 * SEC);
        credit_ledger_accrue(&l, &demo, 100 * SEC); /* 20 more: 4 fit under the cap */
        assert_true(l.balance_usec == 6 * SEC);
        assert_true(l.earned_usec == 6 * SEC);
        assert_true(l.forfeited_usec == 16 * SEC);
        assert_true(l.launch_usec == 3 * SEC); /* launch credits are outside the cap */
}

static void test_accrue_exact_in_small_steps(void **state) {
        /* 1 vCPU at 0.0001 % earns 1 usec per second: a million 1-usec steps
         * must add up to exactly one usec, no drift from rounding. */
        CreditSpec s = { .vcpus = 1, .baseline_ppm = 1, .cap_usec = 10 * SEC };
        CreditLedger l;

        credit_ledger_init(&l, &s);
        for (int i = 0; i < 1000000; i++)
                credit_ledger_accrue(&l, &s, 1);
        assert_true(l.balance_usec == 1);
        /* 24 days in one call must not overflow: 1 usec/s x 2073600 s. */
        credit_ledger_accrue(&l, &s, UINT64_C(2073600) * SEC);
        assert_true(l.balance_usec == 2073601);
}

static void test_spend_order(void **state) {
        CreditLedger l;

        credit_ledger_init(&l, &demo);
        credit_ledger_accrue(&l, &demo, 10 * SEC); /* bank 2 s */
        credit_ledger_spend(&l, &demo, 4 * SEC);   /* launch 3 s first, then 1 s of bank */
        assert_true(l.launch_usec == 0 && l.balance_usec == 1 * SEC);
        assert_true(credit_ledger_available(&l) == 1 * SEC);
        credit_ledger_spend(&l, &demo, 2 * SEC);   /* 1 s more than it has */
        assert_true(l.balance_usec == 0);
        assert_true(l.overdraft_usec == 1 * SEC);
        assert_true(l.spent_usec == 6 * SEC);
}

static void test_unlimited_surplus(void **state) {
        CreditSpec s = demo;
        CreditLedger l;
        int64_t day;

        s.mode = CREDIT_MODE_UNLIMITED;
        s.launch_usec = 0;
        day = credit_earn_per_sec(&s) * 86400; /* 17280 CPU-s */
        credit_ledger_init(&l, &s);
        credit_ledger_spend(&l, &s, 5 * SEC);
        assert_true(l.surplus_usec == 5 * SEC && l.overdraft_usec == 0);
        /* Earnings repay surplus before they fill the bank. */
        credit_ledger_accrue(&l, &s, 10 * SEC); /* 2 s */
        assert_true(l.surplus_usec == 3 * SEC && l.balance_usec == 0);
        credit_ledger_accrue(&l, &s, 20 * SEC); /* 4 s: 3 repay, 1 banked */
        assert_true(l.surplus_usec == 0 && l.balance_usec == 1 * SEC);
        /* Surplus beyond a day of earnings is charged. */
        credit_ledger_spend(&l, &s, (uint64_t) (day + 11 * SEC));
        assert_true(l.surplus_usec == day);
        assert_true(l.charged_usec == 10 * SEC);
}

static void test_inject(void **state) {
        CreditLedger l;
        uint64_t gen;

        credit_ledger_init(&l, &demo);
        assert_int_equal(credit_ledger_inject(&l, &demo, 5 * SEC), 0);
        assert_true(l.balance_usec == 5 * SEC && l.adjusted_usec == 5 * SEC);
        gen = l.generation;
        /* Above the cap: refused, not clamped. */
        assert_int_equal(credit_ledger_inject(&l, &demo, 2 * SEC), -ERANGE);
        /* Below zero: refused, not clamped. */
        assert_int_equal(credit_ledger_inject(&l, &demo, -6 * SEC), -ERANGE);
        assert_true(l.balance_usec == 5 * SEC && l.generation == gen);
        assert_int_equal(credit_ledger_inject(&l, &demo, -5 * SEC), 0);
        assert_true(l.balance_usec == 0 && l.generation > gen);
        assert_int_equal(credit_ledger_inject(&l, &demo, INT64_MIN), -ERANGE);
        assert_int_equal(credit_ledger_inject(&l, &demo, INT64_MAX), -ERANGE);
}

static void test_overflow_guards(void **state) {
        /* The largest spec: a huge cap and a full-speed 1024-vCPU VM. */
        CreditSpec s = { .vcpus = 1024, .baseline_ppm = 1000000, .cap_usec = CREDIT_AMOUNT_MAX,
                         .mode = CREDIT_MODE_UNLIMITED };
        CreditLedger l;

        assert_int_equal(credit_spec_validate(&s, NULL), 0);
        credit_ledger_init(&l, &s);
        credit_ledger_accrue(&l, &s, UINT64_MAX); /* absurd gap: saturates, no wrap */
        assert_true(l.balance_usec == CREDIT_AMOUNT_MAX);
        assert_true(l.balance_usec > 0);
        credit_ledger_spend(&l, &s, UINT64_MAX);
        assert_true(l.balance_usec == 0);
        assert_true(l.surplus_usec >= 0 && l.charged_usec >= 0);
        s.cap_usec = CREDIT_AMOUNT_MAX + 1;
        assert_int_equal(credit_spec_validate(&s, NULL), -EINVAL);
}

static void test_transfer(void **state) {
        CreditLedger a, b;
        int64_t sum;

        credit_ledger_init(&a, &demo);
        credit_ledger_init(&b, &demo);
        credit_ledger_accrue(&a, &demo, 25 * SEC); /* 5 s */
        credit_ledger_accrue(&b, &demo, 20 * SEC); /* 4 s */
        sum = a.balance_usec + b.balance_usec;
        /* b can take only 2 s before its cap: 3 s is refused, nothing moves. */
        assert_int_equal(credit_transfer_apply(&a, &b, &demo, 3 * SEC), -ERANGE);
        assert_true(a.balance_usec == 5 * SEC && b.balance_usec == 4 * SEC);
        assert_int_equal(credit_transfer_apply(&a, &b, &demo, 2 * SEC), 0);
        assert_true(a.balance_usec + b.balance_usec == sum);
        assert_true(a.adjusted_usec == -2 * SEC && b.adjusted_usec == 2 * SEC);
        assert_int_equal(credit_transfer_apply(&a, &b, &demo, 0), -ERANGE);
        assert_int_equal(credit_transfer_apply(&a, &b, &demo, -1), -ERANGE);
        assert_int_equal(credit_transfer_apply(&a, &a, &demo, 1), -EINVAL);
        assert_int_equal(credit_transfer_apply(&b, &a, &demo, 7 * SEC), -ERANGE); /* b has 6 */
}

static void test_respec(void **state) {
        CreditLedger l;
        CreditSpec smaller = demo;

        credit_ledger_init(&l, &demo);
        credit_ledger_accrue(&l, &demo, 30 * SEC); /* 6 s, at the cap */
        smaller.cap_usec = 4 * SEC;
        credit_ledger_respec(&l, &smaller);
        assert_true(l.balance_usec == 4 * SEC);
        assert_true(l.forfeited_usec == 2 * SEC);
        assert_true(l.launch_usec == 3 * SEC); /* untouched */
}

static void test_debt_repaid_first(void **state) {
        CreditLedger l;

        credit_ledger_init(&l, &demo);
        credit_ledger_spend(&l, &demo, 4 * SEC); /* 3 s launch, 1 s overdrawn */
        assert_true(l.debt_usec == 1 * SEC && l.overdraft_usec == 1 * SEC);
        assert_true(credit_ledger_available(&l) == -1 * SEC);
        credit_ledger_accrue(&l, &demo, 10 * SEC); /* 2 s: 1 repays, 1 banked */
        assert_true(l.debt_usec == 0 && l.balance_usec == 1 * SEC);
        assert_true(l.overdraft_usec == 1 * SEC); /* the record stays */
}

static void test_decide(void **state) {
        EmulatedBankParams p;
        CreditEnforcement cur, next;
        CreditLedger l;
        CreditSpec two = demo;

        emulated_bank_params_default(&p);
        two.vcpus = 2;
        credit_ledger_init(&l, &two); /* 3 s launch: > 2 vCPU x 150 ms */
        assert_true(credit_emulated_decide(&two, &l, &p, NULL, &next));
        assert_true(next.quota_usec == CREDIT_QUOTA_UNLIMITED);

        /* 100 ms left + 40 ms of earnings per tick: 1.4 CPUs for a tick. */
        l.launch_usec = 100000;
        cur = next;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.period_usec == 10000 && next.quota_usec == 14000);

        /* Empty: baseline, 20 % x 2 vCPUs = 4 ms per 10 ms, less what the
         * write itself hands out (two quotas, 8 ms) repaid over 2 s. */
        l.launch_usec = 0;
        cur = next;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.period_usec == 10000 && next.quota_usec == 3960);

        /* Ledger noise, or a balance or debt the current limit brings
         * within a write's cost (8 ms) of zero in 2 s: no rewrite. */
        cur = next;
        l.balance_usec = 50;
        assert_false(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 3960);
        l.balance_usec = 0;
        l.debt_usec = 7000; /* 0.4 % of a CPU under: 8 ms repaid, +1 ms */
        assert_false(credit_emulated_decide(&two, &l, &p, &cur, &next));
        l.debt_usec = 16000; /* -8 ms */
        assert_false(credit_emulated_decide(&two, &l, &p, &cur, &next));
        l.debt_usec = 17000; /* -9 ms: rewrite */
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 3875); /* 40 % - (17 + 8) ms / 2 s */
        l.debt_usec = 0;
        l.balance_usec = 1000; /* +9 ms: rewrite */
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 3965);

        /* In debt: held below baseline, repaid over 2 s with the write's
         * cost: 208 ms takes 10.4 % of a CPU off the 40 %. */
        l.balance_usec = 0;
        l.debt_usec = 200000;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 2960);

        /* Deeper debt: the rate (0.6 %) drops below what 1 ms per 10 ms
         * allows, so the period stretches instead; at zero, to the most. */
        l.debt_usec = 780000;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 1000 && next.period_usec == 166666);
        l.debt_usec = 10 * SEC;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == 1000 && next.period_usec == 1000000);

        /* Unlimited mode never throttles. */
        two.mode = CREDIT_MODE_UNLIMITED;
        assert_true(credit_emulated_decide(&two, &l, &p, &cur, &next));
        assert_true(next.quota_usec == CREDIT_QUOTA_UNLIMITED);
        assert_true(next.period_usec == cur.period_usec); /* no needless period change */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_amount),   cmocka_unit_test(test_format),
                cmocka_unit_test(test_presets),        cmocka_unit_test(test_class_keys),
                cmocka_unit_test(test_accrue_cap),     cmocka_unit_test(test_accrue_exact_in_small_steps),
                cmocka_unit_test(test_spend_order),    cmocka_unit_test(test_unlimited_surplus),
                cmocka_unit_test(test_inject),         cmocka_unit_test(test_overflow_guards),
                cmocka_unit_test(test_transfer),       cmocka_unit_test(test_respec),
                cmocka_unit_test(test_debt_repaid_first), cmocka_unit_test(test_decide),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
