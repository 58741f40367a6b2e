/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu suite: binding a real QEMU's threads into a VM's role groups on
 * this host's cpu controller, in a subtree of our own that is removed at
 * the end.  Skips (77) without root, QEMU, or a writable cpu controller.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/kernel.h"
#include "qmp/qmp.h"
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/binding.h"

#define UUID "7d3f0b1e-2c4a-4e5f-9a6b-8c7d6e5f4a3b"

typedef struct Fixture {
        TestQemu *vm;
        Qmp *qmp;
        KHost *host;
        VmId id;
        char subtree[64];
} Fixture;

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
                print_message("skip: needs root for cgroups\n");
                return 0;
        }
        snprintf(f->subtree, sizeof(f->subtree), "vmmgr-test-%d", (int) getpid());
        cfg.subtree = f->subtree;
        if (kh_open(&cfg, &f->host) < 0 || !kh_manages(f->host, CG_CTRL_CPU) || kh_subtree_setup(f->host) < 0) {
                print_message("skip: no writable cpu controller\n");
                f->host = kh_free(f->host);
                return 0;
        }
        r = test_qemu_start(&opts, &f->vm);
        if (r == -ENOENT) {
                print_message("skip: no qemu-system-x86_64\n");
                return 0;
        }
        if (r < 0)
                return -1;
        r = qmp_connect_sync(test_qemu_qmp_path(f->vm, 0), 5000, &f->qmp, &reason);
        free(reason);
        if (r < 0)
                return -1;
        vm_id_parse(UUID, &f->id);
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
                if (!(f)->vm || !(f)->host)           \
                        skip();                       \
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

        assert_int_equal(vm_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
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
        pid_t pid = test_qemu_pid(f->vm ? f->vm : NULL), *tids = NULL;
        size_t n;

        NEED_QEMU(f);
        assert_int_equal(vm_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
        /* A QEMU that claims our own thread is a vCPU must not get it moved. */
        roles.vcpus[1] = getpid();
        assert_int_equal(vm_bind(f->host, &f->id, pid, &roles, &st), 0);
        assert_int_equal(st.foreign, 1);
        assert_int_equal(kh_vm_threads(f->host, &f->id, CG_ROLE_VCPUS, &tids, &n), 0);
        assert_false(has(tids, n, getpid()));
        free(tids);
        vm_thread_roles_done(&roles);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
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
        assert_int_equal(vm_thread_roles_query(f->qmp, 5000, &roles, &err), 0);
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
        return cmocka_run_group_tests(tests, setup, teardown);
}
