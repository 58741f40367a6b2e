/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-listen.c - the API's listening sockets from systemd:
 * socket activation and the file-descriptor store (daemon-listen.h).
 */
#include "vmmgr/daemon/daemon-listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"

static bool is_listening_stream(int fd, int *ret_family) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int type = 0, listening = 0;
        socklen_t l1 = sizeof type, l2 = sizeof listening;

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) < 0 ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0 || type != SOCK_STREAM || !listening)
                return false;
        *ret_family = ss.ss_family;
        return true;
}

static void unix_path_of(int fd, char *buf, size_t size) {
        struct sockaddr_un sa;
        socklen_t len = sizeof sa;

        buf[0] = '\0';
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0 || len <= offsetof(struct sockaddr_un, sun_path) ||
            sa.sun_path[0] == '\0')
                return; /* unnamed or abstract */
        snprintf(buf, size, "%.*s", (int) (len - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
}

static bool same_socket(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int daemon_listen_fds(DaemonListenFds *ret) {
        char **names = NULL;
        int n, r = 0;

        *ret = (DaemonListenFds) { .api_fd = -EBADF, .tls_fd = -EBADF };
        n = sd_listen_fds_with_names(true, &names);
        if (n < 0) {
                log_warning_errno(n, "Cannot read the sockets systemd passed (LISTEN_FDS): %m; binding instead");
                return 0;
        }
        ret->n_passed = n;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i, family = AF_UNSPEC;
                const char *name = names && names[i] ? names[i] : "unknown";
                bool listening = is_listening_stream(fd, &family);
                bool is_unix = listening && family == AF_UNIX;
                bool is_tcp = listening && (family == AF_INET || family == AF_INET6);

                /* The kind decides; a name only has to agree with it. */
                if (is_unix && strcmp(name, "tls") != 0 && ret->api_fd < 0) {
                        ret->api_fd = fd;
                        unix_path_of(fd, ret->api_path, sizeof ret->api_path);
                        log_debug("API socket from systemd: descriptor %d \"%s\" on %s", fd, name,
                                  ret->api_path[0] ? ret->api_path : "(unnamed)");
                        continue;
                }
                if (is_tcp && ret->tls_fd < 0) {
                        ret->tls_fd = fd;
                        log_debug("TLS listener from systemd: descriptor %d \"%s\"", fd, name);
                        continue;
                }
                /* The same socket twice (a socket unit's and a stored copy)
                 * is one listener. */
                if ((ret->tls_fd >= 0 && same_socket(fd, ret->tls_fd)) ||
                    (ret->api_fd >= 0 && same_socket(fd, ret->api_fd))) {
                        close(fd);
                        continue;
                }
                if (!listening && strcmp(name, "api") == 0) {
                        r = log_error_errno(-ENOTSOCK,
                                            "systemd passed descriptor %d named \"api\" that is not a listening "
                                            "stream socket: fix ListenStream= in vmmgrd.socket",
                                            fd);
                        close(fd);
                        continue;
                }
                log_warning("systemd passed descriptor %d \"%s\" that vmmgrd has no use for (%s): closing it", fd,
                            name,
                            !listening ? "not a listening stream socket"
                            : is_unix && strcmp(name, "tls") == 0 ? "a UNIX socket named \"tls\""
                            : is_unix ? "a second API socket"
                            : is_tcp ? "a second TLS listener"
                                     : "neither AF_UNIX nor TCP");
                close(fd);
        }
        if (names) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
        }
        if (r < 0) {
                if (ret->api_fd >= 0)
                        close(ret->api_fd);
                if (ret->tls_fd >= 0)
                        close(ret->tls_fd);
                ret->api_fd = ret->tls_fd = -EBADF;
        }
        return r;
}

bool daemon_listen_tls_matches(int fd, const char *address, uint16_t port) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        struct in6_addr want6;
        struct in_addr want4;
        char have[INET6_ADDRSTRLEN] = "?";
        uint16_t have_port = 0;
        bool match = false;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return false;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *) &ss;

                have_port = ntohs(s4->sin_port);
                inet_ntop(AF_INET, &s4->sin_addr, have, sizeof have);
                match = inet_pton(AF_INET, address, &want4) == 1 && want4.s_addr == s4->sin_addr.s_addr;
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) &ss;

                have_port = ntohs(s6->sin6_port);
                inet_ntop(AF_INET6, &s6->sin6_addr, have, sizeof have);
                match = inet_pton(AF_INET6, address, &want6) == 1 &&
                        memcmp(&want6, &s6->sin6_addr, sizeof want6) == 0;
        }
        match = match && have_port == port;
        if (!match)
                log_warning("The TLS listener systemd passed is on %s%s%s port %u, but [api.tls] listen is %s port %u: "
                            "closing it and listening where the configuration says",
                            ss.ss_family == AF_INET6 ? "[" : "", have, ss.ss_family == AF_INET6 ? "]" : "",
                            (unsigned) have_port, address, (unsigned) port);
        return match;
}

/* Under systemd, and unless systemd said (254+: $FDSTORE) the store is off. */
static bool fd_store_wanted(void) {
        const char *max = getenv("FDSTORE");

        if (!getenv("NOTIFY_SOCKET"))
                return false;
        return !max || strtoul(max, NULL, 10) > 0;
}

void daemon_listen_unstore_tls(void) {
        int r;

        if (!fd_store_wanted())
                return;
        r = sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=tls");
        if (r < 0)
                log_debug_errno(r, "FDSTOREREMOVE of the TLS listener failed: %m");
}

void daemon_listen_store_tls(int fd, bool replace) {
        int r;

        if (fd < 0 || !fd_store_wanted())
                return;
        if (replace)
                daemon_listen_unstore_tls();
        r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=tls", &fd, 1);
        if (r <= 0)
                log_debug_errno(r, "The TLS listener was not handed to systemd's fd store: %m");
        else
                log_debug("The TLS listener is in systemd's fd store: it outlives this process");
}
