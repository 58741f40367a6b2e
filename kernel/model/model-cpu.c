/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/model-cpu.c - CFS bandwidth control and the model clock.
 *
 * The bandwidth rules follow kernel/sched/fair.c and kernel/sched/core.c
 * (names in comments).  Where the kernel keeps per-CPU state (cfs_rq
 * runtime slices, per-CPU throttling) the model keeps one pool per group
 * and drains it continuously: a group throttles at the exact nanosecond
 * its pool runs dry.  docs/kernel-model.md lists what that leaves out.
 *
 * Time advances from event to event.  Every group with a finite quota and
 * no limited ancestor roots an independent "limited subtree"; each is
 * simulated on its own from the current time to the target, so unrelated
 * VMs never create events for each other.  Events are period timer
 * expiries and pool exhaustion instants; between them every rate is
 * constant and the arithmetic is exact.  Threads outside every limited
 * subtree always run at their demand and are accounted lazily.
 *
 * Fast mode (the default) adds two things that change no result:
 *   - laziness: a subtree is simulated only up to its next event; until
 *     then its pools drain at constant rates and its threads' state holds,
 *     so km_advance() skips it.  Whoever reads or changes CPU state in it
 *     first brings it to the clock (root_sync()).
 *   - fast-forward: at a period boundary of a subtree whose root is its
 *     only limited group, with nothing changing, the periods that follow
 *     repeat a pattern (the same refill, use and throttle every period, or
 *     a pool that moves by quota - use per period) which ff_enter() solves
 *     in closed form, integer-exact; a subtree that throttles the same way
 *     every period then costs nothing until someone looks at it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/model/model-internal.h"

#define MIN_CFS_PERIOD_NS (UINT64_C(1000) * NSEC_PER_USEC) /* min_cfs_quota_period */
#define MAX_CFS_PERIOD_NS NSEC_PER_SEC                     /* max_cfs_quota_period */
#define MAX_CFS_RUNTIME_NS (KM_MAX_BW_USEC * NSEC_PER_USEC) /* max_cfs_runtime */
#define BW_SHIFT 20

typedef unsigned __int128 u128; /* ppm * ns products exceed 64 bits within a day */

void km_cfs_init(KmCfs *c) {
        memset(c, 0, sizeof(*c));
        c->period_ns = KM_DEFAULT_PERIOD_USEC * NSEC_PER_USEC;
        c->quota_ns = KM_RUNTIME_INF;
}

static bool cfs_limited(const KmCfs *c) {
        return c->quota_ns != KM_RUNTIME_INF;
}

/* km_buf_printf(b, "%s%" PRIu64 "%s", key, v, end) without printf: the
 * files a credit bank reads on every look are formatted here, and
 * vsnprintf() was most of the cost of a look.  key and end are literals. */
#define BUF_PUT_U64(b, key, v, end) buf_put_u64(b, key, sizeof(key) - 1, v, end, sizeof(end) - 1)

static void buf_put_u64(KmBuf *b, const char *key, size_t nk, uint64_t v, const char *end, size_t ne) {
        char num[24], *p = num + sizeof(num);
        size_t nn;

        if (b->overflow)
                return;
        do
                *--p = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        nn = (size_t) (num + sizeof(num) - p);
        if (b->len + nk + nn + ne >= b->size) {
                b->overflow = true;
                return;
        }
        memcpy(b->p + b->len, key, nk);
        memcpy(b->p + b->len + nk, p, nn);
        memcpy(b->p + b->len + nk + nn, end, ne + 1);
        b->len += nk + nn + ne;
}

/* ---- threads ---------------------------------------------------------- */

static void thread_sync_to(KmThread *t, uint64_t time_ns) {
        if (time_ns <= t->sync_ns)
                return;
        if (t->running && t->demand_ppm > 0) {
                u128 total = (u128) t->demand_ppm * (time_ns - t->sync_ns) + t->usage_rem;

                t->usage_ns += (uint64_t) (total / KM_PPM);
                t->usage_rem = (uint32_t) (total % KM_PPM);
        }
        t->sync_ns = time_ns;
}

void km_thread_sync(KModel *m, KmThread *t) {
        km_cfs_sync(m, t->group);
        thread_sync_to(t, m->now_ns);
}

static uint64_t group_own_usage_ns(KModel *m, KmGroup *g) {
        uint64_t u = g->usage_base_ns;

        for (KmThread *t = g->threads; t; t = t->group_next) {
                km_thread_sync(m, t);
                u += t->usage_ns - t->join_usage_ns;
        }
        return u;
}

uint64_t km_group_usage_ns(KModel *m, KmGroup *g) {
        uint64_t u = 0;

        for (KmGroup *c = g; c; c = km_group_next_pre(c, g))
                u += group_own_usage_ns(m, c);
        return u;
}

/* ---- the pool and the period timer ------------------------------------ */

/* hrtimer_forward(): moves the expiry past `now` by whole periods, so the
 * timer stays on its original grid; returns the periods skipped. */
static uint64_t timer_forward(KmCfs *c, uint64_t now) {
        uint64_t orun;

        if (now < c->expires_ns)
                return 0;
        orun = (now - c->expires_ns) / c->period_ns + 1;
        c->expires_ns += orun * c->period_ns;
        return orun;
}

