/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * unit suite: batched counter reads (kernel.h, kernel/readbatch.c).
 *
 * Real files: a temporary tree shaped like a cgroup v2 hierarchy (regular
 * files on this host's disk, read by the real backend through the same
 * fds, io_uring ring and registered slots the tick uses), holding each
 * VM's vcpus/cpu.stat, vcpus/cpu.max.runtime and memory.current.  The
 * batch reads them in one io_uring submit where io_uring is usable here
 * (otherwise those cases skip, saying why), and one pread each when the
 * switch (KH_READ_PREAD) or kernel.io_uring_disabled = 2 says so.  A
 * result is the content at the run, not at the take.  On the kernel
 * model (handles, not fds: the pread path) a group removed under its
 * reader reads -ENOENT, as kernfs's -ENODEV is mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macros.h"
#include "kernel/internal.h"
#include "kernel/model/kmodel.h"
#include "kernel/readbatch.h"
#include "tests/common/vtest.h"

#define N_VMS 8

typedef struct Fixture {
        char root[256];
        VmId vm[N_VMS];
} Fixture;

static int run(const char *cmd) {
        return system(cmd);
}

static void write_text(const Fixture *f, const char *rel, const char *text) {
        char p[512];
        FILE *o;

        snprintf(p, sizeof(p), "%s/%s", f->root, rel);
        o = fopen(p, "we");
        assert_non_null(o);
        assert_int_equal(fputs(text, o) >= 0, 1);
        assert_int_equal(fclose(o), 0);
}

/* The VM's counters: usage, runtime and memory.current from one seed. */
static void write_counters(const Fixture *f, size_t i, uint64_t seed) {
        char rel[256], text[512];

        snprintf(rel, sizeof(rel), "vmmgr.slice/vm-%s/vcpus/cpu.stat", f->vm[i].str);
        snprintf(text, sizeof(text),
                 "usage_usec %" PRIu64 "\nuser_usec 1\nsystem_usec 2\nnr_periods 3\nnr_throttled %" PRIu64
                 "\nthrottled_usec 5\nnr_bursts 0\nburst_usec 0\n",
                 seed * 1000 + i, seed + i);
        write_text(f, rel, text);
        snprintf(rel, sizeof(rel), "vmmgr.slice/vm-%s/vcpus/cpu.max.runtime", f->vm[i].str);
        snprintf(text, sizeof(text), "%" PRIu64 "\n", seed * 10 + i);
        write_text(f, rel, text);
        snprintf(rel, sizeof(rel), "vmmgr.slice/vm-%s/memory.current", f->vm[i].str);
        snprintf(text, sizeof(text), "%" PRIu64 "\n", (seed + i) * 4096);
        write_text(f, rel, text);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char cmd[1024];

        if (!f)
                return -1;
        snprintf(f->root, sizeof(f->root), "/tmp/vmmgr-readbatch-XXXXXX");
        if (!mkdtemp(f->root))
                return -1;
        snprintf(cmd, sizeof(cmd), "printf 'usage_usec 0\\n' > %s/cpu.stat && mkdir -p %s/vmmgr.slice && "
                 "printf 'usage_usec 0\\n' > %s/vmmgr.slice/cpu.stat", f->root, f->root, f->root);
        if (run(cmd) != 0)
                return -1;
        for (size_t i = 0; i < N_VMS; i++) {
                char id[64];

                snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zx", i + 1);
                if (vm_id_parse(id, &f->vm[i]) < 0)
                        return -1;
                snprintf(cmd, sizeof(cmd), "mkdir -p %s/vmmgr.slice/vm-%s/vcpus", f->root, f->vm[i].str);
                if (run(cmd) != 0)
                        return -1;
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->root);
        run(cmd);
        free(f);
        return 0;
}

/* kernel.io_uring_disabled as the fake host reports it ("" : the real one). */
static const char *fake_disabled = "";
static KBackendOps fake_ops;

static int fake_read_host_file(void *be, KHostFile which, char *buf, size_t size, size_t *ret_len) {
        if (which == KHOST_FILE_IO_URING_DISABLED && fake_disabled[0]) {
                snprintf(buf, size, "%s", fake_disabled);
                if (ret_len)
                        *ret_len = strlen(buf);
                return 0;
        }
        return real_backend_ops.read_host_file(be, which, buf, size, ret_len);
}

/* The real backend over the temporary tree: one v2 hierarchy with cpu
 * and memory. */
