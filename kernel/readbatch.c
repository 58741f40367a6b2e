/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Batched counter reads (kernel.h, "batched counter reads"), and the
 * kept-open counter files they read (readbatch.h).
 *
 * A KhReadBatch belongs to one KHost.  Counter files that readers open
 * (cpu.c, memory.c) attach to it: each takes a slot, and where the batch
 * has an io_uring ring, the slot is the file's index in the ring's
 * registered file table.  A run reads what was queued since the last one:
 *   io_uring: one SQE per read (IORING_OP_READ at offset 0 on the fixed
 *     file), one io_uring_enter that submits them all, the completions
 *     reaped from the ring; a read not completed when the submit returns
 *     is waited for (a second io_uring_enter) and counted;
 *   pread:    one pread(2) per read, in queue order.
 * Each read lands in its file's own buffer and is taken by the file's
 * next kh_batch_file_read(); a file that was not queued is read there and
 * then.  Writes never come here.
 *
 * The probe decides whether io_uring is worth it.  Batching saves a
 * syscall entry and exit per read, but kernfs files have no FMODE_NOWAIT:
 * Linux 6.18's io_uring polls each one before it reads it inline, and 6.1
 * hands every such read to an io-wq worker thread (which the tick would
 * then wait for).  So the probe wants io_uring allowed, a ring, registered
 * files and a cgroup read completed inline, and in KH_READ_AUTO it also
 * compares the CPU a read costs both ways on a real counter file (the
 * process's CPU time: a worker thread's counts too) and takes the cheaper.
 */
#include "kernel/readbatch.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "common/parse.h"

/* Ring sizes: submission entries, doubled up to the maximum as runs grow
 * (a run with more reads than that is submitted in parts). */
#define RING_MIN_ENTRIES 64u
#define RING_MAX_ENTRIES 4096u
/* Registered file table: grown by doubling, at most RLIMIT_NOFILE slots
 * (the kernel's own limit); files beyond it are read by their fd. */
#define FILES_MIN 64u
/* Calibration: reads per trial, trials per path (the cheapest counts). */
#define CAL_READS 32
#define CAL_TRIALS 5
#define CAL_BUF 1024

struct KhReadBatch {
        KHost *host;
        KhReadPath path;
        bool have_ring;
        struct io_uring ring;
        unsigned ring_entries;
        bool fixed;        /* files are registered with the ring */
        unsigned reg_cap;  /* size of the registered table */
        KhBatchFile **files; /* by slot; NULL: free */
        size_t n_files, files_cap; /* slots in use up to n_files */
        KhBatchFile **queue;
        size_t n_queued, queue_cap;
        bool ran; /* the queue holds the last run's files (results may be waiting) */
        KhReadBatchStats stats;
        KhReadProbe probe;
};

const char *kh_read_path_to_string(KhReadPath p) {
        return p == KH_READ_PATH_IO_URING ? "io_uring" : "pread";
}

const char *kh_read_mode_to_string(KhReadMode m) {
        switch (m) {
        case KH_READ_IO_URING:
                return "yes";
        case KH_READ_PREAD:
                return "no";
        case KH_READ_AUTO:
                break;
        }
        return "auto";
}

int kh_io_uring_disabled_parse(const char *text, int *ret_level) {
        uint64_t v;
        size_t len;

        if (!text)
                return -EINVAL;
        len = strlen(text);
        if (len > 0 && text[len - 1] == '\n')
                len--;
        if (parse_u64_n(text, len, &v) < 0 || v > 2)
                return -EBADMSG;
        *ret_level = (int) v;
        return 0;
}

/* ---- the ring ------------------------------------------------------------ */

static int ring_init(struct io_uring *ring, unsigned entries) {
        /* SUBMIT_ALL (5.18): an SQE that fails does not stop the rest.
         * COOP_TASKRUN (5.19): no interrupt to run completions' task work;
         * this thread runs it when it enters the kernel anyway. */
        static const unsigned flag_sets[] = {
                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
                IORING_SETUP_SUBMIT_ALL,
                0,
        };
        int r = -EINVAL;

        for (size_t i = 0; i < ARRAY_SIZE(flag_sets) && r == -EINVAL; i++) {
                struct io_uring_params p = { .flags = flag_sets[i] };

                r = io_uring_queue_init_params(entries, ring, &p);
        }
        return r;
}

