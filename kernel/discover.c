/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host discovery: which controllers are mounted where, and which cgroup
 * version each mount is.
 *
 * libcgroup gives the controller -> mount table.  We check each mount's
 * filesystem type ourselves with statfs(2) (a v1 hierarchy and cgroup2
 * behave differently for everything we write), and for cgroup2 take the
 * controller list from its own cgroup.controllers, which is what the
 * kernel will let us enable.  A cgroup2 mount that holds no controller
 * (common on hybrid hosts) is not in libcgroup's controller table, so it
 * is found from the mount table with getmntent(3).
 */
#include <errno.h>
#include <fcntl.h>
#include <libcgroup.h>
#include <linux/magic.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>

#include "common/macros.h"
#include "kernel/cgfs.h"
#include "kernel/cgparse.h"
#include "kernel/internal.h"

static void endmntentp(FILE **f) {
        if (*f)
                endmntent(*f);
}

static int mount_version(const char *path, CgVersion *ret) {
        struct statfs sfs;

        if (statfs(path, &sfs) < 0)
                return negative_errno();
        if (sfs.f_type == CGROUP2_SUPER_MAGIC)
                *ret = CG_V2;
        else if (sfs.f_type == CGROUP_SUPER_MAGIC)
                *ret = CG_V1;
        else
                return -ENOTTY; /* not a cgroup filesystem */
        return 0;
}

static int v2_controllers(const char *mount, uint32_t *ret) {
        _cleanup_close_ int fd = -EBADF;
        char buf[512];
        int r;

        fd = open(mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = cgfs_read(fd, "cgroup.controllers", buf, sizeof(buf), NULL);
        if (r < 0)
                return r;
        return cg_parse_controller_list(buf, ret);
}

static CgHierarchyInfo *find_or_add(KBackendLayout *l, const char *mount, CgVersion v) {
        for (size_t i = 0; i < l->n_hier; i++)
                if (strcmp(l->hier[i].mount, mount) == 0)
                        return &l->hier[i];
        if (l->n_hier >= ARRAY_SIZE(l->hier))
                return NULL;
        CgHierarchyInfo *h = &l->hier[l->n_hier++];
        *h = (CgHierarchyInfo) { .version = v };
        snprintf(h->mount, sizeof(h->mount), "%s", mount);
        return h;
}

static void find_unified_mount(KBackendLayout *l) {
        _cleanup_(endmntentp) FILE *f = NULL;
        struct mntent *me;

        f = setmntent("/proc/self/mounts", "re");
        if (!f)
                return;
        while ((me = getmntent(f)))
                if (strcmp(me->mnt_type, "cgroup2") == 0) {
                        snprintf(l->unified_mount, sizeof(l->unified_mount), "%s", me->mnt_dir);
                        return;
                }
}

int discover_layout(KBackendLayout *ret) {
        KBackendLayout l = { .mode = CG_MODE_NONE };
        struct cgroup_mount_point mp;
        bool any_v1 = false;
        void *handle = NULL;
        int r;

        find_unified_mount(&l);

        r = cgroup_init();
        if (r == 0) {
                for (r = cgroup_get_controller_begin(&handle, &mp); r == 0;
                     r = cgroup_get_controller_next(&handle, &mp)) {
                        CgHierarchyInfo *h;
                        CgVersion v;
                        int c;

                        c = cg_controller_from_string(mp.name);
                        if (c < 0)
                                continue; /* rdma, perf_event, ...: not ours */
                        if (mount_version(mp.path, &v) < 0)
                                continue;
                        h = find_or_add(&l, mp.path, v);
                        if (!h)
                                break;
                        if (v == CG_V1) {
                                h->controllers |= CG_CTRL_BIT(c);
                                any_v1 = true;
                        }
                }
                cgroup_get_controller_end(&handle);
        }
        /* The truth about a cgroup2 mount is its own cgroup.controllers. */
        if (l.unified_mount[0]) {
                CgHierarchyInfo *h = find_or_add(&l, l.unified_mount, CG_V2);
                if (h && v2_controllers(h->mount, &h->controllers) < 0)
                        h->controllers = 0;
        }
        /* Drop hierarchies that hold nothing we know. */
        for (size_t i = 0; i < l.n_hier;) {
                if (l.hier[i].controllers == 0) {
                        memmove(&l.hier[i], &l.hier[i + 1], (l.n_hier - i - 1) * sizeof(l.hier[0]));
                        l.n_hier--;
                } else
                        i++;
        }
        if (any_v1 && l.unified_mount[0])
                l.mode = CG_MODE_HYBRID;
        else if (any_v1)
                l.mode = CG_MODE_LEGACY;
        else if (l.unified_mount[0])
                l.mode = CG_MODE_UNIFIED;
        *ret = l;
        return 0;
}
