/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: vmmgrd's API and credit tick, on the kernel model with
 * scripted QMP peers (tests/common/qmp-peers.h) standing in for QEMU.  The
 * daemon's own code runs (daemon_new / daemon_run on a thread of this
 * process, its database in a temporary state dir, its API on a UNIX
 * socket); no root and no QEMU needed.  Issue 10, item 3.
 *
 * 1. A stalled QMP peer delays nobody (a world of 10 bound VMs):
 *    - a registration in flight whose QEMU accepts and never answers
 *      (POST /v1/vms; it gets 504 after the 2 s deadline), three times;
 *    - an adopted VM whose QEMU greets and then never answers (vmmgrd
 *      restarted with that peer), for 6 s: connecting, stalled, retried.
 *    Meanwhile GET /v1/vms is sent every 5 ms, each on a new connection
 *    (what vmmgrctl does, through vmmgr/http-client.h).
 *      api.stall.registration.{p50,max}_ms, api.stall.adoption.{p50,max}_ms,
 *      api.stall.other_request_p50_ms, api.stall.other_request_max_ms and
 *      api.stall.other_request_ms (= the max over both cases; goal <= 20 ms).
 * 2. 1,000 VMs registered over POST /v1/vms (from 4 threads), vCPU demand
 *    0 %, 30 % or 100 % by VM; then GET /v1/vms/{uuid}/credits from 32
 *    client threads, one keep-alive HTTP/1.1 connection each on the UNIX
 *    socket, raw (status line, headers, Content-Length body), round-robin
 *    over the 1,000 VMs, 1 s warm-up then 10 s measured (at most 2,000,000
 *    requests).  Every reply must be 200 with a JSON object for the VM
 *    asked about (the uuid is checked in every reply, the whole JSON
 *    parsed in every 64th); anything else is an error and fails the bench.
 *      api.req_per_s (goal >= 15,000), api.p99_ms (goal <= 5), api.p50_ms,
 *      api.load_1000.errors, daemon.register_1000_s; and before the load,
 *      20 GET /v1/vms of the 1,000 VMs: api.list_1000.{p50,max}_ms, and 20
 *      GET /metrics: api.metrics_1000.{p50,max}_ms, api.metrics_1000.bytes.
 *    Client and daemon share this machine's cores.
 * 3. The credit tick with those 1,000 VMs: vmmgrd's loop stopped, then
 *    daemon_tick_now() every 100 ms for 300 ticks (real time: the banks
 *    schedule looks on the monotonic clock).  Before each, the model's
 *    clock moves by the real time elapsed (km_advance) and every VM's
 *    subtree is simulated up to it, so that the tick pays for its reads,
 *    not for the lazy model's simulation.  Wall time of each call; the
 *    banks are as the load left them (every one looked at by a GET in its
 *    last milliseconds, so all are due in the same tick once a second).
 *    The memory engine's tick (daemon_memory_tick_now(), without the
 *    balloon loop that vmmgrd's memory timer runs after it) is timed after
 *    each.
 *      daemon.tick.{p50,p99,max}_us, daemon.tick.looks_per_tick,
 *      daemon.tick.max_events_per_tick, daemon.memory_tick.{p50,p99}_us.
 *
 * Exit 0 with the figures, 1 on any error (a goal missed is not an error:
 * the figures say so).  Options: -v prints the slow requests and ticks;
 * --no-memory runs vmmgrd with the cpu controller only (no memory engine),
 * to compare; --no-stall leaves out part 1; a number is the load's
 * measured seconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "kernel/model/kmodel.h"
#include "tests/common/qmp-peers.h"
#include "vmmgr/api/http-client.h"
#include "vmmgr/daemon/daemon.h"

#define N_SMALL 10          /* bound VMs beside the stalled one */
#define N_LOAD 1000         /* VMs for the load and the tick */
#define REGISTER_THREADS 4
#define CLIENTS 32
#define LOAD_SECONDS_DEFAULT 10
#define WARMUP_NSEC (1 * CLOCK_NSEC_PER_SEC)
#define LOAD_REQUESTS_MAX 2000000
#define PARSE_EVERY 64      /* replies between two full JSON parses */
#define STALL_GAP_USEC 5000 /* between two GET /v1/vms */
#define SILENT_ROUNDS 3
#define ADOPTION_WINDOW_MSEC 6000
#define TICK_USEC (100 * 1000)
#define TICKS 300
#define SHOW_ERRORS 5

static int failures;
static bool verbose;          /* -v: the outliers, one line each */
static uint32_t controllers;  /* 0: vmmgrd's default; --no-memory: cpu only */
static double t_origin;

static void fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fputs("error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        failures++;
}

/* ---- the world: a model, scripted QEMUs, vmmgrd on its loop ------------------ */

typedef struct SimVm {
        char path[108];
        char uuid[VM_ID_STRLEN + 1];
        pid_t pid, tid;
} SimVm;

typedef struct World {
        char dir[64], sock[128], state[128];
        KModel *model;
        QmpPeers *peers; /* the well-behaved population */
        QmpPeers *odd;   /* one peer made to misbehave, replaceable */
        Daemon *d;
        pthread_t loop;
        bool running;
        SimVm *vm;
        size_t n_vm;
} World;

