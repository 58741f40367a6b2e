/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/routes.c - the route table (docs/openapi.yaml documents
 * exactly these) and one handler per route: parse, validate, call the
 * service (service.h), render.
 */
#include "vmmgr/api/api-internal.h"

#include "migration/record.h"

/* ---- handlers ----------------------------------------------------------------- */

static int h_host(ApiRequest *req) {
        ServiceError err = {};
        char *json = NULL;
        int r;

        r = req->api->ops->host_info(req->api->ops_ctx, &json, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "application/json", json);
        return 0;
}

static int h_vms_list(ApiRequest *req) {
        _cleanup_free_ ServiceVm *vms = NULL;
        struct json_object *o, *a;
        ServiceError err = {};
        size_t n = 0;
        int r;

        r = req->api->ops->vm_list(req->api->ops_ctx, &vms, &n, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        o = json_object_new_object();
        a = json_object_new_array_ext((int) MIN(n, (size_t) INT_MAX));
        if (!o || !a || json_object_object_add(o, "vms", a) < 0) {
                json_object_put(a);
                json_object_put(o);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *v = json_io_vm(&vms[i]);

                if (!v || json_object_array_add(a, v) < 0) {
                        json_object_put(v);
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        return reply_json(req, 200, o);
}

static bool parse_spec(ApiRequest *req, struct json_object *spec, CreditSpec *ret) {
        static const char *const keys[] = { "vcpus", "baseline", "cap_usec", "launch_usec", "mode", NULL };
        CreditSpec s = { .mode = CREDIT_MODE_STANDARD };
        CreditSpec check;
        const char *bad = NULL;
        bool present, have_baseline;
        int64_t x;

        if (!json_object_is_type(spec, json_type_object)) {
                reply_error(req, 400, "spec", "spec must be an object");
                return false;
        }
        if (!check_keys(req, spec, keys, "spec."))
                return false;
        if (!get_int(req, spec, "vcpus", "spec.vcpus", 0, CREDIT_MAX_VCPUS, &present, &x))
                return false;
        if (present)
                s.vcpus = (uint32_t) x;
        if (!get_baseline(req, spec, "baseline", "spec.baseline", &have_baseline, &s.baseline_ppm))
                return false;
        if (!have_baseline) {
                reply_error(req, 400, "spec.baseline", "spec.baseline is required in a spec");
                return false;
        }
        if (!get_int(req, spec, "cap_usec", "spec.cap_usec", 0, CREDIT_AMOUNT_MAX, &present, &s.cap_usec))
                return false;
        if (!get_int(req, spec, "launch_usec", "spec.launch_usec", 0, CREDIT_AMOUNT_MAX, &present, &s.launch_usec))
                return false;
        if (!get_mode(req, spec, "mode", "spec.mode", &present, &s.mode))
                return false;

        /* vcpus 0 means "ask QEMU"; validate the rest as if it were one. */
        check = s;
        if (check.vcpus == 0)
                check.vcpus = 1;
        if (credit_spec_validate(&check, &bad) < 0) {
                const char *field = !bad                        ? "spec"
                                    : strcmp(bad, "cap") == 0    ? "spec.cap_usec"
                                    : strcmp(bad, "launch") == 0 ? "spec.launch_usec"
                                    : strcmp(bad, "vcpus") == 0  ? "spec.vcpus"
                                                                 : "spec.baseline";
                reply_error(req, 400, field, "invalid %s (a zero baseline needs an explicit cap)", field);
                return false;
        }
        *ret = s;
        return true;
}

/* The end of a registration (ServiceRegisterDone): the answer is queued
 * when libmicrohttpd hands the resumed connection back to on_request. */
static void on_registered(int r, const ServiceVm *vm, const ServiceError *err, void *userdata) {
        ApiRequest *req = userdata;

        if (r < 0) {
                ServiceError e = *err;
                (void) reply_service_error(req, r, &e);
        } else {
                snprintf(req->header_value, sizeof req->header_value, "/v1/vms/%s", vm->id.str);
                (void) reply_json(req, 201, json_io_vm(vm));
        }
        req->waiting = false;
        req->resumed = true;
        MHD_resume_connection(req->conn);
        (void) eventfd_write(req->api->wake_fd, 1);
}

static int h_vms_create(ApiRequest *req) {
        static const char *const keys[] = { "uuid", "qmp", "class", "spec", "incoming", NULL };
        ServiceRegister reg = {};
        ServiceError err = {};
        struct json_object *spec, *incoming;
        const char *qmp;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_vm_id(req, req->json, "uuid", true, &reg.id, NULL))
                return 0;
        if (!get_string(req, req->json, "qmp", "qmp", SERVICE_PATH_MAX - 1, &qmp))
                return 0;
        if (!qmp || qmp[0] != '/') {
                reply_error(req, 400, "qmp", "qmp must be the absolute path of the VM's QMP socket");
                return 0;
        }
        strcpy(reg.qmp_path, qmp); /* length checked by get_string() */
        if (!get_class(req, req->json, &reg.class_name))
                return 0;
        if (json_object_object_get_ex(req->json, "spec", &spec)) {
                if (!parse_spec(req, spec, &reg.spec))
                        return 0;
                reg.has_spec = true;
        }
        if (json_object_object_get_ex(req->json, "incoming", &incoming)) {
                if (!json_object_is_type(incoming, json_type_boolean))
                        return reply_error(req, 400, "incoming", "incoming must be true or false");
                reg.incoming = json_object_get_boolean(incoming);
        }

        /* The service answers once QEMU has (on_registered); meanwhile this
         * connection is suspended and the loop serves everyone else. */
        r = req->api->ops->vm_register(req->api->ops_ctx, &reg, on_registered, req, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        req->waiting = true;
        MHD_suspend_connection(req->conn);
        return 0;
}

static int h_vm_get(ApiRequest *req) {
        ServiceVm vm = {};
        ServiceError err = {};
        int r;

        r = req->api->ops->vm_get(req->api->ops_ctx, &req->id, &vm, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_vm(&vm));
}

static int h_vm_delete(ApiRequest *req) {
        ServiceError err = {};
        int r;

        r = req->api->ops->vm_unregister(req->api->ops_ctx, &req->id, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 204, NULL, NULL);
        return 0;
}

static int h_credits_get(ApiRequest *req) {
        ServiceCredits c = {};
        ServiceError err = {};
        int r;

        r = req->api->ops->credits_get(req->api->ops_ctx, &req->id, &c, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_credits(&c));
}

static int h_credits_history(ApiRequest *req) {
        static const char *const states[] = { "baseline", "bursting", "throttled" };
        ServiceHistoryPoint *pts = NULL;
        ServiceError err = {};
        struct json_object *o, *arr;
        size_t n = 0;
        int r;

        r = req->api->ops->credits_history(req->api->ops_ctx, &req->id, &pts, &n, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        o = json_object_new_object();
        arr = json_object_new_array();
        json_object_object_add(o, "uuid", json_object_new_string(req->id.str));
        for (size_t i = 0; i < n; i++) {
                struct json_object *p = json_object_new_object();
                json_object_object_add(p, "time_usec", json_object_new_uint64(pts[i].time_unix_usec));
                json_object_object_add(p, "available_usec", json_object_new_int64(pts[i].available_usec));
                json_object_object_add(p, "usage_usec", json_object_new_uint64(pts[i].usage_usec));
                json_object_object_add(p, "state",
                                       json_object_new_string(pts[i].state < 3 ? states[pts[i].state] : "baseline"));
                json_object_array_add(arr, p);
        }
        json_object_object_add(o, "points", arr);
        free(pts);
        return reply_json(req, 200, o);
}

static int h_credits_put(ApiRequest *req) {
        static const char *const keys[] = { "class", "baseline", "cap_usec", "launch_usec", "mode", NULL };
        ServiceSpecChange ch = {};
        ServiceCredits c = {};
        ServiceError err = {};
        bool present;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_class(req, req->json, &ch.class_name))
                return 0;
        if (ch.class_name)
                ch.set |= SPEC_SET_CLASS;
        if (!get_baseline(req, req->json, "baseline", "baseline", &present, &ch.baseline_ppm))
                return 0;
        if (present)
                ch.set |= SPEC_SET_BASELINE;
        if (!get_int(req, req->json, "cap_usec", "cap_usec", 0, CREDIT_AMOUNT_MAX, &present, &ch.cap_usec))
                return 0;
        if (present)
                ch.set |= SPEC_SET_CAP;
        if (!get_int(req, req->json, "launch_usec", "launch_usec", 0, CREDIT_AMOUNT_MAX, &present,
                     &ch.launch_usec))
                return 0;
        if (present)
                ch.set |= SPEC_SET_LAUNCH;
        if (!get_mode(req, req->json, "mode", "mode", &present, &ch.mode))
                return 0;
        if (present)
                ch.set |= SPEC_SET_MODE;
        if (ch.set == 0)
                return reply_error(req, 400, NULL,
                                   "nothing to change: give class, baseline, cap_usec, launch_usec or mode");

        r = req->api->ops->credits_set_spec(req->api->ops_ctx, &req->id, &ch, &c, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_credits(&c));
}

static int h_credits_inject(ApiRequest *req) {
        static const char *const keys[] = { "amount_usec", NULL };
        ServiceCredits c = {};
        ServiceError err = {};
        bool present;
        int64_t amount = 0;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_int(req, req->json, "amount_usec", "amount_usec", -CREDIT_AMOUNT_MAX, CREDIT_AMOUNT_MAX, &present,
                     &amount))
                return 0;
        if (!present || amount == 0)
                return reply_error(req, 400, "amount_usec",
                                   "amount_usec is required and not 0 (negative takes credits)");

        r = req->api->ops->credits_inject(req->api->ops_ctx, &req->id, amount, &c, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_credits(&c));
}

static int h_credits_transfer(ApiRequest *req) {
        static const char *const keys[] = { "from", "to", "amount_usec", NULL };
        ServiceError err = {};
        struct json_object *o;
        VmId from, to;
        bool present, ok;
        int64_t amount = 0;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_vm_id(req, req->json, "from", true, &from, NULL) ||
            !get_vm_id(req, req->json, "to", true, &to, NULL))
                return 0;
        if (strcmp(from.str, to.str) == 0)
                return reply_error(req, 400, "to", "from and to are the same VM");
        if (!get_int(req, req->json, "amount_usec", "amount_usec", 1, CREDIT_AMOUNT_MAX, &present, &amount))
                return 0;
        if (!present)
                return reply_error(req, 400, "amount_usec", "amount_usec is required");

        r = req->api->ops->credits_transfer(req->api->ops_ctx, &from, &to, amount, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        ok = json_object_object_add(o, "from", json_object_new_string(from.str)) == 0;
        ok = ok && json_object_object_add(o, "to", json_object_new_string(to.str)) == 0;
        ok = ok && json_object_object_add(o, "amount_usec", json_object_new_int64(amount)) == 0;
        if (!ok) {
                json_object_put(o);
                return -ENOMEM;
        }
        return reply_json(req, 200, o);
}

static int h_events(ApiRequest *req) {
        ServiceEvent *events = NULL;
        struct json_object *o, *a;
        ServiceError err = {};
        const char *s;
        int64_t since = 0, next;
        uint64_t limit = EVENTS_LIMIT_DEFAULT;
        size_t n = 0;
        int r;

        s = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "since");
        if (s && (parse_i64(s, &since) < 0 || since < 0))
                return reply_error(req, 400, "since", "since must be an event sequence number (>= 0)");
        s = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
        if (s && (parse_u64(s, &limit) < 0 || limit < 1 || limit > EVENTS_LIMIT_MAX))
                return reply_error(req, 400, "limit", "limit must be in 1..%u", EVENTS_LIMIT_MAX);

        r = req->api->ops->events(req->api->ops_ctx, since, (size_t) limit, &events, &n, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        next = since;
        o = json_object_new_object();
        a = json_object_new_array();
        if (!o || !a || json_object_object_add(o, "events", a) < 0) {
                json_object_put(a);
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *e = json_io_event(&events[i]);

                if (!e || json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        r = -ENOMEM;
                        goto finish;
                }
                next = MAX(next, events[i].seq);
        }
        /* Clients poll with ?since=next. */
        if (json_object_object_add(o, "next", json_object_new_int64(next)) < 0) {
                r = -ENOMEM;
                goto finish;
        }
        r = reply_json(req, 200, TAKE_PTR(o));
finish:
        json_object_put(o);
        service_events_free(events, n);
        return r;
}

/* The service's values and this layer's counters, rendered here. */
static int h_metrics(ApiRequest *req) {
        ServiceMetrics m = { 0 };
        ServiceError err = {};
        char *text = NULL;
        ApiStats as;
        int r;

        r = req->api->ops->metrics(req->api->ops_ctx, &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        api_get_stats(req->api, &as);
        r = api_metrics_text(&m, &as, &text);
        service_metrics_done(&m);
        if (r < 0)
                return r;
        reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
        return 0;
}

static int h_memory_get(ApiRequest *req) {
        ServiceError err = {};
        ServiceMemory m;
        int r;

        r = req->api->ops->memory_get(req->api->ops_ctx, &req->id, &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_memory(&m));
}

/* A dmem size: bytes, or "max" (no limit) where `max_ok`. */
static bool get_dmem_size(ApiRequest *req, struct json_object *o, const char *key, const char *field, bool max_ok,
                          uint64_t dflt, uint64_t *ret) {
        struct json_object *v;
        int64_t x;
        bool present;

        *ret = dflt;
        if (max_ok && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)) {
                if (strcmp(json_object_get_string(v), "max") != 0) {
                        reply_error(req, 400, field, "%s must be a size in bytes or \"max\"", field);
                        return false;
                }
                *ret = UINT64_MAX;
                return true;
        }
        if (!get_int(req, o, key, field, 0, INT64_MAX, &present, &x))
                return false;
        if (present)
                *ret = (uint64_t) x;
        return true;
}

/* "gpu": {"pci", "max", "soft", "low", "min"} or null (no GPU). */
static bool parse_gpu(ApiRequest *req, struct json_object *g, ServiceMemorySet *m) {
        static const char *const keys[] = { "pci", "max", "soft", "low", "min", NULL };
        const char *pci = NULL;

        m->set |= SERVICE_MEM_GPU;
        if (json_object_is_type(g, json_type_null))
                return true; /* gpu_pci "": removed */
        if (!json_object_is_type(g, json_type_object)) {
                reply_error(req, 400, "gpu", "gpu must be an object or null");
                return false;
        }
        if (!check_keys(req, g, keys, "gpu."))
                return false;
        if (!get_string(req, g, "pci", "gpu.pci", SERVICE_PCI_MAX - 1, &pci))
                return false;
        if (!pci || !is_pci_address(pci)) {
                reply_error(req, 400, "gpu.pci", "gpu.pci must be the GPU's host PCI address, e.g. \"0000:03:00.0\"");
                return false;
        }
        snprintf(m->gpu_pci, sizeof(m->gpu_pci), "%s", pci);
        if (!get_dmem_size(req, g, "max", "gpu.max", true, UINT64_MAX, &m->dmem_max) ||
            !get_dmem_size(req, g, "soft", "gpu.soft", true, UINT64_MAX, &m->dmem_soft) ||
            !get_dmem_size(req, g, "low", "gpu.low", false, 0, &m->dmem_low) ||
            !get_dmem_size(req, g, "min", "gpu.min", false, 0, &m->dmem_min))
                return false;
        if (!(m->dmem_min <= m->dmem_low && m->dmem_low <= m->dmem_soft &&
              (m->dmem_soft <= m->dmem_max || m->dmem_soft == UINT64_MAX))) {
                reply_error(req, 400, "gpu", "gpu limits must be ordered: min <= low <= soft <= max");
                return false;
        }
        return true;
}

static int h_memory_put(ApiRequest *req) {
        static const char *const keys[] = { "priority", "gpu", NULL };
        ServiceMemorySet m = {};
        ServiceError err = {};
        struct json_object *g;
        ServiceMemory report;
        bool present;
        int64_t prio = 0;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_int(req, req->json, "priority", "priority", 0, UINT32_MAX, &present, &prio))
                return 0;
        if (present) {
                m.set |= SERVICE_MEM_PRIORITY;
                m.priority = (uint32_t) prio;
        }
        if (json_object_object_get_ex(req->json, "gpu", &g) && !parse_gpu(req, g, &m))
                return 0;
        if (!m.set)
                return reply_error(req, 400, NULL,
                                   "nothing to change: give priority (0..4294967295, lower is reclaimed first "
                                   "under host pressure) and/or gpu");
        r = req->api->ops->memory_set(req->api->ops_ctx, &req->id, &m, &report, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_memory(&report));
}

/* The libvirt hook (vmmgr-libvirt-hook at started/stopped/release):
 * {"name": ..., "operation": ..., "sub_operation": ...}; 202 at once. */
static int h_libvirt_notify(ApiRequest *req) {
        static const char *const keys[] = { "name", "operation", "sub_operation", NULL };
        static const char *const operations[] = { "started", "stopped", "release", NULL };
        const char *name = NULL, *op = NULL, *sub = NULL;
        ServiceError err = {};
        struct json_object *o;
        bool known = false;
        int r;

        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_string(req, req->json, "name", "name", 255, &name) ||
            !get_string(req, req->json, "operation", "operation", 31, &op) ||
            !get_string(req, req->json, "sub_operation", "sub_operation", 31, &sub))
                return 0;
        for (size_t i = 0; op && operations[i]; i++)
                known = known || strcmp(op, operations[i]) == 0;
        if (!known)
                return reply_error(req, 400, "operation", "operation must be started, stopped or release");
        if (!req->api->ops->libvirt_notify)
                return reply_error(req, 404, NULL, "vmmgrd does not talk to libvirt");
        r = req->api->ops->libvirt_notify(req->api->ops_ctx, &req->id, name ? name : "", op, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        o = json_object_new_object();
        if (o && (json_object_object_add(o, "accepted", json_object_new_boolean(true)) < 0)) {
                json_object_put(o);
                o = NULL;
        }
        return reply_json(req, 202, o);
}

/* ---- live migration (docs/migration.md) ---- */

static bool migration_ops(ApiRequest *req) {
        const ServiceOps *ops = req->api->ops;

        if (ops->migration_get && ops->migration_start && ops->migration_cancel && ops->migration_record &&
            ops->migration_reply)
                return true;
        reply_error(req, 404, NULL, "this service has no live migration");
        return false;
}

static int h_migration_get(ApiRequest *req) {
        ServiceMigration m = {};
        ServiceError err = {};
        int r;

        if (!migration_ops(req))
                return 0;
        r = req->api->ops->migration_get(req->api->ops_ctx, &req->id, &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_migration(&m));
}

/* {"destination": "https://HOST:PORT"}; without it (or "") the tool
 * carries the record (export/import). */
static int h_migration_start(ApiRequest *req) {
        static const char *const keys[] = { "destination", NULL };
        ServiceMigration m = {};
        ServiceError err = {};
        const char *dest = NULL;
        int r;

        if (!migration_ops(req))
                return 0;
        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_string(req, req->json, "destination", "destination", MIG_HOST_MAX - 1, &dest))
                return 0;
        r = req->api->ops->migration_start(req->api->ops_ctx, &req->id, dest ? dest : "", &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_migration(&m));
}

