/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/api/server.c - the HTTP/JSON API on libmicrohttpd: transport,
 * connections and their limits, the request lifecycle, listeners.
 *
 * A request goes through three gates before any service operation runs:
 *   1. the transport: peer credentials (UNIX) or a verified client
 *      certificate (TLS) -> 403 / 401;
 *   2. the route table: unknown path -> 404, known path with another
 *      method -> 405 + Allow, malformed {uuid} -> 400, body too big -> 413;
 *   3. the body: parsed with json-c (strict, depth-limited) and checked in
 *      full -- every key known, every type and range right -- before the
 *      service sees it, so a rejected request changes nothing.
 *
 * Before all of them, connections are counted (api.h, "Limits"): every
 * connection libmicrohttpd accepts is tracked from its connection
 * notification, and one that waits for its request can be closed to make
 * room or when its time is up.  Closing is shutdown(2) on its socket: the
 * descriptor stays libmicrohttpd's, which sees the hang-up on its next
 * round and closes the connection itself.
 */
#include "vmmgr/api/api-internal.h"

const uint64_t api_latency_bounds_usec[API_LATENCY_BUCKETS] = {
        250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

/* ---- transport checks --------------------------------------------------------------- */

static bool gid_in(gid_t gid, const gid_t *groups, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* The peer's supplementary groups as the kernel recorded them at connect()
 * (SO_PEERGROUPS, Linux 4.13): no NSS lookup in the event loop, and no
 * race with the peer changing its groups afterwards.  Older kernels fall
 * back to the groups the user database gives the uid. */
static int peer_in_group(int fd, const struct ucred *uc, gid_t gid) {
        gid_t small[64];
        _cleanup_free_ gid_t *big = NULL;
        socklen_t len = sizeof small;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, small, &len) == 0)
                return gid_in(gid, small, len / sizeof(gid_t));
        if (errno == ERANGE) {
                big = malloc(len);
                if (!big)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) < 0)
                        return negative_errno();
                return gid_in(gid, big, len / sizeof(gid_t));
        }
        if (errno != ENOPROTOOPT)
                return negative_errno();

        {
                struct passwd pw, *res = NULL;
                char buf[4096];
                int n = 256;

                if (getpwuid_r(uc->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
                        return false;
                big = calloc((size_t) n, sizeof(gid_t));
                if (!big)
                        return -ENOMEM;
                if (getgrouplist(pw.pw_name, pw.pw_gid, big, &n) < 0)
                        return false;
                return gid_in(gid, big, (size_t) n);
        }
}

/* 0 when allowed, else the status to answer (message in `msg`). */
static unsigned check_unix_peer(Api *api, struct MHD_Connection *conn, char *msg, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred uc;
        socklen_t len = sizeof uc;
        int r;

        if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                snprintf(msg, size, "cannot read the peer's credentials");
                return 403;
        }
        if (uc.uid == 0)
                return 0;
        if (api->allowed_gid != API_GID_ROOT_ONLY) {
                if (uc.gid == api->allowed_gid)
                        return 0;
                r = peer_in_group(ci->connect_fd, &uc, api->allowed_gid);
                if (r > 0)
                        return 0;
        }
        if (api->allowed_gid == API_GID_ROOT_ONLY)
                snprintf(msg, size, "permission denied: uid %u is not root", (unsigned) uc.uid);
        else
                snprintf(msg, size, "permission denied: uid %u is neither root nor in group %u", (unsigned) uc.uid,
                         (unsigned) api->allowed_gid);
        return 403;
}

static unsigned check_tls_peer(struct MHD_Connection *conn, char *msg, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t session;
        const gnutls_datum_t *peers;
        unsigned n = 0, status = 0;

        if (!ci || !ci->tls_session) {
                snprintf(msg, size, "no TLS session");
                return 403;
        }
        session = (gnutls_session_t) ci->tls_session;
        peers = gnutls_certificate_get_peers(session, &n);
        if (!peers || n == 0) {
                snprintf(msg, size, "a client certificate is required");
                return 401;
        }
        /* Chain to our CA, signature, validity dates, key usage; client
         * certificates carry no host name to check. */
        if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
                snprintf(msg, size, "client certificate not accepted (status 0x%x)", status);
                return 403;
        }
        return 0;
}

/* ---- connections: limits, per peer, time ------------------------------------------------ */

