/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel suite (and the real-kernel tier, inside the test kernels): the
 * emulated (or, on a patched kernel, kernel) credit bank against a real cpu
 * controller, spec baseline 20 %, launch 3 CPU-s, cap 6 CPU-s, 30 s.
 *
 * What spins, by mode:
 *   (default)  a real QEMU VM (TCG) whose one vCPU spins ("jmp $" in its
 *              boot sector), its threads bound through QMP as vmmgrd does.
 *              The measurement starts once the guest is at its boot sector
 *              (QMP "info registers": EIP 7c00), so that the firmware's
 *              start-up, which inside a test kernel's TCG takes seconds and
 *              may halt the vCPU, is not counted as the bank's doing.
 *              Figures: credits.real.*.
 *   --spinner  a spinning process stands in for the vCPU: the engine
 *              without QEMU.  Figures: credits.spinner.*.  Only on request,
 *              never as a fallback.
 * QEMU not installed (VMMGR_QEMU unset and no qemu-system-x86_64 on PATH)
 * is a skip; a QEMU that is there, or that VMMGR_QEMU names, and fails to
 * start, to answer QMP, to be bound or to reach its boot sector is a
 * failure.  So is every failed read of the vCPU thread's CPU time.
 *
 * Measured from /proc (schedstat), not from vmmgr.  The test asserts the
 * behaviour, with bounds a bug would cross and a busy host would not: it
 * runs far above its baseline (>= 80 % of a CPU) while credits remain, is
 * held near its baseline (15..25 %) once they are spent, and over the run
 * receives what it had available at the first look (the launch credits,
 * less what it ran between the bank's creation and that look) + what it
 * earned, within 0.5 %; the ledger's `spent` equals the measured usage
 * within 0.5 %.  The accuracy targets (>= 95 %, 20 +- 2 %, 0.1 %) are
 * judged by the bench suite on the same figures (--strict here, and
 * tests/realkernel/bench.sh for the test kernels): on a shared 2-core
 * host a descheduled guest makes single runs miss them now and then.  The first and the last look are each taken
 * between two reads of the thread's counter no more than 1 ms apart.
 * Prints the time series and figure lines.
 *
 * "Received" is judged as the mean over the run's last second (ten looks)
 * of received - entitled, each taken right after a look: at baseline the
 * VM runs a slice and waits the rest of each CFS period, so any single
 * instant is off by up to a quota depending on where in the period it
 * falls; over whole periods that phase averages out and what is left is
 * vmmgr's error.  The error at the last instant is printed as well.
 * usage: test-real-credits [-v] [--spinner] [--strict]
 *   --strict   judge the accuracy targets instead (the bench suite)
 * Exit: 0 pass, 1 fail, 77 skip.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "qmp/qmp.h"
#include "tests/qmp/qemu-helper.h"
#include "tests/common/thread-roles.h"
#include "vmmgr/engine/binding.h"
#include "vmmgr/engine/credit-bank.h"

#define TICK_USEC UINT64_C(100000)
#define RUN_SEC 30
#define WINDOW_TICKS 10 /* the last second */
#define VM_UUID "5b7c1e2a-3d4f-4a5b-8c6d-7e8f9a0b1c2d"
/* Generous for a QEMU started inside a TCG test kernel (its binary and
 * libraries come over 9p, its firmware runs under TCG inside TCG). */
#define QEMU_START_TIMEOUT_MS 60000
#define QMP_TIMEOUT_MS 30000
#define BOOT_SECTOR_TIMEOUT_USEC (180 * USEC_PER_SEC)
/* A look of the bank and the reads of the vCPU thread's CPU time on either
 * side of it must be this close together to count as one instant. */
#define BRACKET_USEC 1000
#define BRACKET_TRIES 50

static void sleep_until(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000), .tv_nsec = (long) (usec % 1000000) * 1000 };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

/* The vCPU thread's CPU time; a failed read is a failure of the test,
 * reported here once. */
static int read_vcpu_usec(KHost *h, pid_t pid, pid_t vcpu, uint64_t *ret) {
        int r = kh_thread_cpu_usec(h, pid, vcpu, ret);

        if (r < 0)
                fprintf(stderr, "FAIL: reading the CPU time of thread %d of %d: %s\n", (int) vcpu, (int) pid,
                        strerror(-r));
        return r;
}

