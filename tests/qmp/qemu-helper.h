/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/qmp/qemu-helper.h - start and stop throwaway QEMU VMs for tests.
 *
 * A VM runs TCG (multi-threaded, one host thread per vCPU), no devices but
 * a floppy with a boot sector that spins ("jmp $"), so vCPU 0 burns a real
 * host CPU.  Every VM lives in its own temporary directory (QMP sockets,
 * pidfile, boot image, QEMU's stderr in qemu.log), which
 * test_qemu_stop() removes.  QEMU is started with PR_SET_PDEATHSIG(SIGKILL)
 * so it dies with the test process even when a test crashes; call
 * test_qemu_stop() from a cmocka teardown so it also goes on failure.
 *
 * Thread names: -name ...,debug-threads=on, so vCPU threads are called
 * "CPU <n>/TCG" and iothreads "IO <id>" in /proc/<pid>/task/<tid>/comm.
 */
#pragma once

#include <sys/types.h>

#define TEST_QEMU_MAX_QMP 4

typedef struct TestQemuOptions {
        unsigned smp;                   /* vCPUs; 0 means 1 */
        unsigned n_iothreads;           /* iothread objects io0, io1, ... */
        unsigned n_qmp;                 /* QMP sockets (monitors); 0 means 1 */
        unsigned memory_mib;            /* 0 means 64 */
        const char *uuid;               /* -uuid; NULL: none */
        const char *const *extra_args;  /* NULL-terminated extra arguments, or NULL */
        int start_timeout_ms;           /* wait for the sockets; 0 means 10000 */
} TestQemuOptions;

typedef struct TestQemu TestQemu;

/* Starts QEMU and waits until its pidfile and every QMP socket exist.
 * The binary is $VMMGR_QEMU, else qemu-system-x86_64 from $PATH.
 * Errors: -ENOENT only when QEMU is not installed (VMMGR_QEMU unset and no
 * qemu-system-x86_64 on $PATH): the one error to report as a skip.
 * Everything else is a failure of a QEMU that is there: -ENOEXEC when
 * VMMGR_QEMU names something that cannot be run (said on stderr), -ECHILD
 * when QEMU exited during start-up (its stderr is printed), -ETIMEDOUT,
 * other negative errno. */
int test_qemu_start(const TestQemuOptions *opts, TestQemu **ret);

pid_t test_qemu_pid(const TestQemu *vm);
/* Path of QMP socket index (0 .. n_qmp-1), NULL when out of range. */
const char *test_qemu_qmp_path(const TestQemu *vm, unsigned index);
/* The VM's temporary directory. */
const char *test_qemu_dir(const TestQemu *vm);
/* The pid QEMU wrote to its pidfile, or a negative errno. */
pid_t test_qemu_pidfile_pid(const TestQemu *vm);

/* Kills QEMU (SIGKILL; test VMs hold nothing worth a clean shutdown), reaps
 * it and removes the directory.  NULL is fine. */
void test_qemu_stop(TestQemu *vm);
