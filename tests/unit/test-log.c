/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/unit/test-log.c - log lines carry journald's priority prefix
 * ("<4>...") exactly when stderr is the journal stream JOURNAL_STREAM
 * names, and "warning: ..." otherwise.  Each such case runs in a child
 * whose stderr is a file, since the logger decides once per process.
 * The journal target: the fields of an entry (log_journal_fields()), what
 * reaches the sender (a recorder here; sd_journal_sendv() in vmmgrd,
 * tested against a real journald in tests/daemon/test-journal.sh), the
 * fallback to stderr, and rate-limited repeats with their note.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/common/vtest.h"

#define UUID_A "6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60"
#define UUID_B "7b2e5b6f-1a4c-4d3b-8f8e-2c3d4e5f6a71"

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

/* The recorder: each entry's fields, "NAME=value", '\n'-joined. */
static char sent[32][1024];
static size_t n_sent;
static int send_result;

static int record(const struct iovec *iov, int n) {
        size_t k = 0;

        if (send_result < 0)
                return send_result;
        assert_true(n_sent < ARRAY_SIZE(sent));
        sent[n_sent][0] = '\0';
        for (int i = 0; i < n; i++)
                k += (size_t) snprintf(sent[n_sent] + k, sizeof(sent[0]) - k, "%s%.*s", i ? "\n" : "",
                                       (int) iov[i].iov_len, (const char *) iov[i].iov_base);
        n_sent++;
        return 0;
}

static int setup_journal(void **state) {
        n_sent = 0;
        send_result = 0;
        log_set_journal_send(record);
        log_set_target(LOG_TARGET_JOURNAL);
        log_set_ratelimit(LOG_RATELIMIT_INTERVAL_USEC, LOG_RATELIMIT_BURST);
        return 0;
}

static int teardown_journal(void **state) {
        log_set_journal_send(NULL);
        log_set_target(LOG_TARGET_AUTO);
        return 0;
}

static bool has_field(size_t entry, const char *field) {
        size_t len = strlen(field);
        const char *p = sent[entry];

        /* a whole line of the entry */
        while ((p = strstr(p, field))) {
                if ((p == sent[entry] || p[-1] == '\n') && (p[len] == '\n' || p[len] == '\0'))
                        return true;
                p++;
        }
        return false;
}

static bool has_name(size_t entry, const char *name) {
        char line[64];
        snprintf(line, sizeof(line), "\n%s=", name);
        return strstr(sent[entry], line) || strncmp(sent[entry], line + 1, strlen(line + 1)) == 0;
}

static void test_fields(void **state) {
        LogRecord rec = { .level = LOG_LEVEL_WARNING, .r = -ENOENT, .file = "../../vmmgr/daemon/daemon.c",
                          .line = 42, .func = "on_tick", .vm = UUID_A, .event = "state",
                          .message = "VM " UUID_A ": baseline -> throttled", .identifier = "vmmgrd" };
        struct iovec iov[LOG_JOURNAL_FIELDS_MAX];
        char buf[1024];
        int n;

        n = log_journal_fields(&rec, buf, sizeof(buf), iov, ARRAY_SIZE(iov));
        assert_int_equal(n, 9);
        setup_journal(state);
        assert_int_equal(record(iov, n), 0);
        assert_string_equal(sent[0], "MESSAGE=VM " UUID_A ": baseline -> throttled\n"
                                     "PRIORITY=4\n"
                                     "CODE_FILE=vmmgr/daemon/daemon.c\n"
                                     "CODE_LINE=42\n"
                                     "CODE_FUNC=on_tick\n"
                                     "SYSLOG_IDENTIFIER=vmmgrd\n"
                                     "ERRNO=2\n"
                                     "VMMGR_VM=" UUID_A "\n"
                                     "VMMGR_EVENT=state");
        /* no VM, no event, no error: no such field; the note's count */
        rec = (LogRecord) { .level = LOG_LEVEL_INFO, .file = "a.c", .line = 1, .message = "m", .vm = "",
                            .suppressed = 7 };
        n = log_journal_fields(&rec, buf, sizeof(buf), iov, ARRAY_SIZE(iov));
        assert_int_equal(n, 5);
        assert_int_equal(record(iov, n), 0);
        assert_string_equal(sent[1], "MESSAGE=m\nPRIORITY=6\nCODE_FILE=a.c\nCODE_LINE=1\nVMMGR_SUPPRESSED=7");
        /* too small: refused, never cut */
        assert_int_equal(log_journal_fields(&rec, buf, 20, iov, ARRAY_SIZE(iov)), -ENOBUFS);
        assert_int_equal(log_journal_fields(&rec, buf, sizeof(buf), iov, 3), -ENOBUFS);
        assert_int_equal(log_journal_fields(&rec, buf, 0, iov, ARRAY_SIZE(iov)), -ENOBUFS);
        teardown_journal(state);
}