static int peer_pid(const char *qmp_path, pid_t *ret, void *userdata) {
        World *w = userdata;

        for (size_t i = 0; i < w->n_vm; i++)
                if (strcmp(w->vm[i].path, qmp_path) == 0) {
                        *ret = w->vm[i].pid;
                        return 0;
                }
        return -ESRCH;
}

static int world_new(World *w, size_t cap) {
        *w = (World) { 0 };
        snprintf(w->dir, sizeof(w->dir), "/tmp/vmmgr-b1000-XXXXXX");
        if (!mkdtemp(w->dir))
                return -errno;
        snprintf(w->sock, sizeof(w->sock), "%s/api.sock", w->dir);
        snprintf(w->state, sizeof(w->state), "%s/state", w->dir);
        w->vm = calloc(cap, sizeof(SimVm));
        w->peers = qmp_peers_new();
        w->odd = qmp_peers_new();
        if (!w->vm || !w->peers || !w->odd)
                return -ENOMEM;
        return km_new(&(KModelConfig) { .mode = CG_MODE_UNIFIED }, &w->model);
}

/* A simulated QEMU (one process, one vCPU thread at demand_ppm) whose
 * monitor is served by `peers`; returns its index or a negative errno. */
static int world_add_vm(World *w, QmpPeers *peers, const char *name, QmpPeerMode mode, uint32_t demand_ppm) {
        SimVm *v = &w->vm[w->n_vm];
        int r;

        snprintf(v->path, sizeof(v->path), "%s/%s", w->dir, name);
        snprintf(v->uuid, sizeof(v->uuid), "00000000-0000-4000-8000-%012zu", w->n_vm + 1);
        v->pid = km_process_new(w->model);
        if (v->pid < 0)
                return v->pid;
        v->tid = km_thread_new(w->model, v->pid);
        if (v->tid < 0)
                return v->tid;
        r = km_thread_set_demand(w->model, v->tid, demand_ppm);
        if (r < 0)
                return r;
        r = qmp_peers_add(peers, v->path, &(QmpPeerSpec) { .mode = mode, .uuid = v->uuid, .vcpu_tid = v->tid });
        if (r < 0)
                return r;
        return (int) w->n_vm++;
}

static void *run_loop(void *arg) {
        int r = daemon_run(arg);

        if (r < 0)
                fail("daemon_run: %s", strerror(-r));
        return NULL;
}

static int daemon_up(World *w) {
        DaemonOptions o = {
                .state_dir = w->state,
                .socket_path = w->sock,
                .subtree = "vmmgr.slice",
                .model_peer_pid = peer_pid,
                .model_peer_pid_userdata = w,
        };
        int r = kh_open_model(w->model, &(KHostConfig) { .subtree = "vmmgr.slice", .controllers = controllers },
                              &o.host);

        if (r < 0)
                return r;
        r = daemon_new(&o, &w->d); /* owns the host from here on */
        if (r < 0)
                return r;
        if (verbose) /* its timers (commits every 2 s, ...) count from here */
                printf("vmmgrd started at t=%.3f s\n", now_sec() - t_origin);
        if (pthread_create(&w->loop, NULL, run_loop, w->d) != 0)
                return -EAGAIN;
        w->running = true;
        return 0;
}

/* Stops the loop; the daemon stays for daemon_tick_now(). */
static void daemon_stop(World *w) {
        if (!w->running)
                return;
        /* SIGTERM is blocked in every thread: the daemon's signalfd takes it. */
        (void) kill(getpid(), SIGTERM);
        pthread_join(w->loop, NULL);
        w->running = false;
}

static void world_free(World *w) {
        char cmd[128];

        daemon_stop(w);
        w->d = daemon_free(w->d);
        qmp_peers_free(w->peers);
        qmp_peers_free(w->odd);
        km_free(w->model);
        free(w->vm);
        if (w->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
                (void) !system(cmd);
        }
}

/* ---- requests through vmmgr's own client ---------------------------------- */

static long call(const World *w, const char *method, const char *path, const char *body, char **ret_body) {
        long status = 0;
        char *reply = NULL;
        HttpError err = { "" };

        if (http_request(w->sock, method, path, body, 10000, &status, &reply, &err) < 0) {
                fail("%s %s: %s", method, path, err.message);
                status = -1;
        }
        if (ret_body)
                *ret_body = reply;
        else
                free(reply);
        return status;
}

static long register_vm(const World *w, size_t i) {
        struct json_object *o = json_object_new_object();
        long status;

        json_object_object_add(o, "uuid", json_object_new_string(w->vm[i].uuid));
        json_object_object_add(o, "qmp", json_object_new_string(w->vm[i].path));
        status = call(w, "POST", "/v1/vms", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL);
        json_object_put(o);
        return status;
}

/* The link states of GET /v1/vms's reply: how many are "bound", and the
 * link of `uuid` (NULL: any) copied to ret_link ("" when not listed). */
