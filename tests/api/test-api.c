/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests: vmmgr/api/api.c over a real UNIX socket (and a real TLS port),
 * against a fake ServiceOps that keeps VMs and credits in memory and
 * counts its calls -- so each rejected request can prove the service saw
 * nothing.  A thread runs the event loop the way vmmgrd's would: poll on
 * api_get_fd() with api_get_timeout_ms(), then api_dispatch().
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/common/vtest.h"
#include "tests/common/pki.h"
#include "common/macros.h"
#include "vmmgr/api/api.h"
#include "vmmgr/api/http-client.h"

#define U1 "11111111-2222-3333-4444-555555555555"
#define U2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define U3 "99999999-8888-7777-6666-555555555555"

/* ---- the fake service -------------------------------------------------------- */

typedef struct FakeVm {
        bool used;
        ServiceVm vm;
        ServiceCredits cr;
} FakeVm;

typedef struct Fake {
        FakeVm vms[8];
        unsigned calls; /* every operation, read by the test thread after a reply */
        int force_r;    /* when set, every operation fails with it */
        const char *force_field;
        ServiceRegister last_reg;
        char last_reg_class[CREDIT_CLASS_NAME_MAX];
        ServiceSpecChange last_change;
        int64_t last_amount;
        ServiceMemorySet last_mem;
        /* A registration's answer, given by the loop after the dispatch
         * that asked (the service never answers from inside the call). */
        bool reg_pending;
        ServiceRegisterDone reg_done;
        void *reg_userdata;
        ServiceVm reg_vm;
} Fake;

static unsigned fake_calls(Fake *f) {
        return __atomic_load_n(&f->calls, __ATOMIC_SEQ_CST);
}

static int fake_enter(Fake *f, ServiceError *err) {
        __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
        if (f->force_r) {
                snprintf(err->message, sizeof err->message, "forced: %s", strerror(-f->force_r));
                err->field = f->force_field;
                return f->force_r;
        }
        return 0;
}

static FakeVm *fake_find(Fake *f, const VmId *id, ServiceError *err) {
        for (size_t i = 0; i < ARRAY_SIZE(f->vms); i++)
                if (f->vms[i].used && strcmp(f->vms[i].vm.id.str, id->str) == 0)
                        return &f->vms[i];
        snprintf(err->message, sizeof err->message, "no VM %s", id->str);
        return NULL;
}

static int fake_host_info(void *ctx, char **ret, ServiceError *err) {
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        *ret = strdup("{\"cgroup_mode\":\"unified\",\"credit_bank\":\"emulated\"}");
        return *ret ? 0 : -ENOMEM;
}

static int fake_vm_list(void *ctx, ServiceVm **ret, size_t *ret_n, ServiceError *err) {
        Fake *f = ctx;
        ServiceVm *a;
        size_t n = 0;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        a = calloc(ARRAY_SIZE(f->vms), sizeof *a);
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < ARRAY_SIZE(f->vms); i++)
                if (f->vms[i].used)
                        a[n++] = f->vms[i].vm;
        *ret = a;
        *ret_n = n;
        return 0;
}

static int fake_vm_get(void *ctx, const VmId *id, ServiceVm *ret, ServiceError *err) {
        FakeVm *v;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        v = fake_find(ctx, id, err);
        if (!v)
                return -ENOENT;
        *ret = v->vm;
        return 0;
}

static int fake_vm_register_now(void *ctx, const ServiceRegister *req, ServiceVm *ret, ServiceError *err) {
        Fake *f = ctx;
        ServiceError ignore;
        FakeVm *v = NULL;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        f->last_reg = *req;
        snprintf(f->last_reg_class, sizeof f->last_reg_class, "%s", req->class_name ? req->class_name : "");
        f->last_reg.class_name = NULL;
        if (fake_find(f, &req->id, &ignore)) {
                snprintf(err->message, sizeof err->message, "VM %s is already registered", req->id.str);
                return -EEXIST;
        }
        if (req->class_name && strcmp(req->class_name, "nope") == 0) {
                snprintf(err->message, sizeof err->message, "no class \"nope\"");
                err->field = "class";
                return -EINVAL;
        }
        for (size_t i = 0; i < ARRAY_SIZE(f->vms) && !v; i++)
                if (!f->vms[i].used)
                        v = &f->vms[i];
        if (!v)
                return -ENOSPC;
        *v = (FakeVm) { .used = true };
        v->vm.id = req->id;
        snprintf(v->vm.qmp_path, sizeof v->vm.qmp_path, "%s", req->qmp_path);
        snprintf(v->vm.class_name, sizeof v->vm.class_name, "%s",
                 req->class_name ? req->class_name : req->has_spec ? "" : "t3.micro");
        v->vm.pid = 4242;
        v->vm.connected = true;
        snprintf(v->vm.run_state, sizeof v->vm.run_state, "running");
        v->vm.n_vcpus = 2;
        v->vm.n_iothreads = 1;
        v->vm.registered_at_unix = 1714564800; /* 2024-05-01T12:00:00Z */
        v->cr.id = req->id;
        v->cr.bank = "emulated";
        v->cr.state = "bursting";
        v->cr.spec = req->has_spec ? req->spec
                                   : (CreditSpec) { .vcpus = 2, .baseline_ppm = 100000, .mode = CREDIT_MODE_UNLIMITED };
        if (v->cr.spec.vcpus == 0)
                v->cr.spec.vcpus = 2;
        snprintf(v->cr.class_name, sizeof v->cr.class_name, "%s", v->vm.class_name);
        credit_ledger_init(&v->cr.ledger, &v->cr.spec);
        v->cr.quota_usec = CREDIT_QUOTA_UNLIMITED;
        v->cr.period_usec = 100000;
        *ret = v->vm;
        return 0;
}

static int fake_vm_register(void *ctx, const ServiceRegister *req, ServiceRegisterDone done, void *userdata,
                            ServiceError *err) {
        Fake *f = ctx;
        int r = fake_vm_register_now(ctx, req, &f->reg_vm, err);

        if (r < 0)
                return r;
        f->reg_pending = true;
        f->reg_done = done;
        f->reg_userdata = userdata;
        return 0;
}

static void fake_answer_registration(Fake *f) {
        if (!f->reg_pending)
                return;
        f->reg_pending = false;
        f->reg_done(0, &f->reg_vm, NULL, f->reg_userdata);
}

static int fake_vm_unregister(void *ctx, const VmId *id, ServiceError *err) {
        FakeVm *v;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        v = fake_find(ctx, id, err);
        if (!v)
                return -ENOENT;
        v->used = false;
        return 0;
}