/* cfs_bandwidth_catch_up() (v2 of the series, patched kernels): the
 * periods an idle group's stopped timer slept through each add a quota,
 * capped at quota + burst, when the group runs again or cpu.max.runtime is
 * read or written. */
static void cfs_catch_up(KmCfs *c, uint64_t now) {
        uint64_t missed, cap;

        if (!c->idle_stopped || c->period_active)
                return;
        /* The expiry is the first boundary the timer did not handle (it
         * forwards before it refills): each one passed is a missed refill. */
        missed = timer_forward(c, now);
        if (!missed || !cfs_limited(c))
                return;
        cap = c->quota_ns + c->burst_ns;
        c->nr_periods += missed;
        /* More periods than it takes to fill the pool change nothing. */
        missed = MIN(missed, cap / c->quota_ns + 1);
        c->runtime_ns = MIN(c->runtime_ns + missed * c->quota_ns, cap);
        c->runtime_snap_ns = c->runtime_ns;
}

/* start_cfs_bandwidth() */
static void cfs_start_timer(KmCfs *c, uint64_t now) {
        if (c->period_active)
                return;
        cfs_catch_up(c, now);
        c->idle_stopped = false;
        c->period_active = true;
        timer_forward(c, now);
}

/* __refill_cfs_bandwidth_runtime(): one quota on top of what is left,
 * capped at quota + burst; what the group used beyond a quota since the
 * last refill counts as burst. */
static void cfs_refill(KmCfs *c) {
        uint64_t cap;

        if (!cfs_limited(c))
                return;
        c->runtime_ns += c->quota_ns;
        if (c->runtime_snap_ns > c->runtime_ns) {
                c->burst_time_ns += c->runtime_snap_ns - c->runtime_ns;
                c->nr_burst++;
        }
        cap = c->quota_ns + c->burst_ns;
        if (c->runtime_ns > cap) {
                c->runtime_ns = cap;
                c->runtime_debt = 0;
        }
        c->runtime_snap_ns = c->runtime_ns;
}

static void cfs_throttle(KmCfs *c, uint64_t now) {
        c->throttled = true;
        c->throttled_since_ns = now;
        /* throttle_cfs_rq() asks for runtime first, which starts the timer */
        cfs_start_timer(c, now);
}

/* throttled_time grows when a cfs_rq is unthrottled (unthrottle_cfs_rq()),
 * so a throttle still in progress is not in cpu.stat yet. */
static void cfs_unthrottle(KmCfs *c, uint64_t now) {
        if (!c->throttled)
                return;
        c->throttled_ns += now - c->throttled_since_ns;
        c->throttled = false;
}

/* do_sched_cfs_period_timer(), with sched_cfs_period_timer()'s forward. */
static void cfs_period_timer(KmCfs *c, uint64_t now) {
        uint64_t overrun = timer_forward(c, now);
        bool throttled = c->throttled;

        if (!cfs_limited(c)) {
                c->period_active = false;
                return;
        }
        c->nr_periods += overrun;
        /* Refill extra burst quota even if cfs_b->idle */
        cfs_refill(c);
        /* The idle-timer trap: a period with no runtime taken and no
         * throttling stops the timer after this refill; nothing refills
         * until the group runs again and restarts it. */
        if (c->idle && !throttled) {
                c->period_active = false;
                /* v2 of the series credits the periods it sleeps through */
                c->idle_stopped = c->catch_up;
                return;
        }
        if (!throttled) {
                c->idle = true;
                return;
        }
        c->nr_throttled += overrun;
        if (c->runtime_ns > 0)
                cfs_unthrottle(c, now);
        c->idle = false;
}

/* ---- one limited subtree ---------------------------------------------- */

/* At time t: decides which groups throttle (a group with demand and an
 * empty pool), what each pool drains at, and which threads run.  Bottom-up
 * first, so a group's demand excludes what a throttled descendant stops;
 * then top-down, so a throttled ancestor stops everything below it. */
static void subtree_settle(KmGroup **ord, size_t n, uint64_t t) {
        for (size_t i = 0; i < n; i++)
                ord[i]->cfs.acc_ppm = 0;
        for (size_t i = n; i-- > 0;) {
                KmGroup *g = ord[i];
                KmCfs *c = &g->cfs;
                uint64_t acc = c->acc_ppm;

                for (KmThread *th = g->threads; th; th = th->group_next)
                        acc += th->demand_ppm;
                if (cfs_limited(c)) {
                        if (!c->throttled && acc > 0 && c->runtime_ns == 0)
                                cfs_throttle(c, t);
                        if (c->throttled)
                                acc = 0;
                }
                c->acc_ppm = acc;
                if (i > 0)
                        g->parent->cfs.acc_ppm += acc;
        }
        for (size_t i = 0; i < n; i++) {
                KmGroup *g = ord[i];
                KmCfs *c = &g->cfs;

                c->blocked = (i > 0 && g->parent->cfs.blocked) || (cfs_limited(c) && c->throttled);
                c->rate_ppm = cfs_limited(c) && !c->blocked ? c->acc_ppm : 0;
                if (c->rate_ppm > 0) {
                        /* __assign_cfs_rq_runtime(): taking runtime starts
                         * the timer and marks the period busy. */
                        cfs_start_timer(c, t);
                        c->idle = false;
                }
                for (KmThread *th = g->threads; th; th = th->group_next) {
                        bool run = !c->blocked;

                        if (th->running == run)
                                continue;
                        thread_sync_to(th, t);
                        th->running = run;
                        if (run && th->demand_ppm > 0)
                                th->nr_slices++;
                }
        }
}

