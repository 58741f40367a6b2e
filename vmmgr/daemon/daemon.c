/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrd's core: start-up, the event loop's sources, VM connections,
 * the credit tick, ledger commits and housekeeping.  The API operations
 * are in daemon-service.c.
 */
#include "vmmgr/daemon/daemon.h"
#include "vmmgr/daemon/daemon-libvirt.h"
#include "vmmgr/daemon/daemon-listen.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"

#define HOUSEKEEPING_USEC (5 * USEC_PER_SEC)
#define WARNING_INTERVAL_USEC (60 * USEC_PER_SEC) /* for warnings that could repeat every tick */
#define SURPLUS_NOTICE_QUIET_USEC (60 * USEC_PER_SEC)
/* Socket-activated, the API waits this long at most for the VMs being
 * re-adopted (QMP in flight) before it accepts: a request queued across
 * an upgrade finds its VM connected, not 409 (docs/vmmgrd.md). */
#define API_GATE_USEC (2 * USEC_PER_SEC)
#define API_GATE_POLL_USEC (5 * USEC_PER_SEC / 1000)
/* After SIGTERM the API finishes what is under way (api_quiesce()) for
 * at most its request timeout and this much more. */
#define DRAIN_SLACK_USEC (1 * USEC_PER_SEC)

uint64_t daemon_now_mono_usec(void) {
        return clock_now_usec(CLOCK_MONOTONIC);
}

uint64_t daemon_now_unix_usec(void) {
        return clock_now_usec(CLOCK_REALTIME);
}

static uint64_t thread_cpu_nsec(void) {
        return clock_now_nsec(CLOCK_THREAD_CPUTIME_ID);
}

/* The VMs are kept twice: d->vms in registration order (what the API
 * lists, what the loops walk) and d->by_id sorted by id, so that finding
 * one -- every API request does -- is a binary search, not a walk over
 * 1,000 VMs. */
static size_t by_id_position(const Daemon *d, const char *id, bool *ret_found) {
        size_t lo = 0, hi = d->n_vms;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(d->by_id[mid]->id.str, id);

                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

Vm *daemon_find_vm(Daemon *d, const VmId *id) {
        bool found;
        size_t i = by_id_position(d, id->str, &found);

        return found ? d->by_id[i] : NULL;
}

int daemon_vm_list_add(Daemon *d, Vm *vm) {
        Vm **nv, **ni;
        size_t pos;
        bool found;

        pos = by_id_position(d, vm->id.str, &found);
        if (found)
                return -EEXIST;
        nv = reallocarray(d->vms, d->n_vms + 1, sizeof(Vm *));
        if (!nv)
                return -ENOMEM;
        d->vms = nv;
        ni = reallocarray(d->by_id, d->n_vms + 1, sizeof(Vm *));
        if (!ni)
                return -ENOMEM;
        d->by_id = ni;
        memmove(&d->by_id[pos + 1], &d->by_id[pos], (d->n_vms - pos) * sizeof(Vm *));
        d->by_id[pos] = vm;
        d->vms[d->n_vms++] = vm;
        return 0;
}

void daemon_vm_list_remove(Daemon *d, Vm *vm) {
        bool found;
        size_t pos = by_id_position(d, vm->id.str, &found);

        if (!found || d->by_id[pos] != vm)
                return;
        memmove(&d->by_id[pos], &d->by_id[pos + 1], (d->n_vms - pos - 1) * sizeof(Vm *));
        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i] == vm) {
                        memmove(&d->vms[i], &d->vms[i + 1], (d->n_vms - i - 1) * sizeof(Vm *));
                        break;
                }
        d->n_vms--;
}

int daemon_event(Daemon *d, const VmId *vm, const char *kind, struct json_object *detail) {
        StateError err;
        int r;

        /* Inside a tick, its events share one transaction (one fsync for
         * hundreds of state changes, not one each). */
        if (d->tick_batch && !state_in_transaction(d->db) && state_begin(d->db, &err) == 0)
                d->tick_batch_open = true;
        r = state_event_add(d->db, daemon_now_unix_usec(), vm ? vm->str : "", kind, json_io_plain(detail), NULL,
                                &err);
        if (r < 0)
                log_warning_errno(r, "Failed to record event %s: %s", kind, err.message);
        return r;
}

/* ---- VM connections --------------------------------------------------- */

void daemon_vm_state_row(const Vm *vm, StateVm *ret) {
        *ret = (StateVm) { .id = vm->id, .spec = vm->spec, .registered_at_unix = vm->registered_at_unix,
                           .mem_priority = vm->mem_priority, .dmem = vm->dmem };
        snprintf(ret->qmp_path, sizeof(ret->qmp_path), "%s", vm->qmp_path);
        snprintf(ret->class_name, sizeof(ret->class_name), "%s", vm->class_name);
        snprintf(ret->gpu_pci, sizeof(ret->gpu_pci), "%s", vm->gpu_pci);
        snprintf(ret->libvirt_name, sizeof(ret->libvirt_name), "%s", vm->libvirt_name);
}

void vm_free(Vm *vm) {
        if (!vm)
                return;
        if (vm->daemon)
                daemon_vm_memory_stop(vm->daemon, vm);
        vm_link_stop(vm);
        free(vm->registering);
        credit_bank_free(vm->bank);
        vm_thread_roles_done(&vm->roles);
        free(vm->history);
        free(vm);
}

/* Samples the bank into the VM's history ring after a look, at most once
 * a second (a bank looked at every 5 s gives a point every 5 s). */
static void vm_record_history(Vm *vm, uint64_t now_mono) {
        CreditSnapshot s;
        ServiceHistoryPoint *p;

        if (!vm->bank || (vm->history_n > 0 && now_mono < vm->history_last_usec + USEC_PER_SEC))
                return;
        if (!vm->history) {
                vm->history = calloc(VM_HISTORY_POINTS, sizeof(ServiceHistoryPoint));
                if (!vm->history)
                        return; /* history is a convenience: no memory, no history */
        }
        credit_bank_snapshot(vm->bank, &s);
        p = &vm->history[(vm->history_head + vm->history_n) % VM_HISTORY_POINTS];
        *p = (ServiceHistoryPoint) {
                .time_unix_usec = daemon_now_unix_usec(),
                .available_usec = credit_ledger_available(&s.ledger),
                .usage_usec = s.usage_usec,
                .state = (uint8_t) s.state,
        };
        if (vm->history_n < VM_HISTORY_POINTS)
                vm->history_n++;
        else
                vm->history_head = (vm->history_head + 1) % VM_HISTORY_POINTS;
        vm->history_last_usec = now_mono;
}

