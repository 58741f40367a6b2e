/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HTTPS POSTs to peer vmmgrds from a small pool of threads (the header
 * says why).  One mutex guards two lists: requests for the threads, and
 * answered requests for the loop, which an eventfd wakes.  A request is
 * one allocation that travels from the first list to the second, so
 * answering never allocates and cannot fail.
 *
 * What the threads use lives in a PeerCore with a reference count: the
 * sender holds one reference and each thread one, and whoever lets go last
 * frees it.  That is what lets peer_sender_free() leave a stuck thread
 * behind without leaving it a dangling pointer.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "vmmgr/api/http-client.h"
#include "vmmgr/daemon/peer-sender.h"

#define BASE_URL_MAX 512
#define REQUEST_PATH_MAX 1024
#define JOIN_SEC 2

typedef struct PeerRequest {
        struct PeerRequest *next;
        char *key; /* or NULL */
        char *base_url;
        char *path;
        char *body;
        size_t body_len;
        long timeout_ms;
        PeerReply reply; /* filled in by a thread, or on replacement */
} PeerRequest;

typedef struct PeerCore PeerCore;

typedef struct PeerThread {
        PeerCore *core;
        unsigned index;
} PeerThread;

struct PeerCore {
        /* Set once before the threads start; read-only after. */
        char *ca_file, *cert_file, *key_file;
        int efd;
        PeerThread args[PEER_SENDER_THREADS];
        atomic_bool cancel; /* requests in flight give up (free) */

        pthread_mutex_t lock;
        pthread_cond_t wake;
        unsigned refs;
        bool quit;
        PeerRequest *queue, **queue_tail;
        size_t n_queued;
        /* The peer (base URL) each thread is sending to; NULL when idle. */
        const char *busy[PEER_SENDER_THREADS];
        size_t n_busy;
        PeerRequest *answers, **answers_tail;
        size_t n_answers;
};

struct PeerSender {
        PeerCore *core;
        sd_event_source *io;
        pthread_t threads[PEER_SENDER_THREADS];
        unsigned n_threads;
        PeerReplyFn fn;
        void *userdata;
};

static PeerRequest *request_free(PeerRequest *q) {
        if (!q)
                return NULL;
        free(q->key);
        free(q->base_url);
        free(q->path);
        free(q->body);
        free(q->reply.body);
        free(q);
        return NULL;
}

static void request_list_free(PeerRequest *q) {
        while (q) {
                PeerRequest *next = q->next;

                request_free(q);
                q = next;
        }
}

static void core_free(PeerCore *c) {
        if (c->efd >= 0)
                close(c->efd);
        request_list_free(c->queue);
        request_list_free(c->answers);
        free(c->ca_file);
        free(c->cert_file);
        free(c->key_file);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static void core_unref(PeerCore *c) {
        bool last;

        pthread_mutex_lock(&c->lock);
        last = --c->refs == 0;
        pthread_mutex_unlock(&c->lock);
        if (last)
                core_free(c);
}

/* Under the lock: hands an answered request to the loop. */
static void answer_locked(PeerCore *c, PeerRequest *q) {
        q->next = NULL;
        *c->answers_tail = q;
        c->answers_tail = &q->next;
        c->n_answers++;
        (void) eventfd_write(c->efd, 1);
}

/* ---- the threads ----------------------------------------------------------- */

static bool peer_busy_locked(const PeerCore *c, const char *base_url) {
        for (unsigned i = 0; i < PEER_SENDER_THREADS; i++)
                if (c->busy[i] && strcmp(c->busy[i], base_url) == 0)
                        return true;
        return false;
}

/* Under the lock: takes the oldest request whose peer no thread is
 * sending to, so one peer never holds two threads and its requests go
 * out in order. */
static PeerRequest *take_runnable_locked(PeerCore *c) {
        for (PeerRequest **p = &c->queue; *p; p = &(*p)->next) {
                PeerRequest *q = *p;

                if (peer_busy_locked(c, q->base_url))
                        continue;
                *p = q->next;
                if (c->queue_tail == &q->next)
                        c->queue_tail = p;
                q->next = NULL;
                c->n_queued--;
                return q;
        }
        return NULL;
}

static void send_one(PeerCore *c, PeerRequest *q) {
        HttpTarget t = {
                .base_url = q->base_url,
                .ca_file = c->ca_file,
                .cert_file = c->cert_file,
                .key_file = c->key_file,
                .cancel = &c->cancel,
        };
        HttpResponse resp;
        HttpError err = {};
        uint64_t t0 = now_usec();
        int r;

        r = http_request_ex(&t, "POST", q->path, q->body, q->body_len, q->timeout_ms, &resp, &err);
        q->reply.took_usec = now_usec() - t0;
        q->reply.r = r;
        if (r < 0) {
                snprintf(q->reply.error, sizeof(q->reply.error), "%s", err.message[0] ? err.message : strerror(-r));
        } else {
                q->reply.status = resp.status;
                q->reply.body = TAKE_PTR(resp.body);
                http_response_done(&resp);
        }
        /* Sent: the body is not needed any more. */
        free(q->body);
        q->body = NULL;
}

static void *thread_main(void *p) {
        PeerThread *self = p;
        PeerCore *c = self->core;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                PeerRequest *q = NULL;

                while (!c->quit && !(q = take_runnable_locked(c)))
                        pthread_cond_wait(&c->wake, &c->lock);
                if (!q)
                        break; /* quit */
                c->busy[self->index] = q->base_url;
                c->n_busy++;
                pthread_mutex_unlock(&c->lock);

                send_one(c, q);

                pthread_mutex_lock(&c->lock);
                c->busy[self->index] = NULL;
                c->n_busy--;
                answer_locked(c, q);
                /* The peer is free again: its next request may go, on any thread. */
                pthread_cond_broadcast(&c->wake);
                if (c->quit)
                        break;
        }
        pthread_mutex_unlock(&c->lock);
        core_unref(c);
        return NULL;
}

