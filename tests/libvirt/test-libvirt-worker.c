/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Model tests: vmmgrd's libvirt worker (vmmgr/daemon/libvirt-worker.c)
 * against libvirt's built-in test driver, test:///default (in libvirt0: no
 * libvirtd, no root; one running domain, "test", which every connection of
 * the process shares).  With libvirt's event loop registered on this
 * thread's sd-event loop as vmmgrd does (libvirt-loop.c refuses calls from
 * the worker's thread, which is the point: the worker must not need them).
 *
 * Covered: the facts of a running domain (name, state, vCPUs, memory, no
 * credit spec) arrive on the loop; an unknown domain is -ENOENT; the
 * credit spec is written, reported done, and read back through the worker
 * and through a connection of the loop's; a balloon target is set (the
 * domain's current memory follows); requests for the same domain are
 * merged while queued; bad UUIDs are refused; the worker stops with
 * requests still queued.
 * Exit: 0 pass, 1 fail, 77 when the test driver is missing.
 */
#include <errno.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "tests/common/vtest.h"
#include "vmmgr/daemon/libvirt-loop.h"
#include "vmmgr/daemon/libvirt-worker.h"

#define URI "test:///default"
#define MSEC UINT64_C(1000)

static sd_event *loop;
static char test_uuid[LV_UUID_STRING_MAX];

typedef struct Got {
        LvDomainFacts facts[8];
        size_t n_facts;
        int writes, write_r;
        char write_error[256];
} Got;

static void on_facts(const LvDomainFacts *f, void *userdata) {
        Got *g = userdata;

        if (g->n_facts < sizeof(g->facts) / sizeof(g->facts[0]))
                g->facts[g->n_facts++] = *f;
}

static void on_write(const char *uuid, int r, const char *error, void *userdata) {
        Got *g = userdata;

        g->writes++;
        g->write_r = r;
        snprintf(g->write_error, sizeof(g->write_error), "%s", error ? error : "");
}

/* Runs the loop until `cond` holds or 5 s have passed. */
#define RUN_UNTIL(cond)                                                                                              \
        do {                                                                                                         \
                for (int _i = 0; _i < 500 && !(cond); _i++)                                                          \
                        assert_true(sd_event_run(loop, 10 * MSEC) >= 0);                                             \
                assert_true(cond);                                                                                   \
        } while (0)

static int group_setup(void **state) {
        virConnectPtr c;
        virDomainPtr dom;

        (void) state;
        assert_true(sd_event_new(&loop) >= 0);
        assert_int_equal(lv_loop_register(loop), 0);
        c = virConnectOpen(URI);
        if (!c)
                return -1;
        dom = virDomainLookupByName(c, "test");
        assert_non_null(dom);
        assert_int_equal(virDomainGetUUIDString(dom, test_uuid), 0);
        virDomainFree(dom);
        virConnectClose(c);
        return 0;
}

static void test_facts(void **state) {
        LvWorker *w = NULL;
        Got g = { 0 };
        const LvDomainFacts *f;

        (void) state;
        assert_int_equal(lv_worker_new(loop, URI, on_facts, &g, &w), 0);
        assert_int_equal(lv_worker_request(w, test_uuid), 0);
        assert_int_equal(lv_worker_request(w, "00000000-0000-4000-8000-00000000dead"), 0);
        RUN_UNTIL(g.n_facts == 2);
        f = &g.facts[0];
        assert_string_equal(f->uuid, test_uuid);
        assert_int_equal(f->r, 0);
        assert_string_equal(f->name, "test");
        assert_int_equal(f->state, VIR_DOMAIN_RUNNING);
        assert_true(f->nr_vcpus >= 1);
        assert_true(f->max_mem_kib > 0);
        assert_int_equal(f->credits_r, -ENOENT); /* no <vmmgr:credits> yet */
        assert_int_equal(g.facts[1].r, -ENOENT);
        assert_string_equal(g.facts[1].uuid, "00000000-0000-4000-8000-00000000dead");
        assert_int_equal(lv_worker_pending(w), 0);
        lv_worker_free(w);
}

static void test_bad_requests(void **state) {
        LvWorker *w = NULL;
        Got g = { 0 };

        (void) state;
        assert_int_equal(lv_worker_new(loop, URI, on_facts, &g, &w), 0);
        assert_int_equal(lv_worker_request(w, "not-a-uuid"), -EINVAL);
        assert_int_equal(lv_worker_request(w, "../../etc/passwd"), -EINVAL);
        assert_int_equal(lv_worker_set_memory(w, test_uuid, 0, on_write, &g), -EINVAL);
        assert_int_equal(lv_worker_set_credits(w, test_uuid, NULL, on_write, &g), -EINVAL);
        lv_worker_free(w);
        assert_int_equal(g.n_facts, 0);
}

