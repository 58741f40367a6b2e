/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Kernel model: CFS bandwidth (cpu.max, cpu.max.burst, cpu.max.runtime,
 * cpu.stat) on v2 and v1, driven through the backend ops.
 */
#include "model-fixture.h"

#include "common/macros.h"

#define VCPUS "vm/vcpus"
#define MAX_BW_USEC ((UINT64_C(1) << 44) - 1)

/* One VM with one vCPU thread; returns the thread (== pid). */
static pid_t setup_vm(Fx *f) {
        fx_v2_subtree(f, "+cpu +memory");
        fx_v2_vm(f, "vm");
        return fx_v2_vcpu_process(f, "vm");
}

static uint64_t runtime_usec(Fx *f, const char *group) {
        return fx_u64(f, group, "cpu.max.runtime");
}

/* __refill_cfs_bandwidth_runtime(): runtime = min(runtime + quota,
 * quota + burst), both on a bandwidth write and at a period boundary. */
static void test_refill_rule(void **state) {
        static const struct {
                uint64_t runtime, quota, burst, want;
        } cases[] = {
                { 0, 20000, 0, 20000 },          { 5000, 20000, 0, 20000 },
                { 5000, 20000, 50000, 25000 },   { 60000, 20000, 50000, 70000 },
                { 70000, 20000, 50000, 70000 },  { 0, 20000, 100000, 20000 },
                { 100000, 20000, 100000, 120000 },
        };

        for (int via_timer = 0; via_timer <= 1; via_timer++)
                for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                        Fx *f = fx_new_v2(true);

                        setup_vm(f);
                        assert_int_equal(fx_writef(f, VCPUS, "cpu.max", "%" PRIu64 " 100000",
                                                   cases[i].quota),
                                         0);
                        assert_int_equal(fx_writef(f, VCPUS, "cpu.max.burst", "%" PRIu64,
                                                   cases[i].burst),
                                         0);
                        assert_int_equal(fx_writef(f, VCPUS, "cpu.max.runtime", "%" PRIu64,
                                                   cases[i].runtime),
                                         0);
                        if (via_timer)
                                km_advance(f->m, 100000); /* first period boundary */
                        else
                                assert_int_equal(fx_writef(f, VCPUS, "cpu.max.burst",
                                                           "%" PRIu64, cases[i].burst),
                                                 0);
                        assert_int_equal(runtime_usec(f, VCPUS), cases[i].want);
                        fx_free(f);
                }
}

/* tg_set_cfs_bandwidth() validation; stock kernels bound burst by quota. */
static void test_burst_validation(void **state) {
        static const struct {
                bool patched;
                const char *max, *burst;
                int r;
        } cases[] = {
                { false, "20000 100000", "20000", 0 },
                { false, "20000 100000", "20001", -EINVAL },
                { true, "20000 100000", "20001", 0 },
                { true, "20000 100000", "200000", 0 },
                { true, "20000 100000", "17592186024415", 0 },       /* sum == 2^44-1 */
                { true, "20000 100000", "17592186024416", -EINVAL }, /* sum above */
                { true, "20000 100000", "17592186044416", -EINVAL }, /* burst alone above */
                { false, "max 100000", "5000000", 0 },               /* unlimited: no bound */
                { true, "max 100000", "17592186044416", 0 },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                Fx *f = fx_new_v2(cases[i].patched);

                setup_vm(f);
                assert_int_equal(fx_write(f, VCPUS, "cpu.max", cases[i].max), 0);
                assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", cases[i].burst), cases[i].r);
                char want[32];

                snprintf(want, sizeof(want), "%s\n", cases[i].r < 0 ? "0" : cases[i].burst);
                fx_expect(f, VCPUS, "cpu.max.burst", want);
                fx_free(f);
        }

        /* With a burst above quota accepted while unlimited, a stock
         * kernel then refuses to set that quota. */
        Fx *f = fx_new_v2(false);
        setup_vm(f);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", "50000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000"), -EINVAL);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "50000"), 0);
        fx_free(f);
}

