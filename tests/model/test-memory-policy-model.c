/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The memory policies (policies/memory.h) on the kernel model, through the
 * kernel layer: dmem eviction order with and without dmem.high, the host
 * ceiling across 100 VMs, background reclaim with throttling, and
 * proactive reclaim against a working set.  Scenarios: memory-scenario.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "memory-scenario.h"

static void print_dmem(const char *name, const ScnDmemResult *r) {
        print_message("%s: ok %d, first evicted a %u b %u c %u, tiers %" PRIu64 "/%" PRIu64 "/%" PRIu64
                      " MiB, %u steps, %u low writes%s%s\n",
                      name, r->ok, r->first_evicted[0], r->first_evicted[1], r->first_evicted[2],
                      r->tier_bytes[1] / SCN_MIB, r->tier_bytes[2] / SCN_MIB, r->tier_bytes[3] / SCN_MIB, r->steps,
                      r->low_writes, r->why[0] ? ": " : "", r->why);
}

/* (a) A stock kernel (no dmem.high) with the policy: over-soft first,
 * then over-low, then protected. */
static void test_dmem_order_stock(void **state) {
        ScnDmemResult r;

        assert_int_equal(scn_dmem_order(false, true, &r), 0);
        print_dmem("stock + policy", &r);
        assert_true(r.ok);
        assert_string_equal(r.why, "");
        /* 160 MiB were free: eviction starts at the 17th step, with a */
        assert_int_equal(r.first_evicted[0], 17);
        assert_true(r.first_evicted[1] > r.first_evicted[0]);
        assert_true(r.first_evicted[2] > r.first_evicted[1]);
        /* every tier went, all of it: 100 + 340 - 100... by the spec */
        assert_int_equal(r.tier_bytes[1], 100 * SCN_MIB);                /* a above 200 */
        assert_int_equal(r.tier_bytes[2], (50 + 240) * SCN_MIB);          /* a 200..150, b 340..100 */
        assert_int_equal(r.tier_bytes[3], (100 + 100 + 150) * SCN_MIB);   /* a, b, c down to min */
        assert_int_equal(r.tier_bytes[4], 0);
        assert_int_equal(r.end_r, -ENOSPC);
        assert_int_equal(r.steps, (160 + 740) / 10);
        assert_true(r.low_writes > 0);
}

/* The same charges with the configured lows and no policy: the kernel's
 * largest-excess order takes b's over-low memory while a is still over its
 * soft target.  (The check can fail; the policy is what makes it pass.) */
static void test_dmem_order_stock_unmanaged(void **state) {
        ScnDmemResult r;

        assert_int_equal(scn_dmem_order(false, false, &r), 0);
        print_dmem("stock, no policy", &r);
        assert_false(r.ok);
        assert_true(r.first_evicted[1] < r.first_evicted[0]); /* b before a */
        assert_int_equal(r.tier_bytes[4], 0);                  /* min holds either way */
}

/* With dmem.high the kernel does it; the policy writes high = soft and
 * leaves low alone. */
static void test_dmem_order_kernel_high(void **state) {
        ScnDmemResult r;

        assert_int_equal(scn_dmem_order(true, true, &r), 0);
        print_dmem("dmem.high + policy", &r);
        assert_true(r.ok);
        assert_int_equal(r.low_writes, 0);
        assert_int_equal(r.first_evicted[0], 17);
        assert_int_equal(scn_dmem_order(true, false, &r), 0);
        print_dmem("dmem.high, no policy", &r);
        assert_true(r.ok);
}

/* (b) 100 VMs, mixed priorities and growth: the host stays under its
 * ceiling, lower priorities give first. */
