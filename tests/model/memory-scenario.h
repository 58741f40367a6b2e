/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/model/memory-scenario.h - the memory policies (policies/memory.h)
 * applied to the kernel model, shared by tests/model/test-memory-policy-model.c
 * (which asserts) and tests/bench/bench-memory-model.c (which prints
 * figures).
 *
 * vmmgr's side goes through the kernel layer only (kh_mem_read,
 * kh_mem_set_limits, kh_mem_reclaim, kh_dmem_read, kh_dmem_set,
 * kh_host_memory, kh_cpu_*): what the daemon would do.  The km_* API is
 * used for what the world does: time, processes, a workload's memory and
 * dmem charges, and the direct-reclaim stall of vCPU threads.
 *
 * Two scenarios:
 *  - dmem eviction order: three VMs sharing a region, one over its soft
 *    target, one over its low, one at its low, and a fourth that charges
 *    the region full in 10 MiB steps.  Every evicted byte is put in the
 *    review's tier (1: above soft, 2: above low, 3: above min, 4: below
 *    min) by the VM's configured limits; the order holds when no step
 *    evicts a lower tier than any earlier step did, nothing goes below
 *    min, the over-soft VM loses memory first, then the over-low one, then
 *    the protected one, and the region ends full with every VM at its min.
 *  - host ceiling: 100 VMs with mixed priorities, sizes, growth rates and
 *    demands (some passthrough, some beyond their memory.max), a host of
 *    64 GiB with 2 GiB of its own; every simulated second the VMs grow,
 *    then each VM gets its decisions (memory.low, background reclaim,
 *    throttling) and the host plan reclaims under the ceiling.  The host's
 *    use is read after the growth, before any reclaim: the highest seen is
 *    the figure.
 */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/vmid.h"
#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"
#include "policies/memory.h"

#define SCN_MIB MEMPOL_MIB
#define SCN_GIB MEMPOL_GIB
#define SCN_PAGE MEMPOL_PAGE_SIZE
#define SCN_SEC UINT64_C(1000000)
#define SCN_REGION "drm/0000:03:00.0/vram0"

typedef struct ScnHost {
        KModel *m;
        KHost *h;
} ScnHost;

static inline void scn_close(ScnHost *s) {
        kh_free(s->h); /* the view first: the model outlives it */
        km_free(s->m);
        *s = (ScnHost) { 0 };
}

static inline int scn_open(const KModelConfig *cfg, ScnHost *ret) {
        ScnHost s = { 0 };
        int r;

        r = km_new(cfg, &s.m);
        if (r < 0)
                return r;
        r = kh_open_model(s.m, &(KHostConfig) { .subtree = KH_DEFAULT_SUBTREE }, &s.h);
        if (r == 0)
                r = kh_subtree_setup(s.h);
        if (r < 0) {
                scn_close(&s);
                return r;
        }
        *ret = s;
        return 0;
}

/* VM number `index`: its groups, a QEMU process and one vCPU thread in
 * vcpus/ (whose memcg and dmem group is the VM group). */
static inline int scn_vm(ScnHost *s, unsigned index, VmId *ret_id, pid_t *ret_vcpu) {
        char str[VM_ID_STRLEN + 1];
        pid_t pid, vcpu;
        int r;

        snprintf(str, sizeof(str), "00000000-0000-4000-8000-%012u", index);
        r = vm_id_parse(str, ret_id);
        if (r < 0)
                return r;
        r = kh_vm_create(s->h, ret_id);
        if (r < 0)
                return r;
        pid = km_process_new(s->m);
        if (pid < 0)
                return pid;
        vcpu = km_thread_new(s->m, pid);
        if (vcpu < 0)
                return vcpu;
        r = kh_vm_attach_process(s->h, ret_id, pid);
        if (r == 0)
                r = kh_vm_attach_thread(s->h, ret_id, CG_ROLE_VCPUS, vcpu);
        if (r < 0)
                return r;
        *ret_vcpu = vcpu;
        return 0;
}

