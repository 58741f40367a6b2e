/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/vm-link.c - a VM's QMP link on vmmgrd's loop, a state machine
 * that never waits.
 *
 *   down --connect()--> connecting --all replies--> bound
 *     ^                     |                         |
 *     +---- retry timer ----+-- a deadline passed --> stalled (retry, back-off)
 *
 * Connecting queues everything vmmgrd needs to know about the QEMU at once
 * (libqmp holds it until the greeting and qmp_capabilities are through):
 * query-status, query-uuid (registration), query-cpus-fast,
 * query-iothreads, and where memory is managed query-memory-size-summary,
 * query-pci, qom-list /machine/peripheral and query-balloon.  Every
 * command carries a deadline; one per-VM timer makes libqmp enforce it
 * (qmp_dispatch at qmp_get_timeout_ms()), so a QEMU that accepts and
 * never answers costs one timer, not the loop.  The replies are gathered
 * in a VmConnect and acted on after the dispatch that delivered the last
 * one (a libqmp callback must not free its Qmp).
 *
 * A refused or missing socket is retried every LINK_RETRY_GONE_USEC (it
 * costs one connect()); a stall backs off from LINK_RETRY_MIN_USEC to
 * LINK_RETRY_MAX_USEC.  Thread roles are refreshed on QMP events (vCPU
 * hot-unplug, device deletion) and by a slow safety poll whose phase is
 * spread over the VMs by their id.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "vmmgr/daemon/daemon.h"

#define LINK_CMD_TIMEOUT_MS 2000
#define LINK_RETRY_GONE_USEC (2 * USEC_PER_SEC)
#define LINK_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define LINK_RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define ROLES_POLL_USEC (60 * USEC_PER_SEC)
#define LINK_RETRY_REGISTER_USEC (100 * UINT64_C(1000))

/* What one connection attempt learns; freed once acted on. */
struct VmConnect {
        Vm *vm;
        bool fresh;
        unsigned pending; /* replies still to come */
        int error;        /* first failure */
        char reason[256];
        const char *field;

        QmpStatus status;
        char uuid[QMP_UUID_STRLEN + 1];
        bool has_uuid;
        QmpCpu *cpus;
        size_t n_cpus;
        QmpIothread *io;
        size_t n_io;

        bool want_memory;
        QmpMemorySummary mem;
        QmpPciDevice *pci;
        size_t n_pci;
        bool has_balloon;
        uint64_t balloon_actual;
};

/* A roles refresh in flight. */
typedef struct VmRolesQuery {
        Vm *vm;
        unsigned pending;
        int error;
        QmpCpu *cpus;
        size_t n_cpus;
        QmpIothread *io;
        size_t n_io;
} VmRolesQuery;

const char *vm_link_state_to_string(VmLinkState s) {
        static const char *const names[] = {
                [VM_LINK_DOWN] = "down",
                [VM_LINK_CONNECTING] = "connecting",
                [VM_LINK_BOUND] = "bound",
                [VM_LINK_STALLED] = "stalled",
        };
        return (size_t) s < ARRAY_SIZE(names) && names[s] ? names[s] : "unknown";
}

static void connect_free(VmConnect *c) {
        if (!c)
                return;
        qmp_cpus_free(c->cpus, c->n_cpus);
        qmp_iothreads_free(c->io, c->n_io);
        qmp_pci_devices_free(c->pci, c->n_pci);
        free(c);
}

static void roles_query_free(VmRolesQuery *rq) {
        if (!rq)
                return;
        qmp_cpus_free(rq->cpus, rq->n_cpus);
        qmp_iothreads_free(rq->io, rq->n_io);
        free(rq);
}

/* The first failure of an attempt names it. */
static void connect_fail(VmConnect *c, int r, const char *field, const char *fmt, ...) _printf_(4, 5);
static void connect_fail(VmConnect *c, int r, const char *field, const char *fmt, ...) {
        va_list ap;

        if (c->error < 0)
                return;
        c->error = r;
        c->field = field;
        va_start(ap, fmt);
        vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
        va_end(ap);
}

