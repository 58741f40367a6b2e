/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests: vmmgr/daemon/peer-sender.c against real peers on this host.
 *
 * The good peer is an HTTPS server (libmicrohttpd with GnuTLS, like
 * vmmgrd's API) that takes POST /v1/migration/records only from a client
 * certificate of its CA, keeps the bodies it received in order, and
 * answers 201 with a JSON echo.  It can hold a request (the gate) so that
 * the test can keep requests queued behind it.  A hung peer is a TCP
 * listener, accepted on the test's loop, that never says a word.  The
 * certificates (a CA, the peer's server certificate for 127.0.0.1, the
 * sender's client certificate, and a second CA that signed none of them)
 * are made with GnuTLS into a temporary directory.
 *
 * Replies come on an sd-event loop, the way vmmgrd's would.  Timing
 * bounds are generous (seconds); what matters is which reply comes first
 * and that each comes at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "tests/common/vtest.h"
#include "tests/common/pki.h"
#include "common/clock.h"
#include "vmmgr/daemon/peer-sender.h"

#define RECORDS_PATH "/v1/migration/records"
#define HOLD_PATH "/v1/migration/records/hold" /* the good peer holds it until the gate opens */
#define U1 "11111111-2222-3333-4444-555555555555"
#define U2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define SEC UINT64_C(1000000)
#define N_HUNG PEER_SENDER_THREADS

/* ---- the good peer: HTTPS with client certificates ------------------------------------ */

#define RECEIVED_MAX 64

typedef struct Peer {
        struct MHD_Daemon *mhd;
        uint16_t port;
        char url[64];
        char *cert, *key, *ca; /* PEM, for MHD */

        pthread_mutex_t lock;
        pthread_cond_t changed;
        bool gate_open;
        unsigned holding; /* requests waiting at the gate */
        unsigned n_received;
        char *received[RECEIVED_MAX]; /* bodies, in the order they came */
        unsigned refused;             /* requests without an accepted client certificate */
} Peer;

typedef struct Upload {
        char *data;
        size_t len;
} Upload;

static bool client_cert_ok(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        unsigned n = 0, status = 0;

        if (!ci || !ci->tls_session)
                return false;
        if (!gnutls_certificate_get_peers((gnutls_session_t) ci->tls_session, &n) || n == 0)
                return false;
        return gnutls_certificate_verify_peers2((gnutls_session_t) ci->tls_session, &status) == 0 && status == 0;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, json_object *o) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
        assert_non_null(resp);
        MHD_add_response_header(resp, "Content-Type", "application/json");
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        json_object_put(o);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Peer *p = cls;
        Upload *u = *con_cls;
        json_object *o;
        unsigned seq;

        if (!u) {
                u = calloc(1, sizeof(Upload));
                if (!u)
                        return MHD_NO;
                *con_cls = u;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                char *d = realloc(u->data, u->len + *upload_data_size + 1);

                if (!d)
                        return MHD_NO;
                memcpy(d + u->len, upload_data, *upload_data_size);
                u->len += *upload_data_size;
                d[u->len] = '\0';
                u->data = d;
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (!client_cert_ok(conn)) {
                pthread_mutex_lock(&p->lock);
                p->refused++;
                pthread_mutex_unlock(&p->lock);
                o = json_object_new_object();
                json_object_object_add(o, "error", json_object_new_string("client certificate not accepted"));
                return respond(conn, 403, o);
        }
        if (strcmp(method, "POST") != 0 || (strcmp(url, RECORDS_PATH) != 0 && strcmp(url, HOLD_PATH) != 0)) {
                o = json_object_new_object();
                json_object_object_add(o, "error", json_object_new_string("no such route"));
                return respond(conn, 404, o);
        }
        pthread_mutex_lock(&p->lock);
        if (strcmp(url, HOLD_PATH) == 0) {
                struct timespec until;

                /* Bounded: a test that forgets to open the gate fails
                 * instead of hanging. */
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += 20;
                p->holding++;
                pthread_cond_broadcast(&p->changed);
                while (!p->gate_open)
                        if (pthread_cond_timedwait(&p->changed, &p->lock, &until) != 0)
                                break;
                p->holding--;
        }
        seq = p->n_received;
        if (p->n_received < RECEIVED_MAX)
                p->received[p->n_received++] = strdup(u->data ? u->data : "");
        pthread_mutex_unlock(&p->lock);
        o = json_object_new_object();
        json_object_object_add(o, "seq", json_object_new_int((int) seq));
        json_object_object_add(o, "echo", json_object_new_string(u->data ? u->data : ""));
        return respond(conn, 201, o);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Upload *u = *con_cls;

        if (u) {
                free(u->data);
                free(u);
                *con_cls = NULL;
        }
}

static int listen_loopback(uint16_t *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        int fd;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 64), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static void peer_start(Peer *p, const char *cert, const char *key, const char *ca) {
        int fd;

        p->cert = strdup(cert);
        p->key = strdup(key);
        p->ca = strdup(ca);
        assert_true(p->cert && p->key && p->ca);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->changed, NULL);
        fd = listen_loopback(&p->port);
        snprintf(p->url, sizeof p->url, "https://127.0.0.1:%u", (unsigned) p->port);
        /* A thread per connection: one held at the gate does not hold the
         * others. */
        p->mhd = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0,
                NULL, NULL, on_request, p, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                NULL, MHD_OPTION_HTTPS_MEM_CERT, p->cert, MHD_OPTION_HTTPS_MEM_KEY, p->key, MHD_OPTION_HTTPS_MEM_TRUST,
                p->ca, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
        assert_non_null(p->mhd);
}

static void peer_open_gate(Peer *p) {
        pthread_mutex_lock(&p->lock);
        p->gate_open = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
}

static unsigned peer_holding(Peer *p) {
        unsigned n;

        pthread_mutex_lock(&p->lock);
        n = p->holding;
        pthread_mutex_unlock(&p->lock);
        return n;
}

static unsigned peer_received(Peer *p) {
        unsigned n;

        pthread_mutex_lock(&p->lock);
        n = p->n_received;
        pthread_mutex_unlock(&p->lock);
        return n;
}

static void peer_stop(Peer *p) {
        peer_open_gate(p);
        MHD_stop_daemon(p->mhd);
        for (unsigned i = 0; i < p->n_received; i++)
                free(p->received[i]);
        free(p->cert);
        free(p->key);
        free(p->ca);
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
}

/* ---- the test's loop, hung peers, replies ---------------------------------------------- */

typedef struct Got {
        uint64_t tag;
        int r;
        long status;
        char *body;
        char error[320];
        uint64_t took_usec;
        uint64_t at_usec; /* when it reached the loop */
} Got;

#define GOT_MAX 2048

typedef struct Ctx {
        char dir[64];
        char ca_file[128], cert_file[128], key_file[128], other_ca_file[128], bad_cert_file[128], bad_key_file[128];
        Peer peer;
        sd_event *event;

        int hung_fd[N_HUNG];
        uint16_t hung_port[N_HUNG];
        char hung_url[N_HUNG][64];
        sd_event_source *hung_src[N_HUNG];
        int accepted[64];
        unsigned n_accepted;

        Got got[GOT_MAX];
        unsigned n_got;
} Ctx;

static void on_reply(const PeerReply *reply, void *userdata) {
        Ctx *x = userdata;
        Got *g;

        assert_true(x->n_got < GOT_MAX);
        g = &x->got[x->n_got++];
        *g = (Got){ .tag = reply->tag,
                    .r = reply->r,
                    .status = reply->status,
                    .took_usec = reply->took_usec,
                    .at_usec = now_usec() };
        snprintf(g->error, sizeof g->error, "%s", reply->error);
        if (reply->r == 0) {
                assert_non_null(reply->body);
                g->body = strdup(reply->body);
                assert_non_null(g->body);
        } else {
                assert_null(reply->body);
                assert_true(reply->error[0] != '\0');
        }
}

static const Got *find_got(const Ctx *x, uint64_t tag) {
        for (unsigned i = 0; i < x->n_got; i++)
                if (x->got[i].tag == tag)
                        return &x->got[i];
        return NULL;
}

/* Runs the loop until the reply for `tag` came or `timeout_usec` passed. */
static const Got *wait_got(Ctx *x, uint64_t tag, uint64_t timeout_usec) {
        uint64_t end = now_usec() + timeout_usec;
        const Got *g;

        while (!(g = find_got(x, tag)) && now_usec() < end)
                assert_true(sd_event_run(x->event, 100 * 1000) >= 0);
        return g;
}

static void run_for(Ctx *x, uint64_t usec) {
        uint64_t end = now_usec() + usec;

        while (now_usec() < end)
                assert_true(sd_event_run(x->event, 50 * 1000) >= 0);
}

/* A hung peer takes the connection and never reads or writes. */
static int on_hung_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Ctx *x = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0)
                return 0;
        if (x->n_accepted < sizeof(x->accepted) / sizeof(x->accepted[0]))
                x->accepted[x->n_accepted++] = c;
        else
                close(c);
        return 0;
}

