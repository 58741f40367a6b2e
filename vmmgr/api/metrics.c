/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/metrics.c - GET /metrics: the service's values (ServiceMetrics)
 * and this layer's own counters in Prometheus's text exposition format.
 * Labels carry only validated VM ids and fixed words.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "vmmgr/api/api-internal.h"

static void credit_families(FILE *f, const ServiceMetrics *m) {
        static const struct {
                const char *name, *help;
                size_t offset;
                bool is_signed;
        } counters[] = {
#define L(x) offsetof(CreditLedger, x)
                { "vmmgr_credit_balance_usec", "Banked CPU credits (CPU-usec)", L(balance_usec), true },
                { "vmmgr_credit_launch_usec", "Launch credits left (CPU-usec)", L(launch_usec), true },
                { "vmmgr_credit_surplus_usec", "Unlimited-mode surplus to repay (CPU-usec)", L(surplus_usec), true },
                { "vmmgr_credit_charged_usec_total", "Surplus charged (CPU-usec)", L(charged_usec), true },
                { "vmmgr_credit_earned_usec_total", "Credits earned (CPU-usec)", L(earned_usec), false },
                { "vmmgr_credit_spent_usec_total", "CPU the VM used (CPU-usec)", L(spent_usec), false },
#undef L
        };
        static const char *const states[] = { "bursting", "baseline", "throttled" };

        for (size_t k = 0; k < ARRAY_SIZE(counters); k++) {
                fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", counters[k].name, counters[k].help, counters[k].name,
                        strstr(counters[k].name, "_total") ? "counter" : "gauge");
                for (size_t i = 0; i < m->n_vms; i++) {
                        const ServiceCredits *c = &m->vms[i].credits;
                        const char *base = (const char *) &c->ledger + counters[k].offset;

                        if (counters[k].is_signed)
                                fprintf(f, "%s{vm=\"%s\"} %" PRId64 "\n", counters[k].name, c->id.str,
                                        *(const int64_t *) base);
                        else
                                fprintf(f, "%s{vm=\"%s\"} %" PRIu64 "\n", counters[k].name, c->id.str,
                                        *(const uint64_t *) base);
                }
        }
        fputs("# HELP vmmgr_cpu_usage_usec_total CPU used by the VM's vCPU threads\n"
              "# TYPE vmmgr_cpu_usage_usec_total counter\n",
              f);
        for (size_t i = 0; i < m->n_vms; i++)
                fprintf(f, "vmmgr_cpu_usage_usec_total{vm=\"%s\"} %" PRIu64 "\n", m->vms[i].credits.id.str,
                        m->vms[i].credits.usage_usec);
        fputs("# HELP vmmgr_cpu_throttled_usec_total Time the vCPU group was throttled\n"
              "# TYPE vmmgr_cpu_throttled_usec_total counter\n",
              f);
        for (size_t i = 0; i < m->n_vms; i++)
                fprintf(f, "vmmgr_cpu_throttled_usec_total{vm=\"%s\"} %" PRIu64 "\n", m->vms[i].credits.id.str,
                        m->vms[i].credits.throttled_usec);
        fputs("# HELP vmmgr_credit_state 1 for the VM's current state\n# TYPE vmmgr_credit_state gauge\n", f);
        for (size_t i = 0; i < m->n_vms; i++)
                for (size_t k = 0; k < ARRAY_SIZE(states); k++)
                        fprintf(f, "vmmgr_credit_state{vm=\"%s\",state=\"%s\"} %d\n", m->vms[i].credits.id.str,
                                states[k], strcmp(m->vms[i].credits.state, states[k]) == 0);
}

static void daemon_families(FILE *f, const ServiceMetrics *m) {
        fprintf(f,
                "# HELP vmmgrd_tick_cpu_seconds_total CPU time spent in credit ticks\n"
                "# TYPE vmmgrd_tick_cpu_seconds_total counter\n"
                "vmmgrd_tick_cpu_seconds_total %.9f\n"
                "# HELP vmmgrd_last_tick_cpu_seconds CPU time of the last credit tick\n"
                "# TYPE vmmgrd_last_tick_cpu_seconds gauge\n"
                "vmmgrd_last_tick_cpu_seconds %.9f\n"
                "# HELP vmmgrd_bank_looks_total Bank looks (usage reads and decisions)\n"
                "# TYPE vmmgrd_bank_looks_total counter\n"
                "vmmgrd_bank_looks_total %" PRIu64 "\n"
                "# HELP vmmgrd_ledger_commits_total Ledger batch commits\n"
                "# TYPE vmmgrd_ledger_commits_total counter\n"
                "vmmgrd_ledger_commits_total %" PRIu64 "\n"
                "# HELP vmmgrd_vms Registered VMs\n# TYPE vmmgrd_vms gauge\nvmmgrd_vms %zu\n",
                (double) m->tick_cpu_nsec / 1e9, (double) m->last_tick_cpu_nsec / 1e9, m->bank_looks, m->commits,
                m->n_vms);
}

