/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A VM in libvirt's groups (kh_vm_set_foreign), on the kernel model: the
 * layout libvirt builds (machine/qemu-1-web.libvirt-qemu/{vcpu0,vcpu1,
 * emulator,iothread1}) is made through the backend as libvirt would, then
 * the front end must find the domain from the QEMU's main thread, read
 * the threads by role from the children, refuse to create, remove or move
 * anything there, and put the credit bank's bandwidth on the domain
 * group, where it holds every thread of the domain together.  On cgroup
 * v1 (cpu,cpuacct) and v2 (threaded per-thread groups).
 */
#include "model-fixture.h"

#include "common/macros.h"
#include "kernel/kernel.h"

#define DOMAIN "machine/qemu-1-web.libvirt-qemu"
#define UUID "6a3b1f9e-2c4d-4e5f-8a7b-9c0d1e2f3a4b"

typedef struct World {
        Fx *f;
        KHost *h;
        VmId id;
        pid_t emu, vcpu[2], io;
} World;

/* libvirt's part: groups and placement, through the backend directly. */
static void libvirt_builds(World *w, bool v2) {
        static const char *const children[] = { "vcpu0", "vcpu1", "emulator", "iothread1" };
        Fx *f = w->f;
        char path[256];

        if (v2)
                assert_int_equal(fx_write(f, NULL, "cgroup.subtree_control", "+cpu +memory"), 0);
        assert_int_equal(fx_mkdir(f, "/machine"), 0);
        if (v2)
                assert_int_equal(fx_write(f, "/machine", "cgroup.subtree_control", "+cpu +memory"), 0);
        assert_int_equal(fx_mkdir(f, "/" DOMAIN), 0);
        if (v2)
                assert_int_equal(fx_write(f, "/" DOMAIN, "cgroup.subtree_control", "+cpu"), 0);
        for (size_t i = 0; i < ARRAY_SIZE(children); i++) {
                snprintf(path, sizeof(path), "/" DOMAIN "/%s", children[i]);
                assert_int_equal(fx_mkdir(f, path), 0);
                if (v2)
                        assert_int_equal(fx_write(f, path, "cgroup.type", "threaded"), 0);
        }
        w->emu = km_process_new(f->m);
        w->vcpu[0] = km_thread_new(f->m, w->emu);
        w->vcpu[1] = km_thread_new(f->m, w->emu);
        w->io = km_thread_new(f->m, w->emu);
        if (v2)
                assert_int_equal(fx_writef(f, "/" DOMAIN, "cgroup.procs", "%d", (int) w->emu), 0);
#define PLACE(group, tid)                                                                                              \
        assert_int_equal(fx_writef(f, "/" DOMAIN "/" group, v2 ? "cgroup.threads" : "tasks", "%d", (int) (tid)), 0)
        PLACE("emulator", w->emu);
        PLACE("vcpu0", w->vcpu[0]);
        PLACE("vcpu1", w->vcpu[1]);
        PLACE("iothread1", w->io);
#undef PLACE
}

static World *world_new(bool v2) {
        KModelConfig cfg = { .mode = v2 ? CG_MODE_UNIFIED : CG_MODE_LEGACY };
        World *w = calloc(1, sizeof(World));

        assert_non_null(w);
        w->f = fx_new(&cfg);
        assert_int_equal(kh_open_model(w->f->m, NULL, &w->h), 0);
        assert_int_equal(vm_id_parse(UUID, &w->id), 0);
        libvirt_builds(w, v2);
        return w;
}

static void world_free(World *w) {
        kh_free(w->h);
        fx_free(w->f);
        free(w);
}

static bool has(const pid_t *l, size_t n, pid_t p) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == p)
                        return true;
        return false;
}

