/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-migration.c - live migration's credit handoff in
 * vmmgrd: migration/handoff.c's state machines fed with QEMU's events and
 * the credit bank's looks, journaled in the state database, the record
 * carried to the destination's vmmgrd (peer-sender.c, off the loop) or by
 * the migration tool (export/import).  docs/migration.md has the protocol.
 *
 * The bank stays the truth while the ledger is here.  The source's bank
 * keeps looking while frozen (its QEMU is stopped: no use, earnings as
 * ever), so a failed migration just goes on; it stops at the hand-off and
 * the VM is unregistered once the destination acknowledged.  The
 * destination starts the VM on a provisional, baseline-only bank and puts
 * the merged ledger in its place when the record arrives.
 *
 * Nothing here waits: QEMU is asked with libqmp's callbacks, peers from
 * the sender's thread, and a freeze is a counter read and one commit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-id128.h>

#include "common/log.h"
#include "common/macros.h"
#include "migration/record.h"
#include "vmmgr/api/json-io.h"
#include "vmmgr/daemon/daemon.h"
#include "vmmgr/daemon/peer-sender.h"

/* How often the timer looks while a handoff is in progress (query-migrate
 * polls of a frozen source, sends, journal retries); idle otherwise. */
#define MIG_TIMER_BUSY_USEC (50 * UINT64_C(1000))
#define MIG_TIMER_IDLE_USEC (1 * USEC_PER_SEC)
#define MIG_QUERY_TIMEOUT_MS 2000
/* A record is sent again until answered: soon at first, then backing off. */
#define MIG_SEND_MIN_USEC (300 * UINT64_C(1000))
#define MIG_SEND_MAX_USEC (5 * USEC_PER_SEC)
#define MIG_SEND_TIMEOUT_MS 3000
#define MIG_RECORDS_PATH "/v1/migration/records"

static MigRole role_of(const Vm *vm) {
        return vm->mig.role == MIG_NONE ? MIG_OWNER : vm->mig.role;
}

/* Incoming is not: its bank (nothing in it, limited to the baseline)
 * is not looked at until QEMU resumes, so it earns nothing before and
 * every bit of CPU its vCPUs use from then on is charged. */
bool daemon_vm_ledger_here(const Vm *vm) {
        switch (role_of(vm)) {
        case MIG_OWNER:
        case MIG_FROZEN:
        case MIG_PROVISIONAL:
                return true;
        default:
                return false;
        }
}

static MigRole role_from_string(const char *s) {
        for (int r = MIG_NONE; r < _MIG_ROLE_MAX; r++)
                if (strcmp(mig_role_to_string((MigRole) r), s) == 0)
                        return (MigRole) r;
        return _MIG_ROLE_MAX;
}

/* Frozen and handed off: the record to send; closed: the one that left. */
static bool has_record(const Vm *vm) {
        return vm->mig.role == MIG_FROZEN || vm->mig.role == MIG_HANDED_OFF || vm->mig.role == MIG_CLOSED;
}

bool daemon_vm_migration_row(const Vm *vm, StateHandoff *ret) {
        _cleanup_free_ char *json = NULL;

        if (vm->mig.role == MIG_NONE)
                return false;
        *ret = (StateHandoff) { .id = vm->id, .epoch = vm->mig.epoch, .outgoing = vm->mig.outgoing,
                                .updated_unix_usec = daemon_now_unix_usec() };
        snprintf(ret->role, sizeof(ret->role), "%s", mig_role_to_string(vm->mig.role));
        snprintf(ret->destination, sizeof(ret->destination), "%s", vm->mig.destination);
        if (has_record(vm)) {
                json = mig_record_to_text(&vm->mig.record);
                /* Too long cannot happen (a record is < 1 KiB); out of memory
                 * leaves it empty and the put below stores no record, which
                 * the caller's commit then refuses to send from. */
                if (json && strlen(json) < sizeof(ret->record_json))
                        strcpy(ret->record_json, json);
        }
        return true;
}

static void arm_timer(Daemon *d, uint64_t delay_usec) {
        uint64_t at = daemon_now_mono_usec() + delay_usec, cur = 0;
        int enabled = SD_EVENT_OFF;

        if (!d->mig_timer)
                return;
        (void) sd_event_source_get_enabled(d->mig_timer, &enabled);
        (void) sd_event_source_get_time(d->mig_timer, &cur);
        if (enabled != SD_EVENT_OFF && cur <= at)
                return;
        (void) sd_event_source_set_time(d->mig_timer, at);
        (void) sd_event_source_set_enabled(d->mig_timer, SD_EVENT_ONESHOT);
}

/* ---- the journal ---------------------------------------------------------- */

/* The VM's handoff row, optionally its ledger row (as `ledger`, NULL: not
 * written) and an event, in one transaction.  On failure nothing is
 * written; the caller decides what that means (a freeze not journaled is
 * journaled again before anything is sent). */