/* Keeps the ledger a disconnected VM had, then drops the live parts.
 * The ledger is frozen from now until QEMU is back (docs/credits.md) and
 * written at once: the commit covers VMs without a bank too. */
void daemon_vm_disconnect(Daemon *d, Vm *vm, const char *why) {
        daemon_vm_memory_stop(d, vm);
        if (vm->bank) {
                CreditSnapshot s;
                (void) credit_bank_tick(vm->bank, daemon_now_mono_usec());
                credit_bank_snapshot(vm->bank, &s);
                vm->ledger = s.ledger;
                vm->usage_base_usec = s.usage_usec;
                vm->ledger_time_unix_usec = daemon_now_unix_usec();
                vm->ledger_frozen = true;
                vm->ledger_dirty = true;
                vm->bank = credit_bank_free(vm->bank);
        }
        vm->qmp_io = sd_event_source_disable_unref(vm->qmp_io);
        if (vm->qmp) {
                qmp_free(vm->qmp);
                vm->qmp = NULL;
                log_vm_info(&vm->id, "disconnected: %s", why);
        }
        vm->pid = 0;
        snprintf(vm->run_state, sizeof(vm->run_state), "unknown");
        /* The QEMU is gone (or unreachable): its groups go once empty.  New
         * groups count usage from zero, so the old counter is no longer
         * the base. */
        if (kh_vm_remove(d->host, &vm->id) == 0) {
                log_debug("Removed the groups of VM %s", vm->id.str);
                vm->usage_base_usec = 0;
        }
        (void) daemon_commit_ledgers(d, true);
        daemon_vm_migration_gone(d, vm);
}

/* Starts banking once the VM's threads are bound.  A fresh VM gets a new
 * ledger.  An adopted one resumes its committed ledger: usage since the
 * ledger's base is charged now.  Earnings for the time since the ledger's
 * time are added only where QEMU ran meanwhile (vmmgrd itself was down):
 * a VM whose QEMU was gone earns nothing for that time, like a stopped
 * EC2 instance (docs/credits.md). */
int daemon_vm_bank_start(Daemon *d, Vm *vm, bool fresh, uint64_t mono) {
        EmulatedBankParams params;
        uint64_t unix_now = daemon_now_unix_usec(), since = 0;

        emulated_bank_params_default(&params);
        params.tick_usec = d->cfg.tick_usec;
        if (fresh) {
                /* A migration's destination: its vCPUs ran only after the
                 * resume, which may be before vmmgrd adopted it (libvirt
                 * reports a resumed domain late): everything its group
                 * counted is charged. */
                const CreditLedger *incoming = daemon_vm_migration_fresh_ledger(d, vm);

                return credit_bank_new(d->host, &vm->id, &vm->spec, d->bank_kind, &params, incoming,
                                       incoming ? 0 : UINT64_MAX, mono, &vm->bank);
        }
        if (!vm->ledger_frozen && unix_now > vm->ledger_time_unix_usec)
                since = unix_now - vm->ledger_time_unix_usec;
        return credit_bank_new(d->host, &vm->id, &vm->spec, d->bank_kind, &params, &vm->ledger,
                               vm->usage_base_usec, mono > since ? mono - since : 0, &vm->bank);
}

/* What a link's outcome means outside a registration: an adoption event,
 * once per coming back (a registration answers its client instead). */
void daemon_vm_linked(Daemon *d, Vm *vm, int r, const char *field, const char *reason) {
        _cleanup_json_ struct json_object *detail = NULL;

        if (vm->registering) {
                daemon_registration_finish(d, vm, r, field, reason);
                return;
        }
        if (r < 0)
                return;
        detail = json_object_new_object();
        daemon_liveupdate_vm_back(d, vm, &vm->ledger, vm->ledger_time_unix_usec);
        vm->ledger_frozen = false;
        if (detail && json_io_add_string(detail, "reason", vm->adopted_once ? "reconnected" : "start") == 0)
                (void) daemon_event(d, &vm->id, "adopt", detail);
        vm->adopted_once = true;
}

/* Stores a new VM in one transaction: its row, its fresh ledger and the
 * "register" event; nothing of it on failure. */
int daemon_store_registration(Daemon *d, Vm *vm, struct json_object *detail, StateError *serr) {
        StateVm row = { 0 };
        StateHandoff handoff;
        CreditSnapshot s;
        StateLedger led;
        int r;

        daemon_vm_state_row(vm, &row);
        credit_bank_snapshot(vm->bank, &s);
        led = (StateLedger) { .id = vm->id, .ledger = s.ledger, .usage_base_usec = s.usage_usec,
                              .tick_usec = daemon_now_unix_usec() };
        r = state_begin(d->db, serr);
        if (r == 0)
                r = state_vm_put(d->db, &row, serr);
        if (r == 0)
                r = state_ledger_put_batch(d->db, &led, 1, serr);
        /* A migration's destination: its role is journaled with it. */
        if (r == 0 && daemon_vm_migration_row(vm, &handoff))
                r = state_handoff_put(d->db, &handoff, serr);
        if (r == 0)
                r = state_event_add(d->db, daemon_now_unix_usec(), vm->id.str, "register", json_io_plain(detail),
                                    NULL, serr);
        if (r == 0)
                r = state_commit(d->db, serr);
        if (r < 0) {
                if (state_in_transaction(d->db))
                        state_rollback(d->db);
                return r;
        }
        vm->committed_generation = s.ledger.generation;
        return 0;
}

/* ---- test and benchmark seam: VMs on the kernel model ------------------
 * What a registration and its link do, minus QMP: the pid and
 * the vCPU thread are given instead of learnt from QEMU.  Only a daemon
 * opened on a kernel model accepts it, so it can never move a real
 * process. */
