/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests: the API cannot be starved (vmmgr/api/api.c's connection limits).
 *
 * Over a real UNIX socket, with the loop in a thread as vmmgrd runs it:
 *   - 1,000 half-open connections (half a request, then silence), then a
 *     normal request: it is answered (with the default limits, and with a
 *     small total limit);
 *   - one peer (uid) holds at most its per-peer limit: its oldest waiting
 *     connections make room for its new ones, other peers keep theirs;
 *   - a connection that sends nothing, or trickles its headers a byte at a
 *     time, is closed once its time for a whole request is up;
 *   - a 1 MiB header is answered 431 before the client has sent it all;
 *   - a declared body over the cap is answered 413 before any of it is sent.
 * Each bound is generous: the checks are that an answer comes, and which,
 * not how fast (bench-api-slowloris measures the latency).
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../common/vtest.h"
#include "common/macros.h"
#include "vmmgr/daemon/config.h"
#include "slowloris.h"

#define FLOOD 1000

static ApiConfig base_config(void) {
        /* Root passes the peer check; anyone else through its own group. */
        return (ApiConfig) { .allowed_gid = geteuid() == 0 ? API_GID_ROOT_ONLY : getegid() };
}

static SlServer *start(const ApiConfig *cfg) {
        SlServer *s = calloc(1, sizeof *s);
        char msg[320];

        assert_non_null(s);
        if (sl_server_start(s, cfg, msg, sizeof msg) < 0)
                fail_msg("%s", msg);
        return s;
}

static void stop(SlServer *s) {
        sl_server_stop(s);
        free(s);
}

static void close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* Waits up to timeout_ms until at least `want` of fds are closed by the
 * server; returns how many are. */
static size_t count_closed(const int *fds, size_t n, size_t want, int timeout_ms, bool *closed) {
        uint64_t deadline = sl_now_usec() + (uint64_t) timeout_ms * 1000u;
        size_t k = 0;

        memset(closed, 0, n * sizeof *closed);
        do {
                for (size_t i = 0; i < n; i++)
                        if (!closed[i] && sl_closed_by_server(fds[i], 0)) {
                                closed[i] = true;
                                k++;
                        }
                if (k >= want)
                        break;
                usleep(20000);
        } while (sl_now_usec() < deadline);
        return k;
}

static void expect_answer(SlServer *s, int status, const char *what) {
        SlReply rep;
        int r = sl_request(s->sock, SL_FULL_REQUEST, strlen(SL_FULL_REQUEST), 10000, &rep);

        if (r < 0)
                fail_msg("%s: no answer to a normal request within 10 s: %s", what, strerror(-r));
        if (rep.status != status)
                fail_msg("%s: expected %d, got: %.60s", what, status, rep.head);
        printf("# %s: answered %d in %.1f ms\n", what, rep.status, (double) rep.usec / 1000.0);
}

static void flood(SlServer *s, int *fds, size_t n) {
        for (size_t i = 0; i < n; i++) {
                fds[i] = sl_half_open(s->sock);
                if (fds[i] < 0)
                        fail_msg("half-open connection %zu: %s", i, strerror(-fds[i]));
        }
}

static char *request_with_header(size_t header_bytes, size_t *ret_len) {
        static const char head[] = "GET /v1/host HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ";
        size_t len = strlen(head) + header_bytes + 4;
        char *buf = malloc(len + 1);

        assert_non_null(buf);
        memcpy(buf, head, strlen(head));
        memset(buf + strlen(head), 'a', header_bytes);
        memcpy(buf + strlen(head) + header_bytes, "\r\n\r\n", 5);
        *ret_len = len;
        return buf;
}

/* ---- 1,000 half-open connections ------------------------------------------------ */

static void test_flood_default_limits(void **state) {
        ApiConfig cfg = base_config();
        int fds[FLOOD];
        SlServer *s;

        (void) state;
        if (!sl_want_fds(2 * FLOOD + 256))
                vt_skip("RLIMIT_NOFILE's hard limit is below %d", 2 * FLOOD + 256);
        s = start(&cfg);
        flood(s, fds, FLOOD);
        expect_answer(s, 200, "1,000 half-open, default limits");
        /* The size limits answer at once under the flood too. */
        {
                static const char over[] = "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                           "Content-Length: 1048576\r\n\r\n";
                size_t len;
                char *big = request_with_header(1024 * 1024, &len);
                SlReply rep;

                assert_int_equal(sl_request(s->sock, big, len, 10000, &rep), 0);
                assert_int_equal(rep.status, 431);
                assert_int_equal(sl_request(s->sock, over, strlen(over), 10000, &rep), 0);
                assert_int_equal(rep.status, 413);
                free(big);
        }
        close_all(fds, FLOOD);
        stop(s);
}

/* A small total limit and no per-peer limit below it: the oldest waiting
 * connections make room, and no more than the limit stay open. */
static void test_flood_total_limit(void **state) {
        ApiConfig cfg = base_config();
        static bool closed[FLOOD];
        int fds[FLOOD];
        size_t k;
        SlServer *s;

        (void) state;
        if (!sl_want_fds(2 * FLOOD + 256))
                vt_skip("RLIMIT_NOFILE's hard limit is below %d", 2 * FLOOD + 256);
        cfg.connection_limit = 100;
        cfg.per_peer_limit = 100;
        s = start(&cfg);
        flood(s, fds, FLOOD);
        expect_answer(s, 200, "1,000 half-open, limit 100");
        k = count_closed(fds, FLOOD, FLOOD - 100, 5000, closed);
        if (k < FLOOD - 100)
                fail_msg("%zu of %d half-open connections still open with a limit of 100", FLOOD - k, FLOOD);
        /* The newest are the ones kept. */
        assert_false(closed[FLOOD - 1]);
        close_all(fds, FLOOD);
        stop(s);
}

/* ---- per peer ----------------------------------------------------------------------- */

/* A child as `uid` holds `n` half-open connections until told to go. */
static pid_t hold_as(const char *sock, uid_t uid, int n, int *ret_go) {
        int ready[2], go[2];
        pid_t pid;
        char c;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int ok = 1;

                close(ready[0]);
                close(go[1]);
                if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
                        _exit(2);
                for (int i = 0; i < n; i++)
                        if (sl_half_open(sock) < 0)
                                ok = 0;
                c = ok ? 'y' : 'n';
                (void) !write(ready[1], &c, 1);
                (void) !read(go[0], &c, 1); /* until the parent closes it */
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);
        assert_int_equal(c, 'y');
        *ret_go = go[1];
        return pid;
}

