/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgrd and libvirtd: adoption of libvirt's domains, their lifecycle,
 * spec and tunables (daemon-libvirt.h says what and why).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "vmmgr/daemon/daemon-libvirt.h"
#include "vmmgr/daemon/libvirt-conn.h"
#include "vmmgr/daemon/libvirt-loop.h"
#include "vmmgr/daemon/libvirt-metadata.h"
#include "vmmgr/daemon/libvirt-worker.h"

#include <libvirt/virterror.h>

/* How long after a hook's "started" vmmgrd looks for the domain itself,
 * in case libvirt's own event is late or lost: after the hook returned
 * (libvirtd holds the domain while the hook runs). */
#define NOTIFY_RECHECK_USEC (1500 * UINT64_C(1000))

static const char *run_state_name(int state) {
        switch (state) {
        case VIR_DOMAIN_RUNNING:
                return "running";
        case VIR_DOMAIN_BLOCKED:
                return "blocked";
        case VIR_DOMAIN_PAUSED:
                return "paused";
        case VIR_DOMAIN_SHUTDOWN:
                return "shutdown";
        case VIR_DOMAIN_SHUTOFF:
                return "shutoff";
        case VIR_DOMAIN_CRASHED:
                return "crashed";
        case VIR_DOMAIN_PMSUSPENDED:
                return "pmsuspended";
        default:
                return "unknown";
        }
}

/* A domain name is libvirt's (outside text): it becomes a file name only
 * when it is one component without control characters. */
