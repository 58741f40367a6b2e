/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-loop.c - virEventRegisterImpl() over sd-event
 * (why, and libvirt's semantics: libvirt-loop.h).
 *
 * Every watch and timeout is an LvSource on one list; removal moves it to
 * a second list and wakes a one-shot defer source (the reaper) that calls
 * the free callbacks from a clean stack and frees the records.  Until
 * then a removed record stays allocated, so a callback that removes its
 * own watch returns into code whose record is still valid.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/macros.h"
#include "vmmgr/daemon/libvirt-loop.h"

typedef enum LvKind {
        LV_HANDLE,
        LV_TIMEOUT,
} LvKind;

typedef struct LvSource LvSource;
struct LvSource {
        LvKind kind;
        int id;
        int fd, events;  /* handles */
        int timeout_ms;  /* timeouts: -1, 0 or N */
        bool src_defer;  /* timeouts: src is a defer source (timeout 0) */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timeout_cb;
        void *opaque;
        virFreeCallback ff;
        sd_event_source *src;
        LvSource *next;
};

typedef struct LvLoop {
        sd_event *event;
        pid_t tid;
        int next_id;
        LvSource *live, *dead;
        sd_event_source *reaper;
        LvLoopStats stats;
} LvLoop;

/* The one process-wide impl (libvirt-loop.h: libvirt forces it). */
static LvLoop lv_loop;

static bool on_loop_thread(void) {
        return lv_loop.event && gettid() == lv_loop.tid;
}

static uint32_t vir_to_epoll(int events) {
        uint32_t e = 0;

        if (events & VIR_EVENT_HANDLE_READABLE)
                e |= EPOLLIN;
        if (events & VIR_EVENT_HANDLE_WRITABLE)
                e |= EPOLLOUT;
        /* epoll always reports ERR and HUP; asking does no harm. */
        if (events & VIR_EVENT_HANDLE_ERROR)
                e |= EPOLLERR;
        if (events & VIR_EVENT_HANDLE_HANGUP)
                e |= EPOLLHUP;
        return e;
}

static int epoll_to_vir(uint32_t e) {
        int events = 0;

        if (e & (EPOLLIN | EPOLLPRI))
                events |= VIR_EVENT_HANDLE_READABLE;
        if (e & EPOLLOUT)
                events |= VIR_EVENT_HANDLE_WRITABLE;
        if (e & EPOLLERR)
                events |= VIR_EVENT_HANDLE_ERROR;
        if (e & (EPOLLHUP | EPOLLRDHUP))
                events |= VIR_EVENT_HANDLE_HANGUP;
        return events;
}

static LvSource *find_live(LvKind kind, int id) {
        for (LvSource *s = lv_loop.live; s; s = s->next)
                if (s->kind == kind && s->id == id)
                        return s;
        return NULL;
}

static int next_id(void) {
        /* Never reused; 2^31 watches is decades of reconnects. */
        if (lv_loop.next_id == INT32_MAX)
                return -1;
        return ++lv_loop.next_id;
}

/* ---- the reaper: free callbacks from a clean stack --------------------- */

static int on_reap(sd_event_source *s, void *userdata) {
        LvSource *dead = lv_loop.dead;

        /* Detached first: an ff that removes further sources adds them to a
         * fresh list and re-arms this source for the next iteration. */
        lv_loop.dead = NULL;
        while (dead) {
                LvSource *next = dead->next;

                if (dead->ff)
                        dead->ff(dead->opaque);
                free(dead);
                lv_loop.stats.pending_free--;
                dead = next;
        }
        return 0;
}

static int retire(LvSource *s) {
        LvSource **p;

        for (p = &lv_loop.live; *p && *p != s; p = &(*p)->next)
                ;
        if (!*p)
                return -ENOENT;
        *p = s->next;
        /* Safe while s->src is being dispatched: sd-event frees it after the
         * callback returns. */
        s->src = sd_event_source_disable_unref(s->src);
        if (s->kind == LV_HANDLE)
                lv_loop.stats.handles--;
        else
                lv_loop.stats.timeouts--;
        s->next = lv_loop.dead;
        lv_loop.dead = s;
        lv_loop.stats.pending_free++;
        return sd_event_source_set_enabled(lv_loop.reaper, SD_EVENT_ONESHOT);
}

/* ---- handles ----------------------------------------------------------- */

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        LvSource *s = userdata;

        s->handle_cb(s->id, fd, epoll_to_vir(revents), s->opaque);
        return 0;
}

static int handle_apply(LvSource *s) {
        int r;

        if (s->events == 0)
                return sd_event_source_set_enabled(s->src, SD_EVENT_OFF);
        r = sd_event_source_set_io_events(s->src, vir_to_epoll(s->events));
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->src, SD_EVENT_ON);
}

static int lv_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        LvSource *s;
        int id;

        if (!on_loop_thread() || fd < 0 || !cb)
                return -1;
        id = next_id();
        if (id < 0)
                return -1;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -1;
        *s = (LvSource) { .kind = LV_HANDLE, .id = id, .fd = fd, .events = events, .handle_cb = cb,
                          .opaque = opaque, .ff = ff };
        /* -EEXIST when this fd is already watched: libvirt watches each of
         * its sockets once. */
        if (sd_event_add_io(lv_loop.event, &s->src, fd, vir_to_epoll(events), on_io, s) < 0 ||
            handle_apply(s) < 0) {
                sd_event_source_disable_unref(s->src);
                free(s); /* ff is not called for a watch that never existed */
                return -1;
        }
        (void) sd_event_source_set_description(s->src, "libvirt-handle");
        s->next = lv_loop.live;
        lv_loop.live = s;
        lv_loop.stats.handles++;
        return id;
}

