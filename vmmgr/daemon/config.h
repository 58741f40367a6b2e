/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/daemon/config.h - vmmgrd's configuration file.
 *
 * INI syntax, one setting per line, '#' or ';' starts a comment:
 *
 *   [daemon]
 *   state_dir = /var/lib/vmmgr
 *   socket = /run/vmmgr/vmmgr.sock
 *   socket_group = kvm              # may use the socket besides root
 *   subtree = vmmgr.slice
 *   controllers = cpu,cpuacct       # default: see vmmgrctl host-info --help
 *   tick_ms = 100                   # emulated bank tick
 *   commit_interval_ms = 2000       # ledger commits
 *   default_class = t3.small
 *   io_uring = auto                 # batched counter reads: auto, yes or no
 *
 *   [api]                           # the API's limits (vmmgr/api.h, "Limits")
 *   max_connections = 1024          # per listener
 *   max_connections_per_peer = 64   # per uid (UNIX socket), per address (TLS)
 *   timeout_sec = 10                # a whole request within this; idle ones closed
 *   max_header_bytes = 32K          # request line and headers: 431 beyond
 *   max_body_bytes = 64K            # declared or sent body: 413 beyond
 *
 *   [api.tls]                       # off unless listen is set
 *   listen = 0.0.0.0:8443
 *   cert = /etc/vmmgr/server.pem
 *   key = /etc/vmmgr/server.key
 *   client_ca = /etc/vmmgr/fleet-ca.pem
 *
 *   [migration]                     # live migration's credit handoff (docs/migration.md)
 *   host_id = host-17               # names this host in records (default: machine id)
 *   peers = https://10.0.0.2:8443, https://10.0.0.3:8443  # destinations records may go to (default: any)
 *   cert = /etc/vmmgr/client.pem    # client certificate for peers (default: [api.tls] cert)
 *   key = /etc/vmmgr/client.key     # (default: [api.tls] key)
 *   ca = /etc/vmmgr/fleet-ca.pem    # verifies peers (default: [api.tls] client_ca)
 *
 *   [class burst-small]             # adds or replaces a credit class
 *   like = t3.small                 # start from a preset (optional)
 *   baseline = 15%
 *   cap = 300cr
 *
 * Unknown sections or keys and bad values are errors naming file:line:
 * a typo must not silently fall back to a default on a production host.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/kernel.h"
#include "policies/credits.h"
#include "policies/memory.h"

#define CONFIG_PATH_MAX 4096
#define CONFIG_MIGRATION_PEERS_MAX 64

/* [daemon] task_delayacct: what vmmgrd does with kernel.task_delayacct
 * at start.  Memory delays (direct reclaim, thrashing) are only counted
 * for threads created while it is 1: "on" before VMs start is what makes
 * the per-role delays in the memory report non-zero. */
typedef enum ConfigDelayacct {
        CONFIG_DELAYACCT_KEEP, /* leave the host's setting (default) */
        CONFIG_DELAYACCT_ON,
        CONFIG_DELAYACCT_OFF,
} ConfigDelayacct;

/* [libvirt] enabled: whether vmmgrd talks to libvirtd (docs/libvirt.md). */
typedef enum ConfigLibvirt {
        CONFIG_LIBVIRT_AUTO, /* yes, and no libvirtd is a normal state (default) */
        CONFIG_LIBVIRT_YES,  /* yes, and no libvirtd is worth a warning */
        CONFIG_LIBVIRT_NO,
} ConfigLibvirt;

/* [libvirt] manage: which running domains vmmgrd adopts. */
typedef enum ConfigLibvirtManage {
        CONFIG_LIBVIRT_MANAGE_TAGGED, /* those with a <vmmgr:credits> element (default) */
        CONFIG_LIBVIRT_MANAGE_ALL,    /* every domain; untagged ones get default_class */
} ConfigLibvirtManage;

typedef struct VmmgrConfig {
        char state_dir[CONFIG_PATH_MAX];
        char socket_path[108];
        char socket_group[64]; /* "" = root only */
        char subtree[256];
        uint32_t controllers; /* 0 = default */
        uint64_t tick_usec;
        uint64_t commit_interval_usec;
        char default_class[CREDIT_CLASS_NAME_MAX];
        ConfigDelayacct task_delayacct;
        /* [daemon] io_uring: batched counter reads through io_uring
         * (KH_READ_AUTO by default: where usable and cheaper than pread). */
        KhReadMode io_uring;
        /* [api]: the API's limits; defaults are api.h's API_*_DEFAULT */
        unsigned api_max_connections;
        unsigned api_max_connections_per_peer;
        unsigned api_timeout_sec;
        uint64_t api_max_header_bytes;
        uint64_t api_max_body_bytes;
        /* api.tls */
        char tls_listen[128];
        char tls_cert[CONFIG_PATH_MAX];
        char tls_key[CONFIG_PATH_MAX];
        char tls_client_ca[CONFIG_PATH_MAX];
        CreditClassTable classes; /* presets plus the file's classes */
        /* [memory]: the memory policies' tunables (policies/memory.h,
         * mempol_set_key() names the keys); used where vmmgr manages cgroup
         * v2 memory. */
        MemPolicy memory;
        /* [libvirt] */
        ConfigLibvirt libvirt;
        ConfigLibvirtManage libvirt_manage;
        char libvirt_uri[256];
        char libvirt_pid_dir[CONFIG_PATH_MAX]; /* where libvirt writes <domain>.pid */
        /* [migration] ("" = the default named in the file comment above) */
        char migration_host_id[256];
        char migration_peers[CONFIG_MIGRATION_PEERS_MAX][256];
        size_t n_migration_peers;
        char migration_cert[CONFIG_PATH_MAX];
        char migration_key[CONFIG_PATH_MAX];
        char migration_ca[CONFIG_PATH_MAX];
} VmmgrConfig;

#define CONFIG_DEFAULT_LIBVIRT_URI "qemu:///system"
#define CONFIG_DEFAULT_LIBVIRT_PID_DIR "/run/libvirt/qemu"

#define CONFIG_DEFAULT_STATE_DIR "/var/lib/vmmgr"
#define CONFIG_DEFAULT_SOCKET "/run/vmmgr/vmmgr.sock"

/* 0 when `url` is a peer as [migration] peers takes it ("https://HOST[:PORT]"). */
int config_check_peer_url(const char *url);

/* Built-in defaults (a config file is optional). */
int config_init(VmmgrConfig *c);
void config_done(VmmgrConfig *c);
/* Applies a file's settings on top of *c.  On error, *ret_msg (static or
 * in ret_buf) says "FILE:LINE: what"; *c is unchanged. */
int config_load_file(VmmgrConfig *c, const char *path, char *ret_buf, size_t buf_size);
/* Same, from text (tests; "name" is used in messages). */
int config_load_text(VmmgrConfig *c, const char *text, const char *name, char *ret_buf, size_t buf_size);
