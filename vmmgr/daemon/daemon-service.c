/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The API's operations (service.h) implemented by the daemon.
 *
 * Order of every change: apply it to the bank (the kernel and the
 * ledger), commit the database transaction, and only then answer.  If
 * the commit fails, the bank change is reverted, so a client never sees
 * a state that is not on disk, and a failure changes nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "vmmgr/daemon/daemon.h"
#include "vmmgr/daemon/daemon-libvirt.h"
#include "vmmgr/api/hostinfo.h"
#include "vmmgr/api/json-io.h"

static int fail(ServiceError *err, int r, const char *field, const char *fmt, ...) _printf_(4, 5);
static int fail(ServiceError *err, int r, const char *field, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        err->field = field;
        return r;
}

static Vm *need_vm(Daemon *d, const VmId *id, ServiceError *err) {
        Vm *vm = daemon_find_vm(d, id);
        if (!vm)
                fail(err, -ENOENT, NULL, "no VM %s is registered", id->str);
        return vm;
}

static int need_bank(Vm *vm, ServiceError *err) {
        if (!vm->bank)
                return fail(err, -EBUSY, NULL, "VM %s is not connected (QEMU not running?)", vm->id.str);
        return 0;
}

static void fill_vm(const Vm *vm, ServiceVm *ret) {
        *ret = (ServiceVm) {
                .id = vm->id,
                .pid = vm->pid,
                .connected = vm->link == VM_LINK_BOUND,
                .link = vm_link_state_to_string(vm->link),
                /* libvirt: one vcpuN group per vCPU, which may hold threads
                 * the vCPU thread started: the spec counts vCPUs. */
                .n_vcpus = vm->libvirt_name[0] ? vm->spec.vcpus : (uint32_t) vm->roles.n_vcpus,
                .n_iothreads = (uint32_t) vm->roles.n_io,
                .registered_at_unix = vm->registered_at_unix,
        };
        snprintf(ret->qmp_path, sizeof(ret->qmp_path), "%s", vm->qmp_path);
        snprintf(ret->libvirt_domain, sizeof(ret->libvirt_domain), "%s", vm->libvirt_name);
        snprintf(ret->class_name, sizeof(ret->class_name), "%s", vm->class_name);
        snprintf(ret->run_state, sizeof(ret->run_state), "%s", vm->run_state);
        snprintf(ret->link_error, sizeof(ret->link_error), "%s", vm->link == VM_LINK_BOUND ? "" : vm->link_error);
}

static void fill_credits(Daemon *d, Vm *vm, ServiceCredits *ret) {
        *ret = (ServiceCredits) { .id = vm->id, .spec = vm->spec, .ledger = vm->ledger, .quota_usec = UINT64_MAX };
        snprintf(ret->class_name, sizeof(ret->class_name), "%s", vm->class_name);
        ret->bank = credit_bank_kind_to_string(d->bank_kind);
        ret->state = credit_state_to_string(CREDIT_STATE_BASELINE);
        if (vm->bank) {
                CreditSnapshot s;

                /* Fresh numbers: bring the ledger to now (and that look into
                 * the history and the events, as the tick's looks go). */
                if (credit_bank_tick(vm->bank, daemon_now_mono_usec()) == 0)
                        daemon_vm_after_look(d, vm, daemon_now_mono_usec());
                credit_bank_snapshot(vm->bank, &s);
                ret->spec = s.spec;
                ret->ledger = s.ledger;
                ret->bank = credit_bank_kind_to_string(s.kind);
                ret->state = credit_state_to_string(s.state);
                ret->usage_usec = s.usage_usec;
                ret->throttled_usec = s.throttled_usec;
                ret->quota_usec = s.enforcement.quota_usec;
                ret->period_usec = s.enforcement.period_usec;
        }
}

/* Commits, in one transaction: the VM row (when given), the ledgers of up
 * to two VMs and one event.  Nothing is on disk unless all of it is. */
