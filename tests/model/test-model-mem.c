/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Kernel model: memcg (limits, high/max reclaim, memory.reclaim,
 * protection, events, pressure) and dmem (files, limits, eviction order).
 */
#include "model-fixture.h"

#include "common/macros.h"

#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1024) * 1024)
#define REGION "drm/0000:03:00.0/vram0"

/* A VM group with a process whose only thread lives in the VM group. */
static pid_t vm_with_process(Fx *f, const char *vm) {
        pid_t pid = km_process_new(f->m);

        assert_true(pid > 0);
        assert_int_equal(fx_mkdir(f, vm), 0);
        assert_int_equal(fx_writef(f, vm, "cgroup.procs", "%d", (int) pid), 0);
        return pid;
}

static Fx *mem_fixture(const KModelConfig *cfg) {
        Fx *f = fx_new(cfg);

        fx_v2_subtree(f, "+cpu +memory");
        return f;
}

static void test_limit_formats(void **state) {
        static const struct {
                const char *in;
                int r;
                const char *after;
        } steps[] = {
                { "max", 0, "max\n" },
                { "1G", 0, "1073741824\n" },
                { "4097", 0, "4096\n" }, /* rounded down to a page */
                { "2m\n", 0, "2097152\n" },
                { "1k", 0, "0\n" },
                { "abc", -EINVAL, "0\n" },
                { "1X", -EINVAL, "0\n" },
                { "", -EINVAL, "0\n" },
                { "1 2", -EINVAL, "0\n" },
                { "9223372036854775807", 0, "max\n" }, /* PAGE_COUNTER_MAX */
        };
        static const char *const files[] = { "memory.max", "memory.high", "memory.low",
                                             "memory.min", "memory.swap.max" };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };

        for (size_t k = 0; k < ARRAY_SIZE(files); k++) {
                Fx *f = mem_fixture(&cfg);

                assert_int_equal(fx_mkdir(f, "vm"), 0);
                for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                        assert_int_equal(fx_write_nb(f, "vm", files[k], steps[i].in, 1),
                                         steps[i].r);
                        fx_expect(f, "vm", files[k], steps[i].after);
                }
                fx_free(f);
        }
}

/* Over memory.high the charging thread reclaims what it charged and pays
 * for it in stall time (1 GiB/s) and PSI. */
static void test_over_high(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        Fx *f = mem_fixture(&cfg);
        uint64_t stall;
        pid_t tid;
        char buf[512];
        size_t len;

        fx_v2_vm(f, "vm");
        tid = fx_v2_vcpu_process(f, "vm"); /* memcg: vm, the threaded domain */
        assert_int_equal(fx_write(f, "vm", "memory.high", "1M"), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, true), 0);
        assert_int_equal(fx_key(f, "vm", "memory.events", "high"), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (256 * KIB), true), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB);
        assert_int_equal(fx_u64(f, "vm", "memory.peak"), MIB + 256 * KIB);
        assert_int_equal(fx_key(f, "vm", "memory.events", "high"), 1);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "pgsteal"), 64);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "pgscan"), 64);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "file"), MIB);
        assert_int_equal(km_thread_reclaim_stall_usec(f->m, tid, &stall), 0);
        assert_int_equal(stall, 244); /* 262144 B at 2^30 B/s */
        fx_expect(f, "vm/vcpus", "memory.pressure",
                  "some avg10=0.00 avg60=0.00 avg300=0.00 total=244\n"
                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=244\n");
        assert_int_equal(f->ops->read_host_file(f->be, KHOST_FILE_PSI_MEMORY, buf, sizeof(buf),
                                                &len),
                         0);
        assert_non_null(strstr(buf, "total=244\n"));

        /* Unreclaimable charges push out page cache... */
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (512 * KIB), false), 0);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "anon"), 512 * KIB);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "file"), 512 * KIB);
        /* ...until there is none: then usage stays above high. */
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, false), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB + 512 * KIB);
        assert_int_equal(fx_key(f, "vm", "memory.events", "high"), 3);
        assert_int_equal(km_thread_reclaim_stall_usec(f->m, tid, &stall), 0);
        assert_int_equal(stall, 244 + 488 + 488);
        /* the subtree root counts the events and usage of its children */
        assert_int_equal(fx_key(f, "", "memory.events", "high"), 3);
        assert_int_equal(fx_key(f, "", "memory.events.local", "high"), 0);
        assert_int_equal(fx_u64(f, "", "memory.current"), MIB + 512 * KIB);
        /* uncharges */
        assert_int_equal(km_mem_charge(f->m, tid, -(int64_t) (2 * MIB), false), -EINVAL);
        assert_int_equal(km_mem_charge(f->m, tid, -(int64_t) (1536 * KIB), false), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), 0);
        fx_free(f);
}

