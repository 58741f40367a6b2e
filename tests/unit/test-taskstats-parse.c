/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests: the taskstats reply parser (kernel/taskstats.c) on hand-built
 * netlink datagrams: well-formed replies from kernels with a shorter or a
 * longer struct taskstats than our header's, NLMSG_ERROR answers, stale
 * messages, and malformed ones (short struct, wrong attribute types and
 * lengths, missing nested attributes, lengths past the buffer), then every
 * truncation and random byte flips of a good reply.  And the taskstats
 * calls on the kernel model, which has no threads to ask about.
 */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "kernel/internal.h"
#include "kernel/model/kmodel.h"

#define FAMILY 0x1b
#define SEQ 4242
#define TID 1234

#define TS_END(field) (offsetof(struct taskstats, field) + sizeof(((struct taskstats *) NULL)->field))

/* A datagram under construction; 8-byte aligned storage as a real receive
 * buffer from malloc() is. */
typedef struct Msg {
        uint64_t store[512];
        size_t len;
        size_t nest; /* offset of the open nest, 0 if none */
} Msg;

static uint8_t *msg_bytes(Msg *m) {
        return (uint8_t *) m->store;
}

static void *msg_put(Msg *m, const void *data, size_t len) {
        uint8_t *p = msg_bytes(m) + m->len;

        assert_true(m->len + NLA_ALIGN(len) <= sizeof(m->store));
        memset(p, 0, NLA_ALIGN(len));
        if (data)
                memcpy(p, data, len);
        m->len += NLA_ALIGN(len);
        return p;
}

/* Starts a message: nlmsghdr + genlmsghdr. */
static size_t msg_begin(Msg *m, uint16_t type, uint32_t seq, uint8_t cmd) {
        struct nlmsghdr nh = { .nlmsg_type = type, .nlmsg_seq = seq };
        struct genlmsghdr g = { .cmd = cmd, .version = TASKSTATS_GENL_VERSION };
        size_t start = m->len;

        msg_put(m, &nh, sizeof(nh));
        msg_put(m, &g, sizeof(g));
        return start;
}

static void msg_end(Msg *m, size_t start) {
        ((struct nlmsghdr *) (msg_bytes(m) + start))->nlmsg_len = (uint32_t) (m->len - start);
}

static void put_attr(Msg *m, uint16_t type, const void *data, size_t len) {
        struct nlattr a = { .nla_len = (uint16_t) (NLA_HDRLEN + len), .nla_type = type };

        msg_put(m, &a, sizeof(a));
        msg_put(m, data, len);
}

static void nest_begin(Msg *m, uint16_t type) {
        struct nlattr a = { .nla_type = type };

        m->nest = m->len;
        msg_put(m, &a, sizeof(a));
}

static void nest_end(Msg *m) {
        ((struct nlattr *) (msg_bytes(m) + m->nest))->nla_len = (uint16_t) (m->len - m->nest);
        m->nest = 0;
}

static struct taskstats sample_stats(uint16_t version) {
        struct taskstats s = { .version = version };

        s.cpu_count = 11;
        s.cpu_delay_total = 1000;
        s.blkio_count = 2;
        s.blkio_delay_total = 2000;
        s.swapin_count = 3;
        s.swapin_delay_total = 3000;
        s.cpu_run_real_total = 5000000;
        s.cpu_run_virtual_total = 5100000;
        s.ac_utime = 4000;
        s.ac_stime = 1000;
        s.freepages_count = 4;
        s.freepages_delay_total = 4000;
        s.thrashing_count = 5;
        s.thrashing_delay_total = 5000;
        s.compact_count = 6;
        s.compact_delay_total = 6000;
        s.wpcopy_count = 7;
        s.wpcopy_delay_total = 7000;
        return s;
}

/* A reply the way the kernel lays it out: AGGR_PID { PID, NULL pad,
 * STATS }, the stats payload `len` bytes of `stats` (zero beyond). */
