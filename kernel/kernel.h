/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/kernel.h - vmmgr's only way to the host kernel.
 *
 * Nothing outside kernel/ builds a cgroup path or parses a kernel file.
 * Callers name things: a VM (by validated VmId), a thread role inside it,
 * a typed value.  This layer maps them to hierarchies, groups and files.
 *
 * A KHost is opened on one of two backends with the same behaviour:
 *   - kh_open():       the real host; mounts found with libcgroup, files
 *                      opened beneath vmmgr's subtree with openat2(2)
 *                      RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS.
 *   - kh_open_model(): the deterministic kernel model (kernel/model/kmodel.h,
 *                      a library only tests and benches link), which
 *                      speaks the same file formats and errors.
 *
 * Layout, per managed hierarchy (default subtree name "vmmgr.slice"):
 *   <mount>/vmmgr.slice/vm-<uuid>/            memory, dmem, pids (v2 domain)
 *   <mount>/vmmgr.slice/vm-<uuid>/vcpus/      cpu for vCPU threads
 *   <mount>/vmmgr.slice/vm-<uuid>/emulator/   cpu for QEMU's other threads
 *   <mount>/vmmgr.slice/vm-<uuid>/io/         cpu for iothreads
 * On v2 the three role groups are threaded (cgroup.type = threaded) and
 * the VM group is their threaded domain.  On v1 the same directories exist
 * in every managed hierarchy and threads are placed one by one via "tasks".
 *
 * Errors are negative errno values.  Where the kernel's raw errno would
 * mislead, a specific one is used and documented at the function:
 *   -EOPNOTSUPP  the controller or file is not available/managed here
 *   -EBADMSG     a kernel file had content we cannot parse
 *   -EINVAL      a value the kernel (or the model) refused
 *   -ENOENT      no such VM group
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/vmid.h"

/* ---- host layout ----------------------------------------------------- */

typedef enum CgVersion {
        CG_V1 = 1,
        CG_V2 = 2,
} CgVersion;

typedef enum CgMode {
        CG_MODE_NONE,    /* no cgroup filesystem found */
        CG_MODE_LEGACY,  /* v1 only */
        CG_MODE_HYBRID,  /* v1 controllers plus a cgroup2 mount */
        CG_MODE_UNIFIED, /* cgroup2 only */
} CgMode;

typedef enum CgController {
        CG_CTRL_CPU,
        CG_CTRL_CPUACCT, /* v1 only; on v2 its job is done by cpu.stat */
        CG_CTRL_CPUSET,
        CG_CTRL_MEMORY,
        CG_CTRL_IO, /* v1: blkio */
        CG_CTRL_PIDS,
        CG_CTRL_HUGETLB,
        CG_CTRL_DMEM,
        _CG_CTRL_MAX,
} CgController;

#define CG_CTRL_BIT(c) (UINT32_C(1) << (c))

const char *cg_controller_to_string(CgController c);
/* Accepts v1 names too ("blkio" is CG_CTRL_IO). -EINVAL if unknown. */
int cg_controller_from_string(const char *s);
const char *cg_mode_to_string(CgMode m);
/* "cpu,cpuacct,memory" -> CG_CTRL_BIT mask; -EINVAL naming nothing or an
 * unknown controller (*ret_bad, if given, points at it inside s). */
int cg_controller_mask_from_string(const char *s, uint32_t *ret_mask, const char **ret_bad);

typedef enum CgRole {
        CG_ROLE_VM,       /* the VM group itself */
        CG_ROLE_VCPUS,    /* vCPU threads */
        CG_ROLE_EMULATOR, /* every other QEMU thread */
        CG_ROLE_IO,       /* iothreads */
        _CG_ROLE_MAX,
} CgRole;

const char *cg_role_to_string(CgRole r); /* "vm", "vcpus", "emulator", "io" */
int cg_role_from_string(const char *s);

#define CG_PATH_MAX 4096

typedef struct CgHierarchyInfo {
        CgVersion version;
        uint32_t controllers; /* CG_CTRL_BIT mask of what is mounted here */
        uint32_t managed;     /* the subset vmmgr manages here */
        char mount[CG_PATH_MAX];
} CgHierarchyInfo;