/* Over memory.max: reclaim what is needed, or fail with max + oom events. */
static void test_over_max(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        Fx *f = mem_fixture(&cfg);
        pid_t tid = vm_with_process(f, "vm");
        uint64_t stall;

        assert_int_equal(fx_write(f, "vm", "memory.max", "1M"), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (512 * KIB), true), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (512 * KIB), false), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (256 * KIB), false), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "file"), 256 * KIB);
        assert_int_equal(km_thread_reclaim_stall_usec(f->m, tid, &stall), 0);
        assert_int_equal(stall, 244);
        fx_expect(f, "vm", "memory.events",
                  "low 0\nhigh 0\nmax 1\noom 0\noom_kill 0\noom_group_kill 0\n");
        /* a partial charge rounds up to a page */
        assert_int_equal(km_mem_charge(f->m, tid, 1, false), 0);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "file"), 252 * KIB);
        /* nothing reclaimable left beyond what it just freed: OOM */
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, false), -ENOMEM);
        fx_expect(f, "vm", "memory.events",
                  "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n");
        assert_int_equal(fx_key(f, "", "memory.events", "oom"), 1);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB - 252 * KIB);
        fx_free(f);
}

static void test_memory_reclaim(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        Fx *f = mem_fixture(&cfg);
        pid_t tid = vm_with_process(f, "vm");

        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, true), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, false), 0);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "512K"), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB + 512 * KIB);
        /* only 512K left to reclaim: partial progress is -EAGAIN */
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "1M"), -EAGAIN);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "pgsteal"), 256);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "0"), 0);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "4096"), -EAGAIN);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "abc"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", ""), -EINVAL);
        /* re-charging reclaimed page cache counts as refaults */
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (256 * KIB), true), 0);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "workingset_refault_file"), 64);
        assert_int_equal(fx_key(f, "vm", "memory.stat", "pgmajfault"), 64);
        /* swappiness= only where the kernel takes it */
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "4096 swappiness=60"), -EINVAL);
        fx_free(f);

        KModelConfig swp = { .mode = CG_MODE_UNIFIED, .reclaim_swappiness = true };
        f = mem_fixture(&swp);
        tid = vm_with_process(f, "vm");
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, true), 0);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "4096 swappiness=60"), 0);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "4096 swappiness=201"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "memory.reclaim", "4096 bogus=1"), -EINVAL);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB - 4 * KIB);
        fx_free(f);
}

/* memory.low is best effort (taken only when nothing else is left),
 * memory.min is never reclaimed; a target's own protection is ignored. */
