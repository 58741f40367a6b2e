/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Parsers for kernel file contents.  The kernel ends every line with '\n';
 * content that does not is treated as truncated (-EBADMSG), which catches
 * a file cut short by a short read or a racing writer.
 */
#include "kernel/cgparse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"

/* Copies the single line of a one-value file into buf without its '\n'. */
static int single_line(const char *text, char *buf, size_t size) {
        size_t len;

        if (!text)
                return -EBADMSG;
        len = strlen(text);
        if (len == 0 || text[len - 1] != '\n')
                return -EBADMSG;
        len--;
        if (len == 0 || len >= size || memchr(text, '\n', len))
                return -EBADMSG;
        memcpy(buf, text, len);
        buf[len] = '\0';
        return 0;
}

int cg_parse_u64_or_max(const char *text, uint64_t *ret) {
        char buf[32];
        int r;

        r = single_line(text, buf, sizeof(buf));
        if (r < 0)
                return r;
        r = parse_u64_or_max(buf, ret);
        return r == -EINVAL ? -EBADMSG : r;
}

int cg_parse_i64(const char *text, int64_t *ret) {
        char buf[32];
        int r;

        r = single_line(text, buf, sizeof(buf));
        if (r < 0)
                return r;
        r = parse_i64(buf, ret);
        return r == -EINVAL ? -EBADMSG : r;
}

/* One "key value\n" line of a flat keyed file at *p: the key, its length,
 * the value; *p moves past the line.  -EBADMSG: no key, no value, not a
 * number, no newline (truncated); -ERANGE: above UINT64_MAX.  A key ends
 * at the first space, tab, newline or other control character. */
static inline int flat_line(const char **p, const char **ret_key, size_t *ret_keylen, uint64_t *ret_value) {
        const char *q = *p, *key = q, *digits;
        uint64_t v = 0;

        while ((unsigned char) *q > ' ')
                q++;
        if (*q != ' ' || q == key)
                return -EBADMSG; /* truncated, no value, or no key */
        *ret_keylen = (size_t) (q - key);
        digits = ++q;
        for (; *q >= '0' && *q <= '9'; q++) {
                unsigned d = (unsigned) (*q - '0');

                /* v * 10 + d would pass UINT64_MAX */
                if (v >= UINT64_MAX / 10 && (v > UINT64_MAX / 10 || d > UINT64_MAX % 10))
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (q == digits || *q != '\n')
                return -EBADMSG; /* not a number, or truncated */
        *p = q + 1;
        *ret_key = key;
        *ret_value = v;
        return 0;
}

int cg_parse_flat_keyed(const char *text, const char *const *keys, size_t n_keys,
                        uint64_t *values, uint64_t *ret_found) {
        uint64_t found = 0;
        const char *p = text;

        if (!text || n_keys > 64)
                return -EINVAL;
        while (*p) {
                const char *key;
                size_t keylen;
                uint64_t v;
                int r = flat_line(&p, &key, &keylen, &v);

                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_keys; i++) {
                        /* strncmp stops at the end of keys[i]: no read past it */
                        if (keys[i][0] != key[0] || strncmp(keys[i], key, keylen) != 0 || keys[i][keylen] != '\0')
                                continue;
                        if (found & (UINT64_C(1) << i))
                                return -EBADMSG; /* duplicate key */
                        found |= UINT64_C(1) << i;
                        values[i] = v;
                }
        }
        *ret_found = found;
        return 0;
}

int cg_parse_cpu_max(const char *text, uint64_t *ret_quota_usec, uint64_t *ret_period_usec) {
        char buf[64], *sp;
        uint64_t quota, period;
        int r;

        r = single_line(text, buf, sizeof(buf));
        if (r < 0)
                return r;
        sp = strchr(buf, ' ');
        if (!sp)
                return -EBADMSG;
        *sp = '\0';
        r = parse_u64_or_max(buf, &quota);
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        r = parse_u64(sp + 1, &period);
        if (r < 0)
                return r == -EINVAL ? -EBADMSG : r;
        if (period == 0)
                return -EBADMSG;
        *ret_quota_usec = quota;
        *ret_period_usec = period;
        return 0;
}