/* cpu_period_quota_parse() and the period/quota bounds. */
static void test_cpu_max_format(void **state) {
        static const struct {
                const char *in;
                int r;
                const char *after;
        } steps[] = {
                { "max", 0, "max 100000\n" },
                { "20000", 0, "20000 100000\n" },
                { "20000 50000", 0, "20000 50000\n" },
                { "max 50000", 0, "max 50000\n" },
                { "30000 100000\n", 0, "30000 100000\n" },
                { "999 100000", -EINVAL, "30000 100000\n" },
                { "1000 999", -EINVAL, "30000 100000\n" },
                { "1000 1000001", -EINVAL, "30000 100000\n" },
                { "17592186044416 1000000", -EINVAL, "30000 100000\n" },
                { "", -EINVAL, "30000 100000\n" },
                { "abc 100000", -EINVAL, "30000 100000\n" },
                { "20000 100000 7", -EINVAL, "30000 100000\n" },
                { "1000 1000", 0, "1000 1000\n" },
                { "17592186044415 1000000", 0, "17592186044415 1000000\n" },
        };
        Fx *f = fx_new_v2(false);

        setup_vm(f);
        fx_expect(f, VCPUS, "cpu.max", "max 100000\n");
        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                assert_int_equal(fx_write(f, VCPUS, "cpu.max", steps[i].in), steps[i].r);
                fx_expect(f, VCPUS, "cpu.max", steps[i].after);
        }
        /* The root task group has no bandwidth and no cpu.max. */
        assert_int_equal(fx_write(f, NULL, "cpu.max", "20000"), -ENOENT);
        fx_free(f);
}

/* cpu.max.runtime (v2 of the series): set, +N, -N, saturating at
 * [0, quota + burst]; malformed values refused. */
static void test_runtime_writes(void **state) {
        static const struct {
                const char *in;
                int r;
                uint64_t after;
        } steps[] = {
                { "30000", 0, 30000 },    { "+10000", 0, 40000 },
                { "+10001", 0, 50000 },   { "+10000", 0, 50000 },
                { "-50000", 0, 0 },       { "-1", 0, 0 },
                { "50001", 0, 50000 },    { "30000", 0, 30000 },
                { "-40000", 0, 0 },       { "50000", 0, 50000 },
                { "x", -EINVAL, 50000 },  { "+", -EINVAL, 50000 },
                { "-0", 0, 50000 },       { " 25000\n", 0, 25000 },
                { "99999999999999999999", -EINVAL, 25000 },
        };
        Fx *f = fx_new_v2(true);

        setup_vm(f);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000 100000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", "30000"), 0);
        /* two refills: min(20000 + 20000, 20000 + 30000) */
        assert_int_equal(runtime_usec(f, VCPUS), 40000);
        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", steps[i].in), steps[i].r);
                assert_int_equal(runtime_usec(f, VCPUS), steps[i].after);
        }
        /* Unlimited: there is no pool to read or adjust. */
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "max"), 0);
        fx_expect(f, VCPUS, "cpu.max.runtime", "max\n");
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", "+1"), -EINVAL);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", "0"), -EINVAL);
        assert_int_equal(f->ops->exists(f->be, 0, NULL, "cpu.max.runtime"), 0);
        fx_free(f);

        /* Stock kernels have no such file. */
        f = fx_new_v2(false);
        setup_vm(f);
        assert_int_equal(f->ops->exists(f->be, 0, VCPUS, "cpu.max.runtime"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, VCPUS, "cpu.max"), 1);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", "1000"), -ENOENT);
        assert_int_equal(fx_read(f, VCPUS, "cpu.max.runtime", (char[64]){ 0 }, 64), -ENOENT);
        fx_free(f);
}

/* A cpu.max.burst write refills one quota and unthrottles at once. */
static void test_write_refills_and_unthrottles(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t tid = setup_vm(f);

        assert_int_equal(km_thread_set_demand(f->m, tid, 1000000), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000 100000"), 0);
        km_advance(f->m, 50000); /* throttled at 20 ms */
        assert_int_equal(fx_thread_ns(f, tid), 20 * MSEC_NS);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", "0"), 0);
        km_advance(f->m, 10000);
        assert_int_equal(fx_thread_ns(f, tid), 30 * MSEC_NS);
        km_advance(f->m, 40000); /* throttled again at 70 ms, boundary at 100 ms */
        assert_int_equal(fx_thread_ns(f, tid), 40 * MSEC_NS);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "usage_usec"), 40000);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 1);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 1);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "throttled_usec"), 60000);
        fx_free(f);
}

/* Patched: a runtime write that makes the pool positive unthrottles. */
static void test_runtime_write_unthrottles(void **state) {
        Fx *f = fx_new_v2(true);
        pid_t tid = setup_vm(f);

        assert_int_equal(km_thread_set_demand(f->m, tid, 1000000), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000 100000"), 0);
        km_advance(f->m, 50000);
        assert_int_equal(runtime_usec(f, VCPUS), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", "+10000"), 0);
        km_advance(f->m, 20000);
        assert_int_equal(fx_thread_ns(f, tid), 30 * MSEC_NS);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "throttled_usec"), 30000);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 0);
        fx_free(f);
}

