/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/realkernel/test-cpu-max-runtime.c - cpu.max.runtime on a real
 * kernel: the stand-alone twin of the selftest that kernel/patches/ adds to
 * tools/testing/selftests/cgroup/test_cpu.c, with measurements on top.
 *
 * Runs inside the test kernels booted by tests/realkernel/vmtest (cgroup v2 with the
 * cpu controller enabled at the root):
 *
 *   patched kernel  (v2 of the series) set / add / subtract, saturation
 *                   at 0 and quota + burst, "max" without a quota, burst
 *                   above quota, unthrottle on "+N" well before the next
 *                   period (its median is a figure,
 *                   kernel.patched.inject_unthrottle_ms, that
 *                   tests/realkernel/bench.sh holds to 1 ms), a
 *                   credit-injection run whose extra CPU use matches the
 *                   injected runtime within 2 %, 1,000 read-and-write-back
 *                   rounds under load over three slice sizes without a
 *                   failure (kernel.patched.readback_write_failures), and
 *                   an idle pool gaining a quota per period the kernel
 *                   counted, within one quota (kernel.patched.idle_gap_pct),
 *                   and a read that does not move while a stopped group's
 *                   local runtime goes back to the pool
 *                   (kernel.patched.read_error_usec)
 *   stock kernel    no cpu.max.runtime: those checks skip; what vmmgr does
 *                   instead (raise the quota with a cpu.max write) is
 *                   measured, and so is the wait for the next period
 *
 * Which kernel it is comes from the harness, not from the file it tests:
 * VMMGR_EXPECT_CPU_MAX_RUNTIME=1 (patched) or 0 (stock), else
 * VMMGR_TEST_KERNEL=patched|stock (tests/realkernel/vmtest sets it).  A patched
 * kernel without cpu.max.runtime fails, and so does a stock one with it.
 * With neither variable (a run by hand on some other kernel) the file's
 * presence decides, and the test says so.
 *
 * Prints TAP-style "ok N - name" lines, "# " notes and
 * "figure: NAME VALUE UNIT" lines.  The test takes the cgroup2 root as its
 * only argument (default: found in /proc/self/mountinfo) and works in a
 * group of its own beneath it, removed at the end.
 * Exit status: 0 pass, 1 fail, 2 bad usage, 77 skip (with the reason).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* meson passes it; a bare "gcc -I. tests/realkernel/test-cpu-max-runtime.c" does not */
#endif
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#define EXIT_SKIP 77
#define STR_(x) #x
#define STR(x) STR_(x)
#define NSEC_PER_USEC 1000ull
#define NSEC_PER_MSEC 1000000ull
#define NSEC_PER_SEC CLOCK_NSEC_PER_SEC

/* The throttled pattern every latency trial starts from: 5 ms per 100 ms.
 * A group that overran its runtime (by a tick, or by far more when a TCG
 * vCPU thread is descheduled while it runs) owes the difference, and
 * runtime handed to it pays that first: the injection is much larger than
 * the usual debt, so that what is measured is the unthrottle, not the debt. */
#define LAT_QUOTA_USEC 5000
#define LAT_PERIOD_USEC 100000
#define LAT_INJECT_USEC 50000
#define LAT_BURST_USEC 100000
#define LAT_TRIALS 9
#define LAT_MAX_TRIES (3 * LAT_TRIALS)
/* A spinner silent for this long is throttled, not merely preempted. */
#define THROTTLED_GAP_NS (5 * NSEC_PER_MSEC)
/* The spinner records a resume when its clock jumps by more than this. */
#define RESUME_GAP_NS (1 * NSEC_PER_MSEC)

/* The credit-injection run: 1 % baseline, 1 s injected, 2.5 s measured. */
#define INJ_QUOTA_USEC 1000
#define INJ_PERIOD_USEC 100000
#define INJ_BURST_USEC 2000000
#define INJ_RUNTIME_USEC 1000000
#define INJ_WINDOW_NSEC (2500 * NSEC_PER_MSEC)
#define INJ_TOLERANCE_PCT 2.0

static int n_tests, n_failed;
static char root[PATH_MAX];  /* the cgroup2 mount */
static char top[PATH_MAX];   /* our own group under it */
static const char *flavour;  /* "patched" or "stock": what the harness says */
static bool expect_runtime;  /* the harness says: patched, cpu.max.runtime must exist */
static bool have_runtime;    /* cpu.max.runtime exists */
static int n_cpus;

static void result(bool ok, const char *name) {
        n_tests++;
        if (!ok)
                n_failed++;
        printf("%s %d - %s\n", ok ? "ok" : "not ok", n_tests, name);
        fflush(stdout);
}

static void skipped(const char *name, const char *why) {
        n_tests++;
        printf("ok %d - %s # SKIP %s\n", n_tests, name, why);
        fflush(stdout);
}

/* A case that needs cpu.max.runtime, on a kernel without the file: a skip
 * on the stock kernel, a failure on the patched one. */
static void without_runtime(const char *name) {
        if (expect_runtime) {
                printf("# %s: cpu.max.runtime is missing on the patched kernel\n", name);
                result(false, name);
        } else
                skipped(name, "no cpu.max.runtime (stock kernel)");
}

