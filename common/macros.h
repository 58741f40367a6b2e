/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/macros.h - small helpers shared by every vmmgr module.
 *
 * Cleanup attributes in the style of systemd: a variable declared with
 * _cleanup_free_ / _cleanup_close_ / _cleanup_fclose_ is released when it
 * goes out of scope, so every function has one exit path for resources.
 * TAKE_PTR / TAKE_FD hand ownership out of such a variable.
 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Move a pointer out of a cleanup variable: the variable becomes NULL. */
#define TAKE_PTR(p)                                   \
        ({                                            \
                __typeof__(p) _tmp_ = (p);            \
                (p) = NULL;                           \
                _tmp_;                                \
        })

/* Move an fd out of a cleanup variable: the variable becomes -EBADF. */
#define TAKE_FD(fd)                                   \
        ({                                            \
                int _tmp_ = (fd);                     \
                (fd) = -EBADF;                        \
                _tmp_;                                \
        })

/* Formats a message into an error struct's `message` array (a char array
 * member; `err` may be NULL).  One definition for ApiError, StateError,
 * HttpError and the like, whose types differ but whose message does not. */
#define set_error(err, ...)                                                            \
        do {                                                                           \
                if (err)                                                               \
                        snprintf((err)->message, sizeof((err)->message), __VA_ARGS__); \
        } while (0)

/* errno after a failed libc call, never 0 (a caller gets a real error). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define USEC_PER_SEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_SEC UINT64_C(1000000000)