static void build_reply(Msg *m, uint32_t seq, uint32_t pid, const void *stats, size_t len) {
        uint8_t payload[sizeof(struct taskstats) + 256] = { 0 };
        size_t start;

        assert_true(len <= sizeof(payload));
        memcpy(payload, stats, MIN(len, sizeof(struct taskstats)));
        start = msg_begin(m, FAMILY, seq, TASKSTATS_CMD_NEW);
        nest_begin(m, TASKSTATS_TYPE_AGGR_PID);
        put_attr(m, TASKSTATS_TYPE_PID, &pid, sizeof(pid));
        put_attr(m, TASKSTATS_TYPE_NULL, NULL, 0);
        put_attr(m, TASKSTATS_TYPE_STATS, payload, len);
        nest_end(m);
        msg_end(m, start);
}

static int parse(Msg *m, ThreadDelays *d) {
        return taskstats_parse_reply(msg_bytes(m), m->len, FAMILY, SEQ, TID, d);
}

static void test_full_reply(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        Msg m = { 0 };
        ThreadDelays d;

        build_reply(&m, SEQ, TID, &s, sizeof(s));
        assert_int_equal(parse(&m, &d), 1);
        assert_int_equal(d.version, TASKSTATS_VERSION);
        assert_int_equal(d.have, THREAD_DELAYS_CPU | THREAD_DELAYS_FREEPAGES | THREAD_DELAYS_THRASHING |
                                         THREAD_DELAYS_COMPACT | THREAD_DELAYS_WPCOPY);
        assert_int_equal(d.delayacct, TRI_UNKNOWN); /* the reply does not say */
        assert_true(d.cpu_count == 11 && d.cpu_delay_ns == 1000);
        assert_true(d.cpu_run_real_ns == 5000000 && d.cpu_run_virtual_ns == 5100000);
        assert_true(d.blkio_count == 2 && d.blkio_delay_ns == 2000);
        assert_true(d.swapin_count == 3 && d.swapin_delay_ns == 3000);
        assert_true(d.freepages_count == 4 && d.freepages_delay_ns == 4000);
        assert_true(d.thrashing_count == 5 && d.thrashing_delay_ns == 5000);
        assert_true(d.compact_count == 6 && d.compact_delay_ns == 6000);
        assert_true(d.wpcopy_count == 7 && d.wpcopy_delay_ns == 7000);
}

/* A version 8 kernel (before thrashing): its struct ends after freepages. */
static void test_older_kernel(void **state) {
        struct taskstats s = sample_stats(8);
        Msg m = { 0 };
        ThreadDelays d;

        build_reply(&m, SEQ, TID, &s, TS_END(freepages_delay_total));
        assert_int_equal(parse(&m, &d), 1);
        assert_int_equal(d.have, THREAD_DELAYS_CPU | THREAD_DELAYS_FREEPAGES);
        assert_true(d.freepages_delay_ns == 4000);
        assert_true(d.thrashing_delay_ns == 0 && d.thrashing_count == 0 && d.wpcopy_delay_ns == 0);
}

/* A version number alone is not trusted past the bytes that came. */
static void test_version_longer_than_payload(void **state) {
        struct taskstats s = sample_stats(13);
        Msg m = { 0 };
        ThreadDelays d;

        build_reply(&m, SEQ, TID, &s, TS_END(cpu_run_virtual_total));
        assert_int_equal(parse(&m, &d), 1);
        assert_int_equal(d.have, THREAD_DELAYS_CPU);
        assert_true(d.cpu_delay_ns == 1000 && d.freepages_delay_ns == 0);
        /* ... and fields a version does not have are not read even if sent */
        memset(&m, 0, sizeof(m));
        s = sample_stats(7);
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        assert_int_equal(parse(&m, &d), 1);
        assert_int_equal(d.have, THREAD_DELAYS_CPU | THREAD_DELAYS_FREEPAGES);
        assert_true(d.thrashing_delay_ns == 0 && d.compact_delay_ns == 0);
}

/* A newer kernel's longer struct: ours is a prefix of it. */
static void test_newer_kernel(void **state) {
        struct taskstats s = sample_stats(16);
        Msg m = { 0 };
        ThreadDelays d;

        build_reply(&m, SEQ, TID, &s, sizeof(s) + 200);
        assert_int_equal(parse(&m, &d), 1);
        assert_int_equal(d.version, 16);
        assert_true(d.have & THREAD_DELAYS_WPCOPY);
        assert_true(d.wpcopy_delay_ns == 7000);
}

