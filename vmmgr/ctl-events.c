/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl events */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "vmmgr/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl events [--since SEQ] [--limit N] [--json]\n"
              "\n"
              "Show vmmgrd's recent event history: registrations, adoptions, spec\n"
              "changes, injections, transfers, unregistrations.  --since shows only\n"
              "events after sequence number SEQ (for polling: pass the last \"next\").\n"
              "\n"
              "Options:\n"
              "      --since SEQ     Events after this sequence number\n"
              "      --limit N       At most N events (default 100)\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n",
              out);
}

int ctl_verb_events(int argc, char **argv) {
        char *rest[16], path[128];
        struct json_object *reply = NULL, *evs;
        uint64_t since = 0, limit = 100;
        CtlCommon c;
        int n = 0, r;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        for (int i = 0; i < n; i++) {
                if (strcmp(rest[i], "--since") == 0 && i + 1 < n) {
                        if (parse_u64(rest[++i], &since) < 0) {
                                log_error("--since takes a sequence number");
                                return CTL_EXIT_USAGE;
                        }
                } else if (strcmp(rest[i], "--limit") == 0 && i + 1 < n) {
                        if (parse_u64(rest[++i], &limit) < 0 || limit == 0 || limit > 10000) {
                                log_error("--limit takes 1..10000");
                                return CTL_EXIT_USAGE;
                        }
                } else {
                        usage(stderr);
                        return CTL_EXIT_USAGE;
                }
        }
        snprintf(path, sizeof(path), "/v1/events?since=%llu&limit=%llu", (unsigned long long) since,
                 (unsigned long long) limit);
        r = ctl_call(&c, "GET", path, NULL, &reply);
        if (r != 0)
                return r;
        if (c.json)
                ctl_print_json(reply);
        else {
                evs = json_object_object_get(reply, "events");
                printf("%6s  %-27s  %-36s  %-10s  %s\n", "SEQ", "TIME", "VM", "KIND", "DETAIL");
                for (size_t i = 0; evs && i < json_object_array_length(evs); i++) {
                        struct json_object *e = json_object_array_get_idx(evs, i);
                        printf("%6s  %-27s  %-36s  %-10s  %s\n", ctl_str(e, "seq"), ctl_str(e, "time"),
                               *ctl_str(e, "vm") ? ctl_str(e, "vm") : "(host)", ctl_str(e, "kind"),
                               json_object_to_json_string_ext(json_object_object_get(e, "detail"),
                                                              JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                }
        }
        json_object_put(reply);
        return 0;
}
