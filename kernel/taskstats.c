/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Taskstats over generic netlink (libnl-genl).  For now: whether the
 * TASKSTATS family exists.  Per-thread delay accounting (issue "Memory")
 * builds on the same socket setup.
 */
#include <errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "kernel/internal.h"

int taskstats_family_available(void) {
        struct nl_sock *sk;
        int family, r;

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = genl_connect(sk);
        if (r < 0) {
                nl_socket_free(sk);
                return 0; /* no generic netlink: no taskstats */
        }
        family = genl_ctrl_resolve(sk, "TASKSTATS");
        nl_socket_free(sk);
        return family >= 0 ? 1 : 0;
}
