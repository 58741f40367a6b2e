/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model suite: vmmgr's memory engine (vmmgr/engine/memory-engine.h) on the
 * kernel model, through the kernel layer, with the reclaim pool in its
 * 0-thread mode: the limits it writes and reads back (memory.high stays
 * max), background reclaim holding a VM under its high watermark without
 * its vCPU thread stalling while that thread keeps charging more than
 * memory.max, emulator and io throttled while it is over and
 * released after (vcpus never), removal lifting the throttle, a refused
 * spec, a GPU's dmem limits written, and the host ceiling reclaiming the
 * low-priority VM first.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/backend.h"
#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"
#include "tests/common/model-world.h"
#include "vmmgr/engine/memory-engine.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define MS UINT64_C(1000)
/* The sustained charge: 48 MiB per 100 ms (480 MiB/s) for 4 s. */
#define CHARGE_STEP (48 * MIB)
#define CHARGE_TICKS 40

typedef ModelWorld World;

static const KModelDmemRegion regions[] = { { "drm/0000:03:00.0/vram0", 8 * GIB } };

static void world_open(World *w, uint64_t host_memory) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .host_memory = host_memory, .dmem_regions = regions,
                             .n_dmem_regions = 1 };

        model_world_open(w, &cfg);
}

static void world_close(World *w) {
        model_world_close(w);
}

static MemEngine *engine_new(World *w) {
        MemEngineOptions o;
        MemEngine *e = NULL;

        mem_engine_options_default(&o);
        o.threads = false; /* the model is single-threaded */
        o.policy.proactive.enabled = false;
        assert_int_equal(mem_engine_new(w->host, &o, &e), 0);
        return e;
}

static bool limited(World *w, int i, CgRole role) {
        CpuBandwidth bw;

        assert_int_equal(kh_cpu_get_bandwidth(w->host, &w->vm[i], role, &bw), 0);
        return bw.quota_usec != CPU_QUOTA_MAX;
}

/* Advances the model and ticks the engine every 100 ms for `ms`. */
static void run(World *w, MemEngine *e, uint64_t ms) {
        for (uint64_t t = 0; t < ms; t += 100) {
                km_advance(w->model, 100 * MS);
                assert_int_equal(mem_engine_tick(e, km_now_usec(w->model)), 0);
        }
}