static void test_host_ceiling(void **state) {
        ScnCeilingConfig cfg;
        ScnCeilingResult r;

        scn_ceiling_default(&cfg);
        assert_int_equal(scn_ceiling(&cfg, &r), 0);
        print_message("host ceiling: max %u.%02u %% (ceiling %u.%02u %%), plan acted %u ticks, reclaimed by "
                      "priority 0..3: %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " MiB, background %" PRIu64
                      " MiB, pool up to %u threads, %u throttles%s%s\n",
                      r.max_bp / 100, r.max_bp % 100, r.ceiling_bp / 100, r.ceiling_bp % 100, r.plan_ticks,
                      r.host_reclaim_by_prio[0] / SCN_MIB, r.host_reclaim_by_prio[1] / SCN_MIB,
                      r.host_reclaim_by_prio[2] / SCN_MIB, r.host_reclaim_by_prio[3] / SCN_MIB,
                      r.background_bytes / SCN_MIB, r.max_pool_threads, r.throttle_on, r.why[0] ? ": " : "",
                      r.why);
        assert_true(r.max_bp < r.ceiling_bp);
        assert_true(r.plan_ticks > cfg.ticks / 4); /* the ceiling was the limit for long */
        assert_int_equal(r.order_violations, 0);
        assert_int_equal(r.passthrough_below_ram, 0);
        assert_string_equal(r.why, "");
        /* the lowest priority gave the most, each higher one no more than
         * the one below, and the highest kept everything */
        assert_true(r.host_reclaim_by_prio[0] > r.host_reclaim_by_prio[1]);
        for (unsigned i = 1; i < SCN_PRIOS; i++)
                assert_true(r.host_reclaim_by_prio[i - 1] >= r.host_reclaim_by_prio[i]);
        assert_int_equal(r.host_reclaim_by_prio[SCN_PRIOS - 1], 0);
        /* VMs beyond their own max were held below it by vmmgr's threads:
         * no vCPU ever reclaimed directly, no charge failed */
        assert_true(r.background_bytes > 0);
        assert_int_equal(r.vcpu_stall_usec, 0);
        assert_int_equal(r.failed_charges, 0);
        assert_true(r.throttle_on > 0);
        assert_int_equal(r.vcpu_limited, 0);
        assert_int_equal(r.high_not_max, 0);
        assert_true(r.max_pool_threads >= 1 && r.max_pool_threads <= cfg.ncpus);
        assert_int_equal(r.pool_violations, 0);
}

/* Without the host plan the same VMs take the host to the model's own
 * limit: the scenario is one the ceiling policy has work in. */
static void test_host_ceiling_unmanaged(void **state) {
        ScnCeilingConfig cfg;
        ScnCeilingResult r;

        scn_ceiling_default(&cfg);
        cfg.host_policy = false;
        cfg.ticks = 120;
        assert_int_equal(scn_ceiling(&cfg, &r), 0);
        print_message("no host plan: max %u.%02u %%\n", r.max_bp / 100, r.max_bp % 100);
        assert_true(r.max_bp > r.ceiling_bp);
        assert_int_equal(r.plan_ticks, 0);
}

/* One VM that grows past its memory.max at 32 MiB/s: vmmgr's reclaim keeps
 * it below max (no vCPU stall, no max event), emulator and io are
 * throttled meanwhile and released after; the vCPU group never is. */