/* Without the delay block filled, run time comes from ac_utime + ac_stime. */
static void test_run_time_fallback(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        ThreadDelays d;

        s.cpu_run_real_total = 0;
        assert_int_equal(taskstats_parse_stats(&s, sizeof(s), &d), 0);
        assert_true(d.cpu_run_real_ns == 5000 * UINT64_C(1000));
        /* cut before ac_stime: nothing to fall back on */
        assert_int_equal(taskstats_parse_stats(&s, TS_END(ac_utime), &d), 0);
        assert_true(d.cpu_run_real_ns == 0);
}

static void test_bad_stats(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        ThreadDelays d = { .cpu_count = 99 };
        Msg m = { 0 };

        assert_int_equal(taskstats_parse_stats(&s, 0, &d), -EBADMSG);
        assert_int_equal(taskstats_parse_stats(&s, 1, &d), -EBADMSG);
        assert_int_equal(taskstats_parse_stats(&s, TS_END(cpu_run_virtual_total) - 1, &d), -EBADMSG);
        s.version = 0;
        assert_int_equal(taskstats_parse_stats(&s, sizeof(s), &d), -EBADMSG);
        assert_true(d.cpu_count == 99); /* untouched on failure */

        /* the same through a whole reply */
        s = sample_stats(TASKSTATS_VERSION);
        build_reply(&m, SEQ, TID, &s, 16);
        assert_int_equal(parse(&m, &d), -EBADMSG);
}

static void test_bad_attributes(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        uint32_t pid = TID, other = TID + 1;
        uint16_t pid16 = TID;
        ThreadDelays d;
        size_t start;
        Msg m;

        /* the stats of another thread */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, other, &s, sizeof(s));
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* no STATS in the nest */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        nest_begin(&m, TASKSTATS_TYPE_AGGR_PID);
        put_attr(&m, TASKSTATS_TYPE_PID, &pid, sizeof(pid));
        nest_end(&m);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* no PID in the nest */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        nest_begin(&m, TASKSTATS_TYPE_AGGR_PID);
        put_attr(&m, TASKSTATS_TYPE_STATS, &s, sizeof(s));
        nest_end(&m);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* PID of the wrong type (2 bytes, not a u32) */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        nest_begin(&m, TASKSTATS_TYPE_AGGR_PID);
        put_attr(&m, TASKSTATS_TYPE_PID, &pid16, sizeof(pid16));
        put_attr(&m, TASKSTATS_TYPE_STATS, &s, sizeof(s));
        nest_end(&m);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* a process aggregate instead of the thread's */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        nest_begin(&m, TASKSTATS_TYPE_AGGR_TGID);
        put_attr(&m, TASKSTATS_TYPE_TGID, &pid, sizeof(pid));
        put_attr(&m, TASKSTATS_TYPE_STATS, &s, sizeof(s));
        nest_end(&m);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* AGGR_PID that is not a nest: a bare u32 */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        put_attr(&m, TASKSTATS_TYPE_AGGR_PID, &pid, sizeof(pid));
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* STATS directly at the top level, no nest */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        put_attr(&m, TASKSTATS_TYPE_STATS, &s, sizeof(s));
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* no attributes at all */
        m = (Msg) { 0 };
        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), -EBADMSG);

        /* the nest claims more than the message holds */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        ((struct nlattr *) (msg_bytes(&m) + NLMSG_HDRLEN + GENL_HDRLEN))->nla_len += 64;
        assert_int_equal(parse(&m, &d), -EBADMSG);
}

/* Attributes newer than our header are skipped, old ones still found. */
static void test_unknown_attributes(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        uint32_t pid = TID, junk = 7;
        ThreadDelays d;
        size_t start;
        Msg m = { 0 };

        start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
        put_attr(&m, 99, &junk, sizeof(junk));
        nest_begin(&m, TASKSTATS_TYPE_AGGR_PID);
        put_attr(&m, 42, &junk, sizeof(junk));
        put_attr(&m, TASKSTATS_TYPE_PID, &pid, sizeof(pid));
        put_attr(&m, TASKSTATS_TYPE_STATS, &s, sizeof(s));
        nest_end(&m);
        msg_end(&m, start);
        assert_int_equal(parse(&m, &d), 1);
        assert_true(d.cpu_count == 11);
}

