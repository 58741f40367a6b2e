/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model suite: the credit engine on the kernel model, both banks.
 *
 * Scenario of the real-kernel run: 1 vCPU, baseline 20 %, launch
 * 3 CPU-s, cap 6 CPU-s, a vCPU that spins for 30 s.  It must run at full
 * speed while credits remain, at baseline once empty, and receive exactly
 * what it was entitled to (launch + earned), with a ledger that agrees.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"
#include "vmmgr/engine/credit-bank.h"

#define SEC UINT64_C(1000000)
#define MS UINT64_C(1000)
#define TICK (100 * MS)

typedef struct World {
        KModel *model;
        KHost *host;
        VmId vm[2];
        pid_t tid[2];
} World;

static const CreditSpec demo = {
        .vcpus = 1,
        .baseline_ppm = 200000,
        .cap_usec = 6 * (int64_t) SEC,
        .launch_usec = 3 * (int64_t) SEC,
        .mode = CREDIT_MODE_STANDARD,
};

static void world_open_cfg(World *w, const KModelConfig *cfg) {
        static const char *const ids[] = { "11111111-1111-4111-8111-111111111111",
                                           "22222222-2222-4222-8222-222222222222" };

        memset(w, 0, sizeof(*w));
        assert_int_equal(km_new(cfg, &w->model), 0);
        assert_int_equal(kh_open_model(w->model, NULL, &w->host), 0);
        assert_int_equal(kh_subtree_setup(w->host), 0);
        for (int i = 0; i < 2; i++) {
                pid_t pid;

                assert_int_equal(vm_id_parse(ids[i], &w->vm[i]), 0);
                assert_int_equal(kh_vm_create(w->host, &w->vm[i]), 0);
                pid = km_process_new(w->model);
                assert_true(pid > 0);
                w->tid[i] = km_thread_new(w->model, pid);
                assert_true(w->tid[i] > 0);
                assert_int_equal(kh_vm_attach_process(w->host, &w->vm[i], pid), 0);
                assert_int_equal(kh_vm_attach_thread(w->host, &w->vm[i], CG_ROLE_VCPUS, w->tid[i]), 0);
        }
}

static void world_open(World *w, CgMode mode, bool patched) {
        KModelConfig cfg = { .mode = mode, .patched = patched };

        world_open_cfg(w, &cfg);
}

static void world_close(World *w) {
        kh_free(w->host);
        km_free(w->model);
}

static uint64_t thread_usec(World *w, int i) {
        uint64_t ns = 0;
        assert_int_equal(km_thread_usage_nsec(w->model, w->tid[i], &ns), 0);
        return ns / 1000;
}

static bool adaptive; /* tick each bank only when it asks for it */

/* Runs `dur` of simulated time in TICK steps, ticking the banks every
 * TICK, or when due in adaptive mode. */
static void run(World *w, CreditBank **banks, size_t n, uint64_t dur) {
        for (uint64_t t = 0; t < dur; t += TICK) {
                km_advance(w->model, TICK);
                for (size_t i = 0; i < n; i++) {
                        uint64_t now = km_now_usec(w->model);
                        if (adaptive && credit_bank_next_tick_usec(banks[i]) > now)
                                continue;
                        assert_int_equal(credit_bank_tick(banks[i], now), 0);
                }
        }
}

static double pct(uint64_t part, uint64_t whole) {
        return whole ? (double) part * 100.0 / (double) whole : 0.0;
}

