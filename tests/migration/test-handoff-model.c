/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/migration/test-handoff-model.c (suite model) - live migration's
 * credit handoff between two real vmmgrd Daemons in one process, each on
 * its own kernel model, with scripted QEMUs (tests/common/qmp-peers.h):
 * every bank pairing (kernel -> emulated, emulated -> kernel, emulated ->
 * emulated, kernel -> kernel), a failed migration, and a destination
 * whose QEMU went before it resumed (nack).
 *
 * The VM is registered on host A through the real path (QMP), spends CPU
 * there, is announced with migration_start("") (export mode); its QEMU
 * stops (STOP), the migration completes (MIGRATION and query-migrate);
 * the destination VM is registered on host B while its QEMU says
 * "inmigrate", resumes (RESUME) and spends CPU; the record goes from A's
 * migration_get through its JSON (as `vmmgrctl migration export|import`
 * carries it) to B's migration_record, and B's answer back to A's
 * migration_reply.  Checked, with the models' usage counters as the truth
 * for CPU (never vmmgr's own numbers):
 *
 *   1. B's ledger right after apply = the frozen ledger + the policy's
 *      earnings from frozen_at to the apply - the CPU B's vcpus group
 *      used since RESUME;
 *   2. conservation over the run: A's ledger at registration + earnings
 *      over the whole wall time - CPU used on A and on B = B's ledger at
 *      the end (nothing created, nothing lost);
 *   3. kernel bank: A's cpu.max.runtime pool (the model's) at the freeze
 *      is the frozen balance, and B's pool right after apply is the
 *      merged balance capped at the cap, within a slice;
 *   4. a record before RESUME is held; a duplicate is acknowledged and
 *      changes nothing; a record for a VM whose QEMU went before RESUME
 *      gets nack and A takes its ledger back with nothing lost; a failed
 *      migration leaves A's ledger going on as if nothing happened.
 *
 * And across a vmmgrd crash: A's down at STOP (it freezes when it finds
 * QEMU post-migrate), B's down when its QEMU resumes (it finds it
 * running).  Two cases fail until daemon-migration.c is fixed:
 *
 *   dst_restarted_across_resume: B's vmmgrd is down for 1 s while its
 *     guest runs after RESUME; the merged ledger is ~1 s too high.  The
 *     use since resume that the bank's first look after the restart
 *     charges goes to the incoming ledger, which dst_resume() then
 *     replaces (credit_bank_replace_ledger() charges "usage since the
 *     last look" to the ledger being replaced): the CPU is never charged
 *     (handoff.c's machine would charge it: mig_dst_resume() keeps the
 *     usage base of mig_dst_incoming()).  With vmmgrd up the same loss is
 *     the ~1 ms between QEMU's resume and vmmgrd's handling of RESUME
 *     (the apply_error figures below).
 *   incoming_held_at_baseline: the bank an incoming VM starts on earns
 *     from registration (its role counts as "ledger here", so the tick
 *     looks at it), so after ~0.75 s the emulated bank lifts the limit:
 *     a guest resumed while vmmgrd is down (or before it handles RESUME)
 *     runs unlimited instead of at its baseline.
 *
 * Clocks.  vmmgrd reads the real clocks (daemon_now_mono_usec() and
 * daemon_now_unix_usec() are CLOCK_MONOTONIC and CLOCK_REALTIME; there is
 * no clock seam), while a kernel model's time moves only in km_advance().
 * So the test runs both daemons' loops itself (sd_event_run with a 1 ms
 * timeout, and daemon_tick_now() every [daemon] tick, as daemon_run()'s
 * tick timer would) and, before each turn of a loop, advances that host's
 * model by the real time elapsed since its last advance: each model's
 * clock is the monotonic clock minus a constant.  Earnings are then
 * computed from the real clocks, as vmmgrd credits them, and CPU from the
 * models' per-thread counters.  Everything runs on this thread (the models
 * are single-threaded); only the scripted QEMUs serve from their own.
 * A case takes about 3 s of real time.
 *
 * Tolerance: one tick of CPU (tick x vCPUs, 100 ms here), as
 * docs/migration.md promises ("never one lost beyond a tick").  The
 * figures printed (figure: migration.handoff_model.CASE.*_error_usec,
 * > 0: created, < 0: lost) show how far inside it each case is: a few
 * usec from the moments between two clock reads, plus, until the first
 * bug above is fixed, the ~1 ms the guest runs before vmmgrd handles
 * RESUME, and minus the baseline's earnings while the apply is journaled
 * (the merged ledger is accounted up to the instant the record arrived,
 * the bank from after the commit).
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macros.h"
#include "kernel/model/kmodel.h"
#include "migration/record.h"
#include "tests/common/qmp-peers.h"
#include "tests/common/vtest.h"
#include "vmmgr/daemon/daemon.h"

