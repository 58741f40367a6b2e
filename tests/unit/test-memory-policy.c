/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: policies/memory.c - limits, samples, protection, reclaim,
 * throttling, the pool, the host ceiling, balloon and dmem decisions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "policies/memory.h"

#define PAGE MEMPOL_PAGE_SIZE
#define MIB MEMPOL_MIB
#define GIB MEMPOL_GIB
#define SEC UINT64_C(1000000)

static uint64_t pg_down(uint64_t v) {
        return v / PAGE * PAGE;
}

static uint64_t pg_up(uint64_t v) {
        return (v + PAGE - 1) / PAGE * PAGE;
}

/* The host: total and used, no growth expected. */
#define HU(t, u) ((MemPolHostUse) { .total = (t), .used = (u) })

static MemPolicy defaults(void) {
        MemPolicy p;

        mempol_default(&p);
        return p;
}

static MemPolVmLimits limits_for(const MemPolicy *p, uint64_t ram, bool passthrough, bool balloon) {
        MemPolVmSpec spec = { .ram_bytes = ram, .passthrough = passthrough, .balloon = balloon };
        MemPolVmLimits l;

        assert_int_equal(mempol_vm_limits(p, &spec, &l), 0);
        return l;
}

/* A sample of one interval with the given usage, refaults and pressure. */
static MemPolSample sample(uint64_t interval_usec, uint64_t current, uint64_t refault_bytes, uint32_t pressure_ppm) {
        return (MemPolSample) { .interval_usec = interval_usec, .current = current,
                                .refault_bytes = refault_bytes, .pressure_ppm = pressure_ppm };
}

/* ---- tunables ---------------------------------------------------------- */

static void test_validate(void **state) {
        static const struct {
                size_t offset, size;
                uint64_t value;
                const char *field;
                int r;
        } cases[] = {
#define F(member) offsetof(MemPolicy, member), sizeof(((MemPolicy *) 0)->member)
                { F(limits.overhead_bytes), MEMPOL_BYTES_LIMIT + 1, "overhead", -ERANGE },
                { F(limits.overhead_ppm), MEMPOL_PPM + 1, "overhead_pct", -EINVAL },
                { F(limits.swap_max_bytes), MEMPOL_BYTES_LIMIT + 1, "swap_max", -ERANGE },
                { F(limits.min_ppm), 300000, "low_floor_pct", -EINVAL }, /* min above the low floor */
                { F(reclaim.low_gap_bytes), 32 * MIB, "reclaim_gap", -EINVAL }, /* low wmark above high */
                { F(reclaim.chunk_bytes), 100, "reclaim_chunk", -EINVAL },
                { F(reclaim.chunk_bytes), 2 * GIB, "reclaim_request_max", -EINVAL },
                { F(reclaim.thread_bytes_per_sec), 0, "reclaim_thread_rate", -EINVAL },
                { F(proactive.pressure_target_ppm), 0, "proactive_pressure_pct", -EINVAL },
                { F(throttle.period_usec), 999, "throttle_period", -EINVAL },
                { F(throttle.emulator_ppm), 0, "throttle_emulator_pct", -EINVAL },
                { F(host.ceiling_ppm), MEMPOL_PPM + 1, "host_ceiling_pct", -EINVAL },
                { F(host.start_gap_ppm), 30000, "host_gap", -EINVAL }, /* starts below its target */
                { F(host.target_gap_ppm), 950000, "host_gap", -EINVAL },
#undef F
        };
        MemPolicy p = defaults();
        const char *field = "x";

        assert_int_equal(mempol_validate(&p, &field), 0);
        assert_null(field);
        assert_int_equal(mempol_validate(NULL, &field), -EINVAL);
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                MemPolicy bad = defaults();

                if (cases[i].size == sizeof(uint64_t))
                        memcpy((char *) &bad + cases[i].offset, &cases[i].value, sizeof(uint64_t));
                else {
                        uint32_t v = (uint32_t) cases[i].value;
                        assert_int_equal(cases[i].size, sizeof(uint32_t));
                        memcpy((char *) &bad + cases[i].offset, &v, sizeof(v));
                }
                assert_int_equal(mempol_validate(&bad, &field), cases[i].r);
                assert_string_equal(field, cases[i].field);
        }
        p.proactive.swappiness = 201;
        assert_int_equal(mempol_validate(&p, &field), -EINVAL);
        assert_string_equal(field, "proactive_swappiness");
}

static void test_set_key(void **state) {
        MemPolicy p = defaults();
        const char *key = NULL;

        assert_int_equal(mempol_set_key(&p, "overhead", "512M", &key), 0);
        assert_null(key);
        assert_int_equal(p.limits.overhead_bytes, 512 * MIB);
        assert_int_equal(mempol_set_key(&p, "overhead", "4096", NULL), 0);
        assert_int_equal(p.limits.overhead_bytes, 4096);
        assert_int_equal(mempol_set_key(&p, "overhead", "1g", NULL), 0);
        assert_int_equal(p.limits.overhead_bytes, GIB);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "2.5%", NULL), 0);
        assert_int_equal(p.limits.overhead_ppm, 25000);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "0.03", NULL), 0);
        assert_int_equal(p.limits.overhead_ppm, 30000);
        assert_int_equal(mempol_set_key(&p, "mem_swap_max_pct", "150%", NULL), 0);
        assert_int_equal(p.limits.mem_swap_max_ppm, 1500000);
        assert_int_equal(mempol_set_key(&p, "swap_max", "max", NULL), 0);
        assert_int_equal(p.limits.swap_max_bytes, MEMPOL_MAX);
        assert_int_equal(mempol_set_key(&p, "swap_max", "0", NULL), 0);
        assert_int_equal(p.limits.swap_max_bytes, 0);
        assert_int_equal(mempol_set_key(&p, "proactive", "off", NULL), 0);
        assert_false(p.proactive.enabled);
        assert_int_equal(mempol_set_key(&p, "proactive_backoff_sec", "120", NULL), 0);
        assert_int_equal(p.proactive.backoff_usec, 120 * SEC);
        assert_int_equal(mempol_set_key(&p, "proactive_window_sec", "0", NULL), 0);
        assert_int_equal(p.proactive.window_usec, 0);
        assert_int_equal(mempol_set_key(&p, "proactive_swappiness", "-1", NULL), 0);
        assert_int_equal(p.proactive.swappiness, -1);
        assert_int_equal(mempol_set_key(&p, "reclaim_max_threads", "8", NULL), 0);
        assert_int_equal(p.reclaim.max_threads, 8);
        assert_int_equal(mempol_set_key(&p, "host_ceiling_pct", "90%", NULL), 0);
        assert_int_equal(p.host.ceiling_ppm, 900000);
        assert_int_equal(mempol_validate(&p, NULL), 0);

        /* refusals name the key and change nothing */
        assert_int_equal(mempol_set_key(&p, "overhead", "max", &key), -EINVAL);
        assert_string_equal(key, "overhead");
        assert_int_equal(p.limits.overhead_bytes, GIB);
        assert_int_equal(mempol_set_key(&p, "overhead", "2048T", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "overhead", "1 G", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "overhead", "1X", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "overhead", "1G ", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "overhead", "", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "overhead", "99999999999999999999", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "101%", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "1.5", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "2.12345%", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "overhead_pct", "%", NULL), -EINVAL);
        assert_int_equal(p.limits.overhead_ppm, 30000);
        assert_int_equal(mempol_set_key(&p, "proactive", "maybe", NULL), -EINVAL);
        assert_int_equal(mempol_set_key(&p, "proactive_swappiness", "201", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "proactive_backoff_sec", "18446744073709551615", NULL), -ERANGE);
        assert_int_equal(mempol_set_key(&p, "nope", "1", &key), -ENOKEY);
        assert_string_equal(key, "nope");
        assert_int_equal(mempol_set_key(&p, NULL, "1", NULL), -EINVAL);
}