static int links_of(const char *reply, const char *uuid, size_t *ret_bound, char *ret_link, size_t size) {
        struct json_object *o = json_tokener_parse(reply ? reply : ""), *vms;
        size_t bound = 0;

        if (ret_link)
                snprintf(ret_link, size, "%s", "");
        if (!o || !json_object_object_get_ex(o, "vms", &vms) || !json_object_is_type(vms, json_type_array)) {
                json_object_put(o);
                return -EBADMSG;
        }
        for (size_t i = 0; i < json_object_array_length(vms); i++) {
                struct json_object *vm = json_object_array_get_idx(vms, i), *u, *l;
                const char *link;

                if (!json_object_object_get_ex(vm, "uuid", &u) || !json_object_object_get_ex(vm, "link", &l))
                        continue;
                link = json_object_get_string(l);
                if (strcmp(link, "bound") == 0)
                        bound++;
                if (uuid && ret_link && strcmp(json_object_get_string(u), uuid) == 0)
                        snprintf(ret_link, size, "%s", link);
        }
        json_object_put(o);
        if (ret_bound)
                *ret_bound = bound;
        return 0;
}

/* Waits until `want` VMs are bound; 0 or -ETIMEDOUT. */
static int wait_bound(const World *w, size_t want, unsigned ms) {
        uint64_t deadline = now_msec() + ms;
        size_t bound = 0;

        while (now_msec() < deadline) {
                char *reply = NULL;

                if (call(w, "GET", "/v1/vms", NULL, &reply) == 200 && links_of(reply, NULL, &bound, NULL, 0) == 0 &&
                    bound >= want) {
                        free(reply);
                        return 0;
                }
                free(reply);
                usleep(50000);
        }
        fail("%zu of %zu VMs bound after %u ms", bound, want, ms);
        return -ETIMEDOUT;
}

/* ---- samples ---------------------------------------------------------------- */

typedef struct Samples {
        double *v;
        size_t n, cap;
} Samples;

static int samples_add(Samples *s, double x) {
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                double *nv = realloc(s->v, cap * sizeof(double));
                if (!nv)
                        return -ENOMEM;
                s->v = nv;
                s->cap = cap;
        }
        s->v[s->n++] = x;
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void samples_sort(Samples *s) {
        qsort(s->v, s->n, sizeof(double), cmp_double);
}

/* Nearest rank on sorted samples; 0 when empty. */
static double pct(const Samples *s, double p) {
        size_t k;

        if (s->n == 0)
                return 0;
        k = (size_t) (p / 100.0 * (double) s->n + 0.999999);
        k = k == 0 ? 1 : k > s->n ? s->n : k;
        return s->v[k - 1];
}

/* ---- 1. a stalled QMP peer delays nobody --------------------------------------- */

/* One GET /v1/vms, timed; its link of `uuid` in ret_link. */
static int timed_list(const World *w, const char *uuid, Samples *s, char *ret_link, size_t size) {
        char *reply = NULL;
        double t0 = now_sec(), dt;
        long status = call(w, "GET", "/v1/vms", NULL, &reply);
        int r;

        dt = (now_sec() - t0) * 1e3;
        if (verbose && dt > 5)
                printf("slow: GET /v1/vms took %.2f ms, sent at t=%.3f s\n", dt, t0 - t_origin);
        if (status != 200) {
                fail("GET /v1/vms: %ld %s", status, reply ? reply : "");
                free(reply);
                return -EPROTO;
        }
        r = links_of(reply, uuid, NULL, ret_link, size);
        free(reply);
        if (r < 0) {
                fail("GET /v1/vms: not a VM list");
                return r;
        }
        return samples_add(s, dt);
}

typedef struct Pending {
        const World *w;
        size_t vm;
        long status;
        bool done;
} Pending;

static void *register_in_thread(void *arg) {
        Pending *p = arg;

        p->status = register_vm(p->w, p->vm);
        __atomic_store_n(&p->done, true, __ATOMIC_SEQ_CST);
        return NULL;
}

static void print_ms(const char *name, double v) {
        printf("figure: %s %.2f ms\n", name, v);
}