static int commit_change(Daemon *d, const StateVm *row, Vm *a, Vm *b, const char *kind, struct json_object *detail,
                         ServiceError *err) {
        StateLedger recs[2];
        StateError serr;
        size_t n = 0;
        int r;

        for (Vm *vm = a; vm; vm = vm == a ? b : NULL) {
                CreditSnapshot s;
                if (!vm->bank)
                        continue;
                credit_bank_snapshot(vm->bank, &s);
                recs[n++] = (StateLedger) { .id = vm->id,
                                            .ledger = s.ledger,
                                            .usage_base_usec = s.usage_usec,
                                            .tick_usec = daemon_now_unix_usec() };
        }
        r = state_begin(d->db, &serr);
        if (r < 0)
                goto fail;
        if (row && (r = state_vm_put(d->db, row, &serr)) < 0)
                goto rollback;
        r = state_ledger_put_batch(d->db, recs, n, &serr);
        if (r < 0)
                goto rollback;
        r = state_event_add(d->db, daemon_now_unix_usec(), a ? a->id.str : "", kind, json_io_plain(detail),
                            NULL, &serr);
        if (r < 0)
                goto rollback;
        r = state_commit(d->db, &serr);
        if (r < 0)
                goto rollback;
        for (size_t i = 0; i < n; i++)
                (i == 0 ? a : b)->committed_generation = recs[i].ledger.generation;
        /* A change made through the API: logged with its event kind. */
        log_vm_event(LOG_LEVEL_INFO, a ? &a->id : NULL, kind, "API %s: %s", kind, json_io_plain(detail));
        return 0;
rollback:
        state_rollback(d->db);
fail:
        /* The request was valid; the store failed it: a server error. */
        return fail(err, r == -ENOMEM ? r : -EIO, NULL, "could not commit: %s", serr.message);
}

/* ---- operations ---------------------------------------------------------- */

static int svc_host_info(void *ctx, char **ret_json, ServiceError *err) {
        Daemon *d = ctx;
        struct json_object *o = host_features_to_json(&d->features, kh_subtree_name(d->host));
        char *s;

        if (!o)
                return fail(err, -ENOMEM, NULL, "out of memory");
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        if (!s)
                return fail(err, -ENOMEM, NULL, "out of memory");
        *ret_json = s;
        return 0;
}

static int svc_vm_list(void *ctx, ServiceVm **ret, size_t *ret_n, ServiceError *err) {
        Daemon *d = ctx;
        ServiceVm *l = calloc(d->n_vms ? d->n_vms : 1, sizeof(ServiceVm));

        if (!l)
                return fail(err, -ENOMEM, NULL, "out of memory");
        for (size_t i = 0; i < d->n_vms; i++)
                fill_vm(d->vms[i], &l[i]);
        *ret = l;
        *ret_n = d->n_vms;
        return 0;
}

static int svc_vm_get(void *ctx, const VmId *id, ServiceVm *ret, ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);
        if (!vm)
                return -ENOENT;
        fill_vm(vm, ret);
        return 0;
}

/* Lifts the VM's limit and drops it: its threads stay in vmmgr's groups
 * until QEMU exits; housekeeping then removes the empty groups. */
static void release_vm(Daemon *d, Vm *vm) {
        CpuBandwidth free_bw = { .period_usec = 100000, .quota_usec = CPU_QUOTA_MAX };

        if (kh_vm_exists(d->host, &vm->id) == 1)
                (void) kh_cpu_set_bandwidth(d->host, &vm->id, CG_ROLE_VCPUS, &free_bw, NULL);
        /* A libvirt domain's groups are libvirt's: lifted, not removed. */
        if (kh_vm_forget_foreign(d->host, &vm->id) < 0)
                (void) kh_vm_remove(d->host, &vm->id);
        vm_free(vm);
}


/* Registration, first half: checks what can be checked at once, then
 * starts the VM's link.  The VM is listed (as "connecting") so that a
 * second registration of the same id or socket is refused; it is stored
 * only once its link is up (daemon_registration_finish). */
