/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/thread-roles.h - a QEMU's vCPU and iothread thread ids,
 * asked with libqmp's blocking helpers: for tests only (vmmgrd asks
 * without waiting, vmmgr/daemon/vm-link.c).
 */
#pragma once

#include "qmp/qmp.h"
#include "vmmgr/engine/binding.h"

static inline int test_thread_roles_query(Qmp *q, int timeout_ms, VmThreadRoles *ret, QmpError *ret_error) {
        QmpCpu *cpus = NULL;
        QmpIothread *io = NULL;
        size_t ncpus = 0, nio = 0;
        int r;

        r = qmp_query_cpus_fast(q, timeout_ms, &cpus, &ncpus, ret_error);
        if (r < 0)
                return r;
        r = qmp_query_iothreads(q, timeout_ms, &io, &nio, ret_error);
        if (r == 0)
                r = vm_thread_roles_from_qmp(cpus, ncpus, io, nio, ret);
        qmp_cpus_free(cpus, ncpus);
        qmp_iothreads_free(io, nio);
        return r;
}
