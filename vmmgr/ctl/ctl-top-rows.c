/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl/ctl-top-rows.c - what `vmmgrctl top`'s screen does to its
 * rows: sort by a column, filter by class or state, and draw a history as
 * a sparkline.  No I/O, no terminal: a unit test runs it as it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "vmmgr/ctl/ctl-top.h"

static const struct {
        const char *name;
        char key;
} columns[_TOP_COL_MAX] = {
        [TOP_COL_VM] = { "VM", 'u' },           [TOP_COL_CLASS] = { "CLASS", 'c' },
        [TOP_COL_CREDITS] = { "CREDITS", 'a' }, [TOP_COL_SECONDS] = { "(CPU-s)", 'a' },
        [TOP_COL_CPU] = { "CPU%", 'p' },        [TOP_COL_STATE] = { "STATE", 's' },
        [TOP_COL_LIMIT] = { "LIMIT", 'l' },     [TOP_COL_BANK] = { "BANK", 'b' },
};

const char *top_column_name(TopColumn col) {
        return col >= 0 && col < _TOP_COL_MAX ? columns[col].name : "?";
}

char top_column_key(TopColumn col) {
        return col >= 0 && col < _TOP_COL_MAX ? columns[col].key : '?';
}

int top_column_from_key(int key) {
        for (int i = 0; i < _TOP_COL_MAX; i++)
                if (columns[i].key == key)
                        return i; /* the first: CREDITS, not (CPU-s) */
        return -1;
}

static int cmp_double(double a, double b) {
        return a < b ? -1 : a > b ? 1 : 0;
}

typedef struct SortBy {
        TopColumn col;
        bool desc;
} SortBy;

static int cmp_rows(const void *pa, const void *pb, void *userdata) {
        const TopRow *a = pa, *b = pb;
        const SortBy *by = userdata;
        int d = 0;

        switch (by->col) {
        case TOP_COL_VM:
                break;
        case TOP_COL_CLASS:
                d = strcmp(a->klass, b->klass);
                break;
        case TOP_COL_CREDITS:
        case TOP_COL_SECONDS:
                d = a->available_usec < b->available_usec ? -1 : a->available_usec > b->available_usec;
                break;
        case TOP_COL_CPU:
                /* not known yet sorts below any figure */
                d = a->cpu_known != b->cpu_known ? (a->cpu_known ? 1 : -1) : cmp_double(a->cpu_pct, b->cpu_pct);
                break;
        case TOP_COL_STATE:
                d = strcmp(a->state, b->state);
                break;
        case TOP_COL_LIMIT:
                /* no limit is above any limit */
                d = cmp_double(a->limit_pct < 0 ? 1e300 : a->limit_pct, b->limit_pct < 0 ? 1e300 : b->limit_pct);
                break;
        case TOP_COL_BANK:
                d = strcmp(a->bank, b->bank);
                break;
        default:
                break;
        }
        if (by->desc)
                d = -d;
        return d != 0 ? d : strcmp(a->uuid, b->uuid);
}

void top_rows_sort(TopRow *rows, size_t n, TopColumn col, bool descending) {
        SortBy by = { .col = col, .desc = descending };

        if (n < 2)
                return;
        if (col == TOP_COL_VM && descending) {
                /* the tie-break is the column itself */
                by.desc = false;
                qsort_r(rows, n, sizeof(TopRow), cmp_rows, &by);
                for (size_t i = 0; i < n / 2; i++) {
                        TopRow t = rows[i];
                        rows[i] = rows[n - 1 - i];
                        rows[n - 1 - i] = t;
                }
                return;
        }
        qsort_r(rows, n, sizeof(TopRow), cmp_rows, &by);
}

int top_filter_parse(const char *s, TopFilter *ret) {
        TopFilter f = { 0 };
        const char *word = s, *eq;

        while (*word == ' ')
                word++;
        eq = strchr(word, '=');
        f.by_class = f.by_state = true;
        if (eq) {
                size_t k = (size_t) (eq - word);
                if (k == 5 && strncmp(word, "class", 5) == 0)
                        f.by_state = false;
                else if (k == 5 && strncmp(word, "state", 5) == 0)
                        f.by_class = false;
                else
                        return -EINVAL;
                word = eq + 1;
        }
        if (strlen(s) >= sizeof(f.text) || strlen(word) >= sizeof(f.word))
                return -E2BIG;
        snprintf(f.text, sizeof(f.text), "%s", s);
        snprintf(f.word, sizeof(f.word), "%s", word);
        /* trailing blanks are not part of the word */
        for (size_t l = strlen(f.word); l > 0 && f.word[l - 1] == ' '; l--)
                f.word[l - 1] = '\0';
        if (!f.word[0])
                f = (TopFilter){ 0 };
        *ret = f;
        return 0;
}

bool top_filter_match(const TopFilter *f, const TopRow *row) {
        if (!f->word[0])
                return true;
        return (f->by_class && strstr(row->klass, f->word)) || (f->by_state && strstr(row->state, f->word));
}

size_t top_rows_filter(TopRow *rows, size_t n, const TopFilter *f) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                if (top_filter_match(f, &rows[i])) {
                        if (k != i)
                                rows[k] = rows[i];
                        k++;
                }
        return k;
}

size_t top_sparkline(const double *v, size_t n, double vmax, size_t width, bool utf8, char *buf, size_t size) {
        static const char *const blocks[8] = { "\u2581", "\u2582", "\u2583", "\u2584",
                                               "\u2585", "\u2586", "\u2587", "\u2588" };
        static const char ascii[8] = { '_', '.', '-', ':', '=', '+', '*', '#' };
        size_t cells = n < width ? n : width, out = 0, len = 0;

        if (size == 0)
                return 0;
        buf[0] = '\0';
        if (vmax <= 0)
                for (size_t i = 0; i < n; i++)
                        if (v[i] > vmax)
                                vmax = v[i];
        /* Fewer samples than cells: one a cell, right-aligned; more: cell
         * c averages samples [c*n/cells, (c+1)*n/cells). */
        for (size_t pad = width - cells; out < pad; out++) {
                if (len + 2 > size)
                        return out;
                buf[len++] = ' ';
                buf[len] = '\0';
        }
        for (size_t c = 0; c < cells; c++, out++) {
                size_t from = c * n / cells, to = (c + 1) * n / cells;
                double sum = 0, mean;
                int level;

                if (to <= from)
                        to = from + 1;
                for (size_t i = from; i < to; i++)
                        sum += v[i];
                mean = sum / (double) (to - from);
                level = vmax > 0 ? (int) (mean / vmax * 7.0 + 0.5) : 0;
                level = level < 0 ? 0 : level > 7 ? 7 : level;
                if (utf8) {
                        if (len + 4 > size)
                                return out;
                        memcpy(buf + len, blocks[level], 3);
                        len += 3;
                } else {
                        if (len + 2 > size)
                                return out;
                        buf[len++] = ascii[level];
                }
                buf[len] = '\0';
        }
        return out;
}
