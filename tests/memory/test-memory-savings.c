/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Real-kernel tier (run inside the stock test kernel by
 * tests/realkernel/check stock memory-savings; elsewhere it skips): how
 * much memory vmmgr's proactive reclaim saves, measured as Meta's TMO
 * measures it (memory saved against the progress it costs), side by side
 * with memory.high and with nothing, issue 15.
 *
 * The workload stands in for a VM's guest RAM; it is not a guest.  The
 * test kernels' QEMU guests spin in a 2-byte boot sector with no OS, so
 * they have no working set to find.  Instead each "VM" is a process
 * placed as vmmgrd places a VM (vm-<uuid>, threads in vcpus/ and io/):
 *   - guest RAM: HOT_MIB + COLD_MIB of anonymous memory, filled once with
 *     data that compresses about 4:1 (a quarter of each page random);
 *   - two "vCPU" threads that, every SLOT_USEC, write a word to each page
 *     of their half of the hot set and one random page of the cold part
 *     (each cold page is touched about once every four minutes): the
 *     workload's operations, whose rate is its progress.  A slot's work
 *     that ends late costs the slots it overran (a guest that stalls does
 *     not get the time back);
 *   - file cache: an "iothread" reads its own FILE_MIB slice of the VMs'
 *     disk, as a VM's disk image is read at boot, then IO_PAGES random
 *     pages of its first FILE_HOT_MIB every IO_USEC.  The disk is a zram
 *     block device read through its page cache (real page cache, clean,
 *     charged to the VM), as QEMU reads a raw image on a host block
 *     device (an LVM volume) with cache=writeback, its default: a page
 *     that comes back costs tens of microseconds, as from a fast SSD.
 *     --file PATH reads a file instead; on the test kernel's root (the
 *     host's / over 9p under TCG) a page that comes back costs
 *     milliseconds, 10-100 times a real disk, and a few such refaults a
 *     second hold memory pressure at percents (docs/memory.md).
 * Swap is zram.  kernel.task_delayacct is on before any thread exists.
 *
 * Three VMs run at the same time on the same workload, so that the host's
 * load (TCG on a shared machine) weighs on all three alike:
 *   nothing:   memory.max only (vmmgr's policy for a VM of HOT + COLD RAM);
 *   high:      memory.high = the hot set + half of it, what operators set
 *              today, memory.max as above;
 *   proactive: vmmgr's memory engine with its configuration's defaults
 *              (mem_engine_options_default(), proactive reclaim on,
 *              memory.high = max), ticked every 100 ms as vmmgrd does.
 * After a settle time (proactive reclaim finds the cold memory) a window
 * of window_sec measures, per VM: memory.current every 100 ms (mean and
 * p95), operations per second, the vCPU threads' memory delays from
 * taskstats (direct reclaim, swap-in, thrashing, compaction), and mean
 * memory.pressure some/full avg10.  Then the hot set of every VM grows by
 * HOT_MIB into its cold part: regrow_s is how long until the grown hot set
 * is resident again (each vCPU thread's sweeps free of major faults for
 * half a second), i.e. how soon the reclaimer lets go.
 *
 * Prints `figure: memory.{nothing,high,proactive}.*` lines; the goals
 * (proactive saves >= 20 %, loses <= 2 % of progress, lets go within a
 * few seconds) are judged by the bench (tests/realkernel/bench.sh).  This
 * test fails only on behaviour a bug would show: a VM that did not run,
 * an engine tick or memcg read that failed, proactive reclaim that saved
 * under MIN_SAVED_PCT, or a grown hot set that never became resident with
 * vmmgr.
 *
 * usage: test-memory-savings [--file PATH] [--settle S] [--window S] [--regrow S]
 * PATH: a file of at least 3 x FILE_MIB MiB instead of the zram disk.
 * VMMGR_SAVINGS_POLICY="key=value;...": mempol_set_key() overrides for
 * the proactive run, to explore (the check runs the defaults).
 * Exit: 0 pass, 1 fail, 77 skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "tests/memory/memtest-real.h"
#include "vmmgr/engine/memory-engine.h"

#define MIB (UINT64_C(1) << 20)
#define PAGE UINT64_C(4096)
#define HOT_MIB 32
#define COLD_MIB 96
#define FILE_MIB 32
#define FILE_HOT_MIB 4 /* of it read again and again; the rest was read once */
#define RAM ((uint64_t) (HOT_MIB + COLD_MIB) * MIB)
#define HIGH_BYTES ((uint64_t) (HOT_MIB + HOT_MIB / 2) * MIB) /* the high run's memory.high */
#define N_VCPUS 2
#define SLOT_USEC UINT64_C(50000)
#define IO_USEC UINT64_C(50000)
#define IO_PAGES 4
#define LOOK_USEC UINT64_C(100000)
#define ZRAM_SIZE "768M"
/* CI's bound (the goal, 20 %, is the bench's): proactive reclaim that
 * does anything takes far more than this. */
#define MIN_SAVED_PCT 5.0
/* The grown hot set counts as resident once every vCPU thread has done
 * this many sweeps in a row without a major fault (half a second). */
#define CLEAN_SWEEPS (500000 / SLOT_USEC)
#define MAX_SAMPLES 2000

enum { RUN_NOTHING, RUN_HIGH, RUN_PROACTIVE, N_RUNS };
static const char *const run_names[N_RUNS] = { "nothing", "high", "proactive" };
static const char *const vm_ids[N_RUNS] = { "5a7e0001-0000-4000-8000-000000000001",
                                            "5a7e0002-0000-4000-8000-000000000002",
                                            "5a7e0003-0000-4000-8000-000000000003" };

/* ---- the workload (in each VM's child process) ----------------------------- */

/* Between a VM's threads and the parent: mapped shared before the fork. */
typedef struct VmShared {
        atomic_uint_fast64_t hot_pages; /* the parent grows it */
        atomic_uint_fast64_t filled;    /* vCPU threads done filling, io thread done reading */
        atomic_uint_fast64_t ops;       /* slots whose work was done */
        atomic_uint_fast64_t missed;    /* slots overrun */
        atomic_uint_fast64_t io_ops;
        atomic_uint_fast64_t busy_usec; /* the vCPU threads' time in their slots' work */
        /* Per vCPU thread: sweeps since the last one with a major fault,
         * when that one ended, and pages it brought in since the growth. */
        atomic_uint_fast64_t clean_sweeps[N_VCPUS];
        atomic_uint_fast64_t fault_end_usec[N_VCPUS];
        atomic_uint_fast64_t faulted_pages[N_VCPUS];
        atomic_bool go;
} VmShared;

typedef struct VmChild {
        VmShared *sh;
        unsigned char *ram;
        int file_fd;
        uint64_t file_off; /* its slice of the file */
        int report_fd;
        int index; /* vCPU thread index, for the threads */
} VmChild;

typedef struct VcpuArg {
        VmChild *c;
        int index;
} VcpuArg;

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static uint64_t majflt_self(void) {
        struct rusage ru;

        return getrusage(RUSAGE_THREAD, &ru) == 0 ? (uint64_t) ru.ru_majflt : 0;
}

static void wait_go(const VmShared *sh) {
        while (!atomic_load(&sh->go))
                usleep(1000);
}

static void *vcpu_main(void *arg) {
        VcpuArg *a = arg;
        VmShared *sh = a->c->sh;
        const uint64_t ram_pages = RAM / PAGE, hot_pages = HOT_MIB * MIB / PAGE;
        /* Fill order: the part the hot set will grow into first, then the
         * hot set, then the rest; each thread its share of each.  What is
         * never touched again ages in that order, so the part the hot set
         * grows into is the first that reclaim finds cold. */
        const uint64_t segs[][2] = { { hot_pages, 2 * hot_pages }, { 0, hot_pages }, { 2 * hot_pages, ram_pages } };
        uint64_t seed = 0x9e3779b97f4a7c15u * (uint64_t) (a->index + 1) + (uint64_t) getpid(), t0, k = 0;

        memtest_report_thread(a->c->report_fd, CG_ROLE_VCPUS);
        wait_go(sh);
        /* Guest RAM as a guest leaves it: every page written, a quarter
         * of it random (zram compresses it about 4:1). */
        for (size_t g = 0; g < ARRAY_SIZE(segs); g++) {
                uint64_t n = (segs[g][1] - segs[g][0]) / N_VCPUS, from = segs[g][0] + n * (uint64_t) a->index;

                for (uint64_t p = from; p < from + n; p++) {
                        uint64_t *w = (uint64_t *) (a->c->ram + p * PAGE);

                        for (size_t i = 0; i < PAGE / 4 / sizeof(*w); i++)
                                w[i] = xorshift(&seed);
                }
        }
        atomic_fetch_add(&sh->filled, 1);
        t0 = now_usec();
        for (;;) {
                uint64_t hot = atomic_load(&sh->hot_pages), from = hot / N_VCPUS * (uint64_t) a->index;
                uint64_t to = a->index == N_VCPUS - 1 ? hot : from + hot / N_VCPUS, f0 = majflt_self(), f, now;
                uint64_t began = now_usec();
                volatile unsigned char *cold;

                for (uint64_t p = from; p < to; p++)
                        ((volatile uint64_t *) (a->c->ram + p * PAGE))[1]++;
                f = majflt_self() - f0;
                if (f > 0) {
                        atomic_store(&sh->clean_sweeps[a->index], 0);
                        atomic_store(&sh->fault_end_usec[a->index], now_usec());
                        atomic_fetch_add(&sh->faulted_pages[a->index], f);
                } else
                        atomic_fetch_add(&sh->clean_sweeps[a->index], 1);
                /* One cold page, rarely the same: read, as a guest reads
                 * what it keeps. */
                if (hot < ram_pages) {
                        cold = a->c->ram + (hot + xorshift(&seed) % (ram_pages - hot)) * PAGE;
                        (void) cold[xorshift(&seed) % PAGE];
                }
                atomic_fetch_add(&sh->ops, 1);
                /* The next slot; one overrun is lost, not made up. */
                now = now_usec();
                atomic_fetch_add(&sh->busy_usec, now - began);
                k++;
                if (now >= t0 + k * SLOT_USEC) {
                        uint64_t behind = (now - t0) / SLOT_USEC + 1;

                        atomic_fetch_add(&sh->missed, behind - k);
                        k = behind;
                }
                now = now_usec();
                if (t0 + k * SLOT_USEC > now)
                        usleep((useconds_t) (t0 + k * SLOT_USEC - now));
        }
        return NULL;
}

static void *io_main(void *arg) {
        VmChild *c = arg;
        uint64_t seed = 0x2545f4914f6cdd1du + (uint64_t) getpid();
        unsigned char *buf = malloc(MIB);

        memtest_report_thread(c->report_fd, CG_ROLE_IO);
        if (!buf)
                return NULL; /* the VM never reports filled: the parent fails it */
        wait_go(c->sh);
        /* The VM's disk image read at boot: its slice into page cache, the
         * part it keeps reading twice (the kernel's LRU activates a page
         * on its second use; read once, the part read first would be the
         * oldest on the inactive list, the first reclaim takes). */
        for (uint64_t off = 0; off < (FILE_MIB + FILE_HOT_MIB) * MIB; off += MIB)
                if (pread(c->file_fd, buf, MIB, (off_t) (c->file_off + off % (FILE_MIB * MIB))) < 0)
                        break;
        atomic_fetch_add(&c->sh->filled, 1);
        for (;;) {
                for (int i = 0; i < IO_PAGES; i++) {
                        uint64_t page = xorshift(&seed) % (FILE_HOT_MIB * MIB / PAGE);

                        (void) !pread(c->file_fd, buf, PAGE, (off_t) (c->file_off + page * PAGE));
                }
                atomic_fetch_add(&c->sh->io_ops, 1);
                usleep(IO_USEC);
        }
        return NULL;
}

static void vm_child(void *arg, int fd, int go_fd) {
        VmChild *c = arg;
        VcpuArg va[N_VCPUS];
        pthread_t t;

        c->report_fd = fd;
        c->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c->ram == MAP_FAILED)
                _exit(1); /* the parent sees the reports missing */
        for (int i = 0; i < N_VCPUS; i++) {
                va[i] = (VcpuArg){ .c = c, .index = i };
                pthread_create(&t, NULL, vcpu_main, &va[i]);
        }
        pthread_create(&t, NULL, io_main, c);
        memtest_wait_go(go_fd);
        atomic_store(&c->sh->go, true);
        for (;;)
                pause();
}

