/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrd - the vmmgr daemon (see vmmgr/daemon.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-journal.h>

#include "common/log.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "vmmgr/daemon/daemon.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrd [OPTIONS]\n"
              "\n"
              "The vmmgr daemon: binds QEMU VMs' threads to cgroups, runs their CPU credit\n"
              "banks, keeps its state in SQLite and serves the vmmgr API.\n"
              "\n"
              "Options:\n"
              "      --config FILE       Configuration file (default: built-in defaults;\n"
              "                          format in vmmgr/daemon/config.h and docs/vmmgrd.md)\n"
              "      --foreground        Accepted and ignored: vmmgrd always stays in the\n"
              "                          foreground (it never forks; under systemd use\n"
              "                          Type=notify)\n"
              "      --state-dir DIR     Database directory (default /var/lib/vmmgr)\n"
              "      --socket PATH       API UNIX socket (default /run/vmmgr/vmmgr.sock)\n"
              "      --subtree NAME      vmmgr's group in each hierarchy (default vmmgr.slice)\n"
              "      --controllers LIST  Controllers vmmgr may manage, comma-separated\n"
              "      --log-level LEVEL   err, warning, notice, info (default) or debug\n"
              "      --log-target TARGET auto (default): the journal, with structured fields,\n"
              "                          when stderr is the unit's journal stream, else\n"
              "                          stderr; or journal, or stderr\n"
              "      --log-ratelimit N/SECONDS\n"
              "                          At most N messages per SECONDS from one call site\n"
              "                          about one VM (default 10/30), or off\n"
              "      --remove-subtree-on-exit\n"
              "                          On exit, remove vmmgr's (empty) subtree: for demos\n"
              "                          and tests, not for hosts whose VMs outlive the daemon\n"
              "  -h, --help              Show this help\n"
              "      --version           Show the version\n"
              "\n"
              "Signals: SIGTERM/SIGINT stop accepting, answer the API requests under way,\n"
              "commit state and exit, leaving VMs running with their limits; SIGHUP reloads\n"
              "the configuration (credit classes and timings).\n"
              "\n"
              "Under systemd, sockets passed with LISTEN_FDS (vmmgrd.socket, the fd store)\n"
              "are served instead of bound: restarts refuse no request (docs/vmmgrd.md).\n",
              out);
}

/* Every API connection is a descriptor, and so is every VM's QMP socket:
 * the soft limit (often 1024) is raised towards the hard one, up to
 * FD_WANT.  vmmgrd uses epoll, never select(), so fds past 1024 are fine;
 * nothing it starts inherits the limit (it starts no processes).  The API
 * sizes its connection limit from what this leaves (vmmgr/api.h). */
#define FD_WANT 65536

static void raise_fd_limit(void) {
        struct rlimit rl;
        rlim_t want;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_WANT ? FD_WANT : rl.rlim_max;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
                rlim_t old = rl.rlim_cur;

                rl.rlim_cur = want;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        log_warning_errno(negative_errno(), "Cannot raise RLIMIT_NOFILE from %llu: %m",
                                          (unsigned long long) old);
                else
                        log_debug("RLIMIT_NOFILE raised from %llu to %llu", (unsigned long long) old,
                                  (unsigned long long) want);
        }
}

int main(int argc, char **argv) {
        enum { OPT_CONFIG = 0x100, OPT_FOREGROUND, OPT_STATE_DIR, OPT_SOCKET, OPT_SUBTREE, OPT_CONTROLLERS,
               OPT_LOG_LEVEL, OPT_LOG_TARGET, OPT_LOG_RATELIMIT, OPT_VERSION, OPT_REMOVE_SUBTREE };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "config", required_argument, NULL, OPT_CONFIG },
                { "foreground", no_argument, NULL, OPT_FOREGROUND },
                { "state-dir", required_argument, NULL, OPT_STATE_DIR },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "subtree", required_argument, NULL, OPT_SUBTREE },
                { "controllers", required_argument, NULL, OPT_CONTROLLERS },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "log-target", required_argument, NULL, OPT_LOG_TARGET },
                { "log-ratelimit", required_argument, NULL, OPT_LOG_RATELIMIT },
                { "remove-subtree-on-exit", no_argument, NULL, OPT_REMOVE_SUBTREE },
                {},
        };
        DaemonOptions opts = { 0 };
        Daemon *d = NULL;
        int c, r;

        /* vmmgrd logs to the journal natively when it is there (common/
         * does not link libsystemd: the sender is given here). */
        log_set_journal_send(sd_journal_sendv);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        puts("vmmgrd " VMMGR_VERSION);
                        return 0;
                case OPT_CONFIG:
                        opts.config_path = optarg;
                        break;
                case OPT_FOREGROUND:
                        /* The only way vmmgrd runs; kept so that unit files
                         * and scripts written for daemons that fork work. */
                        break;
                case OPT_STATE_DIR:
                        opts.state_dir = optarg;
                        break;
                case OPT_SOCKET:
                        opts.socket_path = optarg;
                        break;
                case OPT_SUBTREE:
                        opts.subtree = optarg;
                        break;
                case OPT_CONTROLLERS: {
                        const char *bad = NULL;
                        if (cg_controller_mask_from_string(optarg, &opts.controllers, &bad) < 0) {
                                log_error("Unknown controller in --controllers: \"%s\"", bad ? bad : optarg);
                                return 2;
                        }
                        break;
                }
                case OPT_REMOVE_SUBTREE:
                        opts.remove_subtree_on_exit = true;
                        break;
                case OPT_LOG_LEVEL:
                        r = log_parse_level(optarg);
                        if (r < 0) {
                                log_error("Unknown log level \"%s\"", optarg);
                                return 2;
                        }
                        log_set_max_level(r);
                        break;
                case OPT_LOG_TARGET:
                        r = log_parse_target(optarg);
                        if (r < 0) {
                                log_error("Unknown log target \"%s\" (auto, journal or stderr)", optarg);
                                return 2;
                        }
                        log_set_target(r);
                        break;
                case OPT_LOG_RATELIMIT: {
                        uint64_t interval;
                        unsigned burst;

                        if (log_parse_ratelimit(optarg, &interval, &burst) < 0) {
                                log_error("--log-ratelimit takes N/SECONDS (1..1000000 per 1..86400 s) or off, "
                                          "not \"%s\"", optarg);
                                return 2;
                        }
                        log_set_ratelimit(interval, burst);
                        break;
                }
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc) {
                log_error("vmmgrd takes no arguments (got \"%s\")", argv[optind]);
                return 2;
        }
        raise_fd_limit();
        r = daemon_new(&opts, &d);
        if (r < 0)
                return 1; /* the cause is logged */
        r = daemon_run(d);
        daemon_free(d);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        return 0;
}