/* The first instant the pool is empty at the current rate: the smallest
 * dt with rate * dt >= pool, in ppm * ns. */
static uint64_t pool_exhaustion_dt(const KmCfs *c) {
        u128 need = (u128) c->runtime_ns * KM_PPM - c->runtime_debt;

        return (uint64_t) ((need + c->rate_ppm - 1) / c->rate_ppm);
}

static uint64_t subtree_next_event(KmGroup **ord, size_t n, uint64_t t, uint64_t target) {
        uint64_t next = target;

        for (size_t i = 0; i < n; i++) {
                const KmCfs *c = &ord[i]->cfs;

                if (!cfs_limited(c))
                        continue;
                if (c->period_active && c->expires_ns < next)
                        next = c->expires_ns;
                if (c->rate_ppm > 0) {
                        uint64_t dt = pool_exhaustion_dt(c);

                        if (dt < next - t)
                                next = t + dt;
                }
        }
        return next;
}

static void subtree_consume(KmGroup **ord, size_t n, uint64_t dt) {
        for (size_t i = 0; i < n && dt > 0; i++) {
                KmCfs *c = &ord[i]->cfs;
                u128 total;
                uint64_t ns;

                if (c->rate_ppm == 0)
                        continue;
                total = (u128) c->rate_ppm * dt + c->runtime_debt;
                ns = (uint64_t) (total / KM_PPM);
                if (ns >= c->runtime_ns) {
                        /* Exhausted: the last step rounds up to a whole
                         * nanosecond, and the sub-nanosecond overshoot is
                         * not carried into the next period. */
                        c->runtime_ns = 0;
                        c->runtime_debt = 0;
                } else {
                        c->runtime_ns -= ns;
                        c->runtime_debt = (uint32_t) (total % KM_PPM);
                }
        }
}

static void subtree_fire_timers(KmGroup **ord, size_t n, uint64_t t) {
        for (size_t i = 0; i < n; i++) {
                KmCfs *c = &ord[i]->cfs;

                if (c->period_active && c->expires_ns == t)
                        cfs_period_timer(c, t);
        }
}

/* ---- fast-forward ------------------------------------------------------ *
 *
 * At a period boundary t of a subtree whose root R is its only limited
 * group, right after the timer fired and the subtree settled: R is not
 * throttled, its pool was just refilled (runtime_snap == runtime), its
 * threads all run, and they drain the pool at a constant D ppm.  With
 * X = runtime * 10^6 - runtime_debt (the pool in ppm*ns), one period of
 * length P, quota Q and cap C = Q + burst runs as follows:
 *
 *   X <= D*(P-1)  the pool runs dry at e = ceil(X/D) < P: R throttles, and at
 *                 the next boundary the refill leaves runtime Q, debt 0.
 *   otherwise     the pool lasts the period; the next boundary has
 *                 X' = X - D*P + Q*10^6 (or 0 + Q*10^6 if it ran dry exactly at
 *                 the end), clamped to C*10^6 if runtime would pass C.
 *
 * So a subtree's periods either repeat exactly (a fixed point: runtime Q
 * and throttling every period; or a pool that stays put, clamped at C or
 * with use == quota), or the pool moves linearly by Q*10^6 - D*P per period
 * until it would run dry within a period or reach the cap.  ff_enter()
 * recognises both from the state at t; ff_jump() then applies N periods at
 * once: nr_periods, nr_throttled, throttled time, nr_bursts and burst time
 * (a period bursts when its use exceeds Q), the pool, the timer, and the
 * threads (run time, sub-ns remainder and slices of a throttling pattern;
 * running threads of the other patterns are accounted lazily anyway).
 * Transition periods are stepped as usual.  tests/bench/test-model-ff.c
 * checks every observable against the stepped simulation. */

static bool ff_enter(KmCfs *c, uint64_t t) {
        uint64_t P = c->period_ns, Q = c->quota_ns, cap = c->quota_ns + c->burst_ns, D = c->rate_ppm;
        uint64_t r = c->runtime_ns, debt = c->runtime_debt, ns, r1, debt1;
        u128 X, DP, QM, e, total, left;

        if (!c->period_active || c->expires_ns != t + P || c->throttled || D == 0 || D != c->acc_ppm ||
            c->runtime_snap_ns != r || r > cap)
                return false;
        X = (u128) r * KM_PPM - debt;
        DP = (u128) D * P;
        QM = (u128) Q * KM_PPM;
        e = (X + D - 1) / D;
        if (e < P) {
                /* Runs dry and throttles.  A fixed point only if it starts
                 * from what such a period leaves: one quota, no debt. */
                if (r != Q || debt != 0)
                        return false;
                c->ff_linear = false;
                c->ff_throttles = true;
                c->ff_run_ns = (uint64_t) e;
                left = UINT64_MAX;
                goto enter;
        }
        total = DP + debt;
        ns = (uint64_t) (total / KM_PPM);
        if (ns >= r) {
                r1 = 0;
                debt1 = 0;
        } else {
                r1 = r - ns;
                debt1 = (uint64_t) (total % KM_PPM);
        }
        r1 += Q;
        if (r1 > cap) {
                r1 = cap;
                debt1 = 0;
        }
        if (r1 == r && debt1 == debt) {
                c->ff_linear = false;
                c->ff_throttles = false;
                left = UINT64_MAX;
                goto enter;
        }
        /* Linear only while the pool neither runs dry within a period
         * (X > D*P, i.e. ns < r) nor reaches the cap at a refill. */
        if (ns >= r || r1 == cap || r - ns + Q > cap)
                return false;
        if (QM > DP) {
                /* Grows: runtime after the refill of period k is
                 * ceil((X_k - D*P) / 10^6) + Q, which must stay below C. */
                u128 lim = (u128) (cap - Q) * KM_PPM + DP;

                if (X >= lim)
                        return false;
                left = (lim - 1 - X) / (QM - DP) + 1;
        } else
                /* Shrinks (QM == DP is a fixed point): X_k > D*P. */
                left = (X - DP - 1) / (DP - QM) + 1;
        if (left > UINT64_MAX - 1)
                left = UINT64_MAX - 1;
        c->ff_linear = true;
enter:
        c->ff = true;
        c->ff_left = (uint64_t) left;
        return true;
}

