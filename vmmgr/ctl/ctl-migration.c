/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl migration start|status|cancel|export|import|reply (docs/migration.md) */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "common/vmid.h"
#include "vmmgr/ctl/ctl.h"

/* A record held by the destination: try again later (EX_TEMPFAIL). */
#define CTL_EXIT_HELD 75
#define RECORD_FILE_MAX (64 * 1024)

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl migration start UUID [--to https://HOST:PORT]\n"
              "       vmmgrctl migration status UUID [--json]\n"
              "       vmmgrctl migration cancel UUID\n"
              "       vmmgrctl migration export UUID\n"
              "       vmmgrctl migration import [FILE]\n"
              "       vmmgrctl migration reply UUID ack|nack --epoch N\n"
              "\n"
              "Move a VM's CPU credits with it when it live-migrates, exactly once\n"
              "(docs/migration.md).  On the source, before the migration starts:\n"
              "\n"
              "  start    announces it.  When QEMU stops for the migration vmmgrd\n"
              "           freezes the VM's credits into a record; once the migration\n"
              "           completed, with --to, vmmgrd sends the record to the\n"
              "           destination's vmmgrd (its TLS listener, with vmmgrd's client\n"
              "           certificate) until that one answers; without --to the\n"
              "           record waits for export.\n"
              "  cancel   withdraws the announcement (before QEMU stopped for it).\n"
              "  status   the VM's role in the handoff, its epoch, the record.\n"
              "\n"
              "On the destination, register the incoming QEMU (started with -incoming)\n"
              "before the migration completes: vmmgrctl vm add UUID --qmp SOCKET\n"
              "--incoming.  It runs on a provisional bank (it earns its baseline, never\n"
              "more) until the record arrives; then its credits are the source's, plus\n"
              "what the downtime earned, minus what it used since it resumed.\n"
              "\n"
              "Without daemon-to-daemon traffic, the tool carries the record:\n"
              "\n"
              "  export   (source) prints the record once the migration completed.\n"
              "  import   (destination) applies a record from FILE (default stdin) and\n"
              "           prints the answer: ack (applied, now or before), nack (the\n"
              "           VM's incoming QEMU went before it resumed), or held (not\n"
              "           registered here or not resumed yet: import again later).\n"
              "  reply    (source) passes the destination's answer back: ack closes\n"
              "           the source's ledger and unregisters the VM there; nack gives\n"
              "           the credits back to the source.\n"
              "\n"
              "A record is applied once per VM and epoch: importing it twice, or the\n"
              "daemon sending it again, changes nothing more.\n"
              "\n"
              "Options:\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n"
              "\n"
              "Exit status as vmmgrctl's; import: 0 ack, 4 nack, 75 held.\n",
              out);
}

static void print_status(struct json_object *m) {
        struct json_object *rec = json_object_object_get(m, "record");

        printf("VM:          %s\n", ctl_str(m, "uuid"));
        printf("Role:        %s\n", ctl_str(m, "role"));
        printf("Epoch:       %s\n", ctl_str(m, "epoch"));
        printf("Outgoing:    %s\n", json_object_get_boolean(json_object_object_get(m, "outgoing")) ? "yes" : "no");
        printf("Destination: %s\n", ctl_is_null(m, "destination") ? "- (export)" : ctl_str(m, "destination"));
        if (rec) {
                struct json_object *l = json_object_object_get(rec, "ledger");

                printf("Record:      epoch %s, frozen at %s usec, %s usec banked, %s usec launch\n",
                       ctl_str(rec, "epoch"), ctl_str(rec, "frozen_at_usec"), ctl_str(l, "balance_usec"),
                       ctl_str(l, "launch_usec"));
                printf("Sent:        %s time(s)\n", ctl_str(m, "sends"));
        }
        if (!ctl_is_null(m, "last_error"))
                printf("Last error:  %s\n", ctl_str(m, "last_error"));
}