/* The safety poll's first look, spread over one poll period by the VM's
 * id (FNV-1a), so 1,000 VMs adopted at once are not all asked together. */
static uint64_t roles_poll_phase_usec(const VmId *id) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (const char *p = id->str; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(1099511628211);
        return ROLES_POLL_USEC / 2 + h % ROLES_POLL_USEC;
}

/* ---- the per-VM timer: QMP deadlines while linked, retries while not ---- */

static int on_link_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void link_arm(Vm *vm, uint64_t at_mono_usec) {
        Daemon *d = vm->daemon;
        int r;

        if (!vm->link_timer) {
                r = sd_event_add_time(d->loop, &vm->link_timer, CLOCK_MONOTONIC, at_mono_usec, 10 * UINT64_C(1000),
                                      on_link_timer, vm);
                if (r < 0)
                        log_vm_error_errno(&vm->id, r, "cannot add its QMP timer: %m");
                return;
        }
        (void) sd_event_source_set_time(vm->link_timer, at_mono_usec);
        (void) sd_event_source_set_enabled(vm->link_timer, SD_EVENT_ONESHOT);
}

/* After every libqmp call: wait for what the connection wants to do and
 * wake up for the earliest command deadline. */
static void link_rearm_io(Vm *vm) {
        int t;

        if (!vm->qmp)
                return;
        if (vm->qmp_io)
                (void) sd_event_source_set_io_events(vm->qmp_io, (uint32_t) qmp_get_events(vm->qmp));
        t = qmp_get_timeout_ms(vm->qmp);
        if (t >= 0)
                link_arm(vm, daemon_now_mono_usec() + (uint64_t) t * UINT64_C(1000));
        else if (vm->link_timer)
                (void) sd_event_source_set_enabled(vm->link_timer, SD_EVENT_OFF);
}

void vm_link_kick(Vm *vm) {
        link_rearm_io(vm);
}

static void link_schedule_retry(Vm *vm, bool stalled) {
        uint64_t delay;

        if (stalled) {
                delay = vm->link_backoff_usec ? MIN(vm->link_backoff_usec * 2, LINK_RETRY_MAX_USEC)
                                              : LINK_RETRY_MIN_USEC;
                vm->link_backoff_usec = delay;
        } else
                delay = LINK_RETRY_GONE_USEC;
        vm->link_retry_at_usec = daemon_now_mono_usec() + delay;
        link_arm(vm, vm->link_retry_at_usec);
}

/* ---- replies of the connect sequence ------------------------------------ */

static void reply_done(VmConnect *c, int r, const char *what, const QmpError *err) {
        c->pending--;
        if (r == -ETIMEDOUT)
                connect_fail(c, r, "qmp", "QEMU did not answer %s within %d ms", what, LINK_CMD_TIMEOUT_MS);
        else if (r == -EREMOTEIO)
                connect_fail(c, r, "qmp", "QEMU refused %s: %s", what, err && err->desc ? err->desc : "error");
        else if (r < 0)
                connect_fail(c, r, "qmp", "%s: %s", what, strerror(-r));
}

static void on_status(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0 && (r = qmp_parse_status(json, &c->status)) < 0)
                r = -EBADMSG;
        reply_done(c, r, "query-status", err);
}

static void on_uuid(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_uuid(json, c->uuid);
        c->has_uuid = r == 0;
        /* A QEMU that cannot say its UUID is not refused for that. */
        reply_done(c, r == -EREMOTEIO ? 0 : r, "query-uuid", err);
}

static void on_cpus(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_cpus_fast(json, &c->cpus, &c->n_cpus);
        reply_done(c, r, "query-cpus-fast", err);
}

static void on_iothreads(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_iothreads(json, &c->io, &c->n_io);
        reply_done(c, r, "query-iothreads", err);
}

static void on_memory_summary(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_memory_size_summary(json, &c->mem);
        if (r < 0)
                c->want_memory = false; /* memory is left unmanaged, the VM is still bound */
        reply_done(c, r == -EREMOTEIO ? 0 : r, "query-memory-size-summary", err);
}

