/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/model-files.c - the model's cgroup files: which file exists in
 * which group, read/write dispatch, and the core cgroup.* and pids.* files.
 *
 * A file exists in a group when the hierarchy's version matches, its root
 * flag allows the group, and its controller's css exists there (on v2: the
 * parent enabled the controller in cgroup.subtree_control, the way
 * css_visible() shows files).  Opening for a mode the file lacks fails
 * like kernfs_fop_open(): -EACCES.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/model/model-internal.h"

void km_buf_printf(KmBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        if (b->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->size > b->len ? b->size - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0 || b->len + (size_t) n >= b->size) {
                b->overflow = true;
                return;
        }
        b->len += (size_t) n;
}

char *km_strip(char *s) {
        char *e;

        s += strspn(s, " \t\n");
        e = s + strlen(s);
        while (e > s && strchr(" \t\n", e[-1]))
                *--e = '\0';
        return s;
}

/* ---- controller names (in kernel ssid order, as cgroup_print_ss_mask) - */

static const struct {
        CgController ctrl;
        const char *name;
} v2_ctrl_names[] = {
        { CG_CTRL_CPUSET, "cpuset" }, { CG_CTRL_CPU, "cpu" },         { CG_CTRL_IO, "io" },
        { CG_CTRL_MEMORY, "memory" }, { CG_CTRL_HUGETLB, "hugetlb" }, { CG_CTRL_PIDS, "pids" },
        { CG_CTRL_DMEM, "dmem" },
};

static void show_mask(KmBuf *b, uint32_t mask) {
        bool printed = false;

        for (size_t i = 0; i < ARRAY_SIZE(v2_ctrl_names); i++) {
                if (!(mask & CG_CTRL_BIT(v2_ctrl_names[i].ctrl)))
                        continue;
                km_buf_printf(b, "%s%s", printed ? " " : "", v2_ctrl_names[i].name);
                printed = true;
        }
        /* An empty mask prints nothing at all, not even a newline. */
        if (printed)
                km_buf_printf(b, "\n");
}

/* ---- cgroup.procs, cgroup.threads, tasks ----------------------------- */

/* The thread that stands for its process in cgroup.procs: the leader, or
 * when it has exited, the oldest live thread (docs/kernel-model.md). */
static bool thread_is_representative(const KmThread *t) {
        return t->proc->threads == t;
}

static int cmp_pid(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;

        return x < y ? -1 : x > y;
}

/* Groups whose tasks a read of g's files covers: g alone, or for v2
 * cgroup.procs of a domain, g and its threaded descendants
 * (CSS_TASK_ITER_THREADED). */
static KmGroup *next_in_threaded_subtree(KmGroup *c, KmGroup *top) {
        do
                c = km_group_next_pre(c, top);
        while (c && km_group_dom(c) != top);
        return c;
}

static int show_ids(KModel *m, KmGroup *g, KmBuf *b, bool procs, bool threaded_subtree) {
        _cleanup_free_ pid_t *ids = NULL;
        size_t n = 0, cap = 0;

        for (KmGroup *c = g; c; c = threaded_subtree ? next_in_threaded_subtree(c, g) : NULL)
                cap += c->n_threads;
        ids = calloc(cap ? cap : 1, sizeof(pid_t));
        if (!ids)
                return -ENOMEM;
        for (KmGroup *c = g; c; c = threaded_subtree ? next_in_threaded_subtree(c, g) : NULL)
                for (KmThread *t = c->threads; t; t = t->group_next) {
                        if (!procs)
                                ids[n++] = t->tid;
                        else if (thread_is_representative(t))
                                ids[n++] = t->proc->pid;
                }
        qsort(ids, n, sizeof(pid_t), cmp_pid);
        for (size_t i = 0; i < n; i++)
                km_buf_printf(b, "%d\n", (int) ids[i]);
        return 0;
}

static int show_procs(KModel *m, KmGroup *g, KmBuf *b) {
        if (m->version == CG_V1)
                return show_ids(m, g, b, true, false);
        /* cgroup_procs_start(): processes belong to the threaded domain. */
        if (km_group_is_threaded(g))
                return -EOPNOTSUPP;
        return show_ids(m, g, b, true, true);
}

static int show_threads(KModel *m, KmGroup *g, KmBuf *b) {
        return show_ids(m, g, b, false, false);
}

/* cgroup_procs_write_start(): kstrtoint of the stripped buffer. */
static int parse_pid(KModel *m, char *data, KmThread **ret) {
        uint64_t v;
        KmThread *t;
        int r;

        r = parse_u64(km_strip(data), &v);
        if (r < 0 || v > INT32_MAX)
                return -EINVAL;
        /* pid 0 means the writer itself, which is not a model task. */
        t = km_thread_lookup(m, (pid_t) v);
        if (!t)
                return -ESRCH;
        *ret = t;
        return 0;
}