static KHost *fake_host(Fixture *f) {
        KBackendLayout l = { .mode = CG_MODE_UNIFIED, .n_hier = 1 };
        KHost *h = NULL;
        void *be = NULL;

        fake_ops = real_backend_ops;
        fake_ops.read_host_file = fake_read_host_file;
        l.hier[0].version = CG_V2;
        l.hier[0].controllers = CG_CTRL_BIT(CG_CTRL_CPU) | CG_CTRL_BIT(CG_CTRL_MEMORY);
        snprintf(l.hier[0].mount, sizeof(l.hier[0].mount), "%s", f->root);
        assert_int_equal(real_backend_new(&l, "vmmgr.slice", &be), 0);
        assert_int_equal(kh_new_from_backend(&fake_ops, be, &l, NULL, &h), 0);
        return h;
}

typedef struct Readers {
        KhCpuStatReader *cpu[N_VMS];
        KhMemCurrentReader *mem[N_VMS];
} Readers;

static void readers_open(KHost *h, Fixture *f, Readers *r) {
        for (size_t i = 0; i < N_VMS; i++) {
                assert_int_equal(kh_cpu_stat_reader_open(h, &f->vm[i], CG_ROLE_VCPUS, &r->cpu[i]), 0);
                assert_int_equal(kh_cpu_stat_reader_open_runtime(r->cpu[i]), 0);
                assert_int_equal(kh_mem_current_reader_open(h, &f->vm[i], &r->mem[i]), 0);
        }
}

static void readers_close(Readers *r) {
        for (size_t i = 0; i < N_VMS; i++) {
                r->cpu[i] = kh_cpu_stat_reader_free(r->cpu[i]);
                r->mem[i] = kh_mem_current_reader_free(r->mem[i]);
        }
}

static void queue_all(Readers *r) {
        for (size_t i = 0; i < N_VMS; i++) {
                kh_cpu_stat_reader_queue(r->cpu[i], KH_CPU_READ_STAT | KH_CPU_READ_RUNTIME);
                kh_mem_current_reader_queue(r->mem[i]);
        }
}

/* Every VM reads the counters written with `seed`. */
static void expect_counters(Readers *r, uint64_t seed) {
        for (size_t i = 0; i < N_VMS; i++) {
                CpuStat st;
                uint64_t runtime, current;

                assert_int_equal(kh_cpu_stat_reader_read(r->cpu[i], &st), 0);
                assert_true(st.have & CPU_STAT_USAGE);
                assert_int_equal(st.usage_usec, seed * 1000 + i);
                assert_int_equal(st.nr_throttled, seed + i);
                assert_int_equal(kh_cpu_stat_reader_read_runtime(r->cpu[i], &runtime), 0);
                assert_int_equal(runtime, seed * 10 + i);
                assert_int_equal(kh_mem_current_reader_read(r->mem[i], &current), 0);
                assert_int_equal(current, (seed + i) * 4096);
        }
}

/* A run of 3 reads per VM; returns the syscalls it made. */
static uint64_t run_batch(KhReadBatch *b, Readers *r) {
        KhReadBatchStats s0, s1;

        kh_read_batch_stats(b, &s0);
        queue_all(r);
        assert_int_equal(kh_read_batch_run(b), 3 * N_VMS);
        kh_read_batch_stats(b, &s1);
        assert_int_equal(s1.reads - s0.reads, 3 * N_VMS);
        assert_int_equal(s1.ring_errors, 0);
        return s1.syscalls - s0.syscalls;
}

