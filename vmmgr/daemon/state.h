/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/state.h - vmmgrd's persistent state in SQLite: registered VMs,
 * their credit ledgers and an event log, in "<dir>/vmmgr.db".
 *
 * Durability.  WAL with synchronous=FULL: a commit returns after the WAL
 * is on disk, so an acknowledged operator action (an inject, a transfer)
 * survives a power loss.  The cost is one fsync per commit, and commits
 * are rare: one ledger batch every few seconds plus operator actions.
 *
 * A database that fails PRAGMA quick_check, or is not a database at all,
 * is reported (-EBADMSG, naming the file) and never modified, replaced or
 * deleted: a person decides what to do with it.
 *
 * Errors are negative errno values; functions that take a StateError
 * (may be NULL) describe the failure there.  SQLite's codes map as:
 * CORRUPT/NOTADB -EBADMSG, CONSTRAINT on a key -EEXIST, on a foreign key
 * -ENOENT, BUSY/LOCKED -EBUSY, READONLY -EROFS, FULL -ENOSPC, NOMEM
 * -ENOMEM, CANTOPEN/IOERR the system errno (or -EIO).
 *
 * Not thread-safe: one StateDb belongs to one thread (vmmgrd's loop).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vmid.h"
#include "policies/credits.h"
#include "policies/memory.h"
#include "vmmgr/api/service.h"

#define STATE_SCHEMA_VERSION 6
/* libvirt's own limit on a domain name is far larger; vmmgr adopts none longer. */
#define STATE_LIBVIRT_NAME_MAX 256
#define STATE_EVENTS_KEEP_DEFAULT 10000u
#define STATE_DB_NAME "vmmgr.db"

typedef struct StateError {
        char message[320];
} StateError;

typedef struct StateDb StateDb;

typedef struct StateVm {
        VmId id;
        char qmp_path[SERVICE_PATH_MAX];
        char class_name[CREDIT_CLASS_NAME_MAX]; /* "" when the spec was given directly */
        CreditSpec spec;
        uint64_t registered_at_unix;
        uint32_t mem_priority; /* host-pressure order, lower reclaimed first */
        char gpu_pci[SERVICE_PCI_MAX]; /* "" without a GPU */
        MemPolDmemSpec dmem;           /* its dmem limits */
        char libvirt_name[STATE_LIBVIRT_NAME_MAX]; /* a libvirt domain's name; "" for a QMP VM */
} StateVm;

typedef struct StateLedger {
        VmId id;
        CreditLedger ledger;     /* generation included */
        uint64_t usage_base_usec; /* the usage counter value spending was counted up to */
        uint64_t tick_usec;       /* when (unix usec) */
        bool frozen;              /* QEMU was gone at tick_usec: no earnings since */
} StateLedger;

/* Opens (creating "dir" with mode 0700 and the database if missing),
 * checks and migrates to STATE_SCHEMA_VERSION.  -EPROTO for a database
 * written by a newer vmmgr. */
int state_open(const char *dir, StateDb **ret, StateError *err);
StateDb *state_close(StateDb *db);
static inline void state_closep(StateDb **db) {
        if (*db)
                state_close(*db);
}
#define _cleanup_state_ __attribute__((cleanup(state_closep)))

const char *state_path(const StateDb *db);
/* How many events to keep (default STATE_EVENTS_KEEP_DEFAULT, minimum 1). */
void state_set_events_keep(StateDb *db, size_t n);

/* Transactions for multi-step changes (register = vm + ledger + event).
 * Without one, each call below commits on its own.  Not nested: -EBUSY if
 * one is open.  state_rollback() is a no-op without one (so an error path
 * may always call it). */
int state_begin(StateDb *db, StateError *err);
int state_commit(StateDb *db, StateError *err);
void state_rollback(StateDb *db);
bool state_in_transaction(const StateDb *db);

/* Insert or update (the ledger row is kept on update). */
int state_vm_put(StateDb *db, const StateVm *vm, StateError *err);
/* Deletes the VM and its ledger; -ENOENT if unknown. */
int state_vm_delete(StateDb *db, const VmId *id, StateError *err);
int state_vm_get(StateDb *db, const VmId *id, StateVm *ret, StateError *err);
/* All VMs by registration time; *ret is malloc'd (NULL when n is 0). */
int state_vm_list(StateDb *db, StateVm **ret, size_t *ret_n, StateError *err);

/* Insert-or-update of n ledgers in one transaction (or in the caller's);
 * all or nothing.  -ENOENT (naming the VM) for a VM without a vms row. */
int state_ledger_put_batch(StateDb *db, const StateLedger *recs, size_t n, StateError *err);
int state_ledger_get(StateDb *db, const VmId *id, StateLedger *ret, StateError *err);
int state_ledger_list(StateDb *db, StateLedger **ret, size_t *ret_n, StateError *err);

/* Appends an event (vm NULL or "" for host events; detail_json a JSON
 * object as text, NULL for "{}") and prunes to the newest events_keep, in
 * one transaction.  *ret_seq (may be NULL) gets its sequence number. */
int state_event_add(StateDb *db, uint64_t time_unix_usec, const char *vm, const char *kind,
                    const char *detail_json, int64_t *ret_seq, StateError *err);
/* Events with seq > since, oldest first, at most limit. */
int state_events_list(StateDb *db, int64_t since, size_t limit, ServiceEvent **ret, size_t *ret_n,
                      StateError *err);

/* ---- the migration handoff journal (docs/migration.md) ------------------
 * One row per VM that took part in a migration; no row: the owner at
 * epoch 0.  The row goes with its VM. */
#define STATE_ROLE_MAX 16
#define STATE_DESTINATION_MAX 256
#define STATE_RECORD_MAX 4096

typedef struct StateHandoff {
        VmId id;
        char role[STATE_ROLE_MAX]; /* mig_role_to_string() */
        uint64_t epoch;
        bool outgoing;
        char destination[STATE_DESTINATION_MAX];
        char record_json[STATE_RECORD_MAX]; /* "" when there is no record */
        uint64_t updated_unix_usec;
} StateHandoff;

/* Insert or update; -ENOENT for a VM without a vms row, -E2BIG for a
 * record or destination longer than the row holds. */
int state_handoff_put(StateDb *db, const StateHandoff *h, StateError *err);
/* -ENOENT when the VM has no row. */
int state_handoff_get(StateDb *db, const VmId *id, StateHandoff *ret, StateError *err);

/* ---- host facts: text under a key (the boot id vmmgrd last ran under, a
 * prepared live update as JSON) -------------------------------------------- */
int state_meta_put(StateDb *db, const char *key, const char *value, StateError *err);
/* *ret malloc'd; -ENOENT when the key has no value. */
int state_meta_get(StateDb *db, const char *key, char **ret, StateError *err);
int state_meta_delete(StateDb *db, const char *key, StateError *err);
