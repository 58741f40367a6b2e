/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/kmodel.h - the kernel model: a deterministic, in-process stand-in
 * for the kernel's cgroup files, with a simulated clock.
 *
 * Open a KHost on it with kh_open_model() and the whole kernel layer runs
 * unchanged: every typed call becomes reads and writes of the same files
 * with the same formats and errors as a real kernel.  Tests and benchmarks
 * drive time and workload through the functions below.
 *
 * What it models and what it does not: docs/kernel-model.md.
 *
 * Threads are simulated: km_thread_new() gives a tid; the workload is a
 * per-thread CPU demand in parts per million of one CPU (1000000 = a thread
 * that would run 100 % of the time).  Time only moves in km_advance().
 * Everything is integer arithmetic: the same calls give the same results.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/kernel.h"

typedef struct KModel KModel;

/* A KHost on the model (kernel.h's API, kh_free() to close). */
int kh_open_model(KModel *model, const KHostConfig *cfg, KHost **ret);

typedef struct KModelDmemRegion {
        const char *name;
        uint64_t capacity;
} KModelDmemRegion;

typedef struct KModelConfig {
        /* CG_MODE_UNIFIED: one cgroup2 hierarchy with cpuset, cpu, io,
         * memory, pids, hugetlb (and dmem when regions are given).
         * CG_MODE_LEGACY: one v1 hierarchy with cpu,cpuacct co-mounted. */
        CgMode mode;
        /* The cpu.max.runtime patch: burst may exceed quota (burst + quota
         * <= 2^44-1 usec), cpu.max.runtime exists and accepts N, +N, -N, and
         * a runtime write unthrottles at once. */
        bool patched;
        /* With `patched`: cpu.max.runtime as in v1 of the series, whose
         * writes refused (EINVAL) a value outside [0, quota + burst]
         * instead of saturating, and whose idle pools did not catch up.
         * For the probe that tells v1 from v2 (v1 never shipped). */
        bool runtime_v1;
        /* dmem.high exists (a proposed kernel feature). */
        bool dmem_high;
        /* memory.reclaim accepts "swappiness=". */
        bool reclaim_swappiness;
        const KModelDmemRegion *dmem_regions;
        size_t n_dmem_regions;
        /* Host RAM in bytes for memory accounting (0 = 64 GiB). */
        uint64_t host_memory;
} KModelConfig;

int km_new(const KModelConfig *cfg, KModel **ret);
KModel *km_free(KModel *m);
static inline void km_freep(KModel **m) {
        if (*m)
                km_free(*m);
}
#define _cleanup_kmodel_ __attribute__((cleanup(km_freep)))

/* Simulated time since km_new(), in microseconds. */
uint64_t km_now_usec(const KModel *m);
/* Advances the clock, running every thread at its demand subject to CFS
 * bandwidth of every ancestor group. */
void km_advance(KModel *m, uint64_t usec);

/* A new simulated process (its first thread has tid == pid), placed in the
 * hierarchy root(s).  Returns the pid (> 0) or a negative errno. */
pid_t km_process_new(KModel *m);
/* A new thread in an existing process, placed where the process's first
 * thread is.  Returns the tid or a negative errno. */
pid_t km_thread_new(KModel *m, pid_t pid);
int km_thread_exit(KModel *m, pid_t tid);
/* Kills every thread of the process. */
int km_process_exit(KModel *m, pid_t pid);
int km_thread_set_demand(KModel *m, pid_t tid, uint32_t demand_ppm);
/* CPU time the thread has received, in nanoseconds. */
int km_thread_usage_nsec(KModel *m, pid_t tid, uint64_t *ret);

/* Memory: the thread's memcg (the group holding it on v2) is charged
 * `bytes`; `reclaimable` of it can later be reclaimed (page cache, or anon
 * with swap).  Over memory.high the thread is charged reclaim stall time,
 * over memory.max with nothing reclaimable the charge fails (-ENOMEM) and
 * memory.events oom counts it.  Negative bytes uncharge. */
int km_mem_charge(KModel *m, pid_t tid, int64_t bytes, bool reclaimable);
/* Direct-reclaim stall a thread has accumulated, in microseconds. */
int km_thread_reclaim_stall_usec(KModel *m, pid_t tid, uint64_t *ret);

/* Device memory: charges a region for the thread's group.  If the region
 * is full, memory is evicted from other groups in the kernel's order
 * (docs/kernel-model.md); -ENOSPC if nothing may be evicted, -EAGAIN if
 * the group is at its dmem.max. */
int km_dmem_charge(KModel *m, pid_t tid, const char *region, int64_t bytes);

