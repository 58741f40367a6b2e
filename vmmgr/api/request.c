/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/request.c - answers (JSON bodies, errors with the field at
 * fault) and the checks every request body passes before the service sees
 * it: every key known, every type and range right.
 */
#include "vmmgr/api/api-internal.h"

/* ---- small helpers -------------------------------------------------------- */

char *mfree_body(char *p) {
        free(p);
        return NULL;
}

/* ---- replies ---------------------------------------------------------------- */

void reply_text(ApiRequest *req, unsigned status, const char *content_type, char *text) {
        free(req->reply);
        req->status = status;
        req->content_type = content_type;
        req->reply = text;
}

/* Takes ownership of `o`.  Out of memory becomes a 500 with an empty body. */
int reply_json(ApiRequest *req, unsigned status, struct json_object *o) {
        char *text = o ? json_io_to_text(o) : NULL;

        json_object_put(o);
        if (!text) {
                reply_text(req, 500, "application/json", NULL);
                return -ENOMEM;
        }
        reply_text(req, status, "application/json", text);
        return 0;
}

int reply_error(ApiRequest *req, unsigned status, const char *field, const char *fmt, ...) {
        char message[SERVICE_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        reply_json(req, status, json_io_error((int) status, message, field));
        return 0;
}

/* service.h's mapping of errors to status codes. */
unsigned service_status(int r) {
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

int reply_service_error(ApiRequest *req, int r, ServiceError *err) {
        err->message[sizeof err->message - 1] = '\0';
        return reply_error(req, service_status(r), err->field, "%s",
                           err->message[0] ? err->message : strerror(-r));
}

/* ---- body validation ---------------------------------------------------------- */

/* Every key of `o` is one of `allowed` (NULL-terminated); otherwise 400
 * naming the key (prefixed, for nested objects). */
bool check_keys(ApiRequest *req, struct json_object *o, const char *const *allowed, const char *prefix) {
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
bool get_string(ApiRequest *req, struct json_object *o, const char *key, const char *field, size_t max_len,
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

bool get_int(ApiRequest *req, struct json_object *o, const char *key, const char *field, int64_t min,
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

bool get_baseline(ApiRequest *req, struct json_object *o, const char *key, const char *field,
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

bool get_mode(ApiRequest *req, struct json_object *o, const char *key, const char *field, bool *ret_present,
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

bool is_class_name(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n >= CREDIT_CLASS_NAME_MAX)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool get_class(ApiRequest *req, struct json_object *o, const char **ret) {
        if (!get_string(req, o, "class", "class", CREDIT_CLASS_NAME_MAX, ret))
                return false;
        if (*ret && !is_class_name(*ret)) {
                reply_error(req, 400, "class", "class must be 1..%d characters of [a-z0-9._-]",
                            CREDIT_CLASS_NAME_MAX - 1);
                return false;
        }
        return true;
}

bool get_vm_id(ApiRequest *req, struct json_object *o, const char *key, bool required, VmId *ret,
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