/* Applies n periods of the pattern ff_enter() found, from the boundary
 * sim_ns to the boundary sim_ns + n * period. */
static void ff_jump(KModel *m, KmGroup **ord, size_t n_ord, uint64_t n) {
        KmCfs *c = &ord[0]->cfs;
        uint64_t P = c->period_ns, base = c->sim_ns;

        if (n == 0)
                return;
        c->nr_periods += n;
        c->expires_ns += n * P;
        if (c->ff_linear) {
                uint64_t Q = c->quota_ns, D = c->rate_ppm, d0 = c->runtime_debt;
                u128 DP = (u128) D * P, QM = (u128) Q * KM_PPM;
                u128 X = (u128) c->runtime_ns * KM_PPM - d0, a = DP / KM_PPM, rho = DP % KM_PPM;
                uint64_t r;

                /* Use in period k is a + (carry of the sub-ns debt); it
                 * bursts when that exceeds the quota. */
                if (a > Q) {
                        c->nr_burst += n;
                        c->burst_time_ns += (uint64_t) (((u128) n * DP + d0) / KM_PPM - (u128) n * Q);
                } else if (a == Q) {
                        uint64_t carries = (uint64_t) ((d0 + (u128) n * rho) / KM_PPM);

                        c->nr_burst += carries;
                        c->burst_time_ns += carries;
                }
                if (QM >= DP)
                        X += (u128) n * (QM - DP);
                else
                        X -= (u128) n * (DP - QM);
                r = (uint64_t) ((X + KM_PPM - 1) / KM_PPM);
                c->runtime_ns = r;
                c->runtime_debt = (uint32_t) ((u128) r * KM_PPM - X);
                c->runtime_snap_ns = r;
        } else if (c->ff_throttles) {
                uint64_t run = c->ff_run_ns, end = base + n * P;

                c->nr_throttled += n;
                c->throttled_ns += n * (P - run);
                c->throttled_since_ns = end - P + run;
                /* Each period every thread runs `run` ns, stops, and is
                 * scheduled in again at the next boundary. */
                for (size_t i = 0; i < n_ord; i++)
                        for (KmThread *th = ord[i]->threads; th; th = th->group_next) {
                                if (th->demand_ppm > 0) {
                                        u128 total = (u128) th->demand_ppm *
                                                             ((u128) (base - th->sync_ns) + (u128) n * run) +
                                                     th->usage_rem;

                                        th->usage_ns += (uint64_t) (total / KM_PPM);
                                        th->usage_rem = (uint32_t) (total % KM_PPM);
                                        th->nr_slices += n;
                                }
                                th->sync_ns = end;
                        }
        }
        c->sim_ns = base + n * P;
        if (c->ff_left != UINT64_MAX)
                c->ff_left -= n;
        m->ff_jumps++;
        m->ff_periods += n;
}

/* Fast-forwards as far as the pattern and `target` allow; leaves fast-
 * forward when the pattern ends. */
static void ff_advance(KModel *m, KmGroup **ord, size_t n, uint64_t target) {
        KmCfs *c = &ord[0]->cfs;
        uint64_t k = target > c->sim_ns ? (target - c->sim_ns) / c->period_ns : 0;

        ff_jump(m, ord, n, MIN(k, c->ff_left));
        if (c->ff_left == 0)
                c->ff = false;
}

static uint64_t ff_until(const KmCfs *c) {
        if (c->ff_left == UINT64_MAX || c->ff_left > (UINT64_MAX - c->sim_ns) / c->period_ns)
                return UINT64_MAX;
        return c->sim_ns + c->ff_left * c->period_ns;
}

/* Simulates one limited subtree from its own time up to `target`.  Lazy:
 * it may stop early at a period boundary in fast-forward (nothing needs
 * looking at until next_ev_ns); otherwise its state is exactly at target. */