static inline void scn_why(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void scn_why(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        if (buf[0])
                return; /* keep the first */
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

/* ---- dmem eviction order ------------------------------------------------- */

enum { SCN_DMEM_VMS = 4, SCN_DMEM_VICTIMS = 3 };

typedef struct ScnDmemResult {
        bool ok;
        char why[256];                  /* the first thing that was not in order */
        unsigned first_evicted[SCN_DMEM_VICTIMS]; /* step a, b, c first lost memory (0: never) */
        uint64_t tier_bytes[5];         /* evicted, by tier 1..4 (index 0 unused) */
        unsigned steps;                 /* charges that succeeded */
        int end_r;                      /* the charge that ended it */
        uint64_t end_usage[SCN_DMEM_VICTIMS];
        unsigned low_writes;            /* dmem.low writes by the policy */
} ScnDmemResult;

/* a: over its soft target, b: over its low, c: at its low; d charges. */
static const MemPolDmemSpec scn_dmem_specs[SCN_DMEM_VMS] = {
        { .max = 600 * SCN_MIB, .soft = 200 * SCN_MIB, .low = 150 * SCN_MIB, .min = 50 * SCN_MIB },
        { .max = 600 * SCN_MIB, .soft = 400 * SCN_MIB, .low = 100 * SCN_MIB, .min = 0 },
        { .max = 600 * SCN_MIB, .soft = 300 * SCN_MIB, .low = 200 * SCN_MIB, .min = 50 * SCN_MIB },
        { .max = MEMPOL_MAX, .soft = MEMPOL_MAX, .low = 0, .min = 0 },
};
static const uint64_t scn_dmem_start[SCN_DMEM_VICTIMS] = { 300 * SCN_MIB, 340 * SCN_MIB, 200 * SCN_MIB };

static inline int scn_dmem_usage(ScnHost *s, const VmId *id, uint64_t *ret) {
        _cleanup_free_ DmemRegion *regs = NULL;
        size_t n = 0;
        int r;

        r = kh_dmem_read(s->h, id, &regs, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (strcmp(regs[i].name, SCN_REGION) == 0) {
                        *ret = regs[i].current;
                        return 0;
                }
        return -ENOENT;
}

static inline int scn_dmem_write(ScnHost *s, const VmId *id, const MemPolDmemLimits *l, bool all) {
        int r = 0;

        if (all) {
                r = kh_dmem_set(s->h, id, SCN_REGION, DMEM_LIMIT_MAX, l->max);
                if (r == 0)
                        r = kh_dmem_set(s->h, id, SCN_REGION, DMEM_LIMIT_MIN, l->min);
                if (r == 0 && l->write_high)
                        r = kh_dmem_set(s->h, id, SCN_REGION, DMEM_LIMIT_HIGH, l->high);
        }
        if (r == 0 && (all || l->low_changed))
                r = kh_dmem_set(s->h, id, SCN_REGION, DMEM_LIMIT_LOW, l->low);
        return r;
}

/* Bytes of (lo, hi] inside (a, b]. */
static inline uint64_t scn_overlap(uint64_t lo, uint64_t hi, uint64_t a, uint64_t b) {
        uint64_t from = MAX(lo, a), to = MIN(hi, b);

        return to > from ? to - from : 0;
}

/* Puts what VM v lost in one step into tiers; returns the lowest and
 * highest tier touched (0 when nothing). */
static inline void scn_dmem_classify(const MemPolDmemSpec *sp, uint64_t before, uint64_t after, uint64_t *tiers,
                                     unsigned *ret_lo, unsigned *ret_hi) {
        uint64_t got[5] = { 0 };

        got[1] = scn_overlap(after, before, sp->soft, UINT64_MAX);
        got[2] = scn_overlap(after, before, sp->low, sp->soft);
        got[3] = scn_overlap(after, before, sp->min, sp->low);
        got[4] = scn_overlap(after, before, 0, sp->min);
        for (unsigned t = 1; t <= 4; t++) {
                if (!got[t])
                        continue;
                tiers[t] += got[t];
                if (*ret_lo == 0 || t < *ret_lo)
                        *ret_lo = t;
                if (t > *ret_hi)
                        *ret_hi = t;
        }
}

/* `kernel_high`: the model has dmem.high.  `policy`: mempol_dmem_decide()
 * before every charge; otherwise the configured limits (and dmem.high =
 * soft where the kernel has it) are written once, as a manager without
 * the policy would. */
static inline int scn_dmem_order(bool kernel_high, bool policy, ScnDmemResult *ret) {
        const KModelDmemRegion region = { SCN_REGION, 1000 * SCN_MIB };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .dmem_high = kernel_high, .dmem_regions = &region,
                             .n_dmem_regions = 1 };
        MemPolDmemVm vms[SCN_DMEM_VMS];
        MemPolDmemLimits lim[SCN_DMEM_VMS];
        ScnDmemResult res = { .ok = true };
        VmId id[SCN_DMEM_VMS];
        pid_t vcpu[SCN_DMEM_VMS];
        unsigned max_tier = 0;
        MemPolicy p;
        ScnHost s = { 0 };
        int r;

        mempol_default(&p);
        r = scn_open(&cfg, &s);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < SCN_DMEM_VMS; i++) {
                r = scn_vm(&s, i, &id[i], &vcpu[i]);
                if (r < 0)
                        goto out;
                vms[i] = (MemPolDmemVm) { .spec = scn_dmem_specs[i] };
                /* The configured limits, as written when the VM starts. */
                lim[i] = (MemPolDmemLimits) { .max = vms[i].spec.max, .min = vms[i].spec.min,
                                              .low = vms[i].spec.low, .high = vms[i].spec.soft,
                                              .write_high = kernel_high };
                r = scn_dmem_write(&s, &id[i], &lim[i], true);
                if (r < 0)
                        goto out;
        }
        for (unsigned i = 0; i < SCN_DMEM_VICTIMS; i++) {
                r = km_dmem_charge(s.m, vcpu[i], SCN_REGION, (int64_t) scn_dmem_start[i]);
                if (r < 0)
                        goto out;
        }
        for (unsigned step = 1; step <= 1000; step++) {
                uint64_t before[SCN_DMEM_VMS], after;
                unsigned lo = 0, hi = 0;

                for (unsigned i = 0; i < SCN_DMEM_VMS; i++) {
                        r = scn_dmem_usage(&s, &id[i], &before[i]);
                        if (r < 0)
                                goto out;
                        vms[i].current = before[i];
                }
                if (policy) {
                        r = mempol_dmem_decide(&p, kernel_high, vms, SCN_DMEM_VMS, lim);
                        if (r < 0)
                                goto out;
                        for (unsigned i = 0; i < SCN_DMEM_VMS; i++) {
                                res.low_writes += lim[i].low_changed;
                                r = scn_dmem_write(&s, &id[i], &lim[i], false);
                                if (r < 0)
                                        goto out;
                        }
                }
                r = km_dmem_charge(s.m, vcpu[SCN_DMEM_VMS - 1], SCN_REGION, (int64_t) (10 * SCN_MIB));
                if (r == -ENOSPC) {
                        res.end_r = r;
                        break;
                }
                if (r < 0)
                        goto out;
                res.steps = step;
                for (unsigned i = 0; i < SCN_DMEM_VICTIMS; i++) {
                        r = scn_dmem_usage(&s, &id[i], &after);
                        if (r < 0)
                                goto out;
                        if (after >= before[i])
                                continue;
                        if (!res.first_evicted[i])
                                res.first_evicted[i] = step;
                        scn_dmem_classify(&scn_dmem_specs[i], before[i], after, res.tier_bytes, &lo, &hi);
                }
                if (lo && lo < max_tier) {
                        res.ok = false;
                        scn_why(res.why, sizeof(res.why), "step %u evicted tier %u after tier %u", step, lo,
                                max_tier);
                }
                max_tier = MAX(max_tier, hi);
        }
        if (res.tier_bytes[4]) {
                res.ok = false;
                scn_why(res.why, sizeof(res.why), "%" PRIu64 " bytes evicted below dmem.min", res.tier_bytes[4]);
        }
        /* VM order: a (over soft) before b (over low) before c (protected). */
        if (!res.first_evicted[0] || !res.first_evicted[1] || !res.first_evicted[2] ||
            res.first_evicted[0] >= res.first_evicted[1] || res.first_evicted[1] > res.first_evicted[2]) {
                res.ok = false;
                scn_why(res.why, sizeof(res.why), "first evicted at steps a %u, b %u, c %u", res.first_evicted[0],
                        res.first_evicted[1], res.first_evicted[2]);
        }
        for (unsigned i = 0; i < SCN_DMEM_VICTIMS; i++) {
                r = scn_dmem_usage(&s, &id[i], &res.end_usage[i]);
                if (r < 0)
                        goto out;
                if (res.end_usage[i] != scn_dmem_specs[i].min) {
                        res.ok = false;
                        scn_why(res.why, sizeof(res.why), "VM %u ended at %" PRIu64 " bytes, not its min", i,
                                res.end_usage[i]);
                }
        }
        if (res.end_r != -ENOSPC) {
                res.ok = false;
                scn_why(res.why, sizeof(res.why), "the region never filled up");
        }
        *ret = res;
        r = 0;
out:
        scn_close(&s);
        return r;
}

/* ---- host ceiling over 100 VMs ---------------------------------------------- */

enum { SCN_PRIOS = 4 };

typedef struct ScnCeilingConfig {
        unsigned vms;         /* 100 */
        unsigned ticks;       /* simulated seconds */
        uint64_t host_memory; /* 64 GiB */
        uint64_t host_own;    /* the host's own use (root), unreclaimable */
        unsigned ncpus;       /* for the pool size */
        bool host_policy;     /* false: no host plan (the figure without it) */
} ScnCeilingConfig;

static inline void scn_ceiling_default(ScnCeilingConfig *c) {
        *c = (ScnCeilingConfig) { .vms = 100, .ticks = 300, .host_memory = 64 * SCN_GIB,
                                  .host_own = 2 * SCN_GIB, .ncpus = 16, .host_policy = true };
}

typedef struct ScnCeilingResult {
        uint32_t max_bp;     /* the host's use, highest seen, in 1/100 % of total */
        uint32_t ceiling_bp;
        uint64_t host_reclaim_by_prio[SCN_PRIOS]; /* what the host plan's reclaim took, by priority */
        uint64_t background_bytes; /* what watermark reclaim took */
        unsigned plan_ticks;       /* ticks the host plan acted */
        unsigned shortfall_ticks;  /* ticks it could not cover the deficit */
        unsigned order_violations;
        char why[256];             /* the first violation */
        uint64_t vcpu_stall_usec;  /* direct reclaim of vCPU threads, all VMs */
        uint64_t failed_charges;
        unsigned max_pool_threads;
        unsigned pool_violations;
        unsigned throttle_on;      /* emulator/io throttles switched on */
        unsigned vcpu_limited;     /* vCPU groups with a cpu.max limit at the end (must be 0) */
        unsigned high_not_max;     /* VMs whose memory.high read back other than max */
        unsigned passthrough_below_ram;
} ScnCeilingResult;

typedef struct ScnVm {
        VmId id;
        pid_t vcpu;
        uint64_t ram, demand, rate;
        MemPolVmLimits lim;
        MemPolVmState st;
        MemPolCounters last;
        uint64_t current;     /* as last read */
        uint64_t level1, level2; /* the host plan's pass levels this tick */
        uint64_t host_before, host_ask;
        uint64_t growth;
        uint64_t bg_bytes;
} ScnVm;

/* A small deterministic generator (xorshift64). */
static inline uint64_t scn_rand(uint64_t *x) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

static inline int scn_read(ScnHost *s, ScnVm *v, MemStat *ret) {
        MemStat st;
        int r = kh_mem_read(s->h, &v->id, &st);

        if (r < 0)
                return r;
        v->current = st.current;
        if (ret)
                *ret = st;
        return 0;
}

/* memory.reclaim in chunks, as the reclaim pool does; stops early at -EAGAIN. */
static inline int scn_reclaim(ScnHost *s, const VmId *id, uint64_t bytes, uint64_t chunk, int swappiness) {
        while (bytes > 0) {
                uint64_t n = MIN(bytes, chunk);
                int r = kh_mem_reclaim(s->h, id, n, swappiness);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                bytes -= n;
        }
        return 0;
}

static inline int scn_apply_throttle(ScnHost *s, const VmId *id, const MemPolThrottle *t) {
        CpuBandwidth e = { .period_usec = t->period_usec, .quota_usec = t->emulator_quota_usec };
        CpuBandwidth io = { .period_usec = t->period_usec, .quota_usec = t->io_quota_usec };
        int r;

        /* Returns the number of writes made: >= 0 is success. */
        r = kh_cpu_set_bandwidth(s->h, id, CG_ROLE_EMULATOR, &e, NULL);
        if (r >= 0)
                r = kh_cpu_set_bandwidth(s->h, id, CG_ROLE_IO, &io, NULL);
        return MIN(r, 0);
}

static inline int scn_ceiling_setup(ScnHost *s, const MemPolicy *p, ScnVm *vms, unsigned n) {
        static const uint64_t rams[] = { 512 * SCN_MIB, SCN_GIB, 2 * SCN_GIB };
        static const uint64_t rates[] = { 0, 4 * SCN_MIB, 8 * SCN_MIB, 16 * SCN_MIB, 32 * SCN_MIB };
        static const uint32_t demand_pct[] = { 60, 80, 100, 120 };
        uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);

        for (unsigned i = 0; i < n; i++) {
                ScnVm *v = &vms[i];
                MemPolVmSpec spec;
                MemLimits lim, got;
                MemStat st;
                int r;

                r = scn_vm(s, i, &v->id, &v->vcpu);
                if (r < 0)
                        return r;
                v->ram = rams[scn_rand(&seed) % ARRAY_SIZE(rams)];
                v->rate = rates[scn_rand(&seed) % ARRAY_SIZE(rates)];
                spec = (MemPolVmSpec) { .ram_bytes = v->ram, .priority = i % SCN_PRIOS,
                                        .passthrough = i % 10 == 9 };
                r = mempol_vm_limits(p, &spec, &v->lim);
                if (r < 0)
                        return r;
                lim = (MemLimits) { .set = MEM_SET_MAX | MEM_SET_HIGH | MEM_SET_LOW | MEM_SET_MIN | MEM_SET_SWAP_MAX,
                                    .max = v->lim.max, .high = v->lim.high, .low = v->lim.low,
                                    .min = v->lim.min, .swap_max = v->lim.swap_max };
                r = kh_mem_set_limits(s->h, &v->id, &lim, &got);
                if (r < 0)
                        return r;
                mempol_vm_state_init(&v->st, &v->lim);
                if (spec.passthrough) {
                        /* Pinned RAM, all touched; QEMU's overhead grows.
                         * Charged as reclaimable: the model would take it
                         * if asked, so the policy must not ask. */
                        v->demand = v->ram + 200 * SCN_MIB;
                        r = km_mem_charge(s->m, v->vcpu, (int64_t) (v->ram + 50 * SCN_MIB), true);
                } else {
                        v->demand = v->ram / 100 * demand_pct[scn_rand(&seed) % ARRAY_SIZE(demand_pct)];
                        /* Guest kernel and pinned bits: unreclaimable, below the floor. */
                        r = km_mem_charge(s->m, v->vcpu, (int64_t) (v->ram / 20), false);
                        if (r == 0)
                                r = km_mem_charge(s->m, v->vcpu, (int64_t) (v->ram / 10), true);
                }
                if (r < 0)
                        return r;
                r = scn_read(s, v, &st);
                if (r < 0)
                        return r;
                v->last = (MemPolCounters) { .at_usec = km_now_usec(s->m), .current = st.current,
                                             .refault_anon = st.workingset_refault_anon,
                                             .refault_file = st.workingset_refault_file, .pgsteal = st.pgsteal,
                                             .psi_some_total_usec = st.pressure.some_total_usec };
        }
        return 0;
}

