/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/memory-engine.h - vmmgr's memory management for its VMs: it reads
 * each VM's memcg, asks the memory policies (policies/memory.h) what to
 * do, and does it: limits and protection, background and proactive
 * reclaim through its own threads (vmmgr/engine/reclaim-pool.h), throttling of
 * the latency-tolerant threads (emulator/, io/ cpu.max; never vcpus/),
 * the host ceiling across VMs, balloon targets, and dmem limits.
 *
 * It is the memory counterpart of the credit bank: no event loop of its
 * own and no QMP.  The owner (vmmgrd, or a test) calls mem_engine_tick()
 * often (every 100 ms), polls mem_engine_fd() for reclaim results, and
 * sends the balloon targets the engine asks for, telling it what the guest
 * reports back.  A VM is looked at when due: every second, and sooner
 * while it is reclaiming or growing toward its high watermark (the next
 * look comes before the growth seen could reach it).
 *
 * Only where vmmgr manages a cgroup v2 memory controller: elsewhere
 * mem_engine_new() fails with -EOPNOTSUPP and the daemon runs without it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/vmid.h"
#include "kernel/kernel.h"
#include "policies/memory.h"
#include "vmmgr/engine/reclaim-pool.h"

typedef struct MemEngine MemEngine;

typedef struct MemEngineOptions {
        MemPolicy policy;
        bool threads;           /* false: reclaim runs in mem_engine_tick() (the single-threaded model) */
        bool kernel_swappiness; /* memory.reclaim takes swappiness= (HostFeatures) */
        bool dmem_high;         /* the kernel has dmem.high */
} MemEngineOptions;

void mem_engine_options_default(MemEngineOptions *o);

/* -EOPNOTSUPP where vmmgr does not manage cgroup v2 memory on this host;
 * -EINVAL for an invalid policy. */
int mem_engine_new(KHost *h, const MemEngineOptions *o, MemEngine **ret);
MemEngine *mem_engine_free(MemEngine *e);
static inline void mem_engine_freep(MemEngine **e) {
        if (*e)
                mem_engine_free(*e);
}
#define _cleanup_mem_engine_ __attribute__((cleanup(mem_engine_freep)))

/* Readable when reclaim results wait; mem_engine_collect() takes them. */
int mem_engine_fd(const MemEngine *e);
void mem_engine_collect(MemEngine *e);

/* Starts managing a VM whose groups exist: computes its limits, writes
 * memory.max, memory.high (max), memory.swap.max, memory.min, memory.low
 * (without reclaiming in the writer) and keeps what the kernel applied.
 * -EEXIST, -ERANGE (RAM beyond the policy's bounds), or the write error. */
int mem_engine_vm_add(MemEngine *e, const VmId *vm, const MemPolVmSpec *spec, uint64_t now_usec);
/* RAM, passthrough, balloon or priority changed: new limits, rewritten. */
int mem_engine_vm_set_spec(MemEngine *e, const VmId *vm, const MemPolVmSpec *spec);
/* The VM's GPU: its dmem regions are those named drm/<pci_addr>/...
 * (NULL: none).  Limits apply from the next look. */
int mem_engine_vm_set_dmem(MemEngine *e, const VmId *vm, const char *pci_addr, const MemPolDmemSpec *spec);
/* Stops managing it: its reclaim is cancelled, its emulator/io limits
 * lifted if this engine set them.  Its memcg files are left as they are. */
void mem_engine_vm_remove(MemEngine *e, const VmId *vm);

/* What the guest reports (query-balloon / BALLOON_CHANGE "actual"). */
void mem_engine_vm_balloon_actual(MemEngine *e, const VmId *vm, uint64_t actual);
/* A balloon target the engine wants sent (true), once per change: the
 * caller sends QMP `balloon` with it. */
/* How many VMs have a balloon target waiting to be sent: with 0 the
 * owner need not ask each VM (that lookup is per VM). */
size_t mem_engine_balloon_pending(const MemEngine *e);
bool mem_engine_vm_balloon_request(MemEngine *e, const VmId *vm, uint64_t *ret_target);

/* Looks at the VMs that are due, then at the host. */
int mem_engine_tick(MemEngine *e, uint64_t now_usec);

typedef struct MemVmReport {
        MemPolVmSpec spec;
        MemPolVmLimits limits;   /* as decided */
        MemLimits applied;       /* as the kernel took them (read back) */
        MemPolVmState state;
        MemStat stat;            /* at the last look */
        MemPolHeadroom headroom;
        uint64_t balloon_target, balloon_actual;
        uint64_t looks;
        uint64_t reclaim_requests, reclaim_bytes, reclaim_busy_usec, reclaim_partial, reclaim_errors;
        uint64_t background_bytes, proactive_bytes, host_bytes; /* asked, by reason */
        int last_error;           /* of the last reclaim or write, 0 if none */
        bool has_dmem;
        char dmem_pci[32];
        unsigned dmem_demoted;    /* regions whose dmem.low is lifted now */
} MemVmReport;

int mem_engine_vm_report(MemEngine *e, const VmId *vm, MemVmReport *ret);

typedef struct MemHostReport {
        bool known;               /* host memory could be read */
        uint64_t total, used;
        MemPolHostPlan plan;      /* the last tick's */
        unsigned pool_threads, pool_max_threads;
        ReclaimPoolStats pool;
        size_t vms;
} MemHostReport;

void mem_engine_host_report(MemEngine *e, MemHostReport *ret);
