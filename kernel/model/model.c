/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/model.c - the kernel model: model object, tasks, the group tree,
 * the v2 thread-mode rules, and the KBackendOps table.
 *
 * The model holds one hierarchy whose tree is rooted at the hierarchy's
 * mount root.  A backend handle (KmView) adds the one thing the front end's
 * addressing needs: the name of vmmgr's subtree.  Group "" is that child of
 * the root, "vm-x/vcpus" lies below it, and NULL is the root itself.  The
 * subtree root is an ordinary group: the front end creates it with
 * mkdir(hier, "") exactly as it would on a real kernel.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "kernel/cgfs.h"
#include "kernel/model/model-internal.h"

/* ---- groups ---------------------------------------------------------- */

static KmGroup *group_free(KModel *m, KmGroup *g) {
        if (!g)
                return NULL;
        /* Files still open on it read -ENODEV from now on (kernfs). */
        for (size_t i = 0; i < m->n_handles; i++)
                if (m->handles[i].group == g)
                        m->handles[i].group = NULL;
        free(g->name);
        free(g->dmem);
        free(g->child_index);
        free(g);
        return NULL;
}

static KmGroup *group_new(KModel *m, const char *name) {
        _cleanup_free_ KmGroup *g = calloc(1, sizeof(KmGroup));

        if (!g)
                return NULL;
        if (name) {
                g->name = strdup(name);
                if (!g->name)
                        return NULL;
        }
        km_cfs_init(&g->cfs);
        km_memcg_init(&g->mem);
        g->cpu_weight = m->version == CG_V2 ? 100 : 1024;
        g->pids_max = UINT64_MAX;
        if (km_dmem_init_group(m, g) < 0) {
                free(g->name);
                return NULL;
        }
        return TAKE_PTR(g);
}

static void group_free_tree(KModel *m, KmGroup *g) {
        while (g->children) {
                KmGroup *c = g->children;

                g->children = c->next_sibling;
                group_free_tree(m, c);
        }
        group_free(m, g);
}

/* Compares a stored name with a (name, len) key that need not be
 * NUL-terminated. */
static int name_cmp(const char *stored, const char *name, size_t len) {
        int r = strncmp(stored, name, len);

        return r != 0 ? r : (stored[len] != '\0');
}

