/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/qmp/test-qmp-peer.c - libqmp against a scripted QMP peer over
 * socketpair(): framing, handshake, ordering, errors, hostile input and the
 * typed parsers on QEMU 7.2 replies (tests/qmp/data/).
 *
 * Two styles: single-threaded tests write as the peer, call qmp_dispatch()
 * and read what the client sent; tests of the blocking calls run the peer
 * from a script in a thread (PeerThread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/macros.h"
#include "qmp/qmp.h"

#ifndef QMP_TEST_DATA_DIR
#error "QMP_TEST_DATA_DIR must be defined by the build"
#endif

/* ---- fixtures ------------------------------------------------------------- */

static char *read_fixture(const char *name) {
        char path[4096];
        _cleanup_fclose_ FILE *f = NULL;
        char *buf;
        long n;

        snprintf(path, sizeof(path), "%s/%s.json", QMP_TEST_DATA_DIR, name);
        f = fopen(path, "re");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        assert_true(n > 0);
        rewind(f);
        buf = malloc((size_t) n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = 0;
        return buf;
}

/* The "return" member of a fixture reply, as text (what QmpReplyFn gets). */
static char *fixture_return(const char *name) {
        _cleanup_free_ char *text = read_fixture(name);
        struct json_object *o = json_tokener_parse(text), *ret;
        char *s;

        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "return", &ret));
        s = strdup(json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        assert_non_null(s);
        return s;
}

/* A reply with "id" inserted after its opening brace, CRLF-terminated. */
static char *with_id(const char *reply, uint64_t id) {
        char *s;

        assert_true(reply[0] == '{');
        assert_true(asprintf(&s, "{\"id\": %llu, %s\r\n", (unsigned long long) id, reply + 1) > 0);
        return s;
}

/* ---- socket helpers ------------------------------------------------------- */

static void write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

                assert_true(k > 0);
                s += k;
                n -= (size_t) k;
        }
}

/* Reads one line (a command the client sent) within 5 s; NULL on EOF. */
static char *read_line(int fd) {
        char buf[65536];
        size_t n = 0;

        while (n < sizeof(buf) - 1) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                if (poll(&p, 1, 5000) <= 0)
                        return NULL;
                k = read(fd, buf + n, 1);
                if (k <= 0)
                        return NULL;
                if (buf[n] == '\n') {
                        buf[n] = 0;
                        return strdup(buf);
                }
                n++;
        }
        return NULL;
}

typedef struct Command {
        char name[64];
        uint64_t id;
        char args[1024]; /* "arguments" as text, "" when absent */
} Command;

static bool parse_command(const char *line, Command *ret) {
        struct json_object *o = json_tokener_parse(line), *v;
        bool ok = false;

        *ret = (Command) {};
        if (!o)
                return false;
        if (json_object_object_get_ex(o, "execute", &v) && json_object_is_type(v, json_type_string)) {
                snprintf(ret->name, sizeof(ret->name), "%s", json_object_get_string(v));
                if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_int)) {
                        ret->id = (uint64_t) json_object_get_int64(v);
                        ok = true;
                }
                if (json_object_object_get_ex(o, "arguments", &v))
                        snprintf(ret->args, sizeof(ret->args), "%s",
                                 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        }
        json_object_put(o);
        return ok;
}

/* ---- single-threaded connection fixture ----------------------------------- */

typedef struct Conn {
        Qmp *q;
        int peer;
        char log[8192];   /* callbacks in the order they ran */
        int n_close;
        int close_error;
        char close_reason[512];
        QmpEvent last_event; /* typed fields only */
} Conn;

typedef struct Call {
        Conn *c;
        const char *label;
        int r;
        bool done;
        char *json;
        char error_class[64], desc[256];
} Call;

static void logf_(Conn *c, const char *fmt, ...) _printf_(2, 3);
static void logf_(Conn *c, const char *fmt, ...) {
        size_t n = strlen(c->log);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->log + n, sizeof(c->log) - n, fmt, ap);
        va_end(ap);
}

static void on_event(Qmp *q, const QmpEvent *ev, void *userdata) {
        Conn *c = userdata;

        logf_(c, "E:%s%s;", ev->name, strcmp(ev->data_json, "{}") ? ev->data_json : "");
        c->last_event = *ev;
        c->last_event.name = c->last_event.data_json = NULL; /* borrowed */
}

static void on_close(Qmp *q, int error, const char *reason, void *userdata) {
        Conn *c = userdata;

        c->n_close++;
        c->close_error = error;
        snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
        logf_(c, "C:%d;", error);
}

static void on_reply(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        Call *call = userdata;

        assert_false(call->done);
        call->done = true;
        call->r = r;
        if (r == 0) {
                assert_non_null(json);
                call->json = strdup(json);
                logf_(call->c, "R:%s=%s;", call->label, json);
        } else if (r == -EREMOTEIO) {
                assert_non_null(err);
                snprintf(call->error_class, sizeof(call->error_class), "%s", err->error_class);
                snprintf(call->desc, sizeof(call->desc), "%s", err->desc);
                logf_(call->c, "R:%s!%s;", call->label, err->error_class);
        } else {
                assert_null(json);
                logf_(call->c, "R:%s:%d;", call->label, r);
        }
}

static void call_done(Call *call) {
        free(call->json);
        call->json = NULL;
}

static void conn_open(Conn *c) {
        int sv[2];

        *c = (Conn) {};
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qmp_new(sv[0], &c->q), 0);
        c->peer = sv[1];
        qmp_set_event_handler(c->q, on_event, c);
        qmp_set_close_handler(c->q, on_close, c);
}

static void conn_close(Conn *c) {
        qmp_free(c->q);
        c->q = NULL;
        if (c->peer >= 0)
                close(c->peer);
        c->peer = -1;
}

static void peer_send(Conn *c, const char *s) {
        write_all(c->peer, s, strlen(s));
}

static void peer_send_reply(Conn *c, const char *reply, uint64_t id) {
        _cleanup_free_ char *s = with_id(reply, id);

        peer_send(c, s);
}

static Command peer_expect(Conn *c, const char *name) {
        _cleanup_free_ char *line = read_line(c->peer);
        Command cmd;

        assert_non_null(line);
        assert_true(parse_command(line, &cmd));
        assert_string_equal(cmd.name, name);
        return cmd;
}

static bool peer_has_input(Conn *c) {
        struct pollfd p = { .fd = c->peer, .events = POLLIN };

        return poll(&p, 1, 0) > 0;
}

/* Dispatches until the client has read everything the peer wrote. */
static int pump(Conn *c) {
        for (;;) {
                struct pollfd p = { .fd = qmp_get_fd(c->q), .events = POLLIN };
                int r;

                if (poll(&p, 1, 0) <= 0)
                        return 0;
                r = qmp_dispatch(c->q, p.revents);
                if (r < 0)
                        return r;
        }
}

static void handshake(Conn *c) {
        _cleanup_free_ char *greeting = read_fixture("greeting");
        Command cmd;

        peer_send(c, greeting);
        peer_send(c, "\r\n");
        assert_int_equal(pump(c), 0);
        cmd = peer_expect(c, "qmp_capabilities");
        assert_string_equal(cmd.args, "");
        peer_send_reply(c, "{\"return\": {}}", cmd.id);
        assert_int_equal(pump(c), 0);
        assert_true(qmp_is_ready(c->q));
}

/* ---- tests: handshake and framing ----------------------------------------- */