static bool name_is_file_safe(const char *name) {
        size_t len = strlen(name);

        if (len == 0 || len >= STATE_LIBVIRT_NAME_MAX || name[0] == '.' || strchr(name, '/'))
                return false;
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* QEMU's pid from libvirt's pid file (<pid_dir>/<name>.pid). */
static int read_pid_file(Daemon *d, const char *name, pid_t *ret) {
        _cleanup_close_ int dir = -EBADF, fd = -EBADF;
        char file[STATE_LIBVIRT_NAME_MAX + 8], buf[32];
        ssize_t n;
        int pid, r;

        if (!name_is_file_safe(name))
                return -EINVAL;
        snprintf(file, sizeof(file), "%s.pid", name);
        dir = open(d->cfg.libvirt_pid_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return negative_errno();
        fd = openat(dir, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = '\0';
        r = parse_int_range(buf, 1, INT32_MAX, &pid);
        if (r < 0)
                return -EBADMSG;
        *ret = (pid_t) pid;
        return 0;
}

/* libvirt's domain group from where QEMU's main thread is: libvirt puts
 * it in <domain>/emulator.  The domain's last component must look like
 * libvirt's: "qemu-N-NAME.libvirt-qemu" (no systemd), "libvirt" (systemd,
 * libvirt >= 7.1) or "machine-qemu...scope" (older libvirt on systemd). */
static int domain_group(Daemon *d, pid_t pid, char *buf, size_t size, char *why, size_t why_size) {
        char path[CG_PATH_MAX];
        const char *last;
        char *slash;
        size_t len;
        int r;

        r = kh_thread_group(d->host, CG_CTRL_CPU, pid, path, sizeof(path));
        if (r < 0) {
                snprintf(why, why_size, "cannot read the cgroup of QEMU (pid %d): %s", (int) pid, strerror(-r));
                return r;
        }
        len = strlen(path);
        if (len < strlen("/emulator") || strcmp(path + len - strlen("/emulator"), "/emulator") != 0) {
                snprintf(why, why_size,
                         "QEMU (pid %d) is in cpu group /%s, not in libvirt's <domain>/emulator "
                         "(is \"cpu\" in qemu.conf's cgroup_controllers?)",
                         (int) pid, path);
                return -EPROTO;
        }
        path[len - strlen("/emulator")] = '\0';
        slash = strrchr(path, '/');
        last = slash ? slash + 1 : path;
        len = strlen(last);
        if (!((len > strlen(".libvirt-qemu") && strcmp(last + len - strlen(".libvirt-qemu"), ".libvirt-qemu") == 0) ||
              strcmp(last, "libvirt") == 0 ||
              (strncmp(last, "machine-qemu", strlen("machine-qemu")) == 0 && len > 6 &&
               strcmp(last + len - 6, ".scope") == 0))) {
                snprintf(why, why_size, "QEMU (pid %d) is in /%s/emulator, which is not libvirt's layout", (int) pid,
                         path);
                return -EPROTO;
        }
        if (strlen(path) >= size)
                return -ENAMETOOLONG;
        snprintf(buf, size, "%s", path);
        return 0;
}

/* The vCPU and iothread threads as libvirt placed them. */
static void refresh_roles(Daemon *d, Vm *vm) {
        VmThreadRoles roles = { 0 };

        if (kh_vm_threads(d->host, &vm->id, CG_ROLE_VCPUS, &roles.vcpus, &roles.n_vcpus) < 0)
                return;
        if (kh_vm_threads(d->host, &vm->id, CG_ROLE_IO, &roles.io, &roles.n_io) < 0) {
                roles.io = NULL;
                roles.n_io = 0;
        }
        vm_thread_roles_done(&vm->roles);
        vm->roles = roles;
}

static void domain_event(Daemon *d, const VmId *id, const char *kind, const char *key, const char *value) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();

        if (detail && key)
                (void) json_io_add_string(detail, key, value);
        (void) daemon_event(d, id, kind, detail);
}

/* The spec the domain asks for: 1 with *ret set, 0 when the domain is not
 * vmmgr's (no element and manage = tagged), or an error with why. */
static int domain_spec(Daemon *d, const LvDomainFacts *f, CreditSpec *ret, char *class_name, size_t class_size,
                       char *why, size_t why_size) {
        LvCreditsError lerr = { 0 };
        LvCredits lc = f->credits;
        const char *cls = NULL;
        int r;

        if (f->credits_r == -ENOENT) {
                if (d->cfg.libvirt_manage != CONFIG_LIBVIRT_MANAGE_ALL)
                        return 0;
                lc = (LvCredits) { 0 };
        } else if (f->credits_r < 0) {
                snprintf(why, why_size, "<vmmgr:credits>: %s",
                         f->credits_err.message[0] ? f->credits_err.message : strerror(-f->credits_r));
                return f->credits_r;
        }
        r = lv_credits_resolve(&lc, &d->cfg.classes, d->cfg.default_class, f->nr_vcpus, ret, &cls, &lerr);
        if (r < 0) {
                snprintf(why, why_size, "<vmmgr:credits>: %s", lerr.message[0] ? lerr.message : strerror(-r));
                return r;
        }
        snprintf(class_name, class_size, "%s", cls ? cls : "");
        return 1;
}

/* Stores a newly adopted domain: row, fresh ledger, "register" event. */
static int store_new(Daemon *d, Vm *vm) {
        _cleanup_json_ struct json_object *detail = json_object_new_object();
        StateError serr;
        int r;

        if (!detail || json_io_add_string(detail, "libvirt_domain", vm->libvirt_name) < 0 ||
            json_io_add_string(detail, "class", vm->class_name) < 0 || json_io_add_int(detail, "pid", vm->pid) < 0 ||
            json_io_add_int(detail, "vcpus", vm->spec.vcpus) < 0)
                return -ENOMEM;
        r = daemon_store_registration(d, vm, detail, &serr);
        if (r < 0)
                log_warning("Domain %s (%s): could not store it: %s", vm->libvirt_name, vm->id.str, serr.message);
        return r;
}

static void let_go(Daemon *d, Vm *vm, const char *reason);

/* A new spec for a managed domain (its metadata changed). */
/* A libvirt domain's spec changed (its metadata, or its vCPU count): the
 * bank takes it, the row stores it, an event records it.  false when the
 * bank refused it (the old spec stays). */
static bool apply_spec(Daemon *d, Vm *vm, const CreditSpec *spec, const char *class_name, const char *event,
                       const char *key, const char *value) {
        StateError serr;
        StateVm row;
        int r;

        r = credit_bank_set_spec(vm->bank, spec, daemon_now_mono_usec());
        if (r < 0) {
                log_warning("Domain %s (%s): cannot apply the new spec: %s", vm->libvirt_name, vm->id.str,
                            strerror(-r));
                return false;
        }
        vm->spec = *spec;
        snprintf(vm->class_name, sizeof(vm->class_name), "%s", class_name);
        daemon_vm_state_row(vm, &row);
        if (state_vm_put(d->db, &row, &serr) < 0)
                log_warning("Domain %s (%s): new spec not stored: %s", vm->libvirt_name, vm->id.str, serr.message);
        domain_event(d, &vm->id, event, key, value);
        return true;
}

/* A new spec for a managed domain (its metadata changed). */
static void respec(Daemon *d, Vm *vm, const CreditSpec *spec, const char *class_name) {
        if (memcmp(spec, &vm->spec, sizeof(*spec)) == 0 && strcmp(class_name, vm->class_name) == 0)
                return; /* our own write coming back, or no change */
        if (apply_spec(d, vm, spec, class_name, "spec", "source", "libvirt metadata"))
                log_info("Domain %s (%s): spec from its metadata: class %s", vm->libvirt_name, vm->id.str,
                         class_name[0] ? class_name : "(custom)");
}

/* What libvirtd said about a domain (libvirt-worker.c): adopt it, update
 * its spec, or let it go.  Nothing here calls libvirt. */
static void on_facts(const LvDomainFacts *f, void *userdata) {
        char domain[CG_PATH_MAX], class_name[CREDIT_CLASS_NAME_MAX], why[512] = "";
        Daemon *d = userdata;
        const char *name = f->name;
        CreditSpec spec;
        bool fresh = false;
        pid_t pid = 0;
        VmId id;
        Vm *vm;
        int r;

        if (vm_id_parse(f->uuid, &id) < 0)
                return;
        vm = daemon_find_vm(d, &id);
        if (vm && !vm->libvirt_name[0]) {
                if (f->r == 0 && log_ratelimit(&vm->tick_warned_usec, daemon_now_mono_usec(), 60 * USEC_PER_SEC))
                        log_warning("Domain %s (%s) is registered over QMP; libvirt's domain is left alone", name,
                                    f->uuid);
                return;
        }
        log_debug("libvirt: domain %s (%s): r %d, state %d, credits %d; libvirtd answered in %" PRIu64 " us", name,
                  f->uuid, f->r, f->state, f->credits_r, f->took_usec);
        if (f->r == -ENOENT || (f->r == 0 && f->state == VIR_DOMAIN_SHUTOFF)) {
                if (vm)
                        let_go(d, vm, "not running");
                return;
        }
        if (f->r < 0) {
                log_warning("Domain %s not looked at now: %s", f->uuid, f->error);
                return;
        }
        r = domain_spec(d, f, &spec, class_name, sizeof(class_name), why, sizeof(why));
        if (r == 0) {
                if (vm)
                        let_go(d, vm, "metadata removed");
                else
                        log_debug("Domain %s (%s) has no <vmmgr:credits>: not managed", name, f->uuid);
                return;
        }
        if (r < 0) {
                if (vm && vm->bank) {
                        log_warning("Domain %s (%s): the new spec is refused, the old one stays: %s", name, f->uuid,
                                    why);
                        domain_event(d, &id, "spec-refused", "reason", why);
                } else
                        log_warning("Domain %s (%s) not managed: %s", name, f->uuid, why);
                return;
        }
        r = read_pid_file(d, name, &pid);
        if (r < 0)
                snprintf(why, sizeof(why), "cannot read its pid from %s/%s.pid: %s", d->cfg.libvirt_pid_dir, name,
                         strerror(-r));
        if (r >= 0)
                r = domain_group(d, pid, domain, sizeof(domain), why, sizeof(why));
        if (r < 0) {
                log_warning("Domain %s (%s) not managed: %s", name, f->uuid, why);
                if (vm) {
                        vm->link = VM_LINK_DOWN;
                        snprintf(vm->link_error, sizeof(vm->link_error), "%s", why);
                }
                return;
        }
        if (vm && vm->link == VM_LINK_BOUND && vm->pid == pid) {
                snprintf(vm->run_state, sizeof(vm->run_state), "%s", run_state_name(f->state));
                /* An incoming domain libvirt resumed before vmmgrd had
                 * adopted it (its RESUMED came first): resumed now. */
                if (f->state == VIR_DOMAIN_RUNNING)
                        daemon_vm_migration_lv_resumed(d, vm);
                respec(d, vm, &spec, class_name);
                return; /* already managed: a reconnect, a second report, a metadata change */
        }
        if (vm && vm->bank) /* a new QEMU under the same id: the old one's ledger first */
                daemon_vm_disconnect(d, vm, "QEMU replaced");
        r = kh_vm_set_foreign(d->host, &id, domain);
        if (r < 0) {
                log_warning("Domain %s (%s) not managed: its group /%s was refused: %s", name, f->uuid, domain,
                            strerror(-r));
                return;
        }
        if (!vm) {
                vm = calloc(1, sizeof(Vm));
                if (!vm) {
                        (void) kh_vm_forget_foreign(d->host, &id);
                        return;
                }
                vm->daemon = d;
                vm->id = id;
                vm->registered_at_unix = daemon_now_unix_usec() / USEC_PER_SEC;
                /* Started by libvirt for an incoming migration: a
                 * provisional bank until the source's record comes. */
                for (size_t i = 0; i < d->n_lv_incoming; i++)
                        if (vm_id_equal(&d->lv_incoming[i], &id)) {
                                vm->mig_incoming = true;
                                d->lv_incoming[i] = d->lv_incoming[--d->n_lv_incoming];
                                break;
                        }
                r = daemon_vm_list_add(d, vm);
                if (r < 0) {
                        (void) kh_vm_forget_foreign(d->host, &id);
                        vm_free(vm);
                        return;
                }
                fresh = true;
        }
        /* The domain's metadata is the truth, also for one known from the
         * database (it may have changed while vmmgrd was down). */
        vm->spec = spec;
        snprintf(vm->class_name, sizeof(vm->class_name), "%s", class_name);
        snprintf(vm->libvirt_name, sizeof(vm->libvirt_name), "%s", name);
        vm->pid = pid;
        snprintf(vm->run_state, sizeof(vm->run_state), "%s", run_state_name(f->state));
        refresh_roles(d, vm);
        if (fresh) {
                CpuBandwidth bw;

                /* A quota libvirt applied (<cputune> global_quota) is the
                 * bank's to set from now on: say so once. */
                if (kh_cpu_get_bandwidth(d->host, &id, CG_ROLE_VCPUS, &bw) == 0 && bw.quota_usec != CPU_QUOTA_MAX)
                        log_warning("Domain %s (%s) has a CPU quota of its own (%" PRIu64 " of %" PRIu64
                                    " usec: <cputune> global_quota?); vmmgr's credits set it from now on",
                                    name, f->uuid, bw.quota_usec, bw.period_usec);
        }
        r = daemon_vm_bank_start(d, vm, fresh, daemon_now_mono_usec());
        if (r < 0) {
                snprintf(vm->link_error, sizeof(vm->link_error), "cannot start its credit bank: %s", strerror(-r));
                log_warning("Domain %s (%s): %s", name, f->uuid, vm->link_error);
                vm->link = VM_LINK_DOWN;
                vm->pid = 0;
                if (fresh) {
                        daemon_vm_list_remove(d, vm);
                        (void) kh_vm_forget_foreign(d->host, &id);
                        vm_free(vm);
                }
                return;
        }
        if (fresh && store_new(d, vm) < 0) {
                daemon_vm_list_remove(d, vm);
                vm->bank = credit_bank_free(vm->bank);
                (void) kh_vm_forget_foreign(d->host, &id);
                vm_free(vm);
                return;
        }
        vm->link = VM_LINK_BOUND;
        vm->link_error[0] = '\0';
        if (!fresh)
                daemon_vm_linked(d, vm, 0, NULL, NULL); /* the "adopt" event; the ledger thaws */
        vm->adopted_once = true;
        if (d->mem) {
                MemPolVmSpec mspec = { .priority = vm->mem_priority,
                                       .ram_bytes = (uint64_t) f->max_mem_kib * 1024,
                                       .balloon = f->has_balloon };

                /* The balloon goes through libvirt (daemon_libvirt_balloon,
                 * BALLOON_CHANGE events), never QMP. */
                daemon_vm_memory_start(d, vm, &mspec, (uint64_t) f->balloon_actual_kib * 1024);
        }
        log_info("Domain %s (%s) %s: pid %d, %u vCPU(s), group /%s, %s bank; libvirtd answered in %" PRIu64 " ms",
                 name, f->uuid, fresh ? "managed" : "re-adopted", (int) pid, vm->spec.vcpus, domain,
                 credit_bank_kind_to_string(d->bank_kind), f->took_usec / 1000);
}

/* Asks the worker about a domain; the answer comes to on_facts(). */
static void look_at(Daemon *d, const char *uuid) {
        int r = d->lv_worker ? lv_worker_request(d->lv_worker, uuid) : -ENOTCONN;

        if (r < 0)
                log_warning("libvirt: cannot look at domain %s now: %s", uuid, strerror(-r));
}

/* The domain stopped (or is no longer running at a reconnect): its final
 * ledger is recorded and it is let go. */
static void let_go(Daemon *d, Vm *vm, const char *reason) {
        ServiceError err = { 0 };
        char name[STATE_LIBVIRT_NAME_MAX];
        int r;

        snprintf(name, sizeof(name), "%s", vm->libvirt_name);
        daemon_vm_memory_stop(d, vm);
        r = daemon_vm_unregister(d, vm, reason, &err);
        if (r < 0)
                log_warning("Domain %s (%s): could not let it go: %s", name, vm->id.str, err.message);
}

static void on_domain_running(LvConn *c, virDomainPtr dom, const char *uuid, void *userdata) {
        Daemon *d = userdata;
        VmId id;
        Vm *vm;

        /* Seen running at this connect: not let go when it comes up. */
        if (vm_id_parse(uuid, &id) == 0 && (vm = daemon_find_vm(d, &id)))
                vm->lv_seen_generation = lv_conn_generation(c);
        look_at(d, uuid);
}

static const char *stopped_reason(int detail) {
        switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
                return "shutdown";
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
                return "destroyed";
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
                return "crashed";
        case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
                return "migrated";
        case VIR_DOMAIN_EVENT_STOPPED_SAVED:
                return "saved";
        case VIR_DOMAIN_EVENT_STOPPED_FAILED:
                return "failed";
        default:
                return "stopped";
        }
}

/* A domain STARTED_MIGRATED is incoming until adopted; one that stops
 * (or starts again otherwise) before is not any more. */
static void lv_incoming_forget(Daemon *d, const VmId *id) {
        for (size_t i = 0; i < d->n_lv_incoming; i++)
                if (vm_id_equal(&d->lv_incoming[i], id)) {
                        d->lv_incoming[i] = d->lv_incoming[--d->n_lv_incoming];
                        return;
                }
}

static void on_lifecycle(LvConn *c, virDomainPtr dom, const char *uuid, int event, int detail, void *userdata) {
        Daemon *d = userdata;
        VmId id;
        Vm *vm;

        if (vm_id_parse(uuid, &id) < 0)
                return;
        vm = daemon_find_vm(d, &id);
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                lv_incoming_forget(d, &id);
                if (detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED && !vm &&
                    d->n_lv_incoming < ARRAY_SIZE(d->lv_incoming))
                        d->lv_incoming[d->n_lv_incoming++] = id;
                look_at(d, uuid);
                break;
        case VIR_DOMAIN_EVENT_RESUMED:
        case VIR_DOMAIN_EVENT_SUSPENDED:
                if (!vm || vm->link != VM_LINK_BOUND) {
                        look_at(d, uuid);
                        break;
                }
                snprintf(vm->run_state, sizeof(vm->run_state), "%s",
                         event == VIR_DOMAIN_EVENT_RESUMED ? "running" : "paused");
                /* Live migration's credit handoff (docs/migration.md). */
                if (event == VIR_DOMAIN_EVENT_SUSPENDED && detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
                        daemon_vm_migration_lv_source_paused(d, vm);
                else if (event == VIR_DOMAIN_EVENT_RESUMED)
                        daemon_vm_migration_lv_resumed(d, vm);
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
                lv_incoming_forget(d, &id); /* an incoming domain that never ran here */
                if (vm && vm->libvirt_name[0] &&
                    !daemon_vm_migration_lv_source_stopped(d, vm, detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED))
                        let_go(d, vm, stopped_reason(detail));
                break;
        default:
                break;
        }
}

static void on_metadata(LvConn *c, virDomainPtr dom, const char *uuid, int type, const char *nsuri,
                        void *userdata) {
        if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && strcmp(nsuri, LV_CREDITS_NS) == 0)
                look_at(userdata, uuid); /* the spec is read there, off the loop */
}

