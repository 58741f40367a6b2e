/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr-libvirt-hook - libvirt's qemu hook for vmmgr, installed as
 * /etc/libvirt/hooks/qemu.d/vmmgr (docs/libvirt.md, "The hook").
 *
 * libvirt runs it synchronously, with its own locks held, as
 *     vmmgr DOMAIN OPERATION SUB-OPERATION EXTRA   (domain XML on stdin)
 * so it must be quick and must never call libvirt (deadlock).  What it
 * does:
 *   prepare            checks the <vmmgr:credits> element's syntax; a bad
 *                      one refuses the start (exit 1, one line on stderr,
 *                      which libvirt shows to the user);
 *   started, stopped,  tells vmmgrd (POST /v1/libvirt/domains/UUID/notify),
 *   release            within a bound, and exits 0 whatever happens:
 *                      vmmgrd confirms through libvirt's events;
 *   migrate, restore   reads stdin, writes nothing (the XML is unchanged);
 *   anything else      exits 0 at once (reconnect must never fail: libvirt
 *                      kills the running QEMU when it does).
 *
 * It touches nothing but stdin, stdout, stderr and vmmgrd's socket.
 */
#include <errno.h>
#include <json-c/json.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/parse.h"
#include "common/vmid.h"
#include "vmmgr/api/http-client.h"
#include "vmmgr/ctl/ctl.h" /* CTL_DEFAULT_SOCKET */
#include "vmmgr/daemon/libvirt-metadata.h"

#define HOOK_XML_MAX (4u * 1024u * 1024u) /* libvirt's domain XML is a few KiB */
#define HOOK_XML_MAX_TEXT "4 MiB"
#define HOOK_TIMEOUT_MS_DEFAULT 2000
#define HOOK_TIMEOUT_MS_MIN 100
#define HOOK_TIMEOUT_MS_MAX 10000
#define HOOK_NAME_SHOWN 128 /* bytes of a domain name in a message */

static void usage(FILE *out) {
        fputs("Usage: vmmgr DOMAIN OPERATION SUB-OPERATION EXTRA < DOMAIN-XML\n"
              "       vmmgr-libvirt-hook --help | --version\n"
              "\n"
              "vmmgr's hook for libvirt's QEMU driver.  libvirt runs it synchronously at\n"
              "each step of a domain's life, with the domain XML on stdin, so it is quick,\n"
              "never calls libvirt, and touches nothing but stdin, stdout, stderr and\n"
              "vmmgrd's socket.\n"
              "\n"
              "Installation: `meson install` puts the program in\n"
              "LIBEXECDIR/vmmgr-libvirt-hook and a link to it as\n"
              "SYSCONFDIR/libvirt/hooks/qemu.d/vmmgr, that is\n"
              "/etc/libvirt/hooks/qemu.d/vmmgr with --prefix=/usr or -Dsysconfdir=/etc.\n"
              "libvirt >= 6.5 runs every executable in qemu.d/; for an older libvirt,\n"
              "link or copy it to /etc/libvirt/hooks/qemu instead.  libvirtd reads its\n"
              "hooks when it starts: restart it after installing.\n"
              "\n"
              "Operations (the second argument):\n"
              "  prepare       Checks the syntax of the domain's credit spec, the element\n"
              "                <vmmgr:credits> in namespace\n"
              "                " LV_CREDITS_NS "\n"
              "                under <metadata> (docs/libvirt.md).  No element: exit 0.\n"
              "                A malformed one (unknown attribute, bad or out-of-range\n"
              "                value, not well-formed XML): one line on stderr and exit 1,\n"
              "                so libvirt refuses to start the domain and shows that line.\n"
              "                The class is not looked up: the hook reads no configuration.\n"
              "  started, stopped, release\n"
              "                Tells vmmgrd: POST /v1/libvirt/domains/UUID/notify with\n"
              "                {\"name\", \"operation\", \"sub_operation\"}; UUID is the XML's\n"
              "                <uuid>, sub_operation as libvirt passes it (\"-\" for none).\n"
              "                Bounded by VMMGR_HOOK_TIMEOUT_MS.  vmmgrd not running, a\n"
              "                timeout, an error status, a bad <uuid>: one line on stderr\n"
              "                and exit 0; vmmgrd confirms through libvirt's events.\n"
              "  migrate, restore\n"
              "                Reads the XML and writes nothing, so libvirt keeps it\n"
              "                unchanged; exit 0 (a migration is never cancelled here).\n"
              "  reconnect, attach, start, and any other\n"
              "                Exit 0 at once without reading stdin (libvirt kills the\n"
              "                running QEMU when reconnect fails).\n"
              "\n"
              "The domain XML is read up to " HOOK_XML_MAX_TEXT "; past that the spec is not checked and\n"
              "vmmgrd is not told (one line on stderr, exit 0).\n"
              "\n"
              "Environment (libvirt gives hooks a minimal environment without these, so\n"
              "they serve tests and runs by hand; under libvirt the defaults apply):\n"
              "  VMMGR_SOCKET           vmmgrd's socket (default " CTL_DEFAULT_SOCKET ")\n"
              "  VMMGR_HOOK_TIMEOUT_MS  Bound on the whole exchange with vmmgrd, in ms\n"
              "                         (default 2000, clamped to 100..10000)\n"
              "\n"
              "Exit status: 1 for prepare when the credit spec is malformed or the\n"
              "arguments are not libvirt's four; 0 in every other case, wrong arguments\n"
              "included: a hook must not break libvirt.\n",
              out);
}

