/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp/qmp-internal.h - what the files of libqmp (and its fuzz target) share.
 * Not installed and not for other modules: json-c types stay inside qmp/.
 */
#pragma once

#include <json-c/json.h>

#include "qmp/qmp.h"

/* Parses a reply's "return" member into out (written only on success). */
typedef int (*QmpParseFn)(struct json_object *ret, void *out);

/* Like QmpReplyFn, with the "return" member as a json-c object (borrowed). */
typedef void (*QmpObjReplyFn)(Qmp *q, int r, struct json_object *ret, const QmpError *err,
                              void *userdata);

/* qmp_execute() taking arguments as a json-c object (borrowed, may be NULL)
 * and completing through an object callback. */
int qmp_execute_obj(Qmp *q, const char *command, struct json_object *args, int timeout_ms,
                    QmpObjReplyFn cb, void *userdata);

/* The blocking core of qmp_execute_sync() and the typed helpers: runs
 * command, and on a successful reply calls parse (if not NULL) on the
 * "return" member, whose result becomes the result. */
int qmp_execute_sync_parse(Qmp *q, const char *command, struct json_object *args,
                           int timeout_ms, QmpParseFn parse, void *out, QmpError *ret_error);

/* Processes bytes as if they had just been read from the socket: the same
 * path qmp_dispatch() takes after recv().  For the fuzz target and tests.
 * Returns 0 or the close error. */
int qmp_feed(Qmp *q, const void *buf, size_t n);

/* Parses JSON text into an object with the library's nesting limit.
 * Errors: -EBADMSG (invalid, trailing garbage, too deep), -ENOMEM. */
int qmp_json_parse(const char *text, struct json_object **ret);

/* Strict member accessors: -EBADMSG when a required member is missing or a
 * member has the wrong type; optional missing members leave *ret alone and
 * return 0 (1 when found). */
int qmp_json_get_int64(struct json_object *o, const char *key, bool required, int64_t *ret);
int qmp_json_get_uint64(struct json_object *o, const char *key, bool required, uint64_t *ret);
int qmp_json_get_bool(struct json_object *o, const char *key, bool required, bool *ret);
int qmp_json_get_string(struct json_object *o, const char *key, bool required,
                        const char **ret);
int qmp_json_get_object(struct json_object *o, const char *key, bool required,
                        struct json_object **ret);
int qmp_json_get_array(struct json_object *o, const char *key, bool required,
                       struct json_object **ret);

/* Typed parsers on json-c objects (qmp-types.c); qmp_parse_*() wrap them. */
typedef struct QmpCpuList {
        QmpCpu *cpus;
        size_t n;
} QmpCpuList;
typedef struct QmpIothreadList {
        QmpIothread *iothreads;
        size_t n;
} QmpIothreadList;
typedef struct QmpPciList {
        QmpPciDevice *devices;
        size_t n;
} QmpPciList;

int qmp_status_from_json(struct json_object *ret, void *out /* QmpStatus */);
int qmp_uuid_from_json(struct json_object *ret, void *out /* char[37] */);
int qmp_cpus_from_json(struct json_object *ret, void *out /* QmpCpuList */);
int qmp_iothreads_from_json(struct json_object *ret, void *out /* QmpIothreadList */);
int qmp_memory_summary_from_json(struct json_object *ret, void *out /* QmpMemorySummary */);
int qmp_balloon_from_json(struct json_object *ret, void *out /* uint64_t */);
int qmp_pci_from_json(struct json_object *ret, void *out /* QmpPciList */);
int qmp_migrate_from_json(struct json_object *ret, void *out /* QmpMigrateInfo */);