static int h_migration_cancel(ApiRequest *req) {
        ServiceMigration m = {};
        ServiceError err = {};
        int r;

        if (!migration_ops(req))
                return 0;
        r = req->api->ops->migration_cancel(req->api->ops_ctx, &req->id, &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_migration(&m));
}

/* {"reply": "ack"|"nack", "epoch": N}: the destination's answer, carried
 * by the tool (export/import). */
static int h_migration_reply(ApiRequest *req) {
        static const char *const keys[] = { "reply", "epoch", NULL };
        ServiceMigration m = {};
        ServiceError err = {};
        const char *reply = NULL;
        bool present;
        int64_t epoch = 0;
        int r;

        if (!migration_ops(req))
                return 0;
        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_string(req, req->json, "reply", "reply", 15, &reply) ||
            !get_int(req, req->json, "epoch", "epoch", 1, INT64_MAX, &present, &epoch))
                return 0;
        if (!reply || (strcmp(reply, "ack") != 0 && strcmp(reply, "nack") != 0))
                return reply_error(req, 400, "reply", "reply must be \"ack\" or \"nack\"");
        if (!present)
                return reply_error(req, 400, "epoch", "epoch is required");
        r = req->api->ops->migration_reply(req->api->ops_ctx, &req->id, strcmp(reply, "ack") == 0,
                                           (uint64_t) epoch, &m, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, 200, json_io_migration(&m));
}

