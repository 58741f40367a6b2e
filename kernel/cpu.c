/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Typed CPU files: CFS bandwidth (v2 cpu.max, cpu.max.burst,
 * cpu.max.runtime; v1 cpu.cfs_*_us) and cpu.stat.
 *
 * Every write of quota, period or burst makes the kernel refill one quota
 * into the pool and unthrottle the group (tg_set_cfs_bandwidth() ->
 * __refill_cfs_bandwidth_runtime()).  A credit ledger has to count that,
 * so kh_cpu_set_bandwidth() skips unchanged values and returns how many
 * refilling writes it made.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/cgparse.h"
#include "kernel/khost.h"
#include "kernel/readbatch.h"

#define REASON_BURST_ABOVE_QUOTA "kernel rejects burst above quota"
#define REASON_BAD_BANDWIDTH "kernel rejects the bandwidth (period 1 ms..1 s, quota >= 1 ms)"

typedef struct CpuTarget {
        unsigned hier;
        CgVersion version;
        char group[CG_PATH_MAX];
} CpuTarget;

static int cpu_target(KHost *h, const VmId *vm, CgRole role, CpuTarget *ret) {
        int r;

        r = kh_managed_hier(h, CG_CTRL_CPU, &ret->hier);
        if (r < 0)
                return r;
        ret->version = h->layout.hier[ret->hier].version;
        return kh_group_path(h, vm, role, ret->group, sizeof(ret->group));
}

static int read_u64_file(KHost *h, const CpuTarget *t, const char *file, uint64_t *ret) {
        char buf[64];
        int r;

        r = kh_read(h, t->hier, t->group, file, buf, sizeof(buf));
        if (r < 0)
                return r;
        return cg_parse_u64_or_max(buf, ret);
}

static int write_u64_file(KHost *h, const CpuTarget *t, const char *file, uint64_t v) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return kh_write(h, t->hier, t->group, file, buf, false);
}

static int get_bandwidth(KHost *h, const CpuTarget *t, CpuBandwidth *ret) {
        CpuBandwidth bw = { 0 };
        char buf[64];
        int r;

        if (t->version == CG_V2) {
                r = kh_read(h, t->hier, t->group, "cpu.max", buf, sizeof(buf));
                if (r < 0)
                        return r;
                r = cg_parse_cpu_max(buf, &bw.quota_usec, &bw.period_usec);
                if (r < 0)
                        return r;
                r = read_u64_file(h, t, "cpu.max.burst", &bw.burst_usec);
        } else {
                int64_t quota;

                r = read_u64_file(h, t, "cpu.cfs_period_us", &bw.period_usec);
                if (r < 0)
                        return r;
                r = kh_read(h, t->hier, t->group, "cpu.cfs_quota_us", buf, sizeof(buf));
                if (r < 0)
                        return r;
                r = cg_parse_i64(buf, &quota);
                if (r < 0)
                        return r;
                if (quota < -1)
                        return -EBADMSG;
                bw.quota_usec = quota == -1 ? CPU_QUOTA_MAX : (uint64_t) quota;
                r = read_u64_file(h, t, "cpu.cfs_burst_us", &bw.burst_usec);
        }
        /* Kernels before 5.14 have no burst file: burst is 0 there. */
        if (r == -ENOENT)
                r = 0, bw.burst_usec = 0;
        if (r < 0)
                return r;
        if (bw.burst_usec == UINT64_MAX)
                return -EBADMSG;
        *ret = bw;
        return 0;
}

int kh_cpu_get_bandwidth(KHost *h, const VmId *vm, CgRole role, CpuBandwidth *ret) {
        CpuTarget t;
        int r;

        r = cpu_target(h, vm, role, &t);
        if (r < 0)
                return r;
        return get_bandwidth(h, &t, ret);
}

typedef enum BwStep { STEP_QUOTA, STEP_PERIOD, STEP_BURST } BwStep;