typedef struct KHostConfig {
        /* Name of vmmgr's own group in each hierarchy; a single safe path
         * component.  NULL means "vmmgr.slice". */
        const char *subtree;
        /* CG_CTRL_BIT mask of controllers vmmgr may manage.  0 means the
         * default: cpu, cpuacct, cpuset, pids on any version; memory, io,
         * hugetlb and dmem only on cgroup v2.  A v1 memory hierarchy is
         * never managed unless listed here explicitly. */
        uint32_t controllers;
} KHostConfig;

#define KH_DEFAULT_SUBTREE "vmmgr.slice"

typedef struct KHost KHost;

int kh_open(const KHostConfig *cfg, KHost **ret);
KHost *kh_free(KHost *h);
/* true for a host opened with kh_open() on this machine's cgroups, false
 * for a stand-in (the kernel model): test seams that may move no real
 * process ask it. */
bool kh_is_real(const KHost *h);
static inline void kh_freep(KHost **h) {
        if (*h)
                kh_free(*h);
}
#define _cleanup_khost_ __attribute__((cleanup(kh_freep)))

CgMode kh_mode(const KHost *h);
size_t kh_hierarchies(const KHost *h, const CgHierarchyInfo **ret);
/* The cgroup2 mount even when it holds no controller (hybrid hosts); NULL if none. */
const char *kh_unified_mount(const KHost *h);
bool kh_manages(const KHost *h, CgController c);
CgVersion kh_controller_version(const KHost *h, CgController c); /* 0 if not mounted */
const char *kh_subtree_name(const KHost *h);

/* Creates vmmgr's subtree in every hierarchy that holds a managed controller
 * and, on v2, enables the managed controllers for its children.  Idempotent.
 * -EOPNOTSUPP with a clear reason if the parent does not delegate a managed
 * v2 controller. */
int kh_subtree_setup(KHost *h);
/* Removes the subtree where it is empty; -EBUSY if VM groups remain. */
int kh_subtree_remove(KHost *h);

/* ---- VM groups ------------------------------------------------------- */

/* Creates vm-<uuid> and its role groups in every managed hierarchy.
 * Returns 1 when everything already existed (adoption after a restart:
 * nothing is rewritten), 0 when anything was created. */
int kh_vm_create(KHost *h, const VmId *vm);
/* Removes the VM's groups bottom-up; -EBUSY while threads remain. */
int kh_vm_remove(KHost *h, const VmId *vm);
/* 1 if the VM group exists, 0 if not. */
int kh_vm_exists(KHost *h, const VmId *vm);
/* The VMs whose groups exist under the subtree (ignores foreign names). */
int kh_vm_list(KHost *h, VmId **ret, size_t *ret_n);

/* Moves a whole process into the VM: on v2 into the VM's threaded domain
 * and then every thread into the emulator group; on v1 every thread into
 * emulator.  Threads that exit meanwhile are skipped. */
int kh_vm_attach_process(KHost *h, const VmId *vm, pid_t pid);
/* Moves one thread of a process already attached into a role group.
 * -ESRCH if the thread is gone.  Idempotent. */
int kh_vm_attach_thread(KHost *h, const VmId *vm, CgRole role, pid_t tid);
/* Thread ids in one role group (of the first hierarchy that holds cpu,
 * else the first managed one).  *ret is malloc'd. */
int kh_vm_threads(KHost *h, const VmId *vm, CgRole role, pid_t **ret, size_t *ret_n);

/* ---- VMs in another manager's groups (libvirt) ------------------------
 * libvirt creates a group per domain and places each of its threads in a
 * child: vcpu<N>, emulator, iothread<N> ("machine/qemu-1-web.libvirt-qemu"
 * without systemd; "machine.slice/machine-qemu\x2d1\x2dweb.scope/libvirt"
 * with it).  vmmgr registers such a VM as foreign: from then on every
 * typed call on it (cpu.c, memory.c, dmem.c) addresses libvirt's groups,
 * and nothing creates, removes or moves threads there (kh_vm_create,
 * kh_vm_remove and kh_vm_attach_* answer -EPERM).  The role groups of a
 * foreign VM:
 *   CG_ROLE_VM, CG_ROLE_VCPUS  the domain group (the credit bank's
 *                              bandwidth and usage cover the whole domain;
 *                              memory lives there on v2)
 *   CG_ROLE_EMULATOR           <domain>/emulator
 *   CG_ROLE_IO                 no single group: its files are -EOPNOTSUPP
 * kh_vm_threads() answers by role from the children's names.
 * `domain` is a path from each hierarchy's mount root without the leading
 * '/', the same in every hierarchy (libvirt names it so); never vmmgr's
 * own subtree (-EINVAL).  Setting it again replaces it. */
