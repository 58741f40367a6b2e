/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/daemon/test-daemon-model.c (suite model) - vmmgrd's own code on
 * the kernel model, with scripted QMP peers standing in for QEMU
 * (tests/common/qmp-peers.h), so that a QEMU can be made to hang on
 * purpose.  No root: a temporary state dir and socket.
 *
 *   - a registration whose QEMU never answers delays no other request
 *     (the loop never waits: issue 10) and ends in 504, storing nothing;
 *   - an adopted VM whose QEMU stalls is shown as such while another VM
 *     is bound and served;
 *   - an event's detail cannot be forged by a QMP path (json-c builds it);
 *   - a spec change that fails to commit leaves nothing on disk and gives
 *     back the credits a lower cap clamped;
 *   - a VM whose QEMU went away: its ledger is written, frozen, its usage
 *     base reset with its groups, and it earns nothing while gone;
 *   - the banks plan for the configured tick, also after a reload; a
 *     reload of a bad file changes nothing (and, under ASan, leaks nothing).
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/model/kmodel.h"
#include "tests/common/qmp-peers.h"
#include "tests/common/vtest.h"
#include "vmmgr/daemon/daemon.h"
#include "vmmgr/api/http-client.h"

#define UUID_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define UUID_B "bbbbbbbb-0000-4000-8000-00000000000b"
#define UUID_S "55555555-0000-4000-8000-000000000005"
#define UUID_F "ffffffff-0000-4000-8000-00000000000f"
#define MAX_VMS 4

typedef struct World {
        char dir[64], sock[128], state[128], db[160], config[128];
        KModel *model;
        QmpPeers *peers;
        Daemon *d;
        pthread_t loop;
        bool running;
        struct {
                char path[128];
                pid_t pid, tid;
        } vm[MAX_VMS];
        size_t n_vm;
} World;

static World W;

/* ---- the world: a model, scripted QEMUs, vmmgrd on its loop -------------- */

static int peer_pid(const char *qmp_path, pid_t *ret, void *userdata) {
        World *w = userdata;

        for (size_t i = 0; i < w->n_vm; i++)
                if (strcmp(w->vm[i].path, qmp_path) == 0) {
                        *ret = w->vm[i].pid;
                        return 0;
                }
        return -ESRCH;
}

/* A simulated QEMU process with one vCPU thread and its scripted monitor
 * at dir/NAME; returns its index. */
static size_t add_vm(const char *name, const char *uuid, QmpPeerMode mode) {
        size_t i = W.n_vm++;

        assert_true(i < MAX_VMS);
        assert_true(strlen(W.dir) + 1 + strlen(name) < sizeof(W.vm[i].path));
        strcpy(W.vm[i].path, W.dir);
        strcat(W.vm[i].path, "/");
        strcat(W.vm[i].path, name);
        W.vm[i].pid = km_process_new(W.model);
        assert_true(W.vm[i].pid > 0);
        W.vm[i].tid = km_thread_new(W.model, W.vm[i].pid);
        assert_true(W.vm[i].tid > 0);
        assert_true(qmp_peers_add(W.peers, W.vm[i].path,
                                  &(QmpPeerSpec) { .mode = mode, .uuid = uuid, .vcpu_tid = W.vm[i].tid }) >= 0);
        return i;
}

static void *run_loop(void *arg) {
        (void) daemon_run(arg);
        return NULL;
}

static void daemon_up(bool loop) {
        KHost *host = NULL;
        DaemonOptions o = {
                .config_path = W.config[0] ? W.config : NULL,
                .state_dir = W.state,
                .socket_path = W.sock,
                .subtree = "vmmgr.slice",
                .model_peer_pid = peer_pid,
                .model_peer_pid_userdata = &W,
        };

        assert_int_equal(kh_open_model(W.model, &(KHostConfig) { .subtree = "vmmgr.slice" }, &host), 0);
        o.host = host;
        assert_int_equal(daemon_new(&o, &W.d), 0);
        if (loop) {
                assert_int_equal(qmp_peers_start(W.peers), 0);
                assert_int_equal(pthread_create(&W.loop, NULL, run_loop, W.d), 0);
                W.running = true;
        }
}