/* The VMs grow toward their demand at their rate (regrowing what reclaim
 * took counts as refaults in the model). */
static inline void scn_ceiling_grow(ScnHost *s, ScnVm *vms, unsigned n, ScnCeilingResult *res) {
        for (unsigned i = 0; i < n; i++) {
                uint64_t want = MIN(vms[i].rate, vms[i].demand > vms[i].current ? vms[i].demand - vms[i].current : 0);

                if (want > 0 && km_mem_charge(s->m, vms[i].vcpu, (int64_t) want, true) < 0)
                        res->failed_charges++;
        }
}

/* Per VM: a sample, the decisions, applied. */
static inline int scn_ceiling_vm(ScnHost *s, const MemPolicy *p, ScnVm *v, ScnCeilingResult *res) {
        MemPolCounters c;
        MemPolSample smp;
        MemPolVmDecision d;
        MemStat st;
        uint64_t before;
        int r;

        r = scn_read(s, v, &st);
        if (r < 0)
                return r;
        c = (MemPolCounters) { .at_usec = km_now_usec(s->m), .current = st.current,
                               .refault_anon = st.workingset_refault_anon,
                               .refault_file = st.workingset_refault_file, .pgsteal = st.pgsteal,
                               .psi_some_total_usec = st.pressure.some_total_usec,
                               .psi_some_avg10 = st.pressure.some_avg10 };
        r = mempol_sample(&v->last, &c, &smp);
        if (r < 0)
                return r;
        v->last = c;
        r = mempol_vm_tick(p, &v->lim, false, &v->st, &smp, &d);
        if (r < 0)
                return r;
        v->growth = d.growth_bytes_per_sec;
        if (d.low_changed) {
                MemLimits lim = { .set = MEM_SET_LOW, .low = d.low };

                r = kh_mem_set_limits(s->h, &v->id, &lim, NULL);
                if (r < 0)
                        return r;
        }
        if (d.throttle_changed) {
                r = scn_apply_throttle(s, &v->id, &d.throttle);
                if (r < 0)
                        return r;
                res->throttle_on += d.throttle.on;
        }
        v->bg_bytes = d.reclaim_bytes;
        if (d.reclaim_bytes == 0)
                return 0;
        before = v->current;
        r = scn_reclaim(s, &v->id, d.reclaim_bytes, d.chunk_bytes, d.swappiness);
        if (r == 0)
                r = scn_read(s, v, NULL);
        if (r == 0 && before > v->current)
                res->background_bytes += before - v->current;
        return r;
}