static int fake_credits_history(void *ctx, const VmId *id, ServiceHistoryPoint **ret, size_t *ret_n,
                                ServiceError *err) {
        ServiceHistoryPoint *p;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        if (!fake_find(ctx, id, err))
                return -ENOENT;
        p = calloc(2, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p[0] = (ServiceHistoryPoint) { .time_unix_usec = 1000000, .available_usec = 5000, .usage_usec = 10, .state = 1 };
        p[1] = (ServiceHistoryPoint) { .time_unix_usec = 2000000, .available_usec = 0, .usage_usec = 20, .state = 2 };
        *ret = p;
        *ret_n = 2;
        return 0;
}

static int fake_credits_get(void *ctx, const VmId *id, ServiceCredits *ret, ServiceError *err) {
        FakeVm *v;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        v = fake_find(ctx, id, err);
        if (!v)
                return -ENOENT;
        *ret = v->cr;
        return 0;
}

static int fake_credits_set_spec(void *ctx, const VmId *id, const ServiceSpecChange *ch, ServiceCredits *ret,
                                 ServiceError *err) {
        Fake *f = ctx;
        FakeVm *v;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        f->last_change = *ch;
        f->last_change.class_name = NULL;
        v = fake_find(f, id, err);
        if (!v)
                return -ENOENT;
        if (ch->set & SPEC_SET_BASELINE)
                v->cr.spec.baseline_ppm = ch->baseline_ppm;
        if (ch->set & SPEC_SET_CAP)
                v->cr.spec.cap_usec = ch->cap_usec;
        if (ch->set & SPEC_SET_LAUNCH)
                v->cr.spec.launch_usec = ch->launch_usec;
        if (ch->set & SPEC_SET_MODE)
                v->cr.spec.mode = ch->mode;
        v->cr.ledger.generation++;
        *ret = v->cr;
        return 0;
}

static int fake_credits_inject(void *ctx, const VmId *id, int64_t amount, ServiceCredits *ret, ServiceError *err) {
        Fake *f = ctx;
        FakeVm *v;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        f->last_amount = amount;
        v = fake_find(f, id, err);
        if (!v)
                return -ENOENT;
        r = credit_ledger_inject(&v->cr.ledger, &v->cr.spec, amount);
        if (r < 0) {
                snprintf(err->message, sizeof err->message, "not enough credits or above the cap");
                err->field = "amount_usec";
                return r;
        }
        *ret = v->cr;
        return 0;
}

static int fake_credits_transfer(void *ctx, const VmId *from, const VmId *to, int64_t amount, ServiceError *err) {
        Fake *f = ctx;
        FakeVm *a, *b;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        f->last_amount = amount;
        a = fake_find(f, from, err);
        b = a ? fake_find(f, to, err) : NULL;
        if (!a || !b)
                return -ENOENT;
        r = credit_transfer_check(&a->cr.ledger, &b->cr.ledger, &b->cr.spec, amount);
        if (r < 0) {
                snprintf(err->message, sizeof err->message, "transfer refused");
                err->field = "amount_usec";
                return r;
        }
        return credit_transfer_apply(&a->cr.ledger, &b->cr.ledger, &b->cr.spec, amount);
}

static int fake_events(void *ctx, int64_t since, size_t limit, ServiceEvent **ret, size_t *ret_n,
                       ServiceError *err) {
        ServiceEvent *e;
        size_t n = 0;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        e = calloc(3, sizeof *e);
        if (!e)
                return -ENOMEM;
        for (int64_t seq = 1; seq <= 3 && n < limit; seq++) {
                if (seq <= since)
                        continue;
                e[n].seq = seq;
                e[n].time_unix_usec = 1714564800123456 + (uint64_t) seq;
                snprintf(e[n].vm, sizeof e[n].vm, "%s", seq == 3 ? "" : U1);
                snprintf(e[n].kind, sizeof e[n].kind, "%s", seq == 1 ? "register" : "inject");
                e[n].detail_json = strdup(seq == 2 ? "{\"amount_usec\":5}" : "{}");
                n++;
        }
        *ret = e;
        *ret_n = n;
        return 0;
}

/* One VM, bursting, with 1.5 CPU-s banked; memory managed, one role's
 * delays known. */
static int fake_metrics(void *ctx, ServiceMetrics *ret, ServiceError *err) {
        ServiceVmMetrics *v;
        int r = fake_enter(ctx, err);

        if (r < 0)
                return r;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        assert_int_equal(vm_id_parse(U1, &v->credits.id), 0);
        v->credits.state = "bursting";
        v->credits.ledger.balance_usec = 1500000;
        v->mem_managed = v->mem_known = true;
        v->mem_current = 4096;
        v->delays_known[SERVICE_ROLE_VCPUS] = true;
        v->direct_reclaim_ns[SERVICE_ROLE_VCPUS] = 2500000000u;
        *ret = (ServiceMetrics) { .vms = v, .n_vms = 1, .bank_looks = 42, .memory_engine = true, .taskstats = true };
        return 0;
}

/* The fake's memory: unmanaged after a PUT (what was asked, echoed),
 * managed with a made-up report on GET. */
static int fake_memory_set(void *ctx, const VmId *id, const ServiceMemorySet *m, ServiceMemory *ret,
                           ServiceError *err) {
        Fake *f = ctx;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        if (!fake_find(f, id, err))
                return -ENOENT;
        f->last_mem = *m;
        *ret = (ServiceMemory) { .id = *id, .priority = m->priority, .gpu_max = m->dmem_max,
                                 .gpu_soft = m->dmem_soft, .gpu_low = m->dmem_low, .gpu_min = m->dmem_min,
                                 .unmanaged_reason = "fake" };
        snprintf(ret->gpu_pci, sizeof(ret->gpu_pci), "%s", m->gpu_pci);
        return 0;
}

static int fake_memory_get(void *ctx, const VmId *id, ServiceMemory *ret, ServiceError *err) {
        Fake *f = ctx;
        int r = fake_enter(f, err);

        if (r < 0)
                return r;
        if (!fake_find(f, id, err))
                return -ENOENT;
        *ret = (ServiceMemory) { .id = *id, .managed = true, .ram = 1u << 30, .max = UINT64_MAX,
                                 .high = UINT64_MAX, .low = 256u << 20, .current = 300u << 20,
                                 .has_delays = true, .last_error = -EAGAIN };
        ret->delays[SERVICE_ROLE_VCPUS] = (ServiceRoleDelays) { .known = true, .threads = 2,
                                                                .direct_reclaim_delay_ns = 5 };
        return 0;
}

static const ServiceOps fake_ops = {
        .memory_set = fake_memory_set,
        .memory_get = fake_memory_get,
        .host_info = fake_host_info,
        .vm_list = fake_vm_list,
        .vm_get = fake_vm_get,
        .vm_register = fake_vm_register,
        .vm_unregister = fake_vm_unregister,
        .credits_get = fake_credits_get,
        .credits_history = fake_credits_history,
        .credits_set_spec = fake_credits_set_spec,
        .credits_inject = fake_credits_inject,
        .credits_transfer = fake_credits_transfer,
        .events = fake_events,
        .metrics = fake_metrics,
};

/* ---- the loop, as vmmgrd would run it ------------------------------------------ */

typedef struct Server {
        char dir[64];
        char sock[128];
        Fake fake;
        Api *api;
        pthread_t thread;
        int stop_fd;
        bool running;
} Server;

static void *loop(void *arg) {
        Server *s = arg;

        for (;;) {
                struct pollfd p[2] = { { .fd = api_get_fd(s->api), .events = POLLIN },
                                       { .fd = s->stop_fd, .events = POLLIN } };
                int t = api_get_timeout_ms(s->api);

                if (poll(p, 2, t) < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                (void) api_dispatch(s->api);
                fake_answer_registration(&s->fake);
        }
        return NULL;
}

static void server_start(Server *s) {
        assert_int_equal(pthread_create(&s->thread, NULL, loop, s), 0);
        s->running = true;
}

static void server_stop(Server *s) {
        uint64_t one = 1;

        if (!s->running)
                return;
        assert_int_equal(write(s->stop_fd, &one, sizeof one), (ssize_t) sizeof one);
        pthread_join(s->thread, NULL);
        s->running = false;
        assert_int_equal(read(s->stop_fd, &one, sizeof one), (ssize_t) sizeof one);
}

static Server *server_new(const ApiConfig *extra) {
        Server *s = calloc(1, sizeof *s);
        ApiConfig cfg = extra ? *extra : (ApiConfig) { .allowed_gid = API_GID_ROOT_ONLY };
        ApiError err = {};
        int r;

        assert_non_null(s);
        snprintf(s->dir, sizeof s->dir, "/tmp/vmmgr-test-api-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->sock, sizeof s->sock, "%s/api.sock", s->dir);
        cfg.unix_path = s->sock;
        r = api_new(&cfg, &fake_ops, &s->fake, &s->api, &err);
        if (r < 0)
                fail_msg("api_new: %s (%s)", strerror(-r), err.message);
        s->stop_fd = eventfd(0, EFD_CLOEXEC);
        assert_true(s->stop_fd >= 0);
        server_start(s);
        return s;
}

static void server_free(Server *s) {
        char cmd[128];

        server_stop(s);
        api_free(s->api);
        close(s->stop_fd);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        assert_int_equal(system(cmd), 0);
        free(s);
}

static int setup(void **state) {
        *state = server_new(NULL);
        return 0;
}

static int teardown(void **state) {
        server_free(*state);
        return 0;
}

/* ---- client helpers -------------------------------------------------------------- */

static long req_full(Server *s, const char *method, const char *path, const char *body, HttpResponse *ret) {
        HttpTarget t = { .socket_path = s->sock };
        HttpError err = {};
        int r;

        r = http_request_ex(&t, method, path, body, body ? strlen(body) : 0, 5000, ret, &err);
        if (r < 0)
                fail_msg("%s %s: %s", method, path, err.message);
        return ret->status;
}

/* The status; the parsed body in *ret_json when asked (NULL for no body). */
static long req(Server *s, const char *method, const char *path, const char *body, struct json_object **ret_json) {
        HttpResponse resp;
        long status = req_full(s, method, path, body, &resp);

        if (ret_json) {
                *ret_json = resp.body_len ? json_tokener_parse(resp.body) : NULL;
                if (resp.body_len && !*ret_json)
                        fail_msg("%s %s: not JSON: %s", method, path, resp.body);
        }
        http_response_done(&resp);
        return status;
}

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                fail_msg("no key \"%s\" in %s", key, json_object_to_json_string(o));
        return json_object_get_string(v); /* NULL for null */
}

static int64_t jint(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                fail_msg("no integer \"%s\" in %s", key, json_object_to_json_string(o));
        return json_object_get_int64(v);
}

static bool jnull(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                fail_msg("no key \"%s\" in %s", key, json_object_to_json_string(o));
        return v == NULL;
}

static void register_vm(Server *s, const char *uuid) {
        char body[256];

        snprintf(body, sizeof body, "{\"uuid\":\"%s\",\"qmp\":\"/run/vm/%s.qmp\"}", uuid, uuid);
        assert_int_equal(req(s, "POST", "/v1/vms", body, NULL), 201);
}

/* ---- happy paths ------------------------------------------------------------------ */

static void test_routes_table(void **state) {
        const ApiRoute *r;
        size_t n = api_routes(&r);

        (void) state;
        assert_true(n >= 11);
        for (size_t i = 0; i < n; i++) {
                assert_non_null(r[i].handler);
                assert_true(r[i].pattern[0] == '/');
                for (size_t j = 0; j < i; j++)
                        assert_false(strcmp(r[i].method, r[j].method) == 0 && strcmp(r[i].pattern, r[j].pattern) == 0);
        }
}

static void test_happy_paths(void **state) {
        Server *s = *state;
        struct json_object *o, *spec, *a;
        HttpResponse resp;

        /* host */
        assert_int_equal(req(s, "GET", "/v1/host", NULL, &o), 200);
        assert_string_equal(jstr(o, "cgroup_mode"), "unified");
        json_object_put(o);

        /* empty list */
        assert_int_equal(req(s, "GET", "/v1/vms", NULL, &o), 200);
        assert_true(json_object_object_get_ex(o, "vms", &a));
        assert_int_equal(json_object_array_length(a), 0);
        json_object_put(o);

        /* register with a class; the path uuid is canonicalised (upper case in) */
        assert_int_equal(req(s, "POST", "/v1/vms",
                             "{\"uuid\":\"11111111-2222-3333-4444-555555555555\",\"qmp\":\"/run/a.qmp\",\"class\":\"t3.small\"}",
                             &o),
                         201);
        assert_string_equal(jstr(o, "uuid"), U1);
        assert_string_equal(jstr(o, "qmp"), "/run/a.qmp");
        assert_string_equal(jstr(o, "class"), "t3.small");
        assert_int_equal(jint(o, "pid"), 4242);
        assert_string_equal(jstr(o, "run_state"), "running");
        assert_string_equal(jstr(o, "registered_at"), "2024-05-01T12:00:00Z");
        assert_int_equal(jint(o, "vcpus"), 2);
        assert_int_equal(jint(o, "iothreads"), 1);
        json_object_put(o);
        assert_string_equal(s->fake.last_reg_class, "t3.small");
        assert_false(s->fake.last_reg.has_spec);

        /* register with a spec */
        assert_int_equal(req(s, "POST", "/v1/vms",
                             "{\"uuid\":\"" U2 "\",\"qmp\":\"/run/b.qmp\",\"spec\":{\"vcpus\":4,\"baseline\":0.25,"
                             "\"launch_usec\":60000000,\"mode\":\"unlimited\"}}",
                             &o),
                         201);
        assert_true(jnull(o, "class"));
        json_object_put(o);
        assert_true(s->fake.last_reg.has_spec);
        assert_int_equal(s->fake.last_reg.spec.vcpus, 4);
        assert_int_equal(s->fake.last_reg.spec.baseline_ppm, 250000);
        assert_int_equal(s->fake.last_reg.spec.launch_usec, 60000000);
        assert_int_equal(s->fake.last_reg.spec.cap_usec, 0);
        assert_int_equal(s->fake.last_reg.spec.mode, CREDIT_MODE_UNLIMITED);

        /* GET one, upper-case uuid in the path */
        assert_int_equal(req(s, "GET", "/v1/vms/AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", NULL, &o), 200);
        assert_string_equal(jstr(o, "uuid"), U2);
        json_object_put(o);

        assert_int_equal(req(s, "GET", "/v1/vms", NULL, &o), 200);
        assert_true(json_object_object_get_ex(o, "vms", &a));
        assert_int_equal(json_object_array_length(a), 2);
        json_object_put(o);

        /* credits */
        assert_int_equal(req(s, "GET", "/v1/vms/" U2 "/credits/history", NULL, &o), 200);
        assert_int_equal(json_object_array_length(json_object_object_get(o, "points")), 2);
        assert_string_equal(json_object_get_string(json_object_object_get(
                                    json_object_array_get_idx(json_object_object_get(o, "points"), 1), "state")),
                            "throttled");
        json_object_put(o);
        assert_int_equal(req(s, "GET", "/v1/vms/" U2 "/credits", NULL, &o), 200);
        assert_string_equal(jstr(o, "uuid"), U2);
        assert_string_equal(jstr(o, "bank"), "emulated");
        assert_string_equal(jstr(o, "state"), "bursting");
        assert_int_equal(jint(o, "launch_usec"), 60000000);
        assert_int_equal(jint(o, "balance_usec"), 0);
        assert_string_equal(jstr(o, "balance_credits"), "0.00");
        assert_string_equal(jstr(o, "earned_credits"), "0.00");
        assert_true(jnull(o, "quota_usec"));
        assert_int_equal(jint(o, "period_usec"), 100000);
        assert_int_equal(jint(o, "generation"), 1);
        for (const char *const *k = (const char *const[]) { "earned_usec", "spent_usec", "surplus_usec",
                                                            "charged_usec", "debt_usec", "forfeited_usec",
                                                            "throttled_usec", "usage_usec", NULL };
             *k; k++)
                (void) jint(o, *k);
        assert_true(json_object_object_get_ex(o, "spec", &spec));
        assert_int_equal(jint(spec, "vcpus"), 4);
        assert_int_equal(jint(spec, "earn_usec_per_sec"), 1000000);
        assert_int_equal(jint(spec, "cap_usec"), 86400LL * 1000000);
        assert_string_equal(jstr(spec, "mode"), "unlimited");
        assert_string_equal(json_object_to_json_string(json_object_object_get(spec, "baseline")), "0.25");
        json_object_put(o);

        /* PUT credits: partial change */
        assert_int_equal(req(s, "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":0.5,\"mode\":\"standard\"}", &o),
                         200);
        assert_int_equal(s->fake.last_change.set, SPEC_SET_BASELINE | SPEC_SET_MODE);
        assert_int_equal(s->fake.last_change.baseline_ppm, 500000);
        assert_int_equal(jint(o, "generation"), 2);
        json_object_put(o);
        assert_int_equal(req(s, "PUT", "/v1/vms/" U2 "/credits", "{\"class\":\"demo\",\"cap_usec\":7200000000,"
                                                                 "\"launch_usec\":0,\"baseline\":1}",
                             NULL),
                         200);
        assert_int_equal(s->fake.last_change.set, SPEC_SET_CLASS | SPEC_SET_CAP | SPEC_SET_LAUNCH | SPEC_SET_BASELINE);
        assert_int_equal(s->fake.last_change.cap_usec, 7200000000LL);
        assert_int_equal(s->fake.last_change.baseline_ppm, 1000000);

        /* inject, and take back */
        assert_int_equal(req(s, "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":120000000}", &o), 200);
        assert_int_equal(jint(o, "balance_usec"), 120000000);
        assert_string_equal(jstr(o, "balance_credits"), "2.00");
        json_object_put(o);
        assert_int_equal(req(s, "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":-60000000}", &o), 200);
        assert_int_equal(jint(o, "balance_usec"), 60000000);
        json_object_put(o);

        /* transfer */
        assert_int_equal(req(s, "POST", "/v1/credits/transfer",
                             "{\"from\":\"" U2 "\",\"to\":\"" U1 "\",\"amount_usec\":30000000}", &o),
                         200);
        assert_string_equal(jstr(o, "from"), U2);
        assert_int_equal(jint(o, "amount_usec"), 30000000);
        json_object_put(o);
        assert_int_equal(req(s, "GET", "/v1/vms/" U1 "/credits", NULL, &o), 200);
        assert_int_equal(jint(o, "balance_usec"), 30000000);
        json_object_put(o);

        /* events, with since and limit */
        assert_int_equal(req(s, "GET", "/v1/events", NULL, &o), 200);
        assert_true(json_object_object_get_ex(o, "events", &a));
        assert_int_equal(json_object_array_length(a), 3);
        assert_int_equal(jint(o, "next"), 3);
        {
                struct json_object *e = json_object_array_get_idx(a, 1), *d;

                assert_int_equal(jint(e, "seq"), 2);
                assert_string_equal(jstr(e, "kind"), "inject");
                assert_string_equal(jstr(e, "vm"), U1);
                assert_string_equal(jstr(e, "time"), "2024-05-01T12:00:00.123458Z");
                assert_true(json_object_object_get_ex(e, "detail", &d));
                assert_int_equal(jint(d, "amount_usec"), 5);
                assert_true(jnull(json_object_array_get_idx(a, 2), "vm"));
        }
        json_object_put(o);
        assert_int_equal(req(s, "GET", "/v1/events?since=1&limit=1", NULL, &o), 200);
        assert_true(json_object_object_get_ex(o, "events", &a));
        assert_int_equal(json_object_array_length(a), 1);
        assert_int_equal(jint(json_object_array_get_idx(a, 0), "seq"), 2);
        assert_int_equal(jint(o, "next"), 2);
        json_object_put(o);

        /* metrics: the service's values rendered by the API, with the API's
         * own counters (see test_stats for theirs) */
        assert_int_equal(req_full(s, "GET", "/metrics", NULL, &resp), 200);
        assert_non_null(strstr(resp.content_type, "text/plain; version=0.0.4"));
        assert_non_null(strstr(resp.body, "\nvmmgr_credit_balance_seconds{vm=\"" U1 "\"} 1.5\n"));
        assert_non_null(strstr(resp.body, "\nvmmgr_credit_state{vm=\"" U1 "\",state=\"bursting\"} 1\n"));
        assert_non_null(strstr(resp.body, "\nvmmgr_credit_state{vm=\"" U1 "\",state=\"throttled\"} 0\n"));
        assert_non_null(strstr(resp.body, "\nvmmgr_bank_looks_total 42\n"));
        assert_non_null(strstr(resp.body, "\nvmmgr_memory_current_bytes{vm=\"" U1 "\"} 4096\n"));
        assert_non_null(strstr(resp.body, "role=\"vcpus\"} 2.5\n"));
        assert_null(strstr(resp.body, "role=\"io\""));
        assert_non_null(strstr(resp.body, "# TYPE vmmgr_http_requests_total counter\n"));
        /* One prefix, base units (docs/metrics.md). */
        assert_null(strstr(resp.body, "vmmgrd_"));
        assert_null(strstr(resp.body, "_usec"));
        http_response_done(&resp);

        /* delete: 204 without a body, then 404 from the service */
        assert_int_equal(req_full(s, "DELETE", "/v1/vms/" U1, NULL, &resp), 204);
        assert_int_equal(resp.body_len, 0);
        http_response_done(&resp);
        assert_int_equal(req(s, "GET", "/v1/vms/" U1, NULL, &o), 404);
        assert_int_equal(jint(o, "code"), 404);
        assert_non_null(strstr(jstr(o, "message"), "no VM"));
        json_object_put(o);
        assert_int_equal(req(s, "DELETE", "/v1/vms/" U1, NULL, NULL), 404);
}

/* ---- bad input ------------------------------------------------------------------------ */

typedef struct BadCase {
        const char *method, *path, *body;
        long status;
        const char *field; /* NULL: the error's field is null */
} BadCase;

static const BadCase bad_cases[] = {
        /* unknown fields */
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"bogus\":1}", 400, "bogus" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"baseline\":0.1,\"turbo\":true}}", 400,
          "spec.turbo" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":0.1,\"vcpus\":3}", 400, "vcpus" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount\":5}", 400, "amount" },
        { "POST", "/v1/credits/transfer", "{\"from\":\"" U2 "\",\"to\":\"" U1 "\",\"amount_usec\":5,\"x\":0}", 400,
          "x" },
        { "GET", "/v1/events?sinse=3", NULL, 400, "sinse" },
        { "GET", "/v1/vms?all=1", NULL, 400, "all" },
        /* wrong types */
        { "POST", "/v1/vms", "{\"uuid\":5,\"qmp\":\"/q\"}", 400, "uuid" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":[\"/q\"]}", 400, "qmp" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"class\":7}", 400, "class" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":[]}", 400, "spec" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"baseline\":0.1,\"vcpus\":1.5}}", 400,
          "spec.vcpus" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":\"0.2\"}", 400, "baseline" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"cap_usec\":1.5}", 400, "cap_usec" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"mode\":true}", 400, "mode" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":\"5\"}", 400, "amount_usec" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":null}", 400, "amount_usec" },
        /* out of range */
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":1152921504606846977}", 400, "amount_usec" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":-1152921504606846977}", 400, "amount_usec" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":99999999999999999999999}", 400, "amount_usec" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{\"amount_usec\":0}", 400, "amount_usec" },
        { "POST", "/v1/vms/" U2 "/credits/inject", "{}", 400, "amount_usec" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":1.5}", 400, "baseline" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":-0.01}", 400, "baseline" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"cap_usec\":-1}", 400, "cap_usec" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"mode\":\"turbo\"}", 400, "mode" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"class\":\"Not A Class\"}", 400, "class" },
        { "PUT", "/v1/vms/" U2 "/credits", "{}", 400, NULL },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"baseline\":0.1,\"vcpus\":2000}}", 400,
          "spec.vcpus" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"baseline\":0}}", 400,
          "spec.cap_usec" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"vcpus\":2}}", 400, "spec.baseline" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"relative.qmp\"}", 400, "qmp" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\"}", 400, "qmp" },
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/a\\u0000b\"}", 400, "qmp" },
        { "POST", "/v1/credits/transfer", "{\"from\":\"" U2 "\",\"to\":\"" U1 "\",\"amount_usec\":0}", 400,
          "amount_usec" },
        { "POST", "/v1/credits/transfer", "{\"from\":\"" U2 "\",\"to\":\"" U2 "\",\"amount_usec\":5}", 400, "to" },
        { "GET", "/v1/events?since=-1", NULL, 400, "since" },
        { "GET", "/v1/events?limit=0", NULL, 400, "limit" },
        { "GET", "/v1/events?limit=abc", NULL, 400, "limit" },
        { "GET", "/v1/events?limit=1001", NULL, 400, "limit" },
        /* not UUIDs */
        { "POST", "/v1/vms", "{\"uuid\":\"not-a-uuid\",\"qmp\":\"/q\"}", 400, "uuid" },
        { "POST", "/v1/vms", "{\"uuid\":\"11111111-2222-3333-4444-5555555555555\",\"qmp\":\"/q\"}", 400, "uuid" },
        { "POST", "/v1/vms", "{\"qmp\":\"/q\"}", 400, "uuid" },
        { "GET", "/v1/vms/not-a-uuid", NULL, 400, "uuid" },
        { "DELETE", "/v1/vms/...", NULL, 400, "uuid" }, /* curl itself resolves "/.." */
        { "GET", "/v1/vms/11111111-2222-3333-4444-55555555555z/credits", NULL, 400, "uuid" },
        { "POST", "/v1/vms/%2e%2e/credits/inject", "{\"amount_usec\":5}", 400, "uuid" },
        { "POST", "/v1/credits/transfer", "{\"from\":\"x\",\"to\":\"" U1 "\",\"amount_usec\":5}", 400, "from" },
        /* invalid JSON */
        { "POST", "/v1/vms", "{", 400, NULL },
        { "POST", "/v1/vms", "{\"uuid\":1,}", 400, NULL },
        { "POST", "/v1/vms", "{} trailing", 400, NULL },
        { "POST", "/v1/vms", "{}{}", 400, NULL },
        { "POST", "/v1/vms", "[1,2]", 400, NULL },
        { "POST", "/v1/vms", "\"str\"", 400, NULL },
        { "POST", "/v1/vms", "", 400, NULL },
        /* json-c 0.16 takes single quotes even when strict; the value is
         * still checked like any other. */
        { "POST", "/v1/vms", "{'uuid':1}", 400, "uuid" },
        { "POST", "/v1/vms", "{\"uuid\":\"\xff\xfe\"}", 400, NULL },
        /* json-c takes NaN and Infinity as numbers even when strict. */
        { "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"spec\":{\"baseline\":NaN}}", 400, "spec.baseline" },
        { "PUT", "/v1/vms/" U2 "/credits", "{\"baseline\":-Infinity}", 400, "baseline" },
        { "POST", "/v1/vms", "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}}", 400, NULL },
        /* a body where none belongs */
        { "GET", "/v1/vms", "{}", 400, NULL },
        { "DELETE", "/v1/vms/" U2, "{\"force\":true}", 400, NULL },
        /* unknown routes */
        { "GET", "/", NULL, 404, NULL },
        { "GET", "/v1", NULL, 404, NULL },
        { "GET", "/v1/vms/", NULL, 404, NULL },
        { "GET", "/v1/vms/" U2 "/", NULL, 404, NULL },
        { "GET", "/v1/vms/" U2 "/credits/x", NULL, 404, NULL },
        { "GET", "/v2/vms", NULL, 404, NULL },
        { "GET", "/v1//vms", NULL, 404, NULL },
        { "GET", "/metrics/", NULL, 404, NULL },
        /* known routes, other methods */
        { "DELETE", "/v1/vms", NULL, 405, NULL },
        { "PATCH", "/v1/vms/" U2, NULL, 405, NULL },
        { "GET", "/v1/credits/transfer", NULL, 405, NULL },
        { "POST", "/metrics", "{}", 405, NULL },
        { "PUT", "/v1/events", NULL, 405, NULL },
        /* memory */
        { "PUT", "/v1/vms/" U1 "/memory", "{}", 400, NULL },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"priority\":-1}", 400, "priority" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"priority\":4294967296}", 400, "priority" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"size\":1}", 400, "size" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":7}", 400, "gpu" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":{\"pci\":\"../../etc\"}}", 400, "gpu.pci" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":{\"max\":1}}", 400, "gpu.pci" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":{\"pci\":\"0000:03:00.0\",\"vram\":1}}", 400, "gpu.vram" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":{\"pci\":\"0000:03:00.0\",\"low\":\"max\"}}", 400,
          "gpu.low" },
        { "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":{\"pci\":\"0000:03:00.0\",\"max\":\"lots\"}}", 400,
          "gpu.max" },
        { "PUT", "/v1/vms/" U1 "/memory",
          "{\"gpu\":{\"pci\":\"0000:03:00.0\",\"max\":100,\"soft\":200}}", 400, "gpu" },
        { "PUT", "/v1/vms/not-a-uuid/memory", "{\"priority\":1}", 400, "uuid" },
};

/* PUT /v1/vms/{uuid}/memory hands the service exactly what was asked. */
static void test_memory_put(void **state) {
        Server *s = *state;
        struct json_object *o = NULL;
        const ServiceMemorySet *m = &s->fake.last_mem;

        register_vm(s, U1);
        assert_int_equal(req(s, "PUT", "/v1/vms/" U1 "/memory",
                             "{\"priority\":7,\"gpu\":{\"pci\":\"0000:03:00.0\",\"max\":\"max\","
                             "\"soft\":2147483648,\"low\":1073741824,\"min\":268435456}}",
                             &o),
                         200);
        /* The answer is the report, rendered by the API (json-io). */
        assert_int_equal(json_object_get_int(json_object_object_get(o, "priority")), 7);
        assert_false(json_object_get_boolean(json_object_object_get(o, "managed")));
        assert_string_equal(json_object_get_string(json_object_object_get(o, "reason")), "fake");
        {
                struct json_object *g = json_object_object_get(o, "gpu");
                assert_string_equal(json_object_get_string(json_object_object_get(g, "pci")), "0000:03:00.0");
                assert_string_equal(json_object_get_string(json_object_object_get(g, "max")), "max");
                assert_int_equal(json_object_get_int64(json_object_object_get(g, "low")), 1 << 30);
        }
        json_object_put(o);
        /* GET renders a managed report: sizes, "max", per-role delays. */
        assert_int_equal(req(s, "GET", "/v1/vms/" U1 "/memory", NULL, &o), 200);
        {
                struct json_object *l = json_object_object_get(o, "limits"), *dl = json_object_object_get(o, "delays");
                assert_true(json_object_get_boolean(json_object_object_get(o, "managed")));
                assert_string_equal(json_object_get_string(json_object_object_get(l, "max")), "max");
                assert_int_equal(json_object_get_int64(json_object_object_get(l, "low")), 256 << 20);
                assert_int_equal(json_object_get_int64(json_object_object_get(
                                         json_object_object_get(dl, "vcpus"), "direct_reclaim_delay_ns")),
                                 5);
                assert_null(json_object_object_get(dl, "io"));
                assert_string_equal(json_object_get_string(json_object_object_get(o, "last_error")),
                                    strerror(EAGAIN));
        }
        json_object_put(o);
        assert_int_equal(m->set, SERVICE_MEM_PRIORITY | SERVICE_MEM_GPU);
        assert_int_equal(m->priority, 7);
        assert_string_equal(m->gpu_pci, "0000:03:00.0");
        assert_true(m->dmem_max == UINT64_MAX && m->dmem_soft == (UINT64_C(2) << 30) &&
                    m->dmem_low == (UINT64_C(1) << 30) && m->dmem_min == (UINT64_C(256) << 20));
        /* null removes the GPU; only what was given is set. */
        assert_int_equal(req(s, "PUT", "/v1/vms/" U1 "/memory", "{\"gpu\":null}", &o), 200);
        json_object_put(o);
        assert_int_equal(m->set, SERVICE_MEM_GPU);
        assert_string_equal(m->gpu_pci, "");
        assert_int_equal(req(s, "PUT", "/v1/vms/" U3 "/memory", "{\"priority\":1}", &o), 404);
        json_object_put(o);
}

static void test_bad_input(void **state) {
        Server *s = *state;

        register_vm(s, U1);
        register_vm(s, U2);
        for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
                const BadCase *c = &bad_cases[i];
                unsigned before = fake_calls(&s->fake);
                struct json_object *o = NULL, *field;
                HttpResponse resp;
                long status = req_full(s, c->method, c->path, c->body, &resp);

                if (status != c->status)
                        fail_msg("case %zu: %s %s %s: got %ld, want %ld: %s", i, c->method, c->path,
                                 c->body ? c->body : "", status, c->status, resp.body);
                if (fake_calls(&s->fake) != before)
                        fail_msg("case %zu: %s %s: the service was called for a rejected request", i, c->method,
                                 c->path);
                o = json_tokener_parse(resp.body);
                if (!o)
                        fail_msg("case %zu: error body is not JSON: %s", i, resp.body);
                assert_int_equal(jint(o, "code"), c->status);
                assert_true(strlen(jstr(o, "message")) > 0);
                assert_true(json_object_object_get_ex(o, "field", &field));
                if (c->field && (!field || strcmp(json_object_get_string(field), c->field) != 0))
                        fail_msg("case %zu: field %s, want %s (%s)", i, json_object_to_json_string(field), c->field,
                                 resp.body);
                if (!c->field && field)
                        fail_msg("case %zu: %s %s %s: field %s, want null", i, c->method, c->path,
                                 c->body ? c->body : "", json_object_get_string(field));
                if (status == 405)
                        assert_non_null(resp.allow);
                json_object_put(o);
                http_response_done(&resp);
        }
}

