/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/qmp/test-qmp-qemu.c - libqmp against a real QEMU (suite "qemu").
 *
 * One VM for the whole group (TCG, 2 vCPUs, iothread io0, two QMP
 * monitors), started in the group setup and killed in the group teardown
 * (and by PR_SET_PDEATHSIG if the test process dies).  Every test skips
 * (the program exits 77) when QEMU is not installed; a QEMU that is
 * installed or named by VMMGR_QEMU and does not start fails the group.
 */
#include "tests/common/vtest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macros.h"
#include "qemu-helper.h"
#include "qmp/qmp.h"

#define TIMEOUT_MS 10000

static int group_setup(void **state) {
        static const TestQemuOptions opts = {
                .smp = 2,
                .n_iothreads = 1,
                .n_qmp = 2,
                .uuid = "6c1e0a55-1f3a-4a43-9f5c-3d2b8f0e7a11",
        };
        TestQemu *vm = NULL;
        int r;

        r = test_qemu_start(&opts, &vm);
        if (r == -ENOENT) {
                *state = NULL; /* not installed: each test says so and skips */
                return 0;
        }
        if (r < 0) {
                fprintf(stderr, "starting QEMU failed: %s\n", strerror(-r));
                return -1;
        }
        *state = vm;
        return 0;
}

static int group_teardown(void **state) {
        test_qemu_stop(*state);
        return 0;
}

static Qmp *connect_vm(void **state, unsigned monitor) {
        TestQemu *vm = *state;
        _cleanup_free_ char *reason = NULL;
        Qmp *q = NULL;
        int r;

        if (!vm)
                vt_skip("QEMU is not installed (no qemu-system-x86_64 on PATH, VMMGR_QEMU unset)");
        r = qmp_connect_sync(test_qemu_qmp_path(vm, monitor), TIMEOUT_MS, &q, &reason);
        if (r < 0)
                fail_msg("connecting to QMP monitor %u: %s", monitor, reason ? reason : strerror(-r));
        return q;
}

static bool task_exists(pid_t pid, int64_t tid, char *comm, size_t comm_size) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/task/%lld/comm", (int) pid, (long long) tid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (!fgets(comm, (int) comm_size, f))
                comm[0] = 0;
        comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        return true;
}

static void test_greeting(void **state) {
        Qmp *q = connect_vm(state, 0);
        TestQemu *vm = *state;
        const QmpGreeting *g = qmp_get_greeting(q);
        bool oob = false;

        assert_non_null(g);
        assert_int_equal(g->major, 7);
        assert_non_null(g->package);
        for (char **c = g->capabilities; *c; c++)
                oob = oob || strcmp(*c, "oob") == 0;
        assert_true(oob);
        assert_int_equal(test_qemu_pidfile_pid(vm), test_qemu_pid(vm));
        qmp_free(q);
}

typedef struct Pipelined {
        int done;
        int r[4];
        char *json[4];
} Pipelined;

typedef struct Slot {
        Pipelined *p;
        int i;
} Slot;

static void on_pipelined(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        Slot *s = userdata;

        s->p->r[s->i] = r;
        s->p->json[s->i] = json ? strdup(json) : NULL;
        s->p->done++;
}

static void test_pipelined(void **state) {
        static const char *const commands[4] = { "query-name", "query-uuid", "query-kvm", "query-version" };
        Qmp *q = connect_vm(state, 0);
        Pipelined p = {};
        Slot slots[4];

        for (int i = 0; i < 4; i++) {
                slots[i] = (Slot) { &p, i };
                assert_int_equal(qmp_execute(q, commands[i], NULL, TIMEOUT_MS, on_pipelined, &slots[i]), 0);
        }
        while (p.done < 4) {
                struct pollfd pfd = { .fd = qmp_get_fd(q), .events = qmp_get_events(q) };

                assert_true(poll(&pfd, 1, qmp_get_timeout_ms(q)) >= 0);
                assert_int_equal(qmp_dispatch(q, pfd.revents), 0);
        }
        for (int i = 0; i < 4; i++)
                assert_int_equal(p.r[i], 0);
        assert_non_null(strstr(p.json[0], "vmmgr-test-"));
        assert_string_equal(p.json[1], "{\"UUID\":\"6c1e0a55-1f3a-4a43-9f5c-3d2b8f0e7a11\"}");
        assert_non_null(strstr(p.json[2], "\"enabled\":false"));
        assert_non_null(strstr(p.json[3], "\"major\":7"));
        for (int i = 0; i < 4; i++)
                free(p.json[i]);
        qmp_free(q);
}

typedef struct Events {
        char names[1024];
} Events;

static void on_event(Qmp *q, const QmpEvent *ev, void *userdata) {
        Events *e = userdata;
        size_t n = strlen(e->names);

        snprintf(e->names + n, sizeof(e->names) - n, "%s;", ev->name);
        assert_true(ev->timestamp_sec > 0);
}