/* ---- the parent ---------------------------------------------------------------- */

typedef struct Opts {
        const char *file;
        unsigned settle_sec, window_sec, regrow_sec;
} Opts;

typedef struct Run {
        MemtestVm vm;
        VmChild child;
        pid_t vcpu[N_VCPUS];
        /* the window */
        uint64_t *current; /* samples */
        size_t n_current;
        uint64_t psi_some_sum, psi_full_sum, psi_n; /* avg10, hundredths of a percent */
        uint64_t ops0, missed0, busy0, delay0_ns, ops, missed, busy, delay_ns, window_usec;
        double mean, p95; /* bytes */
        /* the regrow */
        bool regrown;
        uint64_t regrow_usec, regrow_faulted;
        unsigned read_errors;
        int first_error;
} Run;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* The vCPU threads' memory delays (what taskstats counts of waiting on
 * memory: direct reclaim, swap-in, thrashing, compaction). */
static int vcpu_delay_ns(KTaskstats *ts, const Run *r, uint64_t *ret) {
        uint64_t sum = 0;

        for (int i = 0; i < N_VCPUS; i++) {
                ThreadDelays d;
                int k = kh_taskstats_thread(ts, r->vcpu[i], &d);

                if (k < 0)
                        return k;
                sum += d.freepages_delay_ns + d.swapin_delay_ns + d.thrashing_delay_ns + d.compact_delay_ns;
        }
        *ret = sum;
        return 0;
}

