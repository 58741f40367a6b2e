/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/reclaim-pool.c - worker threads that write memory.reclaim
 * (reclaim-pool.h says what and why).  One mutex guards the request list,
 * the results and the counters; workers drop it around each write.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "vmmgr/engine/reclaim-pool.h"

#define DEFAULT_CHUNK (UINT64_C(16) << 20)

typedef struct Request {
        VmId vm;
        uint64_t bytes, chunk, tag;
        int swappiness;
        bool running, cancel;
        unsigned worker; /* slot index while running */
        uint64_t done, busy_usec;
        uint32_t chunks;
        struct Request *next;
} Request;

typedef struct Worker {
        pthread_t thread;
        bool started, exited;
        unsigned index;
        ReclaimPool *pool;
} Worker;

struct ReclaimPool {
        KHost *host;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        Request *queue; /* pending and running, in submission order */
        ReclaimResult *results;
        size_t n_results, cap_results;
        Worker *workers;
        unsigned max_threads, target;
        bool stop;
        int efd;
        int signo;
        ReclaimPoolStats stats;
};

static void on_interrupt(int sig) {
        (void) sig; /* only there so that a blocking write returns -EINTR */
}

static Request *find(ReclaimPool *p, const VmId *vm, Request ***ret_link) {
        for (Request **link = &p->queue; *link; link = &(*link)->next)
                if (vm_id_equal(&(*link)->vm, vm)) {
                        if (ret_link)
                                *ret_link = link;
                        return *link;
                }
        return NULL;
}

static void unlink_request(ReclaimPool *p, Request *r) {
        for (Request **link = &p->queue; *link; link = &(*link)->next)
                if (*link == r) {
                        *link = r->next;
                        return;
                }
}

/* Called with the lock held.  A result that cannot be stored (no memory)
 * is dropped: the loop only uses results for reporting. */
static void finish(ReclaimPool *p, Request *r, int error) {
        ReclaimResult res = { .vm = r->vm, .asked = r->bytes, .done = r->done, .chunks = r->chunks,
                              .error = error, .busy_usec = r->busy_usec, .tag = r->tag };
        uint64_t one = 1;

        unlink_request(p, r);
        free(r);
        p->stats.requests++;
        if (error == -EINTR)
                p->stats.cancelled++;
        else if (error == -EAGAIN)
                p->stats.partial++;
        else if (error < 0)
                p->stats.errors++;
        if (p->n_results == p->cap_results) {
                size_t cap = p->cap_results ? p->cap_results * 2 : 16;
                ReclaimResult *n = realloc(p->results, cap * sizeof(*n));

                if (!n)
                        return;
                p->results = n;
                p->cap_results = cap;
        }
        p->results[p->n_results++] = res;
        (void) !write(p->efd, &one, sizeof(one));
        pthread_cond_broadcast(&p->wake);
}

/* Works one request to its end; called and returns with the lock held. */
static void work(ReclaimPool *p, Request *r) {
        int error = 0;

        while (!r->cancel && !p->stop && r->done < r->bytes) {
                uint64_t n = MIN(r->chunk, r->bytes - r->done), t0 = now_usec(), dt;
                VmId vm = r->vm;
                int swappiness = r->swappiness, e;

                pthread_mutex_unlock(&p->lock);
                e = kh_mem_reclaim(p->host, &vm, n, swappiness);
                pthread_mutex_lock(&p->lock);
                dt = now_usec() - t0;
                r->chunks++;
                r->busy_usec += dt;
                p->stats.chunks++;
                p->stats.busy_usec += dt;
                if (e < 0) {
                        error = e;
                        break;
                }
                r->done += n;
                p->stats.bytes_done += n;
        }
        if (error == 0 && (r->cancel || p->stop))
                error = -EINTR;
        finish(p, r, error);
}

static Request *next_pending(ReclaimPool *p) {
        for (Request *r = p->queue; r; r = r->next)
                if (!r->running)
                        return r;
        return NULL;
}

static void *worker_main(void *arg) {
        Worker *w = arg;
        ReclaimPool *p = w->pool;
        sigset_t set;

        /* The interrupt signal must reach this thread: unblock it here
         * whatever the creating thread had blocked. */
        sigemptyset(&set);
        sigaddset(&set, p->signo);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);

        pthread_mutex_lock(&p->lock);
        for (;;) {
                Request *r;

                while (!p->stop && w->index < p->target && !(r = next_pending(p)))
                        pthread_cond_wait(&p->wake, &p->lock);
                if (p->stop || w->index >= p->target)
                        break;
                r->running = true;
                r->worker = w->index;
                work(p, r);
        }
        w->exited = true;
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Joins workers that have exited; called without the lock. */
static void reap(ReclaimPool *p) {
        for (unsigned i = 0; i < p->max_threads; i++) {
                Worker *w = &p->workers[i];
                bool exited;

                pthread_mutex_lock(&p->lock);
                exited = w->started && w->exited;
                pthread_mutex_unlock(&p->lock);
                if (exited) {
                        pthread_join(w->thread, NULL);
                        w->started = w->exited = false;
                }
        }
}

