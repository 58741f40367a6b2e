/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/state.c - vmmgrd's state in SQLite: VMs, ledgers, events; bound
 * parameters only, migrations by schema version, one transaction per change.
 */
#include "vmmgr/daemon/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/parse.h"
#include "common/macros.h"

typedef enum StmtId {
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_VM_PUT,
        ST_VM_DELETE,
        ST_VM_GET,
        ST_VM_LIST,
        ST_LEDGER_PUT,
        ST_LEDGER_GET,
        ST_LEDGER_LIST,
        ST_EVENT_ADD,
        ST_EVENT_PRUNE,
        ST_EVENTS_LIST,
        ST_HANDOFF_PUT,
        ST_HANDOFF_GET,
        ST_META_PUT,
        ST_META_GET,
        ST_META_DELETE,
        _ST_MAX,
} StmtId;

#define VM_COLUMNS                                                                                       \
        "uuid, qmp_path, class, vcpus, baseline_ppm, cap_usec, launch_usec, mode, registered_at, mem_priority, " \
        "gpu_pci, dmem_max, dmem_soft, dmem_low, dmem_min, libvirt_name"
#define LEDGER_COLUMNS                                                                                      \
        "uuid, balance_usec, launch_usec, surplus_usec, charged_usec, earned_usec, spent_usec, "            \
        "forfeited_usec, overdraft_usec, debt_usec, adjusted_usec, earn_remainder, generation, "            \
        "usage_base_usec, tick_usec, frozen"

static const char *const stmt_sql[_ST_MAX] = {
        /* IMMEDIATE: take the write lock now rather than fail to upgrade a
         * read lock halfway through a multi-step change. */
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        /* An upsert, not INSERT OR REPLACE: REPLACE deletes the row first,
         * and the delete would cascade to the VM's ledger. */
        [ST_VM_PUT] = "INSERT INTO vms (" VM_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
                      "ON CONFLICT (uuid) DO UPDATE SET qmp_path = excluded.qmp_path, class = excluded.class, "
                      "vcpus = excluded.vcpus, baseline_ppm = excluded.baseline_ppm, "
                      "cap_usec = excluded.cap_usec, launch_usec = excluded.launch_usec, mode = excluded.mode, "
                      "registered_at = excluded.registered_at, mem_priority = excluded.mem_priority, "
                      "gpu_pci = excluded.gpu_pci, dmem_max = excluded.dmem_max, dmem_soft = excluded.dmem_soft, "
                      "dmem_low = excluded.dmem_low, dmem_min = excluded.dmem_min, "
                      "libvirt_name = excluded.libvirt_name",
        [ST_VM_DELETE] = "DELETE FROM vms WHERE uuid = ?1",
        [ST_VM_GET] = "SELECT " VM_COLUMNS " FROM vms WHERE uuid = ?1",
        [ST_VM_LIST] = "SELECT " VM_COLUMNS " FROM vms ORDER BY registered_at, uuid",
        [ST_LEDGER_PUT] = "INSERT INTO ledger (" LEDGER_COLUMNS ") VALUES "
                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
                          "ON CONFLICT (uuid) DO UPDATE SET balance_usec = excluded.balance_usec, "
                          "launch_usec = excluded.launch_usec, surplus_usec = excluded.surplus_usec, "
                          "charged_usec = excluded.charged_usec, earned_usec = excluded.earned_usec, "
                          "spent_usec = excluded.spent_usec, forfeited_usec = excluded.forfeited_usec, "
                          "overdraft_usec = excluded.overdraft_usec, debt_usec = excluded.debt_usec, "
                          "adjusted_usec = excluded.adjusted_usec, earn_remainder = excluded.earn_remainder, "
                          "generation = excluded.generation, usage_base_usec = excluded.usage_base_usec, "
                          "tick_usec = excluded.tick_usec, frozen = excluded.frozen",
        [ST_LEDGER_GET] = "SELECT " LEDGER_COLUMNS " FROM ledger WHERE uuid = ?1",
        [ST_LEDGER_LIST] = "SELECT " LEDGER_COLUMNS " FROM ledger ORDER BY uuid",
        [ST_EVENT_ADD] = "INSERT INTO events (time_usec, vm, kind, detail_json) VALUES (?1, ?2, ?3, ?4)",
        /* seq comes from AUTOINCREMENT and only a rolled-back insert leaves
         * a gap (which its rollback also undoes in sqlite_sequence), so
         * "older than newest - keep" is the newest `keep` rows: a range
         * delete on the primary key, no sort. */
        [ST_EVENT_PRUNE] = "DELETE FROM events WHERE seq <= ?1",
        [ST_EVENTS_LIST] = "SELECT seq, time_usec, vm, kind, detail_json FROM events WHERE seq > ?1 "
                           "ORDER BY seq LIMIT ?2",
        [ST_HANDOFF_PUT] = "INSERT INTO handoff (uuid, role, epoch, outgoing, destination, record_json, updated_usec) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                           "ON CONFLICT (uuid) DO UPDATE SET role = excluded.role, epoch = excluded.epoch, "
                           "outgoing = excluded.outgoing, destination = excluded.destination, "
                           "record_json = excluded.record_json, updated_usec = excluded.updated_usec",
        [ST_HANDOFF_GET] = "SELECT role, epoch, outgoing, destination, record_json, updated_usec FROM handoff "
                           "WHERE uuid = ?1",
        [ST_META_PUT] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
        [ST_META_DELETE] = "DELETE FROM meta WHERE key = ?1",
};