static int journal(Daemon *d, Vm *vm, const CreditLedger *ledger, uint64_t usage_base, const char *kind,
                   struct json_object *detail) {
        StateHandoff row;
        StateError serr;
        bool own = !state_in_transaction(d->db);
        int r = 0;

        if (!daemon_vm_migration_row(vm, &row))
                return 0;
        if (has_record(vm) && !row.record_json[0])
                return log_vm_error_errno(&vm->id, -ENOMEM, "cannot write its handoff record");
        if (json_io_add_string(detail, "role", row.role) < 0 || json_io_add_int(detail, "epoch", (int64_t) row.epoch) < 0)
                return -ENOMEM;
        if (own)
                r = state_begin(d->db, &serr);
        if (r == 0)
                r = state_handoff_put(d->db, &row, &serr);
        if (r == 0 && ledger) {
                StateLedger led = { .id = vm->id, .ledger = *ledger, .usage_base_usec = usage_base,
                                    .tick_usec = daemon_now_unix_usec() };
                r = state_ledger_put_batch(d->db, &led, 1, &serr);
        }
        if (r == 0)
                r = state_event_add(d->db, daemon_now_unix_usec(), vm->id.str, kind, json_io_plain(detail), NULL,
                                    &serr);
        if (r == 0 && own)
                r = state_commit(d->db, &serr);
        if (r < 0) {
                if (own && state_in_transaction(d->db))
                        state_rollback(d->db);
                return log_vm_error_errno(&vm->id, r, "could not journal %s: %s", kind, serr.message);
        }
        if (ledger)
                vm->committed_generation = ledger->generation;
        return 0;
}

/* ---- looks ----------------------------------------------------------------- */

/* Brings vm->mig's ledger to the bank's after a look now (or to the ledger
 * kept while QEMU is gone); *ret_counter is the usage counter it is
 * charged up to.  A look that fails keeps the last one's ledger: the
 * counter does not move while QEMU is stopped, so it is the same. */
static void sync_from_bank(Daemon *d, Vm *vm, uint64_t now_unix, uint64_t *ret_counter) {
        if (vm->mig.role == MIG_NONE) {
                vm->mig.vm = vm->id;
                vm->mig.role = MIG_OWNER;
        }
        if (vm->bank) {
                CreditSnapshot s;
                int r = credit_bank_tick(vm->bank, daemon_now_mono_usec());

                if (r < 0)
                        log_vm_warning_errno(&vm->id, r, "no look at the freeze (the last one counts): %m");
                credit_bank_snapshot(vm->bank, &s);
                vm->mig.ledger = s.ledger;
                vm->mig.spec = s.spec;
                *ret_counter = s.usage_usec;
        } else {
                vm->mig.ledger = vm->ledger;
                vm->mig.spec = vm->spec;
                *ret_counter = vm->usage_base_usec;
        }
        vm->mig.ledger_time_usec = now_unix;
        vm->mig.usage_base_usec = *ret_counter;
}

/* ---- source ------------------------------------------------------------------ */

static void send_schedule(Daemon *d, Vm *vm, uint64_t delay_usec) {
        vm->mig_next_send_usec = daemon_now_mono_usec() + delay_usec;
        arm_timer(d, delay_usec);
}

/* QEMU stopped for the announced migration: the ledger, looked at now, is
 * frozen into the record of epoch + 1 and journaled.  vmmgr holds nothing:
 * QEMU goes on sending its state meanwhile. */
static void src_freeze(Daemon *d, Vm *vm, const char *why) {
        uint64_t t0 = daemon_now_mono_usec(), now = daemon_now_unix_usec(), counter = 0;
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        int r;

        sync_from_bank(d, vm, now, &counter);
        r = mig_src_freeze(&vm->mig, now, counter, d->host_id);
        if (r < 0)
                return;
        if (detail && json_io_add_string(detail, "why", why) == 0 &&
            json_io_add_string(detail, "destination", vm->mig.destination) == 0 &&
            json_io_add_ledger_summary(detail, "ledger", &vm->mig.record.ledger) == 0)
                (void) journal(d, vm, NULL, 0, "migration-freeze", detail);
        vm->mig_freeze_cost_usec = daemon_now_mono_usec() - t0;
        vm->mig_query_inflight = false;
        log_vm_info(&vm->id,
                    "credits frozen for its migration (%s): %" PRId64 " usec available, epoch %" PRIu64
                    " goes to %s; %" PRIu64 " usec on the loop",
                    why, credit_ledger_available(&vm->mig.record.ledger), vm->mig.record.epoch,
                    vm->mig.destination[0] ? vm->mig.destination : "the tool (export)", vm->mig_freeze_cost_usec);
        arm_timer(d, MIG_TIMER_BUSY_USEC);
}

/* The migration's outcome.  Completed: the record is what the destination
 * takes; the bank here stops looking.  Failed: the owner again, the bank
 * goes on as it did while frozen. */
static void src_outcome(Daemon *d, Vm *vm, MigOutcome outcome, const char *why) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();

        if (mig_src_outcome(&vm->mig, outcome) < 0)
                return;
        if (detail)
                (void) json_io_add_string(detail, "why", why);
        if (outcome == MIG_COMPLETED) {
                if (detail)
                        (void) json_io_add_string(detail, "destination", vm->mig.destination);
                (void) journal(d, vm, NULL, 0, "migration-completed", detail);
                log_vm_info(&vm->id, "migration completed (%s); its record (epoch %" PRIu64 ") %s", why,
                            vm->mig.record.epoch,
                            vm->mig.destination[0] ? "goes to the destination" : "waits for export");
                vm->mig_send_backoff_usec = 0;
                send_schedule(d, vm, 0);
        } else {
                (void) journal(d, vm, NULL, 0, "migration-failed", detail);
                log_vm_info(&vm->id, "migration failed (%s); its credits stay here", why);
        }
}

