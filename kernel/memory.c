/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Typed memcg (cgroup v2) files of a VM group.  vmmgr never manages a v1
 * memory hierarchy by default (kernel.h), so these are v2 formats only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/cgfs.h"
#include "kernel/cgparse.h"
#include "kernel/khost.h"
#include "kernel/readbatch.h"

typedef struct MemTarget {
        unsigned hier;
        char group[CG_PATH_MAX];
} MemTarget;

static int mem_target(KHost *h, const VmId *vm, MemTarget *ret) {
        int r;

        r = kh_managed_hier(h, CG_CTRL_MEMORY, &ret->hier);
        if (r < 0)
                return r;
        if (h->layout.hier[ret->hier].version != CG_V2)
                return -EOPNOTSUPP;
        return kh_group_path(h, vm, CG_ROLE_VM, ret->group, sizeof(ret->group));
}

static int read_value(KHost *h, const MemTarget *t, const char *file, uint64_t *ret) {
        char buf[64];
        int r;

        r = kh_read(h, t->hier, t->group, file, buf, sizeof(buf));
        if (r < 0)
                return r;
        return cg_parse_u64_or_max(buf, ret);
}

/* Files that older kernels or configs lack (memory.peak since 5.19,
 * swap files without CONFIG_SWAP) read as 0. */
static int read_optional(KHost *h, const MemTarget *t, const char *file, uint64_t *ret) {
        int r = read_value(h, t, file, ret);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        return r;
}

static int read_stat(KHost *h, const MemTarget *t, MemStat *s) {
        static const char *const keys[] = {
                "anon",   "file",    "kernel",     "shmem", "file_mapped", "workingset_refault_anon",
                "workingset_refault_file", "pgscan", "pgsteal", "pgmajfault",
        };
        uint64_t v[ARRAY_SIZE(keys)] = { 0 }, found;
        _cleanup_free_ char *text = NULL;
        int r;

        r = kh_read_alloc(h, t->hier, t->group, "memory.stat", &text);
        if (r < 0)
                return r;
        r = cg_parse_flat_keyed(text, keys, ARRAY_SIZE(keys), v, &found);
        if (r < 0)
                return r;
        if ((found & 3) != 3) /* anon and file are always there */
                return -EBADMSG;
        s->anon = v[0];
        s->file = v[1];
        s->kernel = v[2];
        s->shmem = v[3];
        s->file_mapped = v[4];
        s->workingset_refault_anon = v[5];
        s->workingset_refault_file = v[6];
        s->pgscan = v[7];
        s->pgsteal = v[8];
        s->pgmajfault = v[9];
        return 0;
}

static int read_events(KHost *h, const MemTarget *t, MemStat *s) {
        static const char *const keys[] = { "low", "high", "max", "oom", "oom_kill" };
        uint64_t v[ARRAY_SIZE(keys)] = { 0 }, found;
        char buf[512];
        int r;

        r = kh_read(h, t->hier, t->group, "memory.events", buf, sizeof(buf));
        if (r < 0)
                return r;
        r = cg_parse_flat_keyed(buf, keys, ARRAY_SIZE(keys), v, &found);
        if (r < 0)
                return r;
        if ((found & 0xf) != 0xf)
                return -EBADMSG;
        s->ev_low = v[0];
        s->ev_high = v[1];
        s->ev_max = v[2];
        s->ev_oom = v[3];
        s->ev_oom_kill = v[4];
        return 0;
}