/* ---- limits --------------------------------------------------------------- */

static void test_limits(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, true);

        /* 256 MiB + 2 % of 4 GiB, rounded up to a page */
        assert_int_equal(l.ram, 4 * GIB);
        assert_int_equal(l.overhead, 354336768);
        assert_int_equal(l.max, 4649304064);
        assert_int_equal(l.high, MEMPOL_MAX); /* never drives reclaim */
        assert_int_equal(l.swap_max, MEMPOL_MAX);
        assert_int_equal(l.min, 429494272); /* 10 %, down to a page */
        assert_int_equal(l.floor, l.min);
        assert_int_equal(l.low_floor, GIB);
        assert_int_equal(l.low, GIB);
        /* high = max - max(64 MiB, 2 %), low = max - max(128 MiB, 5 %) */
        assert_int_equal(l.wmark_high, 4556316672);
        assert_int_equal(l.wmark_low, 4416835584);
        assert_int_equal(l.min_guest, 2 * GIB);
        assert_true(l.balloon);

        /* small VMs: the fixed gaps win */
        l = limits_for(&p, 512 * MIB, false, false);
        assert_int_equal(l.max, 512 * MIB + 256 * MIB + 10739712);
        assert_int_equal(l.wmark_high, l.max - 64 * MIB);
        assert_int_equal(l.wmark_low, l.max - 128 * MIB);
}

static void check_invariants(const MemPolVmLimits *l) {
        const uint64_t v[] = { l->ram, l->overhead, l->max, l->min, l->low, l->low_floor, l->floor,
                               l->wmark_high, l->wmark_low, l->min_guest };

        for (size_t i = 0; i < ARRAY_SIZE(v); i++)
                assert_int_equal(v[i] % PAGE, 0);
        assert_true(l->floor <= l->min);
        assert_true(l->min <= l->low_floor);
        assert_true(l->low_floor <= l->wmark_low);
        assert_true(l->wmark_low <= l->wmark_high);
        assert_true(l->wmark_high < l->max);
        assert_true(l->max == l->ram + l->overhead);
        assert_true(l->min_guest <= l->ram);
        assert_int_equal(l->high, MEMPOL_MAX);
}

static void test_limits_edges(void **state) {
        static const uint64_t rams[] = { 1, 4095, 4096, 4097, MIB, 100 * MIB, GIB, 64 * GIB, 3 * 1024 * GIB,
                                         MEMPOL_BYTES_LIMIT - 1, MEMPOL_BYTES_LIMIT };
        MemPolicy p = defaults();
        MemPolVmSpec spec = { 0 };
        MemPolVmLimits l;

        assert_int_equal(mempol_vm_limits(&p, &spec, &l), -EINVAL); /* zero RAM */
        spec.ram_bytes = MEMPOL_BYTES_LIMIT + 1;
        assert_int_equal(mempol_vm_limits(&p, &spec, &l), -ERANGE);
        spec.ram_bytes = UINT64_MAX;
        assert_int_equal(mempol_vm_limits(&p, &spec, &l), -ERANGE);
        spec.ram_bytes = UINT64_MAX - 4095;
        assert_int_equal(mempol_vm_limits(&p, &spec, &l), -ERANGE);
        assert_int_equal(mempol_vm_limits(NULL, &spec, &l), -EINVAL);
        p.host.ceiling_ppm = 0; /* an invalid policy gives no limits */
        spec.ram_bytes = GIB;
        assert_int_equal(mempol_vm_limits(&p, &spec, &l), -EINVAL);

        p = defaults();
        for (size_t i = 0; i < ARRAY_SIZE(rams); i++)
                for (int pt = 0; pt < 2; pt++) {
                        l = limits_for(&p, rams[i], pt, true);
                        assert_true(l.ram >= rams[i] && l.ram - rams[i] < PAGE);
                        check_invariants(&l);
                }
        /* the largest RAM: every sum stays exact */
        l = limits_for(&p, MEMPOL_BYTES_LIMIT, false, false);
        assert_int_equal(l.max, MEMPOL_BYTES_LIMIT + pg_up(256 * MIB + MEMPOL_BYTES_LIMIT / 50));

        /* no overhead and no protection at all still keeps the order */
        p.limits.overhead_bytes = 0;
        p.limits.overhead_ppm = 0;
        p.limits.min_ppm = p.limits.low_floor_ppm = 0;
        l = limits_for(&p, 1, false, false);
        assert_int_equal(l.max, PAGE);
        assert_int_equal(l.floor, 0);
        check_invariants(&l);
}

static void test_limits_passthrough(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 64 * GIB, true, false);

        assert_int_equal(l.min, 64 * GIB); /* pinned */
        assert_int_equal(l.floor, 64 * GIB);
        assert_int_equal(l.low, 64 * GIB);
        assert_int_equal(l.max, 64 * GIB + 1642827776);
        /* watermarks inside the overhead: 2 % and 5 % of max are more than
         * the overhead allows, so a quarter and a half of it */
        assert_int_equal(l.wmark_high, 69951594496);
        assert_int_equal(l.wmark_low, 69540888576);
        assert_true(l.wmark_low > l.floor);
        assert_true(l.passthrough);
}

static void test_limits_swap_ceiling(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l;

        /* max + swap.max <= 150 % of RAM */
        p.limits.mem_swap_max_ppm = 1500000;
        l = limits_for(&p, 4 * GIB, false, false);
        assert_int_equal(l.swap_max, 6 * GIB - l.max);
        assert_true(l.max + l.swap_max <= 6 * GIB);
        /* its own swap.max when lower */
        p.limits.swap_max_bytes = 100 * MIB + 1;
        l = limits_for(&p, 4 * GIB, false, false);
        assert_int_equal(l.swap_max, 100 * MIB);
        /* the lower of bytes and ppm */
        p.limits.swap_max_bytes = MEMPOL_MAX;
        p.limits.mem_swap_max_bytes = 5 * GIB;
        l = limits_for(&p, 4 * GIB, false, false);
        assert_int_equal(l.swap_max, 5 * GIB - l.max);
        /* a ceiling exactly at max leaves no swap */
        p.limits.mem_swap_max_bytes = 4649304064;
        l = limits_for(&p, 4 * GIB, false, false);
        assert_int_equal(l.swap_max, 0);
        /* below RAM + overhead the VM does not fit */
        p.limits.mem_swap_max_bytes = 4649304064 - 1;
        {
                MemPolVmSpec spec = { .ram_bytes = 4 * GIB };
                assert_int_equal(mempol_vm_limits(&p, &spec, &l), -ERANGE);
        }
}

