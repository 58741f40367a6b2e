/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policies/memory.h - the memory policies (issue "Memory") as pure logic:
 * per-VM memcg limits, dynamic protection, background and proactive
 * reclaim, throttling of latency-tolerant threads, balloon targets, the
 * host ceiling and device memory.  A snapshot in, decisions out: no I/O,
 * no clock reads, no floating point.  Sizes are bytes (uint64_t),
 * fractions parts per million, times microseconds; MEMPOL_MAX (equal to
 * kernel.h's MEM_MAX) is "max".
 *
 * Kernel facts the decisions rest on:
 *  - Over memory.high *every* allocating thread of the group sleeps in
 *    reclaim, vCPUs included.  So memory.high stays "max" and never drives
 *    reclaim; vmmgr's own threads write memory.reclaim instead, before the
 *    VM gets near memory.max (kswapd-like watermarks).
 *  - memory.reclaim aimed at a group ignores that group's own memory.min
 *    and memory.low (mem_cgroup_protection() is 0 for the reclaim root).
 *    Protection only guards a VM against *other* reclaim; every amount
 *    vmmgr asks for itself is capped here so it never goes below a floor.
 *  - With memory_recursiveprot (systemd's default) a VM group's min and
 *    low count against host-wide reclaim only as far as its parent's
 *    effective protection reaches: vmmgr's subtree needs memory.min and
 *    memory.low at least the sums of its VMs' (the daemon's job).
 *  - Passthrough (vfio) RAM is pinned: it cannot be reclaimed at all, so
 *    such a VM gets memory.min = RAM and only its overhead above RAM is
 *    ever asked for.
 *  - dmem without dmem.high evicts in two classes: memory above
 *    max(low, min), then memory above min.  The upstream review of
 *    dmem.high (Lankhorst) asked for three: over high, then over low, then
 *    protected.  mempol_dmem_decide() gets that order from dmem.low alone
 *    by switching what the first class holds (see there).
 *
 * How the daemon uses it (names below):
 *
 *   VM added / RAM changed   mempol_vm_limits()  -> memory.max, memory.high
 *                            (= max), memory.swap.max, memory.min, memory.low;
 *                            mempol_vm_state_init()
 *   every tick, per VM       read memory.current/stat/pressure into
 *                            MemPolCounters; mempol_sample() -> MemPolSample;
 *                            mempol_vm_tick() -> memory.low, reclaim request
 *                            (bytes, chunk, swappiness), emulator/io cpu.max
 *   every tick, host         mempol_host_plan() over all VMs -> per-VM reclaim
 *                            and balloon asks under the host ceiling;
 *                            mempol_balloon_decide() per VM with a balloon;
 *                            mempol_pool_threads() -> reclaim pool size
 *   dmem, per region         mempol_dmem_decide() over the VMs using it
 *   API                      mempol_headroom()
 *
 * The state a VM carries between ticks is MemPolVmState (plain data; the
 * daemon may persist it or start afresh after a restart).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMPOL_MAX UINT64_MAX /* "max": no limit */
#define MEMPOL_PPM 1000000u
#define MEMPOL_PAGE_SIZE UINT64_C(4096)
/* The largest RAM (and overhead, and swap setting) taken: 2^50 B = 1 PiB.
 * With it every sum below stays far from 2^64. */
#define MEMPOL_BYTES_LIMIT (UINT64_C(1) << 50)
#define MEMPOL_MIB (UINT64_C(1) << 20)
#define MEMPOL_GIB (UINT64_C(1) << 30)

/* ---- tunables --------------------------------------------------------- */

typedef struct MemPolLimitParams {
        uint64_t overhead_bytes;     /* QEMU's own memory beyond guest RAM: fixed part (256 MiB) */
        uint32_t overhead_ppm;       /* ... plus this share of RAM (2 %) */
        uint64_t swap_max_bytes;     /* memory.swap.max wanted (MEMPOL_MAX: none of its own) */
        /* The combined memory+swap ceiling: memory.max + memory.swap.max
         * never exceeds the lower of these (0: not set).  A VM whose RAM +
         * overhead alone is above it is refused (-ERANGE). */
        uint64_t mem_swap_max_bytes;
        uint32_t mem_swap_max_ppm;   /* of RAM, e.g. 1500000 = 150 % */
        uint32_t min_ppm;            /* memory.min of RAM, the hard floor (10 %) */
        uint32_t low_floor_ppm;      /* dynamic memory.low never below this share of RAM (25 %) */
} MemPolLimitParams;

typedef struct MemPolProtectParams {
        /* The working set is being cut in an interval when memory PSI
         * (some) is above pressure_ppm, or refaults (bytes/s) are above
         * max(refault_min_bytes_per_sec, refault_ppm_per_sec of usage). */
        /* 10000 = 1 %: ten times proactive reclaim's target, so that
         * proactive reclaim holding a VM at its target does not count as
         * a cut (at 0.1 % it did, and memory.low, which proactive reclaim
         * never goes below, rose to usage after the first stall). */
        uint32_t pressure_ppm;
        uint64_t refault_min_bytes_per_sec; /* 1 MiB/s: noise floor */
        uint32_t refault_ppm_per_sec;       /* 100 = 0.01 % of usage per second (0.6 %/min) */
        /* A cut interval raises low by this share of the bytes that
         * refaulted in it (100 %), up to usage: protection follows the
         * working set that came back, not usage, most of which may be
         * cold (moving a quarter of the way up to usage on each cut, a few
         * seconds of pressure protected a VM's whole cold memory from
         * proactive reclaim for minutes; docs/memory.md). */
        uint32_t raise_ppm;
        uint64_t quiet_usec;                /* quiet this long before low decays (30 s) */
        uint32_t decay_ppm_per_sec;         /* then low loses this share of (low - floor) per second (0.1 %) */
} MemPolProtectParams;

typedef struct MemPolReclaimParams {
        /* Watermarks below memory.max, each gap the larger of bytes and
         * ppm of max, and never more than a quarter (high) or half (low)
         * of the room between the floor and max (a passthrough VM's room
         * is its overhead only). */
        uint64_t high_gap_bytes; /* 64 MiB */
        uint32_t high_gap_ppm;   /* 2 % */
        uint64_t low_gap_bytes;  /* 128 MiB */
        uint32_t low_gap_ppm;    /* 5 % */
        uint64_t request_max_bytes; /* one tick's request per VM (1 GiB) */
        uint64_t chunk_bytes;       /* one memory.reclaim write (16 MiB): never runs for long */
        /* Pool sizing: one worker reclaims about thread_bytes_per_sec; the
         * backlog should be gone within drain_usec. */
        uint64_t thread_bytes_per_sec; /* 512 MiB/s */
        uint64_t drain_usec;           /* 1 s */
        unsigned max_threads;          /* 0: the number of CPUs */
} MemPolReclaimParams;

typedef struct MemPolProactiveParams {
        bool enabled;
        /* senpai/TMO: step = usage x step_ppm_per_sec x interval, scaled by
         * (target - pressure) / target; nothing at or above the target.
         * Pressure here is its average over about window_usec (senpai
         * judges its 6 s interval): one second's stall is too noisy a
         * signal for a 0.1 % target (a single refault read of 3 ms is
         * 0.3 % of that second).  docs/memory.md has the measurement
         * behind these defaults. */
        uint32_t step_ppm_per_sec;    /* 10000 = 1 % of usage per second (senpai: 1 % per 6 s interval) */
        uint32_t pressure_target_ppm; /* 1000 = 0.1 % some */
        uint64_t window_usec;         /* pressure averaged over (6 s; 0: each interval alone) */
        uint64_t backoff_usec;        /* pressure or rising refaults: nothing for this long (10 s) */
        uint64_t step_max_bytes;      /* one interval's step (64 MiB) */
        /* memory.reclaim swappiness= where the kernel takes it (6.7+),
         * -1: never passed.  Guest RAM is anonymous memory, so the default
         * 100 weighs it like page cache whatever the host's vm.swappiness. */
        int swappiness;
} MemPolProactiveParams;

typedef struct MemPolThrottleParams {
        /* While the VM is above its high watermark and until background
         * reclaim has it at the low one, the emulator and io groups run at
         * most these shares of one CPU.  The vCPU group never is. */
        uint64_t period_usec; /* 100 ms */
        uint32_t emulator_ppm; /* 20 % */
        uint32_t io_ppm;       /* 20 % */
} MemPolThrottleParams;

typedef struct MemPolBalloonParams {
        uint32_t min_guest_ppm; /* never ask the guest below this share of RAM (50 %) */
} MemPolBalloonParams;

typedef struct MemPolHostParams {
        uint32_t ceiling_ppm;    /* host memory use stays below this share of total (95 %) */
        /* Act above ceiling - start_gap, reclaim down to ceiling -
         * target_gap (shares of host total): one tick's growth must fit in
         * start_gap for use never to touch the ceiling. */
        uint32_t start_gap_ppm;  /* 1 % */
        uint32_t target_gap_ppm; /* 2 % */
} MemPolHostParams;

typedef struct MemPolDmemParams {
        /* Stock kernels: a VM over its soft target stays over (evicted
         * first) until at or below max(low, soft - hysteresis), where the
         * hysteresis is the larger of these. */
        uint64_t hysteresis_bytes; /* 64 MiB */
        uint32_t hysteresis_ppm;   /* 5 % of the soft target */
} MemPolDmemParams;

typedef struct MemPolicy {
        MemPolLimitParams limits;
        MemPolProtectParams protect;
        MemPolReclaimParams reclaim;
        MemPolProactiveParams proactive;
        MemPolThrottleParams throttle;
        MemPolBalloonParams balloon;
        MemPolHostParams host;
        MemPolDmemParams dmem;
} MemPolicy;

void mempol_default(MemPolicy *p);
/* -EINVAL (-ERANGE for sizes beyond MEMPOL_BYTES_LIMIT) with *ret_field
 * naming the field at fault: its mempol_set_key() key where it has one. */
int mempol_validate(const MemPolicy *p, const char **ret_field);

/* Sets one tunable from a config "key = value": sizes take "256M", "1G",
 * "4096" (binary K/M/G/T), and "max" (no limit) for swap_max and
 * mem_swap_max; shares "0.02" or "2%"; "on"/"off".  Keys: overhead,
 * overhead_pct, swap_max, mem_swap_max, mem_swap_max_pct, min_pct, low_floor_pct,
 * protect_pressure_pct, reclaim_chunk, reclaim_request_max,
 * reclaim_thread_rate (bytes per second), reclaim_max_threads, proactive,
 * proactive_step_pct (per second), proactive_pressure_pct,
 * proactive_window_sec, proactive_backoff_sec, proactive_swappiness (-1..200),
 * throttle_emulator_pct, throttle_io_pct, balloon_min_guest_pct,
 * host_ceiling_pct.  -ENOKEY for an unknown key, -EINVAL/-ERANGE for a
 * bad value (*ret_key names it, or is NULL on success).  Validate the
 * whole policy afterwards: some keys only make sense together. */
int mempol_set_key(MemPolicy *p, const char *key, const char *value, const char **ret_key);

/* ---- per-VM limits ---------------------------------------------------- */

typedef struct MemPolVmSpec {
        uint64_t ram_bytes; /* QMP query-memory-size-summary base-memory (+ plugged) */
        bool passthrough;   /* vfio devices: RAM is pinned */
        bool balloon;       /* virtio-balloon present */
        uint32_t priority;  /* host ceiling: higher is reclaimed later */
} MemPolVmSpec;

typedef struct MemPolVmLimits {
        uint64_t ram;        /* RAM rounded up to a page */
        uint64_t overhead;
        uint64_t max;        /* memory.max = RAM + overhead */
        uint64_t high;       /* memory.high: always MEMPOL_MAX */
        uint64_t swap_max;   /* memory.swap.max */
        uint64_t min;        /* memory.min (passthrough: RAM) */
        uint64_t low;        /* memory.low to start with (= low_floor) */
        uint64_t low_floor;  /* dynamic memory.low never below */
        uint64_t floor;      /* vmmgr never reclaims the VM below this (= min) */
        uint64_t wmark_high; /* background reclaim starts above */
        uint64_t wmark_low;  /* and takes the VM down to this */
        uint64_t min_guest;  /* balloon: never ask the guest below */
        bool passthrough, balloon;
        uint32_t priority;
} MemPolVmLimits;

/* -EINVAL for zero RAM or an invalid policy, -ERANGE for RAM beyond
 * MEMPOL_BYTES_LIMIT or a combined ceiling below RAM + overhead.  Every
 * value is page-aligned (max rounded up, the rest down) and
 * floor <= min <= low_floor <= wmark_low <= wmark_high <= max. */
int mempol_vm_limits(const MemPolicy *p, const MemPolVmSpec *vm, MemPolVmLimits *ret);

/* ---- samples ---------------------------------------------------------- */

/* Raw counters as read at one instant (kernel.h MemStat fields). */
typedef struct MemPolCounters {
        uint64_t at_usec;             /* the caller's monotonic clock */
        uint64_t current;             /* memory.current */
        uint64_t refault_anon;        /* memory.stat workingset_refault_anon (pages) */
        uint64_t refault_file;        /* memory.stat workingset_refault_file (pages) */
        uint64_t pgsteal;             /* memory.stat pgsteal (pages, all reclaim) */
        uint64_t psi_some_total_usec; /* memory.pressure some total */
        uint32_t psi_some_avg10;      /* hundredths of a percent */
} MemPolCounters;

/* One interval between two reads. */
typedef struct MemPolSample {
        uint64_t interval_usec;
        uint64_t current;
        uint64_t refault_bytes;        /* refaulted in the interval */
        uint64_t reclaimed_bytes;      /* pgsteal in the interval */
        uint32_t pressure_ppm;         /* the larger of stall/interval and avg10 */
        /* Allocation rate: what usage grew plus what reclaim took, per
         * second (frees show as less growth: a lower bound). */
        uint64_t growth_bytes_per_sec;
} MemPolSample;

/* A counter that went backwards (the group was recreated) counts as 0.
 * -EINVAL when `now` is not after `prev`. */
int mempol_sample(const MemPolCounters *prev, const MemPolCounters *now, MemPolSample *ret);

/* ---- per-VM decisions, every tick -------------------------------------- */

typedef struct MemPolVmState {
        uint64_t low;          /* memory.low in force */
        bool reclaiming;       /* background reclaim: above high, not yet at low */
        bool throttled;        /* emulator/io cpu.max applied */
        uint64_t quiet_usec;   /* since the working set was last cut */
        uint64_t backoff_usec; /* proactive reclaim holds off this much longer */
        uint32_t pressure_avg_ppm; /* proactive reclaim's average pressure (window_usec) */
        uint64_t refault_bytes_per_sec; /* the previous interval's */
} MemPolVmState;

void mempol_vm_state_init(MemPolVmState *s, const MemPolVmLimits *l);

/* true when the interval shows the working set being cut (PSI or refaults). */
bool mempol_working_set_cut(const MemPolicy *p, const MemPolSample *smp);

/* memory.low for the next interval: raised by what refaulted (raise_ppm of
 * it, up to usage) on a cut, decayed toward low_floor after quiet_usec
 * without one; always within
 * [low_floor, max], page-aligned.  Updates s->low and s->quiet_usec. */
uint64_t mempol_protect_update(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s,
                               const MemPolSample *smp);

/* Background reclaim: above wmark_high it starts, and until usage is at
 * wmark_low it asks for usage - wmark_low (never below the floor), at
 * most request_max_bytes.  Updates s->reclaiming.  0: nothing to do. */
uint64_t mempol_background(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s,
                           uint64_t current);

/* Proactive reclaim for one interval (0 while backing off, while pressure
 * is at or above target, or when disabled); never takes usage below
 * max(floor, s->low).  Updates s->backoff_usec and s->refault_bytes_per_sec. */
uint64_t mempol_proactive(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s,
                          const MemPolSample *smp);

#define MEMPOL_QUOTA_MAX UINT64_MAX /* cpu.max "max" */

typedef struct MemPolThrottle {
        bool on;
        uint64_t period_usec;
        uint64_t emulator_quota_usec; /* MEMPOL_QUOTA_MAX when off */
        uint64_t io_quota_usec;       /* MEMPOL_QUOTA_MAX when off */
        /* No vCPU field: the vCPU group is never throttled for memory. */
} MemPolThrottle;

/* On above wmark_high, off at or below wmark_low.  Quotas are at least
 * the kernel's 1 ms.  Updates s->throttled; returns true on a change.
 * Where other policy (credits) limits the same groups, the daemon applies
 * the lower of the two. */
bool mempol_throttle(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s, uint64_t current,
                     MemPolThrottle *ret);

typedef struct MemPolVmDecision {
        uint64_t low;              /* memory.low to have */
        bool low_changed;
        bool working_set_cut;
        uint64_t background_bytes; /* watermark reclaim this tick */
        uint64_t proactive_bytes;  /* proactive reclaim this tick (0 while background runs) */
        /* The pool request: reclaim_bytes in writes of chunk_bytes with
         * swappiness (-1: not passed).  0 bytes: none. */
        uint64_t reclaim_bytes;
        uint64_t chunk_bytes;
        int swappiness;
        MemPolThrottle throttle;
        bool throttle_changed;
        /* For mempol_pool_demand_add(). */
        uint64_t growth_bytes_per_sec;
} MemPolVmDecision;

/* All of the above for one VM and one interval.  `kernel_swappiness`:
 * the kernel takes memory.reclaim swappiness= (HostFeatures).  -EINVAL
 * for a NULL argument. */
int mempol_vm_tick(const MemPolicy *p, const MemPolVmLimits *l, bool kernel_swappiness, MemPolVmState *s,
                   const MemPolSample *smp, MemPolVmDecision *ret);

/* ---- the reclaim pool ------------------------------------------------- */

typedef struct MemPolPoolDemand {
        unsigned vms;                  /* VMs with a reclaim request */
        uint64_t growth_bytes_per_sec; /* their allocation rates, summed */
        uint64_t backlog_bytes;        /* their requests, summed */
} MemPolPoolDemand;

/* Adds one VM with a request (backlog 0 adds nothing).  Saturating. */
void mempol_pool_demand_add(MemPolPoolDemand *d, uint64_t growth_bytes_per_sec, uint64_t backlog_bytes);
/* Workers for the pool: (growth + backlog / drain) / thread rate, rounded
 * up; at least 1 while any VM has a request, 0 when none; never more than
 * ncpus (0 counts as 1), max_threads, or the VMs with requests (the pool
 * works on a VM with one worker at a time). */
unsigned mempol_pool_threads(const MemPolicy *p, unsigned ncpus, const MemPolPoolDemand *d);

/* ---- the host ceiling ------------------------------------------------- */

typedef struct MemPolHostVm {
        uint32_t priority;     /* lower is reclaimed first */
        uint64_t current;      /* memory.current */
        uint64_t floor;        /* never below (MemPolVmLimits.floor) */
        uint64_t low;          /* memory.low in force: its priority's unprotected memory goes first */
        uint64_t ram;
        bool passthrough;      /* never below RAM, whatever floor says */
        uint64_t balloon_room; /* guest size now - min_guest; 0 without a balloon */
} MemPolHostVm;

/* The entry for one VM from its limits, state and readings (`actual`:
 * the guest's size now, ignored without a balloon). */
void mempol_host_vm(const MemPolVmLimits *l, const MemPolVmState *s, uint64_t current, uint64_t actual,
                    MemPolHostVm *ret);

typedef struct MemPolHostVmPlan {
        uint64_t reclaim; /* memory.reclaim this tick */
        uint64_t balloon; /* ask the guest to give back this much */
} MemPolHostVmPlan;

/* The host as seen now. */
typedef struct MemPolHostUse {
        uint64_t total;  /* kh_host_memory(): MemTotal */
        uint64_t used;   /* MemTotal - MemAvailable */
        /* Expected growth before the next plan (mempol_host_growth()):
         * the plan acts on used + growth, so that reclaim done now still
         * holds when the VMs have grown. */
        uint64_t growth;
} MemPolHostUse;

/* The VMs' summed allocation rates (MemPolVmDecision.growth_bytes_per_sec)
 * over the time until the next plan.  Saturating. */
uint64_t mempol_host_growth(uint64_t bytes_per_sec, uint64_t interval_usec);

typedef struct MemPolHostPlan {
        uint64_t ceiling;   /* bytes */
        uint64_t start;     /* act when used + growth is above */
        uint64_t target;    /* reclaim down to */
        uint64_t projected; /* used + growth */
        uint64_t deficit;   /* projected - target when above start, else 0 */
        uint64_t reclaim;   /* summed over VMs */
        uint64_t balloon;   /* summed over VMs */
        uint64_t shortfall; /* deficit neither can cover */
        uint64_t headroom;  /* start - projected: room before the plan acts (balloon give-back) */
} MemPolHostPlan;

/* Splits the deficit over the VMs, lowest priority first: a priority
 * gives what is above max(floor, low) (its unprotected memory), then what
 * is above the floor (its protected working set), before the next
 * priority gives anything; no VM goes below its floor.  What reclaim
 * cannot cover is asked from balloons, lowest priority first.  Within one
 * priority each VM gives in proportion to what it has to give (whole
 * pages, exact).  Writes n entries of ret_vms.  No allocation:
 * O(n x distinct priorities).  -EINVAL for a zero total or NULL arrays
 * with n > 0. */
int mempol_host_plan(const MemPolicy *p, const MemPolHostUse *host, const MemPolHostVm *vms, size_t n,
                     MemPolHostVmPlan *ret_vms, MemPolHostPlan *ret);

/* ---- balloon ---------------------------------------------------------- */

typedef struct MemPolBalloonInput {
        uint64_t current;       /* memory.current */
        uint64_t actual;        /* guest size now (query-balloon "actual") */
        uint64_t target;        /* the target in force (RAM when none was asked) */
        uint64_t host_ask;      /* MemPolHostVmPlan.balloon */
        uint64_t host_headroom; /* MemPolHostPlan.headroom */
        bool reclaiming;        /* MemPolVmState.reclaiming */
} MemPolBalloonInput;

/* The guest size to ask for.  Asks (the target only goes down, never
 * below min_guest) when the host plan asks, or when the VM is far over
 * its soft target (past halfway from wmark_high to max: reclaim is not
 * keeping up), for usage - wmark_low.  Gives back when neither holds and
 * the VM is not reclaiming: up to half the host headroom per tick, so
 * RAM comes back in one step once the host has room for twice the
 * difference.  Returns true when *ret_target differs from in->target.
 * Without a balloon the target is RAM. */
bool mempol_balloon_decide(const MemPolVmLimits *l, const MemPolBalloonInput *in, uint64_t *ret_target);

typedef struct MemPolHeadroom {
        uint64_t grow_bytes;        /* until background reclaim starts (wmark_high - current) */
        uint64_t limit_bytes;       /* until memory.max */
        uint64_t reclaimable_bytes; /* above the floor */
        uint64_t balloon_bytes;     /* the balloon could still return (actual - min_guest) */
} MemPolHeadroom;

/* For the API.  `actual`: the guest's size now (ignored without a balloon). */
void mempol_headroom(const MemPolVmLimits *l, uint64_t current, uint64_t actual, MemPolHeadroom *ret);

/* ---- device memory (dmem) --------------------------------------------- */

typedef struct MemPolDmemSpec {
        uint64_t max;  /* dmem.max (MEMPOL_MAX: none) */
        uint64_t soft; /* soft target: dmem.high where the kernel has it (MEMPOL_MAX: none) */
        uint64_t low;  /* dmem.low */
        uint64_t min;  /* dmem.min */
} MemPolDmemSpec;

/* One VM's use of one region. */
typedef struct MemPolDmemVm {
        MemPolDmemSpec spec;
        uint64_t current; /* dmem.current */
        bool over;        /* state, in and out: over its soft target (stock kernels) */
} MemPolDmemVm;

typedef struct MemPolDmemLimits {
        uint64_t max, low, min;
        uint64_t high;    /* only with kernel_high; MEMPOL_MAX otherwise */
        bool write_high;
        bool low_changed; /* low differs from what the state passed in gave (same spec) */
} MemPolDmemLimits;

/* The limits of every VM using one region (ret: n entries).
 *
 * With dmem.high (kernel_high) the kernel evicts over-high first itself:
 * high = soft, low and min as given.
 *
 * Without it the kernel's first class is "above max(low, min)".  Tiers as
 * the review defines them: 1 = above soft, 2 = above low, 3 = above min.
 *  - While no VM is over its soft target, low is the configured low: the
 *    first class holds tier 2, the second tier 3.
 *  - While any VM is over (entered above soft, left at or below the
 *    larger of low and soft - hysteresis), every VM that is not gets
 *    low = its soft target, and every VM that is gets low = that restore
 *    point: the first class then holds only over-soft memory (and the
 *    hysteresis band of tier 2 of the VMs over), so it goes first whatever
 *    order the kernel uses within a class (TTM's LRU, the model's largest
 *    excess).
 * The literal "over soft target: low = 0" would put the offender's
 * protected memory into the first class together with everyone's tier 2.
 * An allocation burst larger than all tier-1 memory before the next
 * decision reaches the second class, which then mixes tiers 2 and 3.
 *
 * -EINVAL unless min <= low <= soft and (soft <= max or soft is
 * MEMPOL_MAX); the soft target in force is min(soft, max).  Returns how
 * many VMs' dmem.low changed; write all limits when a VM starts or its
 * spec changes. */
int mempol_dmem_decide(const MemPolicy *p, bool kernel_high, MemPolDmemVm *vms, size_t n, MemPolDmemLimits *ret);