/* ---- the loop's side ------------------------------------------------------- */

static int on_answers(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        PeerSender *s = userdata;
        PeerCore *c = s->core;
        PeerRequest *batch;
        eventfd_t v;

        (void) eventfd_read(c->efd, &v);
        pthread_mutex_lock(&c->lock);
        batch = c->answers;
        c->answers = NULL;
        c->answers_tail = &c->answers;
        c->n_answers = 0;
        pthread_mutex_unlock(&c->lock);
        while (batch) {
                PeerRequest *next = batch->next;

                s->fn(&batch->reply, s->userdata);
                request_free(batch);
                batch = next;
        }
        return 0;
}

int peer_sender_new(sd_event *event, const PeerTls *tls, PeerReplyFn fn, void *userdata, PeerSender **ret) {
        PeerSender *s;
        PeerCore *c;
        int r;

        if (!event || !tls || !fn || !ret)
                return -EINVAL;
        if (!tls->ca_file || !tls->ca_file[0] || !tls->cert_file || !tls->cert_file[0] || !tls->key_file ||
            !tls->key_file[0])
                return -EINVAL;
        /* Before any thread: curl's own set-up is process-wide. */
        r = http_global_init();
        if (r < 0)
                return r;

        s = calloc(1, sizeof(PeerSender));
        c = calloc(1, sizeof(PeerCore));
        if (!s || !c) {
                free(s);
                free(c);
                return -ENOMEM;
        }
        s->core = c;
        s->fn = fn;
        s->userdata = userdata;
        c->refs = 1; /* the sender's */
        c->efd = -EBADF;
        c->queue_tail = &c->queue;
        c->answers_tail = &c->answers;
        atomic_init(&c->cancel, false);
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->wake, NULL);
        c->ca_file = strdup(tls->ca_file);
        c->cert_file = strdup(tls->cert_file);
        c->key_file = strdup(tls->key_file);
        if (!c->ca_file || !c->cert_file || !c->key_file) {
                r = -ENOMEM;
                goto fail;
        }
        c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->efd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(event, &s->io, c->efd, EPOLLIN, on_answers, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(s->io, "peer-sender");

        for (unsigned i = 0; i < PEER_SENDER_THREADS; i++) {
                sigset_t all, old;

                c->args[i] = (PeerThread){ .core = c, .index = i };
                /* The thread's reference, taken before it can drop it. */
                pthread_mutex_lock(&c->lock);
                c->refs++;
                pthread_mutex_unlock(&c->lock);
                /* Signals are the loop's (signalfd for SIGTERM, SIGINT,
                 * SIGHUP): a thread that could take one would die of it. */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                r = -pthread_create(&s->threads[i], NULL, thread_main, &c->args[i]);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                if (r < 0) {
                        pthread_mutex_lock(&c->lock);
                        c->refs--;
                        pthread_mutex_unlock(&c->lock);
                        goto fail;
                }
                (void) pthread_setname_np(s->threads[i], "peer-sender");
                s->n_threads++;
        }
        *ret = s;
        return 0;
fail:
        peer_sender_free(s);
        return r;
}