static void subtree_run(KModel *m, KmCfsRoot *root, uint64_t target, bool lazy) {
        KmGroup **ord = m->cfs_order + root->start;
        size_t n = root->n;
        KmCfs *c = &ord[0]->cfs;
        uint64_t t = c->sim_ns;

        if (c->ff) {
                ff_advance(m, ord, n, target);
                t = c->sim_ns;
                if (c->ff && lazy) {
                        root->next_ev_ns = ff_until(c);
                        return;
                }
                c->ff = false;
        }
        subtree_settle(ord, n, t);
        while (t < target) {
                uint64_t next = subtree_next_event(ord, n, t, target);
                bool boundary;

                subtree_consume(ord, n, next - t);
                t = next;
                boundary = c->period_active && c->expires_ns == t;
                /* At an instant where a pool runs dry and its period ends,
                 * the refill comes first: the group does not throttle. */
                subtree_fire_timers(ord, n, t);
                subtree_settle(ord, n, t);
                if (boundary && !m->cfs_slow && root->ff_ok && ff_enter(c, t)) {
                        c->sim_ns = t;
                        ff_advance(m, ord, n, target);
                        t = c->sim_ns;
                        if (c->ff) {
                                if (lazy) {
                                        root->next_ev_ns = ff_until(c);
                                        return;
                                }
                                c->ff = false;
                        }
                }
        }
        c->sim_ns = t;
        root->next_ev_ns = lazy ? subtree_next_event(ord, n, t, UINT64_MAX) : t;
}

/* The root of the limited subtree holding g: its topmost limited
 * ancestor-or-self, or NULL. */
static KmGroup *cfs_root_of(KmGroup *g) {
        KmGroup *root = NULL;

        for (; g; g = g->parent)
                if (cfs_limited(&g->cfs))
                        root = g;
        return root;
}

/* Brings a lazily simulated subtree to the clock and has the next
 * km_advance() look at it (what the caller changes takes effect then). */
static void root_sync(KModel *m, KmGroup *g) {
        KmCfs *c = &g->cfs;
        KmCfsRoot *root;

        if (m->cfs_slow || !c->lazy_root)
                return;
        root = &m->cfs_roots[c->root_idx];
        if (c->sim_ns != m->now_ns || c->ff)
                subtree_run(m, root, m->now_ns, false);
        root->next_ev_ns = m->now_ns;
}

void km_cfs_sync(KModel *m, KmGroup *g) {
        KmGroup *root = g ? cfs_root_of(g) : NULL;

        if (root)
                root_sync(m, root);
}

void km_cfs_sync_tree(KModel *m, KmGroup *g) {
        KmGroup *root = cfs_root_of(g);

        if (root) {
                root_sync(m, root);
                return;
        }
        for (KmGroup *c = g; c;) {
                if (cfs_limited(&c->cfs)) {
                        root_sync(m, c);
                        c = km_group_next_skip(c, g);
                } else
                        c = km_group_next_pre(c, g);
        }
}

/* ---- the set of limited subtrees -------------------------------------- */

int km_cfs_reserve(KModel *m, size_t n_groups) {
        if (m->cfs_order_cap < n_groups) {
                size_t cap = MAX(n_groups, m->cfs_order_cap * 2);
                KmGroup **o = reallocarray(m->cfs_order, cap, sizeof(KmGroup *));

                if (!o)
                        return -ENOMEM;
                m->cfs_order = o;
                m->cfs_order_cap = cap;
        }
        if (m->cfs_roots_cap < n_groups) {
                size_t cap = MAX(n_groups, m->cfs_roots_cap * 2);
                KmCfsRoot *r = reallocarray(m->cfs_roots, cap, sizeof(KmCfsRoot));

                if (!r)
                        return -ENOMEM;
                m->cfs_roots = r;
                m->cfs_roots_cap = cap;
        }
        return 0;
}

void km_cfs_free(KModel *m) {
        free(m->cfs_order);
        free(m->cfs_roots);
}

static void cfs_rebuild(KModel *m) {
        KmGroup *g = m->root;

        m->n_cfs_order = 0;
        m->n_cfs_roots = 0;
        while (g) {
                if (cfs_limited(&g->cfs)) {
                        KmCfsRoot *root = &m->cfs_roots[m->n_cfs_roots];

                        root->start = m->n_cfs_order;
                        root->ff_ok = true;
                        for (KmGroup *c = g; c; c = km_group_next_pre(c, g)) {
                                m->cfs_order[m->n_cfs_order++] = c;
                                if (c == g)
                                        continue;
                                c->cfs.lazy_root = false;
                                if (cfs_limited(&c->cfs))
                                        root->ff_ok = false;
                        }
                        root->n = m->n_cfs_order - root->start;
                        root->next_ev_ns = m->now_ns;
                        /* Every change that makes a group a root, or
                         * changes what runs in one, first brought it to the
                         * clock (root_sync()): a new root starts now. */
                        if (!g->cfs.lazy_root || m->cfs_slow) {
                                g->cfs.lazy_root = true;
                                g->cfs.sim_ns = m->now_ns;
                                g->cfs.ff = false;
                        }
                        g->cfs.root_idx = m->n_cfs_roots++;
                        g = km_group_next_skip(g, m->root);
                        continue;
                }
                g->cfs.lazy_root = false;
                /* No limit above: these threads simply run. */
                for (KmThread *t = g->threads; t; t = t->group_next)
                        if (!t->running) {
                                km_thread_sync(m, t);
                                t->running = true;
                                t->nr_slices += t->demand_ppm > 0;
                        }
                g = km_group_next_pre(g, m->root);
        }
        m->cfs_dirty = false;
}

