/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kernel/khost.h - private: the KHost front end shared by cgroup.c, cpu.c,
 * memory.c, dmem.c and probe.c. */
#pragma once

#include "kernel/backend.h"

/* A VM in another manager's groups (kh_vm_set_foreign). */
typedef struct KhForeignVm {
        VmId id;
        char domain[CG_PATH_MAX]; /* from the mount root, no leading '/' */
} KhForeignVm;

struct KHost {
        const KBackendOps *ops;
        void *be;
        KBackendLayout layout;          /* hier[].managed filled from the config */
        int ctrl_hier[_CG_CTRL_MAX];    /* hierarchy index per controller, -1: not mounted */
        char subtree[256];
        KhForeignVm *foreign;           /* sorted by id */
        size_t n_foreign, foreign_cap;
        KhReadBatch *batch;             /* kh_read_batch_new(), or NULL */
};

/* Group path of a VM's role group: "vm-<uuid>" or "vm-<uuid>/<role>"; for
 * a foreign VM "/<domain>" (VM, vCPUs) or "/<domain>/emulator", and
 * -EOPNOTSUPP for its I/O role (libvirt has one group per iothread). */
int kh_group_path(const KHost *h, const VmId *vm, CgRole role, char *buf, size_t size);
/* The foreign VM's entry, or NULL for one of vmmgr's own. */
const KhForeignVm *kh_foreign_find(const KHost *h, const VmId *vm);
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