int kh_vm_set_foreign(KHost *h, const VmId *vm, const char *domain);
/* How many groups of `role` libvirt made for it: vcpu<N> (one per vCPU;
 * threads a vCPU thread starts land in its group too, so counting threads
 * would not do), iothread<N>.  -ENOENT if it is not foreign. */
int kh_vm_foreign_role_groups(KHost *h, const VmId *vm, CgRole role);
/* Forgets it (nothing on disk changes); -ENOENT if it was not foreign. */
int kh_vm_forget_foreign(KHost *h, const VmId *vm);
/* The domain group of a foreign VM; NULL for vmmgr's own. */
const char *kh_vm_foreign_group(const KHost *h, const VmId *vm);
/* The group a thread is in, in the hierarchy of controller c
 * (/proc/<tid>/cgroup): from the mount root, without the leading '/'.
 * -ESRCH: no such thread; -EOPNOTSUPP: c is not mounted. */
int kh_thread_group(KHost *h, CgController c, pid_t tid, char *buf, size_t size);

/* ---- processes ------------------------------------------------------- */

/* Thread ids of a process (/proc/<pid>/task).  *ret is malloc'd. */
int kh_process_threads(KHost *h, pid_t pid, pid_t **ret, size_t *ret_n);
/* CPU time a thread has run, from /proc/<pid>/task/<tid>/schedstat. */
int kh_thread_cpu_usec(KHost *h, pid_t pid, pid_t tid, uint64_t *ret_usec);

/* ---- CPU bandwidth --------------------------------------------------- */

#define CPU_QUOTA_MAX UINT64_MAX /* "max" / -1: no limit */

/* Version-neutral CFS bandwidth.  Written as cpu.max + cpu.max.burst on
 * v2 and cpu.cfs_{period,quota,burst}_us on v1. */
typedef struct CpuBandwidth {
        uint64_t period_usec;
        uint64_t quota_usec; /* CPU_QUOTA_MAX for unlimited */
        uint64_t burst_usec;
} CpuBandwidth;

/* Writes period/quota/burst in an order the kernel accepts: quota before
 * burst when the quota grows, burst before quota when it shrinks.  Each
 * write of quota or burst refills one quota and unthrottles (kernel
 * behaviour): callers that keep a ledger count it.
 * -EINVAL with *ret_reason = "kernel rejects burst above quota" when that
 * is why the kernel refused (ret_reason may be NULL). */
int kh_cpu_set_bandwidth(KHost *h, const VmId *vm, CgRole role, const CpuBandwidth *bw,
                         const char **ret_reason);
int kh_cpu_get_bandwidth(KHost *h, const VmId *vm, CgRole role, CpuBandwidth *ret);

/* cpu.max.runtime (patched kernels only; -EOPNOTSUPP elsewhere). */
int kh_cpu_get_runtime(KHost *h, const VmId *vm, CgRole role, uint64_t *ret_usec);
int kh_cpu_set_runtime(KHost *h, const VmId *vm, CgRole role, uint64_t runtime_usec);
/* Relative write "+N"/"-N", applied atomically by the kernel. */
int kh_cpu_adjust_runtime(KHost *h, const VmId *vm, CgRole role, int64_t delta_usec);

enum {
        CPU_STAT_USAGE = 1u << 0,
        CPU_STAT_USER_SYSTEM = 1u << 1,
        CPU_STAT_PERIODS = 1u << 2, /* nr_periods, nr_throttled, throttled_usec */
        CPU_STAT_BURSTS = 1u << 3,  /* nr_bursts, burst_usec */
};

typedef struct CpuStat {
        unsigned have; /* CPU_STAT_* bits for what the kernel reported */
        uint64_t usage_usec;
        uint64_t user_usec;
        uint64_t system_usec;
        uint64_t nr_periods;
        uint64_t nr_throttled;
        uint64_t throttled_usec;
        uint64_t nr_bursts;
        uint64_t burst_usec;
} CpuStat;