void km_advance(KModel *m, uint64_t usec) {
        uint64_t target;

        if (!m)
                return;
        /* Saturate rather than wrap: 2^64 ns is 584 years of model time. */
        if (usec > (UINT64_MAX - m->now_ns) / NSEC_PER_USEC)
                target = UINT64_MAX;
        else
                target = m->now_ns + usec * NSEC_PER_USEC;
        if (m->cfs_dirty)
                cfs_rebuild(m);
        for (size_t i = 0; i < m->n_cfs_roots; i++) {
                KmCfsRoot *root = &m->cfs_roots[i];

                if (!m->cfs_slow && root->next_ev_ns > target)
                        continue; /* nothing happens in it before target */
                subtree_run(m, root, target, !m->cfs_slow);
        }
        m->now_ns = target;
}

void km_set_fast_forward(KModel *m, bool on) {
        if (!m || m->cfs_slow == !on)
                return;
        /* Everything to the clock first: slow mode keeps every subtree
         * there. */
        if (m->cfs_dirty)
                cfs_rebuild(m);
        for (size_t i = 0; i < m->n_cfs_roots; i++)
                root_sync(m, m->cfs_order[m->cfs_roots[i].start]);
        m->cfs_slow = !on;
}

/* ---- tg_set_cfs_bandwidth() ------------------------------------------- */

static uint64_t to_ratio(uint64_t period_us, uint64_t quota_us) {
        return (uint64_t) (((u128) quota_us << BW_SHIFT) / period_us);
}

/* normalize_cfs_quota(), in usec like __cfs_schedulable() */
static uint64_t normalize_quota(const KmGroup *g, const KmGroup *target, uint64_t period_ns,
                                uint64_t quota_ns) {
        if (g != target) {
                period_ns = g->cfs.period_ns;
                quota_ns = g->cfs.quota_ns;
        }
        if (quota_ns == KM_RUNTIME_INF)
                return KM_RUNTIME_INF;
        return to_ratio(period_ns / NSEC_PER_USEC, quota_ns / NSEC_PER_USEC);
}

/* tg_cfs_schedulable_down() over the whole tree.  Only cgroup v1 rejects
 * a child whose share exceeds its parent's; v2 just takes the minimum. */