static int start_vm(KHost *h, int i, VmShared *sh, int file_fd, Run *r) {
        MemtestThread t[N_VCPUS + 1];
        int k;

        r->vm = MEMTEST_VM_INIT;
        r->child = (VmChild){ .sh = sh, .file_fd = file_fd, .file_off = (uint64_t) i * FILE_MIB * MIB };
        atomic_store(&sh->hot_pages, HOT_MIB * MIB / PAGE);
        k = memtest_vm_start(h, vm_ids[i], &r->vm, vm_child, &r->child, ARRAY_SIZE(t), t);
        for (size_t j = 0, n = 0; k == 0 && j < ARRAY_SIZE(t); j++)
                if (t[j].role == CG_ROLE_VCPUS && n < N_VCPUS)
                        r->vcpu[n++] = t[j].tid;
        return k;
}

/* memory.max for every run: vmmgr's policy for this RAM, as the engine
 * sets it in the proactive run. */
static int limits_for(const MemEngineOptions *o, int run, MemLimits *ret) {
        static const MemPolVmSpec spec = { .ram_bytes = RAM };
        MemPolVmLimits l;
        int r = mempol_vm_limits(&o->policy, &spec, &l);

        if (r < 0)
                return r;
        *ret = (MemLimits){ .set = MEM_SET_MAX | MEM_SET_HIGH | MEM_SET_SWAP_MAX,
                            .max = l.max,
                            .high = run == RUN_HIGH ? HIGH_BYTES : MEM_MAX,
                            .swap_max = MEM_MAX };
        return 0;
}