int reclaim_pool_set_threads(ReclaimPool *p, unsigned threads) {
        int r = 0;

        threads = MIN(threads, p->max_threads);
        pthread_mutex_lock(&p->lock);
        p->target = threads;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        reap(p);
        for (unsigned i = 0; i < threads; i++) {
                Worker *w = &p->workers[i];

                if (w->started)
                        continue;
                *w = (Worker) { .index = i, .pool = p };
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0) {
                        pthread_mutex_lock(&p->lock);
                        p->target = i;
                        pthread_mutex_unlock(&p->lock);
                        return r;
                }
                w->started = true;
        }
        return 0;
}

unsigned reclaim_pool_threads(const ReclaimPool *p) {
        return p->target;
}

unsigned reclaim_pool_max_threads(const ReclaimPool *p) {
        return p->max_threads;
}

int reclaim_pool_new(KHost *h, unsigned threads, unsigned max_threads, ReclaimPool **ret) {
        struct sigaction sa = { .sa_handler = on_interrupt }; /* no SA_RESTART */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        ReclaimPool *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->host = h;
        p->signo = SIGRTMIN + 3;
        p->max_threads = MIN(max_threads, cpus > 0 ? (unsigned) cpus : 1u);
        p->efd = -EBADF;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        p->workers = calloc(MAX(p->max_threads, 1u), sizeof(*p->workers));
        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!p->workers || p->efd < 0) {
                r = p->efd < 0 ? negative_errno() : -ENOMEM;
                goto fail;
        }
        if (sigaction(p->signo, &sa, NULL) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = reclaim_pool_set_threads(p, threads);
        if (r < 0)
                goto fail;
        *ret = p;
        return 0;
fail:
        reclaim_pool_free(p);
        return r;
}

ReclaimPool *reclaim_pool_free(ReclaimPool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        for (Request *r = p->queue; r; r = r->next)
                if (r->running) {
                        r->cancel = true;
                        if (p->workers[r->worker].started)
                                pthread_kill(p->workers[r->worker].thread, p->signo);
                }
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; p->workers && i < p->max_threads; i++)
                if (p->workers[i].started)
                        pthread_join(p->workers[i].thread, NULL);
        while (p->queue) {
                Request *r = p->queue;

                p->queue = r->next;
                free(r);
        }
        free(p->results);
        free(p->workers);
        closep(&p->efd);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

int reclaim_pool_submit(ReclaimPool *p, const VmId *vm, uint64_t bytes, uint64_t chunk, int swappiness,
                        uint64_t tag) {
        Request *r;

        if (bytes == 0)
                return -EINVAL;
        pthread_mutex_lock(&p->lock);
        r = find(p, vm, NULL);
        if (!r) {
                Request **link = &p->queue;

                r = calloc(1, sizeof(*r));
                if (!r) {
                        pthread_mutex_unlock(&p->lock);
                        return -ENOMEM;
                }
                r->vm = *vm;
                while (*link)
                        link = &(*link)->next;
                *link = r;
        }
        /* A running request goes on from what it has done: the new
         * decision asks for `bytes` more from now. */
        r->bytes = r->done + bytes;
        r->chunk = chunk ? chunk : DEFAULT_CHUNK;
        r->swappiness = swappiness;
        r->tag = tag;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

bool reclaim_pool_cancel(ReclaimPool *p, const VmId *vm) {
        Request *r;
        bool found;

        pthread_mutex_lock(&p->lock);
        r = find(p, vm, NULL);
        found = r != NULL;
        if (r && r->running) {
                r->cancel = true;
                /* A signal that lands just before the write starts is
                 * lost; the chunk then runs to its end and the flag stops
                 * the request after it. */
                if (p->workers[r->worker].started)
                        pthread_kill(p->workers[r->worker].thread, p->signo);
        } else if (r) {
                unlink_request(p, r);
                free(r);
        }
        pthread_mutex_unlock(&p->lock);
        return found;
}

bool reclaim_pool_busy(ReclaimPool *p, const VmId *vm) {
        bool busy;

        pthread_mutex_lock(&p->lock);
        busy = find(p, vm, NULL) != NULL;
        pthread_mutex_unlock(&p->lock);
        return busy;
}

int reclaim_pool_fd(const ReclaimPool *p) {
        return p->efd;
}

size_t reclaim_pool_collect(ReclaimPool *p, ReclaimResult *out, size_t n) {
        uint64_t v;
        size_t k;

        (void) !read(p->efd, &v, sizeof(v));
        pthread_mutex_lock(&p->lock);
        k = MIN(n, p->n_results);
        if (k == 0) {
                pthread_mutex_unlock(&p->lock);
                return 0; /* (results may be NULL: nothing to copy) */
        }
        memcpy(out, p->results, k * sizeof(*out));
        memmove(p->results, p->results + k, (p->n_results - k) * sizeof(*out));
        p->n_results -= k;
        if (p->n_results > 0) {
                uint64_t one = 1;

                (void) !write(p->efd, &one, sizeof(one)); /* more to collect */
        }
        pthread_mutex_unlock(&p->lock);
        return k;
}

void reclaim_pool_run_pending(ReclaimPool *p) {
        Request *r;

        pthread_mutex_lock(&p->lock);
        if (p->target == 0)
                while ((r = next_pending(p))) {
                        r->running = true;
                        r->worker = 0;
                        work(p, r);
                }
        pthread_mutex_unlock(&p->lock);
}

void reclaim_pool_stats(ReclaimPool *p, ReclaimPoolStats *ret) {
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        pthread_mutex_unlock(&p->lock);
}
