/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/metrics/metrics-check.h - what the metrics tests share:
 *   - promtool: finding it and running it on a text;
 *   - a reader of the Prometheus text /metrics serves, that checks the
 *     conventions vmmgr keeps (docs/metrics.md) beside promtool's own:
 *     one prefix, no sub-second units, HELP then TYPE once per family,
 *     each family's samples together under its TYPE;
 *   - the metric names a Grafana dashboard's queries or a rules file use.
 * Header-only, like the rest of the tests' helpers.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macros.h"

/* ---- promtool ------------------------------------------------------------ */

/* Where ./run puts Debian's promtool when the system has none. */
#define TEST_PROMTOOL_CACHE "/var/cache/vmmgr/promtool/promtool"

/* The promtool to run: $VMMGR_PROMTOOL (./run sets it), else promtool on
 * PATH, else ./run's cache.  -ENOENT when there is none (the one reason
 * to skip); -ENOEXEC when VMMGR_PROMTOOL names something that cannot run
 * (a failure: whoever set it meant a promtool to be there). */
static inline int test_promtool_path(char *buf, size_t size) {
        const char *env = getenv("VMMGR_PROMTOOL"), *path = getenv("PATH");

        if (env && *env) {
                snprintf(buf, size, "%s", env);
                return access(buf, X_OK) == 0 ? 0 : -ENOEXEC;
        }
        for (const char *p = path ? path : ""; *p;) {
                size_t n = strcspn(p, ":");

                snprintf(buf, size, "%.*s/promtool", (int) n, p);
                if (n > 0 && access(buf, X_OK) == 0)
                        return 0;
                p += n + (p[n] == ':');
        }
        snprintf(buf, size, "%s", TEST_PROMTOOL_CACHE);
        return access(buf, X_OK) == 0 ? 0 : -ENOENT;
}

static inline int memfd_with(const char *text) {
        int fd = memfd_create("promtool-io", MFD_CLOEXEC);
        size_t n = text ? strlen(text) : 0, done = 0;

        if (fd < 0)
                return negative_errno();
        while (done < n) {
                ssize_t k = write(fd, text + done, n - done);

                if (k < 0) {
                        int r = negative_errno();
                        close(fd);
                        return r;
                }
                done += (size_t) k;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}

/* Runs `promtool ARGS...` (args NULL-terminated) with `input` on its stdin
 * (NULL: empty); its stdout and stderr together in *ret_output (malloc'd,
 * "" when silent).  Returns its wait status, or a negative errno. */
static inline int test_promtool_run(const char *promtool, const char *const *args, const char *input,
                                    char **ret_output) {
        const char *argv[16];
        size_t argc = 0;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        int status;
        pid_t pid;

        argv[argc++] = promtool;
        for (size_t i = 0; args[i] && argc < ARRAY_SIZE(argv) - 1; i++)
                argv[argc++] = args[i];
        argv[argc] = NULL;
        in = memfd_with(input);
        if (in < 0)
                return in;
        out = memfd_with(NULL);
        if (out < 0)
                return out;
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
                        _exit(127);
                execv(promtool, (char *const *) argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (fstat(out, &st) < 0)
                return negative_errno();
        buf = calloc(1, (size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        if (st.st_size > 0 && pread(out, buf, (size_t) st.st_size, 0) != st.st_size)
                return -EIO;
        *ret_output = TAKE_PTR(buf);
        return status;
}

/* ---- files --------------------------------------------------------------- */

/* $VMMGR_SOURCE_ROOT/rel (meson sets it), else rel from here. */
static inline void test_source_path(char *buf, size_t size, const char *rel) {
        const char *root = getenv("VMMGR_SOURCE_ROOT");

        snprintf(buf, size, "%s/%s", root && *root ? root : ".", rel);
}

/* The whole file, NUL-terminated; NULL with errno on failure. */
static inline char *test_read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0, n = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (size - n < 4096) {
                        char *b = realloc(buf, size + 65536);
                        if (!b) {
                                free(buf);
                                errno = ENOMEM;
                                return NULL;
                        }
                        buf = b;
                        size += 65536;
                }
                size_t k = fread(buf + n, 1, size - n - 1, f);
                n += k;
                if (k == 0)
                        break;
        }
        if (ferror(f)) {
                free(buf);
                errno = EIO;
                return NULL;
        }
        buf[n] = '\0';
        return buf;
}

/* ---- the exposition ------------------------------------------------------ */

#define METRIC_NAME_MAX 128

typedef struct MetricFamily {
        char name[METRIC_NAME_MAX];
        char type[16];
        size_t samples;
} MetricFamily;

typedef struct MetricPage {
        MetricFamily *families; /* in the page's order */
        size_t n;
        char problem[512]; /* the first convention broken; "" when none */
} MetricPage;

static inline void metric_page_done(MetricPage *p) {
        free(p->families);
        p->families = NULL;
        p->n = 0;
}

static inline const MetricFamily *metric_page_find(const MetricPage *p, const char *name) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->families[i].name, name) == 0)
                        return &p->families[i];
        return NULL;
}

