/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/config.c - vmmgrd's configuration file: sections [daemon],
 * [api], [api.tls], [memory] and [class NAME]; every key checked, an error
 * names its file and line and changes nothing.
 */
#include "vmmgr/daemon/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/kernel.h"
#include "vmmgr/api/api.h"

int config_init(VmmgrConfig *c) {
        *c = (VmmgrConfig) {
                .tick_usec = 100000,
                .commit_interval_usec = 2000000,
                .api_max_connections = API_CONNECTIONS_DEFAULT,
                .api_max_connections_per_peer = API_PER_PEER_DEFAULT,
                .api_timeout_sec = API_TIMEOUT_SEC_DEFAULT,
                .api_max_header_bytes = API_HEADER_MAX_DEFAULT,
                .api_max_body_bytes = API_BODY_MAX_DEFAULT,
        };
        snprintf(c->state_dir, sizeof(c->state_dir), "%s", CONFIG_DEFAULT_STATE_DIR);
        snprintf(c->socket_path, sizeof(c->socket_path), "%s", CONFIG_DEFAULT_SOCKET);
        snprintf(c->subtree, sizeof(c->subtree), "%s", "vmmgr.slice");
        snprintf(c->default_class, sizeof(c->default_class), "%s", "t3.small");
        snprintf(c->libvirt_uri, sizeof(c->libvirt_uri), "%s", CONFIG_DEFAULT_LIBVIRT_URI);
        snprintf(c->libvirt_pid_dir, sizeof(c->libvirt_pid_dir), "%s", CONFIG_DEFAULT_LIBVIRT_PID_DIR);
        mempol_default(&c->memory);
        return credit_class_table_init(&c->classes);
}

void config_done(VmmgrConfig *c) {
        credit_class_table_done(&c->classes);
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

static int fail(char *buf, size_t size, const char *name, unsigned line, int r, const char *fmt, ...)
        _printf_(6, 7);
static int fail(char *buf, size_t size, const char *name, unsigned line, int r, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(buf, size, "%s:%u: ", name, line);

        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < size)
                vsnprintf(buf + n, size - (size_t) n, fmt, ap);
        va_end(ap);
        return r;
}

static int set_string(char *dst, size_t size, const char *v) {
        if (strlen(v) >= size)
                return -ENAMETOOLONG;
        snprintf(dst, size, "%s", v);
        return 0;
}

static int set_path(char *dst, size_t size, const char *v) {
        if (v[0] != '/')
                return -EINVAL; /* relative paths depend on where the daemon starts */
        return set_string(dst, size, v);
}

static int set_ms(uint64_t *dst, const char *v, uint64_t min_ms, uint64_t max_ms) {
        uint64_t ms;
        int r = parse_u64(v, &ms);

        if (r < 0)
                return r;
        if (ms < min_ms || ms > max_ms)
                return -ERANGE;
        *dst = ms * 1000;
        return 0;
}

static int daemon_key(VmmgrConfig *c, const char *k, const char *v) {
        if (strcmp(k, "state_dir") == 0)
                return set_path(c->state_dir, sizeof(c->state_dir), v);
        if (strcmp(k, "socket") == 0)
                return set_path(c->socket_path, sizeof(c->socket_path), v);
        if (strcmp(k, "socket_group") == 0)
                return set_string(c->socket_group, sizeof(c->socket_group), v);
        if (strcmp(k, "subtree") == 0)
                return is_safe_name(v, 200) ? set_string(c->subtree, sizeof(c->subtree), v) : -EINVAL;
        if (strcmp(k, "controllers") == 0)
                return cg_controller_mask_from_string(v, &c->controllers, NULL);
        if (strcmp(k, "tick_ms") == 0)
                return set_ms(&c->tick_usec, v, 10, 10000);
        if (strcmp(k, "commit_interval_ms") == 0)
                return set_ms(&c->commit_interval_usec, v, 100, 600000);
        if (strcmp(k, "default_class") == 0)
                return set_string(c->default_class, sizeof(c->default_class), v);
        if (strcmp(k, "task_delayacct") == 0) {
                if (strcmp(v, "keep") == 0)
                        c->task_delayacct = CONFIG_DELAYACCT_KEEP;
                else if (strcmp(v, "on") == 0)
                        c->task_delayacct = CONFIG_DELAYACCT_ON;
                else if (strcmp(v, "off") == 0)
                        c->task_delayacct = CONFIG_DELAYACCT_OFF;
                else
                        return -EINVAL;
                return 0;
        }
        if (strcmp(k, "io_uring") == 0) {
                if (strcmp(v, "auto") == 0)
                        c->io_uring = KH_READ_AUTO;
                else if (strcmp(v, "yes") == 0)
                        c->io_uring = KH_READ_IO_URING;
                else if (strcmp(v, "no") == 0)
                        c->io_uring = KH_READ_PREAD;
                else
                        return -EINVAL;
                return 0;
        }
        return -ENOKEY;
}

