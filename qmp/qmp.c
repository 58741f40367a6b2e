/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp/qmp.c - the QMP connection: framing, handshake, command table,
 * events, the non-blocking dispatcher and the blocking wrappers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "common/clock.h"
#include "common/macros.h"
#include "qmp/qmp-internal.h"

#define QMP_READ_CHUNK (64 * 1024)
/* Reads per qmp_dispatch() call, so a peer that never stops talking cannot
 * starve the rest of the caller's event loop. */
#define QMP_READS_PER_DISPATCH 16
#define QMP_MIN_MESSAGE_SIZE 4096

typedef enum QmpState {
        QMP_STATE_GREETING,    /* waiting for {"QMP": ...}; nothing is written yet */
        QMP_STATE_NEGOTIATING, /* qmp_capabilities sent, reply pending */
        QMP_STATE_READY,
        QMP_STATE_CLOSED,
} QmpState;

typedef struct QmpPending {
        uint64_t id;
        uint64_t deadline_usec; /* CLOCK_MONOTONIC; 0: none */
        char *command;          /* for error messages */
        QmpReplyFn cb;
        QmpObjReplyFn obj_cb;
        void *userdata;
} QmpPending;

struct Qmp {
        int fd;
        QmpState state;

        /* Reader: the tokener is fed bytes as they arrive; the scanner below
         * counts what the tokener is about to build, to bound memory. */
        struct json_tokener *tok;
        size_t max_message_size;
        size_t msg_bytes;     /* bytes of the current message fed so far */
        uint64_t msg_values;  /* ',' '[' '{' outside strings: ~ values built */
        uint64_t msg_containers; /* '{' '[' outside strings: objects and arrays built,
                                  * which cost a hash table or slot array each */
        bool scan_in_string, scan_escape, msg_started;

        QmpGreeting greeting;
        bool has_greeting;
        bool ready; /* qmp_capabilities succeeded */

        char *out;
        size_t out_len, out_off, out_alloc;
        int write_error; /* a send() failure, reported at the next dispatch */

        QmpPending *pending;
        size_t n_pending, alloc_pending;
        uint64_t next_id;
        uint64_t caps_id;

        QmpEventFn event_fn;
        void *event_userdata;
        QmpCloseFn close_fn;
        void *close_userdata;

        int close_error;
        char *close_reason;
        QmpStats stats;

        unsigned in_callback; /* >0 while a user callback runs */

        char rbuf[QMP_READ_CHUNK];
};

static uint64_t deadline_from_ms(int timeout_ms) {
        if (timeout_ms <= 0)
                return 0;
        return now_usec() + (uint64_t) timeout_ms * 1000;
}

void qmp_error_done(QmpError *e) {
        if (!e)
                return;
        free(e->error_class);
        free(e->desc);
        e->error_class = e->desc = NULL;
}

static void greeting_done(QmpGreeting *g) {
        free(g->package);
        if (g->capabilities)
                for (char **c = g->capabilities; *c; c++)
                        free(*c);
        free(g->capabilities);
        *g = (QmpGreeting) {};
}

/* ---- JSON helpers --------------------------------------------------------- */

static struct json_tokener *tokener_new(void) {
        struct json_tokener *tok = json_tokener_new_ex(QMP_MAX_DEPTH);

        /* Strict: QEMU emits plain RFC 8259 JSON; json-c's extensions (comments,
         * single quotes, NaN) would only widen what a hostile peer can send.
         * Trailing chars: the next message may follow in the same read. */
        if (tok)
                json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
        return tok;
}

int qmp_json_parse(const char *text, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;
        size_t len;

        if (!text)
                return -EINVAL;
        len = strlen(text);
        if (len > INT_MAX)
                return -EBADMSG;
        tok = tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) len);
        if (json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                json_tokener_free(tok);
                return -EBADMSG;
        }
        /* Only whitespace may follow the value. */
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!strchr(" \t\r\n", text[i])) {
                        json_object_put(o);
                        json_tokener_free(tok);
                        return -EBADMSG;
                }
        json_tokener_free(tok);
        *ret = o; /* NULL for the JSON literal null */
        return 0;
}

static int json_get_typed(struct json_object *o, const char *key, bool required, json_type type,
                          struct json_object **ret) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, key, &v))
                return required ? -EBADMSG : 0;
        if (!json_object_is_type(v, type))
                return -EBADMSG;
        *ret = v;
        return 1;
}

int qmp_json_get_int64(struct json_object *o, const char *key, bool required, int64_t *ret) {
        struct json_object *v;
        int r = json_get_typed(o, key, required, json_type_int, &v);

        if (r <= 0)
                return r;
        /* json-c keeps values above INT64_MAX as uint64; they do not fit. */
        if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) != INT64_MAX)
                return -EBADMSG;
        *ret = json_object_get_int64(v);
        return 1;
}