static int bench_stall(void) {
        World w;
        Samples reg = { 0 }, adopt = { 0 }, all = { 0 };
        size_t s_vm = 0, b_vm = 0;
        bool seen_stalled = false;
        int r;

        r = world_new(&w, N_SMALL + 2);
        if (r < 0) {
                fail("world: %s", strerror(-r));
                goto out;
        }
        for (size_t i = 0; i < N_SMALL; i++) {
                char name[32];
                snprintf(name, sizeof(name), "vm%zu.sock", i);
                if ((r = world_add_vm(&w, w.peers, name, QMP_PEER_ANSWER, 300000)) < 0)
                        break;
        }
        /* S: accepts, never writes a byte.  B: answers now, stalls after the restart. */
        if (r >= 0 && (r = world_add_vm(&w, w.peers, "silent.sock", QMP_PEER_SILENT, 0)) >= 0)
                s_vm = (size_t) r;
        if (r >= 0 && (r = world_add_vm(&w, w.odd, "stall.sock", QMP_PEER_ANSWER, 300000)) >= 0)
                b_vm = (size_t) r;
        if (r < 0 || (r = qmp_peers_start(w.peers)) < 0 || (r = qmp_peers_start(w.odd)) < 0 ||
            (r = daemon_up(&w)) < 0) {
                fail("stall world: %s", strerror(-r));
                goto out;
        }
        for (size_t i = 0; i < N_SMALL; i++)
                if (register_vm(&w, i) != 201)
                        fail("VM %zu not registered", i);
        if (register_vm(&w, b_vm) != 201)
                fail("the VM that stalls later not registered");
        if (failures)
                goto out;

        /* a. Registrations of a QEMU that never answers. */
        for (int round = 0; round < SILENT_ROUNDS; round++) {
                Pending p = { .w = &w, .vm = s_vm };
                char link[32] = "";
                size_t before = reg.n;
                pthread_t t;

                if (pthread_create(&t, NULL, register_in_thread, &p) != 0) {
                        fail("pthread_create");
                        goto out;
                }
                /* Until S is listed, its registration has not reached vmmgrd. */
                while (!link[0] && !__atomic_load_n(&p.done, __ATOMIC_SEQ_CST)) {
                        Samples ignored = { 0 };
                        (void) timed_list(&w, w.vm[s_vm].uuid, &ignored, link, sizeof(link));
                        free(ignored.v);
                        usleep(1000);
                }
                while (!__atomic_load_n(&p.done, __ATOMIC_SEQ_CST)) {
                        if (timed_list(&w, w.vm[s_vm].uuid, &reg, link, sizeof(link)) < 0)
                                break;
                        usleep(STALL_GAP_USEC);
                }
                pthread_join(t, NULL);
                if (p.status != 504)
                        fail("the silent QEMU's registration: %ld, want 504", p.status);
                if (reg.n - before < 100)
                        fail("only %zu requests while the registration was in flight", reg.n - before);
        }

        /* b. An adopted VM whose QEMU greets, then never answers. */
        daemon_stop(&w);
        w.d = daemon_free(w.d);
        qmp_peers_free(w.odd);
        w.odd = qmp_peers_new();
        if (!w.odd || (r = qmp_peers_add(w.odd, w.vm[b_vm].path,
                                         &(QmpPeerSpec) { .mode = QMP_PEER_STALL_QUERIES, .uuid = w.vm[b_vm].uuid,
                                                          .vcpu_tid = w.vm[b_vm].tid })) < 0 ||
            (r = qmp_peers_start(w.odd)) < 0 || (r = daemon_up(&w)) < 0) {
                fail("restart with a stalling QEMU: %s", strerror(r < 0 ? -r : ENOMEM));
                goto out;
        }
        if (wait_bound(&w, N_SMALL, 10000) < 0)
                goto out;
        {
                uint64_t end = now_msec() + ADOPTION_WINDOW_MSEC;
                char link[32];

                while (now_msec() < end) {
                        if (timed_list(&w, w.vm[b_vm].uuid, &adopt, link, sizeof(link)) < 0)
                                break;
                        if (strcmp(link, "stalled") == 0)
                                seen_stalled = true;
                        else if (strcmp(link, "connecting") != 0)
                                fail("the stalling VM's link is \"%s\"", link);
                        usleep(STALL_GAP_USEC);
                }
        }
        if (!seen_stalled)
                fail("the stalling VM was never shown stalled in %d ms", ADOPTION_WINDOW_MSEC);

        for (size_t i = 0; i < reg.n; i++)
                samples_add(&all, reg.v[i]);
        for (size_t i = 0; i < adopt.n; i++)
                samples_add(&all, adopt.v[i]);
        samples_sort(&reg);
        samples_sort(&adopt);
        samples_sort(&all);
        printf("stall: %zu GET /v1/vms (%d VMs) while a registration of a silent QEMU was in flight, "
               "%zu while an adopted QEMU stalled\n",
               reg.n, N_SMALL + 2, adopt.n);
        print_ms("api.stall.registration.p50_ms", pct(&reg, 50));
        print_ms("api.stall.registration.max_ms", pct(&reg, 100));
        print_ms("api.stall.adoption.p50_ms", pct(&adopt, 50));
        print_ms("api.stall.adoption.max_ms", pct(&adopt, 100));
        print_ms("api.stall.other_request_p50_ms", pct(&all, 50));
        print_ms("api.stall.other_request_max_ms", pct(&all, 100));
        print_ms("api.stall.other_request_ms", pct(&all, 100));
out:
        world_free(&w);
        free(reg.v);
        free(adopt.v);
        free(all.v);
        return failures ? -1 : 0;
}

/* ---- 2. 1,000 VMs, 32 keep-alive clients ---------------------------------------- */

typedef struct Registrar {
        const World *w;
        size_t from, step;
        unsigned errors;
} Registrar;

static void *register_some(void *arg) {
        Registrar *g = arg;

        for (size_t i = g->from; i < g->w->n_vm; i += g->step) {
                long status = register_vm(g->w, i);
                if (status != 201) {
                        if (g->errors++ < SHOW_ERRORS)
                                fprintf(stderr, "error: registering VM %zu: %ld\n", i, status);
                }
        }
        return NULL;
}

/* A raw HTTP/1.1 client on one keep-alive connection. */
typedef struct Client {
        const World *w;
        int id, fd;
        char *buf;
        size_t cap, len;
        pthread_barrier_t *start;
        uint64_t warm_end_ns, end_ns;
        uint64_t *lat_ns;
        size_t n_lat, max_requests;
        uint64_t ok, errors, reconnects;
} Client;

static unsigned shown_errors;

