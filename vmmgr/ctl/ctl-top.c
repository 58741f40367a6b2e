/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl top: a live, refreshing view of every VM's credits. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "policies/credits.h"
#include "vmmgr/ctl/ctl.h"

#define TOP_MAX_VMS 4096

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl top [--interval SECONDS] [--iterations N]\n"
              "\n"
              "A live view of every VM, like top(1): credits available (launch + bank),\n"
              "CPU usage of its vCPUs over the last interval, state (bursting, baseline,\n"
              "throttled), the applied limit and the bank.  Refreshes until interrupted,\n"
              "or N times.  Without a terminal it prints one table per refresh.\n"
              "\n"
              "Options:\n"
              "      --interval SECONDS   Refresh period (default 1)\n"
              "      --iterations N       Stop after N refreshes\n"
              "      --socket PATH        vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "  -h, --help               Show this help\n",
              out);
}

typedef struct Prev {
        char uuid[40];
        int64_t usage;
} Prev;

int ctl_verb_top(int argc, char **argv) {
        static Prev prev[TOP_MAX_VMS];
        size_t n_prev = 0;
        char *rest[16];
        CtlCommon c;
        int n = 0, interval = 1, iterations = -1, r = 0;
        bool tty = isatty(STDOUT_FILENO);
        double last = now_sec();

        r = ctl_verb_begin(argc, argv, usage, &c, rest, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        for (int i = 0; i < n; i++) {
                if (strcmp(rest[i], "--interval") == 0 && i + 1 < n) {
                        if (parse_int_range(rest[++i], 1, 3600, &interval) < 0)
                                goto bad;
                } else if (strcmp(rest[i], "--iterations") == 0 && i + 1 < n) {
                        if (parse_int_range(rest[++i], 1, 1000000, &iterations) < 0)
                                goto bad;
                } else
                        goto bad;
        }
        for (int it = 0; iterations < 0 || it < iterations; it++) {
                struct json_object *vms = NULL, *list;
                double now = now_sec(), dt = now - last;
                Prev next[TOP_MAX_VMS];
                size_t n_next = 0;
                char stamp[32];
                time_t t = time(NULL);

                r = ctl_call(&c, "GET", "/v1/vms", NULL, &vms);
                if (r != 0)
                        return r;
                strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&t));
                if (tty)
                        fputs("\033[H\033[2J", stdout);
                list = json_object_object_get(vms, "vms");
                printf("vmmgr top - %s - %zu VM(s)\n\n", stamp, list ? json_object_array_length(list) : 0);
                printf("%-36s %-10s %9s %9s %7s %-10s %-14s %s\n", "VM", "CLASS", "CREDITS", "(CPU-s)", "CPU%",
                       "STATE", "LIMIT", "BANK");
                for (size_t i = 0; list && i < json_object_array_length(list) && n_next < TOP_MAX_VMS; i++) {
                        struct json_object *v = json_object_array_get_idx(list, i), *cr = NULL;
                        char path[128], avail[32], cpu[16] = "-", limit[32] = "none";
                        const char *uuid = ctl_str(v, "uuid");

                        snprintf(path, sizeof(path), "/v1/vms/%s/credits", uuid);
                        if (ctl_call(&c, "GET", path, NULL, &cr) != 0)
                                continue;
                        credit_format(avail, sizeof(avail), ctl_int(cr, "balance_usec") + ctl_int(cr, "launch_usec"));
                        for (size_t k = 0; k < n_prev; k++)
                                if (strcmp(prev[k].uuid, uuid) == 0 && dt > 0)
                                        snprintf(cpu, sizeof(cpu), "%.1f",
                                                 (double) (ctl_int(cr, "usage_usec") - prev[k].usage) / 1e4 / dt);
                        if (!ctl_is_null(cr, "quota_usec"))
                                snprintf(limit, sizeof(limit), "%.1f %% CPU",
                                         (double) ctl_int(cr, "quota_usec") * 100.0 / (double) ctl_int(cr, "period_usec"));
                        printf("%-36s %-10s %9s %9.2f %7s %-10s %-14s %s\n", uuid,
                               *ctl_str(cr, "class") ? ctl_str(cr, "class") : "(custom)", avail,
                               (double) (ctl_int(cr, "balance_usec") + ctl_int(cr, "launch_usec")) / 1e6, cpu,
                               json_object_get_boolean(json_object_object_get(v, "connected")) ? ctl_str(cr, "state")
                                                                                                : "down",
                               limit, ctl_str(cr, "bank"));
                        snprintf(next[n_next].uuid, sizeof(next[n_next].uuid), "%s", uuid);
                        next[n_next++].usage = ctl_int(cr, "usage_usec");
                        json_object_put(cr);
                }
                if (!tty)
                        putchar('\n');
                fflush(stdout);
                json_object_put(vms);
                memcpy(prev, next, n_next * sizeof(Prev));
                n_prev = n_next;
                last = now;
                if (iterations < 0 || it + 1 < iterations)
                        sleep((unsigned) interval);
        }
        return 0;
bad:
        usage(stderr);
        return CTL_EXIT_USAGE;
}