static void spin_scenario(CgMode mode, bool patched, CreditBankKind kind) {
        World w;
        CreditBank *b = NULL;
        CreditSnapshot s0, s;
        uint64_t u0, u_burst, u_end, start;
        double burst_pct, base_pct, err_pct;
        int64_t entitled;

        world_open(&w, mode, patched);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &demo, kind, NULL, NULL, UINT64_MAX,
                                         km_now_usec(w.model), &b),
                         0);
        credit_bank_snapshot(b, &s0);
        start = km_now_usec(w.model);
        u0 = thread_usec(&w, 0);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);

        /* 3 s launch at full speed, earning 0.2 s/s: empty after 3.75 s. */
        run(&w, &b, 1, 3 * SEC);
        u_burst = thread_usec(&w, 0) - u0;
        burst_pct = pct(u_burst, 3 * SEC);
        credit_bank_snapshot(b, &s);
        assert_int_equal(s.state, CREDIT_STATE_BURSTING);

        run(&w, &b, 1, 27 * SEC);
        u_end = thread_usec(&w, 0) - u0;
        /* Bring the ledger to this instant (adaptive looks may be older). */
        assert_int_equal(credit_bank_tick(b, km_now_usec(w.model)), 0);
        credit_bank_snapshot(b, &s);
        entitled = demo.launch_usec + (int64_t) (s.ledger.earned_usec - s0.ledger.earned_usec);
        err_pct = ((double) u_end - (double) entitled) * 100.0 / (double) entitled;
        {
                /* The last 20 s are all at baseline. */
                uint64_t u_a, u_b;
                u_a = thread_usec(&w, 0);
                run(&w, &b, 1, 10 * SEC);
                u_b = thread_usec(&w, 0);
                base_pct = pct(u_b - u_a, 10 * SEC);
        }
        printf("%s bank on %s%s: burst %.2f %%, baseline %.2f %%, received %.6f s vs entitled %.6f s "
               "(%+.4f %%), bandwidth writes %" PRIu64 ", runtime writes %" PRIu64 "\n",
               credit_bank_kind_to_string(kind), mode == CG_MODE_LEGACY ? "v1" : "v2",
               patched ? " (patched)" : "", burst_pct, base_pct, (double) u_end / 1e6,
               (double) entitled / 1e6, err_pct, s.bandwidth_writes, s.runtime_writes);

        assert_true(burst_pct >= 95.0);
        assert_true(base_pct >= 18.0 && base_pct <= 22.0);
        assert_true(err_pct >= -0.1 && err_pct <= 0.1);
        /* The ledger agrees: spent is what the group used, and the balance
         * moved by earned - spent (launch spent first). */
        assert_true(s.ledger.spent_usec - s0.ledger.spent_usec <= u_end + 1);
        assert_true(s.ledger.spent_usec - s0.ledger.spent_usec + 1 >= u_end);
        assert_int_equal(s.state, CREDIT_STATE_THROTTLED);
        (void) start;
        credit_bank_free(b);
        world_close(&w);
}

/* Runs `dur` ticking every TICK; counts shown-state changes and gathers
 * the notices. */
static unsigned run_watch(World *w, CreditBank *b, uint64_t dur, unsigned *notices) {
        CreditSnapshot s;
        CreditState last;
        unsigned changes = 0;

        credit_bank_snapshot(b, &s);
        last = s.state;
        for (uint64_t t = 0; t < dur; t += TICK) {
                km_advance(w->model, TICK);
                assert_int_equal(credit_bank_tick(b, km_now_usec(w->model)), 0);
                *notices |= credit_bank_take_notices(b);
                credit_bank_snapshot(b, &s);
                if (s.state != last && getenv("VT_DEBUG")) printf("t=%.1f %s -> %s\n", km_now_usec(w->model) / 1e6, credit_state_to_string(last), credit_state_to_string(s.state));
                changes += s.state != last;
                last = s.state;
        }
        return changes;
}

/* What operators see (docs/credits.md): a spinning VM bursts on its launch
 * credits, is held at baseline once they and its bank are spent (one
 * change, no flapping), bursts again when given credits; a VM steady at
 * its baseline stays "baseline"; each moment is a notice. */
static void states_scenario(CgMode mode, bool patched, CreditBankKind kind) {
        World w;
        CreditBank *b = NULL;
        CreditSnapshot s;
        unsigned notices = 0, changes;

        world_open(&w, mode, patched);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &demo, kind, NULL, NULL, UINT64_MAX,
                                         km_now_usec(w.model), &b),
                         0);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);
        (void) run_watch(&w, b, 2 * SEC, &notices); /* the first look decides the first state */
        credit_bank_snapshot(b, &s);
        assert_int_equal(s.state, CREDIT_STATE_BURSTING);
        /* Launch credits (3 s) and the bank run dry near 3.75 s: held. */
        changes = run_watch(&w, b, 18 * SEC, &notices);
        credit_bank_snapshot(b, &s);
        printf("%s: spinning 20 s: %u state change(s), notices 0x%x\n", credit_bank_kind_to_string(kind), changes,
               notices);
        assert_int_equal(s.state, CREDIT_STATE_THROTTLED);
        assert_int_equal(changes, 1);
        assert_true(notices & CREDIT_NOTICE_LAUNCH_SPENT);
        assert_true(notices & CREDIT_NOTICE_EXHAUSTED);
        assert_false(notices & CREDIT_NOTICE_BURSTING_AGAIN);

        /* Given 5 CPU-s, it bursts again. */
        notices = 0;
        assert_int_equal(credit_bank_inject(b, 5 * (int64_t) SEC, km_now_usec(w.model)), 0);
        changes = run_watch(&w, b, 3 * SEC, &notices);
        credit_bank_snapshot(b, &s);
        assert_int_equal(s.state, CREDIT_STATE_BURSTING);
        assert_true(notices & CREDIT_NOTICE_BURSTING_AGAIN);

        /* Steady at its baseline once the bank is spent: "baseline", stable. */
        run_watch(&w, b, 10 * SEC, &notices);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 200000), 0);
        /* Leaving "throttled" takes the averages ~8 s (from 80 % of the
         * time throttled down past 2 %, tau 2 s) plus the 2 s dwell. */
        run_watch(&w, b, 15 * SEC, &notices);
        changes = run_watch(&w, b, 20 * SEC, &notices);
        credit_bank_snapshot(b, &s);
        printf("%s: at baseline 20 s: %u state change(s), state %s\n", credit_bank_kind_to_string(kind), changes,
               credit_state_to_string(s.state));
        assert_int_equal(changes, 0);
        assert_int_equal(s.state, CREDIT_STATE_BASELINE);
        credit_bank_free(b);
        world_close(&w);
}