int qmp_json_get_uint64(struct json_object *o, const char *key, bool required, uint64_t *ret) {
        struct json_object *v;
        int r = json_get_typed(o, key, required, json_type_int, &v);

        if (r <= 0)
                return r;
        if (json_object_get_int64(v) < 0)
                return -EBADMSG;
        *ret = json_object_get_uint64(v);
        return 1;
}

int qmp_json_get_bool(struct json_object *o, const char *key, bool required, bool *ret) {
        struct json_object *v;
        int r = json_get_typed(o, key, required, json_type_boolean, &v);

        if (r <= 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 1;
}

int qmp_json_get_string(struct json_object *o, const char *key, bool required, const char **ret) {
        struct json_object *v;
        int r = json_get_typed(o, key, required, json_type_string, &v);

        if (r <= 0)
                return r;
        *ret = json_object_get_string(v);
        return 1;
}

int qmp_json_get_object(struct json_object *o, const char *key, bool required,
                        struct json_object **ret) {
        return json_get_typed(o, key, required, json_type_object, ret);
}

int qmp_json_get_array(struct json_object *o, const char *key, bool required,
                       struct json_object **ret) {
        return json_get_typed(o, key, required, json_type_array, ret);
}

static const char *json_text(struct json_object *o) {
        /* NULL (JSON null) prints as "null". */
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- closing -------------------------------------------------------------- */

static void pending_done(QmpPending *p) {
        free(p->command);
        p->command = NULL;
}

static void call_reply(Qmp *q, QmpPending *p, int r, struct json_object *ret, const QmpError *err) {
        q->in_callback++;
        if (p->obj_cb)
                p->obj_cb(q, r, ret, err, p->userdata);
        else if (p->cb)
                p->cb(q, r, r == 0 ? json_text(ret) : NULL, err, p->userdata);
        q->in_callback--;
}

/* Completes every pending command with error r.  The table is detached
 * first: a callback may queue new commands (which fail at once, because
 * the state is already CLOSED or the Qmp is being freed). */
static void fail_pending(Qmp *q, int r) {
        QmpPending *pending = TAKE_PTR(q->pending);
        size_t n = q->n_pending;

        q->n_pending = q->alloc_pending = 0;
        q->stats.pending = 0;
        for (size_t i = 0; i < n; i++) {
                call_reply(q, &pending[i], r, NULL, NULL);
                pending_done(&pending[i]);
        }
        free(pending);
}

_printf_(3, 4) static int qmp_fail(Qmp *q, int error, const char *fmt, ...) {
        va_list ap;
        char *reason = NULL;

        if (q->state == QMP_STATE_CLOSED)
                return q->close_error;

        va_start(ap, fmt);
        if (vasprintf(&reason, fmt, ap) < 0)
                reason = NULL;
        va_end(ap);

        q->state = QMP_STATE_CLOSED;
        q->close_error = error;
        q->close_reason = reason; /* NULL on OOM: qmp_get_close_reason() copes */
        /* Keep the fd number allocated until qmp_free(), but stop all traffic. */
        (void) shutdown(q->fd, SHUT_RDWR);
        if (q->tok) {
                json_tokener_free(q->tok);
                q->tok = NULL;
        }
        free(q->out);
        q->out = NULL;
        q->out_len = q->out_off = q->out_alloc = 0;

        fail_pending(q, error);
        if (q->close_fn) {
                q->in_callback++;
                q->close_fn(q, error, qmp_get_close_reason(q), q->close_userdata);
                q->in_callback--;
        }
        return error;
}

/* ---- output --------------------------------------------------------------- */

static int out_append(Qmp *q, const char *s, size_t n) {
        if (n > SIZE_MAX - q->out_len)
                return -ENOMEM;
        if (q->out_len + n > q->out_alloc) {
                size_t a = MAX(q->out_alloc * 2, q->out_len + n);
                char *p;

                a = MAX(a, (size_t) 1024);
                p = realloc(q->out, a);
                if (!p)
                        return -ENOMEM;
                q->out = p;
                q->out_alloc = a;
        }
        memcpy(q->out + q->out_len, s, n);
        q->out_len += n;
        return 0;
}

/* Writes what the socket takes.  A failure is remembered, not acted on:
 * this runs inside qmp_execute(), which must not call callbacks. */
static void flush_output(Qmp *q) {
        if (q->state == QMP_STATE_GREETING || q->state == QMP_STATE_CLOSED || q->write_error)
                return;
        while (q->out_off < q->out_len) {
                ssize_t k = send(q->fd, q->out + q->out_off, q->out_len - q->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        q->write_error = errno == EPIPE ? -ECONNRESET : negative_errno();
                        return;
                }
                q->out_off += (size_t) k;
        }
        q->out_off = q->out_len = 0;
}

/* ---- incoming messages ---------------------------------------------------- */

static int handle_greeting(Qmp *q, struct json_object *msg) {
        struct json_object *qmp, *version, *qemu, *caps;
        int64_t major = 0, minor = 0, micro = 0;
        const char *package = "";
        _cleanup_free_ char **capv = NULL;
        size_t ncaps;

        if (!json_object_object_get_ex(msg, "QMP", &qmp))
                return qmp_fail(q, -EPROTO, "expected the QMP greeting, got %.200s", json_text(msg));
        if (qmp_json_get_object(qmp, "version", true, &version) < 0 ||
            qmp_json_get_object(version, "qemu", true, &qemu) < 0 ||
            qmp_json_get_int64(qemu, "major", true, &major) < 0 ||
            qmp_json_get_int64(qemu, "minor", true, &minor) < 0 ||
            qmp_json_get_int64(qemu, "micro", true, &micro) < 0 ||
            qmp_json_get_string(version, "package", false, &package) < 0 ||
            qmp_json_get_array(qmp, "capabilities", true, &caps) < 0 ||
            major < 0 || major > INT_MAX || minor < 0 || minor > INT_MAX || micro < 0 || micro > INT_MAX)
                return qmp_fail(q, -EPROTO, "malformed QMP greeting: %.200s", json_text(msg));

        ncaps = json_object_array_length(caps);
        capv = calloc(ncaps + 1, sizeof(char *));
        if (!capv)
                return qmp_fail(q, -ENOMEM, "out of memory parsing the greeting");
        for (size_t i = 0; i < ncaps; i++) {
                struct json_object *c = json_object_array_get_idx(caps, i);

                if (!json_object_is_type(c, json_type_string) || !(capv[i] = strdup(json_object_get_string(c)))) {
                        for (size_t j = 0; j < i; j++)
                                free(capv[j]);
                        return json_object_is_type(c, json_type_string) ?
                                qmp_fail(q, -ENOMEM, "out of memory parsing the greeting") :
                                qmp_fail(q, -EPROTO, "malformed QMP greeting: capability is not a string");
                }
        }
        q->greeting.package = strdup(package);
        if (!q->greeting.package) {
                for (size_t j = 0; j < ncaps; j++)
                        free(capv[j]);
                return qmp_fail(q, -ENOMEM, "out of memory parsing the greeting");
        }
        q->greeting.major = (int) major;
        q->greeting.minor = (int) minor;
        q->greeting.micro = (int) micro;
        q->greeting.capabilities = TAKE_PTR(capv);
        q->has_greeting = true;
        q->state = QMP_STATE_NEGOTIATING;
        flush_output(q); /* qmp_capabilities and whatever was queued behind it */
        return 0;
}

static int handle_event(Qmp *q, struct json_object *msg) {
        struct json_object *ts = NULL, *data = NULL;
        const char *name = NULL;
        QmpEvent ev = {
                .timestamp_sec = -1,
                .timestamp_usec = -1,
                .data_json = "{}",
                .migration_status = QMP_MIGRATION_STATUS_UNKNOWN,
                .migration_pass = -1,
        };

        if (qmp_json_get_string(msg, "event", true, &name) < 0)
                return qmp_fail(q, -EPROTO, "malformed event: %.200s", json_text(msg));
        q->stats.events++;
        ev.name = name;

        /* Timestamps and data are informational: a malformed one is
         * reported as absent rather than tearing the connection down. */
        if (qmp_json_get_object(msg, "timestamp", false, &ts) > 0) {
                int64_t s = -1, us = -1;

                if (qmp_json_get_int64(ts, "seconds", true, &s) > 0 &&
                    qmp_json_get_int64(ts, "microseconds", true, &us) > 0) {
                        ev.timestamp_sec = s;
                        ev.timestamp_usec = us;
                }
        }
        if (json_object_object_get_ex(msg, "data", &data)) {
                ev.data_json = json_text(data);
                if (json_object_is_type(data, json_type_object)) {
                        const char *status;
                        int64_t pass;
                        uint64_t actual;

                        if (strcmp(name, "MIGRATION") == 0 &&
                            qmp_json_get_string(data, "status", true, &status) > 0)
                                ev.migration_status = qmp_migration_status_from_string(status);
                        else if (strcmp(name, "MIGRATION_PASS") == 0 &&
                                 qmp_json_get_int64(data, "pass", true, &pass) > 0)
                                ev.migration_pass = pass;
                        else if (strcmp(name, "BALLOON_CHANGE") == 0 &&
                                 qmp_json_get_uint64(data, "actual", true, &actual) > 0) {
                                ev.has_balloon_actual = true;
                                ev.balloon_actual_bytes = actual;
                        }
                }
        }

        if (q->event_fn) {
                q->in_callback++;
                q->event_fn(q, &ev, q->event_userdata);
                q->in_callback--;
        }
        return 0;
}

static void caps_reply(Qmp *q, int r, struct json_object *ret, const QmpError *err, void *userdata) {
        if (r == 0) {
                if (q->state == QMP_STATE_NEGOTIATING)
                        q->state = QMP_STATE_READY;
                q->ready = true;
        } else if (r == -EREMOTEIO)
                (void) qmp_fail(q, -EPROTO, "qmp_capabilities failed: %s: %s", err->error_class, err->desc);
        /* Other errors: the connection closed (a malformed error reply
         * too), or the Qmp is being freed. */
}

static int handle_reply(Qmp *q, struct json_object *msg) {
        struct json_object *idv, *ret = NULL, *errv = NULL;
        const char *cls = NULL, *desc = NULL;
        QmpPending p;
        uint64_t id;
        size_t i;
        int r = 0;
        QmpError err = {};

        if (!json_object_object_get_ex(msg, "id", &idv) || !json_object_is_type(idv, json_type_int) ||
            json_object_get_int64(idv) <= 0) {
                q->stats.dropped_replies++;
                return 0;
        }
        id = (uint64_t) json_object_get_int64(idv);
        for (i = 0; i < q->n_pending; i++)
                if (q->pending[i].id == id)
                        break;
        if (i >= q->n_pending) {
                q->stats.dropped_replies++;
                return 0;
        }
        /* An error reply is {"class": string, "desc": string}; anything
         * else is a peer that does not speak QMP: fatal, like a malformed
         * event, so the command (still pending) fails with the close error
         * and every callback's "r < 0 other than -EREMOTEIO: closed" holds. */
        if (json_object_object_get_ex(msg, "error", &errv) &&
            (qmp_json_get_string(errv, "class", true, &cls) < 0 || qmp_json_get_string(errv, "desc", true, &desc) < 0))
                return qmp_fail(q, -EPROTO, "malformed error reply to %s: %.200s", q->pending[i].command,
                                json_text(msg));
        /* Take the entry out before calling anything: the callback may queue
         * more commands and reallocate the table. */
        p = q->pending[i];
        memmove(q->pending + i, q->pending + i + 1, (q->n_pending - i - 1) * sizeof(QmpPending));
        q->n_pending--;
        q->stats.pending = q->n_pending;
        q->stats.replies++;

        if (errv) {
                /* Borrowed: the strings live as long as msg. */
                err.error_class = (char *) cls;
                err.desc = (char *) desc;
                r = -EREMOTEIO;
        } else
                (void) json_object_object_get_ex(msg, "return", &ret);

        call_reply(q, &p, r, ret, r == -EREMOTEIO ? &err : NULL);
        pending_done(&p);
        return q->state == QMP_STATE_CLOSED ? q->close_error : 0;
}

static int handle_message(Qmp *q, struct json_object *msg) {
        q->stats.messages++;
        if (!json_object_is_type(msg, json_type_object))
                return qmp_fail(q, -EPROTO, "QMP message is not a JSON object: %.200s", json_text(msg));
        if (q->state == QMP_STATE_GREETING)
                return handle_greeting(q, msg);
        if (json_object_object_get_ex(msg, "QMP", NULL))
                return qmp_fail(q, -EPROTO, "unexpected second QMP greeting");
        if (json_object_object_get_ex(msg, "event", NULL))
                return handle_event(q, msg);
        if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL))
                return handle_reply(q, msg);
        /* Neither reply nor event: something newer than us; ignore it. */
        q->stats.dropped_replies++;
        return 0;
}