static int write_step(KHost *h, const CpuTarget *t, BwStep s, const CpuBandwidth *bw) {
        char buf[64];
        int r;

        if (t->version == CG_V2) {
                if (s == STEP_BURST)
                        return write_u64_file(h, t, "cpu.max.burst", bw->burst_usec);
                /* quota and period share cpu.max */
                r = cg_format_cpu_max(buf, sizeof(buf), bw->quota_usec, bw->period_usec);
                if (r < 0)
                        return r;
                return kh_write(h, t->hier, t->group, "cpu.max", buf, false);
        }
        switch (s) {
        case STEP_QUOTA:
                if (bw->quota_usec == CPU_QUOTA_MAX)
                        return kh_write(h, t->hier, t->group, "cpu.cfs_quota_us", "-1", false);
                return write_u64_file(h, t, "cpu.cfs_quota_us", bw->quota_usec);
        case STEP_PERIOD:
                return write_u64_file(h, t, "cpu.cfs_period_us", bw->period_usec);
        case STEP_BURST:
                return write_u64_file(h, t, "cpu.cfs_burst_us", bw->burst_usec);
        }
        return -EINVAL;
}

static bool step_changes(CgVersion v, BwStep s, const CpuBandwidth *old, const CpuBandwidth *new) {
        switch (s) {
        case STEP_QUOTA:
                /* On v2 quota and period are one write. */
                return old->quota_usec != new->quota_usec ||
                       (v == CG_V2 && old->period_usec != new->period_usec);
        case STEP_PERIOD:
                return v == CG_V1 && old->period_usec != new->period_usec;
        case STEP_BURST:
                return old->burst_usec != new->burst_usec;
        }
        return false;
}

int kh_cpu_set_bandwidth(KHost *h, const VmId *vm, CgRole role, const CpuBandwidth *bw,
                         const char **ret_reason) {
        /* The kernel checks burst <= quota (stock) on every single write, so
         * a growing quota goes first and a shrinking one goes last. */
        static const BwStep grow[] = { STEP_QUOTA, STEP_PERIOD, STEP_BURST };
        static const BwStep shrink[] = { STEP_BURST, STEP_QUOTA, STEP_PERIOD };
        const BwStep *order;
        CpuBandwidth old;
        CpuTarget t;
        int writes = 0, r;

        if (ret_reason)
                *ret_reason = NULL;
        if (!bw || bw->period_usec == 0)
                return -EINVAL;
        r = cpu_target(h, vm, role, &t);
        if (r < 0)
                return r;
        r = get_bandwidth(h, &t, &old);
        if (r < 0)
                return r;
        order = bw->quota_usec >= old.quota_usec ? grow : shrink;
        for (size_t i = 0; i < ARRAY_SIZE(grow); i++) {
                if (!step_changes(t.version, order[i], &old, bw))
                        continue;
                r = write_step(h, &t, order[i], bw);
                if (r == -EINVAL && ret_reason)
                        *ret_reason = bw->quota_usec != CPU_QUOTA_MAX && bw->burst_usec > bw->quota_usec
                                              ? REASON_BURST_ABOVE_QUOTA
                                              : REASON_BAD_BANDWIDTH;
                if (r < 0)
                        return r;
                writes++;
        }
        return writes;
}

/* -ENOENT from a file write is either a missing file (feature absent) or
 * a missing group; tell them apart. */
static int missing_file_or_group(KHost *h, const CpuTarget *t) {
        int e = h->ops->exists(h->be, t->hier, t->group, NULL);
        return e == 1 ? -EOPNOTSUPP : -ENOENT;
}

static int runtime_target(KHost *h, const VmId *vm, CgRole role, CpuTarget *t) {
        int r = cpu_target(h, vm, role, t);
        if (r < 0)
                return r;
        return t->version == CG_V2 ? 0 : -EOPNOTSUPP; /* a v2-only interface */
}