int daemon_add_model_vm(Daemon *d, const VmId *id, pid_t pid, pid_t vcpu_tid, const char *class_name) {
        const char *cname = class_name ? class_name : d->cfg.default_class;
        const CreditClass *cls = credit_class_find(&d->cfg.classes, cname);
        StateError serr = { 0 };
        VmBindStats st;
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        Vm *vm;
        int r;

        if (!detail)
                return -ENOMEM;
        if (!d->on_model)
                return -EOPNOTSUPP;
        if (daemon_find_vm(d, id))
                return -EEXIST;
        if (!cls)
                return -EINVAL;
        vm = calloc(1, sizeof(Vm));
        if (!vm)
                return -ENOMEM;
        vm->daemon = d;
        vm->id = *id;
        vm->spec = cls->spec;
        vm->spec.vcpus = 1;
        snprintf(vm->class_name, sizeof(vm->class_name), "%s", cls->name);
        snprintf(vm->run_state, sizeof(vm->run_state), "running");
        vm->link = VM_LINK_BOUND;
        vm->registered_at_unix = daemon_now_unix_usec() / USEC_PER_SEC;
        vm->pid = pid;
        vm->roles.vcpus = malloc(sizeof(pid_t));
        if (!vm->roles.vcpus) {
                vm_free(vm);
                return -ENOMEM;
        }
        vm->roles.vcpus[0] = vcpu_tid;
        vm->roles.n_vcpus = 1;

        r = vm_bind(d->host, &vm->id, pid, &vm->roles, &st);
        if (r < 0)
                goto fail_groups;
        r = daemon_vm_bank_start(d, vm, true, daemon_now_mono_usec());
        if (r < 0)
                goto fail_groups;

        if (json_object_object_add(detail, "model", json_object_new_boolean(true)) < 0 ||
            json_io_add_string(detail, "class", vm->class_name) < 0 || json_io_add_int(detail, "pid", pid) < 0 ||
            json_io_add_int(detail, "vcpus", vm->spec.vcpus) < 0) {
                r = -ENOMEM;
                goto fail_groups;
        }
        r = daemon_store_registration(d, vm, detail, &serr);
        if (r < 0) {
                log_vm_error_errno(&vm->id, r, "could not register: %s", serr.message);
                goto fail_groups;
        }
        r = daemon_vm_list_add(d, vm);
        if (r < 0) /* committed but not tracked: the next start adopts it */
                goto fail_groups;
        log_vm_debug(&vm->id, "registered on the kernel model: pid %d, vCPU thread %d, %s bank", (int) pid,
                     (int) vcpu_tid, credit_bank_kind_to_string(d->bank_kind));
        return 0;

fail_groups:
        vm->bank = credit_bank_free(vm->bank);
        (void) kh_vm_remove(d->host, &vm->id);
        vm_free(vm);
        return r;
}

/* ---- commits ----------------------------------------------------------- */

/* Writes every changed ledger in one transaction (all: every connected
 * VM's, e.g. at shutdown). */
int daemon_commit_ledgers(Daemon *d, bool all) {
        _cleanup_free_ StateLedger *recs = calloc(d->n_vms ? d->n_vms : 1, sizeof(StateLedger));
        _cleanup_free_ Vm **whose = calloc(d->n_vms ? d->n_vms : 1, sizeof(Vm *));
        uint64_t unix_now = daemon_now_unix_usec(), mono = daemon_now_mono_usec();
        StateError err;
        size_t n = 0;
        int r;

        if (!recs || !whose)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_vms; i++) {
                Vm *vm = d->vms[i];
                CreditSnapshot s;

                if (vm->registering)
                        continue; /* stored by its registration */
                if (!vm->bank) {
                        /* The ledger kept since the VM's QEMU went away. */
                        if (!vm->ledger_dirty)
                                continue;
                        recs[n] = (StateLedger) { .id = vm->id,
                                                  .ledger = vm->ledger,
                                                  .usage_base_usec = vm->usage_base_usec,
                                                  .tick_usec = vm->ledger_time_unix_usec,
                                                  .frozen = vm->ledger_frozen };
                        whose[n++] = vm;
                        continue;
                }
                credit_bank_snapshot(vm->bank, &s);
                if (!all && s.ledger.generation == vm->committed_generation)
                        continue;
                recs[n] = (StateLedger) {
                        .id = vm->id,
                        .ledger = s.ledger,
                        .usage_base_usec = s.usage_usec,
                        /* The ledger is as of its last look, not now. */
                        .tick_usec = unix_now - (mono > s.last_tick_usec ? mono - s.last_tick_usec : 0),
                };
                whose[n++] = vm;
        }
        if (n == 0)
                return 0;
        r = state_ledger_put_batch(d->db, recs, n, &err);
        if (r < 0) {
                d->stats.commit_errors++;
                return log_error_errno(r, "Failed to commit %zu ledger(s): %s", n, err.message);
        }
        d->stats.commits++;
        for (size_t k = 0; k < n; k++) {
                whose[k]->committed_generation = recs[k].ledger.generation;
                if (!whose[k]->bank)
                        whose[k]->ledger_dirty = false;
        }
        return 0;
}

/* ---- timers ------------------------------------------------------------ */

