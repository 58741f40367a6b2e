/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/json-io.h - the API's objects as JSON: one rendering of a VM, a
 * credit account, an event and an error, shared by the HTTP layer (api.c)
 * and vmmgrctl --json so the two never disagree.  Keys: docs/api.md.
 *
 * Every constructor returns a new object (the caller puts it) or NULL on
 * out-of-memory.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "vmmgr/api/service.h"

struct json_object *json_io_vm(const ServiceVm *vm);
struct json_object *json_io_credits(const ServiceCredits *c);
struct json_object *json_io_event(const ServiceEvent *e);
struct json_object *json_io_memory(const ServiceMemory *m);
struct json_object *json_io_migration(const ServiceMigration *m);
struct json_object *json_io_migration_answer(const ServiceMigrationAnswer *a);
/* {"code": N, "message": "...", "field": "..." or null} */
struct json_object *json_io_error(int code, const char *message, const char *field);

/* RFC 3339 in UTC: "2024-05-01T12:00:00Z", or with ".123456" when
 * `usec` is true (the value is then in microseconds).  -ENOBUFS if it does
 * not fit, -ERANGE for a time gmtime() cannot represent. */
int json_io_format_time(char *buf, size_t size, uint64_t t, bool usec);

/* Text of an object for the wire: compact, no escaped slashes, a trailing
 * newline; malloc'd (NULL on out-of-memory). */
char *json_io_to_text(struct json_object *o);

/* Building small objects (event details) with json-c, so text from
 * outside (a QMP path, a class name) can never forge a key: each returns
 * 0 or -ENOMEM. */
int json_io_add_string(struct json_object *o, const char *key, const char *value);
int json_io_add_int(struct json_object *o, const char *key, int64_t value);
/* o[key] = a ledger's summary for event details and reports (balance,
 * launch, surplus, debt, available, spent, earned; usec).  -ENOMEM. */
int json_io_add_ledger_summary(struct json_object *o, const char *key, const CreditLedger *l);
/* o's compact text, owned by o; "{}" for NULL. */
const char *json_io_plain(struct json_object *o);

static inline void json_io_putp(struct json_object **o) {
        json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(json_io_putp)))