/* Whether the kernel's state after the host plan's reclaim shows the
 * order: a VM gave only if every lower priority was down to its floor,
 * gave protected memory only if its own priority had no unprotected memory
 * left; nobody below its floor, passthrough VMs never below RAM.  A page of
 * slack: the plan asks whole pages. */
static inline void scn_ceiling_check(ScnVm *vms, unsigned n, ScnCeilingResult *res, unsigned tick) {
        for (unsigned j = 0; j < n; j++) {
                const ScnVm *b = &vms[j];
                bool took = b->host_before > b->current, into_low = took && b->current + SCN_PAGE <= b->level1;

                if (b->lim.passthrough && b->current < b->ram) {
                        res->passthrough_below_ram++;
                        scn_why(res->why, sizeof(res->why), "tick %u: passthrough VM %u below RAM", tick, j);
                }
                if (took && b->current + SCN_PAGE <= b->level2) {
                        res->order_violations++;
                        scn_why(res->why, sizeof(res->why), "tick %u: VM %u below its floor", tick, j);
                }
                if (!took)
                        continue;
                for (unsigned i = 0; i < n; i++) {
                        const ScnVm *a = &vms[i];

                        if (a->lim.priority < b->lim.priority && a->current >= a->level2 + SCN_PAGE) {
                                res->order_violations++;
                                scn_why(res->why, sizeof(res->why),
                                        "tick %u: VM %u (priority %u) reclaimed while VM %u (priority %u) kept "
                                        "%" PRIu64 " bytes above its floor",
                                        tick, j, b->lim.priority, i, a->lim.priority, a->current - a->level2);
                        }
                        if (into_low && a->lim.priority == b->lim.priority && a->current >= a->level1 + SCN_PAGE) {
                                res->order_violations++;
                                scn_why(res->why, sizeof(res->why),
                                        "tick %u: VM %u gave protected memory while VM %u of its priority had "
                                        "unprotected memory",
                                        tick, j, i);
                        }
                }
        }
}