int cg_format_cpu_max(char *buf, size_t size, uint64_t quota_usec, uint64_t period_usec) {
        int n;

        if (quota_usec == CPU_QUOTA_MAX)
                n = snprintf(buf, size, "max %" PRIu64, period_usec);
        else
                n = snprintf(buf, size, "%" PRIu64 " %" PRIu64, quota_usec, period_usec);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

/* cpu.stat's keys, by version (v1 has no usage and counts times in ns). */
enum { CS_USAGE, CS_USER, CS_SYSTEM, CS_NR_PERIODS, CS_NR_THROTTLED, CS_THROTTLED, CS_NR_BURSTS, CS_BURST, _CS_N };

#define KEY_IS(k, len, lit) ((len) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* The index of a cpu.stat key, or -1 for one we do not use.  Compares of
 * a fixed length: the credit tick parses cpu.stat on every look. */
static int cpu_stat_key(const char *k, size_t len, CgVersion version) {
        switch (k[0]) {
        case 'u':
                if (version == CG_V2 && KEY_IS(k, len, "usage_usec"))
                        return CS_USAGE;
                if (version == CG_V2 && KEY_IS(k, len, "user_usec"))
                        return CS_USER;
                break;
        case 's':
                if (version == CG_V2 && KEY_IS(k, len, "system_usec"))
                        return CS_SYSTEM;
                break;
        case 'n':
                if (KEY_IS(k, len, "nr_periods"))
                        return CS_NR_PERIODS;
                if (KEY_IS(k, len, "nr_throttled"))
                        return CS_NR_THROTTLED;
                if (KEY_IS(k, len, "nr_bursts"))
                        return CS_NR_BURSTS;
                break;
        case 't':
                if (version == CG_V2 ? KEY_IS(k, len, "throttled_usec") : KEY_IS(k, len, "throttled_time"))
                        return CS_THROTTLED;
                break;
        case 'b':
                if (version == CG_V2 ? KEY_IS(k, len, "burst_usec") : KEY_IS(k, len, "burst_time"))
                        return CS_BURST;
                break;
        }
        return -1;
}

int cg_parse_cpu_stat(const char *text, CgVersion version, CpuStat *ret) {
        uint64_t v[_CS_N] = { 0 }, found = 0;
        const char *p = text;
        CpuStat s = { 0 };

        if (!text)
                return -EINVAL;
        while (*p) {
                const char *key;
                size_t keylen;
                uint64_t value;
                int k, r = flat_line(&p, &key, &keylen, &value);

                if (r < 0)
                        return r;
                k = cpu_stat_key(key, keylen, version);
                if (k < 0)
                        continue;
                if (found & (UINT64_C(1) << k))
                        return -EBADMSG; /* duplicate key */
                found |= UINT64_C(1) << k;
                v[k] = value;
        }
#define HAS(i) (found & (UINT64_C(1) << (i)))
        if (HAS(CS_USAGE)) {
                s.have |= CPU_STAT_USAGE;
                s.usage_usec = v[CS_USAGE];
        }
        if (HAS(CS_USER) && HAS(CS_SYSTEM)) {
                s.have |= CPU_STAT_USER_SYSTEM;
                s.user_usec = v[CS_USER];
                s.system_usec = v[CS_SYSTEM];
        }
        if (HAS(CS_NR_PERIODS) && HAS(CS_NR_THROTTLED) && HAS(CS_THROTTLED)) {
                s.have |= CPU_STAT_PERIODS;
                s.nr_periods = v[CS_NR_PERIODS];
                s.nr_throttled = v[CS_NR_THROTTLED];
                s.throttled_usec = version == CG_V1 ? v[CS_THROTTLED] / NSEC_PER_USEC : v[CS_THROTTLED];
        }
        if (HAS(CS_NR_BURSTS) && HAS(CS_BURST)) {
                s.have |= CPU_STAT_BURSTS;
                s.nr_bursts = v[CS_NR_BURSTS];
                s.burst_usec = version == CG_V1 ? v[CS_BURST] / NSEC_PER_USEC : v[CS_BURST];
        }
#undef HAS
        /* A v2 cpu.stat always has usage; a v1 one always has the periods. */
        if (version == CG_V2 ? !(s.have & CPU_STAT_USAGE) : !(s.have & CPU_STAT_PERIODS))
                return -EBADMSG;
        *ret = s;
        return 0;
}

int cg_parse_schedstat(const char *text, uint64_t *ret_run_nsec) {
        char buf[96], *sp;
        uint64_t run, wait, slices;
        char *a, *b;
        int r;

        r = single_line(text, buf, sizeof(buf));
        if (r < 0)
                return r;
        a = strchr(buf, ' ');
        if (!a)
                return -EBADMSG;
        *a++ = '\0';
        b = strchr(a, ' ');
        if (!b)
                return -EBADMSG;
        *b++ = '\0';
        sp = strchr(b, ' ');
        if (sp)
                return -EBADMSG;
        if (parse_u64(buf, &run) < 0 || parse_u64(a, &wait) < 0 || parse_u64(b, &slices) < 0)
                return -EBADMSG;
        *ret_run_nsec = run;
        return 0;
}

/* "avg10=1.23" -> 123 (hundredths of a percent). */
static int parse_psi_avg(const char *tok, const char *name, uint32_t *ret) {
        size_t nl = strlen(name);
        uint64_t whole, frac;
        const char *v, *dot;

        if (strncmp(tok, name, nl) != 0 || tok[nl] != '=')
                return -EBADMSG;
        v = tok + nl + 1;
        dot = strchr(v, '.');
        if (!dot || strlen(dot + 1) != 2)
                return -EBADMSG;
        if (parse_u64_n(v, (size_t) (dot - v), &whole) < 0 || parse_u64(dot + 1, &frac) < 0)
                return -EBADMSG;
        if (whole > 100)
                return -EBADMSG;
        *ret = (uint32_t) (whole * 100 + frac);
        return 0;
}

static int parse_psi_line(char *line, const char *kind, uint32_t *a10, uint32_t *a60,
                          uint32_t *a300, uint64_t *total) {
        char *tok[5], *save = NULL, *t;
        size_t n = 0;

        for (t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                if (n == ARRAY_SIZE(tok))
                        return -EBADMSG;
                tok[n++] = t;
        }
        if (n != 5 || strcmp(tok[0], kind) != 0)
                return -EBADMSG;
        if (parse_psi_avg(tok[1], "avg10", a10) < 0 || parse_psi_avg(tok[2], "avg60", a60) < 0 ||
            parse_psi_avg(tok[3], "avg300", a300) < 0)
                return -EBADMSG;
        if (strncmp(tok[4], "total=", 6) != 0 || parse_u64(tok[4] + 6, total) < 0)
                return -EBADMSG;
        return 0;
}

/* "Key:   N kB" -> N * 1024; *found set when the line is `key`. */
static int meminfo_line(const char *line, size_t len, const char *key, uint64_t *ret, bool *found) {
        size_t klen = strlen(key), i;
        uint64_t kb;

        if (len <= klen || strncmp(line, key, klen) != 0 || line[klen] != ':')
                return 0;
        i = klen + 1;
        while (i < len && line[i] == ' ')
                i++;
        if (len - i < 4 || strncmp(line + len - 3, " kB", 3) != 0)
                return -EBADMSG;
        if (parse_u64_n(line + i, len - 3 - i, &kb) < 0 || kb > UINT64_MAX / 1024)
                return -EBADMSG;
        if (*found)
                return -EBADMSG; /* twice: not a meminfo we know */
        *ret = kb * 1024;
        *found = true;
        return 0;
}

int cg_parse_meminfo(const char *text, uint64_t *ret_total, uint64_t *ret_available) {
        bool have_total = false, have_avail = false;
        uint64_t total = 0, avail = 0;

        if (!text)
                return -EBADMSG;
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) : strlen(p);
                int r;

                if (!nl)
                        return -EBADMSG; /* truncated */
                r = meminfo_line(p, len, "MemTotal", &total, &have_total);
                if (r == 0)
                        r = meminfo_line(p, len, "MemAvailable", &avail, &have_avail);
                if (r < 0)
                        return r;
                p = nl + 1;
        }
        if (!have_total || !have_avail || total == 0 || avail > total)
                return -EBADMSG;
        *ret_total = total;
        *ret_available = avail;
        return 0;
}