static int svc_vm_register(void *ctx, const ServiceRegister *req, ServiceRegisterDone done, void *userdata,
                           ServiceError *err) {
        Daemon *d = ctx;
        const char *cname = req->class_name ? req->class_name : d->cfg.default_class;
        const CreditClass *cls = credit_class_find(&d->cfg.classes, cname);
        Vm *vm;
        int r;

        if (daemon_find_vm(d, &req->id))
                return fail(err, -EEXIST, "uuid", "VM %s is already registered", req->id.str);
        for (size_t i = 0; i < d->n_vms; i++)
                if (strcmp(d->vms[i]->qmp_path, req->qmp_path) == 0)
                        return fail(err, -EEXIST, "qmp", "VM %s already uses QMP socket %s",
                                    d->vms[i]->id.str, req->qmp_path);
        if (!req->has_spec && !cls)
                return fail(err, -EINVAL, "class", "unknown class \"%s\"", cname);
        vm = calloc(1, sizeof(Vm));
        if (!vm)
                return fail(err, -ENOMEM, NULL, "out of memory");
        vm->registering = calloc(1, sizeof(VmRegistration));
        if (!vm->registering) {
                vm_free(vm);
                return fail(err, -ENOMEM, NULL, "out of memory");
        }
        *vm->registering = (VmRegistration) { .done = done, .userdata = userdata };
        vm->daemon = d;
        vm->id = req->id;
        snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s", req->qmp_path);
        if (req->has_spec)
                vm->spec = req->spec;
        else {
                vm->spec = cls->spec;
                snprintf(vm->class_name, sizeof(vm->class_name), "%s", cls->name);
        }
        snprintf(vm->run_state, sizeof(vm->run_state), "unknown");
        vm->mig_incoming = req->incoming;
        vm->registered_at_unix = daemon_now_unix_usec() / USEC_PER_SEC;
        /* vCPUs come from QEMU (the earn rate is per real vCPU) unless the
         * request's spec names them. */
        if (!req->has_spec || req->spec.vcpus == 0)
                vm->spec.vcpus = 0;
        r = daemon_vm_list_add(d, vm);
        if (r < 0) {
                vm_free(vm);
                return fail(err, r, NULL, "out of memory");
        }
        r = vm_link_start(d, vm, true);
        if (r < 0) {
                fail(err, r == -ENOENT || r == -ECONNREFUSED ? -EINVAL : r, "qmp", "cannot talk QMP on %s: %s",
                     vm->qmp_path, vm->link_error[0] ? vm->link_error : strerror(-r));
                daemon_vm_list_remove(d, vm);
                vm_free(vm);
                return err->field ? (r == -ENOENT || r == -ECONNREFUSED ? -EINVAL : r) : r;
        }
        return 0;
}

/* Registration, second half: the link is up (bind, bank) or failed.  A
 * registration is stored, with its ledger and its event, in one
 * transaction before the client hears of it; any failure leaves nothing. */
void daemon_registration_finish(Daemon *d, Vm *vm, int r, const char *field, const char *reason) {
        VmRegistration reg = *vm->registering;
        _cleanup_json_ struct json_object *detail = NULL;
        ServiceError err = { 0 };
        StateError serr;
        ServiceVm svm;

        free(vm->registering);
        vm->registering = NULL;
        if (r < 0) {
                fail(&err, (r == -ENOENT || r == -ECONNREFUSED) && field && strcmp(field, "qmp") == 0 ? -EINVAL : r,
                     field, "%s", reason ? reason : strerror(-r));
                r = r == -ENOENT || r == -ECONNREFUSED ? -EINVAL : r;
                goto fail;
        }
        if (credit_spec_validate(&vm->spec, &err.field) < 0) {
                r = fail(&err, -EINVAL, err.field, "invalid credit spec: %s", err.field);
                goto fail;
        }
        detail = json_object_new_object();
        if (!detail || json_io_add_string(detail, "qmp", vm->qmp_path) < 0 ||
            json_io_add_string(detail, "class", vm->class_name) < 0 || json_io_add_int(detail, "pid", vm->pid) < 0 ||
            json_io_add_int(detail, "vcpus", vm->spec.vcpus) < 0) {
                r = fail(&err, -ENOMEM, NULL, "out of memory");
                goto fail;
        }
        r = daemon_store_registration(d, vm, detail, &serr);
        if (r < 0) {
                fail(&err, r, NULL, "could not register: %s", serr.message);
                goto fail;
        }
        vm->adopted_once = true;
        fill_vm(vm, &svm);
        reg.done(0, &svm, NULL, reg.userdata);
        return;
fail:
        /* The client hears why; the log keeps it for the operator who did
         * not make the call (a hook, the control plane). */
        log_vm_warning(&vm->id, "not registered: %s", err.message[0] ? err.message : strerror(-r));
        daemon_vm_list_remove(d, vm);
        release_vm(d, vm);
        reg.done(r, NULL, &err, reg.userdata);
}