int kh_cpu_get_runtime(KHost *h, const VmId *vm, CgRole role, uint64_t *ret_usec) {
        CpuTarget t;
        int r;

        r = runtime_target(h, vm, role, &t);
        if (r < 0)
                return r;
        r = read_u64_file(h, &t, "cpu.max.runtime", ret_usec);
        return r == -ENOENT ? missing_file_or_group(h, &t) : r;
}

int kh_cpu_set_runtime(KHost *h, const VmId *vm, CgRole role, uint64_t runtime_usec) {
        CpuTarget t;
        int r;

        r = runtime_target(h, vm, role, &t);
        if (r < 0)
                return r;
        r = write_u64_file(h, &t, "cpu.max.runtime", runtime_usec);
        return r == -ENOENT ? missing_file_or_group(h, &t) : r;
}

int kh_cpu_adjust_runtime(KHost *h, const VmId *vm, CgRole role, int64_t delta_usec) {
        char buf[32];
        CpuTarget t;
        int r;

        r = runtime_target(h, vm, role, &t);
        if (r < 0)
                return r;
        if (delta_usec == INT64_MIN)
                return -ERANGE;
        snprintf(buf, sizeof(buf), "%c%" PRIu64, delta_usec < 0 ? '-' : '+',
                 (uint64_t) (delta_usec < 0 ? -delta_usec : delta_usec));
        r = kh_write(h, t.hier, t.group, "cpu.max.runtime", buf, false);
        return r == -ENOENT ? missing_file_or_group(h, &t) : r;
}

/* Adds what each thread has run to *sum (/proc/<tid>/task/<tid> exists
 * for any thread id); threads that exited meanwhile count nothing. */
static int add_threads_usec(KHost *h, const pid_t *tids, size_t n, uint64_t *sum) {
        for (size_t i = 0; i < n; i++) {
                uint64_t usec;
                int r = kh_thread_cpu_usec(h, tids[i], tids[i], &usec);

                if (r == -ESRCH)
                        continue;
                if (r < 0)
                        return r;
                *sum += usec;
        }
        return 0;
}

/* v1 without cpuacct: the group's usage is what its current threads ran.
 * Threads that left or exited are not counted: cpuacct is better. */
static int v1_usage_from_threads(KHost *h, const CpuTarget *t, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ pid_t *tids = NULL;
        uint64_t sum = 0;
        size_t n;
        int r;

        r = kh_read_alloc(h, t->hier, t->group, "tasks", &text);
        if (r < 0)
                return r;
        r = cg_parse_pid_list(text, &tids, &n);
        if (r < 0)
                return r;
        r = add_threads_usec(h, tids, n, &sum);
        if (r < 0)
                return r;
        *ret = sum;
        return 0;
}

/* A foreign VM's threads of every role (libvirt's groups hold no thread
 * at the domain level). */
static int foreign_usage_from_threads(KHost *h, const VmId *vm, uint64_t *ret) {
        static const CgRole roles[] = { CG_ROLE_VCPUS, CG_ROLE_EMULATOR, CG_ROLE_IO };
        uint64_t sum = 0;

        for (size_t k = 0; k < ARRAY_SIZE(roles); k++) {
                _cleanup_free_ pid_t *tids = NULL;
                size_t n = 0;
                int r = kh_vm_threads(h, vm, roles[k], &tids, &n);

                if (r == 0)
                        r = add_threads_usec(h, tids, n, &sum);
                if (r < 0)
                        return r;
        }
        *ret = sum;
        return 0;
}

/* The cgroup v2 hierarchy of a hybrid host (no controllers there: its
 * cpu.stat still counts usage_usec for every group). */
static int unified_hier(const KHost *h, unsigned *ret) {
        for (size_t i = 0; i < h->layout.n_hier; i++)
                if (h->layout.hier[i].version == CG_V2) {
                        *ret = (unsigned) i;
                        return 0;
                }
        return -ENOENT;
}