static void peer_of(const Listener *l, struct MHD_Connection *conn, int fd, Peer *ret) {
        const union MHD_ConnectionInfo *ci;

        *ret = (Peer) {};
        if (l->transport == TRANSPORT_UNIX) {
                struct ucred uc;
                socklen_t len = sizeof uc;

                /* Credentials that cannot be read: all such connections
                 * are one peer (family 0). */
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
                        ret->family = AF_UNIX;
                        ret->uid = uc.uid;
                }
                return;
        }
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!ci || !ci->client_addr)
                return;
        if (ci->client_addr->sa_family == AF_INET) {
                ret->family = AF_INET;
                memcpy(ret->addr, &((const struct sockaddr_in *) ci->client_addr)->sin_addr, 4);
        } else if (ci->client_addr->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) ci->client_addr)->sin6_addr;

                /* An IPv4 client of a dual-stack socket is that IPv4 address. */
                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        ret->family = AF_INET;
                        memcpy(ret->addr, a->s6_addr + 12, 4);
                } else {
                        ret->family = AF_INET6;
                        memcpy(ret->addr, a->s6_addr, 16);
                }
        }
}

static bool peer_equal(const Peer *a, const Peer *b) {
        return a->family == b->family && a->uid == b->uid && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static void wait_list_add(Listener *l, Conn *c) {
        c->wait_prev = l->wait_tail;
        c->wait_next = NULL;
        if (l->wait_tail)
                l->wait_tail->wait_next = c;
        else
                l->wait_head = c;
        l->wait_tail = c;
        c->waiting = true;
}

static void wait_list_remove(Listener *l, Conn *c) {
        if (!c->waiting)
                return;
        if (c->wait_prev)
                c->wait_prev->wait_next = c->wait_next;
        else
                l->wait_head = c->wait_next;
        if (c->wait_next)
                c->wait_next->wait_prev = c->wait_prev;
        else
                l->wait_tail = c->wait_prev;
        c->wait_prev = c->wait_next = NULL;
        c->waiting = false;
}

/* Ends a connection without an answer: its peer sees EOF, libmicrohttpd
 * sees the hang-up and closes it (and tells conn_closed()). */
static void conn_shut(Listener *l, Conn *c) {
        if (c->closing)
                return;
        wait_list_remove(l, c);
        c->closing = true;
        l->live--;
        (void) shutdown(c->fd, SHUT_RDWR);
}

/* The oldest connection waiting for its request; of `peer` only, unless NULL. */
static Conn *oldest_waiting(const Listener *l, const Peer *peer) {
        for (Conn *c = l->wait_head; c; c = c->wait_next)
                if (!peer || peer_equal(&c->peer, peer))
                        return c;
        return NULL;
}

static unsigned peer_count(const Listener *l, const Peer *peer) {
        unsigned n = 0;

        for (const Conn *c = l->conns; c; c = c->next)
                if (!c->closing && peer_equal(&c->peer, peer))
                        n++;
        return n;
}

/* Room for a new connection: over the peer's limit, its own oldest waiting
 * connection goes; over the total, the oldest waiting one.  False when
 * nothing waits (every connection is being answered). */
static bool make_room(Listener *l, const Peer *peer) {
        Api *api = l->api;
        Conn *old;

        if (peer_count(l, peer) >= api->per_peer_limit) {
                old = oldest_waiting(l, peer);
                if (!old)
                        return false;
                conn_shut(l, old);
                api->stats.closed_for_room++;
        }
        if (l->live >= api->connection_limit) {
                old = oldest_waiting(l, NULL);
                if (!old)
                        return false;
                conn_shut(l, old);
                api->stats.closed_for_room++;
        }
        return true;
}

static void conn_started(Listener *l, struct MHD_Connection *conn, void **socket_context) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        bool room;
        Conn *c;

        if (!ci)
                return; /* cannot happen: libmicrohttpd has just accepted it */
        c = calloc(1, sizeof *c);
        if (!c) {
                /* Untracked is unlimited: better no connection at all. */
                (void) shutdown(ci->connect_fd, SHUT_RDWR);
                return;
        }
        c->l = l;
        c->fd = ci->connect_fd;
        c->since_usec = now_usec();
        peer_of(l, conn, c->fd, &c->peer);
        /* Room first, so the counts are of the others. */
        room = make_room(l, &c->peer);
        c->next = l->conns;
        if (l->conns)
                l->conns->prev = c;
        l->conns = c;
        *socket_context = c;
        l->live++;
        if (!room) {
                l->api->stats.refused++;
                conn_shut(l, c);
                return;
        }
        wait_list_add(l, c);
}

static void conn_closed(Listener *l, void **socket_context) {
        Conn *c = *socket_context;

        if (!c)
                return;
        *socket_context = NULL;
        wait_list_remove(l, c);
        if (!c->closing)
                l->live--;
        if (c->prev)
                c->prev->next = c->next;
        else
                l->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        free(c);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        Listener *l = cls;

        if (code == MHD_CONNECTION_NOTIFY_STARTED)
                conn_started(l, conn, socket_context);
        else
                conn_closed(l, socket_context);
}

static Conn *conn_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return ci ? ci->socket_context : NULL;
}

/* The whole request is in (or answered early): no longer closed for room
 * or lateness; libmicrohttpd's idle timeout still applies. */