#define UUID "4d1a7e11-0000-4000-8000-00000000c0de"
#define FULL_PPM 1000000
/* The kernel's sched_cfs_bandwidth_slice_us default: how far a real
 * kernel's pool may be from the balance it reads (the model hands out no
 * slices, so it is exact there). */
#define SLICE_USEC INT64_C(5000)
/* The kernel bank's CFS period (credit-bank.c): the pool gets each
 * period's quota at its start while the ledger earns continuously, so
 * between two looks the pool is off the ledger by up to one quota
 * (docs/credits.md). */
#define KERNEL_BANK_PERIOD_USEC 20000

static const char *const SRC = "A", *const DST = "B";

typedef struct Host {
        const char *name;
        char dir[128], sock[160], state[160];
        bool patched;
        KModel *model;
        Daemon *d;
        uint64_t model_mono_usec; /* the monotonic time the model's clock stands at */
        uint64_t next_tick_usec, next_commit_usec;
        /* Its one VM: a simulated QEMU process with one vCPU thread. */
        char qmp_path[160];
        pid_t pid, tid;
        size_t peer;
} Host;

typedef struct World {
        char dir[64];
        QmpPeers *peers;
        Host a, b;
        VmId id;
        CreditSpec spec;
        uint64_t unix_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC at the start */
        uint64_t tick_usec;       /* vmmgrd's [daemon] tick (both hosts) */
} World;

static World W;

static uint64_t mono(void) {
        return clock_now_usec(CLOCK_MONOTONIC);
}

static uint64_t wall(void) {
        return clock_now_usec(CLOCK_REALTIME);
}

/* ---- two hosts ------------------------------------------------------------------ */

static int peer_pid(const char *qmp_path, pid_t *ret, void *userdata) {
        Host *h = userdata;

        if (strcmp(qmp_path, h->qmp_path) != 0)
                return -ESRCH;
        *ret = h->pid;
        return 0;
}

/* The model's clock catches up with the real one. */
static void host_sync(Host *h) {
        uint64_t now = mono();

        if (now > h->model_mono_usec) {
                km_advance(h->model, now - h->model_mono_usec);
                h->model_mono_usec = now;
        }
}

/* vmmgrd on h's model, as it starts: it adopts what its state knows. */
static void host_daemon_up(Host *h) {
        KHost *kh = NULL;
        DaemonOptions o;

        assert_int_equal(kh_open_model(h->model, &(KHostConfig){ .subtree = "vmmgr.slice" }, &kh), 0);
        o = (DaemonOptions){ .state_dir = h->state,
                             .socket_path = h->sock,
                             .subtree = "vmmgr.slice",
                             .host = kh,
                             .model_peer_pid = peer_pid,
                             .model_peer_pid_userdata = h };
        assert_int_equal(daemon_new(&o, &h->d), 0);
        assert_int_equal(h->d->bank_kind, h->patched ? CREDIT_BANK_KERNEL : CREDIT_BANK_EMULATED);
        h->next_tick_usec = mono() + h->d->cfg.tick_usec;
        h->next_commit_usec = mono() + h->d->cfg.commit_interval_usec;
}

/* vmmgrd on h dies (kill -9: nothing is flushed); QEMU and its groups stay. */
static void host_daemon_crash(Host *h) {
        h->d = daemon_free(h->d);
}

static void host_open(Host *h, const char *name, bool patched, const char *qemu_status) {
        h->name = name;
        h->patched = patched;
        snprintf(h->dir, sizeof(h->dir), "%s/%s", W.dir, name);
        assert_int_equal(mkdir(h->dir, 0700), 0);
        snprintf(h->sock, sizeof(h->sock), "%s/api.sock", h->dir);
        snprintf(h->state, sizeof(h->state), "%s/state", h->dir);
        snprintf(h->qmp_path, sizeof(h->qmp_path), "%s/qemu.sock", h->dir);
        assert_int_equal(km_new(&(KModelConfig){ .mode = CG_MODE_UNIFIED, .patched = patched }, &h->model), 0);
        h->pid = km_process_new(h->model);
        assert_true(h->pid > 0);
        h->tid = km_thread_new(h->model, h->pid);
        assert_true(h->tid > 0);
        h->peer = (size_t) qmp_peers_add(
                W.peers, h->qmp_path,
                &(QmpPeerSpec){ .uuid = UUID, .vcpu_tid = h->tid, .status = qemu_status, .migrate_status = "none" });
        assert_true((int) h->peer >= 0);
        h->model_mono_usec = mono();
        host_daemon_up(h);
}

static void host_close(Host *h) {
        h->d = daemon_free(h->d);
        h->model = km_free(h->model);
}

/* One turn of every loop: the model catches up (also while its vmmgrd is
 * down: QEMU runs on), the credit tick and the ledger commit when due (as
 * daemon_run()'s timers would), then the loop for up to 1 ms. */
