/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Real-kernel tier: vmmgr's memcg files on a real cgroup v2 (run inside the
 * test kernels by tests/realkernel/check; on a host where vmmgr does not
 * manage memory it skips).  A child process placed in a VM group allocates
 * and touches 64 MiB of page cache-free anonymous memory; then:
 *   - kh_mem_read sees it (memory.current, memory.stat anon), with PSI;
 *   - kh_mem_set_limits writes max/high/low/min/swap.max and reads back
 *     what the kernel applied (page-rounded);
 *   - kh_mem_reclaim of anonymous memory: without swap (the test kernel
 *     has none) nothing can go, so it must report -EAGAIN and the anon
 *     usage stays; with swap it must succeed.  With swappiness= it must
 *     answer as the feature probe says the kernel takes the option:
 *     -EOPNOTSUPP where it does not (6.1), else as without;
 *   - a dmem read on a kernel without dmem says -EOPNOTSUPP, not garbage;
 *   - a PSI trigger (memory, "some" 100 ms in 1 s) fires when the child,
 *     pushed over memory.high with nothing reclaimable, is throttled;
 *   - the group is removed after the child exits.
 * Exit: 0 pass, 1 fail, 77 skip.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/kernel.h"
#include "tests/common/check.h"

#define MIB (UINT64_C(1) << 20)

/* SwapTotal from /proc/meminfo in bytes, or a negative errno. */
static int64_t swap_total(void) {
        char line[256];
        long long kb = -1;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "SwapTotal: %lld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb < 0 ? -EBADMSG : (int64_t) kb * 1024;
}