static void test_io_uring_one_submit(void **state) {
        Fixture *f = *state;
        _cleanup_khost_ KHost *h = fake_host(f);
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KhReadBatchStats st;
        KhReadProbe p;
        Readers r = { 0 };

        assert_int_equal(kh_read_batch_new(h, KH_READ_IO_URING, &b, &p), 0);
        assert_ptr_equal(kh_read_batch(h), b);
        assert_int_equal(kh_read_batch_new(h, KH_READ_IO_URING, &(KhReadBatch *) { NULL }, NULL), -EBUSY);
        if (p.io_uring != TRI_YES) {
                vt_skip("io_uring is not usable for reads here: %s", p.note);
                return;
        }
        assert_int_equal(kh_read_batch_path(b), KH_READ_PATH_IO_URING);
        assert_true(p.io_uring_ns > 0 && p.pread_ns > 0);
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 1);
        readers_open(h, f, &r);
        kh_read_batch_stats(b, &st);
        assert_int_equal(st.unregistered, 0); /* every file has a ring slot */

        /* 24 reads: one io_uring_enter, nothing left to wait for. */
        assert_int_equal(run_batch(b, &r), 1);
        kh_read_batch_stats(b, &st);
        assert_int_equal(st.waits, 0);
        /* What the run read is what is taken, whatever the files say by
         * then. */
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 2);
        expect_counters(&r, 1);
        /* Taken once: the next read reads afresh. */
        expect_counters(&r, 2);

        /* Results nobody took are dropped by a discard. */
        assert_int_equal(run_batch(b, &r), 1);
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 3);
        kh_read_batch_discard(b);
        expect_counters(&r, 3);

        /* A reader freed between its queueing and the run is not read. */
        queue_all(&r);
        r.cpu[0] = kh_cpu_stat_reader_free(r.cpu[0]);
        r.mem[0] = kh_mem_current_reader_free(r.mem[0]);
        assert_int_equal(kh_read_batch_run(b), 3 * N_VMS);
        kh_read_batch_discard(b);
        readers_close(&r);
}

static void test_switch_forces_pread(void **state) {
        Fixture *f = *state;
        _cleanup_khost_ KHost *h = fake_host(f);
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KhReadProbe p;
        Readers r = { 0 };

        assert_int_equal(kh_read_batch_new(h, KH_READ_PREAD, &b, &p), 0);
        assert_int_equal(kh_read_batch_path(b), KH_READ_PATH_PREAD);
        assert_int_equal(p.path, KH_READ_PATH_PREAD);
        assert_non_null(strstr(p.note, "switched off"));
        assert_int_equal(kh_read_batch_set_path(b, KH_READ_PATH_IO_URING), -EOPNOTSUPP);
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 5);
        readers_open(h, f, &r);
        /* One pread per read, the same answers. */
        assert_int_equal(run_batch(b, &r), 3 * N_VMS);
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 6);
        expect_counters(&r, 5);
        expect_counters(&r, 6);
        readers_close(&r);
}

static void test_set_path_both_ways(void **state) {
        Fixture *f = *state;
        _cleanup_khost_ KHost *h = fake_host(f);
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KhReadProbe p;
        Readers r = { 0 };

        assert_int_equal(kh_read_batch_new(h, KH_READ_IO_URING, &b, &p), 0);
        if (p.io_uring != TRI_YES) {
                vt_skip("io_uring is not usable for reads here: %s", p.note);
                return;
        }
        for (size_t i = 0; i < N_VMS; i++)
                write_counters(f, i, 7);
        readers_open(h, f, &r);
        assert_int_equal(kh_read_batch_set_path(b, KH_READ_PATH_PREAD), 0);
        assert_int_equal(run_batch(b, &r), 3 * N_VMS);
        expect_counters(&r, 7);
        assert_int_equal(kh_read_batch_set_path(b, KH_READ_PATH_IO_URING), 0);
        assert_int_equal(run_batch(b, &r), 1);
        expect_counters(&r, 7);
        /* Not between a queue and its run. */
        queue_all(&r);
        assert_int_equal(kh_read_batch_set_path(b, KH_READ_PATH_PREAD), -EBUSY);
        kh_read_batch_discard(b);
        /* Freed before its readers: they read on their own. */
        b = kh_read_batch_free(b);
        assert_null(kh_read_batch(h));
        queue_all(&r);
        expect_counters(&r, 7);
        readers_close(&r);
}

static void test_io_uring_disabled_sysctl(void **state) {
        Fixture *f = *state;
        _cleanup_khost_ KHost *h = fake_host(f);
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KhReadProbe p;
        int level = -1;

        assert_int_equal(kh_io_uring_disabled_parse("0\n", &level), 0);
        assert_int_equal(level, 0);
        assert_int_equal(kh_io_uring_disabled_parse("2", &level), 0);
        assert_int_equal(level, 2);
        assert_int_equal(kh_io_uring_disabled_parse("3\n", &level), -EBADMSG);
        assert_int_equal(kh_io_uring_disabled_parse("", &level), -EBADMSG);
        assert_int_equal(kh_io_uring_disabled_parse("1 \n", &level), -EBADMSG);
        assert_int_equal(kh_io_uring_disabled_parse("x", &level), -EBADMSG);

        /* Disabled by the kernel: pread even when io_uring is asked for. */
        fake_disabled = "2\n";
        assert_int_equal(kh_read_probe(h, KH_READ_IO_URING, &p), 0);
        assert_int_equal(p.io_uring, TRI_NO);
        assert_int_equal(p.path, KH_READ_PATH_PREAD);
        assert_string_equal(p.note, "kernel.io_uring_disabled = 2");
        assert_int_equal(kh_read_batch_new(h, KH_READ_AUTO, &b, &p), 0);
        assert_int_equal(kh_read_batch_path(b), KH_READ_PATH_PREAD);
        assert_int_equal(kh_read_batch_set_path(b, KH_READ_PATH_IO_URING), -EOPNOTSUPP);
        fake_disabled = "";
}

