/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/service.h - what the daemon offers its API, as plain C.
 *
 * The HTTP layer (api.c) parses and validates requests, calls these
 * operations, and renders their results; it never touches the kernel,
 * QEMU or the database.  The daemon (daemon.c) implements them.  Tests of
 * the HTTP layer can implement them with a fake.
 *
 * Errors are negative errno values with a message for the client:
 *   -ENOENT   unknown VM                     -> 404
 *   -EEXIST   already registered             -> 409
 *   -EBUSY    conflicting state              -> 409
 *   -EINVAL   bad value (ServiceError.field) -> 400
 *   -ERANGE   out of range (e.g. not enough credits, above the cap) -> 400
 *   -ETIMEDOUT QEMU did not answer in time (registration) -> 504
 *   anything else                            -> 500
 * Every operation that changes state returns only after its database
 * transaction committed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "common/vmid.h"
#include "migration/handoff.h"
#include "policies/credits.h"

#define SERVICE_MESSAGE_MAX 256
#define SERVICE_PATH_MAX 108 /* sun_path */

typedef struct ServiceError {
        char message[SERVICE_MESSAGE_MAX];
        const char *field; /* the request field at fault, or NULL; static string */
} ServiceError;

typedef struct ServiceVm {
        VmId id;
        char qmp_path[SERVICE_PATH_MAX];
        char class_name[CREDIT_CLASS_NAME_MAX]; /* "" when the spec was given directly */
        pid_t pid;                              /* 0 while not connected */
        bool connected;                         /* QMP connection up */
        const char *link;                       /* "bound", "connecting", "stalled" or "down" (static) */
        char link_error[256];                   /* why it is not bound; "" when bound */
        char run_state[32];                     /* QEMU's status: "running", "paused", ... or "unknown" */
        uint32_t n_vcpus, n_iothreads;
        uint64_t registered_at_unix;
        char libvirt_domain[256]; /* the libvirt domain's name; "" for a VM registered over QMP */
} ServiceVm;

typedef struct ServiceCredits {
        VmId id;
        const char *bank;  /* "kernel" or "emulated" */
        const char *state; /* "bursting", "baseline" or "throttled" */
        CreditSpec spec;
        char class_name[CREDIT_CLASS_NAME_MAX];
        CreditLedger ledger;
        uint64_t usage_usec;     /* the vcpus group's CPU usage counter */
        uint64_t throttled_usec; /* the kernel's throttled time for the group */
        uint64_t quota_usec;     /* applied limit; UINT64_MAX: unlimited */
        uint64_t period_usec;
} ServiceCredits;

typedef struct ServiceRegister {
        VmId id;
        char qmp_path[SERVICE_PATH_MAX];
        const char *class_name; /* NULL: default class */
        bool has_spec;          /* spec overrides given */
        CreditSpec spec;        /* complete spec when has_spec (vcpus 0: from QEMU) */
        /* The destination of a live migration: starts on a provisional
         * bank and waits for the source's record (docs/migration.md).  A
         * QEMU that says "inmigrate" is one without being told. */
        bool incoming;
} ServiceRegister;

/* The end of a registration: r == 0 and *vm, or r < 0 and *err. */
typedef void (*ServiceRegisterDone)(int r, const ServiceVm *vm, const ServiceError *err, void *userdata);

/* A partial spec change: only fields with their bit set change. */
enum {
        SPEC_SET_CLASS = 1u << 0,
        SPEC_SET_BASELINE = 1u << 1,
        SPEC_SET_CAP = 1u << 2,
        SPEC_SET_LAUNCH = 1u << 3,
        SPEC_SET_MODE = 1u << 4,
};

typedef struct ServiceSpecChange {
        unsigned set;
        const char *class_name;
        uint32_t baseline_ppm;
        int64_t cap_usec;
        int64_t launch_usec;
        CreditMode mode;
} ServiceSpecChange;