static void test_states_emulated(void **state) {
        states_scenario(CG_MODE_UNIFIED, false, CREDIT_BANK_EMULATED);
}

static void test_states_kernel(void **state) {
        states_scenario(CG_MODE_UNIFIED, true, CREDIT_BANK_KERNEL);
}

static void test_emulated_v2(void **state) {
        spin_scenario(CG_MODE_UNIFIED, false, CREDIT_BANK_EMULATED);
}

static void test_emulated_v1(void **state) {
        spin_scenario(CG_MODE_LEGACY, false, CREDIT_BANK_EMULATED);
}

static void test_emulated_v2_adaptive(void **state) {
        adaptive = true;
        spin_scenario(CG_MODE_UNIFIED, false, CREDIT_BANK_EMULATED);
        adaptive = false;
}

static void test_kernel_bank(void **state) {
        spin_scenario(CG_MODE_UNIFIED, true, CREDIT_BANK_KERNEL);
}

/* An idle group's pool earns by itself (v2 of the series credits the
 * periods its stopped timer slept through): after 10 s idle the pool holds
 * what the ledger earned, and vmmgr wrote nothing to get it there. */
static void test_kernel_bank_idle_accrual(void **state) {
        CreditSpec s = demo;
        World w;
        CreditBank *b = NULL;
        CreditSnapshot snap;
        uint64_t u0, used, runtime, writes0;

        s.launch_usec = 0;
        world_open(&w, CG_MODE_UNIFIED, true);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &s, CREDIT_BANK_KERNEL, NULL, NULL, UINT64_MAX,
                                         km_now_usec(w.model), &b),
                         0);
        credit_bank_snapshot(b, &snap);
        writes0 = snap.runtime_writes;
        run(&w, &b, 1, 10 * SEC); /* idle: earns 2 s */
        credit_bank_snapshot(b, &snap);
        assert_true(snap.ledger.balance_usec == 2 * (int64_t) SEC);
        assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, &runtime), 0);
        printf("after 10 s idle the pool holds %.6f s; vmmgr's runtime writes meanwhile: %" PRIu64 "\n",
               (double) runtime / 1e6, snap.runtime_writes - writes0);
        /* Up to a quota ahead: the kernel adds each period's at its start. */
        assert_true(runtime >= 2 * SEC && runtime <= 2 * SEC + 4 * MS);
        assert_int_equal(snap.runtime_writes, writes0);
        /* Spinning, it now gets its 2 s plus 20 % on top: all of it. */
        u0 = thread_usec(&w, 0);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);
        run(&w, &b, 1, 5 * SEC);
        used = thread_usec(&w, 0) - u0;
        printf("after 10 s idle, 5 s of spinning got %.3f s (2 s banked + 1 s earned)\n", (double) used / 1e6);
        /* Up to one quota (20 % of a 20 ms period) may still sit in the pool. */
        assert_true(used >= 3 * SEC - 4 * MS && used <= 3 * SEC);
        credit_bank_free(b);
        world_close(&w);
}

/* A relative runtime write the kernel refuses because the pool moved
 * between vmmgr's read and its write (EINVAL: it would leave it below 0
 * or above quota + burst) is read again and redone, not a failed look. */