/* ---- samples --------------------------------------------------------------- */

static void test_sample(void **state) {
        MemPolCounters a = { .at_usec = 10 * SEC, .current = GIB, .refault_anon = 100, .refault_file = 50,
                             .pgsteal = 1000, .psi_some_total_usec = 5000 };
        MemPolCounters b = { .at_usec = 12 * SEC, .current = GIB + 8 * MIB, .refault_anon = 110,
                             .refault_file = 60, .pgsteal = 1000 + 2048, .psi_some_total_usec = 7000 };
        MemPolSample s;

        assert_int_equal(mempol_sample(&a, &b, &s), 0);
        assert_int_equal(s.interval_usec, 2 * SEC);
        assert_int_equal(s.current, GIB + 8 * MIB);
        assert_int_equal(s.refault_bytes, 20 * PAGE);
        assert_int_equal(s.reclaimed_bytes, 8 * MIB);
        assert_int_equal(s.pressure_ppm, 1000); /* 2 ms of 2 s */
        /* grew 8 MiB while reclaim took 8 MiB: 16 MiB in 2 s */
        assert_int_equal(s.growth_bytes_per_sec, 8 * MIB);

        /* avg10 counts when it says more (1.50 % = 15000 ppm) */
        b.psi_some_avg10 = 150;
        assert_int_equal(mempol_sample(&a, &b, &s), 0);
        assert_int_equal(s.pressure_ppm, 15000);

        /* counters that went backwards (group recreated) count as 0; a
         * shrinking VM does not grow */
        b = (MemPolCounters) { .at_usec = 11 * SEC, .current = MIB, .refault_anon = 1, .pgsteal = 3,
                               .psi_some_total_usec = 1 };
        assert_int_equal(mempol_sample(&a, &b, &s), 0);
        assert_int_equal(s.refault_bytes, 0);
        assert_int_equal(s.reclaimed_bytes, 0);
        assert_int_equal(s.pressure_ppm, 0);
        assert_int_equal(s.growth_bytes_per_sec, 0);

        /* stall longer than the interval is 100 %, not more */
        b = a;
        b.at_usec = a.at_usec + 1;
        b.psi_some_total_usec = UINT64_MAX;
        assert_int_equal(mempol_sample(&a, &b, &s), 0);
        assert_int_equal(s.pressure_ppm, MEMPOL_PPM);

        /* counters near 2^64 saturate instead of wrapping */
        a = (MemPolCounters) { .at_usec = 1 };
        b = (MemPolCounters) { .at_usec = 2, .current = UINT64_MAX, .refault_anon = UINT64_MAX,
                               .refault_file = UINT64_MAX, .pgsteal = UINT64_MAX };
        assert_int_equal(mempol_sample(&a, &b, &s), 0);
        assert_int_equal(s.refault_bytes, UINT64_MAX);
        assert_int_equal(s.reclaimed_bytes, UINT64_MAX);
        assert_int_equal(s.growth_bytes_per_sec, UINT64_MAX);

        /* time must move forward */
        assert_int_equal(mempol_sample(&a, &a, &s), -EINVAL);
        assert_int_equal(mempol_sample(&b, &a, &s), -EINVAL);
}

/* ---- protection ---------------------------------------------------------------- */

static void test_protect_raise(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;
        MemPolSample smp;

        mempol_vm_state_init(&s, &l);
        assert_int_equal(s.low, GIB);
        /* quiet: nothing moves */
        smp = sample(SEC, 3 * GIB, 0, 0);
        assert_false(mempol_working_set_cut(&p, &smp));
        assert_int_equal(mempol_protect_update(&p, &l, &s, &smp), GIB);
        assert_int_equal(s.quiet_usec, SEC);

        /* refaults above max(1 MiB/s, 0.01 % of usage/s): low rises by
         * what refaulted (a page at least), not toward usage */
        smp = sample(2 * SEC, 3 * GIB, 2 * MIB + 2, 0);
        assert_true(mempol_working_set_cut(&p, &smp));
        assert_int_equal(mempol_protect_update(&p, &l, &s, &smp), GIB + 2 * MIB + PAGE);
        assert_int_equal(s.quiet_usec, 0);
        /* 1 MiB/s is not above the floor */
        smp = sample(2 * SEC, 3 * GIB, 2 * MIB, 0);
        assert_false(mempol_working_set_cut(&p, &smp));
        /* 3 MiB/s at 32 GiB is below 0.01 %/s (3.36 MB/s) */
        smp = sample(SEC, 32 * GIB, 3 * MIB, 0);
        assert_false(mempol_working_set_cut(&p, &smp));
        smp = sample(SEC, 32 * GIB, 3436 * 1024, 0);
        assert_true(mempol_working_set_cut(&p, &smp));
        /* pressure above 1 % (ten times proactive reclaim's target: a VM
         * held at that target is not being cut) is a cut: it raises low by
         * the little that refaulted, and a stall with no refault (reclaim,
         * compaction) by nothing, yet it restarts the quiet clock */
        s.quiet_usec = 5 * SEC;
        smp = sample(SEC, 3 * GIB, 0, 10001);
        assert_true(mempol_working_set_cut(&p, &smp));
        assert_int_equal(mempol_protect_update(&p, &l, &s, &smp), GIB + 2 * MIB + PAGE);
        assert_int_equal(s.quiet_usec, 0);
        smp = sample(SEC, 3 * GIB, 40 * PAGE, 10001);
        assert_int_equal(mempol_protect_update(&p, &l, &s, &smp), GIB + 2 * MIB + 41 * PAGE);
        smp = sample(SEC, 3 * GIB, 0, 10000);
        assert_false(mempol_working_set_cut(&p, &smp));
        smp = sample(SEC, 3 * GIB, 0, 1001);
        assert_false(mempol_working_set_cut(&p, &smp));
        /* half of what refaulted when raise_ppm says so */
        p.protect.raise_ppm = 500000;
        smp = sample(SEC, 3 * GIB, 8 * MIB, 0);
        assert_int_equal(mempol_protect_update(&p, &l, &s, &smp), GIB + 6 * MIB + 41 * PAGE);
        p.protect.raise_ppm = MEMPOL_PPM;

        /* repeated cuts converge on usage and never pass it */
        smp = sample(SEC, 3 * GIB, 100 * MIB, 500000);
        for (int i = 0; i < 200; i++)
                assert_true(mempol_protect_update(&p, &l, &s, &smp) <= 3 * GIB);
        assert_int_equal(s.low, 3 * GIB);
        /* never above max, even when usage and refaults read absurdly high */
        smp = sample(SEC, UINT64_MAX, UINT64_MAX, 500000);
        for (int i = 0; i < 200; i++)
                mempol_protect_update(&p, &l, &s, &smp);
        assert_int_equal(s.low, pg_down(l.max));
}