/* The ledger comes back here (a nack, or the source QEMU resumed after a
 * completed migration): the owner at the same epoch; the bank looks again
 * from where it stopped, which credits the time since and charges what
 * QEMU used. */
static void src_take_back(Daemon *d, Vm *vm, const char *why, bool nack, uint64_t epoch) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        uint64_t now = daemon_now_unix_usec(), counter = vm->mig.usage_base_usec;
        int changed;

        changed = nack ? mig_src_nack(&vm->mig, epoch, now, counter) : mig_src_resumed(&vm->mig, now, counter);
        if (changed <= 0)
                return;
        if (detail)
                (void) json_io_add_string(detail, "why", why);
        (void) journal(d, vm, NULL, 0, "migration-taken-back", detail);
        log_vm_warning(&vm->id, "its credits are back here (%s)", why);
}

/* The destination acknowledged: nothing of the ledger is here any more.
 * The VM is unregistered (vm is freed: the caller must not use it). */
static void src_closed(Daemon *d, Vm *vm, uint64_t epoch, const char *via) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        ServiceError err = { 0 };
        char reason[64];

        if (mig_src_ack(&vm->mig, epoch) <= 0)
                return;
        if (detail)
                (void) json_io_add_string(detail, "via", via);
        if (journal(d, vm, NULL, 0, "migration-closed", detail) < 0)
                return; /* the timer journals it again, then unregisters */
        log_vm_info(&vm->id, "the destination took its credits (epoch %" PRIu64 ", %s)", epoch, via);
        snprintf(reason, sizeof(reason), "migrated (epoch %" PRIu64 ")", epoch);
        if (daemon_vm_unregister(d, vm, reason, &err) < 0)
                log_vm_warning(&vm->id, "migrated, but not unregistered yet: %s", err.message);
}

/* query-migrate's answer while frozen (a STOP that may or may not be the
 * migration's, or a daemon that was down when it ended). */
static void on_query_migrate(Qmp *q, int r, const char *json, const QmpError *qerr, void *userdata) {
        Vm *vm = userdata;
        QmpMigrateInfo info;

        vm->mig_query_inflight = false;
        if (r < 0 || vm->mig.role != MIG_FROZEN)
                return; /* asked again at the next timer */
        if (qmp_parse_migrate(json, &info) < 0)
                return;
        switch (info.status) {
        case QMP_MIGRATION_STATUS_COMPLETED:
                src_outcome(vm->daemon, vm, MIG_COMPLETED, "query-migrate: completed");
                break;
        case QMP_MIGRATION_STATUS_FAILED:
        case QMP_MIGRATION_STATUS_CANCELLED:
        case QMP_MIGRATION_STATUS_NONE:
                /* NONE: QEMU stopped for something else (a pause), no
                 * migration ran; the ledger stays here. */
                src_outcome(vm->daemon, vm, MIG_FAILED,
                            info.status == QMP_MIGRATION_STATUS_NONE ? "stopped, but no migration ran"
                                                                     : "query-migrate: failed or cancelled");
                break;
        default:
                break; /* still going */
        }
}

static void src_poll(Daemon *d, Vm *vm) {
        if (!vm->qmp || vm->link != VM_LINK_BOUND || vm->mig_query_inflight)
                return;
        if (qmp_execute(vm->qmp, "query-migrate", NULL, MIG_QUERY_TIMEOUT_MS, on_query_migrate, vm) == 0) {
                vm->mig_query_inflight = true;
                vm_link_kick(vm);
        }
}

/* ---- sending the record ------------------------------------------------------- */

/* Where the record goes: the destination the tool named, else (a libvirt
 * migration, whose destination vmmgr is not told) every configured peer:
 * only the one where the VM resumed applies it, the others hold it. */
static bool sends_to_peers(const Daemon *d, const Vm *vm) {
        return !vm->mig.destination[0] && vm->libvirt_name[0] && d->cfg.n_migration_peers > 0;
}