/* cpu.stat of a group; on v1 usage comes from cpuacct.usage when cpuacct
 * is managed, else from the sum of the group's threads' schedstat. */
int kh_cpu_read_stat(KHost *h, const VmId *vm, CgRole role, CpuStat *ret);

/* A cpu.stat reader for hot loops: keeps the file(s) open and re-reads
 * with one pread(2) each, instead of open/read/close.  Same result as
 * kh_cpu_read_stat() (on v1 without cpuacct it falls back to that).
 * Opened while the host has a read batch (kh_read_batch_new), its files
 * attach to it: reads queued with kh_cpu_stat_reader_queue() are done by
 * the batch's next run and taken by the next read calls below.  A group
 * removed under a reader reads -ENOENT. */
typedef struct KhCpuStatReader KhCpuStatReader;
int kh_cpu_stat_reader_open(KHost *h, const VmId *vm, CgRole role, KhCpuStatReader **ret);
int kh_cpu_stat_reader_read(KhCpuStatReader *r, CpuStat *ret);
/* Usage only: on v1 one pread (cpuacct.usage) instead of two, for looks
 * that need no throttling counters (a group without a quota cannot be
 * throttled); on v2 cpu.stat holds both, so it is the same read. */
int kh_cpu_stat_reader_read_usage(KhCpuStatReader *r, uint64_t *ret_usec);
/* Keeps the group's cpu.max.runtime open too (the kernel bank reads it
 * every look).  -EOPNOTSUPP where there is no such file (stock kernels,
 * v1): kh_cpu_stat_reader_read_runtime() then answers as
 * kh_cpu_get_runtime() does. */
int kh_cpu_stat_reader_open_runtime(KhCpuStatReader *r);
/* cpu.max.runtime through the kept-open file, else kh_cpu_get_runtime(). */
int kh_cpu_stat_reader_read_runtime(KhCpuStatReader *r, uint64_t *ret_usec);
/* What a look will read, for the batch's next run (nothing for files
 * that are not kept open or not attached: those are read when asked). */
enum {
        KH_CPU_READ_USAGE = 1u << 0,   /* kh_cpu_stat_reader_read_usage() */
        KH_CPU_READ_STAT = 1u << 1,    /* kh_cpu_stat_reader_read() */
        KH_CPU_READ_RUNTIME = 1u << 2, /* kh_cpu_stat_reader_read_runtime() */
};
void kh_cpu_stat_reader_queue(KhCpuStatReader *r, unsigned what);
KhCpuStatReader *kh_cpu_stat_reader_free(KhCpuStatReader *r);

/* ---- memory (cgroup v2 memcg; -EOPNOTSUPP where memory is not managed) */

#define MEM_MAX UINT64_MAX /* "max" */

typedef struct Psi {
        /* avg in hundredths of a percent (avg10=1.23 -> 123), total in usec */
        uint32_t some_avg10, some_avg60, some_avg300;
        uint64_t some_total_usec;
        uint32_t full_avg10, full_avg60, full_avg300;
        uint64_t full_total_usec;
        bool has_full;
} Psi;

typedef struct MemStat {
        uint64_t current, peak;     /* bytes; peak = 0 where absent */
        uint64_t max, high, low, min, swap_max, swap_current; /* MEM_MAX = "max" */
        /* memory.stat (bytes / counts) */
        uint64_t anon, file, kernel, shmem, file_mapped;
        uint64_t workingset_refault_anon, workingset_refault_file;
        uint64_t pgscan, pgsteal, pgmajfault;
        /* memory.events */
        uint64_t ev_low, ev_high, ev_max, ev_oom, ev_oom_kill;
        Psi pressure;
} MemStat;

int kh_mem_read(KHost *h, const VmId *vm, MemStat *ret);

enum {
        MEM_SET_MAX = 1u << 0,
        MEM_SET_HIGH = 1u << 1,
        MEM_SET_LOW = 1u << 2,
        MEM_SET_MIN = 1u << 3,
        MEM_SET_SWAP_MAX = 1u << 4,
};

typedef struct MemLimits {
        unsigned set; /* MEM_SET_* bits: which fields to write */
        uint64_t max, high, low, min, swap_max;
} MemLimits;