static void conn_busy(struct MHD_Connection *conn) {
        Conn *c = conn_of(conn);

        if (c)
                wait_list_remove(c->l, c);
}

/* Answered, and kept open for the next request: waiting again. */
static void conn_idle(struct MHD_Connection *conn) {
        Conn *c = conn_of(conn);

        if (!c || c->closing)
                return;
        wait_list_remove(c->l, c);
        c->since_usec = now_usec();
        wait_list_add(c->l, c);
}

/* After api_quiesce(): a kept-alive connection idle after an answer,
 * with no request begun and nothing buffered in the kernel, is closed
 * (the idle timeout would too; its client reconnects, to the next
 * process).  A connection that has never been answered is left to send
 * its request: its client is on the way with one. */
static void conn_quiesce(Listener *l, Conn *c) {
        int pending = 0;

        if (c->closing || c->started || !c->answered_once)
                return;
        if (ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0)
                return;
        conn_shut(l, c);
}

/* Shuts the connections whose time for a whole request is up. */
static void close_late(Listener *l, uint64_t now) {
        uint64_t limit = (uint64_t) l->api->timeout_sec * USEC_PER_SEC;

        while (l->wait_head && now - l->wait_head->since_usec >= limit) {
                conn_shut(l, l->wait_head);
                l->api->stats.closed_late++;
        }
        /* Stopping: a connection that has not begun a request within
         * QUIESCE_GRACE_USEC is not waited for (its client reconnects, to
         * the next process). */
        if (l->api->quiesced && now >= l->api->quiesced_usec + QUIESCE_GRACE_USEC)
                for (Conn *c = l->wait_head, *next; c; c = next) {
                        next = c->wait_next;
                        if (!c->started) {
                                conn_shut(l, c);
                                l->api->stats.closed_late++;
                        }
                }
}

/* Milliseconds until the oldest waiting connection is late; -1: none waits. */
static int late_in_ms(const Listener *l, uint64_t now) {
        uint64_t due;

        if (!l || !l->wait_head)
                return -1;
        due = l->wait_head->since_usec + (uint64_t) l->api->timeout_sec * USEC_PER_SEC;
        if (l->api->quiesced)
                due = MIN(due, l->api->quiesced_usec + QUIESCE_GRACE_USEC);
        if (due <= now)
                return 0;
        return (int) MIN((due - now + 999) / 1000, (uint64_t) INT_MAX);
}

/* ---- libmicrohttpd callbacks ----------------------------------------------------------- */

static void queue_reply(ApiRequest *req) {
        struct MHD_Response *resp;
        size_t len = req->reply ? strlen(req->reply) : 0;

        resp = MHD_create_response_from_buffer(len, req->reply, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return; /* the connection is closed; nothing else to do */
        req->reply = NULL;
        if (req->content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
        /* Stopping: the connection ends with this answer (libmicrohttpd
         * closes it once sent), the client's next request goes to the
         * next process. */
        if (req->api->quiesced && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES)
                req->closes = true;
        if (req->status == 405)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->header_value);
        else if (req->status == 201 && req->header_value[0])
                MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, req->header_value);
        if (MHD_queue_response(req->conn, req->status, resp) == MHD_YES)
                req->queued = true;
        MHD_destroy_response(resp);
}

static enum MHD_Result finish(ApiRequest *req) {
        conn_busy(req->conn);
        queue_reply(req);
        return req->queued ? MHD_YES : MHD_NO;
}