static void test_per_peer_limit(void **state) {
        ApiConfig cfg = base_config();
        bool closed[20];
        int fds[20], go = -1, status;
        pid_t other = -1;
        size_t k;
        SlServer *s;

        (void) state;
        cfg.per_peer_limit = 8;
        s = start(&cfg);
        if (geteuid() == 0) {
                /* Another uid's 8 connections, opened first (so they are the
                 * oldest): this peer's connections must not be taken for them. */
                assert_int_equal(chmod(s->dir, 0755), 0);
                assert_int_equal(chmod(s->sock, 0666), 0);
                other = hold_as(s->sock, 65534, 8, &go);
        }
        flood(s, fds, 20);
        k = count_closed(fds, 20, 12, 5000, closed);
        if (k != 12)
                fail_msg("%zu of 20 connections of one peer closed, expected the 12 over its limit of 8", k);
        for (int i = 0; i < 20; i++)
                if (closed[i] != (i < 12))
                        fail_msg("connection %d (of 20, oldest first) %s", i, closed[i] ? "closed" : "still open");
        /* The peer at its limit still gets its answer (its oldest waiting
         * connection makes room). */
        expect_answer(s, 200, "a peer at its limit");
        assert_true(sl_closed_by_server(fds[12], 2000));
        if (other > 0) {
                close(go);
                assert_int_equal(waitpid(other, &status, 0), other);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        close_all(fds, 20);
        stop(s);
}

/* The other peer's connections, when we are root: counted by uid. */
static void test_per_peer_other_uid(void **state) {
        ApiConfig cfg = base_config();
        int fds[8], go, status;
        pid_t other;
        bool closed[8];
        SlServer *s;

        (void) state;
        if (geteuid() != 0)
                vt_skip("needs root to connect as another uid");
        cfg.per_peer_limit = 8;
        s = start(&cfg);
        assert_int_equal(chmod(s->dir, 0755), 0);
        assert_int_equal(chmod(s->sock, 0666), 0);
        flood(s, fds, 8);
        /* uid 65534 opens 100 (more than the whole limit of old): its own
         * oldest go, ours stay. */
        other = hold_as(s->sock, 65534, 100, &go);
        assert_int_equal(count_closed(fds, 8, 1, 1000, closed), 0);
        expect_answer(s, 200, "root while another uid is over its limit");
        close(go);
        assert_int_equal(waitpid(other, &status, 0), other);
        close_all(fds, 8);
        stop(s);
}

/* ---- per address, on the TLS listener ------------------------------------------------------ */

/* A self-signed certificate that is its own CA: enough for api_new(); the
 * connections below never get as far as a handshake. */
static void write_self_signed(const char *dir) {
        gnutls_x509_privkey_t key;
        gnutls_x509_crt_t crt;
        gnutls_datum_t d;
        unsigned char serial[1] = { 1 };
        time_t now = time(NULL);
        char path[256];
        FILE *f;

        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                         0);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
        assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "limits", 6), 0);
        assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
        assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
        snprintf(path, sizeof path, "%s/cert.pem", dir);
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
        assert_non_null(f = fopen(path, "we"));
        assert_int_equal(fwrite(d.data, 1, d.size, f), d.size);
        fclose(f);
        gnutls_free(d.data);
        snprintf(path, sizeof path, "%s/key.pem", dir);
        assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
        assert_non_null(f = fopen(path, "we"));
        assert_int_equal(fwrite(d.data, 1, d.size, f), d.size);
        fclose(f);
        gnutls_free(d.data);
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_privkey_deinit(key);
}

