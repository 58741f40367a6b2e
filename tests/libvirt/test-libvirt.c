/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Model tests: libvirt's event loop on sd-event (vmmgr/daemon/libvirt-loop.c)
 * and the connection (libvirt-conn.c) against libvirt's built-in test
 * driver, test:///default: an in-process fake hypervisor in libvirt0, no
 * libvirtd, no root.  It starts with one running domain, "test".
 *
 * Covered: handles and timeouts with libvirt's semantics through the
 * public virEvent* calls (what libvirt itself calls), free callbacks from
 * a clean stack also when a source removes itself; lifecycle and
 * metadata-change events on the loop for domains the test creates,
 * suspends, resumes and destroys; the credit spec written and read back
 * through libvirt; adoption of running domains at connect; a dropped
 * connection reconnecting with back-off; an unreachable URI retrying with
 * growing waits; the back-off rules on their own.
 *
 * The real close callback needs the remote driver: where libvirtd is
 * installed, a private session libvirtd (as `nobody` when run as root,
 * in a temporary XDG tree) serves the test driver over its socket
 * (test+unix:///default?socket=...), and the test kills and restarts it.
 * Without libvirtd that case skips; the test driver alone never closes,
 * so lv_conn_drop() takes the same path in the other cases.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "tests/common/vtest.h"
#include "vmmgr/daemon/libvirt-conn.h"
#include "vmmgr/daemon/libvirt-loop.h"
#include "vmmgr/daemon/libvirt-metadata.h"

#define MSEC UINT64_C(1000)
#define SEC UINT64_C(1000000)

static sd_event *loop;

static uint64_t mono_now(void) {
        uint64_t now;

        assert_int_equal(sd_event_now(loop, CLOCK_MONOTONIC, &now) >= 0 ? 0 : -1, 0);
        return now;
}

/* Runs the loop until *flag or the timeout; returns whether *flag. */
static bool run_until(const bool *flag, uint64_t timeout_usec) {
        uint64_t deadline;

        (void) sd_event_run(loop, 0);
        deadline = mono_now() + timeout_usec;
        while (!*flag && mono_now() < deadline)
                assert_true(sd_event_run(loop, 10 * MSEC) >= 0);
        return *flag;
}

static void run_for(uint64_t usec) {
        bool never = false;

        run_until(&never, usec);
}

/* ---- the loop ------------------------------------------------------------ */

typedef struct Probe {
        int fired, freed;
        int last_events;
        int watch;
        bool in_callback, freed_inside, remove_self, done;
} Probe;

static void probe_free(void *opaque) {
        Probe *p = opaque;

        if (p->in_callback)
                p->freed_inside = true;
        p->freed++;
}

static void on_timer(int timer, void *opaque) {
        Probe *p = opaque;

        p->in_callback = true;
        p->fired++;
        if (p->remove_self) {
                assert_int_equal(virEventRemoveTimeout(timer), 0);
                p->done = true;
        }
        p->in_callback = false;
}

static void on_handle(int watch, int fd, int events, void *opaque) {
        Probe *p = opaque;
        char buf[16];

        p->in_callback = true;
        p->fired++;
        p->last_events = events;
        if (events & VIR_EVENT_HANDLE_READABLE)
                (void) !read(fd, buf, sizeof(buf));
        if (p->remove_self) {
                assert_int_equal(virEventRemoveHandle(watch), 0);
                /* Removing twice is an error, not a crash. */
                assert_int_equal(virEventRemoveHandle(watch), -1);
        }
        p->done = true;
        p->in_callback = false;
}

static void test_register(void **state) {
        sd_event *other = NULL;

        assert_int_equal(lv_loop_register(loop), 0); /* again, same loop */
        assert_int_equal(sd_event_new(&other), 0);
        assert_int_equal(lv_loop_register(other), -EALREADY);
        sd_event_unref(other);
        assert_ptr_equal(lv_loop_event(), loop);
}

static void test_timeouts(void **state) {
        Probe periodic = {}, zero = {}, off = {}, once = { .remove_self = true };
        int tp, tz, toff, tonce;
        LvLoopStats st;

        tp = virEventAddTimeout(20, on_timer, &periodic, probe_free);
        tz = virEventAddTimeout(0, on_timer, &zero, probe_free);
        toff = virEventAddTimeout(-1, on_timer, &off, probe_free);
        tonce = virEventAddTimeout(5, on_timer, &once, probe_free);
        assert_true(tp > 0 && tz > 0 && toff > 0 && tonce > 0);
        assert_true(tp != tz && tz != toff && toff != tonce);

        /* 0: every iteration. */
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(loop, 0) >= 0);
        assert_true(zero.fired >= 4);
        virEventUpdateTimeout(tz, -1);
        zero.fired = 0;

        /* N ms: repeatedly; -1: never; removed inside its own callback:
         * fires once, freed after, outside the callback. */
        run_for(110 * MSEC);
        assert_true(periodic.fired >= 2 && periodic.fired <= 6); /* 5 due; slack for a loaded host */
        assert_int_equal(off.fired, 0);
        assert_int_equal(zero.fired, 0);
        assert_int_equal(once.fired, 1);
        assert_int_equal(once.freed, 1);
        assert_false(once.freed_inside);

        /* Update: off, then on again at a new period. */
        virEventUpdateTimeout(tp, -1);
        periodic.fired = 0;
        run_for(50 * MSEC);
        assert_int_equal(periodic.fired, 0);
        virEventUpdateTimeout(toff, 10);
        run_for(55 * MSEC);
        assert_true(off.fired >= 2);

        /* Remove: ff not from inside the remove call, but on the next iteration. */
        assert_int_equal(virEventRemoveTimeout(tp), 0);
        assert_int_equal(virEventRemoveTimeout(tz), 0);
        assert_int_equal(virEventRemoveTimeout(toff), 0);
        assert_int_equal(periodic.freed + zero.freed + off.freed, 0);
        lv_loop_stats(&st);
        assert_int_equal(st.pending_free, 3);
        run_for(5 * MSEC);
        assert_int_equal(periodic.freed + zero.freed + off.freed, 3);
        assert_int_equal(virEventRemoveTimeout(tp), -1);
        lv_loop_stats(&st);
        assert_int_equal(st.timeouts, 0);
        assert_int_equal(st.pending_free, 0);
        virEventUpdateTimeout(tp, 5); /* a removed id: ignored */
}