static int rearm(sd_event_source *s, uint64_t interval_usec) {
        uint64_t now;
        int r = sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_source_set_time(s, now + interval_usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* What operators look for in the event history (docs/credits.md): the
 * shown state's changes and the moments that explain them.  A surplus
 * charged for a while is one event when the charging starts. */
static void vm_record_notices(Daemon *d, Vm *vm, uint64_t now) {
        static const struct {
                unsigned bit;
                const char *kind, *message;
        } notes[] = {
                { CREDIT_NOTICE_LAUNCH_SPENT, "launch-spent", "launch credits spent" },
                { CREDIT_NOTICE_EXHAUSTED, "exhausted", "credits exhausted, held at baseline" },
                { CREDIT_NOTICE_BURSTING_AGAIN, "bursting-again", "bursting again" },
                { CREDIT_NOTICE_SURPLUS_CHARGED, "surplus-charged", "surplus charged" },
        };
        unsigned n = credit_bank_take_notices(vm->bank);
        CreditSnapshot s;

        if (n == 0)
                return;
        credit_bank_snapshot(vm->bank, &s);
        if (n & CREDIT_NOTICE_SURPLUS_CHARGED) {
                bool fresh = now >= vm->surplus_noticed_usec + SURPLUS_NOTICE_QUIET_USEC;
                vm->surplus_noticed_usec = now;
                if (!fresh)
                        n &= ~CREDIT_NOTICE_SURPLUS_CHARGED;
        }
        if (n & CREDIT_NOTICE_STATE) {
                _cleanup_json_ struct json_object *o = json_object_new_object();
                if (o && json_io_add_string(o, "from", credit_state_to_string(vm->shown_state)) == 0 &&
                    json_io_add_string(o, "to", credit_state_to_string(s.state)) == 0)
                        (void) daemon_event(d, &vm->id, "state", o);
                log_vm_event(LOG_LEVEL_INFO, &vm->id, "state", "%s -> %s", credit_state_to_string(vm->shown_state),
                             credit_state_to_string(s.state));
                vm->shown_state = s.state;
        }
        for (size_t i = 0; i < ARRAY_SIZE(notes); i++) {
                _cleanup_json_ struct json_object *o = NULL;

                if (!(n & notes[i].bit))
                        continue;
                o = json_object_new_object();
                if (o && json_io_add_string(o, "message", notes[i].message) == 0 &&
                    json_io_add_int(o, "balance_usec", s.ledger.balance_usec) == 0 &&
                    json_io_add_int(o, "launch_usec", s.ledger.launch_usec) == 0)
                        (void) daemon_event(d, &vm->id, notes[i].kind, o);
                log_vm_event(LOG_LEVEL_INFO, &vm->id, notes[i].kind, "%s", notes[i].message);
        }
}

void daemon_vm_after_look(Daemon *d, Vm *vm, uint64_t now) {
        vm_record_history(vm, now);
        vm_record_notices(d, vm, now);
}

/* One credit tick: every bank that is due (or whose history wants a
 * sample) gets a look.  The looks' counter reads are batched: each due
 * bank queues what its look will read, the host's read batch reads them
 * all at once (one io_uring submit and reap, or a pread each: kernel.h),
 * and then each look takes its counters from there.  Nothing in it waits
 * on a peer: the reads are cgroup files, the writes (quota, runtime) stay
 * one synchronous write each, in look order. */
void daemon_tick_now(Daemon *d) {
        uint64_t cpu0 = thread_cpu_nsec(), now = daemon_now_mono_usec();
        size_t due = 0;

        d->tick_batch = true;
        for (size_t i = 0; i < d->n_vms; i++) {
                Vm *vm = d->vms[i];

                /* History samples the looks the bank needs anyway (at most one
                 * a second): it never adds a look of its own. */
                vm->tick_due = vm->bank && credit_bank_next_tick_usec(vm->bank) <= now && daemon_vm_ledger_here(vm);
                if (!vm->tick_due)
                        continue;
                credit_bank_queue_look(vm->bank);
                due++;
        }
        if (due > 0 && d->reads)
                (void) kh_read_batch_run(d->reads);
        for (size_t i = 0; i < d->n_vms && due > 0; i++) {
                Vm *vm = d->vms[i];
                int r;

                if (!vm->tick_due || !vm->bank)
                        continue;
                vm->tick_due = false;
                due--;
                r = credit_bank_tick(vm->bank, now);
                d->stats.bank_ticks++;
                if (r == 0)
                        daemon_vm_after_look(d, vm, now);
                else {
                        d->stats.tick_errors++;
                        if (r == -ENOENT) /* the group is gone: QEMU exited */
                                vm_link_close(d, vm, "its cgroup disappeared", false);
                        else if (log_ratelimit(&vm->tick_warned_usec, now, WARNING_INTERVAL_USEC))
                                log_vm_warning_errno(&vm->id, r, "credit tick failed (said once a minute): %m");
                }
        }
        /* What no look took (a look that failed before its reads) is not
         * left for a read outside the tick. */
        if (d->reads)
                kh_read_batch_discard(d->reads);
        daemon_delays_refresh(d, now);
        /* A live update is prepared: the jump may come any moment, so
         * every tick's ledgers are committed (docs/live-update.md). */
        if (d->lu.state == LU_PREPARED)
                (void) daemon_commit_ledgers(d, false);
        d->tick_batch = false;
        if (d->tick_batch_open) {
                StateError err;
                int r = state_commit(d->db, &err);

                if (r < 0) {
                        state_rollback(d->db);
                        log_warning_errno(r, "Failed to record the tick's events: %s", err.message);
                }
                d->tick_batch_open = false;
        }
        d->stats.ticks++;
        d->stats.last_tick_cpu_nsec = thread_cpu_nsec() - cpu0;
        d->stats.tick_cpu_nsec += d->stats.last_tick_cpu_nsec;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        daemon_tick_now(d);
        return rearm(s, d->cfg.tick_usec);
}

static int on_commit(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        (void) daemon_commit_ledgers(d, false);
        return rearm(s, d->cfg.commit_interval_usec);
}

/* Refreshes thread roles (threads come and go: worker pools, hotplug)
 * of the VMs that are due -- after a QMP event that says threads changed,
 * or at their spread-out safety poll -- without waiting on any QEMU, and
 * removes empty groups of VMs that are not registered (left by an
 * unregister of a running VM).  Reconnecting is the link's own timer. */
static int on_housekeeping(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        uint64_t now = daemon_now_mono_usec();
        VmId *ids = NULL;
        size_t n = 0;

        for (size_t i = 0; i < d->n_vms; i++) {
                Vm *vm = d->vms[i];

                if (vm->link == VM_LINK_BOUND && vm->qmp && vm->roles_refresh_at_usec <= now &&
                    vm_link_refresh_roles(vm) < 0)
                        log_vm_debug(&vm->id, "role refresh not started");
        }
        daemon_libvirt_housekeeping(d);
        daemon_liveupdate_housekeeping(d);
        if (kh_vm_list(d->host, &ids, &n) == 0) {
                for (size_t i = 0; i < n; i++)
                        if (!daemon_find_vm(d, &ids[i]) && kh_vm_remove(d->host, &ids[i]) == 0)
                                log_info("Removed the empty groups of unregistered VM %s", ids[i].str);
                free(ids);
        }
        return rearm(s, HOUSEKEEPING_USEC);
}

/* After every dispatch the API may want to run again soon (a timeout of
 * 0: TLS data already buffered), so its timer is re-armed each time. */
static int api_dispatch_and_rearm(Daemon *d) {
        int r = api_dispatch(d->api), t;

        if (r < 0 && log_ratelimit(&d->api_warned_usec, daemon_now_mono_usec(), WARNING_INTERVAL_USEC))
                log_warning_errno(r, "API dispatch failed (said once a minute): %m");
        /* Stopping: the last request in flight is answered. */
        if (d->quitting && api_connections(d->api) == 0)
                return sd_event_exit(d->loop, 0);
        t = api_get_timeout_ms(d->api);
        return rearm(d->api_timer, t < 0 || t > 1000 ? USEC_PER_SEC : (uint64_t) t * 1000);
}

static int on_api_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return api_dispatch_and_rearm(userdata);
}

static int on_api_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        if (d->api_gate_until_usec)
                return 0; /* not open yet: on_api_gate() dispatches first */
        return api_dispatch_and_rearm(d);
}

