/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/cgparse.h - pure parsers and formatters for cgroup and /proc
 * file contents.  No I/O: they take the text a file held and return typed
 * values, so they are tested with hostile input without a kernel.
 *
 * Errors: -EBADMSG for content that does not have the file's format
 * (garbage, truncation, missing keys the caller requires, duplicate
 * keys), -ERANGE for numbers that overflow, -ENOBUFS when a formatted
 * value does not fit the caller's buffer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/kernel.h"

/* One value file: "N\n" or "max\n" (max -> UINT64_MAX). */
int cg_parse_u64_or_max(const char *text, uint64_t *ret);
/* One signed value file: "N\n" or "-1\n" (v1 cfs_quota_us). */
int cg_parse_i64(const char *text, int64_t *ret);

/* Flat-keyed files ("key value\n" lines: cpu.stat, memory.stat,
 * memory.events).  For each key in `keys` found, stores the value in
 * values[i] and sets bit i of *ret_found.  Unknown keys are skipped (the
 * kernel adds keys over time); malformed lines and duplicates are errors. */
int cg_parse_flat_keyed(const char *text, const char *const *keys, size_t n_keys,
                        uint64_t *values, uint64_t *ret_found);

/* cpu.max: "QUOTA PERIOD\n" or "max PERIOD\n". */
int cg_parse_cpu_max(const char *text, uint64_t *ret_quota_usec, uint64_t *ret_period_usec);
/* Formats "QUOTA PERIOD" / "max PERIOD". */
int cg_format_cpu_max(char *buf, size_t size, uint64_t quota_usec, uint64_t period_usec);

/* cpu.stat on v2 (usec) or v1 (throttled_time/burst_time in ns). */
int cg_parse_cpu_stat(const char *text, CgVersion version, CpuStat *ret);

/* /proc/<pid>/task/<tid>/schedstat: "RUN_NS WAIT_NS SLICES\n". */
int cg_parse_schedstat(const char *text, uint64_t *ret_run_nsec);

/* PSI: "some avg10=... avg60=... avg300=... total=N\n[full ...]\n". */
int cg_parse_psi(const char *text, Psi *ret);

/* /proc/meminfo: MemTotal and MemAvailable, in bytes ("N kB" lines; the
 * other lines are skipped).  -EBADMSG when either is missing or bad. */
int cg_parse_meminfo(const char *text, uint64_t *ret_total, uint64_t *ret_available);

/* /proc/<pid>/cgroup: the path of the line for one hierarchy, from its
 * mount root without the leading '/' ("" for the root).  A v2 hierarchy
 * is the "0::" line; a v1 one the line whose controller list shares a
 * controller with `controllers` (a CG_CTRL_BIT mask).  -ENOENT when no
 * line matches, -EBADMSG for a malformed line or a path that is not
 * absolute, -ENAMETOOLONG when it does not fit. */
int cg_parse_proc_cgroup(const char *text, CgVersion version, uint32_t controllers, char *buf, size_t size);
/* cgroup.procs / cgroup.threads / tasks: one id per line; *ret malloc'd. */
int cg_parse_pid_list(const char *text, pid_t **ret, size_t *ret_n);

typedef enum CgType {
        CG_TYPE_DOMAIN,
        CG_TYPE_THREADED,
        CG_TYPE_DOMAIN_THREADED,
        CG_TYPE_DOMAIN_INVALID,
} CgType;
int cg_parse_cgroup_type(const char *text, CgType *ret);

/* cgroup.controllers / subtree_control: space-separated names -> mask of
 * known controllers (unknown names are ignored: newer kernels add some). */
int cg_parse_controller_list(const char *text, uint32_t *ret_mask);

/* dmem.capacity/current/min/low/max/high: "<region> <bytes|max>\n" lines.
 * *ret is a malloc'd array of (name, value) pairs. */
typedef struct DmemEntry {
        char name[DMEM_REGION_NAME_MAX];
        uint64_t value;
} DmemEntry;
int cg_parse_dmem(const char *text, DmemEntry **ret, size_t *ret_n);
/* A region name as dmem prints it: printable, no whitespace, bounded. */
bool cg_dmem_region_name_valid(const char *s);

/* memory.reclaim request: "BYTES" or "BYTES swappiness=S". */
int cg_format_reclaim(char *buf, size_t size, uint64_t bytes, int swappiness);
