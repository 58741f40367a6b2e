/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl/ctl-common.c - what every vmmgrctl verb shares: the common
 * options, the call to vmmgrd's API, printing JSON or a table, exit codes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "policies/credits.h"
#include "vmmgr/ctl/ctl.h"
#include "vmmgr/api/http-client.h"

#define CTL_TIMEOUT_MS 15000

static bool looks_like_amount(const char *s) {
        int64_t v;
        return s[0] == '-' && credit_parse_amount(s, true, &v) == 0;
}

int ctl_verb_begin(int argc, char **argv, void (*usage)(FILE *out), CtlCommon *c, char **rest, int min_rest,
                   int max_rest, int *n_rest) {
        /* rest never holds more than argc - 1 entries. */
        if (argc - 1 > max_rest || ctl_parse_common(argc, argv, c, rest, n_rest) < 0) {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        if (c->help) {
                usage(stdout);
                return 0;
        }
        if (*n_rest < min_rest) {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        return -1;
}

int ctl_verb_end(const CtlCommon *c, int r, struct json_object *reply, void (*print)(struct json_object *reply)) {
        if (r == 0) {
                if (c->json)
                        ctl_print_json(reply);
                else if (print)
                        print(reply);
        }
        json_object_put(reply);
        return r;
}

int ctl_parse_common(int argc, char **argv, CtlCommon *c, char **rest, int *n_rest) {
        int n = 0;

        *c = (CtlCommon) { .socket = getenv("VMMGR_SOCKET") };
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];

                if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                        c->help = true;
                else if (strcmp(a, "--json") == 0)
                        c->json = true;
                else if (strcmp(a, "--socket") == 0) {
                        if (++i >= argc) {
                                log_error("--socket needs a path");
                                return -1;
                        }
                        c->socket = argv[i];
                } else if (strncmp(a, "--socket=", 9) == 0)
                        c->socket = a + 9;
                else if (strcmp(a, "--") == 0) {
                        while (++i < argc)
                                rest[n++] = argv[i];
                } else if (a[0] == '-' && a[1] != '-' && !looks_like_amount(a)) {
                        log_error("Unknown option \"%s\"", a);
                        return -1;
                } else
                        rest[n++] = argv[i];
        }
        if (!c->socket || !*c->socket)
                c->socket = CTL_DEFAULT_SOCKET;
        *n_rest = n;
        return 0;
}

int ctl_uuid_arg(const char *s, VmId *ret) {
        if (!s || vm_id_parse(s, ret) < 0) {
                log_error("\"%s\" is not a VM UUID (8-4-4-4-12 hex digits)", s ? s : "");
                return -EINVAL;
        }
        return 0;
}

const char *ctl_str(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !v)
                return "-";
        return json_object_get_string(v);
}

int64_t ctl_int(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        return json_object_get_int64(v);
}

bool ctl_is_null(struct json_object *o, const char *key) {
        struct json_object *v;
        return !o || !json_object_object_get_ex(o, key, &v) || !v;
}

void ctl_print_json(struct json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int ctl_call_quiet(const CtlCommon *c, const char *method, const char *path, struct json_object *body,
                   long timeout_ms, struct json_object **ret, char *msg, size_t msg_size) {
        HttpTarget t = { .socket_path = c->socket, .cancel = c->cancel };
        const char *json = body ? json_object_to_json_string(body) : NULL;
        _cleanup_free_ char *reply = NULL;
        struct json_object *o = NULL;
        HttpError err = { 0 };
        HttpResponse resp;
        long status = 0;
        int r;

        *ret = NULL;
        if (msg_size > 0)
                msg[0] = '\0';
        r = http_request_ex(&t, method, path, json, json ? strlen(json) : 0, timeout_ms, &resp, &err);
        if (r >= 0) {
                status = resp.status;
                reply = TAKE_PTR(resp.body);
                http_response_done(&resp);
        }
        if (r < 0) {
                snprintf(msg, msg_size, "%s", err.message[0] ? err.message : strerror(-r));
                return r == -ECONNREFUSED || r == -ENOENT || r == -EACCES ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_FAILURE;
        }
        if (reply && *reply)
                o = json_tokener_parse(reply);
        if (status >= 200 && status < 300) {
                *ret = o;
                return CTL_EXIT_OK;
        }
        {
                const char *field = ctl_is_null(o, "field") ? NULL : ctl_str(o, "field");
                snprintf(msg, msg_size, "%s%s%s%s", o ? ctl_str(o, "message") : (reply ? reply : "error"),
                         field ? " (field: " : "", field ? field : "", field ? ")" : "");
        }
        json_object_put(o);
        switch (status) {
        case 404:
                return CTL_EXIT_NOT_FOUND;
        case 409:
                return CTL_EXIT_CONFLICT;
        case 400:
        case 413:
                return CTL_EXIT_REJECTED;
        case 401:
        case 403:
                return CTL_EXIT_UNAVAILABLE;
        default:
                return CTL_EXIT_FAILURE;
        }
}

int ctl_call(const CtlCommon *c, const char *method, const char *path, struct json_object *body,
             struct json_object **ret) {
        char msg[512];
        int r = ctl_call_quiet(c, method, path, body, CTL_TIMEOUT_MS, ret, msg, sizeof(msg));

        if (r != CTL_EXIT_OK)
                log_error("%s", msg);
        return r;
}
