/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl live-update prepare|status|abort (docs/live-update.md) */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "policies/credits.h"
#include "vmmgr/ctl/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl live-update prepare [--deadline SECONDS]\n"
              "       vmmgrctl live-update status [--json]\n"
              "       vmmgrctl live-update abort\n"
              "\n"
              "Carry every VM's CPU credits across a host live update (a kexec into\n"
              "another kernel; docs/live-update.md).  Nothing of the kernel's survives\n"
              "the jump: vmmgr keeps the ledgers in its state database.\n"
              "\n"
              "  prepare  records every VM's ledger, looked at now, and this boot's\n"
              "           id; from then on vmmgrd commits every tick, so the jump\n"
              "           loses at most one tick.  The VMs keep running.  Then stop\n"
              "           the VMs (or let CPR keep them), stop vmmgrd, kexec.\n"
              "  status   what is prepared, and after the jump what is restored,\n"
              "           what is still waiting and what is missing, per VM.\n"
              "  abort    before the jump: back to normal, nothing changed; while\n"
              "           restoring: stop waiting.\n"
              "\n"
              "After the jump, start vmmgrd with the same state directory and the VMs\n"
              "under their UUIDs and QMP sockets: each is restored as it comes back.\n"
              "Its ledger earned nothing during the blackout (like any VM whose QEMU\n"
              "is gone) and is charged what its new QEMU used before vmmgrd bound it.\n"
              "A VM not back within the deadline (default 600 s) is reported missing;\n"
              "its ledger stays frozen until it does come back.\n"
              "\n"
              "Options:\n"
              "      --deadline SECONDS  How long a restore waits for the VMs (1..604800)\n"
              "      --socket PATH       vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json              Print JSON as the API returns it\n"
              "  -h, --help              Show this help\n",
              out);
}

static void print_status(struct json_object *o) {
        struct json_object *vms = json_object_object_get(o, "vms");

        printf("State:        %s\n", ctl_str(o, "state"));
        if (strcmp(ctl_str(o, "state"), "none") == 0)
                return;
        printf("Prepared:     boot %s, at %s usec, deadline %s s\n", ctl_str(o, "prepared_boot_id"),
               ctl_str(o, "prepared_at_usec"), ctl_str(o, "deadline_sec"));
        printf("This boot:    %s\n", ctl_str(o, "current_boot_id"));
        if (ctl_int(o, "restore_ms") > 0)
                printf("Restored in:  %s ms after vmmgrd started\n", ctl_str(o, "restore_ms"));
        printf("\n%-36s  %-9s  %14s  %14s  %12s  %s\n", "UUID", "STATE", "PREPARED", "RESTORED", "BLACKOUT", "ERROR");
        for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
                struct json_object *v = json_object_array_get_idx(vms, i);
                struct json_object *p = json_object_object_get(v, "prepared");
                struct json_object *r = json_object_object_get(v, "restored");
                char prep[32], rest[32] = "-", black[32] = "-";

                (void) credit_format(prep, sizeof(prep), ctl_int(p, "available_usec"));
                if (r) {
                        (void) credit_format(rest, sizeof(rest), ctl_int(r, "available_usec"));
                        snprintf(black, sizeof(black), "%.1f s", (double) ctl_int(v, "blackout_usec") / 1e6);
                }
                printf("%-36s  %-9s  %11s cr  %11s%s  %12s  %s\n", ctl_str(v, "uuid"), ctl_str(v, "state"), prep, rest,
                       r ? " cr" : "   ", black, ctl_is_null(v, "error") ? "" : ctl_str(v, "error"));
        }
}

int ctl_verb_live_update(int argc, char **argv) {
        struct json_object *reply = NULL, *body = NULL;
        char *rest[8];
        CtlCommon c;
        int n = 0, r;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 1, (int) ARRAY_SIZE(rest), &n);
        if (r >= 0)
                return r;
        if (strcmp(rest[0], "prepare") == 0) {
                int deadline = 0;

                for (int i = 1; i < n; i++) {
                        if (strcmp(rest[i], "--deadline") == 0 && i + 1 < n) {
                                if (parse_int_range(rest[++i], 1, 7 * 24 * 3600, &deadline) < 0) {
                                        log_error("Invalid --deadline \"%s\": whole seconds, 1..604800", rest[i]);
                                        return CTL_EXIT_USAGE;
                                }
                        } else {
                                log_error("Unexpected argument \"%s\"", rest[i]);
                                return CTL_EXIT_USAGE;
                        }
                }
                body = json_object_new_object();
                if (!body || (deadline && json_object_object_add(body, "deadline_sec",
                                                                 json_object_new_int64(deadline)) < 0)) {
                        json_object_put(body);
                        log_error("Out of memory");
                        return CTL_EXIT_FAILURE;
                }
                r = ctl_call(&c, "POST", "/v1/live-update/prepare", body, &reply);
                json_object_put(body);
                if (r == 0 && !c.json)
                        printf("Live update prepared: %zu VM(s) recorded under boot %s.\n"
                               "Stop the VMs and vmmgrd, then kexec; start vmmgrd with the same state directory.\n",
                               json_object_array_length(json_object_object_get(reply, "vms")),
                               ctl_str(reply, "prepared_boot_id"));
        } else if (strcmp(rest[0], "status") == 0 && n == 1) {
                r = ctl_call(&c, "GET", "/v1/live-update", NULL, &reply);
                if (r == 0 && !c.json)
                        print_status(reply);
        } else if (strcmp(rest[0], "abort") == 0 && n == 1) {
                r = ctl_call(&c, "POST", "/v1/live-update/abort", NULL, &reply);
                if (r == 0 && !c.json)
                        printf("Live update aborted\n");
        } else {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        return ctl_verb_end(&c, r, reply, NULL);
}
