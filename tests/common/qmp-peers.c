/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/qmp-peers.c - scripted QMP peers (qmp-peers.h).
 */
#include "tests/common/qmp-peers.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX 32

typedef struct Peer {
        QmpPeerSpec spec;
        char uuid[40];
        char path[108];
        int listen_fd;
        /* What query-status and query-migrate answer: under the lock, the
         * test's thread may change them while the peers serve. */
        char status[STATUS_MAX];
        char migrate_status[STATUS_MAX]; /* "": CommandNotFound */
} Peer;

typedef struct Conn {
        struct Conn *prev, *next; /* every open connection, to free them */
        Peer *peer;
        int fd;
        json_tokener *tok;
        bool negotiated; /* qmp_capabilities received: events go to it */
} Conn;

/* A request from the test's thread to the serving thread. */
typedef enum RequestKind { REQUEST_EMIT, REQUEST_KILL } RequestKind;

typedef struct Request {
        struct Request *next;
        RequestKind kind;
        size_t index;
        struct json_object *event; /* REQUEST_EMIT: the whole message */
        int result;
        bool done;
} Request;

struct QmpPeers {
        Peer *peers;
        size_t n;
        int epoll_fd, stop_fd, request_fd;
        pthread_t thread;
        bool running;
        unsigned long commands;
        Conn *conns;
        pthread_mutex_t lock; /* the peers' answers and the requests */
        pthread_cond_t request_done;
        Request *requests;
};

QmpPeers *qmp_peers_new(void) {
        QmpPeers *p = calloc(1, sizeof(QmpPeers));

        if (!p)
                return NULL;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->request_done, NULL);
        p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        p->request_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        /* The request fd is tagged with its own address (an int: the low
         * bit is clear, so it is neither the stop fd's 0 nor a listener). */
        if (p->epoll_fd < 0 || p->stop_fd < 0 || p->request_fd < 0 ||
            epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->stop_fd, &(struct epoll_event) { .events = EPOLLIN }) < 0 ||
            epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->request_fd,
                      &(struct epoll_event) { .events = EPOLLIN, .data.ptr = &p->request_fd }) < 0) {
                qmp_peers_free(p);
                return NULL;
        }
        return p;
}

int qmp_peers_add(QmpPeers *p, const char *path, const QmpPeerSpec *spec) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Peer *np, *peer;
        int fd;

        if (p->running || strlen(path) >= sizeof(sa.sun_path))
                return -EINVAL;
        np = reallocarray(p->peers, p->n + 1, sizeof(Peer));
        if (!np)
                return -ENOMEM;
        p->peers = np;
        /* The epoll data points into p->peers: peers are added before
         * start, and their listeners registered in qmp_peers_start(). */
        peer = &p->peers[p->n];
        *peer = (Peer) { .spec = *spec, .listen_fd = -1 };
        snprintf(peer->uuid, sizeof(peer->uuid), "%s", spec->uuid ? spec->uuid : "00000000-0000-0000-0000-000000000000");
        snprintf(peer->path, sizeof(peer->path), "%s", path);
        if (strlen(spec->status ? spec->status : "") >= STATUS_MAX ||
            strlen(spec->migrate_status ? spec->migrate_status : "") >= STATUS_MAX)
                return -EINVAL;
        snprintf(peer->status, sizeof(peer->status), "%s", spec->status ? spec->status : "running");
        snprintf(peer->migrate_status, sizeof(peer->migrate_status), "%s",
                 spec->migrate_status ? spec->migrate_status : "");
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        memcpy(sa.sun_path, path, strlen(path));
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        peer->listen_fd = fd;
        return (int) p->n++;
}

static void send_json(Conn *c, struct json_object *o) {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        size_t len = strlen(t), off = 0;

        while (off < len) {
                ssize_t w = send(c->fd, t + off, len - off, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return; /* the client went away, or a full buffer: a test peer drops it */
                }
                off += (size_t) w;
        }
        (void) send(c->fd, "\r\n", 2, MSG_NOSIGNAL);
}