static void test_handles(void **state) {
        Probe p = {}, self = { .remove_self = true };
        int fds[2], w, wself;
        LvLoopStats st;

        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, probe_free);
        assert_true(w > 0);

        /* Readable. */
        assert_int_equal(write(fds[1], "x", 1), 1);
        assert_true(run_until(&p.done, 1 * SEC));
        assert_true(p.last_events & VIR_EVENT_HANDLE_READABLE);

        /* Events 0 disable the watch. */
        virEventUpdateHandle(w, 0);
        p.done = false;
        p.fired = 0;
        assert_int_equal(write(fds[1], "x", 1), 1);
        run_for(30 * MSEC);
        assert_int_equal(p.fired, 0);
        virEventUpdateHandle(w, VIR_EVENT_HANDLE_READABLE);
        assert_true(run_until(&p.done, 1 * SEC));

        /* The same fd watched twice is refused; libvirt never does it. */
        assert_int_equal(virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, probe_free), -1);
        assert_int_equal(virEventRemoveHandle(w), 0);
        run_for(5 * MSEC);
        assert_int_equal(p.freed, 1);

        /* Removed inside its own callback; hang-up reported. */
        wself = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &self, probe_free);
        assert_true(wself > w);
        close(fds[1]);
        assert_true(run_until(&self.done, 1 * SEC));
        assert_true(self.last_events & VIR_EVENT_HANDLE_HANGUP);
        assert_int_equal(self.fired, 1);
        assert_int_equal(self.freed, 0);
        run_for(5 * MSEC);
        assert_int_equal(self.fired, 1);
        assert_int_equal(self.freed, 1);
        assert_false(self.freed_inside);
        lv_loop_stats(&st);
        assert_int_equal(st.handles, 0);
        assert_int_equal(st.pending_free, 0);
        close(fds[0]);
}