/* Counts, over bytes the tokener consumed, the values and containers it
 * will have built: ',' '[' '{' outside strings (an upper bound on values,
 * since every value but a container's first follows a comma) and '[' '{'
 * (containers: ~0.5 KiB each in json-c, for a hash table or slot array).  json-c 0.16 accepts
 * single-quoted strings even in strict mode; they are refused here (QEMU
 * never sends them) so this scanner's idea of "inside a string" always
 * matches the tokener's.  Returns false on a single quote. */
static bool scan_bytes(Qmp *q, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (q->scan_in_string) {
                        if (q->scan_escape)
                                q->scan_escape = false;
                        else if (c == '\\')
                                q->scan_escape = true;
                        else if (c == '"')
                                q->scan_in_string = false;
                        continue;
                }
                switch (c) {
                case ' ':
                case '\t':
                case '\r':
                case '\n':
                        break;
                case '"':
                        q->scan_in_string = true;
                        q->msg_started = true;
                        break;
                case '\'':
                        return false;
                case '{':
                case '[':
                        q->msg_containers++;
                        q->msg_values++;
                        q->msg_started = true;
                        break;
                case ',':
                        q->msg_values++;
                        q->msg_started = true;
                        break;
                default:
                        q->msg_started = true;
                }
        }
        return true;
}

