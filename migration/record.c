/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The handoff record as JSON (record.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "migration/record.h"

/* ---- writing ------------------------------------------------------------ */

static bool add_int(struct json_object *o, const char *key, int64_t v) {
        struct json_object *n = json_object_new_int64(v);

        if (!n || json_object_object_add(o, key, n) < 0) {
                json_object_put(n);
                return false;
        }
        return true;
}

static bool add_string(struct json_object *o, const char *key, const char *v) {
        struct json_object *s = json_object_new_string(v);

        if (!s || json_object_object_add(o, key, s) < 0) {
                json_object_put(s);
                return false;
        }
        return true;
}

static bool add_object(struct json_object *o, const char *key, struct json_object *child) {
        if (!child || json_object_object_add(o, key, child) < 0) {
                json_object_put(child);
                return false;
        }
        return true;
}

static struct json_object *spec_to_json(const CreditSpec *s) {
        struct json_object *o = json_object_new_object();

        if (o && add_int(o, "vcpus", s->vcpus) && add_int(o, "baseline_ppm", s->baseline_ppm) &&
            add_int(o, "cap_usec", s->cap_usec) && add_int(o, "launch_usec", s->launch_usec) &&
            add_string(o, "mode", credit_mode_to_string(s->mode)))
                return o;
        json_object_put(o);
        return NULL;
}

/* Unsigned counters are written as int64: they stay far below 2^63. */
static struct json_object *ledger_to_json(const CreditLedger *l) {
        struct json_object *o = json_object_new_object();

        if (o && add_int(o, "balance_usec", l->balance_usec) && add_int(o, "launch_usec", l->launch_usec) &&
            add_int(o, "surplus_usec", l->surplus_usec) && add_int(o, "charged_usec", l->charged_usec) &&
            add_int(o, "earned_usec", (int64_t) l->earned_usec) && add_int(o, "spent_usec", (int64_t) l->spent_usec) &&
            add_int(o, "forfeited_usec", (int64_t) l->forfeited_usec) &&
            add_int(o, "overdraft_usec", (int64_t) l->overdraft_usec) && add_int(o, "debt_usec", l->debt_usec) &&
            add_int(o, "adjusted_usec", l->adjusted_usec) &&
            add_int(o, "earn_remainder", (int64_t) l->earn_remainder) &&
            add_int(o, "generation", (int64_t) l->generation))
                return o;
        json_object_put(o);
        return NULL;
}

struct json_object *mig_record_to_json(const MigRecord *rec) {
        struct json_object *o = json_object_new_object();

        if (o && add_int(o, "version", MIG_RECORD_VERSION) && add_string(o, "vm", rec->vm.str) &&
            add_int(o, "epoch", (int64_t) rec->epoch) && add_int(o, "frozen_at_usec", (int64_t) rec->frozen_at_usec) &&
            add_string(o, "source", rec->source) && add_object(o, "spec", spec_to_json(&rec->spec)) &&
            add_object(o, "ledger", ledger_to_json(&rec->ledger)))
                return o;
        json_object_put(o);
        return NULL;
}

char *mig_record_to_text(const MigRecord *rec) {
        struct json_object *o = mig_record_to_json(rec);
        const char *s;
        char *text = NULL;

        if (!o)
                return NULL;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (s)
                text = strdup(s);
        json_object_put(o);
        return text;
}

/* ---- reading ------------------------------------------------------------ */

static int fail(MigRecordError *err, const char *field, const char *fmt, ...) _printf_(3, 4);
static int fail(MigRecordError *err, const char *field, const char *fmt, ...) {
        va_list ap;

        if (err) {
                err->field = field;
                va_start(ap, fmt);
                vsnprintf(err->message, sizeof(err->message), fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Every member present is one of `keys`, and every key is present. */
static int check_members(struct json_object *o, const char *const *keys, const char *what, MigRecordError *err) {
        size_t n = 0;

        if (!json_object_is_type(o, json_type_object))
                return fail(err, what[0] ? what : NULL, "%s must be a JSON object", what[0] ? what : "a record");
        json_object_object_foreach(o, key, val) {
                bool known = false;

                (void) val;
                for (const char *const *k = keys; *k; k++)
                        known = known || strcmp(*k, key) == 0;
                if (!known)
                        return fail(err, NULL, "unknown member \"%.64s\" in %s", key, what[0] ? what : "the record");
        }
        for (const char *const *k = keys; *k; k++) {
                n++;
                if (!json_object_object_get_ex(o, *k, NULL))
                        return fail(err, *k, "%s%s%s is missing", what, what[0] ? "." : "", *k);
        }
        (void) n;
        return 0;
}

/* An integer member within [min, max]. */
static int get_int(struct json_object *o, const char *key, const char *field, int64_t min, int64_t max, int64_t *ret,
                   MigRecordError *err) {
        struct json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return fail(err, field, "%s must be an integer", field);
        x = json_object_get_int64(v);
        /* json-c keeps integers above INT64_MAX as unsigned and saturates
         * the signed read: such a value is out of every range here. */
        if ((x == INT64_MAX && json_object_get_uint64(v) > (uint64_t) INT64_MAX) || x < min || x > max)
                return fail(err, field, "%s is out of range (%" PRId64 "..%" PRId64 ")", field, min, max);
        *ret = x;
        return 0;
}

static int read_spec(struct json_object *o, CreditSpec *ret, MigRecordError *err) {
        static const char *const keys[] = { "vcpus", "baseline_ppm", "cap_usec", "launch_usec", "mode", NULL };
        struct json_object *mode;
        const char *bad = NULL;
        int64_t x;
        int r, m;

        r = check_members(o, keys, "spec", err);
        if (r < 0)
                return r;
        if ((r = get_int(o, "vcpus", "spec.vcpus", 1, CREDIT_MAX_VCPUS, &x, err)) < 0)
                return r;
        ret->vcpus = (uint32_t) x;
        if ((r = get_int(o, "baseline_ppm", "spec.baseline_ppm", 0, CREDIT_PPM, &x, err)) < 0)
                return r;
        ret->baseline_ppm = (uint32_t) x;
        if ((r = get_int(o, "cap_usec", "spec.cap_usec", 0, CREDIT_AMOUNT_MAX, &ret->cap_usec, err)) < 0 ||
            (r = get_int(o, "launch_usec", "spec.launch_usec", 0, CREDIT_AMOUNT_MAX, &ret->launch_usec, err)) < 0)
                return r;
        (void) json_object_object_get_ex(o, "mode", &mode);
        m = json_object_is_type(mode, json_type_string) ? credit_mode_from_string(json_object_get_string(mode))
                                                       : -EINVAL;
        if (m < 0)
                return fail(err, "spec.mode", "spec.mode must be \"standard\" or \"unlimited\"");
        ret->mode = (CreditMode) m;
        if (credit_spec_validate(ret, &bad) < 0)
                return fail(err, "spec", "spec is not valid (%s)", bad ? bad : "?");
        return 0;
}

static int read_ledger(struct json_object *o, const CreditSpec *spec, CreditLedger *ret, MigRecordError *err) {
        static const char *const keys[] = { "balance_usec",   "launch_usec",    "surplus_usec",   "charged_usec",
                                            "earned_usec",    "spent_usec",     "forfeited_usec", "overdraft_usec",
                                            "debt_usec",      "adjusted_usec",  "earn_remainder", "generation",
                                            NULL };
        const int64_t big = CREDIT_AMOUNT_MAX;
        int64_t u[6];
        int r;

        r = check_members(o, keys, "ledger", err);
        if (r < 0)
                return r;
        if ((r = get_int(o, "balance_usec", "ledger.balance_usec", 0, credit_spec_cap(spec), &ret->balance_usec,
                         err)) < 0 ||
            (r = get_int(o, "launch_usec", "ledger.launch_usec", 0, big, &ret->launch_usec, err)) < 0 ||
            (r = get_int(o, "surplus_usec", "ledger.surplus_usec", 0, big, &ret->surplus_usec, err)) < 0 ||
            (r = get_int(o, "charged_usec", "ledger.charged_usec", 0, big, &ret->charged_usec, err)) < 0 ||
            (r = get_int(o, "debt_usec", "ledger.debt_usec", 0, big, &ret->debt_usec, err)) < 0 ||
            (r = get_int(o, "adjusted_usec", "ledger.adjusted_usec", -big, big, &ret->adjusted_usec, err)) < 0 ||
            (r = get_int(o, "earned_usec", "ledger.earned_usec", 0, INT64_MAX, &u[0], err)) < 0 ||
            (r = get_int(o, "spent_usec", "ledger.spent_usec", 0, INT64_MAX, &u[1], err)) < 0 ||
            (r = get_int(o, "forfeited_usec", "ledger.forfeited_usec", 0, INT64_MAX, &u[2], err)) < 0 ||
            (r = get_int(o, "overdraft_usec", "ledger.overdraft_usec", 0, INT64_MAX, &u[3], err)) < 0 ||
            (r = get_int(o, "earn_remainder", "ledger.earn_remainder", 0, 999999, &u[4], err)) < 0 ||
            (r = get_int(o, "generation", "ledger.generation", 0, INT64_MAX, &u[5], err)) < 0)
                return r;
        ret->earned_usec = (uint64_t) u[0];
        ret->spent_usec = (uint64_t) u[1];
        ret->forfeited_usec = (uint64_t) u[2];
        ret->overdraft_usec = (uint64_t) u[3];
        ret->earn_remainder = (uint64_t) u[4];
        ret->generation = (uint64_t) u[5];
        return 0;
}

int mig_record_from_json(struct json_object *o, MigRecord *ret, MigRecordError *err) {
        static const char *const keys[] = { "version", "vm", "epoch", "frozen_at_usec", "source", "spec", "ledger",
                                            NULL };
        struct json_object *v;
        MigRecord rec = { 0 };
        const char *s;
        int64_t x;
        int r;

        r = check_members(o, keys, "", err);
        if (r < 0)
                return r;
        if ((r = get_int(o, "version", "version", 0, INT32_MAX, &x, err)) < 0)
                return r;
        if (x != MIG_RECORD_VERSION)
                return fail(err, "version", "record version %" PRId64 " is not one this vmmgr reads (%d)", x,
                            MIG_RECORD_VERSION);
        (void) json_object_object_get_ex(o, "vm", &v);
        if (!json_object_is_type(v, json_type_string) || vm_id_parse(json_object_get_string(v), &rec.vm) < 0)
                return fail(err, "vm", "vm must be a VM UUID");
        if ((r = get_int(o, "epoch", "epoch", 1, INT64_MAX, &x, err)) < 0)
                return r;
        rec.epoch = (uint64_t) x;
        if ((r = get_int(o, "frozen_at_usec", "frozen_at_usec", 0, INT64_MAX, &x, err)) < 0)
                return r;
        rec.frozen_at_usec = (uint64_t) x;
        (void) json_object_object_get_ex(o, "source", &v);
        s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (!s || strlen(s) >= sizeof(rec.source))
                return fail(err, "source", "source must be a string of at most %zu bytes", sizeof(rec.source) - 1);
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return fail(err, "source", "source holds a control character");
        strcpy(rec.source, s);
        (void) json_object_object_get_ex(o, "spec", &v);
        if ((r = read_spec(v, &rec.spec, err)) < 0)
                return r;
        (void) json_object_object_get_ex(o, "ledger", &v);
        if ((r = read_ledger(v, &rec.spec, &rec.ledger, err)) < 0)
                return r;
        *ret = rec;
        return 0;
}

int mig_record_from_text(const char *text, MigRecord *ret, MigRecordError *err) {
        struct json_tokener *tok;
        struct json_object *o;
        size_t len;
        int r;

        if (!text)
                return fail(err, NULL, "no record");
        len = strlen(text);
        if (len > 64 * 1024)
                return fail(err, NULL, "a record is never this long (%zu bytes)", len);
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) < len) {
                /* Trailing whitespace is fine; anything else is not JSON. */
                size_t end = o ? json_tokener_get_parse_end(tok) : 0;
                bool only_space = o != NULL;

                for (size_t i = end; only_space && i < len; i++)
                        only_space = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
                if (!only_space) {
                        json_object_put(o);
                        json_tokener_free(tok);
                        return fail(err, NULL, "the record is not one JSON object");
                }
        }
        json_tokener_free(tok);
        r = mig_record_from_json(o, ret, err);
        json_object_put(o);
        return r;
}
