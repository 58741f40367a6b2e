/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Kernel model: the cgroup tree and core files (mkdir/rmdir, subtree
 * control gating, v2 thread mode, task files), process files and host
 * files, driven through the backend ops.
 */
#include "model-fixture.h"

#include "common/macros.h"

static void test_layout(void **state) {
        KModelDmemRegion regions[] = { { "drm/0000:03:00.0/vram0", 1 << 20 } };
        KModelConfig cfg = { .mode = CG_MODE_UNIFIED, .dmem_regions = regions,
                             .n_dmem_regions = 1 };
        Fx *f = fx_new(&cfg);

        assert_string_equal(f->ops->name, "model");
        assert_int_equal(f->layout.mode, CG_MODE_UNIFIED);
        assert_int_equal(f->layout.n_hier, 1);
        assert_int_equal(f->layout.hier[0].version, CG_V2);
        assert_string_equal(f->layout.hier[0].mount, "/model/cgroup2");
        assert_string_equal(f->layout.unified_mount, "/model/cgroup2");
        assert_true(f->layout.hier[0].controllers & CG_CTRL_BIT(CG_CTRL_DMEM));
        fx_expect(f, NULL, "cgroup.controllers", "cpuset cpu io memory hugetlb pids dmem\n");
        fx_free(f);

        f = fx_new_v2(false);
        assert_false(f->layout.hier[0].controllers & CG_CTRL_BIT(CG_CTRL_DMEM));
        fx_expect(f, NULL, "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
        /* the root delegates everything, like a host booted with systemd */
        fx_expect(f, NULL, "cgroup.subtree_control", "cpuset cpu io memory hugetlb pids\n");
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control",
                                  "-cpuset -cpu -io -memory -hugetlb -pids"),
                         0);
        /* an empty mask prints nothing, not even a newline */
        fx_expect(f, NULL, "cgroup.subtree_control", "");
        fx_free(f);

        KModelConfig bad = { .mode = CG_MODE_HYBRID };
        KModel *m = NULL;
        assert_int_equal(km_new(&bad, &m), -EOPNOTSUPP);
        KModelDmemRegion dup[] = { { "r", 1 }, { "r", 2 } };
        KModelConfig bad2 = { .mode = CG_MODE_UNIFIED, .dmem_regions = dup, .n_dmem_regions = 2 };
        assert_int_equal(km_new(&bad2, &m), -EINVAL);
        assert_null(m);
}

static void test_mkdir_rmdir(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t pid = km_process_new(f->m);
        static const struct {
                bool mkdir;
                const char *group;
                int r;
        } steps[] = {
                { true, "vm", -ENOENT }, /* no subtree root yet */
                { true, "", 0 },         { true, "", -EEXIST },
                { true, "vm", 0 },       { true, "vm", -EEXIST },
                { true, "vm/a/b", -ENOENT }, { true, "vm/a", 0 },
                { false, "vm", -EBUSY },     /* has a child */
                { false, "vm/x", -ENOENT },  { false, "vm/a", 0 },
                { false, "vm", 0 },          { false, "vm", -ENOENT },
                { true, "vm", 0 },
        };
        char **children = NULL;

        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                int r = steps[i].mkdir ? fx_mkdir(f, steps[i].group)
                                       : f->ops->rmdir(f->be, 0, steps[i].group);
                assert_int_equal(r, steps[i].r);
        }
        assert_int_equal(fx_mkdir(f, NULL), -EEXIST);
        /* populated: -EBUSY until the process leaves */
        assert_int_equal(fx_writef(f, "vm", "cgroup.procs", "%d", (int) pid), 0);
        assert_int_equal(f->ops->rmdir(f->be, 0, "vm"), -EBUSY);
        assert_int_equal(f->ops->rmdir(f->be, 0, ""), -EBUSY);
        assert_int_equal(fx_writef(f, NULL, "cgroup.procs", "%d", (int) pid), 0);
        assert_int_equal(fx_mkdir(f, "b"), 0);
        assert_int_equal(fx_mkdir(f, "a"), 0);
        assert_int_equal(f->ops->list_children(f->be, 0, "", &children), 0);
        assert_string_equal(children[0], "a");
        assert_string_equal(children[1], "b");
        assert_string_equal(children[2], "vm");
        assert_null(children[3]);
        for (char **c = children; *c; c++)
                free(*c);
        free(children);
        assert_int_equal(f->ops->list_children(f->be, 0, NULL, &children), 0);
        assert_string_equal(children[0], KH_DEFAULT_SUBTREE);
        assert_null(children[1]);
        free(children[0]);
        free(children);
        assert_int_equal(f->ops->rmdir(f->be, 0, "vm"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, "vm", NULL), 0);
        assert_int_equal(f->ops->exists(f->be, 0, "a", NULL), 1);
        fx_free(f);
}

