/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit test: the handoff record's JSON (migration/record.h): what is
 * written reads back the same, and every kind of bad record is refused
 * with the member at fault, changing nothing.
 */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migration/record.h"

static MigRecord sample(void) {
        MigRecord r = { .epoch = 7, .frozen_at_usec = UINT64_C(1796224290488559),
                        .spec = { .vcpus = 2, .baseline_ppm = 200000, .cap_usec = 60000000, .launch_usec = 1000,
                                  .mode = CREDIT_MODE_UNLIMITED },
                        .ledger = { .balance_usec = 3640232, .launch_usec = 0, .surplus_usec = 12, .charged_usec = 3,
                                    .earned_usec = 431415, .spent_usec = 1791183, .forfeited_usec = 5,
                                    .overdraft_usec = 6, .debt_usec = 0, .adjusted_usec = -5000000,
                                    .earn_remainder = 999999, .generation = 10 } };

        assert_int_equal(vm_id_parse("6A1C1F3E-0000-4000-8000-00000000ABCD", &r.vm), 0);
        snprintf(r.source, sizeof(r.source), "host-17");
        return r;
}

static void test_round_trip(void **state) {
        MigRecord in = sample(), out;
        MigRecordError err = {};
        char *text = mig_record_to_text(&in);

        (void) state;
        assert_non_null(text);
        assert_non_null(strstr(text, "\"vm\":\"6a1c1f3e-0000-4000-8000-00000000abcd\""));
        memset(&out, 0xa5, sizeof(out));
        assert_int_equal(mig_record_from_text(text, &out, &err), 0);
        assert_string_equal(out.vm.str, in.vm.str);
        assert_true(out.epoch == in.epoch && out.frozen_at_usec == in.frozen_at_usec);
        assert_string_equal(out.source, "host-17");
        assert_memory_equal(&out.spec, &in.spec, sizeof(in.spec));
        assert_memory_equal(&out.ledger, &in.ledger, sizeof(in.ledger));
        free(text);
}

/* Takes the sample's JSON, changes one member (value NULL: removes it;
 * a dotted key reaches into spec or ledger), and expects a refusal that
 * names `field` (NULL: any). */
static void expect_refused(const char *key, struct json_object *value, const char *field) {
        MigRecord in = sample(), out = { .epoch = 99 };
        struct json_object *o = mig_record_to_json(&in), *parent = o;
        MigRecordError err = {};
        const char *dot = strchr(key, '.');
        char head[32];

        assert_non_null(o);
        if (dot) {
                snprintf(head, sizeof head, "%.*s", (int) (dot - key), key);
                parent = json_object_object_get(o, head);
                key = dot + 1;
        }
        if (value)
                json_object_object_add(parent, key, value);
        else
                json_object_object_del(parent, key);
        assert_int_equal(mig_record_from_json(o, &out, &err), -EINVAL);
        assert_true(out.epoch == 99); /* nothing written */
        assert_true(err.message[0] != '\0');
        if (field) {
                if (!err.field)
                        fail_msg("no field named for %s: %s", key, err.message);
                assert_string_equal(err.field, field);
        }
        json_object_put(o);
}

static void test_refusals(void **state) {
        (void) state;
        expect_refused("version", json_object_new_int(2), "version");
        expect_refused("vm", json_object_new_string("../../etc"), "vm");
        expect_refused("vm", json_object_new_int(1), "vm");
        expect_refused("epoch", json_object_new_int(0), "epoch");
        expect_refused("epoch", json_object_new_string("1"), "epoch");
        expect_refused("epoch", json_object_new_double(1.5), "epoch");
        expect_refused("frozen_at_usec", json_object_new_int(-1), "frozen_at_usec");
        expect_refused("source", json_object_new_string("a\nb"), "source");
        expect_refused("extra", json_object_new_int(1), NULL);
        expect_refused("ledger", NULL, "ledger");
        expect_refused("spec.vcpus", json_object_new_int(0), "spec.vcpus");
        expect_refused("spec.baseline_ppm", json_object_new_int(1000001), "spec.baseline_ppm");
        expect_refused("spec.mode", json_object_new_string("burst"), "spec.mode");
        expect_refused("spec.extra", json_object_new_int(1), NULL);
        /* A balance above the cap is a ledger no vmmgr writes. */
        expect_refused("ledger.balance_usec", json_object_new_int64(60000001), "ledger.balance_usec");
        expect_refused("ledger.balance_usec", json_object_new_int64(-1), "ledger.balance_usec");
        expect_refused("ledger.debt_usec", json_object_new_int64(-1), "ledger.debt_usec");
        expect_refused("ledger.earn_remainder", json_object_new_int64(1000000), "ledger.earn_remainder");
        expect_refused("ledger.generation", NULL, "generation");
}

static void test_text(void **state) {
        MigRecord in = sample(), out;
        MigRecordError err = {};
        char *text = mig_record_to_text(&in), *padded;
        size_t n;

        (void) state;
        n = strlen(text);
        padded = malloc(n + 8);
        snprintf(padded, n + 8, "%s \n", text);
        assert_int_equal(mig_record_from_text(padded, &out, &err), 0); /* a trailing newline is fine */
        snprintf(padded, n + 8, "%s{}", text);
        assert_int_equal(mig_record_from_text(padded, &out, &err), -EINVAL); /* two objects are not one */
        assert_int_equal(mig_record_from_text("[1]", &out, &err), -EINVAL);
        assert_int_equal(mig_record_from_text("{\"version\":", &out, &err), -EINVAL);
        assert_int_equal(mig_record_from_text("", &out, &err), -EINVAL);
        /* 9223372036854775808 does not fit: refused, not saturated. */
        {
                const char *p = strstr(text, "\"epoch\":7,");
                char *big = malloc(n + 32);

                assert_non_null(p);
                snprintf(big, n + 32, "%.*s\"epoch\":9223372036854775808,%s", (int) (p - text), text,
                         p + strlen("\"epoch\":7,"));
                memset(&err, 0, sizeof err);
                assert_int_equal(mig_record_from_text(big, &out, &err), -EINVAL);
                assert_non_null(err.field);
                assert_string_equal(err.field, "epoch");
                free(big);
        }
        free(padded);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_text),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
