/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrctl - command-line client of vmmgr.
 *
 * Verbs that need no daemon (host-info) work directly on the host; the
 * others talk to vmmgrd over its UNIX socket (issue "daemon").
 * Exit codes: 0 success, 1 operation failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "kernel/kernel.h"
#include "qmp/qmp.h"
#include "vmmgr/ctl/ctl.h"
#include "vmmgr/api/hostinfo.h"

#define EXIT_USAGE 2

static void usage_main(FILE *out) {
        fputs("Usage: vmmgrctl [OPTIONS] VERB [VERB OPTIONS]\n"
              "\n"
              "Control vmmgr, the per-host manager of burstable QEMU/KVM VMs.\n"
              "\n"
              "Verbs:\n"
              "  vm list|show|add|remove      Registered VMs (through vmmgrd)\n"
              "  credits show|set|inject|transfer\n"
              "                               A VM's CPU credits (through vmmgrd)\n"
              "  memory show|priority         A VM's memory: limits, reclaim, delays (through vmmgrd)\n"
              "  events                       vmmgrd's event history\n"
              "  migration start|status|cancel|export|import|reply\n"
              "                               A VM's credits across a live migration (through vmmgrd)\n"
              "  live-update prepare|status|abort\n"
              "                               Every VM's credits across a host kexec (through vmmgrd)\n"
              "  top                          A live view of every VM's credits and CPU\n"
              "  host-info                    What this host's kernel offers vmmgr (no daemon needed)\n"
              "  qmp                          One QMP command on a QEMU monitor socket (no daemon needed)\n"
              "\n"
              "Options:\n"
              "  -h, --help         Show this help (VERB --help for a verb's options)\n"
              "      --version      Show the version\n"
              "  -v, --verbose      Log debug messages to stderr\n"
              "\n"
              "Verbs that talk to vmmgrd take --socket PATH (default $VMMGR_SOCKET, else\n"
              "/run/vmmgr/vmmgr.sock) and --json.\n"
              "\n"
              "Exit status: 0 success, 1 the operation failed, 2 usage error, 3 unknown VM,\n"
              "4 conflicting state, 5 input refused by the daemon, 69 vmmgrd not reachable.\n",
              out);
}

static void usage_host_info(FILE *out) {
        fputs("Usage: vmmgrctl host-info [--json] [--subtree NAME] [--controllers LIST]\n"
              "\n"
              "Probe the host: cgroup mode (unified, hybrid or legacy), where each\n"
              "controller is mounted and whether vmmgr manages it, whether the kernel\n"
              "has cpu.max.runtime and accepts a CFS burst above the quota, dmem\n"
              "regions, memory.reclaim, PSI, taskstats and delay accounting.\n"
              "\n"
              "Probes that need a write run in a scratch group under vmmgr's subtree\n"
              "and are removed afterwards (needs root; without it those answers are\n"
              "\"unknown\").  Works without the daemon.\n"
              "\n"
              "Options:\n"
              "      --json              Print one JSON object (keys: docs/host-info.md)\n"
              "      --subtree NAME      vmmgr's group in each hierarchy (default vmmgr.slice)\n"
              "      --controllers LIST  Controllers vmmgr may manage, comma-separated\n"
              "                          (default: cpu,cpuacct; plus cpuset,memory,io,pids,\n"
              "                          dmem where they are on cgroup v2)\n"
              "  -h, --help              Show this help\n",
              out);
}

static int verb_host_info(int argc, char **argv) {
        enum { OPT_JSON = 0x100, OPT_SUBTREE, OPT_CONTROLLERS };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, OPT_JSON },
                { "subtree", required_argument, NULL, OPT_SUBTREE },
                { "controllers", required_argument, NULL, OPT_CONTROLLERS },
                {},
        };
        _cleanup_khost_ KHost *h = NULL;
        KHostConfig cfg = { 0 };
        HostFeatures f;
        bool json = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage_host_info(stdout);
                        return 0;
                case OPT_JSON:
                        json = true;
                        break;
                case OPT_SUBTREE:
                        cfg.subtree = optarg;
                        break;
                case OPT_CONTROLLERS: {
                        const char *bad = NULL;
                        if (cg_controller_mask_from_string(optarg, &cfg.controllers, &bad) < 0) {
                                log_error("Unknown controller in --controllers: \"%s\"", bad ? bad : optarg);
                                return EXIT_USAGE;
                        }
                        break;
                }
                default:
                        usage_host_info(stderr);
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                log_error("host-info takes no arguments (got \"%s\")", argv[optind]);
                return EXIT_USAGE;
        }

        r = kh_open(&cfg, &h);
        if (r == -EINVAL && cfg.subtree) {
                log_error("Invalid --subtree \"%s\": use one name of letters, digits, '.', '_' or '-'",
                          cfg.subtree);
                return EXIT_USAGE;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to open the host's cgroup hierarchies: %m");
                return EXIT_FAILURE;
        }
        r = kh_probe(h, &f);
        if (r < 0) {
                log_error_errno(r, "Failed to probe the host: %m");
                return EXIT_FAILURE;
        }
        if (json) {
                struct json_object *o = host_features_to_json(&f, kh_subtree_name(h));
                if (!o) {
                        host_features_done(&f);
                        log_error_errno(-ENOMEM, "Failed to build the JSON report: %m");
                        return EXIT_FAILURE;
                }
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else
                host_features_print_table(&f, kh_subtree_name(h), stdout);
        host_features_done(&f);
        return 0;
}