static int cfs_schedulable_down(const KmGroup *g, uint64_t parent_quota, const KmGroup *target,
                                uint64_t period_ns, uint64_t quota_ns) {
        uint64_t q = g->parent ? normalize_quota(g, target, period_ns, quota_ns) : KM_RUNTIME_INF;
        int r;

        if (q == KM_RUNTIME_INF)
                q = parent_quota;
        else if (parent_quota != KM_RUNTIME_INF && q > parent_quota)
                return -EINVAL;
        for (const KmGroup *c = g->children; c; c = c->next_sibling) {
                r = cfs_schedulable_down(c, q, target, period_ns, quota_ns);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int cfs_validate(KModel *m, KmGroup *g, uint64_t period_ns, uint64_t quota_ns,
                        uint64_t burst_ns) {
        if (!g->parent)
                return -EINVAL;
        if (quota_ns < MIN_CFS_PERIOD_NS || period_ns < MIN_CFS_PERIOD_NS)
                return -EINVAL;
        if (period_ns > MAX_CFS_PERIOD_NS)
                return -EINVAL;
        if (quota_ns != KM_RUNTIME_INF) {
                if (quota_ns > MAX_CFS_RUNTIME_NS)
                        return -EINVAL;
                /* Stock kernels bound burst by quota; the runtime patch
                 * only by the sum (and burst alone, to keep the sum from
                 * wrapping). */
                if (!m->cfg.patched && burst_ns > quota_ns)
                        return -EINVAL;
                if (burst_ns > MAX_CFS_RUNTIME_NS || burst_ns + quota_ns > MAX_CFS_RUNTIME_NS)
                        return -EINVAL;
        }
        if (m->version == CG_V1)
                return cfs_schedulable_down(m->root, KM_RUNTIME_INF, g, period_ns, quota_ns);
        return 0;
}

/* tg_set_cfs_bandwidth(): every accepted write refills one quota, restarts
 * the timer when limited, and unthrottles the group at once. */
static int cfs_set_bandwidth(KModel *m, KmGroup *g, uint64_t period_ns, uint64_t quota_ns,
                             uint64_t burst_ns) {
        KmCfs *c = &g->cfs;
        bool was_limited = cfs_limited(c);
        int r;

        r = cfs_validate(m, g, period_ns, quota_ns, burst_ns);
        if (r < 0)
                return r;
        /* The subtree this changes (and, when g becomes limited, the ones
         * that merge into it) to the clock first. */
        if (was_limited || quota_ns == KM_RUNTIME_INF)
                km_cfs_sync(m, g);
        else
                km_cfs_sync_tree(m, g);
        c->period_ns = period_ns;
        c->quota_ns = quota_ns;
        c->burst_ns = burst_ns;
        c->catch_up = m->cfg.patched && !m->cfg.runtime_v1;
        cfs_refill(c);
        /* A new configuration starts from this refill: no idle periods to credit. */
        c->idle_stopped = false;
        if (cfs_limited(c))
                cfs_start_timer(c, m->now_ns);
        else
                /* The timer would deactivate at its next expiry without
                 * counting a period; stopping it now is the same. */
                c->period_active = false;
        cfs_unthrottle(c, m->now_ns);
        if (was_limited != cfs_limited(c))
                m->cfs_dirty = true;
        return 0;
}

static int usec_to_ns(uint64_t usec, uint64_t *ret) {
        if (usec > UINT64_MAX / NSEC_PER_USEC)
                return -EINVAL;
        *ret = usec * NSEC_PER_USEC;
        return 0;
}

static int parse_usec_ns(char *s, uint64_t *ret) {
        uint64_t v;

        if (parse_u64(km_strip(s), &v) < 0)
                return -EINVAL;
        return usec_to_ns(v, ret);
}

/* ---- v2 files ---------------------------------------------------------- */

int km_cpu_show_max(KModel *m, KmGroup *g, KmBuf *b) {
        const KmCfs *c = &g->cfs;

        if (cfs_limited(c))
                km_buf_printf(b, "%" PRIu64 " %" PRIu64 "\n", c->quota_ns / NSEC_PER_USEC,
                              c->period_ns / NSEC_PER_USEC);
        else
                km_buf_printf(b, "max %" PRIu64 "\n", c->period_ns / NSEC_PER_USEC);
        return 0;
}

/* cpu_period_quota_parse(): "$QUOTA [$PERIOD]", QUOTA a number or "max". */
int km_cpu_write_max(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t period_ns = g->cfs.period_ns, quota_ns, v;
        char *save = NULL, *quota_tok, *period_tok;

        quota_tok = strtok_r(data, " \t\n", &save);
        period_tok = strtok_r(NULL, " \t\n", &save);
        if (!quota_tok || strlen(quota_tok) > 20 || strtok_r(NULL, " \t\n", &save))
                return -EINVAL;
        if (period_tok && parse_usec_ns(period_tok, &period_ns) < 0)
                return -EINVAL;
        if (strcmp(quota_tok, "max") == 0)
                quota_ns = KM_RUNTIME_INF;
        else if (parse_u64(quota_tok, &v) < 0 || usec_to_ns(v, &quota_ns) < 0)
                return -EINVAL;
        return cfs_set_bandwidth(m, g, period_ns, quota_ns, g->cfs.burst_ns);
}

int km_cpu_show_burst(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "%" PRIu64 "\n", g->cfs.burst_ns / NSEC_PER_USEC);
        return 0;
}

/* tg_set_cfs_burst() */
int km_cpu_write_burst(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t burst_ns;

        if (parse_usec_ns(data, &burst_ns) < 0)
                return -EINVAL;
        return cfs_set_bandwidth(m, g, g->cfs.period_ns, g->cfs.quota_ns, burst_ns);
}

int km_cpu_show_runtime(KModel *m, KmGroup *g, KmBuf *b) {
        KmCfs *c = &g->cfs;
        uint64_t ns;

        km_cfs_sync(m, g);
        /* v2 of the series: no pool reads "max"; an idle pool has earned
         * the periods it slept through. */
        if (!cfs_limited(c)) {
                km_buf_printf(b, "max\n");
                return 0;
        }
        cfs_catch_up(c, m->now_ns);
        /* A pending sub-nanosecond debt makes the pool a little less. */
        ns = c->runtime_ns - (c->runtime_debt > 0);
        BUF_PUT_U64(b, "", ns / NSEC_PER_USEC, "\n");
        return 0;
}

/* cpu.max.runtime (v2 of the runtime series): "N" sets the pool (the
 * model has no per-CPU local runtime, so the balance is the pool), "+N"
 * and "-N" move it; all saturate at [0, quota + burst], so any value read
 * can be written.  Only a group without a quota (no pool) and malformed
 * values are refused.  The write re-bases runtime_snap like a refill, so
 * runtime sold through this file is not counted as burst when it is used. */
int km_cpu_write_runtime(KModel *m, KmGroup *g, char *data, bool nonblock) {
        KmCfs *c = &g->cfs;
        uint64_t cur, delta_ns, cap, v;
        char sign = 0;

        km_cfs_sync(m, g);
        data = km_strip(data);
        if (data[0] == '+' || data[0] == '-')
                sign = *data++;
        if (parse_u64(data, &v) < 0 || usec_to_ns(v, &delta_ns) < 0 || delta_ns > MAX_CFS_RUNTIME_NS)
                return -EINVAL;
        if (!cfs_limited(c))
                return -EINVAL;
        cfs_catch_up(c, m->now_ns);
        cap = MIN(c->quota_ns + c->burst_ns, MAX_CFS_RUNTIME_NS);
        cur = c->runtime_ns - (c->runtime_debt > 0);
        /* v1 refused what v2 saturates. */
        if (m->cfg.runtime_v1 && (sign == '-' ? delta_ns > cur : sign == '+' ? cur + delta_ns > cap : delta_ns > cap))
                return -EINVAL;
        if (sign == '-')
                v = cur - MIN(delta_ns, cur);
        else if (sign == '+')
                v = MAX(cur, MIN(cap, cur + MIN(delta_ns, cap)));
        else
                v = MIN(delta_ns, cap);
        c->runtime_ns = v;
        c->runtime_debt = 0;
        c->runtime_snap_ns = v;
        /* start_cfs_bandwidth(): refills and accounting go on */
        cfs_start_timer(c, m->now_ns);
        if (v > 0)
                cfs_unthrottle(c, m->now_ns);
        return 0;
}

int km_cpu_show_weight(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "%" PRIu64 "\n", g->cpu_weight);
        return 0;
}