static void daemon_down(void) {
        if (W.running) {
                /* SIGTERM is blocked in every thread: the daemon's signalfd
                 * takes it. */
                assert_int_equal(kill(getpid(), SIGTERM), 0);
                pthread_join(W.loop, NULL);
                W.running = false;
        }
        W.d = daemon_free(W.d);
}

static int setup(void **state) {
        W = (World) { 0 };
        snprintf(W.dir, sizeof(W.dir), "/tmp/vmmgrd-model-XXXXXX");
        if (!mkdtemp(W.dir))
                return -1;
        snprintf(W.sock, sizeof(W.sock), "%s/api.sock", W.dir);
        snprintf(W.state, sizeof(W.state), "%s/state", W.dir);
        snprintf(W.db, sizeof(W.db), "%s/vmmgr.db", W.state);
        if (km_new(&(KModelConfig) { .mode = CG_MODE_UNIFIED }, &W.model) < 0)
                return -1;
        W.peers = qmp_peers_new();
        return W.peers ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[128];

        daemon_down();
        qmp_peers_free(W.peers);
        km_free(W.model);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", W.dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* ---- HTTP ------------------------------------------------------------------ */

static long call(const char *method, const char *path, const char *body, struct json_object **ret) {
        long status = 0;
        char *reply = NULL;
        HttpError err;

        if (http_request(W.sock, method, path, body, 10000, &status, &reply, &err) < 0)
                fail_msg("%s %s: %s", method, path, err.message);
        if (ret)
                *ret = reply && *reply ? json_tokener_parse(reply) : NULL;
        free(reply);
        return status;
}

static long register_vm(const char *uuid, size_t i, const char *extra) {
        _cleanup_json_ struct json_object *body = json_object_new_object();
        char text[1024];

        json_object_object_add(body, "uuid", json_object_new_string(uuid));
        json_object_object_add(body, "qmp", json_object_new_string(W.vm[i].path));
        snprintf(text, sizeof(text), "%s", json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
        if (extra) { /* ,"spec":{...} spliced before the closing brace */
                text[strlen(text) - 1] = '\0';
                strncat(text, extra, sizeof(text) - strlen(text) - 2);
                strcat(text, "}");
        }
        return call("POST", "/v1/vms", text, NULL);
}

static const char *link_of(struct json_object *vm) {
        struct json_object *v;
        return json_object_object_get_ex(vm, "link", &v) ? json_object_get_string(v) : "";
}

/* The link state of uuid in GET /v1/vms, or NULL if not listed. */
static char *vm_link(const char *uuid) {
        struct json_object *o = NULL, *vms;
        char *ret = NULL;

        assert_int_equal(call("GET", "/v1/vms", NULL, &o), 200);
        vms = json_object_object_get(o, "vms");
        for (size_t i = 0; i < json_object_array_length(vms); i++) {
                struct json_object *vm = json_object_array_get_idx(vms, i);
                if (strcmp(json_object_get_string(json_object_object_get(vm, "uuid")), uuid) == 0)
                        ret = strdup(link_of(vm));
        }
        json_object_put(o);
        return ret;
}

static void wait_link(const char *uuid, const char *want, unsigned ms) {
        uint64_t deadline = now_msec() + ms;

        for (;;) {
                char *l = vm_link(uuid);
                bool ok = l && strcmp(l, want) == 0;

                if (!ok && now_msec() > deadline)
                        fail_msg("VM %s: link %s, not %s, after %u ms", uuid, l ? l : "(not listed)", want, ms);
                free(l);
                if (ok)
                        return;
                usleep(20000);
        }
}

static int64_t cap_on_disk(const char *uuid);

/* ---- a registration whose QEMU hangs ------------------------------------------ */

typedef struct Pending {
        size_t vm;
        long status;
        bool done;
} Pending;

static void *register_in_thread(void *arg) {
        Pending *p = arg;

        p->status = register_vm(UUID_S, p->vm, NULL);
        __atomic_store_n(&p->done, true, __ATOMIC_SEQ_CST);
        return NULL;
}

static void test_hung_registration_delays_nobody(void **state) {
        size_t a = add_vm("a.sock", UUID_A, QMP_PEER_ANSWER);
        Pending p = { .vm = add_vm("s.sock", UUID_S, QMP_PEER_SILENT) };
        struct json_object *o = NULL;
        pthread_t t;
        char *l;

        daemon_up(true);
        assert_int_equal(register_vm(UUID_A, a, NULL), 201);
        assert_int_equal(pthread_create(&t, NULL, register_in_thread, &p), 0);
        /* Until S is listed, its registration has reached vmmgrd. */
        while (!(l = vm_link(UUID_S)))
                usleep(5000);
        assert_string_equal(l, "connecting");
        free(l);
        /* Other requests are answered while S's QEMU says nothing. */
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &o), 200);
        json_object_put(o);
        assert_int_equal(call("GET", "/v1/host", NULL, NULL), 200);
        /* It cannot be removed under its waiting client. */
        assert_int_equal(call("DELETE", "/v1/vms/" UUID_S, NULL, NULL), 409);
        assert_int_equal(call("PUT", "/v1/vms/" UUID_S "/memory", "{\"priority\":3}", NULL), 409);
        assert_false(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST));
        pthread_join(t, NULL);
        /* The hung QEMU's registration times out and leaves nothing, in
         * memory or on disk. */
        assert_int_equal(p.status, 504);
        assert_int_equal(call("GET", "/v1/vms/" UUID_S, NULL, NULL), 404);
        assert_int_equal(cap_on_disk(UUID_S), -1);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A, NULL, NULL), 200);
}

