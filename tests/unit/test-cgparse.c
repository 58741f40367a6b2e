/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: kernel file parsers and formatters, with hostile content. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/cgparse.h"

static void test_u64_or_max(void **state) {
        uint64_t v;

        assert_int_equal(cg_parse_u64_or_max("max\n", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(cg_parse_u64_or_max("1073741824\n", &v), 0);
        assert_true(v == 1073741824);
        assert_int_equal(cg_parse_u64_or_max("12", &v), -EBADMSG);          /* truncated: no \n */
        assert_int_equal(cg_parse_u64_or_max("\n", &v), -EBADMSG);
        assert_int_equal(cg_parse_u64_or_max("", &v), -EBADMSG);
        assert_int_equal(cg_parse_u64_or_max("1\n2\n", &v), -EBADMSG);
        assert_int_equal(cg_parse_u64_or_max("abc\n", &v), -EBADMSG);
        assert_int_equal(cg_parse_u64_or_max("99999999999999999999\n", &v), -ERANGE);
        assert_int_equal(cg_parse_u64_or_max("-1\n", &v), -EBADMSG);
}

static void test_meminfo(void **state) {
        uint64_t total, avail;

        assert_int_equal(cg_parse_meminfo("MemTotal:       24562660 kB\nMemFree:         1000 kB\n"
                                          "MemAvailable:   20000000 kB\nBuffers:  12 kB\n",
                                          &total, &avail),
                         0);
        assert_true(total == UINT64_C(24562660) * 1024 && avail == UINT64_C(20000000) * 1024);
        /* Missing, truncated, doubled, unit-less, over total, overflowing. */
        assert_int_equal(cg_parse_meminfo("MemTotal: 10 kB\n", &total, &avail), -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: 10 kB\nMemAvailable: 5 kB", &total, &avail), -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: 10 kB\nMemTotal: 10 kB\nMemAvailable: 5 kB\n", &total,
                                          &avail),
                         -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: 10\nMemAvailable: 5 kB\n", &total, &avail), -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: 10 kB\nMemAvailable: 50 kB\n", &total, &avail), -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: 99999999999999999999 kB\nMemAvailable: 5 kB\n", &total,
                                          &avail),
                         -EBADMSG);
        assert_int_equal(cg_parse_meminfo("MemTotal: x kB\nMemAvailable: 5 kB\n", &total, &avail), -EBADMSG);
        assert_int_equal(cg_parse_meminfo("", &total, &avail), -EBADMSG);
        /* A key that only starts like ours is another key. */
        assert_int_equal(cg_parse_meminfo("MemTotalX: 1 kB\nMemTotal: 10 kB\nMemAvailable: 5 kB\n", &total,
                                          &avail),
                         0);
        assert_true(total == 10240);
}

static void test_i64(void **state) {
        int64_t v;

        assert_int_equal(cg_parse_i64("-1\n", &v), 0);
        assert_true(v == -1);
        assert_int_equal(cg_parse_i64("20000\n", &v), 0);
        assert_true(v == 20000);
        assert_int_equal(cg_parse_i64("max\n", &v), -EBADMSG);
}

static void test_cpu_max(void **state) {
        uint64_t q, p;
        char buf[64];

        assert_int_equal(cg_parse_cpu_max("max 100000\n", &q, &p), 0);
        assert_true(q == CPU_QUOTA_MAX && p == 100000);
        assert_int_equal(cg_parse_cpu_max("20000 100000\n", &q, &p), 0);
        assert_true(q == 20000 && p == 100000);
        assert_int_equal(cg_parse_cpu_max("20000\n", &q, &p), -EBADMSG);
        assert_int_equal(cg_parse_cpu_max("20000 0\n", &q, &p), -EBADMSG);
        assert_int_equal(cg_parse_cpu_max("20000  100000\n", &q, &p), -EBADMSG);
        assert_int_equal(cg_parse_cpu_max("20000 100000", &q, &p), -EBADMSG);
        assert_int_equal(cg_parse_cpu_max("x 100000\n", &q, &p), -EBADMSG);
        assert_int_equal(cg_parse_cpu_max("20000 max\n", &q, &p), -EBADMSG);

        assert_int_equal(cg_format_cpu_max(buf, sizeof(buf), 20000, 100000), 12);
        assert_string_equal(buf, "20000 100000");
        assert_true(cg_format_cpu_max(buf, sizeof(buf), CPU_QUOTA_MAX, 100000) > 0);
        assert_string_equal(buf, "max 100000");
        assert_int_equal(cg_format_cpu_max(buf, 5, 20000, 100000), -ENOBUFS);
}