static void on_pci(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_pci(json, &c->pci, &c->n_pci);
        /* A machine without PCI answers with an error: no devices. */
        reply_done(c, r == -EREMOTEIO ? 0 : r, "query-pci", err);
}

static void on_peripherals(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        /* Replies come in order: query-pci's is in.  A QEMU without
         * qom-list still gets its devices, just unmarked. */
        if (r == 0)
                r = qmp_parse_pci_mark_vfio(json, c->pci, c->n_pci);
        reply_done(c, r == -EREMOTEIO ? 0 : r, "qom-list", err);
}

static void on_balloon(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmConnect *c = userdata;
        if (r == 0)
                r = qmp_parse_balloon(json, &c->balloon_actual);
        c->has_balloon = r == 0;
        /* DeviceNotActive: no balloon device. */
        reply_done(c, r == -EREMOTEIO ? 0 : r, "query-balloon", err);
}

static int queue(Vm *vm, VmConnect *c, const char *command, const char *args, QmpReplyFn fn) {
        int r = qmp_execute(vm->qmp, command, args, LINK_CMD_TIMEOUT_MS, fn, c);
        if (r == 0)
                c->pending++;
        return r;
}

/* ---- the link ----------------------------------------------------------- */

static void on_qmp_event(Qmp *q, const QmpEvent *ev, void *userdata) {
        Vm *vm = userdata;

        if (strcmp(ev->name, "STOP") == 0)
                snprintf(vm->run_state, sizeof(vm->run_state), "paused");
        else if (strcmp(ev->name, "RESUME") == 0)
                snprintf(vm->run_state, sizeof(vm->run_state), "running");
        else if (strcmp(ev->name, "SHUTDOWN") == 0)
                snprintf(vm->run_state, sizeof(vm->run_state), "shutdown");
        else if (strcmp(ev->name, "DEVICE_DELETED") == 0 || strcmp(ev->name, "CPU_ADDED") == 0 ||
                 strcmp(ev->name, "ACPI_DEVICE_OST") == 0)
                vm->roles_refresh_at_usec = 0; /* threads changed: refresh at the next housekeeping */
        daemon_vm_memory_event(vm->daemon, vm, ev);
        daemon_vm_migration_qmp_event(vm->daemon, vm, ev);
}

static void link_finish_connect(Daemon *d, Vm *vm);
static void link_finish_roles(Daemon *d, Vm *vm);

/* After every qmp_dispatch(): act on what completed, then rearm. */
static void link_after_dispatch(Vm *vm, int r) {
        Daemon *d = vm->daemon;

        if (r < 0) {
                const char *why = qmp_get_close_reason(vm->qmp);
                char msg[256];

                snprintf(msg, sizeof(msg), "%s", why ? why : strerror(-r));
                if (vm->connecting) {
                        connect_fail(vm->connecting, r, "qmp", "QMP on %s: %s", vm->qmp_path, msg);
                        link_finish_connect(d, vm);
                } else
                        vm_link_close(d, vm, msg, r == -ETIMEDOUT);
                return;
        }
        if (vm->connecting && vm->connecting->pending == 0) {
                link_finish_connect(d, vm);
                return;
        }
        if (vm->roles_query && vm->roles_query->pending == 0)
                link_finish_roles(d, vm);
        link_rearm_io(vm);
}

static int on_qmp_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;

        link_after_dispatch(vm, qmp_dispatch(vm->qmp, (short) revents));
        return 0;
}

static int on_link_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;

        if (vm->qmp) /* a command deadline: libqmp closes a stalled link */
                link_after_dispatch(vm, qmp_dispatch(vm->qmp, 0));
        else if (vm->link_retry_at_usec && usec >= vm->link_retry_at_usec) {
                int r;

                vm->link_retry_at_usec = 0;
                r = vm_link_start(vm->daemon, vm, vm->registering != NULL);
                if (r < 0 && vm->registering) /* a registration's last try */
                        daemon_vm_linked(vm->daemon, vm, r, "qmp", vm->link_error);
        }
        return 0;
}

