/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/binding.h - placing a VM's threads into its role groups.
 *
 * Roles come from QEMU (vCPU threads from query-cpus-fast, iothreads from
 * query-iothreads); every other thread of the QEMU process is "emulator".
 * Binding is a diff: threads already in the right group are not touched,
 * threads that left a role (vCPU unplug, a recycled tid) go back to
 * emulator, threads that exit meanwhile are skipped.  Thread ids QEMU
 * reports are bound only if they are threads of the VM's process: a
 * confused or hostile QEMU cannot make vmmgr move someone else's thread.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "kernel/kernel.h"
#include "qmp/qmp.h"

typedef struct VmThreadRoles {
        pid_t *vcpus; /* by vCPU index order */
        size_t n_vcpus;
        pid_t *io;
        size_t n_io;
} VmThreadRoles;

void vm_thread_roles_done(VmThreadRoles *r);

/* The roles from query-cpus-fast and query-iothreads as parsed by libqmp
 * (the asynchronous path).  -EBADMSG for an id that is not a thread id. */
int vm_thread_roles_from_qmp(const QmpCpu *cpus, size_t ncpus, const QmpIothread *io, size_t nio,
                             VmThreadRoles *ret);

typedef struct VmBindStats {
        size_t moved;    /* threads written into a group */
        size_t in_place; /* threads that were already right */
        size_t vanished; /* threads that exited while we worked */
        size_t foreign;  /* ids QEMU named that are not its threads (ignored) */
} VmBindStats;

/* Creates or adopts the VM's groups and puts every thread of `pid` where
 * its role says.  Idempotent. */
int vm_bind(KHost *h, const VmId *vm, pid_t pid, const VmThreadRoles *roles, VmBindStats *ret_stats);

/* The process on the other end of a connected UNIX socket (SO_PEERCRED). */
int vm_socket_peer_pid(int fd, pid_t *ret);
