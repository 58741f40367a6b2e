/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/reclaim-pool.h - vmmgr's own memory reclaim threads.
 *
 * Background and proactive reclaim write memory.reclaim, which reclaims in
 * the writing thread: the whole point is that this thread is one of
 * vmmgr's and not a VM's vCPU thread (which would otherwise stall in
 * direct reclaim, issue "Memory").  A write can take from microseconds to
 * seconds, so it never runs on the event loop: the loop submits requests
 * and collects results; a small pool of workers does the writes.
 *
 *  - one request per VM at a time: a new submit for a VM replaces its
 *    pending request (the latest decision wins); a VM is worked on by one
 *    worker at a time, so parallelism is across VMs;
 *  - a request is done in chunks (so a cancel or a new decision takes
 *    effect between chunks, and one write never runs for long);
 *  - -EAGAIN from the kernel (it reclaimed less than a chunk) ends the
 *    request early: there is nothing cheap left to take;
 *  - cancel (a VM going away, a decision to stop) drops the pending
 *    request and interrupts a write in flight with a signal, which makes
 *    the kernel give up with -EINTR;
 *  - results come back through an eventfd the event loop polls.
 *
 * The pool installs a handler for one real-time signal (SIGRTMIN + 3 by
 * default) without SA_RESTART; nothing else in vmmgr may use it.
 *
 * With 0 threads (the kernel model, which is single-threaded, and unit
 * tests) nothing runs in the background: reclaim_pool_run_pending() does
 * the pending requests in the caller, in submission order.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vmid.h"
#include "kernel/kernel.h"

typedef struct ReclaimPool ReclaimPool;

typedef struct ReclaimResult {
        VmId vm;
        uint64_t asked;     /* bytes requested */
        uint64_t done;      /* bytes in chunks the kernel fully reclaimed */
        uint32_t chunks;    /* memory.reclaim writes made */
        int error;          /* 0, -EAGAIN (partial), -EINTR (cancelled), or the write's error */
        uint64_t busy_usec; /* time spent in the writes */
        uint64_t tag;       /* the submitter's, returned as given */
} ReclaimResult;

/* `max_threads` is clamped to the number of online CPUs; the pool starts
 * with `threads` (<= max) running.  Threads may be 0 (see above). */
int reclaim_pool_new(KHost *h, unsigned threads, unsigned max_threads, ReclaimPool **ret);
/* Cancels everything, interrupts writes in flight, joins the workers. */
ReclaimPool *reclaim_pool_free(ReclaimPool *p);
static inline void reclaim_pool_freep(ReclaimPool **p) {
        if (*p)
                reclaim_pool_free(*p);
}
#define _cleanup_reclaim_pool_ __attribute__((cleanup(reclaim_pool_freep)))

/* Grows or shrinks the worker count (clamped to max; with 0 the caller runs
 * requests).  Shrinking lets busy workers finish their current chunk. */
int reclaim_pool_set_threads(ReclaimPool *p, unsigned threads);
unsigned reclaim_pool_threads(const ReclaimPool *p);
unsigned reclaim_pool_max_threads(const ReclaimPool *p);

/* Asks for `bytes` to be reclaimed from the VM in chunks of `chunk` bytes
 * (0: 16 MiB), with `swappiness` (< 0: the kernel's).  Replaces the VM's
 * pending request; a request being worked on continues with the new
 * amount.  Never blocks.  -EINVAL for 0 bytes, -ENOMEM. */
int reclaim_pool_submit(ReclaimPool *p, const VmId *vm, uint64_t bytes, uint64_t chunk, int swappiness,
                        uint64_t tag);
/* Drops the VM's pending request and interrupts its write in flight (its
 * result comes back with -EINTR).  Returns true if there was anything. */
bool reclaim_pool_cancel(ReclaimPool *p, const VmId *vm);
/* True while the VM has a request pending or in flight. */
bool reclaim_pool_busy(ReclaimPool *p, const VmId *vm);

/* Readable (EPOLLIN) when results are waiting; reclaim_pool_collect() resets it. */
int reclaim_pool_fd(const ReclaimPool *p);
/* Moves up to n finished results into out; returns how many. */
size_t reclaim_pool_collect(ReclaimPool *p, ReclaimResult *out, size_t n);
/* 0 threads: runs every pending request now, in the caller. */
void reclaim_pool_run_pending(ReclaimPool *p);

/* Totals since the pool started. */
typedef struct ReclaimPoolStats {
        uint64_t requests, chunks, bytes_done, busy_usec, cancelled, partial, errors;
} ReclaimPoolStats;
void reclaim_pool_stats(ReclaimPool *p, ReclaimPoolStats *ret);