static int on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        log_warning("%u API connection(s) still open after the drain: closing them (their requests were not "
                    "handed to the service)",
                    api_connections(d->api));
        return sd_event_exit(d->loop, 0);
}

/* A graceful stop (docs/vmmgrd.md, "Upgrades without refusing a
 * request"): the API stops accepting -- its sockets stay open where
 * systemd holds them, so new connections wait in the kernel for the next
 * vmmgrd -- and answers what is under way; then the loop ends and every
 * ledger is committed.  A second signal exits at once. */
static int on_quit(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        ApiLimits lim;
        unsigned open;
        int r;

        if (d->quitting) {
                log_info("Received %s again: exiting now", strsignal((int) si->ssi_signo));
                return sd_event_exit(d->loop, 0);
        }
        d->quitting = true;
        (void) sd_notify(0, "STOPPING=1");
        api_quiesce(d->api);
        open = api_connections(d->api);
        log_info("Received %s: %s state and exiting; VMs keep running with their limits",
                 strsignal((int) si->ssi_signo),
                 open ? "answering the API's requests in flight (accepting no new connections), then committing"
                      : "committing");
        if (open == 0)
                return sd_event_exit(d->loop, 0);
        /* The API is served until then even if it was not yet open. */
        d->api_gate_until_usec = 0;
        (void) sd_event_source_set_enabled(d->api_io, SD_EVENT_ON);
        (void) api_dispatch_and_rearm(d);
        api_get_limits(d->api, &lim);
        r = sd_event_add_time_relative(d->loop, NULL, CLOCK_MONOTONIC,
                                       (uint64_t) lim.timeout_sec * USEC_PER_SEC + DRAIN_SLACK_USEC, 0,
                                       on_drain_timeout, d);
        return r < 0 ? sd_event_exit(d->loop, 0) : 0;
}

/* SIGHUP: classes and timings apply now, to every bank too; what needs a
 * restart (where to listen, what to manage, [memory]) is named in the log
 * when it changed, never silently dropped. */
static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return daemon_reload(userdata);
}

int daemon_reload(Daemon *d) {
        VmmgrConfig next;
        char msg[512] = "";
        int r;

        if (!d->config_path[0]) {
                log_info("SIGHUP: no config file to reload");
                return 0;
        }
        (void) sd_notify(0, "RELOADING=1");
        r = config_init(&next);
        if (r == 0)
                r = config_load_file(&next, d->config_path, msg, sizeof(msg));
        if (r < 0) {
                log_error("Reload failed, keeping the running configuration: %s",
                          msg[0] ? msg : strerror(-r));
                config_done(&next);
                (void) sd_notify(0, "READY=1");
                return 0;
        }
        {
                static const struct {
                        const char *name;
                        size_t offset, size;
                } restart_only[] = {
#define F(n, f) { n, offsetof(VmmgrConfig, f), sizeof(((VmmgrConfig *) NULL)->f) }
                        F("state_dir", state_dir),         F("socket", socket_path),
                        F("socket_group", socket_group),   F("subtree", subtree),
                        F("controllers", controllers),     F("task_delayacct", task_delayacct),
                        F("tls_listen", tls_listen),       F("tls_cert", tls_cert),
                        F("tls_key", tls_key),             F("tls_client_ca", tls_client_ca),
                        F("[memory]", memory),             F("[libvirt] enabled", libvirt),
                        F("[libvirt] uri", libvirt_uri),   F("[libvirt] pid_dir", libvirt_pid_dir),
                        F("[libvirt] manage", libvirt_manage),
                        F("io_uring", io_uring),
#undef F
                };
                for (size_t i = 0; i < ARRAY_SIZE(restart_only); i++)
                        if (memcmp((const char *) &d->cfg + restart_only[i].offset,
                                   (const char *) &next + restart_only[i].offset, restart_only[i].size) != 0)
                                log_warning("Reload: %s changed in %s; it takes effect when vmmgrd restarts",
                                            restart_only[i].name, d->config_path);
        }
        credit_class_table_done(&d->cfg.classes);
        d->cfg.classes = next.classes;
        next.classes = (CreditClassTable) { 0 };
        d->cfg.tick_usec = next.tick_usec;
        d->cfg.commit_interval_usec = next.commit_interval_usec;
        snprintf(d->cfg.default_class, sizeof(d->cfg.default_class), "%s", next.default_class);
        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i]->bank)
                        credit_bank_set_tick_usec(d->vms[i]->bank, d->cfg.tick_usec);
        config_done(&next);
        log_info("Reloaded %s: %zu credit classes", d->config_path, d->cfg.classes.n);
        (void) sd_notify(0, "READY=1");
        return 0;
}

/* ---- start-up ---------------------------------------------------------- */