static int policy_from_env(MemEngineOptions *o) {
        const char *env = getenv("VMMGR_SAVINGS_POLICY");
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        mem_engine_options_default(o);
        if (!env || !*env)
                return 0;
        copy = strdup(env);
        if (!copy)
                return -ENOMEM;
        for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
                char *eq = strchr(kv, '=');
                const char *bad = NULL;
                int r;

                if (!eq)
                        return -EINVAL;
                *eq = '\0';
                r = mempol_set_key(&o->policy, kv, eq + 1, &bad);
                if (r < 0) {
                        fprintf(stderr, "VMMGR_SAVINGS_POLICY: %s: %s\n", kv, strerror(-r));
                        return r;
                }
        }
        return mempol_validate(&o->policy, NULL);
}

static void sample(KHost *h, Run *r, bool in_window) {
        MemStat st;
        int k = kh_mem_read(h, &r->vm.id, &st);

        if (k < 0) {
                if (r->read_errors++ == 0)
                        r->first_error = k;
                return;
        }
        if (!in_window)
                return;
        if (r->n_current < MAX_SAMPLES)
                r->current[r->n_current++] = st.current;
        r->psi_some_sum += st.pressure.some_avg10;
        r->psi_full_sum += st.pressure.full_avg10;
        r->psi_n++;
}

/* Every vCPU thread of the VM has swept the grown hot set CLEAN_SWEEPS
 * times in a row without a major fault: resident since the last fault. */
static void check_regrown(Run *r, VmShared *sh, uint64_t grown_at) {
        uint64_t last = grown_at;

        if (r->regrown)
                return;
        for (int i = 0; i < N_VCPUS; i++) {
                if (atomic_load(&sh->clean_sweeps[i]) < CLEAN_SWEEPS)
                        return;
                last = MAX(last, atomic_load(&sh->fault_end_usec[i]));
        }
        r->regrown = true;
        r->regrow_usec = last - grown_at;
}

