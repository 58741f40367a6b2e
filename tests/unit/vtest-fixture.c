/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/unit/vtest-fixture.c - a cmocka program built on
 * tests/common/vtest.h whose cases pass, skip or fail as argv[1] says, so
 * that test-honest-counts.sh can check the exit codes and the line that
 * ./run counts: all-skip (77), mixed (0 and "skipped 1 of 2"), pass (0),
 * fail (1, also with a skip beside it).
 */
#include <stdlib.h>
#include <string.h>

#include "tests/common/vtest.h"

static const char *mode;

static void case_a(void **state) {
        (void)state;
        if (strcmp(mode, "all-skip") == 0)
                vt_skip("fixture: all cases skip");
        if (strcmp(mode, "fail") == 0)
                fail_msg("fixture: this case fails");
}

static void case_b(void **state) {
        (void)state;
        if (strcmp(mode, "pass") != 0)
                vt_skip("fixture: case b skips in mode %s", mode);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(case_a),
                cmocka_unit_test(case_b),
        };

        if (argc != 2)
                return 2;
        mode = argv[1];
        return vt_run_group_tests(tests, NULL, NULL);
}