static void test_protect_decay(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;
        MemPolSample quiet = sample(10 * SEC, 3 * GIB, 0, 0);
        uint64_t prev;

        mempol_vm_state_init(&s, &l);
        s.low = 3 * GIB;
        /* quiet for 30 s before anything decays */
        for (int i = 0; i < 3; i++)
                assert_int_equal(mempol_protect_update(&p, &l, &s, &quiet), 3 * GIB);
        /* then 0.1 %/s of (low - floor): 10 s = 1 % of 2 GiB */
        assert_int_equal(mempol_protect_update(&p, &l, &s, &quiet), 3 * GIB - pg_up(2 * GIB / 100));
        /* an interval that crosses the quiet point decays only past it */
        s.low = 3 * GIB;
        s.quiet_usec = 25 * SEC;
        assert_int_equal(mempol_protect_update(&p, &l, &s, &quiet), 3 * GIB - pg_up(2 * GIB / 200));
        /* slowly, monotonically, down to the floor and never below */
        prev = s.low;
        for (int i = 0; i < 10000; i++) {
                uint64_t low = mempol_protect_update(&p, &l, &s, &quiet);
                assert_true(low <= prev && low >= l.low_floor);
                prev = low;
        }
        assert_int_equal(s.low, l.low_floor);
        /* a low set below the floor (an old state) comes back up */
        s.low = 0;
        assert_int_equal(mempol_protect_update(&p, &l, &s, &quiet), l.low_floor);
        /* a huge interval counts as 10 minutes: 60 % of (low - floor) */
        s.low = 3 * GIB;
        quiet.interval_usec = UINT64_MAX;
        assert_int_equal(mempol_protect_update(&p, &l, &s, &quiet), 3 * GIB - pg_up(2 * GIB / 10 * 6));
}

static void test_protect_passthrough(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 8 * GIB, true, false);
        MemPolVmState s;
        MemPolSample cut = sample(SEC, 8 * GIB + 200 * MIB, 100 * MIB, 900000);

        mempol_vm_state_init(&s, &l);
        assert_int_equal(mempol_protect_update(&p, &l, &s, &cut), 8 * GIB);
        cut.pressure_ppm = 0;
        cut.refault_bytes = 0;
        cut.interval_usec = 3600 * SEC;
        assert_int_equal(mempol_protect_update(&p, &l, &s, &cut), 8 * GIB);
}

/* ---- background reclaim and throttling ------------------------------------- */

static void test_background(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;

        mempol_vm_state_init(&s, &l);
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_high), 0); /* at, not above */
        assert_false(s.reclaiming);
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_high + 1), l.wmark_high + PAGE - l.wmark_low);
        assert_true(s.reclaiming);
        /* between the watermarks it goes on (hysteresis) */
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_low + 5 * PAGE), 5 * PAGE);
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_low + 1), PAGE);
        assert_true(s.reclaiming);
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_low), 0);
        assert_false(s.reclaiming);
        /* below high again: stays off */
        assert_int_equal(mempol_background(&p, &l, &s, l.wmark_high - PAGE), 0);
        /* one request is capped */
        p.reclaim.request_max_bytes = 32 * MIB;
        assert_int_equal(mempol_background(&p, &l, &s, l.max), 32 * MIB);
        /* usage reading absurdly high: capped, no overflow */
        assert_int_equal(mempol_background(&p, &l, &s, UINT64_MAX), 32 * MIB);
}

static void test_throttle(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;
        MemPolThrottle t;

        mempol_vm_state_init(&s, &l);
        assert_false(mempol_throttle(&p, &l, &s, l.wmark_high, &t));
        assert_false(t.on);
        assert_int_equal(t.emulator_quota_usec, MEMPOL_QUOTA_MAX);
        assert_int_equal(t.io_quota_usec, MEMPOL_QUOTA_MAX);
        assert_true(mempol_throttle(&p, &l, &s, l.wmark_high + 1, &t));
        assert_true(t.on);
        assert_int_equal(t.period_usec, 100000);
        assert_int_equal(t.emulator_quota_usec, 20000); /* 20 % of one CPU */
        assert_int_equal(t.io_quota_usec, 20000);
        /* hysteresis: on until the low watermark */
        assert_false(mempol_throttle(&p, &l, &s, l.wmark_low + 1, &t));
        assert_true(t.on);
        assert_true(mempol_throttle(&p, &l, &s, l.wmark_low, &t));
        assert_false(t.on);
        assert_false(s.throttled);
        /* the kernel's minimum quota */
        p.throttle.emulator_ppm = 1;
        p.throttle.io_ppm = 500000;
        assert_true(mempol_throttle(&p, &l, &s, l.max, &t));
        assert_int_equal(t.emulator_quota_usec, 1000);
        assert_int_equal(t.io_quota_usec, 50000);
}

/* ---- proactive reclaim ------------------------------------------------------ */

static void test_proactive(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 16 * GIB, false, false);
        MemPolVmState s;
        MemPolSample smp = sample(10 * SEC, 10 * GIB, 0, 0);

        mempol_vm_state_init(&s, &l);
        /* the default step, 1 %/s: 10 GiB for 10 s is past the 64 MiB cap */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 64 * MIB);
        /* the arithmetic at 0.01 %/s (intervals of 10 s, longer than the
         * 6 s pressure window: each interval's pressure stands alone) */
        p.proactive.step_ppm_per_sec = 100;
        /* no pressure: 0.01 %/s x 10 s of 10 GiB = 10737418 B, down to a page */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 10735616);
        /* half the target: half the step */
        smp.pressure_ppm = 500;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 5365760);
        /* at the target: nothing, and back off for 10 s */
        smp.pressure_ppm = 1000;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
        assert_int_equal(s.backoff_usec, 10 * SEC);
        smp.pressure_ppm = 0;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
        assert_int_equal(s.backoff_usec, 0);
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 10735616);

        /* refaults that rise (and are above the noise floor): back off */
        smp.refault_bytes = 20 * MIB; /* 2 MiB/s */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
        assert_int_equal(s.backoff_usec, 10 * SEC);
        s.backoff_usec = 0;
        /* steady refaults do not rise */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 10735616);
        /* rising but below 1 MiB/s: noise */
        smp.refault_bytes = 0;
        mempol_proactive(&p, &l, &s, &smp);
        smp.refault_bytes = 5 * MIB;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 10735616);

        /* never below max(floor, low) */
        smp.refault_bytes = 0;
        s.low = 10 * GIB - 3 * PAGE - 5;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 3 * PAGE);
        s.low = 10 * GIB;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
        s.low = l.low;
        /* capped per interval; usage near 2^64 and a huge interval do not overflow */
        smp.current = UINT64_MAX;
        smp.interval_usec = UINT64_MAX;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 64 * MIB);
        /* disabled */
        p.proactive.enabled = false;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
}