/* A record, from the source's vmmgrd or `vmmgrctl migration import`:
 * 200 {"reply": "ack"|"nack"}, or 202 {"reply": "held"} (send it again). */
static int h_migration_records(ApiRequest *req) {
        ServiceMigrationAnswer a = {};
        ServiceError err = {};
        MigRecordError rerr = {};
        MigRecord rec;
        int r;

        if (!migration_ops(req))
                return 0;
        if (mig_record_from_json(req->json, &rec, &rerr) < 0)
                return reply_error(req, 400, rerr.field, "%s", rerr.message);
        r = req->api->ops->migration_record(req->api->ops_ctx, &rec, &a, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        return reply_json(req, strcmp(a.reply, "held") == 0 ? 202 : 200, json_io_migration_answer(&a));
}

/* ---- host live update (docs/live-update.md) ---- */

static bool liveupdate_ops(ApiRequest *req) {
        const ServiceOps *ops = req->api->ops;

        if (ops->liveupdate_get && ops->liveupdate_prepare && ops->liveupdate_abort)
                return true;
        reply_error(req, 404, NULL, "this service has no live update");
        return false;
}

static int h_liveupdate_get(ApiRequest *req) {
        ServiceError err = {};
        char *json = NULL;
        int r;

        if (!liveupdate_ops(req))
                return 0;
        r = req->api->ops->liveupdate_get(req->api->ops_ctx, &json, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "application/json", json);
        return 0;
}

/* {"deadline_sec": N} (optional): how long a restore waits for the VMs. */
static int h_liveupdate_prepare(ApiRequest *req) {
        static const char *const keys[] = { "deadline_sec", NULL };
        ServiceError err = {};
        char *json = NULL;
        bool present;
        int64_t deadline = 0;
        int r;

        if (!liveupdate_ops(req))
                return 0;
        if (!check_keys(req, req->json, keys, ""))
                return 0;
        if (!get_int(req, req->json, "deadline_sec", "deadline_sec", 1, 7 * 24 * 3600, &present, &deadline))
                return 0;
        r = req->api->ops->liveupdate_prepare(req->api->ops_ctx, (uint32_t) deadline, &json, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "application/json", json);
        return 0;
}

static int h_liveupdate_abort(ApiRequest *req) {
        ServiceError err = {};
        char *json = NULL;
        int r;

        if (!liveupdate_ops(req))
                return 0;
        r = req->api->ops->liveupdate_abort(req->api->ops_ctx, &json, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "application/json", json);
        return 0;
}

static const char *const events_query[] = { "since", "limit", NULL };

static const ApiRoute routes[] = {
        { "GET", "/v1/host", false, NULL, h_host },
        { "GET", "/v1/vms", false, NULL, h_vms_list },
        { "POST", "/v1/vms", true, NULL, h_vms_create },
        { "GET", "/v1/vms/{uuid}", false, NULL, h_vm_get },
        { "DELETE", "/v1/vms/{uuid}", false, NULL, h_vm_delete },
        { "GET", "/v1/vms/{uuid}/credits", false, NULL, h_credits_get },
        { "PUT", "/v1/vms/{uuid}/credits", true, NULL, h_credits_put },
        { "POST", "/v1/vms/{uuid}/credits/inject", true, NULL, h_credits_inject },
        { "GET", "/v1/vms/{uuid}/credits/history", false, NULL, h_credits_history },
        { "POST", "/v1/credits/transfer", true, NULL, h_credits_transfer },
        { "GET", "/v1/vms/{uuid}/memory", false, NULL, h_memory_get },
        { "PUT", "/v1/vms/{uuid}/memory", true, NULL, h_memory_put },
        { "GET", "/v1/events", false, events_query, h_events },
        { "GET", "/metrics", false, NULL, h_metrics },
        { "POST", "/v1/libvirt/domains/{uuid}/notify", true, NULL, h_libvirt_notify },
        { "GET", "/v1/vms/{uuid}/migration", false, NULL, h_migration_get },
        { "POST", "/v1/vms/{uuid}/migration", true, NULL, h_migration_start },
        { "DELETE", "/v1/vms/{uuid}/migration", false, NULL, h_migration_cancel },
        { "POST", "/v1/vms/{uuid}/migration/reply", true, NULL, h_migration_reply },
        { "POST", "/v1/migration/records", true, NULL, h_migration_records },
        { "GET", "/v1/live-update", false, NULL, h_liveupdate_get },
        { "POST", "/v1/live-update/prepare", true, NULL, h_liveupdate_prepare },
        { "POST", "/v1/live-update/abort", false, NULL, h_liveupdate_abort },
};

size_t api_routes(const ApiRoute **ret) {
        *ret = routes;
        return ARRAY_SIZE(routes);
}

/* Query parameters are part of the route's data; anything else is an
 * unknown field. */
static bool query_param_known(const ApiRoute *route, const char *key) {
        for (const char *const *q = route->query; q && *q; q++)
                if (strcmp(*q, key) == 0)
                        return true;
        return false;
}

/* ---- routing ------------------------------------------------------------------- */

/* Whole-path match; "{uuid}" takes one non-empty segment into `param`. */
static bool pattern_match(const char *pattern, const char *path, char *param, size_t size) {
        while (*pattern) {
                if (strncmp(pattern, "{uuid}", 6) == 0) {
                        size_t n = strcspn(path, "/");

                        if (n == 0)
                                return false;
                        snprintf(param, size, "%.*s", (int) MIN(n, size - 1), path);
                        pattern += 6;
                        path += n;
                        continue;
                }
                if (*pattern++ != *path++)
                        return false;
        }
        return *path == '\0';
}

typedef struct QueryCheck {
        const ApiRoute *route;
        char unknown[65];
} QueryCheck;

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        QueryCheck *q = cls;

        (void) kind;
        (void) value;
        if (!query_param_known(q->route, key)) {
                snprintf(q->unknown, sizeof q->unknown, "%s", key);
                return MHD_NO;
        }
        return MHD_YES;
}