/* Migrations: migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version (version) VALUES (0);"
        "CREATE TABLE vms ("
        "  uuid TEXT PRIMARY KEY NOT NULL CHECK (length(uuid) = 36),"
        "  qmp_path TEXT NOT NULL,"
        "  class TEXT NOT NULL DEFAULT '',"
        "  vcpus INTEGER NOT NULL,"
        "  baseline_ppm INTEGER NOT NULL CHECK (baseline_ppm BETWEEN 0 AND 1000000),"
        "  cap_usec INTEGER NOT NULL,"
        "  launch_usec INTEGER NOT NULL,"
        "  mode TEXT NOT NULL CHECK (mode IN ('standard', 'unlimited')),"
        "  registered_at INTEGER NOT NULL"
        ");"
        /* Unsigned 64-bit counters are stored as their int64 bit pattern. */
        "CREATE TABLE ledger ("
        "  uuid TEXT PRIMARY KEY NOT NULL REFERENCES vms (uuid) ON DELETE CASCADE,"
        "  balance_usec INTEGER NOT NULL, launch_usec INTEGER NOT NULL,"
        "  surplus_usec INTEGER NOT NULL, charged_usec INTEGER NOT NULL,"
        "  earned_usec INTEGER NOT NULL, spent_usec INTEGER NOT NULL,"
        "  forfeited_usec INTEGER NOT NULL, overdraft_usec INTEGER NOT NULL,"
        "  debt_usec INTEGER NOT NULL, adjusted_usec INTEGER NOT NULL,"
        "  earn_remainder INTEGER NOT NULL, generation INTEGER NOT NULL,"
        "  usage_base_usec INTEGER NOT NULL, tick_usec INTEGER NOT NULL"
        ");"
        /* Events outlive their VM: no foreign key. */
        "CREATE TABLE events ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  time_usec INTEGER NOT NULL,"
        "  vm TEXT NOT NULL DEFAULT '',"
        "  kind TEXT NOT NULL,"
        "  detail_json TEXT NOT NULL DEFAULT '{}'"
        ");",
        /* 2: memory (issue "Memory"): the host-pressure priority, the VM's
         * GPU and its dmem limits (sizes as int64 bit patterns: -1 = max). */
        "ALTER TABLE vms ADD COLUMN mem_priority INTEGER NOT NULL DEFAULT 0 "
        "CHECK (mem_priority BETWEEN 0 AND 4294967295);"
        "ALTER TABLE vms ADD COLUMN gpu_pci TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE vms ADD COLUMN dmem_max INTEGER NOT NULL DEFAULT -1;"
        "ALTER TABLE vms ADD COLUMN dmem_soft INTEGER NOT NULL DEFAULT -1;"
        "ALTER TABLE vms ADD COLUMN dmem_low INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE vms ADD COLUMN dmem_min INTEGER NOT NULL DEFAULT 0;",
        /* 3: a ledger frozen while the VM's QEMU is gone earns nothing
         * until it is back (docs/credits.md). */
        "ALTER TABLE ledger ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1));",
        /* 4: libvirt (issue 11): a domain libvirt runs is known by its
         * name there and has no QMP socket of vmmgr's ("" otherwise). */
        "ALTER TABLE vms ADD COLUMN libvirt_name TEXT NOT NULL DEFAULT '';",
        /* 5: live migration (issue 12, docs/migration.md): the handoff
         * journal, one row per VM that took part in one (none: the owner
         * at epoch 0).  The record is JSON made by migration/record.c. */
        "CREATE TABLE handoff ("
        "  uuid TEXT PRIMARY KEY NOT NULL REFERENCES vms (uuid) ON DELETE CASCADE,"
        "  role TEXT NOT NULL,"
        "  epoch INTEGER NOT NULL CHECK (epoch >= 0),"
        "  outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),"
        "  destination TEXT NOT NULL DEFAULT '',"
        "  record_json TEXT NOT NULL DEFAULT '',"
        "  updated_usec INTEGER NOT NULL"
        ");",
        /* 6: host live update (issue 13, docs/live-update.md): the boot id
         * vmmgrd last ran under, and a prepared live update, as text
         * (JSON made with json-c) under a key. */
        "CREATE TABLE meta ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL"
        ");",
};