static void usage_qmp(FILE *out) {
        fputs("Usage: vmmgrctl qmp [--timeout SECONDS] SOCKET COMMAND [ARGS-JSON]\n"
              "\n"
              "Connect to a QEMU QMP socket, negotiate capabilities, run COMMAND with\n"
              "the arguments object ARGS-JSON (e.g. '{\"value\": 1073741824}'), and print\n"
              "the \"return\" value as JSON on stdout.  On a QMP error, prints its class\n"
              "and description on stderr.  Whatever the peer does, it finishes within\n"
              "the timeout.  Works without the daemon.\n"
              "\n"
              "Options:\n"
              "      --timeout SECONDS   Overall time limit (default 5)\n"
              "  -h, --help              Show this help\n"
              "\n"
              "Exit status: 0 success, 1 QMP error or connection failure, 2 usage error.\n",
              out);
}

static int verb_qmp(int argc, char **argv) {
        enum { OPT_TIMEOUT = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                {},
        };
        _cleanup_free_ char *reason = NULL, *ret_json = NULL;
        QmpError err = { 0 };
        Qmp *q = NULL;
        int timeout_s = 5, c, r;
        uint64_t deadline;
        const char *args = NULL;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage_qmp(stdout);
                        return 0;
                case OPT_TIMEOUT:
                        if (parse_int_range(optarg, 1, 3600, &timeout_s) < 0) {
                                log_error("Invalid --timeout \"%s\": a whole number of seconds, 1..3600", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                default:
                        usage_qmp(stderr);
                        return EXIT_USAGE;
                }
        if (argc - optind < 2 || argc - optind > 3) {
                usage_qmp(stderr);
                return EXIT_USAGE;
        }
        if (argc - optind == 3)
                args = argv[optind + 2];
        deadline = now_msec() + (uint64_t) timeout_s * 1000;
        r = qmp_connect_sync(argv[optind], timeout_s * 1000, &q, &reason);
        if (r < 0) {
                log_error_errno(r, "Cannot talk QMP on %s: %s", argv[optind], reason ? reason : strerror(-r));
                return EXIT_FAILURE;
        }
        {
                uint64_t now = now_msec();
                int left = now < deadline ? (int) (deadline - now) : 1;
                r = qmp_execute_sync(q, argv[optind + 1], args, left, &ret_json, &err);
        }
        if (r == -EREMOTEIO) {
                log_error("QMP error %s: %s", err.error_class ? err.error_class : "?", err.desc ? err.desc : "");
                qmp_error_done(&err);
                qmp_free(q);
                return EXIT_FAILURE;
        }
        if (r == -EINVAL && args) {
                log_error("ARGS-JSON must be a JSON object: %s", args);
                qmp_free(q);
                return EXIT_USAGE;
        }
        if (r < 0) {
                const char *why = qmp_get_close_reason(q);
                log_error_errno(r, "%s failed: %s", argv[optind + 1], why ? why : strerror(-r));
                qmp_free(q);
                return EXIT_FAILURE;
        }
        puts(ret_json ? ret_json : "{}");
        qmp_free(q);
        return 0;
}

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
} verbs[] = {
        { "host-info", verb_host_info },
        { "qmp", verb_qmp },
        { "vm", ctl_verb_vm },
        { "credits", ctl_verb_credits },
        { "memory", ctl_verb_memory },
        { "events", ctl_verb_events },
        { "top", ctl_verb_top },
        { "migration", ctl_verb_migration },
        { "live-update", ctl_verb_live_update },
};

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        int c;

        /* '+': stop at the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+hv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage_main(stdout);
                        return 0;
                case 'V':
                        puts("vmmgrctl " VMMGR_VERSION);
                        return 0;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                default:
                        usage_main(stderr);
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                usage_main(stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (strcmp(argv[optind], verbs[i].name) == 0)
                        return verbs[i].run(argc - optind, argv + optind);
        log_error("Unknown verb \"%s\"; see vmmgrctl --help", argv[optind]);
        return EXIT_USAGE;
}
