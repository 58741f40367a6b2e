/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/metrics.c - GET /metrics: the service's values (ServiceMetrics)
 * and this layer's own counters in Prometheus's text exposition format,
 * by Prometheus's conventions (docs/metrics.md): one prefix (vmmgr_), base
 * units (seconds, bytes; CPU credits are CPU-seconds), _total on every
 * counter, HELP and TYPE on every family.
 *
 * The output is stable: every family is always there, in the order of the
 * tables below, even with no sample (memory families where vmmgr does not
 * manage memory), and within a family the VMs come in registration order.
 * Labels carry only validated VM ids and fixed words (states, roles,
 * reasons), plus the class name in vmmgr_vm_info, so their number is
 * bounded by the VMs'.
 *
 * Numbers are written by hand, not by printf: a scrape of 1,000 VMs is
 * about 40,000 samples.  Microseconds and nanoseconds become seconds as
 * exact decimals ("1.5", "0.000001"), never rounded through a double.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "vmmgr/api/api-internal.h"

#ifndef VMMGR_VERSION
#define VMMGR_VERSION "unknown"
#endif

/* ---- the text ------------------------------------------------------------ */

typedef struct Text {
        char *buf;
        size_t len, size;
        bool oom;
} Text;

static bool text_reserve(Text *t, size_t n) {
        size_t size;
        char *b;

        if (t->oom)
                return false;
        if (t->size - t->len > n)
                return true;
        size = MAX(t->size * 2, t->len + n + 4096);
        b = realloc(t->buf, size);
        if (!b) {
                t->oom = true;
                return false;
        }
        t->buf = b;
        t->size = size;
        return true;
}

static void text_put(Text *t, const char *s, size_t n) {
        if (!text_reserve(t, n))
                return;
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = '\0';
}

static void text_puts(Text *t, const char *s) {
        text_put(t, s, strlen(s));
}

/* A sample's value: mag / 10^decimals, negative when neg. */
typedef struct Num {
        uint64_t mag;
        unsigned decimals; /* 0..9 */
        bool neg;
} Num;

static Num num_u(uint64_t v, unsigned decimals) {
        return (Num){ .mag = v, .decimals = decimals };
}

static Num num_i(int64_t v, unsigned decimals) {
        /* 0 - (uint64_t) v: |v| without overflow, INT64_MIN included */
        return (Num){ .mag = v < 0 ? 0 - (uint64_t) v : (uint64_t) v, .decimals = decimals, .neg = v < 0 };
}

static Num num_bool(bool b) {
        return num_u(b, 0);
}

/* "12", "1.5", "-0.000001": exact, no trailing zeros. */
static void text_num(Text *t, Num v) {
        char tmp[48], *end = tmp + sizeof(tmp), *p = end;
        uint64_t scale = 1, whole, frac;
        unsigned digits = v.decimals;

        for (unsigned i = 0; i < v.decimals; i++)
                scale *= 10;
        whole = v.mag / scale;
        frac = v.mag % scale;
        if (frac) {
                while (frac % 10 == 0) {
                        frac /= 10;
                        digits--;
                }
                for (unsigned i = 0; i < digits; i++, frac /= 10)
                        *--p = (char) ('0' + frac % 10);
                *--p = '.';
        }
        do
                *--p = (char) ('0' + whole % 10);
        while ((whole /= 10) > 0);
        if (v.neg && v.mag)
                *--p = '-';
        text_put(t, p, (size_t) (end - p));
}

