/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The feature probe: what this host's kernel offers vmmgr.
 *
 * Some answers need a write (does the kernel accept burst > quota? does
 * memory.reclaim take swappiness=?).  Those run in a scratch group
 * "probe-<pid>" under vmmgr's subtree, removed before returning; if the
 * subtree itself did not exist, it is removed too, so a probe leaves the
 * host as it found it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/cgparse.h"
#include "kernel/khost.h"

#define NOTE_BURST_REJECTED "kernel rejects burst above quota"
#define NOTE_BURST_ACCEPTED "kernel accepts burst above quota"
#define NOTE_NO_BURST "kernel has no CFS burst (before 5.14)"

static void set_note(HostFeatures *f, const char *s) {
        snprintf(f->burst_note, sizeof(f->burst_note), "%s", s);
}

static void probe_layout(KHost *h, HostFeatures *f) {
        f->mode = h->layout.mode;
        snprintf(f->unified_mount, sizeof(f->unified_mount), "%s", h->layout.unified_mount);
        for (int c = 0; c < _CG_CTRL_MAX; c++) {
                int i = h->ctrl_hier[c];
                if (i < 0)
                        continue;
                f->controllers[c].version = h->layout.hier[i].version;
                f->controllers[c].managed = h->layout.hier[i].managed & CG_CTRL_BIT(c);
                snprintf(f->controllers[c].mount, sizeof(f->controllers[c].mount), "%s",
                         h->layout.hier[i].mount);
        }
}

static void probe_host_files(KHost *h, HostFeatures *f) {
        char buf[512];
        size_t len;
        int r;

        r = h->ops->read_host_file(h->be, KHOST_FILE_OSRELEASE, buf, sizeof(buf), &len);
        if (r == 0) {
                if (len > 0 && buf[len - 1] == '\n')
                        buf[len - 1] = '\0';
                snprintf(f->kernel_release, sizeof(f->kernel_release), "%s", buf);
        }
        /* With psi=0 the files exist but reading them fails (EOPNOTSUPP). */
        r = h->ops->read_host_file(h->be, KHOST_FILE_PSI_MEMORY, buf, sizeof(buf), NULL);
        if (r == 0) {
                Psi p;
                f->psi = cg_parse_psi(buf, &p) == 0 ? TRI_YES : TRI_UNKNOWN;
        } else
                f->psi = TRI_NO;
        r = h->ops->read_host_file(h->be, KHOST_FILE_TASK_DELAYACCT, buf, sizeof(buf), NULL);
        if (r == 0)
                f->task_delayacct = strcmp(buf, "1\n") == 0 ? TRI_YES : TRI_NO;
        else
                f->task_delayacct = r == -ENOENT ? TRI_NO : TRI_UNKNOWN;
        r = h->ops->taskstats_available(h->be);
        f->taskstats = r > 0 ? TRI_YES : r == 0 ? TRI_NO : TRI_UNKNOWN;
        /* A device node, not a cgroup or /proc file: asked of this
         * machine directly (a kernel model has no devices to offer). */
        if (access("/dev/liveupdate", F_OK) == 0)
                f->liveupdate = TRI_YES;
        else
                f->liveupdate = errno == ENOENT ? TRI_NO : TRI_UNKNOWN;
}

/* Does the kernel take a burst larger than the quota?  Stock kernels
 * refuse (tg_set_cfs_bandwidth: burst > quota -> EINVAL). */