/* The family a sample or a query's series belongs to: a histogram's
 * _bucket, _sum and _count series belong to it. */
static inline const MetricFamily *metric_page_family_of(const MetricPage *p, const char *series) {
        static const char *const parts[] = { "_bucket", "_sum", "_count" };
        const MetricFamily *f = metric_page_find(p, series);
        char base[METRIC_NAME_MAX];
        size_t n = strlen(series);

        for (size_t i = 0; !f && i < ARRAY_SIZE(parts); i++) {
                size_t k = strlen(parts[i]);

                if (n > k && n - k < sizeof(base) && strcmp(series + n - k, parts[i]) == 0) {
                        snprintf(base, sizeof(base), "%.*s", (int) (n - k), series);
                        f = metric_page_find(p, base);
                        if (f && strcmp(f->type, "histogram") != 0)
                                f = NULL;
                }
        }
        return f;
}

static inline bool metric_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
}

static inline bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

#define page_problem(p, ...)                                                                                           \
        ({                                                                                                             \
                snprintf((p)->problem, sizeof((p)->problem), __VA_ARGS__);                                             \
                -EBADMSG;                                                                                              \
        })

/* The conventions vmmgr's names keep (docs/metrics.md), one name. */
static inline int metric_name_check(MetricPage *p, const char *name, const char *type) {
        static const char *const small_units[] = { "usec",  "nsec",  "msec", "_us_", "_ms_", "_ns_",
                                                   "micro", "milli", "nano", "kib",  "mib",  "gib" };

        if (strncmp(name, "vmmgr_", 6) != 0)
                return page_problem(p, "%s: not under the one prefix vmmgr_", name);
        for (size_t i = 0; i < ARRAY_SIZE(small_units); i++)
                if (strstr(name, small_units[i]) || ends_with(name, small_units[i] + (small_units[i][0] == '_')))
                        return page_problem(p, "%s: not in a base unit (%s)", name, small_units[i]);
        if (strcmp(type, "counter") == 0 && !ends_with(name, "_total"))
                return page_problem(p, "%s: a counter without _total", name);
        if (strcmp(type, "counter") != 0 && ends_with(name, "_total"))
                return page_problem(p, "%s: a %s named _total", name, type);
        if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
                return page_problem(p, "%s: type %s", name, type);
        return 0;
}

/* Reads the page; 0, or -EBADMSG with p->problem saying what is wrong:
 * a family without HELP before its TYPE, or twice; a sample away from
 * its family's TYPE; a name against the conventions; a value that is
 * not a number.  -ENOMEM. */
