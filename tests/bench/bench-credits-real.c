/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: what CPU credits cost vmmgr on this host's real cgroups,
 * with the tick's counter reads batched through io_uring and one pread
 * each, side by side in one run (kernel.h, "batched counter reads").
 *
 * Emulated bank: 1,000 VMs, real groups on this host's cpu controller (v1
 * with cpuacct, or v2), under a subtree of our own (vmmgr-bench-<pid>, cpu
 * and cpuacct only), t3.* specs in standard mode, a third with launch
 * credits.  6 % of the VMs have a real process in vcpus (each spins 1 ms
 * every 50 ms, so counters move; 1.2 CPUs in all), the rest are idle.
 * Every tick is vmmgrd's: the due banks queue their reads, the host's read
 * batch runs once, each bank looks.  The two paths take turns, a second
 * (10 ticks) at a time (the same banks, the same schedule, the same load
 * around them), and
 * the process CPU time of each path's ticks (not the sleeps) over their
 * wall time is its figure, for two schedules, measured on all 1,000 banks
 * (nothing scaled):
 *   - every bank looked at on every 100 ms tick (the worst case: every VM
 *     landing at once): the usage read(s) (cpuacct.usage alone while a v1
 *     group has no quota, plus cpu.stat when it has one), the ledger, the
 *     decision, the rare cpu.max write;
 *   - as vmmgrd runs: a 100 ms tick that looks at a bank when
 *     credit_bank_next_tick_usec() says it is due.
 * Where io_uring is not usable here (the probe's note says why), only the
 * pread figures are printed.
 *
 * Kernel bank (no kernel here has cpu.max.runtime): an extrapolation, and
 * named so (*_extrapolated).  A look's reads, cpu.stat and a one-number
 * file standing in for cpu.max.runtime (cpuacct.usage on v1; on v2 a
 * second cpu.stat, which costs more), are timed as batched passes over
 * the 1,000 groups on each path, parse included; a one-value bandwidth
 * write stands in for a relative runtime write; they are weighted by the
 * reads and writes per look and the looks per second that the model run
 * sees (bench-credits-model; constants below, or argv).
 *
 * Everything created is removed on exit, also on failure and on SIGINT /
 * SIGTERM.  Not root or no cpu controller this host lets vmmgr manage:
 * SKIP, exit 77.  A host that has one but refuses 1,000 groups fails.
 *
 * usage: bench-credits-real [ROUNDS [WRITES_PER_LOOK [LOOKS_PER_SEC [READS_PER_LOOK]]]]
 * (ROUNDS per schedule, both paths together; default 200, a multiple of 20)
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
#include "common/macros.h"
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

/* ---- the two paths, tick by tick ----------------------------------------- */

#define MAX_PATHS 2

typedef struct PathCost {
        double cpu_s;      /* process CPU of this path's ticks */
        uint64_t rounds;   /* ticks it ran */
        uint64_t looks;    /* bank looks in them */
        uint64_t syscalls; /* the batch's syscalls (preads, io_uring_enter) */
        uint64_t reads;    /* the batch's reads */
} PathCost;

static KhReadBatch *reads;
static KhReadPath paths[MAX_PATHS];
static size_t n_paths;

/* One tick as vmmgrd's: the due looks' reads queued, the batch run once,
 * the looks.  all: every bank (the worst case). */
static int tick(CreditBank **banks, bool all, uint64_t now, uint64_t *ret_looks) {
        uint64_t looks = 0;

        for (size_t i = 0; i < N_VMS; i++)
                if (all || credit_bank_next_tick_usec(banks[i]) <= now)
                        credit_bank_queue_look(banks[i]);
        (void) kh_read_batch_run(reads);
        for (size_t i = 0; i < N_VMS; i++) {
                int r;

                if (!all && credit_bank_next_tick_usec(banks[i]) > now)
                        continue;
                r = credit_bank_tick(banks[i], now);
                if (r < 0) {
                        fprintf(stderr, "tick %s: %s\n", vms[i].str, strerror(-r));
                        kh_read_batch_discard(reads);
                        return r;
                }
                looks++;
        }
        kh_read_batch_discard(reads);
        *ret_looks = looks;
        return 0;
}

/* The paths take turns a second at a time: 10 ticks hold every phase of
 * the schedule's at-most-a-second looks, so both see the same schedule
 * (turns of one tick would lock each bank's looks to one path). */
#define TURN_TICKS 10

/* `rounds` ticks 100 ms apart, the paths taking turns; *t is the last
 * tick's time. */
static int run_rounds(CreditBank **banks, int rounds, bool all, uint64_t *t, PathCost *cost) {
        for (int k = 0; k < rounds && !stop; k++) {
                size_t p = (size_t) k / TURN_TICKS % n_paths;
                KhReadBatchStats s0, s1;
                uint64_t looks;
                double c0;
                int r;

                r = kh_read_batch_set_path(reads, paths[p]);
                if (r < 0)
                        return r;
                *t += TICK_USEC;
                sleep_until(*t);
                kh_read_batch_stats(reads, &s0);
                c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);
                r = tick(banks, all, now_usec(), &looks);
                if (r < 0)
                        return r;
                if (cost) {
                        cost[p].cpu_s += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
                        kh_read_batch_stats(reads, &s1);
                        cost[p].rounds++;
                        cost[p].looks += looks;
                        cost[p].syscalls += s1.syscalls - s0.syscalls;
                        cost[p].reads += s1.reads - s0.reads;
                }
        }
        return stop ? -EINTR : 0;
}