static void clear_got(Ctx *x) {
        for (unsigned i = 0; i < x->n_got; i++)
                free(x->got[i].body);
        x->n_got = 0;
}

static PeerSender *sender_new(Ctx *x, const char *ca, const char *cert, const char *key) {
        PeerTls tls = { .ca_file = ca, .cert_file = cert, .key_file = key };
        PeerSender *s = NULL;

        assert_int_equal(peer_sender_new(x->event, &tls, on_reply, x, &s), 0);
        assert_non_null(s);
        return s;
}

static char *record(const char *uuid, int version) {
        json_object *o = json_object_new_object();
        char *s;

        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        json_object_object_add(o, "version", json_object_new_int(version));
        json_object_object_add(o, "balance_usec", json_object_new_int64(123456789));
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        assert_non_null(s);
        return s;
}

static int setup(void **state) {
        Ctx *x = calloc(1, sizeof(Ctx));
        Pki ca, server, client, other_ca, bad;
        char *pem[4];

        assert_non_null(x);
        snprintf(x->dir, sizeof x->dir, "/tmp/vmmgr-test-peer-XXXXXX");
        assert_non_null(mkdtemp(x->dir));
        pki_make(&ca, "vmmgr fleet CA", PKI_CA, NULL);
        pki_make(&server, "destination vmmgrd", PKI_SERVER, &ca);
        pki_make(&client, "source vmmgrd", PKI_CLIENT, &ca);
        pki_make(&other_ca, "some other CA", PKI_CA, NULL);
        pki_make(&bad, "intruder", PKI_CLIENT, &other_ca);
        pem[0] = pki_crt_pem(&ca);
        pem[1] = pki_crt_pem(&server);
        pem[2] = pki_key_pem(&server);
        pem[3] = pki_crt_pem(&other_ca);
        pki_write_file(x->dir, "ca.crt", pem[0]);
        pki_write(x->dir, "client", &client);
        pki_write_file(x->dir, "other-ca.crt", pem[3]);
        pki_write(x->dir, "bad", &bad);
        snprintf(x->ca_file, sizeof x->ca_file, "%s/ca.crt", x->dir);
        snprintf(x->cert_file, sizeof x->cert_file, "%s/client.crt", x->dir);
        snprintf(x->key_file, sizeof x->key_file, "%s/client.key", x->dir);
        snprintf(x->other_ca_file, sizeof x->other_ca_file, "%s/other-ca.crt", x->dir);
        snprintf(x->bad_cert_file, sizeof x->bad_cert_file, "%s/bad.crt", x->dir);
        snprintf(x->bad_key_file, sizeof x->bad_key_file, "%s/bad.key", x->dir);
        peer_start(&x->peer, pem[1], pem[2], pem[0]);
        for (unsigned i = 0; i < 4; i++)
                free(pem[i]);
        pki_done(&ca);
        pki_done(&server);
        pki_done(&client);
        pki_done(&other_ca);
        pki_done(&bad);

        assert_int_equal(sd_event_new(&x->event), 0);
        for (unsigned i = 0; i < N_HUNG; i++) {
                x->hung_fd[i] = listen_loopback(&x->hung_port[i]);
                snprintf(x->hung_url[i], sizeof x->hung_url[i], "https://127.0.0.1:%u", (unsigned) x->hung_port[i]);
                assert_int_equal(sd_event_add_io(x->event, &x->hung_src[i], x->hung_fd[i], EPOLLIN, on_hung_accept, x),
                                 0);
        }
        *state = x;
        return 0;
}

