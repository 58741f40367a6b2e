/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api.c - the HTTP/JSON API on libmicrohttpd.
 *
 * A request goes through three gates before any service operation runs:
 *   1. the transport: peer credentials (UNIX) or a verified client
 *      certificate (TLS) -> 403 / 401;
 *   2. the route table: unknown path -> 404, known path with another
 *      method -> 405 + Allow, malformed {uuid} -> 400, body too big -> 413;
 *   3. the body: parsed with json-c (strict, depth-limited) and checked in
 *      full -- every key known, every type and range right -- before the
 *      service sees it, so a rejected request changes nothing.
 *
 * Before all of them, connections are counted (api.h, "Limits"): every
 * connection libmicrohttpd accepts is tracked from its connection
 * notification, and one that waits for its request can be closed to make
 * room or when its time is up.  Closing is shutdown(2) on its socket: the
 * descriptor stays libmicrohttpd's, which sees the hang-up on its next
 * round and closes the connection itself.
 */
#include "vmmgr/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "vmmgr/json-io.h"

#define JSON_DEPTH_MAX 8          /* our bodies nest two levels; 8 leaves room, not a stack */
#define EVENTS_LIMIT_DEFAULT 100u
#define EVENTS_LIMIT_MAX 1000u
/* Once over the cap, the rest of a body is read and dropped (so the client
 * still gets its 413) -- but only up to this many times the cap; beyond it
 * the connection is closed. */
#define DISCARD_FACTOR 16u
/* libmicrohttpd's own limits (total, and per address on TLS) sit this far
 * above ours: connections we shut down still count there until its next
 * round closes them, and one round accepts up to 11 new ones. */
#define CLOSING_SLACK 32u
#define CONNECTIONS_MIN 4u

const uint64_t api_latency_bounds_usec[API_LATENCY_BUCKETS] = {
        250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

struct Api {
        const ServiceOps *ops;
        void *ops_ctx;
        struct MHD_Daemon *unix_daemon, *tls_daemon;
        int epoll_fd;
        /* Readable (through epoll_fd) when a suspended request was resumed:
         * libmicrohttpd in external mode needs an MHD_run() to notice. */
        int wake_fd;
        char *unix_path;
        gid_t allowed_gid;
        uint16_t tcp_port;
        size_t max_body, max_header;
        unsigned connection_limit, per_peer_limit, timeout_sec;
        /* libmicrohttpd keeps pointers to the PEM texts. */
        char *tls_cert, *tls_key, *tls_ca;
        struct Listener *unix_listener, *tls_listener;
        ApiStats stats;
};

typedef enum Transport {
        TRANSPORT_UNIX,
        TRANSPORT_TLS,
} Transport;

typedef struct Conn Conn;

/* One per libmicrohttpd daemon: the access handler learns its transport. */
typedef struct Listener {
        Api *api;
        Transport transport;
        Conn *conns;               /* every connection libmicrohttpd holds */
        Conn *wait_head, *wait_tail; /* those waiting for a request, oldest first */
        unsigned live;             /* connections not shut down by us */
} Listener;

/* Who is on the other end: a uid (UNIX socket) or an address (TLS). */
typedef struct Peer {
        int family; /* AF_UNIX, AF_INET, AF_INET6; 0: unknown */
        uid_t uid;
        uint8_t addr[16];
} Peer;

/* One accepted connection (libmicrohttpd's socket context). */
struct Conn {
        Listener *l;
        int fd;
        Peer peer;
        uint64_t since_usec; /* waiting for a request since: accepted, or the previous answer */
        bool waiting;        /* in the wait list: may be closed for room or when late */
        bool closing;        /* shut down by us; libmicrohttpd has yet to close it */
        Conn *prev, *next;   /* Listener.conns */
        Conn *wait_prev, *wait_next;
};

struct ApiRequest {
        Api *api;
        struct MHD_Connection *conn;
        const ApiRoute *route;
        VmId id; /* the {uuid} of the path, when the route has one */
        uint64_t start_usec;
        char *body;
        size_t body_len, discarded;
        bool too_big;
        struct json_object *json; /* the parsed body */
        /* The answer, queued by the access handler after the handler ran. */
        unsigned status;
        char *reply;              /* malloc'd */
        const char *content_type; /* static */
        char header_value[64]; /* Location (201) or Allow (405) */
        bool queued;
        bool waiting; /* suspended until the service answers */
        bool resumed; /* the service answered: queue the reply */
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static char *mfree_body(char *p) {
        free(p);
        return NULL;
}

/* ---- replies ---------------------------------------------------------------- */

static void reply_text(ApiRequest *req, unsigned status, const char *content_type, char *text) {
        free(req->reply);
        req->status = status;
        req->content_type = content_type;
        req->reply = text;
}

/* Takes ownership of `o`.  Out of memory becomes a 500 with an empty body. */
static int reply_json(ApiRequest *req, unsigned status, struct json_object *o) {
        char *text = o ? json_io_to_text(o) : NULL;

        json_object_put(o);
        if (!text) {
                reply_text(req, 500, "application/json", NULL);
                return -ENOMEM;
        }
        reply_text(req, status, "application/json", text);
        return 0;
}

static int reply_error(ApiRequest *req, unsigned status, const char *field, const char *fmt, ...) _printf_(4, 5);
static int reply_error(ApiRequest *req, unsigned status, const char *field, const char *fmt, ...) {
        char message[SERVICE_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        reply_json(req, status, json_io_error((int) status, message, field));
        return 0;
}

/* service.h's mapping of errors to status codes. */
static unsigned service_status(int r) {
        switch (-r) {
        case ENOENT:
                return 404;
        case EEXIST:
        case EBUSY:
                return 409;
        case EINVAL:
        case ERANGE:
                return 400;
        case ETIMEDOUT:
                return 504;
        default:
                return 500;
        }
}

static int reply_service_error(ApiRequest *req, int r, ServiceError *err) {
        err->message[sizeof err->message - 1] = '\0';
        return reply_error(req, service_status(r), err->field, "%s",
                           err->message[0] ? err->message : strerror(-r));
}

/* ---- body validation ---------------------------------------------------------- */

/* Every key of `o` is one of `allowed` (NULL-terminated); otherwise 400
 * naming the key (prefixed, for nested objects). */
static bool check_keys(ApiRequest *req, struct json_object *o, const char *const *allowed, const char *prefix) {
        json_object_object_foreach(o, key, val) {
                bool known = false;

                (void) val;
                for (const char *const *a = allowed; *a; a++)
                        if (strcmp(key, *a) == 0) {
                                known = true;
                                break;
                        }
                if (!known) {
                        char field[96];

                        snprintf(field, sizeof field, "%s%.64s", prefix, key);
                        reply_error(req, 400, field, "unknown field \"%s\"", field);
                        return false;
                }
        }
        return true;
}

/* A string without embedded NULs, at most max_len bytes. */
static bool get_string(ApiRequest *req, struct json_object *o, const char *key, const char *field, size_t max_len,
                       const char **ret) {
        struct json_object *v;
        const char *s;

        if (!json_object_object_get_ex(o, key, &v)) {
                *ret = NULL;
                return true;
        }
        if (!json_object_is_type(v, json_type_string)) {
                reply_error(req, 400, field, "%s must be a string", field);
                return false;
        }
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s) || strlen(s) > max_len) {
                reply_error(req, 400, field, "%s must be a string of at most %zu bytes without NULs", field,
                            max_len);
                return false;
        }
        *ret = s;
        return true;
}

static bool get_int(ApiRequest *req, struct json_object *o, const char *key, const char *field, int64_t min,
                    int64_t max, bool *ret_present, int64_t *ret) {
        struct json_object *v;
        int64_t x;

        *ret_present = json_object_object_get_ex(o, key, &v);
        if (!*ret_present)
                return true;
        if (!json_object_is_type(v, json_type_int)) {
                reply_error(req, 400, field, "%s must be an integer", field);
                return false;
        }
        /* json-c clamps integers beyond 64 bits to INT64_MIN/MAX, which every
         * range here excludes. */
        x = json_object_get_int64(v);
        if (x < min || x > max) {
                reply_error(req, 400, field, "%s must be in %" PRId64 "..%" PRId64, field, min, max);
                return false;
        }
        *ret = x;
        return true;
}

static bool get_baseline(ApiRequest *req, struct json_object *o, const char *key, const char *field,
                         bool *ret_present, uint32_t *ret_ppm) {
        struct json_object *v;
        double d;

        *ret_present = json_object_object_get_ex(o, key, &v);
        if (!*ret_present)
                return true;
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
                reply_error(req, 400, field, "%s must be a number (a fraction of one vCPU, 0..1)", field);
                return false;
        }
        d = json_object_get_double(v);
        if (!isfinite(d) || d < 0 || d > 1) {
                reply_error(req, 400, field, "%s must be in 0..1", field);
                return false;
        }
        *ret_ppm = (uint32_t) lround(d * CREDIT_PPM);
        return true;
}

