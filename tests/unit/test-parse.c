/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: common/parse.c and common/vmid.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/parse.h"
#include "common/vmid.h"

static void test_parse_u64(void **state) {
        static const struct {
                const char *in;
                int r;
                uint64_t v;
        } cases[] = {
                { "0", 0, 0 },
                { "42", 0, 42 },
                { "18446744073709551615", 0, UINT64_MAX },
                { "18446744073709551616", -ERANGE, 0 },
                { "99999999999999999999", -ERANGE, 0 },
                { "", -EINVAL, 0 },
                { " 1", -EINVAL, 0 },
                { "1 ", -EINVAL, 0 },
                { "+1", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "1x", -EINVAL, 0 },
                { "0x10", -EINVAL, 0 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t v = 12345;
                int r = parse_u64(cases[i].in, &v);
                assert_int_equal(r, cases[i].r);
                if (r == 0)
                        assert_true(v == cases[i].v);
                else
                        assert_true(v == 12345); /* untouched on failure */
        }
        assert_int_equal(parse_u64(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void test_parse_i64(void **state) {
        int64_t v;

        assert_int_equal(parse_i64("-1", &v), 0);
        assert_true(v == -1);
        assert_int_equal(parse_i64("+7", &v), 0);
        assert_true(v == 7);
        assert_int_equal(parse_i64("9223372036854775807", &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(parse_i64("-9223372036854775808", &v), 0);
        assert_true(v == INT64_MIN);
        assert_int_equal(parse_i64("9223372036854775808", &v), -ERANGE);
        assert_int_equal(parse_i64("-9223372036854775809", &v), -ERANGE);
        assert_int_equal(parse_i64("--1", &v), -EINVAL);
        assert_int_equal(parse_i64("-", &v), -EINVAL);
}

static void test_parse_u64_or_max(void **state) {
        uint64_t v;

        assert_int_equal(parse_u64_or_max("max", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(parse_u64_or_max("4096", &v), 0);
        assert_true(v == 4096);
        /* UINT64_MAX spelled in digits would alias "max". */
        assert_int_equal(parse_u64_or_max("18446744073709551615", &v), -ERANGE);
        assert_int_equal(parse_u64_or_max("MAX", &v), -EINVAL);
        assert_int_equal(parse_u64_or_max("maximum", &v), -EINVAL);
}

static void test_parse_fraction(void **state) {
        uint32_t ppm;

        assert_int_equal(parse_fraction_ppm("0.2", &ppm), 0);
        assert_int_equal(ppm, 200000);
        assert_int_equal(parse_fraction_ppm("1", &ppm), 0);
        assert_int_equal(ppm, 1000000);
        assert_int_equal(parse_fraction_ppm("0.000001", &ppm), 0);
        assert_int_equal(ppm, 1);
        assert_int_equal(parse_fraction_ppm("1.0000001", &ppm), -ERANGE);
        assert_int_equal(parse_fraction_ppm("1.5", &ppm), -ERANGE);
        assert_int_equal(parse_fraction_ppm("2", &ppm), -ERANGE);
        assert_int_equal(parse_fraction_ppm("0.", &ppm), -EINVAL);
        assert_int_equal(parse_fraction_ppm(".5", &ppm), -EINVAL);
        assert_int_equal(parse_fraction_ppm("-0.5", &ppm), -EINVAL);
        assert_int_equal(parse_fraction_ppm("0.5.1", &ppm), -EINVAL);
}

static void test_size(void **state) {
        uint64_t v;

        assert_int_equal(parse_size("4096", &v), 0);
        assert_true(v == 4096);
        assert_int_equal(parse_size("256M", &v), 0);
        assert_true(v == UINT64_C(256) << 20);
        assert_int_equal(parse_size("1g", &v), 0);
        assert_true(v == UINT64_C(1) << 30);
        assert_int_equal(parse_size("16777215T", &v), 0);
        assert_int_equal(parse_size("16777216T", &v), -ERANGE);
        assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_size("1.5G", &v), -EINVAL);
        assert_int_equal(parse_size("1GB", &v), -EINVAL);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("G", &v), -EINVAL);
        assert_int_equal(parse_size("", &v), -EINVAL);
}

static void test_pci_address(void **state) {
        assert_true(is_pci_address("0000:03:00.0"));
        assert_true(is_pci_address("10de:ff:1f.7"));
        assert_false(is_pci_address("0000:03:20.0"));  /* device 0x20 */
        assert_false(is_pci_address("0000:03:00.8"));  /* function 8 */
        assert_false(is_pci_address("0000:03:00.a"));
        assert_false(is_pci_address("0000:03:00"));
        assert_false(is_pci_address("0000:03:00.0/"));
        assert_false(is_pci_address("0000:0G:00.0"));
        assert_false(is_pci_address("0000:0A:00.0")); /* sysfs spells hex lowercase */
        assert_false(is_pci_address("../../../etc"));
        assert_false(is_pci_address(""));
        assert_false(is_pci_address(NULL));
}

static void test_safe_name(void **state) {
        assert_true(is_safe_name("vmmgr.slice", 255));
        assert_true(is_safe_name("a-b_c.d", 255));
        assert_false(is_safe_name("", 255));
        assert_false(is_safe_name(".", 255));
        assert_false(is_safe_name("..", 255));
        assert_false(is_safe_name("a/b", 255));
        assert_false(is_safe_name("a b", 255));
        assert_false(is_safe_name("a\nb", 255));
        assert_false(is_safe_name("abcdef", 5));
}

static void test_vm_id(void **state) {
        VmId id;

        assert_int_equal(vm_id_parse("6A1D4A5E-0F3B-4C2A-9E7D-1B2C3D4E5F60", &id), 0);
        assert_string_equal(id.str, "6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60");
        assert_int_equal(vm_id_parse("6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f6", &id), -EINVAL);
        assert_int_equal(vm_id_parse("6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f600", &id), -EINVAL);
        assert_int_equal(vm_id_parse("../../../../../etc/passwd-aaaaaaaaaaa", &id), -EINVAL);
        assert_int_equal(vm_id_parse("6a1d4a5e/0f3b-4c2a-9e7d-1b2c3d4e5f60", &id), -EINVAL);
        assert_int_equal(vm_id_parse("6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5fgg", &id), -EINVAL);
        assert_int_equal(vm_id_parse("", &id), -EINVAL);
        assert_int_equal(vm_id_parse(NULL, &id), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_u64),        cmocka_unit_test(test_parse_i64),
                cmocka_unit_test(test_parse_u64_or_max), cmocka_unit_test(test_parse_fraction),
                cmocka_unit_test(test_size), cmocka_unit_test(test_pci_address), cmocka_unit_test(test_safe_name),        cmocka_unit_test(test_vm_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
