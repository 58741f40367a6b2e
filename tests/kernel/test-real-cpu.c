/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel suite: CFS bandwidth on this host's real cpu controller (v1 or
 * v2, whichever holds cpu), inside a subtree of our own that is removed
 * at the end.  Exit status: 0 pass, 1 fail, 77 skip (meson's convention)
 * with a one-line reason when no writable cpu controller exists.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
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
#define QUOTA_USEC 20000
#define PERIOD_USEC 100000
#define RUN_SEC 3


static pid_t spawn_spinner(void) {
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        __asm__ volatile("" ::: "memory");
        }
        return pid;
}

static void kill_child(pid_t *pid) {
        if (*pid > 0) {
                kill(*pid, SIGKILL);
                waitpid(*pid, NULL, 0);
                *pid = 0;
        }
}

static int skip(const char *why) {
        printf("SKIP: %s\n", why);
        return EXIT_SKIP;
}

int main(void) {
        _cleanup_khost_ KHost *h = NULL;
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree };
        HostFeatures f;
        CpuBandwidth bw = { .period_usec = PERIOD_USEC, .quota_usec = QUOTA_USEC, .burst_usec = 0 };
        CpuStat s0, s1;
        uint64_t u0, u1, t0, t1;
        const char *reason = NULL;
        pid_t child = 0;
        VmId vm;
        int r;

        /* Our own subtree, so a running vmmgrd is never disturbed. */
        snprintf(subtree, sizeof(subtree), "vmmgr-test-%d", (int) getpid());
        if (geteuid() != 0)
                return skip("needs root to create cgroups");
        r = kh_open(&cfg, &h);
        if (r < 0)
                return skip("no cgroup hierarchies found");
        if (!kh_manages(h, CG_CTRL_CPU))
                return skip("no cpu controller mounted (v1 or v2)");
        r = kh_subtree_setup(h);
        if (r < 0) {
                printf("SKIP: cpu controller not writable here: %s\n", strerror(-r));
                return EXIT_SKIP;
        }
        printf("cpu controller: cgroup v%d, mode %s\n", kh_controller_version(h, CG_CTRL_CPU),
               cg_mode_to_string(kh_mode(h)));

        r = kh_probe(h, &f);
        CHECK(r == 0, "probe: %s", strerror(-r));

        vm_id_parse("3f0e8a52-7f64-4b8e-9d0c-5a1b2c3d4e5f", &vm);
        r = kh_vm_create(h, &vm);
        CHECK(r == 0, "vm create: %d", r);
        CHECK(kh_vm_create(h, &vm) == 1, "second create should adopt");

        child = spawn_spinner();
        CHECK(child > 0, "fork");
        r = kh_vm_attach_process(h, &vm, child);
        CHECK(r == 0, "attach process: %s", strerror(-r));
        r = kh_vm_attach_thread(h, &vm, CG_ROLE_VCPUS, child);
        CHECK(r == 0, "attach thread: %s", strerror(-r));
        {
                _cleanup_free_ pid_t *tids = NULL;
                size_t n = 0;
                r = kh_vm_threads(h, &vm, CG_ROLE_VCPUS, &tids, &n);
                CHECK(r == 0 && n == 1 && tids[0] == child, "the spinner is in vcpus (n=%zu)", n);
        }
        /* Attaching the process again must not pull the vCPU back out. */
        r = kh_vm_attach_process(h, &vm, child);
        CHECK(r == 0, "re-attach: %s", strerror(-r));
        {
                _cleanup_free_ pid_t *tids = NULL;
                size_t n = 0;
                r = kh_vm_threads(h, &vm, CG_ROLE_VCPUS, &tids, &n);
                CHECK(r == 0 && n == 1, "re-attach left the vCPU in place");
        }

        r = kh_cpu_set_bandwidth(h, &vm, CG_ROLE_VCPUS, &bw, &reason);
        CHECK(r >= 1, "set bandwidth: %s", strerror(-r));
        r = kh_cpu_set_bandwidth(h, &vm, CG_ROLE_VCPUS, &bw, &reason);
        CHECK(r == 0, "unchanged bandwidth must write nothing (wrote %d)", r);
        {
                CpuBandwidth got;
                r = kh_cpu_get_bandwidth(h, &vm, CG_ROLE_VCPUS, &got);
                CHECK(r == 0 && got.quota_usec == QUOTA_USEC && got.period_usec == PERIOD_USEC,
                      "read back bandwidth");
        }

        usleep(300000); /* settle into the throttled pattern */
        r = kh_thread_cpu_usec(h, child, child, &u0);
        CHECK(r == 0, "schedstat: %s", strerror(-r));
        r = kh_cpu_read_stat(h, &vm, CG_ROLE_VCPUS, &s0);
        CHECK(r == 0, "cpu.stat: %s", strerror(-r));
        t0 = now_usec();
        sleep(RUN_SEC);
        r = kh_thread_cpu_usec(h, child, child, &u1);
        CHECK(r == 0, "schedstat: %s", strerror(-r));
        r = kh_cpu_read_stat(h, &vm, CG_ROLE_VCPUS, &s1);
        CHECK(r == 0, "cpu.stat: %s", strerror(-r));
        t1 = now_usec();
        {
                double wall = (double) (t1 - t0);
                double by_schedstat = (double) (u1 - u0) / wall * 100.0;
                double by_cpustat = (double) (s1.usage_usec - s0.usage_usec) / wall * 100.0;

                printf("quota 20 ms / 100 ms over %.2f s: %.2f %% by schedstat, %.2f %% by cpu.stat usage; "
                       "throttled %" PRIu64 " of %" PRIu64 " periods\n",
                       wall / 1e6, by_schedstat, by_cpustat, s1.nr_throttled - s0.nr_throttled,
                       s1.nr_periods - s0.nr_periods);
                CHECK(by_schedstat >= 18.0 && by_schedstat <= 22.0, "schedstat %.2f %% not 20 +- 2", by_schedstat);
                CHECK(by_cpustat >= 18.0 && by_cpustat <= 22.0, "cpu.stat %.2f %% not 20 +- 2", by_cpustat);
                CHECK(s1.nr_throttled > s0.nr_throttled, "no throttling counted");
        }

        /* Burst above quota: refused with a clear reason on stock kernels. */
        bw.burst_usec = QUOTA_USEC * 2;
        r = kh_cpu_set_bandwidth(h, &vm, CG_ROLE_VCPUS, &bw, &reason);
        if (f.burst_above_quota == TRI_YES)
                CHECK(r >= 0, "kernel accepts burst above quota but the write failed: %s", strerror(-r));
        else {
                CHECK(r == -EINVAL, "burst above quota: expected EINVAL, got %d", r);
                CHECK(reason && strcmp(reason, "kernel rejects burst above quota") == 0,
                      "reason: %s", reason ? reason : "(none)");
                printf("burst above quota: %s\n", reason ? reason : "?");
        }

        /* Groups go away once the threads are gone, and only then. */
        CHECK(kh_vm_remove(h, &vm) == -EBUSY, "remove with a live thread must be EBUSY");
        kill_child(&child);
        r = kh_vm_remove(h, &vm);
        CHECK(r == 0, "remove: %s", strerror(-r));
        CHECK(kh_vm_exists(h, &vm) == 0, "VM group still exists");
        r = kh_subtree_remove(h);
        CHECK(r == 0, "subtree remove: %s", strerror(-r));
        host_features_done(&f);

        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("PASS\n");
        return 0;
}
