/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: what CPU credits cost vmmgr on this host's real cgroups.
 *
 * Emulated bank: 200 VMs under a subtree of our own (vmmgr-bench-<pid>, cpu
 * and cpuacct only), a few real processes in some of them (each sleeps
 * 9 ms and spins 1 ms, so counters move), t3.* specs in standard mode.
 * Two schedules, the process CPU time of the tick rounds (not the sleeps)
 * counted, extrapolated to 1,000 VMs:
 *   - every bank looked at on every 100 ms tick (the worst case: every VM
 *     landing at once): usage read(s) through the kept-open pread readers
 *     (cpuacct.usage alone while a group has no quota, plus cpu.stat when
 *     it has one), the ledger, the decision, the rare cpu.max write;
 *   - as vmmgrd runs: a 100 ms tick that looks at a bank when
 *     credit_bank_next_tick_usec() says it is due.
 *
 * Kernel bank (no kernel here has cpu.max.runtime): the syscalls of one
 * look measured on real files of this host, pread of cpu.stat and of
 * cpuacct.usage (standing in for cpu.max.runtime, a one-number file), plus
 * a one-value bandwidth write (standing in for a relative runtime write)
 * weighted by the writes per look the model run sees.
 *
 * Everything created is removed on exit, also on failure and on SIGINT /
 * SIGTERM.  Not root or no writable cpu controller: SKIP, exit 77.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/kernel.h"
#include "policies/credits.h"
#include "vmmgr/credit-engine.h"

#define N_VMS 200
#ifndef N_BUSY
#define N_BUSY 12 /* VMs with a real process in vcpus */
#endif
#define TICK_USEC UINT64_C(100000)