int vm_link_start(Daemon *d, Vm *vm, bool fresh) {
        _cleanup_free_ VmConnect *c = NULL;
        int r;

        assert(!vm->qmp && !vm->connecting);
        c = calloc(1, sizeof(VmConnect));
        if (!c)
                return -ENOMEM;
        c->vm = vm;
        c->fresh = fresh;
        c->want_memory = d->mem != NULL;

        if (!vm->link_retry_at_usec && !(fresh && vm->link_started_usec))
                vm->link_started_usec = daemon_now_mono_usec();
        r = qmp_connect(vm->qmp_path, &vm->qmp);
        if (r < 0) {
                uint64_t now = daemon_now_mono_usec();

                vm->qmp = NULL;
                snprintf(vm->link_error, sizeof(vm->link_error), "connect(%s): %s", vm->qmp_path, strerror(-r));
                vm->link = VM_LINK_DOWN;
                /* A QEMU between two clients (its monitor re-listens after
                 * one hangs up) or with a full backlog: a registration tries
                 * again for as long as one command may take. */
                if (fresh && (r == -EAGAIN || r == -ECONNREFUSED) &&
                    now < vm->link_started_usec + (uint64_t) LINK_CMD_TIMEOUT_MS * 1000) {
                        vm->link_retry_at_usec = now + LINK_RETRY_REGISTER_USEC;
                        link_arm(vm, vm->link_retry_at_usec);
                        return 0;
                }
                if (!fresh)
                        link_schedule_retry(vm, r == -EAGAIN);
                return r;
        }
        qmp_set_event_handler(vm->qmp, on_qmp_event, vm);
        r = sd_event_add_io(d->loop, &vm->qmp_io, qmp_get_fd(vm->qmp), (uint32_t) qmp_get_events(vm->qmp),
                            on_qmp_io, vm);
        if (r >= 0)
                r = queue(vm, c, "query-status", NULL, on_status);
        if (r >= 0 && fresh)
                r = queue(vm, c, "query-uuid", NULL, on_uuid);
        if (r >= 0)
                r = queue(vm, c, "query-cpus-fast", NULL, on_cpus);
        if (r >= 0)
                r = queue(vm, c, "query-iothreads", NULL, on_iothreads);
        if (r >= 0 && c->want_memory) {
                r = queue(vm, c, "query-memory-size-summary", NULL, on_memory_summary);
                if (r >= 0)
                        r = queue(vm, c, "query-pci", NULL, on_pci);
                if (r >= 0)
                        r = queue(vm, c, "qom-list", "{\"path\":\"/machine/peripheral\"}", on_peripherals);
                if (r >= 0)
                        r = queue(vm, c, "query-balloon", NULL, on_balloon);
        }
        if (r < 0) {
                /* Nothing was sent yet; the queued callbacks run from
                 * qmp_free() with -ECANCELED while c is still ours. */
                vm->qmp_io = sd_event_source_disable_unref(vm->qmp_io);
                qmp_free(vm->qmp);
                vm->qmp = NULL;
                snprintf(vm->link_error, sizeof(vm->link_error), "cannot start QMP on %s: %s", vm->qmp_path,
                         strerror(-r));
                vm->link = VM_LINK_DOWN;
                if (!fresh)
                        link_schedule_retry(vm, true);
                return r;
        }
        vm->connecting = TAKE_PTR(c);
        vm->link = VM_LINK_CONNECTING;
        link_rearm_io(vm);
        return 0;
}

/* Everything is in (or the link failed): bind, bank, memory; or give up
 * and retry.  A registration learns the outcome through daemon_vm_linked(). */