static void test_protection(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        Fx *f = mem_fixture(&cfg);
        pid_t a = vm_with_process(f, "a"), b = vm_with_process(f, "b");

        assert_int_equal(fx_write(f, "a", "memory.low", "1M"), 0);
        assert_int_equal(km_mem_charge(f->m, a, (int64_t) MIB, true), 0);
        assert_int_equal(km_mem_charge(f->m, b, (int64_t) MIB, true), 0);
        assert_int_equal(fx_write(f, "", "memory.reclaim", "1M"), 0);
        assert_int_equal(fx_u64(f, "a", "memory.current"), MIB);
        assert_int_equal(fx_u64(f, "b", "memory.current"), 0);
        assert_int_equal(fx_key(f, "a", "memory.events", "low"), 0);

        assert_int_equal(fx_write(f, "", "memory.reclaim", "512K"), 0);
        assert_int_equal(fx_u64(f, "a", "memory.current"), 512 * KIB);
        assert_int_equal(fx_key(f, "a", "memory.events", "low"), 1);

        assert_int_equal(fx_write(f, "a", "memory.min", "512K"), 0);
        assert_int_equal(fx_write(f, "", "memory.reclaim", "4096"), -EAGAIN);
        assert_int_equal(fx_u64(f, "a", "memory.current"), 512 * KIB);
        /* reclaim aimed at a itself does not honour a's own protection */
        assert_int_equal(fx_write(f, "a", "memory.reclaim", "4096"), 0);
        assert_int_equal(fx_u64(f, "a", "memory.current"), 508 * KIB);
        fx_free(f);
}

/* Lowering memory.max with O_NONBLOCK does not reclaim; a blocking write
 * does, and counts an OOM for what it cannot free. */
static void test_max_nonblock(void **state) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        Fx *f = mem_fixture(&cfg);
        pid_t tid = vm_with_process(f, "vm");

        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) MIB, true), 0);
        assert_int_equal(fx_write_nb(f, "vm", "memory.max", "512K", 1), 0);
        fx_expect(f, "vm", "memory.max", "524288\n");
        assert_int_equal(fx_u64(f, "vm", "memory.current"), MIB);
        assert_int_equal(fx_write_nb(f, "vm", "memory.max", "512K", 0), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), 512 * KIB);
        assert_int_equal(fx_write_nb(f, "vm", "memory.high", "256K", 1), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), 512 * KIB);
        assert_int_equal(fx_write_nb(f, "vm", "memory.high", "256K", 0), 0);
        assert_int_equal(fx_u64(f, "vm", "memory.current"), 256 * KIB);
        assert_int_equal(fx_write(f, "vm", "memory.high", "max"), 0);
        assert_int_equal(km_mem_charge(f->m, tid, (int64_t) (128 * KIB), false), 0);
        assert_int_equal(fx_write(f, "vm", "memory.max", "0"), 0);
        fx_expect(f, "vm", "memory.max", "0\n");
        assert_int_equal(fx_u64(f, "vm", "memory.current"), 128 * KIB);
        assert_int_equal(fx_key(f, "vm", "memory.events", "oom"), 1);
        /* the writer is not a model task: nobody stalled */
        fx_expect(f, "vm", "memory.pressure",
                  "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        fx_free(f);
}

static void test_dmem_files(void **state) {
        KModelDmemRegion regions[] = { { REGION, 100 }, { "drm/1/vram0", 50 } };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .dmem_regions = regions,
                             .n_dmem_regions = 2 };
        Fx *f = fx_new(&cfg);
        char buf[256];

        fx_v2_subtree(f, "+memory +dmem");
        assert_int_equal(fx_mkdir(f, "vm"), 0);
        fx_expect(f, NULL, "dmem.capacity", REGION " 100\ndrm/1/vram0 50\n");
        assert_int_equal(f->ops->exists(f->be, 0, "vm", "dmem.capacity"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, "vm", "dmem.high"), 0);
        fx_expect(f, "vm", "dmem.max", REGION " max\ndrm/1/vram0 max\n");
        fx_expect(f, "vm", "dmem.min", REGION " 0\ndrm/1/vram0 0\n");
        fx_expect(f, "vm", "dmem.low", REGION " 0\ndrm/1/vram0 0\n");
        fx_expect(f, "vm", "dmem.current", REGION " 0\ndrm/1/vram0 0\n");
        assert_int_equal(fx_write(f, "vm", "dmem.max", "drm/1/vram0 1K"), 0);
        fx_expect(f, "vm", "dmem.max", REGION " max\ndrm/1/vram0 1024\n");
        assert_int_equal(fx_write(f, "vm", "dmem.max", "bogus 10"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "dmem.max", REGION), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "dmem.max", REGION " abc"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "dmem.min", REGION " 7\n"), 0);
        fx_expect(f, "vm", "dmem.min", REGION " 7\ndrm/1/vram0 0\n");
        assert_int_equal(fx_read(f, "", "dmem.capacity", buf, sizeof(buf)), -ENOENT);
        fx_free(f);
}