static void test_limits_and_background(void **state) {
        _cleanup_mem_engine_ MemEngine *e = NULL;
        const MemPolVmSpec spec = { .ram_bytes = GIB };
        MemVmReport rep;
        MemStat st;
        uint64_t stall;
        World w;

        world_open(&w, 0);
        e = engine_new(&w);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &spec, km_now_usec(w.model)), 0);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &spec, 0), -EEXIST);
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), 0);
        /* What the kernel took: max = RAM + overhead, high left at max. */
        assert_int_equal(kh_mem_read(w.host, &w.vm[0], &st), 0);
        assert_true(st.max == rep.limits.max && st.max > GIB);
        assert_true(st.high == MEM_MAX);
        assert_true(st.min == rep.limits.min && st.low == rep.limits.low);
        assert_true(rep.applied.max == st.max);
        /* The subtree's own protection covers the VM's (recursiveprot). */
        run(&w, e, 1000);
        {
                const KBackendOps *ops;
                KBackendLayout layout;
                char buf[64];
                void *be;

                assert_int_equal(km_backend(w.model, &ops, &be, &layout), 0);
                assert_int_equal(ops->read(be, 0, "", "memory.min", buf, sizeof(buf), NULL), 0);
                assert_true(strtoull(buf, NULL, 10) == rep.limits.min);
                assert_int_equal(ops->read(be, 0, "", "memory.low", buf, sizeof(buf), NULL), 0);
                assert_true(strtoull(buf, NULL, 10) == rep.limits.low);
                ops->free(be);
        }

        /* Page cache grows past the high watermark: vmmgr's reclaim takes
         * it back to the low one, emulator and io are held while it is
         * over, vcpus never. */
        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], (int64_t) (rep.limits.wmark_high + 32 * MIB), true), 0);
        run(&w, e, 100); /* the quick check sees it at the next tick */
        assert_true(limited(&w, 0, CG_ROLE_EMULATOR) && limited(&w, 0, CG_ROLE_IO));
        run(&w, e, 200);
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), 0);
        assert_true(rep.reclaim_bytes > 0);
        assert_int_equal(kh_mem_read(w.host, &w.vm[0], &st), 0);
        assert_true(st.current <= rep.limits.wmark_low);
        assert_false(limited(&w, 0, CG_ROLE_VCPUS));
        /* Back at the low watermark: the throttle is off again. */
        run(&w, e, 300);
        assert_false(limited(&w, 0, CG_ROLE_EMULATOR));
        assert_false(limited(&w, 0, CG_ROLE_IO));

        /* The vCPU keeps touching new page cache while the engine runs,
         * CHARGE_STEP every 100 ms: what it holds plus what it charges is
         * more than memory.max, so the memory had to go
         * somewhere while it ran.  Without vmmgr's background reclaim the
         * kernel would have reclaimed at memory.max, on the vCPU's own
         * time (memory.high is max); with it, the vCPU never stalls. */
        {
                uint64_t charged = 0, reclaimed0 = rep.reclaim_bytes, held;

                assert_int_equal(kh_mem_read(w.host, &w.vm[0], &st), 0);
                held = st.current;

                for (int i = 0; i < CHARGE_TICKS; i++) {
                        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], (int64_t) CHARGE_STEP, true), 0);
                        charged += CHARGE_STEP;
                        run(&w, e, 100);
                }
                assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), 0);
                assert_int_equal(kh_mem_read(w.host, &w.vm[0], &st), 0);
                print_message("vCPU charged %" PRIu64 " MiB in %d s (memory.max %" PRIu64 " MiB); vmmgr reclaimed "
                              "%" PRIu64 " MiB; memory.current %" PRIu64 " MiB\n",
                              charged / MIB, CHARGE_TICKS / 10, rep.limits.max / MIB,
                              (rep.reclaim_bytes - reclaimed0) / MIB, st.current / MIB);
                assert_true(held + charged > rep.limits.max); /* the premise */
                assert_int_equal(km_thread_reclaim_stall_usec(w.model, w.vcpu[0], &stall), 0);
                if (stall != 0)
                        fail_msg("the vCPU stalled %" PRIu64 " us in direct reclaim", stall);
                assert_true(rep.reclaim_bytes - reclaimed0 >= held + charged - rep.limits.max);
                assert_true(st.current <= rep.limits.wmark_high);
                assert_false(limited(&w, 0, CG_ROLE_VCPUS));
        }
        world_close(&w);
}

static void test_throttle_while_over(void **state) {
        _cleanup_mem_engine_ MemEngine *e = NULL;
        const MemPolVmSpec spec = { .ram_bytes = GIB };
        MemVmReport rep;
        World w;

        world_open(&w, 0);
        e = engine_new(&w);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &spec, km_now_usec(w.model)), 0);
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), 0);
        /* Anonymous memory without swap: nothing to reclaim, the VM stays
         * over its high watermark, so its emulator and io stay held. */
        run(&w, e, 200);
        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], (int64_t) (rep.limits.wmark_high + 16 * MIB), false), 0);
        run(&w, e, 300);
        assert_true(limited(&w, 0, CG_ROLE_EMULATOR));
        assert_true(limited(&w, 0, CG_ROLE_IO));
        assert_false(limited(&w, 0, CG_ROLE_VCPUS));
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), 0);
        assert_true(rep.state.throttled && rep.state.reclaiming);
        assert_true(rep.reclaim_partial > 0); /* the kernel found nothing: -EAGAIN */
        /* Removal lifts what the engine set. */
        mem_engine_vm_remove(e, &w.vm[0]);
        assert_false(limited(&w, 0, CG_ROLE_EMULATOR));
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &rep), -ENOENT);
        /* A throttle left behind (a vmmgrd killed while the VM was over)
         * is lifted when a new engine takes the VM on. */
        {
                CpuBandwidth bw = { .period_usec = 100000, .quota_usec = 20000 };

                assert_true(kh_cpu_set_bandwidth(w.host, &w.vm[0], CG_ROLE_IO, &bw, NULL) >= 0);
                assert_true(limited(&w, 0, CG_ROLE_IO));
                assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &spec, km_now_usec(w.model)), 0);
                assert_false(limited(&w, 0, CG_ROLE_IO));
        }
        world_close(&w);
}

