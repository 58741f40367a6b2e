/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu suite: vmmgrd end to end.  A real vmmgrd (its own state dir,
 * socket and cgroup subtree) and real QEMU VMs, driven over the real UNIX
 * socket:
 *   - the API contract: every route, and every class of bad input gets
 *     its 4xx with {code, message, field} and changes nothing;
 *   - memory: managed or not as the kernel layer's probe says this host
 *     offers (cgroup v2 memory that vmmgr manages), and said why when not;
 *   - kill -9 in the middle of a burst: the VM is re-adopted, its ledger
 *     continues, no credit is created or lost (the ledger's conservation
 *     law holds and `spent` equals the kernel's usage counter);
 *   - SIGTERM leaves the VM running with its limit: with VM B held to
 *     its baseline (its bank taken, no launch credits), the vCPU group's
 *     cpu.max after vmmgrd exits is the one it had before.
 * Skips (77) without root, a writable cpu controller or an installed
 * QEMU; a QEMU that is installed or named by VMMGR_QEMU and does not
 * start, or a vmmgrd that does not come up, fails.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/api/http-client.h"

#define UUID_A "a0000000-0000-4000-8000-00000000000a"
#define UUID_B "b0000000-0000-4000-8000-00000000000b"

static TestVmmgrdFixture F;

#define NEED_HOST() TEST_VMMGRD_FIXTURE_NEED(&F)

static int setup(void **state) {
        return test_vmmgrd_fixture_setup(&F, "/tmp/vmmgrd-test-XXXXXX",
                                         &(TestQemuOptions) { .smp = 1, .n_iothreads = 1 });
}

static int teardown(void **state) {
        return test_vmmgrd_fixture_teardown(&F);
}

/* ---- helpers ------------------------------------------------------------ */

static long call(const char *method, const char *path, const char *body, struct json_object **ret) {
        char *reply = NULL;
        long status = test_vmmgrd_fixture_call(&F, method, path, body, &reply);

        if (ret)
                *ret = reply && *reply ? json_tokener_parse(reply) : NULL;
        free(reply);
        return status;
}

static int64_t num(struct json_object *o, const char *k) {
        struct json_object *v;
        if (!json_object_object_get_ex(o, k, &v))
                fail_msg("no key %s in %s", k, json_object_to_json_string(o));
        return json_object_get_int64(v);
}

static const char *str(struct json_object *o, const char *k) {
        struct json_object *v;
        if (!json_object_object_get_ex(o, k, &v) || !v)
                return NULL;
        return json_object_get_string(v);
}

/* After a start, vmmgrd answers at once and adopts its VMs as their QEMU
 * answer: waits until every VM's link is "bound" (docs/api.md). */
static void wait_all_bound(void) {
        uint64_t deadline = now_msec() + 10000;

        for (;;) {
                struct json_object *list = NULL, *vms;
                size_t bound = 0, n;

                assert_int_equal(call("GET", "/v1/vms", NULL, &list), 200);
                vms = json_object_object_get(list, "vms");
                assert_true(json_object_is_type(vms, json_type_array));
                n = json_object_array_length(vms);
                for (size_t i = 0; i < n; i++) {
                        const char *link = str(json_object_array_get_idx(vms, i), "link");
                        bound += link && strcmp(link, "bound") == 0;
                }
                json_object_put(list);
                if (bound == n)
                        return;
                if (now_msec() > deadline)
                        fail_msg("%zu of %zu VMs bound 10 s after vmmgrd started", bound, n);
                usleep(20000);
        }
}

/* A 4xx with the error body the API promises. */
static void expect_error(const char *method, const char *path, const char *body, long want, const char *field) {
        struct json_object *o = NULL;
        long status = call(method, path, body, &o);

        if (status != want)
                fail_msg("status %ld, want %ld: %s", status, want, o ? json_object_to_json_string(o) : "");
        assert_non_null(o);
        assert_int_equal(num(o, "code"), want);
        assert_non_null(str(o, "message"));
        if (field)
                assert_string_equal(str(o, "field") ? str(o, "field") : "(null)", field);
        json_object_put(o);
}

/* `credits`: the request's credit members, e.g. "\"class\":\"demo\"". */
static void register_vm(const char *uuid, int i, const char *credits) {
        char body[512];
        struct json_object *o = NULL;
        long s;

        snprintf(body, sizeof(body), "{\"uuid\":\"%s\",\"qmp\":\"%s\",%s}", uuid, test_qemu_qmp_path(F.vm[i], 0),
                 credits);
        s = call("POST", "/v1/vms", body, &o);
        if (s != 201 && s != 200)
                fail_msg("register: %ld %s", s, o ? json_object_to_json_string(o) : "");
        assert_int_equal(num(o, "pid"), test_qemu_pid(F.vm[i]));
        json_object_put(o);
}

/* ---- tests -------------------------------------------------------------- */

static void test_contract(void **state) {
        struct json_object *o = NULL;
        char big[100000];

        NEED_HOST();
        assert_int_equal(call("GET", "/v1/host", NULL, &o), 200);
        assert_non_null(str(o, "cgroup_mode"));
        assert_non_null(str(o, "credit_bank"));
        /* the tick's counter reads: what vmmgrd runs with, and why */
        assert_non_null(str(o, "counter_reads"));
        assert_true(strcmp(str(o, "counter_reads"), "pread") == 0 || strcmp(str(o, "counter_reads"), "io_uring") == 0);
        assert_non_null(str(o, "counter_reads_note"));
        json_object_put(o);

        register_vm(UUID_A, 0, "\"class\":\"demo\"");
        /* B: the demo class's baseline, but no launch credits, so that
         * once its bank is taken it is held to baseline (SIGTERM case). */
        register_vm(UUID_B, 1, "\"spec\":{\"baseline\":0.2,\"launch_usec\":0,\"cap_usec\":6000000}");
        assert_int_equal(call("GET", "/v1/vms", NULL, &o), 200);
        assert_int_equal(json_object_array_length(json_object_object_get(o, "vms")), 2);
        json_object_put(o);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A, NULL, &o), 200);
        assert_true(json_object_get_boolean(json_object_object_get(o, "connected")));
        json_object_put(o);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &o), 200);
        assert_string_equal(str(o, "bank"), "emulated");
        assert_non_null(str(o, "state"));
        json_object_put(o);
        /* Memory: managed exactly where the probe says vmmgr manages cgroup
         * v2 memory (a pure v2 host); elsewhere (memory on v1, which
         * belongs to the machine) not, and the report says why.  The
         * priority is kept either way. */
        print_message("memory: the probe says vmmgr %s cgroup v2 memory here\n",
                      F.memory_managed ? "manages" : "does not manage");
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/memory", NULL, &o), 200);
        if (json_object_get_boolean(json_object_object_get(o, "managed")) != F.memory_managed)
                fail_msg("memory report says managed=%d, the probe %d: %s",
                         json_object_get_boolean(json_object_object_get(o, "managed")), F.memory_managed,
                         json_object_to_json_string(o));
        if (F.memory_managed) {
                struct json_object *l = json_object_object_get(o, "limits");

                assert_non_null(l);
                assert_string_equal(str(l, "high") ? str(l, "high") : "(null)", "max");
                assert_true(num(l, "max") > num(o, "ram"));
        } else
                assert_non_null(str(o, "reason"));
        json_object_put(o);
        assert_int_equal(call("PUT", "/v1/vms/" UUID_A "/memory", "{\"priority\":7}", &o), 200);
        assert_int_equal(json_object_get_int(json_object_object_get(o, "priority")), 7);
        json_object_put(o);
        expect_error("PUT", "/v1/vms/" UUID_A "/memory", "{\"priority\":-1}", 400, "priority");
        /* A GPU and its dmem limits: kept (applied where memory is managed). */
        assert_int_equal(call("PUT", "/v1/vms/" UUID_A "/memory",
                              "{\"gpu\":{\"pci\":\"0000:03:00.0\",\"soft\":1073741824,\"low\":536870912}}", &o),
                         200);
        assert_string_equal(str(json_object_object_get(o, "gpu"), "pci"), "0000:03:00.0");
        assert_int_equal(num(json_object_object_get(o, "gpu"), "low"), 536870912);
        assert_string_equal(str(json_object_object_get(o, "gpu"), "max"), "max");
        json_object_put(o);
        expect_error("PUT", "/v1/vms/" UUID_A "/memory", "{\"size\":1}", 400, "size");
        expect_error("GET", "/v1/vms/c0000000-0000-4000-8000-00000000000c/memory", NULL, 404, NULL);
        {
                /* The same through vmmgrctl: a report that says why. */
                char cmd[1024], out[4096] = "";
                const char *b = getenv("VMMGR_BUILD_ROOT");
                FILE *p;
                size_t n;

                snprintf(cmd, sizeof(cmd), "%s/vmmgr/vmmgrctl memory show " UUID_A " --socket %s",
                         b ? b : ".", F.socket);
                p = popen(cmd, "r");
                assert_non_null(p);
                n = fread(out, 1, sizeof(out) - 1, p);
                out[n] = '\0';
                assert_int_equal(pclose(p), 0);
                if (F.memory_managed) {
                        assert_null(strstr(out, "not managed"));
                        assert_non_null(strstr(out, "limits "));
                } else
                        assert_non_null(strstr(out, "not managed"));
                assert_non_null(strstr(out, "priority 7"));
                assert_non_null(strstr(out, "GPU       0000:03:00.0"));
                /* The GPU through vmmgrctl: sizes with units, and bad input refused. */
                snprintf(cmd, sizeof(cmd),
                         "%s/vmmgr/vmmgrctl memory gpu " UUID_A " 0000:03:00.0 --max max --soft 2G --low 1G "
                         "--socket %s >/dev/null",
                         b ? b : ".", F.socket);
                assert_int_equal(system(cmd), 0);
                snprintf(cmd, sizeof(cmd), "%s/vmmgr/vmmgrctl memory gpu " UUID_A " 0000:03:00.9 --socket %s 2>/dev/null",
                         b ? b : ".", F.socket);
                assert_int_equal(WEXITSTATUS(system(cmd)), 2);
                snprintf(cmd, sizeof(cmd),
                         "%s/vmmgr/vmmgrctl memory gpu " UUID_A " 0000:03:00.0 --low lots --socket %s 2>/dev/null",
                         b ? b : ".", F.socket);
                assert_int_equal(WEXITSTATUS(system(cmd)), 2);
                assert_int_equal(call("GET", "/v1/vms/" UUID_A "/memory", NULL, &o), 200);
                assert_int_equal(num(json_object_object_get(o, "gpu"), "low"), INT64_C(1) << 30);
                assert_int_equal(num(json_object_object_get(o, "gpu"), "soft"), INT64_C(2) << 30);
                json_object_put(o);
        }

        /* Bad input: each a 4xx with a body, and nothing changes. */
        expect_error("POST", "/v1/vms", "{\"uuid\":\"" UUID_A "\",\"qmp\":\"/x\",\"colour\":1}", 400, "colour");
        expect_error("POST", "/v1/vms", "{\"uuid\":42,\"qmp\":\"/x\"}", 400, "uuid");
        expect_error("POST", "/v1/vms", "{\"uuid\":\"../../etc\",\"qmp\":\"/x\"}", 400, "uuid");
        expect_error("POST", "/v1/vms", "{not json", 400, NULL);
        expect_error("POST", "/v1/vms", "{\"uuid\":\"" UUID_A "\",\"qmp\":\"/x\"}", 409, NULL);
        expect_error("POST", "/v1/vms",
                          "{\"uuid\":\"c0000000-0000-4000-8000-00000000000c\",\"qmp\":\"/nonexistent.sock\"}", 400, "qmp");
        expect_error("POST", "/v1/vms",
                     "{\"uuid\":\"c0000000-0000-4000-8000-00000000000c\",\"qmp\":\"/x\",\"class\":\"nope\"}", 400,
                     "class");
        expect_error("GET", "/v1/vms/not-a-uuid", NULL, 400, "uuid");
        expect_error("GET", "/v1/vms/c0000000-0000-4000-8000-00000000000c", NULL, 404, NULL);
        expect_error("GET", "/v1/nothing", NULL, 404, NULL);
        expect_error("PATCH", "/v1/vms", NULL, 405, NULL);
        expect_error("PUT", "/v1/vms/" UUID_A "/credits", "{\"baseline\":1.5}", 400, "baseline");
        expect_error("PUT", "/v1/vms/" UUID_A "/credits", "{\"mode\":\"turbo\"}", 400, "mode");
        expect_error("POST", "/v1/vms/" UUID_A "/credits/inject", "{\"amount_usec\":\"5\"}", 400, "amount_usec");
        expect_error("POST", "/v1/vms/" UUID_A "/credits/inject", "{\"amount_usec\":-999999999999}", 400, "amount_usec");
        expect_error("POST", "/v1/vms/" UUID_A "/credits/inject", "{\"amount_usec\":99999999999}", 400, "amount_usec");
        expect_error("POST", "/v1/credits/transfer",
                          "{\"from\":\"" UUID_A "\",\"to\":\"" UUID_A "\",\"amount_usec\":1}", 400, "to");
        {
                /* A QEMU started with -uuid is only that VM. */
                TestQemu *other = NULL;
                char body[512];
                if (test_qemu_start(&(TestQemuOptions) { .uuid = "f0000000-0000-4000-8000-00000000000f" }, &other) ==
                    0) {
                        snprintf(body, sizeof(body),
                                 "{\"uuid\":\"c0000000-0000-4000-8000-00000000000c\",\"qmp\":\"%s\"}",
                                 test_qemu_qmp_path(other, 0));
                        expect_error("POST", "/v1/vms", body, 409, "uuid");
                        test_qemu_stop(other);
                }
        }
        memset(big, ' ', sizeof(big) - 1);
        big[0] = '{';
        big[sizeof(big) - 2] = '}';
        big[sizeof(big) - 1] = '\0';
        expect_error("POST", "/v1/vms", big, 413, NULL);

        /* Good changes. */
        assert_int_equal(call("PUT", "/v1/vms/" UUID_A "/credits", "{\"cap_usec\":4000000}", &o), 200);
        assert_int_equal(num(json_object_object_get(o, "spec"), "cap_usec"), 4000000);
        json_object_put(o);
        assert_int_equal(call("POST", "/v1/vms/" UUID_B "/credits/inject", "{\"amount_usec\":1000000}", &o), 200);
        json_object_put(o);
        assert_int_equal(call("POST", "/v1/credits/transfer",
                              "{\"from\":\"" UUID_B "\",\"to\":\"" UUID_A "\",\"amount_usec\":500000}", &o) / 100,
                         2);
        json_object_put(o);
        assert_int_equal(call("GET", "/v1/events", NULL, &o), 200);
        assert_true(json_object_array_length(json_object_object_get(o, "events")) >= 5);
        json_object_put(o);
        {
                long status = 0;
                char *text = NULL;
                HttpError err;
                assert_int_equal(http_request(F.socket, "GET", "/metrics", NULL, 5000, &status, &text, &err), 0);
                assert_int_equal(status, 200);
                assert_non_null(strstr(text, "vmmgr_credit_balance_seconds{vm=\"" UUID_A "\"}"));
                assert_non_null(strstr(text, "vmmgr_tick_cpu_seconds_total"));
                assert_non_null(strstr(text, "vmmgr_link_state{vm=\"" UUID_A "\",state=\"bound\"} 1\n"));
                /* Per-role delays where vmmgrd reports them (memory managed,
                 * taskstats answers): from the cache the tick keeps. */
                KTaskstats *ts = NULL;
                if (F.memory_managed && kh_taskstats_open(&ts) == 0)
                        assert_non_null(strstr(text, "vmmgr_thread_direct_reclaim_seconds_total{vm=\"" UUID_A
                                                     "\",role=\"vcpus\"}"));
                kh_taskstats_free(ts);
                free(text);
        }
}