/* Controller files appear in a child only when the parent enables the
 * controller; a missing file reads and writes -ENOENT. */
static void test_subtree_control_gating(void **state) {
        static const char *const cpu_files[] = { "cpu.max", "cpu.max.burst", "cpu.weight" };
        static const char *const mem_files[] = { "memory.max", "memory.high", "memory.current",
                                                  "memory.stat", "memory.events",
                                                  "memory.reclaim" };
        Fx *f = fx_new_v2(false);
        char buf[256];

        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "-cpu -memory"), 0);
        assert_int_equal(fx_mkdir(f, ""), 0);
        assert_int_equal(fx_mkdir(f, "vm"), 0);
        for (size_t i = 0; i < ARRAY_SIZE(cpu_files); i++) {
                assert_int_equal(f->ops->exists(f->be, 0, "vm", cpu_files[i]), 0);
                assert_int_equal(fx_read(f, "vm", cpu_files[i], buf, sizeof(buf)), -ENOENT);
                assert_int_equal(fx_write(f, "vm", cpu_files[i], "1000"), -ENOENT);
        }
        /* the subtree root cannot enable what its parent did not */
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "+cpu"), -ENOENT);
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "+foo"), -EINVAL);
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "cpu"), -EINVAL);
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "+dmem"), -EINVAL);
        assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "+cpu +memory"), 0);
        fx_expect(f, "", "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "+cpu"), 0);
        fx_expect(f, "", "cgroup.subtree_control", "cpu\n");
        for (size_t i = 0; i < ARRAY_SIZE(cpu_files); i++)
                assert_int_equal(f->ops->exists(f->be, 0, "vm", cpu_files[i]), 1);
        for (size_t i = 0; i < ARRAY_SIZE(mem_files); i++)
                assert_int_equal(f->ops->exists(f->be, 0, "vm", mem_files[i]), 0);
        assert_int_equal(fx_write(f, "vm", "cpu.max", "20000"), 0);
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "+memory -cpu"), 0);
        fx_expect(f, "", "cgroup.subtree_control", "memory\n");
        for (size_t i = 0; i < ARRAY_SIZE(mem_files); i++)
                assert_int_equal(f->ops->exists(f->be, 0, "vm", mem_files[i]), 1);
        /* Re-enabling gives a fresh css: the old limit is gone. */
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "+cpu"), 0);
        fx_expect(f, "vm", "cpu.max", "max 100000\n");
        /* A controller a child still distributes cannot be disabled. */
        assert_int_equal(fx_write(f, "vm", "cgroup.subtree_control", "+cpu"), 0);
        assert_int_equal(fx_write(f, "", "cgroup.subtree_control", "-cpu"), -EBUSY);
        /* root-only and non-root files */
        assert_int_equal(f->ops->exists(f->be, 0, NULL, "cgroup.type"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, NULL, "memory.current"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, NULL, "memory.stat"), 1);
        assert_int_equal(f->ops->exists(f->be, 0, "vm", "nonexistent.file"), 0);
        /* mode errors, like kernfs_fop_open() */
        assert_int_equal(fx_write(f, "vm", "cgroup.controllers", "cpu"), -EACCES);
        assert_int_equal(fx_write(f, "", "memory.current", "0"), -EACCES);
        assert_int_equal(fx_read(f, "", "memory.reclaim", buf, sizeof(buf)), -EACCES);
        fx_free(f);
}

