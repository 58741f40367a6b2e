/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int max_level = LOG_LEVEL_INFO;

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
        va_start(ap, fmt);
        if (max_level >= LOG_LEVEL_DEBUG)
                fprintf(stderr, "%s:%d: ", file, line);
        if (level >= 0 && level < 8 && prefix[level])
                fprintf(stderr, "%s: ", prefix[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        if (r < 0)
                errno = -r;
        return r;
}