static void client_error(Client *c, const char *fmt, ...) {
        va_list ap;

        if (__atomic_fetch_add(&shown_errors, 1, __ATOMIC_RELAXED) >= SHOW_ERRORS)
                return;
        va_start(ap, fmt);
        fprintf(stderr, "error: client %d: ", c->id);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static int client_connect(Client *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (c->fd >= 0)
                close(c->fd);
        c->len = 0;
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->w->sock);
        if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return 0;
}

static int send_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int fill(Client *c) {
        ssize_t k;

        if (c->len == c->cap) {
                char *nb = realloc(c->buf, c->cap * 2);
                if (!nb)
                        return -ENOMEM;
                c->buf = nb;
                c->cap *= 2;
        }
        do
                k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k == 0)
                return -EPIPE; /* the server closed the connection */
        c->len += (size_t) k;
        return 0;
}

/* Reads one response: its status, and its body at buf + *ret_body_off
 * (ret_body_len bytes).  The caller drops it with client_consume(). */
static int read_reply(Client *c, int *ret_status, size_t *ret_body_off, size_t *ret_body_len, size_t *ret_total) {
        char *end, *line, *eol;
        size_t head, body_len = SIZE_MAX;
        int r, status;

        for (;;) {
                end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
                if (end)
                        break;
                if ((r = fill(c)) < 0)
                        return r;
        }
        head = (size_t) (end - c->buf) + 4;
        if (head < 13 || memcmp(c->buf, "HTTP/1.1 ", 9) != 0 || c->buf[9] < '1' || c->buf[9] > '5' ||
            c->buf[10] < '0' || c->buf[10] > '9' || c->buf[11] < '0' || c->buf[11] > '9' || c->buf[12] != ' ')
                return -EBADMSG;
        status = (c->buf[9] - '0') * 100 + (c->buf[10] - '0') * 10 + (c->buf[11] - '0');
        line = memchr(c->buf, '\n', head) + 1;
        while (line < end + 2) {
                eol = memchr(line, '\r', (size_t) (end + 2 - line));
                if (!eol)
                        break;
                if ((size_t) (eol - line) > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
                        char *p = line + 15, *q;
                        unsigned long long v;

                        while (*p == ' ' || *p == '\t')
                                p++;
                        errno = 0;
                        v = strtoull(p, &q, 10);
                        if (errno != 0 || q == p || v > (1u << 24))
                                return -EBADMSG;
                        body_len = (size_t) v;
                } else if ((size_t) (eol - line) > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0)
                        return -EPROTO; /* a body without Content-Length */
                line = eol + 2;
        }
        if (body_len == SIZE_MAX)
                return -EPROTO;
        while (c->len < head + body_len)
                if ((r = fill(c)) < 0)
                        return r;
        *ret_status = status;
        *ret_body_off = head;
        *ret_body_len = body_len;
        *ret_total = head + body_len;
        return 0;
}

static void client_consume(Client *c, size_t n) {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
}

/* A reply is right when it is 200 with a JSON object about the VM asked
 * for: the uuid is looked for in every reply, the JSON parsed in some. */
static bool reply_ok(Client *c, int status, const char *body, size_t len, const char *uuid, bool parse) {
        size_t last = len;

        while (last > 0 && (body[last - 1] == '\n' || body[last - 1] == '\r' || body[last - 1] == ' '))
                last--;
        if (status != 200 || last < 2 || body[0] != '{' || body[last - 1] != '}' ||
            !memmem(body, len < 128 ? len : 128, uuid, VM_ID_STRLEN)) {
                client_error(c, "GET credits of %s: status %d, body %.*s", uuid, status, (int) (len < 200 ? len : 200),
                             body);
                return false;
        }
        if (parse) {
                struct json_tokener *tok = json_tokener_new();
                struct json_object *o = tok ? json_tokener_parse_ex(tok, body, (int) len) : NULL, *u;
                bool good = o && json_tokener_get_error(tok) == json_tokener_success &&
                            json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "uuid", &u) &&
                            strcmp(json_object_get_string(u), uuid) == 0 &&
                            json_object_object_get_ex(o, "balance_usec", &u);

                json_object_put(o);
                json_tokener_free(tok);
                if (!good) {
                        client_error(c, "GET credits of %s: not the VM's credits as JSON: %.*s", uuid,
                                     (int) (len < 200 ? len : 200), body);
                        return false;
                }
        }
        return true;
}

