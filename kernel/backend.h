/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/backend.h - private: the file-level interface under a KHost.
 *
 * The typed front end (cgroup.c, cpu.c, memory.c, dmem.c, probe.c) turns
 * requests into operations on cgroup files; a backend performs them.  Two
 * backends implement this table: backend-real.c (cgroupfs + /proc) and
 * model.c (the kernel model).  Both return the errno the kernel would.
 *
 * Addressing: `hier` indexes the host's hierarchy table; `group` is a path
 * relative to vmmgr's subtree root in that hierarchy ("" is the subtree
 * root itself, "vm-<uuid>/vcpus" a role group).  group == NULL addresses
 * the hierarchy's mount root, which the front end only ever reads.  A
 * group that starts with '/' is a path from the mount root: another
 * manager's groups (libvirt's), which the front end addresses only for a
 * VM registered as foreign (kh_vm_set_foreign) and never creates, removes
 * or moves threads into.
 * Callers pass only paths built by the front end from validated names.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "kernel/kernel.h"

typedef enum KHostFile {
        KHOST_FILE_PSI_CPU,         /* /proc/pressure/cpu */
        KHOST_FILE_PSI_MEMORY,      /* /proc/pressure/memory */
        KHOST_FILE_TASK_DELAYACCT,  /* /proc/sys/kernel/task_delayacct */
        KHOST_FILE_OSRELEASE,       /* /proc/sys/kernel/osrelease */
        KHOST_FILE_MEMINFO,         /* /proc/meminfo */
        KHOST_FILE_IO_URING_DISABLED, /* /proc/sys/kernel/io_uring_disabled (6.6+) */
        _KHOST_FILE_MAX,
} KHostFile;

typedef struct KBackendOps {
        const char *name; /* "real" or "model" */
        /* 0, or -EEXIST if it exists already. */
        int (*mkdir)(void *be, unsigned hier, const char *group);
        /* 0, -ENOENT, or -EBUSY while it has tasks or children. */
        int (*rmdir)(void *be, unsigned hier, const char *group);
        /* Reads the whole file into buf, NUL-terminated; -E2BIG if it does
         * not fit in size-1 bytes.  *ret_len excludes the NUL. */
        int (*read)(void *be, unsigned hier, const char *group, const char *file, char *buf,
                    size_t size, size_t *ret_len);
        /* One write(2) of data; a short write is -EIO.  `flags`: the
         * CGFS_* bits of kernel/cgfs.h (O_NONBLOCK, which memory.max and
         * memory.high honour; -EINTR instead of a retry). */
        int (*write)(void *be, unsigned hier, const char *group, const char *file,
                     const char *data, size_t len, unsigned flags);
        /* 1 if the file (or, with file == NULL, the group) exists, else 0. */
        int (*exists)(void *be, unsigned hier, const char *group, const char *file);
        /* Names of the child groups of `group`; *ret is a malloc'd
         * NULL-terminated array of malloc'd strings. */
        int (*list_children)(void *be, unsigned hier, const char *group, char ***ret);
        /* /proc/<pid>/task/<tid>/schedstat content. -ESRCH if gone. */
        int (*read_schedstat)(void *be, pid_t pid, pid_t tid, char *buf, size_t size,
                              size_t *ret_len);
        /* Thread ids of a process; -ESRCH if it is gone. */
        int (*list_tasks)(void *be, pid_t pid, pid_t **ret, size_t *ret_n);
        /* Host-level read-only files; -ENOENT where absent. */
        int (*read_host_file)(void *be, KHostFile which, char *buf, size_t size,
                              size_t *ret_len);
        /* 1 if the TASKSTATS generic netlink family resolves, 0 if not. */
        int (*taskstats_available)(void *be);
        void (*free)(void *be);
        /* Optional: an O_RDONLY fd on a file for repeated pread(2) at offset
         * 0 (kernfs regenerates the content on each read from 0).  NULL or
         * -EOPNOTSUPP: callers fall back to read().  A backend that sets
         * read_open hands out handles that are not file descriptors. */
        int (*open_read)(void *be, unsigned hier, const char *group, const char *file);
        /* Optional, with open_read: reads a handle from offset 0 into buf
         * (NUL-terminated; -E2BIG if it does not fit in size-1 bytes);
         * -ENODEV once its group or file is gone (kernfs's answer on an
         * fd whose file was removed).  NULL: handles are fds, read with
         * pread(2) or io_uring, and closed with close(2).  A backend with
         * read_open keeps its handles until it is freed itself: readers
         * may outlive the KHost and never release them. */
        int (*read_open)(void *be, int handle, char *buf, size_t size, size_t *ret_len);
        /* Optional: an O_RDWR|O_NONBLOCK fd on a file that is used through
         * the fd itself (PSI triggers live as long as it is open). */
        int (*open_rw)(void *be, unsigned hier, const char *group, const char *file);
        /* The group a thread is in, in hierarchy `hier` (/proc/<tid>/cgroup):
         * a path from the mount root without the leading '/' ("" for the
         * root itself).  -ESRCH if the thread is gone. */
        int (*thread_group)(void *be, unsigned hier, pid_t tid, char *buf, size_t size);
} KBackendOps;

/* What a backend reports about the hierarchies it serves. */
typedef struct KBackendLayout {
        CgMode mode;
        size_t n_hier;
        CgHierarchyInfo hier[_CG_CTRL_MAX + 1]; /* .managed is filled by the front end */
        char unified_mount[CG_PATH_MAX];         /* "" if none */
} KBackendLayout;

/* The front end's constructor, used by kh_open() and kh_open_model().
 * Takes ownership of `be` (freed through ops->free, also on failure). */
int kh_new_from_backend(const KBackendOps *ops, void *be, const KBackendLayout *layout,
                        const KHostConfig *cfg, KHost **ret);
/* Model access for kh_open_model(): kernel/model/model.c provides its
 * backend. */
typedef struct KModel KModel;
int km_backend(KModel *m, const KBackendOps **ret_ops, void **ret_be, KBackendLayout *ret_layout);