/* A TCP connection from `from` (an address of the loopback) that never
 * starts its TLS handshake. */
static int tcp_from(const char *from, uint16_t port) {
        struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(inet_pton(AF_INET, from, &src.sin_addr), 1);
        assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *) &src, sizeof src), 0);
        assert_int_equal(connect(fd, (struct sockaddr *) &dst, sizeof dst), 0);
        return fd;
}

static void test_per_address_tls(void **state) {
        ApiConfig cfg = base_config();
        char cert[128], key[128];
        int a[20], b[8];
        bool closed_a[20], closed_b[8];
        uint16_t port;
        size_t k;
        SlServer *s;

        (void) state;
        {
                char tmpl[] = "/tmp/vmmgr-test-limits-pki-XXXXXX", *dir = mkdtemp(tmpl);

                assert_non_null(dir);
                write_self_signed(dir);
                snprintf(cert, sizeof cert, "%s/cert.pem", dir);
                snprintf(key, sizeof key, "%s/key.pem", dir);
        }
        cfg.tcp_address = "127.0.0.1";
        cfg.tls_cert_file = cert;
        cfg.tls_key_file = key;
        cfg.tls_ca_file = cert;
        cfg.per_peer_limit = 8;
        s = start(&cfg);
        port = api_get_tcp_port(s->api);
        for (int i = 0; i < 8; i++)
                b[i] = tcp_from("127.0.0.2", port);
        for (int i = 0; i < 20; i++)
                a[i] = tcp_from("127.0.0.1", port);
        /* 127.0.0.1's 12 oldest make room for its newest; 127.0.0.2 keeps
         * its 8, though they are older. */
        k = count_closed(a, 20, 12, 5000, closed_a);
        if (k != 12)
                fail_msg("%zu of 20 connections from one address closed, expected 12", k);
        for (int i = 0; i < 20; i++)
                if (closed_a[i] != (i < 12))
                        fail_msg("connection %d (of 20, oldest first) %s", i, closed_a[i] ? "closed" : "still open");
        assert_int_equal(count_closed(b, 8, 1, 200, closed_b), 0);
        close_all(a, 20);
        close_all(b, 8);
        stop(s);
        unlink(cert);
        unlink(key);
        *strrchr(cert, '/') = '\0';
        rmdir(cert);
}

/* ---- time ------------------------------------------------------------------------------ */

