/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt's answers about domains from a thread of their own (the header
 * says why).  Two queues under one mutex: requests (UUIDs) for the thread,
 * answers (facts) for the loop, which an eventfd wakes.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/clock.h"
#include "common/macros.h"
#include "common/vmid.h"
#include "vmmgr/daemon/libvirt-worker.h"

#define QUEUE_MAX 4096

typedef enum LvRequestKind {
        LV_REQ_LOOK,
        LV_REQ_SET_CREDITS,
        LV_REQ_SET_MEMORY,
} LvRequestKind;

typedef struct LvRequest {
        char uuid[LV_UUID_STRING_MAX];
        LvRequestKind kind;
        LvCredits credits;
        unsigned long long memory_kib;
        LvWriteFn done;
        void *userdata;
} LvRequest;

/* An answer for the loop: facts, or a write's outcome. */
typedef struct LvAnswer {
        LvDomainFacts facts;
        bool write;
        LvWriteFn done;
        void *userdata;
} LvAnswer;

struct LvWorker {
        sd_event_source *io;
        int efd;
        pthread_t thread;
        bool started;
        char uri[256];
        LvFactsFn fn;
        void *userdata;

        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool quit;
        LvRequest *requests;
        size_t n_requests;
        char busy[LV_UUID_STRING_MAX]; /* the request in progress, "" when idle */
        LvAnswer *answers;
        size_t n_answers, answers_cap;
};

static bool uuid_ok(const char *s) {
        VmId id;

        return s && vm_id_parse(s, &id) == 0;
}

/* ---- the thread ------------------------------------------------------------ */

static void set_libvirt_error(LvDomainFacts *f, int r, const char *what) {
        const char *msg = virGetLastErrorMessage();

        f->r = r;
        snprintf(f->error, sizeof(f->error), "%s: %s", what, msg ? msg : "unknown error");
}

/* The connection broke (libvirtd restarted): the next request reopens. */
static void check_alive(virConnectPtr *conn) {
        if (*conn && virConnectIsAlive(*conn) != 1) {
                virConnectClose(*conn);
                *conn = NULL;
        }
}

static void ask(LvWorker *w, virConnectPtr *conn, const char *uuid, LvDomainFacts *f) {
        virDomainPtr dom;
        virDomainInfo info;
        const char *name;
        uint64_t t0 = now_usec();

        *f = (LvDomainFacts) { .credits_r = -ENOENT };
        snprintf(f->uuid, sizeof(f->uuid), "%s", uuid);
        if (!*conn) {
                *conn = virConnectOpen(w->uri);
                if (!*conn) {
                        set_libvirt_error(f, -ECONNREFUSED, "opening");
                        goto out;
                }
        }
        dom = virDomainLookupByUUIDString(*conn, uuid);
        if (!dom) {
                virErrorPtr e = virGetLastError();

                set_libvirt_error(f, e && e->code == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO, "looking it up");
                check_alive(conn);
                goto out;
        }
        name = virDomainGetName(dom);
        snprintf(f->name, sizeof(f->name), "%s", name ? name : "");
        if (virDomainGetInfo(dom, &info) < 0) {
                virErrorPtr e = virGetLastError();

                set_libvirt_error(f, e && e->code == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO, "reading its info");
                virDomainFree(dom);
                check_alive(conn);
                goto out;
        }
        f->state = (int) info.state;
        f->nr_vcpus = info.nrVirtCpu;
        f->max_mem_kib = info.maxMem;
        f->credits_r = lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &f->credits, &f->credits_err);
        if (f->credits_r == -EIO)
                check_alive(conn);
        /* Running only: for a paused domain libvirt asks QEMU, which for
         * an incoming migration waits until the migration job ends (up to
         * libvirt's 30 s job timeout when it fails), and this thread with
         * it.  A paused domain's balloon is not known until it runs. */
        if (info.state == VIR_DOMAIN_RUNNING) {
                virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
                int n = virDomainMemoryStats(dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);

                /* libvirt reports the balloon only where there is one. */
                for (int i = 0; i < n; i++)
                        if (st[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON) {
                                f->has_balloon = true;
                                f->balloon_actual_kib = st[i].val;
                        }
                if (n < 0)
                        virResetLastError();
        }
        virDomainFree(dom);
out:
        f->took_usec = now_usec() - t0;
}

