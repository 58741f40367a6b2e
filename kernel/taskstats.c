/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-thread delay accounting: taskstats over generic netlink (libnl-genl)
 * and the kernel.task_delayacct switch.
 *
 * A KTaskstats holds one NETLINK_GENERIC socket resolved once to the
 * TASKSTATS family.  A query is one TASKSTATS_CMD_GET with
 * TASKSTATS_CMD_ATTR_PID = tid; the kernel answers with a TASKSTATS_CMD_NEW
 * message holding
 *     TASKSTATS_TYPE_AGGR_PID (nested)
 *         TASKSTATS_TYPE_PID    u32, the tid asked about
 *         TASKSTATS_TYPE_STATS  struct taskstats (as long as *its* kernel's)
 *         [TASKSTATS_TYPE_NULL  padding for 64-bit alignment]
 * or with an NLMSG_ERROR (-ESRCH for a thread that is gone).
 *
 * libnl builds and sends the request and resolves the family; the reply
 * is received with plain recvfrom() and parsed here because libnl's
 * callbacks turn the kernel's errno into its own codes (ESRCH and ENOENT
 * become one NLE_OBJ_NOTFOUND), and because a parser over a byte buffer
 * can be fed hostile input in a unit test (tests/unit/test-taskstats-parse.c).
 *
 * struct taskstats only grows at its end, and its `version` says what the
 * sending kernel filled in.  The payload is copied into a zeroed struct of
 * the size our header knows (a longer one is cut, a shorter one leaves
 * zeros), and a field is trusted only if the version has it and the
 * payload reaches it.  Versions that added fields we report
 * (include/uapi/linux/taskstats.h and its history):
 *     1  cpu, blkio, swapin delays; cpu_run_real/virtual_total
 *     7  freepages (direct reclaim)          9  thrashing
 *    11  compact                            13  wpcopy
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/internal.h"
#include "kernel/khost.h"

#define TASK_DELAYACCT_PATH "/proc/sys/kernel/task_delayacct"
/* The kernel answers at once; this only bounds a reply that was lost
 * (a receive buffer overrun drops it). */
#define REPLY_TIMEOUT_SEC 5
/* A 6.1 reply is under 500 bytes; the buffer grows for longer ones. */
#define REPLY_BUF_INITIAL 4096

struct KTaskstats {
        struct nl_sock *sk;
        int fd;           /* sk's socket, for recvfrom() */
        int family;       /* TASKSTATS generic netlink family id */
        int delayacct_fd; /* TASK_DELAYACCT_PATH, -EBADF where absent */
        uint8_t *buf;     /* reply buffer */
        size_t buf_size;
};

/* libnl returns its own error codes; map back the ones a caller can act
 * on.  Anything else is an I/O error on the socket. */
static int nl_to_errno(int nle) {
        switch (nle < 0 ? -nle : nle) {
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_INTR:
                return -EINTR;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_MSGSIZE:
                return -EMSGSIZE;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_AF_NOSUPPORT:
        case NLE_PROTO_MISMATCH:
        case NLE_OPNOTSUPP:
                return -EOPNOTSUPP;
        default:
                return -EIO;
        }
}

/* A generic netlink socket and the TASKSTATS family id.  -EOPNOTSUPP when
 * the kernel has no generic netlink or no TASKSTATS family (also in a
 * network namespace other than the initial one: the family is not
 * netns-aware). */
static int ts_connect(struct nl_sock **ret_sk, int *ret_family) {
        struct nl_sock *sk;
        int family, r;

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = genl_connect(sk);
        if (r < 0) {
                nl_socket_free(sk);
                /* A kernel without NETLINK_GENERIC refuses the socket
                 * (EPROTONOSUPPORT): -EOPNOTSUPP. */
                return nl_to_errno(r);
        }
        family = genl_ctrl_resolve(sk, TASKSTATS_GENL_NAME);
        if (family < 0) {
                nl_socket_free(sk);
                /* The controller answers ENOENT for a family it lacks. */
                r = nl_to_errno(family);
                return r == -ENOENT ? -EOPNOTSUPP : r;
        }
        *ret_sk = sk;
        *ret_family = family;
        return 0;
}

int taskstats_family_available(void) {
        struct nl_sock *sk;
        int family, r;

        r = ts_connect(&sk, &family);
        if (r == -EOPNOTSUPP)
                return 0;
        if (r < 0)
                return r;
        nl_socket_free(sk);
        return 1;
}

KTaskstats *kh_taskstats_free(KTaskstats *t) {
        if (!t)
                return NULL;
        if (t->sk)
                nl_socket_free(t->sk);
        closep(&t->delayacct_fd);
        free(t->buf);
        free(t);
        return NULL;
}