static void reader_reset(Qmp *q) {
        json_tokener_reset(q->tok);
        q->msg_bytes = 0;
        q->msg_values = q->msg_containers = 0;
        q->scan_in_string = q->scan_escape = q->msg_started = false;
}

int qmp_feed(Qmp *q, const void *buf, size_t n) {
        const char *p = buf;

        while (n > 0) {
                struct json_object *o;
                enum json_tokener_error jerr;
                size_t room, chunk, used;
                int r;

                if (q->state == QMP_STATE_CLOSED)
                        return q->close_error;

                /* The cap may have been lowered in the middle of a message. */
                room = q->msg_bytes < q->max_message_size ? q->max_message_size - q->msg_bytes : 0;
                if (room == 0)
                        return qmp_fail(q, -EMSGSIZE, "QMP message larger than %zu bytes", q->max_message_size);
                /* Never feed more than the cap allows: the tokener holds
                 * (at most) what it was fed of the current message. */
                chunk = MIN(MIN(n, room), (size_t) INT_MAX);

                o = json_tokener_parse_ex(q->tok, p, (int) chunk);
                jerr = json_tokener_get_error(q->tok);
                if (jerr == json_tokener_continue)
                        used = chunk;
                else if (jerr == json_tokener_success)
                        used = json_tokener_get_parse_end(q->tok);
                else {
                        json_object_put(o);
                        return qmp_fail(q, -EBADMSG, "invalid JSON from QMP peer: %s%s",
                                        json_tokener_error_desc(jerr),
                                        jerr == json_tokener_error_depth ? " (nesting limit)" : "");
                }

                if (!scan_bytes(q, p, used)) {
                        json_object_put(o);
                        return qmp_fail(q, -EBADMSG, "invalid JSON from QMP peer: single-quoted string");
                }
                q->msg_bytes += used;
                p += used;
                n -= used;
                if (q->msg_values > q->max_message_size / 16 ||
                    q->msg_containers > q->max_message_size / 128) {
                        json_object_put(o);
                        return qmp_fail(q, -EMSGSIZE,
                                        "QMP message has too many JSON values (limit %zu values, "
                                        "%zu objects and arrays)",
                                        q->max_message_size / 16, q->max_message_size / 128);
                }
                q->stats.bytes_read += used;

                if (jerr == json_tokener_success) {
                        reader_reset(q);
                        /* A JSON null parses to o == NULL: not an object either. */
                        r = o ? handle_message(q, o) :
                                qmp_fail(q, -EPROTO, "QMP message is not a JSON object: null");
                        json_object_put(o);
                        if (r < 0)
                                return r;
                }
        }
        return q->state == QMP_STATE_CLOSED ? q->close_error : 0;
}