/* Pressure is judged over a window (6 s), not one look: a stall that
 * fills 0.3 % of one second slows the step, a sustained one stops it. */
static void test_proactive_window(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;
        MemPolSample smp = sample(SEC, 2 * GIB, 0, 3000);
        unsigned looks = 1, quiet = 0;

        mempol_vm_state_init(&s, &l);
        /* a sixth of the way: 500 ppm, half the target, half of 1 % of 2 GiB */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), pg_down(2 * GIB / 100 / 2));
        assert_int_equal(s.pressure_avg_ppm, 500);
        assert_int_equal(s.backoff_usec, 0);
        /* sustained: the average reaches the target within a few looks */
        while (mempol_proactive(&p, &l, &s, &smp) > 0)
                looks++;
        assert_int_equal(looks, 2); /* 500, 916, then 1263 */
        assert_int_equal(s.backoff_usec, 10 * SEC);
        /* it decays: one quiet look leaves it at 1053, still at the
         * target (the back-off starts again), the next at 878; then the
         * back-off's 10 s */
        smp.pressure_ppm = 0;
        while (mempol_proactive(&p, &l, &s, &smp) == 0)
                quiet++;
        assert_int_equal(quiet, 11);
        assert_true(s.pressure_avg_ppm < 1000);
        /* window 0: each interval alone */
        p.proactive.window_usec = 0;
        smp.pressure_ppm = 1000;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
        assert_int_equal(s.pressure_avg_ppm, 1000);
}

static void test_proactive_passthrough(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 8 * GIB, true, false);
        MemPolVmState s;
        MemPolSample smp = sample(600 * SEC, 8 * GIB + 10 * MIB, 0, 0);

        mempol_vm_state_init(&s, &l);
        /* only the overhead above RAM */
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 10 * MIB);
        smp.current = 8 * GIB;
        assert_int_equal(mempol_proactive(&p, &l, &s, &smp), 0);
}

static void test_vm_tick(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, false);
        MemPolVmState s;
        MemPolVmDecision d;
        MemPolSample smp = sample(SEC, 3 * GIB, 0, 0);

        mempol_vm_state_init(&s, &l);
        smp.growth_bytes_per_sec = 7 * MIB;
        assert_int_equal(mempol_vm_tick(&p, &l, true, &s, &smp, &d), 0);
        assert_int_equal(d.background_bytes, 0);
        assert_int_equal(d.proactive_bytes, 3 * GIB / 100 / PAGE * PAGE); /* 1 %/s */
        assert_int_equal(d.reclaim_bytes, d.proactive_bytes);
        assert_int_equal(d.chunk_bytes, 16 * MIB); /* written 16 MiB at a time */
        assert_int_equal(d.swappiness, 100);
        assert_false(d.low_changed);
        assert_false(d.throttle_changed);
        assert_int_equal(d.growth_bytes_per_sec, 7 * MIB);
        assert_int_equal(mempol_vm_tick(&p, &l, false, &s, &smp, &d), 0);
        assert_int_equal(d.swappiness, -1); /* the kernel does not take it */

        /* above the high watermark: background reclaim replaces proactive,
         * the emulator and io groups are throttled */
        smp.current = l.wmark_high + MIB;
        assert_int_equal(mempol_vm_tick(&p, &l, true, &s, &smp, &d), 0);
        assert_int_equal(d.background_bytes, l.wmark_high + MIB - l.wmark_low);
        assert_int_equal(d.proactive_bytes, 0);
        assert_int_equal(d.reclaim_bytes, d.background_bytes);
        assert_int_equal(d.chunk_bytes, 16 * MIB);
        assert_int_equal(d.swappiness, -1);
        assert_true(d.throttle_changed && d.throttle.on);
        /* a cut raises low */
        smp.refault_bytes = 64 * MIB;
        assert_int_equal(mempol_vm_tick(&p, &l, true, &s, &smp, &d), 0);
        assert_true(d.working_set_cut && d.low_changed && d.low > GIB);
        assert_false(d.throttle_changed);
        /* down at the low watermark: everything off */
        smp = sample(SEC, l.wmark_low, 0, 0);
        assert_int_equal(mempol_vm_tick(&p, &l, true, &s, &smp, &d), 0);
        assert_int_equal(d.background_bytes, 0);
        assert_true(d.throttle_changed && !d.throttle.on);
        assert_int_equal(mempol_vm_tick(&p, &l, true, NULL, &smp, &d), -EINVAL);
}

/* ---- the pool --------------------------------------------------------------- */

static void test_pool_threads(void **state) {
        MemPolicy p = defaults();
        MemPolPoolDemand d = { 0 };

        assert_int_equal(mempol_pool_threads(&p, 16, &d), 0);
        mempol_pool_demand_add(&d, UINT64_MAX, 0); /* no request: not counted */
        assert_int_equal(d.vms, 0);
        assert_int_equal(mempol_pool_threads(&p, 16, &d), 0);
        /* a tiny request still gets a worker */
        mempol_pool_demand_add(&d, 0, PAGE);
        assert_int_equal(mempol_pool_threads(&p, 16, &d), 1);
        assert_int_equal(mempol_pool_threads(&p, 0, &d), 1); /* 0 CPUs counts as 1 */

        /* 10 VMs growing 400 MiB/s together, 1 GiB backlog to drain in 1 s:
         * 1.4 GiB/s at 512 MiB/s per worker = 3 */
        d = (MemPolPoolDemand) { 0 };
        for (int i = 0; i < 10; i++)
                mempol_pool_demand_add(&d, 40 * MIB, 1024 * MIB / 10 + (i == 0 ? 1024 * MIB % 10 : 0));
        assert_int_equal(d.vms, 10);
        assert_int_equal(mempol_pool_threads(&p, 16, &d), 3);
        /* exactly 512 MiB/s: one, a byte more: two */
        d = (MemPolPoolDemand) { .vms = 4, .growth_bytes_per_sec = 512 * MIB };
        assert_int_equal(mempol_pool_threads(&p, 16, &d), 1);
        d.growth_bytes_per_sec++;
        assert_int_equal(mempol_pool_threads(&p, 16, &d), 2);

        /* never more than the cores, the VMs, or the configured maximum */
        d = (MemPolPoolDemand) { 0 };
        for (int i = 0; i < 100; i++)
                mempol_pool_demand_add(&d, UINT64_MAX / 2, UINT64_MAX / 2);
        assert_int_equal(d.growth_bytes_per_sec, UINT64_MAX); /* saturated */
        assert_int_equal(mempol_pool_threads(&p, 8, &d), 8);
        assert_int_equal(mempol_pool_threads(&p, 1024, &d), 100);
        p.reclaim.max_threads = 3;
        assert_int_equal(mempol_pool_threads(&p, 8, &d), 3);
        for (unsigned cpus = 1; cpus < 64; cpus++)
                assert_true(mempol_pool_threads(&p, cpus, &d) <= cpus);
}

/* ---- the host ceiling ----------------------------------------------------------- */

