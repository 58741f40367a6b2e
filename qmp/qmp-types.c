/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp/qmp-types.c - typed views of QMP replies: strict parsers from json-c
 * objects into the plain structs of qmp.h, and the blocking helpers.
 *
 * Strictness: a member of the wrong JSON type, or a required one missing,
 * fails the whole parse with -EBADMSG; members this library does not use
 * are ignored (QEMU adds members over time).
 */
#include <errno.h>
#include <string.h>

#include "common/macros.h"
#include "qmp/qmp-internal.h"

static const char *const migration_status_names[_QMP_MIGRATION_STATUS_MAX] = {
        [QMP_MIGRATION_STATUS_UNKNOWN] = "unknown",
        [QMP_MIGRATION_STATUS_NONE] = "none",
        [QMP_MIGRATION_STATUS_SETUP] = "setup",
        [QMP_MIGRATION_STATUS_CANCELLING] = "cancelling",
        [QMP_MIGRATION_STATUS_CANCELLED] = "cancelled",
        [QMP_MIGRATION_STATUS_ACTIVE] = "active",
        [QMP_MIGRATION_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
        [QMP_MIGRATION_STATUS_POSTCOPY_PAUSED] = "postcopy-paused",
        [QMP_MIGRATION_STATUS_POSTCOPY_RECOVER] = "postcopy-recover",
        [QMP_MIGRATION_STATUS_COMPLETED] = "completed",
        [QMP_MIGRATION_STATUS_FAILED] = "failed",
        [QMP_MIGRATION_STATUS_COLO] = "colo",
        [QMP_MIGRATION_STATUS_PRE_SWITCHOVER] = "pre-switchover",
        [QMP_MIGRATION_STATUS_DEVICE] = "device",
        [QMP_MIGRATION_STATUS_WAIT_UNPLUG] = "wait-unplug",
};

QmpMigrationStatus qmp_migration_status_from_string(const char *s) {
        if (!s)
                return QMP_MIGRATION_STATUS_UNKNOWN;
        /* "unknown" itself is not a QEMU state, so start after it. */
        for (int i = QMP_MIGRATION_STATUS_UNKNOWN + 1; i < _QMP_MIGRATION_STATUS_MAX; i++)
                if (strcmp(s, migration_status_names[i]) == 0)
                        return (QmpMigrationStatus) i;
        return QMP_MIGRATION_STATUS_UNKNOWN;
}

const char *qmp_migration_status_to_string(QmpMigrationStatus s) {
        if ((int) s < 0 || s >= _QMP_MIGRATION_STATUS_MAX)
                return "unknown";
        return migration_status_names[s];
}

/* Copies a short identifier into a fixed buffer; longer is malformed. */
static int copy_ident(char *dst, size_t size, const char *src) {
        size_t n = strlen(src);

        if (n >= size)
                return -EBADMSG;
        memcpy(dst, src, n + 1);
        return 0;
}

/* ---- query-status ------------------------------------------------------- */

int qmp_status_from_json(struct json_object *ret, void *out) {
        QmpStatus st = {};
        const char *status;
        int r;

        r = qmp_json_get_bool(ret, "running", true, &st.running);
        if (r < 0)
                return r;
        r = qmp_json_get_string(ret, "status", true, &status);
        if (r < 0)
                return r;
        r = copy_ident(st.status, sizeof(st.status), status);
        if (r < 0)
                return r;
        *(QmpStatus *) out = st;
        return 0;
}

/* ---- query-uuid ---------------------------------------------------------- */

int qmp_uuid_from_json(struct json_object *ret, void *out) {
        const char *uuid;
        char buf[QMP_UUID_STRLEN + 1];
        int r;

        r = qmp_json_get_string(ret, "UUID", true, &uuid);
        if (r < 0)
                return r;
        if (strlen(uuid) != QMP_UUID_STRLEN)
                return -EBADMSG;
        for (size_t i = 0; i < QMP_UUID_STRLEN; i++) {
                char c = uuid[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return -EBADMSG;
                buf[i] = (char) (c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
        }
        buf[QMP_UUID_STRLEN] = '\0';
        memcpy(out, buf, sizeof(buf));
        return 0;
}

/* ---- query-cpus-fast ---------------------------------------------------- */

void qmp_cpus_free(QmpCpu *cpus, size_t n) {
        if (!cpus)
                return;
        for (size_t i = 0; i < n; i++) {
                free(cpus[i].qom_path);
                free(cpus[i].target);
        }
        free(cpus);
}

static int cpu_from_json(struct json_object *o, QmpCpu *c) {
        struct json_object *props = NULL;
        const char *qom_path, *target = "";
        int r;

        *c = (QmpCpu) {
                .socket_id = -1, .die_id = -1, .cluster_id = -1,
                .core_id = -1, .thread_id_in_core = -1, .node_id = -1,
        };
        if ((r = qmp_json_get_int64(o, "cpu-index", true, &c->cpu_index)) < 0 ||
            (r = qmp_json_get_int64(o, "thread-id", true, &c->thread_id)) < 0 ||
            (r = qmp_json_get_string(o, "qom-path", true, &qom_path)) < 0 ||
            (r = qmp_json_get_string(o, "target", false, &target)) < 0 ||
            (r = qmp_json_get_object(o, "props", false, &props)) < 0)
                return r;
        if (c->cpu_index < 0 || c->thread_id <= 0)
                return -EBADMSG;
        if (props &&
            ((r = qmp_json_get_int64(props, "socket-id", false, &c->socket_id)) < 0 ||
             (r = qmp_json_get_int64(props, "die-id", false, &c->die_id)) < 0 ||
             (r = qmp_json_get_int64(props, "cluster-id", false, &c->cluster_id)) < 0 ||
             (r = qmp_json_get_int64(props, "core-id", false, &c->core_id)) < 0 ||
             (r = qmp_json_get_int64(props, "thread-id", false, &c->thread_id_in_core)) < 0 ||
             (r = qmp_json_get_int64(props, "node-id", false, &c->node_id)) < 0))
                return r;
        c->qom_path = strdup(qom_path);
        c->target = strdup(target);
        if (!c->qom_path || !c->target) {
                free(c->qom_path);
                free(c->target);
                return -ENOMEM;
        }
        return 0;
}

int qmp_cpus_from_json(struct json_object *ret, void *out) {
        QmpCpu *cpus;
        size_t n;

        if (!json_object_is_type(ret, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(ret);
        cpus = calloc(MAX(n, (size_t) 1), sizeof(QmpCpu));
        if (!cpus)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = cpu_from_json(json_object_array_get_idx(ret, i), &cpus[i]);

                if (r < 0) {
                        qmp_cpus_free(cpus, i);
                        return r;
                }
        }
        *(QmpCpuList *) out = (QmpCpuList) { cpus, n };
        return 0;
}

/* ---- query-iothreads ---------------------------------------------------- */

void qmp_iothreads_free(QmpIothread *iothreads, size_t n) {
        if (!iothreads)
                return;
        for (size_t i = 0; i < n; i++)
                free(iothreads[i].id);
        free(iothreads);
}

int qmp_iothreads_from_json(struct json_object *ret, void *out) {
        QmpIothread *v;
        size_t n;

        if (!json_object_is_type(ret, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(ret);
        v = calloc(MAX(n, (size_t) 1), sizeof(QmpIothread));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(ret, i);
                const char *id;
                int r;

                if ((r = qmp_json_get_string(o, "id", true, &id)) < 0 ||
                    (r = qmp_json_get_int64(o, "thread-id", true, &v[i].thread_id)) < 0 ||
                    (v[i].thread_id <= 0 && (r = -EBADMSG)) ||
                    (!(v[i].id = strdup(id)) && (r = -ENOMEM))) {
                        qmp_iothreads_free(v, i);
                        return r;
                }
        }
        *(QmpIothreadList *) out = (QmpIothreadList) { v, n };
        return 0;
}

/* ---- query-memory-size-summary, query-balloon --------------------------- */

int qmp_memory_summary_from_json(struct json_object *ret, void *out) {
        QmpMemorySummary m = {};
        int r;

        r = qmp_json_get_uint64(ret, "base-memory", true, &m.base_memory_bytes);
        if (r < 0)
                return r;
        r = qmp_json_get_uint64(ret, "plugged-memory", false, &m.plugged_memory_bytes);
        if (r < 0)
                return r;
        m.has_plugged_memory = r > 0;
        *(QmpMemorySummary *) out = m;
        return 0;
}

int qmp_balloon_from_json(struct json_object *ret, void *out) {
        uint64_t actual;
        int r;

        r = qmp_json_get_uint64(ret, "actual", true, &actual);
        if (r < 0)
                return r;
        *(uint64_t *) out = actual;
        return 0;
}

/* ---- query-pci ---------------------------------------------------------- */

void qmp_pci_devices_free(QmpPciDevice *devices, size_t n) {
        if (!devices)
                return;
        for (size_t i = 0; i < n; i++) {
                free(devices[i].class_desc);
                free(devices[i].qdev_id);
        }
        free(devices);
}

typedef struct PciWalk {
        QmpPciDevice *v;
        size_t n, alloc;
} PciWalk;

static int pci_u16(struct json_object *o, const char *key, bool required, uint16_t *ret) {
        int64_t v = 0;
        int r = qmp_json_get_int64(o, key, required, &v);

        if (r <= 0)
                return r;
        if (v < 0 || v > UINT16_MAX)
                return -EBADMSG;
        *ret = (uint16_t) v;
        return 1;
}

static int pci_walk_devices(PciWalk *w, struct json_object *devices, unsigned depth);

static int pci_device_from_json(PciWalk *w, struct json_object *o, unsigned depth) {
        struct json_object *class_info, *id, *bridge = NULL;
        const char *desc = "", *qdev_id = "";
        QmpPciDevice d = { .secondary_bus = -1 };
        int r;

        if ((r = qmp_json_get_int64(o, "bus", true, &d.bus)) < 0 ||
            (r = qmp_json_get_int64(o, "slot", true, &d.slot)) < 0 ||
            (r = qmp_json_get_int64(o, "function", true, &d.function)) < 0 ||
            (r = qmp_json_get_object(o, "class_info", true, &class_info)) < 0 ||
            (r = pci_u16(class_info, "class", true, &d.class_code)) < 0 ||
            (r = qmp_json_get_string(class_info, "desc", false, &desc)) < 0 ||
            (r = qmp_json_get_object(o, "id", true, &id)) < 0 ||
            (r = pci_u16(id, "vendor", true, &d.vendor_id)) < 0 ||
            (r = pci_u16(id, "device", true, &d.device_id)) < 0 ||
            (r = qmp_json_get_string(o, "qdev_id", true, &qdev_id)) < 0 ||
            (r = qmp_json_get_object(o, "pci_bridge", false, &bridge)) < 0)
                return r;
        if (d.bus < 0 || d.bus > 255 || d.slot < 0 || d.slot > 31 || d.function < 0 || d.function > 7)
                return -EBADMSG;

        if (bridge) {
                struct json_object *bus;

                d.is_bridge = true;
                if ((r = qmp_json_get_object(bridge, "bus", true, &bus)) < 0 ||
                    (r = qmp_json_get_int64(bus, "secondary", true, &d.secondary_bus)) < 0)
                        return r;
        }

        if (w->n == w->alloc) {
                size_t a = MAX(w->alloc * 2, (size_t) 16);
                QmpPciDevice *nv = reallocarray(w->v, a, sizeof(QmpPciDevice));

                if (!nv)
                        return -ENOMEM;
                w->v = nv;
                w->alloc = a;
        }
        d.class_desc = strdup(desc);
        d.qdev_id = strdup(qdev_id);
        if (!d.class_desc || !d.qdev_id) {
                free(d.class_desc);
                free(d.qdev_id);
                return -ENOMEM;
        }
        w->v[w->n++] = d;

        if (bridge) {
                struct json_object *devices = NULL;

                r = qmp_json_get_array(bridge, "devices", false, &devices);
                if (r < 0)
                        return r;
                if (devices) {
                        r = pci_walk_devices(w, devices, depth + 1);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int pci_walk_devices(PciWalk *w, struct json_object *devices, unsigned depth) {
        /* The tokener's depth limit already bounds recursion; this is a
         * second guard that does not depend on how the object was built. */
        if (depth > QMP_MAX_DEPTH)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(devices); i++) {
                int r = pci_device_from_json(w, json_object_array_get_idx(devices, i), depth);

                if (r < 0)
                        return r;
        }
        return 0;
}

int qmp_pci_from_json(struct json_object *ret, void *out) {
        PciWalk w = {};

        if (!json_object_is_type(ret, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(ret); i++) {
                struct json_object *bus = json_object_array_get_idx(ret, i), *devices;
                int64_t busno;
                int r;

                if ((r = qmp_json_get_int64(bus, "bus", true, &busno)) < 0 ||
                    (r = qmp_json_get_array(bus, "devices", true, &devices)) < 0 ||
                    (r = pci_walk_devices(&w, devices, 0)) < 0) {
                        qmp_pci_devices_free(w.v, w.n);
                        return r;
                }
        }
        if (!w.v) {
                w.v = calloc(1, sizeof(QmpPciDevice));
                if (!w.v)
                        return -ENOMEM;
        }
        *(QmpPciList *) out = (QmpPciList) { w.v, w.n };
        return 0;
}

/* ---- query-migrate ------------------------------------------------------ */

int qmp_migrate_from_json(struct json_object *ret, void *out) {
        QmpMigrateInfo m = {
                .status = QMP_MIGRATION_STATUS_NONE,
                .total_time_ms = -1,
                .expected_downtime_ms = -1,
                .downtime_ms = -1,
        };
        struct json_object *ram = NULL;
        const char *status = NULL;
        int r;

        if ((r = qmp_json_get_string(ret, "status", false, &status)) < 0 ||
            (r = qmp_json_get_int64(ret, "total-time", false, &m.total_time_ms)) < 0 ||
            (r = qmp_json_get_int64(ret, "expected-downtime", false, &m.expected_downtime_ms)) < 0 ||
            (r = qmp_json_get_int64(ret, "downtime", false, &m.downtime_ms)) < 0 ||
            (r = qmp_json_get_object(ret, "ram", false, &ram)) < 0)
                return r;
        if (status) {
                m.status = qmp_migration_status_from_string(status);
                r = copy_ident(m.status_string, sizeof(m.status_string), status);
                if (r < 0)
                        return r;
        } else
                strcpy(m.status_string, "none");
        if (ram) {
                m.has_ram = true;
                if ((r = qmp_json_get_uint64(ram, "transferred", true, &m.ram_transferred_bytes)) < 0 ||
                    (r = qmp_json_get_uint64(ram, "remaining", true, &m.ram_remaining_bytes)) < 0 ||
                    (r = qmp_json_get_uint64(ram, "total", true, &m.ram_total_bytes)) < 0 ||
                    (r = qmp_json_get_uint64(ram, "dirty-pages-rate", false, &m.ram_dirty_pages_rate)) < 0 ||
                    (r = qmp_json_get_uint64(ram, "dirty-sync-count", false, &m.ram_dirty_sync_count)) < 0)
                        return r;
        }
        *(QmpMigrateInfo *) out = m;
        return 0;
}

/* ---- text-level parsers ------------------------------------------------- */

static int parse_text(const char *return_json, QmpParseFn fn, void *out) {
        struct json_object *o = NULL;
        int r;

        r = qmp_json_parse(return_json, &o);
        if (r < 0)
                return r;
        r = fn(o, out);
        json_object_put(o);
        return r;
}

int qmp_parse_status(const char *return_json, QmpStatus *ret) {
        return parse_text(return_json, qmp_status_from_json, ret);
}

int qmp_parse_cpus_fast(const char *return_json, QmpCpu **ret, size_t *ret_n) {
        QmpCpuList l;
        int r = parse_text(return_json, qmp_cpus_from_json, &l);

        if (r < 0)
                return r;
        *ret = l.cpus;
        *ret_n = l.n;
        return 0;
}

int qmp_parse_iothreads(const char *return_json, QmpIothread **ret, size_t *ret_n) {
        QmpIothreadList l;
        int r = parse_text(return_json, qmp_iothreads_from_json, &l);

        if (r < 0)
                return r;
        *ret = l.iothreads;
        *ret_n = l.n;
        return 0;
}

int qmp_parse_memory_size_summary(const char *return_json, QmpMemorySummary *ret) {
        return parse_text(return_json, qmp_memory_summary_from_json, ret);
}

int qmp_parse_balloon(const char *return_json, uint64_t *ret_actual_bytes) {
        return parse_text(return_json, qmp_balloon_from_json, ret_actual_bytes);
}

int qmp_parse_pci(const char *return_json, QmpPciDevice **ret, size_t *ret_n) {
        QmpPciList l;
        int r = parse_text(return_json, qmp_pci_from_json, &l);

        if (r < 0)
                return r;
        *ret = l.devices;
        *ret_n = l.n;
        return 0;
}

int qmp_parse_migrate(const char *return_json, QmpMigrateInfo *ret) {
        return parse_text(return_json, qmp_migrate_from_json, ret);
}

/* ---- blocking helpers --------------------------------------------------- */

int qmp_parse_uuid(const char *return_json, char ret[QMP_UUID_STRLEN + 1]) {
        return parse_text(return_json, qmp_uuid_from_json, ret);
}

int qmp_query_uuid(Qmp *q, int timeout_ms, char ret[QMP_UUID_STRLEN + 1], QmpError *ret_error) {
        return qmp_execute_sync_parse(q, "query-uuid", NULL, timeout_ms, qmp_uuid_from_json, ret, ret_error);
}

int qmp_query_status(Qmp *q, int timeout_ms, QmpStatus *ret, QmpError *ret_error) {
        return qmp_execute_sync_parse(q, "query-status", NULL, timeout_ms, qmp_status_from_json, ret,
                                      ret_error);
}

int qmp_query_cpus_fast(Qmp *q, int timeout_ms, QmpCpu **ret, size_t *ret_n, QmpError *ret_error) {
        QmpCpuList l;
        int r = qmp_execute_sync_parse(q, "query-cpus-fast", NULL, timeout_ms, qmp_cpus_from_json, &l,
                                       ret_error);

        if (r < 0)
                return r;
        *ret = l.cpus;
        *ret_n = l.n;
        return 0;
}

int qmp_query_iothreads(Qmp *q, int timeout_ms, QmpIothread **ret, size_t *ret_n, QmpError *ret_error) {
        QmpIothreadList l;
        int r = qmp_execute_sync_parse(q, "query-iothreads", NULL, timeout_ms, qmp_iothreads_from_json, &l,
                                       ret_error);

        if (r < 0)
                return r;
        *ret = l.iothreads;
        *ret_n = l.n;
        return 0;
}

int qmp_query_memory_size_summary(Qmp *q, int timeout_ms, QmpMemorySummary *ret, QmpError *ret_error) {
        return qmp_execute_sync_parse(q, "query-memory-size-summary", NULL, timeout_ms,
                                      qmp_memory_summary_from_json, ret, ret_error);
}

int qmp_query_balloon(Qmp *q, int timeout_ms, uint64_t *ret_actual_bytes, QmpError *ret_error) {
        return qmp_execute_sync_parse(q, "query-balloon", NULL, timeout_ms, qmp_balloon_from_json,
                                      ret_actual_bytes, ret_error);
}

int qmp_balloon(Qmp *q, uint64_t target_bytes, int timeout_ms, QmpError *ret_error) {
        struct json_object *args;
        int r;

        if (target_bytes == 0 || target_bytes > INT64_MAX)
                return -EINVAL;
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "value", json_object_new_int64((int64_t) target_bytes)) < 0) {
                json_object_put(args);
                return -ENOMEM;
        }
        r = qmp_execute_sync_parse(q, "balloon", args, timeout_ms, NULL, NULL, ret_error);
        json_object_put(args);
        return r;
}

/* Which ids under /machine/peripheral are vfio-pci devices: qom-list gives
 * [{"name": "hostdev0", "type": "child<vfio-pci>"}, ...]. */
static int mark_vfio(struct json_object *ret, void *out) {
        QmpPciList *l = out;

        if (!json_object_is_type(ret, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(ret); i++) {
                struct json_object *o = json_object_array_get_idx(ret, i);
                const char *name, *type;
                int r;

                if ((r = qmp_json_get_string(o, "name", true, &name)) < 0 ||
                    (r = qmp_json_get_string(o, "type", true, &type)) < 0)
                        return r;
                if (strcmp(type, "child<vfio-pci>") != 0)
                        continue;
                for (size_t j = 0; j < l->n; j++)
                        if (strcmp(l->devices[j].qdev_id, name) == 0)
                                l->devices[j].is_vfio = true;
        }
        return 0;
}

int qmp_parse_pci_mark_vfio(const char *qom_list_json, QmpPciDevice *devices, size_t n) {
        QmpPciList l = { .devices = devices, .n = n };

        return parse_text(qom_list_json, mark_vfio, &l);
}

int qmp_query_pci(Qmp *q, int timeout_ms, QmpPciDevice **ret, size_t *ret_n, QmpError *ret_error) {
        struct json_object *args;
        QmpError qom_error = {};
        QmpPciList l;
        int r;

        r = qmp_execute_sync_parse(q, "query-pci", NULL, timeout_ms, qmp_pci_from_json, &l, ret_error);
        if (r < 0)
                return r;
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "path", json_object_new_string("/machine/peripheral")) < 0) {
                json_object_put(args);
                qmp_pci_devices_free(l.devices, l.n);
                return -ENOMEM;
        }
        /* A QEMU without qom-list (or /machine/peripheral) still gets its
         * devices, just unmarked; other failures are failures. */
        r = qmp_execute_sync_parse(q, "qom-list", args, timeout_ms, mark_vfio, &l, &qom_error);
        json_object_put(args);
        qmp_error_done(&qom_error);
        if (r < 0 && r != -EREMOTEIO) {
                qmp_pci_devices_free(l.devices, l.n);
                return r;
        }
        *ret = l.devices;
        *ret_n = l.n;
        return 0;
}

int qmp_query_migrate(Qmp *q, int timeout_ms, QmpMigrateInfo *ret, QmpError *ret_error) {
        return qmp_execute_sync_parse(q, "query-migrate", NULL, timeout_ms, qmp_migrate_from_json, ret,
                                      ret_error);
}

int qmp_migrate_set_capabilities(Qmp *q, const QmpMigrationCapability *caps, size_t n, int timeout_ms,
                                 QmpError *ret_error) {
        struct json_object *args, *list;
        int r;

        if (n == 0 || !caps)
                return -EINVAL;
        args = json_object_new_object();
        list = json_object_new_array();
        if (!args || !list || json_object_object_add(args, "capabilities", list) < 0) {
                json_object_put(list);
                json_object_put(args);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *c;

                if (!caps[i].capability || !*caps[i].capability) {
                        json_object_put(args);
                        return -EINVAL;
                }
                c = json_object_new_object();
                if (!c || json_object_array_add(list, c) < 0) {
                        json_object_put(c);
                        json_object_put(args);
                        return -ENOMEM;
                }
                if (json_object_object_add(c, "capability", json_object_new_string(caps[i].capability)) < 0 ||
                    json_object_object_add(c, "state", json_object_new_boolean(caps[i].state)) < 0) {
                        json_object_put(args);
                        return -ENOMEM;
                }
        }
        r = qmp_execute_sync_parse(q, "migrate-set-capabilities", args, timeout_ms, NULL, NULL, ret_error);
        json_object_put(args);
        return r;
}
