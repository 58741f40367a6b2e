/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Real-kernel tier: vmmgr's memcg files on a real cgroup v2 (run inside the
 * test kernels by tests/realkernel/check; on a host where vmmgr does not
 * manage memory it skips).  A child process placed in a VM group allocates
 * and touches 64 MiB of page cache-free anonymous memory; then:
 *   - kh_mem_read sees it (memory.current, memory.stat anon), with PSI;
 *   - kh_mem_set_limits writes max/high/low/min/swap.max and reads back
 *     what the kernel applied (page-rounded);
 *   - kh_mem_reclaim is accepted or reports -EAGAIN for what it could not
 *     reclaim (no swap in the test kernel: anon memory cannot go);
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

        /* No swap here: anon memory cannot be reclaimed, the kernel says so. */
        r = kh_mem_reclaim(h, &vm, 8 * MIB, -1);
        printf("memory.reclaim 8 MiB: %s\n", r == 0 ? "done" : strerror(-r));
        CHECK(r == 0 || r == -EAGAIN, "reclaim: %s", strerror(-r));
        r = kh_mem_reclaim(h, &vm, 1 * MIB, 60);
        CHECK(r == 0 || r == -EAGAIN || r == -EOPNOTSUPP, "reclaim with swappiness: %s", strerror(-r));

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
