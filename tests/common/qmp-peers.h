/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/qmp-peers.h - scripted QMP peers for vmmgrd's tests and
 * benches: any number of UNIX sockets served by one thread (epoll), each
 * answering like a small QEMU 7.2 (greeting, qmp_capabilities and the
 * queries vmmgrd sends, with canned replies built with json-c) or
 * stalling on purpose.
 *
 *   QmpPeers *p = qmp_peers_new();
 *   qmp_peers_add(p, "/tmp/x/vm0.sock", &(QmpPeerSpec) { .uuid = "...", .vcpu_tid = 4242 });
 *   qmp_peers_start(p);      // serves from its own thread
 *   ...
 *   qmp_peers_free(p);       // stops the thread, closes and unlinks
 *
 * Unknown commands get a CommandNotFound error, as QEMU answers.  Peers
 * are configured before qmp_peers_start() only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef enum QmpPeerMode {
        QMP_PEER_ANSWER,       /* a well-behaved QEMU */
        QMP_PEER_SILENT,       /* accepts, never writes a byte (a hung QEMU) */
        QMP_PEER_STALL_QUERIES /* greets and negotiates, then never answers */
} QmpPeerMode;

typedef struct QmpPeerSpec {
        QmpPeerMode mode;
        const char *uuid;   /* query-uuid's answer; NULL: QEMU's all-zero UUID */
        pid_t vcpu_tid;     /* query-cpus-fast's one vCPU thread id */
        unsigned long long ram_bytes; /* query-memory-size-summary (0: 1 GiB) */
} QmpPeerSpec;

typedef struct QmpPeers QmpPeers;

QmpPeers *qmp_peers_new(void);
/* Listens on path (removed first if it exists).  Returns the peer's index
 * or a negative errno. */
int qmp_peers_add(QmpPeers *p, const char *path, const QmpPeerSpec *spec);
int qmp_peers_start(QmpPeers *p);
/* Commands the peers have received, all together (read after a reply). */
unsigned long qmp_peers_commands(QmpPeers *p);
void qmp_peers_free(QmpPeers *p);
