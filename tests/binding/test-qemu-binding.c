/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu suite: binding a real QEMU's threads into a VM's role groups on
 * this host's cpu controller, in a subtree of our own that is removed at
 * the end.  Skips (77) without root, a writable cpu controller or an
 * installed QEMU; a QEMU that is installed (or named by VMMGR_QEMU) and
 * does not start, or does not answer QMP, fails the group.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/common/vtest.h"
#include "kernel/kernel.h"
#include "qmp/qmp.h"
#include "tests/qmp/qemu-helper.h"
#include "tests/common/thread-roles.h"
#include "vmmgr/engine/binding.h"

#define UUID "7d3f0b1e-2c4a-4e5f-9a6b-8c7d6e5f4a3b"

typedef struct Fixture {
        TestQemu *vm;
        Qmp *qmp;
        KHost *host;
        VmId id;
        char subtree[64];
        char skip[128]; /* why every case skips; "" when they run */
} Fixture;

/* Fills f->skip for what this host does not offer; returns -1 for what
 * is there and fails. */
static int setup(void **state) {
        static const TestQemuOptions opts = { .smp = 2, .n_iothreads = 1, .uuid = UUID };
        KHostConfig cfg = { 0 };
        Fixture *f = calloc(1, sizeof(*f));
        char *reason = NULL;
        int r;

        if (!f)
                return -1;
        *state = f;
        if (geteuid() != 0) {
                snprintf(f->skip, sizeof(f->skip), "needs root for cgroups");
                return 0;
        }
        snprintf(f->subtree, sizeof(f->subtree), "vmmgr-test-%d", (int) getpid());
        cfg.subtree = f->subtree;
        r = kh_open(&cfg, &f->host);
        if (r == 0 && !kh_manages(f->host, CG_CTRL_CPU))
                r = -EOPNOTSUPP;
        if (r == 0)
                r = kh_subtree_setup(f->host);
        if (r < 0) {
                snprintf(f->skip, sizeof(f->skip), "no writable cpu controller: %s", strerror(-r));
                f->host = kh_free(f->host);
                return 0;
        }
        vm_id_parse(UUID, &f->id);
        r = test_qemu_start(&opts, &f->vm);
        if (r == -ENOENT) {
                snprintf(f->skip, sizeof(f->skip), "QEMU is not installed (no qemu-system-x86_64 on PATH)");
                return 0;
        }
        if (r < 0) {
                fprintf(stderr, "QEMU did not start: %s\n", strerror(-r));
                return -1; /* cmocka still runs the group teardown */
        }
        r = qmp_connect_sync(test_qemu_qmp_path(f->vm, 0), 5000, &f->qmp, &reason);
        if (r < 0) {
                fprintf(stderr, "QMP connect: %s\n", reason ? reason : strerror(-r));
                free(reason);
                return -1;
        }
        free(reason);
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        qmp_free(f->qmp);
        test_qemu_stop(f->vm);
        if (f->host) {
                /* QEMU is gone: its groups are empty and must go. */
                int r = kh_vm_remove(f->host, &f->id);
                int s = kh_subtree_remove(f->host);
                kh_free(f->host);
                if (r < 0 || s < 0) {
                        fprintf(stderr, "cleanup failed: vm %d subtree %d\n", r, s);
                        free(f);
                        return -1;
                }
        }
        free(f);
        return 0;
}

#define NEED_QEMU(f)                                  \
        do {                                          \
                if ((f)->skip[0])                     \
                        vt_skip("%s", (f)->skip);     \
        } while (0)

static bool comm_is(pid_t pid, pid_t tid, const char *prefix) {
        char path[64], buf[64] = "";
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int) pid, (int) tid);
        fp = fopen(path, "re");
        if (!fp)
                return false;
        if (!fgets(buf, sizeof(buf), fp))
                buf[0] = '\0';
        fclose(fp);
        return strncmp(buf, prefix, strlen(prefix)) == 0;
}

static bool has(const pid_t *l, size_t n, pid_t p) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == p)
                        return true;
        return false;
}