static void test_allow_header(void **state) {
        Server *s = *state;
        HttpResponse resp;

        assert_int_equal(req_full(s, "DELETE", "/v1/vms", NULL, &resp), 405);
        assert_string_equal(resp.allow, "GET, POST");
        http_response_done(&resp);
        assert_int_equal(req_full(s, "POST", "/v1/vms/" U1, NULL, &resp), 405);
        assert_string_equal(resp.allow, "GET, DELETE");
        http_response_done(&resp);
        assert_int_equal(req_full(s, "HEAD", "/v1/vms/" U1 "/credits", NULL, &resp), 405);
        http_response_done(&resp);
}

static void test_oversize(void **state) {
        Server *s = *state;
        size_t n = 1024 * 1024;
        char *big = malloc(n + 1);
        unsigned before = fake_calls(&s->fake);
        struct json_object *o;

        assert_non_null(big);
        /* Valid JSON, so only its size is wrong. */
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        big[n] = '\0';
        assert_int_equal(req(s, "POST", "/v1/vms", big, &o), 413);
        assert_int_equal(jint(o, "code"), 413);
        json_object_put(o);
        /* Just over the cap. */
        big[64 * 1024] = '}';
        big[64 * 1024 + 1] = '\0';
        assert_int_equal(req(s, "POST", "/v1/vms", big, NULL), 413);
        /* At the cap: parsed (and rejected for what it says, not its size). */
        big[64 * 1024 - 1] = '}';
        big[64 * 1024] = '\0';
        assert_int_equal(req(s, "POST", "/v1/vms", big, NULL), 400);
        assert_int_equal(fake_calls(&s->fake), before);
        free(big);
        /* The server is still fine. */
        assert_int_equal(req(s, "GET", "/v1/vms", NULL, NULL), 200);
}

