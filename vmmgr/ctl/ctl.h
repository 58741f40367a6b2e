/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl.h - private to vmmgrctl: verbs that talk to vmmgrd, and the
 * plumbing they share (socket choice, requests, errors, exit codes).
 */
#pragma once

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/vmid.h"

/* Exit codes (documented in vmmgrctl --help). */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_NOT_FOUND = 3,   /* unknown VM (404) */
        CTL_EXIT_CONFLICT = 4,    /* conflicting state (409) */
        CTL_EXIT_REJECTED = 5,    /* the daemon refused the input (400, 413) */
        CTL_EXIT_UNAVAILABLE = 69, /* vmmgrd not reachable (EX_UNAVAILABLE) */
};

#define CTL_DEFAULT_SOCKET "/run/vmmgr/vmmgr.sock"

/* Options every daemon verb takes. */
typedef struct CtlCommon {
        const char *socket; /* --socket, else $VMMGR_SOCKET, else the default */
        bool json;
        bool help;
        /* Set: a request still running when it turns true gives up within
         * about a second (a screen that quits); NULL for the verbs. */
        const atomic_bool *cancel;
} CtlCommon;

/* Splits argv into the common options and the rest (positionals and the
 * verb's own "--name value" options, returned in order).  Arguments that
 * look like negative amounts ("-2cr") stay positional.  -1 on a usage
 * error (printed). */
int ctl_parse_common(int argc, char **argv, CtlCommon *c, char **rest, int *n_rest);
/* A verb's start: ctl_parse_common() into rest (room for max_rest), the
 * verb's usage on stderr for a usage error (fewer than min_rest
 * positionals is one) or on stdout for --help.
 * Returns -1 to go on, else the exit code to return (0 after --help). */
int ctl_verb_begin(int argc, char **argv, void (*usage)(FILE *out), CtlCommon *c, char **rest, int min_rest,
                   int max_rest, int *n_rest);
/* A verb's end: after a call that succeeded (r == 0), the reply as JSON
 * with --json, else with print (NULL: the verb said what it had to
 * already).  Frees the reply and returns r. */
int ctl_verb_end(const CtlCommon *c, int r, struct json_object *reply, void (*print)(struct json_object *reply));

/* One request; on success *ret is the parsed JSON reply (NULL for 204).
 * On failure prints the daemon's message and returns the exit code. */
int ctl_call(const CtlCommon *c, const char *method, const char *path, struct json_object *body,
             struct json_object **ret);
/* The same with its own timeout (0: none), saying the error into msg
 * instead of logging it: for a screen that stderr must not write over. */
int ctl_call_quiet(const CtlCommon *c, const char *method, const char *path, struct json_object *body,
                   long timeout_ms, struct json_object **ret, char *msg, size_t msg_size);

/* Parses a VM UUID argument; logs a clear error and returns <0 if not one. */
int ctl_uuid_arg(const char *s, VmId *ret);

/* Helpers for printing. */
const char *ctl_str(struct json_object *o, const char *key);
int64_t ctl_int(struct json_object *o, const char *key);
bool ctl_is_null(struct json_object *o, const char *key);
void ctl_print_json(struct json_object *o);

int ctl_credits_history(const CtlCommon *c, const VmId *id, char **rest, int n);

int ctl_verb_vm(int argc, char **argv);
int ctl_verb_credits(int argc, char **argv);
int ctl_verb_events(int argc, char **argv);
int ctl_verb_top(int argc, char **argv);
int ctl_verb_memory(int argc, char **argv);
int ctl_verb_migration(int argc, char **argv);
int ctl_verb_live_update(int argc, char **argv);
