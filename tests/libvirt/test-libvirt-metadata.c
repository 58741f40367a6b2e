/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests: vmmgr/daemon/libvirt-metadata.c as pure logic - the credit
 * spec's XML parsed with hostile input, formatted back (round trips), and
 * resolved against the credit classes.  No libvirt connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/vtest.h"
#include "vmmgr/daemon/libvirt-metadata.h"

#define NS "xmlns:vmmgr=\"" LV_CREDITS_NS "\""
#define SEC INT64_C(1000000)

static int parse(const char *xml, LvCredits *c, LvCreditsError *err) {
        memset(err, 0, sizeof(*err));
        return lv_credits_parse(xml, strlen(xml), c, err);
}

static void test_parse_full(void **state) {
        LvCredits c;
        LvCreditsError err;

        assert_int_equal(parse("<vmmgr:credits " NS " class=\"t3.small\" baseline=\"20%\" cap=\"288cr\" "
                               "launch=\"30cr\" mode=\"unlimited\"/>",
                               &c, &err),
                         0);
        assert_int_equal(c.set, LV_CREDITS_CLASS | LV_CREDITS_BASELINE | LV_CREDITS_CAP | LV_CREDITS_LAUNCH |
                                        LV_CREDITS_MODE);
        assert_string_equal(c.class_name, "t3.small");
        assert_int_equal(c.baseline_ppm, 200000);
        assert_int_equal(c.cap_usec, 288 * 60 * SEC);
        assert_int_equal(c.launch_usec, 30 * 60 * SEC);
        assert_int_equal(c.mode, CREDIT_MODE_UNLIMITED);

        /* A default namespace, whitespace and a comment inside, other forms. */
        assert_int_equal(parse("<?xml version=\"1.0\"?>\n<credits xmlns=\"" LV_CREDITS_NS "\" baseline=\"0.05\" "
                               "cap=\"default\" launch=\"90s\">\n  <!-- note -->\n</credits>",
                               &c, &err),
                         0);
        assert_int_equal(c.set, LV_CREDITS_BASELINE | LV_CREDITS_CAP | LV_CREDITS_LAUNCH);
        assert_int_equal(c.baseline_ppm, 50000);
        assert_int_equal(c.cap_usec, 0);
        assert_int_equal(c.launch_usec, 90 * SEC);

        /* Nothing given: the default class, all of it. */
        assert_int_equal(parse("<vmmgr:credits " NS "/>", &c, &err), 0);
        assert_int_equal(c.set, 0);
}