int cg_parse_psi(const char *text, Psi *ret) {
        char buf[512], *nl, *second;
        Psi p = { 0 };
        size_t len;
        int r;

        if (!text)
                return -EBADMSG;
        len = strlen(text);
        if (len == 0 || len >= sizeof(buf) || text[len - 1] != '\n')
                return -EBADMSG;
        memcpy(buf, text, len + 1);
        nl = strchr(buf, '\n');
        *nl = '\0';
        second = nl + 1;
        r = parse_psi_line(buf, "some", &p.some_avg10, &p.some_avg60, &p.some_avg300,
                           &p.some_total_usec);
        if (r < 0)
                return r;
        if (*second) {
                nl = strchr(second, '\n');
                *nl = '\0';
                if (nl[1] != '\0')
                        return -EBADMSG;
                r = parse_psi_line(second, "full", &p.full_avg10, &p.full_avg60, &p.full_avg300,
                                   &p.full_total_usec);
                if (r < 0)
                        return r;
                p.has_full = true;
        }
        *ret = p;
        return 0;
}

int cg_parse_pid_list(const char *text, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0, cap = 0;
        const char *p = text;

        if (!text)
                return -EBADMSG;
        while (*p) {
                const char *nl = strchr(p, '\n');
                uint64_t v;

                if (!nl)
                        return -EBADMSG;
                if (parse_u64_n(p, (size_t) (nl - p), &v) < 0 || v == 0 || v > INT32_MAX)
                        return -EBADMSG;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        pid_t *np = reallocarray(pids, ncap, sizeof(pid_t));
                        if (!np)
                                return -ENOMEM;
                        pids = np;
                        cap = ncap;
                }
                pids[n++] = (pid_t) v;
                p = nl + 1;
        }
        *ret = TAKE_PTR(pids);
        *ret_n = n;
        return 0;
}