static KHost *host;
static VmId vms[N_VMS];
static bool created[N_VMS];
static pid_t busy[N_BUSY];
static bool subtree_made;
static volatile sig_atomic_t stop;

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static double cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

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
                uint64_t t = mono_usec();

                while (mono_usec() - t < 1000)
                        __asm__ volatile("" ::: "memory");
                usleep(9000);
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
        c0 = cpu_s();
        for (int i = 0; i < iters; i++)
                if (pread(fd, buf, sizeof(buf), 0) <= 0) {
                        close(fd);
                        return -1;
                }
        c1 = cpu_s();
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
        c0 = cpu_s();
        for (int i = 0; i < iters; i++)
                if (write(fd, value, len) != (ssize_t) len) {
                        close(fd);
                        return -1;
                }
        c1 = cpu_s();
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
        printf("cpu controller on cgroup v%d; %d VMs under %s (cpu, cpuacct)\n",
               kh_controller_version(host, CG_CTRL_CPU), N_VMS, subtree);

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
        /* A few real processes, so some counters move. */
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
        t = mono_usec();
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
                c0 = cpu_s();
                for (size_t i = 0; i < N_VMS; i++) {
                        r = credit_bank_tick(banks[i], mono_usec());
                        if (r < 0) {
                                fprintf(stderr, "tick %s: %s\n", vms[i].str, strerror(-r));
                                failures++;
                                goto out;
                        }
                }
                if (k >= 0)
                        tick_cpu += cpu_s() - c0;
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
        core_pct = ns_tick / 1e9 * 1000 * 10 * 100;
        printf("emulated bank, every VM looked at on every 100 ms tick: %d rounds x %d VMs after a 6 s "
               "warm-up: %.0f ns CPU per credit_bank_tick (usage read(s), ledger, decision, and %" PRIu64
               " bandwidth writes in the measured rounds; %" PRIu64 " in the warm-up); 1,000 VMs: %.3f %% "
               "of one core\n",
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
                        c0 = cpu_s();
                        now = mono_usec();
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
                        adaptive_cpu += cpu_s() - c0;
                }
                for (size_t i = 0; i < N_VMS; i++) {
                        CreditSnapshot sn;

                        credit_bank_snapshot(banks[i], &sn);
                        w1 += sn.bandwidth_writes;
                }
                core_pct = adaptive_cpu / ((double) rounds * TICK_USEC / 1e6) * (1000.0 / N_VMS) * 100;
                printf("emulated bank as vmmgrd runs it (100 ms tick, looks when due): %.2f looks per VM per "
                       "second, %.0f ns CPU per look, %" PRIu64 " bandwidth writes; 1,000 VMs: %.3f %% of one "
                       "core (this population: %d of %d VMs running a 10 %% load, the rest idle)\n",
                       (double) looks / N_VMS / ((double) rounds * TICK_USEC / 1e6),
                       looks ? adaptive_cpu * 1e9 / (double) looks : 0, w1 - w0, core_pct, N_BUSY, N_VMS);
                printf("figure: credits.cost.emulated_1000vm_core_pct %.3f %%\n", core_pct);
        }

        /* Kernel bank, estimated from this host's syscall costs; and how
         * much of the emulated tick is the two preads, done the same way
         * (every group in turn, so as cold as in the ticks). */
        {
                const CgHierarchyInfo *hi;
                size_t nh = kh_hierarchies(host, &hi);
                const char *cpu_mount = NULL, *acct_mount = NULL;
                char group[256], p1[4096], p2[4096], p3[4096], val[32];
                double t_stat, t_usage, t_write, est_ns;
                CpuBandwidth bw;

                for (size_t h = 0; h < nh; h++) {
                        if (hi[h].controllers & CG_CTRL_BIT(CG_CTRL_CPU))
                                cpu_mount = hi[h].mount;
                        if (hi[h].controllers & CG_CTRL_BIT(CG_CTRL_CPUACCT))
                                acct_mount = hi[h].mount;
                }
                snprintf(group, sizeof(group), "%s/vm-%s/vcpus", subtree, vms[0].str);
                if (!cpu_mount || kh_controller_version(host, CG_CTRL_CPU) != CG_V1 || !acct_mount ||
                    kh_cpu_get_bandwidth(host, &vms[0], CG_ROLE_VCPUS, &bw) < 0) {
                        puts("kernel bank: no v1 cpu + cpuacct here to measure syscalls on; skipped");
                        goto out;
                }
                snprintf(val, sizeof(val), "%" PRId64 "\n",
                         bw.quota_usec == CPU_QUOTA_MAX ? INT64_C(-1) : (int64_t) bw.quota_usec);
                t_stat = pread_ns(find_file(cpu_mount, group, "cpu.stat", p1, sizeof(p1)), 20000);
                t_usage = pread_ns(find_file(acct_mount, group, "cpuacct.usage", p2, sizeof(p2)), 20000);
                t_write = write_ns(find_file(cpu_mount, group, "cpu.cfs_quota_us", p3, sizeof(p3)), val, 2000);
                if (t_stat < 0 || t_usage < 0 || t_write < 0) {
                        fprintf(stderr, "kernel bank syscall measurement failed\n");
                        failures++;
                        goto out;
                }
                est_ns = t_stat + kernel_reads_per_look * t_usage + kernel_writes_per_look * t_write;
                {
                        static int fd[N_VMS][2];
                        char buf[1024];
                        double c0, sys_ns;
                        int ok = 1;

                        for (size_t i = 0; i < N_VMS; i++) {
                                snprintf(group, sizeof(group), "%s/vm-%s/vcpus", subtree, vms[i].str);
                                fd[i][0] = open(find_file(cpu_mount, group, "cpu.stat", p1, sizeof(p1)),
                                                O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                                fd[i][1] = open(find_file(acct_mount, group, "cpuacct.usage", p2, sizeof(p2)),
                                                O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                                ok &= fd[i][0] >= 0 && fd[i][1] >= 0;
                        }
                        c0 = cpu_s();
                        for (int k = 0; k < 50 && ok; k++)
                                for (size_t i = 0; i < N_VMS; i++)
                                        ok &= pread(fd[i][0], buf, sizeof(buf), 0) > 0 &&
                                              pread(fd[i][1], buf, sizeof(buf), 0) > 0;
                        sys_ns = (cpu_s() - c0) * 1e9 / (50.0 * N_VMS);
                        for (size_t i = 0; i < N_VMS; i++) {
                                if (fd[i][0] >= 0)
                                        close(fd[i][0]);
                                if (fd[i][1] >= 0)
                                        close(fd[i][1]);
                        }
                        if (ok)
                                printf("  of an emulated tick, the two preads (cpu.stat, cpuacct.usage) over %d "
                                       "groups in turn: %.0f ns\n",
                                       N_VMS, sys_ns);
                }
                printf("kernel bank, real syscalls of a look on this host: pread cpu.stat %.0f ns, pread of a "
                       "one-number file (cpuacct.usage, for cpu.max.runtime) %.0f ns x %.3f reads per look, a "
                       "one-value write (cpu.cfs_quota_us, for a relative runtime write) %.0f ns x %.3f writes per "
                       "look = %.0f ns per look; at 1,000 VMs and %.3f looks per VM per second: %.4f %% of a core "
                       "(plus the engine's own arithmetic, a few hundred ns a look: see the model figure)\n",
                       t_stat, t_usage, kernel_reads_per_look, t_write, kernel_writes_per_look, est_ns,
                       kernel_looks_per_sec, est_ns * kernel_looks_per_sec * 1000 / 1e9 * 100);
                printf("figure: credits.cost.kernel_real_syscall_ns_per_look %.0f ns\n", est_ns);
                printf("figure: credits.cost.kernel_1000vm_real_estimate_core_pct %.4f %%\n",
                       est_ns * kernel_looks_per_sec * 1000 / 1e9 * 100);
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