static bool get_mode(ApiRequest *req, struct json_object *o, const char *key, const char *field, bool *ret_present,
                     CreditMode *ret) {
        const char *s;
        int m;

        if (!get_string(req, o, key, field, 16, &s))
                return false;
        *ret_present = s != NULL;
        if (!s)
                return true;
        m = credit_mode_from_string(s);
        if (m < 0) {
                reply_error(req, 400, field, "%s must be \"standard\" or \"unlimited\"", field);
                return false;
        }
        *ret = (CreditMode) m;
        return true;
}

static bool is_class_name(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n >= CREDIT_CLASS_NAME_MAX)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static bool get_class(ApiRequest *req, struct json_object *o, const char **ret) {
        if (!get_string(req, o, "class", "class", CREDIT_CLASS_NAME_MAX, ret))
                return false;
        if (*ret && !is_class_name(*ret)) {
                reply_error(req, 400, "class", "class must be 1..%d characters of [a-z0-9._-]",
                            CREDIT_CLASS_NAME_MAX - 1);
                return false;
        }
        return true;
}

static bool get_vm_id(ApiRequest *req, struct json_object *o, const char *key, bool required, VmId *ret,
                      bool *ret_present) {
        const char *s;

        if (!get_string(req, o, key, key, VM_ID_STRLEN, &s)) {
                if (req->status == 400) /* a string of the wrong length is still "not a UUID" */
                        reply_error(req, 400, key, "%s must be a UUID", key);
                return false;
        }
        if (!s) {
                if (required) {
                        reply_error(req, 400, key, "%s is required", key);
                        return false;
                }
                if (ret_present)
                        *ret_present = false;
                return true;
        }
        if (vm_id_parse(s, ret) < 0) {
                reply_error(req, 400, key, "%s must be a UUID", key);
                return false;
        }
        if (ret_present)
                *ret_present = true;
        return true;
}

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
        static const char *const keys[] = { "uuid", "qmp", "class", "spec", NULL };
        ServiceRegister reg = {};
        ServiceError err = {};
        struct json_object *spec;
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

/* The service's text as it is: the daemon appends this layer's counters
 * itself (api_get_stats(), api_stats_to_prometheus()), so they appear once. */