static void *client_run(void *arg) {
        Client *c = arg;
        char req[256];
        size_t n_vm = c->w->n_vm;
        int r = client_connect(c);

        if (r < 0)
                client_error(c, "connect: %s", strerror(-r));
        pthread_barrier_wait(c->start);
        if (r < 0) {
                c->errors++;
                return NULL;
        }
        for (uint64_t i = 0;; i++) {
                const char *uuid = c->w->vm[((size_t) c->id + i * CLIENTS) % n_vm].uuid;
                uint64_t t0 = now_nsec(), t1;
                size_t off = 0, len = 0, total = 0;
                int status = 0, n;
                bool measured = t0 >= c->warm_end_ns, good;

                if (t0 >= c->end_ns || c->n_lat >= c->max_requests)
                        break;
                n = snprintf(req, sizeof(req), "GET /v1/vms/%s/credits HTTP/1.1\r\nHost: localhost\r\n\r\n", uuid);
                r = send_all(c->fd, req, (size_t) n);
                if (r == 0)
                        r = read_reply(c, &status, &off, &len, &total);
                t1 = now_nsec();
                if (r < 0) {
                        client_error(c, "GET credits of %s: %s", uuid, strerror(-r));
                        if (measured)
                                c->errors++;
                        c->reconnects++;
                        if (client_connect(c) < 0) {
                                c->errors++;
                                break;
                        }
                        continue;
                }
                good = reply_ok(c, status, c->buf + off, len, uuid, i % PARSE_EVERY == 0);
                client_consume(c, total);
                if (!measured)
                        continue;
                c->lat_ns[c->n_lat++] = t1 - t0;
                if (good)
                        c->ok++;
                else
                        c->errors++;
        }
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int bench_load(World *w, double load_seconds) {
        Registrar g[REGISTER_THREADS];
        pthread_t th[CLIENTS > REGISTER_THREADS ? CLIENTS : REGISTER_THREADS];
        Client cl[CLIENTS];
        pthread_barrier_t start;
        uint64_t *all = NULL, ok = 0, errors = 0, reconnects = 0, t_start, per_client;
        size_t n_all = 0;
        unsigned reg_errors = 0;
        double t0, reg_s;
        int r;

        for (size_t i = 0; i < N_LOAD; i++) {
                static const uint32_t demand_ppm[] = { 0, 300000, 1000000 };
                char name[32];

                snprintf(name, sizeof(name), "vm%04zu.sock", i);
                if ((r = world_add_vm(w, w->peers, name, QMP_PEER_ANSWER, demand_ppm[i % 3])) < 0) {
                        fail("VM %zu: %s", i, strerror(-r));
                        return -1;
                }
        }
        if ((r = qmp_peers_start(w->peers)) < 0 || (r = daemon_up(w)) < 0) {
                fail("1,000-VM world: %s", strerror(-r));
                return -1;
        }

        t0 = now_sec();
        for (int i = 0; i < REGISTER_THREADS; i++) {
                g[i] = (Registrar) { .w = w, .from = (size_t) i, .step = REGISTER_THREADS };
                if (pthread_create(&th[i], NULL, register_some, &g[i]) != 0) {
                        fail("pthread_create");
                        return -1;
                }
        }
        for (int i = 0; i < REGISTER_THREADS; i++) {
                pthread_join(th[i], NULL);
                reg_errors += g[i].errors;
        }
        reg_s = now_sec() - t0;
        if (reg_errors > 0 || w->d->n_vms != N_LOAD) {
                fail("%u registrations failed; %zu VMs registered", reg_errors, w->d->n_vms);
                return -1;
        }
        printf("load: %d VMs registered over POST /v1/vms from %d threads in %.1f s\n", N_LOAD, REGISTER_THREADS,
               reg_s);
        printf("figure: daemon.register_1000_s %.1f s\n", reg_s);
        /* What GET /v1/vms itself costs with 1,000 VMs (no stall): the
         * scale of part 1's figure at this size. */
        {
                Samples list = { 0 };
                char link[8];

                for (int i = 0; i < 20; i++)
                        if (timed_list(w, NULL, &list, link, sizeof(link)) < 0)
                                break;
                samples_sort(&list);
                printf("figure: api.list_1000.p50_ms %.2f ms\n", pct(&list, 50));
                printf("figure: api.list_1000.max_ms %.2f ms\n", pct(&list, 100));
                free(list.v);
        }
        /* A Prometheus scrape of the 1,000 VMs (docs/metrics.md): a look
         * at every bank and some 40 samples per VM. */
        {
                Samples scrape = { 0 };
                size_t bytes = 0;

                for (int i = 0; i < 20; i++) {
                        char *text = NULL;
                        double t1 = now_sec();
                        long status = call(w, "GET", "/metrics", NULL, &text);

                        if (status != 200 || !text) {
                                fail("GET /metrics: %ld", status);
                                free(text);
                                free(scrape.v);
                                return -1;
                        }
                        bytes = strlen(text);
                        free(text);
                        if (samples_add(&scrape, (now_sec() - t1) * 1e3) < 0)
                                break;
                }
                samples_sort(&scrape);
                printf("figure: api.metrics_1000.p50_ms %.2f ms\n", pct(&scrape, 50));
                printf("figure: api.metrics_1000.max_ms %.2f ms\n", pct(&scrape, 100));
                printf("figure: api.metrics_1000.bytes %zu bytes\n", bytes);
                free(scrape.v);
        }

        per_client = LOAD_REQUESTS_MAX / CLIENTS;
        if (pthread_barrier_init(&start, NULL, CLIENTS + 1) != 0) {
                fail("pthread_barrier_init");
                return -1;
        }
        memset(cl, 0, sizeof(cl));
        for (int i = 0; i < CLIENTS; i++) {
                cl[i] = (Client) { .w = w, .id = i, .fd = -1, .cap = 16384, .start = &start,
                                   .max_requests = per_client };
                cl[i].buf = malloc(cl[i].cap);
                cl[i].lat_ns = malloc(per_client * sizeof(uint64_t));
                if (!cl[i].buf || !cl[i].lat_ns) {
                        fail("out of memory");
                        return -1;
                }
        }
        /* Deadlines are set before the threads start; the barrier holds
         * them until every connection is open. */
        t_start = now_nsec() + CLOCK_NSEC_PER_SEC / 2;
        for (int i = 0; i < CLIENTS; i++) {
                cl[i].warm_end_ns = t_start + WARMUP_NSEC;
                cl[i].end_ns = cl[i].warm_end_ns + (uint64_t) (load_seconds * 1e9);
        }
        for (int i = 0; i < CLIENTS; i++)
                if (pthread_create(&th[i], NULL, client_run, &cl[i]) != 0) {
                        fail("pthread_create");
                        return -1;
                }
        pthread_barrier_wait(&start);
        for (int i = 0; i < CLIENTS; i++)
                pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);

        all = malloc((size_t) CLIENTS * per_client * sizeof(uint64_t));
        if (!all) {
                fail("out of memory");
                return -1;
        }
        for (int i = 0; i < CLIENTS; i++) {
                memcpy(all + n_all, cl[i].lat_ns, cl[i].n_lat * sizeof(uint64_t));
                n_all += cl[i].n_lat;
                ok += cl[i].ok;
                errors += cl[i].errors;
                reconnects += cl[i].reconnects;
                free(cl[i].buf);
                free(cl[i].lat_ns);
                if (cl[i].fd >= 0)
                        close(cl[i].fd);
        }
        qsort(all, n_all, sizeof(uint64_t), cmp_u64);
        {
                double p50 = n_all ? (double) all[(n_all - 1) / 2] / 1e6 : 0;
                size_t k99 = (size_t) (0.99 * (double) n_all + 0.999999);
                double p99 = n_all ? (double) all[(k99 ? k99 : 1) - 1] / 1e6 : 0;
                double mx = n_all ? (double) all[n_all - 1] / 1e6 : 0;

                printf("load: %d clients, %.0f s after a 1 s warm-up: %" PRIu64 " replies right, %" PRIu64
                       " errors, %" PRIu64 " reconnects; max latency %.2f ms\n",
                       CLIENTS, load_seconds, ok, errors, reconnects, mx);
                printf("figure: api.req_per_s %.0f req/s\n", (double) ok / load_seconds);
                printf("figure: api.p50_ms %.3f ms\n", p50);
                printf("figure: api.p99_ms %.3f ms\n", p99);
                printf("figure: api.load_1000.errors %" PRIu64 " count\n", errors);
        }
        free(all);
        if (errors > 0 || ok == 0)
                fail("%" PRIu64 " requests were not answered 200 with the VM's credits", errors);
        return failures ? -1 : 0;
}