/* The "unregister" event's detail: why, and the final ledger (the VM's
 * ledger row goes with its VM row, so this is where it is kept). */
static struct json_object *unregister_detail(Vm *vm, const char *reason) {
        struct json_object *o = json_object_new_object();
        CreditLedger l = vm->ledger;

        if (vm->mig.role == MIG_CLOSED || vm->mig.role == MIG_HANDED_OFF)
                l = vm->mig.record.ledger; /* what left with the migration */
        else if (vm->bank) {
                CreditSnapshot s;

                (void) credit_bank_tick(vm->bank, daemon_now_mono_usec());
                credit_bank_snapshot(vm->bank, &s);
                l = s.ledger;
        }
        if (!o || json_io_add_string(o, "reason", reason) < 0 ||
            json_io_add_int(o, "available_usec", credit_ledger_available(&l)) < 0 ||
            json_io_add_int(o, "balance_usec", l.balance_usec) < 0 ||
            json_io_add_int(o, "launch_usec", l.launch_usec) < 0 ||
            json_io_add_int(o, "earned_usec", (int64_t) l.earned_usec) < 0 ||
            json_io_add_int(o, "spent_usec", (int64_t) l.spent_usec) < 0 ||
            json_io_add_int(o, "generation", (int64_t) l.generation) < 0) {
                json_object_put(o);
                return NULL;
        }
        if (vm->libvirt_name[0] && json_io_add_string(o, "libvirt_domain", vm->libvirt_name) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int daemon_vm_unregister(Daemon *d, Vm *vm, const char *reason, ServiceError *err) {
        _cleanup_json_ struct json_object *detail = NULL;
        StateError serr;
        int r;

        /* Its registration's client is still waiting for QEMU: that
         * answer comes first (within the link's deadline). */
        if (vm->registering)
                return fail(err, -EBUSY, NULL, "VM %s is still being registered (QEMU has not answered yet)",
                            vm->id.str);
        detail = unregister_detail(vm, reason);
        if (!detail)
                return fail(err, -ENOMEM, NULL, "out of memory");
        r = state_begin(d->db, &serr);
        if (r == 0)
                r = state_vm_delete(d->db, &vm->id, &serr);
        if (r == 0)
                r = state_event_add(d->db, daemon_now_unix_usec(), vm->id.str, "unregister", json_io_plain(detail),
                                    NULL, &serr);
        if (r == 0)
                r = state_commit(d->db, &serr);
        if (r < 0) {
                if (state_in_transaction(d->db))
                        state_rollback(d->db);
                return fail(err, r, NULL, "could not unregister: %s", serr.message);
        }
        log_vm_event(LOG_LEVEL_INFO, &vm->id, "unregister", "unregistered (%s): %" PRId64 " usec of credits left",
                     reason, json_object_get_int64(json_object_object_get(detail, "available_usec")));
        daemon_vm_list_remove(d, vm);
        release_vm(d, vm);
        return 0;
}

static int svc_vm_unregister(void *ctx, const VmId *id, ServiceError *err) {
        Daemon *d = ctx;
        Vm *vm = need_vm(d, id, err);

        if (!vm)
                return -ENOENT;
        return daemon_vm_unregister(d, vm, "api", err);
}

static int svc_libvirt_notify(void *ctx, const VmId *id, const char *name, const char *operation,
                              ServiceError *err) {
        return daemon_libvirt_notify(ctx, id, name, operation, err);
}

static int svc_credits_get(void *ctx, const VmId *id, ServiceCredits *ret, ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);
        if (!vm)
                return -ENOENT;
        fill_credits(ctx, vm, ret);
        return 0;
}

static int svc_credits_set_spec(void *ctx, const VmId *id, const ServiceSpecChange *c, ServiceCredits *ret,
                                ServiceError *err) {
        Daemon *d = ctx;
        Vm *vm = need_vm(d, id, err);
        CreditSpec spec, old;
        char class_name[CREDIT_CLASS_NAME_MAX], old_class[CREDIT_CLASS_NAME_MAX];
        _cleanup_json_ struct json_object *detail = NULL;
        const char *field = NULL;
        CreditSnapshot before;
        StateVm row = { 0 };
        uint64_t now;
        int r;

        if (!vm)
                return -ENOENT;
        r = need_bank(vm, err);
        if (r < 0)
                return r;
        old = spec = vm->spec;
        snprintf(old_class, sizeof(old_class), "%s", vm->class_name);
        snprintf(class_name, sizeof(class_name), "%s", vm->class_name);
        if (c->set & SPEC_SET_CLASS) {
                const CreditClass *cls = credit_class_find(&d->cfg.classes, c->class_name);
                if (!cls)
                        return fail(err, -EINVAL, "class", "unknown class \"%s\"", c->class_name);
                spec = cls->spec;
                spec.vcpus = old.vcpus; /* the VM's vCPUs do not change with its class */
                snprintf(class_name, sizeof(class_name), "%s", cls->name);
        }
        if (c->set & SPEC_SET_BASELINE)
                spec.baseline_ppm = c->baseline_ppm;
        if (c->set & SPEC_SET_CAP)
                spec.cap_usec = c->cap_usec;
        if (c->set & SPEC_SET_LAUNCH)
                spec.launch_usec = c->launch_usec;
        if (c->set & SPEC_SET_MODE)
                spec.mode = c->mode;
        if (c->set & ~SPEC_SET_CLASS)
                class_name[0] = '\0'; /* a custom spec no longer is the class */
        if (credit_spec_validate(&spec, &field) < 0)
                return fail(err, -EINVAL, field, "invalid credit spec: %s", field);

        /* What an undo must bring back (a lower cap clamps the balance):
         * the ledger as of now, which set_spec accounts up to again. */
        now = daemon_now_mono_usec();
        (void) credit_bank_tick(vm->bank, now);
        credit_bank_snapshot(vm->bank, &before);
        r = credit_bank_set_spec(vm->bank, &spec, now);
        if (r < 0)
                return fail(err, r, NULL, "could not apply the spec: %s", strerror(-r));
        vm->spec = spec;
        snprintf(vm->class_name, sizeof(vm->class_name), "%s", class_name);
        daemon_vm_state_row(vm, &row); /* vm->spec and class are the new ones by now */
        detail = json_object_new_object();
        if (!detail || json_io_add_string(detail, "class", class_name) < 0 ||
            json_io_add_int(detail, "baseline_ppm", spec.baseline_ppm) < 0 ||
            json_io_add_int(detail, "cap_usec", spec.cap_usec) < 0 ||
            json_io_add_int(detail, "launch_usec", spec.launch_usec) < 0 ||
            json_io_add_string(detail, "mode", credit_mode_to_string(spec.mode)) < 0)
                r = fail(err, -ENOMEM, NULL, "out of memory");
        else
                r = commit_change(d, &row, vm, NULL, "spec", detail, err);
        if (r < 0) {
                /* Back to the old spec and the ledger as it was: credits a
                 * lower cap clamped come back, nothing counts as forfeited. */
                (void) credit_bank_restore(vm->bank, &old, &before.ledger);
                vm->spec = old;
                snprintf(vm->class_name, sizeof(vm->class_name), "%s", old_class);
                return r;
        }
        /* A libvirt domain's spec lives in its metadata: written back, or
         * the next look at the domain would bring the old one back. */
        if (daemon_libvirt_spec_changed(d, vm) < 0)
                log_vm_warning(&vm->id, "the new spec is not written to the libvirt domain's metadata now");
        fill_credits(d, vm, ret);
        return 0;
}

static int svc_credits_inject(void *ctx, const VmId *id, int64_t amount, ServiceCredits *ret, ServiceError *err) {
        Daemon *d = ctx;
        Vm *vm = need_vm(d, id, err);
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        int r;

        if (!vm)
                return -ENOENT;
        r = need_bank(vm, err);
        if (r < 0)
                return r;
        r = credit_bank_inject(vm->bank, amount, daemon_now_mono_usec());
        if (r == -ERANGE)
                return fail(err, r, "amount_usec", "%s", amount < 0 ? "the VM has fewer credits than that"
                                                                     : "that would exceed the VM's cap");
        if (r < 0)
                return fail(err, r, NULL, "could not inject: %s", strerror(-r));
        if (!detail || json_io_add_int(detail, "amount_usec", amount) < 0)
                r = fail(err, -ENOMEM, NULL, "out of memory");
        else
                r = commit_change(d, NULL, vm, NULL, "inject", detail, err);
        if (r < 0) {
                (void) credit_bank_inject(vm->bank, -amount, daemon_now_mono_usec());
                return r;
        }
        fill_credits(d, vm, ret);
        return 0;
}

static int svc_credits_transfer(void *ctx, const VmId *from, const VmId *to, int64_t amount, ServiceError *err) {
        Daemon *d = ctx;
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        Vm *a, *b;
        int r;

        a = need_vm(d, from, err);
        if (!a)
                return fail(err, -ENOENT, "from", "no VM %s is registered", from->str);
        b = need_vm(d, to, err);
        if (!b)
                return fail(err, -ENOENT, "to", "no VM %s is registered", to->str);
        if (a == b)
                return fail(err, -EINVAL, "to", "a transfer needs two different VMs");
        if (need_bank(a, err) < 0 || need_bank(b, err) < 0)
                return -EBUSY;
        r = credit_bank_transfer(a->bank, b->bank, amount, daemon_now_mono_usec());
        if (r == -ERANGE)
                return fail(err, r, "amount_usec", "the source has fewer credits, or the target's cap is lower");
        if (r < 0)
                return fail(err, r, NULL, "could not transfer: %s", strerror(-r));
        if (!detail || json_io_add_string(detail, "to", b->id.str) < 0 ||
            json_io_add_int(detail, "amount_usec", amount) < 0)
                r = fail(err, -ENOMEM, NULL, "out of memory");
        else
                r = commit_change(d, NULL, a, b, "transfer", detail, err);
        if (r < 0)
                (void) credit_bank_transfer(b->bank, a->bank, amount, daemon_now_mono_usec());
        return r;
}

static int svc_credits_history(void *ctx, const VmId *id, ServiceHistoryPoint **ret, size_t *ret_n,
                               ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);
        ServiceHistoryPoint *p;

