/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrctl top: every VM's credits, refreshed.  On a terminal a live
 * screen (ctl-top-screen.c); otherwise, or with --batch, one plain table
 * per refresh, in the format scripts have always read.
 */
#include <errno.h>
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
#include "vmmgr/ctl/ctl-top.h"

/* The plain mode has always waited as long as any other verb. */
#define TOP_PLAIN_TIMEOUT_MS 15000

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl top [--interval SECONDS] [--iterations N] [--batch]\n"
              "\n"
              "A live view of every VM, like top(1): credits available (launch + bank),\n"
              "CPU usage of its vCPUs over the last interval, state (bursting, baseline,\n"
              "throttled), the applied limit and the bank.  Refreshes until interrupted,\n"
              "or N times.  Without a terminal (or with --batch) it prints one table per\n"
              "refresh.\n"
              "\n"
              "On a terminal it is a screen that takes keys:\n"
              "  < >          sort by the column to the left / right\n"
              "  u c a p s l b  sort by VM, class, credits, CPU%, state, limit, bank\n"
              "               (the same key again, or r, reverses the order)\n"
              "  / or f       filter: a word matches the class or the state;\n"
              "               class=WORD or state=WORD one of them; empty clears\n"
              "  Up Down j k  select a VM\n"
              "  Enter or h   the selected VM's credit history as sparklines\n"
              "               (Esc, h or Left goes back)\n"
              "  q            quit\n"
              "\n"
              "Options:\n"
              "      --interval SECONDS   Refresh period (default 1)\n"
              "      --iterations N       Stop after N refreshes\n"
              "      --batch              Plain tables even on a terminal\n"
              "      --socket PATH        vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "  -h, --help               Show this help\n",
              out);
}

void top_snapshot_done(TopSnapshot *s) {
        free(s->rows);
        *s = (TopSnapshot){ 0 };
}

int top_fetch(const CtlCommon *c, long timeout_ms, const TopSnapshot *prev, double dt_sec, TopSnapshot *ret, char *msg,
              size_t msg_size, bool log_each) {
        struct json_object *vms = NULL, *list;
        TopSnapshot s = { 0 };
        size_t len;
        int r;

        *ret = (TopSnapshot){ 0 };
        r = ctl_call_quiet(c, "GET", "/v1/vms", NULL, timeout_ms, &vms, msg, msg_size);
        if (r != CTL_EXIT_OK)
                return r;
        list = json_object_object_get(vms, "vms");
        s.listed = len = list ? json_object_array_length(list) : 0;
        if (len > TOP_MAX_VMS)
                len = TOP_MAX_VMS;
        s.rows = calloc(len ? len : 1, sizeof(TopRow));
        if (!s.rows) {
                json_object_put(vms);
                snprintf(msg, msg_size, "out of memory");
                return CTL_EXIT_FAILURE;
        }
        for (size_t i = 0; i < len; i++) {
                struct json_object *v = json_object_array_get_idx(list, i), *cr = NULL;
                const char *uuid = ctl_str(v, "uuid"), *klass;
                TopRow *row = &s.rows[s.n];
                char path[128], one[512];

                snprintf(path, sizeof(path), "/v1/vms/%s/credits", uuid);
                if (ctl_call_quiet(c, "GET", path, NULL, timeout_ms, &cr, one, sizeof(one)) != CTL_EXIT_OK) {
                        if (log_each)
                                log_error("%s", one);
                        else
                                snprintf(msg, msg_size, "VM %s: %s", uuid, one);
                        continue;
                }
                klass = ctl_str(cr, "class");
                snprintf(row->uuid, sizeof(row->uuid), "%s", uuid);
                snprintf(row->klass, sizeof(row->klass), "%s", *klass ? klass : "(custom)");
                snprintf(row->state, sizeof(row->state), "%s",
                         json_object_get_boolean(json_object_object_get(v, "connected")) ? ctl_str(cr, "state")
                                                                                         : "down");
                snprintf(row->bank, sizeof(row->bank), "%s", ctl_str(cr, "bank"));
                row->available_usec = ctl_int(cr, "balance_usec") + ctl_int(cr, "launch_usec");
                credit_format(row->avail, sizeof(row->avail), row->available_usec);
                row->usage_usec = ctl_int(cr, "usage_usec");
                for (size_t k = 0; prev && k < prev->n; k++)
                        if (strcmp(prev->rows[k].uuid, row->uuid) == 0 && dt_sec > 0) {
                                row->cpu_pct = (double) (row->usage_usec - prev->rows[k].usage_usec) / 1e4 / dt_sec;
                                row->cpu_known = true;
                        }
                row->limit_pct = -1;
                snprintf(row->limit, sizeof(row->limit), "none");
                if (!ctl_is_null(cr, "quota_usec")) {
                        row->limit_pct =
                                (double) ctl_int(cr, "quota_usec") * 100.0 / (double) ctl_int(cr, "period_usec");
                        snprintf(row->limit, sizeof(row->limit), "%.1f %% CPU", row->limit_pct);
                }
                json_object_put(cr);
                s.n++;
        }
        json_object_put(vms);
        *ret = s;
        return CTL_EXIT_OK;
}