static int teardown(void **state) {
        Ctx *x = *state;
        char cmd[128];

        clear_got(x);
        for (unsigned i = 0; i < N_HUNG; i++) {
                sd_event_source_disable_unref(x->hung_src[i]);
                close(x->hung_fd[i]);
        }
        for (unsigned i = 0; i < x->n_accepted; i++)
                close(x->accepted[i]);
        sd_event_unref(x->event);
        peer_stop(&x->peer);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
        assert_int_equal(system(cmd), 0);
        free(x);
        return 0;
}

/* ---- the cases ------------------------------------------------------------------------- */

/* A record goes out, and the peer's answer comes back on the loop. */
static void test_reply(void **state) {
        Ctx *x = *state;
        PeerSender *s = sender_new(x, x->ca_file, x->cert_file, x->key_file);
        char *rec = record(U1, 1);
        const Got *g;
        json_object *o;

        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, rec, 5000, 42), 0);
        assert_int_equal(peer_sender_queued(s), 1);
        g = wait_got(x, 42, 15 * SEC);
        assert_non_null(g);
        if (g->r != 0)
                fail_msg("no answer: %s (%d)", g->error, g->r);
        assert_int_equal(g->status, 201);
        assert_true(g->took_usec > 0);
        o = json_tokener_parse(g->body);
        assert_non_null(o);
        assert_string_equal(json_object_get_string(json_object_object_get(o, "echo")), rec);
        json_object_put(o);
        assert_int_equal(peer_sender_queued(s), 0);
        assert_int_equal(peer_received(&x->peer), 1);
        assert_string_equal(x->peer.received[0], rec);

        /* Any status is an answer: a route the peer does not have. */
        assert_int_equal(peer_sender_post(s, NULL, x->peer.url, "/v1/nothing", "{}", 0, 43), 0);
        g = wait_got(x, 43, 15 * SEC);
        assert_non_null(g);
        assert_int_equal(g->r, 0);
        assert_int_equal(g->status, 404);
        assert_non_null(strstr(g->body, "no such route"));
        free(rec);
        peer_sender_free(s);
}