static int h_metrics(ApiRequest *req) {
        ServiceError err = {};
        char *text = NULL;
        int r;

        r = req->api->ops->metrics(req->api->ops_ctx, &text, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
        return 0;
}

static int h_memory_get(ApiRequest *req) {
        ServiceError err = {};
        char *json = NULL;
        int r;

        r = req->api->ops->memory_get(req->api->ops_ctx, &req->id, &json, &err);
        if (r < 0)
                return reply_service_error(req, r, &err);
        reply_text(req, 200, "application/json", json);
        return 0;
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
        char *json = NULL;
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
        r = req->api->ops->memory_set(req->api->ops_ctx, &req->id, &m, &json, &err);
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
static bool route_request(ApiRequest *req, const char *url, const char *method) {
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

/* ---- transport checks --------------------------------------------------------------- */

static bool gid_in(gid_t gid, const gid_t *groups, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* The peer's supplementary groups as the kernel recorded them at connect()
 * (SO_PEERGROUPS, Linux 4.13): no NSS lookup in the event loop, and no
 * race with the peer changing its groups afterwards.  Older kernels fall
 * back to the groups the user database gives the uid. */
static int peer_in_group(int fd, const struct ucred *uc, gid_t gid) {
        gid_t small[64];
        _cleanup_free_ gid_t *big = NULL;
        socklen_t len = sizeof small;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, small, &len) == 0)
                return gid_in(gid, small, len / sizeof(gid_t));
        if (errno == ERANGE) {
                big = malloc(len);
                if (!big)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) < 0)
                        return negative_errno();
                return gid_in(gid, big, len / sizeof(gid_t));
        }
        if (errno != ENOPROTOOPT)
                return negative_errno();

        {
                struct passwd pw, *res = NULL;
                char buf[4096];
                int n = 256;

                if (getpwuid_r(uc->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
                        return false;
                big = calloc((size_t) n, sizeof(gid_t));
                if (!big)
                        return -ENOMEM;
                if (getgrouplist(pw.pw_name, pw.pw_gid, big, &n) < 0)
                        return false;
                return gid_in(gid, big, (size_t) n);
        }
}

/* 0 when allowed, else the status to answer (message in `msg`). */
static unsigned check_unix_peer(Api *api, struct MHD_Connection *conn, char *msg, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred uc;
        socklen_t len = sizeof uc;
        int r;

        if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                snprintf(msg, size, "cannot read the peer's credentials");
                return 403;
        }
        if (uc.uid == 0)
                return 0;
        if (api->allowed_gid != API_GID_ROOT_ONLY) {
                if (uc.gid == api->allowed_gid)
                        return 0;
                r = peer_in_group(ci->connect_fd, &uc, api->allowed_gid);
                if (r > 0)
                        return 0;
        }
        if (api->allowed_gid == API_GID_ROOT_ONLY)
                snprintf(msg, size, "permission denied: uid %u is not root", (unsigned) uc.uid);
        else
                snprintf(msg, size, "permission denied: uid %u is neither root nor in group %u", (unsigned) uc.uid,
                         (unsigned) api->allowed_gid);
        return 403;
}

static unsigned check_tls_peer(struct MHD_Connection *conn, char *msg, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t session;
        const gnutls_datum_t *peers;
        unsigned n = 0, status = 0;

        if (!ci || !ci->tls_session) {
                snprintf(msg, size, "no TLS session");
                return 403;
        }
        session = (gnutls_session_t) ci->tls_session;
        peers = gnutls_certificate_get_peers(session, &n);
        if (!peers || n == 0) {
                snprintf(msg, size, "a client certificate is required");
                return 401;
        }
        /* Chain to our CA, signature, validity dates, key usage; client
         * certificates carry no host name to check. */
        if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
                snprintf(msg, size, "client certificate not accepted (status 0x%x)", status);
                return 403;
        }
        return 0;
}

/* ---- connections: limits, per peer, time ------------------------------------------------ */

static void peer_of(const Listener *l, struct MHD_Connection *conn, int fd, Peer *ret) {
        const union MHD_ConnectionInfo *ci;

        *ret = (Peer) {};
        if (l->transport == TRANSPORT_UNIX) {
                struct ucred uc;
                socklen_t len = sizeof uc;

                /* Credentials that cannot be read: all such connections
                 * are one peer (family 0). */
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
                        ret->family = AF_UNIX;
                        ret->uid = uc.uid;
                }
                return;
        }
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!ci || !ci->client_addr)
                return;
        if (ci->client_addr->sa_family == AF_INET) {
                ret->family = AF_INET;
                memcpy(ret->addr, &((const struct sockaddr_in *) ci->client_addr)->sin_addr, 4);
        } else if (ci->client_addr->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) ci->client_addr)->sin6_addr;

                /* An IPv4 client of a dual-stack socket is that IPv4 address. */
                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        ret->family = AF_INET;
                        memcpy(ret->addr, a->s6_addr + 12, 4);
                } else {
                        ret->family = AF_INET6;
                        memcpy(ret->addr, a->s6_addr, 16);
                }
        }
}