int cg_parse_cgroup_type(const char *text, CgType *ret) {
        static const struct {
                const char *s;
                CgType t;
        } types[] = {
                { "domain", CG_TYPE_DOMAIN },
                { "threaded", CG_TYPE_THREADED },
                { "domain threaded", CG_TYPE_DOMAIN_THREADED },
                { "domain invalid", CG_TYPE_DOMAIN_INVALID },
        };
        char buf[32];
        int r;

        r = single_line(text, buf, sizeof(buf));
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(types); i++)
                if (strcmp(buf, types[i].s) == 0) {
                        *ret = types[i].t;
                        return 0;
                }
        return -EBADMSG;
}

int cg_parse_controller_list(const char *text, uint32_t *ret_mask) {
        char buf[512], *save = NULL, *t;
        uint32_t mask = 0;
        size_t len;

        if (!text)
                return -EBADMSG;
        len = strlen(text);
        /* An empty list reads as nothing at all on some kernels, as "\n" on others. */
        if (len == 0) {
                *ret_mask = 0;
                return 0;
        }
        if (len >= sizeof(buf) || text[len - 1] != '\n' || memchr(text, '\n', len - 1))
                return -EBADMSG;
        memcpy(buf, text, len - 1);
        buf[len - 1] = '\0';
        for (t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                int c = cg_controller_from_string(t);
                if (c >= 0 && strcmp(t, "blkio") != 0) /* v2 never says blkio */
                        mask |= CG_CTRL_BIT(c);
        }
        *ret_mask = mask;
        return 0;
}