/* Runs vmmgrctl ARGS against this daemon; returns its exit status and
 * (the start of) its output. */
static int run_ctl(const char *args, char *out, size_t size) {
        const char *b = getenv("VMMGR_BUILD_ROOT");
        char cmd[1024];
        size_t n;
        FILE *p;

        /* Bounded: a verb that runs until interrupted ends after 3 s. */
        snprintf(cmd, sizeof(cmd), "timeout 3 %s/vmmgr/vmmgrctl %s --socket %s", b ? b : ".", args, F.socket);
        p = popen(cmd, "r");
        assert_non_null(p);
        n = fread(out, 1, size - 1, p);
        out[n] = '\0';
        return pclose(p);
}

/* What an operator sees: vm list shows each VM's link; events --follow
 * streams the history as it grows (one JSON object per line). */
static void test_ctl_views(void **state) {
        char out[16384], *line, *save = NULL;
        size_t registers = 0, lines = 0;
        int status;

        NEED_HOST();
        assert_int_equal(run_ctl("vm list", out, sizeof(out)), 0);
        assert_non_null(strstr(out, "LINK"));
        assert_non_null(strstr(out, UUID_A "  bound"));
        /* --follow runs until interrupted: timeout ends it (exit 124). */
        status = run_ctl("events --follow --json --limit 1", out, sizeof(out));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 124)
                fail_msg("events --follow: status 0x%x, output: %s", status, out);
        for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                struct json_object *e = json_tokener_parse(line);

                assert_non_null(e);
                lines++;
                registers += strcmp(str(e, "kind"), "register") == 0;
                json_object_put(e);
        }
        print_message("events --follow: %zu event(s) in 3 s, %zu registration(s)\n", lines, registers);
        /* --limit 1 per page: several pages were followed. */
        assert_true(registers >= 2);
}