        if (!vm)
                return -ENOENT;
        p = calloc(vm->history_n ? vm->history_n : 1, sizeof(*p));
        if (!p)
                return fail(err, -ENOMEM, NULL, "out of memory");
        for (size_t i = 0; i < vm->history_n; i++)
                p[i] = vm->history[(vm->history_head + i) % VM_HISTORY_POINTS];
        *ret = p;
        *ret_n = vm->history_n;
        return 0;
}

static int svc_events(void *ctx, int64_t since, size_t limit, ServiceEvent **ret, size_t *ret_n,
                      ServiceError *err) {
        Daemon *d = ctx;
        StateError serr;
        int r = state_events_list(d->db, since, limit, ret, ret_n, &serr);
        if (r < 0)
                return fail(err, r, NULL, "could not read events: %s", serr.message);
        return 0;
}

/* ---- metrics ------------------------------------------------------------ */


static int svc_memory_get(void *ctx, const VmId *id, ServiceMemory *ret, ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);

        if (!vm)
                return -ENOENT;
        daemon_vm_memory_report(ctx, vm, ret);
        return 0;
}

/* Applies a memory change to the VM (and back, on the way out). */
static int apply_memory(Daemon *d, Vm *vm, const ServiceMemorySet *m, ServiceError *err) {
        int r = 0;

        if (m->set & SERVICE_MEM_PRIORITY) {
                r = daemon_vm_memory_set_priority(d, vm, m->priority);
                if (r < 0)
                        return fail(err, r, "priority", "cannot apply the priority: %s", strerror(-r));
        }
        if (m->set & SERVICE_MEM_GPU) {
                MemPolDmemSpec spec = { .max = m->dmem_max, .soft = m->dmem_soft, .low = m->dmem_low,
                                        .min = m->dmem_min };

                r = daemon_vm_memory_set_gpu(d, vm, m->gpu_pci, &spec);
                if (r < 0)
                        return fail(err, r, "gpu", "cannot apply the GPU's limits: %s", strerror(-r));
        }
        return 0;
}

