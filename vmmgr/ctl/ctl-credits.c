/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl credits show|set|inject|transfer */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/vmid.h"
#include "policies/credits.h"
#include "vmmgr/ctl/ctl.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrctl credits show UUID [--json]\n"
              "       vmmgrctl credits set UUID [--class NAME] [--baseline FRACTION] [--cap AMOUNT]\n"
              "                                 [--launch AMOUNT] [--mode standard|unlimited]\n"
              "       vmmgrctl credits inject UUID +AMOUNT|-AMOUNT\n"
              "       vmmgrctl credits transfer FROM-UUID TO-UUID AMOUNT\n"
              "       vmmgrctl credits history UUID [--svg FILE] [--json]\n"
              "\n"
              "Show and change a VM's CPU credits.  1 credit = one vCPU at 100 % for one\n"
              "minute = 60 CPU-seconds.  AMOUNT takes a unit: usec, s (CPU-seconds) or cr\n"
              "(credits), e.g. --cap 6s, +2cr, -500000usec; 0 needs none (--launch 0: no\n"
              "launch credits; --cap 0: the default cap, 24 h of earnings).  FRACTION is per\n"
              "vCPU: 0.2 or 20%.\n"
              "\n"
              "set changes the spec live: the balance is kept, clamped to a smaller cap.\n"
              "inject adds to the bank (refused above the cap) or takes from it (refused\n"
              "below zero): nothing is clamped silently.  transfer moves credits between\n"
              "two VMs: both change or neither does.  history shows the last 600 samples\n"
              "(one per bank look, at most one a second: 10 minutes for a busy VM, longer\n"
              "for an idle one on the kernel bank) as a table, or draws credits and usage\n"
              "as an SVG chart.\n"
              "\n"
              "Options:\n"
              "      --socket PATH   vmmgrd's socket (default $VMMGR_SOCKET or /run/vmmgr/vmmgr.sock)\n"
              "      --json          Print JSON as the API returns it\n"
              "  -h, --help          Show this help\n",
              out);
}

static void cr(char *buf, size_t size, int64_t usec) {
        if (credit_format(buf, size, usec) < 0)
                snprintf(buf, size, "?");
}

static void print_credits(struct json_object *o) {
        struct json_object *spec = json_object_object_get(o, "spec");
        char bal[32], launch[32], earned[32], spent[32], surplus[32], charged[32], cap[32];

        cr(bal, sizeof(bal), ctl_int(o, "balance_usec"));
        cr(launch, sizeof(launch), ctl_int(o, "launch_usec"));
        cr(earned, sizeof(earned), ctl_int(o, "earned_usec"));
        cr(spent, sizeof(spent), ctl_int(o, "spent_usec"));
        cr(surplus, sizeof(surplus), ctl_int(o, "surplus_usec"));
        cr(charged, sizeof(charged), ctl_int(o, "charged_usec"));
        cr(cap, sizeof(cap), ctl_int(spec, "cap_usec"));
        printf("VM        %s\n", ctl_str(o, "uuid"));
        printf("state     %s (%s bank)\n", ctl_str(o, "state"), ctl_str(o, "bank"));
        printf("class     %s: %s vCPU x %.2f %% baseline, cap %s cr, %s\n",
               *ctl_str(o, "class") ? ctl_str(o, "class") : "(custom)", ctl_str(spec, "vcpus"),
               json_object_get_double(json_object_object_get(spec, "baseline")) * 100.0, cap, ctl_str(spec, "mode"));
        printf("balance   %s cr   launch %s cr\n", bal, launch);
        printf("earned    %s cr   spent %s cr\n", earned, spent);
        printf("surplus   %s cr   charged %s cr\n", surplus, charged);
        printf("throttled %.3f s   limit %s\n", (double) ctl_int(o, "throttled_usec") / 1e6,
               ctl_is_null(o, "quota_usec") ? "none" : "set");
        if (!ctl_is_null(o, "quota_usec"))
                printf("          %" PRId64 " us per %" PRId64 " us (%.1f %% of a CPU)\n", ctl_int(o, "quota_usec"),
                       ctl_int(o, "period_usec"),
                       (double) ctl_int(o, "quota_usec") * 100.0 / (double) ctl_int(o, "period_usec"));
}

/* An amount takes a unit ("6 of what?"), except 0: nothing is nothing in
 * every unit, so "--launch 0" is "--launch 0cr". */
static int amount_arg(const char *s, bool signed_ok, int64_t *ret) {
        int r;

        if (strcmp(s, "0") == 0) {
                *ret = 0;
                return 0;
        }
        r = credit_parse_amount(s, signed_ok, ret);
        if (r < 0)
                log_error("\"%s\" is not an amount: a number with a unit usec, s or cr%s (e.g. 6s, 2cr)%s", s,
                          signed_ok ? ", signed" : "", r == -ERANGE ? "; out of range or below 1 usec" : "");
        return r;
}