/* ---- 3. the credit tick with 1,000 VMs ------------------------------------------- */

typedef struct TickRun {
        Samples wall, cpu, mem;
        uint64_t looks, max_looks, events, max_events;
} TickRun;

static void tick_run_free(TickRun *t) {
        free(t->wall.v);
        free(t->cpu.v);
        free(t->mem.v);
}

/* Events the ticks recorded between two unix times (the database is the
 * loop's: called with the loop stopped). */
static size_t events_between(Daemon *d, int64_t *since_seq, uint64_t from, uint64_t to, char *kinds, size_t size) {
        ServiceEvent *ev = NULL;
        StateError err;
        size_t n = 0, k = 0;

        if (state_events_list(d->db, *since_seq, 100000, &ev, &n, &err) < 0) {
                fail("reading events: %s", err.message);
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                *since_seq = ev[i].seq;
                if (ev[i].time_unix_usec < from || ev[i].time_unix_usec > to)
                        continue;
                k++;
                if (kinds && !strstr(kinds, ev[i].kind) && strlen(kinds) + strlen(ev[i].kind) + 2 < size) {
                        strcat(kinds, kinds[0] ? "," : "");
                        strcat(kinds, ev[i].kind);
                }
        }
        service_events_free(ev, n);
        return k;
}

/* `ticks` ticks 100 ms apart (real time: the banks schedule looks on the
 * monotonic clock), timed; the memory engine's tick after each, timed
 * apart.  The loop is stopped: the model and the banks are the loop's. */