static int svc_memory_set(void *ctx, const VmId *id, const ServiceMemorySet *m, ServiceMemory *ret,
                          ServiceError *err) {
        Daemon *d = ctx;
        Vm *vm = need_vm(d, id, err);
        ServiceMemorySet undo = { .set = m->set };
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        StateVm row;
        int r;

        if (!vm)
                return -ENOENT;
        if (vm->registering) /* not stored yet: nothing to store this with */
                return fail(err, -EBUSY, NULL, "VM %s is still being registered (QEMU has not answered yet)",
                            id->str);
        undo.priority = vm->mem_priority;
        snprintf(undo.gpu_pci, sizeof(undo.gpu_pci), "%s", vm->gpu_pci);
        undo.dmem_max = vm->dmem.max;
        undo.dmem_soft = vm->dmem.soft;
        undo.dmem_low = vm->dmem.low;
        undo.dmem_min = vm->dmem.min;
        r = apply_memory(d, vm, m, err);
        if (r < 0) {
                (void) apply_memory(d, vm, &undo, &(ServiceError) { 0 });
                return r;
        }
        /* Stored before the API answers: what it confirmed survives a restart. */
        daemon_vm_state_row(vm, &row);
        if (!detail || json_io_add_int(detail, "priority", vm->mem_priority) < 0 ||
            json_io_add_string(detail, "gpu", vm->gpu_pci) < 0)
                r = fail(err, -ENOMEM, NULL, "out of memory");
        else
                r = commit_change(d, &row, vm, NULL, "memory", detail, err);
        if (r < 0) {
                (void) apply_memory(d, vm, &undo, &(ServiceError) { 0 });
                return r;
        }
        daemon_vm_memory_report(d, vm, ret);
        return 0;
}