static int set_spec(const CtlCommon *c, const VmId *id, char **rest, int n, struct json_object **reply) {
        struct json_object *body = json_object_new_object();
        char path[128];
        int r;

        for (int i = 0; i < n; i++) {
                const char *opt = rest[i], *v = i + 1 < n ? rest[i + 1] : NULL;
                int64_t amount;
                uint32_t ppm;

                if (!v) {
                        log_error("%s needs a value", opt);
                        goto usage;
                }
                i++;
                if (strcmp(opt, "--class") == 0)
                        json_object_object_add(body, "class", json_object_new_string(v));
                else if (strcmp(opt, "--baseline") == 0) {
                        size_t len = strlen(v);
                        char buf[32];
                        if (len > 1 && len < sizeof(buf) && v[len - 1] == '%') {
                                CreditClass tmp = { 0 };
                                if (credit_class_set_key(&tmp, "baseline", v, NULL) < 0)
                                        goto bad_baseline;
                                ppm = tmp.spec.baseline_ppm;
                        } else if (parse_fraction_ppm(v, &ppm) < 0)
                                goto bad_baseline;
                        json_object_object_add(body, "baseline", json_object_new_double((double) ppm / 1e6));
                } else if (strcmp(opt, "--cap") == 0 || strcmp(opt, "--launch") == 0) {
                        if (amount_arg(v, false, &amount) < 0)
                                goto usage;
                        json_object_object_add(body, strcmp(opt, "--cap") == 0 ? "cap_usec" : "launch_usec",
                                               json_object_new_int64(amount));
                } else if (strcmp(opt, "--mode") == 0) {
                        if (credit_mode_from_string(v) < 0) {
                                log_error("--mode is standard or unlimited");
                                goto usage;
                        }
                        json_object_object_add(body, "mode", json_object_new_string(v));
                } else {
                        log_error("Unknown option \"%s\"", opt);
                        goto usage;
                }
                continue;
        bad_baseline:
                log_error("--baseline is a fraction per vCPU: 0..1 or 0%%..100%%");
                goto usage;
        }
        if (json_object_object_length(body) == 0) {
                log_error("credits set needs at least one of --class, --baseline, --cap, --launch, --mode");
                goto usage;
        }
        snprintf(path, sizeof(path), "/v1/vms/%s/credits", id->str);
        r = ctl_call(c, "PUT", path, body, reply);
        json_object_put(body);
        return r;
usage:
        json_object_put(body);
        return CTL_EXIT_USAGE;
}

int ctl_verb_credits(int argc, char **argv) {
        char *rest[64], path[160];
        struct json_object *reply = NULL;
        CtlCommon c;
        int n = 0, r;
        VmId id, to;
        int64_t amount;

        r = ctl_verb_begin(argc, argv, usage, &c, rest, 2, (int) (sizeof(rest) / sizeof(rest[0])), &n);
        if (r >= 0)
                return r;
        if (ctl_uuid_arg(rest[1], &id) < 0)
                return CTL_EXIT_USAGE;
        if (strcmp(rest[0], "show") == 0 && n == 2) {
                snprintf(path, sizeof(path), "/v1/vms/%s/credits", id.str);
                r = ctl_call(&c, "GET", path, NULL, &reply);
        } else if (strcmp(rest[0], "history") == 0) {
                return ctl_credits_history(&c, &id, rest + 2, n - 2);
        } else if (strcmp(rest[0], "set") == 0) {
                r = set_spec(&c, &id, rest + 2, n - 2, &reply);
        } else if (strcmp(rest[0], "inject") == 0 && n == 3) {
                struct json_object *body;
                if (amount_arg(rest[2], true, &amount) < 0)
                        return CTL_EXIT_USAGE;
                body = json_object_new_object();
                json_object_object_add(body, "amount_usec", json_object_new_int64(amount));
                snprintf(path, sizeof(path), "/v1/vms/%s/credits/inject", id.str);
                r = ctl_call(&c, "POST", path, body, &reply);
                json_object_put(body);
        } else if (strcmp(rest[0], "transfer") == 0 && n == 4) {
                struct json_object *body;
                if (ctl_uuid_arg(rest[2], &to) < 0 || amount_arg(rest[3], false, &amount) < 0)
                        return CTL_EXIT_USAGE;
                body = json_object_new_object();
                json_object_object_add(body, "from", json_object_new_string(id.str));
                json_object_object_add(body, "to", json_object_new_string(to.str));
                json_object_object_add(body, "amount_usec", json_object_new_int64(amount));
                r = ctl_call(&c, "POST", "/v1/credits/transfer", body, &reply);
                json_object_put(body);
                if (r == 0 && !c.json) {
                        char buf[32];
                        cr(buf, sizeof(buf), amount);
                        printf("Moved %s cr from %s to %s\n", buf, id.str, to.str);
                }
                if (r == 0 && c.json)
                        ctl_print_json(reply ? reply : json_object_new_object());
                json_object_put(reply);
                return r;
        } else {
                usage(stderr);
                return CTL_EXIT_USAGE;
        }
        return ctl_verb_end(&c, r, reply, print_credits);
}