int kh_taskstats_open(KTaskstats **ret) {
        _cleanup_taskstats_ KTaskstats *t = NULL;
        struct timeval tv = { .tv_sec = REPLY_TIMEOUT_SEC };
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->delayacct_fd = -EBADF;
        r = ts_connect(&t->sk, &t->family);
        if (r < 0)
                return r;
        /* Errors come without asking; an ACK after each reply would only
         * be one more message to read. */
        nl_socket_disable_auto_ack(t->sk);
        t->fd = nl_socket_get_fd(t->sk);
        if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return negative_errno();
        t->buf_size = REPLY_BUF_INITIAL;
        t->buf = malloc(t->buf_size);
        if (!t->buf)
                return -ENOMEM;
        /* Kept open and re-read with pread() at each query; absent before
         * 5.14 (delay accounting was then a boot option only). */
        t->delayacct_fd = open(TASK_DELAYACCT_PATH, O_RDONLY | O_CLOEXEC);
        if (t->delayacct_fd < 0 && errno != ENOENT)
                return negative_errno();
        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- parsing: byte buffers in, ThreadDelays out ------------------------ */

#define TS_END(field) (offsetof(struct taskstats, field) + sizeof(((struct taskstats *) NULL)->field))

/* Does the sender's struct have this field?  Its version must be new
 * enough and the payload long enough: a kernel that claims a version but
 * sends less is not trusted beyond what it sent. */
static bool ts_has(const struct taskstats *s, size_t len, unsigned version, size_t end) {
        return s->version >= version && len >= end;
}

int taskstats_parse_stats(const void *data, size_t len, ThreadDelays *ret) {
        struct taskstats s = { 0 };
        ThreadDelays d = { .delayacct = TRI_UNKNOWN };

        memcpy(&s, data, MIN(len, sizeof(s)));
        /* Every kernel with taskstats sends at least version 1's fields. */
        if (s.version < 1 || len < TS_END(cpu_run_virtual_total))
                return -EBADMSG;
        d.version = s.version;
        d.have = THREAD_DELAYS_CPU;
        d.cpu_count = s.cpu_count;
        d.cpu_delay_ns = s.cpu_delay_total;
        d.cpu_run_real_ns = s.cpu_run_real_total;
        d.cpu_run_virtual_ns = s.cpu_run_virtual_total;
        d.blkio_count = s.blkio_count;
        d.blkio_delay_ns = s.blkio_delay_total;
        d.swapin_count = s.swapin_count;
        d.swapin_delay_ns = s.swapin_delay_total;
        /* Kernels without CONFIG_TASK_DELAY_ACCT (and before 5.14 with
         * delay accounting off) leave the delay block zero; ac_utime and
         * ac_stime are the same utime + stime in µs and always filled. */
        if (d.cpu_run_real_ns == 0 && len >= TS_END(ac_stime))
                d.cpu_run_real_ns = (s.ac_utime + s.ac_stime) * NSEC_PER_USEC;
        if (ts_has(&s, len, 7, TS_END(freepages_delay_total))) {
                d.have |= THREAD_DELAYS_FREEPAGES;
                d.freepages_count = s.freepages_count;
                d.freepages_delay_ns = s.freepages_delay_total;
        }
        if (ts_has(&s, len, 9, TS_END(thrashing_delay_total))) {
                d.have |= THREAD_DELAYS_THRASHING;
                d.thrashing_count = s.thrashing_count;
                d.thrashing_delay_ns = s.thrashing_delay_total;
        }
#if TASKSTATS_VERSION >= 11
        if (ts_has(&s, len, 11, TS_END(compact_delay_total))) {
                d.have |= THREAD_DELAYS_COMPACT;
                d.compact_count = s.compact_count;
                d.compact_delay_ns = s.compact_delay_total;
        }
#endif
#if TASKSTATS_VERSION >= 13
        if (ts_has(&s, len, 13, TS_END(wpcopy_delay_total))) {
                d.have |= THREAD_DELAYS_WPCOPY;
                d.wpcopy_count = s.wpcopy_count;
                d.wpcopy_delay_ns = s.wpcopy_delay_total;
        }
#endif
        *ret = d;
        return 0;
}

int taskstats_parse_attrs(void *attrs, size_t len, uint32_t tid, ThreadDelays *ret) {
        static const struct nla_policy top_policy[TASKSTATS_TYPE_MAX + 1] = {
                [TASKSTATS_TYPE_AGGR_PID] = { .type = NLA_NESTED },
        };
        static const struct nla_policy aggr_policy[TASKSTATS_TYPE_MAX + 1] = {
                [TASKSTATS_TYPE_PID] = { .type = NLA_U32 },
        };
        struct nlattr *top[TASKSTATS_TYPE_MAX + 1], *aggr[TASKSTATS_TYPE_MAX + 1];
        struct nlattr *stats;

        if (len > INT_MAX)
                return -EBADMSG;
        /* libnl checks every attribute's length against the buffer and
         * the policy, and skips types newer than our header. */
        if (nla_parse(top, TASKSTATS_TYPE_MAX, attrs, (int) len, top_policy) < 0)
                return -EBADMSG;
        if (!top[TASKSTATS_TYPE_AGGR_PID])
                return -EBADMSG;
        if (nla_parse_nested(aggr, TASKSTATS_TYPE_MAX, top[TASKSTATS_TYPE_AGGR_PID], aggr_policy) < 0)
                return -EBADMSG;
        if (!aggr[TASKSTATS_TYPE_PID] || nla_get_u32(aggr[TASKSTATS_TYPE_PID]) != tid)
                return -EBADMSG;
        stats = aggr[TASKSTATS_TYPE_STATS];
        if (!stats)
                return -EBADMSG;
        return taskstats_parse_stats(nla_data(stats), (size_t) nla_len(stats), ret);
}

static int parse_error(const struct nlmsghdr *nh) {
        const struct nlmsgerr *e = NLMSG_DATA(nh);

        if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(e->error)))
                return -EBADMSG;
        /* 0 is an ACK: the kernel is done with the request and sent no
         * stats.  A positive "errno" is not one. */
        if (e->error >= 0 || e->error < -4095)
                return -EBADMSG;
        return e->error;
}