static void probe_burst(KHost *h, unsigned hier, const char *scratch, HostFeatures *f) {
        bool v2 = h->layout.hier[hier].version == CG_V2;
        const char *burst_file = v2 ? "cpu.max.burst" : "cpu.cfs_burst_us";
        int r;

        if (h->ops->exists(h->be, hier, scratch, burst_file) != 1) {
                f->burst_above_quota = TRI_NO;
                set_note(f, NOTE_NO_BURST);
                return;
        }
        r = v2 ? kh_write(h, hier, scratch, "cpu.max", "1000 100000", false)
               : kh_write(h, hier, scratch, "cpu.cfs_quota_us", "1000", false);
        if (r < 0) {
                f->burst_above_quota = TRI_UNKNOWN;
                snprintf(f->burst_note, sizeof(f->burst_note), "could not set a quota: %s",
                         strerror(-r));
                return;
        }
        r = kh_write(h, hier, scratch, burst_file, "5000", false);
        if (r == 0) {
                f->burst_above_quota = TRI_YES;
                set_note(f, NOTE_BURST_ACCEPTED);
        } else if (r == -EINVAL) {
                f->burst_above_quota = TRI_NO;
                set_note(f, NOTE_BURST_REJECTED);
        } else {
                f->burst_above_quota = TRI_UNKNOWN;
                snprintf(f->burst_note, sizeof(f->burst_note), "burst write failed: %s", strerror(-r));
        }
}

/* Which cpu.max.runtime this is.  With the scratch group at a 1 ms quota
 * and a 5 ms burst (probe_burst()), v2 of the series takes a value above
 * the 6 ms cap and saturates (reading back 6000); v1 refused it (EINVAL).
 * Saturating writes came with the read that is the balance and with idle
 * periods credited, so this one write tells whether the kernel keeps the
 * bank itself. */
static void probe_runtime_v2(KHost *h, unsigned hier, const char *scratch, HostFeatures *f) {
        char buf[64];
        uint64_t v;
        int r;

        if (f->cpu_max_runtime != TRI_YES || f->burst_above_quota != TRI_YES) {
                f->cpu_max_runtime_v2 = f->cpu_max_runtime == TRI_NO ? TRI_NO : TRI_UNKNOWN;
                return;
        }
        r = kh_write(h, hier, scratch, "cpu.max.runtime", "1000000", false);
        if (r == -EINVAL) {
                f->cpu_max_runtime_v2 = TRI_NO;
                return;
        }
        if (r == 0)
                r = kh_read(h, hier, scratch, "cpu.max.runtime", buf, sizeof(buf));
        if (r == 0)
                r = cg_parse_u64_or_max(buf, &v);
        f->cpu_max_runtime_v2 = r < 0 ? TRI_UNKNOWN : v <= 6000 ? TRI_YES : TRI_NO;
}

bool host_features_kernel_bank(const HostFeatures *f) {
        return f->cpu_max_runtime == TRI_YES && f->cpu_max_runtime_v2 == TRI_YES && f->burst_above_quota == TRI_YES;
}

static void probe_memory(KHost *h, const char *scratch, HostFeatures *f) {
        unsigned hier;
        int r;

        f->memory_reclaim = f->memory_reclaim_swappiness = TRI_UNKNOWN;
        if (kh_managed_hier(h, CG_CTRL_MEMORY, &hier) < 0 || h->layout.hier[hier].version != CG_V2)
                return; /* we may not look at a memcg we don't manage */
        r = h->ops->exists(h->be, hier, scratch, "memory.reclaim");
        f->memory_reclaim = r == 1 ? TRI_YES : TRI_NO;
        if (r != 1) {
                f->memory_reclaim_swappiness = TRI_NO;
                return;
        }
        /* Reclaiming 0 bytes is a no-op that still parses the options. */
        r = kh_write(h, hier, scratch, "memory.reclaim", "0 swappiness=60", false);
        f->memory_reclaim_swappiness = r == 0 ? TRI_YES : r == -EINVAL ? TRI_NO : TRI_UNKNOWN;
}

