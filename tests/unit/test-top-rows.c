/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/unit/test-top-rows.c - what `vmmgrctl top`'s screen does to its
 * rows (vmmgr/ctl/ctl-top-rows.c): sorting by each column with a stable
 * tie-break, filters by class or state, sparklines in UTF-8 and ASCII.
 * The screen itself is tested under tmux (tests/cli/test-top-tmux.sh).
 */
#include <errno.h>
#include <string.h>

#include "tests/common/vtest.h"
#include "vmmgr/ctl/ctl-top.h"

static TopRow row(const char *uuid, const char *klass, const char *state, int64_t avail, double cpu, bool cpu_known,
                  double limit) {
        TopRow r = { .available_usec = avail, .cpu_pct = cpu, .cpu_known = cpu_known, .limit_pct = limit };

        snprintf(r.uuid, sizeof(r.uuid), "%s", uuid);
        snprintf(r.klass, sizeof(r.klass), "%s", klass);
        snprintf(r.state, sizeof(r.state), "%s", state);
        snprintf(r.bank, sizeof(r.bank), "emulated");
        return r;
}

static void fill(TopRow *r) {
        r[0] = row("a", "t3.small", "throttled", 0, 20.0, true, 20.0);
        r[1] = row("b", "t3.micro", "bursting", 5000000, 95.5, true, -1);
        r[2] = row("c", "t3.small", "baseline", 2000000, 0, false, 40.0);
        r[3] = row("d", "t3.micro", "down", 2000000, 3.0, true, 10.0);
}

static void order(const TopRow *r, size_t n, char *buf) {
        for (size_t i = 0; i < n; i++)
                buf[i] = r[i].uuid[0];
        buf[n] = '\0';
}

static const char *sorted(TopColumn col, bool desc) {
        static char buf[8];
        TopRow r[4];

        fill(r);
        top_rows_sort(r, 4, col, desc);
        order(r, 4, buf);
        return buf;
}

static void test_sort(void **state) {
        assert_string_equal(sorted(TOP_COL_VM, false), "abcd");
        assert_string_equal(sorted(TOP_COL_VM, true), "dcba");
        /* ties (same class) by UUID, in both directions */
        assert_string_equal(sorted(TOP_COL_CLASS, false), "bdac");
        assert_string_equal(sorted(TOP_COL_CLASS, true), "acbd");
        assert_string_equal(sorted(TOP_COL_CREDITS, true), "bcda");
        assert_string_equal(sorted(TOP_COL_SECONDS, false), "acdb");
        /* CPU% not known yet (c) is below every figure */
        assert_string_equal(sorted(TOP_COL_CPU, true), "badc");
        assert_string_equal(sorted(TOP_COL_CPU, false), "cdab");
        assert_string_equal(sorted(TOP_COL_STATE, false), "cbda");
        /* no limit (b) is above any limit */
        assert_string_equal(sorted(TOP_COL_LIMIT, true), "bcad");
}

static void test_columns(void **state) {
        assert_string_equal(top_column_name(TOP_COL_CPU), "CPU%");
        assert_int_equal(top_column_key(TOP_COL_CPU), 'p');
        assert_int_equal(top_column_from_key('p'), TOP_COL_CPU);
        /* 'a' is CREDITS; (CPU-s) shows the same figure */
        assert_int_equal(top_column_from_key('a'), TOP_COL_CREDITS);
        assert_int_equal(top_column_from_key('q'), -1);
        for (int c = 0; c < _TOP_COL_MAX; c++)
                if (c != TOP_COL_SECONDS)
                        assert_int_equal(top_column_from_key(top_column_key(c)), c);
}

static size_t filtered(const char *text, char *buf) {
        TopFilter f;
        TopRow r[4];
        size_t n;

        fill(r);
        assert_int_equal(top_filter_parse(text, &f), 0);
        n = top_rows_filter(r, 4, &f);
        order(r, n, buf);
        return n;
}

static void test_filter(void **state) {
        char buf[8];
        TopFilter f;

        assert_int_equal(filtered("", buf), 4);
        assert_int_equal(filtered("   ", buf), 4);
        assert_int_equal(filtered("t3.small", buf), 2);
        assert_string_equal(buf, "ac");
        assert_int_equal(filtered("micro", buf), 2);
        assert_string_equal(buf, "bd");
        /* a bare word matches the class or the state */
        assert_int_equal(filtered("b", buf), 2);
        assert_string_equal(buf, "bc");
        assert_int_equal(filtered("state=b", buf), 2);
        assert_int_equal(filtered("class=b", buf), 0);
        assert_int_equal(filtered("state=down", buf), 1);
        assert_string_equal(buf, "d");
        assert_int_equal(filtered("class=t3.micro ", buf), 2);
        assert_int_equal(filtered("class=", buf), 4);
        /* an unknown key changes nothing */
        f.word[0] = 'x';
        f.word[1] = '\0';
        assert_int_equal(top_filter_parse("bank=emulated", &f), -EINVAL);
        assert_string_equal(f.word, "x");
        assert_int_equal(top_filter_parse("state=throttled", &f), 0);
        assert_string_equal(f.text, "state=throttled");
        assert_true(f.by_state && !f.by_class);
}

static void test_sparkline(void **state) {
        const double up[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
        const double flat[3] = { 0, 0, 0 };
        char buf[128];

        assert_int_equal(top_sparkline(up, 8, 0, 8, false, buf, sizeof(buf)), 8);
        assert_string_equal(buf, "_.-:=+*#");
        assert_int_equal(top_sparkline(up, 8, 0, 8, true, buf, sizeof(buf)), 8);
        assert_string_equal(buf, "▁▂▃▄▅▆▇█");
        /* fewer samples than cells: right-aligned */
        assert_int_equal(top_sparkline(up, 2, 14, 5, false, buf, sizeof(buf)), 5);
        assert_string_equal(buf, "   _.");
        /* more samples than cells: each cell the mean of its samples */
        assert_int_equal(top_sparkline(up, 8, 7, 4, false, buf, sizeof(buf)), 4);
        assert_string_equal(buf, ".:+#");
        /* all zero: the lowest mark, not a division by zero */
        assert_int_equal(top_sparkline(flat, 3, 0, 3, true, buf, sizeof(buf)), 3);
        assert_string_equal(buf, "▁▁▁");
        /* a fixed scale clamps what is above it */
        assert_int_equal(top_sparkline(up, 8, 3.5, 8, false, buf, sizeof(buf)), 8);
        assert_string_equal(buf, "_-=*####");
        /* a small buffer: whole cells only, NUL-terminated */
        assert_int_equal(top_sparkline(up, 8, 0, 8, true, buf, 8), 2);
        assert_string_equal(buf, "▁▂");
        assert_int_equal(top_sparkline(up, 8, 0, 8, true, buf, 0), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sort),
                cmocka_unit_test(test_columns),
                cmocka_unit_test(test_filter),
                cmocka_unit_test(test_sparkline),
        };
        return vt_run_group_tests(tests, NULL, NULL);
}