typedef struct ServiceEvent {
        int64_t seq;           /* increasing */
        uint64_t time_unix_usec;
        char vm[VM_ID_STRLEN + 1]; /* "" for host events */
        char kind[32];         /* "register", "unregister", "spec", "inject", "transfer", "adopt", ... */
        char *detail_json;     /* a JSON object as text; malloc'd */
} ServiceEvent;

/* One sample of a VM's credit history (taken about once a second). */
typedef struct ServiceHistoryPoint {
        uint64_t time_unix_usec;
        int64_t available_usec; /* launch + bank - debt */
        uint64_t usage_usec;    /* the vcpus group's usage counter */
        uint8_t state;          /* CreditState */
} ServiceHistoryPoint;

/* What PUT /v1/vms/{uuid}/memory changes. */
enum {
        SERVICE_MEM_PRIORITY = 1u << 0,
        SERVICE_MEM_GPU = 1u << 1,
};

#define SERVICE_PCI_MAX 16 /* "0000:03:00.0" + NUL, and room */

typedef struct ServiceMemorySet {
        unsigned set;
        uint32_t priority;           /* lower is reclaimed first */
        char gpu_pci[SERVICE_PCI_MAX]; /* "" removes the GPU; else validated (is_pci_address) */
        uint64_t dmem_max, dmem_soft, dmem_low, dmem_min; /* bytes; UINT64_MAX: no limit (max, soft) */
} ServiceMemorySet;

/* A VM's memory report (GET/PUT /v1/vms/{uuid}/memory), plain values;
 * json-io renders it.  Sizes are bytes, UINT64_MAX meaning "max". */
typedef struct ServiceRoleDelays {
        bool known; /* taskstats answered for this role */
        uint64_t threads;
        uint64_t cpu_delay_ns, direct_reclaim_delay_ns, thrashing_delay_ns, swapin_delay_ns;
        bool delayacct; /* the kernel counted memory delays for these threads */
} ServiceRoleDelays;

enum { SERVICE_ROLE_VCPUS, SERVICE_ROLE_EMULATOR, SERVICE_ROLE_IO, _SERVICE_ROLE_MAX };

/* "vcpus", "emulator", "io": the one spelling of a role in JSON and
 * /metrics labels. */
static inline const char *service_role_name(size_t role) {
        static const char *const names[_SERVICE_ROLE_MAX] = {
                [SERVICE_ROLE_VCPUS] = "vcpus",
                [SERVICE_ROLE_EMULATOR] = "emulator",
                [SERVICE_ROLE_IO] = "io",
        };
        return role < _SERVICE_ROLE_MAX ? names[role] : "?";
}

typedef struct ServiceMemory {
        VmId id;
        uint32_t priority;
        char gpu_pci[SERVICE_PCI_MAX]; /* "" without a GPU */
        uint64_t gpu_max, gpu_soft, gpu_low, gpu_min;
        bool managed;
        const char *unmanaged_reason; /* static; when !managed */
        /* When managed: */
        uint64_t ram, current, swap_current;
        bool passthrough;
        uint64_t max, high, low, min, swap_max; /* as the kernel took them */
        uint64_t wmark_high, wmark_low, floor;
        uint64_t headroom_grow, headroom_limit, headroom_reclaimable, headroom_balloon;
        bool reclaiming, throttled;
        uint64_t reclaim_requests, reclaimed, reclaim_busy_usec, reclaim_partial, reclaim_errors;
        uint64_t asked_background, asked_proactive, asked_host;
        double pressure_some_avg10_pct;
        bool balloon_present;
        uint64_t balloon_target, balloon_actual;
        bool has_dmem;
        char dmem_gpu[32];
        uint64_t dmem_demoted_regions;
        int last_error; /* 0: none */
        /* Per-role delays while QEMU runs. */
        bool has_delays;
        ServiceRoleDelays delays[_SERVICE_ROLE_MAX];
} ServiceMemory;

/* What GET /metrics shows, as plain values (api/metrics.c renders the
 * Prometheus text, the API's own counters included; docs/metrics.md). */