typedef struct ThrottleCase {
        unsigned threads;
        uint32_t demand;
        uint64_t quota, period, sim; /* usec */
        uint64_t usage, nr_periods, nr_throttled, throttled; /* expected, usec */
} ThrottleCase;

static void run_throttle_case(const ThrottleCase *c, uint64_t step, uint64_t *ret_ns) {
        Fx *f = fx_new_v2(false);
        pid_t pid = setup_vm(f);

        for (unsigned i = 1; i < c->threads; i++)
                assert_true(km_thread_new(f->m, pid) > 0);
        for (unsigned i = 0; i < c->threads; i++)
                assert_int_equal(km_thread_set_demand(f->m, pid + (pid_t) i, c->demand), 0);
        assert_int_equal(fx_writef(f, VCPUS, "cpu.max", "%" PRIu64 " %" PRIu64, c->quota,
                                   c->period),
                         0);
        for (uint64_t t = 0; t < c->sim; t += step)
                km_advance(f->m, MIN(step, c->sim - t));
        assert_int_equal(km_now_usec(f->m), c->sim);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "usage_usec"), c->usage);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), c->nr_periods);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), c->nr_throttled);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "throttled_usec"), c->throttled);
        assert_int_equal(fx_key(f, "vm", "cpu.stat", "usage_usec"), c->usage);
        *ret_ns = fx_thread_ns(f, pid);
        fx_free(f);
}

/* Exact throttling, whatever the step size of km_advance(). */
static void test_throttling_counts(void **state) {
        static const ThrottleCase cases[] = {
                /* 100 % at 20/100 ms for 1 s: 200 ms, throttled 80 ms a period */
                { 1, 1000000, 20000, 100000, 1000000, 200000, 10, 10, 800000 },
                { 1, 500000, 20000, 100000, 1000000, 200000, 10, 10, 600000 },
                { 1, 100000, 20000, 100000, 1000000, 100000, 10, 0, 0 },
                { 2, 1000000, 50000, 100000, 1000000, 500000, 10, 10, 750000 },
                /* the pool runs dry exactly at the boundary: the refill wins */
                { 1, 1000000, 1000, 1000, 10000, 10000, 10, 0, 0 },
                /* exhaustion at ceil(20 ms / 0.333333) = 60.000061 ms */
                { 1, 333333, 20000, 100000, 3000000, 600000, 30, 30, 1199998 },
        };
        static const uint64_t steps[] = { UINT64_MAX, 100000, 1000, 777, 33333 };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                uint64_t first_ns = 0;

                for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
                        uint64_t ns;

                        run_throttle_case(&cases[i], MIN(steps[s], cases[i].sim), &ns);
                        if (s == 0)
                                first_ns = ns;
                        assert_int_equal(ns, first_ns); /* identical to the nanosecond */
                }
        }
}

/* An idle group's timer stops after one more refill (the kernel's
 * idle-timer trap); v2 of the series credits the periods it sleeps
 * through when the pool is read or the group runs again, and a restarted
 * timer keeps the original period grid. */
static void test_idle_timer_trap(void **state) {
        Fx *f = fx_new_v2(true);
        pid_t tid = setup_vm(f);

        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000 100000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", "80000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.runtime", "0"), 0);
        km_advance(f->m, 100000); /* refill; marked idle */
        assert_int_equal(runtime_usec(f, VCPUS), 20000);
        km_advance(f->m, 100000); /* refill; idle for a period: timer stops */
        assert_int_equal(runtime_usec(f, VCPUS), 40000);
        km_advance(f->m, 9800000);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 2); /* stopped */
        /* The read credits the 98 periods slept through (0.3 s .. 10.0 s):
         * the pool is full, quota + burst = 100 ms, as if the timer ran. */
        assert_int_equal(runtime_usec(f, VCPUS), 100000);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 100);

        /* Running again at 10.05 s restarts the timer, without a refill,
         * on the old grid: the next boundary is 10.1 s, not 10.15 s. */
        km_advance(f->m, 50000);
        assert_int_equal(km_thread_set_demand(f->m, tid, 100000), 0);
        km_advance(f->m, 50000);
        assert_int_equal(fx_thread_ns(f, tid), 5 * MSEC_NS);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 101);
        assert_int_equal(runtime_usec(f, VCPUS), 100000); /* min(100 - 5 + 20, 100) */
        /* Spinning: 100 ms of pool last until 10.2 s, where the refill wins. */
        assert_int_equal(km_thread_set_demand(f->m, tid, 1000000), 0);
        km_advance(f->m, 100000);
        assert_int_equal(fx_thread_ns(f, tid), 105 * MSEC_NS);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 102);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 0);
        assert_int_equal(runtime_usec(f, VCPUS), 20000);
        /* Then held to the quota: 20 ms in the next 100 ms. */
        km_advance(f->m, 100000);
        assert_int_equal(fx_thread_ns(f, tid), 125 * MSEC_NS);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 1);
        fx_free(f);
}

