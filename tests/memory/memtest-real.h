/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/memory/memtest-real.h - what the real-kernel memory tests
 * (test-memory-stall, test-memory-savings) share: setting up the test
 * kernel they run in (zram swap, kernel.task_delayacct, vmmgr's subtree)
 * and a process placed as vmmgrd places a VM, whose threads say which
 * role they are.  For the test kernels only: the setup changes swap and a
 * sysctl, which a test must never do on a host.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/vmid.h"
#include "kernel/kernel.h"

typedef struct MemtestHost {
        KHost *h;
        KTaskstats *ts;
        bool delayacct_was_on;
        bool subtree; /* set up: removed by memtest_host_close() */
} MemtestHost;

/* Opens vmmgr's subtree `subtree`, taskstats, turns zram swap of
 * zram_size ("512M") and kernel.task_delayacct on.  0: ready; 77: skip,
 * the reason printed (not root, no cgroup v2 memory, no taskstats, not
 * inside a test kernel: VMMGR_IN_TEST_KERNEL unset); 1: a failure,
 * printed.  memtest_host_close() in every case. */
int memtest_host_open(const char *subtree, const char *zram_size, MemtestHost *ret);
/* Removes the subtree, puts the sysctl back.  -EBUSY when the subtree
 * could not be removed (a failure for the caller to report). */
int memtest_host_close(MemtestHost *m);

/* One "VM": a child process in vm-<uuid> whose threads report their
 * tids and roles on a pipe, and that waits for a byte before its work. */
typedef struct MemtestVm {
        VmId id;
        pid_t pid;
        int fd, go_fd; /* the parent's ends */
        bool created;  /* its groups exist */
} MemtestVm;

#define MEMTEST_VM_INIT ((MemtestVm){ .fd = -EBADF, .go_fd = -EBADF })

typedef struct MemtestThread {
        pid_t tid;
        CgRole role;
} MemtestThread;

/* In the child: the calling thread reports itself (atomic: the record is
 * smaller than PIPE_BUF). */
void memtest_report_thread(int fd, CgRole role);
/* In the child: blocks until the parent's memtest_vm_go(). */
void memtest_wait_go(int go_fd);

/* Creates the VM's groups, forks a child that runs child(arg, fd, go_fd)
 * (which never returns; it dies with the parent), reads n_threads
 * reports into ret_threads (may be NULL) and attaches the process to the
 * VM and each thread to its role.  Start from MEMTEST_VM_INIT;
 * memtest_vm_stop() on any result. */
int memtest_vm_start(KHost *h, const char *uuid, MemtestVm *vm, void (*child)(void *arg, int fd, int go_fd), void *arg,
                     size_t n_threads, MemtestThread *ret_threads);
/* Lets the child's threads start their work. */
int memtest_vm_go(MemtestVm *vm);
/* Kills the child and removes the VM's groups: -EBUSY when they could
 * not be removed. */
int memtest_vm_stop(KHost *h, MemtestVm *vm);
