/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/qmp/qemu-helper.c - starts real QEMU processes for tests (TCG, a
 * spinning boot sector) with their QMP sockets, and stops them.
 */
#include "qemu-helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"

struct TestQemu {
        pid_t pid;
        unsigned n_qmp;
        char dir[PATH_MAX];
        char qmp[TEST_QEMU_MAX_QMP][PATH_MAX];
        char pidfile[PATH_MAX];
        char log[PATH_MAX];
        char boot[PATH_MAX];
};

/* -ENOENT only when QEMU is not installed: nothing configured and no
 * qemu-system-x86_64 on $PATH.  A QEMU that VMMGR_QEMU names is one the
 * run was told to use: when it cannot be run that is -ENOEXEC, a failure
 * for the caller, never a skip. */
static int find_qemu(char *buf, size_t size) {
        const char *env = getenv("VMMGR_QEMU"), *path = getenv("PATH");
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (env && *env) {
                if (access(env, X_OK) < 0) {
                        fprintf(stderr, "VMMGR_QEMU=%s cannot be run: %m\n", env);
                        return -ENOEXEC;
                }
                snprintf(buf, size, "%s", env);
                return 0;
        }
        copy = strdup(path ? path : "/usr/bin:/bin");
        if (!copy)
                return -ENOMEM;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                if (snprintf(buf, size, "%s/qemu-system-x86_64", d) >= (int) size)
                        continue;
                if (access(buf, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

/* 512 bytes: "jmp $" at 0, the 0x55 0xAA signature at 510. */
static int write_boot_sector(const char *path) {
        unsigned char sector[512] = { 0xEB, 0xFE };
        _cleanup_close_ int fd = -EBADF;

        sector[510] = 0x55;
        sector[511] = 0xAA;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        if (write(fd, sector, sizeof(sector)) != (ssize_t) sizeof(sector))
                return -EIO;
        return 0;
}

static void print_log(const TestQemu *vm) {
        char buf[4096];
        _cleanup_fclose_ FILE *f = fopen(vm->log, "re");
        size_t n;

        if (!f)
                return;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fprintf(stderr, "--- %s ---\n%s--- end ---\n", vm->log, buf);
}

static void remove_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (d) {
                while ((de = readdir(d))) {
                        char p[PATH_MAX];

                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < (int) sizeof(p))
                                (void) unlink(p);
                }
                closedir(d);
        }
        (void) rmdir(dir);
}

int test_qemu_start(const TestQemuOptions *opts, TestQemu **ret) {
        static const TestQemuOptions defaults = {};
        char qemu[PATH_MAX], smp[32], mem[32], name[64];
        char qmp_args[TEST_QEMU_MAX_QMP][PATH_MAX + 64], iothread_args[16][64], drive[PATH_MAX + 64];
        const char *argv[128];
        size_t argc = 0;
        const char *tmp = getenv("TMPDIR");
        uint64_t deadline;
        TestQemu *vm;
        int r;

        if (!opts)
                opts = &defaults;
        if (opts->n_qmp > TEST_QEMU_MAX_QMP || opts->n_iothreads > 16)
                return -EINVAL;
        r = find_qemu(qemu, sizeof(qemu));
        if (r < 0)
                return r;

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->pid = -1;
        vm->n_qmp = opts->n_qmp ? opts->n_qmp : 1;
        /* Short paths: sun_path holds 108 bytes. */
        snprintf(vm->dir, sizeof(vm->dir), "%s/vmmgr-qemu-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(vm->dir)) {
                r = negative_errno();
                free(vm);
                return r;
        }
        for (unsigned i = 0; i < vm->n_qmp; i++)
                snprintf(vm->qmp[i], sizeof(vm->qmp[i]), "%s/qmp%u.sock", vm->dir, i);
        snprintf(vm->pidfile, sizeof(vm->pidfile), "%s/qemu.pid", vm->dir);
        snprintf(vm->log, sizeof(vm->log), "%s/qemu.log", vm->dir);
        snprintf(vm->boot, sizeof(vm->boot), "%s/boot.img", vm->dir);
        r = write_boot_sector(vm->boot);
        if (r < 0) {
                test_qemu_stop(vm);
                return r;
        }

        snprintf(smp, sizeof(smp), "%u", opts->smp ? opts->smp : 1);
        snprintf(mem, sizeof(mem), "%u", opts->memory_mib ? opts->memory_mib : 64);
        snprintf(name, sizeof(name), "vmmgr-test-%d,debug-threads=on", (int) getpid());
        snprintf(drive, sizeof(drive), "file=%s,format=raw,if=floppy", vm->boot);
        argv[argc++] = qemu;
        argv[argc++] = "-accel";
        argv[argc++] = "tcg,thread=multi";
        argv[argc++] = "-nodefaults";
        argv[argc++] = "-display";
        argv[argc++] = "none";
        argv[argc++] = "-name";
        argv[argc++] = name;
        argv[argc++] = "-smp";
        argv[argc++] = smp;
        argv[argc++] = "-m";
        argv[argc++] = mem;
        argv[argc++] = "-drive";
        argv[argc++] = drive;
        argv[argc++] = "-pidfile";
        argv[argc++] = vm->pidfile;
        for (unsigned i = 0; i < vm->n_qmp; i++) {
                snprintf(qmp_args[i], sizeof(qmp_args[i]), "unix:%s,server=on,wait=off", vm->qmp[i]);
                argv[argc++] = "-qmp";
                argv[argc++] = qmp_args[i];
        }
        for (unsigned i = 0; i < opts->n_iothreads; i++) {
                snprintf(iothread_args[i], sizeof(iothread_args[i]), "iothread,id=io%u", i);
                argv[argc++] = "-object";
                argv[argc++] = iothread_args[i];
        }
        if (opts->uuid) {
                argv[argc++] = "-uuid";
                argv[argc++] = opts->uuid;
        }
        for (size_t i = 0; opts->extra_args && opts->extra_args[i]; i++) {
                if (argc >= ARRAY_SIZE(argv) - 1) {
                        test_qemu_stop(vm);
                        return -E2BIG;
                }
                argv[argc++] = opts->extra_args[i];
        }
        argv[argc] = NULL;

        pid_t parent = getpid();
        vm->pid = fork();
        if (vm->pid < 0) {
                r = negative_errno();
                test_qemu_stop(vm);
                return r;
        }
        if (vm->pid == 0) {
                int fd;

                /* Die with the test, even if it crashes before its teardown. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                fd = open(vm->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd >= 0)
                        dup2(fd, STDIN_FILENO);
                execv(qemu, (char **) argv);
                _exit(127);
        }

        /* QEMU writes its pidfile, then creates the monitor sockets; both
         * appear as files, and there is no event to wait on for "QEMU has
         * bound a socket", so poll the file system briefly. */
        deadline = now_msec() + (uint64_t) (opts->start_timeout_ms > 0 ? opts->start_timeout_ms : 10000);
        for (;;) {
                struct stat st;
                bool all = stat(vm->pidfile, &st) == 0;
                int status;

                for (unsigned i = 0; all && i < vm->n_qmp; i++)
                        all = stat(vm->qmp[i], &st) == 0 && S_ISSOCK(st.st_mode);
                if (all)
                        break;
                if (waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
                        vm->pid = -1;
                        fprintf(stderr, "QEMU exited during start-up (status 0x%x)\n", status);
                        print_log(vm);
                        test_qemu_stop(vm);
                        return -ECHILD;
                }
                if (now_msec() > deadline) {
                        fprintf(stderr, "QEMU did not create its QMP sockets in time\n");
                        print_log(vm);
                        test_qemu_stop(vm);
                        return -ETIMEDOUT;
                }
                (void) poll(NULL, 0, 10);
        }
        *ret = vm;
        return 0;
}

pid_t test_qemu_pid(const TestQemu *vm) {
        return vm->pid;
}

const char *test_qemu_qmp_path(const TestQemu *vm, unsigned index) {
        return index < vm->n_qmp ? vm->qmp[index] : NULL;
}

const char *test_qemu_dir(const TestQemu *vm) {
        return vm->dir;
}

pid_t test_qemu_pidfile_pid(const TestQemu *vm) {
        _cleanup_fclose_ FILE *f = fopen(vm->pidfile, "re");
        long pid;

        if (!f)
                return negative_errno();
        if (fscanf(f, "%ld", &pid) != 1 || pid <= 0 || pid > INT_MAX)
                return -EBADMSG;
        return (pid_t) pid;
}

void test_qemu_stop(TestQemu *vm) {
        if (!vm)
                return;
        if (vm->pid > 0) {
                (void) kill(vm->pid, SIGKILL);
                while (waitpid(vm->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        remove_dir(vm->dir);
        free(vm);
}
