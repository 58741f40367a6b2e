/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/vmid.h - VM identifiers.
 *
 * A VM is named by its UUID.  Every id that comes from outside (API body,
 * command line, database, QEMU) goes through vm_id_parse() before it is
 * used for anything, in particular before it becomes part of a path.
 */
#pragma once

#define VM_ID_STRLEN 36

typedef struct VmId {
        char str[VM_ID_STRLEN + 1]; /* canonical: lowercase, hyphenated */
} VmId;

/* Accepts exactly the 36-character hyphenated form (any case); -EINVAL otherwise. */
int vm_id_parse(const char *s, VmId *ret);