static void test_handshake(void **state) {
        _cleanup_free_ char *greeting = read_fixture("greeting");
        const QmpGreeting *g;
        Conn c;
        Call call = { .c = &c, .label = "early" };
        Command cmd;

        conn_open(&c);
        /* Queued before the greeting: must not be written before it. */
        assert_int_equal(qmp_execute(c.q, "query-status", NULL, 0, on_reply, &call), 0);
        assert_int_equal(qmp_get_events(c.q), POLLIN);
        assert_false(peer_has_input(&c));
        assert_null(qmp_get_greeting(c.q));

        peer_send(&c, greeting);
        peer_send(&c, "\r\n");
        assert_int_equal(pump(&c), 0);
        g = qmp_get_greeting(c.q);
        assert_non_null(g);
        assert_int_equal(g->major, 7);
        assert_int_equal(g->minor, 2);
        assert_int_equal(g->micro, 22);
        assert_string_equal(g->package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
        assert_string_equal(g->capabilities[0], "oob");
        assert_null(g->capabilities[1]);
        assert_false(qmp_is_ready(c.q));

        /* qmp_capabilities first, then the early command, pipelined. */
        cmd = peer_expect(&c, "qmp_capabilities");
        peer_send_reply(&c, "{\"return\": {}}", cmd.id);
        cmd = peer_expect(&c, "query-status");
        peer_send_reply(&c, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}",
                        cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_true(qmp_is_ready(c.q));
        assert_true(call.done);
        assert_int_equal(call.r, 0);
        assert_string_equal(call.json, "{\"status\":\"running\",\"singlestep\":false,\"running\":true}");
        assert_int_equal(qmp_get_close_error(c.q), 0);
        assert_null(qmp_get_close_reason(c.q));
        call_done(&call);
        conn_close(&c);
}

static void test_split_reads(void **state) {
        _cleanup_free_ char *greeting = read_fixture("greeting");
        _cleanup_free_ char *cpus = read_fixture("query-cpus-fast");
        _cleanup_free_ char *reply = NULL;
        Conn c;
        Call call = { .c = &c, .label = "cpus" };
        Command cmd;

        conn_open(&c);
        for (const char *p = greeting; p[1]; p++) {
                write_all(c.peer, p, 1);
                assert_int_equal(pump(&c), 0);
                assert_null(qmp_get_greeting(c.q));
        }
        peer_send(&c, "}");
        assert_int_equal(pump(&c), 0);
        /* The closing brace completes the message; CR LF are just whitespace. */
        assert_non_null(qmp_get_greeting(c.q));
        peer_send(&c, "\r");
        assert_int_equal(pump(&c), 0);
        peer_send(&c, "\n");
        cmd = peer_expect(&c, "qmp_capabilities");
        peer_send_reply(&c, "{\"return\": {}}", cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_true(qmp_is_ready(c.q));

        assert_int_equal(qmp_execute(c.q, "query-cpus-fast", NULL, 0, on_reply, &call), 0);
        cmd = peer_expect(&c, "query-cpus-fast");
        reply = with_id(cpus, cmd.id);
        for (const char *p = reply; *p; p++) {
                assert_int_equal(call.done, p > strrchr(reply, '}'));
                write_all(c.peer, p, 1);
                assert_int_equal(pump(&c), 0);
        }
        assert_true(call.done);
        assert_int_equal(call.r, 0);
        assert_non_null(strstr(call.json, "\"thread-id\":16001"));
        call_done(&call);
        conn_close(&c);
}

static void test_merged_reads(void **state) {
        _cleanup_free_ char *greeting = read_fixture("greeting");
        char buf[4096];
        Conn c;
        Call a = { .c = &c, .label = "a" }, b = { .c = &c, .label = "b" };

        conn_open(&c);
        assert_int_equal(qmp_execute(c.q, "stop", NULL, 0, on_reply, &a), 0);
        assert_int_equal(qmp_execute(c.q, "cont", NULL, 0, on_reply, &b), 0);
        /* Ids are assigned in order: qmp_capabilities 1, stop 2, cont 3.  The
         * whole conversation arrives in one write. */
        snprintf(buf, sizeof(buf),
                 "%s\r\n{\"return\": {}, \"id\": 1}\r\n"
                 "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"STOP\"}\r\n"
                 "{\"return\": {}, \"id\": 2}\r\n"
                 "{\"timestamp\": {\"seconds\": 1700000001, \"microseconds\": 6}, \"event\": \"RESUME\"}\r\n"
                 "{\"return\": {}, \"id\": 3}\r\n",
                 greeting);
        peer_send(&c, buf);
        assert_int_equal(pump(&c), 0);
        assert_string_equal(c.log, "E:STOP;R:a={};E:RESUME;R:b={};");
        assert_true(qmp_is_ready(c.q));
        call_done(&a);
        call_done(&b);
        conn_close(&c);
}

static void test_events_before_reply(void **state) {
        Conn c;
        Call call = { .c = &c, .label = "migrate" };
        Command cmd;
        char buf[2048];

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "migrate", "{\"uri\": \"exec:cat > /dev/null\"}", 0, on_reply, &call),
                         0);
        cmd = peer_expect(&c, "migrate");
        assert_string_equal(cmd.args, "{\"uri\":\"exec:cat > /dev/null\"}");
        snprintf(buf, sizeof(buf),
                 "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, \"event\": \"MIGRATION\", "
                 "\"data\": {\"status\": \"setup\"}}\r\n"
                 "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 2}, \"event\": \"MIGRATION_PASS\", "
                 "\"data\": {\"pass\": 1}}\r\n"
                 "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 3}, \"event\": \"MIGRATION\", "
                 "\"data\": {\"status\": \"active\"}}\r\n"
                 "{\"return\": {}, \"id\": %llu}\r\n",
                 (unsigned long long) cmd.id);
        peer_send(&c, buf);
        assert_int_equal(pump(&c), 0);
        assert_string_equal(c.log, "E:MIGRATION{\"status\":\"setup\"};E:MIGRATION_PASS{\"pass\":1};"
                                   "E:MIGRATION{\"status\":\"active\"};R:migrate={};");
        assert_int_equal(c.last_event.migration_status, QMP_MIGRATION_STATUS_ACTIVE);
        assert_int_equal(c.last_event.timestamp_sec, 1700000000);
        assert_int_equal(c.last_event.timestamp_usec, 3);

        c.log[0] = 0;
        peer_send(&c, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"BALLOON_CHANGE\", "
                      "\"data\": {\"actual\": 1073741824}}\r\n");
        assert_int_equal(pump(&c), 0);
        assert_true(c.last_event.has_balloon_actual);
        assert_int_equal(c.last_event.balloon_actual_bytes, 1073741824);

        /* Unknown events, DEVICE_DELETED, odd data and timestamps: delivered as is. */
        c.log[0] = 0;
        peer_send(&c, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"DEVICE_DELETED\", "
                      "\"data\": {\"device\": \"net0\", \"path\": \"/machine/peripheral/net0\"}}\r\n"
                      "{\"event\": \"SOMETHING_NEW\", \"data\": [1, 2]}\r\n"
                      "{\"timestamp\": \"yesterday\", \"event\": \"MIGRATION\", \"data\": {\"status\": 5}}\r\n"
                      "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n");
        assert_int_equal(pump(&c), 0);
        assert_string_equal(c.log, "E:DEVICE_DELETED{\"device\":\"net0\",\"path\":\"/machine/peripheral/net0\"};"
                                   "E:SOMETHING_NEW[1,2];E:MIGRATION{\"status\":5};"
                                   "E:SHUTDOWN{\"guest\":false,\"reason\":\"host-qmp-quit\"};");
        assert_int_equal(c.last_event.timestamp_sec, -1);
        assert_int_equal(c.n_close, 0);
        call_done(&call);
        conn_close(&c);
}