static void probe_dmem(KHost *h, const char *scratch, HostFeatures *f) {
        unsigned hier;

        f->dmem = h->ctrl_hier[CG_CTRL_DMEM] >= 0 ? TRI_YES : TRI_NO;
        f->dmem_high = TRI_NO;
        if (kh_managed_hier(h, CG_CTRL_DMEM, &hier) < 0)
                return;
        if (kh_dmem_regions(h, &f->dmem_regions, &f->n_dmem_regions) < 0) {
                f->dmem_regions = NULL;
                f->n_dmem_regions = 0;
        }
        f->dmem_high = h->ops->exists(h->be, hier, scratch, "dmem.high") == 1 ? TRI_YES : TRI_NO;
}

int kh_probe(KHost *h, HostFeatures *ret) {
        HostFeatures f = {
                .cpu_max_runtime = TRI_UNKNOWN,
                .cpu_max_runtime_v2 = TRI_UNKNOWN,
                .burst_above_quota = TRI_UNKNOWN,
                .dmem = TRI_UNKNOWN,
                .dmem_high = TRI_UNKNOWN,
                .memory_reclaim = TRI_UNKNOWN,
                .memory_reclaim_swappiness = TRI_UNKNOWN,
                .psi = TRI_UNKNOWN,
                .taskstats = TRI_UNKNOWN,
                .task_delayacct = TRI_UNKNOWN,
        };
        bool had_subtree[_CG_CTRL_MAX + 1] = { false };
        char scratch[64];
        unsigned cpu_hier;
        bool have_scratch = false;
        int r;

        probe_layout(h, &f);
        probe_host_files(h, &f);
        snprintf(scratch, sizeof(scratch), "probe-%d", (int) getpid());

        for (size_t i = 0; i < h->layout.n_hier; i++)
                had_subtree[i] = h->ops->exists(h->be, (unsigned) i, "", NULL) == 1;
        r = kh_subtree_setup(h);
        if (r == 0) {
                have_scratch = true;
                for (size_t i = 0; i < h->layout.n_hier; i++) {
                        if (!h->layout.hier[i].managed)
                                continue;
                        r = h->ops->mkdir(h->be, (unsigned) i, scratch);
                        if (r < 0 && r != -EEXIST)
                                have_scratch = false;
                }
        } else
                snprintf(f.burst_note, sizeof(f.burst_note), "cannot set up %s: %s", h->subtree,
                         strerror(-r));

        if (have_scratch && kh_managed_hier(h, CG_CTRL_CPU, &cpu_hier) == 0) {
                bool v2 = h->layout.hier[cpu_hier].version == CG_V2;
                f.cpu_max_runtime = v2 && h->ops->exists(h->be, cpu_hier, scratch, "cpu.max.runtime") == 1
                                            ? TRI_YES
                                            : TRI_NO;
                probe_burst(h, cpu_hier, scratch, &f);
                probe_runtime_v2(h, cpu_hier, scratch, &f);
        } else if (kh_controller_version(h, CG_CTRL_CPU) == 0) {
                f.cpu_max_runtime = f.cpu_max_runtime_v2 = f.burst_above_quota = TRI_NO;
                set_note(&f, "no cpu controller");
        }
        if (have_scratch) {
                probe_memory(h, scratch, &f);
                probe_dmem(h, scratch, &f);
        } else
                f.dmem = h->ctrl_hier[CG_CTRL_DMEM] >= 0 ? TRI_YES : TRI_NO;

        /* Batched counter reads: io_uring, and whether it pays here. */
        (void) kh_read_probe(h, KH_READ_AUTO, &f.counter_reads);

        /* Leave the host as we found it. */
        for (size_t i = 0; i < h->layout.n_hier; i++) {
                if (!h->layout.hier[i].managed)
                        continue;
                (void) h->ops->rmdir(h->be, (unsigned) i, scratch);
                if (!had_subtree[i])
                        (void) h->ops->rmdir(h->be, (unsigned) i, "");
        }
        *ret = f;
        return 0;
}

void host_features_done(HostFeatures *f) {
        free(f->dmem_regions);
        f->dmem_regions = NULL;
        f->n_dmem_regions = 0;
}