static int raw_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static bool write_all(int fd, const void *buf, size_t n) {
        const char *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* Reads until EOF (or the buffer is full): the server closes after the reply. */
static size_t read_all(int fd, char *buf, size_t size) {
        size_t len = 0;
        ssize_t k;

        while (len + 1 < size && (k = read(fd, buf + len, size - 1 - len)) > 0)
                len += (size_t) k;
        buf[len] = '\0';
        return len;
}

static void test_oversize_chunked(void **state) {
        Server *s = *state;
        static const char head[] = "POST /v1/vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        unsigned before = fake_calls(&s->fake);
        char chunk[16 * 1024 + 16], reply[4096];
        int fd = raw_connect(s->sock);

        assert_true(fd >= 0);
        assert_true(write_all(fd, head, strlen(head)));
        for (int i = 0; i < 16; i++) { /* 256 KiB in 16 KiB chunks, no length declared */
                int n = snprintf(chunk, sizeof chunk, "4000\r\n");

                memset(chunk + n, i == 0 ? '{' : ' ', 0x4000);
                memcpy(chunk + n + 0x4000, "\r\n", 2);
                assert_true(write_all(fd, chunk, (size_t) n + 0x4000 + 2));
        }
        assert_true(write_all(fd, "0\r\n\r\n", 5));
        read_all(fd, reply, sizeof reply);
        close(fd);
        if (strncmp(reply, "HTTP/1.1 413", 12) != 0)
                fail_msg("chunked oversize: %s", reply);
        assert_int_equal(fake_calls(&s->fake), before);
}

static void test_garbage_http(void **state) {
        ApiConfig cfg = { .allowed_gid = API_GID_ROOT_ONLY, .connection_timeout_sec = 1 };
        Server *s = server_new(&cfg);
        time_t start = time(NULL);
        static const char *const garbage[] = {
                "GARBAGE\r\n\r\n",
                "GET /v1/vms HTTP/9.9\r\n\r\n",
                "GET /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                "\x00\x01\x02\x03",
        };
        unsigned before = fake_calls(&s->fake);
        char reply[4096];

        for (size_t i = 0; i < ARRAY_SIZE(garbage); i++) {
                int fd = raw_connect(s->sock);

                assert_true(fd >= 0);
                assert_true(write_all(fd, garbage[i], i == 4 ? 4 : strlen(garbage[i])));
                shutdown(fd, SHUT_WR);
                read_all(fd, reply, sizeof reply);
                close(fd);
                /* No reply at all is fine; a 2xx is not. */
                if (strncmp(reply, "HTTP/1.1 2", 10) == 0)
                        fail_msg("garbage %zu accepted: %s", i, reply);
        }
        assert_int_equal(fake_calls(&s->fake), before);
        assert_int_equal(req(s, "GET", "/v1/vms", NULL, NULL), 200);
        {
                /* A whole request, then a half-close: still answered. */
                static const char get[] = "GET /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n";
                int fd = raw_connect(s->sock);

                assert_true(fd >= 0);
                assert_true(write_all(fd, get, sizeof get - 1));
                shutdown(fd, SHUT_WR);
                read_all(fd, reply, sizeof reply);
                close(fd);
                if (strncmp(reply, "HTTP/1.1 200", 12) != 0)
                        fail_msg("half-closed request: %s", reply);
        }
        /* A partial request line and a half-close is only noticed by the
         * idle timeout: the loop must honour api_get_timeout_ms(). */
        assert_true(time(NULL) - start <= 5);
        server_free(s);
}

static void test_service_errors(void **state) {
        Server *s = *state;
        static const struct {
                int r;
                long status;
        } map[] = {
                { -ENOENT, 404 }, { -EEXIST, 409 }, { -EBUSY, 409 }, { -EINVAL, 400 },
                { -ERANGE, 400 }, { -EIO, 500 },    { -ENOMEM, 500 },
        };
        struct json_object *o;

        register_vm(s, U1);
        /* A real conflict: registered twice. */
        assert_int_equal(req(s, "POST", "/v1/vms", "{\"uuid\":\"" U1 "\",\"qmp\":\"/q\"}", &o), 409);
        assert_non_null(strstr(jstr(o, "message"), "already registered"));
        json_object_put(o);
        /* The service names the field. */
        assert_int_equal(req(s, "POST", "/v1/vms", "{\"uuid\":\"" U3 "\",\"qmp\":\"/q\",\"class\":\"nope\"}", &o), 400);
        assert_string_equal(jstr(o, "field"), "class");
        json_object_put(o);
        assert_int_equal(req(s, "POST", "/v1/vms/" U1 "/credits/inject", "{\"amount_usec\":-1}", &o), 400);
        assert_string_equal(jstr(o, "field"), "amount_usec");
        json_object_put(o);
        assert_int_equal(req(s, "POST", "/v1/credits/transfer",
                             "{\"from\":\"" U1 "\",\"to\":\"" U3 "\",\"amount_usec\":5}", NULL),
                         404);

        for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
                s->fake.force_r = map[i].r;
                s->fake.force_field = map[i].r == -EINVAL ? "class" : NULL;
                assert_int_equal(req(s, "GET", "/v1/vms/" U1 "/credits", NULL, &o), map[i].status);
                assert_int_equal(jint(o, "code"), map[i].status);
                assert_non_null(strstr(jstr(o, "message"), "forced"));
                if (map[i].r == -EINVAL)
                        assert_string_equal(jstr(o, "field"), "class");
                json_object_put(o);
                assert_int_equal(req(s, "GET", "/metrics", NULL, NULL), map[i].status);
                assert_int_equal(req(s, "GET", "/v1/host", NULL, NULL), map[i].status);
        }
        s->fake.force_r = 0;
}