static int svc_metrics(void *ctx, ServiceMetrics *ret, ServiceError *err) {
        Daemon *d = ctx;
        ServiceVmMetrics *vms = calloc(d->n_vms ? d->n_vms : 1, sizeof(ServiceVmMetrics));

        if (!vms)
                return fail(err, -ENOMEM, NULL, "out of memory");
        *ret = (ServiceMetrics) {
                .vms = vms,
                .n_vms = d->n_vms,
                .tick_interval_usec = d->cfg.tick_usec,
                .ticks = d->stats.ticks,
                .tick_errors = d->stats.tick_errors,
                .tick_cpu_nsec = d->stats.tick_cpu_nsec,
                .last_tick_cpu_nsec = d->stats.last_tick_cpu_nsec,
                .bank_looks = d->stats.bank_ticks,
                .commits = d->stats.commits,
                .commit_errors = d->stats.commit_errors,
        };
        /* One look per VM per scrape; every family reads from it. */
        for (size_t i = 0; i < d->n_vms; i++) {
                fill_credits(d, d->vms[i], &vms[i].credits);
                vms[i].link = vm_link_state_to_string(d->vms[i]->link);
        }
        daemon_memory_metrics(d, ret);
        return 0;
}

/* ---- live migration (daemon-migration.c) ---------------------------------------- */

static int svc_migration_get(void *ctx, const VmId *id, ServiceMigration *ret, ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);

        if (!vm)
                return -ENOENT;
        daemon_vm_migration_fill(vm, ret);
        return 0;
}

