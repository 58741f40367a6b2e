/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-liveupdate.c - credits across a host live update
 * (kexec into another kernel; docs/live-update.md).
 *
 * Nothing of the kernel's survives the jump: cgroups, CFS bandwidth pools
 * and QEMU processes are gone, and the VMs come back (restarted under
 * their UUIDs, or restored by QEMU's CPR where that exists) on the new
 * kernel.  vmmgr carries the ledgers in its state database:
 *
 *   prepare   every VM's ledger is looked at now and recorded with the
 *             boot id and the time; from then on every tick commits, so
 *             a jump loses at most one tick of spending.  The VMs keep
 *             running and spending as usual.
 *   (jump)    vmmgrd stops (its clean stop commits every ledger) or is
 *             killed (the last tick's commit counts).
 *   restore   vmmgrd starts under another boot id: every ledger is
 *             frozen as of its last commit (a QEMU that is gone earns
 *             nothing, docs/credits.md) and its usage base is 0 (new
 *             groups).  Each VM that reappears is restored as its link
 *             binds it; one that does not within the deadline is
 *             reported missing (its ledger stays frozen until it does).
 *   abort     before the jump: back to normal, nothing changed; while
 *             restoring: stops waiting.
 *
 * Any start under a new boot id freezes the ledgers, prepared or not: a
 * reboot always ended every QEMU, and vmmgrd's "QEMU kept running while I
 * was down" rule would otherwise pay the VMs for the blackout.
 *
 * The prepared record is one JSON document (json-c) under the state
 * database's "liveupdate" key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "vmmgr/api/json-io.h"
#include "vmmgr/daemon/daemon.h"

#define LU_KEY "liveupdate"
#define LU_BOOT_KEY "boot_id"
#define LU_DEADLINE_DEFAULT_SEC 600u
#define LU_DEADLINE_MAX_SEC (7u * 24 * 3600)

const char *lu_state_to_string(LuState s) {
        static const char *const names[] = {
                [LU_NONE] = "none",
                [LU_PREPARED] = "prepared",
                [LU_RESTORING] = "restoring",
                [LU_DONE] = "done",
        };
        return (size_t) s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static const char *const vm_state_names[] = {
        [LU_VM_PREPARED] = "prepared",
        [LU_VM_WAITING] = "waiting",
        [LU_VM_RESTORED] = "restored",
        [LU_VM_MISSING] = "missing",
};

/* The kernel's id of this boot.  $VMMGR_BOOT_ID_FILE names another file
 * (a test seam: a restart "under another boot" without rebooting the
 * machine the tests run on; the real-kernel tier does a real kexec). */
static int read_boot_id(char buf[LU_BOOT_ID_MAX]) {
        const char *path = secure_getenv("VMMGR_BOOT_ID_FILE");
        FILE *f = fopen(path && *path ? path : "/proc/sys/kernel/random/boot_id", "re");
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, LU_BOOT_ID_MAX - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return buf[0] ? 0 : -EBADMSG;
}

/* ---- the record as JSON ----------------------------------------------------- */

static int64_t get_int(struct json_object *o, const char *key) {
        struct json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
                                                                                              : 0;
}

static const char *get_str(struct json_object *o, const char *key) {
        struct json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v)
                       : "";
}

static void read_ledger(struct json_object *o, const char *key, CreditLedger *l) {
        struct json_object *x;

        *l = (CreditLedger){ 0 };
        if (!json_object_object_get_ex(o, key, &x))
                return;
        l->balance_usec = get_int(x, "balance_usec");
        l->launch_usec = get_int(x, "launch_usec");
        l->surplus_usec = get_int(x, "surplus_usec");
        l->debt_usec = get_int(x, "debt_usec");
        l->spent_usec = (uint64_t) get_int(x, "spent_usec");
        l->earned_usec = (uint64_t) get_int(x, "earned_usec");
}

/* The whole record, for the database and for the API alike. */
struct json_object *daemon_liveupdate_json(const Daemon *d) {
        const LiveUpdate *lu = &d->lu;
        struct json_object *o = json_object_new_object(), *a = json_object_new_array();
        bool ok;

        ok = o && a && json_io_add_string(o, "state", lu_state_to_string(lu->state)) == 0 &&
             json_io_add_string(o, "prepared_boot_id", lu->boot_id) == 0 &&
             json_io_add_string(o, "current_boot_id", d->boot_id) == 0 &&
             json_io_add_int(o, "prepared_at_usec", (int64_t) lu->prepared_unix_usec) == 0 &&
             json_io_add_int(o, "deadline_sec", lu->deadline_sec) == 0 &&
             json_io_add_int(o, "restore_started_usec", (int64_t) lu->restore_started_unix_usec) == 0 &&
             json_io_add_int(o, "restore_ms", (int64_t) lu->restore_ms) == 0;
        for (size_t i = 0; ok && i < lu->n_vms; i++) {
                const LuVm *v = &lu->vms[i];
                struct json_object *x = json_object_new_object();

                ok = x && json_io_add_string(x, "uuid", v->id.str) == 0 &&
                     json_io_add_string(x, "state", vm_state_names[v->state]) == 0 &&
                     json_io_add_string(x, "bank", v->bank) == 0 &&
                     json_io_add_ledger_summary(x, "prepared", &v->prepared) == 0 &&
                     json_io_add_int(x, "prepared_usage_usec", (int64_t) v->prepared_usage_usec) == 0 &&
                     json_io_add_int(x, "kernel_pool_usec", v->kernel_pool_usec) == 0;
                if (ok && v->state == LU_VM_RESTORED)
                        ok = json_io_add_ledger_summary(x, "at_jump", &v->at_jump) == 0 &&
                             json_io_add_ledger_summary(x, "restored", &v->restored) == 0 &&
                             json_io_add_int(x, "at_jump_usec", (int64_t) v->at_jump_unix_usec) == 0 &&
                             json_io_add_int(x, "restored_at_usec", (int64_t) v->restored_unix_usec) == 0 &&
                             json_io_add_int(x, "blackout_usec", (int64_t) v->blackout_usec) == 0 &&
                             json_io_add_int(x, "charged_on_return_usec", (int64_t) v->charged_on_return_usec) == 0;
                if (ok && v->error[0])
                        ok = json_io_add_string(x, "error", v->error) == 0;
                if (!ok || json_object_array_add(a, x) < 0) {
                        json_object_put(x);
                        ok = false;
                }
        }
        if (!ok || json_object_object_add(o, "vms", a) < 0) {
                if (!ok)
                        json_object_put(a);
                json_object_put(o);
                return NULL;
        }
        return o;
}

static int lu_store(Daemon *d) {
        _cleanup_json_ struct json_object *o = NULL;
        StateError serr;
        int r;

        if (d->lu.state == LU_NONE) {
                r = state_meta_delete(d->db, LU_KEY, &serr);
                goto done;
        }
        o = daemon_liveupdate_json(d);
        if (!o)
                return -ENOMEM;
        r = state_meta_put(d->db, LU_KEY, json_io_plain(o), &serr);
done:
        if (r < 0)
                return log_error_errno(r, "Failed to store the live update: %s", serr.message);
        d->lu.dirty = false;
        return 0;
}

static void lu_clear(LiveUpdate *lu) {
        free(lu->vms);
        *lu = (LiveUpdate){ 0 };
}

static int lu_load(Daemon *d) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *a;
        StateError serr;
        const char *st;
        int r;

        r = state_meta_get(d->db, LU_KEY, &text, &serr);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Failed to read the live update: %s", serr.message);
        o = json_tokener_parse(text);
        if (!o || !json_object_object_get_ex(o, "vms", &a) || !json_object_is_type(a, json_type_array))
                return log_error_errno(-EBADMSG, "The live update in %s is unreadable; left as it is",
                                       state_path(d->db));
        st = get_str(o, "state");
        d->lu.state = strcmp(st, "prepared") == 0    ? LU_PREPARED
                      : strcmp(st, "restoring") == 0 ? LU_RESTORING
                      : strcmp(st, "done") == 0      ? LU_DONE
                                                     : LU_NONE;
        snprintf(d->lu.boot_id, sizeof(d->lu.boot_id), "%s", get_str(o, "prepared_boot_id"));
        d->lu.prepared_unix_usec = (uint64_t) get_int(o, "prepared_at_usec");
        d->lu.deadline_sec = (uint32_t) get_int(o, "deadline_sec");
        d->lu.restore_started_unix_usec = (uint64_t) get_int(o, "restore_started_usec");
        d->lu.restore_ms = (uint64_t) get_int(o, "restore_ms");
        d->lu.n_vms = json_object_array_length(a);
        d->lu.vms = calloc(MAX(d->lu.n_vms, (size_t) 1), sizeof(LuVm));
        if (!d->lu.vms)
                return -ENOMEM;
        for (size_t i = 0; i < d->lu.n_vms; i++) {
                struct json_object *x = json_object_array_get_idx(a, i);
                LuVm *v = &d->lu.vms[i];

                if (vm_id_parse(get_str(x, "uuid"), &v->id) < 0)
                        return log_error_errno(-EBADMSG, "The live update in %s names a bad VM id", state_path(d->db));
                st = get_str(x, "state");
                v->state = LU_VM_PREPARED;
                for (size_t k = 0; k < ARRAY_SIZE(vm_state_names); k++)
                        if (strcmp(st, vm_state_names[k]) == 0)
                                v->state = (LuVmState) k;
                snprintf(v->bank, sizeof(v->bank), "%s", get_str(x, "bank"));
                read_ledger(x, "prepared", &v->prepared);
                v->prepared_usage_usec = (uint64_t) get_int(x, "prepared_usage_usec");
                v->kernel_pool_usec = get_int(x, "kernel_pool_usec");
                read_ledger(x, "at_jump", &v->at_jump);
                read_ledger(x, "restored", &v->restored);
                v->at_jump_unix_usec = (uint64_t) get_int(x, "at_jump_usec");
                v->restored_unix_usec = (uint64_t) get_int(x, "restored_at_usec");
                v->blackout_usec = (uint64_t) get_int(x, "blackout_usec");
                v->charged_on_return_usec = (uint64_t) get_int(x, "charged_on_return_usec");
                snprintf(v->error, sizeof(v->error), "%s", get_str(x, "error"));
        }
        return 0;
}

static LuVm *lu_find(Daemon *d, const VmId *id) {
        for (size_t i = 0; i < d->lu.n_vms; i++)
                if (vm_id_equal(&d->lu.vms[i].id, id))
                        return &d->lu.vms[i];
        return NULL;
}

static void lu_event(Daemon *d, const VmId *id, const char *kind, struct json_object *detail) {
        (void) daemon_event(d, id, kind, detail);
}

/* ---- start-up ------------------------------------------------------------------ */

int daemon_liveupdate_open(Daemon *d) {
        _cleanup_free_ char *last = NULL;
        StateError serr;
        int r;

        d->started_mono_usec = daemon_now_mono_usec();
        r = read_boot_id(d->boot_id);
        if (r < 0) {
                log_warning_errno(r, "Cannot read this boot's id: a reboot will not be told from a restart: %m");
                d->boot_id[0] = '\0';
        }
        r = state_meta_get(d->db, LU_BOOT_KEY, &last, &serr);
        if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "Failed to read the last boot id: %s", serr.message);
        d->rebooted = r == 0 && d->boot_id[0] && strcmp(last, d->boot_id) != 0;
        if (d->boot_id[0] && (r == -ENOENT || d->rebooted)) {
                r = state_meta_put(d->db, LU_BOOT_KEY, d->boot_id, &serr);
                if (r < 0)
                        return log_error_errno(r, "Failed to store the boot id: %s", serr.message);
        }
        r = lu_load(d);
        if (r < 0)
                return r;
        if (d->rebooted)
                log_info("This host booted since vmmgrd last ran (boot id %s, was %s): every ledger is frozen "
                         "until its VM is back",
                         d->boot_id, last);
        if (d->lu.state == LU_PREPARED && d->rebooted) {
                d->lu.state = LU_RESTORING;
                d->lu.restore_started_unix_usec = daemon_now_unix_usec();
                for (size_t i = 0; i < d->lu.n_vms; i++)
                        d->lu.vms[i].state = LU_VM_WAITING;
                (void) lu_store(d);
                lu_event(d, NULL, "live-update-restore", NULL);
                log_info("Live update: restoring %zu VM(s) prepared under boot %s", d->lu.n_vms, d->lu.boot_id);
        } else if (d->lu.state == LU_RESTORING && d->rebooted) {
                /* A second jump before the first restore ended: what was
                 * restored is the ledger now; wait again for everyone. */
                for (size_t i = 0; i < d->lu.n_vms; i++)
                        if (d->lu.vms[i].state != LU_VM_MISSING)
                                d->lu.vms[i].state = LU_VM_WAITING;
                d->lu.restore_started_unix_usec = daemon_now_unix_usec();
                (void) lu_store(d);
        }
        return 0;
}