static void test_background_throttle(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        MemPolVmSpec spec = { .ram_bytes = SCN_GIB };
        ScnCeilingResult res = { 0 };
        unsigned on_ticks = 0;
        MemPolicy p;
        ScnHost s = { 0 };
        ScnVm v = { 0 };
        MemLimits lim;
        MemStat st;
        CpuBandwidth bw;
        uint64_t stall;

        mempol_default(&p);
        p.proactive.enabled = false;
        assert_int_equal(scn_open(&cfg, &s), 0);
        assert_int_equal(scn_vm(&s, 0, &v.id, &v.vcpu), 0);
        assert_int_equal(mempol_vm_limits(&p, &spec, &v.lim), 0);
        lim = (MemLimits) { .set = MEM_SET_MAX | MEM_SET_HIGH | MEM_SET_LOW | MEM_SET_MIN | MEM_SET_SWAP_MAX,
                            .max = v.lim.max, .high = v.lim.high, .low = v.lim.low, .min = v.lim.min,
                            .swap_max = v.lim.swap_max };
        assert_int_equal(kh_mem_set_limits(s.h, &v.id, &lim, NULL), 0);
        mempol_vm_state_init(&v.st, &v.lim);
        assert_int_equal(km_mem_charge(s.m, v.vcpu, (int64_t) (SCN_GIB / 2), true), 0);
        assert_int_equal(scn_read(&s, &v, &st), 0);
        v.last = (MemPolCounters) { .at_usec = km_now_usec(s.m), .current = st.current };
        for (unsigned tick = 0; tick < 120; tick++) {
                bool growing = tick < 60;

                km_advance(s.m, SCN_SEC);
                if (growing)
                        assert_int_equal(km_mem_charge(s.m, v.vcpu, (int64_t) (32 * SCN_MIB), true), 0);
                else if (tick == 60)
                        assert_int_equal(km_mem_charge(s.m, v.vcpu, -(int64_t) (SCN_GIB / 2), true), 0);
                assert_int_equal(scn_ceiling_vm(&s, &p, &v, &res), 0);
                assert_true(v.current <= v.lim.wmark_high); /* never left above it */
                assert_int_equal(kh_cpu_get_bandwidth(s.h, &v.id, CG_ROLE_EMULATOR, &bw), 0);
                if (v.st.throttled) {
                        on_ticks++;
                        assert_int_equal(bw.quota_usec, 20000);
                        assert_int_equal(bw.period_usec, 100000);
                } else
                        assert_int_equal(bw.quota_usec, CPU_QUOTA_MAX);
                assert_int_equal(kh_cpu_get_bandwidth(s.h, &v.id, CG_ROLE_IO, &bw), 0);
                assert_int_equal(bw.quota_usec, v.st.throttled ? 20000 : CPU_QUOTA_MAX);
                assert_int_equal(kh_cpu_get_bandwidth(s.h, &v.id, CG_ROLE_VCPUS, &bw), 0);
                assert_int_equal(bw.quota_usec, CPU_QUOTA_MAX);
        }
        print_message("background: %" PRIu64 " MiB reclaimed, throttled %u of 120 s\n",
                      res.background_bytes / SCN_MIB, on_ticks);
        /* it crossed the high watermark about 20 s in, was held from then
         * until the growth stopped, and released after */
        assert_true(on_ticks >= 30 && on_ticks <= 60);
        assert_false(v.st.throttled);
        assert_int_equal(res.throttle_on, 1);
        assert_true(res.background_bytes >= 30 * 32 * SCN_MIB);
        assert_int_equal(kh_mem_read(s.h, &v.id, &st), 0);
        assert_int_equal(st.ev_max, 0);
        assert_int_equal(st.ev_high, 0);
        assert_int_equal(st.ev_oom, 0);
        assert_int_equal(st.high, MEM_MAX);
        assert_int_equal(km_thread_reclaim_stall_usec(s.m, v.vcpu, &stall), 0);
        assert_int_equal(stall, 0);
        scn_close(&s);
}

/* A VM with 2 GiB it uses and 1 GiB it never touches again: proactive
 * reclaim takes the cold gigabyte, backs off when the working set
 * refaults, protection rises to the working set and holds it. */