static struct json_object *canned_return(QmpPeers *p, const Peer *peer, const char *cmd) {
        if (strcmp(cmd, "qmp_capabilities") == 0 || strcmp(cmd, "balloon") == 0)
                return json_object_new_object();
        if (strcmp(cmd, "query-status") == 0) {
                struct json_object *o = json_object_new_object();
                char status[STATUS_MAX];

                pthread_mutex_lock(&p->lock);
                memcpy(status, peer->status, sizeof(status));
                pthread_mutex_unlock(&p->lock);
                json_object_object_add(o, "status", json_object_new_string(status));
                json_object_object_add(o, "running", json_object_new_boolean(strcmp(status, "running") == 0));
                json_object_object_add(o, "singlestep", json_object_new_boolean(0));
                return o;
        }
        if (strcmp(cmd, "query-migrate") == 0) {
                struct json_object *o;
                char status[STATUS_MAX];

                pthread_mutex_lock(&p->lock);
                memcpy(status, peer->migrate_status, sizeof(status));
                pthread_mutex_unlock(&p->lock);
                if (!status[0])
                        return NULL; /* CommandNotFound */
                o = json_object_new_object();
                if (strcmp(status, "none") != 0)
                        json_object_object_add(o, "status", json_object_new_string(status));
                return o;
        }
        if (strcmp(cmd, "query-uuid") == 0) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "UUID", json_object_new_string(peer->uuid));
                return o;
        }
        if (strcmp(cmd, "query-cpus-fast") == 0) {
                struct json_object *a = json_object_new_array(), *cpu = json_object_new_object();
                json_object_object_add(cpu, "cpu-index", json_object_new_int(0));
                json_object_object_add(cpu, "thread-id", json_object_new_int64(peer->spec.vcpu_tid));
                json_object_object_add(cpu, "qom-path", json_object_new_string("/machine/unattached/device[0]"));
                json_object_object_add(cpu, "target", json_object_new_string("x86_64"));
                json_object_array_add(a, cpu);
                return a;
        }
        if (strcmp(cmd, "query-iothreads") == 0 || strcmp(cmd, "query-pci") == 0 || strcmp(cmd, "qom-list") == 0)
                return json_object_new_array();
        if (strcmp(cmd, "query-memory-size-summary") == 0) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "base-memory",
                                       json_object_new_int64((int64_t) (peer->spec.ram_bytes ? peer->spec.ram_bytes
                                                                                            : 1ull << 30)));
                return o;
        }
        return NULL;
}

static void answer(QmpPeers *p, Conn *c, struct json_object *msg) {
        struct json_object *exec, *id, *reply = json_object_new_object(), *ret;
        const char *cmd;

        if (!json_object_object_get_ex(msg, "execute", &exec) || !json_object_is_type(exec, json_type_string)) {
                json_object_put(reply);
                return;
        }
        __atomic_add_fetch(&p->commands, 1, __ATOMIC_SEQ_CST);
        cmd = json_object_get_string(exec);
        if (c->peer->spec.mode == QMP_PEER_STALL_QUERIES && strcmp(cmd, "qmp_capabilities") != 0) {
                json_object_put(reply);
                return;
        }
        if (strcmp(cmd, "qmp_capabilities") == 0)
                c->negotiated = true;
        ret = canned_return(p, c->peer, cmd);
        if (ret)
                json_object_object_add(reply, "return", ret);
        else {
                struct json_object *e = json_object_new_object();
                bool no_balloon = strcmp(cmd, "query-balloon") == 0;
                json_object_object_add(e, "class", json_object_new_string(no_balloon ? "DeviceNotActive"
                                                                                     : "CommandNotFound"));
                json_object_object_add(e, "desc", json_object_new_string(no_balloon ? "No balloon device has been activated"
                                                                                    : "The command has not been found"));
                json_object_object_add(reply, "error", e);
        }
        if (json_object_object_get_ex(msg, "id", &id))
                json_object_object_add(reply, "id", json_object_get(id));
        send_json(c, reply);
        json_object_put(reply);
}

static void conn_close(QmpPeers *p, Conn *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                p->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        json_tokener_free(c->tok);
        free(c);
}