static int adopt_known_vms(Daemon *d) {
        _cleanup_free_ StateVm *rows = NULL;
        StateError err;
        size_t n = 0;
        int r;

        r = state_vm_list(d->db, &rows, &n, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to read VMs from %s: %s", state_path(d->db), err.message);
        for (size_t i = 0; i < n; i++) {
                Vm *vm = calloc(1, sizeof(Vm));
                StateLedger led;

                if (!vm)
                        return -ENOMEM;
                vm->daemon = d;
                vm->id = rows[i].id;
                snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s", rows[i].qmp_path);
                snprintf(vm->class_name, sizeof(vm->class_name), "%s", rows[i].class_name);
                vm->spec = rows[i].spec;
                vm->registered_at_unix = rows[i].registered_at_unix;
                vm->mem_priority = rows[i].mem_priority;
                snprintf(vm->gpu_pci, sizeof(vm->gpu_pci), "%s", rows[i].gpu_pci);
                vm->dmem = rows[i].dmem;
                snprintf(vm->libvirt_name, sizeof(vm->libvirt_name), "%s", rows[i].libvirt_name);
                snprintf(vm->run_state, sizeof(vm->run_state), "unknown");
                r = state_ledger_get(d->db, &vm->id, &led, &err);
                if (r == 0) {
                        vm->ledger = led.ledger;
                        vm->usage_base_usec = led.usage_base_usec;
                        vm->ledger_time_unix_usec = led.tick_usec;
                        vm->ledger_frozen = led.frozen;
                        vm->committed_generation = led.ledger.generation;
                } else
                        credit_ledger_init(&vm->ledger, &vm->spec);
                /* The host booted since: every QEMU of the last boot is
                 * gone, whatever vmmgrd saw (docs/live-update.md).  The
                 * ledger earns nothing until its VM is back, and its new
                 * groups count from zero. */
                if (d->rebooted) {
                        vm->ledger_frozen = true;
                        vm->usage_base_usec = 0;
                        vm->ledger_dirty = true;
                }
                r = daemon_vm_migration_load(d, vm);
                if (r < 0) {
                        vm_free(vm);
                        return r;
                }
                r = daemon_vm_list_add(d, vm);
                if (r < 0) {
                        vm_free(vm);
                        return r == -EEXIST ? 0 : r;
                }
                /* PIDs and thread ids are re-discovered, never trusted from
                 * disk; the link reports back when QEMU has answered.  A
                 * libvirt domain comes back through libvirt instead
                 * (daemon-libvirt.c: the running domains at connect). */
                if (vm->libvirt_name[0]) {
                        vm->link = VM_LINK_DOWN;
                        snprintf(vm->link_error, sizeof(vm->link_error), "waiting for libvirt");
                        continue;
                }
                if (vm_link_start(d, vm, false) < 0)
                        log_vm_warning(&vm->id, "not adopted now (retrying): %s", vm->link_error);
        }
        return 0;
}

/* Socket-activated: the API opens once no VM adopted at start is still
 * connecting (QMP answers in flight), or after API_GATE_USEC.  What
 * arrives meanwhile waits in the listening socket's backlog. */
static int on_api_gate(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        uint64_t now = daemon_now_mono_usec();
        size_t connecting = 0;

        if (d->api_gate_until_usec == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF); /* opened already (a stop) */
        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i]->link == VM_LINK_CONNECTING)
                        connecting++;
        if (connecting > 0 && now < d->api_gate_until_usec) {
                int r = sd_event_source_set_time(s, now + API_GATE_POLL_USEC);

                return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        if (connecting > 0)
                log_info("API open with %zu VM(s) still connecting", connecting);
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        d->api_gate_until_usec = 0;
        (void) sd_event_source_set_enabled(d->api_io, SD_EVENT_ON);
        return api_dispatch_and_rearm(d);
}

/* "[::1]:8443" or "127.0.0.1:8443" into the address (no brackets) and port. */
static int parse_tls_listen(const char *listen, char *addr, size_t size, uint16_t *ret_port) {
        const char *colon = strrchr(listen, ':');
        size_t len;
        int port;

        if (!colon || parse_int_range(colon + 1, 1, 65535, &port) < 0)
                return -EINVAL;
        snprintf(addr, size, "%.*s", (int) (colon - listen), listen);
        len = strlen(addr);
        if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
                memmove(addr, addr + 1, len - 2);
                addr[len - 2] = '\0';
        }
        *ret_port = (uint16_t) port;
        return 0;
}

