/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: what CPU credits cost vmmgr on this host's real cgroups.
 *
 * Emulated bank: 1,000 VMs, real groups on this host's cpu controller (v1
 * with cpuacct, or v2), under a subtree of our own (vmmgr-bench-<pid>, cpu
 * and cpuacct only), t3.* specs in standard mode, a third with launch
 * credits.  6 % of the VMs have a real process in vcpus (each spins 1 ms
 * every 50 ms, so counters move; 1.2 CPUs in all), the rest are idle.
 * Two schedules, measured on all 1,000 banks (nothing scaled): the process
 * CPU time of the tick rounds (not the sleeps) over their wall time,
 *   - every bank looked at on every 100 ms tick (the worst case: every VM
 *     landing at once): usage read(s) through the kept-open pread readers
 *     (cpuacct.usage alone while a v1 group has no quota, plus cpu.stat
 *     when it has one), the ledger, the decision, the rare cpu.max write;
 *   - as vmmgrd runs: a 100 ms tick that looks at a bank when
 *     credit_bank_next_tick_usec() says it is due.
 *
 * Kernel bank (no kernel here has cpu.max.runtime): an extrapolation, and
 * named so (*_extrapolated).  The syscalls of one look are measured on real
 * files of this host, pread of cpu.stat and of a one-number file standing
 * in for cpu.max.runtime (cpuacct.usage on v1, cpu.max on v2), plus a
 * one-value bandwidth write standing in for a relative runtime write, and
 * weighted by the reads and writes per look and the looks per second that
 * the model run sees (bench-credits-model; constants below, or argv).
 *
 * Everything created is removed on exit, also on failure and on SIGINT /
 * SIGTERM.  Not root or no cpu controller this host lets vmmgr manage:
 * SKIP, exit 77.  A host that has one but refuses 1,000 groups fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "kernel/kernel.h"
#include "policies/credits.h"
#include "vmmgr/engine/credit-bank.h"

#define N_VMS 1000 /* the figures' names say 1000vm: change both or neither */
#define N_BUSY 60  /* VMs with a real process in vcpus: 6 % */
#define BUSY_SPIN_USEC 1000
#define BUSY_PERIOD_USEC 50000 /* 2 % of a CPU each, 1.2 CPUs for the 60 */
#define TICK_USEC UINT64_C(100000)

static KHost *host;
static VmId vms[N_VMS];
static bool created[N_VMS];
static pid_t busy[N_BUSY];
static bool subtree_made;
static volatile sig_atomic_t stop;

static void sleep_until(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000), .tv_nsec = (long) (usec % 1000000) * 1000 };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
                ;
}

static void on_signal(int sig) {
        stop = 1;
}

/* Kills our processes and removes every group we made; returns the number
 * of failures. */
static int cleanup(void) {
        int failures = 0;

        for (size_t i = 0; i < N_BUSY; i++)
                if (busy[i] > 0) {
                        kill(busy[i], SIGKILL);
                        waitpid(busy[i], NULL, 0);
                        busy[i] = 0;
                }
        for (size_t i = 0; i < N_VMS; i++)
                if (created[i]) {
                        int r = kh_vm_remove(host, &vms[i]);

                        if (r < 0) {
                                fprintf(stderr, "remove %s: %s\n", vms[i].str, strerror(-r));
                                failures++;
                        } else
                                created[i] = false;
                }
        if (subtree_made) {
                int r = kh_subtree_remove(host);

                if (r < 0) {
                        fprintf(stderr, "remove subtree %s: %s\n", kh_subtree_name(host), strerror(-r));
                        failures++;
                } else
                        subtree_made = false;
        }
        return failures;
}

static void busy_loop(void) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
                uint64_t t = now_usec();

                while (now_usec() - t < BUSY_SPIN_USEC)
                        __asm__ volatile("" ::: "memory");
                usleep(BUSY_PERIOD_USEC - BUSY_SPIN_USEC);
        }
}

static const char *find_file(const char *mount, const char *group, const char *file, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s/%s", mount, group, file);
        return buf;
}

