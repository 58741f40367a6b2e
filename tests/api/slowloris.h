/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/api/slowloris.h - what test-api-limits.c and bench-api-slowloris.c
 * share: vmmgr/api/api.c on a real UNIX socket, driven by a thread that runs
 * the loop the way vmmgrd does (poll on api_get_fd() with
 * api_get_timeout_ms(), then api_dispatch()), a fake service that answers
 * GET /v1/host, and raw clients that hold connections half-open.
 *
 * Everything here is static inline: include it from one file per program.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmmgr/api/api.h"

/* The first half of a request: the headers never end. */
#define SL_HALF_REQUEST "GET /v1/host HTTP/1.1\r\nHost: x\r\n"
#define SL_FULL_REQUEST "GET /v1/host HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

static inline uint64_t sl_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- the server ------------------------------------------------------------ */

typedef struct SlServer {
        char dir[64];
        char sock[128];
        Api *api;
        pthread_t thread;
        int stop_fd;
        unsigned host_calls; /* atomic */
} SlServer;

static inline int sl_host_info(void *ctx, char **ret, ServiceError *err) {
        SlServer *s = ctx;

        (void) err;
        __atomic_add_fetch(&s->host_calls, 1, __ATOMIC_SEQ_CST);
        *ret = strdup("{\"cgroup_mode\":\"unified\"}");
        return *ret ? 0 : -ENOMEM;
}

static const ServiceOps sl_ops = { .host_info = sl_host_info };

static inline void *sl_loop(void *arg) {
        SlServer *s = arg;

        for (;;) {
                struct pollfd p[2] = { { .fd = api_get_fd(s->api), .events = POLLIN },
                                       { .fd = s->stop_fd, .events = POLLIN } };

                if (poll(p, 2, api_get_timeout_ms(s->api)) < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                (void) api_dispatch(s->api);
        }
        return NULL;
}

/* Starts an Api on a fresh socket with `cfg` (unix_path is filled in) and
 * its loop thread.  Negative errno with the reason in msg. */
static inline int sl_server_start(SlServer *s, const ApiConfig *cfg, char *msg, size_t size) {
        ApiConfig c = *cfg;
        ApiError err = {};
        int r;

        *s = (SlServer) { .stop_fd = -1 };
        snprintf(s->dir, sizeof s->dir, "/tmp/vmmgr-test-limits-XXXXXX");
        if (!mkdtemp(s->dir)) {
                snprintf(msg, size, "mkdtemp: %s", strerror(errno));
                return -errno;
        }
        snprintf(s->sock, sizeof s->sock, "%s/api.sock", s->dir);
        c.unix_path = s->sock;
        r = api_new(&c, &sl_ops, s, &s->api, &err);
        if (r < 0) {
                snprintf(msg, size, "api_new: %s (%s)", strerror(-r), err.message);
                rmdir(s->dir);
                return r;
        }
        s->stop_fd = eventfd(0, EFD_CLOEXEC);
        if (s->stop_fd < 0 || pthread_create(&s->thread, NULL, sl_loop, s) != 0) {
                snprintf(msg, size, "cannot start the loop thread");
                api_free(s->api);
                return -EIO;
        }
        return 0;
}

static inline void sl_server_stop(SlServer *s) {
        uint64_t one = 1;

        if (write(s->stop_fd, &one, sizeof one) == (ssize_t) sizeof one)
                pthread_join(s->thread, NULL);
        api_free(s->api); /* removes the socket */
        close(s->stop_fd);
        rmdir(s->dir);
}

/* ---- clients ------------------------------------------------------------------ */

/* At least `want` descriptors (soft limit raised towards the hard one);
 * false when the hard limit is lower. */
static inline bool sl_want_fds(rlim_t want) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return false;
        if (rl.rlim_cur >= want)
                return true;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
                return false;
        rl.rlim_cur = want;
        return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static inline int sl_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/* Connects and sends half a request; the fd, or negative errno. */
static inline int sl_half_open(const char *path) {
        int fd = sl_connect(path);

        if (fd < 0)
                return fd;
        if (send(fd, SL_HALF_REQUEST, strlen(SL_HALF_REQUEST), MSG_NOSIGNAL) != (ssize_t) strlen(SL_HALF_REQUEST)) {
                close(fd);
                return -EIO;
        }
        return fd;
}

/* The server has closed fd (EOF or reset; nothing else is expected on a
 * half-open connection), waiting up to timeout_ms. */
static inline bool sl_closed_by_server(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
        char buf[512];

        if (poll(&p, 1, timeout_ms) <= 0)
                return false;
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        return true;
                if (n < 0)
                        return false;
        }
}

typedef struct SlReply {
        int status;           /* 0: none before EOF / timeout */
        uint64_t usec;        /* connect to the first byte of the answer */
        size_t sent;          /* bytes of the request written before the answer */
        char head[256];       /* the start of the answer */
} SlReply;

/* Sends `len` bytes of `req` on a new connection, reading meanwhile:
 * stops sending as soon as an answer starts (the server may answer before
 * the request is complete).  0, or negative errno (-ETIMEDOUT: no answer
 * within timeout_ms; -ECONNRESET: closed without one). */
static inline int sl_request(const char *path, const char *req, size_t len, int timeout_ms, SlReply *ret) {
        uint64_t start = sl_now_usec(), deadline = start + (uint64_t) timeout_ms * 1000u;
        size_t got = 0;
        int fd, r = -ETIMEDOUT;

        *ret = (SlReply) {};
        fd = sl_connect(path);
        if (fd < 0)
                return fd;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                close(fd);
                return -errno;
        }
        for (;;) {
                uint64_t now = sl_now_usec();
                struct pollfd p = { .fd = fd, .events = POLLIN | (got == 0 && ret->sent < len ? POLLOUT : 0) };

                if (now >= deadline)
                        break;
                if (poll(&p, 1, (int) ((deadline - now + 999) / 1000)) < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (p.revents & POLLOUT) {
                        ssize_t n = send(fd, req + ret->sent, len - ret->sent, MSG_NOSIGNAL | MSG_DONTWAIT);

                        if (n > 0)
                                ret->sent += (size_t) n;
                        /* EPIPE: the server answered and closed; read it. */
                }
                if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t n = recv(fd, ret->head + got, sizeof ret->head - 1 - got, MSG_DONTWAIT);

                        if (n > 0) {
                                if (got == 0)
                                        ret->usec = sl_now_usec() - start;
                                got += (size_t) n;
                                ret->head[got] = '\0';
                                if (got >= 12 || got == sizeof ret->head - 1)
                                        break;
                                continue;
                        }
                        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                                r = got ? 0 : -ECONNRESET;
                                break;
                        }
                }
        }
        close(fd);
        if (got >= 12 && strncmp(ret->head, "HTTP/1.", 7) == 0) {
                ret->status = atoi(ret->head + 9);
                return 0;
        }
        return got ? -EBADMSG : r;
}