static unsigned nofile_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UINT32_MAX)
                return UINT32_MAX;
        return (unsigned) rl.rlim_cur;
}

/* Registers the table anew with room for `cap` slots (every attached
 * file in its slot): one io_uring_register.  On failure no file is
 * registered and b->fixed is false: reads use the files' fds. */
static int register_table(KhReadBatch *b, struct io_uring *ring, unsigned cap) {
        _cleanup_free_ int *fds = NULL;
        int r;

        fds = malloc(sizeof(int) * cap);
        if (!fds)
                return -ENOMEM;
        for (unsigned i = 0; i < cap; i++)
                fds[i] = i < b->n_files && b->files[i] ? b->files[i]->fd : -1;
        r = io_uring_register_files(ring, fds, cap);
        if (r < 0)
                return r;
        b->reg_cap = cap;
        return 0;
}

/* Makes room for slot `slot` in the registered table. */
static void registered_grow(KhReadBatch *b, size_t slot) {
        unsigned limit = nofile_limit(), cap = b->reg_cap ? b->reg_cap : FILES_MIN;

        while (cap <= slot && cap < limit)
                cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
        cap = MIN(cap, limit);
        if (cap <= slot || cap == b->reg_cap)
                return; /* past the limit: this file is read by its fd */
        if (b->reg_cap)
                (void) io_uring_unregister_files(&b->ring);
        if (register_table(b, &b->ring, cap) < 0) {
                b->fixed = false; /* every file by its fd from now on */
                b->reg_cap = 0;
        }
        for (size_t i = 0; i < b->n_files; i++)
                if (b->files[i])
                        b->files[i]->registered = b->fixed && i < b->reg_cap;
}

/* A bigger ring for runs of `want` reads; the old one stays on failure
 * (runs are then submitted in parts). */
static void ring_grow(KhReadBatch *b, size_t want) {
        struct io_uring ring;
        unsigned entries = b->ring_entries;

        while (entries < want && entries < RING_MAX_ENTRIES)
                entries *= 2;
        if (entries == b->ring_entries || ring_init(&ring, entries) < 0)
                return;
        if (b->fixed && b->reg_cap && register_table(b, &ring, b->reg_cap) < 0) {
                io_uring_queue_exit(&ring);
                return;
        }
        io_uring_queue_exit(&b->ring);
        b->ring = ring;
        b->ring_entries = entries;
}

/* ---- files ----------------------------------------------------------------- */

static int batch_attach(KhReadBatch *b, KhBatchFile *f) {
        size_t slot;

        for (slot = 0; slot < b->n_files && b->files[slot]; slot++)
                ;
        if (slot == b->files_cap) {
                size_t cap = b->files_cap ? b->files_cap * 2 : FILES_MIN;
                KhBatchFile **n = reallocarray(b->files, cap, sizeof(*n));

                if (!n)
                        return -ENOMEM;
                b->files = n;
                b->files_cap = cap;
        }
        b->files[slot] = f;
        if (slot == b->n_files)
                b->n_files++;
        f->batch = b;
        f->slot = (int) slot;
        f->registered = false;
        if (b->have_ring && b->fixed) {
                if (slot >= b->reg_cap)
                        registered_grow(b, slot); /* registers f too */
                else
                        f->registered = io_uring_register_files_update(&b->ring, (unsigned) slot, &f->fd, 1) == 1;
                if (!b->fixed || slot >= b->reg_cap)
                        f->registered = false;
        }
        if (b->have_ring && !f->registered)
                b->stats.unregistered++;
        return 0;
}

static void batch_detach(KhReadBatch *b, KhBatchFile *f) {
        size_t slot = (size_t) f->slot;

        /* Queued or just read: the queue must not point at it any more. */
        for (size_t i = 0; i < b->n_queued; i++)
                if (b->queue[i] == f)
                        b->queue[i] = NULL;
        if (b->have_ring && b->fixed && f->registered) {
                int none = -1;

                (void) io_uring_register_files_update(&b->ring, (unsigned) slot, &none, 1);
        }
        b->files[slot] = NULL;
        while (b->n_files > 0 && !b->files[b->n_files - 1])
                b->n_files--;
        f->batch = NULL;
        f->slot = -1;
        f->registered = false;
}