/* ---- an adopted VM whose QEMU stalls ------------------------------------------ */

static void test_stalled_adoption_is_shown(void **state) {
        size_t a = add_vm("a.sock", UUID_A, QMP_PEER_ANSWER), b = add_vm("b.sock", UUID_B, QMP_PEER_ANSWER);
        struct json_object *o = NULL;
        char *l;

        daemon_up(true);
        assert_int_equal(register_vm(UUID_A, a, NULL), 201);
        assert_int_equal(register_vm(UUID_B, b, NULL), 201);
        daemon_down();

        /* B's QEMU now greets and then answers nothing. */
        qmp_peers_free(W.peers);
        W.peers = qmp_peers_new();
        assert_non_null(W.peers);
        assert_true(qmp_peers_add(W.peers, W.vm[a].path,
                                  &(QmpPeerSpec) { .uuid = UUID_A, .vcpu_tid = W.vm[a].tid }) >= 0);
        assert_true(qmp_peers_add(W.peers, W.vm[b].path,
                                  &(QmpPeerSpec) { .mode = QMP_PEER_STALL_QUERIES, .uuid = UUID_B,
                                                   .vcpu_tid = W.vm[b].tid }) >= 0);
        daemon_up(true);
        wait_link(UUID_A, "bound", 5000);
        l = vm_link(UUID_B);
        assert_non_null(l);
        assert_true(strcmp(l, "connecting") == 0 || strcmp(l, "stalled") == 0);
        free(l);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &o), 200);
        json_object_put(o);
        /* Its commands' 2 s deadline passes: stalled, with the reason. */
        wait_link(UUID_B, "stalled", 6000);
        assert_int_equal(call("GET", "/v1/vms/" UUID_B, NULL, &o), 200);
        assert_non_null(strstr(json_object_get_string(json_object_object_get(o, "link_error")), "did not answer"));
        assert_false(json_object_get_boolean(json_object_object_get(o, "connected")));
        json_object_put(o);
        /* Its credits are not live: a change is refused, not made up. */
        assert_int_equal(call("POST", "/v1/vms/" UUID_B "/credits/inject", "{\"amount_usec\":1}", NULL), 409);
}

/* ---- an event's detail is built with json-c ---------------------------------- */

static void test_event_detail_not_forged(void **state) {
        size_t f = add_vm("q\",\"kind\":\"forged.sock", UUID_F, QMP_PEER_ANSWER);
        struct json_object *o = NULL, *events;
        bool seen = false;

        daemon_up(true);
        assert_int_equal(register_vm(UUID_F, f, NULL), 201);
        assert_int_equal(call("GET", "/v1/events", NULL, &o), 200);
        events = json_object_object_get(o, "events");
        for (size_t i = 0; i < json_object_array_length(events); i++) {
                struct json_object *e = json_object_array_get_idx(events, i), *detail;
                const char *kind = json_object_get_string(json_object_object_get(e, "kind"));

                assert_string_not_equal(kind, "forged");
                if (strcmp(kind, "register") != 0)
                        continue;
                detail = json_object_object_get(e, "detail");
                assert_string_equal(json_object_get_string(json_object_object_get(detail, "qmp")), W.vm[f].path);
                seen = true;
        }
        assert_true(seen);
        json_object_put(o);
}

