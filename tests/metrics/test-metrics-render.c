/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * unit suite: GET /metrics's text by Prometheus's conventions
 * (docs/metrics.md), and the operator kit in contrib/ that reads it.
 *   - the renderer (api_metrics_text) on a service with every value known
 *     and on an empty one: one prefix, base units, _total on counters and
 *     only there, HELP then TYPE on every family, each family's samples
 *     under it, the same families in the same order whatever is known,
 *     exact decimals (microseconds as seconds, negatives, 2^64 - 1);
 *   - promtool check metrics on that text: silent, exit 0;
 *   - contrib/prometheus/vmmgr-alerts.yml: promtool check rules, and
 *     promtool test rules with tests/metrics/vmmgr-alerts-test.yml (each
 *     alert fires when it should and not before);
 *   - contrib/grafana/vmmgr-dashboard.json parses and every metric its
 *     queries use, and every one the alert rules use, is a family the
 *     renderer writes.
 * The promtool cases skip (77 when all do) only where no promtool is
 * installed: ./run provides Debian's (VMMGR_PROMTOOL).
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/vtest.h"
#include "tests/metrics/metrics-check.h"
#include "vmmgr/api/api-internal.h"

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"

/* Two VMs and every value known: one bursting on a class with memory
 * limited, one throttled on a spec of its own with no memory limit. */
static char *render_full(void) {
        ServiceVmMetrics v[2] = { 0 };
        ServiceMetrics m = {
                .vms = v,
                .n_vms = 2,
                .tick_interval_usec = 100000,
                .ticks = 1234,
                .tick_errors = 1,
                .tick_cpu_nsec = 1000000001,
                .last_tick_cpu_nsec = 250000,
                .bank_looks = 42,
                .commits = 7,
                .commit_errors = 0,
                .memory_engine = true,
                .taskstats = true,
                .reclaim_threads = 2,
                .reclaim_busy_usec = 3500000,
                .host_known = true,
                .host_total = UINT64_C(64) << 30,
                .host_used = UINT64_C(40) << 30,
                .host_ceiling = UINT64_C(60) << 30,
                .host_shortfall = 0,
        };
        ApiStats st = { .requests = 3, .denied = 1, .latency_sum_usec = 1500 };
        char *text = NULL;

        st.by_status[200] = 2;
        st.by_status[404] = 1;
        st.latency_bucket[0] = 3;
        for (int i = 0; i < 2; i++) {
                ServiceVmMetrics *x = &v[i];

                assert_int_equal(vm_id_parse(i == 0 ? U1 : U2, &x->credits.id), 0);
                x->credits.bank = "emulated";
                x->credits.state = i == 0 ? "bursting" : "throttled";
                snprintf(x->credits.class_name, sizeof(x->credits.class_name), "%s", i == 0 ? "t3.micro" : "");
                x->credits.spec = (CreditSpec){ .vcpus = 2,
                                                .baseline_ppm = 200000,
                                                .cap_usec = 0,
                                                .mode = i == 0 ? CREDIT_MODE_STANDARD : CREDIT_MODE_UNLIMITED };
                x->credits.ledger = (CreditLedger){ .balance_usec = 1500000,
                                                    .launch_usec = i == 0 ? 3000000 : 0,
                                                    .surplus_usec = 10,
                                                    .charged_usec = 5,
                                                    .earned_usec = UINT64_MAX,
                                                    .spent_usec = 2000001,
                                                    .forfeited_usec = 1,
                                                    .overdraft_usec = 2,
                                                    .debt_usec = i == 0 ? 0 : 2000000,
                                                    .adjusted_usec = -1 };
                x->credits.usage_usec = 2000001;
                x->credits.throttled_usec = 120000;
                x->link = i == 0 ? "bound" : "stalled";
                x->mem_managed = x->mem_known = true;
                x->mem_current = 4096;
                x->mem_swap = 0;
                x->mem_max = i == 0 ? UINT64_C(1) << 30 : UINT64_MAX;
                x->mem_reclaiming = x->mem_throttled = i == 1;
                x->mem_reclaimed = 8192;
                x->mem_reclaim_requests = 3;
                x->mem_reclaim_partial = 1;
                x->mem_reclaim_errors = 0;
                x->mem_asked_background = 4096;
                x->mem_asked_proactive = 8192;
                x->mem_asked_host = 0;
                x->mem_pressure_some_usec = 1500;
                x->mem_pressure_full_usec = 500;
                for (int k = 0; k < _SERVICE_ROLE_MAX; k++) {
                        x->delays_known[k] = true;
                        x->direct_reclaim_ns[k] = 2500000000u;
                }
        }
        assert_int_equal(api_metrics_text(&m, &st, &text), 0);
        return text;
}