/* For a message: the name with control bytes replaced, so that a line
 * stays one line, and cut at HOOK_NAME_SHOWN bytes. */
static const char *shown(const char *s, char buf[static HOOK_NAME_SHOWN + 1]) {
        size_t i;

        for (i = 0; s[i] && i < HOOK_NAME_SHOWN; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        buf[i] = '\0';
        return buf;
}

_printf_(2, 3) static void say(const char *domain, const char *fmt, ...) {
        char name[HOOK_NAME_SHOWN + 1], line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        /* One line: a message that quotes the peer must not add more. */
        for (char *p = line; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        fprintf(stderr, "vmmgr: domain %s: %s\n", shown(domain, name), line);
}

/* Reads stdin to its end, keeping at most HOOK_XML_MAX bytes.  *ret is
 * NUL-terminated; -E2BIG when there was more (all of it read all the
 * same, so libvirt's writer never sees a closed pipe); -errno when stdin
 * cannot be read. */
static int read_stdin(char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = malloc(HOOK_XML_MAX + 1);
        char sink[65536];
        size_t len = 0;
        bool too_big = false;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                char *to = len < HOOK_XML_MAX ? buf + len : sink;
                size_t room = len < HOOK_XML_MAX ? HOOK_XML_MAX - len : sizeof(sink);
                ssize_t n = read(STDIN_FILENO, to, room);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                if (to == sink)
                        too_big = true;
                else
                        len += (size_t) n;
        }
        if (too_big)
                return -E2BIG;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Reads and drops stdin (migrate, restore): libvirt writes the XML to a
 * pipe and should see it taken. */
static void drain_stdin(void) {
        char sink[65536];

        for (;;) {
                ssize_t n = read(STDIN_FILENO, sink, sizeof(sink));

                if (n == 0 || (n < 0 && errno != EINTR))
                        return;
        }
}

/* The <uuid> of a <domain> document, validated.  -EBADMSG for a document
 * that is not a libvirt domain definition, -ENOENT without a <uuid>,
 * -EINVAL for one that is not a UUID, -ENOMEM. */
static int domain_uuid(const char *xml, size_t len, VmId *ret) {
        xmlParserCtxtPtr ctxt;
        xmlDocPtr doc;
        xmlNodePtr root;
        int r = -ENOENT;

        if (len > INT32_MAX)
                return -EBADMSG;
        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        /* As libvirt-metadata.c: no entity substitution, no DTD, no network. */
        doc = xmlCtxtReadMemory(ctxt, xml, (int) len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        root = doc && ctxt->wellFormed && !doc->intSubset && !doc->extSubset ? xmlDocGetRootElement(doc) : NULL;
        if (!root || root->ns || strcmp((const char *) root->name, "domain") != 0)
                r = -EBADMSG;
        else
                for (xmlNodePtr n = root->children; n; n = n->next) {
                        xmlChar *text;
                        size_t a = 0, b;

                        if (n->type != XML_ELEMENT_NODE || n->ns || strcmp((const char *) n->name, "uuid") != 0)
                                continue;
                        text = xmlNodeGetContent(n);
                        if (!text) {
                                r = -ENOMEM;
                                break;
                        }
                        /* libvirt writes it bare; allow the blanks XML allows around it. */
                        b = strlen((const char *) text);
                        while (a < b && strchr(" \t\r\n", text[a]))
                                a++;
                        while (b > a && strchr(" \t\r\n", text[b - 1]))
                                b--;
                        text[b] = '\0';
                        r = vm_id_parse((const char *) text + a, ret) < 0 ? -EINVAL : 0;
                        xmlFree(text);
                        break;
                }
        xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        return r;
}

static int hook_prepare(const char *domain) {
        _cleanup_free_ char *xml = NULL;
        LvCredits credits;
        LvCreditsError err = {};
        size_t len;
        int r;

        r = read_stdin(&xml, &len);
        if (r == -E2BIG) {
                say(domain, "prepare: the domain XML is over " HOOK_XML_MAX_TEXT "; its credit spec is not checked");
                return 0;
        }
        if (r < 0) {
                say(domain, "prepare: cannot read the domain XML: %s; its credit spec is not checked", strerror(-r));
                return 0;
        }
        if (len == 0) {
                say(domain, "prepare: no domain XML on stdin; its credit spec is not checked");
                return 0;
        }
        r = lv_credits_parse_domain_xml(xml, len, &credits, &err);
        switch (r) {
        case 0:
        case -ENOENT:
                return 0;
        case -EBADMSG:
        case -ENOKEY:
        case -EINVAL:
        case -ERANGE:
                /* The one refusal: the spec is the domain owner's, and a
                 * typo must not run the VM on a default. */
                say(domain, "<vmmgr:credits>: %s", err.message[0] ? err.message : strerror(-r));
                return 1;
        default:
                say(domain, "prepare: cannot check the credit spec: %s", strerror(-r));
                return 0;
        }
}

static long hook_timeout_ms(void) {
        const char *s = getenv("VMMGR_HOOK_TIMEOUT_MS");
        uint64_t v;
        int r;

        if (!s || !*s)
                return HOOK_TIMEOUT_MS_DEFAULT;
        r = parse_u64(s, &v);
        if (r == -ERANGE) /* digits, too many for a u64: the clamp takes them to the maximum */
                v = UINT64_MAX;
        else if (r < 0) {
                fprintf(stderr, "vmmgr: VMMGR_HOOK_TIMEOUT_MS=\"%.32s\" is not a number of ms; using %d\n", s,
                        HOOK_TIMEOUT_MS_DEFAULT);
                return HOOK_TIMEOUT_MS_DEFAULT;
        }
        return (long) MIN(MAX(v, (uint64_t) HOOK_TIMEOUT_MS_MIN), (uint64_t) HOOK_TIMEOUT_MS_MAX);
}

/* The "error" member of vmmgrd's JSON error body, or NULL. */
static char *error_message(const char *body) {
        json_object *o = json_tokener_parse(body), *e;
        char *m = NULL;

        if (o && json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_string))
                m = strdup(json_object_get_string(e));
        json_object_put(o);
        return m;
}

/* started, stopped, release: tell vmmgrd, and never fail. */
static int hook_notify(const char *domain, const char *op, const char *subop) {
        _cleanup_free_ char *xml = NULL, *reply = NULL, *message = NULL;
        const char *sock = getenv("VMMGR_SOCKET"), *body;
        char path[sizeof("/v1/libvirt/domains//notify") + VM_ID_STRLEN];
        long timeout_ms = hook_timeout_ms(), status = 0;
        json_object *o;
        HttpError herr = {};
        VmId id;
        size_t len;
        int r;

        r = read_stdin(&xml, &len);
        if (r < 0) {
                say(domain, "%s: cannot read the domain XML: %s; vmmgrd is not told", op,
                    r == -E2BIG ? "over " HOOK_XML_MAX_TEXT : strerror(-r));
                return 0;
        }
        r = domain_uuid(xml, len, &id);
        if (r < 0) {
                say(domain, "%s: %s; vmmgrd is not told", op,
                    r == -EBADMSG  ? "stdin is not a libvirt domain definition"
                    : r == -ENOENT ? "the domain XML has no <uuid>"
                    : r == -EINVAL ? "the domain XML's <uuid> is not a UUID"
                                   : strerror(-r));
                return 0;
        }
        snprintf(path, sizeof(path), "/v1/libvirt/domains/%s/notify", id.str);

        o = json_object_new_object();
        if (!o || json_object_object_add(o, "name", json_object_new_string(domain)) < 0 ||
            json_object_object_add(o, "operation", json_object_new_string(op)) < 0 ||
            json_object_object_add(o, "sub_operation", json_object_new_string(subop)) < 0 ||
            !(body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))) {
                json_object_put(o);
                say(domain, "%s: out of memory; vmmgrd is not told", op);
                return 0;
        }
        r = http_request(sock && *sock ? sock : CTL_DEFAULT_SOCKET, "POST", path, body, timeout_ms, &status, &reply,
                         &herr);
        json_object_put(o);
        if (r < 0) {
                say(domain, "%s: cannot tell vmmgrd: %s", op, herr.message[0] ? herr.message : strerror(-r));
                return 0;
        }
        if (status < 200 || status > 299) {
                message = error_message(reply);
                say(domain, "%s: vmmgrd answered %ld%s%.200s", op, status, message ? ": " : "", message ? message : "");
        }
        return 0;
}

int main(int argc, char **argv) {
        const char *domain, *op;

        /* A peer that goes away must give an error, not kill the hook. */
        signal(SIGPIPE, SIG_IGN);

        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                usage(stdout);
                return 0;
        }
        if (argc == 2 && strcmp(argv[1], "--version") == 0) {
                printf("vmmgr-libvirt-hook %s\n", VMMGR_VERSION);
                return 0;
        }
        /* libvirt passes exactly four arguments; more are tolerated, so a
         * later libvirt that adds one does not break domain starts. */
        if (argc < 5) {
                fputs("Usage: vmmgr DOMAIN OPERATION SUB-OPERATION EXTRA < DOMAIN-XML (see --help)\n", stderr);
                return argc >= 3 && strcmp(argv[2], "prepare") == 0 ? 1 : 0;
        }
        domain = argv[1];
        op = argv[2];

        if (strcmp(op, "prepare") == 0)
                return hook_prepare(domain);
        if (strcmp(op, "started") == 0 || strcmp(op, "stopped") == 0 || strcmp(op, "release") == 0)
                return hook_notify(domain, op, argv[3]);
        if (strcmp(op, "migrate") == 0 || strcmp(op, "restore") == 0) {
                /* Nothing on stdout: libvirt keeps the XML as it is. */
                drain_stdin();
                return 0;
        }
        /* reconnect (whose failure kills the QEMU), attach, start and
         * whatever a later libvirt adds. */
        return 0;
}