/* What the macros send: the call site, the VM, the event, the priority. */
static void test_journal_entry(void **state) {
        VmId a;
        int line;

        assert_int_equal(vm_id_parse(UUID_A, &a), 0);
        line = __LINE__ + 1;
        log_vm_event(LOG_LEVEL_NOTICE, &a, "unregister", "unregistered (%s)", "removed");
        assert_int_equal(n_sent, 1);
        assert_true(has_field(0, "MESSAGE=VM " UUID_A ": unregistered (removed)"));
        assert_true(has_field(0, "PRIORITY=5"));
        assert_true(has_field(0, "CODE_FILE=tests/unit/test-log.c"));
        {
                char l[32];
                snprintf(l, sizeof(l), "CODE_LINE=%d", line);
                assert_true(has_field(0, l));
        }
        assert_true(has_field(0, "CODE_FUNC=test_journal_entry"));
        assert_true(has_field(0, "VMMGR_VM=" UUID_A));
        assert_true(has_field(0, "VMMGR_EVENT=unregister"));
        assert_true(has_field(0, "SYSLOG_IDENTIFIER=test-log"));
        assert_false(has_name(0, "ERRNO"));

        assert_int_equal(log_vm_warning_errno(&a, -EIO, "balloon: %m"), -EIO);
        assert_true(has_field(1, "MESSAGE=VM " UUID_A ": balloon: Input/output error"));
        assert_true(has_field(1, "PRIORITY=4"));
        assert_true(has_field(1, "ERRNO=5"));
        assert_false(has_name(1, "VMMGR_EVENT"));

        log_error("host %s", "only");
        assert_true(has_field(2, "MESSAGE=host only"));
        assert_true(has_field(2, "PRIORITY=3"));
        assert_false(has_name(2, "VMMGR_VM"));

        /* below the threshold: nothing */
        log_debug("hidden");
        assert_int_equal(n_sent, 3);
}

/* A journal that refuses an entry: the message goes to stderr instead. */
static void test_journal_fallback(void **state) {
        char path[] = "/tmp/vmmgr-test-log-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        char buf[256];
        ssize_t n;

        assert_true(fd >= 0 && saved >= 0);
        fflush(stderr);
        dup2(fd, STDERR_FILENO);
        send_result = -ENOENT;
        log_warning("kept %d", 1);
        send_result = 0;
        log_warning("sent %d", 2);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        close(fd);
        unlink(path);
        /* stderr here is a file, not the journal stream: the plain form */
        assert_string_equal(buf, "warning: kept 1\n");
        assert_int_equal(n_sent, 1);
        assert_true(has_field(0, "MESSAGE=sent 2"));
}

static unsigned count_message(const char *field) {
        unsigned k = 0;
        for (size_t i = 0; i < n_sent; i++)
                k += has_field(i, field);
        return k;
}

/* One call site, whoever calls it. */
static int stuck_line;
static void stuck(const VmId *vm, int i) {
        stuck_line = __LINE__ + 1;
        log_vm_warning(vm, "stuck %d", i);
}

/* Repeats from one call site about one VM: the burst, then nothing until
 * the interval ends, then a note with the count before the next one. */