static void test_kernel_bank_write_race(void **state) {
        World w;
        CreditBank *b = NULL;
        CreditSnapshot s;
        uint64_t now, runtime;

        world_open(&w, CG_MODE_UNIFIED, true);
        now = km_now_usec(w.model);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &demo, CREDIT_BANK_KERNEL, NULL, NULL, UINT64_MAX, now, &b),
                         0);
        assert_int_equal(credit_bank_tick(b, now), 0);
        /* The pool drained behind vmmgr's back while the VM ran (v2
         * kernels keep the pool in step with the ledger themselves, so
         * something has to make them differ): the next look feeds the
         * launch credits back, and that write fails. */
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);
        km_advance(w.model, SEC);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 0), 0);
        assert_int_equal(kh_cpu_set_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, 0), 0);
        now = km_now_usec(w.model);
        credit_bank_fail_next_write(b, EINVAL);
        assert_int_equal(credit_bank_tick(b, now), 0);
        credit_bank_snapshot(b, &s);
        assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, &runtime), 0);
        assert_true((int64_t) runtime == MIN(credit_ledger_available(&s.ledger), demo.cap_usec));
        /* Another error is the look's error. */
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);
        km_advance(w.model, SEC);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 0), 0);
        assert_int_equal(kh_cpu_set_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, 0), 0);
        credit_bank_fail_next_write(b, EIO);
        assert_int_equal(credit_bank_tick(b, km_now_usec(w.model)), -EIO);
        credit_bank_free(b);
        world_close(&w);
}

/* The probe tells the kernels apart by what a write above the cap does:
 * v2 saturates (the kernel keeps the bank), v1 refused it (its idle pools
 * did not accrue either: vmmgr keeps the bank, emulated), stock has no
 * cpu.max.runtime. */
static void test_probe_runtime_v2(void **state) {
        static const struct {
                KModelConfig cfg;
                Tristate runtime, v2;
                bool kernel_bank;
        } cases[] = {
                { { .mode = CG_MODE_UNIFIED, .patched = true }, TRI_YES, TRI_YES, true },
                { { .mode = CG_MODE_UNIFIED, .patched = true, .runtime_v1 = true }, TRI_YES, TRI_NO, false },
                { { .mode = CG_MODE_UNIFIED }, TRI_NO, TRI_NO, false },
                { { .mode = CG_MODE_LEGACY }, TRI_NO, TRI_NO, false },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                World w;
                HostFeatures f;

                world_open_cfg(&w, &cases[i].cfg);
                assert_int_equal(kh_probe(w.host, &f), 0);
                assert_int_equal(f.cpu_max_runtime, cases[i].runtime);
                assert_int_equal(f.cpu_max_runtime_v2, cases[i].v2);
                assert_int_equal(host_features_kernel_bank(&f), cases[i].kernel_bank);
                host_features_done(&f);
                world_close(&w);
        }
}

