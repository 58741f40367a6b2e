/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit test: docs/openapi.yaml documents exactly the routes api.c serves.
 * A line-based reading of the document's "paths:" section is enough: a
 * path is a key indented by two spaces, its operations keys indented by
 * four (the layout docs/openapi.yaml keeps).
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "vmmgr/api/api.h"

typedef struct Op {
        char method[8];
        char path[128];
        bool matched;
} Op;

static size_t read_ops(Op *ops, size_t max) {
        const char *root = getenv("VMMGR_SOURCE_ROOT");
        char file[512], line[512], path[128] = "";
        bool in_paths = false;
        size_t n = 0;
        FILE *f;

        snprintf(file, sizeof file, "%s/docs/openapi.yaml", root ? root : ".");
        f = fopen(file, "re");
        if (!f)
                fail_msg("cannot open %s (set VMMGR_SOURCE_ROOT)", file);
        while (fgets(line, sizeof line, f)) {
                static const char *const methods[] = { "get", "put", "post", "delete", "patch", "head", "options" };
                size_t len = strcspn(line, "\r\n");

                line[len] = '\0';
                if (len == 0 || line[0] == '#')
                        continue;
                if (!isspace((unsigned char) line[0])) {
                        in_paths = strcmp(line, "paths:") == 0;
                        continue;
                }
                if (!in_paths)
                        continue;
                if (strncmp(line, "  /", 3) == 0 && line[len - 1] == ':') {
                        snprintf(path, sizeof path, "%.*s", (int) (len - 3), line + 2);
                        continue;
                }
                if (strncmp(line, "    ", 4) != 0 || isspace((unsigned char) line[4]))
                        continue;
                for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
                        size_t m = strlen(methods[i]);

                        if (strncmp(line + 4, methods[i], m) == 0 && line[4 + m] == ':') {
                                assert_true(path[0] == '/');
                                assert_true(n < max);
                                for (size_t k = 0; k <= m; k++)
                                        ops[n].method[k] = (char) toupper((unsigned char) methods[i][k]);
                                snprintf(ops[n].path, sizeof ops[n].path, "%s", path);
                                n++;
                        }
                }
        }
        fclose(f);
        return n;
}

static void test_sync(void **state) {
        Op ops[64] = {};
        const ApiRoute *routes;
        size_t n_routes = api_routes(&routes), n_ops = read_ops(ops, ARRAY_SIZE(ops));
        bool ok = true;

        (void) state;
        assert_true(n_ops > 0);
        for (size_t i = 0; i < n_routes; i++) {
                bool found = false;

                for (size_t j = 0; j < n_ops; j++)
                        if (strcmp(ops[j].method, routes[i].method) == 0 && strcmp(ops[j].path, routes[i].pattern) == 0) {
                                ops[j].matched = found = true;
                        }
                if (!found) {
                        print_error("served but not documented: %s %s\n", routes[i].method, routes[i].pattern);
                        ok = false;
                }
        }
        for (size_t j = 0; j < n_ops; j++)
                if (!ops[j].matched) {
                        print_error("documented but not served: %s %s\n", ops[j].method, ops[j].path);
                        ok = false;
                }
        assert_true(ok);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sync),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