static bool peer_equal(const Peer *a, const Peer *b) {
        return a->family == b->family && a->uid == b->uid && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static void wait_list_add(Listener *l, Conn *c) {
        c->wait_prev = l->wait_tail;
        c->wait_next = NULL;
        if (l->wait_tail)
                l->wait_tail->wait_next = c;
        else
                l->wait_head = c;
        l->wait_tail = c;
        c->waiting = true;
}

static void wait_list_remove(Listener *l, Conn *c) {
        if (!c->waiting)
                return;
        if (c->wait_prev)
                c->wait_prev->wait_next = c->wait_next;
        else
                l->wait_head = c->wait_next;
        if (c->wait_next)
                c->wait_next->wait_prev = c->wait_prev;
        else
                l->wait_tail = c->wait_prev;
        c->wait_prev = c->wait_next = NULL;
        c->waiting = false;
}

/* Ends a connection without an answer: its peer sees EOF, libmicrohttpd
 * sees the hang-up and closes it (and tells conn_closed()). */
static void conn_shut(Listener *l, Conn *c) {
        if (c->closing)
                return;
        wait_list_remove(l, c);
        c->closing = true;
        l->live--;
        (void) shutdown(c->fd, SHUT_RDWR);
}

/* The oldest connection waiting for its request; of `peer` only, unless NULL. */
static Conn *oldest_waiting(const Listener *l, const Peer *peer) {
        for (Conn *c = l->wait_head; c; c = c->wait_next)
                if (!peer || peer_equal(&c->peer, peer))
                        return c;
        return NULL;
}

static unsigned peer_count(const Listener *l, const Peer *peer) {
        unsigned n = 0;

        for (const Conn *c = l->conns; c; c = c->next)
                if (!c->closing && peer_equal(&c->peer, peer))
                        n++;
        return n;
}

/* Room for a new connection: over the peer's limit, its own oldest waiting
 * connection goes; over the total, the oldest waiting one.  False when
 * nothing waits (every connection is being answered). */
static bool make_room(Listener *l, const Peer *peer) {
        Api *api = l->api;
        Conn *old;

        if (peer_count(l, peer) >= api->per_peer_limit) {
                old = oldest_waiting(l, peer);
                if (!old)
                        return false;
                conn_shut(l, old);
                api->stats.closed_for_room++;
        }
        if (l->live >= api->connection_limit) {
                old = oldest_waiting(l, NULL);
                if (!old)
                        return false;
                conn_shut(l, old);
                api->stats.closed_for_room++;
        }
        return true;
}

static void conn_started(Listener *l, struct MHD_Connection *conn, void **socket_context) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        bool room;
        Conn *c;

        if (!ci)
                return; /* cannot happen: libmicrohttpd has just accepted it */
        c = calloc(1, sizeof *c);
        if (!c) {
                /* Untracked is unlimited: better no connection at all. */
                (void) shutdown(ci->connect_fd, SHUT_RDWR);
                return;
        }
        c->l = l;
        c->fd = ci->connect_fd;
        c->since_usec = now_usec();
        peer_of(l, conn, c->fd, &c->peer);
        /* Room first, so the counts are of the others. */
        room = make_room(l, &c->peer);
        c->next = l->conns;
        if (l->conns)
                l->conns->prev = c;
        l->conns = c;
        *socket_context = c;
        l->live++;
        if (!room) {
                l->api->stats.refused++;
                conn_shut(l, c);
                return;
        }
        wait_list_add(l, c);
}

static void conn_closed(Listener *l, void **socket_context) {
        Conn *c = *socket_context;

        if (!c)
                return;
        *socket_context = NULL;
        wait_list_remove(l, c);
        if (!c->closing)
                l->live--;
        if (c->prev)
                c->prev->next = c->next;
        else
                l->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        free(c);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        Listener *l = cls;

        if (code == MHD_CONNECTION_NOTIFY_STARTED)
                conn_started(l, conn, socket_context);
        else
                conn_closed(l, socket_context);
}

static Conn *conn_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return ci ? ci->socket_context : NULL;
}

/* The whole request is in (or answered early): no longer closed for room
 * or lateness; libmicrohttpd's idle timeout still applies. */
static void conn_busy(struct MHD_Connection *conn) {
        Conn *c = conn_of(conn);

        if (c)
                wait_list_remove(c->l, c);
}

/* Answered, and kept open for the next request: waiting again. */
static void conn_idle(struct MHD_Connection *conn) {
        Conn *c = conn_of(conn);

        if (!c || c->closing)
                return;
        wait_list_remove(c->l, c);
        c->since_usec = now_usec();
        wait_list_add(c->l, c);
}

/* Shuts the connections whose time for a whole request is up. */
static void close_late(Listener *l, uint64_t now) {
        uint64_t limit = (uint64_t) l->api->timeout_sec * USEC_PER_SEC;

        while (l->wait_head && now - l->wait_head->since_usec >= limit) {
                conn_shut(l, l->wait_head);
                l->api->stats.closed_late++;
        }
}

/* Milliseconds until the oldest waiting connection is late; -1: none waits. */
static int late_in_ms(const Listener *l, uint64_t now) {
        uint64_t due;

        if (!l || !l->wait_head)
                return -1;
        due = l->wait_head->since_usec + (uint64_t) l->api->timeout_sec * USEC_PER_SEC;
        if (due <= now)
                return 0;
        return (int) MIN((due - now + 999) / 1000, (uint64_t) INT_MAX);
}

/* ---- libmicrohttpd callbacks ----------------------------------------------------------- */

static void queue_reply(ApiRequest *req) {
        struct MHD_Response *resp;
        size_t len = req->reply ? strlen(req->reply) : 0;

        resp = MHD_create_response_from_buffer(len, req->reply, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return; /* the connection is closed; nothing else to do */
        req->reply = NULL;
        if (req->content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
        if (req->status == 405)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->header_value);
        else if (req->status == 201 && req->header_value[0])
                MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, req->header_value);
        if (MHD_queue_response(req->conn, req->status, resp) == MHD_YES)
                req->queued = true;
        MHD_destroy_response(resp);
}

static enum MHD_Result finish(ApiRequest *req) {
        conn_busy(req->conn);
        queue_reply(req);
        return req->queued ? MHD_YES : MHD_NO;
}