/* Writes the selected limits (with O_NONBLOCK where the kernel honours it,
 * so lowering memory.max does not make us reclaim synchronously) and
 * reads them back into *ret_applied (may be NULL). */
int kh_mem_set_limits(KHost *h, const VmId *vm, const MemLimits *lim, MemLimits *ret_applied);

/* memory.reclaim: asks the kernel to reclaim `bytes` from the VM group.
 * swappiness < 0: not passed.  -EAGAIN: the kernel reclaimed less than
 * asked (partial progress).  -EOPNOTSUPP: no memory.reclaim, or the kernel
 * refused "swappiness=". */
int kh_mem_reclaim(KHost *h, const VmId *vm, uint64_t bytes, int swappiness);

/* memory.min and memory.low of vmmgr's subtree itself.  With
 * memory_recursiveprot (systemd mounts cgroup2 with it) a VM's protection
 * holds against reclaim from outside the subtree only as far as the
 * subtree's own reaches, so it must be at least the VMs' sums. */
int kh_subtree_set_mem_protection(KHost *h, uint64_t min, uint64_t low);

/* memory.current of a VM group through a kept-open file (one pread a
 * read), for checks frequent enough that opening the file each time would
 * cost more than the check.  -ENOENT when the group does not exist. */
typedef struct KhMemCurrentReader KhMemCurrentReader;
int kh_mem_current_reader_open(KHost *h, const VmId *vm, KhMemCurrentReader **ret);
int kh_mem_current_reader_read(KhMemCurrentReader *r, uint64_t *ret);
/* Queues the next read for the host's read batch (see KhCpuStatReader). */
void kh_mem_current_reader_queue(KhMemCurrentReader *r);
KhMemCurrentReader *kh_mem_current_reader_free(KhMemCurrentReader *r);

/* The host's memory: MemTotal, and what is in use (MemTotal -
 * MemAvailable: what the host could not get back without swapping or
 * reclaiming harder), in bytes, from /proc/meminfo.  -EOPNOTSUPP where the
 * backend has no such file. */
int kh_host_memory(KHost *h, uint64_t *ret_total, uint64_t *ret_used);

/* ---- pressure (PSI) ------------------------------------------------------ */

typedef enum PsiResource {
        PSI_CPU,
        PSI_MEMORY,
        PSI_IO,
} PsiResource;

/* A PSI trigger on the VM group's <resource>.pressure: poll(2) the returned
 * fd for POLLPRI, which the kernel raises when tasks stalled for
 * `stall_usec` within any `window_usec` ("full": all tasks at once, else
 * "some").  The trigger lives as long as the fd (close it).  The kernel
 * takes windows of 500 ms..10 s and a stall no longer than the window:
 * -EINVAL otherwise.  -EOPNOTSUPP without PSI or on the model. */
int kh_psi_trigger_open(KHost *h, const VmId *vm, PsiResource resource, bool full, uint64_t stall_usec,
                        uint64_t window_usec);

/* ---- device memory (dmem, cgroup v2) ---------------------------------- */

#define DMEM_REGION_NAME_MAX 128

typedef struct DmemRegion {
        char name[DMEM_REGION_NAME_MAX]; /* e.g. "drm/0000:03:00.0/vram0" */
        uint64_t capacity;               /* bytes */
        uint64_t current, min, low, max, high; /* this group's values; MEM_MAX = "max" */
} DmemRegion;

typedef enum DmemLimit {
        DMEM_LIMIT_MIN,
        DMEM_LIMIT_LOW,
        DMEM_LIMIT_MAX,
        DMEM_LIMIT_HIGH, /* kernels with dmem.high only */
} DmemLimit;

/* The host's regions from dmem.capacity at the hierarchy root. */
int kh_dmem_regions(KHost *h, DmemRegion **ret, size_t *ret_n);
/* The VM's per-region values (capacity copied from the root). */
int kh_dmem_read(KHost *h, const VmId *vm, DmemRegion **ret, size_t *ret_n);
/* Writes one "<region> <bytes|max>" line and reads back what applied;
 * -ERANGE if the kernel kept a different value (kernels before 7.3 accept
 * a max below usage without applying it). */
int kh_dmem_set(KHost *h, const VmId *vm, const char *region, DmemLimit which, uint64_t bytes);

/* ---- feature probe --------------------------------------------------- */