static void test_host_plan_under(void **state) {
        MemPolicy p = defaults();
        MemPolHostVm vms[1] = { { .current = 10 * GIB, .floor = GIB, .low = GIB } };
        MemPolHostVmPlan out[1] = { { 123, 456 } };
        MemPolHostPlan plan;

        /* 100 GiB host: ceiling 95 GiB, act above 94, down to 93 */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 94 * GIB), vms, 1, out, &plan), 0);
        assert_int_equal(plan.ceiling, 95 * GIB);
        assert_int_equal(plan.start, 94 * GIB);
        assert_int_equal(plan.target, 93 * GIB);
        assert_int_equal(plan.deficit, 0);
        assert_int_equal(plan.headroom, 0);
        assert_int_equal(out[0].reclaim, 0); /* cleared */
        assert_int_equal(out[0].balloon, 0);
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 90 * GIB), vms, 1, out, &plan), 0);
        assert_int_equal(plan.headroom, 4 * GIB);

        /* expected growth counts: 93 GiB used + 1.5 GiB to come is above
         * the start, and reclaim now makes room for it */
        {
                MemPolHostUse use = { .total = 100 * GIB, .used = 93 * GIB,
                                      .growth = mempol_host_growth(GIB, 3 * SEC / 2) };

                assert_int_equal(use.growth, 3 * GIB / 2);
                assert_int_equal(mempol_host_plan(&p, &use, vms, 1, out, &plan), 0);
                assert_int_equal(plan.projected, 93 * GIB + 3 * GIB / 2);
                assert_int_equal(plan.deficit, 3 * GIB / 2);
                assert_int_equal(out[0].reclaim, 3 * GIB / 2);
                assert_int_equal(plan.headroom, 0);
                use.used = use.growth = UINT64_MAX;
                assert_int_equal(mempol_host_plan(&p, &use, vms, 1, out, &plan), 0);
                assert_int_equal(plan.projected, UINT64_MAX);
                assert_int_equal(out[0].reclaim, 9 * GIB); /* all it has above its floor */
        }
        assert_int_equal(mempol_host_growth(100 * MIB, 3 * SEC / 2), 150 * MIB);
        assert_int_equal(mempol_host_growth(UINT64_MAX, UINT64_MAX), UINT64_MAX);
        assert_int_equal(mempol_host_plan(&p, NULL, vms, 1, out, &plan), -EINVAL);
        assert_int_equal(mempol_host_plan(&p, &HU(0, 1), vms, 1, out, &plan), -EINVAL);
        assert_int_equal(mempol_host_plan(&p, &HU(1, 1), NULL, 1, out, &plan), -EINVAL);
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 99 * GIB), NULL, 0, NULL, &plan), 0);
        assert_int_equal(plan.shortfall, 6 * GIB);
}

static void test_host_plan_priority(void **state) {
        MemPolicy p = defaults();
        /* index order deliberately not priority order */
        MemPolHostVm vms[] = {
                { .priority = 5, .current = 8 * GIB, .floor = GIB, .low = 2 * GIB },  /* high */
                { .priority = 0, .current = 4 * GIB, .floor = GIB, .low = 3 * GIB },  /* low: 1 GiB above low */
                { .priority = 1, .current = 6 * GIB, .floor = GIB, .low = 2 * GIB },  /* mid */
                { .priority = 0, .current = 3 * GIB, .floor = GIB, .low = 2 * GIB },  /* low: 1 GiB above low */
        };
        MemPolHostVmPlan out[ARRAY_SIZE(vms)];
        MemPolHostPlan plan;

        /* deficit 1.5 GiB: the two lowest give from above their low, half
         * each (same room) */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 93 * GIB + 3 * GIB / 2), vms, 4, out, &plan), 0);
        assert_int_equal(plan.deficit, 3 * GIB / 2);
        assert_int_equal(out[1].reclaim, 3 * GIB / 4);
        assert_int_equal(out[3].reclaim, 3 * GIB / 4);
        assert_int_equal(out[0].reclaim + out[2].reclaim, 0);
        assert_int_equal(plan.reclaim, 3 * GIB / 2);
        assert_int_equal(plan.shortfall, 0);

        /* deficit 5 GiB: priority 0 goes down to its floors (its protected
         * working sets too) before priority 1 gives anything */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 98 * GIB), vms, 4, out, &plan), 0);
        assert_int_equal(out[1].reclaim, 3 * GIB);
        assert_int_equal(out[3].reclaim, 2 * GIB);
        assert_int_equal(out[0].reclaim + out[2].reclaim, 0);

        /* deficit 7 GiB: then priority 1, above its low first */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 100 * GIB), vms, 4, out, &plan), 0);
        assert_int_equal(out[2].reclaim, 2 * GIB);
        assert_int_equal(out[0].reclaim, 0);

        /* deficit 15 GiB: priority 1 to its floor (5), priority 5 the rest
         * of what is above its low (5 of 6) */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 108 * GIB), vms, 4, out, &plan), 0);
        assert_int_equal(out[1].reclaim, 3 * GIB);
        assert_int_equal(out[3].reclaim, 2 * GIB);
        assert_int_equal(out[2].reclaim, 5 * GIB);
        assert_int_equal(out[0].reclaim, 5 * GIB);
        assert_int_equal(plan.reclaim, 15 * GIB);

        /* deficit 20 GiB: everyone at the floor, 2 short */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 113 * GIB), vms, 4, out, &plan), 0);
        assert_int_equal(out[0].reclaim, 7 * GIB);
        assert_int_equal(plan.reclaim, 17 * GIB);
        assert_int_equal(plan.shortfall, 3 * GIB);
        for (size_t i = 0; i < ARRAY_SIZE(vms); i++)
                assert_int_equal(vms[i].current - out[i].reclaim, vms[i].floor);
}

static void test_host_plan_proportional(void **state) {
        MemPolicy p = defaults();
        /* same priority, room 1, 2 and 4 pages above low; deficit 3 pages:
         * 3/7 of each, floors 0, 0, 1 = 1; the remainder 2 a page each in
         * index order */
        MemPolHostVm vms[] = {
                { .current = 11 * PAGE, .low = 10 * PAGE },
                { .current = 12 * PAGE, .low = 10 * PAGE },
                { .current = 14 * PAGE, .low = 10 * PAGE },
        };
        MemPolHostVmPlan out[3];
        MemPolHostPlan plan;

        p.host = (MemPolHostParams) { .ceiling_ppm = MEMPOL_PPM, .start_gap_ppm = 0, .target_gap_ppm = 0 };
        assert_int_equal(mempol_host_plan(&p, &HU(1000 * PAGE, 1000 * PAGE + 3 * PAGE - 100), vms, 3, out, &plan), 0);
        assert_int_equal(out[0].reclaim, PAGE);
        assert_int_equal(out[1].reclaim, PAGE);
        assert_int_equal(out[2].reclaim, PAGE);
        /* a deficit below a page still asks for one */
        assert_int_equal(mempol_host_plan(&p, &HU(1000 * PAGE, 1000 * PAGE + 1), vms, 3, out, &plan), 0);
        assert_int_equal(plan.reclaim, PAGE);
}