static void test_pipelined_out_of_order(void **state) {
        Conn c;
        Call calls[3] = { { .c = &c, .label = "a" }, { .c = &c, .label = "b" }, { .c = &c, .label = "c" } };
        Command cmd[3];
        QmpStats st;
        char buf[256];

        conn_open(&c);
        handshake(&c);
        for (int i = 0; i < 3; i++)
                assert_int_equal(qmp_execute(c.q, "query-name", NULL, 0, on_reply, &calls[i]), 0);
        qmp_get_stats(c.q, &st);
        assert_int_equal(st.pending, 3);
        for (int i = 0; i < 3; i++)
                cmd[i] = peer_expect(&c, "query-name");
        assert_true(cmd[0].id != cmd[1].id && cmd[1].id != cmd[2].id && cmd[0].id != cmd[2].id);
        /* Answer c, a, b. */
        snprintf(buf, sizeof(buf), "{\"return\": {\"name\": \"c\"}, \"id\": %llu}\r\n", (unsigned long long) cmd[2].id);
        peer_send(&c, buf);
        snprintf(buf, sizeof(buf), "{\"return\": {\"name\": \"a\"}, \"id\": %llu}\r\n", (unsigned long long) cmd[0].id);
        peer_send(&c, buf);
        snprintf(buf, sizeof(buf), "{\"id\": %llu, \"return\": {\"name\": \"b\"}}\r\n", (unsigned long long) cmd[1].id);
        peer_send(&c, buf);
        assert_int_equal(pump(&c), 0);
        assert_string_equal(c.log, "R:c={\"name\":\"c\"};R:a={\"name\":\"a\"};R:b={\"name\":\"b\"};");
        qmp_get_stats(c.q, &st);
        assert_int_equal(st.pending, 0);
        assert_int_equal(st.replies, 4); /* with qmp_capabilities */
        for (int i = 0; i < 3; i++)
                call_done(&calls[i]);
        conn_close(&c);
}

static void test_error_reply_and_unknown_ids(void **state) {
        _cleanup_free_ char *err = read_fixture("error-command-not-found");
        Conn c;
        Call call = { .c = &c, .label = "nosuch" }, ok = { .c = &c, .label = "ok" };
        Command cmd;
        QmpStats st;

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "nosuch", NULL, 0, on_reply, &call), 0);
        cmd = peer_expect(&c, "nosuch");
        /* Replies nobody asked for: dropped and counted, connection stays. */
        peer_send(&c, "{\"return\": {}, \"id\": 4242}\r\n{\"return\": {}}\r\n{\"return\": {}, \"id\": \"x\"}\r\n"
                      "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n"
                      "{\"something\": \"else\"}\r\n");
        peer_send_reply(&c, err, cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_true(call.done);
        assert_int_equal(call.r, -EREMOTEIO);
        assert_string_equal(call.error_class, "CommandNotFound");
        assert_string_equal(call.desc, "The command nosuch has not been found");
        qmp_get_stats(c.q, &st);
        assert_int_equal(st.dropped_replies, 5);

        /* A reply to an already-answered id is a duplicate: dropped too. */
        peer_send_reply(&c, "{\"return\": {}}", cmd.id);
        assert_int_equal(qmp_execute(c.q, "cont", NULL, 0, on_reply, &ok), 0);
        cmd = peer_expect(&c, "cont");
        peer_send_reply(&c, "{\"return\": {}}", cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_int_equal(ok.r, 0);
        qmp_get_stats(c.q, &st);
        assert_int_equal(st.dropped_replies, 6);
        assert_int_equal(c.n_close, 0);

        /* A malformed error object for an id nobody waits for is dropped
         * like any unknown reply. */
        peer_send(&c, "{\"error\": {\"class\": 1}, \"id\": 4243}\r\n");
        assert_int_equal(pump(&c), 0);
        assert_int_equal(c.n_close, 0);
        call_done(&call);
        call_done(&ok);
        conn_close(&c);
}

/* qmp.h: an error reply to a pending command whose "error" is not
 * {"class": string, "desc": string} is fatal (-EPROTO): that command and
 * every other pending one complete with the close error, the close handler
 * runs once -- so "r < 0 other than -EREMOTEIO" always means closed. */
static void test_malformed_error_reply_is_fatal(void **state) {
        static const char *const bad[] = {
                "{\"error\": {\"class\": 1}}",
                "{\"error\": \"oops\"}",
                "{\"error\": {\"class\": \"GenericError\"}}",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": 5}}",
                "{\"error\": null}",
        };

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                Conn c;
                Call x = { .c = &c, .label = "x" }, y = { .c = &c, .label = "y" };
                Command cx;

                conn_open(&c);
                handshake(&c);
                assert_int_equal(qmp_execute(c.q, "x", NULL, 0, on_reply, &x), 0);
                assert_int_equal(qmp_execute(c.q, "y", NULL, 0, on_reply, &y), 0);
                cx = peer_expect(&c, "x");
                (void) peer_expect(&c, "y");
                peer_send_reply(&c, bad[i], cx.id);
                if (pump(&c) != -EPROTO)
                        fail_msg("'%s': expected the connection closed with -EPROTO, log %s", bad[i], c.log);
                assert_int_equal(c.n_close, 1);
                assert_int_equal(qmp_get_close_error(c.q), -EPROTO);
                if (!strstr(c.close_reason, "malformed error reply to x"))
                        fail_msg("'%s': close reason '%s'", bad[i], c.close_reason);
                assert_true(x.done);
                assert_int_equal(x.r, -EPROTO);
                assert_true(y.done);
                assert_int_equal(y.r, -EPROTO);
                conn_close(&c);
        }

        /* The same during the handshake. */
        {
                _cleanup_free_ char *greeting = read_fixture("greeting");
                Conn c;
                Command cmd;

                conn_open(&c);
                peer_send(&c, greeting);
                peer_send(&c, "\r\n");
                assert_int_equal(pump(&c), 0);
                cmd = peer_expect(&c, "qmp_capabilities");
                peer_send_reply(&c, "{\"error\": {\"desc\": \"no class\"}}", cmd.id);
                assert_int_equal(pump(&c), -EPROTO);
                assert_non_null(strstr(c.close_reason, "malformed error reply to qmp_capabilities"));
                assert_false(qmp_is_ready(c.q));
                conn_close(&c);
        }
}

/* One hostile stream after a good handshake: expect close with error and a
 * reason containing needle, and the pending command failed with it. */
static void expect_fatal(const char *stream, bool after_handshake, int error, const char *needle) {
        Conn c;
        Call call = { .c = &c, .label = "p" };
        Call late = { .c = &c, .label = "late" };

        conn_open(&c);
        if (after_handshake)
                handshake(&c);
        assert_int_equal(qmp_execute(c.q, "query-status", NULL, 0, on_reply, &call), 0);
        peer_send(&c, stream);
        if (pump(&c) != error)
                fail_msg("stream '%s': expected %d, log %s", stream, error, c.log);
        assert_int_equal(c.n_close, 1);
        assert_int_equal(c.close_error, error);
        assert_int_equal(qmp_get_close_error(c.q), error);
        if (!strstr(c.close_reason, needle))
                fail_msg("stream '%s': close reason '%s' does not contain '%s'", stream, c.close_reason, needle);
        assert_string_equal(qmp_get_close_reason(c.q), c.close_reason);
        assert_true(call.done);
        assert_int_equal(call.r, error);
        /* Closed stays closed. */
        assert_int_equal(qmp_dispatch(c.q, POLLIN), error);
        assert_int_equal(qmp_execute(c.q, "x", NULL, 0, on_reply, &late), error);
        assert_false(late.done);
        assert_int_equal(qmp_get_events(c.q), 0);
        assert_int_equal(c.n_close, 1);
        conn_close(&c);
}

static void test_garbage(void **state) {
        expect_fatal("{\"return\": tru}\r\n", true, -EBADMSG, "invalid JSON");
        expect_fatal("\x01\x02\x03", true, -EBADMSG, "invalid JSON");
        expect_fatal("{'return': {}}\r\n", true, -EBADMSG, "invalid JSON");
        expect_fatal("{\"return\": {\"a\": \"\\q\"}}\r\n", true, -EBADMSG, "invalid JSON");
        /* json-c takes single quotes even in strict mode; libqmp does not. */
        expect_fatal("{\"return\": {'a': 1}}\r\n", true, -EBADMSG, "single-quoted");
        expect_fatal("{\"a\": 1,}\r\n", true, -EBADMSG, "invalid JSON");
        expect_fatal("[1, 2]\r\n", true, -EPROTO, "not a JSON object");
        expect_fatal("\"just a string\"\r\n", true, -EPROTO, "not a JSON object");
        expect_fatal("null\r\n", true, -EPROTO, "not a JSON object");
        expect_fatal("42\r\n", true, -EPROTO, "not a JSON object");
        expect_fatal("{\"event\": 5}\r\n", true, -EPROTO, "malformed event");
        expect_fatal("{\"QMP\": {}}\r\n", true, -EPROTO, "second QMP greeting");
}

