/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/vmmgrd-fixture.h - the qemu suite's end-to-end fixture: a
 * real vmmgrd (its own state dir, socket and cgroup subtree, started with
 * tests/common/vmmgrd-launch.h) and two real QEMU VMs, for cmocka group
 * setups and teardowns.
 *
 *   static TestVmmgrdFixture F;
 *
 *   static int setup(void **state) {
 *           return test_vmmgrd_fixture_setup(&F, "/tmp/vmmgr-x-XXXXXX", &(TestQemuOptions) { .smp = 1 });
 *   }
 *   static int teardown(void **state) {
 *           return test_vmmgrd_fixture_teardown(&F);
 *   }
 *   static void test_x(void **state) {
 *           TEST_VMMGRD_FIXTURE_NEED(&F);    // skips, with F.skip, where there is no host
 *           ...  test_vmmgrd_fixture_call(&F, "GET", "/v1/vms", NULL, &reply) ...
 *   }
 *
 * The cases skip (F.skip says why) without root, a writable cpu
 * controller or an installed QEMU; a QEMU that is there and does not
 * start, or a vmmgrd that does not come up, fails the setup.  The
 * test links vmmgr_dep and test_qemu_helper_dep.
 */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/kernel.h"
#include "tests/common/vmmgrd-launch.h"
#include "tests/common/vtest.h"
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/api/http-client.h"

#define TEST_VMMGRD_FIXTURE_VMS 2

typedef struct TestVmmgrdFixture {
        char dir[64], socket[128], state[128], subtree[64], log[128];
        pid_t daemon;
        TestQemu *vm[TEST_VMMGRD_FIXTURE_VMS];
        char skip[160];      /* why every case skips; "" when they run */
        bool memory_managed; /* the probe: vmmgr manages cgroup v2 memory here */
} TestVmmgrdFixture;

/* In a case: skip it, with the reason, where the setup found no host. */
#define TEST_VMMGRD_FIXTURE_NEED(f)                                                                                    \
        do {                                                                                                           \
                if ((f)->skip[0])                                                                                      \
                        vt_skip("%s", (f)->skip);                                                                      \
        } while (0)

/* Starts vmmgrd on the fixture's paths.  Up and answering, or an error
 * already explained on stderr. */
static inline int test_vmmgrd_fixture_start(TestVmmgrdFixture *f) {
        TestVmmgrdOptions o = {
                .socket = f->socket,
                .state_dir = f->state,
                .subtree = f->subtree,
                .remove_subtree_on_exit = true,
                .log = getenv("VMMGR_TEST_VERBOSE") ? NULL : f->log,
        };

        return test_vmmgrd_start(&o, &f->daemon);
}

/* test_vmmgrd_stop() on the fixture's vmmgrd: its wait status. */
static inline int test_vmmgrd_fixture_stop(TestVmmgrdFixture *f, int sig) {
        return test_vmmgrd_stop(&f->daemon, sig, f->log);
}

/* Makes the directory from `dir_template` (mkdtemp's XXXXXX), probes the
 * host, starts the two VMs with `opts` and then vmmgrd.  0 also when the
 * cases are to skip (f->skip says why); -1 on a failure. */
static inline int test_vmmgrd_fixture_setup(TestVmmgrdFixture *f, const char *dir_template,
                                            const TestQemuOptions *opts) {
        KHost *h = NULL;
        int r;

        snprintf(f->dir, sizeof(f->dir), "%s", dir_template);
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->socket, sizeof(f->socket), "%s/api.sock", f->dir);
        snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
        snprintf(f->log, sizeof(f->log), "%s/vmmgrd.log", f->dir);
        snprintf(f->subtree, sizeof(f->subtree), "vmmgr-test-%d", (int) getpid());
        if (geteuid() != 0) {
                snprintf(f->skip, sizeof(f->skip), "needs root for cgroups");
                return 0;
        }
        r = kh_open(&(KHostConfig){ .subtree = f->subtree }, &h);
        if (r == 0 && !kh_manages(h, CG_CTRL_CPU))
                r = -EOPNOTSUPP;
        if (r == 0)
                r = kh_subtree_setup(h);
        if (r < 0) {
                snprintf(f->skip, sizeof(f->skip), "no writable cpu controller: %s", strerror(-r));
                kh_free(h);
                return 0;
        }
        /* The same condition vmmgrd's memory engine starts on. */
        f->memory_managed = kh_manages(h, CG_CTRL_MEMORY) && kh_controller_version(h, CG_CTRL_MEMORY) == CG_V2;
        kh_subtree_remove(h);
        kh_free(h);
        for (int i = 0; i < TEST_VMMGRD_FIXTURE_VMS; i++) {
                r = test_qemu_start(opts, &f->vm[i]);
                if (r == -ENOENT) {
                        snprintf(f->skip, sizeof(f->skip), "QEMU is not installed (no qemu-system-x86_64 on PATH)");
                        return 0;
                }
                if (r < 0) {
                        fprintf(stderr, "QEMU did not start: %s\n", strerror(-r));
                        return -1; /* cmocka still runs the teardown */
                }
        }
        if (test_vmmgrd_fixture_start(f) < 0)
                return -1;
        return 0;
}

/* Stops the VMs, then vmmgrd with SIGTERM (-1 when it does not exit 0),
 * and removes the directory. */
static inline int test_vmmgrd_fixture_teardown(TestVmmgrdFixture *f) {
        char cmd[128];
        int r = 0;

        for (int i = 0; i < TEST_VMMGRD_FIXTURE_VMS; i++)
                test_qemu_stop(f->vm[i]);
        if (f->daemon > 0) {
                int status;

                usleep(300000); /* vmmgrd sees QEMU go and removes the groups */
                status = test_vmmgrd_fixture_stop(f, SIGTERM);
                if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "vmmgrd did not stop cleanly on SIGTERM\n");
                        r = -1;
                }
        }
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        (void) !system(cmd);
        return r;
}

/* A request to vmmgrd's socket: the HTTP status, and the body in *ret (the
 * caller frees it; NULL: dropped).  A request that gets no answer fails
 * the case. */
static inline long test_vmmgrd_fixture_call(TestVmmgrdFixture *f, const char *method, const char *path,
                                            const char *body, char **ret) {
        long status = 0;
        char *reply = NULL;
        HttpError err;

        if (http_request(f->socket, method, path, body, 10000, &status, &reply, &err) < 0)
                fail_msg("%s %s: %s", method, path, err.message);
        if (ret)
                *ret = reply;
        else
                free(reply);
        return status;
}