static void test_host_plan_floor_and_balloon(void **state) {
        MemPolicy p = defaults();
        MemPolHostVm vms[] = {
                /* passthrough: floor says 1 GiB but RAM is pinned: only the
                 * 512 MiB above RAM */
                { .priority = 0, .current = 8 * GIB + 512 * MIB, .floor = GIB, .low = 0, .ram = 8 * GIB,
                  .passthrough = true },
                /* at its floor already, with a balloon */
                { .priority = 1, .current = 2 * GIB, .floor = 2 * GIB, .low = 2 * GIB, .ram = 4 * GIB,
                  .balloon_room = 3 * GIB },
                { .priority = 0, .current = GIB, .floor = GIB, .low = GIB, .ram = 2 * GIB, .balloon_room = GIB },
        };
        MemPolHostVmPlan out[3];
        MemPolHostPlan plan;

        /* deficit 3 GiB: 512 MiB of overhead, then balloons lowest first */
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 96 * GIB), vms, 3, out, &plan), 0);
        assert_int_equal(out[0].reclaim, 512 * MIB);
        assert_int_equal(out[1].reclaim + out[2].reclaim, 0);
        assert_int_equal(out[2].balloon, GIB);
        assert_int_equal(out[1].balloon, 3 * GIB / 2);
        assert_int_equal(plan.balloon, 5 * GIB / 2);
        assert_int_equal(plan.shortfall, 0);

        /* everyone at the floor, no balloon room left: nothing, all short */
        vms[0].current = 8 * GIB;
        vms[1].balloon_room = vms[2].balloon_room = 0;
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 96 * GIB), vms, 3, out, &plan), 0);
        assert_int_equal(plan.reclaim + plan.balloon, 0);
        assert_int_equal(plan.shortfall, 3 * GIB);
        /* usage below the floor (it happens: the guest freed memory) */
        vms[2].current = 0;
        assert_int_equal(mempol_host_plan(&p, &HU(100 * GIB, 96 * GIB), vms, 3, out, &plan), 0);
        assert_int_equal(plan.reclaim, 0);
}

static void test_host_plan_overflow(void **state) {
        MemPolicy p = defaults();
        MemPolHostVm vms[] = {
                { .priority = UINT32_MAX, .current = UINT64_MAX, .balloon_room = UINT64_MAX },
                { .priority = 0, .current = UINT64_MAX, .balloon_room = UINT64_MAX },
        };
        MemPolHostVmPlan out[2];
        MemPolHostPlan plan;

        assert_int_equal(mempol_host_plan(&p, &HU(UINT64_MAX, UINT64_MAX), vms, 2, out, &plan), 0);
        assert_true(plan.ceiling < UINT64_MAX && plan.target < plan.start && plan.start < plan.ceiling);
        assert_int_equal(plan.deficit, UINT64_MAX - plan.target);
        /* the lowest priority covers it alone */
        assert_int_equal(out[1].reclaim, pg_up(plan.deficit));
        assert_int_equal(out[0].reclaim, 0);
        assert_int_equal(plan.shortfall, 0);
}

static void test_host_vm(void **state) {
        MemPolicy p = defaults();
        MemPolVmSpec spec = { .ram_bytes = 4 * GIB, .balloon = true, .priority = 7 };
        MemPolVmLimits l;
        MemPolVmState s;
        MemPolHostVm v;

        assert_int_equal(mempol_vm_limits(&p, &spec, &l), 0);
        mempol_vm_state_init(&s, &l);
        s.low = 3 * GIB;
        mempol_host_vm(&l, &s, 5 * GIB, 3 * GIB, &v);
        assert_int_equal(v.priority, 7);
        assert_int_equal(v.current, 5 * GIB);
        assert_int_equal(v.floor, l.floor);
        assert_int_equal(v.low, 3 * GIB);
        assert_int_equal(v.balloon_room, GIB); /* 3 GiB now, 2 GiB at least */
        mempol_host_vm(&l, &s, 5 * GIB, GIB, &v);
        assert_int_equal(v.balloon_room, 0);
}

/* ---- balloon and headroom -------------------------------------------------------- */

static void test_balloon(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 8 * GIB, false, true), nb;
        MemPolBalloonInput in = { .current = 6 * GIB, .actual = 8 * GIB, .target = 8 * GIB };
        uint64_t t;

        /* nothing asked, nothing over: RAM */
        assert_false(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 8 * GIB);
        /* the host asks 1 GiB */
        in.host_ask = GIB;
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 7 * GIB);
        /* asked again before the guest moved: from the target, not twice */
        in.target = t;
        assert_false(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 7 * GIB);
        /* the guest is at 7 GiB and the host still short 1 GiB */
        in.actual = 7 * GIB;
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 6 * GIB);
        /* never below min_guest (50 %) */
        in.host_ask = 100 * GIB;
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 4 * GIB);
        in.target = in.actual = t;

        /* pressure gone but reclaiming: hold */
        in.host_ask = 0;
        in.reclaiming = true;
        in.host_headroom = 100 * GIB;
        assert_false(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 4 * GIB);
        /* half the host headroom per tick */
        in.reclaiming = false;
        in.host_headroom = 2 * GIB;
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 5 * GIB);
        /* room for twice the rest: all of RAM back */
        in.target = t;
        in.host_headroom = 6 * GIB;
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, 8 * GIB);

        /* far over the soft target (past halfway to max): usage - wmark_low */
        in = (MemPolBalloonInput) { .current = l.max - 1, .actual = 8 * GIB, .target = 8 * GIB };
        assert_true(mempol_balloon_decide(&l, &in, &t));
        assert_int_equal(t, pg_down(8 * GIB - (l.max - 1 - l.wmark_low)));
        /* just over the soft target: reclaim handles it */
        in.current = l.wmark_high + PAGE;
        assert_false(mempol_balloon_decide(&l, &in, &t));

        /* no balloon: always RAM */
        nb = limits_for(&p, 8 * GIB, false, false);
        in.host_ask = GIB;
        in.target = 0;
        assert_true(mempol_balloon_decide(&nb, &in, &t));
        assert_int_equal(t, 8 * GIB);
}

static void test_headroom(void **state) {
        MemPolicy p = defaults();
        MemPolVmLimits l = limits_for(&p, 4 * GIB, false, true);
        MemPolHeadroom h;

        mempol_headroom(&l, GIB, 3 * GIB, &h);
        assert_int_equal(h.grow_bytes, l.wmark_high - GIB);
        assert_int_equal(h.limit_bytes, l.max - GIB);
        assert_int_equal(h.reclaimable_bytes, GIB - l.floor);
        assert_int_equal(h.balloon_bytes, GIB);
        mempol_headroom(&l, UINT64_MAX, 0, &h);
        assert_int_equal(h.grow_bytes, 0);
        assert_int_equal(h.limit_bytes, 0);
        assert_int_equal(h.balloon_bytes, 0);
        l.balloon = false;
        mempol_headroom(&l, 0, 4 * GIB, &h);
        assert_int_equal(h.balloon_bytes, 0);
        assert_int_equal(h.reclaimable_bytes, 0);
}