static int open_api(Daemon *d) {
        ApiConfig cfg = {
                .unix_path = d->cfg.socket_path,
                .allowed_gid = API_GID_ROOT_ONLY,
                .connection_limit = d->cfg.api_max_connections,
                .per_peer_limit = d->cfg.api_max_connections_per_peer,
                .connection_timeout_sec = d->cfg.api_timeout_sec,
                .max_header_bytes = d->cfg.api_max_header_bytes,
                .max_body_bytes = d->cfg.api_max_body_bytes,
        };
        static char addr[128];
        DaemonListenFds lf;
        ApiError err = { 0 };
        ApiLimits lim;
        bool store_tls = false, replace_stored = false;
        int r, t;

        /* Sockets systemd passed (socket activation, the fd store):
         * served instead of bound (daemon-listen.h). */
        r = daemon_listen_fds(&lf);
        if (r < 0)
                return r;
        if (d->cfg.socket_group[0]) {
                struct group *g = getgrnam(d->cfg.socket_group);
                if (!g) {
                        r = log_error_errno(-ENOENT, "socket_group \"%s\" does not exist", d->cfg.socket_group);
                        goto fail;
                }
                cfg.allowed_gid = g->gr_gid;
        }
        if (lf.api_fd >= 0) {
                struct stat st;

                if (strcmp(lf.api_path, d->cfg.socket_path) != 0)
                        log_warning("systemd passed the API socket %s, but vmmgrd's socket is %s: serving %s "
                                    "(make ListenStream= in vmmgrd.socket and \"socket\" agree)",
                                    lf.api_path[0] ? lf.api_path : "(unnamed)", d->cfg.socket_path,
                                    lf.api_path[0] ? lf.api_path : "the passed socket");
                /* Who may connect is the socket unit's to say. */
                if (lf.api_path[0] && stat(lf.api_path, &st) == 0 && cfg.allowed_gid != API_GID_ROOT_ONLY &&
                    st.st_gid != cfg.allowed_gid)
                        log_warning("The API socket %s belongs to group %u, not socket_group %s: its members cannot "
                                    "connect (set SocketGroup= in vmmgrd.socket)",
                                    lf.api_path, (unsigned) st.st_gid, d->cfg.socket_group);
                cfg.unix_fd = lf.api_fd;
                cfg.unix_path = lf.api_path[0] ? lf.api_path : d->cfg.socket_path;
                lf.api_fd = -EBADF; /* the API's now */
        }
        if (d->cfg.tls_listen[0]) {
                r = parse_tls_listen(d->cfg.tls_listen, addr, sizeof addr, &cfg.tcp_port);
                if (r < 0) {
                        r = log_error_errno(-EINVAL, "api.tls listen must be ADDRESS:PORT, got \"%s\"",
                                            d->cfg.tls_listen);
                        goto fail;
                }
                cfg.tcp_address = addr;
                cfg.tls_cert_file = d->cfg.tls_cert;
                cfg.tls_key_file = d->cfg.tls_key;
                cfg.tls_ca_file = d->cfg.tls_client_ca;
                if (lf.tls_fd >= 0 && daemon_listen_tls_matches(lf.tls_fd, addr, cfg.tcp_port)) {
                        cfg.tcp_fd = lf.tls_fd;
                        lf.tls_fd = -EBADF;
                } else {
                        /* Bound here: handed to systemd to outlive us, in
                         * place of a stored one that no longer fits. */
                        store_tls = true;
                        replace_stored = lf.tls_fd >= 0;
                }
        } else if (lf.tls_fd >= 0) {
                log_warning("systemd passed a TLS listener, but [api.tls] listen is not set: closing it");
                daemon_listen_unstore_tls();
        }
        if (lf.tls_fd >= 0)
                close(lf.tls_fd);
        r = api_new(&cfg, &daemon_service_ops, d, &d->api, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to start the API: %s", err.message);
        if (store_tls)
                daemon_listen_store_tls(api_get_tcp_fd(d->api), replace_stored);
        api_get_limits(d->api, &lim);
        if (lim.connection_limit < cfg.connection_limit)
                log_warning("API: max_connections lowered from %u to %u to fit RLIMIT_NOFILE (raise LimitNOFILE=)",
                            cfg.connection_limit, lim.connection_limit);
        log_info("API limits: %u connections per listener, %u per peer, %us for a request, headers %zu bytes, "
                 "body %zu bytes",
                 lim.connection_limit, lim.per_peer_limit, lim.timeout_sec, lim.max_header_bytes, lim.max_body_bytes);
        if (cfg.unix_fd > 0 || cfg.tcp_fd > 0)
                log_info("Serving the listening socket(s) systemd passed: %s%s%s", cfg.unix_fd > 0 ? cfg.unix_path : "",
                         cfg.unix_fd > 0 && cfg.tcp_fd > 0 ? " and " : "",
                         cfg.tcp_fd > 0 ? "the TLS listener" : "");
        r = sd_event_add_io(d->loop, &d->api_io, api_get_fd(d->api), EPOLLIN, on_api_io, d);
        if (r < 0)
                return r;
        t = api_get_timeout_ms(d->api);
        r = sd_event_add_time_relative(d->loop, &d->api_timer, CLOCK_MONOTONIC,
                                       t < 0 || t > 1000 ? USEC_PER_SEC : (uint64_t) t * 1000, 0, on_api_timer, d);
        if (r < 0 || (cfg.unix_fd <= 0 && cfg.tcp_fd <= 0))
                return r;
        /* Socket-activated: closed until the VMs are re-adopted (the
         * connections queue meanwhile; on_api_gate()). */
        d->api_gate_until_usec = daemon_now_mono_usec() + API_GATE_USEC;
        r = sd_event_source_set_enabled(d->api_io, SD_EVENT_OFF);
        if (r < 0)
                return r;
        return sd_event_add_time_relative(d->loop, NULL, CLOCK_MONOTONIC, 0, 1, on_api_gate, d);
fail:
        if (lf.api_fd >= 0)
                close(lf.api_fd);
        if (lf.tls_fd >= 0)
                close(lf.tls_fd);
        return r;
}

int daemon_new(const DaemonOptions *opts, Daemon **ret) {
        Daemon *d = calloc(1, sizeof(*d));
        KHostConfig hcfg = { 0 };
        StateError serr = { 0 };
        char msg[512] = "";
        int r;

        if (!d) {
                kh_free(opts->host);
                return -ENOMEM;
        }
        d->host = opts->host; /* ours from now on, also on failure */
        r = config_init(&d->cfg);
        if (r < 0)
                goto fail;
        if (opts->config_path) {
                snprintf(d->config_path, sizeof(d->config_path), "%s", opts->config_path);
                r = config_load_file(&d->cfg, opts->config_path, msg, sizeof(msg));
                if (r < 0) {
                        log_error("%s", msg);
                        goto fail;
                }
        }
        if (opts->state_dir)
                snprintf(d->cfg.state_dir, sizeof(d->cfg.state_dir), "%s", opts->state_dir);
        if (opts->socket_path) {
                if (strlen(opts->socket_path) >= sizeof(d->cfg.socket_path)) {
                        r = log_error_errno(-ENAMETOOLONG, "Socket path too long: %s", opts->socket_path);
                        goto fail;
                }
                snprintf(d->cfg.socket_path, sizeof(d->cfg.socket_path), "%s", opts->socket_path);
        }
        if (opts->subtree)
                snprintf(d->cfg.subtree, sizeof(d->cfg.subtree), "%s", opts->subtree);
        if (opts->controllers)
                d->cfg.controllers = opts->controllers;
        d->remove_subtree_on_exit = opts->remove_subtree_on_exit;

        hcfg.subtree = d->cfg.subtree;
        hcfg.controllers = d->cfg.controllers;
        r = d->host ? 0 : kh_open(&hcfg, &d->host);
        d->on_model = !kh_is_real(d->host);
        d->model_peer_pid = opts->model_peer_pid;
        d->model_peer_pid_userdata = opts->model_peer_pid_userdata;
        if (r < 0) {
                log_error_errno(r, "Failed to open the host's cgroup hierarchies: %m");
                goto fail;
        }
        r = kh_subtree_setup(d->host);
        if (r < 0) {
                log_error_errno(r, "Failed to set up vmmgr's subtree \"%s\"%s: %m", d->cfg.subtree,
                                r == -EOPNOTSUPP ? " (a managed controller is not delegated to it)" : "");
                goto fail;
        }
        r = kh_probe(d->host, &d->features);
        if (r < 0) {
                log_error_errno(r, "Failed to probe the host: %m");
                goto fail;
        }
        d->bank_kind = host_features_kernel_bank(&d->features) ? CREDIT_BANK_KERNEL : CREDIT_BANK_EMULATED;
        if (d->features.cpu_max_runtime == TRI_YES && d->bank_kind == CREDIT_BANK_EMULATED)
                /* v1 of the series: its pool stopped accruing while idle and
                 * refused its own reads back; vmmgr no longer tops it up. */
                log_warning("cpu.max.runtime here is not v2 of vmmgr's kernel series (writes do not saturate): "
                            "vmmgr keeps the credit bank itself (emulated)");
        /* The tick's counter reads, batched; before any reader is opened
         * (banks, the memory engine), which attach to it.  host-info shows
         * what the configuration made of the probe. */
        r = kh_read_batch_new(d->host, d->cfg.io_uring, &d->reads, &d->features.counter_reads);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the counter reads: %m");
                goto fail;
        }
        log_info("Counter reads: %s (io_uring = %s: %s)", kh_read_path_to_string(kh_read_batch_path(d->reads)),
                 kh_read_mode_to_string(d->cfg.io_uring), d->features.counter_reads.note);
        r = state_open(d->cfg.state_dir, &d->db, &serr);
        if (r < 0) {
                log_error_errno(r, "%s", serr.message);
                goto fail;
        }
        r = sd_event_new(&d->loop);
        if (r < 0)
                goto fail;
        r = daemon_memory_open(d);
        if (r < 0)
                goto fail;
        r = open_api(d);
        if (r < 0)
                goto fail;
        r = daemon_migration_open(d);
        if (r < 0)
                goto fail;
        r = daemon_liveupdate_open(d);
        if (r < 0)
                goto fail;
        r = adopt_known_vms(d);
        if (r < 0)
                goto fail;
        r = daemon_libvirt_open(d);
        if (r < 0)
                goto fail;
        log_info("vmmgrd %s: cgroup %s, cpu on v%d, %s credit bank, %zu VM(s), API on %s", VMMGR_VERSION,
                 cg_mode_to_string(d->features.mode), d->features.controllers[CG_CTRL_CPU].version,
                 credit_bank_kind_to_string(d->bank_kind), d->n_vms, d->cfg.socket_path);
        *ret = d;
        return 0;
fail:
        daemon_free(d);
        return r;
}

