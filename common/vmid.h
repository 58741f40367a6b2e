/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/vmid.h - VM identifiers.
 *
 * A VM is named by its UUID.  Every id that comes from outside (API body,
 * command line, database, QEMU) goes through vm_id_parse() before it is
 * used for anything, in particular before it becomes part of a path.
 */
#pragma once

#include <stdbool.h>
#include <string.h>

#define VM_ID_STRLEN 36

typedef struct VmId {
        char str[VM_ID_STRLEN + 1]; /* canonical: lowercase, hyphenated */
} VmId;

/* Accepts exactly the 36-character hyphenated form (any case); -EINVAL otherwise. */
int vm_id_parse(const char *s, VmId *ret);

static inline bool vm_id_equal(const VmId *a, const VmId *b) {
        return strcmp(a->str, b->str) == 0;
}
