/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/hostinfo.h - the feature probe as JSON (documented keys, see
 * docs/host-info.md) and as a table for people.
 */
#pragma once

#include <json-c/json.h>
#include <stdio.h>

#include "kernel/kernel.h"

/* A new JSON object (caller puts it) or NULL on out-of-memory. */
struct json_object *host_features_to_json(const HostFeatures *f, const char *subtree);
void host_features_print_table(const HostFeatures *f, const char *subtree, FILE *out);
/* "kernel" when cpu.max.runtime exists, else "emulated". */
const char *host_features_credit_bank(const HostFeatures *f);