/* The model's handles: the pread path, and a removed group reads -ENOENT. */
static void test_model_group_removed(void **state) {
        _cleanup_kmodel_ KModel *m = NULL;
        _cleanup_khost_ KHost *h = NULL;
        _cleanup_read_batch_ KhReadBatch *b = NULL;
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .patched = true };
        KhCpuStatReader *rd = NULL;
        KhReadProbe p;
        CpuStat st;
        uint64_t runtime;
        VmId vm;

        assert_int_equal(vm_id_parse("11111111-2222-4333-8444-555555555555", &vm), 0);
        assert_int_equal(km_new(&cfg, &m), 0);
        assert_int_equal(kh_open_model(m, NULL, &h), 0);
        assert_int_equal(kh_subtree_setup(h), 0);
        assert_int_equal(kh_vm_create(h, &vm), 0);
        assert_int_equal(kh_read_batch_new(h, KH_READ_AUTO, &b, &p), 0);
        assert_int_equal(p.io_uring, TRI_NO);
        assert_int_equal(kh_read_batch_path(b), KH_READ_PATH_PREAD);
        assert_int_equal(kh_cpu_stat_reader_open(h, &vm, CG_ROLE_VCPUS, &rd), 0);
        assert_int_equal(kh_cpu_stat_reader_open_runtime(rd), 0);
        kh_cpu_stat_reader_queue(rd, KH_CPU_READ_STAT | KH_CPU_READ_RUNTIME);
        assert_int_equal(kh_read_batch_run(b), 2);
        assert_int_equal(kh_cpu_stat_reader_read(rd, &st), 0);
        assert_int_equal(kh_cpu_stat_reader_read_runtime(rd, &runtime), 0);
        kh_read_batch_discard(b);

        assert_int_equal(kh_vm_remove(h, &vm), 0);
        kh_cpu_stat_reader_queue(rd, KH_CPU_READ_STAT | KH_CPU_READ_RUNTIME);
        assert_int_equal(kh_read_batch_run(b), 2);
        assert_int_equal(kh_cpu_stat_reader_read(rd, &st), -ENOENT);
        assert_int_equal(kh_cpu_stat_reader_read_runtime(rd, &runtime), -ENOENT);
        kh_read_batch_discard(b);
        /* and re-created under the same name: still the old, gone files */
        assert_int_equal(kh_vm_create(h, &vm), 0);
        assert_int_equal(kh_cpu_stat_reader_read(rd, &st), -ENOENT);
        kh_cpu_stat_reader_free(rd);
        /* A stock kernel has no cpu.max.runtime to keep open. */
        {
                _cleanup_kmodel_ KModel *m2 = NULL;
                _cleanup_khost_ KHost *h2 = NULL;
                KModelConfig stock = { .mode = CG_MODE_UNIFIED };

                assert_int_equal(km_new(&stock, &m2), 0);
                assert_int_equal(kh_open_model(m2, NULL, &h2), 0);
                assert_int_equal(kh_subtree_setup(h2), 0);
                assert_int_equal(kh_vm_create(h2, &vm), 0);
                assert_int_equal(kh_cpu_stat_reader_open(h2, &vm, CG_ROLE_VCPUS, &rd), 0);
                assert_int_equal(kh_cpu_stat_reader_open_runtime(rd), -EOPNOTSUPP);
                assert_int_equal(kh_cpu_stat_reader_read_runtime(rd, &runtime), -EOPNOTSUPP);
                kh_cpu_stat_reader_free(rd);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_io_uring_one_submit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_switch_forces_pread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_set_path_both_ways, setup, teardown),
                cmocka_unit_test_setup_teardown(test_io_uring_disabled_sysctl, setup, teardown),
                cmocka_unit_test(test_model_group_removed),
        };
        return vt_run_group_tests(tests, NULL, NULL);
}