int kh_batch_file_open(KHost *h, unsigned hier, const char *group, const char *file, size_t size,
                       KhBatchFile *f) {
        int fd;

        *f = KH_BATCH_FILE_INIT;
        f->host = h;
        if (!h->ops->open_read)
                return 0;
        fd = h->ops->open_read(h->be, hier, group, file);
        if (fd == -ENOENT)
                return -ENOENT;
        if (fd < 0)
                return 0; /* read through the backend */
        f->buf = malloc(size);
        if (!f->buf) {
                if (!h->ops->read_open)
                        close(fd);
                return -ENOMEM;
        }
        f->fd = fd;
        f->own_fd = !h->ops->read_open;
        f->size = size;
        /* Without a slot the file is still read, one read at a time. */
        if (h->batch)
                (void) batch_attach(h->batch, f);
        return 0;
}

void kh_batch_file_close(KhBatchFile *f) {
        if (f->batch)
                batch_detach(f->batch, f);
        /* Not through the host: it may be gone already (readers may
         * outlive it); a backend's own handles go with the backend. */
        if (f->fd >= 0 && f->own_fd)
                close(f->fd);
        free(f->buf);
        *f = KH_BATCH_FILE_INIT;
}

void kh_batch_file_queue(KhBatchFile *f) {
        KhReadBatch *b = f->batch;

        if (!b || f->queued)
                return;
        if (b->ran)
                kh_read_batch_discard(b);
        if (b->n_queued == b->queue_cap) {
                size_t cap = b->queue_cap ? b->queue_cap * 2 : FILES_MIN;
                KhBatchFile **n = reallocarray(b->queue, cap, sizeof(*n));

                if (!n)
                        return; /* read when taken */
                b->queue = n;
                b->queue_cap = cap;
        }
        b->queue[b->n_queued++] = f;
        f->queued = true;
        f->fresh = false;
}

/* One read now: the bytes read, or a negative errno. */
static int file_read_now(KhBatchFile *f) {
        const KBackendOps *ops = f->host->ops;

        if (ops->read_open) {
                size_t len = 0;
                /* As pread below: size-1 bytes at most, and -E2BIG for
                 * content that fills them. */
                int r = ops->read_open(f->host->be, f->fd, f->buf, f->size - 1, &len);

                return r < 0 ? r : (int) len;
        }
        ssize_t n = pread(f->fd, f->buf, f->size - 1, 0);

        return n < 0 ? negative_errno() : (int) n;
}

int kh_batch_file_read(KhBatchFile *f) {
        int n;

        if (f->fd < 0)
                return -EBADF;
        if (f->fresh) {
                f->fresh = false;
                n = f->result;
        } else
                n = file_read_now(f);
        if (n == -ENODEV)
                return -ENOENT; /* the group (or this controller's files) went away */
        if (n < 0)
                return n;
        if ((size_t) n >= f->size - 1)
                return -E2BIG;
        f->buf[n] = '\0';
        return 0;
}

/* ---- runs ------------------------------------------------------------------- */

static void run_pread(KhReadBatch *b, size_t from) {
        for (size_t i = from; i < b->n_queued; i++) {
                KhBatchFile *f = b->queue[i];

                if (!f)
                        continue;
                f->result = file_read_now(f);
                f->fresh = true;
                b->stats.syscalls++;
        }
}

/* Takes the completions in the ring; returns how many. */
static unsigned reap(KhReadBatch *b) {
        struct io_uring_cqe *cqe;
        unsigned head, k = 0;

        io_uring_for_each_cqe(&b->ring, head, cqe) {
                uint64_t i = io_uring_cqe_get_data64(cqe);

                k++;
                if (i >= b->n_queued || !b->queue[i])
                        continue;
                /* A read the ring could not do is done again when taken. */
                if (cqe->res == -EAGAIN || cqe->res == -EINTR || cqe->res == -ECANCELED || cqe->res == -EBADF)
                        continue;
                b->queue[i]->result = cqe->res;
                b->queue[i]->fresh = true;
        }
        io_uring_cq_advance(&b->ring, k);
        return k;
}

/* Waits for `n` completions still owed after a submit (reads the kernel
 * did not complete inline); < 0 if the ring fails. */
static int reap_rest(KhReadBatch *b, unsigned n) {
        while (n > 0) {
                struct io_uring_cqe *cqe;
                int r = io_uring_wait_cqe_nr(&b->ring, &cqe, n);

                b->stats.syscalls++;
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                n -= MIN(n, reap(b));
        }
        return 0;
}

