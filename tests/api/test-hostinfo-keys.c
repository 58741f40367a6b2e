/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit test: docs/host-info.md documents exactly the keys of the
 * host-info object (vmmgr/api/hostinfo.c), each with the type it has.
 * The document's key table is read line by line: "| `key` | type | ...".
 * The object is rendered from a HostFeatures with every answer known
 * (the keys that are null when unknown have a non-null type too) and
 * once with every answer unknown (those must say "or null").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmmgr/api/hostinfo.h"

typedef struct DocKey {
        char name[64];
        char type[64];
        bool seen;
} DocKey;

static size_t read_doc_keys(DocKey *keys, size_t max) {
        const char *root = getenv("VMMGR_SOURCE_ROOT");
        char file[512], line[2048];
        size_t n = 0;
        FILE *f;

        snprintf(file, sizeof file, "%s/docs/host-info.md", root ? root : ".");
        f = fopen(file, "re");
        if (!f)
                fail_msg("cannot open %s (set VMMGR_SOURCE_ROOT)", file);
        while (fgets(line, sizeof line, f)) {
                char *name, *end, *type, *tend;

                if (strncmp(line, "| `", 3) != 0)
                        continue;
                name = line + 3;
                end = strchr(name, '`');
                if (!end || strncmp(end, "` | ", 4) != 0)
                        continue;
                *end = '\0';
                type = end + 4;
                tend = strstr(type, " |");
                if (!tend)
                        continue;
                *tend = '\0';
                assert_true(n < max);
                snprintf(keys[n].name, sizeof keys[n].name, "%s", name);
                snprintf(keys[n].type, sizeof keys[n].type, "%s", type);
                keys[n].seen = false;
                n++;
        }
        fclose(f);
        return n;
}

static const char *json_kind(struct json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "bool";
        case json_type_int:
        case json_type_double:
                return "number";
        case json_type_string:
                return "string";
        case json_type_array:
                return "array";
        case json_type_object:
                return "object";
        }
        return "?";
}

static void check(const HostFeatures *f, DocKey *keys, size_t n) {
        struct json_object *o = host_features_to_json(f, "vmmgr.slice");

        assert_non_null(o);
        json_object_object_foreach(o, k, v) {
                const char *kind = json_kind(v);
                size_t i;

                for (i = 0; i < n && strcmp(keys[i].name, k) != 0; i++)
                        ;
                if (i == n)
                        fail_msg("host-info key \"%s\" is not in docs/host-info.md", k);
                keys[i].seen = true;
                if (strcmp(kind, "null") == 0) {
                        if (!strstr(keys[i].type, "or null"))
                                fail_msg("\"%s\" is null but documented as \"%s\"", k, keys[i].type);
                } else if (strncmp(keys[i].type, kind, strlen(kind)) != 0)
                        fail_msg("\"%s\" is a %s but documented as \"%s\"", k, kind, keys[i].type);
        }
        json_object_put(o);
}

static void test_keys_documented(void **state) {
        static DmemRegion region = { .name = "drm/0000:03:00.0/vram0", .capacity = 1 << 30 };
        HostFeatures known = {
                .mode = CG_MODE_UNIFIED,
                .unified_mount = "/sys/fs/cgroup",
                .cpu_max_runtime = TRI_YES,
                .cpu_max_runtime_v2 = TRI_YES,
                .burst_above_quota = TRI_YES,
                .burst_note = "kernel accepts burst above quota",
                .dmem = TRI_YES,
                .dmem_high = TRI_NO,
                .dmem_regions = &region,
                .n_dmem_regions = 1,
                .memory_reclaim = TRI_YES,
                .memory_reclaim_swappiness = TRI_YES,
                .psi = TRI_YES,
                .taskstats = TRI_YES,
                .task_delayacct = TRI_NO,
                .liveupdate = TRI_NO,
                .counter_reads = { .io_uring = TRI_YES, .path = KH_READ_PATH_IO_URING, .io_uring_ns = 900,
                                   .pread_ns = 1000, .note = "900 ns a read (pread: 1000 ns)" },
                .kernel_release = "6.18.0",
        };
        HostFeatures unknown = {
                .cpu_max_runtime = TRI_UNKNOWN,
                .cpu_max_runtime_v2 = TRI_UNKNOWN,
                .burst_above_quota = TRI_UNKNOWN,
                .dmem = TRI_UNKNOWN,
                .dmem_high = TRI_UNKNOWN,
                .memory_reclaim = TRI_UNKNOWN,
                .memory_reclaim_swappiness = TRI_UNKNOWN,
                .psi = TRI_UNKNOWN,
                .taskstats = TRI_UNKNOWN,
                .task_delayacct = TRI_UNKNOWN,
                .liveupdate = TRI_UNKNOWN,
                .counter_reads = { .io_uring = TRI_UNKNOWN, .path = KH_READ_PATH_PREAD },
        };
        DocKey keys[64];
        size_t n = read_doc_keys(keys, 64);

        assert_true(n >= 20);
        known.controllers[CG_CTRL_CPU] = (typeof(known.controllers[0])) { .version = CG_V2, .managed = true,
                                                                           .mount = "/sys/fs/cgroup" };
        check(&known, keys, n);
        check(&unknown, keys, n);
        for (size_t i = 0; i < n; i++)
                if (!keys[i].seen)
                        fail_msg("docs/host-info.md documents \"%s\", which host-info does not have", keys[i].name);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys_documented),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