static void check_layout(bool v2) {
        World *w = world_new(v2);
        char group[CG_PATH_MAX];
        pid_t *l = NULL;
        size_t n = 0;

        /* Where libvirt put QEMU's main thread: the domain is its parent. */
        assert_int_equal(kh_thread_group(w->h, CG_CTRL_CPU, w->emu, group, sizeof(group)), 0);
        assert_string_equal(group, DOMAIN "/emulator");
        assert_int_equal(kh_thread_group(w->h, CG_CTRL_CPU, w->vcpu[1], group, sizeof(group)), 0);
        assert_string_equal(group, DOMAIN "/vcpu1");
        assert_int_equal(kh_thread_group(w->h, CG_CTRL_CPU, 999999, group, sizeof(group)), -ESRCH);

        assert_null(kh_vm_foreign_group(w->h, &w->id));
        assert_int_equal(kh_vm_set_foreign(w->h, &w->id, DOMAIN), 0);
        assert_string_equal(kh_vm_foreign_group(w->h, &w->id), DOMAIN);
        assert_int_equal(kh_vm_exists(w->h, &w->id), 1);

        assert_int_equal(kh_vm_threads(w->h, &w->id, CG_ROLE_VCPUS, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_true(has(l, n, w->vcpu[0]) && has(l, n, w->vcpu[1]));
        free(l);
        assert_int_equal(kh_vm_threads(w->h, &w->id, CG_ROLE_EMULATOR, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0], w->emu);
        free(l);
        assert_int_equal(kh_vm_threads(w->h, &w->id, CG_ROLE_IO, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0], w->io);
        free(l);

        /* libvirt's groups are libvirt's. */
        assert_int_equal(kh_vm_create(w->h, &w->id), -EPERM);
        assert_int_equal(kh_vm_remove(w->h, &w->id), -EPERM);
        assert_int_equal(kh_vm_attach_process(w->h, &w->id, w->emu), -EPERM);
        assert_int_equal(kh_vm_attach_thread(w->h, &w->id, CG_ROLE_VCPUS, w->vcpu[0]), -EPERM);
        assert_int_equal(kh_thread_group(w->h, CG_CTRL_CPU, w->vcpu[0], group, sizeof(group)), 0);
        assert_string_equal(group, DOMAIN "/vcpu0");
        world_free(w);
}

static void test_layout_v1(void **state) {
        (void) state;
        check_layout(false);
}

static void test_layout_v2(void **state) {
        (void) state;
        check_layout(true);
}

/* Paths that are not a libvirt domain are refused before anything uses them. */
static void test_refused_paths(void **state) {
        World *w = world_new(false);
        static const char *const bad[] = {
                "",          "/machine", "machine/../x", "machine//x", "vmmgr.slice", "vmmgr.slice/vm-x", "machine/a b",
                "machine/.."
        };

        (void) state;
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                assert_int_equal(kh_vm_set_foreign(w->h, &w->id, bad[i]), -EINVAL);
        assert_null(kh_vm_foreign_group(w->h, &w->id));
        /* systemd's escaped scope names are fine. */
        assert_int_equal(kh_vm_set_foreign(w->h, &w->id, "machine.slice/machine-qemu\\x2d1\\x2dweb.scope/libvirt"), 0);
        assert_int_equal(kh_vm_forget_foreign(w->h, &w->id), 0);
        assert_int_equal(kh_vm_forget_foreign(w->h, &w->id), -ENOENT);
        world_free(w);
}

/* The bank's bandwidth goes on the domain group and holds all its
 * threads together; usage is read there too. */
static void check_bandwidth(bool v2) {
        World *w = world_new(v2);
        CpuBandwidth bw = { .period_usec = 100000, .quota_usec = 50000 }, got;
        pid_t all[4] = { w->emu, w->vcpu[0], w->vcpu[1], w->io };
        uint64_t before = 0, total = 0, ns;
        CpuStat st;

        assert_int_equal(kh_vm_set_foreign(w->h, &w->id, DOMAIN), 0);
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                assert_int_equal(km_thread_set_demand(w->f->m, all[i], 1000000), 0);
        assert_true(kh_cpu_set_bandwidth(w->h, &w->id, CG_ROLE_VCPUS, &bw, NULL) >= 0);
        assert_int_equal(kh_cpu_get_bandwidth(w->h, &w->id, CG_ROLE_VM, &got), 0);
        assert_int_equal(got.quota_usec, 50000);
        if (v2)
                fx_expect(w->f, "/" DOMAIN, "cpu.max", "50000 100000\n");
        else
                assert_int_equal(fx_u64(w->f, "/" DOMAIN, "cpu.cfs_quota_us"), 50000);
        /* The I/O role has no group of its own to write. */
        assert_int_equal(kh_cpu_set_bandwidth(w->h, &w->id, CG_ROLE_IO, &bw, NULL), -EOPNOTSUPP);

        assert_int_equal(kh_cpu_read_stat(w->h, &w->id, CG_ROLE_VCPUS, &st), 0);
        before = st.usage_usec;
        km_advance(w->f->m, 2000000);
        for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
                assert_int_equal(km_thread_usage_nsec(w->f->m, all[i], &ns), 0);
                total += ns / 1000;
        }
        /* Four threads that would each run 100 %, held at half a CPU. */
        assert_in_range(total, 950000, 1050000);
        assert_int_equal(kh_cpu_read_stat(w->h, &w->id, CG_ROLE_VCPUS, &st), 0);
        assert_in_range(st.usage_usec - before, total - 20000, total + 20000);
        world_free(w);
}

static void test_bandwidth_v1(void **state) {
        (void) state;
        check_bandwidth(false);
}

static void test_bandwidth_v2(void **state) {
        (void) state;
        check_bandwidth(true);
}

/* Forgetting a foreign VM makes the id an ordinary one again: its own
 * groups under vmmgr's subtree, libvirt's untouched. */
static void test_forget(void **state) {
        World *w = world_new(false);
        char group[CG_PATH_MAX];

        (void) state;
        assert_int_equal(kh_vm_set_foreign(w->h, &w->id, DOMAIN), 0);
        assert_int_equal(kh_vm_forget_foreign(w->h, &w->id), 0);
        assert_int_equal(kh_subtree_setup(w->h), 0);
        assert_true(kh_vm_create(w->h, &w->id) >= 0);
        assert_int_equal(kh_thread_group(w->h, CG_CTRL_CPU, w->vcpu[0], group, sizeof(group)), 0);
        assert_string_equal(group, DOMAIN "/vcpu0");
        assert_int_equal(kh_vm_remove(w->h, &w->id), 0);
        assert_int_equal(w->f->ops->exists(w->f->be, 0, "/" DOMAIN "/vcpu0", NULL), 1);
        world_free(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout_v1),     cmocka_unit_test(test_layout_v2),
                cmocka_unit_test(test_refused_paths), cmocka_unit_test(test_bandwidth_v1),
                cmocka_unit_test(test_bandwidth_v2),  cmocka_unit_test(test_forget),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
