/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kernel/khost.h - private: the KHost front end shared by cgroup.c, cpu.c,
 * memory.c, dmem.c and probe.c. */
#pragma once

#include "kernel/backend.h"

struct KHost {
        const KBackendOps *ops;
        void *be;
        KBackendLayout layout;          /* hier[].managed filled from the config */
        int ctrl_hier[_CG_CTRL_MAX];    /* hierarchy index per controller, -1: not mounted */
        char subtree[256];
};

/* Group path of a VM's role group: "vm-<uuid>" or "vm-<uuid>/<role>". */
int kh_group_path(const VmId *vm, CgRole role, char *buf, size_t size);
/* Hierarchy index of a managed controller; -EOPNOTSUPP if not managed. */
int kh_managed_hier(const KHost *h, CgController c, unsigned *ret);
/* Reads a small file; NUL-terminated. */
int kh_read(KHost *h, unsigned hier, const char *group, const char *file, char *buf, size_t size);
int kh_write(KHost *h, unsigned hier, const char *group, const char *file, const char *data,
             bool nonblock);
/* kh_write with CGFS_* flags (kernel/cgfs.h). */
int kh_write_flags(KHost *h, unsigned hier, const char *group, const char *file, const char *data,
                   unsigned flags);
/* Reads a file of unbounded size (thread lists) into a malloc'd buffer. */
int kh_read_alloc(KHost *h, unsigned hier, const char *group, const char *file, char **ret);