static void check_vcpus(Daemon *d, Vm *vm);

/* libvirt rewrote CPU bandwidth (virsh schedinfo, or <cputune> applied at
 * a vCPU hotplug): the bank's own value goes back, and an operator who set
 * a global quota on a managed domain hears that vmmgr owns it. */
static void on_tunable(LvConn *c, virDomainPtr dom, const char *uuid, virTypedParameterPtr params, int n,
                       void *userdata) {
        Daemon *d = userdata;
        bool cpu = false;
        VmId id;
        Vm *vm;
        int r;

        if (vm_id_parse(uuid, &id) < 0 || !(vm = daemon_find_vm(d, &id)) || !vm->libvirt_name[0] || !vm->bank)
                return;
        for (int i = 0; i < n; i++) {
                if (strncmp(params[i].field, "cputune.", 8) != 0 ||
                    !(strstr(params[i].field, "quota") || strstr(params[i].field, "period")))
                        continue;
                cpu = true;
                if (strcmp(params[i].field, VIR_DOMAIN_TUNABLE_CPU_GLOBAL_QUOTA) == 0 &&
                    params[i].type == VIR_TYPED_PARAM_LLONG && params[i].value.l > 0)
                        log_warning("Domain %s (%s): <cputune> global_quota %lld is vmmgr's to set on a domain "
                                    "it manages (its credits); it is written back",
                                    vm->libvirt_name, uuid, params[i].value.l);
        }
        if (!cpu)
                return;
        check_vcpus(d, vm); /* a vCPU hotplug comes with one too */
        r = credit_bank_resync(vm->bank, daemon_now_mono_usec());
        if (r < 0)
                log_warning("Domain %s (%s): cannot re-apply its CPU limit: %s", vm->libvirt_name, uuid, strerror(-r));
        else if (r > 0) {
                domain_event(d, &id, "reapplied", "reason", "libvirt rewrote the CPU bandwidth");
                log_info("Domain %s (%s): libvirt rewrote its CPU bandwidth; vmmgr's is back", vm->libvirt_name,
                         uuid);
        }
}