static int svc_migration_start(void *ctx, const VmId *id, const char *destination, ServiceMigration *ret,
                               ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);
        int r;

        if (!vm)
                return -ENOENT;
        r = daemon_migration_start(ctx, vm, destination, err->message, sizeof(err->message));
        if (r < 0) {
                err->field = r == -EINVAL || r == -EPERM ? "destination" : NULL;
                return r == -EPERM ? -EINVAL : r;
        }
        daemon_vm_migration_fill(vm, ret);
        return 0;
}

static int svc_migration_cancel(void *ctx, const VmId *id, ServiceMigration *ret, ServiceError *err) {
        Vm *vm = need_vm(ctx, id, err);
        int r;

        if (!vm)
                return -ENOENT;
        r = daemon_migration_cancel(ctx, vm, err->message, sizeof(err->message));
        if (r < 0)
                return r;
        daemon_vm_migration_fill(vm, ret);
        return 0;
}

static int svc_migration_record(void *ctx, const MigRecord *rec, ServiceMigrationAnswer *ret, ServiceError *err) {
        return daemon_migration_record(ctx, rec, ret, err->message, sizeof(err->message));
}

static int svc_migration_reply(void *ctx, const VmId *id, bool ack, uint64_t epoch, ServiceMigration *ret,
                               ServiceError *err) {
        Daemon *d = ctx;
        Vm *vm = need_vm(d, id, err);
        int r;

        if (!vm)
                return -ENOENT;
        daemon_vm_migration_fill(vm, ret);
        r = daemon_migration_reply(d, vm, ack, epoch, err->message, sizeof(err->message));
        if (r < 0)
                return r;
        /* An ack unregistered the VM: what is left to say is its end. */
        vm = daemon_find_vm(d, id);
        if (vm)
                daemon_vm_migration_fill(vm, ret);
        else {
                ret->role = mig_role_to_string(MIG_CLOSED);
                ret->has_record = false;
                ret->outgoing = false;
                ret->epoch = epoch;
        }
        return 0;
}

/* ---- host live update (daemon-liveupdate.c) ---------------------------------------- */

static int liveupdate_text(Daemon *d, char **ret_json, ServiceError *err) {
        _cleanup_json_ struct json_object *o = daemon_liveupdate_json(d);
        const char *t = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;

        *ret_json = t ? strdup(t) : NULL;
        return *ret_json ? 0 : fail(err, -ENOMEM, NULL, "out of memory");
}

static int svc_liveupdate_get(void *ctx, char **ret_json, ServiceError *err) {
        return liveupdate_text(ctx, ret_json, err);
}

static int svc_liveupdate_prepare(void *ctx, uint32_t deadline_sec, char **ret_json, ServiceError *err) {
        int r = daemon_liveupdate_prepare(ctx, deadline_sec, err->message, sizeof(err->message));

        if (r < 0) {
                err->field = r == -EINVAL ? "deadline_sec" : NULL;
                return r;
        }
        return liveupdate_text(ctx, ret_json, err);
}

static int svc_liveupdate_abort(void *ctx, char **ret_json, ServiceError *err) {
        int r = daemon_liveupdate_abort(ctx, err->message, sizeof(err->message));

        if (r < 0)
                return r;
        return liveupdate_text(ctx, ret_json, err);
}

const ServiceOps daemon_service_ops = {
        .host_info = svc_host_info,
        .vm_list = svc_vm_list,
        .vm_get = svc_vm_get,
        .libvirt_notify = svc_libvirt_notify,
        .vm_register = svc_vm_register,
        .vm_unregister = svc_vm_unregister,
        .credits_get = svc_credits_get,
        .credits_set_spec = svc_credits_set_spec,
        .credits_inject = svc_credits_inject,
        .credits_transfer = svc_credits_transfer,
        .credits_history = svc_credits_history,
        .events = svc_events,
        .metrics = svc_metrics,
        .memory_get = svc_memory_get,
        .memory_set = svc_memory_set,
        .migration_get = svc_migration_get,
        .migration_start = svc_migration_start,
        .migration_cancel = svc_migration_cancel,
        .migration_record = svc_migration_record,
        .migration_reply = svc_migration_reply,
        .liveupdate_get = svc_liveupdate_get,
        .liveupdate_prepare = svc_liveupdate_prepare,
        .liveupdate_abort = svc_liveupdate_abort,
};