bool cg_dmem_region_name_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n >= DMEM_REGION_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= ' ' || s[i] > '~')
                        return false;
        return true;
}

int cg_parse_dmem(const char *text, DmemEntry **ret, size_t *ret_n) {
        _cleanup_free_ DmemEntry *e = NULL;
        size_t n = 0, cap = 0;
        const char *p = text;

        if (!text)
                return -EBADMSG;
        while (*p) {
                const char *nl = strchr(p, '\n'), *sp;
                char val[32];
                size_t namelen, vlen;
                int r;

                if (!nl)
                        return -EBADMSG;
                sp = memchr(p, ' ', (size_t) (nl - p));
                if (!sp)
                        return -EBADMSG;
                namelen = (size_t) (sp - p);
                vlen = (size_t) (nl - sp - 1);
                if (namelen == 0 || namelen >= DMEM_REGION_NAME_MAX || vlen == 0 ||
                    vlen >= sizeof(val))
                        return -EBADMSG;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 4;
                        DmemEntry *ne = reallocarray(e, ncap, sizeof(DmemEntry));
                        if (!ne)
                                return -ENOMEM;
                        e = ne;
                        cap = ncap;
                }
                memcpy(e[n].name, p, namelen);
                e[n].name[namelen] = '\0';
                if (!cg_dmem_region_name_valid(e[n].name))
                        return -EBADMSG;
                memcpy(val, sp + 1, vlen);
                val[vlen] = '\0';
                r = parse_u64_or_max(val, &e[n].value);
                if (r < 0)
                        return r == -EINVAL ? -EBADMSG : r;
                n++;
                p = nl + 1;
        }
        *ret = TAKE_PTR(e);
        *ret_n = n;
        return 0;
}

int cg_format_reclaim(char *buf, size_t size, uint64_t bytes, int swappiness) {
        int n;

        if (swappiness > 200)
                return -EINVAL;
        if (swappiness >= 0)
                n = snprintf(buf, size, "%" PRIu64 " swappiness=%d", bytes, swappiness);
        else
                n = snprintf(buf, size, "%" PRIu64, bytes);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

int cg_parse_proc_cgroup(const char *text, CgVersion version, uint32_t controllers, char *buf, size_t size) {
        const char *line = text;

        while (line && *line) {
                const char *eol = strchr(line, '\n'), *c1, *c2, *end = eol ? eol : line + strlen(line);
                bool match = false;

                c1 = memchr(line, ':', (size_t) (end - line));
                c2 = c1 ? memchr(c1 + 1, ':', (size_t) (end - c1 - 1)) : NULL;
                if (!c1 || !c2)
                        return -EBADMSG;
                if (version == CG_V2)
                        match = c1 - line == 1 && line[0] == '0' && c2 == c1 + 1;
                else
                        for (const char *p = c1 + 1; p < c2 && !match;) {
                                size_t len = strcspn(p, ",:");
                                char name[32];
                                int ctrl;

                                if (len > 0 && len < sizeof(name)) {
                                        memcpy(name, p, len);
                                        name[len] = '\0';
                                        ctrl = cg_controller_from_string(name);
                                        match = ctrl >= 0 && (controllers & CG_CTRL_BIT(ctrl));
                                }
                                p += len;
                                if (*p == ',')
                                        p++;
                        }
                if (match) {
                        size_t len = (size_t) (end - c2 - 1);

                        if (len == 0 || c2[1] != '/')
                                return -EBADMSG;
                        len--; /* without the leading '/' */
                        if (len >= size)
                                return -ENAMETOOLONG;
                        memcpy(buf, c2 + 2, len);
                        buf[len] = '\0';
                        return 0;
                }
                line = eol ? eol + 1 : NULL;
        }
        return -ENOENT;
}