/* A write: the credit spec into the metadata, or a balloon target. */
static void write_domain(LvWorker *w, virConnectPtr *conn, const LvRequest *q, LvDomainFacts *f) {
        LvCreditsError err = { 0 };
        virDomainPtr dom;
        uint64_t t0 = now_usec();

        *f = (LvDomainFacts) { 0 };
        snprintf(f->uuid, sizeof(f->uuid), "%s", q->uuid);
        if (!*conn && !(*conn = virConnectOpen(w->uri))) {
                set_libvirt_error(f, -ECONNREFUSED, "opening");
                goto out;
        }
        dom = virDomainLookupByUUIDString(*conn, q->uuid);
        if (!dom) {
                set_libvirt_error(f, -ENOENT, "looking it up");
                check_alive(conn);
                goto out;
        }
        if (q->kind == LV_REQ_SET_MEMORY) {
                f->r = virDomainSetMemoryFlags(dom, (unsigned long) q->memory_kib, VIR_DOMAIN_AFFECT_LIVE) < 0
                               ? -EIO
                               : 0;
                if (f->r < 0) {
                        set_libvirt_error(f, -EIO, "setting its memory");
                        check_alive(conn);
                }
        } else {
                f->r = lv_credits_set(dom, &q->credits, &err);
                if (f->r < 0) {
                        snprintf(f->error, sizeof(f->error), "%s", err.message[0] ? err.message : strerror(-f->r));
                        check_alive(conn);
                }
        }
        virDomainFree(dom);
out:
        f->took_usec = now_usec() - t0;
}

static void *worker_main(void *p) {
        LvWorker *w = p;
        virConnectPtr conn = NULL;

        /* Open now: the first request (vmmgrd's start, a domain starting)
         * should not wait for it.  A failure is retried by that request. */
        conn = virConnectOpen(w->uri);
        pthread_mutex_lock(&w->lock);
        for (;;) {
                LvRequest q;
                LvAnswer a;

                while (!w->quit && w->n_requests == 0)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->quit)
                        break;
                q = w->requests[0];
                memmove(w->requests, w->requests + 1, (w->n_requests - 1) * sizeof(w->requests[0]));
                w->n_requests--;
                snprintf(w->busy, sizeof(w->busy), "%s", q.uuid);
                pthread_mutex_unlock(&w->lock);

                a = (LvAnswer) { .write = q.kind != LV_REQ_LOOK, .done = q.done, .userdata = q.userdata };
                if (q.kind != LV_REQ_LOOK)
                        write_domain(w, &conn, &q, &a.facts);
                else
                        ask(w, &conn, q.uuid, &a.facts);

                pthread_mutex_lock(&w->lock);
                w->busy[0] = '\0';
                if (w->n_answers == w->answers_cap) {
                        size_t cap = w->answers_cap ? w->answers_cap * 2 : 16;
                        LvAnswer *na = reallocarray(w->answers, cap, sizeof(LvAnswer));

                        if (!na)
                                continue; /* dropped: the loop asks again at its next event */
                        w->answers = na;
                        w->answers_cap = cap;
                }
                w->answers[w->n_answers++] = a;
                (void) eventfd_write(w->efd, 1);
        }
        pthread_mutex_unlock(&w->lock);
        if (conn)
                virConnectClose(conn);
        return NULL;
}

/* ---- the loop's side ------------------------------------------------------- */

static int on_answers(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        LvWorker *w = userdata;
        LvAnswer *batch;
        eventfd_t v;
        size_t n;

        (void) eventfd_read(w->efd, &v);
        pthread_mutex_lock(&w->lock);
        batch = w->answers;
        n = w->n_answers;
        w->answers = NULL;
        w->n_answers = w->answers_cap = 0;
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; i < n; i++) {
                if (!batch[i].write)
                        w->fn(&batch[i].facts, w->userdata);
                else if (batch[i].done)
                        batch[i].done(batch[i].facts.uuid, batch[i].facts.r, batch[i].facts.error, batch[i].userdata);
        }
        free(batch);
        return 0;
}

