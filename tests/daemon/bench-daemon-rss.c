/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench suite: the daemon's resident memory with 1,000 VMs.  The real
 * daemon code (daemon_new with its database and API listener) runs on the
 * kernel model (stock cgroup v2), 1,000 VMs are registered through the
 * test seam daemon_add_model_vm() (one vCPU thread each, demand 0 %, 30 %
 * or 100 %), ticked until every VM has its history ring, and their
 * ledgers committed.  Prints VmRSS of this process and the growth per VM.
 *
 * The growth includes the kernel model's own simulated cgroup tree for
 * the 1,000 VMs (memory the kernel, not vmmgrd, holds on a real host), so
 * the per-VM figure is an upper bound for the daemon's share.
 * No root needed: a temporary state dir and socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/model/kmodel.h"
#include "vmmgr/daemon/daemon.h"

#define N_VMS 1000
#define TICK_USEC (100 * 1000)
#define TICKS 16 /* 1.5 s */

/* VmRSS of this process in kB, or a negative errno. */
static long rss_kb(void) {
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        long kb = -ENOENT;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "VmRSS:", 6) == 0) {
                        char *end;
                        errno = 0;
                        kb = strtol(line + 6, &end, 10);
                        if (errno != 0 || end == line + 6 || kb < 0)
                                kb = -EBADMSG;
                        break;
                }
        fclose(f);
        return kb;
}

static size_t heap_bytes(void) {
        struct mallinfo2 mi = mallinfo2();
        return mi.uordblks + mi.hblkhd;
}

/* The kernel model's own share: heap a second model takes for the same
 * 1,000 VM groups with one process and one vCPU thread each, with no
 * daemon.  Returns bytes, or 0 if it could not be measured. */
static size_t model_share_bytes(void) {
        KModel *m = NULL;
        KHost *h = NULL;
        size_t h0 = heap_bytes(), h1 = 0;

        if (km_new(&(KModelConfig) { .mode = CG_MODE_UNIFIED }, &m) < 0 ||
            kh_open_model(m, &(KHostConfig) { .subtree = "vmmgr.slice" }, &h) < 0 || kh_subtree_setup(h) < 0)
                goto out;
        for (int i = 0; i < N_VMS; i++) {
                char s[VM_ID_STRLEN + 1];
                pid_t pid = km_process_new(m), vcpu = pid > 0 ? km_thread_new(m, pid) : pid;
                VmId id;

                snprintf(s, sizeof(s), "00000000-0000-4000-8000-%012d", i);
                if (vcpu < 0 || vm_id_parse(s, &id) < 0 || kh_vm_create(h, &id) < 0 ||
                    kh_vm_attach_process(h, &id, pid) < 0 || kh_vm_attach_thread(h, &id, CG_ROLE_VCPUS, vcpu) < 0)
                        goto out;
        }
        h1 = heap_bytes();
out:
        kh_free(h);
        km_free(m);
        return h1 > h0 ? h1 - h0 : 0;
}

int main(void) {
        char dir[] = "/tmp/vmmgr-rss-XXXXXX", state[128], sock[128], cmd[160];
        static const uint32_t demand_ppm[] = { 0, 300000, 1000000 };
        KModel *m = NULL;
        KHost *host = NULL;
        Daemon *d = NULL;
        long before, after;
        size_t with_history = 0, samples = 0;
        int r, ok = 0;

        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(sock, sizeof(sock), "%s/api.sock", dir);

        r = km_new(&(KModelConfig) { .mode = CG_MODE_UNIFIED }, &m);
        if (r < 0) {
                fprintf(stderr, "km_new: %s\n", strerror(-r));
                goto out;
        }
        r = kh_open_model(m, &(KHostConfig) { .subtree = "vmmgr.slice" }, &host);
        if (r < 0) {
                fprintf(stderr, "kh_open_model: %s\n", strerror(-r));
                goto out;
        }
        r = daemon_new(&(DaemonOptions) { .host = host, .state_dir = state, .socket_path = sock,
                                          .subtree = "vmmgr.slice" },
                       &d);
        if (r < 0) {
                fprintf(stderr, "daemon_new: %s\n", strerror(-r));
                goto out;
        }
        before = rss_kb();

        for (int i = 0; i < N_VMS; i++) {
                char s[VM_ID_STRLEN + 1];
                pid_t pid, vcpu;
                VmId id;

                snprintf(s, sizeof(s), "00000000-0000-4000-8000-%012d", i);
                if (vm_id_parse(s, &id) < 0) {
                        fprintf(stderr, "bad id %s\n", s);
                        goto out;
                }
                pid = km_process_new(m);
                vcpu = pid > 0 ? km_thread_new(m, pid) : pid;
                if (pid < 0 || vcpu < 0) {
                        fprintf(stderr, "VM %d: no model process: %s\n", i, strerror(-(pid < 0 ? pid : vcpu)));
                        goto out;
                }
                r = km_thread_set_demand(m, vcpu, demand_ppm[i % 3]);
                if (r == 0)
                        r = daemon_add_model_vm(d, &id, pid, vcpu, NULL);
                if (r < 0) {
                        fprintf(stderr, "VM %s: %s\n", id.str, strerror(-r));
                        goto out;
                }
        }

        /* The first tick samples every bank into its history (a VM with
         * no sample is due at once), which allocates the whole ring; the
         * ring never grows after that.  Banks and history run on the real
         * monotonic clock, so the ticks are paced in real time (1.5 s: a
         * second history sample and regular bank looks), with the model's
         * clock moved by the same amount. */
        for (int t = 0; t < TICKS; t++) {
                if (t > 0)
                        usleep(TICK_USEC);
                km_advance(m, TICK_USEC);
                daemon_tick_now(d);
        }
        r = daemon_commit_ledgers(d, true);
        if (r < 0) {
                fprintf(stderr, "commit: %s\n", strerror(-r));
                goto out;
        }
        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i]->history) {
                        with_history++;
                        samples += d->vms[i]->history_n;
                }
        if (d->n_vms != N_VMS || with_history != N_VMS) {
                fprintf(stderr, "%zu VMs, %zu with a history ring (want %d)\n", d->n_vms, with_history, N_VMS);
                goto out;
        }
        after = rss_kb();
        if (before < 0 || after < 0) {
                fprintf(stderr, "cannot read VmRSS: %s\n", strerror(-(before < 0 ? before : after)));
                goto out;
        }

        printf("%d VMs on the kernel model, %" PRIu64 " ticks, %zu history samples, %" PRIu64
               " commit(s); VmRSS %ld kB before, %ld kB after\n",
               N_VMS, d->stats.ticks, samples, d->stats.commits, before, after);
        /* Not a figure: what part of the growth is the model's, not the daemon's. */
        printf("of which the kernel model's simulated groups: about %.1f kB per VM (heap)\n",
               (double) model_share_bytes() / 1024.0 / N_VMS);
        printf("figure: daemon.rss_1000vm_mb %.1f MB\n", (double) after / 1024.0);
        printf("figure: daemon.rss_per_vm_kb %.1f kB\n", (double) (after - before) / N_VMS);
        ok = 1;
out:
        daemon_free(d);
        km_free(m);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void) !system(cmd);
        return ok ? 0 : 1;
}