int taskstats_parse_reply(void *buf, size_t len, uint16_t family, uint32_t seq, uint32_t tid,
                          ThreadDelays *ret) {
        struct nlmsghdr *nh = buf;
        int rem, r;

        if (len > INT_MAX)
                return -EBADMSG;
        rem = (int) len;
        for (; NLMSG_OK(nh, rem); nh = NLMSG_NEXT(nh, rem)) {
                const struct genlmsghdr *g;

                /* Leftovers of an earlier query (one that timed out) carry
                 * another sequence number. */
                if (nh->nlmsg_seq != seq)
                        continue;
                if (nh->nlmsg_type == NLMSG_ERROR)
                        return parse_error(nh);
                if (nh->nlmsg_type != family || nh->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
                        return -EBADMSG;
                g = NLMSG_DATA(nh);
                if (g->cmd != TASKSTATS_CMD_NEW)
                        return -EBADMSG;
                r = taskstats_parse_attrs((uint8_t *) g + GENL_HDRLEN,
                                          nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), tid, ret);
                return r < 0 ? r : 1;
        }
        /* A truncated header or a message longer than the datagram. */
        if (rem != 0)
                return -EBADMSG;
        return 0;
}

/* ---- queries ----------------------------------------------------------- */

static int ts_send(KTaskstats *t, pid_t tid, uint32_t *ret_seq) {
        struct nl_msg *msg;
        int r;

        msg = nlmsg_alloc();
        if (!msg)
                return -ENOMEM;
        if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, t->family, 0, 0, TASKSTATS_CMD_GET,
                         TASKSTATS_GENL_VERSION)) {
                nlmsg_free(msg);
                return -ENOMEM;
        }
        r = nla_put_u32(msg, TASKSTATS_CMD_ATTR_PID, (uint32_t) tid);
        if (r >= 0)
                r = nl_send_auto(t->sk, msg); /* fills in port and sequence */
        *ret_seq = nlmsg_hdr(msg)->nlmsg_seq;
        nlmsg_free(msg);
        return r < 0 ? nl_to_errno(r) : 0;
}

/* One datagram from the kernel into t->buf.  Peeks at its length first
 * so that a kernel with a longer struct taskstats is never cut short. */
static int ts_recv(KTaskstats *t, size_t *ret_len) {
        for (;;) {
                struct sockaddr_nl from = { 0 };
                socklen_t fromlen = sizeof(from);
                ssize_t n;

                n = recv(t->fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                }
                if ((size_t) n > t->buf_size) {
                        uint8_t *b = realloc(t->buf, (size_t) n);
                        if (!b)
                                return -ENOMEM;
                        t->buf = b;
                        t->buf_size = (size_t) n;
                }
                n = recvfrom(t->fd, t->buf, t->buf_size, 0, (struct sockaddr *) &from, &fromlen);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                }
                /* Any process may unicast to our port: only the kernel
                 * (port 0) answers taskstats. */
                if (fromlen < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
                        continue;
                *ret_len = (size_t) n;
                return 0;
        }
}