/* ns per pread(2) of a kept-open cgroup file, averaged. */
static double pread_ns(const char *path, int iters) {
        char buf[1024];
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        double c0, c1;

        if (fd < 0)
                return -1;
        c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < iters; i++)
                if (pread(fd, buf, sizeof(buf), 0) <= 0) {
                        close(fd);
                        return -1;
                }
        c1 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
        close(fd);
        return (c1 - c0) * 1e9 / iters;
}

/* ns per one-value write(2) to a kept-open cgroup file (the same value each
 * time), averaged. */
static double write_ns(const char *path, const char *value, int iters) {
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
        size_t len = strlen(value);
        double c0, c1;

        if (fd < 0)
                return -1;
        c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < iters; i++)
                if (write(fd, value, len) != (ssize_t) len) {
                        close(fd);
                        return -1;
                }
        c1 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
        close(fd);
        return (c1 - c0) * 1e9 / iters;
}

int main(int argc, char **argv) {
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree,
                            .controllers = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUACCT) };
        const CreditClass *presets;
        size_t n_presets = credit_class_presets(&presets);
        CreditBank *banks[N_VMS] = { 0 };
        int rounds = argc > 1 ? atoi(argv[1]) : 100, failures = 0, r;
        /* The kernel bank's schedule, from the model runs (bench-credits-model,
         * 1,000 VMs; see README): looks per VM per second and cpu.max.runtime
         * reads per look as vmmgrd schedules them after an hour, runtime
         * writes per look over 24 h (deep pools are topped up lazily). */
        double kernel_writes_per_look = argc > 2 ? strtod(argv[2], NULL) : 0.024;
        double kernel_looks_per_sec = argc > 3 ? strtod(argv[3], NULL) : 0.511;
        double kernel_reads_per_look = argc > 4 ? strtod(argv[4], NULL) : 0.806;
        double tick_cpu = 0, ns_tick, core_pct;
        uint64_t writes = 0, warm_writes = 0, t;
        struct sigaction sa = { .sa_handler = on_signal };

        snprintf(subtree, sizeof(subtree), "vmmgr-bench-%d", (int) getpid());
        if (geteuid() != 0) {
                puts("SKIP: needs root to create cgroups");
                return 77;
        }
        r = kh_open(&cfg, &host);
        if (r < 0 || !kh_manages(host, CG_CTRL_CPU)) {
                puts("SKIP: no cpu controller to manage here");
                kh_free(host);
                return 77;
        }
        /* Each bank keeps its usage files open (two on v1): 1,000 of them
         * need more than the usual soft limit of 1,024 descriptors. */
        {
                struct rlimit rl;

                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void) setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        r = kh_subtree_setup(host);
        if (r < 0) {
                printf("SKIP: cannot create %s: %s\n", subtree, strerror(-r));
                kh_subtree_remove(host);
                kh_free(host);
                return 77;
        }
        subtree_made = true;
        printf("cpu controller on cgroup v%d; %d VMs under %s (cpu, cpuacct), %d of them with a process "
               "spinning %d us every %d us\n",
               kh_controller_version(host, CG_CTRL_CPU), N_VMS, subtree, N_BUSY, BUSY_SPIN_USEC, BUSY_PERIOD_USEC);

        for (size_t i = 0; i < N_VMS && !stop; i++) {
                char id[40];
                uint32_t x = (uint32_t) getpid() * 2654435761u + (uint32_t) i * 40503u;

                snprintf(id, sizeof(id), "%08x-%04x-4%03x-8%03x-%012zx", x, (unsigned) (i & 0xffff),
                         (unsigned) (x & 0xfff), (unsigned) ((x >> 12) & 0xfff), i);
                r = vm_id_parse(id, &vms[i]);
                if (r == 0)
                        r = kh_vm_create(host, &vms[i]);
                if (r < 0) {
                        fprintf(stderr, "vm create %s: %s\n", id, strerror(-r));
                        failures++;
                        goto out;
                }
                created[i] = true;
        }
        /* Real processes in some, so counters move. */
        for (size_t k = 0; k < N_BUSY && !stop; k++) {
                size_t i = k * (N_VMS / N_BUSY);

                busy[k] = fork();
                if (busy[k] < 0) {
                        failures++;
                        goto out;
                }
                if (busy[k] == 0)
                        busy_loop();
                if (kh_vm_attach_process(host, &vms[i], busy[k]) < 0 ||
                    kh_vm_attach_thread(host, &vms[i], CG_ROLE_VCPUS, busy[k]) < 0) {
                        fprintf(stderr, "attach failed\n");
                        failures++;
                        goto out;
                }
        }
        t = now_usec();
        for (size_t i = 0; i < N_VMS && !stop; i++) {
                CreditSpec spec = presets[i % n_presets].spec;

                spec.mode = CREDIT_MODE_STANDARD;
                if (i % 3 == 0)
                        spec.launch_usec = 30 * CREDIT_USEC * spec.vcpus;
                r = credit_bank_new(host, &vms[i], &spec, CREDIT_BANK_EMULATED, NULL, NULL, UINT64_MAX, t, &banks[i]);
                if (r < 0) {
                        fprintf(stderr, "bank %s: %s\n", vms[i].str, strerror(-r));
                        failures++;
                        goto out;
                }
        }
        /* Ticks every 100 ms; CPU time counted around the ticks only.  The
         * first 6 s warm up: a fresh bank with nothing banked lands on a
         * rate that follows its growing balance (a write a tick) until it
         * holds 1.5 ticks of full speed and goes unlimited, which takes
         * 3 s for a t3.nano; measured is the steady state after that. */
        for (int k = -60; k < rounds && !stop; k++) {
                if (k == 0)
                        for (size_t i = 0; i < N_VMS; i++) {
                                CreditSnapshot s;

                                credit_bank_snapshot(banks[i], &s);
                                warm_writes += s.bandwidth_writes;
                        }
                double c0;

                t += TICK_USEC;
                sleep_until(t);
                c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                for (size_t i = 0; i < N_VMS; i++) {
                        r = credit_bank_tick(banks[i], now_usec());
                        if (r < 0) {
                                fprintf(stderr, "tick %s: %s\n", vms[i].str, strerror(-r));
                                failures++;
                                goto out;
                        }
                }
                if (k >= 0)
                        tick_cpu += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        if (stop) {
                failures++;
                goto out;
        }
        for (size_t i = 0; i < N_VMS; i++) {
                CreditSnapshot s;

                credit_bank_snapshot(banks[i], &s);
                writes += s.bandwidth_writes;
        }
        ns_tick = tick_cpu * 1e9 / ((double) rounds * N_VMS);
        /* CPU of the rounds over their wall time, all 1,000 banks. */
        core_pct = tick_cpu / ((double) rounds * TICK_USEC / 1e6) * 100;
        printf("emulated bank, every VM looked at on every 100 ms tick: %d rounds x %d VMs after a 6 s "
               "warm-up: %.0f ns CPU per credit_bank_tick (usage read(s), ledger, decision, and %" PRIu64
               " bandwidth writes in the measured rounds; %" PRIu64 " in the warm-up); %.3f %% of one core\n",
               rounds, N_VMS, ns_tick, writes - warm_writes, warm_writes, core_pct);
        printf("figure: credits.cost.emulated_real_ns_per_vm_tick %.0f ns\n", ns_tick);
        printf("figure: credits.cost.emulated_1000vm_every_look_core_pct %.3f %%\n", core_pct);

        /* As vmmgrd runs it: a 100 ms tick that looks only at the banks
         * whose next look is due (credit_bank_next_tick_usec: every tick
         * while landing or repaying, else when the budget could first run
         * out, at most a second apart). */
        {
                double adaptive_cpu = 0;
                uint64_t looks = 0, w0 = 0, w1 = 0;

                for (size_t i = 0; i < N_VMS; i++) {
                        CreditSnapshot sn;

                        credit_bank_snapshot(banks[i], &sn);
                        w0 += sn.bandwidth_writes;
                }

                for (int k = 0; k < rounds && !stop; k++) {
                        uint64_t now;
                        double c0;

                        t += TICK_USEC;
                        sleep_until(t);
                        c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                        now = now_usec();
                        for (size_t i = 0; i < N_VMS; i++) {
                                if (credit_bank_next_tick_usec(banks[i]) > now)
                                        continue;
                                r = credit_bank_tick(banks[i], now);
                                if (r < 0) {
                                        fprintf(stderr, "tick %s: %s\n", vms[i].str, strerror(-r));
                                        failures++;
                                        goto out;
                                }
                                looks++;
                        }
                        adaptive_cpu += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
                }
                for (size_t i = 0; i < N_VMS; i++) {
                        CreditSnapshot sn;

                        credit_bank_snapshot(banks[i], &sn);
                        w1 += sn.bandwidth_writes;
                }
                core_pct = adaptive_cpu / ((double) rounds * TICK_USEC / 1e6) * 100;
                printf("emulated bank as vmmgrd runs it (100 ms tick, looks when due), %d VMs: %.2f looks per "
                       "VM per second, %.0f ns CPU per look, %" PRIu64 " bandwidth writes; %.3f %% of one core "
                       "(this population: %d of %d VMs running a %.0f %% load, the rest idle)\n",
                       N_VMS, (double) looks / N_VMS / ((double) rounds * TICK_USEC / 1e6),
                       looks ? adaptive_cpu * 1e9 / (double) looks : 0, w1 - w0, core_pct, N_BUSY, N_VMS,
                       100.0 * BUSY_SPIN_USEC / BUSY_PERIOD_USEC);
                printf("figure: credits.cost.emulated_1000vm_core_pct %.3f %%\n", core_pct);
        }

        /* Kernel bank, extrapolated: this host's syscall costs weighted by the
         * model's schedule.  And how much of the emulated tick is its
         * usage preads, done the same way (every group in turn, so as cold
         * as in the ticks). */
        {
                const CgHierarchyInfo *hi;
                size_t nh = kh_hierarchies(host, &hi);
                const char *cpu_mount = NULL, *acct_mount = NULL, *one_mount, *one_file, *write_file;
                char group[256], p1[4096], p2[4096], p3[4096], val[64];
                double t_stat, t_one, t_write, est_ns, est_pct;
                bool v1 = kh_controller_version(host, CG_CTRL_CPU) == CG_V1;
                CpuBandwidth bw;

                for (size_t h = 0; h < nh; h++) {
                        if (hi[h].controllers & CG_CTRL_BIT(CG_CTRL_CPU))
                                cpu_mount = hi[h].mount;
                        if (hi[h].controllers & CG_CTRL_BIT(CG_CTRL_CPUACCT))
                                acct_mount = hi[h].mount;
                }
                snprintf(group, sizeof(group), "%s/vm-%s/vcpus", subtree, vms[0].str);
                r = cpu_mount ? kh_cpu_get_bandwidth(host, &vms[0], CG_ROLE_VCPUS, &bw) : -ENOENT;
                if (r < 0) {
                        fprintf(stderr, "kernel bank: cannot read %s's bandwidth: %s\n", group, strerror(-r));
                        failures++;
                        goto out;
                }
                /* The stand-ins: a one-number read for cpu.max.runtime, and a
                 * write of the value a file already holds for a relative
                 * runtime write. */
                if (v1) {
                        one_mount = acct_mount ? acct_mount : cpu_mount;
                        one_file = acct_mount ? "cpuacct.usage" : "cpu.cfs_quota_us";
                        write_file = "cpu.cfs_quota_us";
                        snprintf(val, sizeof(val), "%" PRId64 "\n",
                                 bw.quota_usec == CPU_QUOTA_MAX ? INT64_C(-1) : (int64_t) bw.quota_usec);
                } else {
                        one_mount = cpu_mount;
                        one_file = "cpu.max";
                        write_file = "cpu.max";
                        if (bw.quota_usec == CPU_QUOTA_MAX)
                                snprintf(val, sizeof(val), "max %" PRIu64 "\n", bw.period_usec);
                        else
                                snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64 "\n", bw.quota_usec, bw.period_usec);
                }
                t_stat = pread_ns(find_file(cpu_mount, group, "cpu.stat", p1, sizeof(p1)), 20000);
                t_one = pread_ns(find_file(one_mount, group, one_file, p2, sizeof(p2)), 20000);
                t_write = write_ns(find_file(cpu_mount, group, write_file, p3, sizeof(p3)), val, 2000);
                if (t_stat < 0 || t_one < 0 || t_write < 0) {
                        fprintf(stderr, "kernel bank syscall measurement failed (%s, %s, %s)\n", p1, p2, p3);
                        failures++;
                        goto out;
                }
                est_ns = t_stat + kernel_reads_per_look * t_one + kernel_writes_per_look * t_write;
                est_pct = est_ns * kernel_looks_per_sec * N_VMS / 1e9 * 100;
                {
                        /* What the emulated bank's usage read costs: cpu.stat
                         * and cpuacct.usage on v1, cpu.stat alone on v2. */
                        static int fd[N_VMS][2];
                        int n_files = v1 && acct_mount ? 2 : 1;
                        char buf[1024];
                        double c0, sys_ns;
                        int ok = 1;

                        for (size_t i = 0; i < N_VMS; i++) {
                                snprintf(group, sizeof(group), "%s/vm-%s/vcpus", subtree, vms[i].str);
                                fd[i][0] = open(find_file(cpu_mount, group, "cpu.stat", p1, sizeof(p1)),
                                                O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                                fd[i][1] = n_files < 2 ? -EBADF
                                                       : open(find_file(acct_mount, group, "cpuacct.usage", p2,
                                                                        sizeof(p2)),
                                                              O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                                ok &= fd[i][0] >= 0 && (n_files < 2 || fd[i][1] >= 0);
                        }
                        c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                        for (int k = 0; k < 50 && ok; k++)
                                for (size_t i = 0; i < N_VMS; i++)
                                        ok &= pread(fd[i][0], buf, sizeof(buf), 0) > 0 &&
                                              (n_files < 2 || pread(fd[i][1], buf, sizeof(buf), 0) > 0);
                        sys_ns = (clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e9 / (50.0 * N_VMS);
                        for (size_t i = 0; i < N_VMS; i++) {
                                if (fd[i][0] >= 0)
                                        close(fd[i][0]);
                                if (fd[i][1] >= 0)
                                        close(fd[i][1]);
                        }
                        if (!ok) {
                                fprintf(stderr, "usage preads over %d groups failed: %s\n", N_VMS, strerror(errno));
                                failures++;
                                goto out;
                        }
                        printf("  of an emulated tick, the usage pread%s (%s) over %d groups in turn: %.0f ns\n",
                               n_files > 1 ? "s" : "", n_files > 1 ? "cpu.stat, cpuacct.usage" : "cpu.stat", N_VMS,
                               sys_ns);
                }
                printf("kernel bank, extrapolated (no kernel here has cpu.max.runtime): real syscalls on this host, "
                       "pread cpu.stat %.0f ns, pread of %s (for cpu.max.runtime) %.0f ns x %.3f reads per look, a "
                       "one-value write to %s (for a relative runtime write) %.0f ns x %.3f writes per look = %.0f "
                       "ns per look; at %d VMs and %.3f looks per VM per second (the model's schedule): %.4f %% of "
                       "a core (plus the engine's own arithmetic, a few hundred ns a look: see the model figure)\n",
                       t_stat, one_file, t_one, kernel_reads_per_look, write_file, t_write, kernel_writes_per_look,
                       est_ns, N_VMS, kernel_looks_per_sec, est_pct);
                printf("figure: credits.cost.kernel_real_syscall_ns_per_look_extrapolated %.0f ns\n", est_ns);
                printf("figure: credits.cost.kernel_1000vm_real_core_pct_extrapolated %.4f %%\n", est_pct);
        }
out:
        for (size_t i = 0; i < N_VMS; i++)
                credit_bank_free(banks[i]);
        failures += cleanup();
        kh_free(host);
        if (failures)
                puts("FAIL");
        return failures ? 1 : 0;
}
