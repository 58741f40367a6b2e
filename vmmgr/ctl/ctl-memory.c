/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl memory show|priority */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/vmid.h"
#include "vmmgr/ctl/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl memory show UUID [--json]\n"
              "       vmmgrctl memory priority UUID N\n"
              "       vmmgrctl memory gpu UUID PCI [--max SIZE] [--soft SIZE] [--low SIZE] [--min SIZE]\n"
              "       vmmgrctl memory gpu UUID none\n"
              "\n"
              "Show a VM's memory as vmmgr manages it: RAM, the limits the kernel applied\n"
              "(memory.high always \"max\": vmmgr's own threads reclaim instead, so the vCPU\n"
              "threads do not stall), usage, the reclaim vmmgr did for it, headroom, the\n"
              "balloon, and per thread role how long threads waited: in direct reclaim,\n"
              "on refaults (thrashing), for a CPU (taskstats; memory delays need\n"
              "kernel.task_delayacct=1 before the VM starts).  Where vmmgr manages no cgroup\n"
              "v2 memory the report says so and why.\n"
              "\n"
              "priority sets the VM's place under host memory pressure: lower numbers are\n"
              "reclaimed first, never below their protected floor (0..4294967295).\n"
              "\n"
              "gpu names the VM's GPU by its host PCI address (e.g. 0000:03:00.0; its dmem\n"
              "regions are drm/PCI/...) with the VM's device-memory limits: --max (hard),\n"
              "--soft (evicted first above it), --low and --min (protection); SIZE is bytes\n"
              "or with K, M, G, T, and --max/--soft also take \"max\".  Stored with the VM;\n"
              "\"none\" removes it.\n"
              "\n"
              "Options:\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n",
              out);
}

static double mib(struct json_object *o, const char *key) {
        return (double) ctl_int(o, key) / (1024.0 * 1024.0);
}

static void print_limit(struct json_object *l, const char *key) {
        struct json_object *v = json_object_object_get(l, key);

        if (json_object_is_type(v, json_type_string))
                printf(" %s %s", key, json_object_get_string(v));
        else
                printf(" %s %.1f MiB", key, (double) json_object_get_int64(v) / (1024.0 * 1024.0));
}

static void print_delays(struct json_object *d) {
        static const char *const roles[] = { "vcpus", "emulator", "io" };

        if (!d || !json_object_is_type(d, json_type_object)) {
                printf("delays    (no taskstats)\n");
                return;
        }
        for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
                struct json_object *r = json_object_object_get(d, roles[i]);

                if (!r || !json_object_is_type(r, json_type_object))
                        continue;
                printf("%-9s %" PRId64 " thread(s): direct reclaim %.1f ms, thrashing %.1f ms, swap-in %.1f ms, "
                       "CPU wait %.1f ms%s\n",
                       roles[i], ctl_int(r, "threads"), (double) ctl_int(r, "direct_reclaim_delay_ns") / 1e6,
                       (double) ctl_int(r, "thrashing_delay_ns") / 1e6, (double) ctl_int(r, "swapin_delay_ns") / 1e6,
                       (double) ctl_int(r, "cpu_delay_ns") / 1e6,
                       json_object_get_boolean(json_object_object_get(r, "delayacct"))
                               ? ""
                               : " (memory delays off: kernel.task_delayacct)");
        }
}

static void print_memory(struct json_object *o) {
        struct json_object *l, *h, *rc, *b;

        printf("VM        %s (priority %" PRId64 ")\n", ctl_str(o, "vm"), ctl_int(o, "priority"));
        if (!ctl_is_null(o, "gpu") && json_object_object_get(o, "gpu")) {
                struct json_object *g = json_object_object_get(o, "gpu");

                printf("GPU       %s: dmem max %s, soft %s, low %" PRId64 ", min %" PRId64 " bytes\n",
                       ctl_str(g, "pci"), ctl_str(g, "max"), ctl_str(g, "soft"), ctl_int(g, "low"),
                       ctl_int(g, "min"));
        }
        if (!json_object_get_boolean(json_object_object_get(o, "managed"))) {
                printf("memory    not managed: %s\n", ctl_str(o, "reason"));
                print_delays(json_object_object_get(o, "delays"));
                return;
        }
        l = json_object_object_get(o, "limits");
        h = json_object_object_get(o, "headroom");
        rc = json_object_object_get(o, "reclaim");
        b = json_object_object_get(o, "balloon");
        printf("RAM       %.1f MiB%s\n", mib(o, "ram"),
               json_object_get_boolean(json_object_object_get(o, "passthrough")) ? " (passthrough: pinned)" : "");
        printf("usage     %.1f MiB, swap %.1f MiB, pressure %.2f %%%s\n", mib(o, "current"), mib(o, "swap_current"),
               json_object_get_double(json_object_object_get(o, "pressure_some_avg10_pct")),
               json_object_get_boolean(json_object_object_get(o, "throttled")) ? ", emulator/io throttled" : "");
        printf("limits   ");
        print_limit(l, "max");
        print_limit(l, "high");
        print_limit(l, "low");
        print_limit(l, "min");
        print_limit(l, "swap_max");
        printf("\nreclaim   between %.1f and %.1f MiB (floor %.1f MiB)%s\n", mib(l, "wmark_low"), mib(l, "wmark_high"),
               mib(l, "floor"), json_object_get_boolean(json_object_object_get(rc, "active")) ? ", active" : "");
        printf("          %.1f MiB in %" PRId64 " request(s), %.1f ms; asked: background %.1f, proactive %.1f, "
               "host %.1f MiB\n",
               mib(rc, "reclaimed"), ctl_int(rc, "requests"), (double) ctl_int(rc, "busy_usec") / 1e3,
               mib(rc, "asked_background"), mib(rc, "asked_proactive"), mib(rc, "asked_host"));
        printf("headroom  %.1f MiB to grow, %.1f MiB to the limit, %.1f MiB reclaimable, %.1f MiB by balloon\n",
               mib(h, "grow"), mib(h, "limit"), mib(h, "reclaimable"), mib(h, "balloon"));
        if (json_object_get_boolean(json_object_object_get(b, "present")))
                printf("balloon   target %.1f MiB, guest at %.1f MiB\n", mib(b, "target"), mib(b, "actual"));
        if (!ctl_is_null(o, "last_error") && json_object_object_get(o, "last_error"))
                printf("error     %s\n", ctl_str(o, "last_error"));
        print_delays(json_object_object_get(o, "delays"));
}