static void turn(void) {
        Host *hosts[] = { &W.a, &W.b };

        for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
                Host *h = hosts[i];

                if (!h->model)
                        continue;
                host_sync(h);
                if (!h->d)
                        continue;
                if (mono() >= h->next_tick_usec) {
                        daemon_tick_now(h->d);
                        h->next_tick_usec = mono() + h->d->cfg.tick_usec;
                }
                if (mono() >= h->next_commit_usec) {
                        (void) daemon_commit_ledgers(h->d, false);
                        h->next_commit_usec = mono() + h->d->cfg.commit_interval_usec;
                }
                assert_true(sd_event_run(h->d->loop, 1000) >= 0);
        }
}

static void run_for(uint64_t usec) {
        uint64_t end = mono() + usec;

        while (mono() < end)
                turn();
}

static Vm *vm_of(Host *h) {
        return daemon_find_vm(h->d, &W.id);
}

static const char *role_of(Host *h) {
        ServiceMigration m;
        ServiceError err = { 0 };

        if (daemon_service_ops.migration_get(h->d, &W.id, &m, &err) < 0)
                return "unregistered";
        return m.role;
}

/* Runs the loops until the VM's role on h is `role` (5 s at most). */
static void run_until_role(Host *h, const char *role) {
        uint64_t end = mono() + 5 * USEC_PER_SEC;

        while (strcmp(role_of(h), role) != 0) {
                if (mono() > end)
                        fail_msg("VM on %s: role %s, not %s, after 5 s", h->name, role_of(h), role);
                turn();
        }
}

typedef struct Registration {
        bool done;
        int r;
        char message[256];
} Registration;

static void on_registered(int r, const ServiceVm *vm, const ServiceError *err, void *userdata) {
        Registration *reg = userdata;

        reg->done = true;
        reg->r = r;
        if (err)
                snprintf(reg->message, sizeof(reg->message), "%s", err->message);
}

/* The real registration: QMP to the scripted QEMU, its threads bound,
 * its bank started, stored. */
static void register_vm(Host *h) {
        ServiceRegister req = { .id = W.id, .has_spec = true, .spec = W.spec };
        ServiceError err = { 0 };
        Registration reg = { 0 };
        uint64_t end = mono() + 5 * USEC_PER_SEC;

        snprintf(req.qmp_path, sizeof(req.qmp_path), "%s", h->qmp_path);
        if (daemon_service_ops.vm_register(h->d, &req, on_registered, &reg, &err) < 0)
                fail_msg("register on %s: %s", h->name, err.message);
        while (!reg.done) {
                if (mono() > end)
                        fail_msg("register on %s: no answer in 5 s", h->name);
                turn();
        }
        if (reg.r < 0)
                fail_msg("register on %s: %s", h->name, reg.message);
        assert_non_null(vm_of(h));
        assert_non_null(vm_of(h)->bank);
}

/* CPU the VM's vCPU thread has received on h, by the model's counter. */
static uint64_t used_usec(Host *h) {
        uint64_t ns = 0;

        assert_int_equal(km_thread_usage_nsec(h->model, h->tid, &ns), 0);
        return ns / 1000;
}

static void set_demand(Host *h, uint32_t ppm) {
        assert_int_equal(km_thread_set_demand(h->model, h->tid, ppm), 0);
}

/* QEMU on h sends an event (to vmmgrd, its one client). */
static void emit(Host *h, const char *name, const char *data) {
        assert_int_equal(qmp_peers_emit(W.peers, h->peer, name, data), 1);
}

/* The VM's bank on h, looked at now (the model first caught up). */
static void look(Host *h, CreditSnapshot *ret) {
        Vm *vm = vm_of(h);

        assert_non_null(vm);
        assert_non_null(vm->bank);
        host_sync(h);
        assert_int_equal(credit_bank_tick(vm->bank, mono()), 0);
        credit_bank_snapshot(vm->bank, ret);
}

/* The bank as it is, without a look. */
static void peek(Host *h, CreditSnapshot *ret) {
        Vm *vm = vm_of(h);

        assert_non_null(vm);
        assert_non_null(vm->bank);
        credit_bank_snapshot(vm->bank, ret);
}

/* cpu.max.runtime of the VM's vcpus group in h's model. */
static int64_t pool_usec(Host *h) {
        uint64_t rt = 0;

        assert_int_equal(kh_cpu_get_runtime(h->d->host, &W.id, CG_ROLE_VCPUS, &rt), 0);
        return (int64_t) rt;
}

static int64_t quota_usec(void) {
        return credit_earn_per_sec(&W.spec) * KERNEL_BANK_PERIOD_USEC / USEC_PER_SEC;
}

