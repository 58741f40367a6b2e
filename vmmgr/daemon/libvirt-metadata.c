/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-metadata.c - the credit spec in libvirt domain
 * metadata (format and rules: libvirt-metadata.h).
 *
 * libxml2 parses with no network, no entity substitution and no DTD
 * (a document that carries one is refused), and builds the element we
 * write, so no attribute value is ever pasted into XML text by hand.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/macros.h"
#include "vmmgr/daemon/libvirt-metadata.h"

static const struct {
        const char *name;
        unsigned bit;
} lv_attrs[] = {
        { "class", LV_CREDITS_CLASS },   { "baseline", LV_CREDITS_BASELINE }, { "cap", LV_CREDITS_CAP },
        { "launch", LV_CREDITS_LAUNCH }, { "mode", LV_CREDITS_MODE },
};

_printf_(3, 4) static void set_err(LvCreditsError *err, const char *attr, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return;
        snprintf(err->attr, sizeof(err->attr), "%s", attr ? attr : "");
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
}

/* [a-z0-9._-], 1..63, as credit_class_table_put() wants. */
static bool class_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= CREDIT_CLASS_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' ||
                      s[i] == '-'))
                        return false;
        return true;
}

static bool is_blank(const xmlChar *s) {
        for (; s && *s; s++)
                if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
                        return false;
        return true;
}

/* One attribute onto *c. */
static int parse_attr(LvCredits *c, const char *name, const char *value, LvCreditsError *err) {
        unsigned bit = 0;
        CreditClass tmp = {};
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(lv_attrs); i++)
                if (strcmp(name, lv_attrs[i].name) == 0)
                        bit = lv_attrs[i].bit;
        if (!bit) {
                set_err(err, name, "unknown attribute '%.64s' (known: class, baseline, cap, launch, mode)", name);
                return -ENOKEY;
        }
        if (bit == LV_CREDITS_CLASS) {
                if (!class_name_ok(value)) {
                        set_err(err, name, "class: bad name '%.64s' (1-63 of a-z 0-9 . _ -)", value);
                        return -EINVAL;
                }
                snprintf(c->class_name, sizeof(c->class_name), "%s", value);
        } else {
                r = credit_class_set_key(&tmp, name, value, NULL);
                if (r == -ERANGE) {
                        set_err(err, name, "%s: out of range: '%.64s'", name, value);
                        return r;
                }
                if (r < 0) {
                        set_err(err, name, "%s: bad value: '%.64s'%s", name, value,
                                bit == LV_CREDITS_MODE       ? " (standard or unlimited)"
                                : bit == LV_CREDITS_BASELINE ? " (a fraction such as 0.2, or 20%)"
                                                             : " (an amount such as 30cr, 90s or 250000usec)");
                        return -EINVAL;
                }
                switch (bit) {
                case LV_CREDITS_BASELINE:
                        c->baseline_ppm = tmp.spec.baseline_ppm;
                        break;
                case LV_CREDITS_CAP:
                        c->cap_usec = tmp.spec.cap_usec;
                        break;
                case LV_CREDITS_LAUNCH:
                        c->launch_usec = tmp.spec.launch_usec;
                        break;
                default:
                        c->mode = tmp.spec.mode;
                }
        }
        c->set |= bit;
        return 0;
}

typedef enum ParseMode {
        PARSE_ELEMENT,  /* the element, in our namespace */
        PARSE_SELECTED, /* from virDomainGetMetadata: libvirt picked it by
                         * namespace and returns it without one */
        PARSE_DOMAIN,   /* a whole domain definition */
} ParseMode;

static bool in_our_ns(xmlNodePtr n) {
        return n->ns && n->ns->href && strcmp((const char *) n->ns->href, LV_CREDITS_NS) == 0;
}

