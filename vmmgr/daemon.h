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
#include "qmp/qmp.h"
#include "vmmgr/api.h"
#include "vmmgr/binding.h"
#include "vmmgr/config.h"
#include "vmmgr/credit-engine.h"
#include "vmmgr/memory-engine.h"
#include "vmmgr/service.h"
#include "vmmgr/state.h"

typedef struct Daemon Daemon;

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
        pid_t pid;
        VmThreadRoles roles;
        char run_state[32];
        CreditBank *bank;
        uint64_t committed_generation; /* ledger generation last written to the db */

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

        /* Kept while disconnected: the ledger as last known. */
        CreditLedger ledger;
        uint64_t usage_base_usec;
        uint64_t ledger_time_unix_usec;
} Vm;

#define VM_HISTORY_POINTS 600 /* 10 minutes at one a second */

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
        CreditBankKind bank_kind;
        StateDb *db;
        Api *api;
        sd_event_source *api_io, *api_timer, *tick_timer, *commit_timer, *housekeeping_timer;
        Vm **vms;
        size_t n_vms;
        MemEngine *mem; /* NULL where memory is not managed */
        KTaskstats *taskstats; /* NULL without taskstats */
        sd_event_source *mem_timer, *mem_io;
        DaemonStats stats;
        bool quitting;
        bool remove_subtree_on_exit;
        bool on_model; /* opened on a kernel model (test seam) */
};

typedef struct DaemonOptions {
        const char *config_path; /* NULL: defaults */
        const char *state_dir;   /* overrides */
        const char *socket_path;
        const char *subtree;
        uint32_t controllers;
        bool remove_subtree_on_exit;
        /* Test and benchmark seam: NULL normally.  When set, the host is
         * opened on this kernel model (kh_open_model) instead of the real
         * cgroup hierarchies; the database and the API work as usual. */
        KModel *model;
} DaemonOptions;

/* Loads config, opens the host, the database and the API, re-adopts the
 * VMs the database knows.  Errors are logged with their cause. */
int daemon_new(const DaemonOptions *opts, Daemon **ret);
/* Runs until SIGTERM/SIGINT; flushes state on the way out. */
int daemon_run(Daemon *d);
Daemon *daemon_free(Daemon *d);

/* The ServiceOps the API calls (daemon-service.c). */
extern const ServiceOps daemon_service_ops;

/* Helpers shared by daemon.c and daemon-service.c. */
Vm *daemon_find_vm(Daemon *d, const VmId *id);
uint64_t daemon_now_mono_usec(void);
uint64_t daemon_now_unix_usec(void);
int daemon_vm_connect(Daemon *d, Vm *vm, bool fresh, ServiceError *err);
void daemon_vm_disconnect(Daemon *d, Vm *vm, const char *why);
int daemon_commit_ledgers(Daemon *d, bool all);
int daemon_event(Daemon *d, const VmId *vm, const char *kind, const char *detail_json);
void vm_free(Vm *vm);
/* The VM's row in the state database, as it is now. */
void daemon_vm_state_row(const Vm *vm, StateVm *ret);

/* Memory (daemon-memory.c). */
int daemon_memory_open(Daemon *d);
void daemon_memory_close(Daemon *d);
void daemon_memory_tick_now(Daemon *d);
void daemon_vm_memory_start(Daemon *d, Vm *vm);
void daemon_vm_memory_stop(Daemon *d, Vm *vm);
void daemon_vm_memory_event(Daemon *d, Vm *vm, const QmpEvent *ev);
int daemon_vm_memory_set_priority(Daemon *d, Vm *vm, uint32_t priority);
/* The VM's GPU ("" or NULL: none) and its dmem limits, applied from the
 * next look where memory is managed. */
int daemon_vm_memory_set_gpu(Daemon *d, Vm *vm, const char *pci, const MemPolDmemSpec *spec);
/* GET /v1/vms/{uuid}/memory: a JSON object as text; malloc'd. */
int daemon_vm_memory_json(Daemon *d, Vm *vm, char **ret);
void daemon_memory_metrics(Daemon *d, FILE *f);

/* ---- test and benchmark seam (a daemon opened with opts->model) ---------
 * Registers a VM without QMP: `pid` is a process of the kernel model and
 * `vcpu_tid` its one vCPU thread.  Groups, binding, credit bank and the
 * database commit are the ones a real registration uses; `class_name`
 * NULL means the default class.  -EEXIST if the id is registered,
 * -EINVAL for an unknown class, -EOPNOTSUPP on a daemon not on a model. */
int daemon_add_model_vm(Daemon *d, const VmId *id, pid_t pid, pid_t vcpu_tid, const char *class_name);
/* Runs what the credit tick timer runs, once, now. */
void daemon_tick_now(Daemon *d);
