/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: vmmgrd's configuration file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmmgr/daemon/config.h"

static void test_defaults(void **state) {
        VmmgrConfig c;

        assert_int_equal(config_init(&c), 0);
        assert_string_equal(c.state_dir, "/var/lib/vmmgr");
        assert_string_equal(c.subtree, "vmmgr.slice");
        assert_true(c.tick_usec == 100000);
        assert_int_equal(c.io_uring, KH_READ_AUTO);
        assert_non_null(credit_class_find(&c.classes, "t3.micro"));
        config_done(&c);
}

static void test_full_file(void **state) {
        VmmgrConfig c;
        char msg[256] = "";
        const CreditClass *k;
        const char *text = "# vmmgrd\n"
                           "[daemon]\n"
                           "state_dir = /srv/vmmgr   # where the db lives\n"
                           "socket=/run/x.sock\n"
                           "\n"
                           "controllers = cpu,cpuacct\n"
                           "tick_ms = 50\n"
                           "task_delayacct = on\n"
                           "io_uring = no\n"
                           "[api.tls]\n"
                           "listen = 127.0.0.1:8443\n"
                           "cert = /etc/vmmgr/s.pem\n"
                           "[class burst-small]\n"
                           "like = t3.small\n"
                           "baseline = 15%\n"
                           "cap = 300cr\n"
                           "[class t3.nano]\n"
                           "like = t3.nano\n"
                           "mode = standard\n"
                           "[memory]\n"
                           "overhead = 128M\n"
                           "host_ceiling_pct = 90%\n"
                           "proactive = off\n";

        assert_int_equal(config_init(&c), 0);
        assert_int_equal(config_load_text(&c, text, "test.conf", msg, sizeof(msg)), 0);
        assert_string_equal(c.state_dir, "/srv/vmmgr");
        assert_string_equal(c.socket_path, "/run/x.sock");
        assert_true(c.tick_usec == 50000);
        assert_int_equal(c.task_delayacct, CONFIG_DELAYACCT_ON);
        assert_int_equal(c.io_uring, KH_READ_PREAD);
        assert_string_equal(c.tls_listen, "127.0.0.1:8443");
        k = credit_class_find(&c.classes, "burst-small");
        assert_non_null(k);
        assert_int_equal(k->spec.vcpus, 2);
        assert_int_equal(k->spec.baseline_ppm, 150000);
        assert_true(k->spec.cap_usec == 300 * INT64_C(60000000));
        k = credit_class_find(&c.classes, "t3.nano");
        assert_int_equal(k->spec.mode, CREDIT_MODE_STANDARD); /* a preset replaced */
        assert_true(c.memory.limits.overhead_bytes == (UINT64_C(128) << 20));
        assert_int_equal(c.memory.host.ceiling_ppm, 900000);
        assert_false(c.memory.proactive.enabled);
        config_done(&c);
}

static void test_errors(void **state) {
        static const struct {
                const char *text;
                const char *msg;
        } cases[] = {
                { "[daemon]\nstate_dr = /x\n", "t.conf:2: unknown key \"state_dr\"" },
                { "[deamon]\n", "t.conf:1: unknown section [deamon]" },
                { "state_dir = /x\n", "t.conf:1: setting outside a section" },
                { "[daemon]\n\n\ntick_ms = 5\n", "t.conf:4: bad value for tick_ms" },
                { "[daemon]\ntick_ms = fast\n", "t.conf:2: bad value for tick_ms" },
                { "[daemon]\nstate_dir = relative/dir\n", "t.conf:2: bad value for state_dir" },
                { "[daemon]\nsubtree = ../up\n", "t.conf:2: bad value for subtree" },
                { "[daemon]\ncontrollers = cpu,gpu\n", "t.conf:2: bad value for controllers" },
                { "[daemon]\ntask_delayacct = yes\n", "t.conf:2: bad value for task_delayacct" },
                { "[daemon]\nio_uring = off\n", "t.conf:2: bad value for io_uring" },
                { "[daemon\n", "t.conf:1: malformed section header" },
                { "[daemon]\njust words\n", "t.conf:2: expected KEY = VALUE" },
                { "[class x]\nlike = t3.giant\n", "t.conf:2: unknown class \"t3.giant\"" },
                { "[class x]\nbaseline = 120%\n", "t.conf:2: bad value for baseline" },
                { "[class x]\nbaseline = 0.2\n", "t.conf:1: class \"x\" is not valid" }, /* no vcpus */
                { "[class Bad/Name]\nlike = demo\n", "t.conf:1: class \"Bad/Name\" is not valid" },
                { "[memory]\noverhed = 1G\n", "t.conf:2: unknown key \"overhed\"" },
                { "[memory]\noverhead = lots\n", "t.conf:2: bad value for overhead" },
                { "[memory]\nhost_ceiling_pct = 150%\n", "t.conf:2: bad value for host_ceiling_pct" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                VmmgrConfig c, before;
                char msg[256] = "";
                int r;

                assert_int_equal(config_init(&c), 0);
                before = c;
                r = config_load_text(&c, cases[i].text, "t.conf", msg, sizeof(msg));
                if (r >= 0 || strncmp(msg, cases[i].msg, strlen(cases[i].msg)) != 0)
                        fail_msg("case %zu: r=%d msg=\"%s\", want \"%s\"", i, r, msg, cases[i].msg);
                /* Nothing applied. */
                assert_string_equal(c.state_dir, before.state_dir);
                assert_true(c.classes.classes == before.classes.classes && c.classes.n == before.classes.n);
                config_done(&c);
        }
}

static void test_missing_file(void **state) {
        VmmgrConfig c;
        char msg[256] = "";

        assert_int_equal(config_init(&c), 0);
        assert_int_equal(config_load_file(&c, "/nonexistent/vmmgr.conf", msg, sizeof(msg)), -ENOENT);
        assert_non_null(strstr(msg, "/nonexistent/vmmgr.conf"));
        config_done(&c);
}

/* The [memory] example in docs/memory.md is a valid configuration. */
static void test_memory_doc_example(void **state) {
        const char *root = getenv("VMMGR_SOURCE_ROOT");
        char path[4096], msg[256] = "", *text = NULL, *start, *end;
        size_t len = 0;
        VmmgrConfig c;
        FILE *f;

        snprintf(path, sizeof(path), "%s/docs/memory.md", root ? root : ".");
        f = fopen(path, "re");
        assert_non_null(f);
        assert_true(getdelim(&text, &len, '\0', f) > 0);
        fclose(f);
        start = strstr(text, "```ini\n");
        assert_non_null(start);
        start += 7;
        end = strstr(start, "```");
        assert_non_null(end);
        *end = '\0';
        assert_int_equal(config_init(&c), 0);
        if (config_load_text(&c, start, "docs/memory.md", msg, sizeof(msg)) < 0)
                fail_msg("the documented [memory] example does not load: %s", msg);
        assert_int_equal(c.memory.host.ceiling_ppm, 950000);
        config_done(&c);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_memory_doc_example),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_full_file),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_missing_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