int lv_worker_new(sd_event *event, const char *uri, LvFactsFn fn, void *userdata, LvWorker **ret) {
        LvWorker *w;
        int r;

        if (!event || !fn)
                return -EINVAL;
        w = calloc(1, sizeof(LvWorker));
        if (!w)
                return -ENOMEM;
        snprintf(w->uri, sizeof(w->uri), "%s", uri ? uri : LV_CONN_DEFAULT_URI);
        w->fn = fn;
        w->userdata = userdata;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(event, &w->io, w->efd, EPOLLIN, on_answers, w);
        if (r < 0)
                goto fail;
        {
                sigset_t all, old;

                /* Signals are the loop's (signalfd for SIGTERM, SIGINT,
                 * SIGHUP): a thread that could take one would die of it. */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (r < 0)
                goto fail;
        w->started = true;
        *ret = w;
        return 0;
fail:
        lv_worker_free(w);
        return r;
}

LvWorker *lv_worker_free(LvWorker *w) {
        bool joined = true;

        if (!w)
                return NULL;
        if (w->started) {
                struct timespec until;

                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_cond_signal(&w->wake);
                pthread_mutex_unlock(&w->lock);
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += 2;
                if (pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
                        /* Stuck in a call to a hung libvirtd: it keeps its
                         * state (the process is on its way out). */
                        pthread_detach(w->thread);
                        joined = false;
                }
        }
        w->io = sd_event_source_disable_unref(w->io);
        if (!joined)
                return NULL; /* the thread still uses w, its lock and its eventfd */
        if (w->efd >= 0)
                close(w->efd);
        free(w->requests);
        free(w->answers);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

static int enqueue(LvWorker *w, const LvRequest *q) {
        int r = 0;

        if (!uuid_ok(q->uuid))
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->n_requests; i++)
                if (strcmp(w->requests[i].uuid, q->uuid) == 0 && w->requests[i].kind == q->kind) {
                        if (q->kind != LV_REQ_LOOK) /* the newer spec or target wins */
                                w->requests[i] = *q;
                        goto out;
                }
        if (w->n_requests == QUEUE_MAX) {
                r = -ENOBUFS;
                goto out;
        }
        if (!w->requests) {
                w->requests = calloc(QUEUE_MAX, sizeof(w->requests[0]));
                if (!w->requests) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        w->requests[w->n_requests++] = *q;
        pthread_cond_signal(&w->wake);
out:
        pthread_mutex_unlock(&w->lock);
        return r;
}

int lv_worker_request(LvWorker *w, const char *uuid) {
        LvRequest q = { 0 };

        if (!uuid || strlen(uuid) >= sizeof(q.uuid))
                return -EINVAL;
        snprintf(q.uuid, sizeof(q.uuid), "%s", uuid);
        return enqueue(w, &q);
}

int lv_worker_set_credits(LvWorker *w, const char *uuid, const LvCredits *credits, LvWriteFn done,
                          void *userdata) {
        LvRequest q = { .kind = LV_REQ_SET_CREDITS, .done = done, .userdata = userdata };

        if (!uuid || strlen(uuid) >= sizeof(q.uuid) || !credits)
                return -EINVAL;
        snprintf(q.uuid, sizeof(q.uuid), "%s", uuid);
        q.credits = *credits;
        return enqueue(w, &q);
}

int lv_worker_set_memory(LvWorker *w, const char *uuid, unsigned long long kib, LvWriteFn done, void *userdata) {
        LvRequest q = { .kind = LV_REQ_SET_MEMORY, .memory_kib = kib, .done = done, .userdata = userdata };

        if (!uuid || strlen(uuid) >= sizeof(q.uuid) || kib == 0 || kib > ULONG_MAX)
                return -EINVAL;
        snprintf(q.uuid, sizeof(q.uuid), "%s", uuid);
        return enqueue(w, &q);
}

size_t lv_worker_pending(LvWorker *w) {
        size_t n;

        pthread_mutex_lock(&w->lock);
        n = w->n_requests + (w->busy[0] ? 1 : 0) + w->n_answers;
        pthread_mutex_unlock(&w->lock);
        return n;
}