/* No internal processes: a domain group with domain controllers enabled
 * for its children takes no processes, and one with processes cannot
 * enable them. */
static void test_no_internal_process(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t pid = km_process_new(f->m);

        fx_v2_subtree(f, "+cpu +memory");
        assert_int_equal(fx_mkdir(f, "vm"), 0);
        assert_int_equal(fx_writef(f, "", "cgroup.procs", "%d", (int) pid), -EBUSY);
        assert_int_equal(fx_writef(f, "vm", "cgroup.procs", "%d", (int) pid), 0);
        assert_int_equal(fx_write(f, "vm", "cgroup.subtree_control", "+memory"), -EBUSY);
        /* even a threaded controller: only a threaded group may enable
         * controllers while it has tasks (cgroup_vet_subtree_control_enable) */
        assert_int_equal(fx_write(f, "vm", "cgroup.subtree_control", "+cpu"), -EBUSY);
        fx_expect(f, "vm", "cgroup.type", "domain\n");
        fx_expect(f, "vm", "cgroup.events", "populated 1\nfrozen 0\n");
        fx_expect(f, "", "cgroup.events", "populated 1\nfrozen 0\n");
        assert_int_equal(fx_writef(f, "vm", "cgroup.procs", "%d", 99999), -ESRCH);
        assert_int_equal(fx_write(f, "vm", "cgroup.procs", "abc"), -EINVAL);
        assert_int_equal(fx_write(f, "vm", "cgroup.procs", "-5"), -EINVAL);
        fx_free(f);
}

/* v2 thread mode: a single thread may move only within its threaded
 * domain; cgroup.type transitions and reads. */
static void test_threaded_domain_rule(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t p1 = km_process_new(f->m), p2 = km_process_new(f->m);
        pid_t t1b = km_thread_new(f->m, p1);
        char buf[256];

        fx_v2_subtree(f, "+cpu +memory");
        fx_v2_vm(f, "vm1");
        fx_v2_vm(f, "vm2");
        fx_expect(f, "vm1", "cgroup.type", "domain threaded\n");
        fx_expect(f, "vm1/vcpus", "cgroup.type", "threaded\n");
        fx_expect(f, "", "cgroup.type", "domain\n");
        /* only cpu is available to a threaded group */
        fx_expect(f, "vm1/vcpus", "cgroup.controllers", "cpu\n");
        assert_int_equal(f->ops->exists(f->be, 0, "vm1/vcpus", "cpu.max"), 1);

        static const struct {
                const char *group, *file;
                int who; /* 0: p1, 1: t1b, 2: p2 */
                int r;
        } moves[] = {
                /* still in the root's domain: may not jump into vm1's */
                { "vm1/vcpus", "cgroup.threads", 1, -EOPNOTSUPP },
                { "vm1", "cgroup.procs", 0, 0 },
                { "vm1/vcpus", "cgroup.threads", 1, 0 },
                { "vm2/vcpus", "cgroup.threads", 1, -EOPNOTSUPP },
                { "vm1", "cgroup.threads", 1, 0 },
                { "vm1/vcpus", "cgroup.threads", 1, 0 },
                { "vm2", "cgroup.threads", 2, -EOPNOTSUPP },
                { "vm2", "cgroup.procs", 2, 0 },
                { "vm2/vcpus", "cgroup.threads", 2, 0 },
                /* moving the process moves every thread */
                { "vm2", "cgroup.procs", 1, 0 },
        };
        pid_t who[] = { p1, t1b, p2 };

        for (size_t i = 0; i < ARRAY_SIZE(moves); i++)
                assert_int_equal(fx_writef(f, moves[i].group, moves[i].file, "%d",
                                           (int) who[moves[i].who]),
                                 moves[i].r);
        /* p1 = 1000, p2 = 1001, t1b = 1002 */
        fx_expect(f, "vm2", "cgroup.threads", "1000\n1002\n");
        fx_expect(f, "vm2/vcpus", "cgroup.threads", "1001\n");
        /* cgroup.procs of a thread root covers its threaded subtree */
        fx_expect(f, "vm2", "cgroup.procs", "1000\n1001\n");
        fx_expect(f, "vm1", "cgroup.procs", "");
        assert_int_equal(fx_read(f, "vm2/vcpus", "cgroup.procs", buf, sizeof(buf)), -EOPNOTSUPP);

        /* a domain below a threaded group is invalid and hosts nothing */
        assert_int_equal(fx_mkdir(f, "vm1/vcpus/sub"), 0);
        fx_expect(f, "vm1/vcpus/sub", "cgroup.type", "domain invalid\n");
        assert_int_equal(fx_writef(f, "vm1/vcpus/sub", "cgroup.procs", "%d", (int) p1),
                         -EOPNOTSUPP);
        assert_int_equal(fx_write(f, "vm1/vcpus/sub", "cgroup.type", "threaded"), 0);
        fx_expect(f, "vm1/vcpus/sub", "cgroup.type", "threaded\n");
        assert_int_equal(fx_write(f, "vm1/vcpus/sub", "cgroup.type", "domain"), -EINVAL);

        /* a group with populated domain children cannot be a thread root */
        assert_int_equal(fx_mkdir(f, "vm3"), 0);
        assert_int_equal(fx_mkdir(f, "vm3/dom"), 0);
        assert_int_equal(fx_mkdir(f, "vm3/thr"), 0);
        assert_int_equal(fx_writef(f, "vm3/dom", "cgroup.procs", "%d", (int) p1), 0);
        assert_int_equal(fx_write(f, "vm3/thr", "cgroup.type", "threaded"), -EOPNOTSUPP);
        fx_expect(f, "vm3/thr", "cgroup.type", "domain\n");
        /* nor can a populated group become threaded */
        assert_int_equal(fx_write(f, "vm3/dom", "cgroup.type", "threaded"), -EOPNOTSUPP);
        assert_int_equal(fx_writef(f, NULL, "cgroup.procs", "%d", (int) p1), 0);
        assert_int_equal(fx_write(f, "vm3/thr", "cgroup.type", "threaded"), 0);
        fx_expect(f, "vm3", "cgroup.type", "domain threaded\n");
        fx_free(f);
}