static bool parse_body(ApiRequest *req) {
        json_tokener *tok;
        enum json_tokener_error e;

        if (req->body_len == 0) {
                reply_error(req, 400, NULL, "a JSON object body is required");
                return false;
        }
        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok) {
                reply_error(req, 500, NULL, "out of memory");
                return false;
        }
        /* Strict: no trailing commas, comments, single quotes or garbage
         * after the value; strings must be UTF-8. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        req->json = json_tokener_parse_ex(tok, req->body, (int) req->body_len);
        e = json_tokener_get_error(tok);
        if (e == json_tokener_continue)
                e = json_tokener_error_parse_eof;
        if (!req->json || e != json_tokener_success || json_tokener_get_parse_end(tok) != req->body_len) {
                size_t at = json_tokener_get_parse_end(tok);

                json_tokener_free(tok);
                json_object_put(req->json);
                req->json = NULL;
                reply_error(req, 400, NULL, "invalid JSON at byte %zu: %s", at,
                            e != json_tokener_success ? json_tokener_error_desc(e) : "trailing data");
                return false;
        }
        json_tokener_free(tok);
        if (!json_object_is_type(req->json, json_type_object)) {
                reply_error(req, 400, NULL, "the body must be a JSON object");
                return false;
        }
        return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        Listener *l = cls;
        Api *api = l->api;
        ApiRequest *req = *req_cls;
        int r;

        (void) version;
        if (!req) {
                Conn *c = conn_of(conn);
                char msg[160];
                unsigned denied;
                const char *cl;
                uint64_t n;

                if (c && c->closing)
                        return MHD_NO; /* shut down for room or lateness: no answer */
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                req->api = api;
                req->conn = conn;
                req->start_usec = now_usec();
                *req_cls = req;

                denied = l->transport == TRANSPORT_UNIX ? check_unix_peer(api, conn, msg, sizeof msg)
                                                        : check_tls_peer(conn, msg, sizeof msg);
                if (denied) {
                        api->stats.denied++;
                        reply_error(req, denied, NULL, "%s", msg);
                        return finish(req);
                }
                if (!route_request(req, url, method))
                        return finish(req);
                /* A declared length over the cap is answered before any of
                 * the body is read. */
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && parse_u64(cl, &n) == 0 && n > api->max_body) {
                        reply_error(req, 413, NULL, "body over %zu bytes", api->max_body);
                        return finish(req);
                }
                return MHD_YES;
        }

        if (req->queued) { /* answered already; drop whatever still comes */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->resumed) /* a suspended request's answer is ready */
                return finish(req);

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;

                *upload_data_size = 0;
                if (req->too_big || n > api->max_body - req->body_len) {
                        /* Stop buffering; keep reading (and dropping) so the
                         * client can be told 413 at the end, within reason. */
                        req->too_big = true;
                        req->body = mfree_body(req->body);
                        req->discarded += n;
                        if (req->discarded / DISCARD_FACTOR > api->max_body)
                                return MHD_NO;
                        return MHD_YES;
                }
                if (!req->body) {
                        /* Allocate the cap once: bodies are small and this
                         * avoids reallocating on every chunk. */
                        req->body = malloc(api->max_body + 1);
                        if (!req->body)
                                return MHD_NO;
                }
                memcpy(req->body + req->body_len, upload_data, n);
                req->body_len += n;
                return MHD_YES;
        }

        /* The whole request is in. */
        conn_busy(conn);
        if (req->too_big) {
                reply_error(req, 413, NULL, "body over %zu bytes", api->max_body);
                return finish(req);
        }
        if (!req->route->has_body && req->body_len > 0) {
                reply_error(req, 400, NULL, "%s %s takes no body", req->route->method, req->route->pattern);
                return finish(req);
        }
        if (req->route->has_body && !parse_body(req))
                return finish(req);

        r = req->route->handler(req);
        if (r >= 0 && req->waiting)
                return MHD_YES;
        if (r < 0 || req->status == 0)
                reply_error(req, 500, NULL, "internal error: %s", strerror(r < 0 ? -r : EIO));
        return finish(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
        Listener *l = cls;
        ApiRequest *req = *req_cls;
        ApiStats *s = &l->api->stats;
        uint64_t latency;
        size_t b = 0;

        /* Kept open for the next request: its time starts again. */
        {
                Conn *c = conn_of(conn);

                if (c)
                        c->started = false;
                if (c && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                        c->answered_once = true;
                if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                        conn_idle(conn);
                /* Answered before api_quiesce() without "Connection: close":
                 * idle now, so closed (unless the next request is in). */
                if (c && l->api->quiesced && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !(req && req->closes))
                        conn_quiesce(l, c);
        }
        if (!req)
                return;
        *req_cls = NULL;
        if (req->queued) {
                latency = now_usec() - req->start_usec;
                s->requests++;
                if (req->status < API_STATUS_MAX)
                        s->by_status[req->status]++;
                while (b < API_LATENCY_BUCKETS && latency > api_latency_bounds_usec[b])
                        b++;
                s->latency_bucket[b]++;
                s->latency_sum_usec += latency;
        }
        json_object_put(req->json);
        free(req->body);
        free(req->reply);
        free(req);
}

/* The request line is in: a request has begun on this connection (it is
 * not closed as idle by api_quiesce()).  The value returned starts the
 * request's context: none yet (on_request() makes it). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
        Conn *c = conn_of(conn);

        (void) cls;
        (void) uri;
        if (c)
                c->started = true;
        return NULL;
}

/* libmicrohttpd's diagnostics (malformed requests, failed accepts) explain
 * client trouble and are nobody else's to report; they go to debug. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        size_t n;

        (void) cls;
        vsnprintf(buf, sizeof buf, fmt, ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        log_debug("microhttpd: %s", buf);
}

/* ---- statistics -------------------------------------------------------------------- */

void api_get_stats(const Api *api, ApiStats *ret) {
        *ret = api->stats;
        ret->connections_open = (api->unix_listener ? api->unix_listener->live : 0) +
                                (api->tls_listener ? api->tls_listener->live : 0);
}


/* ---- listeners ------------------------------------------------------------------------ */

static uint16_t sockaddr_port(const struct sockaddr_storage *ss) {
        return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *) ss)->sin_port
                                              : ((const struct sockaddr_in6 *) ss)->sin6_port);
}