/* cgroup_migrate_vet_dst() */
static int vet_dst(KModel *m, KmGroup *dst) {
        if (m->version == CG_V1)
                return 0;
        if (!km_group_is_valid_domain(km_group_dom(dst)))
                return -EOPNOTSUPP;
        if (!dst->parent)
                return 0;
        if (km_group_can_be_thread_root(dst) || km_group_is_threaded(dst))
                return 0;
        /* the no-internal-process constraint */
        return dst->subtree_control ? -EBUSY : 0;
}

static int write_procs(KModel *m, KmGroup *g, char *data, bool nonblock) {
        KmThread *t;
        int r;

        r = parse_pid(m, data, &t);
        if (r < 0)
                return r;
        r = vet_dst(m, g);
        if (r < 0)
                return r;
        /* Writing any tid moves its whole thread group. */
        for (KmThread *i = t->proc->threads; i; i = i->proc_next) {
                r = km_move_thread(m, i, g);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_threads(KModel *m, KmGroup *g, char *data, bool nonblock) {
        KmThread *t;
        int r;

        r = parse_pid(m, data, &t);
        if (r < 0)
                return r;
        r = vet_dst(m, g);
        if (r < 0)
                return r;
        /* cgroup_attach_permissions(): a single thread may not leave its
         * threaded domain. */
        if (m->version == CG_V2 && km_group_dom(t->group) != km_group_dom(g))
                return -EOPNOTSUPP;
        return km_move_thread(m, t, g);
}

/* ---- cgroup.type, cgroup.controllers, cgroup.subtree_control ---------- */

static int show_type(KModel *m, KmGroup *g, KmBuf *b) {
        const char *s;

        if (km_group_is_threaded(g))
                s = "threaded";
        else if (!km_group_is_valid_domain(g))
                s = "domain invalid";
        else if (km_group_is_thread_root(g))
                s = "domain threaded";
        else
                s = "domain";
        km_buf_printf(b, "%s\n", s);
        return 0;
}

/* A group losing a controller loses its css and with it the settings. */
static void drop_ctrls(KModel *m, KmGroup *g, uint32_t before, uint32_t after) {
        for (size_t i = 0; i < ARRAY_SIZE(v2_ctrl_names); i++) {
                CgController c = v2_ctrl_names[i].ctrl;

                if ((before & CG_CTRL_BIT(c)) && !(after & CG_CTRL_BIT(c)))
                        km_group_reset_ctrl(m, g, c);
        }
}

static uint32_t control_of(KModel *m, KmGroup *g) {
        uint32_t mask = 0;

        for (size_t i = 0; i < ARRAY_SIZE(v2_ctrl_names); i++)
                if (km_ctrl_enabled(m, g, v2_ctrl_names[i].ctrl))
                        mask |= CG_CTRL_BIT(v2_ctrl_names[i].ctrl);
        return mask;
}

/* cgroup_enable_threaded() */
static int write_type(KModel *m, KmGroup *g, char *data, bool nonblock) {
        KmGroup *dom;
        uint32_t before;

        if (strcmp(km_strip(data), "threaded") != 0)
                return -EINVAL;
        if (km_group_is_threaded(g))
                return 0;
        if (g->n_tasks_subtree > 0 || (g->subtree_control & ~KM_THREADED_CTRLS))
                return -EOPNOTSUPP;
        dom = km_group_dom(g->parent);
        if (!km_group_is_valid_domain(dom) || !km_group_can_be_thread_root(dom))
                return -EOPNOTSUPP;
        before = control_of(m, g);
        g->threaded = true;
        drop_ctrls(m, g, before, control_of(m, g));
        m->cfs_dirty = true;
        return 0;
}

static int show_controllers(KModel *m, KmGroup *g, KmBuf *b) {
        show_mask(b, control_of(m, g));
        return 0;
}

static int show_subtree_control(KModel *m, KmGroup *g, KmBuf *b) {
        show_mask(b, g->subtree_control);
        return 0;
}

static int ctrl_from_token(KModel *m, const char *name, CgController *ret) {
        for (size_t i = 0; i < ARRAY_SIZE(v2_ctrl_names); i++) {
                if (strcmp(name, v2_ctrl_names[i].name) != 0)
                        continue;
                /* Without regions the model is a kernel without dmem. */
                if (v2_ctrl_names[i].ctrl == CG_CTRL_DMEM && m->cfg.n_dmem_regions == 0)
                        return -EINVAL;
                *ret = v2_ctrl_names[i].ctrl;
                return 0;
        }
        return -EINVAL;
}

static int parse_subtree_tokens(KModel *m, char *data, uint32_t *ret_enable,
                                uint32_t *ret_disable) {
        uint32_t enable = 0, disable = 0;
        char *tok, *save = NULL;

        for (tok = strtok_r(data, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
                CgController c;
                int r;

                r = ctrl_from_token(m, tok + 1, &c);
                if (r < 0)
                        return r;
                if (tok[0] == '+') {
                        enable |= CG_CTRL_BIT(c);
                        disable &= ~CG_CTRL_BIT(c);
                } else if (tok[0] == '-') {
                        disable |= CG_CTRL_BIT(c);
                        enable &= ~CG_CTRL_BIT(c);
                } else
                        return -EINVAL;
        }
        *ret_enable = enable;
        *ret_disable = disable;
        return 0;
}

/* cgroup_vet_subtree_control_enable() */
static int vet_subtree_enable(KmGroup *g, uint32_t enable) {
        uint32_t domain_enable = enable & ~KM_THREADED_CTRLS;

        if (!enable)
                return 0;
        if (!km_group_is_valid_domain(km_group_dom(g)))
                return -EOPNOTSUPP;
        if (!g->parent)
                return 0;
        if (domain_enable) {
                if (km_group_is_thread_root(g) || km_group_is_threaded(g))
                        return -EOPNOTSUPP;
        } else if (km_group_is_threaded(g))
                return 0;
        return g->n_threads > 0 ? -EBUSY : 0;
}

/* What a child gets of its parent's subtree_control (cgroup_control()). */
static uint32_t child_mask(const KmGroup *c, uint32_t parent_subtree_control) {
        return km_group_is_threaded(c) ? parent_subtree_control & KM_THREADED_CTRLS
                                       : parent_subtree_control;
}

/* cgroup_subtree_control_write() */
static int write_subtree_control(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint32_t enable, disable, old, avail = control_of(m, g);
        int r;

        r = parse_subtree_tokens(m, data, &enable, &disable);
        if (r < 0)
                return r;
        enable &= ~g->subtree_control;
        disable &= g->subtree_control;
        if (enable & ~avail)
                return -ENOENT;
        for (KmGroup *c = g->children; c; c = c->next_sibling)
                if (c->subtree_control & disable)
                        return -EBUSY;
        if (!enable && !disable)
                return 0;
        r = vet_subtree_enable(g, enable);
        if (r < 0)
                return r;
        old = g->subtree_control;
        g->subtree_control = (old | enable) & ~disable;
        for (KmGroup *c = g->children; c; c = c->next_sibling)
                drop_ctrls(m, c, child_mask(c, old), child_mask(c, g->subtree_control));
        m->cfs_dirty = true;
        return 0;
}

static int show_events(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "populated %d\nfrozen 0\n", g->n_tasks_subtree > 0);
        return 0;
}

/* ---- pids ------------------------------------------------------------ */

#define KM_PIDS_MAX UINT64_C(4194305) /* PID_MAX_LIMIT + 1 */

static int show_pids_current(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "%zu\n", g->n_tasks_subtree);
        return 0;
}

static int show_pids_max(KModel *m, KmGroup *g, KmBuf *b) {
        if (g->pids_max == UINT64_MAX)
                km_buf_printf(b, "max\n");
        else
                km_buf_printf(b, "%" PRIu64 "\n", g->pids_max);
        return 0;
}

/* pids_max_write(); the limit is stored, fork failures are not modelled. */
static int write_pids_max(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t v;

        data = km_strip(data);
        if (strcmp(data, "max") == 0) {
                g->pids_max = UINT64_MAX;
                return 0;
        }
        if (parse_u64(data, &v) < 0 || v >= KM_PIDS_MAX)
                return -EINVAL;
        g->pids_max = v;
        return 0;
}

/* ---- pressure -------------------------------------------------------- */

static int show_cpu_pressure(KModel *m, KmGroup *g, KmBuf *b) {
        return km_psi_show(b, 0, 0);
}

/* PSI triggers are not modelled. */
static int write_pressure(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return -EINVAL;
}

/* ---- the table ------------------------------------------------------- */

enum {
        F_V1 = 1u << 0,
        F_V2 = 1u << 1,
        F_NOT_ROOT = 1u << 2,
        F_ONLY_ROOT = 1u << 3,
        F_PATCHED = 1u << 4,   /* the cpu.max.runtime patch */
        F_DMEM_HIGH = 1u << 5, /* KModelConfig.dmem_high */
};

#define CORE (-1)

typedef struct KmFile {
        const char *name;
        unsigned flags;
        int ctrl; /* CgController whose css must exist, or CORE */
        int (*show)(KModel *m, KmGroup *g, KmBuf *b);
        int (*write)(KModel *m, KmGroup *g, char *data, bool nonblock);
} KmFile;

static const KmFile files[] = {
        /* both versions */
        { "cgroup.procs", F_V1 | F_V2, CORE, show_procs, write_procs },
        /* v2 core */
        { "cgroup.threads", F_V2, CORE, show_threads, write_threads },
        { "cgroup.controllers", F_V2, CORE, show_controllers, NULL },
        { "cgroup.subtree_control", F_V2, CORE, show_subtree_control, write_subtree_control },
        { "cgroup.type", F_V2 | F_NOT_ROOT, CORE, show_type, write_type },
        { "cgroup.events", F_V2 | F_NOT_ROOT, CORE, show_events, NULL },
        { "cpu.stat", F_V2, CORE, km_cpu_show_stat, NULL },
        { "cpu.pressure", F_V2, CORE, show_cpu_pressure, write_pressure },
        { "io.pressure", F_V2, CORE, show_cpu_pressure, write_pressure },
        { "memory.pressure", F_V2, CORE, km_mem_show_pressure, write_pressure },
        /* v2 cpu */
        { "cpu.max", F_V2 | F_NOT_ROOT, CG_CTRL_CPU, km_cpu_show_max, km_cpu_write_max },
        { "cpu.max.burst", F_V2 | F_NOT_ROOT, CG_CTRL_CPU, km_cpu_show_burst, km_cpu_write_burst },
        { "cpu.max.runtime", F_V2 | F_NOT_ROOT | F_PATCHED, CG_CTRL_CPU, km_cpu_show_runtime,
          km_cpu_write_runtime },
        { "cpu.weight", F_V2 | F_NOT_ROOT, CG_CTRL_CPU, km_cpu_show_weight, km_cpu_write_weight },
        /* v2 memory */
        { "memory.current", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_current, NULL },
        { "memory.peak", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_peak, NULL },
        { "memory.min", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_min, km_mem_write_min },
        { "memory.low", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_low, km_mem_write_low },
        { "memory.high", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_high, km_mem_write_high },
        { "memory.max", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_max, km_mem_write_max },
        { "memory.swap.current", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_swap_current,
          NULL },
        { "memory.swap.max", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_swap_max,
          km_mem_write_swap_max },
        { "memory.stat", F_V2, CG_CTRL_MEMORY, km_mem_show_stat, NULL },
        { "memory.events", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_events, NULL },
        { "memory.events.local", F_V2 | F_NOT_ROOT, CG_CTRL_MEMORY, km_mem_show_events_local,
          NULL },
        { "memory.reclaim", F_V2, CG_CTRL_MEMORY, NULL, km_mem_write_reclaim },
        /* v2 pids */
        { "pids.current", F_V2 | F_NOT_ROOT, CG_CTRL_PIDS, show_pids_current, NULL },
        { "pids.max", F_V2 | F_NOT_ROOT, CG_CTRL_PIDS, show_pids_max, write_pids_max },
        /* v2 dmem */
        { "dmem.capacity", F_V2 | F_ONLY_ROOT, CG_CTRL_DMEM, km_dmem_show_capacity, NULL },
        { "dmem.current", F_V2 | F_NOT_ROOT, CG_CTRL_DMEM, km_dmem_show_current, NULL },
        { "dmem.min", F_V2 | F_NOT_ROOT, CG_CTRL_DMEM, km_dmem_show_min, km_dmem_write_min },
        { "dmem.low", F_V2 | F_NOT_ROOT, CG_CTRL_DMEM, km_dmem_show_low, km_dmem_write_low },
        { "dmem.max", F_V2 | F_NOT_ROOT, CG_CTRL_DMEM, km_dmem_show_max, km_dmem_write_max },
        { "dmem.high", F_V2 | F_NOT_ROOT | F_DMEM_HIGH, CG_CTRL_DMEM, km_dmem_show_high,
          km_dmem_write_high },
        /* v1 cpu,cpuacct */
        { "tasks", F_V1, CORE, show_threads, write_threads },
        { "cpu.shares", F_V1, CG_CTRL_CPU, km_cpu_show_v1_shares, km_cpu_write_v1_shares },
        { "cpu.cfs_period_us", F_V1, CG_CTRL_CPU, km_cpu_show_v1_period,
          km_cpu_write_v1_period },
        { "cpu.cfs_quota_us", F_V1, CG_CTRL_CPU, km_cpu_show_v1_quota, km_cpu_write_v1_quota },
        { "cpu.cfs_burst_us", F_V1, CG_CTRL_CPU, km_cpu_show_v1_burst, km_cpu_write_v1_burst },
        { "cpu.stat", F_V1, CG_CTRL_CPU, km_cpu_show_v1_stat, NULL },
        { "cpuacct.usage", F_V1, CG_CTRL_CPUACCT, km_cpuacct_show_usage, NULL },
        { "cpuacct.stat", F_V1, CG_CTRL_CPUACCT, km_cpuacct_show_stat, NULL },
};

static bool file_visible(KModel *m, KmGroup *g, const KmFile *f) {
        bool root = !g->parent;

        if (!(f->flags & (m->version == CG_V2 ? F_V2 : F_V1)))
                return false;
        if ((f->flags & F_NOT_ROOT) && root)
                return false;
        if ((f->flags & F_ONLY_ROOT) && !root)
                return false;
        if ((f->flags & F_PATCHED) && !m->cfg.patched)
                return false;
        if ((f->flags & F_DMEM_HIGH) && !m->cfg.dmem_high)
                return false;
        return f->ctrl == CORE || km_ctrl_enabled(m, g, (CgController) f->ctrl);
}

static const KmFile *file_lookup(KModel *m, KmGroup *g, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(files); i++)
                if (strcmp(files[i].name, name) == 0 && file_visible(m, g, &files[i]))
                        return &files[i];
        return NULL;
}