static void sleep_ns(uint64_t ns) {
        struct timespec ts = { .tv_sec = (time_t) (ns / NSEC_PER_SEC), .tv_nsec = (long) (ns % NSEC_PER_SEC) };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- cgroupfs -------------------------------------------------------- */

static int path_of(char *buf, size_t size, const char *dir, const char *file) {
        int n = snprintf(buf, size, "%s/%s", dir, file);

        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* One write(2) of the whole string; 0 or -errno (-EIO on a short write). */
static int cg_write(const char *dir, const char *file, const char *value) {
        char path[PATH_MAX];
        size_t len = strlen(value);
        ssize_t n;
        int fd, r;

        r = path_of(path, sizeof(path), dir, file);
        if (r < 0)
                return r;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = write(fd, value, len);
        r = n < 0 ? -errno : (size_t) n != len ? -EIO : 0;
        close(fd);
        return r;
}

static int cg_read(const char *dir, const char *file, char *buf, size_t size) {
        char path[PATH_MAX];
        ssize_t n;
        int fd, r;

        r = path_of(path, sizeof(path), dir, file);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        r = n < 0 ? -errno : 0;
        close(fd);
        if (r == 0)
                buf[n] = '\0';
        return r;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || (*end != '\0' && *end != '\n' && *end != ' '))
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int cg_read_u64(const char *dir, const char *file, uint64_t *ret) {
        char buf[64];
        int r = cg_read(dir, file, buf, sizeof(buf));

        return r < 0 ? r : parse_u64(buf, ret);
}

/* A "key value" line of a flat-keyed file such as cpu.stat. */
static int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *ret) {
        char buf[1024];
        size_t klen = strlen(key);
        int r = cg_read(dir, file, buf, sizeof(buf));

        if (r < 0)
                return r;
        for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        return parse_u64(line + klen + 1, ret);
        return -ENOENT;
}

static int cg_write_u64(const char *dir, const char *file, uint64_t v) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return cg_write(dir, file, buf);
}

static int cg_set_max(const char *dir, uint64_t quota_usec, uint64_t period_usec) {
        char buf[64];

        snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, quota_usec, period_usec);
        return cg_write(dir, "cpu.max", buf);
}