static double core_pct(const PathCost *c) {
        return c->rounds ? c->cpu_s / ((double) c->rounds * TICK_USEC / 1e6) * 100 : 0;
}

static uint64_t bandwidth_writes(CreditBank **banks) {
        uint64_t w = 0;

        for (size_t i = 0; i < N_VMS; i++) {
                CreditSnapshot s;

                credit_bank_snapshot(banks[i], &s);
                w += s.bandwidth_writes;
        }
        return w;
}

/* CPU ns per VM of a batched read pass over every VM's reader: `what` is
 * KH_CPU_READ_STAT (v1: cpu.stat and cpuacct.usage) or KH_CPU_READ_USAGE
 * (v1: cpuacct.usage; v2: cpu.stat), each value taken and parsed as a
 * look does. */
static double pass_ns(KhCpuStatReader **rd, unsigned what, KhReadPath path, int passes) {
        double cpu = 0;

        if (kh_read_batch_set_path(reads, path) < 0)
                return -1;
        for (int k = 0; k < passes; k++) {
                double c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);

                for (size_t i = 0; i < N_VMS; i++)
                        kh_cpu_stat_reader_queue(rd[i], what);
                (void) kh_read_batch_run(reads);
                for (size_t i = 0; i < N_VMS; i++) {
                        CpuStat st;
                        uint64_t u;
                        int r = what == KH_CPU_READ_STAT ? kh_cpu_stat_reader_read(rd[i], &st)
                                                         : kh_cpu_stat_reader_read_usage(rd[i], &u);

                        if (r < 0) {
                                kh_read_batch_discard(reads);
                                return -1;
                        }
                }
                kh_read_batch_discard(reads);
                cpu += clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        return cpu * 1e9 / ((double) passes * N_VMS);
}

static const char *path_name(KhReadPath p) {
        return kh_read_path_to_string(p);
}

