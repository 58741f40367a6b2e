/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/vmid.c - VM ids: a lowercase RFC 4122 UUID, validated before it
 * can become part of a path or a name.
 */
#include "common/vmid.h"

#include <errno.h>
#include <string.h>
#include <uuid/uuid.h>

int vm_id_parse(const char *s, VmId *ret) {
        uuid_t u;

        /* libuuid checks the layout (8-4-4-4-12 hex digits); the length check
         * first keeps it from reading past a short string. */
        if (!s || strnlen(s, VM_ID_STRLEN + 1) != VM_ID_STRLEN)
                return -EINVAL;
        if (uuid_parse(s, u) < 0)
                return -EINVAL;
        uuid_unparse_lower(u, ret->str);
        return 0;
}
