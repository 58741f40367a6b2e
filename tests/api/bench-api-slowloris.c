/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark: a normal request's latency while 1,000 half-open connections
 * (half a request, then silence) are open on the API's UNIX socket.
 *
 *   api.slowloris.request_ms       default limits: one peer opens 1,000 as
 *                                  fast as it can, and a request follows at
 *                                  once (the server works through its accept
 *                                  queue, closing the peer's oldest for
 *                                  room); median of 5 rounds; goal <= 100 ms
 *   api.slowloris.held_request_ms  the server holds all 1,000 (limits
 *                                  raised so that none is closed for room,
 *                                  as if they came from many peers): median
 *                                  of 50 requests one after the other
 *
 * Connect to first byte of the answer, measured by the client.  A request
 * with no answer within 10 s counts as 10,000 ms (what vmmgr did before
 * issue 10: the 65th connection waited in the accept queue).
 * Prints "figure: NAME VALUE UNIT" lines (tests/bench/README.md).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>

#include "slowloris.h"

#define FLOOD 1000
#define NO_ANSWER_MS 10000.0

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof *v, cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static ApiConfig config(void) {
        return (ApiConfig) { .allowed_gid = geteuid() == 0 ? API_GID_ROOT_ONLY : getegid() };
}

static double one_request(SlServer *s) {
        SlReply rep;

        if (sl_request(s->sock, SL_FULL_REQUEST, strlen(SL_FULL_REQUEST), (int) NO_ANSWER_MS, &rep) < 0 ||
            rep.status != 200)
                return NO_ANSWER_MS;
        return (double) rep.usec / 1000.0;
}

static int flood(SlServer *s, int *fds) {
        for (int i = 0; i < FLOOD; i++) {
                fds[i] = sl_half_open(s->sock);
                if (fds[i] < 0) {
                        fprintf(stderr, "half-open connection %d: %s\n", i, strerror(-fds[i]));
                        return -1;
                }
        }
        return 0;
}

static void close_all(int *fds) {
        for (int i = 0; i < FLOOD; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* 1,000 held, then 50 requests one after the other. */
static int held(double *ret_ms, double *ret_max_ms) {
        ApiConfig cfg = config();
        static int fds[FLOOD];
        double ms[50], max = 0;
        ApiStats st;
        SlServer s;
        char msg[320];

        cfg.connection_limit = 1024;
        cfg.per_peer_limit = 1024;
        if (sl_server_start(&s, &cfg, msg, sizeof msg) < 0) {
                fprintf(stderr, "%s\n", msg);
                return -1;
        }
        if (flood(&s, fds) < 0)
                return -1;
        /* Until the server has accepted them all (it accepts in rounds). */
        for (int i = 0; i < 500; i++) {
                api_get_stats(s.api, &st); /* a racy read of a counter: fine for waiting */
                if (st.connections_open >= FLOOD)
                        break;
                usleep(10000);
        }
        printf("# connections open on the server: %" PRIu64 "\n", st.connections_open);
        for (size_t i = 0; i < 50; i++) {
                ms[i] = one_request(&s);
                max = ms[i] > max ? ms[i] : max;
        }
        *ret_ms = median(ms, 50);
        *ret_max_ms = max;
        close_all(fds);
        sl_server_stop(&s);
        return 0;
}

/* Default limits: 1,000 as fast as possible, then one request at once. */
static int first(double *ret_ms) {
        static int fds[FLOOD];
        double ms[5];

        for (size_t round = 0; round < 5; round++) {
                ApiConfig cfg = config();
                SlServer s;
                char msg[320];

                if (sl_server_start(&s, &cfg, msg, sizeof msg) < 0) {
                        fprintf(stderr, "%s\n", msg);
                        return -1;
                }
                if (flood(&s, fds) < 0)
                        return -1;
                ms[round] = one_request(&s);
                close_all(fds);
                sl_server_stop(&s);
        }
        *ret_ms = median(ms, 5);
        return 0;
}

int main(void) {
        double ms, max_ms, first_ms;

        signal(SIGPIPE, SIG_IGN);
        if (!sl_want_fds(2 * FLOOD + 256)) {
                printf("SKIP: RLIMIT_NOFILE's hard limit is below %d\n", 2 * FLOOD + 256);
                return 77;
        }
        if (held(&ms, &max_ms) < 0 || first(&first_ms) < 0)
                return 1;
        printf("# held: slowest of 50 requests %.2f ms\n", max_ms);
        printf("figure: api.slowloris.request_ms %.2f ms\n", first_ms);
        printf("figure: api.slowloris.held_request_ms %.2f ms\n", ms);
        return 0;
}