static void test_kill9_restart(void **state) {
        struct json_object *before = NULL, *after = NULL;
        int64_t spent0, spent1, usage1;

        NEED_HOST();
        /* UUID_A (vCPU spinning) has been bursting since registration. */
        usleep(700000);
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &before), 200);
        spent0 = num(before, "spent_usec");
        assert_true(test_vmmgrd_fixture_stop(&F, SIGKILL) >= 0);
        usleep(800000); /* the VM runs on without the daemon */
        assert_int_equal(test_vmmgrd_fixture_start(&F), 0);
        wait_all_bound();
        assert_int_equal(call("GET", "/v1/vms/" UUID_A "/credits", NULL, &after), 200);
        spent1 = num(after, "spent_usec");
        usage1 = num(after, "usage_usec");
        {
                /* The memory priority set earlier was stored: it survives. */
                struct json_object *m = NULL;

                assert_int_equal(call("GET", "/v1/vms/" UUID_A "/memory", NULL, &m), 200);
                assert_int_equal(num(m, "priority"), 7);
                assert_string_equal(str(json_object_object_get(m, "gpu"), "pci"), "0000:03:00.0");
                json_object_put(m);
        }
        print_message("spent before kill -9: %.3f s; after restart: %.3f s; kernel usage counter %.3f s\n",
                      spent0 / 1e6, spent1 / 1e6, usage1 / 1e6);
        /* The gap was charged: what the VM ran without the daemon counts. */
        assert_true(spent1 > spent0);
        /* Everything the kernel counted was charged, and nothing more. */
        assert_true(spent1 - usage1 < 50000 && usage1 - spent1 < 50000);
        /* Nothing appeared from nowhere: launch + bank - debt stays equal to
         * launch at start + earned - spent + adjustments. */
        {
                int64_t have = num(after, "launch_usec") + num(after, "balance_usec") - num(after, "debt_usec");
                int64_t due = 3000000 + num(after, "earned_usec") - num(after, "spent_usec") +
                              num(after, "adjusted_usec");
                if (have != due)
                        fail_msg("conservation: have %lld, due %lld (%s)", (long long) have, (long long) due,
                                 json_object_to_json_string(after));
        }
        json_object_put(before);
        json_object_put(after);
}