static void put_error(Msg *m, uint32_t seq, int error, size_t len) {
        struct nlmsghdr nh = { .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = seq };
        struct nlmsgerr e = { .error = error };
        size_t start = m->len;

        msg_put(m, &nh, sizeof(nh));
        msg_put(m, &e, len);
        ((struct nlmsghdr *) (msg_bytes(m) + start))->nlmsg_len = (uint32_t) (NLMSG_HDRLEN + len);
}

static void test_errors(void **state) {
        ThreadDelays d;
        Msg m;

        /* a gone thread: the kernel's own errno comes through */
        m = (Msg) { 0 };
        put_error(&m, SEQ, -ESRCH, sizeof(struct nlmsgerr));
        assert_int_equal(parse(&m, &d), -ESRCH);
        m = (Msg) { 0 };
        put_error(&m, SEQ, -EINVAL, sizeof(int)); /* capped ACK: no copy of our request */
        assert_int_equal(parse(&m, &d), -EINVAL);
        /* an ACK with no stats before it, a positive or absurd errno, a
         * message too short to hold the error */
        m = (Msg) { 0 };
        put_error(&m, SEQ, 0, sizeof(struct nlmsgerr));
        assert_int_equal(parse(&m, &d), -EBADMSG);
        m = (Msg) { 0 };
        put_error(&m, SEQ, ESRCH, sizeof(struct nlmsgerr));
        assert_int_equal(parse(&m, &d), -EBADMSG);
        m = (Msg) { 0 };
        put_error(&m, SEQ, -100000, sizeof(struct nlmsgerr));
        assert_int_equal(parse(&m, &d), -EBADMSG);
        m = (Msg) { 0 };
        put_error(&m, SEQ, -ESRCH, 2);
        assert_int_equal(parse(&m, &d), -EBADMSG);
}

/* Messages for earlier requests are passed over. */
static void test_stale_messages(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        ThreadDelays d;
        Msg m = { 0 };

        put_error(&m, SEQ - 1, -ESRCH, sizeof(struct nlmsgerr));
        assert_int_equal(parse(&m, &d), 0);
        build_reply(&m, SEQ - 2, TID + 5, &s, sizeof(s));
        assert_int_equal(parse(&m, &d), 0);
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        assert_int_equal(parse(&m, &d), 1);
        assert_true(d.cpu_count == 11);
        /* an empty datagram holds nothing */
        assert_int_equal(taskstats_parse_reply(msg_bytes(&m), 0, FAMILY, SEQ, TID, &d), 0);
}

static void test_bad_headers(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        struct nlmsghdr *nh;
        ThreadDelays d;
        Msg m;

        /* another family */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        ((struct nlmsghdr *) msg_bytes(&m))->nlmsg_type = FAMILY + 1;
        assert_int_equal(parse(&m, &d), -EBADMSG);
        /* another command */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        ((struct genlmsghdr *) (msg_bytes(&m) + NLMSG_HDRLEN))->cmd = TASKSTATS_CMD_GET;
        assert_int_equal(parse(&m, &d), -EBADMSG);
        /* a message too short for the generic netlink header */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        nh = (struct nlmsghdr *) msg_bytes(&m);
        nh->nlmsg_len = NLMSG_HDRLEN + 2;
        assert_int_equal(taskstats_parse_reply(msg_bytes(&m), NLMSG_HDRLEN + 4, FAMILY, SEQ, TID, &d), -EBADMSG);
        /* a message longer than the datagram */
        m = (Msg) { 0 };
        build_reply(&m, SEQ, TID, &s, sizeof(s));
        ((struct nlmsghdr *) msg_bytes(&m))->nlmsg_len += 8;
        assert_int_equal(parse(&m, &d), -EBADMSG);
        /* a datagram shorter than a netlink header */
        assert_int_equal(taskstats_parse_reply(msg_bytes(&m), 7, FAMILY, SEQ, TID, &d), -EBADMSG);
}

static bool result_ok(int r) {
        return r == 1 || r == 0 || r == -EBADMSG;
}

/* Every prefix of a good reply, and the reply with every single byte set
 * to each of a few values: the parser answers, never reads past the
 * buffer (ASan in ./run test) and never calls a short struct good. */
