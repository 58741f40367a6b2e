/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-conn.c - the libvirt connection (libvirt-conn.h):
 * a small state machine on the loop.
 *
 *   IDLE --start--> open ok ----------------------------> UP
 *                   open failed --> WAITING (back-off) --timer--> open ...
 *   UP --close callback / keepalive / lv_conn_drop--> teardown --> WAITING
 *
 * libvirt calls the close callback from inside its own dispatch of the
 * connection's socket; tearing the connection down there would free what
 * libvirt is still using, so the callback only arms a one-shot defer
 * source and the teardown runs on the next loop iteration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "common/macros.h"
#include "vmmgr/daemon/libvirt-conn.h"
#include "vmmgr/daemon/libvirt-loop.h"

/* ---- back-off ----------------------------------------------------------- */

void lv_backoff_init(LvBackoff *b, uint64_t min_usec, uint64_t max_usec) {
        if (min_usec == 0)
                min_usec = 1;
        if (max_usec < min_usec)
                max_usec = min_usec;
        *b = (LvBackoff) { .min_usec = min_usec, .max_usec = max_usec, .next_usec = min_usec };
}

uint64_t lv_backoff_failed(LvBackoff *b) {
        uint64_t wait = b->next_usec;

        b->up_since_usec = 0;
        b->next_usec = wait > b->max_usec / 2 ? b->max_usec : wait * 2;
        return wait;
}

void lv_backoff_up(LvBackoff *b, uint64_t now_usec) {
        b->up_since_usec = now_usec ? now_usec : 1;
}

uint64_t lv_backoff_lost(LvBackoff *b, uint64_t now_usec) {
        if (b->up_since_usec && now_usec >= b->up_since_usec && now_usec - b->up_since_usec >= b->max_usec)
                b->next_usec = b->min_usec;
        return lv_backoff_failed(b);
}

/* ---- the connection ------------------------------------------------------ */

enum {
        LV_EV_LIFECYCLE,
        LV_EV_METADATA,
        LV_EV_TUNABLE,
        LV_EV_JOB,
        LV_EV_BALLOON,
        LV_EV_N,
};

struct LvConn {
        sd_event *event;
        char *uri;
        LvConnOptions opts;
        LvConnOps ops;
        void *userdata;

        LvConnState state;
        virConnectPtr conn;
        int event_ids[LV_EV_N]; /* -1: not registered */
        bool close_registered, keepalive;
        unsigned generation;
        LvBackoff backoff;
        sd_event_source *retry_timer; /* WAITING: the next open */
        sd_event_source *drop_defer;  /* UP: a close seen, teardown due */
        char drop_why[128];
        char error[256];
};

const char *lv_conn_state_to_string(LvConnState s) {
        switch (s) {
        case LV_CONN_IDLE:
                return "idle";
        case LV_CONN_UP:
                return "up";
        case LV_CONN_WAITING:
                return "waiting";
        }
        return "?";
}

static const char *close_reason(int reason) {
        switch (reason) {
        case VIR_CONNECT_CLOSE_REASON_ERROR:
                return "connection error";
        case VIR_CONNECT_CLOSE_REASON_EOF:
                return "libvirtd closed the connection";
        case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
                return "keepalive timed out";
        case VIR_CONNECT_CLOSE_REASON_CLIENT:
                return "closed by the client";
        }
        return "closed";
}

static void set_error_from_libvirt(LvConn *c, const char *what) {
        virErrorPtr e = virGetLastError();

        snprintf(c->error, sizeof(c->error), "%s %s: %s", what, c->uri,
                 e && e->message ? e->message : "unknown libvirt error");
        virResetLastError();
}