/* A peer that accepts and never answers times out, and holds one thread:
 * a request to the good peer queued after several to it is answered at
 * once, and, with every thread held by a different hung peer, after one
 * deadline at most. */
static void test_hung_peer(void **state) {
        Ctx *x = *state;
        PeerSender *s = sender_new(x, x->ca_file, x->cert_file, x->key_file);
        const long hung_ms = 1000;
        uint64_t t0 = now_usec();
        const Got *g;

        for (uint64_t i = 0; i < 3; i++)
                assert_int_equal(peer_sender_post(s, NULL, x->hung_url[0], RECORDS_PATH, "{}", hung_ms, 100 + i), 0);
        assert_int_equal(peer_sender_post(s, NULL, x->peer.url, RECORDS_PATH, "{\"n\":1}", 3000, 1), 0);
        g = wait_got(x, 1, 15 * SEC);
        assert_non_null(g);
        assert_int_equal(g->r, 0);
        assert_int_equal(g->status, 201);
        printf("good peer behind a hung one: answered after %" PRIu64 " ms\n", (g->at_usec - t0) / 1000);
        /* Not behind the hung peer's three deadlines (3 s). */
        assert_null(find_got(x, 102));
        /* The hung peer's requests, one after the other, each with its deadline. */
        for (uint64_t i = 0; i < 3; i++) {
                g = wait_got(x, 100 + i, 20 * SEC);
                assert_non_null(g);
                assert_int_equal(g->r, -ETIMEDOUT);
                assert_true(g->took_usec >= (uint64_t) hung_ms * 1000 / 2);
                assert_true(g->took_usec < 10 * SEC);
        }
        assert_true(now_usec() - t0 < 30 * SEC);
        assert_true(x->n_accepted >= 1);

        /* Every thread held by a different hung peer: the good peer's
         * request waits for a thread, one deadline, not forever. */
        clear_got(x);
        for (unsigned i = 0; i < N_HUNG; i++)
                assert_int_equal(peer_sender_post(s, NULL, x->hung_url[i], RECORDS_PATH, "{}", hung_ms, 200 + i), 0);
        run_for(x, 200 * 1000); /* the threads take them */
        t0 = now_usec();
        assert_int_equal(peer_sender_post(s, NULL, x->peer.url, RECORDS_PATH, "{\"n\":2}", 3000, 2), 0);
        g = wait_got(x, 2, 20 * SEC);
        assert_non_null(g);
        assert_int_equal(g->r, 0);
        assert_int_equal(g->status, 201);
        printf("good peer with every thread held: answered after %" PRIu64 " ms\n", (g->at_usec - t0) / 1000);
        assert_true(g->at_usec - t0 < (uint64_t) hung_ms * 1000 + 3 * SEC + 5 * SEC);
        for (unsigned i = 0; i < N_HUNG; i++) {
                g = wait_got(x, 200 + i, 20 * SEC);
                assert_non_null(g);
                assert_int_equal(g->r, -ETIMEDOUT);
        }
        assert_int_equal(peer_sender_queued(s), 0);
        peer_sender_free(s);
}