static void test_timeouts(void **state) {
        ApiConfig cfg = base_config();
        static const char slow[] = "GET /v1/host HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        int silent, trickle;
        bool silent_closed = false, trickle_closed = false;
        uint64_t start_usec, t_silent = 0, t_trickle = 0;
        SlServer *s;

        (void) state;
        cfg.connection_timeout_sec = 1;
        s = start(&cfg);
        start_usec = sl_now_usec();
        silent = sl_half_open(s->sock);
        trickle = sl_connect(s->sock);
        assert_true(silent >= 0 && trickle >= 0);
        assert_int_equal(send(trickle, slow, strlen(slow), MSG_NOSIGNAL), (ssize_t) strlen(slow));
        /* One byte every 100 ms for up to 4 s: never idle for a second. */
        for (int i = 0; i < 40 && !(silent_closed && trickle_closed); i++) {
                if (!silent_closed && sl_closed_by_server(silent, 0)) {
                        silent_closed = true;
                        t_silent = sl_now_usec() - start_usec;
                }
                if (!trickle_closed) {
                        if (sl_closed_by_server(trickle, 0) || send(trickle, "a", 1, MSG_NOSIGNAL) != 1) {
                                trickle_closed = true;
                                t_trickle = sl_now_usec() - start_usec;
                        }
                }
                usleep(100000);
        }
        if (!silent_closed)
                fail_msg("a silent half-open connection is still open after 4 s (timeout 1 s)");
        if (!trickle_closed)
                fail_msg("a connection trickling its headers is still open after 4 s (timeout 1 s)");
        printf("# closed after %.1f s (silent) and %.1f s (trickling)\n", (double) t_silent / 1e6,
               (double) t_trickle / 1e6);
        close(silent);
        close(trickle);
        expect_answer(s, 200, "after the timeouts");
        stop(s);
}

/* ---- sizes ------------------------------------------------------------------------------- */

static void test_header_431(void **state) {
        ApiConfig cfg = base_config();
        SlReply rep;
        size_t len;
        char *big;
        SlServer *s;
        int r;

        (void) state;
        s = start(&cfg);
        big = request_with_header(1024 * 1024, &len);
        r = sl_request(s->sock, big, len, 10000, &rep);
        if (r < 0)
                fail_msg("1 MiB header: no answer: %s (sent %zu of %zu bytes)", strerror(-r), rep.sent, len);
        printf("# 1 MiB header: %d after %.1f ms, %zu of %zu bytes sent\n", rep.status, (double) rep.usec / 1000.0,
               rep.sent, len);
        if (rep.status != 431)
                fail_msg("1 MiB header: expected 431, got: %.60s", rep.head);
        /* At once: before the server has read (or the client could write)
         * the whole header. */
        if (rep.sent >= len)
                fail_msg("1 MiB header: the answer came only after all %zu bytes were sent", len);
        free(big);
        stop(s);

        /* A configured limit: 8 KiB; 16 KiB is refused, 2 KiB is fine. */
        cfg.max_header_bytes = 8192;
        s = start(&cfg);
        big = request_with_header(16 * 1024, &len);
        assert_int_equal(sl_request(s->sock, big, len, 10000, &rep), 0);
        if (rep.status != 431)
                fail_msg("16 KiB header, limit 8 KiB: expected 431, got: %.60s", rep.head);
        free(big);
        big = request_with_header(2 * 1024, &len);
        assert_int_equal(sl_request(s->sock, big, len, 10000, &rep), 0);
        assert_int_equal(rep.status, 200);
        free(big);
        stop(s);
}

static void test_body_413(void **state) {
        static const char *const heads[] = {
                "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1048576\r\n\r\n",
                /* A client that waits for "100 Continue" gets the 413 instead. */
                "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Expect: 100-continue\r\nContent-Length: 65537\r\n\r\n",
        };
        ApiConfig cfg = base_config();
        SlServer *s;

        (void) state;
        s = start(&cfg);
        for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
                SlReply rep;
                int r;

                /* Only the headers: no byte of the body is ever sent. */
                r = sl_request(s->sock, heads[i], strlen(heads[i]), 5000, &rep);
                if (r < 0)
                        fail_msg("over-cap body %zu: no answer before the body: %s", i, strerror(-r));
                if (rep.status != 413)
                        fail_msg("over-cap body %zu: expected 413, got: %.60s", i, rep.head);
        }
        stop(s);
}

/* ---- configuration ------------------------------------------------------------------------ */