static void test_proactive(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .reclaim_swappiness = true };
        MemPolVmSpec spec = { .ram_bytes = 4 * SCN_GIB };
        const uint64_t ws = 2 * SCN_GIB;
        ScnCeilingResult res = { 0 };
        unsigned backoffs = 0;
        uint64_t min_seen = UINT64_MAX;
        MemPolicy p;
        ScnHost s = { 0 };
        ScnVm v = { 0 };
        MemStat st = { 0 };

        mempol_default(&p);
        p.proactive.step_ppm_per_sec = 1000; /* 0.1 %/s: the test runs minutes, not hours */
        assert_int_equal(scn_open(&cfg, &s), 0);
        assert_int_equal(scn_vm(&s, 0, &v.id, &v.vcpu), 0);
        assert_int_equal(mempol_vm_limits(&p, &spec, &v.lim), 0);
        mempol_vm_state_init(&v.st, &v.lim);
        assert_int_equal(km_mem_charge(s.m, v.vcpu, (int64_t) (200 * SCN_MIB), false), 0);
        assert_int_equal(km_mem_charge(s.m, v.vcpu, (int64_t) (ws + SCN_GIB - 200 * SCN_MIB), true), 0);
        assert_int_equal(scn_read(&s, &v, &st), 0);
        v.last = (MemPolCounters) { .at_usec = km_now_usec(s.m), .current = st.current };
        for (unsigned tick = 0; tick < 300; tick++) {
                bool was_backing_off = v.st.backoff_usec > 0;

                km_advance(s.m, 10 * SCN_SEC);
                /* the working set is touched every interval: what reclaim
                 * took from it comes back as refaults */
                if (v.current < ws)
                        assert_int_equal(km_mem_charge(s.m, v.vcpu, (int64_t) (ws - v.current), true), 0);
                assert_int_equal(scn_ceiling_vm(&s, &p, &v, &res), 0);
                backoffs += !was_backing_off && v.st.backoff_usec > 0;
                if (tick >= 100)
                        min_seen = MIN(min_seen, v.current);
        }
        assert_int_equal(scn_read(&s, &v, &st), 0);
        print_message("proactive: %" PRIu64 " MiB now (working set %" PRIu64 " MiB), low %" PRIu64
                      " MiB, %u back-offs, %" PRIu64 " refaulted MiB\n",
                      st.current / SCN_MIB, ws / SCN_MIB, v.st.low / SCN_MIB, backoffs,
                      st.workingset_refault_file * SCN_PAGE / SCN_MIB);
        /* the cold gigabyte is gone; the working set stays, give or take a step */
        assert_true(st.current <= ws + 64 * SCN_MIB);
        assert_true(min_seen >= ws - 64 * SCN_MIB);
        assert_true(backoffs >= 1);
        /* protection followed the working set up from its 1 GiB floor */
        assert_true(v.st.low > v.lim.low_floor);
        assert_true(v.st.low <= ws);
        assert_true(st.workingset_refault_file > 0);
        scn_close(&s);
}

/* The model's /proc/meminfo through kh_host_memory(): every charge is in
 * use, the host's own in the root included. */
static void test_host_meminfo(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .host_memory = 8 * SCN_GIB };
        uint64_t total, used;
        ScnHost s = { 0 };
        VmId id;
        pid_t vcpu = 0, host;

        assert_int_equal(scn_open(&cfg, &s), 0);
        assert_int_equal(kh_host_memory(s.h, &total, &used), 0);
        assert_int_equal(total, 8 * SCN_GIB);
        assert_int_equal(used, 0);
        host = km_process_new(s.m);
        assert_true(host > 0);
        assert_int_equal(km_mem_charge(s.m, host, (int64_t) SCN_GIB, false), 0);
        assert_int_equal(scn_vm(&s, 0, &id, &vcpu), 0);
        assert_int_equal(km_mem_charge(s.m, vcpu, (int64_t) (512 * SCN_MIB), true), 0);
        assert_int_equal(kh_host_memory(s.h, &total, &used), 0);
        assert_int_equal(used, SCN_GIB + 512 * SCN_MIB);
        assert_int_equal(kh_mem_reclaim(s.h, &id, 256 * SCN_MIB, -1), 0);
        assert_int_equal(kh_host_memory(s.h, &total, &used), 0);
        assert_int_equal(used, SCN_GIB + 256 * SCN_MIB);
        scn_close(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_meminfo),
                cmocka_unit_test(test_dmem_order_stock),
                cmocka_unit_test(test_dmem_order_stock_unmanaged),
                cmocka_unit_test(test_dmem_order_kernel_high),
                cmocka_unit_test(test_host_ceiling),
                cmocka_unit_test(test_host_ceiling_unmanaged),
                cmocka_unit_test(test_background_throttle),
                cmocka_unit_test(test_proactive),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