void daemon_liveupdate_close(Daemon *d) {
        lu_clear(&d->lu);
}

/* ---- prepare, abort ------------------------------------------------------------- */

int daemon_liveupdate_prepare(Daemon *d, uint32_t deadline_sec, char *errbuf, size_t errsize) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        LuVm *vms;
        size_t n = 0;
        uint64_t now_mono = daemon_now_mono_usec(), now = daemon_now_unix_usec();
        int r;

        if (d->lu.state == LU_PREPARED || d->lu.state == LU_RESTORING) {
                snprintf(errbuf, errsize, "a live update is %s already (abort it first)",
                         lu_state_to_string(d->lu.state));
                return -EBUSY;
        }
        if (!d->boot_id[0]) {
                snprintf(errbuf, errsize, "this boot's id is unknown (/proc/sys/kernel/random/boot_id)");
                return -EIO;
        }
        if (deadline_sec == 0)
                deadline_sec = LU_DEADLINE_DEFAULT_SEC;
        if (deadline_sec > LU_DEADLINE_MAX_SEC) {
                snprintf(errbuf, errsize, "deadline_sec is at most %u", LU_DEADLINE_MAX_SEC);
                return -EINVAL;
        }
        vms = calloc(MAX(d->n_vms, (size_t) 1), sizeof(LuVm));
        if (!vms)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_vms; i++) {
                Vm *vm = d->vms[i];
                LuVm *v = &vms[n];

                if (!daemon_vm_ledger_here(vm) || vm->registering)
                        continue; /* migrated away, or not stored yet */
                *v = (LuVm){ .id = vm->id, .state = LU_VM_PREPARED, .kernel_pool_usec = -1 };
                if (vm->bank) {
                        CreditSnapshot s;

                        (void) credit_bank_tick(vm->bank, now_mono);
                        credit_bank_snapshot(vm->bank, &s);
                        v->prepared = s.ledger;
                        v->prepared_usage_usec = s.usage_usec;
                        snprintf(v->bank, sizeof(v->bank), "%s", credit_bank_kind_to_string(s.kind));
                        if (s.kind == CREDIT_BANK_KERNEL)
                                v->kernel_pool_usec = (int64_t) s.kernel_runtime_usec;
                } else {
                        v->prepared = vm->ledger;
                        v->prepared_usage_usec = vm->usage_base_usec;
                        snprintf(v->bank, sizeof(v->bank), "none (QEMU not running)");
                }
                n++;
        }
        lu_clear(&d->lu);
        d->lu = (LiveUpdate){
                .state = LU_PREPARED, .prepared_unix_usec = now, .deadline_sec = deadline_sec, .vms = vms, .n_vms = n
        };
        snprintf(d->lu.boot_id, sizeof(d->lu.boot_id), "%s", d->boot_id);
        /* The ledgers as looked at, and the record, in one go. */
        r = daemon_commit_ledgers(d, true);
        if (r == 0)
                r = lu_store(d);
        if (r < 0) {
                lu_clear(&d->lu);
                snprintf(errbuf, errsize, "could not store the live update: %s", strerror(-r));
                return r;
        }
        if (detail && json_io_add_int(detail, "vms", (int64_t) n) == 0 &&
            json_io_add_string(detail, "boot_id", d->boot_id) == 0)
                lu_event(d, NULL, "live-update-prepare", detail);
        log_info("Live update prepared: %zu VM(s) recorded under boot %s; every tick commits until the jump", n,
                 d->boot_id);
        return 0;
}