/* The guest's balloon moved (libvirt's event, from QEMU's BALLOON_CHANGE). */
static void on_balloon_change(LvConn *c, virDomainPtr dom, const char *uuid, unsigned long long actual_kib,
                              void *userdata) {
        Daemon *d = userdata;
        VmId id;
        Vm *vm;

        if (vm_id_parse(uuid, &id) < 0 || !(vm = daemon_find_vm(d, &id)) || !vm->libvirt_name[0])
                return;
        daemon_vm_memory_balloon_actual(d, vm, (uint64_t) actual_kib * 1024);
}

static void on_balloon_set(const char *uuid, int r, const char *error, void *userdata) {
        if (r < 0)
                log_warning("Domain %s: libvirt refused the balloon target: %s", uuid,
                            error && error[0] ? error : strerror(-r));
}

int daemon_libvirt_balloon(Daemon *d, Vm *vm, uint64_t target_bytes) {
        if (!d->lv_worker)
                return -ENOTCONN;
        return lv_worker_set_memory(d->lv_worker, vm->id.str, (target_bytes + 1023) / 1024, on_balloon_set, d);
}

static void on_state(LvConn *c, LvConnState state, const char *why, uint64_t retry_in_usec, void *userdata) {
        Daemon *d = userdata;

        if (state == LV_CONN_UP) {
                unsigned gen = lv_conn_generation(c);

                log_info("libvirt: connected to %s", lv_conn_uri(c));
                /* libvirt VMs not reported running at this connect stopped
                 * while vmmgrd or libvirtd was away. */
                for (size_t i = d->n_vms; i > 0; i--) {
                        Vm *vm = d->vms[i - 1];

                        if (vm->libvirt_name[0] && vm->lv_seen_generation != gen)
                                let_go(d, vm, "not running");
                }
                return;
        }
        if (state == LV_CONN_WAITING) {
                bool quiet = d->cfg.libvirt == CONFIG_LIBVIRT_AUTO && lv_conn_generation(c) == 0;

                (void) log_full_errno(quiet ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, 0,
                                      "libvirt: not connected to %s (%s); retrying in %" PRIu64 " s", lv_conn_uri(c),
                                      why ? why : "?", retry_in_usec / USEC_PER_SEC);
                for (size_t i = 0; i < d->n_vms; i++)
                        if (d->vms[i]->libvirt_name[0] && d->vms[i]->link != VM_LINK_BOUND)
                                snprintf(d->vms[i]->link_error, sizeof(d->vms[i]->link_error),
                                         "waiting for libvirt (%s)", why ? why : "not connected");
        }
}