static void test_stats(void **state) {
        Server *s = *state;
        ApiStats st;
        char *text = NULL;
        uint64_t sum = 0;

        assert_int_equal(req(s, "GET", "/v1/vms", NULL, NULL), 200);
        assert_int_equal(req(s, "GET", "/v1/nope", NULL, NULL), 404);
        assert_int_equal(req(s, "GET", "/v1/vms/x", NULL, NULL), 400);
        server_stop(s); /* the counters belong to the loop's thread */
        api_get_stats(s->api, &st);
        assert_int_equal(st.requests, 3);
        assert_int_equal(st.by_status[200], 1);
        assert_int_equal(st.by_status[404], 1);
        assert_int_equal(st.by_status[400], 1);
        for (size_t b = 0; b <= API_LATENCY_BUCKETS; b++)
                sum += st.latency_bucket[b];
        assert_int_equal(sum, 3);
        assert_int_equal(api_stats_to_prometheus(&st, &text), 0);
        assert_non_null(strstr(text, "vmmgr_http_requests_total{code=\"404\"} 1\n"));
        assert_non_null(strstr(text, "vmmgr_http_request_duration_seconds_count 3\n"));
        assert_non_null(strstr(text, "vmmgr_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        free(text);
        server_start(s);
}

/* ---- the socket file ----------------------------------------------------------------- */

static void test_socket_file(void **state) {
        Server *s = *state;
        ApiConfig cfg = { .allowed_gid = API_GID_ROOT_ONLY };
        char path[160], stale[160];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ApiError err = {};
        struct stat st;
        Api *api = NULL;
        int fd;

        assert_int_equal(stat(s->sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0660);

        /* Someone listens: refused, and their socket stays. */
        cfg.unix_path = s->sock;
        assert_int_equal(api_new(&cfg, &fake_ops, &s->fake, &api, &err), -EADDRINUSE);
        assert_non_null(strstr(err.message, s->sock));
        assert_int_equal(req(s, "GET", "/v1/vms", NULL, NULL), 200);

        /* Not a socket: never removed. */
        snprintf(path, sizeof path, "%s/file", s->dir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "keep", 4), 4);
        close(fd);
        cfg.unix_path = path;
        assert_int_equal(api_new(&cfg, &fake_ops, &s->fake, &api, &err), -EEXIST);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_size, 4);

        /* A stale socket (bound, nobody listening): replaced. */
        snprintf(stale, sizeof stale, "%s/stale.sock", s->dir);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", stale);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd);
        cfg.unix_path = stale;
        assert_int_equal(api_new(&cfg, &fake_ops, &s->fake, &api, &err), 0);
        assert_true(api_get_fd(api) >= 0);
        assert_int_equal(api_get_tcp_port(api), 0);
        api_free(api);
        assert_int_equal(stat(stale, &st), -1); /* removed on free */

        /* No listener at all. */
        cfg = (ApiConfig) { .allowed_gid = API_GID_ROOT_ONLY };
        assert_int_equal(api_new(&cfg, &fake_ops, &s->fake, &api, &err), -EINVAL);
}

static void test_client_errors(void **state) {
        Server *s = *state;
        char path[160];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        HttpError err = {};
        char *body = NULL;
        long status = 0;
        int fd;

        snprintf(path, sizeof path, "%s/none.sock", s->dir);
        assert_int_equal(http_request(path, "GET", "/v1/vms", NULL, 1000, &status, &body, &err), -ENOENT);
        assert_non_null(strstr(err.message, "vmmgrd is not running (no socket at "));
        assert_non_null(strstr(err.message, path));

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd);
        assert_int_equal(http_request(path, "GET", "/v1/vms", NULL, 1000, &status, &body, &err), -ECONNREFUSED);
        assert_non_null(strstr(err.message, "vmmgrd is not running"));

        assert_int_equal(http_request(s->sock, "GET", "/v1/vms", NULL, 1000, &status, &body, &err), 0);
        assert_int_equal(status, 200);
        assert_non_null(strstr(body, "\"vms\""));
        free(body);
}