static void *off_thread(void *arg) {
        int *r = arg;
        Probe p = {};

        r[0] = virEventAddTimeout(0, on_timer, &p, NULL);
        r[1] = virEventRemoveTimeout(r[2]);
        virEventUpdateTimeout(r[2], 0); /* ignored */
        return NULL;
}

/* sd-event is not thread safe: calls from another thread are refused. */
static void test_other_thread(void **state) {
        Probe p = {};
        int r[3];
        pthread_t t;

        r[2] = virEventAddTimeout(-1, on_timer, &p, probe_free);
        assert_true(r[2] > 0);
        assert_int_equal(pthread_create(&t, NULL, off_thread, r), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(r[0], -1);
        assert_int_equal(r[1], -1);
        run_for(20 * MSEC);
        assert_int_equal(p.fired, 0); /* still off */
        assert_int_equal(virEventRemoveTimeout(r[2]), 0);
        run_for(5 * MSEC);
        assert_int_equal(p.freed, 1);
}

/* ---- the connection --------------------------------------------------------- */

typedef struct Seen {
        int running;            /* domain_running calls */
        char running_uuid[LV_UUID_STRING_MAX];
        char uuid[LV_UUID_STRING_MAX]; /* the domain the test watches */
        int lifecycle[16] /* virDomainEventType; VIR_DOMAIN_EVENT_LAST needs VIR_ENUM_SENTINELS */;
        bool got_event, got_metadata, up, waiting;
        char metadata_ns[128];
        int states_up, states_waiting;
        uint64_t last_retry_usec;
} Seen;

static void seen_running(LvConn *c, virDomainPtr dom, const char *uuid, void *userdata) {
        Seen *s = userdata;

        s->running++;
        snprintf(s->running_uuid, sizeof(s->running_uuid), "%s", uuid);
}

static void seen_lifecycle(LvConn *c, virDomainPtr dom, const char *uuid, int event, int detail, void *userdata) {
        Seen *s = userdata;

        if (strcmp(uuid, s->uuid) != 0 || event < 0 || event >= 16)
                return;
        s->lifecycle[event]++;
        s->got_event = true;
}

static void seen_metadata(LvConn *c, virDomainPtr dom, const char *uuid, int type, const char *nsuri,
                          void *userdata) {
        Seen *s = userdata;

        if (strcmp(uuid, s->uuid) != 0 || type != VIR_DOMAIN_METADATA_ELEMENT)
                return;
        snprintf(s->metadata_ns, sizeof(s->metadata_ns), "%s", nsuri ? nsuri : "");
        s->got_metadata = true;
}

static void seen_state(LvConn *c, LvConnState state, const char *why, uint64_t retry_usec, void *userdata) {
        Seen *s = userdata;

        if (state == LV_CONN_UP) {
                s->states_up++;
                s->up = true;
        } else if (state == LV_CONN_WAITING) {
                s->states_waiting++;
                s->waiting = true;
                s->last_retry_usec = retry_usec;
                assert_non_null(why);
                assert_true(why[0] != '\0');
        }
}

static const LvConnOps seen_ops = {
        .domain_running = seen_running,
        .lifecycle = seen_lifecycle,
        .metadata_change = seen_metadata,
        .state = seen_state,
};

static LvConn *open_test(Seen *s, const char *uri, uint64_t backoff_min_usec) {
        LvConnOptions o = { .uri = uri, .backoff_min_usec = backoff_min_usec, .backoff_max_usec = 8 * backoff_min_usec };
        LvConn *c = NULL;

        assert_int_equal(lv_conn_new(loop, &o, &seen_ops, s, &c), 0);
        return c;
}

static void test_conn_events(void **state) {
        static const char xml[] = "<domain type='test'><name>vmmgr-t1</name><memory>65536</memory>"
                                  "<vcpu>2</vcpu><os><type>hvm</type></os></domain>";
        Seen s = {};
        LvConn *c = open_test(&s, "test:///default", 10 * MSEC);
        virDomainPtr dom;

        assert_string_equal(lv_conn_uri(c), "test:///default");
        assert_int_equal(lv_conn_start(c), 0);
        assert_int_equal(lv_conn_start(c), -EALREADY);
        assert_int_equal(lv_conn_state(c), LV_CONN_UP);
        assert_int_equal(s.states_up, 1);
        assert_int_equal(lv_conn_generation(c), 1);
        assert_false(lv_conn_keepalive(c)); /* the test driver has none */
        assert_string_equal(lv_conn_error(c), "");
        /* Adoption: the driver's one running domain. */
        assert_int_equal(s.running, 1);
        assert_int_equal(strlen(s.running_uuid), 36);

        /* Lifecycle of a transient domain, each event delivered by the loop. */
        dom = virDomainCreateXML(lv_conn_get(c), xml, 0);
        assert_non_null(dom);
        assert_int_equal(virDomainGetUUIDString(dom, s.uuid), 0);
        assert_true(run_until(&s.got_event, 2 * SEC));
        assert_int_equal(s.lifecycle[VIR_DOMAIN_EVENT_STARTED], 1);

        s.got_event = false;
        assert_int_equal(virDomainSuspend(dom), 0);
        assert_true(run_until(&s.got_event, 2 * SEC));
        assert_int_equal(s.lifecycle[VIR_DOMAIN_EVENT_SUSPENDED], 1);
        s.got_event = false;
        assert_int_equal(virDomainResume(dom), 0);
        assert_true(run_until(&s.got_event, 2 * SEC));
        assert_int_equal(s.lifecycle[VIR_DOMAIN_EVENT_RESUMED], 1);

        /* The credit spec through libvirt: written, the change event, read back. */
        {
                LvCredits in = { .set = LV_CREDITS_CLASS | LV_CREDITS_BASELINE | LV_CREDITS_LAUNCH | LV_CREDITS_MODE,
                                 .class_name = "t3.small",
                                 .baseline_ppm = 250000,
                                 .launch_usec = 90 * SEC,
                                 .mode = CREDIT_MODE_UNLIMITED },
                          out = {};
                LvCreditsError err = {};

                assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &out, &err), -ENOENT);
                if (lv_credits_set(dom, &in, &err) != 0)
                        fail_msg("set: %s", err.message);
                assert_true(run_until(&s.got_metadata, 2 * SEC));
                assert_string_equal(s.metadata_ns, LV_CREDITS_NS);
                if (lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &out, &err) != 0)
                        fail_msg("get: %s", err.message);
                assert_int_equal(out.set, in.set);
                assert_string_equal(out.class_name, "t3.small");
                assert_int_equal(out.baseline_ppm, 250000);
                assert_int_equal(out.launch_usec, 90 * SEC);
                assert_int_equal(out.mode, CREDIT_MODE_UNLIMITED);

                /* The same from the domain definition libvirt formats. */
                {
                        char *def = virDomainGetXMLDesc(dom, 0);

                        assert_non_null(def);
                        out = (LvCredits) {};
                        if (lv_credits_parse_domain_xml(def, strlen(def), &out, &err) != 0)
                                fail_msg("domain xml: %s\n%s", err.message, def);
                        assert_int_equal(out.set, in.set);
                        assert_int_equal(out.baseline_ppm, 250000);
                        free(def);
                }

                /* A malformed spec written by someone else reads as an error. */
                assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                                      "<credits baseline='2'/>", "vmmgr", LV_CREDITS_NS,
                                                      VIR_DOMAIN_AFFECT_LIVE),
                                 0);
                assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &out, &err), -ERANGE);
                assert_string_equal(err.attr, "baseline");

                /* Removed. */
                assert_int_equal(lv_credits_set(dom, NULL, &err), 0);
                assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &out, &err), -ENOENT);
        }

        s.got_event = false;
        assert_int_equal(virDomainDestroy(dom), 0);
        assert_true(run_until(&s.got_event, 2 * SEC));
        assert_int_equal(s.lifecycle[VIR_DOMAIN_EVENT_STOPPED], 1);
        virDomainFree(dom);

        /* Events stop with the connection. */
        c = lv_conn_free(c);
        run_for(5 * MSEC);
}