static bool parse_body(ApiRequest *req) {
        json_tokener *tok;
        enum json_tokener_error e;

        if (req->body_len == 0) {
                reply_error(req, 400, NULL, "a JSON object body is required");
                return false;
        }
        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok) {
                reply_error(req, 500, NULL, "out of memory");
                return false;
        }
        /* Strict: no trailing commas, comments, single quotes or garbage
         * after the value; strings must be UTF-8. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        req->json = json_tokener_parse_ex(tok, req->body, (int) req->body_len);
        e = json_tokener_get_error(tok);
        if (e == json_tokener_continue)
                e = json_tokener_error_parse_eof;
        if (!req->json || e != json_tokener_success || json_tokener_get_parse_end(tok) != req->body_len) {
                size_t at = json_tokener_get_parse_end(tok);

                json_tokener_free(tok);
                json_object_put(req->json);
                req->json = NULL;
                reply_error(req, 400, NULL, "invalid JSON at byte %zu: %s", at,
                            e != json_tokener_success ? json_tokener_error_desc(e) : "trailing data");
                return false;
        }
        json_tokener_free(tok);
        if (!json_object_is_type(req->json, json_type_object)) {
                reply_error(req, 400, NULL, "the body must be a JSON object");
                return false;
        }
        return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        Listener *l = cls;
        Api *api = l->api;
        ApiRequest *req = *req_cls;
        int r;

        (void) version;
        if (!req) {
                Conn *c = conn_of(conn);
                char msg[160];
                unsigned denied;
                const char *cl;
                uint64_t n;

                if (c && c->closing)
                        return MHD_NO; /* shut down for room or lateness: no answer */
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                req->api = api;
                req->conn = conn;
                req->start_usec = now_usec();
                *req_cls = req;

                denied = l->transport == TRANSPORT_UNIX ? check_unix_peer(api, conn, msg, sizeof msg)
                                                        : check_tls_peer(conn, msg, sizeof msg);
                if (denied) {
                        api->stats.denied++;
                        reply_error(req, denied, NULL, "%s", msg);
                        return finish(req);
                }
                if (!route_request(req, url, method))
                        return finish(req);
                /* A declared length over the cap is answered before any of
                 * the body is read. */
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && parse_u64(cl, &n) == 0 && n > api->max_body) {
                        reply_error(req, 413, NULL, "body over %zu bytes", api->max_body);
                        return finish(req);
                }
                return MHD_YES;
        }

        if (req->queued) { /* answered already; drop whatever still comes */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->resumed) /* a suspended request's answer is ready */
                return finish(req);

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;

                *upload_data_size = 0;
                if (req->too_big || n > api->max_body - req->body_len) {
                        /* Stop buffering; keep reading (and dropping) so the
                         * client can be told 413 at the end, within reason. */
                        req->too_big = true;
                        req->body = mfree_body(req->body);
                        req->discarded += n;
                        if (req->discarded / DISCARD_FACTOR > api->max_body)
                                return MHD_NO;
                        return MHD_YES;
                }
                if (!req->body) {
                        /* Allocate the cap once: bodies are small and this
                         * avoids reallocating on every chunk. */
                        req->body = malloc(api->max_body + 1);
                        if (!req->body)
                                return MHD_NO;
                }
                memcpy(req->body + req->body_len, upload_data, n);
                req->body_len += n;
                return MHD_YES;
        }

        /* The whole request is in. */
        conn_busy(conn);
        if (req->too_big) {
                reply_error(req, 413, NULL, "body over %zu bytes", api->max_body);
                return finish(req);
        }
        if (!req->route->has_body && req->body_len > 0) {
                reply_error(req, 400, NULL, "%s %s takes no body", req->route->method, req->route->pattern);
                return finish(req);
        }
        if (req->route->has_body && !parse_body(req))
                return finish(req);

        r = req->route->handler(req);
        if (r >= 0 && req->waiting)
                return MHD_YES;
        if (r < 0 || req->status == 0)
                reply_error(req, 500, NULL, "internal error: %s", strerror(r < 0 ? -r : EIO));
        return finish(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
        Listener *l = cls;
        ApiRequest *req = *req_cls;
        ApiStats *s = &l->api->stats;
        uint64_t latency;
        size_t b = 0;

        /* Kept open for the next request: its time starts again. */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                conn_idle(conn);
        if (!req)
                return;
        *req_cls = NULL;
        if (req->queued) {
                latency = now_usec() - req->start_usec;
                s->requests++;
                if (req->status < API_STATUS_MAX)
                        s->by_status[req->status]++;
                while (b < API_LATENCY_BUCKETS && latency > api_latency_bounds_usec[b])
                        b++;
                s->latency_bucket[b]++;
                s->latency_sum_usec += latency;
        }
        json_object_put(req->json);
        free(req->body);
        free(req->reply);
        free(req);
}

/* libmicrohttpd's diagnostics (malformed requests, failed accepts) explain
 * client trouble and are nobody else's to report; they go to debug. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        size_t n;

        (void) cls;
        vsnprintf(buf, sizeof buf, fmt, ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        log_debug("microhttpd: %s", buf);
}

/* ---- statistics -------------------------------------------------------------------- */

void api_get_stats(const Api *api, ApiStats *ret) {
        *ret = api->stats;
        ret->connections_open = (api->unix_listener ? api->unix_listener->live : 0) +
                                (api->tls_listener ? api->tls_listener->live : 0);
}