/* The queue from `from` on through the ring, in parts of at most the
 * ring's size; returns where it stopped (n_queued when done) and sets
 * *ret_error when the ring failed. */
static size_t run_ring(KhReadBatch *b, size_t from, int *ret_error) {
        *ret_error = 0;
        while (from < b->n_queued) {
                size_t end = MIN(b->n_queued, from + b->ring_entries);
                unsigned prepared = 0, submitted = 0, reaped;
                int r;

                for (size_t i = from; i < end; i++) {
                        KhBatchFile *f = b->queue[i];
                        struct io_uring_sqe *sqe;

                        if (!f)
                                continue;
                        sqe = io_uring_get_sqe(&b->ring);
                        if (!sqe)
                                break; /* cannot happen: the ring was empty */
                        if (b->fixed && f->registered) {
                                io_uring_prep_read(sqe, f->slot, f->buf, (unsigned) (f->size - 1), 0);
                                sqe->flags |= IOSQE_FIXED_FILE;
                        } else
                                io_uring_prep_read(sqe, f->fd, f->buf, (unsigned) (f->size - 1), 0);
                        io_uring_sqe_set_data64(sqe, i);
                        prepared++;
                }
                while (submitted < prepared) {
                        r = io_uring_submit(&b->ring);
                        b->stats.syscalls++;
                        if (r == -EINTR)
                                continue;
                        if (r <= 0) {
                                /* What was submitted must complete before
                                 * its buffers are touched again. */
                                (void) reap_rest(b, submitted);
                                *ret_error = r < 0 ? r : -EIO;
                                return from;
                        }
                        submitted += (unsigned) r;
                }
                reaped = reap(b);
                if (reaped < submitted) {
                        b->stats.waits++;
                        r = reap_rest(b, submitted - reaped);
                        if (r < 0) {
                                *ret_error = r;
                                return end; /* the rest: read when taken */
                        }
                }
                from = end;
        }
        return from;
}