static uint64_t now_usec(const LvConn *c) {
        uint64_t now = 0;

        (void) sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* The domain's key; false for a domain whose UUID libvirt cannot give
 * (it vanished under us): such an event is dropped. */
static bool dom_uuid(virDomainPtr dom, char uuid[LV_UUID_STRING_MAX]) {
        if (virDomainGetUUIDString(dom, uuid) < 0) {
                virResetLastError();
                return false;
        }
        return true;
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        LvConn *c = opaque;
        char uuid[LV_UUID_STRING_MAX];

        if (c->ops.lifecycle && dom_uuid(dom, uuid))
                c->ops.lifecycle(c, dom, uuid, event, detail, c->userdata);
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque) {
        LvConn *c = opaque;
        char uuid[LV_UUID_STRING_MAX];

        if (c->ops.metadata_change && dom_uuid(dom, uuid))
                c->ops.metadata_change(c, dom, uuid, type, nsuri, c->userdata);
}

static void on_tunable(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params, int n, void *opaque) {
        LvConn *c = opaque;
        char uuid[LV_UUID_STRING_MAX];

        if (c->ops.tunable && dom_uuid(dom, uuid))
                c->ops.tunable(c, dom, uuid, params, n, c->userdata);
}

static void on_job(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params, int n, void *opaque) {
        LvConn *c = opaque;
        char uuid[LV_UUID_STRING_MAX];

        if (c->ops.job_completed && dom_uuid(dom, uuid))
                c->ops.job_completed(c, dom, uuid, params, n, c->userdata);
}

static void on_balloon(virConnectPtr conn, virDomainPtr dom, unsigned long long actual_kib, void *opaque) {
        LvConn *c = opaque;
        char uuid[LV_UUID_STRING_MAX];

        if (c->ops.balloon_change && dom_uuid(dom, uuid))
                c->ops.balloon_change(c, dom, uuid, actual_kib, c->userdata);
}

static void on_close(virConnectPtr conn, int reason, void *opaque);

static void conn_teardown(LvConn *c) {
        c->drop_defer = sd_event_source_disable_unref(c->drop_defer);
        if (!c->conn)
                return;
        for (size_t i = 0; i < LV_EV_N; i++)
                if (c->event_ids[i] >= 0) {
                        /* Fails on a dead connection; nothing to undo then. */
                        (void) virConnectDomainEventDeregisterAny(c->conn, c->event_ids[i]);
                        c->event_ids[i] = -1;
                }
        if (c->close_registered)
                (void) virConnectUnregisterCloseCallback(c->conn, on_close);
        c->close_registered = false;
        (void) virConnectClose(c->conn);
        virResetLastError();
        c->conn = NULL;
        c->keepalive = false;
}

static int conn_open(LvConn *c);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        LvConn *c = userdata;

        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        (void) conn_open(c); /* schedules the next try itself */
        return 0;
}

/* To WAITING with the retry in `wait`. */
static void conn_wait(LvConn *c, uint64_t wait) {
        uint64_t when = now_usec(c) + wait;

        c->state = LV_CONN_WAITING;
        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        if (sd_event_add_time(c->event, &c->retry_timer, CLOCK_MONOTONIC, when, 1000, on_retry, c) < 0)
                /* Out of memory: the owner hears WAITING and may start again. */
                c->retry_timer = NULL;
        else
                (void) sd_event_source_set_description(c->retry_timer, "libvirt-retry");
        if (c->ops.state)
                c->ops.state(c, c->state, c->error, wait, c->userdata);
}

static int on_drop(sd_event_source *s, void *userdata) {
        LvConn *c = userdata;

        snprintf(c->error, sizeof(c->error), "%s: %s", c->uri, c->drop_why);
        conn_teardown(c);
        conn_wait(c, lv_backoff_lost(&c->backoff, now_usec(c)));
        return 0;
}

/* Arms the teardown for the next iteration (never from libvirt's stack). */
static int conn_schedule_drop(LvConn *c, const char *why) {
        int r;

        if (c->drop_defer)
                return 0; /* the first reason wins */
        snprintf(c->drop_why, sizeof(c->drop_why), "%s", why);
        r = sd_event_add_defer(c->event, &c->drop_defer, on_drop, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->drop_defer, "libvirt-drop");
        return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        LvConn *c = opaque;

        if (conn != c->conn)
                return;
        (void) conn_schedule_drop(c, close_reason(reason));
}

static int register_events(LvConn *c) {
        static const struct {
                int id;
                virConnectDomainEventGenericCallback cb;
        } evs[LV_EV_N] = {
                [LV_EV_LIFECYCLE] = { VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle) },
                [LV_EV_METADATA] = { VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata) },
                [LV_EV_TUNABLE] = { VIR_DOMAIN_EVENT_ID_TUNABLE, VIR_DOMAIN_EVENT_CALLBACK(on_tunable) },
                [LV_EV_JOB] = { VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, VIR_DOMAIN_EVENT_CALLBACK(on_job) },
                [LV_EV_BALLOON] = { VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_balloon) },
        };

        for (size_t i = 0; i < LV_EV_N; i++) {
                int id = virConnectDomainEventRegisterAny(c->conn, NULL, evs[i].id, evs[i].cb, c, NULL);

                if (id < 0) {
                        set_error_from_libvirt(c, "registering domain events on");
                        return -EPROTO;
                }
                c->event_ids[i] = id;
        }
        if (virConnectRegisterCloseCallback(c->conn, on_close, c, NULL) < 0) {
                set_error_from_libvirt(c, "registering the close callback on");
                return -EPROTO;
        }
        c->close_registered = true;
        return 0;
}

