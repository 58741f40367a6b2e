/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/binding.c - puts a VM's threads in their groups by role (vCPUs,
 * iothreads, the emulator's other threads) from what QEMU reports.
 */
#include "vmmgr/engine/binding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macros.h"

void vm_thread_roles_done(VmThreadRoles *r) {
        free(r->vcpus);
        free(r->io);
        *r = (VmThreadRoles) { 0 };
}

int vm_thread_roles_from_qmp(const QmpCpu *cpus, size_t ncpus, const QmpIothread *io, size_t nio,
                             VmThreadRoles *ret) {
        VmThreadRoles roles = { 0 };

        roles.vcpus = calloc(ncpus ? ncpus : 1, sizeof(pid_t));
        roles.io = calloc(nio ? nio : 1, sizeof(pid_t));
        if (!roles.vcpus || !roles.io) {
                vm_thread_roles_done(&roles);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ncpus; i++) {
                if (cpus[i].thread_id <= 0 || cpus[i].thread_id > INT32_MAX) {
                        vm_thread_roles_done(&roles);
                        return -EBADMSG; /* not a thread id */
                }
                roles.vcpus[roles.n_vcpus++] = (pid_t) cpus[i].thread_id;
        }
        for (size_t i = 0; i < nio; i++) {
                if (io[i].thread_id <= 0 || io[i].thread_id > INT32_MAX) {
                        vm_thread_roles_done(&roles);
                        return -EBADMSG;
                }
                roles.io[roles.n_io++] = (pid_t) io[i].thread_id;
        }
        *ret = roles;
        return 0;
}

static bool contains(const pid_t *l, size_t n, pid_t p) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == p)
                        return true;
        return false;
}

static CgRole wanted_role(const VmThreadRoles *roles, pid_t tid) {
        if (contains(roles->vcpus, roles->n_vcpus, tid))
                return CG_ROLE_VCPUS;
        if (contains(roles->io, roles->n_io, tid))
                return CG_ROLE_IO;
        return CG_ROLE_EMULATOR;
}

typedef struct Membership {
        pid_t *tids[_CG_ROLE_MAX];
        size_t n[_CG_ROLE_MAX];
} Membership;

static void membership_done(Membership *m) {
        for (int i = 0; i < _CG_ROLE_MAX; i++)
                free(m->tids[i]);
}

static int membership_read(KHost *h, const VmId *vm, Membership *m) {
        static const CgRole roles[] = { CG_ROLE_VCPUS, CG_ROLE_EMULATOR, CG_ROLE_IO };

        for (size_t i = 0; i < ARRAY_SIZE(roles); i++) {
                int r = kh_vm_threads(h, vm, roles[i], &m->tids[roles[i]], &m->n[roles[i]]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool in_role(const Membership *m, CgRole role, pid_t tid) {
        return contains(m->tids[role], m->n[role], tid);
}

int vm_bind(KHost *h, const VmId *vm, pid_t pid, const VmThreadRoles *roles, VmBindStats *ret_stats) {
        _cleanup_free_ pid_t *tids = NULL;
        Membership m = { 0 };
        VmBindStats st = { 0 };
        size_t ntids;
        int r;

        r = kh_vm_create(h, vm);
        if (r < 0)
                return r;
        r = kh_process_threads(h, pid, &tids, &ntids);
        if (r < 0)
                return r;
        for (size_t i = 0; i < roles->n_vcpus; i++)
                st.foreign += !contains(tids, ntids, roles->vcpus[i]);
        for (size_t i = 0; i < roles->n_io; i++)
                st.foreign += !contains(tids, ntids, roles->io[i]);

        /* New threads (and a process never seen) land in emulator first;
         * threads already placed are left alone. */
        r = kh_vm_attach_process(h, vm, pid);
        if (r < 0)
                return r;
        r = membership_read(h, vm, &m);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < ntids; i++) {
                CgRole want = wanted_role(roles, tids[i]);

                if (in_role(&m, want, tids[i])) {
                        st.in_place++;
                        continue;
                }
                r = kh_vm_attach_thread(h, vm, want, tids[i]);
                if (r == -ESRCH) {
                        st.vanished++;
                        continue;
                }
                if (r < 0)
                        goto out;
                st.moved++;
        }
        r = 0;
        if (ret_stats)
                *ret_stats = st;
out:
        membership_done(&m);
        return r;
}

int vm_socket_peer_pid(int fd, pid_t *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (len != sizeof(cred) || cred.pid <= 0)
                return -EPROTO;
        *ret = cred.pid;
        return 0;
}
