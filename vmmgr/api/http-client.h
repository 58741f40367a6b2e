/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/http-client.h - vmmgrctl's client of the API, on libcurl: over
 * vmmgrd's UNIX socket, or over HTTPS with a client certificate.
 *
 * Errors are negative errno values with a message for people in
 * HttpError: -ECONNREFUSED / -ENOENT when vmmgrd is not running, -EACCES
 * when the socket is not ours to use, -ETIMEDOUT, -EPROTO for anything
 * else curl reports.  An HTTP error status is not an error here: the
 * caller reads ret->status and the JSON error body.
 *
 * Threads: requests may run on several threads at once (each has its own
 * curl handle; curl's signals are off).  A program that does so calls
 * http_global_init() once before its first thread starts.
 */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

typedef struct HttpError {
        char message[320];
} HttpError;

typedef struct HttpTarget {
        const char *socket_path; /* UNIX socket; when NULL, base_url is used */
        const char *base_url;    /* "https://host:port" */
        const char *ca_file;     /* verifies the server (https) */
        const char *cert_file;   /* client certificate and key (https) */
        const char *key_file;
        /* When set: a request still running when it turns true is given up
         * within about a second (curl checks it at its progress callback)
         * and fails with -ECANCELED.  For a worker told to stop. */
        const atomic_bool *cancel;
} HttpTarget;

typedef struct HttpResponse {
        long status;
        char *body; /* NUL-terminated; "" when empty */
        size_t body_len;
        char *allow;        /* the Allow header, or NULL */
        char *content_type; /* or NULL */
} HttpResponse;

void http_response_done(HttpResponse *r);

/* curl's process-wide set-up (curl_global_init), which curl would
 * otherwise do on the first request's thread.  Once per process, before
 * any thread makes requests; later calls do nothing.  -EIO if curl cannot
 * set up (its TLS library). */
int http_global_init(void);

/* `body` (may be NULL) is sent as application/json; timeout_ms 0: none. */
int http_request_ex(const HttpTarget *t, const char *method, const char *path, const char *body, size_t body_len,
                    long timeout_ms, HttpResponse *ret, HttpError *err);

/* The simple form vmmgrctl uses: status and body (malloc'd) only. */
int http_request(const char *socket_path, const char *method, const char *path, const char *body_json,
                 long timeout_ms, long *ret_status, char **ret_body, HttpError *err);