static void link_finish_connect(Daemon *d, Vm *vm) {
        VmConnect *c = TAKE_PTR(vm->connecting);
        uint64_t mono = daemon_now_mono_usec();
        VmThreadRoles roles = { 0 };
        VmBindStats st;
        int r = c->error;

        if (r == 0) {
                r = d->on_model && d->model_peer_pid
                            ? d->model_peer_pid(vm->qmp_path, &vm->pid, d->model_peer_pid_userdata)
                            : vm_socket_peer_pid(qmp_get_fd(vm->qmp), &vm->pid);
                if (r < 0)
                        connect_fail(c, r, "qmp", "cannot tell the QEMU process on %s: %s", vm->qmp_path,
                                     strerror(-r));
        }
        if (r == 0 && c->fresh && c->has_uuid && strcmp(c->uuid, QMP_UUID_NONE) != 0 &&
            strcmp(c->uuid, vm->id.str) != 0) {
                r = -EEXIST;
                connect_fail(c, r, "uuid", "the QEMU on %s says its UUID is %s, not %s", vm->qmp_path, c->uuid,
                             vm->id.str);
        }
        if (r == 0 && (r = vm_thread_roles_from_qmp(c->cpus, c->n_cpus, c->io, c->n_io, &roles)) < 0)
                connect_fail(c, r, "qmp", "QEMU named no usable threads: %s", strerror(-r));
        if (r == 0 && (r = vm_bind(d->host, &vm->id, vm->pid, &roles, &st)) < 0)
                connect_fail(c, r, NULL, "cannot bind VM %s: %s", vm->id.str, strerror(-r));
        if (r == 0) {
                vm_thread_roles_done(&vm->roles);
                vm->roles = roles;
                roles = (VmThreadRoles) { 0 };
                if (st.foreign > 0)
                        log_vm_warning(&vm->id, "QEMU named %zu thread id(s) that are not its own; ignored",
                                       st.foreign);
                snprintf(vm->run_state, sizeof(vm->run_state), "%s",
                         c->status.status[0] ? c->status.status : "unknown");
                if (vm->spec.vcpus == 0)
                        vm->spec.vcpus = (uint32_t) MAX(vm->roles.n_vcpus, 1);
                r = daemon_vm_bank_start(d, vm, c->fresh, mono);
                if (r < 0)
                        connect_fail(c, r, NULL, "cannot start the credit bank of VM %s: %s", vm->id.str,
                                     strerror(-r));
        }
        vm_thread_roles_done(&roles);

        if (r < 0) {
                bool stalled = r == -ETIMEDOUT;

                snprintf(vm->link_error, sizeof(vm->link_error), "%s", c->reason);
                vm->qmp_io = sd_event_source_disable_unref(vm->qmp_io);
                qmp_free(vm->qmp); /* completes nothing: every reply is in */
                vm->qmp = NULL;
                vm->pid = 0;
                vm->link = stalled ? VM_LINK_STALLED : VM_LINK_DOWN;
                if (vm->link_timer)
                        (void) sd_event_source_set_enabled(vm->link_timer, SD_EVENT_OFF);
                if (!c->fresh) {
                        (void) log_vm_full_errno(stalled ? LOG_LEVEL_WARNING : LOG_LEVEL_DEBUG, 0, &vm->id,
                                                 "not linked (retrying): %s", c->reason);
                        link_schedule_retry(vm, stalled);
                }
                daemon_vm_linked(d, vm, r, c->field, c->reason);
                connect_free(c);
                return;
        }

        vm->link = VM_LINK_BOUND;
        vm->link_error[0] = '\0';
        vm->link_backoff_usec = 0;
        vm->roles_refresh_at_usec = mono + roles_poll_phase_usec(&vm->id);
        log_vm_info(&vm->id, "%s: pid %d, %zu vCPU(s), %zu iothread(s), %s bank, linked in %" PRIu64 " ms",
                    c->fresh ? "registered" : "adopted", (int) vm->pid, vm->roles.n_vcpus, vm->roles.n_io,
                    credit_bank_kind_to_string(d->bank_kind), (mono - vm->link_started_usec) / UINT64_C(1000));
        if (c->want_memory) {
                MemPolVmSpec spec = {
                        .priority = vm->mem_priority,
                        .ram_bytes = c->mem.base_memory_bytes +
                                     (c->mem.has_plugged_memory ? c->mem.plugged_memory_bytes : 0),
                        .balloon = c->has_balloon,
                };
                for (size_t i = 0; i < c->n_pci; i++)
                        spec.passthrough |= c->pci[i].is_vfio;
                daemon_vm_memory_start(d, vm, &spec, c->balloon_actual);
        }
        link_rearm_io(vm);
        /* An adopted VM's journaled handoff meets what QEMU says now. */
        if (!vm->registering)
                daemon_vm_migration_bound(d, vm);
        daemon_vm_linked(d, vm, 0, NULL, NULL);
        connect_free(c);
}