/* Eviction when a region is full: above dmem.high first, then above
 * dmem.low, then above dmem.min, the largest excess first; never below
 * dmem.min; nothing at all when it would not be enough. */
static void test_dmem_eviction_order(void **state) {
        KModelDmemRegion regions[] = { { REGION, 100 } };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .dmem_regions = regions,
                             .n_dmem_regions = 1, .dmem_high = true };
        static const char *const names[] = { "a", "b", "c", "d", "e" };
        static const struct {
                int64_t charge; /* by e */
                int r;
                uint64_t after[5];
        } steps[] = {
                /* need 30: a's 20 above high, then b (excess 20) before a (10) */
                { 40, 0, { 10, 15, 20, 15, 40 } },
                /* need 20: a and b tie at 10 above low: tree order */
                { 20, 0, { 0, 5, 20, 15, 60 } },
                /* need 20: above min only: c (15) before b (5) */
                { 20, 0, { 0, 0, 5, 15, 80 } },
                /* only protected memory left */
                { 1, -ENOSPC, { 0, 0, 5, 15, 80 } },
                { -80, 0, { 0, 0, 5, 15, 0 } },
        };
        Fx *f = fx_new(&cfg);
        pid_t pid[5];

        fx_v2_subtree(f, "+memory +dmem");
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                pid[i] = vm_with_process(f, names[i]);
        assert_int_equal(fx_write(f, "a", "dmem.high", REGION " 10"), 0);
        assert_int_equal(fx_write(f, "b", "dmem.low", REGION " 5"), 0);
        assert_int_equal(fx_write(f, "c", "dmem.low", REGION " 20"), 0);
        assert_int_equal(fx_write(f, "c", "dmem.min", REGION " 5"), 0);
        assert_int_equal(fx_write(f, "d", "dmem.min", REGION " 15"), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[0], REGION, 30), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[1], REGION, 25), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[2], REGION, 20), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[3], REGION, 15), 0);
        fx_expect(f, "", "dmem.current", REGION " 90\n");

        for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
                assert_int_equal(km_dmem_charge(f->m, pid[4], REGION, steps[s].charge),
                                 steps[s].r);
                for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                        char want[64];

                        snprintf(want, sizeof(want), REGION " %" PRIu64 "\n", steps[s].after[i]);
                        fx_expect(f, names[i], "dmem.current", want);
                }
        }

        /* dmem.max: a charge beyond it is -EAGAIN; a max below usage is
         * accepted and not applied. */
        assert_int_equal(km_dmem_charge(f->m, pid[4], REGION, 50), 0);
        assert_int_equal(fx_write(f, "e", "dmem.max", REGION " 10"), 0);
        fx_expect(f, "e", "dmem.max", REGION " max\n");
        assert_int_equal(fx_write(f, "e", "dmem.max", REGION " 60"), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[4], REGION, 11), -EAGAIN);
        assert_int_equal(km_dmem_charge(f->m, pid[4], REGION, 10), 0);
        assert_int_equal(km_dmem_charge(f->m, pid[4], REGION, -61), -EINVAL);
        assert_int_equal(km_dmem_charge(f->m, pid[4], "nope", 1), -EINVAL);
        assert_int_equal(km_dmem_charge(f->m, 4242, REGION, 1), -ESRCH);
        fx_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_formats),  cmocka_unit_test(test_over_high),
                cmocka_unit_test(test_over_max),       cmocka_unit_test(test_memory_reclaim),
                cmocka_unit_test(test_protection),     cmocka_unit_test(test_max_nonblock),
                cmocka_unit_test(test_dmem_files),     cmocka_unit_test(test_dmem_eviction_order),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
