/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/clock.h - the clock reads vmmgr and its tests share, one place
 * instead of a copy per file.  clock_now_usec(CLOCK_MONOTONIC) and friends
 * return 0 only if the clock does not exist (a bad clock id): every clock
 * vmmgr asks for exists on Linux, so callers need not check.
 */
#pragma once

#include <stdint.h>
#include <time.h>

#define CLOCK_NSEC_PER_SEC UINT64_C(1000000000)

static inline uint64_t clock_now_nsec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * CLOCK_NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static inline uint64_t clock_now_usec(clockid_t clock) {
        return clock_now_nsec(clock) / 1000;
}

static inline uint64_t clock_now_msec(clockid_t clock) {
        return clock_now_nsec(clock) / 1000000;
}

/* Seconds as a double, for figures and rates. */
static inline double clock_now_sec(clockid_t clock) {
        return (double) clock_now_nsec(clock) / 1e9;
}

/* Monotonic shorthands: what nearly every caller wants. */
static inline uint64_t now_nsec(void) { return clock_now_nsec(CLOCK_MONOTONIC); }
static inline uint64_t now_usec(void) { return clock_now_usec(CLOCK_MONOTONIC); }
static inline uint64_t now_msec(void) { return clock_now_msec(CLOCK_MONOTONIC); }
static inline double now_sec(void) { return clock_now_sec(CLOCK_MONOTONIC); }
