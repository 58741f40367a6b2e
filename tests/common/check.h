/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/check.h - CHECK() for the plain (non-cmocka) test programs
 * that run against real kernels: a failed check is reported with its
 * place and counted in `failures`, and the program goes on, so one run
 * shows every check that failed and still cleans up after itself.
 * Include it once per program.
 */
#pragma once

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                     \
        do {                                                                 \
                if (!(cond)) {                                               \
                        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                        fprintf(stderr, __VA_ARGS__);                        \
                        fputc('\n', stderr);                                 \
                        failures++;                                          \
                }                                                            \
        } while (0)