static int set_uint(unsigned *dst, const char *v, unsigned min, unsigned max) {
        int x, r = parse_int_range(v, (int) min, (int) max, &x);

        if (r < 0)
                return r;
        *dst = (unsigned) x;
        return 0;
}

static int set_bytes(uint64_t *dst, const char *v, uint64_t min, uint64_t max) {
        uint64_t x;
        int r = parse_size(v, &x);

        if (r < 0)
                return r;
        if (x < min || x > max)
                return -ERANGE;
        *dst = x;
        return 0;
}

/* [api]: the limits that keep the API answering (vmmgr/api.h). */
static int api_key(VmmgrConfig *c, const char *k, const char *v) {
        if (strcmp(k, "max_connections") == 0)
                return set_uint(&c->api_max_connections, v, 4, 65536);
        if (strcmp(k, "max_connections_per_peer") == 0)
                return set_uint(&c->api_max_connections_per_peer, v, 1, 65536);
        if (strcmp(k, "timeout_sec") == 0)
                return set_uint(&c->api_timeout_sec, v, 1, 3600);
        if (strcmp(k, "max_header_bytes") == 0)
                return set_bytes(&c->api_max_header_bytes, v, API_HEADER_MAX_MIN, 1024 * 1024);
        if (strcmp(k, "max_body_bytes") == 0)
                return set_bytes(&c->api_max_body_bytes, v, 1024, 16 * 1024 * 1024);
        return -ENOKEY;
}

static int tls_key(VmmgrConfig *c, const char *k, const char *v) {
        if (strcmp(k, "listen") == 0)
                return set_string(c->tls_listen, sizeof(c->tls_listen), v);
        if (strcmp(k, "cert") == 0)
                return set_path(c->tls_cert, sizeof(c->tls_cert), v);
        if (strcmp(k, "key") == 0)
                return set_path(c->tls_key, sizeof(c->tls_key), v);
        if (strcmp(k, "client_ca") == 0)
                return set_path(c->tls_client_ca, sizeof(c->tls_client_ca), v);
        return -ENOKEY;
}

/* [libvirt]: the connection to libvirtd and which domains vmmgr adopts. */
static int libvirt_key(VmmgrConfig *c, const char *k, const char *v) {
        if (strcmp(k, "enabled") == 0) {
                if (strcmp(v, "auto") == 0)
                        c->libvirt = CONFIG_LIBVIRT_AUTO;
                else if (strcmp(v, "yes") == 0)
                        c->libvirt = CONFIG_LIBVIRT_YES;
                else if (strcmp(v, "no") == 0)
                        c->libvirt = CONFIG_LIBVIRT_NO;
                else
                        return -EINVAL;
                return 0;
        }
        if (strcmp(k, "manage") == 0) {
                if (strcmp(v, "tagged") == 0)
                        c->libvirt_manage = CONFIG_LIBVIRT_MANAGE_TAGGED;
                else if (strcmp(v, "all") == 0)
                        c->libvirt_manage = CONFIG_LIBVIRT_MANAGE_ALL;
                else
                        return -EINVAL;
                return 0;
        }
        if (strcmp(k, "uri") == 0)
                return v[0] && !strpbrk(v, " \t") ? set_string(c->libvirt_uri, sizeof(c->libvirt_uri), v) : -EINVAL;
        if (strcmp(k, "pid_dir") == 0)
                return set_path(c->libvirt_pid_dir, sizeof(c->libvirt_pid_dir), v);
        return -ENOKEY;
}

/* A peer is an https URL with a host and nothing after it but a port:
 * records go to its /v1/migration/records. */
static int check_peer_url(const char *v) {
        const char *host = v + strlen("https://");
        size_t n;

        if (strncmp(v, "https://", 8) != 0 || !*host || *host == '/' || *host == ':')
                return -EINVAL;
        n = strcspn(host, "/?#@ \t");
        if (host[n] && strcmp(host + n, "/") != 0)
                return -EINVAL;
        return 0;
}

