/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Real-kernel tier: per-thread delay accounting (taskstats) of a VM's
 * threads on a real cgroup v2, run inside the test kernels by
 * tests/realkernel/check.  The machine is ours, so the test switches
 * kernel.task_delayacct on (and back to what it was at the end).
 *
 * A child process stands in for QEMU: two "vCPU" threads spin, both pinned
 * to CPU 0, and an "iothread" keeps touching new anonymous memory in a VM
 * whose memory.high is 16 MiB.  Then:
 *   - each spinner waited for the CPU (cpu_delay_ns) a good part of the
 *     time and ran the rest;
 *   - the toucher shows direct reclaim stalls (freepages_delay_ns > 0: the
 *     kernel reclaims from the group on its way back to user space; there
 *     is no swap, so little is reclaimed, but the time in reclaim counts);
 *   - kh_vm_delays() sums the role groups (2 vCPUs, 1 iothread, 1 emulator
 *     thread);
 *   - a control process started *before* the switch was turned on, under
 *     the same pressure in a second VM, has no memory delays (the kernel
 *     gives a thread its delay record at fork only), while memory.events
 *     shows it was pushed over memory.high;
 *   - the spinners' tids, once the child is reaped, give -ESRCH.
 * Exit: 0 pass, 1 fail, 77 skip (no memory or cpu controller on v2, no
 * TASKSTATS): inside a test kernel a skip is a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "tests/common/check.h"

#define MIB (UINT64_C(1) << 20)
#define MSEC_NS UINT64_C(1000000)
#define HIGH_BYTES (16 * MIB)
#define TOUCH_BYTES (128 * MIB)
#define CONTENTION_SEC 3
#define RECLAIM_WAIT_SEC 30


/* ---- the stand-in VM process ------------------------------------------- */

enum { ROLE_MAIN, ROLE_SPINNER, ROLE_TOUCHER };

/* Each thread sends its own tid; a write this small to a pipe is atomic. */
typedef struct TidMsg {
        int role;
        pid_t tid;
} TidMsg;

typedef struct Child {
        pid_t pid;
        int go_fd; /* parent's end: a byte starts the toucher */
        pid_t main_tid, toucher;
        pid_t spinner[2];
        int n_spinners;
} Child;

static int child_tid_fd = -1, child_go_fd = -1;

static void send_tid(int role) {
        TidMsg m = { .role = role, .tid = gettid() };

        if (write(child_tid_fd, &m, sizeof(m)) != (ssize_t) sizeof(m))
                _exit(2);
}

/* Pinned to CPU 0, again whenever it finds itself elsewhere: moving a
 * thread into a cpuset group may reset its affinity to the group's CPUs. */
static void *spin_on_cpu0(void *arg) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(0, &set);
        send_tid(ROLE_SPINNER);
        for (;;) {
                if (sched_getcpu() != 0 && sched_setaffinity(0, sizeof(set), &set) < 0)
                        _exit(3);
                for (int i = 0; i < 100000; i++)
                        __asm__ volatile("" ::: "memory");
        }
        return NULL;
}

/* Touches one new page after another: every charge past memory.high makes
 * the kernel reclaim from the group before returning to user space. */
