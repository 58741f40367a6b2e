/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model suite: vmmgr's reclaim pool (vmmgr/engine/reclaim-pool.h) driving
 * memory.reclaim on the kernel model, in its 0-thread mode (the model is
 * single-threaded): requests are done in chunks, a new submit replaces
 * the pending amount, the kernel's -EAGAIN ends a request early with what
 * was done, a cancel drops a pending request, and results come back
 * through the eventfd.  The threaded mode runs against a real kernel in
 * the real-kernel tier (tests/memory/test-memory-stall.c).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"
#include "tests/common/model-world.h"
#include "vmmgr/engine/reclaim-pool.h"

#define MIB (UINT64_C(1) << 20)

typedef ModelWorld World;

static void world_open(World *w) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };

        model_world_open(w, &cfg);
}

static void world_close(World *w) {
        model_world_close(w);
}

static uint64_t usage(World *w, int i) {
        MemStat st;

        assert_int_equal(kh_mem_read(w->host, &w->vm[i], &st), 0);
        return st.current;
}

static bool readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, 0) == 1;
}

static void test_chunks_and_partial(void **state) {
        _cleanup_reclaim_pool_ ReclaimPool *p = NULL;
        ReclaimPoolStats st;
        ReclaimResult res[4];
        World w;

        world_open(&w);
        /* 64 MiB of page cache: reclaimable. */
        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], 64 * MIB, true), 0);
        assert_int_equal(reclaim_pool_new(w.host, 0, 4, &p), 0);
        assert_int_equal(reclaim_pool_threads(p), 0);
        assert_true(reclaim_pool_max_threads(p) >= 1);

        assert_int_equal(reclaim_pool_submit(p, &w.vm[0], 40 * MIB, 16 * MIB, -1, 7), 0);
        /* A newer decision replaces the pending amount. */
        assert_int_equal(reclaim_pool_submit(p, &w.vm[0], 24 * MIB, 8 * MIB, -1, 8), 0);
        assert_true(reclaim_pool_busy(p, &w.vm[0]));
        assert_false(readable(reclaim_pool_fd(p)));
        reclaim_pool_run_pending(p);
        assert_false(reclaim_pool_busy(p, &w.vm[0]));
        assert_true(readable(reclaim_pool_fd(p)));
        assert_int_equal(reclaim_pool_collect(p, res, 4), 1);
        assert_false(readable(reclaim_pool_fd(p)));
        assert_string_equal(res[0].vm.str, w.vm[0].str);
        assert_int_equal(res[0].error, 0);
        assert_true(res[0].asked == 24 * MIB && res[0].done == 24 * MIB);
        assert_int_equal(res[0].chunks, 3);
        assert_int_equal(res[0].tag, 8);
        assert_true(usage(&w, 0) == 40 * MIB);

        /* Only 40 MiB left to take: asking 64 ends early with -EAGAIN, after
         * the chunks the kernel could do. */
        assert_int_equal(reclaim_pool_submit(p, &w.vm[0], 64 * MIB, 16 * MIB, -1, 9), 0);
        reclaim_pool_run_pending(p);
        assert_int_equal(reclaim_pool_collect(p, res, 4), 1);
        assert_int_equal(res[0].error, -EAGAIN);
        assert_true(res[0].done == 32 * MIB);
        assert_int_equal(res[0].chunks, 3);
        assert_true(usage(&w, 0) == 0);

        reclaim_pool_stats(p, &st);
        assert_int_equal(st.requests, 2);
        assert_int_equal(st.partial, 1);
        assert_int_equal(st.chunks, 6);
        assert_true(st.bytes_done == 56 * MIB);
        p = reclaim_pool_free(p);
        world_close(&w);
}

static void test_cancel_and_order(void **state) {
        _cleanup_reclaim_pool_ ReclaimPool *p = NULL;
        ReclaimResult res[4];
        World w;

        world_open(&w);
        assert_int_equal(km_mem_charge(w.model, w.vcpu[0], 32 * MIB, true), 0);
        assert_int_equal(km_mem_charge(w.model, w.vcpu[1], 32 * MIB, true), 0);
        assert_int_equal(reclaim_pool_new(w.host, 0, 2, &p), 0);
        assert_int_equal(reclaim_pool_submit(p, &w.vm[0], 0, 0, -1, 0), -EINVAL);
        assert_int_equal(reclaim_pool_submit(p, &w.vm[0], 8 * MIB, 0, -1, 1), 0);
        assert_int_equal(reclaim_pool_submit(p, &w.vm[1], 16 * MIB, 0, -1, 2), 0);
        /* A pending request cancelled is gone, with no result. */
        assert_true(reclaim_pool_cancel(p, &w.vm[0]));
        assert_false(reclaim_pool_cancel(p, &w.vm[0]));
        reclaim_pool_run_pending(p);
        assert_int_equal(reclaim_pool_collect(p, res, 4), 1);
        assert_string_equal(res[0].vm.str, w.vm[1].str);
        assert_true(res[0].done == 16 * MIB && res[0].chunks == 1); /* default chunk 16 MiB */
        assert_true(usage(&w, 0) == 32 * MIB && usage(&w, 1) == 16 * MIB);
        /* A VM without a memory group: the write's error comes back. */
        {
                VmId gone;

                assert_int_equal(vm_id_parse("33333333-3333-4333-8333-333333333333", &gone), 0);
                assert_int_equal(reclaim_pool_submit(p, &gone, MIB, 0, -1, 3), 0);
                reclaim_pool_run_pending(p);
                assert_int_equal(reclaim_pool_collect(p, res, 4), 1);
                assert_int_equal(res[0].error, -ENOENT);
                assert_int_equal(res[0].done, 0);
        }
        p = reclaim_pool_free(p);
        world_close(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_chunks_and_partial),
                cmocka_unit_test(test_cancel_and_order),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
