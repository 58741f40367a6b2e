/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel suite: batched counter reads (kernel.h) on this host's real
 * cgroup files, in a subtree of our own (vmmgr-test-<pid>, cpu and
 * cpuacct) that is removed at the end.  8 VMs, one with a spinning
 * process in its vcpus group:
 *   - through io_uring where the probe finds it usable (else said, and
 *     only the pread path runs): every VM's usage read in one io_uring
 *     submit, the values the same as kh_cpu_read_stat()'s, bracketed by
 *     reads before and after;
 *   - the pread fallback forced by the switch (KH_READ_PREAD): one pread
 *     per file, the same values;
 *   - a VM's groups removed under its kept-open (and registered) files:
 *     both paths read -ENOENT (kernfs answers -ENODEV).
 * Exit status: 0 pass, 1 fail, 77 skip (not root, no cpu controller).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/kernel.h"
#include "tests/common/check.h"

#define EXIT_SKIP 77
#define N_VMS 8

static KHost *host;
static VmId vms[N_VMS];
static bool created[N_VMS];
static pid_t child;

static void cleanup(void) {
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                child = 0;
        }
        for (size_t i = 0; i < N_VMS; i++)
                if (created[i] && kh_vm_remove(host, &vms[i]) == 0)
                        created[i] = false;
        (void) kh_subtree_remove(host);
}

/* Each VM's usage through the readers, in one batch on `path`; returns
 * the batch's syscalls for it. */
static uint64_t batched_usage(KhReadBatch *b, KhReadPath path, KhCpuStatReader **rd, size_t n, uint64_t *usage,
                              int *ret_error) {
        KhReadBatchStats s0, s1;
        int r;

        *ret_error = 0;
        r = kh_read_batch_set_path(b, path);
        CHECK(r == 0, "set path %s: %s", kh_read_path_to_string(path), strerror(-r));
        kh_read_batch_stats(b, &s0);
        for (size_t i = 0; i < n; i++)
                kh_cpu_stat_reader_queue(rd[i], KH_CPU_READ_STAT);
        r = kh_read_batch_run(b);
        kh_read_batch_stats(b, &s1);
        for (size_t i = 0; i < n; i++) {
                CpuStat st;

                r = kh_cpu_stat_reader_read(rd[i], &st);
                if (r < 0) {
                        *ret_error = r;
                        usage[i] = 0;
                } else
                        usage[i] = st.usage_usec;
        }
        kh_read_batch_discard(b);
        return s1.syscalls - s0.syscalls;
}