_Static_assert(ARRAY_SIZE(migrations) == STATE_SCHEMA_VERSION, "one migration per schema version");

struct StateDb {
        sqlite3 *db;
        char *path;
        sqlite3_stmt *stmts[_ST_MAX];
        size_t events_keep;
};

/* ---- errors ------------------------------------------------------------------ */

static int errno_of(sqlite3 *db, int rc) {
        int sys = db ? sqlite3_system_errno(db) : 0;

        switch (rc) {
        case SQLITE_CONSTRAINT_FOREIGNKEY:
                return -ENOENT;
        case SQLITE_CONSTRAINT_PRIMARYKEY:
        case SQLITE_CONSTRAINT_UNIQUE:
                return -EEXIST;
        }
        switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
                return sys > 0 ? -sys : -EIO;
        default:
                return -EIO;
        }
}

/* The error of the last call on `db`, with the file and what we were doing. */
static int sql_fail(StateDb *db, int rc, StateError *err, const char *what) {
        int r = errno_of(db->db, rc);

        if (db->db && (rc & 0xff) == SQLITE_CANTOPEN && sqlite3_system_errno(db->db) > 0)
                set_error(err, "%s: %s: %s (%s)", db->path, what, sqlite3_errmsg(db->db),
                          strerror(sqlite3_system_errno(db->db)));
        else
                set_error(err, "%s: %s: %s", db->path, what, db->db ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
        return r;
}

/* ---- statements ------------------------------------------------------------------ */

static int stmt(StateDb *db, StmtId id, sqlite3_stmt **ret, StateError *err) {
        int rc;

        if (!db->stmts[id]) {
                rc = sqlite3_prepare_v3(db->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &db->stmts[id], NULL);
                if (rc != SQLITE_OK)
                        return sql_fail(db, rc, err, "preparing a statement");
        }
        *ret = db->stmts[id];
        return 0;
}

static void stmt_done(sqlite3_stmt *s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. */
static int exec_stmt(StateDb *db, sqlite3_stmt *s, StateError *err, const char *what) {
        int rc = sqlite3_step(s);

        stmt_done(s);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return sql_fail(db, rc, err, what);
        return 0;
}

static int exec_id(StateDb *db, StmtId id, StateError *err, const char *what) {
        sqlite3_stmt *s = NULL;
        int r = stmt(db, id, &s, err);

        return r < 0 ? r : exec_stmt(db, s, err, what);
}

/* ---- transactions ---------------------------------------------------------------- */

bool state_in_transaction(const StateDb *db) {
        return sqlite3_get_autocommit(db->db) == 0;
}

int state_begin(StateDb *db, StateError *err) {
        if (state_in_transaction(db)) {
                set_error(err, "%s: a transaction is already open", db->path);
                return -EBUSY;
        }
        return exec_id(db, ST_BEGIN, err, "beginning a transaction");
}

int state_commit(StateDb *db, StateError *err) {
        int r;

        if (!state_in_transaction(db)) {
                set_error(err, "%s: no transaction to commit", db->path);
                return -EINVAL;
        }
        r = exec_id(db, ST_COMMIT, err, "committing");
        if (r < 0)
                state_rollback(db);
        return r;
}

void state_rollback(StateDb *db) {
        /* SQLite rolls back by itself after some errors (full disk, I/O);
         * then there is nothing left to roll back. */
        if (state_in_transaction(db))
                (void) exec_id(db, ST_ROLLBACK, NULL, "rolling back");
}

/* For calls that are one transaction on their own unless the caller has
 * one open: *own says whether to commit or roll back at the end. */
static int auto_begin(StateDb *db, bool *own, StateError *err) {
        *own = !state_in_transaction(db);
        return *own ? state_begin(db, err) : 0;
}

static int auto_end(StateDb *db, bool own, int r, StateError *err) {
        if (!own)
                return r;
        if (r < 0) {
                state_rollback(db);
                return r;
        }
        return state_commit(db, err);
}

/* ---- open and close ------------------------------------------------------------- */

static int pragma_text(StateDb *db, const char *sql, char *buf, size_t size, StateError *err) {
        sqlite3_stmt *s = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db->db, sql, -1, &s, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(s, 0);

                snprintf(buf, size, "%s", t ? (const char *) t : "");
                rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
                buf[0] = '\0';
                rc = SQLITE_OK;
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_OK)
                return sql_fail(db, rc, err, sql);
        return 0;
}

static int schema_version(StateDb *db, int *ret, StateError *err) {
        char buf[32];
        int r;

        r = pragma_text(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                        buf, sizeof buf, err);
        if (r < 0)
                return r;
        if (strcmp(buf, "0") == 0) {
                *ret = 0;
                return 0;
        }
        r = pragma_text(db, "SELECT max(version) FROM schema_version", buf, sizeof buf, err);
        if (r < 0)
                return r;
        *ret = atoi(buf);
        return 0;
}

static int migrate(StateDb *db, StateError *err) {
        char *msg = NULL;
        int version, r, rc;

        r = state_begin(db, err);
        if (r < 0)
                return r;
        r = schema_version(db, &version, err);
        if (r < 0)
                goto fail;
        if (version > STATE_SCHEMA_VERSION) {
                set_error(err, "%s: schema version %d is newer than this vmmgr's (%d); refusing to touch it",
                          db->path, version, STATE_SCHEMA_VERSION);
                r = -EPROTO;
                goto fail;
        }
        for (int v = version; v < STATE_SCHEMA_VERSION; v++) {
                char sql[64];

                rc = sqlite3_exec(db->db, migrations[v], NULL, NULL, &msg);
                if (rc == SQLITE_OK) {
                        snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", v + 1);
                        rc = sqlite3_exec(db->db, sql, NULL, NULL, &msg);
                }
                if (rc != SQLITE_OK) {
                        r = errno_of(db->db, rc);
                        set_error(err, "%s: migrating the schema to version %d: %s", db->path, v + 1,
                                  msg ? msg : sqlite3_errstr(rc));
                        sqlite3_free(msg);
                        goto fail;
                }
        }
        return state_commit(db, err);
fail:
        state_rollback(db);
        return r;
}

static int check_integrity(StateDb *db, StateError *err) {
        char result[256];
        int r;

        /* Read-only, and first: a file that is not ours must not be turned
         * into WAL mode or migrated. */
        r = pragma_text(db, "PRAGMA quick_check", result, sizeof result, err);
        if (r == -EBADMSG) {
                set_error(err, "%s is not a readable SQLite database (%s); left as it is -- move it away to start afresh",
                          db->path, sqlite3_errmsg(db->db));
                return r;
        }
        if (r < 0)
                return r;
        if (strcmp(result, "ok") != 0) {
                set_error(err, "%s is corrupt (quick_check: %s); left as it is -- move it away to start afresh",
                          db->path, result);
                return -EBADMSG;
        }
        return 0;
}

int state_open(const char *dir, StateDb **ret, StateError *err) {
        _cleanup_(state_closep) StateDb *db = NULL;
        char mode[16];
        struct stat st;
        int r, rc;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                r = negative_errno();
                set_error(err, "cannot create the state directory %s: %s", dir, strerror(-r));
                return r;
        }
        if (stat(dir, &st) < 0) {
                r = negative_errno();
                set_error(err, "cannot access the state directory %s: %s", dir, strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                set_error(err, "%s is not a directory", dir);
                return -ENOTDIR;
        }
        /* SQLite would say "unable to open database file" with whatever
         * errno its last fallback left; and WAL mode needs to create the
         * -wal and -shm files next to the database even when it exists. */
        if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
                r = negative_errno();
                set_error(err, "cannot use the state directory %s for %s/%s: %s", dir, dir, STATE_DB_NAME,
                          strerror(-r));
                return r;
        }

        db = calloc(1, sizeof *db);
        if (!db)
                return -ENOMEM;
        db->events_keep = STATE_EVENTS_KEEP_DEFAULT;
        if (asprintf(&db->path, "%s/%s", dir, STATE_DB_NAME) < 0) {
                db->path = NULL;
                return -ENOMEM;
        }
        rc = sqlite3_open_v2(db->path, &db->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
                                     SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc != SQLITE_OK) {
                r = sql_fail(db, rc, err, "cannot open");
                return r;
        }
        sqlite3_extended_result_codes(db->db, 1);
        sqlite3_busy_timeout(db->db, 1000);

        r = check_integrity(db, err);
        if (r < 0)
                return r;
        r = pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof mode, err);
        if (r < 0)
                return r;
        if (strcmp(mode, "wal") != 0) {
                set_error(err, "%s: cannot switch to WAL mode (journal mode is \"%s\")", db->path, mode);
                return -EROFS;
        }
        r = pragma_text(db, "PRAGMA synchronous = FULL", mode, sizeof mode, err);
        if (r >= 0)
                r = pragma_text(db, "PRAGMA foreign_keys = ON", mode, sizeof mode, err);
        if (r < 0)
                return r;
        r = migrate(db, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(db);
        return 0;
}