int api_stats_to_prometheus(const ApiStats *s, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&buf, &size);
        uint64_t cum = 0;

        if (!f)
                return -ENOMEM;
        fputs("# HELP vmmgr_http_requests_total HTTP API requests answered, by status code.\n"
              "# TYPE vmmgr_http_requests_total counter\n",
              f);
        for (unsigned code = 0; code < API_STATUS_MAX; code++)
                if (s->by_status[code])
                        fprintf(f, "vmmgr_http_requests_total{code=\"%u\"} %" PRIu64 "\n", code, s->by_status[code]);
        fprintf(f,
                "# HELP vmmgr_http_denied_total HTTP API requests refused by the transport checks.\n"
                "# TYPE vmmgr_http_denied_total counter\n"
                "vmmgr_http_denied_total %" PRIu64 "\n"
                "# HELP vmmgr_http_request_duration_seconds HTTP API request latency, headers in to reply out.\n"
                "# TYPE vmmgr_http_request_duration_seconds histogram\n",
                s->denied);
        for (size_t b = 0; b < API_LATENCY_BUCKETS; b++) {
                cum += s->latency_bucket[b];
                fprintf(f, "vmmgr_http_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                        (double) api_latency_bounds_usec[b] / 1e6, cum);
        }
        cum += s->latency_bucket[API_LATENCY_BUCKETS];
        fprintf(f,
                "vmmgr_http_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                "vmmgr_http_request_duration_seconds_sum %.6f\n"
                "vmmgr_http_request_duration_seconds_count %" PRIu64 "\n",
                cum, (double) s->latency_sum_usec / 1e6, s->requests);
        fprintf(f,
                "# HELP vmmgr_http_connections API connections open now.\n"
                "# TYPE vmmgr_http_connections gauge\n"
                "vmmgr_http_connections %" PRIu64 "\n"
                "# HELP vmmgr_http_connections_closed_total API connections closed without an answer: "
                "for room (a limit), refused (over a limit, none waiting) or late (no whole request in time).\n"
                "# TYPE vmmgr_http_connections_closed_total counter\n"
                "vmmgr_http_connections_closed_total{reason=\"room\"} %" PRIu64 "\n"
                "vmmgr_http_connections_closed_total{reason=\"refused\"} %" PRIu64 "\n"
                "vmmgr_http_connections_closed_total{reason=\"late\"} %" PRIu64 "\n",
                s->connections_open, s->closed_for_room, s->refused, s->closed_late);
        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        fclose(TAKE_PTR(f));
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- listeners ------------------------------------------------------------------------ */

static int unix_listen(const char *path, gid_t gid, int *ret_fd, ApiError *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (strlen(path) >= sizeof sa.sun_path) {
                set_error(err, "socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();

        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                _cleanup_close_ int probe = -EBADF;

                r = negative_errno();
                if (r != -EADDRINUSE) {
                        set_error(err, "cannot bind %s: %s", path, strerror(-r));
                        return r;
                }
                /* Something is there.  Only a socket nobody listens on (a
                 * previous vmmgrd that died) may be replaced. */
                if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                        set_error(err, "%s exists and is not a socket; not touching it", path);
                        return -EEXIST;
                }
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (probe < 0)
                        return negative_errno();
                if (connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0 || errno == EAGAIN) {
                        set_error(err, "another process listens on %s (is vmmgrd running?)", path);
                        return -EADDRINUSE;
                }
                if (errno != ECONNREFUSED) {
                        r = negative_errno();
                        set_error(err, "cannot probe the stale socket %s: %s", path, strerror(-r));
                        return r;
                }
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = negative_errno();
                        set_error(err, "cannot remove the stale socket %s: %s", path, strerror(-r));
                        return r;
                }
                if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        r = negative_errno();
                        set_error(err, "cannot bind %s: %s", path, strerror(-r));
                        return r;
                }
        }
        /* Permissions before listen(): until then a connect() is refused, so
         * nobody gets in through the umask's mode.  connect() needs write
         * access to the socket file, hence the group. */
        if (chmod(path, 0660) < 0 || (gid != API_GID_ROOT_ONLY && chown(path, (uid_t) -1, gid) < 0) ||
            listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                set_error(err, "cannot set up %s: %s", path, strerror(-r));
                (void) unlink(path);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int tcp_listen(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port, ApiError *err) {
        struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai = NULL;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        _cleanup_close_ int fd = -EBADF;
        int r, one = 1;

        r = getaddrinfo(address, NULL, &hints, &ai);
        if (r != 0) {
                set_error(err, "tcp_address \"%s\" is not a numeric IPv4 or IPv6 address", address);
                return -EINVAL;
        }
        if (ai->ai_family == AF_INET)
                ((struct sockaddr_in *) ai->ai_addr)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *) ai->ai_addr)->sin6_port = htons(port);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0 ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
                r = negative_errno();
                set_error(err, "cannot listen on %s port %u: %s", address, (unsigned) port, strerror(-r));
                freeaddrinfo(ai);
                return r;
        }
        freeaddrinfo(ai);
        *ret_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                                  : ((struct sockaddr_in6 *) &ss)->sin6_port);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int read_pem(const char *path, const char *what, char **ret, ApiError *err) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r;

        if (!path) {
                set_error(err, "the TLS listener needs %s", what);
                return -EINVAL;
        }
        f = fopen(path, "re");
        if (!f) {
                r = negative_errno();
                set_error(err, "cannot open %s %s: %s", what, path, strerror(-r));
                return r;
        }
        buf = malloc(1024 * 1024 + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, 1024 * 1024 + 1, f);
        if (ferror(f)) {
                set_error(err, "cannot read %s %s", what, path);
                return -EIO;
        }
        if (n == 0 || n > 1024 * 1024 || memchr(buf, '\0', n)) {
                set_error(err, "%s %s is not a PEM file (empty, binary or over 1 MiB)", what, path);
                return -EBADMSG;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Loads the PEM texts the way libmicrohttpd will, to turn a bad file into
 * an error naming it (libmicrohttpd would just fail to start). */
static int check_tls_files(Api *api, const ApiConfig *cfg, ApiError *err) {
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_datum_t cert, key, ca;
        int r;

        r = read_pem(cfg->tls_cert_file, "tls_cert_file", &api->tls_cert, err);
        if (r >= 0)
                r = read_pem(cfg->tls_key_file, "tls_key_file", &api->tls_key, err);
        if (r >= 0)
                r = read_pem(cfg->tls_ca_file, "tls_ca_file (the CA of client certificates)", &api->tls_ca, err);
        if (r < 0)
                return r;
        if (gnutls_certificate_allocate_credentials(&cred) < 0)
                return -ENOMEM;
        cert = (gnutls_datum_t) { (unsigned char *) api->tls_cert, (unsigned) strlen(api->tls_cert) };
        key = (gnutls_datum_t) { (unsigned char *) api->tls_key, (unsigned) strlen(api->tls_key) };
        ca = (gnutls_datum_t) { (unsigned char *) api->tls_ca, (unsigned) strlen(api->tls_ca) };
        r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
        if (r < 0) {
                set_error(err, "%s / %s: not a matching certificate and key: %s", cfg->tls_cert_file,
                          cfg->tls_key_file, gnutls_strerror(r));
                r = -EBADMSG;
        } else {
                r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
                if (r <= 0) {
                        set_error(err, "%s: no CA certificate: %s", cfg->tls_ca_file,
                                  r < 0 ? gnutls_strerror(r) : "none found");
                        r = -EBADMSG;
                } else
                        r = 0;
        }
        gnutls_certificate_free_credentials(cred);
        return r;
}

static int watch(Api *api, struct MHD_Daemon *d) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = d };

        if (!info || info->epoll_fd < 0)
                return -EIO;
        if (epoll_ctl(api->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0)
                return negative_errno();
        return 0;
}