bool km_file_exists(KModel *m, KmGroup *g, const char *file) {
        return file_lookup(m, g, file) != NULL;
}

const KmFile *km_file_find(KModel *m, KmGroup *g, const char *name) {
        return file_lookup(m, g, name);
}

static int file_show(KModel *m, KmGroup *g, const KmFile *f, char *buf, size_t size, size_t *ret_len) {
        KmBuf b = { .p = buf, .size = size };
        int r;

        if (!f->show)
                return -EACCES;
        buf[0] = '\0';
        r = f->show(m, g, &b);
        if (r < 0)
                return r;
        if (b.overflow)
                return -E2BIG;
        if (ret_len) /* optional: the content is NUL-terminated anyway */
                *ret_len = b.len;
        return 0;
}

int km_file_read(KModel *m, KmGroup *g, const char *file, char *buf, size_t size, size_t *ret_len) {
        const KmFile *f = file_lookup(m, g, file);

        if (!buf || size == 0)
                return -EINVAL;
        if (!f)
                return -ENOENT;
        return file_show(m, g, f, buf, size, ret_len);
}

int km_file_read_found(KModel *m, KmGroup *g, const KmFile *f, char *buf, size_t size, size_t *ret_len) {
        if (!buf || size == 0)
                return -EINVAL;
        if (!file_visible(m, g, f))
                return -ENODEV;
        return file_show(m, g, f, buf, size, ret_len);
}