static int on_recheck(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        d->lv_recheck = sd_event_source_disable_unref(d->lv_recheck);
        for (size_t i = 0; i < d->n_lv_pending; i++) {
                Vm *vm = daemon_find_vm(d, &d->lv_pending[i]);

                if (!vm || vm->link != VM_LINK_BOUND) /* libvirt's event did not come first */
                        look_at(d, d->lv_pending[i].str);
        }
        d->n_lv_pending = 0;
        return 0;
}

int daemon_libvirt_notify(Daemon *d, const VmId *id, const char *name, const char *operation,
                          ServiceError *err) {
        if (!d->lv) {
                err->field = NULL;
                snprintf(err->message, sizeof(err->message), "vmmgrd does not talk to libvirt ([libvirt] enabled = no)");
                return -ENOENT;
        }
        log_info("libvirt hook: domain %s (%s) %s", name, id->str, operation);
        if (strcmp(operation, "started") != 0)
                return 0; /* stopped/release: libvirt's STOPPED event lets the domain go */
        /* Never call libvirt from here: libvirtd is inside the hook. */
        if (d->n_lv_pending < ARRAY_SIZE(d->lv_pending)) {
                for (size_t i = 0; i < d->n_lv_pending; i++)
                        if (strcmp(d->lv_pending[i].str, id->str) == 0)
                                return 0;
                d->lv_pending[d->n_lv_pending++] = *id;
        }
        if (!d->lv_recheck &&
            sd_event_add_time_relative(d->loop, &d->lv_recheck, CLOCK_MONOTONIC, NOTIFY_RECHECK_USEC, 0, on_recheck,
                                       d) < 0)
                d->lv_recheck = NULL;
        return 0;
}