/* Requests with the same key still queued: the newest replaces the older
 * in its place, and each replaced one is answered -ECANCELED. */
static void test_replace_by_key(void **state) {
        Ctx *x = *state;
        PeerSender *s = sender_new(x, x->ca_file, x->cert_file, x->key_file);
        char *v1 = record(U1, 1), *v2 = record(U1, 2), *v3 = record(U1, 3), *w1 = record(U2, 1);
        uint64_t end;
        const Got *g;

        /* One request held at the peer: the peer's next ones stay queued. */
        assert_int_equal(peer_sender_post(s, "hold", x->peer.url, HOLD_PATH, "{\"hold\":true}", 15000, 10), 0);
        end = now_usec() + 15 * SEC;
        while (peer_holding(&x->peer) == 0 && now_usec() < end)
                run_for(x, 20 * 1000);
        assert_int_equal(peer_holding(&x->peer), 1);

        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, v1, 5000, 11), 0);
        assert_int_equal(peer_sender_post(s, U2, x->peer.url, RECORDS_PATH, w1, 5000, 21), 0);
        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, v2, 5000, 12), 0);
        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, v3, 5000, 13), 0);
        /* The held one and the two keys: the replaced ones answer at once. */
        g = wait_got(x, 11, 5 * SEC);
        assert_non_null(g);
        assert_int_equal(g->r, -ECANCELED);
        assert_non_null(strstr(g->error, U1));
        g = wait_got(x, 12, 5 * SEC);
        assert_non_null(g);
        assert_int_equal(g->r, -ECANCELED);
        assert_int_equal(peer_sender_queued(s), 3);
        assert_null(find_got(x, 13));
        assert_null(find_got(x, 21));

        peer_open_gate(&x->peer);
        for (uint64_t tag = 10; tag <= 21; tag++) {
                if (tag != 10 && tag != 13 && tag != 21)
                        continue;
                g = wait_got(x, tag, 15 * SEC);
                assert_non_null(g);
                if (g->r != 0)
                        fail_msg("tag %" PRIu64 ": %s", tag, g->error);
                assert_int_equal(g->status, 201);
        }
        /* The peer got the held one, then v3 in v1's place, then w1. */
        assert_int_equal(peer_received(&x->peer), 3);
        assert_string_equal(x->peer.received[0], "{\"hold\":true}");
        assert_string_equal(x->peer.received[1], v3);
        assert_string_equal(x->peer.received[2], w1);
        assert_int_equal(peer_sender_queued(s), 0);
        free(v1);
        free(v2);
        free(v3);
        free(w1);
        peer_sender_free(s);
}

/* A peer whose certificate our CA did not sign is a TLS error, nothing
 * sent; our certificate from another CA is refused by the peer. */
static void test_certificates(void **state) {
        Ctx *x = *state;
        PeerSender *s = sender_new(x, x->other_ca_file, x->cert_file, x->key_file);
        const Got *g;

        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, "{}", 5000, 1), 0);
        g = wait_got(x, 1, 15 * SEC);
        assert_non_null(g);
        assert_true(g->r < 0);
        assert_int_equal(g->r, -EPROTO);
        printf("wrong CA: %s\n", g->error);
        if (!strcasestr(g->error, "certificate"))
                fail_msg("the error does not name the certificate: %s", g->error);
        peer_sender_free(s);
        assert_int_equal(peer_received(&x->peer), 0);

        s = sender_new(x, x->ca_file, x->bad_cert_file, x->bad_key_file);
        assert_int_equal(peer_sender_post(s, U1, x->peer.url, RECORDS_PATH, "{}", 5000, 2), 0);
        g = wait_got(x, 2, 15 * SEC);
        assert_non_null(g);
        /* Refused in the handshake or with 403, never taken. */
        if (g->r == 0)
                assert_int_equal(g->status, 403);
        assert_int_equal(peer_received(&x->peer), 0);
        peer_sender_free(s);
}

/* Freeing with requests in flight (hung peers, one held at the good
 * peer) and a full queue: bounded, no reply after it, nothing left that
 * the sanitizers would see. */
