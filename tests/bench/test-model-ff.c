/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel model's fast mode (lazy subtrees + closed-form fast-forward of
 * identical CFS periods, kernel/model/model-cpu.c) against its slow mode (every
 * subtree stepped event by event on every km_advance()), on random
 * scenarios: two models get the same operations, and every observable must
 * agree to the nanosecond, every return code too.
 *
 * A scenario: v2 (stock or patched) or v1; a tree with domain groups, a
 * vmmgr-like VM with threaded vcpus/emulator groups, nested limits;
 * processes and threads with random demands; then random operations:
 * advances of 1 us to 10 min, demand changes, cpu.max / cpu.max.burst /
 * cpu.max.runtime (N, +N, -N) and v1 quota/period writes, thread moves,
 * thread exits and new threads, mkdir/rmdir inside limited subtrees, and
 * reads of some or all observables (cpu.stat, cpu.max.runtime,
 * cpuacct.usage, schedstat, km_thread_usage_nsec) at random moments, so
 * both lazily held and freshly synced subtrees are compared.
 *
 * Usage: test-model-ff [SCENARIOS [FIRST_SEED]]   (default 400, seed 1)
 * Exit 0 when every scenario agrees and fast-forward covered periods.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "kernel/backend.h"
#include "kernel/model/kmodel.h"
#include "kernel/model/model-internal.h"

#define MAX_TIDS 64
#define DUMP_MAX 65536

typedef struct Side {
        KModel *m;
        const KBackendOps *ops;
        void *be;
} Side;

typedef struct Scn {
        Side s[2]; /* [0] fast, [1] slow */
        bool v1, patched;
        uint64_t rng;
        pid_t tids[MAX_TIDS];
        pid_t pids[MAX_TIDS]; /* process of each tid */
        bool alive[MAX_TIDS];
        size_t n_tids;
        unsigned long seed;
        unsigned step;
        int failed;
} Scn;

/* Groups relative to the view's subtree; "vm/vcpus" and "vm/emu" are
 * threaded on v2.  "a/x/s" comes and goes. */
static const char *const groups[] = { "", "a", "a/x", "a/y", "b", "vm", "vm/vcpus", "vm/emu", "a/x/s" };
#define N_GROUPS (sizeof(groups) / sizeof(groups[0]))
/* Leaves where whole processes may live (v2 domain leaves). */
static const char *const proc_leaves[] = { "a/x", "a/y", "b", "vm" };

