/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl-events.c - vmmgrctl events: the event history, once or
 * followed (--follow polls for new events every second until interrupted).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "vmmgr/ctl/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl events [--since SEQ] [--limit N] [--follow] [--json]\n"
              "\n"
              "Show vmmgrd's recent event history: registrations, adoptions, spec\n"
              "changes, injections, transfers, unregistrations, and what the VMs do\n"
              "with their credits (state changes; launch credits spent; credits\n"
              "exhausted, held at baseline; bursting again; surplus charged).  --since\n"
              "shows only events after sequence number SEQ (for polling: pass the last\n"
              "\"next\").  --follow keeps printing new events as they happen, until\n"
              "interrupted; with --json it prints one event object per line.\n"
              "\n"
              "Options:\n"
              "      --since SEQ     Events after this sequence number\n"
              "      --limit N       At most N events (default 100)\n"
              "  -f, --follow        Keep printing new events (every second)\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n",
              out);
}

static void print_event(struct json_object *e) {
        printf("%6s  %-27s  %-36s  %-15s  %s\n", ctl_str(e, "seq"), ctl_str(e, "time"),
               *ctl_str(e, "vm") ? ctl_str(e, "vm") : "(host)", ctl_str(e, "kind"),
               json_object_to_json_string_ext(json_object_object_get(e, "detail"),
                                              JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int ctl_verb_events(int argc, char **argv) {
        char *rest[16], path[128];
        struct json_object *reply = NULL, *evs;
        uint64_t since = 0, limit = 100;
        bool follow = false, full;
        CtlCommon c;
        int n = 0, r;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 0, (int) (sizeof(rest) / sizeof(rest[0])), &n);
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
                } else if (strcmp(rest[i], "--follow") == 0 || strcmp(rest[i], "-f") == 0)
                        follow = true;
                else {
                        usage(stderr);
                        return CTL_EXIT_USAGE;
                }
        }
        for (bool first = true;; first = false) {
                snprintf(path, sizeof(path), "/v1/events?since=%llu&limit=%llu", (unsigned long long) since,
                         (unsigned long long) limit);
                r = ctl_call(&c, "GET", path, NULL, &reply);
                if (r != 0)
                        return r;
                evs = json_object_object_get(reply, "events");
                if (c.json && !follow)
                        ctl_print_json(reply);
                else if (c.json) {
                        for (size_t i = 0; evs && i < json_object_array_length(evs); i++)
                                puts(json_object_to_json_string_ext(json_object_array_get_idx(evs, i),
                                                                    JSON_C_TO_STRING_PLAIN |
                                                                            JSON_C_TO_STRING_NOSLASHESCAPE));
                } else {
                        if (first)
                                printf("%6s  %-27s  %-36s  %-15s  %s\n", "SEQ", "TIME", "VM", "KIND", "DETAIL");
                        for (size_t i = 0; evs && i < json_object_array_length(evs); i++)
                                print_event(json_object_array_get_idx(evs, i));
                }
                if (!follow)
                        break;
                fflush(stdout);
                {
                        struct json_object *next = json_object_object_get(reply, "next");
                        if (next && json_object_get_int64(next) > 0)
                                since = (uint64_t) json_object_get_int64(next);
                }
                /* A full page means more are waiting: ask again at once. */
                full = evs && json_object_array_length(evs) >= limit;
                json_object_put(reply);
                reply = NULL;
                if (!full)
                        sleep(1);
        }
        json_object_put(reply);
        return 0;
}