static int read_input(Qmp *q) {
        for (unsigned i = 0; i < QMP_READS_PER_DISPATCH; i++) {
                ssize_t k;
                int r;

                if (q->state == QMP_STATE_CLOSED)
                        return q->close_error;
                k = recv(q->fd, q->rbuf, sizeof(q->rbuf), MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno != ECONNRESET) {
                                r = negative_errno();
                                return qmp_fail(q, r, "recv() from QMP socket failed: %s", strerror(-r));
                        }
                }
                if (k <= 0) {
                        /* A peer that closes with our data unread gives a
                         * reset instead of EOF; both mean it is gone. */
                        const char *verb = k < 0 ? "reset" : "closed";

                        if (q->msg_started)
                                return qmp_fail(q, -ECONNRESET,
                                                "QMP peer %s the connection in the middle of a message", verb);
                        if (q->state == QMP_STATE_GREETING)
                                return qmp_fail(q, -ECONNRESET,
                                                "QMP peer %s the connection before the greeting", verb);
                        return qmp_fail(q, -ECONNRESET, "QMP peer %s the connection", verb);
                }
                r = qmp_feed(q, q->rbuf, (size_t) k);
                if (r < 0)
                        return r;
                if ((size_t) k < sizeof(q->rbuf))
                        return 0; /* drained */
        }
        return 0;
}