static void set_keepalive(LvConn *c) {
        int r;

        c->keepalive = false;
        if (c->opts.keepalive_interval_sec < 0)
                return;
        r = virConnectSetKeepAlive(c->conn, c->opts.keepalive_interval_sec, c->opts.keepalive_count);
        /* -1: the driver has none (local in-process drivers such as test:///);
         * 1: the remote side does not answer pings.  Neither is an error. */
        c->keepalive = r == 0;
        virResetLastError();
}

static int report_running(LvConn *c) {
        virDomainPtr *doms = NULL;
        int n;

        n = virConnectListAllDomains(c->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (n < 0) {
                set_error_from_libvirt(c, "listing domains on");
                return -EPROTO;
        }
        for (int i = 0; i < n; i++) {
                char uuid[LV_UUID_STRING_MAX];

                if (c->ops.domain_running && dom_uuid(doms[i], uuid))
                        c->ops.domain_running(c, doms[i], uuid, c->userdata);
                virDomainFree(doms[i]);
        }
        free(doms);
        return 0;
}

static int conn_open(LvConn *c) {
        int r;

        c->conn = virConnectOpen(c->uri);
        if (!c->conn) {
                set_error_from_libvirt(c, "opening");
                conn_wait(c, lv_backoff_failed(&c->backoff));
                return -ECONNREFUSED;
        }
        r = register_events(c);
        /* The domains reported belong to the new generation already: an
         * owner can tell those it did not hear of again. */
        c->generation++;
        if (r == 0)
                r = report_running(c);
        if (r < 0) {
                c->generation--;
                conn_teardown(c);
                conn_wait(c, lv_backoff_failed(&c->backoff));
                return -ECONNREFUSED;
        }
        set_keepalive(c);
        c->error[0] = '\0';
        c->state = LV_CONN_UP;
        lv_backoff_up(&c->backoff, now_usec(c));
        if (c->ops.state)
                c->ops.state(c, c->state, NULL, 0, c->userdata);
        return 0;
}

int lv_conn_new(sd_event *event, const LvConnOptions *opts, const LvConnOps *ops, void *userdata, LvConn **ret) {
        LvConn *c;

        if (!event || !ret)
                return -EINVAL;
        if (!lv_loop_event())
                return -ENXIO;
        if (lv_loop_event() != event)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        if (opts)
                c->opts = *opts;
        c->uri = strdup(c->opts.uri ? c->opts.uri : LV_CONN_DEFAULT_URI);
        if (!c->uri) {
                free(c);
                return -ENOMEM;
        }
        c->opts.uri = NULL; /* c->uri is the copy */
        if (c->opts.keepalive_interval_sec == 0)
                c->opts.keepalive_interval_sec = 5;
        if (c->opts.keepalive_count == 0)
                c->opts.keepalive_count = 5;
        lv_backoff_init(&c->backoff, c->opts.backoff_min_usec ? c->opts.backoff_min_usec : USEC_PER_SEC,
                        c->opts.backoff_max_usec ? c->opts.backoff_max_usec : 60 * USEC_PER_SEC);
        if (ops)
                c->ops = *ops;
        c->userdata = userdata;
        c->event = sd_event_ref(event);
        for (size_t i = 0; i < LV_EV_N; i++)
                c->event_ids[i] = -1;
        *ret = c;
        return 0;
}

LvConn *lv_conn_free(LvConn *c) {
        if (!c)
                return NULL;
        c->ops = (LvConnOps) {};
        conn_teardown(c);
        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        sd_event_unref(c->event);
        free(c->uri);
        free(c);
        return NULL;
}

int lv_conn_start(LvConn *c) {
        if (c->state != LV_CONN_IDLE)
                return -EALREADY;
        return conn_open(c);
}

int lv_conn_drop(LvConn *c, const char *why) {
        if (c->state != LV_CONN_UP || !c->conn)
                return -ENOTCONN;
        return conn_schedule_drop(c, why ? why : "dropped by vmmgr");
}

LvConnState lv_conn_state(const LvConn *c) {
        return c->state;
}

virConnectPtr lv_conn_get(const LvConn *c) {
        return c->state == LV_CONN_UP ? c->conn : NULL;
}

const char *lv_conn_uri(const LvConn *c) {
        return c->uri;
}

const char *lv_conn_error(const LvConn *c) {
        return c->error;
}

bool lv_conn_keepalive(const LvConn *c) {
        return c->keepalive;
}

unsigned lv_conn_generation(const LvConn *c) {
        return c->generation;
}