typedef struct ServiceVmMetrics {
        ServiceCredits credits; /* one look per VM per scrape */
        const char *link;       /* the QMP link: "bound", "connecting", "stalled" or "down" (static) */
        bool mem_managed;
        bool mem_known; /* the memory engine reported on it; the mem_ values below are set */
        uint64_t mem_current, mem_swap, mem_max; /* bytes; mem_max UINT64_MAX: no limit */
        bool mem_reclaiming;                     /* background reclaim is on */
        bool mem_throttled;                      /* emulator/io threads throttled while reclaim catches up */
        uint64_t mem_reclaimed;                  /* bytes, by vmmgr's threads */
        uint64_t mem_reclaim_requests, mem_reclaim_partial, mem_reclaim_errors;
        uint64_t mem_asked_background, mem_asked_proactive, mem_asked_host; /* bytes asked, by reason */
        uint64_t mem_pressure_some_usec, mem_pressure_full_usec;             /* PSI totals */
        bool delays_known[_SERVICE_ROLE_MAX];
        uint64_t direct_reclaim_ns[_SERVICE_ROLE_MAX];
} ServiceVmMetrics;

typedef struct ServiceMetrics {
        ServiceVmMetrics *vms; /* malloc'd; in registration order */
        size_t n_vms;
        uint64_t tick_interval_usec; /* the credit tick's period */
        uint64_t ticks, tick_errors;  /* tick runs; bank looks that failed */
        uint64_t tick_cpu_nsec, last_tick_cpu_nsec, bank_looks, commits, commit_errors;
        bool memory_engine; /* vmmgr manages cgroup v2 memory here */
        bool taskstats;     /* per-role delays are known */
        unsigned reclaim_threads;
        uint64_t reclaim_busy_usec;
        bool host_known;
        uint64_t host_total, host_used, host_ceiling; /* bytes */
        uint64_t host_shortfall; /* bytes the host plan needs that neither reclaim nor balloons cover */
} ServiceMetrics;

static inline void service_metrics_done(ServiceMetrics *m) {
        free(m->vms);
        m->vms = NULL;
        m->n_vms = 0;
}

/* A VM's part in a live migration (GET /v1/vms/{uuid}/migration). */
typedef struct ServiceMigration {
        VmId id;
        const char *role; /* mig_role_to_string(); "owner" for a VM never migrated */
        uint64_t epoch;
        bool outgoing;    /* source: a migration is announced */
        char destination[MIG_HOST_MAX]; /* "" : export mode (no daemon-to-daemon sending) */
        bool has_record;  /* source: frozen or handed off */
        MigRecord record;
        uint64_t sends;            /* times the record was sent to the destination */
        char last_error[256];      /* the last send's failure, "" if none */
        uint64_t freeze_cost_usec; /* how long the freeze took on vmmgrd's loop */
} ServiceMigration;

/* What a destination says to a record. */
typedef struct ServiceMigrationAnswer {
        const char *reply; /* "ack", "nack" or "held" (static) */
        uint64_t epoch;
        char reason[256]; /* why held or nack */
} ServiceMigrationAnswer;