/* ---- SO_PEERCRED ------------------------------------------------------------------------ */

/* In a forked child, as `uid` with primary group `gid` and supplementary
 * `groups`: one raw GET; the child exits with the status's hundreds digit
 * (2, 4, ...) or 99 if it got no answer.  Raw syscalls only: the parent
 * has threads. */
static int status_as(const char *sock, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                static const char get[] = "GET /v1/vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                char reply[64];
                size_t len = 0;
                ssize_t k;
                int fd;

                if (setgroups(n_groups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                        _exit(98);
                fd = raw_connect(sock);
                if (fd < 0)
                        _exit(97);
                if (!write_all(fd, get, sizeof get - 1))
                        _exit(96);
                while (len < 12 && (k = read(fd, reply + len, sizeof reply - len)) > 0)
                        len += (size_t) k;
                if (len < 12 || memcmp(reply, "HTTP/1.1 ", 9) != 0)
                        _exit(99);
                _exit(reply[9] - '0');
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_peercred(void **state) {
        Server *s = *state, *g;
        ApiConfig cfg = { .allowed_gid = 4242 };
        const gid_t supp[] = { 100, 4242 };
        unsigned before;

        if (geteuid() != 0)
                vt_skip("needs root to connect as another user");

        /* The group's members must be able to reach the socket at all; the
         * check under test is the one after connect(). */
        assert_int_equal(chmod(s->dir, 0755), 0);
        assert_int_equal(chmod(s->sock, 0666), 0);
        before = fake_calls(&s->fake);
        assert_int_equal(status_as(s->sock, 0, 0, NULL, 0), 2);
        assert_int_equal(status_as(s->sock, 65534, 65534, NULL, 0), 4);
        assert_int_equal(status_as(s->sock, 65534, 4242, NULL, 0), 4); /* root only: groups do not count */
        assert_int_equal(fake_calls(&s->fake), before + 1);

        g = server_new(&cfg);
        assert_int_equal(chmod(g->dir, 0755), 0);
        {
                struct stat st;

                assert_int_equal(stat(g->sock, &st), 0);
                assert_int_equal(st.st_gid, 4242); /* the group can connect() ... */
                assert_int_equal(st.st_mode & 07777, 0660);
        }
        assert_int_equal(chmod(g->sock, 0666), 0); /* ... and for the test, so can others */
        before = fake_calls(&g->fake);
        assert_int_equal(status_as(g->sock, 65534, 65534, NULL, 0), 4);
        assert_int_equal(fake_calls(&g->fake), before);
        assert_int_equal(status_as(g->sock, 65534, 4242, NULL, 0), 2);   /* primary group */
        assert_int_equal(status_as(g->sock, 65534, 65534, supp, 2), 2);  /* supplementary */
        assert_int_equal(fake_calls(&g->fake), before + 2);
        server_stop(g);
        {
                ApiStats st;

                api_get_stats(g->api, &st);
                assert_int_equal(st.denied, 1);
                assert_int_equal(st.by_status[403], 1);
        }
        server_free(g);
}

/* ---- TLS with client certificates ------------------------------------------------------- */

static long tls_get(const char *dir, uint16_t port, const char *client, HttpError *err) {
        char url[64], ca[256], cert[256], key[256];
        HttpTarget t;
        HttpResponse resp;
        long status;
        int r;

        snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned) port);
        snprintf(ca, sizeof ca, "%s/ca.crt", dir);
        snprintf(cert, sizeof cert, "%s/%s.crt", dir, client ? client : "");
        snprintf(key, sizeof key, "%s/%s.key", dir, client ? client : "");
        t = (HttpTarget) { .base_url = url, .ca_file = ca, .cert_file = client ? cert : NULL,
                           .key_file = client ? key : NULL };
        r = http_request_ex(&t, "GET", "/v1/vms", NULL, 0, 5000, &resp, err);
        if (r < 0)
                return r;
        status = resp.status;
        http_response_done(&resp);
        return status;
}

static void test_tls(void **state) {
        Server *s;
        Pki ca, server, good, other_ca, bad;
        ApiConfig cfg = { .allowed_gid = API_GID_ROOT_ONLY, .tcp_address = "127.0.0.1" };
        char dir[64], cert[128], key[128], cafile[128];
        HttpError err = {};
        unsigned before;
        uint16_t port;
        long st;

        (void) state;
        snprintf(dir, sizeof dir, "/tmp/vmmgr-test-pki-XXXXXX");
        assert_non_null(mkdtemp(dir));
        pki_make(&ca, "vmmgr test CA", PKI_CA, NULL);
        pki_make(&server, "vmmgrd", PKI_SERVER, &ca);
        pki_make(&good, "operator", PKI_CLIENT, &ca);
        pki_make(&other_ca, "some other CA", PKI_CA, NULL);
        pki_make(&bad, "intruder", PKI_CLIENT, &other_ca);
        pki_write(dir, "ca", &ca);
        pki_write(dir, "server", &server);
        pki_write(dir, "good", &good);
        pki_write(dir, "bad", &bad);
        snprintf(cert, sizeof cert, "%s/server.crt", dir);
        snprintf(key, sizeof key, "%s/server.key", dir);
        snprintf(cafile, sizeof cafile, "%s/ca.crt", dir);

        /* Incomplete or broken TLS configuration: clear errors. */
        {
                ApiConfig c = cfg;
                ApiError e = {};
                Api *api = NULL;

                c.tls_cert_file = cert;
                c.tls_key_file = key;
                assert_int_equal(api_new(&c, &fake_ops, NULL, &api, &e), -EINVAL);
                assert_non_null(strstr(e.message, "tls_ca_file"));
                c.tls_ca_file = cafile;
                c.tls_key_file = cafile; /* not a key */
                assert_int_equal(api_new(&c, &fake_ops, NULL, &api, &e), -EBADMSG);
                assert_non_null(strstr(e.message, cafile));
        }

        cfg.tls_cert_file = cert;
        cfg.tls_key_file = key;
        cfg.tls_ca_file = cafile;
        s = server_new(&cfg);
        port = api_get_tcp_port(s->api);
        assert_true(port > 0);
        before = fake_calls(&s->fake);

        st = tls_get(dir, port, NULL, &err);
        if (st < 0)
                fail_msg("no client certificate: %s", err.message);
        assert_int_equal(st, 401);
        st = tls_get(dir, port, "bad", &err);
        /* Rejected either in the handshake or with 403, never served. */
        if (st >= 0)
                assert_true(st == 403 || st == 401);
        assert_int_equal(fake_calls(&s->fake), before);
        st = tls_get(dir, port, "good", &err);
        if (st < 0)
                fail_msg("good client certificate: %s", err.message);
        assert_int_equal(st, 200);
        assert_int_equal(fake_calls(&s->fake), before + 1);
        /* The UNIX socket still works next to it. */
        assert_int_equal(req(s, "GET", "/v1/vms", NULL, NULL), 200);

        server_free(s);
        pki_done(&ca);
        pki_done(&server);
        pki_done(&good);
        pki_done(&other_ca);
        pki_done(&bad);
        {
                char cmd[128];

                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                assert_int_equal(system(cmd), 0);
        }
}

/* ---- socket activation and the graceful stop (api_quiesce) ------------------------ */

/* One whole answer (headers and Content-Length's body) from a kept-alive
 * connection; its length, 0 on EOF or a cut answer. */
static size_t read_answer(int fd, char *buf, size_t size) {
        size_t len = 0;

        for (;;) {
                char *end, *cl;
                ssize_t k;

                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (end && (cl = strcasestr(buf, "Content-Length:")) && cl < end &&
                    len >= (size_t) (end + 4 - buf) + strtoul(cl + 15, NULL, 10))
                        return len;
                if (len + 1 >= size || (k = read(fd, buf + len, size - 1 - len)) <= 0)
                        return 0;
                len += (size_t) k;
        }
}

static bool readable_within(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, ms) > 0;
}