static void test_truncations_and_flips(void **state) {
        struct taskstats s = sample_stats(TASKSTATS_VERSION);
        static const uint8_t values[] = { 0x00, 0x01, 0x04, 0x7f, 0x80, 0xff };
        Msg good = { 0 };
        ThreadDelays d;

        build_reply(&good, SEQ, TID, &s, sizeof(s));
        for (size_t len = 0; len < good.len; len++) {
                uint8_t *copy = malloc(len ? len : 1);
                int r;

                assert_non_null(copy);
                memcpy(copy, msg_bytes(&good), len);
                r = taskstats_parse_reply(copy, len, FAMILY, SEQ, TID, &d);
                /* cut anywhere, the message is no longer whole */
                assert_int_equal(r, len == 0 ? 0 : -EBADMSG);
                free(copy);
        }
        for (size_t i = 0; i < good.len; i++)
                for (size_t v = 0; v < ARRAY_SIZE(values); v++) {
                        Msg m = good;
                        int r;

                        msg_bytes(&m)[i] = values[v];
                        r = parse(&m, &d);
                        assert_true(result_ok(r) || (r < 0 && r >= -4095));
                        if (r == 1)
                                assert_true(d.have & THREAD_DELAYS_CPU);
                }
}

/* Random datagrams built from random attribute soup. */
static void test_random(void **state) {
        unsigned seed = 12345;
        ThreadDelays d;

        for (int iter = 0; iter < 20000; iter++) {
                Msg m = { 0 };
                size_t start = msg_begin(&m, FAMILY, SEQ, TASKSTATS_CMD_NEW);
                int nattr = rand_r(&seed) % 6;
                int r;

                for (int a = 0; a < nattr; a++) {
                        uint8_t junk[64];
                        size_t len = (size_t) rand_r(&seed) % sizeof(junk);

                        for (size_t k = 0; k < len; k++)
                                junk[k] = (uint8_t) rand_r(&seed);
                        if (rand_r(&seed) % 2) {
                                nest_begin(&m, (uint16_t) (rand_r(&seed) % 8));
                                put_attr(&m, (uint16_t) (rand_r(&seed) % 8), junk, len);
                                nest_end(&m);
                        } else
                                put_attr(&m, (uint16_t) (rand_r(&seed) % 8), junk, len);
                }
                msg_end(&m, start);
                r = parse(&m, &d);
                assert_true(result_ok(r));
        }
}

/* The kernel model has no host threads and no sysctl to switch. */
static void test_model_refuses(void **state) {
        KModelConfig mc = { .mode = CG_MODE_UNIFIED };
        KHostConfig hc = { 0 };
        KModel *m = NULL;
        KHost *h = NULL;
        ThreadDelays d;
        bool on;
        VmId vm;

        assert_int_equal(km_new(&mc, &m), 0);
        assert_int_equal(kh_open_model(m, &hc, &h), 0);
        assert_int_equal(kh_subtree_setup(h), 0);
        assert_int_equal(vm_id_parse("0b9f7c52-1e64-4b8e-9d0c-5a1b2c3d4e50", &vm), 0);
        assert_true(kh_vm_create(h, &vm) >= 0);
        assert_int_equal(kh_delayacct_get(h, &on), -EOPNOTSUPP);
        assert_int_equal(kh_delayacct_set(h, true), -EOPNOTSUPP);
        assert_int_equal(kh_vm_delays(h, NULL, &vm, CG_ROLE_VCPUS, &d, NULL), -EOPNOTSUPP);
        assert_int_equal(kh_taskstats_thread(NULL, 1, &d), -EINVAL);
        kh_free(h);
        km_free(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_reply),
                cmocka_unit_test(test_older_kernel),
                cmocka_unit_test(test_version_longer_than_payload),
                cmocka_unit_test(test_newer_kernel),
                cmocka_unit_test(test_run_time_fallback),
                cmocka_unit_test(test_bad_stats),
                cmocka_unit_test(test_bad_attributes),
                cmocka_unit_test(test_unknown_attributes),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_stale_messages),
                cmocka_unit_test(test_bad_headers),
                cmocka_unit_test(test_truncations_and_flips),
                cmocka_unit_test(test_random),
                cmocka_unit_test(test_model_refuses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
