/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/log.h - logging to stderr with levels.
 *
 * Library code (kernel/, qmp/, policies/) does not log errors it returns:
 * the caller decides and logs once, usually as
 *     return log_error_errno(r, "Failed to ...: %m");
 * where %m prints strerror(-r).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/macros.h"

enum {
        LOG_LEVEL_ERR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
};

/* The threshold is process-wide configuration set once by main(); it is
 * the one piece of global state outside the daemon context because every
 * module logs through it. */
void log_set_max_level(int level);
int log_get_max_level(void);
int log_parse_level(const char *s); /* "err", "warning", "info", "debug" or a digit; <0 on error */

/* Logs and returns r (a negative errno); errno is set to -r so %m works. */
int log_internal(int level, int r, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, r, ...) log_internal((level), (r), __FILE__, __LINE__, __VA_ARGS__)
#define log_error_errno(r, ...) log_full_errno(LOG_LEVEL_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_LEVEL_WARNING, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_LEVEL_DEBUG, (r), __VA_ARGS__)
#define log_error(...) (void) log_full_errno(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) (void) log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) (void) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

/* For a message that could repeat every tick: true at most once per
 * interval_usec, judged by *last_usec (the caller's field, 0 at first). */
static inline bool log_ratelimit(uint64_t *last_usec, uint64_t now_usec, uint64_t interval_usec) {
        if (*last_usec != 0 && now_usec < *last_usec + interval_usec)
                return false;
        *last_usec = now_usec ? now_usec : 1;
        return true;
}