static void test_bind(void **state) {
        Fixture *f = *state;
        VmThreadRoles roles = { 0 };
        VmBindStats st;
        QmpError err = { 0 };
        pid_t pid, *tids = NULL, *all = NULL;
        size_t n, nall;

        NEED_QEMU(f);
        /* The pid comes from the socket, not from anything QEMU says. */
        assert_int_equal(vm_socket_peer_pid(qmp_get_fd(f->qmp), &pid), 0);
        assert_int_equal(pid, test_qemu_pid(f->vm));

        assert_int_equal(test_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
        assert_int_equal(roles.n_vcpus, 2);
        assert_int_equal(roles.n_io, 1);
        for (size_t i = 0; i < roles.n_vcpus; i++)
                assert_true(comm_is(pid, roles.vcpus[i], "CPU "));
        assert_true(comm_is(pid, roles.io[0], "IO io0"));

        assert_int_equal(vm_bind(f->host, &f->id, pid, &roles, &st), 0);
        assert_int_equal(st.foreign, 0);
        assert_int_equal(kh_process_threads(f->host, pid, &all, &nall), 0);
        assert_true(st.moved + st.in_place + st.vanished == nall);

        assert_int_equal(kh_vm_threads(f->host, &f->id, CG_ROLE_VCPUS, &tids, &n), 0);
        assert_int_equal(n, 2);
        assert_true(has(tids, n, roles.vcpus[0]) && has(tids, n, roles.vcpus[1]));
        free(tids);
        assert_int_equal(kh_vm_threads(f->host, &f->id, CG_ROLE_IO, &tids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tids[0], roles.io[0]);
        free(tids);
        assert_int_equal(kh_vm_threads(f->host, &f->id, CG_ROLE_EMULATOR, &tids, &n), 0);
        assert_true(n >= 1);
        /* Everything else, QEMU's own monitor thread ("IO mon_iothread",
         * not a user iothread) included. */
        for (size_t i = 0; i < n; i++) {
                assert_false(has(roles.vcpus, roles.n_vcpus, tids[i]));
                assert_false(has(roles.io, roles.n_io, tids[i]));
                assert_false(comm_is(pid, tids[i], "CPU "));
        }
        free(tids);

        /* Again: nothing moves (a restarted daemon must not disturb). */
        assert_int_equal(vm_bind(f->host, &f->id, pid, &roles, &st), 0);
        assert_int_equal(st.moved, 0);
        free(all);
        vm_thread_roles_done(&roles);
}

static void test_foreign_thread_ignored(void **state) {
        Fixture *f = *state;
        VmThreadRoles roles = { 0 };
        VmBindStats st;
        QmpError err = { 0 };
        pid_t pid, *tids = NULL;
        size_t n;

        NEED_QEMU(f);
        pid = test_qemu_pid(f->vm);
        assert_int_equal(test_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
        /* A QEMU that claims our own thread is a vCPU must not get it moved. */
        roles.vcpus[1] = getpid();
        assert_int_equal(vm_bind(f->host, &f->id, pid, &roles, &st), 0);
        assert_int_equal(st.foreign, 1);
        assert_int_equal(kh_vm_threads(f->host, &f->id, CG_ROLE_VCPUS, &tids, &n), 0);
        assert_false(has(tids, n, getpid()));
        free(tids);
        vm_thread_roles_done(&roles);
}

static void test_vcpu_quota(void **state) {
        Fixture *f = *state;
        VmThreadRoles roles = { 0 };
        QmpError err = { 0 };
        CpuBandwidth bw = { .period_usec = 100000, .quota_usec = 20000 };
        uint64_t u0, u1, t0, t1;
        pid_t pid;
        double pct;

        NEED_QEMU(f);
        pid = test_qemu_pid(f->vm);
        assert_int_equal(test_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
        assert_int_equal(vm_bind(f->host, &f->id, pid, &roles, NULL), 0);
        /* vCPU 0 spins on "jmp $": a full CPU before, 20 % after. */
        assert_int_equal(kh_thread_cpu_usec(f->host, pid, roles.vcpus[0], &u0), 0);
        t0 = now_usec();
        usleep(500000);
        assert_int_equal(kh_thread_cpu_usec(f->host, pid, roles.vcpus[0], &u1), 0);
        t1 = now_usec();
        pct = (double) (u1 - u0) * 100.0 / (double) (t1 - t0);
        print_message("vCPU 0 unlimited: %.1f %%\n", pct);
        assert_true(pct > 60.0);

        assert_true(kh_cpu_set_bandwidth(f->host, &f->id, CG_ROLE_VCPUS, &bw, NULL) >= 0);
        usleep(300000);
        assert_int_equal(kh_thread_cpu_usec(f->host, pid, roles.vcpus[0], &u0), 0);
        t0 = now_usec();
        sleep(2);
        assert_int_equal(kh_thread_cpu_usec(f->host, pid, roles.vcpus[0], &u1), 0);
        t1 = now_usec();
        pct = (double) (u1 - u0) * 100.0 / (double) (t1 - t0);
        print_message("vCPU 0 at quota 20 ms / 100 ms: %.2f %%\n", pct);
        assert_true(pct >= 18.0 && pct <= 22.0);
        vm_thread_roles_done(&roles);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bind),
                cmocka_unit_test(test_foreign_thread_ignored),
                cmocka_unit_test(test_vcpu_quota),
        };
        return vt_run_group_tests(tests, setup, teardown);
}