/* libmicrohttpd's own limits back ours up (CLOSING_SLACK above them):
 * total connections, connections per address (TLS; on the UNIX socket
 * every peer has the same address, so the per-uid count is ours alone),
 * the idle timeout, and the connection's memory pool, which bounds the
 * request line and headers -- libmicrohttpd answers 431 (414 for the
 * request line alone) as soon as they outgrow it. */
static struct MHD_Daemon *start_daemon(Api *api, Listener *l, int fd) {
        /* Suspend/resume: a request that waits for QEMU (registration)
         * is parked without holding the loop. */
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        struct MHD_OptionItem common[] = {
                { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) on_mhd_log, NULL },
                { MHD_OPTION_LISTEN_SOCKET, fd, NULL },
                { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) on_completed, l },
                { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) on_connection, l },
                { MHD_OPTION_CONNECTION_LIMIT, (intptr_t) (api->connection_limit + CLOSING_SLACK), NULL },
                { MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t) api->timeout_sec, NULL },
                { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) api->max_header, NULL },
                { MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL },
                { MHD_OPTION_END, 0, NULL },
        };

        if (l->transport == TRANSPORT_TLS)
                return MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, l, MHD_OPTION_ARRAY, common,
                                        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                        (unsigned) (api->per_peer_limit + CLOSING_SLACK), MHD_OPTION_HTTPS_MEM_CERT,
                                        api->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, api->tls_key,
                                        MHD_OPTION_HTTPS_MEM_TRUST, api->tls_ca, MHD_OPTION_END);
        return MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_ARRAY, common, MHD_OPTION_END);
}

/* ---- the object ----------------------------------------------------------------------- */

/* Each connection is a descriptor, and libmicrohttpd may hold CLOSING_SLACK
 * more per listener while it closes those we shut down.  The API takes at
 * most half of RLIMIT_NOFILE's soft limit (vmmgrd raises it at start): the
 * other half is the caller's -- QMP sockets, cgroup files, the database. */
static unsigned fit_fd_limit(unsigned limit, unsigned listeners) {
        struct rlimit rl;
        rlim_t share;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return limit;
        share = rl.rlim_cur / 2 / listeners;
        if (share < CLOSING_SLACK + CONNECTIONS_MIN)
                return CONNECTIONS_MIN;
        return (unsigned) MIN((rlim_t) limit, share - CLOSING_SLACK);
}

static int set_limits(Api *api, const ApiConfig *cfg, ApiError *err) {
        unsigned listeners = (cfg->unix_path ? 1u : 0u) + (cfg->tcp_address ? 1u : 0u);

        api->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : API_BODY_MAX_DEFAULT;
        api->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : API_HEADER_MAX_DEFAULT;
        if (api->max_header < API_HEADER_MAX_MIN) {
                set_error(err, "max_header_bytes must be at least %u", API_HEADER_MAX_MIN);
                return -EINVAL;
        }
        api->connection_limit = cfg->connection_limit ? cfg->connection_limit : API_CONNECTIONS_DEFAULT;
        api->connection_limit = MAX(api->connection_limit, CONNECTIONS_MIN);
        api->connection_limit = fit_fd_limit(api->connection_limit, MAX(listeners, 1u));
        api->per_peer_limit = cfg->per_peer_limit ? cfg->per_peer_limit : API_PER_PEER_DEFAULT;
        api->per_peer_limit = MIN(api->per_peer_limit, api->connection_limit);
        api->timeout_sec = cfg->connection_timeout_sec ? cfg->connection_timeout_sec : API_TIMEOUT_SEC_DEFAULT;
        return 0;
}

void api_get_limits(const Api *api, ApiLimits *ret) {
        *ret = (ApiLimits) {
                .connection_limit = api->connection_limit,
                .per_peer_limit = api->per_peer_limit,
                .timeout_sec = api->timeout_sec,
                .max_header_bytes = api->max_header,
                .max_body_bytes = api->max_body,
        };
}

