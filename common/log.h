/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/log.h - logging with levels, to stderr or to the journal.
 *
 * Library code (kernel/, qmp/, policies/) does not log errors it returns:
 * the caller decides and logs once, usually as
 *     return log_error_errno(r, "Failed to ...: %m");
 * where %m prints strerror(-r).
 *
 * A message about one VM says which, as a field and in its text:
 *     log_vm_warning(&vm->id, "balloon to %" PRIu64 " MiB refused", mib);
 * writes "warning: VM <uuid>: balloon to ..." on stderr and, in the
 * journal, VMMGR_VM=<uuid>.  A message that reports an event of the event
 * history (vmmgrctl events) names its kind, VMMGR_EVENT=<kind>:
 *     log_vm_event(LOG_LEVEL_INFO, &vm->id, "unregister", "unregistered (%s)", why);
 *
 * Targets (log_set_target()): stderr, "level: message" as it always was
 * (a debug run adds "file:line: "), or, when stderr is the journal stream
 * systemd gave the unit, "<N>message" so journald files each line under
 * its priority; the journal, natively (one entry a message with
 * structured fields: PRIORITY, CODE_FILE/CODE_LINE/CODE_FUNC, ERRNO,
 * VMMGR_VM, VMMGR_EVENT, SYSLOG_IDENTIFIER; docs/vmmgrd.md).
 *
 * Repeats are rate-limited: at most `burst` messages per interval from
 * one call site about one VM (or about none); the first after the
 * interval is preceded by "Suppressed N messages from FILE:LINE".
 * Debug messages are not limited (a debug run wants them all).
 *
 * Thread-safe: messages are written whole, one at a time.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/macros.h"
#include "common/vmid.h"

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

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* the journal when stderr is the unit's journal stream, else stderr */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL, /* stderr for a message the journal did not take */
        _LOG_TARGET_MAX,
} LogTarget;

int log_parse_target(const char *s); /* "auto", "stderr", "journal"; -EINVAL */
const char *log_target_to_string(LogTarget t);
void log_set_target(LogTarget t);
/* The target in use: AUTO resolved (JOURNAL_STREAM is read once). */
LogTarget log_get_target(void);

/* How a journal entry is sent: sd_journal_sendv() in vmmgrd (common/
 * does not link libsystemd), a recorder in tests.  Returns >= 0 or a
 * negative errno.  NULL, the default: the journal target writes stderr. */
typedef int (*LogJournalSend)(const struct iovec *iov, int n);
void log_set_journal_send(LogJournalSend send);

/* burst 0: no limit.  The default is LOG_RATELIMIT_BURST per
 * LOG_RATELIMIT_INTERVAL_USEC. */
#define LOG_RATELIMIT_BURST 10u
#define LOG_RATELIMIT_INTERVAL_USEC (30u * 1000000u)
void log_set_ratelimit(uint64_t interval_usec, unsigned burst);
/* "BURST/SECONDS" ("10/30", "10/30s") or "off"; -EINVAL, -ERANGE. */
int log_parse_ratelimit(const char *s, uint64_t *ret_interval_usec, unsigned *ret_burst);

/* Logs and returns r (a negative errno, or 0); errno is set to -r so %m
 * works.  vm (may be NULL) is a VM's UUID, event (may be NULL) an event
 * kind. */
int log_internal(int level, int r, const char *file, int line, const char *func, const char *vm, const char *event,
                 const char *fmt, ...) _printf_(8, 9);
int log_internalv(int level, int r, const char *file, int line, const char *func, const char *vm, const char *event,
                  const char *fmt, va_list ap) _printf_(8, 0);

static inline const char *log_vm_str(const VmId *vm) {
        return vm ? vm->str : NULL;
}

#define log_full_errno(level, r, ...) log_internal((level), (r), __FILE__, __LINE__, __func__, NULL, NULL, __VA_ARGS__)
#define log_error_errno(r, ...) log_full_errno(LOG_LEVEL_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_LEVEL_WARNING, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_LEVEL_DEBUG, (r), __VA_ARGS__)
#define log_error(...) (void) log_full_errno(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) (void) log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) (void) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

/* About one VM (const VmId *; NULL: none): "VM <uuid>: " leads the text. */
#define log_vm_full_errno(level, r, vm, ...)                                                                           \
        log_internal((level), (r), __FILE__, __LINE__, __func__, log_vm_str(vm), NULL, __VA_ARGS__)
#define log_vm_error_errno(vm, r, ...) log_vm_full_errno(LOG_LEVEL_ERR, (r), (vm), __VA_ARGS__)
#define log_vm_warning_errno(vm, r, ...) log_vm_full_errno(LOG_LEVEL_WARNING, (r), (vm), __VA_ARGS__)
#define log_vm_debug_errno(vm, r, ...) log_vm_full_errno(LOG_LEVEL_DEBUG, (r), (vm), __VA_ARGS__)
#define log_vm_error(vm, ...) (void) log_vm_full_errno(LOG_LEVEL_ERR, 0, (vm), __VA_ARGS__)
#define log_vm_warning(vm, ...) (void) log_vm_full_errno(LOG_LEVEL_WARNING, 0, (vm), __VA_ARGS__)
#define log_vm_notice(vm, ...) (void) log_vm_full_errno(LOG_LEVEL_NOTICE, 0, (vm), __VA_ARGS__)
#define log_vm_info(vm, ...) (void) log_vm_full_errno(LOG_LEVEL_INFO, 0, (vm), __VA_ARGS__)
#define log_vm_debug(vm, ...) (void) log_vm_full_errno(LOG_LEVEL_DEBUG, 0, (vm), __VA_ARGS__)

/* An event of the history (kind as daemon_event() records it), about a
 * VM or (vm NULL) about the host. */
#define log_vm_event(level, vm, kind, ...)                                                                             \
        (void) log_internal((level), 0, __FILE__, __LINE__, __func__, log_vm_str(vm), (kind), __VA_ARGS__)

/* One message as the journal gets it (log_journal_fields()). */
typedef struct LogRecord {
        int level;
        int r; /* < 0: ERRNO= */
        const char *file, *func;
        int line;
        const char *vm, *event; /* NULL: no field */
        const char *message;    /* the whole text, "VM <uuid>: " included */
        const char *identifier; /* SYSLOG_IDENTIFIER; NULL: none */
        unsigned suppressed;    /* > 0: VMMGR_SUPPRESSED= (the note before a repeat) */
} LogRecord;

#define LOG_JOURNAL_FIELDS_MAX 11
/* Fills iov with the record's fields, "NAME=value" each, their text in
 * buf; returns how many, or -ENOBUFS when buf or iov is too small.  An
 * empty vm or event gives no field. */
int log_journal_fields(const LogRecord *rec, char *buf, size_t size, struct iovec *iov, size_t n_iov);

/* For a message that could repeat every tick: true at most once per
 * interval_usec, judged by *last_usec (the caller's field, 0 at first). */
static inline bool log_ratelimit(uint64_t *last_usec, uint64_t now_usec, uint64_t interval_usec) {
        if (*last_usec != 0 && now_usec < *last_usec + interval_usec)
                return false;
        *last_usec = now_usec ? now_usec : 1;
        return true;
}