/* Burst: using more than a quota in a period counts nr_bursts/burst_usec. */
static void test_burst_accounting(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t tid = setup_vm(f);

        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "20000 100000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max.burst", "20000"), 0);
        /* pool now min(20 + 20, 40) = 40 ms; snap 40 ms */
        assert_int_equal(km_thread_set_demand(f->m, tid, 300000), 0);
        km_advance(f->m, 99999);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_bursts"), 0);
        km_advance(f->m, 1); /* used 30 ms of a 20 ms quota: 10 ms burst */
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_bursts"), 1);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "burst_usec"), 10000);
        km_advance(f->m, 100000); /* 30 ms again, from a 30 ms pool */
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_bursts"), 2);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "burst_usec"), 20000);
        km_advance(f->m, 100000); /* 20 ms pool: throttled, no burst */
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_bursts"), 2);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 1);
        fx_free(f);
}

/* A limited parent bounds its children; only it throttles. */
static void test_hierarchical_limit(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t tid = setup_vm(f);

        assert_int_equal(km_thread_set_demand(f->m, tid, 1000000), 0);
        assert_int_equal(fx_write(f, "vm", "cpu.max", "10000 100000"), 0);
        assert_int_equal(fx_write(f, VCPUS, "cpu.max", "50000 100000"), 0);
        km_advance(f->m, 1000000);
        assert_int_equal(fx_thread_ns(f, tid), 100 * MSEC_NS);
        assert_int_equal(fx_key(f, "vm", "cpu.stat", "nr_throttled"), 10);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_throttled"), 0);
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "nr_periods"), 10);
        assert_int_equal(fx_key(f, "", "cpu.stat", "usage_usec"), 100000);
        /* Lifting the parent's limit lets the child's bind. */
        assert_int_equal(fx_write(f, "vm", "cpu.max", "max"), 0);
        km_advance(f->m, 1000000);
        assert_int_equal(fx_thread_ns(f, tid), 600 * MSEC_NS);
        fx_free(f);
}

/* Integer accounting without drift; usage stays with the group it was
 * used in, also after the thread leaves and the group is removed. */
static void test_usage_exact_and_kept(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t tid = setup_vm(f);
        uint64_t ns;

        assert_int_equal(km_thread_set_demand(f->m, tid, 333333), 0);
        for (int i = 0; i < 3000; i++)
                km_advance(f->m, 1000);
        assert_int_equal(fx_thread_ns(f, tid), UINT64_C(999999000));
        assert_int_equal(fx_writef(f, "vm", "cgroup.threads", "%d", (int) tid), 0);
        km_advance(f->m, 3000000);
        assert_int_equal(fx_thread_ns(f, tid), UINT64_C(1999998000));
        assert_int_equal(fx_key(f, VCPUS, "cpu.stat", "usage_usec"), 999999);
        assert_int_equal(fx_key(f, "vm", "cpu.stat", "usage_usec"), 1999998);
        assert_int_equal(f->ops->rmdir(f->be, 0, VCPUS), 0);
        assert_int_equal(fx_key(f, "vm", "cpu.stat", "usage_usec"), 1999998);
        assert_int_equal(km_thread_exit(f->m, tid), 0);
        assert_int_equal(fx_key(f, "", "cpu.stat", "usage_usec"), 1999998);
        assert_int_equal(km_thread_usage_nsec(f->m, tid, &ns), -ESRCH);
        assert_int_equal(km_thread_set_demand(f->m, 1, 0), -ESRCH);
        fx_free(f);
}

/* cpu.stat without the cpu controller: usage keys only. */
static void test_cpu_stat_keys(void **state) {
        Fx *f = fx_new_v2(false);

        assert_int_equal(fx_mkdir(f, ""), 0);
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "-cpu"), 0);
        fx_expect(f, "", "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "+cpu"), 0);
        fx_expect(f, "", "cpu.stat",
                  "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\n"
                  "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n");
        fx_free(f);
}

