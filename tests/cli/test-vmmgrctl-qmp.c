/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrctl qmp against peers: a real QEMU (return value printed as JSON),
 * a peer that accepts and then says nothing (exits non-zero within its
 * --timeout), a peer that sends garbage, and a missing socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/qmp/qemu-helper.h"

static char vmmgrctl[512];

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Runs vmmgrctl with args; returns its exit status and stdout. */
static int run_ctl(const char *const *args, char *out, size_t out_size) {
        int pipefd[2], status;
        size_t len = 0;
        pid_t pid;

        assert_int_equal(pipe(pipefd), 0);
        pid = fork();
        if (pid == 0) {
                const char *argv[16] = { vmmgrctl };
                size_t n = 1;
                for (; args[n - 1] && n < 15; n++)
                        argv[n] = args[n - 1];
                argv[n] = NULL;
                dup2(pipefd[1], 1);
                close(pipefd[0]);
                execv(vmmgrctl, (char **) argv);
                _exit(127);
        }
        close(pipefd[1]);
        for (;;) {
                ssize_t k = read(pipefd[0], out + len, out_size - 1 - len);
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        out[len] = '\0';
        close(pipefd[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A UNIX server that accepts and then does `mode`: 0 stall, 1 garbage. */
static pid_t fake_peer(const char *path, int mode) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pid_t pid;

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        pid = fork();
        if (pid == 0) {
                int c = accept(fd, NULL, NULL);
                if (c >= 0 && mode == 1) {
                        const char junk[] = "{\"QMP\": {\"version\": }}}}\r\n\x01\x02 garbage";
                        (void) !write(c, junk, sizeof(junk));
                }
                pause();
                _exit(0);
        }
        close(fd);
        return pid;
}

static void test_stalled_peer(void **state) {
        char dir[] = "/tmp/vmmgrctl-qmp-XXXXXX", path[128], out[4096];
        double t0, dt;
        pid_t peer;
        int rc;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/stall.sock", dir);
        peer = fake_peer(path, 0);
        t0 = now_s();
        rc = run_ctl((const char *[]) { "qmp", "--timeout", "1", path, "query-status", NULL }, out, sizeof(out));
        dt = now_s() - t0;
        kill(peer, SIGKILL);
        waitpid(peer, NULL, 0);
        print_message("stalled peer: exit %d after %.2f s\n", rc, dt);
        assert_int_equal(rc, 1);
        assert_true(dt < 2.5);
        unlink(path);
        rmdir(dir);
}

static void test_garbage_peer(void **state) {
        char dir[] = "/tmp/vmmgrctl-qmp-XXXXXX", path[128], out[4096];
        pid_t peer;
        int rc;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/junk.sock", dir);
        peer = fake_peer(path, 1);
        rc = run_ctl((const char *[]) { "qmp", "--timeout", "2", path, "query-status", NULL }, out, sizeof(out));
        kill(peer, SIGKILL);
        waitpid(peer, NULL, 0);
        assert_int_equal(rc, 1);
        assert_string_equal(out, "");
        unlink(path);
        rmdir(dir);
}

static void test_real_qemu(void **state) {
        static const TestQemuOptions opts = { .smp = 1 };
        TestQemu *vm = NULL;
        char out[4096];
        int r, rc;

        r = test_qemu_start(&opts, &vm);
        if (r == -ENOENT)
                skip();
        assert_int_equal(r, 0);
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "query-status", NULL }, out, sizeof(out));
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "\"running\":true"));
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "query-name", "not json", NULL }, out,
                     sizeof(out));
        assert_int_equal(rc, 2);
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "no-such-command", NULL }, out, sizeof(out));
        assert_int_equal(rc, 1);
        test_qemu_stop(vm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stalled_peer),
                cmocka_unit_test(test_garbage_peer),
                cmocka_unit_test(test_real_qemu),
        };
        const char *b = getenv("VMMGR_BUILD_ROOT");

        snprintf(vmmgrctl, sizeof(vmmgrctl), "%s/vmmgr/vmmgrctl", b ? b : ".");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