/* One domain's threads and vCPU count, from libvirt's groups: a vCPU
 * hotplug adds or removes a vcpuN group, and the earn rate is per vCPU. */
static void check_vcpus(Daemon *d, Vm *vm) {
        CreditSpec spec;
        char v[16];
        int n;

        if (!vm->libvirt_name[0] || vm->link != VM_LINK_BOUND || !vm->bank)
                return;
        refresh_roles(d, vm);
        n = kh_vm_foreign_role_groups(d->host, &vm->id, CG_ROLE_VCPUS);
        if (n <= 0 || (uint32_t) n == vm->spec.vcpus)
                return;
        spec = vm->spec;
        spec.vcpus = (uint32_t) n;
        snprintf(v, sizeof(v), "%u", spec.vcpus);
        log_info("Domain %s (%s): %u vCPU(s) now (was %u)", vm->libvirt_name, vm->id.str, spec.vcpus,
                 vm->spec.vcpus);
        (void) apply_spec(d, vm, &spec, vm->class_name, "vcpus", "vcpus", v);
}

void daemon_libvirt_housekeeping(Daemon *d) {
        for (size_t i = 0; i < d->n_vms; i++)
                check_vcpus(d, d->vms[i]);
}

static void on_spec_written(const char *uuid, int r, const char *error, void *userdata) {
        if (r < 0)
                log_warning("Domain %s: the new spec could not be written to its metadata: %s (vmmgr runs it; the "
                            "domain's element still says the old one)",
                            uuid, error && error[0] ? error : strerror(-r));
        else
                log_debug("Domain %s: spec written to its metadata", uuid);
}