/* The destination's answer: {"reply": "ack"|"nack"|"held", "epoch": N}. */
static void on_peer_reply(const PeerReply *rep, void *userdata) {
        Daemon *d = userdata;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v;
        const char *reply = NULL;
        int64_t epoch = -1;
        Vm *vm = NULL;

        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i]->mig_send_inflight > 0 && d->vms[i]->mig_send_tag == rep->tag) {
                        vm = d->vms[i];
                        break;
                }
        if (!vm)
                return; /* unregistered meanwhile, or a stale answer */
        vm->mig_send_inflight--;
        if (rep->r < 0)
                snprintf(vm->mig_last_error, sizeof(vm->mig_last_error), "%s", rep->error);
        else {
                o = rep->body ? json_tokener_parse(rep->body) : NULL;
                if (o && json_object_object_get_ex(o, "reply", &v) && json_object_is_type(v, json_type_string))
                        reply = json_object_get_string(v);
                if (o && json_object_object_get_ex(o, "epoch", &v) && json_object_is_type(v, json_type_int))
                        epoch = json_object_get_int64(v);
                if (!reply || (rep->status != 200 && rep->status != 202))
                        snprintf(vm->mig_last_error, sizeof(vm->mig_last_error), "HTTP %ld from %s: %.160s",
                                 rep->status, vm->mig.destination[0] ? vm->mig.destination : "a peer",
                                 rep->body ? rep->body : "");
                else
                        vm->mig_last_error[0] = '\0';
        }
        if (reply && strcmp(reply, "ack") == 0 && epoch >= 0) {
                src_closed(d, vm, (uint64_t) epoch, "peer"); /* vm may be gone now */
                return;
        }
        if (reply && strcmp(reply, "nack") == 0 && epoch >= 0) {
                src_take_back(d, vm, "the destination's QEMU went before it resumed", true, (uint64_t) epoch);
                return;
        }
        if (reply && strcmp(reply, "held") == 0 && !sends_to_peers(d, vm))
                snprintf(vm->mig_last_error, sizeof(vm->mig_last_error), "held by the destination");
        if (vm->mig_send_inflight > 0)
                return; /* other peers still to answer this round */
        /* Held, refused, or not reached: again, later. */
        vm->mig_send_backoff_usec = vm->mig_send_backoff_usec ? MIN(vm->mig_send_backoff_usec * 2, MIG_SEND_MAX_USEC)
                                                              : MIG_SEND_MIN_USEC;
        send_schedule(d, vm, vm->mig_send_backoff_usec);
}

static void src_send(Daemon *d, Vm *vm) {
        _cleanup_free_ char *body = NULL;
        char key[VM_ID_STRLEN + 8];
        size_t n = sends_to_peers(d, vm) ? d->cfg.n_migration_peers : 1;
        int r = 0;

        if (!d->mig_sender || vm->mig_send_inflight > 0 || (!vm->mig.destination[0] && !sends_to_peers(d, vm)))
                return;
        body = mig_record_to_text(&vm->mig.record);
        if (!body)
                return;
        d->mig_last_tag++;
        for (size_t i = 0; i < n; i++) {
                const char *url = vm->mig.destination[0] ? vm->mig.destination : d->cfg.migration_peers[i];

                snprintf(key, sizeof(key), "%s/%zu", vm->id.str, i);
                r = peer_sender_post(d->mig_sender, key, url, MIG_RECORDS_PATH, body, MIG_SEND_TIMEOUT_MS,
                                     d->mig_last_tag);
                if (r < 0)
                        break;
                vm->mig_send_inflight++;
        }
        if (r < 0)
                snprintf(vm->mig_last_error, sizeof(vm->mig_last_error), "cannot queue the record: %s", strerror(-r));
        if (vm->mig_send_inflight == 0) {
                send_schedule(d, vm, MIG_SEND_MAX_USEC);
                return;
        }
        vm->mig_send_tag = d->mig_last_tag;
        vm->mig_sends++;
}

/* ---- the timer -------------------------------------------------------------------- */

static int on_mig_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        uint64_t now = daemon_now_mono_usec();
        bool busy = false;

        for (size_t i = 0; i < d->n_vms; i++) {
                Vm *vm = d->vms[i];

                switch (vm->mig.role) {
                case MIG_FROZEN:
                        src_poll(d, vm);
                        busy = true;
                        break;
                case MIG_HANDED_OFF:
                        if (vm->mig_send_inflight == 0 && now >= vm->mig_next_send_usec)
                                src_send(d, vm);
                        break;
                case MIG_CLOSED: {
                        /* Journaled as closed, not yet unregistered. */
                        ServiceError err = { 0 };

                        if (daemon_vm_unregister(d, vm, "migrated", &err) == 0)
                                i--; /* the list moved down */
                        break;
                }
                default:
                        break;
                }
        }
        (void) sd_event_source_set_time(s, now + (busy ? MIG_TIMER_BUSY_USEC : MIG_TIMER_IDLE_USEC));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* ---- destination ------------------------------------------------------------------ */

/* QEMU resumed: the provisional bank starts empty and earns from now;
 * the usage since it became incoming (its vCPUs ran only after the
 * resume) is charged at its next look. */
static void dst_resume(Daemon *d, Vm *vm, const char *why, bool late) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        uint64_t now = daemon_now_unix_usec();
        int r;

        if ((late ? mig_dst_resume_late(&vm->mig, now) : mig_dst_resume(&vm->mig, now)) < 0)
                return;
        if (vm->bank) {
                CreditSnapshot s;

                /* The incoming bank was never looked at, so its ledger
                 * holds nothing earned, only the use charged when it was
                 * started (a vmmgrd that came back after the resume):
                 * that use is the provisional ledger's too.  The clock
                 * restarts here. */
                credit_bank_snapshot(vm->bank, &s);
                vm->mig.ledger = s.ledger;
                r = credit_bank_install_ledger(vm->bank, &vm->spec, &vm->mig.ledger, daemon_now_mono_usec(),
                                               UINT64_MAX);
                if (r < 0)
                        log_vm_warning_errno(&vm->id, r, "the provisional bank's limit is not applied yet: %m");
        }
        if (detail)
                (void) json_io_add_string(detail, "why", why);
        (void) journal(d, vm, NULL, 0, "migration-resumed", detail);
        log_vm_info(&vm->id, "resumed here after its migration; a provisional bank until the record comes");
}