/* ---- a spec change is one transaction ------------------------------------------- */

static int64_t cap_on_disk(const char *uuid) {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        int64_t cap = -1;

        assert_int_equal(sqlite3_open_v2(W.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT cap_usec FROM vms WHERE uuid = ?1", -1, &s, NULL), SQLITE_OK);
        sqlite3_bind_text(s, 1, uuid, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
                cap = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return cap;
}

static void sql(const char *text) {
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open(W.db, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_exec(db, text, NULL, NULL, NULL) != SQLITE_OK)
                fail_msg("%s: %s", text, sqlite3_errmsg(db));
        sqlite3_close(db);
}

static void test_spec_change_is_atomic(void **state) {
        size_t a = add_vm("a.sock", UUID_A, QMP_PEER_ANSWER);
        struct json_object *o = NULL;
        int64_t balance;

        daemon_up(true);
        assert_int_equal(register_vm(UUID_A, a, ",\"spec\":{\"baseline\":0.2,\"cap_usec\":6000000,\"launch_usec\":0}"),
                         201);
        assert_int_equal(call("POST", "/v1/vms/" UUID_A "/credits/inject", "{\"amount_usec\":5000000}", &o), 200);
        json_object_put(o);
        /* The database refuses the change's event: the commit fails. */
        sql("CREATE TRIGGER refuse_spec BEFORE INSERT ON events WHEN NEW.kind = 'spec' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
        if (call("PUT", "/v1/vms/" UUID_A "/credits", "{\"cap_usec\":1000000}", &o) != 500)
                fail_msg("PUT: %s", json_object_to_json_string(o));
        json_object_put(o);
        sql("DROP TRIGGER refuse_spec");
        /* Nothing of it is on disk, and the clamped credits are back. */
        assert_int_equal(cap_on_disk(UUID_A), 6000000);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &o), 200);
        balance = json_object_get_int64(json_object_object_get(o, "balance_usec"));
        assert_int_equal(json_object_get_int64(json_object_object_get(json_object_object_get(o, "spec"), "cap_usec")),
                         6000000);
        json_object_put(o);
        if (balance < 5000000)
                fail_msg("balance %lld after a failed cap change, want >= 5000000", (long long) balance);
        /* And a change that commits is on disk. */
        assert_int_equal(call("PUT", "/v1/vms/" UUID_A "/credits", "{\"cap_usec\":1000000}", NULL), 200);
        assert_int_equal(cap_on_disk(UUID_A), 1000000);
}

/* ---- a VM whose QEMU went away -------------------------------------------------- */

static void test_gone_vm_ledger(void **state) {
        VmId id;
        Vm *vm;
        StateLedger led;
        StateError serr;
        CreditSnapshot s0, s1;
        VmThreadRoles roles = { 0 };
        VmBindStats st;
        pid_t pid, tid, pid2, tid2;
        uint64_t earned_gone;

        daemon_up(false);
        pid = km_process_new(W.model);
        tid = km_thread_new(W.model, pid);
        assert_int_equal(vm_id_parse(UUID_A, &id), 0);
        assert_int_equal(daemon_add_model_vm(W.d, &id, pid, tid, NULL), 0);
        vm = daemon_find_vm(W.d, &id);
        assert_non_null(vm);
        km_thread_set_demand(W.model, tid, 1000000);
        km_advance(W.model, 2000000);
        assert_int_equal(credit_bank_tick(vm->bank, daemon_now_mono_usec()), 0);
        credit_bank_snapshot(vm->bank, &s0);
        assert_true(s0.usage_usec > 0);

        /* QEMU exits; vmmgrd notices. */
        assert_int_equal(km_process_exit(W.model, pid), 0);
        daemon_vm_disconnect(W.d, vm, "test: QEMU exited");
        assert_null(vm->bank);
        /* b: the kept ledger is on disk, frozen. */
        assert_int_equal(state_ledger_get(W.d->db, &id, &led, &serr), 0);
        assert_int_equal(led.ledger.generation, vm->ledger.generation);
        assert_int_equal(led.ledger.balance_usec, vm->ledger.balance_usec);
        assert_true(led.frozen);
        /* c: its groups are gone; new ones count from zero. */
        assert_int_equal(vm->usage_base_usec, 0);
        assert_int_equal(led.usage_base_usec, 0);

        /* d: QEMU is back after 7 s; those 7 s earned nothing. */
        vm->ledger_time_unix_usec -= 7 * USEC_PER_SEC;
        pid2 = km_process_new(W.model);
        tid2 = km_thread_new(W.model, pid2);
        roles.vcpus = &tid2;
        roles.n_vcpus = 1;
        assert_int_equal(vm_bind(W.d->host, &id, pid2, &roles, &st), 0);
        assert_int_equal(daemon_vm_bank_start(W.d, vm, false, daemon_now_mono_usec()), 0);
        assert_int_equal(credit_bank_tick(vm->bank, daemon_now_mono_usec()), 0);
        credit_bank_snapshot(vm->bank, &s1);
        earned_gone = s1.ledger.earned_usec - vm->ledger.earned_usec;
        print_message("earned while QEMU was gone 7 s: %llu usec\n", (unsigned long long) earned_gone);
        assert_true(earned_gone < 20000); /* the few usec of the test itself */
        vm->bank = credit_bank_free(vm->bank);

        /* vmmgrd's own downtime (the ledger not frozen): QEMU ran and earned. */
        vm->ledger_frozen = false;
        assert_int_equal(daemon_vm_bank_start(W.d, vm, false, daemon_now_mono_usec()), 0);
        assert_int_equal(credit_bank_tick(vm->bank, daemon_now_mono_usec()), 0);
        credit_bank_snapshot(vm->bank, &s1);
        print_message("earned while vmmgrd was down 7 s: %llu usec\n",
                      (unsigned long long) (s1.ledger.earned_usec - vm->ledger.earned_usec));
        assert_true(s1.ledger.earned_usec - vm->ledger.earned_usec > 7 * USEC_PER_SEC / 10);
}

/* ---- the tick reaches the banks; a bad reload changes nothing ---------------------- */

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static void test_tick_and_reload(void **state) {
        VmId id;
        Vm *vm;
        CreditSnapshot s;
        pid_t pid, tid;
        size_t n_classes;

        snprintf(W.config, sizeof(W.config), "%s/vmmgrd.conf", W.dir);
        write_file(W.config, "[daemon]\ntick_ms = 1000\n");
        daemon_up(false);
        pid = km_process_new(W.model);
        tid = km_thread_new(W.model, pid);
        assert_int_equal(vm_id_parse(UUID_A, &id), 0);
        assert_int_equal(daemon_add_model_vm(W.d, &id, pid, tid, NULL), 0);
        vm = daemon_find_vm(W.d, &id);
        credit_bank_snapshot(vm->bank, &s);
        assert_int_equal(s.tick_usec, 1000000);

        write_file(W.config, "[daemon]\ntick_ms = 250\n");
        assert_int_equal(daemon_reload(W.d), 0);
        credit_bank_snapshot(vm->bank, &s);
        assert_int_equal(s.tick_usec, 250000);
        assert_int_equal(W.d->cfg.tick_usec, 250000);

        n_classes = W.d->cfg.classes.n;
        write_file(W.config, "[class my.class]\nbaseline = 0.3\n[daemon]\ntick_ms = nonsense\n");
        assert_int_equal(daemon_reload(W.d), 0);
        assert_int_equal(W.d->cfg.tick_usec, 250000);
        assert_int_equal(W.d->cfg.classes.n, n_classes);
        credit_bank_snapshot(vm->bank, &s);
        assert_int_equal(s.tick_usec, 250000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_hung_registration_delays_nobody, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stalled_adoption_is_shown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_event_detail_not_forged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_spec_change_is_atomic, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gone_vm_ledger, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tick_and_reload, setup, teardown),
        };
        sigset_t mask;

        /* Blocked in every thread, so that the daemon's signalfd gets them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        return vt_run_group_tests(tests, NULL, NULL);
}