/* v1: the group's CPU usage.  cpuacct where vmmgr manages it.  A libvirt
 * domain may have no cpuacct group (libvirt on a hybrid host counts with
 * the v2 hierarchy, where it places the threads too): there the v2
 * group's cpu.stat, else the sum over its threads. */
static int v1_usage(KHost *h, const VmId *vm, const CpuTarget *t, uint64_t *ret) {
        bool foreign = kh_foreign_find(h, vm) != NULL;
        char buf[1024];
        unsigned hier;
        int r;

        if (kh_managed_hier(h, CG_CTRL_CPUACCT, &hier) == 0) {
                uint64_t ns;

                r = kh_read(h, hier, t->group, "cpuacct.usage", buf, sizeof(buf));
                if (r == 0) {
                        r = cg_parse_u64_or_max(buf, &ns);
                        if (r < 0)
                                return r;
                        if (ns == UINT64_MAX)
                                return -EBADMSG;
                        *ret = ns / NSEC_PER_USEC;
                        return 0;
                }
                if (r != -ENOENT || !foreign)
                        return r;
        }
        if (!foreign)
                return v1_usage_from_threads(h, t, ret);
        if (unified_hier(h, &hier) == 0 && kh_read(h, hier, t->group, "cpu.stat", buf, sizeof(buf)) == 0) {
                CpuStat st;

                r = cg_parse_cpu_stat(buf, CG_V2, &st);
                if (r == 0 && (st.have & CPU_STAT_USAGE)) {
                        *ret = st.usage_usec;
                        return 0;
                }
        }
        return foreign_usage_from_threads(h, vm, ret);
}

int kh_cpu_read_stat(KHost *h, const VmId *vm, CgRole role, CpuStat *ret) {
        char buf[1024];
        CpuStat s;
        CpuTarget t;
        int r;

        r = cpu_target(h, vm, role, &t);
        if (r < 0)
                return r;
        r = kh_read(h, t.hier, t.group, "cpu.stat", buf, sizeof(buf));
        if (r < 0)
                return r;
        r = cg_parse_cpu_stat(buf, t.version, &s);
        if (r < 0)
                return r;
        if (t.version == CG_V1) {
                r = v1_usage(h, vm, &t, &s.usage_usec);
                if (r < 0)
                        return r;
                s.have |= CPU_STAT_USAGE;
        }
        *ret = s;
        return 0;
}

/* ---- the cached cpu.stat reader ----------------------------------------- */

struct KhCpuStatReader {
        KHost *host;
        VmId vm;
        CgRole role;
        CgVersion version;
        KhBatchFile stat;    /* cpu.stat */
        KhBatchFile usage;   /* v1: cpuacct.usage */
        KhBatchFile runtime; /* cpu.max.runtime, once kh_cpu_stat_reader_open_runtime() opened it */
        bool fallback;       /* cpu.stat (or v1's usage) through kh_cpu_read_stat() */
};

int kh_cpu_stat_reader_open(KHost *h, const VmId *vm, CgRole role, KhCpuStatReader **ret) {
        KhCpuStatReader *r;
        CpuTarget t;
        unsigned acct;
        int e;

        e = cpu_target(h, vm, role, &t);
        if (e < 0)
                return e;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (KhCpuStatReader) { .host = h, .vm = *vm, .role = role, .version = t.version,
                                 .stat = KH_BATCH_FILE_INIT, .usage = KH_BATCH_FILE_INIT,
                                 .runtime = KH_BATCH_FILE_INIT };
        e = kh_batch_file_open(h, t.hier, t.group, "cpu.stat", 1024, &r->stat);
        if (e == 0 && t.version == CG_V1) {
                if (kh_managed_hier(h, CG_CTRL_CPUACCT, &acct) == 0) {
                        e = kh_batch_file_open(h, acct, t.group, "cpuacct.usage", 64, &r->usage);
                        if (e == -ENOENT && kh_foreign_find(h, vm)) {
                                /* libvirt made no cpuacct group: v1_usage() finds another source */
                                e = 0;
                                r->fallback = true;
                        }
                } else
                        r->fallback = true; /* usage from threads: no single file */
        }
        if (e < 0) {
                kh_cpu_stat_reader_free(r);
                return e;
        }
        if (!kh_batch_file_is_open(&r->stat) ||
            (t.version == CG_V1 && !r->fallback && !kh_batch_file_is_open(&r->usage)))
                r->fallback = true;
        *ret = r;
        return 0;
}