/* Runs the loop until the API holds `want` connections (checked with the
 * loop stopped: api_connections() is the loop thread's).  Leaves it stopped. */
static void wait_connections(Server *s, unsigned want) {
        for (int i = 0; i < 500; i++) {
                server_stop(s);
                if (api_connections(s->api) == want)
                        return;
                server_start(s);
                usleep(10000);
        }
        server_stop(s);
        fail_msg("the API holds %u connections, not %u", api_connections(s->api), want);
}

static Api *api_on(Server *s, int listen_fd) {
        ApiConfig cfg = { .allowed_gid = API_GID_ROOT_ONLY, .unix_path = s->sock, .unix_fd = dup(listen_fd) };
        ApiError err = {};
        Api *api = NULL;
        int r;

        assert_true(cfg.unix_fd > 0);
        r = api_new(&cfg, &fake_ops, &s->fake, &api, &err);
        if (r < 0)
                fail_msg("api_new on a given socket: %s (%s)", strerror(-r), err.message);
        return api;
}

/* What vmmgrd does across an upgrade under socket activation: the test
 * holds the listening socket (systemd's part); one Api serves it and is
 * quiesced -- its kept-alive idle connection closed, a connection that has
 * not sent its request yet still answered (with Connection: close), one
 * that sends nothing closed after the grace, a new connection left
 * waiting in the backlog, the socket file kept --
 * and a second Api on the same socket answers the one that waited. */
