/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: API load.  A real vmmgrd (own state dir, socket, subtree)
 * with one real QEMU VM registered, then 10,000 requests from 8 concurrent
 * clients over the UNIX socket (a mix of GET /v1/vms, GET credits,
 * GET /v1/host and an inject/take-back pair that commits to the database).
 * Prints requests/s, p50/p99 latency and errors as figure lines.
 * Exit 77 without root, QEMU or a writable cpu controller.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/kernel.h"
#include "tests/qmp/qemu-helper.h"
#include "vmmgr/http-client.h"

#define CLIENTS 8
#define REQUESTS 10000
#define UUID "e0000000-0000-4000-8000-00000000000e"

static char sock[128];

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct Worker {
        int id, n;
        double *lat;
        int errors;
} Worker;

static void *work(void *p) {
        Worker *w = p;

        for (int i = 0; i < w->n; i++) {
                static const struct {
                        const char *method, *path, *body;
                } mix[] = {
                        { "GET", "/v1/vms", NULL },
                        { "GET", "/v1/vms/" UUID "/credits", NULL },
                        { "GET", "/v1/host", NULL },
                        { "GET", "/v1/vms/" UUID, NULL },
                        { "POST", "/v1/vms/" UUID "/credits/inject", "{\"amount_usec\":1000}" },
                        { "POST", "/v1/vms/" UUID "/credits/inject", "{\"amount_usec\":-1000}" },
                };
                size_t k = (size_t) (i + w->id) % (sizeof(mix) / sizeof(mix[0]));
                long status = 0;
                char *body = NULL;
                HttpError err;
                double t0 = now_s();
                int r = http_request(sock, mix[k].method, mix[k].path, mix[k].body, 10000, &status, &body, &err);

                w->lat[i] = now_s() - t0;
                /* An inject can meet a bank that is momentarily at its cap
                 * or empty: a 400 there is the right answer, not an error. */
                if (r < 0 || status >= 500 || (status >= 400 && !mix[k].body))
                        w->errors++;
                free(body);
        }
        return NULL;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(void) {
        char dir[] = "/tmp/vmmgr-load-XXXXXX", state[128], subtree[64], vmmgrd[512], body[512], cmd[160];
        const char *b = getenv("VMMGR_BUILD_ROOT");
        TestQemu *vm = NULL;
        Worker w[CLIENTS];
        pthread_t th[CLIENTS];
        double *lat, t0, dt;
        int errors = 0, ok = 0;
        pid_t daemon;
        KHost *h = NULL;

        snprintf(subtree, sizeof(subtree), "vmmgr-bench-%d", (int) getpid());
        if (geteuid() != 0 || kh_open(&(KHostConfig) { .subtree = subtree }, &h) < 0 || !kh_manages(h, CG_CTRL_CPU)) {
                puts("SKIP: needs root and a cpu controller");
                kh_free(h);
                return 77;
        }
        kh_free(h);
        if (!mkdtemp(dir))
                return 1;
        if (test_qemu_start(&(TestQemuOptions) { .smp = 1 }, &vm) < 0) {
                puts("SKIP: no QEMU");
                return 77;
        }
        snprintf(sock, sizeof(sock), "%s/api.sock", dir);
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(vmmgrd, sizeof(vmmgrd), "%s/vmmgr/vmmgrd", b ? b : ".");
        daemon = fork();
        if (daemon == 0) {
                int fd = open("/dev/null", O_WRONLY);
                dup2(fd, 2);
                execl(vmmgrd, vmmgrd, "--foreground", "--state-dir", state, "--socket", sock, "--subtree", subtree,
                      "--remove-subtree-on-exit", (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 100 && access(sock, F_OK) < 0; i++)
                usleep(50000);
        snprintf(body, sizeof(body), "{\"uuid\":\"%s\",\"qmp\":\"%s\",\"class\":\"t3.micro\"}", UUID,
                 test_qemu_qmp_path(vm, 0));
        {
                long status = 0;
                char *reply = NULL;
                HttpError err;
                if (http_request(sock, "POST", "/v1/vms", body, 10000, &status, &reply, &err) < 0 || status >= 300) {
                        fprintf(stderr, "register failed: %ld %s %s\n", status, reply ? reply : "", err.message);
                        free(reply);
                        goto out;
                }
                free(reply);
        }
        lat = calloc(REQUESTS, sizeof(double));
        t0 = now_s();
        for (int i = 0; i < CLIENTS; i++) {
                w[i] = (Worker) { .id = i, .n = REQUESTS / CLIENTS, .lat = lat + i * (REQUESTS / CLIENTS) };
                pthread_create(&th[i], NULL, work, &w[i]);
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(th[i], NULL);
                errors += w[i].errors;
        }
        dt = now_s() - t0;
        qsort(lat, REQUESTS, sizeof(double), cmp);
        printf("%d requests from %d clients in %.2f s\n", REQUESTS, CLIENTS, dt);
        printf("figure: api.load.requests_per_s %.0f req/s\n", REQUESTS / dt);
        printf("figure: api.load.p50_ms %.3f ms\n", lat[REQUESTS / 2] * 1e3);
        printf("figure: api.load.p99_ms %.3f ms\n", lat[REQUESTS * 99 / 100] * 1e3);
        printf("figure: api.load.errors %d count\n", errors);
        free(lat);
        ok = errors == 0;
out:
        test_qemu_stop(vm);
        usleep(300000);
        kill(daemon, SIGTERM);
        waitpid(daemon, NULL, 0);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void) !system(cmd);
        return ok ? 0 : 1;
}