StateDb *state_close(StateDb *db) {
        if (!db)
                return NULL;
        for (size_t i = 0; i < _ST_MAX; i++)
                sqlite3_finalize(db->stmts[i]);
        if (db->db) {
                if (sqlite3_get_autocommit(db->db) == 0)
                        (void) sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
                sqlite3_close(db->db);
        }
        free(db->path);
        free(db);
        return NULL;
}

const char *state_path(const StateDb *db) {
        return db->path;
}

void state_set_events_keep(StateDb *db, size_t n) {
        db->events_keep = MAX(n, (size_t) 1);
}

/* ---- VMs ----------------------------------------------------------------------------- */

static void copy_text(char *buf, size_t size, sqlite3_stmt *s, int col) {
        const unsigned char *t = sqlite3_column_text(s, col);

        snprintf(buf, size, "%s", t ? (const char *) t : "");
}

static int read_vm(StateDb *db, sqlite3_stmt *s, StateVm *ret, StateError *err) {
        StateVm vm = {};
        char id[VM_ID_STRLEN + 8], mode[16];
        int m;

        copy_text(id, sizeof id, s, 0);
        copy_text(mode, sizeof mode, s, 7);
        m = credit_mode_from_string(mode);
        /* Ids come back through the parser like every id from outside. */
        if (vm_id_parse(id, &vm.id) < 0 || m < 0) {
                set_error(err, "%s: bad row in vms (uuid \"%s\", mode \"%s\")", db->path, id, mode);
                return -EBADMSG;
        }
        copy_text(vm.qmp_path, sizeof vm.qmp_path, s, 1);
        copy_text(vm.class_name, sizeof vm.class_name, s, 2);
        vm.spec.vcpus = (uint32_t) sqlite3_column_int64(s, 3);
        vm.spec.baseline_ppm = (uint32_t) sqlite3_column_int64(s, 4);
        vm.spec.cap_usec = sqlite3_column_int64(s, 5);
        vm.spec.launch_usec = sqlite3_column_int64(s, 6);
        vm.spec.mode = (CreditMode) m;
        vm.registered_at_unix = (uint64_t) sqlite3_column_int64(s, 8);
        vm.mem_priority = (uint32_t) sqlite3_column_int64(s, 9);
        copy_text(vm.gpu_pci, sizeof vm.gpu_pci, s, 10);
        if (vm.gpu_pci[0] && !is_pci_address(vm.gpu_pci)) {
                set_error(err, "%s: bad row in vms (uuid \"%s\", gpu_pci \"%s\")", db->path, id, vm.gpu_pci);
                return -EBADMSG;
        }
        vm.dmem.max = (uint64_t) sqlite3_column_int64(s, 11);
        vm.dmem.soft = (uint64_t) sqlite3_column_int64(s, 12);
        vm.dmem.low = (uint64_t) sqlite3_column_int64(s, 13);
        vm.dmem.min = (uint64_t) sqlite3_column_int64(s, 14);
        copy_text(vm.libvirt_name, sizeof vm.libvirt_name, s, 15);
        *ret = vm;
        return 0;
}

