/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device memory (dmem cgroup controller, Linux 6.14+): regions such as
 * "drm/0000:03:00.0/vram0" with per-group min/low/max (and high where a
 * kernel has it).  Each file lists "<region> <bytes|max>" per region.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "kernel/cgparse.h"
#include "kernel/khost.h"

static int read_entries(KHost *h, unsigned hier, const char *group, const char *file,
                        DmemEntry **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = kh_read_alloc(h, hier, group, file, &text);
        if (r < 0)
                return r;
        return cg_parse_dmem(text, ret, ret_n);
}

int kh_dmem_regions(KHost *h, DmemRegion **ret, size_t *ret_n) {
        _cleanup_free_ DmemEntry *e = NULL;
        DmemRegion *regions;
        unsigned hier;
        size_t n;
        int r;

        r = kh_managed_hier(h, CG_CTRL_DMEM, &hier);
        if (r < 0)
                return r;
        r = read_entries(h, hier, NULL, "dmem.capacity", &e, &n);
        if (r < 0)
                return r;
        regions = calloc(n ? n : 1, sizeof(DmemRegion));
        if (!regions)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                memcpy(regions[i].name, e[i].name, sizeof(regions[i].name));
                regions[i].capacity = e[i].value;
                regions[i].max = regions[i].high = MEM_MAX;
        }
        *ret = regions;
        *ret_n = n;
        return 0;
}

static DmemRegion *find_region(DmemRegion *r, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(r[i].name, name) == 0)
                        return &r[i];
        return NULL;
}

int kh_dmem_read(KHost *h, const VmId *vm, DmemRegion **ret, size_t *ret_n) {
        static const char *const files[] = { "dmem.current", "dmem.min", "dmem.low", "dmem.max",
                                             "dmem.high" };
        _cleanup_free_ DmemRegion *regions = NULL;
        char group[CG_PATH_MAX];
        unsigned hier;
        size_t n;
        int r;

        r = kh_managed_hier(h, CG_CTRL_DMEM, &hier);
        if (r < 0)
                return r;
        r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
        if (r < 0)
                return r;
        r = kh_dmem_regions(h, &regions, &n);
        if (r < 0)
                return r;
        for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
                _cleanup_free_ DmemEntry *e = NULL;
                size_t m;

                r = read_entries(h, hier, group, files[f], &e, &m);
                if (r == -ENOENT && f == ARRAY_SIZE(files) - 1)
                        break; /* no dmem.high on this kernel */
                if (r < 0)
                        return r;
                for (size_t i = 0; i < m; i++) {
                        DmemRegion *reg = find_region(regions, n, e[i].name);
                        uint64_t *dst;

                        if (!reg)
                                continue; /* region appeared after capacity was read */
                        dst = f == 0 ? &reg->current : f == 1 ? &reg->min : f == 2 ? &reg->low
                                                       : f == 3 ? &reg->max : &reg->high;
                        *dst = e[i].value;
                }
        }
        *ret = TAKE_PTR(regions);
        *ret_n = n;
        return 0;
}

int kh_dmem_set(KHost *h, const VmId *vm, const char *region, DmemLimit which, uint64_t bytes) {
        static const char *const files[] = {
                [DMEM_LIMIT_MIN] = "dmem.min",
                [DMEM_LIMIT_LOW] = "dmem.low",
                [DMEM_LIMIT_MAX] = "dmem.max",
                [DMEM_LIMIT_HIGH] = "dmem.high",
        };
        _cleanup_free_ DmemEntry *e = NULL;
        char group[CG_PATH_MAX], line[DMEM_REGION_NAME_MAX + 32];
        unsigned hier;
        size_t n;
        int r;

        if ((unsigned) which >= ARRAY_SIZE(files) || !cg_dmem_region_name_valid(region))
                return -EINVAL;
        r = kh_managed_hier(h, CG_CTRL_DMEM, &hier);
        if (r < 0)
                return r;
        r = kh_group_path(h, vm, CG_ROLE_VM, group, sizeof(group));
        if (r < 0)
                return r;
        if (bytes == MEM_MAX)
                snprintf(line, sizeof(line), "%s max", region);
        else
                snprintf(line, sizeof(line), "%s %" PRIu64, region, bytes);
        r = kh_write(h, hier, group, files[which], line, false);
        if (r == -ENOENT && which == DMEM_LIMIT_HIGH &&
            h->ops->exists(h->be, hier, group, NULL) == 1)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        /* Read back: some kernels accept a value without applying it. */
        r = read_entries(h, hier, group, files[which], &e, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (strcmp(e[i].name, region) == 0)
                        return e[i].value == bytes ? 0 : -ERANGE;
        return -ENOENT;
}