static inline int scn_ceiling_host(ScnHost *s, const MemPolicy *p, ScnVm *vms, unsigned n, uint64_t growth_sum,
                                   ScnCeilingResult *res, unsigned tick) {
        _cleanup_free_ MemPolHostVm *in = calloc(n, sizeof(*in));
        _cleanup_free_ MemPolHostVmPlan *out = calloc(n, sizeof(*out));
        MemPolHostUse use = { 0 };
        MemPolHostPlan plan;
        int r;

        if (!in || !out)
                return -ENOMEM;
        r = kh_host_memory(s->h, &use.total, &use.used);
        if (r < 0)
                return r;
        use.growth = mempol_host_growth(growth_sum, SCN_SEC);
        for (unsigned i = 0; i < n; i++) {
                ScnVm *v = &vms[i];
                uint64_t floor = v->lim.passthrough ? MAX(v->lim.floor, v->ram) : v->lim.floor;

                mempol_host_vm(&v->lim, &v->st, v->current, 0, &in[i]);
                v->level2 = floor;
                v->level1 = MAX(floor, v->st.low);
                v->host_before = v->current;
        }
        r = mempol_host_plan(p, &use, in, n, out, &plan);
        if (r < 0)
                return r;
        if (plan.deficit == 0)
                return 0;
        res->plan_ticks++;
        res->shortfall_ticks += plan.shortfall > 0;
        for (unsigned i = 0; i < n; i++) {
                ScnVm *v = &vms[i];

                v->host_ask = out[i].reclaim;
                if (v->lim.passthrough && out[i].reclaim > (v->current > v->ram ? v->current - v->ram : 0)) {
                        res->passthrough_below_ram++;
                        scn_why(res->why, sizeof(res->why), "tick %u: plan asks passthrough VM %u for its RAM",
                                tick, i);
                }
                if (out[i].reclaim == 0)
                        continue;
                r = scn_reclaim(s, &v->id, out[i].reclaim, p->reclaim.chunk_bytes, -1);
                if (r == 0)
                        r = scn_read(s, v, NULL);
                if (r < 0)
                        return r;
                if (v->host_before > v->current)
                        res->host_reclaim_by_prio[v->lim.priority % SCN_PRIOS] += v->host_before - v->current;
        }
        scn_ceiling_check(vms, n, res, tick);
        return 0;
}