int daemon_libvirt_spec_changed(Daemon *d, Vm *vm) {
        LvCredits c = { 0 };

        if (!vm->libvirt_name[0])
                return 0;
        if (!d->lv_worker)
                return -ENOTCONN;
        if (vm->class_name[0]) {
                c.set = LV_CREDITS_CLASS;
                snprintf(c.class_name, sizeof(c.class_name), "%s", vm->class_name);
        } else {
                c.set = LV_CREDITS_BASELINE | LV_CREDITS_CAP | LV_CREDITS_LAUNCH | LV_CREDITS_MODE;
                c.baseline_ppm = vm->spec.baseline_ppm;
                c.cap_usec = vm->spec.cap_usec;
                c.launch_usec = vm->spec.launch_usec;
                c.mode = vm->spec.mode;
        }
        return lv_worker_set_credits(d->lv_worker, vm->id.str, &c, on_spec_written, d);
}


int daemon_libvirt_open(Daemon *d) {
        static const LvConnOps ops = {
                .domain_running = on_domain_running,
                .lifecycle = on_lifecycle,
                .metadata_change = on_metadata,
                .tunable = on_tunable,
                .balloon_change = on_balloon_change,
                .state = on_state,
        };
        LvConnOptions opts = { .uri = d->cfg.libvirt_uri };
        int r;

        if (d->cfg.libvirt == CONFIG_LIBVIRT_NO)
                return 0;
        if (d->on_model) /* a stand-in host has no libvirt domains */
                return 0;
        r = lv_loop_register(d->loop);
        if (r < 0)
                return log_error_errno(r, "libvirt: cannot run libvirt's events on vmmgrd's loop: %m");
        r = lv_worker_new(d->loop, d->cfg.libvirt_uri, on_facts, d, &d->lv_worker);
        if (r < 0)
                return log_error_errno(r, "libvirt: cannot start its worker thread: %m");
        r = lv_conn_new(d->loop, &opts, &ops, d, &d->lv);
        if (r < 0)
                return log_error_errno(r, "libvirt: %m");
        r = lv_conn_start(d->lv);
        if (r < 0 && r != -ECONNREFUSED)
                return log_error_errno(r, "libvirt: %m");
        return 0;
}

void daemon_libvirt_close(Daemon *d) {
        d->lv_recheck = sd_event_source_disable_unref(d->lv_recheck);
        d->lv = lv_conn_free(d->lv);
        d->lv_worker = lv_worker_free(d->lv_worker);
}
