/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp/qmp.h - libqmp, a client for the QEMU Machine Protocol.
 *
 * One Qmp object is one connection to one QMP monitor socket.  The
 * connection is non-blocking and driven by the caller's event loop:
 *
 *     poll({ qmp_get_fd(q), qmp_get_events(q) }, qmp_get_timeout_ms(q));
 *     qmp_dispatch(q, revents);
 *
 * qmp_dispatch() reads what the socket has, parses it incrementally, and
 * calls the callbacks: command replies go to the callback given to
 * qmp_execute(), asynchronous events to the event handler, in wire order.
 * An event QEMU sends before the reply of the command that caused it is
 * delivered before that command's callback.  Commands may be pipelined;
 * every command carries an "id" from a per-connection counter, so replies
 * are matched by id, never by order.
 *
 * The greeting and the qmp_capabilities negotiation happen by themselves:
 * qmp_new() queues qmp_capabilities first, and nothing is written before the
 * greeting arrives, so commands may be queued straight after qmp_new().
 *
 * Blocking wrappers (qmp_connect_sync(), qmp_execute_sync() and the typed
 * helpers) run the same loop internally with a timeout; they are for tools
 * and tests and must not be called from inside a libqmp callback.
 *
 * Errors are negative errno values.  A fatal error closes the connection
 * (the socket is shut down; the fd stays allocated until qmp_free() so an
 * event loop never sees it reused): every pending command completes with
 * that error, the close handler runs once, and qmp_get_close_reason()
 * describes what happened.  Fatal errors:
 *   -ECONNRESET  EOF or a reset from the peer (also in the middle of a message)
 *   -EBADMSG     invalid JSON, or JSON nested deeper than QMP_MAX_DEPTH
 *   -EPROTO      a message that is not a JSON object, a greeting without
 *                "QMP", an event whose "event" is not a string, an error
 *                reply to a pending command whose "error" is not an object
 *                with string "class" and "desc" (a peer that does not speak
 *                QMP: the stream cannot be trusted, so it is not reported
 *                as that command's failure alone), or a refused
 *                qmp_capabilities
 *   -EMSGSIZE    a message larger than the size cap (qmp_set_max_message_size())
 *   -ETIMEDOUT   a command deadline passed (the peer stalled)
 *   other        socket errors from recv()/send()
 * A well-formed QMP "error" reply is not fatal: that command completes
 * with -EREMOTEIO and a QmpError carrying the class and description.
 * Replies whose id matches no pending command are dropped and counted
 * (QmpStats).
 *
 * Nothing here logs; callers log once with the returned error and reason.
 * Ownership: strings handed to callbacks are borrowed for the duration of
 * the call; strings returned through ret_ parameters are malloc'd and owned
 * by the caller, and struct results are released with the matching
 * qmp_*_free()/qmp_*_done() function.  ret_ parameters are written only on
 * success (except ret_error, written exactly when the result is -EREMOTEIO).
 *
 * A Qmp object is not thread-safe; use it from one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Qmp Qmp;

/* Default per-message size cap.  The largest normal reply, query-qmp-schema,
 * is ~207 KB on QEMU 7.2. */
#define QMP_DEFAULT_MAX_MESSAGE_SIZE (16u * 1024u * 1024u)
/* Maximum nesting of arrays/objects in one message (QEMU's schema nests < 10). */
#define QMP_MAX_DEPTH 64

/* ---- plain data types ---------------------------------------------------- */

/* A QMP "error" reply. */
typedef struct QmpError {
        char *error_class; /* "GenericError", "CommandNotFound", "DeviceNotActive", ... */
        char *desc;        /* human-readable description from QEMU */
} QmpError;

/* Frees the strings inside *e (not e itself) and zeroes it; NULL is fine. */
void qmp_error_done(QmpError *e);

/* The greeting QEMU sends on connect. */
typedef struct QmpGreeting {
        int major, minor, micro; /* QEMU version, e.g. 7.2.22 */
        char *package;           /* distribution package string, may be "" */
        char **capabilities;     /* NULL-terminated, e.g. { "oob", NULL } */
} QmpGreeting;

/* States of a migration (query-migrate "status", MIGRATION event "status"). */
typedef enum QmpMigrationStatus {
        QMP_MIGRATION_STATUS_UNKNOWN = 0, /* a string this library does not know */
        QMP_MIGRATION_STATUS_NONE,
        QMP_MIGRATION_STATUS_SETUP,
        QMP_MIGRATION_STATUS_CANCELLING,
        QMP_MIGRATION_STATUS_CANCELLED,
        QMP_MIGRATION_STATUS_ACTIVE,
        QMP_MIGRATION_STATUS_POSTCOPY_ACTIVE,
        QMP_MIGRATION_STATUS_POSTCOPY_PAUSED,
        QMP_MIGRATION_STATUS_POSTCOPY_RECOVER,
        QMP_MIGRATION_STATUS_COMPLETED,
        QMP_MIGRATION_STATUS_FAILED,
        QMP_MIGRATION_STATUS_COLO,
        QMP_MIGRATION_STATUS_PRE_SWITCHOVER,
        QMP_MIGRATION_STATUS_DEVICE,
        QMP_MIGRATION_STATUS_WAIT_UNPLUG,
        _QMP_MIGRATION_STATUS_MAX,
} QmpMigrationStatus;

/* "active" -> QMP_MIGRATION_STATUS_ACTIVE; unknown or NULL -> _UNKNOWN. */
QmpMigrationStatus qmp_migration_status_from_string(const char *s);
/* The QMP spelling; "unknown" for _UNKNOWN or out-of-range values. */
const char *qmp_migration_status_to_string(QmpMigrationStatus s);

/* An asynchronous event.  Everything is borrowed for the callback's duration. */
typedef struct QmpEvent {
        const char *name;           /* "STOP", "MIGRATION", ... */
        int64_t timestamp_sec;      /* QEMU's timestamp, -1 when absent/invalid */
        int64_t timestamp_usec;
        const char *data_json;      /* the "data" member as JSON text, "{}" when absent */
        /* Typed fields, valid for the named event when its data is well-typed: */
        QmpMigrationStatus migration_status; /* MIGRATION: data.status (else _UNKNOWN) */
        int64_t migration_pass;              /* MIGRATION_PASS: data.pass (else -1) */
        bool has_balloon_actual;             /* BALLOON_CHANGE: data.actual present */
        uint64_t balloon_actual_bytes;
} QmpEvent;

typedef struct QmpStats {
        uint64_t bytes_read;
        uint64_t messages;        /* complete JSON messages parsed */
        uint64_t events;
        uint64_t replies;         /* replies matched to a pending command */
        uint64_t dropped_replies; /* replies with an unknown or missing id, and
                                   * objects that are neither reply nor event */
        uint64_t pending;         /* commands waiting for a reply now */
} QmpStats;

/* ---- callbacks ----------------------------------------------------------- */

/* Completion of one command.  r == 0: return_json is the reply's "return"
 * member as JSON text (e.g. "{}" or "[...]").  r == -EREMOTEIO: QEMU replied
 * with an error, described by *err.  Other r < 0: the connection closed
 * (see the list above) or the Qmp was freed (-ECANCELED); return_json and
 * err are NULL.  Called exactly once per accepted command. */
typedef void (*QmpReplyFn)(Qmp *q, int r, const char *return_json, const QmpError *err,
                           void *userdata);
typedef void (*QmpEventFn)(Qmp *q, const QmpEvent *event, void *userdata);
/* Called once when the connection closes because of an error; reason is
 * borrowed (qmp_get_close_reason() keeps returning it afterwards). */
typedef void (*QmpCloseFn)(Qmp *q, int error, const char *reason, void *userdata);

/* ---- connection lifecycle ------------------------------------------------ */

/* Wraps a connected stream socket (takes ownership of fd, also on failure)
 * and queues qmp_capabilities.  The fd is made non-blocking and close-on-exec.
 * Errors: -EBADF, -ENOMEM, fcntl() errors. */
int qmp_new(int fd, Qmp **ret);

/* Connects to the UNIX socket at socket_path without waiting for the
 * greeting.  Errors: -ENAMETOOLONG, socket()/connect() errors (-ENOENT,
 * -ECONNREFUSED, -EAGAIN when the listen backlog is full). */
int qmp_connect(const char *socket_path, Qmp **ret);

/* Connects, waits for the greeting and negotiates capabilities, all within
 * timeout_ms (< 0: no limit).  On failure, *ret_reason (if not NULL) gets a
 * malloc'd description, e.g. "connect(/run/x.sock): No such file or
 * directory" or the close reason.  A full listen backlog is retried until
 * the deadline.  Errors: as qmp_connect() and the fatal errors above. */
int qmp_connect_sync(const char *socket_path, int timeout_ms, Qmp **ret, char **ret_reason);

/* Completes still-pending commands with -ECANCELED, closes the fd and frees
 * q.  Must not be called from inside a libqmp callback.  NULL is fine. */
void qmp_free(Qmp *q);
static inline void qmp_freep(Qmp **q) {
        qmp_free(*q);
}
#define _cleanup_qmp_ __attribute__((cleanup(qmp_freep)))

/* Maximum size of one incoming message (default QMP_DEFAULT_MAX_MESSAGE_SIZE,
 * minimum 4096).  A larger message closes the connection with -EMSGSIZE
 * before more than the cap is read into memory for it.  Because a parsed
 * message takes more memory than its text, the cap also bounds the number
 * of JSON values (cap / 16) and of objects and arrays together (cap / 128)
 * in one message; with the default cap the worst message measured costs
 * ~120 MiB while it is parsed, with json-c 0.16 (for scale,
 * query-qmp-schema is 207 KB with ~16k values, ~6k objects and arrays).
 * Errors: -EINVAL. */
int qmp_set_max_message_size(Qmp *q, size_t bytes);

void qmp_set_event_handler(Qmp *q, QmpEventFn fn, void *userdata);
void qmp_set_close_handler(Qmp *q, QmpCloseFn fn, void *userdata);

/* ---- event-loop integration ---------------------------------------------- */

/* The socket fd (owned by q). */
int qmp_get_fd(const Qmp *q);
/* poll() events to wait for: POLLIN, plus POLLOUT while output is queued;
 * 0 once closed. */
short qmp_get_events(const Qmp *q);
/* Milliseconds until the earliest command deadline (0 if already passed),
 * or -1 when no pending command has a deadline; usable as poll()'s timeout. */
int qmp_get_timeout_ms(const Qmp *q);
/* Does the I/O that revents (from poll(); 0 is fine) allows, runs callbacks
 * and enforces deadlines.  Returns 0, or the close error once the
 * connection is closed (also on later calls).  Must not be called from
 * inside a libqmp callback (-EBUSY). */
int qmp_dispatch(Qmp *q, short revents);

/* Blocks up to timeout_ms (< 0: no limit) until the greeting has arrived and
 * qmp_capabilities succeeded.  Errors: fatal errors, -ETIMEDOUT (which also
 * closes the connection), -EBUSY from a callback. */
int qmp_wait_ready(Qmp *q, int timeout_ms);

/* true once qmp_capabilities succeeded. */
bool qmp_is_ready(const Qmp *q);
/* The greeting, owned by q; NULL until it has arrived. */
const QmpGreeting *qmp_get_greeting(const Qmp *q);
/* 0 while open, else the negative errno the connection closed with. */
int qmp_get_close_error(const Qmp *q);
/* Why the connection closed, owned by q; NULL while open. */
const char *qmp_get_close_reason(const Qmp *q);
void qmp_get_stats(const Qmp *q, QmpStats *ret);

/* ---- commands ------------------------------------------------------------ */

/* Queues command with arguments args_json (a JSON object as text, or NULL
 * for none).  timeout_ms > 0 sets a deadline after which the connection is
 * closed with -ETIMEDOUT; <= 0: none.  cb (may be NULL) is called exactly
 * once, never from inside qmp_execute() itself.
 * Errors: -EINVAL (empty command, args not a JSON object), -ENOMEM, or the
 * close error if the connection is already closed (cb is then not called). */
int qmp_execute(Qmp *q, const char *command, const char *args_json, int timeout_ms,
                QmpReplyFn cb, void *userdata);

/* Runs one command and waits up to timeout_ms (< 0: no limit) for its
 * reply, dispatching other replies and events meanwhile.  On success
 * *ret_json (if not NULL) gets the "return" member as malloc'd JSON text.
 * On -EREMOTEIO, *ret_error (if not NULL) gets the QMP error (free with
 * qmp_error_done()).  A timeout closes the connection (-ETIMEDOUT): the
 * reply could still come and the stream would no longer be in step.
 * Errors: those of qmp_execute(), -EREMOTEIO, fatal errors, -EBUSY. */
int qmp_execute_sync(Qmp *q, const char *command, const char *args_json, int timeout_ms,
                     char **ret_json, QmpError *ret_error);

/* ---- typed helpers --------------------------------------------------------
 * Each qmp_query_*() is a blocking wrapper: it runs the command with
 * qmp_execute_sync() semantics (timeout_ms, -EREMOTEIO with *ret_error) and
 * parses the reply strictly.  A member with the wrong JSON type, or a
 * required member missing, gives -EBADMSG (the connection stays open).
 * Each has a pure parser, qmp_parse_*(), that takes the "return" JSON text
 * as delivered to a QmpReplyFn, so asynchronous callers run qmp_execute()
 * and parse in their callback.  Parsers fail with -EBADMSG or -ENOMEM. */

/* query-status */
typedef struct QmpStatus {
        bool running;
        char status[32]; /* "running", "paused", "inmigrate", "postmigrate", ... */
} QmpStatus;
int qmp_parse_status(const char *return_json, QmpStatus *ret);

/* query-uuid: QEMU's -uuid, lowercase; "00000000-0000-0000-0000-000000000000"
 * when it was started without one.  -EBADMSG for anything not a UUID. */
#define QMP_UUID_STRLEN 36
#define QMP_UUID_NONE "00000000-0000-0000-0000-000000000000"
int qmp_parse_uuid(const char *return_json, char ret[QMP_UUID_STRLEN + 1]);
int qmp_query_uuid(Qmp *q, int timeout_ms, char ret[QMP_UUID_STRLEN + 1], QmpError *ret_error);
int qmp_query_status(Qmp *q, int timeout_ms, QmpStatus *ret, QmpError *ret_error);

/* query-cpus-fast: vCPU index -> host thread id.  Topology ids are -1 when
 * QEMU does not report them for this machine type. */
typedef struct QmpCpu {
        int64_t cpu_index;
        int64_t thread_id; /* host TID of the vCPU thread */
        char *qom_path;
        char *target;      /* "x86_64", ... ("" when absent) */
        int64_t socket_id, die_id, cluster_id, core_id, thread_id_in_core, node_id;
} QmpCpu;
int qmp_parse_cpus_fast(const char *return_json, QmpCpu **ret, size_t *ret_n);
int qmp_query_cpus_fast(Qmp *q, int timeout_ms, QmpCpu **ret, size_t *ret_n,
                        QmpError *ret_error);
void qmp_cpus_free(QmpCpu *cpus, size_t n);

/* query-iothreads */
typedef struct QmpIothread {
        char *id;
        int64_t thread_id; /* host TID */
} QmpIothread;
int qmp_parse_iothreads(const char *return_json, QmpIothread **ret, size_t *ret_n);
int qmp_query_iothreads(Qmp *q, int timeout_ms, QmpIothread **ret, size_t *ret_n,
                        QmpError *ret_error);
void qmp_iothreads_free(QmpIothread *iothreads, size_t n);

/* query-memory-size-summary */
typedef struct QmpMemorySummary {
        uint64_t base_memory_bytes;
        bool has_plugged_memory;
        uint64_t plugged_memory_bytes;
} QmpMemorySummary;
int qmp_parse_memory_size_summary(const char *return_json, QmpMemorySummary *ret);
int qmp_query_memory_size_summary(Qmp *q, int timeout_ms, QmpMemorySummary *ret,
                                  QmpError *ret_error);

/* query-balloon (-EREMOTEIO with class "DeviceNotActive" without a balloon
 * device) and balloon (sets the target; QEMU answers before the guest acts). */
int qmp_parse_balloon(const char *return_json, uint64_t *ret_actual_bytes);
int qmp_query_balloon(Qmp *q, int timeout_ms, uint64_t *ret_actual_bytes, QmpError *ret_error);
int qmp_balloon(Qmp *q, uint64_t target_bytes, int timeout_ms, QmpError *ret_error);

/* query-pci, flattened: every function on every bus, bridges' secondary
 * buses ("pci_bridge.devices") walked recursively, parents before children.
 *
 * QMP does not report the host address of an assigned (vfio-pci) device.
 * qmp_query_pci() marks such devices (is_vfio) by listing the QOM types of
 * /machine/peripheral, which only works for devices created with an id
 * (-device vfio-pci,id=X); callers map qdev_id to the host address from
 * their own configuration (or with qom-get of the device's "host"
 * property).  qmp_parse_pci() sees only the query-pci reply and leaves
 * is_vfio false. */
typedef struct QmpPciDevice {
        int64_t bus, slot, function;
        uint16_t vendor_id, device_id;
        uint16_t class_code;   /* class_info.class, e.g. 0x0200 */
        char *class_desc;      /* class_info.desc, "" when absent */
        char *qdev_id;         /* "" for devices created without an id */
        bool is_bridge;
        int64_t secondary_bus; /* bridges only, else -1 */
        bool is_vfio;
} QmpPciDevice;
int qmp_parse_pci(const char *return_json, QmpPciDevice **ret, size_t *ret_n);
/* The asynchronous half of qmp_query_pci(): marks is_vfio on the devices
 * whose qdev_id the reply of qom-list {"path": "/machine/peripheral"}
 * names as a child<vfio-pci>. */
int qmp_parse_pci_mark_vfio(const char *qom_list_json, QmpPciDevice *devices, size_t n);
int qmp_query_pci(Qmp *q, int timeout_ms, QmpPciDevice **ret, size_t *ret_n,
                  QmpError *ret_error);
void qmp_pci_devices_free(QmpPciDevice *devices, size_t n);

/* query-migrate.  QEMU omits everything (status included) before the first
 * migration: status is then QMP_MIGRATION_STATUS_NONE. */
typedef struct QmpMigrateInfo {
        QmpMigrationStatus status;
        char status_string[32];          /* as sent, for _UNKNOWN values */
        bool has_ram;
        uint64_t ram_transferred_bytes;
        uint64_t ram_remaining_bytes;
        uint64_t ram_total_bytes;
        uint64_t ram_dirty_pages_rate;   /* pages per second */
        uint64_t ram_dirty_sync_count;
        int64_t total_time_ms;           /* -1 when absent */
        int64_t expected_downtime_ms;    /* -1 when absent */
        int64_t downtime_ms;             /* -1 when absent */
} QmpMigrateInfo;
int qmp_parse_migrate(const char *return_json, QmpMigrateInfo *ret);
int qmp_query_migrate(Qmp *q, int timeout_ms, QmpMigrateInfo *ret, QmpError *ret_error);

/* migrate-set-capabilities. */
typedef struct QmpMigrationCapability {
        const char *capability; /* "xbzrle", "postcopy-ram", "auto-converge", ... */
        bool state;
} QmpMigrationCapability;
int qmp_migrate_set_capabilities(Qmp *q, const QmpMigrationCapability *caps, size_t n,
                                 int timeout_ms, QmpError *ret_error);