static void print_figures(const Run *runs, const MemVmReport *rep) {
        const Run *base = &runs[RUN_NOTHING];

        for (int i = 0; i < N_RUNS; i++) {
                const Run *r = &runs[i];
                const char *n = run_names[i];
                double ops_s = r->window_usec ? (double) r->ops * 1e6 / (double) r->window_usec : 0;
                double base_ops = base->window_usec ? (double) base->ops * 1e6 / (double) base->window_usec : 0;

                printf("%-9s: memory.current mean %.1f MiB, p95 %.1f MiB; %.1f ops/s (%" PRIu64
                       " slots missed, %.1f ms a slot's work); vCPU memory delay %.1f ms; memory.pressure avg10 "
                       "some %.2f %%, full %.2f %%\n",
                       n, r->mean / MIB, r->p95 / MIB, ops_s, r->missed,
                       r->ops ? (double) r->busy / (double) r->ops / 1e3 : 0, (double) r->delay_ns / 1e6,
                       r->psi_n ? (double) r->psi_some_sum / (double) r->psi_n / 100.0 : 0,
                       r->psi_n ? (double) r->psi_full_sum / (double) r->psi_n / 100.0 : 0);
                printf("figure: memory.%s.mean_mib %.1f MiB\n", n, r->mean / MIB);
                printf("figure: memory.%s.p95_mib %.1f MiB\n", n, r->p95 / MIB);
                printf("figure: memory.%s.ops_per_sec %.1f ops/s\n", n, ops_s);
                printf("figure: memory.%s.vcpu_delay_ms %.1f ms\n", n, (double) r->delay_ns / 1e6);
                printf("figure: memory.%s.psi_some_avg10_pct %.2f %%\n", n,
                       r->psi_n ? (double) r->psi_some_sum / (double) r->psi_n / 100.0 : 0);
                printf("figure: memory.%s.psi_full_avg10_pct %.2f %%\n", n,
                       r->psi_n ? (double) r->psi_full_sum / (double) r->psi_n / 100.0 : 0);
                if (i != RUN_NOTHING) {
                        printf("figure: memory.%s.saved_pct %.1f %%\n", n,
                               base->mean > 0 ? 100.0 * (1.0 - r->mean / base->mean) : 0);
                        printf("figure: memory.%s.saved_p95_pct %.1f %%\n", n,
                               base->p95 > 0 ? 100.0 * (1.0 - r->p95 / base->p95) : 0);
                        printf("figure: memory.%s.progress_loss_pct %.2f %%\n", n,
                               base_ops > 0 ? 100.0 * (1.0 - ops_s / base_ops) : 0);
                }
        }
        printf("proactive: vmmgr's engine asked %" PRIu64 " MiB proactive, %" PRIu64 " MiB background and %" PRIu64
               " MiB host reclaim, %" PRIu64 " MiB reclaimed in %.1f s of its threads' time; memory.low %.1f MiB\n",
               rep->proactive_bytes / MIB, rep->background_bytes / MIB, rep->host_bytes / MIB, rep->reclaim_bytes / MIB,
               (double) rep->reclaim_busy_usec / 1e6, (double) rep->state.low / MIB);
        for (int i = 0; i < N_RUNS; i++) {
                const Run *r = &runs[i];

                if (r->regrown)
                        printf("%-9s: the grown hot set was resident %.1f s after it grew (%" PRIu64
                               " MiB faulted back in)\n",
                               run_names[i], (double) r->regrow_usec / 1e6, r->regrow_faulted * PAGE / MIB);
                else
                        printf("%-9s: the grown hot set was not resident at the end (%" PRIu64
                               " MiB faulted back in)\n",
                               run_names[i], r->regrow_faulted * PAGE / MIB);
        }
        if (runs[RUN_PROACTIVE].regrown)
                printf("figure: memory.proactive.regrow_s %.1f s\n", (double) runs[RUN_PROACTIVE].regrow_usec / 1e6);
        if (runs[RUN_HIGH].regrown)
                printf("figure: memory.high.regrow_s %.1f s\n", (double) runs[RUN_HIGH].regrow_usec / 1e6);
}

/* vm.swappiness, read into *ret_old (may be NULL) and set to `value`. */
static int swappiness_set(int value, int *ret_old) {
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/vm/swappiness", "r+e");

        if (!f)
                return negative_errno();
        if (ret_old && fscanf(f, "%d", ret_old) != 1)
                return -EBADMSG;
        rewind(f);
        if (fprintf(f, "%d\n", value) < 0 || fflush(f) != 0)
                return -EIO;
        return 0;
}

/* The VMs' disk without --file: a zram block device of N_RUNS x FILE_MIB,
 * filled like guest RAM (a quarter of each page random), its page cache
 * dropped.  *ret_id: the device to hot_remove; *ret_fd: open to read. */
static int disk_make(int *ret_id, int *ret_fd) {
        _cleanup_close_ int ctl = -EBADF, fd = -EBADF;
        _cleanup_free_ uint64_t *buf = NULL;
        char text[32], path[64];
        uint64_t seed = 0x853c49e6748fea9bu;
        ssize_t n;
        int id, k;

        ctl = open("/sys/class/zram-control/hot_add", O_RDONLY | O_CLOEXEC);
        if (ctl < 0)
                return negative_errno();
        n = read(ctl, text, sizeof(text) - 1);
        if (n <= 0)
                return n < 0 ? negative_errno() : -EIO;
        text[n] = '\0';
        id = atoi(text);
        *ret_id = id;
        snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", id);
        snprintf(text, sizeof(text), "%dM", N_RUNS * FILE_MIB);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, text, strlen(text)) < 0)
                return negative_errno();
        close(fd);
        snprintf(path, sizeof(path), "/dev/zram%d", id);
        fd = open(path, O_RDWR | O_CLOEXEC);
        buf = malloc(MIB);
        if (fd < 0 || !buf)
                return fd < 0 ? negative_errno() : -ENOMEM;
        for (uint64_t off = 0; off < (uint64_t) N_RUNS * FILE_MIB * MIB; off += MIB) {
                for (size_t i = 0; i < MIB / sizeof(*buf); i++)
                        buf[i] = i % (PAGE / sizeof(*buf)) < PAGE / 4 / sizeof(*buf) ? xorshift(&seed) : 0;
                if (pwrite(fd, buf, MIB, (off_t) off) != (ssize_t) MIB)
                        return -EIO;
        }
        if (fsync(fd) < 0)
                return negative_errno();
        k = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (k != 0)
                return -k;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void disk_remove(int id) {
        _cleanup_close_ int fd = open("/sys/class/zram-control/hot_remove", O_WRONLY | O_CLOEXEC);
        char text[16];

        snprintf(text, sizeof(text), "%d", id);
        if (fd >= 0)
                (void) !write(fd, text, strlen(text));
}

