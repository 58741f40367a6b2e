/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel suite: per-thread taskstats on this host's kernel.
 *
 * Two threads of this process, one spinning and one blocked in read(2),
 * are asked about over one kept-open taskstats socket before and after a
 * second: the spinner's CPU time grows, the sleeper's does not, both have
 * run (cpu_count > 0), and the virtual run time agrees with schedstat.  A
 * reaped child's pid gives -ESRCH.  With kernel.task_delayacct = 0 (it is
 * never changed here: the host is not ours) the delays other than the
 * CPU's must be zero, and the test says so.  Where vmmgr can create groups
 * on the cpu controller, kh_vm_delays() sums a spinning child placed as a
 * VM's vCPU.
 * Exit: 0 pass, 1 fail, 77 skip (not root, no TASKSTATS family).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "tests/common/check.h"

#define EXIT_SKIP 77
#define MSEC_NS UINT64_C(1000000)


static atomic_bool stop;
static atomic_int spinner_tid, sleeper_tid;
static int sleeper_pipe[2] = { -1, -1 };

static void *spinner(void *arg) {
        atomic_store(&spinner_tid, gettid());
        while (!atomic_load_explicit(&stop, memory_order_relaxed))
                __asm__ volatile("" ::: "memory");
        return NULL;
}

/* Blocked in read(2) until the write end closes: it never runs meanwhile. */
static void *sleeper(void *arg) {
        char c;

        atomic_store(&sleeper_tid, gettid());
        while (read(sleeper_pipe[0], &c, 1) < 0 && errno == EINTR)
                ;
        return NULL;
}

static bool memory_delays_zero(const ThreadDelays *d) {
        return d->blkio_delay_ns == 0 && d->blkio_count == 0 && d->swapin_delay_ns == 0 &&
               d->freepages_delay_ns == 0 && d->thrashing_delay_ns == 0 && d->compact_delay_ns == 0 &&
               d->wpcopy_delay_ns == 0;
}

static void print_delays(const char *name, const ThreadDelays *d) {
        printf("%-8s v%u have %#x delayacct %d: run real %" PRIu64 " ms virtual %" PRIu64 " ms, cpu %" PRIu64
               " waits %" PRIu64 " us, blkio %" PRIu64 " us, swapin %" PRIu64 " us, reclaim %" PRIu64
               " us, thrashing %" PRIu64 " us\n",
               name, d->version, d->have, (int) d->delayacct, d->cpu_run_real_ns / MSEC_NS,
               d->cpu_run_virtual_ns / MSEC_NS, d->cpu_count, d->cpu_delay_ns / 1000, d->blkio_delay_ns / 1000,
               d->swapin_delay_ns / 1000, d->freepages_delay_ns / 1000, d->thrashing_delay_ns / 1000);
}

static void wait_for_tids(void) {
        while (atomic_load(&spinner_tid) == 0 || atomic_load(&sleeper_tid) == 0)
                usleep(1000);
        usleep(20000); /* let the sleeper reach read(2) */
}

static void check_gone(KTaskstats *t) {
        ThreadDelays d;
        pid_t child = fork();

        if (child == 0)
                _exit(0);
        CHECK(child > 0, "fork");
        if (child <= 0)
                return;
        /* Once reaped, the pid is no task at all. */
        CHECK(waitpid(child, NULL, 0) == child, "waitpid");
        CHECK(kh_taskstats_thread(t, child, &d) == -ESRCH, "a reaped pid must give -ESRCH");
        CHECK(kh_taskstats_thread(t, 0, &d) == -EINVAL, "tid 0 must give -EINVAL");
}

/* Many queries on the one socket: each answer is for its own request. */
static void check_reuse(KTaskstats *t, pid_t tid) {
        uint64_t prev = 0, t0 = now_nsec();
        ThreadDelays d;
        int r = 0, i;

        for (i = 0; i < 2000; i++) {
                r = kh_taskstats_thread(t, tid, &d);
                if (r < 0 || d.cpu_run_virtual_ns < prev)
                        break;
                prev = d.cpu_run_virtual_ns;
        }
        CHECK(i == 2000, "query %d of 2000: %s, run time went back: %s", i, strerror(-r),
              r == 0 ? "yes" : "no");
        printf("2000 queries on one socket: %.1f us each\n", (double) (now_nsec() - t0) / 2000 / 1000);
}

/* The spinner's schedstat brackets the virtual run time taskstats gives
 * (both are the scheduler's sum_exec_runtime). */