static void test_cpu_stat_v2(void **state) {
        const char *text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                           "core_sched.force_idle_usec 0\nnr_periods 10\nnr_throttled 3\n"
                           "throttled_usec 250\nnr_bursts 1\nburst_usec 70\n";
        CpuStat s;

        assert_int_equal(cg_parse_cpu_stat(text, CG_V2, &s), 0);
        assert_true(s.have & CPU_STAT_USAGE);
        assert_true(s.have & CPU_STAT_PERIODS);
        assert_true(s.have & CPU_STAT_BURSTS);
        assert_true(s.usage_usec == 1500 && s.user_usec == 1000 && s.system_usec == 500);
        assert_true(s.nr_periods == 10 && s.nr_throttled == 3 && s.throttled_usec == 250);
        assert_true(s.nr_bursts == 1 && s.burst_usec == 70);

        /* Without the cpu controller, v2 cpu.stat has only usage. */
        assert_int_equal(cg_parse_cpu_stat("usage_usec 5\nuser_usec 4\nsystem_usec 1\n", CG_V2, &s), 0);
        assert_false(s.have & CPU_STAT_PERIODS);

        assert_int_equal(cg_parse_cpu_stat("nr_periods 1\n", CG_V2, &s), -EBADMSG); /* no usage */
        assert_int_equal(cg_parse_cpu_stat("usage_usec 1\nusage_usec 2\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec x\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 1", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat(" 1\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 99999999999999999999\n", CG_V2, &s), -ERANGE);
        assert_int_equal(cg_parse_cpu_stat("", CG_V2, &s), -EBADMSG);
}

static void test_cpu_stat_v1(void **state) {
        /* v1 counts throttled_time and burst_time in nanoseconds. */
        const char *text = "nr_periods 30\nnr_throttled 24\nthrottled_time 2400000000\n"
                           "nr_bursts 0\nburst_time 0\n";
        CpuStat s;

        assert_int_equal(cg_parse_cpu_stat(text, CG_V1, &s), 0);
        assert_true(s.nr_periods == 30 && s.nr_throttled == 24);
        assert_true(s.throttled_usec == 2400000);
        assert_false(s.have & CPU_STAT_USAGE);
        /* Old kernels: no burst keys. */
        assert_int_equal(cg_parse_cpu_stat("nr_periods 1\nnr_throttled 0\nthrottled_time 0\n", CG_V1, &s), 0);
        assert_false(s.have & CPU_STAT_BURSTS);
        assert_int_equal(cg_parse_cpu_stat("nr_periods 1\n", CG_V1, &s), -EBADMSG);
}

/* The one-pass cpu.stat parser (every credit look runs it): keys of the
 * other version and new keys ignored, limits of a u64, what a line must be. */
static void test_cpu_stat_edges(void **state) {
        CpuStat s;

        /* 6.x adds keys; a v1 name on v2 (and the reverse) is just unknown. */
        assert_int_equal(cg_parse_cpu_stat("usage_usec 7\ncore_sched.force_idle_usec 3\nthrottled_time 9\n"
                                           "nr_periods 1\nnr_throttled 1\nthrottled_usec 2\n",
                                           CG_V2, &s),
                         0);
        assert_true(s.usage_usec == 7 && s.throttled_usec == 2);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 7\nnr_periods 1\nnr_throttled 1\nthrottled_time 2000\n",
                                           CG_V1, &s),
                         0);
        assert_false(s.have & CPU_STAT_USAGE);
        assert_true(s.throttled_usec == 2);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 18446744073709551615\n", CG_V2, &s), 0);
        assert_true(s.usage_usec == UINT64_MAX);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 18446744073709551616\n", CG_V2, &s), -ERANGE);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 18446744073709551620\n", CG_V2, &s), -ERANGE);
        /* duplicates of a key we use, also under v1 */
        assert_int_equal(cg_parse_cpu_stat("nr_periods 1\nnr_throttled 0\nthrottled_time 0\nnr_periods 2\n", CG_V1,
                                           &s),
                         -EBADMSG);
        /* a control character ends a key; an empty line is no line */
        assert_int_equal(cg_parse_cpu_stat("usage\t_usec 1\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 1\n\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec 1 \n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat("usage_usec -1\n", CG_V2, &s), -EBADMSG);
        assert_int_equal(cg_parse_cpu_stat(NULL, CG_V2, &s), -EINVAL);
}

static void test_schedstat(void **state) {
        uint64_t ns;

        assert_int_equal(cg_parse_schedstat("123456789 1000 42\n", &ns), 0);
        assert_true(ns == 123456789);
        assert_int_equal(cg_parse_schedstat("123456789 1000\n", &ns), -EBADMSG);
        assert_int_equal(cg_parse_schedstat("1 2 3 4\n", &ns), -EBADMSG);
        assert_int_equal(cg_parse_schedstat("a b c\n", &ns), -EBADMSG);
        assert_int_equal(cg_parse_schedstat("1 2 3", &ns), -EBADMSG);
}

static void test_psi(void **state) {
        Psi p;

        assert_int_equal(cg_parse_psi("some avg10=1.23 avg60=0.50 avg300=0.00 total=123456\n"
                                      "full avg10=0.10 avg60=0.00 avg300=0.00 total=789\n",
                                      &p),
                         0);
        assert_int_equal(p.some_avg10, 123);
        assert_int_equal(p.some_avg60, 50);
        assert_true(p.some_total_usec == 123456);
        assert_true(p.has_full);
        assert_int_equal(p.full_avg10, 10);
        assert_true(p.full_total_usec == 789);
        /* Older kernels: no "full" line for cpu. */
        assert_int_equal(cg_parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &p), 0);
        assert_false(p.has_full);
        assert_int_equal(cg_parse_psi("some avg10=0.00 avg60=0.00 total=0\n", &p), -EBADMSG);
        assert_int_equal(cg_parse_psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &p), -EBADMSG);
        assert_int_equal(cg_parse_psi("some avg10=0.0 avg60=0.00 avg300=0.00 total=0\n", &p), -EBADMSG);
        assert_int_equal(cg_parse_psi("some avg10=101.00 avg60=0.00 avg300=0.00 total=0\n", &p), -EBADMSG);
        assert_int_equal(cg_parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=x\n", &p), -EBADMSG);
        assert_int_equal(cg_parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0", &p), -EBADMSG);
}

static void test_pid_list(void **state) {
        pid_t *pids = NULL;
        size_t n = 99;

        assert_int_equal(cg_parse_pid_list("", &pids, &n), 0);
        assert_int_equal(n, 0);
        free(pids);
        assert_int_equal(cg_parse_pid_list("1\n22\n333\n", &pids, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(pids[2], 333);
        free(pids);
        assert_int_equal(cg_parse_pid_list("1\n0\n", &pids, &n), -EBADMSG);
        assert_int_equal(cg_parse_pid_list("1\n-2\n", &pids, &n), -EBADMSG);
        assert_int_equal(cg_parse_pid_list("1\n2", &pids, &n), -EBADMSG);
        assert_int_equal(cg_parse_pid_list("4294967297\n", &pids, &n), -EBADMSG);
        assert_int_equal(cg_parse_pid_list("\n", &pids, &n), -EBADMSG);
}

static void test_cgroup_type(void **state) {
        CgType t;

        assert_int_equal(cg_parse_cgroup_type("threaded\n", &t), 0);
        assert_int_equal(t, CG_TYPE_THREADED);
        assert_int_equal(cg_parse_cgroup_type("domain threaded\n", &t), 0);
        assert_int_equal(t, CG_TYPE_DOMAIN_THREADED);
        assert_int_equal(cg_parse_cgroup_type("domain invalid\n", &t), 0);
        assert_int_equal(cg_parse_cgroup_type("domain\n", &t), 0);
        assert_int_equal(t, CG_TYPE_DOMAIN);
        assert_int_equal(cg_parse_cgroup_type("threads\n", &t), -EBADMSG);
        assert_int_equal(cg_parse_cgroup_type("threaded", &t), -EBADMSG);
}

static void test_controller_list(void **state) {
        uint32_t m;

        assert_int_equal(cg_parse_controller_list("cpuset cpu io memory hugetlb pids rdma misc\n", &m), 0);
        assert_true(m & CG_CTRL_BIT(CG_CTRL_CPU));
        assert_true(m & CG_CTRL_BIT(CG_CTRL_MEMORY));
        assert_true(m & CG_CTRL_BIT(CG_CTRL_IO));
        assert_false(m & CG_CTRL_BIT(CG_CTRL_DMEM));
        assert_int_equal(cg_parse_controller_list("\n", &m), 0);
        assert_int_equal(m, 0);
        m = 5;
        assert_int_equal(cg_parse_controller_list("", &m), 0); /* the kernel prints nothing */
        assert_int_equal(m, 0);
        assert_int_equal(cg_parse_controller_list("cpu", &m), -EBADMSG);
        assert_int_equal(cg_parse_controller_list("cpu\nmemory\n", &m), -EBADMSG);
}

static void test_dmem(void **state) {
        DmemEntry *e = NULL;
        size_t n;

        assert_int_equal(cg_parse_dmem("drm/0000:03:00.0/vram0 8589934592\ndrm/0000:03:00.0/gtt max\n", &e, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(e[0].name, "drm/0000:03:00.0/vram0");
        assert_true(e[0].value == 8589934592ULL);
        assert_true(e[1].value == UINT64_MAX);
        free(e);
        e = NULL;
        assert_int_equal(cg_parse_dmem("", &e, &n), 0);
        assert_int_equal(n, 0);
        free(e);
        assert_int_equal(cg_parse_dmem("vram0\n", &e, &n), -EBADMSG);
        assert_int_equal(cg_parse_dmem("vram0 12", &e, &n), -EBADMSG);
        assert_int_equal(cg_parse_dmem("vram0 -1\n", &e, &n), -EBADMSG);
        assert_int_equal(cg_parse_dmem(" 12\n", &e, &n), -EBADMSG);
        assert_int_equal(cg_parse_dmem("vr\x01m 12\n", &e, &n), -EBADMSG);

        char longname[300];
        memset(longname, 'a', 200);
        strcpy(longname + 200, " 5\n");
        assert_int_equal(cg_parse_dmem(longname, &e, &n), -EBADMSG);
        assert_false(cg_dmem_region_name_valid("a b"));
        assert_true(cg_dmem_region_name_valid("drm/0000:03:00.0/vram0"));
}

static void test_flat_keyed(void **state) {
        static const char *const keys[] = { "anon", "file" };
        uint64_t v[2] = { 0 }, found;

        assert_int_equal(cg_parse_flat_keyed("anon 4096\nfile 8192\nnew_key_from_2030 1\n", keys, 2, v, &found), 0);
        assert_true(found == 3 && v[0] == 4096 && v[1] == 8192);
        /* A key that is a prefix of another must not match it. */
        assert_int_equal(cg_parse_flat_keyed("anon_thp 1\n", keys, 2, v, &found), 0);
        assert_true(found == 0);
        assert_int_equal(cg_parse_flat_keyed("anon 1 2\n", keys, 2, v, &found), -EBADMSG);
        /* nor the key a prefix of it */
        assert_int_equal(cg_parse_flat_keyed("ano 1\nfil 2\n", keys, 2, v, &found), 0);
        assert_true(found == 0);
        assert_int_equal(cg_parse_flat_keyed("anon 1\nanon 2\n", keys, 2, v, &found), -EBADMSG);
        assert_int_equal(cg_parse_flat_keyed("file 99999999999999999999\n", keys, 2, v, &found), -ERANGE);
}

static void test_reclaim_format(void **state) {
        char buf[64];

        assert_true(cg_format_reclaim(buf, sizeof(buf), 1048576, -1) > 0);
        assert_string_equal(buf, "1048576");
        assert_true(cg_format_reclaim(buf, sizeof(buf), 1048576, 60) > 0);
        assert_string_equal(buf, "1048576 swappiness=60");
        assert_int_equal(cg_format_reclaim(buf, sizeof(buf), 1, 201), -EINVAL);
        assert_int_equal(cg_format_reclaim(buf, 4, 1048576, -1), -ENOBUFS);
}

/* /proc/<pid>/cgroup on a hybrid host (what libvirt's QEMU shows here). */
static void test_proc_cgroup(void **state) {
        const char *hybrid = "12:memory:/machine/qemu-1-web.libvirt-qemu\n"
                             "4:cpu,cpuacct:/machine/qemu-1-web.libvirt-qemu/emulator\n"
                             "1:name=systemd:/system.slice/libvirtd.service\n"
                             "0::/system.slice/libvirtd.service\n";
        char buf[256];

        (void) state;
        assert_int_equal(cg_parse_proc_cgroup(hybrid, CG_V1, CG_CTRL_BIT(CG_CTRL_CPU), buf, sizeof buf), 0);
        assert_string_equal(buf, "machine/qemu-1-web.libvirt-qemu/emulator");
        assert_int_equal(cg_parse_proc_cgroup(hybrid, CG_V1, CG_CTRL_BIT(CG_CTRL_CPUACCT), buf, sizeof buf), 0);
        assert_string_equal(buf, "machine/qemu-1-web.libvirt-qemu/emulator");
        assert_int_equal(cg_parse_proc_cgroup(hybrid, CG_V2, 0, buf, sizeof buf), 0);
        assert_string_equal(buf, "system.slice/libvirtd.service");
        assert_int_equal(cg_parse_proc_cgroup(hybrid, CG_V1, CG_CTRL_BIT(CG_CTRL_PIDS), buf, sizeof buf), -ENOENT);
        /* The root is "". */
        assert_int_equal(cg_parse_proc_cgroup("0::/\n", CG_V2, 0, buf, sizeof buf), 0);
        assert_string_equal(buf, "");
        /* Malformed: no colons, a relative path, too long for the buffer. */
        assert_int_equal(cg_parse_proc_cgroup("garbage\n", CG_V2, 0, buf, sizeof buf), -EBADMSG);
        assert_int_equal(cg_parse_proc_cgroup("0::relative\n", CG_V2, 0, buf, sizeof buf), -EBADMSG);
        assert_int_equal(cg_parse_proc_cgroup("0::\n", CG_V2, 0, buf, sizeof buf), -EBADMSG);
        assert_int_equal(cg_parse_proc_cgroup("0::/abcdef\n", CG_V2, 0, buf, 4), -ENAMETOOLONG);
        assert_int_equal(cg_parse_proc_cgroup("", CG_V2, 0, buf, sizeof buf), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_u64_or_max),   cmocka_unit_test(test_i64),
                cmocka_unit_test(test_cpu_max),      cmocka_unit_test(test_cpu_stat_v2),
                cmocka_unit_test(test_cpu_stat_v1),  cmocka_unit_test(test_cpu_stat_edges),
                cmocka_unit_test(test_schedstat),
                cmocka_unit_test(test_psi),          cmocka_unit_test(test_pid_list),
                cmocka_unit_test(test_cgroup_type),  cmocka_unit_test(test_controller_list),
                cmocka_unit_test(test_dmem),         cmocka_unit_test(test_flat_keyed),
                cmocka_unit_test(test_reclaim_format), cmocka_unit_test(test_meminfo),
                cmocka_unit_test(test_proc_cgroup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
