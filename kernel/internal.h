/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kernel/internal.h - private: pieces of the real backend. */
#pragma once

#include "kernel/backend.h"

/* Finds the cgroup hierarchies of this host (discover.c). */
int discover_layout(KBackendLayout *ret);
/* The cgroupfs + /proc backend over a discovered layout (backend-real.c). */
int real_backend_new(const KBackendLayout *layout, const char *subtree, void **ret_be);
extern const KBackendOps real_backend_ops;
/* 1 if the TASKSTATS genetlink family resolves (taskstats.c). */
int taskstats_family_available(void);

/* The taskstats reply parser (taskstats.c), over plain byte buffers so
 * that unit tests can feed it hostile input.  Buffers must be 4-byte
 * aligned (netlink's alignment).  ThreadDelays.delayacct is left
 * TRI_UNKNOWN: the reply does not say. */
/* A struct taskstats payload of `len` bytes (any length: cut or
 * zero-extended to ours).  -EBADMSG: shorter than version 1's fields or
 * version 0. */
int taskstats_parse_stats(const void *data, size_t len, ThreadDelays *ret);
/* The attributes after the generic netlink header of a TASKSTATS_CMD_NEW
 * reply for thread `tid`.  -EBADMSG: malformed, no AGGR_PID nest, no or a
 * different PID, no STATS. */
int taskstats_parse_attrs(void *attrs, size_t len, uint32_t tid, ThreadDelays *ret);
/* One received datagram: 1 with *ret filled when it holds the reply to
 * request `seq`, 0 when it holds nothing for it (stale messages), the
 * kernel's negative errno from an NLMSG_ERROR (-ESRCH: no such thread),
 * -EBADMSG for anything malformed or unexpected. */
int taskstats_parse_reply(void *buf, size_t len, uint16_t family, uint32_t seq, uint32_t tid,
                          ThreadDelays *ret);