typedef enum Tristate {
        TRI_UNKNOWN = -1,
        TRI_NO = 0,
        TRI_YES = 1,
} Tristate;

#define PROBE_NOTE_MAX 256

/* How counter files are read in a batch (below). */
typedef enum KhReadPath {
        KH_READ_PATH_PREAD,    /* one pread(2) per file */
        KH_READ_PATH_IO_URING, /* one io_uring_enter per batch */
} KhReadPath;

/* The operator's switch ([daemon] io_uring in vmmgrd.conf). */
typedef enum KhReadMode {
        KH_READ_AUTO,     /* io_uring where usable and cheaper than pread here */
        KH_READ_IO_URING, /* io_uring wherever usable */
        KH_READ_PREAD,    /* never io_uring */
} KhReadMode;

const char *kh_read_path_to_string(KhReadPath p); /* "pread", "io_uring" */
const char *kh_read_mode_to_string(KhReadMode m); /* "auto", "yes", "no" */

/* What the io_uring probe found.  Usable: not switched off by
 * kernel.io_uring_disabled (2; with 1 the ring's set-up decides), a ring
 * set up, a counter file registered, and reads of it completed inline
 * (on kernels that hand them to io_uring's worker threads instead, a
 * batch would wait for those threads).  Then, in KH_READ_AUTO, the CPU
 * of a read is measured both ways on that file (the process's CPU time,
 * the cheapest of 5 trials of 32 reads) and the cheaper path is taken. */
typedef struct KhReadProbe {
        Tristate io_uring;    /* usable for counter reads */
        KhReadPath path;      /* what the mode picks */
        uint64_t io_uring_ns; /* CPU per read, as measured (0: not measured) */
        uint64_t pread_ns;
        char note[PROBE_NOTE_MAX]; /* why, in words */
} KhReadProbe;

typedef struct HostFeatures {
        CgMode mode;
        char unified_mount[CG_PATH_MAX];
        struct {
                CgVersion version; /* 0: not mounted */
                bool managed;
                char mount[CG_PATH_MAX];
        } controllers[_CG_CTRL_MAX];
        Tristate cpu_max_runtime;       /* cpu.max.runtime exists */
        /* cpu.max.runtime as in v2 of vmmgr's series: writes saturate at
         * [0, quota + burst] (v1 refused a value above the cap), and with
         * them came a read that is the balance and idle periods credited,
         * so the kernel's pool is a bank that keeps itself. */
        Tristate cpu_max_runtime_v2;
        Tristate burst_above_quota;     /* kernel accepts burst > quota */
        char burst_note[PROBE_NOTE_MAX]; /* e.g. "kernel rejects burst above quota" */
        Tristate dmem;                  /* dmem controller present */
        Tristate dmem_high;
        DmemRegion *dmem_regions;       /* malloc'd; free with host_features_done() */
        size_t n_dmem_regions;
        Tristate memory_reclaim;
        Tristate memory_reclaim_swappiness;
        Tristate psi;
        Tristate taskstats;
        Tristate task_delayacct;        /* kernel.task_delayacct */
        /* /dev/liveupdate: the Live Update Orchestrator (Linux 6.19+), which
         * could carry vmmgr's record across a kexec (docs/live-update.md). */
        Tristate liveupdate;
        /* Batched counter reads: the probe in KH_READ_AUTO (vmmgrd puts
         * what its configuration made of it here). */
        KhReadProbe counter_reads;
        char kernel_release[128];
} HostFeatures;

/* Fills *ret.  Probes that need a write (burst above quota, swappiness)
 * run in a scratch group under vmmgr's subtree that is removed before the
 * function returns.  Never fails for a missing feature: that is reported
 * as TRI_NO; fails only for errors that make the report untrustworthy. */
int kh_probe(KHost *h, HostFeatures *ret);
/* Whether the kernel can keep the credit bank: cpu.max.runtime (v2) and a
 * burst above the quota.  Otherwise vmmgr keeps it (the emulated bank). */
bool host_features_kernel_bank(const HostFeatures *f);
void host_features_done(HostFeatures *f);

/* ---- batched counter reads ------------------------------------------- */