static void transfer_scenario(CreditBankKind kind, bool patched) {
        World w;
        CreditBank *a = NULL, *b = NULL;
        CreditSnapshot sa, sb, sa2, sb2;
        CreditSpec s = demo;
        uint64_t now, ra0 = 0, rb0 = 0;

        s.launch_usec = 0;
        world_open(&w, CG_MODE_UNIFIED, patched);
        now = km_now_usec(w.model);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &s, kind, NULL, NULL, UINT64_MAX, now, &a), 0);
        assert_int_equal(credit_bank_new(w.host, &w.vm[1], &s, kind, NULL, NULL, UINT64_MAX, now, &b), 0);
        assert_int_equal(credit_bank_inject(a, 4 * (int64_t) SEC, now), 0);
        credit_bank_snapshot(a, &sa);
        credit_bank_snapshot(b, &sb);
        if (kind == CREDIT_BANK_KERNEL) {
                /* In step: each pool within a quota of its ledger (the
                 * cpu.max write that set the quota added one). */
                assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, &ra0), 0);
                assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[1], CG_ROLE_VCPUS, &rb0), 0);
                assert_true(ra0 >= (uint64_t) sa.ledger.balance_usec && ra0 <= (uint64_t) sa.ledger.balance_usec + 4 * MS);
                assert_true(rb0 >= (uint64_t) sb.ledger.balance_usec && rb0 <= (uint64_t) sb.ledger.balance_usec + 4 * MS);
        }

        /* The second write fails: nothing moves, in the ledgers or the pools. */
        credit_bank_fail_next_write(b, EIO);
        assert_int_equal(credit_bank_transfer(a, b, 1 * (int64_t) SEC, now), kind == CREDIT_BANK_KERNEL ? -EIO : 0);
        credit_bank_snapshot(a, &sa2);
        credit_bank_snapshot(b, &sb2);
        if (kind == CREDIT_BANK_KERNEL) {
                uint64_t ra, rb;
                assert_true(sa2.ledger.balance_usec == sa.ledger.balance_usec);
                assert_true(sb2.ledger.balance_usec == sb.ledger.balance_usec);
                assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[0], CG_ROLE_VCPUS, &ra), 0);
                assert_int_equal(kh_cpu_get_runtime(w.host, &w.vm[1], CG_ROLE_VCPUS, &rb), 0);
                assert_true(ra == ra0);
                assert_true(rb == rb0);
        } else {
                /* Emulated: the ledger is the bank; the failed write was only
                 * enforcement, which the next tick redoes. */
                assert_true(sa2.ledger.balance_usec + sb2.ledger.balance_usec ==
                            sa.ledger.balance_usec + sb.ledger.balance_usec);
        }

        /* Refused transfers change nothing either. */
        credit_bank_snapshot(a, &sa);
        credit_bank_snapshot(b, &sb);
        assert_int_equal(credit_bank_transfer(a, b, 100 * (int64_t) SEC, now), -ERANGE);
        assert_int_equal(credit_bank_inject(b, -100 * (int64_t) SEC, now), -ERANGE);
        credit_bank_snapshot(a, &sa2);
        credit_bank_snapshot(b, &sb2);
        assert_true(sa2.ledger.balance_usec == sa.ledger.balance_usec);
        assert_true(sb2.ledger.balance_usec == sb.ledger.balance_usec);

        /* And a good one keeps the sum. */
        assert_int_equal(credit_bank_transfer(a, b, 1 * (int64_t) SEC, now), 0);
        credit_bank_snapshot(a, &sa2);
        credit_bank_snapshot(b, &sb2);
        assert_true(sa2.ledger.balance_usec + sb2.ledger.balance_usec ==
                    sa.ledger.balance_usec + sb.ledger.balance_usec);
        assert_true(sb2.ledger.balance_usec == sb.ledger.balance_usec + (int64_t) SEC);
        credit_bank_free(a);
        credit_bank_free(b);
        world_close(&w);
}

static void test_transfer_kernel(void **state) {
        transfer_scenario(CREDIT_BANK_KERNEL, true);
}

static void test_transfer_emulated(void **state) {
        transfer_scenario(CREDIT_BANK_EMULATED, false);
}

/* Restart: a new bank on a ledger saved at usage U charges what the group
 * used since U, so a crash between commits loses and creates nothing. */
static void test_resume_charges_gap(void **state) {
        World w;
        CreditBank *b = NULL;
        CreditSnapshot saved, s;
        uint64_t now;

        world_open(&w, CG_MODE_UNIFIED, false);
        now = km_now_usec(w.model);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &demo, CREDIT_BANK_EMULATED, NULL, NULL, UINT64_MAX,
                                         now, &b),
                         0);
        assert_int_equal(km_thread_set_demand(w.model, w.tid[0], 1000000), 0);
        run(&w, &b, 1, 1 * SEC);
        credit_bank_snapshot(b, &saved); /* "committed" */
        credit_bank_free(b);
        km_advance(w.model, 500 * MS); /* the daemon is down; the VM runs on */
        now = km_now_usec(w.model);
        assert_int_equal(credit_bank_new(w.host, &w.vm[0], &demo, CREDIT_BANK_EMULATED, NULL, &saved.ledger,
                                         saved.usage_usec, saved.last_tick_usec, &b),
                         0);
        assert_int_equal(credit_bank_tick(b, now), 0);
        credit_bank_snapshot(b, &s);
        /* 0.5 s spent at full speed, 0.1 s earned. */
        assert_true(s.ledger.spent_usec - saved.ledger.spent_usec == 500 * MS);
        assert_true(s.ledger.earned_usec - saved.ledger.earned_usec == 100 * MS);
        credit_bank_free(b);
        world_close(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_emulated_v2),
                cmocka_unit_test(test_states_emulated),
                cmocka_unit_test(test_states_kernel),
                cmocka_unit_test(test_emulated_v1),
                cmocka_unit_test(test_emulated_v2_adaptive),
                cmocka_unit_test(test_kernel_bank),
                cmocka_unit_test(test_kernel_bank_idle_accrual),
                cmocka_unit_test(test_kernel_bank_write_race),
                cmocka_unit_test(test_probe_runtime_v2),
                cmocka_unit_test(test_transfer_kernel),
                cmocka_unit_test(test_transfer_emulated),
                cmocka_unit_test(test_resume_charges_gap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