static int unix_listen(const char *path, gid_t gid, int *ret_fd, ApiError *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (strlen(path) >= sizeof sa.sun_path) {
                set_error(err, "socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();

        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                _cleanup_close_ int probe = -EBADF;

                r = negative_errno();
                if (r != -EADDRINUSE) {
                        set_error(err, "cannot bind %s: %s", path, strerror(-r));
                        return r;
                }
                /* Something is there.  Only a socket nobody listens on (a
                 * previous vmmgrd that died) may be replaced. */
                if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                        set_error(err, "%s exists and is not a socket; not touching it", path);
                        return -EEXIST;
                }
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (probe < 0)
                        return negative_errno();
                if (connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0 || errno == EAGAIN) {
                        set_error(err, "another process listens on %s (is vmmgrd running?)", path);
                        return -EADDRINUSE;
                }
                if (errno != ECONNREFUSED) {
                        r = negative_errno();
                        set_error(err, "cannot probe the stale socket %s: %s", path, strerror(-r));
                        return r;
                }
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = negative_errno();
                        set_error(err, "cannot remove the stale socket %s: %s", path, strerror(-r));
                        return r;
                }
                if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        r = negative_errno();
                        set_error(err, "cannot bind %s: %s", path, strerror(-r));
                        return r;
                }
        }
        /* Permissions before listen(): until then a connect() is refused, so
         * nobody gets in through the umask's mode.  connect() needs write
         * access to the socket file, hence the group. */
        if (chmod(path, 0660) < 0 || (gid != API_GID_ROOT_ONLY && chown(path, (uid_t) -1, gid) < 0) ||
            listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                set_error(err, "cannot set up %s: %s", path, strerror(-r));
                (void) unlink(path);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int tcp_listen(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port, ApiError *err) {
        struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai = NULL;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        _cleanup_close_ int fd = -EBADF;
        int r, one = 1;

        r = getaddrinfo(address, NULL, &hints, &ai);
        if (r != 0) {
                set_error(err, "tcp_address \"%s\" is not a numeric IPv4 or IPv6 address", address);
                return -EINVAL;
        }
        if (ai->ai_family == AF_INET)
                ((struct sockaddr_in *) ai->ai_addr)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *) ai->ai_addr)->sin6_port = htons(port);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0 ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
                r = negative_errno();
                set_error(err, "cannot listen on %s port %u: %s", address, (unsigned) port, strerror(-r));
                freeaddrinfo(ai);
                return r;
        }
        freeaddrinfo(ai);
        *ret_port = sockaddr_port(&ss);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int read_pem(const char *path, const char *what, char **ret, ApiError *err) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r;

        if (!path) {
                set_error(err, "the TLS listener needs %s", what);
                return -EINVAL;
        }
        f = fopen(path, "re");
        if (!f) {
                r = negative_errno();
                set_error(err, "cannot open %s %s: %s", what, path, strerror(-r));
                return r;
        }
        buf = malloc(1024 * 1024 + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, 1024 * 1024 + 1, f);
        if (ferror(f)) {
                set_error(err, "cannot read %s %s", what, path);
                return -EIO;
        }
        if (n == 0 || n > 1024 * 1024 || memchr(buf, '\0', n)) {
                set_error(err, "%s %s is not a PEM file (empty, binary or over 1 MiB)", what, path);
                return -EBADMSG;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Loads the PEM texts the way libmicrohttpd will, to turn a bad file into
 * an error naming it (libmicrohttpd would just fail to start). */
static int check_tls_files(Api *api, const ApiConfig *cfg, ApiError *err) {
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_datum_t cert, key, ca;
        int r;

        r = read_pem(cfg->tls_cert_file, "tls_cert_file", &api->tls_cert, err);
        if (r >= 0)
                r = read_pem(cfg->tls_key_file, "tls_key_file", &api->tls_key, err);
        if (r >= 0)
                r = read_pem(cfg->tls_ca_file, "tls_ca_file (the CA of client certificates)", &api->tls_ca, err);
        if (r < 0)
                return r;
        if (gnutls_certificate_allocate_credentials(&cred) < 0)
                return -ENOMEM;
        cert = (gnutls_datum_t) { (unsigned char *) api->tls_cert, (unsigned) strlen(api->tls_cert) };
        key = (gnutls_datum_t) { (unsigned char *) api->tls_key, (unsigned) strlen(api->tls_key) };
        ca = (gnutls_datum_t) { (unsigned char *) api->tls_ca, (unsigned) strlen(api->tls_ca) };
        r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
        if (r < 0) {
                set_error(err, "%s / %s: not a matching certificate and key: %s", cfg->tls_cert_file,
                          cfg->tls_key_file, gnutls_strerror(r));
                r = -EBADMSG;
        } else {
                r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
                if (r <= 0) {
                        set_error(err, "%s: no CA certificate: %s", cfg->tls_ca_file,
                                  r < 0 ? gnutls_strerror(r) : "none found");
                        r = -EBADMSG;
                } else
                        r = 0;
        }
        gnutls_certificate_free_credentials(cred);
        return r;
}

static int watch(Api *api, struct MHD_Daemon *d) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = d };

        if (!info || info->epoll_fd < 0)
                return -EIO;
        if (epoll_ctl(api->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0)
                return negative_errno();
        return 0;
}