int state_vm_put(StateDb *db, const StateVm *vm, StateError *err) {
        sqlite3_stmt *s;
        int r;

        r = stmt(db, ST_VM_PUT, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, vm->id.str, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, vm->qmp_path, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, vm->class_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, vm->spec.vcpus);
        sqlite3_bind_int64(s, 5, vm->spec.baseline_ppm);
        sqlite3_bind_int64(s, 6, vm->spec.cap_usec);
        sqlite3_bind_int64(s, 7, vm->spec.launch_usec);
        sqlite3_bind_text(s, 8, credit_mode_to_string(vm->spec.mode), -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 9, (sqlite3_int64) vm->registered_at_unix);
        sqlite3_bind_int64(s, 10, vm->mem_priority);
        sqlite3_bind_text(s, 11, vm->gpu_pci, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 12, (sqlite3_int64) vm->dmem.max);
        sqlite3_bind_int64(s, 13, (sqlite3_int64) vm->dmem.soft);
        sqlite3_bind_int64(s, 14, (sqlite3_int64) vm->dmem.low);
        sqlite3_bind_int64(s, 15, (sqlite3_int64) vm->dmem.min);
        sqlite3_bind_text(s, 16, vm->libvirt_name, -1, SQLITE_STATIC);
        r = exec_stmt(db, s, err, "storing a VM");
        if (r < 0 && err) {
                char ctx[sizeof err->message];

                snprintf(ctx, sizeof ctx, "%s", err->message);
                set_error(err, "VM %s: %s", vm->id.str, ctx);
        }
        return r;
}