static int parse_root(xmlDocPtr doc, xmlNodePtr root, bool ns_selected, LvCredits *c, LvCreditsError *err) {
        int r;

        if (!root || strcmp((const char *) root->name, "credits") != 0 ||
            (root->ns ? !in_our_ns(root) : !ns_selected)) {
                set_err(err, NULL, "expected a <credits> element in namespace %s", LV_CREDITS_NS);
                return -EBADMSG;
        }
        for (xmlNodePtr n = root->children; n; n = n->next) {
                if (n->type == XML_COMMENT_NODE)
                        continue;
                if (n->type == XML_TEXT_NODE && is_blank(n->content))
                        continue;
                set_err(err, NULL, "<credits> takes attributes only, found %s",
                        n->type == XML_ELEMENT_NODE ? "a child element" : "content");
                return -EBADMSG;
        }
        for (xmlAttrPtr a = root->properties; a; a = a->next) {
                const char *name = (const char *) a->name;
                xmlChar *value;

                if (a->ns) {
                        set_err(err, name, "unknown attribute '%.32s:%.64s'",
                                a->ns->prefix ? (const char *) a->ns->prefix : "", name);
                        return -ENOKEY;
                }
                value = xmlNodeListGetString(doc, a->children, 1);
                if (!value) {
                        /* attr="" has no children; anything else is out of memory. */
                        if (a->children) {
                                set_err(err, name, "out of memory");
                                return -ENOMEM;
                        }
                        value = xmlStrdup((const xmlChar *) "");
                        if (!value)
                                return -ENOMEM;
                }
                r = parse_attr(c, name, (const char *) value, err);
                xmlFree(value);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Our element in <domain><metadata>; -ENOENT when there is none. */
static int parse_domain(xmlDocPtr doc, LvCredits *c, LvCreditsError *err) {
        xmlNodePtr root = xmlDocGetRootElement(doc), found = NULL;

        if (!root || root->ns || strcmp((const char *) root->name, "domain") != 0) {
                set_err(err, NULL, "expected a libvirt <domain> definition");
                return -EBADMSG;
        }
        for (xmlNodePtr m = root->children; m; m = m->next) {
                if (m->type != XML_ELEMENT_NODE || m->ns || strcmp((const char *) m->name, "metadata") != 0)
                        continue;
                for (xmlNodePtr n = m->children; n; n = n->next) {
                        if (n->type != XML_ELEMENT_NODE || !in_our_ns(n))
                                continue;
                        /* libvirt keeps one element per namespace; anything
                         * else in ours is a hand edit gone wrong. */
                        if (found || strcmp((const char *) n->name, "credits") != 0) {
                                set_err(err, NULL, "the domain's metadata in namespace %s must be one <credits> element",
                                        LV_CREDITS_NS);
                                return -EBADMSG;
                        }
                        found = n;
                }
        }
        if (!found) {
                set_err(err, NULL, "no credits metadata");
                return -ENOENT;
        }
        return parse_root(doc, found, false, c, err);
}

static int parse_text(const char *xml, size_t len, ParseMode mode, LvCredits *ret, LvCreditsError *err) {
        LvCredits c = {};
        xmlParserCtxtPtr ctxt;
        xmlDocPtr doc;
        int r;

        if (!xml || len > INT32_MAX) {
                set_err(err, NULL, "no credits metadata");
                return -EBADMSG;
        }
        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        /* No NOENT (entities stay unexpanded), no DTD loading, no network. */
        doc = xmlCtxtReadMemory(ctxt, xml, (int) len, "credits.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (!doc || !ctxt->wellFormed) {
                const char *m = ctxt->lastError.message;
                size_t ml = m ? strlen(m) : 0;

                while (ml > 0 && m[ml - 1] == '\n')
                        ml--;
                set_err(err, NULL, "the credits metadata is not well-formed XML: %.*s", (int) MIN(ml, (size_t) 160),
                        m ? m : "parse error");
                xmlFreeDoc(doc);
                xmlFreeParserCtxt(ctxt);
                return -EBADMSG;
        }
        if (doc->intSubset || doc->extSubset) {
                set_err(err, NULL, "a DTD is not allowed in the credits metadata");
                r = -EBADMSG;
        } else if (mode == PARSE_DOMAIN)
                r = parse_domain(doc, &c, err);
        else
                r = parse_root(doc, xmlDocGetRootElement(doc), mode == PARSE_SELECTED, &c, err);
        xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}

int lv_credits_parse(const char *xml, size_t len, LvCredits *ret, LvCreditsError *err) {
        return parse_text(xml, len, PARSE_ELEMENT, ret, err);
}

int lv_credits_parse_domain_xml(const char *xml, size_t len, LvCredits *ret, LvCreditsError *err) {
        return parse_text(xml, len, PARSE_DOMAIN, ret, err);
}

/* ---- format -------------------------------------------------------------- */

/* The largest unit that keeps the amount exact. */
static void format_amount(char *buf, size_t size, int64_t usec) {
        if (usec % CREDIT_USEC == 0)
                snprintf(buf, size, "%" PRIi64 "cr", usec / CREDIT_USEC);
        else if (usec % (int64_t) USEC_PER_SEC == 0)
                snprintf(buf, size, "%" PRIi64 "s", usec / (int64_t) USEC_PER_SEC);
        else
                snprintf(buf, size, "%" PRIi64 "usec", usec);
}

static void format_baseline(char *buf, size_t size, uint32_t ppm) {
        uint32_t whole = ppm / CREDIT_PPM, frac = ppm % CREDIT_PPM;
        size_t n;

        if (frac == 0) {
                snprintf(buf, size, "%" PRIu32, whole);
                return;
        }
        snprintf(buf, size, "%" PRIu32 ".%06" PRIu32, whole, frac);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0')
                buf[--n] = '\0';
}

/* with_ns: the namespace declared on the element (what GetMetadata
 * returns); without: for virDomainSetMetadata, which declares it itself
 * and refuses an element that already has the prefix. */
static int format_element(const LvCredits *c, bool with_ns, char **ret) {
        xmlDocPtr doc = NULL;
        xmlNodePtr node;
        xmlNsPtr ns;
        xmlBufferPtr buf = NULL;
        char v[64];
        int r = -ENOMEM;

        if ((c->set & LV_CREDITS_CLASS) && !class_name_ok(c->class_name))
                return -EINVAL;
        if ((c->set & LV_CREDITS_MODE) && c->mode != CREDIT_MODE_STANDARD && c->mode != CREDIT_MODE_UNLIMITED)
                return -EINVAL;
        if ((c->set & LV_CREDITS_BASELINE) && c->baseline_ppm > CREDIT_PPM)
                return -EINVAL;
        if (((c->set & LV_CREDITS_CAP) && (c->cap_usec < 0 || c->cap_usec > CREDIT_AMOUNT_MAX)) ||
            ((c->set & LV_CREDITS_LAUNCH) && (c->launch_usec < 0 || c->launch_usec > CREDIT_AMOUNT_MAX)))
                return -EINVAL;

        doc = xmlNewDoc((const xmlChar *) "1.0");
        node = doc ? xmlNewDocNode(doc, NULL, (const xmlChar *) "credits", NULL) : NULL;
        if (!node)
                goto out;
        xmlDocSetRootElement(doc, node);
        if (with_ns) {
                ns = xmlNewNs(node, (const xmlChar *) LV_CREDITS_NS, (const xmlChar *) LV_CREDITS_PREFIX);
                if (!ns)
                        goto out;
                xmlSetNs(node, ns);
        }
        if ((c->set & LV_CREDITS_CLASS) && !xmlNewProp(node, (const xmlChar *) "class", (const xmlChar *) c->class_name))
                goto out;
        if (c->set & LV_CREDITS_BASELINE) {
                format_baseline(v, sizeof(v), c->baseline_ppm);
                if (!xmlNewProp(node, (const xmlChar *) "baseline", (const xmlChar *) v))
                        goto out;
        }
        if (c->set & LV_CREDITS_CAP) {
                if (c->cap_usec == 0)
                        snprintf(v, sizeof(v), "default");
                else
                        format_amount(v, sizeof(v), c->cap_usec);
                if (!xmlNewProp(node, (const xmlChar *) "cap", (const xmlChar *) v))
                        goto out;
        }
        if (c->set & LV_CREDITS_LAUNCH) {
                format_amount(v, sizeof(v), c->launch_usec);
                if (!xmlNewProp(node, (const xmlChar *) "launch", (const xmlChar *) v))
                        goto out;
        }
        if ((c->set & LV_CREDITS_MODE) &&
            !xmlNewProp(node, (const xmlChar *) "mode", (const xmlChar *) credit_mode_to_string(c->mode)))
                goto out;
        buf = xmlBufferCreate();
        if (!buf || xmlNodeDump(buf, doc, node, 0, 0) < 0)
                goto out;
        *ret = strdup((const char *) xmlBufferContent(buf));
        r = *ret ? 0 : -ENOMEM;
out:
        xmlBufferFree(buf);
        xmlFreeDoc(doc);
        return r;
}

int lv_credits_format(const LvCredits *c, char **ret) {
        return format_element(c, true, ret);
}

/* ---- resolve ------------------------------------------------------------- */

int lv_credits_resolve(const LvCredits *c, const CreditClassTable *classes, const char *default_class,
                       uint32_t vcpus, CreditSpec *ret_spec, const char **ret_class, LvCreditsError *err) {
        const char *name = (c->set & LV_CREDITS_CLASS) ? c->class_name : default_class;
        const CreditClass *cls = name ? credit_class_find(classes, name) : NULL;
        const char *field;
        CreditSpec s;

        if (!cls) {
                set_err(err, "class", "unknown credit class '%.64s'", name ? name : "(none)");
                return -ENOENT;
        }
        s = cls->spec;
        s.vcpus = vcpus;
        if (c->set & LV_CREDITS_BASELINE)
                s.baseline_ppm = c->baseline_ppm;
        if (c->set & LV_CREDITS_CAP)
                s.cap_usec = c->cap_usec;
        if (c->set & LV_CREDITS_LAUNCH)
                s.launch_usec = c->launch_usec;
        if (c->set & LV_CREDITS_MODE)
                s.mode = c->mode;
        if (credit_spec_validate(&s, &field) < 0) {
                set_err(err, field, "%s: invalid for class '%s' with %" PRIu32 " vCPUs%s", field, cls->name, vcpus,
                        strcmp(field, "cap") == 0 ? " (a zero baseline needs an explicit cap)" : "");
                return -EINVAL;
        }
        *ret_spec = s;
        if (ret_class)
                *ret_class = cls->name;
        return 0;
}

/* ---- libvirt --------------------------------------------------------------- */

static void set_err_libvirt(LvCreditsError *err, const char *what) {
        virErrorPtr e = virGetLastError();

        set_err(err, NULL, "%s: %s", what, e && e->message ? e->message : "unknown libvirt error");
        virResetLastError();
}

int lv_credits_get(virDomainPtr dom, unsigned flags, LvCredits *ret, LvCreditsError *err) {
        char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LV_CREDITS_NS, flags);
        int r;

        if (!xml) {
                virErrorPtr e = virGetLastError();

                if (e && e->code == VIR_ERR_NO_DOMAIN_METADATA) {
                        virResetLastError();
                        set_err(err, NULL, "no credits metadata");
                        return -ENOENT;
                }
                set_err_libvirt(err, "reading the credits metadata");
                return -EIO;
        }
        r = parse_text(xml, strlen(xml), PARSE_SELECTED, ret, err);
        free(xml);
        return r;
}

int lv_credits_set(virDomainPtr dom, const LvCredits *c, LvCreditsError *err) {
        _cleanup_free_ char *xml = NULL;
        unsigned flags = 0;
        int r, active, persistent;

        if (c) {
                r = format_element(c, false, &xml);
                if (r < 0) {
                        set_err(err, NULL, "cannot format the credits metadata");
                        return r;
                }
        }
        active = virDomainIsActive(dom);
        persistent = virDomainIsPersistent(dom);
        if (active < 0 || persistent < 0) {
                set_err_libvirt(err, "looking up the domain");
                return -EIO;
        }
        if (active)
                flags |= VIR_DOMAIN_AFFECT_LIVE;
        if (persistent)
                flags |= VIR_DOMAIN_AFFECT_CONFIG;
        if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, c ? LV_CREDITS_PREFIX : NULL, LV_CREDITS_NS,
                                 flags) < 0) {
                set_err_libvirt(err, "writing the credits metadata");
                return -EIO;
        }
        return 0;
}