static void test_bad_greeting(void **state) {
        expect_fatal("{\"hello\": \"world\"}\r\n", false, -EPROTO, "expected the QMP greeting");
        expect_fatal("{\"return\": {}, \"id\": 1}\r\n", false, -EPROTO, "expected the QMP greeting");
        expect_fatal("{\"QMP\": {\"version\": {\"qemu\": {\"major\": \"7\"}}}}\r\n", false, -EPROTO,
                     "malformed QMP greeting");
        expect_fatal("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
                     "\"package\": \"\"}, \"capabilities\": [1]}}\r\n",
                     false, -EPROTO, "capability is not a string");
        expect_fatal("[]\r\n", false, -EPROTO, "not a JSON object");
}

static void test_capabilities_refused(void **state) {
        _cleanup_free_ char *greeting = read_fixture("greeting");
        Conn c;
        Command cmd;

        conn_open(&c);
        peer_send(&c, greeting);
        peer_send(&c, "\r\n");
        assert_int_equal(pump(&c), 0);
        cmd = peer_expect(&c, "qmp_capabilities");
        peer_send_reply(&c, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}", cmd.id);
        assert_int_equal(pump(&c), -EPROTO);
        assert_string_equal(c.close_reason, "qmp_capabilities failed: GenericError: nope");
        assert_false(qmp_is_ready(c.q));
        conn_close(&c);
}

static void test_eof(void **state) {
        Conn c;
        Call call = { .c = &c, .label = "p" };

        /* In the middle of a message. */
        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "query-status", NULL, 0, on_reply, &call), 0);
        (void) peer_expect(&c, "query-status");
        peer_send(&c, "{\"return\": {\"status\": \"runn");
        assert_int_equal(pump(&c), 0);
        close(c.peer);
        c.peer = -1;
        assert_int_equal(pump(&c), -ECONNRESET);
        if (!strstr(c.close_reason, "middle of a message"))
                fail_msg("reason: %s", c.close_reason);
        assert_int_equal(call.r, -ECONNRESET);
        assert_string_equal(c.close_reason, "QMP peer closed the connection in the middle of a message");
        conn_close(&c);

        /* Closing with our command unread makes a reset, not an EOF. */
        conn_open(&c);
        handshake(&c);
        call = (Call) { .c = &c, .label = "p" };
        assert_int_equal(qmp_execute(c.q, "query-status", NULL, 0, on_reply, &call), 0);
        peer_send(&c, "{\"return\": {");
        close(c.peer);
        c.peer = -1;
        assert_int_equal(pump(&c), -ECONNRESET);
        assert_string_equal(c.close_reason, "QMP peer reset the connection in the middle of a message");
        assert_int_equal(call.r, -ECONNRESET);
        conn_close(&c);

        /* Between messages. */
        conn_open(&c);
        handshake(&c);
        peer_send(&c, "\r\n");
        close(c.peer);
        c.peer = -1;
        assert_int_equal(pump(&c), -ECONNRESET);
        assert_string_equal(c.close_reason, "QMP peer closed the connection");
        conn_close(&c);

        /* Before the greeting. */
        conn_open(&c);
        close(c.peer);
        c.peer = -1;
        assert_int_equal(pump(&c), -ECONNRESET);
        assert_non_null(strstr(c.close_reason, "before the greeting"));
        conn_close(&c);
}

static void test_deep_nesting(void **state) {
        char buf[4096];

        memset(buf, '[', 1000);
        buf[1000] = 0;
        expect_fatal(buf, true, -EBADMSG, "nesting limit");
        /* Just under the limit is fine (QMP_MAX_DEPTH levels incl. the object). */
        {
                Conn c;
                Call call = { .c = &c, .label = "deep" };
                Command cmd;
                size_t n = 0;

                conn_open(&c);
                handshake(&c);
                assert_int_equal(qmp_execute(c.q, "x", NULL, 0, on_reply, &call), 0);
                cmd = peer_expect(&c, "x");
                n += (size_t) snprintf(buf, sizeof(buf), "{\"id\": %llu, \"return\": ", (unsigned long long) cmd.id);
                for (int i = 0; i < QMP_MAX_DEPTH - 1; i++)
                        buf[n++] = '[';
                for (int i = 0; i < QMP_MAX_DEPTH - 1; i++)
                        buf[n++] = ']';
                strcpy(buf + n, "}\r\n");
                peer_send(&c, buf);
                assert_int_equal(pump(&c), 0);
                assert_int_equal(call.r, 0);
                call_done(&call);
                conn_close(&c);
        }
}

static void test_too_many_values(void **state) {
        Conn c;
        Call call = { .c = &c, .label = "p" };
        char buf[8192];
        size_t n;

        /* 4 KiB cap: at most 32 objects and 256 values per message. */
        conn_open(&c);
        assert_int_equal(qmp_set_max_message_size(c.q, 100), -EINVAL);
        assert_int_equal(qmp_set_max_message_size(c.q, 4096), 0);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "x", NULL, 0, on_reply, &call), 0);
        n = (size_t) snprintf(buf, sizeof(buf), "{\"return\": [");
        for (int i = 0; i < 40; i++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{},");
        peer_send(&c, buf);
        assert_int_equal(pump(&c), -EMSGSIZE);
        assert_non_null(strstr(c.close_reason, "too many JSON values"));
        conn_close(&c);

        conn_open(&c);
        assert_int_equal(qmp_set_max_message_size(c.q, 4096), 0);
        handshake(&c);
        n = (size_t) snprintf(buf, sizeof(buf), "{\"return\": [");
        for (int i = 0; i < 300; i++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "1,");
        peer_send(&c, buf);
        assert_int_equal(pump(&c), -EMSGSIZE);
        conn_close(&c);
}

static void test_large_reply_random_chunks(void **state) {
        _cleanup_free_ char *schema = read_fixture("query-qmp-schema");
        _cleanup_free_ char *reply = NULL;
        Conn c;
        Call call = { .c = &c, .label = "schema" };
        Command cmd;
        unsigned seed = 12345;
        size_t len, off = 0;

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "query-qmp-schema", NULL, 0, on_reply, &call), 0);
        cmd = peer_expect(&c, "query-qmp-schema");
        reply = with_id(schema, cmd.id);
        len = strlen(reply);
        assert_true(len > 200000);
        while (off < len) {
                size_t n;

                seed = seed * 1103515245u + 12345u;
                n = MIN(len - off, (size_t) 1 + (seed >> 16) % 9000);
                write_all(c.peer, reply + off, n);
                off += n;
                assert_int_equal(pump(&c), 0);
        }
        assert_true(call.done);
        assert_int_equal(call.r, 0);
        assert_true(strlen(call.json) > 150000);
        call_done(&call);
        conn_close(&c);
}

static void test_callbacks_reenter(void **state);

typedef struct Chain {
        Conn *c;
        Call next;
        int sync_r;
} Chain;

static void on_chain(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        Chain *ch = userdata;
        char *out = NULL;

        /* Blocking calls and dispatching are refused inside callbacks;
         * queueing more commands is fine. */
        ch->sync_r = qmp_execute_sync(q, "x", NULL, 100, &out, NULL);
        assert_null(out);
        assert_int_equal(qmp_dispatch(q, 0), -EBUSY);
        assert_int_equal(qmp_wait_ready(q, 10), -EBUSY);
        assert_int_equal(qmp_execute(q, "second", NULL, 0, on_reply, &ch->next), 0);
}

