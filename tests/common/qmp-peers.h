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
 * are added before qmp_peers_start() only.
 *
 * A peer can also play a QEMU in a live migration, from the test's thread
 * while the peers serve (every call below is thread-safe):
 *
 *   qmp_peers_set_status(p, i, "inmigrate");     // query-status's answer
 *   qmp_peers_set_migrate_status(p, i, "active"); // query-migrate's answer
 *   qmp_peers_emit(p, i, "STOP", NULL);          // an event, now
 *   qmp_peers_emit(p, i, "MIGRATION", "{\"status\":\"completed\"}");
 *   qmp_peers_kill(p, i);                        // QEMU exits
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
        /* query-status's "status" ("running" when NULL; "running" is true
         * only for "running"), e.g. "inmigrate", "paused", "postmigrate". */
        const char *status;
        /* query-migrate's "status" ("active", "completed", "failed", ...);
         * "none" answers {} (no migration ever ran, as QEMU says it); NULL:
         * CommandNotFound, as before this existed. */
        const char *migrate_status;
} QmpPeerSpec;

typedef struct QmpPeers QmpPeers;

QmpPeers *qmp_peers_new(void);
/* Listens on path (removed first if it exists).  Returns the peer's index
 * or a negative errno. */
int qmp_peers_add(QmpPeers *p, const char *path, const QmpPeerSpec *spec);
int qmp_peers_start(QmpPeers *p);
/* Commands the peers have received, all together (read after a reply). */
unsigned long qmp_peers_commands(QmpPeers *p);
/* Changes what peer `index` answers from its next command on (NULL: the
 * default, "running" and CommandNotFound).  -EINVAL for a bad index or a
 * status of 32 bytes or more. */
int qmp_peers_set_status(QmpPeers *p, size_t index, const char *status);
int qmp_peers_set_migrate_status(QmpPeers *p, size_t index, const char *status);
/* Sends the event `name` (with `data_json`, an object as JSON text; NULL:
 * no "data", as QEMU sends STOP and RESUME) to every client of peer
 * `index` that negotiated capabilities, as QEMU does, with a timestamp.
 * Returns once it is written: the number of clients it went to, or a
 * negative errno (-EINVAL: bad index or data; -ENOTCONN: not started). */
int qmp_peers_emit(QmpPeers *p, size_t index, const char *name, const char *data_json);
/* QEMU exits: peer `index` closes its clients and its listener (its path
 * is unlinked) and answers no more.  Returns once done. */
int qmp_peers_kill(QmpPeers *p, size_t index);
void qmp_peers_free(QmpPeers *p);
