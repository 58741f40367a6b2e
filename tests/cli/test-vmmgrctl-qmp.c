/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrctl qmp against peers: a real QEMU (return value printed as JSON),
 * a peer that accepts and then says nothing (exits non-zero within its
 * --timeout), a peer that sends garbage, and a missing socket (exits 1 at
 * once, naming the path, nothing on stdout).  The real-QEMU case skips
 * only when QEMU is not installed; a QEMU that is there (or that
 * VMMGR_QEMU names) and does not start fails it.
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
#include <unistd.h>

#include "common/clock.h"
#include "tests/common/vtest.h"
#include "tests/qmp/qemu-helper.h"

static char vmmgrctl[512];

static void read_all(int fd, char *buf, size_t size) {
        size_t len = 0;

        for (;;) {
                ssize_t k = read(fd, buf + len, size - 1 - len);
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = '\0';
        close(fd);
}

/* Runs vmmgrctl with args; returns its exit status, its stdout in `out`
 * and, when `err` is not NULL, its stderr (both are a few lines, so
 * reading one after the other cannot fill a pipe). */
static int run_ctl_err(const char *const *args, char *out, size_t out_size, char *err, size_t err_size) {
        int outp[2], errp[2], status;
        pid_t pid;

        assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
        assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                const char *argv[16] = { vmmgrctl };
                size_t n = 1;
                for (; args[n - 1] && n < 15; n++)
                        argv[n] = args[n - 1];
                argv[n] = NULL;
                dup2(outp[1], 1);
                if (err)
                        dup2(errp[1], 2);
                execv(vmmgrctl, (char **) argv);
                _exit(127);
        }
        close(outp[1]);
        close(errp[1]);
        read_all(outp[0], out, out_size);
        if (err)
                read_all(errp[0], err, err_size);
        else
                close(errp[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int run_ctl(const char *const *args, char *out, size_t out_size) {
        return run_ctl_err(args, out, out_size, NULL, 0);
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
        t0 = now_sec();
        rc = run_ctl((const char *[]) { "qmp", "--timeout", "1", path, "query-status", NULL }, out, sizeof(out));
        dt = now_sec() - t0;
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

/* No socket at all: connect() fails at once, so vmmgrctl says why on
 * stderr and exits 1 without waiting out its --timeout. */
static void test_missing_socket(void **state) {
        char dir[] = "/tmp/vmmgrctl-qmp-XXXXXX", path[128], out[4096], err[4096];
        double t0, dt;
        int rc;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/absent.sock", dir);
        t0 = now_sec();
        rc = run_ctl_err((const char *[]) { "qmp", "--timeout", "5", path, "query-status", NULL }, out, sizeof(out),
                         err, sizeof(err));
        dt = now_sec() - t0;
        assert_int_equal(rmdir(dir), 0);
        print_message("missing socket: exit %d after %.2f s: %s", rc, dt, err);
        assert_int_equal(rc, 1);
        assert_string_equal(out, "");
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, strerror(ENOENT)));
        assert_true(dt < 2.5);
}

static int stop_qemu(void **state) {
        test_qemu_stop(*state);
        *state = NULL;
        return 0;
}

static void test_real_qemu(void **state) {
        static const TestQemuOptions opts = { .smp = 1 };
        TestQemu *vm = NULL;
        char out[4096];
        int r, rc;

        r = test_qemu_start(&opts, &vm);
        if (r == -ENOENT)
                vt_skip("QEMU is not installed (no qemu-system-x86_64 on PATH, VMMGR_QEMU unset)");
        if (r < 0)
                fail_msg("QEMU did not start: %s", strerror(-r));
        *state = vm;
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "query-status", NULL }, out, sizeof(out));
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "\"running\":true"));
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "query-name", "not json", NULL }, out,
                     sizeof(out));
        assert_int_equal(rc, 2);
        rc = run_ctl((const char *[]) { "qmp", test_qemu_qmp_path(vm, 0), "no-such-command", NULL }, out, sizeof(out));
        assert_int_equal(rc, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stalled_peer),
                cmocka_unit_test(test_garbage_peer),
                cmocka_unit_test(test_missing_socket),
                cmocka_unit_test_teardown(test_real_qemu, stop_qemu),
        };
        const char *b = getenv("VMMGR_BUILD_ROOT");

        snprintf(vmmgrctl, sizeof(vmmgrctl), "%s/vmmgr/vmmgrctl", b ? b : ".");
        return vt_run_group_tests(tests, NULL, NULL);
}
