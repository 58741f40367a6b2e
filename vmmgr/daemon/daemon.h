/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon.h - vmmgrd's context: everything the daemon owns, in one
 * struct (no other mutable global state).
 *
 * Event loop: sd-event (libsystemd).  It gives io sources for the API's
 * epoll fd and every QMP socket, monotonic timers for the credit tick,
 * ledger commits and housekeeping, signal handling, and the systemd
 * watchdog (WATCHDOG=1 is sent by the loop itself while it is healthy);
 * sd_notify() says READY=1.  One thread, no locks: every change happens
 * in a callback of this loop.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "kernel/kernel.h"
#include "migration/handoff.h"
#include "qmp/qmp.h"
#include "vmmgr/api/api.h"
#include "vmmgr/engine/binding.h"
#include "vmmgr/daemon/config.h"
#include "vmmgr/engine/credit-bank.h"
#include "vmmgr/api/json-io.h"
#include "vmmgr/engine/memory-engine.h"
#include "vmmgr/api/service.h"
#include "vmmgr/daemon/state.h"

typedef struct Daemon Daemon;
typedef struct VmConnect VmConnect;
typedef struct VmRolesQuery VmRolesQuery;

/* The VM's QMP link (vm-link.c). */
typedef enum VmLinkState {
        VM_LINK_DOWN,       /* no QEMU answers on the socket (retried every 2 s) */
        VM_LINK_CONNECTING, /* connected; greeting and queries in flight */
        VM_LINK_BOUND,      /* threads bound, bank running */
        VM_LINK_STALLED,    /* QEMU stopped answering (retried with back-off) */
} VmLinkState;

const char *vm_link_state_to_string(VmLinkState s);

/* A registration waiting for its link: the API's answer. */
typedef struct VmRegistration {
        ServiceRegisterDone done;
        void *userdata;
} VmRegistration;

/* One registered VM. */
typedef struct Vm {
        Daemon *daemon;
        VmId id;
        char qmp_path[SERVICE_PATH_MAX];
        char class_name[CREDIT_CLASS_NAME_MAX];
        CreditSpec spec;
        uint64_t registered_at_unix;

        /* Live while QEMU is connected. */
        Qmp *qmp;
        sd_event_source *qmp_io;
        /* The link (vm-link.c): its state, why it is not bound, its timer
         * (QMP deadlines while connected, the retry while not). */
        VmLinkState link;
        char link_error[256];
        sd_event_source *link_timer;
        uint64_t link_backoff_usec, link_retry_at_usec, link_started_usec;
        VmConnect *connecting;        /* the connect sequence in flight */
        VmRolesQuery *roles_query;    /* a roles refresh in flight */
        uint64_t roles_refresh_at_usec; /* the next safety poll; 0: at the next housekeeping */
        VmRegistration *registering;  /* a registration waiting for the link */
        bool adopted_once;
        pid_t pid;
        VmThreadRoles roles;
        char run_state[32];
        CreditBank *bank;
        uint64_t committed_generation; /* ledger generation last written to the db */
        CreditState shown_state;        /* as last recorded in the event history */
        uint64_t surplus_noticed_usec;  /* last look that saw a surplus charged */
        uint64_t tick_warned_usec;      /* last "credit tick failed" warning */
        bool tick_due;                  /* daemon_tick_now(): its look's reads are queued */
        /* Per-role taskstats delays for /metrics, refreshed by the tick. */
        ServiceRoleDelays delays[_SERVICE_ROLE_MAX];
        uint64_t delays_at_usec;

        /* Credit history: a ring of samples taken at bank looks, at most one a second. */
        ServiceHistoryPoint *history;
        size_t history_head, history_n;
        uint64_t history_last_usec;

        /* Memory (daemon-memory.c): managed while connected where vmmgr
         * manages cgroup v2 memory; the priority is the host ceiling's. */
        bool mem_managed;
        uint32_t mem_priority;
        char gpu_pci[SERVICE_PCI_MAX]; /* "" without a GPU */
        MemPolDmemSpec dmem;           /* its dmem limits */

        /* A libvirt domain (daemon-libvirt.c): its name there; "" for a
         * VM registered over QMP.  libvirt owns its groups and its
         * monitor: vmmgrd never opens qmp_path ("") for it. */
        char libvirt_name[STATE_LIBVIRT_NAME_MAX];
        unsigned lv_seen_generation; /* the libvirt connection that last reported it running */

        /* Live migration (daemon-migration.c, docs/migration.md): the
         * handoff's journaled state (role MIG_NONE: the owner at epoch 0,
         * never in a migration), and the live parts around it. */
        MigVm mig;
        bool mig_incoming;          /* registered as a migration's destination */
        bool mig_query_inflight;    /* a query-migrate is out (source, frozen) */
        unsigned mig_send_inflight; /* sends of the record not answered yet (one per peer) */
        uint64_t mig_next_send_usec; /* monotonic: when the record goes out again */
        uint64_t mig_send_backoff_usec;
        uint64_t mig_sends;          /* times the record was sent */
        uint64_t mig_send_tag;       /* names the send in flight (the sender's answer) */
        uint64_t mig_freeze_cost_usec; /* the freeze's own time on the loop */
        char mig_last_error[256];    /* the last send's failure; "" after an answer */

        /* Kept while disconnected: the ledger as last known; frozen
         * while QEMU is gone (no earnings); dirty until written. */
        CreditLedger ledger;
        uint64_t usage_base_usec;
        uint64_t ledger_time_unix_usec;
        bool ledger_frozen, ledger_dirty;
} Vm;