/* [migration]: who this host is in records, and where records may go. */
static int migration_key(VmmgrConfig *c, const char *k, const char *v) {
        if (strcmp(k, "host_id") == 0) {
                if (!v[0])
                        return -EINVAL;
                for (const char *p = v; *p; p++)
                        if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                                return -EINVAL;
                return set_string(c->migration_host_id, sizeof(c->migration_host_id), v);
        }
        if (strcmp(k, "peers") == 0) {
                char buf[CONFIG_MIGRATION_PEERS_MAX * 256], *save = NULL, *tok;
                size_t n = 0;

                if (strlen(v) >= sizeof(buf))
                        return -E2BIG;
                strcpy(buf, v);
                for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
                        size_t len = strlen(tok);

                        if (n >= CONFIG_MIGRATION_PEERS_MAX || len >= sizeof(c->migration_peers[0]))
                                return -E2BIG;
                        if (check_peer_url(tok) < 0)
                                return -EINVAL;
                        if (tok[len - 1] == '/')
                                tok[len - 1] = '\0';
                        snprintf(c->migration_peers[n++], sizeof(c->migration_peers[0]), "%s", tok);
                }
                c->n_migration_peers = n;
                return 0;
        }
        if (strcmp(k, "cert") == 0)
                return set_path(c->migration_cert, sizeof(c->migration_cert), v);
        if (strcmp(k, "key") == 0)
                return set_path(c->migration_key, sizeof(c->migration_key), v);
        if (strcmp(k, "ca") == 0)
                return set_path(c->migration_ca, sizeof(c->migration_ca), v);
        return -ENOKEY;
}

int config_check_peer_url(const char *url) {
        return check_peer_url(url);
}

typedef enum Section { SEC_NONE, SEC_DAEMON, SEC_API, SEC_TLS, SEC_CLASS, SEC_MEMORY, SEC_LIBVIRT, SEC_MIGRATION } Section;

/* Finishes a [class] section: validated and put in the table. */
static int class_end(VmmgrConfig *c, CreditClass *cls, bool *open) {
        int r;

        if (!*open)
                return 0;
        *open = false;
        r = credit_spec_validate(&cls->spec, NULL);
        if (r < 0)
                return r;
        return credit_class_table_put(&c->classes, cls);
}