const CreditLedger *daemon_vm_migration_fresh_ledger(Daemon *d, Vm *vm) {
        bool inmigrate = strcmp(vm->run_state, "inmigrate") == 0;

        if (!inmigrate && !vm->mig_incoming)
                return NULL;
        mig_dst_incoming(&vm->mig, &vm->id, &vm->spec, 0);
        /* The bank starts on the ledger mig_dst_resume would give (nothing
         * banked, no launch credits); a QEMU that is already running (the
         * tool registered it late) is provisional from now. */
        if (!inmigrate && strcmp(vm->run_state, "running") == 0)
                (void) mig_dst_resume_late(&vm->mig, daemon_now_unix_usec());
        else {
                CreditSpec provisional = vm->spec;

                provisional.launch_usec = 0;
                credit_ledger_init(&vm->mig.ledger, &provisional);
        }
        log_vm_info(&vm->id, "the destination of a migration (%s): provisional bank",
                    inmigrate ? "QEMU is inmigrate" : "registered as incoming");
        return &vm->mig.ledger;
}

/* ---- QEMU's side ------------------------------------------------------------------ */

void daemon_vm_migration_qmp_event(Daemon *d, Vm *vm, const QmpEvent *ev) {
        MigRole role = role_of(vm);

        if (strcmp(ev->name, "STOP") == 0) {
                if (role == MIG_OWNER && vm->mig.outgoing)
                        src_freeze(d, vm, "STOP");
        } else if (strcmp(ev->name, "RESUME") == 0) {
                if (role == MIG_FROZEN)
                        src_outcome(d, vm, MIG_FAILED, "QEMU resumed here");
                else if (role == MIG_HANDED_OFF)
                        src_take_back(d, vm, "the source QEMU resumed after the migration", false, 0);
                else if (role == MIG_INCOMING)
                        dst_resume(d, vm, "RESUME", false);
        } else if (strcmp(ev->name, "MIGRATION") == 0) {
                QmpMigrationStatus st = ev->migration_status;

                if (st == QMP_MIGRATION_STATUS_COMPLETED && role == MIG_OWNER && vm->mig.outgoing)
                        src_freeze(d, vm, "MIGRATION completed"); /* a STOP we did not see */
                if (st == QMP_MIGRATION_STATUS_COMPLETED && role_of(vm) == MIG_FROZEN)
                        src_outcome(d, vm, MIG_COMPLETED, "MIGRATION completed");
                else if ((st == QMP_MIGRATION_STATUS_FAILED || st == QMP_MIGRATION_STATUS_CANCELLED) &&
                         role == MIG_FROZEN)
                        src_outcome(d, vm, MIG_FAILED, "MIGRATION failed or cancelled");
        }
}

void daemon_vm_migration_bound(Daemon *d, Vm *vm) {
        const char *st = vm->run_state;

        switch (role_of(vm)) {
        case MIG_OWNER:
                /* Announced, and QEMU is past its stop: the daemon was down
                 * at STOP.  The counter has not moved since: freeze now. */
                if (vm->mig.outgoing && (strcmp(st, "postmigrate") == 0 || strcmp(st, "finish-migrate") == 0))
                        src_freeze(d, vm, "found stopped after a restart");
                break;
        case MIG_FROZEN:
                arm_timer(d, 0); /* query-migrate decides */
                break;
        case MIG_HANDED_OFF:
                if (strcmp(st, "running") == 0)
                        src_take_back(d, vm, "the source QEMU runs again", false, 0);
                break;
        case MIG_INCOMING:
                if (strcmp(st, "running") == 0)
                        dst_resume(d, vm, "found running after a restart", true);
                break;
        default:
                break;
        }
}

void daemon_vm_migration_gone(Daemon *d, Vm *vm) {
        _cleanup_json_ struct json_object *detail = NULL;

        switch (role_of(vm)) {
        case MIG_FROZEN:
                /* The source QEMU went while frozen: whether its migration
                 * completed is the destination's to say.  The record goes
                 * out; a destination that never resumed answers nack. */
                src_outcome(d, vm, MIG_COMPLETED, "the source QEMU went while frozen");
                break;
        case MIG_INCOMING:
                if (mig_dst_gone(&vm->mig) == 0) {
                        detail = json_object_new_object();
                        if (detail)
                                (void) journal(d, vm, NULL, 0, "migration-gone", detail);
                        log_vm_info(&vm->id, "its incoming QEMU went before it resumed");
                }
                break;
        default:
                break;
        }
}

