/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/json-io.c - the API's objects rendered with json-c (json-io.h).
 */
#include "vmmgr/api/json-io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "migration/record.h"

/* service.h declares it for both sides of the contract; it lives here
 * because the HTTP layer, the daemon and the tests' fake service all free
 * event arrays, and this is the one file they all link. */
void service_events_free(ServiceEvent *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                free(e[i].detail_json);
        free(e);
}

/* json_object_object_add() takes ownership even when it fails, so a NULL
 * value (out of memory) is only noticed by the caller's final check: each
 * helper returns false once anything failed, and callers check once. */
static bool add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return false;
        return json_object_object_add(o, key, v) == 0;
}

static bool add_str_or_null(struct json_object *o, const char *key, const char *s) {
        if (!s || !*s)
                return json_object_object_add(o, key, NULL) == 0;
        return add(o, key, json_object_new_string(s));
}

static bool add_credits_str(struct json_object *o, const char *key, int64_t usec) {
        char buf[32];

        if (credit_format(buf, sizeof buf, usec) < 0)
                return false;
        return add(o, key, json_object_new_string(buf));
}

int json_io_format_time(char *buf, size_t size, uint64_t t, bool usec) {
        uint64_t sec = usec ? t / USEC_PER_SEC : t;
        time_t tt = (time_t) sec;
        struct tm tm;
        char date[32];
        int n;

        if ((uint64_t) tt != sec || !gmtime_r(&tt, &tm))
                return -ERANGE;
        if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -ERANGE;
        if (usec)
                n = snprintf(buf, size, "%s.%06" PRIu64 "Z", date, t % USEC_PER_SEC);
        else
                n = snprintf(buf, size, "%sZ", date);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

static bool add_time(struct json_object *o, const char *key, uint64_t t, bool usec) {
        char buf[64];

        if (json_io_format_time(buf, sizeof buf, t, usec) < 0)
                return json_object_object_add(o, key, NULL) == 0;
        return add(o, key, json_object_new_string(buf));
}

struct json_object *json_io_vm(const ServiceVm *vm) {
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "uuid", json_object_new_string(vm->id.str));
        ok = ok && add_str_or_null(o, "qmp", vm->qmp_path);
        ok = ok && add(o, "source", json_object_new_string(vm->libvirt_domain[0] ? "libvirt" : "qmp"));
        ok = ok && add_str_or_null(o, "libvirt_domain", vm->libvirt_domain);
        ok = ok && add_str_or_null(o, "class", vm->class_name);
        if (vm->pid > 0)
                ok = ok && add(o, "pid", json_object_new_int64(vm->pid));
        else
                ok = ok && json_object_object_add(o, "pid", NULL) == 0;
        ok = ok && add(o, "connected", json_object_new_boolean(vm->connected));
        ok = ok && add(o, "link", json_object_new_string(vm->link ? vm->link : (vm->connected ? "bound" : "down")));
        ok = ok && add_str_or_null(o, "link_error", vm->link_error);
        ok = ok && add(o, "run_state", json_object_new_string(vm->run_state[0] ? vm->run_state : "unknown"));
        ok = ok && add(o, "vcpus", json_object_new_int64(vm->n_vcpus));
        ok = ok && add(o, "iothreads", json_object_new_int64(vm->n_iothreads));
        ok = ok && add_time(o, "registered_at", vm->registered_at_unix, false);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* The baseline as a number with its exact decimal text ("0.2", not
 * json-c's default "%.17g" rendering "0.20000000000000001"). */
static struct json_object *baseline_to_json(uint32_t ppm) {
        char buf[32];
        size_t len;

        snprintf(buf, sizeof buf, "%" PRIu32 ".%06" PRIu32, ppm / CREDIT_PPM, ppm % CREDIT_PPM);
        len = strlen(buf);
        while (buf[len - 1] == '0')
                buf[--len] = '\0';
        if (buf[len - 1] == '.')
                buf[--len] = '\0';
        return json_object_new_double_s((double) ppm / CREDIT_PPM, buf);
}

static struct json_object *spec_to_json(const CreditSpec *s) {
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "vcpus", json_object_new_int64(s->vcpus));
        ok = ok && add(o, "baseline", baseline_to_json(s->baseline_ppm));
        /* The effective cap: 0 in a spec means "24 h of earnings", and a
         * client wants the number, not the convention. */
        ok = ok && add(o, "cap_usec", json_object_new_int64(credit_spec_cap(s)));
        ok = ok && add(o, "launch_usec", json_object_new_int64(s->launch_usec));
        ok = ok && add(o, "mode", json_object_new_string(credit_mode_to_string(s->mode)));
        ok = ok && add(o, "earn_usec_per_sec", json_object_new_int64(credit_earn_per_sec(s)));
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct json_object *json_io_credits(const ServiceCredits *c) {
        const CreditLedger *l = &c->ledger;
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "uuid", json_object_new_string(c->id.str));
        ok = ok && add(o, "bank", json_object_new_string(c->bank ? c->bank : "emulated"));
        ok = ok && add(o, "state", json_object_new_string(c->state ? c->state : "baseline"));
        ok = ok && add_str_or_null(o, "class", c->class_name);
        ok = ok && add(o, "spec", spec_to_json(&c->spec));
        ok = ok && add(o, "balance_usec", json_object_new_int64(l->balance_usec));
        ok = ok && add(o, "launch_usec", json_object_new_int64(l->launch_usec));
        ok = ok && add(o, "available_usec", json_object_new_int64(credit_ledger_available(l)));
        ok = ok && add(o, "earned_usec", json_object_new_uint64(l->earned_usec));
        ok = ok && add(o, "spent_usec", json_object_new_uint64(l->spent_usec));
        ok = ok && add(o, "surplus_usec", json_object_new_int64(l->surplus_usec));
        ok = ok && add(o, "charged_usec", json_object_new_int64(l->charged_usec));
        ok = ok && add(o, "debt_usec", json_object_new_int64(l->debt_usec));
        ok = ok && add(o, "overdraft_usec", json_object_new_uint64(l->overdraft_usec));
        ok = ok && add(o, "forfeited_usec", json_object_new_uint64(l->forfeited_usec));
        ok = ok && add(o, "adjusted_usec", json_object_new_int64(l->adjusted_usec));
        ok = ok && add(o, "throttled_usec", json_object_new_uint64(c->throttled_usec));
        ok = ok && add(o, "usage_usec", json_object_new_uint64(c->usage_usec));
        if (c->quota_usec == CREDIT_QUOTA_UNLIMITED)
                ok = ok && json_object_object_add(o, "quota_usec", NULL) == 0;
        else
                ok = ok && add(o, "quota_usec", json_object_new_uint64(c->quota_usec));
        ok = ok && add(o, "period_usec", json_object_new_uint64(c->period_usec));
        ok = ok && add(o, "generation", json_object_new_uint64(l->generation));
        ok = ok && add_credits_str(o, "balance_credits", l->balance_usec);
        ok = ok && add_credits_str(o, "launch_credits", l->launch_usec);
        /* earned_usec is unsigned; beyond INT64_MAX it cannot be formatted,
         * and 2^63 usec is 290,000 years of one vCPU. */
        ok = ok && add_credits_str(o, "earned_credits",
                                   l->earned_usec > INT64_MAX ? INT64_MAX : (int64_t) l->earned_usec);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct json_object *json_io_event(const ServiceEvent *e) {
        struct json_object *o = json_object_new_object(), *detail = NULL;
        bool ok;

        if (!o)
                return NULL;
        if (e->detail_json && *e->detail_json) {
                /* The daemon wrote this text; a detail that does not parse is
                 * still shown, as a string, rather than hiding the event. */
                detail = json_tokener_parse(e->detail_json);
                if (!detail)
                        detail = json_object_new_string(e->detail_json);
                if (!detail) {
                        json_object_put(o);
                        return NULL;
                }
        }
        ok = add(o, "seq", json_object_new_int64(e->seq));
        ok = ok && add_time(o, "time", e->time_unix_usec, true);
        ok = ok && add(o, "time_usec", json_object_new_uint64(e->time_unix_usec));
        ok = ok && add_str_or_null(o, "vm", e->vm);
        ok = ok && add(o, "kind", json_object_new_string(e->kind));
        if (detail)
                ok = ok && add(o, "detail", detail);
        else
                ok = ok && add(o, "detail", json_object_new_object());
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct json_object *json_io_error(int code, const char *message, const char *field) {
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "code", json_object_new_int(code));
        ok = ok && add(o, "message", json_object_new_string(message ? message : ""));
        ok = ok && add_str_or_null(o, "field", field);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

char *json_io_to_text(struct json_object *o) {
        size_t len;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                          &len);
        char *buf;

        if (!s)
                return NULL;
        buf = malloc(len + 2);
        if (!buf)
                return NULL;
        memcpy(buf, s, len);
        buf[len] = '\n';
        buf[len + 1] = '\0';
        return buf;
}

int json_io_add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v = json_object_new_string(value ? value : "");

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_io_add_int(struct json_object *o, const char *key, int64_t value) {
        struct json_object *v = json_object_new_int64(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

const char *json_io_plain(struct json_object *o) {
        if (!o)
                return "{}";
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        return t ? t : "{}";
}

/* ---- a VM's memory report ---------------------------------------------------- */

static struct json_object *size_or_max(uint64_t v) {
        return v == UINT64_MAX ? json_object_new_string("max") : json_object_new_uint64(v);
}

/* Keys: docs/memory.md ("API"). */
struct json_object *json_io_memory(const ServiceMemory *m) {
        struct json_object *o = json_object_new_object(), *x;
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "vm", json_object_new_string(m->id.str));
        ok = ok && add(o, "priority", json_object_new_uint64(m->priority));
        if (m->gpu_pci[0]) {
                x = json_object_new_object();
                ok = ok && add(o, "gpu", x);
                ok = ok && x && add(x, "pci", json_object_new_string(m->gpu_pci));
                ok = ok && x && add(x, "max", size_or_max(m->gpu_max));
                ok = ok && x && add(x, "soft", size_or_max(m->gpu_soft));
                ok = ok && x && add(x, "low", json_object_new_uint64(m->gpu_low));
                ok = ok && x && add(x, "min", json_object_new_uint64(m->gpu_min));
        } else
                ok = ok && json_object_object_add(o, "gpu", NULL) == 0;
        ok = ok && add(o, "managed", json_object_new_boolean(m->managed));
        if (!m->managed)
                ok = ok && add(o, "reason", json_object_new_string(m->unmanaged_reason ? m->unmanaged_reason : "?"));
        else {
                ok = ok && add(o, "ram", json_object_new_uint64(m->ram));
                ok = ok && add(o, "passthrough", json_object_new_boolean(m->passthrough));
                ok = ok && add(o, "current", json_object_new_uint64(m->current));
                ok = ok && add(o, "swap_current", json_object_new_uint64(m->swap_current));
                x = json_object_new_object();
                ok = ok && add(o, "limits", x) && x;
                ok = ok && add(x, "max", size_or_max(m->max)) && add(x, "high", size_or_max(m->high)) &&
                     add(x, "low", size_or_max(m->low)) && add(x, "min", size_or_max(m->min)) &&
                     add(x, "swap_max", size_or_max(m->swap_max)) &&
                     add(x, "wmark_high", json_object_new_uint64(m->wmark_high)) &&
                     add(x, "wmark_low", json_object_new_uint64(m->wmark_low)) &&
                     add(x, "floor", json_object_new_uint64(m->floor));
                x = json_object_new_object();
                ok = ok && add(o, "headroom", x) && x;
                ok = ok && add(x, "grow", json_object_new_uint64(m->headroom_grow)) &&
                     add(x, "limit", json_object_new_uint64(m->headroom_limit)) &&
                     add(x, "reclaimable", json_object_new_uint64(m->headroom_reclaimable)) &&
                     add(x, "balloon", json_object_new_uint64(m->headroom_balloon));
                x = json_object_new_object();
                ok = ok && add(o, "reclaim", x) && x;
                ok = ok && add(x, "active", json_object_new_boolean(m->reclaiming)) &&
                     add(x, "requests", json_object_new_uint64(m->reclaim_requests)) &&
                     add(x, "reclaimed", json_object_new_uint64(m->reclaimed)) &&
                     add(x, "busy_usec", json_object_new_uint64(m->reclaim_busy_usec)) &&
                     add(x, "partial", json_object_new_uint64(m->reclaim_partial)) &&
                     add(x, "errors", json_object_new_uint64(m->reclaim_errors)) &&
                     add(x, "asked_background", json_object_new_uint64(m->asked_background)) &&
                     add(x, "asked_proactive", json_object_new_uint64(m->asked_proactive)) &&
                     add(x, "asked_host", json_object_new_uint64(m->asked_host));
                ok = ok && add(o, "throttled", json_object_new_boolean(m->throttled));
                ok = ok && add(o, "pressure_some_avg10_pct", json_object_new_double(m->pressure_some_avg10_pct));
                x = json_object_new_object();
                ok = ok && add(o, "balloon", x) && x;
                ok = ok && add(x, "present", json_object_new_boolean(m->balloon_present)) &&
                     add(x, "target", json_object_new_uint64(m->balloon_target)) &&
                     add(x, "actual", json_object_new_uint64(m->balloon_actual));
                if (m->has_dmem) {
                        x = json_object_new_object();
                        ok = ok && add(o, "dmem", x) && x;
                        ok = ok && add(x, "gpu", json_object_new_string(m->dmem_gpu)) &&
                             add(x, "demoted_regions", json_object_new_uint64(m->dmem_demoted_regions));
                }
                if (m->last_error < 0)
                        ok = ok && add(o, "last_error", json_object_new_string(strerror(-m->last_error)));
        }
        if (!m->has_delays)
                ok = ok && json_object_object_add(o, "delays", NULL) == 0;
        else {
                x = json_object_new_object();
                ok = ok && add(o, "delays", x) && x;
                for (size_t i = 0; ok && i < _SERVICE_ROLE_MAX; i++) {
                        const ServiceRoleDelays *dl = &m->delays[i];
                        struct json_object *r;

                        if (!dl->known) {
                                ok = json_object_object_add(x, service_role_name(i), NULL) == 0;
                                continue;
                        }
                        r = json_object_new_object();
                        ok = add(x, service_role_name(i), r) && r && add(r, "threads", json_object_new_uint64(dl->threads)) &&
                             add(r, "cpu_delay_ns", json_object_new_uint64(dl->cpu_delay_ns)) &&
                             add(r, "direct_reclaim_delay_ns", json_object_new_uint64(dl->direct_reclaim_delay_ns)) &&
                             add(r, "thrashing_delay_ns", json_object_new_uint64(dl->thrashing_delay_ns)) &&
                             add(r, "swapin_delay_ns", json_object_new_uint64(dl->swapin_delay_ns)) &&
                             add(r, "delayacct", json_object_new_boolean(dl->delayacct));
                }
        }
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct json_object *json_io_migration(const ServiceMigration *m) {
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "uuid", json_object_new_string(m->id.str));
        ok = ok && add(o, "role", json_object_new_string(m->role ? m->role : "owner"));
        ok = ok && add(o, "epoch", json_object_new_uint64(m->epoch));
        ok = ok && add(o, "outgoing", json_object_new_boolean(m->outgoing));
        ok = ok && add_str_or_null(o, "destination", m->destination);
        if (m->has_record)
                ok = ok && add(o, "record", mig_record_to_json(&m->record));
        else
                ok = ok && json_object_object_add(o, "record", NULL) == 0;
        ok = ok && add(o, "sends", json_object_new_uint64(m->sends));
        ok = ok && add_str_or_null(o, "last_error", m->last_error);
        ok = ok && add(o, "freeze_cost_usec", json_object_new_uint64(m->freeze_cost_usec));
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct json_object *json_io_migration_answer(const ServiceMigrationAnswer *a) {
        struct json_object *o = json_object_new_object();
        bool ok;

        if (!o)
                return NULL;
        ok = add(o, "reply", json_object_new_string(a->reply ? a->reply : "held"));
        ok = ok && add(o, "epoch", json_object_new_uint64(a->epoch));
        ok = ok && add_str_or_null(o, "reason", a->reason);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int json_io_add_ledger_summary(struct json_object *o, const char *key, const CreditLedger *l) {
        struct json_object *x = json_object_new_object();
        bool ok;

        if (!x)
                return -ENOMEM;
        ok = add(x, "balance_usec", json_object_new_int64(l->balance_usec));
        ok = ok && add(x, "launch_usec", json_object_new_int64(l->launch_usec));
        ok = ok && add(x, "surplus_usec", json_object_new_int64(l->surplus_usec));
        ok = ok && add(x, "debt_usec", json_object_new_int64(l->debt_usec));
        ok = ok && add(x, "available_usec", json_object_new_int64(credit_ledger_available(l)));
        ok = ok && add(x, "spent_usec", json_object_new_int64((int64_t) l->spent_usec));
        ok = ok && add(x, "earned_usec", json_object_new_int64((int64_t) l->earned_usec));
        if (!ok || json_object_object_add(o, key, x) < 0) {
                json_object_put(x);
                return -ENOMEM;
        }
        return 0;
}