/* libmicrohttpd's own limits back ours up (CLOSING_SLACK above them):
 * total connections, connections per address (TLS; on the UNIX socket
 * every peer has the same address, so the per-uid count is ours alone),
 * the idle timeout, and the connection's memory pool, which bounds the
 * request line and headers -- libmicrohttpd answers 431 (414 for the
 * request line alone) as soon as they outgrow it. */
static struct MHD_Daemon *start_daemon(Api *api, Listener *l, int fd) {
        /* Suspend/resume: a request that waits for QEMU (registration)
         * is parked without holding the loop. */
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        struct MHD_OptionItem common[] = {
                { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) on_mhd_log, NULL },
                { MHD_OPTION_LISTEN_SOCKET, fd, NULL },
                { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) on_completed, l },
                { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) on_connection, l },
                { MHD_OPTION_URI_LOG_CALLBACK, (intptr_t) on_uri, l },
                { MHD_OPTION_CONNECTION_LIMIT, (intptr_t) (api->connection_limit + CLOSING_SLACK), NULL },
                { MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t) api->timeout_sec, NULL },
                { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) api->max_header, NULL },
                { MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL },
                { MHD_OPTION_END, 0, NULL },
        };

        if (l->transport == TRANSPORT_TLS)
                return MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, l, MHD_OPTION_ARRAY, common,
                                        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                        (unsigned) (api->per_peer_limit + CLOSING_SLACK), MHD_OPTION_HTTPS_MEM_CERT,
                                        api->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, api->tls_key,
                                        MHD_OPTION_HTTPS_MEM_TRUST, api->tls_ca, MHD_OPTION_END);
        return MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_ARRAY, common, MHD_OPTION_END);
}

/* ---- the object ----------------------------------------------------------------------- */

/* Each connection is a descriptor, and libmicrohttpd may hold CLOSING_SLACK
 * more per listener while it closes those we shut down.  The API takes at
 * most half of RLIMIT_NOFILE's soft limit (vmmgrd raises it at start): the
 * other half is the caller's -- QMP sockets, cgroup files, the database. */
static unsigned fit_fd_limit(unsigned limit, unsigned listeners) {
        struct rlimit rl;
        rlim_t share;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return limit;
        share = rl.rlim_cur / 2 / listeners;
        if (share < CLOSING_SLACK + CONNECTIONS_MIN)
                return CONNECTIONS_MIN;
        return (unsigned) MIN((rlim_t) limit, share - CLOSING_SLACK);
}

static int set_limits(Api *api, const ApiConfig *cfg, ApiError *err) {
        unsigned listeners = (cfg->unix_path ? 1u : 0u) + (cfg->tcp_address ? 1u : 0u);

        api->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : API_BODY_MAX_DEFAULT;
        api->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : API_HEADER_MAX_DEFAULT;
        if (api->max_header < API_HEADER_MAX_MIN) {
                set_error(err, "max_header_bytes must be at least %u", API_HEADER_MAX_MIN);
                return -EINVAL;
        }
        api->connection_limit = cfg->connection_limit ? cfg->connection_limit : API_CONNECTIONS_DEFAULT;
        api->connection_limit = MAX(api->connection_limit, CONNECTIONS_MIN);
        api->connection_limit = fit_fd_limit(api->connection_limit, MAX(listeners, 1u));
        api->per_peer_limit = cfg->per_peer_limit ? cfg->per_peer_limit : API_PER_PEER_DEFAULT;
        api->per_peer_limit = MIN(api->per_peer_limit, api->connection_limit);
        api->timeout_sec = cfg->connection_timeout_sec ? cfg->connection_timeout_sec : API_TIMEOUT_SEC_DEFAULT;
        return 0;
}

void api_get_limits(const Api *api, ApiLimits *ret) {
        *ret = (ApiLimits) {
                .connection_limit = api->connection_limit,
                .per_peer_limit = api->per_peer_limit,
                .timeout_sec = api->timeout_sec,
                .max_header_bytes = api->max_header,
                .max_body_bytes = api->max_body,
        };
}