/* SIZE or "max" (where allowed) into a JSON value. */
static struct json_object *size_arg(const char *opt, const char *s, bool max_ok) {
        uint64_t v;

        if (max_ok && strcmp(s, "max") == 0)
                return json_object_new_string("max");
        if (parse_size(s, &v) < 0 || v > INT64_MAX) {
                log_error("%s: \"%s\" is not a size (bytes, or with K, M, G, T%s)", opt, s,
                          max_ok ? "; or max" : "");
                return NULL;
        }
        return json_object_new_int64((int64_t) v);
}

static struct json_object *gpu_body(char **rest, int n) {
        static const struct {
                const char *opt, *key;
                bool max_ok;
        } opts[] = {
                { "--max", "max", true }, { "--soft", "soft", true }, { "--low", "low", false }, { "--min", "min", false },
        };
        struct json_object *body = json_object_new_object(), *g;

        if (n == 1 && strcmp(rest[0], "none") == 0) {
                json_object_object_add(body, "gpu", NULL);
                return body;
        }
        if (n < 1 || !is_pci_address(rest[0])) {
                log_error("%s: not a PCI address like 0000:03:00.0 (lowercase hex), or none", n ? rest[0] : "(none)");
                json_object_put(body);
                return NULL;
        }
        g = json_object_new_object();
        json_object_object_add(g, "pci", json_object_new_string(rest[0]));
        json_object_object_add(body, "gpu", g);
        for (int i = 1; i < n; i += 2) {
                struct json_object *v = NULL;
                size_t k;

                for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
                        if (strcmp(rest[i], opts[k].opt) == 0)
                                break;
                if (k == sizeof(opts) / sizeof(opts[0]) || i + 1 >= n) {
                        log_error("%s: unknown option or missing value", rest[i]);
                        json_object_put(body);
                        return NULL;
                }
                v = size_arg(opts[k].opt, rest[i + 1], opts[k].max_ok);
                if (!v) {
                        json_object_put(body);
                        return NULL;
                }
                json_object_object_add(g, opts[k].key, v);
        }
        return body;
}

int ctl_verb_memory(int argc, char **argv) {
        char *rest[16], path[160];
        struct json_object *reply = NULL, *body;
        CtlCommon c;
        uint64_t prio;
        int n = 0, r;
        VmId id;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 2, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        if (ctl_uuid_arg(rest[1], &id) < 0)
                return CTL_EXIT_USAGE;
        snprintf(path, sizeof(path), "/v1/vms/%s/memory", id.str);
        if (strcmp(rest[0], "show") == 0 && n == 2)
                r = ctl_call(&c, "GET", path, NULL, &reply);
        else if (strcmp(rest[0], "priority") == 0 && n == 3) {
                if (parse_u64(rest[2], &prio) < 0 || prio > UINT32_MAX) {
                        log_error("\"%s\" is not a priority: a whole number 0..4294967295", rest[2]);
                        return CTL_EXIT_USAGE;
                }
                body = json_object_new_object();
                json_object_object_add(body, "priority", json_object_new_int64((int64_t) prio));
                r = ctl_call(&c, "PUT", path, body, &reply);
                json_object_put(body);
        } else if (strcmp(rest[0], "gpu") == 0 && n >= 3) {
                body = gpu_body(rest + 2, n - 2);
                if (!body)
                        return CTL_EXIT_USAGE;
                r = ctl_call(&c, "PUT", path, body, &reply);
                json_object_put(body);
        } else {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        return ctl_verb_end(&c, r, reply, print_memory);
}