/* Takes what is left in B's bank (its spending races the request: a
 * -ERANGE answer, 400, is retried with a fresh balance), then waits until
 * vmmgrd holds B to its baseline with a quota.  Returns the quota and
 * period vmmgrd reports. */
static void hold_b_to_baseline(int64_t *ret_quota, int64_t *ret_period) {
        struct json_object *o = NULL;
        uint64_t deadline = now_msec() + 20000;
        char body[64];

        for (;;) {
                int64_t balance;
                long status;

                assert_int_equal(call("GET", "/v1/vms/" UUID_B "/credits", NULL, &o), 200);
                balance = num(o, "balance_usec");
                json_object_put(o);
                o = NULL;
                if (balance <= 0)
                        break;
                snprintf(body, sizeof(body), "{\"amount_usec\":%lld}", (long long) -balance);
                status = call("POST", "/v1/vms/" UUID_B "/credits/inject", body, NULL);
                if (status == 200)
                        break;
                assert_int_equal(status, 400);
                if (now_msec() > deadline)
                        fail_msg("could not take B's bank in 20 s");
        }
        for (;;) {
                struct json_object *q;

                assert_int_equal(call("GET", "/v1/vms/" UUID_B "/credits", NULL, &o), 200);
                q = json_object_object_get(o, "quota_usec");
                if (q && !json_object_is_type(q, json_type_null)) {
                        *ret_quota = json_object_get_int64(q);
                        *ret_period = num(o, "period_usec");
                        json_object_put(o);
                        return;
                }
                if (now_msec() > deadline)
                        fail_msg("B has no quota 20 s after its bank was taken: %s", json_object_to_json_string(o));
                json_object_put(o);
                o = NULL;
                usleep(50000);
        }
}