/* No VM, no memory engine, no taskstats, host memory unknown. */
static char *render_empty(void) {
        ServiceMetrics m = { .tick_interval_usec = 100000 };
        ApiStats st = { 0 };
        char *text = NULL;

        assert_int_equal(api_metrics_text(&m, &st, &text), 0);
        return text;
}

static void parse_or_fail(const char *text, MetricPage *p) {
        int r = metric_page_parse(text, p);

        if (r < 0)
                fail_msg("the page breaks a convention: %s", p->problem);
}

static void test_conventions(void **state) {
        _cleanup_free_ char *full = render_full(), *again = render_full(), *empty = render_empty();
        MetricPage p = { 0 }, e = { 0 };

        parse_or_fail(full, &p);
        parse_or_fail(empty, &e);
        print_message("%zu families, %zu bytes for 2 VMs\n", p.n, strlen(full));
        /* Every family has a sample when everything is known: none is dead. */
        for (size_t i = 0; i < p.n; i++)
                if (p.families[i].samples == 0)
                        fail_msg("%s has no sample with every value known", p.families[i].name);
        /* The same families in the same order whatever is known. */
        assert_int_equal(e.n, p.n);
        for (size_t i = 0; i < p.n; i++)
                assert_string_equal(e.families[i].name, p.families[i].name);
        /* The same text for the same values. */
        assert_string_equal(full, again);
        metric_page_done(&p);
        metric_page_done(&e);
}

/* Values: seconds from microseconds and nanoseconds, exactly. */
static void test_values(void **state) {
        _cleanup_free_ char *t = render_full();

        assert_non_null(strstr(t, "\nvmmgr_credit_balance_seconds{vm=\"" U1 "\"} 1.5\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_launch_seconds{vm=\"" U1 "\"} 3\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_launch_seconds{vm=\"" U2 "\"} 0\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_spent_seconds_total{vm=\"" U1 "\"} 2.000001\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_adjusted_seconds{vm=\"" U1 "\"} -0.000001\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_earned_seconds_total{vm=\"" U1 "\"} 18446744073709.551615\n"));
        /* launch + balance - debt */
        assert_non_null(strstr(t, "\nvmmgr_credit_available_seconds{vm=\"" U1 "\"} 4.5\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_available_seconds{vm=\"" U2 "\"} -0.5\n"));
        /* 24 h of earnings at 2 x 0.2 CPU when the cap is left at 0. */
        assert_non_null(strstr(t, "\nvmmgr_credit_cap_seconds{vm=\"" U1 "\"} 34560\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_baseline_ratio{vm=\"" U1 "\"} 0.2\n"));
        assert_non_null(strstr(t, "\nvmmgr_vm_vcpus{vm=\"" U1 "\"} 2\n"));
        assert_non_null(strstr(t, "\nvmmgr_tick_cpu_seconds_total 1.000000001\n"));
        assert_non_null(strstr(t, "\nvmmgr_tick_last_cpu_seconds 0.00025\n"));
        assert_non_null(strstr(t, "\nvmmgr_tick_interval_seconds 0.1\n"));
        assert_non_null(strstr(t, "\nvmmgr_cpu_throttled_seconds_total{vm=\"" U1 "\"} 0.12\n"));
        assert_non_null(strstr(t, "\nvmmgr_thread_direct_reclaim_seconds_total{vm=\"" U1 "\",role=\"vcpus\"} 2.5\n"));
        assert_non_null(strstr(t, "\nvmmgr_memory_pressure_some_seconds_total{vm=\"" U1 "\"} 0.0015\n"));
        assert_non_null(
                strstr(t, "\nvmmgr_memory_reclaim_requested_bytes_total{vm=\"" U1 "\",reason=\"proactive\"} 8192\n"));
        assert_non_null(strstr(t, "\nvmmgr_memory_max_bytes{vm=\"" U1 "\"} 1073741824\n"));
        assert_null(strstr(t, "\nvmmgr_memory_max_bytes{vm=\"" U2 "\"}")); /* no limit: no sample */
        assert_non_null(strstr(t, "\nvmmgr_host_memory_total_bytes 68719476736\n"));
        /* States: one 1 per VM, every state listed. */
        assert_non_null(strstr(t, "\nvmmgr_credit_state{vm=\"" U1 "\",state=\"bursting\"} 1\n"));
        assert_non_null(strstr(t, "\nvmmgr_credit_state{vm=\"" U1 "\",state=\"throttled\"} 0\n"));
        assert_non_null(strstr(t, "\nvmmgr_link_state{vm=\"" U2 "\",state=\"stalled\"} 1\n"));
        assert_non_null(strstr(t, "\nvmmgr_link_state{vm=\"" U2 "\",state=\"bound\"} 0\n"));
        assert_non_null(
                strstr(t, "\nvmmgr_vm_info{vm=\"" U1 "\",class=\"t3.micro\",bank=\"emulated\",mode=\"standard\"} 1\n"));
        assert_non_null(
                strstr(t, "\nvmmgr_vm_info{vm=\"" U2 "\",class=\"\",bank=\"emulated\",mode=\"unlimited\"} 1\n"));
        assert_non_null(strstr(t, "\nvmmgr_build_info{version=\""));
        assert_non_null(strstr(t, "\nvmmgr_http_requests_total{code=\"404\"} 1\n"));
}