static void test_stop_cont_events_two_monitors(void **state) {
        Qmp *q = connect_vm(state, 0);
        Qmp *q2 = connect_vm(state, 1);
        Events e = {}, e2 = {};
        QmpStatus st;
        QmpError err = {};
        char *ret = NULL;

        qmp_set_event_handler(q, on_event, &e);
        qmp_set_event_handler(q2, on_event, &e2);

        assert_int_equal(qmp_execute_sync(q, "stop", NULL, TIMEOUT_MS, &ret, &err), 0);
        assert_string_equal(ret, "{}");
        free(ret);
        /* QEMU emits STOP before the reply to stop, so it is already here. */
        assert_string_equal(e.names, "STOP;");
        assert_int_equal(qmp_query_status(q, TIMEOUT_MS, &st, NULL), 0);
        assert_false(st.running);
        assert_string_equal(st.status, "paused");

        /* The second monitor sees the same VM and the event broadcast. */
        assert_int_equal(qmp_query_status(q2, TIMEOUT_MS, &st, NULL), 0);
        assert_false(st.running);
        assert_string_equal(e2.names, "STOP;");

        assert_int_equal(qmp_execute_sync(q2, "cont", NULL, TIMEOUT_MS, NULL, NULL), 0);
        assert_string_equal(e2.names, "STOP;RESUME;");
        assert_int_equal(qmp_query_status(q, TIMEOUT_MS, &st, NULL), 0);
        assert_true(st.running);
        assert_string_equal(st.status, "running");
        assert_string_equal(e.names, "STOP;RESUME;");

        assert_int_equal(qmp_execute_sync(q, "no-such-command", NULL, TIMEOUT_MS, NULL, &err), -EREMOTEIO);
        assert_string_equal(err.error_class, "CommandNotFound");
        qmp_error_done(&err);
        qmp_free(q2);
        qmp_free(q);
}

static void test_cpus_fast_threads(void **state) {
        Qmp *q = connect_vm(state, 0);
        TestQemu *vm = *state;
        QmpCpu *cpus;
        size_t n;
        char comm[64], want[64];

        assert_int_equal(qmp_query_cpus_fast(q, TIMEOUT_MS, &cpus, &n, NULL), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(cpus[i].cpu_index, (int64_t) i);
                assert_true(cpus[i].thread_id != test_qemu_pid(vm)); /* MTTCG: own thread */
                assert_true(task_exists(test_qemu_pid(vm), cpus[i].thread_id, comm, sizeof(comm)));
                snprintf(want, sizeof(want), "CPU %zu/TCG", i);
                assert_string_equal(comm, want);
                assert_string_equal(cpus[i].target, "x86_64");
                assert_int_equal(cpus[i].socket_id, 0);
                assert_int_equal(cpus[i].core_id, (int64_t) i);
        }
        assert_true(cpus[0].thread_id != cpus[1].thread_id);
        qmp_cpus_free(cpus, n);
        qmp_free(q);
}

static void test_iothreads(void **state) {
        Qmp *q = connect_vm(state, 0);
        TestQemu *vm = *state;
        QmpIothread *io;
        size_t n;
        char comm[64];

        assert_int_equal(qmp_query_iothreads(q, TIMEOUT_MS, &io, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(io[0].id, "io0");
        assert_true(task_exists(test_qemu_pid(vm), io[0].thread_id, comm, sizeof(comm)));
        assert_string_equal(comm, "IO io0");
        qmp_iothreads_free(io, n);
        qmp_free(q);
}

static void test_memory_pci_migrate_balloon(void **state) {
        Qmp *q = connect_vm(state, 0);
        QmpMemorySummary mem;
        QmpPciDevice *pci;
        QmpMigrateInfo mig;
        QmpError err = {};
        uint64_t actual;
        size_t n;
        bool host_bridge = false;
        static const QmpMigrationCapability caps[] = { { "xbzrle", true } };

        assert_int_equal(qmp_query_memory_size_summary(q, TIMEOUT_MS, &mem, NULL), 0);
        assert_int_equal(mem.base_memory_bytes, 64u << 20);

        assert_int_equal(qmp_query_pci(q, TIMEOUT_MS, &pci, &n, NULL), 0);
        assert_true(n >= 1);
        for (size_t i = 0; i < n; i++) {
                assert_false(pci[i].is_vfio);
                if (pci[i].bus == 0 && pci[i].slot == 0 && pci[i].vendor_id == 0x8086 && pci[i].class_code == 0x0600)
                        host_bridge = true;
        }
        assert_true(host_bridge);
        qmp_pci_devices_free(pci, n);

        assert_int_equal(qmp_query_migrate(q, TIMEOUT_MS, &mig, NULL), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_NONE);
        assert_int_equal(qmp_migrate_set_capabilities(q, caps, 1, TIMEOUT_MS, NULL), 0);

        /* No balloon device in this VM. */
        assert_int_equal(qmp_query_balloon(q, TIMEOUT_MS, &actual, &err), -EREMOTEIO);
        assert_string_equal(err.error_class, "DeviceNotActive");
        qmp_error_done(&err);
        qmp_free(q);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_greeting),
                cmocka_unit_test(test_pipelined),
                cmocka_unit_test(test_stop_cont_events_two_monitors),
                cmocka_unit_test(test_cpus_fast_threads),
                cmocka_unit_test(test_iothreads),
                cmocka_unit_test(test_memory_pci_migrate_balloon),
        };

        return vt_run_group_tests(tests, group_setup, group_teardown);
}
