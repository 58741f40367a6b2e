/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: vmmgr/daemon/state.c - the SQLite store, in a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macros.h"
#include "vmmgr/daemon/state.h"

#define U1 "11111111-2222-3333-4444-555555555555"
#define U2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

typedef struct T {
        char dir[64];   /* the test's own directory */
        char state[96]; /* the state dir inside it (state_open creates it) */
        char db[128];
} T;

static int setup(void **state) {
        T *t = calloc(1, sizeof *t);

        snprintf(t->dir, sizeof t->dir, "/tmp/vmmgr-test-state-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        snprintf(t->state, sizeof t->state, "%s/state", t->dir);
        snprintf(t->db, sizeof t->db, "%s/vmmgr.db", t->state);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        T *t = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", t->dir, t->dir);
        assert_int_equal(system(cmd), 0);
        free(t);
        return 0;
}

static StateDb *open_ok(const char *dir) {
        StateError err = {};
        StateDb *db = NULL;
        int r = state_open(dir, &db, &err);

        if (r < 0)
                fail_msg("state_open(%s): %s: %s", dir, strerror(-r), err.message);
        return db;
}

static StateVm vm(const char *uuid, uint64_t at) {
        StateVm v = { .spec = { .vcpus = 2, .baseline_ppm = 200000, .launch_usec = 5, .mode = CREDIT_MODE_UNLIMITED },
                      .registered_at_unix = at };

        assert_int_equal(vm_id_parse(uuid, &v.id), 0);
        snprintf(v.qmp_path, sizeof v.qmp_path, "/run/vm/%s.qmp", uuid);
        snprintf(v.class_name, sizeof v.class_name, "t3.small");
        return v;
}

static StateLedger ledger(const char *uuid, int64_t balance) {
        StateLedger l = { .usage_base_usec = 777, .tick_usec = 1714564800000000 };

        assert_int_equal(vm_id_parse(uuid, &l.id), 0);
        l.ledger = (CreditLedger) { .balance_usec = balance, .launch_usec = 3, .surplus_usec = -4, .charged_usec = 5,
                                    .earned_usec = UINT64_MAX - 6, /* beyond int64: stored as its bit pattern */
                                    .spent_usec = 7, .forfeited_usec = 8, .overdraft_usec = 9, .debt_usec = 10,
                                    .adjusted_usec = -11, .earn_remainder = 999999, .generation = 13 };
        return l;
}

static void test_vms_and_ledgers(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateVm a = vm(U1, 100), b = vm(U2, 50), *list = NULL, got;
        StateLedger recs[2] = { ledger(U1, 1000), ledger(U2, 2000) }, l, *ll = NULL;
        StateError err = {};
        struct stat st;
        size_t n = 99;

        assert_int_equal(stat(t->state, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_string_equal(state_path(db), t->db);

        assert_int_equal(state_vm_list(db, &list, &n, &err), 0);
        assert_int_equal(n, 0);
        free(list);
        assert_int_equal(state_vm_put(db, &a, &err), 0);
        assert_int_equal(state_vm_put(db, &b, &err), 0);
        assert_int_equal(state_vm_list(db, &list, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0].id.str, U2); /* by registration time */
        assert_string_equal(list[1].id.str, U1);
        assert_string_equal(list[1].qmp_path, a.qmp_path);
        assert_string_equal(list[1].class_name, "t3.small");
        assert_memory_equal(&list[1].spec, &a.spec, sizeof a.spec);
        assert_int_equal(list[1].registered_at_unix, 100);
        free(list);

        /* Ledgers: a batch, read back field by field. */
        assert_int_equal(state_ledger_put_batch(db, recs, 2, &err), 0);
        assert_int_equal(state_ledger_get(db, &a.id, &l, &err), 0);
        assert_memory_equal(&l.ledger, &recs[0].ledger, sizeof l.ledger);
        assert_int_equal(l.usage_base_usec, 777);
        assert_int_equal(l.tick_usec, 1714564800000000);
        assert_false(l.frozen);
        /* Update in place; a frozen ledger (QEMU gone) stays frozen on disk. */
        recs[0].ledger.balance_usec = 4242;
        recs[0].ledger.generation = 14;
        recs[0].frozen = true;
        assert_int_equal(state_ledger_put_batch(db, recs, 1, &err), 0);
        assert_int_equal(state_ledger_get(db, &a.id, &l, &err), 0);
        assert_int_equal(l.ledger.balance_usec, 4242);
        assert_int_equal(l.ledger.generation, 14);
        assert_true(l.frozen);

        /* Updating the VM keeps its ledger (an upsert, not a replace). */
        a.spec.baseline_ppm = 300000;
        assert_int_equal(state_vm_put(db, &a, &err), 0);
        assert_int_equal(state_vm_get(db, &a.id, &got, &err), 0);
        assert_int_equal(got.spec.baseline_ppm, 300000);
        assert_int_equal(state_ledger_get(db, &a.id, &l, &err), 0);

        /* A batch with an unregistered VM: all or nothing. */
        {
                StateLedger mixed[2] = { ledger(U1, 1), ledger("99999999-8888-7777-6666-555555555555", 2) };

                assert_int_equal(state_ledger_put_batch(db, mixed, 2, &err), -ENOENT);
                assert_non_null(strstr(err.message, "99999999-8888-7777-6666-555555555555"));
                assert_int_equal(state_ledger_get(db, &a.id, &l, &err), 0);
                assert_int_equal(l.ledger.balance_usec, 4242);
                assert_false(state_in_transaction(db));
        }

        /* Delete cascades to the ledger. */
        assert_int_equal(state_vm_delete(db, &b.id, &err), 0);
        assert_int_equal(state_ledger_get(db, &b.id, &l, &err), -ENOENT);
        assert_int_equal(state_vm_get(db, &b.id, &got, &err), -ENOENT);
        assert_int_equal(state_vm_delete(db, &b.id, &err), -ENOENT);
        assert_non_null(strstr(err.message, U2));
        assert_int_equal(state_ledger_list(db, &ll, &n, &err), 0);
        assert_int_equal(n, 1);
        free(ll);
        state_close(db);

        /* Reopen: everything is still there. */
        db = open_ok(t->state);
        assert_int_equal(state_vm_list(db, &list, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(list[0].spec.baseline_ppm, 300000);
        free(list);
        assert_int_equal(state_ledger_get(db, &a.id, &l, &err), 0);
        assert_int_equal(l.ledger.balance_usec, 4242);
        assert_int_equal(l.ledger.earned_usec, UINT64_MAX - 6);
        state_close(db);
}

static void test_transactions(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateVm a = vm(U1, 1), got;
        StateLedger l = ledger(U1, 5);
        StateError err = {};
        ServiceEvent *ev = NULL;
        size_t n = 0;
        int64_t seq = 0;

        /* Register = vm + ledger + event; rolled back, nothing stays. */
        assert_int_equal(state_begin(db, &err), 0);
        assert_true(state_in_transaction(db));
        assert_int_equal(state_begin(db, &err), -EBUSY);
        assert_int_equal(state_vm_put(db, &a, &err), 0);
        assert_int_equal(state_ledger_put_batch(db, &l, 1, &err), 0);
        assert_int_equal(state_event_add(db, 10, U1, "register", NULL, &seq, &err), 0);
        assert_true(state_in_transaction(db)); /* the calls joined it */
        state_rollback(db);
        assert_false(state_in_transaction(db));
        state_rollback(db); /* harmless without one */
        assert_int_equal(state_vm_get(db, &a.id, &got, &err), -ENOENT);
        assert_int_equal(state_events_list(db, 0, 10, &ev, &n, &err), 0);
        assert_int_equal(n, 0);
        service_events_free(ev, n);
        assert_int_equal(state_commit(db, &err), -EINVAL);

        /* Committed, everything stays. */
        assert_int_equal(state_begin(db, &err), 0);
        assert_int_equal(state_vm_put(db, &a, &err), 0);
        assert_int_equal(state_ledger_put_batch(db, &l, 1, &err), 0);
        assert_int_equal(state_event_add(db, 10, U1, "register", "{\"class\":\"t3.small\"}", &seq, &err), 0);
        assert_int_equal(state_commit(db, &err), 0);
        state_close(db);
        db = open_ok(t->state);
        assert_int_equal(state_vm_get(db, &a.id, &got, &err), 0);
        assert_int_equal(state_events_list(db, 0, 10, &ev, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].kind, "register");
        assert_string_equal(ev[0].vm, U1);
        assert_string_equal(ev[0].detail_json, "{\"class\":\"t3.small\"}");
        assert_int_equal(ev[0].seq, seq);
        service_events_free(ev, n);
        state_close(db);
}

static void test_events(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateError err = {};
        ServiceEvent *ev = NULL;
        size_t n = 0;
        int64_t seq = 0;

        state_set_events_keep(db, 5);
        for (int i = 1; i <= 12; i++) {
                assert_int_equal(state_event_add(db, (uint64_t) i * 1000, i % 2 ? U1 : NULL, "inject", NULL, &seq, &err),
                                 0);
                assert_int_equal(seq, i);
        }
        assert_int_equal(state_events_list(db, 0, 100, &ev, &n, &err), 0);
        assert_int_equal(n, 5); /* the newest 5: 8..12 */
        assert_int_equal(ev[0].seq, 8);
        assert_int_equal(ev[4].seq, 12);
        assert_int_equal(ev[4].time_unix_usec, 12000);
        assert_string_equal(ev[4].vm, "");
        assert_string_equal(ev[3].vm, U1);
        assert_string_equal(ev[0].detail_json, "{}");
        service_events_free(ev, n);
        assert_int_equal(state_events_list(db, 9, 2, &ev, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ev[0].seq, 10);
        assert_int_equal(ev[1].seq, 11);
        service_events_free(ev, n);
        assert_int_equal(state_events_list(db, 12, 2, &ev, &n, &err), 0);
        assert_int_equal(n, 0);
        service_events_free(ev, n);
        assert_int_equal(state_event_add(db, 1, NULL, "", NULL, NULL, &err), -EINVAL);
        assert_int_equal(state_event_add(db, 1, NULL, "a-kind-name-much-longer-than-32-bytes", NULL, NULL, &err),
                         -EINVAL);
        state_close(db);

        /* The default keeps 10000, and sequence numbers never repeat. */
        db = open_ok(t->state);
        assert_int_equal(state_begin(db, &err), 0);
        for (int i = 0; i < 10010; i++)
                assert_int_equal(state_event_add(db, 1, NULL, "tick", NULL, &seq, &err), 0);
        assert_int_equal(state_commit(db, &err), 0);
        assert_int_equal(seq, 12 + 10010);
        assert_int_equal(state_events_list(db, 0, 1, &ev, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ev[0].seq, seq - 10000 + 1);
        service_events_free(ev, n);
        state_close(db);
}

static char *slurp(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *buf = malloc(1 << 20);
        size_t n;

        assert_non_null(f);
        assert_non_null(buf);
        n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        *ret_len = n;
        return buf;
}

static void check_refused_untouched(T *t, const char *what) {
        size_t n1, n2;
        char *before = slurp(t->db, &n1), *after, path[160];
        StateError err = {};
        StateDb *db = NULL;
        int r;

        r = state_open(t->state, &db, &err);
        if (r != -EBADMSG)
                fail_msg("%s: state_open gave %d (%s)", what, r, err.message);
        assert_null(db);
        assert_non_null(strstr(err.message, t->db));
        after = slurp(t->db, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(before, after, n1);
        snprintf(path, sizeof path, "%s-wal", t->db);
        assert_int_equal(access(path, F_OK), -1);
        free(before);
        free(after);
}

static void test_corrupt(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateError err = {};
        char garbage[8192];
        int fd;

        /* Some data, so the file has pages to damage. */
        for (int i = 0; i < 200; i++)
                assert_int_equal(state_event_add(db, 1, NULL, "tick", "{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", NULL, &err), 0);
        state_close(db);

        /* Damaged pages behind a valid header: quick_check catches it. */
        for (size_t i = 0; i < sizeof garbage; i++)
                garbage[i] = (char) (i * 7919 % 251);
        fd = open(t->db, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, garbage, 4096, 4096), 4096);
        close(fd);
        check_refused_untouched(t, "damaged pages");

        /* Not a database at all. */
        fd = open(t->db, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, garbage, sizeof garbage), (ssize_t) sizeof garbage);
        close(fd);
        check_refused_untouched(t, "garbage");
}

static void test_newer_schema(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateError err = {};
        sqlite3 *raw;

        state_close(db);
        assert_int_equal(sqlite3_open(t->db, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_exec(raw, "UPDATE schema_version SET version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(raw);
        assert_int_equal(state_open(t->state, &db, &err), -EPROTO);
        assert_non_null(strstr(err.message, "99"));
}

/* A database written by the first schema (no mem_priority) is migrated in
 * place: its VMs kept, their priority 0; a priority stored afterwards is
 * read back. */
/* The handoff journal: a row per VM, updated in place, gone with its VM;
 * none for an unknown VM. */
static void test_handoff_rows(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateError err = {};
        StateVm v = vm("41111111-1111-4111-8111-111111111111", 1);
        StateHandoff h = { .id = v.id, .role = "owner", .epoch = 0 }, got;
        VmId other;

        assert_int_equal(vm_id_parse("51111111-1111-4111-8111-111111111111", &other), 0);
        assert_int_equal(state_vm_put(db, &v, &err), 0);
        assert_int_equal(state_handoff_put(db, &h, &err), 0);
        snprintf(h.role, sizeof h.role, "handed-off");
        h.epoch = UINT64_C(1) << 40;
        snprintf(h.record_json, sizeof h.record_json, "{\"epoch\":1}");
        assert_int_equal(state_handoff_put(db, &h, &err), 0);
        assert_int_equal(state_handoff_get(db, &v.id, &got, &err), 0);
        assert_string_equal(got.role, "handed-off");
        assert_true(got.epoch == UINT64_C(1) << 40);
        assert_string_equal(got.record_json, "{\"epoch\":1}");
        /* A VM the database does not know has no journal to write to. */
        h.id = other;
        assert_int_equal(state_handoff_put(db, &h, &err), -ENOENT);
        assert_int_equal(state_handoff_get(db, &other, &got, &err), -ENOENT);
        /* The row goes with its VM. */
        assert_int_equal(state_vm_delete(db, &v.id, &err), 0);
        assert_int_equal(state_handoff_get(db, &v.id, &got, &err), -ENOENT);
        state_close(db);
}

static void test_migrates_v1(void **state) {
        T *t = *state;
        StateDb *db = open_ok(t->state);
        StateError err = {};
        StateVm vm = {}, got;
        sqlite3 *raw;

        state_close(db);
        assert_int_equal(sqlite3_open(t->db, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_exec(raw,
                                      "ALTER TABLE vms DROP COLUMN mem_priority;"
                                      "ALTER TABLE vms DROP COLUMN gpu_pci;"
                                      "ALTER TABLE vms DROP COLUMN dmem_max;"
                                      "ALTER TABLE vms DROP COLUMN dmem_soft;"
                                      "ALTER TABLE vms DROP COLUMN dmem_low;"
                                      "ALTER TABLE vms DROP COLUMN dmem_min;"
                                      "ALTER TABLE ledger DROP COLUMN frozen;"
                                      "ALTER TABLE vms DROP COLUMN libvirt_name;"
                                      "DROP TABLE handoff;"
                                      "DROP TABLE meta;"
                                      "UPDATE schema_version SET version = 1;"
                                      "INSERT INTO vms (uuid, qmp_path, class, vcpus, baseline_ppm, cap_usec, "
                                      "launch_usec, mode, registered_at) VALUES "
                                      "('31111111-1111-4111-8111-111111111111', '/run/q.sock', 'demo', 1, 200000, "
                                      "6000000, 3000000, 'standard', 1700000000)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(raw);
        db = open_ok(t->state);
        assert_int_equal(vm_id_parse("31111111-1111-4111-8111-111111111111", &vm.id), 0);
        assert_int_equal(state_vm_get(db, &vm.id, &got, &err), 0);
        assert_string_equal(got.qmp_path, "/run/q.sock");
        assert_int_equal(got.mem_priority, 0);
        assert_string_equal(got.gpu_pci, "");
        assert_string_equal(got.libvirt_name, ""); /* schema 4: a QMP VM */
        {
                /* schema 5: no handoff row, one can be written */
                StateHandoff h = { .id = vm.id, .role = "frozen", .epoch = 3, .outgoing = true,
                                   .destination = "https://10.0.0.2:8443", .record_json = "{}" }, hg;

                assert_int_equal(state_handoff_get(db, &vm.id, &hg, &err), -ENOENT);
                assert_int_equal(state_handoff_put(db, &h, &err), 0);
                assert_int_equal(state_handoff_get(db, &vm.id, &hg, &err), 0);
                assert_string_equal(hg.role, "frozen");
                assert_int_equal(hg.epoch, 3);
                assert_true(hg.outgoing);
                assert_string_equal(hg.destination, "https://10.0.0.2:8443");
                assert_string_equal(hg.record_json, "{}");
        }
        {
                /* schema 6: host facts */
                char *v = NULL;

                assert_int_equal(state_meta_get(db, "boot_id", &v, &err), -ENOENT);
                assert_int_equal(state_meta_put(db, "boot_id", "abc", &err), 0);
                assert_int_equal(state_meta_put(db, "boot_id", "def", &err), 0);
                assert_int_equal(state_meta_get(db, "boot_id", &v, &err), 0);
                assert_string_equal(v, "def");
                free(v);
                assert_int_equal(state_meta_delete(db, "boot_id", &err), 0);
                assert_int_equal(state_meta_get(db, "boot_id", &v, &err), -ENOENT);
        }
        assert_true(got.dmem.max == UINT64_MAX && got.dmem.soft == UINT64_MAX && got.dmem.low == 0);
        got.mem_priority = 4000000000u;
        snprintf(got.gpu_pci, sizeof(got.gpu_pci), "0000:03:00.0");
        got.dmem.low = UINT64_C(1) << 30;
        assert_int_equal(state_vm_put(db, &got, &err), 0);
        assert_int_equal(state_vm_get(db, &vm.id, &vm, &err), 0);
        assert_int_equal(vm.mem_priority, 4000000000u);
        assert_string_equal(vm.gpu_pci, "0000:03:00.0");
        assert_true(vm.dmem.low == UINT64_C(1) << 30 && vm.dmem.max == UINT64_MAX);
        state_close(db);
}

static void test_unusable_dir(void **state) {
        T *t = *state;
        char ro[128], file[128];
        StateError err = {};
        StateDb *db = NULL;
        int fd, r;

        /* A file where the directory should be. */
        snprintf(file, sizeof file, "%s/file", t->dir);
        fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(state_open(file, &db, &err), -ENOTDIR);
        assert_non_null(strstr(err.message, file));

        /* A read-only directory.  Root ignores modes, so as root the open
         * runs in a child that became nobody. */
        snprintf(ro, sizeof ro, "%s/ro", t->dir);
        assert_int_equal(mkdir(ro, 0555), 0);
        assert_int_equal(chmod(ro, 0555), 0);
        if (geteuid() != 0) {
                r = state_open(ro, &db, &err);
                assert_int_equal(r, -EACCES);
                assert_non_null(strstr(err.message, ro));
                return;
        }
        assert_int_equal(chmod(t->dir, 0755), 0);
        {
                pid_t pid = fork();
                int status;

                assert_true(pid >= 0);
                if (pid == 0) {
                        if (setgid(65534) < 0 || setuid(65534) < 0)
                                _exit(98);
                        r = state_open(ro, &db, &err);
                        if (r != -EACCES) {
                                fprintf(stderr, "state_open as nobody: %d %s\n", r, err.message);
                                _exit(1);
                        }
                        if (!strstr(err.message, ro) || !strstr(err.message, "Permission denied"))
                                _exit(2);
                        _exit(0);
                }
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_vms_and_ledgers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_events, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
                cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_handoff_rows, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unusable_dir, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
