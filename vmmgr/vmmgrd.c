/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrd - the vmmgr daemon.
 *
 * What it does today: open the host's cgroup hierarchies, set up vmmgr's
 * subtree, report the feature probe, and wait for SIGTERM/SIGINT.  The
 * event loop, state, API and credit engine arrive with issue "daemon".
 * On exit it leaves the subtree and every VM group in place: VMs keep
 * running and keep their limits while the daemon restarts.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "kernel/kernel.h"
#include "vmmgr/hostinfo.h"

static void usage(FILE *out) {
        fputs("Usage: vmmgrd [OPTIONS]\n"
              "\n"
              "The vmmgr daemon: binds QEMU VMs' threads to cgroups and runs their CPU\n"
              "credit banks.\n"
              "\n"
              "Options:\n"
              "      --foreground        Stay in the foreground, log to stderr (default for now)\n"
              "      --subtree NAME      vmmgr's group in each hierarchy (default vmmgr.slice)\n"
              "      --controllers LIST  Controllers vmmgr may manage (see vmmgrctl host-info --help)\n"
              "      --log-level LEVEL   err, warning, notice, info (default) or debug\n"
              "  -h, --help              Show this help\n"
              "      --version           Show the version\n",
              out);
}

static int wait_for_termination(void) {
        struct signalfd_siginfo si;
        sigset_t mask;
        int fd;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        fd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = read(fd, &si, sizeof(si));
                if (n < 0 && errno == EINTR)
                        continue;
                close(fd);
                if (n != (ssize_t) sizeof(si))
                        return n < 0 ? negative_errno() : -EIO;
                log_info("Received %s, exiting; VM groups stay in place", strsignal((int) si.ssi_signo));
                return 0;
        }
}

int main(int argc, char **argv) {
        enum { OPT_FOREGROUND = 0x100, OPT_SUBTREE, OPT_CONTROLLERS, OPT_LOG_LEVEL, OPT_VERSION };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "foreground", no_argument, NULL, OPT_FOREGROUND },
                { "subtree", required_argument, NULL, OPT_SUBTREE },
                { "controllers", required_argument, NULL, OPT_CONTROLLERS },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                {},
        };
        _cleanup_khost_ KHost *h = NULL;
        KHostConfig cfg = { 0 };
        HostFeatures f;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        puts("vmmgrd " VMMGR_VERSION);
                        return 0;
                case OPT_FOREGROUND:
                        break;
                case OPT_SUBTREE:
                        cfg.subtree = optarg;
                        break;
                case OPT_CONTROLLERS: {
                        const char *bad = NULL;
                        if (cg_controller_mask_from_string(optarg, &cfg.controllers, &bad) < 0) {
                                log_error("Unknown controller in --controllers: \"%s\"", bad ? bad : optarg);
                                return 2;
                        }
                        break;
                }
                case OPT_LOG_LEVEL:
                        r = log_parse_level(optarg);
                        if (r < 0) {
                                log_error("Unknown log level \"%s\"", optarg);
                                return 2;
                        }
                        log_set_max_level(r);
                        break;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc) {
                log_error("vmmgrd takes no arguments (got \"%s\")", argv[optind]);
                return 2;
        }

        r = kh_open(&cfg, &h);
        if (r < 0)
                return log_error_errno(r, "Failed to open the host's cgroup hierarchies: %m"), 1;
        r = kh_subtree_setup(h);
        if (r == -EOPNOTSUPP)
                return log_error_errno(r, "A controller vmmgr manages is not delegated to its subtree "
                                          "\"%s\" (see vmmgrctl host-info): %m", kh_subtree_name(h)), 1;
        if (r < 0)
                return log_error_errno(r, "Failed to set up the subtree \"%s\": %m", kh_subtree_name(h)), 1;
        r = kh_probe(h, &f);
        if (r < 0)
                return log_error_errno(r, "Failed to probe the host: %m"), 1;
        log_info("vmmgrd %s: cgroup mode %s, cpu on v%d, credit bank %s (%s)", VMMGR_VERSION,
                 cg_mode_to_string(f.mode), f.controllers[CG_CTRL_CPU].version,
                 host_features_credit_bank(&f), f.burst_note);
        host_features_done(&f);

        r = wait_for_termination();
        if (r < 0)
                return log_error_errno(r, "Failed waiting for signals: %m"), 1;
        return 0;
}