/* What the kernel bank keeps in the pool for a ledger. */
static int64_t pool_target(const CreditLedger *l) {
        return MIN(MAX(credit_ledger_available(l), 0), credit_spec_cap(&W.spec));
}

/* The policy's earnings for `usec` of wall time (no cap: the cases stay
 * below it, which each checks with forfeited_usec). */
static int64_t earnings(uint64_t usec) {
        return (int64_t) ((unsigned __int128) credit_earn_per_sec(&W.spec) * usec / USEC_PER_SEC);
}

static int64_t tolerance(void) {
        return (int64_t) (W.tick_usec * W.spec.vcpus);
}

static void check_within(const char *what, int64_t error, int64_t tol) {
        if (error > tol || error < -tol)
                fail_msg("%s: off by %" PRId64 " usec (tolerance %" PRId64 " usec)", what, error, tol);
}

static void figure(const char *cname, const char *what, int64_t value) {
        printf("figure: migration.handoff_model.%s.%s %" PRId64 " usec\n", cname, what, value);
        fflush(stdout);
}

/* ---- the world ------------------------------------------------------------------ */

static int setup(void **state) {
        W = (World){ 0 };
        snprintf(W.dir, sizeof(W.dir), "/tmp/vmmgr-handoff-XXXXXX");
        if (!mkdtemp(W.dir))
                return -1;
        W.peers = qmp_peers_new();
        if (!W.peers || vm_id_parse(UUID, &W.id) < 0)
                return -1;
        /* 1 vCPU at 20 %, 2 CPU-s of launch credits, a 6 CPU-s cap: the
         * VM bursts on its launch credits throughout, the bank stays well
         * below its cap (nothing forfeited). */
        W.spec = (CreditSpec){ .vcpus = 1,
                               .baseline_ppm = 200000,
                               .cap_usec = 6 * USEC_PER_SEC,
                               .launch_usec = 2 * USEC_PER_SEC,
                               .mode = CREDIT_MODE_STANDARD };
        W.unix_minus_mono = wall() - mono();
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        host_close(&W.a);
        host_close(&W.b);
        qmp_peers_free(W.peers);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", W.dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* Both hosts up (B's QEMU waiting for the migration), the VM registered on
 * A and spending; *ret_start is A's ledger at its first look, and its time. */
static void world_up(bool a_patched, bool b_patched, CreditSnapshot *ret_start) {
        host_open(&W.a, SRC, a_patched, "running");
        host_open(&W.b, DST, b_patched, "inmigrate");
        W.tick_usec = W.a.d->cfg.tick_usec;
        assert_int_equal(W.b.d->cfg.tick_usec, W.tick_usec);
        assert_int_equal(qmp_peers_start(W.peers), 0);
        register_vm(&W.a);
        /* Its first look: nothing used yet (the vCPU had no demand). */
        peek(&W.a, ret_start);
        assert_int_equal(used_usec(&W.a), 0);
        assert_int_equal(ret_start->usage_usec, 0);
        set_demand(&W.a, FULL_PPM);
}

static void announce(void) {
        ServiceMigration m;
        ServiceError err = { 0 };

        if (daemon_service_ops.migration_start(W.a.d, &W.id, "", &m, &err) < 0)
                fail_msg("migration_start: %s", err.message);
        assert_true(m.outgoing);
        assert_string_equal(m.destination, "");
        assert_string_equal(m.role, "owner");
        /* QEMU's migration runs: query-migrate says so until it ends. */
        assert_int_equal(qmp_peers_set_migrate_status(W.peers, W.a.peer, "active"), 0);
}

/* QEMU on A stops its vCPUs and says STOP; vmmgrd freezes the ledger.
 * Returns the record (and A's pool just before the freeze in *ret_pool
 * on a kernel bank, -1 otherwise). */
static MigRecord stop_source(const char *cname, int64_t *ret_pool) {
        ServiceMigration m;
        ServiceError err = { 0 };
        int64_t pool_before = -1;

        host_sync(&W.a);
        if (W.a.d->bank_kind == CREDIT_BANK_KERNEL)
                pool_before = pool_usec(&W.a);
        set_demand(&W.a, 0);
        assert_int_equal(qmp_peers_set_status(W.peers, W.a.peer, "paused"), 0);
        emit(&W.a, "STOP", NULL);
        run_until_role(&W.a, "frozen");
        assert_int_equal(daemon_service_ops.migration_get(W.a.d, &W.id, &m, &err), 0);
        assert_true(m.has_record);
        assert_int_equal(m.record.epoch, 1);
        if (pool_before >= 0) {
                int64_t target = pool_target(&m.record.ledger), after = pool_usec(&W.a);

                /* (3) The pool held the balance when QEMU stopped (within a
                 * slice, and the quota the period hands out at its start),
                 * and the freeze's look left it there.  Where launch
                 * credits take the balance past the cap, the pool holds at
                 * most the cap and is topped up from them at each look
                 * (about once a second): in between it is below, never
                 * above. */
                figure(cname, "freeze_pool_error_usec", pool_before - target);
                figure(cname, "freeze_pool_after_error_usec", after - target);
                if (credit_ledger_available(&m.record.ledger) <= credit_spec_cap(&W.spec))
                        check_within("A's pool at the freeze vs the frozen balance", pool_before - target,
                                     SLICE_USEC + quota_usec());
                else if (pool_before > target + SLICE_USEC + quota_usec())
                        fail_msg("A's pool at the freeze: %" PRId64 " usec, above the cap %" PRId64, pool_before,
                                 target);
                check_within("A's pool after the freeze vs the frozen balance", after - target, SLICE_USEC);
        }
        if (ret_pool)
                *ret_pool = pool_before;
        return m.record;
}

/* The ledger frozen at STOP against what A's QEMU used (model) and the
 * policy's earnings since the first look. */
static void check_frozen(const char *cname, const CreditSnapshot *start, const MigRecord *rec) {
        uint64_t frozen_mono = rec->frozen_at_usec - W.unix_minus_mono;
        int64_t want = credit_ledger_available(&start->ledger) + earnings(frozen_mono - start->last_tick_usec) -
                       (int64_t) used_usec(&W.a);
        int64_t error = credit_ledger_available(&rec->ledger) - want;

        figure(cname, "freeze_error_usec", error);
        check_within("the frozen ledger", error, tolerance());
}

static void complete_source(void) {
        assert_int_equal(qmp_peers_set_migrate_status(W.peers, W.a.peer, "completed"), 0);
        assert_int_equal(qmp_peers_set_status(W.peers, W.a.peer, "postmigrate"), 0);
        emit(&W.a, "MIGRATION", "{\"status\":\"completed\"}");
        run_until_role(&W.a, "handed-off");
}

/* The tool carries the record: A's export, as JSON, is B's import. */
static int carry_record(const MigRecord *rec, ServiceMigrationAnswer *ret) {
        _cleanup_free_ char *text = mig_record_to_text(rec);
        MigRecordError rerr = { 0 };
        ServiceError err = { 0 };
        MigRecord wire;
        int r;

        assert_non_null(text);
        if (mig_record_from_text(text, &wire, &rerr) < 0)
                fail_msg("the record does not read back: %s: %s", rerr.field ? rerr.field : "-", rerr.message);
        host_sync(&W.b);
        r = daemon_service_ops.migration_record(W.b.d, &wire, ret, &err);
        if (r < 0)
                fail_msg("migration_record: %s", err.message);
        return r;
}

static void reply_source(bool ack, uint64_t epoch, const char *want_role) {
        ServiceMigration m;
        ServiceError err = { 0 };

        if (daemon_service_ops.migration_reply(W.a.d, &W.id, ack, epoch, &m, &err) < 0)
                fail_msg("migration_reply: %s", err.message);
        assert_string_equal(m.role, want_role);
}

/* ---- a completed migration ------------------------------------------------------------ */

typedef struct Case {
        const char *name;
        bool a_patched, b_patched;
        int64_t launch_usec, cap_usec;
        /* vmmgrd on A is down (crashed) from before STOP until after the
         * migration completed; it freezes when it finds QEMU post-migrate. */
        uint64_t a_down_across_stop_usec;
        /* vmmgrd on B is down (crashed) from before RESUME for this long;
         * it finds its QEMU running when it comes back. */
        uint64_t b_down_across_resume_usec;
} Case;

static void handoff_case(const Case *c) {
        const char *cname = c->name;
        CreditSnapshot start, s, dup, end;
        ServiceMigrationAnswer ans;
        MigRecord rec;
        uint64_t t_lo, t_hi, b_used_at_resume, b_used;
        int64_t lo, hi, got, error, tol;

        W.spec.launch_usec = c->launch_usec;
        W.spec.cap_usec = c->cap_usec;
        world_up(c->a_patched, c->b_patched, &start);
        tol = tolerance();

        /* The destination's QEMU waits for the migration: vmmgrd on B
         * takes it for an incoming VM. */
        register_vm(&W.b);
        assert_string_equal(role_of(&W.b), "incoming");

        run_for(1000 * 1000); /* A spends its launch credits flat out */
        announce();
        run_for(200 * 1000);
        if (c->a_down_across_stop_usec) {
                /* QEMU stops and completes while vmmgrd on A is down; the
                 * one that comes back freezes at once (QEMU's counter has
                 * not moved since STOP) and sees the outcome. */
                host_daemon_crash(&W.a);
                set_demand(&W.a, 0);
                assert_int_equal(qmp_peers_set_status(W.peers, W.a.peer, "postmigrate"), 0);
                assert_int_equal(qmp_peers_set_migrate_status(W.peers, W.a.peer, "completed"), 0);
                run_for(c->a_down_across_stop_usec);
                host_daemon_up(&W.a);
                run_until_role(&W.a, "handed-off");
                {
                        ServiceMigration m;
                        ServiceError err = { 0 };

                        assert_int_equal(daemon_service_ops.migration_get(W.a.d, &W.id, &m, &err), 0);
                        assert_true(m.has_record);
                        rec = m.record;
                }
                check_frozen(cname, &start, &rec);
        } else {
                rec = stop_source(cname, NULL);
                check_frozen(cname, &start, &rec);
                run_for(300 * 1000); /* the downtime: A is frozen, B has not resumed */
                complete_source();
        }

        /* A record before B's QEMU resumed is held: nothing changes. */
        assert_int_equal(carry_record(&rec, &ans), 0);
        assert_string_equal(ans.reply, "held");
        assert_string_equal(role_of(&W.b), "incoming");

        /* B's QEMU resumes the guest (its vCPU runs from that instant),
         * then says RESUME. */
        if (c->b_down_across_resume_usec)
                host_daemon_crash(&W.b);
        b_used_at_resume = used_usec(&W.b);
        set_demand(&W.b, FULL_PPM);
        assert_int_equal(qmp_peers_set_status(W.peers, W.b.peer, "running"), 0);
        if (c->b_down_across_resume_usec) {
                /* Nobody listens (or a connection about to close does). */
                assert_true(qmp_peers_emit(W.peers, W.b.peer, "RESUME", NULL) >= 0);
                run_for(c->b_down_across_resume_usec);
                print_message("%s: B used %" PRIu64 " usec while its vmmgrd was down\n", cname,
                              used_usec(&W.b) - b_used_at_resume);
                host_daemon_up(&W.b);
        } else
                emit(&W.b, "RESUME", NULL);
        run_until_role(&W.b, "provisional");
        run_for(500 * 1000); /* on its provisional, baseline-only bank */

        /* (1) The record applied: frozen + earnings since frozen_at - the
         * CPU B used since RESUME.  The apply's instant is between t_lo
         * and t_hi. */
        t_lo = wall();
        assert_int_equal(carry_record(&rec, &ans), 0);
        t_hi = wall();
        assert_string_equal(ans.reply, "ack");
        assert_int_equal(ans.epoch, 1);
        assert_string_equal(role_of(&W.b), "owner");
        b_used = used_usec(&W.b) - b_used_at_resume; /* the model did not move since carry_record's sync */
        peek(&W.b, &s);
        lo = credit_ledger_available(&rec.ledger) + earnings(t_lo - rec.frozen_at_usec) - (int64_t) b_used;
        hi = credit_ledger_available(&rec.ledger) + earnings(t_hi - rec.frozen_at_usec) - (int64_t) b_used;
        got = credit_ledger_available(&s.ledger);
        error = got < lo ? got - lo : got > hi ? got - hi : 0;
        print_message("%s: frozen %" PRId64 " usec at %" PRIu64 ", applied %" PRIu64 "..%" PRIu64
                      " usec later: %" PRId64 " usec (B used %" PRIu64 " usec since resume)\n",
                      cname, credit_ledger_available(&rec.ledger), rec.frozen_at_usec, t_lo - rec.frozen_at_usec,
                      t_hi - rec.frozen_at_usec, got, b_used);
        figure(cname, "apply_error_usec", error);
        check_within("B's ledger after apply", error, tol);
        assert_int_equal(s.ledger.forfeited_usec, rec.ledger.forfeited_usec);
        assert_int_equal(s.spec.baseline_ppm, W.spec.baseline_ppm);
        assert_int_equal(s.spec.launch_usec, W.spec.launch_usec);
        assert_int_equal(s.spec.cap_usec, W.spec.cap_usec);
        if (c->b_patched) {
                /* (3) B's pool is the merged balance, capped. */
                int64_t perr = pool_usec(&W.b) - pool_target(&s.ledger);

                figure(cname, "apply_pool_error_usec", perr);
                check_within("B's pool after apply vs the merged balance", perr, SLICE_USEC);
        }

        /* (4) A duplicate: acknowledged again, nothing changes. */
        assert_int_equal(carry_record(&rec, &ans), 0);
        assert_string_equal(ans.reply, "ack");
        assert_int_equal(ans.epoch, 1);
        peek(&W.b, &dup);
        assert_true(memcmp(&dup.ledger, &s.ledger, sizeof(s.ledger)) == 0);
        assert_int_equal(vm_of(&W.b)->mig.epoch, 1);

        /* The tool brings B's ack to A: A closes, the VM is unregistered. */
        reply_source(true, 1, "closed");
        assert_null(vm_of(&W.a));
        /* A second ack changes nothing (there is nothing left). */
        {
                ServiceMigration m;
                ServiceError err = { 0 };

                assert_int_equal(daemon_service_ops.migration_reply(W.a.d, &W.id, true, 1, &m, &err), -ENOENT);
        }

        run_for(500 * 1000); /* B owns it now */

        /* (2) Conservation over the whole run. */
        look(&W.b, &end);
        {
                int64_t want = credit_ledger_available(&start.ledger) +
                               earnings(end.last_tick_usec - start.last_tick_usec) - (int64_t) used_usec(&W.a) -
                               (int64_t) (used_usec(&W.b) - b_used_at_resume);

                error = credit_ledger_available(&end.ledger) - want;
                print_message("%s: %" PRId64 " usec at the start, %" PRId64 " at the end over %" PRIu64
                              " usec; A used %" PRIu64 ", B %" PRIu64 "\n",
                              cname, credit_ledger_available(&start.ledger), credit_ledger_available(&end.ledger),
                              end.last_tick_usec - start.last_tick_usec, used_usec(&W.a),
                              used_usec(&W.b) - b_used_at_resume);
                figure(cname, "conservation_error_usec", error);
                check_within("conservation (created if > 0, lost if < 0)", error, tol);
                assert_int_equal(end.ledger.forfeited_usec, 0);
        }
}

#define LAUNCH_2S .launch_usec = 2 * USEC_PER_SEC, .cap_usec = 6 * USEC_PER_SEC

static void test_kernel_to_emulated(void **state) {
        handoff_case(&(Case){ .name = "kernel_to_emulated", .a_patched = true, LAUNCH_2S });
}

static void test_emulated_to_kernel(void **state) {
        handoff_case(&(Case){ .name = "emulated_to_kernel", .b_patched = true, LAUNCH_2S });
}

static void test_emulated_to_emulated(void **state) {
        handoff_case(&(Case){ .name = "emulated_to_emulated", LAUNCH_2S });
}

/* Launch credits beyond the cap: both pools hold the cap, not the
 * balance (the rest flows in as they drain). */
static void test_kernel_to_kernel(void **state) {
        handoff_case(&(Case){ .name = "kernel_to_kernel",
                              .a_patched = true,
                              .b_patched = true,
                              .launch_usec = 8 * USEC_PER_SEC,
                              .cap_usec = 3 * USEC_PER_SEC });
}

/* vmmgrd on A was down at STOP: it freezes when it comes back. */
static void test_src_restarted_across_stop(void **state) {
        handoff_case(&(Case){ .name = "src_restarted_across_stop",
                              .a_patched = true,
                              .a_down_across_stop_usec = 500 * 1000,
                              LAUNCH_2S });
}

/* vmmgrd on B was down when its QEMU resumed: what the guest used
 * meanwhile is use since resume, and must be charged. */
static void test_dst_restarted_across_resume(void **state) {
        handoff_case(
                &(Case){ .name = "dst_restarted_across_resume", .b_down_across_resume_usec = 1000 * 1000, LAUNCH_2S });
}

/* ---- the ledger stays with (or comes back to) the source ----------------------------- */

/* A's ledger at the end against its start: nothing created or lost. */
static void check_source_conserved(const char *cname, const CreditSnapshot *start) {
        CreditSnapshot end;
        int64_t want, error;

        look(&W.a, &end);
        want = credit_ledger_available(&start->ledger) + earnings(end.last_tick_usec - start->last_tick_usec) -
               (int64_t) used_usec(&W.a);
        error = credit_ledger_available(&end.ledger) - want;
        print_message("%s: %" PRId64 " usec at the start, %" PRId64 " at the end over %" PRIu64 " usec; A used %" PRIu64
                      "\n",
                      cname, credit_ledger_available(&start->ledger), credit_ledger_available(&end.ledger),
                      end.last_tick_usec - start->last_tick_usec, used_usec(&W.a));
        figure(cname, "conservation_error_usec", error);
        check_within("A's ledger (created if > 0, lost if < 0)", error, tolerance());
        assert_int_equal(end.ledger.forfeited_usec, 0);
        /* The same epoch, no record, nothing announced: as before. */
        {
                ServiceMigration m;
                ServiceError err = { 0 };

                assert_int_equal(daemon_service_ops.migration_get(W.a.d, &W.id, &m, &err), 0);
                assert_string_equal(m.role, "owner");
                assert_int_equal(m.epoch, 0);
                assert_false(m.has_record);
                assert_false(m.outgoing);
        }
}

/* MIGRATION failed after STOP: A's QEMU runs on, and so does its ledger. */
static void failed_case(const char *cname, bool a_patched) {
        CreditSnapshot start;
        MigRecord rec;

        world_up(a_patched, false, &start);
        run_for(1000 * 1000);
        announce();
        rec = stop_source(cname, NULL);
        check_frozen(cname, &start, &rec);
        run_for(300 * 1000);
        assert_int_equal(qmp_peers_set_migrate_status(W.peers, W.a.peer, "failed"), 0);
        emit(&W.a, "MIGRATION", "{\"status\":\"failed\"}");
        run_until_role(&W.a, "owner");
        /* QEMU resumes the guest here. */
        set_demand(&W.a, FULL_PPM);
        assert_int_equal(qmp_peers_set_status(W.peers, W.a.peer, "running"), 0);
        emit(&W.a, "RESUME", NULL);
        run_for(700 * 1000);
        check_source_conserved(cname, &start);
}

/* An incoming VM's QEMU has not resumed: the bank it starts on earns from
 * the resume and holds nothing (docs/migration.md, step 4: "it never bursts
 * beyond what it earned since resume: the destination never
 * over-grants").  Its limit must say so before the resume too, since
 * QEMU resumes the guest before vmmgrd hears of it, and vmmgrd may be
 * down then: the guest must be held at its baseline meanwhile. */
static void test_incoming_held_at_baseline(void **state) {
        CreditSnapshot start;
        uint64_t used0, t0, used, allowed;

        world_up(false, false, &start);
        register_vm(&W.b);
        assert_string_equal(role_of(&W.b), "incoming");
        run_for(2 * USEC_PER_SEC); /* the migration runs; B's QEMU waits */
        host_daemon_crash(&W.b);
        used0 = used_usec(&W.b);
        t0 = mono();
        set_demand(&W.b, FULL_PPM); /* B's QEMU resumes the guest */
        assert_int_equal(qmp_peers_set_status(W.peers, W.b.peer, "running"), 0);
        run_for(USEC_PER_SEC);
        used = used_usec(&W.b) - used0;
        allowed = (uint64_t) earnings(W.b.model_mono_usec - t0);
        print_message("incoming: B's guest used %" PRIu64 " usec in %" PRIu64 " usec, its baseline allows %" PRIu64
                      "\n",
                      used, W.b.model_mono_usec - t0, allowed);
        figure("incoming_held_at_baseline", "over_grant_usec", (int64_t) used - (int64_t) allowed);
        check_within("B's guest beyond its baseline before vmmgrd saw RESUME", (int64_t) used - (int64_t) allowed,
                     tolerance());
}

static void test_failed_kernel(void **state) {
        failed_case("failed_kernel", true);
}

static void test_failed_emulated(void **state) {
        failed_case("failed_emulated", false);
}

/* The migration completed, but B's QEMU went before it resumed: B answers
 * nack (now and to a duplicate), A takes the ledger back, the tool resumes
 * A's QEMU, and nothing was lost meanwhile. */
static void nack_case(const char *cname, bool a_patched, bool b_patched) {
        CreditSnapshot start;
        ServiceMigrationAnswer ans;
        MigRecord rec;

        world_up(a_patched, b_patched, &start);
        register_vm(&W.b);
        assert_string_equal(role_of(&W.b), "incoming");
        run_for(1000 * 1000);
        announce();
        rec = stop_source(cname, NULL);
        check_frozen(cname, &start, &rec);
        run_for(200 * 1000);
        complete_source();

        /* B's QEMU exits before RESUME. */
        assert_int_equal(km_process_exit(W.b.model, W.b.pid), 0);
        assert_int_equal(qmp_peers_kill(W.peers, W.b.peer), 0);
        run_until_role(&W.b, "gone");

        assert_int_equal(carry_record(&rec, &ans), 0);
        assert_string_equal(ans.reply, "nack");
        assert_int_equal(ans.epoch, 1);
        assert_int_equal(carry_record(&rec, &ans), 0);
        assert_string_equal(ans.reply, "nack");
        run_for(200 * 1000); /* the tool takes its time */
        reply_source(false, 1, "owner");
        /* The tool resumes the guest on A. */
        set_demand(&W.a, FULL_PPM);
        assert_int_equal(qmp_peers_set_migrate_status(W.peers, W.a.peer, "none"), 0);
        assert_int_equal(qmp_peers_set_status(W.peers, W.a.peer, "running"), 0);
        emit(&W.a, "RESUME", NULL);
        run_for(500 * 1000);
        check_source_conserved(cname, &start);
}

static void test_nack_kernel(void **state) {
        nack_case("nack_kernel", true, false);
}

static void test_nack_emulated(void **state) {
        nack_case("nack_emulated", false, true);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kernel_to_emulated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_emulated_to_kernel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_emulated_to_emulated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kernel_to_kernel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_src_restarted_across_stop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dst_restarted_across_resume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_incoming_held_at_baseline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_kernel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_emulated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nack_kernel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nack_emulated, setup, teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return vt_run_group_tests(tests, NULL, NULL);
}