int kh_read_batch_run(KhReadBatch *b) {
        size_t n = b->n_queued, done = 0;
        int r = 0;

        if (b->ran || n == 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (b->queue[i])
                        b->queue[i]->queued = false;
        if (b->path == KH_READ_PATH_IO_URING) {
                if (n > b->ring_entries)
                        ring_grow(b, n);
                done = run_ring(b, 0, &r);
                if (r < 0) {
                        /* A ring that fails is not used again. */
                        b->stats.ring_errors++;
                        b->path = KH_READ_PATH_PREAD;
                        b->probe.path = KH_READ_PATH_PREAD;
                        snprintf(b->probe.note, sizeof(b->probe.note),
                                 "io_uring failed during a run (%s): pread since", strerror(-r));
                }
        }
        run_pread(b, done);
        b->ran = true;
        b->stats.runs++;
        b->stats.reads += n;
        return (int) MIN(n, (size_t) INT32_MAX);
}

void kh_read_batch_discard(KhReadBatch *b) {
        for (size_t i = 0; i < b->n_queued; i++)
                if (b->queue[i]) {
                        b->queue[i]->fresh = false;
                        b->queue[i]->queued = false;
                }
        b->n_queued = 0;
        b->ran = false;
}

/* ---- the probe ---------------------------------------------------------------- */

/* A counter file to try reads on: cpu.stat of vmmgr's subtree (what the
 * tick reads, one level up), else of the cpu hierarchy's root. */
static int probe_file(KHost *h) {
        unsigned hier;
        int fd;

        if (!h->ops->open_read || h->ops->read_open)
                return -EOPNOTSUPP; /* no file descriptors to give io_uring */
        if (kh_managed_hier(h, CG_CTRL_CPU, &hier) < 0 && kh_managed_hier(h, CG_CTRL_CPUACCT, &hier) < 0)
                return -ENOENT;
        fd = h->ops->open_read(h->be, hier, "", "cpu.stat");
        if (fd < 0)
                fd = h->ops->open_read(h->be, hier, NULL, "cpu.stat");
        if (fd < 0)
                fd = h->ops->open_read(h->be, hier, NULL, "cpuacct.usage");
        return fd;
}

/* The process's CPU time, not the thread's: a read that io_uring hands to
 * one of its worker threads costs as much, and is charged there. */
static uint64_t cpu_ns(void) {
        return clock_now_nsec(CLOCK_PROCESS_CPUTIME_ID);
}

/* CAL_READS reads of fd through the ring (registered at slot 0): CPU ns
 * per read; *ret_inline false when some had not completed when the submit
 * returned. */
static int cal_ring(struct io_uring *ring, char (*bufs)[CAL_BUF], uint64_t *ret_ns, bool *ret_inline) {
        uint64_t t0 = cpu_ns();
        unsigned ready, got = 0;
        int r;

        for (int i = 0; i < CAL_READS; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

                if (!sqe)
                        return -EIO;
                io_uring_prep_read(sqe, 0, bufs[i], CAL_BUF - 1, 0);
                sqe->flags |= IOSQE_FIXED_FILE;
                io_uring_sqe_set_data64(sqe, (uint64_t) i);
        }
        r = io_uring_submit(ring);
        if (r != CAL_READS)
                return r < 0 ? r : -EIO;
        ready = io_uring_cq_ready(ring);
        while (got < CAL_READS) {
                struct io_uring_cqe *cqe;
                unsigned head, k = 0;
                int res = 0;

                r = io_uring_wait_cqe(ring, &cqe);
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                io_uring_for_each_cqe(ring, head, cqe) {
                        if (cqe->res <= 0 && res == 0)
                                res = cqe->res < 0 ? cqe->res : -EBADMSG;
                        k++;
                }
                io_uring_cq_advance(ring, k);
                got += k;
                if (res < 0) {
                        /* drain the rest before the buffers go */
                        while (got < CAL_READS && io_uring_wait_cqe(ring, &cqe) == 0) {
                                io_uring_cqe_seen(ring, cqe);
                                got++;
                        }
                        return res;
                }
        }
        *ret_ns = (cpu_ns() - t0) / CAL_READS;
        *ret_inline = ready == CAL_READS;
        return 0;
}

static int cal_pread(int fd, char (*bufs)[CAL_BUF], uint64_t *ret_ns) {
        uint64_t t0 = cpu_ns();

        for (int i = 0; i < CAL_READS; i++)
                if (pread(fd, bufs[i], CAL_BUF - 1, 0) <= 0)
                        return -EIO;
        *ret_ns = (cpu_ns() - t0) / CAL_READS;
        return 0;
}

/* Fills *p for `mode`; on success with p->io_uring == TRI_YES, *ring is
 * set up (with no files registered) and the caller owns it. */
static void probe_io_uring(KHost *h, KhReadMode mode, KhReadProbe *p, struct io_uring *ring) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char(*bufs)[CAL_BUF] = NULL;
        char text[32];
        bool inline_ok = true;
        uint64_t best_ring = UINT64_MAX, best_pread = UINT64_MAX;
        int level = 0, r;

        *p = (KhReadProbe) { .io_uring = TRI_UNKNOWN, .path = KH_READ_PATH_PREAD };
        if (mode == KH_READ_PREAD) {
                snprintf(p->note, sizeof(p->note), "io_uring switched off (configuration)");
                return;
        }
        if (!h->ops->open_read || h->ops->read_open) {
                p->io_uring = TRI_NO;
                snprintf(p->note, sizeof(p->note), "the %s backend has no file descriptors", h->ops->name);
                return;
        }
        r = h->ops->read_host_file(h->be, KHOST_FILE_IO_URING_DISABLED, text, sizeof(text), NULL);
        if (r == 0 && kh_io_uring_disabled_parse(text, &level) == 0 && level == 2) {
                p->io_uring = TRI_NO;
                snprintf(p->note, sizeof(p->note), "kernel.io_uring_disabled = 2");
                return;
        }
        r = ring_init(ring, RING_MIN_ENTRIES);
        if (r < 0) {
                p->io_uring = TRI_NO;
                snprintf(p->note, sizeof(p->note), "io_uring_setup: %s%s", strerror(-r),
                         level == 1 ? " (kernel.io_uring_disabled = 1)" : "");
                return;
        }
        fd = probe_file(h);
        bufs = malloc(sizeof(*bufs) * CAL_READS);
        if (fd < 0 || !bufs) {
                /* Nothing to try a read on: io_uring works, the cgroup
                 * reads are unproven. */
                snprintf(p->note, sizeof(p->note), "no counter file to try a read on");
                goto fail;
        }
        r = io_uring_register_files(ring, &fd, 1);
        if (r < 0) {
                p->io_uring = TRI_NO;
                snprintf(p->note, sizeof(p->note), "io_uring_register_files: %s", strerror(-r));
                goto fail;
        }
        for (int t = 0; t < CAL_TRIALS; t++) {
                uint64_t ns_ring = 0, ns_pread = 0;
                bool inl = true;

                r = cal_ring(ring, bufs, &ns_ring, &inl);
                if (r < 0) {
                        p->io_uring = TRI_NO;
                        snprintf(p->note, sizeof(p->note), "a cgroup file read through io_uring failed: %s",
                                 strerror(-r));
                        goto fail;
                }
                inline_ok = inline_ok && inl;
                if (cal_pread(fd, bufs, &ns_pread) < 0) {
                        snprintf(p->note, sizeof(p->note), "pread of a cgroup file failed");
                        goto fail;
                }
                best_ring = MIN(best_ring, ns_ring);
                best_pread = MIN(best_pread, ns_pread);
                if (mode == KH_READ_IO_URING && !inline_ok)
                        break;
        }
        (void) io_uring_unregister_files(ring);
        p->io_uring_ns = best_ring;
        p->pread_ns = best_pread;
        if (!inline_ok) {
                p->io_uring = TRI_NO;
                snprintf(p->note, sizeof(p->note),
                         "cgroup file reads do not complete inline: io_uring hands them to its worker "
                         "threads (kernfs has no FMODE_NOWAIT)");
                io_uring_queue_exit(ring);
                return;
        }
        p->io_uring = TRI_YES;
        if (mode == KH_READ_AUTO && best_ring >= best_pread) {
                snprintf(p->note, sizeof(p->note),
                         "io_uring costs more CPU than pread here (%" PRIu64 " vs %" PRIu64 " ns a read)", best_ring,
                         best_pread);
                return;
        }
        p->path = KH_READ_PATH_IO_URING;
        snprintf(p->note, sizeof(p->note), "%" PRIu64 " ns a read (pread: %" PRIu64 " ns)", best_ring, best_pread);
        return;
fail:
        io_uring_queue_exit(ring);
}