/* v1: cfs_* files, cpu.stat in nanoseconds, per-file refills, and the v1
 * rule that a child may not get more bandwidth than its parent. */
static void test_v1(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_LEGACY };
        Fx *f = fx_new(&cfg);
        pid_t pid = km_process_new(f->m), tid2;

        assert_int_equal(f->layout.n_hier, 1);
        assert_int_equal(f->layout.hier[0].version, CG_V1);
        assert_string_equal(f->layout.hier[0].mount, "/model/cpu,cpuacct");
        assert_string_equal(f->layout.unified_mount, "");
        assert_int_equal(fx_mkdir(f, ""), 0);
        assert_int_equal(fx_mkdir(f, "vm"), 0);
        assert_int_equal(fx_writef(f, "vm", "tasks", "%d", (int) pid), 0);
        fx_expect(f, "vm", "cpu.cfs_quota_us", "-1\n");
        fx_expect(f, "vm", "cpu.cfs_period_us", "100000\n");
        fx_expect(f, "vm", "cpu.cfs_burst_us", "0\n");
        assert_int_equal(fx_write(f, "vm", "cpu.cfs_quota_us", "20000"), 0);
        assert_int_equal(km_thread_set_demand(f->m, pid, 1000000), 0);
        km_advance(f->m, 1000000);
        fx_expect(f, "vm", "cpu.stat",
                  "nr_periods 10\nnr_throttled 10\nthrottled_time 800000000\nnr_bursts 0\n"
                  "burst_time 0\n");
        fx_expect(f, "vm", "cpuacct.usage", "200000000\n");
        fx_expect(f, "vm", "cpuacct.stat", "user 20\nsystem 0\n");

        /* Each separate write refills and unthrottles, the period too. */
        km_advance(f->m, 50000);
        assert_int_equal(fx_write(f, "vm", "cpu.cfs_period_us", "100000"), 0);
        km_advance(f->m, 10000);
        assert_int_equal(fx_thread_ns(f, pid), 230 * MSEC_NS);

        assert_int_equal(fx_write(f, "vm", "cpu.cfs_burst_us", "20001"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "cpu.cfs_burst_us", "20000"), 0);
        assert_int_equal(fx_write(f, NULL, "cpu.cfs_quota_us", "1000"), -EINVAL);
        fx_expect(f, NULL, "cpu.cfs_quota_us", "-1\n");

        /* tg_cfs_schedulable_down(): 30 % under 20 % is refused on v1. */
        assert_int_equal(fx_mkdir(f, "vm/child"), 0);
        assert_int_equal(fx_write(f, "vm/child", "cpu.cfs_quota_us", "30000"), -EINVAL);
        assert_int_equal(fx_write(f, "vm/child", "cpu.cfs_quota_us", "10000"), 0);
        assert_int_equal(fx_write(f, "vm", "cpu.cfs_quota_us", "5000"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "cpu.cfs_quota_us", "-1"), 0);
        fx_expect(f, "vm", "cpu.cfs_quota_us", "-1\n");

        /* tasks moves one thread, with no threaded-domain rule. */
        tid2 = km_thread_new(f->m, pid);
        assert_true(tid2 > 0);
        assert_int_equal(fx_writef(f, "vm/child", "tasks", "%d", (int) tid2), 0);
        fx_expect(f, "vm", "tasks", "1000\n");
        fx_expect(f, "vm/child", "tasks", "1001\n");
        fx_expect(f, "vm", "cgroup.procs", "1000\n");
        fx_expect(f, "vm/child", "cgroup.procs", "");
        assert_int_equal(f->ops->exists(f->be, 0, "vm", "cgroup.subtree_control"), 0);
        assert_int_equal(km_mem_charge(f->m, pid, 4096, false), -EOPNOTSUPP);
        fx_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refill_rule),
                cmocka_unit_test(test_burst_validation),
                cmocka_unit_test(test_cpu_max_format),
                cmocka_unit_test(test_runtime_writes),
                cmocka_unit_test(test_write_refills_and_unthrottles),
                cmocka_unit_test(test_runtime_write_unthrottles),
                cmocka_unit_test(test_throttling_counts),
                cmocka_unit_test(test_idle_timer_trap),
                cmocka_unit_test(test_burst_accounting),
                cmocka_unit_test(test_hierarchical_limit),
                cmocka_unit_test(test_usage_exact_and_kept),
                cmocka_unit_test(test_cpu_stat_keys),
                cmocka_unit_test(test_v1),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