static int cg_make(const char *name, char *ret, size_t size) {
        int r = path_of(ret, size, top, name);

        if (r < 0)
                return r;
        return mkdir(ret, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* rmdir, retried briefly: a reaped task leaves its group asynchronously. */
static void cg_remove(const char *dir) {
        for (int i = 0; i < 100; i++) {
                if (rmdir(dir) == 0 || errno == ENOENT)
                        return;
                if (errno != EBUSY)
                        break;
                sleep_ns(10 * NSEC_PER_MSEC);
        }
        printf("# warning: cannot remove %s: %s\n", dir, strerror(errno));
}

static int find_cgroup2(char *ret, size_t size) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        int r = -ENOENT;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                char mnt[PATH_MAX], fstype[64];
                const char *sep = strstr(line, " - ");

                /* "id parent maj:min root mountpoint opts ... - fstype src opts" */
                if (!sep || sscanf(sep, " - %63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
                        continue;
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
                        continue;
                if (strlen(mnt) >= size) {
                        r = -ENAMETOOLONG;
                        break;
                }
                strcpy(ret, mnt);
                r = 0;
                break;
        }
        fclose(f);
        return r;
}

/* ---- the spinner ----------------------------------------------------- */

/* Shared with the spinner child: it stamps the time continuously and
 * records each resume after a gap (the moment it ran again). */
typedef struct Spin {
        _Atomic uint64_t last_ns;
        _Atomic uint64_t resume_ns;   /* first stamp after the latest gap */
        _Atomic uint64_t gap_ns;      /* length of that gap */
        _Atomic uint64_t n_resumes;
} Spin;

typedef struct Spinner {
        pid_t pid;
        Spin *s;
} Spinner;

/* Pins the caller to one CPU; cpu < 0: lets it run anywhere again. */
static void pin_to(int cpu) {
        cpu_set_t set;

        if (n_cpus < 2)
                return;
        CPU_ZERO(&set);
        for (int i = 0; i < n_cpus && i < CPU_SETSIZE; i++)
                if (cpu < 0 || i == cpu)
                        CPU_SET(i, &set);
        (void) sched_setaffinity(0, sizeof(set), &set);
}

static void spinner_stop(Spinner *sp) {
        if (sp->pid > 0) {
                kill(sp->pid, SIGKILL);
                waitpid(sp->pid, NULL, 0);
        }
        sp->pid = 0;
        if (sp->s)
                munmap(sp->s, sizeof(*sp->s));
        sp->s = NULL;
}

/* Starts a spinner on CPU 1 in group dir; it spins only once it is there. */
static int spinner_start(Spinner *sp, const char *dir) {
        int go[2], r;
        char c = 0;

        sp->pid = 0;
        sp->s = mmap(NULL, sizeof(*sp->s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sp->s == MAP_FAILED) {
                sp->s = NULL;
                return -errno;
        }
        if (pipe2(go, O_CLOEXEC) < 0)
                return -errno;
        sp->pid = fork();
        if (sp->pid < 0) {
                r = -errno;
                close(go[0]);
                close(go[1]);
                return r;
        }
        if (sp->pid == 0) {
                Spin *s = sp->s;
                uint64_t prev, t;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(go[1]);
                pin_to(1);
                if (read(go[0], &c, 1) != 1)
                        _exit(1);
                prev = now_nsec();
                for (;;) {
                        t = now_nsec();
                        if (t - prev > RESUME_GAP_NS) {
                                atomic_store(&s->gap_ns, t - prev);
                                atomic_store(&s->resume_ns, t);
                                atomic_fetch_add(&s->n_resumes, 1);
                        }
                        atomic_store(&s->last_ns, t);
                        prev = t;
                }
        }
        close(go[0]);
        r = cg_write_u64(dir, "cgroup.procs", (uint64_t) sp->pid);
        if (r == 0 && write(go[1], &c, 1) != 1)
                r = -EIO;
        close(go[1]);
        if (r < 0)
                spinner_stop(sp);
        return r;
}

/* Waits until the spinner has been silent for THROTTLED_GAP_NS. */
static int wait_throttled(const Spinner *sp, uint64_t timeout_ns) {
        uint64_t end = now_nsec() + timeout_ns;

        for (;;) {
                uint64_t t = now_nsec(), last = atomic_load(&sp->s->last_ns);

                if (last != 0 && t > last && t - last > THROTTLED_GAP_NS)
                        return 0;
                if (t > end)
                        return -ETIMEDOUT;
                sleep_ns(200 * NSEC_PER_USEC);
        }
}

/* Waits until the spinner resumes after n_before; *ret_ns = resume time,
 * as the spinner stamped it.  Polls with short sleeps rather than spinning:
 * under TCG a spinning waiter takes a host CPU that the spinner's vCPU
 * may need to be woken up promptly. */
static int wait_resume(const Spinner *sp, uint64_t n_before, uint64_t timeout_ns, uint64_t *ret_ns,
                       uint64_t *ret_gap_ns) {
        uint64_t end = now_nsec() + timeout_ns;

        while (atomic_load(&sp->s->n_resumes) == n_before) {
                if (now_nsec() > end)
                        return -ETIMEDOUT;
                sleep_ns(100 * NSEC_PER_USEC);
        }
        *ret_ns = atomic_load(&sp->s->resume_ns);
        if (ret_gap_ns)
                *ret_gap_ns = atomic_load(&sp->s->gap_ns);
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
        qsort(v, (size_t) n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- cpu.max.runtime: file semantics ---------------------------------- */

/* Tolerance for reads: a period refill (+quota) may land between a write
 * and the read that checks it. */
static bool runtime_is(const char *g, uint64_t want, uint64_t quota, uint64_t cap) {
        uint64_t got;

        if (cg_read_u64(g, "cpu.max.runtime", &got) < 0)
                return false;
        for (int k = 0; k <= 2; k++) {
                uint64_t v = want + (uint64_t) k * quota;

                if (got == (v > cap ? cap : v))
                        return true;
        }
        printf("# cpu.max.runtime reads %" PRIu64 ", expected %" PRIu64 "\n", got, want);
        return false;
}

static void test_runtime_file(void) {
        /* Quota 1 ms, burst 99 ms: cap 100 ms; a 1 s period keeps refills rare. */
        const uint64_t q = 1000, p = 1000000, b = 99000, cap = q + b;
        char g[PATH_MAX], path[PATH_MAX];
        struct stat st;
        int r;

        if (!have_runtime) {
                without_runtime("cpu.max.runtime: set, add, subtract, reject");
                return;
        }
        r = cg_make("runtime-file", g, sizeof(g));
        if (r < 0) {
                result(false, "cpu.max.runtime: create group");
                return;
        }

        /* Not on the root group (CFTYPE_NOT_ON_ROOT). */
        path_of(path, sizeof(path), root, "cpu.max.runtime");
        result(stat(path, &st) < 0 && errno == ENOENT, "cpu.max.runtime: absent on the root group");

        /* Unlimited quota: no pool to read or change. */
        r = cg_write(g, "cpu.max", "max 100000");
        {
                char buf[32] = "";

                result(r == 0 && cg_read(g, "cpu.max.runtime", buf, sizeof(buf)) == 0 && strcmp(buf, "max\n") == 0,
                       "cpu.max.runtime: reads \"max\" while cpu.max is \"max\"");
        }
        result(r == 0 && cg_write(g, "cpu.max.runtime", "1000") == -EINVAL &&
                       cg_write(g, "cpu.max.runtime", "+1000") == -EINVAL,
               "cpu.max.runtime: EINVAL while cpu.max is \"max\"");

        r = cg_set_max(g, q, p);
        if (r == 0)
                r = cg_write_u64(g, "cpu.max.burst", b);
        result(r == 0, "cpu.max.burst above the quota is accepted (99 ms over 1 ms)");
        if (r < 0) {
                printf("# cpu.max / cpu.max.burst: %s\n", strerror(-r));
                cg_remove(g);
                return;
        }

        r = cg_write(g, "cpu.max.runtime", "50000");
        result(r == 0 && runtime_is(g, 50000, q, cap), "cpu.max.runtime: set \"50000\"");
        r = cg_write(g, "cpu.max.runtime", "+20000");
        result(r == 0 && runtime_is(g, 70000, q, cap), "cpu.max.runtime: add \"+20000\"");
        r = cg_write(g, "cpu.max.runtime", "-30000");
        result(r == 0 && runtime_is(g, 40000, q, cap), "cpu.max.runtime: subtract \"-30000\"");
        r = cg_write(g, "cpu.max.runtime", "100000");
        result(r == 0 && runtime_is(g, cap, q, cap), "cpu.max.runtime: set to the cap (quota + burst)");

        /* v2 of the series: writes saturate, so a balance read anywhere can be
         * written anywhere (a migration's destination). */
        result(cg_write(g, "cpu.max.runtime", "100001") == 0 && runtime_is(g, cap, q, cap),
               "cpu.max.runtime: \"N\" above quota + burst sets the cap");
        result(cg_write(g, "cpu.max.runtime", "+1000") == 0 && runtime_is(g, cap, q, cap),
               "cpu.max.runtime: \"+N\" past the cap stops at the cap");
        r = cg_write(g, "cpu.max.runtime", "10000");
        result(r == 0 && cg_write(g, "cpu.max.runtime", "-500000") == 0 && runtime_is(g, 0, q, cap),
               "cpu.max.runtime: \"-N\" past zero stops at zero");
        result(cg_write(g, "cpu.max.runtime", "18446744073709551615") == -EINVAL &&
                       cg_write(g, "cpu.max.runtime", "+18446744073709551615") == -EINVAL &&
                       cg_write(g, "cpu.max.runtime", "99999999999999999999") == -EINVAL,
               "cpu.max.runtime: EINVAL beyond the bandwidth maximum");
        result(cg_write(g, "cpu.max.runtime", "abc") == -EINVAL &&
                       cg_write(g, "cpu.max.runtime", "+-5") == -EINVAL &&
                       cg_write(g, "cpu.max.runtime", "5 6") == -EINVAL,
               "cpu.max.runtime: EINVAL for malformed values");
        r = cg_write(g, "cpu.max.runtime", "0");
        result(r == 0 && runtime_is(g, 0, q, cap), "cpu.max.runtime: set \"0\"");

        /* The burst bound on its own (no wrap of burst + quota). */
        result(cg_write(g, "cpu.max.burst", "18446744073709551") == -EINVAL,
               "cpu.max.burst: EINVAL beyond the bandwidth maximum");
        cg_remove(g);
}

/* ---- unthrottle latency ---------------------------------------------- */

typedef enum Inject {
        INJECT_RUNTIME, /* cpu.max.runtime "+N" (patched kernels) */
        INJECT_QUOTA,   /* cpu.max raised by N and put back: stock kernels */
        INJECT_NONE,    /* nothing: the wait for the next period */
} Inject;

typedef struct LatResult {
        double median_ms, max_ms;
} LatResult;

/* One trial: waits until the spinner is throttled, hands it runtime the
 * way `how` says and returns in *ret_ms the time from the start of the
 * write to the spinner running (INJECT_NONE: the length of the throttled
 * stretch).  1: the trial does not count (the spinner ran again before
 * the write: it was off CPU, not throttled, e.g. a descheduled vCPU). */
static int lat_trial(const char *g, Spinner *sp, Inject how, double *ret_ms) {
        uint64_t before, t0, resumed, gap;
        int r;

        r = wait_throttled(sp, 5 * NSEC_PER_SEC);
        if (r < 0) {
                printf("# the spinner never got throttled\n");
                return r;
        }
        before = atomic_load(&sp->s->n_resumes);
        t0 = now_nsec();
        switch (how) {
        case INJECT_RUNTIME:
                r = cg_write(g, "cpu.max.runtime", "+" STR(LAT_INJECT_USEC));
                break;
        case INJECT_QUOTA:
                r = cg_set_max(g, LAT_QUOTA_USEC + LAT_INJECT_USEC, LAT_PERIOD_USEC);
                break;
        case INJECT_NONE:
                r = 0;
                break;
        }
        if (r < 0) {
                printf("# inject: %s\n", strerror(-r));
                return r;
        }
        r = wait_resume(sp, before, 5 * NSEC_PER_SEC, &resumed, &gap);
        if (r < 0) {
                printf("# the spinner did not run again within 5 s\n");
                return r;
        }
        if (how == INJECT_QUOTA) {
                r = cg_set_max(g, LAT_QUOTA_USEC, LAT_PERIOD_USEC);
                if (r < 0)
                        return r;
        }
        if (resumed < t0)
                return 1;
        *ret_ms = how == INJECT_NONE ? (double) gap / 1e6 : (double) (resumed - t0) / 1e6;
        return 0;
}

/* Runs LAT_TRIALS valid trials of each method in hows[], interleaved in
 * one group so that every method sees the same host: under TCG the time
 * to wake a vCPU changes from second to second with the host's load. */
static int measure_unthrottle(const Inject *hows, int n_hows, LatResult *ret) {
        double lat[2][LAT_TRIALS];
        int n[2] = { 0 }, r = 0;
        bool runtime = false;
        char g[PATH_MAX];
        Spinner sp = { 0 };

        assert(n_hows <= 2);
        for (int k = 0; k < n_hows; k++)
                runtime |= hows[k] == INJECT_RUNTIME;
        r = cg_make("latency", g, sizeof(g));
        if (r < 0)
                return r;
        r = cg_set_max(g, LAT_QUOTA_USEC, LAT_PERIOD_USEC);
        /* Room in the pool for the injection: the cap is quota + burst. */
        if (r == 0 && runtime)
                r = cg_write_u64(g, "cpu.max.burst", LAT_BURST_USEC);
        if (r == 0)
                r = spinner_start(&sp, g);
        if (r < 0)
                goto out;
        pin_to(0);

        for (int k = 0, tries = 0;; k = (k + 1) % n_hows) {
                bool done = true;

                for (int i = 0; i < n_hows; i++)
                        done &= n[i] == LAT_TRIALS;
                if (done)
                        break;
                if (n[k] == LAT_TRIALS)
                        continue;
                if (tries++ == LAT_MAX_TRIES * n_hows) {
                        printf("# too many trials did not count\n");
                        r = -EAGAIN;
                        goto out;
                }
                r = lat_trial(g, &sp, hows[k], &lat[k][n[k]]);
                if (r < 0)
                        goto out;
                if (r == 0)
                        n[k]++;
        }
        for (int k = 0; k < n_hows; k++) {
                ret[k].max_ms = 0;
                for (int i = 0; i < LAT_TRIALS; i++)
                        if (lat[k][i] > ret[k].max_ms)
                                ret[k].max_ms = lat[k][i];
                ret[k].median_ms = median(lat[k], LAT_TRIALS);
        }
        r = 0;
out:
        pin_to(-1);
        spinner_stop(&sp);
        cg_remove(g);
        return r;
}

static void test_unthrottle(void) {
        static const Inject wait_only[] = { INJECT_NONE };
        static const Inject writes[] = { INJECT_QUOTA, INJECT_RUNTIME };
        const LatResult *none = NULL, *quota = NULL, *rt = NULL;
        LatResult res_none, res[2];
        char name[128];
        int r;

        if (n_cpus < 2) {
                skipped("unthrottle latency", "needs 2 CPUs (boot with -smp 2)");
                return;
        }

        /* The undisturbed pattern first: with writes in between, a
         * throttled stretch would start anywhere in a period. */
        if (measure_unthrottle(wait_only, 1, &res_none) == 0)
                none = &res_none;
        r = measure_unthrottle(writes, have_runtime ? 2 : 1, res);
        if (r == 0) {
                quota = &res[0];
                rt = have_runtime ? &res[1] : NULL;
        }

        result(none != NULL, "a throttled group waits for the next period");
        if (none) {
                printf("# throttled stretch at %d us / %d us: median %.2f ms, max %.2f ms (%d trials)\n",
                       LAT_QUOTA_USEC, LAT_PERIOD_USEC, none->median_ms, none->max_ms, LAT_TRIALS);
                printf("figure: kernel.%s.period_refill_wait_ms %.3f ms\n", flavour, none->median_ms);
        }

        result(quota && quota->median_ms < LAT_PERIOD_USEC / 1000.0 / 10,
               "raising the quota (cpu.max) unthrottles well before the next period");
        if (quota) {
                printf("# cpu.max write -> spinner runs: median %.3f ms, max %.3f ms (%d trials)\n",
                       quota->median_ms, quota->max_ms, LAT_TRIALS);
                printf("figure: kernel.%s.quota_write_unthrottle_ms %.3f ms\n", flavour, quota->median_ms);
                if (!have_runtime && !expect_runtime)
                        printf("figure: kernel.stock.inject_unthrottle_ms %.3f ms\n", quota->median_ms);
        }

        /* What this test judges is that the write acts at once rather than
         * at the next period.  How fast is a figure: the 1 ms target is the
         * bench's to judge (tests/realkernel/bench.sh), as it is, whatever
         * the host's load; the cpu.max write's median, measured in the
         * same trials, is printed next to it for context. */
        snprintf(name, sizeof(name), "cpu.max.runtime \"+%d\" unthrottles well before the next period (< %d ms)",
                 LAT_INJECT_USEC, LAT_PERIOD_USEC / 1000 / 10);
        if (!have_runtime) {
                without_runtime(name);
                return;
        }
        result(rt && rt->median_ms < LAT_PERIOD_USEC / 1000.0 / 10, name);
        if (rt) {
                printf("# cpu.max.runtime write -> spinner runs: median %.3f ms, max %.3f ms (%d trials); "
                       "the bench holds the median to 1 ms\n",
                       rt->median_ms, rt->max_ms, LAT_TRIALS);
                printf("figure: kernel.patched.inject_unthrottle_ms %.3f ms\n", rt->median_ms);
        }
}

/* ---- credit injection ------------------------------------------------- */

static void test_injection(void) {
        const char *name = "credit injection: extra CPU use matches the injected runtime within 2 %";
        uint64_t use0, use1, per0, per1, pool0, pool1, t0, t1;
        double extra_ms, err_pct;
        char g[PATH_MAX];
        Spinner sp = { 0 };
        int r;

        if (!have_runtime) {
                without_runtime(name);
                return;
        }
        r = cg_make("inject", g, sizeof(g));
        if (r < 0) {
                result(false, name);
                return;
        }
        r = cg_set_max(g, INJ_QUOTA_USEC, INJ_PERIOD_USEC);
        if (r == 0)
                r = cg_write_u64(g, "cpu.max.burst", INJ_BURST_USEC);
        if (r == 0)
                r = spinner_start(&sp, g);
        if (r < 0) {
                printf("# set-up: %s\n", strerror(-r));
                goto out;
        }
        sleep_ns(300 * NSEC_PER_MSEC); /* the 1 % pattern */

        t0 = now_nsec();
        if ((r = cg_read_key(g, "cpu.stat", "usage_usec", &use0)) < 0 ||
            (r = cg_read_key(g, "cpu.stat", "nr_periods", &per0)) < 0 ||
            (r = cg_read_u64(g, "cpu.max.runtime", &pool0)) < 0 ||
            (r = cg_write(g, "cpu.max.runtime", "+" STR(INJ_RUNTIME_USEC))) < 0)
                goto out;
        sleep_ns(INJ_WINDOW_NSEC);
        if ((r = cg_read_key(g, "cpu.stat", "usage_usec", &use1)) < 0 ||
            (r = cg_read_key(g, "cpu.stat", "nr_periods", &per1)) < 0 ||
            (r = cg_read_u64(g, "cpu.max.runtime", &pool1)) < 0)
                goto out;
        t1 = now_nsec();

        /* What the group used beyond its quota of every period it went through. */
        extra_ms = ((double) (use1 - use0) - (double) INJ_QUOTA_USEC * (double) (per1 - per0)) / 1000.0;
        err_pct = (extra_ms - INJ_RUNTIME_USEC / 1000.0) / (INJ_RUNTIME_USEC / 1000.0) * 100.0;
        printf("# injected %d ms at %d us / %d us (burst %d us): over %.2f s the group used %.1f ms "
               "in %" PRIu64 " periods, %.1f ms beyond its quota (%+.2f %%); pool %" PRIu64 " us before, %" PRIu64
               " us after\n",
               INJ_RUNTIME_USEC / 1000, INJ_QUOTA_USEC, INJ_PERIOD_USEC, INJ_BURST_USEC, (double) (t1 - t0) / 1e9,
               (double) (use1 - use0) / 1000.0, per1 - per0, extra_ms, err_pct, pool0, pool1);
        printf("figure: kernel.patched.inject_accuracy_pct %.2f %%\n", err_pct);
        result(err_pct >= -INJ_TOLERANCE_PCT && err_pct <= INJ_TOLERANCE_PCT, name);
        spinner_stop(&sp);
        cg_remove(g);
        return;
out:
        if (r < 0)
                printf("# %s\n", strerror(-r));
        result(false, name);
        spinner_stop(&sp);
        cg_remove(g);
}

/* ---- main -------------------------------------------------------------- */

/* What the harness says this kernel is: 1 patched, 0 stock, -1 not said
 * (*ret_from: the variable that said it), -EINVAL for a value that is
 * neither. */
/* ---- v2 of the series: the pool is a bank the kernel keeps -------------- */

static int write_slice_us(uint64_t us) {
        char buf[32];
        int fd = open("/proc/sys/kernel/sched_cfs_bandwidth_slice_us", O_WRONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        snprintf(buf, sizeof(buf), "%" PRIu64, us);
        n = write(fd, buf, strlen(buf));
        close(fd);
        return n == (ssize_t) strlen(buf) ? 0 : -EIO;
}

/* The CFS bandwidth slice in usec; 0 where the sysctl is missing. */
static uint64_t read_slice_us(void) {
        char proc[64];
        uint64_t v = 0;
        int fd = open("/proc/sys/kernel/sched_cfs_bandwidth_slice_us", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, proc, sizeof(proc) - 1) : -1;

        if (fd >= 0)
                close(fd);
        if (n > 0) {
                proc[n] = '\0';
                (void) parse_u64(proc, &v);
        }
        return v;
}

/* A balance read is always a value that can be written back: 1,000 rounds
 * over slices of 1, 5 and 50 ms while a thread spins in the group. */
static void test_readback(void) {
        static const uint64_t slices[] = { 1000, 5000, 50000 };
        const char *name = "cpu.max.runtime: every value read can be written back (1,000 rounds, 3 slice sizes)";
        unsigned failures = 0, rounds = 0;
        uint64_t slice0 = 0, v;
        char g[PATH_MAX], buf[32];
        Spinner sp = { 0 };
        int r;

        if (!have_runtime) {
                without_runtime(name);
                return;
        }
        r = cg_make("readback", g, sizeof(g));
        if (r == 0)
                r = cg_set_max(g, 20000, 100000);
        if (r == 0)
                r = spinner_start(&sp, g);
        if (r < 0) {
                printf("# set-up: %s\n", strerror(-r));
                result(false, name);
                spinner_stop(&sp);
                cg_remove(g);
                return;
        }
        slice0 = read_slice_us();
        for (size_t i = 0; i < sizeof(slices) / sizeof(slices[0]); i++) {
                if (slice0 == 0 ? i > 0 : write_slice_us(slices[i]) < 0)
                        break;
                sleep_ns(100 * NSEC_PER_MSEC);
                for (unsigned k = 0; k < 1000 / 3 + 1; k++, rounds++) {
                        if (cg_read_u64(g, "cpu.max.runtime", &v) < 0) {
                                failures++;
                                continue;
                        }
                        snprintf(buf, sizeof(buf), "%" PRIu64, v);
                        if (cg_write(g, "cpu.max.runtime", buf) < 0)
                                failures++;
                }
        }
        if (slice0 > 0)
                (void) write_slice_us(slice0);
        printf("# %u rounds of read and write back, %u failed\n", rounds, failures);
        printf("figure: kernel.patched.readback_write_failures %u count\n", failures);
        result(rounds > 0 && failures == 0, name);
        spinner_stop(&sp);
        cg_remove(g);
}

/* The pool accrues while the group is idle: 3 s at 10 ms / 100 ms with a
 * 990 ms burst add a quota per period the kernel counted. */
static void test_idle_gap(void) {
        const char *name = "cpu.max.runtime: an idle group's pool gains a quota per period (within one quota)";
        const uint64_t quota = 10000, cap = 1000000;
        uint64_t per0, per1, got, want;
        char g[PATH_MAX];
        int r;

        if (!have_runtime) {
                without_runtime(name);
                return;
        }
        r = cg_make("idle-gap", g, sizeof(g));
        if (r == 0)
                r = cg_set_max(g, quota, 100000);
        if (r == 0)
                r = cg_write_u64(g, "cpu.max.burst", cap - quota);
        if (r == 0)
                r = cg_write(g, "cpu.max.runtime", "0");
        if (r == 0)
                r = cg_read_key(g, "cpu.stat", "nr_periods", &per0);
        if (r == 0) {
                sleep_ns(3 * NSEC_PER_SEC);
                r = cg_read_u64(g, "cpu.max.runtime", &got);
        }
        if (r == 0)
                r = cg_read_key(g, "cpu.stat", "nr_periods", &per1);
        if (r < 0) {
                printf("# %s\n", strerror(-r));
                result(false, name);
                cg_remove(g);
                return;
        }
        want = (per1 - per0) * quota;
        if (want > cap)
                want = cap;
        printf("# idle 3 s: %" PRIu64 " periods, pool %" PRIu64 " us, %" PRIu64 " us expected\n", per1 - per0, got,
               want);
        printf("figure: kernel.patched.idle_gap_pct %.2f %%\n",
               want ? ((double) got - (double) want) * 100.0 / (double) want : 0.0);
        result(per1 - per0 >= 25 && (got > want ? got - want : want - got) <= quota, name);
        cg_remove(g);
}

/* The read is the balance: what a group can still run, its CPUs' local
 * runtime included.  A spinner that stops holds up to a slice on its CPU,
 * which the slack timer hands back to the pool a few ms later; the
 * balance must not move meanwhile (v1 read the pool only, so it jumped by
 * what came back).  50 ms slices make the difference plain.  Five trials
 * within one period; the largest change is the figure
 * kernel.patched.read_error_usec (goal: under one slice). */
static void test_read_balance(void) {
        const char *name = "cpu.max.runtime: the read is the balance, local runtime included (within a slice)";
        const uint64_t slice_us = 50000;
        uint64_t slice0 = 0, worst = 0, r1, r2, per1, per2;
        unsigned trials = 0;
        char g[PATH_MAX];
        Spinner sp = { 0 };
        int r;

        if (!have_runtime) {
                without_runtime(name);
                return;
        }
        slice0 = read_slice_us();
        if (slice0 == 0 || write_slice_us(slice_us) < 0) {
                skipped(name, "no sched_cfs_bandwidth_slice_us to set");
                return;
        }
        r = cg_make("read-balance", g, sizeof(g));
        if (r == 0)
                r = cg_set_max(g, 900000, 1000000);
        if (r == 0)
                r = spinner_start(&sp, g);
        for (int i = 0; r == 0 && i < 10 && trials < 5; i++) {
                sleep_ns(20 * NSEC_PER_MSEC); /* running: a slice on its CPU */
                if (kill(sp.pid, SIGSTOP) < 0) {
                        r = -errno;
                        break;
                }
                sleep_ns(NSEC_PER_MSEC); /* off the CPU */
                if ((r = cg_read_key(g, "cpu.stat", "nr_periods", &per1)) < 0 ||
                    (r = cg_read_u64(g, "cpu.max.runtime", &r1)) < 0)
                        break;
                sleep_ns(30 * NSEC_PER_MSEC); /* the slack timer returns it */
                if ((r = cg_read_u64(g, "cpu.max.runtime", &r2)) < 0 ||
                    (r = cg_read_key(g, "cpu.stat", "nr_periods", &per2)) < 0)
                        break;
                (void) kill(sp.pid, SIGCONT);
                if (per1 != per2)
                        continue; /* a refill in between: not comparable */
                trials++;
                if ((r1 > r2 ? r1 - r2 : r2 - r1) > worst)
                        worst = r1 > r2 ? r1 - r2 : r2 - r1;
        }
        (void) write_slice_us(slice0);
        if (r < 0) {
                printf("# %s\n", strerror(-r));
                result(false, name);
        } else {
                printf("# %u trials with %" PRIu64 " us slices: the read moved by at most %" PRIu64
                       " us while the group stood still\n",
                       trials, slice_us, worst);
                printf("figure: kernel.patched.read_error_usec %" PRIu64 " us\n", worst);
                result(trials >= 3 && worst <= slice_us, name);
        }
        spinner_stop(&sp);
        cg_remove(g);
}

static int expectation(const char **ret_from) {
        const char *v = getenv("VMMGR_EXPECT_CPU_MAX_RUNTIME");

        *ret_from = "VMMGR_EXPECT_CPU_MAX_RUNTIME";
        if (v && *v)
                return strcmp(v, "1") == 0 ? 1 : strcmp(v, "0") == 0 ? 0 : -EINVAL;
        v = getenv("VMMGR_TEST_KERNEL");
        *ret_from = "VMMGR_TEST_KERNEL";
        if (v && *v)
                return strcmp(v, "patched") == 0 ? 1 : strcmp(v, "stock") == 0 ? 0 : -EINVAL;
        *ret_from = NULL;
        return -1;
}

int main(int argc, char **argv) {
        char buf[256], path[PATH_MAX];
        const char *expect_from;
        struct utsname u;
        struct stat st;
        int expect, r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        expect = expectation(&expect_from);
        if (expect == -EINVAL) {
                printf("%s: %s must be %s\n", argv[0], expect_from,
                       strcmp(expect_from, "VMMGR_TEST_KERNEL") == 0 ? "patched or stock" : "1 or 0");
                return 2;
        }
        n_cpus = (int) sysconf(_SC_NPROCESSORS_ONLN);
        if (geteuid() != 0) {
                printf("SKIP: needs root\n");
                return EXIT_SKIP;
        }
        if (argc > 1) {
                if (strlen(argv[1]) >= sizeof(root))
                        return EXIT_SKIP;
                strcpy(root, argv[1]);
        } else if (find_cgroup2(root, sizeof(root)) < 0) {
                printf("SKIP: no cgroup2 mount\n");
                return EXIT_SKIP;
        }
        r = cg_read(root, "cgroup.subtree_control", buf, sizeof(buf));
        if (r < 0 || !strstr(buf, "cpu")) {
                if (r < 0 || cg_write(root, "cgroup.subtree_control", "+cpu") < 0) {
                        printf("SKIP: the cpu controller is not enabled on cgroup2 at %s\n", root);
                        return EXIT_SKIP;
                }
        }
        snprintf(top, sizeof(top), "%s/vmmgr-rt-%d", root, (int) getpid());
        if (mkdir(top, 0755) < 0) {
                printf("SKIP: cannot create %s: %s\n", top, strerror(errno));
                return EXIT_SKIP;
        }
        r = cg_write(top, "cgroup.subtree_control", "+cpu");
        if (r < 0) {
                printf("SKIP: cannot enable cpu under %s: %s\n", top, strerror(-r));
                cg_remove(top);
                return EXIT_SKIP;
        }
        path_of(path, sizeof(path), top, "cpu.max.runtime");
        have_runtime = stat(path, &st) == 0;
        expect_runtime = expect < 0 ? have_runtime : expect == 1;
        flavour = expect_runtime ? "patched" : "stock";
        uname(&u);
        printf("# kernel %s, %d CPUs, cgroup2 at %s, cpu.max.runtime %s\n", u.release, n_cpus, root,
               have_runtime ? "present" : "absent");
        if (expect < 0) {
                printf("# neither VMMGR_EXPECT_CPU_MAX_RUNTIME nor VMMGR_TEST_KERNEL is set: taken as the %s "
                       "kernel because cpu.max.runtime is %s\n",
                       flavour, have_runtime ? "present" : "absent");
        } else {
                printf("# %s says: the %s kernel\n", expect_from, flavour);
                result(have_runtime == expect_runtime,
                       expect_runtime ? "cpu.max.runtime exists (patched kernel)"
                                      : "no cpu.max.runtime (stock kernel)");
        }

        test_runtime_file();
        test_unthrottle();
        test_injection();
        test_readback();
        test_idle_gap();
        test_read_balance();

        cg_remove(top);
        printf("1..%d\n# %d of %d failed\n", n_tests, n_failed, n_tests);
        return n_failed ? 1 : 0;
}
