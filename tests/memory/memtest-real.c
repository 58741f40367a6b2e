/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/memory/memtest-real.c - see memtest-real.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macros.h"
#include "tests/memory/memtest-real.h"

/* zram as swap: a device of `size`, mkswap, swapon.  A device already
 * sized (a second run in the same boot) is taken as it is. */
static int zram_swap_on(const char *size) {
        _cleanup_close_ int fd = open("/sys/block/zram0/disksize", O_WRONLY | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        if (write(fd, size, strlen(size)) < 0 && errno != EBUSY)
                return negative_errno();
        if (system("mkswap /dev/zram0 >/dev/null") != 0)
                return -EIO;
        if (swapon("/dev/zram0", 0) < 0 && errno != EBUSY)
                return negative_errno();
        return 0;
}

int memtest_host_open(const char *subtree, const char *zram_size, MemtestHost *ret) {
        KHostConfig cfg = { .subtree = subtree };
        int r;

        *ret = (MemtestHost){ 0 };
        if (geteuid() != 0) {
                puts("SKIP: needs root");
                return 77;
        }
        if (kh_open(&cfg, &ret->h) < 0 || !kh_manages(ret->h, CG_CTRL_MEMORY) ||
            kh_controller_version(ret->h, CG_CTRL_MEMORY) != CG_V2) {
                puts("SKIP: vmmgr manages no cgroup v2 memory controller here");
                return 77;
        }
        if (kh_taskstats_open(&ret->ts) < 0 || kh_delayacct_get(ret->h, &ret->delayacct_was_on) < 0) {
                puts("SKIP: no taskstats or no kernel.task_delayacct here");
                return 77;
        }
        /* This machine is the test kernel's: its swap and its sysctl are
         * ours to set.  Elsewhere, leave the host alone. */
        if (!getenv("VMMGR_IN_TEST_KERNEL")) {
                puts("SKIP: changes swap and kernel.task_delayacct: runs inside the test kernel only");
                return 77;
        }
        r = zram_swap_on(zram_size);
        if (r < 0) {
                fprintf(stderr, "FAIL: zram swap: %s\n", strerror(-r));
                return 1;
        }
        /* Before any workload thread exists: the kernel gives a thread
         * its delay record at fork only. */
        r = kh_delayacct_set(ret->h, true);
        if (r == 0) {
                r = kh_subtree_setup(ret->h);
                ret->subtree = r == 0;
        }
        if (r < 0) {
                fprintf(stderr, "FAIL: setup: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

int memtest_host_close(MemtestHost *m) {
        int r = 0;

        if (m->subtree && kh_subtree_remove(m->h) < 0)
                r = -EBUSY;
        if (m->h && m->ts)
                (void) kh_delayacct_set(m->h, m->delayacct_was_on);
        m->ts = kh_taskstats_free(m->ts);
        m->h = kh_free(m->h);
        return r;
}

void memtest_report_thread(int fd, CgRole role) {
        MemtestThread me = { .tid = (pid_t) syscall(SYS_gettid), .role = role };

        (void) !write(fd, &me, sizeof(me));
}

void memtest_wait_go(int go_fd) {
        char c;

        while (read(go_fd, &c, 1) < 0 && errno == EINTR)
                ;
}

int memtest_vm_start(KHost *h, const char *uuid, MemtestVm *vm, void (*child)(void *arg, int fd, int go_fd), void *arg,
                     size_t n_threads, MemtestThread *ret_threads) {
        int to_parent[2] = { -EBADF, -EBADF }, to_child[2] = { -EBADF, -EBADF }, r;

        r = vm_id_parse(uuid, &vm->id);
        if (r < 0)
                return r;
        r = kh_vm_create(h, &vm->id);
        if (r < 0)
                return r;
        vm->created = true;
        if (pipe2(to_parent, O_CLOEXEC) < 0 || pipe2(to_child, O_CLOEXEC) < 0) {
                r = negative_errno();
                goto out;
        }
        vm->pid = fork();
        if (vm->pid < 0) {
                r = negative_errno();
                goto out;
        }
        if (vm->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                closep(&to_parent[0]);
                closep(&to_child[1]);
                child(arg, to_parent[1], to_child[0]);
                _exit(1); /* child() does not return */
        }
        vm->fd = TAKE_FD(to_parent[0]);
        vm->go_fd = TAKE_FD(to_child[1]);
        r = kh_vm_attach_process(h, &vm->id, vm->pid);
        for (size_t i = 0; r == 0 && i < n_threads; i++) {
                MemtestThread t;

                if (read(vm->fd, &t, sizeof(t)) != sizeof(t)) {
                        r = -EIO;
                        break;
                }
                if (ret_threads)
                        ret_threads[i] = t;
                r = kh_vm_attach_thread(h, &vm->id, t.role, t.tid);
        }
out:
        closep(&to_parent[0]);
        closep(&to_parent[1]);
        closep(&to_child[0]);
        closep(&to_child[1]);
        return r;
}

int memtest_vm_go(MemtestVm *vm) {
        return write(vm->go_fd, "g", 1) == 1 ? 0 : -EIO;
}

int memtest_vm_stop(KHost *h, MemtestVm *vm) {
        int r = 0;

        if (vm->pid > 0) {
                kill(vm->pid, SIGKILL);
                waitpid(vm->pid, NULL, 0);
                vm->pid = 0;
        }
        closep(&vm->fd);
        closep(&vm->go_fd);
        if (vm->created) {
                if (kh_vm_remove(h, &vm->id) < 0)
                        r = -EBUSY;
                vm->created = false;
        }
        return r;
}