int main(int argc, char **argv) {
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree,
                            .controllers = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUACCT) };
        const CreditClass *presets;
        size_t n_presets = credit_class_presets(&presets);
        static CreditBank *banks[N_VMS];
        static KhCpuStatReader *rd[N_VMS];
        int rounds = argc > 1 ? atoi(argv[1]) : 200, failures = 0, r;
        /* The kernel bank's schedule, from the model runs (bench-credits-model,
         * 1,000 VMs; see README): looks per VM per second and cpu.max.runtime
         * reads per look as vmmgrd schedules them after an hour, runtime
         * writes per look over 24 h (deep pools are topped up lazily). */
        double kernel_writes_per_look = argc > 2 ? strtod(argv[2], NULL) : 0.018;
        double kernel_looks_per_sec = argc > 3 ? strtod(argv[3], NULL) : 0.077;
        double kernel_reads_per_look = argc > 4 ? strtod(argv[4], NULL) : 0.651;
        PathCost every[MAX_PATHS] = { 0 }, due[MAX_PATHS] = { 0 };
        double est_pct[MAX_PATHS] = { 0 }, est_ns[MAX_PATHS] = { 0 };
        uint64_t t, w0, w1, w2;
        KhReadProbe probe, auto_probe;
        size_t chosen = 0;
        struct sigaction sa = { .sa_handler = on_signal };

        snprintf(subtree, sizeof(subtree), "vmmgr-bench-%d", (int) getpid());
        if (rounds < 2)
                rounds = 2;
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
        /* Each bank keeps its usage files open (two on v1), and so do the
         * kernel bank's stand-in readers: 4,000 descriptors need more than
         * the usual soft limit of 1,024. */
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
        /* The batch before any reader: they attach to it.  Made with
         * io_uring where usable, so both paths can take turns; what
         * vmmgrd would pick here (io_uring = auto) is asked separately. */
        r = kh_read_batch_new(host, KH_READ_IO_URING, &reads, &probe);
        if (r < 0) {
                fprintf(stderr, "read batch: %s\n", strerror(-r));
                failures++;
                goto out;
        }
        (void) kh_read_probe(host, KH_READ_AUTO, &auto_probe);
        paths[n_paths++] = KH_READ_PATH_PREAD;
        if (probe.io_uring == TRI_YES)
                paths[n_paths++] = KH_READ_PATH_IO_URING;
        for (size_t p = 0; p < n_paths; p++)
                if (paths[p] == auto_probe.path)
                        chosen = p;
        printf("io_uring: %s (%s); vmmgrd here (io_uring = auto) reads with %s (%s)\n",
               probe.io_uring == TRI_YES ? "usable" : "not usable", probe.note, path_name(auto_probe.path),
               auto_probe.note);

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
        /* The first 6 s warm up: a fresh bank with nothing banked lands on
         * a rate that follows its growing balance (a write a tick) until it
         * holds 1.5 ticks of full speed and goes unlimited, which takes 3 s
         * for a t3.nano; measured is the steady state after that. */
        r = run_rounds(banks, 60, true, &t, NULL);
        w0 = bandwidth_writes(banks);
        if (r == 0)
                r = run_rounds(banks, rounds, true, &t, every);
        w1 = bandwidth_writes(banks);
        /* As vmmgrd runs it: a 100 ms tick that looks only at the banks
         * whose next look is due (every tick while landing or repaying,
         * else when the budget could first run out, at most a second
         * apart). */
        if (r == 0)
                r = run_rounds(banks, rounds, false, &t, due);
        w2 = bandwidth_writes(banks);
        if (r < 0) {
                failures++;
                goto out;
        }
        for (size_t p = 0; p < n_paths; p++) {
                const char *n = path_name(paths[p]);
                double ns = every[p].looks ? every[p].cpu_s * 1e9 / (double) every[p].looks : 0;

                printf("emulated bank, %s, every VM looked at on every 100 ms tick: %" PRIu64 " ticks x %d VMs after "
                       "a 6 s warm-up (the paths taking turns a second at a time): %.0f ns CPU per look (%.2f "
                       "syscalls and %.2f reads per look); %.3f %% of one core\n",
                       n, every[p].rounds, N_VMS, ns, (double) every[p].syscalls / (double) every[p].looks,
                       (double) every[p].reads / (double) every[p].looks, core_pct(&every[p]));
                printf("figure: credits.cost.%s.emulated_real_ns_per_vm_tick %.0f ns\n", n, ns);
                printf("figure: credits.cost.%s.emulated_1000vm_every_look_core_pct %.3f %%\n", n, core_pct(&every[p]));
                printf("emulated bank, %s, as vmmgrd runs it (100 ms tick, looks when due), %d VMs: %.2f looks per "
                       "VM per second, %.0f ns CPU per look, %.2f syscalls per tick; %.3f %% of one core\n",
                       n, N_VMS, (double) due[p].looks / N_VMS / ((double) due[p].rounds * TICK_USEC / 1e6),
                       due[p].looks ? due[p].cpu_s * 1e9 / (double) due[p].looks : 0,
                       (double) due[p].syscalls / (double) due[p].rounds, core_pct(&due[p]));
                printf("figure: credits.cost.%s.emulated_1000vm_core_pct %.3f %%\n", n, core_pct(&due[p]));
        }
        printf("bandwidth writes: %" PRIu64 " in the warm-up, %" PRIu64 " every-look, %" PRIu64 " as vmmgrd runs "
               "(this population: %d of %d VMs running a %.0f %% load, the rest idle)\n",
               w0, w1 - w0, w2 - w1, N_BUSY, N_VMS, 100.0 * BUSY_SPIN_USEC / BUSY_PERIOD_USEC);

        /* Kernel bank, extrapolated: this host's costs weighted by the
         * model's schedule. */
        {
                const CgHierarchyInfo *hi;
                size_t nh = kh_hierarchies(host, &hi);
                const char *cpu_mount = NULL, *write_file;
                char group[256], p3[4096], val[64];
                double t_write, t_path = 0;
                bool v1 = kh_controller_version(host, CG_CTRL_CPU) == CG_V1;
                CpuBandwidth bw;

                for (size_t h = 0; h < nh; h++)
                        if (hi[h].controllers & CG_CTRL_BIT(CG_CTRL_CPU))
                                cpu_mount = hi[h].mount;
                snprintf(group, sizeof(group), "%s/vm-%s/vcpus", subtree, vms[0].str);
                r = cpu_mount ? kh_cpu_get_bandwidth(host, &vms[0], CG_ROLE_VCPUS, &bw) : -ENOENT;
                if (r < 0) {
                        fprintf(stderr, "kernel bank: cannot read %s's bandwidth: %s\n", group, strerror(-r));
                        failures++;
                        goto out;
                }
                /* A write of the value the file already holds stands in for
                 * a relative runtime write. */
                if (v1) {
                        write_file = "cpu.cfs_quota_us";
                        snprintf(val, sizeof(val), "%" PRId64 "\n",
                                 bw.quota_usec == CPU_QUOTA_MAX ? INT64_C(-1) : (int64_t) bw.quota_usec);
                } else {
                        write_file = "cpu.max";
                        if (bw.quota_usec == CPU_QUOTA_MAX)
                                snprintf(val, sizeof(val), "max %" PRIu64 "\n", bw.period_usec);
                        else
                                snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64 "\n", bw.quota_usec, bw.period_usec);
                }
                t_write = write_ns(find_file(cpu_mount, group, write_file, p3, sizeof(p3)), val, 2000);
                if (t_write < 0) {
                        fprintf(stderr, "kernel bank: write to %s failed\n", p3);
                        failures++;
                        goto out;
                }
                /* What a cpu.max.runtime read cost before the readers kept
                 * it open: open, read and close by path, as
                 * kh_cpu_get_bandwidth() reads its files (3 on v1, 2 on v2). */
                {
                        double c0 = clock_now_sec(CLOCK_PROCESS_CPUTIME_ID);

                        for (size_t i = 0; i < N_VMS && r == 0; i++)
                                r = kh_cpu_get_bandwidth(host, &vms[i], CG_ROLE_VCPUS, &bw);
                        t_path = (clock_now_sec(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e9 / (N_VMS * (v1 ? 3.0 : 2.0));
                }
                for (size_t i = 0; i < N_VMS && r == 0; i++)
                        r = kh_cpu_stat_reader_open(host, &vms[i], CG_ROLE_VCPUS, &rd[i]);
                if (r < 0) {
                        fprintf(stderr, "kernel bank: readers: %s\n", strerror(-r));
                        failures++;
                        goto out;
                }
                for (size_t p = 0; p < n_paths; p++) {
                        /* Passes of each kind and path in turn, 5 of each. */
                        double stat = 0, one = 0, a, b;

                        for (int k = 0; k < 5; k++) {
                                a = pass_ns(rd, KH_CPU_READ_STAT, paths[p], 2);
                                b = pass_ns(rd, KH_CPU_READ_USAGE, paths[p], 2);
                                if (a < 0 || b < 0) {
                                        fprintf(stderr, "kernel bank: read passes failed\n");
                                        failures++;
                                        goto out;
                                }
                                stat += a / 5;
                                one += b / 5;
                        }
                        /* v1: STAT reads cpu.stat and cpuacct.usage, USAGE the
                         * latter; v2: both read cpu.stat, which then stands in
                         * for the one-number file too. */
                        if (v1)
                                stat = MAX(stat - one, 0.0);
                        est_ns[p] = stat + kernel_reads_per_look * one + kernel_writes_per_look * t_write;
                        est_pct[p] = est_ns[p] * kernel_looks_per_sec * N_VMS / 1e9 * 100;
                        printf("kernel bank, %s, extrapolated (no kernel here has cpu.max.runtime): cpu.stat %.0f ns, "
                               "%s (for cpu.max.runtime) %.0f ns x %.3f reads per look (batched passes over %d groups, "
                               "parse included), a one-value write to %s (for a relative runtime write) %.0f ns x %.3f "
                               "writes per look = %.0f ns per look; at %d VMs and %.3f looks per VM per second (the "
                               "model's schedule): %.4f %% of a core\n",
                               path_name(paths[p]), stat, v1 ? "cpuacct.usage" : "cpu.stat", one, kernel_reads_per_look,
                               N_VMS, write_file, t_write, kernel_writes_per_look, est_ns[p], N_VMS,
                               kernel_looks_per_sec, est_pct[p]);
                        printf("figure: credits.cost.%s.kernel_real_syscall_ns_per_look_extrapolated %.0f ns\n",
                               path_name(paths[p]), est_ns[p]);
                        printf("figure: credits.cost.%s.kernel_1000vm_real_core_pct_extrapolated %.4f %%\n",
                               path_name(paths[p]), est_pct[p]);
                        if (paths[p] == KH_READ_PATH_PREAD)
                                printf("  before the bank kept cpu.max.runtime open, each of its reads was an open, "
                                       "read and close by path: %.0f ns here, %.0f ns per look, %.4f %% of a core\n",
                                       t_path, est_ns[p] + kernel_reads_per_look * (t_path - one),
                                       (est_ns[p] + kernel_reads_per_look * (t_path - one)) * kernel_looks_per_sec *
                                               N_VMS / 1e9 * 100);
                }
        }

        /* Side by side, and vmmgrd's path here under the figures' old names. */
        if (n_paths == 2) {
                double ratio = every[0].cpu_s > 0 && every[1].looks && every[0].looks
                                       ? (every[1].cpu_s / (double) every[1].looks) /
                                                 (every[0].cpu_s / (double) every[0].looks)
                                       : 0;

                printf("batched (io_uring) vs pread, CPU per look with every VM looked at: %.3f (below 1: io_uring "
                       "cheaper)\n",
                       ratio);
                printf("figure: credits.cost.batched_vs_pread_ratio %.3f ratio\n", ratio);
        }
        printf("vmmgrd here (io_uring = auto): %s\n", path_name(paths[chosen]));
        printf("figure: credits.cost.emulated_real_ns_per_vm_tick %.0f ns\n",
               every[chosen].looks ? every[chosen].cpu_s * 1e9 / (double) every[chosen].looks : 0);
        printf("figure: credits.cost.emulated_1000vm_every_look_core_pct %.3f %%\n", core_pct(&every[chosen]));
        printf("figure: credits.cost.emulated_1000vm_core_pct %.3f %%\n", core_pct(&due[chosen]));
        printf("figure: credits.cost.kernel_real_syscall_ns_per_look_extrapolated %.0f ns\n", est_ns[chosen]);
        printf("figure: credits.cost.kernel_1000vm_real_core_pct_extrapolated %.4f %%\n", est_pct[chosen]);
        /* How many VMs one core carries at 100 ms ticks, each path. */
        for (size_t p = 0; p < n_paths; p++) {
                double e = core_pct(&due[p]), w = core_pct(&every[p]);

                printf("figure: credits.cost.%s.emulated_vms_per_core %.0f VMs\n", path_name(paths[p]),
                       e > 0 ? N_VMS * 100.0 / e : 0);
                printf("figure: credits.cost.%s.emulated_every_look_vms_per_core %.0f VMs\n", path_name(paths[p]),
                       w > 0 ? N_VMS * 100.0 / w : 0);
                printf("figure: credits.cost.%s.kernel_vms_per_core_extrapolated %.0f VMs\n", path_name(paths[p]),
                       est_pct[p] > 0 ? N_VMS * 100.0 / est_pct[p] : 0);
        }
out:
        for (size_t i = 0; i < N_VMS; i++) {
                credit_bank_free(banks[i]);
                kh_cpu_stat_reader_free(rd[i]);
        }
        kh_read_batch_free(reads);
        failures += cleanup();
        kh_free(host);
        if (failures)
                puts("FAIL");
        return failures ? 1 : 0;
}