int daemon_run(Daemon *d) {
        sigset_t mask;
        int r;

        /* A client that hangs up mid-reply must not kill the daemon. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        if ((r = sd_event_add_signal(d->loop, NULL, SIGTERM, on_quit, d)) < 0 ||
            (r = sd_event_add_signal(d->loop, NULL, SIGINT, on_quit, d)) < 0 ||
            (r = sd_event_add_signal(d->loop, NULL, SIGHUP, on_reload, d)) < 0)
                return r;
        r = sd_event_add_time_relative(d->loop, &d->tick_timer, CLOCK_MONOTONIC, d->cfg.tick_usec, 0, on_tick, d);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(d->loop, &d->commit_timer, CLOCK_MONOTONIC, d->cfg.commit_interval_usec, 0,
                                       on_commit, d);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(d->loop, &d->housekeeping_timer, CLOCK_MONOTONIC, HOUSEKEEPING_USEC, 0,
                                       on_housekeeping, d);
        if (r < 0)
                return r;
        /* WATCHDOG=1 pings while the loop runs, if systemd asked for them. */
        (void) sd_event_set_watchdog(d->loop, true);
        (void) sd_notify(0, "READY=1");
        r = sd_event_loop(d->loop);
        /* Flush: a clean stop commits every ledger as of now. */
        for (size_t i = 0; i < d->n_vms; i++)
                if (d->vms[i]->bank)
                        (void) credit_bank_tick(d->vms[i]->bank, daemon_now_mono_usec());
        (void) daemon_commit_ledgers(d, true);
        if (d->remove_subtree_on_exit) {
                VmId *ids = NULL;
                size_t n = 0;
                if (kh_vm_list(d->host, &ids, &n) == 0) {
                        for (size_t i = 0; i < n; i++)
                                (void) kh_vm_remove(d->host, &ids[i]);
                        free(ids);
                }
                if (kh_subtree_remove(d->host) < 0)
                        log_warning("Subtree %s not removed: groups of running VMs remain", d->cfg.subtree);
        }
        return r;
}

Daemon *daemon_free(Daemon *d) {
        if (!d)
                return NULL;
        /* First: no libvirt callback may run into a half-freed daemon. */
        daemon_libvirt_close(d);
        /* Then the migration sender: no answer may arrive for a freed VM. */
        daemon_migration_close(d);
        daemon_liveupdate_close(d);
        /* Registrations still waiting for QEMU are answered before the API
         * goes (their clients are suspended in it). */
        for (size_t i = d->n_vms; i > 0; i--)
                if (i <= d->n_vms && d->vms[i - 1]->registering)
                        daemon_registration_finish(d, d->vms[i - 1], -ECANCELED, NULL, "vmmgrd is stopping");
        for (size_t i = 0; i < d->n_vms; i++)
                vm_free(d->vms[i]);
        free(d->vms);
        free(d->by_id);
        daemon_memory_close(d);
        sd_event_source_disable_unref(d->api_io);
        sd_event_source_disable_unref(d->api_timer);
        sd_event_source_disable_unref(d->tick_timer);
        sd_event_source_disable_unref(d->commit_timer);
        sd_event_source_disable_unref(d->housekeeping_timer);
        api_free(d->api);
        state_close(d->db);
        host_features_done(&d->features);
        kh_read_batch_free(d->reads);
        kh_free(d->host);
        sd_event_unref(d->loop);
        config_done(&d->cfg);
        free(d);
        return NULL;
}