int kh_mem_read(KHost *h, const VmId *vm, MemStat *ret) {
        struct {
                const char *file;
                uint64_t *dst;
                bool optional;
        } values[] = {
                { "memory.current", NULL, false },      { "memory.peak", NULL, true },
                { "memory.max", NULL, false },          { "memory.high", NULL, false },
                { "memory.low", NULL, false },          { "memory.min", NULL, false },
                { "memory.swap.max", NULL, true },      { "memory.swap.current", NULL, true },
        };
        MemStat s = { 0 };
        char buf[512];
        MemTarget t;
        int r;

        values[0].dst = &s.current;
        values[1].dst = &s.peak;
        values[2].dst = &s.max;
        values[3].dst = &s.high;
        values[4].dst = &s.low;
        values[5].dst = &s.min;
        values[6].dst = &s.swap_max;
        values[7].dst = &s.swap_current;

        r = mem_target(h, vm, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
                r = values[i].optional ? read_optional(h, &t, values[i].file, values[i].dst)
                                       : read_value(h, &t, values[i].file, values[i].dst);
                if (r < 0)
                        return r;
        }
        r = read_stat(h, &t, &s);
        if (r < 0)
                return r;
        r = read_events(h, &t, &s);
        if (r < 0)
                return r;
        r = kh_read(h, t.hier, t.group, "memory.pressure", buf, sizeof(buf));
        if (r == 0)
                r = cg_parse_psi(buf, &s.pressure);
        else if (r == -ENOENT || r == -EOPNOTSUPP) /* no PSI (psi=0): zeros */
                r = 0;
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

static int write_value(KHost *h, const MemTarget *t, const char *file, uint64_t v, bool nonblock) {
        char buf[32];

        if (v == MEM_MAX)
                snprintf(buf, sizeof(buf), "max");
        else
                snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return kh_write(h, t->hier, t->group, file, buf, nonblock);
}

int kh_mem_set_limits(KHost *h, const VmId *vm, const MemLimits *lim, MemLimits *ret_applied) {
        const struct {
                unsigned bit;
                const char *file;
                uint64_t value;
                /* Lowering max/high below usage makes the writer reclaim;
                 * O_NONBLOCK asks kernels that support it not to. */
                bool nonblock;
        } items[] = {
                { MEM_SET_MIN, "memory.min", lim->min, false },
                { MEM_SET_LOW, "memory.low", lim->low, false },
                { MEM_SET_HIGH, "memory.high", lim->high, true },
                { MEM_SET_MAX, "memory.max", lim->max, true },
                { MEM_SET_SWAP_MAX, "memory.swap.max", lim->swap_max, false },
        };
        MemLimits applied = { .set = lim->set };
        MemTarget t;
        int r;

        r = mem_target(h, vm, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
                uint64_t v;

                if (!(lim->set & items[i].bit))
                        continue;
                r = write_value(h, &t, items[i].file, items[i].value, items[i].nonblock);
                if (r < 0)
                        return r;
                r = read_value(h, &t, items[i].file, &v);
                if (r < 0)
                        return r;
                switch (items[i].bit) {
                case MEM_SET_MIN: applied.min = v; break;
                case MEM_SET_LOW: applied.low = v; break;
                case MEM_SET_HIGH: applied.high = v; break;
                case MEM_SET_MAX: applied.max = v; break;
                case MEM_SET_SWAP_MAX: applied.swap_max = v; break;
                }
        }
        if (ret_applied)
                *ret_applied = applied;
        return 0;
}

int kh_mem_reclaim(KHost *h, const VmId *vm, uint64_t bytes, int swappiness) {
        char buf[64];
        MemTarget t;
        int r;

        r = mem_target(h, vm, &t);
        if (r < 0)
                return r;
        r = cg_format_reclaim(buf, sizeof(buf), bytes, swappiness);
        if (r < 0)
                return r;
        /* Interruptible: a worker asked to stop is signalled, and the
         * kernel gives up reclaiming with -EINTR. */
        r = kh_write_flags(h, t.hier, t.group, "memory.reclaim", buf, CGFS_INTERRUPTIBLE);
        if (r == -ENOENT && h->ops->exists(h->be, t.hier, t.group, NULL) == 1)
                return -EOPNOTSUPP; /* kernel without memory.reclaim (< 5.19) */
        if (r == -EINVAL && swappiness >= 0)
                return -EOPNOTSUPP; /* kernel without swappiness= (< 6.7) */
        return r;
}

struct KhMemCurrentReader {
        KHost *host;
        MemTarget target;
        KhBatchFile current; /* memory.current; closed: read through the backend */
};

int kh_mem_current_reader_open(KHost *h, const VmId *vm, KhMemCurrentReader **ret) {
        KhMemCurrentReader *r;
        MemTarget t;
        int e;

        e = mem_target(h, vm, &t);
        if (e < 0)
                return e;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (KhMemCurrentReader) { .host = h, .target = t, .current = KH_BATCH_FILE_INIT };
        e = kh_batch_file_open(h, t.hier, t.group, "memory.current", 64, &r->current);
        if (e < 0) {
                free(r);
                return e;
        }
        *ret = r;
        return 0;
}

int kh_mem_current_reader_read(KhMemCurrentReader *r, uint64_t *ret) {
        uint64_t v;
        int e;

        if (!kh_batch_file_is_open(&r->current))
                return read_value(r->host, &r->target, "memory.current", ret);
        e = kh_batch_file_read(&r->current);
        if (e < 0)
                return e;
        e = cg_parse_u64_or_max(r->current.buf, &v);
        if (e < 0)
                return e;
        if (v == MEM_MAX)
                return -EBADMSG;
        *ret = v;
        return 0;
}

void kh_mem_current_reader_queue(KhMemCurrentReader *r) {
        kh_batch_file_queue(&r->current);
}

KhMemCurrentReader *kh_mem_current_reader_free(KhMemCurrentReader *r) {
        if (!r)
                return NULL;
        kh_batch_file_close(&r->current);
        free(r);
        return NULL;
}

int kh_subtree_set_mem_protection(KHost *h, uint64_t min, uint64_t low) {
        MemTarget t = { .group = "" }; /* "": vmmgr's subtree itself */
        int r;

        r = kh_managed_hier(h, CG_CTRL_MEMORY, &t.hier);
        if (r < 0)
                return r;
        if (h->layout.hier[t.hier].version != CG_V2)
                return -EOPNOTSUPP;
        r = write_value(h, &t, "memory.min", min, false);
        if (r == 0)
                r = write_value(h, &t, "memory.low", low, false);
        return r;
}

int kh_host_memory(KHost *h, uint64_t *ret_total, uint64_t *ret_used) {
        char buf[8192];
        uint64_t total, avail;
        int r;

        r = h->ops->read_host_file(h->be, KHOST_FILE_MEMINFO, buf, sizeof(buf), NULL);
        if (r == -ENOENT)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        r = cg_parse_meminfo(buf, &total, &avail);
        if (r < 0)
                return r;
        *ret_total = total;
        *ret_used = total - avail;
        return 0;
}

int kh_psi_trigger_open(KHost *h, const VmId *vm, PsiResource resource, bool full, uint64_t stall_usec,
                        uint64_t window_usec) {
        static const struct {
                const char *file;
                CgController ctrl;
        } files[] = {
                [PSI_CPU] = { "cpu.pressure", CG_CTRL_CPU },
                [PSI_MEMORY] = { "memory.pressure", CG_CTRL_MEMORY },
                [PSI_IO] = { "io.pressure", CG_CTRL_IO },
        };
        char group[CG_PATH_MAX], buf[64];
        unsigned hier;
        ssize_t n;
        int fd, r;

        if ((unsigned) resource >= ARRAY_SIZE(files))
                return -EINVAL;
        /* The kernel's rules (psi_trigger_create), checked first for a
         * clear error: a window of 500 ms..10 s, a stall within it. */
        if (window_usec < 500000 || window_usec > 10000000 || stall_usec == 0 || stall_usec > window_usec)
                return -EINVAL;
        r = kh_managed_hier(h, files[resource].ctrl, &hier);
        if (r < 0)
                return r;
        if (h->layout.hier[hier].version != CG_V2 || !h->ops->open_rw)
                return -EOPNOTSUPP;
        r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
        if (r < 0)
                return r;
        fd = h->ops->open_rw(h->be, hier, group, files[resource].file);
        if (fd == -ENOENT && h->ops->exists(h->be, hier, group, NULL) == 1)
                return -EOPNOTSUPP; /* psi=0 or no PSI in this kernel */
        if (fd < 0)
                return fd;
        snprintf(buf, sizeof(buf), "%s %" PRIu64 " %" PRIu64, full ? "full" : "some", stall_usec, window_usec);
        n = write(fd, buf, strlen(buf) + 1); /* the kernel wants the NUL too */
        if (n < 0) {
                r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}