static void test_limits_reported(void **state) {
        ApiConfig cfg = base_config();
        struct rlimit saved, low;
        ApiLimits lim;
        SlServer *s;

        (void) state;
        if (!sl_want_fds(4 * API_CONNECTIONS_DEFAULT))
                vt_skip("RLIMIT_NOFILE's hard limit is below %u", 4 * API_CONNECTIONS_DEFAULT);
        s = start(&cfg);
        api_get_limits(s->api, &lim);
        assert_int_equal(lim.connection_limit, API_CONNECTIONS_DEFAULT);
        assert_int_equal(lim.per_peer_limit, API_PER_PEER_DEFAULT);
        assert_int_equal(lim.timeout_sec, API_TIMEOUT_SEC_DEFAULT);
        assert_int_equal(lim.max_header_bytes, API_HEADER_MAX_DEFAULT);
        assert_int_equal(lim.max_body_bytes, API_BODY_MAX_DEFAULT);
        stop(s);

        /* A per-peer limit above the total is the total. */
        cfg.connection_limit = 10;
        cfg.per_peer_limit = 50;
        s = start(&cfg);
        api_get_limits(s->api, &lim);
        assert_int_equal(lim.connection_limit, 10);
        assert_int_equal(lim.per_peer_limit, 10);
        stop(s);

        /* The connections fit the descriptors: with a soft limit of 512,
         * the API takes half, less what libmicrohttpd may hold while it
         * closes connections (32). */
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
        low = (struct rlimit) { .rlim_cur = 512, .rlim_max = saved.rlim_max };
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        cfg = base_config();
        s = start(&cfg);
        api_get_limits(s->api, &lim);
        assert_int_equal(lim.connection_limit, 512 / 2 - 32);
        assert_int_equal(lim.per_peer_limit, API_PER_PEER_DEFAULT);
        stop(s);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

/* vmmgrd's [api] section carries the limits (vmmgr/daemon/config.h). */
static void test_config_api(void **state) {
        VmmgrConfig c;
        char msg[256];

        (void) state;
        assert_int_equal(config_init(&c), 0);
        assert_int_equal(c.api_max_connections, API_CONNECTIONS_DEFAULT);
        assert_int_equal(c.api_max_connections_per_peer, API_PER_PEER_DEFAULT);
        assert_int_equal(c.api_timeout_sec, API_TIMEOUT_SEC_DEFAULT);
        assert_int_equal(c.api_max_header_bytes, API_HEADER_MAX_DEFAULT);
        assert_int_equal(c.api_max_body_bytes, API_BODY_MAX_DEFAULT);
        assert_int_equal(config_load_text(&c,
                                          "[api]\nmax_connections = 2048\nmax_connections_per_peer = 16\n"
                                          "timeout_sec = 5\nmax_header_bytes = 8K\nmax_body_bytes = 1M\n",
                                          "t.conf", msg, sizeof msg),
                         0);
        assert_int_equal(c.api_max_connections, 2048);
        assert_int_equal(c.api_max_connections_per_peer, 16);
        assert_int_equal(c.api_timeout_sec, 5);
        assert_int_equal(c.api_max_header_bytes, 8192);
        assert_int_equal(c.api_max_body_bytes, 1024 * 1024);
        assert_true(config_load_text(&c, "[api]\ntimeout_sec = 0\n", "t.conf", msg, sizeof msg) < 0);
        assert_non_null(strstr(msg, "t.conf:2: bad value for timeout_sec"));
        assert_true(config_load_text(&c, "[api]\nmax_header_bytes = 100\n", "t.conf", msg, sizeof msg) < 0);
        assert_true(config_load_text(&c, "[api]\nmax_connections = 3\n", "t.conf", msg, sizeof msg) < 0);
        assert_true(config_load_text(&c, "[api]\nlisten = 1.2.3.4:5\n", "t.conf", msg, sizeof msg) < 0);
        assert_non_null(strstr(msg, "unknown key"));
        assert_int_equal(c.api_max_connections, 2048); /* unchanged by the failed loads */
        config_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flood_default_limits),
                cmocka_unit_test(test_flood_total_limit),
                cmocka_unit_test(test_per_peer_limit),
                cmocka_unit_test(test_per_peer_other_uid),
                cmocka_unit_test(test_per_address_tls),
                cmocka_unit_test(test_timeouts),
                cmocka_unit_test(test_header_431),
                cmocka_unit_test(test_body_413),
                cmocka_unit_test(test_limits_reported),
                cmocka_unit_test(test_config_api),
        };

        signal(SIGPIPE, SIG_IGN);
        return vt_run_group_tests(tests, NULL, NULL);
}
