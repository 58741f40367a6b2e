/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/daemon-libvirt.h - vmmgrd and libvirtd (docs/libvirt.md).
 *
 * With [libvirt] enabled (auto by default), vmmgrd keeps a connection to
 * libvirtd on its own loop (libvirt-loop.c, libvirt-conn.c) and adopts
 * every running domain that carries a <vmmgr:credits> element in its
 * metadata (or every domain, with manage = all):
 *   - the spec comes from the element, resolved against the credit
 *     classes, with the domain's vCPU count;
 *   - QEMU's pid from libvirt's pid file (pid_dir/<name>.pid), its groups
 *     from where libvirt put QEMU's main thread (<domain>/emulator):
 *     the VM is foreign to the kernel layer (kh_vm_set_foreign), so
 *     vmmgr creates no group and moves no thread, and writes only the
 *     domain group's CPU bandwidth (the credit bank) and, where it
 *     manages cgroup v2 memory, the domain's memory files;
 *   - no QMP: libvirt holds the monitor.
 * Lifecycle events adopt (started, resumed) and let go (stopped: the
 * final ledger goes into the "unregister" event); metadata changes
 * re-read the spec; a tunable event that rewrote the CPU bandwidth gets
 * the bank's own written back.  At every (re)connect the running domains
 * are adopted again (idempotent) and libvirt VMs that are no longer
 * running are let go.
 *
 * Blocking: the libvirt calls made here (domain info, metadata, state)
 * are RPCs to libvirtd on its local socket, answered from libvirtd's
 * memory without QEMU; they are made on vmmgrd's loop.  None is made
 * while a hook runs (libvirtd may hold the domain's lock then): the
 * hook's notification only schedules a look a moment later.
 */
#pragma once

#include "vmmgr/daemon/daemon.h"

/* Opens the connection per the config ([libvirt] enabled); a libvirtd that
 * is not there is retried with back-off.  0, or a negative errno for what
 * vmmgrd cannot run without (out of memory, the loop taken). */
int daemon_libvirt_open(Daemon *d);
void daemon_libvirt_close(Daemon *d);

/* The hook's notification (POST /v1/libvirt/domains/{uuid}/notify). */
int daemon_libvirt_notify(Daemon *d, const VmId *id, const char *name, const char *operation,
                          ServiceError *err);

/* Housekeeping for libvirt VMs: their vCPU count from libvirt's groups
 * (vCPU hotplug changes the earn rate). */
void daemon_libvirt_housekeeping(Daemon *d);

/* A libvirt domain's spec changed through vmmgr's API: it is written back
 * to the domain's metadata (live, and config for a persistent domain), off
 * the loop; a failure is logged.  0 for a VM that is not libvirt's. */
int daemon_libvirt_spec_changed(Daemon *d, Vm *vm);

/* A balloon target for a libvirt domain (virDomainSetMemoryFlags, live,
 * from the worker); a refusal is logged. */
int daemon_libvirt_balloon(Daemon *d, Vm *vm, uint64_t target_bytes);