int state_vm_delete(StateDb *db, const VmId *id, StateError *err) {
        sqlite3_stmt *s;
        int r;

        r = stmt(db, ST_VM_DELETE, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, id->str, -1, SQLITE_STATIC);
        r = exec_stmt(db, s, err, "deleting a VM");
        if (r < 0)
                return r;
        if (sqlite3_changes(db->db) == 0) {
                set_error(err, "VM %s is not in %s", id->str, db->path);
                return -ENOENT;
        }
        return 0;
}

int state_vm_get(StateDb *db, const VmId *id, StateVm *ret, StateError *err) {
        sqlite3_stmt *s;
        int r, rc;

        r = stmt(db, ST_VM_GET, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, id->str, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                r = read_vm(db, s, ret, err);
        else if (rc == SQLITE_DONE) {
                set_error(err, "VM %s is not in %s", id->str, db->path);
                r = -ENOENT;
        } else
                r = sql_fail(db, rc, err, "reading a VM");
        stmt_done(s);
        return r;
}

/* Grows *array of `size`-byte items to hold n + 1. */
static int grow(void **array, size_t *cap, size_t n, size_t size) {
        void *p;
        size_t c;

        if (n < *cap)
                return 0;
        c = *cap ? *cap * 2 : 16;
        p = reallocarray(*array, c, size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *cap = c;
        return 0;
}

/* Steps a prepared statement to its end, reading each row with `read` into
 * a growing array of `size`-byte rows; on success the array goes to *ret
 * (NULL when empty), on failure nothing is returned. */
typedef int (*RowReader)(StateDb *db, sqlite3_stmt *s, void *row, StateError *err);

static int list_rows(StateDb *db, sqlite3_stmt *s, size_t size, RowReader read, const char *what, void **ret,
                     size_t *ret_n, StateError *err) {
        _cleanup_free_ void *rows = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                r = grow(&rows, &cap, n, size);
                if (r >= 0)
                        r = read(db, s, (char *) rows + n * size, err);
                if (r < 0) {
                        stmt_done(s);
                        return r;
                }
                n++;
        }
        stmt_done(s);
        if (rc != SQLITE_DONE)
                return sql_fail(db, rc, err, what);
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

static int read_vm_row(StateDb *db, sqlite3_stmt *s, void *row, StateError *err) {
        return read_vm(db, s, row, err);
}

int state_vm_list(StateDb *db, StateVm **ret, size_t *ret_n, StateError *err) {
        sqlite3_stmt *s = NULL;
        int r;

        r = stmt(db, ST_VM_LIST, &s, err);
        if (r < 0)
                return r;
        return list_rows(db, s, sizeof(StateVm), read_vm_row, "listing VMs", (void **) ret, ret_n, err);
}

/* ---- ledgers --------------------------------------------------------------------------- */

static int read_ledger(StateDb *db, sqlite3_stmt *s, StateLedger *ret, StateError *err) {
        StateLedger rec = {};
        CreditLedger *l = &rec.ledger;
        char id[VM_ID_STRLEN + 8];

        copy_text(id, sizeof id, s, 0);
        if (vm_id_parse(id, &rec.id) < 0) {
                set_error(err, "%s: bad row in ledger (uuid \"%s\")", db->path, id);
                return -EBADMSG;
        }
        l->balance_usec = sqlite3_column_int64(s, 1);
        l->launch_usec = sqlite3_column_int64(s, 2);
        l->surplus_usec = sqlite3_column_int64(s, 3);
        l->charged_usec = sqlite3_column_int64(s, 4);
        l->earned_usec = (uint64_t) sqlite3_column_int64(s, 5);
        l->spent_usec = (uint64_t) sqlite3_column_int64(s, 6);
        l->forfeited_usec = (uint64_t) sqlite3_column_int64(s, 7);
        l->overdraft_usec = (uint64_t) sqlite3_column_int64(s, 8);
        l->debt_usec = sqlite3_column_int64(s, 9);
        l->adjusted_usec = sqlite3_column_int64(s, 10);
        l->earn_remainder = (uint64_t) sqlite3_column_int64(s, 11);
        l->generation = (uint64_t) sqlite3_column_int64(s, 12);
        rec.usage_base_usec = (uint64_t) sqlite3_column_int64(s, 13);
        rec.tick_usec = (uint64_t) sqlite3_column_int64(s, 14);
        rec.frozen = sqlite3_column_int64(s, 15) != 0;
        *ret = rec;
        return 0;
}

static int ledger_put(StateDb *db, sqlite3_stmt *s, const StateLedger *rec, StateError *err) {
        const CreditLedger *l = &rec->ledger;
        int r;

        sqlite3_bind_text(s, 1, rec->id.str, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, l->balance_usec);
        sqlite3_bind_int64(s, 3, l->launch_usec);
        sqlite3_bind_int64(s, 4, l->surplus_usec);
        sqlite3_bind_int64(s, 5, l->charged_usec);
        sqlite3_bind_int64(s, 6, (sqlite3_int64) l->earned_usec);
        sqlite3_bind_int64(s, 7, (sqlite3_int64) l->spent_usec);
        sqlite3_bind_int64(s, 8, (sqlite3_int64) l->forfeited_usec);
        sqlite3_bind_int64(s, 9, (sqlite3_int64) l->overdraft_usec);
        sqlite3_bind_int64(s, 10, l->debt_usec);
        sqlite3_bind_int64(s, 11, l->adjusted_usec);
        sqlite3_bind_int64(s, 12, (sqlite3_int64) l->earn_remainder);
        sqlite3_bind_int64(s, 13, (sqlite3_int64) l->generation);
        sqlite3_bind_int64(s, 14, (sqlite3_int64) rec->usage_base_usec);
        sqlite3_bind_int64(s, 15, (sqlite3_int64) rec->tick_usec);
        sqlite3_bind_int(s, 16, rec->frozen ? 1 : 0);
        r = exec_stmt(db, s, err, "storing a ledger");
        if (r == -ENOENT)
                set_error(err, "%s: ledger of VM %s, which is not registered", db->path, rec->id.str);
        return r;
}

int state_ledger_put_batch(StateDb *db, const StateLedger *recs, size_t n, StateError *err) {
        sqlite3_stmt *s;
        bool own;
        int r;

        r = stmt(db, ST_LEDGER_PUT, &s, err);
        if (r < 0)
                return r;
        r = auto_begin(db, &own, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = ledger_put(db, s, &recs[i], err);
        return auto_end(db, own, r, err);
}

int state_ledger_get(StateDb *db, const VmId *id, StateLedger *ret, StateError *err) {
        sqlite3_stmt *s;
        int r, rc;

        r = stmt(db, ST_LEDGER_GET, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, id->str, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                r = read_ledger(db, s, ret, err);
        else if (rc == SQLITE_DONE) {
                set_error(err, "no ledger for VM %s in %s", id->str, db->path);
                r = -ENOENT;
        } else
                r = sql_fail(db, rc, err, "reading a ledger");
        stmt_done(s);
        return r;
}

static int read_ledger_row(StateDb *db, sqlite3_stmt *s, void *row, StateError *err) {
        return read_ledger(db, s, row, err);
}

int state_ledger_list(StateDb *db, StateLedger **ret, size_t *ret_n, StateError *err) {
        sqlite3_stmt *s = NULL;
        int r;

        r = stmt(db, ST_LEDGER_LIST, &s, err);
        if (r < 0)
                return r;
        return list_rows(db, s, sizeof(StateLedger), read_ledger_row, "listing ledgers", (void **) ret, ret_n,
                         err);
}

/* ---- events ------------------------------------------------------------------------------ */

int state_event_add(StateDb *db, uint64_t time_unix_usec, const char *vm, const char *kind,
                    const char *detail_json, int64_t *ret_seq, StateError *err) {
        sqlite3_stmt *add, *prune;
        int64_t seq = 0;
        bool own;
        int r;

        if (!kind || !*kind || strlen(kind) >= sizeof(((ServiceEvent *) NULL)->kind) ||
            (vm && strlen(vm) > VM_ID_STRLEN)) {
                set_error(err, "invalid event (kind \"%s\")", kind ? kind : "");
                return -EINVAL;
        }
        r = stmt(db, ST_EVENT_ADD, &add, err);
        if (r >= 0)
                r = stmt(db, ST_EVENT_PRUNE, &prune, err);
        if (r < 0)
                return r;
        r = auto_begin(db, &own, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(add, 1, (sqlite3_int64) time_unix_usec);
        sqlite3_bind_text(add, 2, vm ? vm : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(add, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(add, 4, detail_json ? detail_json : "{}", -1, SQLITE_STATIC);
        r = exec_stmt(db, add, err, "adding an event");
        if (r >= 0) {
                seq = sqlite3_last_insert_rowid(db->db);
                sqlite3_bind_int64(prune, 1, seq - (int64_t) MIN(db->events_keep, (size_t) INT64_MAX));
                r = exec_stmt(db, prune, err, "pruning events");
        }
        r = auto_end(db, own, r, err);
        if (r >= 0 && ret_seq)
                *ret_seq = seq;
        return r;
}

int state_events_list(StateDb *db, int64_t since, size_t limit, ServiceEvent **ret, size_t *ret_n,
                      StateError *err) {
        ServiceEvent *events = NULL;
        size_t n = 0, cap = 0;
        sqlite3_stmt *s;
        int r, rc;

        r = stmt(db, ST_EVENTS_LIST, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_int64(s, 1, since);
        sqlite3_bind_int64(s, 2, (sqlite3_int64) MIN(limit, (size_t) INT64_MAX));
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                ServiceEvent *e;
                const unsigned char *detail;

                r = grow((void **) &events, &cap, n, sizeof *events);
                if (r < 0)
                        goto fail;
                e = &events[n];
                *e = (ServiceEvent) { .seq = sqlite3_column_int64(s, 0),
                                      .time_unix_usec = (uint64_t) sqlite3_column_int64(s, 1) };
                copy_text(e->vm, sizeof e->vm, s, 2);
                copy_text(e->kind, sizeof e->kind, s, 3);
                detail = sqlite3_column_text(s, 4);
                e->detail_json = strdup(detail ? (const char *) detail : "{}");
                if (!e->detail_json) {
                        r = -ENOMEM;
                        goto fail;
                }
                n++;
        }
        stmt_done(s);
        if (rc != SQLITE_DONE) {
                r = sql_fail(db, rc, err, "listing events");
                service_events_free(events, n);
                return r;
        }
        *ret = events;
        *ret_n = n;
        return 0;
fail:
        stmt_done(s);
        service_events_free(events, n);
        return r;
}

/* ---- the handoff journal ------------------------------------------------------------------ */

int state_handoff_put(StateDb *db, const StateHandoff *h, StateError *err) {
        sqlite3_stmt *s;
        int r, rc;

        if (strnlen(h->role, sizeof h->role) >= sizeof h->role ||
            strnlen(h->destination, sizeof h->destination) >= sizeof h->destination ||
            strnlen(h->record_json, sizeof h->record_json) >= sizeof h->record_json) {
                set_error(err, "handoff of VM %s does not fit its row", h->id.str);
                return -E2BIG;
        }
        r = stmt(db, ST_HANDOFF_PUT, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, h->id.str, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, h->role, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (int64_t) h->epoch);
        sqlite3_bind_int(s, 4, h->outgoing ? 1 : 0);
        sqlite3_bind_text(s, 5, h->destination, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, h->record_json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 7, (int64_t) h->updated_unix_usec);
        rc = sqlite3_step(s);
        stmt_done(s);
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
                set_error(err, "VM %s is not in %s", h->id.str, db->path);
                return -ENOENT;
        }
        if (rc != SQLITE_DONE)
                return sql_fail(db, rc, err, "writing a handoff");
        return 0;
}

static void copy_column(sqlite3_stmt *s, int col, char *buf, size_t size) {
        const unsigned char *t = sqlite3_column_text(s, col);

        snprintf(buf, size, "%s", t ? (const char *) t : "");
}

int state_handoff_get(StateDb *db, const VmId *id, StateHandoff *ret, StateError *err) {
        sqlite3_stmt *s;
        int r, rc;

        r = stmt(db, ST_HANDOFF_GET, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, id->str, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                *ret = (StateHandoff) { .id = *id };
                copy_column(s, 0, ret->role, sizeof ret->role);
                ret->epoch = (uint64_t) sqlite3_column_int64(s, 1);
                ret->outgoing = sqlite3_column_int(s, 2) != 0;
                copy_column(s, 3, ret->destination, sizeof ret->destination);
                copy_column(s, 4, ret->record_json, sizeof ret->record_json);
                ret->updated_unix_usec = (uint64_t) sqlite3_column_int64(s, 5);
                r = 0;
        } else if (rc == SQLITE_DONE) {
                set_error(err, "no handoff for VM %s in %s", id->str, db->path);
                r = -ENOENT;
        } else
                r = sql_fail(db, rc, err, "reading a handoff");
        stmt_done(s);
        return r;
}

/* ---- host facts ----------------------------------------------------------------------------- */

int state_meta_put(StateDb *db, const char *key, const char *value, StateError *err) {
        sqlite3_stmt *s = NULL;
        int r;

        r = stmt(db, ST_META_PUT, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
        return exec_stmt(db, s, err, "writing a host fact");
}

int state_meta_get(StateDb *db, const char *key, char **ret, StateError *err) {
        sqlite3_stmt *s = NULL;
        int r, rc;

        r = stmt(db, ST_META_GET, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(s, 0);

                *ret = strdup(t ? (const char *) t : "");
                r = *ret ? 0 : -ENOMEM;
        } else if (rc == SQLITE_DONE) {
                set_error(err, "no %s in %s", key, db->path);
                r = -ENOENT;
        } else
                r = sql_fail(db, rc, err, "reading a host fact");
        stmt_done(s);
        return r;
}

int state_meta_delete(StateDb *db, const char *key, StateError *err) {
        sqlite3_stmt *s = NULL;
        int r;

        r = stmt(db, ST_META_DELETE, &s, err);
        if (r < 0)
                return r;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        return exec_stmt(db, s, err, "deleting a host fact");
}
