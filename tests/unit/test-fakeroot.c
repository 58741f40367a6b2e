/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fakeroot suite: file access confinement and the group layout, in a
 * temporary directory tree shaped like a v1 cgroupfs.  Plain directories
 * cannot act like a kernel (no cgroup.type, no validation), so this tests
 * paths and layout only; behaviour is tested on the model and on real
 * kernels.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macros.h"
#include "kernel/cgfs.h"
#include "kernel/internal.h"

typedef struct Fixture {
        char root[256];
        int fd;
} Fixture;

static int run(const char *cmd) {
        return system(cmd);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char cmd[512];

        if (!f)
                return -1;
        snprintf(f->root, sizeof(f->root), "/tmp/vmmgr-fakeroot-XXXXXX");
        if (!mkdtemp(f->root))
                return -1;
        snprintf(cmd, sizeof(cmd),
                 "mkdir -p %1$s/cpu %1$s/outside && echo secret > %1$s/outside/secret && "
                 "ln -s ../outside %1$s/cpu/evil && ln -s /etc %1$s/cpu/etc && "
                 "printf '12345\\n' > %1$s/cpu/value",
                 f->root);
        if (run(cmd) != 0)
                return -1;
        snprintf(cmd, sizeof(cmd), "%s/cpu", f->root);
        f->fd = open(cmd, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (f->fd < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[512];

        close(f->fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->root);
        run(cmd);
        free(f);
        return 0;
}

static void test_path_validation(void **state) {
        assert_true(cgfs_path_is_safe("vmmgr.slice/vm-x/vcpus/cpu.max"));
        assert_false(cgfs_path_is_safe("../x"));
        assert_false(cgfs_path_is_safe("a/../b"));
        assert_false(cgfs_path_is_safe("/etc/passwd"));
        assert_false(cgfs_path_is_safe("a//b"));
        assert_false(cgfs_path_is_safe("a/"));
        assert_false(cgfs_path_is_safe(""));
        assert_false(cgfs_path_is_safe("a/./b"));
        assert_false(cgfs_path_is_safe("a b"));
        assert_false(cgfs_path_is_safe(NULL));
}

static void test_no_escape(void **state) {
        Fixture *f = *state;
        char buf[64];
        int r;

        assert_int_equal(cgfs_read(f->fd, "value", buf, sizeof(buf), NULL), 0);
        assert_string_equal(buf, "12345\n");
        /* A symlink anywhere on the path is refused, not followed. */
        r = cgfs_read(f->fd, "evil/secret", buf, sizeof(buf), NULL);
        assert_true(r == -ELOOP || r == -EXDEV || r == -ENOTDIR);
        r = cgfs_read(f->fd, "etc/hostname", buf, sizeof(buf), NULL);
        assert_true(r == -ELOOP || r == -EXDEV || r == -ENOTDIR);
        assert_int_equal(cgfs_read(f->fd, "../outside/secret", buf, sizeof(buf), NULL), -EINVAL);
        r = cgfs_mkdir(f->fd, "evil/x");
        assert_true(r == -ELOOP || r == -EXDEV || r == -ENOTDIR);
        r = cgfs_write(f->fd, "evil/secret", "x", 1, false);
        assert_true(r == -ELOOP || r == -EXDEV || r == -ENOTDIR);
        /* The secret is untouched. */
        char path[300], content[32] = { 0 };
        snprintf(path, sizeof(path), "%s/outside/secret", f->root);
        FILE *fp = fopen(path, "re");
        assert_non_null(fp);
        assert_non_null(fgets(content, sizeof(content), fp));
        fclose(fp);
        assert_string_equal(content, "secret\n");
}

static void test_read_too_big(void **state) {
        Fixture *f = *state;
        char buf[4];

        assert_int_equal(cgfs_read(f->fd, "value", buf, sizeof(buf), NULL), -E2BIG);
        assert_int_equal(cgfs_read(f->fd, "missing", buf, sizeof(buf), NULL), -ENOENT);
}

static KHost *fake_v1_host(Fixture *f) {
        KBackendLayout l = { .mode = CG_MODE_LEGACY, .n_hier = 1 };
        KHost *h = NULL;
        void *be = NULL;

        l.hier[0].version = CG_V1;
        l.hier[0].controllers = CG_CTRL_BIT(CG_CTRL_CPU);
        snprintf(l.hier[0].mount, sizeof(l.hier[0].mount), "%s/cpu", f->root);
        assert_int_equal(real_backend_new(&l, "vmmgr.slice", &be), 0);
        assert_int_equal(kh_new_from_backend(&real_backend_ops, be, &l, NULL, &h), 0);
        return h;
}

static bool is_dir(const Fixture *f, const char *rel) {
        char p[512];
        struct stat st;

        snprintf(p, sizeof(p), "%s/cpu/%s", f->root, rel);
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_layout_v1(void **state) {
        Fixture *f = *state;
        _cleanup_khost_ KHost *h = fake_v1_host(f);
        VmId vm, vm2;
        VmId *list = NULL;
        size_t n;

        assert_int_equal(vm_id_parse("6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60", &vm), 0);
        assert_int_equal(vm_id_parse("00000000-0000-4000-8000-000000000001", &vm2), 0);
        assert_true(kh_manages(h, CG_CTRL_CPU));
        assert_false(kh_manages(h, CG_CTRL_MEMORY));
        assert_int_equal(kh_subtree_setup(h), 0);
        assert_true(is_dir(f, "vmmgr.slice"));

        assert_int_equal(kh_vm_exists(h, &vm), 0);
        assert_int_equal(kh_vm_create(h, &vm), 0);  /* created */
        assert_int_equal(kh_vm_create(h, &vm), 1);  /* adopted: all there */
        assert_int_equal(kh_vm_exists(h, &vm), 1);
        assert_true(is_dir(f, "vmmgr.slice/vm-6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60/vcpus"));
        assert_true(is_dir(f, "vmmgr.slice/vm-6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60/emulator"));
        assert_true(is_dir(f, "vmmgr.slice/vm-6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60/io"));
        assert_int_equal(kh_vm_create(h, &vm2), 0);

        /* Foreign and malformed names under the subtree are not VMs. */
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 "mkdir %1$s/cpu/vmmgr.slice/other %1$s/cpu/vmmgr.slice/vm-not-a-uuid "
                 "%1$s/cpu/vmmgr.slice/vm-6A1D4A5E-0F3B-4C2A-9E7D-1B2C3D4E5F60",
                 f->root);
        assert_int_equal(run(cmd), 0);
        assert_int_equal(kh_vm_list(h, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_true((strcmp(list[0].str, vm.str) == 0 && strcmp(list[1].str, vm2.str) == 0) ||
                    (strcmp(list[1].str, vm.str) == 0 && strcmp(list[0].str, vm2.str) == 0));
        free(list);

        assert_int_equal(kh_vm_remove(h, &vm), 0);
        assert_false(is_dir(f, "vmmgr.slice/vm-6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60"));
        assert_int_equal(kh_vm_remove(h, &vm), 0); /* already gone: fine */
        /* The subtree is not empty (vm2 and foreign groups): refused. */
        assert_int_not_equal(kh_subtree_remove(h), 0);
}

static void test_bad_subtree_name(void **state) {
        Fixture *f = *state;
        KBackendLayout l = { .mode = CG_MODE_LEGACY, .n_hier = 1 };
        void *be = NULL;

        l.hier[0].version = CG_V1;
        l.hier[0].controllers = CG_CTRL_BIT(CG_CTRL_CPU);
        snprintf(l.hier[0].mount, sizeof(l.hier[0].mount), "%s/cpu", f->root);
        assert_int_equal(real_backend_new(&l, "../escape", &be), -EINVAL);
        assert_int_equal(real_backend_new(&l, "a/b", &be), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_path_validation),
                cmocka_unit_test_setup_teardown(test_no_escape, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_too_big, setup, teardown),
                cmocka_unit_test_setup_teardown(test_layout_v1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_subtree_name, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