int daemon_liveupdate_abort(Daemon *d, char *errbuf, size_t errsize) {
        LuState was = d->lu.state;
        int r;

        if (was != LU_PREPARED && was != LU_RESTORING) {
                snprintf(errbuf, errsize, "no live update to abort (it is %s)", lu_state_to_string(was));
                return -EBUSY;
        }
        lu_clear(&d->lu);
        r = lu_store(d);
        if (r < 0) {
                snprintf(errbuf, errsize, "could not store the abort: %s", strerror(-r));
                return r;
        }
        lu_event(d, NULL, "live-update-abort", NULL);
        log_info("Live update aborted (it was %s)", lu_state_to_string(was));
        return 0;
}

/* ---- restore ---------------------------------------------------------------------- */

/* The VM is linked again and its bank started.  On a restore this is its
 * return: what its ledger was at the jump (as adopted), what it is now
 * (the new QEMU's use before its link charged), and the blackout. */
void daemon_liveupdate_vm_back(Daemon *d, Vm *vm, const CreditLedger *at_jump, uint64_t at_jump_unix_usec) {
        _cleanup_json_ struct json_object *detail = NULL;
        LuVm *v;
        CreditSnapshot s;
        bool all = true;

        if (d->lu.state != LU_RESTORING || !(v = lu_find(d, &vm->id)) || v->state == LU_VM_RESTORED || !vm->bank)
                return;
        credit_bank_snapshot(vm->bank, &s);
        v->state = LU_VM_RESTORED;
        v->at_jump = *at_jump;
        v->at_jump_unix_usec = at_jump_unix_usec;
        v->restored = s.ledger;
        v->restored_unix_usec = daemon_now_unix_usec();
        v->blackout_usec = v->restored_unix_usec > at_jump_unix_usec ? v->restored_unix_usec - at_jump_unix_usec : 0;
        v->charged_on_return_usec =
                s.ledger.spent_usec > at_jump->spent_usec ? s.ledger.spent_usec - at_jump->spent_usec : 0;
        v->error[0] = '\0';
        snprintf(v->bank, sizeof(v->bank), "%s", credit_bank_kind_to_string(s.kind));
        detail = json_object_new_object();
        if (detail && json_io_add_ledger_summary(detail, "at_jump", at_jump) == 0 &&
            json_io_add_ledger_summary(detail, "restored", &s.ledger) == 0 &&
            json_io_add_int(detail, "blackout_usec", (int64_t) v->blackout_usec) == 0)
                lu_event(d, &vm->id, "live-update-restored", detail);
        for (size_t i = 0; i < d->lu.n_vms; i++)
                all = all && d->lu.vms[i].state == LU_VM_RESTORED;
        if (all) {
                d->lu.state = LU_DONE;
                d->lu.restore_ms = (daemon_now_mono_usec() - d->started_mono_usec) / 1000;
                lu_event(d, NULL, "live-update-done", NULL);
                log_info("Live update: every VM restored, %" PRIu64 " ms after vmmgrd started", d->lu.restore_ms);
        }
        (void) lu_store(d);
}

/* Housekeeping: VMs not back within the deadline are reported missing
 * (their ledgers stay frozen; a late return still restores them). */
void daemon_liveupdate_housekeeping(Daemon *d) {
        uint64_t now = daemon_now_unix_usec();
        bool changed = false;

        if (d->lu.state != LU_RESTORING ||
            now < d->lu.restore_started_unix_usec + (uint64_t) d->lu.deadline_sec * USEC_PER_SEC)
                return;
        for (size_t i = 0; i < d->lu.n_vms; i++) {
                LuVm *v = &d->lu.vms[i];

                if (v->state != LU_VM_WAITING)
                        continue;
                v->state = LU_VM_MISSING;
                snprintf(v->error, sizeof(v->error), "not back within %u s; its ledger stays frozen",
                         d->lu.deadline_sec);
                lu_event(d, &v->id, "live-update-missing", NULL);
                log_vm_event(LOG_LEVEL_WARNING, &v->id, "live-update-missing",
                             "not back within %u s after a live update", d->lu.deadline_sec);
                changed = true;
        }
        if (changed)
                (void) lu_store(d);
}