#define VM_HISTORY_POINTS 600 /* 10 minutes at one a second */

/* A host live update (daemon-liveupdate.c, docs/live-update.md). */
typedef enum LuState { LU_NONE, LU_PREPARED, LU_RESTORING, LU_DONE } LuState;
typedef enum LuVmState { LU_VM_PREPARED, LU_VM_WAITING, LU_VM_RESTORED, LU_VM_MISSING } LuVmState;
#define LU_BOOT_ID_MAX 40

typedef struct LuVm {
        VmId id;
        LuVmState state;
        char bank[32];                /* the bank it had at prepare (at restore: the new one) */
        CreditLedger prepared;        /* looked at by prepare */
        uint64_t prepared_usage_usec; /* the usage counter then */
        int64_t kernel_pool_usec;     /* the kernel bank's pool then; -1 for the emulated bank */
        CreditLedger at_jump;         /* the last commit before the jump, as adopted */
        uint64_t at_jump_unix_usec;
        CreditLedger restored;        /* once its new QEMU is bound */
        uint64_t restored_unix_usec;
        uint64_t blackout_usec;          /* from the last commit to the restore: earned nothing */
        uint64_t charged_on_return_usec; /* the new QEMU's use before it was bound */
        char error[160];
} LuVm;

typedef struct LiveUpdate {
        LuState state;
        char boot_id[LU_BOOT_ID_MAX]; /* the boot it was prepared under */
        uint64_t prepared_unix_usec;
        uint32_t deadline_sec;
        uint64_t restore_started_unix_usec;
        uint64_t restore_ms; /* vmmgrd's start to the last VM restored */
        LuVm *vms;
        size_t n_vms;
        bool dirty;
} LiveUpdate;

const char *lu_state_to_string(LuState s);

typedef struct DaemonStats {
        uint64_t ticks;            /* tick timer runs */
        uint64_t bank_ticks;       /* bank looks */
        uint64_t tick_cpu_nsec;    /* CPU time spent in the tick callback */
        uint64_t last_tick_cpu_nsec;
        uint64_t commits, commit_errors;
        uint64_t tick_errors;
} DaemonStats;