/* A credit tick reads small counter files of many groups: cpu.stat (and
 * cpuacct.usage on v1), cpu.max.runtime, memory.current.  The readers
 * above keep them open; a KhReadBatch, at most one per KHost, reads all
 * the reads queued on them in one go: through io_uring (every file
 * registered with one ring; one io_uring_enter submits all the reads and
 * their completions are reaped from the ring) where the probe allows,
 * else one pread(2) each.  A reader's next read takes its batched
 * result, so the code that uses the counters is the same on either path
 * and for a read nobody queued.  Writes never go through it.
 *
 * A run never waits on a peer: reading a cgroup file is kernel work
 * under kernfs and cgroup locks, the same work pread does, and the probe
 * takes io_uring only where it completes such reads inline.  Should a
 * read still be pending after the submit, the run waits for it (bounded
 * kernel work, counted in KhReadBatchStats.waits).
 *
 * Usage, per tick: queue the reads of every look that is due, run, let
 * each look take its counters, discard what nobody took.  A batch and the
 * readers attached to it belong to one thread (vmmgrd's loop). */
typedef struct KhReadBatch KhReadBatch;

/* Probes as the batch would (a ring set up and torn down again). */
int kh_read_probe(KHost *h, KhReadMode mode, KhReadProbe *ret);
/* Creates the host's batch after probing for `mode`; *ret_probe (may be
 * NULL) gets the answer.  Readers opened from now on attach to it.
 * -EBUSY if the host has one. */
int kh_read_batch_new(KHost *h, KhReadMode mode, KhReadBatch **ret, KhReadProbe *ret_probe);
/* Readers still attached go on, one read at a time.  Free it before
 * the KHost. */
KhReadBatch *kh_read_batch_free(KhReadBatch *b);
static inline void kh_read_batch_freep(KhReadBatch **b) {
        if (*b)
                kh_read_batch_free(*b);
}
#define _cleanup_read_batch_ __attribute__((cleanup(kh_read_batch_freep)))
/* The host's batch, or NULL. */
KhReadBatch *kh_read_batch(KHost *h);
KhReadPath kh_read_batch_path(const KhReadBatch *b);
void kh_read_batch_probe_result(const KhReadBatch *b, KhReadProbe *ret);
/* Switches the path (tests, benches): -EOPNOTSUPP for io_uring where
 * the batch has no ring (not usable here, or made with KH_READ_PREAD);
 * -EBUSY between queueing and the run. */
int kh_read_batch_set_path(KhReadBatch *b, KhReadPath p);
/* Reads everything queued since the last run; returns how many reads.
 * Never fails: a read that fails is that reader's error when it takes
 * it, and a ring that fails is dropped for pread (for good; the probe
 * result's note says so). */
int kh_read_batch_run(KhReadBatch *b);
/* Drops the results nobody took (a later read reads afresh). */
void kh_read_batch_discard(KhReadBatch *b);

typedef struct KhReadBatchStats {
        uint64_t runs;         /* runs with reads in them */
        uint64_t reads;        /* reads they did */
        uint64_t syscalls;     /* io_uring_enter calls and preads they made */
        uint64_t waits;        /* io_uring runs that had to wait for a read */
        uint64_t ring_errors;  /* io_uring failures (then pread) */
        uint64_t unregistered; /* files attached without a ring slot (read by fd) */
} KhReadBatchStats;
void kh_read_batch_stats(const KhReadBatch *b, KhReadBatchStats *ret);

/* ---- per-thread delay accounting (taskstats) --------------------------- */

/* What a thread waited for, from the kernel's taskstats over generic
 * netlink (TASKSTATS_CMD_GET for one thread id).  Times in ns, counts are
 * numbers of waits.  Values are cumulative since the thread started; the
 * kernel wraps a *_delay_ns to 0 on overflow (a zero total with a
 * non-zero count means that happened).
 *
 * Two sources with different rules:
 *   - cpu_count, cpu_delay_ns (runnable but waiting for a CPU) and the
 *     run times come from the scheduler's own counters (sched_info,
 *     sum_exec_runtime, utime/stime) and are reported whatever
 *     kernel.task_delayacct says (kernels >= 5.14);
 *   - block I/O, swap-in, direct reclaim, thrashing, compaction and
 *     write-protect copy delays are counted only for threads created while
 *     kernel.task_delayacct was 1: the kernel gives a thread its delay
 *     record at fork and never later.  Switching it on afterwards does not
 *     help a running VM (see kh_delayacct_set()).
 * `have` says which fields the kernel's struct taskstats carries (its
 * version and length); fields it lacks are 0. */
