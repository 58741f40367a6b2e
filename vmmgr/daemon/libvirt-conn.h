/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/libvirt-conn.h - vmmgrd's connection to libvirt: open,
 * keepalive, close callback, reconnect with back-off, and the domain
 * events vmmgr acts on, delivered by domain UUID (vmmgrd's use of it:
 * daemon-libvirt.c, docs/libvirt.md).
 *
 * Blocking: virConnectOpen() is a synchronous call.  On a local UNIX
 * socket (qemu:///system) it connects and runs a few RPCs, which takes
 * milliseconds while libvirtd answers and fails at once when no libvirtd
 * listens; a libvirtd that accepts and then hangs would hold the loop
 * until libvirt's own timeout.  It is the one blocking call here: opening
 * happens at start and on reconnect only, and everything after it (events,
 * keepalive, the close callback, the retry timer) runs from the loop
 * through libvirt-loop.c.  Remote URIs (qemu+ssh://) could block for
 * seconds and should get a worker before vmmgrd offers them.
 *
 * Requires lv_loop_register() before lv_conn_start(): libvirt delivers
 * events and keepalive only through a registered event loop.
 *
 * Library code: nothing here logs.  State changes and libvirt's error
 * text reach the owner through LvConnOps.state.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include <libvirt/libvirt.h>

#define LV_CONN_DEFAULT_URI "qemu:///system"
#define LV_UUID_STRING_MAX VIR_UUID_STRING_BUFLEN /* 37, with the NUL */

/* ---- back-off (pure; exported for tests) --------------------------------
 * The first failure waits min (1 s), each further one twice as long, up to
 * max (60 s).  A connection that stayed up for at least max resets it; one
 * that drops sooner (libvirtd accepting and crashing) keeps doubling, so a
 * flapping libvirtd is not hammered every second. */
typedef struct LvBackoff {
        uint64_t min_usec, max_usec;
        uint64_t next_usec;     /* the wait the next failure gets */
        uint64_t up_since_usec; /* 0: not connected */
} LvBackoff;

void lv_backoff_init(LvBackoff *b, uint64_t min_usec, uint64_t max_usec);
/* An open failed: the wait before the next try. */
uint64_t lv_backoff_failed(LvBackoff *b);
/* Connected at now. */
void lv_backoff_up(LvBackoff *b, uint64_t now_usec);
/* The connection closed at now: the wait before the next try. */
uint64_t lv_backoff_lost(LvBackoff *b, uint64_t now_usec);

/* ---- the connection ------------------------------------------------------ */

typedef struct LvConn LvConn;

typedef enum LvConnState {
        LV_CONN_IDLE,    /* not started */
        LV_CONN_UP,      /* open; events flow */
        LV_CONN_WAITING, /* closed or failed; a retry is scheduled */
} LvConnState;

const char *lv_conn_state_to_string(LvConnState s);

/* Callbacks, all on the loop thread; `dom` is borrowed for the call (take
 * virDomainRef() to keep it), `uuid` is the domain's UUID in its string
 * form, the key vmmgr uses everywhere.  Any may be NULL. */
typedef struct LvConnOps {
        /* Once per running domain at every (re)connect, before state(UP):
         * the owner adopts it.  Event callbacks are registered first, so a
         * domain that starts meanwhile may be reported here and by a
         * lifecycle event too: the owner's adoption must be idempotent. */
        void (*domain_running)(LvConn *c, virDomainPtr dom, const char *uuid, void *userdata);
        /* VIR_DOMAIN_EVENT_ID_LIFECYCLE: event is virDomainEventType, detail
         * its per-event detail enum. */
        void (*lifecycle)(LvConn *c, virDomainPtr dom, const char *uuid, int event, int detail, void *userdata);
        /* VIR_DOMAIN_EVENT_ID_METADATA_CHANGE: type is virDomainMetadataType,
         * nsuri the element's namespace (NULL for title/description). */
        void (*metadata_change)(LvConn *c, virDomainPtr dom, const char *uuid, int type, const char *nsuri,
                                void *userdata);
        /* VIR_DOMAIN_EVENT_ID_TUNABLE (schedinfo, pinning, iothreads):
         * the changed VIR_DOMAIN_TUNABLE_* parameters, borrowed. */
        void (*tunable)(LvConn *c, virDomainPtr dom, const char *uuid, virTypedParameterPtr params, int n,
                        void *userdata);
        /* VIR_DOMAIN_EVENT_ID_JOB_COMPLETED (migration, save, dump): the
         * job's VIR_DOMAIN_JOB_* statistics, borrowed. */
        void (*job_completed)(LvConn *c, virDomainPtr dom, const char *uuid, virTypedParameterPtr params, int n,
                              void *userdata);
        /* VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE: the balloon's actual size,
         * in KiB. */
        void (*balloon_change)(LvConn *c, virDomainPtr dom, const char *uuid, unsigned long long actual_kib,
                               void *userdata);
        /* The state changed: UP (after domain_running for each domain), or
         * WAITING with why (libvirt's message or the close reason) and the
         * wait before the retry. */
        void (*state)(LvConn *c, LvConnState state, const char *why, uint64_t retry_in_usec, void *userdata);
} LvConnOps;

typedef struct LvConnOptions {
        const char *uri;              /* NULL: LV_CONN_DEFAULT_URI */
        int keepalive_interval_sec;   /* 0: 5 s; < 0: no keepalive */
        unsigned keepalive_count;     /* 0: 5 unanswered pings close it */
        uint64_t backoff_min_usec;    /* 0: 1 s */
        uint64_t backoff_max_usec;    /* 0: 60 s */
} LvConnOptions;

/* A connection over `event`, which must be the loop lv_loop_register()
 * got (-EINVAL otherwise, and -ENXIO before it).  Copies opts.  Nothing is
 * opened yet. */
int lv_conn_new(sd_event *event, const LvConnOptions *opts, const LvConnOps *ops, void *userdata, LvConn **ret);
/* Deregisters every callback and closes the connection; no callback runs
 * from inside.  Not from inside one of c's own callbacks (libvirt is
 * dispatching on the connection then): arm a defer source for it.
 * Returns NULL. */
LvConn *lv_conn_free(LvConn *c);

/* Opens now (blocking, see above).  0: up, domains reported; -ECONNREFUSED:
 * libvirt refused (lv_conn_error() has its message) and a retry is
 * scheduled; -EALREADY when not idle; -ENOMEM. */
int lv_conn_start(LvConn *c);
/* Closes the connection as if libvirt had (the same path as the close
 * callback) and schedules the reconnect with back-off.  For a changed URI
 * and for tests that simulate a libvirtd restart.  -ENOTCONN when not up. */
int lv_conn_drop(LvConn *c, const char *why);

LvConnState lv_conn_state(const LvConn *c);
/* The open connection, NULL unless up.  Borrowed. */
virConnectPtr lv_conn_get(const LvConn *c);
const char *lv_conn_uri(const LvConn *c);
/* Why it is not up ("" when it is). */
const char *lv_conn_error(const LvConn *c);
/* Whether keepalive is on: false on drivers without it (test:///, and
 * any local driver opened in-process). */
bool lv_conn_keepalive(const LvConn *c);
/* How many times it went up (1 after the first open); during
 * domain_running at a (re)connect it is already the new number. */
unsigned lv_conn_generation(const LvConn *c);
