/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/unit/test-log.c - log lines carry journald's priority prefix
 * ("<4>...") exactly when stderr is the journal stream JOURNAL_STREAM
 * names, and "warning: ..." otherwise.  Each case runs in a child whose
 * stderr is a file, since the logger decides once per process.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/common/vtest.h"

/* Logs one warning from a child with stderr on a temporary file; returns
 * what it wrote.  journal: JOURNAL_STREAM names that file ("match") or
 * another one ("other"), or is unset (NULL). */
static char *child_log(const char *journal) {
        char path[] = "/tmp/vmmgr-test-log-XXXXXX";
        static char buf[256];
        int fd = mkstemp(path), status;
        ssize_t n;
        pid_t pid;

        assert_true(fd >= 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct stat st;
                char env[64];

                dup2(fd, STDERR_FILENO);
                fstat(STDERR_FILENO, &st);
                if (journal && strcmp(journal, "match") == 0)
                        snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
                else
                        snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino + 1);
                if (journal)
                        setenv("JOURNAL_STREAM", env, 1);
                else
                        unsetenv("JOURNAL_STREAM");
                log_warning("disk %s", "full");
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        close(fd);
        unlink(path);
        return buf;
}

static void test_journal_priority(void **state) {
        assert_string_equal(child_log("match"), "<4>disk full\n");
}

static void test_plain_stderr(void **state) {
        assert_string_equal(child_log(NULL), "warning: disk full\n");
        assert_string_equal(child_log("other"), "warning: disk full\n");
}

/* Once per interval, the first time included. */
static void test_ratelimit(void **state) {
        uint64_t last = 0;

        assert_true(log_ratelimit(&last, 5, 100));
        assert_false(log_ratelimit(&last, 6, 100));
        assert_false(log_ratelimit(&last, 104, 100));
        assert_true(log_ratelimit(&last, 105, 100));
        assert_false(log_ratelimit(&last, 200, 100));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ratelimit),
                cmocka_unit_test(test_journal_priority),
                cmocka_unit_test(test_plain_stderr),
        };
        return vt_run_group_tests(tests, NULL, NULL);
}
