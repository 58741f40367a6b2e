/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/parse.c - strict number, size and duration parsers (parse.h): the
 * whole text or an error, never a silent prefix.
 */
#include "common/parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_u64_n(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int parse_u64(const char *s, uint64_t *ret) {
        if (!s)
                return -EINVAL;
        return parse_u64_n(s, strlen(s), ret);
}

int parse_i64(const char *s, int64_t *ret) {
        bool neg = false;
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        if (*s == '-' || *s == '+') {
                neg = *s == '-';
                s++;
        }
        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        if (neg) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return -ERANGE;
                *ret = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
        } else {
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
        }
        return 0;
}

int parse_u64_or_max(const char *s, uint64_t *ret) {
        uint64_t v;
        int r;

        if (s && strcmp(s, "max") == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        /* UINT64_MAX is reserved for "max": a file never spells it as digits. */
        if (v == UINT64_MAX)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_int_range(const char *s, int min, int max, int *ret) {
        int64_t v;
        int r;

        r = parse_i64(s, &v);
        if (r < 0)
                return r;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (int) v;
        return 0;
}

int parse_fraction_ppm(const char *s, uint32_t *ret) {
        uint64_t whole, frac = 0;
        size_t ndigits = 0;
        const char *dot;
        int r;

        if (!s || !*s)
                return -EINVAL;
        dot = strchr(s, '.');
        r = parse_u64_n(s, dot ? (size_t) (dot - s) : strlen(s), &whole);
        if (r < 0)
                return r;
        if (dot) {
                ndigits = strlen(dot + 1);
                if (ndigits == 0)
                        return -EINVAL;
                if (ndigits > 6)
                        return -ERANGE;
                r = parse_u64(dot + 1, &frac);
                if (r < 0)
                        return r;
                for (size_t i = ndigits; i < 6; i++)
                        frac *= 10;
        }
        if (whole > 1 || (whole == 1 && frac > 0))
                return -ERANGE;
        *ret = (uint32_t) (whole * 1000000 + frac);
        return 0;
}

size_t strip_trailing_newline(char *s, size_t len) {
        if (len > 0 && s[len - 1] == '\n')
                s[--len] = '\0';
        return len;
}

int parse_size(const char *s, uint64_t *ret) {
        static const char suffixes[] = "KMGT";
        size_t n = strspn(s, "0123456789");
        unsigned shift = 0;
        uint64_t v;
        int r;

        if (n == 0)
                return -EINVAL;
        if (s[n] != '\0') {
                char c = (char) (s[n] & ~0x20); /* upper case */
                const char *p = c ? strchr(suffixes, c) : NULL;

                if (!p || s[n + 1] != '\0')
                        return -EINVAL;
                shift = 10 * (unsigned) (p - suffixes + 1);
        }
        r = parse_u64_n(s, n, &v);
        if (r < 0)
                return r;
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

bool is_pci_address(const char *s) {
        static const char shape[] = "hhhh:hh:hh.h";
        unsigned dev, fn;

        if (!s || strlen(s) != sizeof(shape) - 1)
                return false;
        for (size_t i = 0; shape[i]; i++)
                if (shape[i] == 'h' ? !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))
                                    : s[i] != shape[i])
                        return false;
        dev = (unsigned) strtoul(s + 8, NULL, 16);
        fn = (unsigned) (s[11] - '0');
        return dev < 0x20 && s[11] <= '9' && fn < 8;
}

bool is_safe_name(const char *s, size_t max) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > max || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}
