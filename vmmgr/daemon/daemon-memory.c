/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-memory.c - vmmgrd's memory side: the memory engine
 * (vmmgr/engine/memory-engine.h) on the daemon's event loop, fed from QMP, and
 * its reports for the API and /metrics.
 *
 * The engine runs only where vmmgr manages a cgroup v2 memory controller;
 * elsewhere (this repository's CI host, whose memory v1 hierarchy belongs
 * to the machine) every VM reports "managed": false and nothing is done.
 * A VM whose memory setup fails keeps its credits: memory is logged as
 * unmanaged for it, not a reason to refuse the VM.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/parse.h"
#include "vmmgr/daemon/daemon.h"
#include "vmmgr/daemon/daemon-libvirt.h"
#include "vmmgr/engine/memory-engine.h"

#define MEMORY_TICK_USEC UINT64_C(100000)
#define QMP_TIMEOUT_MS 5000

/* QEMU's answer to a balloon target: only a refusal is news. */
static void on_balloon_reply(Qmp *q, int r, const char *return_json, const QmpError *err, void *userdata) {
        const VmId *vm = userdata;

        if (r == -EREMOTEIO)
                log_vm_warning(vm, "QEMU refused the balloon target: %s", err && err->desc ? err->desc : "?");
        else if (r < 0)
                log_vm_debug_errno(vm, r, "no answer to the balloon target: %m");
}