/* Finds the route; on failure the error reply is set and false returned. */
bool route_request(ApiRequest *req, const char *url, const char *method) {
        char param[VM_ID_STRLEN + 2] = "", allow[64] = "";
        QueryCheck q;

        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                char p[sizeof param];

                if (!pattern_match(routes[i].pattern, url, p, sizeof p))
                        continue;
                if (strcmp(routes[i].method, method) == 0) {
                        req->route = &routes[i];
                        memcpy(param, p, sizeof param);
                        break;
                }
                if (!strstr(allow, routes[i].method))
                        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                                 routes[i].method);
        }
        if (!req->route && allow[0]) {
                reply_error(req, 405, NULL, "method %.16s not allowed here (allowed: %s)", method, allow);
                snprintf(req->header_value, sizeof req->header_value, "%s", allow);
                return false;
        }
        if (!req->route) {
                reply_error(req, 404, NULL, "no such resource: %.128s", url);
                return false;
        }
        if (strstr(req->route->pattern, "{uuid}") && vm_id_parse(param, &req->id) < 0) {
                reply_error(req, 400, "uuid", "not a VM UUID in the path");
                return false;
        }
        q = (QueryCheck) { .route = req->route };
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_iter, &q);
        if (q.unknown[0]) {
                reply_error(req, 400, q.unknown, "unknown query parameter \"%s\"", q.unknown);
                return false;
        }
        return true;
}

