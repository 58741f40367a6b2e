/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The KHost front end: hierarchies, vmmgr's subtree, VM groups and thread
 * placement.  Typed files live in cpu.c, memory.c and dmem.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/cgfs.h"
#include "kernel/cgparse.h"
#include "kernel/internal.h"
#include "kernel/khost.h"

#define VM_GROUP_PREFIX "vm-"

/* Thread roles that have their own group (CG_ROLE_VM is the group itself). */
static const CgRole thread_roles[] = { CG_ROLE_VCPUS, CG_ROLE_EMULATOR, CG_ROLE_IO };

/* What vmmgr manages unless told otherwise.  Memory, io and dmem only on
 * v2: a v1 memory hierarchy usually belongs to someone else (on the CI
 * host, to the machine itself), and vmmgr's memory policies are built on
 * v2 files.  cpuset v1 children start with no CPUs, so it is opt-in too. */
static uint32_t default_managed(CgVersion v) {
        uint32_t m = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUACCT);
        if (v == CG_V2)
                m |= CG_CTRL_BIT(CG_CTRL_CPUSET) | CG_CTRL_BIT(CG_CTRL_MEMORY) |
                     CG_CTRL_BIT(CG_CTRL_IO) | CG_CTRL_BIT(CG_CTRL_PIDS) | CG_CTRL_BIT(CG_CTRL_DMEM);
        return m;
}

int kh_new_from_backend(const KBackendOps *ops, void *be, const KBackendLayout *layout,
                        const KHostConfig *cfg, KHost **ret) {
        const char *subtree = cfg && cfg->subtree ? cfg->subtree : KH_DEFAULT_SUBTREE;
        KHost *h;

        if (!is_safe_name(subtree, 200) || layout->n_hier > ARRAY_SIZE(layout->hier)) {
                ops->free(be);
                return -EINVAL;
        }
        h = calloc(1, sizeof(*h));
        if (!h) {
                ops->free(be);
                return -ENOMEM;
        }
        h->ops = ops;
        h->be = be;
        h->layout = *layout;
        snprintf(h->subtree, sizeof(h->subtree), "%s", subtree);
        for (int c = 0; c < _CG_CTRL_MAX; c++)
                h->ctrl_hier[c] = -1;
        for (size_t i = 0; i < h->layout.n_hier; i++) {
                CgHierarchyInfo *hi = &h->layout.hier[i];
                uint32_t want = cfg && cfg->controllers ? cfg->controllers : default_managed(hi->version);

                hi->managed = hi->controllers & want;
                for (int c = 0; c < _CG_CTRL_MAX; c++)
                        if (hi->controllers & CG_CTRL_BIT(c))
                                h->ctrl_hier[c] = (int) i;
        }
        *ret = h;
        return 0;
}

int kh_open(const KHostConfig *cfg, KHost **ret) {
        const char *subtree = cfg && cfg->subtree ? cfg->subtree : KH_DEFAULT_SUBTREE;
        KBackendLayout layout;
        void *be;
        int r;

        r = discover_layout(&layout);
        if (r < 0)
                return r;
        r = real_backend_new(&layout, subtree, &be);
        if (r < 0)
                return r;
        return kh_new_from_backend(&real_backend_ops, be, &layout, cfg, ret);
}

bool kh_is_real(const KHost *h) {
        return h && h->ops == &real_backend_ops;
}

KHost *kh_free(KHost *h) {
        if (!h)
                return NULL;
        free(h->foreign);
        h->ops->free(h->be);
        free(h);
        return NULL;
}

CgMode kh_mode(const KHost *h) {
        return h->layout.mode;
}

size_t kh_hierarchies(const KHost *h, const CgHierarchyInfo **ret) {
        *ret = h->layout.hier;
        return h->layout.n_hier;
}

const char *kh_unified_mount(const KHost *h) {
        return h->layout.unified_mount[0] ? h->layout.unified_mount : NULL;
}

