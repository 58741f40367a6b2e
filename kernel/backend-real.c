/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The real backend: cgroupfs under each hierarchy's mount and /proc.
 *
 * Each hierarchy is held by an O_PATH fd on its mount point, opened once;
 * every access is then confined beneath that fd (kernel/cgfs.c).  vmmgr's
 * groups live under "<mount>/<subtree>/", so a group path "" is the
 * subtree root and NULL the mount root (read-only use by the front end).
 * A group "/a/b" is "<mount>/a/b": a foreign VM's groups (backend.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/cgfs.h"
#include "kernel/cgparse.h"
#include "kernel/internal.h"

typedef struct RealBackend {
        size_t n_hier;
        int mount_fd[_CG_CTRL_MAX + 1];
        CgVersion version[_CG_CTRL_MAX + 1];
        uint32_t controllers[_CG_CTRL_MAX + 1];
        int proc_fd;
        char subtree[256];
} RealBackend;

static void real_free(void *p) {
        RealBackend *b = p;

        if (!b)
                return;
        for (size_t i = 0; i < b->n_hier; i++)
                closep(&b->mount_fd[i]);
        closep(&b->proc_fd);
        free(b);
}

int real_backend_new(const KBackendLayout *layout, const char *subtree, void **ret_be) {
        RealBackend *b;

        if (!is_safe_name(subtree, 200))
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->proc_fd = -EBADF;
        snprintf(b->subtree, sizeof(b->subtree), "%s", subtree);
        for (size_t i = 0; i < layout->n_hier; i++) {
                b->mount_fd[i] = open(layout->hier[i].mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (b->mount_fd[i] < 0) {
                        int r = negative_errno();
                        b->n_hier = i;
                        real_free(b);
                        return r;
                }
                b->version[i] = layout->hier[i].version;
                b->controllers[i] = layout->hier[i].controllers;
                b->n_hier = i + 1;
        }
        b->proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (b->proc_fd < 0) {
                int r = negative_errno();
                real_free(b);
                return r;
        }
        *ret_be = b;
        return 0;
}

/* "<subtree>[/<group>][/<file>]", "<group>[/<file>]" for a group from the
 * mount root ("/a/b"), or just "<file>" at the mount root. */
static int build_path(const RealBackend *b, const char *group, const char *file, char *buf,
                      size_t size) {
        int n;

        if (!group)
                n = snprintf(buf, size, "%s", file ? file : ".");
        else if (group[0] == '/')
                n = group[1] ? snprintf(buf, size, "%s%s%s", group + 1, file ? "/" : "", file ? file : "") : -1;
        else
                n = snprintf(buf, size, "%s%s%s%s%s", b->subtree, *group ? "/" : "", group,
                             file ? "/" : "", file ? file : "");
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static int hier_fd(const RealBackend *b, unsigned hier) {
        return hier < b->n_hier ? b->mount_fd[hier] : -EINVAL;
}

/* The hierarchy's mount fd and the path beneath it; <0 on error. */
static int resolve(const RealBackend *b, unsigned hier, const char *group, const char *file, char *path) {
        int fd = hier_fd(b, hier), r;

        if (fd < 0)
                return fd;
        r = build_path(b, group, file, path, CG_PATH_MAX);
        return r < 0 ? r : fd;
}

static int real_mkdir(void *p, unsigned hier, const char *group) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        if (!group || group[0] == '/') /* never another manager's groups */
                return -EINVAL;
        fd = resolve(b, hier, group, NULL, path);
        return fd < 0 ? fd : cgfs_mkdir(fd, path);
}

static int real_rmdir(void *p, unsigned hier, const char *group) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        if (!group || group[0] == '/')
                return -EINVAL;
        fd = resolve(b, hier, group, NULL, path);
        return fd < 0 ? fd : cgfs_rmdir(fd, path);
}

static int real_read(void *p, unsigned hier, const char *group, const char *file, char *buf,
                     size_t size, size_t *ret_len) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        fd = resolve(b, hier, group, file, path);
        return fd < 0 ? fd : cgfs_read(fd, path, buf, size, ret_len);
}

static int real_write(void *p, unsigned hier, const char *group, const char *file,
                      const char *data, size_t len, unsigned flags) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        /* vmmgr writes only inside its own subtree. */
        if (!group)
                return -EINVAL;
        fd = resolve(b, hier, group, file, path);
        return fd < 0 ? fd : cgfs_write(fd, path, data, len, flags);
}

static int real_exists(void *p, unsigned hier, const char *group, const char *file) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        fd = resolve(b, hier, group, file, path);
        return fd < 0 ? fd : cgfs_exists(fd, path);
}