Api *api_free(Api *api) {
        if (!api)
                return NULL;
        /* Stopping a daemon ends its connections (their completion callbacks
         * run now) and closes its listen socket. */
        if (api->unix_daemon)
                MHD_stop_daemon(api->unix_daemon);
        if (api->tls_daemon)
                MHD_stop_daemon(api->tls_daemon);
        if (api->unix_path && api->unix_daemon && !api->unix_given)
                (void) unlink(api->unix_path);
        /* Quiesced listeners are ours to close (libmicrohttpd gave them
         * back); whoever else holds them keeps them listening. */
        if (api->unix_quiesced_fd >= 0)
                close(api->unix_quiesced_fd);
        if (api->tcp_quiesced_fd >= 0)
                close(api->tcp_quiesced_fd);
        if (api->epoll_fd >= 0)
                close(api->epoll_fd);
        if (api->wake_fd >= 0)
                close(api->wake_fd);
        free(api->unix_listener);
        free(api->tls_listener);
        free(api->unix_path);
        free(api->tls_cert);
        free(api->tls_key);
        free(api->tls_ca);
        free(api);
        return NULL;
}

/* A listening socket given by the caller: nonblocking (libmicrohttpd
 * accepts until EAGAIN), and of the kind asked. */
static int given_listener(int fd, int family, const char *what, ApiError *err) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int type = 0, listening = 0, flags;
        socklen_t l1 = sizeof type, l2 = sizeof listening;

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) < 0 ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0 || type != SOCK_STREAM || !listening ||
            (family == AF_UNIX ? ss.ss_family != AF_UNIX
                               : ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
                set_error(err, "the %s descriptor %d is not a listening %s stream socket", what, fd,
                          family == AF_UNIX ? "AF_UNIX" : "TCP");
                return -ENOTSOCK;
        }
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();
        return 0;
}

