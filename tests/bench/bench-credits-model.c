/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: CPU credits on the kernel model.
 *
 * Accuracy (--accuracy): 1,000 VMs of the t3.* classes in standard mode
 * (a third with launch credits, a quarter with a 2 h cap) with mixed
 * demand (idle, steady 30 %, on/off square waves with seeded random
 * periods, always 100 %) for a simulated 24 h, on both banks: emulated on
 * a stock model, kernel on a patched one, and the naive flip-the-quota
 * script on a stock model as the bar to beat.  Each bank looks when
 * credit_bank_next_tick_usec() asks, on a 100 ms timer grid (a timing
 * wheel), its reads batched as vmmgrd's tick batches them (queued, the
 * host's read batch run once, the looks: kernel.h); the model is advanced
 * to each grid point where a bank is due and
 * to each demand change.  At the end every bank ticks once more, and each
 * VM's received CPU time (km_thread_usage_nsec) and ledger are compared
 * with an exact integrator of the ideal bank over the demand trace.
 *
 * Cost (--cost): ns per look of an emulated bank at 10,000 VMs on the
 * model, as vmmgrd's tick makes them (the reads queued, the batch run, the
 * looks), cpu.stat served by the model (through kept-open handles, as
 * kernfs serves fds) included; and the kernel bank's per-look cost
 * (cpu.stat + cpu.max.runtime) at 1,000 VMs.
 *
 * Prints "figure: NAME VALUE UNIT" lines (tests/bench/README.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"
#include "kernel/model/model-internal.h"
#include "policies/credits.h"
#include "vmmgr/engine/credit-bank.h"

#define SEC UINT64_C(1000000)
#define TICK_USEC UINT64_C(100000)
#define WHEEL 512 /* slots of TICK_USEC; a bank asks for a look at most 30 s ahead */

typedef enum Demand {
        DEMAND_IDLE,
        DEMAND_STEADY30,
        DEMAND_BURSTY,
        DEMAND_FULL,
        _DEMAND_MAX,
} Demand;

static const char *const demand_names[] = { "idle", "steady30", "bursty", "full" };

typedef enum Policy {
        POLICY_EMULATED,
        POLICY_KERNEL,
        POLICY_NAIVE,
} Policy;

static const char *const policy_names[] = { "emulated", "kernel", "naive_flip" };

/* The ideal bank, integrated exactly over piecewise-constant demand
 * (long double: 64-bit mantissa; amounts in CPU-usec). */
typedef struct Ideal {
        long double launch, bank, received;
        long double rate, cap; /* usec per second, usec */
} Ideal;

/* The naive script: every tick, quota unlimited if the ledger has credits,
 * else baseline (a 100 ms period), decided from the usage it has seen, so a
 * tick late; the overshoot stays overshoot. */
typedef struct Naive {
        CreditLedger ledger;
        KhCpuStatReader *rd;
        uint64_t last_usage, last_tick;
        bool limited;
        uint64_t writes;
} Naive;

typedef struct Vm {
        VmId id;
        CreditSpec spec;
        char cls[CREDIT_CLASS_NAME_MAX];
        Demand demand;
        pid_t pid;
        pid_t tids[8];
        CreditBank *bank;
        Naive naive;
        uint32_t cur_ppm; /* per vCPU thread */
        uint64_t on_usec, off_usec; /* bursty: current half-cycle lengths */
        bool on;
        uint64_t next_change; /* usec; UINT64_MAX: never */
        uint64_t last_change;
        Ideal ideal;
        int next_in_slot; /* timing wheel */
        uint64_t looks;
        uint64_t rng;
} Vm;

typedef struct Sim {
        KModel *model;
        KHost *host;
        KhReadBatch *reads; /* the looks' counter reads, batched as vmmgrd does */
        Vm *vms;
        size_t n;
        Policy policy;
        uint64_t end_usec;
        int wheel[WHEEL];
        /* demand changes: a binary min-heap of VM indexes by next_change */
        size_t *heap;
        size_t n_heap;
        uint64_t looks;
} Sim;

/* ---- small helpers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t rnd_in(uint64_t *s, uint64_t lo, uint64_t hi) {
        return lo + splitmix(s) % (hi - lo + 1);
}

static void die(const char *what, int r) {
        fprintf(stderr, "%s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

/* ---- the exact ideal bank ----------------------------------------------- */

/* Advances the ideal bank by dt seconds of demand d (usec per second):
 * launch credits go first, earnings fill the bank up to the cap, and with
 * nothing left the VM gets min(d, rate).  Each phase in closed form. */
static void ideal_run(Ideal *v, long double dt, long double d) {
        while (dt > 0) {
                if (v->launch > 0 && d > 0) {
                        long double step = fminl(dt, v->launch / d);

                        v->launch = step == dt ? v->launch - d * step : 0;
                        v->bank = fminl(v->cap, v->bank + v->rate * step);
                        v->received += d * step;
                        dt -= step;
                } else if (v->launch > 0 || d <= v->rate) {
                        /* idle with launch left, or using at most the earnings */
                        v->bank = fminl(v->cap, v->bank + (v->rate - (v->launch > 0 ? 0 : d)) * dt);
                        v->received += d * dt;
                        dt = 0;
                } else if (v->bank > 0) {
                        long double step = fminl(dt, v->bank / (d - v->rate));

                        v->bank = step == dt ? v->bank - (d - v->rate) * step : 0;
                        v->received += d * step;
                        dt -= step;
                } else {
                        v->received += v->rate * dt;
                        dt = 0;
                }
        }
}

/* ---- the population --------------------------------------------------------- */

static void vm_pick(Vm *v, size_t i, uint64_t seed) {
        const CreditClass *presets;
        size_t n_presets = credit_class_presets(&presets), t3 = 0;
        const CreditClass *c;
        uint64_t k;

        v->rng = seed ^ (UINT64_C(0x5851f42d4c957f2d) * (i + 1));
        splitmix(&v->rng);
        for (size_t j = 0; j < n_presets; j++)
                t3 += strncmp(presets[j].name, "t3.", 3) == 0;
        c = &presets[splitmix(&v->rng) % t3];
        v->spec = c->spec;
        snprintf(v->cls, sizeof(v->cls), "%s", c->name);
        v->spec.mode = CREDIT_MODE_STANDARD; /* so enforcement matters */
        k = splitmix(&v->rng) % 12;
        if (k < 4) /* EC2 T2 standard style: 30 launch credits per vCPU */
                v->spec.launch_usec = 30 * CREDIT_USEC * v->spec.vcpus;
        if (k % 4 == 3) /* a small cap, so banks fill and forfeit within the day */
                v->spec.cap_usec = credit_earn_per_sec(&v->spec) * 7200;
        k = splitmix(&v->rng) % 100;
        v->demand = k < 15 ? DEMAND_IDLE : k < 40 ? DEMAND_STEADY30 : k < 75 ? DEMAND_BURSTY : DEMAND_FULL;
        {
                /* A random-looking (version 4) UUID, as real VM ids are: the
                 * model finds groups by binary search on their names. */
                uint64_t h = seed ^ (i * UINT64_C(0x9e3779b97f4a7c15)), a = splitmix(&h), b = splitmix(&h);

                snprintf(v->id.str, sizeof(v->id.str), "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64
                         "-%012" PRIx64, a >> 32, (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0xfff,
                         b & UINT64_C(0xffffffffffff));
        }
}

/* Demand of one vCPU thread from time `at` on, and when it next changes. */
static void vm_demand_step(Vm *v, uint64_t at) {
        switch (v->demand) {
        case DEMAND_IDLE:
                v->cur_ppm = 0;
                v->next_change = UINT64_MAX;
                break;
        case DEMAND_STEADY30:
                v->cur_ppm = 300000;
                v->next_change = UINT64_MAX;
                break;
        case DEMAND_FULL:
                v->cur_ppm = 1000000;
                v->next_change = UINT64_MAX;
                break;
        case DEMAND_BURSTY:
                /* On 1 s .. 10 min, off 5 s .. 30 min, redrawn every cycle;
                 * edges on a 1 ms grid, off the 100 ms tick grid. */
                v->on = !v->on;
                if (v->on) {
                        v->on_usec = rnd_in(&v->rng, 1000, 600000) * 1000;
                        v->off_usec = rnd_in(&v->rng, 5000, 1800000) * 1000;
                }
                v->cur_ppm = v->on ? 1000000 : 0;
                v->next_change = at + (v->on ? v->on_usec : v->off_usec);
                break;
        default:
                break;
        }
}

static int vm_id_init(Vm *v) {
        VmId id;
        int r = vm_id_parse(v->id.str, &id);

        if (r < 0)
                return r;
        v->id = id;
        return 0;
}

/* ---- demand changes: a min-heap ----------------------------------------- */

static bool heap_less(Sim *s, size_t a, size_t b) {
        return s->vms[s->heap[a]].next_change < s->vms[s->heap[b]].next_change;
}

static void heap_swap(Sim *s, size_t a, size_t b) {
        size_t t = s->heap[a];

        s->heap[a] = s->heap[b];
        s->heap[b] = t;
}

static void heap_down(Sim *s, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, m = i;

                if (l < s->n_heap && heap_less(s, l, m))
                        m = l;
                if (l + 1 < s->n_heap && heap_less(s, l + 1, m))
                        m = l + 1;
                if (m == i)
                        return;
                heap_swap(s, i, m);
                i = m;
        }
}

static void heap_push(Sim *s, size_t vm) {
        size_t i = s->n_heap++;

        s->heap[i] = vm;
        while (i > 0 && heap_less(s, i, (i - 1) / 2)) {
                heap_swap(s, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

/* ---- the model world --------------------------------------------------------- */

static void advance_to(Sim *s, uint64_t t) {
        uint64_t now = km_now_usec(s->model);

        if (t > now)
                km_advance(s->model, t - now);
}

static void vm_apply_demand(Sim *s, Vm *v) {
        for (uint32_t k = 0; k < v->spec.vcpus; k++) {
                int r = km_thread_set_demand(s->model, v->tids[k], v->cur_ppm);

                if (r < 0)
                        die("set demand", r);
        }
}

/* The exact integrator follows the same trace. */
static void vm_ideal_to(Vm *v, uint64_t t) {
        if (t > v->last_change) {
                ideal_run(&v->ideal, (long double) (t - v->last_change) / 1e6L,
                          (long double) v->cur_ppm * v->spec.vcpus);
                v->last_change = t;
        }
}

static void naive_tick(Sim *s, Vm *v, uint64_t now) {
        Naive *nv = &v->naive;
        CpuStat st;
        bool want_limit;
        int r = kh_cpu_stat_reader_read(nv->rd, &st);

        if (r < 0)
                die("naive: cpu.stat", r);
        credit_ledger_accrue(&nv->ledger, &v->spec, now - nv->last_tick);
        credit_ledger_spend(&nv->ledger, &v->spec, st.usage_usec - nv->last_usage);
        nv->last_usage = st.usage_usec;
        nv->last_tick = now;
        want_limit = credit_ledger_available(&nv->ledger) <= 0;
        if (want_limit != nv->limited) {
                CpuBandwidth bw = { .period_usec = TICK_USEC,
                                    .quota_usec = want_limit ? (uint64_t) credit_earn_per_sec(&v->spec) * TICK_USEC / SEC
                                                             : CPU_QUOTA_MAX };

                if (bw.quota_usec < 1000)
                        bw.quota_usec = 1000;
                r = kh_cpu_set_bandwidth(s->host, &v->id, CG_ROLE_VCPUS, &bw, NULL);
                if (r < 0)
                        die("naive: cpu.max", r);
                nv->limited = want_limit;
                nv->writes++;
        }
}

static void wheel_put(Sim *s, size_t i, uint64_t due_usec, uint64_t slot_now) {
        uint64_t slot = (due_usec + TICK_USEC - 1) / TICK_USEC;

        if (slot <= slot_now)
                slot = slot_now + 1;
        if (slot - slot_now >= WHEEL) {
                fprintf(stderr, "a bank asked for a look %" PRIu64 " ticks ahead\n", slot - slot_now);
                exit(1);
        }
        s->vms[i].next_in_slot = s->wheel[slot % WHEEL];
        s->wheel[slot % WHEEL] = (int) i;
}

static uint64_t vm_next_look(Sim *s, Vm *v) {
        if (s->policy == POLICY_NAIVE)
                return v->naive.last_tick + TICK_USEC;
        return credit_bank_next_tick_usec(v->bank);
}

/* Queues what a look at v will read (vmmgrd's tick: queue every due
 * look, run the batch once, then look). */
static void vm_queue_look(Sim *s, Vm *v) {
        if (s->policy == POLICY_NAIVE)
                kh_cpu_stat_reader_queue(v->naive.rd, KH_CPU_READ_STAT);
        else
                credit_bank_queue_look(v->bank);
}

static void vm_look(Sim *s, Vm *v, uint64_t now) {
        v->looks++;
        s->looks++;
        if (s->policy == POLICY_NAIVE)
                naive_tick(s, v, now);
        else {
                int r = credit_bank_tick(v->bank, now);

                if (r < 0)
                        die("credit_bank_tick", r);
        }
}

static void sim_setup(Sim *s, size_t n, Policy policy, uint64_t seed, size_t stride, size_t offset) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .patched = policy == POLICY_KERNEL };
        KHostConfig hcfg = { .subtree = "vmmgr-bench" };
        int r;

        memset(s, 0, sizeof(*s));
        s->policy = policy;
        r = km_new(&cfg, &s->model);
        if (r < 0)
                die("km_new", r);
        r = kh_open_model(s->model, &hcfg, &s->host);
        if (r < 0)
                die("kh_open_model", r);
        r = kh_subtree_setup(s->host);
        if (r < 0)
                die("subtree", r);
        /* Before the readers: they attach to it.  The model has no file
         * descriptors: the pread path, through the model's handles. */
        r = kh_read_batch_new(s->host, KH_READ_AUTO, &s->reads, NULL);
        if (r < 0)
                die("read batch", r);
        s->n = n;
        s->vms = calloc(n, sizeof(Vm));
        s->heap = calloc(n, sizeof(size_t));
        if (!s->vms || !s->heap)
                die("calloc", -ENOMEM);
        for (size_t w = 0; w < WHEEL; w++)
                s->wheel[w] = -1;
        for (size_t i = 0; i < n; i++) {
                Vm *v = &s->vms[i];

                /* stride/offset: a subset of the same population */
                vm_pick(v, offset + i * stride, seed);
                r = vm_id_init(v);
                if (r < 0)
                        die("vm id", r);
                r = kh_vm_create(s->host, &v->id);
                if (r < 0)
                        die("kh_vm_create", r);
                v->pid = km_process_new(s->model);
                if (v->pid < 0)
                        die("process", v->pid);
                r = kh_vm_attach_process(s->host, &v->id, v->pid);
                if (r < 0)
                        die("attach", r);
                for (uint32_t k = 0; k < v->spec.vcpus; k++) {
                        v->tids[k] = k == 0 ? v->pid : km_thread_new(s->model, v->pid);
                        if (v->tids[k] < 0)
                                die("thread", v->tids[k]);
                        r = kh_vm_attach_thread(s->host, &v->id, CG_ROLE_VCPUS, v->tids[k]);
                        if (r < 0)
                                die("attach thread", r);
                }
                v->ideal = (Ideal) { .launch = (long double) v->spec.launch_usec,
                                     .rate = (long double) credit_earn_per_sec(&v->spec),
                                     .cap = (long double) credit_spec_cap(&v->spec) };
                /* Bursty VMs start at a random point of an off phase. */
                v->on = true;
                vm_demand_step(v, 0);
                if (v->demand == DEMAND_BURSTY)
                        v->next_change = rnd_in(&v->rng, 0, v->off_usec / 1000) * 1000;
                vm_apply_demand(s, v);
                if (v->next_change != UINT64_MAX)
                        heap_push(s, i);
                if (policy == POLICY_NAIVE) {
                        CpuStat st;

                        credit_ledger_init(&v->naive.ledger, &v->spec);
                        r = kh_cpu_stat_reader_open(s->host, &v->id, CG_ROLE_VCPUS, &v->naive.rd);
                        if (r == 0)
                                r = kh_cpu_stat_reader_read(v->naive.rd, &st);
                        if (r < 0)
                                die("naive reader", r);
                        v->naive.last_usage = st.usage_usec;
                        v->naive.last_tick = 0;
                } else {
                        r = credit_bank_new(s->host, &v->id, &v->spec,
                                            policy == POLICY_KERNEL ? CREDIT_BANK_KERNEL : CREDIT_BANK_EMULATED,
                                            NULL, NULL, UINT64_MAX, 0, &v->bank);
                        if (r < 0)
                                die("credit_bank_new", r);
                }
                wheel_put(s, i, vm_next_look(s, v), 0);
        }
}

static void sim_run(Sim *s, uint64_t end_usec) {
        uint64_t end_slot = end_usec / TICK_USEC;

        s->end_usec = end_usec;
        for (uint64_t slot = 1; slot <= end_slot; slot++) {
                uint64_t t = slot * TICK_USEC;
                int i;

                /* Demand edges up to this grid point (at t: before the looks). */
                while (s->n_heap > 0 && s->vms[s->heap[0]].next_change <= t) {
                        size_t k = s->heap[0];
                        Vm *v = &s->vms[k];
                        uint64_t at = v->next_change;

                        advance_to(s, at);
                        vm_ideal_to(v, at);
                        vm_demand_step(v, at);
                        vm_apply_demand(s, v);
                        if (v->next_change == UINT64_MAX)
                                s->heap[0] = s->heap[--s->n_heap];
                        heap_down(s, 0);
                }
                i = s->wheel[slot % WHEEL];
                if (i < 0)
                        continue;
                s->wheel[slot % WHEEL] = -1;
                advance_to(s, t);
                for (int q = i; q >= 0; q = s->vms[q].next_in_slot)
                        vm_queue_look(s, &s->vms[q]);
                (void) kh_read_batch_run(s->reads);
                while (i >= 0) {
                        Vm *v = &s->vms[i];
                        int next = v->next_in_slot;

                        vm_look(s, v, t);
                        wheel_put(s, (size_t) i, vm_next_look(s, v), slot);
                        i = next;
                }
                kh_read_batch_discard(s->reads);
        }
        advance_to(s, end_usec);
        for (size_t k = 0; k < s->n; k++) {
                vm_ideal_to(&s->vms[k], end_usec);
                /* Bring every ledger up to the end. */
                vm_look(s, &s->vms[k], end_usec);
        }
}

typedef struct Result {
        double max_err_pct, max_err_pct_by_demand[_DEMAND_MAX], max_bal_err_pct;
        double mean_err_pct, p99_err_pct;
        double sum_abs_err_s, sum_spent_s;
        size_t worst_vm;
        double writes_per_vm_hour, runtime_writes_per_vm_hour, looks_per_vm_hour;
        double overdraft_s; /* standard mode: use beyond what the ledger had */
} Result;

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static void sim_measure(Sim *s, Result *res, bool verbose) {
        double *errs = calloc(s->n, sizeof(double));
        size_t n_err = 0;
        uint64_t writes = 0, rwrites = 0;
        double hours = (double) s->end_usec / 3.6e9;

        memset(res, 0, sizeof(*res));
        if (!errs)
                die("calloc", -ENOMEM);
        for (size_t i = 0; i < s->n; i++) {
                Vm *v = &s->vms[i];
                uint64_t used_ns = 0, ns;
                long double received, spent, avail, ideal_avail, err, bal_err;
                CreditLedger l;

                for (uint32_t k = 0; k < v->spec.vcpus; k++) {
                        int r = km_thread_usage_nsec(s->model, v->tids[k], &ns);

                        if (r < 0)
                                die("usage", r);
                        used_ns += ns;
                }
                if (s->policy == POLICY_NAIVE) {
                        l = v->naive.ledger;
                        writes += v->naive.writes;
                } else {
                        CreditSnapshot snap;

                        credit_bank_snapshot(v->bank, &snap);
                        l = snap.ledger;
                        writes += snap.bandwidth_writes;
                        rwrites += snap.runtime_writes;
                }
                received = (long double) used_ns / 1000.0L;
                spent = (long double) l.spent_usec;
                avail = (long double) credit_ledger_available(&l);
                ideal_avail = v->ideal.launch + v->ideal.bank;
                res->overdraft_s += (double) l.overdraft_usec / 1e6;
                if (spent <= 0) {
                        /* idle all day: nothing to get wrong but this */
                        if (received != 0 || v->ideal.received != 0)
                                fprintf(stderr, "VM %zu: idle but received %.0Lf us (ideal %.0Lf)\n", i, received,
                                        v->ideal.received);
                        continue;
                }
                err = fabsl(received - v->ideal.received) * 100.0L / spent;
                bal_err = fabsl(avail - ideal_avail) * 100.0L / spent;
                errs[n_err++] = (double) err;
                res->sum_abs_err_s += (double) (fabsl(received - v->ideal.received) / 1e6L);
                res->sum_spent_s += (double) (spent / 1e6L);
                if (err > res->max_err_pct) {
                        res->max_err_pct = (double) err;
                        res->worst_vm = i;
                }
                if (err > res->max_err_pct_by_demand[v->demand])
                        res->max_err_pct_by_demand[v->demand] = (double) err;
                if (bal_err > res->max_bal_err_pct)
                        res->max_bal_err_pct = (double) bal_err;
                if (verbose && err > 0.003)
                        printf("  VM %4zu %-10s %-8s vcpus %u launch %6.0f s cap %6.0f s: received %.6Lf s, exact "
                               "%.6Lf s (%+.4Lf %%), ledger avail %.3Lf s vs exact %.3Lf s\n",
                               i, v->cls, demand_names[v->demand], v->spec.vcpus, (double) v->spec.launch_usec / 1e6,
                               (double) credit_spec_cap(&v->spec) / 1e6, received / 1e6L, v->ideal.received / 1e6L,
                               (received - v->ideal.received) * 100.0L / spent, avail / 1e6L, ideal_avail / 1e6L);
        }
        if (n_err > 0) {
                double sum = 0;

                qsort(errs, n_err, sizeof(double), cmp_double);
                for (size_t k = 0; k < n_err; k++)
                        sum += errs[k];
                res->mean_err_pct = sum / (double) n_err;
                res->p99_err_pct = errs[(size_t) ((double) (n_err - 1) * 0.99)];
        }
        res->writes_per_vm_hour = (double) writes / (double) s->n / hours;
        res->runtime_writes_per_vm_hour = (double) rwrites / (double) s->n / hours;
        res->looks_per_vm_hour = (double) s->looks / (double) s->n / hours;
        free(errs);
}

static void sim_free(Sim *s) {
        for (size_t i = 0; i < s->n; i++) {
                credit_bank_free(s->vms[i].bank);
                kh_cpu_stat_reader_free(s->vms[i].naive.rd);
        }
        kh_read_batch_free(s->reads);
        kh_free(s->host);
        km_free(s->model);
        free(s->vms);
        free(s->heap);
}

/* ---- accuracy ------------------------------------------------------------------ */

typedef struct Opts {
        size_t vms, naive_stride, cost_vms, cost_rounds;
        double hours;
        uint64_t seed;
        bool accuracy, cost, verbose, only_emulated, callgrind;
        int jobs;
} Opts;

/* One bank's run over the population, split over `jobs` processes (the
 * VMs are independent; each process simulates every jobs-th VM on its own
 * model).  Results come back through a pipe. */
typedef struct Partial {
        Result res;
        double cpu_s;
        uint64_t looks, ff_periods, ff_jumps, tick_count;
        size_t n;
        double sum_err, max_err, max_by_demand[_DEMAND_MAX], max_bal;
        double writes, rwrites;
        double overdraft_s, sum_abs_err_s, sum_spent_s;
        char worst[256];
} Partial;

static void run_part(const Opts *o, Policy policy, size_t stride, size_t offset, size_t n, Partial *p) {
        Sim s;
        double c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
        Vm *w;

        sim_setup(&s, n, policy, o->seed, stride, offset);
        sim_run(&s, (uint64_t) (o->hours * 3600.0 * 1e6));
        sim_measure(&s, &p->res, o->verbose);
        p->cpu_s = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
        p->looks = s.looks;
        p->ff_periods = s.model->ff_periods;
        p->ff_jumps = s.model->ff_jumps;
        p->n = n;
        w = &s.vms[p->res.worst_vm];
        snprintf(p->worst, sizeof(p->worst), "%s %s, %u vCPUs, launch %.0f s, cap %.0f s", w->cls,
                 demand_names[w->demand], w->spec.vcpus, (double) w->spec.launch_usec / 1e6,
                 (double) credit_spec_cap(&w->spec) / 1e6);
        sim_free(&s);
}

static double run_policy(const Opts *o, Policy policy, size_t n_total, size_t subset_stride) {
        int jobs = o->jobs > 0 ? o->jobs : 1;
        Partial parts[8];
        pid_t pids[8];
        int fds[8];
        double w0 = now_sec(), wall, cpu = 0;
        Result all = { 0 };
        uint64_t looks = 0, ffp = 0, ffj = 0;
        double writes = 0, rwrites = 0, mean_num = 0;
        size_t counted = 0;
        const char *name = policy_names[policy];
        char worst[256] = "";

        if (jobs > 8)
                jobs = 8;
        for (int j = 0; j < jobs; j++) {
                int pfd[2];
                /* VM global index = (j + jobs * k) * subset_stride */
                size_t n = (n_total + (size_t) jobs - 1 - (size_t) j) / (size_t) jobs;

                if (pipe(pfd) < 0)
                        die("pipe", -errno);
                fflush(stdout);
                pids[j] = fork();
                if (pids[j] < 0)
                        die("fork", -errno);
                if (pids[j] == 0) {
                        Partial p = { 0 };

                        close(pfd[0]);
                        run_part(o, policy, (size_t) jobs * subset_stride, (size_t) j * subset_stride, n, &p);
                        fflush(stdout); /* -v's lines: _exit() would drop them */
                        if (write(pfd[1], &p, sizeof(p)) != (ssize_t) sizeof(p))
                                _exit(1);
                        _exit(0);
                }
                close(pfd[1]);
                fds[j] = pfd[0];
        }
        for (int j = 0; j < jobs; j++) {
                int status = 0;
                size_t got = 0;

                while (got < sizeof(Partial)) {
                        ssize_t k = read(fds[j], (char *) &parts[j] + got, sizeof(Partial) - got);
                        if (k <= 0)
                                break;
                        got += (size_t) k;
                }
                close(fds[j]);
                waitpid(pids[j], &status, 0);
                if (got != sizeof(Partial) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "%s: worker %d failed\n", name, j);
                        exit(1);
                }
        }
        wall = now_sec() - w0;
        for (int j = 0; j < jobs; j++) {
                Result *r = &parts[j].res;

                if (r->max_err_pct >= all.max_err_pct) {
                        all.max_err_pct = r->max_err_pct;
                        snprintf(worst, sizeof(worst), "%s", parts[j].worst);
                }
                for (int d = 0; d < _DEMAND_MAX; d++)
                        all.max_err_pct_by_demand[d] = fmax(all.max_err_pct_by_demand[d], r->max_err_pct_by_demand[d]);
                all.max_bal_err_pct = fmax(all.max_bal_err_pct, r->max_bal_err_pct);
                all.p99_err_pct = fmax(all.p99_err_pct, r->p99_err_pct);
                all.overdraft_s += r->overdraft_s;
                all.sum_abs_err_s += r->sum_abs_err_s;
                all.sum_spent_s += r->sum_spent_s;
                mean_num += r->mean_err_pct * (double) parts[j].n;
                counted += parts[j].n;
                writes += r->writes_per_vm_hour * (double) parts[j].n;
                rwrites += r->runtime_writes_per_vm_hour * (double) parts[j].n;
                cpu += parts[j].cpu_s;
                looks += parts[j].looks;
                ffp += parts[j].ff_periods;
                ffj += parts[j].ff_jumps;
        }
        printf("%s: %zu VMs x %.1f h in %d process(es): wall %.1f s, cpu %.1f s; %.1f looks per VM-hour; "
               "model fast-forward: %" PRIu64 " periods in %" PRIu64 " jumps\n",
               name, n_total, o->hours, jobs, wall, cpu, (double) looks / (double) n_total / o->hours, ffp, ffj);
        printf("%s: |received - exact| / spent: max %.5f %% (%s), p99 %.5f %%, mean %.6f %%; by demand: idle %.5f, "
               "steady30 %.5f, bursty %.5f, full %.5f %%; all VMs: %.3f s off in %.0f s spent; ledger available vs "
               "exact: max %.5f %% of spent\n",
               name, all.max_err_pct, worst, all.p99_err_pct, mean_num / (double) counted,
               all.max_err_pct_by_demand[DEMAND_IDLE], all.max_err_pct_by_demand[DEMAND_STEADY30],
               all.max_err_pct_by_demand[DEMAND_BURSTY], all.max_err_pct_by_demand[DEMAND_FULL], all.sum_abs_err_s,
               all.sum_spent_s, all.max_bal_err_pct);
        printf("figure: credits.model.%s.max_error_pct %.5f %%\n", name, all.max_err_pct);
        printf("figure: credits.model.%s.max_balance_error_pct %.5f %%\n", name, all.max_bal_err_pct);
        printf("figure: credits.model.%s.mean_abs_error_ms_per_vm %.3f ms\n", name,
               all.sum_abs_err_s * 1e3 / (double) n_total);
        if (policy == POLICY_NAIVE)
                printf("figure: credits.model.naive_flip.vms %zu VMs\n", n_total);
        else {
                printf("figure: credits.model.%s.sim_seconds %.1f s\n", name, wall);
                printf("figure: credits.model.%s.looks_per_vm_hour %.1f looks\n", name,
                       (double) looks / (double) n_total / o->hours);
        }
        if (policy == POLICY_EMULATED)
                printf("figure: credits.model.emulated.bandwidth_writes_per_vm_hour %.3f writes\n",
                       writes / (double) counted);
        if (policy == POLICY_KERNEL)
                printf("figure: credits.model.kernel.runtime_writes_per_vm_hour %.3f writes\n",
                       rwrites / (double) counted);
        fflush(stdout);
        return all.max_err_pct;
}

/* ---- cost ------------------------------------------------------------------------- */

/* One look at every bank, as vmmgrd's tick makes them: the reads
 * queued, the batch run once, the looks, what nobody took dropped. */
__attribute__((noinline)) void cost_ticks(KhReadBatch *reads, CreditBank **banks, size_t n, uint64_t now);
__attribute__((noinline)) void cost_ticks(KhReadBatch *reads, CreditBank **banks, size_t n, uint64_t now) {
        for (size_t i = 0; i < n; i++)
                credit_bank_queue_look(banks[i]);
        (void) kh_read_batch_run(reads);
        for (size_t i = 0; i < n; i++) {
                int r = credit_bank_tick(banks[i], now);

                if (r < 0)
                        die("tick", r);
        }
        kh_read_batch_discard(reads);
}

/* The measured rounds (callgrind counts only in here). */
__attribute__((noinline)) void cost_ticks_measured(KhReadBatch *reads, CreditBank **banks, size_t n, uint64_t now);
__attribute__((noinline)) void cost_ticks_measured(KhReadBatch *reads, CreditBank **banks, size_t n, uint64_t now) {
        cost_ticks(reads, banks, n, now);
        __asm__ volatile("" ::: "memory");
}

/* ns per credit_bank_tick over n banks of mixed demand, after a warm-up;
 * rounds of one look per bank 100 ms apart, the model advanced between
 * rounds (not timed). */
static double cost_run(size_t n, size_t rounds, Policy policy, uint64_t seed, uint64_t *ret_ticks) {
        Sim s;
        CreditBank **banks = calloc(n, sizeof(CreditBank *));
        double t = 0;
        uint64_t now;

        if (!banks)
                die("calloc", -ENOMEM);
        sim_setup(&s, n, policy, seed, 1, 0);
        for (size_t i = 0; i < n; i++)
                banks[i] = s.vms[i].bank;
        /* Warm-up: 30 s of simulated time at a look per 100 ms, so banks are
         * in all their states (unlimited, landing, steady). */
        for (now = TICK_USEC; now <= 30 * SEC; now += TICK_USEC) {
                advance_to(&s, now);
                cost_ticks(s.reads, banks, n, now);
        }
        for (size_t k = 0; k < rounds; k++, now += TICK_USEC) {
                double c0;

                advance_to(&s, now);
                c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                cost_ticks_measured(s.reads, banks, n, now);
                t += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        if (ret_ticks)
                *ret_ticks = (uint64_t) n * rounds;
        sim_free(&s);
        free(banks);
        return t * 1e9 / (double) (n * rounds);
}

/* As vmmgrd schedules looks: a 100 ms tick that looks at a bank when
 * credit_bank_next_tick_usec() says it is due.  Returns the share of one
 * core (CPU time of the looks / simulated time) over `seconds` after an
 * hour of warm-up (pools filled, banks in their daily states; fresh banks
 * with empty pools look and top up more often); *ret_looks_per_sec:
 * looks per bank per second. */
static double cost_run_scheduled(size_t n, uint64_t seconds, Policy policy, uint64_t seed,
                                 double *ret_looks_per_sec, double *ret_reads_per_look, double *ret_writes_per_look) {
        Sim s;
        CreditBank **banks = calloc(n, sizeof(CreditBank *));
        uint64_t now, looks = 0, warm = 3600 * SEC, end = warm + seconds * SEC, reads0 = 0, writes0 = 0, reads1 = 0, writes1 = 0;
        double t = 0;

        if (!banks)
                die("calloc", -ENOMEM);
        sim_setup(&s, n, policy, seed, 1, 0);
        for (size_t i = 0; i < n; i++)
                banks[i] = s.vms[i].bank;
        for (now = TICK_USEC; now <= end; now += TICK_USEC) {
                bool measured = now > warm;
                double c0;

                if (now == warm + TICK_USEC)
                        for (size_t i = 0; i < n; i++) {
                                CreditSnapshot sn;

                                credit_bank_snapshot(banks[i], &sn);
                                reads0 += sn.runtime_reads;
                                writes0 += sn.runtime_writes;
                        }

                advance_to(&s, now);
                c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                for (size_t i = 0; i < n; i++)
                        if (credit_bank_next_tick_usec(banks[i]) <= now)
                                credit_bank_queue_look(banks[i]);
                (void) kh_read_batch_run(s.reads);
                for (size_t i = 0; i < n; i++) {
                        int r;

                        if (credit_bank_next_tick_usec(banks[i]) > now)
                                continue;
                        r = credit_bank_tick(banks[i], now);
                        if (r < 0)
                                die("tick", r);
                        looks += measured;
                }
                kh_read_batch_discard(s.reads);
                if (measured)
                        t += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        for (size_t i = 0; i < n; i++) {
                CreditSnapshot sn;

                credit_bank_snapshot(banks[i], &sn);
                reads1 += sn.runtime_reads;
                writes1 += sn.runtime_writes;
        }
        *ret_looks_per_sec = (double) looks / (double) n / (double) seconds;
        *ret_reads_per_look = looks ? (double) (reads1 - reads0) / (double) looks : 0;
        *ret_writes_per_look = looks ? (double) (writes1 - writes0) / (double) looks : 0;
        sim_free(&s);
        free(banks);
        return t / (double) seconds;
}

static void run_cost(const Opts *o) {
        uint64_t ticks = 0;
        double ns = cost_run(o->cost_vms, o->cost_rounds, POLICY_EMULATED, o->seed, &ticks);
        double kns;

        printf("emulated bank, model: %zu VMs, %zu rounds after a 30 s warm-up: %.0f ns per credit_bank_tick "
               "(%" PRIu64 " ticks; cpu.stat through the model backend included)\n",
               o->cost_vms, o->cost_rounds, ns, ticks);
        printf("figure: credits.cost.emulated_ns_per_vm_tick %.0f ns\n", ns);
        if (o->callgrind)
                return;
        /* The kernel bank looks once a second: cpu.stat + cpu.max.runtime
         * (+ a rare relative write). */
        kns = cost_run(1000, o->cost_rounds * 5, POLICY_KERNEL, o->seed, &ticks);
        printf("kernel bank, patched model: 1000 VMs: %.0f ns per credit_bank_tick (cpu.stat + cpu.max.runtime "
               "+ the occasional relative write).  Note: this is the model's file cost (no kernel here has "
               "cpu.max.runtime); bench-credits-real extrapolates from the real syscalls on this host.  At 1,000 "
               "VMs and one look per VM per second it would be %.5f %% of a core (extrapolated, not a figure)\n",
               kns, kns * 1000.0 / 1e9 * 100.0);
        printf("figure: credits.cost.kernel_model_ns_per_vm_tick %.0f ns\n", kns);
        {
                double looks_per_sec, reads, writes,
                        share = cost_run_scheduled(1000, 60, POLICY_KERNEL, o->seed, &looks_per_sec, &reads, &writes);

                printf("kernel bank as vmmgrd schedules looks (100 ms tick, a bank when due; deep pools every 5 s), "
                       "patched model, 1000 VMs, 60 s after an hour: %.3f looks per VM per second, "
                       "%.3f cpu.max.runtime reads and %.4f runtime writes per look, %.5f %% of a core\n",
                       looks_per_sec, reads, writes, share * 100.0);
                printf("figure: credits.cost.kernel_looks_per_vm_sec %.3f looks\n", looks_per_sec);
                printf("figure: credits.cost.kernel_runtime_reads_per_look %.3f reads\n", reads);
                printf("figure: credits.cost.kernel_runtime_writes_per_look %.4f writes\n", writes);
                printf("figure: credits.cost.kernel_1000vm_core_pct %.5f %%\n", share * 100.0);
        }
}

static void usage(void) {
        puts("bench-credits-model [--accuracy] [--cost] [--vms N] [--hours H] [--seed S] [--jobs J]\n"
             "                    [--naive-stride K] [--cost-vms N] [--cost-rounds R] [--callgrind] [-v]\n"
             "Default: --accuracy --cost with 1000 VMs, 24 h, 2 jobs, naive on every 5th VM, cost at 10000 VMs.");
}

int main(int argc, char **argv) {
        Opts o = { .vms = 1000, .hours = 24, .seed = 20240601, .jobs = 2, .naive_stride = 5, .cost_vms = 10000,
                   .cost_rounds = 20 };
        bool any = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (strcmp(a, "--accuracy") == 0)
                        o.accuracy = any = true;
                else if (strcmp(a, "--cost") == 0)
                        o.cost = any = true;
                else if (strcmp(a, "--callgrind") == 0)
                        o.callgrind = o.cost = any = true;
                else if (strcmp(a, "--emulated-only") == 0)
                        o.only_emulated = true;
                else if (strcmp(a, "-v") == 0)
                        o.verbose = true;
                else if (v && strcmp(a, "--vms") == 0)
                        o.vms = strtoul(v, NULL, 10), i++;
                else if (v && strcmp(a, "--hours") == 0)
                        o.hours = strtod(v, NULL), i++;
                else if (v && strcmp(a, "--seed") == 0)
                        o.seed = strtoull(v, NULL, 10), i++;
                else if (v && strcmp(a, "--jobs") == 0)
                        o.jobs = atoi(v), i++;
                else if (v && strcmp(a, "--naive-stride") == 0)
                        o.naive_stride = strtoul(v, NULL, 10), i++;
                else if (v && strcmp(a, "--cost-vms") == 0)
                        o.cost_vms = strtoul(v, NULL, 10), i++;
                else if (v && strcmp(a, "--cost-rounds") == 0)
                        o.cost_rounds = strtoul(v, NULL, 10), i++;
                else {
                        usage();
                        return strcmp(a, "--help") == 0 ? 0 : 2;
                }
        }
        if (!any)
                o.accuracy = o.cost = true;
        if (o.accuracy) {
                double w0 = now_sec(), worst;

                worst = run_policy(&o, POLICY_EMULATED, o.vms, 1);
                if (!o.only_emulated) {
                        worst = fmax(worst, run_policy(&o, POLICY_KERNEL, o.vms, 1));
                        printf("figure: credits.model.max_error_pct %.5f %%\n", worst);
                        /* both banks' runs over the whole population */
                        printf("figure: credits.model.sim_seconds %.1f s\n", now_sec() - w0);
                        if (o.naive_stride > 0)
                                run_policy(&o, POLICY_NAIVE, (o.vms + o.naive_stride - 1) / o.naive_stride,
                                           o.naive_stride);
                }
                if (o.only_emulated)
                        printf("figure: credits.model.max_error_pct %.5f %%\n", worst);
                printf("figure: credits.model.all_banks_seconds %.1f s\n", now_sec() - w0);
        }
        if (o.cost)
                run_cost(&o);
        return 0;
}
