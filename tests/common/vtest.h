/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/vtest.h - cmocka with skips that count.
 *
 * cmocka's skip() marks a case skipped but its runner still returns 0, so
 * meson records a program whose every case skipped as a pass.  A program
 * that includes this header skips with vt_skip("reason") and ends main()
 * with vt_run_group_tests(), which
 *   - returns 1 when any case failed (cmocka's own count),
 *   - returns 77 (meson's "skipped") when every case skipped,
 *   - and, when only some skipped, prints one line
 *       vmmgr-test: skipped K of N cases
 *     that ./run reads from meson's test log and counts as K skips, so a
 *     program that mixes says so in the summary.
 * A skip is for something this host does not offer (no root, no QEMU
 * installed); a component that is there and fails is a failure.
 * Include it once per program.
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static unsigned vt_skipped_cases;

/* The reason goes to stdout so meson's log keeps it next to the case. */
#define vt_skip(...)                                          \
        do {                                                  \
                printf("SKIP %s:%d: ", __FILE__, __LINE__);   \
                printf(__VA_ARGS__);                          \
                putchar('\n');                                \
                fflush(stdout);                               \
                vt_skipped_cases++;                           \
                skip();                                       \
        } while (0)

static inline int vt_verdict(int failed, size_t n_cases) {
        if (failed != 0)
                return 1;
        if (n_cases > 0 && vt_skipped_cases >= n_cases) {
                printf("vmmgr-test: all %zu cases skipped\n", n_cases);
                return 77;
        }
        if (vt_skipped_cases > 0)
                printf("vmmgr-test: skipped %u of %zu cases\n", vt_skipped_cases, n_cases);
        return 0;
}

#define vt_run_group_tests(group, setup, teardown) \
        vt_verdict(cmocka_run_group_tests(group, setup, teardown), sizeof(group) / sizeof((group)[0]))