int api_new(const ApiConfig *cfg, const ServiceOps *ops, void *ops_ctx, Api **ret, ApiError *err) {
        _cleanup_api_ Api *api = NULL;
        /* Given listeners are ours from here on, also on failure. */
        _cleanup_close_ int given_unix = cfg->unix_fd > 0 ? cfg->unix_fd : -EBADF;
        _cleanup_close_ int given_tcp = cfg->tcp_fd > 0 ? cfg->tcp_fd : -EBADF;
        int fd = -EBADF, r;

        if (!cfg->unix_path && !cfg->tcp_address) {
                set_error(err, "no listener configured");
                return -EINVAL;
        }
        api = calloc(1, sizeof *api);
        if (!api)
                return -ENOMEM;
        api->epoll_fd = -EBADF;
        api->unix_quiesced_fd = api->tcp_quiesced_fd = -EBADF;
        api->ops = ops;
        api->ops_ctx = ops_ctx;
        api->allowed_gid = cfg->allowed_gid;
        r = set_limits(api, cfg, err);
        if (r < 0)
                return r;
        api->wake_fd = -EBADF;
        api->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (api->epoll_fd < 0)
                return negative_errno();
        api->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (api->wake_fd < 0)
                return negative_errno();
        if (epoll_ctl(api->epoll_fd, EPOLL_CTL_ADD, api->wake_fd,
                      &(struct epoll_event) { .events = EPOLLIN, .data.ptr = NULL }) < 0)
                return negative_errno();

        if (cfg->tcp_address) {
                /* Files first: a bad certificate should not leave a bound port. */
                r = check_tls_files(api, cfg, err);
                if (r < 0)
                        return r;
        }

        if (cfg->unix_path) {
                api->unix_listener = calloc(1, sizeof(Listener));
                api->unix_path = strdup(cfg->unix_path);
                if (!api->unix_listener || !api->unix_path)
                        return -ENOMEM;
                *api->unix_listener = (Listener) { api, TRANSPORT_UNIX };
                if (given_unix >= 0) {
                        r = given_listener(given_unix, AF_UNIX, "API socket", err);
                        if (r < 0)
                                return r;
                        fd = TAKE_FD(given_unix);
                        api->unix_given = true;
                } else {
                        r = unix_listen(cfg->unix_path, cfg->allowed_gid, &fd, err);
                        if (r < 0)
                                return r;
                }
                /* libmicrohttpd owns the listen socket from here on, also when
                 * it fails to start (it closes it). */
                api->unix_daemon = start_daemon(api, api->unix_listener, fd);
                if (!api->unix_daemon) {
                        if (!api->unix_given)
                                (void) unlink(cfg->unix_path);
                        set_error(err, "cannot start the HTTP server on %s", cfg->unix_path);
                        return -EIO;
                }
                r = watch(api, api->unix_daemon);
                if (r < 0)
                        return r;
        }

        if (cfg->tcp_address) {
                api->tls_listener = calloc(1, sizeof(Listener));
                if (!api->tls_listener)
                        return -ENOMEM;
                *api->tls_listener = (Listener) { api, TRANSPORT_TLS };
                if (given_tcp >= 0) {
                        struct sockaddr_storage ss;
                        socklen_t len = sizeof ss;

                        r = given_listener(given_tcp, AF_INET, "TLS listener", err);
                        if (r < 0)
                                return r;
                        if (getsockname(given_tcp, (struct sockaddr *) &ss, &len) < 0)
                                return negative_errno();
                        api->tcp_port = sockaddr_port(&ss);
                        fd = TAKE_FD(given_tcp);
                } else {
                        r = tcp_listen(cfg->tcp_address, cfg->tcp_port, &fd, &api->tcp_port, err);
                        if (r < 0)
                                return r;
                }
                api->tls_daemon = start_daemon(api, api->tls_listener, fd);
                if (!api->tls_daemon) {
                        set_error(err, "cannot start the HTTPS server on %s port %u", cfg->tcp_address,
                                  (unsigned) api->tcp_port);
                        return -EIO;
                }
                r = watch(api, api->tls_daemon);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(api);
        return 0;
}

int api_get_fd(Api *api) {
        return api->epoll_fd;
}

uint16_t api_get_tcp_port(const Api *api) {
        return api->tls_daemon ? api->tcp_port : 0;
}

int api_get_tcp_fd(const Api *api) {
        const union MHD_DaemonInfo *info;

        if (!api->tls_daemon || api->quiesced)
                return -EBADF;
        info = MHD_get_daemon_info(api->tls_daemon, MHD_DAEMON_INFO_LISTEN_FD);
        return info && info->listen_fd != MHD_INVALID_SOCKET ? info->listen_fd : -EBADF;
}

static void quiesce_listener(Listener *l, struct MHD_Daemon *d, int *ret_fd) {
        MHD_socket fd;

        if (!l || !d)
                return;
        /* Out of libmicrohttpd's epoll set, still listening; it no longer
         * closes it (MHD_stop_daemon() leaves a quiesced socket alone). */
        fd = MHD_quiesce_daemon(d);
        if (fd != MHD_INVALID_SOCKET)
                *ret_fd = fd;
        for (Conn *c = l->wait_head, *next; c; c = next) {
                next = c->wait_next;
                conn_quiesce(l, c);
        }
}

void api_quiesce(Api *api) {
        if (api->quiesced)
                return;
        api->quiesced = true;
        api->quiesced_usec = now_usec();
        quiesce_listener(api->unix_listener, api->unix_daemon, &api->unix_quiesced_fd);
        quiesce_listener(api->tls_listener, api->tls_daemon, &api->tcp_quiesced_fd);
        /* The connections just shut are closed by the next api_dispatch(). */
        (void) eventfd_write(api->wake_fd, 1);
}

bool api_is_quiesced(const Api *api) {
        return api->quiesced;
}

unsigned api_connections(const Api *api) {
        const Listener *ls[] = { api->unix_listener, api->tls_listener };
        unsigned n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(ls); i++)
                if (ls[i])
                        for (const Conn *c = ls[i]->conns; c; c = c->next)
                                n++;
        return n;
}

int api_get_timeout_ms(Api *api) {
        struct MHD_Daemon *ds[] = { api->unix_daemon, api->tls_daemon };
        Listener *ls[] = { api->unix_listener, api->tls_listener };
        uint64_t now = now_usec();
        int best = -1;

        for (size_t i = 0; i < ARRAY_SIZE(ls); i++) {
                int t = late_in_ms(ls[i], now);

                if (t >= 0 && (best < 0 || t < best))
                        best = t;
        }

        for (size_t i = 0; i < ARRAY_SIZE(ds); i++) {
                MHD_UNSIGNED_LONG_LONG ms;

                if (!ds[i] || MHD_get_timeout(ds[i], &ms) != MHD_YES)
                        continue;
                if (ms > INT_MAX)
                        ms = INT_MAX;
                if (best < 0 || (int) ms < best)
                        best = (int) ms;
        }
        return best;
}

int api_dispatch(Api *api) {
        eventfd_t ignored;
        int r = 0;

        (void) eventfd_read(api->wake_fd, &ignored); /* nonblocking: -EAGAIN when not woken */
        /* Late connections are shut first: this round closes them. */
        if (api->unix_listener)
                close_late(api->unix_listener, now_usec());
        if (api->tls_listener)
                close_late(api->tls_listener, now_usec());
        /* Both, whichever woke us: MHD_run() never blocks and is cheap when
         * idle, and a timeout may be due on either. */
        if (api->unix_daemon && MHD_run(api->unix_daemon) != MHD_YES)
                r = -EIO;
        if (api->tls_daemon && MHD_run(api->tls_daemon) != MHD_YES)
                r = -EIO;
        return r;
}