int daemon_vm_migration_load(Daemon *d, Vm *vm) {
        StateHandoff row;
        StateError serr;
        MigRecordError rerr = { 0 };
        MigRole role;
        int r;

        r = state_handoff_get(d->db, &vm->id, &row, &serr);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_vm_error_errno(&vm->id, r, "cannot read its handoff: %s", serr.message);
        role = role_from_string(row.role);
        if (role == _MIG_ROLE_MAX)
                return log_vm_error_errno(&vm->id, -EBADMSG, "unknown handoff role \"%s\" in %s", row.role,
                                          state_path(d->db));
        vm->mig = (MigVm) { .vm = vm->id, .role = role, .epoch = row.epoch, .spec = vm->spec,
                            .outgoing = row.outgoing };
        snprintf(vm->mig.destination, sizeof(vm->mig.destination), "%s", row.destination);
        if (has_record(vm) && mig_record_from_text(row.record_json, &vm->mig.record, &rerr) < 0)
                return log_vm_error_errno(&vm->id, -EBADMSG, "its journaled record is unreadable (%s): %s",
                                          rerr.field ? rerr.field : "-", rerr.message);
        if (role == MIG_HANDED_OFF || role == MIG_CLOSED)
                send_schedule(d, vm, 0);
        /* Incoming while vmmgrd was down: when QEMU resumed is unknown, so
         * the time is not paid (the merge credits it from the record's
         * freeze anyway); the use is charged from the journaled base. */
        if (role == MIG_INCOMING)
                vm->ledger_frozen = true;
        /* Provisional: the row was last written when QEMU resumed. */
        if (role == MIG_PROVISIONAL)
                vm->mig.resumed_at_usec = row.updated_unix_usec;
        log_vm_info(&vm->id, "handoff %s at epoch %" PRIu64 " resumed from the journal", row.role, row.epoch);
        return 0;
}

/* ---- libvirt (daemon-libvirt.c maps its lifecycle events here) ---------------- */

/* SUSPENDED_MIGRATED: libvirt paused the source for its migration.  A
 * libvirt migration is announced by libvirt itself: the destination is
 * not named (the record goes to the peers), or the tool exports it. */
void daemon_vm_migration_lv_source_paused(Daemon *d, Vm *vm) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();

        if (role_of(vm) != MIG_OWNER)
                return;
        if (!vm->mig.outgoing) {
                if (vm->mig.role == MIG_NONE)
                        vm->mig = (MigVm) { .vm = vm->id, .role = MIG_OWNER };
                if (mig_src_start(&vm->mig, "") < 0)
                        return;
                if (detail && json_io_add_string(detail, "destination", "") == 0 &&
                    json_io_add_string(detail, "by", "libvirt") == 0)
                        (void) journal(d, vm, NULL, 0, "migration-start", detail);
        }
        src_freeze(d, vm, "libvirt SUSPENDED_MIGRATED");
}

/* STOPPED: true when the domain is kept (it left by migration: its record
 * goes out and the ack unregisters it), false to let it go as usual. */
bool daemon_vm_migration_lv_source_stopped(Daemon *d, Vm *vm, bool migrated) {
        switch (role_of(vm)) {
        case MIG_FROZEN:
                src_outcome(d, vm, MIG_COMPLETED,
                            migrated ? "libvirt STOPPED_MIGRATED" : "the domain stopped while frozen");
                return true;
        case MIG_HANDED_OFF:
                return true;
        case MIG_INCOMING:
                /* The incoming domain went: nobody applies a record here.
                 * (A libvirt source resumes its domain when the
                 * destination fails, which takes the ledger back there.) */
                daemon_vm_migration_gone(d, vm);
                return false;
        default:
                return false;
        }
}

/* RESUMED: a source resumed after a failed migration, or a destination
 * after its migration completed. */
void daemon_vm_migration_lv_resumed(Daemon *d, Vm *vm) {
        switch (role_of(vm)) {
        case MIG_FROZEN:
                src_outcome(d, vm, MIG_FAILED, "libvirt resumed the source");
                break;
        case MIG_HANDED_OFF:
                src_take_back(d, vm, "libvirt resumed the source after its migration", false, 0);
                break;
        case MIG_INCOMING:
                dst_resume(d, vm, "libvirt RESUMED", false);
                break;
        default:
                break;
        }
}

/* ---- the service -------------------------------------------------------------------- */

void daemon_vm_migration_fill(const Vm *vm, ServiceMigration *ret) {
        *ret = (ServiceMigration) { .id = vm->id,
                                    .role = mig_role_to_string(role_of(vm)),
                                    .epoch = vm->mig.epoch,
                                    .outgoing = vm->mig.outgoing,
                                    .has_record = has_record(vm),
                                    .sends = vm->mig_sends,
                                    .freeze_cost_usec = vm->mig_freeze_cost_usec };
        snprintf(ret->destination, sizeof(ret->destination), "%s", vm->mig.destination);
        snprintf(ret->last_error, sizeof(ret->last_error), "%s", vm->mig_last_error);
        if (ret->has_record)
                ret->record = vm->mig.record;
}

static bool peer_allowed(const Daemon *d, const char *url) {
        if (d->cfg.n_migration_peers == 0)
                return true;
        for (size_t i = 0; i < d->cfg.n_migration_peers; i++)
                if (strcmp(d->cfg.migration_peers[i], url) == 0)
                        return true;
        return false;
}