static void test_callbacks_reenter(void **state) {
        Conn c;
        Chain ch = { .c = &c, .next = { .c = &c, .label = "second" } };
        Command cmd;

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "first", NULL, 0, on_chain, &ch), 0);
        cmd = peer_expect(&c, "first");
        peer_send_reply(&c, "{\"return\": {}}", cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_int_equal(ch.sync_r, -EBUSY);
        cmd = peer_expect(&c, "second");
        peer_send_reply(&c, "{\"return\": 7}", cmd.id);
        assert_int_equal(pump(&c), 0);
        assert_int_equal(ch.next.r, 0);
        assert_string_equal(ch.next.json, "7");
        call_done(&ch.next);
        conn_close(&c);
}

static void test_free_cancels_and_bad_args(void **state) {
        Conn c;
        Call a = { .c = &c, .label = "a" };

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_execute(c.q, "x", "[1]", 0, on_reply, &a), -EINVAL);
        assert_int_equal(qmp_execute(c.q, "x", "{\"a\":", 0, on_reply, &a), -EINVAL);
        assert_int_equal(qmp_execute(c.q, "x", "{} {}", 0, on_reply, &a), -EINVAL);
        assert_int_equal(qmp_execute(c.q, "", NULL, 0, on_reply, &a), -EINVAL);
        assert_int_equal(qmp_execute_sync(c.q, "x", "nope", 100, NULL, NULL), -EINVAL);
        assert_false(a.done);
        assert_int_equal(qmp_execute(c.q, "x", "{\"a\": [1, \"\\u00e9\"]}", 0, on_reply, &a), 0);
        qmp_free(c.q);
        c.q = NULL;
        assert_true(a.done);
        assert_int_equal(a.r, -ECANCELED);
        assert_int_equal(c.n_close, 0); /* freeing is not a close event */
        conn_close(&c);
}

static void test_async_deadline(void **state) {
        Conn c;
        Call a = { .c = &c, .label = "a" };
        struct pollfd p;
        int timeout;

        conn_open(&c);
        handshake(&c);
        assert_int_equal(qmp_get_timeout_ms(c.q), -1);
        assert_int_equal(qmp_execute(c.q, "query-status", NULL, 50, on_reply, &a), 0);
        timeout = qmp_get_timeout_ms(c.q);
        assert_true(timeout > 0 && timeout <= 50);
        /* An event loop: poll with the library's timeout, then dispatch. */
        for (int i = 0; i < 100 && !a.done; i++) {
                p = (struct pollfd) { .fd = qmp_get_fd(c.q), .events = qmp_get_events(c.q) };
                (void) poll(&p, 1, qmp_get_timeout_ms(c.q));
                (void) qmp_dispatch(c.q, p.revents);
        }
        assert_int_equal(a.r, -ETIMEDOUT);
        assert_int_equal(c.close_error, -ETIMEDOUT);
        assert_non_null(strstr(c.close_reason, "'query-status'"));
        conn_close(&c);
}

/* ---- typed parsers on fixtures -------------------------------------------- */