static void test_free_in_flight(void **state) {
        Ctx *x = *state;
        PeerSender *s = sender_new(x, x->ca_file, x->cert_file, x->key_file);
        unsigned accepted = 0, n_got;
        uint64_t t0, end;
        int r = 0;

        for (unsigned i = 0; i + 1 < N_HUNG; i++)
                assert_int_equal(peer_sender_post(s, NULL, x->hung_url[i], RECORDS_PATH, "{}", 30000, 300 + i), 0);
        assert_int_equal(peer_sender_post(s, NULL, x->peer.url, HOLD_PATH, "{}", 30000, 400), 0);
        end = now_usec() + 15 * SEC;
        while ((peer_holding(&x->peer) == 0 || x->n_accepted < N_HUNG - 1) && now_usec() < end)
                run_for(x, 20 * 1000);
        assert_int_equal(peer_holding(&x->peer), 1);

        /* Behind the held request: until the queue is full. */
        for (unsigned i = 0; i < PEER_SENDER_QUEUE_MAX + 10; i++) {
                char key[32];

                snprintf(key, sizeof key, "vm-%u", i);
                r = peer_sender_post(s, key, x->peer.url, RECORDS_PATH, "{}", 0, 1000 + i);
                if (r < 0)
                        break;
                accepted++;
        }
        assert_int_equal(r, -ENOBUFS);
        assert_int_equal(accepted, PEER_SENDER_QUEUE_MAX);
        /* Full, but a newer record for a queued key still replaces. */
        assert_int_equal(peer_sender_post(s, "vm-7", x->peer.url, RECORDS_PATH, "{\"v\":2}", 0, 5000), 0);
        assert_int_equal(peer_sender_queued(s), PEER_SENDER_QUEUE_MAX + N_HUNG + 1); /* and the -ECANCELED reply */
        n_got = x->n_got;

        t0 = now_usec();
        peer_sender_free(s);
        /* The threads give up within about a second; 2 s at most, then
         * they are left behind.  Generous. */
        printf("freeing with %u requests in flight took %" PRIu64 " ms\n", N_HUNG, (now_usec() - t0) / 1000);
        assert_true(now_usec() - t0 < 5 * SEC);
        run_for(x, 200 * 1000);
        assert_int_equal(x->n_got, n_got);
        peer_open_gate(&x->peer);
}

static void test_bad_arguments(void **state) {
        Ctx *x = *state;
        PeerTls tls = { .ca_file = x->ca_file, .cert_file = x->cert_file, .key_file = NULL };
        PeerSender *s = NULL;
        char *big;

        assert_int_equal(peer_sender_new(x->event, &tls, on_reply, x, &s), -EINVAL);
        assert_null(s);
        s = sender_new(x, x->ca_file, x->cert_file, x->key_file);
        assert_int_equal(peer_sender_post(s, U1, "http://127.0.0.1:1", RECORDS_PATH, "{}", 0, 1), -EINVAL);
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1/", RECORDS_PATH, "{}", 0, 1), -EINVAL);
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1", "v1/migration", "{}", 0, 1), -EINVAL);
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1", "/a b", "{}", 0, 1), -EINVAL);
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1", RECORDS_PATH, NULL, 0, 1), -EINVAL);
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1", RECORDS_PATH, "{}", -1, 1), -EINVAL);
        assert_int_equal(
                peer_sender_post(s, U1, "https://127.0.0.1:1", RECORDS_PATH, "{}", PEER_SENDER_TIMEOUT_MS_MAX + 1, 1),
                -EINVAL);
        big = malloc(PEER_SENDER_BODY_MAX + 2);
        assert_non_null(big);
        memset(big, ' ', PEER_SENDER_BODY_MAX + 1);
        big[PEER_SENDER_BODY_MAX + 1] = '\0';
        assert_int_equal(peer_sender_post(s, U1, "https://127.0.0.1:1", RECORDS_PATH, big, 0, 1), -E2BIG);
        free(big);
        assert_int_equal(peer_sender_queued(s), 0);

        /* Nothing listens there: an answer with the error, quickly. */
        {
                uint16_t port;
                int fd = listen_loopback(&port);
                char url[64];
                const Got *g;

                close(fd); /* the port is free now: connecting is refused */
                snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned) port);
                assert_int_equal(peer_sender_post(s, U1, url, RECORDS_PATH, "{}", 0, 7), 0);
                g = wait_got(x, 7, 15 * SEC);
                assert_non_null(g);
                assert_int_equal(g->r, -ECONNREFUSED);
        }
        peer_sender_free(s);
        assert_null(peer_sender_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hung_peer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace_by_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_certificates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        };

        /* vmmgrd ignores SIGPIPE: a peer that hangs up mid-request must
         * not kill it (curl's sends do not raise it; MHD's might). */
        signal(SIGPIPE, SIG_IGN);
        return vt_run_group_tests(tests, NULL, NULL);
}
