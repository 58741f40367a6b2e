/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: API load.  A real vmmgrd (own state dir, socket, subtree)
 * with one real QEMU VM registered, then 10,000 requests from 8 concurrent
 * clients over the UNIX socket (a mix of GET /v1/vms, GET credits,
 * GET /v1/host and an inject/take-back pair that commits to the database).
 *
 * Every request has the status it should get, and the load is valid: before
 * it starts the VM's bank is filled to half its cap, so that no +/-1 ms
 * inject can meet the cap or an empty bank (the VM spends at most one
 * CPU-second a second; t3.micro's cap is 8,640 CPU-seconds, half of it 4,320).  A
 * request answered with any other status (or a 200 without a JSON body, or
 * no answer) is an error, and so is a ledger whose adjusted_usec did not
 * move by exactly the injects that were answered 200.  No refusal is sent
 * on purpose, so there is no refusal figure.
 *
 * Prints requests/s (only requests answered as they should be), p50/p99
 * latency and errors as figure lines; exits 1 on any error, and when
 * vmmgrd does not start, or does not stop cleanly on SIGTERM.
 * Exit 77 without root, a writable cpu controller or QEMU installed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "kernel/kernel.h"
#include "tests/common/vmmgrd-launch.h"
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/api/http-client.h"

#define CLIENTS 8
#define REQUESTS 10000
#define INJECT_USEC 1000
#define UUID "e0000000-0000-4000-8000-00000000000e"
#define SHOW_ERRORS 5 /* mismatches printed in full; all are counted */

static char sock[128];
static unsigned shown_errors;

typedef struct LoadRequest {
        const char *method, *path, *body;
        long want;         /* the status this request should get */
        int64_t inject_usec; /* what a 200 adds to adjusted_usec */
} LoadRequest;

static const LoadRequest mix[] = {
        { "GET", "/v1/vms", NULL, 200, 0 },
        { "GET", "/v1/vms/" UUID "/credits", NULL, 200, 0 },
        { "GET", "/v1/host", NULL, 200, 0 },
        { "GET", "/v1/vms/" UUID, NULL, 200, 0 },
        { "POST", "/v1/vms/" UUID "/credits/inject", "{\"amount_usec\":1000}", 200, INJECT_USEC },
        { "POST", "/v1/vms/" UUID "/credits/inject", "{\"amount_usec\":-1000}", 200, -INJECT_USEC },
};

typedef struct Worker {
        int id, n;
        double *lat;
        int errors, as_expected;
        int64_t injected_usec; /* sum of the injects answered 200 */
} Worker;

static void *work(void *p) {
        Worker *w = p;

        for (int i = 0; i < w->n; i++) {
                const LoadRequest *q = &mix[(size_t) (i + w->id) % (sizeof(mix) / sizeof(mix[0]))];
                long status = 0;
                char *body = NULL;
                HttpError err = { "" };
                double t0 = now_sec();
                int r = http_request(sock, q->method, q->path, q->body, 10000, &status, &body, &err);

                w->lat[i] = now_sec() - t0;
                if (r >= 0 && status == q->want && body && (body[0] == '{' || body[0] == '[')) {
                        w->as_expected++;
                        w->injected_usec += q->inject_usec;
                } else {
                        w->errors++;
                        if (__atomic_fetch_add(&shown_errors, 1, __ATOMIC_RELAXED) < SHOW_ERRORS)
                                fprintf(stderr, "error: %s %s%s%s: want %ld, got %ld %s%.*s\n", q->method, q->path,
                                        q->body ? " " : "", q->body ? q->body : "", q->want, status,
                                        r < 0 ? err.message : "", body ? (int) strcspn(body, "\n") : 0,
                                        body ? body : "");
                }
                free(body);
        }
        return NULL;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* GET the VM's credits; *ret_adjusted and, if asked, *ret_balance and
 * *ret_cap (spec.cap_usec).  0, or -1 with the reason printed. */
static int get_credits(int64_t *ret_adjusted, int64_t *ret_balance, int64_t *ret_cap) {
        long status = 0;
        char *reply = NULL;
        HttpError err = { "" };
        struct json_object *o = NULL, *v, *spec;
        int r = -1;

        if (http_request(sock, "GET", "/v1/vms/" UUID "/credits", NULL, 10000, &status, &reply, &err) < 0 ||
            status != 200 || !(o = json_tokener_parse(reply ? reply : ""))) {
                fprintf(stderr, "GET credits: %ld %s%s\n", status, err.message, reply ? reply : "");
                goto out;
        }
        if (!json_object_object_get_ex(o, "adjusted_usec", &v))
                goto bad;
        *ret_adjusted = json_object_get_int64(v);
        if (ret_balance) {
                if (!json_object_object_get_ex(o, "balance_usec", &v))
                        goto bad;
                *ret_balance = json_object_get_int64(v);
        }
        if (ret_cap) {
                if (!json_object_object_get_ex(o, "spec", &spec) || !json_object_object_get_ex(spec, "cap_usec", &v))
                        goto bad;
                *ret_cap = json_object_get_int64(v);
        }
        r = 0;
        goto out;
bad:
        fprintf(stderr, "GET credits: unexpected reply %s\n", reply);
out:
        json_object_put(o);
        free(reply);
        return r;
}

/* POST and expect `want`; 0, or -1 with the reason printed. */
static int post(const char *path, const char *body, long want) {
        long status = 0;
        char *reply = NULL;
        HttpError err = { "" };
        int r = http_request(sock, "POST", path, body, 10000, &status, &reply, &err);

        if (r < 0 || status != want) {
                fprintf(stderr, "POST %s %s: want %ld, got %ld %s%s\n", path, body, want, status, err.message,
                        reply ? reply : "");
                r = -1;
        } else
                r = 0;
        free(reply);
        return r;
}

int main(void) {
        char dir[] = "/tmp/vmmgr-load-XXXXXX", state[128], log[128], subtree[64], body[512], cmd[160];
        TestQemu *vm = NULL;
        Worker w[CLIENTS];
        pthread_t th[CLIENTS];
        double *lat = NULL, t0, dt;
        int errors = 0, as_expected = 0, ok = 0, r;
        int64_t adjusted0, adjusted1, balance, cap, fill, injected = 0;
        pid_t daemon = 0;
        KHost *h = NULL;

        snprintf(subtree, sizeof(subtree), "vmmgr-bench-%d", (int) getpid());
        if (geteuid() != 0 || kh_open(&(KHostConfig) { .subtree = subtree }, &h) < 0 || !kh_manages(h, CG_CTRL_CPU)) {
                puts("SKIP: needs root and a cpu controller");
                kh_free(h);
                return 77;
        }
        kh_free(h);
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        r = test_qemu_start(&(TestQemuOptions) { .smp = 1 }, &vm);
        if (r == -ENOENT) {
                puts("SKIP: no QEMU installed");
                rmdir(dir);
                return 77;
        }
        if (r < 0) { /* QEMU is there and did not start: that is a failure */
                fprintf(stderr, "QEMU did not start: %s\n", strerror(-r));
                rmdir(dir);
                return 1;
        }
        snprintf(sock, sizeof(sock), "%s/api.sock", dir);
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(log, sizeof(log), "%s/vmmgrd.log", dir);
        if (test_vmmgrd_start(&(TestVmmgrdOptions) { .socket = sock, .state_dir = state, .subtree = subtree,
                                                      .remove_subtree_on_exit = true, .log = log },
                              &daemon) < 0)
                goto out; /* the launcher said why, with vmmgrd's log */
        snprintf(body, sizeof(body), "{\"uuid\":\"%s\",\"qmp\":\"%s\",\"class\":\"t3.micro\"}", UUID,
                 test_qemu_qmp_path(vm, 0));
        if (post("/v1/vms", body, 201) < 0)
                goto out;

        /* The bank to half its cap, so the load's injects are all valid. */
        if (get_credits(&adjusted0, &balance, &cap) < 0)
                goto out;
        fill = cap / 2 - balance;
        if (fill > 0) {
                snprintf(body, sizeof(body), "{\"amount_usec\":%" PRId64 "}", fill);
                if (post("/v1/vms/" UUID "/credits/inject", body, 200) < 0)
                        goto out;
        }
        if (get_credits(&adjusted0, &balance, NULL) < 0)
                goto out;
        printf("bank filled to %" PRId64 " of %" PRId64 " usec before the load\n", balance, cap);

        lat = calloc(REQUESTS, sizeof(double));
        if (!lat)
                goto out;
        t0 = now_sec();
        for (int i = 0; i < CLIENTS; i++) {
                w[i] = (Worker) { .id = i, .n = REQUESTS / CLIENTS, .lat = lat + i * (REQUESTS / CLIENTS) };
                if (pthread_create(&th[i], NULL, work, &w[i]) != 0) {
                        fprintf(stderr, "pthread_create failed\n");
                        for (int j = 0; j < i; j++)
                                pthread_join(th[j], NULL);
                        goto out;
                }
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(th[i], NULL);
                errors += w[i].errors;
                as_expected += w[i].as_expected;
                injected += w[i].injected_usec;
        }
        dt = now_sec() - t0;

        /* What the 200s said they did, the ledger must show. */
        if (get_credits(&adjusted1, NULL, NULL) < 0)
                errors++;
        else if (adjusted1 - adjusted0 != injected) {
                fprintf(stderr, "error: adjusted_usec moved by %" PRId64 ", the injects answered 200 add up to %" PRId64
                                "\n", adjusted1 - adjusted0, injected);
                errors++;
        }

        qsort(lat, REQUESTS, sizeof(double), cmp);
        printf("%d requests from %d clients in %.2f s: %d answered as expected\n", REQUESTS, CLIENTS, dt,
               as_expected);
        printf("figure: api.load.requests_per_s %.0f req/s\n", as_expected / dt);
        printf("figure: api.load.p50_ms %.3f ms\n", lat[REQUESTS / 2] * 1e3);
        printf("figure: api.load.p99_ms %.3f ms\n", lat[REQUESTS * 99 / 100] * 1e3);
        printf("figure: api.load.errors %d count\n", errors);
        ok = errors == 0;
out:
        free(lat);
        test_qemu_stop(vm);
        if (daemon > 0) {
                int st = test_vmmgrd_stop(&daemon, SIGTERM, log);

                if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "vmmgrd did not stop cleanly on SIGTERM (wait status %d)\n", st);
                        ok = 0;
                }
        }
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void) !system(cmd);
        if (!ok)
                puts("FAIL");
        return ok ? 0 : 1;
}
