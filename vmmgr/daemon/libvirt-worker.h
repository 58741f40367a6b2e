/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-worker.h - what vmmgrd asks libvirtd about a
 * domain, asked from a thread of its own, so that vmmgrd's loop never
 * waits for libvirtd.
 *
 * Why a thread: libvirtd answers a domain's RPCs only once it can lock the
 * domain, and it holds that lock while a hook runs and during parts of
 * every job.  vmmgr's own hook calls vmmgrd at "started": had vmmgrd asked
 * libvirtd about the domain from its loop at that moment (a lifecycle
 * event arrives while the hook runs), each would wait for the other until
 * the hook's time bound ran out.  Here the worker waits, the loop goes on
 * (the hook is answered at once), and the facts come back to the loop
 * through an eventfd.
 *
 * The worker has its own connection, opened on its thread.  libvirt's
 * event loop (libvirt-loop.c) refuses calls from any thread but the
 * loop's, which libvirt's client takes as "no events on this connection":
 * synchronous calls work, and this connection needs nothing else (events,
 * keepalive and the close callback are the loop connection's,
 * libvirt-conn.c).  A call that fails because the connection broke closes
 * it; the next request opens a new one.
 *
 * Requests are by domain UUID and deduplicated while queued; they are
 * answered in order, one at a time.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "vmmgr/daemon/libvirt-conn.h"
#include "vmmgr/daemon/libvirt-metadata.h"

#define LV_NAME_MAX 256

/* What libvirtd said about one domain. */
typedef struct LvDomainFacts {
        char uuid[LV_UUID_STRING_MAX];
        /* 0: found; -ENOENT: no such domain; -ECONNREFUSED: libvirtd not
         * reachable; -EIO: another failure (error says which). */
        int r;
        char error[256];
        char name[LV_NAME_MAX];
        int state;                /* virDomainState */
        unsigned nr_vcpus;
        unsigned long max_mem_kib;
        /* The balloon (virDomainMemoryStats' ACTUAL_BALLOON; absent when
         * the domain has no balloon device or libvirt could not ask). */
        bool has_balloon;
        unsigned long long balloon_actual_kib;
        /* lv_credits_get(LIVE): 0, -ENOENT (no element) or its error. */
        int credits_r;
        LvCredits credits;
        LvCreditsError credits_err;
        uint64_t took_usec;       /* how long libvirtd took to answer */
} LvDomainFacts;

typedef void (*LvFactsFn)(const LvDomainFacts *facts, void *userdata);
/* The outcome of a write: 0 or a negative errno with libvirt's message. */
typedef void (*LvWriteFn)(const char *uuid, int r, const char *error, void *userdata);

typedef struct LvWorker LvWorker;

/* Starts the thread; `fn` runs on `event`'s loop for every answer.
 * Nothing is opened until the first request. */
int lv_worker_new(sd_event *event, const char *uri, LvFactsFn fn, void *userdata, LvWorker **ret);
/* Stops the thread: the request in progress finishes (or, if libvirtd
 * hangs, the thread is left behind after 2 s and the process exits
 * without it); answers not yet delivered are dropped.  NULL. */
LvWorker *lv_worker_free(LvWorker *w);
/* Queues a request for the domain (no-op if it is queued already).
 * -EINVAL for a malformed UUID, -ENOBUFS when 4096 are queued. */
int lv_worker_request(LvWorker *w, const char *uuid);
/* Queues a write of the domain's <vmmgr:credits> (lv_credits_set: live,
 * and into its config when it is persistent); `done` (may be NULL) runs
 * on the loop with the outcome.  A later write for the same domain
 * replaces one still queued. */
int lv_worker_set_credits(LvWorker *w, const char *uuid, const LvCredits *credits, LvWriteFn done,
                          void *userdata);
/* Queues a balloon target for the domain (virDomainSetMemoryFlags, live),
 * in KiB; a newer target replaces one still queued.  `done` as above. */
int lv_worker_set_memory(LvWorker *w, const char *uuid, unsigned long long kib, LvWriteFn done, void *userdata);
/* Requests queued or in progress (tests). */
size_t lv_worker_pending(LvWorker *w);
