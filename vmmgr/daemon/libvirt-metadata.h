/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-metadata.h - a domain's credit spec in its libvirt
 * metadata: parse, format, resolve against the credit classes, and read
 * or write it through virDomainGetMetadata / virDomainSetMetadata.
 *
 * The element (docs/libvirt.md):
 *
 *   <vmmgr:credits xmlns:vmmgr="https://vmmgr.example.org/xmlns/credits/1"
 *                  class="t3.small" baseline="20%" cap="288cr"
 *                  launch="30cr" mode="standard"/>
 *
 * Every attribute is optional: class names a credit class (default: the
 * daemon's default class) and the others override that class's fields,
 * with the syntax of the config file's [class] keys (policies/credits.h,
 * credit_class_set_key): baseline "0.2" or "20%", cap and launch amounts
 * ("30cr", "90s", "250000usec"; cap also "default" or "24h"), mode
 * "standard" or "unlimited".  The vCPU count is the domain's own, never
 * an attribute.  Any other attribute, a child element, text, a DTD or
 * another root is an error: a typo must not silently become a default.
 *
 * Why here and not in policies/: parsing needs libxml2, and policies/ is
 * pure integer logic that migration/ and every test link; the parser and
 * formatter below are still pure (text in, spec out, no I/O) and are
 * unit-tested without libvirt.
 *
 * The namespace URI is an identifier, never fetched.  example.org is
 * reserved (RFC 2606), so it can never collide with anyone else's
 * namespace.  It is fixed: changing it would orphan every domain's
 * metadata.  An incompatible format gets ".../credits/2".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "policies/credits.h"

#define LV_CREDITS_NS "https://vmmgr.example.org/xmlns/credits/1"
#define LV_CREDITS_PREFIX "vmmgr" /* the key virDomainSetMetadata gets */

/* Which attributes were given. */
enum {
        LV_CREDITS_CLASS = 1u << 0,
        LV_CREDITS_BASELINE = 1u << 1,
        LV_CREDITS_CAP = 1u << 2,
        LV_CREDITS_LAUNCH = 1u << 3,
        LV_CREDITS_MODE = 1u << 4,
};

typedef struct LvCredits {
        unsigned set; /* LV_CREDITS_* */
        char class_name[CREDIT_CLASS_NAME_MAX];
        uint32_t baseline_ppm;
        int64_t cap_usec; /* 0: default (24 h of earnings) */
        int64_t launch_usec;
        CreditMode mode;
} LvCredits;

/* What was wrong, for a person: attr is the attribute ("" when the
 * element as a whole is wrong), message a full sentence such as
 * "baseline: out of range: '150%'". */
typedef struct LvCreditsError {
        char attr[32];
        char message[256];
} LvCreditsError;

/* Parses the element's XML text (len bytes; NUL not needed).  Errors:
 *   -EBADMSG  not well-formed, a DTD, wrong root element or namespace,
 *             a child element or text;
 *   -ENOKEY   an unknown attribute (also "vcpus" and namespaced ones);
 *   -EINVAL   a bad value (bad number, missing unit, unknown mode, bad
 *             class name, empty);
 *   -ERANGE   a number out of range (baseline above 100 %, amounts beyond
 *             CREDIT_AMOUNT_MAX);
 *   -ENOMEM.
 * *ret is written only on success; err (may be NULL) only on failure. */
int lv_credits_parse(const char *xml, size_t len, LvCredits *ret, LvCreditsError *err);

/* The same from a whole domain definition (what a libvirt hook reads on
 * stdin, or virDomainGetXMLDesc): the <credits> element in our namespace
 * under <domain><metadata>.  -ENOENT when there is none (a domain vmmgr
 * gives the default class, or does not manage); -EBADMSG also for a
 * document that is not a <domain>, or for another element or a second
 * one in our namespace; else lv_credits_parse()'s errors. */
int lv_credits_parse_domain_xml(const char *xml, size_t len, LvCredits *ret, LvCreditsError *err);

/* The element as text, built by libxml2, with the namespace declared;
 * attributes in a fixed order, amounts in the largest exact unit.
 * parse(format(x)) == x.  malloc'd into *ret.  -EINVAL for a spec whose
 * class name or mode is invalid. */
int lv_credits_format(const LvCredits *c, char **ret);

/* The spec the domain runs with: the named class (or default_class) from
 * `classes`, the given attributes over it, `vcpus` from the domain,
 * validated.  -ENOENT for an unknown class, -EINVAL (credit_spec_validate)
 * for a spec that does not hold together; err says which. */
int lv_credits_resolve(const LvCredits *c, const CreditClassTable *classes, const char *default_class,
                       uint32_t vcpus, CreditSpec *ret_spec, const char **ret_class, LvCreditsError *err);

/* Reads the domain's element (flags: VIR_DOMAIN_AFFECT_LIVE or _CONFIG;
 * 0 = current).  libvirt selects it by namespace and returns it without
 * one (`<credits .../>`), which is accepted here only.  -ENOENT when the domain has none (a domain vmmgr does
 * not manage), -EIO with libvirt's message in err when libvirt fails, or
 * lv_credits_parse()'s errors. */
int lv_credits_get(virDomainPtr dom, unsigned flags, LvCredits *ret, LvCreditsError *err);

/* Writes the element (c == NULL removes it; libvirt adds the namespace
 * with the prefix "vmmgr" itself): live while the domain runs
 * and into its config when it is persistent, so the spec survives a
 * restart and travels with a migration.  -EIO with libvirt's message in
 * err, -EINVAL from lv_credits_format(). */
int lv_credits_set(virDomainPtr dom, const LvCredits *c, LvCreditsError *err);