Api *api_free(Api *api) {
        if (!api)
                return NULL;
        /* Stopping a daemon ends its connections (their completion callbacks
         * run now) and closes its listen socket. */
        if (api->unix_daemon)
                MHD_stop_daemon(api->unix_daemon);
        if (api->tls_daemon)
                MHD_stop_daemon(api->tls_daemon);
        if (api->unix_path && api->unix_daemon)
                (void) unlink(api->unix_path);
        if (api->epoll_fd >= 0)
                close(api->epoll_fd);
        if (api->wake_fd >= 0)
                close(api->wake_fd);
        free(api->unix_listener);
        free(api->tls_listener);
        free(api->unix_path);
        free(api->tls_cert);
        free(api->tls_key);
        free(api->tls_ca);
        free(api);
        return NULL;
}

int api_new(const ApiConfig *cfg, const ServiceOps *ops, void *ops_ctx, Api **ret, ApiError *err) {
        _cleanup_api_ Api *api = NULL;
        int fd = -EBADF, r;

        if (!cfg->unix_path && !cfg->tcp_address) {
                set_error(err, "no listener configured");
                return -EINVAL;
        }
        api = calloc(1, sizeof *api);
        if (!api)
                return -ENOMEM;
        api->epoll_fd = -EBADF;
        api->ops = ops;
        api->ops_ctx = ops_ctx;
        api->allowed_gid = cfg->allowed_gid;
        r = set_limits(api, cfg, err);
        if (r < 0)
                return r;
        api->wake_fd = -EBADF;
        api->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (api->epoll_fd < 0)
                return negative_errno();
        api->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (api->wake_fd < 0)
                return negative_errno();
        if (epoll_ctl(api->epoll_fd, EPOLL_CTL_ADD, api->wake_fd,
                      &(struct epoll_event) { .events = EPOLLIN, .data.ptr = NULL }) < 0)
                return negative_errno();

        if (cfg->tcp_address) {
                /* Files first: a bad certificate should not leave a bound port. */
                r = check_tls_files(api, cfg, err);
                if (r < 0)
                        return r;
        }

        if (cfg->unix_path) {
                api->unix_listener = calloc(1, sizeof(Listener));
                api->unix_path = strdup(cfg->unix_path);
                if (!api->unix_listener || !api->unix_path)
                        return -ENOMEM;
                *api->unix_listener = (Listener) { api, TRANSPORT_UNIX };
                r = unix_listen(cfg->unix_path, cfg->allowed_gid, &fd, err);
                if (r < 0)
                        return r;
                /* libmicrohttpd owns the listen socket from here on, also when
                 * it fails to start (it closes it). */
                api->unix_daemon = start_daemon(api, api->unix_listener, fd);
                if (!api->unix_daemon) {
                        (void) unlink(cfg->unix_path);
                        set_error(err, "cannot start the HTTP server on %s", cfg->unix_path);
                        return -EIO;
                }
                r = watch(api, api->unix_daemon);
                if (r < 0)
                        return r;
        }

        if (cfg->tcp_address) {
                api->tls_listener = calloc(1, sizeof(Listener));
                if (!api->tls_listener)
                        return -ENOMEM;
                *api->tls_listener = (Listener) { api, TRANSPORT_TLS };
                r = tcp_listen(cfg->tcp_address, cfg->tcp_port, &fd, &api->tcp_port, err);
                if (r < 0)
                        return r;
                api->tls_daemon = start_daemon(api, api->tls_listener, fd);
                if (!api->tls_daemon) {
                        set_error(err, "cannot start the HTTPS server on %s port %u", cfg->tcp_address,
                                  (unsigned) api->tcp_port);
                        return -EIO;
                }
                r = watch(api, api->tls_daemon);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(api);
        return 0;
}

int api_get_fd(Api *api) {
        return api->epoll_fd;
}

uint16_t api_get_tcp_port(const Api *api) {
        return api->tls_daemon ? api->tcp_port : 0;
}

int api_get_timeout_ms(Api *api) {
        struct MHD_Daemon *ds[] = { api->unix_daemon, api->tls_daemon };
        Listener *ls[] = { api->unix_listener, api->tls_listener };
        uint64_t now = now_usec();
        int best = -1;

        for (size_t i = 0; i < ARRAY_SIZE(ls); i++) {
                int t = late_in_ms(ls[i], now);

                if (t >= 0 && (best < 0 || t < best))
                        best = t;
        }

        for (size_t i = 0; i < ARRAY_SIZE(ds); i++) {
                MHD_UNSIGNED_LONG_LONG ms;

                if (!ds[i] || MHD_get_timeout(ds[i], &ms) != MHD_YES)
                        continue;
                if (ms > INT_MAX)
                        ms = INT_MAX;
                if (best < 0 || (int) ms < best)
                        best = (int) ms;
        }
        return best;
}

int api_dispatch(Api *api) {
        eventfd_t ignored;
        int r = 0;

        (void) eventfd_read(api->wake_fd, &ignored); /* nonblocking: -EAGAIN when not woken */
        /* Late connections are shut first: this round closes them. */
        if (api->unix_listener)
                close_late(api->unix_listener, now_usec());
        if (api->tls_listener)
                close_late(api->tls_listener, now_usec());
        /* Both, whichever woke us: MHD_run() never blocks and is cheap when
         * idle, and a timeout may be due on either. */
        if (api->unix_daemon && MHD_run(api->unix_daemon) != MHD_YES)
                r = -EIO;
        if (api->tls_daemon && MHD_run(api->tls_daemon) != MHD_YES)
                r = -EIO;
        return r;
}