static void test_conn_persistent_metadata(void **state) {
        static const char xml[] = "<domain type='test'><name>vmmgr-p1</name><memory>65536</memory>"
                                  "<vcpu>1</vcpu><os><type>hvm</type></os></domain>";
        Seen s = {};
        LvConn *c = open_test(&s, "test:///default", 10 * MSEC);
        LvCredits in = { .set = LV_CREDITS_CAP, .cap_usec = 100 * 60 * SEC }, out = {};
        LvCreditsError err = {};
        virDomainPtr dom;

        assert_int_equal(lv_conn_start(c), 0);
        dom = virDomainDefineXML(lv_conn_get(c), xml);
        assert_non_null(dom);
        assert_int_equal(virDomainCreate(dom), 0);
        if (lv_credits_set(dom, &in, &err) != 0)
                fail_msg("set: %s", err.message);
        /* Live and config both. */
        assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_LIVE, &out, &err), 0);
        assert_int_equal(out.cap_usec, 100 * 60 * SEC);
        out = (LvCredits) {};
        assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_CONFIG, &out, &err), 0);
        assert_int_equal(out.cap_usec, 100 * 60 * SEC);
        /* Stopped: config only, and still there. */
        assert_int_equal(virDomainDestroy(dom), 0);
        in.cap_usec = 50 * 60 * SEC;
        assert_int_equal(lv_credits_set(dom, &in, &err), 0);
        assert_int_equal(lv_credits_get(dom, VIR_DOMAIN_AFFECT_CONFIG, &out, &err), 0);
        assert_int_equal(out.cap_usec, 50 * 60 * SEC);
        assert_int_equal(virDomainUndefine(dom), 0);
        virDomainFree(dom);
        lv_conn_free(c);
}