static void lv_update_handle(int watch, int events) {
        LvSource *s;

        if (!on_loop_thread())
                return;
        s = find_live(LV_HANDLE, watch);
        if (!s)
                return;
        s->events = events;
        (void) handle_apply(s); /* fails only for a dead fd; libvirt removes it next */
}

static int lv_remove_handle(int watch) {
        LvSource *s;

        if (!on_loop_thread())
                return -1;
        s = find_live(LV_HANDLE, watch);
        if (!s)
                return -1;
        (void) retire(s);
        return 0;
}

/* ---- timeouts ---------------------------------------------------------- */

static int on_timeout_common(LvSource *s) {
        s->timeout_cb(s->id, s->opaque);
        return 0;
}

static int on_time(sd_event_source *src, uint64_t usec, void *userdata) {
        LvSource *s = userdata;
        uint64_t now;

        /* Re-armed from now before the callback, which may change it. */
        if (sd_event_now(lv_loop.event, CLOCK_MONOTONIC, &now) >= 0)
                (void) sd_event_source_set_time(src, now + (uint64_t) s->timeout_ms * 1000);
        return on_timeout_common(s);
}

static int on_defer(sd_event_source *src, void *userdata) {
        return on_timeout_common(userdata);
}

static int timeout_apply(LvSource *s) {
        bool want_defer = s->timeout_ms == 0;
        uint64_t now;
        int r;

        if (s->timeout_ms < 0)
                return s->src ? sd_event_source_set_enabled(s->src, SD_EVENT_OFF) : 0;
        if (s->src && s->src_defer != want_defer)
                s->src = sd_event_source_disable_unref(s->src);
        if (want_defer) {
                if (!s->src) {
                        r = sd_event_add_defer(lv_loop.event, &s->src, on_defer, s);
                        if (r < 0)
                                return r;
                        (void) sd_event_source_set_description(s->src, "libvirt-timeout-0");
                }
        } else {
                r = sd_event_now(lv_loop.event, CLOCK_MONOTONIC, &now);
                if (r < 0)
                        return r;
                now += (uint64_t) s->timeout_ms * 1000;
                if (!s->src) {
                        /* 1 ms accuracy: sd-event's default would be 250 ms. */
                        r = sd_event_add_time(lv_loop.event, &s->src, CLOCK_MONOTONIC, now, 1000, on_time, s);
                        if (r < 0)
                                return r;
                        (void) sd_event_source_set_description(s->src, "libvirt-timeout");
                } else {
                        r = sd_event_source_set_time(s->src, now);
                        if (r < 0)
                                return r;
                }
        }
        s->src_defer = want_defer;
        /* Repeating: N ms re-arms itself in on_time(); 0 fires every iteration. */
        return sd_event_source_set_enabled(s->src, SD_EVENT_ON);
}

static int lv_add_timeout(int timeout, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        LvSource *s;
        int id;

        if (!on_loop_thread() || !cb)
                return -1;
        id = next_id();
        if (id < 0)
                return -1;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -1;
        *s = (LvSource) { .kind = LV_TIMEOUT, .id = id, .fd = -EBADF, .timeout_ms = timeout < 0 ? -1 : timeout,
                          .timeout_cb = cb, .opaque = opaque, .ff = ff };
        if (timeout_apply(s) < 0) {
                sd_event_source_disable_unref(s->src);
                free(s);
                return -1;
        }
        s->next = lv_loop.live;
        lv_loop.live = s;
        lv_loop.stats.timeouts++;
        return id;
}

static void lv_update_timeout(int timer, int timeout) {
        LvSource *s;

        if (!on_loop_thread())
                return;
        s = find_live(LV_TIMEOUT, timer);
        if (!s)
                return;
        s->timeout_ms = timeout < 0 ? -1 : timeout;
        (void) timeout_apply(s); /* only -ENOMEM; the old setting then stays */
}

static int lv_remove_timeout(int timer) {
        LvSource *s;

        if (!on_loop_thread())
                return -1;
        s = find_live(LV_TIMEOUT, timer);
        if (!s)
                return -1;
        (void) retire(s);
        return 0;
}

/* ---- registration -------------------------------------------------------- */

static void quiet_error(void *userdata, virErrorPtr err) {
        /* Errors are read from each call's result (virGetLastError) and
         * logged once by the layer that decides; libvirt's default printer
         * would write every one to stderr. */
}

int lv_loop_register(sd_event *event) {
        int r;

        if (!event)
                return -EINVAL;
        if (lv_loop.event)
                return lv_loop.event == event ? 0 : -EALREADY;
        r = sd_event_add_defer(event, &lv_loop.reaper, on_reap, NULL);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(lv_loop.reaper, "libvirt-reaper");
        r = sd_event_source_set_enabled(lv_loop.reaper, SD_EVENT_OFF);
        if (r < 0) {
                lv_loop.reaper = sd_event_source_disable_unref(lv_loop.reaper);
                return r;
        }
        lv_loop.event = sd_event_ref(event);
        lv_loop.tid = gettid();
        virSetErrorFunc(NULL, quiet_error);
        virEventRegisterImpl(lv_add_handle, lv_update_handle, lv_remove_handle, lv_add_timeout, lv_update_timeout,
                             lv_remove_timeout);
        return 0;
}

sd_event *lv_loop_event(void) {
        return lv_loop.event;
}

void lv_loop_stats(LvLoopStats *ret) {
        *ret = lv_loop.stats;
}