static void check_against_schedstat(KHost *h, KTaskstats *t, pid_t tid) {
        uint64_t before_usec, after_usec;
        ThreadDelays d;
        int r;

        r = kh_thread_cpu_usec(h, getpid(), tid, &before_usec);
        CHECK(r == 0, "schedstat: %s", strerror(-r));
        r = kh_taskstats_thread(t, tid, &d);
        CHECK(r == 0, "taskstats: %s", strerror(-r));
        CHECK(kh_thread_cpu_usec(h, getpid(), tid, &after_usec) == 0, "schedstat");
        if (r < 0 || d.cpu_run_virtual_ns == 0) {
                printf("no virtual run time (kernel without CONFIG_TASK_DELAY_ACCT?): not compared\n");
                return;
        }
        CHECK(d.cpu_run_virtual_ns >= before_usec * NSEC_PER_USEC &&
                      d.cpu_run_virtual_ns <= (after_usec + 1) * NSEC_PER_USEC,
              "virtual run time %" PRIu64 " ns outside schedstat's [%" PRIu64 ", %" PRIu64 "] us",
              d.cpu_run_virtual_ns, before_usec, after_usec);
}

/* kh_vm_delays over a VM's vCPU group holding one spinning child. */
static void check_vm_delays(KHost *h, KTaskstats *t) {
        ThreadDelays d;
        size_t n = 0;
        pid_t child;
        VmId vm;
        int r;

        if (!kh_manages(h, CG_CTRL_CPU) || kh_subtree_setup(h) < 0) {
                printf("kh_vm_delays: not checked (no writable cpu controller)\n");
                return;
        }
        vm_id_parse("6c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5", &vm);
        r = kh_vm_create(h, &vm);
        CHECK(r >= 0, "vm create: %s", strerror(-r));
        child = fork();
        if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        __asm__ volatile("" ::: "memory");
        }
        CHECK(child > 0, "fork");
        r = kh_vm_attach_process(h, &vm, child);
        CHECK(r == 0, "attach: %s", strerror(-r));
        r = kh_vm_attach_thread(h, &vm, CG_ROLE_VCPUS, child);
        CHECK(r == 0, "attach vcpu: %s", strerror(-r));
        usleep(300000);
        r = kh_vm_delays(h, t, &vm, CG_ROLE_VCPUS, &d, &n);
        CHECK(r == 0, "kh_vm_delays: %s", strerror(-r));
        if (r == 0) {
                print_delays("vm vcpus", &d);
                CHECK(n == 1, "one vCPU thread, summed %zu", n);
                CHECK(d.cpu_run_real_ns > 50 * MSEC_NS, "the vCPU ran only %" PRIu64 " ns in 300 ms",
                      d.cpu_run_real_ns);
        }
        r = kh_vm_delays(h, t, &vm, CG_ROLE_IO, &d, &n);
        CHECK(r == 0 && n == 0 && d.cpu_run_real_ns == 0, "empty io group: r=%d n=%zu", r, n);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        r = kh_vm_remove(h, &vm);
        CHECK(r == 0, "vm remove: %s", strerror(-r));
        r = kh_subtree_remove(h);
        CHECK(r == 0, "subtree remove: %s", strerror(-r));
}