int km_file_write(KModel *m, KmGroup *g, const char *file, const char *data, size_t len,
                  bool nonblock) {
        const KmFile *f = file_lookup(m, g, file);
        char copy[KM_WRITE_MAX + 1];

        if (!data)
                return -EINVAL;
        if (!f)
                return -ENOENT;
        if (!f->write)
                return -EACCES;
        /* kernfs hands a cgroup file at most a page per write(2): the rest
         * would be a short write, which the backend contract reports as
         * -EIO. */
        if (len > KM_WRITE_MAX)
                return -EIO;
        memcpy(copy, data, len);
        copy[len] = '\0';
        return f->write(m, g, copy, nonblock);
}

void km_group_reset_ctrl(KModel *m, KmGroup *g, CgController ctrl) {
        switch (ctrl) {
        case CG_CTRL_CPU:
                /* The task group goes away: its threads fall back to the
                 * parent's bandwidth, its pool and statistics are gone. */
                if (g->cfs.throttled || g->cfs.quota_ns != KM_RUNTIME_INF)
                        m->cfs_dirty = true;
                km_cfs_init(&g->cfs);
                g->cpu_weight = 100;
                break;
        case CG_CTRL_MEMORY:
                /* Limits go; charges stay with the pages (and so with the
                 * ancestors' counters) until they are freed. */
                g->mem.min = g->mem.low = 0;
                g->mem.high = g->mem.max = g->mem.swap_max = UINT64_MAX;
                break;
        case CG_CTRL_PIDS:
                g->pids_max = UINT64_MAX;
                break;
        case CG_CTRL_DMEM:
                km_dmem_reset_group(m, g);
                break;
        default:
                break;
        }
}