/* Index of the first child not ordered before (name, len). */
static size_t child_lower_bound(const KmGroup *g, const char *name, size_t len) {
        size_t lo = 0, hi = g->n_children;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (name_cmp(g->child_index[mid]->name, name, len) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Children are found by binary search: a subtree root holds a group per
 * VM and is looked up on every file access. */
static KmGroup *group_child(KmGroup *g, const char *name, size_t len) {
        size_t i = child_lower_bound(g, name, len);

        if (i < g->n_children && name_cmp(g->child_index[i]->name, name, len) == 0)
                return g->child_index[i];
        return NULL;
}

static int group_reserve_child(KmGroup *parent) {
        KmGroup **idx;
        size_t cap;

        if (parent->n_children < parent->child_index_cap)
                return 0;
        cap = parent->child_index_cap ? parent->child_index_cap * 2 : 4;
        idx = reallocarray(parent->child_index, cap, sizeof(KmGroup *));
        if (!idx)
                return -ENOMEM;
        parent->child_index = idx;
        parent->child_index_cap = cap;
        return 0;
}

/* Links c in name order into both the index and the sibling list (which
 * the pre-order walks use).  group_reserve_child() must have succeeded. */
static void group_link_child(KmGroup *parent, KmGroup *c) {
        size_t i = child_lower_bound(parent, c->name, strlen(c->name));
        KmGroup **prev_next = i > 0 ? &parent->child_index[i - 1]->next_sibling : &parent->children;

        c->next_sibling = *prev_next;
        *prev_next = c;
        memmove(parent->child_index + i + 1, parent->child_index + i,
                (parent->n_children - i) * sizeof(KmGroup *));
        parent->child_index[i] = c;
        c->parent = parent;
        parent->n_children++;
}

static void group_unlink_child(KmGroup *c) {
        KmGroup *parent = c->parent;
        size_t i = child_lower_bound(parent, c->name, strlen(c->name));
        KmGroup **prev_next = i > 0 ? &parent->child_index[i - 1]->next_sibling : &parent->children;

        *prev_next = c->next_sibling;
        memmove(parent->child_index + i, parent->child_index + i + 1,
                (parent->n_children - i - 1) * sizeof(KmGroup *));
        parent->n_children--;
}

KmGroup *km_group_next_pre(KmGroup *g, KmGroup *top) {
        if (g->children)
                return g->children;
        return km_group_next_skip(g, top);
}

KmGroup *km_group_next_skip(KmGroup *g, KmGroup *top) {
        for (; g != top; g = g->parent)
                if (g->next_sibling)
                        return g->next_sibling;
        return NULL;
}

/* ---- v2 thread mode (kernel/cgroup/cgroup.c, same names) ------------- */

bool km_group_is_threaded(const KmGroup *g) {
        return g->threaded;
}

/* cgrp->dom_cgrp: a threaded group's domain is its nearest non-threaded
 * ancestor; every other group is its own domain. */
KmGroup *km_group_dom(KmGroup *g) {
        while (g->threaded && g->parent)
                g = g->parent;
        return g;
}

static size_t group_nr_threaded_children(const KmGroup *g) {
        size_t n = 0;

        for (const KmGroup *c = g->children; c; c = c->next_sibling)
                n += c->threaded;
        return n;
}

static bool group_has_populated_domain_children(const KmGroup *g) {
        for (const KmGroup *c = g->children; c; c = c->next_sibling)
                if (!c->threaded && c->n_tasks_subtree > 0)
                        return true;
        return false;
}

/* cgroup_is_thread_root() */
bool km_group_is_thread_root(KmGroup *g) {
        if (g->threaded)
                return false;
        if (group_nr_threaded_children(g) > 0)
                return true;
        return g->n_threads > 0 && (g->subtree_control & KM_THREADED_CTRLS);
}

/* cgroup_is_valid_domain(): a domain nested in a threaded subtree is
 * "domain invalid" and can host nothing. */
bool km_group_is_valid_domain(KmGroup *g) {
        if (g->threaded)
                return false;
        for (KmGroup *p = g->parent; p; p = p->parent) {
                if (p->parent && km_group_is_thread_root(p))
                        return false;
                if (p->threaded)
                        return false;
        }
        return true;
}

/* cgroup_can_be_thread_root() */
bool km_group_can_be_thread_root(KmGroup *g) {
        if (!g->parent) /* the root is mixable */
                return true;
        if (g->threaded)
                return false;
        if (group_has_populated_domain_children(g))
                return false;
        return !(g->subtree_control & ~KM_THREADED_CTRLS);
}

/* cgroup_control(): the controllers available to g (cgroup.controllers). */
static uint32_t group_control(const KModel *m, const KmGroup *g) {
        uint32_t mask;

        if (m->version == CG_V1 || !g->parent)
                return m->controllers;
        mask = g->parent->subtree_control;
        if (g->threaded)
                mask &= KM_THREADED_CTRLS;
        return mask;
}

bool km_ctrl_enabled(const KModel *m, const KmGroup *g, CgController ctrl) {
        return group_control(m, g) & CG_CTRL_BIT(ctrl);
}

KmGroup *km_css_group(KModel *m, KmGroup *g, CgController ctrl) {
        if (m->version == CG_V1)
                return g;
        if (!(CG_CTRL_BIT(ctrl) & KM_THREADED_CTRLS))
                g = km_group_dom(g);
        while (g->parent && !km_ctrl_enabled(m, g, ctrl))
                g = g->parent;
        return g;
}

/* ---- the group tree as the backend addresses it ---------------------- */

typedef struct KmView {
        KModel *model;
        char subtree[256];
} KmView;

/* Resolves a front-end group path: NULL is the hierarchy root, "" the
 * subtree root, "/a/b" a path from the hierarchy root (another manager's
 * groups, backend.h), anything else lies below the subtree root. */
static int view_resolve(KmView *v, unsigned hier, const char *group, KmGroup **ret) {
        KModel *m = v->model;
        KmGroup *g;
        const char *p;

        if (hier != 0)
                return -ENOENT;
        if (!group) {
                *ret = m->root;
                return 0;
        }
        if (group[0] == '/') {
                g = m->root;
                group++;
                if (*group == '\0')
                        return -EINVAL;
        } else
                g = group_child(m->root, v->subtree, strlen(v->subtree));
        if (!g)
                return -ENOENT;
        for (p = group; *p;) {
                size_t len = strcspn(p, "/");

                if (len == 0)
                        return -EINVAL;
                g = group_child(g, p, len);
                if (!g)
                        return -ENOENT;
                p += len;
                if (*p == '/' && *++p == '\0')
                        return -EINVAL;
        }
        *ret = g;
        return 0;
}

/* Splits "a/b/c" into the group "a/b" (resolved) and the name "c". */
static int view_resolve_parent(KmView *v, unsigned hier, const char *group, KmGroup **ret_parent,
                               const char **ret_name) {
        KModel *m = v->model;
        const char *slash;
        char parent_path[CG_PATH_MAX];
        int r;

        if (hier != 0)
                return -ENOENT;
        if (group[0] == '\0') {
                *ret_parent = m->root;
                *ret_name = v->subtree;
                return 0;
        }
        slash = strrchr(group, '/');
        if (slash == group) { /* "/name": a child of the hierarchy root */
                *ret_parent = m->root;
                *ret_name = group + 1;
                return 0;
        }
        if (!slash) {
                r = view_resolve(v, hier, "", ret_parent);
                *ret_name = group;
                return r;
        }
        if ((size_t) (slash - group) >= sizeof(parent_path))
                return -ENAMETOOLONG;
        memcpy(parent_path, group, (size_t) (slash - group));
        parent_path[slash - group] = '\0';
        *ret_name = slash + 1;
        return view_resolve(v, hier, parent_path, ret_parent);
}

static bool name_ok(const char *name) {
        return name[0] != '\0' && !strchr(name, '/') && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0 && strlen(name) < 256;
}

/* cgroup_mkdir(): a new group is a domain; under a threaded parent that
 * makes it "domain invalid" until it is made threaded. */
static int view_mkdir(void *be, unsigned hier, const char *group) {
        KmView *v = be;
        KmGroup *parent, *g;
        const char *name;
        int r;

        if (!group)
                return -EEXIST;
        r = view_resolve_parent(v, hier, group, &parent, &name);
        if (r < 0)
                return r;
        if (!name_ok(name))
                return -EINVAL;
        if (group_child(parent, name, strlen(name)))
                return -EEXIST;
        r = km_cfs_reserve(v->model, v->model->n_groups + 1);
        if (r < 0)
                return r;
        r = group_reserve_child(parent);
        if (r < 0)
                return r;
        g = group_new(v->model, name);
        if (!g)
                return -ENOMEM;
        km_cfs_sync(v->model, parent);
        group_link_child(parent, g);
        v->model->n_groups++;
        v->model->cfs_dirty = true;
        return 0;
}

/* cgroup_destroy_locked(): -EBUSY while populated or with children.
 * Charges (memory, dmem) of a removed group move to its parent, the way
 * the kernel reparents what a dead group still has charged. */
static int view_rmdir(void *be, unsigned hier, const char *group) {
        KmView *v = be;
        KModel *m = v->model;
        KmGroup *g;
        int r;

        r = view_resolve(v, hier, group, &g);
        if (r < 0)
                return r;
        if (!g->parent)
                return -EBUSY;
        if (g->n_tasks_subtree > 0 || g->children)
                return -EBUSY;
        km_cfs_sync(m, g);
        /* Like cgroup rstat, the parent keeps the CPU time its dead child
         * used: usage_usec is hierarchical and never goes back. */
        g->parent->usage_base_ns += g->usage_base_ns;
        km_mem_reparent(m, g);
        group_unlink_child(g);
        group_free(m, g);
        m->n_groups--;
        m->cfs_dirty = true;
        return 0;
}

static int view_read(void *be, unsigned hier, const char *group, const char *file, char *buf,
                     size_t size, size_t *ret_len) {
        KmView *v = be;
        KmGroup *g;
        int r;

        r = view_resolve(v, hier, group, &g);
        if (r < 0)
                return r;
        return km_file_read(v->model, g, file, buf, size, ret_len);
}

/* Handles are numbered from here: never a plausible file descriptor, so a
 * pread(2) on one by mistake fails with EBADF instead of reading another
 * file. */
#define KM_HANDLE_BASE (1 << 28)

static int view_open_read(void *be, unsigned hier, const char *group, const char *file) {
        KmView *v = be;
        KModel *m = v->model;
        const struct KmFile *f;
        KmGroup *g;
        int r;

        r = view_resolve(v, hier, group, &g);
        if (r < 0)
                return r;
        f = km_file_find(m, g, file);
        if (!f)
                return -ENOENT;
        /* Handles are not reused: readers may outlive the KHost that
         * opened them, so nothing tells the model when one is done. */
        if (m->n_handles == m->handles_cap) {
                size_t cap = m->handles_cap ? m->handles_cap * 2 : 64;
                KmHandle *n;

                if (cap > KM_HANDLE_BASE)
                        return -EMFILE;
                n = reallocarray(m->handles, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                m->handles = n;
                m->handles_cap = cap;
        }
        m->handles[m->n_handles] = (KmHandle) { .group = g, .file = f };
        return KM_HANDLE_BASE + (int) m->n_handles++;
}

static int view_read_open(void *be, int handle, char *buf, size_t size, size_t *ret_len) {
        KmView *v = be;
        KModel *m = v->model;
        KmHandle *h;

        if (handle < KM_HANDLE_BASE || (size_t) (handle - KM_HANDLE_BASE) >= m->n_handles)
                return -EBADF;
        h = &m->handles[handle - KM_HANDLE_BASE];
        if (!h->group)
                return -ENODEV;
        return km_file_read_found(m, h->group, h->file, buf, size, ret_len);
}

static int view_write(void *be, unsigned hier, const char *group, const char *file,
                      const char *data, size_t len, unsigned flags) {
        KmView *v = be;
        KmGroup *g;
        int r;

        r = view_resolve(v, hier, group, &g);
        if (r < 0)
                return r;
        /* These may drop the cpu css of g's children (their pools and
         * limits): the limited subtrees there must be at the clock. */
        if (file && (strcmp(file, "cgroup.subtree_control") == 0 || strcmp(file, "cgroup.type") == 0))
                km_cfs_sync_tree(v->model, g);
        return km_file_write(v->model, g, file, data, len, (flags & CGFS_NONBLOCK) != 0);
}

static int view_exists(void *be, unsigned hier, const char *group, const char *file) {
        KmView *v = be;
        KmGroup *g;

        if (view_resolve(v, hier, group, &g) < 0)
                return 0;
        return !file || km_file_exists(v->model, g, file);
}

static int view_list_children(void *be, unsigned hier, const char *group, char ***ret) {
        KmView *v = be;
        KmGroup *g;
        char **l;
        size_t i = 0;
        int r;

        r = view_resolve(v, hier, group, &g);
        if (r < 0)
                return r;
        l = calloc(g->n_children + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (KmGroup *c = g->children; c; c = c->next_sibling) {
                l[i] = strdup(c->name);
                if (!l[i]) {
                        strv_free(l);
                        return -ENOMEM;
                }
                i++;
        }
        *ret = l;
        return 0;
}

/* ---- ids, threads, processes ----------------------------------------- */

static int ids_grow(KModel *m) {
        size_t cap = m->ids_cap ? m->ids_cap * 2 : 64;
        KmThread **t;
        KmProcess **p;

        t = reallocarray(m->threads, cap, sizeof(KmThread *));
        if (!t)
                return -ENOMEM;
        m->threads = t;
        p = reallocarray(m->procs, cap, sizeof(KmProcess *));
        if (!p)
                return -ENOMEM;
        m->procs = p;
        memset(m->threads + m->ids_cap, 0, (cap - m->ids_cap) * sizeof(KmThread *));
        memset(m->procs + m->ids_cap, 0, (cap - m->ids_cap) * sizeof(KmProcess *));
        m->ids_cap = cap;
        return 0;
}

static int id_alloc(KModel *m, pid_t *ret) {
        int r;

        if (m->n_ids >= (size_t) INT32_MAX - KM_FIRST_PID)
                return -EAGAIN;
        if (m->n_ids == m->ids_cap) {
                r = ids_grow(m);
                if (r < 0)
                        return r;
        }
        *ret = (pid_t) (KM_FIRST_PID + m->n_ids++);
        return 0;
}

static bool id_valid(const KModel *m, pid_t id) {
        return id >= KM_FIRST_PID && (size_t) (id - KM_FIRST_PID) < m->n_ids;
}

KmThread *km_thread_lookup(KModel *m, pid_t tid) {
        return id_valid(m, tid) ? m->threads[tid - KM_FIRST_PID] : NULL;
}

KmProcess *km_process_lookup(KModel *m, pid_t pid) {
        return id_valid(m, pid) ? m->procs[pid - KM_FIRST_PID] : NULL;
}

static void group_add_thread(KmGroup *g, KmThread *t) {
        t->group = g;
        t->group_prev = NULL;
        t->group_next = g->threads;
        if (g->threads)
                g->threads->group_prev = t;
        g->threads = t;
        g->n_threads++;
        for (KmGroup *p = g; p; p = p->parent)
                p->n_tasks_subtree++;
}

/* The CPU time the thread received while here stays with the group (the
 * kernel keeps it in the group's cputime), so flush it first. */
static void group_remove_thread(KModel *m, KmThread *t) {
        KmGroup *g = t->group;

        km_thread_sync(m, t);
        g->usage_base_ns += t->usage_ns - t->join_usage_ns;
        if (t->group_prev)
                t->group_prev->group_next = t->group_next;
        else
                g->threads = t->group_next;
        if (t->group_next)
                t->group_next->group_prev = t->group_prev;
        g->n_threads--;
        for (KmGroup *p = g; p; p = p->parent)
                p->n_tasks_subtree--;
        t->group = NULL;
}

int km_move_thread(KModel *m, KmThread *t, KmGroup *dst) {
        if (t->group == dst)
                return 0;
        km_cfs_sync(m, dst);
        group_remove_thread(m, t);
        group_add_thread(dst, t);
        t->join_usage_ns = t->usage_ns;
        m->cfs_dirty = true;
        return 0;
}

static KmThread *thread_create(KModel *m, KmProcess *p, pid_t tid, KmGroup *g) {
        KmThread *t = calloc(1, sizeof(KmThread));
        KmThread **pp;

        if (!t)
                return NULL;
        km_cfs_sync(m, g);
        t->tid = tid;
        t->proc = p;
        t->sync_ns = m->now_ns;
        t->running = true;
        group_add_thread(g, t);
        for (pp = &p->threads; *pp && (*pp)->tid < tid; pp = &(*pp)->proc_next)
                ;
        t->proc_next = *pp;
        *pp = t;
        p->n_threads++;
        m->threads[tid - KM_FIRST_PID] = t;
        m->cfs_dirty = true;
        return t;
}

pid_t km_process_new(KModel *m) {
        KmProcess *p;
        pid_t pid;
        int r;

        if (!m)
                return -EINVAL;
        r = id_alloc(m, &pid);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(KmProcess));
        if (!p)
                return -ENOMEM;
        p->pid = pid;
        m->procs[pid - KM_FIRST_PID] = p;
        if (!thread_create(m, p, pid, m->root)) {
                m->procs[pid - KM_FIRST_PID] = NULL;
                free(p);
                return -ENOMEM;
        }
        return pid;
}

pid_t km_thread_new(KModel *m, pid_t pid) {
        KmProcess *p;
        pid_t tid;
        int r;

        if (!m)
                return -EINVAL;
        p = km_process_lookup(m, pid);
        if (!p || !p->threads)
                return -ESRCH;
        r = id_alloc(m, &tid);
        if (r < 0)
                return r;
        /* The first live thread: the leader, or the oldest survivor. */
        if (!thread_create(m, p, tid, p->threads->group))
                return -ENOMEM;
        return tid;
}

static void thread_destroy(KModel *m, KmThread *t) {
        KmProcess *p = t->proc;
        KmThread **pp;

        group_remove_thread(m, t);
        for (pp = &p->threads; *pp != t; pp = &(*pp)->proc_next)
                ;
        *pp = t->proc_next;
        p->n_threads--;
        m->threads[t->tid - KM_FIRST_PID] = NULL;
        m->cfs_dirty = true;
        free(t);
        if (p->n_threads == 0) {
                m->procs[p->pid - KM_FIRST_PID] = NULL;
                free(p);
        }
}

int km_thread_exit(KModel *m, pid_t tid) {
        KmThread *t;

        if (!m)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        thread_destroy(m, t);
        return 0;
}

int km_process_exit(KModel *m, pid_t pid) {
        KmProcess *p;

        if (!m)
                return -EINVAL;
        p = km_process_lookup(m, pid);
        if (!p)
                return -ESRCH;
        /* Destroying the last thread frees p: stop on that one. */
        while (p->n_threads > 1)
                thread_destroy(m, p->threads);
        thread_destroy(m, p->threads);
        return 0;
}

int km_thread_set_demand(KModel *m, pid_t tid, uint32_t demand_ppm) {
        KmThread *t;

        if (!m)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        /* One thread runs on one CPU at a time. */
        if (demand_ppm > KM_PPM)
                return -EINVAL;
        km_thread_sync(m, t);
        t->demand_ppm = demand_ppm;
        return 0;
}

int km_thread_usage_nsec(KModel *m, pid_t tid, uint64_t *ret) {
        KmThread *t;

        if (!m || !ret)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        km_thread_sync(m, t);
        *ret = t->usage_ns;
        return 0;
}

int km_thread_reclaim_stall_usec(KModel *m, pid_t tid, uint64_t *ret) {
        KmThread *t;

        if (!m || !ret)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        *ret = t->reclaim_stall_usec;
        return 0;
}

uint64_t km_now_usec(const KModel *m) {
        return m->now_ns / NSEC_PER_USEC;
}

/* ---- process-level files --------------------------------------------- */

static int view_read_schedstat(void *be, pid_t pid, pid_t tid, char *buf, size_t size,
                               size_t *ret_len) {
        KmView *v = be;
        KmThread *t = km_thread_lookup(v->model, tid);
        KmBuf b = { .p = buf, .size = size };

        if (!t || t->proc->pid != pid)
                return -ESRCH;
        km_thread_sync(v->model, t);
        /* run time, run-queue wait (the model has no contention), slices */
        km_buf_printf(&b, "%" PRIu64 " 0 %" PRIu64 "\n", t->usage_ns, t->nr_slices);
        if (b.overflow)
                return -E2BIG;
        if (ret_len)
                *ret_len = b.len;
        return 0;
}

static int view_list_tasks(void *be, pid_t pid, pid_t **ret, size_t *ret_n) {
        KmView *v = be;
        KmProcess *p = km_process_lookup(v->model, pid);
        pid_t *l;
        size_t i = 0;

        if (!p)
                return -ESRCH;
        l = calloc(p->n_threads, sizeof(pid_t));
        if (!l)
                return -ENOMEM;
        for (KmThread *t = p->threads; t; t = t->proc_next)
                l[i++] = t->tid;
        *ret = l;
        *ret_n = i;
        return 0;
}

/* /proc/<tid>/cgroup's path: the group's names from below the root. */
static int view_thread_group(void *be, unsigned hier, pid_t tid, char *buf, size_t size) {
        KmView *v = be;
        KmThread *t = km_thread_lookup(v->model, tid);
        const KmGroup *chain[64];
        size_t n = 0, len = 0;

        if (hier != 0)
                return -ENOENT;
        if (!t)
                return -ESRCH;
        for (const KmGroup *g = t->group; g && g->parent; g = g->parent) {
                if (n == ARRAY_SIZE(chain))
                        return -ENAMETOOLONG;
                chain[n++] = g;
        }
        if (size == 0)
                return -ENAMETOOLONG;
        buf[0] = '\0';
        while (n-- > 0) {
                int k = snprintf(buf + len, size - len, "%s%s", len ? "/" : "", chain[n]->name);
                if (k < 0 || (size_t) k >= size - len)
                        return -ENAMETOOLONG;
                len += (size_t) k;
        }
        return 0;
}

static int view_read_host_file(void *be, KHostFile which, char *buf, size_t size,
                               size_t *ret_len) {
        KmView *v = be;
        KModel *m = v->model;
        KmBuf b = { .p = buf, .size = size };

        switch (which) {
        case KHOST_FILE_PSI_CPU:
                /* CPU contention is not modelled: no task ever waits. */
                km_psi_show(&b, 0, 0);
                break;
        case KHOST_FILE_PSI_MEMORY:
                km_psi_show(&b, m->root->mem_stall_usec, m->root->mem_stall_usec);
                break;
        case KHOST_FILE_TASK_DELAYACCT:
                km_buf_printf(&b, "1\n");
                break;
        case KHOST_FILE_OSRELEASE:
                km_buf_printf(&b, "6.1.0-vmmgr-model%s\n", m->cfg.patched ? "+runtime" : "");
                break;
        case KHOST_FILE_MEMINFO: {
                /* Every charge is in use: anon cannot be dropped and the
                 * model's reclaimable memory (guest RAM with swap) is not
                 * what MemAvailable counts as free for the asking. */
                uint64_t used = MIN(m->root->mem.usage, m->cfg.host_memory);
                uint64_t avail_kb = (m->cfg.host_memory - used) / 1024;

                km_buf_printf(&b,
                              "MemTotal:       %" PRIu64 " kB\nMemFree:        %" PRIu64
                              " kB\nMemAvailable:   %" PRIu64 " kB\n",
                              m->cfg.host_memory / 1024, avail_kb, avail_kb);
                break;
        }
        default:
                return -ENOENT;
        }
        if (b.overflow)
                return -E2BIG;
        if (ret_len)
                *ret_len = b.len;
        return 0;
}

static int view_taskstats_available(void *be) {
        return 1;
}

/* The view is the backend handle the KHost owns; the model is not: it
 * must outlive every KHost opened on it and is freed with km_free(). */
static void view_free(void *be) {
        free(be);
}

static const KBackendOps model_ops = {
        .name = "model",
        .mkdir = view_mkdir,
        .rmdir = view_rmdir,
        .read = view_read,
        .write = view_write,
        .exists = view_exists,
        .list_children = view_list_children,
        .read_schedstat = view_read_schedstat,
        .list_tasks = view_list_tasks,
        .read_host_file = view_read_host_file,
        .taskstats_available = view_taskstats_available,
        .free = view_free,
        .open_read = view_open_read,
        .read_open = view_read_open,
        .thread_group = view_thread_group,
};

static int view_new(KModel *m, const char *subtree, KmView **ret) {
        KmView *v;

        if (!subtree)
                subtree = KH_DEFAULT_SUBTREE;
        if (!name_ok(subtree) || strlen(subtree) >= sizeof(v->subtree))
                return -EINVAL;
        v = calloc(1, sizeof(KmView));
        if (!v)
                return -ENOMEM;
        v->model = m;
        strcpy(v->subtree, subtree);
        *ret = v;
        return 0;
}

static void layout_fill(const KModel *m, KBackendLayout *l) {
        CgHierarchyInfo *h = &l->hier[0];
        const char *mount = m->version == CG_V2 ? "/model/cgroup2" : "/model/cpu,cpuacct";

        memset(l, 0, sizeof(*l));
        l->mode = m->cfg.mode;
        l->n_hier = 1;
        h->version = m->version;
        h->controllers = m->controllers;
        strcpy(h->mount, mount);
        if (m->version == CG_V2)
                strcpy(l->unified_mount, mount);
}

int km_backend(KModel *m, const KBackendOps **ret_ops, void **ret_be, KBackendLayout *ret_layout) {
        KmView *v;
        int r;

        if (!m || !ret_ops || !ret_be || !ret_layout)
                return -EINVAL;
        r = view_new(m, NULL, &v);
        if (r < 0)
                return r;
        layout_fill(m, ret_layout);
        *ret_ops = &model_ops;
        *ret_be = v;
        return 0;
}

int kh_open_model(KModel *m, const KHostConfig *cfg, KHost **ret) {
        KBackendLayout layout;
        KmView *v;
        int r;

        if (!m || !ret)
                return -EINVAL;
        /* The view carries the subtree name the front end will address. */
        r = view_new(m, cfg ? cfg->subtree : NULL, &v);
        if (r < 0)
                return r;
        layout_fill(m, &layout);
        return kh_new_from_backend(&model_ops, v, &layout, cfg, ret);
}

/* ---- model object ---------------------------------------------------- */

static int config_copy_regions(KModel *m, const KModelConfig *cfg) {
        KModelDmemRegion *regions;

        if (cfg->n_dmem_regions == 0)
                return 0;
        if (!cfg->dmem_regions || cfg->mode != CG_MODE_UNIFIED)
                return -EINVAL;
        regions = calloc(cfg->n_dmem_regions, sizeof(KModelDmemRegion));
        if (!regions)
                return -ENOMEM;
        m->cfg.dmem_regions = regions;
        for (size_t i = 0; i < cfg->n_dmem_regions; i++) {
                const char *name = cfg->dmem_regions[i].name;

                /* A name is one token of "<region> <value>" lines. */
                if (!name || !*name || strpbrk(name, " \t\n"))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(regions[j].name, name) == 0)
                                return -EINVAL;
                regions[i].name = strdup(name);
                if (!regions[i].name)
                        return -ENOMEM;
                regions[i].capacity = cfg->dmem_regions[i].capacity;
        }
        return 0;
}

int km_new(const KModelConfig *cfg, KModel **ret) {
        _cleanup_kmodel_ KModel *m = NULL;
        int r;

        if (!cfg || !ret)
                return -EINVAL;
        if (cfg->mode != CG_MODE_UNIFIED && cfg->mode != CG_MODE_LEGACY)
                return -EOPNOTSUPP;
        m = calloc(1, sizeof(KModel));
        if (!m)
                return -ENOMEM;
        m->cfg = *cfg;
        m->cfg.dmem_regions = NULL;
        m->cfg.n_dmem_regions = 0;
        if (m->cfg.host_memory == 0)
                m->cfg.host_memory = UINT64_C(64) << 30;
        r = config_copy_regions(m, cfg);
        m->cfg.n_dmem_regions = m->cfg.dmem_regions ? cfg->n_dmem_regions : 0;
        if (r < 0)
                return r;
        if (cfg->mode == CG_MODE_UNIFIED) {
                m->version = CG_V2;
                m->controllers = CG_CTRL_BIT(CG_CTRL_CPUSET) | CG_CTRL_BIT(CG_CTRL_CPU) |
                                 CG_CTRL_BIT(CG_CTRL_IO) | CG_CTRL_BIT(CG_CTRL_MEMORY) |
                                 CG_CTRL_BIT(CG_CTRL_PIDS) | CG_CTRL_BIT(CG_CTRL_HUGETLB);
                if (m->cfg.n_dmem_regions > 0)
                        m->controllers |= CG_CTRL_BIT(CG_CTRL_DMEM);
        } else {
                m->version = CG_V1;
                m->controllers = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUACCT);
        }
        r = km_cfs_reserve(m, 1);
        if (r < 0)
                return r;
        m->root = group_new(m, NULL);
        if (!m->root)
                return -ENOMEM;
        /* Like a host booted with systemd, the root hands every controller
         * down; vmmgr never writes above its subtree.  Tests that need a
         * host that does not delegate write "-memory" etc. here. */
        if (m->version == CG_V2)
                m->root->subtree_control = m->controllers;
        m->n_groups = 1;
        m->cfs_dirty = true;
        *ret = TAKE_PTR(m);
        return 0;
}

KModel *km_free(KModel *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_ids; i++) {
                free(m->threads[i]);
                free(m->procs[i]);
        }
        free(m->threads);
        free(m->procs);
        /* Handles first: the tree's groups need not be looked up in them. */
        free(m->handles);
        m->handles = NULL;
        m->n_handles = 0;
        if (m->root)
                group_free_tree(m, m->root);
        km_cfs_free(m);
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++)
                free((char *) m->cfg.dmem_regions[i].name);
        free((KModelDmemRegion *) m->cfg.dmem_regions);
        free(m);
        return NULL;
}