struct Daemon {
        sd_event *loop;
        VmmgrConfig cfg;
        char config_path[CONFIG_PATH_MAX]; /* "" = built-in defaults */
        KHost *host;
        HostFeatures features;
        KhReadBatch *reads; /* the tick's counter reads (kernel.h), the host's batch */
        CreditBankKind bank_kind;
        StateDb *db;
        Api *api;
        sd_event_source *api_io, *api_timer, *tick_timer, *commit_timer, *housekeeping_timer;
        Vm **vms;   /* registration order */
        Vm **by_id; /* the same, sorted by id (daemon_find_vm) */
        size_t n_vms;
        MemEngine *mem; /* NULL where memory is not managed */
        KTaskstats *taskstats; /* NULL without taskstats */
        sd_event_source *mem_timer, *mem_io;
        DaemonStats stats;
        bool tick_batch, tick_batch_open; /* a tick's events in one transaction */
        uint64_t api_warned_usec;          /* log_ratelimit() of API dispatch failures */
        size_t delays_cursor;              /* daemon_delays_refresh()'s round robin */
        /* libvirt (daemon-libvirt.c): the connection (NULL when off), and
         * domains a hook said started, looked at a moment later. */
        struct LvConn *lv;
        struct LvWorker *lv_worker; /* libvirt's answers off the loop */
        sd_event_source *lv_recheck;
        VmId lv_pending[64];
        size_t n_lv_pending;
        /* Domains libvirt started for an incoming migration
         * (STARTED_MIGRATED), adopted as a migration's destination. */
        VmId lv_incoming[64];
        size_t n_lv_incoming;
        /* Live migration (daemon-migration.c): records to peers, sent off
         * the loop; the timer drives sends and query-migrate polls. */
        struct PeerSender *mig_sender;
        sd_event_source *mig_timer;
        char host_id[MIG_HOST_MAX];
        uint64_t mig_last_tag;
        /* Host live update (daemon-liveupdate.c): this boot's id, whether
         * the host booted since vmmgrd last ran, and a prepared update. */
        char boot_id[LU_BOOT_ID_MAX];
        bool rebooted;
        uint64_t started_mono_usec;
        LiveUpdate lu;
        bool quitting;                 /* SIGTERM: the API drains, then the loop ends */
        uint64_t api_gate_until_usec;  /* socket-activated start: API closed until then (0: open) */
        bool remove_subtree_on_exit;
        bool on_model; /* given a stand-in host, not this machine's (test seam) */
        int (*model_peer_pid)(const char *qmp_path, pid_t *ret, void *userdata);
        void *model_peer_pid_userdata;
};

typedef struct DaemonOptions {
        const char *config_path; /* NULL: defaults */
        const char *state_dir;   /* overrides */
        const char *socket_path;
        const char *subtree;
        uint32_t controllers;
        bool remove_subtree_on_exit;
        /* NULL normally: vmmgrd opens this machine's cgroups (kh_open) with
         * its config's subtree and controllers.  Else the caller's host
         * (tests and benches: one on the kernel model, which vmmgrd itself
         * never links); the daemon owns it from daemon_new() on, also when
         * that fails.  The database and the API work as usual. */
        KHost *host;
        /* With a stand-in host only: who is on the other end of a VM's QMP
         * socket (scripted QMP peers stand in for QEMU processes the model
         * simulates).  NULL: SO_PEERCRED. */
        int (*model_peer_pid)(const char *qmp_path, pid_t *ret, void *userdata);
        void *model_peer_pid_userdata;
} DaemonOptions;

/* Loads config, opens the host, the database and the API, re-adopts the
 * VMs the database knows.  Errors are logged with their cause. */
int daemon_new(const DaemonOptions *opts, Daemon **ret);
/* Runs until SIGTERM/SIGINT; flushes state on the way out. */
int daemon_run(Daemon *d);
Daemon *daemon_free(Daemon *d);
/* SIGHUP: reloads the config file (classes, timings); a file that fails
 * to load changes nothing.  Returns 0 either way (the daemon goes on). */
int daemon_reload(Daemon *d);

/* The ServiceOps the API calls (daemon-service.c). */
extern const ServiceOps daemon_service_ops;

/* Helpers shared by daemon.c and daemon-service.c. */
Vm *daemon_find_vm(Daemon *d, const VmId *id);
/* Adds a VM to both lists (-EEXIST, -ENOMEM); removes it from both. */
int daemon_vm_list_add(Daemon *d, Vm *vm);
void daemon_vm_list_remove(Daemon *d, Vm *vm);
uint64_t daemon_now_mono_usec(void);
uint64_t daemon_now_unix_usec(void);
void daemon_vm_disconnect(Daemon *d, Vm *vm, const char *why);
/* After every look at a bank, the tick's and an API request's alike: a
 * history sample (at most one a second) and the events the look gathered
 * (state changes and their moments). */