int kh_read_probe(KHost *h, KhReadMode mode, KhReadProbe *ret) {
        struct io_uring ring;

        probe_io_uring(h, mode, ret, &ring);
        if (ret->io_uring == TRI_YES)
                io_uring_queue_exit(&ring);
        return 0;
}

/* ---- the batch ---------------------------------------------------------------- */

int kh_read_batch_new(KHost *h, KhReadMode mode, KhReadBatch **ret, KhReadProbe *ret_probe) {
        KhReadBatch *b;

        if (h->batch)
                return -EBUSY;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->host = h;
        probe_io_uring(h, mode, &b->probe, &b->ring);
        b->have_ring = b->probe.io_uring == TRI_YES;
        b->path = b->probe.path;
        if (b->have_ring) {
                b->ring_entries = RING_MIN_ENTRIES;
                b->fixed = true;
                registered_grow(b, 0);
        }
        h->batch = b;
        if (ret_probe)
                *ret_probe = b->probe;
        *ret = b;
        return 0;
}

KhReadBatch *kh_read_batch_free(KhReadBatch *b) {
        if (!b)
                return NULL;
        /* Files still attached are read on their own from now on. */
        for (size_t i = 0; i < b->n_files; i++)
                if (b->files[i]) {
                        b->files[i]->batch = NULL;
                        b->files[i]->slot = -1;
                        b->files[i]->queued = b->files[i]->fresh = false;
                }
        if (b->have_ring)
                io_uring_queue_exit(&b->ring);
        if (b->host->batch == b)
                b->host->batch = NULL;
        free(b->files);
        free(b->queue);
        free(b);
        return NULL;
}

KhReadBatch *kh_read_batch(KHost *h) {
        return h->batch;
}

KhReadPath kh_read_batch_path(const KhReadBatch *b) {
        return b->path;
}

void kh_read_batch_probe_result(const KhReadBatch *b, KhReadProbe *ret) {
        *ret = b->probe;
}

int kh_read_batch_set_path(KhReadBatch *b, KhReadPath p) {
        if (p == KH_READ_PATH_IO_URING && !b->have_ring)
                return -EOPNOTSUPP;
        if (b->n_queued > 0 && !b->ran)
                return -EBUSY; /* between a queue and its run */
        b->path = p;
        return 0;
}

void kh_read_batch_stats(const KhReadBatch *b, KhReadBatchStats *ret) {
        *ret = b->stats;
}
