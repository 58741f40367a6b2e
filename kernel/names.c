/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Names of controllers, roles and modes, as the kernel and our API spell them. */
#include <errno.h>
#include <string.h>

#include "common/macros.h"
#include "kernel/kernel.h"

static const char *const controller_names[_CG_CTRL_MAX] = {
        [CG_CTRL_CPU] = "cpu",         [CG_CTRL_CPUACCT] = "cpuacct", [CG_CTRL_CPUSET] = "cpuset",
        [CG_CTRL_MEMORY] = "memory",   [CG_CTRL_IO] = "io",           [CG_CTRL_PIDS] = "pids",
        [CG_CTRL_HUGETLB] = "hugetlb", [CG_CTRL_DMEM] = "dmem",
};

const char *cg_controller_to_string(CgController c) {
        return (unsigned) c < _CG_CTRL_MAX ? controller_names[c] : NULL;
}

int cg_controller_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (strcmp(s, "blkio") == 0) /* v1 name of io */
                return CG_CTRL_IO;
        for (int c = 0; c < _CG_CTRL_MAX; c++)
                if (strcmp(s, controller_names[c]) == 0)
                        return c;
        return -EINVAL;
}

static const char *const role_names[_CG_ROLE_MAX] = {
        [CG_ROLE_VM] = "vm",
        [CG_ROLE_VCPUS] = "vcpus",
        [CG_ROLE_EMULATOR] = "emulator",
        [CG_ROLE_IO] = "io",
};

const char *cg_role_to_string(CgRole r) {
        return (unsigned) r < _CG_ROLE_MAX ? role_names[r] : NULL;
}

int cg_role_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int r = 0; r < _CG_ROLE_MAX; r++)
                if (strcmp(s, role_names[r]) == 0)
                        return r;
        return -EINVAL;
}

const char *cg_mode_to_string(CgMode m) {
        switch (m) {
        case CG_MODE_NONE:
                return "none";
        case CG_MODE_LEGACY:
                return "legacy";
        case CG_MODE_HYBRID:
                return "hybrid";
        case CG_MODE_UNIFIED:
                return "unified";
        }
        return "unknown";
}

int cg_controller_mask_from_string(const char *s, uint32_t *ret_mask, const char **ret_bad) {
        uint32_t mask = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        for (;;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t) (comma - p) : strlen(p);
                char name[16];
                int c;

                if (n == 0 || n >= sizeof(name)) {
                        if (ret_bad)
                                *ret_bad = p;
                        return -EINVAL;
                }
                memcpy(name, p, n);
                name[n] = '\0';
                c = cg_controller_from_string(name);
                if (c < 0) {
                        if (ret_bad)
                                *ret_bad = p;
                        return -EINVAL;
                }
                mask |= CG_CTRL_BIT(c);
                if (!comma)
                        break;
                p = comma + 1;
        }
        *ret_mask = mask;
        return 0;
}
