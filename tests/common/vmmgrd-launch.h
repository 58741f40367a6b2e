/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/vmmgrd-launch.h - the one way tests start a real vmmgrd.
 *
 * test_vmmgrd_start() forks vmmgrd --foreground with the caller's state
 * dir, socket, subtree and config, and returns only once vmmgrd is up: it
 * said READY=1 on a notification socket of the launcher's own
 * (NOTIFY_SOCKET, as systemd would be told) and then answered GET /v1/host
 * with 200 on its API socket.  Waiting is on events (the notification
 * socket and a pidfd for vmmgrd's exit), not on a sleep loop.  When
 * vmmgrd exits, never says it is ready or does not answer, the launcher
 * says why on stderr, shows the end of vmmgrd's log, leaves nothing
 * running and returns an error: a test never goes on with a vmmgrd that
 * is not there.
 *
 * vmmgrd gets PR_SET_PDEATHSIG(SIGTERM), so a test that crashes still
 * stops it cleanly (with --remove-subtree-on-exit its groups go too).
 *
 * Header-only, like the rest of tests/common, so that any test linking
 * vmmgr_dep (for the HTTP client) can use it without a library of its
 * own in its meson.build.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "vmmgr/api/http-client.h"

typedef struct TestVmmgrdOptions {
        const char *socket;         /* --socket; required */
        const char *state_dir;      /* --state-dir; required */
        const char *subtree;        /* --subtree; NULL: vmmgrd's default */
        const char *config;         /* --config; NULL: none */
        bool remove_subtree_on_exit; /* --remove-subtree-on-exit */
        /* vmmgrd's stderr is appended here and shown when a start or stop
         * fails; NULL: vmmgrd writes to the test's stderr. */
        const char *log;
        int timeout_ms;             /* ready and answering within; 0 means 10000 */
} TestVmmgrdOptions;

/* The vmmgrd binary: $VMMGR_BUILD_ROOT/vmmgr/vmmgrd when meson set it,
 * else ../../vmmgr/vmmgrd from the test's own executable (tests live in
 * <build>/tests/<dir>/), which also holds inside the test kernels.
 * -ENOENT when there is none (not built), -ENAMETOOLONG. */
static inline int test_vmmgrd_path(char *buf, size_t size);

/* Starts vmmgrd and waits until it is up (see above); *ret_pid on success.
 * Errors, each said on stderr with vmmgrd's log: -EINVAL (no socket or
 * state dir), -ENOENT (no vmmgrd binary), -ECHILD (vmmgrd exited: its
 * status is printed), -ETIMEDOUT (no READY=1 or no answer in time: vmmgrd
 * is killed and reaped), -EPROTO (it answered GET /v1/host with something
 * other than 200), other negative errno. */
static inline int test_vmmgrd_start(const TestVmmgrdOptions *o, pid_t *ret_pid);

/* Sends `sig` and reaps vmmgrd, waiting at most 10 s (then SIGKILL and
 * -ETIMEDOUT).  Returns the wait status (>= 0; WIFEXITED/WEXITSTATUS
 * apply) and sets *pid to 0.  *pid <= 0: nothing to do, returns 0.
 * `log` (may be NULL) is shown when vmmgrd had to be killed, or exited
 * with anything but 0 after a signal other than SIGKILL. */
static inline int test_vmmgrd_stop(pid_t *pid, int sig, const char *log);

/* ---- implementation ------------------------------------------------------ */

#define TEST_VMMGRD_TIMEOUT_MS 10000
#define TEST_VMMGRD_STOP_TIMEOUT_MS 10000
#define TEST_VMMGRD_LOG_TAIL 4096

extern char **environ;

static inline int test_vmmgrd_path(char *buf, size_t size) {
        const char *b = getenv("VMMGR_BUILD_ROOT");
        char self[PATH_MAX];
        ssize_t n;
        int k;

        if (b && *b)
                k = snprintf(buf, size, "%s/vmmgr/vmmgrd", b);
        else {
                n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                if (n < 0)
                        return negative_errno();
                self[n] = '\0';
                /* <build>/tests/<dir>/<test> -> <build>/vmmgr/vmmgrd */
                k = snprintf(buf, size, "%s/../../vmmgr/vmmgrd", dirname(self));
        }
        if (k < 0 || (size_t) k >= size)
                return -ENAMETOOLONG;
        return access(buf, X_OK) < 0 ? -ENOENT : 0;
}

static inline void vmmgrd_show_log(const char *log) {
        char buf[TEST_VMMGRD_LOG_TAIL + 1];
        _cleanup_close_ int fd = -EBADF;
        off_t end;
        ssize_t n;

        if (!log)
                return; /* vmmgrd wrote to our stderr: it is above */
        fd = open(log, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        end = lseek(fd, 0, SEEK_END);
        if (end < 0 || lseek(fd, end > TEST_VMMGRD_LOG_TAIL ? end - TEST_VMMGRD_LOG_TAIL : 0, SEEK_SET) < 0)
                return;
        n = read(fd, buf, TEST_VMMGRD_LOG_TAIL);
        if (n < 0)
                return;
        buf[n] = '\0';
        fprintf(stderr, "--- vmmgrd's log %s%s ---\n%s%s--- end ---\n", log, end > TEST_VMMGRD_LOG_TAIL ? " (its end)" : "",
                buf, n > 0 && buf[n - 1] != '\n' ? "\n" : "");
}

static inline void vmmgrd_print_status(pid_t pid, int status) {
        if (WIFEXITED(status))
                fprintf(stderr, "vmmgrd (pid %d) exited with status %d\n", (int) pid, WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                fprintf(stderr, "vmmgrd (pid %d) was killed by signal %d (%s)\n", (int) pid, WTERMSIG(status),
                        strsignal(WTERMSIG(status)));
}

static inline int vmmgrd_pidfd_open(pid_t pid) {
        long fd = syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? negative_errno() : (int) fd;
}

/* Waits until the process behind pidfd exits or timeout_ms passes;
 * returns its wait status, or -ETIMEDOUT. */
static inline int vmmgrd_wait_exit(pid_t pid, int pidfd, int timeout_ms) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int status, r;

        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return negative_errno();
        if (r == 0)
                return -ETIMEDOUT;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return status;
}

static inline void vmmgrd_kill_and_reap(pid_t pid) {
        (void) kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* A datagram socket in the abstract namespace for sd_notify(). */
static inline int vmmgrd_notify_socket(char *name, size_t size) {
        static unsigned counter;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        socklen_t len;

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        snprintf(name, size, "vmmgr-test-notify-%d-%u-%llx", (int) getpid(), counter++,
                 (unsigned long long) now_nsec());
        /* sun_path[0] == '\0': abstract; NOTIFY_SOCKET spells it "@name". */
        snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
        if (bind(fd, (struct sockaddr *) &sa, len) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* Reads what is queued on the notify socket; 1 when a READY=1 line came. */
static inline int vmmgrd_read_ready(int fd) {
        char buf[4096];
        ssize_t n;

        for (;;) {
                n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                if (n < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : negative_errno();
                buf[n] = '\0';
                for (char *line = buf, *next; line; line = next) {
                        next = strchr(line, '\n');
                        if (next)
                                *next++ = '\0';
                        if (strcmp(line, "READY=1") == 0)
                                return 1;
                }
        }
}

/* environ plus NOTIFY_SOCKET=@name (any NOTIFY_SOCKET of ours left out),
 * built before fork(): the child only execs. */
static inline char **vmmgrd_child_environ(const char *notify) {
        size_t n = 0, k = 0;
        char **env;

        while (environ[n])
                n++;
        env = calloc(n + 2, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
                        env[k++] = environ[i];
        if (asprintf(&env[k], "NOTIFY_SOCKET=@%s", notify) < 0) {
                free(env);
                return NULL;
        }
        return env;
}

static inline void vmmgrd_child_environ_free(char **env) {
        size_t n = 0;

        if (!env)
                return;
        while (env[n])
                n++;
        if (n > 0)
                free(env[n - 1]); /* the one string we made */
        free(env);
}

static inline int test_vmmgrd_start(const TestVmmgrdOptions *o, pid_t *ret_pid) {
        char vmmgrd[PATH_MAX], notify[108];
        const char *argv[16];
        size_t argc = 0;
        _cleanup_close_ int nfd = -EBADF, pidfd = -EBADF, logfd = -EBADF;
        int timeout_ms, r, status;
        uint64_t deadline;
        pid_t parent = getpid(), pid;
        char **env;

        if (!o || !o->socket || !o->state_dir || !ret_pid)
                return -EINVAL;
        timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : TEST_VMMGRD_TIMEOUT_MS;
        r = test_vmmgrd_path(vmmgrd, sizeof(vmmgrd));
        if (r < 0) {
                fprintf(stderr, "vmmgrd not found (%s): is it built?\n", strerror(-r));
                return r;
        }
        argv[argc++] = vmmgrd;
        argv[argc++] = "--foreground";
        argv[argc++] = "--state-dir";
        argv[argc++] = o->state_dir;
        argv[argc++] = "--socket";
        argv[argc++] = o->socket;
        if (o->subtree) {
                argv[argc++] = "--subtree";
                argv[argc++] = o->subtree;
        }
        if (o->config) {
                argv[argc++] = "--config";
                argv[argc++] = o->config;
        }
        if (o->remove_subtree_on_exit)
                argv[argc++] = "--remove-subtree-on-exit";
        argv[argc] = NULL;

        nfd = vmmgrd_notify_socket(notify, sizeof(notify));
        if (nfd < 0) {
                fprintf(stderr, "vmmgrd: notification socket: %s\n", strerror(-nfd));
                return nfd;
        }
        if (o->log) {
                logfd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (logfd < 0) {
                        r = negative_errno();
                        fprintf(stderr, "vmmgrd: log %s: %s\n", o->log, strerror(-r));
                        return r;
                }
        }
        env = vmmgrd_child_environ(notify);
        if (!env)
                return -ENOMEM;
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                vmmgrd_child_environ_free(env);
                return r;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

                /* Stop with the test, cleanly, even if it crashes. */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(127);
                if (null >= 0)
                        dup2(null, STDIN_FILENO);
                if (logfd >= 0)
                        dup2(logfd, STDERR_FILENO);
                execve(vmmgrd, (char **) argv, env);
                _exit(127);
        }
        vmmgrd_child_environ_free(env);
        deadline = now_msec() + (uint64_t) timeout_ms;

        pidfd = vmmgrd_pidfd_open(pid);
        if (pidfd < 0) {
                r = pidfd;
                fprintf(stderr, "vmmgrd: pidfd_open: %s\n", strerror(-r));
                vmmgrd_kill_and_reap(pid);
                return r;
        }
        /* 1. READY=1, or its exit, or the deadline. */
        for (;;) {
                struct pollfd p[2] = { { .fd = nfd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
                uint64_t now = now_msec();

                r = vmmgrd_read_ready(nfd);
                if (r != 0)
                        break;
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = poll(p, 2, (int) (deadline - now));
                if (r < 0 && errno != EINTR) {
                        r = negative_errno();
                        break;
                }
                if (r > 0 && (p[1].revents & POLLIN) && !(p[0].revents & POLLIN)) {
                        r = -ECHILD;
                        break;
                }
        }
        if (r == -ECHILD) {
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                fprintf(stderr, "vmmgrd exited before it was ready\n");
                vmmgrd_print_status(pid, status);
                vmmgrd_show_log(o->log);
                return -ECHILD;
        }
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        fprintf(stderr, "vmmgrd did not say READY=1 within %d ms; killing it\n", timeout_ms);
                else
                        fprintf(stderr, "vmmgrd: waiting for READY=1: %s; killing it\n", strerror(-r));
                vmmgrd_kill_and_reap(pid);
                vmmgrd_show_log(o->log);
                return r;
        }

        /* 2. It says it is ready: the API must answer. */
        {
                uint64_t now = now_msec();
                long left = now < deadline ? (long) (deadline - now) : 1000, code = 0;
                char *body = NULL;
                HttpError err = { "" };

                r = http_request(o->socket, "GET", "/v1/host", NULL, left, &code, &body, &err);
                free(body);
                if (r < 0 || code != 200) {
                        if (r < 0)
                                fprintf(stderr, "vmmgrd said READY=1 but GET /v1/host on %s failed: %s\n", o->socket,
                                        err.message);
                        else
                                fprintf(stderr, "vmmgrd said READY=1 but GET /v1/host answered %ld\n", code);
                        vmmgrd_kill_and_reap(pid);
                        vmmgrd_show_log(o->log);
                        return r < 0 ? r : -EPROTO;
                }
        }
        *ret_pid = pid;
        return 0;
}

static inline int test_vmmgrd_stop(pid_t *pid, int sig, const char *log) {
        _cleanup_close_ int pidfd = -EBADF;
        pid_t p;
        int status;

        if (!pid || *pid <= 0)
                return 0;
        p = *pid;
        *pid = 0;
        pidfd = vmmgrd_pidfd_open(p);
        if (kill(p, sig) < 0) {
                int r = negative_errno();
                vmmgrd_kill_and_reap(p);
                return r;
        }
        if (pidfd < 0) {
                while (waitpid(p, &status, 0) < 0)
                        if (errno != EINTR)
                                return negative_errno();
                return status;
        }
        status = vmmgrd_wait_exit(p, pidfd, TEST_VMMGRD_STOP_TIMEOUT_MS);
        if (status == -ETIMEDOUT) {
                fprintf(stderr, "vmmgrd (pid %d) did not exit within %d ms of signal %d; killing it\n", (int) p,
                        TEST_VMMGRD_STOP_TIMEOUT_MS, sig);
                vmmgrd_kill_and_reap(p);
                vmmgrd_show_log(log);
                return -ETIMEDOUT;
        }
        if (status >= 0 && sig != SIGKILL && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                vmmgrd_print_status(p, status);
                vmmgrd_show_log(log);
        }
        return status;
}
