/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/parse.h - strict number and token parsers.
 *
 * Every parser accepts the whole string or fails: no leading whitespace,
 * no trailing garbage, no silent wrap-around.  Errors: -EINVAL (not a
 * number), -ERANGE (does not fit).  Outputs are written only on success.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unsigned decimal, digits only. */
int parse_u64(const char *s, uint64_t *ret);
/* Same, but for a string of known length (not NUL-terminated). */
int parse_u64_n(const char *s, size_t len, uint64_t *ret);
/* Signed decimal with an optional leading '+' or '-'. */
int parse_i64(const char *s, int64_t *ret);
/* "max" gives UINT64_MAX; otherwise parse_u64() (where UINT64_MAX itself is -ERANGE). */
int parse_u64_or_max(const char *s, uint64_t *ret);
/* A bounded integer of type int, for config and command lines. */
int parse_int_range(const char *s, int min, int max, int *ret);
/* A decimal fraction in [0, 1] with up to 6 digits after the point, as parts per million. */
int parse_fraction_ppm(const char *s, uint32_t *ret);

/* Drops one trailing "\n" in place; returns the new length. */
size_t strip_trailing_newline(char *s, size_t len);

/* true when s is a non-empty run of [A-Za-z0-9._-] no longer than max and not "." / ".."
 * (a safe single path component). */
bool is_safe_name(const char *s, size_t max);
/* A PCI address as sysfs and dmem region names spell it: "0000:03:00.0"
 * (domain:bus:device.function, lowercase hex, device < 0x20, function < 8). */
bool is_pci_address(const char *s);
/* A size in bytes: "4096", or with a binary suffix K, M, G, T ("256M",
 * "1g").  -EINVAL for anything else, -ERANGE beyond 2^64 - 1. */
int parse_size(const char *s, uint64_t *ret);
