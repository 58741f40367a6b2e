/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/log.c - log lines on stderr: "level: message", or, when stderr
 * is the journal (systemd's JOURNAL_STREAM names its device and inode),
 * "<N>message" so journald files each line under its priority.
 */
#include "common/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int max_level = LOG_LEVEL_INFO;
static int stderr_is_journal = -1; /* -1: not looked yet */

/* systemd sets JOURNAL_STREAM=DEV:INO for a unit whose stderr is the
 * journal; a redirected stderr (a pipe, a file) no longer matches. */
static bool journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        uintmax_t dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%ju:%ju", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (uintmax_t) st.st_dev == dev && (uintmax_t) st.st_ino == ino;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_parse_level(const char *s) {
        static const struct {
                const char *name;
                int level;
        } names[] = {
                { "err", LOG_LEVEL_ERR },       { "error", LOG_LEVEL_ERR },
                { "warning", LOG_LEVEL_WARNING }, { "notice", LOG_LEVEL_NOTICE },
                { "info", LOG_LEVEL_INFO },     { "debug", LOG_LEVEL_DEBUG },
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (strcmp(s, names[i].name) == 0)
                        return names[i].level;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

int log_internal(int level, int r, const char *file, int line, const char *fmt, ...) {
        static const char *const prefix[8] = {
                [LOG_LEVEL_ERR] = "error", [LOG_LEVEL_WARNING] = "warning",
                [LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
                [LOG_LEVEL_DEBUG] = "debug",
        };
        va_list ap;

        if (level > max_level)
                return r;

        /* %m in fmt prints strerror(errno): make it describe r. */
        if (r < 0)
                errno = -r;
        if (stderr_is_journal < 0)
                stderr_is_journal = journal_stream();
        va_start(ap, fmt);
        if (stderr_is_journal && level >= 0 && level < 8)
                fprintf(stderr, "<%d>", level);
        if (max_level >= LOG_LEVEL_DEBUG)
                fprintf(stderr, "%s:%d: ", file, line);
        if (!stderr_is_journal && level >= 0 && level < 8 && prefix[level])
                fprintf(stderr, "%s: ", prefix[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        if (r < 0)
                errno = -r;
        return r;
}