static int check_deadlines(Qmp *q) {
        uint64_t now = 0;

        for (size_t i = 0; i < q->n_pending; i++) {
                QmpPending *p = &q->pending[i];

                if (p->deadline_usec == 0)
                        continue;
                if (now == 0)
                        now = now_usec();
                if (p->deadline_usec > now)
                        continue;
                if (q->state == QMP_STATE_GREETING)
                        return qmp_fail(q, -ETIMEDOUT, "timed out waiting for the QMP greeting");
                return qmp_fail(q, -ETIMEDOUT, "timed out waiting for the reply to '%s' (id %" PRIu64 ")",
                                p->command, p->id);
        }
        return 0;
}

/* ---- public: lifecycle ---------------------------------------------------- */

static int queue_command(Qmp *q, const char *command, struct json_object *args, int timeout_ms,
                         QmpReplyFn cb, QmpObjReplyFn obj_cb, void *userdata, uint64_t *ret_id) {
        struct json_object *msg = NULL;
        _cleanup_free_ char *cmd = NULL;
        const char *text;
        size_t old_len;
        int r;

        if (!command || !*command)
                return -EINVAL;
        if (args && !json_object_is_type(args, json_type_object))
                return -EINVAL;
        if (q->state == QMP_STATE_CLOSED)
                return q->close_error;

        if (q->n_pending == q->alloc_pending) {
                size_t a = MAX(q->alloc_pending * 2, (size_t) 8);
                QmpPending *np = reallocarray(q->pending, a, sizeof(QmpPending));

                if (!np)
                        return -ENOMEM;
                q->pending = np;
                q->alloc_pending = a;
        }
        cmd = strdup(command);
        msg = json_object_new_object();
        if (!cmd || !msg ||
            json_object_object_add(msg, "execute", json_object_new_string(command)) < 0 ||
            (args && json_object_object_add(msg, "arguments", json_object_get(args)) < 0) ||
            json_object_object_add(msg, "id", json_object_new_int64((int64_t) q->next_id)) < 0) {
                json_object_put(msg);
                return -ENOMEM;
        }
        text = json_text(msg);
        if (q->out_off == q->out_len)
                q->out_off = q->out_len = 0;
        old_len = q->out_len;
        r = out_append(q, text, strlen(text));
        if (r >= 0)
                r = out_append(q, "\r\n", 2);
        json_object_put(msg);
        if (r < 0) {
                q->out_len = old_len; /* drop a half-queued command */
                return r;
        }

        q->pending[q->n_pending++] = (QmpPending) {
                .id = q->next_id,
                .deadline_usec = deadline_from_ms(timeout_ms),
                .command = TAKE_PTR(cmd),
                .cb = cb,
                .obj_cb = obj_cb,
                .userdata = userdata,
        };
        q->stats.pending = q->n_pending;
        if (ret_id)
                *ret_id = q->next_id;
        q->next_id++;
        flush_output(q);
        return 0;
}