/* Runs promtool ARGS (NULL-terminated) on `input`; skips where there is
 * no promtool; fails unless it exits 0.  Returns its output. */
static char *promtool_ok(const char *input, const char *const *args) {
        char promtool[4096];
        char *out = NULL;
        int status, r = test_promtool_path(promtool, sizeof(promtool));

        if (r == -ENOENT)
                vt_skip("promtool is not installed (./run test provides Debian's; or set VMMGR_PROMTOOL)");
        if (r < 0)
                fail_msg("VMMGR_PROMTOOL=%s cannot be run", promtool);
        status = test_promtool_run(promtool, args, input, &out);
        if (status < 0)
                fail_msg("%s: %s", promtool, strerror(-status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("promtool %s %s exited 0x%x:\n%s", args[0], args[1], status, out);
        return out;
}

static void test_promtool_metrics(void **state) {
        _cleanup_free_ char *full = render_full(), *empty = render_empty(), *out = NULL, *out2 = NULL;
        const char *const args[] = { "check", "metrics", NULL };

        out = promtool_ok(full, args);
        if (*out)
                fail_msg("promtool check metrics has something to say:\n%s", out);
        out2 = promtool_ok(empty, args);
        if (*out2)
                fail_msg("promtool check metrics (no VM) has something to say:\n%s", out2);
}

static void test_promtool_rules(void **state) {
        char rules[4096], tests[4096];
        _cleanup_free_ char *out = NULL, *out2 = NULL;

        test_source_path(rules, sizeof(rules), "contrib/prometheus/vmmgr-alerts.yml");
        test_source_path(tests, sizeof(tests), "tests/metrics/vmmgr-alerts-test.yml");
        out = promtool_ok(NULL, (const char *const[]){ "check", "rules", rules, NULL });
        print_message("%s", out);
        out2 = promtool_ok(NULL, (const char *const[]){ "test", "rules", tests, NULL });
        print_message("%s", out2);
}

/* Every name in `names` is a family of `page`. */
static void names_exist(const NameList *names, const MetricPage *page, const char *where) {
        for (size_t i = 0; i < names->n; i++)
                if (!metric_page_family_of(page, names->names[i]))
                        fail_msg("%s uses %s, which /metrics does not have", where, names->names[i]);
}

static void test_contrib_names(void **state) {
        char path[4096];
        _cleanup_free_ char *full = render_full(), *rules = NULL;
        struct json_object *dash;
        MetricPage p = { 0 };
        NameList dn = { 0 }, rn = { 0 };
        size_t exprs = 0;

        parse_or_fail(full, &p);
        test_source_path(path, sizeof(path), "contrib/grafana/vmmgr-dashboard.json");
        dash = json_object_from_file(path);
        if (!dash)
                fail_msg("%s: %s", path, json_util_get_last_err());
        assert_non_null(json_object_object_get(dash, "panels"));
        assert_int_equal(name_list_scan_json_exprs(&dn, dash, &exprs), 0);
        print_message("dashboard: %zu queries, %zu metric names\n", exprs, dn.n);
        assert_true(exprs >= 7 && dn.n >= 10);
        names_exist(&dn, &p, "the dashboard");
        json_object_put(dash);

        test_source_path(path, sizeof(path), "contrib/prometheus/vmmgr-alerts.yml");
        rules = test_read_file(path);
        if (!rules)
                fail_msg("%s: %s", path, strerror(errno));
        assert_int_equal(name_list_scan(&rn, rules), 0);
        print_message("alert rules: %zu metric names\n", rn.n);
        assert_true(rn.n >= 5);
        names_exist(&rn, &p, "the alert rules");
        name_list_done(&dn);
        name_list_done(&rn);
        metric_page_done(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_conventions),      cmocka_unit_test(test_values),
                cmocka_unit_test(test_promtool_metrics), cmocka_unit_test(test_promtool_rules),
                cmocka_unit_test(test_contrib_names),
        };

        return vt_run_group_tests(tests, NULL, NULL);
}
