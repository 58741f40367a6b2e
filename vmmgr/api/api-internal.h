/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/api-internal.h - private to vmmgr/api: the server's objects
 * and the helpers its three parts share --
 *   request.c  replies and request-body validation
 *   routes.c   the route table and the handlers
 *   server.c   transport checks, connection limits, libmicrohttpd's
 *              callbacks, statistics, listeners, the Api object
 */
#pragma once
#include "vmmgr/api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "vmmgr/api/json-io.h"

#define JSON_DEPTH_MAX 8          /* our bodies nest two levels; 8 leaves room, not a stack */
#define EVENTS_LIMIT_DEFAULT 100u
#define EVENTS_LIMIT_MAX 1000u
/* Once over the cap, the rest of a body is read and dropped (so the client
 * still gets its 413) -- but only up to this many times the cap; beyond it
 * the connection is closed. */
#define DISCARD_FACTOR 16u
/* libmicrohttpd's own limits (total, and per address on TLS) sit this far
 * above ours: connections we shut down still count there until its next
 * round closes them, and one round accepts up to 11 new ones. */
#define CLOSING_SLACK 32u
#define CONNECTIONS_MIN 4u
/* After api_quiesce(), how long a connection that has not begun a request
 * (accepted, nothing received) is still waited for. */
#define QUIESCE_GRACE_USEC (1 * USEC_PER_SEC)


struct Api {
        const ServiceOps *ops;
        void *ops_ctx;
        struct MHD_Daemon *unix_daemon, *tls_daemon;
        int epoll_fd;
        /* Readable (through epoll_fd) when a suspended request was resumed:
         * libmicrohttpd in external mode needs an MHD_run() to notice. */
        int wake_fd;
        char *unix_path;
        bool unix_given;  /* ApiConfig.unix_fd: not ours to unlink */
        /* api_quiesce(): no more accepting; the listen sockets
         * libmicrohttpd gave back, closed by api_free(). */
        bool quiesced;
        uint64_t quiesced_usec;
        int unix_quiesced_fd, tcp_quiesced_fd;
        gid_t allowed_gid;
        uint16_t tcp_port;
        size_t max_body, max_header;
        unsigned connection_limit, per_peer_limit, timeout_sec;
        /* libmicrohttpd keeps pointers to the PEM texts. */
        char *tls_cert, *tls_key, *tls_ca;
        struct Listener *unix_listener, *tls_listener;
        ApiStats stats;
};

typedef enum Transport {
        TRANSPORT_UNIX,
        TRANSPORT_TLS,
} Transport;

typedef struct Conn Conn;

/* One per libmicrohttpd daemon: the access handler learns its transport. */
typedef struct Listener {
        Api *api;
        Transport transport;
        Conn *conns;               /* every connection libmicrohttpd holds */
        Conn *wait_head, *wait_tail; /* those waiting for a request, oldest first */
        unsigned live;             /* connections not shut down by us */
} Listener;

/* Who is on the other end: a uid (UNIX socket) or an address (TLS). */
typedef struct Peer {
        int family; /* AF_UNIX, AF_INET, AF_INET6; 0: unknown */
        uid_t uid;
        uint8_t addr[16];
} Peer;

/* One accepted connection (libmicrohttpd's socket context). */
struct Conn {
        Listener *l;
        int fd;
        Peer peer;
        uint64_t since_usec; /* waiting for a request since: accepted, or the previous answer */
        bool waiting;        /* in the wait list: may be closed for room or when late */
        bool closing;        /* shut down by us; libmicrohttpd has yet to close it */
        bool started;        /* a request line came in and is not answered yet */
        bool answered_once;  /* a request was answered: kept alive since */
        Conn *prev, *next;   /* Listener.conns */
        Conn *wait_prev, *wait_next;
};

struct ApiRequest {
        Api *api;
        struct MHD_Connection *conn;
        const ApiRoute *route;
        VmId id; /* the {uuid} of the path, when the route has one */
        uint64_t start_usec;
        char *body;
        size_t body_len, discarded;
        bool too_big;
        struct json_object *json; /* the parsed body */
        /* The answer, queued by the access handler after the handler ran. */
        unsigned status;
        char *reply;              /* malloc'd */
        const char *content_type; /* static */
        char header_value[64]; /* Location (201) or Allow (405) */
        bool queued;
        bool waiting; /* suspended until the service answers */
        bool resumed; /* the service answered: queue the reply */
        bool closes;  /* answered with "Connection: close" (api_quiesce()) */
};


/* ---- shared between request.c, routes.c and server.c --------------------- */

/* now_usec() is common/clock.h's monotonic clock. */
/* request.c */
char *mfree_body(char *p);
void reply_text(ApiRequest *req, unsigned status, const char *content_type, char *text);
int reply_json(ApiRequest *req, unsigned status, struct json_object *o);
int reply_error(ApiRequest *req, unsigned status, const char *field, const char *fmt, ...) _printf_(4, 5);
unsigned service_status(int r);
int reply_service_error(ApiRequest *req, int r, ServiceError *err);
bool check_keys(ApiRequest *req, struct json_object *o, const char *const *allowed, const char *prefix);
bool get_string(ApiRequest *req, struct json_object *o, const char *key, const char *field, size_t max_len,
                       const char **ret);
bool get_int(ApiRequest *req, struct json_object *o, const char *key, const char *field, int64_t min,
                    int64_t max, bool *ret_present, int64_t *ret);
bool get_baseline(ApiRequest *req, struct json_object *o, const char *key, const char *field,
                         bool *ret_present, uint32_t *ret_ppm);
bool get_mode(ApiRequest *req, struct json_object *o, const char *key, const char *field, bool *ret_present,
                     CreditMode *ret);
bool is_class_name(const char *s);
bool get_class(ApiRequest *req, struct json_object *o, const char **ret);
bool get_vm_id(ApiRequest *req, struct json_object *o, const char *key, bool required, VmId *ret,
                      bool *ret_present);
/* metrics.c: GET /metrics's text from the service's values and ours. */
int api_metrics_text(const ServiceMetrics *m, const ApiStats *s, char **ret);

/* routes.c: finds the route of a request (or answers 404/405/400). */
bool route_request(ApiRequest *req, const char *url, const char *method);