static void test_parse_fixtures(void **state) {
        _cleanup_free_ char *status = fixture_return("query-status");
        _cleanup_free_ char *cpus_json = fixture_return("query-cpus-fast");
        _cleanup_free_ char *io_json = fixture_return("query-iothreads");
        _cleanup_free_ char *mem_json = fixture_return("query-memory-size-summary");
        _cleanup_free_ char *balloon_json = fixture_return("query-balloon");
        _cleanup_free_ char *pci_json = fixture_return("query-pci");
        _cleanup_free_ char *mig_active = fixture_return("query-migrate-active");
        _cleanup_free_ char *mig_done = fixture_return("query-migrate-completed");
        _cleanup_free_ char *mig_none = fixture_return("query-migrate-none");
        QmpStatus st;
        QmpCpu *cpus;
        QmpIothread *io;
        QmpMemorySummary mem;
        QmpPciDevice *pci;
        QmpMigrateInfo mig;
        uint64_t actual;
        size_t n;

        assert_int_equal(qmp_parse_status(status, &st), 0);
        assert_true(st.running);
        assert_string_equal(st.status, "running");

        assert_int_equal(qmp_parse_cpus_fast(cpus_json, &cpus, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(cpus[0].cpu_index, 0);
        assert_int_equal(cpus[0].thread_id, 16001);
        assert_int_equal(cpus[1].cpu_index, 1);
        assert_int_equal(cpus[1].thread_id, 16002);
        assert_int_equal(cpus[1].core_id, 1);
        assert_int_equal(cpus[1].socket_id, 0);
        assert_int_equal(cpus[1].thread_id_in_core, 0);
        assert_int_equal(cpus[1].die_id, -1);
        assert_int_equal(cpus[1].node_id, -1);
        assert_string_equal(cpus[1].qom_path, "/machine/unattached/device[2]");
        assert_string_equal(cpus[1].target, "x86_64");
        qmp_cpus_free(cpus, n);

        assert_int_equal(qmp_parse_iothreads(io_json, &io, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(io[0].id, "io0");
        assert_int_equal(io[0].thread_id, 15999);
        qmp_iothreads_free(io, n);

        assert_int_equal(qmp_parse_memory_size_summary(mem_json, &mem), 0);
        assert_int_equal(mem.base_memory_bytes, 64 << 20);
        assert_true(mem.has_plugged_memory);
        assert_int_equal(mem.plugged_memory_bytes, 0);

        assert_int_equal(qmp_parse_balloon(balloon_json, &actual), 0);
        assert_int_equal(actual, 64 << 20);

        assert_int_equal(qmp_parse_pci(pci_json, &pci, &n), 0);
        /* host bridge, ISA, IDE, PM (bus 0), the bridge, rng behind it, balloon. */
        assert_int_equal(n, 7);
        assert_int_equal(pci[0].vendor_id, 0x8086);
        assert_int_equal(pci[0].device_id, 0x1237);
        assert_int_equal(pci[0].class_code, 0x0600);
        assert_string_equal(pci[0].class_desc, "Host bridge");
        assert_int_equal(pci[2].function, 1);
        assert_string_equal(pci[4].qdev_id, "br0");
        assert_true(pci[4].is_bridge);
        assert_int_equal(pci[4].secondary_bus, 1);
        assert_int_equal(pci[4].slot, 2);
        assert_string_equal(pci[5].qdev_id, "rng0");
        assert_int_equal(pci[5].bus, 1);
        assert_int_equal(pci[5].slot, 1);
        assert_int_equal(pci[5].vendor_id, 0x1af4);
        assert_int_equal(pci[5].device_id, 0x1005);
        assert_string_equal(pci[5].class_desc, "");
        assert_false(pci[5].is_bridge);
        assert_int_equal(pci[5].secondary_bus, -1);
        assert_string_equal(pci[6].qdev_id, "balloon0");
        for (size_t i = 0; i < n; i++)
                assert_false(pci[i].is_vfio);
        qmp_pci_devices_free(pci, n);

        assert_int_equal(qmp_parse_migrate(mig_active, &mig), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_ACTIVE);
        assert_string_equal(mig.status_string, "active");
        assert_true(mig.has_ram);
        assert_int_equal(mig.ram_transferred_bytes, 100420);
        assert_int_equal(mig.ram_remaining_bytes, 66670592);
        assert_int_equal(mig.ram_total_bytes, 67641344);
        assert_int_equal(mig.ram_dirty_sync_count, 1);
        assert_int_equal(mig.expected_downtime_ms, 300);
        assert_int_equal(mig.total_time_ms, 511);
        assert_int_equal(mig.downtime_ms, -1);

        assert_int_equal(qmp_parse_migrate(mig_done, &mig), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_COMPLETED);
        assert_int_equal(mig.ram_remaining_bytes, 0);
        assert_int_equal(mig.downtime_ms, 2);

        assert_int_equal(qmp_parse_migrate(mig_none, &mig), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_NONE);
        assert_false(mig.has_ram);
}

static void test_parse_wrong_types(void **state) {
        static const char *const bad_status[] = {
                "{\"status\": \"running\", \"running\": \"yes\"}",
                "{\"status\": 1, \"running\": true}",
                "{\"running\": true}",
                "[]",
                "null",
                "{\"status\": \"an-absurdly-long-status-string-of-no-known-kind\", \"running\": true}",
        };
        static const char *const bad_cpus[] = {
                "{}",
                "[{\"cpu-index\": \"0\", \"thread-id\": 1, \"qom-path\": \"/x\"}]",
                "[{\"cpu-index\": 0, \"thread-id\": 1.5, \"qom-path\": \"/x\"}]",
                "[{\"cpu-index\": 0, \"thread-id\": 1, \"qom-path\": 5}]",
                "[{\"cpu-index\": 0, \"thread-id\": 1, \"qom-path\": \"/x\", \"props\": {\"core-id\": \"0\"}}]",
                "[{\"cpu-index\": 0, \"thread-id\": 1, \"qom-path\": \"/x\"}, 7]",
                "[{\"cpu-index\": -1, \"thread-id\": 1, \"qom-path\": \"/x\"}]",
                "[{\"cpu-index\": 0, \"thread-id\": 99999999999999999999, \"qom-path\": \"/x\"}]",
        };
        static const char *const bad_pci[] = {
                "[{\"bus\": 0, \"devices\": {}}]",
                "[{\"bus\": 0, \"devices\": [{\"bus\": 0, \"slot\": 40, \"function\": 0, \"class_info\": "
                "{\"class\": 1}, \"id\": {\"vendor\": 1, \"device\": 2}, \"qdev_id\": \"\"}]}]",
                "[{\"bus\": 0, \"devices\": [{\"bus\": 0, \"slot\": 1, \"function\": 0, \"class_info\": "
                "{\"class\": 1}, \"id\": {\"vendor\": 70000, \"device\": 2}, \"qdev_id\": \"\"}]}]",
                "[{\"bus\": 0, \"devices\": [{\"bus\": 0, \"slot\": 1, \"function\": 0, \"class_info\": "
                "{\"class\": 1}, \"id\": {\"vendor\": 1, \"device\": 2}, \"qdev_id\": \"\", "
                "\"pci_bridge\": {\"bus\": {\"secondary\": 1}, \"devices\": [{\"bus\": \"1\"}]}}]}]",
        };
        QmpStatus st;
        QmpCpu *cpus;
        QmpPciDevice *pci;
        QmpIothread *io;
        QmpMemorySummary mem;
        QmpMigrateInfo mig;
        uint64_t actual;
        size_t n;

        for (size_t i = 0; i < ARRAY_SIZE(bad_status); i++)
                assert_int_equal(qmp_parse_status(bad_status[i], &st), -EBADMSG);
        for (size_t i = 0; i < ARRAY_SIZE(bad_cpus); i++)
                assert_int_equal(qmp_parse_cpus_fast(bad_cpus[i], &cpus, &n), -EBADMSG);
        for (size_t i = 0; i < ARRAY_SIZE(bad_pci); i++)
                assert_int_equal(qmp_parse_pci(bad_pci[i], &pci, &n), -EBADMSG);
        assert_int_equal(qmp_parse_iothreads("[{\"id\": \"io0\", \"thread-id\": \"1\"}]", &io, &n), -EBADMSG);
        assert_int_equal(qmp_parse_iothreads("[{\"thread-id\": 1}]", &io, &n), -EBADMSG);
        assert_int_equal(qmp_parse_memory_size_summary("{\"base-memory\": -1}", &mem), -EBADMSG);
        assert_int_equal(qmp_parse_memory_size_summary("{\"base-memory\": 1, \"plugged-memory\": true}", &mem),
                         -EBADMSG);
        assert_int_equal(qmp_parse_balloon("{\"actual\": \"1G\"}", &actual), -EBADMSG);
        assert_int_equal(qmp_parse_migrate("{\"status\": 3}", &mig), -EBADMSG);
        assert_int_equal(qmp_parse_migrate("{\"status\": \"active\", \"ram\": {\"transferred\": 1}}", &mig),
                         -EBADMSG);
        assert_int_equal(qmp_parse_migrate("{\"status\": \"active\", \"ram\": []}", &mig), -EBADMSG);
        assert_int_equal(qmp_parse_migrate("not json", &mig), -EBADMSG);

        /* Unknown states are not errors. */
        assert_int_equal(qmp_parse_migrate("{\"status\": \"warp-speed\"}", &mig), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_UNKNOWN);
        assert_string_equal(mig.status_string, "warp-speed");
        /* Empty arrays are fine. */
        assert_int_equal(qmp_parse_cpus_fast("[]", &cpus, &n), 0);
        assert_int_equal(n, 0);
        qmp_cpus_free(cpus, n);
}

static void test_migration_status_enum(void **state) {
        static const char *const names[] = {
                "none", "setup", "cancelling", "cancelled", "active", "postcopy-active", "postcopy-paused",
                "postcopy-recover", "completed", "failed", "colo", "pre-switchover", "device", "wait-unplug",
        };

        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                QmpMigrationStatus s = qmp_migration_status_from_string(names[i]);

                assert_int_not_equal(s, QMP_MIGRATION_STATUS_UNKNOWN);
                assert_string_equal(qmp_migration_status_to_string(s), names[i]);
        }
        assert_int_equal(qmp_migration_status_from_string("device"), QMP_MIGRATION_STATUS_DEVICE);
        assert_int_equal(qmp_migration_status_from_string("pre-switchover"), QMP_MIGRATION_STATUS_PRE_SWITCHOVER);
        assert_int_equal(qmp_migration_status_from_string("unknown"), QMP_MIGRATION_STATUS_UNKNOWN);
        assert_int_equal(qmp_migration_status_from_string("ACTIVE"), QMP_MIGRATION_STATUS_UNKNOWN);
        assert_int_equal(qmp_migration_status_from_string(NULL), QMP_MIGRATION_STATUS_UNKNOWN);
        assert_string_equal(qmp_migration_status_to_string(_QMP_MIGRATION_STATUS_MAX), "unknown");
        assert_string_equal(qmp_migration_status_to_string((QmpMigrationStatus) -3), "unknown");
}

/* ---- scripted peer in a thread (blocking API) ----------------------------- */

/* Steps: "greet", "caps", "<NAME" (expect command NAME), ">TEXT" (send,
 * "$ID" replaced by the last command's id), "@FIXTURE" (send fixture file
 * as the reply to the last command), "sleep:MS", "close", "drain" (read
 * until EOF), "flood:BYTES" (stream 'a's until done or the client hangs
 * up). */
typedef struct PeerThread {
        int fd;
        const char *const *steps;
        pthread_t thread;
        char error[512];
        Command last;
        uint64_t flood_sent;
        char args[16][1024];
        size_t n_args;
} PeerThread;

static bool peer_send_raw(PeerThread *p, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k = send(p->fd, s, n, MSG_NOSIGNAL);

                if (k <= 0)
                        return false;
                s += k;
                n -= (size_t) k;
        }
        return true;
}

static void *peer_main(void *userdata) {
        PeerThread *p = userdata;

        for (const char *const *step = p->steps; *step; step++) {
                const char *s = *step;

                if (strcmp(s, "greet") == 0) {
                        char *g = read_fixture("greeting");
                        bool ok = peer_send_raw(p, g, strlen(g)) && peer_send_raw(p, "\r\n", 2);

                        free(g);
                        if (!ok) {
                                snprintf(p->error, sizeof(p->error), "sending greeting failed");
                                break;
                        }
                } else if (strcmp(s, "caps") == 0 || s[0] == '<') {
                        const char *want = s[0] == '<' ? s + 1 : "qmp_capabilities";
                        char *line = read_line(p->fd);

                        if (!line || !parse_command(line, &p->last) || strcmp(p->last.name, want) != 0) {
                                snprintf(p->error, sizeof(p->error), "expected '%s', got '%s'", want,
                                         line ? line : "(EOF)");
                                free(line);
                                break;
                        }
                        free(line);
                        if (p->n_args < ARRAY_SIZE(p->args))
                                memcpy(p->args[p->n_args++], p->last.args, sizeof(p->last.args));
                        if (strcmp(s, "caps") == 0) {
                                char buf[64];

                                snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %llu}\r\n",
                                         (unsigned long long) p->last.id);
                                if (!peer_send_raw(p, buf, strlen(buf)))
                                        break;
                        }
                } else if (s[0] == '>') {
                        char buf[8192], id[32];
                        const char *at = strstr(s + 1, "$ID");

                        snprintf(id, sizeof(id), "%llu", (unsigned long long) p->last.id);
                        if (at)
                                snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (at - s - 1), s + 1, id, at + 3);
                        else
                                snprintf(buf, sizeof(buf), "%s", s + 1);
                        if (!peer_send_raw(p, buf, strlen(buf)))
                                break;
                } else if (s[0] == '@') {
                        char *f = read_fixture(s + 1), *r = with_id(f, p->last.id);
                        bool ok = peer_send_raw(p, r, strlen(r));

                        free(f);
                        free(r);
                        if (!ok)
                                break;
                } else if (strncmp(s, "sleep:", 6) == 0) {
                        (void) poll(NULL, 0, atoi(s + 6));
                } else if (strcmp(s, "close") == 0) {
                        (void) shutdown(p->fd, SHUT_RDWR);
                } else if (strcmp(s, "drain") == 0) {
                        char buf[4096];

                        while (read(p->fd, buf, sizeof(buf)) > 0)
                                ;
                } else if (strncmp(s, "flood:", 6) == 0) {
                        uint64_t total = strtoull(s + 6, NULL, 10);
                        static char chunk[65536];

                        memset(chunk, 'a', sizeof(chunk));
                        while (p->flood_sent < total) {
                                ssize_t k = send(p->fd, chunk, MIN(sizeof(chunk), total - p->flood_sent),
                                                 MSG_NOSIGNAL);
                                if (k <= 0)
                                        break;
                                p->flood_sent += (uint64_t) k;
                        }
                } else {
                        snprintf(p->error, sizeof(p->error), "bad step '%s'", s);
                        break;
                }
        }
        return NULL;
}