static uint64_t rnd(Scn *c) {
        uint64_t z = (c->rng += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t rnd_in(Scn *c, uint64_t lo, uint64_t hi) {
        return lo + rnd(c) % (hi - lo + 1);
}

static void fail(Scn *c, const char *what, const char *a, const char *b) {
        if (c->failed++ < 3)
                fprintf(stderr, "seed %lu step %u: %s differs\n  fast: %s\n  slow: %s\n", c->seed, c->step,
                        what, a, b);
}

static void check_rc(Scn *c, const char *what, int a, int b) {
        char x[32], y[32];

        if (a == b)
                return;
        snprintf(x, sizeof(x), "%d", a);
        snprintf(y, sizeof(y), "%d", b);
        fail(c, what, x, y);
}

static int side_write(Side *s, const char *group, const char *file, const char *data) {
        return s->ops->write(s->be, 0, group, file, data, strlen(data), 0);
}

static void both_write(Scn *c, const char *group, const char *file, const char *data) {
        char what[128];

        snprintf(what, sizeof(what), "write %s/%s '%s'", group, file, data);
        check_rc(c, what, side_write(&c->s[0], group, file, data), side_write(&c->s[1], group, file, data));
}

static void both_mkdir(Scn *c, const char *group) {
        check_rc(c, group, c->s[0].ops->mkdir(c->s[0].be, 0, group), c->s[1].ops->mkdir(c->s[1].be, 0, group));
}

static void both_rmdir(Scn *c, const char *group) {
        check_rc(c, group, c->s[0].ops->rmdir(c->s[0].be, 0, group), c->s[1].ops->rmdir(c->s[1].be, 0, group));
}

static void dump_file(Side *s, const char *group, const char *file, char *out, size_t *len) {
        char buf[1024];
        size_t n = 0;
        int r = s->ops->read(s->be, 0, group, file, buf, sizeof(buf), &n);

        *len += (size_t) snprintf(out + *len, DUMP_MAX - *len, "[%s/%s r=%d] %s\n", group, file, r,
                                  r == 0 ? buf : "");
}

/* Everything observable about CPU, or only one group (partial reads leave
 * the other subtrees lazily behind in the fast model). */
static void dump(Scn *c, Side *s, char *out, int only_group) {
        static const char *const files_v2[] = { "cpu.stat", "cpu.max.runtime", "cpu.max" };
        static const char *const files_v1[] = { "cpu.stat", "cpuacct.usage", "cpu.cfs_quota_us" };
        size_t len = 0;

        out[0] = '\0';
        for (size_t g = 0; g < N_GROUPS; g++) {
                if (only_group >= 0 && (size_t) only_group != g)
                        continue;
                for (size_t f = 0; f < 3; f++)
                        dump_file(s, groups[g], c->v1 ? files_v1[f] : files_v2[f], out, &len);
        }
        if (only_group >= 0)
                return;
        for (size_t i = 0; i < c->n_tids; i++) {
                uint64_t ns = 0;
                char buf[256];
                size_t n = 0;
                int r1 = km_thread_usage_nsec(s->m, c->tids[i], &ns);
                int r2 = s->ops->read_schedstat(s->be, c->pids[i], c->tids[i], buf, sizeof(buf), &n);

                len += (size_t) snprintf(out + len, DUMP_MAX - len, "tid %d: %d %" PRIu64 " | %d %s", (int) c->tids[i],
                                         r1, ns, r2, r2 == 0 ? buf : "\n");
        }
}

/* Beyond what files show: the bandwidth state of every group and the
 * accounting of every thread, with the fast model brought to the clock.
 * Catches a wrong pool or timer that a later refill would hide again. */
static void compare_state(Scn *c) {
        KmGroup *ga = c->s[0].m->root, *gb = c->s[1].m->root;
        char x[512], y[512];

        km_cfs_sync_tree(c->s[0].m, ga);
        for (; ga && gb; ga = km_group_next_pre(ga, c->s[0].m->root), gb = km_group_next_pre(gb, c->s[1].m->root)) {
                const KmCfs *p = &ga->cfs, *q = &gb->cfs;

#define CFS_FMT "%s: %" PRIu64 "/%" PRIu64 "/%" PRIu64 " pool %" PRIu64 "-%u snap %" PRIu64 " timer %d@%" PRIu64 \
                " idle %d thr %d since %" PRIu64 " stat %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
#define CFS_ARGS(g, k) g->name ? g->name : "/", k->period_ns, k->quota_ns, k->burst_ns, k->runtime_ns, \
                k->runtime_debt, k->runtime_snap_ns, k->period_active, k->expires_ns, k->idle, k->throttled, \
                k->throttled ? k->throttled_since_ns : 0, k->nr_periods, k->nr_throttled, k->throttled_ns, \
                k->nr_burst, k->burst_time_ns
                snprintf(x, sizeof(x), CFS_FMT, CFS_ARGS(ga, p));
                snprintf(y, sizeof(y), CFS_FMT, CFS_ARGS(gb, q));
                if (strcmp(x, y) != 0) {
                        fail(c, "bandwidth state", x, y);
                        return;
                }
        }
        for (size_t i = 0; i < c->n_tids; i++) {
                KmThread *ta = km_thread_lookup(c->s[0].m, c->tids[i]), *tb = km_thread_lookup(c->s[1].m, c->tids[i]);

                if (!ta || !tb)
                        continue;
                km_thread_sync(c->s[0].m, ta);
                km_thread_sync(c->s[1].m, tb);
                snprintf(x, sizeof(x), "tid %d: %" PRIu64 ".%u run %d slices %" PRIu64, (int) ta->tid, ta->usage_ns,
                         ta->usage_rem, ta->running, ta->nr_slices);
                snprintf(y, sizeof(y), "tid %d: %" PRIu64 ".%u run %d slices %" PRIu64, (int) tb->tid, tb->usage_ns,
                         tb->usage_rem, tb->running, tb->nr_slices);
                if (strcmp(x, y) != 0) {
                        fail(c, "thread state", x, y);
                        return;
                }
        }
}

static void compare(Scn *c, int only_group) {
        static char a[DUMP_MAX], b[DUMP_MAX];

        if (only_group < 0)
                compare_state(c);

        dump(c, &c->s[0], a, only_group);
        dump(c, &c->s[1], b, only_group);
        if (strcmp(a, b) != 0) {
                /* Show the first differing line of each. */
                const char *pa = a, *pb = b;
                char la[512], lb[512];

                while (*pa && *pb) {
                        const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
                        size_t na = ea ? (size_t) (ea - pa) : strlen(pa), nb = eb ? (size_t) (eb - pb) : strlen(pb);

                        if (na != nb || memcmp(pa, pb, na) != 0) {
                                snprintf(la, sizeof(la), "%.*s", (int) na, pa);
                                snprintf(lb, sizeof(lb), "%.*s", (int) nb, pb);
                                fail(c, "observables", la, lb);
                                return;
                        }
                        pa += na + (ea != NULL);
                        pb += nb + (eb != NULL);
                }
                fail(c, "observables (length)", a, b);
        }
}

static uint32_t rnd_demand(Scn *c) {
        static const uint32_t d[] = { 0, 1000000, 1000000, 500000, 333333, 123457, 999999, 1, 200000, 50000, 300000 };

        return d[rnd(c) % (sizeof(d) / sizeof(d[0]))];
}

static uint64_t rnd_period_us(Scn *c) {
        static const uint64_t p[] = { 1000, 3000, 7777, 10000, 10000, 20000, 20000, 33333, 100000, 250000, 1000000 };

        return p[rnd(c) % (sizeof(p) / sizeof(p[0]))];
}

static void new_thread(Scn *c, pid_t pid) {
        pid_t t0, t1;

        if (c->n_tids >= MAX_TIDS)
                return;
        t0 = km_thread_new(c->s[0].m, pid);
        t1 = km_thread_new(c->s[1].m, pid);
        check_rc(c, "thread_new", t0, t1);
        if (t0 < 0)
                return;
        c->tids[c->n_tids] = t0;
        c->pids[c->n_tids] = pid;
        c->alive[c->n_tids++] = true;
}

static void set_demand(Scn *c, size_t i, uint32_t d) {
        check_rc(c, "set_demand", km_thread_set_demand(c->s[0].m, c->tids[i], d),
                 km_thread_set_demand(c->s[1].m, c->tids[i], d));
}

static void write_limit(Scn *c, const char *g) {
        char buf[64];
        uint64_t p = rnd_period_us(c), q = rnd_in(c, 1000, 3 * p);

        if (rnd(c) % 6 == 0) {
                both_write(c, g, c->v1 ? "cpu.cfs_quota_us" : "cpu.max", c->v1 ? "-1" : "max");
                return;
        }
        if (c->v1) {
                snprintf(buf, sizeof(buf), "%" PRIu64, p);
                both_write(c, g, "cpu.cfs_period_us", buf);
                snprintf(buf, sizeof(buf), "%" PRIu64, q);
                both_write(c, g, "cpu.cfs_quota_us", buf);
        } else {
                snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, q, p);
                both_write(c, g, "cpu.max", buf);
        }
}

static void write_burst(Scn *c, const char *g) {
        char buf[64];
        uint64_t b = rnd(c) % 3 == 0 ? 0 : rnd_in(c, 0, c->patched ? 50000000 : 200000);

        snprintf(buf, sizeof(buf), "%" PRIu64, b);
        both_write(c, g, c->v1 ? "cpu.cfs_burst_us" : "cpu.max.burst", buf);
}

static void write_runtime(Scn *c, const char *g) {
        static const char *const sign[] = { "", "+", "-" };
        char buf[64];

        snprintf(buf, sizeof(buf), "%s%" PRIu64, sign[rnd(c) % 3], rnd_in(c, 0, rnd(c) % 2 ? 20000 : 30000000));
        both_write(c, g, "cpu.max.runtime", buf);
}

static void setup(Scn *c) {
        static const char *const mk[] = { "", "a", "a/x", "a/y", "b", "vm", "vm/vcpus", "vm/emu" };

        for (size_t i = 0; i < sizeof(mk) / sizeof(mk[0]); i++)
                both_mkdir(c, mk[i]);
        if (!c->v1) {
                both_write(c, "", "cgroup.subtree_control", "+cpu");
                both_write(c, "a", "cgroup.subtree_control", "+cpu");
                both_write(c, "vm", "cgroup.subtree_control", "+cpu");
                both_write(c, "vm/vcpus", "cgroup.type", "threaded");
                both_write(c, "vm/emu", "cgroup.type", "threaded");
        }
        /* Processes: one per leaf, 1-3 threads each; the last one is the
         * VM's, whose threads go to vcpus and emu. */
        for (size_t l = 0; l < sizeof(proc_leaves) / sizeof(proc_leaves[0]); l++) {
                pid_t p0 = km_process_new(c->s[0].m), p1 = km_process_new(c->s[1].m);
                size_t first = c->n_tids, nt = rnd_in(c, 0, 2);
                char buf[32];

                check_rc(c, "process_new", p0, p1);
                c->tids[c->n_tids] = p0;
                c->pids[c->n_tids] = p0;
                c->alive[c->n_tids++] = true;
                for (size_t k = 0; k < nt; k++)
                        new_thread(c, p0);
                snprintf(buf, sizeof(buf), "%d", (int) p0);
                both_write(c, proc_leaves[l], "cgroup.procs", buf);
                for (size_t i = first; i < c->n_tids; i++) {
                        set_demand(c, i, rnd_demand(c));
                        if (strcmp(proc_leaves[l], "vm") == 0) {
                                snprintf(buf, sizeof(buf), "%d", (int) c->tids[i]);
                                both_write(c, (i - first) % 2 ? "vm/emu" : "vm/vcpus",
                                           c->v1 ? "tasks" : "cgroup.threads", buf);
                        }
                }
        }
        /* Limits on a random selection, nested ones included. */
        for (size_t g = 0; g < 8; g++)
                if (rnd(c) % 3 != 0) {
                        write_limit(c, groups[g]);
                        if (rnd(c) % 2)
                                write_burst(c, groups[g]);
                }
}

static void advance(Scn *c) {
        uint64_t us;

        switch (rnd(c) % 8) {
        case 0:
        case 1:
        case 2:
                us = rnd_in(c, 0, 20000);
                break;
        case 3:
        case 4:
        case 5:
                us = rnd_in(c, 20000, 2000000);
                break;
        default:
                us = rnd_in(c, 2000000, rnd(c) % 4 ? 60000000 : 600000000);
                break;
        }
        km_advance(c->s[0].m, us);
        km_advance(c->s[1].m, us);
}

static void move_thread(Scn *c) {
        size_t i = rnd(c) % c->n_tids;
        char buf[32];

        if (!c->alive[i])
                return;
        snprintf(buf, sizeof(buf), "%d", (int) c->tids[i]);
        if (c->v1) {
                both_write(c, groups[rnd(c) % 8], "tasks", buf);
                return;
        }
        switch (rnd(c) % 3) {
        case 0: /* within the VM's threaded domain; fails elsewhere */
                both_write(c, rnd(c) % 2 ? "vm/vcpus" : "vm/emu", "cgroup.threads", buf);
                break;
        default:
                snprintf(buf, sizeof(buf), "%d", (int) c->pids[i]);
                both_write(c, proc_leaves[rnd(c) % 4], "cgroup.procs", buf);
                break;
        }
}

static void exit_or_spawn(Scn *c) {
        size_t i = rnd(c) % c->n_tids;

        if (rnd(c) % 2 && c->alive[i]) {
                check_rc(c, "thread_exit", km_thread_exit(c->s[0].m, c->tids[i]),
                         km_thread_exit(c->s[1].m, c->tids[i]));
                c->alive[i] = false;
                return;
        }
        for (size_t k = 0; k < c->n_tids; k++)
                if (c->alive[k]) {
                        size_t at = c->n_tids;

                        new_thread(c, c->pids[k]);
                        if (c->n_tids > at)
                                set_demand(c, at, rnd_demand(c));
                        return;
                }
}

static int run_scenario(unsigned long seed, uint64_t *ff_periods, uint64_t *ff_jumps) {
        Scn c = { .seed = seed, .rng = seed * UINT64_C(0x2545F4914F6CDD1D) + 1 };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        unsigned ops;
        KBackendLayout layout;

        c.v1 = rnd(&c) % 5 == 0;
        c.patched = !c.v1 && rnd(&c) % 2;
        cfg.mode = c.v1 ? CG_MODE_LEGACY : CG_MODE_UNIFIED;
        cfg.patched = c.patched;
        for (int i = 0; i < 2; i++) {
                if (km_new(&cfg, &c.s[i].m) < 0 || km_backend(c.s[i].m, &c.s[i].ops, &c.s[i].be, &layout) < 0) {
                        fprintf(stderr, "model setup failed\n");
                        return 1;
                }
        }
        km_set_fast_forward(c.s[1].m, false);
        setup(&c);
        ops = (unsigned) rnd_in(&c, 10, 50);
        for (c.step = 0; c.step < ops && !c.failed; c.step++) {
                uint64_t k = rnd(&c) % 100;
                const char *g = groups[rnd(&c) % 8];

                if (k < 35)
                        advance(&c);
                else if (k < 47) {
                        size_t i = rnd(&c) % c.n_tids;
                        if (c.alive[i])
                                set_demand(&c, i, rnd_demand(&c));
                } else if (k < 55)
                        write_limit(&c, g);
                else if (k < 59)
                        write_burst(&c, g);
                else if (k < 66) {
                        if (c.patched)
                                write_runtime(&c, g);
                } else if (k < 70)
                        move_thread(&c);
                else if (k < 73)
                        exit_or_spawn(&c);
                else if (k < 76) {
                        /* A group appears or goes inside (maybe) a limited subtree. */
                        if (rnd(&c) % 2)
                                both_mkdir(&c, "a/x/s");
                        else
                                both_rmdir(&c, "a/x/s");
                } else if (k < 88)
                        compare(&c, (int) (rnd(&c) % 8));
                else
                        compare(&c, -1);
        }
        advance(&c);
        compare(&c, -1);
        *ff_periods += c.s[0].m->ff_periods;
        *ff_jumps += c.s[0].m->ff_jumps;
        for (int i = 0; i < 2; i++) {
                c.s[i].ops->free(c.s[i].be);
                km_free(c.s[i].m);
        }
        return c.failed ? 1 : 0;
}

/* The bench's cases, long: a VM at baseline on a 10 ms period for a day
 * (throttles every period), and a patched pool draining over hours (linear,
 * bursting every period) then throttling. */
static int run_long(bool patched, uint64_t *ff_periods) {
        Scn c = { .seed = patched ? 1000001 : 1000000, .patched = patched };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .patched = patched };
        KBackendLayout layout;

        for (int i = 0; i < 2; i++)
                if (km_new(&cfg, &c.s[i].m) < 0 || km_backend(c.s[i].m, &c.s[i].ops, &c.s[i].be, &layout) < 0)
                        return 1;
        km_set_fast_forward(c.s[1].m, false);
        both_mkdir(&c, "");
        both_write(&c, "", "cgroup.subtree_control", "+cpu");
        both_mkdir(&c, "b");
        {
                pid_t p0 = km_process_new(c.s[0].m), p1 = km_process_new(c.s[1].m);
                char buf[32];

                check_rc(&c, "process_new", p0, p1);
                c.tids[0] = c.pids[0] = p0;
                c.alive[0] = true;
                c.n_tids = 1;
                new_thread(&c, p0);
                snprintf(buf, sizeof(buf), "%d", (int) p0);
                both_write(&c, "b", "cgroup.procs", buf);
        }
        set_demand(&c, 0, 1000000);
        set_demand(&c, 1, 1000000);
        if (patched) {
                both_write(&c, "b", "cpu.max", "2000 20000");
                both_write(&c, "b", "cpu.max.burst", "8638000000");
                both_write(&c, "b", "cpu.max.runtime", "3000000000");
                km_advance(c.s[0].m, UINT64_C(6) * 3600 * 1000000);
                km_advance(c.s[1].m, UINT64_C(6) * 3600 * 1000000);
        } else {
                both_write(&c, "b", "cpu.max", "1000 10000");
                km_advance(c.s[0].m, UINT64_C(24) * 3600 * 1000000 + 12345);
                km_advance(c.s[1].m, UINT64_C(24) * 3600 * 1000000 + 12345);
        }
        compare(&c, -1);
        *ff_periods += c.s[0].m->ff_periods;
        for (int i = 0; i < 2; i++) {
                c.s[i].ops->free(c.s[i].be);
                km_free(c.s[i].m);
        }
        return c.failed;
}