static void test_ratelimit_repeats(void **state) {
        VmId a, b;
        char note[160];

        assert_int_equal(vm_id_parse(UUID_A, &a), 0);
        assert_int_equal(vm_id_parse(UUID_B, &b), 0);
        log_set_ratelimit(200000, 3);
        for (int i = 0; i < 5; i++) {
                stuck(&a, i);
                stuck(&b, i); /* another VM: a count of its own */
        }
        for (int i = 0; i < 5; i++)
                log_warning("host stuck"); /* another call site */
        assert_int_equal(n_sent, 3 + 3 + 3);
        assert_int_equal(count_message("MESSAGE=VM " UUID_A ": stuck 2"), 1);
        assert_int_equal(count_message("MESSAGE=VM " UUID_A ": stuck 3"), 0);
        /* debug is never limited */
        log_set_max_level(LOG_LEVEL_DEBUG);
        for (int i = 0; i < 5; i++)
                log_debug("debug %d", i);
        log_set_max_level(LOG_LEVEL_INFO);
        assert_int_equal(n_sent, 9 + 5);

        usleep(250000);
        n_sent = 0;
        stuck(&a, 9);
        assert_int_equal(n_sent, 2);
        snprintf(note, sizeof(note), "MESSAGE=VM " UUID_A ": Suppressed 2 messages from tests/unit/test-log.c:%d",
                 stuck_line);
        assert_true(has_field(0, note));
        assert_true(has_field(0, "VMMGR_SUPPRESSED=2"));
        assert_true(has_field(0, "VMMGR_VM=" UUID_A));
        assert_true(has_field(0, "PRIORITY=4"));
        assert_true(has_field(1, "MESSAGE=VM " UUID_A ": stuck 9"));
        assert_false(has_name(1, "VMMGR_SUPPRESSED"));
        /* b's count went on by itself: its next one has its own note */
        stuck(&b, 9);
        assert_int_equal(n_sent, 4);
        assert_true(has_field(2, "VMMGR_SUPPRESSED=2"));
        assert_true(has_field(2, "VMMGR_VM=" UUID_B));

        /* off: everything */
        log_set_ratelimit(0, 0);
        n_sent = 0;
        for (int i = 0; i < 20; i++)
                log_warning("unlimited");
        assert_int_equal(n_sent, 20);
}

static void test_parse(void **state) {
        uint64_t interval;
        unsigned burst;

        assert_int_equal(log_parse_target("auto"), LOG_TARGET_AUTO);
        assert_int_equal(log_parse_target("journal"), LOG_TARGET_JOURNAL);
        assert_int_equal(log_parse_target("stderr"), LOG_TARGET_STDERR);
        assert_int_equal(log_parse_target("syslog"), -EINVAL);
        assert_int_equal(log_parse_target(NULL), -EINVAL);
        assert_string_equal(log_target_to_string(LOG_TARGET_JOURNAL), "journal");

        assert_int_equal(log_parse_ratelimit("10/30", &interval, &burst), 0);
        assert_int_equal(burst, 10);
        assert_int_equal(interval, 30000000);
        assert_int_equal(log_parse_ratelimit("1/2s", &interval, &burst), 0);
        assert_int_equal(interval, 2000000);
        assert_int_equal(log_parse_ratelimit("off", &interval, &burst), 0);
        assert_int_equal(burst, 0);
        assert_int_equal(log_parse_ratelimit("0/30", &interval, &burst), -ERANGE);
        assert_int_equal(log_parse_ratelimit("10/0", &interval, &burst), -ERANGE);
        assert_int_equal(log_parse_ratelimit("10/90000", &interval, &burst), -ERANGE);
        assert_int_equal(log_parse_ratelimit("10", &interval, &burst), -EINVAL);
        assert_int_equal(log_parse_ratelimit("10/30m", &interval, &burst), -EINVAL);
        assert_int_equal(log_parse_ratelimit("-1/30", &interval, &burst), -EINVAL);
        assert_int_equal(log_parse_ratelimit("10/ 30", &interval, &burst), -EINVAL);
        assert_int_equal(log_parse_ratelimit("99999999999999999999/3", &interval, &burst), -ERANGE);
}

/* auto: the journal exactly when stderr is the journal stream. */
static void test_auto_target(void **state) {
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                char path[] = "/tmp/vmmgr-test-log-XXXXXX";
                int fd = mkstemp(path);
                struct stat st;
                char env[64];

                unlink(path);
                dup2(fd, STDERR_FILENO);
                fstat(STDERR_FILENO, &st);
                snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
                setenv("JOURNAL_STREAM", env, 1);
                _exit(log_get_target() == LOG_TARGET_JOURNAL ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                unsetenv("JOURNAL_STREAM");
                _exit(log_get_target() == LOG_TARGET_STDERR ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ratelimit),
                cmocka_unit_test(test_journal_priority),
                cmocka_unit_test(test_plain_stderr),
                cmocka_unit_test(test_fields),
                cmocka_unit_test_setup_teardown(test_journal_entry, setup_journal, teardown_journal),
                cmocka_unit_test_setup_teardown(test_journal_fallback, setup_journal, teardown_journal),
                cmocka_unit_test_setup_teardown(test_ratelimit_repeats, setup_journal, teardown_journal),
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_auto_target),
        };
        return vt_run_group_tests(tests, NULL, NULL);
}