static void test_conn_reconnect(void **state) {
        Seen s = {};
        LvConn *c = open_test(&s, "test:///default", 20 * MSEC);
        int running;

        assert_int_equal(lv_conn_drop(c, "x"), -ENOTCONN);
        assert_int_equal(lv_conn_start(c), 0);
        running = s.running; /* "test" and what earlier cases left running */
        assert_true(running >= 1);

        /* Dropped (the close callback's path): torn down on the next
         * iteration, not inside the call; back up after the back-off with
         * the running domains reported again. */
        assert_int_equal(lv_conn_drop(c, "libvirtd restarted (simulated)"), 0);
        assert_int_equal(lv_conn_state(c), LV_CONN_UP);
        assert_true(run_until(&s.waiting, 1 * SEC));
        assert_int_equal(lv_conn_state(c), LV_CONN_WAITING);
        assert_null(lv_conn_get(c));
        assert_non_null(strstr(lv_conn_error(c), "libvirtd restarted (simulated)"));
        /* Up for less than the maximum back-off: the first wait (20 ms). */
        assert_int_equal(s.last_retry_usec, 20 * MSEC);
        s.up = false;
        assert_true(run_until(&s.up, 2 * SEC));
        assert_int_equal(lv_conn_state(c), LV_CONN_UP);
        assert_int_equal(lv_conn_generation(c), 2);
        assert_int_equal(s.running, 2 * running);
        assert_non_null(lv_conn_get(c));

        /* A second quick drop: the flapping rule doubles the wait. */
        s.waiting = false;
        assert_int_equal(lv_conn_drop(c, "again"), 0);
        assert_true(run_until(&s.waiting, 1 * SEC));
        assert_int_equal(s.last_retry_usec, 40 * MSEC);
        /* Freed while waiting: the retry timer goes with it. */
        lv_conn_free(c);
        run_for(60 * MSEC);
        assert_int_equal(s.states_up, 2);
}