int main(void) {
        char subtree[64];
        KHostConfig cfg = { .subtree = subtree,
                            .controllers = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_CPUACCT) };
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KhCpuStatReader *rd[N_VMS] = { 0 };
        uint64_t before[N_VMS], batched[N_VMS], after[N_VMS], calls;
        KhReadPath paths[2] = { KH_READ_PATH_PREAD, KH_READ_PATH_IO_URING };
        size_t n_paths = 1;
        KhReadProbe p;
        int r, err;

        snprintf(subtree, sizeof(subtree), "vmmgr-test-%d", (int) getpid());
        if (geteuid() != 0) {
                printf("SKIP: needs root to create cgroups\n");
                return EXIT_SKIP;
        }
        r = kh_open(&cfg, &host);
        if (r < 0 || !kh_manages(host, CG_CTRL_CPU)) {
                printf("SKIP: no cpu controller to manage here\n");
                kh_free(host);
                return EXIT_SKIP;
        }
        r = kh_subtree_setup(host);
        if (r < 0) {
                printf("SKIP: cpu controller not writable here: %s\n", strerror(-r));
                kh_subtree_remove(host);
                kh_free(host);
                return EXIT_SKIP;
        }
        /* A ring if usable, so both paths run on the same readers. */
        r = kh_read_batch_new(host, KH_READ_IO_URING, &b, &p);
        CHECK(r == 0, "batch: %s", strerror(-r));
        printf("cpu controller: cgroup v%d; io_uring: %s (%s)\n", kh_controller_version(host, CG_CTRL_CPU),
               p.io_uring == TRI_YES ? "usable" : "not usable", p.note);
        if (p.io_uring == TRI_YES) {
                CHECK(kh_read_batch_path(b) == KH_READ_PATH_IO_URING, "io_uring usable but not used");
                n_paths = 2;
        } else
                printf("io_uring not usable here: the pread path only\n");

        for (size_t i = 0; i < N_VMS; i++) {
                char id[64];

                snprintf(id, sizeof(id), "7e57ba7c-0000-4000-8000-%012zx", i + 1);
                CHECK(vm_id_parse(id, &vms[i]) == 0, "id");
                r = kh_vm_create(host, &vms[i]);
                CHECK(r == 0, "vm create: %s", strerror(-r));
                created[i] = r == 0;
                r = kh_cpu_stat_reader_open(host, &vms[i], CG_ROLE_VCPUS, &rd[i]);
                CHECK(r == 0, "reader: %s", strerror(-r));
        }
        if (failures)
                goto out;
        child = fork();
        if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        __asm__ volatile("" ::: "memory");
        }
        CHECK(child > 0, "fork");
        r = kh_vm_attach_process(host, &vms[0], child);
        if (r == 0)
                r = kh_vm_attach_thread(host, &vms[0], CG_ROLE_VCPUS, child);
        CHECK(r == 0, "attach: %s", strerror(-r));
        usleep(100000);

        for (size_t k = 0; k < n_paths; k++) {
                const char *name = kh_read_path_to_string(paths[k]);

                for (size_t i = 0; i < N_VMS; i++) {
                        CpuStat st;

                        r = kh_cpu_read_stat(host, &vms[i], CG_ROLE_VCPUS, &st);
                        CHECK(r == 0, "cpu.stat: %s", strerror(-r));
                        before[i] = st.usage_usec;
                }
                usleep(50000);
                calls = batched_usage(b, paths[k], rd, N_VMS, batched, &err);
                CHECK(err == 0, "%s: batched read: %s", name, strerror(-err));
                usleep(50000);
                for (size_t i = 0; i < N_VMS; i++) {
                        CpuStat st;

                        r = kh_cpu_read_stat(host, &vms[i], CG_ROLE_VCPUS, &st);
                        CHECK(r == 0, "cpu.stat: %s", strerror(-r));
                        after[i] = st.usage_usec;
                        CHECK(before[i] <= batched[i] && batched[i] <= after[i],
                              "%s: VM %zu's usage %" PRIu64 " not within %" PRIu64 "..%" PRIu64, name, i, batched[i],
                              before[i], after[i]);
                }
                CHECK(batched[0] > before[0], "%s: the spinning VM's usage did not move", name);
                /* v1: cpu.stat and cpuacct.usage per VM; v2: cpu.stat. */
                if (paths[k] == KH_READ_PATH_IO_URING)
                        CHECK(calls == 1, "io_uring: %" PRIu64 " syscalls for a batch, not 1", calls);
                else
                        CHECK(calls >= N_VMS, "pread: %" PRIu64 " syscalls for %d VMs", calls, N_VMS);
                printf("%s: %d VMs' usage in %" PRIu64 " syscall(s), each within the direct reads around it\n", name,
                       N_VMS, calls);
        }

        /* The last VM's groups go (no thread in them) while its files are
         * open and registered: every path reads -ENOENT. */
        r = kh_vm_remove(host, &vms[N_VMS - 1]);
        CHECK(r == 0, "remove: %s", strerror(-r));
        created[N_VMS - 1] = r != 0;
        for (size_t k = 0; k < n_paths; k++) {
                calls = batched_usage(b, paths[k], &rd[N_VMS - 1], 1, batched, &err);
                CHECK(err == -ENOENT, "%s: a removed group read %s, not -ENOENT", kh_read_path_to_string(paths[k]),
                      strerror(-err));
        }
        {
                uint64_t u;

                r = kh_cpu_stat_reader_read_usage(rd[N_VMS - 1], &u);
                CHECK(r == -ENOENT, "a removed group read %s on its own, not -ENOENT", strerror(-r));
        }
        printf("a removed group reads -ENOENT on %s\n", n_paths == 2 ? "both paths" : "the pread path");

        /* The switch: pread only, no ring. */
        {
                _cleanup_read_batch_ KhReadBatch *off = NULL;

                for (size_t i = 0; i < N_VMS; i++)
                        rd[i] = kh_cpu_stat_reader_free(rd[i]);
                b = kh_read_batch_free(b);
                r = kh_read_batch_new(host, KH_READ_PREAD, &off, &p);
                CHECK(r == 0 && kh_read_batch_path(off) == KH_READ_PATH_PREAD, "switched off: not pread");
                CHECK(kh_read_batch_set_path(off, KH_READ_PATH_IO_URING) == -EOPNOTSUPP, "switched off: a ring");
                for (size_t i = 0; i < N_VMS - 1; i++) {
                        r = kh_cpu_stat_reader_open(host, &vms[i], CG_ROLE_VCPUS, &rd[i]);
                        CHECK(r == 0, "reader: %s", strerror(-r));
                }
                if (!failures) {
                        calls = batched_usage(off, KH_READ_PATH_PREAD, rd, N_VMS - 1, batched, &err);
                        CHECK(err == 0 && calls >= N_VMS - 1, "switched off: %s, %" PRIu64 " syscalls", strerror(-err),
                              calls);
                        printf("io_uring = no: pread, %" PRIu64 " syscalls for %d VMs (%s)\n", calls, N_VMS - 1, p.note);
                }
                for (size_t i = 0; i < N_VMS; i++)
                        rd[i] = kh_cpu_stat_reader_free(rd[i]);
        }
out:
        for (size_t i = 0; i < N_VMS; i++)
                kh_cpu_stat_reader_free(rd[i]);
        b = kh_read_batch_free(b);
        cleanup();
        for (size_t i = 0; i < N_VMS; i++)
                CHECK(!created[i], "VM %zu's groups left behind", i);
        kh_free(host);
        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("PASS\n");
        return 0;
}