static void test_sigterm_keeps_vm(void **state) {
        KHost *h = NULL;
        VmId id;
        CpuBandwidth before, after;
        int64_t quota = 0, period = 0;
        int status;

        NEED_HOST();
        hold_b_to_baseline(&quota, &period);
        assert_int_equal(kh_open(&(KHostConfig) { .subtree = F.subtree }, &h), 0);
        vm_id_parse(UUID_B, &id);
        assert_int_equal(kh_cpu_get_bandwidth(h, &id, CG_ROLE_VCPUS, &before), 0);
        print_message("before SIGTERM: vmmgrd reports quota %lld / %lld us; cpu.max %llu / %llu us\n",
                      (long long) quota, (long long) period, (unsigned long long) before.quota_usec,
                      (unsigned long long) before.period_usec);
        /* A limit at the baseline (20 %), not "max". */
        assert_true(before.quota_usec != CPU_QUOTA_MAX);
        assert_true(before.quota_usec * 100 <= before.period_usec * 25);

        status = test_vmmgrd_fixture_stop(&F, SIGTERM);
        assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(kill(test_qemu_pid(F.vm[1]), 0), 0);
        assert_int_equal(kh_cpu_get_bandwidth(h, &id, CG_ROLE_VCPUS, &after), 0);
        kh_free(h);
        print_message("after SIGTERM: cpu.max %llu / %llu us\n", (unsigned long long) after.quota_usec,
                      (unsigned long long) after.period_usec);
        /* The limit stays.  A tick between our read and the signal may
         * still have adjusted the quota a little (the emulated bank tunes
         * it every tick); what must not happen is "max" or a lost group. */
        assert_true(after.quota_usec != CPU_QUOTA_MAX);
        assert_int_equal(after.period_usec, before.period_usec);
        assert_true(after.quota_usec * 4 >= before.quota_usec * 3 && after.quota_usec * 3 <= before.quota_usec * 4);
        assert_int_equal(test_vmmgrd_fixture_start(&F), 0);
        wait_all_bound();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_contract),
                cmocka_unit_test(test_ctl_views),
                cmocka_unit_test(test_kill9_restart),
                cmocka_unit_test(test_sigterm_keeps_vm),
        };
        return vt_run_group_tests(tests, setup, teardown);
}