static void conn_read(QmpPeers *p, Conn *c) {
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        size_t off = 0;

        if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                conn_close(p, c);
                return;
        }
        while (off < (size_t) n) {
                struct json_object *o = json_tokener_parse_ex(c->tok, buf + off, (int) ((size_t) n - off));
                enum json_tokener_error e = json_tokener_get_error(c->tok);
                size_t used = json_tokener_get_parse_end(c->tok);

                if (e == json_tokener_continue)
                        break;
                if (e != json_tokener_success) {
                        conn_close(p, c);
                        return;
                }
                off += used;
                json_tokener_reset(c->tok);
                answer(p, c, o);
                json_object_put(o);
                /* whitespace between messages */
                while (off < (size_t) n && (buf[off] == '\r' || buf[off] == '\n' || buf[off] == ' '))
                        off++;
        }
}

static void conn_accept(QmpPeers *p, Peer *peer) {
        for (;;) {
                int fd = accept4(peer->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                Conn *c;

                if (fd < 0)
                        return;
                c = calloc(1, sizeof(Conn));
                if (!c || !(c->tok = json_tokener_new())) {
                        free(c);
                        close(fd);
                        continue;
                }
                c->peer = peer;
                c->fd = fd;
                c->next = p->conns;
                if (p->conns)
                        p->conns->prev = c;
                p->conns = c;
                if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd,
                              &(struct epoll_event) { .events = EPOLLIN, .data.ptr = c }) < 0) {
                        conn_close(p, c);
                        continue;
                }
                if (peer->spec.mode != QMP_PEER_SILENT) {
                        struct json_object *g = json_tokener_parse(
                                "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
                                "\"package\": \"scripted\"}, \"capabilities\": [\"oob\"]}}");
                        send_json(c, g);
                        json_object_put(g);
                }
        }
}

/* ---- requests from the test's thread -------------------------------------- */

static struct json_object *event_new(const char *name, struct json_object *data) {
        struct json_object *o = json_object_new_object(), *ts = json_object_new_object();
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        json_object_object_add(o, "event", json_object_new_string(name));
        if (data)
                json_object_object_add(o, "data", data);
        json_object_object_add(ts, "seconds", json_object_new_int64(now.tv_sec));
        json_object_object_add(ts, "microseconds", json_object_new_int64(now.tv_nsec / 1000));
        json_object_object_add(o, "timestamp", ts);
        return o;
}

static void peer_kill(QmpPeers *p, Peer *peer) {
        for (Conn *c = p->conns, *next; c; c = next) {
                next = c->next;
                if (c->peer == peer)
                        conn_close(p, c);
        }
        if (peer->listen_fd >= 0) {
                epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, peer->listen_fd, NULL);
                close(peer->listen_fd);
                peer->listen_fd = -1;
                (void) unlink(peer->path);
        }
}

static void request_run(QmpPeers *p, Request *rq) {
        Peer *peer = &p->peers[rq->index];

        if (rq->kind == REQUEST_KILL) {
                peer_kill(p, peer);
                rq->result = 0;
                return;
        }
        rq->result = 0;
        for (Conn *c = p->conns; c; c = c->next)
                if (c->peer == peer && c->negotiated) {
                        send_json(c, rq->event);
                        rq->result++;
                }
}

/* On the serving thread: every queued request, in order. */
static void requests_serve(QmpPeers *p) {
        uint64_t n;

        (void) read(p->request_fd, &n, sizeof(n));
        pthread_mutex_lock(&p->lock);
        while (p->requests) {
                Request *rq = p->requests;

                p->requests = rq->next;
                request_run(p, rq);
                rq->done = true;
        }
        pthread_cond_broadcast(&p->request_done);
        pthread_mutex_unlock(&p->lock);
}

/* On the test's thread: queues rq, wakes the serving thread and waits
 * until it ran (or runs it here when the peers are not serving). */
static int request_submit(QmpPeers *p, Request *rq) {
        uint64_t one = 1;
        Request **tail;

        if (rq->index >= p->n)
                return -EINVAL;
        if (!p->running) {
                if (rq->kind == REQUEST_EMIT)
                        return -ENOTCONN;
                request_run(p, rq);
                return rq->result;
        }
        pthread_mutex_lock(&p->lock);
        for (tail = &p->requests; *tail; tail = &(*tail)->next)
                ;
        *tail = rq;
        if (write(p->request_fd, &one, sizeof(one)) != sizeof(one)) {
                *tail = NULL;
                pthread_mutex_unlock(&p->lock);
                return -EIO;
        }
        while (!rq->done)
                pthread_cond_wait(&p->request_done, &p->lock);
        pthread_mutex_unlock(&p->lock);
        return rq->result;
}