static Tristate read_delayacct(const KTaskstats *t) {
        char buf[16];
        ssize_t n;

        if (t->delayacct_fd < 0)
                return TRI_UNKNOWN;
        n = pread(t->delayacct_fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
                return TRI_UNKNOWN;
        buf[n] = '\0';
        return strcmp(buf, "1\n") == 0 ? TRI_YES : strcmp(buf, "0\n") == 0 ? TRI_NO : TRI_UNKNOWN;
}

int kh_taskstats_thread(KTaskstats *t, pid_t tid, ThreadDelays *ret) {
        ThreadDelays d;
        uint32_t seq;
        int r;

        if (!t || tid <= 0)
                return -EINVAL;
        r = ts_send(t, tid, &seq);
        if (r < 0)
                return r;
        do {
                size_t len;

                r = ts_recv(t, &len);
                if (r < 0)
                        return r;
                r = taskstats_parse_reply(t->buf, len, (uint16_t) t->family, seq, (uint32_t) tid, &d);
        } while (r == 0);
        if (r < 0)
                return r;
        d.delayacct = read_delayacct(t);
        *ret = d;
        return 0;
}

/* ---- per VM ------------------------------------------------------------ */

static bool is_real_host(const KHost *h) {
        return h->ops == &real_backend_ops;
}

static void delays_add(ThreadDelays *sum, const ThreadDelays *d, bool first) {
        if (first) {
                *sum = *d;
                return;
        }
        sum->have &= d->have;
        sum->version = MIN(sum->version, d->version);
        if (sum->delayacct != d->delayacct)
                sum->delayacct = TRI_UNKNOWN; /* switched during the walk */
        sum->cpu_run_real_ns += d->cpu_run_real_ns;
        sum->cpu_run_virtual_ns += d->cpu_run_virtual_ns;
        sum->cpu_count += d->cpu_count;
        sum->cpu_delay_ns += d->cpu_delay_ns;
        sum->blkio_count += d->blkio_count;
        sum->blkio_delay_ns += d->blkio_delay_ns;
        sum->swapin_count += d->swapin_count;
        sum->swapin_delay_ns += d->swapin_delay_ns;
        sum->freepages_count += d->freepages_count;
        sum->freepages_delay_ns += d->freepages_delay_ns;
        sum->thrashing_count += d->thrashing_count;
        sum->thrashing_delay_ns += d->thrashing_delay_ns;
        sum->compact_count += d->compact_count;
        sum->compact_delay_ns += d->compact_delay_ns;
        sum->wpcopy_count += d->wpcopy_count;
        sum->wpcopy_delay_ns += d->wpcopy_delay_ns;
}

int kh_vm_delays(KHost *h, KTaskstats *t, const VmId *vm, CgRole role, ThreadDelays *ret,
                 size_t *ret_threads) {
        _cleanup_free_ pid_t *tids = NULL;
        ThreadDelays sum = { .delayacct = TRI_UNKNOWN };
        size_t n = 0, counted = 0;
        int r;

        /* The model's thread ids are not the host's. */
        if (!is_real_host(h))
                return -EOPNOTSUPP;
        if (!t)
                return -EINVAL;
        r = kh_vm_threads(h, vm, role, &tids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                ThreadDelays d;

                r = kh_taskstats_thread(t, tids[i], &d);
                if (r == -ESRCH)
                        continue; /* exited since the list was read */
                if (r < 0)
                        return r;
                delays_add(&sum, &d, counted == 0);
                counted++;
        }
        *ret = sum;
        if (ret_threads)
                *ret_threads = counted;
        return 0;
}

/* ---- kernel.task_delayacct --------------------------------------------- */

int kh_delayacct_get(KHost *h, bool *ret_enabled) {
        char buf[16];
        int r;

        if (!is_real_host(h))
                return -EOPNOTSUPP;
        r = h->ops->read_host_file(h->be, KHOST_FILE_TASK_DELAYACCT, buf, sizeof(buf), NULL);
        if (r == -ENOENT)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        if (strcmp(buf, "1\n") == 0)
                *ret_enabled = true;
        else if (strcmp(buf, "0\n") == 0)
                *ret_enabled = false;
        else
                return -EBADMSG;
        return 0;
}

int kh_delayacct_set(KHost *h, bool enabled) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        if (!is_real_host(h))
                return -EOPNOTSUPP;
        /* The backend table reads host files but has no writer for them:
         * this is the one host-wide setting vmmgr writes, on request. */
        fd = open(TASK_DELAYACCT_PATH, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -EOPNOTSUPP : negative_errno();
        n = write(fd, enabled ? "1" : "0", 1);
        if (n < 0)
                return negative_errno();
        return n == 1 ? 0 : -EIO;
}