int config_load_text(VmmgrConfig *c, const char *text, const char *name, char *ret_buf, size_t buf_size) {
        _cleanup_free_ char *copy = strdup(text);
        VmmgrConfig n = *c;
        CreditClass cls = { 0 };
        Section sec = SEC_NONE;
        bool class_open = false;
        unsigned line = 0, class_line = 0;
        char *l;
        int r;

        if (!copy)
                return -ENOMEM;
        /* Work on a copy of the table: *c stays as it was on any error. */
        n.classes.classes = malloc((c->classes.n ? c->classes.n : 1) * sizeof(CreditClass));
        if (!n.classes.classes)
                return -ENOMEM;
        memcpy(n.classes.classes, c->classes.classes, c->classes.n * sizeof(CreditClass));

        for (char *next = copy; next;) {
                char *eq, *k, *v, *nl;

                l = next;
                nl = strchr(l, '\n');
                if (nl)
                        *nl = '\0';
                next = nl ? nl + 1 : NULL;
                line++;
                l = strip(l);
                if (*l == '\0' || *l == '#' || *l == ';')
                        continue;
                if (*l == '[') {
                        char *end = strchr(l, ']');
                        if (!end || strip(end + 1)[0] != '\0') {
                                r = fail(ret_buf, buf_size, name, line, -EINVAL, "malformed section header");
                                goto err;
                        }
                        *end = '\0';
                        r = class_end(&n, &cls, &class_open);
                        if (r < 0) {
                                r = fail(ret_buf, buf_size, name, class_line, r, "class \"%s\" is not valid: %s",
                                         cls.name, strerror(-r));
                                goto err;
                        }
                        l = strip(l + 1);
                        if (strcmp(l, "daemon") == 0)
                                sec = SEC_DAEMON;
                        else if (strcmp(l, "api") == 0)
                                sec = SEC_API;
                        else if (strcmp(l, "api.tls") == 0)
                                sec = SEC_TLS;
                        else if (strcmp(l, "memory") == 0)
                                sec = SEC_MEMORY;
                        else if (strcmp(l, "libvirt") == 0)
                                sec = SEC_LIBVIRT;
                        else if (strcmp(l, "migration") == 0)
                                sec = SEC_MIGRATION;
                        else if (strncmp(l, "class ", 6) == 0) {
                                const char *cname = strip(l + 6);
                                sec = SEC_CLASS;
                                cls = (CreditClass) { 0 };
                                if (strlen(cname) == 0 || strlen(cname) >= sizeof(cls.name)) {
                                        r = fail(ret_buf, buf_size, name, line, -EINVAL, "bad class name");
                                        goto err;
                                }
                                snprintf(cls.name, sizeof(cls.name), "%s", cname);
                                class_open = true;
                                class_line = line;
                        } else {
                                r = fail(ret_buf, buf_size, name, line, -EINVAL, "unknown section [%s]", l);
                                goto err;
                        }
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        r = fail(ret_buf, buf_size, name, line, -EINVAL, "expected KEY = VALUE");
                        goto err;
                }
                *eq = '\0';
                k = strip(l);
                v = strip(eq + 1);
                {
                        /* Trailing comments: "key = value   # why". */
                        char *hash = strstr(v, " #");
                        if (hash) {
                                *hash = '\0';
                                v = strip(v);
                        }
                }
                switch (sec) {
                case SEC_NONE:
                        r = fail(ret_buf, buf_size, name, line, -EINVAL, "setting outside a section");
                        goto err;
                case SEC_DAEMON:
                        r = daemon_key(&n, k, v);
                        break;
                case SEC_API:
                        r = api_key(&n, k, v);
                        break;
                case SEC_TLS:
                        r = tls_key(&n, k, v);
                        break;
                case SEC_MEMORY:
                        r = mempol_set_key(&n.memory, k, v, NULL);
                        break;
                case SEC_LIBVIRT:
                        r = libvirt_key(&n, k, v);
                        break;
                case SEC_MIGRATION:
                        r = migration_key(&n, k, v);
                        break;
                case SEC_CLASS:
                        if (strcmp(k, "like") == 0) {
                                const CreditClass *base = credit_class_find(&n.classes, v);
                                if (!base) {
                                        r = fail(ret_buf, buf_size, name, line, -ENOENT, "unknown class \"%s\"", v);
                                        goto err;
                                }
                                cls.spec = base->spec;
                                r = 0;
                        } else
                                r = credit_class_set_key(&cls, k, v, NULL);
                        break;
                }
                if (r == -ENOKEY) {
                        r = fail(ret_buf, buf_size, name, line, -EINVAL, "unknown key \"%s\"", k);
                        goto err;
                }
                if (r < 0) {
                        r = fail(ret_buf, buf_size, name, line, r, "bad value for %s: \"%s\" (%s)", k, v, strerror(-r));
                        goto err;
                }
        }
        r = class_end(&n, &cls, &class_open);
        if (r < 0) {
                r = fail(ret_buf, buf_size, name, class_line, r, "class \"%s\" is not valid: %s", cls.name,
                         strerror(-r));
                goto err;
        }
        {
                const char *field = NULL;

                /* Some memory keys only make sense together: judged whole. */
                r = mempol_validate(&n.memory, &field);
                if (r < 0) {
                        r = fail(ret_buf, buf_size, name, line, r, "[memory]: bad value for %s (%s)",
                                 field ? field : "?", strerror(-r));
                        goto err;
                }
        }
        free(c->classes.classes);
        *c = n;
        return 0;
err:
        free(n.classes.classes);
        return r;
}

int config_load_file(VmmgrConfig *c, const char *path, char *ret_buf, size_t buf_size) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        f = fopen(path, "re");
        if (!f) {
                r = negative_errno();
                snprintf(ret_buf, buf_size, "%s: %s", path, strerror(-r));
                return r;
        }
        text = calloc(1, 1024 * 1024 + 1);
        if (!text)
                return -ENOMEM;
        len = fread(text, 1, 1024 * 1024 + 1, f);
        if (ferror(f)) {
                r = negative_errno();
                snprintf(ret_buf, buf_size, "%s: %s", path, strerror(-r));
                return r;
        }
        if (len > 1024 * 1024) {
                snprintf(ret_buf, buf_size, "%s: larger than 1 MiB", path);
                return -EFBIG;
        }
        text[len] = '\0';
        if (strlen(text) != len) {
                snprintf(ret_buf, buf_size, "%s: contains a NUL byte", path);
                return -EBADMSG;
        }
        return config_load_text(c, text, path, ret_buf, buf_size);
}