static void *touch_memory(void *arg) {
        char c;
        char *p;

        send_tid(ROLE_TOUCHER);
        if (read(child_go_fd, &c, 1) != 1)
                _exit(4);
        p = mmap(NULL, TOUCH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                _exit(5);
        for (size_t i = 0; i < TOUCH_BYTES; i += 4096)
                p[i] = 1;
        for (;;)
                pause();
        return NULL;
}

/* The child's threads are created here, so they get a delay record only
 * if kernel.task_delayacct is on at this moment. */
static _Noreturn void child_main(int spinners) {
        pthread_t th;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        send_tid(ROLE_MAIN);
        for (int i = 0; i < spinners; i++)
                if (pthread_create(&th, NULL, spin_on_cpu0, NULL) != 0)
                        _exit(2);
        if (pthread_create(&th, NULL, touch_memory, NULL) != 0)
                _exit(2);
        for (;;)
                pause();
}

static int child_start(Child *c, int spinners) {
        int tids[2], go[2];

        *c = (Child) { .go_fd = -1 };
        if (pipe2(tids, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                return negative_errno();
        c->pid = fork();
        if (c->pid < 0)
                return negative_errno();
        if (c->pid == 0) {
                close(tids[0]);
                close(go[1]);
                child_tid_fd = tids[1];
                child_go_fd = go[0];
                child_main(spinners);
        }
        close(tids[1]);
        close(go[0]);
        c->go_fd = go[1];
        for (int i = 0; i < spinners + 2; i++) {
                TidMsg m;

                if (read(tids[0], &m, sizeof(m)) != (ssize_t) sizeof(m)) {
                        close(tids[0]);
                        return -EIO;
                }
                if (m.role == ROLE_MAIN)
                        c->main_tid = m.tid;
                else if (m.role == ROLE_TOUCHER)
                        c->toucher = m.tid;
                else if (c->n_spinners < 2)
                        c->spinner[c->n_spinners++] = m.tid;
        }
        close(tids[0]);
        return 0;
}

static void child_go(Child *c) {
        CHECK(write(c->go_fd, "g", 1) == 1, "cannot start the toucher");
}

static void child_stop(Child *c) {
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
                c->pid = 0;
        }
        if (c->go_fd >= 0)
                close(c->go_fd);
        c->go_fd = -1;
}

/* ---- the checks ---------------------------------------------------------- */

static void print_delays(const char *name, const ThreadDelays *d) {
        printf("%-16s v%u delayacct %d: ran %" PRIu64 " ms, cpu wait %" PRIu64 " ms (%" PRIu64
               " runs), reclaim %" PRIu64 " us (%" PRIu64 "), thrashing %" PRIu64 " us, blkio %" PRIu64
               " us, swapin %" PRIu64 " us, compact %" PRIu64 " us\n",
               name, d->version, (int) d->delayacct, d->cpu_run_real_ns / MSEC_NS, d->cpu_delay_ns / MSEC_NS,
               d->cpu_count, d->freepages_delay_ns / 1000, d->freepages_count, d->thrashing_delay_ns / 1000,
               d->blkio_delay_ns / 1000, d->swapin_delay_ns / 1000, d->compact_delay_ns / 1000);
}

static int query(KTaskstats *t, pid_t tid, ThreadDelays *d) {
        int r = kh_taskstats_thread(t, tid, d);
        CHECK(r == 0, "taskstats of %d: %s", (int) tid, strerror(-r));
        return r;
}

static int setup_vm(KHost *h, const VmId *vm, Child *c) {
        MemLimits high = { .set = MEM_SET_HIGH, .high = HIGH_BYTES };
        int r;

        r = kh_vm_create(h, vm);
        if (r < 0)
                return r;
        r = kh_vm_attach_process(h, vm, c->pid);
        if (r < 0)
                return r;
        for (int i = 0; i < c->n_spinners; i++) {
                r = kh_vm_attach_thread(h, vm, CG_ROLE_VCPUS, c->spinner[i]);
                if (r < 0)
                        return r;
        }
        r = kh_vm_attach_thread(h, vm, CG_ROLE_IO, c->toucher);
        if (r < 0)
                return r;
        return kh_mem_set_limits(h, vm, &high, NULL);
}

/* Polls the toucher until the kernel has counted a reclaim stall. */
static void wait_for_reclaim(KTaskstats *t, pid_t toucher, ThreadDelays *ret) {
        uint64_t deadline = now_nsec() + RECLAIM_WAIT_SEC * NSEC_PER_SEC;

        do {
                if (query(t, toucher, ret) < 0 || ret->freepages_count > 0)
                        return;
                usleep(100000);
        } while (now_nsec() < deadline);
}

static void check_spinners(KTaskstats *t, const Child *c, const ThreadDelays before[2], uint64_t wall_ns) {
        for (int i = 0; i < 2; i++) {
                ThreadDelays d;
                uint64_t waited, ran;

                if (query(t, c->spinner[i], &d) < 0)
                        continue;
                print_delays(i == 0 ? "vcpu 0 (spinner)" : "vcpu 1 (spinner)", &d);
                waited = d.cpu_delay_ns - before[i].cpu_delay_ns;
                ran = d.cpu_run_virtual_ns - before[i].cpu_run_virtual_ns;
                printf("  over %" PRIu64 " ms on a shared CPU: ran %" PRIu64 " ms, waited %" PRIu64 " ms\n",
                       wall_ns / MSEC_NS, ran / MSEC_NS, waited / MSEC_NS);
                /* Two spinners on one CPU: each waits about half the time.
                 * A fifth leaves room for TCG and the kernel's own work. */
                CHECK(waited > wall_ns / 5, "spinner %d waited only %" PRIu64 " ns for its CPU", i, waited);
                CHECK(ran > wall_ns / 5, "spinner %d ran only %" PRIu64 " ns", i, ran);
                CHECK(d.cpu_count > before[i].cpu_count, "spinner %d was never switched in again", i);
        }
}

static void check_vm_sums(KHost *h, KTaskstats *t, const VmId *vm) {
        static const struct {
                CgRole role;
                size_t threads;
        } roles[] = { { CG_ROLE_VCPUS, 2 }, { CG_ROLE_IO, 1 }, { CG_ROLE_EMULATOR, 1 } };

        for (size_t i = 0; i < ARRAY_SIZE(roles); i++) {
                ThreadDelays d;
                size_t n = 0;
                char name[32];
                int r;

                r = kh_vm_delays(h, t, vm, roles[i].role, &d, &n);
                CHECK(r == 0, "kh_vm_delays(%s): %s", cg_role_to_string(roles[i].role), strerror(-r));
                if (r < 0)
                        continue;
                snprintf(name, sizeof(name), "vm %s (%zu)", cg_role_to_string(roles[i].role), n);
                print_delays(name, &d);
                CHECK(n == roles[i].threads, "%s: %zu threads summed, expected %zu",
                      cg_role_to_string(roles[i].role), n, roles[i].threads);
                CHECK(d.delayacct == TRI_YES, "%s: delayacct %d", cg_role_to_string(roles[i].role),
                      (int) d.delayacct);
                if (roles[i].role == CG_ROLE_VCPUS)
                        CHECK(d.cpu_delay_ns > 0 && d.cpu_run_real_ns > 0, "vcpus: no CPU wait or run summed");
                if (roles[i].role == CG_ROLE_IO)
                        CHECK(d.freepages_delay_ns > 0, "io: no reclaim stall summed");
        }
}

int main(void) {
        _cleanup_taskstats_ KTaskstats *t = NULL;
        KHostConfig cfg = { .subtree = "vmmgr-tstest" };
        _cleanup_khost_ KHost *h = NULL;
        Child c = { .go_fd = -1 }, control = { .go_fd = -1 };
        ThreadDelays d, before[2], ctl;
        VmId vm, vm_ctl;
        bool was = false, on = false;
        uint64_t t0;
        MemStat ms;
        int r;

        if (vm_id_parse("7d3c2b1a-0f9e-4d8c-8b7a-6c5d4e3f2a1b", &vm) < 0 ||
            vm_id_parse("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", &vm_ctl) < 0)
                return 1;
        if (geteuid() != 0 || kh_open(&cfg, &h) < 0 || !kh_manages(h, CG_CTRL_MEMORY) ||
            kh_controller_version(h, CG_CTRL_MEMORY) != CG_V2 || !kh_manages(h, CG_CTRL_CPU)) {
                puts("SKIP: vmmgr manages no cgroup v2 memory and cpu controllers here");
                return 77;
        }
        r = kh_taskstats_open(&t);
        if (r < 0) {
                printf("SKIP: no taskstats: %s\n", strerror(-r));
                return 77;
        }
        r = kh_subtree_setup(h);
        if (r < 0) {
                printf("SKIP: cannot set up the subtree: %s\n", strerror(-r));
                return 77;
        }
        r = kh_delayacct_get(h, &was);
        CHECK(r == 0, "delayacct get: %s", strerror(-r));
        printf("kernel.task_delayacct was %d\n", was);

        /* The control process: its threads exist before the switch. */
        if (!was) {
                r = child_start(&control, 0);
                CHECK(r == 0, "control process: %s", strerror(-r));
        }
        r = kh_delayacct_set(h, true);
        CHECK(r == 0, "delayacct set: %s", strerror(-r));
        CHECK(kh_delayacct_get(h, &on) == 0 && on, "task_delayacct did not switch on");

        r = child_start(&c, 2);
        CHECK(r == 0 && c.n_spinners == 2, "VM process: %s", strerror(-r));
        if (failures)
                goto out;
        r = setup_vm(h, &vm, &c);
        CHECK(r == 0, "VM setup: %s", strerror(-r));
        if (control.pid > 0) {
                r = setup_vm(h, &vm_ctl, &control);
                CHECK(r == 0, "control VM setup: %s", strerror(-r));
        }
        if (failures)
                goto out;

        /* CPU contention: two spinners pinned to CPU 0. */
        for (int i = 0; i < 2; i++)
                query(t, c.spinner[i], &before[i]);
        t0 = now_nsec();
        sleep(CONTENTION_SEC);
        check_spinners(t, &c, before, now_nsec() - t0);

        /* Memory: past memory.high, the toucher reclaims on every return
         * to user space. */
        child_go(&c);
        if (control.pid > 0)
                child_go(&control);
        wait_for_reclaim(t, c.toucher, &d);
        print_delays("io (toucher)", &d);
        CHECK(d.delayacct == TRI_YES, "delayacct %d in the reply", (int) d.delayacct);
        CHECK(d.have & THREAD_DELAYS_FREEPAGES, "no freepages fields (version %u)", d.version);
        CHECK(d.freepages_count > 0 && d.freepages_delay_ns > 0,
              "no direct reclaim stall counted in %d s past memory.high", RECLAIM_WAIT_SEC);
        r = kh_mem_read(h, &vm, &ms);
        CHECK(r == 0, "mem read: %s", strerror(-r));
        printf("VM memory.current %" PRIu64 " MiB, memory.events high %" PRIu64 "\n", ms.current / MIB, ms.ev_high);

        check_vm_sums(h, t, &vm);

        /* The control toucher was under the same pressure, but its thread
         * is older than the switch: no record, no memory delays. */
        if (control.pid > 0) {
                /* Its toucher started with the other one but may not be past
                 * 16 MiB yet when the other's stall is seen: wait for it. */
                uint64_t until = now_nsec() + (uint64_t) RECLAIM_WAIT_SEC * NSEC_PER_SEC;
                while ((r = kh_mem_read(h, &vm_ctl, &ms)) == 0 && ms.ev_high == 0 && now_nsec() < until)
                        usleep(50000);
                CHECK(r == 0 && ms.ev_high > 0, "control VM never went over memory.high in %d s",
                      RECLAIM_WAIT_SEC);
                if (query(t, control.toucher, &ctl) == 0) {
                        print_delays("control toucher", &ctl);
                        CHECK(ctl.freepages_count == 0 && ctl.freepages_delay_ns == 0,
                              "a thread created before the switch has reclaim delays");
                        CHECK(ctl.cpu_count > 0, "control toucher's CPU fields are counted anyway");
                        printf("control (created with task_delayacct=0): %" PRIu64
                               " memory.high events, reclaim delay %" PRIu64 " (none, as documented)\n",
                               ms.ev_high, ctl.freepages_delay_ns);
                }
        }

        /* Gone threads. */
        {
                pid_t gone = c.spinner[0];
                child_stop(&c);
                CHECK(kh_taskstats_thread(t, gone, &d) == -ESRCH, "a reaped thread must give -ESRCH");
        }

out:
        child_stop(&c);
        child_stop(&control);
        (void) kh_vm_remove(h, &vm);
        (void) kh_vm_remove(h, &vm_ctl);
        r = kh_subtree_remove(h);
        CHECK(r == 0, "subtree remove: %s", strerror(-r));
        r = kh_delayacct_set(h, was);
        CHECK(r == 0, "delayacct restore: %s", strerror(-r));
        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("PASS\n");
        return 0;
}