/* One look of the bank (at *ret_t), between two reads of the vCPU thread's
 * CPU time; *ret_u is their midpoint, *ret_width how far apart they were.
 * Retried until they are within BRACKET_USEC: inside a TCG guest on a busy
 * host the guest's clock can jump by milliseconds between two instructions,
 * and a look and a read that far apart would credit the ledger with CPU
 * time that the measurement does not count, or the other way round.  After
 * BRACKET_TRIES the last one counts, and its width is printed. */
static int look_bracketed(CreditBank *bank, KHost *h, pid_t pid, pid_t vcpu, uint64_t *ret_t, uint64_t *ret_u,
                          uint64_t *ret_width) {
        uint64_t ua, ub, t;
        int r;

        for (int i = 0;; i++) {
                r = read_vcpu_usec(h, pid, vcpu, &ua);
                if (r < 0)
                        return r;
                t = now_usec();
                r = credit_bank_tick(bank, t);
                if (r < 0) {
                        fprintf(stderr, "FAIL: a look of the bank: %s\n", strerror(-r));
                        return r;
                }
                r = read_vcpu_usec(h, pid, vcpu, &ub);
                if (r < 0)
                        return r;
                if (ub - ua <= BRACKET_USEC || i == BRACKET_TRIES - 1)
                        break;
        }
        *ret_t = t;
        *ret_u = ua + (ub - ua) / 2;
        *ret_width = ub - ua;
        return 0;
}

/* Waits until vCPU 0 is at the boot sector's "jmp $" (real mode, loaded at
 * 0000:7c00), asking QEMU for its registers.  Under TCG the saved EIP is
 * where the vCPU last left translated code: once the loop runs, 7c00. */
static int wait_boot_sector(Qmp *q, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        int r;

        for (;;) {
                _cleanup_free_ char *reply = NULL;
                QmpError qerr = { 0 };

                r = qmp_execute_sync(q, "human-monitor-command", "{\"command-line\":\"info registers\"}",
                                     QMP_TIMEOUT_MS, &reply, &qerr);
                if (r < 0) {
                        fprintf(stderr, "QMP info registers: %s%s%s\n", strerror(-r), qerr.desc ? ": " : "",
                                qerr.desc ? qerr.desc : "");
                        qmp_error_done(&qerr);
                        return r;
                }
                if (strstr(reply, "EIP=00007c00"))
                        return 0;
                if (now_usec() > deadline) {
                        fprintf(stderr, "the guest did not reach its boot sector in %" PRIu64 " s; registers: %s\n",
                                timeout_usec / USEC_PER_SEC, reply);
                        return -ETIMEDOUT;
                }
                sleep_until(now_usec() + 200000);
        }
}

/* Starts QEMU, binds its threads into vm's groups and waits until its
 * vCPU spins.  1: QEMU is not installed (a skip); < 0: a failure. */