static int on_memory_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        int r;

        r = mem_engine_tick(d->mem, daemon_now_mono_usec());
        if (r < 0)
                log_debug_errno(r, "Memory tick: %m");
        /* The guest's part: balloon targets the engine asks for (none,
         * usually: then no VM is looked up). */
        for (size_t i = 0; mem_engine_balloon_pending(d->mem) > 0 && i < d->n_vms; i++) {
                Vm *vm = d->vms[i];
                uint64_t target;
                char args[64];

                if (vm->link != VM_LINK_BOUND || !mem_engine_vm_balloon_request(d->mem, &vm->id, &target))
                        continue;
                if (vm->libvirt_name[0]) { /* libvirt holds the monitor */
                        r = daemon_libvirt_balloon(d, vm, target);
                        if (r < 0)
                                log_vm_warning_errno(&vm->id, r, "balloon to %" PRIu64 " MiB: %m", target >> 20);
                        else
                                log_vm_info(&vm->id, "asked libvirt for a balloon target of %" PRIu64 " MiB",
                                            target >> 20);
                        continue;
                }
                if (!vm->qmp)
                        continue;
                snprintf(args, sizeof(args), "{\"value\": %" PRIu64 "}", target);
                /* vm->id lives as long as the connection the reply comes
                 * on (a disconnect frees both). */
                r = qmp_execute(vm->qmp, "balloon", args, QMP_TIMEOUT_MS, on_balloon_reply, &vm->id);
                if (r < 0)
                        log_vm_warning_errno(&vm->id, r, "balloon to %" PRIu64 " MiB: %m", target >> 20);
                else {
                        vm_link_kick(vm);
                        log_vm_info(&vm->id, "asked the guest for a balloon target of %" PRIu64 " MiB", target >> 20);
                }
        }
        r = sd_event_source_set_time_relative(s, MEMORY_TICK_USEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static int on_reclaim_results(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Daemon *d = userdata;

        mem_engine_collect(d->mem);
        return 0;
}

int daemon_memory_open(Daemon *d) {
        MemEngineOptions o;
        int r;

        if (d->cfg.task_delayacct != CONFIG_DELAYACCT_KEEP && !d->on_model) {
                bool on = d->cfg.task_delayacct == CONFIG_DELAYACCT_ON;

                r = kh_delayacct_set(d->host, on);
                if (r < 0)
                        log_warning_errno(r, "Cannot set kernel.task_delayacct to %d: %m", on);
                else
                        log_info("kernel.task_delayacct = %d (threads started from now on are counted)", on);
        }
        mem_engine_options_default(&o);
        o.policy = d->cfg.memory;
        o.threads = !d->on_model; /* the model is single-threaded */
        o.kernel_swappiness = d->features.memory_reclaim_swappiness == TRI_YES;
        o.dmem_high = d->features.dmem_high == TRI_YES;
        r = mem_engine_new(d->host, &o, &d->mem);
        if (r == -EOPNOTSUPP) {
                log_info("Memory: not managed (vmmgr manages no cgroup v2 memory controller here)");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to start memory management: %m");
        /* Delay accounting is a report, not a requirement. */
        if (!d->on_model && kh_taskstats_open(&d->taskstats) < 0)
                d->taskstats = NULL;
        r = sd_event_add_io(d->loop, &d->mem_io, mem_engine_fd(d->mem), EPOLLIN, on_reclaim_results, d);
        if (r < 0)
                return r;
        return sd_event_add_time_relative(d->loop, &d->mem_timer, CLOCK_MONOTONIC, MEMORY_TICK_USEC, 0,
                                          on_memory_tick, d);
}

void daemon_memory_close(Daemon *d) {
        d->mem_timer = sd_event_source_disable_unref(d->mem_timer);
        d->mem_io = sd_event_source_disable_unref(d->mem_io);
        d->mem = mem_engine_free(d->mem);
        d->taskstats = kh_taskstats_free(d->taskstats);
}

void daemon_memory_tick_now(Daemon *d) {
        if (d->mem)
                (void) mem_engine_tick(d->mem, daemon_now_mono_usec());
}

/* Starts managing the VM's memory with what its link learnt from QEMU
 * (RAM, passthrough devices, a balloon: vm-link.c asks without waiting). */
void daemon_vm_memory_start(Daemon *d, Vm *vm, const MemPolVmSpec *spec, uint64_t actual) {
        int r;

        if (!d->mem || !vm->qmp)
                return;
        r = mem_engine_vm_add(d->mem, &vm->id, spec, daemon_now_mono_usec());
        if (r == -EEXIST)
                r = mem_engine_vm_set_spec(d->mem, &vm->id, spec);
        if (r < 0) {
                log_vm_warning_errno(&vm->id, r, "memory left unmanaged: %m");
                return;
        }
        if (spec->balloon)
                mem_engine_vm_balloon_actual(d->mem, &vm->id, actual);
        vm->mem_managed = true;
        if (vm->gpu_pci[0] && (r = mem_engine_vm_set_dmem(d->mem, &vm->id, vm->gpu_pci, &vm->dmem)) < 0)
                log_vm_warning_errno(&vm->id, r, "GPU %s: dmem limits not applied: %m", vm->gpu_pci);
        log_vm_info(&vm->id, "memory %" PRIu64 " MiB RAM%s%s, priority %" PRIu32, spec->ram_bytes >> 20,
                    spec->passthrough ? ", passthrough (pinned)" : "", spec->balloon ? ", balloon" : "",
                    spec->priority);
}

void daemon_vm_memory_balloon_actual(Daemon *d, Vm *vm, uint64_t actual_bytes) {
        if (d->mem && vm->mem_managed)
                mem_engine_vm_balloon_actual(d->mem, &vm->id, actual_bytes);
}

void daemon_vm_memory_stop(Daemon *d, Vm *vm) {
        if (d->mem && vm->mem_managed)
                mem_engine_vm_remove(d->mem, &vm->id);
        vm->mem_managed = false;
}

void daemon_vm_memory_event(Daemon *d, Vm *vm, const QmpEvent *ev) {
        if (strcmp(ev->name, "BALLOON_CHANGE") == 0 && ev->has_balloon_actual)
                daemon_vm_memory_balloon_actual(d, vm, ev->balloon_actual_bytes);
}

int daemon_vm_memory_set_priority(Daemon *d, Vm *vm, uint32_t priority) {
        MemVmReport rep;
        int r;

        vm->mem_priority = priority;
        if (!d->mem || !vm->mem_managed)
                return 0;
        r = mem_engine_vm_report(d->mem, &vm->id, &rep);
        if (r < 0)
                return r;
        rep.spec.priority = priority;
        return mem_engine_vm_set_spec(d->mem, &vm->id, &rep.spec);
}

int daemon_vm_memory_set_gpu(Daemon *d, Vm *vm, const char *pci, const MemPolDmemSpec *spec) {
        bool none = !pci || !pci[0];
        int r;

        if (!none && (!is_pci_address(pci) || !spec))
                return -EINVAL;
        if (d->mem && vm->mem_managed) {
                r = mem_engine_vm_set_dmem(d->mem, &vm->id, none ? NULL : pci, spec);
                if (r < 0)
                        return r;
        }
        snprintf(vm->gpu_pci, sizeof(vm->gpu_pci), "%s", none ? "" : pci);
        vm->dmem = none ? (MemPolDmemSpec) { 0 } : *spec;
        return 0;
}

/* ---- reports ------------------------------------------------------------ */

/* The cgroup role of each reported role, in ServiceMemory's order. */
static const CgRole roles[_SERVICE_ROLE_MAX] = {
        [SERVICE_ROLE_VCPUS] = CG_ROLE_VCPUS,
        [SERVICE_ROLE_EMULATOR] = CG_ROLE_EMULATOR,
        [SERVICE_ROLE_IO] = CG_ROLE_IO,
};

/* One role's taskstats delays, summed over its threads. */
static bool role_delays(Daemon *d, Vm *vm, size_t role, ServiceRoleDelays *ret) {
        ThreadDelays td;
        size_t n = 0;

        if (!d->taskstats || vm->pid <= 0 || kh_vm_delays(d->host, d->taskstats, &vm->id, roles[role], &td, &n) < 0) {
                *ret = (ServiceRoleDelays) { 0 };
                return false;
        }
        *ret = (ServiceRoleDelays) {
                .known = true,
                .threads = n,
                .cpu_delay_ns = td.cpu_delay_ns,
                .direct_reclaim_delay_ns = td.freepages_delay_ns,
                .thrashing_delay_ns = td.thrashing_delay_ns,
                .swapin_delay_ns = td.swapin_delay_ns,
                .delayacct = td.delayacct == TRI_YES,
        };
        return true;
}

/* /metrics shows per-role delays from a cache: asking taskstats for every
 * thread of 1,000 VMs at each scrape held the loop ~76 ms.  Each tick
 * refreshes at most DELAYS_PER_TICK VMs whose numbers are older than
 * DELAYS_MAX_AGE_USEC, round robin: ~100 VMs a second, each every 10 s. */
#define DELAYS_PER_TICK 10
#define DELAYS_MAX_AGE_USEC (10 * USEC_PER_SEC)

void daemon_delays_refresh(Daemon *d, uint64_t now) {
        size_t done = 0;

        if (!d->taskstats || d->n_vms == 0)
                return;
        for (size_t seen = 0; seen < d->n_vms && done < DELAYS_PER_TICK; seen++) {
                Vm *vm = d->vms[d->delays_cursor++ % d->n_vms];

                if (vm->pid <= 0 || (vm->delays_at_usec && now < vm->delays_at_usec + DELAYS_MAX_AGE_USEC))
                        continue;
                for (size_t k = 0; k < _SERVICE_ROLE_MAX; k++)
                        (void) role_delays(d, vm, k, &vm->delays[k]);
                vm->delays_at_usec = now;
                done++;
        }
}

/* The VM's memory report for the API (json-io renders it). */
void daemon_vm_memory_report(Daemon *d, Vm *vm, ServiceMemory *ret) {
        MemVmReport rep;

        *ret = (ServiceMemory) { .id = vm->id, .priority = vm->mem_priority };
        snprintf(ret->gpu_pci, sizeof(ret->gpu_pci), "%s", vm->gpu_pci);
        ret->gpu_max = vm->dmem.max;
        ret->gpu_soft = vm->dmem.soft;
        ret->gpu_low = vm->dmem.low;
        ret->gpu_min = vm->dmem.min;
        if (!d->mem || !vm->mem_managed || mem_engine_vm_report(d->mem, &vm->id, &rep) < 0)
                ret->unmanaged_reason = !d->mem    ? "vmmgr manages no cgroup v2 memory here"
                                        : !vm->qmp ? "not connected"
                                                   : "memory setup failed (see the log)";
        else {
                ret->managed = true;
                ret->ram = rep.limits.ram;
                ret->passthrough = rep.limits.passthrough;
                ret->current = rep.stat.current;
                ret->swap_current = rep.stat.swap_current;
                ret->max = rep.applied.max;
                ret->high = rep.applied.high;
                ret->low = rep.applied.low;
                ret->min = rep.applied.min;
                ret->swap_max = rep.applied.swap_max;
                ret->wmark_high = rep.limits.wmark_high;
                ret->wmark_low = rep.limits.wmark_low;
                ret->floor = rep.limits.floor;
                ret->headroom_grow = rep.headroom.grow_bytes;
                ret->headroom_limit = rep.headroom.limit_bytes;
                ret->headroom_reclaimable = rep.headroom.reclaimable_bytes;
                ret->headroom_balloon = rep.headroom.balloon_bytes;
                ret->reclaiming = rep.state.reclaiming;
                ret->throttled = rep.state.throttled;
                ret->reclaim_requests = rep.reclaim_requests;
                ret->reclaimed = rep.reclaim_bytes;
                ret->reclaim_busy_usec = rep.reclaim_busy_usec;
                ret->reclaim_partial = rep.reclaim_partial;
                ret->reclaim_errors = rep.reclaim_errors;
                ret->asked_background = rep.background_bytes;
                ret->asked_proactive = rep.proactive_bytes;
                ret->asked_host = rep.host_bytes;
                ret->pressure_some_avg10_pct = rep.stat.pressure.some_avg10 / 100.0;
                ret->balloon_present = rep.limits.balloon;
                ret->balloon_target = rep.balloon_target;
                ret->balloon_actual = rep.balloon_actual;
                ret->has_dmem = rep.has_dmem;
                snprintf(ret->dmem_gpu, sizeof(ret->dmem_gpu), "%s", rep.dmem_pci);
                ret->dmem_demoted_regions = rep.dmem_demoted;
                ret->last_error = rep.last_error;
        }
        /* Per role: the taskstats delays summed over the role's threads. */
        ret->has_delays = vm->pid > 0;
        /* One VM, asked for: live numbers. */
        for (size_t i = 0; ret->has_delays && i < _SERVICE_ROLE_MAX; i++)
                (void) role_delays(d, vm, i, &ret->delays[i]);
}

/* The memory part of GET /metrics (ret->vms filled by the caller). */
void daemon_memory_metrics(Daemon *d, ServiceMetrics *ret) {
        MemHostReport h;

        ret->memory_engine = d->mem != NULL;
        ret->taskstats = d->taskstats != NULL;
        for (size_t i = 0; i < d->n_vms && i < ret->n_vms; i++) {
                Vm *vm = d->vms[i];
                ServiceVmMetrics *m = &ret->vms[i];
                MemVmReport rep;

                m->mem_managed = vm->mem_managed;
                if (d->mem && vm->mem_managed && mem_engine_vm_report(d->mem, &vm->id, &rep) == 0) {
                        m->mem_known = true;
                        m->mem_current = rep.stat.current;
                        m->mem_swap = rep.stat.swap_current;
                        m->mem_max = rep.applied.max; /* MEM_MAX: no limit */
                        m->mem_reclaiming = rep.state.reclaiming;
                        m->mem_throttled = rep.state.throttled;
                        m->mem_reclaimed = rep.reclaim_bytes;
                        m->mem_reclaim_requests = rep.reclaim_requests;
                        m->mem_reclaim_partial = rep.reclaim_partial;
                        m->mem_reclaim_errors = rep.reclaim_errors;
                        m->mem_asked_background = rep.background_bytes;
                        m->mem_asked_proactive = rep.proactive_bytes;
                        m->mem_asked_host = rep.host_bytes;
                        m->mem_pressure_some_usec = rep.stat.pressure.some_total_usec;
                        m->mem_pressure_full_usec = rep.stat.pressure.full_total_usec;
                }
                /* From the cache the tick refreshes (daemon_delays_refresh):
                 * a scrape asks taskstats nothing. */
                for (size_t k = 0; vm->pid > 0 && k < _SERVICE_ROLE_MAX; k++) {
                        m->delays_known[k] = vm->delays[k].known;
                        m->direct_reclaim_ns[k] = vm->delays[k].direct_reclaim_delay_ns;
                }
        }
        if (!d->mem)
                return;
        mem_engine_host_report(d->mem, &h);
        ret->reclaim_threads = h.pool_threads;
        ret->reclaim_busy_usec = h.pool.busy_usec;
        ret->host_known = h.known;
        ret->host_total = h.total;
        ret->host_used = h.used;
        ret->host_ceiling = h.plan.ceiling;
        ret->host_shortfall = h.plan.shortfall;
}
