/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration/record.h - the handoff record on the wire and in the journal:
 * JSON built and read with json-c, never by pasting text.
 *
 *   {"version": 1, "vm": "<uuid>", "epoch": N, "frozen_at_usec": T,
 *    "source": "<host>",
 *    "spec": {"vcpus", "baseline_ppm", "cap_usec", "launch_usec", "mode"},
 *    "ledger": {"balance_usec", "launch_usec", "surplus_usec",
 *               "charged_usec", "earned_usec", "spent_usec",
 *               "forfeited_usec", "overdraft_usec", "debt_usec",
 *               "adjusted_usec", "earn_remainder", "generation"}}
 *
 * Reading is strict: every member is required, unknown members are
 * refused, numbers must be integers in range, the spec must validate and
 * the ledger must be one a vmmgr could have written (balance within
 * 0..cap, no negative launch, surplus, charged or debt).  A record that
 * fails is reported with the member at fault and changes nothing.
 */
#pragma once

#include <stddef.h>

#include "migration/handoff.h"

struct json_object;

#define MIG_RECORD_VERSION 1

typedef struct MigRecordError {
        char message[256];
        const char *field; /* the member at fault ("ledger.balance_usec"), static; NULL if none */
} MigRecordError;

/* A new JSON object (NULL when out of memory). */
struct json_object *mig_record_to_json(const MigRecord *rec);
/* The record as compact JSON text; malloc'd (NULL when out of memory). */
char *mig_record_to_text(const MigRecord *rec);

/* -EINVAL (err says why) or 0. */
int mig_record_from_json(struct json_object *o, MigRecord *ret, MigRecordError *err);
int mig_record_from_text(const char *text, MigRecord *ret, MigRecordError *err);
