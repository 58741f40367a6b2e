/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-listen.h - the API's listening sockets from systemd
 * (docs/vmmgrd.md, "Upgrades without refusing a request"):
 *
 *   socket activation  contrib/vmmgrd.socket holds the UNIX socket
 *                      (FileDescriptorName=api) and may hold a TCP one
 *                      for TLS (FileDescriptorName=tls); vmmgrd serves
 *                      them instead of binding, so they outlive it.
 *   fd store           a TLS listener vmmgrd bound itself (from
 *                      [api.tls] listen) is handed to systemd
 *                      (FDSTORE=1, FDNAME=tls; FileDescriptorStoreMax= in
 *                      contrib/vmmgrd.service) and comes back, still
 *                      listening, in LISTEN_FDS at the next start.
 *
 * Without LISTEN_FDS nothing here does anything: vmmgrd binds as before.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct DaemonListenFds {
        int api_fd;          /* a listening AF_UNIX stream socket; -EBADF: none passed */
        char api_path[108];  /* its path ("" when unnamed or abstract) */
        int tls_fd;          /* a listening TCP socket; -EBADF: none passed */
        int n_passed;        /* how many descriptors systemd passed */
} DaemonListenFds;

/* Takes the descriptors systemd passed (sd_listen_fds_with_names(); the
 * LISTEN_* variables are unset), sorted by kind: the first listening
 * AF_UNIX stream socket is the API's (unless named "tls"), the first
 * listening TCP socket the TLS listener (any name: a socket unit's
 * FileDescriptorName= names all its sockets alike); a second copy of
 * either is dropped quietly.  A descriptor named "api" that is no
 * listening stream socket is an error (-ENOTSOCK, logged: the unit files
 * are wrong); anything else unusable is closed with a warning. */
int daemon_listen_fds(DaemonListenFds *ret);

/* Whether a passed TLS listener is bound where [api.tls] listen says
 * (numeric address and port); warns, naming both, when it is not. */
bool daemon_listen_tls_matches(int fd, const char *address, uint16_t port);

/* Hands the TLS listener to systemd's fd store (FDSTORE=1, FDNAME=tls),
 * first dropping one stored before (FDSTOREREMOVE=1) when `replace`:
 * only under systemd ($NOTIFY_SOCKET) and unless $FDSTORE (systemd 254
 * and later) says the store holds nothing.  Failures are logged at debug
 * level: the listener then just does not outlive this process. */
void daemon_listen_store_tls(int fd, bool replace);

/* Drops the stored TLS listener (FDSTOREREMOVE=1, FDNAME=tls): the
 * configuration no longer has one where it listens. */
void daemon_listen_unstore_tls(void);