static int start_qemu(KHost *h, const VmId *vm, TestQemu **ret_qemu, pid_t *ret_pid, pid_t *ret_vcpu) {
        const TestQemuOptions opts = { .smp = 1, .uuid = VM_UUID, .start_timeout_ms = QEMU_START_TIMEOUT_MS };
        const char *configured = getenv("VMMGR_QEMU");
        VmThreadRoles roles = { 0 };
        QmpError qerr = { 0 };
        char *reason = NULL;
        Qmp *q = NULL;
        uint64_t t_start = now_usec(), t_up, t_spin;
        pid_t pid, vcpu;
        int r;

        r = test_qemu_start(&opts, ret_qemu);
        if (r == -ENOENT && !(configured && *configured)) {
                puts("SKIP: qemu-system-x86_64 is not installed (Debian: qemu-system-x86)");
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "FAIL: QEMU (%s) did not start: %s\n",
                        configured && *configured ? configured : "qemu-system-x86_64",
                        r == -ECHILD        ? "it exited during start-up"
                        : r == -ETIMEDOUT   ? "no QMP socket in time"
                        : r == -ENOENT || r == -ENOEXEC ? "it cannot be run"
                                            : strerror(-r));
                return r;
        }
        t_up = now_usec();
        pid = test_qemu_pid(*ret_qemu);
        r = qmp_connect_sync(test_qemu_qmp_path(*ret_qemu, 0), QMP_TIMEOUT_MS, &q, &reason);
        if (r < 0)
                fprintf(stderr, "FAIL: QMP connect: %s%s%s\n", strerror(-r), reason ? ": " : "", reason ? reason : "");
        free(reason);
        if (r == 0) {
                r = test_thread_roles_query(q, QMP_TIMEOUT_MS, &roles, &qerr);
                if (r < 0)
                        fprintf(stderr, "FAIL: QEMU's thread roles: %s\n", strerror(-r));
        }
        if (r == 0) {
                r = vm_bind(h, vm, pid, &roles, NULL);
                if (r < 0)
                        fprintf(stderr, "FAIL: binding QEMU's threads: %s\n", strerror(-r));
        }
        vcpu = r == 0 && roles.n_vcpus == 1 ? roles.vcpus[0] : 0;
        if (r == 0 && vcpu == 0) {
                fprintf(stderr, "FAIL: QEMU named %zu vCPU threads, expected 1\n", roles.n_vcpus);
                r = -EPROTO;
        }
        if (r == 0) {
                r = wait_boot_sector(q, BOOT_SECTOR_TIMEOUT_USEC);
                if (r < 0)
                        fprintf(stderr, "FAIL: the guest's vCPU never reached its spinning boot sector\n");
        }
        t_spin = now_usec();
        vm_thread_roles_done(&roles);
        qmp_error_done(&qerr);
        qmp_free(q);
        if (r < 0)
                return r;
        printf("real QEMU VM: pid %d, vCPU thread %d; QEMU up in %.1f s, guest spinning %.1f s later\n", (int) pid,
               (int) vcpu, (double) (t_up - t_start) / 1e6, (double) (t_spin - t_up) / 1e6);
        *ret_pid = pid;
        *ret_vcpu = vcpu;
        return 0;
}