static void memory_families(FILE *f, const ServiceMetrics *m) {
        fputs("# HELP vmmgr_memory_managed 1 where vmmgr manages the VM's memory\n"
              "# TYPE vmmgr_memory_managed gauge\n",
              f);
        for (size_t i = 0; i < m->n_vms; i++)
                fprintf(f, "vmmgr_memory_managed{vm=\"%s\"} %d\n", m->vms[i].credits.id.str, m->vms[i].mem_managed);
        if (!m->memory_engine)
                return;
        fputs("# HELP vmmgr_memory_current_bytes memory.current of the VM\n"
              "# TYPE vmmgr_memory_current_bytes gauge\n",
              f);
        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i].mem_known)
                        fprintf(f, "vmmgr_memory_current_bytes{vm=\"%s\"} %" PRIu64 "\n", m->vms[i].credits.id.str,
                                m->vms[i].mem_current);
        fputs("# HELP vmmgr_memory_reclaimed_bytes_total Reclaimed by vmmgr's threads for the VM\n"
              "# TYPE vmmgr_memory_reclaimed_bytes_total counter\n",
              f);
        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i].mem_known)
                        fprintf(f, "vmmgr_memory_reclaimed_bytes_total{vm=\"%s\"} %" PRIu64 "\n",
                                m->vms[i].credits.id.str, m->vms[i].mem_reclaimed);
        if (m->taskstats) {
                fputs("# HELP vmmgr_thread_direct_reclaim_seconds_total Direct-reclaim stall of the VM's "
                      "threads, by role (taskstats)\n"
                      "# TYPE vmmgr_thread_direct_reclaim_seconds_total counter\n",
                      f);
                for (size_t i = 0; i < m->n_vms; i++)
                        for (size_t k = 0; k < _SERVICE_ROLE_MAX; k++)
                                if (m->vms[i].delays_known[k])
                                        fprintf(f,
                                                "vmmgr_thread_direct_reclaim_seconds_total{vm=\"%s\",role=\"%s\"} "
                                                "%.9f\n",
                                                m->vms[i].credits.id.str, service_role_name(k),
                                                (double) m->vms[i].direct_reclaim_ns[k] / 1e9);
        }
        fprintf(f,
                "# HELP vmmgr_reclaim_pool_threads Reclaim worker threads running\n"
                "# TYPE vmmgr_reclaim_pool_threads gauge\n"
                "vmmgr_reclaim_pool_threads %u\n"
                "# HELP vmmgr_reclaim_pool_busy_seconds_total Time vmmgr's threads spent reclaiming\n"
                "# TYPE vmmgr_reclaim_pool_busy_seconds_total counter\n"
                "vmmgr_reclaim_pool_busy_seconds_total %.6f\n",
                m->reclaim_threads, (double) m->reclaim_busy_usec / 1e6);
        if (m->host_known)
                fprintf(f,
                        "# HELP vmmgr_host_memory_used_bytes Host memory in use (MemTotal - MemAvailable)\n"
                        "# TYPE vmmgr_host_memory_used_bytes gauge\n"
                        "vmmgr_host_memory_used_bytes %" PRIu64 "\n"
                        "# HELP vmmgr_host_memory_ceiling_bytes The host ceiling\n"
                        "# TYPE vmmgr_host_memory_ceiling_bytes gauge\n"
                        "vmmgr_host_memory_ceiling_bytes %" PRIu64 "\n",
                        m->host_used, m->host_ceiling);
}

int api_metrics_text(const ServiceMetrics *m, const ApiStats *s, char **ret) {
        _cleanup_free_ char *buf = NULL, *api_text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        int r;

        if (!f)
                return -ENOMEM;
        credit_families(f, m);
        daemon_families(f, m);
        memory_families(f, m);
        r = api_stats_to_prometheus(s, &api_text);
        if (r == 0)
                fputs(api_text, f);
        if (fclose(f) != 0 || r < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
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
