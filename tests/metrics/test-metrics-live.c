/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu suite: a live scrape of /metrics (docs/metrics.md).  A real vmmgrd
 * (its own state dir, socket and cgroup subtree) with two real QEMU VMs
 * whose vCPU spins: A on the demo class (bursting on launch credits), B
 * on a spec of its own with no launch credits (held at its baseline).
 * GET /metrics over the UNIX socket, after the credit tick has run, then:
 *   - promtool check metrics: silent and exit 0 (fails on any problem);
 *   - vmmgr's own conventions (tests/metrics/metrics-check.h), and the
 *     same families in the same order as the renderer writes them with no
 *     VM at all (so the families do not depend on what this host has);
 *   - the VMs' samples: both in vmmgr_vm_info, link bound, A's CPU use
 *     counted, B held (its available credits at most a tick's worth);
 *   - every metric the Grafana dashboard and the alert rules in contrib/
 *     use is in this scrape.
 * Where vmmgr manages memory (cgroup v2), the memory families have
 * samples in the scrape: `tests/realkernel/check stock metrics` runs this
 * program inside the stock test kernel for that.
 * Skips (77) without root, a writable cpu controller or an installed
 * QEMU, like test-daemon; the promtool case alone skips where promtool is
 * not installed (./run provides Debian's).  A QEMU or vmmgrd that is there
 * and does not start fails.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "kernel/kernel.h"
#include "tests/common/vmmgrd-fixture.h"
#include "tests/common/vtest.h"
#include "tests/metrics/metrics-check.h"
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/api/api-internal.h"
#include "vmmgr/api/http-client.h"

#define UUID_A "a0000000-0000-4000-8000-0000000000a1"
#define UUID_B "b0000000-0000-4000-8000-0000000000b1"

static TestVmmgrdFixture F;
static char *scrape; /* GET /metrics, for the cases after test_scrape */

#define NEED_HOST() TEST_VMMGRD_FIXTURE_NEED(&F)

static long call(const char *method, const char *path, const char *body, char **ret) {
        return test_vmmgrd_fixture_call(&F, method, path, body, ret);
}

static void register_vm(const char *uuid, int i, const char *credits) {
        char body[512], *reply = NULL;
        long s;

        snprintf(body, sizeof(body), "{\"uuid\":\"%s\",\"qmp\":\"%s\",%s}", uuid, test_qemu_qmp_path(F.vm[i], 0),
                 credits);
        s = call("POST", "/v1/vms", body, &reply);
        if (s != 201 && s != 200)
                fail_msg("register %s: %ld %s", uuid, s, reply ? reply : "");
        free(reply);
}

/* The value of the one sample `series` (name and labels, as written). */
static double sample_value(const char *page, const char *series) {
        char key[512];
        const char *at;

        snprintf(key, sizeof(key), "\n%s ", series);
        at = strstr(page, key);
        if (!at)
                fail_msg("no sample %s in the scrape", series);
        return strtod(at + strlen(key), NULL);
}

static int setup(void **state) {
        return test_vmmgrd_fixture_setup(&F, "/tmp/vmmgr-metrics-XXXXXX", &(TestQemuOptions){ .smp = 1 });
}

static int teardown(void **state) {
        free(scrape);
        return test_vmmgrd_fixture_teardown(&F);
}

/* The scrape the other cases read: both VMs registered, bound, and the
 * credit tick has looked at them for a while. */
static void test_scrape(void **state) {
        uint64_t deadline;

        NEED_HOST();
        register_vm(UUID_A, 0, "\"class\":\"demo\"");
        register_vm(UUID_B, 1, "\"spec\":{\"baseline\":0.2,\"launch_usec\":0,\"cap_usec\":6000000}");
        /* Both bound and both looked at by the tick (their CPU use counted). */
        deadline = now_msec() + 10000;
        for (;;) {
                long status = call("GET", "/metrics", NULL, &scrape);

                assert_int_equal(status, 200);
                if (strstr(scrape, "\nvmmgr_link_state{vm=\"" UUID_A "\",state=\"bound\"} 1\n") &&
                    strstr(scrape, "\nvmmgr_link_state{vm=\"" UUID_B "\",state=\"bound\"} 1\n") &&
                    sample_value(scrape, "vmmgr_cpu_usage_seconds_total{vm=\"" UUID_A "\"}") > 0.5 &&
                    sample_value(scrape, "vmmgr_cpu_usage_seconds_total{vm=\"" UUID_B "\"}") > 0.1)
                        break;
                if (now_msec() > deadline)
                        fail_msg("10 s after registration the VMs are not bound and running:\n%s", scrape);
                free(scrape);
                scrape = NULL;
                usleep(200000);
        }
        print_message("scrape: %zu bytes\n", strlen(scrape));
}

static void test_promtool(void **state) {
        char promtool[4096];
        _cleanup_free_ char *out = NULL;
        int status;

        NEED_HOST();
        assert_non_null(scrape);
        status = test_promtool_path(promtool, sizeof(promtool));
        if (status == -ENOENT)
                vt_skip("promtool is not installed (./run test provides Debian's; or set VMMGR_PROMTOOL)");
        if (status < 0)
                fail_msg("VMMGR_PROMTOOL=%s cannot be run", promtool);
        status = test_promtool_run(promtool, (const char *const[]){ "check", "metrics", NULL }, scrape, &out);
        if (status < 0)
                fail_msg("%s: %s", promtool, strerror(-status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || *out)
                fail_msg("promtool check metrics exited 0x%x on the live scrape:\n%s\n--- the scrape ---\n%s", status,
                         out, scrape);
}

static void test_conventions(void **state) {
        ServiceMetrics none = { 0 };
        ApiStats st = { 0 };
        _cleanup_free_ char *empty = NULL;
        MetricPage p = { 0 }, e = { 0 };

        NEED_HOST();
        assert_non_null(scrape);
        if (metric_page_parse(scrape, &p) < 0)
                fail_msg("the live scrape breaks a convention: %s", p.problem);
        assert_int_equal(api_metrics_text(&none, &st, &empty), 0);
        assert_int_equal(metric_page_parse(empty, &e), 0);
        if (p.n != e.n)
                fail_msg("the live scrape has %zu families, the renderer with no VM %zu", p.n, e.n);
        for (size_t i = 0; i < p.n; i++)
                assert_string_equal(p.families[i].name, e.families[i].name);
        metric_page_done(&p);
        metric_page_done(&e);
}

static void test_samples(void **state) {
        const char *t = scrape;
        double avail_b;

        NEED_HOST();
        assert_non_null(t);
        assert_non_null(strstr(t, "\nvmmgr_vm_info{vm=\"" UUID_A "\",class=\"demo\","));
        assert_non_null(strstr(t, "\nvmmgr_vm_info{vm=\"" UUID_B "\",class=\"\","));
        assert_int_equal((int) sample_value(t, "vmmgr_vms"), 2);
        assert_true(sample_value(t, "vmmgr_ticks_total") > 0);
        assert_true(sample_value(t, "vmmgr_tick_interval_seconds") > 0);
        assert_true(sample_value(t, "vmmgr_credit_spent_seconds_total{vm=\"" UUID_A "\"}") > 0);
        /* B has no launch credits: what it has is at most a few ticks of
         * earnings (0.2 CPU), however long it has run. */
        avail_b = sample_value(t, "vmmgr_credit_available_seconds{vm=\"" UUID_B "\"}");
        print_message("B: %.6f CPU-s available\n", avail_b);
        assert_true(avail_b < 0.5);
        assert_true(sample_value(t, "vmmgr_credit_baseline_ratio{vm=\"" UUID_B "\"}") == 0.2);
        /* Where vmmgr manages the VMs' memory (cgroup v2: the real-kernel
         * tier runs this program inside a test kernel), its families have
         * samples too, and promtool has seen them. */
        if (sample_value(t, "vmmgr_memory_managed{vm=\"" UUID_A "\"}") == 1) {
                print_message("memory managed: its families have samples\n");
                /* (current as of the memory engine's last look: 0 until its first) */
                assert_true(sample_value(t, "vmmgr_memory_current_bytes{vm=\"" UUID_A "\"}") >= 0);
                assert_non_null(strstr(t, "\nvmmgr_memory_reclaim_requested_bytes_total{vm=\"" UUID_A
                                          "\",reason=\"background\"} "));
                assert_true(sample_value(t, "vmmgr_host_memory_total_bytes") > 0);
        } else
                print_message("memory not managed here: its families have no sample\n");
}

static void test_contrib_names(void **state) {
        char path[4096];
        _cleanup_free_ char *rules = NULL;
        struct json_object *dash;
        MetricPage p = { 0 };
        NameList names = { 0 };
        size_t exprs = 0;

        NEED_HOST();
        assert_non_null(scrape);
        assert_int_equal(metric_page_parse(scrape, &p), 0);
        test_source_path(path, sizeof(path), "contrib/grafana/vmmgr-dashboard.json");
        dash = json_object_from_file(path);
        if (!dash)
                fail_msg("%s: %s", path, json_util_get_last_err());
        assert_int_equal(name_list_scan_json_exprs(&names, dash, &exprs), 0);
        json_object_put(dash);
        test_source_path(path, sizeof(path), "contrib/prometheus/vmmgr-alerts.yml");
        rules = test_read_file(path);
        if (!rules)
                fail_msg("%s: %s", path, strerror(errno));
        assert_int_equal(name_list_scan(&names, rules), 0);
        for (size_t i = 0; i < names.n; i++)
                if (!metric_page_family_of(&p, names.names[i]))
                        fail_msg("contrib/ uses %s, which the live scrape does not have", names.names[i]);
        print_message("the dashboard's and rules' %zu metric names are all in the scrape\n", names.n);
        name_list_done(&names);
        metric_page_done(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scrape),        cmocka_unit_test(test_promtool),
                cmocka_unit_test(test_conventions),   cmocka_unit_test(test_samples),
                cmocka_unit_test(test_contrib_names),
        };

        return vt_run_group_tests(tests, setup, teardown);
}