void top_print_table(const TopSnapshot *snap, time_t when, FILE *out) {
        char stamp[32];

        strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&when));
        fprintf(out, "vmmgr top - %s - %zu VM(s)\n\n", stamp, snap->listed);
        fprintf(out, "%-36s %-10s %9s %9s %7s %-10s %-14s %s\n", "VM", "CLASS", "CREDITS", "(CPU-s)", "CPU%", "STATE",
                "LIMIT", "BANK");
        for (size_t i = 0; i < snap->n; i++) {
                const TopRow *row = &snap->rows[i];
                char cpu[16] = "-";

                if (row->cpu_known)
                        snprintf(cpu, sizeof(cpu), "%.1f", row->cpu_pct);
                fprintf(out, "%-36s %-10s %9s %9.2f %7s %-10s %-14s %s\n", row->uuid, row->klass, row->avail,
                        (double) row->available_usec / 1e6, cpu, row->state, row->limit, row->bank);
        }
}

/* One table per refresh, as it has always been printed (scripts read
 * it); on a terminal each replaces the last. */
static int top_plain(const CtlCommon *c, int interval, int iterations, bool clear) {
        TopSnapshot prev = { 0 };
        double last = now_sec();

        for (int it = 0; iterations < 0 || it < iterations; it++) {
                double now = now_sec();
                TopSnapshot snap;
                char msg[512];
                time_t t = time(NULL);
                int r;

                r = top_fetch(c, TOP_PLAIN_TIMEOUT_MS, &prev, now - last, &snap, msg, sizeof(msg), true);
                if (r != CTL_EXIT_OK) {
                        log_error("%s", msg);
                        top_snapshot_done(&prev);
                        return r;
                }
                if (clear)
                        fputs("\033[H\033[2J", stdout);
                top_print_table(&snap, t, stdout);
                if (!clear)
                        putchar('\n');
                fflush(stdout);
                top_snapshot_done(&prev);
                prev = snap;
                last = now;
                if (iterations < 0 || it + 1 < iterations)
                        sleep((unsigned) interval);
        }
        top_snapshot_done(&prev);
        return 0;
}

int ctl_verb_top(int argc, char **argv) {
        char *rest[16];
        CtlCommon c;
        int n = 0, interval = 1, iterations = -1, r;
        bool batch = false;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 0, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        for (int i = 0; i < n; i++) {
                if (strcmp(rest[i], "--interval") == 0 && i + 1 < n) {
                        if (parse_int_range(rest[++i], 1, 3600, &interval) < 0)
                                goto bad;
                } else if (strcmp(rest[i], "--iterations") == 0 && i + 1 < n) {
                        if (parse_int_range(rest[++i], 1, 1000000, &iterations) < 0)
                                goto bad;
                } else if (strcmp(rest[i], "--batch") == 0)
                        batch = true;
                else
                        goto bad;
        }
        if (!batch && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO)) {
                r = top_screen_run(&c, interval, iterations);
                if (r != -ENOTTY)
                        return r;
                /* no usable $TERM: the plain tables, as before the screen */
        }
        return top_plain(&c, interval, iterations, !batch && isatty(STDOUT_FILENO));
bad:
        usage(stderr);
        return CTL_EXIT_USAGE;
}