static inline int scn_ceiling_end(ScnHost *s, ScnVm *vms, unsigned n, ScnCeilingResult *res) {
        for (unsigned i = 0; i < n; i++) {
                CpuBandwidth bw;
                MemStat st;
                uint64_t stall;
                int r;

                r = kh_cpu_get_bandwidth(s->h, &vms[i].id, CG_ROLE_VCPUS, &bw);
                if (r < 0)
                        return r;
                res->vcpu_limited += bw.quota_usec != CPU_QUOTA_MAX;
                r = kh_mem_read(s->h, &vms[i].id, &st);
                if (r < 0)
                        return r;
                res->high_not_max += st.high != MEM_MAX;
                r = km_thread_reclaim_stall_usec(s->m, vms[i].vcpu, &stall);
                if (r < 0)
                        return r;
                res->vcpu_stall_usec += stall;
        }
        return 0;
}

static inline int scn_ceiling(const ScnCeilingConfig *cfg, ScnCeilingResult *ret) {
        KModelConfig mcfg = { .mode = CG_MODE_UNIFIED, .host_memory = cfg->host_memory };
        _cleanup_free_ ScnVm *vms = calloc(cfg->vms ? cfg->vms : 1, sizeof(ScnVm));
        ScnCeilingResult res = { 0 };
        MemPolicy p;
        ScnHost s = { 0 };
        pid_t host_pid;
        int r;

        if (!vms)
                return -ENOMEM;
        mempol_default(&p);
        /* This scenario is about the ceiling: no proactive reclaim. */
        p.proactive.enabled = false;
        res.ceiling_bp = p.host.ceiling_ppm / 100;
        r = scn_open(&mcfg, &s);
        if (r < 0)
                return r;
        host_pid = km_process_new(s.m); /* the host's own memory, in the root */
        r = host_pid < 0 ? host_pid : km_mem_charge(s.m, host_pid, (int64_t) cfg->host_own, false);
        if (r == 0)
                r = scn_ceiling_setup(&s, &p, vms, cfg->vms);
        for (unsigned tick = 1; r == 0 && tick <= cfg->ticks; tick++) {
                MemPolPoolDemand demand = { 0 };
                uint64_t total, used, growth_sum = 0;
                unsigned threads;

                km_advance(s.m, SCN_SEC);
                scn_ceiling_grow(&s, vms, cfg->vms, &res);
                r = kh_host_memory(s.h, &total, &used);
                if (r < 0)
                        break;
                res.max_bp = MAX(res.max_bp, (uint32_t) (used * 10000 / total));
                for (unsigned i = 0; r == 0 && i < cfg->vms; i++) {
                        r = scn_ceiling_vm(&s, &p, &vms[i], &res);
                        growth_sum += vms[i].growth;
                }
                if (r == 0 && cfg->host_policy)
                        r = scn_ceiling_host(&s, &p, vms, cfg->vms, growth_sum, &res, tick);
                /* The pool this tick's requests would have had. */
                for (unsigned i = 0; i < cfg->vms; i++) {
                        mempol_pool_demand_add(&demand, vms[i].growth, vms[i].bg_bytes + vms[i].host_ask);
                        vms[i].host_ask = 0;
                }
                threads = mempol_pool_threads(&p, cfg->ncpus, &demand);
                res.max_pool_threads = MAX(res.max_pool_threads, threads);
                if (threads > cfg->ncpus || (demand.vms > 0) != (threads > 0))
                        res.pool_violations++;
        }
        if (r == 0)
                r = scn_ceiling_end(&s, vms, cfg->vms, &res);
        if (r == 0)
                *ret = res;
        scn_close(&s);
        return r;
}
