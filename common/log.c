/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/log.c - log messages to stderr ("level: message", or "<N>message"
 * when stderr is the journal stream systemd made: JOURNAL_STREAM names its
 * device and inode) or natively to the journal with structured fields;
 * repeats from one call site rate-limited (common/log.h).
 */
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#define LOG_MESSAGE_MAX 2048
#define RATELIMIT_SLOTS 256

static int max_level = LOG_LEVEL_INFO;

/* Everything below is guarded by `lock`: messages come from the loop,
 * the reclaim workers and the peer sender at once. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static LogTarget target = LOG_TARGET_AUTO;
static int stderr_is_journal = -1; /* -1: not looked yet */
static LogJournalSend journal_send;
static uint64_t rl_interval_usec = LOG_RATELIMIT_INTERVAL_USEC;
static unsigned rl_burst = LOG_RATELIMIT_BURST;

/* One call site (and VM) in its current interval. */
typedef struct RateSlot {
        const char *file; /* NULL: free */
        int line;
        char vm[VM_ID_STRLEN + 1];
        uint64_t begin_usec;
        unsigned n;          /* messages in this interval */
        unsigned suppressed; /* of them, not written */
} RateSlot;

static RateSlot slots[RATELIMIT_SLOTS];

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

static bool stderr_journal_locked(void) {
        if (stderr_is_journal < 0)
                stderr_is_journal = journal_stream();
        return stderr_is_journal;
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
                { "err", LOG_LEVEL_ERR },       { "error", LOG_LEVEL_ERR }, { "warning", LOG_LEVEL_WARNING },
                { "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
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

static const char *const target_names[_LOG_TARGET_MAX] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_STDERR] = "stderr",
        [LOG_TARGET_JOURNAL] = "journal",
};

int log_parse_target(const char *s) {
        for (int i = 0; s && i < _LOG_TARGET_MAX; i++)
                if (strcmp(s, target_names[i]) == 0)
                        return i;
        return -EINVAL;
}

const char *log_target_to_string(LogTarget t) {
        return t >= 0 && t < _LOG_TARGET_MAX ? target_names[t] : "?";
}

void log_set_target(LogTarget t) {
        pthread_mutex_lock(&lock);
        target = t;
        stderr_is_journal = -1; /* looked at again */
        pthread_mutex_unlock(&lock);
}

static LogTarget target_locked(void) {
        if (target == LOG_TARGET_AUTO)
                target = stderr_journal_locked() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        return target;
}

LogTarget log_get_target(void) {
        LogTarget t;

        pthread_mutex_lock(&lock);
        t = target_locked();
        pthread_mutex_unlock(&lock);
        return t;
}

void log_set_journal_send(LogJournalSend send) {
        pthread_mutex_lock(&lock);
        journal_send = send;
        pthread_mutex_unlock(&lock);
}

void log_set_ratelimit(uint64_t interval_usec, unsigned burst) {
        pthread_mutex_lock(&lock);
        rl_interval_usec = interval_usec;
        rl_burst = burst;
        memset(slots, 0, sizeof(slots));
        pthread_mutex_unlock(&lock);
}

int log_parse_ratelimit(const char *s, uint64_t *ret_interval_usec, unsigned *ret_burst) {
        unsigned long burst, secs;
        char *end;

        if (!s)
                return -EINVAL;
        if (strcmp(s, "off") == 0) {
                *ret_interval_usec = 0;
                *ret_burst = 0;
                return 0;
        }
        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        burst = strtoul(s, &end, 10);
        if (errno != 0 || *end != '/' || end[1] < '0' || end[1] > '9')
                return errno == ERANGE ? -ERANGE : -EINVAL;
        secs = strtoul(end + 1, &end, 10);
        if (errno != 0)
                return -ERANGE;
        if (*end == 's')
                end++;
        if (*end != '\0')
                return -EINVAL;
        if (burst == 0 || burst > 1000000 || secs == 0 || secs > 86400)
                return -ERANGE;
        *ret_interval_usec = (uint64_t) secs * 1000000u;
        *ret_burst = (unsigned) burst;
        return 0;
}