static void test_parse_errors(void **state) {
        static const struct {
                const char *xml;
                int r;
                const char *attr;
                const char *in_message;
        } cases[] = {
                /* element as a whole */
                { "", -EBADMSG, "", "well-formed" },
                { "<vmmgr:credits " NS " class=\"a\"", -EBADMSG, "", "well-formed" },
                { "<vmmgr:credits " NS " class=\"a\" class=\"b\"/>", -EBADMSG, "", "well-formed" },
                { "<credits class=\"a\"/>", -EBADMSG, "", "namespace" },
                { "<vmmgr:credits xmlns:vmmgr=\"urn:other\"/>", -EBADMSG, "", "namespace" },
                { "<vmmgr:class " NS "/>", -EBADMSG, "", "<credits>" },
                { "<vmmgr:credits " NS "><x/></vmmgr:credits>", -EBADMSG, "", "child element" },
                { "<vmmgr:credits " NS ">text</vmmgr:credits>", -EBADMSG, "", "content" },
                { "<!DOCTYPE c [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
                  "<vmmgr:credits " NS " class=\"&b;\"/>",
                  -EBADMSG, "", "DTD" },
                /* unknown attributes */
                { "<vmmgr:credits " NS " vcpus=\"2\"/>", -ENOKEY, "vcpus", "unknown attribute 'vcpus'" },
                { "<vmmgr:credits " NS " Class=\"a\"/>", -ENOKEY, "Class", "unknown attribute" },
                { "<vmmgr:credits " NS " vmmgr:class=\"a\"/>", -ENOKEY, "class", "unknown attribute 'vmmgr:class'" },
                /* bad values */
                { "<vmmgr:credits " NS " class=\"\"/>", -EINVAL, "class", "bad name" },
                { "<vmmgr:credits " NS " class=\"T3 Small\"/>", -EINVAL, "class", "bad name" },
                { "<vmmgr:credits " NS " baseline=\"\"/>", -EINVAL, "baseline", "bad value" },
                { "<vmmgr:credits " NS " baseline=\"abc\"/>", -EINVAL, "baseline", "bad value: 'abc'" },
                { "<vmmgr:credits " NS " baseline=\"0.2.1\"/>", -EINVAL, "baseline", "bad value" },
                { "<vmmgr:credits " NS " baseline=\"-0.2\"/>", -EINVAL, "baseline", "bad value" },
                { "<vmmgr:credits " NS " launch=\"30\"/>", -EINVAL, "launch", "amount" },
                { "<vmmgr:credits " NS " cap=\"-5cr\"/>", -EINVAL, "cap", "bad value" },
                { "<vmmgr:credits " NS " cap=\"99999999999999999999usec\"/>", -EINVAL, "cap", "bad value" },
                { "<vmmgr:credits " NS " mode=\"turbo\"/>", -EINVAL, "mode", "standard or unlimited" },
                /* out of range */
                { "<vmmgr:credits " NS " baseline=\"150%\"/>", -ERANGE, "baseline", "out of range: '150%'" },
                { "<vmmgr:credits " NS " baseline=\"1.5\"/>", -ERANGE, "baseline", "out of range" },
                { "<vmmgr:credits " NS " baseline=\"0.0000001\"/>", -ERANGE, "baseline", "out of range" },
                { "<vmmgr:credits " NS " launch=\"2000000000000cr\"/>", -ERANGE, "launch", "out of range" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                LvCredits c = { .set = 12345 };
                LvCreditsError err;
                int r = parse(cases[i].xml, &c, &err);

                if (r != cases[i].r || strcmp(err.attr, cases[i].attr) != 0 ||
                    !strstr(err.message, cases[i].in_message))
                        fail_msg("case %zu (%s): r=%d attr='%s' message='%s'", i, cases[i].xml, r, err.attr,
                                 err.message);
                assert_int_equal(c.set, 12345); /* untouched on failure */
        }
        /* NULL and an absurd length. */
        {
                LvCredits c;
                assert_int_equal(lv_credits_parse(NULL, 0, &c, NULL), -EBADMSG);
        }
}

static int parse_domain(const char *xml, LvCredits *c, LvCreditsError *err) {
        memset(err, 0, sizeof(*err));
        return lv_credits_parse_domain_xml(xml, strlen(xml), c, err);
}

/* A whole domain definition, as a hook reads it on stdin. */
static void test_parse_domain_xml(void **state) {
#define DOM_HEAD "<domain type='kvm' id='3'>\n  <name>web1</name>\n  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>\n"
#define DOM_TAIL "  <memory unit='KiB'>65536</memory>\n  <vcpu>2</vcpu>\n</domain>\n"
#define OTHER "<nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\"><nova:name>x</nova:name></nova:instance>"
        LvCredits c;
        LvCreditsError err;

        assert_int_equal(parse_domain(DOM_HEAD "  <metadata>\n    " OTHER "\n    <vmmgr:credits " NS
                                               " class=\"t3.small\" launch=\"30cr\"/>\n  </metadata>\n" DOM_TAIL,
                                      &c, &err),
                         0);
        assert_int_equal(c.set, LV_CREDITS_CLASS | LV_CREDITS_LAUNCH);
        assert_string_equal(c.class_name, "t3.small");
        assert_int_equal(c.launch_usec, 30 * 60 * SEC);

        /* None: no metadata, or only someone else's. */
        assert_int_equal(parse_domain(DOM_HEAD DOM_TAIL, &c, &err), -ENOENT);
        assert_int_equal(parse_domain(DOM_HEAD "<metadata>" OTHER "</metadata>" DOM_TAIL, &c, &err), -ENOENT);
        /* An element of ours in someone else's subtree is not ours to read. */
        assert_int_equal(parse_domain(DOM_HEAD "<metadata><nova:instance xmlns:nova=\"urn:n\"><vmmgr:credits " NS
                                               "/></nova:instance></metadata>" DOM_TAIL,
                                      &c, &err),
                         -ENOENT);

        /* Errors. */
        assert_int_equal(parse_domain(DOM_HEAD "<metadata><vmmgr:credits " NS " baseline=\"2\"/></metadata>" DOM_TAIL,
                                      &c, &err),
                         -ERANGE);
        assert_string_equal(err.attr, "baseline");
        assert_int_equal(parse_domain(DOM_HEAD "<metadata><vmmgr:credits " NS " cpus=\"2\"/></metadata>" DOM_TAIL,
                                      &c, &err),
                         -ENOKEY);
        assert_int_equal(parse_domain(DOM_HEAD "<metadata><vmmgr:class " NS ">t3.small</vmmgr:class></metadata>" DOM_TAIL,
                                      &c, &err),
                         -EBADMSG);
        assert_int_equal(parse_domain(DOM_HEAD "<metadata><vmmgr:credits " NS "/><vmmgr:credits " NS
                                               "/></metadata>" DOM_TAIL,
                                      &c, &err),
                         -EBADMSG);
        assert_non_null(strstr(err.message, "one <credits> element"));
        assert_int_equal(parse_domain("<vmmgr:credits " NS "/>", &c, &err), -EBADMSG);
        assert_int_equal(parse_domain(DOM_HEAD "<metadata>", &c, &err), -EBADMSG);
        assert_int_equal(parse_domain("<!DOCTYPE domain [<!ENTITY x \"y\">]>" DOM_HEAD DOM_TAIL, &c, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "DTD"));
#undef DOM_HEAD
#undef DOM_TAIL
#undef OTHER
}

static void test_round_trip(void **state) {
        static const LvCredits cases[] = {
                { 0 },
                { .set = LV_CREDITS_CLASS, .class_name = "burst-small_1.x" },
                { .set = LV_CREDITS_BASELINE, .baseline_ppm = 1 },
                { .set = LV_CREDITS_BASELINE, .baseline_ppm = 1000000 },
                { .set = LV_CREDITS_BASELINE | LV_CREDITS_CAP, .baseline_ppm = 0, .cap_usec = 1 },
                { .set = LV_CREDITS_CAP | LV_CREDITS_LAUNCH, .cap_usec = 0, .launch_usec = 0 },
                { .set = LV_CREDITS_CAP | LV_CREDITS_LAUNCH, .cap_usec = CREDIT_AMOUNT_MAX, .launch_usec = 90 * SEC },
                { .set = LV_CREDITS_LAUNCH, .launch_usec = 250001 },
                { .set = LV_CREDITS_CLASS | LV_CREDITS_BASELINE | LV_CREDITS_CAP | LV_CREDITS_LAUNCH | LV_CREDITS_MODE,
                  .class_name = "t3.micro",
                  .baseline_ppm = 123456,
                  .cap_usec = 288 * 60 * SEC,
                  .launch_usec = 30 * 60 * SEC,
                  .mode = CREDIT_MODE_UNLIMITED },
                { .set = LV_CREDITS_MODE, .mode = CREDIT_MODE_STANDARD },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *xml = NULL;
                LvCredits back;
                LvCreditsError err;

                assert_int_equal(lv_credits_format(&cases[i], &xml), 0);
                if (parse(xml, &back, &err) != 0)
                        fail_msg("case %zu: %s: %s", i, xml, err.message);
                assert_int_equal(back.set, cases[i].set);
                if (back.set & LV_CREDITS_CLASS)
                        assert_string_equal(back.class_name, cases[i].class_name);
                if (back.set & LV_CREDITS_BASELINE)
                        assert_int_equal(back.baseline_ppm, cases[i].baseline_ppm);
                if (back.set & LV_CREDITS_CAP)
                        assert_int_equal(back.cap_usec, cases[i].cap_usec);
                if (back.set & LV_CREDITS_LAUNCH)
                        assert_int_equal(back.launch_usec, cases[i].launch_usec);
                if (back.set & LV_CREDITS_MODE)
                        assert_int_equal(back.mode, cases[i].mode);
                free(xml);
        }
}

static void test_format_text(void **state) {
        LvCredits c = { .set = LV_CREDITS_CLASS | LV_CREDITS_BASELINE | LV_CREDITS_CAP | LV_CREDITS_LAUNCH |
                               LV_CREDITS_MODE,
                        .class_name = "t3.small",
                        .baseline_ppm = 200000,
                        .cap_usec = 0,
                        .launch_usec = 45 * SEC,
                        .mode = CREDIT_MODE_STANDARD };
        char *xml = NULL;

        assert_int_equal(lv_credits_format(&c, &xml), 0);
        assert_string_equal(xml, "<vmmgr:credits xmlns:vmmgr=\"" LV_CREDITS_NS "\" class=\"t3.small\" "
                                 "baseline=\"0.2\" cap=\"default\" launch=\"45s\" mode=\"standard\"/>");
        free(xml);

        /* Nothing invalid is written. */
        c = (LvCredits) { .set = LV_CREDITS_CLASS, .class_name = "a\"b" };
        assert_int_equal(lv_credits_format(&c, &xml), -EINVAL);
        c = (LvCredits) { .set = LV_CREDITS_BASELINE, .baseline_ppm = 1000001 };
        assert_int_equal(lv_credits_format(&c, &xml), -EINVAL);
        c = (LvCredits) { .set = LV_CREDITS_LAUNCH, .launch_usec = -1 };
        assert_int_equal(lv_credits_format(&c, &xml), -EINVAL);
        c = (LvCredits) { .set = LV_CREDITS_MODE, .mode = 7 };
        assert_int_equal(lv_credits_format(&c, &xml), -EINVAL);
}

static void test_resolve(void **state) {
        CreditClassTable t;
        const CreditClass *small;
        CreditSpec s;
        const char *cls = NULL;
        LvCreditsError err = {};
        LvCredits c = {};

        assert_int_equal(credit_class_table_init(&t), 0);
        small = credit_class_find(&t, "t3.small");
        assert_non_null(small);

        /* Nothing given: the default class with the domain's vCPUs. */
        assert_int_equal(lv_credits_resolve(&c, &t, "t3.small", 4, &s, &cls, &err), 0);
        assert_string_equal(cls, "t3.small");
        assert_int_equal(s.vcpus, 4);
        assert_int_equal(s.baseline_ppm, small->spec.baseline_ppm);
        assert_int_equal(s.launch_usec, small->spec.launch_usec);

        /* Overrides over a named class. */
        c = (LvCredits) { .set = LV_CREDITS_CLASS | LV_CREDITS_BASELINE | LV_CREDITS_MODE,
                          .class_name = "demo",
                          .baseline_ppm = 300000,
                          .mode = CREDIT_MODE_UNLIMITED };
        assert_int_equal(lv_credits_resolve(&c, &t, "t3.small", 1, &s, &cls, &err), 0);
        assert_string_equal(cls, "demo");
        assert_int_equal(s.baseline_ppm, 300000);
        assert_int_equal(s.mode, CREDIT_MODE_UNLIMITED);
        assert_int_equal(s.cap_usec, credit_class_find(&t, "demo")->spec.cap_usec);

        /* Unknown class. */
        c = (LvCredits) { .set = LV_CREDITS_CLASS, .class_name = "t9.huge" };
        assert_int_equal(lv_credits_resolve(&c, &t, "t3.small", 1, &s, &cls, &err), -ENOENT);
        assert_string_equal(err.attr, "class");
        assert_non_null(strstr(err.message, "'t9.huge'"));
        assert_int_equal(lv_credits_resolve(&(LvCredits) {}, &t, NULL, 1, &s, &cls, &err), -ENOENT);

        /* A zero baseline has no default cap; no vCPUs is no spec. */
        c = (LvCredits) { .set = LV_CREDITS_BASELINE | LV_CREDITS_CAP, .baseline_ppm = 0, .cap_usec = 0 };
        assert_int_equal(lv_credits_resolve(&c, &t, "t3.small", 1, &s, &cls, &err), -EINVAL);
        assert_string_equal(err.attr, "cap");
        assert_int_equal(lv_credits_resolve(&(LvCredits) {}, &t, "t3.small", 0, &s, &cls, &err), -EINVAL);
        assert_string_equal(err.attr, "vcpus");
        credit_class_table_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_full),   cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_domain_xml),
                cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_format_text),
                cmocka_unit_test(test_resolve),
        };
        return vt_run_group_tests(tests, NULL, NULL);
}