/* Creates a connected Qmp (not yet negotiated) and starts the peer script. */
static Qmp *peer_start(PeerThread *p, const char *const *steps) {
        int sv[2];
        Qmp *q;

        *p = (PeerThread) { .steps = steps };
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        p->fd = sv[1];
        assert_int_equal(qmp_new(sv[0], &q), 0);
        assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
        return q;
}

static void peer_join(PeerThread *p, Qmp *q) {
        /* Freeing first lets a "drain" step see EOF. */
        qmp_free(q);
        assert_int_equal(pthread_join(p->thread, NULL), 0);
        close(p->fd);
        if (p->error[0])
                fail_msg("peer: %s", p->error);
}

static void test_sync_execute(void **state) {
        static const char *const steps[] = {
                "greet", "caps",
                "<human-monitor-command", ">{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n",
                ">{\"return\": \"ok\\r\\n\", \"id\": $ID}\r\n",
                "<nosuch", "@error-command-not-found",
                "drain", NULL,
        };
        PeerThread p;
        Qmp *q = peer_start(&p, steps);
        Conn c = {};
        char *ret = NULL;
        QmpError err = {};

        qmp_set_event_handler(q, on_event, &c);
        assert_int_equal(qmp_wait_ready(q, 5000), 0);
        assert_int_equal(qmp_execute_sync(q, "human-monitor-command", "{\"command-line\": \"info status\"}", 5000,
                                          &ret, &err),
                         0);
        assert_string_equal(ret, "\"ok\\r\\n\"");
        assert_null(err.error_class);
        assert_string_equal(c.log, "E:STOP;");
        free(ret);
        ret = NULL;
        assert_int_equal(qmp_execute_sync(q, "nosuch", NULL, 5000, &ret, &err), -EREMOTEIO);
        assert_null(ret);
        assert_string_equal(err.error_class, "CommandNotFound");
        assert_string_equal(err.desc, "The command nosuch has not been found");
        qmp_error_done(&err);
        peer_join(&p, q);
        assert_string_equal(p.args[1], "{\"command-line\":\"info status\"}");
}