static int parse_opts(int argc, char **argv, Opts *o) {
        *o = (Opts){ .settle_sec = 20, .window_sec = 30, .regrow_sec = 15 };
        for (int i = 1; i < argc; i++) {
                unsigned *v = NULL;

                if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
                        o->file = argv[++i];
                        continue;
                }
                if (strcmp(argv[i], "--settle") == 0)
                        v = &o->settle_sec;
                else if (strcmp(argv[i], "--window") == 0)
                        v = &o->window_sec;
                else if (strcmp(argv[i], "--regrow") == 0)
                        v = &o->regrow_sec;
                if (!v || i + 1 >= argc)
                        return -EINVAL;
                *v = (unsigned) strtoul(argv[++i], NULL, 10);
        }
        if (o->window_sec == 0 || o->window_sec * (USEC_PER_SEC / LOOK_USEC) > MAX_SAMPLES || o->regrow_sec == 0)
                return -EINVAL;
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_mem_engine_ MemEngine *engine = NULL;
        _cleanup_close_ int file_fd = -EBADF;
        MemEngineOptions o;
        MemtestHost m;
        MemVmReport rep = { 0 };
        Run runs[N_RUNS] = { 0 };
        VmShared *sh;
        Opts opt;
        uint64_t start, window_start = 0, window_end, grown_at = 0, end, filled_at;
        unsigned tick_errors = 0;
        int old_swappiness = -1, disk_id = -1;
        bool window_open = false, trace = getenv("VMMGR_SAVINGS_TRACE") != NULL;
        uint64_t next_trace = 0;
        int r, failures = 0, tick_error = 0;

        if (parse_opts(argc, argv, &opt) < 0) {
                fprintf(stderr, "usage: %s [--file PATH] [--settle S] [--window S] [--regrow S]\n", argv[0]);
                return 2;
        }
        r = policy_from_env(&o);
        if (r < 0) {
                fprintf(stderr, "FAIL: VMMGR_SAVINGS_POLICY: %s\n", strerror(-r));
                return 1;
        }
        sh = mmap(NULL, N_RUNS * sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED) {
                fprintf(stderr, "FAIL: mmap: %m\n");
                return 1;
        }
        memset(sh, 0, N_RUNS * sizeof(*sh));
        for (int i = 0; i < N_RUNS; i++) {
                runs[i].vm = MEMTEST_VM_INIT;
                runs[i].current = calloc(MAX_SAMPLES, sizeof(*runs[i].current));
                if (!runs[i].current) {
                        fprintf(stderr, "FAIL: out of memory\n");
                        return 1;
                }
        }
        r = memtest_host_open("vmmgr-savingstest", ZRAM_SIZE, &m);
        if (r != 0) {
                (void) memtest_host_close(&m);
                return r;
        }
        if (opt.file) {
                file_fd = open(opt.file, O_RDONLY | O_CLOEXEC);
                r = file_fd < 0 ? negative_errno() : 0;
                /* Each VM's page cache its own: nothing of the file cached yet. */
                if (r == 0)
                        (void) posix_fadvise(file_fd, 0, 0, POSIX_FADV_DONTNEED);
        } else
                r = disk_make(&disk_id, &file_fd);
        if (r < 0) {
                fprintf(stderr, "FAIL: the VMs' disk (%s): %s\n", opt.file ? opt.file : "zram", strerror(-r));
                failures++;
                goto out;
        }
        /* vmmgr passes proactive_swappiness (100: guest RAM weighs like
         * page cache) with each memory.reclaim write where the kernel takes
         * it (6.7+).  The test kernel is 6.1: the same balance for the
         * whole (test) machine instead, in every run alike. */
        if (o.policy.proactive.swappiness >= 0) {
                r = swappiness_set(o.policy.proactive.swappiness, &old_swappiness);
                if (r < 0) {
                        fprintf(stderr, "FAIL: vm.swappiness: %s\n", strerror(-r));
                        failures++;
                        goto out;
                }
        }
        printf("3 VMs side by side, each %d MiB of guest RAM (hot %d MiB swept every %" PRIu64
               " ms by %d vCPU threads, cold %d MiB touched a page a slot) and %d MiB of page cache (%d MiB "
               "of it read again and again); zram swap.\n"
               "proactive: step %.3f %% of usage per second, pressure target %.2f %%, back-off %" PRIu64
               " s; memory.high run: %" PRIu64 " MiB; vm.swappiness %d\n",
               HOT_MIB + COLD_MIB, HOT_MIB, SLOT_USEC / 1000, N_VCPUS, COLD_MIB, FILE_MIB, FILE_HOT_MIB,
               o.policy.proactive.step_ppm_per_sec / 1e4, o.policy.proactive.pressure_target_ppm / 1e4,
               o.policy.proactive.backoff_usec / USEC_PER_SEC, HIGH_BYTES / MIB, o.policy.proactive.swappiness);
        fflush(stdout);
        for (int i = 0; r == 0 && i < N_RUNS; i++) {
                r = start_vm(m.h, i, &sh[i], file_fd, &runs[i]);
                if (r < 0)
                        fprintf(stderr, "FAIL: VM %s: %s\n", run_names[i], strerror(-r));
        }
        for (int i = 0; r == 0 && i < N_RUNS; i++) {
                MemLimits lim;

                if (i == RUN_PROACTIVE) {
                        static const MemPolVmSpec spec = { .ram_bytes = RAM };

                        r = mem_engine_new(m.h, &o, &engine);
                        if (r == 0)
                                r = mem_engine_vm_add(engine, &runs[i].vm.id, &spec, now_usec());
                } else {
                        r = limits_for(&o, i, &lim);
                        if (r == 0)
                                r = kh_mem_set_limits(m.h, &runs[i].vm.id, &lim, NULL);
                }
                if (r < 0)
                        fprintf(stderr, "FAIL: limits of %s: %s\n", run_names[i], strerror(-r));
        }
        if (r < 0) {
                failures++;
                goto out;
        }
        for (int i = 0; i < N_RUNS; i++)
                (void) memtest_vm_go(&runs[i].vm);
        start = now_usec();
        filled_at = 0;
        window_end = end = UINT64_MAX;
        for (uint64_t now = start;; now = now_usec()) {
                bool in_window = window_start && now >= window_start && now < window_end;

                if (!filled_at) {
                        bool all = true;

                        for (int i = 0; i < N_RUNS; i++)
                                all = all && atomic_load(&sh[i].filled) == N_VCPUS + 1;
                        if (all) {
                                filled_at = now;
                                window_start = now + opt.settle_sec * USEC_PER_SEC;
                                window_end = window_start + opt.window_sec * USEC_PER_SEC;
                                printf("filled in %.1f s; window from %u s to %u s after that\n",
                                       (double) (now - start) / 1e6, opt.settle_sec, opt.settle_sec + opt.window_sec);
                                fflush(stdout);
                        } else if (now - start > 120 * USEC_PER_SEC) {
                                fprintf(stderr, "FAIL: the VMs did not fill their memory in 120 s\n");
                                failures++;
                                goto out;
                        }
                }
                if (window_start && now >= window_start && !window_open) {
                        window_open = true;
                        for (int i = 0; i < N_RUNS; i++) {
                                runs[i].ops0 = atomic_load(&sh[i].ops);
                                runs[i].missed0 = atomic_load(&sh[i].missed);
                                runs[i].busy0 = atomic_load(&sh[i].busy_usec);
                                r = vcpu_delay_ns(m.ts, &runs[i], &runs[i].delay0_ns);
                                if (r < 0) {
                                        fprintf(stderr, "FAIL: taskstats: %s\n", strerror(-r));
                                        failures++;
                                        goto out;
                                }
                        }
                }
                if (now >= window_end && !grown_at) {
                        for (int i = 0; i < N_RUNS; i++) {
                                Run *x = &runs[i];

                                x->ops = atomic_load(&sh[i].ops) - x->ops0;
                                x->missed = atomic_load(&sh[i].missed) - x->missed0;
                                x->busy = atomic_load(&sh[i].busy_usec) - x->busy0;
                                x->window_usec = now - window_start;
                                r = vcpu_delay_ns(m.ts, x, &x->delay_ns);
                                if (r < 0) {
                                        fprintf(stderr, "FAIL: taskstats: %s\n", strerror(-r));
                                        failures++;
                                        goto out;
                                }
                                x->delay_ns -= x->delay0_ns;
                                for (int k = 0; k < N_VCPUS; k++) {
                                        atomic_store(&sh[i].clean_sweeps[k], 0);
                                        atomic_store(&sh[i].faulted_pages[k], 0);
                                }
                        }
                        if (engine)
                                (void) mem_engine_vm_report(engine, &runs[RUN_PROACTIVE].vm.id, &rep);
                        /* The hot set doubles, into memory each reclaimer had
                         * the time to find cold. */
                        for (int i = 0; i < N_RUNS; i++)
                                atomic_store(&sh[i].hot_pages, 2 * HOT_MIB * MIB / PAGE);
                        grown_at = now;
                        end = now + opt.regrow_sec * USEC_PER_SEC;
                }
                if (grown_at)
                        for (int i = 0; i < N_RUNS; i++)
                                check_regrown(&runs[i], &sh[i], grown_at);
                if (now >= end)
                        break;
                for (int i = 0; i < N_RUNS; i++)
                        sample(m.h, &runs[i], in_window);
                if (engine) {
                        int k = mem_engine_tick(engine, now);

                        if (k < 0 && tick_errors++ == 0)
                                tick_error = k;
                }
                /* For tuning: the proactive VM as the engine sees it. */
                if (engine && trace && now >= next_trace) {
                        MemVmReport t;

                        next_trace = now + USEC_PER_SEC;
                        if (mem_engine_vm_report(engine, &runs[RUN_PROACTIVE].vm.id, &t) == 0)
                                printf("  t=%5.1f current %.1f MiB low %.1f MiB backoff %.0f s asked %" PRIu64
                                       " MiB psi some avg10 %.2f %% total %" PRIu64 " ms refaults %" PRIu64 "/%" PRIu64
                                       " anon %.1f file %.1f MiB\n",
                                       (double) (now - start) / 1e6, (double) t.stat.current / MIB,
                                       (double) t.state.low / MIB, (double) t.state.backoff_usec / 1e6,
                                       t.proactive_bytes / MIB, t.stat.pressure.some_avg10 / 100.0,
                                       t.stat.pressure.some_total_usec / 1000, t.stat.workingset_refault_anon,
                                       t.stat.workingset_refault_file, (double) t.stat.anon / MIB,
                                       (double) t.stat.file / MIB);
                }
                usleep((useconds_t) LOOK_USEC);
        }
        for (int i = 0; i < N_RUNS; i++) {
                Run *x = &runs[i];

                for (int k = 0; k < N_VCPUS; k++)
                        x->regrow_faulted += atomic_load(&sh[i].faulted_pages[k]);
                if (x->n_current) {
                        uint64_t sum = 0;

                        for (size_t k = 0; k < x->n_current; k++)
                                sum += x->current[k];
                        x->mean = (double) sum / (double) x->n_current;
                        qsort(x->current, x->n_current, sizeof(*x->current), cmp_u64);
                        x->p95 =
                                (double) x->current[(x->n_current * 95) / 100 < x->n_current ? (x->n_current * 95) / 100
                                                                                             : x->n_current - 1];
                }
        }
        print_figures(runs, &rep);
        /* What a bug would show; the goals are the bench's. */
        for (int i = 0; i < N_RUNS; i++) {
                if (runs[i].ops == 0 || runs[i].n_current == 0) {
                        fprintf(stderr, "FAIL: %s did not run in the window\n", run_names[i]);
                        failures++;
                }
                if (runs[i].read_errors) {
                        fprintf(stderr, "FAIL: %s: %u memcg reads failed (%s)\n", run_names[i], runs[i].read_errors,
                                strerror(-runs[i].first_error));
                        failures++;
                }
        }
        if (tick_errors) {
                fprintf(stderr, "FAIL: %u engine ticks failed (%s)\n", tick_errors, strerror(-tick_error));
                failures++;
        }
        if (runs[RUN_NOTHING].mean <= 0 ||
            100.0 * (1.0 - runs[RUN_PROACTIVE].mean / runs[RUN_NOTHING].mean) < MIN_SAVED_PCT) {
                fprintf(stderr,
                        "FAIL: vmmgr's proactive reclaim saved under %.0f %% of the memory of the run with "
                        "nothing\n",
                        MIN_SAVED_PCT);
                failures++;
        }
        if (!runs[RUN_PROACTIVE].regrown) {
                fprintf(stderr, "FAIL: with vmmgr, the grown hot set was not resident %u s after it grew\n",
                        opt.regrow_sec);
                failures++;
        }
out:
        engine = mem_engine_free(engine);
        for (int i = 0; i < N_RUNS; i++) {
                if (memtest_vm_stop(m.h, &runs[i].vm) < 0) {
                        fprintf(stderr, "FAIL: cannot remove the %s VM's groups\n", run_names[i]);
                        failures++;
                }
                free(runs[i].current);
        }
        if (old_swappiness >= 0)
                (void) swappiness_set(old_swappiness, NULL);
        if (disk_id >= 0) {
                if (file_fd >= 0)
                        close(TAKE_FD(file_fd));
                disk_remove(disk_id);
        }
        if (memtest_host_close(&m) < 0) {
                fprintf(stderr, "FAIL: cleanup\n");
                failures++;
        }
        puts(failures ? "FAIL" : "PASS");
        return failures ? 1 : 0;
}
