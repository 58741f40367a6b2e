/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/model-internal.h - private: shared state of the kernel model.
 *
 * The model is split by job:
 *   model.c        model object, clock, tasks, the group tree, migration
 *                  rules, the KBackendOps table and kh_open_model()
 *   model-files.c  the file table: which file exists where, read/write
 *                  dispatch, core cgroup files (cgroup.*, pids.*)
 *   model-cpu.c    CFS bandwidth: cpu.* files and the event-driven clock
 *   model-mem.c    memcg (memory.*) and dmem (dmem.*)
 *
 * Units: model time is nanoseconds internally (km_now_usec() rounds down);
 * CPU demand is parts per million of one CPU; CPU time and bandwidth pools
 * are nanoseconds plus a sub-nanosecond remainder in ppm*ns so that no
 * rounding ever accumulates.  Memory is bytes, always a multiple of
 * KM_PAGE_SIZE.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/backend.h"
#include "kernel/model/kmodel.h"

#define KM_PAGE_SIZE UINT64_C(4096)
#define KM_PPM UINT64_C(1000000)
/* cfs_b->quota == RUNTIME_INF */
#define KM_RUNTIME_INF UINT64_MAX
/* MAX_BW = (1 << (64 - BW_SHIFT)) - 1 usec with BW_SHIFT 20 (kernel/sched/sched.h) */
#define KM_MAX_BW_USEC ((UINT64_C(1) << 44) - 1)
#define KM_DEFAULT_PERIOD_USEC UINT64_C(100000)
/* First pid handed out; any positive start works, this one looks like a pid. */
#define KM_FIRST_PID 1000
/* kernfs writes without atomic_write_len are cut at PAGE_SIZE. */
#define KM_WRITE_MAX 4096

/* Direct reclaim is charged as stall at a fixed rate of 1 GiB/s:
 * stall_usec = bytes * 10^6 / 2^30, rounded down. */
#define KM_RECLAIM_BYTES_PER_SEC (UINT64_C(1) << 30)

/* Controllers that support thread mode (cgrp_dfl_threaded_ss_mask). */
#define KM_THREADED_CTRLS \
        (CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUSET) | CG_CTRL_BIT(CG_CTRL_PIDS))

typedef struct KmGroup KmGroup;
typedef struct KmThread KmThread;
typedef struct KmProcess KmProcess;

/* One task group's CFS bandwidth state: struct cfs_bandwidth, collapsed
 * over CPUs (the model has one pool and no per-CPU cfs_rq slices). */
typedef struct KmCfs {
        uint64_t period_ns;
        uint64_t quota_ns; /* KM_RUNTIME_INF: unlimited */
        uint64_t burst_ns;
        /* The pool: runtime_ns minus runtime_debt/10^6 ns. */
        uint64_t runtime_ns;
        uint32_t runtime_debt; /* ppm*ns drained below runtime_ns, < KM_PPM */
        uint64_t runtime_snap_ns;
        /* The period hrtimer. */
        uint64_t expires_ns;
        bool period_active;
        /* v2 of the series: the timer stopped for an idle group;
         * cfs_catch_up() credits the periods it sleeps through. */
        bool idle_stopped;
        bool catch_up; /* a patched kernel's group (set with its bandwidth) */
        bool idle;
        bool throttled;
        uint64_t throttled_since_ns;
        /* cpu.stat */
        uint64_t nr_periods;
        uint64_t nr_throttled;
        uint64_t throttled_ns;
        uint64_t nr_burst;
        uint64_t burst_time_ns;
        /* Scratch of one simulation step (model-cpu.c). */
        uint64_t acc_ppm;  /* demand below this group not stopped below it */
        uint64_t rate_ppm; /* what actually drains the pool now */
        bool blocked;      /* this group or an ancestor is throttled */
        /* Lazy simulation, kept by the root of a limited subtree
         * (model-cpu.c): the subtree's state is as of sim_ns, which may lie
         * behind the model clock while nothing in it happens. */
        bool lazy_root;  /* registered root; sim_ns and ff_* are valid */
        size_t root_idx; /* in KModel.cfs_roots */
        uint64_t sim_ns;
        /* Fast-forward: from the period boundary sim_ns on, ff_left more
         * periods (UINT64_MAX: until something changes) follow in closed
         * form; see ff_enter() in model-cpu.c. */
        bool ff;
        bool ff_linear;    /* pool moves by quota - use per period; else fixed */
        bool ff_throttles; /* fixed: every period throttles after ff_run_ns */
        uint64_t ff_left;
        uint64_t ff_run_ns;
} KmCfs;

enum {
        KM_MEV_LOW,
        KM_MEV_HIGH,
        KM_MEV_MAX,
        KM_MEV_OOM,
        KM_MEV_OOM_KILL,
        _KM_MEV_MAX,
};