/* ---- dmem ------------------------------------------------------------------------ */

static void test_dmem_kernel_high(void **state) {
        MemPolicy p = defaults();
        MemPolDmemVm v[2] = {
                { .spec = { .max = 8 * GIB, .soft = 4 * GIB, .low = 2 * GIB, .min = GIB }, .current = 6 * GIB },
                { .spec = { .max = MEMPOL_MAX, .soft = MEMPOL_MAX, .low = 0, .min = 0 }, .current = GIB },
        };
        MemPolDmemLimits d[2];

        /* the kernel orders eviction: high = soft, nothing else moves */
        assert_int_equal(mempol_dmem_decide(&p, true, v, 2, d), 0);
        assert_false(v[0].over);
        assert_true(d[0].write_high);
        assert_int_equal(d[0].high, 4 * GIB);
        assert_int_equal(d[0].low, 2 * GIB);
        assert_int_equal(d[0].min, GIB);
        assert_int_equal(d[0].max, 8 * GIB);
        assert_int_equal(d[1].high, MEMPOL_MAX);
        assert_int_equal(d[1].max, MEMPOL_MAX);
        assert_int_equal(mempol_dmem_decide(&p, true, v, 0, NULL), 0);
}

static void test_dmem_stock(void **state) {
        MemPolicy p = defaults();
        const uint64_t restore_a = 4 * GIB - 4 * GIB / 20; /* 5 % of 4 GiB > 64 MiB */
        MemPolDmemVm v[3] = {
                { .spec = { .max = 8 * GIB, .soft = 4 * GIB, .low = 2 * GIB, .min = GIB }, .current = 4 * GIB },
                { .spec = { .max = 8 * GIB, .soft = 6 * GIB, .low = GIB, .min = 0 }, .current = 5 * GIB },
                /* no soft target: its soft target is "max" */
                { .spec = { .max = MEMPOL_MAX, .soft = MEMPOL_MAX, .low = 512 * MIB }, .current = 7 * GIB },
        };
        MemPolDmemLimits d[3];

        /* nobody over: the configured lows (first class = tier 2) */
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 0);
        assert_int_equal(d[0].low, 2 * GIB);
        assert_int_equal(d[1].low, GIB);
        assert_int_equal(d[2].low, 512 * MIB);
        assert_false(d[0].write_high);
        assert_int_equal(d[0].high, MEMPOL_MAX);

        /* a is over: the first class holds only over-soft memory; a goes
         * down to its restore point, everyone else is held at soft */
        v[0].current = 4 * GIB + 1;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 3);
        assert_true(v[0].over);
        assert_false(v[1].over || v[2].over);
        assert_int_equal(d[0].low, restore_a);
        assert_int_equal(d[0].min, GIB); /* min never moves */
        assert_int_equal(d[1].low, 6 * GIB);
        assert_int_equal(d[2].low, MEMPOL_MAX);
        assert_true(d[0].low_changed && d[1].low_changed && d[2].low_changed);

        /* back under soft but not at the restore point: still over */
        v[0].current = restore_a + 1;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 0);
        assert_true(v[0].over);
        /* b goes over too: only b's low changes */
        v[1].current = 6 * GIB + 1;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 1);
        assert_true(v[1].over && d[1].low_changed && !d[0].low_changed);
        assert_int_equal(d[1].low, 6 * GIB - 6 * GIB / 20);
        /* a restored, b still over: a is held at its soft target */
        v[0].current = restore_a;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 1);
        assert_false(v[0].over);
        assert_int_equal(d[0].low, 4 * GIB);
        /* b restored: everything back to the configured lows */
        v[1].current = 6 * GIB - 6 * GIB / 20;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 3);
        assert_int_equal(d[0].low, 2 * GIB);
        assert_int_equal(d[1].low, GIB);
        assert_int_equal(d[2].low, 512 * MIB);

        /* the restore point never lies below low (a's own low reads as
         * unchanged: changes are against the spec passed in) */
        v[0].spec.low = 4 * GIB - MIB;
        v[0].current = 4 * GIB + 1;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 2);
        assert_false(d[0].low_changed);
        assert_int_equal(d[0].low, 4 * GIB - MIB);
        /* a kernel that gains dmem.high ends it: b and c back to their lows */
        assert_int_equal(mempol_dmem_decide(&p, true, v, 3, d), 2);
        assert_int_equal(d[1].low, GIB);
        assert_int_equal(d[2].low, 512 * MIB);
        assert_false(v[0].over);
        assert_int_equal(d[0].low, 4 * GIB - MIB);
        assert_int_equal(d[0].high, 4 * GIB);

        /* a soft target above max is max */
        v[1].spec = (MemPolDmemSpec) { .max = 3 * GIB, .soft = MEMPOL_MAX, .low = GIB };
        v[0].current = 0;
        v[1].current = 3 * GIB;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 0);
        assert_false(v[1].over);
        v[1].current = 3 * GIB + 1;
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), 3);
        assert_true(v[1].over);
        assert_int_equal(d[1].low, 3 * GIB - 3 * GIB / 20);
        assert_int_equal(d[0].low, 4 * GIB);

        /* min <= low <= soft <= max */
        v[1].spec = (MemPolDmemSpec) { .max = 8, .soft = 4, .low = 5, .min = 1 };
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), -EINVAL);
        v[1].spec = (MemPolDmemSpec) { .max = 8, .soft = 9, .low = 1, .min = 1 };
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), -EINVAL);
        v[1].spec = (MemPolDmemSpec) { .max = 8, .soft = 4, .low = 1, .min = 2 };
        assert_int_equal(mempol_dmem_decide(&p, false, v, 3, d), -EINVAL);
        assert_int_equal(mempol_dmem_decide(&p, false, NULL, 1, d), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_set_key),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_limits_edges),
                cmocka_unit_test(test_limits_passthrough),
                cmocka_unit_test(test_limits_swap_ceiling),
                cmocka_unit_test(test_sample),
                cmocka_unit_test(test_protect_raise),
                cmocka_unit_test(test_protect_decay),
                cmocka_unit_test(test_protect_passthrough),
                cmocka_unit_test(test_background),
                cmocka_unit_test(test_throttle),
                cmocka_unit_test(test_proactive),
                cmocka_unit_test(test_proactive_window),
                cmocka_unit_test(test_proactive_passthrough),
                cmocka_unit_test(test_vm_tick),
                cmocka_unit_test(test_pool_threads),
                cmocka_unit_test(test_host_plan_under),
                cmocka_unit_test(test_host_plan_priority),
                cmocka_unit_test(test_host_plan_proportional),
                cmocka_unit_test(test_host_plan_floor_and_balloon),
                cmocka_unit_test(test_host_plan_overflow),
                cmocka_unit_test(test_host_vm),
                cmocka_unit_test(test_balloon),
                cmocka_unit_test(test_headroom),
                cmocka_unit_test(test_dmem_kernel_high),
                cmocka_unit_test(test_dmem_stock),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