int main(void) {
        KHostConfig cfg = { .subtree = "vmmgr-memtest" };
        KHost *h = NULL;
        MemStat st;
        MemLimits lim, applied;
        VmId vm;
        int pipefd[2], r;
        pid_t child;
        char c;

        if (geteuid() != 0 || kh_open(&cfg, &h) < 0 || !kh_manages(h, CG_CTRL_MEMORY) ||
            kh_controller_version(h, CG_CTRL_MEMORY) != CG_V2) {
                puts("SKIP: vmmgr manages no cgroup v2 memory controller here");
                kh_free(h);
                return 77;
        }
        r = kh_subtree_setup(h);
        if (r < 0) {
                printf("SKIP: cannot set up the subtree: %s\n", strerror(-r));
                kh_free(h);
                return 77;
        }
        vm_id_parse("9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", &vm);
        CHECK(kh_vm_create(h, &vm) == 0, "vm create");

        if (pipe(pipefd) < 0)
                return 1;
        child = fork();
        if (child == 0) {
                char *p;
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(pipefd[0]);
                /* Wait until the parent has placed us, then allocate. */
                usleep(200000);
                p = mmap(NULL, 64 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        _exit(1);
                for (size_t i = 0; i < 64 * MIB; i += 4096)
                        p[i] = 1;
                (void) !write(pipefd[1], "x", 1);
                /* On SIGUSR1 (blocked until then), allocate 64 MiB more. */
                {
                        sigset_t set;
                        int sig;
                        sigemptyset(&set);
                        sigaddset(&set, SIGUSR1);
                        sigprocmask(SIG_BLOCK, &set, NULL);
                        sigwait(&set, &sig);
                        p = mmap(NULL, 64 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                        if (p == MAP_FAILED)
                                _exit(1);
                        for (size_t i = 0; i < 64 * MIB; i += 4096)
                                p[i] = 1;
                }
                pause();
                _exit(0);
        }
        close(pipefd[1]);
        r = kh_vm_attach_process(h, &vm, child);
        CHECK(r == 0, "attach: %s", strerror(-r));
        CHECK(read(pipefd[0], &c, 1) == 1, "child did not allocate");

        r = kh_mem_read(h, &vm, &st);
        CHECK(r == 0, "mem read: %s", strerror(-r));
        printf("memory.current %" PRIu64 " MiB, anon %" PRIu64 " MiB, max %s, pressure some total %" PRIu64 " us\n",
               st.current / MIB, st.anon / MIB, st.max == MEM_MAX ? "max" : "set", st.pressure.some_total_usec);
        CHECK(st.current >= 64 * MIB && st.anon >= 60 * MIB, "usage not seen: current %" PRIu64, st.current);
        CHECK(st.max == MEM_MAX && st.high == MEM_MAX, "fresh group should have no limits");

        lim = (MemLimits) { .set = MEM_SET_MAX | MEM_SET_HIGH | MEM_SET_LOW | MEM_SET_MIN | MEM_SET_SWAP_MAX,
                            .max = 512 * MIB + 123, /* not page-aligned: the kernel rounds down */
                            .high = 256 * MIB,
                            .low = 32 * MIB,
                            .min = 16 * MIB,
                            .swap_max = 0 };
        r = kh_mem_set_limits(h, &vm, &lim, &applied);
        CHECK(r == 0, "set limits: %s", strerror(-r));
        CHECK(applied.max == 512 * MIB, "max read back %" PRIu64, applied.max);
        CHECK(applied.high == 256 * MIB && applied.low == 32 * MIB && applied.min == 16 * MIB,
              "read back high/low/min");
        r = kh_mem_read(h, &vm, &st);
        CHECK(r == 0 && st.max == 512 * MIB && st.low == 32 * MIB, "limits visible in kh_mem_read");

        {
                /* The group holds anonymous memory only: without swap the
                 * kernel cannot reclaim any of it and says so (-EAGAIN);
                 * with swap it can. */
                HostFeatures f = { .memory_reclaim_swappiness = TRI_UNKNOWN };
                int64_t swap = swap_total();
                uint64_t anon0;
                int want;

                CHECK(swap >= 0, "SwapTotal: %s", strerror((int) -swap));
                want = swap > 0 ? 0 : -EAGAIN;
                CHECK(kh_mem_read(h, &vm, &st) == 0, "mem read before reclaim");
                anon0 = st.anon;
                r = kh_mem_reclaim(h, &vm, 8 * MIB, -1);
                printf("swap %lld MiB; memory.reclaim 8 MiB of anon: %s\n", (long long) (swap > 0 ? swap : 0) / (1 << 20),
                       r == 0 ? "done" : strerror(-r));
                CHECK(r == want, "reclaim: %s, want %s", strerror(-r), want ? strerror(-want) : "success");
                CHECK(kh_mem_read(h, &vm, &st) == 0, "mem read after reclaim");
                if (swap == 0)
                        CHECK(st.anon + MIB >= anon0, "anon went from %" PRIu64 " to %" PRIu64 " without swap", anon0,
                              st.anon);
                /* swappiness=: as the probe found the kernel. */
                r = kh_probe(h, &f);
                CHECK(r == 0, "probe: %s", strerror(-r));
                CHECK(r < 0 || f.memory_reclaim_swappiness != TRI_UNKNOWN, "the probe does not know swappiness=");
                if (r == 0 && f.memory_reclaim_swappiness == TRI_NO)
                        want = -EOPNOTSUPP;
                r = kh_mem_reclaim(h, &vm, 1 * MIB, 60);
                printf("memory.reclaim 1 MiB swappiness=60 (the probe: %s): %s\n",
                       f.memory_reclaim_swappiness == TRI_YES  ? "taken"
                       : f.memory_reclaim_swappiness == TRI_NO ? "refused"
                                                               : "unknown",
                       r == 0 ? "done" : strerror(-r));
                CHECK(r == want, "reclaim with swappiness: %s, want %s", strerror(-r),
                      want ? strerror(-want) : "success");
                host_features_done(&f);
        }

        {
                /* Pressure: the trigger fires once the child stalls. */
                MemLimits high = { .set = MEM_SET_HIGH, .high = 32 * MIB };
                struct pollfd pfd = { .events = POLLPRI };
                int fd = kh_psi_trigger_open(h, &vm, PSI_MEMORY, false, 100000, 1000000);

                CHECK(fd >= 0, "psi trigger: %s", strerror(-fd));
                CHECK(kh_psi_trigger_open(h, &vm, PSI_MEMORY, false, 100000, 100000) == -EINVAL,
                      "a 100 ms window must be refused");
                CHECK(kh_mem_set_limits(h, &vm, &high, NULL) == 0, "lower memory.high");
                kill(child, SIGUSR1);
                if (fd >= 0) {
                        pfd.fd = fd;
                        r = poll(&pfd, 1, 10000);
                        printf("PSI memory trigger (some 100 ms / 1 s): %s\n",
                               r > 0 && (pfd.revents & POLLPRI) ? "fired" : "did not fire in 10 s");
                        CHECK(r > 0 && (pfd.revents & POLLPRI), "the PSI trigger did not fire");
                        close(fd);
                }
                r = kh_mem_read(h, &vm, &st);
                CHECK(r == 0 && st.ev_high > 0, "memory.events high not counted");
                printf("memory.events high %" PRIu64 ", pressure some total %" PRIu64 " us\n", st.ev_high,
                       st.pressure.some_total_usec);
        }
        {
                DmemRegion *regions = NULL;
                size_t n = 0;
                r = kh_dmem_read(h, &vm, &regions, &n);
                CHECK(r == -EOPNOTSUPP, "dmem on a kernel without it: %d", r);
                free(regions);
        }

        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        r = kh_vm_remove(h, &vm);
        CHECK(r == 0, "remove: %s", strerror(-r));
        CHECK(kh_subtree_remove(h) == 0, "subtree remove");
        kh_free(h);
        if (failures)
                return 1;
        puts("PASS");
        return 0;
}