/* Near the edges of the closed form: one group, one process, demand D
 * (split over up to three threads) against quota Q per period P with
 *   0: use per period = Q ns + a fraction (bursts only on carries),
 *   1: use per period a little below Q (a pool growing slowly to its cap),
 *   2: a little above Q (draining slowly),
 *   3: anything.
 * Random pools, bursts and step sizes; observables compared after every
 * step. */
static int run_edge(unsigned long seed, uint64_t *ff_periods) {
        Scn c = { .seed = seed, .rng = seed * UINT64_C(0x9E3779B97F4A7C15) + 7 };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED };
        KBackendLayout layout;
        uint64_t p_us = 0, q_us = 0, d = 0, kind = rnd(&c) % 4;
        char buf[64];

        c.patched = rnd(&c) % 3 != 0;
        cfg.patched = c.patched;
        for (int i = 0; i < 2; i++)
                if (km_new(&cfg, &c.s[i].m) < 0 || km_backend(c.s[i].m, &c.s[i].ops, &c.s[i].be, &layout) < 0)
                        return 1;
        km_set_fast_forward(c.s[1].m, false);
        both_mkdir(&c, "");
        both_write(&c, "", "cgroup.subtree_control", "+cpu");
        both_mkdir(&c, "b");
        /* Pick P, Q, D for the kind (D * P_us / 1000 = ns used per period). */
        for (int tries = 0; tries < 100000; tries++) {
                p_us = rnd_in(&c, 1000, rnd(&c) % 2 ? 30000 : 1000000);
                d = rnd_in(&c, 1, 3000000);
                if (kind == 0) {
                        uint64_t v = d * p_us; /* ns * 1000 */

                        if (v % 1000000 == 0 || v % 1000000 >= 1000 || v / 1000000 < 1000)
                                continue;
                        q_us = v / 1000000;
                } else if (kind == 1 || kind == 2) {
                        uint64_t used_ns = d * p_us / 1000, delta = rnd_in(&c, 1, 3000);

                        q_us = kind == 1 ? (used_ns + delta) / 1000 + 1 : (used_ns > delta * 1000 ? (used_ns - delta) / 1000 : 0);
                        if (q_us < 1000 || q_us > 3 * p_us)
                                continue;
                } else {
                        q_us = rnd_in(&c, 1000, 3 * p_us);
                }
                break;
        }
        {
                pid_t p0 = km_process_new(c.s[0].m), p1 = km_process_new(c.s[1].m);
                uint64_t left = d;

                check_rc(&c, "process_new", p0, p1);
                c.tids[0] = c.pids[0] = p0;
                c.alive[0] = true;
                c.n_tids = 1;
                while (left > 1000000 && c.n_tids < 3)
                        new_thread(&c, p0), left -= 1000000;
                for (size_t i = 0; i < c.n_tids; i++)
                        set_demand(&c, i, i + 1 == c.n_tids ? (uint32_t) (left < 1000000 ? left : 1000000) : 1000000);
                snprintf(buf, sizeof(buf), "%d", (int) p0);
                both_write(&c, "b", "cgroup.procs", buf);
        }
        snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, q_us, p_us);
        both_write(&c, "b", "cpu.max", buf);
        {
                /* Kind 1: a cap the pool reaches within a few thousand
                 * periods of growth. */
                uint64_t used_ns = d * p_us / 1000, grow_ns = q_us * 1000 > used_ns ? q_us * 1000 - used_ns : 1;
                uint64_t burst = kind == 1 ? grow_ns * rnd_in(&c, 1, 3000) / 1000 + rnd_in(&c, 0, 999)
                                           : rnd_in(&c, 0, 100) * q_us + rnd_in(&c, 0, 999);

                if (!c.patched)
                        burst = burst % (q_us + 1);
                snprintf(buf, sizeof(buf), "%" PRIu64, burst);
                both_write(&c, "b", "cpu.max.burst", buf);
        }
        for (c.step = 0; c.step < 60 && !c.failed; c.step++) {
                uint64_t k = rnd(&c) % 10;

                if (k < 6) {
                        uint64_t us = rnd(&c) % 3 ? rnd_in(&c, 0, 50 * p_us) : rnd_in(&c, 0, 20000 * p_us);
                        KmGroup *g = c.s[0].m->root;

                        /* Half the time, aim at the end of a fast-forward
                         * (an error there would heal at the next refill). */
                        while (g && !(g->name && strcmp(g->name, "b") == 0))
                                g = km_group_next_pre(g, c.s[0].m->root);
                        if (g && g->cfs.ff && g->cfs.ff_left < 20000 && rnd(&c) % 2) {
                                uint64_t end = g->cfs.sim_ns + g->cfs.ff_left * g->cfs.period_ns +
                                               rnd_in(&c, 0, 2 * g->cfs.period_ns);

                                us = end > c.s[0].m->now_ns ? (end - c.s[0].m->now_ns + 999) / 1000 : 0;
                        }

                        km_advance(c.s[0].m, us);
                        km_advance(c.s[1].m, us);
                } else if (k < 8 && c.patched)
                        write_runtime(&c, "b");
                else if (k < 9)
                        compare(&c, -1);
                else {
                        snprintf(buf, sizeof(buf), "%" PRIu64, rnd_in(&c, 0, 100 * q_us));
                        both_write(&c, "b", "cpu.max.runtime", buf);
                }
                /* Not always: a fast-forward must span steps. */
                if (rnd(&c) % 3 == 0)
                        compare(&c, -1);
        }
        compare(&c, -1);
        *ff_periods += c.s[0].m->ff_periods;
        for (int i = 0; i < 2; i++) {
                c.s[i].ops->free(c.s[i].be);
                km_free(c.s[i].m);
        }
        return c.failed;
}