/* The whole file (or stdin), at most RECORD_FILE_MAX bytes. */
static int read_record(const char *path, char **ret) {
        _cleanup_free_ char *buf = malloc(RECORD_FILE_MAX + 1);
        FILE *f = !path || strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
        size_t n;

        if (!buf)
                return log_error_errno(-ENOMEM, "Out of memory");
        if (!f)
                return log_error_errno(-errno, "Cannot open %s: %m", path);
        n = fread(buf, 1, RECORD_FILE_MAX + 1, f);
        if (ferror(f)) {
                if (f != stdin)
                        fclose(f);
                return log_error_errno(-EIO, "Cannot read %s", path ? path : "stdin");
        }
        if (f != stdin)
                fclose(f);
        if (n > RECORD_FILE_MAX)
                return log_error_errno(-E2BIG, "%s is larger than a record can be", path ? path : "stdin");
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

static int cmd_import(const CtlCommon *c, const char *path) {
        _cleanup_free_ char *text = NULL;
        struct json_object *body, *reply = NULL;
        const char *answer;
        int r;

        if (read_record(path, &text) < 0)
                return CTL_EXIT_FAILURE;
        body = json_tokener_parse(text);
        if (!body || !json_object_is_type(body, json_type_object)) {
                json_object_put(body);
                log_error("%s does not hold a record (one JSON object, as migration export prints it)",
                          path ? path : "stdin");
                return CTL_EXIT_USAGE;
        }
        r = ctl_call(c, "POST", "/v1/migration/records", body, &reply);
        json_object_put(body);
        if (r != 0)
                return r;
        answer = ctl_str(reply, "reply");
        if (c->json)
                ctl_print_json(reply);
        else if (strcmp(answer, "ack") == 0)
                printf("ack: the record of epoch %s is applied here; on the source run:\n"
                       "  vmmgrctl migration reply UUID ack --epoch %s\n",
                       ctl_str(reply, "epoch"), ctl_str(reply, "epoch"));
        else
                printf("%s: %s\n", answer, ctl_is_null(reply, "reason") ? "-" : ctl_str(reply, "reason"));
        r = strcmp(answer, "ack") == 0    ? CTL_EXIT_OK
            : strcmp(answer, "nack") == 0 ? CTL_EXIT_CONFLICT
                                          : CTL_EXIT_HELD;
        json_object_put(reply);
        return r;
}

int ctl_verb_migration(int argc, char **argv) {
        struct json_object *reply = NULL, *body = NULL;
        char *rest[16], path[160];
        const char *sub;
        CtlCommon c;
        int n = 0, r;
        VmId id;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 1, (int) ARRAY_SIZE(rest), &n);
        if (r >= 0)
                return r;
        sub = rest[0];
        if (strcmp(sub, "import") == 0) {
                if (n > 2) {
                        usage(stderr);
                        return CTL_EXIT_USAGE;
                }
                return cmd_import(&c, n == 2 ? rest[1] : NULL);
        }
        if (n < 2) {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        if (ctl_uuid_arg(rest[1], &id) < 0)
                return CTL_EXIT_USAGE;
        snprintf(path, sizeof(path), "/v1/vms/%s/migration", id.str);

        if (strcmp(sub, "start") == 0) {
                const char *to = NULL;

                for (int i = 2; i < n; i++) {
                        if (strcmp(rest[i], "--to") == 0 && i + 1 < n)
                                to = rest[++i];
                        else {
                                log_error("Unexpected argument \"%s\"", rest[i]);
                                return CTL_EXIT_USAGE;
                        }
                }
                body = json_object_new_object();
                if (!body || (to && json_object_object_add(body, "destination", json_object_new_string(to)) < 0)) {
                        json_object_put(body);
                        return log_error_errno(-ENOMEM, "Out of memory"), CTL_EXIT_FAILURE;
                }
                r = ctl_call(&c, "POST", path, body, &reply);
                json_object_put(body);
                if (r == 0 && !c.json)
                        printf("Migration of %s announced; its credits %s\n", id.str,
                               to ? "go to the destination's vmmgrd once it completed"
                                  : "wait for export once it completed");
        } else if (strcmp(sub, "status") == 0 && n == 2) {
                r = ctl_call(&c, "GET", path, NULL, &reply);
                if (r == 0 && !c.json)
                        print_status(reply);
        } else if (strcmp(sub, "cancel") == 0 && n == 2) {
                r = ctl_call(&c, "DELETE", path, NULL, &reply);
                if (r == 0 && !c.json)
                        printf("Migration of %s withdrawn\n", id.str);
        } else if (strcmp(sub, "export") == 0 && n == 2) {
                r = ctl_call(&c, "GET", path, NULL, &reply);
                if (r == 0) {
                        struct json_object *rec = json_object_object_get(reply, "record");

                        if (!rec || strcmp(ctl_str(reply, "role"), "handed-off") != 0) {
                                log_error("VM %s has no record to export: it is %s%s", id.str, ctl_str(reply, "role"),
                                          rec ? " (the migration has not completed)" : "");
                                r = CTL_EXIT_CONFLICT;
                        } else
                                puts(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
                }
                /* The record is the output, whatever --json says. */
                c.json = false;
        } else if (strcmp(sub, "reply") == 0 && n >= 3) {
                const char *answer = rest[2];
                uint64_t epoch = 0;
                bool have_epoch = false;

                if (strcmp(answer, "ack") != 0 && strcmp(answer, "nack") != 0) {
                        log_error("reply takes ack or nack, not \"%s\"", answer);
                        return CTL_EXIT_USAGE;
                }
                for (int i = 3; i < n; i++) {
                        if (strcmp(rest[i], "--epoch") == 0 && i + 1 < n) {
                                if (parse_u64(rest[++i], &epoch) < 0 || epoch == 0 || epoch > INT64_MAX) {
                                        log_error("Invalid --epoch \"%s\": a whole number from 1", rest[i]);
                                        return CTL_EXIT_USAGE;
                                }
                                have_epoch = true;
                        } else {
                                log_error("Unexpected argument \"%s\"", rest[i]);
                                return CTL_EXIT_USAGE;
                        }
                }
                if (!have_epoch) {
                        log_error("reply needs --epoch N (import prints it)");
                        return CTL_EXIT_USAGE;
                }
                body = json_object_new_object();
                if (!body || json_object_object_add(body, "reply", json_object_new_string(answer)) < 0 ||
                    json_object_object_add(body, "epoch", json_object_new_int64((int64_t) epoch)) < 0) {
                        json_object_put(body);
                        return log_error_errno(-ENOMEM, "Out of memory"), CTL_EXIT_FAILURE;
                }
                snprintf(path, sizeof(path), "/v1/vms/%s/migration/reply", id.str);
                r = ctl_call(&c, "POST", path, body, &reply);
                json_object_put(body);
                if (r == 0 && !c.json)
                        printf("%s: %s\n", id.str,
                               strcmp(answer, "ack") == 0 ? "its credits are the destination's now (unregistered here)"
                                                          : "its credits are back here");
        } else {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        return ctl_verb_end(&c, r, reply, NULL);
}