void vm_link_close(Daemon *d, Vm *vm, const char *why, bool stalled) {
        if (vm->connecting) { /* a link that never came up */
                connect_fail(vm->connecting, stalled ? -ETIMEDOUT : -ECONNRESET, "qmp", "%s", why);
                link_finish_connect(d, vm);
                return;
        }
        daemon_vm_disconnect(d, vm, why);
        roles_query_free(TAKE_PTR(vm->roles_query));
        snprintf(vm->link_error, sizeof(vm->link_error), "%s", why);
        vm->link = stalled ? VM_LINK_STALLED : VM_LINK_DOWN;
        link_schedule_retry(vm, stalled);
}

void vm_link_stop(Vm *vm) {
        vm->qmp_io = sd_event_source_disable_unref(vm->qmp_io);
        vm->link_timer = sd_event_source_disable_unref(vm->link_timer);
        qmp_free(vm->qmp); /* runs the pending callbacks with -ECANCELED */
        vm->qmp = NULL;
        connect_free(TAKE_PTR(vm->connecting));
        roles_query_free(TAKE_PTR(vm->roles_query));
        vm->link = VM_LINK_DOWN;
}

/* ---- thread roles, refreshed without waiting ----------------------------- */

static void on_roles_cpus(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmRolesQuery *rq = userdata;
        if (r == 0)
                r = qmp_parse_cpus_fast(json, &rq->cpus, &rq->n_cpus);
        if (r < 0 && rq->error == 0)
                rq->error = r;
        rq->pending--;
}

static void on_roles_io(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        VmRolesQuery *rq = userdata;
        if (r == 0)
                r = qmp_parse_iothreads(json, &rq->io, &rq->n_io);
        if (r < 0 && rq->error == 0)
                rq->error = r;
        rq->pending--;
}

static void link_finish_roles(Daemon *d, Vm *vm) {
        VmRolesQuery *rq = TAKE_PTR(vm->roles_query);
        VmThreadRoles roles = { 0 };
        VmBindStats st;
        int r = rq->error;

        if (r == 0)
                r = vm_thread_roles_from_qmp(rq->cpus, rq->n_cpus, rq->io, rq->n_io, &roles);
        if (r == 0)
                r = vm_bind(d->host, &vm->id, vm->pid, &roles, &st);
        if (r < 0)
                log_vm_debug(&vm->id, "role refresh failed: %s", strerror(-r));
        else {
                if (st.moved > 0)
                        log_vm_debug(&vm->id, "%zu thread(s) placed", st.moved);
                vm_thread_roles_done(&vm->roles);
                vm->roles = roles;
                roles = (VmThreadRoles) { 0 };
        }
        vm_thread_roles_done(&roles);
        roles_query_free(rq);
}

int vm_link_refresh_roles(Vm *vm) {
        VmRolesQuery *rq;
        int r;

        if (vm->link != VM_LINK_BOUND || vm->roles_query)
                return 0;
        rq = calloc(1, sizeof(VmRolesQuery));
        if (!rq)
                return -ENOMEM;
        rq->vm = vm;
        r = qmp_execute(vm->qmp, "query-cpus-fast", NULL, LINK_CMD_TIMEOUT_MS, on_roles_cpus, rq);
        if (r == 0) {
                rq->pending++;
                r = qmp_execute(vm->qmp, "query-iothreads", NULL, LINK_CMD_TIMEOUT_MS, on_roles_io, rq);
                if (r == 0)
                        rq->pending++;
        }
        /* A failed queue means a closed link: the io callback handles it.
         * Any command already queued still calls back into rq. */
        if (r < 0 && rq->pending == 0) {
                free(rq);
                return r;
        }
        if (r < 0)
                rq->error = r;
        vm->roles_query = rq;
        vm->roles_refresh_at_usec = daemon_now_mono_usec() + ROLES_POLL_USEC;
        link_rearm_io(vm);
        return 0;
}