static void test_credits_written_and_read(void **state) {
        LvCredits c = { .set = LV_CREDITS_CLASS | LV_CREDITS_LAUNCH, .class_name = "t3.small",
                        .launch_usec = 30 * 1000000 };
        LvCreditsError err = { 0 };
        LvWorker *w = NULL;
        Got g = { 0 };
        virConnectPtr conn;
        virDomainPtr dom;
        LvCredits back;

        (void) state;
        assert_int_equal(lv_worker_new(loop, URI, on_facts, &g, &w), 0);
        assert_int_equal(lv_worker_set_credits(w, test_uuid, &c, on_write, &g), 0);
        RUN_UNTIL(g.writes == 1);
        assert_int_equal(g.write_r, 0);
        /* Through the worker ... */
        assert_int_equal(lv_worker_request(w, test_uuid), 0);
        RUN_UNTIL(g.n_facts == 1);
        assert_int_equal(g.facts[0].credits_r, 0);
        assert_string_equal(g.facts[0].credits.class_name, "t3.small");
        assert_int_equal(g.facts[0].credits.launch_usec, 30 * 1000000);
        /* ... and through a connection of this thread's. */
        conn = virConnectOpen(URI);
        assert_non_null(conn);
        dom = virDomainLookupByUUIDString(conn, test_uuid);
        assert_non_null(dom);
        assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &back, &err), 0);
        assert_string_equal(back.class_name, "t3.small");
        /* Removed again for the other cases. */
        assert_int_equal(lv_credits_set(dom, NULL, &err), 0);
        virDomainFree(dom);
        virConnectClose(conn);
        lv_worker_free(w);
}

static void test_balloon_target(void **state) {
        LvWorker *w = NULL;
        Got g = { 0 };
        virConnectPtr conn;
        virDomainPtr dom;
        virDomainInfo info;
        unsigned long long target;

        (void) state;
        conn = virConnectOpen(URI);
        assert_non_null(conn);
        dom = virDomainLookupByUUIDString(conn, test_uuid);
        assert_non_null(dom);
        assert_int_equal(virDomainGetInfo(dom, &info), 0);
        target = info.maxMem / 2;
        assert_int_equal(lv_worker_new(loop, URI, on_facts, &g, &w), 0);
        /* Two targets queued before the worker gets to them may merge: the
         * newer one is what libvirt gets. */
        assert_int_equal(lv_worker_set_memory(w, test_uuid, target + 1024, on_write, &g), 0);
        assert_int_equal(lv_worker_set_memory(w, test_uuid, target, on_write, &g), 0);
        RUN_UNTIL(lv_worker_pending(w) == 0 && g.writes >= 1);
        assert_int_equal(g.write_r, 0);
        assert_int_equal(virDomainGetInfo(dom, &info), 0);
        assert_int_equal(info.memory, target);
        /* Above the maximum: libvirt's refusal comes back with its message. */
        assert_int_equal(lv_worker_set_memory(w, test_uuid, (unsigned long long) info.maxMem * 4, on_write, &g), 0);
        g.writes = 0;
        RUN_UNTIL(g.writes == 1);
        assert_true(g.write_r < 0);
        assert_true(g.write_error[0] != '\0');
        print_message("refused: %s\n", g.write_error);
        virDomainFree(dom);
        virConnectClose(conn);
        lv_worker_free(w);
}

/* Requests for the same domain merge while queued; the worker stops with
 * requests still queued (their answers are dropped). */
static void test_merge_and_stop(void **state) {
        LvWorker *w = NULL;
        Got g = { 0 };

        (void) state;
        assert_int_equal(lv_worker_new(loop, URI, on_facts, &g, &w), 0);
        for (int i = 0; i < 50; i++)
                assert_int_equal(lv_worker_request(w, test_uuid), 0);
        assert_true(lv_worker_pending(w) <= 3); /* answered, in progress, queued: one each at most */
        RUN_UNTIL(lv_worker_pending(w) == 0);
        assert_true(g.n_facts >= 1 && g.n_facts <= 3);
        for (int i = 0; i < 20; i++) {
                char uuid[LV_UUID_STRING_MAX];

                snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012d", i);
                assert_int_equal(lv_worker_request(w, uuid), 0);
        }
        lv_worker_free(w); /* must not hang or crash */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_facts),
                cmocka_unit_test(test_bad_requests),
                cmocka_unit_test(test_credits_written_and_read),
                cmocka_unit_test(test_balloon_target),
                cmocka_unit_test(test_merge_and_stop),
        };
        virConnectPtr probe = virConnectOpen(URI);

        if (!probe) {
                printf("SKIP: libvirt's test driver is not available: %s\n", virGetLastErrorMessage());
                return 77;
        }
        virConnectClose(probe);
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
