/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/hostinfo.c - what this host offers vmmgr (cgroup mode, controllers,
 * cpu.max.runtime, burst above quota, memory management, how counters are
 * read), as JSON.
 */
#include "vmmgr/api/hostinfo.h"

#include <inttypes.h>
#include <string.h>

static struct json_object *tri_json(Tristate t) {
        return t == TRI_UNKNOWN ? NULL : json_object_new_boolean(t == TRI_YES);
}

static const char *tri_text(Tristate t) {
        return t == TRI_YES ? "yes" : t == TRI_NO ? "no" : "unknown";
}

const char *host_features_credit_bank(const HostFeatures *f) {
        return host_features_kernel_bank(f) ? "kernel" : "emulated";
}

struct json_object *host_features_to_json(const HostFeatures *f, const char *subtree) {
        struct json_object *o = json_object_new_object(), *ctrls, *regions;

        if (!o)
                return NULL;
        json_object_object_add(o, "kernel_release", json_object_new_string(f->kernel_release));
        json_object_object_add(o, "cgroup_mode", json_object_new_string(cg_mode_to_string(f->mode)));
        json_object_object_add(o, "unified_mount",
                               f->unified_mount[0] ? json_object_new_string(f->unified_mount) : NULL);
        json_object_object_add(o, "subtree", json_object_new_string(subtree));
        ctrls = json_object_new_object();
        for (int c = 0; c < _CG_CTRL_MAX; c++) {
                struct json_object *e;

                if (f->controllers[c].version == 0)
                        continue; /* not mounted: absent from the object */
                e = json_object_new_object();
                json_object_object_add(e, "version", json_object_new_int(f->controllers[c].version));
                json_object_object_add(e, "mount", json_object_new_string(f->controllers[c].mount));
                json_object_object_add(e, "managed", json_object_new_boolean(f->controllers[c].managed));
                json_object_object_add(ctrls, cg_controller_to_string(c), e);
        }
        json_object_object_add(o, "controllers", ctrls);
        json_object_object_add(o, "cpu_max_runtime", tri_json(f->cpu_max_runtime));
        json_object_object_add(o, "cpu_max_runtime_v2", tri_json(f->cpu_max_runtime_v2));
        json_object_object_add(o, "burst_above_quota", tri_json(f->burst_above_quota));
        json_object_object_add(o, "burst_note", json_object_new_string(f->burst_note));
        json_object_object_add(o, "credit_bank", json_object_new_string(host_features_credit_bank(f)));
        json_object_object_add(o, "dmem", tri_json(f->dmem));
        json_object_object_add(o, "dmem_high", tri_json(f->dmem_high));
        regions = json_object_new_array();
        for (size_t i = 0; i < f->n_dmem_regions; i++) {
                struct json_object *r = json_object_new_object();
                json_object_object_add(r, "name", json_object_new_string(f->dmem_regions[i].name));
                json_object_object_add(r, "capacity_bytes",
                                       json_object_new_uint64(f->dmem_regions[i].capacity));
                json_object_array_add(regions, r);
        }
        json_object_object_add(o, "dmem_regions", regions);
        json_object_object_add(o, "memory_reclaim", tri_json(f->memory_reclaim));
        json_object_object_add(o, "memory_reclaim_swappiness", tri_json(f->memory_reclaim_swappiness));
        json_object_object_add(o, "psi", tri_json(f->psi));
        json_object_object_add(o, "liveupdate", tri_json(f->liveupdate));
        json_object_object_add(o, "taskstats", tri_json(f->taskstats));
        json_object_object_add(o, "task_delayacct", tri_json(f->task_delayacct));
        json_object_object_add(o, "counter_reads",
                               json_object_new_string(kh_read_path_to_string(f->counter_reads.path)));
        json_object_object_add(o, "io_uring", tri_json(f->counter_reads.io_uring));
        json_object_object_add(o, "counter_reads_note", json_object_new_string(f->counter_reads.note));
        if (f->counter_reads.io_uring_ns || f->counter_reads.pread_ns) {
                struct json_object *ns = json_object_new_object();

                json_object_object_add(ns, "io_uring", json_object_new_uint64(f->counter_reads.io_uring_ns));
                json_object_object_add(ns, "pread", json_object_new_uint64(f->counter_reads.pread_ns));
                json_object_object_add(o, "counter_read_ns", ns);
        } else
                json_object_object_add(o, "counter_read_ns", NULL);
        return o;
}

void host_features_print_table(const HostFeatures *f, const char *subtree, FILE *out) {
        fprintf(out, "%-28s %s\n", "kernel", f->kernel_release[0] ? f->kernel_release : "?");
        fprintf(out, "%-28s %s\n", "cgroup mode", cg_mode_to_string(f->mode));
        fprintf(out, "%-28s %s\n", "cgroup2 mount", f->unified_mount[0] ? f->unified_mount : "-");
        fprintf(out, "%-28s %s\n", "vmmgr subtree", subtree);
        fprintf(out, "\n%-10s %-8s %-8s %s\n", "CONTROLLER", "VERSION", "MANAGED", "MOUNT");
        for (int c = 0; c < _CG_CTRL_MAX; c++) {
                if (f->controllers[c].version == 0)
                        continue;
                fprintf(out, "%-10s v%-7d %-8s %s\n", cg_controller_to_string(c),
                        f->controllers[c].version, f->controllers[c].managed ? "yes" : "no",
                        f->controllers[c].mount);
        }
        fprintf(out, "\n%-28s %s\n", "cpu.max.runtime", tri_text(f->cpu_max_runtime));
        fprintf(out, "%-28s %s\n", "cpu.max.runtime keeps bank", tri_text(f->cpu_max_runtime_v2));
        fprintf(out, "%-28s %s%s%s%s\n", "burst above quota", tri_text(f->burst_above_quota),
                f->burst_note[0] ? " (" : "", f->burst_note, f->burst_note[0] ? ")" : "");
        fprintf(out, "%-28s %s\n", "credit bank", host_features_credit_bank(f));
        fprintf(out, "%-28s %s\n", "memory.reclaim", tri_text(f->memory_reclaim));
        fprintf(out, "%-28s %s\n", "memory.reclaim swappiness=", tri_text(f->memory_reclaim_swappiness));
        fprintf(out, "%-28s %s\n", "PSI", tri_text(f->psi));
        fprintf(out, "%-28s %s\n", "/dev/liveupdate (LUO)", tri_text(f->liveupdate));
        fprintf(out, "%-28s %s\n", "taskstats", tri_text(f->taskstats));
        fprintf(out, "%-28s %s\n", "kernel.task_delayacct", tri_text(f->task_delayacct));
        fprintf(out, "%-28s %s\n", "io_uring", tri_text(f->counter_reads.io_uring));
        fprintf(out, "%-28s %s (%s)\n", "counter reads", kh_read_path_to_string(f->counter_reads.path),
                f->counter_reads.note);
        fprintf(out, "%-28s %s\n", "dmem", tri_text(f->dmem));
        fprintf(out, "%-28s %s\n", "dmem.high", tri_text(f->dmem_high));
        for (size_t i = 0; i < f->n_dmem_regions; i++)
                fprintf(out, "  %-26s %" PRIu64 " bytes\n", f->dmem_regions[i].name,
                        f->dmem_regions[i].capacity);
}