int qmp_new(int fd, Qmp **ret) {
        _cleanup_close_ int fd_owned = fd;
        Qmp *q;
        int flags, r;

        if (fd < 0)
                return -EBADF;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->fd = TAKE_FD(fd_owned);
        q->max_message_size = QMP_DEFAULT_MAX_MESSAGE_SIZE;
        q->next_id = 1;
        q->tok = tokener_new();
        if (!q->tok) {
                qmp_free(q);
                return -ENOMEM;
        }
        /* qmp_capabilities goes first; it is held until the greeting arrives. */
        r = queue_command(q, "qmp_capabilities", NULL, 0, NULL, caps_reply, NULL, &q->caps_id);
        if (r < 0) {
                qmp_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

static int unix_socket_connect(const char *socket_path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len;

        if (!socket_path)
                return -EINVAL;
        len = strlen(socket_path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, socket_path, len);

        /* Non-blocking so a full listen backlog (QEMU accepts one client per
         * monitor) gives -EAGAIN instead of hanging. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int qmp_connect(const char *socket_path, Qmp **ret) {
        int fd = -EBADF, r;

        r = unix_socket_connect(socket_path, &fd);
        if (r < 0)
                return r;
        return qmp_new(fd, ret);
}

int qmp_connect_sync(const char *socket_path, int timeout_ms, Qmp **ret, char **ret_reason) {
        uint64_t deadline = timeout_ms >= 0 ? now_usec() + (uint64_t) timeout_ms * 1000 : 0;
        Qmp *q = NULL;
        int fd = -EBADF, r;

        for (;;) {
                r = unix_socket_connect(socket_path, &fd);
                if (r != -EAGAIN)
                        break;
                /* Backlog full: nothing to wait on but time. */
                if (deadline && now_usec() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                (void) poll(NULL, 0, 10);
        }
        if (r < 0) {
                if (ret_reason && asprintf(ret_reason, "connect(%s): %s", socket_path ? socket_path : "(null)",
                                           strerror(-r)) < 0)
                        *ret_reason = NULL;
                return r;
        }
        r = qmp_new(fd, &q);
        if (r < 0) {
                if (ret_reason && asprintf(ret_reason, "setting up QMP connection: %s", strerror(-r)) < 0)
                        *ret_reason = NULL;
                return r;
        }
        if (deadline) {
                uint64_t now = now_usec();

                timeout_ms = now >= deadline ? 0 : (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT_MAX);
        }
        r = qmp_wait_ready(q, timeout_ms == 0 ? 1 : timeout_ms);
        if (r < 0) {
                if (ret_reason) {
                        const char *why = qmp_get_close_reason(q);

                        *ret_reason = strdup(why ? why : strerror(-r));
                }
                qmp_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

void qmp_free(Qmp *q) {
        if (!q)
                return;
        /* Userdata of pending commands may need freeing: tell their owners.
         * Marked closed first, so a callback cannot queue anything new. */
        if (q->state != QMP_STATE_CLOSED) {
                q->state = QMP_STATE_CLOSED;
                q->close_error = -ECANCELED;
        }
        fail_pending(q, -ECANCELED);
        free(q->pending);
        if (q->tok)
                json_tokener_free(q->tok);
        if (q->fd >= 0)
                close(q->fd);
        free(q->out);
        free(q->close_reason);
        greeting_done(&q->greeting);
        free(q);
}

int qmp_set_max_message_size(Qmp *q, size_t bytes) {
        if (bytes < QMP_MIN_MESSAGE_SIZE)
                return -EINVAL;
        q->max_message_size = bytes;
        return 0;
}

void qmp_set_event_handler(Qmp *q, QmpEventFn fn, void *userdata) {
        q->event_fn = fn;
        q->event_userdata = userdata;
}

void qmp_set_close_handler(Qmp *q, QmpCloseFn fn, void *userdata) {
        q->close_fn = fn;
        q->close_userdata = userdata;
}

/* ---- public: event loop --------------------------------------------------- */

int qmp_get_fd(const Qmp *q) {
        return q->fd;
}

short qmp_get_events(const Qmp *q) {
        if (q->state == QMP_STATE_CLOSED)
                return 0;
        if (q->state != QMP_STATE_GREETING && q->out_off < q->out_len && !q->write_error)
                return POLLIN | POLLOUT;
        return POLLIN;
}

int qmp_get_timeout_ms(const Qmp *q) {
        uint64_t earliest = 0, now;

        if (q->state == QMP_STATE_CLOSED)
                return -1;
        if (q->write_error)
                return 0; /* report it at the next dispatch */
        for (size_t i = 0; i < q->n_pending; i++)
                if (q->pending[i].deadline_usec &&
                    (earliest == 0 || q->pending[i].deadline_usec < earliest))
                        earliest = q->pending[i].deadline_usec;
        if (earliest == 0)
                return -1;
        now = now_usec();
        if (earliest <= now)
                return 0;
        return (int) MIN((earliest - now + 999) / 1000, (uint64_t) INT_MAX);
}

int qmp_dispatch(Qmp *q, short revents) {
        int r;

        if (q->in_callback)
                return -EBUSY;
        if (q->state == QMP_STATE_CLOSED)
                return q->close_error;

        /* revents is only a hint: reading and writing are non-blocking, and
         * trying both costs two syscalls at most. */
        r = read_input(q);
        if (r < 0)
                return r;
        flush_output(q);
        if (q->write_error)
                return qmp_fail(q, q->write_error, "send() to QMP socket failed: %s",
                                strerror(-q->write_error));
        return check_deadlines(q);
}

/* Runs the loop until *done, the connection closes, or (timeout_ms >= 0)
 * the time is up; deadlines of commands are enforced by qmp_dispatch(). */
static int run_until(Qmp *q, const bool *done) {
        while (!*done) {
                struct pollfd pfd;
                int r;

                if (q->state == QMP_STATE_CLOSED)
                        return q->close_error;
                pfd = (struct pollfd) { .fd = q->fd, .events = qmp_get_events(q) };
                r = poll(&pfd, 1, qmp_get_timeout_ms(q));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                r = qmp_dispatch(q, pfd.revents);
                if (r < 0 && !*done)
                        return r;
        }
        return 0;
}

int qmp_wait_ready(Qmp *q, int timeout_ms) {
        if (q->in_callback)
                return -EBUSY;
        if (q->state == QMP_STATE_CLOSED)
                return q->close_error;
        /* The qmp_capabilities entry stands for the whole handshake: its
         * deadline also covers the wait for the greeting. */
        for (size_t i = 0; i < q->n_pending; i++)
                if (q->pending[i].id == q->caps_id && timeout_ms >= 0) {
                        uint64_t d = now_usec() + (uint64_t) timeout_ms * 1000;

                        if (q->pending[i].deadline_usec == 0 || d < q->pending[i].deadline_usec)
                                q->pending[i].deadline_usec = d;
                }
        return run_until(q, &q->ready);
}

bool qmp_is_ready(const Qmp *q) {
        return q->state == QMP_STATE_READY;
}

const QmpGreeting *qmp_get_greeting(const Qmp *q) {
        return q->has_greeting ? &q->greeting : NULL;
}

int qmp_get_close_error(const Qmp *q) {
        return q->state == QMP_STATE_CLOSED ? q->close_error : 0;
}

const char *qmp_get_close_reason(const Qmp *q) {
        if (q->state != QMP_STATE_CLOSED)
                return NULL;
        return q->close_reason ? q->close_reason : strerror(-q->close_error);
}

void qmp_get_stats(const Qmp *q, QmpStats *ret) {
        *ret = q->stats;
}

/* ---- public: commands ----------------------------------------------------- */

int qmp_execute_obj(Qmp *q, const char *command, struct json_object *args, int timeout_ms,
                    QmpObjReplyFn cb, void *userdata) {
        return queue_command(q, command, args, timeout_ms, NULL, cb, userdata, NULL);
}

int qmp_execute(Qmp *q, const char *command, const char *args_json, int timeout_ms, QmpReplyFn cb,
                void *userdata) {
        struct json_object *args = NULL;
        int r;

        if (args_json) {
                r = qmp_json_parse(args_json, &args);
                if (r == -EBADMSG)
                        return -EINVAL;
                if (r < 0)
                        return r;
                if (!json_object_is_type(args, json_type_object)) {
                        json_object_put(args);
                        return -EINVAL;
                }
        }
        r = queue_command(q, command, args, timeout_ms, cb, NULL, userdata, NULL);
        json_object_put(args);
        return r;
}

typedef struct SyncCall {
        bool done;
        int r;
        QmpParseFn parse;
        void *out;
        QmpError error;
} SyncCall;

static void sync_reply(Qmp *q, int r, struct json_object *ret, const QmpError *err, void *userdata) {
        SyncCall *c = userdata;

        c->done = true;
        c->r = r;
        if (r == 0 && c->parse)
                c->r = c->parse(ret, c->out);
        else if (r == -EREMOTEIO) {
                c->error.error_class = strdup(err->error_class);
                c->error.desc = strdup(err->desc);
                if (!c->error.error_class || !c->error.desc) {
                        qmp_error_done(&c->error);
                        c->r = -ENOMEM;
                }
        }
}

int qmp_execute_sync_parse(Qmp *q, const char *command, struct json_object *args, int timeout_ms,
                           QmpParseFn parse, void *out, QmpError *ret_error) {
        SyncCall c = { .parse = parse, .out = out };
        int r;

        if (q->in_callback)
                return -EBUSY;
        /* The command's own deadline makes qmp_dispatch() close the
         * connection when it passes. */
        r = queue_command(q, command, args, timeout_ms < 0 ? 0 : MAX(timeout_ms, 1), NULL, sync_reply, &c,
                          NULL);
        if (r < 0)
                return r;
        r = run_until(q, &c.done);
        if (!c.done) {
                /* poll() failed; the entry still points at c, so close the
                 * connection (completing it) before c goes out of scope. */
                (void) qmp_fail(q, r, "poll() on QMP socket failed: %s", strerror(-r));
                qmp_error_done(&c.error);
                return r;
        }
        if (c.r == -EREMOTEIO && ret_error)
                *ret_error = c.error;
        else
                qmp_error_done(&c.error);
        return c.r;
}

static int parse_to_text(struct json_object *ret, void *out) {
        char *s = strdup(json_text(ret));

        if (!s)
                return -ENOMEM;
        *(char **) out = s;
        return 0;
}

int qmp_execute_sync(Qmp *q, const char *command, const char *args_json, int timeout_ms,
                     char **ret_json, QmpError *ret_error) {
        struct json_object *args = NULL;
        char *text = NULL;
        int r;

        if (args_json) {
                r = qmp_json_parse(args_json, &args);
                if (r == -EBADMSG)
                        return -EINVAL;
                if (r < 0)
                        return r;
                if (!json_object_is_type(args, json_type_object)) {
                        json_object_put(args);
                        return -EINVAL;
                }
        }
        r = qmp_execute_sync_parse(q, command, args, timeout_ms, parse_to_text, &text, ret_error);
        json_object_put(args);
        if (r < 0)
                return r;
        if (ret_json)
                *ret_json = text;
        else
                free(text);
        return 0;
}