static int real_list_children(void *p, unsigned hier, const char *group, char ***ret) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        fd = resolve(b, hier, group, NULL, path);
        return fd < 0 ? fd : cgfs_list_dirs(fd, path, ret);
}

static int real_read_schedstat(void *p, pid_t pid, pid_t tid, char *buf, size_t size,
                               size_t *ret_len) {
        RealBackend *b = p;
        char path[64];
        int r;

        if (pid <= 0 || tid <= 0)
                return -EINVAL;
        snprintf(path, sizeof(path), "%d/task/%d/schedstat", (int) pid, (int) tid);
        r = cgfs_read(b->proc_fd, path, buf, size, ret_len);
        return r == -ENOENT ? -ESRCH : r;
}

static int real_list_tasks(void *p, pid_t pid, pid_t **ret, size_t *ret_n) {
        RealBackend *b = p;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        char path[32];
        DIR *d;
        int fd;

        if (pid <= 0)
                return -EINVAL;
        snprintf(path, sizeof(path), "%d/task", (int) pid);
        fd = cgfs_open_beneath(b->proc_fd, path, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
                return fd == -ENOENT ? -ESRCH : fd;
        d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                uint64_t v;

                if (parse_u64(de->d_name, &v) < 0 || v == 0 || v > INT32_MAX)
                        continue; /* ".", ".." */
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 32;
                        pid_t *nt = reallocarray(tids, ncap, sizeof(pid_t));
                        if (!nt) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        tids = nt;
                        cap = ncap;
                }
                tids[n++] = (pid_t) v;
        }
        closedir(d);
        *ret = TAKE_PTR(tids);
        *ret_n = n;
        return 0;
}

static int real_read_host_file(void *p, KHostFile which, char *buf, size_t size,
                               size_t *ret_len) {
        static const char *const paths[_KHOST_FILE_MAX] = {
                [KHOST_FILE_PSI_CPU] = "pressure/cpu",
                [KHOST_FILE_PSI_MEMORY] = "pressure/memory",
                [KHOST_FILE_TASK_DELAYACCT] = "sys/kernel/task_delayacct",
                [KHOST_FILE_OSRELEASE] = "sys/kernel/osrelease",
                [KHOST_FILE_MEMINFO] = "meminfo",
                [KHOST_FILE_IO_URING_DISABLED] = "sys/kernel/io_uring_disabled",
        };
        RealBackend *b = p;

        if ((unsigned) which >= _KHOST_FILE_MAX)
                return -EINVAL;
        return cgfs_read(b->proc_fd, paths[which], buf, size, ret_len);
}

static int real_open_read(void *p, unsigned hier, const char *group, const char *file) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        fd = resolve(b, hier, group, file, path);
        return fd < 0 ? fd : cgfs_open_beneath(fd, path, O_RDONLY);
}

static int real_open_rw(void *p, unsigned hier, const char *group, const char *file) {
        RealBackend *b = p;
        char path[CG_PATH_MAX];
        int fd;

        if (!group)
                return -EINVAL; /* only inside vmmgr's subtree */
        fd = resolve(b, hier, group, file, path);
        return fd < 0 ? fd : cgfs_open_beneath(fd, path, O_RDWR | O_NONBLOCK);
}

static int real_thread_group(void *p, unsigned hier, pid_t tid, char *buf, size_t size) {
        RealBackend *b = p;
        char path[48], text[4096];
        int r;

        if (hier >= b->n_hier)
                return -EINVAL;
        if (tid <= 0)
                return -EINVAL;
        /* /proc/<tid>/cgroup names the thread's own group: /proc/<tgid>/
         * would name the process's, and threads may sit elsewhere. */
        snprintf(path, sizeof(path), "%d/cgroup", (int) tid);
        r = cgfs_read(b->proc_fd, path, text, sizeof(text), NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;
        return cg_parse_proc_cgroup(text, b->version[hier], b->controllers[hier], buf, size);
}

static int real_taskstats_available(void *p) {
        return taskstats_family_available();
}

const KBackendOps real_backend_ops = {
        .name = "real",
        .mkdir = real_mkdir,
        .rmdir = real_rmdir,
        .read = real_read,
        .write = real_write,
        .exists = real_exists,
        .list_children = real_list_children,
        .read_schedstat = real_read_schedstat,
        .list_tasks = real_list_tasks,
        .read_host_file = real_read_host_file,
        .taskstats_available = real_taskstats_available,
        .free = real_free,
        .open_read = real_open_read,
        .open_rw = real_open_rw,
        .thread_group = real_thread_group,
};