static void test_tasks_and_schedstat(void **state) {
        Fx *f = fx_new_v2(false);
        pid_t pid = km_process_new(f->m), tid = km_thread_new(f->m, pid);
        pid_t *tids = NULL;
        size_t n = 0, len = 0;
        char buf[128];
        uint64_t stall;

        assert_int_equal(pid, 1000);
        assert_int_equal(tid, 1001);
        assert_int_equal(f->ops->list_tasks(f->be, pid, &tids, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(tids[0], pid);
        assert_int_equal(tids[1], tid);
        free(tids);
        assert_int_equal(f->ops->list_tasks(f->be, tid, &tids, &n), -ESRCH);
        fx_expect(f, NULL, "cgroup.procs", "1000\n");
        fx_expect(f, NULL, "cgroup.threads", "1000\n1001\n");

        assert_int_equal(km_thread_set_demand(f->m, tid, 250000), 0);
        assert_int_equal(km_thread_set_demand(f->m, tid, 1000001), -EINVAL);
        km_advance(f->m, 1000000);
        assert_int_equal(f->ops->read_schedstat(f->be, pid, tid, buf, sizeof(buf), &len), 0);
        assert_string_equal(buf, "250000000 0 0\n");
        assert_int_equal(len, strlen(buf));
        assert_int_equal(f->ops->read_schedstat(f->be, pid, 4242, buf, sizeof(buf), &len),
                         -ESRCH);
        assert_int_equal(f->ops->read_schedstat(f->be, tid, tid, buf, sizeof(buf), &len),
                         -ESRCH);
        assert_int_equal(f->ops->read_schedstat(f->be, pid, tid, buf, 4, &len), -E2BIG);

        /* The leader exits: the process lives on in its other thread. */
        assert_int_equal(km_thread_exit(f->m, pid), 0);
        assert_int_equal(f->ops->read_schedstat(f->be, pid, pid, buf, sizeof(buf), &len),
                         -ESRCH);
        fx_expect(f, NULL, "cgroup.procs", "1000\n");
        assert_int_equal(km_thread_new(f->m, pid), 1002);
        assert_int_equal(km_process_exit(f->m, pid), 0);
        assert_int_equal(f->ops->list_tasks(f->be, pid, &tids, &n), -ESRCH);
        assert_int_equal(km_thread_new(f->m, pid), -ESRCH);
        assert_int_equal(km_thread_exit(f->m, tid), -ESRCH);
        assert_int_equal(km_thread_reclaim_stall_usec(f->m, tid, &stall), -ESRCH);
        fx_expect(f, NULL, "cgroup.procs", "");
        fx_free(f);
}

static void test_host_files(void **state) {
        static const struct {
                bool patched;
                KHostFile which;
                const char *want;
        } cases[] = {
                { false, KHOST_FILE_OSRELEASE, "6.1.0-vmmgr-model\n" },
                { true, KHOST_FILE_OSRELEASE, "6.1.0-vmmgr-model+runtime\n" },
                { false, KHOST_FILE_TASK_DELAYACCT, "1\n" },
                { false, KHOST_FILE_PSI_CPU,
                  "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n" },
                { false, KHOST_FILE_PSI_MEMORY,
                  "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                Fx *f = fx_new_v2(cases[i].patched);
                char buf[256];
                size_t len = 0;

                assert_int_equal(f->ops->read_host_file(f->be, cases[i].which, buf, sizeof(buf),
                                                        &len),
                                 0);
                assert_string_equal(buf, cases[i].want);
                assert_int_equal(len, strlen(cases[i].want));
                assert_int_equal(f->ops->read_host_file(f->be, _KHOST_FILE_MAX, buf, sizeof(buf),
                                                        &len),
                                 -ENOENT);
                assert_int_equal(f->ops->taskstats_available(f->be), 1);
                fx_free(f);
        }
}

/* Backend contract: -E2BIG on a short buffer, -EIO past one page. */
static void test_io_limits(void **state) {
        Fx *f = fx_new_v2(false);
        char big[5000], buf[8];

        memset(big, ' ', sizeof(big));
        fx_v2_subtree(f, "+cpu");
        assert_int_equal(fx_mkdir(f, "vm"), 0);
        assert_int_equal(fx_read(f, "vm", "cpu.max", buf, sizeof(buf)), -E2BIG);
        assert_int_equal(f->ops->write(f->be, 0, "vm", "cpu.max", big, sizeof(big), 0), -EIO);
        assert_int_equal(fx_write(f, "vm", "cpu.weight", "0"), -ERANGE);
        assert_int_equal(fx_write(f, "vm", "cpu.weight", "10000"), 0);
        fx_expect(f, "vm", "cpu.weight", "10000\n");
        fx_free(f);
}

/* kh_open_model() names the subtree from the KHostConfig: a second view
 * with another name addresses a different group of the same model. */
static void test_views_share_the_model(void **state) {
        Fx *f = fx_new_v2(false);
        const KBackendOps *ops;
        void *be;
        KBackendLayout layout;

        assert_int_equal(km_backend(f->m, &ops, &be, &layout), 0);
        assert_int_equal(fx_mkdir(f, ""), 0);
        assert_int_equal(ops->mkdir(be, 0, ""), -EEXIST);
        assert_int_equal(ops->mkdir(be, 0, "x"), 0);
        assert_int_equal(f->ops->exists(f->be, 0, "x", NULL), 1);
        ops->free(be); /* frees the view, not the model */
        assert_int_equal(f->ops->exists(f->be, 0, "x", NULL), 1);
        fx_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout),
                cmocka_unit_test(test_mkdir_rmdir),
                cmocka_unit_test(test_subtree_control_gating),
                cmocka_unit_test(test_no_internal_process),
                cmocka_unit_test(test_threaded_domain_rule),
                cmocka_unit_test(test_tasks_and_schedstat),
                cmocka_unit_test(test_host_files),
                cmocka_unit_test(test_io_limits),
                cmocka_unit_test(test_views_share_the_model),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