/* cpu_weight_write_u64(); weights only matter under contention, which the
 * model does not have. */
int km_cpu_write_weight(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t v;

        if (parse_u64(km_strip(data), &v) < 0)
                return -EINVAL;
        if (v < 1 || v > 10000)
                return -ERANGE;
        g->cpu_weight = v;
        return 0;
}

/* cpu.stat is a core file: usage everywhere, the bandwidth keys where the
 * cpu controller's css exists (cpu_extra_stat_show()).  All CPU time is
 * user time in the model. */
int km_cpu_show_stat(KModel *m, KmGroup *g, KmBuf *b) {
        uint64_t usage_us;
        const KmCfs *c = &g->cfs;

        km_cfs_sync(m, g);
        usage_us = km_group_usage_ns(m, g) / NSEC_PER_USEC;
        BUF_PUT_U64(b, "usage_usec ", usage_us, "\n");
        BUF_PUT_U64(b, "user_usec ", usage_us, "\nsystem_usec 0\n");
        if (!km_ctrl_enabled(m, g, CG_CTRL_CPU))
                return 0;
        BUF_PUT_U64(b, "nr_periods ", c->nr_periods, "\n");
        BUF_PUT_U64(b, "nr_throttled ", c->nr_throttled, "\n");
        BUF_PUT_U64(b, "throttled_usec ", c->throttled_ns / NSEC_PER_USEC, "\n");
        BUF_PUT_U64(b, "nr_bursts ", c->nr_burst, "\n");
        BUF_PUT_U64(b, "burst_usec ", c->burst_time_ns / NSEC_PER_USEC, "\n");
        return 0;
}

/* ---- v1 files ---------------------------------------------------------- */

int km_cpu_show_v1_period(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "%" PRIu64 "\n", g->cfs.period_ns / NSEC_PER_USEC);
        return 0;
}

/* tg_set_cfs_period() */
int km_cpu_write_v1_period(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t period_ns;

        if (parse_usec_ns(data, &period_ns) < 0)
                return -EINVAL;
        return cfs_set_bandwidth(m, g, period_ns, g->cfs.quota_ns, g->cfs.burst_ns);
}

int km_cpu_show_v1_quota(KModel *m, KmGroup *g, KmBuf *b) {
        if (cfs_limited(&g->cfs))
                km_buf_printf(b, "%" PRIu64 "\n", g->cfs.quota_ns / NSEC_PER_USEC);
        else
                km_buf_printf(b, "-1\n");
        return 0;
}

/* tg_set_cfs_quota(): any negative value means unlimited. */
int km_cpu_write_v1_quota(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t quota_ns;
        int64_t v;

        if (parse_i64(km_strip(data), &v) < 0)
                return -EINVAL;
        if (v < 0)
                quota_ns = KM_RUNTIME_INF;
        else if (usec_to_ns((uint64_t) v, &quota_ns) < 0)
                return -EINVAL;
        return cfs_set_bandwidth(m, g, g->cfs.period_ns, quota_ns, g->cfs.burst_ns);
}

int km_cpu_show_v1_burst(KModel *m, KmGroup *g, KmBuf *b) {
        return km_cpu_show_burst(m, g, b);
}

int km_cpu_write_v1_burst(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return km_cpu_write_burst(m, g, data, nonblock);
}

/* cpu_cfs_stat_show(): times in nanoseconds on v1. */
int km_cpu_show_v1_stat(KModel *m, KmGroup *g, KmBuf *b) {
        const KmCfs *c = &g->cfs;

        km_cfs_sync(m, g);
        BUF_PUT_U64(b, "nr_periods ", c->nr_periods, "\n");
        BUF_PUT_U64(b, "nr_throttled ", c->nr_throttled, "\n");
        BUF_PUT_U64(b, "throttled_time ", c->throttled_ns, "\n");
        BUF_PUT_U64(b, "nr_bursts ", c->nr_burst, "\n");
        BUF_PUT_U64(b, "burst_time ", c->burst_time_ns, "\n");
        return 0;
}

int km_cpu_show_v1_shares(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "%" PRIu64 "\n", g->cpu_weight);
        return 0;
}

/* sched_group_set_shares(): the root has no shares; others are clamped to
 * [MIN_SHARES, MAX_SHARES]. */
int km_cpu_write_v1_shares(KModel *m, KmGroup *g, char *data, bool nonblock) {
        uint64_t v;

        if (parse_u64(km_strip(data), &v) < 0)
                return -EINVAL;
        if (!g->parent)
                return -EINVAL;
        g->cpu_weight = MIN(MAX(v, UINT64_C(2)), UINT64_C(1) << 18);
        return 0;
}

int km_cpuacct_show_usage(KModel *m, KmGroup *g, KmBuf *b) {
        BUF_PUT_U64(b, "", km_group_usage_ns(m, g), "\n");
        return 0;
}

/* cpuacct_stats_show(): USER_HZ (100) ticks. */
int km_cpuacct_show_stat(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "user %" PRIu64 "\nsystem 0\n",
                      km_group_usage_ns(m, g) / (NSEC_PER_SEC / 100));
        return 0;
}