/* ---- rate limiting ------------------------------------------------------ */

static size_t slot_hash(const char *file, int line, const char *vm) {
        /* FNV-1a over the call site's address, its line and the VM */
        uint64_t h = 1469598103934665603ull;
        uintptr_t f = (uintptr_t) file;

        for (size_t i = 0; i < sizeof(f); i++, f >>= 8)
                h = (h ^ (f & 0xff)) * 1099511628211ull;
        h = (h ^ (uint64_t) (unsigned) line) * 1099511628211ull;
        for (const char *p = vm; p && *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ull;
        return (size_t) (h % RATELIMIT_SLOTS);
}

/* True when the message may be written; *ret_suppressed is how many from
 * this call site were held back in the interval that just ended (to say
 * so first).  A slot taken by another call site is taken over: its
 * count is forgotten, which errs towards writing. */
static bool ratelimit_locked(const char *file, int line, const char *vm, uint64_t now, unsigned *ret_suppressed) {
        RateSlot *s = &slots[slot_hash(file, line, vm)];

        *ret_suppressed = 0;
        if (rl_burst == 0)
                return true;
        if (s->file != file || s->line != line || strcmp(s->vm, vm ? vm : "") != 0) {
                *s = (RateSlot){ .file = file, .line = line, .begin_usec = now };
                snprintf(s->vm, sizeof(s->vm), "%s", vm ? vm : "");
        }
        if (now >= s->begin_usec + rl_interval_usec) {
                *ret_suppressed = s->suppressed;
                s->begin_usec = now;
                s->n = 0;
                s->suppressed = 0;
        }
        if (s->n >= rl_burst) {
                s->suppressed++;
                return false;
        }
        s->n++;
        return true;
}

/* ---- the journal's fields ----------------------------------------------- */

/* __FILE__ is relative to the build directory: "../vmmgr/daemon/..." */
static const char *source_name(const char *f) {
        while (strncmp(f, "../", 3) == 0)
                f += 3;
        return f;
}

typedef struct FieldBuf {
        char *buf;
        size_t size, used;
        struct iovec *iov;
        size_t n_iov, n;
        bool full;
} FieldBuf;

_printf_(2, 3) static void field(FieldBuf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        if (b->full)
                return;
        if (b->n >= b->n_iov) {
                b->full = true;
                return;
        }
        va_start(ap, fmt);
        k = vsnprintf(b->buf + b->used, b->size - b->used, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= b->size - b->used) {
                b->full = true;
                return;
        }
        b->iov[b->n++] = (struct iovec){ .iov_base = b->buf + b->used, .iov_len = (size_t) k };
        b->used += (size_t) k + 1;
}

int log_journal_fields(const LogRecord *rec, char *buf, size_t size, struct iovec *iov, size_t n_iov) {
        FieldBuf b = { .buf = buf, .size = size, .iov = iov, .n_iov = n_iov };

        if (size == 0)
                return -ENOBUFS;
        field(&b, "MESSAGE=%s", rec->message ? rec->message : "");
        field(&b, "PRIORITY=%d", rec->level < 0 ? 0 : rec->level > 7 ? 7 : rec->level);
        if (rec->file)
                field(&b, "CODE_FILE=%s", source_name(rec->file));
        if (rec->line > 0)
                field(&b, "CODE_LINE=%d", rec->line);
        if (rec->func)
                field(&b, "CODE_FUNC=%s", rec->func);
        if (rec->identifier && *rec->identifier)
                field(&b, "SYSLOG_IDENTIFIER=%s", rec->identifier);
        if (rec->r < 0)
                field(&b, "ERRNO=%d", -rec->r);
        if (rec->vm && *rec->vm)
                field(&b, "VMMGR_VM=%s", rec->vm);
        if (rec->event && *rec->event)
                field(&b, "VMMGR_EVENT=%s", rec->event);
        if (rec->suppressed > 0)
                field(&b, "VMMGR_SUPPRESSED=%u", rec->suppressed);
        return b.full ? -ENOBUFS : (int) b.n;
}

/* ---- writing ------------------------------------------------------------ */

static void write_stderr_locked(const LogRecord *rec) {
        static const char *const prefix[8] = {
                [LOG_LEVEL_ERR] = "error", [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
                [LOG_LEVEL_INFO] = "info", [LOG_LEVEL_DEBUG] = "debug",
        };
        char line[LOG_MESSAGE_MAX + 512];
        bool journal = stderr_journal_locked();
        int level = rec->level, k = 0;
        size_t len;

        /* one write a line: lines from threads never interleave */
        if (journal && level >= 0 && level < 8)
                k += snprintf(line + k, sizeof(line) - (size_t) k, "<%d>", level);
        if (max_level >= LOG_LEVEL_DEBUG && rec->file)
                k += snprintf(line + k, sizeof(line) - (size_t) k, "%s:%d: ", rec->file, rec->line);
        if (!journal && level >= 0 && level < 8 && prefix[level])
                k += snprintf(line + k, sizeof(line) - (size_t) k, "%s: ", prefix[level]);
        snprintf(line + k, sizeof(line) - (size_t) k, "%s", rec->message);
        len = strlen(line);
        if (len + 1 < sizeof(line)) {
                line[len++] = '\n';
                line[len] = '\0';
        }
        fwrite(line, 1, len, stderr);
        fflush(stderr);
}

static void write_locked(const LogRecord *rec) {
        struct iovec iov[LOG_JOURNAL_FIELDS_MAX];
        char buf[LOG_MESSAGE_MAX + 1024];
        int n;

        if (target_locked() == LOG_TARGET_JOURNAL && journal_send) {
                n = log_journal_fields(rec, buf, sizeof(buf), iov, ARRAY_SIZE(iov));
                if (n > 0 && journal_send(iov, n) >= 0)
                        return;
        }
        /* stderr, or a message the journal did not take */
        write_stderr_locked(rec);
}

int log_internalv(int level, int r, const char *file, int line, const char *func, const char *vm, const char *event,
                  const char *fmt, va_list ap) {
        char message[LOG_MESSAGE_MAX];
        unsigned suppressed = 0;
        int saved = errno, k = 0;
        bool go = true;

        if (level > max_level)
                return r;
        /* %m in fmt prints strerror(errno): make it describe r. */
        errno = r < 0 ? -r : saved;
        if (vm && *vm)
                k = snprintf(message, sizeof(message), "VM %s: ", vm);
        vsnprintf(message + k, sizeof(message) - (size_t) k, fmt, ap);

        pthread_mutex_lock(&lock);
        if (level < LOG_LEVEL_DEBUG)
                go = ratelimit_locked(file, line, vm, now_usec(), &suppressed);
        if (suppressed > 0) {
                char note[LOG_MESSAGE_MAX];
                LogRecord rec = { .level = level,
                                  .file = file,
                                  .line = line,
                                  .func = func,
                                  .vm = vm,
                                  .message = note,
                                  .identifier = program_invocation_short_name,
                                  .suppressed = suppressed };

                snprintf(note, sizeof(note), "%s%s%sSuppressed %u message%s from %s:%d", vm && *vm ? "VM " : "",
                         vm && *vm ? vm : "", vm && *vm ? ": " : "", suppressed, suppressed == 1 ? "" : "s",
                         source_name(file), line);
                write_locked(&rec);
        }
        if (go) {
                LogRecord rec = { .level = level,
                                  .r = r,
                                  .file = file,
                                  .line = line,
                                  .func = func,
                                  .vm = vm,
                                  .event = event,
                                  .message = message,
                                  .identifier = program_invocation_short_name };
                write_locked(&rec);
        }
        pthread_mutex_unlock(&lock);
        errno = r < 0 ? -r : saved;
        return r;
}

int log_internal(int level, int r, const char *file, int line, const char *func, const char *vm, const char *event,
                 const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = log_internalv(level, r, file, line, func, vm, event, fmt, ap);
        va_end(ap);
        return r;
}