void daemon_vm_after_look(Daemon *d, Vm *vm, uint64_t now_mono_usec);
/* Starts the VM's credit bank once its threads are bound. */
int daemon_vm_bank_start(Daemon *d, Vm *vm, bool fresh, uint64_t now_mono_usec);
/* The link came up (r == 0) or failed (field and reason say why). */
void daemon_vm_linked(Daemon *d, Vm *vm, int r, const char *field, const char *reason);
/* Stores a new VM (row, fresh ledger, "register" event) in one
 * transaction; nothing of it on failure. */
int daemon_store_registration(Daemon *d, Vm *vm, struct json_object *detail, StateError *serr);
/* Forgets a VM: its row goes, an "unregister" event keeps why and its
 * final ledger, its limit is lifted; vm is freed on success. */
int daemon_vm_unregister(Daemon *d, Vm *vm, const char *reason, ServiceError *err);
/* Ends a registration that waits for its link (daemon-service.c). */
void daemon_registration_finish(Daemon *d, Vm *vm, int r, const char *field, const char *reason);

/* The link (vm-link.c).  vm_link_start() connects without waiting and
 * returns 0, or an error when even connect() failed (a retry is then
 * scheduled unless `fresh`); daemon_vm_linked() reports the outcome. */
int vm_link_start(Daemon *d, Vm *vm, bool fresh);
/* Drops a link that failed and schedules the retry. */
void vm_link_close(Daemon *d, Vm *vm, const char *why, bool stalled);
/* Drops everything of the link, with no retry (unregister, exit). */
void vm_link_stop(Vm *vm);
/* After queueing a command on vm->qmp outside vm-link.c: lets the loop
 * write it and enforce its deadline. */
void vm_link_kick(Vm *vm);
/* Asks QEMU for its threads again and rebinds, without waiting. */
int vm_link_refresh_roles(Vm *vm);
int daemon_commit_ledgers(Daemon *d, bool all);
/* Records an event; detail (borrowed, NULL: {}) is built with json-c. */
int daemon_event(Daemon *d, const VmId *vm, const char *kind, struct json_object *detail);
void vm_free(Vm *vm);
/* The VM's row in the state database, as it is now. */
void daemon_vm_state_row(const Vm *vm, StateVm *ret);

/* Live migration (daemon-migration.c, docs/migration.md). */
int daemon_migration_open(Daemon *d);
void daemon_migration_close(Daemon *d);
/* At start-up: the VM's journaled handoff, if any. */
int daemon_vm_migration_load(Daemon *d, Vm *vm);
/* A fresh VM's first ledger: a VM that QEMU says is "inmigrate" (or that
 * was registered as incoming) is a migration's destination and starts on
 * a provisional bank, whose ledger this returns; NULL: as usual. */
const CreditLedger *daemon_vm_migration_fresh_ledger(Daemon *d, Vm *vm);
/* The link is bound: the journal is reconciled with what QEMU says now
 * (a daemon that was down while the migration went on). */
void daemon_vm_migration_bound(Daemon *d, Vm *vm);
void daemon_vm_migration_qmp_event(Daemon *d, Vm *vm, const QmpEvent *ev);
/* The VM's QEMU went away (its link is down). */
void daemon_vm_migration_gone(Daemon *d, Vm *vm);
/* Whether the VM's ledger lives here now: its bank is looked at and
 * committed (not after it was handed off, nor for a tombstone). */
bool daemon_vm_ledger_here(const Vm *vm);
/* libvirt's lifecycle events (daemon-libvirt.c): SUSPENDED_MIGRATED on a
 * source; STOPPED (true: keep the domain, its record goes out); RESUMED. */