bool kh_manages(const KHost *h, CgController c) {
        unsigned i;
        return kh_managed_hier(h, c, &i) == 0;
}

CgVersion kh_controller_version(const KHost *h, CgController c) {
        if ((unsigned) c >= _CG_CTRL_MAX || h->ctrl_hier[c] < 0)
                return 0;
        return h->layout.hier[h->ctrl_hier[c]].version;
}

const char *kh_subtree_name(const KHost *h) {
        return h->subtree;
}

int kh_managed_hier(const KHost *h, CgController c, unsigned *ret) {
        int i;

        if ((unsigned) c >= _CG_CTRL_MAX)
                return -EINVAL;
        i = h->ctrl_hier[c];
        if (i < 0 || !(h->layout.hier[i].managed & CG_CTRL_BIT(c)))
                return -EOPNOTSUPP;
        *ret = (unsigned) i;
        return 0;
}

static int foreign_cmp(const void *key, const void *elem) {
        return strcmp(((const VmId *) key)->str, ((const KhForeignVm *) elem)->id.str);
}

const KhForeignVm *kh_foreign_find(const KHost *h, const VmId *vm) {
        if (h->n_foreign == 0)
                return NULL;
        return bsearch(vm, h->foreign, h->n_foreign, sizeof(KhForeignVm), foreign_cmp);
}

int kh_group_path(const KHost *h, const VmId *vm, CgRole role, char *buf, size_t size) {
        const KhForeignVm *f;
        int n;

        if ((unsigned) role >= _CG_ROLE_MAX)
                return -EINVAL;
        f = kh_foreign_find(h, vm);
        if (f) {
                /* The credit bank's bandwidth and usage live at the domain
                 * level: libvirt has a group per vCPU, not one for all. */
                if (role == CG_ROLE_IO)
                        return -EOPNOTSUPP;
                n = snprintf(buf, size, "/%s%s", f->domain, role == CG_ROLE_EMULATOR ? "/emulator" : "");
                return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
        }
        if (role == CG_ROLE_VM)
                n = snprintf(buf, size, VM_GROUP_PREFIX "%s", vm->str);
        else
                n = snprintf(buf, size, VM_GROUP_PREFIX "%s/%s", vm->str, cg_role_to_string(role));
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        /* vm->str came from vm_id_parse(); re-checking costs nothing and keeps
         * this function safe on its own. */
        return cgfs_path_is_safe(buf) ? 0 : -EINVAL;
}

int kh_read(KHost *h, unsigned hier, const char *group, const char *file, char *buf, size_t size) {
        return h->ops->read(h->be, hier, group, file, buf, size, NULL);
}

int kh_write(KHost *h, unsigned hier, const char *group, const char *file, const char *data,
             bool nonblock) {
        return kh_write_flags(h, hier, group, file, data, nonblock ? CGFS_NONBLOCK : 0);
}

int kh_write_flags(KHost *h, unsigned hier, const char *group, const char *file, const char *data,
                   unsigned flags) {
        return h->ops->write(h->be, hier, group, file, data, strlen(data), flags);
}

int kh_read_alloc(KHost *h, unsigned hier, const char *group, const char *file, char **ret) {
        size_t size = 4096;

        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                int r;

                if (!buf)
                        return -ENOMEM;
                r = h->ops->read(h->be, hier, group, file, buf, size, NULL);
                if (r == -E2BIG && size < (16u << 20)) {
                        size *= 4;
                        continue;
                }
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(buf);
                return 0;
        }
}

static bool hier_is_managed(const KHost *h, size_t i) {
        return h->layout.hier[i].managed != 0;
}

/* "+cpu +memory" for the managed controllers in `mask`. */
static int format_subtree_control(uint32_t mask, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = '\0';
        for (int c = 0; c < _CG_CTRL_MAX; c++) {
                int n;

                if (!(mask & CG_CTRL_BIT(c)))
                        continue;
                n = snprintf(buf + len, size - len, "%s+%s", len ? " " : "", cg_controller_to_string(c));
                if (n < 0 || (size_t) n >= size - len)
                        return -ENOBUFS;
                len += (size_t) n;
        }
        return 0;
}