static void test_handover(void **state) {
        static const char get[] = "GET /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n";
        Server *s = calloc(1, sizeof *s);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[8192];
        struct stat st;
        ApiConfig bad;
        ApiError err = {};
        Api *api = NULL;
        int lfd, keep, fresh, silent, queued, pair[2];

        (void) state;
        assert_non_null(s);
        snprintf(s->dir, sizeof s->dir, "/tmp/vmmgr-test-api-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->sock, sizeof s->sock, "%s/api.sock", s->dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(lfd, 16), 0);

        /* A given descriptor that is no listener: refused, and closed. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        bad = (ApiConfig) { .allowed_gid = API_GID_ROOT_ONLY, .unix_path = s->sock, .unix_fd = pair[0] };
        assert_int_equal(api_new(&bad, &fake_ops, &s->fake, &api, &err), -ENOTSOCK);
        assert_non_null(strstr(err.message, "not a listening"));
        assert_int_equal(fcntl(pair[0], F_GETFD), -1);
        close(pair[1]);

        s->api = api_on(s, lfd);
        s->stop_fd = eventfd(0, EFD_CLOEXEC);
        assert_true(s->stop_fd >= 0);
        server_start(s);

        /* A kept-alive connection, answered once and idle; a fresh one. */
        keep = raw_connect(s->sock);
        assert_true(keep >= 0);
        assert_true(write_all(keep, get, strlen(get)));
        assert_true(read_answer(keep, buf, sizeof buf) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        fresh = raw_connect(s->sock);
        assert_true(fresh >= 0);
        silent = raw_connect(s->sock);
        assert_true(silent >= 0);
        wait_connections(s, 3);

        api_quiesce(s->api);
        assert_true(api_is_quiesced(s->api));
        api_quiesce(s->api); /* idempotent */
        assert_int_equal(api_get_tcp_fd(s->api), -EBADF);
        /* The idle one is closed at once: EOF, no answer. */
        assert_true(readable_within(keep, 2000));
        assert_int_equal(read(keep, buf, sizeof buf), 0);
        close(keep);
        /* New connections queue in the kernel, unanswered. */
        queued = raw_connect(s->sock);
        assert_true(queued >= 0);
        assert_true(write_all(queued, get, strlen(get)));
        server_start(s);

        /* The fresh one's request is answered, and that ends it. */
        assert_true(write_all(fresh, get, strlen(get)));
        assert_true(read_answer(fresh, buf, sizeof buf) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        assert_non_null(strcasestr(buf, "Connection: close"));
        assert_true(readable_within(fresh, 2000));
        assert_int_equal(read(fresh, buf, sizeof buf), 0);
        close(fresh);
        /* One that never begins a request is not waited for past the grace. */
        assert_true(readable_within(silent, 3000));
        assert_int_equal(read(silent, buf, sizeof buf), 0);
        close(silent);
        wait_connections(s, 0);
        assert_false(readable_within(queued, 200));

        /* Stopped: the socket it was given is not removed ... */
        api_free(s->api);
        assert_int_equal(stat(s->sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        /* ... and the next one answers what waited. */
        s->api = api_on(s, lfd);
        server_start(s);
        assert_true(read_answer(queued, buf, sizeof buf) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        assert_null(strcasestr(buf, "Connection: close"));
        close(queued);
        close(lfd);
        server_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes_table),
                cmocka_unit_test_setup_teardown(test_happy_paths, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_memory_put, setup, teardown),
                cmocka_unit_test_setup_teardown(test_allow_header, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oversize_chunked, setup, teardown),
                cmocka_unit_test(test_garbage_http),
                cmocka_unit_test_setup_teardown(test_service_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
                cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peercred, setup, teardown),
                cmocka_unit_test(test_tls),
                cmocka_unit_test(test_handover),
        };

        /* vmmgrd ignores SIGPIPE too: a client that hangs up mid-reply must
         * not kill the server. */
        signal(SIGPIPE, SIG_IGN);
        return vt_run_group_tests(tests, NULL, NULL);
}