enum {
        THREAD_DELAYS_CPU = 1u << 0,       /* cpu_*, blkio_*, swapin_* (version 1) */
        THREAD_DELAYS_FREEPAGES = 1u << 1, /* version 7 */
        THREAD_DELAYS_THRASHING = 1u << 2, /* version 9 */
        THREAD_DELAYS_COMPACT = 1u << 3,   /* version 11 */
        THREAD_DELAYS_WPCOPY = 1u << 4,    /* version 13 */
};

typedef struct ThreadDelays {
        unsigned have;         /* THREAD_DELAYS_* bits */
        unsigned version;      /* the kernel's TASKSTATS_VERSION (for sums: the lowest seen) */
        /* kernel.task_delayacct when the stats were read; TRI_UNKNOWN on
         * kernels without the sysctl (before 5.14: on unless booted with
         * nodelayacct).  TRI_YES does not prove the memory and I/O delays
         * are counted for a thread that is older than the switch. */
        Tristate delayacct;
        uint64_t cpu_run_real_ns;    /* utime + stime */
        uint64_t cpu_run_virtual_ns; /* sum_exec_runtime, as schedstat's first field */
        uint64_t cpu_count;          /* times it ran on a CPU */
        uint64_t cpu_delay_ns;       /* runnable, waiting for a CPU */
        uint64_t blkio_count, blkio_delay_ns;         /* synchronous block I/O */
        uint64_t swapin_count, swapin_delay_ns;       /* swap-in page faults */
        uint64_t freepages_count, freepages_delay_ns; /* direct reclaim (memory.high/max included) */
        uint64_t thrashing_count, thrashing_delay_ns; /* refaulting pages just evicted */
        uint64_t compact_count, compact_delay_ns;     /* direct compaction */
        uint64_t wpcopy_count, wpcopy_delay_ns;       /* copy-on-write faults */
} ThreadDelays;

/* A taskstats client kept open: one generic netlink socket, resolved once
 * to the TASKSTATS family, for any number of queries.  Real host only (the
 * kernel model has no threads to ask about).  Not for concurrent use from
 * several threads: give each its own.
 * -EOPNOTSUPP when the kernel has no TASKSTATS family (CONFIG_TASKSTATS
 * off) or no generic netlink. */
typedef struct KTaskstats KTaskstats;
int kh_taskstats_open(KTaskstats **ret);
KTaskstats *kh_taskstats_free(KTaskstats *t);
static inline void kh_taskstats_freep(KTaskstats **t) {
        if (*t)
                kh_taskstats_free(*t);
}
#define _cleanup_taskstats_ __attribute__((cleanup(kh_taskstats_freep)))

/* One thread's delays (tid as seen in the caller's pid namespace).
 * -ESRCH: no such thread (gone); -EBADMSG: a reply we cannot parse;
 * -ETIMEDOUT: no reply within 5 s; -EINVAL: tid <= 0. */
int kh_taskstats_thread(KTaskstats *t, pid_t tid, ThreadDelays *ret);

/* Sum over the threads of a VM's role group (kh_vm_threads(): for
 * CG_ROLE_VM only the threads in the VM group itself, not in its role
 * groups).  Threads that exit during the walk are left out, not errors;
 * *ret_threads (may be NULL) is the number summed.  `have` and `version`
 * are those every summed thread had (0 with no thread: all fields 0).
 * -EOPNOTSUPP on the kernel model; -ENOENT without the VM's group. */
int kh_vm_delays(KHost *h, KTaskstats *t, const VmId *vm, CgRole role, ThreadDelays *ret,
                 size_t *ret_threads);

/* kernel.task_delayacct (/proc/sys/kernel/task_delayacct).  Delays other
 * than the CPU's accrue only for threads created while it is 1, so an
 * operator who wants them sets it before VMs start; vmmgr writes it only
 * when asked to.  -EOPNOTSUPP on the kernel model and on kernels without
 * the sysctl (before 5.14, or CONFIG_TASK_DELAY_ACCT off); the write
 * needs CAP_SYS_ADMIN (-EPERM). */
int kh_delayacct_get(KHost *h, bool *ret_enabled);
int kh_delayacct_set(KHost *h, bool enabled);