static void run_ticks(World *w, const char *what, int ticks, TickRun *ret) {
        uint64_t advanced_usec = now_usec(), usage, next = now_usec() + TICK_USEC;
        int64_t seq = 0;
        char kinds[128] = "";

        (void) events_between(w->d, &seq, 0, 0, NULL, 0); /* skip to the newest */
        for (int t = 0; t < ticks; t++) {
                uint64_t now = now_usec(), t0, t1, t2, adv, looks = w->d->stats.bank_ticks, unix0, events;

                if (now < next)
                        usleep((useconds_t) (next - now));
                next += TICK_USEC;
                /* The model's clock moves by the real time since the last
                 * tick; every VM's subtree is then simulated up to it (the
                 * model is lazy: the first read would do it, inside the
                 * tick), so that the tick pays for reads only, as on a
                 * kernel that accounts as it runs. */
                adv = now_usec();
                km_advance(w->model, adv - advanced_usec);
                advanced_usec = adv;
                for (size_t i = 0; i < w->n_vm; i++)
                        (void) km_thread_usage_nsec(w->model, w->vm[i].tid, &usage);
                unix0 = daemon_now_unix_usec();
                t0 = now_nsec();
                daemon_tick_now(w->d);
                t1 = now_nsec();
                daemon_memory_tick_now(w->d);
                t2 = now_nsec();
                looks = w->d->stats.bank_ticks - looks;
                events = events_between(w->d, &seq, unix0, daemon_now_unix_usec(), kinds, sizeof(kinds));
                samples_add(&ret->wall, (double) (t1 - t0) / 1e3);
                samples_add(&ret->cpu, (double) w->d->stats.last_tick_cpu_nsec / 1e3);
                samples_add(&ret->mem, (double) (t2 - t1) / 1e3);
                ret->looks += looks;
                ret->max_looks = looks > ret->max_looks ? looks : ret->max_looks;
                ret->events += events;
                ret->max_events = events > ret->max_events ? events : ret->max_events;
                if (verbose && (t1 - t0 > 1000000 || t2 - t1 > 1000000))
                        printf("slow: %s tick %d: %.0f us wall, %.0f us CPU, %" PRIu64 " looks, %" PRIu64
                               " events; memory tick %.0f us\n",
                               what, t, (double) (t1 - t0) / 1e3, (double) w->d->stats.last_tick_cpu_nsec / 1e3, looks,
                               events, (double) (t2 - t1) / 1e3);
        }
        samples_sort(&ret->wall);
        samples_sort(&ret->cpu);
        samples_sort(&ret->mem);
        printf("tick (%s): %d ticks of %zu VMs, %.1f bank looks per tick (at most %" PRIu64 "), %" PRIu64
               " events recorded (at most %" PRIu64 " in one tick%s%s%s); CPU per tick p50 %.0f us, p99 %.0f us; "
               "memory engine tick p50 %.0f us, p99 %.0f us\n",
               what, ticks, w->d->n_vms, (double) ret->looks / ticks, ret->max_looks, ret->events, ret->max_events,
               kinds[0] ? ": " : "", kinds, kinds[0] ? "" : "", pct(&ret->cpu, 50), pct(&ret->cpu, 99),
               pct(&ret->mem, 50), pct(&ret->mem, 99));
}

static int bench_tick(World *w) {
        TickRun t = { 0 };

        daemon_stop(w);
        run_ticks(w, "after the load", TICKS, &t);
        if (w->d->stats.tick_errors > 0)
                fail("%" PRIu64 " bank looks failed", w->d->stats.tick_errors);
        printf("figure: daemon.tick.p50_us %.0f us\n", pct(&t.wall, 50));
        printf("figure: daemon.tick.p99_us %.0f us\n", pct(&t.wall, 99));
        printf("figure: daemon.tick.max_us %.0f us\n", pct(&t.wall, 100));
        printf("figure: daemon.tick.looks_per_tick %.1f count\n", (double) t.looks / TICKS);
        printf("figure: daemon.tick.max_events_per_tick %" PRIu64 " count\n", t.max_events);
        printf("figure: daemon.memory_tick.p50_us %.0f us\n", pct(&t.mem, 50));
        printf("figure: daemon.memory_tick.p99_us %.0f us\n", pct(&t.mem, 99));
        tick_run_free(&t);
        return failures ? -1 : 0;
}

static void usage(const char *argv0) {
        fprintf(stderr,
                "usage: %s [-v] [--no-memory] [--no-stall] [LOAD_SECONDS]\n"
                "  -v           print the slow requests and ticks\n"
                "  --no-memory  vmmgrd manages cpu only (no memory engine): to compare\n"
                "  --no-stall   leave out part 1 (the stalled peers)\n"
                "  LOAD_SECONDS measured time of the API load, 1..300 (default %d)\n",
                argv0, LOAD_SECONDS_DEFAULT);
}

int main(int argc, char **argv) {
        double load_seconds = LOAD_SECONDS_DEFAULT;
        bool stall = true;
        struct rlimit rl;
        sigset_t mask;
        World w = { 0 };
        int r;

        for (int i = 1; i < argc; i++) {
                char *end;

                if (strcmp(argv[i], "-v") == 0)
                        verbose = true;
                else if (strcmp(argv[i], "--no-memory") == 0)
                        controllers = CG_CTRL_BIT(CG_CTRL_CPU);
                else if (strcmp(argv[i], "--no-stall") == 0)
                        stall = false;
                else if (i == argc - 1 && (load_seconds = strtod(argv[i], &end), *end == '\0') && load_seconds >= 1 &&
                         load_seconds <= 300)
                        ;
                else {
                        usage(argv[0]);
                        return 2;
                }
        }
        /* Blocked in every thread, so that the daemon's signalfd gets them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* 1,000 listening peers, their 1,000 connections, vmmgrd's 1,000 and
         * the clients' all are in this process. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 4 * N_LOAD) {
                fprintf(stderr, "error: RLIMIT_NOFILE %llu, need %d\n", (unsigned long long) rl.rlim_cur, 4 * N_LOAD);
                return 1;
        }
        log_set_max_level(LOG_LEVEL_WARNING);
        t_origin = now_sec();

        if (stall && bench_stall() < 0)
                goto out;
        r = world_new(&w, N_LOAD);
        if (r < 0) {
                fail("world: %s", strerror(-r));
                goto out;
        }
        if (bench_load(&w, load_seconds) < 0)
                goto out;
        (void) bench_tick(&w);
out:
        world_free(&w);
        if (failures)
                fprintf(stderr, "bench-daemon-1000: %d error(s)\n", failures);
        return failures ? 1 : 0;
}