int main(int argc, char **argv) {
        unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 400, first = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
        uint64_t ff_periods = 0, ff_jumps = 0, long_periods = 0, edge_periods = 0;
        unsigned long failed = 0;
        double t0 = now_sec();

        for (unsigned long s = first; s < first + n; s++)
                failed += run_scenario(s, &ff_periods, &ff_jumps) != 0;
        for (unsigned long s = first; s < first + n / 2; s++)
                failed += run_edge(s, &edge_periods) != 0;
        failed += run_long(false, &long_periods) != 0;
        failed += run_long(true, &long_periods) != 0;
        printf("%lu random scenarios (seeds %lu..%lu), %lu near the closed form's edges, 2 long ones: %lu differ; "
               "fast-forward covered %" PRIu64 " periods in %" PRIu64 " jumps (edge ones: %" PRIu64
               " periods, long ones: %" PRIu64 "); %.1f s\n",
               n, first, first + n - 1, n / 2, failed, ff_periods, ff_jumps, edge_periods, long_periods,
               now_sec() - t0);
        if (ff_periods == 0 || long_periods == 0 || (n >= 10 && edge_periods == 0)) {
                fprintf(stderr, "FAIL: fast-forward never engaged\n");
                return 1;
        }
        puts(failed ? "FAIL" : "PASS");
        return failed ? 1 : 0;
}