/* A memcg: page_counter plus the few statistics the model produces. */
typedef struct KmMemcg {
        uint64_t usage; /* hierarchical, like page_counter */
        uint64_t peak;
        uint64_t anon;    /* own charges that reclaim cannot free */
        uint64_t file;    /* own reclaimable charges */
        uint64_t evicted; /* own reclaimed bytes not yet refaulted */
        uint64_t min, low, high, max, swap_max; /* UINT64_MAX = "max" */
        /* memory.stat counters, hierarchical (counted on the way up) */
        uint64_t pgscan, pgsteal, pgmajfault;
        uint64_t refault_file;
        uint64_t events[_KM_MEV_MAX];       /* memory.events (hierarchical) */
        uint64_t events_local[_KM_MEV_MAX]; /* memory.events.local */
        /* Scratch of one reclaim pass: effective protection. */
        uint64_t emin, elow;
} KmMemcg;

typedef struct KmDmemPool {
        uint64_t usage; /* hierarchical */
        uint64_t own;   /* charged directly to this group */
        uint64_t min, low, max, high;
} KmDmemPool;

struct KmGroup {
        char *name; /* NULL for the hierarchy root */
        KmGroup *parent;
        KmGroup *children; /* sorted by name */
        KmGroup *next_sibling;
        KmGroup **child_index; /* the children again, sorted, for lookup */
        size_t n_children, child_index_cap;

        /* v2 */
        bool threaded;            /* cgroup.type was set to "threaded" */
        uint32_t subtree_control; /* CG_CTRL_BIT mask */

        KmThread *threads; /* threads in exactly this group */
        size_t n_threads;
        size_t n_tasks_subtree; /* threads here and below: "populated" */

        /* CPU time of threads that have left (or exited) this group. */
        uint64_t usage_base_ns;
        KmCfs cfs;
        uint64_t cpu_weight; /* cpu.weight on v2, cpu.shares on v1 */
        uint64_t pids_max;   /* UINT64_MAX = "max" */

        KmMemcg mem;
        KmDmemPool *dmem; /* one per configured region */

        /* memory.pressure totals, usec (some == full: a stalled thread is
         * the only task the model considers). */
        uint64_t mem_stall_usec;
};

struct KmThread {
        pid_t tid;
        KmProcess *proc;
        KmGroup *group;
        KmThread *group_prev, *group_next; /* in group->threads */
        KmThread *proc_next;               /* in proc->threads, by tid */

        uint32_t demand_ppm;
        /* CPU time received: usage_ns + usage_rem/10^6 ns, as of sync_ns. */
        uint64_t usage_ns;
        uint32_t usage_rem;
        uint64_t sync_ns;
        bool running; /* not stopped by a throttled group */
        uint64_t join_usage_ns; /* usage when it entered its group */
        uint64_t nr_slices;     /* times it was scheduled in (schedstat) */
        uint64_t reclaim_stall_usec;
};

struct KmProcess {
        pid_t pid;
        KmThread *threads; /* live threads, ascending tid */
        size_t n_threads;
};

typedef struct KmCfsRoot {
        size_t start, n;     /* range of KModel.cfs_order */
        uint64_t next_ev_ns; /* fast mode: nothing happens in it before this */
        bool ff_ok;          /* the root is its only limited group */
} KmCfsRoot;

struct KModel {
        KModelConfig cfg; /* dmem region names are owned copies */
        CgVersion version;
        uint32_t controllers; /* CG_CTRL_BIT mask mounted in the hierarchy */
        uint64_t now_ns;

        KmGroup *root;
        size_t n_groups;

        /* Threads and processes by id: slot [id - KM_FIRST_PID]. */
        KmThread **threads;
        KmProcess **procs;
        size_t n_ids, ids_cap;

        /* CFS: every group with a finite quota and no limited ancestor is
         * the root of an independent simulation ("limited subtree"); its
         * subtree is stored in pre-order in cfs_order.  Rebuilt lazily
         * when the tree, the threads or the set of limited groups change. */
        bool cfs_dirty;
        KmGroup **cfs_order;
        size_t n_cfs_order, cfs_order_cap;
        KmCfsRoot *cfs_roots;
        size_t n_cfs_roots, cfs_roots_cap;
        /* Fast mode (the default): limited subtrees are simulated lazily,
         * only up to their next event, and runs of identical CFS periods
         * are fast-forwarded in closed form.  Off: every subtree is stepped
         * event by event on every km_advance(), the reference the fast mode
         * must match to the nanosecond (tests/bench/test-model-ff.c). */
        bool cfs_slow;
        uint64_t ff_jumps;   /* statistics: fast-forwards taken */
        uint64_t ff_periods; /* and the periods they covered */

        /* Files held open (the backend's open_read), never reused: like
         * kernfs fds, a handle outlives its group and then reads -ENODEV. */
        struct KmHandle *handles;
        size_t n_handles, handles_cap;
};

/* One open file: group NULL once the group is gone. */
typedef struct KmHandle {
        KmGroup *group;
        const struct KmFile *file;
} KmHandle;

/* A bounded output buffer; overflow is sticky and becomes -E2BIG. */
typedef struct KmBuf {
        char *p;
        size_t size;
        size_t len;
        bool overflow;
} KmBuf;