PeerSender *peer_sender_free(PeerSender *s) {
        PeerCore *c;

        if (!s)
                return NULL;
        c = s->core;
        if (s->n_threads > 0) {
                struct timespec until;

                pthread_mutex_lock(&c->lock);
                c->quit = true;
                atomic_store(&c->cancel, true);
                pthread_cond_broadcast(&c->wake);
                pthread_mutex_unlock(&c->lock);
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += JOIN_SEC;
                for (unsigned i = 0; i < s->n_threads; i++)
                        if (pthread_timedjoin_np(s->threads[i], NULL, &until) != 0)
                                /* Stuck where curl does not look at the
                                 * cancel flag: it frees the core if it
                                 * ever lets go last. */
                                pthread_detach(s->threads[i]);
        }
        s->io = sd_event_source_disable_unref(s->io);
        core_unref(c);
        free(s);
        return NULL;
}

/* Replaces a queued request with the same key, in its place.  Under the
 * lock; true when it did. */
static bool replace_locked(PeerCore *c, PeerRequest *q) {
        for (PeerRequest **p = &c->queue; *p; p = &(*p)->next) {
                PeerRequest *old = *p;

                if (!old->key || strcmp(old->key, q->key) != 0)
                        continue;
                q->next = old->next;
                *p = q;
                if (c->queue_tail == &old->next)
                        c->queue_tail = &q->next;
                old->reply.r = -ECANCELED;
                snprintf(old->reply.error, sizeof(old->reply.error),
                         "replaced by a newer request for %s before it was sent", old->key);
                free(old->body);
                old->body = NULL;
                answer_locked(c, old);
                return true;
        }
        return false;
}

static bool base_url_ok(const char *u) {
        size_t n;

        if (!u || strncmp(u, "https://", 8) != 0)
                return false;
        n = strlen(u);
        if (n <= 8 || n > BASE_URL_MAX)
                return false;
        for (const char *p = u; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return false;
        return u[n - 1] != '/'; /* the path brings the slash */
}

int peer_sender_post(PeerSender *s, const char *key, const char *base_url, const char *path, const char *json_body,
                     long timeout_ms, uint64_t tag) {
        PeerCore *c;
        PeerRequest *q;
        size_t body_len;
        int r = 0;

        if (!s || !base_url_ok(base_url) || !path || path[0] != '/' || strlen(path) > REQUEST_PATH_MAX || !json_body ||
            timeout_ms < 0 || timeout_ms > PEER_SENDER_TIMEOUT_MS_MAX || (key && !key[0]))
                return -EINVAL;
        for (const char *p = path; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return -EINVAL;
        body_len = strlen(json_body);
        if (body_len > PEER_SENDER_BODY_MAX)
                return -E2BIG;

        q = calloc(1, sizeof(PeerRequest));
        if (!q)
                return -ENOMEM;
        q->key = key ? strdup(key) : NULL;
        q->base_url = strdup(base_url);
        q->path = strdup(path);
        q->body = strdup(json_body);
        if ((key && !q->key) || !q->base_url || !q->path || !q->body) {
                request_free(q);
                return -ENOMEM;
        }
        q->body_len = body_len;
        q->timeout_ms = timeout_ms > 0 ? timeout_ms : PEER_SENDER_TIMEOUT_MS_DEFAULT;
        q->reply.tag = tag;

        c = s->core;
        pthread_mutex_lock(&c->lock);
        if (key && replace_locked(c, q))
                goto out;
        if (c->n_queued >= PEER_SENDER_QUEUE_MAX) {
                r = -ENOBUFS;
                goto out;
        }
        *c->queue_tail = q;
        c->queue_tail = &q->next;
        c->n_queued++;
        pthread_cond_signal(&c->wake);
out:
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                request_free(q);
        return r;
}

size_t peer_sender_queued(const PeerSender *s) {
        PeerCore *c = s->core;
        size_t n;

        pthread_mutex_lock(&c->lock);
        n = c->n_queued + c->n_busy + c->n_answers;
        pthread_mutex_unlock(&c->lock);
        return n;
}