int kh_cpu_stat_reader_open_runtime(KhCpuStatReader *r) {
        CpuTarget t;
        int e;

        if (kh_batch_file_is_open(&r->runtime))
                return 0;
        e = runtime_target(r->host, &r->vm, r->role, &t);
        if (e < 0)
                return e;
        e = kh_batch_file_open(r->host, t.hier, t.group, "cpu.max.runtime", 64, &r->runtime);
        return e == -ENOENT ? missing_file_or_group(r->host, &t) : e;
}

/* A one-number file (cpuacct.usage, cpu.max.runtime): its value. */
static int read_number(KhBatchFile *f, uint64_t *ret) {
        int e = kh_batch_file_read(f);

        if (e < 0)
                return e;
        return cg_parse_u64_or_max(f->buf, ret);
}

/* v1: the group's cpuacct.usage (ns), in usec. */
static int read_cpuacct_usage(KhCpuStatReader *r, uint64_t *ret_usec) {
        uint64_t ns;
        int e;

        e = read_number(&r->usage, &ns);
        if (e < 0)
                return e;
        if (ns == UINT64_MAX)
                return -EBADMSG;
        *ret_usec = ns / NSEC_PER_USEC;
        return 0;
}

int kh_cpu_stat_reader_read(KhCpuStatReader *r, CpuStat *ret) {
        CpuStat s;
        int e;

        if (r->fallback)
                return kh_cpu_read_stat(r->host, &r->vm, r->role, ret);
        e = kh_batch_file_read(&r->stat);
        if (e < 0)
                return e;
        e = cg_parse_cpu_stat(r->stat.buf, r->version, &s);
        if (e < 0)
                return e;
        if (r->version == CG_V1) {
                e = read_cpuacct_usage(r, &s.usage_usec);
                if (e < 0)
                        return e;
                s.have |= CPU_STAT_USAGE;
        }
        *ret = s;
        return 0;
}

int kh_cpu_stat_reader_read_usage(KhCpuStatReader *r, uint64_t *ret_usec) {
        CpuStat s;
        int e;

        if (r->fallback || r->version != CG_V1) {
                e = kh_cpu_stat_reader_read(r, &s);
                if (e == 0)
                        *ret_usec = s.usage_usec;
                return e;
        }
        return read_cpuacct_usage(r, ret_usec);
}

int kh_cpu_stat_reader_read_runtime(KhCpuStatReader *r, uint64_t *ret_usec) {
        if (!kh_batch_file_is_open(&r->runtime))
                return kh_cpu_get_runtime(r->host, &r->vm, r->role, ret_usec);
        return read_number(&r->runtime, ret_usec);
}

void kh_cpu_stat_reader_queue(KhCpuStatReader *r, unsigned what) {
        if (what & KH_CPU_READ_RUNTIME)
                kh_batch_file_queue(&r->runtime);
        if (r->fallback)
                return;
        if (what & KH_CPU_READ_STAT) {
                kh_batch_file_queue(&r->stat);
                if (r->version == CG_V1)
                        kh_batch_file_queue(&r->usage);
        } else if (what & KH_CPU_READ_USAGE)
                kh_batch_file_queue(r->version == CG_V1 ? &r->usage : &r->stat);
}

KhCpuStatReader *kh_cpu_stat_reader_free(KhCpuStatReader *r) {
        if (!r)
                return NULL;
        kh_batch_file_close(&r->stat);
        kh_batch_file_close(&r->usage);
        kh_batch_file_close(&r->runtime);
        free(r);
        return NULL;
}