void km_buf_printf(KmBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- model.c ---- */
KmThread *km_thread_lookup(KModel *m, pid_t tid);
KmProcess *km_process_lookup(KModel *m, pid_t pid);
/* The group whose css of controller `ctrl` governs group g: g itself when
 * the controller is enabled for it, else the nearest such ancestor (v2
 * domain controllers first go to the threaded domain). */
KmGroup *km_css_group(KModel *m, KmGroup *g, CgController ctrl);
bool km_ctrl_enabled(const KModel *m, const KmGroup *g, CgController ctrl);
bool km_group_is_threaded(const KmGroup *g);
KmGroup *km_group_dom(KmGroup *g);
bool km_group_is_valid_domain(KmGroup *g);
bool km_group_is_thread_root(KmGroup *g);
bool km_group_can_be_thread_root(KmGroup *g);
int km_move_thread(KModel *m, KmThread *t, KmGroup *dst);
/* Pre-order successor of g inside the subtree rooted at top. */
KmGroup *km_group_next_pre(KmGroup *g, KmGroup *top);
/* The same, skipping g's own subtree. */
KmGroup *km_group_next_skip(KmGroup *g, KmGroup *top);

/* ---- model-files.c ---- */
/* strstrip(): trims blanks and newlines around a written value in place. */
char *km_strip(char *s);
int km_file_read(KModel *m, KmGroup *g, const char *file, char *buf, size_t size, size_t *ret_len);
int km_file_write(KModel *m, KmGroup *g, const char *file, const char *data, size_t len,
                  bool nonblock);
bool km_file_exists(KModel *m, KmGroup *g, const char *file);
/* The file `name` of g, for a handle; NULL where g has no such file. */
const struct KmFile *km_file_find(KModel *m, KmGroup *g, const char *name);
/* Reads a file found before: -ENODEV if g no longer has it (the
 * controller was disabled: kernfs removed its files). */
int km_file_read_found(KModel *m, KmGroup *g, const struct KmFile *f, char *buf, size_t size,
                       size_t *ret_len);
/* Called when a controller is disabled for group g: its css goes away. */
void km_group_reset_ctrl(KModel *m, KmGroup *g, CgController ctrl);

/* ---- model-cpu.c ---- */
void km_cfs_init(KmCfs *c);
/* Brings a thread's CPU time up to the model clock. */
void km_thread_sync(KModel *m, KmThread *t);
/* Brings the limited subtree that holds g (if any) up to the model clock.
 * Call before changing what runs in g (threads, demand, the tree below
 * it); readers of CPU state in model-cpu.c do it themselves. */
void km_cfs_sync(KModel *m, KmGroup *g);
/* The same for every limited subtree that holds or lies below g: before a
 * change that may remove or reset groups' bandwidth in g's subtree. */
void km_cfs_sync_tree(KModel *m, KmGroup *g);
/* Fast mode on (the default) or off; see KModel.cfs_slow. */
void km_set_fast_forward(KModel *m, bool on);
uint64_t km_group_usage_ns(KModel *m, KmGroup *g); /* hierarchical */
int km_cpu_show_stat(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_show_max(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_max(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_burst(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_burst(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_runtime(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_runtime(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_weight(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_weight(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_v1_period(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_v1_period(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_v1_quota(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_v1_quota(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_v1_burst(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_v1_burst(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpu_show_v1_stat(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_show_v1_shares(KModel *m, KmGroup *g, KmBuf *b);
int km_cpu_write_v1_shares(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_cpuacct_show_usage(KModel *m, KmGroup *g, KmBuf *b);
int km_cpuacct_show_stat(KModel *m, KmGroup *g, KmBuf *b);
/* Makes room for n_groups groups in the simulation's arrays so that
 * km_advance(), which cannot fail, never allocates. */
int km_cfs_reserve(KModel *m, size_t n_groups);
void km_cfs_free(KModel *m);

/* ---- model-mem.c ---- */
void km_memcg_init(KmMemcg *mc);
int km_dmem_init_group(KModel *m, KmGroup *g);
void km_dmem_reset_group(KModel *m, KmGroup *g);
/* Moves g's own memory and dmem charges to its parent (rmdir). */
void km_mem_reparent(KModel *m, KmGroup *g);
int km_psi_show(KmBuf *b, uint64_t some_usec, uint64_t full_usec);
int km_mem_show_current(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_peak(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_min(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_low(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_high(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_max(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_swap_max(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_swap_current(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_write_min(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_mem_write_low(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_mem_write_high(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_mem_write_max(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_mem_write_swap_max(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_mem_show_stat(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_events(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_events_local(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_show_pressure(KModel *m, KmGroup *g, KmBuf *b);
int km_mem_write_reclaim(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_dmem_show_capacity(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_show_current(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_show_min(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_show_low(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_show_max(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_show_high(KModel *m, KmGroup *g, KmBuf *b);
int km_dmem_write_min(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_dmem_write_low(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_dmem_write_max(KModel *m, KmGroup *g, char *data, bool nonblock);
int km_dmem_write_high(KModel *m, KmGroup *g, char *data, bool nonblock);