static void test_sync_stalled_peer(void **state) {
        static const char *const steps[] = { "greet", "caps", "<query-status", "drain", NULL };
        static const char *const silent[] = { "drain", NULL };
        PeerThread p;
        Qmp *q = peer_start(&p, steps);
        QmpStatus st;
        QmpError err = {};
        struct timespec t0, t1;
        long ms;

        assert_int_equal(qmp_wait_ready(q, 5000), 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(qmp_query_status(q, 200, &st, &err), -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        assert_true(ms >= 190 && ms < 3000);
        assert_int_equal(qmp_get_close_error(q), -ETIMEDOUT);
        assert_non_null(strstr(qmp_get_close_reason(q), "query-status"));
        assert_null(err.error_class);
        peer_join(&p, q);

        /* A peer that never greets. */
        q = peer_start(&p, silent);
        assert_int_equal(qmp_wait_ready(q, 100), -ETIMEDOUT);
        assert_string_equal(qmp_get_close_reason(q), "timed out waiting for the QMP greeting");
        peer_join(&p, q);
}

static void test_sync_oversized_message(void **state) {
        static const char *const steps[] = {
                "greet", "caps", "<query-qmp-schema", ">{\"id\": $ID, \"return\": \"", "flood:104857600", NULL,
        };
        PeerThread p;
        Qmp *q = peer_start(&p, steps);
        QmpStats st;
        char *ret = NULL;

        assert_int_equal(qmp_wait_ready(q, 5000), 0);
        assert_int_equal(qmp_execute_sync(q, "query-qmp-schema", NULL, 30000, &ret, NULL), -EMSGSIZE);
        assert_null(ret);
        assert_non_null(strstr(qmp_get_close_reason(q), "larger than 16777216 bytes"));
        qmp_get_stats(q, &st);
        /* Read no further than the cap (plus the handshake). */
        assert_true(st.bytes_read <= QMP_DEFAULT_MAX_MESSAGE_SIZE + 4096);
        peer_join(&p, q);
        /* The peer was stopped by the hang-up, far short of 100 MB. */
        assert_true(p.flood_sent < 100u * 1024 * 1024);
}

static void test_sync_typed_helpers(void **state) {
        static const char *const steps[] = {
                "greet", "caps",
                "<query-status", "@query-status",
                "<query-cpus-fast", "@query-cpus-fast",
                "<query-iothreads", "@query-iothreads",
                "<query-memory-size-summary", "@query-memory-size-summary",
                "<query-balloon", "@query-balloon",
                "<balloon", ">{\"return\": {}, \"id\": $ID}\r\n",
                "<query-pci", "@query-pci", "<qom-list", "@qom-list-vfio",
                "<query-migrate", "@query-migrate-active",
                "<migrate-set-capabilities", ">{\"return\": {}, \"id\": $ID}\r\n",
                /* Wrong types: -EBADMSG, and the connection stays usable. */
                "<query-status", ">{\"return\": {\"status\": 7, \"running\": true}, \"id\": $ID}\r\n",
                "<query-cpus-fast", ">{\"return\": {\"cpu-index\": 0}, \"id\": $ID}\r\n",
                "<query-balloon", ">{\"return\": {\"actual\": -5}, \"id\": $ID}\r\n",
                "<query-balloon",
                ">{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No balloon device has been activated\"}, "
                "\"id\": $ID}\r\n",
                "<query-status", "@query-status",
                "drain", NULL,
        };
        static const QmpMigrationCapability caps[] = { { "xbzrle", true }, { "auto-converge", false } };
        PeerThread p;
        Qmp *q = peer_start(&p, steps);
        QmpStatus st;
        QmpCpu *cpus;
        QmpIothread *io;
        QmpMemorySummary mem;
        QmpPciDevice *pci;
        QmpMigrateInfo mig;
        QmpError err = {};
        uint64_t actual;
        size_t n;

        assert_int_equal(qmp_wait_ready(q, 5000), 0);
        assert_int_equal(qmp_query_status(q, 5000, &st, NULL), 0);
        assert_true(st.running);
        assert_int_equal(qmp_query_cpus_fast(q, 5000, &cpus, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(cpus[1].thread_id, 16002);
        qmp_cpus_free(cpus, n);
        assert_int_equal(qmp_query_iothreads(q, 5000, &io, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(io[0].id, "io0");
        qmp_iothreads_free(io, n);
        assert_int_equal(qmp_query_memory_size_summary(q, 5000, &mem, NULL), 0);
        assert_int_equal(mem.base_memory_bytes, 64 << 20);
        assert_int_equal(qmp_query_balloon(q, 5000, &actual, NULL), 0);
        assert_int_equal(actual, 64 << 20);
        assert_int_equal(qmp_balloon(q, 0, 5000, NULL), -EINVAL);
        assert_int_equal(qmp_balloon(q, 32 << 20, 5000, NULL), 0);
        assert_int_equal(qmp_query_pci(q, 5000, &pci, &n, NULL), 0);
        assert_int_equal(n, 7);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(pci[i].is_vfio, strcmp(pci[i].qdev_id, "rng0") == 0);
        qmp_pci_devices_free(pci, n);
        assert_int_equal(qmp_query_migrate(q, 5000, &mig, NULL), 0);
        assert_int_equal(mig.status, QMP_MIGRATION_STATUS_ACTIVE);
        assert_int_equal(mig.ram_total_bytes, 67641344);
        assert_int_equal(qmp_migrate_set_capabilities(q, caps, 0, 5000, NULL), -EINVAL);
        assert_int_equal(qmp_migrate_set_capabilities(q, caps, ARRAY_SIZE(caps), 5000, NULL), 0);

        st = (QmpStatus) { .status = "untouched" };
        assert_int_equal(qmp_query_status(q, 5000, &st, NULL), -EBADMSG);
        assert_string_equal(st.status, "untouched"); /* ret_ untouched on failure */
        assert_int_equal(qmp_query_cpus_fast(q, 5000, &cpus, &n, NULL), -EBADMSG);
        assert_int_equal(qmp_query_balloon(q, 5000, &actual, NULL), -EBADMSG);
        assert_int_equal(qmp_query_balloon(q, 5000, &actual, &err), -EREMOTEIO);
        assert_string_equal(err.error_class, "DeviceNotActive");
        qmp_error_done(&err);
        assert_int_equal(qmp_get_close_error(q), 0);
        assert_int_equal(qmp_query_status(q, 5000, &st, NULL), 0);
        assert_string_equal(st.status, "running");
        peer_join(&p, q);

        assert_string_equal(p.args[6], "{\"value\":33554432}");
        assert_string_equal(p.args[8], "{\"path\":\"/machine/peripheral\"}");
        assert_string_equal(p.args[10], "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true},"
                                        "{\"capability\":\"auto-converge\",\"state\":false}]}");
}

/* qmp_connect_sync() over a real UNIX socket, served by the script. */
typedef struct Listener {
        int fd;
        PeerThread peer;
} Listener;

static void *accept_main(void *userdata) {
        Listener *l = userdata;

        l->peer.fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (l->peer.fd < 0) {
                snprintf(l->peer.error, sizeof(l->peer.error), "accept: %m");
                return NULL;
        }
        return peer_main(&l->peer);
}

static void test_connect_sync(void **state) {
        static const char *const steps[] = { "greet", "caps", "<query-status", "@query-status", "drain", NULL };
        char dir[] = "/tmp/qmp-test-XXXXXX", path[256];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *reason = NULL;
        char long_path[200];
        pthread_t th;
        Listener l = { .peer = { .steps = steps } };
        QmpStatus st;
        Qmp *q = NULL;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/qmp.sock", dir);

        assert_int_equal(qmp_connect_sync(path, 1000, &q, &reason), -ENOENT);
        assert_non_null(strstr(reason, "No such file"));
        assert_null(q);
        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[sizeof(long_path) - 1] = 0;
        assert_int_equal(qmp_connect_sync(long_path, 1000, &q, NULL), -ENAMETOOLONG);

        l.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(l.fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(bind(l.fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(l.fd, 1), 0);
        assert_int_equal(pthread_create(&th, NULL, accept_main, &l), 0);

        free(reason);
        reason = NULL;
        assert_int_equal(qmp_connect_sync(path, 5000, &q, &reason), 0);
        assert_null(reason);
        assert_true(qmp_is_ready(q));
        assert_int_equal(qmp_get_greeting(q)->major, 7);
        assert_int_equal(qmp_query_status(q, 5000, &st, NULL), 0);
        qmp_free(q);
        assert_int_equal(pthread_join(th, NULL), 0);
        if (l.peer.error[0])
                fail_msg("peer: %s", l.peer.error);
        close(l.peer.fd);

        /* A listener that accepts but never greets: the handshake times out. */
        assert_int_equal(qmp_connect_sync(path, 100, &q, &reason), -ETIMEDOUT);
        assert_string_equal(reason, "timed out waiting for the QMP greeting");
        close(l.fd);
        unlink(path);
        rmdir(dir);
}

static void test_parse_uuid(void **state) {
        char u[QMP_UUID_STRLEN + 1];

        (void) state;
        assert_int_equal(qmp_parse_uuid("{\"UUID\": \"7D3F0B1E-2c4a-4e5f-9a6b-8c7d6e5f4a3b\"}", u), 0);
        assert_string_equal(u, "7d3f0b1e-2c4a-4e5f-9a6b-8c7d6e5f4a3b");
        assert_int_equal(qmp_parse_uuid("{\"UUID\": \"" QMP_UUID_NONE "\"}", u), 0);
        assert_int_equal(qmp_parse_uuid("{\"UUID\": \"../../etc/passwd\"}", u), -EBADMSG);
        assert_int_equal(qmp_parse_uuid("{\"UUID\": \"7d3f0b1e-2c4a-4e5f-9a6b-8c7d6e5f4a3g\"}", u), -EBADMSG);
        assert_int_equal(qmp_parse_uuid("{\"UUID\": 5}", u), -EBADMSG);
        assert_int_equal(qmp_parse_uuid("{}", u), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_uuid),
                cmocka_unit_test(test_handshake),
                cmocka_unit_test(test_split_reads),
                cmocka_unit_test(test_merged_reads),
                cmocka_unit_test(test_events_before_reply),
                cmocka_unit_test(test_pipelined_out_of_order),
                cmocka_unit_test(test_error_reply_and_unknown_ids),
                cmocka_unit_test(test_malformed_error_reply_is_fatal),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_bad_greeting),
                cmocka_unit_test(test_capabilities_refused),
                cmocka_unit_test(test_eof),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_too_many_values),
                cmocka_unit_test(test_large_reply_random_chunks),
                cmocka_unit_test(test_callbacks_reenter),
                cmocka_unit_test(test_free_cancels_and_bad_args),
                cmocka_unit_test(test_async_deadline),
                cmocka_unit_test(test_parse_fixtures),
                cmocka_unit_test(test_parse_wrong_types),
                cmocka_unit_test(test_migration_status_enum),
                cmocka_unit_test(test_sync_execute),
                cmocka_unit_test(test_sync_stalled_peer),
                cmocka_unit_test(test_sync_oversized_message),
                cmocka_unit_test(test_sync_typed_helpers),
                cmocka_unit_test(test_connect_sync),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
