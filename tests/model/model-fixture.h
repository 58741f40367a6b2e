/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/model/model-fixture.h - a kernel model with its backend table, and
 * small helpers to drive it the way the front end does: through the ops,
 * with group paths relative to vmmgr's subtree (NULL = hierarchy root).
 */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/backend.h"
#include "kernel/model/kmodel.h"

#define MSEC_NS UINT64_C(1000000)

typedef struct Fx {
        KModel *m;
        const KBackendOps *ops;
        void *be;
        KBackendLayout layout;
} Fx;

static inline Fx *fx_new(const KModelConfig *cfg) {
        Fx *f = calloc(1, sizeof(Fx));

        assert_non_null(f);
        assert_int_equal(km_new(cfg, &f->m), 0);
        assert_int_equal(km_backend(f->m, &f->ops, &f->be, &f->layout), 0);
        return f;
}

static inline Fx *fx_new_v2(bool patched) {
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .patched = patched };

        return fx_new(&cfg);
}

static inline void fx_free(Fx *f) {
        f->ops->free(f->be); /* the view only: the model outlives it */
        km_free(f->m);
        free(f);
}

static inline int fx_mkdir(Fx *f, const char *group) {
        return f->ops->mkdir(f->be, 0, group);
}

static inline int fx_write_nb(Fx *f, const char *group, const char *file, const char *data,
                              int nonblock) {
        return f->ops->write(f->be, 0, group, file, data, strlen(data), nonblock);
}

static inline int fx_write(Fx *f, const char *group, const char *file, const char *data) {
        return fx_write_nb(f, group, file, data, 0);
}

static inline int fx_writef(Fx *f, const char *group, const char *file, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline int fx_writef(Fx *f, const char *group, const char *file, const char *fmt, ...) {
        char buf[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        return fx_write(f, group, file, buf);
}

static inline int fx_read(Fx *f, const char *group, const char *file, char *buf, size_t size) {
        size_t len = 0;
        int r = f->ops->read(f->be, 0, group, file, buf, size, &len);

        if (r == 0)
                assert_int_equal(len, strlen(buf));
        return r;
}

/* Reads a file and asserts its exact content. */
static inline void fx_expect(Fx *f, const char *group, const char *file, const char *want) {
        char buf[4096];

        assert_int_equal(fx_read(f, group, file, buf, sizeof(buf)), 0);
        assert_string_equal(buf, want);
}

/* The value of "key N" in a flat keyed file; fails the test if absent. */
static inline uint64_t fx_key(Fx *f, const char *group, const char *file, const char *key) {
        char buf[4096];
        size_t klen = strlen(key);

        assert_int_equal(fx_read(f, group, file, buf, sizeof(buf)), 0);
        for (char *line = buf; *line;) {
                char *nl = strchr(line, '\n');

                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        return strtoull(line + klen + 1, NULL, 10);
                if (!nl)
                        break;
                line = nl + 1;
        }
        fail_msg("key %s not in %s", key, file);
        return 0;
}

/* A single-number file. */
static inline uint64_t fx_u64(Fx *f, const char *group, const char *file) {
        char buf[256];

        assert_int_equal(fx_read(f, group, file, buf, sizeof(buf)), 0);
        return strtoull(buf, NULL, 10);
}

static inline uint64_t fx_thread_ns(Fx *f, pid_t tid) {
        uint64_t ns = 0;

        assert_int_equal(km_thread_usage_nsec(f->m, tid, &ns), 0);
        return ns;
}

/* The v2 layout the front end builds: subtree with +cpu +memory (+dmem),
 * vm-<name> with +cpu and a threaded "vcpus" child. */
static inline void fx_v2_subtree(Fx *f, const char *ctrls) {
        assert_int_equal(fx_mkdir(f, ""), 0);
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", ctrls), 0);
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", ctrls), 0);
}

static inline void fx_v2_vm(Fx *f, const char *vm) {
        char path[128];

        assert_int_equal(fx_mkdir(f, vm), 0);
        assert_int_equal(fx_write(f, vm, "cgroup.subtree_control", "+cpu"), 0);
        snprintf(path, sizeof(path), "%s/vcpus", vm);
        assert_int_equal(fx_mkdir(f, path), 0);
        assert_int_equal(fx_write(f, path, "cgroup.type", "threaded"), 0);
}

/* A new process moved into vm and its thread into vm/vcpus; returns it. */
static inline pid_t fx_v2_vcpu_process(Fx *f, const char *vm) {
        char path[128];
        pid_t pid = km_process_new(f->m);

        assert_true(pid > 0);
        assert_int_equal(fx_writef(f, vm, "cgroup.procs", "%d", (int) pid), 0);
        snprintf(path, sizeof(path), "%s/vcpus", vm);
        assert_int_equal(fx_writef(f, path, "cgroup.threads", "%d", (int) pid), 0);
        return pid;
}