int qmp_peers_emit(QmpPeers *p, size_t index, const char *name, const char *data_json) {
        struct json_object *data = NULL;
        Request rq = { .kind = REQUEST_EMIT, .index = index };
        int r;

        if (!name || index >= p->n)
                return -EINVAL;
        if (data_json) {
                data = json_tokener_parse(data_json);
                if (!data || !json_object_is_type(data, json_type_object)) {
                        json_object_put(data);
                        return -EINVAL;
                }
        }
        rq.event = event_new(name, data);
        r = request_submit(p, &rq);
        json_object_put(rq.event);
        return r;
}

int qmp_peers_kill(QmpPeers *p, size_t index) {
        Request rq = { .kind = REQUEST_KILL, .index = index };

        return request_submit(p, &rq);
}

static int set_text(QmpPeers *p, char field[STATUS_MAX], const char *value) {
        if (strlen(value) >= STATUS_MAX)
                return -EINVAL;
        pthread_mutex_lock(&p->lock);
        snprintf(field, STATUS_MAX, "%s", value);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

int qmp_peers_set_status(QmpPeers *p, size_t index, const char *status) {
        if (index >= p->n)
                return -EINVAL;
        return set_text(p, p->peers[index].status, status ? status : "running");
}

int qmp_peers_set_migrate_status(QmpPeers *p, size_t index, const char *status) {
        if (index >= p->n)
                return -EINVAL;
        return set_text(p, p->peers[index].migrate_status, status ? status : "");
}

/* Listeners are tagged by a pointer with the low bit set (Peer is
 * aligned): one epoll set for listeners and connections. */
static void *serve(void *arg) {
        QmpPeers *p = arg;

        for (;;) {
                struct epoll_event ev[64];
                int n = epoll_wait(p->epoll_fd, ev, 64, -1);

                if (n < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < n; i++) {
                        uintptr_t tag = (uintptr_t) ev[i].data.ptr;

                        if (tag == 0)
                                return NULL; /* stop_fd */
                        if (tag == (uintptr_t) &p->request_fd) {
                                /* A kill may have freed connections later in
                                 * ev[]: what is still open reports again. */
                                requests_serve(p);
                                break;
                        }
                        if (tag & 1)
                                conn_accept(p, (Peer *) (tag & ~(uintptr_t) 1));
                        else
                                conn_read(p, (Conn *) ev[i].data.ptr);
                }
        }
        return NULL;
}

int qmp_peers_start(QmpPeers *p) {
        for (size_t i = 0; i < p->n; i++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *) ((uintptr_t) &p->peers[i] | 1) };
                if (p->peers[i].listen_fd < 0) /* killed before it started */
                        continue;
                if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->peers[i].listen_fd, &ev) < 0)
                        return -errno;
        }
        if (pthread_create(&p->thread, NULL, serve, p) != 0)
                return -EAGAIN;
        p->running = true;
        return 0;
}

unsigned long qmp_peers_commands(QmpPeers *p) {
        return __atomic_load_n(&p->commands, __ATOMIC_SEQ_CST);
}

void qmp_peers_free(QmpPeers *p) {
        if (!p)
                return;
        if (p->running) {
                uint64_t one = 1;
                (void) write(p->stop_fd, &one, sizeof(one));
                pthread_join(p->thread, NULL);
        }
        while (p->conns)
                conn_close(p, p->conns);
        for (size_t i = 0; i < p->n; i++) {
                if (p->peers[i].listen_fd >= 0)
                        close(p->peers[i].listen_fd);
                (void) unlink(p->peers[i].path);
        }
        if (p->epoll_fd >= 0)
                close(p->epoll_fd);
        if (p->stop_fd >= 0)
                close(p->stop_fd);
        if (p->request_fd >= 0)
                close(p->request_fd);
        pthread_cond_destroy(&p->request_done);
        pthread_mutex_destroy(&p->lock);
        free(p->peers);
        free(p);
}