static void test_conn_unreachable(void **state) {
        Seen s = {};
        LvConn *c = open_test(&s, "test:///nonexistent/vmmgr-no-such-file.xml", 10 * MSEC);

        assert_int_equal(lv_conn_start(c), -ECONNREFUSED);
        assert_int_equal(lv_conn_state(c), LV_CONN_WAITING);
        assert_non_null(strstr(lv_conn_error(c), "test:///nonexistent"));
        assert_int_equal(s.last_retry_usec, 10 * MSEC);
        run_for(60 * MSEC); /* tries at +10 ms and +30 ms */
        assert_true(s.states_waiting >= 3);
        assert_true(s.last_retry_usec >= 40 * MSEC);
        assert_int_equal(s.states_up, 0);
        lv_conn_free(c);
}

/* ---- a private session libvirtd ------------------------------------------- */

static const char *libvirtd_path(void) {
        static const char *const paths[] = { "/usr/sbin/libvirtd", "/usr/local/sbin/libvirtd" };

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
                if (access(paths[i], X_OK) == 0)
                        return paths[i];
        return NULL;
}

/* Starts libvirtd in session mode with everything under dir: as nobody
 * when we are root (root's libvirtd would be the system one), else as
 * ourselves.  --timeout: it exits by itself if the test dies. */
static pid_t libvirtd_start(const char *exe, const char *dir, const struct passwd *as) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                char home[512], run[600], cfg[600], cache[600];
                char *env[] = { home, run, cfg, cache, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                snprintf(home, sizeof(home), "HOME=%s", dir);
                snprintf(run, sizeof(run), "XDG_RUNTIME_DIR=%s/run", dir);
                snprintf(cfg, sizeof(cfg), "XDG_CONFIG_HOME=%s/config", dir);
                snprintf(cache, sizeof(cache), "XDG_CACHE_HOME=%s/cache", dir);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                if (as && (setgroups(0, NULL) < 0 || setgid(as->pw_gid) < 0 || setuid(as->pw_uid) < 0))
                        _exit(126);
                execle(exe, exe, "--timeout", "30", (char *) NULL, env);
                _exit(127);
        }
        return pid;
}

