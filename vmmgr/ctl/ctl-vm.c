/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl vm list|show|add|remove */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/vmid.h"
#include "vmmgr/ctl/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl vm list [--json]\n"
              "       vmmgrctl vm show UUID [--json]\n"
              "       vmmgrctl vm add UUID --qmp SOCKET [--class NAME] [--incoming] [--json]\n"
              "       vmmgrctl vm remove UUID\n"
              "\n"
              "Register running QEMU VMs with vmmgrd, list and show them, unregister them.\n"
              "add connects to the VM's QMP socket, finds its pid, vCPU and iothread\n"
              "threads, places them in the VM's cgroups and starts its credit bank\n"
              "(class NAME, or the daemon's default class); it returns once the VM is\n"
              "bound, or with the reason it cannot be (a QEMU that does not answer\n"
              "within 2 s is refused).  remove lifts the VM's CPU limit and forgets it;\n"
              "its groups go once QEMU exits.  --incoming registers the destination of a\n"
              "live migration (a QEMU started with -incoming is one without it): it runs\n"
              "on a provisional bank until the source's credits arrive (vmmgrctl\n"
              "migration --help).\n"
              "\n"
              "LINK is vmmgrd's link to the VM: bound (threads bound, credits\n"
              "running), connecting, stalled (QEMU stopped answering; retried with\n"
              "back-off), down (nothing answers on its socket; retried every 2 s).\n"
              "vm show says why a VM is not bound.  SOURCE is the QMP socket of a VM\n"
              "added here, or libvirt:NAME for a libvirt domain vmmgrd adopted (one\n"
              "whose metadata has a <vmmgr:credits> element; docs/libvirt.md).  remove\n"
              "on a libvirt domain lifts its limit until libvirt reports it again.\n"
              "\n"
              "Options:\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n",
              out);
}

/* LINK is vmmgrd's link to the VM (bound, connecting, stalled, down);
 * STATE is QEMU's own status while bound; SOURCE the QMP socket of a VM
 * registered over the API, or "libvirt:NAME" for a libvirt domain. */
static void print_vm_row(struct json_object *v) {
        bool bound = strcmp(ctl_str(v, "link"), "bound") == 0;
        bool lv = strcmp(ctl_str(v, "source"), "libvirt") == 0;

        printf("%-36s  %-10s  %-12s  %7s  %5s  %-12s  %s%s\n", ctl_str(v, "uuid"), ctl_str(v, "link"),
               bound ? ctl_str(v, "run_state") : "-", ctl_is_null(v, "pid") ? "-" : ctl_str(v, "pid"),
               ctl_str(v, "vcpus"), *ctl_str(v, "class") ? ctl_str(v, "class") : "(custom)", lv ? "libvirt:" : "",
               lv ? ctl_str(v, "libvirt_domain") : ctl_str(v, "qmp"));
}

static const char header[] =
        "UUID                                  LINK        STATE             PID  VCPUS  CLASS         SOURCE\n";

int ctl_verb_vm(int argc, char **argv) {
        char *rest[64];
        struct json_object *reply = NULL;
        const char *sub;
        CtlCommon c;
        int n = 0, r;
        VmId id;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 1, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        sub = rest[0];
        if (strcmp(sub, "list") == 0 && n == 1) {
                r = ctl_call(&c, "GET", "/v1/vms", NULL, &reply);
                if (r == 0) {
                        struct json_object *vms = json_object_object_get(reply, "vms");
                        if (c.json)
                                ctl_print_json(reply);
                        else {
                                fputs(header, stdout);
                                for (size_t i = 0; vms && i < json_object_array_length(vms); i++)
                                        print_vm_row(json_object_array_get_idx(vms, i));
                        }
                }
        } else if (strcmp(sub, "show") == 0 && n == 2) {
                char path[128];
                if (ctl_uuid_arg(rest[1], &id) < 0)
                        return CTL_EXIT_USAGE;
                snprintf(path, sizeof(path), "/v1/vms/%s", id.str);
                r = ctl_call(&c, "GET", path, NULL, &reply);
                if (r == 0) {
                        if (c.json)
                                ctl_print_json(reply);
                        else {
                                fputs(header, stdout);
                                print_vm_row(reply);
                                if (!ctl_is_null(reply, "link_error"))
                                        printf("\nNot bound: %s\n", ctl_str(reply, "link_error"));
                        }
                }
        } else if (strcmp(sub, "add") == 0 && n >= 2) {
                struct json_object *body;
                const char *qmp = NULL, *cls = NULL;
                bool incoming = false;

                if (ctl_uuid_arg(rest[1], &id) < 0)
                        return CTL_EXIT_USAGE;
                for (int i = 2; i < n; i++) {
                        if (strcmp(rest[i], "--qmp") == 0 && i + 1 < n)
                                qmp = rest[++i];
                        else if (strcmp(rest[i], "--class") == 0 && i + 1 < n)
                                cls = rest[++i];
                        else if (strcmp(rest[i], "--incoming") == 0)
                                incoming = true;
                        else {
                                log_error("Unexpected argument \"%s\"", rest[i]);
                                return CTL_EXIT_USAGE;
                        }
                }
                if (!qmp) {
                        log_error("vm add needs --qmp SOCKET");
                        return CTL_EXIT_USAGE;
                }
                body = json_object_new_object();
                json_object_object_add(body, "uuid", json_object_new_string(id.str));
                json_object_object_add(body, "qmp", json_object_new_string(qmp));
                if (cls)
                        json_object_object_add(body, "class", json_object_new_string(cls));
                if (incoming)
                        json_object_object_add(body, "incoming", json_object_new_boolean(true));
                r = ctl_call(&c, "POST", "/v1/vms", body, &reply);
                json_object_put(body);
                if (r == 0) {
                        if (c.json)
                                ctl_print_json(reply);
                        else
                                printf("Registered %s: pid %s, %s vCPU(s), class %s\n", id.str, ctl_str(reply, "pid"),
                                       ctl_str(reply, "vcpus"), ctl_str(reply, "class"));
                }
        } else if (strcmp(sub, "remove") == 0 && n == 2) {
                char path[128];
                if (ctl_uuid_arg(rest[1], &id) < 0)
                        return CTL_EXIT_USAGE;
                snprintf(path, sizeof(path), "/v1/vms/%s", id.str);
                r = ctl_call(&c, "DELETE", path, NULL, &reply);
                if (r == 0 && !c.json)
                        printf("Unregistered %s\n", id.str);
        } else {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        json_object_put(reply);
        return r;
}