/* Enables `want` in a v2 group's subtree_control unless already enabled. */
static int enable_controllers(KHost *h, unsigned hier, const char *group, uint32_t want) {
        char buf[512];
        uint32_t have;
        int r;

        r = kh_read(h, hier, group, "cgroup.subtree_control", buf, sizeof(buf));
        if (r < 0)
                return r;
        r = cg_parse_controller_list(buf, &have);
        if (r < 0)
                return r;
        if ((have & want) == want)
                return 0;
        r = format_subtree_control(want & ~have, buf, sizeof(buf));
        if (r < 0)
                return r;
        return kh_write(h, hier, group, "cgroup.subtree_control", buf, false);
}

int kh_subtree_setup(KHost *h) {
        for (size_t i = 0; i < h->layout.n_hier; i++) {
                const CgHierarchyInfo *hi = &h->layout.hier[i];
                int r;

                if (!hier_is_managed(h, i))
                        continue;
                if (hi->version == CG_V2) {
                        char buf[512];
                        uint32_t delegated;

                        /* vmmgr never writes above its subtree: the parent must
                         * already hand the controllers down. */
                        r = kh_read(h, (unsigned) i, NULL, "cgroup.subtree_control", buf, sizeof(buf));
                        if (r < 0)
                                return r;
                        r = cg_parse_controller_list(buf, &delegated);
                        if (r < 0)
                                return r;
                        if ((delegated & hi->managed) != hi->managed)
                                return -EOPNOTSUPP;
                }
                r = h->ops->mkdir(h->be, (unsigned) i, "");
                if (r < 0 && r != -EEXIST)
                        return r;
                if (hi->version == CG_V2) {
                        r = enable_controllers(h, (unsigned) i, "", hi->managed);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int kh_subtree_remove(KHost *h) {
        int ret = 0;

        for (size_t i = 0; i < h->layout.n_hier; i++) {
                int r;

                if (!hier_is_managed(h, i))
                        continue;
                r = h->ops->rmdir(h->be, (unsigned) i, "");
                if (r < 0 && r != -ENOENT && ret == 0)
                        ret = r;
        }
        return ret;
}

/* Makes a v2 role group threaded (repairing a group left "domain" by a
 * crash between mkdir and the type write).  Returns 1 if it already was. */
static int ensure_threaded(KHost *h, unsigned hier, const char *group) {
        char buf[64];
        CgType t;
        int r;

        r = kh_read(h, hier, group, "cgroup.type", buf, sizeof(buf));
        if (r < 0)
                return r;
        r = cg_parse_cgroup_type(buf, &t);
        if (r < 0)
                return r;
        if (t == CG_TYPE_THREADED)
                return 1;
        r = kh_write(h, hier, group, "cgroup.type", "threaded", false);
        return r < 0 ? r : 0;
}

/* Creates a group unless it exists; returns 1 if it existed. */
static int mkdir_existing_ok(KHost *h, unsigned hier, const char *group) {
        int r = h->ops->mkdir(h->be, hier, group);
        if (r == -EEXIST)
                return 1;
        return r < 0 ? r : 0;
}

int kh_vm_create(KHost *h, const VmId *vm) {
        bool all_existed = true;

        if (kh_foreign_find(h, vm))
                return -EPERM; /* another manager's groups */

        for (size_t i = 0; i < h->layout.n_hier; i++) {
                const CgHierarchyInfo *hi = &h->layout.hier[i];
                char group[CG_PATH_MAX];
                int r;

                if (!hier_is_managed(h, i))
                        continue;
                r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
                if (r < 0)
                        return r;
                r = mkdir_existing_ok(h, (unsigned) i, group);
                if (r < 0)
                        return r;
                all_existed = all_existed && r == 1;
                /* On v2 the role groups are a threaded subtree for the
                 * threaded controllers (cpu); the VM group keeps memory, io,
                 * pids and dmem as their threaded domain. */
                if (hi->version == CG_V2 && (hi->managed & CG_CTRL_BIT(CG_CTRL_CPU))) {
                        r = enable_controllers(h, (unsigned) i, group, CG_CTRL_BIT(CG_CTRL_CPU));
                        if (r < 0)
                                return r;
                }
                for (size_t k = 0; k < ARRAY_SIZE(thread_roles); k++) {
                        r = kh_group_path(h, vm, thread_roles[k], group, sizeof(group));
                        if (r < 0)
                                return r;
                        r = mkdir_existing_ok(h, (unsigned) i, group);
                        if (r < 0)
                                return r;
                        all_existed = all_existed && r == 1;
                        if (hi->version == CG_V2) {
                                r = ensure_threaded(h, (unsigned) i, group);
                                if (r < 0)
                                        return r;
                                all_existed = all_existed && r == 1;
                        }
                }
        }
        return all_existed ? 1 : 0;
}

int kh_vm_remove(KHost *h, const VmId *vm) {
        if (kh_foreign_find(h, vm))
                return -EPERM;
        for (size_t i = 0; i < h->layout.n_hier; i++) {
                char group[CG_PATH_MAX];
                int r;

                if (!hier_is_managed(h, i))
                        continue;
                for (size_t k = 0; k < ARRAY_SIZE(thread_roles); k++) {
                        r = kh_group_path(h, vm, thread_roles[k], group, sizeof(group));
                        if (r < 0)
                                return r;
                        r = h->ops->rmdir(h->be, (unsigned) i, group);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
                r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
                if (r < 0)
                        return r;
                r = h->ops->rmdir(h->be, (unsigned) i, group);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 0;
}

/* The hierarchy used to answer "which threads are where": cpu's if
 * managed, else the first managed one. */
static int placement_hier(const KHost *h, unsigned *ret) {
        if (kh_managed_hier(h, CG_CTRL_CPU, ret) == 0)
                return 0;
        for (size_t i = 0; i < h->layout.n_hier; i++)
                if (hier_is_managed(h, i)) {
                        *ret = (unsigned) i;
                        return 0;
                }
        return -EOPNOTSUPP;
}

int kh_vm_exists(KHost *h, const VmId *vm) {
        char group[CG_PATH_MAX];
        unsigned hier;
        int r;

        r = placement_hier(h, &hier);
        if (r < 0)
                return r;
        r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
        if (r < 0)
                return r;
        return h->ops->exists(h->be, hier, group, NULL);
}

int kh_vm_list(KHost *h, VmId **ret, size_t *ret_n) {
        _cleanup_free_ VmId *ids = NULL;
        char **names = NULL;
        size_t n = 0, cap = 0;
        unsigned hier;
        int r;

        r = placement_hier(h, &hier);
        if (r < 0)
                return r;
        r = h->ops->list_children(h->be, hier, "", &names);
        if (r == -ENOENT) { /* no subtree yet: no VMs */
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        for (char **p = names; *p; p++) {
                VmId id;

                if (strncmp(*p, VM_GROUP_PREFIX, strlen(VM_GROUP_PREFIX)) != 0 ||
                    vm_id_parse(*p + strlen(VM_GROUP_PREFIX), &id) < 0 ||
                    strcmp(id.str, *p + strlen(VM_GROUP_PREFIX)) != 0)
                        continue; /* not ours, or not canonical */
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        VmId *ni = reallocarray(ids, ncap, sizeof(VmId));
                        if (!ni) {
                                strv_free(names);
                                return -ENOMEM;
                        }
                        ids = ni;
                        cap = ncap;
                }
                ids[n++] = id;
        }
        strv_free(names);
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

static const char *thread_file(CgVersion v) {
        return v == CG_V2 ? "cgroup.threads" : "tasks";
}

static int group_threads(KHost *h, unsigned hier, const char *group, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = kh_read_alloc(h, hier, group, thread_file(h->layout.hier[hier].version), &text);
        if (r < 0)
                return r;
        return cg_parse_pid_list(text, ret, ret_n);
}

/* Whether a child of a libvirt domain group holds threads of `role`:
 * vcpu<N>, iothread<N>, emulator. */
static bool foreign_child_has_role(const char *name, CgRole role) {
        const char *prefix = role == CG_ROLE_VCPUS ? "vcpu" : role == CG_ROLE_IO ? "iothread" : NULL;
        size_t len;

        if (role == CG_ROLE_EMULATOR)
                return strcmp(name, "emulator") == 0;
        if (!prefix || strncmp(name, prefix, strlen(prefix)) != 0)
                return false;
        name += strlen(prefix);
        len = strspn(name, "0123456789");
        return len > 0 && name[len] == '\0';
}

/* A foreign VM's threads of one role: the union of the children that hold
 * it; CG_ROLE_VM is the domain group's own (usually none). */
static int foreign_threads(KHost *h, unsigned hier, const KhForeignVm *f, CgRole role, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ pid_t *all = NULL;
        char group[CG_PATH_MAX], child[CG_PATH_MAX];
        char **names = NULL;
        size_t n = 0;
        int r;

        snprintf(group, sizeof(group), "/%s", f->domain);
        if (role == CG_ROLE_VM)
                return group_threads(h, hier, group, ret, ret_n);
        r = h->ops->list_children(h->be, hier, group, &names);
        if (r < 0)
                return r;
        for (char **p = names; *p; p++) {
                _cleanup_free_ pid_t *l = NULL;
                size_t m = 0;
                pid_t *na;

                if (!foreign_child_has_role(*p, role))
                        continue;
                if ((size_t) snprintf(child, sizeof(child), "%s/%s", group, *p) >= sizeof(child)) {
                        r = -ENAMETOOLONG;
                        break;
                }
                r = group_threads(h, hier, child, &l, &m);
                if (r == -ENOENT)
                        continue; /* removed meanwhile (vCPU unplug) */
                if (r < 0)
                        break;
                na = reallocarray(all, n + m + 1, sizeof(pid_t));
                if (!na) {
                        r = -ENOMEM;
                        break;
                }
                all = na;
                if (m > 0)
                        memcpy(all + n, l, m * sizeof(pid_t));
                n += m;
                r = 0;
        }
        strv_free(names);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(all);
        *ret_n = n;
        return 0;
}

int kh_vm_threads(KHost *h, const VmId *vm, CgRole role, pid_t **ret, size_t *ret_n) {
        const KhForeignVm *f = kh_foreign_find(h, vm);
        char group[CG_PATH_MAX];
        unsigned hier;
        int r;

        r = placement_hier(h, &hier);
        if (r < 0)
                return r;
        if (f)
                return foreign_threads(h, hier, f, role, ret, ret_n);
        r = kh_group_path(h, vm, role, group, sizeof(group));
        if (r < 0)
                return r;
        return group_threads(h, hier, group, ret, ret_n);
}

static bool pid_in(const pid_t *l, size_t n, pid_t p) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == p)
                        return true;
        return false;
}

static void freep_pids(pid_t **p) {
        free(*p);
}

/* Threads of the VM already in one of its role groups in hierarchy `hier`. */
static int placed_threads(KHost *h, unsigned hier, const VmId *vm, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ pid_t *all = NULL;
        size_t n = 0;

        for (size_t k = 0; k < ARRAY_SIZE(thread_roles); k++) {
                _cleanup_(freep_pids) pid_t *l = NULL;
                char group[CG_PATH_MAX];
                size_t m;
                pid_t *na;
                int r;

                r = kh_group_path(h, vm, thread_roles[k], group, sizeof(group));
                if (r < 0)
                        return r;
                r = group_threads(h, hier, group, &l, &m);
                if (r < 0)
                        return r;
                na = reallocarray(all, n + m + 1, sizeof(pid_t));
                if (!na)
                        return -ENOMEM;
                all = na;
                if (m > 0) /* an empty group parses to NULL: no memcpy from NULL */
                        memcpy(all + n, l, m * sizeof(pid_t));
                n += m;
        }
        *ret = TAKE_PTR(all);
        *ret_n = n;
        return 0;
}

static int write_tid(KHost *h, unsigned hier, const char *group, const char *file, pid_t tid) {
        char buf[16];
        int r;

        snprintf(buf, sizeof(buf), "%d", (int) tid);
        r = kh_write(h, hier, group, file, buf, false);
        /* The kernel says ESRCH for a thread that exited; ENOENT would mean
         * our group is gone, which callers must see. */
        return r;
}

int kh_vm_attach_process(KHost *h, const VmId *vm, pid_t pid) {
        _cleanup_free_ pid_t *tids = NULL;
        char vmgroup[CG_PATH_MAX], emu[CG_PATH_MAX];
        size_t ntids;
        int r;

        if (pid <= 0)
                return -EINVAL;
        if (kh_foreign_find(h, vm))
                return -EPERM;
        r = kh_group_path(h, vm, CG_ROLE_VM, vmgroup, sizeof(vmgroup));
        if (r < 0)
                return r;
        r = kh_group_path(h, vm, CG_ROLE_EMULATOR, emu, sizeof(emu));
        if (r < 0)
                return r;
        r = kh_process_threads(h, pid, &tids, &ntids);
        if (r < 0)
                return r;

        for (size_t i = 0; i < h->layout.n_hier; i++) {
                _cleanup_free_ pid_t *placed = NULL;
                size_t nplaced = 0;
                bool any_placed = false;

                if (!hier_is_managed(h, i))
                        continue;
                r = placed_threads(h, (unsigned) i, vm, &placed, &nplaced);
                if (r < 0)
                        return r;
                for (size_t t = 0; t < ntids; t++)
                        any_placed = any_placed || pid_in(placed, nplaced, tids[t]);

                /* v2: a thread can only move within its process's threaded
                 * domain, so the process enters the VM group first.  If any
                 * thread is already in a role group, the process is in the
                 * domain, and writing cgroup.procs would pull the placed
                 * threads back out of their roles. */
                if (h->layout.hier[i].version == CG_V2 && !any_placed) {
                        char buf[16];
                        snprintf(buf, sizeof(buf), "%d", (int) pid);
                        r = kh_write(h, (unsigned) i, vmgroup, "cgroup.procs", buf, false);
                        if (r < 0)
                                return r;
                }
                for (size_t t = 0; t < ntids; t++) {
                        if (pid_in(placed, nplaced, tids[t]))
                                continue; /* already right: leave it */
                        r = write_tid(h, (unsigned) i, emu, thread_file(h->layout.hier[i].version), tids[t]);
                        if (r == -ESRCH)
                                continue; /* exited meanwhile */
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int kh_vm_attach_thread(KHost *h, const VmId *vm, CgRole role, pid_t tid) {
        char group[CG_PATH_MAX];
        int r;

        if (tid <= 0 || role == CG_ROLE_VM)
                return -EINVAL;
        if (kh_foreign_find(h, vm))
                return -EPERM;
        r = kh_group_path(h, vm, role, group, sizeof(group));
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->layout.n_hier; i++) {
                if (!hier_is_managed(h, i))
                        continue;
                r = write_tid(h, (unsigned) i, group, thread_file(h->layout.hier[i].version), tid);
                if (r < 0)
                        return r;
        }
        return 0;
}

int kh_process_threads(KHost *h, pid_t pid, pid_t **ret, size_t *ret_n) {
        return h->ops->list_tasks(h->be, pid, ret, ret_n);
}

int kh_thread_cpu_usec(KHost *h, pid_t pid, pid_t tid, uint64_t *ret_usec) {
        char buf[128];
        uint64_t ns;
        int r;

        r = h->ops->read_schedstat(h->be, pid, tid, buf, sizeof(buf), NULL);
        if (r < 0)
                return r;
        r = cg_parse_schedstat(buf, &ns);
        if (r < 0)
                return r;
        *ret_usec = ns / NSEC_PER_USEC;
        return 0;
}

/* ---- foreign VMs (libvirt's groups) ----------------------------------- */

int kh_vm_set_foreign(KHost *h, const VmId *vm, const char *domain) {
        size_t len, i;
        KhForeignVm *f;

        if (!domain || !cgfs_path_is_safe(domain))
                return -EINVAL;
        len = strlen(domain);
        if (len >= sizeof(f->domain) - 32)
                return -ENAMETOOLONG;
        /* Never vmmgr's own subtree: those groups are vmmgr's to make. */
        if (strncmp(domain, h->subtree, strlen(h->subtree)) == 0 &&
            (domain[strlen(h->subtree)] == '\0' || domain[strlen(h->subtree)] == '/'))
                return -EINVAL;
        f = (KhForeignVm *) kh_foreign_find(h, vm);
        if (f) {
                snprintf(f->domain, sizeof(f->domain), "%s", domain);
                return 0;
        }
        if (h->n_foreign == h->foreign_cap) {
                size_t ncap = h->foreign_cap ? h->foreign_cap * 2 : 16;
                KhForeignVm *nf = reallocarray(h->foreign, ncap, sizeof(KhForeignVm));

                if (!nf)
                        return -ENOMEM;
                h->foreign = nf;
                h->foreign_cap = ncap;
        }
        for (i = h->n_foreign; i > 0 && strcmp(h->foreign[i - 1].id.str, vm->str) > 0; i--)
                ;
        memmove(h->foreign + i + 1, h->foreign + i, (h->n_foreign - i) * sizeof(KhForeignVm));
        h->foreign[i] = (KhForeignVm) { .id = *vm };
        snprintf(h->foreign[i].domain, sizeof(h->foreign[i].domain), "%s", domain);
        h->n_foreign++;
        return 0;
}

int kh_vm_forget_foreign(KHost *h, const VmId *vm) {
        const KhForeignVm *f = kh_foreign_find(h, vm);
        size_t i;

        if (!f)
                return -ENOENT;
        i = (size_t) (f - h->foreign);
        memmove(h->foreign + i, h->foreign + i + 1, (h->n_foreign - i - 1) * sizeof(KhForeignVm));
        h->n_foreign--;
        return 0;
}

const char *kh_vm_foreign_group(const KHost *h, const VmId *vm) {
        const KhForeignVm *f = kh_foreign_find(h, vm);

        return f ? f->domain : NULL;
}

int kh_thread_group(KHost *h, CgController c, pid_t tid, char *buf, size_t size) {
        if ((unsigned) c >= _CG_CTRL_MAX || h->ctrl_hier[c] < 0)
                return -EOPNOTSUPP;
        if (tid <= 0)
                return -EINVAL;
        if (!h->ops->thread_group)
                return -EOPNOTSUPP;
        return h->ops->thread_group(h->be, (unsigned) h->ctrl_hier[c], tid, buf, size);
}

int kh_vm_foreign_role_groups(KHost *h, const VmId *vm, CgRole role) {
        const KhForeignVm *f = kh_foreign_find(h, vm);
        char group[CG_PATH_MAX];
        char **names = NULL;
        unsigned hier;
        int r, n = 0;

        if (!f)
                return -ENOENT;
        r = placement_hier(h, &hier);
        if (r < 0)
                return r;
        snprintf(group, sizeof(group), "/%s", f->domain);
        r = h->ops->list_children(h->be, hier, group, &names);
        if (r < 0)
                return r;
        for (char **p = names; *p; p++)
                n += foreign_child_has_role(*p, role);
        strv_free(names);
        return n;
}