static int start_spinner(KHost *h, const VmId *vm, pid_t *ret_child) {
        pid_t child = fork();
        int r;

        if (child < 0)
                return negative_errno();
        if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        __asm__ volatile("" ::: "memory");
        }
        *ret_child = child;
        r = kh_vm_attach_process(h, vm, child);
        if (r == 0)
                r = kh_vm_attach_thread(h, vm, CG_ROLE_VCPUS, child);
        if (r < 0) {
                fprintf(stderr, "FAIL: attaching the spinner: %s\n", strerror(-r));
                return r;
        }
        printf("a spinning process stands in for the vCPU (pid %d)\n", (int) child);
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_khost_ KHost *h = NULL;
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree };
        const CreditSpec spec = { .vcpus = 1, .baseline_ppm = 200000, .cap_usec = 6000000,
                                  .launch_usec = 3000000, .mode = CREDIT_MODE_STANDARD };
        CreditBankKind kind = CREDIT_BANK_EMULATED;
        CreditBank *bank = NULL;
        CreditSnapshot s0, s;
        HostFeatures f;
        uint64_t t0 = 0, u0 = 0, u, t, burst_used = 0, base_used = 0, base_from = 0, burst_end = 0;
        uint64_t bracket0 = 0, bracket1 = 0;
        int64_t avail0 = 0;
        double burst_pct, base_pct, err_pct, instant_err_pct, ledger_err_pct;
        int64_t window_sum = 0; /* received - entitled over the last second's looks */
        int window_n = 0;
        int64_t entitled;
        int failures = 0, r;
        bool skip = false, verbose = false, spinner = false, strict = false;
        const char *mode;
        pid_t child = 0, pid = 0, vcpu = 0;
        TestQemu *qemu = NULL;
        VmId vm;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "-v") == 0)
                        verbose = true;
                else if (strcmp(argv[i], "--spinner") == 0)
                        spinner = true;
                else if (strcmp(argv[i], "--strict") == 0)
                        strict = true;
                else {
                        fprintf(stderr, "usage: %s [-v] [--spinner] [--strict]\n", argv[0]);
                        return 2;
                }
        }
        mode = spinner ? "spinner" : "real";
        snprintf(subtree, sizeof(subtree), "vmmgr-test-%d", (int) getpid());
        if (geteuid() != 0) {
                puts("SKIP: needs root to create cgroups");
                return 77;
        }
        if (kh_open(&cfg, &h) < 0 || !kh_manages(h, CG_CTRL_CPU) || kh_subtree_setup(h) < 0) {
                puts("SKIP: no writable cpu controller here");
                return 77;
        }
        if (kh_probe(h, &f) == 0 && host_features_kernel_bank(&f))
                kind = CREDIT_BANK_KERNEL;
        host_features_done(&f);
        vm_id_parse(VM_UUID, &vm);
        r = kh_vm_create(h, &vm);
        if (r < 0) {
                fprintf(stderr, "vm create: %s\n", strerror(-r));
                (void) kh_subtree_remove(h);
                return 1;
        }
        r = spinner ? start_spinner(h, &vm, &child) : start_qemu(h, &vm, &qemu, &pid, &vcpu);
        if (r > 0) {
                skip = true;
                goto out;
        }
        if (r < 0) {
                failures++;
                goto out;
        }
        if (spinner)
                pid = vcpu = child;

        r = credit_bank_new(h, &vm, &spec, kind, NULL, NULL, UINT64_MAX, now_usec(), &bank);
        if (r < 0) {
                fprintf(stderr, "FAIL: bank: %s\n", strerror(-r));
                failures++;
                goto out;
        }
        /* Start both measurements at one instant: a look of the bank and
         * the thread's own counter.  What the VM spent between the bank's
         * creation and this look is charged before s0; what it may receive
         * from here is what it had available then plus what it earns. */
        if (look_bracketed(bank, h, pid, vcpu, &t0, &u0, &bracket0) < 0) {
                failures++;
                goto out;
        }
        credit_bank_snapshot(bank, &s0);
        avail0 = credit_ledger_available(&s0.ledger);
        printf("%s bank, cgroup v%d; time series (t, balance+launch, usage %% over the last second):\n",
               credit_bank_kind_to_string(kind), kh_controller_version(h, CG_CTRL_CPU));
        {
                uint64_t last_u = u0, last_t = t0;
                for (t = t0 + TICK_USEC; t <= t0 + RUN_SEC * 1000000; t += TICK_USEC) {
                        sleep_until(t);
                        r = credit_bank_tick(bank, now_usec());
                        if (r < 0) {
                                fprintf(stderr, "tick: %s\n", strerror(-r));
                                failures++;
                                goto out;
                        }
                        credit_bank_snapshot(bank, &s);
                        /* Credits are spent once the ledger has landed (at most a
                         * tick's earnings left): for both banks, since a kernel
                         * bank's quota is always set (it is the earn rate). */
                        if (!burst_end && credit_ledger_available(&s.ledger) <=
                                                  credit_earn_per_sec(&spec) * (int64_t) TICK_USEC / 1000000) {
                                burst_end = now_usec();
                                if (read_vcpu_usec(h, pid, vcpu, &u) < 0) {
                                        failures++;
                                        goto out;
                                }
                                burst_used = u - u0;
                        }
                        if (burst_end && !base_from && now_usec() >= burst_end + 2000000) {
                                base_from = now_usec();
                                if (read_vcpu_usec(h, pid, vcpu, &base_used) < 0) {
                                        failures++;
                                        goto out;
                                }
                        }
                        if (t > t0 + (RUN_SEC * 1000000 - WINDOW_TICKS * TICK_USEC)) {
                                if (read_vcpu_usec(h, pid, vcpu, &u) < 0) {
                                        failures++;
                                        goto out;
                                }
                                window_sum += (int64_t) (u - u0) -
                                              (avail0 + (int64_t) (s.ledger.earned_usec - s0.ledger.earned_usec));
                                window_n++;
                        }
                        if ((t - t0) % 1000000 == 0 || verbose) {
                                if (read_vcpu_usec(h, pid, vcpu, &u) < 0) {
                                        failures++;
                                        goto out;
                                }
                                printf("  t=%5.1f s  credits %7.3f CPU-s  usage %6.2f %%  %s",
                                       (double) (t - t0) / 1e6,
                                       (double) credit_ledger_available(&s.ledger) / 1e6,
                                       (double) (u - last_u) * 100.0 / (double) (now_usec() - last_t),
                                       credit_state_to_string(s.state));
                                if (s.enforcement.quota_usec == CREDIT_QUOTA_UNLIMITED)
                                        printf("  (unlimited)\n");
                                else
                                        printf("  (%" PRIu64 "/%" PRIu64 " us)\n", s.enforcement.quota_usec,
                                               s.enforcement.period_usec);
                                last_u = u;
                                last_t = now_usec();
                        }
                }
        }
        /* Bring the ledger to this instant: the last tick may be up to a
         * tick old, and at baseline that is 20 ms of usage and earnings. */
        if (look_bracketed(bank, h, pid, vcpu, &t, &u, &bracket1) < 0) {
                failures++;
                goto out;
        }
        credit_bank_snapshot(bank, &s);
        entitled = avail0 + (int64_t) (s.ledger.earned_usec - s0.ledger.earned_usec);
        burst_pct = burst_end ? (double) burst_used * 100.0 / (double) (burst_end - t0) : 0;
        base_pct = base_from ? (double) (u - base_used) * 100.0 / (double) (t - base_from) : 0;
        instant_err_pct = ((double) (u - u0) - (double) entitled) * 100.0 / (double) entitled;
        err_pct = window_n ? (double) window_sum / window_n * 100.0 / (double) entitled : instant_err_pct;
        ledger_err_pct = ((double) (s.ledger.spent_usec - s0.ledger.spent_usec) - (double) (u - u0)) * 100.0 /
                         (double) (u - u0);
        printf("received %.6f CPU-s, entitled %.6f (available at the start %.6f + earned %.6f): %+.4f %% at "
               "the end, %+.4f %% over the last second\n",
               (double) (u - u0) / 1e6, (double) entitled / 1e6, (double) avail0 / 1e6,
               (double) (s.ledger.earned_usec - s0.ledger.earned_usec) / 1e6, instant_err_pct, err_pct);
        printf("first and last look: between reads %" PRIu64 " and %" PRIu64 " us apart\n", bracket0, bracket1);
        printf("ledger spent %.6f CPU-s vs measured: %+.4f %%; balance moved %+.6f = earned - spent + launch "
               "used; bandwidth writes %" PRIu64 "\n",
               (double) (s.ledger.spent_usec - s0.ledger.spent_usec) / 1e6, ledger_err_pct,
               (double) (credit_ledger_available(&s.ledger) - credit_ledger_available(&s0.ledger)) / 1e6,
               s.bandwidth_writes);
        printf("figure: credits.%s.burst_cpu_pct %.2f %%\n", mode, burst_pct);
        printf("figure: credits.%s.baseline_cpu_pct %.2f %%\n", mode, base_pct);
        printf("figure: credits.%s.entitlement_error_pct %.4f %%\n", mode, err_pct);
        printf("figure: credits.%s.ledger_error_pct %.4f %%\n", mode, ledger_err_pct);
        {
                /* Behaviour (the test) or accuracy (the bench, --strict). */
                const double burst_min = strict ? 95.0 : 80.0, base_lo = strict ? 18.0 : 15.0,
                             base_hi = strict ? 22.0 : 25.0, err_max = strict ? 0.1 : 0.5;

                if (!burst_end) {
                        fprintf(stderr, "FAIL: the launch credits were never spent\n");
                        failures++;
                } else if (burst_pct < burst_min) {
                        fprintf(stderr, "FAIL: burst %.2f %% < %.0f %%\n", burst_pct, burst_min);
                        failures++;
                }
                if (!base_from) {
                        fprintf(stderr, "FAIL: no baseline stretch to measure\n");
                        failures++;
                } else if (base_pct < base_lo || base_pct > base_hi) {
                        fprintf(stderr, "FAIL: baseline %.2f %% not within %.0f..%.0f %%\n", base_pct, base_lo,
                                base_hi);
                        failures++;
                }
                if (err_pct < -err_max || err_pct > err_max) {
                        fprintf(stderr, "FAIL: received vs entitled %+.4f %% beyond %.1f %%\n", err_pct, err_max);
                        failures++;
                }
                if (ledger_err_pct < -err_max || ledger_err_pct > err_max) {
                        fprintf(stderr, "FAIL: ledger vs measured %+.4f %% beyond %.1f %%\n", ledger_err_pct,
                                err_max);
                        failures++;
                }
        }
out:
        credit_bank_free(bank);
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
        }
        test_qemu_stop(qemu);
        if (kh_vm_remove(h, &vm) < 0 || kh_subtree_remove(h) < 0) {
                fprintf(stderr, "FAIL: cleanup\n");
                failures++;
        }
        if (skip && !failures)
                return 77;
        puts(failures ? "FAIL" : "PASS");
        return failures ? 1 : 0;
}