int main(void) {
        _cleanup_taskstats_ KTaskstats *t = NULL;
        _cleanup_khost_ KHost *h = NULL;
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree };
        ThreadDelays spin0, spin1, sleep0, sleep1;
        pthread_t th_spin, th_sleep;
        bool acct_before = false, acct_after = false;
        int acct_r, r;
        uint64_t w0, w1;
        double wall_ms;

        if (geteuid() != 0) {
                printf("SKIP: needs root\n");
                return EXIT_SKIP;
        }
        r = kh_taskstats_open(&t);
        if (r == -EOPNOTSUPP) {
                printf("SKIP: no TASKSTATS generic netlink family in this kernel\n");
                return EXIT_SKIP;
        }
        CHECK(r == 0, "taskstats open: %s", strerror(-r));
        if (r < 0)
                return 1;
        snprintf(subtree, sizeof(subtree), "vmmgr-test-%d", (int) getpid());
        if (kh_open(&cfg, &h) < 0)
                h = NULL; /* no cgroups: the per-thread part still runs */
        acct_r = h ? kh_delayacct_get(h, &acct_before) : -EOPNOTSUPP;
        printf("kernel.task_delayacct: %s\n",
               acct_r < 0 ? strerror(-acct_r) : acct_before ? "1" : "0");

        CHECK(pipe(sleeper_pipe) == 0, "pipe");
        CHECK(pthread_create(&th_spin, NULL, spinner, NULL) == 0, "spinner thread");
        CHECK(pthread_create(&th_sleep, NULL, sleeper, NULL) == 0, "sleeper thread");
        wait_for_tids();

        w0 = now_nsec();
        r = kh_taskstats_thread(t, atomic_load(&spinner_tid), &spin0);
        CHECK(r == 0, "spinner: %s", strerror(-r));
        r = kh_taskstats_thread(t, atomic_load(&sleeper_tid), &sleep0);
        CHECK(r == 0, "sleeper: %s", strerror(-r));
        sleep(1);
        r = kh_taskstats_thread(t, atomic_load(&spinner_tid), &spin1);
        CHECK(r == 0, "spinner: %s", strerror(-r));
        r = kh_taskstats_thread(t, atomic_load(&sleeper_tid), &sleep1);
        CHECK(r == 0, "sleeper: %s", strerror(-r));
        w1 = now_nsec();
        if (failures)
                return 1;
        wall_ms = (double) (w1 - w0) / 1e6;
        print_delays("spinner", &spin1);
        print_delays("sleeper", &sleep1);
        printf("over %.0f ms: spinner ran %.1f ms (real) %.1f ms (virtual), sleeper %.3f ms, %" PRIu64
               " switches in\n",
               wall_ms, (double) (spin1.cpu_run_real_ns - spin0.cpu_run_real_ns) / 1e6,
               (double) (spin1.cpu_run_virtual_ns - spin0.cpu_run_virtual_ns) / 1e6,
               (double) (sleep1.cpu_run_real_ns - sleep0.cpu_run_real_ns) / 1e6,
               sleep1.cpu_count - sleep0.cpu_count);

        CHECK(spin1.have & THREAD_DELAYS_CPU && spin1.version >= 1, "no CPU fields (version %u)", spin1.version);
        CHECK(spin1.cpu_count > 0 && sleep1.cpu_count > 0, "both threads have run: cpu_count %" PRIu64 " / %" PRIu64,
              spin1.cpu_count, sleep1.cpu_count);
        /* Tick-sampled utime + stime: a spinner that got a tenth of a CPU
         * on a busy host still shows far more than a tick or two. */
        CHECK(spin1.cpu_run_real_ns - spin0.cpu_run_real_ns >= (uint64_t) (wall_ms * 0.1 * 1e6),
              "spinner's run time grew only %" PRIu64 " ns in %.0f ms",
              spin1.cpu_run_real_ns - spin0.cpu_run_real_ns, wall_ms);
        CHECK(spin1.cpu_run_real_ns >= spin0.cpu_run_real_ns && spin1.cpu_count >= spin0.cpu_count,
              "spinner's counters went back");
        CHECK(sleep1.cpu_run_real_ns - sleep0.cpu_run_real_ns <= 10 * MSEC_NS,
              "blocked sleeper ran %" PRIu64 " ns", sleep1.cpu_run_real_ns - sleep0.cpu_run_real_ns);
        CHECK(sleep1.cpu_count == sleep0.cpu_count && sleep1.cpu_run_virtual_ns == sleep0.cpu_run_virtual_ns,
              "a thread blocked in read(2) was scheduled %" PRIu64 " times",
              sleep1.cpu_count - sleep0.cpu_count);
        if (spin1.cpu_run_virtual_ns > 0)
                CHECK(spin1.cpu_run_virtual_ns - spin0.cpu_run_virtual_ns >= (uint64_t) (wall_ms * 0.1 * 1e6),
                      "spinner's virtual run time grew only %" PRIu64 " ns",
                      spin1.cpu_run_virtual_ns - spin0.cpu_run_virtual_ns);

        /* The switch as each reply saw it agrees with the sysctl. */
        if (acct_r == 0) {
                if (h)
                        CHECK(kh_delayacct_get(h, &acct_after) == 0, "delayacct get");
                if (acct_before == acct_after)
                        CHECK(spin1.delayacct == (acct_before ? TRI_YES : TRI_NO), "delayacct in the reply %d",
                              (int) spin1.delayacct);
                if (!acct_before && !acct_after) {
                        /* Threads created while it is off get no delay record. */
                        CHECK(memory_delays_zero(&spin1) && memory_delays_zero(&sleep1),
                              "task_delayacct=0 but memory/io delays are not zero");
                        printf("kernel.task_delayacct = 0: block I/O, swap-in, reclaim, thrashing delays are "
                               "zero, as documented (CPU delays are counted anyway: %" PRIu64 " us)\n",
                               spin1.cpu_delay_ns / 1000);
                }
        }
        if (h)
                check_against_schedstat(h, t, atomic_load(&spinner_tid));
        check_reuse(t, atomic_load(&spinner_tid));
        check_gone(t);

        atomic_store(&stop, true);
        close(sleeper_pipe[1]);
        pthread_join(th_spin, NULL);
        pthread_join(th_sleep, NULL);
        close(sleeper_pipe[0]);

        if (h)
                check_vm_delays(h, t);

        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("PASS\n");
        return 0;
}
