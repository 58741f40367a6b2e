/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-loop.h - libvirt's event loop on vmmgrd's sd-event
 * loop: an implementation of virEventRegisterImpl().
 *
 * Why: libvirt delivers domain events, keepalive pings and the close
 * callback only from an event loop the application runs.  libvirt offers
 * its own (virEventRegisterDefaultImpl + virEventRunDefaultImpl in a loop
 * of their own), which would need a second thread that blocks in poll()
 * and then hands every event to vmmgrd's thread under a lock.  Instead
 * libvirt's watches become sd-event io sources and its timeouts become
 * sd-event time (or defer) sources, so libvirt's callbacks run on
 * vmmgrd's one loop thread like everything else: no busy or extra
 * thread, no locks (daemon.h).
 *
 * Semantics (libvirt's, from libvirt-event.h and its default impl):
 *   - handles: events are VIR_EVENT_HANDLE_{READABLE,WRITABLE,ERROR,HANGUP};
 *     0 disables the watch until it is updated again;
 *   - timeouts: -1 disabled, 0 fires on every loop iteration, N fires
 *     every N ms (re-armed from the moment it fired) until updated;
 *   - watch and timer ids are positive and never reused;
 *   - the `ff` free callback of a removed handle or timeout runs later,
 *     from a clean stack (a one-shot defer source), never from inside the
 *     remove call nor from the dispatch of the source being removed:
 *     libvirt's docs require that, since ff may take locks the caller
 *     holds.  A handle or timeout removed inside its own callback is safe.
 *
 * Threads: every libvirt call that can add, update or remove a watch must
 * happen on the thread that registered the impl (the loop thread):
 * sd-event is not thread safe.  A call from another thread is refused
 * (add/remove return -1, update is ignored) rather than corrupting the
 * loop; vmmgrd only calls libvirt from its loop.
 *
 * Global state: libvirt takes exactly one event impl per process, as a
 * set of plain function pointers without a userdata argument, so the
 * loop's table of watches is the one process-wide mutable global of this
 * file (libvirt forces it).  It lives as long as the process: libvirt
 * cannot unregister an impl, so the sd_event it runs on must too.
 */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

/* Registers the impl with libvirt over `event` (a reference is taken) and
 * quiets libvirt's default error printer (errors are read from the calls'
 * results and logged once by their callers; the printer is process-wide
 * too).  Call before the first virConnectOpen().  0 on success and when
 * already registered over the same loop; -EALREADY when registered over
 * another loop; -EINVAL for NULL. */
int lv_loop_register(sd_event *event);

/* The loop the impl runs on, NULL before lv_loop_register(). */
sd_event *lv_loop_event(void);

/* For tests: live handles and timeouts, and removed ones whose free
 * callback has not run yet. */
typedef struct LvLoopStats {
        size_t handles, timeouts, pending_free;
} LvLoopStats;
void lv_loop_stats(LvLoopStats *ret);