/* A label value between quotes: \, " and newlines escaped. */
static void text_label_value(Text *t, const char *s) {
        for (const char *p = s; *p; p++) {
                size_t n = strcspn(p, "\\\"\n");

                text_put(t, p, n);
                p += n;
                if (!*p)
                        break;
                text_puts(t, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n");
        }
}

static void family(Text *t, const char *name, const char *type, const char *help) {
        text_puts(t, "# HELP ");
        text_puts(t, name);
        text_put(t, " ", 1);
        text_puts(t, help);
        text_puts(t, "\n# TYPE ");
        text_puts(t, name);
        text_put(t, " ", 1);
        text_puts(t, type);
        text_put(t, "\n", 1);
}

/* name{vm="ID"[,label="value"]} v */
static void vm_sample(Text *t, const char *name, const ServiceVmMetrics *m, const char *label, const char *value,
                      Num v) {
        text_puts(t, name);
        text_puts(t, "{vm=\"");
        text_puts(t, m->credits.id.str);
        if (label) {
                text_puts(t, "\",");
                text_puts(t, label);
                text_puts(t, "=\"");
                text_label_value(t, value);
        }
        text_puts(t, "\"} ");
        text_num(t, v);
        text_put(t, "\n", 1);
}

/* name v (no labels) */
static void sample(Text *t, const char *name, Num v) {
        text_puts(t, name);
        text_put(t, " ", 1);
        text_num(t, v);
        text_put(t, "\n", 1);
}

/* ---- per-VM families ----------------------------------------------------- */

/* A VM's value in one family; false: no sample for this VM. */
typedef bool (*VmValue)(const ServiceVmMetrics *m, Num *ret);

#define VALUE(fn, cond, expr)                                                                                          \
        static bool fn(const ServiceVmMetrics *m, Num *ret) {                                                          \
                if (!(cond))                                                                                           \
                        return false;                                                                                  \
                *ret = (expr);                                                                                         \
                return true;                                                                                           \
        }

#define LEDGER(x) (m->credits.ledger.x)

VALUE(v_vcpus, true, num_u(m->credits.spec.vcpus, 0))
VALUE(v_baseline, true, num_u(m->credits.spec.baseline_ppm, 6))
VALUE(v_cap, true, num_i(credit_spec_cap(&m->credits.spec), 6))
VALUE(v_available, true, num_i(credit_ledger_available(&m->credits.ledger), 6))
VALUE(v_balance, true, num_i(LEDGER(balance_usec), 6))
VALUE(v_launch, true, num_i(LEDGER(launch_usec), 6))
VALUE(v_surplus, true, num_i(LEDGER(surplus_usec), 6))
VALUE(v_debt, true, num_i(LEDGER(debt_usec), 6))
VALUE(v_adjusted, true, num_i(LEDGER(adjusted_usec), 6))
VALUE(v_earned, true, num_u(LEDGER(earned_usec), 6))
VALUE(v_spent, true, num_u(LEDGER(spent_usec), 6))
VALUE(v_charged, true, num_i(LEDGER(charged_usec), 6))
VALUE(v_forfeited, true, num_u(LEDGER(forfeited_usec), 6))
VALUE(v_overdraft, true, num_u(LEDGER(overdraft_usec), 6))
VALUE(v_usage, true, num_u(m->credits.usage_usec, 6))
VALUE(v_throttled, true, num_u(m->credits.throttled_usec, 6))
VALUE(v_mem_managed, true, num_bool(m->mem_managed))
VALUE(v_mem_current, m->mem_known, num_u(m->mem_current, 0))
VALUE(v_mem_max, m->mem_known && m->mem_max != UINT64_MAX, num_u(m->mem_max, 0))
VALUE(v_mem_swap, m->mem_known, num_u(m->mem_swap, 0))
VALUE(v_mem_reclaimed, m->mem_known, num_u(m->mem_reclaimed, 0))
VALUE(v_mem_requests, m->mem_known, num_u(m->mem_reclaim_requests, 0))
VALUE(v_mem_partial, m->mem_known, num_u(m->mem_reclaim_partial, 0))
VALUE(v_mem_errors, m->mem_known, num_u(m->mem_reclaim_errors, 0))
VALUE(v_mem_reclaiming, m->mem_known, num_bool(m->mem_reclaiming))
VALUE(v_mem_throttled, m->mem_known, num_bool(m->mem_throttled))
VALUE(v_mem_some, m->mem_known, num_u(m->mem_pressure_some_usec, 6))
VALUE(v_mem_full, m->mem_known, num_u(m->mem_pressure_full_usec, 6))

#undef LEDGER
#undef VALUE

typedef struct VmFamily {
        const char *name, *type, *help;
        VmValue value;
} VmFamily;

/* The credit families, in their order on the page. */
static const VmFamily credit_table[] = {
        { "vmmgr_vm_vcpus", "gauge", "vCPUs of the VM (its credit spec's)", v_vcpus },
        { "vmmgr_credit_baseline_ratio", "gauge",
          "Baseline per vCPU (0..1): the VM earns baseline_ratio * vcpus CPU-seconds per second", v_baseline },
        { "vmmgr_credit_cap_seconds", "gauge", "Bank cap (CPU-seconds)", v_cap },
        { "vmmgr_credit_available_seconds", "gauge",
          "Credits the VM may still spend before it is held to baseline: launch + balance - debt (CPU-seconds)",
          v_available },
        { "vmmgr_credit_balance_seconds", "gauge", "Banked credits, 0..cap (CPU-seconds)", v_balance },
        { "vmmgr_credit_launch_seconds", "gauge", "Launch credits left (CPU-seconds)", v_launch },
        { "vmmgr_credit_surplus_seconds", "gauge",
          "Unlimited mode: surplus spent beyond the bank, to repay (CPU-seconds)", v_surplus },
        { "vmmgr_credit_debt_seconds", "gauge", "Standard mode: overdraft not yet repaid by earnings (CPU-seconds)",
          v_debt },
        { "vmmgr_credit_adjusted_seconds", "gauge",
          "Net operator injections and transfers in (+) or out (-) (CPU-seconds)", v_adjusted },
        { "vmmgr_credit_earned_seconds_total", "counter", "Credits earned (CPU-seconds)", v_earned },
        { "vmmgr_credit_spent_seconds_total", "counter", "Credits spent: all CPU the VM used (CPU-seconds)", v_spent },
        { "vmmgr_credit_charged_seconds_total", "counter",
          "Unlimited mode: surplus beyond 24 h of earnings, charged (CPU-seconds)", v_charged },
        { "vmmgr_credit_forfeited_seconds_total", "counter", "Earnings lost at the cap (CPU-seconds)", v_forfeited },
        { "vmmgr_credit_overdraft_seconds_total", "counter",
          "Standard mode: use beyond what the VM had, an enforcement error (CPU-seconds)", v_overdraft },
};

static const VmFamily cpu_table[] = {
        { "vmmgr_cpu_usage_seconds_total", "counter", "CPU used by the VM's vCPU threads (CPU-seconds)", v_usage },
        { "vmmgr_cpu_throttled_seconds_total", "counter", "Time the VM's vCPU group was throttled", v_throttled },
};

static const VmFamily memory_table[] = {
        { "vmmgr_memory_managed", "gauge", "1 where vmmgr manages the VM's memory", v_mem_managed },
        { "vmmgr_memory_current_bytes", "gauge", "memory.current of the VM", v_mem_current },
        { "vmmgr_memory_max_bytes", "gauge", "memory.max of the VM (no sample: no limit)", v_mem_max },
        { "vmmgr_memory_swap_bytes", "gauge", "memory.swap.current of the VM", v_mem_swap },
        { "vmmgr_memory_reclaiming", "gauge", "1 while background reclaim runs for the VM (above its high watermark)",
          v_mem_reclaiming },
        { "vmmgr_memory_reclaim_throttled", "gauge",
          "1 while the VM's emulator and io threads are throttled for reclaim to catch up", v_mem_throttled },
        { "vmmgr_memory_reclaimed_bytes_total", "counter", "Reclaimed by vmmgr's threads for the VM", v_mem_reclaimed },
        { "vmmgr_memory_reclaim_requests_total", "counter", "Reclaim requests vmmgr's threads ran for the VM",
          v_mem_requests },
        { "vmmgr_memory_reclaim_partial_total", "counter", "Reclaim requests that got less than they asked",
          v_mem_partial },
        { "vmmgr_memory_reclaim_errors_total", "counter", "Reclaim requests that failed", v_mem_errors },
        { "vmmgr_memory_pressure_some_seconds_total", "counter",
          "Time some of the VM's tasks stalled on memory (PSI some)", v_mem_some },
        { "vmmgr_memory_pressure_full_seconds_total", "counter",
          "Time all of the VM's tasks stalled on memory (PSI full)", v_mem_full },
};

static void vm_families(Text *t, const ServiceMetrics *m, const VmFamily *table, size_t n) {
        for (size_t k = 0; k < n; k++) {
                family(t, table[k].name, table[k].type, table[k].help);
                for (size_t i = 0; i < m->n_vms; i++) {
                        Num v;

                        if (table[k].value(&m->vms[i], &v))
                                vm_sample(t, table[k].name, &m->vms[i], NULL, NULL, v);
                }
        }
}

/* name{vm,LABEL} 1 for the VM's value of LABEL, 0 for the others. */
static void vm_enum_family(Text *t, const ServiceMetrics *m, const char *name, const char *help, const char *label,
                           const char *const *values, size_t n_values, size_t offset) {
        family(t, name, "gauge", help);
        for (size_t i = 0; i < m->n_vms; i++) {
                const char *now = *(const char *const *) ((const char *) &m->vms[i] + offset);

                for (size_t k = 0; k < n_values; k++)
                        vm_sample(t, name, &m->vms[i], label, values[k], num_bool(now && strcmp(now, values[k]) == 0));
        }
}

static void vm_info(Text *t, const ServiceMetrics *m) {
        family(t, "vmmgr_vm_info", "gauge",
               "1 for each registered VM: its credit class (\"\" for a spec given directly), bank and mode");
        for (size_t i = 0; i < m->n_vms; i++) {
                const ServiceCredits *c = &m->vms[i].credits;

                text_puts(t, "vmmgr_vm_info{vm=\"");
                text_puts(t, c->id.str);
                text_puts(t, "\",class=\"");
                text_label_value(t, c->class_name);
                text_puts(t, "\",bank=\"");
                text_label_value(t, c->bank ? c->bank : "");
                text_puts(t, "\",mode=\"");
                text_label_value(t, credit_mode_to_string(c->spec.mode));
                text_puts(t, "\"} 1\n");
        }
}

static void credit_state_family(Text *t, const ServiceMetrics *m) {
        static const char *const states[] = { "bursting", "baseline", "throttled" };

        vm_enum_family(t, m, "vmmgr_credit_state",
                       "1 for the VM's credit state: bursting, baseline, or throttled (held at its baseline)", "state",
                       states, ARRAY_SIZE(states),
                       offsetof(ServiceVmMetrics, credits) + offsetof(ServiceCredits, state));
}

static void link_state_family(Text *t, const ServiceMetrics *m) {
        static const char *const links[] = { "bound", "connecting", "stalled", "down" };

        vm_enum_family(t, m, "vmmgr_link_state",
                       "1 for the state of vmmgrd's QMP link to the VM's QEMU: bound, connecting, stalled (QEMU "
                       "stopped answering) or down",
                       "state", links, ARRAY_SIZE(links), offsetof(ServiceVmMetrics, link));
}

/* The memory families with a label beside the VM's. */
static void memory_labelled(Text *t, const ServiceMetrics *m) {
        static const char *const reasons[] = { "background", "proactive", "host" };

        family(t, "vmmgr_memory_reclaim_requested_bytes_total", "counter",
               "Reclaim vmmgr asked for the VM, by reason: background (above its high watermark), proactive (cold "
               "memory), host (the host ceiling)");
        for (size_t i = 0; i < m->n_vms; i++) {
                const ServiceVmMetrics *v = &m->vms[i];
                const uint64_t asked[] = { v->mem_asked_background, v->mem_asked_proactive, v->mem_asked_host };

                for (size_t k = 0; v->mem_known && k < ARRAY_SIZE(reasons); k++)
                        vm_sample(t, "vmmgr_memory_reclaim_requested_bytes_total", v, "reason", reasons[k],
                                  num_u(asked[k], 0));
        }
        family(t, "vmmgr_thread_direct_reclaim_seconds_total", "counter",
               "Direct-reclaim stall of the VM's threads, by role (taskstats)");
        for (size_t i = 0; m->taskstats && i < m->n_vms; i++)
                for (size_t k = 0; k < _SERVICE_ROLE_MAX; k++)
                        if (m->vms[i].delays_known[k])
                                vm_sample(t, "vmmgr_thread_direct_reclaim_seconds_total", &m->vms[i], "role",
                                          service_role_name(k), num_u(m->vms[i].direct_reclaim_ns[k], 9));
}

/* ---- vmmgrd and the host ------------------------------------------------- */

/* A host memory gauge: its sample only where the host's memory is known. */
static void host_family(Text *t, const ServiceMetrics *m, const char *name, const char *help, uint64_t bytes) {
        family(t, name, "gauge", help);
        if (m->host_known)
                sample(t, name, num_u(bytes, 0));
}

static void daemon_families(Text *t, const ServiceMetrics *m) {
        family(t, "vmmgr_build_info", "gauge", "1, labelled with vmmgrd's version");
        text_puts(t, "vmmgr_build_info{version=\"");
        text_label_value(t, VMMGR_VERSION);
        text_puts(t, "\"} 1\n");
        family(t, "vmmgr_vms", "gauge", "Registered VMs");
        sample(t, "vmmgr_vms", num_u(m->n_vms, 0));
        family(t, "vmmgr_tick_interval_seconds", "gauge", "The credit tick's period");
        sample(t, "vmmgr_tick_interval_seconds", num_u(m->tick_interval_usec, 6));
        family(t, "vmmgr_ticks_total", "counter", "Credit ticks run");
        sample(t, "vmmgr_ticks_total", num_u(m->ticks, 0));
        family(t, "vmmgr_tick_cpu_seconds_total", "counter", "CPU time vmmgrd spent in credit ticks");
        sample(t, "vmmgr_tick_cpu_seconds_total", num_u(m->tick_cpu_nsec, 9));
        family(t, "vmmgr_tick_last_cpu_seconds", "gauge", "CPU time of the last credit tick");
        sample(t, "vmmgr_tick_last_cpu_seconds", num_u(m->last_tick_cpu_nsec, 9));
        family(t, "vmmgr_bank_looks_total", "counter", "Bank looks: usage reads and decisions, all VMs");
        sample(t, "vmmgr_bank_looks_total", num_u(m->bank_looks, 0));
        family(t, "vmmgr_bank_look_errors_total", "counter", "Bank looks that failed");
        sample(t, "vmmgr_bank_look_errors_total", num_u(m->tick_errors, 0));
        family(t, "vmmgr_ledger_commits_total", "counter", "Ledger batches written to the state database");
        sample(t, "vmmgr_ledger_commits_total", num_u(m->commits, 0));
        family(t, "vmmgr_ledger_commit_errors_total", "counter", "Ledger batches that could not be written");
        sample(t, "vmmgr_ledger_commit_errors_total", num_u(m->commit_errors, 0));

        family(t, "vmmgr_reclaim_pool_threads", "gauge", "vmmgr's reclaim threads running");
        sample(t, "vmmgr_reclaim_pool_threads", num_u(m->reclaim_threads, 0));
        family(t, "vmmgr_reclaim_pool_busy_seconds_total", "counter", "Time vmmgr's reclaim threads spent reclaiming");
        sample(t, "vmmgr_reclaim_pool_busy_seconds_total", num_u(m->reclaim_busy_usec, 6));
        host_family(t, m, "vmmgr_host_memory_total_bytes", "Host memory (MemTotal)", m->host_total);
        host_family(t, m, "vmmgr_host_memory_used_bytes", "Host memory in use (MemTotal - MemAvailable)", m->host_used);
        host_family(t, m, "vmmgr_host_memory_ceiling_bytes", "The host ceiling vmmgr keeps memory use under",
                    m->host_ceiling);
        host_family(t, m, "vmmgr_host_memory_shortfall_bytes",
                    "What the host plan needs back that neither reclaim nor balloons can give (0: none)",
                    m->host_shortfall);
}

int api_metrics_text(const ServiceMetrics *m, const ApiStats *s, char **ret) {
        Text t = { 0 };
        _cleanup_free_ char *api_text = NULL;
        int r;

        if (!text_reserve(&t, 4096 + m->n_vms * 4096))
                return -ENOMEM;
        vm_info(&t, m);
        link_state_family(&t, m);
        vm_families(&t, m, credit_table, ARRAY_SIZE(credit_table));
        credit_state_family(&t, m);
        vm_families(&t, m, cpu_table, ARRAY_SIZE(cpu_table));
        vm_families(&t, m, memory_table, ARRAY_SIZE(memory_table));
        memory_labelled(&t, m);
        daemon_families(&t, m);
        r = api_stats_to_prometheus(s, &api_text);
        if (r == 0)
                text_puts(&t, api_text);
        if (t.oom || r < 0) {
                free(t.buf);
                return -ENOMEM;
        }
        *ret = t.buf;
        return 0;
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
