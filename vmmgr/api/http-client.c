/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/http-client.c - vmmgrctl's HTTP client for vmmgrd's API on the
 * UNIX socket (libcurl), with deadlines and bounded replies.
 */
#include "vmmgr/api/http-client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/macros.h"
#include "vmmgr/api/api.h" /* API_BODY_MAX_DEFAULT */

/* The API's answers are small; anything bigger is not vmmgrd talking. */
#define RESPONSE_MAX (64u * 1024u * 1024u)

typedef struct Buffer {
        char *data;
        size_t len, cap;
        bool too_big;
} Buffer;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Buffer *b = userdata;
        size_t n = size * nmemb;

        if (n > RESPONSE_MAX - b->len) {
                b->too_big = true;
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 1);
                char *p = realloc(b->data, cap);

                if (!p)
                        return 0;
                b->data = p;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

/* Keeps the value of a header we care about (the last one wins). */
static void take_header(char **slot, const char *value, size_t len) {
        while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
                len--;
        while (len > 0 && *value == ' ') {
                value++;
                len--;
        }
        free(*slot);
        *slot = strndup(value, len);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
        HttpResponse *r = userdata;
        size_t n = size * nitems;

        if (n > 6 && strncasecmp(buf, "Allow:", 6) == 0)
                take_header(&r->allow, buf + 6, n - 6);
        else if (n > 13 && strncasecmp(buf, "Content-Type:", 13) == 0)
                take_header(&r->content_type, buf + 13, n - 13);
        return n;
}

void http_response_done(HttpResponse *r) {
        free(r->body);
        free(r->allow);
        free(r->content_type);
        *r = (HttpResponse) {};
}

static int global_init_r = -EIO;

static void global_init_once(void) {
        global_init_r = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

int http_global_init(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, global_init_once);
        return global_init_r;
}

/* Returning non-zero makes curl give up with CURLE_ABORTED_BY_CALLBACK. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        const atomic_bool *cancel = userdata;

        return atomic_load(cancel) ? 1 : 0;
}

static int connect_error(const HttpTarget *t, long os_errno, const char *detail, HttpError *err) {
        const char *where = t->socket_path ? t->socket_path : t->base_url;

        switch (os_errno) {
        case ENOENT:
                set_error(err, "vmmgrd is not running (no socket at %s)", where);
                return -ENOENT;
        case ECONNREFUSED:
                if (t->socket_path)
                        set_error(err, "vmmgrd is not running (nothing listens on %s)", where);
                else
                        set_error(err, "vmmgrd is not running or not listening at %s", where);
                return -ECONNREFUSED;
        case EACCES:
        case EPERM:
                set_error(err, "permission denied connecting to %s (run as root or in vmmgrd's API group)", where);
                return -EACCES;
        default:
                set_error(err, "cannot connect to %s: %s", where, detail);
                return -ECONNREFUSED;
        }
}

int http_request_ex(const HttpTarget *t, const char *method, const char *path, const char *body, size_t body_len,
                    long timeout_ms, HttpResponse *ret, HttpError *err) {
        char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
        struct curl_slist *headers = NULL, *h;
        HttpResponse resp = {};
        Buffer b = {};
        CURLcode c;
        CURL *curl;
        int r = 0;

        if (!t->socket_path && !t->base_url) {
                set_error(err, "no socket path or URL to connect to");
                return -EINVAL;
        }
        if (!path || path[0] != '/') {
                set_error(err, "request path must start with '/'");
                return -EINVAL;
        }
        if (asprintf(&url, "%s%s", t->socket_path ? "http://localhost" : t->base_url, path) < 0)
                return -ENOMEM;
        curl = curl_easy_init();
        if (!curl) {
                free(url);
                return -ENOMEM;
        }
        /* "Expect:" off for the bodies the API takes: a 100-continue round
         * trip buys nothing there and costs a second's wait with some
         * servers.  Above the API's cap, ask first: vmmgrd then answers
         * 413 before the body is sent, instead of closing on a client
         * still writing it (which curl reports as a send failure). */
        h = curl_slist_append(headers, body && body_len > API_BODY_MAX_DEFAULT ? "Expect: 100-continue" : "Expect:");
        if (h)
                headers = h;
        if (h && body) {
                h = curl_slist_append(headers, "Content-Type: application/json");
                if (h)
                        headers = h;
        }
        if (!h) {
                r = -ENOMEM;
                goto finish;
        }

        c = curl_easy_setopt(curl, CURLOPT_URL, url);
        if (c == CURLE_OK && t->socket_path)
                c = curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, t->socket_path);
        if (c == CURLE_OK && t->ca_file)
                c = curl_easy_setopt(curl, CURLOPT_CAINFO, t->ca_file);
        if (c == CURLE_OK && t->cert_file)
                c = curl_easy_setopt(curl, CURLOPT_SSLCERT, t->cert_file);
        if (c == CURLE_OK && t->key_file)
                c = curl_easy_setopt(curl, CURLOPT_SSLKEY, t->key_file);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (c == CURLE_OK && strcmp(method, "HEAD") == 0) /* or curl waits for a body that never comes */
                c = curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        if (c == CURLE_OK && body) {
                c = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
                if (c == CURLE_OK)
                        c = curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        }
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        /* A proxy from the environment has no business with our socket. */
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        if (c == CURLE_OK && timeout_ms > 0)
                c = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp);
        if (c == CURLE_OK)
                c = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
        if (c == CURLE_OK && t->cancel) {
                c = curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
                if (c == CURLE_OK)
                        c = curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *) t->cancel);
                if (c == CURLE_OK)
                        c = curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        }
        if (c != CURLE_OK) {
                set_error(err, "cannot set up the request: %s", curl_easy_strerror(c));
                r = c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
                goto finish;
        }

        c = curl_easy_perform(curl);
        if (c != CURLE_OK) {
                const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(c);
                long os_errno = 0;

                curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
                if (c == CURLE_COULDNT_CONNECT)
                        r = connect_error(t, os_errno, detail, err);
                else if (c == CURLE_OPERATION_TIMEDOUT) {
                        set_error(err, "vmmgrd did not answer within %ld ms", timeout_ms);
                        r = -ETIMEDOUT;
                } else if (c == CURLE_ABORTED_BY_CALLBACK) {
                        set_error(err, "%s %s cancelled", method, path);
                        r = -ECANCELED;
                } else if (b.too_big) {
                        set_error(err, "the response is over %u bytes", RESPONSE_MAX);
                        r = -E2BIG;
                } else {
                        set_error(err, "%s %s failed: %s", method, path, detail);
                        r = c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EPROTO;
                }
                goto finish;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
        if (!b.data) {
                b.data = strdup("");
                if (!b.data) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        resp.body = TAKE_PTR(b.data);
        resp.body_len = b.len;
        *ret = resp;
        resp = (HttpResponse) {};
finish:
        http_response_done(&resp);
        free(b.data);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        free(url);
        return r;
}

int http_request(const char *socket_path, const char *method, const char *path, const char *body_json,
                 long timeout_ms, long *ret_status, char **ret_body, HttpError *err) {
        HttpTarget t = { .socket_path = socket_path };
        HttpResponse resp;
        int r;

        r = http_request_ex(&t, method, path, body_json, body_json ? strlen(body_json) : 0, timeout_ms, &resp, err);
        if (r < 0)
                return r;
        *ret_status = resp.status;
        *ret_body = TAKE_PTR(resp.body);
        http_response_done(&resp);
        return 0;
}
