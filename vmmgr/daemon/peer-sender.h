/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/peer-sender.h - HTTPS POSTs to peer vmmgrds, made from
 * threads of their own so that vmmgrd's loop never waits for a peer.
 *
 * Used for the live-migration credit handoff: the source vmmgrd POSTs a
 * VM's JSON record to the destination vmmgrd's /v1/migration/records and
 * reads the JSON reply.  A peer is another host: it can be slow, down, or
 * accept a connection and never answer.  The loop queues a request here
 * and goes on; a worker thread makes the blocking request
 * (http_request_ex, libcurl) and the reply comes back to the loop through
 * an eventfd, like libvirt-worker.c's answers.
 *
 * Why a pool and timeouts, both: a small pool of threads
 * (PEER_SENDER_THREADS), and at most one request in flight per peer (per
 * base URL), so a peer that hangs holds one thread and never the others:
 * requests to other peers go on at once, not after a timeout.  Each
 * request has a deadline for the whole exchange (connect, TLS handshake,
 * request and reply; PEER_SENDER_TIMEOUT_MS_DEFAULT unless the caller
 * gives one), which bounds how long that thread stays held, and so how
 * long the hung peer's own later requests wait.  Requests to one peer are
 * sent in the order they were queued.  Only when more peers hang at once
 * than there are threads does a request to a good peer wait, and then for
 * one deadline at most.
 *
 * Transport: HTTPS only, the server verified against the CA in PeerTls
 * (not the system's store: peers are vmmgrds of one fleet, with its CA),
 * host name included, and vmmgrd's own client certificate presented.
 *
 * Library code: nothing here logs.  Each reply carries its outcome and a
 * message for people; the caller logs.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define PEER_SENDER_THREADS 4
#define PEER_SENDER_QUEUE_MAX 1024
#define PEER_SENDER_TIMEOUT_MS_DEFAULT 2000L
#define PEER_SENDER_TIMEOUT_MS_MAX 60000L
#define PEER_SENDER_BODY_MAX (64u * 1024u) /* the peer's API takes no more (API_BODY_MAX_DEFAULT) */

/* Files, copied by peer_sender_new(); read at each request, so a renewed
 * certificate is picked up without a restart. */
typedef struct PeerTls {
        const char *ca_file;   /* verifies the peer's server certificate */
        const char *cert_file; /* this vmmgrd's client certificate */
        const char *key_file;  /* and its key */
} PeerTls;

typedef struct PeerReply {
        uint64_t tag; /* the caller's, from peer_sender_post() */
        /* 0: an HTTP answer came (status and body below, any status).
         * <0: no answer: -ETIMEDOUT (the deadline passed), -ECONNREFUSED
         * (nothing listens there, or the host cannot be reached), -EPROTO
         * (anything else curl reports: a certificate not accepted either
         * way, a name that does not resolve, a broken exchange), -E2BIG
         * (a reply over 64 MiB), -ENOMEM, or -ECANCELED (replaced by a
         * newer request with the same key before it was sent). */
        int r;
        long status;
        /* The reply body, NUL-terminated ("" when empty, NULL when r < 0).
         * Owned by the sender: valid only during the callback. */
        char *body;
        char error[320];    /* for r < 0 */
        uint64_t took_usec; /* the request's time on its thread (0 when never sent) */
} PeerReply;

typedef void (*PeerReplyFn)(const PeerReply *reply, void *userdata);

typedef struct PeerSender PeerSender;

/* Starts the threads; `fn` runs on `event`'s loop with every reply.
 * -EINVAL when a TLS file is missing from `tls`, -EIO when curl cannot set
 * up, or the errno of creating the eventfd or a thread. */
int peer_sender_new(sd_event *event, const PeerTls *tls, PeerReplyFn fn, void *userdata, PeerSender **ret);

/* Stops: requests still queued are dropped, requests in flight are given
 * up (within about a second); replies not yet delivered are dropped, and
 * `fn` is not called again.  A thread that does not stop within 2 s is
 * left behind and frees what it shares with this sender when it ends.
 * Not from within `fn`.  Returns NULL. */
PeerSender *peer_sender_free(PeerSender *s);

/* Queues POST base_url + path with `json_body` (copied) as
 * application/json.  base_url is "https://host:port"; path starts with
 * '/'.  A request with the same `key` (a VM's UUID; NULL: none) still
 * queued, not yet sent, is replaced: the newest record wins, in the old
 * one's place in the queue, and the old one's tag gets a reply with
 * -ECANCELED.  timeout_ms bounds the whole request; 0 means
 * PEER_SENDER_TIMEOUT_MS_DEFAULT.  Every request accepted here gets
 * exactly one reply (unless the sender is freed first), never from within
 * this call.
 * -EINVAL: a bad argument (not https, a path without '/', a timeout below
 * 0 or over PEER_SENDER_TIMEOUT_MS_MAX); -E2BIG: a body over
 * PEER_SENDER_BODY_MAX; -ENOBUFS: PEER_SENDER_QUEUE_MAX requests queued;
 * -ENOMEM. */
int peer_sender_post(PeerSender *s, const char *key, const char *base_url, const char *path, const char *json_body,
                     long timeout_ms, uint64_t tag);

/* Requests accepted and not yet answered on the loop: queued, in flight,
 * or with their reply waiting for the loop. */
size_t peer_sender_queued(const PeerSender *s);