static void test_bad_spec_and_dmem(void **state) {
        _cleanup_mem_engine_ MemEngine *e = NULL;
        const MemPolVmSpec zero = { 0 }, spec = { .ram_bytes = GIB };
        const MemPolDmemSpec d = { .max = 4 * GIB, .soft = 2 * GIB, .low = GIB, .min = 256 * MIB };
        const MemPolDmemSpec bad = { .max = GIB, .soft = 2 * GIB, .low = GIB, .min = 0 };
        DmemRegion *regs = NULL;
        size_t n = 0;
        World w;

        world_open(&w, 0);
        e = engine_new(&w);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &zero, 0), -EINVAL);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &spec, km_now_usec(w.model)), 0);
        assert_int_equal(mem_engine_vm_set_dmem(e, &w.vm[0], "0000:03:00.0", &bad), -EINVAL);
        assert_int_equal(mem_engine_vm_set_dmem(e, &w.vm[0], "../x", &d), -EINVAL);
        assert_int_equal(mem_engine_vm_set_dmem(e, &w.vm[0], "0000:03:00.0", &d), 0);
        assert_int_equal(km_dmem_charge(w.model, w.vcpu[0], "drm/0000:03:00.0/vram0", (int64_t) (512 * MIB)), 0);
        run(&w, e, 1100); /* dmem is decided with the host, once a second */
        assert_int_equal(kh_dmem_read(w.host, &w.vm[0], &regs, &n), 0);
        assert_int_equal(n, 1);
        assert_true(regs[0].max == 4 * GIB && regs[0].min == 256 * MIB && regs[0].low == GIB);
        free(regs);
        world_close(&w);
}

static void test_host_ceiling_order(void **state) {
        _cleanup_mem_engine_ MemEngine *e = NULL;
        MemPolVmSpec lo = { .ram_bytes = 2 * GIB, .priority = 0 }, hi = { .ram_bytes = 2 * GIB, .priority = 9 };
        MemVmReport r0, r1;
        World w;

        /* 4 GiB of host: two VMs with 1980 MiB of page cache each (below
         * their own watermarks) push it to 96.7 %, over the 95 % ceiling. */
        world_open(&w, 4 * GIB);
        e = engine_new(&w);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[0], &lo, km_now_usec(w.model)), 0);
        assert_int_equal(mem_engine_vm_add(e, &w.vm[1], &hi, km_now_usec(w.model)), 0);
        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], (int64_t) (1980 * MIB), true), 0);
        assert_int_equal(km_mem_charge(w.model, w.vcpu[1], (int64_t) (1980 * MIB), true), 0);
        run(&w, e, 2100);
        assert_int_equal(mem_engine_vm_report(e, &w.vm[0], &r0), 0);
        assert_int_equal(mem_engine_vm_report(e, &w.vm[1], &r1), 0);
        assert_true(r0.host_bytes > 0);
        assert_int_equal(r1.host_bytes, 0); /* the low-priority VM covered it */
        {
                MemHostReport h;

                mem_engine_host_report(e, &h);
                assert_true(h.known);
                assert_true(h.used * 100 <= h.total * 95);
        }
        world_close(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limits_and_background),
                cmocka_unit_test(test_throttle_while_over),
                cmocka_unit_test(test_bad_spec_and_dmem),
                cmocka_unit_test(test_host_ceiling_order),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
