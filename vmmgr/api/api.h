/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api.h - the HTTP/JSON API (routes and bodies: docs/api.md,
 * docs/openapi.yaml) on libmicrohttpd, serving a ServiceOps.
 *
 * Transports:
 *   UNIX socket  mode 0660, group ApiConfig.allowed_gid; every request is
 *                checked against the peer's credentials (SO_PEERCRED and
 *                SO_PEERGROUPS): root, or a member of allowed_gid.
 *   TCP + TLS    optional, off unless tcp_address is set; mutual TLS: a
 *                client certificate signed by tls_ca_file is required.
 *
 * Limits (docs/vmmgrd.md, "API limits").  The API cannot be starved by
 * connections that never finish a request:
 *   - each listener holds at most connection_limit connections, and one
 *     peer (a uid on the UNIX socket, from SO_PEERCRED; an address on the
 *     TLS listener) at most per_peer_limit of them.  A new connection over
 *     either limit closes the oldest connection that is still waiting for
 *     its request (the peer's own, for the per-peer limit) -- a connection
 *     whose request is being answered is never closed for room; only when
 *     none waits is the new connection closed instead.  A normal request
 *     is therefore answered however many half-open connections are open.
 *   - a connection must deliver a whole request within timeout_sec of
 *     connecting or of its previous answer (trickling bytes does not
 *     extend it), and one silent for timeout_sec is closed.
 *   - request line and headers over about max_header_bytes: 431 at once
 *     (414 for a request line alone that long); a body declared over
 *     max_body_bytes: 413 before it is read.
 * Each connection is one file descriptor: api_new() lowers
 * connection_limit to fit half of RLIMIT_NOFILE's soft limit (the other
 * half is left to the caller); api_get_limits() says what is in force.
 *
 * Listening sockets given (socket activation, docs/vmmgrd.md "Upgrades
 * without refusing a request").  ApiConfig.unix_fd and tcp_fd hand
 * api_new() a socket that already listens (systemd's, or one kept in its
 * file-descriptor store) to serve instead of binding one: it is owned by
 * the API from api_new() on (closed on failure too), its path is never
 * unlinked, and nothing checks that it matches unix_path or tcp_address
 * (the caller does).  api_quiesce() stops accepting without closing the
 * listeners: connections that arrive meanwhile wait in the kernel's
 * backlog for whoever else holds the socket (the next vmmgrd).
 *
 * Event loop.  No thread of its own: the owner's loop (sd-event in vmmgrd)
 * watches api_get_fd() for EPOLLIN, arms a timer for api_get_timeout_ms()
 * and calls api_dispatch() when either fires.  Service operations run in
 * that thread, inside api_dispatch().  Re-read the timeout after every
 * dispatch: it may become 0 (more buffered work) or -1 (nothing pending).
 *
 * Nothing here logs errors it returns; libmicrohttpd's own diagnostics go
 * to log_debug().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmmgr/api/service.h"

#define API_GID_ROOT_ONLY ((gid_t) -1)
#define API_BODY_MAX_DEFAULT (64u * 1024u)
#define API_CONNECTIONS_DEFAULT 1024u    /* per listener */
#define API_PER_PEER_DEFAULT 64u
#define API_TIMEOUT_SEC_DEFAULT 10u
#define API_HEADER_MAX_DEFAULT (32u * 1024u) /* libmicrohttpd's own default pool */
#define API_HEADER_MAX_MIN 4096u

typedef struct ApiConfig {
        const char *unix_path;   /* NULL: no UNIX listener */
        /* > 0: a listening AF_UNIX stream socket to serve instead of binding
         * unix_path (which then only names it in messages); 0: bind.
         * Passed descriptors start at 3 (SD_LISTEN_FDS_START). */
        int unix_fd;
        gid_t allowed_gid;       /* API_GID_ROOT_ONLY: only uid 0 */
        const char *tcp_address; /* numeric IPv4/IPv6 address; NULL: no TCP listener */
        uint16_t tcp_port;       /* 0: any free port (see api_get_tcp_port()) */
        int tcp_fd;              /* > 0: a listening TCP socket to serve TLS on instead of binding; 0: bind */
        const char *tls_cert_file, *tls_key_file, *tls_ca_file; /* PEM; required with tcp_address */
        /* Limits (see above); 0 takes the default. */
        size_t max_body_bytes;           /* 0: API_BODY_MAX_DEFAULT */
        size_t max_header_bytes;         /* 0: API_HEADER_MAX_DEFAULT; at least API_HEADER_MAX_MIN */
        unsigned connection_limit;       /* per listener; 0: API_CONNECTIONS_DEFAULT */
        unsigned per_peer_limit;         /* per uid / address; 0: API_PER_PEER_DEFAULT; at most connection_limit */
        unsigned connection_timeout_sec; /* whole request, and idle; 0: API_TIMEOUT_SEC_DEFAULT */
} ApiConfig;

/* The limits in force (after defaults, clamping and the fd limit). */
typedef struct ApiLimits {
        unsigned connection_limit; /* per listener */
        unsigned per_peer_limit;
        unsigned timeout_sec;
        size_t max_header_bytes;
        size_t max_body_bytes;
} ApiLimits;

typedef struct ApiError {
        char message[256];
} ApiError;

typedef struct Api Api;

/* Binds the listeners and starts serving (from api_dispatch()).  -EADDRINUSE
 * when another process listens on unix_path; -EEXIST when unix_path exists
 * and is not a socket (it is never removed); -EINVAL for an incomplete TLS
 * configuration; errors reading or parsing the TLS files name the file. */
int api_new(const ApiConfig *cfg, const ServiceOps *ops, void *ops_ctx, Api **ret, ApiError *err);
/* Closes the listeners and every connection; removes the UNIX socket it
 * bound (never one it was given: ApiConfig.unix_fd). */
Api *api_free(Api *api);
static inline void api_freep(Api **a) {
        if (*a)
                api_free(*a);
}
#define _cleanup_api_ __attribute__((cleanup(api_freep)))

/* One fd to watch for EPOLLIN (an epoll fd over both listeners). */
int api_get_fd(Api *api);
/* Milliseconds until api_dispatch() is due even without input; -1: none. */
int api_get_timeout_ms(Api *api);
/* Accepts, reads, answers; never blocks.  Negative errno if libmicrohttpd
 * reports an internal failure (the loop should log and go on). */
int api_dispatch(Api *api);
/* The bound TCP port (useful with tcp_port 0); 0 without a TCP listener. */
uint16_t api_get_tcp_port(const Api *api);
/* The TLS listener's socket (still the API's: to hand a copy to systemd's
 * file-descriptor store); -EBADF without one or after api_quiesce(). */
int api_get_tcp_fd(const Api *api);

/* Graceful stop, before api_free(): stops accepting on both listeners
 * and leaves their sockets listening (closed by api_free(); whoever else
 * holds them -- systemd -- keeps them open, so new connections queue in
 * the kernel for the next process, never refused).  Requests under way
 * finish and are answered, each answer from now on with "Connection:
 * close"; a connection that was accepted but has sent nothing yet is
 * still served if its request begins within a second (its client has one
 * on the way), else closed; a kept-alive connection idle after an answer,
 * with nothing received or buffered, is closed now, as the idle timeout
 * would (a client reconnects: to the next process).  Idempotent.  Keep calling api_dispatch() until
 * api_connections() is 0, or give up after a bound: api_free() then
 * closes the rest, whose requests were never handed to the service
 * (still arriving; or waiting for the service: those are the caller's
 * to answer first). */
void api_quiesce(Api *api);
bool api_is_quiesced(const Api *api);
/* Connections open now, both listeners, including those being closed. */
unsigned api_connections(const Api *api);
void api_get_limits(const Api *api, ApiLimits *ret);

/* ---- the route table, as data (tests enumerate it) ---------------------- */

typedef struct ApiRequest ApiRequest;
typedef int (*ApiHandler)(ApiRequest *req);

typedef struct ApiRoute {
        const char *method;  /* "GET", "POST", "PUT", "DELETE" */
        const char *pattern; /* "/v1/vms/{uuid}/credits"; "{uuid}" matches one segment */
        bool has_body;       /* takes a JSON object body */
        const char *const *query; /* accepted query parameters, NULL-terminated; NULL: none */
        ApiHandler handler;
} ApiRoute;

size_t api_routes(const ApiRoute **ret);

/* ---- request statistics ---------------------------------------------------- */

/* Upper bounds of the latency histogram, in microseconds (+Inf implied). */
#define API_LATENCY_BUCKETS 12
extern const uint64_t api_latency_bounds_usec[API_LATENCY_BUCKETS];
#define API_STATUS_MAX 600

typedef struct ApiStats {
        uint64_t requests;                    /* completed */
        uint64_t by_status[API_STATUS_MAX];   /* completed, by status code */
        uint64_t denied;                      /* 401/403 from the transport checks */
        uint64_t latency_bucket[API_LATENCY_BUCKETS + 1]; /* not cumulative; last: +Inf */
        uint64_t latency_sum_usec;
        uint64_t connections_open;     /* now, both listeners */
        uint64_t closed_for_room;      /* waiting connections closed for a new one (a limit) */
        uint64_t refused;              /* new connections closed: over a limit, nothing waiting */
        uint64_t closed_late;          /* no whole request within timeout_sec */
} ApiStats;

/* A copy of the counters (call from the thread that calls api_dispatch()). */
void api_get_stats(const Api *api, ApiStats *ret);
/* The counters as Prometheus text (families vmmgr_http_*); malloc'd.
 * GET /metrics serves ServiceOps.metrics as it is: the daemon appends this
 * text to its own there. */
int api_stats_to_prometheus(const ApiStats *s, char **ret);