static void libvirtd_stop(pid_t pid) {
        int status;

        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        (void) waitpid(pid, &status, 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void test_conn_real_close(void **state) {
        static const char xml[] = "<domain type='test'><name>vmmgr-r1</name><memory>65536</memory>"
                                  "<vcpu>1</vcpu><os><type>hvm</type></os></domain>";
        const char *exe = libvirtd_path();
        const struct passwd *as = NULL;
        char dir[] = "/tmp/vmmgr-libvirtd-XXXXXX", uri[256];
        LvConnOptions o = { .uri = uri, .backoff_min_usec = 20 * MSEC, .backoff_max_usec = 160 * MSEC };
        Seen s = {};
        LvConn *c = NULL;
        virDomainPtr dom;
        pid_t pid;

        if (!exe)
                vt_skip("libvirtd is not installed (Debian: libvirt-daemon)");
        if (geteuid() == 0) {
                as = getpwnam("nobody");
                if (!as)
                        vt_skip("running as root and there is no user 'nobody' to run a session libvirtd as");
        }
        assert_non_null(mkdtemp(dir));
        if (as)
                assert_int_equal(chown(dir, as->pw_uid, as->pw_gid), 0);
        snprintf(uri, sizeof(uri), "test+unix:///default?socket=%s/run/libvirt/libvirt-sock", dir);

        /* The connection first: it retries with its back-off until the
         * daemon listens (no sleeps in the test). */
        assert_int_equal(lv_conn_new(loop, &o, &seen_ops, &s, &c), 0);
        pid = libvirtd_start(exe, dir, as);
        if (lv_conn_start(c) < 0)
                assert_int_equal(lv_conn_state(c), LV_CONN_WAITING);
        if (!run_until(&s.up, 10 * SEC))
                fail_msg("no connection to the session libvirtd: %s", lv_conn_error(c));
        assert_true(lv_conn_keepalive(c)); /* the remote driver has it */
        assert_true(s.running >= 1);

        /* Events over the socket. */
        dom = virDomainCreateXML(lv_conn_get(c), xml, 0);
        assert_non_null(dom);
        assert_int_equal(virDomainGetUUIDString(dom, s.uuid), 0);
        assert_true(run_until(&s.got_event, 2 * SEC));
        assert_int_equal(s.lifecycle[VIR_DOMAIN_EVENT_STARTED], 1);
        virDomainFree(dom);

        /* libvirtd goes away: the close callback, then retries that fail. */
        libvirtd_stop(pid);
        s.waiting = false;
        assert_true(run_until(&s.waiting, 5 * SEC));
        assert_null(lv_conn_get(c));
        run_for(100 * MSEC);
        assert_true(s.states_waiting >= 2); /* the close, then at least one failed retry */
        assert_int_equal(lv_conn_generation(c), 1);

        /* Back: reconnected, running domains reported again. */
        s.up = false;
        s.running = 0;
        pid = libvirtd_start(exe, dir, as);
        if (!run_until(&s.up, 10 * SEC))
                fail_msg("no reconnection: %s", lv_conn_error(c));
        assert_int_equal(lv_conn_generation(c), 2);
        assert_true(s.running >= 1);

        lv_conn_free(c);
        libvirtd_stop(pid);
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_backoff(void **state) {
        LvBackoff b;
        static const uint64_t want[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };

        lv_backoff_init(&b, 1 * SEC, 60 * SEC);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                assert_int_equal(lv_backoff_failed(&b), want[i] * SEC);
        /* Up for a minute: a loss starts over at 1 s. */
        lv_backoff_up(&b, 1000 * SEC);
        assert_int_equal(lv_backoff_lost(&b, 1060 * SEC), 1 * SEC);
        assert_int_equal(lv_backoff_failed(&b), 2 * SEC);
        /* Up briefly (a flapping libvirtd): the waits keep growing. */
        lv_backoff_up(&b, 2000 * SEC);
        assert_int_equal(lv_backoff_lost(&b, 2005 * SEC), 4 * SEC);
        lv_backoff_up(&b, 2010 * SEC);
        assert_int_equal(lv_backoff_lost(&b, 2011 * SEC), 8 * SEC);
        /* Odd bounds. */
        lv_backoff_init(&b, 0, 0);
        assert_int_equal(lv_backoff_failed(&b), 1);
        assert_int_equal(lv_backoff_failed(&b), 1);
        lv_backoff_init(&b, 3 * SEC, 10 * SEC);
        assert_int_equal(lv_backoff_failed(&b), 3 * SEC);
        assert_int_equal(lv_backoff_failed(&b), 6 * SEC);
        assert_int_equal(lv_backoff_failed(&b), 10 * SEC);
        assert_int_equal(lv_backoff_failed(&b), 10 * SEC);
}

static int setup(void **state) {
        LvConn *c = NULL;

        if (sd_event_new(&loop) < 0)
                return -1;
        /* Before anything: libvirt takes one impl per process. */
        assert_int_equal(lv_conn_new(loop, NULL, NULL, NULL, &c), -ENXIO);
        return lv_loop_register(loop) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_register),
                cmocka_unit_test(test_timeouts),
                cmocka_unit_test(test_handles),
                cmocka_unit_test(test_other_thread),
                cmocka_unit_test(test_conn_events),
                cmocka_unit_test(test_conn_persistent_metadata),
                cmocka_unit_test(test_conn_reconnect),
                cmocka_unit_test(test_conn_unreachable),
                cmocka_unit_test(test_conn_real_close),
                cmocka_unit_test(test_backoff),
        };
        /* The loop is never freed: libvirt's impl outlives it otherwise. */
        return vt_run_group_tests(tests, setup, NULL);
}