typedef struct ServiceOps {
        /* GET /v1/host: a JSON object as text (host-info keys); malloc'd. */
        int (*host_info)(void *ctx, char **ret_json, ServiceError *err);
        int (*vm_list)(void *ctx, ServiceVm **ret, size_t *ret_n, ServiceError *err);
        int (*vm_get)(void *ctx, const VmId *id, ServiceVm *ret, ServiceError *err);
        /* Registration waits for QEMU's answers, never inside the call:
         * it returns 0 and calls done exactly once later (from the loop,
         * never from inside vm_register), or returns < 0 with *err at once
         * (done is then never called).  A service that stops ends every
         * waiting registration (-ECANCELED) before the API is freed. */
        int (*vm_register)(void *ctx, const ServiceRegister *req, ServiceRegisterDone done, void *userdata,
                           ServiceError *err);
        int (*vm_unregister)(void *ctx, const VmId *id, ServiceError *err);
        int (*credits_get)(void *ctx, const VmId *id, ServiceCredits *ret, ServiceError *err);
        int (*credits_set_spec)(void *ctx, const VmId *id, const ServiceSpecChange *change,
                                ServiceCredits *ret, ServiceError *err);
        int (*credits_inject)(void *ctx, const VmId *id, int64_t amount_usec, ServiceCredits *ret,
                              ServiceError *err);
        int (*credits_transfer)(void *ctx, const VmId *from, const VmId *to, int64_t amount_usec,
                                ServiceError *err);
        /* Events after `since_seq` (0: from the oldest kept), at most `limit`. */
        int (*events)(void *ctx, int64_t since_seq, size_t limit, ServiceEvent **ret, size_t *ret_n,
                      ServiceError *err);
        /* GET /v1/vms/{uuid}/credits/history: recent samples, oldest first; malloc'd. */
        int (*credits_history)(void *ctx, const VmId *id, ServiceHistoryPoint **ret, size_t *ret_n,
                               ServiceError *err);
        /* GET /v1/vms/{uuid}/memory: limits, usage, reclaim, headroom,
         * balloon, per-role delays. */
        int (*memory_get)(void *ctx, const VmId *id, ServiceMemory *ret, ServiceError *err);
        /* PUT /v1/vms/{uuid}/memory: the host ceiling's priority and/or
         * the VM's GPU and its dmem limits; stored, applied, then as
         * memory_get. */
        int (*memory_set)(void *ctx, const VmId *id, const ServiceMemorySet *req, ServiceMemory *ret,
                          ServiceError *err);
        /* GET /metrics: the values (service_metrics_done() frees them). */
        int (*metrics)(void *ctx, ServiceMetrics *ret, ServiceError *err);
        /* The libvirt hook says a domain started or went (operation is
         * libvirt's: "started", "stopped", "release"; name is the domain's).
         * Answers at once and never calls libvirt from inside: libvirtd is
         * waiting for the hook.  -ENOENT when vmmgrd does not talk to
         * libvirt.  May be NULL (404 too). */
        int (*libvirt_notify)(void *ctx, const VmId *id, const char *name, const char *operation,
                              ServiceError *err);
        /* Live migration (docs/migration.md).  May be NULL (404). */
        int (*migration_get)(void *ctx, const VmId *id, ServiceMigration *ret, ServiceError *err);
        /* Announces that the VM goes to `destination` ("https://HOST:PORT",
         * or "" when the tool carries the record itself: export/import).
         * -EBUSY when not the owner or a migration is already announced. */
        int (*migration_start)(void *ctx, const VmId *id, const char *destination, ServiceMigration *ret,
                               ServiceError *err);
        /* Withdraws an announcement before QEMU stopped for it (-EBUSY after). */
        int (*migration_cancel)(void *ctx, const VmId *id, ServiceMigration *ret, ServiceError *err);
        /* A record arrives (from the source's vmmgrd or `migration import`). */
        int (*migration_record)(void *ctx, const MigRecord *rec, ServiceMigrationAnswer *ret, ServiceError *err);
        /* The destination's answer, carried by the tool (export/import). */
        int (*migration_reply)(void *ctx, const VmId *id, bool ack, uint64_t epoch, ServiceMigration *ret,
                               ServiceError *err);
        /* Host live update (docs/live-update.md): the record as a JSON
         * object in text, malloc'd.  prepare (deadline 0: the default)
         * and abort answer with the record as it is afterwards; -EBUSY
         * when one is prepared already / none is to abort.  May be NULL. */
        int (*liveupdate_get)(void *ctx, char **ret_json, ServiceError *err);
        int (*liveupdate_prepare)(void *ctx, uint32_t deadline_sec, char **ret_json, ServiceError *err);
        int (*liveupdate_abort)(void *ctx, char **ret_json, ServiceError *err);
} ServiceOps;

void service_events_free(ServiceEvent *e, size_t n);