static inline int metric_page_parse(const char *text, MetricPage *p) {
        MetricFamily *cur = NULL;
        char help_for[METRIC_NAME_MAX] = "";
        size_t line_no = 0;

        *p = (MetricPage){ 0 };
        for (const char *line = text; *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t) (end - line) : strlen(line);
                char name[METRIC_NAME_MAX], type[16];
                int r;

                line_no++;
                if (len == 0)
                        return page_problem(p, "line %zu is empty", line_no);
                if (strncmp(line, "# HELP ", 7) == 0) {
                        if (sscanf(line + 7, "%127s", name) != 1 || len <= 7 + strlen(name) + 1)
                                return page_problem(p, "line %zu: HELP without a text", line_no);
                        if (metric_page_find(p, name))
                                return page_problem(p, "%s: a second HELP", name);
                        snprintf(help_for, sizeof(help_for), "%s", name);
                        cur = NULL;
                } else if (strncmp(line, "# TYPE ", 7) == 0) {
                        MetricFamily *f;

                        if (sscanf(line + 7, "%127s %15s", name, type) != 2)
                                return page_problem(p, "line %zu: bad TYPE", line_no);
                        if (strcmp(help_for, name) != 0)
                                return page_problem(p, "%s: TYPE without HELP just before it", name);
                        r = metric_name_check(p, name, type);
                        if (r < 0)
                                return r;
                        f = realloc(p->families, (p->n + 1) * sizeof(*f));
                        if (!f)
                                return -ENOMEM;
                        p->families = f;
                        cur = &p->families[p->n++];
                        *cur = (MetricFamily){ 0 };
                        snprintf(cur->name, sizeof(cur->name), "%s", name);
                        snprintf(cur->type, sizeof(cur->type), "%s", type);
                        help_for[0] = '\0';
                } else if (line[0] == '#') {
                        return page_problem(p, "line %zu: a comment that is neither HELP nor TYPE", line_no);
                } else {
                        size_t n = 0;
                        const char *v;
                        char *vend;
                        double x;

                        while (n < len && n < sizeof(name) - 1 && metric_name_char(line[n]))
                                n++;
                        memcpy(name, line, n);
                        name[n] = '\0';
                        if (!cur || metric_page_family_of(p, name) != cur)
                                return page_problem(p, "line %zu: sample %s away from its family's TYPE", line_no,
                                                    name);
                        v = memrchr(line, ' ', len);
                        if (!v)
                                return page_problem(p, "line %zu: no value", line_no);
                        v++;
                        errno = 0;
                        x = strtod(v, &vend);
                        if (vend != line + len || errno || isnan(x))
                                return page_problem(p, "line %zu: value %.*s", line_no, (int) (line + len - v), v);
                        cur->samples++;
                }
                line = end ? end + 1 : line + len;
        }
        if (help_for[0])
                return page_problem(p, "%s: HELP without TYPE", help_for);
        return 0;
}

/* ---- names in dashboards and rules --------------------------------------- */

typedef struct NameList {
        char (*names)[METRIC_NAME_MAX];
        size_t n;
} NameList;

static inline void name_list_done(NameList *l) {
        free(l->names);
        l->names = NULL;
        l->n = 0;
}

/* Adds every vmmgr_* name in `text` (once each). */
static inline int name_list_scan(NameList *l, const char *text) {
        for (const char *s = text; (s = strstr(s, "vmmgr_"));) {
                size_t n = 0;
                bool seen = false;

                if (s > text && metric_name_char(s[-1])) {
                        s++;
                        continue;
                }
                while (metric_name_char(s[n]))
                        n++;
                if (n >= METRIC_NAME_MAX)
                        return -ENAMETOOLONG;
                for (size_t i = 0; i < l->n && !seen; i++)
                        seen = strlen(l->names[i]) == n && strncmp(l->names[i], s, n) == 0;
                if (!seen) {
                        void *b = realloc(l->names, (l->n + 1) * sizeof(*l->names));
                        if (!b)
                                return -ENOMEM;
                        l->names = b;
                        snprintf(l->names[l->n++], METRIC_NAME_MAX, "%.*s", (int) n, s);
                }
                s += n;
        }
        return 0;
}

/* Every query in a Grafana dashboard (JSON): each "expr" string (a
 * panel's target) and "query" string (a template variable's), anywhere. */
static inline int name_list_scan_json_exprs(NameList *l, struct json_object *o, size_t *ret_exprs) {
        int r = 0;

        if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; r == 0 && i < json_object_array_length(o); i++)
                        r = name_list_scan_json_exprs(l, json_object_array_get_idx(o, i), ret_exprs);
        } else if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, key, v) {
                        if (r < 0)
                                break;
                        if ((strcmp(key, "expr") == 0 || strcmp(key, "query") == 0) &&
                            json_object_is_type(v, json_type_string)) {
                                (*ret_exprs)++;
                                r = name_list_scan(l, json_object_get_string(v));
                        } else
                                r = name_list_scan_json_exprs(l, v, ret_exprs);
                }
        }
        return r;
}