int daemon_migration_start(Daemon *d, Vm *vm, const char *destination, char *errbuf, size_t errsize) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        char dest[MIG_HOST_MAX];
        int r;

        snprintf(dest, sizeof(dest), "%s", destination ? destination : "");
        if (dest[0]) {
                size_t n = strlen(dest);

                if (config_check_peer_url(dest) < 0) {
                        snprintf(errbuf, errsize, "destination must be https://HOST[:PORT], not \"%.100s\"", dest);
                        return -EINVAL;
                }
                if (dest[n - 1] == '/')
                        dest[n - 1] = '\0';
                if (!peer_allowed(d, dest)) {
                        snprintf(errbuf, errsize, "%.100s is not one of [migration] peers", dest);
                        return -EPERM;
                }
                if (!d->mig_sender) {
                        snprintf(errbuf, errsize,
                                 "vmmgrd has no client certificate for peers ([migration] or [api.tls] cert and "
                                 "key): use export and import");
                        return -EINVAL;
                }
        }
        if (vm->libvirt_name[0]) {
                snprintf(errbuf, errsize, "VM %s is a libvirt domain: its migration is libvirt's", vm->id.str);
                return -EBUSY;
        }
        if (role_of(vm) != MIG_OWNER || vm->mig.outgoing) {
                snprintf(errbuf, errsize, "VM %s is %s%s: no new migration now", vm->id.str,
                         mig_role_to_string(role_of(vm)), vm->mig.outgoing ? " with a migration announced" : "");
                return -EBUSY;
        }
        if (vm->mig.role == MIG_NONE) {
                vm->mig.vm = vm->id;
                vm->mig.role = MIG_OWNER;
        }
        r = mig_src_start(&vm->mig, dest);
        if (r < 0)
                return r;
        if (!detail || json_io_add_string(detail, "destination", dest) < 0)
                r = -ENOMEM;
        else
                r = journal(d, vm, NULL, 0, "migration-start", detail);
        if (r < 0) {
                vm->mig.outgoing = false;
                vm->mig.destination[0] = '\0';
                snprintf(errbuf, errsize, "could not journal the announcement: %s", strerror(-r));
                return r;
        }
        /* MIGRATION events say how it ends (QEMU sends them only with the
         * "events" capability; libvirt sets it, a plain tool may not).
         * Before the migration starts this is allowed; an error changes
         * nothing (query-migrate after STOP says the same). */
        if (vm->qmp && vm->link == VM_LINK_BOUND &&
            qmp_execute(vm->qmp, "migrate-set-capabilities",
                        "{\"capabilities\":[{\"capability\":\"events\",\"state\":true}]}", MIG_QUERY_TIMEOUT_MS,
                        NULL, NULL) == 0)
                vm_link_kick(vm);
        log_vm_info(&vm->id, "migration announced, to %s", dest[0] ? dest : "the tool (export)");
        return 0;
}

int daemon_migration_cancel(Daemon *d, Vm *vm, char *errbuf, size_t errsize) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();

        if (role_of(vm) != MIG_OWNER || !vm->mig.outgoing) {
                snprintf(errbuf, errsize, "VM %s has no migration to withdraw (it is %s)", vm->id.str,
                         mig_role_to_string(role_of(vm)));
                return -EBUSY;
        }
        vm->mig.outgoing = false;
        vm->mig.destination[0] = '\0';
        if (!detail)
                return -ENOMEM;
        return journal(d, vm, NULL, 0, "migration-cancel", detail);
}

int daemon_migration_reply(Daemon *d, Vm *vm, bool ack, uint64_t epoch, char *errbuf, size_t errsize) {
        if (vm->mig.role != MIG_HANDED_OFF || vm->mig.record.epoch != epoch) {
                /* A duplicate of an ack already taken, or an answer for
                 * another epoch: nothing changes. */
                if (vm->mig.role != MIG_HANDED_OFF)
                        snprintf(errbuf, errsize, "VM %s is %s, not handed off", vm->id.str,
                                 mig_role_to_string(role_of(vm)));
                else
                        snprintf(errbuf, errsize, "VM %s's record is for epoch %" PRIu64 ", not %" PRIu64,
                                 vm->id.str, vm->mig.record.epoch, epoch);
                return -EBUSY;
        }
        if (ack)
                src_closed(d, vm, epoch, "tool"); /* frees vm */
        else
                src_take_back(d, vm, "the tool says the destination never resumed", true, epoch);
        return 0;
}

/* A record arrives.  Held (no answer the source acts on) unless this VM
 * resumed here; applied once per epoch, in one transaction with its
 * ledger, before the answer. */