void daemon_vm_migration_lv_source_paused(Daemon *d, Vm *vm);
bool daemon_vm_migration_lv_source_stopped(Daemon *d, Vm *vm, bool migrated);
void daemon_vm_migration_lv_resumed(Daemon *d, Vm *vm);
/* The handoff row for a registration's transaction (false: none needed). */
bool daemon_vm_migration_row(const Vm *vm, StateHandoff *ret);
/* The service's side (daemon-service.c): errors are negative errno
 * values with a message for the client in errbuf. */
void daemon_vm_migration_fill(const Vm *vm, ServiceMigration *ret);
int daemon_migration_start(Daemon *d, Vm *vm, const char *destination, char *errbuf, size_t errsize);
int daemon_migration_cancel(Daemon *d, Vm *vm, char *errbuf, size_t errsize);
/* Frees vm when the ack closes it (it is unregistered). */
int daemon_migration_reply(Daemon *d, Vm *vm, bool ack, uint64_t epoch, char *errbuf, size_t errsize);
int daemon_migration_record(Daemon *d, const MigRecord *rec, ServiceMigrationAnswer *ret, char *errbuf,
                            size_t errsize);

/* Host live update (daemon-liveupdate.c, docs/live-update.md). */
int daemon_liveupdate_open(Daemon *d);
void daemon_liveupdate_close(Daemon *d);
int daemon_liveupdate_prepare(Daemon *d, uint32_t deadline_sec, char *errbuf, size_t errsize);
int daemon_liveupdate_abort(Daemon *d, char *errbuf, size_t errsize);
/* A VM is bound again: on a restore, its return (at_jump: its ledger as
 * adopted, the last commit before the jump). */
void daemon_liveupdate_vm_back(Daemon *d, Vm *vm, const CreditLedger *at_jump, uint64_t at_jump_unix_usec);
void daemon_liveupdate_housekeeping(Daemon *d);
/* The live update as the API shows it; NULL when out of memory. */
struct json_object *daemon_liveupdate_json(const Daemon *d);

/* Memory (daemon-memory.c). */
int daemon_memory_open(Daemon *d);
void daemon_memory_close(Daemon *d);
void daemon_memory_tick_now(Daemon *d);
void daemon_vm_memory_start(Daemon *d, Vm *vm, const MemPolVmSpec *spec, uint64_t balloon_actual_bytes);
void daemon_vm_memory_stop(Daemon *d, Vm *vm);
void daemon_vm_memory_event(Daemon *d, Vm *vm, const QmpEvent *ev);
/* The guest's balloon is at actual_bytes now (QMP's or libvirt's event). */
void daemon_vm_memory_balloon_actual(Daemon *d, Vm *vm, uint64_t actual_bytes);
int daemon_vm_memory_set_priority(Daemon *d, Vm *vm, uint32_t priority);
/* The VM's GPU ("" or NULL: none) and its dmem limits, applied from the
 * next look where memory is managed. */
int daemon_vm_memory_set_gpu(Daemon *d, Vm *vm, const char *pci, const MemPolDmemSpec *spec);
/* GET /v1/vms/{uuid}/memory: a JSON object as text; malloc'd. */
void daemon_vm_memory_report(Daemon *d, Vm *vm, ServiceMemory *ret);
void daemon_memory_metrics(Daemon *d, ServiceMetrics *ret);
/* Refreshes a few VMs' cached per-role delays (for /metrics); each tick. */
void daemon_delays_refresh(Daemon *d, uint64_t now_mono_usec);

/* ---- test and benchmark seam (a daemon opened with opts->model) ---------
 * Registers a VM without QMP: `pid` is a process of the kernel model and
 * `vcpu_tid` its one vCPU thread.  Groups, binding, credit bank and the
 * database commit are the ones a real registration uses; `class_name`
 * NULL means the default class.  -EEXIST if the id is registered,
 * -EINVAL for an unknown class, -EOPNOTSUPP on a daemon not on a model. */
int daemon_add_model_vm(Daemon *d, const VmId *id, pid_t pid, pid_t vcpu_tid, const char *class_name);
/* Runs what the credit tick timer runs, once, now. */
void daemon_tick_now(Daemon *d);