int daemon_migration_record(Daemon *d, const MigRecord *rec, ServiceMigrationAnswer *ret, char *errbuf,
                            size_t errsize) {
        _cleanup_json_ struct json_object *detail = NULL;
        Vm *vm = daemon_find_vm(d, &rec->vm);
        uint64_t now = daemon_now_unix_usec(), counter = 0, look_mono;
        MigVm saved;
        MigReply reply;
        bool changed = false;
        int r;

        *ret = (ServiceMigrationAnswer) { .reply = "held", .epoch = rec->epoch };
        if (!vm) {
                snprintf(ret->reason, sizeof(ret->reason), "VM %s is not registered here (yet)", rec->vm.str);
                return 0;
        }
        saved = vm->mig;
        look_mono = daemon_now_mono_usec();
        if (role_of(vm) == MIG_PROVISIONAL)
                sync_from_bank(d, vm, now, &counter);
        else if (vm->mig.role == MIG_NONE)
                vm->mig = (MigVm) { .vm = vm->id, .role = MIG_OWNER };
        reply = mig_dst_record(&vm->mig, rec, now, counter, &changed);
        if (!changed) {
                vm->mig = saved;
                ret->reply = reply == MIG_REPLY_ACK ? "ack" : reply == MIG_REPLY_NACK ? "nack" : "held";
                if (reply == MIG_REPLY_NACK)
                        snprintf(ret->reason, sizeof(ret->reason), "its incoming QEMU went before it resumed");
                else if (reply == MIG_REPLY_NONE)
                        snprintf(ret->reason, sizeof(ret->reason), "VM %s is %s here at epoch %" PRIu64, vm->id.str,
                                 mig_role_to_string(role_of(vm)), vm->mig.epoch);
                return 0;
        }
        /* Applied: journal the merged ledger, then put it in the bank. */
        detail = json_object_new_object();
        if (!detail || json_io_add_string(detail, "source", rec->source) < 0 ||
            json_io_add_ledger_summary(detail, "frozen", &rec->ledger) < 0 ||
            json_io_add_ledger_summary(detail, "provisional", &saved.ledger) < 0 ||
            json_io_add_ledger_summary(detail, "merged", &vm->mig.ledger) < 0 ||
            json_io_add_int(detail, "provisional_spent_usec", (int64_t) (saved.role == MIG_PROVISIONAL
                                                                                 ? vm->mig.ledger.spent_usec -
                                                                                           rec->ledger.spent_usec
                                                                                 : 0)) < 0 ||
            json_io_add_int(detail, "since_freeze_usec", (int64_t) (now > rec->frozen_at_usec ? now - rec->frozen_at_usec : 0)) < 0) {
                vm->mig = saved;
                return -ENOMEM;
        }
        {
                StateVm row = { 0 };
                StateError serr;
                CreditSpec old_spec = vm->spec;

                vm->spec = rec->spec;
                daemon_vm_state_row(vm, &row);
                r = state_begin(d->db, &serr);
                if (r == 0)
                        r = state_vm_put(d->db, &row, &serr);
                if (r < 0) {
                        if (state_in_transaction(d->db))
                                state_rollback(d->db);
                        vm->spec = old_spec;
                        vm->mig = saved;
                        snprintf(errbuf, errsize, "could not store the record: %s", serr.message);
                        return r;
                }
                r = journal(d, vm, &vm->mig.ledger, counter, "migration-applied", detail);
                if (r == 0) {
                        r = state_commit(d->db, &serr);
                        if (r < 0)
                                snprintf(errbuf, errsize, "could not store the record: %s", serr.message);
                } else
                        snprintf(errbuf, errsize, "could not store the record: %s", strerror(-r));
                if (r < 0) {
                        if (state_in_transaction(d->db))
                                state_rollback(d->db);
                        vm->spec = old_spec;
                        vm->mig = saved;
                        return r;
                }
        }
        if (vm->bank) {
                /* As of the look the merge was computed from: what the VM
                 * used and earned during the commit goes to the merged
                 * ledger, not to the provisional one being replaced. */
                r = credit_bank_install_ledger(vm->bank, &vm->spec, &vm->mig.ledger, look_mono,
                                               saved.role == MIG_PROVISIONAL ? counter : UINT64_MAX);
                if (r < 0)
                        log_vm_warning_errno(&vm->id, r, "the merged ledger's limit is not applied yet: %m");
                vm->committed_generation = 0; /* the next commit writes the bank's */
        } else {
                vm->ledger = vm->mig.ledger;
                vm->usage_base_usec = counter;
                vm->ledger_dirty = true;
        }
        ret->reply = "ack";
        log_vm_info(&vm->id, "record of epoch %" PRIu64 " from %s applied: %" PRId64 " usec available", rec->epoch,
                    rec->source, credit_ledger_available(&vm->mig.ledger));
        return 0;
}

/* ---- open and close --------------------------------------------------------------- */

static void host_id_default(Daemon *d) {
        sd_id128_t id;

        if (d->cfg.migration_host_id[0])
                snprintf(d->host_id, sizeof(d->host_id), "%s", d->cfg.migration_host_id);
        else if (sd_id128_get_machine(&id) >= 0)
                (void) sd_id128_to_string(id, d->host_id);
        else
                snprintf(d->host_id, sizeof(d->host_id), "unknown");
}

int daemon_migration_open(Daemon *d) {
        PeerTls tls = { 0 };
        const char *cert = d->cfg.migration_cert[0] ? d->cfg.migration_cert : d->cfg.tls_cert;
        const char *key = d->cfg.migration_key[0] ? d->cfg.migration_key : d->cfg.tls_key;
        const char *ca = d->cfg.migration_ca[0] ? d->cfg.migration_ca : d->cfg.tls_client_ca;
        int r;

        host_id_default(d);
        r = sd_event_add_time(d->loop, &d->mig_timer, CLOCK_MONOTONIC, daemon_now_mono_usec() + MIG_TIMER_IDLE_USEC,
                              10 * UINT64_C(1000), on_mig_timer, d);
        if (r < 0)
                return log_error_errno(r, "Failed to add the migration timer: %m");
        /* Without a client certificate vmmgrd cannot reach peers: records
         * then travel by export and import only. */
        if (!cert[0] || !key[0] || !ca[0])
                return 0;
        tls = (PeerTls) { .ca_file = ca, .cert_file = cert, .key_file = key };
        r = peer_sender_new(d->loop, &tls, on_peer_reply, d, &d->mig_sender);
        if (r < 0)
                return log_error_errno(r, "Failed to start the migration sender: %m");
        return 0;
}

void daemon_migration_close(Daemon *d) {
        d->mig_sender = peer_sender_free(d->mig_sender);
        d->mig_timer = sd_event_source_disable_unref(d->mig_timer);
}
